/* dataset module, one process: djcdata's batching examples (section 11), count-mode batches,
 * file lists (directory, glob, list file, comma list, mixed .djctd and HDF5), batch contents vs
 * source events, determinism per seed and epoch, seek, prefetch and its wait time, errors from
 * the prefetch thread, decode threads (the same batches with any number, a broken block's error,
 * seeks while they are busy), and bad input with message checks. */
#include "harness.h"
#include "data_fixtures.h"
#include "djcdata_int.h" /* djct_djcdata_chunk_limit: files with blocks of several chunks */

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}


/* batches of one unshuffled single-file dataset as lists of event ids; returns steps */
static int64_t plan_of(const char *path, int64_t L, int sq, int strict, int64_t out[][8], int64_t *nper,
                       int64_t *dropped)
{
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = L;
    o.squared_limit = sq;
    o.strict = strict;
    o.shuffle = DJCT_SHUFFLE_NONE;
    o.prefetch_depth = 0;
    djct_dataset *ds = NULL;
    CHECK_OK(djct_dataset_open(&ds, path, &o));
    if (!ds)
        return -1;
    int64_t steps = djct_dataset_steps(ds);
    harness_rows plan = HARNESS_ROWS_INIT, batches = HARNESS_ROWS_INIT;
    for (int64_t s = 0; s < steps && s < 16; s++) {
        const int64_t *ev = NULL;
        size_t n = 0;
        ROW_OK(plan, djct_dataset_plan_events(ds, s, 0, &ev, &n), "step %lld", (long long)s);
        nper[s] = (int64_t)n;
        for (size_t i = 0; i < n && i < 8; i++)
            out[s][i] = ev[i];
    }
    djct_plan_stats st;
    ROW_OK(plan, djct_dataset_plan_stats(ds, &st), "stats");
    CHECK_ROWS(plan);
    *dropped = st.dropped_events;
    /* the batches themselves agree with the plan and the sources */
    djct_batch *b;
    int64_t got = 0;
    while (djct_dataset_next(ds, &b) == 0 && b) {
        ROW(batches, fx_check_batch(b, 1) && b->n_events == nper[b->step], "step %lld: %lld events, plan %lld",
            (long long)b->step, (long long)b->n_events, (long long)nper[b->step]);
        got++;
        djct_batch_release(ds, b);
    }
    ROW(batches, got == steps, "%lld batches, %lld steps", (long long)got, (long long)steps);
    CHECK_ROWS(batches);
    djct_dataset_free(ds);
    return steps;
}

static void test_djcdata_examples(void)
{
    int64_t c1[7] = {3, 4, 2, 6, 1, 9, 2};
    CHECK_OK(fx_write(fx_path("ex1.h5"), c1, 7, 0, 1));
    int64_t b[16][8], n[16], dropped;
    /* L = 7 strict: [3,4] [2] [6,1] [2]; the [9] is dropped */
    CHECK(plan_of(fx_path("ex1.h5"), 7, 0, 1, b, n, &dropped) == 4);
    CHECK(n[0] == 2 && b[0][0] == 0 && b[0][1] == 1);
    CHECK(n[1] == 1 && b[1][0] == 2);
    CHECK(n[2] == 2 && b[2][0] == 3 && b[2][1] == 4);
    CHECK(n[3] == 1 && b[3][0] == 6);
    CHECK(dropped == 1);
    /* non-strict: the [9] is served alone */
    CHECK(plan_of(fx_path("ex1.h5"), 7, 0, 0, b, n, &dropped) == 5);
    CHECK(n[3] == 1 && b[3][0] == 5 && n[4] == 1 && b[4][0] == 6 && dropped == 0);
    /* squared, L = 16: every event alone, [6] and [9] yielded (6, 9 <= 16) */
    CHECK(plan_of(fx_path("ex1.h5"), 16, 1, 1, b, n, &dropped) == 7);
    int ok = 1;
    for (int i = 0; i < 7; i++)
        ok &= n[i] == 1 && b[i][0] == i;
    CHECK(ok && dropped == 0);
    /* [0,0,5,0] with L = 5: [0,0,5]; the trailing [0] is dropped */
    int64_t c2[4] = {0, 0, 5, 0};
    CHECK_OK(fx_write(fx_path("ex2.djctd"), c2, 4, 0, 1));
    CHECK(plan_of(fx_path("ex2.djctd"), 5, 0, 1, b, n, &dropped) == 1);
    CHECK(n[0] == 3 && b[0][2] == 2 && dropped == 1);
    /* a dropped event closes the batch before it, as in djcdata: [3,9,2] -> [3] [2] */
    int64_t c3[3] = {3, 9, 2};
    CHECK_OK(fx_write(fx_path("ex3.h5"), c3, 3, 0, 1));
    CHECK(plan_of(fx_path("ex3.h5"), 7, 0, 1, b, n, &dropped) == 2);
    CHECK(n[0] == 1 && n[1] == 1 && b[1][0] == 2 && dropped == 1);
}

