/* The djcdata reader's byte source: a cursor over a memory image or a FILE that checks every read
 * against the bytes that remain, so a hostile size ends in "file 'X': byte N: <where>: <what>"
 * and never in a huge allocation; the little-endian scalars, version floats and strings of the
 * format (djcdata.md section 2). */
#include "djct/error.h"
#include "djct/qlz.h"
#include "djct_int.h"
#include "djcdata_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int err_va(const char *name, uint64_t off, const char *where, const char *fmt, va_list ap)
{
    char msg[700];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    return djct_error_set(DJCT_EINVAL, "file '%s': byte %" PRIu64 ": %s: %s", name, off, where, msg);
}

int djcdata_src_err(src_t *s, uint64_t off, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = err_va(s->name, off, where, fmt, ap);
    va_end(ap);
    return rc;
}

int djcdata_err_at(const char *name, uint64_t off, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = err_va(name, off, where, fmt, ap);
    va_end(ap);
    return rc;
}

void djcdata_chunk_where(char w[200], const char *block_where, unsigned i)
{
    snprintf(w, 200, "%s chunk %u", block_where, i);
}

/* copy n bytes at the cursor into dst; "truncated" error naming the field when they are missing */
int djcdata_src_read(src_t *s, void *dst, size_t n, const char *where, const char *field)
{
    if (djcdata_src_left(s) < n)
        return djcdata_src_err(s, s->pos, where, "%s needs %zu bytes, only %" PRIu64 " left (file truncated?)", field,
                       n, djcdata_src_left(s));
    if (s->mem) {
        memcpy(dst, s->mem + s->pos, n);
    } else if (fread(dst, 1, n, s->fp) != n) {
        return djct_error_set(DJCT_EIO, "file '%s': byte %" PRIu64 ": read error: %s", s->name, s->pos,
                              strerror(errno));
    }
    s->pos += n;
    return 0;
}

/* a pointer to the next n bytes (memory: in place; file: into s->tmp), advancing the cursor */
int djcdata_src_view(src_t *s, const unsigned char **p, size_t n, const char *where, const char *field)
{
    if (djcdata_src_left(s) < n)
        return djcdata_src_err(s, s->pos, where, "%s needs %zu bytes, only %" PRIu64 " left (file truncated?)", field,
                       n, djcdata_src_left(s));
    if (s->mem) {
        *p = s->mem + s->pos;
        s->pos += n;
        return 0;
    }
    if (n > s->tmpcap) {
        unsigned char *t = realloc(s->tmp, n);
        if (!t)
            return djct_error_oom();
        s->tmp = t;
        s->tmpcap = n;
    }
    *p = s->tmp;
    return djcdata_src_read(s, s->tmp, n, where, field);
}

int djcdata_src_seek(src_t *s, uint64_t pos)
{
    if (pos > s->size)
        return djcdata_src_err(s, s->pos, "seek", "position %" PRIu64 " past the end", pos);
    if (!s->mem && fseeko(s->fp, (off_t)pos, SEEK_SET) != 0)
        return djct_error_set(DJCT_EIO, "file '%s': seek to byte %" PRIu64 " failed: %s", s->name, pos,
                              strerror(errno));
    s->pos = pos;
    return 0;
}

int djcdata_rd_u8(src_t *s, unsigned *v, const char *where, const char *field)
{
    unsigned char b;
    int rc = djcdata_src_read(s, &b, 1, where, field);
    *v = b;
    return rc;
}
int djcdata_rd_u32(src_t *s, uint32_t *v, const char *where, const char *field)
{
    unsigned char b[4];
    int rc = djcdata_src_read(s, b, 4, where, field);
    *v = rc ? 0 : le32(b);
    return rc;
}
int djcdata_rd_u64(src_t *s, uint64_t *v, const char *where, const char *field)
{
    unsigned char b[8];
    int rc = djcdata_src_read(s, b, 8, where, field);
    *v = rc ? 0 : le64(b);
    return rc;
}

/* a version float: exactly 2.0f or 2.1f; *is21 tells which */
int djcdata_rd_version(src_t *s, int *is21, const char *where, const char *field)
{
    uint64_t at = s->pos;
    uint32_t v;
    int rc = djcdata_rd_u32(s, &v, where, field);
    if (rc)
        return rc;
    if (v != DJCDATA_V20 && v != DJCDATA_V21) {
        float f;
        memcpy(&f, &v, 4);
        return djcdata_src_err(s, at, where, "%s %g (bytes %02x %02x %02x %02x) is not 2.0 or 2.1; not a djcdata file "
                       "of a supported version", field, (double)f, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff,
                       v >> 24);
    }
    if (is21)
        *is21 = v == DJCDATA_V21;
    return 0;
}

/* str: u64 length + bytes, NUL-terminated copy */
int djcdata_rd_str(src_t *s, char **out, const char *where, const char *field)
{
    uint64_t at = s->pos, n;
    int rc = djcdata_rd_u64(s, &n, where, field);
    if (rc)
        return rc;
    if (n > djcdata_src_left(s))
        return djcdata_src_err(s, at, where, "%s length %" PRIu64 " exceeds the %" PRIu64 " bytes left", field, n,
                       djcdata_src_left(s));
    char *p = malloc((size_t)n + 1);
    if (!p)
        return djct_error_oom();
    if ((rc = djcdata_src_read(s, p, (size_t)n, where, field))) {
        free(p);
        return rc;
    }
    p[n] = 0;
    *out = p;
    return 0;
}

/* ---- sources over a file or a memory image ---- */

int djcdata_src_open(src_t *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    s->name = path;
    if (!(s->fp = fopen(path, "rb")))
        return djct_error_set(DJCT_EIO, "file '%s': cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(s->fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(s->fp);
        s->fp = NULL;
        return djct_error_set(DJCT_EIO, "file '%s': not a regular file", path);
    }
    s->size = (uint64_t)st.st_size;
    return 0;
}

int djcdata_src_mem(src_t *s, const void *buf, size_t len, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->name = name ? name : "<memory>";
    s->mem = buf ? buf : (const unsigned char *)"";
    s->size = len;
    return 0;
}

void djcdata_src_close(src_t *s)
{
    if (s->fp)
        fclose(s->fp);
    free(s->tmp);
    memset(s, 0, sizeof(*s));
}

