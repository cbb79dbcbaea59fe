/* djct_sync: upload offline or partially uploaded djct run journals to wandb, e.g. from a login
 * node after the job ran on compute nodes without internet. Resumes where the server (and the
 * run's upload-state.json) left off; a re-send uses the same line offsets, so it is harmless.
 * Exit 0 all uploaded, 1 some run failed, 2 usage. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"

#define PROG "djct_sync"

typedef struct {
    char *base_url, *entity, *project, *ca_bundle;
    double timeout_s, retry_min_s, retry_max_s;
    int insecure;
    char **dirs;
} cfg;

#define O(f) offsetof(cfg, f)
static const djct_opt T[] = {
    {"base-url", 0, DJCT_OPT_STRING, O(base_url), NULL, NULL, 0, 0, "URL",
     "wandb server (default: the run's, else $WANDB_BASE_URL, else https://api.wandb.ai)", "Options"},
    {"entity", 0, DJCT_OPT_STRING, O(entity), NULL, NULL, 0, 0, "NAME", "upload into this entity instead of the run's", NULL},
    {"project", 0, DJCT_OPT_STRING, O(project), NULL, NULL, 0, 0, "NAME", "upload into this project instead of the run's", NULL},
    {"timeout", 0, DJCT_OPT_DOUBLE, O(timeout_s), "600", NULL, 1e-3, 1e9, "SECONDS", "give up on one run after this long", NULL},
    {"retry-min", 0, DJCT_OPT_DOUBLE, O(retry_min_s), "2", NULL, 1e-3, 1e9, "SECONDS", "first retry wait", NULL},
    {"retry-max", 0, DJCT_OPT_DOUBLE, O(retry_max_s), "60", NULL, 1e-3, 1e9, "SECONDS", "longest retry wait", NULL},
    {"ca-bundle", 0, DJCT_OPT_STRING, O(ca_bundle), NULL, NULL, 0, 0, "FILE",
     "verify the server with the CAs in this PEM file (default: $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE, "
     "$SSL_CERT_FILE, else the system's)", NULL},
    {"insecure", 0, DJCT_OPT_FLAG, O(insecure), "0", NULL, 0, 0, NULL,
     "do not verify TLS certificates (only for a self-hosted server you trust)", NULL},
    {"run-dir", 0, DJCT_OPT_ARGS, O(dirs), NULL, NULL, 1, 1e9, "RUN_DIR...", "run journals (<log dir>/<run id>/)",
     "Arguments"},
};
#define NT (sizeof(T) / sizeof(T[0]))

#define USAGE                                                                                 \
    "usage: " PROG " [options] RUN_DIR...\n"                                                  \
    "Upload djct run directories (<log dir>/<run id>/) to wandb. The API key comes from\n"    \
    "WANDB_API_KEY, ~/private/wandb_api.sh or ~/.netrc (machine = the server's host).\n"      \
    "exit status: 0 all uploaded, 1 some run failed, 2 usage error; -h, --help: this text; " \
    "--version: the version"

int main(int argc, char **argv)
{
    if (djct_opts_argv_has(argc, argv, "--help", "-h")) {
        djct_opts_print_help(T, NT, USAGE, stdout);
        return 0;
    }
    if (djct_opts_argv_has(argc, argv, "--version", NULL)) {
        printf(PROG " %s\n", djct_version());
        return 0;
    }
    cfg c;
    memset(&c, 0, sizeof(c));
    if (djct_opts_defaults(T, NT, &c) || djct_opts_parse_argv(T, NT, &c, argc, argv, NULL)) {
        fprintf(stderr, PROG ": %s\n", djct_last_error());
        djct_opts_free(T, NT, &c);
        return 2;
    }
    djct_sync_options o = DJCT_SYNC_OPTIONS_INIT;
    o.base_url = c.base_url;
    o.entity = c.entity;
    o.project = c.project;
    o.ca_bundle = c.ca_bundle;
    o.timeout_s = c.timeout_s;
    o.retry_min_s = c.retry_min_s;
    o.retry_max_s = c.retry_max_s;
    o.insecure = c.insecure;
    int failed = 0;
    for (char **d = c.dirs; *d; d++) {
        int64_t sent = 0;
        if (djct_log_sync(*d, &o, &sent) == 0) {
            printf(PROG ": %s: uploaded %lld history lines; run complete\n", *d, (long long)sent);
        } else {
            fprintf(stderr, PROG ": %s: %s\n", *d, djct_last_error());
            failed = 1;
        }
    }
    djct_opts_free(T, NT, &c);
    return failed;
}
