/* Internals of the comm module shared within src/: the communicator's body and the helpers its
 * files share (comm.c start-up and topology, comm_watchdog.c, comm_coll.c small collectives,
 * comm_kernels.c element passes, comm_plan.c bucket plans, comm_bcast.c broadcast and consistency
 * check), and the GPU/NCCL backend's plain-C face (src/comm_nccl.c is the only file that includes
 * CUDA or NCCL headers). Only comm_*.c touch the struct's fields. Not installed. */
#ifndef DJCT_COMM_INT_H
#define DJCT_COMM_INT_H

#include <mpi.h>
#include <stdint.h>
#include <time.h>

#include "djct/comm.h"

typedef struct djct_nccl djct_nccl;
typedef struct comm_gpu comm_gpu; /* src/comm_nccl.c */

struct djct_comm {
    MPI_Comm   world;       /* dup of MPI_COMM_WORLD: all djct collectives */
    MPI_Comm   wd;          /* dup: watchdog queries and answers only */
    MPI_Comm   local;       /* ranks sharing this node's memory */
    int        rank, size, lrank, lsize, nnodes, node;
    int        device;      /* -1: CPU */
    int        backend;     /* DJCT_COMM_BACKEND_MPI or _NCCL */
    double     timeout;     /* seconds; 0 off */
    uint64_t   seq;         /* collectives entered so far */
    uint64_t   wait_seq;    /* the number of the collective being waited for (<= seq) */
    const char *what;       /* name of the collective being waited for (the caller's label) */
    size_t     what_index;  /* bucket index etc., SIZE_MAX when none */
    int        broken;      /* a collective timed out: the communicator is unusable */
    char       broken_what[160]; /* ... namely this one ("label (collective #N)") */
    int64_t    wd_out;      /* send buffer of queries and answers (MPI_Isend needs it to live) */
    MPI_Op     sum_div;     /* comm_sum_div_op, for two ranks */
    MPI_Op     wstat;       /* comm_wstat_op: {sum, max, min} of the step's weights */
    MPI_Datatype wstat_t;   /* three doubles */
    timer_t    guard;       /* arms around blocking collectives once every rank arrived */
    uint64_t   arrived_seq; /* collective number known to have every rank: no arrival barrier */
    int        oversubscribed; /* some node runs more ranks than it has CPUs */
    int        guard_made;
    djct_nccl *nccl;
    comm_gpu  *gpu;        /* the bound GPU's stream: NCCL and staged buckets (NULL on CPU) */
    char       gpu_note[192];
    char       host[MPI_MAX_PROCESSOR_NAME];
    char      *report;
};

/* ---- shared helpers (comm.c) --------------------------------------------------------------- */

