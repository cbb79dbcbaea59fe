/* The two requests the uploader makes and the state they advance: UpsertBucket (the run's record
 * and config, GraphQL), the upload state in upload-state.json with the offset a resumed upload
 * starts from, and one file_stream request (history rows from the acknowledged offset, the
 * summary, preempting, complete). Invariant: a history line is sent at the offset equal to its
 * line index in history.jsonl, and the acknowledged count only advances after a 2xx, so any
 * re-send (retry, resumed job, djct_sync) is idempotent on the server. */
#include "wandb_int.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UpsertBucket --------------------------------------------------------------------------- */

static const char *UPSERT_MUTATION =
    "mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, "
    "$groupName: String, $description: String, $displayName: String, $notes: String, $commit: String, "
    "$config: JSONString, $host: String, $debug: Boolean, $program: String, $repo: String, "
    "$jobType: String, $state: String, $sweep: String, $tags: [String!], $summaryMetrics: JSONString) "
    "{ upsertBucket(input: {id: $id, name: $name, groupName: $groupName, modelName: $project, "
    "entityName: $entity, description: $description, displayName: $displayName, notes: $notes, "
    "config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program, "
    "jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags, "
    "summaryMetrics: $summaryMetrics}) { bucket { id name displayName description config sweepName "
    "project { id name entity { id name } } historyLineCount } inserted } }";

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* config.json {k: v} -> JSON string {k: {"value": v}, "_wandb": {"value": {"t": {}}}} */
static char *wandb_config_string(const char *dir)
{
    cJSON *cfg = NULL, *out = cJSON_CreateObject();
    jr_read_json(dir, JR_CONFIG, &cfg);
    for (cJSON *it = cfg ? cfg->child : NULL; it; it = it->next) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddItemToObject(w, "value", cJSON_Duplicate(it, 1));
        cJSON_AddItemToObject(out, it->string, w);
    }
    cJSON *t = cJSON_CreateObject(), *v = cJSON_CreateObject();
    cJSON_AddItemToObject(t, "t", cJSON_CreateObject());
    cJSON_AddItemToObject(v, "value", t);
    cJSON_AddItemToObject(out, "_wandb", v);
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    cJSON_Delete(cfg);
    return s;
}

static int do_upsert(wb_uploader *u, double deadline, int64_t *history_line_count)
{
    cJSON *run = NULL;
    int rc = jr_read_json(u->dir, JR_RUN, &run);
    if (rc != 0)
        return rc < 0 ? rc
                      : djct_error_set(DJCT_EINVAL, "'%s' has no %s: not a djct run directory", u->dir, JR_RUN);
    const char *run_id = jstr(run, "run_id");
    if (!run_id) {
        cJSON_Delete(run);
        return djct_error_set(DJCT_EINVAL, "%s/%s has no run_id; restore the file", u->dir, JR_RUN);
    }
    cJSON *body = cJSON_CreateObject(), *vars = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "query", UPSERT_MUTATION);
    add_str_or_null(vars, "id", u->storage_id);
    cJSON_AddStringToObject(vars, "name", run_id);
    add_str_or_null(vars, "project", u->project_override ? u->project_override : jstr(run, "project"));
    add_str_or_null(vars, "entity", u->entity_override ? u->entity_override : jstr(run, "entity"));
    add_str_or_null(vars, "groupName", jstr(run, "group"));
    add_str_or_null(vars, "displayName", jstr(run, "name"));
    add_str_or_null(vars, "notes", jstr(run, "notes"));
    add_str_or_null(vars, "jobType", jstr(run, "job_type"));
    add_str_or_null(vars, "host", jstr(run, "host"));
    cJSON *tags = cJSON_GetObjectItemCaseSensitive(run, "tags");
    if (cJSON_IsArray(tags))
        cJSON_AddItemToObject(vars, "tags", cJSON_Duplicate(tags, 1));
    char *cfg = wandb_config_string(u->dir);
    if (cfg)
        cJSON_AddStringToObject(vars, "config", cfg);
    free(cfg);
    cJSON_AddItemToObject(body, "variables", vars);
    cJSON_AddStringToObject(body, "operationName", "UpsertBucket");
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    cJSON_Delete(run);
    if (!text)
        return djct_error_oom();
    char url[4096];
    snprintf(url, sizeof(url), "%s/graphql", u->base_url);
    wb_buf reply = {0};
    rc = wb_post_retry(u, WB_KIND_UPSERT, "UpsertBucket", url, text, deadline, &reply);
    free(text);
    if (rc < 0) {
        free(reply.data);
        return rc;
    }
    cJSON *r = reply.data ? cJSON_Parse(reply.data) : NULL;
    free(reply.data);
    cJSON *errs = cJSON_GetObjectItemCaseSensitive(r, "errors");
    cJSON *bucket = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "data"), "upsertBucket"), "bucket");
    if (!bucket || (cJSON_IsArray(errs) && cJSON_GetArraySize(errs) > 0)) {
        cJSON *e0 = cJSON_GetArrayItem(errs, 0);
        const char *msg = e0 ? (cJSON_IsString(e0) ? e0->valuestring : jstr(e0, "message")) : NULL;
        rc = djct_error_set(DJCT_EIO, "UpsertBucket to %s: the server answered without a run (%s)", u->base_url,
                            msg ? msg : "no data.upsertBucket.bucket");
        cJSON_Delete(r);
        return rc;
    }
    cJSON *proj = cJSON_GetObjectItemCaseSensitive(bucket, "project");
    const char *id = jstr(bucket, "id"), *pname = jstr(proj, "name");
    const char *ename = jstr(cJSON_GetObjectItemCaseSensitive(proj, "entity"), "name");
    if (id) {
        free(u->storage_id);
        u->storage_id = strdup(id);
    }
    /* canonical entity/project go into the file_stream URL */
    if (pname) {
        free(u->project);
        u->project = strdup(pname);
    }
    if (ename) {
        free(u->entity);
        u->entity = strdup(ename);
    }
    cJSON *hlc = cJSON_GetObjectItemCaseSensitive(bucket, "historyLineCount");
    *history_line_count = cJSON_IsNumber(hlc) ? (int64_t)hlc->valuedouble : 0;
    cJSON_Delete(r);
    if (!u->entity || !u->project)
        return djct_error_set(DJCT_EIO, "UpsertBucket to %s: reply lacks project/entity names", u->base_url);
    return 0;
}

