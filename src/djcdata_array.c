/* One djcdata array (djcdata.md section 3), the body of a .djcsa and the unit of a .djctd
 * record: its header (version, name, dtype, shape), its row splits (always decoded and checked)
 * and its value qblock (decoded, skipped with its chunk headers checked, or listed in the
 * source's layout for djcdata_parts.c). Every size is checked against the bytes that remain
 * before anything is allocated. */
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct/qlz.h"
#include "djct_int.h"
#include "djcdata_int.h"
#include "qlz_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a compressed chunk body of B bytes decodes to at most 258 bytes per 4-byte match code */
#define MAX_EXPANSION 65u

static int rs_check(src_t *s, uint64_t at, const char *where, const int64_t *rs, size_t n, int64_t total)
{
    if (rs[0] != 0)
        return djcdata_src_err(s, at, where, "row_splits[0] = %" PRId64 ", must be 0", rs[0]);
    for (size_t i = 1; i < n; i++)
        if (rs[i] < rs[i - 1])
            return djcdata_src_err(s, at, where, "row splits decrease at index %zu (%" PRId64 " after %" PRId64 ")", i,
                           rs[i], rs[i - 1]);
    if (rs[n - 1] != total)
        return djcdata_src_err(s, at, where, "last row split %" PRId64 " != element count -shape[1] = %" PRId64,
                       rs[n - 1], total);
    return 0;
}

/* a new entry of the layout's lists (grown by doubling) */
static int lay_grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? 2 * *cap : 16;
    void *q = realloc(*p, nc * size);
    if (!q)
        return djct_error_oom();
    *p = q;
    *cap = nc;
    return 0;
}

/* Read one qblock of exactly `expect` decompressed bytes (`expect_what` names the formula).
 * out == NULL: skip the chunks (headers still checked), or with `layout` list them in s->lay
 * with the decoder's checks (djcdata_parts.c decodes them later); else *out = malloc'ed payload. */
