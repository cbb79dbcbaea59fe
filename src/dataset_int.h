/* Internals of the dataset module shared by its files (see src/dataset.c). Not installed. */
#ifndef DJCT_DATASET_INT_H
#define DJCT_DATASET_INT_H

#include <pthread.h>
#include <stdint.h>

#include "djct/dataset.h"
#include "djct/h5.h"
#include "h5_int.h"

#define MAX_OPEN_H5 64

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
    djct_dataset_options o;
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
    /* the current epoch's plan */
    int64_t         epoch;
    int64_t         steps;
    int64_t        *bin_off;    /* steps * W + 1 offsets into ev */
    int64_t        *ev;
    int64_t        *bin_el;     /* steps * W */
    djct_plan_stats st;
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
/** Plan `epoch` into ds (bins, events, elements, stats). */
int dataset_plan_epoch(djct_dataset *ds, int64_t epoch);

/* ---- dataset_cache.c ---- */
/** The source of `file`, opened or decoded if it is not cached. */
int dataset_source_get(djct_dataset *ds, size_t file, source **out);
void dataset_source_clear(source *s);
/** Evict least recently used sources until within budget (never during a batch's assembly). */
void dataset_cache_trim(djct_dataset *ds);
/** Row splits of flat array k of a source. */
const int64_t *dataset_source_row_splits(const source *s, size_t k);

/* ---- dataset_batch.c ---- */
/** Build this rank's batch of `step`. */
int dataset_build_batch(djct_dataset *ds, int64_t step, bint **out);
void dataset_bint_free(bint *b);

/* ---- dataset_prefetch.c ---- */
int dataset_start_prefetch(djct_dataset *ds);
void dataset_stop_prefetch(djct_dataset *ds);

#endif /* DJCT_DATASET_INT_H */
