/* The distributed trainer: the step loop over a model, an optimizer, a communicator and loaders,
 * with timings, metrics through the logging singleton, checkpoints, preemption and resume.
 *
 * One step on every rank: next batch of the rank's shard -> forward with targets ->
 * sum_all_losses -> backward (gradient buckets are reduced as they become ready when `overlap` is
 * on) -> weighted gradient average -> optimizer step (or skip). One small agreement collective
 * (global loss, events, elements, non-finite flag, pending signals, checkpoint clock) is started
 * after forward and completes with the gradient buckets.
 * Decisions that must agree across ranks are taken from that collective, never by one rank alone.
 * See docs/training.md. */
#ifndef DJCT_TRAINER_H
#define DJCT_TRAINER_H

#include "array.h"
#include "common.h"
#include "comm.h"
#include "dataset.h"
#include "model.h"
#include "optim.h"
#include "train_controls.h"

DJCT_BEGIN_DECLS

typedef struct djct_trainer djct_trainer;

/** What a loader says of one batch. */
typedef struct {
    int64_t n_events;   /* events (records) in this rank's batch */
    int64_t n_elements; /* ragged elements (n_events when not ragged) */
} djct_batch_info;

/** A data source: C callbacks yielding this rank's batches (djctools users plug any DataLoader; djct
 *  users plug any loader). Every rank must report the same number of steps for an epoch. The
 *  batch's arrays are split by the loader into features and targets (the record's feature arrays
 *  and truth arrays). Weight arrays, if any, are appended to the targets. */
typedef struct djct_loader {
    void *self;
    /** Position at step `start_step` of `epoch` (0 normally; > 0 when resuming) and say how many
     *  steps the epoch has in total (the same on every rank). */
    int (*begin_epoch)(void *self, int64_t epoch, int64_t start_step, int64_t *n_steps);
    /** The next batch (borrowed until release) and its counts. */
    int (*next)(void *self, const djct_record **batch, djct_batch_info *info);
    /** Give a batch back. */
    void (*release)(void *self, const djct_record *batch);
    /** Cumulative seconds next() spent waiting for data (optional, NULL: measured by the trainer). */
    double (*wait_seconds)(void *self);
    /** Free the loader (optional). */
    void (*destroy)(void *self);
    /** Name a batch not yet released for messages (optional, NULL: the trainer names the step
     *  only): its files and event numbers, or with `event` >= 0 only the batch's event at that
     *  index (0-based within the batch). Writes at most `cap` bytes, NUL included. */
    int (*describe)(void *self, const djct_record *batch, int64_t event, char *buf, size_t cap);
} djct_loader;

/** Fill *out with a loader over djct's own dataset (the default implementation): epochs and
 *  resume positions map to djct_dataset_seek(), waits to djct_dataset_wait_seconds(). The
 *  dataset is borrowed (free it yourself after the trainer); out->destroy is NULL. */
DJCT_API int djct_loader_from_dataset(djct_loader *out, djct_dataset *ds);

/** Everything measured in one step, handed to the batch callbacks. Global values are over all
 *  ranks (the same on every rank). */
typedef struct {
    int64_t epoch;          /* 0-based */
    int64_t step;           /* step within the epoch, 0-based */
    int64_t steps;          /* steps in this epoch */
    int64_t global_step;    /* optimizer steps taken so far by the run, after this one */
    int     validation;     /* 1 in val_epoch */
    int     skipped;        /* 1: non-finite loss or gradient, the update was skipped */
    double  loss;           /* global mean loss, weighted by events */
    double  lr;             /* learning rate used */
    int64_t events;         /* global events this step */
    int64_t elements;       /* global elements this step */
    double  t_step;         /* seconds (this rank) */
    double  t_data;         /* seconds waiting for data (this rank) */
    double  t_compute;      /* forward + backward + optimizer, minus exposed communication */
    double  t_comm;         /* exposed (non-overlapped) communication */
    double  events_per_s;   /* global events / max step time over ranks */
    double  elements_per_s;
    const char *warning;    /* NULL, or a warning for the app to print (once, on one rank): this
                               step took the epoch's skipped steps past 10% of its steps */
} djct_step_report;