static void test_count_mode(void)
{
    int64_t c[7] = {0};
    CHECK_OK(fx_write(fx_path("flat.djctd"), c, 7, 0, 0));
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_events = 3;
    o.shuffle = DJCT_SHUFFLE_NONE;
    djct_dataset *ds;
    CHECK_OK(djct_dataset_open(&ds, fx_path("flat.djctd"), &o));
    CHECK(djct_dataset_steps(ds) == 3 && !djct_dataset_counts_elements(ds));
    djct_batch *b;
    int64_t sizes[3] = {0}, s = 0;
    harness_rows flat = HARNESS_ROWS_INIT;
    while (djct_dataset_next(ds, &b) == 0 && b) {
        ROW(flat, fx_check_batch(b, 0) && !b->record.features[0].row_splits && b->record.features[0].shape[1] == 2,
            "batch %lld", (long long)s);
        if (s < 3)
            sizes[s] = b->n_events;
        s++;
        djct_batch_release(ds, b);
    }
    CHECK_ROWS(flat);
    CHECK(sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 1);
    djct_dataset_free(ds);
    o.drop_last = 1;
    CHECK_OK(djct_dataset_open(&ds, fx_path("flat.djctd"), &o));
    djct_plan_stats st;
    CHECK_OK(djct_dataset_plan_stats(ds, &st));
    CHECK(djct_dataset_steps(ds) == 2 && st.dropped_events == 1);
    djct_dataset_free(ds);
}

/* 6 files, mixed formats, 40 events each with counts 1..; ids continue across files */
static int64_t make_mixed(const char *sub, int n_files, int64_t per)
{
    char d[512];
    snprintf(d, sizeof(d), "%s/%s", fx_dir, sub);
    mkdir(d, 0755);
    int64_t c[4096];
    harness_rows files = HARNESS_ROWS_INIT;
    for (int f = 0; f < n_files; f++) {
        for (int64_t e = 0; e < per; e++)
            c[e] = (f * per + e) * 7 % 23;
        char p[600];
        snprintf(p, sizeof(p), "%s/part%02d.%s", d, f, f % 2 ? "h5" : "djctd");
        ROW_OK(files, fx_write(p, c, per, f * per, 1), "%s", p);
    }
    CHECK_ROWS(files);
    return n_files * per;
}

/* all batches of one epoch; checks contents; returns events seen, fills a hash of the order */
static int64_t run_epoch(djct_dataset *ds, uint64_t *order_hash, int *seen, int *bad)
{
    int64_t events, batches;
    CHECK_OK(fx_epoch(ds, 0, seen, bad, order_hash, &events, &batches));
    return events;
}

static void test_lists_and_contents(void)
{
    int64_t N = make_mixed("mixed", 6, 40);
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 60;
    o.seed = 42;
    o.shuffle = DJCT_SHUFFLE_GLOBAL;
    djct_dataset *ds = NULL;
    /* directory */
    CHECK_OK(djct_dataset_open(&ds, fx_path("mixed"), &o));
    CHECK(djct_dataset_n_files(ds) == 6 && djct_dataset_n_events(ds) == N);
    CHECK(djct_dataset_file(ds, 1)->format == DJCT_FORMAT_H5 && djct_dataset_file(ds, 0)->format == DJCT_FORMAT_DJCTD);
    int *seen = calloc((size_t)N, sizeof(int));
    int bad = 0;
    uint64_t h1, h2, h3;
    djct_plan_stats st;
    CHECK_OK(djct_dataset_plan_stats(ds, &st));
    int64_t got = run_epoch(ds, &h1, seen, &bad);
    CHECK(bad == 0);
    int once = 1, zero_dropped = 0;
    for (int64_t g = 0; g < N; g++) {
        if (seen[g] == 0)
            zero_dropped++;
        else if (seen[g] != 1)
            once = 0;
    }
    CHECK(once && got + st.dropped_events == N && zero_dropped == st.dropped_events);
    /* counts (g*7)%23 <= 22 < 60: nothing is dropped for size; only all-zero batches could be */
    CHECK(st.dropped_events == 0);
    /* events named for messages: files and event numbers within them, runs as ranges */
    const int64_t ids[] = {0, 1, 2, 5, 40, 41, 79};
    char names[2048], want[2048], tiny[24];
    CHECK_OK(djct_dataset_describe_events(ds, ids, 7, names, sizeof(names)));
    snprintf(want, sizeof(want), "'%s' events 0-2, 5; '%s' events 0-1, 39", fx_path("mixed/part00.djctd"), fx_path("mixed/part01.h5"));
    CHECK(strcmp(names, want) == 0);
    CHECK_OK(djct_dataset_describe_events(ds, ids + 6, 1, names, sizeof(names)));
    snprintf(want, sizeof(want), "'%s' event 39", fx_path("mixed/part01.h5"));
    CHECK(strcmp(names, want) == 0);
    CHECK_OK(djct_dataset_describe_events(ds, ids, 7, tiny, sizeof(tiny))); /* cut, never overrun */
    CHECK(strcmp(tiny, "...") == 0);
    const int64_t outside = N;
    CHECK_ERR(djct_dataset_describe_events(ds, &outside, 1, names, sizeof(names)), DJCT_EINVAL, "outside");
    djct_dataset_free(ds);

    /* glob, list file and comma list give the same files, so the same plan */
    CHECK_OK(djct_dataset_open(&ds, fx_path("mixed/part*"), &o));
    CHECK(djct_dataset_n_files(ds) == 6);
    run_epoch(ds, &h2, NULL, &bad);
    CHECK(h2 == h1);
    djct_dataset_free(ds);
    FILE *fp = fopen(fx_path("list.txt"), "w");
    fprintf(fp, "# parts\nmixed/part00.djctd\n  mixed/part01.h5\n\n%s\nmixed/part03.h5\nmixed/part04.djctd\n"
                "mixed/part05.h5\n", fx_path("mixed/part02.djctd"));
    fclose(fp);
    CHECK_OK(djct_dataset_open(&ds, fx_path("list.txt"), &o));
    CHECK(djct_dataset_n_files(ds) == 6);
    run_epoch(ds, &h3, NULL, &bad);
    CHECK(h3 == h1);
    djct_dataset_free(ds);
    char spec[2048];
    snprintf(spec, sizeof(spec), "%s,%s", fx_path("mixed/part0[0-2]*"), fx_path("mixed/part0[3-5]*"));
    CHECK_OK(djct_dataset_open(&ds, spec, &o));
    CHECK(djct_dataset_n_files(ds) == 6);
    djct_plan_stats st2;
    CHECK_OK(djct_dataset_plan_stats(ds, &st2));
    CHECK(st2.hash == st.hash);
    /* another epoch: another order, same events; back to epoch 0: the first order again */
    CHECK_OK(djct_dataset_begin_epoch(ds, 1));
    memset(seen, 0, (size_t)N * sizeof(int));
    uint64_t h4;
    got = run_epoch(ds, &h4, seen, &bad);
    CHECK(h4 != h1 && got == N);
    CHECK_OK(djct_dataset_begin_epoch(ds, 0));
    run_epoch(ds, &h4, NULL, &bad);
    CHECK(h4 == h1 && bad == 0);
    djct_dataset_free(ds);
    /* another seed: another order */
    o.seed = 43;
    CHECK_OK(djct_dataset_open(&ds, fx_path("mixed"), &o));
    run_epoch(ds, &h4, NULL, &bad);
    CHECK(h4 != h1);
    djct_dataset_free(ds);
    free(seen);
}

