/* djct_train: data-parallel training over MPI ranks (one per GPU, or CPU ranks).
 * A thin app over the library: options (one table for the command line, config files and --help),
 * dataset, model, optimizer, comm, logging singleton, trainer. Without --data it trains the built-in
 * point-cloud model on a synthetic irregular dataset generated once into a cache directory.
 * Exit codes: 0 done, 1 failure, 2 usage, 75 preempted (checkpoint written: requeue with --resume),
 * 130 interrupted by SIGINT (checkpoint written). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djct/djct.h"

typedef struct {
    char *config;
    /* data */
    char *data, *val_data;
    int64_t batch_elements, batch_events;
    int squared_limit, strict;
    char *shuffle;
    int prefetch;
    int64_t prefault_mb;
    int64_t gen_events;
    /* model */
    char *model;
    int64_t hidden, classes;
    int layers;
    /* optimizer */
    char *optimizer, *schedule;
    double lr, momentum, weight_decay, gamma, min_lr;
    int64_t warmup_steps, step_size;
    /* run */
    int64_t epochs, max_steps, seed;
    char *run_dir, *run_id;
    int resume;
    int64_t ckpt_steps;
    double ckpt_minutes;
    int keep_ckpt;
    char *nonfinite;
    /* distributed */
    int average, overlap, threads, check_consistency;
    char *weighting, *device, *backend, *jit_optimize;
    double bucket_mb, watchdog;
    /* logging */
    char *wandb_mode, *project, *entity, *run_name, *group, *tags, *notes;
    int log_every, csv, fsync, validate, model_logging, malloc_tune;
    char *progress;
    double print_every;
} cfg;

