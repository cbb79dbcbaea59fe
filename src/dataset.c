/* Datasets: file lists, the epoch plan, batch assembly, the decoded-file cache and prefetch.
 * The plan is a pure function of (file metadata, options, seed, epoch), so every rank computes
 * the same one without talking to the others; plan_stats().hash lets a caller check that.
 * Invariant: every planned event is in exactly one (step, rank) bin, and every rank has the same
 * number of steps. docs/data.md explains the algorithm. */
#include "djct/dataset.h"
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct/h5.h"
#include "dataset_shards_int.h"
#include "djct_int.h"
#include "h5_int.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_OPEN_H5 64

/* ---- types ------------------------------------------------------------------------------ */

typedef struct bint { /* a batch with its reusable storage */
    djct_batch   b;     /* first: a djct_batch* is a bint* */
    struct bint *next;
    void        *arena;
    size_t       cap;
    djct_array  *arrays; /* n_arrays, split over features / truths / weights */
    int64_t     *ids;
    size_t       ids_cap;
} bint;

typedef struct {             /* a file whose values are at hand */
    size_t             file;
    djct_h5_file      *h5;   /* HDF5: open handle, values read by hyperslab */
    djct_record        rec;  /* djcdata: the decoded file */
    const djct_array **flat; /* djcdata: flat array k */
    size_t             bytes;
    uint64_t           used;
} source;

struct djct_dataset {
    djct_dataset_options o;
    size_t          nf;
    djct_file_meta *files;
    int64_t        *first;      /* nf + 1: global id of each file's first event */
    int64_t         N;
    int64_t        *cnt;        /* per event: elements (or 1) */
    int             by_elements;
    size_t          n_arrays;
    const djct_array **lay;     /* flat layout arrays of file 0 */
    size_t          counts[3];  /* arrays per container */
    size_t         *row_values; /* per flat array: values per row / ragged element */
    int            *ragged;     /* per flat array */
    /* the current epoch's plan */
    int64_t         epoch;
    int64_t         steps;
    int64_t        *bin_off;    /* steps * W + 1 offsets into ev */
    int64_t        *ev;
    int64_t        *bin_el;     /* steps * W */
    djct_plan_stats st;
    int64_t         cursor;     /* next step next() hands out */
    /* decoded-file cache (used by one thread at a time: the producer) */
    source         *src;
    size_t          nsrc;
    size_t          cache_used;
    uint64_t        tick;
    /* prefetch */
    pthread_t       th;
    int             running;
    pthread_mutex_t mu;
    pthread_cond_t  cv_item, cv_space;
    bint          **q;
    int             qhead, qcount;
    int             stop, done, err;
    char            errmsg[1024];
    int64_t         build_step;
    bint           *freelist;
    int             nfree;
    double          wait_total, wait_last;
    /* prefault of mapped HDF5 files (producer thread) */
    unsigned char  *prefaulted; /* nf: the file's mapping was touched once */
    int64_t         prefault_used;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- file lists ------------------------------------------------------------------------- */

typedef struct {
    char **p;
    size_t n, cap;
} strlist;

static int sl_add(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 16;
        char **q = realloc(l->p, c * sizeof(char *));
        if (!q)
            return djct_error_oom();
        l->p = q;
        l->cap = c;
    }
    if (!(l->p[l->n] = strdup(s)))
        return djct_error_oom();
    l->n++;
    return 0;
}

static void sl_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->p[i]);
    free(l->p);
}

static int has_ext(const char *s, const char *ext)
{
    size_t a = strlen(s), b = strlen(ext);
    return a > b && !strcmp(s + a - b, ext);
}

