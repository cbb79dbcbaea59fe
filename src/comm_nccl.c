/* The device side of comm: device choice, comm's stream with its copies and events, pinned host
 * memory, NCCL bootstrapped from MPI, device collectives. This file is the module's only CUDA/NCCL
 * boundary: with DJCT_HAVE_CUDA it calls the CUDA runtime and NCCL; without, every CUDA entry
 * reports DJCT_ENOTSUP. It always compiles and links; with no GPU present cudaGetDeviceCount fails
 * or returns 0 and the callers stay on the CPU. The host stand-in for tests (a queue of deferred
 * memcpy's and counting events) is plain C and exists in every build. */
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
#define HAVE_CUDA 1
#else
#define HAVE_CUDA 0
#endif

/* ---- the host stand-in's queue ---------------------------------------------------------------- */

typedef struct {
    int      left;  /* queries until it reports completion */
    int      done;
    unsigned gen;   /* recordings so far: a marker completes only the latest one */
} fake_event;

typedef struct {
    int         kind; /* 0 copy, 1 zero, 2 event marker */
    void       *dst;
    const void *src;
    size_t      bytes;
    fake_event *ev;
    unsigned    gen;
} fake_op;

struct comm_gpu {
    int   device, rank;
    int   fake, delay;
    void *stream; /* cudaStream_t */
    fake_op *q;   /* the stand-in's stream: work not yet run */
    size_t   nq, capq;
};

static int fake_push(comm_gpu *g, fake_op op)
{
    if (g->nq == g->capq) {
        size_t nc = g->capq ? 2 * g->capq : 64;
        fake_op *nq = realloc(g->q, nc * sizeof(*nq));
        if (!nq)
            return djct_error_oom();
        g->q = nq;
        g->capq = nc;
    }
    g->q[g->nq++] = op;
    return 0;
}

/* run the queued work up to and including the latest marker of `ev` (all of it when ev is NULL) */
static void fake_run(comm_gpu *g, const fake_event *ev)
{
    size_t end = g->nq;
    if (ev) {
        end = 0;
        for (size_t i = g->nq; i > 0; i--)
            if (g->q[i - 1].kind == 2 && g->q[i - 1].ev == ev) {
                end = i;
                break;
            }
    }
    for (size_t i = 0; i < end; i++) {
        fake_op *o = &g->q[i];
        if (o->kind == 0)
            memmove(o->dst, o->src, o->bytes);
        else if (o->kind == 1)
            memset(o->dst, 0, o->bytes);
        else if (o->gen == o->ev->gen)
            o->ev->done = 1;
    }
    memmove(g->q, g->q + end, (g->nq - end) * sizeof(*g->q));
    g->nq -= end;
}

int comm_gpu_create_fake(comm_gpu **out, int device, int rank, int delay)
{
    comm_gpu *g = calloc(1, sizeof(*g));
    if (!g)
        return djct_error_oom();
    g->device = device;
    g->rank = rank;
    g->fake = 1;
    g->delay = delay < 1 ? 1 : delay;
    *out = g;
    return 0;
}

int comm_gpu_is_fake(const comm_gpu *g) { return g && g->fake; }
void *comm_gpu_stream(const comm_gpu *g) { return g && !g->fake ? g->stream : NULL; }

#if HAVE_CUDA
/* "rank 3: CUDA device 1: cudaMemcpyAsync failed: invalid argument" (the call up to its '(') */
static int gpu_err(const comm_gpu *g, const char *call, cudaError_t e)
{
    return djct_error_set(DJCT_ENCCL, "rank %d: CUDA device %d: %.*s failed: %s", g ? g->rank : -1,
                          g ? g->device : -1, (int)strcspn(call, "("), call, cudaGetErrorString(e));
}
#define GPU_TRY(g, call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess)                                                               \
            return gpu_err((g), #call, e_);                                                  \
    } while (0)
