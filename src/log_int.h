/* Internals of the logging singleton shared by its files: log.c (the API and the metric
 * buffer), log_reduce.c (the packed reduction and key gathering), log_writer.c (rank 0's writer
 * thread), log_sinks.c (journal row, summary, CSV, console, config), log_run.c (init and finish:
 * run id, WANDB_* variables, run.json), log_rewind.c (the journal back to a checkpoint's step) and
 * log_sync.c (djct_log_sync, no MPI). Not installed. */
#ifndef DJCT_LOG_INT_H
#define DJCT_LOG_INT_H

#include <cjson/cJSON.h>
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "comm_int.h"
#include "djct/log.h"
#include "journal_int.h"
#include "util_int.h"
#include "wandb_int.h"

/* A buffered metric. Entries outlive the flush (cnt 0: not logged since the last flush) and keep
 * their slot in the agreed layout, so the steady state neither allocates, hashes nor compares
 * names: see lg_flush_now(). */
typedef struct {
    char *name;
    int op;
    int slot; /* index of this name in g.lay, -1: not in it */
    double sum, cnt, min, max;
} entry;

/* The key layout every rank agreed on at the last key-gathering flush (empty at start): names in
 * strcmp order, so the order in which a rank logs does not matter. Key k is slot k of the packed
 * vector on every rank. A key has a count slot unless every rank logged it at that flush (a mean:
 * exactly once); without one, the fast path needs every rank to log it that way again. */
typedef struct {
    int n;              /* keys */
    int ncnt;           /* keys with a count slot */
    char *arena;        /* the names' bytes */
    const char **name;  /* n, sorted */
    unsigned char *op;  /* n, djct_reduce_op */
    int *cidx;          /* n: index into the count slots, -1: none */
    double hash;        /* of names, ops and count slots (52 bits): the op checks ranks agree */
    double *ident;      /* n + ncnt: the vector's values and counts when nothing is logged */
    double *vec;        /* the packed vector: room for HDR + 3 n doubles (the gathering path's) */
    const char **rname; /* n: a flush's result, names (borrowed from arena) */
    double *rvalue;     /* ... and values */
} layout;

#define HDR 4 /* header doubles of the packed vector (see lg_combine()) */

/* One metric as a rank logged it in the last flush: what the key-gathering path needs when rank 0
 * finds that flush's keys did not fit the layout (see lg_settle()). The name is the entry's. */
typedef struct {
    const char *name;
    int op;
    double sum, cnt, min, max;
} held_rec;

typedef struct {
    pthread_mutex_t mu;
    int initialised, active, mode;
    /* MPI */
    int have_mpi, rank, size;
    djct_comm *comm;    /* every collective goes through it (watched when it has a timeout) */
    int own_comm;       /* made here (no comm in the options): freed at finish */
    MPI_Op op;
    MPI_Datatype dtype;
    int dtype_len; /* doubles per element of dtype, 0: none */
    int *lens, *displs; /* size each: the key-gathering path's Allgatherv counts */
    layout lay;         /* agreed by all ranks */
    double hdr_only[HDR]; /* the packed vector while the layout is empty */
    int misfit;           /* since the last flush a key did not fit the layout (see slot_add) */
    int uncounted;        /* keys without a count slot logged since the last flush */
    /* rank 0's verdict on the last flush, which the other ranks learn at the next collective call */
    held_rec *held;       /* heldcap == ecap: the last flush's logged values (never allocated in a flush) */
    int nheld, heldcap;
    char *held_prefix;    /* rank 0: prefix and step of the row that waits for the gathering path */
    int64_t held_step;
    djct_comm_request *oreq; /* rank 0's verdict in flight (djct_comm_mpi_ibcast) */
    int opending;
    int64_t omsg[2];      /* {the gathering path is needed, rank 0's last step} */
    int verdict_bcast;    /* DJCT_LOG_VERDICT_BCAST=1: the broadcast at any size (tests) */
    /* the buffer */
    entry *e;   /* in order of first use */
    int n, ecap;
    int live;   /* entries with cnt > 0: logged since the last flush */
    int *index; /* open addressing: entry index + 1, 0 empty */
    int icap;
    /* steps */
    int64_t last_step;
    double t0_mono, runtime_base;
    char run_id[64];
    /* rank 0 */
    char *dir;
    jr_history hist;
    int no_fsync, console, csv;
    cJSON *summary, *summary_user, *config;
    wb_uploader *up;
    wb_config up_cfg;       /* online: the uploader's settings, to start it again after a rewind */
    char *up_base, *up_ca;  /* ... its strings (up_cfg points at them, at g.dir and at g.key) */
    int64_t others_from;    /* the journal line from which rows are other writers' (appended after
                               the last djct job that finished, e.g. by the Python wrapper): run.json's
                               lines_at_finish; -1: none (every row after a checkpoint is a job's) */
    int64_t rows_rewound;   /* rows the last rewind moved aside */
    char *key;
    const char *key_source;
    char *last_row;
    char **cols;
    int ncols;
    FILE *csv_f;
    int preempted;
    double finish_timeout_s;
    double summary_written; /* lg_mono_s() of the last summary.json rewrite */
    char *pending;          /* history rows not yet folded into the summary */
    size_t pending_len, pending_cap;
    djct_log_stats stats;
    char warn[4096];
} log_state;

