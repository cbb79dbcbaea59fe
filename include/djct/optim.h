/* Optimizers over a model's parameter slab: SGD (momentum, Nesterov), Adam and AdamW (the fused
 * pass of src/adam.c on libtorch's own state), with warm-up and step/cosine learning-rate
 * schedules, and their state saved and restored for checkpoints. Part of the libtorch bridge: in a
 * build without libtorch every function returns DJCT_ENOTSUP (the free function does nothing). */
#ifndef DJCT_OPTIM_H
#define DJCT_OPTIM_H

#include "common.h"
#include "model.h"

DJCT_BEGIN_DECLS

typedef struct djct_optimizer djct_optimizer; /* SGD / Adam / AdamW over a model's slab */

typedef enum { DJCT_OPTIM_SGD = 0, DJCT_OPTIM_ADAM = 1, DJCT_OPTIM_ADAMW = 2 } djct_optim_kind;
typedef enum {
    DJCT_LR_CONSTANT = 0, /* lr */
    DJCT_LR_STEP     = 1, /* lr * gamma^floor(t / step_size) */
    DJCT_LR_COSINE   = 2  /* min_lr + (lr - min_lr) * (1 + cos(pi * t / (total_steps - warmup))) / 2 */
} djct_lr_schedule;

/** Optimizer options. t counts steps after the linear warm-up (lr * (step+1) / warmup_steps
 *  for step < warmup_steps), for any schedule. */
typedef struct {
    unsigned int version;
    int     kind;          /* djct_optim_kind */
    double  lr;            /* base learning rate */
    double  momentum;      /* SGD */
    int     nesterov;      /* SGD */
    double  weight_decay;  /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
    double  beta1, beta2;  /* Adam/AdamW */
    double  eps;           /* Adam/AdamW */
    int     schedule;      /* djct_lr_schedule */
    int64_t warmup_steps;  /* 0: none */
    int64_t step_size;     /* DJCT_LR_STEP */
    double  gamma;         /* DJCT_LR_STEP */
    int64_t total_steps;   /* DJCT_LR_COSINE: the step at which lr reaches min_lr */
    double  min_lr;        /* DJCT_LR_COSINE */
} djct_optimizer_options;
#define DJCT_OPTIMIZER_OPTIONS_VERSION 1
#define DJCT_OPTIMIZER_OPTIONS_INIT \
    { DJCT_OPTIMIZER_OPTIONS_VERSION, DJCT_OPTIM_ADAM, 1e-3, 0.0, 0, 0.0, 0.9, 0.999, 1e-8, \
      DJCT_LR_CONSTANT, 0, 1, 0.1, 0, 0.0 }

/** An optimizer over the model's parameter slab (its state is one slab per kind of moment).
 *  Release with djct_optimizer_free(). */
DJCT_API int djct_optimizer_create(djct_optimizer **out, djct_model *m,
                                   const djct_optimizer_options *opts) DJCT_NOEXCEPT;
/** Apply the schedule's learning rate for this step, update the parameters from the gradient
 *  slab (which is left as is) and count the step. */
DJCT_API int djct_optimizer_step(djct_optimizer *o) DJCT_NOEXCEPT;
/** Learning rate the next djct_optimizer_step() will use (after the last one: the last used). */
DJCT_API double djct_optimizer_lr(const djct_optimizer *o) DJCT_NOEXCEPT;
/** Multiply the schedule's learning rate by `scale` (finite, > 0; 1 at creation) from the next
 *  step on: reduce-on-plateau. Saved with the state and restored by the load functions. */
DJCT_API int djct_optimizer_set_lr_scale(djct_optimizer *o, double scale) DJCT_NOEXCEPT;
/** The current learning-rate scale (1 when none was set; 0 for NULL). */
DJCT_API double djct_optimizer_lr_scale(const djct_optimizer *o) DJCT_NOEXCEPT;
/** Steps taken (restored by the load functions). */
DJCT_API int64_t djct_optimizer_steps(const djct_optimizer *o) DJCT_NOEXCEPT;
/** Save the optimizer state (moments, step count, kind) to a file. */
DJCT_API int djct_optimizer_save(djct_optimizer *o, const char *path) DJCT_NOEXCEPT;
/** Save the optimizer state into a malloc'd buffer *buf of *len bytes; free() it. */
DJCT_API int djct_optimizer_save_buffer(djct_optimizer *o, void **buf, size_t *len) DJCT_NOEXCEPT;
/** Restore a state saved by an optimizer of the same kind on a model of the same layout. */
DJCT_API int djct_optimizer_load(djct_optimizer *o, const char *path) DJCT_NOEXCEPT;
/** As djct_optimizer_load() from memory. */
DJCT_API int djct_optimizer_load_buffer(djct_optimizer *o, const void *buf, size_t len) DJCT_NOEXCEPT;
/** Free the optimizer (NULL is fine). */
DJCT_API void djct_optimizer_free(djct_optimizer *o) DJCT_NOEXCEPT;

DJCT_END_DECLS

#endif /* DJCT_OPTIM_H */
