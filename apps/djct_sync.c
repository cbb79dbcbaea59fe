/* djct_sync: upload offline or partially uploaded djct run journals to wandb, e.g. from a login
 * node after the job ran on compute nodes without internet. Resumes where the server (and the
 * run's upload-state.json) left off; a re-send uses the same line offsets, so it is harmless.
 * Exit 0 all uploaded, 1 some run failed, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"

typedef struct {
    const char *name, *arg, *help;
} opt_row;

/* one table drives parsing and --help */
static const opt_row OPTS[] = {
    {"--base-url", "URL", "wandb server (default: the run's, else $WANDB_BASE_URL, else https://api.wandb.ai)"},
    {"--entity", "NAME", "upload into this entity instead of the run's"},
    {"--project", "NAME", "upload into this project instead of the run's"},
    {"--timeout", "SECONDS", "give up on one run after this long (default 600)"},
    {"--retry-min", "SECONDS", "first retry wait (default 2)"},
    {"--retry-max", "SECONDS", "longest retry wait (default 60)"},
    {"--ca-bundle", "FILE", "verify the server with the CAs in this PEM file (default: $REQUESTS_CA_BUNDLE, "
                            "$CURL_CA_BUNDLE, $SSL_CERT_FILE, else the system's)"},
    {"--insecure", NULL, "do not verify TLS certificates (only for a self-hosted server you trust)"},
    {"--version", NULL, "print the version"},
    {"--help", NULL, "this text"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: djct_sync [options] RUN_DIR...\n"
               "Upload djct run directories (<log dir>/<run id>/) to wandb. The API key comes from\n"
               "WANDB_API_KEY, ~/private/wandb_api.sh or ~/.netrc (machine = the server's host).\n\n");
    for (size_t i = 0; i < sizeof(OPTS) / sizeof(OPTS[0]); i++)
        fprintf(f, "  %-12s %-8s %s\n", OPTS[i].name, OPTS[i].arg ? OPTS[i].arg : "", OPTS[i].help);
}

static int parse_seconds(const char *opt, const char *v, double *out)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || *end || d <= 0) {
        fprintf(stderr, "djct_sync: %s needs a positive number of seconds, got '%s'\n", opt, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

int main(int argc, char **argv)
{
    djct_sync_options o = DJCT_SYNC_OPTIONS_INIT;
    const char **dirs = calloc((size_t)argc, sizeof(char *));
    int ndirs = 0;
    if (!dirs)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(dirs);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("djct_sync %s\n", djct_version());
            free(dirs);
            return 0;
        } else if (!strcmp(a, "--base-url") && v) {
            o.base_url = v, i++;
        } else if (!strcmp(a, "--entity") && v) {
            o.entity = v, i++;
        } else if (!strcmp(a, "--project") && v) {
            o.project = v, i++;
        } else if (!strcmp(a, "--timeout")) {
            bad = parse_seconds(a, v, &o.timeout_s), i++;
        } else if (!strcmp(a, "--retry-min")) {
            bad = parse_seconds(a, v, &o.retry_min_s), i++;
        } else if (!strcmp(a, "--retry-max")) {
            bad = parse_seconds(a, v, &o.retry_max_s), i++;
        } else if (!strcmp(a, "--ca-bundle") && v) {
            o.ca_bundle = v, i++;
        } else if (!strcmp(a, "--insecure")) {
            o.insecure = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "djct_sync: unknown option %s (or it lacks its value); see djct_sync --help\n", a);
            bad = 1;
        } else {
            dirs[ndirs++] = a;
        }
        if (bad) {
            free(dirs);
            return 2;
        }
    }
    if (ndirs == 0) {
        usage(stderr);
        free(dirs);
        return 2;
    }
    int failed = 0;
    for (int i = 0; i < ndirs; i++) {
        int64_t sent = 0;
        int rc = djct_log_sync(dirs[i], &o, &sent);
        if (rc == 0) {
            printf("djct_sync: %s: uploaded %lld history lines; run complete\n", dirs[i], (long long)sent);
        } else {
            fprintf(stderr, "djct_sync: %s: %s\n", dirs[i], djct_last_error());
            failed = 1;
        }
    }
    free(dirs);
    return failed;
}
