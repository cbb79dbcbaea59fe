/* The wandb client: HTTP with retries (libcurl), UpsertBucket, file_stream, and the uploader that
 * streams a run journal (the key and CA lookup is wandb_key.c). Invariant: a history line is sent at the offset equal to
 * its line index in history.jsonl, and the acknowledged count only advances after a 2xx, so any
 * re-send (retry, resumed job, djct_sync) is idempotent on the server. The key is only handed to
 * libcurl (Basic auth) and never formatted into a message or a file. */
#include "wandb_int.h"
#include "journal_int.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- HTTP ----------------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} wb_buf;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    wb_buf *b = ud;
    size_t n = sz * nm;
    if (b->len + n + 1 > (1u << 20))
        return n; /* replies we care about are tiny: keep the first MiB */
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    double *retry_after = ud;
    size_t n = sz * nm;
    if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        char v[128];
        size_t k = n - 12 < sizeof(v) - 1 ? n - 12 : sizeof(v) - 1;
        memcpy(v, p + 12, k);
        v[k] = '\0';
        char *end;
        double s = strtod(v, &end);
        if (end != v && s >= 0)
            *retry_after = s;
        else {
            time_t t = curl_getdate(v, NULL);
            if (t > 0)
                *retry_after = difftime(t, time(NULL)) > 0 ? difftime(t, time(NULL)) : 0;
        }
    }
    return n;
}

struct wb_uploader {
    wb_config cfg;             /* strings below are owned copies */
    char *dir, *base_url, *api_key, *entity_override, *project_override, *ca_bundle;
    CURL *curl;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* shared with the caller, under mu */
    int stop, abort_now, done, preempt_pending, preempted, config_dirty, complete_wanted, exit_code;
    size_t pending_bytes;
    int state;
    int64_t acked, sent;
    char fatal[1024];
    char cause[1024];          /* the fatal error alone, without what to do about it */
    char last_fail[1024];      /* the last failed attempt: what, where, why ("" after a success) */
    /* owned by the uploading thread */
    int upserted;
    char *entity, *project, *storage_id;
    int64_t start_line;
    jr_reader reader;
    int reader_open;
    char *summary_acked;
    double last_send;
    int complete_sent;
};

/* the caller's cancel flag is up (e.g. djct_sync's SIGINT handler) */
static int cancelled(const wb_uploader *u) { return u->cfg.cancel && *u->cfg.cancel; }

/* Sleep up to `s` seconds; returns 1 when aborted or cancelled. */
static int nap(wb_uploader *u, double s)
{
    double until = djct_now_s() + s;
    pthread_mutex_lock(&u->mu);
    while (!u->abort_now && !cancelled(u)) {
        double left = until - djct_now_s();
        if (left <= 0)
            break;
        if (u->cfg.cancel && left > 0.1) /* a signal handler cannot signal the condition: poll */
            left = 0.1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + left;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&u->cv, &u->mu, &ts);
    }
    int a = u->abort_now || cancelled(u);
    pthread_mutex_unlock(&u->mu);
    return a;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    wb_uploader *u = ud;
    return __atomic_load_n(&u->abort_now, __ATOMIC_RELAXED) || cancelled(u) ? 1 : 0;
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* One POST. Returns the HTTP status (0 for a transport failure, with curl's code in *cerr). */
static long http_post(wb_uploader *u, const char *url, const char *body, wb_buf *reply, double *retry_after,
                      CURLcode *cerr, char *errbuf)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_init_once);
    if (!u->curl && !(u->curl = curl_easy_init())) {
        *cerr = CURLE_FAILED_INIT;
        return 0;
    }
    CURL *c = u->curl;
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: djct/" DJCT_VERSION_STRING);
    reply->len = 0;
    if (reply->data)
        reply->data[0] = '\0';
    *retry_after = -1;
    errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERNAME, "api");
    curl_easy_setopt(c, CURLOPT_PASSWORD, u->api_key ? u->api_key : "");
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* never carry the key to another host */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(u->cfg.http_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(u->cfg.http_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, u->cfg.insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, u->cfg.insecure ? 0L : 2L);
    if (u->ca_bundle) { /* exactly these CAs: not also the compiled-in CA directory */
        curl_easy_setopt(c, CURLOPT_CAINFO, u->ca_bundle);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, retry_after);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, u);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    *cerr = curl_easy_perform(c);
    long status = 0;
    if (*cerr == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    return status;
}

enum { KIND_FILESTREAM, KIND_UPSERT };

#define TLS_HINT                                                                                   \
    "; the server's TLS certificate is not trusted: set ca_bundle (or REQUESTS_CA_BUNDLE, "        \
    "djct_sync --ca-bundle) to its CA's PEM file, or, for a server you trust, turn verification " \
    "off explicitly (insecure, djct_sync --insecure)"

