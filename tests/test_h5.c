/* h5 module: round trips (plain and gzip) bit-identical, metadata from row splits only,
 * hyperslab event ranges, h5py interoperability both ways (the docs' snippet is executed),
 * hostile files built with libhdf5 directly, each rejected with a message naming the field, and
 * files libhdf5 itself crashes on (one-line error, later HDF5 calls refused, clean exit) or that
 * shrink under a direct-read mapping. */
#include "harness.h"
#include "data_fixtures.h"
#include "h5_int.h"
#include "h5fd_int.h"

#include <hdf5.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Found by tests/fuzz/fuzz_h5.c; libhdf5 1.10.8 on its own segfaults in H5Aread -> H5HG_read on
 * the first (a corrupt heap object index behind the string attribute /features/000 'name'),
 * loops forever in the global heap loader on the second, and writes past a buffer in H5HG_read
 * on the third (heap objects that run past their collection). */
#define LIBHDF5_CRASH "tests/fuzz/corpus/fuzz_h5/libhdf5_crash_vlen_global_heap"
#define LIBHDF5_LOOP "tests/fuzz/corpus/fuzz_h5/libhdf5_loop_global_heap"
#define LIBHDF5_OVERFLOW "tests/fuzz/corpus/fuzz_h5/libhdf5_overflow_global_heap"

static char dir[256];

static void path_of(char *buf, const char *name) { snprintf(buf, 512, "%s/%s", dir, name); }

/* E events: points ragged [E, -T, 3] f32 with counts (7*e) % 5, ids ragged i32 sharing the
 * row splits, label int32 [E, 1], weight f32 [E] */
static void make_record(djct_record *r, int E)
{
    memset(r, 0, sizeof(*r));
    r->features = calloc(2, sizeof(djct_array));
    r->truths = calloc(1, sizeof(djct_array));
    r->weights = calloc(1, sizeof(djct_array));
    r->n_features = 2;
    r->n_truths = r->n_weights = 1;
    int64_t *rs = malloc(sizeof(int64_t) * (E + 1));
    rs[0] = 0;
    for (int e = 0; e < E; e++)
        rs[e + 1] = rs[e] + (7 * e) % 5;
    int64_t T = rs[E];
    djct_array *p = &r->features[0];
    float *v = fx_array(p, "points", DJCT_DTYPE_FLOAT32, 3, (const int64_t[]){E, -T, 3}, (size_t)T * 3);
    for (size_t i = 0; i < p->n_values; i++)
        v[i] = (float)i * 0.25f - 3.0f;
    p->feature_names = calloc(3, sizeof(char *));
    p->feature_names[0] = strdup("x");
    p->feature_names[1] = strdup("y");
    p->feature_names[2] = strdup("energy");
    p->n_feature_names = 3;
    p->row_splits = rs;
    p->n_row_splits = E + 1;
    djct_array *ids = &r->features[1];
    int32_t *iv = fx_array(ids, "ids", DJCT_DTYPE_INT32, 2, (const int64_t[]){E, -T}, (size_t)T);
    for (int64_t i = 0; i < T; i++)
        iv[i] = (int32_t)(i * 3 - 5);
    ids->row_splits = malloc(sizeof(int64_t) * (E + 1));
    memcpy(ids->row_splits, rs, sizeof(int64_t) * (E + 1));
    ids->n_row_splits = E + 1;
    int32_t *lv = fx_array(&r->truths[0], "label", DJCT_DTYPE_INT32, 2, (const int64_t[]){E, 1}, (size_t)E);
    for (int e = 0; e < E; e++)
        lv[e] = e % 3;
    float *wv = fx_array(&r->weights[0], "", DJCT_DTYPE_FLOAT32, 1, (const int64_t[]){E}, (size_t)E);
    for (int e = 0; e < E; e++)
        wv[e] = 1.0f / (float)(e + 1);
}

