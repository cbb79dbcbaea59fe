/* The decoded-file cache of the batch producer: a source is a file whose values are at hand (an
 * open HDF5 handle gathered from, mapped where libhdf5 allows, or a whole decoded file), kept
 * between batches up to a byte budget. Evicted least recently used, or, with a decode pool, the
 * one the plan reads last (the pool's files decoded ahead count in the budget). One thread at a
 * time: the producer. */
#include "djct/dataset.h"
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"
#include "djct/djcdata.h"
#include "djct/h5.h"
#include "h5_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void dataset_source_clear(source *s)
{
    djct_h5_file_close(s->h5);
    djct_record_clear(&s->rec);
    free(s->flat);
    memset(s, 0, sizeof(*s));
}

size_t dataset_cache_budget(const djct_dataset *ds) { return ds->o.cache_bytes ? ds->o.cache_bytes : (size_t)512 << 20; }

int dataset_source_cached(const djct_dataset *ds, size_t file)
{
    for (size_t i = 0; i < ds->nsrc; i++)
        if (ds->src[i].file == file)
            return 1;
    return 0;
}

/* A decoded file (s->rec) checked against the dataset's arrays and indexed; cleared on error. */
static int source_of_record(djct_dataset *ds, source *s)
{
    const djct_file_meta *m = &ds->files[s->file];
    const djct_array *l[3];
    size_t n[3], k = 0;
    dataset_layout_lists(&s->rec, l, n);
    if (n[0] != ds->counts[0] || n[1] != ds->counts[1] || n[2] != ds->counts[2]) {
        dataset_source_clear(s);
        return djct_error_set(DJCT_EINVAL, "dataset: '%s' changed since the dataset was opened (array counts)",
                              m->path);
    }
    if (!(s->flat = calloc(ds->n_arrays + 1, sizeof(*s->flat)))) {
        dataset_source_clear(s);
        return djct_error_oom();
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n[c]; i++, k++) {
            const djct_array *a = &l[c][i];
            s->flat[k] = a;
            s->bytes += a->n_values * djct_dtype_size(a->dtype) + a->n_row_splits * 8;
            if (djct_array_nrows(a) != m->n_events || djct_array_is_ragged(a) != ds->ragged[k] ||
                a->dtype != ds->lay[k]->dtype) {
                dataset_source_clear(s);
                return djct_error_set(DJCT_EINVAL, "dataset: '%s': %s array %zu changed since the dataset was "
                                      "opened (events, dtype or raggedness)", m->path, dataset_container_name[c], i);
            }
        }
    return 0;
}

/* into the cache (s is moved there, or cleared on error) */
static int source_insert(djct_dataset *ds, source *s, source **out)
{
    source *ns = realloc(ds->src, (ds->nsrc + 1) * sizeof(source));
    if (!ns) {
        dataset_source_clear(s);
        return djct_error_oom();
    }
    ds->src = ns;
    s->used = ++ds->tick;
    ds->src[ds->nsrc++] = *s;
    ds->cache_used += s->bytes;
    *out = &ds->src[ds->nsrc - 1];
    return 0;
}

