/*
 * dotenv: a keyrot handler that writes the new key into a .env file in a
 * directory the operator grants (`--allow-dir ./app:/app`).
 *
 * The work is split so most of it is tested natively: env_file.c parses and
 * edits the file's text and decides whether it may be overwritten,
 * file_io.c does the (atomic) I/O with POSIX calls. This file only wires
 * them to the WIT exports (bindings from `wit-bindgen c`), the settings
 * (wasi:config/store) and the log (wasi:logging).
 *
 * Ownership follows the canonical ABI as wit-bindgen's C generator lays it
 * out: an export's arguments belong to it (freed here with the generated
 * *_free functions); what it returns is heap memory that the generated
 * post-return functions free; an import's results belong to the caller.
 */
#define _GNU_SOURCE /* vasprintf */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "env_file.h"
#include "file_io.h"
#include "dotenv_handler.h"

typedef dotenv_handler_string_t string_t;
typedef exports_keyrot_handler_handler_rotation_t rotation_t;
typedef exports_keyrot_handler_handler_access_key_t access_key_t;

#define VERSION "0.2.0"
#define MAX_PATH 1024
#define ERR_LEN 4096

/* ---- strings ------------------------------------------------------------- */

/* Replaces every byte that is not part of valid UTF-8 with '?': a string
 * crossing into keyrot must be UTF-8, or the call traps. */
static void utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
                               : (*p & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = n > 0;
        for (size_t i = 1; ok && i < n; i++)
            ok = (p[i] & 0xc0) == 0x80; /* stops at the NUL too */
        if (ok && n > 1) {
            unsigned cp = *p & (0x7f >> n);
            for (size_t i = 1; i < n; i++)
                cp = (cp << 6) | (p[i] & 0x3f);
            static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= min[n] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        }
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* A formatted heap string; traps (aborts) when out of memory, which keyrot
 * reports as a handler failure. */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0 || !s)
        abort();
    return s;
}

/* A NUL-terminated heap copy of a WIT string, or NULL if it holds a NUL. */
static char *c_string(const string_t *s) {
    if (s->len && memchr(s->ptr, '\0', s->len))
        return NULL;
    char *copy = malloc(s->len + 1);
    if (!copy)
        abort();
    if (s->len)
        memcpy(copy, s->ptr, s->len);
    copy[s->len] = '\0';
    return copy;
}

static void wipe(void *data, size_t len) {
    volatile unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        p[i] = 0;
}

/* Frees a C string that may have held a secret. */
static void free_secret(char *s) {
    if (s) {
        wipe(s, strlen(s));
        free(s);
    }
}

/* Returns `message` (heap, consumed) to keyrot as the call's error. */
static bool fail(string_t *err, char *message) {
    utf8_sanitize(message);
    if (!message[0]) { /* never empty: post-return frees only non-empty strings */
        free(message);
        message = format("failed");
    }
    err->ptr = (uint8_t *)message;
    err->len = strlen(message);
    return false;
}

static void log_line(wasi_logging_logging_level_t level, const char *context, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(wasi_logging_logging_level_t level, const char *context, const char *fmt,
                     ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0 || !text)
        abort();
    utf8_sanitize(text);
    string_t c, m;
    dotenv_handler_string_set(&c, context);
    dotenv_handler_string_set(&m, text);
    wasi_logging_logging_log(level, &c, &m);
    free(text);
}

#define INFO WASI_LOGGING_LOGGING_LEVEL_INFO
#define WARN WASI_LOGGING_LOGGING_LEVEL_WARN

/* ---- settings ------------------------------------------------------------ */

static const struct {
    const char *name;
    const char *description;
    bool required;
} DECLARED[] = {
    {"path",
     "The .env file inside a granted directory, e.g. /app/.env (grant it with "
     "--allow-dir ./app:/app)",
     true},
    {"key-id-variable", "The variable that holds the access key id (default: AWS_ACCESS_KEY_ID)",
     false},
    {"secret-key-variable",
     "The variable that holds the secret access key (default: AWS_SECRET_ACCESS_KEY)", false},
    {"force",
     "true to replace a key id other than the one being rotated or one an interrupted "
     "rotation left (default: false)",
     false},
};

typedef struct {
    char *path;     /* absolute, inside the sandbox */
    char *names[2]; /* [ENV_KEY_ID], [ENV_SECRET] */
    bool force;
} settings_t;

static void settings_free(settings_t *s) {
    free(s->path);
    free(s->names[0]);
    free(s->names[1]);
    memset(s, 0, sizeof *s);
}

