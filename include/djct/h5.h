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

DJCT_END_DECLS

#endif /* DJCT_H5_H */
