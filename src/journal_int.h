/* The run journal: rank 0's files in <root>/<run_id>/ (layout in docs/logging.md). History rows are
 * appended to history.jsonl and fsync'ed at flush boundaries before anything is sent; every other
 * file is rewritten whole through a temporary file and rename(), so a reader never sees half a file.
 * Line i of history.jsonl is line offset i of wandb-history.jsonl. Not installed. */
#ifndef DJCT_JOURNAL_INT_H
#define DJCT_JOURNAL_INT_H

#include <stdint.h>
#include <pthread.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define JR_HISTORY "history.jsonl"
#define JR_SUMMARY "summary.json"
#define JR_CONFIG "config.json"
#define JR_RUN "run.json"
#define JR_UPLOAD "upload-state.json"
#define JR_CSV "history.csv"

/* mkdir -p; 0 or DJCT_EIO */
int jr_mkdirs(const char *path);

/* Write `text` to dir/name atomically (djct_write_atomic; fsync'ed with do_fsync). 0 or DJCT_EIO. */
int jr_write_atomic(const char *dir, const char *name, const char *text, int do_fsync);

/* Read a whole file (NUL-terminated, *len may be NULL). 0, 1 when it does not exist, or DJCT_EIO. */
int jr_read_file(const char *path, char **out, size_t *len);

/* Read dir/name and parse it as JSON: 0 with *out (cJSON*, caller deletes), 1 when missing, or DJCT_EIO/EINVAL. */
int jr_read_json(const char *dir, const char *name, cJSON **out);

/* The appending side of history.jsonl (rank 0). Appends are flushed to the kernel at every sync
 * (a killed job loses nothing); the fsync that protects against a node crash runs on a background
 * thread, coalesced, so the training loop never waits for the disk. */
typedef struct {
    FILE *f;
    int64_t lines;        /* complete lines in the file */
    int64_t last_step;    /* _step of the last line, -1 when empty */
    double last_runtime;  /* _runtime of the last line, 0 when empty */
    pthread_t syncer;     /* background fsync thread (started by the first sync that asks for it) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int syncer_on, dirty, closing, sync_errno; /* under mu */
} jr_history;

/* Open (creating) dir/history.jsonl for appending. An existing file is scanned for its line count
 * and last _step/_runtime (resume); a torn last line (job killed mid-write) is cut off. */
int jr_history_open(jr_history *h, const char *dir);
int jr_history_append(jr_history *h, const char *line, size_t len); /* line without '\n' */
int jr_history_sync(jr_history *h, int do_fsync); /* fflush; + a background fsync; reports an
                                                      earlier background fsync failure */
void jr_history_close(jr_history *h);

/* Parse one flat history line {"k":number,...}: calls fn(ctx, key, value) per member (numbers,
 * NaN and +-Infinity; other values are skipped). 0 or DJCT_EINVAL. */
int jr_flat_parse(const char *line, void (*fn)(void *ctx, const char *key, double v), void *ctx);

/* Walk the members of a JSON object text as the journal writes them (values may hold the bare
 * tokens NaN, Infinity, -Infinity, which cJSON does not parse): fn(ctx, key, raw, rawlen) per
 * member, raw being the value's text. 0, or DJCT_EINVAL naming what is malformed. */
int jr_object_members(const char *text, void (*fn)(void *ctx, const char *key, const char *raw, size_t rawlen),
                      void *ctx);

/* Append the shortest round-trip text of v to buf (NaN, Infinity, -Infinity as bare tokens). */
int jr_fmt_double(char *buf, size_t size, double v);

/* Read consecutive complete history lines. */
typedef struct {
    FILE *f;
    int64_t line;         /* index of the line at byte position pos */
    long pos;
} jr_reader;

int jr_reader_open(jr_reader *r, const char *dir); /* 0, 1 when there is no history yet, DJCT_EIO */
/* Position at line `start` (reading forward from the current position or from 0). Fails with
 * DJCT_EINVAL when the file has fewer complete lines. */
int jr_reader_seek(jr_reader *r, int64_t start);
/* Collect up to max_bytes (at least one line) of complete lines starting at r->line into a new
 * JSON array of strings *out (caller deletes; NULL when n == 0), without moving r. *n lines,
 * *end_pos the byte position after them. */
int jr_reader_batch(jr_reader *r, size_t max_bytes, cJSON **out, int64_t *n, long *end_pos);
void jr_reader_close(jr_reader *r);

#endif /* DJCT_JOURNAL_INT_H */