static int is_data_name(const char *s)
{
    return has_ext(s, ".djctd") || has_ext(s, ".h5") || has_ext(s, ".hdf5");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_entry(strlist *l, const char *e);

static int add_list_file(strlist *l, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return djct_error_set(DJCT_EIO, "dataset: list file '%s': %s", path, strerror(errno));
    char *dcopy = strdup(path), line[4096], full[8192];
    if (!dcopy) {
        fclose(fp);
        return djct_error_oom();
    }
    const char *dir = dirname(dcopy);
    int rc = 0, lineno = 0;
    size_t before = l->n;
    while (rc == 0 && fgets(line, sizeof(line), fp)) {
        lineno++;
        char *s = line, *end;
        while (*s == ' ' || *s == '\t')
            s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = 0;
        if (!*s || *s == '#')
            continue;
        if (*s == '/')
            snprintf(full, sizeof(full), "%s", s);
        else
            snprintf(full, sizeof(full), "%s/%s", dir, s);
        struct stat st;
        if (stat(full, &st) != 0)
            rc = djct_error_set(DJCT_EIO, "dataset: list file '%s' line %d: '%s': %s", path, lineno, full,
                                strerror(errno));
        else
            rc = sl_add(l, full);
    }
    fclose(fp);
    free(dcopy);
    if (rc == 0 && l->n == before)
        rc = djct_error_set(DJCT_EINVAL, "dataset: list file '%s' names no file", path);
    return rc;
}

static int add_entry(strlist *l, const char *e)
{
    int rc = 0;
    if (strpbrk(e, "*?[")) {
        glob_t g;
        int gr = glob(e, 0, NULL, &g);
        if (gr == GLOB_NOMATCH)
            return djct_error_set(DJCT_EINVAL, "dataset: no file matches '%s'", e);
        if (gr != 0)
            return djct_error_set(DJCT_EIO, "dataset: glob '%s' failed (%d)", e, gr);
        for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
            rc = sl_add(l, g.gl_pathv[i]); /* glob sorts */
        globfree(&g);
        return rc;
    }
    struct stat st;
    if (stat(e, &st) != 0)
        return djct_error_set(DJCT_EIO, "dataset: '%s': %s", e, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(e);
        if (!d)
            return djct_error_set(DJCT_EIO, "dataset: directory '%s': %s", e, strerror(errno));
        size_t before = l->n;
        struct dirent *de;
        char full[8192];
        while (rc == 0 && (de = readdir(d)) != NULL)
            if (is_data_name(de->d_name)) {
                snprintf(full, sizeof(full), "%s/%s", e, de->d_name);
                rc = sl_add(l, full);
            }
        closedir(d);
        if (rc == 0 && l->n == before)
            return djct_error_set(DJCT_EINVAL, "dataset: directory '%s' holds no .djctd, .h5 or .hdf5 file", e);
        if (rc == 0)
            qsort(l->p + before, l->n - before, sizeof(char *), cmp_str);
        return rc;
    }
    if (has_ext(e, ".djcdc")) {
        char **paths = NULL;
        size_t n = 0;
        if ((rc = djct_djcdc_read(&paths, &n, NULL, NULL, e)) < 0)
            return djct_error_prefix("dataset");
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = sl_add(l, paths[i]);
        djct_djcdc_free(paths, n);
        return rc;
    }
    if (djct_h5_format_of(e) == DJCT_FORMAT_H5 || is_data_name(e) || djct_djcdata_format_of(e) != DJCT_FORMAT_UNKNOWN)
        return sl_add(l, e);
    return add_list_file(l, e);
}

/* ---- metadata and schema ---------------------------------------------------------------- */

static const char *CNAME[3] = {"feature", "truth", "weight"};

static void layout_lists(const djct_record *r, const djct_array *lists[3], size_t n[3])
{
    lists[0] = r->features;
    lists[1] = r->truths;
    lists[2] = r->weights;
    n[0] = r->n_features;
    n[1] = r->n_truths;
    n[2] = r->n_weights;
}

static int layout_ragged(const djct_array *a) { return a->n_row_splits > 0 || a->row_splits != NULL; }

/* every file must hold the arrays of file 0: same counts, dtypes, ndim, raggedness, inner dims */
static int check_schema(const djct_file_meta *m0, const djct_file_meta *m)
{
    const djct_array *l0[3], *l1[3];
    size_t n0[3], n1[3];
    layout_lists(&m0->layout, l0, n0);
    layout_lists(&m->layout, l1, n1);
    for (int c = 0; c < 3; c++) {
        if (n0[c] != n1[c])
            return djct_error_set(DJCT_EINVAL, "dataset: '%s' has %zu %s arrays, '%s' has %zu; all files must hold "
                                  "the same arrays", m->path, n1[c], CNAME[c], m0->path, n0[c]);
        for (size_t i = 0; i < n0[c]; i++) {
            const djct_array *a = &l0[c][i], *b = &l1[c][i];
            int ra = layout_ragged(a), rb = layout_ragged(b);
            const char *what = NULL;
            if (a->dtype != b->dtype)
                what = "dtype";
            else if (ra != rb)
                what = "raggedness";
            else if (a->ndim != b->ndim)
                what = "ndim";
            else
                for (int d = ra ? 2 : 1; d < a->ndim && !what; d++)
                    if (a->shape[d] != b->shape[d])
                        what = "inner dimensions";
            if (what)
                return djct_error_set(DJCT_EINVAL, "dataset: '%s': %s array %zu ('%s'): %s differs from '%s' "
                                      "(%s %s, ndim %d vs %s %s, ndim %d); all files must hold the same arrays",
                                      m->path, CNAME[c], i, b->name ? b->name : "", what, m0->path,
                                      djct_dtype_name(b->dtype), rb ? "ragged" : "regular", b->ndim,
                                      djct_dtype_name(a->dtype), ra ? "ragged" : "regular", a->ndim);
        }
    }
    return 0;
}

static int read_meta(djct_file_meta *m, const char *path)
{
    if (djct_h5_format_of(path) == DJCT_FORMAT_H5)
        return djct_h5_read_meta(m, path);
    djct_format f = djct_djcdata_format_of(path);
    if (f == DJCT_FORMAT_DJCSA)
        return djct_error_set(DJCT_EINVAL, "dataset: '%s' is a .djcsa (one array); datasets read .djctd or "
                              "HDF5 records (convert with djct_convert)", path);
    if (f != DJCT_FORMAT_DJCTD) {
        FILE *fp = fopen(path, "rb");
        if (!fp)
            return djct_error_set(DJCT_EIO, "dataset: '%s': %s", path, strerror(errno));
        fclose(fp);
        return djct_error_set(DJCT_EINVAL, "dataset: '%s': neither a .djctd nor an HDF5 file", path);
    }
    return djct_djcdata_read_meta(m, path);
}

/* ---- batch storage ---------------------------------------------------------------------- */

static void bint_free(bint *b)
{
    if (!b)
        return;
    free(b->arena);
    free(b->arrays);
    free(b->ids);
    free(b);
}

static bint *bint_get(djct_dataset *ds)
{
    pthread_mutex_lock(&ds->mu);
    bint *b = ds->freelist;
    if (b) {
        ds->freelist = b->next;
        ds->nfree--;
    }
    pthread_mutex_unlock(&ds->mu);
    if (!b) {
        if (!(b = calloc(1, sizeof(*b))))
            return NULL;
        if (ds->n_arrays && !(b->arrays = calloc(ds->n_arrays, sizeof(djct_array)))) {
            free(b);
            return NULL;
        }
    }
    return b;
}

void djct_batch_release(djct_dataset *ds, djct_batch *pub)
{
    if (!pub)
        return;
    bint *b = (bint *)pub;
    if (!ds) {
        bint_free(b);
        return;
    }
    pthread_mutex_lock(&ds->mu);
    if (ds->nfree < ds->o.prefetch_depth + 4) {
        b->next = ds->freelist;
        ds->freelist = b;
        ds->nfree++;
        b = NULL;
    }
    pthread_mutex_unlock(&ds->mu);
    bint_free(b);
}

/* ---- decoded-file cache ----------------------------------------------------------------- */

static void source_clear(source *s)
{
    djct_h5_file_close(s->h5);
    djct_record_clear(&s->rec);
    free(s->flat);
    memset(s, 0, sizeof(*s));
}

static int source_get(djct_dataset *ds, size_t file, source **out)
{
    for (size_t i = 0; i < ds->nsrc; i++)
        if (ds->src[i].file == file) {
            ds->src[i].used = ++ds->tick;
            *out = &ds->src[i];
            return 0;
        }
    source s = {0};
    s.file = file;
    const djct_file_meta *m = &ds->files[file];
    int rc;
    size_t budget = ds->o.cache_bytes ? ds->o.cache_bytes : (size_t)512 << 20, total = 0;
    for (size_t k = 0; k < ds->n_arrays; k++) {
        const djct_array *a = k < ds->counts[0] ? &m->layout.features[k]
                              : k < ds->counts[0] + ds->counts[1] ? &m->layout.truths[k - ds->counts[0]]
                              : &m->layout.weights[k - ds->counts[0] - ds->counts[1]];
        size_t rows = (size_t)(ds->ragged[k] ? -a->shape[1] : a->shape[0]);
        total += rows * ds->row_values[k] * djct_dtype_size(a->dtype);
    }
    /* Files whose arrays libhdf5 lets us map (uncompressed, native) are always gathered event by
     * event from the mapping: a rank touches only its own events. Other HDF5 files up to a quarter
     * of the budget are read whole once and served from memory (libhdf5 spends ~50 us per
     * hyperslab run); larger ones are gathered through libhdf5 with a chunk cache. */
    int h5_gather = m->format == DJCT_FORMAT_H5, have_rec = 0;
    if (h5_gather && total <= budget / 4) {
        if ((rc = djct_h5_file_open(&s.h5, m->path)) < 0)
            return rc;
        if (djct_h5_file_direct(s.h5)) {
            s.bytes = 4096; /* mapped: the page cache holds the data, not the dataset */
        } else { /* read whole, from the handle already open */
            rc = djct_h5_file_read_all(s.h5, &s.rec);
            djct_h5_file_close(s.h5);
            s.h5 = NULL;
            if (rc < 0)
                return rc;
            have_rec = 1;
            h5_gather = 0;
        }
    }
    if (h5_gather && !s.h5) {
        /* a chunk cache up to a quarter of the budget, so random events do not re-read chunks */
        size_t vb = 0;
        for (size_t k = 0; k < ds->n_arrays; k++) {
            const djct_array *a = k < ds->counts[0] ? &m->layout.features[k]
                                  : k < ds->counts[0] + ds->counts[1] ? &m->layout.truths[k - ds->counts[0]]
                                  : &m->layout.weights[k - ds->counts[0] - ds->counts[1]];
            size_t rows = (size_t)(ds->ragged[k] ? -a->shape[1] : a->shape[0]);
            size_t bytes = rows * ds->row_values[k] * djct_dtype_size(a->dtype);
            vb = bytes > vb ? bytes : vb;
        }
        size_t cc = vb + ((size_t)1 << 20) < budget / 4 ? vb + ((size_t)1 << 20) : budget / 4;
        if ((rc = djct_h5_file_open_cached(&s.h5, m->path, cc)) < 0)
            return rc;
        /* what the chunk caches may grow to; a mapped file lives in the page cache instead */
        s.bytes = 4096 + (djct_h5_file_direct(s.h5) ? 0 : cc * ds->n_arrays);
    }
    if (h5_gather && djct_h5_file_direct(s.h5) && !ds->prefaulted[file] && ds->o.prefault_bytes) {
        /* once per file: later opens of an evicted file find its pages in the page cache */
        ds->prefaulted[file] = 1;
        int64_t left = (int64_t)ds->o.prefault_bytes - ds->prefault_used;
        int64_t got = left > 0 ? djct_h5_file_prefault(s.h5, left) : 0;
        if (got < 0) {
            source_clear(&s);
            return (int)got;
        }
        ds->prefault_used += got;
    }
    if (h5_gather) {
        if (djct_h5_file_meta(s.h5)->n_events != m->n_events) {
            rc = djct_error_set(DJCT_EINVAL, "dataset: '%s' now has %" PRId64 " events, had %" PRId64
                                " when the dataset was opened", m->path, djct_h5_file_meta(s.h5)->n_events,
                                m->n_events);
            source_clear(&s);
            return rc;
        }
    } else {
        if (!have_rec && (rc = m->format == DJCT_FORMAT_H5 ? djct_h5_read(&s.rec, m->path)
                                                           : djct_djcdata_read(&s.rec, m->path)) < 0)
            return rc;
        const djct_array *l[3];
        size_t n[3], k = 0;
        layout_lists(&s.rec, l, n);
        if (n[0] != ds->counts[0] || n[1] != ds->counts[1] || n[2] != ds->counts[2]) {
            source_clear(&s);
            return djct_error_set(DJCT_EINVAL, "dataset: '%s' changed since the dataset was opened (array counts)",
                                  m->path);
        }
        if (!(s.flat = calloc(ds->n_arrays + 1, sizeof(*s.flat)))) {
            source_clear(&s);
            return djct_error_oom();
        }
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < n[c]; i++, k++) {
                const djct_array *a = &l[c][i];
                s.flat[k] = a;
                s.bytes += a->n_values * djct_dtype_size(a->dtype) + a->n_row_splits * 8;
                if (djct_array_nrows(a) != m->n_events || djct_array_is_ragged(a) != ds->ragged[k] ||
                    a->dtype != ds->lay[k]->dtype) {
                    source_clear(&s);
                    return djct_error_set(DJCT_EINVAL, "dataset: '%s': %s array %zu changed since the dataset was "
                                          "opened (events, dtype or raggedness)", m->path, CNAME[c], i);
                }
            }
    }
    source *ns = realloc(ds->src, (ds->nsrc + 1) * sizeof(source));
    if (!ns) {
        source_clear(&s);
        return djct_error_oom();
    }
    ds->src = ns;
    s.used = ++ds->tick;
    ds->src[ds->nsrc++] = s;
    ds->cache_used += s.bytes;
    *out = &ds->src[ds->nsrc - 1];
    return 0;
}

