/* Internals of the dataset module shared by its files (see src/dataset.c). Not installed. */
#ifndef DJCT_DATASET_INT_H
#define DJCT_DATASET_INT_H

#include <pthread.h>
#include <stdint.h>

#include "djct/dataset.h"
#include "djct/h5.h"
#include "h5_int.h"

typedef struct dpool dpool; /* the decode pool (dataset_decode.c) */

#define MAX_OPEN_H5 64

/* What the epoch plan is made from (dataset_plan.c): event sizes, file boundaries, options. */
typedef struct {
    int            world_size;
    int            shuffle;        /* a djct_shuffle */
    uint64_t       seed;
    int            by_elements;    /* 1: batches limited by elements; 0: they count events */
    int64_t        batch_events;   /* count mode: events per rank and step (0: batch_elements) */
    int64_t        batch_elements; /* element mode: the limit per rank and step */
    int            squared_limit;  /* element mode: (sum of elements)^2 <= batch_elements */
    int            strict;         /* element mode: drop an event over the limit (else serve it alone) */
    int            drop_last;      /* count mode: drop a last step that is not full */
    int64_t        n_events;
    const int64_t *event_elements; /* n_events: elements per event (1 each when counting events) */
    size_t         n_files;
    const int64_t *file_first;     /* n_files + 1: each file's first event; the last is n_events */
} djct_plan_input;

/* One epoch's plan: bin (step, rank) is b = step * world_size + rank and holds the events
 * events[bin_start[b] .. bin_start[b + 1]), ascending, with bin_elements[b] elements. */
typedef struct {
    int64_t         epoch;
    int64_t         steps;        /* the same for every rank */
    int64_t        *bin_start;    /* steps * world_size + 1 */
    int64_t        *bin_elements; /* steps * world_size */
    int64_t        *events;       /* n_planned */
    int64_t         n_planned;
    djct_plan_stats stats;
} djct_dataset_plan;

typedef struct bint { /* a batch with its reusable storage */
    djct_batch   b;     /* first: a djct_batch* is a bint* */
    struct bint *next;
    void        *arena;
    size_t       cap;
    djct_array  *arrays; /* n_arrays, split over features / truths / weights */
    int64_t     *ids;
    size_t       ids_cap;
} bint;

typedef struct {             /* a file whose values are at hand */
    size_t             file;
    djct_h5_file      *h5;   /* HDF5: open handle, values read by hyperslab */
    djct_record        rec;  /* djcdata: the decoded file */
    const djct_array **flat; /* djcdata: flat array k */
    size_t             bytes;
    uint64_t           used;
} source;

struct djct_dataset {
    djct_dataset_options o;     /* o.h5_map is not kept: h5map is */
    djct_h5_map    *h5map;      /* the mapping of every HDF5 file (NULL: each file's own, or the layout) */
    size_t          nf;
    djct_file_meta *files;
    int64_t        *first;      /* nf + 1: global id of each file's first event */
    int64_t         N;
    int64_t        *cnt;        /* per event: elements (or 1) */
    int             by_elements;
    size_t          n_arrays;
    const djct_array **lay;     /* flat layout arrays of file 0 */
    size_t          counts[3];  /* arrays per container */
    size_t         *row_values; /* per flat array: values per row / ragged element */
    int            *ragged;     /* per flat array */
    djct_dataset_plan plan;     /* the current epoch's */
    int64_t         cursor;     /* next step next() hands out */
    /* decoded-file cache (used by one thread at a time: the producer) */
    source         *src;
    size_t          nsrc;
    size_t          cache_used;
    uint64_t        tick;
    /* prefetch */
    pthread_t       th;
    int             running;
    pthread_mutex_t mu;
    pthread_cond_t  cv_item, cv_space;
    bint          **q;
    int             qhead, qcount;
    int             stop, done, err;
    char            errmsg[1024];
    int64_t         build_step;
    bint           *freelist;
    int             nfree;
    double          wait_total, wait_last;
    /* prefault of mapped HDF5 files (producer thread) */
    unsigned char  *prefaulted; /* nf: the file's mapping was touched once */
    int64_t         prefault_used;
    /* decode pool (dataset_decode.c); the fields below `pool` belong to the producer */
    dpool          *pool;       /* NULL: .djctd files are decoded whole by the producer */
    size_t         *fbytes;     /* nf: decoded bytes of each file (from its metadata) */
    int64_t        *use_start;  /* steps + 1: this rank's step s reads use_file[use_start[s] .. [s + 1]) */
    size_t         *use_file;   /* ascending within a step */
    int64_t         n_uses;
    int64_t        *fuse_start; /* nf + 1: file f is read at steps fuse_step[fuse_start[f] .. [f + 1]) */
    int64_t        *fuse_step;
    int64_t         la_pos;     /* the next use the lookahead considers */
    int64_t         la_step;    /* the step of use la_pos */
    unsigned char  *pooled;     /* nf: the file is queued in the pool, decoding or decoded */
    size_t          n_pooled;
    size_t          ahead_bytes; /* decoded bytes of the pooled files (counted in the cache budget) */
};

