/* Writing a djct-ragged-1 HDF5 file in pieces (djct_h5_writer_*): the datasets are extendible
 * along axis 0, so a file of any size is written one record at a time and nothing holds it
 * whole in memory (prediction outputs). The result is the layout djct_h5_write() produces and
 * every reader validates: values chunked along axis 0, int64 row splits continued across
 * appends (each append's row splits are re-based onto the elements written before). */
#include "djct/h5.h"
#include "djct/error.h"
#include "djct_int.h"
#include "h5_int.h"
#include "h5_file_int.h"

#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hid_t      group, values, splits; /* splits: -1 when regular */
    djct_dtype dtype;
    int        ndim, ragged;
    int64_t    inner[DJCT_MAX_DIMS]; /* the fixed dimensions after the row dimension(s) */
    int        n_inner;
    hsize_t    rows;                 /* value rows written */
    char       obj[32];              /* "/features/000" for messages */
} warr;

struct djct_h5_writer {
    char   *path;
    hid_t   file;
    size_t  n[3];
    warr   *arrays; /* n[0] + n[1] + n[2], container by container */
    int64_t events;
    int64_t *rs_buf; /* scratch for re-based row splits */
    size_t  rs_cap;
    int     failed;  /* an append failed: the file is incomplete */
};

/* an extendible dataset of `rank` dims, 0 rows, chunks of about chunk_bytes along axis 0 */
static hid_t w_dataset(hid_t loc, const char *name, hid_t ftype, int rank, const hsize_t *inner_dims,
                       size_t chunk_bytes, int gzip)
{
    hsize_t dims[DJCT_MAX_DIMS], maxd[DJCT_MAX_DIMS], ch[DJCT_MAX_DIMS];
    size_t row_bytes = H5Tget_size(ftype);
    dims[0] = 0;
    maxd[0] = H5S_UNLIMITED;
    for (int i = 1; i < rank; i++) {
        dims[i] = maxd[i] = ch[i] = inner_dims[i - 1];
        row_bytes *= inner_dims[i - 1] ? inner_dims[i - 1] : 1;
    }
    hsize_t rows = row_bytes ? chunk_bytes / row_bytes : 1;
    ch[0] = rows < 1 ? 1 : rows;
    for (int i = 1; i < rank; i++)
        if (ch[i] == 0)
            ch[i] = 1; /* a chunk dimension must be positive even where the extent is 0 */
    hid_t sp = H5Screate_simple(rank, dims, maxd), pl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
    if (sp >= 0 && pl >= 0 && H5Pset_obj_track_times(pl, 0) >= 0 && H5Pset_chunk(pl, rank, ch) >= 0 &&
        (gzip <= 0 || (H5Pset_shuffle(pl) >= 0 && H5Pset_deflate(pl, (unsigned)gzip) >= 0)))
        ds = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    CLOSE(H5Pclose, pl);
    CLOSE(H5Sclose, sp);
    return ds;
}

/* write `n` rows of `src` at row `at` of dataset ds (extended first) */
static int w_rows(hid_t ds, hid_t mtype, int rank, hsize_t at, hsize_t n, const void *src)
{
    hsize_t dims[DJCT_MAX_DIMS], start[DJCT_MAX_DIMS] = {0}, count[DJCT_MAX_DIMS];
    hid_t fs = H5Dget_space(ds), ms = -1;
    int ok = fs >= 0 && H5Sget_simple_extent_dims(fs, dims, NULL) == rank;
    CLOSE(H5Sclose, fs);
    if (!ok)
        return -1;
    if (n == 0)
        return 0;
    dims[0] = at + n;
    if (H5Dset_extent(ds, dims) < 0 || (fs = H5Dget_space(ds)) < 0)
        return -1;
    memcpy(count, dims, sizeof(hsize_t) * (size_t)rank);
    start[0] = at;
    count[0] = n;
    ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
         (ms = H5Screate_simple(rank, count, NULL)) >= 0 && H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, src) >= 0;
    CLOSE(H5Sclose, ms);
    CLOSE(H5Sclose, fs);
    return ok ? 0 : -1;
}

static void writer_free(djct_h5_writer *w)
{
    if (!w)
        return;
    size_t na = w->n[0] + w->n[1] + w->n[2];
    for (size_t k = 0; w->arrays && k < na; k++) {
        CLOSE(H5Dclose, w->arrays[k].values);
        CLOSE(H5Dclose, w->arrays[k].splits);
        CLOSE(H5Gclose, w->arrays[k].group);
    }
    free(w->arrays);
    free(w->rs_buf);
    free(w->path);
    free(w);
}

static const djct_array *w_list(const djct_record *r, int c, size_t *n)
{
    *n = c == 0 ? r->n_features : c == 1 ? r->n_truths : r->n_weights;
    return c == 0 ? r->features : c == 1 ? r->truths : r->weights;
}

