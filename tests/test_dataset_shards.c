/* dataset module, DJCT_SHUFFLE_SHARDS (the prediction plan), one process simulating every rank:
 * each rank gets one contiguous range of the events in input order, the ranges balanced by
 * elements and tiling all events (none dropped: oversized and empty events included), batches in
 * order within the cap and the same batches whatever the rank count, equal step counts with empty
 * bins at the end, batch contents match their source events over several files (.h5 and .djctd),
 * and count mode for regular data. */
#include "harness.h"
#include "data_fixtures.h"

#include <unistd.h>

/* the first event of every batch seen, by the rank count of the run */
static unsigned char starts[9][2000];

/* Open `spec` as rank r of W with SHARDS and check everything the mode promises against the
 * per-event counts cnt[0..n). *range_el receives the rank's elements. Returns 1 when all held. */
static int check_rank(const char *spec, int W, int r, int64_t L, int ragged, const int64_t *cnt, int64_t n,
                      int64_t *range_first, int64_t *range_end, int64_t *range_el)
{
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = ragged ? L : 0;
    o.batch_events = ragged ? 32 : L;
    o.shuffle = DJCT_SHUFFLE_SHARDS;
    o.strict = 1; /* ignored by SHARDS: nothing may be dropped */
    o.rank = r;
    o.world_size = W;
    o.prefetch_depth = r % 2 ? 2 : 0;
    djct_dataset *ds = NULL;
    if (djct_dataset_open(&ds, spec, &o)) {
        fprintf(stderr, "  open rank %d/%d: %s\n", r, W, djct_last_error());
        return 0;
    }
    int ok = 1, seen_empty = 0;
    int64_t next_id = -1, steps = djct_dataset_steps(ds), got_steps = 0;
    *range_first = -1;
    *range_el = 0;
    djct_batch *b;
    while (ok && djct_dataset_next(ds, &b) == 0 && b) {
        got_steps++;
        if (b->n_events == 0) {
            seen_empty = 1;
        } else {
            if (seen_empty) /* empty bins only at the end */
                ok = 0;
            int64_t sum = 0;
            if (W < 9 && b->event_ids[0] < 2000)
                starts[W][b->event_ids[0]] = 1;
            for (int64_t i = 0; i < b->n_events; i++) {
                int64_t id = b->event_ids[i];
                if (next_id >= 0 && id != next_id)
                    ok = 0; /* contiguous, in order */
                if (*range_first < 0)
                    *range_first = id;
                next_id = id + 1;
                sum += ragged ? cnt[id] : 1;
            }
            if (b->n_events > 1 && sum > L) /* within the cap unless alone */
                ok = 0;
            if (!fx_check_batch(b, ragged))
                ok = 0;
            *range_el += ragged ? sum : b->n_events;
        }
        djct_batch_release(ds, b);
    }
    if (got_steps != steps)
        ok = 0;
    *range_end = next_id < 0 ? *range_first : next_id;
    djct_plan_stats st;
    if (djct_dataset_plan_stats(ds, &st) || st.dropped_events != 0 || st.events != n)
        ok = 0;
    djct_dataset_free(ds);
    return ok;
}

/* all ranks of a W-rank run tile [0, n) in rank order, each within `slack` elements of total / W */
static void check_world(const char *what, const char *spec, int W, int64_t L, int ragged, const int64_t *cnt,
                        int64_t n, int64_t slack)
{
    int64_t total = 0, end = 0;
    for (int64_t i = 0; i < n; i++)
        total += ragged ? cnt[i] : 1;
    int ok = 1, tiled = 1, balanced = 1;
    for (int r = 0; r < W; r++) {
        int64_t f, e, el;
        if (!check_rank(spec, W, r, L, ragged, cnt, n, &f, &e, &el)) {
            ok = 0;
            fprintf(stderr, "  %s: rank %d/%d broke a promise\n", what, r, W);
        }
        if (f >= 0 && f != end)
            tiled = 0;
        if (f >= 0)
            end = e;
        int64_t want = total / W;
        if (el > want + slack || el + slack < want)
            balanced = 0;
    }
    if (end != n)
        tiled = 0;
    CHECK(ok);
    CHECK(tiled);
    CHECK(balanced);
    if (W > 1 && W < 9 && n <= 2000) /* the batches of one rank, cut the same way */
        CHECK(!memcmp(starts[W], starts[1], (size_t)n));
}

int main(void)
{
    snprintf(fx_dir, sizeof(fx_dir), "/tmp/djct-test-shards-XXXXXX");
    if (!mkdtemp(fx_dir)) {
        perror("mkdtemp");
        return 1;
    }
    /* three files: heavy-tailed counts, one oversized event (500 > L = 300) and empty events */
    enum { NA = 700, NB = 5, NC = 450 };
    int64_t cnt[NA + NB + NC];
    fx_lognormal_counts(cnt, NA + NB + NC, 20, 7);
    cnt[10] = 500;
    cnt[NA] = 0;
    cnt[NA + 3] = 0;
    cnt[NA + NB + 1] = 0;
    CHECK_OK(fx_write(fx_path("a.h5"), cnt, NA, 0, 1));
    CHECK_OK(fx_write(fx_path("b.djctd"), cnt + NA, NB, NA, 1));
    CHECK_OK(fx_write(fx_path("c.h5"), cnt + NA + NB, NC, NA + NB, 1));
    char spec[1700];
    snprintf(spec, sizeof(spec), "%s,%s,%s", fx_path("a.h5"), fx_path("b.djctd"), fx_path("c.h5"));
    int64_t n = NA + NB + NC;
    /* the largest event bounds how far a cut can miss the ideal */
    check_world("1 rank", spec, 1, 300, 1, cnt, n, 0);
    check_world("2 ranks", spec, 2, 300, 1, cnt, n, 500);
    check_world("3 ranks", spec, 3, 300, 1, cnt, n, 500);
    check_world("4 ranks", spec, 4, 300, 1, cnt, n, 500);
    CHECK_OK(fx_write(fx_path("small.djctd"), cnt + NA, NB, 0, 1));
    memset(starts, 0, sizeof(starts));
    check_world("1 rank, small", fx_path("small.djctd"), 1, 300, 1, cnt + NA, NB, 500);
    check_world("more ranks than events", fx_path("small.djctd"), 8, 300, 1, cnt + NA, NB, 500);

    /* regular data: batches count events, ranges balanced by events */
    int64_t ones[37];
    for (int i = 0; i < 37; i++)
        ones[i] = 1;
    CHECK_OK(fx_write(fx_path("r.h5"), ones, 37, 0, 0));
    memset(starts, 0, sizeof(starts));
    check_world("regular, 1 rank", fx_path("r.h5"), 1, 5, 0, ones, 37, 0);
    check_world("regular, 3 ranks", fx_path("r.h5"), 3, 5, 0, ones, 37, 5);

    /* the ranges of 2 ranks with equal batches are exact halves */
    int64_t eq[10] = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4};
    CHECK_OK(fx_write(fx_path("eq.h5"), eq, 10, 0, 1));
    int64_t f, e, el;
    CHECK(check_rank(fx_path("eq.h5"), 2, 1, 4, 1, eq, 10, &f, &e, &el) && f == 5 && e == 10 && el == 20);

    /* SHARDS is accepted by djct_shuffle's range check; one past it is refused */
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 8;
    o.shuffle = DJCT_SHUFFLE_SHARDS + 1;
    djct_dataset *ds = NULL;
    CHECK_ERR(djct_dataset_open(&ds, fx_path("eq.h5"), &o), DJCT_EINVAL, "not a djct_shuffle");

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx_dir);
    return harness_report();
}
