/* comm: the MPI runtime of djct. Ranks and node-local ranks from MPI (never from launcher
 * variables), GPU choice, a NCCL communicator bootstrapped from MPI, bucketed (weighted) gradient
 * averaging over plain (pointer, count, dtype, device) lists, parameter broadcast, a cross-rank
 * consistency check, a collective watchdog and an abort helper for apps.
 * comm knows no tensors. Every function marked "collective" must be called by all ranks of the
 * communicator in the same order. Thread safety: a djct_comm and its plans are used by one thread
 * at a time; djct needs MPI_THREAD_FUNNELED (all comm calls from the thread that initialised MPI)
 * or MPI_THREAD_SERIALIZED (calls from several threads, never at once). */
#ifndef DJCT_COMM_H
#define DJCT_COMM_H

#include "array.h"
#include "common.h"

DJCT_BEGIN_DECLS

typedef struct djct_comm djct_comm;           /* one communicator; body in src/comm.c */
typedef struct djct_comm_plan djct_comm_plan; /* a bucket plan over a fixed buffer list */

/** MPI thread levels, in MPI's order (djct maps them to the MPI constants). */
typedef enum {
    DJCT_THREAD_SINGLE     = 0,
    DJCT_THREAD_FUNNELED   = 1,
    DJCT_THREAD_SERIALIZED = 2,
    DJCT_THREAD_MULTIPLE   = 3
} djct_thread_level;

/** Which library reduces. AUTO: NCCL when this rank is bound to a GPU, else MPI. */
typedef enum {
    DJCT_COMM_BACKEND_AUTO = 0,
    DJCT_COMM_BACKEND_MPI  = 1, /* host memory only */
    DJCT_COMM_BACKEND_NCCL = 2  /* device memory (host buffers still go through MPI) */
} djct_comm_backend;

/** Device choice values for djct_comm_options.device. */
#define DJCT_COMM_DEVICE_AUTO (-1) /* local_rank % visible device count; CPU when none */
#define DJCT_COMM_DEVICE_NONE (-2) /* never touch CUDA: CPU only */

typedef struct {
    unsigned int version;         /* always first; filled in by the _INIT macro */
    int          device;          /* DJCT_COMM_DEVICE_AUTO, _NONE, or a CUDA device index */
    int          backend;         /* djct_comm_backend */
    double       timeout_seconds; /* watchdog: a collective not done after this long fails with
                                     DJCT_ETIMEOUT naming the ranks that did not arrive; 0: off */
} djct_comm_options;
#define DJCT_COMM_OPTIONS_VERSION 1
#define DJCT_COMM_OPTIONS_INIT { DJCT_COMM_OPTIONS_VERSION, DJCT_COMM_DEVICE_AUTO, DJCT_COMM_BACKEND_AUTO, 0.0 }

/** Initialise MPI for an app: MPI_Init_thread with `required_level` (a djct_thread_level), then
 *  check the level MPI provides. Does nothing but the check when MPI is already initialised.
 *  @return 0; DJCT_EMPI when MPI_Init_thread fails; DJCT_ENOTSUP when MPI provides less than
 *  `required_level` (the message names both levels). */
DJCT_API int djct_comm_init_mpi(int *argc, char ***argv, int required_level);

/** Finalise MPI if it is initialised and not yet finalised (apps; after freeing every comm). */
DJCT_API void djct_comm_finalize_mpi(void);

/** Join all ranks of MPI_COMM_WORLD (collective; call after MPI_Init/djct_comm_init_mpi).
 *  Learns world rank/size, node-local rank/size (MPI_Comm_split_type SHARED) and the node count,
 *  binds a GPU when CUDA sees one (see djct_comm_options.device) and, for the NCCL backend, builds
 *  the NCCL communicator (rank 0 ncclGetUniqueId, MPI_Bcast, ncclCommInitRank). `opts` may be NULL.
 *  On success *out is yours; release it with djct_comm_free().
 *  @return 0; DJCT_EINVAL (MPI not initialised, bad option); DJCT_ENOTSUP (NCCL asked for but a rank
 *  sees no GPU: all ranks fail alike, an MPI comm can still be created); DJCT_ENCCL; DJCT_EMPI. */
DJCT_API int djct_comm_create(djct_comm **out, const djct_comm_options *opts);

/** Tear down NCCL and the duplicated MPI communicators (collective). NULL is fine. */
DJCT_API void djct_comm_free(djct_comm *comm);

/** World rank and size. Cannot fail. */
DJCT_API int djct_comm_rank(const djct_comm *comm);
DJCT_API int djct_comm_size(const djct_comm *comm);
/** Rank among the ranks sharing this node's memory, and how many they are. */
DJCT_API int djct_comm_local_rank(const djct_comm *comm);
DJCT_API int djct_comm_local_size(const djct_comm *comm);
/** Number of nodes, and this rank's node index (0..nodes-1, ordered by lowest world rank). */
DJCT_API int djct_comm_node_count(const djct_comm *comm);
DJCT_API int djct_comm_node_index(const djct_comm *comm);
/** The CUDA device this rank uses, or -1 when it runs on the CPU. */
DJCT_API int djct_comm_device(const djct_comm *comm);
/** The backend that reduces device buffers: DJCT_COMM_BACKEND_NCCL or DJCT_COMM_BACKEND_MPI. */
DJCT_API int djct_comm_backend_in_use(const djct_comm *comm);

