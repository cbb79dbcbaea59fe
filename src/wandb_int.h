/* The wandb HTTP client (libcurl): API key lookup (wandb_key.c), the transport with the retry
 * policy of ../shared/formats/wandb.md §4 (wandb_http.c), GraphQL UpsertBucket and file_stream
 * (wandb_requests.c), and the uploader that streams a run journal (wandb.c).
 * The uploader reads history.jsonl/summary.json back from the run directory, so the online thread
 * and djct_sync share one code path and a re-send always uses the same line offsets.
 * Not installed; only rank 0 and djct_sync use it. */
#ifndef DJCT_WANDB_INT_H
#define DJCT_WANDB_INT_H

#include <stddef.h>
#include <stdint.h>

#define WB_DEFAULT_BASE_URL "https://api.wandb.ai"

/* Find the API key: explicit > $WANDB_API_KEY > ~/private/wandb_api.sh > $NETRC or ~/.netrc
 * (machine = the base URL's host, as curl reads it, else its host:port, as `wandb login` writes it). *key is malloc'ed (NULL when none), *source names where it came
 * from ("none" if nowhere). Permission problems and parse errors are appended to warn (one line
 * each). Returns 0 (also when no key was found) or DJCT_ENOMEM. */
int wb_resolve_key(const char *base_url, const char *explicit_key, char **key, const char **source,
                   char *warn, size_t warn_size);

/* The CA bundle to verify servers with: explicit > $REQUESTS_CA_BUNDLE > $CURL_CA_BUNDLE >
 * $SSL_CERT_FILE (the first non-empty), else *path NULL (the system's CAs). *source names where it
 * came from. Returns 0, or DJCT_EINVAL when the file cannot be read (the message names it and the
 * variable it came from). *path is borrowed from `explicit_path` or the environment. */
int wb_resolve_ca(const char *explicit_path, const char **path, const char **source);

typedef struct {
    const char *dir;            /* run directory (read: run.json, config.json, history, summary) */
    const char *base_url;       /* no trailing '/' */
    const char *api_key;
    const char *entity;         /* overrides run.json (sync), may be NULL */
    const char *project;        /* overrides run.json (sync), may be NULL */
    double http_timeout_s;
    double retry_min_s, retry_max_s;
    double init_timeout_s;      /* UpsertBucket retries stop after this */
    double batch_interval_s;
    double heartbeat_s;
    int insecure;
    const char *ca_bundle;      /* PEM file of the CAs to trust, NULL: the system's (wb_resolve_ca) */
    void (*note)(void *user, const char *line); /* NULL: quiet; else one line per retry (what,
                                   where, why, the next wait), called on the uploading thread */
    void *note_user;
    const volatile int *cancel; /* non-NULL: stop (DJCT_ETIMEOUT, "interrupted") once it is non-zero */
    size_t max_request_bytes;   /* 0: 4 MiB of history per request */
    size_t big_batch_bytes;     /* 0: 256 KiB pending wakes the thread before the interval */
} wb_config;

typedef struct wb_uploader wb_uploader;

/* upload states reported to djct_log_stats */
enum { WB_IDLE = 0, WB_STREAMING = 1, WB_FATAL = 2, WB_COMPLETE = 3 };

int wb_uploader_create(wb_uploader **out, const wb_config *cfg);
/* Start the background thread: UpsertBucket, then batches every batch_interval_s, heartbeats. */
int wb_uploader_start(wb_uploader *u);
/* New history rows/summary are in the journal (already fsync'ed): cheap, never blocks on I/O. */
void wb_uploader_notify(wb_uploader *u, size_t new_bytes);
void wb_uploader_config_changed(wb_uploader *u);
/* Send {"preempting": true} at once; no `complete` will be sent at finish. */
void wb_uploader_preempting(wb_uploader *u);
/* Stop: send what is left and (if `complete`) complete/exitcode, waiting at most timeout_s.
 * Works for a started thread and, synchronously, for an unstarted uploader (djct_sync).
 * 0 when everything was acknowledged, DJCT_ETIMEOUT or DJCT_EIO (message says djct_sync can
 * upload the rest) otherwise. */