/* a tiny cache budget: HDF5 files are read event by event with hyperslab gathers (the path for
 * files too large to keep), .djctd files are decoded again when evicted (by the decode threads
 * too); same batches */
static void test_small_cache(void)
{
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 60;
    o.seed = 42;
    o.shuffle = DJCT_SHUFFLE_GLOBAL;
    djct_dataset *a = NULL, *b = NULL;
    CHECK_OK(djct_dataset_open(&a, fx_path("mixed"), &o));
    o.cache_bytes = 1;
    CHECK_OK(djct_dataset_open(&b, fx_path("mixed"), &o));
    int bad = 0;
    uint64_t ha, hb, hc = 0;
    int64_t na = run_epoch(a, &ha, NULL, &bad), nb = run_epoch(b, &hb, NULL, &bad), nc = -1;
    CHECK(na == nb && ha == hb && bad == 0);
    djct_dataset_free(a);
    djct_dataset_free(b);
    /* and with decode threads: .djctd files from the pool, HDF5 files as before */
    o.decode_threads = 2;
    CHECK_OK(djct_dataset_open(&b, fx_path("mixed"), &o));
    if (b)
        nc = run_epoch(b, &hc, NULL, &bad);
    CHECK(nc == na && hc == ha && bad == 0);
    djct_dataset_free(b);
}

/* mapped HDF5 data is prefaulted when the file is first opened (all of it by default, none with
 * prefault_bytes 0, at most the budget otherwise); the batches are the same either way */
static void test_prefault(void)
{
    enum { N = 400000 };
    int64_t *counts = malloc(sizeof(int64_t) * N);
    for (int64_t e = 0; e < N; e++)
        counts[e] = 1 + e % 5; /* 3 points on average: 9.6 MB of points, 1.6 MB of labels */
    djct_record r;
    fx_record(&r, counts, N, 0, 1);
    CHECK_OK(djct_h5_write(fx_path("mapped.h5"), &r, NULL)); /* default chunks: read through a mapping */
    djct_record_clear(&r);
    free(counts);
    long data_kb = (long)((N * 3 * 2 * 4 + N * 4) / 1024);
    size_t budgets[3] = {DJCT_DATASET_PREFAULT_DEFAULT, 0, (size_t)1 << 20};
    uint64_t first_hash[3] = {0, 0, 0};
    long kbs[3] = {-1, -1, -1};
    harness_rows calls = HARNESS_ROWS_INIT;
    for (int i = 0; i < 3; i++) {
        djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
        o.batch_elements = 8; /* a few events: the kernel maps 64 KiB around each fault */
        o.shuffle = DJCT_SHUFFLE_GLOBAL;
        o.prefetch_depth = 0;
        o.prefault_bytes = budgets[i];
        djct_dataset *ds = NULL;
        ROW_OK(calls, djct_dataset_open(&ds, fx_path("mapped.h5"), &o), "budget %zu", budgets[i]);
        if (!ds)
            break;
        djct_batch *b = NULL;
        ROW_OK(calls, djct_dataset_next(ds, &b), "budget %zu", budgets[i]);
        ROW(calls, b && fx_check_batch(b, 1), "budget %zu: the first batch", budgets[i]);
        uint64_t h = 1469598103934665603ull;
        for (int64_t k = 0; b && k < b->n_events; k++)
            h = (h ^ (uint64_t)b->event_ids[k]) * 1099511628211ull;
        first_hash[i] = h;
        long kb = kbs[i] = harness_mapped_kb(fx_path("mapped.h5"));
        printf("prefault budget %zu: %ld kB of %ld kB mapped after one batch\n", budgets[i], kb, data_kb);
        djct_batch_release(ds, b);
        djct_dataset_free(ds);
    }
    CHECK_ROWS(calls);
    CHECK(kbs[0] >= data_kb);                                         /* all of it by default */
    CHECK(kbs[1] >= 0 && kbs[1] < data_kb / 2);                       /* none with budget 0 */
    CHECK(kbs[2] >= 1024 / 2 && kbs[2] < 1024 + data_kb / 4);         /* about the 1 MiB budget */
    CHECK(first_hash[0] == first_hash[1] && first_hash[1] == first_hash[2]);
}

