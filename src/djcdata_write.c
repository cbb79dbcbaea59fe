/* The djcdata writer: .djctd records (2.1, appendable) and .djcsa arrays, built in memory with
 * QuickLZ blocks and written through a temporary file renamed into place. */
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct/qlz.h"
#include "djct_int.h"
#include "util_int.h"
#include "djcdata_int.h"
#include "qlz_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} wbuf;

static unsigned char *wb_grow(wbuf *b, size_t add)
{
    if (b->oom)
        return NULL;
    if (b->cap - b->n < add) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc - b->n < add)
            nc *= 2;
        unsigned char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return NULL;
        }
        b->p = q;
        b->cap = nc;
    }
    return b->p + b->n;
}
static void wb_put(wbuf *b, const void *d, size_t n)
{
    unsigned char *q = wb_grow(b, n);
    if (q) {
        if (n)
            memcpy(q, d, n);
        b->n += n;
    }
}
static void wb_u8(wbuf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    wb_put(b, &c, 1);
}
static void wb_u32(wbuf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    wb_put(b, c, 4);
}
static void wb_u64(wbuf *b, uint64_t v)
{
    wb_u32(b, (uint32_t)v);
    wb_u32(b, (uint32_t)(v >> 32));
}
static void wb_str(wbuf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    wb_u64(b, n);
    wb_put(b, s, n);
}

/* chunk payload limit: the reference's, overridable by tests to force multi-chunk blocks */
size_t djct_djcdata_chunk_limit = (size_t)0xFFFFFFFFu - 400u;

static int write_qblock(wbuf *b, const void *data, size_t n, int compress)
{
    size_t lim = djct_djcdata_chunk_limit ? djct_djcdata_chunk_limit : 1;
    if (lim > DJCT_QLZ_MAX_CHUNK)
        lim = DJCT_QLZ_MAX_CHUNK;
    size_t nch = n ? (n + lim - 1) / lim : 0;
    if (nch > 255)
        return djct_error_set(DJCT_EINVAL, "payload of %zu bytes needs %zu chunks, a qblock holds at most 255", n, nch);
    wb_u32(b, DJCDATA_V21);
    wb_u8(b, (unsigned)nch);
    size_t at_sizes = b->n;
    for (size_t i = 0; i < nch; i++)
        wb_u64(b, 0); /* patched below */
    wb_u64(b, n);
    djct_qlz_cstate *cs = NULL;
    int rc = 0;
    if (compress && nch && (rc = djct_qlz_cstate_create(&cs)))
        return rc;
    const unsigned char *d = data;
    for (size_t i = 0; i < nch; i++) {
        size_t len = n - i * lim < lim ? n - i * lim : lim, clen = 0;
        unsigned char *q = wb_grow(b, DJCT_QLZ_BOUND(len));
        if (!q) {
            rc = djct_error_oom();
            break;
        }
        if (compress)
            rc = djct_qlz_compress(cs, d + i * lim, len, q, DJCT_QLZ_BOUND(len), &clen);
        else
            rc = djct_qlz_store(d + i * lim, len, q, DJCT_QLZ_BOUND(len), len < 216, &clen);
        if (rc)
            break;
        b->n += clen;
        for (int k = 0; k < 8; k++)
            b->p[at_sizes + 8 * i + (size_t)k] = (unsigned char)((uint64_t)clen >> (8 * k));
    }
    djct_qlz_cstate_free(cs);
    return rc;
}

static int check_writable(const djct_array *a, const char *cont, size_t i)
{
    int rc = djct_array_validate(a);
    if (rc)
        return djct_error_prefix("%s[%zu]", cont, i);
    if (a->dtype != DJCT_DTYPE_FLOAT32 && a->dtype != DJCT_DTYPE_INT32)
        return djct_error_set(DJCT_EINVAL, "%s[%zu] '%s': dtype %s cannot be stored in djcdata (float32 or int32 only)",
                              cont, i, a->name ? a->name : "", djct_dtype_name(a->dtype));
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] > INT32_MAX || a->shape[d] < -INT32_MAX)
            return djct_error_set(DJCT_EINVAL, "%s[%zu] '%s': shape[%d] = %" PRId64 " does not fit djcdata's int32",
                                  cont, i, a->name ? a->name : "", d, a->shape[d]);
    return 0;
}

static int write_array(wbuf *b, const djct_array *a, int compress)
{
    wb_u32(b, DJCDATA_V21);
    wb_u32(b, a->dtype == DJCT_DTYPE_INT32 ? 1 : 0);
    wb_str(b, a->name);
    wb_u64(b, a->n_feature_names);
    for (size_t i = 0; i < a->n_feature_names; i++)
        wb_str(b, a->feature_names[i]);
    wb_u64(b, a->n_values);
    wb_u64(b, (uint64_t)a->ndim);
    for (int d = 0; d < a->ndim; d++)
        wb_u32(b, (uint32_t)(int32_t)a->shape[d]);
    int ragged = djct_array_is_ragged(a);
    wb_u64(b, ragged ? a->n_row_splits : 0);
    int rc;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "djcdata writer: add byte swapping for big-endian hosts"
#endif
    if (ragged && (rc = write_qblock(b, a->row_splits, a->n_row_splits * 8, compress)))
        return rc;
    if ((rc = write_qblock(b, a->values, a->n_values * 4, compress)))
        return rc;
    return b->oom ? djct_error_oom() : 0;
}

