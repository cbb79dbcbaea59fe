/* Fault scenarios for comm, driven by tests/test_comm_faults.sh:
 *   (no argument)  the runner's normal MPI test: the watchdog stays quiet when every rank arrives
 *                  late but within the timeout;
 *   watchdog       rank 1 never reaches the barrier; the others must name it and abort;
 *   watchdog-large rank 1 never reaches a 1 MiB reduction (large reductions wait for every
 *                  rank with a watched barrier, then run the blocking MPI call): the same;
 *   watchdog-weighted  the same for a weighted average, whose weight collective (posted at the
 *                  reduction) is the watched arrival;
 *   abort          rank 1 fails while the others wait in a barrier without a watchdog;
 *                  djct_comm_abort must bring the whole job down;
 *   labels         rank 1 stays away from each of comm's small collectives (public and the
 *                  MPI-typed ones of src/comm_int.h) in turn: the others must time out naming
 *                  rank 1 and the call's label. */
#define HARNESS_MPI
#include "harness.h"
#include "comm_int.h"

#include <unistd.h>

/* One small collective of every kind, labelled; `late` is rank 1 coming to it after the others
 * gave up. */
static int small_collective(djct_comm *c, djct_comm_request *q, int k, const char **label)
{
    static int64_t v[4];
    static int lens[64], displs[64];
    static char all[64];
    int n = djct_comm_size(c), me = djct_comm_rank(c);
    for (int r = 0; r < n && r < 64; r++)
        lens[r] = 1, displs[r] = r;
    char mine = (char)('a' + me);
    switch (k) {
    case 0: *label = "test allreduce"; return djct_comm_allreduce(c, v, 4, DJCT_DTYPE_INT64, DJCT_COMM_REDUCE_MIN, *label);
    case 1: *label = "test bcast"; return djct_comm_bcast(c, v, sizeof(v), 1, *label);
    case 2: {
        *label = "test allreduce_start";
        int rc = djct_comm_allreduce_start(q, v, 4, DJCT_DTYPE_INT64, DJCT_COMM_REDUCE_SUM, *label);
        return rc ? rc : djct_comm_wait(q);
    }
    case 3: *label = "test mpi_allreduce"; return djct_comm_mpi_allreduce(c, v, 4, MPI_INT64_T, MPI_MAX, *label);
    case 4: *label = "test mpi_reduce"; return djct_comm_mpi_reduce(c, v, 4, MPI_INT64_T, MPI_SUM, 0, *label);
    case 5: *label = "test mpi_bcast"; return djct_comm_mpi_bcast(c, v, 4, MPI_INT64_T, 1, *label);
    case 6: *label = "test mpi_allgather"; return djct_comm_mpi_allgather(c, &mine, all, 1, MPI_CHAR, *label);
    case 7: *label = "test mpi_allgatherv"; return djct_comm_mpi_allgatherv(c, &mine, 1, all, lens, displs, MPI_CHAR, *label);
    case 8:
    case 9: {
        *label = k == 8 ? "test mpi_ibcast p2p" : "test mpi_ibcast";
        int rc = djct_comm_mpi_ibcast(q, v, 4, MPI_INT64_T, 1, k == 8 ? 16 : 0, *label);
        return rc ? rc : djct_comm_wait(q);
    }
    }
    return -1;
}
#define N_SMALL 10

/* Each call on a fresh comm (one is unusable after a timeout). Rank 1 waits on MPI_COMM_WORLD
 * (outside djct: it does not answer the watchdog) until every other rank has returned from the
 * call, then makes it late and tells them, so every collective completes and the job ends
 * normally. Rank 1's comm has a long timeout: all timeouts > 0 take the same path. */