static void test_roundtrip(void)
{
    djct_record r, back;
    make_record(&r, 50);
    char p[512], pz[512];
    path_of(p, "plain.h5");
    path_of(pz, "gzip.h5");
    djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
    o.chunk_bytes = 64; /* many small chunks: the gathers cross chunk boundaries */
    CHECK_OK(djct_h5_write(p, &r, &o));
    o.gzip_level = 4;
    CHECK_OK(djct_h5_write(pz, &r, &o));
    CHECK(djct_h5_format_of(p) == DJCT_FORMAT_H5);
    CHECK(djct_h5_format_of("/nonexistent") == DJCT_FORMAT_UNKNOWN);
    harness_rows both = HARNESS_ROWS_INIT;
    for (int z = 0; z < 2; z++) {
        ROW_OK(both, djct_h5_read(&back, z ? pz : p), "%s", z ? pz : p);
        ROW(both, fx_records_equal(&r, &back), "%s", z ? pz : p);
        djct_record_clear(&back);
    }
    CHECK_ROWS(both);
    djct_file_meta m;
    CHECK_OK(djct_h5_read_meta(&m, p));
    CHECK(m.n_events == 50 && m.n_records == 1 && m.format == DJCT_FORMAT_H5);
    /* points and ids share one row-split vector: counted once */
    int ok = 1;
    for (int e = 0; e < 50; e++)
        ok &= m.event_elements[e] == (7 * e) % 5;
    CHECK(ok);
    CHECK(m.n_elements == r.features[0].row_splits[50]);
    CHECK(m.layout.n_features == 2 && !strcmp(m.layout.features[0].feature_names[2], "energy"));
    CHECK(m.layout.features[0].values == NULL && m.layout.features[0].shape[1] == r.features[0].shape[1]);
    djct_file_meta_clear(&m);

    /* a slice: events 7..7+11 */
    CHECK_OK(djct_h5_read_events(&back, pz, 7, 11));
    const djct_array *s = &back.features[0];
    CHECK(s->shape[0] == 11 && s->row_splits[0] == 0);
    int64_t b0 = r.features[0].row_splits[7];
    CHECK(s->row_splits[11] == r.features[0].row_splits[18] - b0);
    CHECK(!memcmp(s->values, (float *)r.features[0].values + b0 * 3, s->n_values * 4));
    CHECK(((int32_t *)back.truths[0].values)[0] == 7 % 3);
    CHECK_OK(djct_array_validate(s));
    djct_record_clear(&back);
    CHECK_OK(djct_h5_read_events(&back, p, 50, 0));
    CHECK(back.features[0].shape[0] == 0 && back.features[0].n_values == 0);
    djct_record_clear(&back);
    CHECK_ERR(djct_h5_read_events(&back, p, 45, 6), DJCT_EINVAL, "outside the file's 50 events");

    /* gather: arbitrary sorted events */
    djct_h5_file *f = NULL;
    CHECK_OK(djct_h5_file_open(&f, pz));
    int64_t ev[4] = {1, 2, 9, 30};
    float got[64];
    CHECK_OK(djct_h5_file_gather(f, 0, ev, 4, got));
    const int64_t *rs = djct_h5_file_row_splits(f, 0);
    size_t at = 0;
    ok = 1;
    for (int i = 0; i < 4; i++)
        for (int64_t j = rs[ev[i]] * 3; j < rs[ev[i] + 1] * 3; j++)
            ok &= got[at++] == ((float *)r.features[0].values)[j];
    CHECK(ok && at > 0);
    int32_t lab[4];
    CHECK_OK(djct_h5_file_gather(f, 2, ev, 4, lab));
    CHECK(lab[2] == 0 && lab[3] == 0 && lab[0] == 1);
    djct_h5_file_close(f);

    /* direct reads from the file mapping (uncompressed, chunked across row boundaries) give the
     * same bytes as libhdf5's reads of the compressed copy, for every array and event pattern */
    djct_h5_file *fd = NULL, *fz = NULL;
    CHECK_OK(djct_h5_file_open(&fd, p));
    CHECK_OK(djct_h5_file_open(&fz, pz));
    CHECK(djct_h5_file_direct(fd) == 1);
    CHECK(djct_h5_file_direct(fz) == 0);
    int64_t pat[3][8] = {{0, 1, 2, 3, 4, 5, 6, 7}, {3, 11, 12, 13, 29, 30, 48, 49}, {49, -1}};
    size_t npat[3] = {8, 8, 1};
    harness_rows gathers = HARNESS_ROWS_INIT;
    int same = 1;
    size_t narr = 3; /* features 0 and 1, truth 0 */
    for (int q = 0; q < 3; q++)
        for (size_t k = 0; k < narr; k++) {
            float a[2048], b[2048];
            memset(a, 0x55, sizeof(a));
            memset(b, 0x66, sizeof(b));
            ROW_OK(gathers, djct_h5_file_gather(fd, k, pat[q], npat[q], a), "direct, pattern %d array %zu", q, k);
            ROW_OK(gathers, djct_h5_file_gather(fz, k, pat[q], npat[q], b), "gzip, pattern %d array %zu", q, k);
            const int64_t *rk = djct_h5_file_row_splits(fd, k);
            size_t bytes = 0;
            for (size_t i = 0; i < npat[q]; i++)
                bytes += (size_t)(rk ? rk[pat[q][i] + 1] - rk[pat[q][i]] : 1) * (k == 0 ? 3 : 1) * 4;
            same &= bytes <= sizeof(a) && !memcmp(a, b, bytes);
        }
    CHECK_ROWS(gathers);
    CHECK(same);
    int64_t bad = 50;
    float one[8];
    CHECK_ERR(djct_h5_file_gather(fd, 0, &bad, 1, one), DJCT_EINVAL, "event 50 outside 0..49");
    djct_h5_file_close(fd);
    djct_h5_file_close(fz);

    /* bad writes */
    o.gzip_level = 12;
    CHECK_ERR(djct_h5_write(p, &r, &o), DJCT_EINVAL, "gzip_level 12");
    o.version = 9;
    CHECK_ERR(djct_h5_write(p, &r, &o), DJCT_EINVAL, "djct_h5_write_options version 9");
    r.truths[0].shape[0] = 49;
    r.truths[0].n_values = 49;
    CHECK_ERR(djct_h5_write(p, &r, NULL), DJCT_EINVAL, "truths 0: 49 events");
    r.truths[0].shape[0] = 50;
    r.truths[0].n_values = 50;
    CHECK_ERR(djct_h5_write("/nonexistent-dir/x.h5", &r, NULL), DJCT_EIO, "cannot create");
    djct_record_clear(&r);
}

