/* The trainer's validation epoch: the model in eval mode over the validation loader, metrics to
 * the controls' monitor and the log, the event-weighted mean loss agreed over all ranks. */
#include "djct/error.h"
#include "djct/log.h"
#include "djct_int.h"
#include "trainer_int.h"
#include "util_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int djct_trainer_val_epoch(djct_trainer *t, double *loss_out)
{
    DJCT_CHECK_ARG(t);
    if (!t->val)
        return djct_error_set(DJCT_EINVAL, "trainer: no validation loader");
    int64_t nsteps = 0;
    int rc = t->val->begin_epoch(t->val->self, 0, 0, &nsteps);
    if (rc)
        return djct_error_prefix("trainer: validation data");
    if ((rc = djct_model_train(t->model, 0)))
        return rc;
    double sum[2] = {0, 0}, tot[2] = {0, 0};
    for (int64_t s = 0; s < nsteps && rc == 0; s++) {
        const djct_record *b = NULL;
        djct_batch_info info = {0, 0};
        double t0 = djct_now_s();
        if ((rc = t->val->next(t->val->self, &b, &info)))
            break;
        const djct_array *targets = NULL;
        size_t nt = 0;
        double loss = NAN;
        rc = tr_make_targets(t, b, &targets, &nt);
        if (rc == 0)
            rc = djct_model_forward(t->model, b->features, b->n_features, targets, nt);
        if (rc == 0)
            rc = djct_model_sum_all_losses(t->model, &loss);
        if (rc == 0) {
            djct_model_clear_all_losses(t->model);
            djct_model_collect_metrics(t->model, tr_log_metric, t->ctl);
            if (isfinite(loss)) {
                sum[0] += loss * (double)info.n_events;
                sum[1] += (double)info.n_events;
            }
        }
        t->val->release(t->val->self, b);
        if (rc == 0 && t->o.val_callback) {
            djct_step_report r;
            memset(&r, 0, sizeof(r));
            r.epoch = t->epoch;
            r.step = s;
            r.steps = nsteps;
            r.global_step = t->global_step;
            r.validation = 1;
            r.loss = loss;
            r.events = info.n_events;
            r.elements = info.n_elements;
            r.t_step = djct_now_s() - t0;
            t->o.val_callback(t->o.callback_user, &r);
        }
    }
    /* always reach the collectives, so a failing rank does not strand the others */
    int ok = rc == 0, all_ok = ok;
    char what[80];
    snprintf(what, sizeof(what), "epoch %" PRId64 "'s validation agreement", t->epoch);
    int mrc = djct_comm_allreduce(t->comm, &all_ok, 1, DJCT_DTYPE_INT32, DJCT_COMM_REDUCE_MIN, what);
    memcpy(tot, sum, sizeof(tot));
    snprintf(what, sizeof(what), "epoch %" PRId64 "'s validation loss sums", t->epoch);
    if (mrc == 0)
        mrc = djct_comm_allreduce(t->comm, tot, 2, DJCT_DTYPE_FLOAT64, DJCT_COMM_REDUCE_SUM, what);
    int trc = djct_model_train(t->model, 1);
    if (rc)
        return rc;
    if (mrc)
        return mrc;
    if (!all_ok)
        return djct_error_set(DJCT_ERROR, "trainer: validation failed on another rank");
    double vloss = tot[1] > 0 ? tot[0] / tot[1] : NAN;
    t->last_val_loss = vloss;
    djct_log_reduce("loss", vloss, DJCT_REDUCE_MEAN);
    djct_log_reduce("epoch", (double)t->epoch, DJCT_REDUCE_MAX);
    if ((rc = djct_log_flush("val_", -1)))
        return rc;
    /* the val_ keys differ from the training keys, so the row waits for the key-gathering path:
     * complete it now, so that the epoch's validation row is in the journal at the epoch's end */
    if ((rc = djct_log_settle()))
        return rc;
    if (loss_out)
        *loss_out = vloss;
    return trc;
}
