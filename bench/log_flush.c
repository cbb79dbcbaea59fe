/* Logging benchmarks, side by side with a baseline (medians over repeats):
 *  1. flush latency: N metrics logged + djct_log_flush vs one MPI_Reduce (and MPI_Allreduce) of a
 *     packed vector of N doubles; flush without and with fsync;
 *  2. step time of a loop (1 ms of work, 20 metrics, flush) with logging disabled, offline, online
 *     against a server that never answers (a listening socket nobody accepts on) and online
 *     against a refused port (every request fails and is retried).
 * usage: mpirun -np 2 build/bench/log_flush [--metrics 100] [--iters 1000] [--repeats 5] [--steps 100]
 *        [--dir /tmp] */
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

static int rank, size;

static double now(void) { return MPI_Wtime(); }

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

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

static double time_flush(int metrics, int iters, const char *dir, int do_fsync, const char *run_id, double *reduce)
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
    djct_log_stats st0;
    djct_log_get_stats(&st0);
    double first = st0.reduce_seconds;
    double t = 0;
    for (int it = 0; it < iters; it++) {
        MPI_Barrier(MPI_COMM_WORLD); /* latency of one flush, not pipelined throughput */
        double t0 = now();
        for (int k = 0; k < metrics; k++)
            djct_log(names[k], it + k + rank);
        djct_log_flush(NULL, -1);
        t += now() - t0;
    }
    t /= iters;
    djct_log_stats st;
    djct_log_get_stats(&st);
    if (reduce) /* the collective part alone (the warm-up flush is the slow path: excluded) */
        *reduce = max_over_ranks((st.reduce_seconds - first) / iters);
    djct_log_finish(0);
    return max_over_ranks(t);
}

static double time_reduce(int n, int iters, int all)
{
    double *in = calloc((size_t)n, sizeof(double)), *out = calloc((size_t)n, sizeof(double));
    double t = 0;
    for (int it = 0; it < iters; it++) {
        in[0] = it;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        if (all)
            MPI_Allreduce(in, out, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        else
            MPI_Reduce(in, out, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        t += now() - t0;
    }
    t /= iters;
    free(in);
    free(out);
    return max_over_ranks(t);
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
    double m = median(t, steps);
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
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--metrics"))
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

    double *red = malloc(sizeof(double) * (size_t)repeats), *all = malloc(sizeof(double) * (size_t)repeats);
    double *fl = malloc(sizeof(double) * (size_t)repeats), *fs = malloc(sizeof(double) * (size_t)repeats);
    double *rd = malloc(sizeof(double) * (size_t)repeats);
    for (int r = 0; r < repeats; r++) {
        char id[32];
        red[r] = time_reduce(metrics, iters, 0);
        all[r] = time_reduce(metrics, iters, 1);
        snprintf(id, sizeof(id), "nofsync%d", r);
        fl[r] = time_flush(metrics, iters, root, 0, id, &rd[r]);
        snprintf(id, sizeof(id), "fsync%d", r);
        fs[r] = time_flush(metrics, iters / 10 > 0 ? iters / 10 : 1, root, 1, id, NULL);
    }
    double mr = median(red, repeats), ma = median(all, repeats), mf = median(fl, repeats), mfs = median(fs, repeats);
    double mrd = median(rd, repeats);
    if (rank == 0) {
        printf("## flush latency: %d ranks, %d metrics, %d iters x %d repeats (median, slowest rank)\n", size, metrics,
               iters, repeats);
        printf("%-44s %10s %8s\n", "", "us/flush", "ratio");
        printf("%-44s %10.2f %8.2f\n", "MPI_Reduce of the packed vector (baseline)", mr * 1e6, 1.0);
        printf("%-44s %10.2f %8.2f\n", "MPI_Allreduce of the packed vector", ma * 1e6, ma / mr);
        printf("%-44s %10.2f %8.2f\n", "djct_log_flush: the packed reduction alone", mrd * 1e6, mrd / mr);
        printf("%-44s %10.2f %8.2f\n", "djct_log x N + djct_log_flush (no fsync)", mf * 1e6, mf / mr);
        printf("%-44s %10.2f %8.2f\n", "djct_log x N + djct_log_flush (fsync)", mfs * 1e6, mfs / mr);
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
        double base = median(st[0], reps);
        for (int m = 0; m < NM; m++) {
            double v = median(st[m], reps);
            printf("%-44s %10.4f %8.3f\n", labels[m], v * 1e3, v / base);
        }
        close(trap);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        if (system(cmd) != 0)
            fprintf(stderr, "log_flush: could not remove %s\n", root);
    }
    free(red);
    free(all);
    free(fl);
    free(fs);
    free(rd);
    MPI_Finalize();
    return 0;
}