static void labels(void)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int k = 0; k < N_SMALL; k++) {
        djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
        o.device = DJCT_COMM_DEVICE_NONE;
        o.timeout_seconds = rank == 1 ? 60.0 : 0.5;
        djct_comm *c = NULL;
        djct_comm_request *q = NULL;
        if (djct_comm_create(&c, &o) < 0 || djct_comm_request_create(&q, c) < 0)
            djct_comm_abort(NULL, 1, djct_last_error());
        const char *label = "";
        int flag = 0;
        if (rank != 1) {
            int rc = small_collective(c, q, k, &label);
            /* a rooted collective may complete on ranks that do not wait for rank 1 */
            if (rc == DJCT_ETIMEOUT)
                printf("%s\n", djct_last_error());
            else if (rc != 0 || !(k == 4 && rank != 0))
                printf("rank %d: %s returned %d: %s\n", rank, label, rc, djct_last_error());
            fflush(stdout);
            MPI_Send(&flag, 1, MPI_INT, 1, 900 + k, MPI_COMM_WORLD);
            MPI_Recv(&flag, 1, MPI_INT, 1, 900 + k, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            for (int r = 0; r < size; r++)
                if (r != 1)
                    MPI_Recv(&flag, 1, MPI_INT, r, 900 + k, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (small_collective(c, q, k, &label) < 0)
                djct_comm_abort(c, 1, djct_last_error());
            for (int r = 0; r < size; r++)
                if (r != 1)
                    MPI_Send(&flag, 1, MPI_INT, r, 900 + k, MPI_COMM_WORLD);
        }
        /* not freed: after a timeout the communicator cannot be, and the ranks must agree */
    }
    printf("rank %d: labels done\n", rank);
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED) < 0) {
        fprintf(stderr, "%s\n", djct_last_error());
        return 1;
    }
    if (!strcmp(mode, "labels")) {
        labels();
        djct_comm_finalize_mpi();
        return 0;
    }
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.device = DJCT_COMM_DEVICE_NONE;
    o.timeout_seconds = !strcmp(mode, "abort") ? 0 : !strncmp(mode, "watchdog", 8) ? 2.0 : 5.0;
    djct_comm *c = NULL;
    if (djct_comm_create(&c, &o) < 0)
        djct_comm_abort(NULL, 1, djct_last_error());
    int rank = djct_comm_rank(c);
    float x[4] = {1, 2, 3, 4};
    djct_comm_buffer b = {x, 4, DJCT_DTYPE_FLOAT32, -1};
    djct_comm_plan *p = NULL;
    if (djct_comm_plan_create(&p, c, &b, 1, NULL) < 0 || djct_comm_plan_reduce(p, DJCT_COMM_AVERAGE, 0) < 0)
        djct_comm_abort(c, 1, djct_last_error());

    if (!strcmp(mode, "watchdog")) {
        if (rank == 1) {
            sleep(60); /* "stuck": never arrives; the job must be gone long before */
            return 0;
        }
        if (djct_comm_barrier(c) < 0)
            djct_comm_abort(c, 3, djct_last_error());
        printf("rank %d: barrier completed although rank 1 never arrived\n", rank);
        return 0;
    }
    enum { BIG = 1 << 18 }; /* 1 MiB of floats */
    float *big = malloc(sizeof(float) * BIG);
    djct_comm_buffer bb = {big, BIG, DJCT_DTYPE_FLOAT32, -1};
    djct_comm_plan *pb = NULL;
    if (!big || djct_comm_plan_create(&pb, c, &bb, 1, NULL) < 0)
        djct_comm_abort(c, 1, big ? djct_last_error() : "out of memory");
    if (!strcmp(mode, "watchdog-large") || !strcmp(mode, "watchdog-weighted")) {
        if (rank == 1) {
            sleep(60);
            return 0;
        }
        if (djct_comm_plan_reduce(pb, mode[9] == 'w' ? DJCT_COMM_WEIGHTED : DJCT_COMM_AVERAGE, 1.0) < 0)
            djct_comm_abort(c, 3, djct_last_error());
        printf("rank %d: large reduction completed although rank 1 never arrived\n", rank);
        return 0;
    }
    if (!strcmp(mode, "abort")) {
        if (rank == 1) {
            usleep(300000);
            djct_comm_abort(c, 4, "injected failure after step 1");
        }
        djct_comm_barrier(c); /* no watchdog: only the abort ends this */
        printf("rank %d: barrier completed although rank 1 aborted\n", rank);
        return 0;
    }
    /* normal run: a late rank (0.5 s) within a 5 s timeout is no error */
    if (rank == 1)
        usleep(500000);
    CHECK_OK(djct_comm_barrier(c));
    x[0] = (float)rank;
    CHECK_OK(djct_comm_plan_reduce(p, DJCT_COMM_SUM, 0));
    int n = djct_comm_size(c);
    CHECK(x[0] == (float)(n * (n - 1) / 2));
    /* a large reduction with a late rank: the watched arrival, then the blocking call, twice (the
     * guard timer is re-armed); exact sums */
    harness_rows calls = HARNESS_ROWS_INIT, exact = HARNESS_ROWS_INIT;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < BIG; i++)
            big[i] = (float)(rank + 1) * (float)(i % 1000);
        if (rank == 1)
            usleep(300000);
        ROW_OK(calls, djct_comm_plan_reduce(pb, DJCT_COMM_SUM, 0), "sum, round %d", round);
        int same = 1;
        for (int i = 0; i < BIG; i++)
            same &= big[i] == (float)(n * (n + 1) / 2) * (float)(i % 1000);
        ROW(exact, same, "sum, round %d", round);
    }
    /* weighted, through the overlapped API: the weight collective is the arrival; exact */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < BIG; i++)
            big[i] = (float)(i % 1000);
        if (rank == 1)
            usleep(300000);
        ROW_OK(calls, djct_comm_plan_start(pb, DJCT_COMM_WEIGHTED, (double)(rank + 1)), "weighted, round %d", round);
        ROW_OK(calls, djct_comm_plan_mark_ready(pb, 0), "weighted, round %d", round);
        ROW_OK(calls, djct_comm_plan_finish(pb), "weighted, round %d", round);
        int same = 1;
        for (int i = 0; i < BIG; i++)
            same &= big[i] == (float)(i % 1000);
        ROW(exact, same, "weighted, round %d", round);
    }
    CHECK_ROWS(calls);
    CHECK_ROWS(exact);
    djct_comm_plan_free(pb);
    free(big);
    djct_comm_plan_free(p);
    djct_comm_free(c);
    return harness_report_mpi();
}
