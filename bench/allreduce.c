/* bench/allreduce: djct's bucketed averaging against a raw MPI_Allreduce of the same buffer, side
 * by side in the same run; fused vs one reduction per tensor for real parameter lists; and whether
 * the non-blocking path overlaps with computation. Times are the max over ranks per repeat, medians
 * over repeats, ratios per round, medians (and min..max) over rounds.
 *   mpirun -np 2 build/bench/allreduce [--rounds 3] [--reps 20] [--max-mib 64] [--bucket-kib K]
 *                                      [--only sweep|params|buckets|overlap] */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djct/djct.h"
#include "bench_util.h"

static int rank, size, rounds = 3, reps = 20;
static size_t max_bytes = (size_t)64 << 20, bucket_bytes = 0;

static void die(const char *what)
{
    char m[1200];
    snprintf(m, sizeof(m), "allreduce: %s: %s", what, djct_last_error());
    djct_comm_abort(NULL, 1, m);
}

typedef void (*op_fn)(void *ctx);

/* median over `n` repeats of the max-over-ranks time of one call */
static double time_op(op_fn f, void *ctx, int n)
{
    double *t = malloc(sizeof(double) * (size_t)n);
    f(ctx); /* warm-up: first touch, lazy MPI setup */
    for (int i = 0; i < n; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = bench_now_s();
        f(ctx);
        double dt = bench_now_s() - t0, mx = 0;
        MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        t[i] = mx;
    }
    double m = bench_median(t, n);
    free(t);
    return m;
}

