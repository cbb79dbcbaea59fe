/* HDF5 as users write it (the h5 module's h5_convert.c and h5_map.c): values of every dtype djct
 * reads, converted at read to float32/int32 with every narrowing value checked (the error names
 * dataset, row and event); `counts` instead of `row_splits`; mapping files (parse errors by line,
 * datasets the file lacks, the map beside a file, offsets, a dtype asked for); a dataset reading
 * mapped, converted files the same through both of its paths; and files written by h5py with its
 * default dtypes. Files are real HDF5 files, written with libhdf5 here or with h5py. */
#include "harness.h"
#include "data_fixtures.h"
#include "h5_file_int.h"

#include <hdf5.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>


static void put_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* a contiguous dataset `name` under loc of file type `ft`, written from `data` of memory type mt */
static void ds(hid_t loc, const char *name, hid_t ft, hid_t mt, int rank, const hsize_t *dims, const void *data)
{
    hid_t s = H5Screate_simple(rank, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(loc, name, ft, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0 && data)
        H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(s);
}

static void ds1(hid_t loc, const char *name, hid_t ft, hid_t mt, hsize_t n, const void *data)
{
    ds(loc, name, ft, mt, 1, &n, data);
}

/* IEEE half precision, as h5py makes it for numpy.float16 */
static hid_t half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

static const djct_array *flat(const djct_record *r, size_t k)
{
    if (k < r->n_features)
        return &r->features[k];
    k -= r->n_features;
    return k < r->n_truths ? &r->truths[k] : &r->weights[k - r->n_truths];
}

static int same_bits(float a, float b) { return !memcmp(&a, &b, 4); }

/* ---- every dtype, in djct's layout ------------------------------------------------------- */

static void test_dtypes(void)
{
    const char *p = fx_path("dtypes.h5");
    hid_t f = fx_h5_new_file(p, DJCT_H5_LAYOUT), bt = fx_h5_bool_type(), ht = half_type();
    double f64[12];
    for (int i = 0; i < 12; i++)
        f64[i] = i * 0.1 - 0.35;
    hsize_t d62[2] = {6, 2}, d322[3] = {3, 2, 2}, d32[2] = {3, 2};
    int64_t counts[3] = {2, 0, 4};
    ds(f, "features/000/values", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d62, f64);
    ds1(f, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, counts);
    uint8_t u8[3] = {0, 128, 255};
    ds1(f, "features/001/values", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, u8);
    uint8_t b[12] = {0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1};
    ds(f, "features/002/values", bt, bt, 3, d322, b);
    uint16_t h[6] = {0x3C00, 0x7C00, 0x0001, 0x7E00, 0x8000, 0x7BFF}; /* 1, inf, 2^-24, nan, -0, 65504 */
    ds(f, "features/003/values", ht, ht, 2, d32, h);
    int16_t i16[3] = {-32768, 0, 32767};
    ds1(f, "features/004/values", H5T_STD_I16LE, H5T_NATIVE_INT16, 3, i16);
    float f32[3] = {0.5f, -1.25f, 3e38f};
    ds1(f, "features/005/values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, f32);
    double be[3] = {1.5, -2.25, 1e-3};
    ds1(f, "features/006/values", H5T_IEEE_F64BE, H5T_NATIVE_DOUBLE, 3, be);
    int64_t i64[3] = {-5, INT32_MAX, INT32_MIN};
    ds1(f, "truths/000/values", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, i64);
    uint32_t u32[3] = {0, 7, INT32_MAX};
    ds1(f, "truths/001/values", H5T_STD_U32LE, H5T_NATIVE_UINT32, 3, u32);
    uint64_t u64[3] = {1, 2, 3};
    ds1(f, "truths/002/values", H5T_STD_U64BE, H5T_NATIVE_UINT64, 3, u64);
    int8_t i8[3] = {-128, 0, 127};
    ds1(f, "truths/003/values", H5T_STD_I8LE, H5T_NATIVE_INT8, 3, i8);
    uint16_t u16[3] = {0, 1, 65535};
    ds1(f, "truths/004/values", H5T_STD_U16LE, H5T_NATIVE_UINT16, 3, u16);
    int32_t i32be[3] = {-7, 8, 9};
    ds1(f, "weights/000/values", H5T_STD_I32BE, H5T_NATIVE_INT32, 3, i32be);
    H5Tclose(bt);
    H5Tclose(ht);
    H5Fclose(f);

    djct_record r;
    CHECK_OK(djct_h5_read(&r, p));
    if (r.n_features != 7 || r.n_truths != 5 || r.n_weights != 1) {
        CHECK(!"7 features, 5 truths, 1 weight");
        djct_record_clear(&r);
        return;
    }
    /* dtypes and shapes: floating point as float32, integers and bools as int32 */
    const djct_array *a0 = &r.features[0], *a2 = &r.features[2], *a3 = &r.features[3];
    CHECK(a0->dtype == DJCT_DTYPE_FLOAT32 && a0->ndim == 3 && a0->shape[0] == 3 && a0->shape[1] == -6 &&
          a0->shape[2] == 2 && a0->row_splits[1] == 2 && a0->row_splits[2] == 2 && a0->row_splits[3] == 6);
    CHECK(a2->dtype == DJCT_DTYPE_INT32 && a2->ndim == 3 && a2->shape[1] == 2 && a2->shape[2] == 2 && !a2->row_splits);
    harness_rows v = HARNESS_ROWS_INIT;
    for (int i = 0; i < 12; i++)
        ROW(v, same_bits(((float *)a0->values)[i], (float)f64[i]), "float64 value %d: %.9g", i, ((float *)a0->values)[i]);
    for (int i = 0; i < 3; i++) {
        ROW(v, ((int32_t *)r.features[1].values)[i] == u8[i], "uint8 %d", i);
        ROW(v, ((int32_t *)r.features[4].values)[i] == i16[i], "int16 %d", i);
        ROW(v, same_bits(((float *)r.features[5].values)[i], f32[i]), "float32 %d", i);
        ROW(v, same_bits(((float *)r.features[6].values)[i], (float)be[i]), "big-endian float64 %d", i);
        ROW(v, ((int32_t *)r.truths[0].values)[i] == i64[i], "int64 %d", i);
        ROW(v, ((int32_t *)r.truths[1].values)[i] == (int32_t)u32[i], "uint32 %d", i);
        ROW(v, ((int32_t *)r.truths[2].values)[i] == (int32_t)u64[i], "big-endian uint64 %d", i);
        ROW(v, ((int32_t *)r.truths[3].values)[i] == i8[i], "int8 %d", i);
        ROW(v, ((int32_t *)r.truths[4].values)[i] == u16[i], "uint16 %d", i);
        ROW(v, ((int32_t *)r.weights[0].values)[i] == i32be[i], "big-endian int32 %d", i);
    }
    for (int i = 0; i < 12; i++)
        ROW(v, ((int32_t *)a2->values)[i] == b[i], "bool %d", i);
    CHECK_ROWS(v);
    const float *hf = a3->values;
    CHECK(hf[0] == 1.0f && isinf(hf[1]) && hf[1] > 0 && hf[2] == 5.9604644775390625e-08f && isnan(hf[3]) &&
          hf[4] == 0.0f && signbit(hf[4]) && hf[5] == 65504.0f);
    for (size_t k = 0; k < 13; k++)
        CHECK_OK(djct_array_validate(flat(&r, k)));

    /* what was read how */
    djct_h5_info info;
    CHECK_OK(djct_h5_inspect(&info, p, NULL));
    static const char *const stored[13] = {"float64", "uint8", "bool", "float16", "int16", "float32", "float64",
                                           "int64", "uint32", "uint64", "int8", "uint16", "int32"};
    static const int conv[13] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0};
    harness_rows src = HARNESS_ROWS_INIT;
    for (size_t k = 0; k < 13 && info.n_sources == 13; k++)
        ROW(src, !strcmp(info.sources[k].stored, stored[k]) && info.sources[k].converted == conv[k],
            "array %zu: %s converted %d", k, info.sources[k].stored, info.sources[k].converted);
    CHECK_ROWS(src);
    CHECK(info.map == NULL && !strcmp(info.sources[0].values, "/features/000/values") &&
          !strcmp(info.sources[0].splits, "/features/000/counts") && !strcmp(info.sources[0].splits_kind, "counts"));
    djct_h5_info_clear(&info);

    /* gathers: the same values as the whole read; the float32 array is still read from the file
     * mapping, the converted ones through libhdf5 */
    djct_h5_file *fh = NULL;
    CHECK_OK(djct_h5_file_open(&fh, p));
    if (fh) {
        CHECK(djct_h5_file_direct(fh) == 0 && fh->a[5].direct == 1 && fh->a[0].direct == 0);
        int64_t ev[2] = {0, 2};
        float g[16];
        int32_t gi[16];
        CHECK_OK(djct_h5_file_gather(fh, 0, ev, 2, g));
        CHECK(!memcmp(g, a0->values, 4 * 4) && !memcmp(g + 4, (float *)a0->values + 4, 8 * 4));
        CHECK_OK(djct_h5_file_gather(fh, 7, ev, 2, gi));
        CHECK(gi[0] == -5 && gi[1] == INT32_MIN);
        CHECK_OK(djct_h5_file_gather(fh, 5, ev + 1, 1, g));
        CHECK(g[0] == 3e38f);
        djct_h5_file_close(fh);
    }
    djct_record_clear(&r);
}

/* ---- values the array's dtype cannot hold ----------------------------------------------- */

static void test_conversion_errors(void)
{
    const char *p = fx_path("narrow.h5");
    djct_record r;
    djct_file_meta m;
    /* int64 labels, one beyond int32 at row 4: opening reads no values; reading it names the row */
    hid_t f = fx_h5_new_file(p, DJCT_H5_LAYOUT);
    float x[6] = {0};
    int64_t lab[6] = {0, 1, 2, 1, (int64_t)INT32_MAX + 1, 0};
    ds1(f, "features/000/values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 6, x);
    ds1(f, "truths/000/values", H5T_STD_I64LE, H5T_NATIVE_INT64, 6, lab);
    H5Fclose(f);
    CHECK_OK(djct_h5_read_meta(&m, p));
    djct_file_meta_clear(&m);
    char want[1024];
    snprintf(want, sizeof(want), "'%s': /truths/000/values: row 4 (event 4): value 2147483648 is outside int32; djct "
             "reads int64 as int32: bring the values into int32's range, or store them as float32", p);
    CHECK_ERR(djct_h5_read(&r, p), DJCT_EINVAL, want);
    djct_h5_file *fh = NULL;
    CHECK_OK(djct_h5_file_open(&fh, p));
    if (fh) {
        int64_t fine[3] = {0, 3, 5}, bad[2] = {3, 4};
        int32_t got[3];
        CHECK_OK(djct_h5_file_gather(fh, 1, fine, 3, got)); /* only the rows asked for are converted */
        CHECK(got[0] == 0 && got[1] == 1 && got[2] == 0);
        CHECK_ERR(djct_h5_file_gather(fh, 1, bad, 2, got), DJCT_EINVAL, "/truths/000/values: row 4 (event 4)");
        djct_h5_file_close(fh);
    }

    /* a ragged float64 array: the row of values and the event it belongs to */
    f = fx_h5_new_file(p, DJCT_H5_LAYOUT);
    double big[5] = {1, 2, 3, 1e300, 5};
    int64_t cnt[2] = {2, 3};
    ds1(f, "features/000/values", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 5, big);
    ds1(f, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, cnt);
    H5Fclose(f);
    CHECK_ERR(djct_h5_read(&r, p), DJCT_EINVAL, "/features/000/values: row 3 (event 1): value 1.0000000000000001e+300 "
              "is beyond float32's range (3.4e38); djct reads float64 as float32: rescale the values, or store them "
              "as float32");
    /* NaN and infinities are values, not errors */
    f = fx_h5_new_file(p, DJCT_H5_LAYOUT);
    double odd[3] = {NAN, INFINITY, -INFINITY};
    ds1(f, "features/000/values", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, odd);
    H5Fclose(f);
    CHECK_OK(djct_h5_read(&r, p));
    if (r.n_features == 1) {
        const float *v = r.features[0].values;
        CHECK(isnan(v[0]) && isinf(v[1]) && v[1] > 0 && isinf(v[2]) && v[2] < 0);
    }
    djct_record_clear(&r);

    /* unsigned beyond int32, and a bool byte that is neither 0 nor 1 */
    struct {
        const char *what, *want;
    } cases[3] = {{"uint32", "row 1 (event 1): value 3000000000 is outside int32"},
                  {"uint64", "row 2 (event 2): value 9223372036854775813 is outside int32"},
                  {"bool", "row 1 (event 1): byte 7 is not a bool (0 or 1); djct reads bool as int32: the file is "
                           "corrupt; rewrite it with h5py"}};
    harness_rows rows = HARNESS_ROWS_INIT;
    for (int c = 0; c < 3; c++) {
        f = fx_h5_new_file(p, DJCT_H5_LAYOUT);
        uint32_t u32[3] = {1, 3000000000u, 2};
        uint64_t u64[3] = {1, 2, ((uint64_t)1 << 63) + 5};
        uint8_t b[3] = {1, 7, 0};
        if (c == 0)
            ds1(f, "features/000/values", H5T_STD_U32LE, H5T_NATIVE_UINT32, 3, u32);
        else if (c == 1)
            ds1(f, "features/000/values", H5T_STD_U64LE, H5T_NATIVE_UINT64, 3, u64);
        else {
            hid_t bt = fx_h5_bool_type();
            ds1(f, "features/000/values", bt, bt, 3, b);
            H5Tclose(bt);
        }
        H5Fclose(f);
        ROW(rows, harness_err_is(djct_h5_read(&r, p), DJCT_EINVAL, cases[c].want), "%s: '%s'", cases[c].what,
            djct_last_error());
    }
    CHECK_ROWS(rows);

    /* a dtype the reader refuses: strings, and an enum that is not h5py's bool */
    f = fx_h5_new_file(p, DJCT_H5_LAYOUT);
    hid_t st = H5Tcopy(H5T_C_S1), et = H5Tenum_create(H5T_NATIVE_INT8);
    H5Tset_size(st, 4);
    ds1(f, "features/000/values", st, st, 2, "abcdefgh");
    int8_t ev = 0;
    H5Tenum_insert(et, "RED", &ev);
    ds1(f, "features/001/values", et, et, 2, NULL);
    H5Tclose(st);
    H5Tclose(et);
    H5Fclose(f);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "/features/000/values: dtype: a string, not a number djct reads "
              "(float16/32/64, int8/16/32/64, uint8/16/32/64, bool); convert with numpy .astype('float32') or 'int32'");
}

/* ---- counts ------------------------------------------------------------------------------ */

/* features/000: 6 rows of float, its index `name` of type `t` with n entries (rank 1, or 2 when
 * n2 > 0); optionally also row_splits */
static void counts_file(const char *p, const char *name, hid_t t, hid_t mt, const void *v, hsize_t n, hsize_t n2,
                        int also_rs)
{
    hid_t f = fx_h5_new_file(p, DJCT_H5_LAYOUT);
    float x[6] = {1, 2, 3, 4, 5, 6};
    ds1(f, "features/000/values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 6, x);
    hsize_t d[2] = {n, n2};
    ds(f, name, t, mt, n2 ? 2 : 1, d, v);
    if (also_rs) {
        int64_t rs[3] = {0, 2, 6};
        ds1(f, "features/000/row_splits", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, rs);
    }
    H5Fclose(f);
}

static void test_counts(void)
{
    const char *p = fx_path("counts.h5"), *q = fx_path("splits.h5");
    djct_file_meta m;
    djct_record a, b;
    /* counts and row splits describe the same array */
    int64_t c3[3] = {2, 0, 4}, rs[4] = {0, 2, 2, 6};
    counts_file(p, "features/000/counts", H5T_STD_I32LE, H5T_NATIVE_INT64, c3, 3, 0, 0);
    counts_file(q, "features/000/row_splits", H5T_STD_I64LE, H5T_NATIVE_INT64, rs, 4, 0, 0);
    CHECK_OK(djct_h5_read(&a, p));
    CHECK_OK(djct_h5_read(&b, q));
    CHECK(a.n_features == 1 && b.n_features == 1 && a.features[0].n_row_splits == 4 &&
          !memcmp(a.features[0].row_splits, b.features[0].row_splits, 4 * 8) &&
          !memcmp(a.features[0].shape, b.features[0].shape, sizeof(a.features[0].shape)) &&
          !memcmp(a.features[0].values, b.features[0].values, 6 * 4));
    djct_record_clear(&a);
    djct_record_clear(&b);
    CHECK_OK(djct_h5_read_meta(&m, p));
    CHECK(m.n_events == 3 && m.event_elements && m.event_elements[2] == 4 && m.n_elements == 6);
    djct_file_meta_clear(&m);
    /* no events: no counts, no rows */
    float none = 0;
    hid_t f = fx_h5_new_file(p, DJCT_H5_LAYOUT);
    hsize_t z[2] = {0, 3};
    ds(f, "features/000/values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, z, &none);
    ds1(f, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL);
    H5Fclose(f);
    CHECK_OK(djct_h5_read_meta(&m, p));
    CHECK(m.n_events == 0 && m.layout.features[0].shape[1] == 0);
    djct_file_meta_clear(&m);

    /* hostile counts: each one line naming the dataset and what is wrong */
    int64_t neg[3] = {2, -1, 5}, mismatch[3] = {2, 1, 1}, huge[3] = {INT64_MAX, INT64_MAX, 0};
    uint64_t uhuge[2] = {UINT64_MAX, 1};
    float fc[2] = {2, 4};
    char want[7][512];
    snprintf(want[0], 512, "'%s': /features/000/counts: entry 1 (event 1) is -1; counts must be >= 0", p);
    snprintf(want[1], 512, "'%s': /features/000/counts: the counts sum to 4, but /features/000/values has 6 rows; "
             "every value row must belong to one event", p);
    snprintf(want[2], 512, "'%s': /features/000/counts: the counts' sum overflows int64 at entry 1", p);
    snprintf(want[3], 512, "'%s': /features/000/counts: the counts' sum overflows int64 at entry 1", p);
    snprintf(want[4], 512, "'%s': /features/000/counts: must be 1-D with one per event entries", p);
    snprintf(want[5], 512, "'%s': /features/000/counts: dtype must be an integer (int64)", p);
    snprintf(want[6], 512, "'%s': /features/000: has both row_splits and counts; keep one", p);
    harness_rows hostile = HARNESS_ROWS_INIT;
    for (int c = 0; c < 7; c++) {
        if (c == 0)
            counts_file(p, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, neg, 3, 0, 0);
        else if (c == 1)
            counts_file(p, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, mismatch, 3, 0, 0);
        else if (c == 2)
            counts_file(p, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, huge, 3, 0, 0);
        else if (c == 3) /* beyond int64: libhdf5 clips it to INT64_MAX, which the sum then overflows */
            counts_file(p, "features/000/counts", H5T_STD_U64LE, H5T_NATIVE_UINT64, uhuge, 2, 0, 0);
        else if (c == 4)
            counts_file(p, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, c3, 3, 1, 0);
        else if (c == 5)
            counts_file(p, "features/000/counts", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, fc, 2, 0, 0);
        else
            counts_file(p, "features/000/counts", H5T_STD_I64LE, H5T_NATIVE_INT64, c3, 3, 0, 1);
        ROW(hostile, harness_err_is(djct_h5_read_meta(&m, p), DJCT_EINVAL, want[c]), "case %d: '%s'", c,
            djct_last_error());
    }
    CHECK_ROWS(hostile);
}

/* ---- mapping files ------------------------------------------------------------------------ */

static void test_map_parse(void)
{
    const char *mp = fx_path("m.ini");
    djct_h5_map *map = NULL;
    CHECK_ERR(djct_h5_map_load(&map, fx_path("none.ini")), DJCT_EIO, "none.ini': cannot open");
    char longline[400] = "[feature a]\nvalues = /";
    memset(longline + strlen(longline), 'x', 250);
    struct {
        const char *text, *want;
    } bad[] = {
        {"[feature a]\nvalues = /a\nvaleus = /b\n",
         "line 3: unknown key 'valeus' in [feature a]; the keys are values, row_splits, offsets, counts, feature_names, dtype"},
        {"[feature a]\ncounts = /n\n", "line 1: [feature a] has no 'values = DATASET'"},
        {"[feature a]\nvalues = /a\n\n[feature a]\nvalues = /b\n", "line 4: [feature a] appears twice (first at line 1)"},
        {"[feature a]\nvalues = /a\ncounts = /n\nrow_splits = /r\n", "line 4: [feature a] has both counts and row_splits; keep one"},
        {"values = /a\n[feature a]\nvalues = /a\n", "line 1: 'values' comes before any section; start with [feature NAME]"},
        {"[feature]\nvalues = /a\n", "line 1: section [feature] is not [feature NAME], [truth NAME] or [weight NAME]"},
        {"[label a]\nvalues = /a\n", "line 1: section [label a] is not [feature NAME]"},
        {"[feature a]\nvalues = /a\ndtype = float64\n", "line 3: dtype 'float64': float32 or int32"},
        {"[truth a]\nvalues = /a\n", "no [feature NAME] section; the model needs at least one feature array"},
        {longline, "line 2: longer than 197 characters (the INI reader's limit)"},
        {"[feature a_name_that_is_longer_than_inih_keeps_for_a_section_name]\nvalues = /a\n",
         "line 1: section [feature a_name_that_is_longer_than_inih_keeps_for_a_section_name] is longer than 49 "
         "characters (the INI reader's limit); use a shorter array name"},
        {"[feature a]\nvalues = /a\nthis line has no equals sign\n", "line 3: not 'key = value', '[section]' or a comment"},
        {"[feature a]\nvalues = /a\nfeature_names = x,, y\n", "line 3: feature_names 'x,, y' has an empty entry"},
        {"[feature a]\nvalues = /a\nvalues = /b\n", "line 3: 'values' given twice in one section"},
        {"[feature a]\nvalues =\n", "line 2: 'values' is empty; give a dataset path such as /group/name"},
        {"[feature a\nvalues = /a\n", "line 1: '[' without ']'"},
    };
    size_t nbad = sizeof(bad) / sizeof(bad[0]);
    harness_rows rows = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < nbad; i++) {
        put_text(mp, bad[i].text);
        char want[600];
        snprintf(want, sizeof(want), "map '%s' %s", mp, bad[i].want);
        if (!strncmp(bad[i].want, "no [feature", 11))
            snprintf(want, sizeof(want), "map '%s': %s", mp, bad[i].want);
        int rc = djct_h5_map_load(&map, mp);
        ROW(rows, harness_err_is(rc, DJCT_EINVAL, want) && map == NULL, "map %zu: '%s'", i, djct_last_error());
        djct_h5_map_free(map);
        map = NULL;
    }
    CHECK_ROWS(rows);
    FILE *fp = fopen(mp, "wb");
    fwrite("[feature a]\nvalues = /a\0\n", 1, 25, fp);
    fclose(fp);
    CHECK_ERR(djct_h5_map_load(&map, mp), DJCT_EINVAL, "holds a NUL byte");

    /* what a map holds: comments, plural section names, names continued on the next lines */
    put_text(mp, "# a comment\n; another\n[features hits]   ; inline comment\nvalues = /ev/hits\ncounts = /ev/n\n"
                 "feature_names = x, y,\n    z\n\n[truth label]\nvalues = ev/label\ndtype = float32\n"
                 "[weight w]\nvalues = /ev/w\n");
    CHECK_OK(djct_h5_map_load(&map, mp));
    if (map) {
        const h5_map_array *h = &map->a[0][0];
        CHECK(map->n[0] == 1 && map->n[1] == 1 && map->n[2] == 1 && !strcmp(h->name, "hits") &&
              !strcmp(h->values, "/ev/hits") && h->splits_kind == H5S_COUNTS && !strcmp(h->splits, "/ev/n") &&
              h->n_feature_names == 3 && !strcmp(h->feature_names[2], "z") && h->dtype == -1);
        CHECK(map->a[1][0].dtype == DJCT_DTYPE_FLOAT32 && !strcmp(map->a[1][0].values, "ev/label"));
    }
    djct_h5_map_free(map);
}

/* a file in a layout of its own: 3 events of 2, 0 and 4 hits (3 float64 each) */
static void user_file(const char *p, int n_labels)
{
    hid_t f = fx_h5_new_file(p, NULL);
    double hits[18];
    for (int i = 0; i < 18; i++)
        hits[i] = i * 0.5;
    hsize_t d[2] = {6, 3};
    int64_t n[3] = {2, 0, 4}, off[4] = {0, 2, 2, 6}, lab[4] = {1, 0, 2, 1};
    float w[3] = {1, 0.5f, 0.25f};
    ds(f, "ev/hits", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d, hits);
    ds1(f, "ev/n", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, n);
    ds1(f, "ev/off", H5T_STD_I64LE, H5T_NATIVE_INT64, 4, off);
    ds1(f, "ev/label", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)n_labels, lab);
    ds1(f, "ev/w", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, w);
    H5Gclose(H5Gcreate2(f, "grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
}

#define MAP_OK "[feature hits]\nvalues = /ev/hits\ncounts = /ev/n\nfeature_names = x, y, z\n" \
               "[truth label]\nvalues = /ev/label\n[weight w]\nvalues = /ev/w\n"

static int load(djct_h5_map **m, const char *path, const char *text)
{
    put_text(path, text);
    return djct_h5_map_load(m, path);
}

static void test_map_files(void)
{
    const char *p = fx_path("user.h5"), *mp = fx_path("user.ini");
    user_file(p, 3);
    djct_h5_map *map = NULL, *off = NULL;
    djct_h5_read_options o = DJCT_H5_READ_OPTIONS_INIT;
    djct_record r, r2;
    djct_file_meta m;
    /* without a map: not djct's layout, and the message says what to do */
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "attribute 'djct_format' missing; not a djct HDF5 file (set it "
              "to \"djct-ragged-1\", docs/hdf5_layout.md, or name its datasets in a mapping file, docs/data.md)");
    CHECK_OK(load(&map, mp, MAP_OK));
    o.map = map;
    CHECK_OK(djct_h5_read_ext(&r, p, &o));
    if (r.n_features == 1 && r.n_truths == 1 && r.n_weights == 1) {
        const djct_array *h = &r.features[0];
        CHECK(!strcmp(h->name, "hits") && h->dtype == DJCT_DTYPE_FLOAT32 && h->ndim == 3 && h->shape[0] == 3 &&
              h->shape[1] == -6 && h->shape[2] == 3 && h->row_splits[3] == 6 && h->n_feature_names == 3 &&
              !strcmp(h->feature_names[1], "y") && ((float *)h->values)[17] == 8.5f);
        CHECK(!strcmp(r.truths[0].name, "label") && r.truths[0].dtype == DJCT_DTYPE_INT32 &&
              ((int32_t *)r.truths[0].values)[2] == 2 && ((float *)r.weights[0].values)[2] == 0.25f);
    } else {
        CHECK(!"one feature, truth and weight");
    }
    /* offsets (events + 1 entries) give the same row splits as counts */
    CHECK_OK(load(&off, fx_path("off.ini"), "[feature hits]\nvalues = /ev/hits\noffsets = /ev/off\n"));
    o.map = off;
    CHECK_OK(djct_h5_read_ext(&r2, p, &o));
    CHECK(r2.n_features == 1 && r.n_features == 1 &&
          !memcmp(r2.features[0].row_splits, r.features[0].row_splits, 4 * sizeof(int64_t)));
    djct_record_clear(&r2);
    djct_h5_map_free(off);
    off = NULL;
    /* inspect: the map and every array's datasets */
    djct_h5_info info;
    o.map = map;
    CHECK_OK(djct_h5_inspect(&info, p, &o));
    CHECK(info.map && !strcmp(info.map, mp) && info.n_sources == 3 && !strcmp(info.sources[0].values, "/ev/hits") &&
          !strcmp(info.sources[0].splits, "/ev/n") && !strcmp(info.sources[0].splits_kind, "counts") &&
          !strcmp(info.sources[0].stored, "float64") && info.sources[0].converted && !info.sources[2].converted &&
          info.sources[2].splits == NULL);
    djct_h5_info_clear(&info);

    /* the map beside the file is found without being named; a named one wins */
    char beside[600];
    snprintf(beside, sizeof(beside), "%s" DJCT_H5_MAP_SUFFIX, p);
    put_text(beside, MAP_OK);
    CHECK_OK(djct_h5_read(&r2, p));
    CHECK(r2.n_features == 1 && r.n_features == 1 && r2.features[0].n_values == r.features[0].n_values &&
          !memcmp(r2.features[0].values, r.features[0].values, r.features[0].n_values * 4));
    djct_record_clear(&r2);
    CHECK_OK(load(&off, fx_path("other.ini"), "[feature weights_as_feature]\nvalues = /ev/w\n"));
    o.map = off;
    CHECK_OK(djct_h5_read_meta_ext(&m, p, &o));
    CHECK(m.layout.n_features == 1 && !strcmp(m.layout.features[0].name, "weights_as_feature") && m.layout.n_truths == 0);
    djct_file_meta_clear(&m);
    djct_h5_map_free(off);
    off = NULL;
    CHECK_OK(djct_h5_inspect(&info, p, NULL));
    CHECK(info.map && !strcmp(info.map, beside));
    djct_h5_info_clear(&info);
    put_text(beside, "[feature hits]\nvaluez = /ev/hits\n");
    char want[1400];
    snprintf(want, sizeof(want), "'%s' (the map beside it): map '%s' line 2: unknown key 'valuez'", p, beside);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, want);
    unlink(beside);
    djct_record_clear(&r);

    /* datasets the file does not have, or not as a dataset, or with other event counts */
    struct {
        const char *map, *want;
    } bad[] = {
        {"[feature hits]\nvalues = /ev/nope\n", "/ev/nope ([feature hits] in map '%s'): no such dataset; fix the map's "
                                                "'values' line or the file (h5ls -r lists the file's datasets)"},
        {"[feature hits]\nvalues = /no/group/x\n", "/no/group/x ([feature hits] in map '%s'): no such dataset"},
        {"[feature hits]\nvalues = /ev/hits\ncounts = /ev/m\n", "/ev/m ([feature hits] in map '%s'): no such dataset; "
                                                                "fix the map's row_splits, offsets or counts line"},
        {"[feature g]\nvalues = /grp\n", "/grp ([feature g] in map '%s'): cannot be opened as a dataset"},
        {"[feature hits]\nvalues = /ev/hits\ncounts = /ev/n\n[truth label]\nvalues = /ev/label\n",
         "[truth label] /ev/label: 4 events, but [feature hits] /ev/n has 3 (map '%s'); every array must have one "
         "row per event"},
        {"[feature hits]\nvalues = /ev/hits\ncounts = /ev/n\ndtype = int32\n",
         "/ev/hits ([feature hits] in map '%s'): dtype: float64 cannot be read as int32 (values would be truncated)"},
        {"[feature hits]\nvalues = /ev/hits\nrow_splits = /ev/n\n", "/ev/n ([feature hits] in map '%s'): entry 0 is 2, "
                                                                    "must be 0"},
    };
    user_file(p, 4);
    harness_rows rows = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        djct_h5_map_free(off);
        off = NULL;
        int rc = load(&off, mp, bad[i].map);
        char w[1200], fmt[1000];
        snprintf(fmt, sizeof(fmt), "'%%s': %s", bad[i].want);
        snprintf(w, sizeof(w), fmt, p, mp);
        o.map = off;
        ROW(rows, rc == 0 && harness_err_is(djct_h5_read_meta_ext(&m, p, &o), DJCT_EINVAL, w), "map %zu: '%s'", i,
            djct_last_error());
    }
    CHECK_ROWS(rows);
    djct_h5_map_free(off);

    /* integers read as float32 when the map asks: exact up to 2^24, an error beyond */
    hid_t f = fx_h5_new_file(p, NULL);
    int64_t ints[3] = {-3, 16777216, 16777217};
    ds1(f, "i", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, ints);
    H5Fclose(f);
    CHECK_OK(load(&off, mp, "[feature i]\nvalues = /i\ndtype = float32\n"));
    o.map = off;
    djct_h5_file *fh = NULL;
    CHECK_OK(djct_h5_file_open_map(&fh, p, 0, off));
    if (fh) {
        int64_t ev[2] = {0, 1};
        float g[2];
        CHECK_OK(djct_h5_file_gather(fh, 0, ev, 2, g));
        CHECK(g[0] == -3.0f && g[1] == 16777216.0f && djct_h5_file_meta(fh)->layout.features[0].dtype == DJCT_DTYPE_FLOAT32);
        djct_h5_file_close(fh);
    }
    snprintf(want, sizeof(want), "'%s': /i ([feature i] in map '%s'): row 2 (event 2): value 16777217 is beyond 2^24, "
             "which float32 cannot hold exactly; djct reads int64 as float32: read it as int32", p, mp);
    CHECK_ERR(djct_h5_read_ext(&r, p, &o), DJCT_EINVAL, want);
    djct_h5_map_free(off);
    djct_h5_map_free(map);
}

