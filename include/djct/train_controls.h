/* Training controls of the trainer (djct_trainer_options.controls): gradient clipping by global
 * norm, gradient accumulation, mixed precision with fp16 loss scaling, the best checkpoint by a
 * validation metric, early stopping, reduce-on-plateau and frozen parameters. Every decision
 * comes from values every rank holds alike (the averaged gradients, the reduced validation
 * metric), so all ranks act together. The per-step controls act in every train_epoch; the
 * monitored ones (best model, early stopping, plateau) after each validation of
 * djct_trainer_fit(). See docs/training.md, "Training controls". */
#ifndef DJCT_TRAIN_CONTROLS_H
#define DJCT_TRAIN_CONTROLS_H

#include "common.h"

DJCT_BEGIN_DECLS

/** Whether a smaller (DJCT_MONITOR_MIN, e.g. a loss) or a larger (MAX, e.g. an accuracy) value
 *  of the monitored validation metric is better. */
typedef enum { DJCT_MONITOR_MIN = 0, DJCT_MONITOR_MAX = 1 } djct_monitor_mode;

typedef struct {
    unsigned int version;      /* always first; filled in by the _INIT macro */
    double  clip_norm;         /* > 0: after the gradient averaging, scale the gradients down to
                                  this global L2 norm when larger (the norm before clipping is
                                  logged as grad_norm); 0: off */
    int     accumulate;        /* micro-batches per optimizer step (>= 1): the first N-1 run
                                  forward and backward with no reduction, the Nth reduces the
                                  event-weighted mean gradient of all N once */
    int     precision;         /* djct_precision (djct/model.h): autocast of the forward */
    double  loss_scale;        /* fp16: initial dynamic loss scale (0: 65536) */
    int64_t loss_scale_window; /* fp16: steps without overflow before the scale doubles (0: 2000) */
    const char *monitor;       /* validation metric deciding the controls below: "val_loss" (the
                                  event-weighted loss), or "val_<metric>" as logged (the mean over
                                  the validation batches of all ranks); NULL: "val_loss" */
    int     monitor_mode;      /* djct_monitor_mode */
    double  min_delta;         /* an improvement must beat the best by more than this (>= 0) */
    int     keep_best;         /* 1: after every improving validation, rank 0 writes the model to
                                  <run_dir>/best/model.pt and best.json (epoch, metric, value) */
    int     patience;          /* early stopping: stop after this many validations in a row
                                  without improvement (0: never) */
    int     plateau_patience;  /* reduce-on-plateau: after this many validations in a row without
                                  improvement multiply the learning rate by plateau_factor (0: off) */
    double  plateau_factor;    /* in (0, 1) */
    double  plateau_min_lr;    /* the learning rate is not reduced below this */
    const char *freeze;        /* ","-separated globs of parameter names kept frozen (NULL: none) */
} djct_train_controls;
#define DJCT_TRAIN_CONTROLS_VERSION 1
#define DJCT_TRAIN_CONTROLS_INIT \
    { DJCT_TRAIN_CONTROLS_VERSION, 0.0, 1, 0, 0.0, 0, NULL, DJCT_MONITOR_MIN, 0.0, 0, 0, 0, 0.1, 0.0, NULL }

DJCT_END_DECLS

#endif /* DJCT_TRAIN_CONTROLS_H */