static int w_create_array(djct_h5_writer *w, hid_t cg, int c, size_t i, const djct_array *a, warr *wa,
                          size_t chunk, int gzip)
{
    char member[24];
    snprintf(member, sizeof(member), "%03zu", i);
    snprintf(wa->obj, sizeof(wa->obj), "/%s/%s", h5_containers[c], member);
    if (a->dtype != DJCT_DTYPE_FLOAT32 && a->dtype != DJCT_DTYPE_INT32)
        return djct_error_set(DJCT_EINVAL, "'%s': %s: dtype %s; the layout holds float32 or int32", w->path, wa->obj,
                              djct_dtype_name(a->dtype));
    wa->ragged = djct_array_is_ragged(a);
    if (a->ndim < 1 + wa->ragged || a->ndim > DJCT_MAX_DIMS)
        return djct_error_set(DJCT_EINVAL, "'%s': %s: ndim %d is not allowed for a %s array", w->path, wa->obj,
                              a->ndim, wa->ragged ? "ragged" : "regular");
    wa->dtype = a->dtype;
    wa->ndim = a->ndim;
    wa->n_inner = a->ndim - 1 - wa->ragged;
    hsize_t inner[DJCT_MAX_DIMS];
    for (int d = 0; d < wa->n_inner; d++) {
        wa->inner[d] = a->shape[d + 1 + wa->ragged];
        if (wa->inner[d] < 0)
            return djct_error_set(DJCT_EINVAL, "'%s': %s: dimension %d is %" PRId64, w->path, wa->obj,
                                  d + 1 + wa->ragged, wa->inner[d]);
        inner[d] = (hsize_t)wa->inner[d];
    }
    if ((wa->group = h5_new_group(cg, member)) < 0)
        return h5fail(DJCT_EIO, w->path, wa->obj, "cannot create group");
    const char *nm = a->name ? a->name : "";
    if (h5_write_str_attr(wa->group, "name", &nm, 1, 1) < 0 ||
        (a->n_feature_names && h5_write_str_attr(wa->group, "feature_names", (const char *const *)a->feature_names,
                                          a->n_feature_names, 0) < 0))
        return h5fail(DJCT_EIO, w->path, wa->obj, "cannot write attributes");
    hid_t ft = a->dtype == DJCT_DTYPE_FLOAT32 ? H5T_IEEE_F32LE : H5T_STD_I32LE;
    if ((wa->values = w_dataset(wa->group, "values", ft, 1 + wa->n_inner, inner, chunk, gzip)) < 0)
        return h5fail(DJCT_EIO, w->path, wa->obj, "cannot create values");
    if (wa->ragged) {
        int64_t zero = 0;
        if ((wa->splits = w_dataset(wa->group, "row_splits", H5T_STD_I64LE, 1, NULL, chunk, gzip)) < 0 ||
            w_rows(wa->splits, H5T_NATIVE_INT64, 1, 0, 1, &zero) < 0)
            return h5fail(DJCT_EIO, w->path, wa->obj, "cannot create row_splits");
    }
    return 0;
}

