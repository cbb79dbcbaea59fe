/* djct_inspect: what is in .djctd/.djcsa/.h5 files: arrays (container, name, dtype, shape,
 * feature names), record/event/element counts and a per-event element summary, from metadata
 * only (row splits are decoded, values are not) unless --values asks for values. For HDF5 files
 * also where each array is read from when that is not plain djct layout: the mapping file, the
 * datasets it names, a dtype converted at read, row splits made from counts.
 * Exit 0 ok, 1 when a file cannot be read, 2 on usage errors. */
#include <cJSON.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_common.h"
#include "djct/djct.h"

#define PROG "djct_inspect"

typedef struct {
    int json;
    int64_t values; /* -1: metadata only */
    char *h5_map;
    char **files;
} cfg;

#define O(f) offsetof(cfg, f)
static const djct_opt T[] = {
    {"json", 0, DJCT_OPT_FLAG, O(json), "0", NULL, 0, 0, NULL,
     "print one JSON object {\"files\": [...]} instead of text", "Options"},
    {"values", 0, DJCT_OPT_INT64, O(values), "-1", NULL, 0, 1e15, "N",
     "also read the values and print the first N of every array (decompresses)", NULL},
    APP_OPT_H5_MAP(O(h5_map)),
    {"file", 0, DJCT_OPT_ARGS, O(files), NULL, NULL, 1, 1e9, "FILE...", "djcdata (.djctd, .djcsa) or djct HDF5 (.h5) files",
     "Arguments"},
};
#define NT (sizeof(T) / sizeof(T[0]))

#define USAGE                                                                                    \
    "usage: " PROG " [--json] [--values N] [--h5-map FILE] FILE...\n"                          \
    "Show the arrays, dtypes, shapes, feature names, record/event/element counts and the\n"     \
    "elements-per-event summary of djcdata (.djctd, .djcsa) and HDF5 (.h5) files, and for\n"    \
    "HDF5 files the datasets a mapping file resolves to and the dtypes converted at read.\n"    \
    "Only metadata is read (row splits, no values) unless --values is given.\n"                 \
    "exit status: 0 ok, 1 a file could not be read, 2 usage error; -h, --help: this text"

static const char *const CONT[3] = {"features", "truths", "weights"};

static const djct_array *cont(const djct_record *r, int c, size_t *n)
{
    *n = c == 0 ? r->n_features : c == 1 ? r->n_truths : r->n_weights;
    return c == 0 ? r->features : c == 1 ? r->truths : r->weights;
}

/* the metadata (HDF5: with where each array comes from, in *info) */
static int read_meta(djct_file_meta *m, djct_h5_info *info, const char *path, djct_format f,
                     const djct_h5_read_options *ro)
{
    memset(info, 0, sizeof(*info));
    if (f != DJCT_FORMAT_H5)
        return djct_djcdata_read_meta(m, path);
    int rc = djct_h5_inspect(info, path, ro);
    if (rc == 0) { /* the meta moves to *m */
        *m = info->meta;
        memset(&info->meta, 0, sizeof(info->meta));
    }
    return rc;
}

static int read_full(djct_record *r, const char *path, djct_format f, const djct_h5_read_options *ro)
{
    if (f == DJCT_FORMAT_H5)
        return djct_h5_read_ext(r, path, ro);
    return djct_djcdata_read(r, path);
}

/* an HDF5 array worth a word on where it comes from: mapped, converted, or ragged by counts */
static int noteworthy(const djct_h5_info *info, const djct_h5_source *s)
{
    return info->map || s->converted || (s->splits_kind && strcmp(s->splits_kind, "row_splits"));
}

static void print_source(const djct_h5_source *s, const char *dtype)
{
    if (s->converted)
        printf("        values: %s, %s in the file, read as %s (%s)\n", s->values, s->stored, dtype, s->rule);
    else
        printf("        values: %s, %s\n", s->values, s->stored);
    if (s->splits_kind && !strcmp(s->splits_kind, "counts"))
        printf("        row splits: made from the counts in %s\n", s->splits);
    else if (s->splits_kind)
        printf("        row splits: %s (%s)\n", s->splits, s->splits_kind);
}

typedef struct {
    int64_t min, max;
    double mean;
} summary;

