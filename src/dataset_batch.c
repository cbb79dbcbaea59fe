/* Batches: reusable storage (one 64-byte aligned arena per batch, recycled through a free list)
 * and assembly of one rank's batch of a step from the plan: rows counted, arrays laid out, then
 * values and row splits gathered file by file from the decoded-file cache. */
#include "djct/dataset.h"
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"
#include "h5_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- batch storage ---- */

void dataset_bint_free(bint *b)
{
    if (!b)
        return;
    free(b->arena);
    free(b->arrays);
    free(b->ids);
    free(b);
}

static bint *bint_get(djct_dataset *ds)
{
    pthread_mutex_lock(&ds->mu);
    bint *b = ds->freelist;
    if (b) {
        ds->freelist = b->next;
        ds->nfree--;
    }
    pthread_mutex_unlock(&ds->mu);
    if (!b) {
        if (!(b = calloc(1, sizeof(*b))))
            return NULL;
        if (ds->n_arrays && !(b->arrays = calloc(ds->n_arrays, sizeof(djct_array)))) {
            free(b);
            return NULL;
        }
    }
    return b;
}

void djct_batch_release(djct_dataset *ds, djct_batch *pub)
{
    if (!pub)
        return;
    bint *b = (bint *)pub;
    if (!ds) {
        dataset_bint_free(b);
        return;
    }
    pthread_mutex_lock(&ds->mu);
    if (ds->nfree < ds->o.prefetch_depth + 4) {
        b->next = ds->freelist;
        ds->freelist = b;
        ds->nfree++;
        b = NULL;
    }
    pthread_mutex_unlock(&ds->mu);
    dataset_bint_free(b);
}


/* ---- batch assembly ---- */