#define STREAM(g, s) ((cudaStream_t)((s) ? (s) : (g)->stream))
/* the CUDA part of a function, or its refusal in a build without CUDA */
#define CUDA_ONLY(...) __VA_ARGS__
#else
static int no_cuda(void)
{
    return djct_error_set(DJCT_ENOTSUP, "this libdjct was built without CUDA/NCCL; rebuild with WITH_CUDA=1 "
                          "or use the MPI backend with host buffers");
}
#define CUDA_ONLY(...) return no_cuda();
#endif

int djct_gpu_count(int *count, char *why, size_t why_cap)
{
    *count = 0;
#if HAVE_CUDA
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
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
#else
    snprintf(why, why_cap, "built without CUDA");
#endif
    return 0;
}

int djct_gpu_select(int device)
{
    CUDA_ONLY({
        cudaError_t e = cudaSetDevice(device);
        if (e != cudaSuccess)
            return djct_error_set(DJCT_ENCCL, "CUDA device %d: cudaSetDevice failed: %s", device, cudaGetErrorString(e));
        return 0;
    })
}

int comm_gpu_uuid(const comm_gpu *g, char *out, size_t cap)
{
    if (g->fake) {
        snprintf(out, cap, "GPU-fake-%d", g->device);
        return 0;
    }
    CUDA_ONLY({
        struct cudaDeviceProp prop;
        GPU_TRY(g, cudaGetDeviceProperties(&prop, g->device));
        const unsigned char *u = (const unsigned char *)prop.uuid.bytes;
        snprintf(out, cap, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
        return 0;
    })
}

int comm_gpu_create(comm_gpu **out, int device, int rank)
{
    CUDA_ONLY({
        comm_gpu *g = calloc(1, sizeof(*g));
        if (!g)
            return djct_error_oom();
        g->device = device;
        g->rank = rank;
        cudaStream_t s = NULL;
        cudaError_t e = cudaSetDevice(device);
        if (e == cudaSuccess)
            e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        if (e != cudaSuccess) {
            int rc = gpu_err(g, "cudaStreamCreateWithFlags", e);
            free(g);
            return rc;
        }
        g->stream = s;
        *out = g;
        return 0;
    })
}

void comm_gpu_free(comm_gpu *g)
{
    if (!g)
        return;
    if (g->fake)
        fake_run(g, NULL);
#if HAVE_CUDA
    else if (g->stream) {
        cudaStreamSynchronize((cudaStream_t)g->stream);
        cudaStreamDestroy((cudaStream_t)g->stream);
    }
#endif
    free(g->q);
    free(g);
}

int comm_gpu_copy(comm_gpu *g, void *dst, const void *src, size_t bytes)
{
    if (g->fake)
        return fake_push(g, (fake_op){0, dst, src, bytes, NULL, 0});
    CUDA_ONLY({
        GPU_TRY(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, (cudaStream_t)g->stream));
        return 0;
    })
}

int comm_gpu_zero(comm_gpu *g, void *dst, size_t bytes)
{
    if (g->fake)
        return fake_push(g, (fake_op){1, dst, NULL, bytes, NULL, 0});
    CUDA_ONLY({
        GPU_TRY(g, cudaMemsetAsync(dst, 0, bytes, (cudaStream_t)g->stream));
        return 0;
    })
}

