/* Datasets: a list of .djctd / HDF5 files, an epoch plan computed from metadata only (identical
 * on every rank, no communication), balanced per-rank batches with djcdata's batching semantics,
 * and a prefetch thread that reads and decodes this rank's next batches. docs/data.md describes
 * the specs, the plan algorithm and the batch layout.
 *
 * Thread safety: one thread drives a dataset (open/seek/next/release/free); the prefetch thread
 * and the decode threads are internal. Batches may be released from any thread. */
#ifndef DJCT_DATASET_H
#define DJCT_DATASET_H

#include "array.h"

DJCT_BEGIN_DECLS

typedef struct djct_dataset djct_dataset;

/** How events are shuffled per epoch (always from seed + epoch, identical on every rank). */
typedef enum {
    DJCT_SHUFFLE_NONE   = 0, /* file order, event order */
    DJCT_SHUFFLE_FILES  = 1, /* djcdata style: file order shuffled, events shuffled within each file;
                                consecutive steps read few files (good for compressed .djctd) */
    DJCT_SHUFFLE_GLOBAL = 2, /* one permutation of all events of all files */
    DJCT_SHUFFLE_SHARDS = 3  /* no shuffling: rank r gets one contiguous range of the events in file
                                order (ranges balanced by elements), in batches in that order, and
                                every event exactly once (nothing dropped, `strict` ignored); ranks
                                with fewer batches get empty ones at the end (prediction) */
} djct_shuffle;

typedef struct {
    unsigned int version;        /* always first; filled in by the _INIT macro */
    int64_t      batch_elements; /* ragged data: limit on ragged elements per rank batch (djcdata's batch
                                    size); 0: batches count events (batch_events) */
    int64_t      batch_events;   /* events per rank batch for non-ragged data, or for ragged data when
                                    batch_elements is 0 */
    int          squared_limit;  /* compare (sum of elements)^2 with batch_elements (djcdata's
                                    batch_uses_sum_of_squares) */
    int          strict;         /* 1: drop an event larger than the limit (counted in plan stats);
                                    0: serve it as a batch of its own */
    uint64_t     seed;
    int          shuffle;        /* a djct_shuffle */
    int          rank;           /* this process's rank, 0..world_size-1 */
    int          world_size;     /* ranks sharing the data; all compute the same plan */
    int          prefetch_depth; /* batches decoded ahead by a background thread; 0: read in next() */
    int          drop_last;      /* count-mode only: drop the final step when it is not full */
    size_t       cache_bytes;    /* budget for decoded .djctd files kept between batches; 0: 512 MiB */
    size_t       prefault_bytes; /* HDF5 files read through a mapping (uncompressed): when a file is first
                                    opened, touch its data pages in file order, up to this many bytes over
                                    all files, so the first epoch's random reads fault no page; 0: off
                                    (default 2 GiB, docs/data.md) */
    const char  *h5_map;         /* mapping file (INI, docs/data.md) naming the datasets of every HDF5 file;
                                    NULL: each file's map beside it ("<file>.djct.ini") if any, else
                                    djct's layout. Read once at open; the string is not kept */
    int          decode_threads; /* threads that decode .djctd files ahead of the batches, in the order
                                    the plan needs them, within cache_bytes (docs/data.md); 0: each file
                                    is decoded whole by the thread that builds the batches. The batches
                                    are the same bit for bit whatever the number */
} djct_dataset_options;
#define DJCT_DATASET_OPTIONS_VERSION 3
#define DJCT_DATASET_PREFAULT_DEFAULT ((size_t)2 << 30)
#define DJCT_DATASET_OPTIONS_INIT \
    { DJCT_DATASET_OPTIONS_VERSION, 0, 32, 0, 1, 0, DJCT_SHUFFLE_FILES, 0, 1, 2, 0, 0, DJCT_DATASET_PREFAULT_DEFAULT, NULL, 0 }

/** One batch of this rank: plain memory, owned by the dataset until djct_batch_release().
 *  record: per array (feature, truth, weight order as in the files) the values of the batch's
 *  events; ragged arrays carry row splits re-based to start at 0 and shape [n_events, -elements,
 *  inner...]; regular arrays shape [n_events, ...]. Names and feature names are borrowed from the
 *  dataset. Do not call djct_record_clear() on it. Events are in ascending global id order
 *  (file by file); event_ids[i] = file's first global id + index in the file.
 *  A batch may hold 0 events at the end of an epoch when there are fewer events than ranks. */
typedef struct djct_batch {
    djct_record    record;
    int64_t        n_events;
    int64_t        n_elements;   /* ragged elements (summed over distinct row-split vectors), or events */
    int64_t        epoch;
    int64_t        step;
    const int64_t *event_ids;    /* n_events */
    double         wait_seconds; /* how long next() waited for this batch */
} djct_batch;

/** Plan statistics of the current epoch. */
typedef struct {
    int64_t  steps;             /* per rank; the same on every rank */
    int64_t  events;            /* planned (all ranks) */
    int64_t  elements;          /* planned (all ranks) */
    int64_t  dropped_events;    /* too large in strict mode, or in all-empty steps */
    int64_t  dropped_elements;
    double   straggler_ratio;   /* mean over steps of (max over ranks / mean over ranks) of elements */
    uint64_t hash;              /* of the whole plan; equal on all ranks iff they agree */
} djct_plan_stats;