/** One line per rank, in rank order ("rank 1/4 on vm: node 0/1, local rank 1/4, CPU (...)"),
 *  gathered to rank 0 (collective). On rank 0 *text is the block (lines end in '\n'); on other ranks
 *  *text is "". Borrowed: valid until the comm is freed or this is called again. */
DJCT_API int djct_comm_startup_report(djct_comm *comm, const char **text);

/** Wait for all ranks (collective; watched by the watchdog). */
DJCT_API int djct_comm_barrier(djct_comm *comm);

/** Print "rank N: msg" to stderr (nothing when msg is NULL: the caller has printed why) and
 *  MPI_Abort(MPI_COMM_WORLD, code) so no peer hangs: the launcher (mpirun, srun) ends every rank.
 *  For apps: the library itself never calls it. Without MPI it exits with `code`. Never returns. */
DJCT_API void djct_comm_abort(const djct_comm *comm, int code, const char *msg);

/* ---- small collectives: the caller's agreements --------------------------------------------
 * For flags, counters and a few sums that every rank must agree on (gradients go through plans).
 * Each call is one collective, numbered and watched like the rest: with a timeout, a rank that
 * does not arrive is named in the error together with `label`, a short phrase saying what the
 * collective is ("step 212's agreement"; NULL: the call's name), e.g.
 * "rank 0: step 212's agreement (collective #57) did not complete within 10.0 s; ranks that did
 * not arrive: 1; ...". The label is only read during the call (the non-blocking start copies it). */

/** Element-wise operation of djct_comm_allreduce. */
typedef enum {
    DJCT_COMM_REDUCE_SUM = 0,
    DJCT_COMM_REDUCE_MIN = 1,
    DJCT_COMM_REDUCE_MAX = 2
} djct_comm_reduce_op;

/** Reduce `count` values of `dtype` (int32, int64, float32, float64) at `buf` in place on every
 *  rank (collective). @return 0; DJCT_EINVAL (dtype, op, count over INT_MAX); DJCT_ETIMEOUT;
 *  DJCT_EMPI (also every call after a timeout: the communicator is unusable). */
DJCT_API int djct_comm_allreduce(djct_comm *comm, void *buf, size_t count, djct_dtype dtype, djct_comm_reduce_op op,
                                 const char *label);

/** Overwrite `bytes` at `buf` with root's bytes (collective; at most INT_MAX bytes; buffer lists
 *  and device memory: djct_comm_broadcast). @return as djct_comm_allreduce. */
DJCT_API int djct_comm_bcast(djct_comm *comm, void *buf, size_t bytes, int root, const char *label);

/** A non-blocking collective of `comm` in flight; reusable. Body in src/comm_int.h. */
typedef struct djct_comm_request djct_comm_request;

/** A request for `comm`'s non-blocking calls, idle. Release it with djct_comm_request_free(). */
DJCT_API int djct_comm_request_create(djct_comm_request **out, djct_comm *comm);
/** NULL is fine. Wait for a request in flight first: one freed in flight is abandoned. */
DJCT_API void djct_comm_request_free(djct_comm_request *req);

/** Start djct_comm_allreduce on an idle request and return at once (collective: every rank starts
 *  it at the same point of its sequence of collectives); `buf` belongs to MPI until
 *  djct_comm_wait(req). @return as djct_comm_allreduce; DJCT_EINVAL when `req` is in flight. */
DJCT_API int djct_comm_allreduce_start(djct_comm_request *req, void *buf, size_t count, djct_dtype dtype,
                                       djct_comm_reduce_op op, const char *label);

/** Wait for the request's collective (watched: a missing rank is named with the request's label).
 *  An idle request returns 0 at once; afterwards the request is idle, also after an error.
 *  @return 0; DJCT_ETIMEOUT; DJCT_EMPI. */
DJCT_API int djct_comm_wait(djct_comm_request *req);

/* ---- buffers, averaging ------------------------------------------------------------------ */

/** One buffer: `count` elements of `dtype` at `ptr`; device -1 = host memory, else the CUDA
 *  device (must be the comm's device). djct keeps these pointers for the plan's lifetime. */
typedef struct {
    void      *ptr;
    size_t     count;
    djct_dtype dtype;
    int        device;
} djct_comm_buffer;

/** What a plan's step computes, in place in every buffer. */
typedef enum {
    DJCT_COMM_SUM      = 0, /* sum over ranks */
    DJCT_COMM_AVERAGE  = 1, /* sum / world size */
    DJCT_COMM_WEIGHTED = 2  /* sum_r w_r g_r / sum_r w_r; a rank with w_r = 0 contributes nothing,
                               even NaN (its buffers are zeroed, not multiplied) */
} djct_comm_op;