/** Per-batch callback (djctools' train_batch_callback / val_batch_callback). Return non-zero to
 *  stop training after this step (the value is agreed over ranks at the next step). */
typedef int (*djct_batch_callback)(void *user, const djct_step_report *r);

typedef enum { DJCT_WEIGHT_EVENTS = 0, DJCT_WEIGHT_ELEMENTS = 1, DJCT_WEIGHT_NONE = 2 } djct_weighting;
typedef enum { DJCT_NONFINITE_SKIP = 0, DJCT_NONFINITE_STOP = 1 } djct_nonfinite_policy;

/** Why fit() returned. */
typedef enum {
    DJCT_STOP_DONE      = 0, /* all epochs / max steps */
    DJCT_STOP_PREEMPTED = 1, /* SIGUSR1/SIGTERM: checkpoint written, exit DJCT_EXIT_REQUEUE */
    DJCT_STOP_INTERRUPTED = 2, /* SIGINT or a callback asked to stop: checkpoint written */
    DJCT_STOP_NONFINITE = 3, /* non-finite loss with DJCT_NONFINITE_STOP */
    DJCT_STOP_EARLY     = 4  /* early stopping: the monitored validation metric stopped improving */
} djct_stop_reason;

typedef struct {
    unsigned int version;          /* always first */
    int          average;          /* 1: average gradients over ranks; 0: no communication
                                      (benchmark baseline: replicas drift apart) */
    int          weighting;        /* djct_weighting: how ranks' gradients are weighted */
    int          overlap;          /* 1: reduce buckets during the backward pass */
    size_t       bucket_bytes;     /* 0: comm's default */
    int          nonfinite;        /* djct_nonfinite_policy */
    int64_t      epochs;           /* fit(): epochs to run */
    int64_t      max_steps;        /* fit(): stop after this many optimizer steps in total; 0: none */
    const char  *run_dir;          /* checkpoints go to <run_dir>/checkpoints; NULL: no checkpoints */
    int64_t      checkpoint_every_steps;   /* 0: never by steps */
    double       checkpoint_every_minutes; /* 0: never by time (rank 0's clock decides for all) */
    int          keep_checkpoints; /* complete checkpoints kept; 0: all */
    int          log_every;        /* flush the logging singleton every N steps (0: 1) */
    int          validate;         /* fit(): run val_epoch after every epoch when a val loader exists */
    djct_batch_callback train_callback;
    djct_batch_callback val_callback;
    void        *callback_user;
    uint64_t     seed;             /* recorded in checkpoints; the loaders' shuffling uses their own */
    /* version 2 */
    const djct_train_controls *controls; /* clipping, accumulation, precision, best checkpoint,
                                            early stopping, plateau, freezing (copied at create);
                                            NULL: none */
} djct_trainer_options;
/* version 1 (without `controls`) is still accepted */
#define DJCT_TRAINER_OPTIONS_VERSION 2
#define DJCT_TRAINER_OPTIONS_INIT                                                                 \
    { DJCT_TRAINER_OPTIONS_VERSION, 1, DJCT_WEIGHT_EVENTS, 1, 0, DJCT_NONFINITE_SKIP, 1, 0, NULL, \
      0, 0.0, 3, 1, 1, NULL, NULL, NULL, 0, NULL }

/** Create a trainer (collective over `comm`). Broadcasts the model's parameters from rank 0 and
 *  checks they agree, builds the gradient bucket plan over the model's gradient slab and installs
 *  the gradient-ready hook when `overlap` is on. Borrows model, optimizer, comm and loaders (the
 *  validation loader may be NULL); they must outlive the trainer. *out is yours
 *  (djct_trainer_free()). */
DJCT_API int djct_trainer_create(djct_trainer **out, djct_model *model, djct_optimizer *opt, djct_comm *comm,
                                 djct_loader *train, djct_loader *val, const djct_trainer_options *opts);