static int encode_record(wbuf *b, const djct_record *rec, int compress)
{
    int rc;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < ccont_n(rec, c); i++)
            if ((rc = check_writable(&ccont_arr(rec, c)[i], djcdata_containers[c], i)))
                return rc;
    wb_u32(b, DJCDATA_V21);
    for (int c = 0; c < 3; c++) {
        wb_u64(b, ccont_n(rec, c));
        for (size_t i = 0; i < ccont_n(rec, c); i++) {
            const djct_array *a = &ccont_arr(rec, c)[i];
            wb_u64(b, (uint64_t)a->ndim);
            for (int d = 0; d < a->ndim; d++)
                wb_u32(b, (uint32_t)(int32_t)a->shape[d]);
        }
    }
    for (int c = 0; c < 3; c++) {
        wb_u64(b, ccont_n(rec, c));
        for (size_t i = 0; i < ccont_n(rec, c); i++)
            if ((rc = write_array(b, &ccont_arr(rec, c)[i], compress)))
                return rc;
    }
    return b->oom ? djct_error_oom() : 0;
}

int djct_djcdata_write_mem(void **buf, size_t *len, const djct_record *rec, const djct_djcdata_write_options *opts)
{
    DJCT_CHECK_ARG(buf);
    DJCT_CHECK_ARG(len);
    DJCT_CHECK_ARG(rec);
    DJCT_CHECK_VERSION(opts, DJCT_DJCDATA_WRITE_OPTIONS_VERSION, "djct_djcdata_write_options");
    wbuf b = {0};
    int rc = encode_record(&b, rec, opts ? opts->compress : 1);
    if (rc) {
        free(b.p);
        return rc;
    }
    *buf = b.p;
    *len = b.n;
    return 0;
}

int djct_djcsa_write_mem(void **buf, size_t *len, const djct_array *a, const djct_djcdata_write_options *opts)
{
    DJCT_CHECK_ARG(buf);
    DJCT_CHECK_ARG(len);
    DJCT_CHECK_ARG(a);
    DJCT_CHECK_VERSION(opts, DJCT_DJCDATA_WRITE_OPTIONS_VERSION, "djct_djcdata_write_options");
    int rc = check_writable(a, "array", 0);
    if (rc)
        return rc;
    wbuf b = {0};
    wb_u32(&b, DJCDATA_V21);
    if ((rc = write_array(&b, a, opts ? opts->compress : 1))) {
        free(b.p);
        return rc;
    }
    *buf = b.p;
    *len = b.n;
    return 0;
}

int djct_djcdata_write(const char *path, const djct_record *rec, const djct_djcdata_write_options *opts)
{
    DJCT_CHECK_ARG(path);
    DJCT_CHECK_ARG(rec);
    DJCT_CHECK_VERSION(opts, DJCT_DJCDATA_WRITE_OPTIONS_VERSION, "djct_djcdata_write_options");
    void *buf;
    size_t len;
    int rc = djct_djcdata_write_mem(&buf, &len, rec, opts);
    if (rc)
        return djct_error_prefix("file '%s'", path);
    struct stat st;
    if (opts && opts->append && stat(path, &st) == 0 && st.st_size > 0) {
        /* the new record must be appendable to the file's first record */
        rc = djcdata_check_appendable(path, buf, len);
        if (!rc) {
            FILE *f = fopen(path, "ab");
            if (!f) {
                rc = djct_error_set(DJCT_EIO, "file '%s': cannot open for append: %s", path, strerror(errno));
            } else {
                int ok = fwrite(buf, 1, len, f) == len;
                if (fclose(f) != 0 || !ok)
                    rc = djct_error_set(DJCT_EIO, "file '%s': append failed: %s", path, strerror(errno));
            }
        }
    } else {
        rc = djct_write_atomic(path, buf, len, 0); /* data files: atomic, not fsync'ed */
    }
    free(buf);
    return rc;
}

int djct_djcsa_write(const char *path, const djct_array *a, const djct_djcdata_write_options *opts)
{
    DJCT_CHECK_ARG(path);
    DJCT_CHECK_ARG(a);
    void *buf;
    size_t len;
    int rc = djct_djcsa_write_mem(&buf, &len, a, opts);
    if (rc)
        return djct_error_prefix("file '%s'", path);
    rc = djct_write_atomic(path, buf, len, 0); /* data files: atomic, not fsync'ed */
    free(buf);
    return rc;
}

