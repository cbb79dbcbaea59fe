/* The GPU backend of comm: device choice, NCCL bootstrapped from MPI, device collectives.
 * This file is the module's only CUDA/NCCL boundary: with DJCT_HAVE_CUDA it calls the CUDA
 * runtime and NCCL; without, every entry reports DJCT_ENOTSUP. It always compiles and links; with
 * no GPU present cudaGetDeviceCount fails or returns 0 and the callers stay on MPI. */
#include "comm_int.h"
#include "djct_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DJCT_HAVE_CUDA) && DJCT_HAVE_CUDA
#include <cuda_runtime_api.h>
/* nccl.h declares `f()` prototypes that -Wstrict-prototypes flags; not ours to fix */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop

struct djct_nccl {
    ncclComm_t   comm;
    cudaStream_t stream;
    int          device;
};

#define CUDA_TRY(call)                                                                        \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess)                                                                \
            return djct_error_set(DJCT_ENCCL, "CUDA %s failed: %s", #call, cudaGetErrorString(e_)); \
    } while (0)
#define NCCL_TRY(call)                                                                        \
    do {                                                                                      \
        ncclResult_t r_ = (call);                                                             \
        if (r_ != ncclSuccess)                                                                \
            return djct_error_set(DJCT_ENCCL, "NCCL %s failed: %s", #call, ncclGetErrorString(r_)); \
    } while (0)

int djct_gpu_count(int *count, char *why, size_t why_cap)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    *count = 0;
    if (e != cudaSuccess) {
        snprintf(why, why_cap, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n <= 0) {
        snprintf(why, why_cap, "cudaGetDeviceCount returned 0 devices");
        return 0;
    }
    *count = n;
    why[0] = '\0';
    return 0;
}

int djct_gpu_select(int device)
{
    CUDA_TRY(cudaSetDevice(device));
    return 0;
}

static ncclDataType_t nccl_type(djct_dtype dt)
{
    switch (dt) {
    case DJCT_DTYPE_FLOAT64:  return ncclFloat64;
    case DJCT_DTYPE_FLOAT16:  return ncclFloat16;
    case DJCT_DTYPE_BFLOAT16: return ncclBfloat16;
    case DJCT_DTYPE_INT32:    return ncclInt32;
    case DJCT_DTYPE_INT64:    return ncclInt64;
    default:                  return ncclFloat32;
    }
}

int djct_nccl_create(djct_nccl **out, MPI_Comm mpi, int rank, int size, int device)
{
    /* rank 0 makes the id; its status travels with it so no rank waits on a failed peer */
    struct { int rc; ncclUniqueId id; } msg;
    memset(&msg, 0, sizeof(msg));
    char why[256] = "";
    if (rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&msg.id);
        if (r != ncclSuccess) {
            msg.rc = DJCT_ENCCL;
            snprintf(why, sizeof(why), "%s", ncclGetErrorString(r));
        }
    }
    MPI_Bcast(&msg, (int)sizeof(msg), MPI_BYTE, 0, mpi);
    if (msg.rc)
        return djct_error_set(DJCT_ENCCL, "rank %d: ncclGetUniqueId failed on rank 0%s%s", rank,
                              why[0] ? ": " : "", why);
    djct_nccl *n = calloc(1, sizeof(*n));
    int rc = 0, all = 0;
    if (!n)
        rc = djct_error_oom();
    else {
        n->device = device;
        cudaError_t e = cudaSetDevice(device);
        if (e == cudaSuccess)
            e = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
        if (e != cudaSuccess)
            rc = djct_error_set(DJCT_ENCCL, "rank %d: CUDA device %d: %s", rank, device, cudaGetErrorString(e));
        else {
            ncclResult_t r = ncclCommInitRank(&n->comm, size, msg.id, rank);
            if (r != ncclSuccess) {
                n->comm = NULL;
                rc = djct_error_set(DJCT_ENCCL, "rank %d: ncclCommInitRank on device %d failed: %s",
                                    rank, device, ncclGetErrorString(r));
            }
        }
    }
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, mpi);
    if (all < 0) {
        if (rc == 0)
            rc = djct_error_set(DJCT_ENCCL, "rank %d: NCCL initialisation failed on another rank; see its error", rank);
        djct_nccl_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

void djct_nccl_free(djct_nccl *n)
{
    if (!n)
        return;
    if (n->comm) {
        cudaStreamSynchronize(n->stream);
        ncclCommDestroy(n->comm);
    }
    if (n->stream)
        cudaStreamDestroy(n->stream);
    free(n);
}

int djct_nccl_allreduce(djct_nccl *n, void *buf, size_t count, djct_dtype dt, djct_nccl_op op, double scale)
{
    ncclDataType_t t = nccl_type(dt);
    if (op == DJCT_NCCL_PREMUL) {
        /* ncclRedOpCreatePreMulSum scales while reducing: no separate scaling kernel */
        ncclRedOp_t rop;
        double sd = scale;
        float sf = (float)scale;
        void *sp = dt == DJCT_DTYPE_FLOAT64 ? (void *)&sd : (void *)&sf;
        if (dt == DJCT_DTYPE_FLOAT16 || dt == DJCT_DTYPE_BFLOAT16) {
            /* the scalar must have the reduction's dtype; convert on the host via a float */
            return djct_error_set(DJCT_ENOTSUP, "weighted averaging of %s device buffers is not supported; "
                                  "use float32 gradients or DJCT_COMM_AVERAGE", djct_dtype_name(dt));
        }
        NCCL_TRY(ncclRedOpCreatePreMulSum(&rop, sp, t, ncclScalarHostImmediate, n->comm));
        ncclResult_t r = ncclAllReduce(buf, buf, count, t, rop, n->comm, n->stream);
        ncclRedOpDestroy(rop, n->comm);
        if (r != ncclSuccess)
            return djct_error_set(DJCT_ENCCL, "ncclAllReduce of %zu %s failed: %s", count,
                                  djct_dtype_name(dt), ncclGetErrorString(r));
        return 0;
    }
    NCCL_TRY(ncclAllReduce(buf, buf, count, t, op == DJCT_NCCL_AVG ? ncclAvg : ncclSum, n->comm, n->stream));
    return 0;
}

int djct_nccl_broadcast(djct_nccl *n, void *buf, size_t bytes, int root)
{
    NCCL_TRY(ncclBroadcast(buf, buf, bytes, ncclUint8, root, n->comm, n->stream));
    return djct_nccl_sync(n);
}

int djct_nccl_copy(djct_nccl *n, void *dst, const void *src, size_t bytes)
{
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, n->stream));
    return 0;
}

