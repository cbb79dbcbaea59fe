/* comm: ranks from MPI, GPU choice, bucketed (weighted) averaging, broadcast, consistency check,
 * watchdog. Invariant: every collective djct issues goes through coll_enter(), which numbers it;
 * a rank that times out asks its peers (point to point, on a private duplicate of the world
 * communicator) which collective they are in, and names those that never arrived. Ranks answer
 * such queries whenever they wait inside a djct collective, so no helper thread is needed. */
#include "comm_int.h"
#include "djct_int.h"

#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define TAG_QUERY  101
#define TAG_ANSWER 102
#define MAX_BUCKET_BYTES ((size_t)1 << 30)

struct djct_comm {
    MPI_Comm   world;       /* dup of MPI_COMM_WORLD: all djct collectives */
    MPI_Comm   wd;          /* dup: watchdog queries and answers only */
    MPI_Comm   local;       /* ranks sharing this node's memory */
    int        rank, size, lrank, lsize, nnodes, node;
    int        device;      /* -1: CPU */
    int        backend;     /* DJCT_COMM_BACKEND_MPI or _NCCL */
    double     timeout;     /* seconds; 0 off */
    uint64_t   seq;         /* collectives entered so far */
    const char *what;       /* name of the current collective */
    size_t     what_index;  /* bucket index etc., SIZE_MAX when none */
    int        broken;      /* a collective timed out: the communicator is unusable */
    int64_t    wd_out;      /* send buffer of queries and answers (MPI_Isend needs it to live) */
    MPI_Op     sum_div;     /* sum_div_op, for two ranks */
    MPI_Op     wstat;       /* wstat_op: {sum, max, min} of the step's weights */
    MPI_Datatype wstat_t;   /* three doubles */
    timer_t    guard;       /* arms around blocking collectives once every rank arrived */
    uint64_t   arrived_seq; /* collective number known to have every rank: no arrival barrier */
    int        oversubscribed; /* some node runs more ranks than it has CPUs */
    int        guard_made;
    djct_nccl *nccl;
    char       gpu_note[192];
    char       host[MPI_MAX_PROCESSOR_NAME];
    char      *report;
};

static void sum_div_op(void *in, void *inout, int *len, MPI_Datatype *dt);
static void wstat_op(void *in, void *inout, int *len, MPI_Datatype *dt);

/* ============================ small helpers ============================ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mpi_err(const djct_comm *c, int rc, const char *call)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    s[0] = '\0';
    MPI_Error_string(rc, s, &len);
    return djct_error_set(DJCT_EMPI, "rank %d: %s failed: %s", c ? c->rank : -1, call, s);
}
#define MPI_TRY(c, call)                                                                     \
    do {                                                                                     \
        int mrc_ = (call);                                                                   \
        if (mrc_ != MPI_SUCCESS)                                                             \
            return mpi_err((c), mrc_, #call);                                                \
    } while (0)

static int to_mpi_level(int l)
{
    switch (l) {
    case DJCT_THREAD_SINGLE:     return MPI_THREAD_SINGLE;
    case DJCT_THREAD_FUNNELED:   return MPI_THREAD_FUNNELED;
    case DJCT_THREAD_SERIALIZED: return MPI_THREAD_SERIALIZED;
    default:                     return MPI_THREAD_MULTIPLE;
    }
}
static const char *level_name(int mpi_level)
{
    if (mpi_level == MPI_THREAD_SINGLE) return "MPI_THREAD_SINGLE";
    if (mpi_level == MPI_THREAD_FUNNELED) return "MPI_THREAD_FUNNELED";
    if (mpi_level == MPI_THREAD_SERIALIZED) return "MPI_THREAD_SERIALIZED";
    return "MPI_THREAD_MULTIPLE";
}
/* the MPI levels are ordered; compare through the djct order to be safe */
static int level_rank(int mpi_level)
{
    if (mpi_level == MPI_THREAD_SINGLE) return 0;
    if (mpi_level == MPI_THREAD_FUNNELED) return 1;
    if (mpi_level == MPI_THREAD_SERIALIZED) return 2;
    return 3;
}

/* ============================ MPI life cycle ============================ */

int djct_comm_init_mpi(int *argc, char ***argv, int required_level)
{
    if (required_level < DJCT_THREAD_SINGLE || required_level > DJCT_THREAD_MULTIPLE)
        return djct_error_set(DJCT_EINVAL, "required thread level %d is not a djct_thread_level (0..3)", required_level);
    int init = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&init);
    if (!init) {
        /* Open MPI's non-blocking allreduce (libnbc, used by overlapped buckets and watched
         * collectives) picks a binomial tree for 2 ranks: 1.7x the blocking allreduce's time at
         * 1 MiB on shared memory. Rabenseifner (reduce-scatter + allgather) matches the blocking
         * one at every size (docs/comm.md). A user's own setting wins; other MPIs ignore it. */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
        /* Open MPI's shared-memory transport (vader) moves large messages with one kernel copy
         * (CMA, process_vm_readv), which pins the peer's pages on every transfer. Copying through
         * the shared segment instead was faster at every size measured here: a 1 MiB allreduce
         * of 2 ranks 96-99 us against 156-224 us, 16 KiB 2.2x, 64 MiB 1.06-1.2x, 4 ranks on par
         * or better (docs/comm.md). A user's own setting (mpirun --mca, OMPI_MCA_...) wins. */
        setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
        int rc = MPI_Init_thread(argc, argv, to_mpi_level(required_level), &provided);
        if (rc != MPI_SUCCESS)
            return djct_error_set(DJCT_EMPI, "MPI_Init_thread failed (code %d); is the program started with mpirun or srun --mpi=pmix?", rc);
    } else
        MPI_Query_thread(&provided);
    if (level_rank(provided) < required_level)
        return djct_error_set(DJCT_ENOTSUP, "MPI provides %s but %s was required; use an MPI built with thread support "
                              "or ask for a lower level", level_name(provided), level_name(to_mpi_level(required_level)));
    return 0;
}

void djct_comm_finalize_mpi(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin)
        MPI_Finalize();
}

void djct_comm_abort(const djct_comm *comm, int code, const char *msg)
{
    int init = 0, fin = 0, rank = -1;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (comm)
        rank = comm->rank;
    else if (init && !fin)
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "rank %d: ", rank);
    if (msg && !strncmp(msg, prefix, strlen(prefix)))
        fprintf(stderr, "%s\n", msg); /* djct messages already name the rank */
    else
        fprintf(stderr, "%s%s\n", prefix, msg && *msg ? msg : "fatal error");
    fflush(stderr);
    fflush(stdout);
    if (init && !fin)
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1);
}

MPI_Comm djct_comm_mpi(const djct_comm *comm) { return comm ? comm->world : MPI_COMM_NULL; }
int djct_comm_rank(const djct_comm *c) { return c ? c->rank : 0; }
int djct_comm_size(const djct_comm *c) { return c ? c->size : 1; }
int djct_comm_local_rank(const djct_comm *c) { return c ? c->lrank : 0; }
int djct_comm_local_size(const djct_comm *c) { return c ? c->lsize : 1; }
int djct_comm_node_count(const djct_comm *c) { return c ? c->nnodes : 1; }
int djct_comm_node_index(const djct_comm *c) { return c ? c->node : 0; }
int djct_comm_device(const djct_comm *c) { return c ? c->device : -1; }
int djct_comm_backend_in_use(const djct_comm *c) { return c ? c->backend : DJCT_COMM_BACKEND_MPI; }

/* Pick the device; local, cannot hang. */
static int choose_device(djct_comm *c, const djct_comm_options *o)
{
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    char cvd_note[96] = "";
    if (cvd)
        snprintf(cvd_note, sizeof(cvd_note), ", CUDA_VISIBLE_DEVICES=%s", cvd);
    c->device = -1;
    if (o->device == DJCT_COMM_DEVICE_NONE) {
        snprintf(c->gpu_note, sizeof(c->gpu_note), "CPU (GPU binding off)");
        return 0;
    }
    int count = 0;
    char why[128] = "";
    djct_gpu_count(&count, why, sizeof(why));
    if (count == 0) {
        if (o->device >= 0)
            return djct_error_set(DJCT_ENOTSUP, "rank %d: device %d requested but no GPU is visible (%s)%s; "
                                  "use device DJCT_COMM_DEVICE_AUTO or _NONE on this machine", c->rank, o->device, why, cvd_note);
        snprintf(c->gpu_note, sizeof(c->gpu_note), "CPU (no GPU: %s)", why);
        return 0;
    }
    /* a launcher that already restricted each task to one device shows count 1: always device 0 */
    int dev = o->device >= 0 ? o->device : c->lrank % count;
    if (dev >= count)
        return djct_error_set(DJCT_EINVAL, "rank %d: device %d requested but only %d visible%s; use 0..%d or DJCT_COMM_DEVICE_AUTO",
                              c->rank, dev, count, cvd_note, count - 1);
    int rc = djct_gpu_select(dev);
    if (rc < 0)
        return djct_error_prefix("rank %d", c->rank);
    c->device = dev;
    snprintf(c->gpu_note, sizeof(c->gpu_note), "GPU %d of %d%s", dev, count, cvd_note);
    return 0;
}

