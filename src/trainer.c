/* The step loop: data -> forward -> losses -> (agreement collective started) -> backward (+
 * bucketed reduction as gradients become ready) -> agreement completed -> optimizer. Every
 * decision that must be the same on all ranks (skip a non-finite step, stop on a signal,
 * checkpoint by the clock) comes out of the single agreement allreduce of each step or from the
 * averaged gradients every rank holds identically, so ranks can never take different branches.
 * A model on a GPU keeps its slabs there: comm reduces them in place ordered after libtorch's
 * stream, each batch is staged to the device one step ahead, and the host only ever sees what the
 * bridge copies back (the loss, a finite flag, metrics, checkpoints).
 * This file is the loop itself (steps, epochs, fit) and what it records; the trainer's other parts
 * are named in src/trainer_int.h. */
#include "djct/error.h"
#include "djct/log.h"
#include "djct/signals.h"
#include "djct_int.h"
#include "trainer_int.h"
#include "util_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* slots of the per-step agreement vector (summed over ranks) */
enum {
    AG_LOSS_W,    /* loss * weight */
    AG_WEIGHT,    /* weight used for the loss mean (events) */
    AG_EVENTS,
    AG_ELEMENTS,
    AG_NONFINITE, /* > 0: some rank saw a non-finite loss */
    AG_PREEMPT,   /* > 0: some rank got SIGUSR1/SIGTERM */
    AG_STOP,      /* > 0: some rank got SIGINT or a callback asked to stop */
    AG_CKPT_DUE,  /* > 0: rank 0's clock says checkpoint */
    AG_N
};

static int push(series *s, double x)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        double *nv = realloc(s->v, nc * sizeof(double));
        if (!nv)
            return djct_error_oom();
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = x;
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(series *s)
{
    if (!s->n)
        return 0;
    double *tmp = malloc(s->n * sizeof(double));
    if (!tmp)
        return s->v[s->n - 1];
    memcpy(tmp, s->v, s->n * sizeof(double));
    qsort(tmp, s->n, sizeof(double), cmp_d);
    double m = s->n % 2 ? tmp[s->n / 2] : 0.5 * (tmp[s->n / 2 - 1] + tmp[s->n / 2]);
    free(tmp);
    return m;
}

/* the gradient-ready hook: runs inside backward on the calling thread */
void tr_on_grad_ready(void *user, size_t index)
{
    djct_trainer *t = user;
    if (!t->step_open || t->hook_error)
        return;
    int rc = djct_comm_plan_mark_ready(t->plan, index);
    if (rc) {
        /* on a GPU libtorch runs backward (and this hook) on its own thread: the message is in
         * that thread's error buffer, so keep a copy for the trainer's thread */
        snprintf(t->hook_msg, sizeof(t->hook_msg), "%s", djct_last_error());
        t->hook_error = rc;
    }
}

/* targets = truths followed by weights (shallow copies; the batch owns the memory) */
int tr_make_targets(djct_trainer *t, const djct_record *b, const djct_array **targets, size_t *n)
{
    if (b->n_weights == 0) {
        *targets = b->truths;
        *n = b->n_truths;
        return 0;
    }
    size_t need = b->n_truths + b->n_weights;
    if (need > t->targets_cap) {
        djct_array *nv = realloc(t->targets, need * sizeof(djct_array));
        if (!nv)
            return djct_error_oom();
        t->targets = nv;
        t->targets_cap = need;
    }
    memcpy(t->targets, b->truths, b->n_truths * sizeof(djct_array));
    memcpy(t->targets + b->n_truths, b->weights, b->n_weights * sizeof(djct_array));
    *targets = t->targets;
    *n = need;
    return 0;
}

int tr_log_metric(void *user, const char *name, double value)
{
    djct_ctl_val_metric(user, name, value); /* user: the controls' monitor, in validation */
    djct_log(name, value);
    return 0;
}

/* files: ask the loader to describe the whole batch when no event holds a non-finite value (the
 * staged path, which names every batch before knowing its loss, leaves that out: see fetch_and_stage) */
