/* Training controls behind the trainer's hooks (train_controls_int.h): gradient accumulation,
 * fp16 loss scaling, clipping, frozen parameters, and the per-epoch decisions on a monitored
 * validation metric (best model, reduce-on-plateau, early stopping). The tensor work is done by
 * the bridge (djct_model_scale_grads, _clip_grad_norm, _hold_frozen, ...); this file keeps the
 * state and takes the decisions, from values that are the same on every rank. */
#include "train_controls_int.h"
#include "djct/error.h"
#include "djct/fileutil.h"
#include "djct/log.h"
#include "djct_int.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LOSS_SCALE 65536.0
#define DEFAULT_SCALE_WINDOW 2000

struct djct_ctl {
    djct_train_controls o;
    char *monitor, *run_dir;
    djct_model *model;
    djct_optimizer *opt;
    djct_comm *comm;
    int rank;
    /* accumulation: weights of the group so far, and the micro-batches' agreement sums */
    double w_prev, w_this, m_loss_w, m_events, m_elements, m_nonfinite;
    djct_array *targets;
    size_t targets_cap;
    /* fp16 dynamic loss scale */
    double scale;
    int64_t scale_good;
    /* monitor */
    double m_sum;
    int64_t m_count;
    char seen[512]; /* metric names the validation pass recorded, for the error message */
    int have_best;
    double best;
    int64_t best_epoch, wait, plateau_wait;
};

void djct_ctl_free(djct_ctl *c)
{
    if (!c)
        return;
    free(c->monitor);
    free(c->run_dir);
    free(c->targets);
    free(c);
}

static int uses_monitor(const djct_train_controls *o)
{
    return o->keep_best || o->patience > 0 || o->plateau_patience > 0;
}

int djct_ctl_create(djct_ctl **out, const djct_train_controls *opts, djct_model *m, djct_optimizer *opt,
                    djct_comm *comm, const char *run_dir, int have_val)
{
    *out = NULL;
    if (!opts)
        return 0;
    DJCT_CHECK_VERSION(opts, DJCT_TRAIN_CONTROLS_VERSION, "djct_train_controls");
    const djct_train_controls *o = opts;
    if (!(o->clip_norm >= 0) || !isfinite(o->clip_norm))
        return djct_error_set(DJCT_EINVAL, "controls: clip_norm %g must be >= 0 (0: off)", o->clip_norm);
    if (o->accumulate < 1)
        return djct_error_set(DJCT_EINVAL, "controls: accumulate %d must be >= 1 (1: none)", o->accumulate);
    if (o->precision < DJCT_PRECISION_FP32 || o->precision > DJCT_PRECISION_FP16)
        return djct_error_set(DJCT_EINVAL, "controls: precision %d is not one of fp32(0), bf16(1), fp16(2)",
                              o->precision);
    if (!(o->loss_scale >= 0) || !isfinite(o->loss_scale) || o->loss_scale_window < 0)
        return djct_error_set(DJCT_EINVAL, "controls: loss_scale %g and loss_scale_window %" PRId64
                              " must be >= 0 (0: the defaults)", o->loss_scale, o->loss_scale_window);
    if (o->monitor && strncmp(o->monitor, "val_", 4) != 0)
        return djct_error_set(DJCT_EINVAL, "controls: monitor '%s' is not a validation metric; name one "
                              "as logged, e.g. val_loss or val_metrics_accuracy", o->monitor);
    if (o->monitor_mode != DJCT_MONITOR_MIN && o->monitor_mode != DJCT_MONITOR_MAX)
        return djct_error_set(DJCT_EINVAL, "controls: monitor_mode %d is not min(0) or max(1)", o->monitor_mode);
    if (!(o->min_delta >= 0) || o->patience < 0 || o->plateau_patience < 0)
        return djct_error_set(DJCT_EINVAL, "controls: min_delta, patience and plateau_patience must be >= 0");
    if (o->plateau_patience > 0 && !(o->plateau_factor > 0 && o->plateau_factor < 1))
        return djct_error_set(DJCT_EINVAL, "controls: plateau_factor %g must lie in (0, 1)", o->plateau_factor);
    if (!(o->plateau_min_lr >= 0))
        return djct_error_set(DJCT_EINVAL, "controls: plateau_min_lr %g must be >= 0", o->plateau_min_lr);
    if (uses_monitor(o) && !have_val)
        return djct_error_set(DJCT_EINVAL, "controls: the best checkpoint, early stopping and reduce-on-plateau "
                              "decide on a validation metric; give validation data and keep validation on");
    if (o->keep_best && !run_dir)
        return djct_error_set(DJCT_EINVAL, "controls: keeping the best model needs a run directory");

    djct_ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return djct_error_oom();
    int rc = 0;
    c->o = *o;
    c->model = m;
    c->opt = opt;
    c->comm = comm;
    c->rank = djct_comm_rank(comm);
    c->scale = o->precision == DJCT_PRECISION_FP16 ? (o->loss_scale > 0 ? o->loss_scale : DEFAULT_LOSS_SCALE) : 1.0;
    if (c->o.loss_scale_window == 0)
        c->o.loss_scale_window = DEFAULT_SCALE_WINDOW;
    if (!(c->monitor = strdup(o->monitor ? o->monitor : "val_loss")) || (run_dir && !(c->run_dir = strdup(run_dir)))) {
        rc = djct_error_oom();
        goto fail;
    }
    c->o.monitor = c->monitor;
    c->o.freeze = NULL;
    c->best_epoch = -1;
    if (o->precision != DJCT_PRECISION_FP32 && (rc = djct_model_set_precision(m, o->precision)))
        goto fail;
    if (o->freeze && *o->freeze && (rc = djct_model_freeze(m, o->freeze, NULL)))
        goto fail;
    *out = c;
    return 0;
fail:
    djct_ctl_free(c);
    return rc;
}