/* ---- hostile files, built with libhdf5 directly ---- */

static void add_ds(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data, int chunk)
{
    hid_t s = H5Screate_simple(rank, dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) {
        hsize_t c[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        H5Pset_chunk(pl, rank, c);
    }
    hid_t d = H5Dcreate2(loc, name, type, s, H5P_DEFAULT, pl, H5P_DEFAULT);
    if (data)
        H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(s);
}

/* a djct file whose /features/000/values is float [rows] in chunks of `chunk` rows, nothing
 * written yet: the caller writes into v.d (and may add to group v.a), then end_values(&v) */
typedef struct {
    hid_t f, g, a, d;
} values_file;

static values_file start_values(const char *p, hsize_t rows, hsize_t chunk)
{
    values_file v;
    v.f = fx_h5_new_file(p, "djct-ragged-1");
    v.g = H5Gcreate2(v.f, "features", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    v.a = H5Gcreate2(v.g, "000", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, &rows, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, &chunk);
    v.d = H5Dcreate2(v.a, "values", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    return v;
}

static void end_values(values_file *v)
{
    H5Dclose(v->d);
    H5Gclose(v->a);
    H5Gclose(v->g);
    H5Fclose(v->f);
}

/* write a file with features/000 ragged (rs, nvals rows of float) and optional extras */
static void hostile(const char *p, const char *fmt, const int64_t *rs, hsize_t nrs, hsize_t nvals, hid_t vtype,
                    int variant)
{
    hid_t f = fx_h5_new_file(p, fmt);
    hid_t g = H5Gcreate2(f, "features", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t a = H5Gcreate2(g, variant == 1 ? "001" : "000", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float v[64] = {0};
    if (variant != 2)
        add_ds(a, "values", vtype, 1, &nvals, nvals <= 64 ? v : NULL, nvals > 64);
    if (rs)
        add_ds(a, "row_splits", H5T_NATIVE_INT64, 1, &nrs, rs, 0);
    if (variant == 3) { /* a second array with a different event count */
        hid_t b = H5Gcreate2(g, "001", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t d = 5;
        add_ds(b, "values", H5T_NATIVE_FLOAT, 1, &d, v, 0);
        H5Gclose(b);
    }
    if (variant == 4) { /* name attribute that is an integer */
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t at = H5Acreate2(a, "name", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT);
        int x = 3;
        H5Awrite(at, H5T_NATIVE_INT, &x);
        H5Aclose(at);
        H5Sclose(s);
    }
    H5Gclose(a);
    H5Gclose(g);
    H5Fclose(f);
}

static void test_hostile(void)
{
    char p[512];
    path_of(p, "bad.h5");
    djct_file_meta m;
    djct_record r;
    int64_t rs_ok[4] = {0, 2, 2, 5};
    hostile(p, "djct-ragged-1", rs_ok, 4, 5, H5T_NATIVE_FLOAT, 0);
    CHECK_OK(djct_h5_read_meta(&m, p));
    CHECK(m.n_events == 3 && m.event_elements[2] == 3);
    djct_file_meta_clear(&m);

    CHECK_ERR(djct_h5_read_meta(&m, "/nonexistent.h5"), DJCT_EIO, "/nonexistent.h5': cannot open");
    FILE *fp = fopen(p, "wb");
    fputs("definitely not hdf5", fp);
    fclose(fp);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "not an HDF5 file");

    hostile(p, NULL, rs_ok, 4, 5, H5T_NATIVE_FLOAT, 0);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "attribute 'djct_format' missing");
    hostile(p, "djct-ragged-9", rs_ok, 4, 5, H5T_NATIVE_FLOAT, 0);
    CHECK_ERR(djct_h5_read(&r, p), DJCT_EINVAL, "is \"djct-ragged-9\"");
    hostile(p, "djct-ragged-1", rs_ok, 4, 5, H5T_NATIVE_LDOUBLE, 0);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "/features/000/values: dtype: 16-byte floating point; djct reads "
              "float16, float32 and float64");
    hostile(p, "djct-ragged-1", rs_ok, 4, 5, H5T_NATIVE_FLOAT, 1);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "/features/000: group missing");
    hostile(p, "djct-ragged-1", rs_ok, 4, 5, H5T_NATIVE_FLOAT, 2);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "/features/000/values: dataset missing");
    hostile(p, "djct-ragged-1", rs_ok, 4, 5, H5T_NATIVE_FLOAT, 3);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "/features/001: 5 events, but /features/000 has 3");
    hostile(p, "djct-ragged-1", rs_ok, 4, 5, H5T_NATIVE_FLOAT, 4);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "attribute 'name': must be a string");
    int64_t rs_dec[4] = {0, 3, 2, 5};
    hostile(p, "djct-ragged-1", rs_dec, 4, 5, H5T_NATIVE_FLOAT, 0);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "row_splits: decreases at entry 2 (2 after 3)");
    int64_t rs_first[4] = {1, 2, 2, 5};
    hostile(p, "djct-ragged-1", rs_first, 4, 5, H5T_NATIVE_FLOAT, 0);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "row_splits: entry 0 is 1");
    hostile(p, "djct-ragged-1", rs_ok, 4, 6, H5T_NATIVE_FLOAT, 0);
    CHECK_ERR(djct_h5_read(&r, p), DJCT_EINVAL, "row_splits: last entry 5 != 6 rows of /features/000/values");
    /* a chunked dataset declaring 2^40 floats but storing nothing */
    int64_t rs_huge[2] = {0, (int64_t)1 << 40};
    hostile(p, "djct-ragged-1", rs_huge, 2, (hsize_t)1 << 40, H5T_NATIVE_FLOAT, 0);
    CHECK_ERR(djct_h5_read(&r, p), DJCT_EINVAL, "larger than the file can hold");
    /* no features group */
    hid_t f = fx_h5_new_file(p, "djct-ragged-1");
    H5Fclose(f);
    CHECK_ERR(djct_h5_read_meta(&m, p), DJCT_EINVAL, "/features: group missing");
    /* a truncated valid file */
    djct_record good;
    make_record(&good, 20);
    CHECK_OK(djct_h5_write(p, &good, NULL));
    djct_record_clear(&good);
    CHECK(truncate(p, 1500) == 0);
    int rc = djct_h5_read(&r, p);
    CHECK(rc == DJCT_EIO || rc == DJCT_EINVAL);
    CHECK(strstr(djct_last_error(), "bad.h5") != NULL);
    /* an unfiltered chunk whose index records fewer bytes than the chunk holds: libhdf5 would copy
     * the full chunk out of the short buffer (a heap over-read, found by fuzz_h5 under ASan) */
    harness_rows short_chunk = HARNESS_ROWS_INIT;
    for (int which = 0; which < 2; which++) {
        values_file vf = start_values(p, 6, 3);
        hsize_t nrs = 4, off = 0;
        float v[6] = {0};
        int64_t rs6[4] = {0, 2, 2, 6}; /* otherwise a valid file */
        add_ds(vf.a, "row_splits", H5T_NATIVE_INT64, 1, &nrs, rs6, 0);
        if (which == 0) {
            H5Dwrite(vf.d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            off = 3;
        }
        herr_t wr = H5Dwrite_chunk(vf.d, H5P_DEFAULT, 0, &off, 5, v); /* 5 bytes, the chunk holds 12 */
        end_values(&vf);
        char want[128];
        snprintf(want, sizeof(want), "/features/000/values: the chunk at row %d stores 5 bytes, an unfiltered chunk "
                 "of this shape holds 12; the file is corrupt", which ? 0 : 3);
        ROW(short_chunk, wr >= 0 && harness_err_is(djct_h5_read_meta(&m, p), DJCT_EINVAL, want),
            "the short chunk at row %d: '%s'", which ? 0 : 3, djct_last_error());
    }
    CHECK_ROWS(short_chunk);
    /* a sparse array of 2^21 one-row chunks, 300 of them written: too many to check one by one, so
     * not checked; it opens (its values would be read through libhdf5) */
    hsize_t nv = (hsize_t)1 << 21;
    values_file vf = start_values(p, nv, 1);
    float x = 1;
    for (hsize_t c = 0; c < 300; c++) {
        hsize_t off = c * 7;
        H5Dwrite_chunk(vf.d, H5P_DEFAULT, 0, &off, 4, &x);
    }
    end_values(&vf);
    CHECK_OK(djct_h5_read_meta(&m, p));
    CHECK(m.n_events == (int64_t)nv);
    djct_file_meta_clear(&m);
}

