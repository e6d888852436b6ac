/*
 * dir_sync: sync a directory through wasi:filesystem directly (component
 * builds only). WASI preview1's fd_sync, which wasi-libc's fsync uses
 * through wasmtime's adapter, refuses a directory (EBADF).
 */
#ifndef KEYROT_DIR_SYNC_H
#define KEYROT_DIR_SYNC_H

/* Syncs the directory `dir` (an absolute sandbox path under a preopened
 * directory). Returns 0, or an errno. */
int dir_sync(const char *dir);

#endif
