/* djct's HDF5 layout for trainData records ("djct-ragged-1", docs/hdf5_layout.md): one group per
 * array with a `values` dataset and, for ragged arrays, an int64 `row_splits` (or a `counts`)
 * dataset. Files are written and read with libhdf5, chunked, optionally gzip-compressed, and
 * readable by h5py. Files in a layout of their own are read through a mapping file (INI) that
 * names their datasets (docs/data.md, "HDF5 files as they are"). Values of other numeric dtypes
 * (float64, float16, 8- to 64-bit integers, bool) are converted at read to float32 or int32.
 * Every reader validates the whole layout first and fails with one line naming the file, the
 * group or dataset and the field. HDF5's own error printing is switched off on every call. */
#ifndef DJCT_H5_H
#define DJCT_H5_H

#include "array.h"

DJCT_BEGIN_DECLS

/** Value of the root attribute `djct_format` that marks a djct HDF5 file. */
#define DJCT_H5_LAYOUT "djct-ragged-1"

typedef struct {
    unsigned int version;     /* always first; filled in by the _INIT macro */
    size_t       chunk_bytes; /* target bytes per chunk of a `values` dataset; 0: 1 MiB */
    int          gzip_level;  /* 0: no compression; 1..9: deflate (with the shuffle filter) */
} djct_h5_write_options;
#define DJCT_H5_WRITE_OPTIONS_VERSION 1
#define DJCT_H5_WRITE_OPTIONS_INIT { DJCT_H5_WRITE_OPTIONS_VERSION, 0, 0 }

/** The name of the mapping file found beside an HDF5 file: "<file>" DJCT_H5_MAP_SUFFIX. */
#define DJCT_H5_MAP_SUFFIX ".djct.ini"

/** A mapping file: which datasets of an HDF5 file are the feature, truth and weight arrays
 *  (docs/data.md). Immutable once loaded; may be shared by threads. */
typedef struct djct_h5_map djct_h5_map;

/** Read and check the mapping file at `path` (INI: one [feature NAME], [truth NAME] or
 *  [weight NAME] section per array with values = DATASET and optionally one of row_splits,
 *  offsets or counts = DATASET, feature_names = A, B, ... and dtype = float32|int32). On success
 *  *out is yours: release it with djct_h5_map_free(). @return 0, DJCT_EIO (unreadable) or
 *  DJCT_EINVAL naming the line. */
DJCT_API int djct_h5_map_load(djct_h5_map **out, const char *path);

/** Free a map (NULL is fine). */
DJCT_API void djct_h5_map_free(djct_h5_map *map);

typedef struct {
    unsigned int       version; /* always first; filled in by the _INIT macro */
    const djct_h5_map *map;     /* the datasets to read; NULL: the map beside the file
                                   ("<file>" DJCT_H5_MAP_SUFFIX) when there is one, else djct's
                                   layout. Borrowed for the call. */
} djct_h5_read_options;
#define DJCT_H5_READ_OPTIONS_VERSION 1
#define DJCT_H5_READ_OPTIONS_INIT { DJCT_H5_READ_OPTIONS_VERSION, NULL }

/** DJCT_FORMAT_H5 when djct_format_detect() finds the HDF5 signature, else DJCT_FORMAT_UNKNOWN
 *  (also when it cannot be opened). Does not validate the layout. */
DJCT_API djct_format djct_h5_format_of(const char *path);

/** Validate the layout of `path` and fill *out (overwritten, not freed) with its metadata: one
 *  record, event count, per-event element counts summed over the distinct row-split vectors, and
 *  the layout (names, feature names, dtypes, shapes; no values). Reads row splits only.
 *  Release with djct_file_meta_clear(). @return 0, DJCT_EIO or DJCT_EINVAL. */
DJCT_API int djct_h5_read_meta(djct_file_meta *out, const char *path);

/** Read the whole file into *out (overwritten, not freed; release with djct_record_clear()).
 *  @return 0, DJCT_EIO, DJCT_EINVAL or DJCT_ENOMEM. */
DJCT_API int djct_h5_read(djct_record *out, const char *path);

/** Read events [first_event, first_event + n_events) with hyperslab selections only (nothing
 *  else of the values is read); ragged row splits in *out start at 0. n_events may be 0.
 *  @return 0, or DJCT_EINVAL when the range is outside the file's events. */
