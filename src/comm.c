/* comm: MPI start-up and topology. Ranks, node-local ranks and the node count come from MPI
 * alone; the GPU is chosen from the node-local rank; failures during creation are agreed on by
 * every rank before any later collective, so one rank's bad option cannot leave the others
 * waiting. The other parts of the module: comm_watchdog.c (numbering and watching collectives),
 * comm_coll.c (small collectives), comm_kernels.c (element passes), comm_plan.c (bucket plans),
 * comm_bcast.c (broadcast, consistency check), comm_nccl.c (the GPU backend). */
#include "comm_int.h"
#include "djct_int.h"
#include "util_int.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ============================ small helpers ============================ */

int comm_mpi_err(const djct_comm *c, int rc, const char *call)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    s[0] = '\0';
    MPI_Error_string(rc, s, &len);
    return djct_error_set(DJCT_EMPI, "rank %d: %s failed: %s", c ? c->rank : -1, call, s);
}

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
         * collectives) picks a binomial tree for 2 ranks, far slower than the blocking one for
         * buckets of a MiB; Rabenseifner (reduce-scatter + allgather) keeps pace with the blocking
         * one at every size (docs/comm.md). A user's own setting wins; other MPIs ignore it. */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
        /* Open MPI's shared-memory transport (vader) moves large messages with one kernel copy
         * (CMA, process_vm_readv), which pins the peer's pages on every transfer; copying through
         * the shared segment avoids that cost and was never slower in bench/allreduce's sweep
         * (docs/comm.md). A user's own setting (mpirun --mca, OMPI_MCA_...) wins. */
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
    if (!msg)
        ; /* the caller has said why */
    else if (!strncmp(msg, prefix, strlen(prefix)))
        fprintf(stderr, "%s\n", msg); /* djct messages already name the rank */
    else
        fprintf(stderr, "%s%s\n", prefix, *msg ? msg : "fatal error");
    fflush(stderr);
    fflush(stdout);
    if (init && !fin)
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1);
}

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

int comm_agree(djct_comm *c, int rc, const char *stage)
{
    int *all = malloc(sizeof(int) * (size_t)c->size);
    int mine = rc < 0 ? rc : 0;
    if (!all) {
        int worst = 0;
        MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MIN, c->world);
        return rc < 0 ? rc : worst < 0 ? djct_error_set(worst, "rank %d: %s failed on another rank", c->rank, stage) : 0;
    }
    MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, c->world);
    int first_code = 0;
    djct_rank_list bad = {.len = 0};
    for (int r = 0; r < c->size; r++)
        if (all[r] < 0) {
            if (!bad.count)
                first_code = all[r];
            djct_rank_list_add(&bad, r);
        }
    free(all);
    if (rc < 0)
        return rc;
    if (bad.count)
        return djct_error_set(first_code, "rank %d: %s failed on rank%s %s; see the error printed there",
                              c->rank, stage, djct_rank_list_plural(&bad), bad.text);
    return 0;
}

