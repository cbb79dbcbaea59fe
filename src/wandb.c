/* The wandb uploader: the object and its settings, the thread that streams a run journal while
 * the job runs (rank 0), the synchronous path of djct_sync, the finish with its time limit, and
 * what the upload left behind (wb_upload_fill). The transport is wandb_http.c, the requests
 * wandb_requests.c, the key and CA lookup wandb_key.c. */
#include "wandb_int.h"
#include "journal_int.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void set_fatal(wb_uploader *u, int rc)
{
    pthread_mutex_lock(&u->mu);
    snprintf(u->cause, sizeof(u->cause), "%s", djct_last_error());
    snprintf(u->fatal, sizeof(u->fatal), "%s; streaming stopped, the journal in %s is complete: upload it "
             "later with `djct_sync %s`", djct_last_error(), u->dir, u->dir);
    u->state = WB_FATAL;
    (void)rc;
    pthread_mutex_unlock(&u->mu);
    wb_save_state(u);
}

/* ---- the thread -------------------------------------------------------------------------------- */

static void *uploader_main(void *arg)
{
    pthread_setname_np(pthread_self(), "djct-upload"); /* shown by top -H, ps -L, gdb */
    wb_uploader *u = arg;
    int rc = wb_ensure_upserted(u, djct_now_s() + u->cfg.init_timeout_s);
    if (rc < 0) {
        set_fatal(u, rc);
        goto out;
    }
    u->last_send = djct_now_s();
    double last_data = 0;
    for (;;) {
        pthread_mutex_lock(&u->mu);
        int due = 0, final = 0, heartbeat = 0;
        while (!u->abort_now) {
            double t = djct_now_s();
            final = u->stop;
            heartbeat = t - u->last_send >= u->cfg.heartbeat_s;
            int batch = u->pending_bytes > 0 && t - last_data >= u->cfg.batch_interval_s;
            due = final || heartbeat || batch || u->preempt_pending || u->config_dirty ||
                  u->pending_bytes >= (u->cfg.big_batch_bytes ? u->cfg.big_batch_bytes : (256u << 10));
            if (due)
                break;
            double wake = u->last_send + u->cfg.heartbeat_s;
            if (u->pending_bytes > 0 && last_data + u->cfg.batch_interval_s < wake)
                wake = last_data + u->cfg.batch_interval_s;
            struct timespec ts = wb_time_after(wake - t > 0 ? wake - t : 0.001);
            pthread_cond_timedwait(&u->cv, &u->mu, &ts);
        }
        int aborted = u->abort_now;
        pthread_mutex_unlock(&u->mu);
        if (aborted)
            break;
        int idle, all_done;
        rc = wb_pump(u, final, heartbeat, 0, &idle, &all_done);
        last_data = djct_now_s();
        if (rc < 0) {
            if (rc != DJCT_ETIMEOUT)
                set_fatal(u, rc);
            break;
        }
        if (final && (all_done || idle))
            break;
    }
out:
    pthread_mutex_lock(&u->mu);
    u->done = 1;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int wb_uploader_create(wb_uploader **out, const wb_config *cfg)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(cfg && cfg->dir && cfg->base_url);
    wb_uploader *u = calloc(1, sizeof(*u));
    if (!u)
        return djct_error_oom();
    u->cfg = *cfg;
    u->dir = dup_or_null(cfg->dir);
    u->base_url = dup_or_null(cfg->base_url);
    u->api_key = dup_or_null(cfg->api_key);
    u->entity_override = dup_or_null(cfg->entity);
    u->project_override = dup_or_null(cfg->project);
    u->ca_bundle = dup_or_null(cfg->ca_bundle);
    size_t bl = strlen(u->base_url);
    while (bl > 0 && u->base_url[bl - 1] == '/')
        u->base_url[--bl] = '\0';
    if (u->cfg.http_timeout_s <= 0)
        u->cfg.http_timeout_s = 60;
    if (u->cfg.retry_min_s <= 0)
        u->cfg.retry_min_s = 2;
    if (u->cfg.retry_max_s <= 0)
        u->cfg.retry_max_s = 60;
    if (u->cfg.init_timeout_s <= 0)
        u->cfg.init_timeout_s = 90;
    if (u->cfg.batch_interval_s <= 0)
        u->cfg.batch_interval_s = 15;
    if (u->cfg.heartbeat_s <= 0)
        u->cfg.heartbeat_s = 30;
    pthread_mutex_init(&u->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&u->cv, &ca);
    pthread_condattr_destroy(&ca);
    u->complete_wanted = 1;
    *out = u;
    return 0;
}