int comm_gpu_event_create(comm_gpu *g, void **ev)
{
    *ev = NULL;
    if (g->fake) {
        fake_event *f = calloc(1, sizeof(*f));
        if (!f)
            return djct_error_oom();
        f->done = 1; /* never recorded: complete, as a fresh CUDA event */
        *ev = f;
        return 0;
    }
    CUDA_ONLY({
        cudaEvent_t e;
        GPU_TRY(g, cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        *ev = (void *)e;
        return 0;
    })
}

void comm_gpu_event_free(comm_gpu *g, void *ev)
{
    if (!ev)
        return;
    if (g->fake) {
        fake_run(g, ev); /* no marker may outlive its event */
        free(ev);
    }
#if HAVE_CUDA
    else
        cudaEventDestroy((cudaEvent_t)ev);
#endif
}

int comm_gpu_record(comm_gpu *g, void *ev, void *stream)
{
    if (g->fake) {
        fake_event *f = ev;
        f->gen++;
        if (stream) { /* a producer stream: in the tests the producer is the host, already done */
            f->done = 1;
            return 0;
        }
        f->done = 0;
        f->left = g->delay;
        return fake_push(g, (fake_op){2, NULL, NULL, 0, f, f->gen});
    }
    CUDA_ONLY({
        GPU_TRY(g, cudaEventRecord((cudaEvent_t)ev, STREAM(g, stream)));
        return 0;
    })
}

int comm_gpu_query(comm_gpu *g, void *ev, int *done)
{
    *done = 0;
    if (g->fake) {
        fake_event *f = ev;
        if (!f->done && --f->left <= 0)
            fake_run(g, f);
        *done = f->done;
        return 0;
    }
    CUDA_ONLY({
        cudaError_t e = cudaEventQuery((cudaEvent_t)ev);
        if (e == cudaErrorNotReady)
            return 0;
        GPU_TRY(g, e);
        *done = 1;
        return 0;
    })
}

int comm_gpu_event_sync(comm_gpu *g, void *ev)
{
    if (g->fake) {
        fake_run(g, ev);
        return 0;
    }
    CUDA_ONLY({
        GPU_TRY(g, cudaEventSynchronize((cudaEvent_t)ev));
        return 0;
    })
}

int comm_gpu_stream_wait(comm_gpu *g, void *stream, void *ev)
{
    if (g->fake) {
        if (stream) /* the producer is the host: it waits */
            fake_run(g, ev);
        return 0; /* comm's own stream waiting: one queue, already in order */
    }
    CUDA_ONLY({
        GPU_TRY(g, cudaStreamWaitEvent(STREAM(g, stream), (cudaEvent_t)ev, 0));
        return 0;
    })
}

int comm_gpu_sync(comm_gpu *g)
{
    if (g->fake) {
        fake_run(g, NULL);
        return 0;
    }
    CUDA_ONLY({
        GPU_TRY(g, cudaStreamSynchronize((cudaStream_t)g->stream));
        return 0;
    })
}

int comm_gpu_device_sync(comm_gpu *g)
{
    if (g->fake) {
        fake_run(g, NULL);
        return 0;
    }
    CUDA_ONLY({
        GPU_TRY(g, cudaSetDevice(g->device));
        GPU_TRY(g, cudaDeviceSynchronize());
        return 0;
    })
}

/* pinned host memory (pinned != 0) or device memory; the stand-in takes both from the heap */
static int gpu_alloc(comm_gpu *g, void **p, size_t bytes, int pinned)
{
    *p = NULL;
    if (g->fake)
        return (*p = calloc(1, bytes ? bytes : 1)) ? 0 : djct_error_oom();
    CUDA_ONLY({
        if (pinned)
            GPU_TRY(g, cudaHostAlloc(p, bytes ? bytes : 1, cudaHostAllocDefault));
        else
            GPU_TRY(g, cudaMalloc(p, bytes ? bytes : 1));
        return 0;
    })
}

static void gpu_free(comm_gpu *g, void *p, int pinned)
{
    if (!p)
        return;
    if (g->fake)
        free(p);
#if HAVE_CUDA
    else if (pinned)
        cudaFreeHost(p);
    else
        cudaFree(p);
#endif
}

int comm_gpu_host_alloc(comm_gpu *g, void **p, size_t bytes) { return gpu_alloc(g, p, bytes, 1); }
void comm_gpu_host_free(comm_gpu *g, void *p) { gpu_free(g, p, 1); }
int comm_gpu_dev_alloc(comm_gpu *g, void **p, size_t bytes) { return gpu_alloc(g, p, bytes, 0); }
void comm_gpu_dev_free(comm_gpu *g, void *p) { gpu_free(g, p, 0); }

/* ---- NCCL ---------------------------------------------------------------------------------------- */

#if HAVE_CUDA

struct djct_nccl {
    ncclComm_t comm;
    comm_gpu  *gpu; /* borrowed from the comm: its stream */
};

static int nccl_err(const djct_nccl *n, const char *call, ncclResult_t r)
{
    return djct_error_set(DJCT_ENCCL, "rank %d: CUDA device %d: %s failed: %s", n->gpu->rank, n->gpu->device, call,
                          ncclGetErrorString(r));
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

int djct_nccl_create(djct_nccl **out, MPI_Comm mpi, int rank, int size, comm_gpu *g)
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
    else if (!g || g->fake)
        rc = djct_error_set(DJCT_ENCCL, "rank %d: NCCL needs a CUDA device", rank);
    else {
        n->gpu = g;
        cudaError_t e = cudaSetDevice(g->device);
        if (e != cudaSuccess)
            rc = gpu_err(g, "cudaSetDevice", e);
        else {
            ncclResult_t r = ncclCommInitRank(&n->comm, size, msg.id, rank);
            if (r != ncclSuccess) {
                n->comm = NULL;
                rc = nccl_err(n, "ncclCommInitRank", r);
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
        cudaStreamSynchronize((cudaStream_t)n->gpu->stream);
        ncclCommDestroy(n->comm);
    }
    free(n);
}

int djct_nccl_allreduce(djct_nccl *n, void *buf, size_t count, djct_dtype dt, djct_nccl_op op, double scale)
{
    ncclDataType_t t = nccl_type(dt);
    cudaStream_t s = (cudaStream_t)n->gpu->stream;
    ncclResult_t r;
    if (op == DJCT_NCCL_PREMUL) {
        /* ncclRedOpCreatePreMulSum scales while reducing: no separate scaling kernel */
        if (dt == DJCT_DTYPE_FLOAT16 || dt == DJCT_DTYPE_BFLOAT16)
            return djct_error_set(DJCT_ENOTSUP, "rank %d: weighted averaging of %s device buffers is not supported; "
                                  "use float32 gradients or DJCT_COMM_AVERAGE", n->gpu->rank, djct_dtype_name(dt));
        ncclRedOp_t rop;
        double sd = scale;
        float sf = (float)scale;
        void *sp = dt == DJCT_DTYPE_FLOAT64 ? (void *)&sd : (void *)&sf;
        if ((r = ncclRedOpCreatePreMulSum(&rop, sp, t, ncclScalarHostImmediate, n->comm)) != ncclSuccess)
            return nccl_err(n, "ncclRedOpCreatePreMulSum", r);
        r = ncclAllReduce(buf, buf, count, t, rop, n->comm, s);
        ncclRedOpDestroy(rop, n->comm);
    } else
        r = ncclAllReduce(buf, buf, count, t, op == DJCT_NCCL_AVG ? ncclAvg : ncclSum, n->comm, s);
    if (r != ncclSuccess)
        return nccl_err(n, "ncclAllReduce", r);
    return 0;
}

int djct_nccl_broadcast(djct_nccl *n, void *buf, size_t bytes, int root)
{
    ncclResult_t r = ncclBroadcast(buf, buf, bytes, ncclUint8, root, n->comm, (cudaStream_t)n->gpu->stream);
    return r == ncclSuccess ? 0 : nccl_err(n, "ncclBroadcast", r);
}

int djct_nccl_check(djct_nccl *n)
{
    ncclResult_t async = ncclSuccess, r = ncclCommGetAsyncError(n->comm, &async);
    if (r != ncclSuccess)
        return nccl_err(n, "ncclCommGetAsyncError", r);
    if (async != ncclSuccess)
        return nccl_err(n, "an earlier NCCL operation (asynchronous error)", async);
    return 0;
}

#else /* no CUDA in this build */

struct djct_nccl { int unused; };
int djct_nccl_create(djct_nccl **out, MPI_Comm mpi, int rank, int size, comm_gpu *g) { return no_cuda(); }
void djct_nccl_free(djct_nccl *n) { (void)n; }
int djct_nccl_allreduce(djct_nccl *n, void *buf, size_t count, djct_dtype dt, djct_nccl_op op, double scale) { return no_cuda(); }
int djct_nccl_broadcast(djct_nccl *n, void *buf, size_t bytes, int root) { return no_cuda(); }
int djct_nccl_check(djct_nccl *n) { return no_cuda(); }

#endif