/* ---- dataset.c ---- */
extern const char *const dataset_container_name[3]; /* "feature", "truth", "weight" */
/** The record's three array lists and their lengths. */
void dataset_layout_lists(const djct_record *r, const djct_array *lists[3], size_t n[3]);

/* ---- dataset_files.c ---- */
typedef struct {
    char **p;
    size_t n, cap;
} strlist;
/** Add the files one spec entry names. */
int dataset_list_add(strlist *l, const char *entry);
void dataset_list_free(strlist *l);

/* ---- dataset_plan.c ---- */
/** Plan `epoch` of `in`; on success *out (cleared first) holds it, else it is unchanged. */
int djct_dataset_plan_make(djct_dataset_plan *out, const djct_plan_input *in, int64_t epoch);
/** Free a plan's arrays; a zeroed plan is fine. */
void djct_dataset_plan_clear(djct_dataset_plan *p);

/* ---- dataset_cache.c ---- */
/** The cache budget (cache_bytes, or its default). */
size_t dataset_cache_budget(const djct_dataset *ds);
/** The source of `file`, opened or decoded if it is not cached. */
int dataset_source_get(djct_dataset *ds, size_t file, source **out);
void dataset_source_clear(source *s);
/** Put a decoded .djctd file into the cache (checked as dataset_source_get checks it); *rec is
 *  consumed either way. */
int dataset_source_adopt(djct_dataset *ds, size_t file, djct_record *rec);
/** 1 when `file` is in the cache. */
int dataset_source_cached(const djct_dataset *ds, size_t file);
/** Evict sources until the cache and the pool's files fit the budget (never during a batch's
 *  assembly): with a pool the source the plan reads last after step `from` (or not again),
 *  else the least recently used. */
void dataset_cache_trim(djct_dataset *ds, int64_t from);
/** Row splits of flat array k of a source. */
const int64_t *dataset_source_row_splits(const source *s, size_t k);

/* ---- dataset_batch.c ---- */
/** Build this rank's batch of `step`. */
int dataset_build_batch(djct_dataset *ds, int64_t step, bint **out);
void dataset_bint_free(bint *b);

/* ---- dataset_prefetch.c ---- */
int dataset_start_prefetch(djct_dataset *ds);
void dataset_stop_prefetch(djct_dataset *ds);

/* ---- dataset_decode.c ---- */
/** Start o.decode_threads threads when some file is a .djctd (else no pool). */
int dataset_pool_start(djct_dataset *ds);
/** Drop every file queued, decoding or decoded ahead (waits for the blocks being decoded), then
 *  join the threads and free the pool. */
void dataset_pool_stop(djct_dataset *ds);
/** Empty the pool (seek: the plan or position changes): files decoded ahead go into the cache,
 *  the others are dropped (after the blocks being decoded are done). */
void dataset_pool_reset(djct_dataset *ds);
/** Make a producer waiting in dataset_pool_take give up (the prefetch thread is being stopped). */
void dataset_pool_interrupt(djct_dataset *ds);
/** Index this rank's file reads in the current plan (after planning an epoch). */
int dataset_pool_plan(djct_dataset *ds);
/** Queue the next .djctd files the plan reads from `step` on, in that order, while they fit the
 *  cache budget beside the cached files needed before them. */
void dataset_pool_ahead(djct_dataset *ds, int64_t step);
/** The decoded record of `file` (queued first if it is not pooled), or its error. */
int dataset_pool_take(djct_dataset *ds, size_t file, djct_record *out);
/** `file` left the cache (trimmed at step `from`): the lookahead considers it again. */
void dataset_pool_evicted(djct_dataset *ds, size_t file, int64_t from);
/** The first step >= `step` at which this rank reads `file`; INT64_MAX: none this epoch. */
int64_t dataset_pool_next_use(const djct_dataset *ds, size_t file, int64_t step);

#endif /* DJCT_DATASET_INT_H */
