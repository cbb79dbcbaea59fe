/* A .djctd decoded in parts, so that several threads can decode one file: a serial layout pass
 * (djcdata.c: every check of the reader, row splits decoded, value blocks only listed), then the
 * value blocks, each decoded straight into its place in the file's concatenated arrays by
 * djct_qlz_decompress_at (a block's chunks depend on each other through the stream's history,
 * different blocks on nothing), in any order. The result, or the error, is the serial reader's:
 * the first failing block in file order, else the layout pass's error. */
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct_int.h"
#include "djcdata_int.h"
#include "qlz_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct djcdata_parts {
    char                *name;   /* the path, for messages */
    int                  fd;     /* the file's bytes (pread), or -1 */
    const unsigned char *mem;    /* or an image in memory */
    size_t               size;
    djct_record          rec;    /* from the layout pass; value blocks decode into it */
    djct_array         **flat;   /* rec's arrays in flat order */
    size_t               nflat;
    djcdata_layout       lay;
    int                 *status; /* per block: 0 not decoded, 1 decoded, < 0 its error code */
    char               **msg;    /* per block: its error */
    int                  err;    /* the layout pass's error (0: none) */
    char                *errmsg;
};

void djcdata_parts_free(djcdata_parts *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    djct_record_clear(&p->rec);
    free(p->flat);
    free(p->lay.blocks);
    free(p->lay.chunks);
    free(p->lay.flat_off);
    if (p->msg)
        for (size_t i = 0; i < p->lay.nblocks; i++)
            free(p->msg[i]);
    free(p->msg);
    free(p->status);
    free(p->errmsg);
    free(p->name);
    free(p);
}

/* the record's values allocated and each block's destination checked against them */
static int place_blocks(djcdata_parts *p)
{
    djct_record *r = &p->rec;
    p->nflat = r->n_features + r->n_truths + r->n_weights;
    if (!(p->flat = calloc(p->nflat + 1, sizeof(*p->flat))))
        return djct_error_oom();
    size_t k = 0;
    for (size_t i = 0; i < r->n_features; i++)
        p->flat[k++] = &r->features[i];
    for (size_t i = 0; i < r->n_truths; i++)
        p->flat[k++] = &r->truths[i];
    for (size_t i = 0; i < r->n_weights; i++)
        p->flat[k++] = &r->weights[i];
    for (k = 0; k < p->nflat; k++) {
        djct_array *a = p->flat[k];
        size_t bytes = a->n_values * djct_dtype_size(a->dtype);
        /* as the reader's, never NULL (a .djcsa's array was read whole by the layout pass) */
        if (!a->values && !(a->values = malloc(bytes ? bytes : 1)))
            return djct_error_oom();
    }
    for (size_t b = 0; b < p->lay.nblocks; b++) {
        const djcdata_block *bl = &p->lay.blocks[b];
        if (bl->flat >= p->nflat ||
            bl->dst_off + bl->total > p->flat[bl->flat]->n_values * djct_dtype_size(p->flat[bl->flat]->dtype))
            return djct_error_set(DJCT_ERROR, "djcdata parts: '%s': %s does not fit its array", p->name, bl->where);
    }
    return 0;
}

int djcdata_parts_open(djcdata_parts **out, const char *path, const void *buf, size_t len)
{
    djcdata_parts *p = calloc(1, sizeof(*p));
    if (!p)
        return djct_error_oom();
    p->fd = -1;
    int rc;
    src_t s;
    if (!(p->name = strdup(path))) {
        free(p);
        return djct_error_oom();
    }
    if (buf) {
        rc = djcdata_src_mem(&s, buf, len, p->name);
        p->mem = s.mem;
        p->size = len;
    } else if ((rc = djcdata_src_open(&s, p->name)) == 0) {
        /* the same open file as the layout pass, for the blocks' reads */
        if ((p->fd = fcntl(fileno(s.fp), F_DUPFD_CLOEXEC, 0)) < 0)
            rc = djct_error_set(DJCT_EIO, "file '%s': %s", path, strerror(errno));
        p->size = (size_t)s.size;
    }
    if (rc) {
        djcdata_parts_free(p);
        return rc;
    }
    s.lay = &p->lay;
    rc = djcdata_layout_pass(&s, &p->rec, buf ? NULL : p->name);
    djcdata_src_close(&s);
    if (rc == 0)
        rc = place_blocks(p);
    if (rc) {
        /* the blocks listed before the error still decode, each into a buffer of its own */
        djct_record_clear(&p->rec);
        free(p->flat);
        p->flat = NULL;
        p->nflat = 0;
        p->err = rc;
        if (!(p->errmsg = strdup(djct_last_error()))) {
            djcdata_parts_free(p);
            return djct_error_oom();
        }
    }
    if (!(p->status = calloc(p->lay.nblocks + 1, sizeof(int))) || !(p->msg = calloc(p->lay.nblocks + 1, sizeof(char *)))) {
        djcdata_parts_free(p);
        return djct_error_oom();
    }
    *out = p;
    return 0;
}