int wb_uploader_start(wb_uploader *u)
{
    if (pthread_create(&u->thread, NULL, uploader_main, u) != 0)
        return djct_error_set(DJCT_ERROR, "cannot start the wandb uploader thread: %s", strerror(errno));
    u->started = 1;
    return 0;
}

void wb_uploader_notify(wb_uploader *u, size_t new_bytes)
{
    pthread_mutex_lock(&u->mu);
    /* the first bytes of a batch wake the thread, which may be asleep until the next heartbeat, so
     * that it times the batch interval from now; a big batch goes at once */
    int first = u->pending_bytes == 0;
    u->pending_bytes += new_bytes ? new_bytes : 1;
    if (first || u->pending_bytes >= (u->cfg.big_batch_bytes ? u->cfg.big_batch_bytes : (256u << 10)))
        pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

void wb_uploader_config_changed(wb_uploader *u)
{
    pthread_mutex_lock(&u->mu);
    u->config_dirty = 1;
    pthread_mutex_unlock(&u->mu);
}

void wb_uploader_preempting(wb_uploader *u)
{
    pthread_mutex_lock(&u->mu);
    u->preempt_pending = 1;
    u->preempted = 1;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

int wb_uploader_finish(wb_uploader *u, int complete, int exit_code, double timeout_s)
{
    double deadline = djct_now_s() + (timeout_s > 0 ? timeout_s : 60);
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    u->complete_wanted = complete;
    u->exit_code = exit_code;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    int rc = 0;
    if (u->started) {
        pthread_mutex_lock(&u->mu);
        while (!u->done) {
            double left = deadline - djct_now_s();
            if (left <= 0)
                break;
            struct timespec ts = wb_time_after(left);
            pthread_cond_timedwait(&u->cv, &u->mu, &ts);
        }
        int timed_out = !u->done;
        /* the time limit is up: interrupt a retry sleep or a transfer in flight */
        u->abort_now = 1;
        pthread_cond_broadcast(&u->cv);
        pthread_mutex_unlock(&u->mu);
        pthread_join(u->thread, NULL);
        u->started = 0;
        if (timed_out) {
            pthread_mutex_lock(&u->mu);
            if (u->last_fail[0])
                snprintf(u->cause, sizeof(u->cause), "%.900s, still failing when the %.0f s upload wait ended",
                         u->last_fail, timeout_s);
            else
                snprintf(u->cause, sizeof(u->cause), "the upload was still running when the %.0f s upload wait "
                         "ended", timeout_s);
            pthread_mutex_unlock(&u->mu);
            rc = djct_error_set(DJCT_ETIMEOUT, "wandb upload did not finish within %.0f s; the journal in %s is "
                                "complete: upload the rest with `djct_sync %s`", timeout_s, u->dir, u->dir);
        }
    } else {
        /* synchronous (djct_sync): same steps on this thread, bounded by the deadline */
        rc = wb_ensure_upserted(u, deadline);
        while (rc == 0) {
            int idle, all_done;
            rc = wb_pump(u, 1, 0, deadline, &idle, &all_done);
            if (rc == 0 && (all_done || idle))
                break;
        }
        if (rc < 0 && !wb_cancelled(u))
            set_fatal(u, rc);
        else if (rc < 0) {
            pthread_mutex_lock(&u->mu);
            snprintf(u->cause, sizeof(u->cause), "%s", djct_last_error());
            pthread_mutex_unlock(&u->mu);
        }
    }
    pthread_mutex_lock(&u->mu);
    if (rc == 0 && u->state == WB_FATAL)
        rc = djct_error_set(DJCT_EIO, "%s", u->fatal);
    else if (rc == 0 && complete && !u->preempted && !u->complete_sent)
        rc = djct_error_set(DJCT_EIO, "wandb upload incomplete; upload the rest with `djct_sync %s`", u->dir);
    pthread_mutex_unlock(&u->mu);
    return rc;
}

void wb_uploader_stats(wb_uploader *u, int64_t *acked, int64_t *sent, int *state)
{
    pthread_mutex_lock(&u->mu);
    if (acked)
        *acked = u->acked;
    if (sent)
        *sent = u->sent;
    if (state)
        *state = u->state;
    pthread_mutex_unlock(&u->mu);
}

void wb_uploader_report(wb_uploader *u, wb_report *r)
{
    memset(r, 0, sizeof(*r));
    /* is the summary the server acknowledged the one in the journal? (the thread has stopped) */
    char *summary = NULL;
    int have_summary = wb_read_summary(u->dir, &summary) == 0;
    djct_error_clear();
    r->summary_pending = have_summary && (!u->summary_acked || strcmp(u->summary_acked, summary) != 0);
    free(summary);
    pthread_mutex_lock(&u->mu);
    r->acked = u->acked;
    r->sent = u->sent;
    r->config_pending = !u->upserted || u->config_dirty;
    r->complete_sent = u->complete_sent;
    r->preempted = u->preempted;
    r->state = u->state;
    snprintf(r->cause, sizeof(r->cause), "%s", u->cause[0] ? u->cause : u->last_fail);
    pthread_mutex_unlock(&u->mu);
}

void wb_uploader_fatal(wb_uploader *u, char *buf, size_t size)
{
    pthread_mutex_lock(&u->mu);
    snprintf(buf, size, "%s", u->fatal);
    pthread_mutex_unlock(&u->mu);
}

void wb_uploader_free(wb_uploader *u)
{
    if (!u)
        return;
    if (u->started) {
        pthread_mutex_lock(&u->mu);
        u->abort_now = 1;
        u->stop = 1;
        pthread_cond_broadcast(&u->cv);
        pthread_mutex_unlock(&u->mu);
        pthread_join(u->thread, NULL);
    }
    if (u->curl)
        curl_easy_cleanup(u->curl);
    if (u->reader_open)
        jr_reader_close(&u->reader);
    if (u->api_key) {
        memset(u->api_key, 0, strlen(u->api_key));
        free(u->api_key);
    }
    free(u->dir);
    free(u->base_url);
    free(u->entity_override);
    free(u->project_override);
    free(u->ca_bundle);
    free(u->entity);
    free(u->project);
    free(u->storage_id);
    free(u->summary_acked);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u);
}

/* ---- what is left ------------------------------------------------------------------------------ */

/* `cmd 'dir'`, quoted for a POSIX shell when the path needs it */
static void shell_command(char *out, size_t size, const char *cmd, const char *arg)
{
    int plain = *arg != '\0';
    for (const char *p = arg; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+:=@%,", *p) != NULL;
    size_t n = (size_t)snprintf(out, size, "%s %s", cmd, plain ? arg : "'");
    for (const char *p = arg; !plain && *p && n + 5 < size; p++) {
        if (*p == '\'') {
            memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            out[n++] = *p;
        }
    }
    if (!plain && n + 2 <= size) {
        out[n++] = '\'';
        out[n] = '\0';
    }
}

void wb_upload_fill(djct_log_upload *out, int mode, const char *dir, wb_uploader *u, int complete_wanted)
{
    memset(out, 0, sizeof(*out));
    out->mode = mode;
    if (mode == DJCT_LOG_MODE_DISABLED || !dir)
        return;
    snprintf(out->dir, sizeof(out->dir), "%s", dir);
    shell_command(out->sync_command, sizeof(out->sync_command), "djct_sync", dir);
    out->rows = wb_journal_lines(dir);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, JR_SUMMARY);
    int have_summary = access(path, F_OK) == 0;
    if (u) {
        wb_report w;
        wb_uploader_report(u, &w);
        out->rows_acked = w.acked;
        out->rows_sent = w.sent;
        out->config_pending = w.config_pending;
        out->summary_pending = w.summary_pending;
        out->preempted = w.preempted || !complete_wanted;
        out->complete_pending = !out->preempted && !w.complete_sent;
        snprintf(out->error, sizeof(out->error), "%s", w.cause);
    } else { /* offline: what an earlier job or djct_sync uploaded, by upload-state.json */
        cJSON *st = NULL;
        if (jr_read_json(dir, JR_UPLOAD, &st) == 0) {
            cJSON *a = cJSON_GetObjectItemCaseSensitive(st, "history_acked");
            out->rows_acked = cJSON_IsNumber(a) ? (int64_t)a->valuedouble : 0;
            cJSON_Delete(st);
        }
        out->config_pending = 1;
        out->summary_pending = have_summary;
        out->preempted = !complete_wanted;
        out->complete_pending = complete_wanted;
    }
    djct_error_clear();
    if (out->rows_acked > out->rows)
        out->rows_acked = out->rows;
    if (out->rows_acked < 0)
        out->rows_acked = 0;
    out->rows_pending = out->rows - out->rows_acked;
    out->complete = out->rows_pending == 0 && !out->config_pending && !out->summary_pending && !out->complete_pending;
    if (out->complete || !u)
        out->error[0] = '\0';
}

