/* Values of the HDF5 layout and the public readers: gathers of sorted events (from the mapping
 * for direct arrays, else through libhdf5 under the crash guard, converted where the file's dtype
 * is not the array's), whole-record reads, and the description djct_inspect prints. */
#include "djct/h5.h"
#include "djct/error.h"
#include "djct_int.h"
#include "h5_int.h"
#include "h5_file_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    djct_h5_file *f;
    h5arr *h;
    const int64_t *events; /* sorted, or NULL: the range first..first+n */
    int64_t first;
    size_t n;
    void *dst;
    void *raw; /* a converted array: libhdf5 reads the file's values here, djct converts into dst */
} gather_args;

static int64_t event_at(const gather_args *a, size_t i) { return a->events ? a->events[i] : a->first + (int64_t)i; }

/* the rows of a direct array: memcpy from the mapping, event run by event run */
static int gather_direct(void *p)
{
    gather_args *a = p;
    const djct_h5_file *f = a->f;
    const h5arr *h = a->h;
    const int64_t *events = a->events;
    char *out = a->dst;
    for (size_t i = 0; i < a->n;) {
        int64_t e0 = events ? events[i] : a->first + (int64_t)i, e1 = e0 + 1;
        if (e0 < 0 || e0 >= f->meta.n_events)
            return djct_error_set(DJCT_EINVAL, "'%s': event %" PRId64 " outside 0..%" PRId64, f->path, e0,
                                  f->meta.n_events - 1);
        for (i++; i < a->n && (events ? events[i] : a->first + (int64_t)i) == e1 && e1 < f->meta.n_events; i++)
            e1++;
        hsize_t r0 = h->ragged ? (hsize_t)h->rs[e0] : (hsize_t)e0;
        hsize_t r1 = h->ragged ? (hsize_t)h->rs[e1] : (hsize_t)e1;
        h5_direct_rows(f, h, r0, r1, out);
        out += (size_t)(r1 - r0) * h->row_values * 4;
    }
    return 0;
}

/* Select rows of runs [start, start+count) (one per event, or the elements of each event) and
 * read them into dst with one H5Dread. */
