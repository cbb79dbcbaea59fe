/* The rank-aware logging singleton (djctools' wandb_wrapper, in C), its run journal and wandb.
 * Every rank buffers metrics; djct_log_flush() reduces them to rank 0 with one packed collective,
 * rank 0 appends the row to the run journal (JSONL, fsync'ed) and a background thread streams the
 * journal to wandb. Only rank 0 opens files or network connections. See docs/logging.md. */
#ifndef DJCT_LOG_H
#define DJCT_LOG_H

#include "comm.h"
#include "common.h"

DJCT_BEGIN_DECLS

/** Where rows go. AUTO: $WANDB_MODE (online|offline|disabled|dryrun), else online when an API key
 *  is found and offline (with a warning) when none is. */
typedef enum {
    DJCT_LOG_MODE_AUTO     = 0,
    DJCT_LOG_MODE_ONLINE   = 1, /* journal + stream to wandb */
    DJCT_LOG_MODE_OFFLINE  = 2, /* journal only; upload later with djct_sync */
    DJCT_LOG_MODE_DISABLED = 3  /* nothing: every call is a cheap no-op, no collectives */
} djct_log_mode;

/** How a metric is combined over the ranks (and over repeated djct_log calls before a flush). */
typedef enum {
    DJCT_REDUCE_MEAN = 0, /* mean of every value logged on every rank (the default) */
    DJCT_REDUCE_SUM  = 1,
    DJCT_REDUCE_MIN  = 2,
    DJCT_REDUCE_MAX  = 3
} djct_reduce_op;

typedef struct {
    unsigned int version;      /* always first; filled in by DJCT_LOG_OPTIONS_INIT */
    const char *project;       /* NULL: $WANDB_PROJECT, else "uncategorized" */
    const char *entity;        /* NULL: $WANDB_ENTITY, else the key owner's default (server decides) */
    const char *run_name;      /* display name; NULL: $WANDB_NAME, else the server picks one */
    const char *run_id;        /* NULL: $WANDB_RUN_ID, else 8 random [a-z0-9]. Same id = resume */
    const char *group;         /* NULL: $WANDB_RUN_GROUP */
    const char *job_type;      /* NULL: $WANDB_JOB_TYPE */
    const char *tags;          /* comma-separated; NULL: $WANDB_TAGS */
    const char *notes;         /* NULL: $WANDB_NOTES */
    const char *config_json;   /* initial config, a JSON object text, or NULL */
    int mode;                  /* djct_log_mode */
    const char *base_url;      /* NULL: $WANDB_BASE_URL, else https://api.wandb.ai */
    const char *api_key;       /* NULL: looked up (see djct_log_key_source()); never written anywhere */
    const char *dir;           /* run directory root; NULL: $DJCT_LOG_DIR, else "djct-runs".
                                  The run directory is <dir>/<run_id>/ */
    int console;               /* 1: rank 0 prints every row to stdout (the one place the library prints) */
    int csv;                   /* 1: rank 0 also writes <run dir>/history.csv */
    int no_fsync;              /* 1: skip the fsync at each flush (faster, may lose rows on a crash) */
    double batch_interval_s;   /* seconds between file_stream batches; 0: 15 */
    double heartbeat_s;        /* idle seconds before an empty keep-alive request; 0: 30 */
    double http_timeout_s;     /* per HTTP attempt; 0: 60 */
    double init_timeout_s;     /* give up creating the run (UpsertBucket) after this; 0: 90 */
    double finish_timeout_s;   /* djct_log_finish waits at most this long for the upload; 0: 60 */
    double retry_min_s;        /* backoff start; 0: 2 */
    double retry_max_s;        /* backoff cap; 0: 60 */
    int insecure;              /* 1: disable TLS certificate verification (explicit opt-out only) */
    void *mpi_comm;            /* without `comm`: pointer to an MPI_Comm to use; NULL: MPI_COMM_WORLD
                                  (if MPI is up). The collectives are then not watched */
    const char *ca_bundle;     /* PEM file of the CAs to trust (instead of the system's), verification
                                  stays on; NULL: $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE, $SSL_CERT_FILE
                                  (the first set), else the system's CAs */
    djct_comm *comm;           /* the app's communicator: every logging collective goes through it,
                                  numbered and watched like the app's own (its watchdog names a rank
                                  missing from a flush). Borrowed: free it after djct_log_finish().
                                  NULL: see mpi_comm */
} djct_log_options;

#define DJCT_LOG_OPTIONS_VERSION 3
#define DJCT_LOG_OPTIONS_INIT                                                                      \
    { DJCT_LOG_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,            \
      DJCT_LOG_MODE_AUTO, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL }

