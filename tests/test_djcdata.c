/* djcdata files: conformance with djcdata's own test files (every value and row split compared
 * with the numpy arrays), the spec's 176-byte worked example byte for byte, round trips of every
 * supported shape of data, multi-record files, metadata, the .djcdc example, hostile input
 * (truncation at every byte, flipped bytes, bad versions, huge sizes), and the decoder in parts
 * (the serial reader's record or error for every flipped byte and truncation). */
#include "harness.h"
#include "data_fixtures.h"

#include "djcdata_int.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static const char *fixdir;

/* ---- helpers ---------------------------------------------------------------------------------- */

/* minimal .npy reader: little-endian descr, C order; returns the data pointer inside *file */
static const unsigned char *npy(unsigned char **file, const char *path, const char *descr, size_t *count)
{
    size_t len;
    unsigned char *b = (unsigned char *)harness_slurp(path, &len);
    *file = b;
    if (!b || len < 10 || memcmp(b, "\x93NUMPY", 6))
        return NULL;
    size_t hl, off;
    if (b[6] == 1) {
        hl = b[8] | (size_t)b[9] << 8;
        off = 10;
    } else {
        hl = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    }
    char hdr[1024] = {0};
    memcpy(hdr, b + off, hl < 1023 ? hl : 1023);
    if (!strstr(hdr, descr) || strstr(hdr, "'fortran_order': True"))
        return NULL;
    const char *sh = strstr(hdr, "'shape': (");
    if (!sh)
        return NULL;
    sh += 10;
    size_t c = 1;
    while (*sh && *sh != ')') {
        c *= strtoull(sh, (char **)&sh, 10);
        while (*sh == ',' || *sh == ' ')
            sh++;
    }
    *count = c;
    return b + off + hl;
}

static djct_array mk(const char *name, djct_dtype dt, int ndim, const int64_t *shape, const int64_t *rs,
                     size_t nrs, int seed)
{
    djct_array a;
    memset(&a, 0, sizeof(a));
    a.name = strdup(name);
    a.dtype = dt;
    a.ndim = ndim;
    memcpy(a.shape, shape, sizeof(int64_t) * (size_t)ndim);
    size_t n = 1;
    for (int i = rs ? 1 : 0; i < ndim; i++)
        n *= (size_t)(shape[i] < 0 ? -shape[i] : shape[i]);
    a.n_values = n;
    a.values = malloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++) {
        if (dt == DJCT_DTYPE_FLOAT32)
            ((float *)a.values)[i] = (float)((int)((i * 7 + (size_t)seed) % 23) - 11) * 0.5f;
        else
            ((int32_t *)a.values)[i] = (int32_t)(i * 31 + (size_t)seed) - 100;
    }
    if (rs) {
        a.n_row_splits = nrs;
        a.row_splits = malloc(nrs * 8);
        memcpy(a.row_splits, rs, nrs * 8);
    }
    return a;
}

static void add_fn(djct_array *a, const char *f)
{
    a->feature_names = realloc(a->feature_names, (a->n_feature_names + 1) * sizeof(char *));
    a->feature_names[a->n_feature_names++] = strdup(f);
}

/* the worked example of djcdata.md section 4 */
static const unsigned char EXAMPLE[176] = {
    0x66, 0x66, 0x06, 0x40, 0x66, 0x66, 0x06, 0x40, 0x00, 0x00, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x65, 0x78,
    0x02, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x62,
    0x06, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xff, 0xff, 0xff, 0x02,
    0x00, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x66, 0x66, 0x06, 0x40, 0x01, 0x17, 0, 0, 0, 0, 0, 0, 0, 0x18,
    0, 0, 0, 0, 0, 0, 0, 0x6d, 0x17, 0x18, 0x28, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xca, 0x00, 0x01, 0x12, 0x02,
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x66, 0x66, 0x06, 0x40, 0x01, 0x1b, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6d, 0x1b, 0x18, 0x00, 0x03, 0x00, 0x80,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x0c, 0x10, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40, 0x00, 0x00,
    0xc0, 0x40};

static djct_array example_array(void)
{
    int64_t shape[3] = {2, -3, 2}, rs[3] = {0, 1, 3};
    djct_array a = mk("ex", DJCT_DTYPE_FLOAT32, 3, shape, rs, 3, 0);
    for (int i = 0; i < 6; i++)
        ((float *)a.values)[i] = (float)(i + 1);
    add_fn(&a, "a");
    add_fn(&a, "b");
    return a;
}

/* ---- conformance ------------------------------------------------------------------------------- */

