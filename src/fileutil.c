/* General file helpers (include/djct/fileutil.h) and their internal forms (src/util_int.h):
 * mkdir -p, rm -rf, whole-file reads, and atomic replacement of a file's content through a
 * temporary file in the same directory renamed into place, durable (fsync'ed) when asked. */
#include "djct/fileutil.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int djct_mkdirs(const char *path)
{
    DJCT_CHECK_ARG(path);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return djct_error_set(DJCT_EINVAL, "path too long: '%s'", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return djct_error_set(DJCT_EIO, "cannot create directory '%s': %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return djct_error_set(DJCT_EIO, "cannot create directory '%s': %s", tmp, strerror(errno));
    return 0;
}

int djct_fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return djct_error_set(DJCT_EIO, "cannot open '%s' for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc && e != EINVAL) /* some filesystems cannot fsync directories */
        return djct_error_set(DJCT_EIO, "fsync '%s' failed: %s", path, strerror(e));
    return 0;
}

int djct_remove_tree(const char *path)
{
    DJCT_CHECK_ARG(path);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : (unlink(path) ? djct_error_set(DJCT_EIO, "cannot remove '%s': %s", path,
                                                                        strerror(errno))
                                                   : 0);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && rc == 0) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = djct_path_join(path, e->d_name);
        if (!p) {
            rc = djct_error_oom();
            break;
        }
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rc = djct_remove_tree(p);
        else if (unlink(p) && errno != ENOENT)
            rc = djct_error_set(DJCT_EIO, "cannot remove '%s': %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) && errno != ENOENT)
        rc = djct_error_set(DJCT_EIO, "cannot remove directory '%s': %s", path, strerror(errno));
    return rc;
}

int djct_read_whole(void **data, size_t *len, const char *path, size_t max_bytes, int missing_ok)
{
    *data = NULL;
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (missing_ok && errno == ENOENT)
            return 1;
        return djct_error_set(DJCT_EIO, "cannot open '%s': %s", path, strerror(errno));
    }
    /* the size is a hint (it may change while reading, or be 0 for a pipe): read until EOF */
    struct stat st;
    size_t cap = fstat(fileno(f), &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *buf = NULL;
    int rc = 0;
    for (;;) {
        if (max_bytes && n > max_bytes) {
            rc = djct_error_set(DJCT_EIO, "'%s' is larger than %zu bytes", path, max_bytes);
            break;
        }
        if (!buf || n + 1 >= cap) {
            size_t nc = buf ? cap * 2 : cap;
            char *nb = realloc(buf, nc);
            if (!nb) {
                rc = djct_error_oom();
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = djct_error_set(DJCT_EIO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    if (len)
        *len = n;
    return 0;
}

int djct_read_file(void **data, size_t *len, const char *path)
{
    DJCT_CHECK_ARG(data);
    DJCT_CHECK_ARG(path);
    return djct_read_whole(data, len, path, 0, 0);
}

int djct_write_atomic(const char *path, const void *data, size_t len, int durable)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return djct_error_oom();
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = djct_error_set(DJCT_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = djct_error_set(DJCT_EIO, "write to '%s' failed: %s; is the disk full?", tmp, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && durable && fsync(fd))
        rc = djct_error_set(DJCT_EIO, "fsync '%s' failed: %s", tmp, strerror(errno));
    if (close(fd) && rc == 0)
        rc = djct_error_set(DJCT_EIO, "write to '%s' failed: %s; is the disk full?", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path))
        rc = djct_error_set(DJCT_EIO, "rename '%s' -> '%s' failed: %s", tmp, path, strerror(errno));
    if (rc) {
        unlink(tmp);
        goto out;
    }
    if (durable) {
        char *slash = strrchr(tmp, '/');
        if (slash && slash != tmp) {
            *slash = '\0';
            rc = djct_fsync_path(tmp, 1);
        } else if (!slash) {
            rc = djct_fsync_path(".", 1);
        }
    }
out:
    free(tmp);
    return rc;
}

int djct_write_file_atomic(const char *path, const void *data, size_t len)
{
    DJCT_CHECK_ARG(path);
    DJCT_CHECK_ARG(data || len == 0);
    return djct_write_atomic(path, data, len, 1);
}