int djct_nccl_zero(djct_nccl *n, void *dst, size_t bytes)
{
    CUDA_TRY(cudaMemsetAsync(dst, 0, bytes, n->stream));
    return 0;
}

int djct_nccl_record(djct_nccl *n, void **event)
{
    cudaEvent_t e;
    CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    CUDA_TRY(cudaEventRecord(e, n->stream));
    *event = (void *)e;
    return 0;
}

int djct_nccl_query(void *event, int *done)
{
    cudaError_t e = cudaEventQuery((cudaEvent_t)event);
    if (e == cudaErrorNotReady) {
        *done = 0;
        return 0;
    }
    CUDA_TRY(e);
    *done = 1;
    return 0;
}

void djct_nccl_event_free(void *event)
{
    if (event)
        cudaEventDestroy((cudaEvent_t)event);
}

int djct_nccl_sync(djct_nccl *n)
{
    CUDA_TRY(cudaStreamSynchronize(n->stream));
    ncclResult_t async = ncclSuccess;
    NCCL_TRY(ncclCommGetAsyncError(n->comm, &async));
    if (async != ncclSuccess)
        return djct_error_set(DJCT_ENCCL, "NCCL reported an asynchronous error: %s", ncclGetErrorString(async));
    return 0;
}

int djct_dev_malloc(void **p, size_t bytes)
{
    CUDA_TRY(cudaMalloc(p, bytes ? bytes : 1));
    return 0;
}

void djct_dev_free(void *p)
{
    if (p)
        cudaFree(p);
}

int djct_dev_to_host(void *dst, const void *src, size_t bytes)
{
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

#else /* no CUDA in this build */

struct djct_nccl { int unused; };

static int no_cuda(void)
{
    return djct_error_set(DJCT_ENOTSUP, "this libdjct was built without CUDA/NCCL; rebuild with WITH_CUDA=1 "
                          "or use the MPI backend with host buffers");
}
int djct_gpu_count(int *count, char *why, size_t why_cap)
{
    *count = 0;
    snprintf(why, why_cap, "built without CUDA");
    return 0;
}
int djct_gpu_select(int device) { return no_cuda(); }
int djct_nccl_create(djct_nccl **out, MPI_Comm mpi, int rank, int size, int device) { return no_cuda(); }
void djct_nccl_free(djct_nccl *n) { (void)n; }
int djct_nccl_allreduce(djct_nccl *n, void *buf, size_t count, djct_dtype dt, djct_nccl_op op, double scale) { return no_cuda(); }
int djct_nccl_broadcast(djct_nccl *n, void *buf, size_t bytes, int root) { return no_cuda(); }
int djct_nccl_copy(djct_nccl *n, void *dst, const void *src, size_t bytes) { return no_cuda(); }
int djct_nccl_zero(djct_nccl *n, void *dst, size_t bytes) { return no_cuda(); }
int djct_nccl_record(djct_nccl *n, void **event) { return no_cuda(); }
int djct_nccl_query(void *event, int *done) { return no_cuda(); }
void djct_nccl_event_free(void *event) { (void)event; }
int djct_nccl_sync(djct_nccl *n) { return no_cuda(); }
int djct_dev_malloc(void **p, size_t bytes) { return no_cuda(); }
void djct_dev_free(void *p) { (void)p; }
int djct_dev_to_host(void *dst, const void *src, size_t bytes) { return no_cuda(); }

#endif
