/* dataset module with real MPI ranks (2 and 4): heavy-tailed point clouds (lognormal points per
 * event, mean 200, sigma 1, as perf_baselines.md section 3) in mixed .djctd/HDF5 files. Every rank
 * gets the same step count and plan hash; the union of all ranks' events is the dataset's events,
 * each exactly once (minus the counted dropped ones); batches match their source events; the same
 * seed gives the same batches, another epoch another order; straggler ratio <= 1.02. */
#define HARNESS_MPI
#include "harness.h"
#include "data_fixtures.h"

#include <sys/stat.h>
#include <unistd.h>

#define NFILES 4
#define PER 1000

static char dir[256];

static uint64_t epoch_digest(djct_dataset *ds, int *seen, int *bad, int64_t *nb)
{
    uint64_t h;
    int64_t events;
    CHECK_OK(fx_epoch(ds, 1, seen, bad, &h, &events, nb));
    return h;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int pid = (int)getpid();
    MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
    snprintf(dir, sizeof(dir), "/tmp/djct_test_dataset_mpi_%d", pid);
    const int64_t N = NFILES * PER;
    if (rank == 0) {
        mkdir(dir, 0755);
        int64_t *c = malloc(sizeof(int64_t) * N);
        fx_lognormal_counts(c, N, 200.0, 12345);
        harness_rows files = HARNESS_ROWS_INIT;
        for (int f = 0; f < NFILES; f++) {
            char p[512];
            snprintf(p, sizeof(p), "%s/part%d.%s", dir, f, f % 2 ? "h5" : "djctd");
            ROW_OK(files, fx_write(p, c + f * PER, PER, f * PER, 1), "%s", p);
        }
        CHECK_ROWS(files);
        free(c);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 6400; /* 32 events of mean 200 points */
    o.seed = 2024;
    o.rank = rank;
    o.world_size = world;
    o.shuffle = DJCT_SHUFFLE_GLOBAL;
    djct_dataset *ds = NULL;
    CHECK_OK(djct_dataset_open(&ds, dir, &o));
    if (!ds)
        return harness_report_mpi();
    CHECK(djct_dataset_n_events(ds) == N);

    /* same step count and the same plan on every rank */
    int64_t steps = djct_dataset_steps(ds), smin, smax;
    MPI_Allreduce(&steps, &smin, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&steps, &smax, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    CHECK(smin == smax && steps > 10);
    djct_plan_stats st;
    CHECK_OK(djct_dataset_plan_stats(ds, &st));
    uint64_t h0 = st.hash;
    MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    CHECK(h0 == st.hash);
    if (rank == 0)
        printf("world %d: %lld events, %lld steps, straggler ratio %.4f, dropped %lld\n", world, (long long)N,
               (long long)steps, st.straggler_ratio, (long long)st.dropped_events);
    CHECK(st.straggler_ratio <= 1.02);
    CHECK(st.steps == steps && st.events + st.dropped_events == N);

    /* every event exactly once over all ranks (the dropped ones: never) */
    int *seen = calloc((size_t)N, sizeof(int)), *all = calloc((size_t)N, sizeof(int));
    int bad = 0;
    int64_t nb = 0, nb_min, nb_max;
    uint64_t d1 = epoch_digest(ds, seen, &bad, &nb);
    CHECK(bad == 0);
    MPI_Allreduce(&nb, &nb_min, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&nb, &nb_max, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    CHECK(nb_min == steps && nb_max == steps);
    MPI_Allreduce(seen, all, (int)N, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int64_t once = 0, twice = 0, never = 0;
    for (int64_t g = 0; g < N; g++) {
        once += all[g] == 1;
        twice += all[g] > 1;
        never += all[g] == 0;
    }
    CHECK(twice == 0 && never == st.dropped_events && once == st.events);

    /* a rank's plan bins are its batches: another rank can see them, and they are disjoint */
    const int64_t *ev;
    size_t n;
    CHECK_OK(djct_dataset_plan_events(ds, 0, (rank + 1) % world, &ev, &n));
    int disjoint = 1;
    for (size_t i = 0; i < n; i++)
        disjoint &= seen[ev[i]] == 0 || world == 1;
    CHECK(disjoint);

    /* same seed: the same batches (a fresh dataset); another epoch: another order */
    djct_dataset *again = NULL;
    CHECK_OK(djct_dataset_open(&again, dir, &o));
    uint64_t d2 = epoch_digest(again, NULL, &bad, &nb);
    CHECK(d2 == d1);
    CHECK_OK(djct_dataset_begin_epoch(again, 1));
    djct_plan_stats st1;
    CHECK_OK(djct_dataset_plan_stats(again, &st1));
    CHECK(st1.hash != st.hash && st1.straggler_ratio <= 1.02);
    uint64_t d3 = epoch_digest(again, NULL, &bad, &nb);
    CHECK(d3 != d1 && bad == 0);
    djct_dataset_free(again);

    /* djcdata-style shuffle (files, then events within files) balances as well */
    o.shuffle = DJCT_SHUFFLE_FILES;
    djct_dataset *fs = NULL;
    CHECK_OK(djct_dataset_open(&fs, dir, &o));
    djct_plan_stats st2;
    CHECK_OK(djct_dataset_plan_stats(fs, &st2));
    if (rank == 0)
        printf("world %d, file shuffle: straggler ratio %.4f\n", world, st2.straggler_ratio);
    CHECK(st2.straggler_ratio <= 1.02);
    djct_dataset_free(fs);

    free(seen);
    free(all);
    djct_dataset_free(ds);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", dir);
    }
    return harness_report_mpi();
}