static int read_qblock(src_t *s, void **out, int layout, uint64_t expect, const char *expect_what, const char *where)
{
    uint64_t start = s->pos, at;
    int rc;
    unsigned nch;
    uint64_t csz[255], total = 0, sum = 0;
    if ((rc = djcdata_rd_version(s, NULL, where, "qblock version")) || (rc = djcdata_rd_u8(s, &nch, where, "nchunks")))
        return rc;
    for (unsigned i = 0; i < nch; i++) {
        at = s->pos;
        if ((rc = djcdata_rd_u64(s, &csz[i], where, "chunk_size")))
            return rc;
        if (i == 0 && nch == 1 && csz[0] == 0)
            return djcdata_src_err(s, at, where,
                           "broken empty block: nchunks 1 followed by total_bytes 0 and no chunk size (the "
                           "reference writer's zero-size form, which the reference cannot read either); "
                           "rewrite the array with nchunks 0");
        if (csz[i] < 3 || csz[i] > s->size)
            return djcdata_src_err(s, at, where, "chunk_size[%u] = %" PRIu64 " is impossible (a chunk is 3..%" PRIu64
                           " bytes here)", i, csz[i], s->size);
        sum += csz[i];
    }
    at = s->pos;
    if ((rc = djcdata_rd_u64(s, &total, where, "total_bytes")))
        return rc;
    if (total != expect)
        return djcdata_src_err(s, at, where, "total_bytes %" PRIu64 " != %s = %" PRIu64, total, expect_what, expect);
    if (sum > djcdata_src_left(s))
        return djcdata_src_err(s, at + 8, where, "chunks need %" PRIu64 " bytes, only %" PRIu64 " left (file truncated?)",
                       sum, djcdata_src_left(s));
    if (nch == 0 && total != 0)
        return djcdata_src_err(s, at, where, "no chunks but total_bytes %" PRIu64, total);
    /* each chunk can expand at most MAX_EXPANSION times: refuse before allocating */
    if (total / MAX_EXPANSION > sum + 16)
        return djcdata_src_err(s, at, where, "total_bytes %" PRIu64 " cannot come from %" PRIu64 " bytes of chunks",
                       total, sum);
    unsigned char *buf = NULL;
    djcdata_layout *L = layout ? s->lay : NULL;
    djcdata_block *blk = NULL;
    if (out && !(buf = malloc(total ? (size_t)total : 1)))
        return djct_error_oom();
    if (L) {
        size_t k = L->cur_flat;
        if (k >= L->nflat) {
            size_t nf = 2 * L->nflat > k + 16 ? 2 * L->nflat : k + 16;
            uint64_t *t = realloc(L->flat_off, nf * sizeof(uint64_t));
            if (!t)
                return djct_error_oom();
            memset(t + L->nflat, 0, (nf - L->nflat) * sizeof(uint64_t));
            L->flat_off = t;
            L->nflat = nf;
        }
        if ((rc = lay_grow((void **)&L->blocks, &L->capb, L->nblocks, sizeof(djcdata_block))))
            return rc;
        blk = &L->blocks[L->nblocks++];
        memset(blk, 0, sizeof(*blk));
        blk->flat = k;
        blk->dst_off = L->flat_off[k];
        blk->first = L->nchunks;
        snprintf(blk->where, sizeof(blk->where), "%s", where);
    }
    uint64_t done = 0;
    size_t counter = 0; /* the stream's history: the last `counter` bytes of buf before `done` */
    for (unsigned i = 0; i < nch; i++) {
        uint64_t cstart = s->pos;
        size_t cs, dsz, eo = 0;
        int comp;
        char w[200];
        djcdata_chunk_where(w, where, i);
        if (blk) {
            /* the header, checked as the decoder will check it; the body is left for later */
            unsigned char h[9];
            size_t hn = csz[i] < 9 ? (size_t)csz[i] : 9;
            if ((rc = djcdata_src_read(s, h, hn, w, "chunk header")))
                goto fail;
            if ((rc = djct_qlz_check_at(&dsz, &comp, h, hn, (size_t)csz[i], (size_t)(total - done), &eo))) {
                rc = djcdata_src_err(s, cstart + eo, w, "%s", djct_last_error());
                goto fail;
            }
            if ((rc = lay_grow((void **)&L->chunks, &L->capc, L->nchunks, sizeof(djcdata_chunk))))
                goto fail;
            L->chunks[L->nchunks++] = (djcdata_chunk){cstart, csz[i], dsz, comp};
            blk->n++;
            blk->total += dsz;
            done += dsz;
            if ((rc = djcdata_src_seek(s, cstart + csz[i])))
                goto fail;
            continue;
        }
        if (out && !s->mem && csz[i] >= 9) {
            /* file: a stored chunk is read straight into the output (no staging copy) */
            unsigned char h[9];
            size_t hl;
            if ((rc = djcdata_src_read(s, h, 9, w, "chunk header")))
                goto fail;
            if ((rc = djct_qlz_header_int(&cs, &dsz, &comp, h, 9, &eo))) {
                rc = djcdata_src_err(s, cstart + eo, w, "%s", djct_last_error());
                goto fail;
            }
            hl = (h[0] & 2) ? 9 : 3;
            if (!comp && cs == csz[i] && dsz <= total - done) {
                memcpy(buf + done, h + hl, 9 - hl);
                if ((rc = djcdata_src_read(s, buf + done + (9 - hl), dsz - (9 - hl), w, "stored chunk")))
                    goto fail;
                djct_qlz_counter_advance(&counter, dsz);
                done += dsz;
                continue;
            }
            if ((rc = djcdata_src_seek(s, cstart))) /* compressed or inconsistent: the general path */
                goto fail;
        }
        if (out) {
            const unsigned char *p = NULL;
            size_t got = 0;
            if ((rc = djcdata_src_view(s, &p, (size_t)csz[i], w, "chunk")))
                goto fail;
            rc = djct_qlz_decompress_at(&counter, p, (size_t)csz[i], buf, (size_t)done, (size_t)total, &got, &eo);
            if (rc) {
                rc = djcdata_src_err(s, cstart + eo, w, "%s", djct_last_error());
                goto fail;
            }
            done += got;
        } else {
            unsigned char h[9];
            size_t hn = csz[i] < 9 ? (size_t)csz[i] : 9;
            if ((rc = djcdata_src_read(s, h, hn, w, "chunk header")))
                goto fail;
            if ((rc = djct_qlz_header_int(&cs, &dsz, &comp, h, hn, &eo))) {
                rc = djcdata_src_err(s, cstart + eo, w, "%s", djct_last_error());
                goto fail;
            }
            if (cs != csz[i]) {
                rc = djcdata_src_err(s, cstart + 1, w, "chunk header says %zu bytes, chunk_size[%u] says %" PRIu64, cs, i,
                             csz[i]);
                goto fail;
            }
            if (dsz > total - done) {
                rc = djcdata_src_err(s, cstart, w, "chunks decompress to more than total_bytes %" PRIu64, total);
                goto fail;
            }
            done += dsz;
            if ((rc = djcdata_src_seek(s, cstart + csz[i])))
                goto fail;
        }
    }
    if (done != total) {
        rc = djcdata_src_err(s, start, where, "chunks decompress to %" PRIu64 " bytes, total_bytes says %" PRIu64, done, total);
        goto fail;
    }
    if (blk)
        L->flat_off[blk->flat] += total;
    if (out)
        *out = buf;
    return 0;
fail:
    free(buf);
    return rc;
}

