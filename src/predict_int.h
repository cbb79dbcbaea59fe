/* Internals of the prediction module shared with its tests: the output-kind spec and the
 * per-batch classification of an output's shape (docs/predict.md, "Per event or per element").
 * Not installed. */
#ifndef DJCT_PREDICT_INT_H
#define DJCT_PREDICT_INT_H

#include "djct/predict.h"

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

#endif /* DJCT_PREDICT_INT_H */