/* All ranks learn whether any rank failed; a failing rank keeps its own message. */
static int agree(djct_comm *c, int rc, const char *stage)
{
    int *all = malloc(sizeof(int) * (size_t)c->size);
    int mine = rc < 0 ? rc : 0;
    if (!all) {
        int worst = 0;
        MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MIN, c->world);
        return rc < 0 ? rc : worst < 0 ? djct_error_set(worst, "rank %d: %s failed on another rank", c->rank, stage) : 0;
    }
    MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, c->world);
    int bad = 0, first_code = 0;
    char list[256] = "";
    size_t len = 0;
    for (int r = 0; r < c->size; r++)
        if (all[r] < 0) {
            if (!bad)
                first_code = all[r];
            if (len < sizeof(list) - 16)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", bad ? ", " : "", r);
            bad++;
        }
    free(all);
    if (rc < 0)
        return rc;
    if (bad)
        return djct_error_set(first_code, "rank %d: %s failed on rank%s %s; see the error printed there",
                              c->rank, stage, bad > 1 ? "s" : "", list);
    return 0;
}

int djct_comm_create(djct_comm **out, const djct_comm_options *opts)
{
    DJCT_CHECK_ARG(out);
    *out = NULL;
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    DJCT_CHECK_VERSION(opts, DJCT_COMM_OPTIONS_VERSION, "djct_comm_options");
    if (opts)
        o = *opts;
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin)
        return djct_error_set(DJCT_EINVAL, "djct_comm_create: MPI is %s; call djct_comm_init_mpi() (or MPI_Init) first",
                              fin ? "already finalized" : "not initialised");
    if (o.backend < DJCT_COMM_BACKEND_AUTO || o.backend > DJCT_COMM_BACKEND_NCCL)
        return djct_error_set(DJCT_EINVAL, "djct_comm_options.backend = %d; use DJCT_COMM_BACKEND_AUTO, _MPI or _NCCL", o.backend);
    if (o.device < DJCT_COMM_DEVICE_NONE)
        return djct_error_set(DJCT_EINVAL, "djct_comm_options.device = %d; use a device index, DJCT_COMM_DEVICE_AUTO or _NONE", o.device);
    if (!(o.timeout_seconds >= 0) || !isfinite(o.timeout_seconds))
        return djct_error_set(DJCT_EINVAL, "djct_comm_options.timeout_seconds = %g; use 0 (off) or a positive number", o.timeout_seconds);

    djct_comm *c = calloc(1, sizeof(*c));
    if (!c)
        return djct_error_oom();
    c->world = c->wd = c->local = MPI_COMM_NULL;
    c->sum_div = MPI_OP_NULL;
    c->wstat = MPI_OP_NULL;
    c->wstat_t = MPI_DATATYPE_NULL;
    c->timeout = o.timeout_seconds;
    c->device = -1;
    c->backend = DJCT_COMM_BACKEND_MPI;
    int rc, len = 0;
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->world)) != MPI_SUCCESS ||
        (rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->wd)) != MPI_SUCCESS) {
        rc = mpi_err(c, rc, "MPI_Comm_dup");
        goto fail;
    }
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    MPI_Get_processor_name(c->host, &len);
    /* key = world rank: local rank 0 is the node's lowest world rank */
    if ((rc = MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &c->local)) != MPI_SUCCESS) {
        rc = mpi_err(c, rc, "MPI_Comm_split_type(SHARED)");
        goto fail;
    }
    MPI_Comm_rank(c->local, &c->lrank);
    MPI_Comm_size(c->local, &c->lsize);
    /* more ranks than CPUs on some node: waits must yield (the watched path), decided alike
     * everywhere since it picks which collectives run */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int over = ncpu > 0 && c->lsize > ncpu;
    MPI_Allreduce(&over, &c->oversubscribed, 1, MPI_INT, MPI_MAX, c->world);
    int leader = c->lrank == 0, before = 0;
    MPI_Allreduce(&leader, &c->nnodes, 1, MPI_INT, MPI_SUM, c->world);
    MPI_Exscan(&leader, &before, 1, MPI_INT, MPI_SUM, c->world);
    if (c->rank == 0)
        before = 0; /* MPI_Exscan leaves rank 0's result undefined */
    c->node = before;
    MPI_Bcast(&c->node, 1, MPI_INT, 0, c->local);

    if (c->size == 2 && (rc = MPI_Op_create(sum_div_op, 1, &c->sum_div)) != MPI_SUCCESS) {
        c->sum_div = MPI_OP_NULL;
        rc = mpi_err(c, rc, "MPI_Op_create");
        goto fail;
    }
    if ((rc = MPI_Type_contiguous(3, MPI_DOUBLE, &c->wstat_t)) != MPI_SUCCESS ||
        (rc = MPI_Type_commit(&c->wstat_t)) != MPI_SUCCESS || (rc = MPI_Op_create(wstat_op, 1, &c->wstat)) != MPI_SUCCESS) {
        rc = mpi_err(c, rc, "MPI_Op_create (weight statistics)");
        goto fail;
    }
    rc = choose_device(c, &o);
    if ((rc = agree(c, rc, "device selection")) < 0)
        goto fail;
    if (o.backend == DJCT_COMM_BACKEND_NCCL || (o.backend == DJCT_COMM_BACKEND_AUTO && c->device >= 0)) {
        int has = c->device >= 0, all = 0;
        MPI_Allreduce(&has, &all, 1, MPI_INT, MPI_MIN, c->world);
        if (!all) {
            if (o.backend == DJCT_COMM_BACKEND_NCCL) {
                if (!has)
                    rc = djct_error_set(DJCT_ENOTSUP, "rank %d: NCCL backend requested but this rank has no GPU: %s; "
                                        "use DJCT_COMM_BACKEND_MPI with host buffers", c->rank, c->gpu_note);
                else
                    rc = djct_error_set(DJCT_ENOTSUP, "rank %d: NCCL backend requested but another rank has no GPU; "
                                        "use DJCT_COMM_BACKEND_MPI with host buffers", c->rank);
                goto fail;
            }
            /* AUTO with a GPU on some ranks only: everyone stays on MPI */
        } else {
            if ((rc = djct_nccl_create(&c->nccl, c->world, c->rank, c->size, c->device)) < 0)
                goto fail;
            c->backend = DJCT_COMM_BACKEND_NCCL;
        }
    }
    *out = c;
    return 0;
fail:
    djct_comm_free(c);
    return rc;
}

void djct_comm_free(djct_comm *c)
{
    if (!c)
        return;
    djct_nccl_free(c->nccl);
    if (c->guard_made)
        timer_delete(c->guard);
    /* after a watchdog timeout collectives are still pending: freeing would hang or abort */
    if (c->sum_div != MPI_OP_NULL)
        MPI_Op_free(&c->sum_div);
    if (c->wstat != MPI_OP_NULL)
        MPI_Op_free(&c->wstat);
    if (c->wstat_t != MPI_DATATYPE_NULL)
        MPI_Type_free(&c->wstat_t);
    if (!c->broken) {
        if (c->local != MPI_COMM_NULL)
            MPI_Comm_free(&c->local);
        if (c->wd != MPI_COMM_NULL)
            MPI_Comm_free(&c->wd);
        if (c->world != MPI_COMM_NULL)
            MPI_Comm_free(&c->world);
    }
    free(c->report);
    free(c);
}

/* ============================ watchdog ============================ */

static int coll_enter(djct_comm *c, const char *what, size_t index)
{
    if (c->broken)
        return djct_error_set(DJCT_EMPI, "rank %d: the communicator is unusable after collective #%llu (%s) timed out; "
                              "abort the job with djct_comm_abort()", c->rank, (unsigned long long)c->seq, c->what);
    c->seq++;
    c->what = what;
    c->what_index = index;
    return 0;
}