/* ---- upload state ----------------------------------------------------------------------------- */

int wb_read_summary(const char *dir, char **out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, JR_SUMMARY);
    int rc = jr_read_file(path, out, NULL);
    if (rc == 0) {
        char *s = *out;
        size_t l = strlen(s);
        while (l > 0 && (s[l - 1] == '\n' || s[l - 1] == ' '))
            s[--l] = '\0';
    }
    return rc;
}

int64_t wb_journal_lines(const char *dir)
{
    int64_t lines = 0;
    jr_reader r;
    if (jr_reader_open(&r, dir) == 0) {
        jr_reader_seek(&r, INT64_MAX); /* counts the complete lines; fails by design */
        lines = r.line;
        jr_reader_close(&r);
    }
    return lines;
}

void wb_save_state(wb_uploader *u)
{
    cJSON *s = cJSON_CreateObject();
    int64_t acked;
    char fatal[1024];
    pthread_mutex_lock(&u->mu);
    acked = u->acked;
    snprintf(fatal, sizeof(fatal), "%s", u->fatal);
    pthread_mutex_unlock(&u->mu);
    cJSON_AddNumberToObject(s, "history_acked", (double)acked);
    add_str_or_null(s, "storage_id", u->storage_id);
    add_str_or_null(s, "entity", u->entity);
    add_str_or_null(s, "project", u->project);
    cJSON_AddBoolToObject(s, "summary_acked", u->summary_acked != NULL);
    cJSON_AddBoolToObject(s, "complete_sent", u->complete_sent);
    add_str_or_null(s, "fatal", fatal);
    char *t = cJSON_Print(s);
    cJSON_Delete(s);
    if (t) {
        jr_write_atomic(u->dir, JR_UPLOAD, t, 1);
        free(t);
    }
}

/* the history offset to resume from: the local ack if any (never beyond the server), else the
 * server's line count, never beyond the journal */
static int64_t resume_line(wb_uploader *u, int64_t hlc)
{
    cJSON *st = NULL;
    int64_t local = -1, lines;
    if (jr_read_json(u->dir, JR_UPLOAD, &st) == 0) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(st, "history_acked");
        if (cJSON_IsNumber(a))
            local = (int64_t)a->valuedouble;
        cJSON_Delete(st);
    }
    lines = wb_journal_lines(u->dir);
    djct_error_clear();
    int64_t start = local >= 0 ? (local < hlc ? local : hlc) : hlc;
    return start < lines ? start : lines;
}

int wb_ensure_upserted(wb_uploader *u, double deadline)
{
    if (u->upserted)
        return 0;
    int64_t hlc = 0;
    int rc = do_upsert(u, deadline, &hlc);
    if (rc < 0)
        return rc;
    u->upserted = 1;
    int64_t start = resume_line(u, hlc);
    pthread_mutex_lock(&u->mu);
    u->acked = start;
    u->start_line = start;
    u->config_dirty = 0;
    if (u->state == WB_IDLE)
        u->state = WB_STREAMING;
    pthread_mutex_unlock(&u->mu);
    wb_save_state(u);
    return 0;
}

/* ---- one file_stream request ------------------------------------------------------------------ */

