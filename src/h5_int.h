/* Internals of the HDF5 layout shared with the dataset: an open, validated file whose row splits
 * are in memory, and a gather of arbitrary (sorted) events straight into caller memory. */
#ifndef DJCT_H5_INT_H
#define DJCT_H5_INT_H

#include "djct/h5.h"

typedef struct djct_h5_file djct_h5_file;

/* Open and validate `path`; the layout and event counts are in djct_h5_file_meta(). */
int djct_h5_file_open(djct_h5_file **out, const char *path);
/* As above with an HDF5 chunk cache of `chunk_cache_bytes` per values dataset (0: HDF5's 1 MiB),
 * for random access to events: chunks are decoded once and reused. */
int djct_h5_file_open_cached(djct_h5_file **out, const char *path, size_t chunk_cache_bytes);
/* As above with the arrays named by `map` (borrowed until close; NULL: the map beside the file
 * when there is one, else djct's layout). */
int djct_h5_file_open_map(djct_h5_file **out, const char *path, size_t chunk_cache_bytes, const djct_h5_map *map);
void djct_h5_file_close(djct_h5_file *f);
/* Borrowed; valid until close. layout arrays are flat-indexed features, truths, weights. */
const djct_file_meta *djct_h5_file_meta(const djct_h5_file *f);
/* Row splits of flat array k (NULL when not ragged); n_events + 1 entries. */
const int64_t *djct_h5_file_row_splits(const djct_h5_file *f, size_t k);
/* 1 when every array with values is read straight from a mapping of the file (native dtype, no
 * filters, no userblock, all chunks allocated): gathers then cost a memcpy per event run and
 * no libhdf5 call. 0 when some array is converted (read through libhdf5, then converted). */
int djct_h5_file_direct(const djct_h5_file *f);
/* Touch the pages of the mapped arrays' data once, in file order, stopping before an array chunk
 * that would take the total over `limit` bytes: later random reads of those rows fault no page.
 * Returns the bytes covered (0 when nothing is mapped), or <0 with the error set (the file
 * shrank under the mapping). */
int64_t djct_h5_file_prefault(djct_h5_file *f, int64_t limit);
/* Read the value rows of events[0..n) (strictly increasing) of flat array k into dst, packed in
 * that order: for a ragged array the elements of each event, else one row per event. */
int djct_h5_file_gather(djct_h5_file *f, size_t k, const int64_t *events, size_t n, void *dst);
/* The whole file into a record (as djct_h5_read), from an open handle: the record takes the
 * handle's layout over, so afterwards the handle is good only for djct_h5_file_close. */
int djct_h5_file_read_all(djct_h5_file *f, djct_record *out);

/* 1 once libhdf5 crashed in this process (caught by the crash guard): every djct HDF5 function
 * then fails at once, naming the file that crashed. */
int djct_h5_poisoned(void);
/* Fuzz targets only: forget the crash and let libhdf5 be used again, trusting its state. */
void djct_h5_unpoison(void);
/* CPU seconds libhdf5 may spend opening a file (plus 1 s per 16 MiB of file) before it counts as
 * an endless loop on a corrupt file; default 60. For tests and fuzz targets. */
void djct_h5_set_open_cpu_limit(double seconds);

#endif /* DJCT_H5_INT_H */