/* result of a flush: names and values, borrowed from g.lay until its next change */
typedef struct {
    int n;
    const char **name;
    double *value;
} reduced;

/* One row on its way to rank 0's writer thread (log_writer.c), which hands it to the sinks
 * (log_sinks.c). */
typedef struct row_rec {
    struct row_rec *next;
    size_t cap;                /* bytes after the struct (records are reused) */
    int64_t step;
    double runtime, ts;
    int n, ncnt, size;         /* keys, count slots, ranks (the count of a key without a slot) */
    const char **name;         /* n: the layout's names (freed only with the layout, see retire) */
    const unsigned char *op;   /* n: the layout's ops; NULL: raw holds the final values */
    const int *cidx;           /* n: the layout's count slots */
    double *raw;               /* n + ncnt: the reduced values, then the counts */
    char *prefix;
} row_rec;

/* The singleton, `g` in every file of the module; its link name carries the library's prefix. */
extern log_state g __asm__("djct_log_state") __attribute__((visibility("hidden")));

/* NaN wins whatever the order (in the entries and in the cross-rank op alike) */
static inline double lg_min_nan(double a, double b) { return a < b || isnan(a) ? a : b; }
static inline double lg_max_nan(double a, double b) { return a > b || isnan(a) ? a : b; }
/* a reduced value as the row shows it: means divided by their count */
static inline double lg_finish_value(int op, double v, double cnt) { return op == DJCT_REDUCE_MEAN ? v / cnt : v; }
/* more than one rank: the flush communicates */
static inline int lg_multi(void) { return g.have_mpi && g.size > 1; }

/* ---- log.c --------------------------------------------------------------------------------- */
/** Append a line to the warnings (any thread). */
void lg_warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** The logged values into g.held; `clear` forgets them in the entries in the same pass. */
void lg_held_take(int clear);
/** After a flush: keep the names, forget the values (see log.c). */
void lg_buffer_reset(void);
/** Drop every entry (finish). */
void lg_buffer_free(void);

/* ---- log_reduce.c -------------------------------------------------------------------------- */
/** Slot of `name` in the layout, -1 when it is not in it. */
int lg_layout_find(const layout *L, const char *name);
void lg_layout_free(layout *L);
/** After every flush: the vector back to the identities, nothing logged. */
void lg_layout_clear(void);
/** The MPI operator of the packed vector. */
void lg_combine(void *in, void *inout, int *len, MPI_Datatype *dt);
/** Complete the last flush (collective): rank 0's verdict, the gathering path if it needs it. */
int lg_settle(void);
/** One flush (collective): see djct_log_flush. */
int lg_flush_now(const char *prefix, int64_t step);

/* ---- log_writer.c -------------------------------------------------------------------------- */
/** Sink state (journal, summary, CSV, console, last_row, rows written) is under this mutex. */
extern pthread_mutex_t lg_sink_mu;
extern int64_t lg_rows_written; /* under lg_sink_mu */
void lg_writer_start(void);
/** Wait until every queued row is written. */
void lg_writer_drain(void);
void lg_writer_stop(void);
/** The first error of a row write since lg_writer_start (0: none), its message into msg. */
int lg_writer_error(char *msg, size_t cap);
/** Free an array of a layout now, or once the rows queued before this call are written. */
void lg_layout_release(void *a);
/** Rank 0: a row to the writer thread (or written in line when there is none). */
void lg_row_emit(int n, int ncnt, const char **name, const unsigned char *op, const int *cidx,
                 const double *raw, const char *prefix, int64_t step);

/* ---- log_sinks.c --------------------------------------------------------------------------- */
/** One row into the journal and the other sinks (lg_sink_mu held). */
int lg_row_write(const row_rec *r);
/** Rewrite history.csv from history.jsonl (new columns, or a resumed run). */
int lg_csv_rewrite(void);
/** Read an existing summary.json into g.summary (each member's JSON text kept verbatim, so NaN and
 *  Infinity survive). A missing file is fine; one that is not a JSON object is an error naming it. */
int lg_summary_load(void);
/** Fold the rows written since the last rewrite into summary.json and rewrite it. */
int lg_summary_write(int do_fsync);
int lg_config_write(void);
/** After a rewind: summary keys the moved rows had come from the kept rows again (or go); keys
 *  neither had (overrides, other writers') stay. Both texts are JSONL and are modified. */
int lg_summary_rebuild(char *kept, char *moved);

/* ---- log_rewind.c -------------------------------------------------------------------------- */
/** Free the uploader's saved settings (finish). */
void lg_upload_cfg_free(void);

#endif /* DJCT_LOG_INT_H */