/* Reads one setting into *value (heap, or NULL when not set). */
static bool get_setting(const char *name, char **value, char **error) {
    string_t key;
    dotenv_handler_string_set(&key, name);
    dotenv_handler_option_string_t got;
    wasi_config_store_error_t config_error;
    *value = NULL;
    if (!wasi_config_store_get(&key, &got, &config_error)) {
        const string_t *why = config_error.tag == WASI_CONFIG_STORE_ERROR_UPSTREAM
                                  ? &config_error.val.upstream
                                  : &config_error.val.io;
        *error = format("cannot read setting '%s': %.*s", name, (int)why->len,
                        (const char *)why->ptr);
        wasi_config_store_error_free(&config_error);
        return false;
    }
    if (!got.is_some)
        return true;
    *value = c_string(&got.val);
    dotenv_handler_option_string_free(&got);
    if (!*value) {
        *error = format("setting '%s' contains a NUL byte", name);
        return false;
    }
    return true;
}

static bool valid_path(const char *path) {
    size_t len = strlen(path);
    if (len < 2 || len > MAX_PATH || path[0] != '/' || path[len - 1] == '/')
        return false;
    /* No '.' or '..' component. */
    for (const char *part = path; part; part = strchr(part + 1, '/')) {
        const char *start = part + 1;
        size_t n = strcspn(start, "/");
        if ((n == 1 && start[0] == '.') || (n == 2 && start[0] == '.' && start[1] == '.'))
            return false;
    }
    return true;
}

/* Reads and checks every setting. */
static bool load_settings(settings_t *s, char **error) {
    memset(s, 0, sizeof *s);
    char *force = NULL;
    bool ok = get_setting("path", &s->path, error) &&
              get_setting("key-id-variable", &s->names[ENV_KEY_ID], error) &&
              get_setting("secret-key-variable", &s->names[ENV_SECRET], error) &&
              get_setting("force", &force, error);
    if (ok && !s->path) {
        *error = format("setting 'path' is missing, e.g. path=/app/.env");
        ok = false;
    }
    if (ok && !valid_path(s->path)) {
        *error = format("setting 'path' must be an absolute path to a file inside a granted "
                        "directory, without '.' or '..', at most %d bytes, e.g. /app/.env; "
                        "got '%s'",
                        MAX_PATH, s->path);
        ok = false;
    }
    static const char *const defaults[2] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
    static const char *const setting[2] = {"key-id-variable", "secret-key-variable"};
    for (int v = 0; ok && v < 2; v++) {
        if (!s->names[v])
            s->names[v] = format("%s", defaults[v]);
        if (!env_valid_name(s->names[v])) {
            *error = format("setting '%s' must be a variable name of letters, digits and _, "
                            "not starting with a digit, e.g. %s; got '%s'",
                            setting[v], defaults[v], s->names[v]);
            ok = false;
        }
    }
    if (ok && strcmp(s->names[0], s->names[1]) == 0) {
        *error = format("settings 'key-id-variable' and 'secret-key-variable' are both '%s': "
                        "they must differ",
                        s->names[0]);
        ok = false;
    }
    if (ok && force) {
        if (strcasecmp(force, "true") == 0) {
            s->force = true;
        } else if (strcasecmp(force, "false") != 0) {
            *error = format("setting 'force' must be true or false, not '%s'", force);
            ok = false;
        }
    }
    free(force);
    if (!ok)
        settings_free(s);
    return ok;
}

/* ---- the file ------------------------------------------------------------ */

/* The file as it is now: its bytes, whether it exists, where the watched
 * variables are. */
typedef struct {
    env_buf text;
    bool exists;
    env_doc doc;
} current_file;

static void current_free(current_file *f) {
    env_buf_free(&f->text);
    env_doc_free(&f->doc);
}

/* Reads and parses the file, after checking it is a regular file the rename
 * can replace. */
static bool read_file(const settings_t *s, current_file *f, char **error) {
    char err[ERR_LEN];
    memset(f, 0, sizeof *f);
    if (!fio_check_target(s->path, err, sizeof err) ||
        !fio_read(s->path, &f->text, &f->exists, err, sizeof err)) {
        *error = format("%s", err);
        return false;
    }
    const char *names[2] = {s->names[0], s->names[1]};
    if (!env_parse(f->text.data ? f->text.data : "", f->text.len, names, &f->doc, err,
                   sizeof err)) {
        *error = format("%s is not a .env file this plugin can edit safely (%s): fix it or "
                        "point path elsewhere",
                        s->path, err);
        current_free(f);
        return false;
    }
    return true;
}