int djct_h5_writer_create(djct_h5_writer **out, const char *path, const djct_record *layout,
                          const djct_h5_write_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    DJCT_CHECK_ARG(layout);
    *out = NULL;
    size_t chunk;
    int gzip, rc = h5_write_settings(path, opts, &chunk, &gzip);
    if (rc < 0)
        return rc;
    if (layout->n_features == 0)
        return djct_error_set(DJCT_EINVAL, "'%s': the layout has no feature array; djct files need at least one",
                              path);
    djct_h5_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(path)))
        return free(w), djct_error_oom();
    w->file = -1;
    for (int c = 0; c < 3; c++)
        w_list(layout, c, &w->n[c]);
    size_t na = w->n[0] + w->n[1] + w->n[2];
    if (!(w->arrays = calloc(na, sizeof(warr)))) {
        writer_free(w);
        return djct_error_oom();
    }
    for (size_t k = 0; k < na; k++)
        w->arrays[k].group = w->arrays[k].values = w->arrays[k].splits = -1;
    h5_quiet();
    hid_t cg = -1;
    const char *fmt = DJCT_H5_LAYOUT;
    if ((w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        rc = h5fail(DJCT_EIO, path, "/", "cannot create the file");
    else if (h5_write_str_attr(w->file, "djct_format", &fmt, 1, 1) < 0)
        rc = h5fail(DJCT_EIO, path, "/", "cannot write attribute djct_format");
    for (int c = 0, k = 0; c < 3 && rc == 0; c++) {
        size_t n;
        const djct_array *l = w_list(layout, c, &n);
        if ((cg = h5_new_group(w->file, h5_containers[c])) < 0) {
            rc = h5fail(DJCT_EIO, path, h5_containers[c], "cannot create group");
            break;
        }
        for (size_t i = 0; i < n && rc == 0; i++, k++)
            rc = w_create_array(w, cg, c, i, &l[i], &w->arrays[k], chunk, gzip);
        CLOSE(H5Gclose, cg);
    }
    if (rc < 0) {
        hid_t f = w->file;
        w->file = -1;
        writer_free(w);
        if (f >= 0)
            H5Fclose(f);
        remove(path);
        return rc;
    }
    *out = w;
    return 0;
}

/* rec's arrays must be those of the layout */
static int w_check(const djct_h5_writer *w, const djct_record *rec, int64_t *events)
{
    *events = -1;
    for (int c = 0, k = 0; c < 3; c++) {
        size_t n;
        const djct_array *l = w_list(rec, c, &n);
        if (n != w->n[c])
            return djct_error_set(DJCT_EINVAL, "'%s': the record has %zu %s arrays, the file %zu", w->path, n,
                                  h5_containers[c], w->n[c]);
        for (size_t i = 0; i < n; i++, k++) {
            const djct_array *a = &l[i];
            const warr *wa = &w->arrays[k];
            if (djct_array_validate(a) < 0)
                return djct_error_prefix("'%s': %s", w->path, wa->obj);
            int same = a->dtype == wa->dtype && a->ndim == wa->ndim && djct_array_is_ragged(a) == wa->ragged;
            for (int d = 0; same && d < wa->n_inner; d++)
                same = a->shape[d + 1 + wa->ragged] == wa->inner[d];
            if (!same)
                return djct_error_set(DJCT_EINVAL, "'%s': %s: the record's array (%s, %s, ndim %d) differs from "
                                      "the file's (%s, %s, ndim %d) in dtype, raggedness or inner dimensions",
                                      w->path, wa->obj, djct_dtype_name(a->dtype),
                                      djct_array_is_ragged(a) ? "ragged" : "regular", a->ndim,
                                      djct_dtype_name(wa->dtype), wa->ragged ? "ragged" : "regular", wa->ndim);
            int64_t rows = djct_array_nrows(a);
            if (*events >= 0 && rows != *events)
                return djct_error_set(DJCT_EINVAL, "'%s': %s: %" PRId64 " events, the record's first array has %" PRId64,
                                      w->path, wa->obj, rows, *events);
            *events = rows;
        }
    }
    return 0;
}

int djct_h5_writer_append(djct_h5_writer *w, const djct_record *rec)
{
    DJCT_CHECK_ARG(w);
    DJCT_CHECK_ARG(rec);
    if (w->failed)
        return djct_error_set(DJCT_EINVAL, "'%s': an earlier append failed; the file is incomplete", w->path);
    int64_t ev;
    int rc = w_check(w, rec, &ev);
    if (rc < 0)
        return rc;
    if ((size_t)ev + 1 > w->rs_cap) {
        int64_t *nb = realloc(w->rs_buf, ((size_t)ev + 1) * sizeof(int64_t));
        if (!nb)
            return djct_error_oom();
        w->rs_buf = nb;
        w->rs_cap = (size_t)ev + 1;
    }
    h5_quiet();
    for (int c = 0, k = 0; c < 3 && rc == 0; c++) {
        size_t n;
        const djct_array *l = w_list(rec, c, &n);
        for (size_t i = 0; i < n && rc == 0; i++, k++) {
            const djct_array *a = &l[i];
            warr *wa = &w->arrays[k];
            hsize_t rows = wa->ragged ? (hsize_t)a->row_splits[a->n_row_splits - 1] : (hsize_t)ev;
            hid_t mt = a->dtype == DJCT_DTYPE_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32;
            if (w_rows(wa->values, mt, 1 + wa->n_inner, wa->rows, rows, a->values) < 0) {
                rc = h5fail(DJCT_EIO, w->path, wa->obj, "cannot append values");
                break;
            }
            if (wa->ragged) {
                for (int64_t e = 0; e < ev; e++)
                    w->rs_buf[e] = (int64_t)wa->rows + a->row_splits[e + 1];
                if (w_rows(wa->splits, H5T_NATIVE_INT64, 1, (hsize_t)w->events + 1, (hsize_t)ev, w->rs_buf) < 0) {
                    rc = h5fail(DJCT_EIO, w->path, wa->obj, "cannot append row_splits");
                    break;
                }
            }
            wa->rows += rows;
        }
    }
    if (rc < 0) {
        w->failed = 1;
        return rc;
    }
    w->events += ev;
    return 0;
}

int64_t djct_h5_writer_events(const djct_h5_writer *w) { return w ? w->events : 0; }

int djct_h5_writer_close(djct_h5_writer *w)
{
    if (!w)
        return 0;
    int rc = w->failed ? djct_error_set(DJCT_EINVAL, "'%s': an append failed; the file is incomplete", w->path) : 0;
    hid_t f = w->file;
    char *path = w->path;
    w->path = NULL;
    w->file = -1;
    writer_free(w);
    h5_quiet();
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0)
        rc = h5fail(DJCT_EIO, path, "/", "cannot close (flush) the file");
    free(path);
    return rc;
}