static void test_seek_and_prefetch(void)
{
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 50;
    o.seed = 7;
    o.prefetch_depth = 3;
    djct_dataset *a = NULL, *b = NULL;
    CHECK_OK(djct_dataset_open(&a, fx_path("mixed"), &o));
    CHECK_OK(djct_dataset_begin_epoch(a, 2));
    int64_t steps = djct_dataset_steps(a);
    CHECK(steps > 8);
    djct_batch *x = NULL, *y = NULL;
    /* reference: the batch at step 5 of epoch 2 */
    harness_rows nexts = HARNESS_ROWS_INIT;
    for (int s = 0; s <= 5; s++) {
        if (x)
            djct_batch_release(a, x);
        ROW_OK(nexts, djct_dataset_next(a, &x), "step %d", s);
    }
    CHECK_ROWS(nexts);
    CHECK(x && x->step == 5 && x->epoch == 2 && djct_dataset_position(a) == 6);
    o.prefetch_depth = 0;
    CHECK_OK(djct_dataset_open(&b, fx_path("mixed"), &o));
    CHECK_OK(djct_dataset_seek(b, 2, 5));
    CHECK_OK(djct_dataset_next(b, &y));
    CHECK(y && x && y->n_events == x->n_events && y->step == 5 &&
          !memcmp(y->event_ids, x->event_ids, sizeof(int64_t) * (size_t)x->n_events) &&
          y->record.features[0].n_values == x->record.features[0].n_values &&
          !memcmp(y->record.features[0].values, x->record.features[0].values, x->record.features[0].n_values * 4) &&
          !memcmp(y->record.features[0].row_splits, x->record.features[0].row_splits, 8 * (size_t)(x->n_events + 1)));
    djct_batch_release(a, x);
    djct_batch_release(b, y);
    CHECK_ERR(djct_dataset_seek(b, 2, steps + 1), DJCT_EINVAL, "outside 0..");
    CHECK_OK(djct_dataset_seek(b, 2, steps));
    CHECK_OK(djct_dataset_next(b, &y));
    CHECK(y == NULL);
    djct_dataset_free(a);

    /* wait time: synchronous reads wait for every batch; with prefetch and a consumer slower
     * than the reader, the waits (after the first) are near zero. Each next() reports its own. */
    double sync_sum = 0, pre_sum = 0, sync_w[4096], pre_w[4096];
    int n_sync = 0, n_pre = 0;
    CHECK_OK(djct_dataset_seek(b, 0, 0));
    harness_rows own = HARNESS_ROWS_INIT;
    while (djct_dataset_next(b, &y) == 0 && y) {
        sync_sum += y->wait_seconds;
        ROW(own, y->wait_seconds == djct_dataset_last_wait_seconds(b), "step %lld", (long long)y->step);
        if (n_sync < 4096)
            sync_w[n_sync] = y->wait_seconds;
        n_sync++;
        djct_batch_release(b, y);
    }
    CHECK_ROWS(own);
    CHECK(djct_dataset_wait_seconds(b) >= sync_sum - 1e-9 && sync_sum > 0);
    djct_dataset_free(b);
    o.prefetch_depth = 4;
    CHECK_OK(djct_dataset_open(&b, fx_path("mixed"), &o));
    double before = djct_dataset_wait_seconds(b);
    while (djct_dataset_next(b, &y) == 0 && y) {
        if (y->step > 0) {
            pre_sum += y->wait_seconds;
            if (n_pre < 4096)
                pre_w[n_pre] = y->wait_seconds;
            n_pre++;
        }
        djct_batch_release(b, y);
        struct timespec ts = {0, 3000000}; /* 3 ms of "training" */
        nanosleep(&ts, NULL);
    }
    CHECK(n_pre + 1 == n_sync);
    CHECK(djct_dataset_wait_seconds(b) >= before);
    printf("wait per batch: synchronous %.1f us, prefetch %.1f us\n", 1e6 * sync_sum / n_sync,
           1e6 * pre_sum / (n_pre ? n_pre : 1));
    /* synchronous reads cost little for batches served from the decoded-file cache and a lot for
     * those that decode a file, so the means are compared; the medians show the typical batch */
    int ns = n_sync < 4096 ? n_sync : 4096, np = n_pre < 4096 ? n_pre : 4096;
    qsort(sync_w, (size_t)ns, sizeof(double), cmp_double);
    qsort(pre_w, (size_t)np, sizeof(double), cmp_double);
    double med_sync = ns ? sync_w[ns / 2] : 0, med_pre = np ? pre_w[np / 2] : 0;
    printf("median wait: synchronous %.1f us, prefetch %.1f us\n", 1e6 * med_sync, 1e6 * med_pre);
    djct_dataset_free(b);
}