static int gather_h5(void *p)
{
    gather_args *a = p;
    djct_h5_file *f = a->f;
    h5arr *h = a->h;
    const int64_t *events = a->events;
    int64_t first = a->first;
    size_t n = a->n;
    void *dst = a->dst;
    hid_t fs = -1, ms = -1;
    int rc = 0, any = 0;
    hsize_t total = 0;
    if ((fs = H5Dget_space(h->ds)) < 0 || H5Sselect_none(fs) < 0)
        return h5fail(DJCT_EIO, f->path, h->vname, "dataspace");
    hsize_t start[DJCT_MAX_DIMS] = {0}, count[DJCT_MAX_DIMS];
    for (int i = 0; i < h->rank; i++)
        count[i] = h->ext[i];
    size_t i = 0;
    while (i < n) {
        int64_t e0 = events ? events[i] : first + (int64_t)i;
        if (e0 < 0 || e0 >= f->meta.n_events) {
            rc = djct_error_set(DJCT_EINVAL, "'%s': event %" PRId64 " outside 0..%" PRId64, f->path, e0,
                                f->meta.n_events - 1);
            goto done;
        }
        int64_t e1 = e0 + 1;
        i++;
        /* coalesce consecutive events into one run */
        while (i < n && (events ? events[i] : first + (int64_t)i) == e1 && e1 < f->meta.n_events) {
            e1++;
            i++;
        }
        hsize_t r0 = h->ragged ? (hsize_t)h->rs[e0] : (hsize_t)e0;
        hsize_t r1 = h->ragged ? (hsize_t)h->rs[e1] : (hsize_t)e1;
        if (r1 == r0)
            continue;
        start[0] = r0;
        count[0] = r1 - r0;
        if (H5Sselect_hyperslab(fs, any ? H5S_SELECT_OR : H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
            rc = h5fail(DJCT_EIO, f->path, h->vname, "hyperslab selection failed");
            goto done;
        }
        any = 1;
        total += count[0];
    }
    if (!any || h->row_values == 0)
        goto done;
    /* the memory space has the file's shape (total rows): HDF5 then copies whole rows instead of
     * iterating element by element between differently shaped spaces */
    hsize_t mdims[DJCT_MAX_DIMS];
    memcpy(mdims, h->ext, sizeof(hsize_t) * (size_t)h->rank);
    mdims[0] = total;
    if ((ms = H5Screate_simple(h->rank, mdims, NULL)) < 0 ||
        H5Dread(h->ds, h->conv.mem, ms, fs, H5P_DEFAULT, a->raw ? a->raw : dst) < 0)
        rc = h5fail(DJCT_EIO, f->path, h->vname, "cannot be read");
done:
    CLOSE(H5Sclose, ms);
    CLOSE(H5Sclose, fs);
    return rc;
}

/* what to do about a value the conversion refused */
static const char *remedy(const h5_conv *c)
{
    if (c->src == H5C_SRC_F64)
        return "rescale the values, or store them as float32";
    if (c->src == H5C_SRC_BOOL)
        return "the file is corrupt; rewrite it with h5py";
    if (c->target == DJCT_DTYPE_FLOAT32)
        return "read it as int32 (leave 'dtype = float32' out of the map)";
    return "bring the values into int32's range, or store them as float32";
}

/* Convert the values libhdf5 read into a->raw (`rows` rows, packed in event order) into a->dst;
 * a value the target cannot hold is an error naming the dataset, its row and its event. */
static int convert_rows(const gather_args *a, size_t rows)
{
    const h5arr *h = a->h;
    char why[200], where[700];
    int64_t bad = h5_conv_run(&h->conv, a->raw, a->dst, rows * h->row_values, why, sizeof(why));
    if (bad < 0)
        return 0;
    uint64_t packed = (uint64_t)bad / (h->row_values ? h->row_values : 1), row = 0;
    int64_t ev = -1;
    for (size_t i = 0; i < a->n && ev < 0; i++) {
        int64_t e = event_at(a, i);
        uint64_t r0 = h->ragged ? (uint64_t)h->rs[e] : (uint64_t)e;
        uint64_t nr = h->ragged ? (uint64_t)(h->rs[e + 1] - h->rs[e]) : 1;
        if (packed < nr) {
            ev = e;
            row = r0 + packed;
        }
        packed -= packed < nr ? 0 : nr;
    }
    h5_where(a->f, h, h->vname, where, sizeof(where));
    return djct_error_set(DJCT_EINVAL, "'%s': %s: row %" PRIu64 " (event %" PRId64 "): %s; djct reads %s as %s: %s",
                          a->f->path, where, row, ev, why, h->conv.stored, djct_dtype_name(h->conv.target),
                          remedy(&h->conv));
}

/* Rows of events (sorted) or of first..first+n of flat array k into dst, under the crash guard. */
static int gather(djct_h5_file *f, size_t k, const int64_t *events, int64_t first, size_t n, void *dst)
{
    int rc = h5_poisoned(f->path);
    if (rc < 0)
        return rc;
    gather_args a = {f, &f->a[k], events, first, n, dst, NULL};
    if (a.h->direct)
        return h5_map_guarded(f, a.h, gather_direct, &a);
    size_t rows = 0;
    if (a.h->conv.mode == H5C_CHECKED) {
        for (size_t i = 0; i < n; i++) { /* events outside the file are refused by gather_h5 */
            int64_t e = event_at(&a, i);
            if (e >= 0 && e < f->meta.n_events)
                rows += a.h->ragged ? (size_t)(a.h->rs[e + 1] - a.h->rs[e]) : 1;
        }
        if (!(a.raw = malloc(rows * a.h->row_values * a.h->conv.src_size + 1)))
            return djct_error_oom();
    }
    h5_quiet();
    h5_at("%s", a.h->vname);
    rc = h5_guarded(f->path, 0, gather_h5, &a);
    if (rc == 0 && a.raw)
        rc = convert_rows(&a, rows); /* outside the guard: no libhdf5 call */
    free(a.raw);
    return rc;
}

int djct_h5_file_gather(djct_h5_file *f, size_t k, const int64_t *events, size_t n, void *dst)
{
    DJCT_CHECK_ARG(f);
    if (k >= f->n)
        return djct_error_set(DJCT_EINVAL, "'%s': array index %zu outside 0..%zu", f->path, k, f->n - 1);
    return gather(f, k, events, 0, n, dst);
}

/* events first..first+n of an open file into a record; takes the layout arrays over from f, which
 * is then good only for closing */
static int read_range(djct_h5_file *f, djct_record *out, int64_t first_event, int64_t n_events)
{
    if (first_event < 0 || n_events < 0 || first_event > f->meta.n_events - n_events)
        return djct_error_set(DJCT_EINVAL, "'%s': events %" PRId64 "..+%" PRId64 " outside the file's %" PRId64
                              " events", f->path, first_event, n_events, f->meta.n_events);
    djct_record r = f->meta.layout; /* take the layout arrays over, then fill values */
    memset(&f->meta.layout, 0, sizeof(f->meta.layout));
    size_t k = 0;
    int rc = 0;
    djct_array *lists[3] = {r.features, r.truths, r.weights};
    size_t ns[3] = {r.n_features, r.n_truths, r.n_weights};
    for (int c = 0; c < 3 && rc == 0; c++)
        for (size_t i = 0; i < ns[c] && rc == 0; i++, k++) {
            djct_array *a = &lists[c][i];
            h5arr *h = &f->a[k];
            int64_t rows = n_events, base = 0;
            a->shape[0] = n_events;
            if (h->ragged) {
                base = h->rs[first_event];
                rows = h->rs[first_event + n_events] - base;
                a->shape[1] = -rows;
                a->n_row_splits = (size_t)n_events + 1;
                if (!(a->row_splits = malloc(a->n_row_splits * sizeof(int64_t)))) {
                    rc = djct_error_oom();
                    break;
                }
                for (int64_t e = 0; e <= n_events; e++)
                    a->row_splits[e] = h->rs[first_event + e] - base;
            }
            a->n_values = (size_t)rows * h->row_values;
            if (!(a->values = malloc(a->n_values * 4 + 4))) {
                rc = djct_error_oom();
                break;
            }
            if (n_events)
                rc = gather(f, k, NULL, first_event, (size_t)n_events, a->values);
        }
    if (rc < 0) {
        djct_record_clear(&r);
        return rc;
    }
    *out = r;
    return 0;
}

int djct_h5_file_read_all(djct_h5_file *f, djct_record *out)
{
    DJCT_CHECK_ARG(f && out);
    return read_range(f, out, 0, f->meta.n_events);
}

/* ---- the public readers ---- */

static int open_ext(djct_h5_file **f, const char *path, const djct_h5_read_options *opts)
{
    DJCT_CHECK_VERSION(opts, DJCT_H5_READ_OPTIONS_VERSION, "djct_h5_read_options");
    return djct_h5_file_open_map(f, path, 0, opts ? opts->map : NULL);
}

int djct_h5_read_events_ext(djct_record *out, const char *path, int64_t first_event, int64_t n_events,
                            const djct_h5_read_options *opts)
{
    DJCT_CHECK_ARG(out);
    djct_h5_file *f = NULL;
    int rc = open_ext(&f, path, opts);
    if (rc < 0)
        return rc;
    rc = read_range(f, out, first_event, n_events);
    djct_h5_file_close(f);
    return rc;
}

int djct_h5_read_ext(djct_record *out, const char *path, const djct_h5_read_options *opts)
{
    DJCT_CHECK_ARG(out);
    djct_h5_file *f = NULL;
    int rc = open_ext(&f, path, opts); /* once: the meta and the values from one handle */
    if (rc < 0)
        return rc;
    rc = read_range(f, out, 0, f->meta.n_events);
    djct_h5_file_close(f);
    return rc;
}

int djct_h5_read_meta_ext(djct_file_meta *out, const char *path, const djct_h5_read_options *opts)
{
    DJCT_CHECK_ARG(out);
    djct_h5_file *f = NULL;
    int rc = open_ext(&f, path, opts);
    if (rc < 0)
        return rc;
    *out = f->meta;
    memset(&f->meta, 0, sizeof(f->meta));
    djct_h5_file_close(f);
    return 0;
}

int djct_h5_read_events(djct_record *out, const char *path, int64_t first_event, int64_t n_events)
{
    return djct_h5_read_events_ext(out, path, first_event, n_events, NULL);
}

int djct_h5_read(djct_record *out, const char *path) { return djct_h5_read_ext(out, path, NULL); }

int djct_h5_read_meta(djct_file_meta *out, const char *path) { return djct_h5_read_meta_ext(out, path, NULL); }

void djct_h5_info_clear(djct_h5_info *info)
{
    if (!info)
        return;
    djct_file_meta_clear(&info->meta);
    for (size_t i = 0; i < info->n_sources; i++) {
        free(info->sources[i].values);
        free(info->sources[i].splits);
    }
    free(info->sources);
    free(info->map);
    memset(info, 0, sizeof(*info));
}

int djct_h5_inspect(djct_h5_info *out, const char *path, const djct_h5_read_options *opts)
{
    DJCT_CHECK_ARG(out);
    memset(out, 0, sizeof(*out));
    djct_h5_file *f = NULL;
    int rc = open_ext(&f, path, opts);
    if (rc < 0)
        return rc;
    if ((f->h5map && !(out->map = strdup(f->h5map->path))) || !(out->sources = calloc(f->n, sizeof(djct_h5_source)))) {
        rc = djct_error_oom();
        goto done;
    }
    out->n_sources = f->n;
    for (size_t k = 0; k < f->n; k++) {
        const h5arr *h = &f->a[k];
        djct_h5_source *s = &out->sources[k];
        if (!(s->values = strdup(h->vname)) || (h->sname && !(s->splits = strdup(h->sname)))) {
            rc = djct_error_oom();
            goto done;
        }
        s->splits_kind = h->splits_kind ? h5_splits_kind_name[h->splits_kind] : NULL;
        s->stored = h->conv.stored;
        s->converted = h->conv.mode != H5C_NATIVE;
        s->rule = h->conv.mode == H5C_CHECKED ? h5_conv_rule(&h->conv)
                  : h->conv.mode == H5C_EXACT ? "exact" : NULL;
    }
    out->meta = f->meta;
    memset(&f->meta, 0, sizeof(f->meta));
done:
    djct_h5_file_close(f);
    if (rc < 0)
        djct_h5_info_clear(out);
    return rc;
}

