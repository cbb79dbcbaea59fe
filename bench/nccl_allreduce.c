/* bench/nccl_allreduce: djct's bucketed average of a float32 device buffer (the NCCL backend of
 * comm) against one raw ncclAllReduce(sum) of the same bytes on a communicator of its own, side by
 * side in the same run, on the same GPU. Each time is the max over ranks of one call that ends
 * with the stream synchronised, median over repeats. busbw = algbw x 2(n-1)/n as nccl-tests
 * defines it, so with one rank it is 0 and algbw (bytes / time) is the figure to read.
 * The last line is one JSON object per run for scripts (bytes, microseconds, GB/s of both).
 *   mpirun -np N build/bench/nccl_allreduce [--reps 20] [--max-mib 256] [--bucket-kib K]
 * Needs one GPU per rank on each node; elsewhere it prints `skip:` and exits 0. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"
#include "bench_util.h"

#if defined(DJCT_HAVE_CUDA) && DJCT_HAVE_CUDA
#include <cuda_runtime_api.h>
/* nccl.h declares `f()` prototypes that -Wstrict-prototypes flags; not ours to fix */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop

static int rank, size;

static void die(const char *what, const char *why)
{
    char m[1200];
    snprintf(m, sizeof(m), "nccl_allreduce: %s: %s", what, why);
    djct_comm_abort(NULL, 1, m);
}

/* max over ranks of one call, median over n repeats (after one warm-up call) */
typedef int (*op_fn)(void *ctx);
static double time_op(op_fn f, void *ctx, int n)
{
    double *t = malloc(sizeof(double) * (size_t)n);
    if (f(ctx))
        die("warm-up", djct_last_error());
    for (int i = 0; i < n; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = bench_now_s();
        if (f(ctx))
            die("timed call", djct_last_error());
        double dt = bench_now_s() - t0, mx = 0;
        MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        t[i] = mx;
    }
    double m = bench_median(t, n);
    free(t);
    return m;
}

typedef struct {
    float *dev;
    size_t count;
    ncclComm_t nccl;
    cudaStream_t stream;
    djct_comm_plan *plan;
} ctx_t;

static int raw(void *v)
{
    ctx_t *c = v;
    ncclResult_t r = ncclAllReduce(c->dev, c->dev, c->count, ncclFloat32, ncclSum, c->nccl, c->stream);
    if (r != ncclSuccess)
        return djct_error_set(DJCT_ENCCL, "ncclAllReduce: %s", ncclGetErrorString(r));
    cudaError_t e = cudaStreamSynchronize(c->stream);
    return e == cudaSuccess ? 0 : djct_error_set(DJCT_ENCCL, "cudaStreamSynchronize: %s", cudaGetErrorString(e));
}

static int djct(void *v)
{
    return djct_comm_plan_reduce(((ctx_t *)v)->plan, DJCT_COMM_AVERAGE, 1.0);
}

static double gbps(size_t bytes, double t) { return (double)bytes / t / 1e9; }

