/* Arrays and records: dtype sizes, invariant checks, copies and release. */
#include "djct/array.h"
#include "djct/error.h"
#include "djct_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t djct_dtype_size(djct_dtype t)
{
    switch (t) {
    case DJCT_DTYPE_FLOAT32:
    case DJCT_DTYPE_INT32: return 4;
    case DJCT_DTYPE_FLOAT64:
    case DJCT_DTYPE_INT64: return 8;
    case DJCT_DTYPE_FLOAT16:
    case DJCT_DTYPE_BFLOAT16: return 2;
    }
    return 0;
}

const char *djct_dtype_name(djct_dtype t)
{
    switch (t) {
    case DJCT_DTYPE_FLOAT32: return "float32";
    case DJCT_DTYPE_INT32: return "int32";
    case DJCT_DTYPE_FLOAT64: return "float64";
    case DJCT_DTYPE_INT64: return "int64";
    case DJCT_DTYPE_FLOAT16: return "float16";
    case DJCT_DTYPE_BFLOAT16: return "bfloat16";
    }
    return "unknown";
}

/* metadata layouts carry n_row_splits without the splits themselves */
int djct_array_is_ragged(const djct_array *a) { return a && (a->row_splits != NULL || a->n_row_splits > 0); }

int64_t djct_array_nrows(const djct_array *a) { return a && a->ndim > 0 ? a->shape[0] : 0; }

int64_t djct_array_inner_size(const djct_array *a)
{
    int64_t n = 1;
    for (int i = djct_array_is_ragged(a) ? 2 : 1; a && i < a->ndim; i++)
        n *= a->shape[i];
    return n;
}

#define ANAME(a) ((a)->name && (a)->name[0] ? (a)->name : "(unnamed)")

int djct_array_validate(const djct_array *a)
{
    DJCT_CHECK_ARG(a);
    if (a->ndim < 1 || a->ndim > DJCT_MAX_DIMS)
        return djct_error_set(DJCT_EINVAL, "array '%s': ndim %d outside 1..%d", ANAME(a), a->ndim,
                              DJCT_MAX_DIMS);
    if (djct_dtype_size(a->dtype) == 0)
        return djct_error_set(DJCT_EINVAL, "array '%s': unknown dtype %d", ANAME(a), (int)a->dtype);
    int ragged = djct_array_is_ragged(a);
    if (ragged && a->ndim < 2)
        return djct_error_set(DJCT_EINVAL, "array '%s': ragged arrays need ndim >= 2", ANAME(a));
    /* product of |dims| (restarting at the ragged one), checked for overflow */
    uint64_t total = 1;
    for (int i = ragged ? 1 : 0; i < a->ndim; i++) {
        int64_t d = a->shape[i];
        if (i == 1 && ragged) {
            if (d > 0)
                return djct_error_set(DJCT_EINVAL,
                                      "array '%s': ragged shape[1] must be minus the element count, got %" PRId64,
                                      ANAME(a), d);
            d = -d;
        } else if (d < 0) {
            return djct_error_set(DJCT_EINVAL, "array '%s': shape[%d] = %" PRId64 " is negative", ANAME(a), i, d);
        }
        if (d != 0 && total > UINT64_MAX / (uint64_t)d)
            return djct_error_set(DJCT_EINVAL, "array '%s': shape product overflows", ANAME(a));
        total *= (uint64_t)d;
    }
    if (!ragged && a->shape[0] < 0)
        return djct_error_set(DJCT_EINVAL, "array '%s': shape[0] = %" PRId64 " is negative", ANAME(a), a->shape[0]);
    if (total != a->n_values)
        return djct_error_set(DJCT_EINVAL, "array '%s': shape gives %" PRIu64 " values, array holds %zu",
                              ANAME(a), total, a->n_values);
    if (a->n_values && !a->values)
        return djct_error_set(DJCT_EINVAL, "array '%s': %zu values but no storage", ANAME(a), a->n_values);
    if (ragged) {
        if (a->shape[0] < 0 || a->n_row_splits != (size_t)a->shape[0] + 1)
            return djct_error_set(DJCT_EINVAL, "array '%s': %zu row splits for %" PRId64 " events (want events+1)",
                                  ANAME(a), a->n_row_splits, a->shape[0]);
        if (!a->row_splits)
            return djct_error_set(DJCT_EINVAL, "array '%s': ragged but its row splits are not loaded", ANAME(a));
        if (a->row_splits[0] != 0)
            return djct_error_set(DJCT_EINVAL, "array '%s': row_splits[0] = %" PRId64 ", must be 0", ANAME(a),
                                  a->row_splits[0]);
        for (size_t i = 1; i < a->n_row_splits; i++)
            if (a->row_splits[i] < a->row_splits[i - 1])
                return djct_error_set(DJCT_EINVAL, "array '%s': row splits decrease at index %zu (%" PRId64
                                      " after %" PRId64 ")", ANAME(a), i, a->row_splits[i], a->row_splits[i - 1]);
        if (a->row_splits[a->n_row_splits - 1] != -a->shape[1])
            return djct_error_set(DJCT_EINVAL, "array '%s': last row split %" PRId64 " != element count %" PRId64,
                                  ANAME(a), a->row_splits[a->n_row_splits - 1], -a->shape[1]);
    }
    return 0;
}

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