/* evict least recently used sources until within budget (never during a batch's assembly) */
static void cache_trim(djct_dataset *ds)
{
    size_t budget = ds->o.cache_bytes ? ds->o.cache_bytes : (size_t)512 << 20;
    while (ds->nsrc && (ds->cache_used > budget || ds->nsrc > MAX_OPEN_H5)) {
        size_t v = 0;
        for (size_t i = 1; i < ds->nsrc; i++)
            if (ds->src[i].used < ds->src[v].used)
                v = i;
        ds->cache_used -= ds->src[v].bytes;
        source_clear(&ds->src[v]);
        ds->src[v] = ds->src[--ds->nsrc];
    }
}

static const int64_t *source_rs(const source *s, size_t k)
{
    return s->h5 ? djct_h5_file_row_splits(s->h5, k) : s->flat[k]->row_splits;
}

/* ---- batch assembly --------------------------------------------------------------------- */

static size_t file_of(const djct_dataset *ds, int64_t id)
{
    size_t lo = 0, hi = ds->nf; /* first[lo] <= id < first[hi] */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ds->first[mid] <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

static int build_batch(djct_dataset *ds, int64_t step, bint **out)
{
    int W = ds->o.world_size, rc = 0;
    const int64_t *ev = ds->ev + ds->bin_off[step * W + ds->o.rank];
    size_t n = (size_t)(ds->bin_off[step * W + ds->o.rank + 1] - ds->bin_off[step * W + ds->o.rank]);
    bint *b = bint_get(ds);
    int64_t *local = malloc((n + 1) * sizeof(int64_t));
    size_t *rows = calloc(ds->n_arrays + 1, sizeof(size_t));
    if (!b || !local || !rows) {
        rc = djct_error_oom();
        goto fail;
    }
    if (b->ids_cap < n + 1) {
        free(b->ids);
        if (!(b->ids = malloc((n + 1) * sizeof(int64_t)))) {
            b->ids_cap = 0;
            rc = djct_error_oom();
            goto fail;
        }
        b->ids_cap = n + 1;
    }
    memcpy(b->ids, ev, n * sizeof(int64_t));
    /* pass 1: open the sources, count rows per array */
    int64_t elements = 0;
    for (size_t i = 0; i < n;) {
        size_t f = file_of(ds, ev[i]), j = i;
        while (j < n && ev[j] < ds->first[f + 1])
            j++;
        source *s;
        if ((rc = source_get(ds, f, &s)) < 0)
            goto fail;
        for (size_t k = 0; k < ds->n_arrays; k++) {
            if (!ds->ragged[k]) {
                rows[k] += j - i;
                continue;
            }
            const int64_t *rs = source_rs(s, k);
            for (size_t t = i; t < j; t++) {
                int64_t e = ev[t] - ds->first[f];
                rows[k] += (size_t)(rs[e + 1] - rs[e]);
            }
        }
        for (size_t t = i; t < j; t++)
            elements += ds->cnt[ev[t]];
        i = j;
    }
    size_t need = 0;
    for (size_t k = 0; k < ds->n_arrays; k++) {
        need += ALIGN64(rows[k] * ds->row_values[k] * djct_dtype_size(ds->lay[k]->dtype) + 1);
        if (ds->ragged[k])
            need += ALIGN64((n + 1) * sizeof(int64_t));
    }
    if (b->cap < need) {
        free(b->arena);
        if (!(b->arena = aligned_alloc(64, need))) {
            b->cap = 0;
            rc = djct_error_oom();
            goto fail;
        }
        b->cap = need;
    }
    /* lay the arrays out in the arena */
    char *p = b->arena;
    for (size_t k = 0; k < ds->n_arrays; k++) {
        djct_array *a = &b->arrays[k];
        const djct_array *l = ds->lay[k];
        memset(a, 0, sizeof(*a));
        a->name = l->name;
        a->feature_names = l->feature_names;
        a->n_feature_names = l->n_feature_names;
        a->dtype = l->dtype;
        a->ndim = l->ndim;
        memcpy(a->shape, l->shape, sizeof(a->shape));
        a->shape[0] = (int64_t)n;
        if (ds->ragged[k])
            a->shape[1] = -(int64_t)rows[k];
        a->n_values = rows[k] * ds->row_values[k];
        a->values = p;
        p += ALIGN64(a->n_values * djct_dtype_size(a->dtype) + 1);
        if (ds->ragged[k]) {
            a->row_splits = (int64_t *)p;
            a->n_row_splits = n + 1;
            a->row_splits[0] = 0;
            p += ALIGN64((n + 1) * sizeof(int64_t));
        }
    }
    /* pass 2: fill values and row splits file by file */
    size_t *vat = rows; /* reuse: rows already placed per array */
    memset(vat, 0, (ds->n_arrays + 1) * sizeof(size_t));
    for (size_t i = 0; i < n;) {
        size_t f = file_of(ds, ev[i]), j = i;
        while (j < n && ev[j] < ds->first[f + 1])
            j++;
        source *s;
        if ((rc = source_get(ds, f, &s)) < 0)
            goto fail;
        for (size_t t = i; t < j; t++)
            local[t - i] = ev[t] - ds->first[f];
        for (size_t k = 0; k < ds->n_arrays; k++) {
            djct_array *a = &b->arrays[k];
            size_t es = djct_dtype_size(a->dtype), rv = ds->row_values[k];
            char *dst = (char *)a->values + vat[k] * rv * es;
            const int64_t *rs = ds->ragged[k] ? source_rs(s, k) : NULL;
            size_t placed = 0;
            for (size_t t = i; t < j; t++) {
                size_t nr = rs ? (size_t)(rs[local[t - i] + 1] - rs[local[t - i]]) : 1;
                placed += nr;
                if (rs)
                    a->row_splits[t + 1] = (int64_t)(vat[k] + placed);
            }
            if (s->h5) {
                if ((rc = djct_h5_file_gather(s->h5, k, local, j - i, dst)) < 0)
                    goto fail;
            } else {
                const char *src = s->flat[k]->values;
                for (size_t t = i; t < j; t++) {
                    int64_t e = local[t - i];
                    size_t r0 = rs ? (size_t)rs[e] : (size_t)e, nr = rs ? (size_t)(rs[e + 1] - rs[e]) : 1;
                    memcpy(dst, src + r0 * rv * es, nr * rv * es);
                    dst += nr * rv * es;
                }
            }
            vat[k] += placed;
        }
        i = j;
    }
    cache_trim(ds);
    /* split the flat arrays over the containers */
    b->b.record.features = b->arrays;
    b->b.record.n_features = ds->counts[0];
    b->b.record.truths = b->arrays + ds->counts[0];
    b->b.record.n_truths = ds->counts[1];
    b->b.record.weights = b->arrays + ds->counts[0] + ds->counts[1];
    b->b.record.n_weights = ds->counts[2];
    b->b.n_events = (int64_t)n;
    b->b.n_elements = elements;
    b->b.epoch = ds->epoch;
    b->b.step = step;
    b->b.event_ids = b->ids;
    b->b.wait_seconds = 0;
    free(local);
    free(rows);
    *out = b;
    return 0;
fail:
    cache_trim(ds);
    free(local);
    free(rows);
    djct_batch_release(ds, b ? &b->b : NULL);
    return rc;
}

/* ---- the epoch plan --------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do
        x = splitmix(s);
    while (x >= lim);
    return x % n;
}

static void shuffle64(int64_t *a, int64_t n, uint64_t *s)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)below(s, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int64_t isqrt64(int64_t v)
{
    int64_t r = 0;
    while ((r + 1) <= v / (r + 1))
        r++;
    return r;
}

typedef struct {
    int     bin;
    int64_t id;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->bin != y->bin)
        return x->bin < y->bin ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* largest first, ties by id: the LPT order */
static int cmp_size(const void *a, const void *b, void *arg)
{
    const int64_t *cnt = arg;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (cnt[x] != cnt[y])
        return cnt[x] > cnt[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

typedef struct { /* the plan under construction */
    int64_t *off, *el;
    int64_t  steps, cap;
    int64_t  nev;
} planbuf;

static int plan_push_step(djct_dataset *ds, planbuf *pb, pair *pairs, size_t np, const int64_t *bin_sum)
{
    int W = ds->o.world_size;
    if (pb->steps == pb->cap) {
        int64_t c = pb->cap ? pb->cap * 2 : 64;
        int64_t *o = realloc(pb->off, (size_t)(c * W + 1) * sizeof(int64_t));
        if (!o)
            return djct_error_oom();
        pb->off = o;
        int64_t *e = realloc(pb->el, (size_t)(c * W) * sizeof(int64_t));
        if (!e)
            return djct_error_oom();
        pb->el = e;
        pb->cap = c;
    }
    qsort(pairs, np, sizeof(pair), cmp_pair);
    size_t i = 0;
    for (int r = 0; r < W; r++) {
        pb->off[pb->steps * W + r] = pb->nev;
        pb->el[pb->steps * W + r] = bin_sum[r];
        while (i < np && pairs[i].bin == r)
            ds->ev[pb->nev++] = pairs[i++].id;
    }
    pb->steps++;
    pb->off[pb->steps * W] = pb->nev;
    return 0;
}

static int plan_epoch(djct_dataset *ds, int64_t epoch)
{
    int W = ds->o.world_size, rc = 0;
    int64_t N = ds->N;
    int64_t *perm = malloc((size_t)(N + 1) * sizeof(int64_t)), *items = malloc((size_t)(N + 1) * sizeof(int64_t));
    int64_t *dq = malloc((size_t)(N + 1) * sizeof(int64_t)), *ndq = malloc((size_t)(N + 1) * sizeof(int64_t));
    pair *pairs = malloc((size_t)(N + W + 1) * sizeof(pair));
    int64_t *load = calloc((size_t)W, sizeof(int64_t)), *solo = calloc((size_t)W, sizeof(int64_t));
    planbuf pb = {0};
    djct_plan_stats st = {0};
    if (!perm || !items || !dq || !ndq || !pairs || !load || !solo) {
        rc = djct_error_oom();
        goto done;
    }
    free(ds->ev);
    if (!(ds->ev = malloc((size_t)(N + 1) * sizeof(int64_t)))) {
        rc = djct_error_oom();
        goto done;
    }
    /* the event order of this epoch */
    uint64_t s = ds->o.seed ^ 0x6A09E667F3BCC908ull;
    splitmix(&s);
    s ^= (uint64_t)epoch * 0xD1B54A32D192ED03ull;
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    if (ds->o.shuffle == DJCT_SHUFFLE_GLOBAL)
        shuffle64(perm, N, &s);
    else if (ds->o.shuffle == DJCT_SHUFFLE_FILES) {
        int64_t *fo = malloc((ds->nf + 1) * sizeof(int64_t));
        if (!fo) {
            rc = djct_error_oom();
            goto done;
        }
        for (size_t f = 0; f < ds->nf; f++)
            fo[f] = (int64_t)f;
        shuffle64(fo, (int64_t)ds->nf, &s);
        int64_t at = 0;
        for (size_t i = 0; i < ds->nf; i++) {
            size_t f = (size_t)fo[i];
            for (int64_t e = ds->first[f]; e < ds->first[f + 1]; e++)
                perm[at + e - ds->first[f]] = e;
            shuffle64(perm + at, ds->first[f + 1] - ds->first[f], &s);
            at += ds->first[f + 1] - ds->first[f];
        }
        free(fo);
    }
    const int64_t *cnt = ds->cnt;
    if (ds->o.shuffle == DJCT_SHUFFLE_SHARDS) { /* src/dataset_shards.c */
        int64_t cap = !ds->by_elements ? 0 : ds->o.squared_limit ? isqrt64(ds->o.batch_elements) : ds->o.batch_elements;
        int64_t B = ds->o.batch_events > 0 ? ds->o.batch_events : ds->o.batch_elements;
        if ((rc = djct_plan_shards(cnt, N, W, cap, B, ds->ev, &pb.off, &pb.el, &pb.steps)) < 0)
            goto done;
        pb.nev = N;
    } else if (!ds->by_elements) {
        /* count mode: W * B events per step, dealt in near-equal contiguous parts */
        int64_t B = ds->o.batch_events > 0 ? ds->o.batch_events : ds->o.batch_elements;
        int64_t sum[1024];
        int64_t *bs = W <= 1024 ? sum : load;
        for (int64_t pos = 0; pos < N;) {
            int64_t m = N - pos < (int64_t)W * B ? N - pos : (int64_t)W * B;
            if (m < (int64_t)W * B && ds->o.drop_last) {
                for (int64_t i = pos; i < N; i++) {
                    st.dropped_events++;
                    st.dropped_elements += cnt[perm[i]];
                }
                break;
            }
            size_t np = 0;
            int64_t base = m / W, extra = m % W, at = pos;
            for (int r = 0; r < W; r++) {
                int64_t take = base + (r < extra);
                bs[r] = 0;
                for (int64_t i = 0; i < take; i++, at++) {
                    pairs[np].bin = r;
                    pairs[np++].id = perm[at];
                    bs[r] += cnt[perm[at]];
                }
            }
            if ((rc = plan_push_step(ds, &pb, pairs, np, bs)) < 0)
                goto done;
            pos += m;
        }
    } else {
        /* element mode: fill a global step up to W bins of the cap, then LPT into the bins */
        int64_t L = ds->o.batch_elements, C = ds->o.squared_limit ? isqrt64(L) : L;
        int sq = ds->o.squared_limit;
        int64_t T = C > INT64_MAX / W ? INT64_MAX : C * W;
        int close_at_full = !sq || C * C == L;
        int64_t pos = 0, nd = 0, di = 0;
        while (pos < N || di < nd) {
            int64_t S = 0;
            size_t ni = 0;
            int nsolo = 0;
            for (;;) {
                int from_dq = di < nd;
                if (!from_dq && pos >= N)
                    break;
                int64_t id = from_dq ? dq[di] : perm[pos], n = cnt[id];
                if (n > C) {
                    if (ds->o.strict && n > L) { /* djcdata: usable iff n <= L (unsquared) */
                        st.dropped_events++;
                        st.dropped_elements += n;
                        from_dq ? di++ : pos++;
                        if (W == 1 && (ni || nsolo))
                            break; /* djcdata closes the batch before the dropped event */
                        continue;
                    }
                    if (S > T - C || nsolo >= W)
                        break;
                    solo[nsolo++] = id;
                    S += C;
                } else {
                    if (S > T - n)
                        break;
                    items[ni++] = id;
                    S += n;
                }
                from_dq ? di++ : pos++;
                if (nsolo == W || (S == T && close_at_full))
                    break;
            }
            /* assign: solos seal their bins; the rest largest first into the least-loaded bin */
            size_t np = 0, nnew = 0;
            for (int r = 0; r < W; r++)
                load[r] = 0;
            for (int r = 0; r < nsolo; r++) {
                pairs[np].bin = r;
                pairs[np++].id = solo[r];
                load[r] = cnt[solo[r]];
            }
            qsort_r(items, ni, sizeof(int64_t), cmp_size, (void *)cnt);
            for (size_t i = 0; i < ni; i++) {
                int best = -1;
                for (int r = nsolo; r < W; r++)
                    if (best < 0 || load[r] < load[best])
                        best = r;
                int64_t n = cnt[items[i]];
                if (best < 0 || load[best] + n > C) {
                    ndq[nnew++] = items[i]; /* does not fit now: first in line for the next step */
                    continue;
                }
                load[best] += n;
                pairs[np].bin = best;
                pairs[np++].id = items[i];
            }
            /* the deferred events go first, then what was still queued */
            for (int64_t i = di; i < nd; i++)
                ndq[nnew++] = dq[i];
            int64_t *t = dq;
            dq = ndq;
            ndq = t;
            nd = (int64_t)nnew;
            di = 0;
            int64_t tot = 0;
            for (int r = 0; r < W; r++)
                tot += load[r];
            if (np == 0)
                continue;
            if (tot == 0) { /* djcdata drops batches without elements */
                st.dropped_events += (int64_t)np;
                continue;
            }
            if ((rc = plan_push_step(ds, &pb, pairs, np, load)) < 0)
                goto done;
        }
    }
    /* stats and hash */
    st.steps = pb.steps;
    st.events = pb.nev;
    double ratio = 0;
    int64_t nr = 0;
    for (int64_t i = 0; i < pb.steps; i++) {
        int64_t mx = 0, sum = 0;
        for (int r = 0; r < W; r++) {
            sum += pb.el[i * W + r];
            mx = pb.el[i * W + r] > mx ? pb.el[i * W + r] : mx;
        }
        st.elements += sum;
        if (sum > 0) {
            ratio += (double)mx * W / (double)sum;
            nr++;
        }
    }
    st.straggler_ratio = nr ? ratio / (double)nr : 1.0;
    uint64_t h = 0xcbf29ce484222325ull;
#define FNV(x) do { uint64_t v_ = (uint64_t)(x); for (int b_ = 0; b_ < 8; b_++) { h ^= (v_ >> (8 * b_)) & 0xff; h *= 0x100000001b3ull; } } while (0)
    FNV(pb.steps);
    FNV(W);
    for (int64_t i = 0; i <= pb.steps * W && pb.off; i++)
        FNV(pb.off[i]);
    for (int64_t i = 0; i < pb.nev; i++)
        FNV(ds->ev[i]);
#undef FNV
    st.hash = h;
    free(ds->bin_off);
    free(ds->bin_el);
    if (!pb.off) { /* no step at all */
        pb.off = calloc(1, sizeof(int64_t));
        if (!pb.off) {
            rc = djct_error_oom();
            goto done;
        }
    }
    ds->bin_off = pb.off;
    ds->bin_el = pb.el;
    pb.off = pb.el = NULL;
    ds->steps = st.steps;
    ds->st = st;
    ds->epoch = epoch;
done:
    free(pb.off);
    free(pb.el);
    free(perm);
    free(items);
    free(dq);
    free(ndq);
    free(pairs);
    free(load);
    free(solo);
    return rc;
}

/* ---- prefetch ----------------------------------------------------------------------------- */

static void *producer(void *arg)
{
    pthread_setname_np(pthread_self(), "djct-prefetch"); /* shown by top -H, ps -L, gdb */
    djct_dataset *ds = arg;
    for (;;) {
        pthread_mutex_lock(&ds->mu);
        int64_t s = ds->build_step;
        int stop = ds->stop;
        pthread_mutex_unlock(&ds->mu);
        if (stop || s >= ds->steps)
            break;
        bint *b = NULL;
        int rc = build_batch(ds, s, &b);
        pthread_mutex_lock(&ds->mu);
        if (rc < 0) {
            ds->err = rc;
            snprintf(ds->errmsg, sizeof(ds->errmsg), "%s", djct_last_error());
            pthread_cond_broadcast(&ds->cv_item);
            pthread_mutex_unlock(&ds->mu);
            return NULL;
        }
        while (ds->qcount == ds->o.prefetch_depth && !ds->stop)
            pthread_cond_wait(&ds->cv_space, &ds->mu);
        if (ds->stop) {
            pthread_mutex_unlock(&ds->mu);
            djct_batch_release(ds, &b->b);
            break;
        }
        ds->q[(ds->qhead + ds->qcount) % ds->o.prefetch_depth] = b;
        ds->qcount++;
        ds->build_step++;
        pthread_cond_broadcast(&ds->cv_item);
        pthread_mutex_unlock(&ds->mu);
    }
    pthread_mutex_lock(&ds->mu);
    ds->done = 1;
    pthread_cond_broadcast(&ds->cv_item);
    pthread_mutex_unlock(&ds->mu);
    return NULL;
}

static void stop_prefetch(djct_dataset *ds)
{
    if (ds->running) {
        pthread_mutex_lock(&ds->mu);
        ds->stop = 1;
        pthread_cond_broadcast(&ds->cv_space);
        pthread_mutex_unlock(&ds->mu);
        pthread_join(ds->th, NULL);
        ds->running = 0;
    }
    while (ds->qcount) {
        bint *b = ds->q[ds->qhead];
        ds->qhead = (ds->qhead + 1) % (ds->o.prefetch_depth ? ds->o.prefetch_depth : 1);
        ds->qcount--;
        djct_batch_release(ds, &b->b);
    }
    ds->qhead = 0;
    ds->stop = ds->done = ds->err = 0;
    ds->errmsg[0] = 0;
}

static int start_prefetch(djct_dataset *ds)
{
    ds->build_step = ds->cursor;
    if (ds->o.prefetch_depth <= 0 || ds->cursor >= ds->steps)
        return 0;
    int e = pthread_create(&ds->th, NULL, producer, ds);
    if (e)
        return djct_error_set(DJCT_ERROR, "dataset: cannot start the prefetch thread: %s", strerror(e));
    ds->running = 1;
    return 0;
}

/* ---- public ----------------------------------------------------------------------------- */

void djct_dataset_free(djct_dataset *ds)
{
    if (!ds)
        return;
    stop_prefetch(ds);
    while (ds->freelist) {
        bint *b = ds->freelist;
        ds->freelist = b->next;
        bint_free(b);
    }
    for (size_t i = 0; i < ds->nsrc; i++)
        source_clear(&ds->src[i]);
    free(ds->src);
    for (size_t i = 0; i < ds->nf; i++)
        djct_file_meta_clear(&ds->files[i]);
    free(ds->files);
    free(ds->prefaulted);
    free(ds->first);
    free(ds->cnt);
    free(ds->lay);
    free(ds->row_values);
    free(ds->ragged);
    free(ds->bin_off);
    free(ds->ev);
    free(ds->bin_el);
    free(ds->q);
    pthread_mutex_destroy(&ds->mu);
    pthread_cond_destroy(&ds->cv_item);
    pthread_cond_destroy(&ds->cv_space);
    free(ds);
}

static int check_options(const djct_dataset_options *o)
{
    if (o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size)
        return djct_error_set(DJCT_EINVAL, "dataset: rank %d / world_size %d: need 0 <= rank < world_size", o->rank,
                              o->world_size);
    if (o->batch_elements < 0 || o->batch_events < 0 || (o->batch_elements == 0 && o->batch_events == 0))
        return djct_error_set(DJCT_EINVAL, "dataset: batch_elements %" PRId64 " and batch_events %" PRId64
                              ": set one of them > 0 (djcdata: attempting empty split)", o->batch_elements,
                              o->batch_events);
    if (o->shuffle < DJCT_SHUFFLE_NONE || o->shuffle > DJCT_SHUFFLE_SHARDS)
        return djct_error_set(DJCT_EINVAL, "dataset: shuffle %d is not a djct_shuffle (0 to 3)", o->shuffle);
    if (o->prefetch_depth < 0 || o->prefetch_depth > 1024)
        return djct_error_set(DJCT_EINVAL, "dataset: prefetch_depth %d outside 0..1024", o->prefetch_depth);
    return 0;
}

int djct_dataset_open_files(djct_dataset **out, const char *const *paths, size_t n_paths,
                            const djct_dataset_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(paths || !n_paths);
    DJCT_CHECK_VERSION(opts, DJCT_DATASET_OPTIONS_VERSION, "djct_dataset_options");
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    if (opts)
        o = *opts;
    int rc = check_options(&o);
    if (rc < 0)
        return rc;
    if (n_paths == 0)
        return djct_error_set(DJCT_EINVAL, "dataset: no files");
    djct_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds)
        return djct_error_oom();
    ds->o = o;
    pthread_mutex_init(&ds->mu, NULL);
    pthread_cond_init(&ds->cv_item, NULL);
    pthread_cond_init(&ds->cv_space, NULL);
    if (!(ds->files = calloc(n_paths, sizeof(djct_file_meta))) || !(ds->first = calloc(n_paths + 1, sizeof(int64_t))) ||
        !(ds->prefaulted = calloc(n_paths, 1)) ||
        !(ds->q = calloc((size_t)(o.prefetch_depth ? o.prefetch_depth : 1), sizeof(bint *)))) {
        rc = djct_error_oom();
        goto fail;
    }
    for (size_t i = 0; i < n_paths; i++) {
        if ((rc = read_meta(&ds->files[i], paths[i])) < 0)
            goto fail;
        ds->nf = i + 1;
        if (i && (rc = check_schema(&ds->files[0], &ds->files[i])) < 0)
            goto fail;
        ds->first[i + 1] = ds->first[i] + ds->files[i].n_events;
    }
    ds->N = ds->first[ds->nf];
    const djct_array *l[3];
    layout_lists(&ds->files[0].layout, l, ds->counts);
    ds->n_arrays = ds->counts[0] + ds->counts[1] + ds->counts[2];
    if (!ds->counts[0]) {
        rc = djct_error_set(DJCT_EINVAL, "dataset: '%s' has no feature array", ds->files[0].path);
        goto fail;
    }
    if (!(ds->lay = calloc(ds->n_arrays, sizeof(*ds->lay))) ||
        !(ds->row_values = calloc(ds->n_arrays, sizeof(size_t))) || !(ds->ragged = calloc(ds->n_arrays, sizeof(int))) ||
        !(ds->cnt = malloc((size_t)(ds->N + 1) * sizeof(int64_t)))) {
        rc = djct_error_oom();
        goto fail;
    }
    int any_ragged = 0;
    for (int c = 0, k = 0; c < 3; c++)
        for (size_t i = 0; i < ds->counts[c]; i++, k++) {
            const djct_array *a = &l[c][i];
            ds->lay[k] = a;
            ds->ragged[k] = layout_ragged(a);
            any_ragged |= ds->ragged[k];
            size_t rv = 1;
            for (int d = ds->ragged[k] ? 2 : 1; d < a->ndim; d++)
                rv *= (size_t)a->shape[d];
            ds->row_values[k] = rv;
        }
    for (size_t f = 0; f < ds->nf; f++)
        for (int64_t e = 0; e < ds->files[f].n_events; e++)
            ds->cnt[ds->first[f] + e] = any_ragged && ds->files[f].event_elements ? ds->files[f].event_elements[e]
                                                                                  : any_ragged ? 0 : 1;
    ds->by_elements = any_ragged && o.batch_elements > 0;
    if (any_ragged && o.batch_elements == 0 && o.batch_events == 0) {
        rc = djct_error_set(DJCT_EINVAL, "dataset: ragged data needs batch_elements > 0 (attempting empty split)");
        goto fail;
    }
    if ((rc = plan_epoch(ds, 0)) < 0 || (rc = start_prefetch(ds)) < 0)
        goto fail;
    *out = ds;
    return 0;
fail:
    djct_dataset_free(ds);
    return rc;
}

int djct_dataset_open(djct_dataset **out, const char *spec, const djct_dataset_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(spec);
    strlist l = {0};
    char *copy = strdup(spec), *save = NULL;
    int rc = copy ? 0 : djct_error_oom();
    for (char *e = copy ? strtok_r(copy, ",", &save) : NULL; e && rc == 0; e = strtok_r(NULL, ",", &save))
        if (*e)
            rc = add_entry(&l, e);
    free(copy);
    if (rc == 0 && l.n == 0)
        rc = djct_error_set(DJCT_EINVAL, "dataset: spec '%s' names no file", spec);
    if (rc == 0)
        rc = djct_dataset_open_files(out, (const char *const *)l.p, l.n, opts);
    sl_free(&l);
    return rc;
}

size_t djct_dataset_n_files(const djct_dataset *ds) { return ds ? ds->nf : 0; }
int64_t djct_dataset_n_events(const djct_dataset *ds) { return ds ? ds->N : 0; }
const djct_file_meta *djct_dataset_file(const djct_dataset *ds, size_t i) { return ds && i < ds->nf ? &ds->files[i] : NULL; }
const int64_t *djct_dataset_event_elements(const djct_dataset *ds) { return ds ? ds->cnt : NULL; }
int djct_dataset_counts_elements(const djct_dataset *ds) { return ds ? ds->by_elements : 0; }
int64_t djct_dataset_steps(const djct_dataset *ds) { return ds ? ds->steps : 0; }
int64_t djct_dataset_epoch(const djct_dataset *ds) { return ds ? ds->epoch : 0; }
int64_t djct_dataset_position(const djct_dataset *ds) { return ds ? ds->cursor : 0; }
double djct_dataset_wait_seconds(const djct_dataset *ds) { return ds ? ds->wait_total : 0; }
double djct_dataset_last_wait_seconds(const djct_dataset *ds) { return ds ? ds->wait_last : 0; }

int djct_dataset_seek(djct_dataset *ds, int64_t epoch, int64_t step)
{
    DJCT_CHECK_ARG(ds);
    if (epoch < 0)
        return djct_error_set(DJCT_EINVAL, "dataset: epoch %" PRId64 " is negative", epoch);
    stop_prefetch(ds);
    int rc;
    if (epoch != ds->epoch && (rc = plan_epoch(ds, epoch)) < 0)
        return rc;
    if (step < 0 || step > ds->steps)
        return djct_error_set(DJCT_EINVAL, "dataset: step %" PRId64 " outside 0..%" PRId64 " of epoch %" PRId64,
                              step, ds->steps, epoch);
    ds->cursor = step;
    return start_prefetch(ds);
}

int djct_dataset_begin_epoch(djct_dataset *ds, int64_t epoch) { return djct_dataset_seek(ds, epoch, 0); }

int djct_dataset_next(djct_dataset *ds, djct_batch **out)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(out);
    *out = NULL;
    double t0 = now_s(), t1;
    bint *b = NULL;
    int rc = 0;
    if (ds->cursor >= ds->steps) {
        ds->wait_last = 0;
        return 0;
    }
    if (!ds->running) {
        if ((rc = build_batch(ds, ds->cursor, &b)) < 0)
            return rc;
        t1 = now_s();
    } else {
        pthread_mutex_lock(&ds->mu);
        while (ds->qcount == 0 && !ds->done && !ds->err)
            pthread_cond_wait(&ds->cv_item, &ds->mu);
        /* the wait ends when a batch is there; waking the producer below is hand-off cost */
        t1 = now_s();
        if (ds->qcount) {
            b = ds->q[ds->qhead];
            ds->qhead = (ds->qhead + 1) % ds->o.prefetch_depth;
            ds->qcount--;
            pthread_cond_broadcast(&ds->cv_space);
        } else if (ds->err)
            rc = djct_error_set(ds->err, "%s", ds->errmsg);
        else
            rc = djct_error_set(DJCT_ERROR, "dataset: prefetch ended before step %" PRId64, ds->cursor);
        pthread_mutex_unlock(&ds->mu);
        if (rc < 0)
            return rc;
    }
    ds->wait_last = t1 - t0;
    ds->wait_total += ds->wait_last;
    b->b.wait_seconds = ds->wait_last;
    ds->cursor++;
    *out = &b->b;
    return 0;
}

int djct_dataset_plan_stats(const djct_dataset *ds, djct_plan_stats *out)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(out);
    *out = ds->st;
    return 0;
}

int djct_dataset_plan_elements(const djct_dataset *ds, const int64_t **elements, int64_t *steps, int *world_size)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(elements);
    *elements = ds->bin_el;
    if (steps)
        *steps = ds->steps;
    if (world_size)
        *world_size = ds->o.world_size;
    return 0;
}

int djct_dataset_plan_events(const djct_dataset *ds, int64_t step, int rank, const int64_t **events, size_t *n_events)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(events);
    DJCT_CHECK_ARG(n_events);
    if (step < 0 || step >= ds->steps || rank < 0 || rank >= ds->o.world_size)
        return djct_error_set(DJCT_EINVAL, "dataset: step %" PRId64 " / rank %d outside the plan (%" PRId64
                              " steps, %d ranks)", step, rank, ds->steps, ds->o.world_size);
    int64_t b = step * ds->o.world_size + rank;
    *events = ds->ev + ds->bin_off[b];
    *n_events = (size_t)(ds->bin_off[b + 1] - ds->bin_off[b]);
    return 0;
}
