/* h5 module, writing in pieces (djct_h5_writer): records appended one by one read back as the
 * one record djct_h5_write writes (values and continued row splits identical, names and feature
 * names kept), plain and gzip, ragged and regular, through djct_h5_read and the dataset (the
 * mapped read path), a file with no events, and mismatched appends refused naming the array. */
#include "harness.h"
#include "data_fixtures.h"

#include <unistd.h>


static void add_feature_names(djct_record *r)
{
    djct_array *p = &r->features[0];
    p->feature_names = calloc(2, sizeof(char *));
    p->feature_names[0] = strdup("x");
    p->feature_names[1] = strdup("minus_id");
    p->n_feature_names = 2;
}

/* append `pieces` records (events counts[], sizes per piece in `sizes`) and compare with the
 * whole record written at once */
static void round_trip(const char *name, int ragged, int gzip, const int64_t *counts, const int *sizes, int pieces)
{
    djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
    o.gzip_level = gzip;
    o.chunk_bytes = 64; /* several chunks per piece, and pieces that end inside a chunk */
    djct_h5_writer *w = NULL;
    int64_t total = 0, ok = 1;
    for (int p = 0; p < pieces; p++) {
        djct_record r;
        fx_record(&r, counts + total, sizes[p], total, ragged);
        add_feature_names(&r);
        if (p == 0 && djct_h5_writer_create(&w, fx_path(name), &r, &o)) {
            fprintf(stderr, "  create: %s\n", djct_last_error());
            ok = 0;
        }
        if (w && djct_h5_writer_append(w, &r)) {
            fprintf(stderr, "  append %d: %s\n", p, djct_last_error());
            ok = 0;
        }
        total += sizes[p];
        djct_record_clear(&r);
    }
    CHECK(ok && djct_h5_writer_events(w) == total);
    CHECK_OK(djct_h5_writer_close(w));
    djct_record whole, back;
    fx_record(&whole, counts, total, 0, ragged);
    add_feature_names(&whole);
    memset(&back, 0, sizeof(back));
    CHECK_OK(djct_h5_read(&back, fx_path(name)));
    CHECK(fx_records_equal(&whole, &back));
    djct_record_clear(&back);
    djct_record_clear(&whole);

    /* the dataset reads it (mapped when uncompressed) with every event's values in place */
    djct_dataset_options d = DJCT_DATASET_OPTIONS_INIT;
    d.batch_elements = ragged ? 10 : 0;
    d.batch_events = 3;
    d.shuffle = DJCT_SHUFFLE_SHARDS;
    djct_dataset *ds = NULL;
    CHECK_OK(djct_dataset_open(&ds, fx_path(name), &d));
    int good = ds != NULL;
    int64_t seen = 0;
    djct_batch *b;
    while (ds && djct_dataset_next(ds, &b) == 0 && b) {
        good &= fx_check_batch(b, ragged);
        seen += b->n_events;
        djct_batch_release(ds, b);
    }
    CHECK(good && seen == total);
    djct_dataset_free(ds);
}

int main(void)
{
    snprintf(fx_dir, sizeof(fx_dir), "/tmp/djct-test-h5w-XXXXXX");
    if (!mkdtemp(fx_dir)) {
        perror("mkdtemp");
        return 1;
    }
    int64_t counts[40];
    for (int i = 0; i < 40; i++)
        counts[i] = (7 * i) % 5; /* includes empty events */
    int sizes[] = {1, 6, 0, 13, 20};
    round_trip("ragged.h5", 1, 0, counts, sizes, 5);
    round_trip("ragged-gzip.h5", 1, 4, counts, sizes, 5);
    round_trip("regular.h5", 0, 0, counts, sizes, 5);
    round_trip("one.h5", 1, 0, counts, sizes + 3, 1);

    /* no events at all: a valid, empty file */
    djct_record r;
    fx_record(&r, counts, 3, 0, 1);
    djct_h5_writer *w = NULL;
    CHECK_OK(djct_h5_writer_create(&w, fx_path("empty.h5"), &r, NULL));
    CHECK_OK(djct_h5_writer_close(w));
    djct_file_meta m;
    memset(&m, 0, sizeof(m));
    CHECK_OK(djct_h5_read_meta(&m, fx_path("empty.h5")));
    CHECK(m.n_events == 0 && m.layout.n_features == 1 && m.layout.n_truths == 1);
    djct_file_meta_clear(&m);

    /* appends that do not fit the layout are refused, naming the array */
    w = NULL;
    CHECK_OK(djct_h5_writer_create(&w, fx_path("bad.h5"), &r, NULL));
    djct_record reg;
    fx_record(&reg, counts, 3, 0, 0);
    CHECK_ERR(djct_h5_writer_append(w, &reg), DJCT_EINVAL, "/features/000");
    r.truths[0].dtype = DJCT_DTYPE_FLOAT32;
    CHECK_ERR(djct_h5_writer_append(w, &r), DJCT_EINVAL, "/truths/000");
    r.truths[0].dtype = DJCT_DTYPE_INT32;
    size_t nt = r.n_truths;
    r.n_truths = 0;
    CHECK_ERR(djct_h5_writer_append(w, &r), DJCT_EINVAL, "0 truths arrays, the file 1");
    r.n_truths = nt;
    CHECK_OK(djct_h5_writer_append(w, &r));
    CHECK_OK(djct_h5_writer_close(w));
    /* int64 values are not part of the layout */
    r.truths[0].dtype = DJCT_DTYPE_INT64;
    w = NULL;
    CHECK_ERR(djct_h5_writer_create(&w, fx_path("i64.h5"), &r, NULL), DJCT_EINVAL, "float32 or int32");
    CHECK(w == NULL && access(fx_path("i64.h5"), F_OK) != 0);
    r.truths[0].dtype = DJCT_DTYPE_INT32;
    CHECK_ERR(djct_h5_writer_create(&w, "/nonexistent-dir/x.h5", &r, NULL), DJCT_EIO, "cannot create the file");
    djct_record_clear(&reg);
    djct_record_clear(&r);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx_dir);
    return harness_report();
}