/* ---- one step -------------------------------------------------------------------------------- */

static double batch_weight(int weighting, const djct_batch_info *info)
{
    if (info->n_events == 0)
        return 0;
    return weighting == DJCT_WEIGHT_ELEMENTS ? (double)info->n_elements
           : weighting == DJCT_WEIGHT_EVENTS ? (double)info->n_events
                                             : 1.0;
}

/* the running mean over the group: the slab holds sum_j w_j g_j / W_prev; rescale it to the new
 * total and give this batch's loss the weight w / W, so backward leaves sum_j w_j g_j / W */
static int scale_for(djct_ctl *c, double w)
{
    double total = c->w_prev + w;
    int rc = 0;
    if (w <= 0)
        return 0;
    if (c->w_prev > 0)
        rc = djct_model_scale_grads(c->model, c->w_prev / total);
    if (rc == 0)
        rc = djct_model_set_loss_scale(c->model, c->scale * w / total);
    return rc;
}

static int targets_of(djct_ctl *c, const djct_record *b, const djct_array **t, size_t *n)
{
    if (b->n_weights == 0) {
        *t = b->truths;
        *n = b->n_truths;
        return 0;
    }
    size_t need = b->n_truths + b->n_weights;
    if (need > c->targets_cap) {
        djct_array *nv = realloc(c->targets, need * sizeof(*nv));
        if (!nv)
            return djct_error_oom();
        c->targets = nv;
        c->targets_cap = need;
    }
    memcpy(c->targets, b->truths, b->n_truths * sizeof(djct_array));
    memcpy(c->targets + b->n_truths, b->weights, b->n_weights * sizeof(djct_array));
    *t = c->targets;
    *n = need;
    return 0;
}

int djct_ctl_micro_batches(djct_ctl *c, djct_loader *ld, int weighting, int64_t epoch, int64_t *step,
                           int64_t nsteps, int *accumulated)
{
    *accumulated = 0;
    if (!c)
        return 0;
    c->w_prev = c->w_this = 0;
    c->m_loss_w = c->m_events = c->m_elements = c->m_nonfinite = 0;
    /* groups of N from the epoch's start; the last one may be shorter */
    int64_t n = c->o.accumulate;
    int64_t end = (*step / n + 1) * n;
    if (end > nsteps)
        end = nsteps;
    int64_t k = end - 1 - *step;
    if (k <= 0)
        return 0;
    int rc = djct_model_zero_grad(c->model);
    for (int64_t i = 0; i < k && rc == 0; i++, (*step)++) {
        const djct_record *b = NULL;
        djct_batch_info info = {0, 0};
        if ((rc = ld->next(ld->self, &b, &info)))
            return djct_error_prefix("trainer: epoch %" PRId64 " step %" PRId64 ": data", epoch, *step);
        const djct_array *tg = NULL;
        size_t nt = 0;
        double loss = NAN, w = batch_weight(weighting, &info);
        if (info.n_events > 0) {
            if ((rc = targets_of(c, b, &tg, &nt)) == 0 &&
                (rc = djct_model_forward(c->model, b->features, b->n_features, tg, nt)) == 0 &&
                (rc = djct_model_sum_all_losses(c->model, &loss)) == 0 && (rc = scale_for(c, w)) == 0)
                rc = djct_model_backward(c->model, NULL);
            if (rc == 0) {
                c->m_nonfinite += !isfinite(loss);
                c->m_loss_w += isfinite(loss) ? loss * (double)info.n_events : 0;
                c->m_events += (double)info.n_events;
                c->m_elements += (double)info.n_elements;
                c->w_prev += w;
            }
        }
        ld->release(ld->self, b);
        if (rc)
            return djct_error_prefix("trainer: epoch %" PRId64 " step %" PRId64 " (accumulated micro-batch)",
                                     epoch, *step);
    }
    *accumulated = 1;
    return rc;
}

