/*
 * Native unit tests of env_file.c and file_io.c, run by
 * scripts/build-plugins-c.sh under the address and undefined-behaviour
 * sanitizers before the plugin is built:
 *
 *   cc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *      -Iplugins/dotenv/src plugins/dotenv/tests/env_file_test.c \
 *      plugins/dotenv/src/env_file.c plugins/dotenv/src/file_io.c && ./a.out
 */
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env_file.h"
#include "file_io.h"

static int passed, failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__,       \
                    __func__, #cond);                                                  \
            failed++;                                                                  \
            return;                                                                    \
        }                                                                              \
    } while (0)

static const char *const NAMES[2] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
static const char *const VALUES[2] = {"AKIANEWKEY0000009999", "new/secret+KEY="};

/* Parses and renders `in` with the new VALUES; compares with `want`. */
static void expect_edit(const char *in, const char *want, bool added_id, bool added_secret) {
    env_doc doc;
    char err[512];
    bool ok = env_parse(in, strlen(in), NAMES, &doc, err, sizeof err);
    if (!ok)
        fprintf(stderr, "parse error: %s\n", err);
    CHECK(ok);
    env_buf out = {0};
    bool added[2];
    CHECK(env_render(in, strlen(in), &doc, NAMES, VALUES, &out, added));
    bool same = out.len == strlen(want) && memcmp(out.data, want, out.len) == 0;
    if (!same)
        fprintf(stderr, "--- got\n%.*s--- want\n%s---\n", (int)out.len, out.data, want);
    env_buf_free(&out);
    env_doc_free(&doc);
    CHECK(same);
    CHECK(added[0] == added_id && added[1] == added_secret);
    passed++;
}

static void values_are_replaced_in_place_and_everything_else_kept(void) {
    expect_edit("# app settings\n"
                "\n"
                "DB_URL=postgres://x # db\n"
                "AWS_ACCESS_KEY_ID=AKIAOLDKEY0000001234\n"
                "  export AWS_SECRET_ACCESS_KEY = \"old/secret\"   # rotated by keyrot\n"
                "OTHER='a b'\n",
                "# app settings\n"
                "\n"
                "DB_URL=postgres://x # db\n"
                "AWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\n"
                "  export AWS_SECRET_ACCESS_KEY = \"new/secret+KEY=\"   # rotated by keyrot\n"
                "OTHER='a b'\n",
                false, false);
}

static void single_quotes_backticks_and_crlf_are_kept(void) {
    expect_edit("AWS_ACCESS_KEY_ID='AKIAOLD'\r\nAWS_SECRET_ACCESS_KEY=`old`\r\nX=1",
                "AWS_ACCESS_KEY_ID='AKIANEWKEY0000009999'\r\n"
                "AWS_SECRET_ACCESS_KEY=`new/secret+KEY=`\r\nX=1",
                false, false);
}

static void an_empty_value_is_filled_before_its_comment(void) {
    expect_edit("AWS_ACCESS_KEY_ID=   # fill me\nAWS_SECRET_ACCESS_KEY=\n",
                "AWS_ACCESS_KEY_ID=AKIANEWKEY0000009999   # fill me\n"
                "AWS_SECRET_ACCESS_KEY=new/secret+KEY=\n",
                false, false);
}

static void a_missing_file_or_empty_text_gets_both_lines(void) {
    expect_edit("", "AWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\nAWS_SECRET_ACCESS_KEY=new/secret+KEY=\n",
                true, true);
}

static void missing_variables_are_appended_after_a_missing_final_newline(void) {
    expect_edit("# c\nX=1",
                "# c\nX=1\nAWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\n"
                "AWS_SECRET_ACCESS_KEY=new/secret+KEY=\n",
                true, true);
}

static void appended_lines_follow_an_all_export_file(void) {
    expect_edit("export X=1\r\n",
                "export X=1\r\nexport AWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\r\n"
                "export AWS_SECRET_ACCESS_KEY=new/secret+KEY=\r\n",
                true, true);
}

static void a_missing_secret_goes_after_the_key_id_in_its_style(void) {
    expect_edit("A=1\nexport AWS_ACCESS_KEY_ID=\"AKIAOLD\"\nB=2\n",
                "A=1\nexport AWS_ACCESS_KEY_ID=\"AKIANEWKEY0000009999\"\n"
                "export AWS_SECRET_ACCESS_KEY=\"new/secret+KEY=\"\nB=2\n",
                false, true);
    expect_edit("AWS_SECRET_ACCESS_KEY=old",
                "AWS_SECRET_ACCESS_KEY=new/secret+KEY=\nAWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\n",
                true, false);
}