static void describe_batch(djct_trainer *t, const djct_record *b, int64_t n_events, int files, batch_note *n)
{
    n->arr[0] = n->what[0] = '\0';
    n->ev = djct_record_nonfinite_event(b, n->arr, sizeof(n->arr));
    if (!(files || n->ev >= 0) || !t->train->describe ||
        t->train->describe(t->train->self, b, n->ev, n->what, sizeof(n->what)) < 0 || !n->what[0]) {
        if (n->ev >= 0)
            snprintf(n->what, sizeof(n->what), "event %" PRId64 " of its %" PRId64, n->ev, n_events);
        else
            snprintf(n->what, sizeof(n->what), "%" PRId64 " events", n_events);
    }
}

/* This rank's batch gave a non-finite loss: remember the epoch's first such batch by name (the
 * loader's files and events; the event holding a NaN or Inf when there is one). */
static void note_bad(djct_trainer *t, const batch_note *n)
{
    if (t->bad_step >= 0)
        return;
    if (n->ev >= 0)
        snprintf(t->bad_desc, sizeof(t->bad_desc), "step %" PRId64 ", rank %d's batch: %s holds a non-finite value "
                 "in %s; fix or drop that event", t->step, t->rank, n->what, n->arr);
    else
        snprintf(t->bad_desc, sizeof(t->bad_desc), "step %" PRId64 ", rank %d's batch (%s) holds no non-finite "
                 "value, yet its loss or gradients were not finite; lower the learning rate", t->step, t->rank, n->what);
    t->bad_step = t->step;
}

/* the batch of this step: still borrowed from the loader, or staged (named when it was staged) */
static void note_bad_batch(djct_trainer *t, const djct_record *b, int64_t n_events)
{
    if (t->bad_step >= 0)
        return;
    if (b) {
        batch_note n;
        describe_batch(t, b, n_events, 1, &n);
        note_bad(t, &n);
    } else {
        note_bad(t, &t->cur_note);
    }
}

/* Collective: the epoch's first named bad batch over all ranks (the earliest step, then the
 * lowest rank), the same text on every rank. */
static int first_bad_batch(djct_trainer *t, char *out, size_t cap)
{
    int64_t key = t->bad_step >= 0 ? t->bad_step * t->size + t->rank : INT64_MAX;
    char what[80];
    snprintf(what, sizeof(what), "epoch %" PRId64 "'s non-finite report", t->epoch);
    int rc = djct_comm_allreduce(t->comm, &key, 1, DJCT_DTYPE_INT64, DJCT_COMM_REDUCE_MIN, what);
    if (rc)
        return rc;
    if (key == INT64_MAX) {
        snprintf(out, cap, "every rank's loss was finite, the averaged gradients were not; lower the learning rate");
        return 0;
    }
    char desc[sizeof(t->bad_desc)];
    memcpy(desc, t->bad_desc, sizeof(desc));
    if ((rc = djct_comm_bcast(t->comm, desc, sizeof(desc), (int)(key % t->size), what)))
        return rc;
    desc[sizeof(desc) - 1] = '\0';
    snprintf(out, cap, "%s", desc);
    return 0;
}

/* the gradient slab holds only finite values; on a GPU computed there (the host never reads it) */
static int grads_finite(djct_trainer *t, int *finite)
{
    if (t->device < 0) {
        *finite = djct_all_finite(t->grads, t->ngrads);
        return 0;
    }
    return djct_model_grads_finite(t->model, finite);
}

/* staging: fetch a batch and stage it to the device (an empty one is not staged: it is never run);
 * staging copies the arrays, so the batch goes back to the loader at once */
static int fetch_and_stage(djct_trainer *t, djct_batch_info *info, batch_note *note)
{
    const djct_record *b = NULL;
    const djct_array *targets = NULL;
    size_t nt = 0;
    int rc = t->train->next(t->train->self, &b, info);
    if (rc)
        return rc;
    /* the batch goes back to the loader before its loss is known: name it now, in case that loss
     * is not finite (one read of its float arrays, beside the copy staging makes anyway) */
    if (info->n_events > 0)
        describe_batch(t, b, info->n_events, 0, note);
    if (info->n_events > 0 && (rc = tr_make_targets(t, b, &targets, &nt)) == 0)
        rc = djct_model_stage(t->model, b->features, b->n_features, targets, nt);
    t->train->release(t->train->self, b);
    return rc;
}

