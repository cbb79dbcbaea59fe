/* djcdata files (jkiesele/djcdata): .djcsa (one SimpleArray), .djctd (one or more TrainData
 * records back to back) and .djcdc sample lists. Byte layout: ../shared/formats/djcdata.md and
 * docs/djcdata.md. Readers accept format versions 2.0 and 2.1 and check every invariant of the
 * spec's reader checklist; writers emit 2.1 with QuickLZ level-3 chunks (src/qlz.c).
 * Every error message names the file, the byte offset and the field. Thread safety: all
 * functions are reentrant (no shared state). */
#ifndef DJCT_DJCDATA_H
#define DJCT_DJCDATA_H

#include "array.h"
#include "common.h"

DJCT_BEGIN_DECLS

/** Options of the writers. Initialise with DJCT_DJCDATA_WRITE_OPTIONS_INIT. */
typedef struct {
    unsigned int version; /* DJCT_DJCDATA_WRITE_OPTIONS_VERSION */
    int compress;         /* 1 (default): QuickLZ level 3, a stored chunk where that does not
                             shrink the data (as the reference); 0: stored chunks only */
    int append;           /* .djctd only: add a record at the end of an existing file (which
                             must hold compatible records); 0: create or truncate */
} djct_djcdata_write_options;
#define DJCT_DJCDATA_WRITE_OPTIONS_VERSION 1
#define DJCT_DJCDATA_WRITE_OPTIONS_INIT { DJCT_DJCDATA_WRITE_OPTIONS_VERSION, 1, 0 }

/** djct_format_detect()'s answer (by content; any of the formats), DJCT_FORMAT_UNKNOWN where it
 *  fails. Prefer djct_format_detect(), whose error says why. */
DJCT_API djct_format djct_djcdata_format_of(const char *path);

/** Metadata of a .djctd or .djcsa file without decompressing values: row splits are decoded,
 *  value blocks are skipped (their headers are still checked). Fills every field of
 *  djct_file_meta; layout arrays carry name, feature names, dtype, ndim and the whole-file
 *  shape (all records), with values and row_splits NULL and n_row_splits = events + 1 for ragged
 *  arrays (0 otherwise). event_elements follows djcdata.md section 11 per record: the sum over
 *  the distinct row-split vectors of the feature, truth and weight arrays. A .djcsa is one record
 *  with one feature array. Release with djct_file_meta_clear().
 *  @return 0, DJCT_EIO (cannot open/read), DJCT_EINVAL (malformed file), DJCT_ENOMEM. */
DJCT_API int djct_djcdata_read_meta(djct_file_meta *out, const char *path);

/** As djct_djcdata_read_meta() for an image in memory; `format` is DJCT_FORMAT_DJCTD or
 *  DJCT_FORMAT_DJCSA, `name_for_errors` becomes out->path (NULL: "<memory>"). */
DJCT_API int djct_djcdata_read_meta_mem(djct_file_meta *out, const void *buf, size_t len,
                                        djct_format format, const char *name_for_errors);

/** Read a whole file into *out (overwritten, not freed): for a .djctd all records concatenated
 *  (djcdata.md section 5: values and events along axis 0, row splits merged, names from the first
 *  record); for a .djcsa one record holding the array as its only feature.
 *  Release with djct_record_clear(). @return 0 or a negative DJCT_E* code. */
DJCT_API int djct_djcdata_read(djct_record *out, const char *path);

/** As djct_djcdata_read() for a .djctd image in memory; `name_for_errors` names it in messages
 *  (NULL: "<memory>"). */
DJCT_API int djct_djcdata_read_mem(djct_record *out, const void *buf, size_t len,
                                   const char *name_for_errors);

/** Number of records in a .djctd file (value blocks are skipped, not decoded). */
DJCT_API int djct_djcdata_count_records(size_t *n_records, const char *path);

/** Read only record `index` (0-based) of a .djctd file; the records before it are skipped
 *  without decompression. For a .djcsa, index 0 is the file's array. */
DJCT_API int djct_djcdata_read_record(djct_record *out, const char *path, size_t index);

/** Write `rec` as a .djctd (format 2.1). Every array must pass djct_array_validate() and be
 *  float32 or int32. With opts->append the record is added at the end of an existing file after
 *  checking it is compatible with the file's first record (same array count per container, dtype,
 *  ndim, raggedness and inner dimensions); a missing file is created. `opts` may be NULL.
 *  The file is written to `path` directly (append) or via a temporary file renamed into place. */
DJCT_API int djct_djcdata_write(const char *path, const djct_record *rec,
                                const djct_djcdata_write_options *opts);

/** Encode `rec` as one .djctd record into a malloc'ed buffer (*buf, *len are yours: free()). */
DJCT_API int djct_djcdata_write_mem(void **buf, size_t *len, const djct_record *rec,
                                    const djct_djcdata_write_options *opts);

/** Read a .djcsa file (one array) into *out (overwritten); release with djct_array_clear(). */
DJCT_API int djct_djcsa_read(djct_array *out, const char *path);

/** As djct_djcsa_read() for a .djcsa image in memory. */
DJCT_API int djct_djcsa_read_mem(djct_array *out, const void *buf, size_t len,
                                 const char *name_for_errors);

/** Write one array as a .djcsa (format 2.1). opts->append is ignored. `opts` may be NULL. */
DJCT_API int djct_djcsa_write(const char *path, const djct_array *a,
                              const djct_djcdata_write_options *opts);

/** Encode one array as a .djcsa image into a malloc'ed buffer (free() it). */
DJCT_API int djct_djcsa_write_mem(void **buf, size_t *len, const djct_array *a,
                                  const djct_djcdata_write_options *opts);

/** Read a .djcdc DataCollection (seven protocol-0 pickles; djcdata.md section 10): the sample
 *  paths, resolved against the directory of the .djcdc unless absolute, the batch size (1 when
 *  the file has only the first pickles) and the sum-of-squares flag (0 likewise). *paths is an
 *  array of *n malloc'ed strings; release with djct_djcdc_free(). batch_size and squared may be
 *  NULL. Objects it does not understand in pickles 4 and 7 are skipped.
 *  @return 0, DJCT_EIO, DJCT_EINVAL (malformed pickle, with the byte offset), DJCT_ENOMEM. */
DJCT_API int djct_djcdc_read(char ***paths, size_t *n, int64_t *batch_size, int *squared,
                             const char *path);

/** As djct_djcdc_read() for a .djcdc image in memory; relative sample paths are resolved
 *  against `base_dir` (NULL or "": left as they are). */
DJCT_API int djct_djcdc_read_mem(char ***paths, size_t *n, int64_t *batch_size, int *squared,
                                 const void *buf, size_t len, const char *base_dir,
                                 const char *name_for_errors);

/** Free a path list from djct_djcdc_read(). NULL is fine. */
DJCT_API void djct_djcdc_free(char **paths, size_t n);

DJCT_END_DECLS

#endif /* DJCT_DJCDATA_H */