int wb_uploader_finish(wb_uploader *u, int complete, int exit_code, double timeout_s);
/* Counters: lines acknowledged, lines sent by this uploader, state (WB_*). */
void wb_uploader_stats(wb_uploader *u, int64_t *acked, int64_t *sent, int *state);
/* What the upload left behind, once wb_uploader_finish has returned. */
typedef struct {
    int64_t acked, sent;        /* history lines the server acknowledged; sent by this uploader */
    int config_pending;         /* the run and its latest config were not acknowledged (UpsertBucket) */
    int summary_pending;        /* the journal's summary.json is not the one the server acknowledged */
    int complete_sent, preempted, state;
    char cause[1024];           /* why it stopped short: the fatal error, or the last failed attempt */
} wb_report;
void wb_uploader_report(wb_uploader *u, wb_report *r);
/* The fatal error, "" when none (copied into buf). */
void wb_uploader_fatal(wb_uploader *u, char *buf, size_t size);
void wb_uploader_free(wb_uploader *u);

/* ---- shared by log_run.c (djct_log_finish) and log_sync.c ------------------------------------ */
#include "djct/log.h"
/* Fill *out for the journal in `dir`: from the finished uploader `u`, or, without one (offline),
 * from upload-state.json (what an earlier job or djct_sync uploaded). `complete_wanted`: the
 * `complete` request is due (not a preempted, unfinished job). */
void wb_upload_fill(djct_log_upload *out, int mode, const char *dir, wb_uploader *u, int complete_wanted);
/* 1 when the URL is plain http:// to a host other than a loopback address (the key would cross a
 * network unencrypted); host (may be NULL) gets the host. */
int wb_plain_http_remote(const char *url, char *host, size_t host_size);

/* Format one line and hand it to `note(user, line)`; nothing when `note` is NULL. */
void wb_notef(void (*note)(void *user, const char *line), void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- inside the client: wandb.c, wandb_http.c, wandb_requests.c ------------------------------ */
#include "journal_int.h"
#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

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

/* wandb_http.c */
typedef struct {
    char *data;
    size_t len, cap;
} wb_buf;
enum { WB_KIND_FILESTREAM, WB_KIND_UPSERT }; /* UpsertBucket also retries 409 */
/* POST `body` to `url` with retries until a 2xx (0), a final status (DJCT_EIO), the deadline, an
 * abort or the caller's cancel flag (DJCT_ETIMEOUT). deadline 0: none. `what` names the request
 * in messages. The reply's body (its first MiB) is in *reply; free reply->data. */
int wb_post_retry(wb_uploader *u, int kind, const char *what, const char *url, const char *body,
                  double deadline, wb_buf *reply);
/* the caller's cancel flag is up (e.g. djct_sync's SIGINT handler) */
int wb_cancelled(const wb_uploader *u);
/* The CLOCK_REALTIME time `s` seconds from now, for pthread_cond_timedwait. */
struct timespec wb_time_after(double s);

/* wandb_requests.c */
/* UpsertBucket once (before the first file_stream request), and the offset to resume from. */
int wb_ensure_upserted(wb_uploader *u, double deadline);
/* Send what is pending (history from acked, the summary if changed, preempting, and complete when
 * `final` and nothing else is left). *idle = 1 when there was nothing to send. */
int wb_pump(wb_uploader *u, int final, int heartbeat, double deadline, int *idle, int *all_done);
/* Write upload-state.json (acknowledged lines, storage id, fatal error). */
void wb_save_state(wb_uploader *u);
/* The journal's summary.json without its trailing newline/spaces: 0 and *out (malloc'ed), or the
 * error of jr_read_file. */
int wb_read_summary(const char *dir, char **out);
/* The complete history lines in the journal of `dir` (0 when it has none). */
int64_t wb_journal_lines(const char *dir);

#endif /* DJCT_WANDB_INT_H */