static size_t file_of(const djct_dataset *ds, int64_t id)
{
    size_t lo = 0, hi = ds->nf; /* first[lo] <= id < first[hi] */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ds->first[mid] <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The run of the batch's events from ev[i] on that lie in one file: ev[i..*j) are in file *f,
 * read through *s (both passes walk the batch in these runs). */
static inline int file_run(djct_dataset *ds, const int64_t *ev, size_t n, size_t i, size_t *j, size_t *f, source **s)
{
    size_t file = file_of(ds, ev[i]), end = i; /* locals: stores through j could alias ds->first */
    while (end < n && ev[end] < ds->first[file + 1])
        end++;
    *f = file;
    *j = end;
    return dataset_source_get(ds, file, s);
}

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

int dataset_build_batch(djct_dataset *ds, int64_t step, bint **out)
{
    int W = ds->o.world_size, rc = 0;
    const int64_t *start = ds->plan.bin_start + step * W + ds->o.rank, *ev = ds->plan.events + start[0];
    size_t n = (size_t)(start[1] - start[0]);
    bint *b = bint_get(ds);
    int64_t *local = malloc((n + 1) * sizeof(int64_t));
    size_t *rows = calloc(ds->n_arrays + 1, sizeof(size_t));
    if (!b || !local || !rows) {
        rc = djct_error_oom();
        goto fail;
    }
    if (b->ids_cap < n + 1) {
        free(b->ids);
        if (!(b->ids = malloc((n + 1) * sizeof(int64_t)))) {
            b->ids_cap = 0;
            rc = djct_error_oom();
            goto fail;
        }
        b->ids_cap = n + 1;
    }
    memcpy(b->ids, ev, n * sizeof(int64_t));
    if (ds->pool) { /* between batches: make room, then let the pool decode what comes next */
        dataset_cache_trim(ds, step);
        dataset_pool_ahead(ds, step);
    }
    /* pass 1: open the sources, count rows per array */
    int64_t elements = 0;
    for (size_t i = 0, j, f; i < n; i = j) {
        source *s;
        if ((rc = file_run(ds, ev, n, i, &j, &f, &s)) < 0)
            goto fail;
        for (size_t k = 0; k < ds->n_arrays; k++) {
            if (!ds->ragged[k]) {
                rows[k] += j - i;
                continue;
            }
            const int64_t *rs = dataset_source_row_splits(s, k);
            for (size_t t = i; t < j; t++) {
                int64_t e = ev[t] - ds->first[f];
                rows[k] += (size_t)(rs[e + 1] - rs[e]);
            }
        }
        for (size_t t = i; t < j; t++)
            elements += ds->cnt[ev[t]];
    }
    size_t need = 0;
    for (size_t k = 0; k < ds->n_arrays; k++) {
        need += ALIGN64(rows[k] * ds->row_values[k] * djct_dtype_size(ds->lay[k]->dtype) + 1);
        if (ds->ragged[k])
            need += ALIGN64((n + 1) * sizeof(int64_t));
    }
    if (b->cap < need) {
        free(b->arena);
        if (!(b->arena = aligned_alloc(64, need))) {
            b->cap = 0;
            rc = djct_error_oom();
            goto fail;
        }
        b->cap = need;
    }
    /* lay the arrays out in the arena */
    char *p = b->arena;
    for (size_t k = 0; k < ds->n_arrays; k++) {
        djct_array *a = &b->arrays[k];
        const djct_array *l = ds->lay[k];
        memset(a, 0, sizeof(*a));
        a->name = l->name;
        a->feature_names = l->feature_names;
        a->n_feature_names = l->n_feature_names;
        a->dtype = l->dtype;
        a->ndim = l->ndim;
        memcpy(a->shape, l->shape, sizeof(a->shape));
        a->shape[0] = (int64_t)n;
        if (ds->ragged[k])
            a->shape[1] = -(int64_t)rows[k];
        a->n_values = rows[k] * ds->row_values[k];
        a->values = p;
        p += ALIGN64(a->n_values * djct_dtype_size(a->dtype) + 1);
        if (ds->ragged[k]) {
            a->row_splits = (int64_t *)p;
            a->n_row_splits = n + 1;
            a->row_splits[0] = 0;
            p += ALIGN64((n + 1) * sizeof(int64_t));
        }
    }
    /* pass 2: fill values and row splits file by file */
    size_t *vat = rows; /* reuse: rows already placed per array */
    memset(vat, 0, (ds->n_arrays + 1) * sizeof(size_t));
    for (size_t i = 0, j, f; i < n; i = j) {
        source *s;
        if ((rc = file_run(ds, ev, n, i, &j, &f, &s)) < 0)
            goto fail;
        for (size_t t = i; t < j; t++)
            local[t - i] = ev[t] - ds->first[f];
        for (size_t k = 0; k < ds->n_arrays; k++) {
            djct_array *a = &b->arrays[k];
            size_t es = djct_dtype_size(a->dtype), rv = ds->row_values[k];
            char *dst = (char *)a->values + vat[k] * rv * es;
            const int64_t *rs = ds->ragged[k] ? dataset_source_row_splits(s, k) : NULL;
            size_t placed = 0;
            for (size_t t = i; t < j; t++) {
                size_t nr = rs ? (size_t)(rs[local[t - i] + 1] - rs[local[t - i]]) : 1;
                placed += nr;
                if (rs)
                    a->row_splits[t + 1] = (int64_t)(vat[k] + placed);
            }
            if (s->h5) {
                if ((rc = djct_h5_file_gather(s->h5, k, local, j - i, dst)) < 0)
                    goto fail;
            } else {
                const char *src = s->flat[k]->values;
                for (size_t t = i; t < j; t++) {
                    int64_t e = local[t - i];
                    size_t r0 = rs ? (size_t)rs[e] : (size_t)e, nr = rs ? (size_t)(rs[e + 1] - rs[e]) : 1;
                    memcpy(dst, src + r0 * rv * es, nr * rv * es);
                    dst += nr * rv * es;
                }
            }
            vat[k] += placed;
        }
    }
    dataset_cache_trim(ds, step + 1);
    /* split the flat arrays over the containers */
    b->b.record.features = b->arrays;
    b->b.record.n_features = ds->counts[0];
    b->b.record.truths = b->arrays + ds->counts[0];
    b->b.record.n_truths = ds->counts[1];
    b->b.record.weights = b->arrays + ds->counts[0] + ds->counts[1];
    b->b.record.n_weights = ds->counts[2];
    b->b.n_events = (int64_t)n;
    b->b.n_elements = elements;
    b->b.epoch = ds->plan.epoch;
    b->b.step = step;
    b->b.event_ids = b->ids;
    b->b.wait_seconds = 0;
    free(local);
    free(rows);
    *out = b;
    return 0;
fail:
    dataset_cache_trim(ds, step + 1);
    free(local);
    free(rows);
    djct_batch_release(ds, b ? &b->b : NULL);
    return rc;
}

