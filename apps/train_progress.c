/* After each training step, on the program's side: the steady-state rate summary.json reports,
 * rank 0's progress line and the trainer's warnings, then the tests' hooks. */
#include <stdio.h>
#include <string.h>

#include "train_int.h"

/* the first tenth of the steps this run will take, at least one */
void steady_start(steady_rate *s, int64_t planned)
{
    memset(s, 0, sizeof(*s));
    s->warmup = planned / 10 > 1 ? planned / 10 : 1;
}

static void steady_step(steady_rate *s, const djct_step_report *r, double now)
{
    if (++s->seen == s->warmup) {
        s->t0 = now;
    } else if (s->seen > s->warmup) {
        s->steps++;
        s->events += (double)r->events;
        s->elements += (double)r->elements;
        s->t1 = now;
    }
}

int on_train_step(void *user, const djct_step_report *r)
{
    run *R = user;
    double now = app_now_s();
    steady_step(&R->steady, r, now);
    if (r->warning && R->rank == 0) { /* every rank has it: rank 0 says it */
        app_progress_end(R->progress);
        fprintf(stderr, PROG ": warning: %s\n", r->warning);
        fflush(stderr);
    }
    app_progress_print(R->progress, r, now);
    test_hooks_step(R, r);
    return 0;
}
