/* comm's small collectives on the watched path: the barrier, and the helpers every djct
 * collective of comm uses once comm_enter() numbered it. Without a timeout they are the blocking
 * MPI calls (the tuned algorithms); with one, small messages go non-blocking with a watched wait
 * and large ones wait for every rank first (comm_blocking_now). */
#include "comm_int.h"
#include "djct_int.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Return from the calling collective: without a timeout the blocking MPI call; with one its
 * non-blocking form (it fills the request `r` the macro declares), waited for under the watchdog. */
#define BLOCKING_OR_WATCHED(c, blocking, nonblocking)                                        \
    do {                                                                                     \
        if ((c)->timeout <= 0) {                                                             \
            MPI_TRY(c, blocking);                                                            \
            return 0;                                                                        \
        }                                                                                    \
        MPI_Request r;                                                                       \
        MPI_TRY(c, nonblocking);                                                             \
        return comm_wait_reqs(c, 1, &r);                                                     \
    } while (0)

int djct_comm_barrier(djct_comm *c)
{
    DJCT_CHECK_ARG(c);
    int rc;
    if ((rc = comm_enter(c, "barrier", SIZE_MAX)) < 0)
        return rc;
    BLOCKING_OR_WATCHED(c, MPI_Barrier(c->world), MPI_Ibarrier(c->world, &r));
}

int comm_coll_allreduce(djct_comm *c, void *buf, int count, MPI_Datatype t, MPI_Op op)
{
    int rc;
    if (comm_blocking_now(c, count, t, &rc))
        return rc < 0 ? rc : comm_blocking_done(c, MPI_Allreduce(MPI_IN_PLACE, buf, count, t, op, c->world), "MPI_Allreduce");
    MPI_Request r;
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, buf, count, t, op, c->world, &r));
    return comm_wait_reqs(c, 1, &r);
}

int comm_coll_bcast(djct_comm *c, void *buf, int count, MPI_Datatype t, int root)
{
    int rc;
    if (comm_blocking_now(c, count, t, &rc))
        return rc < 0 ? rc : comm_blocking_done(c, MPI_Bcast(buf, count, t, root, c->world), "MPI_Bcast");
    MPI_Request r;
    MPI_TRY(c, MPI_Ibcast(buf, count, t, root, c->world, &r));
    return comm_wait_reqs(c, 1, &r);
}

int comm_coll_allgather(djct_comm *c, const void *mine, void *all, int count, MPI_Datatype t)
{
    BLOCKING_OR_WATCHED(c, MPI_Allgather(mine, count, t, all, count, t, c->world),
                        MPI_Iallgather(mine, count, t, all, count, t, c->world, &r));
}

/* ============================ small collectives for other modules ============================ */

/* Reductions and broadcasts of a few values: the caller's agreements (flags, counters, sums).
 * Each is one numbered collective whose label names it in the watchdog's message. */

#define LABEL_OR(label, dflt) ((label) && *(label) ? (label) : (dflt))

static int mpi_type_of(const djct_comm *c, djct_dtype dt, MPI_Datatype *t)
{
    switch (dt) {
    case DJCT_DTYPE_FLOAT32: *t = MPI_FLOAT; return 0;
    case DJCT_DTYPE_FLOAT64: *t = MPI_DOUBLE; return 0;
    case DJCT_DTYPE_INT32:   *t = MPI_INT32_T; return 0;
    case DJCT_DTYPE_INT64:   *t = MPI_INT64_T; return 0;
    default:
        return djct_error_set(DJCT_EINVAL, "rank %d: dtype %s cannot be reduced element-wise here; use int32, int64, "
                              "float32 or float64", c->rank, djct_dtype_name(dt));
    }
}