/* answer every pending "where are you?" with our collective number */
static void wd_answer(djct_comm *c)
{
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_QUERY, c->wd, &flag, &st);
        if (!flag)
            return;
        int64_t q;
        MPI_Recv(&q, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_QUERY, c->wd, MPI_STATUS_IGNORE);
        MPI_Request r;
        c->wd_out = (int64_t)c->seq;
        MPI_Isend(&c->wd_out, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_ANSWER, c->wd, &r);
        MPI_Request_free(&r);
    }
}

/* " K" for a collective with an index (a bucket), "" otherwise: messages read "reduce bucket 3" */
static void what_index_str(const djct_comm *c, char *buf, size_t n)
{
    buf[0] = '\0';
    if (c->what_index != SIZE_MAX)
        snprintf(buf, n, " %zu", c->what_index);
}

static int wd_timeout(djct_comm *c, double waited)
{
    c->broken = 1;
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)c->size);
    if (!seen)
        return djct_error_set(DJCT_ETIMEOUT, "rank %d: %s (collective #%llu) did not complete within %.1f s",
                              c->rank, c->what, (unsigned long long)c->seq, waited);
    for (int r = 0; r < c->size; r++)
        seen[r] = -1;
    seen[c->rank] = (int64_t)c->seq;
    c->wd_out = (int64_t)c->seq;
    for (int r = 0; r < c->size; r++)
        if (r != c->rank) {
            MPI_Request q;
            MPI_Isend(&c->wd_out, 1, MPI_INT64_T, r, TAG_QUERY, c->wd, &q);
            MPI_Request_free(&q);
        }
    /* peers waiting in any djct collective answer within microseconds; the grace only bounds
     * how long we wait for the ones that never will */
    double grace = c->timeout / 2;
    grace = grace < 0.2 ? 0.2 : grace > 2.0 ? 2.0 : grace;
    double t0 = now_s();
    int answered = 1;
    while (answered < c->size && now_s() - t0 < grace) {
        wd_answer(c);
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_ANSWER, c->wd, &flag, &st);
        if (flag) {
            int64_t v;
            MPI_Recv(&v, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_ANSWER, c->wd, MPI_STATUS_IGNORE);
            if (seen[st.MPI_SOURCE] < 0)
                answered++;
            seen[st.MPI_SOURCE] = v;
        } else
            usleep(200);
    }
    char list[600] = "", detail[400] = "";
    size_t ll = 0, dl = 0;
    int missing = 0;
    for (int r = 0; r < c->size; r++) {
        if (seen[r] == (int64_t)c->seq)
            continue;
        if (ll < sizeof(list) - 16)
            ll += (size_t)snprintf(list + ll, sizeof(list) - ll, "%s%d", missing ? ", " : "", r);
        if (dl < sizeof(detail) - 64)
            dl += seen[r] < 0
                      ? (size_t)snprintf(detail + dl, sizeof(detail) - dl, "; rank %d does not answer (busy outside djct collectives)", r)
                      : (size_t)snprintf(detail + dl, sizeof(detail) - dl, "; rank %d waits in collective #%lld", r, (long long)seen[r]);
        missing++;
    }
    free(seen);
    char idx[32];
    what_index_str(c, idx, sizeof(idx));
    if (!missing)
        return djct_error_set(DJCT_ETIMEOUT, "rank %d: %s%s (collective #%llu) did not complete within %.1f s although "
                              "every rank arrived; the communicator is unusable, abort the job",
                              c->rank, c->what, idx, (unsigned long long)c->seq, waited);
    return djct_error_set(DJCT_ETIMEOUT, "rank %d: %s%s (collective #%llu) did not complete within %.1f s; ranks that did "
                          "not arrive: %s%s; abort the job (djct_comm_abort) and look at those ranks",
                          c->rank, c->what, idx, (unsigned long long)c->seq, waited, list, detail);
}

#define WAIT_SPIN_SECONDS 100e-6

/* Wait for requests; with a timeout, poll so the watchdog can act and answer peers. */
static int wait_reqs(djct_comm *c, int n, MPI_Request *reqs)
{
    if (n == 0)
        return 0;
    if (c->timeout <= 0) {
        MPI_TRY(c, MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE));
        return 0;
    }
    double t0 = now_s();
    int yield = 0;
    for (unsigned long it = 0;; it++) {
        int flag = 0;
        MPI_TRY(c, MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE));
        if (flag)
            return 0;
        if (yield)
            sched_yield();
        if ((it & 63) == 0) {
            wd_answer(c);
            double w = now_s() - t0;
            if (w > c->timeout)
                return wd_timeout(c, w);
            /* spin briefly (the peer is usually about to arrive), then give the core away on
             * every poll: a rank that waits long is waiting for a peer or for its own helper
             * threads (prefetch, journal) that may need this core */
            yield = w > WAIT_SPIN_SECONDS;
        }
    }
}

int djct_comm_barrier(djct_comm *c)
{
    DJCT_CHECK_ARG(c);
    int rc;
    if ((rc = coll_enter(c, "barrier", SIZE_MAX)) < 0)
        return rc;
    if (c->timeout <= 0) {
        MPI_TRY(c, MPI_Barrier(c->world));
        return 0;
    }
    MPI_Request r;
    MPI_TRY(c, MPI_Ibarrier(c->world, &r));
    return wait_reqs(c, 1, &r);
}

/* Blocking collective helpers. Without a timeout: plain blocking MPI (the tuned algorithms).
 * With one, small messages: non-blocking + watched wait. Large messages with one: a watched
 * non-blocking barrier first (a missing rank is named as before), then, every rank being there,
 * the blocking call under a guard timer. The non-blocking reductions (libnbc) progress only
 * while polled and use slower algorithms: a 2-rank MLP step (1 MiB of gradients) ran 5% faster
 * without the watchdog than with it before this (docs/performance.md, session 5). */
#define ARRIVE_FIRST_BYTES ((size_t)64 << 10)

/* the guard fired: every rank reached the collective but MPI has not finished it; the
 * communicator cannot be trusted, and this thread cannot unwind the main one: say so, abort */
static void guard_fired(union sigval v)
{
    djct_comm *c = v.sival_ptr;
    char idx[32];
    what_index_str(c, idx, sizeof(idx));
    fprintf(stderr, "djct: rank %d: %s%s (collective #%llu) did not complete within %.1f s although every rank "
            "arrived; MPI itself is stuck (network or MPI runtime failure): aborting the job\n",
            c->rank, c->what, idx, (unsigned long long)c->seq, c->timeout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static int guard_set(djct_comm *c, double seconds)
{
    if (!c->guard_made) {
        struct sigevent ev;
        memset(&ev, 0, sizeof(ev));
        ev.sigev_notify = SIGEV_THREAD;
        ev.sigev_notify_function = guard_fired;
        ev.sigev_value.sival_ptr = c;
        if (timer_create(CLOCK_MONOTONIC, &ev, &c->guard) != 0)
            return -1;
        c->guard_made = 1;
    }
    struct itimerspec it;
    memset(&it, 0, sizeof(it));
    it.it_value.tv_sec = (time_t)seconds;
    it.it_value.tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9);
    return timer_settime(c->guard, 0, &it, NULL);
}

/* 1: every rank arrived (watched), run the blocking call armed; 0: use the non-blocking path */
static int arrive_first(djct_comm *c, size_t bytes, int *rc)
{
    *rc = 0;
    if (bytes < ARRIVE_FIRST_BYTES || c->size == 1 || c->oversubscribed)
        return 0; /* oversubscribed: a blocking call spins on a CPU another rank needs */
    if (c->arrived_seq == c->seq) /* a watched collective just before proved it */
        return guard_set(c, c->timeout) == 0;
    MPI_Request r;
    int e = MPI_Ibarrier(c->world, &r);
    if (e != MPI_SUCCESS) {
        *rc = mpi_err(c, e, "MPI_Ibarrier");
        return 1;
    }
    if ((*rc = wait_reqs(c, 1, &r)) < 0)
        return 1;
    if (guard_set(c, c->timeout) != 0) { /* no timer: the watched non-blocking path */
        *rc = 0;
        return 0;
    }
    return 1;
}

/* 1: run the blocking call now (*rc < 0: the watched arrival failed; return it), 0: take the
 * watched non-blocking path */
static int blocking_now(djct_comm *c, int count, MPI_Datatype t, int *rc)
{
    *rc = 0;
    if (c->timeout <= 0)
        return 1;
    int ts = 0;
    MPI_Type_size(t, &ts);
    return arrive_first(c, (size_t)count * (size_t)ts, rc);
}

static int blocking_done(djct_comm *c, int e, const char *call)
{
    if (c->timeout > 0)
        guard_set(c, 0);
    return e == MPI_SUCCESS ? 0 : mpi_err(c, e, call);
}

static int coll_allreduce(djct_comm *c, void *buf, int count, MPI_Datatype t, MPI_Op op)
{
    int rc;
    if (blocking_now(c, count, t, &rc))
        return rc < 0 ? rc : blocking_done(c, MPI_Allreduce(MPI_IN_PLACE, buf, count, t, op, c->world), "MPI_Allreduce");
    MPI_Request r;
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, buf, count, t, op, c->world, &r));
    return wait_reqs(c, 1, &r);
}

