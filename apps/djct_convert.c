/* djct_convert: .djctd <-> HDF5 (djct-ragged-1), merge several inputs into one output, or split
 * one input into N files. Values are copied bit for bit (HDF5 values of other dtypes are converted
 * at read to float32/int32, as djct_train reads them); formats are chosen by file content (inputs)
 * and extension (outputs). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_common.h"
#include "djct/djct.h"

#define PROG "djct_convert"

typedef struct {
    int64_t split, chunk_bytes; /* split 0: no split */
    int gzip, stored;
    char *h5_map;
    char **files;
} cfg;

#define O(f) offsetof(cfg, f)
static const djct_opt T[] = {
    {"split", 0, DJCT_OPT_INT64, O(split), "0", NULL, 1, 100000, "N",
     "split the single input into N files OUT-000.ext ... (equal event shares)", "Options"},
    {"gzip", 0, DJCT_OPT_INT, O(gzip), "0", NULL, 0, 9, "N", "HDF5 output: gzip level", NULL},
    {"chunk-bytes", 0, DJCT_OPT_INT64, O(chunk_bytes), "1048576", NULL, 1, 4294967296.0, "N",
     "HDF5 output: bytes per chunk", NULL},
    {"stored", 0, DJCT_OPT_FLAG, O(stored), "0", NULL, 0, 0, NULL,
     ".djctd output: stored (uncompressed) chunks instead of QuickLZ", NULL},
    {"h5-map", 0, DJCT_OPT_STRING, O(h5_map), NULL, NULL, 0, 0, "FILE",
     "HDF5 inputs: mapping file (INI) naming their datasets (default: each input's FILE.djct.ini beside it, "
     "if any; docs/data.md)", NULL},
    {"file", 0, DJCT_OPT_ARGS, O(files), NULL, NULL, 2, 1e9, "IN... OUT", "input files, then the output file",
     "Arguments"},
};
#define NT (sizeof(T) / sizeof(T[0]))

#define USAGE                                                                                          \
    "usage: " PROG " [options] IN... OUT\n"                                                            \
    "Convert between .djctd and HDF5 (.h5/.hdf5, docs/hdf5_layout.md); the output format follows\n"   \
    "OUT's extension. Several inputs are merged into one output (events concatenated in order;\n"     \
    "all inputs must hold the same arrays). With --split N one input becomes N files. HDF5 inputs\n"  \
    "in a layout of their own are read through a mapping file (--h5-map, docs/data.md).\n"           \
    "exit status: 0 ok, 1 a file could not be read or written, 2 usage error; -h, --help: this text"

static int read_any(djct_record *r, const char *path, const djct_h5_read_options *ro)
{
    djct_format f;
    int rc = djct_format_detect(&f, path);
    if (rc < 0)
        return rc;
    return f == DJCT_FORMAT_H5 ? djct_h5_read_ext(r, path, ro) : djct_djcdata_read(r, path);
}

/* an output the records can be written as: HDF5 or .djctd by its name (a .djcsa holds one array) */
static int writable(const char *path)
{
    djct_format f = djct_format_from_name(path);
    return f == DJCT_FORMAT_H5 || f == DJCT_FORMAT_DJCTD;
}

static int write_any(const char *path, const djct_record *r, int gzip, size_t chunk, int stored)
{
    djct_format f = djct_format_from_name(path);
    if (f == DJCT_FORMAT_H5) {
        djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
        o.gzip_level = gzip;
        o.chunk_bytes = chunk;
        return djct_h5_write(path, r, &o);
    }
    if (f == DJCT_FORMAT_DJCTD) {
        djct_djcdata_write_options o = DJCT_DJCDATA_WRITE_OPTIONS_INIT;
        o.compress = !stored;
        return djct_djcdata_write(path, r, &o);
    }
    return djct_error_set(DJCT_EINVAL, "output '%s': extension must be .djctd, .h5 or .hdf5", path);
}

static djct_array *lists(djct_record *r, int c, size_t **n)
{
    djct_array **a[3] = {&r->features, &r->truths, &r->weights};
    size_t *ns[3] = {&r->n_features, &r->n_truths, &r->n_weights};
    *n = ns[c];
    return *a[c];
}

/* append src's events to dst (same arrays required); values copied bytewise */
static int append(djct_record *dst, djct_record *src, const char *src_path)
{
    static const char *cn[3] = {"feature", "truth", "weight"};
    for (int c = 0; c < 3; c++) {
        size_t *nd, *ns;
        djct_array *ad = lists(dst, c, &nd), *as = lists(src, c, &ns);
        if (*nd != *ns)
            return djct_error_set(DJCT_EINVAL, "'%s': %zu %s arrays, the first input has %zu", src_path, *ns, cn[c],
                                  *nd);
        for (size_t i = 0; i < *nd; i++) {
            djct_array *a = &ad[i], *b = &as[i];
            int rag = djct_array_is_ragged(a);
            int same = a->dtype == b->dtype && a->ndim == b->ndim && rag == djct_array_is_ragged(b);
            for (int d = rag ? 2 : 1; same && d < a->ndim; d++)
                same = a->shape[d] == b->shape[d];
            if (!same)
                return djct_error_set(DJCT_EINVAL, "'%s': %s array %zu ('%s') differs from the first input's in "
                                      "dtype, raggedness or inner dimensions", src_path, cn[c], i, b->name);
            size_t es = djct_dtype_size(a->dtype);
            void *v = realloc(a->values, (a->n_values + b->n_values) * es + 1);
            if (!v)
                return djct_error_oom();
            a->values = v;
            memcpy((char *)v + a->n_values * es, b->values, b->n_values * es);
            a->n_values += b->n_values;
            if (rag) {
                int64_t *rs = realloc(a->row_splits, (a->n_row_splits + b->n_row_splits) * sizeof(int64_t));
                if (!rs)
                    return djct_error_oom();
                a->row_splits = rs;
                int64_t base = rs[a->n_row_splits - 1];
                for (size_t k = 1; k < b->n_row_splits; k++)
                    rs[a->n_row_splits - 1 + k] = base + b->row_splits[k];
                a->n_row_splits += b->n_row_splits - 1;
                a->shape[1] += b->shape[1];
            }
            a->shape[0] += b->shape[0];
        }
    }
    return 0;
}