/* §4 RetryMostFailures; UpsertBucket also retries 409 */
static int retryable(int kind, long status, CURLcode cerr)
{
    if (status == 0) {
        switch (cerr) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_TOO_MANY_REDIRECTS:
        case CURLE_LOGIN_DENIED:
            return 0;
        default:
            return 1;
        }
    }
    if (status >= 500)
        return status != 501;
    if (status >= 400) {
        switch (status) {
        case 409:
            return kind == KIND_UPSERT;
        case 400: case 401: case 403: case 404: case 410: case 413: case 422:
            return 0;
        default:
            return 1;
        }
    }
    return 1; /* 1xx/3xx: odd, try again */
}

static unsigned jitter_seed(void) { return (unsigned)(djct_now_s() * 1e6) ^ (unsigned)getpid(); }

static void set_last_fail(wb_uploader *u, const char *text)
{
    pthread_mutex_lock(&u->mu);
    snprintf(u->last_fail, sizeof(u->last_fail), "%.1000s", text);
    pthread_mutex_unlock(&u->mu);
}

/* a line for the caller's note callback (djct_sync prints them) */
static void note(wb_uploader *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(wb_uploader *u, const char *fmt, ...)
{
    if (!u->cfg.note)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    u->cfg.note(u->cfg.note_user, line);
}

/* POST with retries until a 2xx (0), a final status (DJCT_EIO), the deadline, an abort or the
 * caller's cancel flag (DJCT_ETIMEOUT). deadline 0: none. */
static int post_retry(wb_uploader *u, int kind, const char *what, const char *url, const char *body,
                      double deadline, wb_buf *reply)
{
    static _Thread_local unsigned seed;
    if (!seed)
        seed = jitter_seed();
    char errbuf[CURL_ERROR_SIZE];
    for (int attempt = 0;; attempt++) {
        double ra;
        CURLcode cerr;
        long st = http_post(u, url, body, reply, &ra, &cerr, errbuf);
        if (st >= 200 && st < 300) {
            set_last_fail(u, "");
            return 0;
        }
        char why[CURL_ERROR_SIZE + 64], fail[CURL_ERROR_SIZE + 4200];
        if (st)
            snprintf(why, sizeof(why), "HTTP %ld", st);
        else
            snprintf(why, sizeof(why), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cerr));
        snprintf(fail, sizeof(fail), "%s to %s: %s", what, u->base_url, why);
        set_last_fail(u, fail);
        if (cancelled(u))
            return djct_error_set(DJCT_ETIMEOUT, "%s, interrupted", fail);
        if (__atomic_load_n(&u->abort_now, __ATOMIC_RELAXED))
            return djct_error_set(DJCT_ETIMEOUT, "%s, aborted at the finish time limit", fail);
        if (!retryable(kind, st, cerr))
            return djct_error_set(DJCT_EIO, "%s, a final answer (not retried)%s", fail,
                                  st == 401 || st == 403                   ? "; check the API key"
                                  : cerr == CURLE_PEER_FAILED_VERIFICATION ? TLS_HINT
                                                                           : "");
        double wait;
        if (ra >= 0) {
            wait = ra < u->cfg.retry_max_s ? ra : u->cfg.retry_max_s;
        } else {
            double j = (double)rand_r(&seed) / ((double)RAND_MAX + 1.0);
            wait = u->cfg.retry_min_s * pow(2.0, attempt < 32 ? attempt : 32) * (1.0 + 0.25 * j);
            if (wait > u->cfg.retry_max_s)
                wait = u->cfg.retry_max_s;
        }
        double now = djct_now_s();
        if (deadline > 0 && now + wait > deadline)
            return djct_error_set(DJCT_ETIMEOUT, "%s, still failing after %d attempt%s", fail, attempt + 1,
                                  attempt ? "s" : "");
        if (deadline > 0)
            note(u, "%s; retry %d in %.1f s (giving up in %.0f s)", fail, attempt + 1, wait, deadline - now);
        else
            note(u, "%s; retry %d in %.1f s", fail, attempt + 1, wait);
        if (nap(u, wait))
            return djct_error_set(DJCT_ETIMEOUT, "%s, %s", fail,
                                  cancelled(u) ? "interrupted" : "aborted at the finish time limit");
    }
}

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
    rc = post_retry(u, KIND_UPSERT, "UpsertBucket", url, text, deadline, &reply);
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

static void save_state(wb_uploader *u)
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
    int64_t local = -1, lines = 0;
    if (jr_read_json(u->dir, JR_UPLOAD, &st) == 0) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(st, "history_acked");
        if (cJSON_IsNumber(a))
            local = (int64_t)a->valuedouble;
        cJSON_Delete(st);
    }
    jr_reader r;
    if (jr_reader_open(&r, u->dir) == 0) {
        jr_reader_seek(&r, INT64_MAX); /* counts the complete lines; fails by design */
        lines = r.line;
        jr_reader_close(&r);
    }
    djct_error_clear();
    int64_t start = local >= 0 ? (local < hlc ? local : hlc) : hlc;
    return start < lines ? start : lines;
}