/** Start the logging singleton. Collective over the communicator when MPI is initialised (call it
 *  on every rank, after MPI_Init); without MPI it runs as a single process. Rank 0 resolves the
 *  mode, run id and API key, opens (or, for an existing run id, resumes) the run directory and, when
 *  online, starts the uploader thread; it never waits on the network here. Logging is active after
 *  init. Calling init twice without djct_log_finish() is an error. `opts` may be NULL.
 *  @return 0, or DJCT_EINVAL (bad option, explicit online mode without a key), DJCT_EIO (run
 *  directory), DJCT_EMPI. */
DJCT_API int djct_log_init(const djct_log_options *opts);

/** Local switches (not collective): while inactive djct_log*() calls are no-ops. djct_log_flush()
 *  stays collective either way, so ranks with different switches never deadlock. */
DJCT_API void djct_log_activate(void);
DJCT_API void djct_log_deactivate(void);
/** 1 when initialised, not disabled and active. */
DJCT_API int djct_log_is_active(void);

/** Buffer a metric on this rank, reduced with the mean at the next flush. Logging the same name
 *  again before the flush accumulates (mean of all values). No-op before init or while inactive.
 *  Thread-safe. @return 0, or DJCT_EINVAL for a NULL/empty name or a name reused with another op. */
DJCT_API int djct_log(const char *name, double value);

/** As djct_log() with an explicit cross-rank reduction. */
DJCT_API int djct_log_reduce(const char *name, double value, djct_reduce_op op);

/** Collective: every rank must call it, in the same order as its other collectives, also while
 *  inactive. Reduces the metrics buffered on all ranks to rank 0 (a metric logged by only some ranks
 *  is reduced over those ranks). In the steady state, when every rank's keys fit the key layout
 *  agreed at the last key-gathering flush, that is one MPI_Reduce of a packed vector and rank 0
 *  queues the row for its writer thread, which formats it, appends it to the journal (fsync'ed by
 *  a background thread) and hands it to the uploader; the call waits for neither. When some rank's
 *  keys did not fit, only rank 0 learns it from the reduction: the row keeps its step and is
 *  produced by the key-gathering path at the next collective logging call (djct_log_flush,
 *  djct_log_settle or djct_log_finish), which also agrees the layout for the next flushes. Never
 *  deadlocks on different key sets. The row's names are prefixed by `prefix` (NULL or "" for none,
 *  e.g. "val_"), plus `_step`, `_runtime` and `_timestamp`. `step` -1 means last step + 1; an
 *  explicit step must be greater than the last one (checked alike on every rank, before any
 *  communication). Nothing buffered on any rank: no row, the step does not advance. A row that
 *  cannot be written (disk full) is a warning (djct_log_warnings) and djct_log_finish's error; it
 *  does not fail the flush, which would leave rank 0 alone out of the training loop.
 *  @return 0, DJCT_EINVAL (step not increasing: the row is dropped on every rank), DJCT_ENOMEM
 *  (key-gathering path, on every rank alike), DJCT_EMPI. */
DJCT_API int djct_log_flush(const char *prefix, int64_t step);

/** Collective: complete the last flush now. If its keys did not fit the agreed layout, every rank
 *  takes the key-gathering path and rank 0 queues the row (see djct_log_flush). Flush and finish do
 *  this themselves; call it when the row of a flush whose keys changed (e.g. the first validation
 *  flush) must exist before the next flush, or before reading djct_log_last_row().
 *  @return 0, DJCT_ENOMEM, DJCT_EMPI. */
DJCT_API int djct_log_settle(void);

/** Set a config entry (rank 0's value is kept; other ranks may call it, it is ignored there).
 *  `json_or_value` is stored as JSON when it parses as JSON, else as a string. Rewrites config.json
 *  and re-sends the config to wandb. @return 0, DJCT_EINVAL before init or for NULL arguments. */
DJCT_API int djct_log_config_set(const char *key, const char *json_or_value);

/** Override a summary entry (normally the last logged value of each key), as for config. */
DJCT_API int djct_log_summary_set(const char *key, const char *json_or_value);

/** Tell wandb the job is about to be preempted (e.g. on SLURM's warning signal before a requeue):
 *  sent at once; the following djct_log_finish() then does not mark the run complete, so the
 *  requeued job continues the same run id. Rank 0 only; a no-op elsewhere. */
DJCT_API int djct_log_mark_preempting(void);

/** Collective: complete the last flush (see djct_log_settle) and, on rank 0, wait until every row
 *  flushed so far is in the journal (a killed job loses none of them). *last_step (every rank) gets
 *  the journal's last _step (-1: no row yet; -2: logging is not initialised or disabled). Store it
 *  with a checkpoint: a job that continues from that checkpoint passes it to djct_log_rewind().
 *  @return 0, DJCT_ENOMEM, DJCT_EMPI. */
