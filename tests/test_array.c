/* array module: dtype table, invariant checks with named fields, deep copy, release. */
#include "harness.h"
#include "djct_int.h"

#include <float.h>
#include <math.h>

/* the gradient check: NaN and +-Inf anywhere (the vector body, the tail, a lane boundary) are
 * found; the largest finite values, subnormals, -0 and empty slabs are finite */
static void test_all_finite(void)
{
    enum { N = 1000 }; /* 62 blocks of 16 and a tail of 8 */
    float *g = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        g[i] = (i % 3 ? 1.0f : -1.0f) * (float)i * 1e-3f;
    g[5] = FLT_MAX;
    g[6] = -FLT_MAX;
    g[7] = 1e-45f; /* subnormal */
    g[8] = -0.0f;
    CHECK(djct_all_finite(g, N) == 1);
    CHECK(djct_all_finite(g, 0) == 1);
    float bad[3] = {NAN, INFINITY, -INFINITY};
    int at[6] = {0, 15, 16, 511, 992, N - 1}, caught = 0, tries = 0;
    for (int b = 0; b < 3; b++)
        for (int k = 0; k < 6; k++) {
            float keep = g[at[k]];
            g[at[k]] = bad[b];
            caught += djct_all_finite(g, N) == 0;
            caught += djct_all_finite(g + at[k], 1) == 0; /* alone: the tail path */
            tries += 2;
            g[at[k]] = keep;
        }
    CHECK(caught == tries);
    CHECK(djct_all_finite(g, N) == 1);
    free(g);
}

int main(void)
{
    test_all_finite();
    CHECK(djct_dtype_size(DJCT_DTYPE_FLOAT32) == 4 && djct_dtype_size(DJCT_DTYPE_INT64) == 8);
    CHECK(djct_dtype_size((djct_dtype)99) == 0);
    CHECK(strcmp(djct_dtype_name(DJCT_DTYPE_BFLOAT16), "bfloat16") == 0);

    /* the spec's example: rowsplits [0,1,3], values [[1,2],[3,4],[5,6]], shape [2,-3,2] */
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t rs[3] = {0, 1, 3};
    char *fn[2] = {"a", "b"};
    djct_array a = {.name = "ex", .feature_names = fn, .n_feature_names = 2, .dtype = DJCT_DTYPE_FLOAT32,
                    .ndim = 3, .shape = {2, -3, 2}, .row_splits = rs, .n_row_splits = 3, .values = v,
                    .n_values = 6};
    CHECK_OK(djct_array_validate(&a));
    CHECK(djct_array_is_ragged(&a) && djct_array_nrows(&a) == 2 && djct_array_inner_size(&a) == 2);

    djct_array c;
    CHECK_OK(djct_array_copy(&c, &a));
    CHECK(c.values != a.values && memcmp(c.values, v, sizeof(v)) == 0);
    CHECK(strcmp(c.name, "ex") == 0 && c.n_feature_names == 2 && strcmp(c.feature_names[1], "b") == 0);
    CHECK(c.row_splits[2] == 3);
    CHECK_OK(djct_array_validate(&c));

    c.row_splits[1] = 4; /* decreasing */
    CHECK_ERR(djct_array_validate(&c), DJCT_EINVAL, "decrease at index 2");
    c.row_splits[1] = 1;
    c.row_splits[2] = 2;
    CHECK_ERR(djct_array_validate(&c), DJCT_EINVAL, "last row split 2");
    c.row_splits[2] = 3;
    c.n_values = 5;
    CHECK_ERR(djct_array_validate(&c), DJCT_EINVAL, "shape gives 6 values, array holds 5");
    c.n_values = 6;
    c.shape[1] = 3;
    CHECK_ERR(djct_array_validate(&c), DJCT_EINVAL, "ex");
    djct_array_clear(&c);
    CHECK(c.values == NULL && c.name == NULL);

    int32_t iv[6] = {0};
    djct_array r = {.name = "", .dtype = DJCT_DTYPE_INT32, .ndim = 2, .shape = {3, 2}, .values = iv, .n_values = 6};
    CHECK_OK(djct_array_validate(&r));
    CHECK(!djct_array_is_ragged(&r) && djct_array_inner_size(&r) == 2);
    r.shape[1] = -2;
    CHECK_ERR(djct_array_validate(&r), DJCT_EINVAL, "shape[1] = -2 is negative");
    r.ndim = 0;
    CHECK_ERR(djct_array_validate(&r), DJCT_EINVAL, "ndim 0");

    djct_record rec = {0};
    rec.features = calloc(1, sizeof(djct_array));
    rec.n_features = 1;
    CHECK_OK(djct_array_copy(&rec.features[0], &a));
    djct_record_clear(&rec);
    CHECK(rec.features == NULL && rec.n_features == 0);
    djct_record_clear(NULL);
    return harness_report();
}
