/* The report of a djct_train run: the consistency check, the final model, summary.json (written
 * when training ends, and again once the upload is settled) and the closing lines. */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_int.h"

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

void report(run *R)
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

/* Rank 0: what the upload left behind, where the user sees it (and summary.json records it). The
 * exit code does not change: the journal has every row, and djct_sync uploads the rest. */
void report_upload(const run *R, int finish_rc, const char *finish_err)
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