/* staging: this step's batch was staged one step ahead (the first step of an epoch stages it
 * now); the next step's batch is staged before this step computes, so its copy overlaps this step.
 * Nothing is staged past the epoch's last step or the step that reaches max_steps. */
static int stage_batches(djct_trainer *t, djct_batch_info *info)
{
    int rc;
    if (!t->ahead && (rc = fetch_and_stage(t, &t->ahead_info, &t->ahead_note)))
        return rc;
    *info = t->ahead_info;
    t->cur_note = t->ahead_note;
    t->ahead = 0;
    int last = t->step + 1 >= t->nsteps || (t->o.max_steps > 0 && t->global_step + 1 >= t->o.max_steps);
    if (!last) {
        if ((rc = fetch_and_stage(t, &t->ahead_info, &t->ahead_note)))
            return rc;
        t->ahead = 1;
    }
    return 0;
}

/* one training step; *agreed receives the summed agreement vector */
static int train_step(djct_trainer *t, djct_step_report *r, double ag[AG_N])
{
    double t0 = djct_now_s();
    const djct_record *batch = NULL;
    djct_batch_info info = {0, 0};
    double wait0 = t->train->wait_seconds ? t->train->wait_seconds(t->train->self) : 0;
    int accumulated = 0; /* gradient accumulation: the group's other micro-batches, no reduction */
    int rc = djct_ctl_micro_batches(t->ctl, t->train, t->o.weighting, t->epoch, &t->step, r->steps, &accumulated);
    if (rc)
        return rc;
    rc = t->stage ? stage_batches(t, &info) : t->train->next(t->train->self, &batch, &info);
    if (rc)
        return djct_error_prefix("trainer: epoch %" PRId64 " step %" PRId64 ": data", t->epoch, t->step);
    double t1 = djct_now_s();
    double t_data = t->train->wait_seconds ? t->train->wait_seconds(t->train->self) - wait0 : t1 - t0;

    const djct_array *targets = NULL;
    size_t ntargets = 0;
    double loss = NAN, t_comm = 0;
    double weight = t->o.weighting == DJCT_WEIGHT_ELEMENTS ? (double)info.n_elements
                    : t->o.weighting == DJCT_WEIGHT_EVENTS ? (double)info.n_events
                                                           : 1.0;
    /* always a weighted reduction (the op must be the same on every rank): weighting "none" is
     * weight 1 per rank, i.e. the plain average, and an empty batch anywhere still gets weight 0 */
    djct_comm_op op = DJCT_COMM_WEIGHTED;
    int overlap = t->o.overlap && t->o.average;

    int empty = info.n_events == 0;
    if (empty)
        weight = 0; /* a rank with nothing this step contributes nothing (comm zeroes its buffers) */
    weight = djct_ctl_step_weight(t->ctl, weight);
    if ((batch && (rc = tr_make_targets(t, batch, &targets, &ntargets))) || (!accumulated && (rc = djct_model_zero_grad(t->model))))
        goto out;
    if (t->device >= 0) { /* the stream this step's kernels go to (a caller may have switched it) */
        void *stream = NULL;
        if ((rc = djct_model_cuda_stream(t->model, &stream)) || (rc = djct_comm_plan_set_stream(t->plan, stream)))
            goto out;
    }
    if (!empty && ((rc = batch ? djct_model_forward(t->model, batch->features, batch->n_features, targets, ntargets)
                               : djct_model_forward_staged(t->model)) ||
                   (rc = djct_model_sum_all_losses(t->model, &loss))))
        goto out;
    if (empty)
        loss = 0;
    else if (!isfinite(loss))
        note_bad_batch(t, batch, info.n_events);

    /* the agreement collective: with gradient averaging it is started here, before backward, and
     * completes while the gradient buckets are reduced, so it adds no synchronisation point of its
     * own. Non-finite gradients need no vote then: every rank holds the same averaged gradients
     * and takes the same decision from them. Without averaging the gradients are local, so the
     * vote (blocking) comes after backward. */
    double local[AG_N] = {0};
    local[AG_LOSS_W] = isfinite(loss) ? loss * (double)info.n_events : 0;
    local[AG_WEIGHT] = (double)info.n_events;
    local[AG_EVENTS] = (double)info.n_events;
    local[AG_ELEMENTS] = (double)info.n_elements;
    local[AG_NONFINITE] = !isfinite(loss);
    local[AG_PREEMPT] = djct_signals_pending() == DJCT_SIGNAL_PREEMPT;
    local[AG_STOP] = djct_signals_pending() == DJCT_SIGNAL_STOP || t->callback_stop;
    local[AG_CKPT_DUE] = t->rank == 0 && t->run_dir && t->o.checkpoint_every_minutes > 0 &&
                         djct_now_s() - t->last_ckpt_time >= 60.0 * t->o.checkpoint_every_minutes;
    djct_ctl_micro_totals(t->ctl, &local[AG_LOSS_W], &local[AG_EVENTS], &local[AG_ELEMENTS], &local[AG_NONFINITE]);
    local[AG_WEIGHT] = local[AG_EVENTS];
    char what[80]; /* names the collective in the watchdog's message */
    snprintf(what, sizeof(what), "epoch %" PRId64 " step %" PRId64 "'s agreement", t->epoch, t->step);
    if (t->o.average) {
        memcpy(ag, local, sizeof(local));
        if ((rc = djct_comm_allreduce_start(t->ag_req, ag, AG_N, DJCT_DTYPE_FLOAT64, DJCT_COMM_REDUCE_SUM, what)))
            goto out;
    }

    /* the watchdog names a missing rank's step: "epoch 0 step 212's gradient reduction, bucket 0" */
    char what_grad[80];
    snprintf(what_grad, sizeof(what_grad), "epoch %" PRId64 " step %" PRId64 "'s gradient reduction", t->epoch, t->step);
    if (t->o.average)
        djct_comm_plan_set_label(t->plan, what_grad);
    if (overlap) {
        t->hook_error = 0;
        if ((rc = djct_comm_plan_start(t->plan, op, weight)))
            goto wait_ag;
        t->step_open = 1;
    }
    if (t->o.average)
        t->reductions++;
    rc = empty ? 0 : djct_ctl_before_backward(t->ctl);
    if (rc == 0 && !empty)
        rc = djct_model_backward(t->model, NULL);
    if (rc) {
        if (t->step_open) { /* keep the collectives matched across ranks; report backward's error */
            char keep[1024];
            snprintf(keep, sizeof(keep), "%s", djct_last_error());
            djct_comm_plan_finish(t->plan);
            djct_error_set(rc, "%s", keep);
            t->step_open = 0;
        }
        goto wait_ag;
    }
    double c0 = djct_now_s();
    if (t->o.average) {
        if (overlap) {
            rc = t->hook_error ? djct_error_set(t->hook_error, "%s", t->hook_msg) : djct_comm_plan_finish(t->plan);
            t->step_open = 0;
        } else {
            rc = djct_comm_plan_reduce(t->plan, op, weight);
        }
        if (rc) { /* e.g. the watchdog named a missing rank: that message is the one to keep */
            t_comm += djct_now_s() - c0;
            goto wait_ag;
        }
        int finite = 1;
        rc = djct_comm_wait(t->ag_req);
        if (!rc && !(rc = grads_finite(t, &finite)) && !finite)
            ag[AG_NONFINITE] += 1; /* the same averaged gradients on every rank: the same decision */
    } else {
        int finite = 1;
        if (!empty && isfinite(loss) && (rc = grads_finite(t, &finite)))
            goto out; /* before the collective: a failing rank never enters one (its peers' watchdog names it) */
        local[AG_NONFINITE] = !empty && (!isfinite(loss) || !finite);
        if (local[AG_NONFINITE]) {
            local[AG_LOSS_W] = 0;
            note_bad_batch(t, batch, info.n_events);
        }
        memcpy(ag, local, sizeof(local));
        rc = djct_comm_allreduce(t->comm, ag, AG_N, DJCT_DTYPE_FLOAT64, DJCT_COMM_REDUCE_SUM, what);
    }
    t_comm += djct_now_s() - c0;
    if (rc)
        goto out;
    if ((rc = djct_ctl_after_reduce(t->ctl, ag[AG_NONFINITE] > 0)))
        goto out;
    djct_model_collect_metrics(t->model, tr_log_metric, NULL);

    double lr = djct_optimizer_lr(t->opt);
    r->skipped = ag[AG_NONFINITE] > 0;
    if (!r->skipped) {
        if ((rc = djct_optimizer_step(t->opt)))
            goto out;
        t->global_step++;
    } else {
        t->skipped++;
    }
    if ((rc = djct_ctl_after_step(t->ctl, r->skipped)))
        goto out;
    double t_step = djct_now_s() - t0;
    r->epoch = t->epoch;
    r->step = t->step;
    r->global_step = t->global_step;
    r->validation = 0;
    r->loss = ag[AG_WEIGHT] > 0 ? ag[AG_LOSS_W] / ag[AG_WEIGHT] : NAN;
    if (r->skipped)
        r->loss = NAN;
    r->lr = lr;
    r->events = (int64_t)ag[AG_EVENTS];
    r->elements = (int64_t)ag[AG_ELEMENTS];
    r->t_step = t_step;
    r->t_data = t_data;
    r->t_comm = t_comm;
    r->t_compute = t_step - t_data - t_comm;
    r->events_per_s = t_step > 0 ? (double)r->events / t_step : 0;
    r->elements_per_s = t_step > 0 ? (double)r->elements / t_step : 0;
wait_ag:
    if (rc) { /* complete the started vote so collectives stay matched; report the first error */
        int code = djct_last_error_code();
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", djct_last_error());
        if (djct_comm_wait(t->ag_req) < 0)
            djct_error_set(code, "%s", keep);
    }
out:
    if (batch)
        t->train->release(t->train->self, batch);
    if (rc)
        djct_error_prefix("trainer: epoch %" PRId64 " step %" PRId64, t->epoch, t->step);
    return rc;
}