/* The prefetch thread reads ahead on its own: with prefetch and no prefault, the mapped file's
 * pages of the next batches are touched while the consumer holds its first batch and calls
 * nothing (seen in this process's page tables; polled, so a loaded machine only makes it slower).
 * The yardstick is the same file read without prefetch: after one batch, and after five. */
static void test_prefetch_reads_ahead(void)
{
    long one = 0, five = 0, ahead = 0;
    harness_rows calls = HARNESS_ROWS_INIT;
    for (int depth = 0; depth <= 4; depth += 4) {
        djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
        o.batch_elements = 40000; /* ~0.5 MB per batch, far above the kernel's fault-around */
        o.shuffle = DJCT_SHUFFLE_NONE;
        o.prefetch_depth = depth;
        o.prefault_bytes = 0;
        djct_dataset *ds = NULL;
        djct_batch *b = NULL;
        ROW_OK(calls, djct_dataset_open(&ds, fx_path("mapped.h5"), &o), "prefetch %d", depth);
        if (!ds)
            break;
        ROW_OK(calls, djct_dataset_next(ds, &b), "prefetch %d: the first batch", depth);
        if (depth == 0) {
            one = harness_mapped_kb(fx_path("mapped.h5"));
            for (int i = 1; i < 5; i++) { /* four more, synchronously */
                if (b)
                    djct_batch_release(ds, b);
                ROW_OK(calls, djct_dataset_next(ds, &b), "prefetch 0: batch %d", i);
            }
            five = harness_mapped_kb(fx_path("mapped.h5"));
        } else {
            ahead = harness_mapped_kb(fx_path("mapped.h5"));
            for (int i = 0; i < 6000 && 2 * ahead < one + five; i++) { /* up to 60 s */
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
                ahead = harness_mapped_kb(fx_path("mapped.h5"));
            }
        }
        if (b)
            djct_batch_release(ds, b);
        djct_dataset_free(ds);
    }
    CHECK_ROWS(calls);
    printf("mapped: %ld kB after one batch, %ld kB after five (no prefetch); %ld kB with one batch held and "
           "4 prefetched\n", one, five, ahead);
    CHECK(five > one && 2 * ahead >= one + five); /* at least half of the next four batches' pages */
}

static void test_thread_error(void)
{
    /* two files; the second is read only from step ~20 on, and is broken after open */
    int64_t c[200];
    for (int i = 0; i < 200; i++)
        c[i] = 5;
    CHECK_OK(fx_write(fx_path("e0.djctd"), c, 200, 0, 1));
    CHECK_OK(fx_write(fx_path("e1.djctd"), c, 200, 200, 1));
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 50;
    o.shuffle = DJCT_SHUFFLE_NONE;
    o.prefetch_depth = 1;
    djct_dataset *ds;
    char spec[1100];
    snprintf(spec, sizeof(spec), "%s,%s", fx_path("e0.djctd"), fx_path("e1.djctd"));
    CHECK_OK(djct_dataset_open(&ds, spec, &o));
    FILE *fp = fopen(fx_path("e1.djctd"), "r+b");
    fseek(fp, 0, SEEK_SET);
    fputs("garbage garbage garbage", fp);
    fclose(fp);
    djct_batch *b;
    int rc, n = 0;
    while ((rc = djct_dataset_next(ds, &b)) == 0 && b) {
        n++;
        djct_batch_release(ds, b);
    }
    CHECK(rc < 0 && n == 20);
    CHECK(strstr(djct_last_error(), "e1.djctd") != NULL);
    if (rc >= 0 || !strstr(djct_last_error(), "e1.djctd"))
        fprintf(stderr, "  -> rc %d after %d batches: %s\n", rc, n, djct_last_error());
    djct_dataset_free(ds);
}

/* ---- decode threads ---------------------------------------------------------------------------- */

/* A .djctd of `nrec` records of `per` events each, ids from `first`: the fixture's points (ragged,
 * lognormal counts, or regular) and label, plus a regular feature "extra" [n, 3] = (g, g / 2, -g)
 * and a weight [n] = g / 4; blocks cut into chunks of at most `chunk` bytes, so that most chunks
 * are coded against the earlier ones of their block. */