static summary summarise(const djct_file_meta *m)
{
    summary s = {0, 0, 0.0};
    if (!m->event_elements || m->n_events <= 0)
        return s;
    s.min = s.max = m->event_elements[0];
    double sum = 0;
    for (int64_t e = 0; e < m->n_events; e++) {
        int64_t v = m->event_elements[e];
        s.min = v < s.min ? v : s.min;
        s.max = v > s.max ? v : s.max;
        sum += (double)v;
    }
    s.mean = sum / (double)m->n_events;
    return s;
}

static double value_at(const djct_array *a, size_t i)
{
    return a->dtype == DJCT_DTYPE_INT32 ? (double)((const int32_t *)a->values)[i] : (double)((const float *)a->values)[i];
}

static void print_text(const djct_file_meta *m, const djct_h5_info *info, const djct_record *vals, int64_t nvals)
{
    printf("%s\n  format %s, %zu record%s, %" PRId64 " events, %" PRId64 " elements\n", m->path, djct_format_name(m->format),
           m->n_records, m->n_records == 1 ? "" : "s", m->n_events, m->n_elements);
    if (info->map)
        printf("  mapping: %s\n", info->map);
    if (m->event_elements) {
        summary s = summarise(m);
        printf("  elements per event: min %" PRId64 ", mean %.2f, max %" PRId64 "\n", s.min, s.mean, s.max);
    } else {
        printf("  elements per event: not ragged (1 element = 1 event)\n");
    }
    for (int c = 0, flat = 0; c < 3; c++) {
        size_t n, nv = 0;
        const djct_array *a = cont(&m->layout, c, &n), *va = vals ? cont(vals, c, &nv) : NULL;
        printf("  %s: %zu array%s\n", CONT[c], n, n == 1 ? "" : "s");
        for (size_t i = 0; i < n; i++, flat++) {
            printf("    [%zu] '%s' %s shape [", i, a[i].name ? a[i].name : "", djct_dtype_name(a[i].dtype));
            for (int d = 0; d < a[i].ndim; d++)
                printf("%s%" PRId64, d ? ", " : "", a[i].shape[d]);
            printf("]%s", a[i].n_row_splits ? " ragged" : "");
            if (a[i].n_feature_names) {
                printf(" features:");
                for (size_t k = 0; k < a[i].n_feature_names; k++)
                    printf(" %s", a[i].feature_names[k]);
            }
            printf("\n");
            if ((size_t)flat < info->n_sources && noteworthy(info, &info->sources[flat]))
                print_source(&info->sources[flat], djct_dtype_name(a[i].dtype));
            if (va && i < nv) {
                size_t k, lim = (size_t)nvals < va[i].n_values ? (size_t)nvals : va[i].n_values;
                printf("        values:");
                for (k = 0; k < lim; k++)
                    printf(" %.9g", value_at(&va[i], k));
                printf("%s\n", lim < va[i].n_values ? " ..." : "");
            }
        }
    }
}

