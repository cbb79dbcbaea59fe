/* djct_predict: run a trained TorchScript model over data on N ranks and write its outputs, in the
 * input's event order with ids that line up with the input, as a djct HDF5 or .djctd file
 * (docs/predict.md). A thin app over the library: options, comm, dataset (DJCT_SHUFFLE_SHARDS),
 * model, djct_predict(), the report. With --with-targets it also evaluates the model (mean loss
 * and every recorded metric, event-weighted over all ranks) into a JSON report.
 * Exit codes: 0 done, 1 failure, 2 usage. */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app_common.h"
#include "djct/djct.h"

#define PROG "djct_predict"

/* ---- options -------------------------------------------------------------------------------- */
enum { FORMAT_AUTO = -1 };

typedef struct {
    char *config;
    char *model, *data, *out, *report;
    int format;
    char *output_kinds, *output_names;
    int gzip;
    app_data_opts data_opts;
    int with_targets;
    char *logging, *loss;
    int threads, device, jit_optimize, progress;
    double print_every;
} cfg;

static const djct_opt_choice FORMAT[] = {
    {"auto", FORMAT_AUTO}, {"h5", DJCT_FORMAT_H5}, {"djctd", DJCT_FORMAT_DJCTD}, {NULL, 0}};
static const djct_opt_choice DEVICE[] = {{"cpu", DJCT_DEVICE_CPU}, {"cuda", DJCT_DEVICE_CUDA}, {NULL, 0}};

#define O(f) offsetof(cfg, f)
static const djct_opt T[] = {
    {"config", 'c', DJCT_OPT_STRING, O(config), NULL, NULL, 0, 0, "FILE",
     "INI file of these options (keys = long names); the command line wins", "General"},
    {"model", 'm', DJCT_OPT_STRING, O(model), NULL, NULL, 0, 0, "FILE.pt",
     "the trained TorchScript model (e.g. <run dir>/model.pt of djct_train); required", NULL},
    {"data", 'd', DJCT_OPT_STRING, O(data), NULL, NULL, 0, 0, "SPEC",
     "input files: paths, dir, glob or list file, ','-separated, predicted in this order; required", NULL},
    APP_OPT_H5_MAP(O(data_opts.h5_map)),
    {"out", 'o', DJCT_OPT_STRING, O(out), NULL, NULL, 0, 0, "FILE",
     "the predictions file (.h5/.hdf5: djct HDF5, .djctd: djcdata); its parts are written next to it; required",
     NULL},
    {"format", 0, DJCT_OPT_CHOICE, O(format), "auto", FORMAT, 0, 0, NULL,
     "output format (auto: from the --out extension)", NULL},

    {"output-kinds", 0, DJCT_OPT_STRING, O(output_kinds), NULL, NULL, 0, 0, "KIND,...",
     "per model output: event, element, element:NAME or auto (default: auto for all; see docs/predict.md)",
     "Outputs"},
    {"output-names", 0, DJCT_OPT_STRING, O(output_names), NULL, NULL, 0, 0, "NAME,...",
     "names of the output arrays (default output_0, output_1, ...)", NULL},
    {"gzip", 0, DJCT_OPT_INT, O(gzip), "0", NULL, 0, 9, "N", "HDF5 output: deflate level (0: none)", NULL},

    {"batch-elements", 'b', DJCT_OPT_INT64, O(data_opts.batch_elements), "6400", NULL, 0, 1e15, "N",
     "ragged data: elements per batch (0: count events); an event above it is a batch of its own", "Data"},
    {"batch-events", 0, DJCT_OPT_INT64, O(data_opts.batch_events), "32", NULL, 1, 1e12, "N",
     "events per batch for non-ragged data", NULL},
    APP_OPT_SQUARED_LIMIT(O(data_opts.squared_limit)),
    APP_OPT_PREFETCH(O(data_opts.prefetch)),
    APP_OPT_DECODE_THREADS(O(data_opts.decode_threads)),
    {"prefault-mb", 0, DJCT_OPT_INT64, O(data_opts.prefault_mb), "0", NULL, 0, 1e9, "MB",
     "touch a mapped HDF5 file's pages when it is first opened, up to MB in all (0: off; reads are in order)",
     NULL},

    {"with-targets", 0, DJCT_OPT_FLAG, O(with_targets), "0", NULL, 0, 0, NULL,
     "also feed the targets with every LossModule and LoggingModule on, and report the mean loss and metrics",
     "Evaluation"},
    {"logging", 0, DJCT_OPT_LIST, O(logging), NULL, NULL, 0, 0, "NAME=on|off",
     "with --with-targets: switch single LoggingModules (NAME or glob; ','-separated or repeated)", NULL},
    {"loss", 0, DJCT_OPT_LIST, O(loss), NULL, NULL, 0, 0, "NAME=on|off",
     "with --with-targets: switch single LossModules (as --logging)", NULL},
    {"report", 0, DJCT_OPT_STRING, O(report), NULL, NULL, 0, 0, "FILE",
     "with --with-targets: the evaluation report (JSON; default <out>.eval.json)", NULL},

    {"threads", 0, DJCT_OPT_INT, O(threads), "0", NULL, 0, 1024, "N",
     "threads per rank, libtorch's and OpenBLAS's (0: cores available to the rank)", "Run"},
    {"device", 0, DJCT_OPT_CHOICE, O(device), "cpu", DEVICE, 0, 0, NULL, "where the model runs", NULL},
    {"jit-optimize", 0, DJCT_OPT_CHOICE, O(jit_optimize), "auto", APP_JIT, 0, 0, NULL,
     "TorchScript graph-executor optimisation (auto: off on cpu, on with cuda)", NULL},
    {"progress", 0, DJCT_OPT_CHOICE, O(progress), "auto", APP_PROGRESS, 0, 0, NULL,
     "rank 0 progress over its shard: a bar on a terminal, plain lines otherwise", NULL},
    APP_OPT_PRINT_EVERY(O(print_every)),
};
#define NT (sizeof(T) / sizeof(T[0]))

