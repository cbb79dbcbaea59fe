/* djct_log_sync: upload a run directory's journal after the fact (djct_sync). No MPI, no state
 * of the singleton: the run's record (run.json), the key lookup and the uploader's synchronous
 * path. The base URL is the caller's, else $WANDB_BASE_URL, else the run's record: a user of a
 * self-hosted server names it once in the environment and their key never goes elsewhere. */
#include "djct/log.h"
#include "djct/error.h"
#include "djct_int.h"
#include "journal_int.h"
#include "wandb_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a URL without its trailing '/', for comparing and showing */
static void trim_url(char *dst, size_t size, const char *url)
{
    snprintf(dst, size, "%s", url);
    for (size_t l = strlen(dst); l > 0 && dst[l - 1] == '/'; l--)
        dst[l - 1] = '\0';
}

int djct_log_sync(djct_log_upload *report, const char *run_dir, const djct_sync_options *opts)
{
    djct_sync_options defaults = DJCT_SYNC_OPTIONS_INIT;
    const djct_sync_options *o = opts ? opts : &defaults;
    DJCT_CHECK_ARG(run_dir);
    DJCT_CHECK_VERSION(opts, DJCT_SYNC_OPTIONS_VERSION, "djct_sync_options");
    if (report) {
        memset(report, 0, sizeof(*report));
        report->mode = DJCT_LOG_MODE_DISABLED;
    }
    cJSON *run = NULL;
    int rc = jr_read_json(run_dir, JR_RUN, &run);
    if (rc != 0)
        return rc < 0 ? djct_error_prefix("%s", run_dir)
                      : djct_error_set(DJCT_EINVAL, "'%s' has no %s: not a djct run directory (expected "
                                       "<log dir>/<run id>/)", run_dir, JR_RUN);
    int finished = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(run, "finished"));
    int preempted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(run, "preempted"));
    int complete_wanted = !(preempted && !finished);
    if (report) /* what is left before anything is sent: also the answer when nothing can be */
        wb_upload_fill(report, DJCT_LOG_MODE_OFFLINE, run_dir, NULL, complete_wanted);
    /* the base URL: the caller's, else $WANDB_BASE_URL, else the run's record, else the default */
    char base[2048], recorded[2048] = "";
    const char *source, *env = getenv("WANDB_BASE_URL");
    cJSON *rb = cJSON_GetObjectItemCaseSensitive(run, "base_url");
    if (cJSON_IsString(rb) && rb->valuestring[0])
        trim_url(recorded, sizeof(recorded), rb->valuestring);
    if (o->base_url && *o->base_url) {
        trim_url(base, sizeof(base), o->base_url);
        source = "given";
    } else if (env && *env) {
        trim_url(base, sizeof(base), env);
        source = "WANDB_BASE_URL";
    } else if (recorded[0]) {
        trim_url(base, sizeof(base), recorded);
        source = "the run's record";
    } else {
        trim_url(base, sizeof(base), WB_DEFAULT_BASE_URL);
        source = "the default";
    }
    if (recorded[0] && strcmp(base, recorded) != 0)
        wb_notef(o->note, o->note_user, "note: uploading to %s (%s), not to %s, which the run recorded", base, source, recorded);
    char host[256];
    if (!o->insecure && wb_plain_http_remote(base, host, sizeof(host))) {
        cJSON_Delete(run);
        return djct_error_set(DJCT_EINVAL, "%s: refusing to send the API key over plain http to %s (%s, from %s), "
                              "which is not a loopback address; use https, or --insecure (insecure = 1) for a "
                              "server you trust on a private network", run_dir, host, base, source);
    }
    char *key = NULL;
    const char *src;
    char w[1024] = "";
    if ((rc = wb_resolve_key(base, o->api_key, &key, &src, w, sizeof(w))) < 0) {
        cJSON_Delete(run);
        return rc;
    }
    for (char *save = NULL, *line = strtok_r(w, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        wb_notef(o->note, o->note_user, "warning: %s", line);
    if (!key) {
        rc = djct_error_set(DJCT_EINVAL, "%s: no wandb API key for %s; set WANDB_API_KEY, ~/private/wandb_api.sh "
                            "or ~/.netrc", run_dir, base);
        cJSON_Delete(run);
        return rc;
    }
    const char *ca, *ca_source;
    if ((rc = wb_resolve_ca(o->ca_bundle, &ca, &ca_source)) < 0) {
        memset(key, 0, strlen(key));
        free(key);
        cJSON_Delete(run);
        return rc;
    }
    cJSON *ec = cJSON_GetObjectItemCaseSensitive(run, "exit_code");
    /* like `wandb sync`: a run that never finished is marked failed (exit code 1) */
    int exit_code = finished && cJSON_IsNumber(ec) ? (int)ec->valuedouble : 1;
    wb_config wc = {0};
    wc.dir = run_dir;
    wc.base_url = base;
    wc.api_key = key;
    wc.entity = o->entity;
    wc.project = o->project;
    wc.http_timeout_s = o->http_timeout_s;
    wc.retry_min_s = o->retry_min_s;
    wc.retry_max_s = o->retry_max_s;
    double total = o->timeout_s > 0 ? o->timeout_s : 600;
    wc.init_timeout_s = total;
    wc.insecure = o->insecure;
    wc.ca_bundle = ca;
    wc.note = o->note;
    wc.note_user = o->note_user;
    wc.cancel = o->cancel;
    wb_uploader *u = NULL;
    rc = wb_uploader_create(&u, &wc);
    memset(key, 0, strlen(key));
    free(key);
    cJSON_Delete(run);
    if (rc < 0)
        return rc;
    rc = wb_uploader_finish(u, complete_wanted, exit_code, total);
    if (report) {
        char keep[1024];
        int code = djct_last_error_code();
        snprintf(keep, sizeof(keep), "%s", djct_last_error());
        wb_upload_fill(report, DJCT_LOG_MODE_ONLINE, run_dir, u, complete_wanted);
        if (rc < 0)
            djct_error_set(code, "%s", keep);
    }
    wb_uploader_free(u);
    return rc;
}
