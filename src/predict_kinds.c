/* Prediction's output kinds (src/predict_int.h, docs/predict.md "Per event or per element"): the
 * output_kinds spec, the ','-lists of the options, and which kind an output's shape allows in a
 * batch. Pure functions of their arguments, so the rules are tested without a model or ranks. */
#include "djct/predict.h"
#include "djct/error.h"
#include "djct_int.h"
#include "predict_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* split a ','-list into trimmed, malloc'ed entries; an empty entry is an error */
int predict_split_list(char ***out, size_t *n, const char *text, const char *what)
{
    *out = NULL;
    *n = 0;
    if (!text || !*text)
        return 0;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof(char *));
    if (!v)
        return djct_error_oom();
    const char *p = text;
    for (size_t i = 0; i < cap; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (!len || !(v[i] = strndup(p, len))) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return len ? djct_error_oom()
                       : djct_error_set(DJCT_EINVAL, "%s '%s': entry %zu is empty", what, text, i + 1);
        }
        p = e ? e + 1 : p + len;
    }
    *out = v;
    *n = cap;
    return 0;
}

void predict_free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void djct_output_specs_free(djct_output_spec *specs, size_t n)
{
    for (size_t i = 0; specs && i < n; i++)
        free(specs[i].feature);
    free(specs);
}

int djct_output_specs_parse(djct_output_spec **specs, size_t *n, const char *text)
{
    char **v;
    size_t k;
    *specs = NULL;
    *n = 0;
    int rc = predict_split_list(&v, &k, text, "output kinds");
    if (rc || !k)
        return rc;
    djct_output_spec *s = calloc(k, sizeof(*s));
    if (!s) {
        predict_free_list(v, k);
        return djct_error_oom();
    }
    for (size_t i = 0; i < k && rc == 0; i++) {
        if (!strcmp(v[i], "auto"))
            s[i].kind = DJCT_OUTPUT_AUTO;
        else if (!strcmp(v[i], "event"))
            s[i].kind = DJCT_OUTPUT_EVENT;
        else if (!strcmp(v[i], "element"))
            s[i].kind = DJCT_OUTPUT_ELEMENT;
        else if (!strncmp(v[i], "element:", 8) && v[i][8]) {
            s[i].kind = DJCT_OUTPUT_ELEMENT;
            if (!(s[i].feature = strdup(v[i] + 8)))
                rc = djct_error_oom();
        } else
            rc = djct_error_set(DJCT_EINVAL, "output kinds '%s': '%s' (output %zu) is not event, element, "
                                "element:NAME or auto", text, v[i], i);
    }
    predict_free_list(v, k);
    if (rc) {
        djct_output_specs_free(s, k);
        return rc;
    }
    *specs = s;
    *n = k;
    return 0;
}

void predict_feature_label(char *buf, size_t n, const djct_array *f, int k)
{
    if (f[k].name && f[k].name[0])
        snprintf(buf, n, "'%s'", f[k].name);
    else
        snprintf(buf, n, "features[%d]", k);
}

/* "'points' 1234 elements, 'hits' 56 elements" */
static void ragged_list(char *buf, size_t n, const djct_array *f, size_t nf)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < nf && at + 1 < n; k++) {
        if (!f[k].row_splits)
            continue;
        char lab[160];
        predict_feature_label(lab, sizeof(lab), f, (int)k);
        int w = snprintf(buf + at, n - at, "%s%s %" PRId64 " elements", at ? ", " : "", lab, predict_elements_of(&f[k]));
        at = w < 0 ? at : at + (size_t)w >= n ? n - 1 : at + (size_t)w;
    }
    if (!at)
        snprintf(buf, n, "no ragged feature array");
}

int djct_output_classify(size_t i, const int64_t *shape, int ndim, const djct_array *f, size_t nf, int64_t E,
                         const djct_output_spec *spec, int *kind, int *feature)
{
    *kind = DJCT_OUTPUT_AUTO;
    *feature = -1;
    char lab[160], lab2[160], list[600];
    if (ndim < 1)
        return djct_error_set(DJCT_EINVAL, "output %zu is a scalar; a prediction output needs one row per event or "
                              "per element of a ragged feature array", i);
    int64_t d0 = shape[0];
    int want = spec ? spec->kind : DJCT_OUTPUT_AUTO;
    if (want == DJCT_OUTPUT_EVENT) {
        if (d0 != E)
            return djct_error_set(DJCT_EINVAL, "output %zu is declared per event but has %" PRId64 " rows for the "
                                  "batch's %" PRId64 " events", i, d0, E);
        *kind = DJCT_OUTPUT_EVENT;
        return 0;
    }
    if (want == DJCT_OUTPUT_ELEMENT && spec->feature) {
        int k = -1;
        for (size_t j = 0; j < nf && k < 0; j++)
            if (f[j].name && !strcmp(f[j].name, spec->feature))
                k = (int)j;
        char *end;
        long idx = strtol(spec->feature, &end, 10);
        if (k < 0 && !*end && idx >= 0 && (size_t)idx < nf)
            k = (int)idx;
        if (k < 0 || !f[k].row_splits) {
            ragged_list(list, sizeof(list), f, nf);
            return djct_error_set(DJCT_EINVAL, "output %zu: element:%s names no ragged feature array (%s)", i,
                                  spec->feature, list);
        }
        if (predict_elements_of(&f[k]) != d0) {
            predict_feature_label(lab, sizeof(lab), f, k);
            return djct_error_set(DJCT_EINVAL, "output %zu is declared per element of %s but has %" PRId64 " rows "
                                  "for its %" PRId64 " elements", i, lab, d0, predict_elements_of(&f[k]));
        }
        *kind = DJCT_OUTPUT_ELEMENT;
        *feature = k;
        return 0;
    }
    int first = -1, other = -1;
    for (size_t k = 0; k < nf; k++) {
        if (!f[k].row_splits || predict_elements_of(&f[k]) != d0)
            continue;
        if (first < 0)
            first = (int)k;
        else if (other < 0 && memcmp(f[k].row_splits, f[first].row_splits, f[k].n_row_splits * sizeof(int64_t)))
            other = (int)k;
    }
    int ev = d0 == E && want != DJCT_OUTPUT_ELEMENT;
    if (first >= 0 && other >= 0 && !ev) {
        predict_feature_label(lab, sizeof(lab), f, first);
        predict_feature_label(lab2, sizeof(lab2), f, other);
        return djct_error_set(DJCT_EINVAL, "output %zu has %" PRId64 " rows, the elements of both %s and %s, whose "
                              "row splits differ; say which with the output kind element:NAME", i, d0, lab, lab2);
    }
    if (first >= 0 && !ev) {
        *kind = DJCT_OUTPUT_ELEMENT;
        *feature = first;
    } else if (ev && first < 0) {
        *kind = DJCT_OUTPUT_EVENT;
    } else if (ev) {
        *feature = first; /* fits both: the ranks decide together */
    } else {
        ragged_list(list, sizeof(list), f, nf);
        if (want == DJCT_OUTPUT_ELEMENT)
            return djct_error_set(DJCT_EINVAL, "output %zu is declared per element but has %" PRId64 " rows, the "
                                  "elements of no ragged feature array (%s)", i, d0, list);
        return djct_error_set(DJCT_EINVAL, "output %zu has %" PRId64 " rows: neither the batch's %" PRId64 " events "
                              "nor the elements of a ragged feature array (%s); a prediction output needs one row "
                              "per event or per element", i, d0, E, list);
    }
    return 0;
}