/** Default bucket size: large enough that a bucket's allreduce reaches the bandwidth of one big
 *  call, small enough to stay below MPI's large-message costs and to overlap (docs/comm.md). */
#define DJCT_COMM_DEFAULT_BUCKET_BYTES ((size_t)4 << 20)

typedef struct {
    unsigned int version;      /* always first */
    size_t       bucket_bytes; /* bytes per bucket (in the reduction dtype); 0: the default;
                                  at most 1 GiB */
} djct_comm_plan_options;
#define DJCT_COMM_PLAN_OPTIONS_VERSION 1
#define DJCT_COMM_PLAN_OPTIONS_INIT { DJCT_COMM_PLAN_OPTIONS_VERSION, 0 }

/** Build a bucket plan over `n` buffers (collective: every rank passes the same counts and dtypes,
 *  checked; pointers may differ). Buffers are bucketed in the given order (pass them in the order
 *  the backward pass produces them). Buffers of float32, float64, float16 and bfloat16 are allowed;
 *  float16/bfloat16 are summed in float32. A bucket whose pieces are contiguous in memory and of the
 *  reduction dtype is reduced in place (zero copy); others go through a persistent pack buffer.
 *  A buffer larger than a bucket is split over several. On success *out is yours
 *  (djct_comm_plan_free()); it borrows `comm` and the buffers' memory.
 *  @return 0; DJCT_EINVAL naming the buffer (dtype, NULL pointer, lists differ between ranks);
 *  DJCT_ENOTSUP (a device buffer without NCCL); DJCT_ENOMEM; DJCT_EMPI. */
DJCT_API int djct_comm_plan_create(djct_comm_plan **out, djct_comm *comm, const djct_comm_buffer *bufs,
                                   size_t n, const djct_comm_plan_options *opts);
/** NULL is fine. Must not be called between start and finish. */
DJCT_API void djct_comm_plan_free(djct_comm_plan *plan);
/** Name the plan's next steps for the watchdog's messages (copied): a missing rank is reported at
 *  "<label>, bucket K" or "<label>, weight sum" (e.g. "epoch 0 step 212's gradient reduction,
 *  bucket 0"); NULL or "" brings back the plain "reduce bucket K" and "weight sum". Local (not
 *  collective); call it before a step. @return 0, DJCT_EINVAL for a NULL plan. */
DJCT_API int djct_comm_plan_set_label(djct_comm_plan *plan, const char *label);
/** Number of buckets, and how many of them reduce without pack copies. */
DJCT_API size_t djct_comm_plan_bucket_count(const djct_comm_plan *plan);
DJCT_API size_t djct_comm_plan_zero_copy_count(const djct_comm_plan *plan);

/** Reduce every buffer in place: start + finish (collective). `weight` is this rank's weight for
 *  DJCT_COMM_WEIGHTED (>= 0, finite; ignored otherwise).
 *  @return 0; DJCT_EINVAL (bad weight; all weights 0: buffers are zeroed); DJCT_ETIMEOUT; DJCT_EMPI. */
DJCT_API int djct_comm_plan_reduce(djct_comm_plan *plan, djct_comm_op op, double weight);

/** Begin a non-blocking step (collective): the buffers will be reduced as they are marked ready.
 *  Buckets are launched strictly in bucket order, so every rank issues the same collectives. */
DJCT_API int djct_comm_plan_start(djct_comm_plan *plan, djct_comm_op op, double weight);
/** Buffer `index` holds its final local value: launch every bucket that is now complete (in order)
 *  and test the ones in flight, which is what lets MPI progress. Not collective.
 *  @return 0; DJCT_EINVAL (index out of range, marked twice, no step started). */
DJCT_API int djct_comm_plan_mark_ready(djct_comm_plan *plan, size_t index);
/** Let in-flight reductions progress (MPI_Test) without blocking; call it between layers. */
DJCT_API int djct_comm_plan_progress(djct_comm_plan *plan);
/** Treat every buffer not yet marked as ready, launch the rest and wait for all (collective).
 *  On return every buffer holds the result. */
DJCT_API int djct_comm_plan_finish(djct_comm_plan *plan);

/** Overwrite every buffer with root's copy (collective; any dtype; host via MPI, device via NCCL). */
DJCT_API int djct_comm_broadcast(djct_comm *comm, const djct_comm_buffer *bufs, size_t n, int root);

/** Cheap consistency check (collective): a 64-bit hash of each buffer's bytes compared with rank 0's.
 *  @return 0 when all ranks agree; DJCT_ERROR with "parameters differ from rank 0 on ranks 2, 3
 *  (first differing buffer on rank 2: 5)..." when not (every rank gets the same message);
 *  *n_differing (may be NULL) receives the number of ranks that differ. */
DJCT_API int djct_comm_check_consistent(djct_comm *comm, const djct_comm_buffer *bufs, size_t n,
                                        int *n_differing);

DJCT_END_DECLS

#endif /* DJCT_COMM_H */
