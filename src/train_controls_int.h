/* The trainer's training controls (djct/train_controls.h): the state behind the hooks the step
 * loop calls at fixed points of a step and of an epoch. Internal: the trainer's files
 * (src/trainer*.c) are the only callers. Order within one step:
 *   ctl_micro_batches (the group's first N-1 micro-batches, no reduction)
 *   -> ctl_step_weight (the reduction weight of the whole group)
 *   -> ctl_before_backward (loss and gradient scaling) -> backward + reduction
 *   -> ctl_after_reduce (unscale, frozen gradients, clip, grad_norm)
 *   -> optimizer step or skip -> ctl_after_step (frozen values back, fp16 scale update). */
#ifndef DJCT_TRAIN_CONTROLS_INT_H
#define DJCT_TRAIN_CONTROLS_INT_H

#include "djct/trainer.h"

typedef struct djct_ctl djct_ctl;

/* Check the controls and apply the model-side ones (precision, freezing); *out is NULL when
 * `c` is NULL. `have_val`: the trainer validates after every epoch (monitoring needs it). */
int djct_ctl_create(djct_ctl **out, const djct_train_controls *c, djct_model *m, djct_optimizer *o,
                    djct_comm *comm, const char *run_dir, int have_val);
void djct_ctl_free(djct_ctl *c);

/* Gradient accumulation: run the first micro-batches of the group that the step at *step ends
 * (forward and backward, loss scaled by each batch's weight, no reduction), advancing *step past
 * them. *accumulated: 1 when the gradient slab now holds them (the step must not zero it). */
int djct_ctl_micro_batches(djct_ctl *c, djct_loader *ld, int weighting, int64_t epoch, int64_t *step,
                           int64_t nsteps, int *accumulated);
/* The group's reduction weight: the micro-batches' weights plus this batch's. */
double djct_ctl_step_weight(djct_ctl *c, double weight);
/* The micro-batches' contributions to the step's agreement vector. */
void djct_ctl_micro_totals(const djct_ctl *c, double *loss_w, double *events, double *elements, double *nonfinite);
/* Before the step's backward: the loss scale of this batch (weight, fp16 scale). */
int djct_ctl_before_backward(djct_ctl *c);
/* After the reduction (every rank holds the same gradients): fp16 unscale, frozen gradients to
 * zero, clipping and the grad_norm metric. `nonfinite`: the step will be skipped. */
int djct_ctl_after_reduce(djct_ctl *c, int nonfinite);
/* After the optimizer step (or the skip): frozen values back, the fp16 scale updated. */
int djct_ctl_after_step(djct_ctl *c, int skipped);

/* A validation metric as the model recorded it ("<module>_<metric>"), for the monitor. */
void djct_ctl_val_metric(djct_ctl *c, const char *name, double value);
/* After a validation pass (collective): best model, plateau, early stopping. *stop: 1 when the
 * patience ran out (the same on every rank). */
int djct_ctl_epoch_end(djct_ctl *c, int64_t epoch, int64_t global_step, double val_loss, int *stop);

/* The state a checkpoint keeps (best value, waits, fp16 scale) as `, "controls": {...}` for the
 * checkpoint's metadata ("" when there are no controls), and its restoration from the parsed
 * metadata (a cJSON object; absent: nothing changes). */
void djct_ctl_state_json(const djct_ctl *c, char *buf, size_t n);
void djct_ctl_restore(djct_ctl *c, const void *meta_cjson);

#endif /* DJCT_TRAIN_CONTROLS_INT_H */
