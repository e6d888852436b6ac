/*
 * env_file: parse a .env file and edit two of its variables in place.
 * See env_file.h for the syntax understood.
 */
#include "env_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 128
#define MAX_VALUE 1024

/* ---- buffer ------------------------------------------------------------ */

static void wipe(char *data, size_t n) {
    volatile char *p = data;
    for (size_t i = 0; i < n; i++)
        p[i] = 0;
}

bool env_buf_add(env_buf *buf, const char *bytes, size_t n) {
    if (n > ENV_MAX_FILE || buf->len > ENV_MAX_FILE - n)
        return false;
    size_t need = buf->len + n;
    if (need > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < need)
            cap *= 2; /* stays below 4 * ENV_MAX_FILE: no overflow */
        /* Not realloc: the old block may hold a secret and must be wiped. */
        char *data = malloc(cap);
        if (!data)
            return false;
        if (buf->data) {
            memcpy(data, buf->data, buf->len);
            wipe(buf->data, buf->cap);
            free(buf->data);
        }
        buf->data = data;
        buf->cap = cap;
    }
    if (n > 0)
        memcpy(buf->data + buf->len, bytes, n);
    buf->len = need;
    return true;
}

void env_buf_free(env_buf *buf) {
    if (buf->data) {
        wipe(buf->data, buf->cap);
        free(buf->data);
    }
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

/* ---- names, values, masks ------------------------------------------------ */

static bool is_alpha(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool env_valid_name(const char *name) {
    size_t len = strlen(name);
    if (len == 0 || len > MAX_NAME || !is_alpha(name[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_alpha(name[i]) && !is_digit(name[i]))
            return false;
    return true;
}

bool env_storable(const char *value) {
    size_t len = strlen(value);
    if (len == 0 || len > MAX_VALUE)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        if (!is_alpha(c) && !is_digit(c) && !strchr("+/=.-", c))
            return false;
    }
    return true;
}

/* Appends id (sanitized) to out, either whole (at most 128 bytes) or masked. */
static void show_id(const char *id, size_t len, bool whole, char *out, size_t out_len) {
    static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026 */
    char shown[128 + sizeof ellipsis];
    size_t n = 0;
    if (whole || len <= 8) {
        for (size_t i = 0; i < len && i < 128; i++)
            shown[n++] = id[i];
    } else {
        for (size_t i = 0; i < 4; i++)
            shown[n++] = id[i];
        memcpy(shown + n, ellipsis, 3);
        n += 3;
        for (size_t i = len - 4; i < len; i++)
            shown[n++] = id[i];
    }
    /* Anything but printable ASCII (outside the ellipsis) becomes '?'. */
    for (size_t i = 0; i < n; i++) {
        bool in_ellipsis = !whole && len > 8 && i >= 4 && i < 7;
        unsigned char c = (unsigned char)shown[i];
        if (!in_ellipsis && (c < 0x20 || c > 0x7e))
            shown[i] = '?';
    }
    snprintf(out, out_len, "%.*s", (int)n, shown);
}

void env_mask(const char *id, size_t len, char *out, size_t out_len) {
    show_id(id, len, false, out, out_len);
}

/* ---- parsing ------------------------------------------------------------- */

/* Offset of the end of the line starting at `at` (before its \r\n or \n). */
static size_t line_content_end(const char *text, size_t len, size_t at) {
    const char *nl = memchr(text + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - text) : len;
    if (nl && end > at && text[end - 1] == '\r')
        end--;
    return end;
}

/* Offset just past the line ending of the line starting at `at`. */
static size_t line_next(const char *text, size_t len, size_t at) {
    const char *nl = memchr(text + at, '\n', len - at);
    return nl ? (size_t)(nl - text) + 1 : len;
}

/*
 * Finds the closing `quote` from `at` (just past the opening one), across
 * lines. In "..." a backslash escapes the next byte. Returns its offset, or
 * `len` if it is never closed.
 */
static size_t closing_quote(const char *text, size_t len, size_t at, char quote) {
    for (size_t i = at; i < len; i++) {
        if (quote == '"' && text[i] == '\\') {
            i++; /* skip the escaped byte (the loop bound rechecks) */
            continue;
        }
        if (text[i] == quote)
            return i;
    }
    return len;
}

static bool push(env_doc *doc, const env_assignment *a) {
    /* Bounded by the number of lines, itself bounded by ENV_MAX_FILE. */
    env_assignment *found = realloc(doc->found, (doc->count + 1) * sizeof *found);
    if (!found)
        return false;
    doc->found = found;
    doc->found[doc->count++] = *a;
    return true;
}

bool env_parse(const char *text, size_t len, const char *const names[2], env_doc *doc,
               char *err, size_t err_len) {
    memset(doc, 0, sizeof *doc);
    doc->ends_in_newline = len == 0 || text[len - 1] == '\n';
    if (len > ENV_MAX_FILE) {
        snprintf(err, err_len, "it is larger than %d bytes", ENV_MAX_FILE);
        return false;
    }
    if (memchr(text, '\0', len)) {
        snprintf(err, err_len, "it contains a NUL byte: not a text file");
        return false;
    }
    size_t first_end = line_content_end(text, len, 0);
    doc->crlf = first_end < len && text[first_end] == '\r';

    size_t at = 0;
    for (size_t line = 1; at < len; line++) {
        size_t end = line_content_end(text, len, at);
        size_t i = at;
        while (i < end && is_blank(text[i]))
            i++;
        bool exported = false;
        if (end - i > 6 && memcmp(text + i, "export", 6) == 0 && is_blank(text[i + 6])) {
            exported = true;
            i += 6;
            while (i < end && is_blank(text[i]))
                i++;
        }
        size_t name_start = i;
        while (i < end && (is_alpha(text[i]) || is_digit(text[i]) || text[i] == '.' ||
                           text[i] == '-'))
            i++;
        size_t name_end = i;
        while (i < end && is_blank(text[i]))
            i++;
        bool assignment = name_end > name_start && i < end && text[i] == '=';
        if (!assignment) {
            /* A comment, a blank line, or a line no parser sets anything with. */
            at = line_next(text, len, at);
            continue;
        }
        size_t eq = i++;
        while (i < end && is_blank(text[i]))
            i++;

        int var = -1;
        for (int v = 0; v < 2; v++) {
            size_t n = strlen(names[v]);
            if (name_end - name_start == n && memcmp(text + name_start, names[v], n) == 0)
                var = v;
        }
        doc->assignments++;
        if (exported)
            doc->exported++;

        env_assignment a = {.var = var, .line = line, .exported = exported};
        char q = i < end ? text[i] : 0;
        if (q == '\'' || q == '"' || q == '`') {
            size_t close = closing_quote(text, len, i + 1, q);
            if (close == len) {
                snprintf(err, err_len, "the quoted value on line %zu is never closed", line);
                return false;
            }
            a.quote = q;
            a.value_start = i + 1;
            a.value_end = close;
            if (close > end) {
                if (var >= 0) {
                    snprintf(err, err_len,
                             "the value of %s on line %zu spans several lines, which no "
                             "key does",
                             names[var], line);
                    return false;
                }
                /* Skip the other variable's multi-line value. */
                while (line_next(text, len, at) <= close) {
                    at = line_next(text, len, at);
                    line++;
                }
            }
        } else {
            /* Unquoted: up to an inline comment (a blank, then '#'), trimmed. */
            size_t v_end = i;
            while (v_end < end && !(text[v_end] == '#' && is_blank(text[v_end - 1])))
                v_end++;
            while (v_end > i && is_blank(text[v_end - 1]))
                v_end--;
            /* An empty value is filled in right after the '=', so
             * `NAME=  # note` becomes `NAME=VALUE  # note`. */
            a.value_start = v_end > i ? i : eq + 1;
            a.value_end = v_end > i ? v_end : eq + 1;
        }
        at = line_next(text, len, at);
        a.line_end = at;
        if (var >= 0 && !push(doc, &a)) {
            snprintf(err, err_len, "out of memory");
            return false;
        }
    }
    return true;
}

void env_doc_free(env_doc *doc) {
    free(doc->found);
    memset(doc, 0, sizeof *doc);
}

/* ---- rendering ----------------------------------------------------------- */

/* The last assignment of `var`, or NULL. */
static const env_assignment *last_of(const env_doc *doc, int var) {
    const env_assignment *last = NULL;
    for (size_t i = 0; i < doc->count; i++)
        if (doc->found[i].var == var)
            last = &doc->found[i];
    return last;
}

/* A new line `[export ]NAME=VALUE` styled like `like` (or the file). */
static bool add_line(env_buf *out, const env_doc *doc, const env_assignment *like,
                     const char *name, const char *value) {
    bool exported = like ? like->exported
                         : doc->assignments > 0 && doc->exported == doc->assignments;
    char quote = like ? like->quote : 0;
    const char *nl = doc->crlf ? "\r\n" : "\n";
    return (!exported || env_buf_add(out, "export ", 7)) &&
           env_buf_add(out, name, strlen(name)) && env_buf_add(out, "=", 1) &&
           (!quote || env_buf_add(out, &quote, 1)) && env_buf_add(out, value, strlen(value)) &&
           (!quote || env_buf_add(out, &quote, 1)) && env_buf_add(out, nl, strlen(nl));
}

bool env_render(const char *text, size_t len, const env_doc *doc, const char *const names[2],
                const char *const values[2], env_buf *out, bool added[2]) {
    const env_assignment *last[2] = {last_of(doc, ENV_KEY_ID), last_of(doc, ENV_SECRET)};
    const char *nl = doc->crlf ? "\r\n" : "\n";
    added[0] = added[1] = false;
    size_t copied = 0;
    for (size_t i = 0; i < doc->count; i++) {
        const env_assignment *a = &doc->found[i];
        /* Everything up to the old value, then the new value. */
        if (!env_buf_add(out, text + copied, a->value_start - copied) ||
            !env_buf_add(out, values[a->var], strlen(values[a->var])))
            return false;
        copied = a->value_end;
        /* The missing variable goes right after the other one's last line. */
        int other = 1 - a->var;
        if (a == last[a->var] && !last[other]) {
            if (!env_buf_add(out, text + copied, a->line_end - copied))
                return false;
            copied = a->line_end;
            if (a->line_end == len && !doc->ends_in_newline && !env_buf_add(out, nl, strlen(nl)))
                return false;
            if (!add_line(out, doc, a, names[other], values[other]))
                return false;
            added[other] = true;
        }
    }
    if (!env_buf_add(out, text + copied, len - copied))
        return false;
    if (!last[0] && !last[1]) {
        if (len > 0 && !doc->ends_in_newline && !env_buf_add(out, nl, strlen(nl)))
            return false;
        for (int v = 0; v < 2; v++) {
            if (!add_line(out, doc, NULL, names[v], values[v]))
                return false;
            added[v] = true;
        }
    }
    return true;
}

/* ---- the guard ----------------------------------------------------------- */

/* Whether the assignment's value is exactly `id`. */
static bool holds(const char *text, const env_assignment *a, const char *id) {
    size_t n = a->value_end - a->value_start;
    return id && strlen(id) == n && memcmp(text + a->value_start, id, n) == 0;
}

/* Whether the assignment's value is one of the `count` ids. */
static bool holds_any(const char *text, const env_assignment *a, const char *const *ids,
                      size_t count) {
    for (size_t i = 0; i < count; i++)
        if (holds(text, a, ids[i]))
            return true;
    return false;
}

/* The key ids a refusal may name: the one the file holds, the current one
 * (NULL if none) and the abandoned ones. */
typedef struct {
    const char *held;
    size_t held_len;
    const char *current;
    const char *const *abandoned;
    size_t abandoned_count;
} named_ids;

/* The k-th of them (0: held, 1: current, then the abandoned), or NULL. */
static const char *named_id(const named_ids *n, size_t k, size_t *len) {
    const char *id = k == 0 ? n->held : k == 1 ? n->current : n->abandoned[k - 2];
    *len = k == 0 ? n->held_len : id ? strlen(id) : 0;
    return id;
}

/* Whether the masks of two different ids collide: "holds X, not X" would
 * hide which is which, so the message then shows every id whole. */
static bool masks_clash(const named_ids *n) {
    size_t count = 2 + n->abandoned_count;
    for (size_t k = 0; k < count; k++) {
        size_t k_len, j_len;
        const char *k_id = named_id(n, k, &k_len);
        if (!k_id)
            continue;
        char k_mask[160];
        show_id(k_id, k_len, false, k_mask, sizeof k_mask);
        for (size_t j = k + 1; j < count; j++) {
            const char *j_id = named_id(n, j, &j_len);
            if (!j_id)
                continue;
            char j_mask[160];
            show_id(j_id, j_len, false, j_mask, sizeof j_mask);
            if (strcmp(k_mask, j_mask) == 0 &&
                (k_len != j_len || memcmp(k_id, j_id, k_len) != 0))
                return true;
        }
    }
    return false;
}

env_verdict env_guard(const char *text, const env_doc *doc, const char *var_name,
                      const char *path, const char *current, const char *const *abandoned,
                      size_t abandoned_count, bool force, char *why, size_t why_len) {
    why[0] = '\0';
    const env_assignment *other = NULL, *left = NULL;
    for (size_t i = 0; i < doc->count && !other; i++) {
        const env_assignment *a = &doc->found[i];
        if (a->var != ENV_KEY_ID || a->value_end == a->value_start)
            continue; /* an empty value holds no key */
        if (holds(text, a, current))
            continue;
        if (holds_any(text, a, abandoned, abandoned_count)) {
            if (!left)
                left = a;
            continue;
        }
        other = a;
    }
    const env_assignment *shown = other ? other : left;
    if (!shown)
        return ENV_GUARD_OK;

    named_ids named = {text + shown->value_start, shown->value_end - shown->value_start,
                       current, abandoned, abandoned_count};
    bool clash = masks_clash(&named);
    char held_shown[160], current_shown[160] = "";
    show_id(named.held, named.held_len, clash, held_shown, sizeof held_shown);
    if (current)
        show_id(current, strlen(current), clash, current_shown, sizeof current_shown);
    /* The abandoned keys, "A, B" (cut short if there were ever very many). */
    char left_shown[1024] = "";
    for (size_t i = 0, used = 0; i < abandoned_count; i++) {
        char one[160];
        show_id(abandoned[i], strlen(abandoned[i]), clash, one, sizeof one);
        int n = snprintf(left_shown + used, sizeof left_shown - used, "%s%s", i ? ", " : "", one);
        if (n < 0 || (size_t)n >= sizeof left_shown - used)
            break;
        used += (size_t)n;
    }
    char left_phrase[1200];
    if (abandoned_count == 1)
        snprintf(left_phrase, sizeof left_phrase, "the one an interrupted rotation left (%s)",
                 left_shown);
    else
        snprintf(left_phrase, sizeof left_phrase,
                 "any of the %zu keys interrupted rotations left (%s)", abandoned_count,
                 left_shown);

    char sets[2048];
    snprintf(sets, sizeof sets, "%s sets %s to key %s (line %zu)", path, var_name, held_shown,
             shown->line);
    if (!other) {
        snprintf(why, why_len,
                 "%s, which an interrupted rotation left there and keyrot has deleted since; "
                 "replacing it",
                 sets);
        return ENV_GUARD_ABANDONED;
    }
    if (force) {
        snprintf(why, why_len, "%s, not the key being rotated; replacing it (force=true)", sets);
        return ENV_GUARD_FORCED;
    }
    char not_expected[1536];
    if (current && abandoned_count)
        snprintf(not_expected, sizeof not_expected, "neither the key being rotated (%s) nor %s",
                 current_shown, left_phrase);
    else if (current)
        snprintf(not_expected, sizeof not_expected, "not the key being rotated (%s)",
                 current_shown);
    else if (abandoned_count)
        snprintf(not_expected, sizeof not_expected,
                 "not %s, and the user has no active key being rotated", left_phrase);
    else
        snprintf(not_expected, sizeof not_expected,
                 "and the user has no active key being rotated");
    snprintf(why, why_len,
             "%s, %s: refusing to overwrite it; pass --config force=true to replace it anyway",
             sets, not_expected);
    return ENV_GUARD_REFUSED;
}