int main(int argc, char **argv)
{
    int reps = 20;
    size_t max_bytes = (size_t)256 << 20, bucket_bytes = 0;
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED) < 0)
        die("MPI", djct_last_error());
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-mib") && i + 1 < argc)
            max_bytes = (size_t)atoi(argv[++i]) << 20;
        else if (!strcmp(argv[i], "--bucket-kib") && i + 1 < argc)
            bucket_bytes = (size_t)atoi(argv[++i]) << 10;
        else {
            fprintf(stderr, "usage: nccl_allreduce [--reps N] [--max-mib N] [--bucket-kib N]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (reps < 1 || max_bytes < ((size_t)1 << 20)) {
        fprintf(stderr, "nccl_allreduce: --reps must be >= 1 and --max-mib >= 1\n");
        MPI_Finalize();
        return 2;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    int local = 0, gpus = 0, enough, all = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    if (cudaGetDeviceCount(&gpus) != cudaSuccess)
        gpus = 0;
    enough = gpus >= local;
    MPI_Allreduce(&enough, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) {
        if (rank == 0)
            printf("skip: NCCL needs one GPU per rank: a node runs %d ranks and sees %d GPUs\n", local, gpus);
        MPI_Finalize();
        return 0;
    }
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.backend = DJCT_COMM_BACKEND_NCCL;
    djct_comm *comm = NULL;
    if (djct_comm_create(&comm, &o) < 0)
        die("comm_create", djct_last_error());
    int dev = djct_comm_device(comm);
    /* the raw side: a communicator of its own, bootstrapped the same way (rank 0's id over MPI) */
    ctx_t c;
    memset(&c, 0, sizeof(c));
    ncclUniqueId id;
    if (rank == 0 && ncclGetUniqueId(&id) != ncclSuccess)
        die("ncclGetUniqueId", "failed");
    MPI_Bcast(&id, (int)sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
    if (cudaSetDevice(dev) != cudaSuccess || cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking) != cudaSuccess)
        die("CUDA", "cannot create a stream");
    ncclResult_t nr = ncclCommInitRank(&c.nccl, size, id, rank);
    if (nr != ncclSuccess)
        die("ncclCommInitRank", ncclGetErrorString(nr));
    if (cudaMalloc((void **)&c.dev, max_bytes) != cudaSuccess || cudaMemset(c.dev, 0, max_bytes) != cudaSuccess)
        die("cudaMalloc", "out of device memory");
    const char *report = NULL;
    djct_comm_startup_report(comm, &report);
    int nv = 0;
    ncclGetVersion(&nv);
    if (rank == 0) {
        printf("# bench/nccl_allreduce: %d ranks, NCCL %d, %d reps, djct bucket %zu KiB\n%s", size, nv, reps,
               (bucket_bytes ? bucket_bytes : DJCT_COMM_DEFAULT_BUCKET_BYTES) >> 10, report ? report : "");
        printf("| bytes | raw ncclAllReduce us | raw algbw GB/s | raw busbw GB/s | djct average us | djct algbw GB/s "
               "| djct busbw GB/s | djct/raw time |\n|---|---|---|---|---|---|---|---|\n");
    }
    double bus = size > 1 ? 2.0 * (size - 1) / size : 0.0;
    char json[8192];
    int jn = snprintf(json, sizeof(json), "{\"ranks\": %d, \"nccl\": %d, \"rows\": [", size, nv);
    for (size_t bytes = (size_t)1 << 20; bytes <= max_bytes; bytes *= 4) {
        c.count = bytes / 4;
        djct_comm_buffer b = {c.dev, c.count, DJCT_DTYPE_FLOAT32, dev};
        djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
        po.bucket_bytes = bucket_bytes;
        if (djct_comm_plan_create(&c.plan, comm, &b, 1, &po) < 0)
            die("plan_create", djct_last_error());
        int n = bytes >= ((size_t)64 << 20) ? (reps / 2 > 3 ? reps / 2 : 3) : reps;
        double tr = time_op(raw, &c, n), td = time_op(djct, &c, n);
        if (rank == 0) {
            printf("| %zu MiB | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", bytes >> 20, tr * 1e6, gbps(bytes, tr),
                   bus * gbps(bytes, tr), td * 1e6, gbps(bytes, td), bus * gbps(bytes, td), td / tr);
            fflush(stdout);
            if (jn > 0 && (size_t)jn < sizeof(json))
                jn += snprintf(json + jn, sizeof(json) - (size_t)jn,
                               "%s{\"bytes\": %zu, \"raw_us\": %.2f, \"djct_us\": %.2f, \"raw_algbw\": %.3f, "
                               "\"djct_algbw\": %.3f, \"raw_busbw\": %.3f, \"djct_busbw\": %.3f}",
                               bytes == ((size_t)1 << 20) ? "" : ", ", bytes, tr * 1e6, td * 1e6, gbps(bytes, tr),
                               gbps(bytes, td), bus * gbps(bytes, tr), bus * gbps(bytes, td));
        }
        djct_comm_plan_free(c.plan);
        c.plan = NULL;
    }
    if (rank == 0 && jn > 0 && (size_t)jn < sizeof(json) - 4)
        printf("%s]}\n", json);
    ncclCommDestroy(c.nccl);
    cudaStreamDestroy(c.stream);
    cudaFree(c.dev);
    djct_comm_free(comm);
    MPI_Finalize();
    return 0;
}

#else /* a build without CUDA/NCCL */

int main(int argc, char **argv)
{
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED) < 0)
        return 1;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0)
        printf("skip: this build has no CUDA/NCCL (configure found no nvcc, nccl.h or libnccl)\n");
    MPI_Finalize();
    return 0;
}

#endif