static int write_records(const char *path, int nrec, int64_t per, int64_t first, int ragged, size_t chunk)
{
    int64_t *c = malloc(sizeof(int64_t) * (size_t)per);
    size_t old = djct_djcdata_chunk_limit;
    djct_djcdata_chunk_limit = chunk;
    djct_djcdata_write_options wo = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
    remove(path);
    wo.append = 1;
    int rc = c ? 0 : DJCT_ENOMEM;
    for (int k = 0; k < nrec && rc == 0; k++) {
        int64_t id0 = first + k * per;
        fx_lognormal_counts(c, per, 12.0, (uint64_t)id0 + 1);
        djct_record r;
        fx_record(&r, c, per, id0, ragged);
        r.features = realloc(r.features, 2 * sizeof(djct_array));
        r.weights = calloc(1, sizeof(djct_array));
        djct_array *x = &r.features[1], *w = &r.weights[0];
        memset(x, 0, sizeof(*x));
        x->name = strdup("extra");
        x->dtype = DJCT_DTYPE_FLOAT32;
        x->ndim = 2;
        x->shape[0] = per;
        x->shape[1] = 3;
        x->n_values = (size_t)per * 3;
        float *xv = malloc(x->n_values * 4);
        w->name = strdup("weight");
        w->dtype = DJCT_DTYPE_FLOAT32;
        w->ndim = 1;
        w->shape[0] = per;
        w->n_values = (size_t)per;
        float *wv = malloc(w->n_values * 4);
        for (int64_t e = 0; e < per; e++) {
            xv[3 * e] = (float)(id0 + e);
            xv[3 * e + 1] = (float)(id0 + e) / 2;
            xv[3 * e + 2] = (float)-(id0 + e);
            wv[e] = (float)(id0 + e) / 4;
        }
        x->values = xv;
        w->values = wv;
        r.n_features = 2;
        r.n_weights = 1;
        rc = djct_djcdata_write(path, &r, &wo);
        djct_record_clear(&r);
    }
    djct_djcdata_chunk_limit = old;
    free(c);
    return rc;
}

/* FNV-1a over everything a batch holds: step, events, every array's values and row splits */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t batch_hash(uint64_t h, const djct_batch *b)
{
    h = fnv(h, &b->step, sizeof(b->step));
    h = fnv(h, &b->n_events, sizeof(b->n_events));
    h = fnv(h, b->event_ids, sizeof(int64_t) * (size_t)b->n_events);
    const djct_array *l[3] = {b->record.features, b->record.truths, b->record.weights};
    size_t n[3] = {b->record.n_features, b->record.truths ? b->record.n_truths : 0, b->record.n_weights};
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n[c]; i++) {
            h = fnv(h, l[c][i].values, l[c][i].n_values * djct_dtype_size(l[c][i].dtype));
            if (l[c][i].row_splits)
                h = fnv(h, l[c][i].row_splits, l[c][i].n_row_splits * sizeof(int64_t));
        }
    return h;
}

/* every batch of `epochs` epochs, hashed; *bad counts batches that disagree with their sources */
static uint64_t epochs_hash(djct_dataset *ds, int epochs, int ragged, int *bad, int64_t *batches)
{
    uint64_t h = 1469598103934665603ull;
    djct_batch *b;
    int rc = 0;
    for (int e = 0; e < epochs && rc == 0; e++) {
        if ((rc = djct_dataset_begin_epoch(ds, e)) < 0)
            break;
        while ((rc = djct_dataset_next(ds, &b)) == 0 && b) {
            const float *x = b->record.features[1].values, *w = b->record.weights[0].values;
            int ok = fx_check_batch(b, ragged);
            for (int64_t i = 0; i < b->n_events && ok; i++)
                ok = x[3 * i] == (float)b->event_ids[i] && w[i] == (float)b->event_ids[i] / 4;
            *bad += !ok;
            (*batches)++;
            h = batch_hash(h, b);
            djct_batch_release(ds, b);
        }
    }
    if (rc < 0)
        (*bad)++;
    return h;
}

/* The same batches, bit for bit, with 0 (decoded whole by the producer), 1, 2 and 4 decode
 * threads: ragged and regular data, several records and four arrays per file, blocks of several
 * chunks, file-wise and global shuffling, a cache that holds everything and one that holds under
 * two files (evictions, lookahead held back by the budget), one rank of one and rank 1 of two. */
static void test_decode_threads(void)
{
    mkdir(fx_path("dt"), 0755);
    harness_rows writes = HARNESS_ROWS_INIT;
    for (int ragged = 0; ragged < 2; ragged++)
        for (int f = 0; f < 5; f++) {
            char p[600];
            snprintf(p, sizeof(p), "%s/%s%d.djctd", fx_path("dt"), ragged ? "r" : "g", f);
            ROW_OK(writes, write_records(p, 3, 60, f * 180, ragged, 1500), "%s", p);
        }
    CHECK_ROWS(writes);
    harness_rows same = HARNESS_ROWS_INIT, calls = HARNESS_ROWS_INIT;
    int bad = 0;
    int64_t batches = 0;
    for (int ragged = 0; ragged < 2; ragged++)
        for (int shuffle = DJCT_SHUFFLE_FILES; shuffle <= DJCT_SHUFFLE_GLOBAL; shuffle++)
            for (int small = 0; small < 2; small++) {
                uint64_t want = 0;
                for (int t = 0; t <= 4; t += t ? t : 1) {
                    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
                    o.batch_elements = ragged ? 150 : 0;
                    o.batch_events = 16;
                    o.seed = 3;
                    o.shuffle = shuffle;
                    o.world_size = 1 + small;
                    o.rank = small;
                    o.cache_bytes = small ? 9000 * (ragged ? 2 : 1) : 0;
                    o.decode_threads = t;
                    djct_dataset *ds = NULL;
                    ROW_OK(calls, djct_dataset_open(&ds, fx_path(ragged ? "dt/r*" : "dt/g*"), &o),
                           "ragged %d shuffle %d small %d threads %d", ragged, shuffle, small, t);
                    if (!ds)
                        continue;
                    uint64_t h = epochs_hash(ds, 2, ragged, &bad, &batches);
                    if (t == 0)
                        want = h;
                    ROW(same, h == want, "ragged %d shuffle %d small cache %d: %d threads differ from 0", ragged,
                        shuffle, small, t);
                    djct_dataset_free(ds);
                }
            }
    CHECK_ROWS(calls);
    CHECK_ROWS(same);
    CHECK(bad == 0 && batches > 100);
    printf("decode threads 0, 1, 2, 4: %lld batches, the same bytes\n", (long long)batches);
}