static void test_fixtures(void)
{
    char p_arr[512], p_rs[512], p_sa[512], p_td[512];
    snprintf(p_arr, sizeof(p_arr), "%s/np_arr.npy", fixdir);
    snprintf(p_rs, sizeof(p_rs), "%s/np_rs.npy", fixdir);
    snprintf(p_sa, sizeof(p_sa), "%s/simpleArray_previous.djcsa", fixdir);
    snprintf(p_td, sizeof(p_td), "%s/trainData_previous.djctd", fixdir);
    if (access(p_arr, R_OK) != 0) {
        harness_skip("djcdata upstream fixtures not found (set DJCT_FIXTURES)");
        return;
    }
    unsigned char *farr, *frs;
    size_t narr = 0, nrs = 0;
    const float *np_arr = (const float *)npy(&farr, p_arr, "'<f4'", &narr);
    const int64_t *np_rs = (const int64_t *)npy(&frs, p_rs, "'<i8'", &nrs);
    CHECK(np_arr && narr == 300 * 40 * 7 * 3);
    CHECK(np_rs && nrs >= 2);
    if (!np_arr || !np_rs)
        return;
    size_t want = 100 * 40 * 7 * 3;

    djct_array a;
    CHECK_OK(djct_djcsa_read(&a, p_sa));
    CHECK(a.dtype == DJCT_DTYPE_FLOAT32 && a.ndim == 5 && a.n_values == want);
    CHECK(a.shape[0] == (int64_t)nrs - 1 && a.shape[1] == -100 && a.shape[2] == 40 && a.shape[3] == 7 &&
          a.shape[4] == 3);
    CHECK(a.n_row_splits == nrs && a.row_splits && !memcmp(a.row_splits, np_rs, nrs * 8));
    CHECK(a.values && !memcmp(a.values, np_arr, want * 4));
    CHECK(a.name && a.name[0] == 0 && a.n_feature_names == 0);

    djct_record r;
    CHECK_OK(djct_djcdata_read(&r, p_td));
    CHECK(r.n_features == 1 && r.n_truths == 0 && r.n_weights == 0);
    if (r.n_features == 1) {
        djct_array *f = &r.features[0];
        CHECK(f->n_values == want && !memcmp(f->values, np_arr, want * 4));
        CHECK(f->n_row_splits == nrs && !memcmp(f->row_splits, np_rs, nrs * 8));
        CHECK(fx_arrays_equal(f, &a));
    }
    /* metadata: row splits only */
    djct_file_meta m;
    CHECK_OK(djct_djcdata_read_meta(&m, p_td));
    CHECK(m.format == DJCT_FORMAT_DJCTD && m.n_records == 1 && m.n_events == (int64_t)nrs - 1);
    CHECK(m.n_elements == 100 && m.event_elements);
    harness_rows per_event = HARNESS_ROWS_INIT;
    for (size_t e = 0; m.event_elements && e + 1 < nrs; e++)
        ROW(per_event, m.event_elements[e] == np_rs[e + 1] - np_rs[e], "event %zu: %lld elements, want %lld", e,
            (long long)m.event_elements[e], (long long)(np_rs[e + 1] - np_rs[e]));
    CHECK_ROWS(per_event);
    CHECK(m.layout.n_features == 1 && m.layout.features[0].values == NULL &&
          m.layout.features[0].n_row_splits == nrs);
    djct_file_meta_clear(&m);
    CHECK_OK(djct_djcdata_read_meta(&m, p_sa));
    CHECK(m.format == DJCT_FORMAT_DJCSA && m.n_events == (int64_t)nrs - 1 && m.n_elements == 100);
    djct_file_meta_clear(&m);
    CHECK(djct_djcdata_format_of(p_sa) == DJCT_FORMAT_DJCSA);
    CHECK(djct_djcdata_format_of(p_td) == DJCT_FORMAT_DJCTD);

    /* re-encode (2.1, compressed) and compare */
    void *buf;
    size_t len;
    CHECK_OK(djct_djcsa_write_mem(&buf, &len, &a, NULL));
    djct_array b;
    CHECK_OK(djct_djcsa_read_mem(&b, buf, len, "reencoded"));
    CHECK(fx_arrays_equal(&a, &b));
    djct_array_clear(&b);
    free(buf);
    /* the fixture's value block is a stored 9-byte-header chunk (random floats): ours too */
    djct_array_clear(&a);
    djct_record_clear(&r);
    free(farr);
    free(frs);
}

static void test_example(void)
{
    djct_array a = example_array(), b;
    void *buf;
    size_t len;
    CHECK_OK(djct_djcsa_write_mem(&buf, &len, &a, NULL));
    CHECK(len == 176 && !memcmp(buf, EXAMPLE, 176));
    if (len == 176)
        for (size_t i = 0; i < 176; i++)
            if (((unsigned char *)buf)[i] != EXAMPLE[i]) {
                fprintf(stderr, "  example differs at byte %zu\n", i);
                break;
            }
    free(buf);
    CHECK_OK(djct_djcsa_read_mem(&b, EXAMPLE, sizeof(EXAMPLE), "example.djcsa"));
    CHECK(fx_arrays_equal(&a, &b));
    djct_array_clear(&b);
    char path[512];
    snprintf(path, sizeof(path), "%s/ex.djcsa", tmpdir);
    CHECK_OK(djct_djcsa_write(path, &a, NULL));
    size_t flen;
    unsigned char *f = (unsigned char *)harness_slurp(path, &flen);
    CHECK(f && flen == 176 && !memcmp(f, EXAMPLE, 176));
    free(f);
    CHECK_OK(djct_djcsa_read(&b, path));
    CHECK(fx_arrays_equal(&a, &b));
    djct_array_clear(&b);
    djct_array_clear(&a);
}

/* ---- round trips ------------------------------------------------------------------------------- */