/* What keyrot said about the keys: the user's active key (NULL if none),
 * and the keys interrupted rotations may have left at the destination,
 * newest first. */
typedef struct {
    char *current;
    char **abandoned;
    size_t abandoned_count;
} expected_t;

/* Takes the key ids out of the rotation record, and frees it. */
static expected_t expected_of(rotation_t *rotation) {
    expected_t e = {0};
    if (rotation->current_key_id.is_some)
        e.current = c_string(&rotation->current_key_id.val);
    size_t n = rotation->abandoned_key_ids.len;
    if (n) {
        e.abandoned = calloc(n, sizeof *e.abandoned);
        if (!e.abandoned)
            abort();
        for (size_t i = 0; i < n; i++) {
            /* An id with a NUL byte is in no .env file: leave it out. */
            char *id = c_string(&rotation->abandoned_key_ids.ptr[i]);
            if (id)
                e.abandoned[e.abandoned_count++] = id;
        }
    }
    exports_keyrot_handler_handler_rotation_free(rotation);
    return e;
}

static void expected_free(expected_t *e) {
    free(e->current);
    for (size_t i = 0; i < e->abandoned_count; i++)
        free(e->abandoned[i]);
    free(e->abandoned);
    memset(e, 0, sizeof *e);
}

/* Whether the file's key id may be overwritten; says so when it replaces
 * a key an interrupted rotation left, warns when force replaces another. */
static bool allowed(const settings_t *s, const current_file *f, const expected_t *keys,
                    const char *context, char **error) {
    char why[ERR_LEN];
    switch (env_guard(f->text.data ? f->text.data : "", &f->doc, s->names[ENV_KEY_ID], s->path,
                      keys->current, (const char *const *)keys->abandoned,
                      keys->abandoned_count, s->force, why, sizeof why)) {
    case ENV_GUARD_REFUSED:
        *error = format("%s", why);
        return false;
    case ENV_GUARD_ABANDONED:
        log_line(INFO, context, "%s", why);
        return true;
    case ENV_GUARD_FORCED:
        log_line(WARN, context, "%s", why);
        return true;
    case ENV_GUARD_OK:
        return true;
    }
    return true;
}

static size_t count_of(const env_doc *doc, int var) {
    size_t n = 0;
    for (size_t i = 0; i < doc->count; i++)
        n += doc->found[i].var == var;
    return n;
}

/* ---- the exports --------------------------------------------------------- */

void exports_keyrot_handler_handler_describe(exports_keyrot_handler_handler_plugin_info_t *ret) {
    dotenv_handler_string_dup(&ret->name, "dotenv");
    dotenv_handler_string_dup(&ret->version, VERSION);
    dotenv_handler_string_dup(&ret->description,
                               "Writes the new key into two variables of a .env file.");
    size_t n = sizeof DECLARED / sizeof DECLARED[0];
    ret->settings.ptr = calloc(n, sizeof *ret->settings.ptr);
    if (!ret->settings.ptr)
        abort();
    ret->settings.len = n;
    for (size_t i = 0; i < n; i++) {
        dotenv_handler_string_dup(&ret->settings.ptr[i].name, DECLARED[i].name);
        dotenv_handler_string_dup(&ret->settings.ptr[i].description, DECLARED[i].description);
        ret->settings.ptr[i].required = DECLARED[i].required;
        ret->settings.ptr[i].secret = false;
    }
    /* Its one need: the directory of the file `path` names, writable. */
    memset(&ret->needs, 0, sizeof ret->needs);
    ret->needs.directories.ptr = calloc(1, sizeof *ret->needs.directories.ptr);
    if (!ret->needs.directories.ptr)
        abort();
    ret->needs.directories.len = 1;
    keyrot_handler_types_directory_need_t *dir = ret->needs.directories.ptr;
    dir->path = (string_t){NULL, 0}; /* named by the setting only */
    dir->setting.is_some = true;
    dotenv_handler_string_dup(&dir->setting.val, "path");
    dir->writable = true;
    dotenv_handler_string_dup(&dir->purpose,
                               "Rewrites the .env file in place, with a backup (or a temporary "
                               "file, for a new file) beside it");
}