/* A block broken in the middle of a file (record 1's points, inside a compressed body): with any
 * number of decode threads next() fails at the same step with the serial reader's one-line
 * message naming the file, the byte and the array; nothing hangs, nothing leaks (SAN build). */
static void test_decode_thread_error(void)
{
    CHECK_OK(write_records(fx_path("de0.djctd"), 1, 200, 0, 1, 1500));
    CHECK_OK(write_records(fx_path("de1.djctd"), 3, 60, 200, 1, 1500));
    size_t len = 0;
    FILE *fp = fopen(fx_path("de1.djctd"), "rb");
    unsigned char *img = NULL;
    if (fp) {
        fseek(fp, 0, SEEK_END);
        len = (size_t)ftell(fp);
        fseek(fp, 0, SEEK_SET);
        img = malloc(len);
        if (fread(img, 1, len, fp) != len)
            len = 0;
        fclose(fp);
    }
    /* the first byte past the middle whose flip breaks a chunk body of record 1's points */
    char want[1024] = "";
    size_t at = len / 2;
    for (; img && at < len; at++) {
        djct_record r;
        img[at] ^= 0x40;
        int rc = djct_djcdata_read_mem(&r, img, len, fx_path("de1.djctd"));
        if (rc == 0)
            djct_record_clear(&r);
        else if (strstr(djct_last_error(), "record 1: array 'points' (features[0]) data qblock chunk")) {
            snprintf(want, sizeof(want), "%s", djct_last_error());
            break;
        }
        img[at] ^= 0x40;
    }
    CHECK(want[0] != '\0');
    fp = fopen(fx_path("de1.djctd"), "wb");
    CHECK(fp && img && fwrite(img, 1, len, fp) == len);
    if (fp)
        fclose(fp);
    free(img);
    harness_rows same = HARNESS_ROWS_INIT;
    char spec[1100];
    snprintf(spec, sizeof(spec), "%s,%s", fx_path("de0.djctd"), fx_path("de1.djctd"));
    int n_first = -1; /* the batches before the error, with 0 threads and no prefetch */
    for (int t = 0; t <= 4; t += t ? t : 1)
        for (int depth = 0; depth <= 2; depth += 2) {
            djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
            o.batch_elements = 50;
            o.shuffle = DJCT_SHUFFLE_NONE;
            o.prefetch_depth = depth;
            o.decode_threads = t;
            djct_dataset *ds = NULL;
            int rc = djct_dataset_open(&ds, spec, &o), n = 0;
            djct_batch *b = NULL;
            while (rc == 0 && (rc = djct_dataset_next(ds, &b)) == 0 && b) {
                n++;
                djct_batch_release(ds, b);
            }
            if (n_first < 0)
                n_first = n;
            ROW(same, rc == DJCT_EINVAL && n > 0 && n == n_first && !strcmp(djct_last_error(), want),
                "threads %d prefetch %d: rc %d after %d batches: %s", t, depth, rc, n, djct_last_error());
            /* the error stays; a seek back starts over */
            if (ds && depth) {
                rc = djct_dataset_next(ds, &b);
                ROW(same, rc == DJCT_EINVAL && !strcmp(djct_last_error(), want), "threads %d: again: %s", t,
                    djct_last_error());
            }
            if (ds) {
                b = NULL;
                ROW(same, djct_dataset_seek(ds, 0, 3) == 0 && djct_dataset_next(ds, &b) == 0 && b && b->step == 3,
                    "threads %d prefetch %d: seek after the error", t, depth);
                if (b)
                    djct_batch_release(ds, b);
            }
            djct_dataset_free(ds);
        }
    CHECK_ROWS(same);
    printf("a broken block, any number of decode threads: %s\n", want);
}

/* Seeks and frees while the decode threads are busy (large files, the first ones still being
 * decoded): every batch after a seek is the one of an undisturbed serial dataset; nothing hangs. */
