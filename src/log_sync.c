/* djct_log_sync: upload a run directory's journal after the fact (djct_sync). No MPI, no state
 * of the singleton: the run's record (run.json), the key lookup and the uploader's synchronous
 * path. */
#include "djct/log.h"
#include "djct/error.h"
#include "djct_int.h"
#include "journal_int.h"
#include "wandb_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int djct_log_sync(const char *run_dir, const djct_sync_options *opts, int64_t *lines_sent)
{
    djct_sync_options defaults = DJCT_SYNC_OPTIONS_INIT;
    const djct_sync_options *o = opts ? opts : &defaults;
    DJCT_CHECK_ARG(run_dir);
    DJCT_CHECK_VERSION(opts, DJCT_SYNC_OPTIONS_VERSION, "djct_sync_options");
    if (lines_sent)
        *lines_sent = 0;
    cJSON *run = NULL;
    int rc = jr_read_json(run_dir, JR_RUN, &run);
    if (rc != 0)
        return rc < 0 ? djct_error_prefix("%s", run_dir)
                      : djct_error_set(DJCT_EINVAL, "'%s' has no %s: not a djct run directory (expected "
                                       "<log dir>/<run id>/)", run_dir, JR_RUN);
    const char *base = o->base_url;
    cJSON *rb = cJSON_GetObjectItemCaseSensitive(run, "base_url");
    if (!base && cJSON_IsString(rb))
        base = rb->valuestring;
    if (!base)
        base = getenv("WANDB_BASE_URL");
    if (!base || !*base)
        base = WB_DEFAULT_BASE_URL;
    char *key = NULL;
    const char *src;
    char w[1024] = "";
    if ((rc = wb_resolve_key(base, o->api_key, &key, &src, w, sizeof(w))) < 0) {
        cJSON_Delete(run);
        return rc;
    }
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
    int finished = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(run, "finished"));
    int preempted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(run, "preempted"));
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
    wb_uploader *u = NULL;
    wc.insecure = o->insecure;
    wc.ca_bundle = ca;
    rc = wb_uploader_create(&u, &wc);
    memset(key, 0, strlen(key));
    free(key);
    cJSON_Delete(run);
    if (rc < 0)
        return rc;
    rc = wb_uploader_finish(u, !(preempted && !finished), exit_code, total);
    if (lines_sent)
        wb_uploader_stats(u, NULL, lines_sent, NULL);
    wb_uploader_free(u);
    return rc;
}