/* ---- crashes ---- */

/* direct reads copy from a mapping of the file: a file truncated after open gives SIGBUS there,
 * which is an error for that read (libhdf5 is not involved, nothing is poisoned) */
static void test_shrunk_mapping(void)
{
    char p[512], q[512];
    path_of(p, "shrinks.h5");
    path_of(q, "other.h5");
    djct_record r, back;
    make_record(&r, 40);
    CHECK_OK(djct_h5_write(p, &r, NULL));
    CHECK_OK(djct_h5_write(q, &r, NULL));
    djct_h5_file *f = NULL;
    CHECK_OK(djct_h5_file_open(&f, p));
    if (!f)
        return;
    CHECK(djct_h5_file_direct(f) == 1);
    int64_t ev[3] = {0, 5, 39};
    float got[256];
    CHECK_OK(djct_h5_file_gather(f, 0, ev, 3, got));
    CHECK(truncate(p, 0) == 0);
    char want[1024];
    snprintf(want, sizeof(want), "'%s': /features/000/values: the file is shorter than when it was opened (SIGBUS "
             "reading it); was it truncated or rewritten?", p);
    CHECK_ERR(djct_h5_file_gather(f, 0, ev, 3, got), DJCT_EIO, want);
    CHECK_ERR(djct_h5_file_gather(f, 2, ev, 3, got), DJCT_EIO, "/truths/000/values: the file is shorter");
    CHECK(!djct_h5_poisoned());
    djct_h5_file_close(f);
    CHECK_OK(djct_h5_read(&back, q)); /* HDF5 still works */
    CHECK(fx_records_equal(&r, &back));
    djct_record_clear(&back);
    djct_record_clear(&r);
}

