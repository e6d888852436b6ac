/*
 * env_file: parse a .env file and edit two of its variables in place.
 *
 * Pure (no I/O, no WIT), so it is unit-tested natively, under the address
 * and undefined-behaviour sanitizers (tests/env_file_test.c).
 *
 * The syntax is the common one of python-dotenv, Docker Compose and Node's
 * dotenv: `[export ]NAME=VALUE` lines, `#` comment lines, blank lines.
 * VALUE is unquoted (up to an inline ` #` comment), or quoted with ', " or `
 * (a quoted value may span lines; in "..." a backslash escapes the next
 * character). Every byte of every other line is kept.
 */
#ifndef KEYROT_ENV_FILE_H
#define KEYROT_ENV_FILE_H

#include <stdbool.h>
#include <stddef.h>

/* Longest file the plugin reads or writes: a .env file is small. */
#define ENV_MAX_FILE (1024 * 1024)

/* A growable byte buffer. Zeroed before it is freed: it may hold a secret. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} env_buf;

/* Appends `n` bytes; false if out of memory or past ENV_MAX_FILE. */
bool env_buf_add(env_buf *buf, const char *bytes, size_t n);
/* Wipes and frees the buffer, leaving it empty. */
void env_buf_free(env_buf *buf);

/* Which watched variable an assignment sets. */
enum { ENV_KEY_ID = 0, ENV_SECRET = 1 };

/* One line assigning a watched variable. */
typedef struct {
    int var;            /* ENV_KEY_ID or ENV_SECRET */
    size_t line;        /* 1-based line number */
    size_t value_start; /* the value's bytes, inside any quotes: */
    size_t value_end;   /*   text[value_start..value_end) */
    size_t line_end;    /* offset just past the line's ending (or end of text) */
    char quote;         /* '\'', '"', '`' or 0 when unquoted */
    bool exported;      /* the line starts with `export ` */
} env_assignment;

/* A parsed file: where the watched variables are, and its style. */
typedef struct {
    env_assignment *found; /* in file order */
    size_t count;
    size_t assignments;    /* assignments of any variable */
    size_t exported;       /* ... of which with `export ` */
    bool crlf;             /* the first line ends in \r\n */
    bool ends_in_newline;  /* the text is empty or ends in a line ending */
} env_doc;

/*
 * Parses `text` (len bytes), finding every assignment of `names[ENV_KEY_ID]`
 * and `names[ENV_SECRET]`. Returns false with a message in `err` (never
 * quoting a value) if the text has a NUL byte, a quoted value that is never
 * closed, or a watched variable whose value spans lines. Free with
 * env_doc_free, also after a failure.
 */
bool env_parse(const char *text, size_t len, const char *const names[2], env_doc *doc,
               char *err, size_t err_len);
void env_doc_free(env_doc *doc);

/*
 * The text with `values[ENV_KEY_ID]` and `values[ENV_SECRET]` put in place:
 * each assignment of a watched variable gets the new value between its
 * existing quotes; a variable with no assignment is added after the other
 * one's last line, or at the end of the file, in the file's style. `added`
 * says which were added. False only if out of memory.
 */
bool env_render(const char *text, size_t len, const env_doc *doc, const char *const names[2],
                const char *const values[2], env_buf *out, bool added[2]);

/* Whether `name` is a variable name: [A-Za-z_][A-Za-z0-9_]*, at most 128. */
bool env_valid_name(const char *name);

/*
 * Whether `value` can be written into any line, quoted or not, and read
 * back unchanged: non-empty, at most 1024 bytes of [A-Za-z0-9+/=._-]
 * (every AWS key id and secret is).
 */
bool env_storable(const char *value);

/* What the guard decided; only ENV_GUARD_REFUSED is false. */
typedef enum {
    ENV_GUARD_REFUSED = 0, /* another key: `why` says which, and how to force */
    ENV_GUARD_OK,          /* no key id, or only `current`: `why` is empty */
    ENV_GUARD_ABANDONED,   /* an `abandoned` key (and maybe `current`): `why` says so */
    ENV_GUARD_FORCED,      /* another key, and `force`: `why` says what goes */
} env_verdict;

/*
 * Whether the key-id assignments allow writing: the file holds no key id,
 * or only `current` (the user's active key, NULL when there is none) and
 * the `abandoned_count` keys of `abandoned` (keys interrupted rotations may
 * have left, which keyrot has deleted, newest first; none NULL). Any other
 * key is refused, unless `force`, with the reason in `why` (key ids
 * masked). `why` also says what is replaced when an abandoned key or (with
 * `force`) another key is, for the log.
 */
env_verdict env_guard(const char *text, const env_doc *doc, const char *var_name,
                      const char *path, const char *current, const char *const *abandoned,
                      size_t abandoned_count, bool force, char *why, size_t why_len);

/*
 * Writes a key id shortened for messages into out (at least 16 bytes): its
 * first and last four characters, or all of it if 8 or fewer. Bytes other
 * than printable ASCII show as '?', so the result is always valid UTF-8.
 */
void env_mask(const char *id, size_t len, char *out, size_t out_len);

#endif