#define USAGE                                                                                                     \
    "usage: mpirun -np N djct_predict --model MODEL.pt --data SPEC --out PREDICTIONS.h5|.djctd [options]\n"      \
    "exit codes: 0 done, 1 failure, 2 usage\n-h,--help: this text; --version: version and build features"

/* ---- the run ---------------------------------------------------------------------------------- */
typedef struct {
    cfg c;
    djct_comm *comm;
    int rank, size, threads;
    djct_dataset *ds;
    djct_model *model;
    djct_progress *progress;
    djct_predict_options po;
    djct_predict_result res;
    char report_path[4200];
} run;

/* a fatal error of this rank before the collective prediction: it says why, every rank stops */
#define FAIL(R, ...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, PROG ": rank %d: ", (R)->rank);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        djct_comm_abort((R)->comm, 1, PROG " failed; see the message above");                      \
    } while (0)

static _Noreturn void die_usage(run *R, const char *fmt, const char *a, const char *b)
{
    char msg[8192];
    snprintf(msg, sizeof(msg), fmt, a, b);
    app_usage_exit(PROG, R->rank, T, NT, &R->c, msg);
}

/* ---- step 1: options, all checked before any work ------------------------------------------- */
static void parse_options(run *R, int argc, char **argv)
{
    R->rank = app_mpi_options(PROG, T, NT, USAGE, &R->c, argc, argv);
    cfg *c = &R->c;
    if (!c->model || !c->data || !c->out)
        die_usage(R, "%s is required; %s", !c->model ? "--model FILE.pt" : !c->data ? "--data SPEC" : "--out FILE",
                  "see --help");
    struct stat st;
    if (stat(c->model, &st) || !S_ISREG(st.st_mode))
        die_usage(R, "--model '%s' is not a readable file%s", c->model,
                  !strcmp(c->model, "pointcloud") || !strcmp(c->model, "mlp")
                      ? " (built-in models are untrained: predict with the model.pt djct_train wrote)"
                      : "");
    R->po = (djct_predict_options)DJCT_PREDICT_OPTIONS_INIT;
    R->po.out_path = c->out;
    R->po.format = c->format == FORMAT_AUTO ? DJCT_FORMAT_UNKNOWN : c->format;
    R->po.output_kinds = c->output_kinds;
    R->po.output_names = c->output_names;
    R->po.with_targets = c->with_targets;
    R->po.gzip_level = c->gzip;
    if (djct_predict_options_check(&R->po)) {
        const char *msg = djct_last_error();
        die_usage(R, "%s%s", msg, strstr(msg, "name it .h5") ? " (--format h5|djctd)" : "");
    }
    if (c->gzip && djct_format_from_name(c->out) == DJCT_FORMAT_DJCTD && c->format != DJCT_FORMAT_H5)
        die_usage(R, "--gzip applies to HDF5 output; '%s' is .djctd%s", c->out, "");
    if (!c->with_targets && (c->logging || c->loss || c->report))
        die_usage(R, "--%s needs --with-targets (without it every LoggingModule and LossModule is off)%s",
                  c->logging ? "logging" : c->loss ? "loss" : "report", "");
    const char *bad_switch = app_switch_lists_check(c->logging, c->loss);
    if (bad_switch)
        die_usage(R, "--%s: %s", bad_switch, djct_last_error());
    snprintf(R->report_path, sizeof(R->report_path), "%s", c->report ? c->report : "");
    if (!c->report)
        snprintf(R->report_path, sizeof(R->report_path), "%s.eval.json", c->out);
}

