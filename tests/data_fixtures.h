/* Test fixtures for the data tests (djcdata, h5, dataset). Files whose values encode the global
 * event id, so a batch can be checked against its source events: event g with n points has
 * points[j] = (g * 1000 + j, -g), label = g (int32 [n, 1]). Also the scratch directory's paths,
 * record comparison, HDF5 files built with libhdf5 directly, and one epoch's digest. */
#ifndef DJCT_TEST_DATA_FIXTURES_H
#define DJCT_TEST_DATA_FIXTURES_H

#include "djct/djct.h"
#include "util_int.h" /* djct_splitmix64 */

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the test's scratch directory (its main makes it) and a path in it; the last eight
 * paths returned stay valid */
static char fx_dir[256];
static inline const char *fx_path(const char *name)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", fx_dir, name);
    return buf[i];
}

/* Fill *a (cleared first) as array `name` of dtype dt and the given shape, holding n_values
 * values; returns its value buffer (malloc'ed, 4 bytes spare) for the caller to fill. */
static inline void *fx_array(djct_array *a, const char *name, djct_dtype dt, int ndim, const int64_t *shape,
                             size_t n_values)
{
    memset(a, 0, sizeof(*a));
    a->name = strdup(name);
    a->dtype = dt;
    a->ndim = ndim;
    memcpy(a->shape, shape, sizeof(int64_t) * (size_t)ndim);
    a->n_values = n_values;
    return a->values = malloc(4 * n_values + 4);
}

/* the same array: dtype, shape, name, feature names, row splits and values */
static inline int fx_arrays_equal(const djct_array *a, const djct_array *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->n_values != b->n_values ||
        memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) || strcmp(a->name, b->name) ||
        a->n_feature_names != b->n_feature_names || a->n_row_splits != b->n_row_splits ||
        !a->row_splits != !b->row_splits)
        return 0;
    for (size_t i = 0; i < a->n_feature_names; i++)
        if (strcmp(a->feature_names[i], b->feature_names[i]))
            return 0;
    if (a->n_row_splits && memcmp(a->row_splits, b->row_splits, a->n_row_splits * sizeof(int64_t)))
        return 0;
    return a->n_values == 0 || memcmp(a->values, b->values, a->n_values * 4) == 0;
}

/* the same record: every array of features, truths and weights equal */
static inline int fx_records_equal(const djct_record *a, const djct_record *b)
{
    const djct_array *la[3] = {a->features, a->truths, a->weights}, *lb[3] = {b->features, b->truths, b->weights};
    size_t na[3] = {a->n_features, a->n_truths, a->n_weights}, nb[3] = {b->n_features, b->n_truths, b->n_weights};
    for (int c = 0; c < 3; c++) {
        if (na[c] != nb[c])
            return 0;
        for (size_t i = 0; i < na[c]; i++)
            if (!fx_arrays_equal(&la[c][i], &lb[c][i]))
                return 0;
    }
    return 1;
}

/* a new HDF5 file at p, with the root attribute djct_format = fmt as a fixed-length string
 * (fmt NULL: none) */
static inline hid_t fx_h5_new_file(const char *p, const char *fmt)
{
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (fmt) {
        hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
        H5Tset_size(t, strlen(fmt));
        hid_t a = H5Acreate2(f, "djct_format", t, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, fmt);
        H5Aclose(a);
        H5Sclose(s);
        H5Tclose(t);
    }
    return f;
}

/* h5py's bool: an enum of a signed byte, FALSE = 0 and TRUE = 1 */
static inline hid_t fx_h5_bool_type(void)
{
    hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t v = 0;
    H5Tenum_insert(t, "FALSE", &v);
    v = 1;
    H5Tenum_insert(t, "TRUE", &v);
    return t;
}

/* a record of n events with the given point counts, global ids first_id.. ; ragged = 0 gives a
 * regular [n, 2] feature instead */
static inline void fx_record(djct_record *r, const int64_t *counts, int64_t n, int64_t first_id, int ragged)
{
    memset(r, 0, sizeof(*r));
    r->features = calloc(1, sizeof(djct_array));
    r->truths = calloc(1, sizeof(djct_array));
    r->n_features = r->n_truths = 1;
    djct_array *p = &r->features[0];
    p->name = strdup("points");
    p->dtype = DJCT_DTYPE_FLOAT32;
    if (ragged) {
        p->row_splits = malloc(sizeof(int64_t) * (size_t)(n + 1));
        p->row_splits[0] = 0;
        for (int64_t e = 0; e < n; e++)
            p->row_splits[e + 1] = p->row_splits[e] + counts[e];
        p->n_row_splits = (size_t)n + 1;
        int64_t T = p->row_splits[n];
        p->ndim = 3;
        p->shape[0] = n;
        p->shape[1] = -T;
        p->shape[2] = 2;
        p->n_values = (size_t)T * 2;
        float *v = malloc(p->n_values * 4 + 4);
        for (int64_t e = 0; e < n; e++)
            for (int64_t j = p->row_splits[e]; j < p->row_splits[e + 1]; j++) {
                v[2 * j] = (float)((first_id + e) * 1000 + (j - p->row_splits[e]));
                v[2 * j + 1] = (float)-(first_id + e);
            }
        p->values = v;
    } else {
        p->ndim = 2;
        p->shape[0] = n;
        p->shape[1] = 2;
        p->n_values = (size_t)n * 2;
        float *v = malloc(p->n_values * 4 + 4);
        for (int64_t e = 0; e < n; e++) {
            v[2 * e] = (float)((first_id + e) * 1000);
            v[2 * e + 1] = (float)-(first_id + e);
        }
        p->values = v;
    }
    int32_t *lv = fx_array(&r->truths[0], "label", DJCT_DTYPE_INT32, 2, (const int64_t[]){n, 1}, (size_t)n);
    for (int64_t e = 0; e < n; e++)
        lv[e] = (int32_t)(first_id + e);
}