static djct_record sample_record(int seed, int64_t nev)
{
    djct_record r;
    memset(&r, 0, sizeof(r));
    int64_t *rs = malloc((size_t)(nev + 1) * 8), *rs2 = malloc((size_t)(nev + 1) * 8);
    rs[0] = rs2[0] = 0;
    for (int64_t e = 0; e < nev; e++) {
        rs[e + 1] = rs[e] + (e * 5 + seed) % 7;
        rs2[e + 1] = rs2[e] + (e + seed) % 3;
    }
    int64_t tot = rs[nev], tot2 = rs2[nev];
    r.n_features = 3;
    r.features = calloc(3, sizeof(djct_array));
    int64_t s0[3] = {nev, -tot, 4}, s1[2] = {nev, -tot}, s2[2] = {nev, 3};
    r.features[0] = mk("hits", DJCT_DTYPE_FLOAT32, 3, s0, rs, (size_t)nev + 1, seed);
    add_fn(&r.features[0], "x");
    add_fn(&r.features[0], "y");
    add_fn(&r.features[0], "z");
    add_fn(&r.features[0], "energy");
    r.features[1] = mk("ids", DJCT_DTYPE_INT32, 2, s1, rs, (size_t)nev + 1, seed);
    r.features[2] = mk("", DJCT_DTYPE_FLOAT32, 2, s2, NULL, 0, seed);
    r.n_truths = 2;
    r.truths = calloc(2, sizeof(djct_array));
    int64_t t0[2] = {nev, 1}, t1[3] = {nev, -tot2, 2};
    r.truths[0] = mk("label", DJCT_DTYPE_INT32, 2, t0, NULL, 0, seed);
    r.truths[1] = mk("tracks", DJCT_DTYPE_FLOAT32, 3, t1, rs2, (size_t)nev + 1, seed);
    free(rs);
    free(rs2);
    return r;
}