/* djct_h5_file_prefault touches every page of the mapped arrays (the process's page tables then
 * hold the file's data), stops at its byte limit, and reports a file that shrank under the mapping */
static void test_prefault(void)
{
    char p[512], pz[512];
    path_of(p, "prefault.h5");
    path_of(pz, "prefault_gz.h5");
    djct_record r;
    make_record(&r, 60000); /* ~2.6 MB of values */
    CHECK_OK(djct_h5_write(p, &r, NULL));
    djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
    o.gzip_level = 1;
    CHECK_OK(djct_h5_write(pz, &r, &o));
    int64_t want = 0;
    for (size_t i = 0; i < r.n_features; i++)
        want += (int64_t)r.features[i].n_values * 4;
    want += (int64_t)r.truths[0].n_values * 4 + (int64_t)r.weights[0].n_values * 4;
    djct_h5_file *f = NULL;
    CHECK_OK(djct_h5_file_open(&f, p));
    if (!f)
        return;
    CHECK(djct_h5_file_direct(f) == 1);
    long before = harness_mapped_kb(p);
    CHECK(djct_h5_file_prefault(f, 0) == 0);
    int64_t got = djct_h5_file_prefault(f, INT64_MAX);
    long after = harness_mapped_kb(p);
    printf("prefault: %lld bytes of %lld, mapped %ld kB before, %ld kB after\n", (long long)got,
           (long long)want, before, after);
    CHECK(got == want);
    CHECK(before >= 0 && before < want / 1024 / 2); /* opening reads the first and last rows only */
    CHECK(after >= want / 1024);
    /* the limit: whole chunks only, never more than asked */
    int64_t part = djct_h5_file_prefault(f, want / 2);
    CHECK(part > 0 && part <= want / 2);
    djct_h5_file_close(f);
    /* a compressed file is not mapped: nothing to touch */
    CHECK_OK(djct_h5_file_open(&f, pz));
    CHECK(djct_h5_file_prefault(f, INT64_MAX) == 0);
    djct_h5_file_close(f);
    /* shrunk under the mapping: an error naming the file, not a crash */
    CHECK_OK(djct_h5_file_open(&f, p));
    CHECK(truncate(p, 4096) == 0);
    CHECK_ERR((int)djct_h5_file_prefault(f, INT64_MAX), DJCT_EIO, "the file is shorter than when it was opened");
    djct_h5_file_close(f);
    djct_record_clear(&r);
}