int djct_array_copy(djct_array *dst, const djct_array *src)
{
    DJCT_CHECK_ARG(dst);
    DJCT_CHECK_ARG(src);
    djct_array t = *src;
    t.name = NULL;
    t.feature_names = NULL;
    t.row_splits = NULL;
    t.values = NULL;
    t.n_feature_names = 0;
    if (!(t.name = dupstr(src->name)))
        goto oom;
    if (src->n_feature_names) {
        if (!(t.feature_names = calloc(src->n_feature_names, sizeof(char *))))
            goto oom;
        for (size_t i = 0; i < src->n_feature_names; i++, t.n_feature_names++)
            if (!(t.feature_names[i] = dupstr(src->feature_names[i])))
                goto oom;
    }
    if (src->row_splits) {
        if (!(t.row_splits = malloc(src->n_row_splits * sizeof(int64_t) + 1)))
            goto oom;
        memcpy(t.row_splits, src->row_splits, src->n_row_splits * sizeof(int64_t));
    }
    size_t bytes = src->n_values * djct_dtype_size(src->dtype);
    if (!(t.values = malloc(bytes ? bytes : 1)))
        goto oom;
    if (bytes)
        memcpy(t.values, src->values, bytes);
    *dst = t;
    return 0;
oom:
    djct_array_clear(&t);
    return djct_error_oom();
}

void djct_array_clear(djct_array *a)
{
    if (!a)
        return;
    free(a->name);
    for (size_t i = 0; i < a->n_feature_names; i++)
        free(a->feature_names[i]);
    free(a->feature_names);
    free(a->row_splits);
    free(a->values);
    memset(a, 0, sizeof(*a));
}

void djct_record_clear(djct_record *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_features; i++)
        djct_array_clear(&r->features[i]);
    for (size_t i = 0; i < r->n_truths; i++)
        djct_array_clear(&r->truths[i]);
    for (size_t i = 0; i < r->n_weights; i++)
        djct_array_clear(&r->weights[i]);
    free(r->features);
    free(r->truths);
    free(r->weights);
    memset(r, 0, sizeof(*r));
}

void djct_file_meta_clear(djct_file_meta *m)
{
    if (!m)
        return;
    free(m->path);
    free(m->event_elements);
    djct_record_clear(&m->layout);
    memset(m, 0, sizeof(*m));
}

DJCT_VECTORIZE int djct_all_finite(const float *g, size_t n)
{
    /* A float is NaN or Inf exactly when its exponent bits are all ones; adding one to the
     * exponent of such a value (sign cleared) carries into bit 31, and into no other case. OR-ing
     * that over 16 independent lanes vectorises (DJCT_VECTORIZE); a running float sum (NaN and
     * Inf propagate) is one serial chain of additions, too slow for the trainer's every step. */
    uint32_t m[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            uint32_t u;
            memcpy(&u, g + i + j, sizeof u);
            m[j] |= (u & 0x7fffffffu) + 0x00800000u;
        }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, g + i, sizeof u);
        m[0] |= (u & 0x7fffffffu) + 0x00800000u;
    }
    uint32_t any = 0;
    for (int j = 0; j < 16; j++)
        any |= m[j];
    return !(any & 0x80000000u);
}

/* the first row of `a` (of `rows`) with a non-finite value, or -1 */
static int64_t nonfinite_row(const djct_array *a, int64_t rows)
{
    if ((a->dtype != DJCT_DTYPE_FLOAT32 && a->dtype != DJCT_DTYPE_FLOAT64) || !a->values || rows <= 0)
        return -1;
    int64_t inner = 1; /* values per element (ragged) or per row (regular) */
    for (int d = djct_array_is_ragged(a) ? 2 : 1; d < a->ndim; d++)
        inner *= a->shape[d] > 0 ? a->shape[d] : 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t v0 = a->row_splits ? a->row_splits[r] * inner : r * inner;
        int64_t v1 = a->row_splits ? a->row_splits[r + 1] * inner : (r + 1) * inner;
        if (v1 > (int64_t)a->n_values || v0 < 0)
            return -1; /* not a shape this function understands; say nothing rather than guess */
        for (int64_t i = v0; i < v1; i++) {
            double x = a->dtype == DJCT_DTYPE_FLOAT32 ? (double)((const float *)a->values)[i] : ((const double *)a->values)[i];
            if (!isfinite(x))
                return r;
        }
    }
    return -1;
}

int64_t djct_record_nonfinite_event(const djct_record *r, char *array, size_t cap)
{
    static const char *kind[3] = {"features", "truths", "weights"};
    const djct_array *lists[3] = {r->features, r->truths, r->weights};
    size_t counts[3] = {r->n_features, r->n_truths, r->n_weights};
    int64_t best = -1;
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < counts[k]; i++) {
            const djct_array *a = &lists[k][i];
            int64_t row = nonfinite_row(a, djct_array_nrows(a));
            if (row >= 0 && (best < 0 || row < best)) {
                best = row;
                if (array && cap) {
                    if (a->name && *a->name)
                        snprintf(array, cap, "%s '%s'", kind[k], a->name);
                    else
                        snprintf(array, cap, "%s %zu", kind[k], i);
                }
            }
        }
    return best;
}
