/*
 * file_io: the filesystem side, with POSIX calls only. In the sandbox
 * wasi-libc resolves absolute paths against the directories keyrot preopens
 * (`--allow-dir`); natively the same code runs the unit tests.
 *
 * An existing file is rewritten in place, so it keeps its inode: its mode,
 * owner, ACLs and hard links (WASI has no chmod or chown, so a file renamed
 * over it would get the host's umask and keyrot's user instead). The old
 * content is first written to a synced backup beside it
 * (`.NAME.keyrot-RANDOM.bak`), removed once the new content is synced; if
 * writing fails the old content is put back, and if even that fails the
 * error names the backup. A new file is created atomically: written to
 * `.NAME.keyrot-RANDOM.tmp`, synced, renamed, and the directory synced
 * (in the sandbox through wasi:filesystem itself, dir_sync.c).
 * Either way the grant must be the directory, not the file.
 *
 * Each function returns true on success, or false with a message in `err`.
 */
#ifndef KEYROT_FILE_IO_H
#define KEYROT_FILE_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "env_file.h"

/* Fails if `path` exists but is not a regular file (a symbolic link, which
 * the rename would replace, or a directory). */
bool fio_check_target(const char *path, char *err, size_t err_len);

/* Reads the whole file into `out` (at most ENV_MAX_FILE bytes); `*exists`
 * is false, and `out` empty, if it does not exist. */
bool fio_read(const char *path, env_buf *out, bool *exists, char *err, size_t err_len);

/* Proves a temporary file can be created and removed beside `path`. */
bool fio_probe_dir(const char *path, char *err, size_t err_len);

/* Proves an existing `path` can be opened for writing (without changing it). */
bool fio_probe_writable(const char *path, char *err, size_t err_len);

/* Writes `len` bytes of `data` to `path`: rewrites it in place if it
 * `existed` (its current content being `old`), else creates it atomically.
 * On failure `path` is as it was, or the error names the backup holding its
 * old content. */
bool fio_replace(const char *path, const char *data, size_t len, const char *old,
                 size_t old_len, bool existed, char *err, size_t err_len);

#endif