static void duplicates_are_all_replaced(void) {
    expect_edit("AWS_ACCESS_KEY_ID=a\nAWS_ACCESS_KEY_ID=b\nAWS_SECRET_ACCESS_KEY=s\n",
                "AWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\nAWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\n"
                "AWS_SECRET_ACCESS_KEY=new/secret+KEY=\n",
                false, false);
}

static void lookalikes_and_multiline_values_are_left_alone(void) {
    expect_edit("#AWS_ACCESS_KEY_ID=x\n"
                "MY_AWS_ACCESS_KEY_ID=x\n"
                "AWS_ACCESS_KEY_ID_OLD=x\n"
                "CERT=\"line one\n"
                "AWS_ACCESS_KEY_ID=inside \\\" a quote\n"
                "\"\n"
                "AWS_ACCESS_KEY_ID\n",
                "#AWS_ACCESS_KEY_ID=x\n"
                "MY_AWS_ACCESS_KEY_ID=x\n"
                "AWS_ACCESS_KEY_ID_OLD=x\n"
                "CERT=\"line one\n"
                "AWS_ACCESS_KEY_ID=inside \\\" a quote\n"
                "\"\n"
                "AWS_ACCESS_KEY_ID\n"
                "AWS_ACCESS_KEY_ID=AKIANEWKEY0000009999\n"
                "AWS_SECRET_ACCESS_KEY=new/secret+KEY=\n",
                true, true);
}

static void expect_parse_error(const char *in, const char *contains) {
    env_doc doc;
    char err[512] = "";
    bool ok = env_parse(in, strlen(in), NAMES, &doc, err, sizeof err);
    env_doc_free(&doc);
    CHECK(!ok);
    if (!strstr(err, contains))
        fprintf(stderr, "error '%s' lacks '%s'\n", err, contains);
    CHECK(strstr(err, contains));
    passed++;
}

static void broken_files_are_refused(void) {
    expect_parse_error("X=\"never closed\nY=1\n", "line 1 is never closed");
    expect_parse_error("A=1\nAWS_SECRET_ACCESS_KEY='two\nlines'\n",
                       "AWS_SECRET_ACCESS_KEY on line 2 spans several lines");
    const char nul[] = "A=1\0\n";
    env_doc doc;
    char err[128];
    CHECK(!env_parse(nul, sizeof nul - 1, NAMES, &doc, err, sizeof err));
    env_doc_free(&doc);
    CHECK(strstr(err, "NUL"));
    passed++;
}

/* Runs the guard on `in` with the `count` abandoned keys; returns its
 * verdict (refused if it does not parse). */
static env_verdict guard_list(const char *in, const char *current, const char *const *abandoned,
                              size_t count, bool force, char *why, size_t why_len) {
    env_doc doc;
    char err[128];
    if (!env_parse(in, strlen(in), NAMES, &doc, err, sizeof err)) {
        env_doc_free(&doc);
        return ENV_GUARD_REFUSED;
    }
    env_verdict verdict = env_guard(in, &doc, NAMES[0], "/app/.env", current, abandoned, count,
                                    force, why, why_len);
    env_doc_free(&doc);
    return verdict;
}

/* The same with at most one abandoned key (NULL: none). */
static env_verdict guard(const char *in, const char *current, const char *abandoned, bool force,
                         char *why, size_t why_len) {
    return guard_list(in, current, &abandoned, abandoned ? 1 : 0, force, why, why_len);
}