/** Free the trainer (not the borrowed objects). NULL is fine. */
DJCT_API void djct_trainer_free(djct_trainer *t);

/** Resume from the newest complete checkpoint of opts.run_dir, if any (collective): loads the
 *  model parameters and optimizer state and the position (epoch, step). *resumed (may be NULL)
 *  receives 1 when a checkpoint was used, and *step its global step. Newer checkpoints that fail
 *  verification are set aside (djct_ckpt_find_latest_checked) and reported by
 *  djct_trainer_damaged_checkpoints(); when none is usable, *resumed is 0 and the caller decides
 *  whether to start fresh. Resuming from a checkpoint takes the run journal back to the step it
 *  recorded (djct_log_rewind), so the replayed steps are not logged twice. */
DJCT_API int djct_trainer_resume(djct_trainer *t, int *resumed, int64_t *step);

/** After djct_trainer_resume(): the damaged checkpoints it set aside, one line each naming the
 *  checkpoint, the file and the mismatch (rank 0; "" elsewhere and when none), and in *n_damaged
 *  (may be NULL; every rank alike) how many checkpoints of the run directory are set aside as
 *  damaged, by this resume or earlier ones. Borrowed until the next resume or djct_trainer_free. */
DJCT_API const char *djct_trainer_damaged_checkpoints(const djct_trainer *t, int *n_damaged);

/** Train one epoch from the current position (collective). Stops early (returning 0) on an agreed
 *  signal, callback stop or max_steps; djct_trainer_stop_reason() tells why. */
DJCT_API int djct_trainer_train_epoch(djct_trainer *t);

/** Evaluate the validation loader once (collective): losses active, no gradients; metrics are
 *  logged with the prefix "val_". *loss (may be NULL) receives the event-weighted mean loss. */
DJCT_API int djct_trainer_val_epoch(djct_trainer *t, double *loss);

/** Train until the epochs / max_steps are done or a stop is agreed (collective): train_epoch,
 *  val_epoch (when enabled), checkpoints by steps/minutes, at the end and on every stop. */
DJCT_API int djct_trainer_fit(djct_trainer *t);

/** Write a checkpoint of the current state now (collective). When logging is on, the checkpoint
 *  records the run journal's last _step (djct_log_checkpoint), for djct_trainer_resume. */
DJCT_API int djct_trainer_save_checkpoint(djct_trainer *t);

/** 1 when the last error of fit/train_epoch/save_checkpoint was reached by every rank at the same
 *  point (an epoch that skipped every step, a non-finite stop, no steps, a checkpoint rank 0 could
 *  not write): the ranks are still in step, so an app may print rank 0's message alone and end
 *  every rank normally. 0 for an error of this rank alone: print it and end the job
 *  (djct_comm_abort), as the other ranks may wait in a collective. */
DJCT_API int djct_trainer_error_is_shared(const djct_trainer *t);

/** djct_stop_reason of the last fit/train_epoch. */
DJCT_API int djct_trainer_stop_reason(const djct_trainer *t);

/** Totals since create: optimizer steps taken, steps skipped as non-finite, current epoch and step
 *  within it. Any output may be NULL. */
DJCT_API void djct_trainer_position(const djct_trainer *t, int64_t *global_step, int64_t *skipped,
                                    int64_t *epoch, int64_t *step);

/** Medians over the steps of the last train_epoch of this rank's step time split, and the global
 *  throughput (all may be NULL). */
DJCT_API void djct_trainer_epoch_stats(const djct_trainer *t, double *t_step, double *t_data,
                                       double *t_compute, double *t_comm, double *events_per_s,
                                       double *elements_per_s, double *last_loss);

/** Gradient reductions (averaging steps) run since create: one per optimizer step, or per
 *  accumulated group of micro-batches. */
DJCT_API int64_t djct_trainer_reductions(const djct_trainer *t);

/** The event-weighted loss of the last val_epoch into *loss (NaN when none ran). */
DJCT_API void djct_trainer_last_val_loss(const djct_trainer *t, double *loss);

DJCT_END_DECLS

#endif /* DJCT_TRAINER_H */