/* A crash input in a child process (it poisons the process it runs in): the one-line error,
 * then every HDF5 call refused naming the crashed file, then a normal exit (libhdf5's own exit
 * handler faults on the state its crash left; djct makes that exit quiet). The child reports its
 * check counts through a pipe. */
static void crash_child(int fd, const char *input, double cpu_limit, const char *what, const char *kind)
{
    char ok_path[512], want[1024];
    path_of(ok_path, "fine.h5");
    djct_record r, back;
    make_record(&r, 10);
    CHECK_OK(djct_h5_write(ok_path, &r, NULL));
    djct_h5_file *before = NULL; /* opened before the crash */
    CHECK_OK(djct_h5_file_open(&before, ok_path));
    CHECK(!djct_h5_poisoned());

    djct_file_meta m;
    snprintf(want, sizeof(want), "'%s': libhdf5 %s", input, what);
    djct_h5_set_open_cpu_limit(cpu_limit);
    CHECK_ERR(djct_h5_read_meta(&m, input), DJCT_EIO, want);
    CHECK(strcmp(djct_last_error(), want) == 0);
    CHECK(djct_h5_poisoned());

    snprintf(want, sizeof(want), "'%s': HDF5 is disabled in this process since libhdf5 %s on '%s' (corrupt "
             "file?); fix or remove that file and restart", ok_path, kind, input);
    CHECK_ERR(djct_h5_read(&back, ok_path), DJCT_EIO, want);
    CHECK(strcmp(djct_last_error(), want) == 0);
    CHECK_ERR(djct_h5_read_meta(&m, input), DJCT_EIO, "HDF5 is disabled in this process");
    CHECK_ERR(djct_h5_write(ok_path, &r, NULL), DJCT_EIO, "HDF5 is disabled in this process");
    int64_t ev[1] = {3};
    float got[64];
    if (before) {
        CHECK_ERR(djct_h5_file_gather(before, 0, ev, 1, got), DJCT_EIO, "HDF5 is disabled in this process");
        djct_h5_file_close(before); /* frees djct's memory, makes no libhdf5 call */
    }
    djct_record_clear(&r);
    int counts[2] = {harness_passed, harness_failed};
    CHECK(write(fd, counts, sizeof(counts)) == (ssize_t)sizeof(counts));
    close(fd);
    exit(0);
}

static void libhdf5_crash_in_child(const char *input, double cpu_limit, const char *what, const char *kind)
{
    if (access(input, R_OK) != 0) {
        CHECK(!"the crash input is missing; run the test from the repository root");
        return;
    }
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        harness_passed = harness_failed = 0;
        crash_child(p[1], input, cpu_limit, what, kind);
    }
    close(p[1]);
    int counts[2] = {0, 0}, st = 0;
    ssize_t got = read(p[0], counts, sizeof(counts));
    close(p[0]);
    waitpid(pid, &st, 0);
    CHECK(got == (ssize_t)sizeof(counts));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* neither the crash nor the exit killed it */
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        fprintf(stderr, "  -> crash child: wait status %#x\n", st);
    harness_passed += counts[0];
    harness_failed += counts[1];
    CHECK(counts[0] >= 10 && counts[1] == 0);
    CHECK(!djct_h5_poisoned()); /* this process was not involved */
}