#define O(f) offsetof(cfg, f)
static const djct_opt T[] = {
    {"config", 'c', DJCT_OPT_STRING, O(config), NULL, NULL, 0, 0, "FILE",
     "INI file of these options (keys = long names); the command line wins", "General"},
    {"epochs", 'e', DJCT_OPT_INT64, O(epochs), "3", NULL, 1, 1e9, "N", "epochs to train", NULL},
    {"max-steps", 0, DJCT_OPT_INT64, O(max_steps), "0", NULL, 0, 1e15, "N", "stop after N optimizer steps (0: no limit)", NULL},
    {"seed", 0, DJCT_OPT_INT64, O(seed), "1", NULL, 0, 9e15, "N", "seed of parameters and shuffling", NULL},
    {"run-dir", 0, DJCT_OPT_STRING, O(run_dir), NULL, NULL, 0, 0, "DIR",
     "run directory: checkpoints, journal, model, summary (default runs/<run-id>)", NULL},
    {"run-id", 0, DJCT_OPT_STRING, O(run_id), NULL, NULL, 0, 0, "ID",
     "run id (default $WANDB_RUN_ID, the run dir's, or random); same id = same wandb run", NULL},
    {"resume", 0, DJCT_OPT_FLAG, O(resume), "0", NULL, 0, 0, NULL,
     "continue from the newest complete checkpoint of the run dir (none: start fresh)", NULL},

    {"data", 'd', DJCT_OPT_STRING, O(data), NULL, NULL, 0, 0, "SPEC",
     "training files: paths, dir, glob or list file, ','-separated (default: the embedded synthetic set)", "Data"},
    {"val-data", 0, DJCT_OPT_STRING, O(val_data), NULL, NULL, 0, 0, "SPEC", "validation files (default: none, or the embedded set's)", NULL},
    {"batch-elements", 'b', DJCT_OPT_INT64, O(batch_elements), "6400", NULL, 0, 1e15, "N",
     "ragged data: elements per rank batch (0: count events)", NULL},
    {"batch-events", 0, DJCT_OPT_INT64, O(batch_events), "32", NULL, 1, 1e12, "N",
     "events per rank batch for non-ragged data", NULL},
    {"squared-limit", 0, DJCT_OPT_FLAG, O(squared_limit), "0", NULL, 0, 0, NULL,
     "compare (sum of elements)^2 with --batch-elements (djcdata)", NULL},
    {"strict", 0, DJCT_OPT_FLAG, O(strict), "1", NULL, 0, 0, NULL,
     "drop events larger than the limit (counted); off: serve them alone", NULL},
    {"shuffle", 0, DJCT_OPT_CHOICE, O(shuffle), "global", "none|files|global", 0, 0, NULL, "per-epoch shuffling", NULL},
    {"prefetch", 0, DJCT_OPT_INT, O(prefetch), "2", NULL, 0, 64, "N", "batches decoded ahead (0: none)", NULL},
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

    {"optimizer", 0, DJCT_OPT_CHOICE, O(optimizer), "adam", "sgd|adam|adamw", 0, 0, NULL, "optimizer", "Optimizer"},
    {"lr", 0, DJCT_OPT_DOUBLE, O(lr), "0.001", NULL, 1e-12, 100, "X", "learning rate", NULL},
    {"momentum", 0, DJCT_OPT_DOUBLE, O(momentum), "0.9", NULL, 0, 1, "X", "SGD momentum", NULL},
    {"weight-decay", 0, DJCT_OPT_DOUBLE, O(weight_decay), "0", NULL, 0, 10, "X", "weight decay (decoupled for adamw)", NULL},
    {"schedule", 0, DJCT_OPT_CHOICE, O(schedule), "constant", "constant|step|cosine", 0, 0, NULL, "learning-rate schedule", NULL},
    {"warmup-steps", 0, DJCT_OPT_INT64, O(warmup_steps), "0", NULL, 0, 1e12, "N", "linear warm-up steps", NULL},
    {"step-size", 0, DJCT_OPT_INT64, O(step_size), "1000", NULL, 1, 1e12, "N", "step schedule: steps per decay", NULL},
    {"gamma", 0, DJCT_OPT_DOUBLE, O(gamma), "0.1", NULL, 0, 1, "X", "step schedule: decay factor", NULL},
    {"min-lr", 0, DJCT_OPT_DOUBLE, O(min_lr), "0", NULL, 0, 100, "X", "cosine schedule: final learning rate", NULL},

    {"average", 0, DJCT_OPT_FLAG, O(average), "1", NULL, 0, 0, NULL,
     "average gradients over ranks (off: no communication, a benchmark baseline)", "Distributed"},
    {"weighting", 0, DJCT_OPT_CHOICE, O(weighting), "events", "events|elements|none", 0, 0, NULL,
     "weight of each rank's gradient in the average", NULL},
    {"overlap", 0, DJCT_OPT_FLAG, O(overlap), "1", NULL, 0, 0, NULL, "reduce gradient buckets during backward", NULL},
    {"bucket-mb", 0, DJCT_OPT_DOUBLE, O(bucket_mb), "0", NULL, 0, 1024, "MB", "gradient bucket size (0: default)", NULL},
    {"threads", 0, DJCT_OPT_INT, O(threads), "0", NULL, 0, 1024, "N", "threads per rank, libtorch's intra-op pool and OpenBLAS's (0: cores available to the rank)", NULL},
    {"device", 0, DJCT_OPT_CHOICE, O(device), "cpu", "cpu|cuda", 0, 0, NULL, "where the model runs", NULL},
    {"jit-optimize", 0, DJCT_OPT_CHOICE, O(jit_optimize), "auto", "auto|on|off", 0, 0, NULL,
     "TorchScript graph-executor optimisation (auto: off on cpu, where it only adds overhead; on with cuda)", NULL},
    {"backend", 0, DJCT_OPT_CHOICE, O(backend), "auto", "auto|mpi|nccl", 0, 0, NULL, "gradient reduction backend", NULL},
    {"watchdog-seconds", 0, DJCT_OPT_DOUBLE, O(watchdog), "600", NULL, 0, 1e6, "S",
     "fail naming the missing ranks when a collective takes longer (0: off)", NULL},
    {"check-consistency", 0, DJCT_OPT_FLAG, O(check_consistency), "0", NULL, 0, 0, NULL,
     "at the end, compare every rank's parameters with rank 0's (hash); fail naming the ranks that differ", NULL},

    {"checkpoint-every-steps", 0, DJCT_OPT_INT64, O(ckpt_steps), "0", NULL, 0, 1e15, "N",
     "checkpoint every N steps (0: off)", "Checkpoints"},
    {"checkpoint-every-minutes", 0, DJCT_OPT_DOUBLE, O(ckpt_minutes), "30", NULL, 0, 1e6, "M",
     "checkpoint every M minutes (0: off); always at the end and on preemption", NULL},
    {"keep-checkpoints", 0, DJCT_OPT_INT, O(keep_ckpt), "3", NULL, 0, 1000000, "N", "complete checkpoints kept (0: all)", NULL},
    {"nonfinite", 0, DJCT_OPT_CHOICE, O(nonfinite), "skip", "skip|stop", 0, 0, NULL,
     "a non-finite loss or gradient skips the step (counted) or stops", NULL},

    {"wandb-mode", 0, DJCT_OPT_CHOICE, O(wandb_mode), "auto", "auto|online|offline|disabled", 0, 0, NULL,
     "auto: $WANDB_MODE, else online with an API key, else offline", "Logging"},
    {"project", 0, DJCT_OPT_STRING, O(project), "djct", NULL, 0, 0, "NAME", "wandb project", NULL},
    {"entity", 0, DJCT_OPT_STRING, O(entity), NULL, NULL, 0, 0, "NAME", "wandb entity (default: the key owner's)", NULL},
    {"run-name", 0, DJCT_OPT_STRING, O(run_name), NULL, NULL, 0, 0, "NAME", "wandb display name", NULL},
    {"group", 0, DJCT_OPT_STRING, O(group), NULL, NULL, 0, 0, "NAME", "wandb run group", NULL},
    {"tags", 0, DJCT_OPT_STRING, O(tags), NULL, NULL, 0, 0, "A,B", "wandb tags", NULL},
    {"notes", 0, DJCT_OPT_STRING, O(notes), NULL, NULL, 0, 0, "TEXT", "wandb notes", NULL},
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
    {"progress", 0, DJCT_OPT_CHOICE, O(progress), "auto", "auto|bar|lines|none", 0, 0, NULL,
     "rank 0 progress: a bar on a terminal, plain lines otherwise", NULL},
    {"print-every", 0, DJCT_OPT_DOUBLE, O(print_every), "10", NULL, 0, 1e6, "S", "seconds between plain progress lines", NULL},
};
#define NT (sizeof(T) / sizeof(T[0]))