DJCT_API int djct_log_checkpoint(int64_t *last_step);

/** Collective; call it before the first flush of a job that continues from a checkpoint (after
 *  djct_log_init), with the `last_step` djct_log_checkpoint() gave when that checkpoint was taken
 *  (-1: from the start). Rank 0 moves the history rows after that step, which the jobs since then
 *  logged (steps the continuing job will log again), from history.jsonl to history.rewound.jsonl
 *  (appended), so the journal keeps one row per training step; rows another writer appended after
 *  the last finished job (e.g. the Python wrapper's evaluation rows) stay. history.csv and
 *  summary.json follow, upload-state.json's acknowledged count goes back to the first moved row (the
 *  uploader re-sends from there: the rows of the replayed steps get the same line offsets and the
 *  same _step as the rows they replace), and the next row's _step is last_step + 1.
 *  djct_log_get_stats().rows_rewound says how many rows moved. A no-op before init, when disabled,
 *  or with last_step < -1. @return 0, DJCT_EIO (the journal could not be rewritten; nothing moved),
 *  DJCT_EMPI. */
DJCT_API int djct_log_rewind(int64_t last_step);

/** Collective: flush whatever is still buffered, record the exit code in the journal, wait at most
 *  finish_timeout_s for the uploader to send the remaining rows, the summary and `complete` with
 *  `exit_code` (0 = finished, else failed), then release everything. Safe to call when not
 *  initialised. @return 0, or DJCT_ETIMEOUT / DJCT_EIO when the upload did not complete (the
 *  journal is intact: `djct_sync <run dir>` uploads the rest; the message says so). */
DJCT_API int djct_log_finish(int exit_code);

/** Not collective: the failure path of a rank that is about to end the job (djct_comm_abort),
 *  where a collective could wait for ranks that are gone, stopped or in another collective. On
 *  rank 0: the rows already reduced are written and the journal fsync'ed, run.json records
 *  `exit_code`, and the uploader gets at most 5 s (or finish_timeout_s when shorter); metrics
 *  still buffered for the next flush are lost. Other ranks: nothing to write. Afterwards the
 *  singleton is closed without being released (its communicator may be unusable): every djct_log_*
 *  call is a no-op, djct_log_init must not be called again. Safe when not initialised.
 *  @return 0, or the first error (journal write, upload incomplete: `djct_sync` uploads the rest). */
DJCT_API int djct_log_finish_local(int exit_code);

/** Warnings collected on this rank (key file permissions, fallback to offline, upload stopped,
 *  ...), one per line; "" when none. Never contains the API key. Borrowed until the next djct_log_*
 *  call. The app prints them on rank 0. */
DJCT_API const char *djct_log_warnings(void);

/** Where the API key came from: "option", "WANDB_API_KEY", "~/private/wandb_api.sh", "netrc" or
 *  "none" (rank 0; "none" elsewhere). Never the key itself. */
DJCT_API const char *djct_log_key_source(void);

/** The run directory (rank 0), or NULL when none is open. Borrowed until djct_log_finish(). */
DJCT_API const char *djct_log_run_dir(void);

/** The run id (every rank knows it after init), or NULL. */
DJCT_API const char *djct_log_run_id(void);

/** A new random run id: 8 characters of [a-z0-9] from /dev/urandom (else the clock and pid), the
 *  form djct_log_init gives a run without one; out has room for at least 9 bytes. */
DJCT_API void djct_log_new_run_id(char out[9]);

/** The last history row written (rank 0, JSON text), or "". Waits until the writer thread has
 *  written every queued row. Borrowed until the next flush. */
DJCT_API const char *djct_log_last_row(void);

/** Counters for tests and benchmarks. */
typedef struct {
    int64_t flushes;        /* flush calls that ran the collective */
    int64_t fast_flushes;   /* ... of which finished with the one packed collective (the keys fit
                               the agreed layout, or nobody logged); ranks > 0 count a flush when
                               they learn rank 0's verdict, at the next collective logging call */
    int64_t rows;           /* history rows written so far (rank 0; rows the writer thread has not
                               written yet are not counted: djct_log_last_row() waits for them) */
    int64_t rows_acked;     /* history rows the server acknowledged (rank 0, online) */
    int upload_state;       /* 0 idle/offline, 1 streaming, 2 stopped by a fatal error, 3 complete */
    double reduce_seconds;  /* time spent in the cross-rank reduction (all flushes) */
    int64_t rows_rewound;   /* rows the last djct_log_rewind moved aside (rank 0) */
} djct_log_stats;