static void log_step(djct_trainer *t, const djct_step_report *r)
{
    if (!r->skipped)
        djct_log_reduce("loss", r->loss, DJCT_REDUCE_MEAN);
    djct_log_reduce("skipped_steps", (double)t->skipped, DJCT_REDUCE_MAX);
    djct_log_reduce("lr", r->lr, DJCT_REDUCE_MAX);
    djct_log_reduce("epoch", (double)r->epoch, DJCT_REDUCE_MAX);
    djct_log_reduce("global_step", (double)r->global_step, DJCT_REDUCE_MAX);
    djct_log_reduce("events_per_s", r->events_per_s, DJCT_REDUCE_MIN);
    djct_log_reduce("elements_per_s", r->elements_per_s, DJCT_REDUCE_MIN);
    djct_log("t_step", r->t_step);
    djct_log("t_data", r->t_data);
    djct_log("t_compute", r->t_compute);
    djct_log("t_comm", r->t_comm);
}

int djct_trainer_train_epoch(djct_trainer *t)
{
    DJCT_CHECK_ARG(t);
    t->error_shared = 0;
    int64_t nsteps = 0;
    int rc = t->train->begin_epoch(t->train->self, t->epoch, t->step, &nsteps);
    if (rc)
        return djct_error_prefix("trainer: epoch %" PRId64 ": data", t->epoch);
    /* every rank must run the same number of steps */
    int64_t mn = nsteps, mx = nsteps;
    char what[80];
    snprintf(what, sizeof(what), "epoch %" PRId64 "'s step count check", t->epoch);
    if ((rc = djct_comm_allreduce(t->comm, &mn, 1, DJCT_DTYPE_INT64, DJCT_COMM_REDUCE_MIN, what)) ||
        (rc = djct_comm_allreduce(t->comm, &mx, 1, DJCT_DTYPE_INT64, DJCT_COMM_REDUCE_MAX, what)))
        return rc;
    t->error_shared = 1; /* every rank sees the counts alike */
    if (mn != mx)
        return djct_error_set(DJCT_EINVAL,
                              "trainer: epoch %" PRId64 ": ranks disagree on the step count (%" PRId64 "..%" PRId64
                              "); a loader must give every rank the same number of steps",
                              t->epoch, mn, mx);
    if (mx == 0)
        return djct_error_set(DJCT_EINVAL,
                              "trainer: epoch %" PRId64 " has no steps: the training data holds no events (or every "
                              "event was dropped as larger than the batch limit)", t->epoch);
    t->error_shared = 0;
    if ((rc = djct_model_train(t->model, 1)))
        return rc;
    /* a batch staged ahead by an epoch that stopped early belongs to that epoch's plan */
    t->nsteps = nsteps;
    t->ahead = 0;
    if (t->stage && (rc = djct_model_drop_staged(t->model)))
        return rc;
    t->s_step.n = t->s_data.n = t->s_compute.n = t->s_comm.n = 0;
    t->sum_events = t->sum_elements = t->sum_time = 0;
    t->stop_reason = DJCT_STOP_DONE;
    t->ep_run = t->ep_skipped = 0;
    t->ep_first_skip = -1;
    t->warned = 0;
    t->bad_step = -1;
    int stopped = 0;
    for (; t->step < nsteps; t->step++) {
        djct_step_report r;
        double ag[AG_N];
        memset(&r, 0, sizeof(r));
        r.steps = nsteps;
        if ((rc = train_step(t, &r, ag)))
            return rc;
        push(&t->s_step, r.t_step);
        push(&t->s_data, r.t_data);
        push(&t->s_compute, r.t_compute);
        push(&t->s_comm, r.t_comm);
        t->sum_events += (double)r.events;
        t->sum_elements += (double)r.elements;
        t->sum_time += r.t_step;
        t->ev_s = t->sum_time > 0 ? t->sum_events / t->sum_time : 0;
        t->el_s = t->sum_time > 0 ? t->sum_elements / t->sum_time : 0;
        if (!r.skipped)
            t->last_loss = r.loss;
        t->ep_run++;
        if (r.skipped) {
            if (t->ep_first_skip < 0)
                t->ep_first_skip = t->step;
            /* more than a tenth of the epoch's steps: say so once, the run goes on */
            if (++t->ep_skipped * 10 > nsteps && !t->warned) {
                t->warned = 1;
                snprintf(t->warn, sizeof(t->warn),
                         "epoch %" PRId64 ": %" PRId64 " of its %" PRId64 " steps skipped so far (non-finite loss or "
                         "gradient; the first at step %" PRId64 "); an epoch that skips every step fails",
                         t->epoch, t->ep_skipped, nsteps, t->ep_first_skip);
                r.warning = t->warn;
            }
        }
        log_step(t, &r);
        int last = t->step + 1 == nsteps;
        if ((t->step + 1) % t->o.log_every == 0 || last) {
            if ((rc = djct_log_flush(NULL, -1)))
                return rc;
        }
        if (t->o.train_callback && t->o.train_callback(t->o.callback_user, &r))
            t->callback_stop = 1;
        if (r.skipped && t->o.nonfinite == DJCT_NONFINITE_STOP) {
            t->stop_reason = DJCT_STOP_NONFINITE;
            char desc[sizeof(t->bad_desc)];
            if ((rc = first_bad_batch(t, desc, sizeof(desc))))
                return rc;
            t->error_shared = 1;
            return djct_error_set(DJCT_EINVAL,
                                  "trainer: non-finite loss or gradient at epoch %" PRId64 " step %" PRId64
                                  " (global step %" PRId64 "): %s (or skip such steps: DJCT_NONFINITE_SKIP)",
                                  t->epoch, t->step, t->global_step, desc);
        }
        int ckpt = t->run_dir && ((t->o.checkpoint_every_steps > 0 && !r.skipped &&
                                   t->global_step % t->o.checkpoint_every_steps == 0) ||
                                  ag[AG_CKPT_DUE] > 0);
        if (ag[AG_PREEMPT] > 0)
            t->stop_reason = DJCT_STOP_PREEMPTED;
        else if (ag[AG_STOP] > 0)
            t->stop_reason = DJCT_STOP_INTERRUPTED;
        int stopping = t->stop_reason != DJCT_STOP_DONE ||
                       (t->o.max_steps > 0 && t->global_step >= t->o.max_steps);
        if (ckpt && !stopping) {
            t->step++; /* the checkpoint records the next step to run */
            rc = djct_trainer_save_checkpoint(t);
            t->step--;
            if (rc)
                return rc;
        }
        if (stopping) {
            t->step++;
            stopped = 1;
            break;
        }
    }
    if (!stopped && t->ep_run > 0 && t->ep_skipped == t->ep_run) { /* agreed: the counts come from the votes */
        char desc[sizeof(t->bad_desc)];
        if ((rc = first_bad_batch(t, desc, sizeof(desc))))
            return rc;
        t->error_shared = 1;
        return djct_error_set(DJCT_EINVAL,
                              "trainer: epoch %" PRId64 " skipped every one of its %" PRId64 " steps (non-finite loss or "
                              "gradient): nothing was trained; the first: %s",
                              t->epoch, t->ep_run, desc);
    }
    return 0;
}