static int coll_bcast(djct_comm *c, void *buf, int count, MPI_Datatype t, int root)
{
    int rc;
    if (blocking_now(c, count, t, &rc))
        return rc < 0 ? rc : blocking_done(c, MPI_Bcast(buf, count, t, root, c->world), "MPI_Bcast");
    MPI_Request r;
    MPI_TRY(c, MPI_Ibcast(buf, count, t, root, c->world, &r));
    return wait_reqs(c, 1, &r);
}

static int coll_allgather(djct_comm *c, const void *mine, void *all, int count, MPI_Datatype t)
{
    if (c->timeout <= 0) {
        MPI_TRY(c, MPI_Allgather(mine, count, t, all, count, t, c->world));
        return 0;
    }
    MPI_Request r;
    MPI_TRY(c, MPI_Iallgather(mine, count, t, all, count, t, c->world, &r));
    return wait_reqs(c, 1, &r);
}

int djct_comm_startup_report(djct_comm *c, const char **text)
{
    DJCT_CHECK_ARG(c);
    DJCT_CHECK_ARG(text);
    enum { LINE = 640 };
    char line[LINE];
    memset(line, 0, sizeof(line));
    snprintf(line, sizeof(line), "rank %d/%d on %s: node %d/%d, local rank %d/%d, %s, backend %s\n", c->rank, c->size,
             c->host, c->node, c->nnodes, c->lrank, c->lsize, c->gpu_note,
             c->backend == DJCT_COMM_BACKEND_NCCL ? "NCCL" : "MPI");
    char *all = NULL;
    if (c->rank == 0 && (all = malloc((size_t)LINE * (size_t)c->size + 1)) == NULL)
        return djct_error_oom(); /* peers then wait in the gather: rank 0 is out of memory anyway */
    int rc = coll_enter(c, "startup report", SIZE_MAX);
    if (rc == 0) {
        if (c->timeout <= 0)
            rc = MPI_Gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, c->world) == MPI_SUCCESS ? 0
                 : djct_error_set(DJCT_EMPI, "rank %d: MPI_Gather of the start-up lines failed", c->rank);
        else {
            MPI_Request r;
            MPI_Igather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, c->world, &r);
            rc = wait_reqs(c, 1, &r);
        }
    }
    if (rc < 0) {
        free(all);
        return rc;
    }
    free(c->report);
    c->report = NULL;
    if (c->rank == 0) {
        size_t len = 0;
        for (int r = 0; r < c->size; r++) {
            size_t l = strnlen(all + (size_t)r * LINE, LINE - 1);
            memmove(all + len, all + (size_t)r * LINE, l);
            len += l;
        }
        all[len] = '\0';
        c->report = all;
    } else if ((c->report = calloc(1, 1)) == NULL)
        return djct_error_oom();
    *text = c->report;
    return 0;
}

/* ============================ element conversions ============================ */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0)
            bits = sign;
        else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((ax >> 13) - ((127 - 15) << 10)), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static float bf16_to_float(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* The passes below run over whole buckets and are DJCT_VECTORIZE'd: once the shared-memory copies
 * got faster, the SSE2 sum-and-divide operator left a 1 MiB average at 0.78x of a plain MPI_SUM
 * allreduce (Open MPI's own SUM is AVX-512). */

static int is_pow2(double d)
{
    int e;
    return d > 0 && frexp(d, &e) == 0.5;
}

/* dst[i] = src[i] * w (dst may be src), or 0 when w == 0 (so NaN from a weightless rank cannot
 * leak); one pass, a copy when w == 1 */
DJCT_VECTORIZE static void mul_into(void *dst, const void *src, size_t n, djct_dtype rt, double w)
{
    if (w == 0.0) {
        memset(dst, 0, n * djct_dtype_size(rt));
        return;
    }
    if (w == 1.0) {
        if (dst != src)
            memcpy(dst, src, n * djct_dtype_size(rt));
        return;
    }
    if (rt == DJCT_DTYPE_FLOAT64) {
        double *d = dst;
        const double *x = src;
        for (size_t i = 0; i < n; i++)
            d[i] = x[i] * w;
    } else {
        float *d = dst, wf = (float)w;
        const float *x = src;
        for (size_t i = 0; i < n; i++)
            d[i] = x[i] * wf;
    }
}

/* dst[i] = src[i] / d (dst may be src), correctly rounded (a multiply when 1/d is exact); one
 * pass, a copy when d == 1 */
DJCT_VECTORIZE static void div_into(void *dst, const void *src, size_t n, djct_dtype rt, double d)
{
    if (d == 1.0) {
        if (dst != src)
            memcpy(dst, src, n * djct_dtype_size(rt));
        return;
    }
    int p2 = is_pow2(d);
    if (rt == DJCT_DTYPE_FLOAT64) {
        double *v = dst, r = 1.0 / d;
        const double *x = src;
        if (p2)
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] * r;
        else
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] / d;
    } else {
        float *v = dst, df = (float)d, r = 1.0f / df;
        const float *x = src;
        if (p2)
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] * r;
        else
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] / df;
    }
}

static void scale_mul(void *x, size_t n, djct_dtype rt, double w) { mul_into(x, x, n, rt, w); }
static void scale_div(void *x, size_t n, djct_dtype rt, double d) { div_into(x, x, n, rt, d); }

/* With two ranks every result element comes from exactly one application of the reduction
 * operator, whatever algorithm MPI picks (there is no identity to combine with). So the division
 * can ride inside the operator: (a + b) / d, rounded exactly as sum-then-scale_div. This saves a
 * whole pass over the bucket (about 20% of a 1 MiB allreduce here). The divisor is thread-local and
 * only set around a call that completes before returning (blocking or watched), never while a
 * non-blocking step is in flight. */
static _Thread_local double tl_div;

/* the step's weights: {sum, max, min} (three doubles per element of wstat_t) */
static void wstat_op(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    const double *a = in;
    double *b = inout;
    for (int i = 0; i < *len; i++, a += 3, b += 3) {
        b[0] += a[0];
        b[1] = a[1] > b[1] ? a[1] : b[1];
        b[2] = a[2] < b[2] ? a[2] : b[2];
    }
}

static DJCT_VECTORIZE void sum_div_op(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    size_t n = (size_t)*len;
    int p2 = is_pow2(tl_div);
    if (*dt == MPI_DOUBLE) {
        const double *a = in;
        double *b = inout, d = tl_div, r = 1.0 / d;
        if (p2)
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) * r;
        else
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) / d;
    } else {
        const float *a = in;
        float *b = inout, d = (float)tl_div, r = 1.0f / d;
        if (p2)
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) * r;
        else
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) / d;
    }
}

/* dst (reduction dtype) = src (buffer dtype) * w; w == 0 writes zeros */
DJCT_VECTORIZE static void pack_seg(void *dst, const void *src, size_t n, djct_dtype st, double w)
{
    if (st == DJCT_DTYPE_FLOAT64 || st == DJCT_DTYPE_FLOAT32) { /* copy and scale in one pass */
        mul_into(dst, src, n, st, w);
        return;
    }
    if (w == 0.0) {
        memset(dst, 0, n * 4);
        return;
    }
    float *d = dst, wf = (float)w;
    const uint16_t *s = src;
    if (st == DJCT_DTYPE_FLOAT16)
        for (size_t i = 0; i < n; i++)
            d[i] = half_to_float(s[i]) * wf;
    else
        for (size_t i = 0; i < n; i++)
            d[i] = bf16_to_float(s[i]) * wf;
}

