/* Test fixtures for the dataset tests: files whose values encode the global event id, so a
 * batch can be checked against its source events. Event g with n points: points[j] =
 * (g * 1000 + j, -g), label = g (int32 [n, 1]). */
#ifndef DJCT_TEST_DATA_FIXTURES_H
#define DJCT_TEST_DATA_FIXTURES_H

#include "djct/djct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    djct_array *l = &r->truths[0];
    l->name = strdup("label");
    l->dtype = DJCT_DTYPE_INT32;
    l->ndim = 2;
    l->shape[0] = n;
    l->shape[1] = 1;
    l->n_values = (size_t)n;
    int32_t *lv = malloc(4 * (size_t)n + 4);
    for (int64_t e = 0; e < n; e++)
        lv[e] = (int32_t)(first_id + e);
    l->values = lv;
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

/* heavy-tailed point counts: round(lognormal) with mean `mean` and sigma 1 (Box-Muller on a
 * splitmix stream), at least 1 */
static inline uint64_t fx_mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
#include <math.h>
static inline void fx_lognormal_counts(int64_t *c, int64_t n, double mean, uint64_t seed)
{
    uint64_t s = seed;
    double mu = log(mean) - 0.5;
    for (int64_t i = 0; i < n; i++) {
        double u1 = ((double)(fx_mix(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(fx_mix(&s) >> 11) / 9007199254740992.0;
        double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        int64_t k = (int64_t)llround(exp(mu + z));
        c[i] = k < 1 ? 1 : k;
    }
}

#endif