static void test_roundtrip(void)
{
    /* stored and compressed: the record comes back equal; the metadata counts elements right */
    harness_rows calls = HARNESS_ROWS_INIT, equal = HARNESS_ROWS_INIT, meta = HARNESS_ROWS_INIT;
    for (int compress = 0; compress < 2; compress++) {
        djct_record r = sample_record(3, 50), back;
        djct_djcdata_write_options o = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
        o.compress = compress;
        void *buf = NULL;
        size_t len = 0;
        ROW_OK(calls, djct_djcdata_write_mem(&buf, &len, &r, &o), "compress %d", compress);
        ROW_OK(calls, djct_djcdata_read_mem(&back, buf, len, "rt.djctd"), "compress %d", compress);
        ROW(equal, fx_records_equal(&r, &back), "compress %d", compress);
        djct_record_clear(&back);
        free(buf);
        /* metadata: hits and ids share row splits (counted once), tracks adds its own */
        char path[512];
        snprintf(path, sizeof(path), "%s/rt%d.djctd", tmpdir, compress);
        ROW_OK(calls, djct_djcdata_write(path, &r, &o), "compress %d", compress);
        djct_file_meta m;
        ROW_OK(calls, djct_djcdata_read_meta(&m, path), "compress %d", compress);
        int ok = m.n_events == 50 && m.n_records == 1 && m.event_elements;
        int64_t sum = 0;
        for (int64_t e = 0; m.event_elements && e < 50; e++) {
            int64_t want = (r.features[0].row_splits[e + 1] - r.features[0].row_splits[e]) +
                           (r.truths[1].row_splits[e + 1] - r.truths[1].row_splits[e]);
            ok &= m.event_elements[e] == want;
            sum += want;
        }
        ROW(meta, ok && m.n_elements == sum && m.layout.n_features == 3 && !strcmp(m.layout.features[0].name, "hits") &&
                      m.layout.features[0].n_feature_names == 4 && m.layout.truths[1].shape[1] == r.truths[1].shape[1],
            "compress %d: %lld events, %lld elements (want %lld)", compress, (long long)m.n_events,
            (long long)m.n_elements, (long long)sum);
        djct_file_meta_clear(&m);
        djct_record_clear(&r);
    }
    CHECK_ROWS(calls);
    CHECK_ROWS(equal);
    CHECK_ROWS(meta);
    /* stored chunks: a small block gets a 3-byte header, a large one a 9-byte header */
    {
        int64_t s[2] = {10, 2}, s2[2] = {1000, 3};
        djct_array a = mk("small", DJCT_DTYPE_INT32, 2, s, NULL, 0, 1), b;
        djct_djcdata_write_options o = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
        o.compress = 0;
        void *buf;
        size_t len;
        CHECK_OK(djct_djcsa_write_mem(&buf, &len, &a, &o));
        CHECK(((unsigned char *)buf)[len - 80 - 3] == 0x6c);
        CHECK_OK(djct_djcsa_read_mem(&b, buf, len, "s3"));
        CHECK(fx_arrays_equal(&a, &b));
        djct_array_clear(&b);
        djct_array_clear(&a);
        free(buf);
        a = mk("big", DJCT_DTYPE_FLOAT32, 2, s2, NULL, 0, 1);
        CHECK_OK(djct_djcsa_write_mem(&buf, &len, &a, &o));
        CHECK(((unsigned char *)buf)[len - 12000 - 9] == 0x6e);
        CHECK_OK(djct_djcsa_read_mem(&b, buf, len, "s9"));
        CHECK(fx_arrays_equal(&a, &b));
        djct_array_clear(&b);
        djct_array_clear(&a);
        free(buf);
    }
    /* multi-chunk blocks, compressed with streaming references between chunks, and stored */
    harness_rows mcalls = HARNESS_ROWS_INIT, chunks = HARNESS_ROWS_INIT, mequal = HARNESS_ROWS_INIT;
    for (int compress = 0; compress < 2; compress++) {
        size_t old = djct_djcdata_chunk_limit;
        djct_djcdata_chunk_limit = 1000;
        int64_t s[2] = {5000, 4};
        djct_array a = mk("multi", DJCT_DTYPE_INT32, 2, s, NULL, 0, 2), b;
        /* low-entropy values repeating every 1000 bytes: each 1000-byte chunk alone compresses
         * only ~2:1, but every chunk after the first equals the first */
        uint32_t h = 12345;
        for (size_t i = 0; i < a.n_values; i++) {
            if (i % 250 == 0)
                h = 12345;
            uint32_t v = 0;
            for (int k = 0; k < 4; k++) {
                h = h * 1103515245u + 12345u;
                v |= (uint32_t)("abcd"[(h >> 16) & 3]) << (8 * k);
            }
            ((uint32_t *)a.values)[i] = v;
        }
        djct_djcdata_write_options o = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
        o.compress = compress;
        void *buf = NULL;
        size_t len = 0;
        ROW_OK(mcalls, djct_djcsa_write_mem(&buf, &len, &a, &o), "compress %d", compress);
        djct_djcdata_chunk_limit = old;
        /* 80000 bytes in 80 chunks; far smaller than 80 independently compressed chunks could
         * be: chunks 1..79 are coded as references into chunk 0 (streaming mode) */
        unsigned char *p = buf;
        size_t hdr = 4 + 4 + 4 + 8 + 5 + 8 + 8 + 8 + 8 + 8; /* up to the data qblock */
        ROW(chunks, p && p[hdr + 4] == 80, "compress %d: chunk count %d", compress, p ? p[hdr + 4] : -1);
        if (compress) {
            /* each chunk alone: compress chunk 0's bytes with a fresh state */
            djct_qlz_cstate *cs = NULL;
            unsigned char tmp[2000];
            size_t cl = 0;
            ROW_OK(mcalls, djct_qlz_cstate_create(&cs), "a fresh state");
            ROW_OK(mcalls, djct_qlz_compress(cs, a.values, 1000, tmp, sizeof(tmp), &cl), "chunk 0 alone");
            ROW(chunks, len < 8000 && cl > 200 && len < 80 * cl / 4, "chunk alone %zu bytes, block %zu bytes", cl, len);
            djct_qlz_cstate_free(cs);
        }
        ROW_OK(mcalls, djct_djcsa_read_mem(&b, buf, len, "multi"), "compress %d", compress);
        ROW(mequal, fx_arrays_equal(&a, &b), "compress %d", compress);
        djct_array_clear(&b);
        djct_array_clear(&a);
        free(buf);
    }
    CHECK_ROWS(mcalls);
    CHECK_ROWS(chunks);
    CHECK_ROWS(mequal);
    /* empty arrays: 0 events (ragged and regular), and events with 0 elements */
    {
        int64_t rs0[1] = {0}, s0[3] = {0, 0, 3}, sr[2] = {0, 5}, rs3[4] = {0, 0, 0, 0}, s3[2] = {3, 0};
        djct_record r, back;
        memset(&r, 0, sizeof(r));
        r.n_features = 3;
        r.features = calloc(3, sizeof(djct_array));
        r.features[0] = mk("e0", DJCT_DTYPE_FLOAT32, 3, s0, rs0, 1, 0);
        r.features[1] = mk("e1", DJCT_DTYPE_INT32, 2, sr, NULL, 0, 0);
        r.features[2] = mk("e2", DJCT_DTYPE_FLOAT32, 2, s0, rs0, 1, 0);
        void *buf;
        size_t len;
        CHECK_OK(djct_djcdata_write_mem(&buf, &len, &r, NULL));
        CHECK_OK(djct_djcdata_read_mem(&back, buf, len, "empty"));
        CHECK(fx_records_equal(&r, &back));
        djct_record_clear(&back);
        free(buf);
        djct_record_clear(&r);
        djct_array a = mk("z", DJCT_DTYPE_FLOAT32, 2, s3, rs3, 4, 0), b;
        CHECK_OK(djct_djcsa_write_mem(&buf, &len, &a, NULL));
        /* both blocks: the 13-byte empty form only for the data; row splits hold 32 bytes */
        CHECK(len > 13 && !memcmp((unsigned char *)buf + len - 13, "\x66\x66\x06\x40\x00\0\0\0\0\0\0\0\0", 13));
        CHECK_OK(djct_djcsa_read_mem(&b, buf, len, "z"));
        CHECK(fx_arrays_equal(&a, &b));
        djct_array_clear(&a);
        djct_array_clear(&b);
        free(buf);
    }
    /* format 2.0 headers: a hand-converted copy of a 2.1 file (no dtype, name, feature names) */
    {
        int64_t s[3] = {2, -3, 2};
        djct_array a = example_array(), b;
        free(a.name);
        a.name = strdup("");
        for (size_t i = 0; i < a.n_feature_names; i++)
            free(a.feature_names[i]);
        free(a.feature_names);
        a.feature_names = NULL;
        a.n_feature_names = 0;
        (void)s;
        void *buf;
        size_t len;
        CHECK_OK(djct_djcsa_write_mem(&buf, &len, &a, NULL));
        unsigned char *p = buf, v20[4] = {0, 0, 0, 0x40};
        /* drop dtype (4), name (8) and feature count (8) after the array version */
        memmove(p + 8, p + 28, len - 28);
        len -= 20;
        for (size_t i = 0; i + 4 <= len; i++)
            if (!memcmp(p + i, "\x66\x66\x06\x40", 4))
                memcpy(p + i, v20, 4);
        CHECK_OK(djct_djcsa_read_mem(&b, p, len, "v20.djcsa"));
        CHECK(fx_arrays_equal(&a, &b));
        djct_array_clear(&b);
        free(buf);
        djct_array_clear(&a);
    }
}