static int mpi_op_of(const djct_comm *c, djct_comm_reduce_op op, MPI_Op *o)
{
    switch (op) {
    case DJCT_COMM_REDUCE_SUM: *o = MPI_SUM; return 0;
    case DJCT_COMM_REDUCE_MIN: *o = MPI_MIN; return 0;
    case DJCT_COMM_REDUCE_MAX: *o = MPI_MAX; return 0;
    default:
        return djct_error_set(DJCT_EINVAL, "rank %d: reduce op %d is not a djct_comm_reduce_op", c->rank, (int)op);
    }
}

static int check_count(const djct_comm *c, size_t count, const void *buf)
{
    if (count > (size_t)INT_MAX)
        return djct_error_set(DJCT_EINVAL, "rank %d: %zu elements in one small collective; at most %d", c->rank, count,
                              INT_MAX);
    if (count && !buf)
        return djct_error_set(DJCT_EINVAL, "rank %d: NULL buffer with %zu elements", c->rank, count);
    return 0;
}

int djct_comm_allreduce(djct_comm *c, void *buf, size_t count, djct_dtype dtype, djct_comm_reduce_op op,
                        const char *label)
{
    DJCT_CHECK_ARG(c);
    MPI_Datatype t = MPI_DATATYPE_NULL;
    MPI_Op o = MPI_OP_NULL;
    int rc;
    if ((rc = mpi_type_of(c, dtype, &t)) < 0 || (rc = mpi_op_of(c, op, &o)) < 0 || (rc = check_count(c, count, buf)) < 0)
        return rc;
    return djct_comm_mpi_allreduce(c, buf, (int)count, t, o, LABEL_OR(label, "allreduce"));
}

int djct_comm_bcast(djct_comm *c, void *buf, size_t bytes, int root, const char *label)
{
    DJCT_CHECK_ARG(c);
    int rc;
    if ((rc = check_count(c, bytes, buf)) < 0)
        return rc;
    if (root < 0 || root >= c->size)
        return djct_error_set(DJCT_EINVAL, "rank %d: broadcast root %d; use 0..%d", c->rank, root, c->size - 1);
    return djct_comm_mpi_bcast(c, buf, (int)bytes, MPI_BYTE, root, LABEL_OR(label, "broadcast"));
}

int djct_comm_mpi_allreduce(djct_comm *c, void *buf, int count, MPI_Datatype t, MPI_Op op, const char *label)
{
    int rc = comm_enter(c, label, SIZE_MAX);
    return rc < 0 ? rc : comm_coll_allreduce(c, buf, count, t, op);
}

int djct_comm_mpi_bcast(djct_comm *c, void *buf, int count, MPI_Datatype t, int root, const char *label)
{
    int rc = comm_enter(c, label, SIZE_MAX);
    return rc < 0 ? rc : comm_coll_bcast(c, buf, count, t, root);
}

/* Rooted: the ranks that are not the root need not wait for it, so no arrival barrier is added
 * at any size; watched, the non-blocking reduction. */
int djct_comm_mpi_reduce(djct_comm *c, void *buf, int count, MPI_Datatype t, MPI_Op op, int root, const char *label)
{
    int rc;
    if ((rc = comm_enter(c, label, SIZE_MAX)) < 0)
        return rc;
    const void *send = c->rank == root ? MPI_IN_PLACE : buf;
    BLOCKING_OR_WATCHED(c, MPI_Reduce(send, buf, count, t, op, root, c->world),
                        MPI_Ireduce(send, buf, count, t, op, root, c->world, &r));
}

int djct_comm_mpi_allgather(djct_comm *c, const void *mine, void *all, int count, MPI_Datatype t, const char *label)
{
    int rc = comm_enter(c, label, SIZE_MAX);
    return rc < 0 ? rc : comm_coll_allgather(c, mine, all, count, t);
}

int djct_comm_mpi_allgatherv(djct_comm *c, const void *mine, int count, void *all, const int *counts, const int *displs,
                             MPI_Datatype t, const char *label)
{
    int rc;
    if ((rc = comm_enter(c, label, SIZE_MAX)) < 0)
        return rc;
    BLOCKING_OR_WATCHED(c, MPI_Allgatherv(mine, count, t, all, counts, displs, t, c->world),
                        MPI_Iallgatherv(mine, count, t, all, counts, displs, t, c->world, &r));
}

