/* Logging benchmarks, side by side with a baseline (interleaved rounds, medians over rounds):
 *  1. flush latency: N metrics logged + djct_log_flush vs one MPI_Reduce (and MPI_Allreduce) of a
 *     packed vector of N doubles, and vs MPI_Allreduce of one element of a contiguous type of the
 *     4+N doubles djct sends, with a user op; the reduction alone, the flush without and with
 *     fsync. Every call is timed on its own after a barrier: median and mean per call, slowest rank.
 *     Each round prints its ratios to that round's MPI_Reduce; the table gives medians over rounds;
 *  2. step time of a loop (1 ms of work, 20 metrics, flush) with logging disabled, offline, online
 *     against a server that never answers (a listening socket nobody accepts on) and online
 *     against a refused port (every request fails and is retried).
 * usage: mpirun -np 2 build/bench/log_flush [--metrics 100] [--iters 1000] [--repeats 5] [--steps 100]
 *        [--dir /tmp] [--arbitrary] */
#include <arpa/inet.h>
#include <mpi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "djct/djct.h"
#include "bench_util.h"

static int rank, size;

static double now(void) { return MPI_Wtime(); }

/* the slowest rank sets the pace */
static double max_over_ranks(double v)
{
    double m;
    MPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return m;
}

static void spin(double s)
{
    double t = now();
    while (now() - t < s)
        ;
}

static char names[1024][32];

/* per-iteration samples -> median over iterations and mean (both: slowest rank) */
typedef struct {
    double med, mean;
} lat;

static lat summarise(double *t, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += t[i];
    lat l = {bench_median(t, n), s / n};
    l.med = max_over_ranks(l.med);
    l.mean = max_over_ranks(l.mean);
    return l;
}

/* the value of metric k at iteration it: by default integers (a mean over the ranks ends in .5),
 * which the row formats quickly; with --arbitrary values as training produces them, with no short
 * decimal form, so each takes the slow path of the shortest round-trip formatting */
static int arbitrary;
static double metric_value(int it, int k)
{
    return arbitrary ? (it + k + rank) * 0.1 + 1.0 / (k + 3) : it + k + rank;
}

/* log_inside 0: the N djct_log calls happen before the barrier and only djct_log_flush is timed,
 * in the same place as the MPI_Reduce baseline; 1: the calls are timed too */