int dataset_source_get(djct_dataset *ds, size_t file, source **out)
{
    for (size_t i = 0; i < ds->nsrc; i++)
        if (ds->src[i].file == file) {
            ds->src[i].used = ++ds->tick;
            *out = &ds->src[i];
            return 0;
        }
    source s = {0};
    s.file = file;
    const djct_file_meta *m = &ds->files[file];
    int rc;
    size_t budget = dataset_cache_budget(ds), total = 0;
    for (size_t k = 0; k < ds->n_arrays; k++) {
        const djct_array *a = k < ds->counts[0] ? &m->layout.features[k]
                              : k < ds->counts[0] + ds->counts[1] ? &m->layout.truths[k - ds->counts[0]]
                              : &m->layout.weights[k - ds->counts[0] - ds->counts[1]];
        size_t rows = (size_t)(ds->ragged[k] ? -a->shape[1] : a->shape[0]);
        total += rows * ds->row_values[k] * djct_dtype_size(a->dtype);
    }
    /* Files whose arrays libhdf5 lets us map (uncompressed, native) are always gathered event by
     * event from the mapping: a rank touches only its own events. Other HDF5 files up to a quarter
     * of the budget are read whole once and served from memory (libhdf5's per-hyperslab overhead
     * dwarfs an event's bytes); larger ones are gathered through libhdf5 with a chunk cache. */
    int h5_gather = m->format == DJCT_FORMAT_H5, have_rec = 0;
    if (h5_gather && total <= budget / 4) {
        if ((rc = djct_h5_file_open_map(&s.h5, m->path, 0, ds->h5map)) < 0)
            return rc;
        if (djct_h5_file_direct(s.h5)) {
            s.bytes = 4096; /* mapped: the page cache holds the data, not the dataset */
        } else { /* read whole, from the handle already open */
            rc = djct_h5_file_read_all(s.h5, &s.rec);
            djct_h5_file_close(s.h5);
            s.h5 = NULL;
            if (rc < 0)
                return rc;
            have_rec = 1;
            h5_gather = 0;
        }
    }
    if (h5_gather && !s.h5) {
        /* a chunk cache up to a quarter of the budget, so random events do not re-read chunks */
        size_t vb = 0;
        for (size_t k = 0; k < ds->n_arrays; k++) {
            const djct_array *a = k < ds->counts[0] ? &m->layout.features[k]
                                  : k < ds->counts[0] + ds->counts[1] ? &m->layout.truths[k - ds->counts[0]]
                                  : &m->layout.weights[k - ds->counts[0] - ds->counts[1]];
            size_t rows = (size_t)(ds->ragged[k] ? -a->shape[1] : a->shape[0]);
            size_t bytes = rows * ds->row_values[k] * djct_dtype_size(a->dtype);
            vb = bytes > vb ? bytes : vb;
        }
        size_t cc = vb + ((size_t)1 << 20) < budget / 4 ? vb + ((size_t)1 << 20) : budget / 4;
        if ((rc = djct_h5_file_open_map(&s.h5, m->path, cc, ds->h5map)) < 0)
            return rc;
        /* what the chunk caches may grow to; a mapped file lives in the page cache instead */
        s.bytes = 4096 + (djct_h5_file_direct(s.h5) ? 0 : cc * ds->n_arrays);
    }
    if (h5_gather && djct_h5_file_direct(s.h5) && !ds->prefaulted[file] && ds->o.prefault_bytes) {
        /* once per file: later opens of an evicted file find its pages in the page cache */
        ds->prefaulted[file] = 1;
        int64_t left = (int64_t)ds->o.prefault_bytes - ds->prefault_used;
        int64_t got = left > 0 ? djct_h5_file_prefault(s.h5, left) : 0;
        if (got < 0) {
            dataset_source_clear(&s);
            return (int)got;
        }
        ds->prefault_used += got;
    }
    if (h5_gather) {
        if (djct_h5_file_meta(s.h5)->n_events != m->n_events) {
            rc = djct_error_set(DJCT_EINVAL, "dataset: '%s' now has %" PRId64 " events, had %" PRId64
                                " when the dataset was opened", m->path, djct_h5_file_meta(s.h5)->n_events,
                                m->n_events);
            dataset_source_clear(&s);
            return rc;
        }
    } else {
        djct_h5_read_options ro = DJCT_H5_READ_OPTIONS_INIT;
        ro.map = ds->h5map;
        if (!have_rec && (rc = m->format == DJCT_FORMAT_H5 ? djct_h5_read_ext(&s.rec, m->path, &ro)
                               : ds->pool                 ? dataset_pool_take(ds, file, &s.rec)
                                                          : djct_djcdata_read(&s.rec, m->path)) < 0)
            return rc;
        if ((rc = source_of_record(ds, &s)) < 0)
            return rc;
    }
    return source_insert(ds, &s, out);
}

int dataset_source_adopt(djct_dataset *ds, size_t file, djct_record *rec)
{
    source s = {0}, *out;
    int rc;
    s.file = file;
    s.rec = *rec;
    memset(rec, 0, sizeof(*rec));
    if ((rc = source_of_record(ds, &s)) < 0)
        return rc;
    return source_insert(ds, &s, &out);
}

void dataset_cache_trim(djct_dataset *ds, int64_t from)
{
    size_t budget = dataset_cache_budget(ds);
    while (ds->nsrc && (ds->cache_used + ds->ahead_bytes > budget || ds->nsrc > MAX_OPEN_H5)) {
        size_t v = 0;
        if (ds->pool) { /* the plan knows the future: drop what it reads last, or not again */
            int64_t vn = dataset_pool_next_use(ds, ds->src[0].file, from);
            for (size_t i = 1; i < ds->nsrc; i++) {
                int64_t n = dataset_pool_next_use(ds, ds->src[i].file, from);
                if (n > vn || (n == vn && ds->src[i].used < ds->src[v].used)) {
                    v = i;
                    vn = n;
                }
            }
        } else {
            for (size_t i = 1; i < ds->nsrc; i++)
                if (ds->src[i].used < ds->src[v].used)
                    v = i;
        }
        ds->cache_used -= ds->src[v].bytes;
        if (ds->pool)
            dataset_pool_evicted(ds, ds->src[v].file, from);
        dataset_source_clear(&ds->src[v]);
        ds->src[v] = ds->src[--ds->nsrc];
    }
}

const int64_t *dataset_source_row_splits(const source *s, size_t k)
{
    return s->h5 ? djct_h5_file_row_splits(s->h5, k) : s->flat[k]->row_splits;
}

