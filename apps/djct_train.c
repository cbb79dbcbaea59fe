/* djct_train: data-parallel training over MPI ranks (one per GPU, or CPU ranks).
 * A thin app over the library: options (one table for the command line, config files and --help),
 * dataset, model, optimizer, comm, logging singleton, trainer. Without --data it trains the built-in
 * point-cloud model on a synthetic irregular dataset generated once into a cache directory.
 * Exit codes: 0 done, 1 failure, 2 usage, 75 preempted (checkpoint written: requeue with --resume),
 * 130 interrupted by SIGINT (checkpoint written). */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djct/djct.h"

#define PROG "djct_train"

/* ---- options -------------------------------------------------------------------------------- */
enum { JIT_AUTO = -1, JIT_OFF = 0, JIT_ON = 1 };
enum { DEVICE_AUTO = -1 }; /* with DJCT_DEVICE_CPU and DJCT_DEVICE_CUDA */

typedef struct {
    char *config;
    /* data */
    char *data, *val_data, *h5_map;
    int64_t batch_elements, batch_events;
    int squared_limit, strict, shuffle, prefetch, decode_threads;
    int64_t prefault_mb, gen_events;
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

static const djct_opt_choice SHUFFLE[] = {
    {"none", DJCT_SHUFFLE_NONE}, {"files", DJCT_SHUFFLE_FILES}, {"global", DJCT_SHUFFLE_GLOBAL}, {NULL, 0}};
static const djct_opt_choice OPTIMIZER[] = {
    {"sgd", DJCT_OPTIM_SGD}, {"adam", DJCT_OPTIM_ADAM}, {"adamw", DJCT_OPTIM_ADAMW}, {NULL, 0}};
static const djct_opt_choice SCHEDULE[] = {
    {"constant", DJCT_LR_CONSTANT}, {"step", DJCT_LR_STEP}, {"cosine", DJCT_LR_COSINE}, {NULL, 0}};
static const djct_opt_choice WEIGHTING[] = {
    {"events", DJCT_WEIGHT_EVENTS}, {"elements", DJCT_WEIGHT_ELEMENTS}, {"none", DJCT_WEIGHT_NONE}, {NULL, 0}};
static const djct_opt_choice DEVICE[] = {
    {"auto", DEVICE_AUTO}, {"cpu", DJCT_DEVICE_CPU}, {"cuda", DJCT_DEVICE_CUDA}, {NULL, 0}};
static const djct_opt_choice JIT[] = {{"auto", JIT_AUTO}, {"on", JIT_ON}, {"off", JIT_OFF}, {NULL, 0}};
static const djct_opt_choice BACKEND[] = {
    {"auto", DJCT_COMM_BACKEND_AUTO}, {"mpi", DJCT_COMM_BACKEND_MPI}, {"nccl", DJCT_COMM_BACKEND_NCCL}, {NULL, 0}};
static const djct_opt_choice PRECISION[] = {
    {"fp32", DJCT_PRECISION_FP32}, {"bf16", DJCT_PRECISION_BF16}, {"fp16", DJCT_PRECISION_FP16}, {NULL, 0}};
static const djct_opt_choice MONITOR_MODE[] = {{"min", DJCT_MONITOR_MIN}, {"max", DJCT_MONITOR_MAX}, {NULL, 0}};
static const djct_opt_choice NONFINITE[] = {{"skip", DJCT_NONFINITE_SKIP}, {"stop", DJCT_NONFINITE_STOP}, {NULL, 0}};
/* with the wandb SDK's other spellings, which $WANDB_MODE may hold */
static const djct_opt_choice WANDB_MODE[] = {{"auto", DJCT_LOG_MODE_AUTO},
                                             {"online", DJCT_LOG_MODE_ONLINE},
                                             {"offline", DJCT_LOG_MODE_OFFLINE},
                                             {"disabled", DJCT_LOG_MODE_DISABLED},
                                             {"dryrun", DJCT_LOG_MODE_OFFLINE},
                                             {"run", DJCT_LOG_MODE_ONLINE},
                                             {"shared", DJCT_LOG_MODE_ONLINE},
                                             {NULL, 0}};
static const djct_opt_choice PROGRESS[] = {{"auto", DJCT_PROGRESS_AUTO},
                                           {"bar", DJCT_PROGRESS_BAR},
                                           {"lines", DJCT_PROGRESS_LINES},
                                           {"none", DJCT_PROGRESS_NONE},
                                           {NULL, 0}};

#define O(f) offsetof(cfg, f)
static const djct_opt T[] = {
    {"config", 'c', DJCT_OPT_STRING, O(config), NULL, NULL, 0, 0, "FILE",
     "INI file of these options (keys = long names); the command line wins", "General"},
    {"epochs", 'e', DJCT_OPT_INT64, O(epochs), "3", NULL, 1, 1e9, "N", "epochs to train", NULL},
    {"max-steps", 0, DJCT_OPT_INT64, O(max_steps), "0", NULL, 0, 1e15, "N", "stop after N optimizer steps (0: no limit)", NULL},
    {"seed", 0, DJCT_OPT_INT64, O(seed), "1", NULL, 0, 9e15, "N", "seed of parameters and shuffling", NULL},
    {"run-dir", 0, DJCT_OPT_STRING, O(run_dir), NULL, NULL, 0, 0, "DIR",
     "run directory: checkpoints, journal, model, summary (default runs/<run-id>)", NULL},
    {"run-id", 0, DJCT_OPT_STRING, O(run_id), "${WANDB_RUN_ID}", NULL, 0, 0, "ID",
     "run id (else the run dir's, else random); same id = same wandb run", NULL},
    {"resume", 0, DJCT_OPT_FLAG, O(resume), "0", NULL, 0, 0, NULL,
     "continue from the newest complete checkpoint of the run dir (none yet: start fresh; damaged ones are "
     "set aside, and when every one is damaged it stops, exit 1); the journal's rows past that checkpoint "
     "move to history.rewound.jsonl", NULL},
    {"fresh-if-damaged", 0, DJCT_OPT_FLAG, O(fresh_if_damaged), "0", NULL, 0, 0, NULL,
     "with --resume: when every checkpoint is damaged, start again from step 0 instead of stopping", NULL},

    {"data", 'd', DJCT_OPT_STRING, O(data), NULL, NULL, 0, 0, "SPEC",
     "training files: paths, dir, glob or list file, ','-separated (default: the embedded synthetic set)", "Data"},
    {"val-data", 0, DJCT_OPT_STRING, O(val_data), NULL, NULL, 0, 0, "SPEC", "validation files (default: none, or the embedded set's)", NULL},
    {"h5-map", 0, DJCT_OPT_STRING, O(h5_map), NULL, NULL, 0, 0, "FILE",
     "mapping file (INI) naming the datasets of HDF5 files in a layout of their own (default: each file's "
     "FILE.djct.ini beside it, if any; docs/data.md)", NULL},
    {"batch-elements", 'b', DJCT_OPT_INT64, O(batch_elements), "6400", NULL, 0, 1e15, "N",
     "ragged data: elements per rank batch (0: count events)", NULL},
    {"batch-events", 0, DJCT_OPT_INT64, O(batch_events), "32", NULL, 1, 1e12, "N",
     "events per rank batch for non-ragged data", NULL},
    {"squared-limit", 0, DJCT_OPT_FLAG, O(squared_limit), "0", NULL, 0, 0, NULL,
     "compare (sum of elements)^2 with --batch-elements (djcdata)", NULL},
    {"strict", 0, DJCT_OPT_FLAG, O(strict), "1", NULL, 0, 0, NULL,
     "drop events larger than the limit (counted); off: serve them alone", NULL},
    {"shuffle", 0, DJCT_OPT_CHOICE, O(shuffle), "global", SHUFFLE, 0, 0, NULL, "per-epoch shuffling", NULL},
    {"prefetch", 0, DJCT_OPT_INT, O(prefetch), "2", NULL, 0, 64, "N", "batches decoded ahead (0: none)", NULL},
    {"decode-threads", 0, DJCT_OPT_INT, O(decode_threads), "-1", NULL, 0, 1024, "N",
     "threads decoding .djctd files ahead, in the order the batches need them (default: the rank's cores "
     "beyond --threads, at least 1; 0: decoded by the thread that builds the batches)", NULL},
    {"prefault-mb", 0, DJCT_OPT_INT64, O(prefault_mb), "2048", NULL, 0, 1e9, "MB",
     "touch a mapped (uncompressed) HDF5 file's pages when it is first opened, up to MB in all, so "
     "the first epoch's random reads take no page faults (0: off)", NULL},
    {"gen-events", 0, DJCT_OPT_INT64, O(gen_events), "20000", NULL, 100, 1e8, "N",
     "events of the embedded synthetic training set", NULL},

    {"model", 'm', DJCT_OPT_STRING, O(model), "pointcloud", NULL, 0, 0, "NAME|FILE.pt",
     "built-in model (pointcloud, mlp) or a TorchScript file", "Model"},
    {"hidden", 0, DJCT_OPT_INT64, O(hidden), "0", NULL, 0, 1e6, "N", "built-in: hidden width (0: default)", NULL},
    {"layers", 0, DJCT_OPT_INT, O(layers), "0", NULL, 0, 64, "N", "built-in: hidden layers (0: default)", NULL},
    {"classes", 0, DJCT_OPT_INT64, O(classes), "0", NULL, 0, 1e6, "N", "built-in: classes (0: default)", NULL},

    {"optimizer", 0, DJCT_OPT_CHOICE, O(optimizer), "adam", OPTIMIZER, 0, 0, NULL, "optimizer", "Optimizer"},
    {"lr", 0, DJCT_OPT_DOUBLE, O(lr), "0.001", NULL, 1e-12, 100, "X", "learning rate", NULL},
    {"momentum", 0, DJCT_OPT_DOUBLE, O(momentum), "0.9", NULL, 0, 1, "X", "SGD momentum", NULL},
    {"weight-decay", 0, DJCT_OPT_DOUBLE, O(weight_decay), "0", NULL, 0, 10, "X", "weight decay (decoupled for adamw)", NULL},
    {"schedule", 0, DJCT_OPT_CHOICE, O(schedule), "constant", SCHEDULE, 0, 0, NULL, "learning-rate schedule", NULL},
    {"warmup-steps", 0, DJCT_OPT_INT64, O(warmup_steps), "0", NULL, 0, 1e12, "N", "linear warm-up steps", NULL},
    {"step-size", 0, DJCT_OPT_INT64, O(step_size), "1000", NULL, 1, 1e12, "N", "step schedule: steps per decay", NULL},
    {"gamma", 0, DJCT_OPT_DOUBLE, O(gamma), "0.1", NULL, 0, 1, "X", "step schedule: decay factor", NULL},
    {"min-lr", 0, DJCT_OPT_DOUBLE, O(min_lr), "0", NULL, 0, 100, "X", "cosine schedule: final learning rate", NULL},

    {"average", 0, DJCT_OPT_FLAG, O(average), "1", NULL, 0, 0, NULL,
     "average gradients over ranks (off: no communication, a benchmark baseline)", "Distributed"},
    {"weighting", 0, DJCT_OPT_CHOICE, O(weighting), "events", WEIGHTING, 0, 0, NULL,
     "weight of each rank's gradient in the average", NULL},
    {"overlap", 0, DJCT_OPT_FLAG, O(overlap), "1", NULL, 0, 0, NULL, "reduce gradient buckets during backward", NULL},
    {"bucket-mb", 0, DJCT_OPT_DOUBLE, O(bucket_mb), "0", NULL, 0, 1024, "MB", "gradient bucket size (0: default)", NULL},
    {"threads", 0, DJCT_OPT_INT, O(threads), "0", NULL, 0, 1024, "N", "threads per rank, libtorch's intra-op pool and OpenBLAS's (0: cores available to the rank)", NULL},
    {"device", 0, DJCT_OPT_CHOICE, O(device), "auto", DEVICE, 0, 0, NULL,
     "where the model runs (auto: cuda when this libtorch has CUDA and every rank sees a GPU, else cpu)", NULL},
    {"jit-optimize", 0, DJCT_OPT_CHOICE, O(jit_optimize), "auto", JIT, 0, 0, NULL,
     "TorchScript graph-executor optimisation (auto: off on cpu, where it only adds overhead; on on cuda)", NULL},
    {"backend", 0, DJCT_OPT_CHOICE, O(backend), "auto", BACKEND, 0, 0, NULL, "gradient reduction backend", NULL},
    {"watchdog-seconds", 0, DJCT_OPT_DOUBLE, O(watchdog), "600", NULL, 0, 1e6, "S",
     "fail naming the missing ranks when a collective takes longer (0: off)", NULL},
    {"check-consistency", 0, DJCT_OPT_FLAG, O(check_consistency), "0", NULL, 0, 0, NULL,
     "at the end, compare every rank's parameters with rank 0's (hash); fail naming the ranks that differ", NULL},

    {"checkpoint-every-steps", 0, DJCT_OPT_INT64, O(ckpt_steps), "0", NULL, 0, 1e15, "N",
     "checkpoint every N steps (0: off)", "Checkpoints"},
    {"checkpoint-every-minutes", 0, DJCT_OPT_DOUBLE, O(ckpt_minutes), "30", NULL, 0, 1e6, "M",
     "checkpoint every M minutes (0: off); always at the end and on preemption", NULL},
    {"keep-checkpoints", 0, DJCT_OPT_INT, O(keep_ckpt), "3", NULL, 0, 1000000, "N", "complete checkpoints kept (0: all)", NULL},
    {"nonfinite", 0, DJCT_OPT_CHOICE, O(nonfinite), "skip", NONFINITE, 0, 0, NULL,
     "a non-finite loss or gradient skips the step (counted) or stops", NULL},

    {"clip-grad-norm", 0, DJCT_OPT_DOUBLE, O(clip_norm), "0", NULL, 0, 1e12, "X",
     "clip the averaged gradients to global L2 norm X (0: off); the norm before clipping is logged as grad_norm",
     "Training controls"},
    {"accumulate", 0, DJCT_OPT_INT, O(accumulate), "1", NULL, 1, 1000000, "N",
     "accumulate the gradients of N batches (micro-batches) per optimizer step, one reduction per N", NULL},
    {"precision", 0, DJCT_OPT_CHOICE, O(precision), "fp32", PRECISION, 0, 0, NULL,
     "forward under autocast: bf16 (CPU or cuda), fp16 (cuda only, dynamic loss scaling); parameters and "
     "optimizer state stay float32", NULL},
    {"monitor", 0, DJCT_OPT_STRING, O(monitor), "val_loss", NULL, 0, 0, "NAME",
     "validation metric for --keep-best, --early-stopping, --plateau-patience (val_loss or val_<metric> as logged)", NULL},
    {"monitor-mode", 0, DJCT_OPT_CHOICE, O(monitor_mode), "min", MONITOR_MODE, 0, 0, NULL,
     "whether a smaller (loss) or larger (accuracy) --monitor is better", NULL},
    {"min-delta", 0, DJCT_OPT_DOUBLE, O(min_delta), "0", NULL, 0, 1e12, "X",
     "an improvement must beat the best --monitor value by more than X", NULL},
    {"keep-best", 0, DJCT_OPT_FLAG, O(keep_best), "0", NULL, 0, 0, NULL,
     "write the model of the best validation so far to <run-dir>/best/model.pt (+ best.json)", NULL},
    {"early-stopping", 0, DJCT_OPT_INT, O(patience), "0", NULL, 0, 1000000, "N",
     "stop after N validations in a row without improvement of --monitor (0: off)", NULL},
    {"plateau-patience", 0, DJCT_OPT_INT, O(plateau_patience), "0", NULL, 0, 1000000, "N",
     "reduce-on-plateau: after N validations without improvement multiply the lr by --plateau-factor (0: off)", NULL},
    {"plateau-factor", 0, DJCT_OPT_DOUBLE, O(plateau_factor), "0.1", NULL, 1e-9, 0.999999, "X",
     "reduce-on-plateau: the lr factor", NULL},
    {"plateau-min-lr", 0, DJCT_OPT_DOUBLE, O(plateau_min_lr), "0", NULL, 0, 100, "X",
     "reduce-on-plateau: lowest learning rate", NULL},
    {"freeze", 0, DJCT_OPT_LIST, O(freeze), NULL, NULL, 0, 0, "GLOB",
     "keep the parameters whose names match frozen (djctools call-style exports: 'model.<...>'; ','-separated or repeated)", NULL},

    /* the WANDB_* twins sit between the built-in default and what the user gives, as in the wandb SDK */
    {"wandb-mode", 0, DJCT_OPT_CHOICE, O(wandb_mode), "${WANDB_MODE:-auto}", WANDB_MODE, 0, 0, NULL,
     "auto: online with an API key, else offline (dryrun = offline; run, shared = online)", "Logging"},
    {"project", 0, DJCT_OPT_STRING, O(project), "${WANDB_PROJECT:-djct}", NULL, 0, 0, "NAME", "wandb project", NULL},
    {"entity", 0, DJCT_OPT_STRING, O(entity), "${WANDB_ENTITY}", NULL, 0, 0, "NAME",
     "wandb entity (else the key owner's)", NULL},
    {"run-name", 0, DJCT_OPT_STRING, O(run_name), "${WANDB_NAME}", NULL, 0, 0, "NAME", "wandb display name", NULL},
    {"group", 0, DJCT_OPT_STRING, O(group), "${WANDB_RUN_GROUP}", NULL, 0, 0, "NAME", "wandb run group", NULL},
    {"job-type", 0, DJCT_OPT_STRING, O(job_type), "${WANDB_JOB_TYPE}", NULL, 0, 0, "NAME", "wandb job type", NULL},
    {"tags", 0, DJCT_OPT_STRING, O(tags), "${WANDB_TAGS}", NULL, 0, 0, "A,B", "wandb tags", NULL},
    {"notes", 0, DJCT_OPT_STRING, O(notes), "${WANDB_NOTES}", NULL, 0, 0, "TEXT", "wandb notes", NULL},
    {"upload-timeout", 0, DJCT_OPT_DOUBLE, O(upload_timeout), "60", NULL, 0.001, 1e6, "S",
     "online: at the end, wait at most S seconds for the upload; what is left stays in the journal for "
     "djct_sync (the end of the run says what and how)", NULL},
    {"log-every", 0, DJCT_OPT_INT, O(log_every), "1", NULL, 1, 1000000, "N", "write a metrics row every N steps", NULL},
    {"csv", 0, DJCT_OPT_FLAG, O(csv), "1", NULL, 0, 0, NULL, "also write history.csv in the journal", NULL},
    {"fsync", 0, DJCT_OPT_FLAG, O(fsync), "1", NULL, 0, 0, NULL, "fsync the journal in a background thread (off: a node crash may lose the last rows; a "
     "killed job never does)", NULL},
    {"malloc-tune", 0, DJCT_OPT_FLAG, O(malloc_tune), "1", NULL, 0, 0, NULL,
     "keep freed memory in the process (glibc mallopt; unless MALLOC_*_ is set): no page-fault churn "
     "from per-step tensors", NULL},
    {"validate", 0, DJCT_OPT_FLAG, O(validate), "1", NULL, 0, 0, NULL, "validate after every epoch (val_ metrics)", NULL},
    {"model-logging", 0, DJCT_OPT_FLAG, O(model_logging), "1", NULL, 0, 0, NULL,
     "switch on every LoggingModule of the model (accuracy, resolution, ...)", NULL},
    {"logging", 0, DJCT_OPT_LIST, O(logging), NULL, NULL, 0, 0, "NAME=on|off",
     "switch single LoggingModules after --model-logging (NAME as printed at start-up, or a glob; "
     "','-separated or repeated; later entries win)", NULL},
    {"loss", 0, DJCT_OPT_LIST, O(loss), NULL, NULL, 0, 0, "NAME=on|off",
     "switch single LossModules on or off (as --logging)", NULL},
    {"progress", 0, DJCT_OPT_CHOICE, O(progress), "auto", PROGRESS, 0, 0, NULL,
     "rank 0 progress: a bar on a terminal, plain lines otherwise", NULL},
    {"print-every", 0, DJCT_OPT_DOUBLE, O(print_every), "10", NULL, 0, 1e6, "S", "seconds between plain progress lines", NULL},
};
#define NT (sizeof(T) / sizeof(T[0]))

#define USAGE                                                                                              \
    "usage: mpirun -np N djct_train [options]   (or srun; no options: the embedded point-cloud default)\n" \
    "exit codes: 0 done, 1 failure, 2 usage, 75 preempted (checkpoint written; requeue with --resume), "  \
    "130 interrupted\n-h,--help: this text; --version: version and build features"

/* Steady-state throughput: global events and elements of the steps after the warm-up over the wall
 * time from the end of the warm-up's last step to the end of the last step (start-up, the first
 * steps' one-off costs excluded; everything a step costs included: data, compute, communication,
 * logging, checkpoints), as bench/train_bench.sh measures it from the journal's _runtime. */
typedef struct {
    int64_t warmup, seen, steps; /* warm-up steps, steps seen, steps in the window */
    double t0, t1, events, elements;
} steady_rate;

/* the first tenth of the steps this run will take, at least one */
static void steady_start(steady_rate *s, int64_t planned)
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

/* ---- the run: what the steps of main() build, in order ---------------------------------------- */
typedef struct {
    cfg c;
    int have_cfg; /* c holds parsed options (freed on usage exits) */
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A fatal error after MPI is up: this rank says why in one line, writes what its journal holds
 * without a collective (the other ranks may be gone, stopped, or waiting in another collective)
 * and ends the job: MPI_Abort makes the launcher end every rank. */
static void fail(const run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fail(const run *R, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, PROG ": rank %d: %s\n", R->rank, msg);
    fflush(stderr);
    ((run *)R)->ended = 1;
    djct_log_finish_local(1);
    djct_comm_abort(R->comm, 1, NULL);
    exit(1); /* not reached */
}
#define FAIL(R, ...) fail((R), __VA_ARGS__)

/* A fatal error every rank reached at the same point (the same data, an agreed vote): the ranks
 * are in step, so rank 0 says it once, the journal is closed collectively and every rank ends
 * normally with exit 1. */
static void fail_alike(run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* everything a run holds, freed; MPI left (the journal is closed before) */
static void free_run(run *R)
{
    djct_trainer_free(R->tr);
    djct_progress_free(R->progress);
    djct_optimizer_free(R->opt);
    djct_model_free(R->model);
    djct_dataset_free(R->train_ds);
    djct_dataset_free(R->val_ds);
    djct_comm_free(R->comm);
    djct_opts_free(T, NT, &R->c);
    djct_comm_finalize_mpi();
}

/* the end of a failed run whose ranks all know it failed: close the journal (exit code 1), free
 * everything, leave MPI */
static _Noreturn void finish_failed(run *R)
{
    djct_log_finish(1);
    free_run(R);
    exit(1);
}

static void fail_alike(run *R, const char *fmt, ...)
{
    if (R->rank == 0) {
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, PROG ": %s\n", msg);
        fflush(stderr);
    }
    R->ended = 1;
    finish_failed(R);
}

static void die_usage(run *R, const char *msg)
{
    R->ended = 1;
    if (R->rank == 0)
        fprintf(stderr, PROG ": %s\n", msg);
    if (R->have_cfg)
        djct_opts_free(T, NT, &R->c);
    djct_comm_finalize_mpi();
    exit(2);
}

/* DJCT_TEST_FAULT=RANK:STEP:KIND (tests only): after global step STEP, rank RANK fails the way a
 * real rank can fail: `stop` (SIGSTOP: a stalled rank), `kill` (SIGKILL: a crashed node), `exit`
 * (exit(0) without MPI_Finalize: a library that quits). The other ranks must end the job. */
enum { FAULT_NONE, FAULT_STOP, FAULT_KILL, FAULT_EXIT };

static void parse_fault(run *R)
{
    R->fault_kind = FAULT_NONE;
    const char *f = getenv("DJCT_TEST_FAULT");
    char kind[16] = "";
    int rank = -1;
    long long step = -1;
    if (!f || !*f)
        return;
    if (sscanf(f, "%d:%lld:%15s", &rank, &step, kind) != 3 ||
        !(R->fault_kind = !strcmp(kind, "stop") ? FAULT_STOP : !strcmp(kind, "kill") ? FAULT_KILL
                                                  : !strcmp(kind, "exit")           ? FAULT_EXIT
                                                                                      : FAULT_NONE))
        die_usage(R, "DJCT_TEST_FAULT: want RANK:STEP:stop|kill|exit (tests only)");
    R->fault_rank = rank;
    R->fault_step = step;
}

/* A library (or model code) that calls exit() in the middle of training would leave without
 * MPI_Finalize: the launcher then ends the job, but only this rank knows where it was. */
static run *g_run;

static void report_early_exit(void)
{
    run *R = g_run;
    if (!R || R->ended)
        return;
    int64_t epoch = 0, step = 0;
    djct_trainer_position(R->tr, NULL, NULL, &epoch, &step);
    if (R->tr)
        fprintf(stderr, PROG ": rank %d: exit() called at epoch %" PRId64 " step %" PRId64
                " before training ended (by the model or a library); the job ends\n", R->rank, epoch, step);
    else
        fprintf(stderr, PROG ": rank %d: exit() called during start-up (by a library); the job ends\n", R->rank);
    fflush(stderr);
    R->ended = 1;
    djct_log_finish_local(1);
    _exit(1); /* non-zero: the launcher ends the other ranks */
}

/* ---- step 1: options, all validated before any heavy work ----------------------------------- */
static void parse_options(run *R, int argc, char **argv)
{
    /* only for messages before the communicator exists */
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    R->rank = r ? atoi(r) : 0;
    if (djct_opts_argv_has(argc, argv, "--help", "-h")) {
        if (R->rank == 0)
            djct_opts_print_help(T, NT, USAGE, stdout);
        djct_comm_finalize_mpi();
        exit(0);
    }
    cfg *c = &R->c;
    R->have_cfg = 1;
    if (djct_opts_defaults(T, NT, c) || djct_opts_parse_argv(T, NT, c, argc, argv, NULL))
        die_usage(R, djct_last_error());
    if (strcmp(c->model, "pointcloud") && strcmp(c->model, "mlp")) {
        struct stat st;
        if (stat(c->model, &st)) {
            char m[1200];
            snprintf(m, sizeof(m), "--model '%s' is neither a built-in model (pointcloud, mlp) nor a readable file", c->model);
            die_usage(R, m);
        }
    }
    const char *bad_switch = c->logging && djct_model_switch_list_check(DJCT_SWITCH_LOGGING, c->logging) ? "logging"
                             : c->loss && djct_model_switch_list_check(DJCT_SWITCH_LOSS, c->loss)     ? "loss"
                                                                                                      : NULL;
    if (bad_switch) {
        char m[1200];
        snprintf(m, sizeof(m), "--%s: %s", bad_switch, djct_last_error());
        die_usage(R, m);
    }
    if (c->max_steps == 0 && c->epochs == 0)
        die_usage(R, "--epochs 0 with --max-steps 0 would train nothing");
    if (c->precision == DJCT_PRECISION_FP16 && c->device != DJCT_DEVICE_CUDA)
        die_usage(R, "--precision fp16 needs --device cuda: libtorch autocasts to bfloat16 only on CPU; use "
                     "--precision bf16");
    if (strncmp(c->monitor, "val_", 4) != 0) {
        char m[1200];
        snprintf(m, sizeof(m), "--monitor '%s' is not a validation metric; name one as logged, e.g. val_loss or "
                 "val_metrics_accuracy", c->monitor);
        die_usage(R, m);
    }
    if ((c->keep_best || c->patience > 0 || c->plateau_patience > 0) && !c->validate)
        die_usage(R, "--keep-best, --early-stopping and --plateau-patience decide on validation metrics; drop "
                     "--no-validate");
    const char *hold = getenv("DJCT_TEST_HOLD_AT_STEP");
    R->hold_at_step = hold && *hold ? strtoll(hold, NULL, 10) : -1;
    parse_fault(R);
}

/* ---- step 2: the communicator and the device -------------------------------------------------- */
/* --device auto: cuda when every rank can train on its GPU, else cpu everywhere; rank 0 says which
 * and why. --device cuda where a rank cannot: every rank ends with exit 1, rank 0 naming the first
 * such rank and its reason. */
static void choose_device(run *R, int tcount, const char *why)
{
    int want = R->c.device, dev = djct_comm_device(R->comm);
    const char *how = want == DEVICE_AUTO ? "--device auto" : want == DJCT_DEVICE_CUDA ? "--device cuda" : "--device cpu";
    if (want == DJCT_DEVICE_CPU) {
        R->device = DJCT_DEVICE_CPU;
        if (R->rank == 0)
            printf("device: cpu (--device cpu)\n");
        return;
    }
    int able = tcount > 0 && dev >= 0;
    char reason[320];
    snprintf(reason, sizeof(reason), "%s", tcount == 0 ? why : "djct's CUDA runtime binds no GPU (see the rank's start-up line)");
    /* the first rank that cannot (none: the world size) tells everyone why */
    int first = able ? R->size : R->rank;
    if (djct_comm_allreduce(R->comm, &first, 1, DJCT_DTYPE_INT32, DJCT_COMM_REDUCE_MIN, "the device agreement") ||
        (first < R->size && djct_comm_bcast(R->comm, reason, sizeof(reason), first, "the device agreement's reason")))
        FAIL(R, "%s", djct_last_error());
    /* every rank knows the same: one line, and every rank ends normally */
    if (want == DJCT_DEVICE_CUDA && first < R->size)
        fail_alike(R, "rank %d: --device cuda: %s; use --device auto or cpu", first, reason);
    R->device = first == R->size ? DJCT_DEVICE_CUDA : DJCT_DEVICE_CPU;
    if (R->rank != 0)
        return;
    if (R->device == DJCT_DEVICE_CPU && first == 0)
        printf("device: cpu (%s: %s)\n", how, reason);
    else if (R->device == DJCT_DEVICE_CPU)
        printf("device: cpu (%s: rank %d: %s)\n", how, first, reason);
    else
        printf("device: cuda:%d on rank 0 (%s: local rank %d of %d, %d GPU%s visible; every rank on its own GPU, "
               "lines above)\n", dev, how, djct_comm_local_rank(R->comm), djct_comm_local_size(R->comm), tcount,
               tcount == 1 ? "" : "s");
}

static void setup_comm(run *R)
{
    int tcount = 0;
    char why[256] = "";
    if (R->c.device != DJCT_DEVICE_CPU && djct_torch_cuda_available(&tcount, why, sizeof(why)))
        snprintf(why, sizeof(why), "%s", djct_last_error());
    djct_comm_options co = DJCT_COMM_OPTIONS_INIT;
    /* bind a GPU only where the model can use one: a CPU run on a GPU node builds no NCCL */
    co.device = tcount > 0 ? DJCT_COMM_DEVICE_AUTO : DJCT_COMM_DEVICE_NONE;
    co.backend = R->c.backend;
    co.timeout_seconds = R->c.watchdog;
    if (djct_comm_create(&R->comm, &co)) {
        /* comm's messages already name the rank */
        char pre[32];
        const char *msg = djct_last_error();
        snprintf(pre, sizeof(pre), "rank %d: ", R->rank);
        fprintf(stderr, PROG ": %s%s\n", strncmp(msg, pre, strlen(pre)) ? pre : "", msg);
        R->ended = 1;
        djct_comm_finalize_mpi();
        exit(1);
    }
    R->rank = djct_comm_rank(R->comm);
    R->size = djct_comm_size(R->comm);
    const char *report = NULL;
    if (djct_comm_startup_report(R->comm, &report) == 0 && R->rank == 0 && report)
        printf("%s", report);
    choose_device(R, tcount, why);
    fflush(stdout);
}

/* ---- step 3: run id and directory, the same on every rank (rank 0 decides) -------------------- */
static void random_id(char *buf, size_t n)
{
    static const char a[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned s = (unsigned)time(NULL) ^ (unsigned)getpid() * 2654435761u;
    for (size_t i = 0; i + 1 < n && i < 8; i++) {
        s = s * 1103515245u + 12345u;
        buf[i] = a[(s >> 16) % 36];
    }
    buf[n < 9 ? n - 1 : 8] = '\0';
}

/* --run-id (else $WANDB_RUN_ID: the option's default), else the one stored in --run-dir, else random */
static void decide_run_id(const cfg *c, char *run_id, size_t n)
{
    run_id[0] = '\0';
    if (c->run_id)
        snprintf(run_id, n, "%s", c->run_id);
    else if (c->run_dir) {
        char p[4200];
        void *d = NULL;
        snprintf(p, sizeof(p), "%s/run_id", c->run_dir);
        if (djct_read_file(&d, NULL, p) == 0) {
            snprintf(run_id, n, "%s", (char *)d);
            run_id[strcspn(run_id, "\r\n")] = '\0';
            free(d);
        }
    }
    if (!run_id[0])
        random_id(run_id, 9);
}

static void choose_run(run *R)
{
    if (R->rank == 0) {
        decide_run_id(&R->c, R->run_id, sizeof(R->run_id));
        if (R->c.run_dir)
            snprintf(R->run_dir, sizeof(R->run_dir), "%s", R->c.run_dir);
        else
            snprintf(R->run_dir, sizeof(R->run_dir), "runs/%s", R->run_id);
    }
    djct_comm_buffer idb[2] = {{R->run_id, sizeof(R->run_id) / 4, DJCT_DTYPE_INT32, -1},
                               {R->run_dir, sizeof(R->run_dir) / 4, DJCT_DTYPE_INT32, -1}};
    if (djct_comm_broadcast(R->comm, idb, 2, 0))
        FAIL(R, "%s", djct_last_error());
    if (R->rank == 0) {
        if (djct_mkdirs(R->run_dir))
            FAIL(R, "run directory: %s; pass a writable --run-dir", djct_last_error());
        char p[4200];
        snprintf(p, sizeof(p), "%s/run_id", R->run_dir);
        djct_write_file_atomic(p, R->run_id, strlen(R->run_id));
    }
}

/* ---- step 4: data; the embedded default is generated once (rank 0) into the cache ------------- */
static int default_cache_dir(char *buf, size_t n, int64_t events, int64_t seed)
{
    const char *base = getenv("DJCT_CACHE");
    char tmp[2048];
    if (!base || !*base) {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(tmp, sizeof(tmp), "%s/djct", xdg);
        else if (home && *home)
            snprintf(tmp, sizeof(tmp), "%s/.cache/djct", home);
        else
            snprintf(tmp, sizeof(tmp), ".djct-cache");
        base = tmp;
    }
    return snprintf(buf, n, "%s/pointcloud-v1-e%" PRId64 "-s%" PRId64, base, events, seed) >= (int)n ? -1 : 0;
}

static void prepare_embedded_data(run *R)
{
    char dir[4096];
    if (default_cache_dir(dir, sizeof(dir), R->c.gen_events, 1))
        FAIL(R, "cache path too long; set DJCT_CACHE");
    int gen_rc = 0;
    if (R->rank == 0) {
        djct_gen_options go = DJCT_GEN_OPTIONS_INIT;
        go.events = R->c.gen_events;
        go.seed = 1;
        go.files = 4;
        int generated = 0;
        double g0 = now_s();
        printf("preparing the embedded dataset (%" PRId64 " synthetic point-cloud events) in %s\n", R->c.gen_events, dir);
        fflush(stdout);
        gen_rc = djct_gen_cached(dir, &go, &generated);
        if (gen_rc == 0 && generated)
            printf("generated in %.1f s (cached for later runs)\n", now_s() - g0);
        else if (gen_rc == 0)
            printf("using the cached copy\n");
        else
            fprintf(stderr, PROG ": rank 0: embedded dataset: %s\n", djct_last_error());
    }
    djct_comm_buffer gb = {&gen_rc, 1, DJCT_DTYPE_INT32, -1};
    if (djct_comm_broadcast(R->comm, &gb, 1, 0) || gen_rc)
        FAIL(R, "the embedded dataset could not be prepared in '%s'; set DJCT_CACHE to a writable place", dir);
    snprintf(R->train_spec, sizeof(R->train_spec), "%s/train", dir);
    if (!R->c.val_data)
        snprintf(R->val_spec, sizeof(R->val_spec), "%s/val", dir);
}

static int threads_for_rank(const djct_comm *comm);

/* --decode-threads by default: the cores the rank has beyond its compute threads, at least 1 */
static void resolve_decode_threads(run *R)
{
    if (R->c.decode_threads >= 0)
        return;
    int avail = threads_for_rank(R->comm), compute = R->c.threads > 0 ? R->c.threads : avail;
    R->c.decode_threads = avail - compute > 1 ? avail - compute : 1;
}

static void open_data(run *R)
{
    resolve_decode_threads(R);
    const cfg *c = &R->c;
    if (!c->data)
        prepare_embedded_data(R);
    else
        snprintf(R->train_spec, sizeof(R->train_spec), "%s", c->data);
    if (c->val_data)
        snprintf(R->val_spec, sizeof(R->val_spec), "%s", c->val_data);

    djct_dataset_options dso = DJCT_DATASET_OPTIONS_INIT;
    dso.batch_elements = c->batch_elements;
    dso.batch_events = c->batch_events;
    dso.squared_limit = c->squared_limit;
    dso.strict = c->strict;
    dso.seed = (uint64_t)c->seed;
    dso.shuffle = c->shuffle;
    dso.rank = R->rank;
    dso.world_size = R->size;
    dso.prefetch_depth = c->prefetch;
    dso.prefault_bytes = (size_t)c->prefault_mb << 20;
    dso.h5_map = c->h5_map;
    dso.decode_threads = c->decode_threads;
    if (djct_dataset_open(&R->train_ds, R->train_spec, &dso))
        FAIL(R, "--data '%s': %s", R->train_spec, djct_last_error());
    /* every rank read the same metadata: an empty set is seen alike */
    if (djct_dataset_n_events(R->train_ds) == 0)
        fail_alike(R, "--data '%s': no events in its %zu file%s; nothing to train on", R->train_spec,
                   djct_dataset_n_files(R->train_ds), djct_dataset_n_files(R->train_ds) == 1 ? "" : "s");
    if (R->val_spec[0]) {
        djct_dataset_options vo = dso;
        vo.shuffle = DJCT_SHUFFLE_NONE;
        if (djct_dataset_open(&R->val_ds, R->val_spec, &vo))
            FAIL(R, "--val-data '%s': %s", R->val_spec, djct_last_error());
        if (djct_dataset_n_events(R->val_ds) == 0)
            fail_alike(R, "--val-data '%s': no events in its %zu file%s; nothing to validate on (leave it out)",
                       R->val_spec, djct_dataset_n_files(R->val_ds), djct_dataset_n_files(R->val_ds) == 1 ? "" : "s");
    }
    R->steps_per_epoch = djct_dataset_steps(R->train_ds);
}

/* ---- step 5: the model; inputs per element from the first feature array ---------------------- */
static int threads_for_rank(const djct_comm *comm)
{
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int avail = (int)online;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        avail = CPU_COUNT(&set);
    /* bound to a subset: that subset is this rank's; otherwise share the node's cores */
    int per = avail < online ? avail : avail / djct_comm_local_size(comm);
    return per < 1 ? 1 : per;
}

static void build_model(run *R)
{
    const cfg *c = &R->c;
    R->threads = c->threads > 0 ? c->threads : threads_for_rank(R->comm);
    int jit = c->jit_optimize == JIT_AUTO ? R->device == DJCT_DEVICE_CUDA : c->jit_optimize == JIT_ON;
    if (djct_torch_set_num_threads(R->threads) || djct_torch_seed((uint64_t)c->seed) || djct_torch_set_jit_optimize(jit))
        FAIL(R, "%s", djct_last_error());
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.device_type = R->device;
    mo.device_index = djct_comm_device(R->comm) < 0 ? 0 : djct_comm_device(R->comm);
    const djct_file_meta *fm = djct_dataset_file(R->train_ds, 0);
    if (fm && fm->layout.n_features > 0)
        mo.n_inputs = djct_array_inner_size(&fm->layout.features[0]);
    mo.hidden = c->hidden;
    mo.n_layers = c->layers;
    mo.n_classes = c->classes;
    if (!c->data && c->classes == 0)
        mo.n_classes = 3; /* the embedded showers: narrow, medium, wide */
    int builtin = !strcmp(c->model, "pointcloud") || !strcmp(c->model, "mlp");
    if (builtin ? djct_model_builtin(&R->model, c->model, &mo) : djct_model_load(&R->model, c->model, &mo))
        FAIL(R, "--model '%s': %s", c->model, djct_last_error());
    if (djct_model_switch_all_logging(R->model, c->model_logging))
        FAIL(R, "--model-logging: %s", djct_last_error());
    if (c->logging && djct_model_switch_list(R->model, DJCT_SWITCH_LOGGING, c->logging))
        FAIL(R, "--logging: %s", djct_last_error());
    if (c->loss && djct_model_switch_list(R->model, DJCT_SWITCH_LOSS, c->loss))
        FAIL(R, "--loss: %s", djct_last_error());
}

/* ---- step 6: the optimizer -------------------------------------------------------------------- */
static int64_t planned_steps(const run *R)
{
    return R->c.max_steps > 0 ? R->c.max_steps : R->steps_per_epoch * R->c.epochs;
}

static void create_optimizer(run *R)
{
    const cfg *c = &R->c;
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.kind = c->optimizer;
    oo.lr = c->lr;
    oo.momentum = c->momentum;
    oo.weight_decay = c->weight_decay;
    oo.schedule = c->schedule;
    oo.warmup_steps = c->warmup_steps;
    oo.step_size = c->step_size;
    oo.gamma = c->gamma;
    oo.min_lr = c->min_lr;
    oo.total_steps = planned_steps(R);
    if (djct_optimizer_create(&R->opt, R->model, &oo))
        FAIL(R, "optimizer: %s", djct_last_error());
}

/* ---- step 7: the logging singleton; journal in <run dir>/wandb/<run id>/ ----------------------- */
/* every resolved option as a config entry of the run (rank 0) */
static void log_config(const run *R)
{
    char text[16384] = "";
    FILE *f = fmemopen(text, sizeof(text) - 1, "w");
    if (f) {
        djct_opts_print(T, NT, &R->c, f);
        fclose(f);
    }
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strstr(line, " = ");
        if (eq) {
            *eq = '\0';
            djct_log_config_set(line, eq + 3);
        }
    }
    char buf[64];
    snprintf(buf, sizeof(buf), "%d", R->size);
    djct_log_config_set("ranks", buf);
    snprintf(buf, sizeof(buf), "%d", R->threads);
    djct_log_config_set("threads_per_rank", buf);
    djct_log_config_set("device_used", R->device == DJCT_DEVICE_CUDA ? "cuda" : "cpu");
    djct_log_config_set("blas", djct_blas_describe());
}

static void start_logging(run *R)
{
    const cfg *c = &R->c;
    char log_root[4200];
    snprintf(log_root, sizeof(log_root), "%s/wandb", R->run_dir);
    djct_log_options lo = DJCT_LOG_OPTIONS_INIT;
    lo.project = c->project;
    lo.entity = c->entity;
    lo.run_name = c->run_name;
    lo.run_id = R->run_id;
    lo.group = c->group;
    lo.job_type = c->job_type;
    lo.tags = c->tags;
    lo.notes = c->notes;
    lo.mode = c->wandb_mode;
    lo.dir = log_root;
    lo.csv = c->csv;
    lo.no_fsync = !c->fsync;
    lo.finish_timeout_s = c->upload_timeout;
    lo.comm = R->comm; /* the logging collectives are watched with the trainer's */
    if (djct_log_init(&lo))
        FAIL(R, "logging: %s", djct_last_error());
    if (R->rank == 0) {
        const char *w = djct_log_warnings();
        if (w && *w)
            fprintf(stderr, PROG ": warning: %s\n", w);
        log_config(R);
    }
}

/* ---- step 8: the trainer, with rank 0's progress printer as its step callback ----------------- */
/* DJCT_TEST_HOLD_AT_STEP=N: after global step N the ranks wait (up to 5 minutes) until one of them
 * has received a signal, so that a test can signal a training job without racing its end. The
 * ranks poll together (a one-value sum every 10 ms), so all leave at the same poll. */
static void hold_for_signal(run *R, int64_t global_step)
{
    if (global_step != R->hold_at_step)
        return;
    if (R->rank == 0) {
        printf("holding after step %" PRId64 " until a signal arrives (DJCT_TEST_HOLD_AT_STEP)\n", global_step);
        fflush(stdout);
    }
    float any = 0;
    djct_comm_buffer b = {&any, 1, DJCT_DTYPE_FLOAT32, -1};
    djct_comm_plan *p = NULL;
    if (djct_comm_plan_create(&p, R->comm, &b, 1, NULL))
        FAIL(R, "DJCT_TEST_HOLD_AT_STEP: %s", djct_last_error());
    struct timespec tick = {0, 10000000};
    for (int i = 0; i < 30000; i++) {
        any = djct_signals_pending() != DJCT_SIGNAL_NONE;
        if (djct_comm_plan_reduce(p, DJCT_COMM_SUM, 0))
            FAIL(R, "DJCT_TEST_HOLD_AT_STEP: %s", djct_last_error());
        if (any > 0)
            break;
        nanosleep(&tick, NULL);
    }
    djct_comm_plan_free(p);
}

static void inject_fault(const run *R, const djct_step_report *r)
{
    if (R->fault_kind == FAULT_NONE || R->rank != R->fault_rank || r->global_step != R->fault_step)
        return;
    fprintf(stderr, PROG ": rank %d: DJCT_TEST_FAULT: %s after global step %" PRId64 " (epoch %" PRId64 " step %" PRId64 ")\n",
            R->rank, R->fault_kind == FAULT_STOP ? "stopping" : R->fault_kind == FAULT_KILL ? "killing myself" : "exit(0)",
            r->global_step, r->epoch, r->step);
    fflush(stderr);
    if (R->fault_kind == FAULT_STOP)
        raise(SIGSTOP);
    else if (R->fault_kind == FAULT_KILL)
        raise(SIGKILL);
    else
        exit(0);
}

static int on_train_step(void *user, const djct_step_report *r)
{
    run *R = user;
    char line[512];
    double now = now_s();
    steady_step(&R->steady, r, now);
    if (r->warning && R->rank == 0) { /* every rank has it: rank 0 says it */
        char end[8];
        if (djct_progress_end(R->progress, end, sizeof(end)))
            fputs(end, stderr);
        fprintf(stderr, PROG ": warning: %s\n", r->warning);
        fflush(stderr);
    }
    if (djct_progress_step(R->progress, r, now, line, sizeof(line))) {
        FILE *f = djct_progress_mode_of(R->progress) == DJCT_PROGRESS_BAR ? stderr : stdout;
        fputs(line, f);
        fflush(f);
    }
    hold_for_signal(R, r->global_step);
    inject_fault(R, r);
    return 0;
}

static void create_trainer(run *R)
{
    const cfg *c = &R->c;
    djct_loader_from_dataset(&R->train_ld, R->train_ds);
    if (R->val_ds)
        djct_loader_from_dataset(&R->val_ld, R->val_ds);
    djct_progress_options po = DJCT_PROGRESS_OPTIONS_INIT;
    po.mode = R->rank == 0 ? c->progress : DJCT_PROGRESS_NONE; /* rank 0 speaks */
    po.every_s = c->print_every;
    if (djct_progress_create(&R->progress, &po))
        FAIL(R, "--progress: %s", djct_last_error());
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    to.average = c->average;
    to.weighting = c->weighting;
    to.overlap = c->overlap;
    to.bucket_bytes = (size_t)(c->bucket_mb * 1048576.0);
    to.nonfinite = c->nonfinite;
    to.epochs = c->epochs;
    to.max_steps = c->max_steps;
    to.run_dir = R->run_dir;
    to.checkpoint_every_steps = c->ckpt_steps;
    to.checkpoint_every_minutes = c->ckpt_minutes;
    to.keep_checkpoints = c->keep_ckpt;
    to.log_every = c->log_every;
    to.validate = c->validate;
    to.train_callback = on_train_step;
    to.callback_user = R;
    to.seed = (uint64_t)c->seed;
    djct_train_controls tc = DJCT_TRAIN_CONTROLS_INIT;
    tc.clip_norm = c->clip_norm;
    tc.accumulate = c->accumulate;
    tc.precision = c->precision;
    tc.monitor = c->monitor;
    tc.monitor_mode = c->monitor_mode;
    tc.min_delta = c->min_delta;
    tc.keep_best = c->keep_best;
    tc.patience = c->patience;
    tc.plateau_patience = c->plateau_patience;
    tc.plateau_factor = c->plateau_factor;
    tc.plateau_min_lr = c->plateau_min_lr;
    tc.freeze = c->freeze;
    to.controls = &tc;
    if (djct_trainer_create(&R->tr, R->model, R->opt, R->comm, &R->train_ld, R->val_ds ? &R->val_ld : NULL, &to))
        FAIL(R, "%s", djct_last_error());
}

/* ---- step 9: the banner and the resolved configuration (rank 0) ------------------------------- */
static void print_banner(const run *R)
{
    if (R->rank != 0)
        return;
    printf(PROG " %s: %d rank%s x %d thread%s, model %s, run %s in %s\n", djct_version(), R->size,
           R->size == 1 ? "" : "s", R->threads, R->threads == 1 ? "" : "s", R->c.model, R->run_id, R->run_dir);
    printf("BLAS: %s\n", djct_blas_describe());
    printf("data: %s (%zu files, %" PRId64 " events, %" PRId64 " steps/epoch)%s%s%s%s\n", R->train_spec,
           djct_dataset_n_files(R->train_ds), djct_dataset_n_events(R->train_ds), R->steps_per_epoch,
           R->val_ds ? ", validation: " : "", R->val_ds ? R->val_spec : "", R->c.h5_map ? ", HDF5 datasets as mapped by " : "",
           R->c.h5_map ? R->c.h5_map : "");
    char sw[2048];
    if (djct_model_describe_switches(R->model, sw, sizeof(sw)) == 0)
        printf("modules: %s\n", sw);
    printf("---- resolved configuration ----\n");
    djct_opts_print(T, NT, &R->c, stdout);
    printf("--------------------------------\n");
    fflush(stdout);
}

/* ---- step 10: signals, resume, train ------------------------------------------------------------ */
/* every rank alike (the trainer broadcast the count): stop with exit 1, nothing overwritten */
static void stop_all_damaged(run *R, int n_damaged)
{
    if (R->rank == 0) {
        fprintf(stderr, PROG ": rank 0: --resume: no usable checkpoint in %s/checkpoints: %d damaged one%s set aside "
                "as step-N.damaged, nothing overwritten; restore a good copy as step-N, or start again from step "
                "0 with --resume --fresh-if-damaged\n", R->run_dir, n_damaged, n_damaged == 1 ? " is" : "s are");
        fflush(stderr);
    }
    finish_failed(R);
}

static void resume(run *R)
{
    if (!R->c.resume)
        return;
    int resumed = 0, n_damaged = 0;
    int64_t rstep = -1;
    if (djct_trainer_resume(R->tr, &resumed, &rstep))
        FAIL(R, "--resume: %s", djct_last_error());
    const char *damaged = djct_trainer_damaged_checkpoints(R->tr, &n_damaged);
    if (R->rank == 0) { /* each damaged checkpoint, why, and where it went */
        char *copy = strdup(damaged);
        for (char *save = NULL, *l = copy ? strtok_r(copy, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
            fprintf(stderr, PROG ": rank 0: warning: --resume: damaged %s\n", l);
        free(copy);
        fflush(stderr);
    }
    if (!resumed && n_damaged > 0 && !R->c.fresh_if_damaged)
        stop_all_damaged(R, n_damaged);
    /* from step 0: the journal's rows of earlier jobs are steps this job logs again (resuming
     * from a checkpoint, the trainer took the journal back to it) */
    if (!resumed && djct_log_rewind(-1))
        FAIL(R, "--resume: %s", djct_last_error());
    if (R->rank == 0) {
        if (resumed)
            printf("resumed from the checkpoint of step %" PRId64 "\n", rstep);
        else if (n_damaged > 0)
            printf("--resume --fresh-if-damaged: every checkpoint is damaged (set aside), starting fresh\n");
        else
            printf("--resume: no complete checkpoint in the run directory, starting fresh\n");
        djct_log_stats ls;
        if (djct_log_get_stats(&ls) == 0 && ls.rows_rewound > 0)
            printf("journal: the %" PRId64 " row%s logged after that point moved to %s/history.rewound.jsonl\n",
                   ls.rows_rewound, ls.rows_rewound == 1 ? "" : "s", djct_log_run_dir());
        fflush(stdout);
    }
}

static void train(run *R)
{
    resume(R);
    int64_t epoch0 = 0, step0 = 0;
    djct_trainer_position(R->tr, NULL, NULL, &epoch0, &step0);
    int64_t left = planned_steps(R) - (epoch0 * R->steps_per_epoch + step0);
    double t_fit = now_s();
    djct_progress_start(R->progress, t_fit, left);
    steady_start(&R->steady, left);
    int frc = djct_trainer_fit(R->tr);
    R->wall = now_s() - t_fit;
    R->stop_reason = djct_trainer_stop_reason(R->tr);
    char end[8];
    if (djct_progress_end(R->progress, end, sizeof(end)))
        fputs(end, stderr);
    if (frc) {
        const char *msg = djct_last_error();
        if (djct_trainer_error_is_shared(R->tr))
            fail_alike(R, "%s", msg);
        FAIL(R, "%s%s", msg,
             strstr(msg, "Target") && strstr(msg, "out of bounds")
                 ? "; a label is >= the model's number of classes: set --classes"
                 : "");
    }
}

/* ---- step 11: the report: consistency, final model, summary.json, the closing lines ------------ */
/* replicas must agree after training; a diagnostic for multi-node runs (tests/test_multinode.sh) */
static void check_consistency(run *R)
{
    float *params = NULL;
    size_t nparams = 0;
    int ndiff = 0;
    djct_comm_buffer pb = {NULL, 0, DJCT_DTYPE_FLOAT32, -1};
    if (djct_model_params(R->model, &params, &nparams) == 0) {
        pb.ptr = params;
        pb.count = nparams;
        pb.device = djct_model_device_index(R->model);
    }
    if (!pb.ptr || djct_comm_check_consistent(R->comm, &pb, 1, &ndiff))
        FAIL(R, "--check-consistency: %s", djct_last_error());
    if (R->rank == 0)
        printf("consistency: the %zu parameters are identical on all %d ranks\n", nparams, R->size);
}

static const char *stop_name(int reason)
{
    return reason == DJCT_STOP_DONE        ? "done"
           : reason == DJCT_STOP_EARLY     ? "early-stopped"
           : reason == DJCT_STOP_PREEMPTED ? "preempted"
                                           : "interrupted";
}

/* a number rounded to `digits` significant digits, as the summary has always shown them */
static void add_num(cJSON *o, const char *key, double v, int digits)
{
    char b[64];
    snprintf(b, sizeof(b), "%.*g", digits, v);
    cJSON_AddNumberToObject(o, key, isfinite(v) ? strtod(b, NULL) : v); /* cJSON writes NaN as null */
}

/* `{"key": value, ...}` on one line: cJSON escapes and formats each value (the keys are this
 * file's own names); the layout stays the summary's (greppable `"stop": "done"`) */
static char *one_line_json(const cJSON *o)
{
    size_t cap = 256, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[len++] = '{';
    for (const cJSON *it = o->child; it; it = it->next) {
        char *v = cJSON_PrintUnformatted(it);
        size_t need = len + strlen(it->string) + (v ? strlen(v) : 0) + 16;
        char *t = v && need > cap ? realloc(s, cap = 2 * need) : s;
        if (!v || !t) {
            free(v);
            free(s);
            return NULL;
        }
        s = t;
        len += (size_t)sprintf(s + len, "%s\"%s\": %s", it == o->child ? "" : ", ", it->string, v);
        free(v);
    }
    strcpy(s + len, "}\n");
    return s;
}

/* the run's upload as summary.json records it (rank 0, after djct_log_finish) */
static cJSON *upload_json(const djct_log_upload *u)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "mode", u->mode == DJCT_LOG_MODE_ONLINE ? "online" : "offline");
    cJSON_AddBoolToObject(o, "complete", u->complete);
    cJSON_AddNumberToObject(o, "rows", (double)u->rows);
    cJSON_AddNumberToObject(o, "rows_uploaded", (double)u->rows_acked);
    cJSON_AddNumberToObject(o, "rows_pending", (double)u->rows_pending);
    cJSON_AddBoolToObject(o, "config_pending", u->config_pending);
    cJSON_AddBoolToObject(o, "summary_pending", u->summary_pending);
    cJSON_AddBoolToObject(o, "complete_pending", u->complete_pending);
    if (!u->complete)
        cJSON_AddStringToObject(o, "sync_command", u->sync_command);
    if (u->error[0])
        cJSON_AddStringToObject(o, "error", u->error);
    return o;
}

/* summary.json: written when training ends, and again with "upload" once the upload is settled */
static void write_summary(const run *R, const djct_log_upload *up)
{
    int64_t gstep = 0, skipped = 0, epochs_done = 0;
    djct_trainer_position(R->tr, &gstep, &skipped, &epochs_done, NULL);
    double ts = 0, td = 0, tc = 0, tm = 0, evs = 0, els = 0, loss = NAN, vloss = NAN;
    djct_trainer_epoch_stats(R->tr, &ts, &td, &tc, &tm, &evs, &els, &loss);
    djct_trainer_last_val_loss(R->tr, &vloss);
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o) {
        cJSON_AddNumberToObject(o, "ranks", R->size);
        cJSON_AddNumberToObject(o, "threads_per_rank", R->threads);
        cJSON_AddNumberToObject(o, "steps", (double)gstep);
        cJSON_AddNumberToObject(o, "skipped_steps", (double)skipped);
        cJSON_AddNumberToObject(o, "epochs_done", (double)epochs_done);
        add_num(o, "events_per_s", evs, 6);
        add_num(o, "elements_per_s", els, 6);
        add_num(o, "step_time_s", ts, 6);
        add_num(o, "t_data_s", td, 6);
        add_num(o, "t_compute_s", tc, 6);
        add_num(o, "t_comm_s", tm, 6);
        add_num(o, "final_loss", loss, 8); /* null: no step taken (NaN) */
        add_num(o, "val_loss", vloss, 8);  /* null: no validation ran */
        add_num(o, "wall_s", R->wall, 4);
        const steady_rate *st = &R->steady;
        double sw = st->steps ? st->t1 - st->t0 : NAN;
        cJSON_AddNumberToObject(o, "steady_steps", (double)st->steps);
        add_num(o, "steady_events_per_s", sw > 0 ? st->events / sw : NAN, 6);
        add_num(o, "steady_elements_per_s", sw > 0 ? st->elements / sw : NAN, 6);
        add_num(o, "steady_wall_per_step_s", sw > 0 ? sw / (double)st->steps : NAN, 6);
        cJSON_AddStringToObject(o, "stop", stop_name(R->stop_reason));
        cJSON_AddStringToObject(o, "run_id", R->run_id);
        if (up && up->mode != DJCT_LOG_MODE_DISABLED)
            cJSON_AddItemToObject(o, "upload", upload_json(up));
        text = one_line_json(o);
        cJSON_Delete(o);
    }
    char p[4200];
    snprintf(p, sizeof(p), "%s/summary.json", R->run_dir);
    if (!text || djct_write_file_atomic(p, text, strlen(text)))
        fprintf(stderr, PROG ": rank 0: writing %s: %s\n", p, text ? djct_last_error() : "out of memory");
    free(text);
}

static void report(run *R)
{
    if (R->c.check_consistency)
        check_consistency(R);
    if (R->rank != 0)
        return;
    int64_t gstep = 0, ep = 0;
    djct_trainer_position(R->tr, &gstep, NULL, &ep, NULL);
    char p[4200];
    int done = R->stop_reason == DJCT_STOP_DONE || R->stop_reason == DJCT_STOP_EARLY;
    if (done) {
        snprintf(p, sizeof(p), "%s/model.pt", R->run_dir);
        if (djct_model_save(R->model, p))
            fprintf(stderr, PROG ": rank 0: saving the final model: %s\n", djct_last_error());
    }
    write_summary(R, NULL);
    double ts = 0, td = 0, tc = 0, tm = 0, evs = 0, els = 0, loss = NAN, vloss = NAN;
    djct_trainer_epoch_stats(R->tr, &ts, &td, &tc, &tm, &evs, &els, &loss);
    djct_trainer_last_val_loss(R->tr, &vloss);
    char vl[64] = "";
    if (isfinite(vloss))
        snprintf(vl, sizeof(vl), ", val loss %.4f", vloss);
    char fl[64] = "no step taken in this run";
    if (isfinite(loss))
        snprintf(fl, sizeof(fl), "final loss %.4f", loss);
    if (R->stop_reason == DJCT_STOP_EARLY)
        printf("early stopping after %" PRId64 " epochs: %s did not improve for %d validations\n", ep, R->c.monitor,
               R->c.patience);
    if (done)
        printf("done: %" PRId64 " steps in %.1f s, %s%s, %.0f events/s, %.0f elements/s; "
               "step %.2f ms (data %.2f, compute %.2f, comm %.2f)\nrun directory: %s\n",
               gstep, R->wall, fl, vl, evs, els, 1e3 * ts, 1e3 * td, 1e3 * tc, 1e3 * tm, R->run_dir);
    else
        printf("%s at step %" PRId64 ": checkpoint written in %s/checkpoints; %s\n", stop_name(R->stop_reason), gstep,
               R->run_dir,
               R->stop_reason == DJCT_STOP_PREEMPTED ? "exit 75: requeue with --resume" : "continue with --resume");
    fflush(stdout);
}

/* ---- the end: close the journal, free everything, the exit code -------------------------------- */
/* Rank 0: what the upload left behind, where the user sees it (and summary.json records it). The
 * exit code does not change: the journal has every row, and djct_sync uploads the rest. */
static void report_upload(const run *R, int finish_rc, const char *finish_err)
{
    static djct_log_upload up; /* large: off the stack */
    djct_log_upload_status(&up);
    if (up.mode == DJCT_LOG_MODE_DISABLED)
        return;
    char what[512] = "";
    const char *part[4];
    char rows[96];
    int n = 0;
    if (up.rows_pending > 0) {
        snprintf(rows, sizeof(rows), "%" PRId64 " of %" PRId64 " history rows", up.rows_pending, up.rows);
        part[n++] = rows;
    }
    if (up.config_pending)
        part[n++] = "the config";
    if (up.summary_pending)
        part[n++] = "the summary";
    if (up.complete_pending)
        part[n++] = "`complete`";
    for (int i = 0; i < n; i++)
        snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ",
                 part[i]);
    if (up.mode == DJCT_LOG_MODE_OFFLINE) {
        printf("wandb: offline run: %s not uploaded; upload with: %s\n", n ? what : "nothing", up.sync_command);
        fflush(stdout);
    } else if (!up.complete) {
        fprintf(stderr, PROG ": rank 0: warning: wandb upload incomplete: %s %s not uploaded (%s); nothing is "
                "lost, the journal has everything\n", what, n == 1 && up.rows_pending == 0 ? "was" : "were",
                up.error[0] ? up.error : "no reason recorded");
        fprintf(stderr, PROG ": rank 0: finish the upload with: %s\n", up.sync_command);
    }
    if (finish_rc < 0 && (up.complete || up.mode == DJCT_LOG_MODE_OFFLINE)) /* the journal's own trouble */
        fprintf(stderr, PROG ": rank 0: warning: %s\n", finish_err);
    write_summary(R, &up);
}

