/* djct_train: data-parallel training over MPI ranks (one per GPU, or CPU ranks).
 * A thin app over the library: options (one table for the command line, config files and --help),
 * dataset, model, optimizer, comm, logging singleton, trainer. Without --data it trains the built-in
 * point-cloud model on a synthetic irregular dataset generated once into a cache directory.
 * Exit codes: 0 done, 1 failure, 2 usage, 75 preempted (checkpoint written: requeue with --resume),
 * 130 interrupted by SIGINT (checkpoint written).
 * This file is main, its steps in order, and the failure ends; the steps with files of their own:
 * options (apps/train_options.c), run id and directory (train_run_dir.c), data (train_data.c), the
 * step callback (train_progress.c, train_testhooks.c) and the report (train_report.c). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "train_int.h"

#define T train_opts
#define NT train_n_opts

/* ---- failures --------------------------------------------------------------------------------- */
void fail(const run *R, const char *fmt, ...)
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

void fail_alike(run *R, const char *fmt, ...)
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

/* ---- step 1, options: apps/train_options.c ---------------------------------------------------- */
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

/* ---- steps 3 and 4, run directory and data: apps/train_run_dir.c, train_data.c ---------------- */
/* ---- step 5: the model; inputs per element from the first feature array ---------------------- */
static void build_model(run *R)
{
    const cfg *c = &R->c;
    R->threads = app_threads(c->threads, R->comm);
    if (app_torch_setup(R->threads, c->jit_optimize, R->device) || djct_torch_seed((uint64_t)c->seed))
        FAIL(R, "%s", djct_last_error());
    djct_model_options mo = app_model_options(R->comm, R->device);
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
    const char *opt = NULL;
    if (app_switch_lists(R->model, c->logging, c->loss, &opt))
        FAIL(R, "--%s: %s", opt, djct_last_error());
}

/* ---- step 6: the optimizer -------------------------------------------------------------------- */
int64_t planned_steps(const run *R)
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
           R->val_ds ? ", validation: " : "", R->val_ds ? R->val_spec : "", R->c.data_opts.h5_map ? ", HDF5 datasets as mapped by " : "",
           R->c.data_opts.h5_map ? R->c.data_opts.h5_map : "");
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
    double t_fit = app_now_s();
    djct_progress_start(R->progress, t_fit, left);
    steady_start(&R->steady, left);
    int frc = djct_trainer_fit(R->tr);
    R->wall = app_now_s() - t_fit;
    R->stop_reason = djct_trainer_stop_reason(R->tr);
    app_progress_end(R->progress);
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

/* ---- step 11, the report: apps/train_report.c ------------------------------------------------- */
/* ---- the end: close the journal, free everything, the exit code -------------------------------- */
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