/* dst (buffer dtype) = src (reduction dtype) / div */
DJCT_VECTORIZE static void unpack_seg(void *dst, void *src, size_t n, djct_dtype dt, double div)
{
    if (dt == DJCT_DTYPE_FLOAT64 || dt == DJCT_DTYPE_FLOAT32) { /* divide and copy in one pass */
        div_into(dst, src, n, dt, div);
        return;
    }
    scale_div(src, n, DJCT_DTYPE_FLOAT32, div);
    const float *s = src;
    uint16_t *d = dst;
    if (dt == DJCT_DTYPE_FLOAT16)
        for (size_t i = 0; i < n; i++)
            d[i] = float_to_half(s[i]);
    else
        for (size_t i = 0; i < n; i++)
            d[i] = float_to_bf16(s[i]);
}

/* ============================ plans ============================ */

typedef struct {
    size_t buf, off, count; /* elements of buffer `buf` starting at `off` */
} seg_t;

typedef struct {
    djct_dtype   rt;        /* reduction dtype (float32 for halves on the host) */
    int          device;
    size_t       seg0, nseg;
    size_t       count;     /* elements */
    int          zero_copy; /* reduce in place at data */
    void        *data;      /* the span (zero copy) or the pack buffer */
    size_t       pending;   /* buffers not yet ready in this step */
    int          state;     /* 0 idle, 1 in flight, 2 done */
    int          divided;   /* this step's division already happened inside the reduction */
    int          identity;  /* one rank, nonzero weight: the result is the input, nothing moved */
    int          plain;     /* weighted, but every rank's weight is the same: summed unscaled, / size */
    MPI_Request  req;
    void        *event;     /* device buckets: CUDA event after the reduction */
} bucket_t;

struct djct_comm_plan {
    djct_comm        *c;
    djct_comm_buffer *bufs;
    size_t            n;
    size_t           *b_first, *b_end; /* buckets touched by each buffer */
    unsigned char    *ready;
    seg_t            *segs;
    size_t            nsegs;
    bucket_t         *b;
    size_t            nb, nzc;
    void             *slab;  /* host pack buffers */
    size_t            slab_bytes;
    void             *dslab; /* device pack buffers */
    int               active;
    int               op;
    double            weight, wsum;
    double            wbuf[3];   /* {sum, max, min} of the weights, in flight (posted at start) */
    int               wequal;    /* every rank passed the same weight (known once wpending is 0) */
    MPI_Request       wreq;
    int               wpending;
    int               wdefer;    /* one host bucket, reduced only at finish: post the weights there */
    int               wposted;   /* this step's weight collective is posted (or not needed) */
    size_t            next_launch, ndone;
};

static djct_dtype reduce_dtype(const djct_comm_buffer *b)
{
    if (b->device < 0 && (b->dtype == DJCT_DTYPE_FLOAT16 || b->dtype == DJCT_DTYPE_BFLOAT16))
        return DJCT_DTYPE_FLOAT32;
    return b->dtype;
}

static char *elem_ptr(const djct_comm_buffer *b, size_t off) { return (char *)b->ptr + off * djct_dtype_size(b->dtype); }

void djct_comm_plan_free(djct_comm_plan *p)
{
    if (!p)
        return;
    if (p->b)
        for (size_t i = 0; i < p->nb; i++)
            djct_nccl_event_free(p->b[i].event);
    if (p->slab)
        munmap(p->slab, p->slab_bytes);
    djct_dev_free(p->dslab);
    free(p->bufs);
    free(p->b_first);
    free(p->b_end);
    free(p->ready);
    free(p->segs);
    free(p->b);
    free(p);
}

size_t djct_comm_plan_bucket_count(const djct_comm_plan *p) { return p ? p->nb : 0; }
size_t djct_comm_plan_zero_copy_count(const djct_comm_plan *p) { return p ? p->nzc : 0; }

/* local validation; the caller agrees on the verdict across ranks */
static int check_buffers(const djct_comm *c, const djct_comm_buffer *bufs, size_t n, int any_dtype)
{
    if (n && !bufs)
        return djct_error_set(DJCT_EINVAL, "rank %d: %zu buffers but the list pointer is NULL", c->rank, n);
    for (size_t i = 0; i < n; i++) {
        const djct_comm_buffer *b = &bufs[i];
        if (!djct_dtype_size(b->dtype))
            return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu: unknown dtype %d", c->rank, i, (int)b->dtype);
        if (!any_dtype && b->dtype != DJCT_DTYPE_FLOAT32 && b->dtype != DJCT_DTYPE_FLOAT64 &&
            b->dtype != DJCT_DTYPE_FLOAT16 && b->dtype != DJCT_DTYPE_BFLOAT16)
            return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu: dtype %s cannot be averaged; use float32, float64, "
                                  "float16 or bfloat16", c->rank, i, djct_dtype_name(b->dtype));
        if (b->count && !b->ptr)
            return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu: NULL pointer with %zu elements", c->rank, i, b->count);
        if (b->device < -1)
            return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu: device %d; use -1 for host memory or a CUDA device",
                                  c->rank, i, b->device);
        if (b->device >= 0 && !c->nccl)
            return djct_error_set(DJCT_ENOTSUP, "rank %d: buffer %zu lives on device %d but the communicator has no NCCL "
                                  "backend (%s); pass host buffers or create the comm with DJCT_COMM_BACKEND_NCCL on a GPU",
                                  c->rank, i, b->device, c->gpu_note);
        if (b->device >= 0 && b->device != c->device)
            return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu lives on device %d but this rank uses device %d",
                                  c->rank, i, b->device, c->device);
    }
    return 0;
}

/* FNV-1a over (count, dtype, device>=0) of every buffer: the layout every rank must share */
static uint64_t layout_sig(const djct_comm_buffer *bufs, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        uint64_t v[3] = {bufs[i].count, (uint64_t)bufs[i].dtype, bufs[i].device >= 0};
        for (int k = 0; k < 3; k++) {
            h ^= v[k];
            h *= 1099511628211ull;
        }
    }
    return h ^ n;
}

/* rank 0's signature against everyone's; names the ranks that differ. */
static int agree_sig(djct_comm *c, int code, uint64_t mine, const char *what, const char *fix, int *n_diff, int *first_rank)
{
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)c->size);
    if (!all)
        return djct_error_oom(); /* TODO: peers would wait; OOM of size*8 bytes is unrealistic */
    int rc = coll_allgather(c, &mine, all, 1, MPI_UINT64_T);
    if (rc < 0) {
        free(all);
        return rc;
    }
    char list[300] = "";
    size_t len = 0;
    int bad = 0;
    for (int r = 1; r < c->size; r++)
        if (all[r] != all[0]) {
            if (!bad && first_rank)
                *first_rank = r;
            if (len < sizeof(list) - 16)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", bad ? ", " : "", r);
            bad++;
        }
    free(all);
    if (n_diff)
        *n_diff = bad;
    if (bad)
        return djct_error_set(code, "%s differ from rank 0 on rank%s %s%s", what, bad > 1 ? "s" : "", list, fix);
    return 0;
}

