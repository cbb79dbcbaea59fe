/* Internals of the trainer shared within src/: the trainer's body and the step loop's helpers that
 * its other parts call. The parts: src/trainer.c (the step loop, epochs, fit, what they record),
 * src/trainer_create.c (creation, option checks, release), src/trainer_val.c (the validation
 * epoch), src/trainer_checkpoint.c (save and resume). Only trainer*.c touch the struct's fields.
 * Not installed. */
#ifndef DJCT_TRAINER_INT_H
#define DJCT_TRAINER_INT_H

#include "djct/trainer.h"
#include "train_controls_int.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double *v;
    size_t n, cap;
} series;

/* What names a batch in a non-finite report: the first event holding a NaN or Inf (-1: none), the
 * array it is in, and the loader's description (its files and events). */
typedef struct {
    int64_t ev;
    char arr[160], what[512];
} batch_note;

struct djct_trainer {
    djct_model *model;
    djct_optimizer *opt;
    djct_comm *comm;
    djct_loader *train, *val;
    djct_trainer_options o;
    char *run_dir;
    int rank, size;
    djct_comm_request *ag_req; /* the step's agreement, in flight during backward */

    djct_comm_plan *plan;
    djct_comm_buffer *bufs;
    size_t nbufs;
    float *grads;   /* the gradient slab: device memory when device >= 0 (never read here then) */
    size_t ngrads;
    int device;     /* the model's CUDA device, -1 on the CPU */
    int stage;      /* batches are staged one step ahead: on a GPU, or DJCT_STAGE_BATCHES=1 (tests) */
    int step_open;  /* a non-blocking reduction was started this step */
    int hook_error; /* first error inside the gradient-ready hook */
    char hook_msg[512]; /* its message: the hook may run on libtorch's autograd thread */
    int64_t nsteps; /* steps of the epoch being trained */
    int ahead;      /* staging: the next step's batch is staged, ahead_info describes it */
    djct_batch_info ahead_info;
    batch_note ahead_note, cur_note; /* staging: the staged batches named (note_bad_batch) */

    djct_array *targets; /* scratch: truths + weights, shallow copies */
    size_t targets_cap;

    int64_t epoch, step, global_step, skipped;
    /* this epoch's skipped steps: a warning past 10% of its steps, an error when all were */
    int64_t ep_run, ep_skipped, ep_first_skip;
    int warned;
    char warn[256];
    int64_t bad_step;   /* this rank's first batch of the epoch with a non-finite loss; -1: none */
    char bad_desc[768]; /* ... named: files, events, the array holding a non-finite value */
    int error_shared;   /* the last error was returned by every rank at the same point */
    int stop_reason;
    int callback_stop;
    double last_ckpt_time;
    series s_step, s_data, s_compute, s_comm;
    double ev_s, el_s, last_loss;
    double sum_events, sum_elements, sum_time; /* this epoch, for throughput */
    double last_val_loss;
    djct_ctl *ctl;      /* training controls (src/train_controls.c); NULL: none */
    int64_t reductions; /* gradient reductions run */
    char *damaged;  /* rank 0: the damaged checkpoints the last resume set aside, one per line */
    int n_damaged;  /* every rank: checkpoints set aside in the run directory (now or earlier) */
};

/* the gradient-ready hook: runs inside backward on the calling thread (src/trainer_create.c
 * installs it) */
void tr_on_grad_ready(void *user, size_t index);
/* targets = truths followed by weights (shallow copies; the batch owns the memory) */
int tr_make_targets(djct_trainer *t, const djct_record *b, const djct_array **targets, size_t *n);
/* a model metric to the log; user: the controls' monitor during validation, else NULL */
int tr_log_metric(void *user, const char *name, double value);

#endif
