/* Internals shared by the files of the h5 module (h5.c, h5_direct.c, h5_read.c, h5_write.c,
 * h5_writer.c): the open file's body, the error and crash-guard helpers, and the writers' pieces. src/h5_int.h is the module's face to the
 * dataset. Not installed. */
#ifndef DJCT_H5_FILE_INT_H
#define DJCT_H5_FILE_INT_H

#include <hdf5.h>
#include <stdint.h>

#include "h5_int.h"

#define MAX_ARRAYS_PER_GROUP 4096
#define MAX_FEATURE_NAMES 1000000
#define MAX_STRING_BYTES (1 << 20)

typedef struct {
    char    obj[64];               /* "/features/000" for messages */
    hid_t   ds;                    /* the values dataset */
    int     ragged;
    int     rank;                  /* of `values` */
    hsize_t ext[DJCT_MAX_DIMS];
    size_t  row_values;            /* values per ragged element or per event */
    int64_t *rs;                   /* row splits (ragged only) */
    djct_dtype dtype;
    /* direct reads: the raw bytes are native, unfiltered and at known file offsets, so rows are
     * copied from the file mapping without libhdf5's per-hyperslab overhead */
    int      direct;
    hsize_t  chunk_rows;           /* rows per chunk (contiguous: all rows, one "chunk") */
    size_t   n_chunks;
    uint64_t *chunk_off;           /* file offset of each chunk, in row order */
} h5arr;

struct djct_h5_file {
    char          *path;
    hid_t          fid;
    uint64_t       max_bytes;      /* bound on any declared extent, from the file size */
    size_t         chunk_cache;    /* bytes of HDF5 chunk cache per values dataset (0: default) */
    djct_file_meta meta;
    size_t         n;              /* flat arrays: features, truths, weights */
    h5arr         *a;
    uint64_t       file_size;
    const char    *map;            /* read-only mapping of the whole file when an array is direct */
    /* buffers held across a libhdf5 call during open: here rather than in locals, so that a
     * crash inside libhdf5 leaves nothing of djct's unreachable (close frees them) */
    void          *scratch[2];
};


extern const char *const h5_containers[3]; /* "features", "truths", "weights" */

#define CLOSE(fn, h)                                                                       \
    do {                                                                                   \
        if ((h) >= 0)                                                                      \
            fn(h);                                                                         \
        (h) = -1;                                                                          \
    } while (0)

/* ---- h5.c ---- */
/** One line: '<path>': <object>: <what> (hdf5: <innermost message>); returns `code`. */
int h5fail(int code, const char *path, const char *obj, const char *what);
/** Switch off HDF5's automatic error printing (per thread in threadsafe builds). */
void h5_quiet(void);
/** Name the object being parsed now, for a crash message. */
void h5_at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** 0, or the error for any HDF5 work on `path` once libhdf5 has crashed in this process. */
int h5_poisoned(const char *path);
/** Run body(arg), libhdf5 calls on `path`, under the crash guard; with cpu_seconds > 0 stopped
 *  once it spent that long in libhdf5's code. A crash poisons the process. */
int h5_guarded(const char *path, double cpu_seconds, int (*body)(void *), void *arg);

/* ---- h5_write.c (also used by h5_writer.c) ---- */
/** A string attribute as h5py writes `str`: variable-length UTF-8, scalar (n = 1) or n strings.
 *  0, or -1 with the HDF5 error stack set (for h5fail). */
int h5_write_str_attr(hid_t loc, const char *aname, const char *const *s, size_t n, int scalar);
/** A group without timestamps, so that the same record always gives the same bytes; -1 on error. */
hid_t h5_new_group(hid_t loc, const char *name);

/* ---- h5_direct.c ---- */
/** Map the file when some array can be read straight from it, and check that the mapping holds
 *  what libhdf5 reads; any doubt turns direct reads off. */
void h5_setup_direct(djct_h5_file *f);
/** Copy rows [r0, r1) of a direct array to dst (run it under h5_map_guarded). */
void h5_direct_rows(const djct_h5_file *f, const h5arr *h, hsize_t r0, hsize_t r1, char *dst);
/** Run body(arg), copies out of f's mapping for array h, catching SIGBUS there (the file shrank). */
int h5_map_guarded(const djct_h5_file *f, const h5arr *h, int (*body)(void *), void *arg);

#endif /* DJCT_H5_FILE_INT_H */
