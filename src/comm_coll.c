/* comm's small collectives on the watched path: the barrier, and the helpers every djct
 * collective of comm uses once comm_enter() numbered it. Without a timeout they are the blocking
 * MPI calls (the tuned algorithms); with one, small messages go non-blocking with a watched wait
 * and large ones wait for every rank first (comm_blocking_now). */
#include "comm_int.h"
#include "djct_int.h"

#include <stdint.h>

int djct_comm_barrier(djct_comm *c)
{
    DJCT_CHECK_ARG(c);
    int rc;
    if ((rc = comm_enter(c, "barrier", SIZE_MAX)) < 0)
        return rc;
    if (c->timeout <= 0) {
        MPI_TRY(c, MPI_Barrier(c->world));
        return 0;
    }
    MPI_Request r;
    MPI_TRY(c, MPI_Ibarrier(c->world, &r));
    return comm_wait_reqs(c, 1, &r);
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
    if (c->timeout <= 0) {
        MPI_TRY(c, MPI_Allgather(mine, count, t, all, count, t, c->world));
        return 0;
    }
    MPI_Request r;
    MPI_TRY(c, MPI_Iallgather(mine, count, t, all, count, t, c->world, &r));
    return comm_wait_reqs(c, 1, &r);
}