static void test_libhdf5_crash(void)
{
    libhdf5_crash_in_child(LIBHDF5_CRASH, 60, "crashed (SIGSEGV) while reading /features/000 attribute 'name' "
                           "(corrupt file?); HDF5 reading is disabled in this process, fix or remove the file",
                           "crashed");
    /* the CPU limit: no loop input is left (djct's driver refuses the heap that looped), so a limit
     * far below what opening this file takes: 8000 one-row chunks, whose index libhdf5 1.10
     * walks once per chunk for direct reads */
    char many[512];
    path_of(many, "many_chunks.h5");
    values_file vf = start_values(many, 8000, 1);
    float *zeros = calloc(8000, sizeof(float));
    H5Dwrite(vf.d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    free(zeros);
    end_values(&vf);
    struct stat st;
    CHECK(stat(many, &st) == 0);
    char what[512];
    snprintf(what, sizeof(what), "still ran after %g s of CPU time reading /features/000/values (storage layout and "
             "chunk index) (an endless loop on a corrupt file?); HDF5 reading is disabled in this process, fix or "
             "remove the file", 0.05 + (double)st.st_size / (16 << 20)); /* the limit grows with the file */
    libhdf5_crash_in_child(many, 0.05, what, "looped");

    /* the apps: one line per file on stderr, exit status 1 */
    char ok_path[512], out[512], err[512], cmd[2048];
    path_of(ok_path, "fine.h5");
    path_of(out, "inspect.out");
    path_of(err, "inspect.err");
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof(cmd), "%s/bin/djct_inspect %s %s >%s 2>%s", build, LIBHDF5_CRASH, ok_path, out, err);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    char text[4096] = "";
    FILE *fp = fopen(err, "r");
    size_t n = fp ? fread(text, 1, sizeof(text) - 1, fp) : 0;
    if (fp)
        fclose(fp);
    text[n] = 0;
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    CHECK(lines == 2);
    char want[1024];
    snprintf(want, sizeof(want), "djct_inspect: '%s': libhdf5 crashed (SIGSEGV) while reading /features/000 "
             "attribute 'name' (corrupt file?); HDF5 reading is disabled in this process, fix or remove the file\n"
             "djct_inspect: '%s': HDF5 is disabled in this process since libhdf5 crashed on '%s'", LIBHDF5_CRASH,
             ok_path, LIBHDF5_CRASH);
    CHECK(strncmp(text, want, strlen(want)) == 0);
    if (strncmp(text, want, strlen(want)))
        fprintf(stderr, "  -> djct_inspect said:\n%s", text);
}

/* Global heaps: djct's file driver refuses collections libhdf5 1.10 would loop on or copy past,
 * so those inputs fail cleanly and poison nothing. */
static void test_global_heap(void)
{
    djct_file_meta m;
    djct_h5_set_open_cpu_limit(60);
    CHECK_ERR(djct_h5_read_meta(&m, LIBHDF5_LOOP), DJCT_EINVAL, "/ attribute 'djct_format': cannot be read (hdf5: "
              "global heap collection at byte 2048 is corrupt: object 0 of 0 bytes at collection byte 240 has no "
              "size (the loader would loop))");
    CHECK_ERR(djct_h5_read_meta(&m, LIBHDF5_OVERFLOW), DJCT_EINVAL, "global heap collection at byte 2048 is "
              "corrupt: object 5 of 65536 bytes at collection byte 120 runs past the collection's end");
    CHECK(!djct_h5_poisoned());

    /* the check itself, on a collection built by hand: header, "hello", free space to the end */
    unsigned char b[4096] = "GCOL\1";
    char why[160];
    b[9] = 0x10; /* size 4096, little-endian, 8 bytes */
    b[16] = 1;   /* object 1: index 1, 1 reference, 5 bytes */
    b[18] = 1;
    b[24] = 5;
    memcpy(b + 32, "hello", 5);
    uint64_t free_bytes = 4096 - 40; /* object 0 after 16 + 8 bytes: free space, its record included */
    memcpy(b + 40 + 8, &free_bytes, 8);
    CHECK(djct_h5_check_gheap(b, sizeof(b), 8, why, sizeof(why)) == 0);
    b[24 + 1] = 0x10; /* 4101 bytes: past the end */
    CHECK(djct_h5_check_gheap(b, sizeof(b), 8, why, sizeof(why)) < 0);
    CHECK(strcmp(why, "object 1 of 4101 bytes at collection byte 16 runs past the collection's end") == 0);
    b[24 + 1] = 0;
    memset(b + 40 + 8, 0, 8); /* a free-space record of no size */
    CHECK(djct_h5_check_gheap(b, sizeof(b), 8, why, sizeof(why)) < 0);
    CHECK(strstr(why, "object 0 of 0 bytes at collection byte 40 has no size") != NULL);
    memcpy(b + 40 + 8, &free_bytes, 8);
    CHECK(djct_h5_check_gheap(b, sizeof(b) - 8, 8, why, sizeof(why)) < 0); /* shorter than it says */
    CHECK(strstr(why, "collection size 4096 outside 16..4088") != NULL);
    CHECK(djct_h5_check_gheap(b, sizeof(b), 8, why, sizeof(why)) == 0);
}

