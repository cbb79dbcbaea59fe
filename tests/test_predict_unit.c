/* predict module, the parts without ranks or a model: the per-event / per-element rules of an
 * output's shape (every case of docs/predict.md, the ambiguous one included), explicit kinds
 * checked against the shape, the kinds and names syntax, the format from the extension and the
 * option checks with their one-line messages. djct_predict itself runs end to end in
 * tests/test_predict.sh. */
#include "harness.h"
#include "predict_int.h"

static int64_t RS_A[5] = {0, 2, 2, 5, 6};  /* 4 events, 6 elements */
static int64_t RS_B[5] = {0, 1, 3, 4, 6};  /* 4 events, 6 elements, other splits */
static int64_t RS_C[5] = {0, 1, 2, 3, 4};  /* one element per event */

static djct_array ragged(const char *name, int64_t *rs)
{
    djct_array a;
    memset(&a, 0, sizeof(a));
    a.name = (char *)name;
    a.dtype = DJCT_DTYPE_FLOAT32;
    a.ndim = 2;
    a.shape[0] = 4;
    a.shape[1] = -rs[4];
    a.row_splits = rs;
    a.n_row_splits = 5;
    return a;
}

static djct_array regular(const char *name)
{
    djct_array a;
    memset(&a, 0, sizeof(a));
    a.name = (char *)name;
    a.dtype = DJCT_DTYPE_FLOAT32;
    a.ndim = 2;
    a.shape[0] = 4;
    a.shape[1] = 3;
    return a;
}

/* classify an output of first dimension d0 (and a second of 2) */
static int cls(int64_t d0, const djct_array *f, size_t nf, const char *spec_text, int *kind, int *feature)
{
    int64_t shape[2] = {d0, 2};
    djct_output_spec *s = NULL;
    size_t n = 0;
    if (spec_text && djct_output_specs_parse(&s, &n, spec_text))
        return -100;
    int rc = djct_output_classify(1, shape, 2, f, nf, 4, n ? &s[0] : NULL, kind, feature);
    djct_output_specs_free(s, n);
    return rc;
}