static void test_multirecord(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/multi.djctd", tmpdir);
    remove(path);
    djct_djcdata_write_options o = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
    o.append = 1;
    djct_record r1 = sample_record(1, 20), r2 = sample_record(2, 7), r3 = sample_record(3, 11), all;
    free(r2.features[0].name);
    r2.features[0].name = strdup("renamed"); /* names come from the first record */
    CHECK_OK(djct_djcdata_write(path, &r1, &o));
    CHECK_OK(djct_djcdata_write(path, &r2, &o));
    o.compress = 0;
    CHECK_OK(djct_djcdata_write(path, &r3, &o));
    size_t n = 0;
    CHECK_OK(djct_djcdata_count_records(&n, path));
    CHECK(n == 3);
    CHECK_OK(djct_djcdata_read(&all, path));
    CHECK(all.n_features == 3 && all.features[0].shape[0] == 38 && !strcmp(all.features[0].name, "hits"));
    /* values and row splits are the concatenation */
    djct_array *h = &all.features[0];
    int64_t t1 = -r1.features[0].shape[1], t2 = -r2.features[0].shape[1], t3 = -r3.features[0].shape[1];
    CHECK(h->shape[1] == -(t1 + t2 + t3) && h->n_row_splits == 39);
    CHECK(h->row_splits[20] == t1 && h->row_splits[27] == t1 + t2 && h->row_splits[38] == t1 + t2 + t3);
    CHECK(!memcmp((float *)h->values + t1 * 4, r2.features[0].values, (size_t)t2 * 16));
    CHECK(djct_array_validate(h) == 0);
    CHECK(djct_array_validate(&all.truths[1]) == 0 && djct_array_validate(&all.features[2]) == 0);
    CHECK(all.features[2].shape[0] == 38 && !memcmp((float *)all.features[2].values + 27 * 3, r3.features[2].values, 11 * 12));
    djct_file_meta m;
    CHECK_OK(djct_djcdata_read_meta(&m, path));
    CHECK(m.n_records == 3 && m.n_events == 38 && m.layout.features[0].shape[0] == 38 &&
          m.layout.features[0].shape[1] == h->shape[1]);
    int64_t e27 = (r3.features[0].row_splits[1] - r3.features[0].row_splits[0]) +
                  (r3.truths[1].row_splits[1] - r3.truths[1].row_splits[0]);
    CHECK(m.event_elements && m.event_elements[27] == e27);
    djct_file_meta_clear(&m);
    djct_record one;
    CHECK_OK(djct_djcdata_read_record(&one, path, 1));
    CHECK(fx_records_equal(&one, &r2));
    djct_record_clear(&one);
    CHECK_ERR(djct_djcdata_read_record(&one, path, 3), DJCT_EINVAL, "record 3 requested");
    /* an incompatible record is refused on append */
    djct_record bad = sample_record(1, 5);
    bad.features[1].dtype = DJCT_DTYPE_FLOAT32;
    CHECK_ERR(djct_djcdata_write(path, &bad, &o), DJCT_EINVAL, "cannot be appended");
    djct_record_clear(&bad);
    /* ... and detected on read when forced in (raw concatenation) */
    void *b1, *b2;
    size_t l1, l2;
    djct_record x = sample_record(1, 4), y = sample_record(2, 4);
    y.truths[0].shape[1] = 2;
    free(y.truths[0].values);
    y.truths[0].n_values = 8;
    y.truths[0].values = calloc(8, 4);
    CHECK_OK(djct_djcdata_write_mem(&b1, &l1, &x, NULL));
    CHECK_OK(djct_djcdata_write_mem(&b2, &l2, &y, NULL));
    unsigned char *cat = malloc(l1 + l2);
    memcpy(cat, b1, l1);
    memcpy(cat + l1, b2, l2);
    CHECK_ERR(djct_djcdata_read_mem(&one, cat, l1 + l2, "cat.djctd"), DJCT_EINVAL, "inner dimension 1 is 2");
    free(cat);
    free(b1);
    free(b2);
    djct_record_clear(&x);
    djct_record_clear(&y);
    djct_record_clear(&all);
    djct_record_clear(&r1);
    djct_record_clear(&r2);
    djct_record_clear(&r3);
}

/* ---- decoding in parts (djcdata_parts.c) --------------------------------------------------------- */

/* the file (buf NULL) or image through the parts decoder: layout, every block from the last to
 * the first (no order may matter), finish */
static int read_parts(djct_record *out, const char *path, const void *buf, size_t len)
{
    djcdata_parts *p;
    int rc = djcdata_parts_open(&p, path, buf, len);
    if (rc)
        return rc;
    unsigned char *scratch = NULL;
    size_t cap = 0;
    for (size_t i = djcdata_parts_count(p); i-- > 0;)
        djcdata_parts_decode(p, i, &scratch, &cap);
    rc = djcdata_parts_finish(p, out);
    free(scratch);
    djcdata_parts_free(p);
    return rc;
}