int wb_pump(wb_uploader *u, int final, int heartbeat, double deadline, int *idle, int *all_done)
{
    int rc;
    *idle = 0;
    *all_done = 0;
    if (!u->reader_open) {
        rc = jr_reader_open(&u->reader, u->dir);
        if (rc < 0)
            return rc;
        u->reader_open = rc == 0;
    }
    pthread_mutex_lock(&u->mu);
    int64_t acked = u->acked;
    int preempt = u->preempt_pending, complete_wanted = u->complete_wanted && !u->preempted;
    int exit_code = u->exit_code, cfg_dirty = u->config_dirty;
    u->pending_bytes = 0;
    pthread_mutex_unlock(&u->mu);

    if (cfg_dirty) {
        int64_t ignored;
        if ((rc = do_upsert(u, deadline, &ignored)) < 0)
            return rc;
        pthread_mutex_lock(&u->mu);
        u->config_dirty = 0;
        pthread_mutex_unlock(&u->mu);
    }

    cJSON *lines = NULL;
    int64_t n = 0;
    long end_pos = 0;
    if (u->reader_open) {
        if ((rc = jr_reader_seek(&u->reader, acked)) < 0)
            return rc;
        size_t maxb = u->cfg.max_request_bytes ? u->cfg.max_request_bytes : (4u << 20);
        if ((rc = jr_reader_batch(&u->reader, maxb, &lines, &n, &end_pos)) < 0)
            return rc;
    }
    char *summary = NULL;
    if (wb_read_summary(u->dir, &summary) == 0 && u->summary_acked && strcmp(u->summary_acked, summary) == 0) {
        free(summary);
        summary = NULL;
    }
    /* is there more history after this batch? then `complete` waits for the next request */
    int more = 0;
    if (u->reader_open && n > 0) {
        jr_reader probe = u->reader;
        long save = u->reader.pos;
        probe.pos = end_pos;
        cJSON *x = NULL;
        int64_t m = 0;
        long e;
        jr_reader_batch(&probe, 1, &x, &m, &e);
        cJSON_Delete(x);
        u->reader.pos = save;
        more = m > 0;
    }
    int send_complete = final && complete_wanted && !more && !u->complete_sent;
    if (n == 0 && !summary && !preempt && !send_complete && !heartbeat) {
        *idle = 1;
        *all_done = final;
        return 0;
    }
    cJSON *body = cJSON_CreateObject(), *files = cJSON_CreateObject();
    if (n > 0) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "offset", (double)acked);
        cJSON_AddItemToObject(h, "content", lines);
        cJSON_AddItemToObject(files, "wandb-history.jsonl", h);
    }
    if (summary) {
        cJSON *s = cJSON_CreateObject(), *c = cJSON_CreateArray();
        cJSON_AddNumberToObject(s, "offset", 0);
        cJSON_AddItemToArray(c, cJSON_CreateString(summary));
        cJSON_AddItemToObject(s, "content", c);
        cJSON_AddItemToObject(files, "wandb-summary.json", s);
    }
    if (files->child)
        cJSON_AddItemToObject(body, "files", files);
    else
        cJSON_Delete(files);
    if (preempt)
        cJSON_AddTrueToObject(body, "preempting");
    if (send_complete) {
        cJSON_AddTrueToObject(body, "complete");
        cJSON_AddNumberToObject(body, "exitcode", exit_code);
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) {
        free(summary);
        return djct_error_oom();
    }
    char *e = curl_easy_escape(NULL, u->entity, 0), *p = curl_easy_escape(NULL, u->project, 0);
    cJSON *run = NULL;
    jr_read_json(u->dir, JR_RUN, &run);
    char *r = curl_easy_escape(NULL, run && jstr(run, "run_id") ? jstr(run, "run_id") : "", 0);
    cJSON_Delete(run);
    char url[4096];
    snprintf(url, sizeof(url), "%s/files/%s/%s/%s/file_stream", u->base_url, e, p, r);
    curl_free(e);
    curl_free(p);
    curl_free(r);
    wb_buf reply = {0};
    rc = wb_post_retry(u, WB_KIND_FILESTREAM, "file_stream", url, text, deadline, &reply);
    free(text);
    u->last_send = djct_now_s();
    if (rc < 0) {
        free(summary);
        free(reply.data);
        return rc;
    }
    cJSON *rj = reply.data ? cJSON_Parse(reply.data) : NULL;
    int stopped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rj, "stopped"));
    cJSON_Delete(rj);
    free(reply.data);
    if (summary) {
        free(u->summary_acked);
        u->summary_acked = summary;
    }
    if (n > 0) {
        u->reader.pos = end_pos;
        u->reader.line = acked + n;
    }
    pthread_mutex_lock(&u->mu);
    u->acked = acked + n;
    u->sent += n;
    if (preempt)
        u->preempt_pending = 0;
    if (send_complete) {
        u->complete_sent = 1;
        u->state = WB_COMPLETE;
    }
    if (stopped && !strstr(u->fatal, "stopped"))
        snprintf(u->fatal, sizeof(u->fatal), "the run was stopped from the wandb UI");
    pthread_mutex_unlock(&u->mu);
    if (n > 0 || send_complete || summary)
        wb_save_state(u);
    *all_done = final && !more && (send_complete || !complete_wanted) && n == 0;
    if (final && !more && send_complete)
        *all_done = 1;
    return 0;
}
