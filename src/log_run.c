/* The logging singleton's start and end. Rank 0 resolves the mode (option, WANDB_MODE, key
 * found or not), the run id (option, WANDB_RUN_ID, else random), the key and the other WANDB_*
 * settings, opens or resumes the run directory (run.json, config.json), starts the writer and,
 * online, the uploader; every rank learns the outcome from one broadcast, so no rank waits for one
 * that failed. Finish flushes, records the exit code and waits (bounded) for the upload. */
#include "djct/error.h"
#include "djct_int.h"
#include "log_int.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* what the last finished run's upload left behind (djct_log_upload_status); not part of `g`, which
 * init clears, because it is read after finish */
static djct_log_upload last_upload = {.mode = DJCT_LOG_MODE_DISABLED};
static pthread_mutex_t last_upload_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *env_or(const char *opt, const char *env)
{
    if (opt && *opt)
        return opt;
    const char *v = getenv(env);
    return v && *v ? v : NULL;
}


void djct_log_new_run_id(char out[9])
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    const size_t n = 8;
    unsigned char b[8];
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, b, n) : -1;
    if (fd >= 0)
        close(fd);
    unsigned s = (unsigned)(djct_wall_s() * 1e6) ^ (unsigned)getpid();
    for (size_t i = 0; i < n; i++)
        out[i] = al[(got == (ssize_t)n ? b[i] : (unsigned char)rand_r(&s)) % 36];
    out[n] = '\0';
}

static int valid_run_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
              id[i] == '-' || id[i] == '_' || id[i] == '.'))
            return 0;
    return id[0] != '.';
}

static cJSON *tags_array(const char *tags)
{
    cJSON *a = cJSON_CreateArray();
    if (!tags)
        return a;
    char *copy = strdup(tags), *save = NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t l = strlen(t);
        while (l > 0 && t[l - 1] == ' ')
            t[--l] = '\0';
        if (l)
            cJSON_AddItemToArray(a, cJSON_CreateString(t));
    }
    free(copy);
    return a;
}

static const char *mode_name(int m)
{
    return m == DJCT_LOG_MODE_ONLINE ? "online" : m == DJCT_LOG_MODE_OFFLINE ? "offline" : "disabled";
}

static int write_run_json(cJSON *run) /* rank 0 */
{
    char *t = cJSON_Print(run);
    if (!t)
        return djct_error_oom();
    int rc = jr_write_atomic(g.dir, JR_RUN, t, 1);
    free(t);
    return rc;
}

