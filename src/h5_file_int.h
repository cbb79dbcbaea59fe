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

/* ---- value types (h5_convert.c) ---- */
enum { H5C_NATIVE, H5C_EXACT, H5C_CHECKED }; /* h5_conv.mode */
enum { H5C_SRC_NONE, H5C_SRC_F64, H5C_SRC_I32, H5C_SRC_U32, H5C_SRC_I64, H5C_SRC_U64, H5C_SRC_BOOL }; /* .src */

/* How the values of one dataset are read. NATIVE: the file holds the target dtype (libhdf5 at
 * most swaps bytes; direct reads possible). EXACT: libhdf5 converts into the target and no value
 * can be lost. CHECKED: libhdf5 reads `mem` (src_size bytes per value) and h5_conv_run converts. */
typedef struct {
    djct_dtype  target;   /* float32 or int32: what the model gets */
    int         mode;
    int         src;      /* CHECKED: the layout of the values read */
    size_t      src_size; /* bytes per value as libhdf5 reads it (4 for NATIVE and EXACT) */
    hid_t       mem;      /* the memory type of H5Dread */
    int         own_mem;  /* mem was made for this dataset (close it) */
    const char *stored;   /* the file's dtype: "float64", "uint8", "bool", ... */
} h5_conv;

/** Classify the file type `t`, read as `want` (DJCT_DTYPE_FLOAT32/INT32, or -1: float32 for
 *  floating point, int32 for integers and bools). 0, or -1 with `why` ("dtype: ...; what to do"). */
int h5_conv_classify(h5_conv *c, hid_t t, int want, char *why, size_t nwhy);
void h5_conv_clear(h5_conv *c);
/** Convert n CHECKED values from src into dst (target dtype): -1, or the index of the first value
 *  the target cannot hold, with `why` naming it. */
int64_t h5_conv_run(const h5_conv *c, const void *src, void *dst, size_t n, char *why, size_t nwhy);
/** The rule of a CHECKED conversion in a few words, for djct_inspect. */
const char *h5_conv_rule(const h5_conv *c);

/* ---- mapping files (h5_map.c) ---- */
enum { H5S_ROW_SPLITS = 1, H5S_OFFSETS, H5S_COUNTS }; /* what makes an array ragged */
extern const char *const h5_splits_kind_name[4];     /* "", "row_splits", "offsets", "counts" */

typedef struct {
    char   *name;          /* the array's name: the section's NAME */
    char   *values;        /* dataset path of the values */
    char   *splits;        /* dataset path of the row splits / offsets / counts, or NULL */
    int     splits_kind;   /* H5S_*, 0 when regular */
    char  **feature_names; /* n_feature_names */
    size_t  n_feature_names;
    int     dtype;         /* -1: by the file's dtype; else DJCT_DTYPE_FLOAT32 or INT32 */
    int     line;          /* of the section header, for messages */
} h5_map_array;

struct djct_h5_map {
    char         *path;
    h5_map_array *a[3];    /* features, truths, weights, in the file's order */
    size_t        n[3];
};

typedef struct {
    char    obj[96];               /* "/features/000", or "[feature NAME]" of a map, for messages */
    char   *vname;                 /* the values dataset's path, for messages */
    char   *sname;                 /* the splits dataset's path (NULL: regular) */
    int     splits_kind;           /* H5S_* or 0 */
    h5_conv conv;                  /* how the values are read */
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
    const djct_h5_map *h5map;      /* the mapping file the arrays come from; NULL: djct's layout */
    djct_h5_map   *own_h5map;      /* the one found beside the file (freed on close) */
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

/** Validate one array's datasets and fill its layout array (dtype and shape) and h: `values` and
 *  `splits` (NULL: regular) are paths relative to `loc`, `kind` says what `splits` holds, `want`
 *  the dtype asked for (-1: by the file's). h->obj, vname and sname are set by the caller. */
int h5_open_data(djct_h5_file *f, hid_t loc, const char *values, const char *splits, int kind, int want,
                 djct_array *lay, h5arr *h);
/** "<vname>" for djct's layout, "<vname> ([feature NAME] in map 'M')" for a mapped array. */
const char *h5_where(const djct_h5_file *f, const h5arr *h, const char *dataset, char *buf, size_t n);

/* ---- h5_map.c ---- */
/** Open the arrays the map names (f->h5map set, file open): fills f->a, f->n and the layout. */
int h5_map_open_arrays(djct_h5_file *f);
/** The map beside `path` ("<path>" DJCT_H5_MAP_SUFFIX): 1 with *out loaded, 0 when there is none,
 *  <0 when it cannot be read. */
int h5_map_beside(djct_h5_map **out, const char *path);

/* ---- h5_write.c (also used by h5_writer.c) ---- */
/** What both writers do first: check the options' version, refuse when libhdf5 crashed earlier
 *  (h5_poisoned), then the options' chunk size (default 1 MiB) and gzip level (0..9, else
 *  DJCT_EINVAL). */
int h5_write_settings(const char *path, const djct_h5_write_options *opts, size_t *chunk, int *gzip);
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