int djct_comm_plan_create(djct_comm_plan **out, djct_comm *c, const djct_comm_buffer *bufs, size_t n,
                          const djct_comm_plan_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(c);
    *out = NULL;
    DJCT_CHECK_VERSION(opts, DJCT_COMM_PLAN_OPTIONS_VERSION, "djct_comm_plan_options");
    size_t cap = opts && opts->bucket_bytes ? opts->bucket_bytes : DJCT_COMM_DEFAULT_BUCKET_BYTES;
    if (cap > MAX_BUCKET_BYTES || cap < 64)
        return djct_error_set(DJCT_EINVAL, "djct_comm_plan_options.bucket_bytes = %zu; use 64 B .. 1 GiB (0: default %zu)",
                              cap, DJCT_COMM_DEFAULT_BUCKET_BYTES);
    int rc = check_buffers(c, bufs, n, 0);
    if ((rc = agree(c, rc, "djct_comm_plan_create")) < 0)
        return rc;
    if ((rc = coll_enter(c, "plan layout check", SIZE_MAX)) < 0)
        return rc;
    if ((rc = agree_sig(c, DJCT_EINVAL, layout_sig(bufs, n), "buffer lists (counts, dtypes)", "; every rank must pass the same "
                        "buffers in the same order", NULL, NULL)) < 0)
        return rc;

    djct_comm_plan *p = calloc(1, sizeof(*p));
    if (!p)
        return djct_error_oom();
    p->c = c;
    p->n = n;
    size_t max_segs = n;
    for (size_t i = 0; i < n; i++)
        max_segs += bufs[i].count / (cap / 8 ? cap / 8 : 1) + 1;
    p->bufs = malloc(sizeof(*bufs) * (n ? n : 1));
    p->b_first = calloc(n ? n : 1, sizeof(size_t));
    p->b_end = calloc(n ? n : 1, sizeof(size_t));
    p->ready = calloc(n ? n : 1, 1);
    p->segs = malloc(sizeof(seg_t) * max_segs);
    p->b = calloc(max_segs, sizeof(bucket_t));
    if (!p->bufs || !p->b_first || !p->b_end || !p->ready || !p->segs || !p->b) {
        djct_comm_plan_free(p);
        return djct_error_oom();
    }
    if (n)
        memcpy(p->bufs, bufs, sizeof(*bufs) * n);

    /* Greedy, from counts and dtypes only (so every rank builds the same buckets): a buffer that
     * does not fit closes the open bucket; one larger than a bucket is cut into bucket-sized pieces. */
    bucket_t *cur = NULL;
    size_t cur_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const djct_comm_buffer *bf = &bufs[i];
        djct_dtype rt = reduce_dtype(bf);
        size_t es = djct_dtype_size(rt), cap_el = cap / es;
        p->b_first[i] = p->b_end[i] = p->nb;
        if (bf->count == 0)
            continue;
        if (cur && (cur->rt != rt || cur->device != bf->device || cur_bytes + bf->count * es > cap))
            cur = NULL;
        size_t off = 0;
        while (off < bf->count) {
            if (!cur) {
                cur = &p->b[p->nb++];
                cur->rt = rt;
                cur->device = bf->device;
                cur->seg0 = p->nsegs;
                cur_bytes = 0;
            }
            if (off == 0)
                p->b_first[i] = (size_t)(cur - p->b);
            size_t room = cap_el - cur_bytes / es, take = bf->count - off < room ? bf->count - off : room;
            p->segs[p->nsegs++] = (seg_t){i, off, take};
            cur->nseg++;
            cur->count += take;
            cur_bytes += take * es;
            off += take;
            if (cur_bytes / es >= cap_el)
                cur = NULL;
        }
        p->b_end[i] = p->nb;
    }

    /* zero copy when the pieces are of the reduction dtype and follow each other in memory */
    size_t host_pack = 0, dev_pack = 0;
    for (size_t k = 0; k < p->nb; k++) {
        bucket_t *bk = &p->b[k];
        int zc = 1;
        char *expect = NULL;
        for (size_t j = 0; j < bk->nseg && zc; j++) {
            const seg_t *sg = &p->segs[bk->seg0 + j];
            const djct_comm_buffer *bf = &bufs[sg->buf];
            char *ptr = elem_ptr(bf, sg->off);
            if (bf->dtype != bk->rt || (expect && ptr != expect))
                zc = 0;
            expect = ptr + sg->count * djct_dtype_size(bf->dtype);
        }
        bk->zero_copy = zc;
        if (zc) {
            bk->data = elem_ptr(&bufs[p->segs[bk->seg0].buf], p->segs[bk->seg0].off);
            p->nzc++;
        } else {
            size_t bytes = (bk->count * djct_dtype_size(bk->rt) + 63) & ~(size_t)63;
            bk->data = (void *)(bk->device >= 0 ? dev_pack : host_pack); /* offset until allocated */
            *(bk->device >= 0 ? &dev_pack : &host_pack) += bytes;
        }
    }
    /* persistent pack buffers, touched once now: this VM pays ~15 us per first-touch page fault */
    if (host_pack) {
        p->slab_bytes = host_pack;
        p->slab = mmap(NULL, host_pack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p->slab == MAP_FAILED) {
            p->slab = NULL;
            rc = djct_error_set(DJCT_ENOMEM, "rank %d: cannot map %zu bytes of pack buffers", c->rank, host_pack);
        } else {
#ifdef MADV_HUGEPAGE
            if (host_pack >= ((size_t)2 << 20))
                madvise(p->slab, host_pack, MADV_HUGEPAGE);
#endif
            memset(p->slab, 0, host_pack);
        }
    }
    if (rc == 0 && dev_pack)
        rc = djct_dev_malloc(&p->dslab, dev_pack);
    for (size_t k = 0; rc == 0 && k < p->nb; k++)
        if (!p->b[k].zero_copy)
            p->b[k].data = (char *)(p->b[k].device >= 0 ? p->dslab : p->slab) + (size_t)p->b[k].data;
    if ((rc = agree(c, rc, "pack buffer allocation")) < 0) {
        djct_comm_plan_free(p);
        return rc;
    }
    p->wdefer = p->nb == 1 && p->b[0].device < 0; /* the same on every rank, as the buckets */
    *out = p;
    return 0;
}

/* ---- one step ---- */

static int weight_post(djct_comm_plan *p);

static int start_step(djct_comm_plan *p, djct_comm_op op, double weight)
{
    djct_comm *c = p->c;
    if (p->active)
        return djct_error_set(DJCT_EINVAL, "rank %d: a plan step is already running; call djct_comm_plan_finish first", c->rank);
    if (op != DJCT_COMM_SUM && op != DJCT_COMM_AVERAGE && op != DJCT_COMM_WEIGHTED)
        return djct_error_set(DJCT_EINVAL, "rank %d: op %d is not a djct_comm_op", c->rank, (int)op);
    if (op == DJCT_COMM_WEIGHTED && !(weight >= 0 && isfinite(weight)))
        return djct_error_set(DJCT_EINVAL, "rank %d: weight %g; use a finite weight >= 0 (e.g. this rank's events)", c->rank, weight);
    int rc;
    p->op = op;
    p->weight = op == DJCT_COMM_WEIGHTED ? weight : 1.0;
    p->wsum = op == DJCT_COMM_AVERAGE ? (double)c->size : 1.0;
    p->wequal = 0;
    /* one small collective ({sum, max, min} of the weights), not waited for here: the sum is
     * needed only to divide, and equality only to skip the multiply (host: when a bucket lands;
     * NCCL: to pre-multiply at launch), so the ranks do not synchronise between forward and
     * backward. Weights are >= 0, so a rank's own weight already says whether it contributes.
     * A plan of one host bucket posts it when that bucket is reduced instead (weight_sum):
     * nothing needs it earlier, and its completion then proves every rank arrived. */
    p->wposted = op != DJCT_COMM_WEIGHTED;
    if (op == DJCT_COMM_WEIGHTED && !p->wdefer && (rc = weight_post(p)) < 0)
        return rc;
    for (size_t k = 0; k < p->nb; k++) {
        p->b[k].pending = 0;
        p->b[k].state = 0;
    }
    for (size_t i = 0; i < p->n; i++) {
        p->ready[i] = 0;
        for (size_t k = p->b_first[i]; k < p->b_end[i]; k++)
            p->b[k].pending++;
    }
    p->next_launch = p->ndone = 0;
    p->active = 1;
    return 0;
}

/* post this step's weight collective */
static int weight_post(djct_comm_plan *p)
{
    djct_comm *c = p->c;
    int rc;
    if ((rc = coll_enter(c, "weight sum", SIZE_MAX)) < 0)
        return rc;
    p->wbuf[0] = p->wbuf[1] = p->wbuf[2] = p->weight;
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, p->wbuf, 1, c->wstat_t, c->wstat, c->world, &p->wreq));
    p->wpending = 1;
    p->wposted = 1;
    return 0;
}

/* the weight sum of this step: wait for it (block; posting it first in a deferred plan) or only
 * look (poll: *ready 0 while in flight or not yet posted) */
static int weight_sum(djct_comm_plan *p, int block, int *ready)
{
    if (ready)
        *ready = 1;
    int late = 0, rc;
    if (!p->wposted) {
        if (!block) {
            if (ready)
                *ready = 0;
            return 0;
        }
        if ((rc = weight_post(p)) < 0)
            return rc;
        late = 1;
    }
    if (!p->wpending)
        return 0;
    if (block) {
        djct_comm *c = p->c;
        c->what = "weight sum";
        c->what_index = SIZE_MAX;
        if ((rc = wait_reqs(c, 1, &p->wreq)) < 0)
            return rc;
        if (late) /* every rank posted it at its bucket's reduction, which comes next */
            c->arrived_seq = c->seq + 1;
    } else {
        int done = 0;
        MPI_TRY(p->c, MPI_Test(&p->wreq, &done, MPI_STATUS_IGNORE));
        if (!done) {
            *ready = 0;
            return 0;
        }
    }
    p->wpending = 0;
    p->wsum = p->wbuf[0];
    p->wequal = p->wbuf[1] == p->wbuf[2];
    return 0;
}

