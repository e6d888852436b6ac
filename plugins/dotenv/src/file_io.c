/*
 * file_io: read, probe and atomically replace the .env file. See file_io.h.
 */
#define _DEFAULT_SOURCE /* getentropy on glibc, for the native tests */

#include "file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef __wasi__
#include "dir_sync.h"
#endif

/* `path` is absolute with a file name (the settings check it): its
 * directory is everything before the last '/', or "/". */
static void dir_of(const char *path, char *dir, size_t dir_len) {
    const char *slash = strrchr(path, '/');
    size_t n = slash && slash != path ? (size_t)(slash - path) : 1;
    snprintf(dir, dir_len, "%.*s", (int)n, path);
}

static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

bool fio_check_target(const char *path, char *err, size_t err_len) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return true;
        snprintf(err, err_len, "cannot inspect %s: %s", path, strerror(errno));
        return false;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(err, err_len,
                 "%s is a symbolic link, which replacing the file would break: set path to the "
                 "file it points to, inside a granted directory",
                 path);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "%s is not a regular file", path);
        return false;
    }
    return true;
}

bool fio_read(const char *path, env_buf *out, bool *exists, char *err, size_t err_len) {
    *exists = false;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            return true;
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    *exists = true;
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            memset(chunk, 0, sizeof chunk);
            close(fd);
            return true;
        }
        if (!env_buf_add(out, chunk, (size_t)n)) {
            snprintf(err, err_len, "cannot read %s: larger than %d bytes (or out of memory)",
                     path, ENV_MAX_FILE);
            break;
        }
    }
    memset(chunk, 0, sizeof chunk);
    close(fd);
    env_buf_free(out);
    return false;
}

/* Creates `.NAME.keyrot-RANDOM.SUFFIX` beside `path`, never reusing an
 * existing name. Returns the open descriptor, its name in `temp`, or -1. */
static int create_temp(const char *path, const char *suffix, char *temp, size_t temp_len,
                       char *err, size_t err_len) {
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
    int last = 0;
    /* A few tries: a clash with a leftover name is unlikely, not impossible. */
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t rnd = 0;
        if (getentropy(&rnd, sizeof rnd) != 0)
            rnd = (uint64_t)time(NULL) ^ ((uint64_t)attempt << 32);
        int n = snprintf(temp, temp_len, "%s%s.%s.keyrot-%016llx.%s", dir, sep, base_of(path),
                         (unsigned long long)rnd, suffix);
        if (n < 0 || (size_t)n >= temp_len) {
            snprintf(err, err_len, "the path %s is too long", path);
            return -1;
        }
        int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd >= 0)
            return fd;
        last = errno;
        if (errno != EEXIST)
            break;
    }
    snprintf(err, err_len, "cannot create a file in %s (%s): the directory must be writable", dir,
             strerror(last));
    return -1;
}

bool fio_probe_dir(const char *path, char *err, size_t err_len) {
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
#ifdef ENOTCAPABLE
        /* wasi-libc's answer for a path under no preopened directory. */
        if (e == ENOTCAPABLE)
            e = ENOENT;
#endif
        if (e == ENOENT || e == ENOTDIR)
            snprintf(err, err_len,
                     "directory %s not found in the sandbox: grant it with --allow-dir "
                     "HOST_DIR:%s (and make sure HOST_DIR exists)",
                     dir, dir);
        else
            snprintf(err, err_len, "cannot open directory %s (%s): is it granted with --allow-dir?",
                     dir, strerror(e));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "%s is not a directory", dir);
        return false;
    }
    char probe[4096 + 64];
    int fd = create_temp(path, "probe", probe, sizeof probe, err, err_len);
    if (fd < 0)
        return false;
    close(fd);
    if (unlink(probe) != 0) {
        snprintf(err, err_len, "cannot remove probe file %s: %s", probe, strerror(errno));
        return false;
    }
    return true;
}