/** DJCT_EMPI naming the rank, the MPI call and MPI's own message. */
int comm_mpi_err(const djct_comm *c, int rc, const char *call);
#define MPI_TRY(c, call)                                                                     \
    do {                                                                                     \
        int mrc_ = (call);                                                                   \
        if (mrc_ != MPI_SUCCESS)                                                             \
            return comm_mpi_err((c), mrc_, #call);                                           \
    } while (0)

/** All ranks learn whether any rank failed `stage` (collective); a failing rank keeps its own
 *  message, the others name the failing ranks. */
int comm_agree(djct_comm *c, int rc, const char *stage);
/** Local validation of a buffer list; the caller agrees on the verdict across ranks. */
int comm_check_buffers(const djct_comm *c, const djct_comm_buffer *bufs, size_t n, int any_dtype);
/** A hash of (count, dtype, device>=0) of every buffer: the layout every rank must share. */
uint64_t comm_layout_sig(const djct_comm_buffer *bufs, size_t n);
/** Rank 0's signature against everyone's (collective); names the ranks that differ. */
int comm_agree_sig(djct_comm *c, int code, uint64_t mine, const char *what, const char *fix, int *n_diff,
                   int *first_rank);

/* ---- the watchdog (comm_watchdog.c) -------------------------------------------------------- */

/** Number the next collective and name it (`what` must live until the collective is done;
 *  `index` SIZE_MAX when it has none). Fails once the communicator is broken. */
int comm_enter(djct_comm *c, const char *what, size_t index);
/** Wait for requests; with a timeout, poll so the watchdog can act and answer peers. */
int comm_wait_reqs(djct_comm *c, int n, MPI_Request *reqs);
/** 1: run the blocking call now (*rc < 0: the watched arrival failed; return it), 0: take the
 *  watched non-blocking path. Arms the guard timer when it says 1 with a timeout. */
int comm_blocking_now(djct_comm *c, int count, MPI_Datatype t, int *rc);
/** After the blocking call: disarm the guard timer, turn MPI's code into djct's. */
int comm_blocking_done(djct_comm *c, int e, const char *call);

/* ---- collectives on the watched path (comm_coll.c); the caller entered them ---------------- */
int comm_coll_allreduce(djct_comm *c, void *buf, int count, MPI_Datatype t, MPI_Op op);
int comm_coll_bcast(djct_comm *c, void *buf, int count, MPI_Datatype t, int root);
int comm_coll_allgather(djct_comm *c, const void *mine, void *all, int count, MPI_Datatype t);

/* ---- MPI-typed collectives for other modules (comm_coll.c) -----------------------------------
 * For the logging singleton's packed vectors (its own MPI datatype and operator) and key lists.
 * Each is one numbered, watched collective on the comm's duplicate of the world communicator (so
 * the traffic never mixes with the user's), named by `label` in the watchdog's messages (the
 * label must live until the call returns). Without a timeout they are MPI's blocking calls. */

struct djct_comm_request {
    djct_comm   *c;
    int          n;         /* MPI requests in flight; 0: idle */
    int          cap;       /* the comm's size: a root's sends of a point-to-point broadcast */
    MPI_Request *reqs;
    uint64_t     seq;       /* the collective's number */
    char         label[96]; /* a copy: the wait comes after the caller's string may be gone */
};

/** In place on every rank. */
int djct_comm_mpi_allreduce(djct_comm *c, void *buf, int count, MPI_Datatype t, MPI_Op op, const char *label);
/** In place at `root`; elsewhere `buf` is only sent. The ranks that are not the root may return
 *  before the root arrives, as with MPI_Reduce: no arrival barrier at any size. */
int djct_comm_mpi_reduce(djct_comm *c, void *buf, int count, MPI_Datatype t, MPI_Op op, int root, const char *label);
int djct_comm_mpi_bcast(djct_comm *c, void *buf, int count, MPI_Datatype t, int root, const char *label);
int djct_comm_mpi_allgather(djct_comm *c, const void *mine, void *all, int count, MPI_Datatype t, const char *label);
int djct_comm_mpi_allgatherv(djct_comm *c, const void *mine, int count, void *all, const int *counts, const int *displs,
                             MPI_Datatype t, const char *label);
/** Start a broadcast from `root`, completed by djct_comm_wait(req). With at most `p2p_max` ranks
 *  the root sends to each rank point to point (a few bytes: cheaper than a non-blocking
 *  collective's schedule), else MPI_Ibcast. Every rank must pass the same p2p_max. */
int djct_comm_mpi_ibcast(djct_comm_request *req, void *buf, int count, MPI_Datatype t, int root, int p2p_max,
                         const char *label);

/** A comm over any MPI communicator for a module that was given none (a standalone logging
 *  singleton): a duplicate of `base`, no GPU, no watchdog, no topology (one node). Collective
 *  over `base`. Release it with djct_comm_free(). */
int djct_comm_create_on(djct_comm **out, MPI_Comm base);

/* ---- element passes (comm_kernels.c) ------------------------------------------------------- */

/** x[i] *= w (0 writes zeros), x[i] /= d (correctly rounded), in the reduction dtype. */
void comm_scale_mul(void *x, size_t n, djct_dtype rt, double w);
void comm_scale_div(void *x, size_t n, djct_dtype rt, double d);
/** dst (reduction dtype) = src (buffer dtype `st`) * w; w == 0 writes zeros. */
void comm_pack_seg(void *dst, const void *src, size_t n, djct_dtype st, double w);
/** dst (buffer dtype `dt`) = src (reduction dtype) / div; src may be scaled in place. */
void comm_unpack_seg(void *dst, void *src, size_t n, djct_dtype dt, double div);
/** The MPI operator (a + b) / d for two ranks, with d set by comm_sum_div_set() on the calling
 *  thread just before a reduction that completes before it returns. */
void comm_sum_div_op(void *in, void *inout, int *len, MPI_Datatype *dt);
void comm_sum_div_set(double d);
/** The MPI operator of the step's weights: {sum, max, min} per element of three doubles. */
void comm_wstat_op(void *in, void *inout, int *len, MPI_Datatype *dt);

/* ---- the device side (src/comm_nccl.c) ---------------------------------------------------------
 * comm_gpu: this rank's bound GPU and comm's own non-blocking stream. Every device operation of comm
 * goes through it, on that stream, in the order issued; the host touches device memory only through
 * these calls. A host stand-in (comm_test_fake_gpu) keeps the same contract on host memory: its
 * copies and fills are queued and run only when an event recorded after them is found complete (a
 * set number of queries later), or at a synchronisation, so code that reads a staged copy before
 * its event completed reads stale bytes in the tests too. Errors name the call, the device and the
 * rank. */
/** Visible CUDA devices. Returns 0 with *count = 0 and a reason in `why` when there is none
 *  (no driver, no device, CUDA not compiled in). */
int djct_gpu_count(int *count, char *why, size_t why_cap);
/** cudaSetDevice; DJCT_ENCCL on failure. */
int djct_gpu_select(int device);
/** The device's UUID as nvidia-smi shows it ("GPU-" and 32 hex digits in 5 groups). */
int comm_gpu_uuid(const comm_gpu *g, char *out, size_t cap);

/** comm's device side on `device` (current on the calling thread): a non-blocking stream. */
int comm_gpu_create(comm_gpu **out, int device, int rank);
/** The host stand-in (tests only): events complete after `delay` queries (>= 1). */
int comm_gpu_create_fake(comm_gpu **out, int device, int rank, int delay);
/** Synchronises the stream first. NULL is fine. */
void comm_gpu_free(comm_gpu *g);
int comm_gpu_is_fake(const comm_gpu *g);
/** comm's stream (cudaStream_t), NULL for the stand-in. */
void *comm_gpu_stream(const comm_gpu *g);

/** Stream-ordered copy in any direction (host memory in the copies must be pinned to overlap) and
 *  zero fill, on comm's stream. */
int comm_gpu_copy(comm_gpu *g, void *dst, const void *src, size_t bytes);
int comm_gpu_zero(comm_gpu *g, void *dst, size_t bytes);
/** Events: created once, recorded many times (each record replaces the last). `stream` NULL is
 *  comm's stream, else a producer's cudaStream_t. */
int comm_gpu_event_create(comm_gpu *g, void **ev);
void comm_gpu_event_free(comm_gpu *g, void *ev);
int comm_gpu_record(comm_gpu *g, void *ev, void *stream);
int comm_gpu_query(comm_gpu *g, void *ev, int *done);
/** The host waits for the event. */
int comm_gpu_event_sync(comm_gpu *g, void *ev);
/** `stream` (NULL: comm's) waits for the event on the device; the host does not wait. */
int comm_gpu_stream_wait(comm_gpu *g, void *stream, void *ev);
/** The host waits for comm's stream / for every stream of the device. */
int comm_gpu_sync(comm_gpu *g);
int comm_gpu_device_sync(comm_gpu *g);
/** Pinned host memory (page-locked: asynchronous copies), device memory. */
int comm_gpu_host_alloc(comm_gpu *g, void **p, size_t bytes);
void comm_gpu_host_free(comm_gpu *g, void *p);
int comm_gpu_dev_alloc(comm_gpu *g, void **p, size_t bytes);
void comm_gpu_dev_free(comm_gpu *g, void *p);

/** Bootstrap NCCL from MPI (collective over `mpi`): rank 0 ncclGetUniqueId, MPI_Bcast, then
 *  ncclCommInitRank on g's device; it reduces on g's stream. Every rank returns the same verdict. */
int djct_nccl_create(djct_nccl **out, MPI_Comm mpi, int rank, int size, comm_gpu *g);
void djct_nccl_free(djct_nccl *n);

typedef enum { DJCT_NCCL_SUM = 0, DJCT_NCCL_AVG = 1, DJCT_NCCL_PREMUL = 2 } djct_nccl_op;
/** In-place allreduce on comm's stream; PREMUL multiplies each rank's input by `scale`. */
int djct_nccl_allreduce(djct_nccl *n, void *buf, size_t count, djct_dtype dt, djct_nccl_op op, double scale);
/** In-place broadcast of bytes on comm's stream (the caller synchronises). */
int djct_nccl_broadcast(djct_nccl *n, void *buf, size_t bytes, int root);
/** An error NCCL found asynchronously (a peer failed, a network error); 0 when none. */
int djct_nccl_check(djct_nccl *n);

/* ---- ranks and GPUs (comm.c) ------------------------------------------------------------------ */

/** What each rank of a NCCL communicator reports about its GPU (gathered over MPI). */
typedef struct {
    char host[64];
    char uuid[48]; /* comm_gpu_uuid */
    int  device;   /* the index this rank uses (its own CUDA_VISIBLE_DEVICES numbering) */
} comm_gpu_id;
/** Two ranks on one physical GPU (same host, same UUID: indices differ when each rank has its own
 *  CUDA_VISIBLE_DEVICES): 1 with the one-line message naming the first pair in `msg`, else 0. */
int comm_shared_gpu(const comm_gpu_id *ids, int n, char *msg, size_t cap);

/** Tests only, on every rank: give an MPI-backend comm a host stand-in for a GPU with index
 *  `device` (comm_gpu_create_fake), so device buffers (host memory declared with that device)
 *  take the staged path. Not collective; call before creating plans. */
int comm_test_fake_gpu(djct_comm *c, int device, int delay);

#endif /* DJCT_COMM_INT_H */