static cJSON *to_json(const djct_file_meta *m, const djct_h5_info *info, const djct_record *vals, int64_t nvals)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "format", djct_format_name(m->format));
    cJSON_AddNumberToObject(o, "records", (double)m->n_records);
    cJSON_AddNumberToObject(o, "events", (double)m->n_events);
    cJSON_AddNumberToObject(o, "elements", (double)m->n_elements);
    cJSON_AddBoolToObject(o, "ragged", m->event_elements != NULL);
    if (m->format == DJCT_FORMAT_H5) {
        if (info->map)
            cJSON_AddStringToObject(o, "mapping", info->map);
        else
            cJSON_AddNullToObject(o, "mapping");
    }
    if (m->event_elements) {
        summary s = summarise(m);
        cJSON *e = cJSON_AddObjectToObject(o, "elements_per_event");
        cJSON_AddNumberToObject(e, "min", (double)s.min);
        cJSON_AddNumberToObject(e, "mean", s.mean);
        cJSON_AddNumberToObject(e, "max", (double)s.max);
    }
    cJSON *arrs = cJSON_AddArrayToObject(o, "arrays");
    for (int c = 0, flat = 0; c < 3; c++) {
        size_t n, nv = 0;
        const djct_array *a = cont(&m->layout, c, &n), *va = vals ? cont(vals, c, &nv) : NULL;
        for (size_t i = 0; i < n; i++, flat++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "container", CONT[c]);
            cJSON_AddNumberToObject(x, "index", (double)i);
            cJSON_AddStringToObject(x, "name", a[i].name ? a[i].name : "");
            cJSON_AddStringToObject(x, "dtype", djct_dtype_name(a[i].dtype));
            cJSON *sh = cJSON_AddArrayToObject(x, "shape");
            for (int d = 0; d < a[i].ndim; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)a[i].shape[d]));
            cJSON_AddBoolToObject(x, "ragged", a[i].n_row_splits > 0);
            cJSON *fn = cJSON_AddArrayToObject(x, "feature_names");
            for (size_t k = 0; k < a[i].n_feature_names; k++)
                cJSON_AddItemToArray(fn, cJSON_CreateString(a[i].feature_names[k]));
            if ((size_t)flat < info->n_sources) {
                const djct_h5_source *s = &info->sources[flat];
                cJSON *src = cJSON_AddObjectToObject(x, "source");
                cJSON_AddStringToObject(src, "values", s->values);
                cJSON_AddStringToObject(src, "stored_dtype", s->stored);
                cJSON_AddBoolToObject(src, "converted", s->converted);
                if (s->splits) {
                    cJSON_AddStringToObject(src, "splits", s->splits);
                    cJSON_AddStringToObject(src, "splits_kind", s->splits_kind);
                }
            }
            if (va && i < nv) {
                cJSON *v = cJSON_AddArrayToObject(x, "values");
                size_t lim = (size_t)nvals < va[i].n_values ? (size_t)nvals : va[i].n_values;
                for (size_t k = 0; k < lim; k++)
                    cJSON_AddItemToArray(v, cJSON_CreateNumber(value_at(&va[i], k)));
            }
            cJSON_AddItemToArray(arrs, x);
        }
    }
    return o;
}

int main(int argc, char **argv)
{
    cfg c;
    int rc0 = app_start(PROG, T, NT, USAGE, 0, &c, sizeof(c), argc, argv);
    if (rc0 != APP_GO_ON)
        return rc0;
    int json = c.json, failed = 0;
    int64_t nvals = c.values;
    djct_h5_read_options ro = DJCT_H5_READ_OPTIONS_INIT;
    djct_h5_map *map = NULL;
    if (c.h5_map && djct_h5_map_load(&map, c.h5_map) != 0) {
        fprintf(stderr, PROG ": --h5-map: %s\n", djct_last_error());
        djct_opts_free(T, NT, &c);
        return 1;
    }
    ro.map = map;
    cJSON *root = json ? cJSON_CreateObject() : NULL;
    cJSON *jfiles = json ? cJSON_AddArrayToObject(root, "files") : NULL;
    for (char **fp = c.files; *fp; fp++) {
        const char *p = *fp;
        djct_format f;
        djct_file_meta m;
        djct_h5_info info;
        djct_record vals;
        int have_vals = 0;
        if (djct_format_detect(&f, p) < 0) {
            fprintf(stderr, PROG ": %s\n", djct_last_error());
            failed = 1;
            continue;
        }
        if (read_meta(&m, &info, p, f, &ro) != 0) {
            fprintf(stderr, PROG ": %s\n", djct_last_error());
            failed = 1;
            continue;
        }
        if (nvals >= 0) {
            if (read_full(&vals, p, f, &ro) != 0) {
                fprintf(stderr, PROG ": %s\n", djct_last_error());
                failed = 1;
                djct_file_meta_clear(&m);
                djct_h5_info_clear(&info);
                continue;
            }
            have_vals = 1;
        }
        if (json)
            cJSON_AddItemToArray(jfiles, to_json(&m, &info, have_vals ? &vals : NULL, nvals));
        else
            print_text(&m, &info, have_vals ? &vals : NULL, nvals);
        if (have_vals)
            djct_record_clear(&vals);
        djct_file_meta_clear(&m);
        djct_h5_info_clear(&info);
    }
    if (json) {
        char *s = cJSON_Print(root);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    }
    djct_h5_map_free(map);
    djct_opts_free(T, NT, &c);
    return failed ? 1 : 0;
}