bool fio_probe_writable(const char *path, char *err, size_t err_len) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        close(fd);
        return true;
    }
    if (errno == ENOENT)
        return true;
    snprintf(err, err_len, "cannot write %s (%s)", path, strerror(errno));
    return false;
}

/* Syncs the directory holding `path`, so a rename or unlink in it is on
 * disk. Returns 0 or an errno. In the sandbox through wasi:filesystem
 * itself (dir_sync.c): WASI preview1's fd_sync, which fsync uses there,
 * refuses a directory. */
static int sync_dir(const char *path) {
    char dir[4096];
    dir_of(path, dir, sizeof dir);
#ifdef __wasi__
    return dir_sync(dir);
#else
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return errno;
    int e = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return e;
#endif
}

/* Writes all of `data` at the current offset. Returns 0 or an errno. */
static int write_all(int fd, const char *data, size_t len) {
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Puts `data` at the start of `fd`, cuts what follows, syncs. 0 or errno. */
static int overwrite(int fd, const char *data, size_t len) {
    if (lseek(fd, 0, SEEK_SET) < 0)
        return errno;
    int e = write_all(fd, data, len);
    if (!e && ftruncate(fd, (off_t)len) != 0)
        e = errno;
    if (!e && fsync(fd) != 0)
        e = errno;
    return e;
}

/* A new file: temporary file, sync, rename, directory sync. */
static bool create_file(const char *path, const char *data, size_t len, char *err,
                        size_t err_len) {
    char temp[4096 + 64];
    int fd = create_temp(path, "tmp", temp, sizeof temp, err, err_len);
    if (fd < 0)
        return false;
    int failed = write_all(fd, data, len);
    if (!failed && fsync(fd) != 0)
        failed = errno;
    /* Closed before the rename: some hosts cannot rename an open file. */
    if (close(fd) != 0 && !failed)
        failed = errno;
    if (!failed && rename(temp, path) != 0)
        failed = errno;
    if (failed) {
        unlink(temp); /* best effort: the error that matters is `failed` */
        snprintf(err, err_len, "cannot replace %s: %s", path, strerror(failed));
        return false;
    }
    /* Durability only: the file is in place, and failing now would make
     * keyrot delete a key the file already holds. */
    (void)sync_dir(path);
    return true;
}

/* An existing file, rewritten in place (same inode: mode, owner, ACLs and
 * hard links stay), with a synced backup of `old` beside it meanwhile. */
static bool rewrite_file(const char *path, const char *data, size_t len, const char *old,
                         size_t old_len, char *err, size_t err_len) {
    char backup[4096 + 64];
    int bfd = create_temp(path, "bak", backup, sizeof backup, err, err_len);
    if (bfd < 0)
        return false;
    int failed = write_all(bfd, old, old_len);
    if (!failed && fsync(bfd) != 0)
        failed = errno;
    if (close(bfd) != 0 && !failed)
        failed = errno;
    if (!failed)
        failed = sync_dir(path);
    if (failed) {
        unlink(backup);
        snprintf(err, err_len, "cannot back up %s before rewriting it: %s", path,
                 strerror(failed));
        return false;
    }
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        failed = errno;
        unlink(backup);
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(failed));
        return false;
    }
    failed = overwrite(fd, data, len);
    if (failed) {
        bool restored = overwrite(fd, old, old_len) == 0;
        close(fd);
        if (restored) {
            unlink(backup);
            snprintf(err, err_len, "cannot replace %s: %s; it holds its previous content again",
                     path, strerror(failed));
        } else {
            snprintf(err, err_len, "cannot replace %s: %s; its previous content is in %s", path,
                     strerror(failed), backup);
        }
        return false;
    }
    close(fd);
    /* The new content is synced: the backup has done its job. */
    unlink(backup);
    (void)sync_dir(path);
    return true;
}

bool fio_replace(const char *path, const char *data, size_t len, const char *old,
                 size_t old_len, bool existed, char *err, size_t err_len) {
    return existed ? rewrite_file(path, data, len, old, old_len, err, err_len)
                   : create_file(path, data, len, err, err_len);
}
