/* djct_sync: upload offline or partially uploaded djct run journals to wandb, e.g. from a login
 * node after the job ran on compute nodes without internet. Resumes where the server (and the
 * run's upload-state.json) left off; a re-send uses the same line offsets, so it is harmless.
 * The server is --base-url, else $WANDB_BASE_URL, else the run's record; every retry is a line, and
 * the end says what was sent and what is left. Exit 0 all uploaded, 1 some run failed, 2 usage,
 * 130 interrupted by SIGINT (what was sent stays sent; running it again continues). */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_common.h"
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
     "wandb server (default: $WANDB_BASE_URL, else the one the run recorded, else https://api.wandb.ai)", "Options"},
    {"entity", 0, DJCT_OPT_STRING, O(entity), NULL, NULL, 0, 0, "NAME", "upload into this entity instead of the run's", NULL},
    {"project", 0, DJCT_OPT_STRING, O(project), NULL, NULL, 0, 0, "NAME", "upload into this project instead of the run's", NULL},
    {"timeout", 0, DJCT_OPT_DOUBLE, O(timeout_s), "600", NULL, 1e-3, 1e9, "SECONDS", "give up on one run after this long", NULL},
    {"retry-min", 0, DJCT_OPT_DOUBLE, O(retry_min_s), "2", NULL, 1e-3, 1e9, "SECONDS", "first retry wait", NULL},
    {"retry-max", 0, DJCT_OPT_DOUBLE, O(retry_max_s), "60", NULL, 1e-3, 1e9, "SECONDS", "longest retry wait", NULL},
    {"ca-bundle", 0, DJCT_OPT_STRING, O(ca_bundle), NULL, NULL, 0, 0, "FILE",
     "verify the server with the CAs in this PEM file (default: $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE, "
     "$SSL_CERT_FILE, else the system's)", NULL},
    {"insecure", 0, DJCT_OPT_FLAG, O(insecure), "0", NULL, 0, 0, NULL,
     "do not verify TLS certificates, and allow plain http to a host that is not a loopback address (only "
     "for a self-hosted server you trust)", NULL},
    {"run-dir", 0, DJCT_OPT_ARGS, O(dirs), NULL, NULL, 1, 1e9, "RUN_DIR...", "run journals (<log dir>/<run id>/)",
     "Arguments"},
};
#define NT (sizeof(T) / sizeof(T[0]))

#define USAGE                                                                                 \
    "usage: " PROG " [options] RUN_DIR...\n"                                                  \
    "Upload djct run directories (<log dir>/<run id>/) to wandb. The server is --base-url, else\n" \
    "$WANDB_BASE_URL, else the one the run recorded. The API key comes from WANDB_API_KEY,\n"    \
    "~/private/wandb_api.sh or ~/.netrc (machine = the server's host). Plain http is refused\n"   \
    "unless the host is a loopback address or --insecure is given. One line per retry; at the\n" \
    "end, what was sent and what is left (running it again continues).\n"                       \
    "exit status: 0 all uploaded, 1 some run failed, 2 usage error, 130 interrupted (SIGINT);\n"  \
    "-h, --help: this text; --version: the version"

static volatile int interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends it at once */
}

static void on_note(void *user, const char *line)
{
    fprintf(stderr, PROG ": %s: %s\n", (const char *)user, line);
    fflush(stderr);
}

/* "the config, the summary and `complete`": what of those is flagged, joined; "" for none */
static void join_files(char *out, size_t size, int config, int summary, int complete)
{
    const char *part[3];
    int n = 0;
    if (config)
        part[n++] = "the config";
    if (summary)
        part[n++] = "the summary";
    if (complete)
        part[n++] = "`complete`";
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ", part[i]);
}

/* one line: what this call sent and what is left */
static void print_outcome(const char *dir, const djct_log_upload *r, int ok)
{
    char files[128], left[256];
    join_files(files, sizeof(files), !r->config_pending, !r->summary_pending, 0);
    if (ok && r->complete) {
        printf(PROG ": %s: sent %lld history row%s%s%s; nothing left: the server has all %lld rows%s\n", dir,
               (long long)r->rows_sent, r->rows_sent == 1 ? "" : "s", files[0] ? ", " : "", files,
               (long long)r->rows, r->preempted ? " (no `complete`: the run was preempted and continues)"
                                                 : " and the run is complete");
        fflush(stdout);
        return;
    }
    join_files(left, sizeof(left), r->config_pending, r->summary_pending, r->complete_pending);
    fprintf(stderr, PROG ": %s: sent %lld history row%s; left: %lld of %lld history rows%s%s; run " PROG
            " again to finish (it continues where it stopped)\n", dir, (long long)r->rows_sent,
            r->rows_sent == 1 ? "" : "s", (long long)r->rows_pending, (long long)r->rows, left[0] ? ", " : "", left);
}

int main(int argc, char **argv)
{
    cfg c;
    int rc0 = app_start(PROG, T, NT, USAGE, 1, &c, sizeof(c), argc, argv);
    if (rc0 != APP_GO_ON)
        return rc0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    djct_sync_options o = DJCT_SYNC_OPTIONS_INIT;
    o.base_url = c.base_url;
    o.entity = c.entity;
    o.project = c.project;
    o.ca_bundle = c.ca_bundle;
    o.timeout_s = c.timeout_s;
    o.retry_min_s = c.retry_min_s;
    o.retry_max_s = c.retry_max_s;
    o.insecure = c.insecure;
    o.note = on_note;
    o.cancel = &interrupted;
    static djct_log_upload r; /* large: off the stack */
    int failed = 0;
    for (char **d = c.dirs; *d; d++) {
        if (interrupted) {
            fprintf(stderr, PROG ": %s: not started (interrupted)\n", *d);
            continue;
        }
        o.note_user = *d;
        int rc = djct_log_sync(&r, *d, &o);
        if (rc != 0 && !interrupted)
            fprintf(stderr, PROG ": %s: %s\n", *d, djct_last_error());
        else if (rc != 0)
            fprintf(stderr, PROG ": %s: interrupted\n", *d);
        if (r.mode != DJCT_LOG_MODE_DISABLED) /* the run directory was read */
            print_outcome(*d, &r, rc == 0);
        failed |= rc != 0;
    }
    djct_opts_free(T, NT, &c);
    return interrupted ? 130 : failed;
}
