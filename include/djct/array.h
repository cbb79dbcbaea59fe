/* Arrays and records: plain memory with shapes, shared by the data layer, the libtorch bridge
 * and the trainer (DESIGN: "dataset knows no tensors"). A ragged array stores all events'
 * elements concatenated plus int64 row splits, exactly as djcdata does. */
#ifndef DJCT_ARRAY_H
#define DJCT_ARRAY_H

#include "common.h"
#include "format.h"

DJCT_BEGIN_DECLS

#define DJCT_MAX_DIMS 8

typedef enum {
    DJCT_DTYPE_FLOAT32  = 0, /* djcdata dtype 0 */
    DJCT_DTYPE_INT32    = 1, /* djcdata dtype 1 */
    DJCT_DTYPE_FLOAT64  = 2,
    DJCT_DTYPE_INT64    = 3,
    DJCT_DTYPE_FLOAT16  = 4,
    DJCT_DTYPE_BFLOAT16 = 5
} djct_dtype;

/** Bytes per element (0 for an unknown dtype). */
DJCT_API size_t djct_dtype_size(djct_dtype t);
/** "float32", "int32", ...; "unknown" otherwise. */
DJCT_API const char *djct_dtype_name(djct_dtype t);

/** One array. Shape follows djcdata: for a ragged array shape[0] = number of events (rows),
 *  shape[1] = -(total ragged elements), shape[2..] the fixed inner dimensions, and the values
 *  are row-major over [total, shape[2], ...]. For a regular array every shape[i] >= 0 and
 *  n_values = product(shape). All pointers are owned by whoever owns the array (see the
 *  producing function); djct_array_clear() frees them. */
typedef struct djct_array {
    char      *name;                 /* "" when unnamed; never NULL in arrays djct produced */
    char     **feature_names;        /* n_feature_names strings */
    size_t     n_feature_names;
    djct_dtype dtype;
    int        ndim;                 /* 1..DJCT_MAX_DIMS */
    int64_t    shape[DJCT_MAX_DIMS];
    int64_t   *row_splits;           /* NULL when not ragged; else n_row_splits = shape[0] + 1 */
    size_t     n_row_splits;
    void      *values;               /* n_values elements of dtype */
    size_t     n_values;
} djct_array;

/** One trainData record (or one batch): feature, truth and weight arrays, in file order. */
typedef struct djct_record {
    djct_array *features;
    size_t      n_features;
    djct_array *truths;
    size_t      n_truths;
    djct_array *weights;
    size_t      n_weights;
} djct_record;

/** What the dataset planner needs of one file, read without decompressing values
 *  (row splits are decoded). Produced by the djcdata and HDF5 readers; release with
 *  djct_file_meta_clear(). */
typedef struct djct_file_meta {
    char       *path;
    djct_format format;
    size_t      n_records;      /* trainData records in the file (all are counted) */
    int64_t     n_events;       /* over all records */
    int64_t    *event_elements; /* n_events counts: per-event ragged elements, summed over the
                                   distinct row-split vectors (djcdata.md section 11); NULL when
                                   no array is ragged */
    int64_t     n_elements;     /* sum of event_elements, or n_events when not ragged */
    djct_record layout;         /* every array with name, feature names, dtype, ndim and the
                                   whole-file shape; values and row_splits are NULL */
} djct_file_meta;

/** Free what the meta points to and zero it. NULL is fine. */
DJCT_API void djct_file_meta_clear(djct_file_meta *m);

/** Non-zero when the array is ragged: it has row splits, or (a metadata layout) says how many. */
DJCT_API int djct_array_is_ragged(const djct_array *a);
/** Number of events (rows, shape[0]). */
DJCT_API int64_t djct_array_nrows(const djct_array *a);
/** Elements per ragged element / per row: product of the fixed inner dimensions
 *  (shape[2..] for ragged, shape[1..] for regular; 1 when there are none). */
DJCT_API int64_t djct_array_inner_size(const djct_array *a);
/** Check the invariants above (shape vs n_values, row splits start at 0, non-decreasing, last =
 *  total); on violation returns DJCT_EINVAL with a message naming the array and the field. */
DJCT_API int djct_array_validate(const djct_array *a);
/** Deep copy into *dst (which is overwritten, not freed). */
DJCT_API int djct_array_copy(djct_array *dst, const djct_array *src);
/** Free everything the array points to and zero it. NULL is fine. */
DJCT_API void djct_array_clear(djct_array *a);
/** Free every array of the record and the arrays' storage, and zero it. NULL is fine. */
DJCT_API void djct_record_clear(djct_record *r);

DJCT_END_DECLS

#endif /* DJCT_ARRAY_H */