/* ---- step 2: the communicator --------------------------------------------------------------- */
static void setup_comm(run *R)
{
    djct_comm_options co = DJCT_COMM_OPTIONS_INIT;
    co.device = R->c.device == DJCT_DEVICE_CUDA ? DJCT_COMM_DEVICE_AUTO : DJCT_COMM_DEVICE_NONE;
    if (djct_comm_create(&R->comm, &co)) {
        fprintf(stderr, PROG ": rank %d: %s\n", R->rank, djct_last_error());
        djct_comm_finalize_mpi();
        exit(1);
    }
    R->rank = djct_comm_rank(R->comm);
    R->size = djct_comm_size(R->comm);
}

/* ---- step 3: data, every rank its contiguous shard in input order ----------------------------- */
static void open_data(run *R)
{
    app_resolve_decode_threads(&R->c.data_opts, R->c.threads, R->comm);
    const cfg *c = &R->c;
    djct_dataset_options o = app_dataset_options(&c->data_opts, R->comm);
    o.shuffle = DJCT_SHUFFLE_SHARDS;
    if (djct_dataset_open(&R->ds, c->data, &o))
        FAIL(R, "--data '%s': %s", c->data, djct_last_error());
}

/* ---- step 4: the model and its switches ------------------------------------------------------- */
static void load_model(run *R)
{
    const cfg *c = &R->c;
    R->threads = app_threads(c->threads, R->comm);
    if (app_torch_setup(R->threads, c->jit_optimize, c->device))
        FAIL(R, "%s", djct_last_error());
    djct_model_options mo = app_model_options(R->comm, c->device);
    if (djct_model_load(&R->model, c->model, &mo))
        FAIL(R, "--model '%s': %s", c->model, djct_last_error());
    if (!c->with_targets)
        return; /* djct_predict switches everything off */
    if (djct_model_switch_all_logging(R->model, 1) || djct_model_switch_all_losses(R->model, 1))
        FAIL(R, "--with-targets: %s", djct_last_error());
    const char *opt = NULL;
    if (app_switch_lists(R->model, c->logging, c->loss, &opt))
        FAIL(R, "--%s: %s", opt, djct_last_error());
}

/* ---- step 5: the banner (rank 0) ------------------------------------------------------------- */
static void print_banner(const run *R)
{
    if (R->rank != 0)
        return;
    const cfg *c = &R->c;
    printf(PROG " %s: %d rank%s x %d thread%s, model %s\n", djct_version(), R->size, R->size == 1 ? "" : "s",
           R->threads, R->threads == 1 ? "" : "s", c->model);
    size_t nf = djct_dataset_n_files(R->ds);
    printf("data: %s (%zu file%s, %" PRId64 " events, at most %" PRId64 " batches per rank)%s%s\n", c->data, nf,
           nf == 1 ? "" : "s", djct_dataset_n_events(R->ds), djct_dataset_steps(R->ds),
           c->data_opts.h5_map ? ", HDF5 datasets as mapped by " : "", c->data_opts.h5_map ? c->data_opts.h5_map : "");
    char sw[2048] = "";
    if (c->with_targets && djct_model_describe_switches(R->model, sw, sizeof(sw)) == 0)
        printf("targets: fed; modules: %s\n", sw);
    else
        printf("targets: None; every LoggingModule and LossModule off\n");
    printf("output: %s\n", c->out);
    fflush(stdout);
}