/* ---- a dataset over mapped, converted files --------------------------------------------- */

static int batches_equal(const char *p, const char *map_path, size_t cache_bytes, const djct_record *want)
{
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.shuffle = DJCT_SHUFFLE_NONE;
    o.batch_elements = 3;
    o.strict = 0;
    o.prefetch_depth = 1;
    o.cache_bytes = cache_bytes;
    o.h5_map = map_path;
    djct_dataset *ds = NULL;
    if (djct_dataset_open(&ds, p, &o) != 0)
        return 0;
    djct_batch *b;
    size_t at[3] = {0, 0, 0};
    int ok = 1;
    while (ok && djct_dataset_next(ds, &b) == 0 && b) {
        for (size_t k = 0; k < 3 && ok; k++) {
            const djct_array *x = flat(&b->record, k), *w = flat(want, k);
            ok = x->dtype == w->dtype && at[k] + x->n_values <= w->n_values &&
                 !memcmp(x->values, (char *)w->values + at[k] * 4, x->n_values * 4);
            at[k] += x->n_values;
        }
        djct_batch_release(ds, b);
    }
    djct_dataset_free(ds);
    for (size_t k = 0; k < 3; k++)
        ok &= at[k] == flat(want, k)->n_values;
    return ok;
}

/* *r = the file at p read through the map file mp: two checks, the map loads and the file reads */
static void read_mapped(djct_record *r, const char *p, const char *mp)
{
    djct_h5_map *map = NULL;
    djct_h5_read_options o = DJCT_H5_READ_OPTIONS_INIT;
    memset(r, 0, sizeof(*r));
    CHECK_OK(djct_h5_map_load(&map, mp));
    o.map = map;
    CHECK_OK(djct_h5_read_ext(r, p, &o));
    djct_h5_map_free(map);
}