int djct_trainer_fit(djct_trainer *t)
{
    DJCT_CHECK_ARG(t);
    int rc = 0;
    t->error_shared = 0;
    t->stop_reason = DJCT_STOP_DONE;
    while (t->epoch < t->o.epochs) {
        if ((rc = djct_trainer_train_epoch(t)))
            return rc;
        if (t->stop_reason != DJCT_STOP_DONE)
            break;
        if (t->o.max_steps > 0 && t->global_step >= t->o.max_steps)
            break;
        /* the epoch is complete */
        if (t->val && t->o.validate && (rc = djct_trainer_val_epoch(t, NULL))) {
            t->error_shared = 0;
            return rc;
        }
        int stop = 0; /* best model, reduce-on-plateau, early stopping: from the agreed metric */
        if (t->val && t->o.validate && (rc = djct_ctl_epoch_end(t->ctl, t->epoch, t->global_step, t->last_val_loss, &stop))) {
            t->error_shared = 1;
            return rc;
        }
        t->epoch++;
        t->step = 0;
        if (stop) {
            t->stop_reason = DJCT_STOP_EARLY;
            break;
        }
    }
    if (t->run_dir && (rc = djct_trainer_save_checkpoint(t)))
        return rc;
    return 0;
}

const char *djct_trainer_damaged_checkpoints(const djct_trainer *t, int *n_damaged)
{
    if (n_damaged)
        *n_damaged = t ? t->n_damaged : 0;
    return t && t->damaged ? t->damaged : "";
}

