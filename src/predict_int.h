/* Internals of the prediction module shared by its files (predict.c, predict_kinds.c,
 * predict_parts.c) and its tests: the output-kind spec and the per-batch classification of an
 * output's shape (docs/predict.md, "Per event or per element"), and the per-rank part files.
 * Not installed. */
#ifndef DJCT_PREDICT_INT_H
#define DJCT_PREDICT_INT_H

#include <stdio.h>

#include "djct/h5.h"
#include "djct/predict.h"

/* ---- predict_kinds.c ---- */

/* one entry of djct_predict_options.output_kinds */
typedef struct {
    int   kind;    /* djct_output_kind */
    char *feature; /* ELEMENT: "NAME" or "K" of element:NAME; NULL: the matching one */
} djct_output_spec;

/* Parse "event,element,element:points,auto" into *specs (malloc'ed, *n entries; free with
 * djct_output_specs_free). NULL or "" gives none. DJCT_EINVAL naming the bad entry. */
int djct_output_specs_parse(djct_output_spec **specs, size_t *n, const char *text);
void djct_output_specs_free(djct_output_spec *specs, size_t n);

/* What output `i` of shape[0..ndim) is for a batch of n_events whose feature arrays are
 * features[0..n_features): *kind EVENT or ELEMENT (then *feature the ragged feature array whose
 * row splits it takes), or AUTO with *feature a candidate when the shape fits both (ambiguous).
 * `spec` NULL or kind AUTO decides from the shape; an explicit spec is checked against it.
 * DJCT_EINVAL with one line when the output fits neither, several ragged arrays with different
 * row splits, or not its spec. */
int djct_output_classify(size_t i, const int64_t *shape, int ndim, const djct_array *features, size_t n_features,
                         int64_t n_events, const djct_output_spec *spec, int *kind, int *feature);

/* Split a ','-list into trimmed, malloc'ed entries (*n; none for NULL or ""); an empty entry is
 * DJCT_EINVAL naming `what`. Free with predict_free_list. */
int predict_split_list(char ***out, size_t *n, const char *text, const char *what);
void predict_free_list(char **v, size_t n);
/* Elements of a ragged array: its last row split. */
static inline int64_t predict_elements_of(const djct_array *a) { return a->row_splits[a->n_row_splits - 1]; }
/* "'points'", or "features[K]" for an unnamed array, into buf. */
void predict_feature_label(char *buf, size_t n, const djct_array *features, int k);

/* ---- predict_parts.c ---- */
/* This rank's part of the output, next to it: "<out>.part-<rank>.<h5|djctd>". */
typedef struct {
    char            path[4300];
    int             format; /* DJCT_FORMAT_H5 or DJCT_FORMAT_DJCTD */
    djct_h5_writer *h5;     /* HDF5: created at the first record */
    FILE           *f;      /* .djctd: records appended */
    int             made;   /* the file exists: predict_part_remove deletes it */
} predict_part;

/* Rank `rank`'s part name of out_path into buf. */
void predict_part_name(char *buf, size_t n, const char *out_path, int rank, int format);
/* Create the part now, so that an unwritable place fails before any work (*p is overwritten). */
int predict_part_create(predict_part *p, const char *out_path, int rank, int format);
/* Append a record (outputs and ids) to the part. */
int predict_part_append(predict_part *p, const djct_record *rec);
/* Close the part (finishing the HDF5 file); a zeroed or closed part is fine. */
int predict_part_close(predict_part *p);
/* Close and delete the part if it was made. */
void predict_part_remove(predict_part *p);
/* Rank 0: the non-empty parts in rank order into a temporary file beside out_path, synced, then
 * renamed to out_path; on failure nothing is left at either name. */
int predict_parts_join(const char *out_path, int format, int gzip_level, char *const *parts, size_t nparts,
                       int any_ragged);

#endif /* DJCT_PREDICT_INT_H */