/* both readers of the same bytes agree: the same code and message, or equal records */
static int same_as_serial(const char *path, const void *buf, size_t len, char *why, size_t whylen)
{
    djct_record a, b;
    int ra = buf ? djct_djcdata_read_mem(&a, buf, len, path) : djct_djcdata_read(&a, path);
    char ma[1024];
    snprintf(ma, sizeof(ma), "%s", djct_last_error());
    int rb = read_parts(&b, path, buf, len);
    int same = ra == rb && (ra ? !strcmp(ma, djct_last_error()) : fx_records_equal(&a, &b));
    if (!same)
        snprintf(why, whylen, "serial %d '%s', parts %d '%s'", ra, ra ? ma : "", rb, rb ? djct_last_error() : "");
    if (!ra)
        djct_record_clear(&a);
    if (!rb)
        djct_record_clear(&b);
    return same;
}

static void test_parts(void)
{
    /* three records (multi-chunk blocks with streaming references, then stored chunks), five
     * arrays each, ragged and regular */
    char path[512], cpath[512];
    snprintf(path, sizeof(path), "%s/parts.djctd", tmpdir);
    snprintf(cpath, sizeof(cpath), "%s/parts-corrupt.djctd", tmpdir);
    remove(path);
    djct_djcdata_write_options o = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
    o.append = 1;
    size_t old = djct_djcdata_chunk_limit;
    djct_djcdata_chunk_limit = 200;
    djct_record r[3] = {sample_record(4, 40), sample_record(5, 9), sample_record(6, 13)};
    CHECK_OK(djct_djcdata_write(path, &r[0], &o));
    CHECK_OK(djct_djcdata_write(path, &r[1], &o));
    o.compress = 0;
    CHECK_OK(djct_djcdata_write(path, &r[2], &o));
    djct_djcdata_chunk_limit = old;
    size_t len = 0;
    unsigned char *img = (unsigned char *)harness_slurp(path, &len);
    djct_record serial, parts;
    CHECK_OK(djct_djcdata_read(&serial, path));
    CHECK_OK(read_parts(&parts, path, NULL, 0));
    CHECK(fx_records_equal(&serial, &parts) && djct_array_validate(&parts.features[0]) == 0);
    djct_record_clear(&parts);
    CHECK_OK(read_parts(&parts, "image", img, len));
    CHECK(fx_records_equal(&serial, &parts));
    djct_record_clear(&parts);
    djct_record_clear(&serial);
    /* one block per array and record */
    djcdata_parts *p = NULL;
    CHECK_OK(djcdata_parts_open(&p, path, NULL, 0));
    CHECK(djcdata_parts_count(p) == 15);
    djcdata_parts_free(p);

    /* every byte flipped in turn, and every truncation: the parts decoder gives the serial
     * reader's code and message (the first failing block in file order, else the first structural
     * error), or the same record */
    harness_rows flips = HARNESS_ROWS_INIT, cuts = HARNESS_ROWS_INIT, files = HARNESS_ROWS_INIT;
    unsigned char *bad = malloc(len);
    char why[2200];
    for (size_t i = 0; img && bad && i < len; i++) {
        memcpy(bad, img, len);
        bad[i] ^= (unsigned char)(0x5A + i % 7);
        ROW(flips, same_as_serial("flip.djctd", bad, len, why, sizeof(why)), "byte %zu: %s", i, why);
        ROW(cuts, same_as_serial("cut.djctd", img, i, why, sizeof(why)), "length %zu: %s", i, why);
        if (i % 13 == 0) { /* through a file: pread and the stored-chunk path */
            FILE *f = fopen(cpath, "wb");
            size_t put = f ? fwrite(bad, 1, len, f) : 0;
            if (f)
                fclose(f);
            ROW(files, put == len && same_as_serial(cpath, NULL, 0, why, sizeof(why)), "byte %zu: %s", i, why);
        }
    }
    CHECK_ROWS(flips);
    CHECK_ROWS(cuts);
    CHECK_ROWS(files);
    free(bad);
    free(img);
    for (int k = 0; k < 3; k++)
        djct_record_clear(&r[k]);
}