size_t djcdata_parts_count(const djcdata_parts *p) { return p ? p->lay.nblocks : 0; }

/* n bytes at file offset `off` into dst */
static int read_at(djcdata_parts *p, unsigned char *dst, size_t n, uint64_t off)
{
    if (p->mem) {
        if (off > p->size || n > p->size - off)
            return djct_error_set(DJCT_EIO, "file '%s': byte %" PRIu64 ": %zu bytes past the end", p->name, off, n);
        memcpy(dst, p->mem + off, n);
        return 0;
    }
    while (n) {
        ssize_t got = pread(p->fd, dst, n, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return djct_error_set(DJCT_EIO, "file '%s': byte %" PRIu64 ": read error: %s", p->name, off,
                                  got < 0 ? strerror(errno) : "the file is shorter than when its layout was read");
        dst += got;
        off += (uint64_t)got;
        n -= (size_t)got;
    }
    return 0;
}

static int decode_block(djcdata_parts *p, const djcdata_block *bl, unsigned char *dst, unsigned char **scratch,
                        size_t *scratch_cap)
{
    size_t counter = 0, pos = 0;
    for (size_t c = 0; c < bl->n; c++) {
        const djcdata_chunk *ch = &p->lay.chunks[bl->first + c];
        char w[200];
        size_t got = 0, eo = 0;
        int rc;
        if (!ch->comp && !p->mem) { /* stored: its body read straight into place */
            if ((rc = read_at(p, dst + pos, (size_t)ch->dsize, ch->off + ch->len - ch->dsize)))
                return rc;
            djct_qlz_counter_advance(&counter, (size_t)ch->dsize);
            pos += (size_t)ch->dsize;
            continue;
        }
        const unsigned char *src = p->mem ? p->mem + ch->off : NULL;
        if (!src) {
            if (ch->len > *scratch_cap) {
                unsigned char *t = realloc(*scratch, (size_t)ch->len);
                if (!t)
                    return djct_error_oom();
                *scratch = t;
                *scratch_cap = (size_t)ch->len;
            }
            if ((rc = read_at(p, *scratch, (size_t)ch->len, ch->off)))
                return rc;
            src = *scratch;
        }
        if ((rc = djct_qlz_decompress_at(&counter, src, (size_t)ch->len, dst, pos, (size_t)bl->total, &got, &eo))) {
            djcdata_chunk_where(w, bl->where, (unsigned)c);
            return djcdata_err_at(p->name, ch->off + eo, w, "%s", djct_last_error());
        }
        pos += got;
    }
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    for (size_t i = 0; i + 4 <= pos; i += 4) {
        uint32_t v = le32(dst + i);
        memcpy(dst + i, &v, 4);
    }
#endif
    return 0;
}

int djcdata_parts_decode(djcdata_parts *p, size_t i, unsigned char **scratch, size_t *scratch_cap)
{
    const djcdata_block *bl = &p->lay.blocks[i];
    unsigned char *tmp = NULL, *dst;
    int rc;
    if (p->flat) {
        dst = (unsigned char *)p->flat[bl->flat]->values + bl->dst_off;
    } else if (!(dst = tmp = malloc(bl->total ? (size_t)bl->total : 1))) {
        p->status[i] = djct_error_oom();
        return p->status[i];
    }
    rc = decode_block(p, bl, dst, scratch, scratch_cap);
    free(tmp);
    if (rc) {
        p->msg[i] = strdup(djct_last_error()); /* NULL: reported as out of memory */
        p->status[i] = p->msg[i] ? rc : DJCT_ENOMEM;
        return rc;
    }
    p->status[i] = 1;
    return 0;
}

int djcdata_parts_finish(djcdata_parts *p, djct_record *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < p->lay.nblocks; i++) {
        if (p->status[i] < 0)
            return p->msg[i] ? djct_error_set(p->status[i], "%s", p->msg[i]) : djct_error_oom();
        if (p->status[i] == 0)
            return djct_error_set(DJCT_ERROR, "file '%s': %s was not decoded", p->name, p->lay.blocks[i].where);
    }
    if (p->err)
        return djct_error_set(p->err, "%s", p->errmsg);
    *out = p->rec;
    memset(&p->rec, 0, sizeof(p->rec));
    return 0;
}