void djcdata_array_where(char *w, size_t n, const char *cont, size_t idx, size_t rec, const char *name)
{
    char r[32] = "";
    if (rec)
        snprintf(r, sizeof(r), "record %zu: ", rec);
    if (name && name[0])
        snprintf(w, n, "%sarray '%.100s' (%s[%zu])", r, name, cont, idx);
    else
        snprintf(w, n, "%s%s[%zu]", r, cont, idx);
}

int djcdata_read_array(src_t *s, djct_array *a, int mode, const char *cont, size_t idx, size_t rec)
{
    char where[200];
    int rc, is21;
    uint64_t at = s->pos, size, ndim, nrs;
    memset(a, 0, sizeof(*a));
    djcdata_array_where(where, sizeof(where), cont, idx, rec, NULL);
    if ((rc = djcdata_rd_version(s, &is21, where, "array version")))
        return rc;
    a->dtype = DJCT_DTYPE_FLOAT32;
    if (is21) {
        uint32_t dt;
        at = s->pos;
        if ((rc = djcdata_rd_u32(s, &dt, where, "dtype")))
            goto fail;
        if (dt > 1) {
            rc = djcdata_src_err(s, at, where, "dtype %" PRId32 " is neither 0 (float32) nor 1 (int32)", (int32_t)dt);
            goto fail;
        }
        a->dtype = dt ? DJCT_DTYPE_INT32 : DJCT_DTYPE_FLOAT32;
        if ((rc = djcdata_rd_str(s, &a->name, where, "name")))
            goto fail;
        djcdata_array_where(where, sizeof(where), cont, idx, rec, a->name);
        uint64_t nf;
        at = s->pos;
        if ((rc = djcdata_rd_u64(s, &nf, where, "feature-name count")))
            goto fail;
        if (nf > djcdata_src_left(s) / 8) {
            rc = djcdata_src_err(s, at, where, "feature-name count %" PRIu64 " exceeds what the %" PRIu64
                         " bytes left can hold", nf, djcdata_src_left(s));
            goto fail;
        }
        if (nf && !(a->feature_names = calloc((size_t)nf, sizeof(char *)))) {
            rc = djct_error_oom();
            goto fail;
        }
        for (; a->n_feature_names < nf; a->n_feature_names++)
            if ((rc = djcdata_rd_str(s, &a->feature_names[a->n_feature_names], where, "feature name")))
                goto fail;
    } else if (!(a->name = strdup(""))) {
        rc = djct_error_oom();
        goto fail;
    }
    uint64_t at_size = s->pos;
    if ((rc = djcdata_rd_u64(s, &size, where, "size")))
        goto fail;
    at = s->pos;
    if ((rc = djcdata_rd_u64(s, &ndim, where, "ndim")))
        goto fail;
    if (ndim < 1 || ndim > DJCDATA_MAX_NDIM) {
        rc = djcdata_src_err(s, at, where, "ndim %" PRIu64 " outside 1..%d", ndim, DJCDATA_MAX_NDIM);
        goto fail;
    }
    a->ndim = (int)ndim;
    uint64_t at_shape = s->pos;
    for (int i = 0; i < a->ndim; i++) {
        uint32_t d;
        if ((rc = djcdata_rd_u32(s, &d, where, "shape")))
            goto fail;
        a->shape[i] = (int32_t)d;
    }
    uint64_t at_nrs = s->pos;
    if ((rc = djcdata_rd_u64(s, &nrs, where, "nrowsplits")))
        goto fail;
    /* shape invariants, and size = product of |dims| restarting at the ragged one */
    int ragged = nrs > 0;
    uint64_t prod = 1;
    for (int i = 0; i < a->ndim; i++) {
        int64_t d = a->shape[i];
        if (ragged && i == 0)
            continue;
        if (ragged && i == 1) {
            if (d > 0) {
                rc = djcdata_src_err(s, at_shape + 4, where, "ragged array has shape[1] = %" PRId64
                             " (must be minus the element count)", d);
                goto fail;
            }
            d = -d;
        } else if (d < 0) {
            rc = djcdata_src_err(s, at_shape + 4 * (uint64_t)i, where, "shape[%d] = %" PRId64 " is negative%s", i, d,
                         ragged ? "" : " but the array has no row splits");
            goto fail;
        }
        prod *= (uint64_t)d; /* <= (2^31)^8 would overflow: caught below by the size check */
        if (prod > ((uint64_t)1 << 62))
            prod = ((uint64_t)1 << 62) + 1;
    }
    if (ragged) {
        if (a->ndim < 2) {
            rc = djcdata_src_err(s, at_nrs, where, "ragged array with ndim %d (needs >= 2)", a->ndim);
            goto fail;
        }
        if (a->shape[0] < 0 || nrs != (uint64_t)a->shape[0] + 1) {
            rc = djcdata_src_err(s, at_nrs, where, "nrowsplits %" PRIu64 " != shape[0]+1 = %" PRId64, nrs, a->shape[0] + 1);
            goto fail;
        }
    }
    if (size != prod) {
        rc = djcdata_src_err(s, at_size, where, "size %" PRIu64 " != product of the shape = %" PRIu64, size, prod);
        goto fail;
    }
    if (size > djcdata_src_left(s) * MAX_EXPANSION / 4 + 16) { /* early, clearer than the qblock check */
        rc = djcdata_src_err(s, at_size, where, "size %" PRIu64 " values cannot fit in the %" PRIu64 " bytes left", size,
                     djcdata_src_left(s));
        goto fail;
    }
    a->n_values = (size_t)size;
    if (ragged) {
        char w[240];
        snprintf(w, sizeof(w), "%s row-split qblock", where);
        uint64_t at_rs = s->pos;
        if (nrs > djcdata_src_left(s) * MAX_EXPANSION / 8 + 16) {
            rc = djcdata_src_err(s, at_nrs, where, "nrowsplits %" PRIu64 " cannot fit in the %" PRIu64 " bytes left", nrs,
                         djcdata_src_left(s));
            goto fail;
        }
        void *rs = NULL;
        if ((rc = read_qblock(s, mode >= MODE_META ? &rs : NULL, 0, nrs * 8, "nrowsplits*8", w)))
            goto fail;
        a->n_row_splits = (size_t)nrs;
        if (rs) {
            a->row_splits = rs;
            /* decode little-endian in place (a no-op on x86-64) */
            for (size_t i = 0; i < a->n_row_splits; i++)
                a->row_splits[i] = (int64_t)le64((const unsigned char *)rs + 8 * i);
            if ((rc = rs_check(s, at_rs, w, a->row_splits, a->n_row_splits, -a->shape[1])))
                goto fail;
        }
    }
    char w[240];
    snprintf(w, sizeof(w), "%s data qblock", where);
    void *vals = NULL;
    if ((rc = read_qblock(s, mode == MODE_FULL ? &vals : NULL, mode == MODE_PARTS, size * 4, "size*4", w)))
        goto fail;
    a->values = vals;
    if (vals) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        for (size_t i = 0; i < a->n_values; i++)
            ((uint32_t *)vals)[i] = le32((const unsigned char *)vals + 4 * i);
#endif
    }
    return 0;
fail:
    djct_array_clear(a);
    return rc;
}

