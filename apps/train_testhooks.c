/* Hooks for the tests of djct_train, read from the environment and off unless set:
 * DJCT_TEST_HOLD_AT_STEP (wait for a signal after a step) and DJCT_TEST_FAULT (a rank fails after a
 * step the way real ranks fail). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train_int.h"

/* DJCT_TEST_FAULT=RANK:STEP:KIND (tests only): after global step STEP, rank RANK fails the way a
 * real rank can fail: `stop` (SIGSTOP: a stalled rank), `kill` (SIGKILL: a crashed node), `exit`
 * (exit(0) without MPI_Finalize: a library that quits). The other ranks must end the job. */
enum { FAULT_NONE, FAULT_STOP, FAULT_KILL, FAULT_EXIT };

static int parse_fault(run *R)
{
    R->fault_kind = FAULT_NONE;
    const char *f = getenv("DJCT_TEST_FAULT");
    char kind[16] = "";
    int rank = -1;
    long long step = -1;
    if (!f || !*f)
        return 0;
    if (sscanf(f, "%d:%lld:%15s", &rank, &step, kind) != 3 ||
        !(R->fault_kind = !strcmp(kind, "stop") ? FAULT_STOP : !strcmp(kind, "kill") ? FAULT_KILL
                                                  : !strcmp(kind, "exit")           ? FAULT_EXIT
                                                                                      : FAULT_NONE))
        return -1;
    R->fault_rank = rank;
    R->fault_step = step;
    return 0;
}

int test_hooks_read(run *R)
{
    const char *hold = getenv("DJCT_TEST_HOLD_AT_STEP");
    R->hold_at_step = hold && *hold ? strtoll(hold, NULL, 10) : -1;
    return parse_fault(R);
}

/* DJCT_TEST_HOLD_AT_STEP=N: after global step N the ranks wait (up to 5 minutes) until one of them
 * has received a signal, so that a test can signal a training job without racing its end. The
 * ranks poll together (a one-value sum every 10 ms), so all leave at the same poll. */
static void hold_for_signal(run *R, int64_t global_step)
{
    if (global_step != R->hold_at_step)
        return;
    if (R->rank == 0) {
        printf("holding after step %" PRId64 " until a signal arrives (DJCT_TEST_HOLD_AT_STEP)\n", global_step);
        fflush(stdout);
    }
    float any = 0;
    djct_comm_buffer b = {&any, 1, DJCT_DTYPE_FLOAT32, -1};
    djct_comm_plan *p = NULL;
    if (djct_comm_plan_create(&p, R->comm, &b, 1, NULL))
        FAIL(R, "DJCT_TEST_HOLD_AT_STEP: %s", djct_last_error());
    struct timespec tick = {0, 10000000};
    for (int i = 0; i < 30000; i++) {
        any = djct_signals_pending() != DJCT_SIGNAL_NONE;
        if (djct_comm_plan_reduce(p, DJCT_COMM_SUM, 0))
            FAIL(R, "DJCT_TEST_HOLD_AT_STEP: %s", djct_last_error());
        if (any > 0)
            break;
        nanosleep(&tick, NULL);
    }
    djct_comm_plan_free(p);
}

static void inject_fault(const run *R, const djct_step_report *r)
{
    if (R->fault_kind == FAULT_NONE || R->rank != R->fault_rank || r->global_step != R->fault_step)
        return;
    fprintf(stderr, PROG ": rank %d: DJCT_TEST_FAULT: %s after global step %" PRId64 " (epoch %" PRId64 " step %" PRId64 ")\n",
            R->rank, R->fault_kind == FAULT_STOP ? "stopping" : R->fault_kind == FAULT_KILL ? "killing myself" : "exit(0)",
            r->global_step, r->epoch, r->step);
    fflush(stderr);
    if (R->fault_kind == FAULT_STOP)
        raise(SIGSTOP);
    else if (R->fault_kind == FAULT_KILL)
        raise(SIGKILL);
    else
        exit(0);
}

void test_hooks_step(run *R, const djct_step_report *r)
{
    hold_for_signal(R, r->global_step);
    inject_fault(R, r);
}