static void the_guard_refuses_another_key(void) {
    char why[1024];
    const char *cur = "AKIACURRENTKEY005678";
    CHECK(guard("", cur, NULL, false, why, sizeof why) == ENV_GUARD_OK && why[0] == '\0');
    CHECK(guard("AWS_ACCESS_KEY_ID=\n", NULL, NULL, false, why, sizeof why) == ENV_GUARD_OK);
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIACURRENTKEY005678\n", cur, NULL, false, why, sizeof why) ==
              ENV_GUARD_OK &&
          why[0] == '\0');
    CHECK(guard("X=1\nAWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", cur, NULL, false, why,
                sizeof why) == ENV_GUARD_REFUSED);
    CHECK(strcmp(why, "/app/.env sets AWS_ACCESS_KEY_ID to key AKIA\xe2\x80\xa6" "1234 (line 2), "
                      "not the key being rotated (AKIA\xe2\x80\xa6" "5678): refusing to "
                      "overwrite it; pass --config force=true to replace it anyway") == 0);
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", NULL, NULL, false, why, sizeof why) ==
          ENV_GUARD_REFUSED);
    CHECK(strstr(why, "no active key"));
    /* Disagreeing duplicates are refused even if one is current. */
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIACURRENTKEY005678\nAWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n",
                cur, NULL, false, why, sizeof why) == ENV_GUARD_REFUSED);
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", cur, NULL, true, why, sizeof why) ==
          ENV_GUARD_FORCED);
    CHECK(strstr(why, "replacing it (force=true)"));
    /* Masks that collide are shown whole. */
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX5678\n", cur, NULL, false, why, sizeof why) ==
          ENV_GUARD_REFUSED);
    CHECK(strstr(why, "key AKIAOTHERKEYXXXX5678 (line 1), not the key being rotated "
                      "(AKIACURRENTKEY005678)"));
    /* Bytes from the file that are not printable ASCII never reach a message. */
    CHECK(guard("AWS_ACCESS_KEY_ID=\xff\xfe\x01xyzzy0123\n", cur, NULL, false, why, sizeof why) ==
          ENV_GUARD_REFUSED);
    CHECK(strstr(why, "key ???x\xe2\x80\xa6" "0123"));
    passed++;
}

/* After a kill, keyrot names the key an interrupted rotation may have left
 * (contract 0.4.0's abandoned-key-ids, here one): the guard lets it be
 * replaced without force, and still refuses any other key. */
static void the_guard_accepts_the_key_an_interrupted_rotation_left(void) {
    char why[1024];
    const char *cur = "AKIACURRENTKEY005678";
    const char *left = "AKIAABANDONEDKEY9012";
    CHECK(guard("X=1\nAWS_ACCESS_KEY_ID=AKIAABANDONEDKEY9012\n", cur, left, false, why,
                sizeof why) == ENV_GUARD_ABANDONED);
    CHECK(strcmp(why, "/app/.env sets AWS_ACCESS_KEY_ID to key AKIA\xe2\x80\xa6" "9012 (line 2), "
                      "which an interrupted rotation left there and keyrot has deleted since; "
                      "replacing it") == 0);
    /* Also for a user that had no active key, and beside the current key. */
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAABANDONEDKEY9012\n", NULL, left, false, why, sizeof why) ==
          ENV_GUARD_ABANDONED);
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIACURRENTKEY005678\nAWS_ACCESS_KEY_ID=AKIAABANDONEDKEY9012\n",
                cur, left, false, why, sizeof why) == ENV_GUARD_ABANDONED);
    CHECK(strstr(why, "(line 2)"));
    /* The current key, or none, needs nothing said. */
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIACURRENTKEY005678\n", cur, left, false, why, sizeof why) ==
              ENV_GUARD_OK &&
          why[0] == '\0');
    CHECK(guard("AWS_ACCESS_KEY_ID=\n", cur, left, false, why, sizeof why) == ENV_GUARD_OK);
    /* Without that key named (an older keyrot, or no interrupted run), it is
     * another key. */
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAABANDONEDKEY9012\n", cur, NULL, false, why, sizeof why) ==
          ENV_GUARD_REFUSED);
    /* Any other key is still refused, the message naming all three. */
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", cur, left, false, why, sizeof why) ==
          ENV_GUARD_REFUSED);
    CHECK(strcmp(why, "/app/.env sets AWS_ACCESS_KEY_ID to key AKIA\xe2\x80\xa6" "1234 (line 1), "
                      "neither the key being rotated (AKIA\xe2\x80\xa6" "5678) nor the one an "
                      "interrupted rotation left (AKIA\xe2\x80\xa6" "9012): refusing to overwrite "
                      "it; pass --config force=true to replace it anyway") == 0);
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAABANDONEDKEY9012\nAWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n",
                cur, left, false, why, sizeof why) == ENV_GUARD_REFUSED);
    CHECK(strstr(why, "key AKIA\xe2\x80\xa6" "1234 (line 2)"));
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", NULL, left, false, why, sizeof why) ==
          ENV_GUARD_REFUSED);
    CHECK(strstr(why, "not the one an interrupted rotation left (AKIA\xe2\x80\xa6" "9012), and "
                      "the user has no active key being rotated: refusing"));
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", cur, left, true, why, sizeof why) ==
          ENV_GUARD_FORCED);
    /* Masks that collide with the abandoned key's are shown whole. */
    CHECK(guard("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX9012\n", cur, left, false, why, sizeof why) ==
          ENV_GUARD_REFUSED);
    CHECK(strstr(why, "key AKIAOTHERKEYXXXX9012 (line 1), neither the key being rotated "
                      "(AKIACURRENTKEY005678) nor the one an interrupted rotation left "
                      "(AKIAABANDONEDKEY9012)"));
    passed++;
}