double djct_ctl_step_weight(djct_ctl *c, double weight)
{
    if (!c)
        return weight;
    c->w_this = weight;
    return c->w_prev + weight;
}

void djct_ctl_micro_totals(const djct_ctl *c, double *loss_w, double *events, double *elements, double *nonfinite)
{
    if (!c)
        return;
    *loss_w += c->m_loss_w;
    *events += c->m_events;
    *elements += c->m_elements;
    *nonfinite += c->m_nonfinite;
}

int djct_ctl_before_backward(djct_ctl *c)
{
    if (!c)
        return 0;
    if (c->o.accumulate > 1)
        return scale_for(c, c->w_this);
    return c->scale != 1.0 ? djct_model_set_loss_scale(c->model, c->scale) : 0;
}

int djct_ctl_after_reduce(djct_ctl *c, int nonfinite)
{
    if (!c)
        return 0;
    int rc = 0;
    if (c->scale != 1.0 && (rc = djct_model_scale_grads(c->model, 1.0 / c->scale)))
        return rc;
    if ((rc = djct_model_hold_frozen(c->model)))
        return rc;
    if (c->o.precision == DJCT_PRECISION_FP16)
        djct_log_reduce("loss_scale", c->scale, DJCT_REDUCE_MAX);
    if (c->o.clip_norm > 0 && !nonfinite) {
        double norm = 0;
        if ((rc = djct_model_clip_grad_norm(c->model, c->o.clip_norm, &norm)))
            return rc;
        djct_log_reduce("grad_norm", norm, DJCT_REDUCE_MAX);
    }
    return 0;
}

int djct_ctl_after_step(djct_ctl *c, int skipped)
{
    if (!c)
        return 0;
    int rc = djct_model_restore_frozen(c->model);
    if (c->o.precision == DJCT_PRECISION_FP16) {
        /* dynamic loss scaling (as torch.cuda.amp.GradScaler): halve on an overflow, whose step
         * was skipped; double after a window of clean steps */
        if (skipped) {
            c->scale = fmax(c->scale * 0.5, 1.0);
            c->scale_good = 0;
        } else if (++c->scale_good >= c->o.loss_scale_window) {
            c->scale = fmin(c->scale * 2.0, 16777216.0 * 256.0);
            c->scale_good = 0;
        }
    }
    return rc;
}

/* ---- per epoch ------------------------------------------------------------------------------- */

void djct_ctl_val_metric(djct_ctl *c, const char *name, double value)
{
    if (!c || !name)
        return;
    size_t at = strlen(c->seen);
    if (!strstr(c->seen, name) && at + strlen(name) + 7 < sizeof(c->seen))
        snprintf(c->seen + at, sizeof(c->seen) - at, "%sval_%s", at ? ", " : "", name);
    if (strcmp(c->monitor, "val_loss") != 0 && strcmp(name, c->monitor + 4) == 0 && isfinite(value)) {
        c->m_sum += value;
        c->m_count++;
    }
}

static int save_best(djct_ctl *c, int64_t epoch, int64_t global_step, double value)
{
    int rc = 0;
    if (c->rank == 0) {
        size_t n = strlen(c->run_dir) + 64;
        char *dir = malloc(n), *tmp = malloc(n), *fin = malloc(n);
        if (!dir || !tmp || !fin)
            rc = djct_error_oom();
        if (rc == 0) {
            snprintf(dir, n, "%s/best", c->run_dir);
            snprintf(tmp, n, "%s/.model.pt.partial", dir);
            snprintf(fin, n, "%s/model.pt", dir);
            rc = djct_mkdirs(dir);
        }
        if (rc == 0 && (rc = djct_model_save(c->model, tmp)) == 0 && rename(tmp, fin) != 0)
            rc = djct_error_set(DJCT_EIO, "best model: cannot rename '%s' to '%s'", tmp, fin);
        if (rc == 0) {
            char js[512];
            snprintf(js, sizeof(js), "{\"epoch\": %" PRId64 ", \"global_step\": %" PRId64 ", \"metric\": \"%s\", "
                     "\"mode\": \"%s\", \"value\": %.17g}\n", epoch, global_step, c->monitor,
                     c->o.monitor_mode == DJCT_MONITOR_MAX ? "max" : "min", value);
            snprintf(fin, n, "%s/best.json", dir);
            rc = djct_write_file_atomic(fin, js, strlen(js));
        }
        free(dir);
        free(tmp);
        free(fin);
    }
    int ok = rc == 0;
    int mrc = djct_comm_bcast(c->comm, &ok, sizeof(ok), 0, "the best model's save result");
    if (mrc)
        return mrc;
    if (!ok && c->rank != 0)
        return djct_error_set(DJCT_EIO, "trainer: rank 0 failed to write the best model of epoch %" PRId64, epoch);
    return rc;
}

