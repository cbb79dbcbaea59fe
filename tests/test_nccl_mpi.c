/* comm's NCCL backend on real GPUs: the communicator bootstrapped from MPI (rank 0's unique id
 * broadcast), then sum, average, weighted average and broadcast of device buffers (float32 over
 * several buckets, one float64 buffer), blocking and bucket by bucket, checked element by element
 * against the known answer on the host. Needs one GPU per rank on each node; where that is not so
 * (no GPU, a CPU-only build, more ranks than GPUs) every rank prints `skip:` and checks nothing.
 * scripts/gpu_check.sh runs it with one rank (a communicator of one on a one-GPU machine). */
#define HARNESS_MPI
#include "harness.h"

#include <math.h>

#if defined(DJCT_HAVE_CUDA) && DJCT_HAVE_CUDA
#include <cuda_runtime_api.h>

static int rank, size;

/* integer-valued data, different on each rank and element: every sum and mean below is exact */
static double val(int r, size_t i) { return (double)(r + 1) * (double)((long)(i % 13) - 6); }

enum { NF = (1 << 18) + 3, ND = 1001 }; /* float32 elements over several 256 KiB buckets; float64 */

typedef struct {
    float *f;  /* device */
    double *d; /* device */
    float *hf;
    double *hd;
} bufs;