bool exports_keyrot_handler_handler_preflight(rotation_t *rotation, string_t *err) {
    expected_t keys = expected_of(rotation);
    settings_t s;
    current_file f;
    char *error = NULL;
    char probe_err[ERR_LEN];
    if (!load_settings(&s, &error)) {
        expected_free(&keys);
        return fail(err, error);
    }
    bool ok = fio_probe_dir(s.path, probe_err, sizeof probe_err) &&
              fio_probe_writable(s.path, probe_err, sizeof probe_err);
    if (!ok)
        error = format("%s", probe_err);
    ok = ok && read_file(&s, &f, &error);
    if (ok) {
        const char *id = s.names[ENV_KEY_ID];
        if (!f.exists) {
            log_line(INFO, "preflight", "%s does not exist yet: it will be created with %s and %s",
                     s.path, id, s.names[ENV_SECRET]);
        } else if ((ok = allowed(&s, &f, &keys, "preflight", &error))) {
            if (count_of(&f.doc, ENV_KEY_ID) == 0)
                log_line(INFO, "preflight", "%s has no %s yet: it will be added", s.path, id);
            else
                log_line(INFO, "preflight", "%s in %s will be replaced", id, s.path);
        }
        current_free(&f);
    }
    settings_free(&s);
    expected_free(&keys);
    return ok ? true : fail(err, error);
}

/* The new key id and secret as C strings; false if either cannot be
 * written (the message never contains the secret). */
static bool new_values(const access_key_t *key, char *values[2], char **error) {
    values[ENV_KEY_ID] = c_string(&key->access_key_id);
    values[ENV_SECRET] = c_string(&key->secret_access_key);
    static const char *const what[2] = {"access key id", "secret access key"};
    for (int v = 0; v < 2; v++) {
        if (!values[v] || !env_storable(values[v])) {
            *error = format("the new %s is empty, too long or has characters other than "
                            "letters, digits and +/=._-: it cannot be written to a .env file",
                            what[v]);
            return false;
        }
    }
    return true;
}

bool exports_keyrot_handler_handler_handle(rotation_t *rotation, access_key_t *key,
                                           string_t *err) {
    expected_t keys = expected_of(rotation);
    char *values[2] = {NULL, NULL};
    char *error = NULL;
    bool ok = new_values(key, values, &error);
    wipe(key->secret_access_key.ptr, key->secret_access_key.len);
    exports_keyrot_handler_handler_access_key_free(key);

    settings_t s = {0};
    current_file f = {0};
    env_buf out = {0};
    bool added[2] = {false, false};
    char io_err[ERR_LEN];
    ok = ok && load_settings(&s, &error);
    /* Checked again: the file may have changed since preflight. */
    ok = ok && read_file(&s, &f, &error);
    ok = ok && allowed(&s, &f, &keys, "handle", &error);
    if (ok) {
        const char *names[2] = {s.names[0], s.names[1]};
        const char *vals[2] = {values[0], values[1]};
        if (!env_render(f.text.data ? f.text.data : "", f.text.len, &f.doc, names, vals, &out,
                        added)) {
            error = format("cannot edit %s: it would grow past %d bytes (or out of memory)",
                           s.path, ENV_MAX_FILE);
            ok = false;
        }
    }
    if (ok && !fio_replace(s.path, out.data, out.len, f.text.data ? f.text.data : "", f.text.len,
                           f.exists, io_err, sizeof io_err)) {
        error = format("%s", io_err);
        ok = false;
    }
    if (ok) {
        const char *id = s.names[ENV_KEY_ID], *secret = s.names[ENV_SECRET];
        size_t ids = count_of(&f.doc, ENV_KEY_ID);
        if (!f.exists)
            log_line(INFO, "handle", "created %s with %s and %s", s.path, id, secret);
        else if (added[ENV_KEY_ID] || added[ENV_SECRET])
            log_line(INFO, "handle", "updated %s: added %s%s%s", s.path,
                     added[ENV_KEY_ID] ? id : "", added[ENV_KEY_ID] && added[ENV_SECRET] ? " and " : "",
                     added[ENV_SECRET] ? secret : "");
        else
            log_line(INFO, "handle", "updated %s in place", s.path);
        if (ids > 1)
            log_line(INFO, "handle", "%s was set on %zu lines: all of them now hold the new key",
                     id, ids);
        log_line(INFO, "handle", "%s in %s now holds key %s", id, s.path, values[ENV_KEY_ID]);
    }
    env_buf_free(&out);
    current_free(&f);
    settings_free(&s);
    expected_free(&keys);
    free(values[ENV_KEY_ID]);
    free_secret(values[ENV_SECRET]);
    return ok ? true : fail(err, error);
}