/** Fill *out with the current counters. */
DJCT_API int djct_log_get_stats(djct_log_stats *out);

/* ---- what is left to upload ------------------------------------------------------------------ */

/** What a run's upload left behind: djct_log_upload_status() after djct_log_finish(), and
 *  djct_log_sync(). "Files" are the run's config (sent with the run's record, UpsertBucket) and its
 *  summary; nothing is lost while they are pending: the journal holds them, and `sync_command`
 *  uploads the rest. */
typedef struct {
    int mode;               /* the run's djct_log_mode (DISABLED: nothing to upload, the rest is 0) */
    int complete;           /* 1: nothing is left: every row, the config, the summary and (unless
                               the job was preempted) `complete` with the exit code */
    int64_t rows;           /* history rows in the journal */
    int64_t rows_acked;     /* ... that the server acknowledged */
    int64_t rows_pending;   /* rows - rows_acked */
    int64_t rows_sent;      /* rows sent by this job (djct_log_sync: by this call) */
    int config_pending;     /* 1: the run's record and latest config were not acknowledged */
    int summary_pending;    /* 1: the server lacks the journal's summary */
    int complete_pending;   /* 1: `complete` (the exit code) was not sent */
    int preempted;          /* 1: the job was preempted: `complete` is not due */
    char dir[4096];         /* the run directory (the journal) */
    char sync_command[4200];/* the command that uploads the rest, e.g. "djct_sync runs/a/wandb/x1" */
    char error[1024];       /* why it is not complete (the last failure); "" when complete or offline */
} djct_log_upload;

/** After djct_log_finish() on rank 0: what the run's upload left behind (online: what the server
 *  did not acknowledge before the finish time limit or a final error; offline: everything). Valid
 *  until the next djct_log_init(). Other ranks, before a finish, or a disabled run: mode
 *  DJCT_LOG_MODE_DISABLED. Never contains the API key. */
DJCT_API int djct_log_upload_status(djct_log_upload *out);

/* ---- djct_sync: upload a journal later ------------------------------------------------------ */

typedef struct {
    unsigned int version;     /* filled in by DJCT_SYNC_OPTIONS_INIT */
    const char *base_url;     /* NULL: $WANDB_BASE_URL, else run.json's base URL, else https://api.wandb.ai.
                                 A plain http:// URL is refused unless its host is a loopback address
                                 or `insecure` is set (the key would travel unencrypted) */
    const char *api_key;      /* NULL: the usual lookup (WANDB_API_KEY, ~/private/wandb_api.sh, netrc) */
    const char *entity;       /* NULL: from run.json */
    const char *project;      /* NULL: from run.json */
    double http_timeout_s;    /* 0: 60 */
    double retry_min_s;       /* 0: 2 */
    double retry_max_s;       /* 0: 60 */
    double timeout_s;         /* give up after this long in total; 0: 600 */
    int insecure;             /* 1: disable TLS certificate verification and allow plain http to any
                                 host (explicit opt-out only) */
    const char *ca_bundle;    /* as djct_log_options.ca_bundle */
    void (*note)(void *user, const char *line); /* NULL: quiet; else called (on the calling thread)
                                 with one line per retry (what, where, why, the next wait), per
                                 warning ("warning: key file ..."), and a note when the base URL is
                                 not the one the run recorded */
    void *note_user;
    const volatile int *cancel; /* non-NULL: stop soon after *cancel becomes non-zero (e.g. set by a
                                 SIGINT handler); djct_log_sync then returns DJCT_ETIMEOUT ("interrupted") */
} djct_sync_options;

#define DJCT_SYNC_OPTIONS_VERSION 3
#define DJCT_SYNC_OPTIONS_INIT { DJCT_SYNC_OPTIONS_VERSION, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL }

/** Upload the journal in `run_dir` (offline or partially uploaded): creates or finds the run
 *  (UpsertBucket), streams history from what the server and upload-state.json say is already there
 *  (same line offsets, so a re-send is harmless), the summary, and `complete` with the recorded
 *  exit code (1 when the run never finished; nothing when it was preempted and not finished).
 *  Not collective, no MPI. `*report` (may be NULL) gets what was sent and what is left, also on
 *  failure (when the run directory could be read).
 *  @return 0, DJCT_EINVAL (not a run directory, no key, plain http to another host), DJCT_EIO,
 *  DJCT_ETIMEOUT (the time limit, or interrupted through `cancel`). */
DJCT_API int djct_log_sync(djct_log_upload *report, const char *run_dir, const djct_sync_options *opts);

DJCT_END_DECLS

#endif /* DJCT_LOG_H */