/* ---- h5py both ways: the snippet of docs/hdf5_layout.md writes, djct reads; djct writes,
 *      h5py reads and compares with the same formulas ---- */
static void test_h5py(void)
{
    if (system("/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null") != 0) {
        harness_skip("/usr/bin/python3 with h5py and numpy not available");
        return;
    }
    char py[512], out[512], cmd[2048];
    path_of(py, "doc_snippet.py");
    path_of(out, "from_h5py.h5");
    snprintf(cmd, sizeof(cmd),
             "sed -n '/^```python$/,/^```$/p' docs/hdf5_layout.md | sed '1d;$d' > '%s' && /usr/bin/python3 '%s' '%s'",
             py, py, out);
    CHECK(system(cmd) == 0);
    djct_record r;
    CHECK_OK(djct_h5_read(&r, out));
    CHECK(r.n_features == 2 && r.n_truths == 2);
    if (r.n_features == 2 && r.n_truths == 2) {
        const djct_array *p = &r.features[0];
        CHECK(!strcmp(p->name, "points") && p->n_feature_names == 4 && !strcmp(p->feature_names[3], "energy"));
        CHECK(p->ndim == 3 && p->shape[0] == 4 && p->shape[1] == -10 && p->shape[2] == 4);
        CHECK(p->row_splits[1] == 3 && p->row_splits[2] == 3 && p->row_splits[4] == 10);
        CHECK(((float *)p->values)[39] == 19.5f);
        CHECK(r.features[1].dtype == DJCT_DTYPE_INT32 && !djct_array_is_ragged(&r.features[1]));
        CHECK(((int32_t *)r.features[1].values)[2] == 5);
        CHECK(r.truths[0].ndim == 2 && ((int32_t *)r.truths[0].values)[2] == 2);
        CHECK(r.truths[1].dtype == DJCT_DTYPE_FLOAT32 && ((float *)r.truths[1].values)[2] == 2.25f);
        CHECK(r.n_weights == 0);
    }
    djct_record_clear(&r);

    djct_record w;
    make_record(&w, 30);
    djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
    o.gzip_level = 1;
    path_of(out, "for_h5py.h5");
    CHECK_OK(djct_h5_write(out, &w, &o));
    djct_record_clear(&w);
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 - '%s' <<'EOF'\n"
             "import sys, h5py, numpy as np\n"
             "f = h5py.File(sys.argv[1], 'r')\n"
             "assert f.attrs['djct_format'] == 'djct-ragged-1'\n"
             "E = 30\n"
             "rs = np.concatenate([[0], np.cumsum([(7 * e) %% 5 for e in range(E)])])\n"
             "p = f['features/000']\n"
             "assert p.attrs['name'] == 'points' and list(p.attrs['feature_names']) == ['x', 'y', 'energy']\n"
             "assert np.array_equal(p['row_splits'][...], rs) and p['row_splits'].dtype == np.int64\n"
             "v = p['values'][...]\n"
             "assert v.dtype == np.float32 and v.shape == (rs[-1], 3)\n"
             "assert np.array_equal(v.ravel(), np.arange(rs[-1] * 3, dtype=np.float32) * 0.25 - 3)\n"
             "ids = f['features/001/values'][...]\n"
             "assert ids.dtype == np.int32 and np.array_equal(ids, np.arange(rs[-1]) * 3 - 5)\n"
             "assert np.array_equal(f['truths/000/values'][...][:, 0], np.arange(E) %% 3)\n"
             "assert np.array_equal(f['weights/000/values'][...], (1 / np.arange(1, E + 1)).astype(np.float32))\n"
             "print('h5py ok')\n"
             "EOF",
             out);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/djct_test_h5_%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", dir);
    if (system(cmd) != 0)
        return 1;
    test_roundtrip();
    test_hostile();
    test_shrunk_mapping();
    test_prefault();
    test_libhdf5_crash();
    test_global_heap();
    test_h5py();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return harness_report();
}