/* ---- bad input --------------------------------------------------------------------------------- */

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_bad_input(void)
{
    djct_array a;
    djct_record r;
    unsigned char b[512];
    /* truncation at every byte of the example: always an error naming a byte offset */
    int all_err = 1, all_named = 1;
    for (size_t n = 0; n < sizeof(EXAMPLE); n++) {
        int rc = djct_djcsa_read_mem(&a, EXAMPLE, n, "t.djcsa");
        all_err &= rc == DJCT_EINVAL;
        all_named &= strstr(djct_last_error(), "file 't.djcsa': byte ") != NULL;
        if (!rc)
            djct_array_clear(&a);
    }
    CHECK(all_err && all_named);
    /* the same for a small multi-array .djctd */
    djct_record s = sample_record(5, 3);
    void *buf;
    size_t len;
    CHECK_OK(djct_djcdata_write_mem(&buf, &len, &s, NULL));
    all_err = 1;
    for (size_t n = 0; n < len; n++) {
        int rc = djct_djcdata_read_mem(&r, buf, n, "t.djctd");
        all_err &= rc == DJCT_EINVAL && strstr(djct_last_error(), "byte ") != NULL;
        if (!rc)
            djct_record_clear(&r);
    }
    CHECK(all_err);
    /* every byte flipped (three patterns): an error or a valid result, never a crash */
    int survived = 0;
    unsigned char *c = malloc(len);
    for (size_t i = 0; i < len; i++)
        for (int k = 0; k < 3; k++) {
            memcpy(c, buf, len);
            c[i] ^= (unsigned char)(k == 0 ? 0xff : k == 1 ? 0x01 : 0x80);
            if (djct_djcdata_read_mem(&r, c, len, "f.djctd") == 0)
                djct_record_clear(&r);
            survived++;
        }
    CHECK(survived == (int)len * 3);
    free(c);
    free(buf);
    djct_record_clear(&s);

    /* named failures on the example (offsets from djcdata.md section 4) */
    memcpy(b, EXAMPLE, 176);
    b[0] = 0x00; /* file version 0x40060600 ~ 2.09 */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "byte 0: djcsa header: file version");
    CHECK(strstr(djct_last_error(), "is not 2.0 or 2.1"));
    memcpy(b, EXAMPLE, 176);
    b[8] = 2;
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "byte 8: features[0]: dtype 2");
    memcpy(b, EXAMPLE, 176);
    put64(b + 0x30, 7);
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "size 7 != product of the shape = 6");
    memcpy(b, EXAMPLE, 176);
    put64(b + 0x30, (uint64_t)1 << 62); /* huge size */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "byte 48: array 'ex'");
    memcpy(b, EXAMPLE, 176);
    put64(b + 0x38, 1000000);
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "ndim 1000000 outside 1..8");
    memcpy(b, EXAMPLE, 176);
    put64(b + 0x4c, 4);
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "nrowsplits 4 != shape[0]+1 = 3");
    memcpy(b, EXAMPLE, 176);
    b[0x40] = 0xfe;
    b[0x41] = b[0x42] = b[0x43] = 0xff; /* shape[0] = -2 */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "array 'ex'");
    memcpy(b, EXAMPLE, 176);
    put64(b + 0x61, 32);
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL,
              "byte 97: array 'ex' (features[0]) row-split qblock: total_bytes 32 != nrowsplits*8 = 24");
    memcpy(b, EXAMPLE, 176);
    put64(b + 0x59, 22);
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "row-split qblock chunk 0");
    memcpy(b, EXAMPLE, 176);
    put64(b + 0x59, (uint64_t)-1); /* huge chunk size */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "chunk_size[0] = 18446744073709551615");
    memcpy(b, EXAMPLE, 176);
    b[0x6c] = 0xff; /* row-split content: a match reaching before the stream */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "row-split qblock chunk 0");
    memcpy(b, EXAMPLE, 176);
    b[0x78] = 0x05; /* last row split 5 instead of 3 */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "last row split 5 != element count");
    memcpy(b, EXAMPLE, 176);
    b[0x75] = 0x04; /* row splits [0,4,3] */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "row splits decrease at index 2");
    memcpy(b, EXAMPLE, 176);
    b[176] = 0;
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 177, "x.djcsa"), DJCT_EINVAL, "byte 176: djcsa: 1 trailing bytes");
    memcpy(b, EXAMPLE, 176);
    b[0x95] = 0x4d; /* chunk flags for other QuickLZ settings */
    CHECK_ERR(djct_djcsa_read_mem(&a, b, 176, "x.djcsa"), DJCT_EINVAL, "byte 149: array 'ex' (features[0]) data qblock chunk 0");
    /* the reference's broken empty block: nchunks 1 then total_bytes 0, no chunk size */
    {
        int64_t sh[2] = {0, 4};
        djct_array e = mk("e", DJCT_DTYPE_FLOAT32, 2, sh, NULL, 0, 0);
        CHECK_OK(djct_djcsa_write_mem(&buf, &len, &e, NULL));
        unsigned char *p = buf;
        CHECK(p[len - 9] == 0); /* nchunks 0 */
        p[len - 9] = 1;
        CHECK_ERR(djct_djcsa_read_mem(&a, p, len, "brk.djcsa"), DJCT_EINVAL, "broken empty block");
        free(buf);
        djct_array_clear(&e);
    }
    /* a .djctd: shape header disagreeing with the array, and counts too large for the file */
    {
        djct_record q = sample_record(1, 2);
        CHECK_OK(djct_djcdata_write_mem(&buf, &len, &q, NULL));
        unsigned char *p = buf;
        p[4 + 8 + 8] ^= 1; /* first feature shape[0] in the header */
        CHECK_ERR(djct_djcdata_read_mem(&r, p, len, "h.djctd"), DJCT_EINVAL, "shape differs from the record's shape header");
        p[4 + 8 + 8] ^= 1;
        put64(p + 4, (uint64_t)1 << 60);
        CHECK_ERR(djct_djcdata_read_mem(&r, p, len, "h.djctd"), DJCT_EINVAL, "byte 4: record 0 features shape header");
        free(buf);
        djct_record_clear(&q);
    }
    CHECK_ERR(djct_djcdata_read_mem(&r, "", 0, "empty.djctd"), DJCT_EINVAL, "file is empty");
    CHECK_ERR(djct_djcdata_read(&r, "/nonexistent/x.djctd"), DJCT_EIO, "cannot open");
    /* writer refusals */
    {
        int64_t sh[2] = {2, 2};
        djct_array w = mk("w", DJCT_DTYPE_FLOAT32, 2, sh, NULL, 0, 0);
        w.dtype = DJCT_DTYPE_FLOAT64;
        free(w.values);
        w.values = calloc(4, 8);
        CHECK_ERR(djct_djcsa_write_mem(&buf, &len, &w, NULL), DJCT_EINVAL, "float32 or int32 only");
        w.dtype = DJCT_DTYPE_FLOAT32;
        w.n_values = 5;
        CHECK_ERR(djct_djcsa_write_mem(&buf, &len, &w, NULL), DJCT_EINVAL, "shape gives 4 values");
        djct_array_clear(&w);
        djct_djcdata_write_options o = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
        o.version = 99;
        djct_record q;
        memset(&q, 0, sizeof(q));
        CHECK_ERR(djct_djcdata_write_mem(&buf, &len, &q, &o), DJCT_EINVAL, "djct_djcdata_write_options version 99");
    }
}

