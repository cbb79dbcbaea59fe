/* djct's HDF5 layout for trainData records ("djct-ragged-1", docs/hdf5_layout.md): one group per
 * array with a `values` dataset and, for ragged arrays, an int64 `row_splits` dataset. Files are
 * written and read with libhdf5, chunked, optionally gzip-compressed, and readable by h5py.
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