/* what bucket k's sum is divided by: 1 for SUM, the rank count for AVERAGE and for equal weights,
 * else the weight sum (1 when every weight is 0: the buffers are zeros then) */
static double bucket_divisor(const djct_comm_plan *p, const bucket_t *bk)
{
    if (p->op == DJCT_COMM_SUM)
        return 1.0;
    if (bk->plain)
        return (double)p->c->size;
    return p->wsum > 0 ? p->wsum : 1.0;
}

static int launch(djct_comm_plan *p, size_t k, int blocking)
{
    djct_comm *c = p->c;
    bucket_t *bk = &p->b[k];
    int rc;
    /* all-zero weights: nothing to average; keep the collectives (peers issue them too) */
    double w = p->op == DJCT_COMM_WEIGHTED ? p->weight : 1.0; /* all weights 0 <=> every rank's is */
    if ((bk->device >= 0 || blocking) && (rc = weight_sum(p, 1, NULL)) < 0) /* NCCL: premultiply; blocking: divide */
        return rc;
    /* Equal nonzero weights everywhere (fixed-size batches): the weighted average is the plain
     * one, so nothing is multiplied before the sum and the sum is divided by the rank count (no
     * pass, and exact where w*g would round). Only where the weights are known by construction
     * (device and blocking buckets), so every rank decides alike; a non-blocking bucket launched
     * before the weights arrived is multiplied as before. */
    bk->plain = p->op == DJCT_COMM_WEIGHTED && (bk->device >= 0 || blocking) && p->wequal && w > 0;
    if ((rc = coll_enter(c, "reduce bucket", k)) < 0)
        return rc;
    if (bk->device >= 0) {
        djct_nccl *nc = c->nccl;
        size_t es = djct_dtype_size(bk->rt);
        if (!bk->zero_copy)
            for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
                const seg_t *sg = &p->segs[bk->seg0 + j];
                if ((rc = djct_nccl_copy(nc, (char *)bk->data + pos * es, elem_ptr(&p->bufs[sg->buf], sg->off), sg->count * es)) < 0)
                    return rc;
                pos += sg->count;
            }
        if (w == 0.0 && (rc = djct_nccl_zero(nc, bk->data, bk->count * es)) < 0)
            return rc;
        if (bk->plain)
            rc = djct_nccl_allreduce(nc, bk->data, bk->count, bk->rt, DJCT_NCCL_AVG, 1.0);
        else if (p->op == DJCT_COMM_WEIGHTED)
            rc = djct_nccl_allreduce(nc, bk->data, bk->count, bk->rt, DJCT_NCCL_PREMUL, p->wsum > 0 ? w / p->wsum : 0.0);
        else
            rc = djct_nccl_allreduce(nc, bk->data, bk->count, bk->rt, p->op == DJCT_COMM_AVERAGE ? DJCT_NCCL_AVG : DJCT_NCCL_SUM, 1.0);
        if (rc < 0)
            return rc;
        if (!bk->zero_copy)
            for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
                const seg_t *sg = &p->segs[bk->seg0 + j];
                if ((rc = djct_nccl_copy(nc, elem_ptr(&p->bufs[sg->buf], sg->off), (char *)bk->data + pos * es, sg->count * es)) < 0)
                    return rc;
                pos += sg->count;
            }
        djct_nccl_event_free(bk->event);
        bk->event = NULL;
        if ((rc = djct_nccl_record(nc, &bk->event)) < 0)
            return rc;
        bk->state = 1;
        return 0;
    }
    /* one rank with a nonzero weight: the average of one contribution is itself (w*g/w would
     * only add a rounding), so nothing is packed, reduced or unpacked. Weight 0 takes the normal
     * path, which zeroes. */
    bk->identity = c->size == 1 && w != 0.0;
    if (bk->identity) {
        bk->req = MPI_REQUEST_NULL; /* "in flight" completes at once on every path */
        bk->state = blocking ? 2 : 1;
        return 0;
    }
    double wm = bk->plain ? 1.0 : w;
    if (bk->zero_copy)
        scale_mul(bk->data, bk->count, bk->rt, wm);
    else
        for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
            const seg_t *sg = &p->segs[bk->seg0 + j];
            pack_seg((char *)bk->data + pos * djct_dtype_size(bk->rt), elem_ptr(&p->bufs[sg->buf], sg->off), sg->count,
                     p->bufs[sg->buf].dtype, wm);
            pos += sg->count;
        }
    MPI_Datatype t = bk->rt == DJCT_DTYPE_FLOAT64 ? MPI_DOUBLE : MPI_FLOAT;
    bk->divided = 0;
    if (blocking) {
        double div = bucket_divisor(p, bk);
        if (div != 1.0 && c->sum_div != MPI_OP_NULL) {
            tl_div = div;
            bk->divided = 1;
        }
        if ((rc = coll_allreduce(c, bk->data, (int)bk->count, t, bk->divided ? c->sum_div : MPI_SUM)) < 0)
            return rc;
        bk->state = 2;
        return 0;
    }
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, bk->data, (int)bk->count, t, MPI_SUM, c->world, &bk->req));
    bk->state = 1;
    return 0;
}

/* the reduction of bucket k has landed: scale and unpack (host), nothing more (device) */
static void complete(djct_comm_plan *p, size_t k)
{
    bucket_t *bk = &p->b[k];
    bk->state = 2;
    p->ndone++;
    if (bk->device >= 0 || bk->identity)
        return;
    double div = bk->divided ? 1.0 : bucket_divisor(p, bk);
    if (bk->zero_copy)
        scale_div(bk->data, bk->count, bk->rt, div);
    else
        for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
            const seg_t *sg = &p->segs[bk->seg0 + j];
            unpack_seg(elem_ptr(&p->bufs[sg->buf], sg->off), (char *)bk->data + pos * djct_dtype_size(bk->rt), sg->count,
                       p->bufs[sg->buf].dtype, div);
            pos += sg->count;
        }
}

/* test in-flight buckets, oldest first; stop at the first one still running */
static int poll_inflight(djct_comm_plan *p)
{
    for (size_t k = 0; k < p->next_launch; k++) {
        bucket_t *bk = &p->b[k];
        if (bk->state != 1)
            continue;
        int done = 0, rc;
        if (bk->device >= 0) {
            if ((rc = djct_nccl_query(bk->event, &done)) < 0)
                return rc;
        } else
            MPI_TRY(p->c, MPI_Test(&bk->req, &done, MPI_STATUS_IGNORE));
        if (!done)
            return 0;
        int known = 0;
        if ((rc = weight_sum(p, 0, &known)) < 0)
            return rc;
        if (!known)
            return 0; /* unpack once the divisor is known */
        complete(p, k);
    }
    return 0;
}

/* Launch the buckets whose buffers are all ready, in order. The last host bucket is kept for
 * djct_comm_plan_finish: its gradients are the last ones backward produces, so there is nothing
 * left to overlap with, and finish reduces it with the blocking path (tuned algorithms, the
 * division fused into the reduction) instead of a non-blocking one that only progresses when
 * polled. A plan of one bucket (an MLP of 1 MB) thus costs what the blocking reduction costs. */
static int launch_ready(djct_comm_plan *p, int final)
{
    int rc;
    while (p->next_launch < p->nb && p->b[p->next_launch].pending == 0) {
        size_t k = p->next_launch;
        int last_host = k + 1 == p->nb && p->b[k].device < 0;
        if (last_host && !final)
            break;
        if ((rc = launch(p, k, last_host)) < 0)
            return rc;
        p->next_launch++;
        if (last_host)
            complete(p, k);
    }
    return 0;
}

int djct_comm_plan_start(djct_comm_plan *p, djct_comm_op op, double weight)
{
    DJCT_CHECK_ARG(p);
    int rc = start_step(p, op, weight);
    if (rc < 0)
        return rc;
    /* buckets made only of zero-length buffers do not exist; a plan may have none at all */
    return launch_ready(p, 0);
}