/* ---- .djcdc ------------------------------------------------------------------------------------- */

static void test_djcdc(void)
{
    static const char ex[] = "(lp0\nVpart0.djctd\np1\naVpart1.djctd\np2\na.(lp0\nVpart0.root\np1\naVpart1.root\np2\n"
                             "a.cdjcdata.TrainData\nTrainData\np0\n.(dp0\n.I100\n.I00\n.(dp0\n.";
    CHECK(sizeof(ex) - 1 == 134);
    char path[512], **paths = NULL;
    size_t n = 0;
    int64_t bs = 0;
    int sq = -1;
    snprintf(path, sizeof(path), "%s/dc.djcdc", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite(ex, 1, 134, f);
    fclose(f);
    CHECK_OK(djct_djcdc_read(&paths, &n, &bs, &sq, path));
    CHECK(n == 2 && bs == 100 && sq == 0);
    char want[600];
    snprintf(want, sizeof(want), "%s/part1.djctd", tmpdir);
    CHECK(n == 2 && !strcmp(paths[1], want));
    djct_djcdc_free(paths, n);
    /* squared flag, an absolute path, a S-string, a memo GET, and user objects in pickles 4 and 7 */
    static const char ex2[] = "(lp0\nV/abs/a.djctd\np1\naS'b\\'s.djctd'\np2\nag1\na.(lp0\n.cmy.mod\nMyData\np0\n."
                              "(dp0\nVw\np1\nccopy_reg\n_reconstructor\np2\n(cmy.mod\nW\np3\nc__builtin__\nobject\np4\nNtp5\nRp6\n(dp7\nVk\np8\nF1.5\nsbs."
                              "I7\n.I01\n.(dp0\nVopt\np1\n\x80\x03weird\n.";
    CHECK_OK(djct_djcdc_read_mem(&paths, &n, &bs, &sq, ex2, sizeof(ex2) - 1, "/data", "ex2.djcdc"));
    CHECK(n == 3 && bs == 7 && sq == 1);
    if (n == 3)
        CHECK(!strcmp(paths[0], "/abs/a.djctd") && !strcmp(paths[1], "/data/b's.djctd") &&
              !strcmp(paths[2], "/abs/a.djctd"));
    djct_djcdc_free(paths, n);
    /* old files: only pickles 1-2, defaults */
    size_t p1end = (size_t)(strstr(ex, "a.(") - ex) + 2, p2end = (size_t)(strstr(ex + p1end, "a.c") - ex) + 2;
    CHECK_OK(djct_djcdc_read_mem(&paths, &n, &bs, &sq, ex, p2end, NULL, "old"));
    CHECK(n == 2 && bs == 1 && sq == 0 && !strcmp(paths[0], "part0.djctd"));
    djct_djcdc_free(paths, n);
    /* malformed: truncation anywhere inside is an error with a byte offset */
    int all = 1;
    for (size_t k = 1; k < 134; k++) {
        if (k == p1end || k == p2end) /* ends of pickles 1 and 2: valid older files */
            continue;
        int rc = djct_djcdc_read_mem(&paths, &n, &bs, &sq, ex, k, NULL, "t.djcdc");
        if (rc == 0) {
            djct_djcdc_free(paths, n);
            fprintf(stderr, "  djcdc truncated at %zu accepted\n", k);
        }
        all &= rc == DJCT_EINVAL && strstr(djct_last_error(), "byte ") != NULL;
    }
    CHECK(all);
    CHECK_ERR(djct_djcdc_read_mem(&paths, &n, &bs, &sq, "I5\n.", 4, NULL, "i.djcdc"), DJCT_EINVAL, "not a list");
    CHECK_ERR(djct_djcdc_read_mem(&paths, &n, &bs, &sq, "(lp0\nI5\na.", 10, NULL, "i.djcdc"), DJCT_EINVAL,
              "item 0 is not a non-empty file name");
    static const char bad5[] = "(l.(l.cx\ny\n.(d.Vx\n.I00\n.(d.";
    CHECK_ERR(djct_djcdc_read_mem(&paths, &n, &bs, &sq, bad5, sizeof(bad5) - 1, NULL, "b5.djcdc"), DJCT_EINVAL,
              "pickle 5 (batch size) is not a non-negative integer");
    CHECK_ERR(djct_djcdc_read(&paths, &n, &bs, &sq, "/nonexistent.djcdc"), DJCT_EIO, "cannot open");
}

int main(void)
{
    fixdir = getenv("DJCT_FIXTURES");
    if (!fixdir)
        fixdir = "../shared/fixtures/djcdata-upstream";
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/djct_test_djcdata.%ld", (long)getpid());
    mkdir(tmpdir, 0700);
    test_fixtures();
    test_example();
    test_roundtrip();
    test_multirecord();
    test_bad_input();
    test_parts();
    test_djcdc();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return harness_report();
}