int main(void)
{
    int kind = -1, feat = -9;
    djct_array f1[2] = {regular("jets"), ragged("points", RS_A)};
    /* auto: per event, per element, neither, scalar */
    CHECK(cls(4, f1, 2, NULL, &kind, &feat) == 0 && kind == DJCT_OUTPUT_EVENT && feat == -1);
    CHECK(cls(6, f1, 2, NULL, &kind, &feat) == 0 && kind == DJCT_OUTPUT_ELEMENT && feat == 1);
    CHECK_ERR(cls(5, f1, 2, NULL, &kind, &feat), DJCT_EINVAL,
              "output 1 has 5 rows: neither the batch's 4 events nor the elements of a ragged feature array "
              "('points' 6 elements)");
    int64_t sh[1] = {4};
    CHECK_ERR(djct_output_classify(0, sh, 0, f1, 2, 4, NULL, &kind, &feat), DJCT_EINVAL, "output 0 is a scalar");

    /* two ragged arrays with that many elements: the same row splits are fine, different ones
     * need a name */
    djct_array same[2] = {ragged("points", RS_A), ragged("energies", RS_A)};
    CHECK(cls(6, same, 2, NULL, &kind, &feat) == 0 && kind == DJCT_OUTPUT_ELEMENT && feat == 0);
    djct_array differ[2] = {ragged("points", RS_A), ragged("hits", RS_B)};
    CHECK_ERR(cls(6, differ, 2, NULL, &kind, &feat), DJCT_EINVAL,
              "the elements of both 'points' and 'hits', whose row splits differ; say which with the output kind "
              "element:NAME");
    CHECK(cls(6, differ, 2, "element:hits", &kind, &feat) == 0 && kind == DJCT_OUTPUT_ELEMENT && feat == 1);
    CHECK(cls(6, differ, 2, "element:0", &kind, &feat) == 0 && kind == DJCT_OUTPUT_ELEMENT && feat == 0);

    /* one element per event: ambiguous (AUTO with the candidate), unless a kind is given */
    djct_array f2[1] = {ragged("points", RS_C)};
    CHECK(cls(4, f2, 1, NULL, &kind, &feat) == 0 && kind == DJCT_OUTPUT_AUTO && feat == 0);
    CHECK(cls(4, f2, 1, "auto", &kind, &feat) == 0 && kind == DJCT_OUTPUT_AUTO);
    CHECK(cls(4, f2, 1, "event", &kind, &feat) == 0 && kind == DJCT_OUTPUT_EVENT);
    CHECK(cls(4, f2, 1, "element", &kind, &feat) == 0 && kind == DJCT_OUTPUT_ELEMENT && feat == 0);

    /* explicit kinds are checked against the shape */
    CHECK_ERR(cls(6, f1, 2, "event", &kind, &feat), DJCT_EINVAL,
              "output 1 is declared per event but has 6 rows for the batch's 4 events");
    CHECK_ERR(cls(4, f1, 2, "element", &kind, &feat), DJCT_EINVAL,
              "output 1 is declared per element but has 4 rows, the elements of no ragged feature array");
    CHECK_ERR(cls(6, f1, 2, "element:jets", &kind, &feat), DJCT_EINVAL,
              "element:jets names no ragged feature array ('points' 6 elements)");
    CHECK_ERR(cls(5, f1, 2, "element:points", &kind, &feat), DJCT_EINVAL,
              "output 1 is declared per element of 'points' but has 5 rows for its 6 elements");

    /* the kinds syntax */
    djct_output_spec *s = NULL;
    size_t n = 0;
    CHECK_OK(djct_output_specs_parse(&s, &n, " event, element:points ,auto,element"));
    CHECK(n == 4 && s[0].kind == DJCT_OUTPUT_EVENT && s[1].kind == DJCT_OUTPUT_ELEMENT && !strcmp(s[1].feature, "points") &&
          s[2].kind == DJCT_OUTPUT_AUTO && s[3].kind == DJCT_OUTPUT_ELEMENT && s[3].feature == NULL);
    djct_output_specs_free(s, n);
    CHECK_ERR(djct_output_specs_parse(&s, &n, "event,element:"), DJCT_EINVAL, "'element:' (output 1) is not event");
    CHECK_ERR(djct_output_specs_parse(&s, &n, "event,,element"), DJCT_EINVAL, "entry 2 is empty");
    CHECK_OK(djct_output_specs_parse(&s, &n, NULL));
    CHECK(s == NULL && n == 0);

    /* formats and the option checks */
    djct_predict_options o = DJCT_PREDICT_OPTIONS_INIT;
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "no output file");
    o.out_path = "preds.out";
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "output 'preds.out': name it .h5, .hdf5 or .djctd");
    o.out_path = "preds.djcsa"; /* a format djct reads, but one array cannot hold predictions */
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "output 'preds.djcsa': name it .h5, .hdf5 or .djctd");
    o.out_path = "preds.out";
    o.format = DJCT_FORMAT_DJCTD;
    CHECK_OK(djct_predict_options_check(&o));
    o.format = DJCT_FORMAT_DJCSA;
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "predictions are written as HDF5 or .djctd");
    o.format = DJCT_FORMAT_UNKNOWN;
    o.out_path = "p.h5";
    o.gzip_level = 10;
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "gzip level 10");
    o.gzip_level = 0;
    o.output_names = "a,b,a";
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "'a' is given twice");
    o.output_names = "a,b";
    o.output_kinds = "event,elements";
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "'elements' (output 1)");
    o.output_kinds = "event,element";
    CHECK_OK(djct_predict_options_check(&o));
    o.version = 7;
    CHECK_ERR(djct_predict_options_check(&o), DJCT_EINVAL, "djct_predict_options version 7");
    djct_predict_result r;
    memset(&r, 0, sizeof(r));
    djct_predict_result_clear(&r);
    djct_predict_result_clear(NULL);
    return harness_report();
}