int djct_comm_plan_mark_ready(djct_comm_plan *p, size_t index)
{
    DJCT_CHECK_ARG(p);
    if (!p->active)
        return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu marked ready outside a step; call djct_comm_plan_start first",
                              p->c->rank, index);
    if (index >= p->n)
        return djct_error_set(DJCT_EINVAL, "rank %d: buffer index %zu out of range (the plan has %zu buffers)", p->c->rank,
                              index, p->n);
    if (p->ready[index])
        return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu marked ready twice in one step", p->c->rank, index);
    p->ready[index] = 1;
    for (size_t k = p->b_first[index]; k < p->b_end[index]; k++)
        p->b[k].pending--;
    int rc = launch_ready(p, 0);
    return rc < 0 ? rc : poll_inflight(p);
}

int djct_comm_plan_progress(djct_comm_plan *p)
{
    DJCT_CHECK_ARG(p);
    return p->active ? poll_inflight(p) : 0;
}

int djct_comm_plan_finish(djct_comm_plan *p)
{
    DJCT_CHECK_ARG(p);
    djct_comm *c = p->c;
    if (!p->active)
        return djct_error_set(DJCT_EINVAL, "rank %d: djct_comm_plan_finish without djct_comm_plan_start", c->rank);
    int rc = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!p->ready[i]) {
            p->ready[i] = 1;
            for (size_t k = p->b_first[i]; k < p->b_end[i]; k++)
                p->b[k].pending--;
        }
    if ((rc = weight_sum(p, 1, NULL)) < 0 || (rc = launch_ready(p, 1)) < 0)
        goto out;
    /* host buckets: wait oldest first, unpacking each as it lands */
    for (size_t k = 0; k < p->nb; k++) {
        bucket_t *bk = &p->b[k];
        if (bk->state != 1 || bk->device >= 0)
            continue;
        c->what = "reduce bucket";
        c->what_index = k;
        if ((rc = wait_reqs(c, 1, &bk->req)) < 0)
            goto out;
        complete(p, k);
    }
    if (c->nccl) {
        int any = 0;
        for (size_t k = 0; k < p->nb; k++)
            any |= p->b[k].device >= 0 && p->b[k].state == 1;
        if (any && (rc = djct_nccl_sync(c->nccl)) < 0)
            goto out;
        for (size_t k = 0; k < p->nb; k++)
            if (p->b[k].state == 1)
                complete(p, k);
    }
    if (p->op == DJCT_COMM_WEIGHTED && !(p->wsum > 0))
        rc = djct_error_set(DJCT_EINVAL, "rank %d: every rank passed weight 0, nothing to average; the buffers hold zeros. "
                            "Skip the optimizer step when no rank had events", c->rank);
out:
    if (p->wpending && !c->broken) /* an error path: keep the collectives matched */
        MPI_Wait(&p->wreq, MPI_STATUS_IGNORE);
    p->wpending = 0;
    p->active = 0;
    return rc;
}

int djct_comm_plan_reduce(djct_comm_plan *p, djct_comm_op op, double weight)
{
    DJCT_CHECK_ARG(p);
    int rc = start_step(p, op, weight);
    if (rc < 0)
        return rc;
    /* everything is ready: blocking reductions bucket by bucket (MPI's tuned algorithms) */
    for (size_t k = 0; k < p->nb; k++) {
        p->b[k].pending = 0;
        int blocking = p->b[k].device < 0;
        if ((rc = launch(p, k, blocking)) < 0) {
            if (p->wpending && !p->c->broken)
                MPI_Wait(&p->wreq, MPI_STATUS_IGNORE);
            p->wpending = 0;
            p->active = 0;
            return rc;
        }
        p->next_launch = k + 1;
        if (blocking)
            complete(p, k);
    }
    for (size_t i = 0; i < p->n; i++)
        p->ready[i] = 1;
    return djct_comm_plan_finish(p);
}

/* ============================ broadcast and consistency ============================ */

int djct_comm_broadcast(djct_comm *c, const djct_comm_buffer *bufs, size_t n, int root)
{
    DJCT_CHECK_ARG(c);
    if (root < 0 || root >= c->size)
        return djct_error_set(DJCT_EINVAL, "rank %d: broadcast root %d; use 0..%d", c->rank, root, c->size - 1);
    int rc = check_buffers(c, bufs, n, 1);
    if ((rc = agree(c, rc, "djct_comm_broadcast")) < 0)
        return rc;
    if ((rc = coll_enter(c, "broadcast layout check", SIZE_MAX)) < 0 ||
        (rc = agree_sig(c, DJCT_EINVAL, layout_sig(bufs, n), "buffer lists (counts, dtypes)", "; every rank must pass the same buffers",
                        NULL, NULL)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = bufs[i].count * djct_dtype_size(bufs[i].dtype);
        if ((rc = coll_enter(c, "broadcast buffer", i)) < 0)
            return rc;
        if (bufs[i].device >= 0) {
            if ((rc = djct_nccl_broadcast(c->nccl, bufs[i].ptr, bytes, root)) < 0)
                return rc;
            continue;
        }
        for (size_t off = 0; off < bytes;) { /* MPI counts are int */
            size_t chunk = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
            if ((rc = coll_bcast(c, (char *)bufs[i].ptr + off, (int)chunk, MPI_BYTE, root)) < 0)
                return rc;
            off += chunk;
        }
    }
    return 0;
}

/* 64-bit hash of bytes: 8-byte words through a multiply-xorshift mix (memory-speed, not crypto) */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *s = data;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = (h ^ v) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    memcpy(&tail, s + i, len - i);
    h = (h ^ tail ^ ((uint64_t)len << 56)) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

int djct_comm_check_consistent(djct_comm *c, const djct_comm_buffer *bufs, size_t n, int *n_differing)
{
    DJCT_CHECK_ARG(c);
    if (n_differing)
        *n_differing = 0;
    int rc = check_buffers(c, bufs, n, 1);
    uint64_t *h = calloc(n + 1, sizeof(uint64_t));
    if (rc == 0 && !h)
        rc = djct_error_oom();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t bytes = bufs[i].count * djct_dtype_size(bufs[i].dtype);
        if (bufs[i].device >= 0) {
            unsigned char tmp[1 << 16];
            uint64_t hh = 0;
            for (size_t off = 0; rc == 0 && off < bytes; off += sizeof(tmp)) {
                size_t l = bytes - off < sizeof(tmp) ? bytes - off : sizeof(tmp);
                if ((rc = djct_dev_to_host(tmp, (const char *)bufs[i].ptr + off, l)) == 0)
                    hh = hash_bytes(hh, tmp, l);
            }
            h[i] = hh;
        } else
            h[i] = hash_bytes((uint64_t)i, bufs[i].ptr, bytes);
        h[n] = h[n] * 31 + h[i];
    }
    if ((rc = agree(c, rc, "djct_comm_check_consistent")) < 0 || (rc = coll_enter(c, "consistency check", SIZE_MAX)) < 0) {
        free(h);
        return rc;
    }
    /* rank 0's per-buffer hashes travel to everyone, so each rank finds its first differing buffer */
    uint64_t *h0 = malloc(sizeof(uint64_t) * (n + 1));
    int *first = malloc(sizeof(int) * (size_t)c->size);
    if (!h0 || !first) {
        free(h);
        free(h0);
        free(first);
        return djct_error_oom();
    }
    memcpy(h0, h, sizeof(uint64_t) * (n + 1));
    rc = n + 1 <= (size_t)INT32_MAX ? coll_bcast(c, h0, (int)(n + 1), MPI_UINT64_T, 0)
                                    : djct_error_set(DJCT_EINVAL, "too many buffers (%zu)", n);
    int mine = -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (h[i] != h0[i]) {
            mine = (int)i;
            break;
        }
    if (rc == 0)
        rc = coll_allgather(c, &mine, first, 1, MPI_INT);
    if (rc == 0) {
        char list[300] = "", detail[200] = "";
        size_t len = 0;
        int bad = 0;
        for (int r = 0; r < c->size; r++)
            if (first[r] >= 0) {
                if (!bad)
                    snprintf(detail, sizeof(detail), " (first differing buffer on rank %d: %d)", r, first[r]);
                if (len < sizeof(list) - 16)
                    len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", bad ? ", " : "", r);
                bad++;
            }
        if (n_differing)
            *n_differing = bad;
        if (bad)
            rc = djct_error_set(DJCT_ERROR, "parameters differ from rank 0 on rank%s %s%s; broadcast them from rank 0 "
                                "(djct_comm_broadcast) or look for rank-dependent initialisation", bad > 1 ? "s" : "",
                                list, detail);
    }
    free(h);
    free(h0);
    free(first);
    return rc;
}
