/* djct_convert: .djctd <-> HDF5 (djct-ragged-1), merge several inputs into one output, or split
 * one input into N files. Values are copied bit for bit; formats are chosen by file content
 * (inputs) and extension (outputs). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"

typedef struct {
    const char *name, *arg, *help;
    char       *val;
} opt;

static opt OPTS[] = {
    {"--split", "N", "split the single input into N files OUT-000.ext ... (equal event shares)", NULL},
    {"--gzip", "N", "HDF5 output: gzip level 0..9 (default 0)", "0"},
    {"--chunk-bytes", "N", "HDF5 output: bytes per chunk (default 1048576)", "1048576"},
    {"--stored", "", ".djctd output: stored (uncompressed) chunks instead of QuickLZ", NULL},
};
#define NOPTS (sizeof(OPTS) / sizeof(OPTS[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: djct_convert [options] IN... OUT\n"
               "Convert between .djctd and HDF5 (.h5/.hdf5, docs/hdf5_layout.md); the output format follows\n"
               "OUT's extension. Several inputs are merged into one output (events concatenated in order;\n"
               "all inputs must hold the same arrays). With --split N one input becomes N files.\n\n");
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(f, "  %-14s %-2s %s\n", OPTS[i].name, OPTS[i].arg, OPTS[i].help);
    fprintf(f, "  %-14s %-2s %s\n", "--help", "", "this text");
}

static int read_any(djct_record *r, const char *path)
{
    djct_format f;
    int rc = djct_format_detect(&f, path);
    if (rc < 0)
        return rc;
    return f == DJCT_FORMAT_H5 ? djct_h5_read(r, path) : djct_djcdata_read(r, path);
}

static int ends_with(const char *s, const char *e)
{
    size_t a = strlen(s), b = strlen(e);
    return a >= b && !strcmp(s + a - b, e);
}

static int write_any(const char *path, const djct_record *r, int gzip, size_t chunk, int stored)
{
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) {
        djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
        o.gzip_level = gzip;
        o.chunk_bytes = chunk;
        return djct_h5_write(path, r, &o);
    }
    if (ends_with(path, ".djctd")) {
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

static long long num(const char *name, const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "djct_convert: %s '%s' is not an integer in %lld..%lld\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *pos[4096];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            if (npos == 4096) {
                fprintf(stderr, "djct_convert: more than 4096 files\n");
                return 2;
            }
            pos[npos++] = argv[i];
            continue;
        }
        size_t k = 0;
        while (k < NOPTS && strcmp(OPTS[k].name, argv[i]))
            k++;
        if (k == NOPTS) {
            fprintf(stderr, "djct_convert: unknown option '%s'; see djct_convert --help\n", argv[i]);
            return 2;
        }
        if (!OPTS[k].arg[0])
            OPTS[k].val = "1";
        else if (i + 1 < argc)
            OPTS[k].val = argv[++i];
        else {
            fprintf(stderr, "djct_convert: %s needs a value (%s)\n", OPTS[k].name, OPTS[k].arg);
            return 2;
        }
    }
    int gzip = (int)num("--gzip", OPTS[1].val, 0, 9);
    size_t chunk = (size_t)num("--chunk-bytes", OPTS[2].val, 1, 1LL << 32);
    int stored = OPTS[3].val != NULL;
    long long split = OPTS[0].val ? num("--split", OPTS[0].val, 1, 100000) : 0;
    if (npos < 2) {
        fprintf(stderr, "djct_convert: need IN... OUT; see djct_convert --help\n");
        return 2;
    }
    if (split && npos != 2) {
        fprintf(stderr, "djct_convert: --split takes one input and one output name, got %d files\n", npos);
        return 2;
    }
    const char *out = pos[npos - 1];
    djct_record all, more;
    if (read_any(&all, pos[0]) < 0) {
        fprintf(stderr, "djct_convert: %s\n", djct_last_error());
        return 1;
    }
    for (int i = 1; i < npos - 1; i++) {
        if (read_any(&more, pos[i]) < 0 || append(&all, &more, pos[i]) < 0) {
            fprintf(stderr, "djct_convert: %s\n", djct_last_error());
            return 1;
        }
        djct_record_clear(&more);
    }
    int rc = 0;
    if (!split) {
        rc = write_any(out, &all, gzip, chunk, stored);
    } else {
        const char *dot = strrchr(out, '.');
        if (!dot || (strcmp(dot, ".h5") && strcmp(dot, ".hdf5") && strcmp(dot, ".djctd"))) {
            fprintf(stderr, "djct_convert: output '%s': extension must be .djctd, .h5 or .hdf5\n", out);
            return 2;
        }
        int64_t E = djct_array_nrows(&all.features[0]);
        if (split > E) {
            fprintf(stderr, "djct_convert: --split %lld is more than the %" PRId64 " events of '%s'\n", split, E,
                    pos[0]);
            return 2;
        }
        for (long long k = 0; k < split && rc == 0; k++) {
            char path[4096];
            snprintf(path, sizeof(path), "%.*s-%03lld%s", (int)(dot - out), out, k, dot);
            djct_record part;
            rc = slice(&part, &all, k * E / split, (k + 1) * E / split);
            if (rc == 0)
                rc = write_any(path, &part, gzip, chunk, stored);
            djct_record_clear(&part);
        }
    }
    djct_record_clear(&all);
    if (rc < 0) {
        fprintf(stderr, "djct_convert: %s\n", djct_last_error());
        return 1;
    }
    return 0;
}