static int g_rank;
static cfg *g_cfg; /* freed on usage exits */

static void die_usage(const char *msg)
{
    if (g_rank == 0)
        fprintf(stderr, "djct_train: %s\n", msg);
    if (g_cfg)
        djct_opts_free(T, NT, g_cfg);
    djct_comm_finalize_mpi();
    exit(2);
}

/* ---- progress on rank 0 -------------------------------------------------------------------- */
typedef struct {
    int mode; /* 0 none, 1 bar, 2 lines */
    double t_start, t_last_print, every;
    int64_t done_steps, total_steps;
    int bar_open;
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void si(char *buf, size_t n, double x)
{
    if (x >= 1e6)
        snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, n, "%.1fk", x / 1e3);
    else
        snprintf(buf, n, "%.0f", x);
}

static int on_train_step(void *user, const djct_step_report *r)
{
    progress *p = user;
    p->done_steps++;
    if (p->mode == 0 || g_rank != 0)
        return 0;
    double now = now_s();
    int last = r->step + 1 == r->steps;
    if (p->mode == 2 && now - p->t_last_print < p->every && !last)
        return 0;
    p->t_last_print = now;
    double rate = p->done_steps / (now - p->t_start);
    char eta[32], ev[32], el[32];
    /* the step count is an estimate when batches are ragged (an epoch can take a step more) */
    int64_t left = p->total_steps > p->done_steps ? p->total_steps - p->done_steps : 0;
    fmt_eta(eta, sizeof(eta), (double)left / rate);
    si(ev, sizeof(ev), r->events_per_s);
    si(el, sizeof(el), r->elements_per_s);
    if (p->mode == 1) {
        int width = 24, fill = (int)((double)width * (double)(r->step + 1) / (double)(r->steps ? r->steps : 1));
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[Kepoch %" PRId64 " [%s] %" PRId64 "/%" PRId64 " loss %.4f %s ev/s %s el/s ETA %s",
                r->epoch + 1, bar, r->step + 1, r->steps, r->loss, ev, el, eta);
        p->bar_open = 1;
        if (last) {
            fprintf(stderr, "\n");
            p->bar_open = 0;
        }
    } else {
        printf("epoch %" PRId64 " step %" PRId64 "/%" PRId64 " global %" PRId64 " loss %.4f lr %.3g %s ev/s %s el/s "
               "data %.1f%% comm %.1f%% ETA %s\n",
               r->epoch + 1, r->step + 1, r->steps, r->global_step, r->loss, r->lr, ev, el,
               100.0 * r->t_data / (r->t_step > 0 ? r->t_step : 1), 100.0 * r->t_comm / (r->t_step > 0 ? r->t_step : 1),
               eta);
        fflush(stdout);
    }
    return 0;
}