/* events [e0, e1) of r as a new record (names copied) */
static int slice(djct_record *out, const djct_record *r, int64_t e0, int64_t e1)
{
    memset(out, 0, sizeof(*out));
    const djct_array *src[3] = {r->features, r->truths, r->weights};
    size_t n[3] = {r->n_features, r->n_truths, r->n_weights};
    djct_array **dst[3] = {&out->features, &out->truths, &out->weights};
    size_t *dn[3] = {&out->n_features, &out->n_truths, &out->n_weights};
    for (int c = 0; c < 3; c++) {
        if (!n[c])
            continue;
        if (!(*dst[c] = calloc(n[c], sizeof(djct_array))))
            return djct_error_oom();
        *dn[c] = n[c];
        for (size_t i = 0; i < n[c]; i++) {
            const djct_array *a = &src[c][i];
            djct_array *b = &(*dst[c])[i];
            djct_array view = *a; /* copy metadata through djct_array_copy on a zero-value view */
            view.values = NULL;
            view.n_values = 0;
            view.row_splits = NULL;
            view.n_row_splits = 0;
            if (djct_array_copy(b, &view) < 0)
                return djct_last_error_code();
            int rag = djct_array_is_ragged(a);
            size_t es = djct_dtype_size(a->dtype);
            int64_t inner = djct_array_inner_size(a);
            int64_t r0 = rag ? a->row_splits[e0] : e0, r1 = rag ? a->row_splits[e1] : e1;
            b->n_values = (size_t)((r1 - r0) * inner);
            free(b->values);
            if (!(b->values = malloc(b->n_values * es + 1)))
                return djct_error_oom();
            memcpy(b->values, (const char *)a->values + (size_t)(r0 * inner) * es, b->n_values * es);
            b->shape[0] = e1 - e0;
            if (rag) {
                b->n_row_splits = (size_t)(e1 - e0 + 1);
                if (!(b->row_splits = malloc(b->n_row_splits * sizeof(int64_t))))
                    return djct_error_oom();
                for (int64_t e = e0; e <= e1; e++)
                    b->row_splits[e - e0] = a->row_splits[e] - r0;
                b->shape[1] = -(r1 - r0);
            }
        }
    }
    return 0;
}

/* after a usage message: exit status 2 */
static int usage_exit(cfg *c)
{
    djct_opts_free(T, NT, c);
    return 2;
}

static int runtime_error(cfg *c)
{
    fprintf(stderr, PROG ": %s\n", djct_last_error());
    djct_opts_free(T, NT, c);
    return 1;
}

int main(int argc, char **argv)
{
    cfg c;
    int rc0 = app_start(PROG, T, NT, USAGE, 0, &c, sizeof(c), argc, argv);
    if (rc0 != APP_GO_ON)
        return rc0;
    int npos = 0;
    while (c.files[npos])
        npos++;
    if (c.split && npos != 2) {
        fprintf(stderr, PROG ": --split takes one input and one output name, got %d files\n", npos);
        return usage_exit(&c);
    }
    const char *out = c.files[npos - 1];
    djct_record all, more;
    djct_h5_read_options ro = DJCT_H5_READ_OPTIONS_INIT;
    djct_h5_map *map = NULL;
    if (c.h5_map && djct_h5_map_load(&map, c.h5_map) < 0)
        return runtime_error(&c);
    ro.map = map;
    memset(&all, 0, sizeof(all));
    int rd = read_any(&all, c.files[0], &ro);
    for (int i = 1; i < npos - 1 && rd == 0; i++) {
        if ((rd = read_any(&more, c.files[i], &ro)) < 0)
            break;
        rd = append(&all, &more, c.files[i]);
        djct_record_clear(&more);
    }
    djct_h5_map_free(map);
    if (rd < 0) {
        djct_record_clear(&all);
        return runtime_error(&c);
    }
    int rc = 0;
    if (!c.split) {
        rc = write_any(out, &all, c.gzip, (size_t)c.chunk_bytes, c.stored);
    } else {
        const char *dot = strrchr(out, '.');
        if (!dot || !writable(out)) {
            fprintf(stderr, PROG ": output '%s': extension must be .djctd, .h5 or .hdf5\n", out);
            djct_record_clear(&all);
            return usage_exit(&c);
        }
        int64_t E = djct_array_nrows(&all.features[0]);
        if (c.split > E) {
            fprintf(stderr, PROG ": --split %" PRId64 " is more than the %" PRId64 " events of '%s'\n", c.split, E,
                    c.files[0]);
            djct_record_clear(&all);
            return usage_exit(&c);
        }
        for (int64_t k = 0; k < c.split && rc == 0; k++) {
            char path[4096];
            snprintf(path, sizeof(path), "%.*s-%03" PRId64 "%s", (int)(dot - out), out, k, dot);
            djct_record part;
            rc = slice(&part, &all, k * E / c.split, (k + 1) * E / c.split);
            if (rc == 0)
                rc = write_any(path, &part, c.gzip, (size_t)c.chunk_bytes, c.stored);
            djct_record_clear(&part);
        }
    }
    djct_record_clear(&all);
    if (rc < 0)
        return runtime_error(&c);
    djct_opts_free(T, NT, &c);
    return 0;
}