/* After two kills in a row, keyrot names both keys the interrupted
 * rotations may have left, newest first: the file may hold either. */
static void the_guard_accepts_any_key_interrupted_rotations_left(void) {
    char why[1024];
    const char *cur = "AKIACURRENTKEY005678";
    const char *const left[2] = {"AKIAABANDONEDKEY9012", "AKIAOLDERLEFTKEY3456"};
    /* The older one, as the first interrupted run left it. */
    CHECK(guard_list("X=1\nAWS_ACCESS_KEY_ID=AKIAOLDERLEFTKEY3456\n", cur, left, 2, false, why,
                     sizeof why) == ENV_GUARD_ABANDONED);
    CHECK(strcmp(why, "/app/.env sets AWS_ACCESS_KEY_ID to key AKIA\xe2\x80\xa6" "3456 (line 2), "
                      "which an interrupted rotation left there and keyrot has deleted since; "
                      "replacing it") == 0);
    CHECK(guard_list("AWS_ACCESS_KEY_ID=AKIAABANDONEDKEY9012\n", NULL, left, 2, false, why,
                     sizeof why) == ENV_GUARD_ABANDONED);
    CHECK(guard_list("AWS_ACCESS_KEY_ID=AKIACURRENTKEY005678\n", cur, left, 2, false, why,
                     sizeof why) == ENV_GUARD_OK);
    /* Any other key is refused, the message naming both. */
    CHECK(guard_list("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", cur, left, 2, false, why,
                     sizeof why) == ENV_GUARD_REFUSED);
    CHECK(strcmp(why, "/app/.env sets AWS_ACCESS_KEY_ID to key AKIA\xe2\x80\xa6" "1234 (line 1), "
                      "neither the key being rotated (AKIA\xe2\x80\xa6" "5678) nor any of the 2 "
                      "keys interrupted rotations left (AKIA\xe2\x80\xa6" "9012, "
                      "AKIA\xe2\x80\xa6" "3456): refusing to overwrite it; pass --config "
                      "force=true to replace it anyway") == 0);
    CHECK(guard_list("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX1234\n", NULL, left, 2, false, why,
                     sizeof why) == ENV_GUARD_REFUSED);
    CHECK(strstr(why, "not any of the 2 keys interrupted rotations left (AKIA\xe2\x80\xa6" "9012, "
                      "AKIA\xe2\x80\xa6" "3456), and the user has no active key being rotated"));
    /* Masks that collide with the older one's are shown whole, all of them. */
    CHECK(guard_list("AWS_ACCESS_KEY_ID=AKIAOTHERKEYXXXX3456\n", cur, left, 2, false, why,
                     sizeof why) == ENV_GUARD_REFUSED);
    CHECK(strstr(why, "key AKIAOTHERKEYXXXX3456 (line 1), neither the key being rotated "
                      "(AKIACURRENTKEY005678) nor any of the 2 keys interrupted rotations left "
                      "(AKIAABANDONEDKEY9012, AKIAOLDERLEFTKEY3456)"));
    passed++;
}

static void names_values_and_masks(void) {
    CHECK(env_valid_name("AWS_ACCESS_KEY_ID") && env_valid_name("_x1"));
    CHECK(!env_valid_name("") && !env_valid_name("1A") && !env_valid_name("A-B") &&
          !env_valid_name("A B"));
    CHECK(env_storable("AKIAIOSFODNN7EXAMPLE") &&
          env_storable("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+="));
    CHECK(!env_storable("") && !env_storable("a b") && !env_storable("a#b") &&
          !env_storable("a\"b") && !env_storable("a$b") && !env_storable("a\nb"));
    char out[32];
    env_mask("AKIAIOSFODNN7EXAMPLE", 20, out, sizeof out);
    CHECK(strcmp(out, "AKIA\xe2\x80\xa6MPLE") == 0);
    env_mask("AKIA1234", 8, out, sizeof out);
    CHECK(strcmp(out, "AKIA1234") == 0);
    env_mask("", 0, out, sizeof out);
    CHECK(strcmp(out, "") == 0);
    passed++;
}

static void buffers_are_bounded(void) {
    env_buf buf = {0};
    char *big = calloc(1, ENV_MAX_FILE);
    CHECK(big);
    CHECK(env_buf_add(&buf, big, ENV_MAX_FILE));
    CHECK(!env_buf_add(&buf, "x", 1));
    CHECK(buf.len == ENV_MAX_FILE);
    env_buf_free(&buf);
    free(big);
    CHECK(buf.data == NULL && buf.len == 0);
    passed++;
}