static void set_field(cJSON *o, const char *k, cJSON *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddItemToObject(o, k, v ? v : cJSON_CreateNull());
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

/* rank 0: resolve everything, open the run directory, start the uploader */
static int init_rank0(const djct_log_options *o, int *mode_out)
{
    int mode = o->mode, rc;
    const char *env_mode = getenv("WANDB_MODE");
    if (mode == DJCT_LOG_MODE_AUTO && env_mode && *env_mode) {
        if (!strcmp(env_mode, "online") || !strcmp(env_mode, "run") || !strcmp(env_mode, "shared"))
            mode = DJCT_LOG_MODE_ONLINE;
        else if (!strcmp(env_mode, "offline") || !strcmp(env_mode, "dryrun"))
            mode = DJCT_LOG_MODE_OFFLINE;
        else if (!strcmp(env_mode, "disabled"))
            mode = DJCT_LOG_MODE_DISABLED;
        else
            return djct_error_set(DJCT_EINVAL, "WANDB_MODE='%s' is not a mode; use online, offline or disabled",
                                  env_mode);
        /* an explicit environment choice of online is as strict as the option */
        if (mode == DJCT_LOG_MODE_ONLINE)
            mode = -DJCT_LOG_MODE_ONLINE;
    }
    if (mode == DJCT_LOG_MODE_DISABLED) {
        *mode_out = mode;
        return 0;
    }
    const char *base = env_or(o->base_url, "WANDB_BASE_URL");
    char base_buf[2048];
    snprintf(base_buf, sizeof(base_buf), "%s", base ? base : WB_DEFAULT_BASE_URL);
    for (size_t l = strlen(base_buf); l > 0 && base_buf[l - 1] == '/'; l--)
        base_buf[l - 1] = '\0';
    if (mode != DJCT_LOG_MODE_OFFLINE) {
        char w[1024] = "";
        if ((rc = wb_resolve_key(base_buf, o->api_key, &g.key, &g.key_source, w, sizeof(w))) < 0)
            return rc;
        if (w[0])
            lg_warnf("%.*s", (int)strlen(w) - 1, w);
        if (!g.key) {
            if (mode != DJCT_LOG_MODE_AUTO)
                return djct_error_set(DJCT_EINVAL, "wandb mode is online but no API key was found for %s; set "
                                      "WANDB_API_KEY, ~/private/wandb_api.sh or ~/.netrc, or use offline mode",
                                      base_buf);
            lg_warnf("no wandb API key found (option, WANDB_API_KEY, ~/private/wandb_api.sh, ~/.netrc): logging "
                  "offline; upload later with djct_sync");
            mode = DJCT_LOG_MODE_OFFLINE;
        } else {
            mode = DJCT_LOG_MODE_ONLINE;
        }
    }
    const char *ca = NULL, *ca_source;
    if (mode == DJCT_LOG_MODE_ONLINE && (rc = wb_resolve_ca(o->ca_bundle, &ca, &ca_source)) < 0)
        return rc;
    char host[256];
    if (mode == DJCT_LOG_MODE_ONLINE && wb_plain_http_remote(base_buf, host, sizeof(host)))
        lg_warnf("the wandb server %s is plain http to %s, not a loopback address: the API key crosses the "
                 "network unencrypted; use https (djct_sync refuses this without --insecure)", base_buf, host);
    const char *id = env_or(o->run_id, "WANDB_RUN_ID");
    if (id) {
        if (!valid_run_id(id))
            return djct_error_set(DJCT_EINVAL, "run id '%s' is not valid; use up to 63 of [A-Za-z0-9._-]", id);
        snprintf(g.run_id, sizeof(g.run_id), "%s", id);
    } else {
        djct_log_new_run_id(g.run_id);
    }
    const char *root = env_or(o->dir, "DJCT_LOG_DIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s", root ? root : "djct-runs", g.run_id);
    if ((rc = jr_mkdirs(dir)) < 0)
        return rc;
    if (!(g.dir = strdup(dir)))
        return djct_error_oom();
    if ((rc = jr_history_open(&g.hist, g.dir)) < 0)
        return rc;
    g.last_step = g.hist.last_step;
    g.runtime_base = g.hist.last_runtime;
    /* run.json: keep what a previous job of this run id recorded (start time), refresh the rest */
    cJSON *run = NULL;
    int resumed = jr_read_json(g.dir, JR_RUN, &run) == 0;
    if (!run)
        run = cJSON_CreateObject();
    /* where the last finished djct job stopped writing: rows after it are other writers' (see
     * djct_log_rewind); this job removes the mark until it finishes itself, so that a killed job's
     * rows never pass for others' */
    cJSON *laf = cJSON_GetObjectItemCaseSensitive(run, "lines_at_finish");
    g.others_from = cJSON_IsNumber(laf) && laf->valuedouble >= 0 ? (int64_t)laf->valuedouble : -1;
    cJSON_DeleteItemFromObjectCaseSensitive(run, "lines_at_finish");
    const char *project = env_or(o->project, "WANDB_PROJECT");
    set_field(run, "run_id", cJSON_CreateString(g.run_id));
    set_field(run, "project", cJSON_CreateString(project ? project : "uncategorized"));
    set_field(run, "entity", str_or_null(env_or(o->entity, "WANDB_ENTITY")));
    set_field(run, "name", str_or_null(env_or(o->run_name, "WANDB_NAME")));
    set_field(run, "group", str_or_null(env_or(o->group, "WANDB_RUN_GROUP")));
    set_field(run, "job_type", str_or_null(env_or(o->job_type, "WANDB_JOB_TYPE")));
    set_field(run, "notes", str_or_null(env_or(o->notes, "WANDB_NOTES")));
    set_field(run, "tags", tags_array(env_or(o->tags, "WANDB_TAGS")));
    set_field(run, "mode", cJSON_CreateString(mode_name(mode)));
    set_field(run, "base_url", cJSON_CreateString(base_buf));
    host[0] = '\0';
    gethostname(host, sizeof(host) - 1);
    set_field(run, "host", cJSON_CreateString(host));
    if (!cJSON_GetObjectItemCaseSensitive(run, "start_time"))
        set_field(run, "start_time", cJSON_CreateNumber(djct_wall_s()));
    /* a count; cJSON_GetNumberValue of a missing item is NaN, which would print as null */
    cJSON *jobs = cJSON_GetObjectItemCaseSensitive(run, "jobs");
    set_field(run, "jobs", cJSON_CreateNumber((cJSON_IsNumber(jobs) ? jobs->valuedouble : resumed) + 1));
    set_field(run, "world_size", cJSON_CreateNumber(g.size));
    set_field(run, "finished", cJSON_CreateFalse());
    set_field(run, "preempted", cJSON_CreateFalse());
    set_field(run, "exit_code", NULL);
    rc = write_run_json(run);
    cJSON_Delete(run);
    if (rc < 0)
        return rc;
    /* config: the previous job's entries, then the option's */
    cJSON *cfg = NULL;
    jr_read_json(g.dir, JR_CONFIG, &cfg);
    djct_error_clear();
    g.config = cJSON_IsObject(cfg) ? cfg : (cJSON_Delete(cfg), cJSON_CreateObject());
    if (o->config_json) {
        cJSON *add = cJSON_Parse(o->config_json);
        if (!cJSON_IsObject(add)) {
            cJSON_Delete(add);
            return djct_error_set(DJCT_EINVAL, "config_json is not a JSON object: '%.60s'", o->config_json);
        }
        for (cJSON *it = add->child; it; it = it->next) {
            cJSON_DeleteItemFromObjectCaseSensitive(g.config, it->string);
            cJSON_AddItemToObject(g.config, it->string, cJSON_Duplicate(it, 1));
        }
        cJSON_Delete(add);
    }
    if ((rc = lg_config_write()) < 0)
        return rc;
    /* the summary of the earlier jobs of this run id (keys they logged, and keys other writers
     * such as the Python wrapper added) stays; this job's rows update it */
    g.summary = cJSON_CreateObject();
    g.summary_user = cJSON_CreateObject();
    if (!g.summary || !g.summary_user)
        return djct_error_oom();
    if ((rc = lg_summary_load()) < 0)
        return rc;
    if (g.csv && g.hist.lines > 0)
        lg_csv_rewrite(); /* resumed: picks up the columns and the rows so far */
    if (mode == DJCT_LOG_MODE_ONLINE) {
        wb_config wc = {0};
        wc.dir = g.dir;
        wc.base_url = base_buf;
        wc.api_key = g.key;
        wc.http_timeout_s = o->http_timeout_s;
        wc.retry_min_s = o->retry_min_s;
        wc.retry_max_s = o->retry_max_s;
        wc.init_timeout_s = o->init_timeout_s;
        wc.batch_interval_s = o->batch_interval_s;
        wc.heartbeat_s = o->heartbeat_s;
        wc.insecure = o->insecure;
        wc.ca_bundle = ca;
        /* kept, to start the uploader again after a rewind of the journal */
        if (!(g.up_base = strdup(base_buf)) || (ca && !(g.up_ca = strdup(ca))))
            return djct_error_oom();
        wc.base_url = g.up_base;
        wc.ca_bundle = g.up_ca;
        g.up_cfg = wc;
        if ((rc = wb_uploader_create(&g.up, &wc)) < 0 || (rc = wb_uploader_start(g.up)) < 0)
            return rc;
    }
    *mode_out = mode;
    return 0;
}

static void release_all(void)
{
    lg_writer_stop();
    if (g.up) {
        wb_uploader_free(g.up);
        g.up = NULL;
    }
    lg_upload_cfg_free();
    jr_history_close(&g.hist);
    if (g.csv_f)
        fclose(g.csv_f);
    g.csv_f = NULL;
    for (int i = 0; i < g.ncols; i++)
        free(g.cols[i]);
    free(g.cols);
    g.cols = NULL;
    g.ncols = 0;
    lg_buffer_free();
    free(g.e);
    free(g.index);
    g.e = NULL;
    g.index = NULL;
    g.ecap = g.icap = 0;
    lg_layout_free(&g.lay);
    free(g.lens);
    free(g.displs);
    g.lens = g.displs = NULL;
    free(g.held);
    g.held = NULL;
    g.nheld = g.heldcap = 0;
    free(g.held_prefix);
    g.held_prefix = NULL;
    cJSON_Delete(g.summary);
    cJSON_Delete(g.summary_user);
    cJSON_Delete(g.config);
    g.summary = g.summary_user = g.config = NULL;
    free(g.dir);
    g.dir = NULL;
    if (g.key) {
        memset(g.key, 0, strlen(g.key));
        free(g.key);
        g.key = NULL;
    }
    free(g.last_row);
    g.last_row = NULL;
    free(g.pending);
    g.pending = NULL;
    g.pending_len = g.pending_cap = 0;
    int fin = 0;
    if (g.have_mpi) {
        MPI_Finalized(&fin);
        if (!fin) {
            if (g.opending) /* an error path left the last verdict in flight: rank 0 sent it */
                djct_comm_wait(g.oreq);
            if (g.dtype_len)
                MPI_Type_free(&g.dtype);
            MPI_Op_free(&g.op);
            if (g.own_comm)
                djct_comm_free(g.comm);
        }
    }
    g.opending = 0;
    djct_comm_request_free(g.oreq);
    g.oreq = NULL;
    g.comm = NULL;
    g.own_comm = 0;
    g.dtype_len = 0;
    g.have_mpi = 0;
    g.initialised = 0;
}

int djct_log_init(const djct_log_options *opts)
{
    djct_log_options defaults = DJCT_LOG_OPTIONS_INIT;
    const djct_log_options *o = opts ? opts : &defaults;
    DJCT_CHECK_VERSION(opts, DJCT_LOG_OPTIONS_VERSION, "djct_log_options");
    if (o->mode < DJCT_LOG_MODE_AUTO || o->mode > DJCT_LOG_MODE_DISABLED)
        return djct_error_set(DJCT_EINVAL, "djct_log_options.mode = %d; use a DJCT_LOG_MODE_* value", o->mode);
    if (o->comm && o->mpi_comm)
        return djct_error_set(DJCT_EINVAL, "djct_log_options: set comm or mpi_comm, not both");
    pthread_mutex_lock(&g.mu);
    if (g.initialised) {
        pthread_mutex_unlock(&g.mu);
        return djct_error_set(DJCT_EINVAL, "djct_log_init called twice; call djct_log_finish first");
    }
    pthread_mutex_lock(&last_upload_mu);
    memset(&last_upload, 0, sizeof(last_upload));
    last_upload.mode = DJCT_LOG_MODE_DISABLED;
    pthread_mutex_unlock(&last_upload_mu);
    /* everything after the mutex starts from zero */
    memset((char *)&g + offsetof(log_state, initialised), 0, sizeof(g) - offsetof(log_state, initialised));
    g.key_source = "none";
    g.rank = 0;
    g.size = 1;
    g.last_step = -1;
    g.console = o->console;
    g.csv = o->csv;
    g.no_fsync = o->no_fsync;
    g.finish_timeout_s = o->finish_timeout_s > 0 ? o->finish_timeout_s : 60;
    int mpi_up = 0, fin = 0;
    MPI_Initialized(&mpi_up);
    MPI_Finalized(&fin);
    if (o->comm) {
        g.comm = o->comm;
    } else if (mpi_up && !fin) { /* a standalone singleton: its own comm, unwatched */
        MPI_Comm base = o->mpi_comm ? *(MPI_Comm *)o->mpi_comm : MPI_COMM_WORLD;
        if (djct_comm_create_on(&g.comm, base) < 0) {
            pthread_mutex_unlock(&g.mu);
            return djct_error_prefix("djct_log_init");
        }
        g.own_comm = 1;
    }
    if (g.comm) {
        g.rank = djct_comm_rank(g.comm);
        g.size = djct_comm_size(g.comm);
        const char *vb = getenv("DJCT_LOG_VERDICT_BCAST"); /* the same environment on every rank */
        g.verdict_bcast = vb && !strcmp(vb, "1");
        MPI_Op_create(lg_combine, 1, &g.op);
        g.have_mpi = 1;
        djct_comm_request_create(&g.oreq, g.comm); /* out of memory: agreed on below */
    }
    g.lens = calloc((size_t)g.size, sizeof(int));
    g.displs = calloc((size_t)g.size, sizeof(int));
    /* rank 0 decides; everyone learns the outcome (and no rank waits for a rank that failed) */
    struct {
        int rc, mode;
        int64_t last_step;
        char run_id[64];
        char msg[512];
    } shared = {0, 0, -1, "", ""};
    if (g.rank == 0) {
        shared.rc = init_rank0(o, &shared.mode);
        shared.last_step = g.last_step;
        snprintf(shared.run_id, sizeof(shared.run_id), "%s", g.run_id);
        if (shared.rc < 0)
            snprintf(shared.msg, sizeof(shared.msg), "%s", djct_last_error());
    }
    if (g.have_mpi && g.size > 1 &&
        djct_comm_mpi_bcast(g.comm, &shared, (int)sizeof(shared), MPI_BYTE, 0, "the logging start-up's settings") < 0)
        shared.rc = djct_error_prefix("djct_log_init: broadcasting the run settings");
    /* the flush's gathering buffers: a rank without them could not take part, so all give up alike */
    int ok = g.lens && g.displs && (g.oreq || !g.have_mpi), all_ok = ok;
    if (g.have_mpi && g.size > 1 &&
        djct_comm_mpi_allreduce(g.comm, &all_ok, 1, MPI_INT, MPI_MIN, "the logging start-up's allocation check") < 0)
        all_ok = 0;
    if (shared.rc == 0 && !all_ok)
        shared.rc = djct_error_set(DJCT_ENOMEM, "djct_log_init: %s is out of memory (%d ints for the flush)",
                                   ok ? "another rank" : "this rank", 2 * g.size);
    if (shared.rc < 0) {
        if (g.rank != 0)
            djct_error_set(shared.rc, "logging init failed on rank 0: %s", shared.msg);
        int rc = shared.rc;
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", djct_last_error());
        release_all();
        djct_error_set(rc, "%s", keep);
        pthread_mutex_unlock(&g.mu);
        return rc;
    }
    g.mode = shared.mode;
    g.last_step = shared.last_step;
    pthread_mutex_lock(&lg_sink_mu);
    lg_rows_written = 0;
    pthread_mutex_unlock(&lg_sink_mu);
    if (g.rank == 0 && g.dir)
        lg_writer_start();
    snprintf(g.run_id, sizeof(g.run_id), "%s", shared.run_id);
    g.t0_mono = djct_now_s();
    g.active = 1;
    g.initialised = 1;
    pthread_mutex_unlock(&g.mu);
    return 0;
}

int djct_log_upload_status(djct_log_upload *out)
{
    DJCT_CHECK_ARG(out);
    pthread_mutex_lock(&last_upload_mu);
    *out = last_upload;
    pthread_mutex_unlock(&last_upload_mu);
    return 0;
}

int djct_log_mark_preempting(void)
{
    pthread_mutex_lock(&g.mu);
    if (g.initialised && g.rank == 0 && g.dir) {
        g.preempted = 1;
        if (g.up)
            wb_uploader_preempting(g.up);
    }
    pthread_mutex_unlock(&g.mu);
    return 0;
}

/* rank 0: the journal on disk, the summary, and run.json's end fields */
static int record_end(int exit_code)
{
    int rc = jr_history_sync(&g.hist, 1);
    if (rc == 0)
        rc = lg_summary_write(1);
    cJSON *run = NULL;
    if (jr_read_json(g.dir, JR_RUN, &run) == 0) {
        set_field(run, "finished", cJSON_CreateBool(!g.preempted));
        set_field(run, "preempted", cJSON_CreateBool(g.preempted));
        set_field(run, "exit_code", g.preempted ? NULL : cJSON_CreateNumber(exit_code));
        set_field(run, "runtime", cJSON_CreateNumber(g.runtime_base + (djct_now_s() - g.t0_mono)));
        /* where this job stopped writing: later rows are other writers' (djct_log_rewind) */
        set_field(run, "lines_at_finish", cJSON_CreateNumber((double)g.hist.lines));
        if (rc == 0)
            rc = write_run_json(run);
        cJSON_Delete(run);
    }
    return rc;
}

int djct_log_finish(int exit_code)
{
    pthread_mutex_lock(&g.mu);
    int ok = g.initialised;
    pthread_mutex_unlock(&g.mu);
    if (!ok)
        return 0;
    int rc = djct_log_flush(NULL, -1); /* anything still buffered (collective) */
    pthread_mutex_lock(&g.mu);
    int r1 = lg_settle(); /* the last flush's row, should its keys have changed (collective) */
    if (rc == 0)
        rc = r1;
    lg_writer_stop(); /* every row is written */
    char werr[512];
    int wrc = lg_writer_error(werr, sizeof(werr));
    if (rc == 0 && wrc)
        rc = djct_error_set(wrc, "%s", werr);
    if (g.rank == 0 && g.dir) {
        int r2 = record_end(exit_code);
        if (rc == 0)
            rc = r2;
        if (g.up) {
            int r3 = wb_uploader_finish(g.up, !g.preempted, exit_code, g.finish_timeout_s);
            if (r3 < 0) {
                lg_warnf("%s", djct_last_error());
                if (rc == 0)
                    rc = r3;
            }
        }
        char keep[1024];
        int code = djct_last_error_code();
        snprintf(keep, sizeof(keep), "%s", djct_last_error());
        pthread_mutex_lock(&last_upload_mu);
        wb_upload_fill(&last_upload, g.mode, g.dir, g.up, !g.preempted);
        pthread_mutex_unlock(&last_upload_mu);
        djct_error_set(code, "%s", keep);
    }
    char keep[1024];
    int code = djct_last_error_code();
    snprintf(keep, sizeof(keep), "%s", djct_last_error());
    release_all();
    if (rc < 0)
        djct_error_set(code, "%s", keep);
    pthread_mutex_unlock(&g.mu);
    return rc;
}

/* The failure path of a rank that is about to end the job: no collective (the other ranks may be
 * gone, stopped or waiting in another collective), no release of what a collective would need
 * (the verdict in flight, the comm). Rows already reduced reach the journal; the uploader gets a
 * few seconds, as the job's end should not wait for a network: djct_sync uploads the rest. */
#define FINISH_LOCAL_UPLOAD_S 5.0

int djct_log_finish_local(int exit_code)
{
    pthread_mutex_lock(&g.mu);
    if (!g.initialised) {
        pthread_mutex_unlock(&g.mu);
        return 0;
    }
    lg_writer_stop(); /* the queued rows are written */
    char werr[512];
    int rc = lg_writer_error(werr, sizeof(werr));
    if (rc)
        djct_error_set(rc, "%s", werr);
    if (g.rank == 0 && g.dir) {
        int r2 = record_end(exit_code);
        if (rc == 0)
            rc = r2;
        if (g.up) {
            double t = g.finish_timeout_s < FINISH_LOCAL_UPLOAD_S ? g.finish_timeout_s : FINISH_LOCAL_UPLOAD_S;
            int r3 = wb_uploader_finish(g.up, !g.preempted, exit_code, t);
            if (rc == 0)
                rc = r3;
        }
    }
    g.initialised = 0; /* later djct_log_* calls are no-ops; nothing is released */
    g.active = 0;
    pthread_mutex_unlock(&g.mu);
    return rc;
}