int djct_trainer_stop_reason(const djct_trainer *t) { return t ? t->stop_reason : DJCT_STOP_DONE; }
int djct_trainer_error_is_shared(const djct_trainer *t) { return t ? t->error_shared : 0; }

void djct_trainer_position(const djct_trainer *t, int64_t *global_step, int64_t *skipped, int64_t *epoch,
                           int64_t *step)
{
    if (global_step)
        *global_step = t ? t->global_step : 0;
    if (skipped)
        *skipped = t ? t->skipped : 0;
    if (epoch)
        *epoch = t ? t->epoch : 0;
    if (step)
        *step = t ? t->step : 0;
}

void djct_trainer_epoch_stats(const djct_trainer *t, double *t_step, double *t_data, double *t_compute,
                              double *t_comm, double *events_per_s, double *elements_per_s, double *last_loss)
{
    djct_trainer *m = (djct_trainer *)t;
    if (t_step)
        *t_step = median(&m->s_step);
    if (t_data)
        *t_data = median(&m->s_data);
    if (t_compute)
        *t_compute = median(&m->s_compute);
    if (t_comm)
        *t_comm = median(&m->s_comm);
    if (events_per_s)
        *events_per_s = m->ev_s;
    if (elements_per_s)
        *elements_per_s = m->el_s;
    if (last_loss)
        *last_loss = m->last_loss;
}

int64_t djct_trainer_reductions(const djct_trainer *t) { return t ? t->reductions : 0; }

void djct_trainer_last_val_loss(const djct_trainer *t, double *loss)
{
    if (loss)
        *loss = t ? t->last_val_loss : NAN;
}
