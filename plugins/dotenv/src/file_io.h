/*
 * file_io: the filesystem side, with POSIX calls only. In the sandbox
 * wasi-libc resolves absolute paths against the directories keyrot preopens
 * (`--allow-dir`); natively the same code runs the unit tests.
 *
 * The file is replaced atomically: the new content goes to a temporary file
 * beside it (`.NAME.keyrot-RANDOM.tmp`), is synced, and is renamed over the
 * target, so a reader (or a crash) sees the old file or the new one, never
 * half of either. That is why the grant must be the directory, not the file.
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

/* Atomically replaces (or creates) `path` with `len` bytes of `data`. On
 * failure the temporary file is removed and `path` is as it was. */
bool fio_replace(const char *path, const char *data, size_t len, char *err, size_t err_len);

#endif