static int upload(bufs *b, int r)
{
    for (size_t i = 0; i < NF; i++)
        b->hf[i] = (float)val(r, i);
    for (size_t i = 0; i < ND; i++)
        b->hd[i] = val(r, i + 5);
    return cudaMemcpy(b->f, b->hf, NF * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess ||
           cudaMemcpy(b->d, b->hd, ND * sizeof(double), cudaMemcpyHostToDevice) != cudaSuccess;
}

static int download(bufs *b)
{
    return cudaMemcpy(b->hf, b->f, NF * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess ||
           cudaMemcpy(b->hd, b->d, ND * sizeof(double), cudaMemcpyDeviceToHost) != cudaSuccess;
}

/* the expected value of element i after `op`: sum, mean, or sum_r w_r x_r / sum_r w_r with w_r = r+1 */
static double expect(djct_comm_op op, size_t i)
{
    double s = 0, ws = 0;
    for (int r = 0; r < size; r++) {
        double w = op == DJCT_COMM_WEIGHTED ? r + 1 : 1;
        s += w * val(r, i);
        ws += w;
    }
    return op == DJCT_COMM_SUM ? s : s / ws;
}

/* first element that differs from the known answer, or -1 */
static long first_wrong(bufs *b, djct_comm_op op)
{
    for (size_t i = 0; i < NF; i++)
        if (fabs((double)b->hf[i] - expect(op, i)) > 1e-5 * (1 + fabs(expect(op, i))))
            return (long)i;
    for (size_t i = 0; i < ND; i++)
        if (fabs(b->hd[i] - expect(op, i + 5)) > 1e-12 * (1 + fabs(expect(op, i + 5))))
            return (long)(NF + i);
    return -1;
}

static void test_reductions(djct_comm *c, bufs *b, int dev)
{
    djct_comm_buffer list[2] = {{b->f, NF, DJCT_DTYPE_FLOAT32, dev}, {b->d, ND, DJCT_DTYPE_FLOAT64, dev}};
    djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
    po.bucket_bytes = (size_t)256 << 10;
    djct_comm_plan *p = NULL;
    CHECK_OK(djct_comm_plan_create(&p, c, list, 2, &po));
    if (!p)
        return;
    CHECK(djct_comm_plan_bucket_count(p) >= 4);
    const djct_comm_op ops[3] = {DJCT_COMM_SUM, DJCT_COMM_AVERAGE, DJCT_COMM_WEIGHTED};
    for (int k = 0; k < 3; k++)
        for (int nonblocking = 0; nonblocking < 2; nonblocking++) {
            CHECK(upload(b, rank) == 0);
            double w = rank + 1;
            if (!nonblocking)
                CHECK_OK(djct_comm_plan_reduce(p, ops[k], w));
            else {
                /* the backward pass's order: the last buffer is ready first */
                CHECK_OK(djct_comm_plan_start(p, ops[k], w));
                CHECK_OK(djct_comm_plan_mark_ready(p, 1));
                CHECK_OK(djct_comm_plan_mark_ready(p, 0));
                CHECK_OK(djct_comm_plan_finish(p));
            }
            CHECK(download(b) == 0);
            long bad = first_wrong(b, ops[k]);
            if (bad >= 0)
                fprintf(stderr, "rank %d: op %d %s: element %ld wrong\n", rank, (int)ops[k],
                        nonblocking ? "bucket by bucket" : "blocking", bad);
            CHECK(bad < 0);
        }
    djct_comm_plan_free(p);
}

static void test_broadcast(djct_comm *c, bufs *b, int dev)
{
    CHECK(upload(b, rank) == 0);
    djct_comm_buffer list[2] = {{b->f, NF, DJCT_DTYPE_FLOAT32, dev}, {b->d, ND, DJCT_DTYPE_FLOAT64, dev}};
    int root = size - 1;
    CHECK_OK(djct_comm_broadcast(c, list, 2, root));
    CHECK(download(b) == 0);
    long bad = -1;
    for (size_t i = 0; i < NF && bad < 0; i++)
        if (b->hf[i] != (float)val(root, i))
            bad = (long)i;
    for (size_t i = 0; i < ND && bad < 0; i++)
        if (b->hd[i] != val(root, i + 5))
            bad = (long)(NF + i);
    CHECK(bad < 0);
}

int main(int argc, char **argv)
{
    CHECK_OK(djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED));
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* one GPU per rank on every node, or nothing to test: all ranks decide alike */
    MPI_Comm node;
    int local = 0, gpus = 0, enough = 0, all = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    if (cudaGetDeviceCount(&gpus) != cudaSuccess)
        gpus = 0;
    enough = gpus >= local;
    MPI_Allreduce(&enough, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) {
        char why[160];
        snprintf(why, sizeof(why), "NCCL needs one GPU per rank: a node runs %d ranks, rank %d sees %d GPUs",
                 local, rank, gpus);
        if (rank == 0) /* one line for all ranks */
            harness_skip(why);
        return harness_report_mpi();
    }
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.backend = DJCT_COMM_BACKEND_NCCL;
    djct_comm *c = NULL;
    CHECK_OK(djct_comm_create(&c, &o));
    if (!c)
        return harness_report_mpi();
    int dev = djct_comm_device(c);
    CHECK(djct_comm_backend_in_use(c) == DJCT_COMM_BACKEND_NCCL);
    CHECK(dev >= 0 && dev < gpus);
    const char *report = NULL;
    CHECK_OK(djct_comm_startup_report(c, &report));
    if (rank == 0 && report) {
        CHECK(strstr(report, "NCCL") != NULL);
        printf("%s", report);
    }
    bufs b = {NULL, NULL, malloc(NF * sizeof(float)), malloc(ND * sizeof(double))};
    CHECK(cudaMalloc((void **)&b.f, NF * sizeof(float)) == cudaSuccess);
    CHECK(cudaMalloc((void **)&b.d, ND * sizeof(double)) == cudaSuccess);
    if (b.f && b.d && b.hf && b.hd) {
        test_reductions(c, &b, dev);
        test_broadcast(c, &b, dev);
    }
    cudaFree(b.f);
    cudaFree(b.d);
    free(b.hf);
    free(b.hd);
    djct_comm_free(c);
    return harness_report_mpi();
}

#else /* a build without CUDA/NCCL */

int main(int argc, char **argv)
{
    CHECK_OK(djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED));
    harness_skip("this build has no CUDA/NCCL (configure found no nvcc, nccl.h or libnccl)");
    return harness_report_mpi();
}

#endif