int djct_ctl_epoch_end(djct_ctl *c, int64_t epoch, int64_t global_step, double val_loss, int *stop)
{
    *stop = 0;
    if (!c || !uses_monitor(&c->o))
        return 0;
    double v = val_loss;
    if (strcmp(c->monitor, "val_loss") != 0) {
        double s[2] = {c->m_sum, (double)c->m_count};
        c->m_sum = 0;
        c->m_count = 0;
        int rc = djct_comm_allreduce(c->comm, s, 2, DJCT_DTYPE_FLOAT64, DJCT_COMM_REDUCE_SUM,
                                     "the monitored validation metric");
        if (rc)
            return rc;
        if (s[1] == 0)
            return djct_error_set(DJCT_EINVAL, "controls: monitor '%s' was not recorded by the validation pass "
                                  "(recorded: val_loss%s%s); name one of those", c->monitor, c->seen[0] ? ", " : "",
                                  c->seen);
        v = s[0] / s[1];
    }
    int maxm = c->o.monitor_mode == DJCT_MONITOR_MAX;
    int better = isfinite(v) && (!c->have_best || (maxm ? v > c->best + c->o.min_delta : v < c->best - c->o.min_delta));
    if (better) {
        c->have_best = 1;
        c->best = v;
        c->best_epoch = epoch;
        c->wait = c->plateau_wait = 0;
        if (c->o.keep_best)
            return save_best(c, epoch, global_step, v);
        return 0;
    }
    c->wait++;
    c->plateau_wait++;
    if (c->o.plateau_patience > 0 && c->plateau_wait >= c->o.plateau_patience) {
        c->plateau_wait = 0;
        /* lower the factor over the schedule, not below plateau_min_lr at the current step */
        double scale = djct_optimizer_lr_scale(c->opt), lr = djct_optimizer_lr(c->opt);
        double base = scale > 0 ? lr / scale : lr;
        double ns = scale * c->o.plateau_factor;
        if (base > 0 && base * ns < c->o.plateau_min_lr)
            ns = c->o.plateau_min_lr / base;
        if (ns < scale) {
            int rc = djct_optimizer_set_lr_scale(c->opt, ns);
            if (rc)
                return rc;
        }
    }
    if (c->o.patience > 0 && c->wait >= c->o.patience)
        *stop = 1;
    return 0;
}

/* ---- checkpoint state ------------------------------------------------------------------------ */

void djct_ctl_state_json(const djct_ctl *c, char *buf, size_t n)
{
    if (!c) {
        snprintf(buf, n, "%s", "");
        return;
    }
    char best[40] = "null";
    if (c->have_best)
        snprintf(best, sizeof(best), "%.17g", c->best);
    snprintf(buf, n, ", \"controls\": {\"best\": %s, \"best_epoch\": %" PRId64 ", \"wait\": %" PRId64
             ", \"plateau_wait\": %" PRId64 ", \"loss_scale\": %.17g, \"scale_good\": %" PRId64 "}",
             best, c->best_epoch, c->wait, c->plateau_wait, c->scale, c->scale_good);
}

void djct_ctl_restore(djct_ctl *c, const void *meta_cjson)
{
    const cJSON *s = c && meta_cjson ? cJSON_GetObjectItem((const cJSON *)meta_cjson, "controls") : NULL;
    if (!cJSON_IsObject(s))
        return;
    const cJSON *b = cJSON_GetObjectItem(s, "best"), *be = cJSON_GetObjectItem(s, "best_epoch"),
                *w = cJSON_GetObjectItem(s, "wait"), *pw = cJSON_GetObjectItem(s, "plateau_wait"),
                *ls = cJSON_GetObjectItem(s, "loss_scale"), *sg = cJSON_GetObjectItem(s, "scale_good");
    c->have_best = cJSON_IsNumber(b);
    if (c->have_best)
        c->best = b->valuedouble;
    if (cJSON_IsNumber(be))
        c->best_epoch = (int64_t)be->valuedouble;
    if (cJSON_IsNumber(w))
        c->wait = (int64_t)w->valuedouble;
    if (cJSON_IsNumber(pw))
        c->plateau_wait = (int64_t)pw->valuedouble;
    if (cJSON_IsNumber(ls) && ls->valuedouble > 0 && c->o.precision == DJCT_PRECISION_FP16)
        c->scale = ls->valuedouble;
    if (cJSON_IsNumber(sg))
        c->scale_good = (int64_t)sg->valuedouble;
}