static int ensure_upserted(wb_uploader *u, double deadline)
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
    save_state(u);
    return 0;
}

/* ---- one file_stream request ------------------------------------------------------------------ */

/* Send what is pending (history from acked, the summary if changed, preempting, and complete when
 * `final` and nothing else is left). *idle = 1 when there was nothing to send. */
static int pump(wb_uploader *u, int final, int heartbeat, double deadline, int *idle, int *all_done)
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
    char path[4096], *summary = NULL;
    snprintf(path, sizeof(path), "%s/%s", u->dir, JR_SUMMARY);
    if (jr_read_file(path, &summary, NULL) == 0) {
        size_t l = strlen(summary);
        while (l > 0 && (summary[l - 1] == '\n' || summary[l - 1] == ' '))
            summary[--l] = '\0';
        if (u->summary_acked && strcmp(u->summary_acked, summary) == 0) {
            free(summary);
            summary = NULL;
        }
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
    rc = post_retry(u, KIND_FILESTREAM, "file_stream", url, text, deadline, &reply);
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
        save_state(u);
    *all_done = final && !more && (send_complete || !complete_wanted) && n == 0;
    if (final && !more && send_complete)
        *all_done = 1;
    return 0;
}

static void set_fatal(wb_uploader *u, int rc)
{
    pthread_mutex_lock(&u->mu);
    snprintf(u->cause, sizeof(u->cause), "%s", djct_last_error());
    snprintf(u->fatal, sizeof(u->fatal), "%s; streaming stopped, the journal in %s is complete: upload it "
             "later with `djct_sync %s`", djct_last_error(), u->dir, u->dir);
    u->state = WB_FATAL;
    (void)rc;
    pthread_mutex_unlock(&u->mu);
    save_state(u);
}

/* ---- the thread -------------------------------------------------------------------------------- */

static void *uploader_main(void *arg)
{
    pthread_setname_np(pthread_self(), "djct-upload"); /* shown by top -H, ps -L, gdb */
    wb_uploader *u = arg;
    int rc = ensure_upserted(u, djct_now_s() + u->cfg.init_timeout_s);
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
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double w = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + (wake - t > 0 ? wake - t : 0.001);
            ts.tv_sec = (time_t)w;
            ts.tv_nsec = (long)((w - (double)ts.tv_sec) * 1e9);
            pthread_cond_timedwait(&u->cv, &u->mu, &ts);
        }
        int aborted = u->abort_now;
        pthread_mutex_unlock(&u->mu);
        if (aborted)
            break;
        int idle, all_done;
        rc = pump(u, final, heartbeat, 0, &idle, &all_done);
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
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double left = deadline - djct_now_s();
            if (left <= 0)
                break;
            double w = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + left;
            ts.tv_sec = (time_t)w;
            ts.tv_nsec = (long)((w - (double)ts.tv_sec) * 1e9);
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
        rc = ensure_upserted(u, deadline);
        while (rc == 0) {
            int idle, all_done;
            rc = pump(u, 1, 0, deadline, &idle, &all_done);
            if (rc == 0 && (all_done || idle))
                break;
        }
        if (rc < 0 && !cancelled(u))
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
    char path[4096], *summary = NULL;
    snprintf(path, sizeof(path), "%s/%s", u->dir, JR_SUMMARY);
    int have_summary = jr_read_file(path, &summary, NULL) == 0;
    if (have_summary) {
        size_t l = strlen(summary);
        while (l > 0 && (summary[l - 1] == '\n' || summary[l - 1] == ' '))
            summary[--l] = '\0';
    }
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
    jr_reader r;
    if (jr_reader_open(&r, dir) == 0) {
        jr_reader_seek(&r, INT64_MAX); /* counts the complete lines; fails by design */
        out->rows = r.line;
        jr_reader_close(&r);
    }
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

int wb_plain_http_remote(const char *url, char *host, size_t host_size)
{
    char h[256];
    if (strncasecmp(url, "http://", 7) != 0) {
        if (host && host_size)
            host[0] = '\0';
        return 0;
    }
    const char *p = url + 7;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (*p == '[') { /* [v6]:port */
        const char *e = memchr(p, ']', n);
        n = e ? (size_t)(e - p - 1) : n - 1;
        p++;
    } else {
        const char *c = memchr(p, ':', n);
        if (c)
            n = (size_t)(c - p);
    }
    snprintf(h, sizeof(h), "%.*s", (int)(n < sizeof(h) ? n : sizeof(h) - 1), p);
    if (host)
        snprintf(host, host_size, "%s", h);
    int loopback = !strcasecmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1");
    return !loopback;
}