/* write such a file as .h5 (gzip 0/1) or .djctd, by the extension of path */
static inline int fx_write(const char *path, const int64_t *counts, int64_t n, int64_t first_id, int ragged)
{
    djct_record r;
    fx_record(&r, counts, n, first_id, ragged);
    int rc;
    size_t len = strlen(path);
    if (len > 3 && !strcmp(path + len - 3, ".h5")) {
        djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
        o.chunk_bytes = 256;
        o.gzip_level = (first_id / 7) % 2; /* mix plain and gzip */
        rc = djct_h5_write(path, &r, &o);
    } else
        rc = djct_djcdata_write(path, &r, NULL);
    djct_record_clear(&r);
    if (rc)
        fprintf(stderr, "fx_write %s: %s\n", path, djct_last_error());
    return rc;
}

/* check a batch against the encoding above: every event's points and label match its id,
 * row splits start at 0 and match n_elements; returns 1 when all is well */
static inline int fx_check_batch(const djct_batch *b, int ragged)
{
    const djct_array *p = &b->record.features[0], *l = &b->record.truths[0];
    if (p->shape[0] != b->n_events || l->shape[0] != b->n_events)
        return 0;
    const float *v = p->values;
    const int32_t *lv = l->values;
    for (int64_t i = 0; i < b->n_events; i++) {
        int64_t g = b->event_ids[i];
        if (lv[i] != g)
            return 0;
        if (ragged) {
            for (int64_t j = p->row_splits[i]; j < p->row_splits[i + 1]; j++)
                if (v[2 * j] != (float)(g * 1000 + (j - p->row_splits[i])) || v[2 * j + 1] != (float)-g)
                    return 0;
        } else if (v[2 * i] != (float)(g * 1000) || v[2 * i + 1] != (float)-g)
            return 0;
    }
    if (ragged && (p->row_splits[0] != 0 || p->row_splits[b->n_events] != b->n_elements ||
                   p->shape[1] != -b->n_elements))
        return 0;
    return 1;
}

/* One epoch of ds: every batch checked with fx_check_batch(b, 1) (*bad counts the failures), its
 * event ids hashed in order (FNV-1a; with mark_batches also every batch's end) into *hash and
 * counted in seen[event id] (seen may be NULL). *events and *batches count them. Returns the
 * last djct_dataset_next result (0 at the epoch's end). */
static inline int fx_epoch(djct_dataset *ds, int mark_batches, int *seen, int *bad, uint64_t *hash,
                           int64_t *events, int64_t *batches)
{
    djct_batch *b;
    uint64_t h = 1469598103934665603ull;
    int rc;
    *events = *batches = 0;
    while ((rc = djct_dataset_next(ds, &b)) == 0 && b) {
        if (!fx_check_batch(b, 1))
            (*bad)++;
        for (int64_t i = 0; i < b->n_events; i++) {
            h = (h ^ (uint64_t)b->event_ids[i]) * 1099511628211ull;
            if (seen)
                seen[b->event_ids[i]]++;
        }
        if (mark_batches)
            h = (h ^ 0xffffu) * 1099511628211ull; /* batch boundary */
        *events += b->n_events;
        (*batches)++;
        djct_batch_release(ds, b);
    }
    *hash = h;
    return rc;
}

/* heavy-tailed point counts: round(lognormal) with mean `mean` and sigma 1 (Box-Muller on a
 * splitmix stream), at least 1 */
#include <math.h>
static inline void fx_lognormal_counts(int64_t *c, int64_t n, double mean, uint64_t seed)
{
    uint64_t s = seed;
    double mu = log(mean) - 0.5;
    for (int64_t i = 0; i < n; i++) {
        double u1 = ((double)(djct_splitmix64(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(djct_splitmix64(&s) >> 11) / 9007199254740992.0;
        double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        int64_t k = (int64_t)llround(exp(mu + z));
        c[i] = k < 1 ? 1 : k;
    }
}

#endif