/** Open a dataset. `spec` is one or more entries separated by ',': a data file (.djctd or HDF5),
 *  a directory (its .djctd/.h5/.hdf5 files, sorted by name), a glob pattern (sorted), a .djcdc
 *  DataCollection, or a text file with one path per line ('#' comments; relative paths are
 *  relative to the list's directory). Reads every file's metadata (no values), checks that all
 *  files hold the same arrays, and plans epoch 0. `opts` may be NULL for defaults.
 *  On success *out is yours; release with djct_dataset_free().
 *  @return 0, DJCT_EINVAL (bad spec/option/file), DJCT_EIO, DJCT_ENOMEM. */
DJCT_API int djct_dataset_open(djct_dataset **out, const char *spec, const djct_dataset_options *opts);

/** As djct_dataset_open() with an explicit list of data files. */
DJCT_API int djct_dataset_open_files(djct_dataset **out, const char *const *paths, size_t n_paths,
                                     const djct_dataset_options *opts);

/** Stop the prefetch and decode threads and free everything (batches not yet released become
 *  invalid). NULL is fine. */
DJCT_API void djct_dataset_free(djct_dataset *ds);

/** Number of files / events (over all files) / metadata of file i (borrowed; NULL if out of range). */
DJCT_API size_t djct_dataset_n_files(const djct_dataset *ds);
DJCT_API int64_t djct_dataset_n_events(const djct_dataset *ds);
DJCT_API const djct_file_meta *djct_dataset_file(const djct_dataset *ds, size_t i);
/** Per-event element counts (ragged elements, or 1 per event), indexed by global event id. Borrowed. */
DJCT_API const int64_t *djct_dataset_event_elements(const djct_dataset *ds);
/** Non-zero when batches are limited by ragged elements (else they count events). */
DJCT_API int djct_dataset_counts_elements(const djct_dataset *ds);

/** Plan `epoch` and position before its first step: djct_dataset_seek(ds, epoch, 0). */
DJCT_API int djct_dataset_begin_epoch(djct_dataset *ds, int64_t epoch);

/** Position before step `step` of `epoch` (re-planning if the epoch changes); the batches that
 *  follow are bit-identical to those of an uninterrupted run. Restarts the prefetch thread.
 *  @return 0, or DJCT_EINVAL when step > djct_dataset_steps(). */
DJCT_API int djct_dataset_seek(djct_dataset *ds, int64_t epoch, int64_t step);

/** Steps of the current epoch (the same on every rank). */
DJCT_API int64_t djct_dataset_steps(const djct_dataset *ds);
/** Current epoch, and the step the next djct_dataset_next() returns. */
DJCT_API int64_t djct_dataset_epoch(const djct_dataset *ds);
DJCT_API int64_t djct_dataset_position(const djct_dataset *ds);

/** The next batch of this rank, or *out = NULL when the epoch is over. Waits for the prefetch
 *  thread when it is behind (the wait is measured). Errors of the thread (a bad file) are
 *  returned here with their message. Release each batch with djct_batch_release().
 *  @return 0, or a negative DJCT_E* code. */
DJCT_API int djct_dataset_next(djct_dataset *ds, djct_batch **out);

/** Give a batch back (its memory is reused for later batches). NULL is fine. */
DJCT_API void djct_batch_release(djct_dataset *ds, djct_batch *b);

/** Seconds next() waited for data: in total since open, and in the last call. */
DJCT_API double djct_dataset_wait_seconds(const djct_dataset *ds);
DJCT_API double djct_dataset_last_wait_seconds(const djct_dataset *ds);

/** Statistics of the current epoch's plan (all ranks). */
DJCT_API int djct_dataset_plan_stats(const djct_dataset *ds, djct_plan_stats *out);

/** The planned elements of every rank at every step of the current epoch: *elements points to
 *  steps * world_size values, row-major by step (borrowed, valid until the next seek). */
DJCT_API int djct_dataset_plan_elements(const djct_dataset *ds, const int64_t **elements, int64_t *steps,
                                        int *world_size);

/** Name events for messages: the files and each file's event numbers (0-based within the file),
 *  runs written as ranges: "'d/part-001.h5' events 3-5, 9; 'd/part-002.h5' event 0"; cut with
 *  "..." when it does not fit `cap` bytes. `ids` are global event ids in ascending order (a
 *  batch's event_ids, a plan's bin). @return 0, DJCT_EINVAL for an id outside the dataset. */
DJCT_API int djct_dataset_describe_events(const djct_dataset *ds, const int64_t *ids, size_t n, char *buf,
                                          size_t cap);

/** The global event ids (ascending) that `rank` gets at `step` of the current epoch (borrowed,
 *  valid until the next seek). Any rank can be asked: the plan is the same everywhere. */
DJCT_API int djct_dataset_plan_events(const djct_dataset *ds, int64_t step, int rank, const int64_t **events,
                                      size_t *n_events);

DJCT_END_DECLS

#endif /* DJCT_DATASET_H */