static lat time_flush(int metrics, int iters, const char *dir, int do_fsync, int log_inside, const char *run_id,
                      lat *reduce)
{
    djct_log_options o = DJCT_LOG_OPTIONS_INIT;
    o.mode = DJCT_LOG_MODE_OFFLINE;
    o.dir = dir;
    o.run_id = run_id;
    o.no_fsync = !do_fsync;
    if (djct_log_init(&o) != 0) {
        fprintf(stderr, "log_flush: rank %d: %s\n", rank, djct_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int k = 0; k < metrics; k++) /* warm-up: the first flush agrees on the key set */
        djct_log(names[k], k);
    djct_log_flush(NULL, -1);
    double *t = malloc(sizeof(double) * (size_t)iters), *rd = malloc(sizeof(double) * (size_t)iters);
    djct_log_stats st;
    djct_log_get_stats(&st);
    double before = st.reduce_seconds;
    for (int it = 0; it < iters; it++) {
        for (int k = 0; k < metrics && !log_inside; k++)
            djct_log(names[k], metric_value(it, k));
        MPI_Barrier(MPI_COMM_WORLD); /* latency of one flush, not pipelined throughput */
        double t0 = now();
        for (int k = 0; k < metrics && log_inside; k++)
            djct_log(names[k], metric_value(it, k));
        djct_log_flush(NULL, -1);
        t[it] = now() - t0;
        djct_log_get_stats(&st); /* the collective part alone, this flush */
        rd[it] = st.reduce_seconds - before;
        before = st.reduce_seconds;
    }
    if (st.fast_flushes != st.flushes - 1 && rank == 0) /* all but the warm-up's key gathering */
        fprintf(stderr, "log_flush: only %lld of %lld flushes took the one packed collective\n",
                (long long)st.fast_flushes, (long long)st.flushes);
    djct_log_finish(0);
    if (reduce)
        *reduce = summarise(rd, iters);
    lat l = summarise(t, iters);
    free(t);
    free(rd);
    return l;
}

/* the shape djct sends: one element of a contiguous type, user op (all sums here) */
static int user_len;
static void user_sum(void *in_, void *inout_, int *len, MPI_Datatype *dt)
{
    const double *in = in_;
    double *io = inout_;
    for (int i = 0; i < *len * user_len; i++)
        io[i] += in[i];
}

/* kind 0: MPI_Reduce of n doubles; 1: MPI_Allreduce of n doubles; 2: MPI_Allreduce of one element
 * of a contiguous type of n doubles with a user op */
static lat time_reduce(int n, int iters, int kind)
{
    double *in = calloc((size_t)n, sizeof(double)), *out = calloc((size_t)n, sizeof(double));
    double *t = malloc(sizeof(double) * (size_t)iters);
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    MPI_Op op = MPI_OP_NULL;
    if (kind == 2) {
        user_len = n;
        MPI_Type_contiguous(n, MPI_DOUBLE, &dt);
        MPI_Type_commit(&dt);
        MPI_Op_create(user_sum, 1, &op);
    }
    for (int it = 0; it < iters; it++) {
        in[0] = it;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        if (kind == 1)
            MPI_Allreduce(in, out, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        else if (kind == 2)
            MPI_Allreduce(in, out, 1, dt, op, MPI_COMM_WORLD);
        else
            MPI_Reduce(in, out, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        t[it] = now() - t0;
    }
    if (kind == 2) {
        MPI_Op_free(&op);
        MPI_Type_free(&dt);
    }
    lat l = summarise(t, iters);
    free(in);
    free(out);
    free(t);
    return l;
}

static double time_steps(int mode, const char *url, const char *dir, const char *run_id, int steps)
{
    djct_log_options o = DJCT_LOG_OPTIONS_INIT;
    o.mode = mode < 0 ? DJCT_LOG_MODE_DISABLED : mode;
    o.dir = dir;
    o.run_id = run_id;
    o.base_url = url;
    o.api_key = "benchkey-not-a-real-key-0123456789abcdef";
    o.batch_interval_s = 0.05; /* stress: far more often than the default 15 s */
    o.http_timeout_s = 30;
    o.retry_min_s = 0.01;
    o.retry_max_s = 0.05;
    o.finish_timeout_s = 0.5;
    o.no_fsync = 1;
    if (djct_log_init(&o) != 0) {
        fprintf(stderr, "log_flush: rank %d: %s\n", rank, djct_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int s = 0; s < steps; s++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        spin(0.001);
        if (mode < 0) { /* reference: the same metrics reduced by hand, no logging */
            double in[20], out[20];
            for (int k = 0; k < 20; k++)
                in[k] = s + k;
            MPI_Reduce(in, out, 20, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        } else {
            for (int k = 0; k < 20; k++)
                djct_log(names[k], s + k);
            djct_log_flush(NULL, -1);
        }
        t[s] = now() - t0;
    }
    djct_log_finish(0);
    double m = bench_median(t, steps);
    free(t);
    return max_over_ranks(m);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int metrics = 100, iters = 1000, repeats = 5, steps = 100;
    const char *dir = "/tmp";
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--arbitrary")) {
            arbitrary = 1;
            i--;
        } else if (i + 1 >= argc) {
            break;
        } else if (!strcmp(argv[i], "--metrics"))
            metrics = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters"))
            iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeats"))
            repeats = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
    }
    if (metrics < 1 || metrics > 1024 || iters < 1 || repeats < 1) {
        if (rank == 0)
            fprintf(stderr, "log_flush: --metrics 1..1024, --iters and --repeats >= 1\n");
        MPI_Finalize();
        return 2;
    }
    unsetenv("WANDB_MODE");
    for (int k = 0; k < metrics; k++)
        snprintf(names[k], sizeof(names[k]), "metric_%03d", k);
    char root[512];
    snprintf(root, sizeof(root), "%s/djct-bench-log-%d", dir, (int)getpid());
    MPI_Bcast(root, sizeof(root), MPI_CHAR, 0, MPI_COMM_WORLD);

    enum { NL = 8 };
    const char *lab[NL] = {"MPI_Reduce of N doubles (baseline)", "MPI_Allreduce of N doubles",
                           "MPI_Allreduce, 1 x type(4+N), user op", "djct_log_flush: the reduction alone",
                           "djct_log_flush (no fsync)", "djct_log x N + flush: the reduction alone",
                           "djct_log x N + djct_log_flush (no fsync)", "djct_log x N + djct_log_flush (fsync)"};
    enum { MAXR = 32 };
    double am[NL][MAXR], aa[NL][MAXR], rm[NL][MAXR], ra[NL][MAXR]; /* absolute, ratio: median, mean */
    if (repeats > MAXR)
        repeats = MAXR;
    if (rank == 0)
        printf("## flush latency per round: median us per call (slowest rank) and its ratio to MPI_Reduce\n"
               "%-5s %10s | %9s %6s | %9s %6s | %9s %6s\n", "round", "MPI_Reduce", "reduction", "ratio",
               "flush", "ratio", "log+flush", "ratio");
    for (int r = 0; r < repeats; r++) { /* interleaved: one of each per round */
        char id[32];
        lat l[NL];
        l[0] = time_reduce(metrics, iters, 0);
        l[1] = time_reduce(metrics, iters, 1);
        l[2] = time_reduce(4 + metrics, iters, 2);
        snprintf(id, sizeof(id), "flush%d", r);
        l[4] = time_flush(metrics, iters, root, 0, 0, id, &l[3]);
        snprintf(id, sizeof(id), "logflush%d", r);
        l[6] = time_flush(metrics, iters, root, 0, 1, id, &l[5]);
        snprintf(id, sizeof(id), "fsync%d", r);
        l[7] = time_flush(metrics, iters / 10 > 0 ? iters / 10 : 1, root, 1, 1, id, NULL);
        for (int k = 0; k < NL; k++) { /* ratios per round, against this round's baseline */
            am[k][r] = l[k].med;
            aa[k][r] = l[k].mean;
            rm[k][r] = l[k].med / l[0].med;
            ra[k][r] = l[k].mean / l[0].mean;
        }
        if (rank == 0)
            printf("%-5d %10.2f | %9.2f %6.2f | %9.2f %6.2f | %9.2f %6.2f\n", r, l[0].med * 1e6, l[3].med * 1e6,
                   rm[3][r], l[4].med * 1e6, rm[4][r], l[6].med * 1e6, rm[6][r]);
    }
    if (rank == 0) {
        printf("\n## flush latency: %d ranks, %d metrics (%s values), %d iters x %d rounds (slowest rank; median\n"
               "## over iterations, then over rounds; a ratio is taken per round against that round's baseline)\n",
               size, metrics, arbitrary ? "arbitrary" : "integer", iters, repeats);
        printf("%-42s %10s %7s %10s %7s\n", "", "median us", "ratio", "mean us", "ratio");
        for (int k = 0; k < NL; k++)
            printf("%-42s %10.2f %7.2f %10.2f %7.2f\n", lab[k], bench_median(am[k], repeats) * 1e6,
                   bench_median(rm[k], repeats), bench_median(aa[k], repeats) * 1e6, bench_median(ra[k], repeats));
    }

    /* step time with a slow / failing server vs logging disabled */
    char slow_url[64] = "", dead_url[64] = "";
    int trap = -1;
    if (rank == 0) {
        struct sockaddr_in a = {0};
        socklen_t l = sizeof(a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        trap = socket(AF_INET, SOCK_STREAM, 0); /* listens, never accepts: requests hang */
        bind(trap, (struct sockaddr *)&a, sizeof(a));
        listen(trap, 64);
        getsockname(trap, (struct sockaddr *)&a, &l);
        snprintf(slow_url, sizeof(slow_url), "http://127.0.0.1:%d", ntohs(a.sin_port));
        int s2 = socket(AF_INET, SOCK_STREAM, 0); /* bound, closed: connection refused */
        a.sin_port = 0;
        bind(s2, (struct sockaddr *)&a, sizeof(a));
        l = sizeof(a);
        getsockname(s2, (struct sockaddr *)&a, &l);
        close(s2);
        snprintf(dead_url, sizeof(dead_url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    }
    enum { NM = 5 };
    const char *labels[NM] = {"disabled (baseline)", "no logging, one MPI_Reduce of 20 doubles",
                              "offline (journal only)", "online, server never answers",
                              "online, connection refused (retrying)"};
    int modes[NM] = {DJCT_LOG_MODE_DISABLED, -1, DJCT_LOG_MODE_OFFLINE, DJCT_LOG_MODE_ONLINE, DJCT_LOG_MODE_ONLINE};
    const char *urls[NM] = {NULL, NULL, NULL, slow_url, dead_url};
    double st[NM][16];
    int reps = repeats < 16 ? repeats : 16;
    for (int r = 0; r < reps; r++)
        for (int m = 0; m < NM; m++) {
            char id[32];
            snprintf(id, sizeof(id), "step%d-%d", m, r);
            st[m][r] = time_steps(modes[m], urls[m], root, id, steps);
        }
    if (rank == 0) {
        printf("\n## step time: 1 ms of work + 20 metrics + flush, %d steps x %d repeats, %d ranks\n", steps, reps,
               size);
        printf("%-44s %10s %8s\n", "", "ms/step", "ratio");
        double base = bench_median(st[0], reps);
        for (int m = 0; m < NM; m++) {
            double v = bench_median(st[m], reps);
            printf("%-44s %10.4f %8.3f\n", labels[m], v * 1e3, v / base);
        }
        close(trap);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        if (system(cmd) != 0)
            fprintf(stderr, "log_flush: could not remove %s\n", root);
    }
    MPI_Finalize();
    return 0;
}