/* ---- file_io, in a scratch directory ------------------------------------ */

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

static void files_are_replaced_atomically_leaving_nothing_behind(void) {
    char dir[] = "/tmp/keyrot-dotenv-test-XXXXXX";
    CHECK(mkdtemp(dir));
    char path[128], inner[160], link[128], err[512];
    snprintf(path, sizeof path, "%s/.env", dir);
    env_buf buf = {0};
    bool exists = true;
    CHECK(fio_check_target(path, err, sizeof err));
    CHECK(fio_read(path, &buf, &exists, err, sizeof err) && !exists && buf.len == 0);
    CHECK(fio_probe_dir(path, err, sizeof err) && entries(dir) == 0);
    CHECK(fio_replace(path, "A=1\nB=22\n", 9, "", 0, false, err, sizeof err));
    /* An existing file keeps its inode, mode and owner, and is cut short. */
    struct stat before, after;
    CHECK(chmod(path, 0640) == 0 && stat(path, &before) == 0);
    CHECK(fio_probe_writable(path, err, sizeof err));
    CHECK(fio_replace(path, "B=2\r\n", 5, "A=1\nB=22\n", 9, true, err, sizeof err));
    CHECK(stat(path, &after) == 0 && (after.st_mode & 07777) == 0640);
    CHECK(after.st_ino == before.st_ino && after.st_uid == before.st_uid &&
          after.st_gid == before.st_gid);
    CHECK(fio_read(path, &buf, &exists, err, sizeof err) && exists);
    CHECK(buf.len == 5 && memcmp(buf.data, "B=2\r\n", 5) == 0);
    env_buf_free(&buf);
    CHECK(entries(dir) == 1);

    /* A symbolic link or a directory is refused. */
    snprintf(link, sizeof link, "%s/link", dir);
    CHECK(symlink(path, link) == 0);
    CHECK(!fio_check_target(link, err, sizeof err) && strstr(err, "symbolic link"));
    CHECK(unlink(link) == 0);
    CHECK(!fio_check_target(dir, err, sizeof err) && strstr(err, "not a regular file"));

    /* A failed rename (over a non-empty directory) removes the temp file. */
    snprintf(path, sizeof path, "%s/sub", dir);
    snprintf(inner, sizeof inner, "%s/inside", path);
    CHECK(mkdir(path, 0700) == 0);
    CHECK(fio_replace(inner, "x", 1, "", 0, false, err, sizeof err));
    CHECK(!fio_replace(path, "A=1\n", 4, "", 0, false, err, sizeof err) &&
          strstr(err, "cannot replace"));
    CHECK(entries(dir) == 2 && entries(path) == 1);
    /* A file that cannot be opened for writing is left alone, no backup. */
    CHECK(!fio_probe_writable(path, err, sizeof err) && strstr(err, "cannot write"));
    CHECK(!fio_replace(path, "A=1\n", 4, "x", 1, true, err, sizeof err) &&
          strstr(err, "cannot write"));
    CHECK(entries(dir) == 2 && entries(path) == 1);

    /* A missing directory names the grant. */
    snprintf(path, sizeof path, "%s/missing/.env", dir);
    CHECK(!fio_probe_dir(path, err, sizeof err) && strstr(err, "--allow-dir"));

    snprintf(path, sizeof path, "%s/sub", dir);
    CHECK(unlink(inner) == 0 && rmdir(path) == 0);
    snprintf(path, sizeof path, "%s/.env", dir);
    CHECK(unlink(path) == 0 && rmdir(dir) == 0);
    passed++;
}

int main(void) {
    values_are_replaced_in_place_and_everything_else_kept();
    single_quotes_backticks_and_crlf_are_kept();
    an_empty_value_is_filled_before_its_comment();
    a_missing_file_or_empty_text_gets_both_lines();
    missing_variables_are_appended_after_a_missing_final_newline();
    appended_lines_follow_an_all_export_file();
    a_missing_secret_goes_after_the_key_id_in_its_style();
    duplicates_are_all_replaced();
    lookalikes_and_multiline_values_are_left_alone();
    broken_files_are_refused();
    the_guard_refuses_another_key();
    the_guard_accepts_the_key_an_interrupted_rotation_left();
    the_guard_accepts_any_key_interrupted_rotations_left();
    names_values_and_masks();
    buffers_are_bounded();
    files_are_replaced_atomically_leaving_nothing_behind();
    printf("env_file: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