/* ---- ops ---- */
typedef struct {
    float          *buf;
    size_t          count;
    djct_comm_plan *plan;
    djct_comm_op    op;
} one_ctx;
static void raw_allreduce(void *v)
{
    one_ctx *c = v;
    MPI_Allreduce(MPI_IN_PLACE, c->buf, (int)c->count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static void djct_reduce(void *v)
{
    one_ctx *c = v;
    if (djct_comm_plan_reduce(c->plan, c->op, 1.0) < 0)
        die("plan_reduce");
}

typedef struct {
    djct_comm_buffer *bufs;
    size_t            n;
    djct_comm_plan   *plan;
} list_ctx;
static void raw_per_tensor(void *v)
{
    list_ctx *c = v;
    for (size_t i = 0; i < c->n; i++)
        MPI_Allreduce(MPI_IN_PLACE, c->bufs[i].ptr, (int)c->bufs[i].count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static void djct_list(void *v)
{
    list_ctx *c = v;
    if (djct_comm_plan_reduce(c->plan, DJCT_COMM_AVERAGE, 1.0) < 0)
        die("plan_reduce");
}

static double busbw(size_t bytes, double t) { return (double)bytes / t * 2.0 * (size - 1) / size / 1e9; }

/* ---- 1. size sweep ---- */
static void sweep(djct_comm *comm)
{
    if (rank == 0) {
        printf("\n## size sweep: djct average (one buffer, bucket %zu KiB) vs raw MPI_Allreduce(SUM), float32, %d ranks\n",
               (bucket_bytes ? bucket_bytes : DJCT_COMM_DEFAULT_BUCKET_BYTES) >> 10, size);
        printf("| bytes | raw us | raw busbw GB/s | djct avg us | djct busbw GB/s | djct/raw busbw [min..max] | djct sum/raw |\n");
        printf("|---|---|---|---|---|---|---|\n");
    }
    for (size_t bytes = 4096; bytes <= max_bytes; bytes *= 4) {
        size_t count = bytes / 4;
        float *buf = malloc(bytes);
        for (size_t i = 0; i < count; i++)
            buf[i] = (float)(i % 7);
        djct_comm_buffer b = {buf, count, DJCT_DTYPE_FLOAT32, -1};
        djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
        po.bucket_bytes = bucket_bytes;
        djct_comm_plan *plan = NULL;
        if (djct_comm_plan_create(&plan, comm, &b, 1, &po) < 0)
            die("plan_create");
        /* the result must be right before it is timed (MPI picks other algorithms at other sizes) */
        for (size_t i = 0; i < count; i++)
            buf[i] = (float)((rank + 1) * (int)(i % 7));
        if (djct_comm_plan_reduce(plan, DJCT_COMM_AVERAGE, 1.0) < 0)
            die("plan_reduce");
        float f = (float)(size * (size + 1) / 2);
        for (size_t i = 0; i < count; i++)
            if (buf[i] != f * (float)(i % 7) / (float)size) {
                fprintf(stderr, "rank %d: wrong average at %zu KiB, element %zu: %g\n", rank, bytes >> 10, i, buf[i]);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
        one_ctx ctx = {buf, count, plan, DJCT_COMM_AVERAGE}, sctx = {buf, count, plan, DJCT_COMM_SUM};
        int n = bytes >= ((size_t)16 << 20) ? (reps / 2 > 3 ? reps / 2 : 3) : bytes <= 65536 ? reps * 10 : reps;
        double traw[16], tdj[16], tsum[16], ratio[16], rsum[16];
        int R = rounds > 16 ? 16 : rounds;
        for (int r = 0; r < R; r++) {
            traw[r] = time_op(raw_allreduce, &ctx, n);
            tdj[r] = time_op(djct_reduce, &ctx, n);
            tsum[r] = time_op(djct_reduce, &sctx, n);
            ratio[r] = traw[r] / tdj[r];
            rsum[r] = traw[r] / tsum[r];
        }
        double mn = ratio[0], mx = ratio[0];
        for (int r = 1; r < R; r++) {
            mn = ratio[r] < mn ? ratio[r] : mn;
            mx = ratio[r] > mx ? ratio[r] : mx;
        }
        double raw = bench_median(traw, R), dj = bench_median(tdj, R), rm = bench_median(ratio, R), rs = bench_median(rsum, R);
        if (rank == 0) {
            printf("| %zu KiB | %.1f | %.2f | %.1f | %.2f | %.2f [%.2f..%.2f] | %.2f |\n", bytes >> 10, raw * 1e6,
                   busbw(bytes, raw), dj * 1e6, busbw(bytes, dj), rm, mn, mx, rs);
            fflush(stdout);
        }
        djct_comm_plan_free(plan);
        free(buf);
    }
}

/* ---- 2. fused vs per tensor on real parameter lists ---- */
static const size_t mlp[] = {200704, 256, 65536, 256, 2560, 10};
/* a point-cloud model (PointNet-like, with batch norm): conv 3-64-64-64-128-1024, fc 1024-512-256-40 */
static const size_t pcloud[] = {192, 64, 64, 64, 4096, 64, 64, 64, 4096, 64, 64, 64, 8192, 128, 128, 128,
                                131072, 1024, 1024, 1024, 524288, 512, 512, 512, 131072, 256, 256, 256, 10240, 40};

static void param_list(djct_comm *comm, const char *name, const size_t *sizes, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += sizes[i];
    float *slab = calloc(total, sizeof(float));
    djct_comm_buffer *sb = calloc(n, sizeof(*sb)), *pb = calloc(n, sizeof(*pb));
    void **own = calloc(n, sizeof(void *));
    for (size_t i = 0, off = 0; i < n; i++) {
        sb[i] = (djct_comm_buffer){slab + off, sizes[i], DJCT_DTYPE_FLOAT32, -1};
        own[i] = calloc(sizes[i] + 16, sizeof(float)); /* scattered: separate allocations */
        pb[i] = (djct_comm_buffer){own[i], sizes[i], DJCT_DTYPE_FLOAT32, -1};
        off += sizes[i];
    }
    djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
    po.bucket_bytes = bucket_bytes;
    djct_comm_plan *ps = NULL, *pp = NULL;
    if (djct_comm_plan_create(&ps, comm, sb, n, &po) < 0 || djct_comm_plan_create(&pp, comm, pb, n, &po) < 0)
        die("plan_create");
    list_ctx raw = {pb, n, NULL}, fslab = {sb, n, ps}, fpack = {pb, n, pp};
    double tr[16], ts[16], tp[16], rs[16], rp[16];
    int R = rounds > 16 ? 16 : rounds;
    for (int r = 0; r < R; r++) {
        tr[r] = time_op(raw_per_tensor, &raw, reps * 5);
        ts[r] = time_op(djct_list, &fslab, reps * 5);
        tp[r] = time_op(djct_list, &fpack, reps * 5);
        rs[r] = tr[r] / ts[r];
        rp[r] = tr[r] / tp[r];
    }
    if (rank == 0)
        printf("| %s | %zu | %.2f MB | %zu | %.1f | %.1f | %.1f | %.2f | %.2f |\n", name, n, total * 4 / 1e6,
               djct_comm_plan_bucket_count(ps), bench_median(tr, R) * 1e6, bench_median(ts, R) * 1e6, bench_median(tp, R) * 1e6,
               bench_median(rs, R), bench_median(rp, R));
    djct_comm_plan_free(ps);
    djct_comm_plan_free(pp);
    for (size_t i = 0; i < n; i++)
        free(own[i]);
    free(own);
    free(sb);
    free(pb);
    free(slab);
}

static void params(djct_comm *comm)
{
    if (rank == 0) {
        printf("\n## fused vs one MPI_Allreduce per tensor, %d ranks (djct includes the averaging)\n", size);
        printf("| model | tensors | bytes | buckets | per-tensor raw us | djct fused slab (zero copy) us | djct fused scattered (pack) us "
               "| per-tensor/slab | per-tensor/pack |\n|---|---|---|---|---|---|---|---|---|\n");
    }
    param_list(comm, "MLP 784-256-256-10", mlp, sizeof(mlp) / sizeof(mlp[0]));
    param_list(comm, "point cloud (PointNet-like)", pcloud, sizeof(pcloud) / sizeof(pcloud[0]));
    /* 100 tensors cycling through the MLP sizes: the perf_baselines.md case */
    size_t many[100];
    for (int i = 0; i < 100; i++)
        many[i] = mlp[i % 6];
    param_list(comm, "100 tensors (MLP sizes cycled)", many, 100);
}

/* ---- 3. bucket size: one 64 MiB slab of gradients ---- */
static void buckets(djct_comm *comm)
{
    size_t bytes = max_bytes, count = bytes / 4;
    float *buf = malloc(bytes);
    for (size_t i = 0; i < count; i++)
        buf[i] = 1;
    djct_comm_buffer b = {buf, count, DJCT_DTYPE_FLOAT32, -1};
    one_ctx raw = {buf, count, NULL, DJCT_COMM_AVERAGE};
    if (rank == 0)
        printf("\n## bucket size on a %zu MiB slab, %d ranks: djct average vs one raw MPI_Allreduce of the slab\n"
               "| bucket | buckets | djct us | djct busbw GB/s | raw/djct time |\n|---|---|---|---|---|\n",
               bytes >> 20, size);
    const size_t caps[] = {(size_t)256 << 10, (size_t)1 << 20, (size_t)4 << 20, (size_t)8 << 20, (size_t)16 << 20,
                           (size_t)25 << 20, (size_t)64 << 20};
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        if (caps[k] > bytes)
            break;
        djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
        po.bucket_bytes = caps[k];
        djct_comm_plan *p = NULL;
        if (djct_comm_plan_create(&p, comm, &b, 1, &po) < 0)
            die("plan_create");
        one_ctx c = {buf, count, p, DJCT_COMM_AVERAGE};
        double td[16], tr[16], rr[16];
        int R = rounds > 16 ? 16 : rounds, n = reps / 2 > 3 ? reps / 2 : 3;
        for (int r = 0; r < R; r++) {
            tr[r] = time_op(raw_allreduce, &raw, n);
            td[r] = time_op(djct_reduce, &c, n);
            rr[r] = tr[r] / td[r];
        }
        double d = bench_median(td, R);
        if (rank == 0)
            printf("| %zu KiB | %zu | %.0f | %.2f | %.2f |\n", caps[k] >> 10, djct_comm_plan_bucket_count(p), d * 1e6,
                   busbw(bytes, d), bench_median(rr, R));
        djct_comm_plan_free(p);
    }
    free(buf);
}

/* ---- 4. overlap: a simulated backward pass producing buckets one by one ---- */
static void spin_compute(double seconds, djct_comm_plan *progress_plan, int polls)
{
    /* pure CPU work; `polls` progress calls spread over it (the trainer would call between layers) */
    double t0 = bench_now_s(), slice = seconds / (polls + 1);
    volatile double x = 1.0;
    for (int k = 0; k <= polls; k++) {
        while (bench_now_s() - t0 < slice * (k + 1))
            x = x * 1.0000001 + 1e-9;
        if (progress_plan && k < polls)
            djct_comm_plan_progress(progress_plan);
    }
}

static void overlap(djct_comm *comm)
{
    enum { NBUF = 16 };
    size_t per = (size_t)1 << 20; /* 16 x 4 MiB float32 = 64 MiB of gradients, 1 bucket each */
    float *slab = calloc(per * NBUF, sizeof(float));
    djct_comm_buffer b[NBUF];
    for (int i = 0; i < NBUF; i++)
        b[i] = (djct_comm_buffer){slab + (size_t)i * per, per, DJCT_DTYPE_FLOAT32, -1};
    djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
    po.bucket_bytes = per * 4;
    djct_comm_plan *p = NULL;
    if (djct_comm_plan_create(&p, comm, b, NBUF, &po) < 0)
        die("plan_create");
    /* calibrate: time of the blocking reduction alone */
    double tc[16], ts[16], to[16], tp[16];
    int R = rounds > 16 ? 16 : rounds, n = reps / 4 > 3 ? reps / 4 : 3;
    for (int r = 0; r < R; r++) {
        double *v = malloc(sizeof(double) * (size_t)n);
        for (int i = 0; i < n; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = bench_now_s();
            djct_comm_plan_reduce(p, DJCT_COMM_AVERAGE, 1);
            v[i] = bench_now_s() - t0;
        }
        tc[r] = bench_median(v, n);
        double compute = tc[r]; /* backward as long as the communication: ideal overlap halves the step */
        for (int mode = 0; mode < 3; mode++) {
            for (int i = 0; i < n; i++) {
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = bench_now_s();
                if (mode == 0) { /* serial: backward, then blocking reduce */
                    for (int k = 0; k < NBUF; k++)
                        spin_compute(compute / NBUF, NULL, 0);
                    djct_comm_plan_reduce(p, DJCT_COMM_AVERAGE, 1);
                } else { /* non-blocking: mark each bucket ready as its "layer" finishes */
                    djct_comm_plan_start(p, DJCT_COMM_AVERAGE, 1);
                    for (int k = NBUF - 1; k >= 0; k--) {
                        spin_compute(compute / NBUF, mode == 2 ? p : NULL, mode == 2 ? 8 : 0);
                        djct_comm_plan_mark_ready(p, (size_t)k);
                    }
                    djct_comm_plan_finish(p);
                }
                v[i] = bench_now_s() - t0;
            }
            double m = bench_median(v, n);
            (mode == 0 ? ts : mode == 1 ? to : tp)[r] = m;
        }
        free(v);
    }
    double c = bench_median(tc, R), s = bench_median(ts, R), o = bench_median(to, R), q = bench_median(tp, R);
    if (rank == 0) {
        printf("\n## overlap, %d ranks: 16 buckets x 4 MiB, simulated backward as long as the reduction (%.1f ms)\n", size, c * 1e3);
        printf("| schedule | step ms | hidden communication |\n|---|---|---|\n");
        printf("| backward, then blocking reduce | %.1f | 0%% (reference) |\n", s * 1e3);
        printf("| mark_ready per bucket (MPI_Iallreduce + MPI_Test at each mark) | %.1f | %.0f%% |\n", o * 1e3, 100 * (s - o) / c);
        printf("| same + 8 progress calls per layer | %.1f | %.0f%% |\n", q * 1e3, 100 * (s - q) / c);
    }
    djct_comm_plan_free(p);
    free(slab);
}

int main(int argc, char **argv)
{
    const char *only = "";
    djct_tune_malloc(); /* as djct_train: MPI's per-call temporaries reuse heap memory */
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED) < 0)
        die("init");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-mib") && i + 1 < argc)
            max_bytes = (size_t)atoi(argv[++i]) << 20;
        else if (!strcmp(argv[i], "--bucket-kib") && i + 1 < argc)
            bucket_bytes = (size_t)atoi(argv[++i]) << 10;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: allreduce [--rounds N] [--reps N] [--max-mib N] [--bucket-kib N] "
                            "[--only sweep|params|buckets|overlap]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (rounds < 1 || reps < 1) {
        fprintf(stderr, "allreduce: --rounds and --reps must be >= 1\n");
        MPI_Finalize();
        return 2;
    }
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.device = DJCT_COMM_DEVICE_NONE;
    djct_comm *comm = NULL;
    if (djct_comm_create(&comm, &o) < 0)
        die("comm_create");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *report = NULL;
    djct_comm_startup_report(comm, &report);
    if (rank == 0)
        printf("# bench/allreduce: %d ranks, %d rounds, %d reps (x10 at <= 64 KiB, /2 at >= 16 MiB)\n%s", size, rounds,
               reps, report);
    if (!*only || !strcmp(only, "sweep"))
        sweep(comm);
    if (!*only || !strcmp(only, "params"))
        params(comm);
    if (!*only || !strcmp(only, "buckets"))
        buckets(comm);
    if (!*only || !strcmp(only, "overlap"))
        overlap(comm);
    djct_comm_free(comm);
    MPI_Finalize();
    return 0;
}