static void test_dataset(void)
{
    const char *p = fx_path("user.h5"), *mp = fx_path("user.ini");
    user_file(p, 3);
    put_text(mp, MAP_OK);
    djct_record r;
    read_mapped(&r, p, mp);
    /* a small file is read whole once (converted once) and served from memory; with a cache too
     * small for that, every batch's rows are read through libhdf5 and converted: the same batches */
    CHECK(r.n_features == 1 && batches_equal(p, mp, 0, &r));
    CHECK(r.n_features == 1 && batches_equal(p, mp, 16, &r));
    djct_record_clear(&r);
    djct_dataset_options d = DJCT_DATASET_OPTIONS_INIT;
    d.h5_map = fx_path("missing.ini");
    djct_dataset *ds = NULL;
    CHECK_ERR(djct_dataset_open(&ds, p, &d), DJCT_EIO, "dataset: map '");
}

/* ---- h5py with its defaults ---------------------------------------------------------------- */

static void test_h5py(void)
{
    if (system("/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null") != 0) {
        harness_skip("/usr/bin/python3 with h5py and numpy not available");
        return;
    }
    const char *p = fx_path("h5py.h5"), *mp = fx_path("h5py.ini"), *ex = fx_path("h5py.expected");
    char cmd[4096];
    /* float64 points, int64 counts and labels, uint8 images, a bool mask: as numpy makes them; the
     * values numpy's astype gives (float32, int32) are written raw for the comparison */
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 - '%s' '%s' <<'EOF'\n"
             "import sys, h5py, numpy as np\n"
             "rng = np.random.default_rng(7)\n"
             "n = rng.integers(0, 6, size=40)\n"
             "pts = rng.normal(size=(n.sum(), 3)) * 1e3\n"
             "img = rng.integers(0, 256, size=(40, 4, 4)).astype(np.uint8)\n"
             "mask = rng.random((40, 3)) > 0.5\n"
             "lab = rng.integers(-5, 5, size=40)\n"
             "assert pts.dtype == np.float64 and n.dtype == np.int64 and lab.dtype == np.int64\n"
             "with h5py.File(sys.argv[1], 'w') as f:\n"
             "    f['data/points'] = pts; f['data/n'] = n; f['data/img'] = img; f['data/mask'] = mask\n"
             "    f['data/label'] = lab\n"
             "with open(sys.argv[2], 'wb') as o:\n"
             "    for a in (pts.astype(np.float32), img.astype(np.int32), mask.astype(np.int32), lab.astype(np.int32)):\n"
             "        o.write(a.tobytes())\n"
             "EOF",
             p, ex);
    CHECK(system(cmd) == 0);
    put_text(mp, "[feature points]\nvalues = /data/points\ncounts = /data/n\n[feature image]\nvalues = /data/img\n"
                 "[feature mask]\nvalues = /data/mask\n[truth label]\nvalues = /data/label\n");
    djct_record r;
    read_mapped(&r, p, mp);
    struct stat st;
    char *want = NULL;
    FILE *f = fopen(ex, "rb");
    if (f && fstat(fileno(f), &st) == 0 && (want = malloc((size_t)st.st_size)))
        CHECK(fread(want, 1, (size_t)st.st_size, f) == (size_t)st.st_size);
    if (f)
        fclose(f);
    if (want && r.n_features == 3 && r.n_truths == 1) {
        size_t at = 0, total = 0;
        int same = 1;
        for (size_t k = 0; k < 4; k++) {
            const djct_array *a = flat(&r, k);
            total += a->n_values * 4;
            same &= total <= (size_t)st.st_size && !memcmp(a->values, want + at, a->n_values * 4);
            at += a->n_values * 4;
        }
        CHECK(same && total == (size_t)st.st_size);
        CHECK(r.features[0].dtype == DJCT_DTYPE_FLOAT32 && r.features[1].dtype == DJCT_DTYPE_INT32 &&
              r.features[1].ndim == 3 && r.features[2].dtype == DJCT_DTYPE_INT32 && r.truths[0].dtype == DJCT_DTYPE_INT32);
    } else {
        CHECK(!"the h5py file read, the expected values at hand");
    }
    free(want);
    djct_record_clear(&r);
}

int main(void)
{
    snprintf(fx_dir, sizeof(fx_dir), "/tmp/djct_test_h5_user_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", fx_dir);
    if (system(cmd) != 0)
        return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_dtypes();
    test_conversion_errors();
    test_counts();
    test_map_parse();
    test_map_files();
    test_dataset();
    test_h5py();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", fx_dir);
    return harness_report();
}