/* ---- the embedded default dataset ------------------------------------------------------------ */
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

/* ---- helpers ------------------------------------------------------------------------------------ */
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

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "djct_train: rank %d: ", g_rank);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        djct_comm_abort(comm, 1, "djct_train failed; see the message above");                      \
    } while (0)

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--version")) {
            printf("djct_train %s (%s)\n", djct_version(), djct_build_features());
            return 0;
        }
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED)) {
        fprintf(stderr, "djct_train: %s\n", djct_last_error());
        return 1;
    }
    djct_comm *comm = NULL;
    {
        const char *r = getenv("OMPI_COMM_WORLD_RANK");
        g_rank = r ? atoi(r) : 0; /* only for messages before the communicator exists */
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (g_rank == 0)
                djct_opts_print_help(T, NT,
                                     "usage: mpirun -np N djct_train [options]   (or srun; no options: the embedded "
                                     "point-cloud default)\nexit codes: 0 done, 1 failure, 2 usage, 75 preempted "
                                     "(checkpoint written; requeue with --resume), 130 interrupted\n-h,--help: this text; --version: version and build features",
                                     stdout);
            djct_comm_finalize_mpi();
            return 0;
        }

    /* options: all validated before any heavy work */
    cfg c;
    memset(&c, 0, sizeof(c));
    g_cfg = &c;
    if (djct_opts_defaults(T, NT, &c) || djct_opts_parse_argv(T, NT, &c, argc, argv, NULL))
        die_usage(djct_last_error());
    if (strcmp(c.model, "pointcloud") && strcmp(c.model, "mlp")) {
        struct stat st;
        if (stat(c.model, &st)) {
            char m[1200];
            snprintf(m, sizeof(m), "--model '%s' is neither a built-in model (pointcloud, mlp) nor a readable file", c.model);
            die_usage(m);
        }
    }
    if (c.max_steps == 0 && c.epochs == 0)
        die_usage("--epochs 0 with --max-steps 0 would train nothing");
    if (c.malloc_tune) /* before the model, data and buffers are allocated */
        djct_tune_malloc();

    djct_comm_options co = DJCT_COMM_OPTIONS_INIT;
    co.device = strcmp(c.device, "cuda") ? DJCT_COMM_DEVICE_NONE : DJCT_COMM_DEVICE_AUTO;
    co.backend = !strcmp(c.backend, "nccl") ? DJCT_COMM_BACKEND_NCCL
                 : !strcmp(c.backend, "mpi") ? DJCT_COMM_BACKEND_MPI
                                             : DJCT_COMM_BACKEND_AUTO;
    co.timeout_seconds = c.watchdog;
    if (djct_comm_create(&comm, &co)) {
        fprintf(stderr, "djct_train: rank %d: %s\n", g_rank, djct_last_error());
        djct_comm_finalize_mpi();
        return 1;
    }
    g_rank = djct_comm_rank(comm);
    int size = djct_comm_size(comm);
    const char *report = NULL;
    if (djct_comm_startup_report(comm, &report) == 0 && g_rank == 0 && report)
        printf("%s", report);

    /* run id and directory (the same on every rank: rank 0 decides) */
    char run_id[128] = "", run_dir[4096] = "";
    if (g_rank == 0) {
        const char *env = getenv("WANDB_RUN_ID");
        if (c.run_id)
            snprintf(run_id, sizeof(run_id), "%s", c.run_id);
        else if (env && *env)
            snprintf(run_id, sizeof(run_id), "%s", env);
        else if (c.run_dir) {
            char p[4200];
            void *d = NULL;
            snprintf(p, sizeof(p), "%s/run_id", c.run_dir);
            if (djct_read_file(&d, NULL, p) == 0) {
                snprintf(run_id, sizeof(run_id), "%s", (char *)d);
                run_id[strcspn(run_id, "\r\n")] = '\0';
                free(d);
            }
        }
        if (!run_id[0])
            random_id(run_id, 9);
        if (c.run_dir)
            snprintf(run_dir, sizeof(run_dir), "%s", c.run_dir);
        else
            snprintf(run_dir, sizeof(run_dir), "runs/%s", run_id);
    }
    djct_comm_buffer idb[2] = {{run_id, sizeof(run_id), DJCT_DTYPE_INT32, -1}, {run_dir, sizeof(run_dir), DJCT_DTYPE_INT32, -1}};
    idb[0].count = sizeof(run_id) / 4;
    idb[1].count = sizeof(run_dir) / 4;
    if (djct_comm_broadcast(comm, idb, 2, 0))
        FAIL("%s", djct_last_error());
    if (g_rank == 0) {
        if (djct_mkdirs(run_dir))
            FAIL("run directory: %s; pass a writable --run-dir", djct_last_error());
        char p[4200];
        snprintf(p, sizeof(p), "%s/run_id", run_dir);
        djct_write_file_atomic(p, run_id, strlen(run_id));
    }

    /* data: the embedded default is generated once (rank 0) into the cache */
    char train_spec[4400], val_spec[4400] = "";
    if (!c.data) {
        char dir[4096];
        if (default_cache_dir(dir, sizeof(dir), c.gen_events, 1))
            FAIL("cache path too long; set DJCT_CACHE");
        int gen_rc = 0;
        if (g_rank == 0) {
            djct_gen_options go = DJCT_GEN_OPTIONS_INIT;
            go.events = c.gen_events;
            go.seed = 1;
            go.files = 4;
            int generated = 0;
            double g0 = now_s();
            printf("preparing the embedded dataset (%" PRId64 " synthetic point-cloud events) in %s\n", c.gen_events, dir);
            fflush(stdout);
            gen_rc = djct_gen_cached(dir, &go, &generated);
            if (gen_rc == 0)
            {
                if (generated)
                    printf("generated in %.1f s (cached for later runs)\n", now_s() - g0);
                else
                    printf("using the cached copy\n");
            }
            if (gen_rc)
                fprintf(stderr, "djct_train: rank 0: embedded dataset: %s\n", djct_last_error());
        }
        djct_comm_buffer gb = {&gen_rc, 1, DJCT_DTYPE_INT32, -1};
        if (djct_comm_broadcast(comm, &gb, 1, 0) || gen_rc)
            FAIL("the embedded dataset could not be prepared in '%s'; set DJCT_CACHE to a writable place", dir);
        snprintf(train_spec, sizeof(train_spec), "%s/train", dir);
        if (!c.val_data)
            snprintf(val_spec, sizeof(val_spec), "%s/val", dir);
    } else {
        snprintf(train_spec, sizeof(train_spec), "%s", c.data);
    }
    if (c.val_data)
        snprintf(val_spec, sizeof(val_spec), "%s", c.val_data);

    djct_dataset_options dso = DJCT_DATASET_OPTIONS_INIT;
    dso.batch_elements = c.batch_elements;
    dso.batch_events = c.batch_events;
    dso.squared_limit = c.squared_limit;
    dso.strict = c.strict;
    dso.seed = (uint64_t)c.seed;
    dso.shuffle = !strcmp(c.shuffle, "none") ? DJCT_SHUFFLE_NONE : !strcmp(c.shuffle, "files") ? DJCT_SHUFFLE_FILES
                                                                                                : DJCT_SHUFFLE_GLOBAL;
    dso.rank = g_rank;
    dso.world_size = size;
    dso.prefetch_depth = c.prefetch;
    dso.prefault_bytes = (size_t)c.prefault_mb << 20;
    djct_dataset *train_ds = NULL, *val_ds = NULL;
    if (djct_dataset_open(&train_ds, train_spec, &dso))
        FAIL("--data '%s': %s", train_spec, djct_last_error());
    if (val_spec[0]) {
        djct_dataset_options vo = dso;
        vo.shuffle = DJCT_SHUFFLE_NONE;
        if (djct_dataset_open(&val_ds, val_spec, &vo))
            FAIL("--val-data '%s': %s", val_spec, djct_last_error());
    }

    /* model: inputs per element from the first feature array */
    int threads = c.threads > 0 ? c.threads : threads_for_rank(comm);
    int jit_opt = !strcmp(c.jit_optimize, "on") || (!strcmp(c.jit_optimize, "auto") && !strcmp(c.device, "cuda"));
    if (djct_torch_set_num_threads(threads) || djct_torch_seed((uint64_t)c.seed) || djct_torch_set_jit_optimize(jit_opt))
        FAIL("%s", djct_last_error());
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.device_type = strcmp(c.device, "cuda") ? DJCT_DEVICE_CPU : DJCT_DEVICE_CUDA;
    mo.device_index = djct_comm_device(comm) < 0 ? 0 : djct_comm_device(comm);
    const djct_file_meta *fm = djct_dataset_file(train_ds, 0);
    if (fm && fm->layout.n_features > 0)
        mo.n_inputs = djct_array_inner_size(&fm->layout.features[0]);
    mo.hidden = c.hidden;
    mo.n_layers = c.layers;
    mo.n_classes = c.classes;
    if (!c.data && c.classes == 0)
        mo.n_classes = 3; /* the embedded showers: narrow, medium, wide */
    djct_model *model = NULL;
    int mrc = (!strcmp(c.model, "pointcloud") || !strcmp(c.model, "mlp")) ? djct_model_builtin(&model, c.model, &mo)
                                                                          : djct_model_load(&model, c.model, &mo);
    if (mrc)
        FAIL("--model '%s': %s", c.model, djct_last_error());

    if (djct_model_switch_all_logging(model, c.model_logging))
        FAIL("--model-logging: %s", djct_last_error());

    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.kind = !strcmp(c.optimizer, "sgd") ? DJCT_OPTIM_SGD : !strcmp(c.optimizer, "adamw") ? DJCT_OPTIM_ADAMW : DJCT_OPTIM_ADAM;
    oo.lr = c.lr;
    oo.momentum = c.momentum;
    oo.weight_decay = c.weight_decay;
    oo.schedule = !strcmp(c.schedule, "step") ? DJCT_LR_STEP : !strcmp(c.schedule, "cosine") ? DJCT_LR_COSINE : DJCT_LR_CONSTANT;
    oo.warmup_steps = c.warmup_steps;
    oo.step_size = c.step_size;
    oo.gamma = c.gamma;
    oo.min_lr = c.min_lr;
    int64_t steps_per_epoch = djct_dataset_steps(train_ds);
    oo.total_steps = c.max_steps > 0 ? c.max_steps : steps_per_epoch * c.epochs;
    djct_optimizer *opt = NULL;
    if (djct_optimizer_create(&opt, model, &oo))
        FAIL("optimizer: %s", djct_last_error());

    /* logging singleton: journal in <run dir>/wandb/<run id>/ */
    char log_root[4200], cfgtext[16384];
    snprintf(log_root, sizeof(log_root), "%s/wandb", run_dir);
    {
        FILE *f = fmemopen(cfgtext, sizeof(cfgtext) - 1, "w");
        memset(cfgtext, 0, sizeof(cfgtext));
        if (f) {
            djct_opts_print(T, NT, &c, f);
            fclose(f);
        }
    }
    djct_log_options lo = DJCT_LOG_OPTIONS_INIT;
    lo.project = c.project;
    lo.entity = c.entity;
    lo.run_name = c.run_name;
    lo.run_id = run_id;
    lo.group = c.group;
    lo.tags = c.tags;
    lo.notes = c.notes;
    lo.mode = !strcmp(c.wandb_mode, "online") ? DJCT_LOG_MODE_ONLINE
              : !strcmp(c.wandb_mode, "offline") ? DJCT_LOG_MODE_OFFLINE
              : !strcmp(c.wandb_mode, "disabled") ? DJCT_LOG_MODE_DISABLED
                                                  : DJCT_LOG_MODE_AUTO;
    lo.dir = log_root;
    lo.csv = c.csv;
    lo.no_fsync = !c.fsync;
    lo.comm = comm; /* the logging collectives are watched with the trainer's */
    if (djct_log_init(&lo))
        FAIL("logging: %s", djct_last_error());
    if (g_rank == 0) {
        const char *w = djct_log_warnings();
        if (w && *w)
            fprintf(stderr, "djct_train: warning: %s\n", w);
        /* config entries: every resolved option */
        char *line = strtok(cfgtext, "\n");
        while (line) {
            char *eq = strstr(line, " = ");
            if (eq) {
                *eq = '\0';
                djct_log_config_set(line, eq + 3);
            }
            line = strtok(NULL, "\n");
        }
        char buf[64];
        snprintf(buf, sizeof(buf), "%d", size);
        djct_log_config_set("ranks", buf);
        snprintf(buf, sizeof(buf), "%d", threads);
        djct_log_config_set("threads_per_rank", buf);
        djct_log_config_set("blas", djct_blas_describe());
    }

    djct_loader train_ld, val_ld;
    djct_loader_from_dataset(&train_ld, train_ds);
    if (val_ds)
        djct_loader_from_dataset(&val_ld, val_ds);
    progress prog = {0};
    prog.every = c.print_every;
    prog.mode = !strcmp(c.progress, "none") ? 0 : !strcmp(c.progress, "bar") ? 1 : !strcmp(c.progress, "lines") ? 2
                                                                           : (isatty(2) ? 1 : 2);
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    to.average = c.average;
    to.weighting = !strcmp(c.weighting, "elements") ? DJCT_WEIGHT_ELEMENTS : !strcmp(c.weighting, "none") ? DJCT_WEIGHT_NONE
                                                                                                         : DJCT_WEIGHT_EVENTS;
    to.overlap = c.overlap;
    to.bucket_bytes = (size_t)(c.bucket_mb * 1048576.0);
    to.nonfinite = !strcmp(c.nonfinite, "stop") ? DJCT_NONFINITE_STOP : DJCT_NONFINITE_SKIP;
    to.epochs = c.epochs;
    to.max_steps = c.max_steps;
    to.run_dir = run_dir;
    to.checkpoint_every_steps = c.ckpt_steps;
    to.checkpoint_every_minutes = c.ckpt_minutes;
    to.keep_checkpoints = c.keep_ckpt;
    to.log_every = c.log_every;
    to.validate = c.validate;
    to.train_callback = on_train_step;
    to.callback_user = &prog;
    to.seed = (uint64_t)c.seed;
    djct_trainer *tr = NULL;
    if (djct_trainer_create(&tr, model, opt, comm, &train_ld, val_ds ? &val_ld : NULL, &to))
        FAIL("%s", djct_last_error());

    if (g_rank == 0) {
        printf("djct_train %s: %d rank%s x %d thread%s, model %s, run %s in %s\n", djct_version(), size,
               size == 1 ? "" : "s", threads, threads == 1 ? "" : "s", c.model, run_id, run_dir);
        printf("BLAS: %s\n", djct_blas_describe());
        printf("data: %s (%zu files, %" PRId64 " events, %" PRId64 " steps/epoch)%s%s\n", train_spec,
               djct_dataset_n_files(train_ds), djct_dataset_n_events(train_ds), steps_per_epoch,
               val_ds ? ", validation: " : "", val_ds ? val_spec : "");
        printf("---- resolved configuration ----\n");
        djct_opts_print(T, NT, &c, stdout);
        printf("--------------------------------\n");
        fflush(stdout);
    }
    if (djct_signals_install())
        FAIL("%s", djct_last_error());
    int resumed = 0;
    int64_t rstep = -1;
    if (c.resume) {
        if (djct_trainer_resume(tr, &resumed, &rstep))
            FAIL("--resume: %s", djct_last_error());
        if (g_rank == 0)
            printf(resumed ? "resumed from the checkpoint of step %" PRId64 "\n"
                           : "--resume: no complete checkpoint in the run directory, starting fresh%.0" PRId64 "\n",
                   rstep);
    }
    int64_t epoch0 = 0, step0 = 0;
    djct_trainer_position(tr, NULL, NULL, &epoch0, &step0);
    prog.t_start = prog.t_last_print = now_s();
    prog.total_steps = (c.max_steps > 0 ? c.max_steps : steps_per_epoch * c.epochs) - (epoch0 * steps_per_epoch + step0);

    double t_fit = now_s();
    int frc = djct_trainer_fit(tr);
    double wall = now_s() - t_fit;
    int reason = djct_trainer_stop_reason(tr);
    if (frc) {
        const char *msg = djct_last_error();
        fprintf(stderr, "djct_train: rank %d: %s%s\n", g_rank, msg,
                strstr(msg, "Target") && strstr(msg, "out of bounds")
                    ? "; a label is >= the model's number of classes: set --classes"
                    : "");
        djct_log_finish(1);
        djct_comm_abort(comm, 1, "training failed");
    }

    int64_t gstep = 0, skipped = 0, ep = 0, st = 0;
    djct_trainer_position(tr, &gstep, &skipped, &ep, &st);
    double ts = 0, td = 0, tc = 0, tm = 0, evs = 0, els = 0, loss = NAN, vloss = NAN;
    djct_trainer_epoch_stats(tr, &ts, &td, &tc, &tm, &evs, &els, &loss);
    djct_trainer_last_val_loss(tr, &vloss);
    if (c.check_consistency) {
        /* replicas must agree after training; a diagnostic for multi-node runs (tests/test_multinode.sh) */
        float *params = NULL;
        size_t nparams = 0;
        int ndiff = 0;
        djct_comm_buffer pb = {NULL, 0, DJCT_DTYPE_FLOAT32, -1};
        if (djct_model_params(model, &params, &nparams) == 0) {
            pb.ptr = params;
            pb.count = nparams;
            pb.device = strcmp(c.device, "cuda") ? -1 : djct_comm_device(comm);
        }
        if (!pb.ptr || djct_comm_check_consistent(comm, &pb, 1, &ndiff))
            FAIL("--check-consistency: %s", djct_last_error());
        if (g_rank == 0)
            printf("consistency: the %zu parameters are identical on all %d ranks\n", nparams, size);
    }
    int exit_code = reason == DJCT_STOP_PREEMPTED ? DJCT_EXIT_REQUEUE : reason == DJCT_STOP_INTERRUPTED ? 130 : 0;
    if (g_rank == 0) {
        char p[4200];
        if (reason == DJCT_STOP_DONE) {
            snprintf(p, sizeof(p), "%s/model.pt", run_dir);
            if (djct_model_save(model, p))
                fprintf(stderr, "djct_train: rank 0: saving the final model: %s\n", djct_last_error());
        }
        char js[2048];
        int n = snprintf(js, sizeof(js),
                         "{\"ranks\": %d, \"threads_per_rank\": %d, \"steps\": %" PRId64 ", \"skipped_steps\": %" PRId64
                         ", \"epochs_done\": %" PRId64 ", \"events_per_s\": %.6g, \"elements_per_s\": %.6g, "
                         "\"step_time_s\": %.6g, \"t_data_s\": %.6g, \"t_compute_s\": %.6g, \"t_comm_s\": %.6g, "
                         "\"final_loss\": %.8g, \"val_loss\": %.8g, \"wall_s\": %.4g, \"stop\": \"%s\", \"run_id\": \"%s\"}\n",
                         size, threads, gstep, skipped, ep, evs, els, ts, td, tc, tm, loss,
                         isfinite(vloss) ? vloss : -1.0, wall,
                         reason == DJCT_STOP_DONE ? "done" : reason == DJCT_STOP_PREEMPTED ? "preempted" : "interrupted",
                         run_id);
        snprintf(p, sizeof(p), "%s/summary.json", run_dir);
        djct_write_file_atomic(p, js, (size_t)n);
        char vl[64] = "";
        if (isfinite(vloss))
            snprintf(vl, sizeof(vl), ", val loss %.4f", vloss);
        if (reason == DJCT_STOP_DONE)
            printf("done: %" PRId64 " steps in %.1f s, final loss %.4f%s, %.0f events/s, %.0f elements/s; "
                   "step %.2f ms (data %.2f, compute %.2f, comm %.2f)\nrun directory: %s\n",
                   gstep, wall, loss, vl, evs, els, 1e3 * ts, 1e3 * td, 1e3 * tc, 1e3 * tm, run_dir);
        else
            printf("%s at step %" PRId64 ": checkpoint written in %s/checkpoints; %s\n",
                   reason == DJCT_STOP_PREEMPTED ? "preempted" : "interrupted", gstep, run_dir,
                   reason == DJCT_STOP_PREEMPTED ? "exit 75: requeue with --resume" : "continue with --resume");
        fflush(stdout);
    }
    if (reason == DJCT_STOP_PREEMPTED)
        djct_log_mark_preempting();
    djct_log_finish(exit_code);
    djct_trainer_free(tr);
    djct_optimizer_free(opt);
    djct_model_free(model);
    djct_dataset_free(train_ds);
    djct_dataset_free(val_ds);
    djct_comm_free(comm);
    djct_opts_free(T, NT, &c);
    djct_comm_finalize_mpi();
    return exit_code;
}
