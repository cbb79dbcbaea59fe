/* djct_train's options: one table for the command line, config files and --help, and the checks
 * that end a bad invocation with exit 2 before any work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train_int.h"

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

#define O(f) offsetof(cfg, f)
const djct_opt train_opts[] = {
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
    APP_OPT_H5_MAP(O(data_opts.h5_map)),
    {"batch-elements", 'b', DJCT_OPT_INT64, O(data_opts.batch_elements), "6400", NULL, 0, 1e15, "N",
     "ragged data: elements per rank batch (0: count events)", NULL},
    {"batch-events", 0, DJCT_OPT_INT64, O(data_opts.batch_events), "32", NULL, 1, 1e12, "N",
     "events per rank batch for non-ragged data", NULL},
    APP_OPT_SQUARED_LIMIT(O(data_opts.squared_limit)),
    {"strict", 0, DJCT_OPT_FLAG, O(strict), "1", NULL, 0, 0, NULL,
     "drop events larger than the limit (counted); off: serve them alone", NULL},
    {"shuffle", 0, DJCT_OPT_CHOICE, O(shuffle), "global", SHUFFLE, 0, 0, NULL, "per-epoch shuffling", NULL},
    APP_OPT_PREFETCH(O(data_opts.prefetch)),
    APP_OPT_DECODE_THREADS(O(data_opts.decode_threads)),
    {"prefault-mb", 0, DJCT_OPT_INT64, O(data_opts.prefault_mb), "2048", NULL, 0, 1e9, "MB",
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
    {"jit-optimize", 0, DJCT_OPT_CHOICE, O(jit_optimize), "auto", APP_JIT, 0, 0, NULL,
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
    {"progress", 0, DJCT_OPT_CHOICE, O(progress), "auto", APP_PROGRESS, 0, 0, NULL,
     "rank 0 progress: a bar on a terminal, plain lines otherwise", NULL},
    APP_OPT_PRINT_EVERY(O(print_every)),
};
#define T train_opts
#define NT (sizeof(train_opts) / sizeof(train_opts[0]))
const size_t train_n_opts = NT;

#define USAGE                                                                                              \
    "usage: mpirun -np N djct_train [options]   (or srun; no options: the embedded point-cloud default)\n" \
    "exit codes: 0 done, 1 failure, 2 usage, 75 preempted (checkpoint written; requeue with --resume), "  \
    "130 interrupted\n-h,--help: this text; --version: version and build features"

static _Noreturn void die_usage(run *R, const char *msg)
{
    app_usage_exit(PROG, R->rank, T, NT, &R->c, msg);
}

void parse_options(run *R, int argc, char **argv)
{
    R->rank = app_mpi_options(PROG, T, NT, USAGE, &R->c, argc, argv);
    cfg *c = &R->c;
    if (strcmp(c->model, "pointcloud") && strcmp(c->model, "mlp")) {
        struct stat st;
        if (stat(c->model, &st)) {
            char m[1200];
            snprintf(m, sizeof(m), "--model '%s' is neither a built-in model (pointcloud, mlp) nor a readable file", c->model);
            die_usage(R, m);
        }
    }
    const char *bad_switch = app_switch_lists_check(c->logging, c->loss);
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
    if (test_hooks_read(R))
        die_usage(R, "DJCT_TEST_FAULT: want RANK:STEP:stop|kill|exit (tests only)");
}