static int finish(run *R)
{
    int exit_code = R->stop_reason == DJCT_STOP_PREEMPTED    ? DJCT_EXIT_REQUEUE
                    : R->stop_reason == DJCT_STOP_INTERRUPTED ? 130
                                                              : 0;
    if (R->stop_reason == DJCT_STOP_PREEMPTED)
        djct_log_mark_preempting();
    int frc = djct_log_finish(exit_code);
    if (R->rank == 0) {
        char err[1024];
        snprintf(err, sizeof(err), "%s", djct_last_error());
        report_upload(R, frc, err);
    }
    free_run(R);
    R->ended = 1;
    return exit_code;
}

/* Signals from the program's first instruction: the handlers only set flags, so they are safe
 * before anything else runs. Start-up takes seconds (libtorch's static initialisers before
 * main, MPI_Init, data, model), and a SIGUSR1/SIGTERM/SIGINT then, e.g. a preemption forwarded
 * by the launcher, would otherwise kill the rank without a checkpoint. Flagged, it stops the run
 * at the first step boundary like any other (checkpoint, exit 75 or 130). The executable's
 * .preinit_array runs before every shared library's initialisers. */
static void install_signals_early(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv, (void)envp;
    djct_signals_install();
}
__attribute__((section(".preinit_array"), used)) static void (*const early_signals)(int, char **, char **) =
    install_signals_early;

int main(int argc, char **argv)
{
    if (djct_signals_install()) { /* done before main; this reports a failure */
        fprintf(stderr, PROG ": %s\n", djct_last_error());
        return 1;
    }
    if (djct_opts_argv_has(argc, argv, "--version", NULL)) {
        printf(PROG " %s (%s)\n", djct_version(), djct_build_features());
        return 0;
    }
    /* SERIALIZED: on a GPU, libtorch runs backward on its own thread, and the gradient-ready hook
     * reduces buckets from there while this thread waits in backward (never at once) */
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_SERIALIZED)) {
        fprintf(stderr, PROG ": %s\n", djct_last_error());
        return 1;
    }
    static run R; /* large path buffers: off the stack */
    parse_options(&R, argc, argv);
    g_run = &R;
    atexit(report_early_exit);
    if (R.c.malloc_tune) /* before the model, data and buffers are allocated */
        djct_tune_malloc();
    setup_comm(&R);
    choose_run(&R);
    open_data(&R);
    build_model(&R);
    create_optimizer(&R);
    start_logging(&R);
    create_trainer(&R);
    print_banner(&R);
    train(&R);
    report(&R);
    return finish(&R);
}