/* a communicator with nothing in it yet: every handle null, so djct_comm_free can take it */
static djct_comm *comm_new(void)
{
    djct_comm *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->world = c->wd = c->local = MPI_COMM_NULL;
    c->sum_div = MPI_OP_NULL;
    c->wstat = MPI_OP_NULL;
    c->wstat_t = MPI_DATATYPE_NULL;
    c->device = -1;
    c->backend = DJCT_COMM_BACKEND_MPI;
    c->lsize = c->nnodes = 1;
    return c;
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

    djct_comm *c = comm_new();
    if (!c)
        return djct_error_oom();
    c->timeout = o.timeout_seconds;
    int rc, len = 0;
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->world)) != MPI_SUCCESS ||
        (rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->wd)) != MPI_SUCCESS) {
        rc = comm_mpi_err(c, rc, "MPI_Comm_dup");
        goto fail;
    }
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    MPI_Get_processor_name(c->host, &len);
    /* key = world rank: local rank 0 is the node's lowest world rank */
    if ((rc = MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &c->local)) != MPI_SUCCESS) {
        rc = comm_mpi_err(c, rc, "MPI_Comm_split_type(SHARED)");
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

    if (c->size == 2 && (rc = MPI_Op_create(comm_sum_div_op, 1, &c->sum_div)) != MPI_SUCCESS) {
        c->sum_div = MPI_OP_NULL;
        rc = comm_mpi_err(c, rc, "MPI_Op_create");
        goto fail;
    }
    if ((rc = MPI_Type_contiguous(3, MPI_DOUBLE, &c->wstat_t)) != MPI_SUCCESS ||
        (rc = MPI_Type_commit(&c->wstat_t)) != MPI_SUCCESS || (rc = MPI_Op_create(comm_wstat_op, 1, &c->wstat)) != MPI_SUCCESS) {
        rc = comm_mpi_err(c, rc, "MPI_Op_create (weight statistics)");
        goto fail;
    }
    rc = choose_device(c, &o);
    if ((rc = comm_agree(c, rc, "device selection")) < 0)
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

int djct_comm_create_on(djct_comm **out, MPI_Comm base)
{
    DJCT_CHECK_ARG(out);
    *out = NULL;
    djct_comm *c = comm_new();
    if (!c)
        return djct_error_oom();
    int rc = MPI_Comm_dup(base, &c->world);
    if (rc != MPI_SUCCESS) {
        c->world = MPI_COMM_NULL;
        rc = comm_mpi_err(c, rc, "MPI_Comm_dup");
        djct_comm_free(c);
        return rc;
    }
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    snprintf(c->gpu_note, sizeof(c->gpu_note), "CPU (GPU binding off)");
    *out = c;
    return 0;
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

/* ============================ buffer lists (plans and broadcast) ============================ */

int comm_check_buffers(const djct_comm *c, const djct_comm_buffer *bufs, size_t n, int any_dtype)
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

uint64_t comm_layout_sig(const djct_comm_buffer *bufs, size_t n)
{
    uint64_t h = DJCT_FNV1A_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h = djct_fnv1a_u64(h, bufs[i].count);
        h = djct_fnv1a_u64(h, (uint64_t)bufs[i].dtype);
        h = djct_fnv1a_u64(h, bufs[i].device >= 0);
    }
    return djct_fnv1a_u64(h, n);
}

int comm_agree_sig(djct_comm *c, int code, uint64_t mine, const char *what, const char *fix, int *n_diff, int *first_rank)
{
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)c->size);
    if (!all)
        return djct_error_oom(); /* TODO: peers would wait; OOM of size*8 bytes is unrealistic */
    int rc = comm_coll_allgather(c, &mine, all, 1, MPI_UINT64_T);
    if (rc < 0) {
        free(all);
        return rc;
    }
    djct_rank_list bad = {.len = 0};
    for (int r = 1; r < c->size; r++)
        if (all[r] != all[0]) {
            if (!bad.count && first_rank)
                *first_rank = r;
            djct_rank_list_add(&bad, r);
        }
    free(all);
    if (n_diff)
        *n_diff = bad.count;
    if (bad.count)
        return djct_error_set(code, "%s differ from rank 0 on rank%s %s%s", what, djct_rank_list_plural(&bad), bad.text,
                              fix);
    return 0;
}

/* ============================ start-up report ============================ */

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
    int rc = comm_enter(c, "startup report", SIZE_MAX);
    if (rc == 0) {
        if (c->timeout <= 0)
            rc = MPI_Gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, c->world) == MPI_SUCCESS ? 0
                 : djct_error_set(DJCT_EMPI, "rank %d: MPI_Gather of the start-up lines failed", c->rank);
        else {
            MPI_Request r;
            MPI_Igather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, c->world, &r);
            rc = comm_wait_reqs(c, 1, &r);
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
