/* comm's watchdog. Invariant: every collective djct issues goes through comm_enter(), which
 * numbers it; a rank that times out asks its peers (point to point, on a private duplicate of the
 * world communicator) which collective they are in, and names those that never arrived. Ranks
 * answer such queries whenever they wait inside a djct collective, so no helper thread is needed.
 * Large collectives wait for every rank first (watched), then run the blocking call under a guard
 * timer that aborts the job should MPI itself stall. */
#include "comm_int.h"
#include "djct_int.h"
#include "util_int.h"

#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TAG_QUERY  101
#define TAG_ANSWER 102

int comm_enter(djct_comm *c, const char *what, size_t index)
{
    if (c->broken)
        return djct_error_set(DJCT_EMPI, "rank %d: the communicator is unusable after %s timed out; abort the job with "
                              "djct_comm_abort()", c->rank, c->broken_what);
    c->wait_seq = ++c->seq;
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

/* A peer has arrived at the collective we wait for when it entered it or a later one: every rank
 * enters djct collectives in the same order. */
static int wd_timeout(djct_comm *c, double waited)
{
    c->broken = 1;
    char idx[32];
    what_index_str(c, idx, sizeof(idx));
    /* the name outlives the caller's label: later calls report it */
    snprintf(c->broken_what, sizeof(c->broken_what), "%s%s (collective #%llu)", c->what, idx,
             (unsigned long long)c->wait_seq);
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)c->size);
    if (!seen)
        return djct_error_set(DJCT_ETIMEOUT, "rank %d: %s did not complete within %.1f s", c->rank, c->broken_what, waited);
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
    double t0 = djct_now_s();
    int answered = 1;
    while (answered < c->size && djct_now_s() - t0 < grace) {
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
    char detail[400] = "";
    size_t dl = 0;
    djct_rank_list missing = {.len = 0};
    for (int r = 0; r < c->size; r++) {
        if (seen[r] >= (int64_t)c->wait_seq)
            continue;
        djct_rank_list_add(&missing, r);
        if (dl < sizeof(detail) - 64)
            dl += seen[r] < 0
                      ? (size_t)snprintf(detail + dl, sizeof(detail) - dl, "; rank %d does not answer (busy outside djct collectives)", r)
                      : (size_t)snprintf(detail + dl, sizeof(detail) - dl, "; rank %d waits in collective #%lld", r, (long long)seen[r]);
    }
    free(seen);
    if (!missing.count)
        return djct_error_set(DJCT_ETIMEOUT, "rank %d: %s did not complete within %.1f s although every rank arrived; "
                              "the communicator is unusable, abort the job", c->rank, c->broken_what, waited);
    return djct_error_set(DJCT_ETIMEOUT, "rank %d: %s did not complete within %.1f s; ranks that did not arrive: %s%s; "
                          "abort the job (djct_comm_abort) and look at those ranks", c->rank, c->broken_what, waited,
                          missing.text, detail);
}

#define WAIT_SPIN_SECONDS 100e-6

int comm_wait_reqs(djct_comm *c, int n, MPI_Request *reqs)
{
    if (n == 0)
        return 0;
    if (c->timeout <= 0) {
        MPI_TRY(c, MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE));
        return 0;
    }
    double t0 = djct_now_s();
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
            double w = djct_now_s() - t0;
            if (w > c->timeout)
                return wd_timeout(c, w);
            /* spin briefly (the peer is usually about to arrive), then give the core away on
             * every poll: a rank that waits long is waiting for a peer or for its own helper
             * threads (prefetch, journal) that may need this core */
            yield = w > WAIT_SPIN_SECONDS;
        }
    }
}

/* Blocking collective helpers. Without a timeout: plain blocking MPI (the tuned algorithms).
 * With one, small messages: non-blocking + watched wait. Large messages with one: a watched
 * non-blocking barrier first (a missing rank is named as with small ones), then, every rank
 * being there, the blocking call under a guard timer: the non-blocking reductions (libnbc)
 * progress only while polled and use slower algorithms, which large buckets would feel. */
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
            c->rank, c->what, idx, (unsigned long long)c->wait_seq, c->timeout);
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
        *rc = comm_mpi_err(c, e, "MPI_Ibarrier");
        return 1;
    }
    if ((*rc = comm_wait_reqs(c, 1, &r)) < 0)
        return 1;
    if (guard_set(c, c->timeout) != 0) { /* no timer: the watched non-blocking path */
        *rc = 0;
        return 0;
    }
    return 1;
}

/* 1: run the blocking call now (*rc < 0: the watched arrival failed; return it), 0: take the
 * watched non-blocking path */
int comm_blocking_now(djct_comm *c, int count, MPI_Datatype t, int *rc)
{
    *rc = 0;
    if (c->timeout <= 0)
        return 1;
    int ts = 0;
    MPI_Type_size(t, &ts);
    return arrive_first(c, (size_t)count * (size_t)ts, rc);
}

int comm_blocking_done(djct_comm *c, int e, const char *call)
{
    if (c->timeout > 0)
        guard_set(c, 0);
    return e == MPI_SUCCESS ? 0 : comm_mpi_err(c, e, call);
}