DJCT_API int djct_h5_read_events(djct_record *out, const char *path, int64_t first_event, int64_t n_events);

/** As djct_h5_read_meta, djct_h5_read and djct_h5_read_events (which use the map beside the
 *  file, if any), with options; `opts` may be NULL. */
DJCT_API int djct_h5_read_meta_ext(djct_file_meta *out, const char *path, const djct_h5_read_options *opts);
DJCT_API int djct_h5_read_ext(djct_record *out, const char *path, const djct_h5_read_options *opts);
DJCT_API int djct_h5_read_events_ext(djct_record *out, const char *path, int64_t first_event, int64_t n_events,
                                     const djct_h5_read_options *opts);

/** Where one array of an HDF5 file is read from, and how. */
typedef struct {
    char       *values;      /* the values dataset: "/features/000/values" or the mapped one */
    char       *splits;      /* the dataset that makes the array ragged; NULL for a regular array */
    const char *splits_kind; /* "row_splits", "offsets" or "counts"; NULL for a regular array */
    const char *stored;      /* the values' dtype in the file: "float64", "uint8", "bool", ... */
    int         converted;   /* 1: converted at read to the array's dtype (float32 or int32) */
    const char *rule;        /* converted: what is checked, in words; NULL otherwise */
} djct_h5_source;

/** What djct_h5_inspect found: the metadata as djct_h5_read_meta gives it, the mapping used and
 *  where every array comes from. Release with djct_h5_info_clear(). */
typedef struct {
    djct_file_meta  meta;
    char           *map;       /* the mapping file's path; NULL: djct's layout */
    djct_h5_source *sources;   /* n_sources: the features, then the truths, then the weights */
    size_t          n_sources;
} djct_h5_info;

/** Validate `path` as djct_h5_read_meta_ext does and describe it into *out (overwritten).
 *  @return 0, DJCT_EIO or DJCT_EINVAL. */
DJCT_API int djct_h5_inspect(djct_h5_info *out, const char *path, const djct_h5_read_options *opts);

/** Free what the info points to and zero it. NULL is fine. */
DJCT_API void djct_h5_info_clear(djct_h5_info *info);

/** Write `rec` (validated first) to `path` (truncated) in the djct-ragged-1 layout. `opts` may
 *  be NULL for defaults. @return 0, DJCT_EINVAL or DJCT_EIO. */
DJCT_API int djct_h5_write(const char *path, const djct_record *rec, const djct_h5_write_options *opts);

/* ---- writing in pieces (src/h5_writer.c) ----------------------------------------------------- */

/** A djct-ragged-1 file written one record at a time: its datasets grow along axis 0, so a file
 *  of any size is written without holding it in memory. */
typedef struct djct_h5_writer djct_h5_writer;

/** Create `path` (truncated) with the arrays of `layout` (per container: name, feature names,
 *  dtype float32/int32, ndim, raggedness and inner dimensions; its values, row splits and event
 *  count are not used, so the first record to append can serve) and no events yet. `opts` may be
 *  NULL (chunk_bytes: bytes per chunk along axis 0; gzip_level as for djct_h5_write). On success
 *  *out is yours: finish with djct_h5_writer_close(). @return 0, DJCT_EINVAL or DJCT_EIO. */
DJCT_API int djct_h5_writer_create(djct_h5_writer **out, const char *path, const djct_record *layout,
                                   const djct_h5_write_options *opts);

/** Append the events of `rec` (validated; the same arrays as the layout: count per container,
 *  dtype, raggedness, inner dimensions) after those written so far; ragged row splits continue
 *  from the elements already written. A failed append leaves the file incomplete (close
 *  reports it). @return 0, DJCT_EINVAL or DJCT_EIO. */
DJCT_API int djct_h5_writer_append(djct_h5_writer *w, const djct_record *rec);

/** Events written so far. */
DJCT_API int64_t djct_h5_writer_events(const djct_h5_writer *w);

/** Close the file and free the writer (NULL is fine). The file is complete and valid only when
 *  this returns 0 after successful appends; otherwise remove it. */
DJCT_API int djct_h5_writer_close(djct_h5_writer *w);

DJCT_END_DECLS

#endif /* DJCT_H5_H */
