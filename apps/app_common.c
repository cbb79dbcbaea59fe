/* The plumbing the djct programs share (apps/app_common.h). */
#include "app_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double app_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the start of a program ------------------------------------------------------------------- */
int app_start(const char *prog, const djct_opt *t, size_t nt, const char *usage, int version, void *cfg, size_t size,
              int argc, char **argv)
{
    if (djct_opts_argv_has(argc, argv, "--help", "-h")) {
        djct_opts_print_help(t, nt, usage, stdout);
        return 0;
    }
    if (version && djct_opts_argv_has(argc, argv, "--version", NULL)) {
        printf("%s %s\n", prog, djct_version());
        return 0;
    }
    memset(cfg, 0, size);
    if (djct_opts_defaults(t, nt, cfg) || djct_opts_parse_argv(t, nt, cfg, argc, argv, NULL)) {
        fprintf(stderr, "%s: %s\n", prog, djct_last_error());
        djct_opts_free(t, nt, cfg);
        return 2;
    }
    return APP_GO_ON;
}

int app_version(const char *prog, int argc, char **argv)
{
    if (!djct_opts_argv_has(argc, argv, "--version", NULL))
        return 0;
    printf("%s %s (%s)\n", prog, djct_version(), djct_build_features());
    return 1;
}

void app_usage_exit(const char *prog, int rank, const djct_opt *t, size_t nt, void *cfg, const char *msg)
{
    if (rank == 0)
        fprintf(stderr, "%s: %s\n", prog, msg);
    djct_opts_free(t, nt, cfg);
    djct_comm_finalize_mpi();
    exit(2);
}

int app_mpi_options(const char *prog, const djct_opt *t, size_t nt, const char *usage, void *cfg, int argc,
                    char **argv)
{
    const char *r = getenv("OMPI_COMM_WORLD_RANK"); /* only for messages before the comm exists */
    int rank = r ? atoi(r) : 0;
    if (djct_opts_argv_has(argc, argv, "--help", "-h")) {
        if (rank == 0)
            djct_opts_print_help(t, nt, usage, stdout);
        djct_comm_finalize_mpi();
        exit(0);
    }
    if (djct_opts_defaults(t, nt, cfg) || djct_opts_parse_argv(t, nt, cfg, argc, argv, NULL))
        app_usage_exit(prog, rank, t, nt, cfg, djct_last_error());
    return rank;
}

/* ---- what djct_train and djct_predict share --------------------------------------------------- */
const djct_opt_choice APP_JIT[] = {{"auto", APP_JIT_AUTO}, {"on", APP_JIT_ON}, {"off", APP_JIT_OFF}, {NULL, 0}};
const djct_opt_choice APP_PROGRESS[] = {{"auto", DJCT_PROGRESS_AUTO},
                                        {"bar", DJCT_PROGRESS_BAR},
                                        {"lines", DJCT_PROGRESS_LINES},
                                        {"none", DJCT_PROGRESS_NONE},
                                        {NULL, 0}};

int app_threads(int threads_opt, const djct_comm *comm)
{
    return threads_opt > 0 ? threads_opt : djct_cpus_per_rank(djct_comm_local_size(comm));
}

void app_resolve_decode_threads(app_data_opts *d, int threads_opt, const djct_comm *comm)
{
    if (d->decode_threads >= 0)
        return;
    int avail = app_threads(0, comm), compute = threads_opt > 0 ? threads_opt : avail;
    d->decode_threads = avail - compute > 1 ? avail - compute : 1;
}

djct_dataset_options app_dataset_options(const app_data_opts *d, const djct_comm *comm)
{
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = d->batch_elements;
    o.batch_events = d->batch_events;
    o.squared_limit = d->squared_limit;
    o.rank = djct_comm_rank(comm);
    o.world_size = djct_comm_size(comm);
    o.prefetch_depth = d->prefetch;
    o.prefault_bytes = (size_t)d->prefault_mb << 20;
    o.h5_map = d->h5_map;
    o.decode_threads = d->decode_threads;
    return o;
}

int app_torch_setup(int threads, int jit_optimize, int device)
{
    int jit = jit_optimize == APP_JIT_AUTO ? device == DJCT_DEVICE_CUDA : jit_optimize == APP_JIT_ON;
    int rc = djct_torch_set_num_threads(threads);
    return rc ? rc : djct_torch_set_jit_optimize(jit);
}

djct_model_options app_model_options(const djct_comm *comm, int device)
{
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.device_type = device;
    mo.device_index = djct_comm_device(comm) < 0 ? 0 : djct_comm_device(comm);
    return mo;
}

const char *app_switch_lists_check(const char *logging, const char *loss)
{
    if (logging && djct_model_switch_list_check(DJCT_SWITCH_LOGGING, logging))
        return "logging";
    if (loss && djct_model_switch_list_check(DJCT_SWITCH_LOSS, loss))
        return "loss";
    return NULL;
}

int app_switch_lists(djct_model *m, const char *logging, const char *loss, const char **opt)
{
    int rc = 0;
    if (logging && (rc = djct_model_switch_list(m, DJCT_SWITCH_LOGGING, logging)))
        *opt = "logging";
    else if (loss && (rc = djct_model_switch_list(m, DJCT_SWITCH_LOSS, loss)))
        *opt = "loss";
    return rc;
}

int app_progress_create(djct_progress **out, int rank, int mode, double every_s, int prediction)
{
    djct_progress_options po = DJCT_PROGRESS_OPTIONS_INIT;
    po.mode = rank == 0 ? mode : DJCT_PROGRESS_NONE; /* rank 0 speaks */
    po.every_s = every_s;
    po.prediction = prediction;
    return djct_progress_create(out, &po);
}

void app_progress_print(djct_progress *p, const djct_step_report *r, double now)
{
    char line[512];
    if (djct_progress_step(p, r, now, line, sizeof(line))) {
        FILE *f = djct_progress_mode_of(p) == DJCT_PROGRESS_BAR ? stderr : stdout;
        fputs(line, f);
        fflush(f);
    }
}

void app_progress_end(djct_progress *p)
{
    char end[8];
    if (djct_progress_end(p, end, sizeof(end)))
        fputs(end, stderr);
}
