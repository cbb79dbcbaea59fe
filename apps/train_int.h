/* djct_train's parts (apps/djct_train.c, apps/train_*.c): the options, the run that main's steps
 * build, and the functions one part calls in another. A program's internals, not library API. */
#ifndef DJCT_TRAIN_INT_H
#define DJCT_TRAIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "app_common.h"
#include "djct/djct.h"

#define PROG "djct_train"

/* ---- options (apps/train_options.c) ---------------------------------------------------------- */
enum { DEVICE_AUTO = -1 }; /* with DJCT_DEVICE_CPU and DJCT_DEVICE_CUDA */

typedef struct {
    char *config;
    /* data */
    char *data, *val_data;
    app_data_opts data_opts; /* with djct_predict: --h5-map, --batch-*, --prefetch, ... */
    int strict, shuffle;
    int64_t gen_events;
    /* model */
    char *model;
    int64_t hidden, classes;
    int layers;
    /* optimizer */
    int optimizer, schedule;
    double lr, momentum, weight_decay, gamma, min_lr;
    int64_t warmup_steps, step_size;
    /* run */
    int64_t epochs, max_steps, seed;
    char *run_dir, *run_id;
    int resume, fresh_if_damaged;
    int64_t ckpt_steps;
    double ckpt_minutes;
    int keep_ckpt, nonfinite;
    /* training controls */
    double clip_norm, min_delta, plateau_factor, plateau_min_lr;
    int accumulate, precision, monitor_mode, keep_best, patience, plateau_patience;
    char *monitor, *freeze;
    /* distributed */
    int average, overlap, threads, check_consistency, weighting, device, backend, jit_optimize;
    double bucket_mb, watchdog;
    /* logging */
    int wandb_mode;
    char *project, *entity, *run_name, *group, *job_type, *tags, *notes;
    int log_every, csv, fsync, validate, model_logging, malloc_tune, progress;
    double print_every, upload_timeout;
    char *logging, *loss; /* NAME=on|off lists */
} cfg;

extern const djct_opt train_opts[]; /* the option table */
extern const size_t train_n_opts;

/* ---- the steady-state rate (apps/train_progress.c) ------------------------------------------ */
/* Steady-state throughput: global events and elements of the steps after the warm-up over the wall
 * time from the end of the warm-up's last step to the end of the last step (start-up, the first
 * steps' one-off costs excluded; everything a step costs included: data, compute, communication,
 * logging, checkpoints), as bench/train_bench.sh measures it from the journal's _runtime. */
typedef struct {
    int64_t warmup, seen, steps; /* warm-up steps, steps seen, steps in the window */
    double t0, t1, events, elements;
} steady_rate;

/* ---- the run: what the steps of main() build, in order ---------------------------------------- */
typedef struct run {
    cfg c;
    djct_comm *comm;
    int rank, size, threads;
    int device; /* DJCT_DEVICE_CPU or DJCT_DEVICE_CUDA: --device resolved (the same on every rank) */
    char run_id[128], run_dir[4096];
    char train_spec[4400], val_spec[4400];
    djct_dataset *train_ds, *val_ds;
    int64_t steps_per_epoch;
    djct_model *model;
    djct_optimizer *opt;
    djct_loader train_ld, val_ld;
    djct_progress *progress;
    steady_rate steady;
    int64_t hold_at_step; /* DJCT_TEST_HOLD_AT_STEP (tests only); -1: off */
    int fault_rank, fault_kind; /* DJCT_TEST_FAULT (tests only); kind FAULT_NONE: off */
    int64_t fault_step;
    djct_trainer *tr;
    /* the outcome */
    int ended; /* the process ends by design (finish, a usage error, fail): no early-exit report */
    int stop_reason;
    double wall;
} run;

/* ---- failures (apps/djct_train.c) ------------------------------------------------------------- */
/* A fatal error after MPI is up: this rank says why in one line, writes what its journal holds
 * without a collective (the other ranks may be gone, stopped, or waiting in another collective)
 * and ends the job: MPI_Abort makes the launcher end every rank. */
void fail(const run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
#define FAIL(R, ...) fail((R), __VA_ARGS__)

/* A fatal error every rank reached at the same point (the same data, an agreed vote): the ranks
 * are in step, so rank 0 says it once, the journal is closed collectively and every rank ends
 * normally with exit 1. */
void fail_alike(run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* the steps of training the run will take: --max-steps, else the epochs' */
int64_t planned_steps(const run *R);

/* ---- the parts of main's steps ---------------------------------------------------------------- */
/* step 1: options, all validated before any heavy work; a usage error ends every rank with exit 2
 * (apps/train_options.c) */
void parse_options(run *R, int argc, char **argv);
void choose_run(run *R); /* step 3: run id and directory (apps/train_run_dir.c) */
void open_data(run *R);  /* step 4: the datasets (apps/train_data.c) */

/* the trainer's step callback: the steady-state rate, rank 0's progress and warnings, the tests'
 * hooks (apps/train_progress.c) */
void steady_start(steady_rate *s, int64_t planned);
int on_train_step(void *user, const djct_step_report *r);

/* DJCT_TEST_HOLD_AT_STEP and DJCT_TEST_FAULT (tests only; apps/train_testhooks.c): read from the
 * environment (-1: DJCT_TEST_FAULT malformed), and run after each step */
int test_hooks_read(run *R);
void test_hooks_step(run *R, const djct_step_report *r);

/* step 11 and the end: the report of the run, summary.json (apps/train_report.c) */
void report(run *R);
void report_upload(const run *R, int finish_rc, const char *finish_err);

#endif /* DJCT_TRAIN_INT_H */