/* ---- step 6: predict, with rank 0's progress ------------------------------------------------- */
static int on_batch(void *user, const djct_step_report *r)
{
    run *R = user;
    app_progress_print(R->progress, r, app_now_s());
    return 0;
}

static int predict(run *R)
{
    if (app_progress_create(&R->progress, R->rank, R->c.progress, R->c.print_every, 1))
        FAIL(R, "--progress: %s", djct_last_error());
    R->po.callback = on_batch;
    R->po.callback_user = R;
    djct_progress_start(R->progress, app_now_s(), djct_dataset_steps(R->ds));
    int rc = djct_predict(R->model, R->ds, R->comm, &R->po, &R->res);
    app_progress_end(R->progress);
    if (rc && R->rank == 0) /* every rank has the first failing rank's message */
        fprintf(stderr, PROG ": %s\n", djct_last_error());
    return rc;
}

/* ---- step 7: the report (rank 0) --------------------------------------------------------------- */
static void add_num(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static int write_eval(const run *R)
{
    const djct_predict_result *s = &R->res;
    cJSON *o = cJSON_CreateObject(), *m = cJSON_CreateObject();
    char *text = NULL;
    if (o && m) {
        cJSON_AddStringToObject(o, "model", R->c.model);
        cJSON_AddStringToObject(o, "data", R->c.data);
        cJSON_AddStringToObject(o, "predictions", R->c.out);
        cJSON_AddNumberToObject(o, "ranks", R->size);
        cJSON_AddNumberToObject(o, "events", (double)s->events);
        cJSON_AddNumberToObject(o, "elements", (double)s->elements);
        add_num(o, "loss", s->loss);
        for (size_t i = 0; i < s->n_metrics; i++)
            add_num(m, s->metric_names[i], s->metric_values[i]);
        cJSON_AddItemToObject(o, "metrics", m);
        m = NULL;
        text = cJSON_Print(o);
    }
    cJSON_Delete(m);
    cJSON_Delete(o);
    size_t len = text ? strlen(text) : 0;
    char *nl = text ? realloc(text, len + 2) : NULL;
    if (nl) {
        text = nl;
        strcpy(text + len, "\n");
    }
    int rc = text && nl ? djct_write_file_atomic(R->report_path, text, len + 1) : -1;
    if (rc)
        fprintf(stderr, PROG ": rank 0: writing the report '%s': %s\n", R->report_path,
                text && nl ? djct_last_error() : "out of memory");
    free(text);
    return rc;
}

static int report(const run *R)
{
    if (R->rank != 0)
        return 0;
    const djct_predict_result *s = &R->res;
    printf("done: %" PRId64 " events (%" PRId64 " elements) in %.1f s, %.0f events/s\n", s->events, s->elements,
           s->seconds, s->seconds > 0 ? (double)s->events / s->seconds : 0);
    for (size_t i = 0; i < s->n_outputs; i++)
        if (s->output_kinds[i] == DJCT_OUTPUT_ELEMENT)
            printf("output %s: per element of '%s' (its row splits)\n", s->output_names[i], s->output_ragged_like[i]);
        else
            printf("output %s: per event\n", s->output_names[i]);
    printf("predictions: %s\n", R->c.out);
    int rc = 0;
    if (R->c.with_targets) {
        printf("evaluation: %" PRId64 " events, loss %.6g", s->events, s->loss);
        for (size_t i = 0; i < s->n_metrics; i++)
            printf(", %s %.6g", s->metric_names[i], s->metric_values[i]);
        printf("\n");
        rc = write_eval(R);
        if (rc == 0)
            printf("report: %s\n", R->report_path);
    }
    fflush(stdout);
    return rc;
}

int main(int argc, char **argv)
{
    if (app_version(PROG, argc, argv))
        return 0;
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED)) {
        fprintf(stderr, PROG ": %s\n", djct_last_error());
        return 1;
    }
    static run R;
    parse_options(&R, argc, argv);
    setup_comm(&R);
    open_data(&R);
    load_model(&R);
    print_banner(&R);
    int rc = predict(&R);
    if (rc == 0 && report(&R))
        rc = 1;
    djct_predict_result_clear(&R.res);
    djct_progress_free(R.progress);
    djct_model_free(R.model);
    djct_dataset_free(R.ds);
    djct_comm_free(R.comm);
    djct_opts_free(T, NT, &R.c);
    djct_comm_finalize_mpi();
    return rc ? 1 : 0;
}