/* ============================ non-blocking collectives ============================ */

#define TAG_BCAST_P2P 4242 /* the point-to-point form of djct_comm_mpi_ibcast, on the world dup */

int djct_comm_request_create(djct_comm_request **out, djct_comm *c)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(c);
    *out = NULL;
    djct_comm_request *q = calloc(1, sizeof(*q));
    if (!q || !(q->reqs = malloc(sizeof(MPI_Request) * (size_t)c->size))) {
        free(q);
        return djct_error_oom();
    }
    q->c = c;
    q->cap = c->size;
    *out = q;
    return 0;
}

void djct_comm_request_free(djct_comm_request *q)
{
    if (!q)
        return;
    free(q->reqs);
    free(q);
}

/* number the collective; the label is copied, since it is waited for after the caller's string
 * may be gone */
static int request_enter(djct_comm_request *q, const char *label)
{
    djct_comm *c = q->c;
    if (q->n)
        return djct_error_set(DJCT_EINVAL, "rank %d: a new collective (%s) on a request still in flight (%s); call "
                              "djct_comm_wait first", c->rank, label, q->label);
    snprintf(q->label, sizeof(q->label), "%s", label);
    int rc = comm_enter(c, q->label, SIZE_MAX);
    q->seq = c->seq;
    return rc;
}

int djct_comm_allreduce_start(djct_comm_request *q, void *buf, size_t count, djct_dtype dtype, djct_comm_reduce_op op,
                              const char *label)
{
    DJCT_CHECK_ARG(q);
    djct_comm *c = q->c;
    MPI_Datatype t = MPI_DATATYPE_NULL;
    MPI_Op o = MPI_OP_NULL;
    int rc;
    if ((rc = mpi_type_of(c, dtype, &t)) < 0 || (rc = mpi_op_of(c, op, &o)) < 0 || (rc = check_count(c, count, buf)) < 0 ||
        (rc = request_enter(q, LABEL_OR(label, "allreduce"))) < 0)
        return rc;
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, t, o, c->world, &q->reqs[0]));
    q->n = 1;
    return 0;
}

int djct_comm_mpi_ibcast(djct_comm_request *q, void *buf, int count, MPI_Datatype t, int root, int p2p_max,
                         const char *label)
{
    djct_comm *c = q->c;
    int rc;
    if ((rc = request_enter(q, label)) < 0)
        return rc;
    if (c->size > p2p_max) {
        MPI_TRY(c, MPI_Ibcast(buf, count, t, root, c->world, &q->reqs[0]));
        q->n = 1;
    } else if (c->rank == root) {
        for (int r = 0; r < c->size; r++)
            if (r != root) {
                MPI_TRY(c, MPI_Isend(buf, count, t, r, TAG_BCAST_P2P, c->world, &q->reqs[q->n]));
                q->n++;
            }
    } else {
        MPI_TRY(c, MPI_Irecv(buf, count, t, root, TAG_BCAST_P2P, c->world, &q->reqs[0]));
        q->n = 1;
    }
    return 0;
}

int djct_comm_wait(djct_comm_request *q)
{
    DJCT_CHECK_ARG(q);
    if (!q->n)
        return 0;
    djct_comm *c = q->c;
    int n = q->n;
    q->n = 0; /* idle from here on, also after an error: a broken comm abandons its requests */
    if (c->broken)
        return djct_error_set(DJCT_EMPI, "rank %d: the communicator is unusable after %s timed out; abort the job with "
                              "djct_comm_abort()", c->rank, c->broken_what);
    c->what = q->label;
    c->what_index = SIZE_MAX;
    c->wait_seq = q->seq;
    return comm_wait_reqs(c, n, q->reqs);
}