static void test_decode_seek_busy(void)
{
    mkdir(fx_path("busy"), 0755);
    harness_rows writes = HARNESS_ROWS_INIT;
    for (int f = 0; f < 6; f++) {
        char p[600];
        snprintf(p, sizeof(p), "%s/b%d.djctd", fx_path("busy"), f);
        ROW_OK(writes, write_records(p, 2, 4000, f * 8000, 1, (size_t)1 << 20), "%s", p);
    }
    CHECK_ROWS(writes);
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 2000;
    o.seed = 11;
    o.cache_bytes = (size_t)3 << 20; /* about two files: the lookahead is held back and files re-decoded */
    djct_dataset *ref = NULL, *ds = NULL;
    CHECK_OK(djct_dataset_open(&ref, fx_path("busy"), &o));
    o.decode_threads = 2;
    o.prefetch_depth = 3;
    CHECK_OK(djct_dataset_open(&ds, fx_path("busy"), &o));
    djct_dataset_free(ds); /* at once: the threads are parsing the first files */
    ds = NULL;
    CHECK_OK(djct_dataset_open(&ds, fx_path("busy"), &o));
    int64_t seeks[][2] = {{0, 0}, {1, 5}, {0, 40}, {2, 1}, {2, 1}, {1, 70}, {0, 2}};
    harness_rows same = HARNESS_ROWS_INIT;
    for (size_t i = 0; ref && ds && i < sizeof(seeks) / sizeof(seeks[0]); i++) {
        int64_t e = seeks[i][0], s = seeks[i][1];
        djct_batch *a = NULL, *b = NULL;
        ROW(same, djct_dataset_seek(ref, e, s) == 0 && djct_dataset_seek(ds, e, s) == 0, "seek %lld %lld",
            (long long)e, (long long)s);
        for (int k = 0; k < 2; k++) { /* two batches, then seek away with the threads mid-file */
            ROW(same, djct_dataset_next(ref, &a) == 0 && djct_dataset_next(ds, &b) == 0 && a && b &&
                batch_hash(1, a) == batch_hash(1, b), "epoch %lld step %lld + %d", (long long)e, (long long)s, k);
            djct_batch_release(ref, a);
            djct_batch_release(ds, b);
        }
    }
    CHECK_ROWS(same);
    djct_dataset_free(ds);
    djct_dataset_free(ref);
}

static void test_bad_input(void)
{
    djct_dataset *ds = NULL;
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 10;
    CHECK_ERR(djct_dataset_open(&ds, fx_path("nope.h5"), &o), DJCT_EIO, "nope.h5");
    CHECK_ERR(djct_dataset_open(&ds, fx_path("nothing*.h5"), &o), DJCT_EINVAL, "no file matches");
    mkdir(fx_path("empty"), 0755);
    CHECK_ERR(djct_dataset_open(&ds, fx_path("empty"), &o), DJCT_EINVAL, "holds no .djctd, .h5 or .hdf5 file");
    FILE *fp = fopen(fx_path("badlist.txt"), "w");
    fprintf(fp, "mixed/part00.djctd\nmixed/missing.h5\n");
    fclose(fp);
    CHECK_ERR(djct_dataset_open(&ds, fx_path("badlist.txt"), &o), DJCT_EIO, "badlist.txt' line 2");
    /* inconsistent arrays: a regular file next to ragged ones */
    int64_t c[3] = {1, 2, 3};
    CHECK_OK(fx_write(fx_path("flat3.h5"), c, 3, 0, 0));
    char spec[1100];
    snprintf(spec, sizeof(spec), "%s,%s", fx_path("mixed/part00.djctd"), fx_path("flat3.h5"));
    CHECK_ERR(djct_dataset_open(&ds, spec, &o), DJCT_EINVAL, "raggedness differs");
    CHECK_ERR(djct_dataset_open(&ds, spec, &o), DJCT_EINVAL, "flat3.h5");
    /* a hostile HDF5 file in the list */
    fp = fopen(fx_path("junk.h5"), "wb");
    fputs("\x89HDF\r\n\x1a\n and then nothing useful", fp);
    fclose(fp);
    snprintf(spec, sizeof(spec), "%s,%s", fx_path("mixed/part00.djctd"), fx_path("junk.h5"));
    int rc = djct_dataset_open(&ds, spec, &o);
    CHECK(rc == DJCT_EIO || rc == DJCT_EINVAL);
    CHECK(strstr(djct_last_error(), "junk.h5") != NULL);
    /* options */
    o.rank = 2;
    o.world_size = 2;
    CHECK_ERR(djct_dataset_open(&ds, fx_path("mixed"), &o), DJCT_EINVAL, "rank 2 / world_size 2");
    o.rank = 0;
    o.batch_elements = 0;
    o.batch_events = 0;
    CHECK_ERR(djct_dataset_open(&ds, fx_path("mixed"), &o), DJCT_EINVAL, "attempting empty split");
    o.batch_events = 4;
    o.decode_threads = -1;
    CHECK_ERR(djct_dataset_open(&ds, fx_path("mixed"), &o), DJCT_EINVAL, "decode_threads -1 outside 0..1024");
    o.decode_threads = 0;
    o.version = 77;
    CHECK_ERR(djct_dataset_open(&ds, fx_path("mixed"), &o), DJCT_EINVAL, "djct_dataset_options version 77");
    CHECK(ds == NULL);
    djct_dataset_free(NULL);
    djct_batch_release(NULL, NULL);
}

int main(void)
{
    snprintf(fx_dir, sizeof(fx_dir), "/tmp/djct_test_dataset_%d", (int)getpid());
    mkdir(fx_dir, 0755);
    test_djcdata_examples();
    test_count_mode();
    test_lists_and_contents();
    test_small_cache();
    test_prefault();
    test_seek_and_prefetch();
    test_prefetch_reads_ahead();
    test_thread_error();
    test_decode_threads();
    test_decode_thread_error();
    test_decode_seek_busy();
    test_bad_input();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", fx_dir);
    return harness_report();
}
