/* The HDF5 layout's writer: every array under its container group, values chunked (and gzip'ed
 * when asked), ragged arrays with their row splits, feature names as attributes. */
#include "djct/h5.h"
#include "djct/error.h"
#include "djct_int.h"
#include "h5_int.h"
#include "h5_file_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int h5_write_str_attr(hid_t loc, const char *aname, const char *const *s, size_t n, int scalar)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = -1, a = -1;
    int ok = t >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0;
    hsize_t dim = n;
    if (ok)
        ok = (sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL)) >= 0;
    if (ok)
        ok = (a = H5Acreate2(loc, aname, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0;
    if (ok)
        ok = H5Awrite(a, t, s) >= 0;
    CLOSE(H5Aclose, a);
    CLOSE(H5Sclose, sp);
    CLOSE(H5Tclose, t);
    return ok ? 0 : -1;
}

static hid_t make_dataset(hid_t loc, const char *name, hid_t ftype, int rank, const hsize_t *dims,
                          size_t chunk_bytes, int gzip)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
    int chunked = 1;
    size_t row_bytes = H5Tget_size(ftype);
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 0)
            chunked = 0; /* fixed-size zero extents cannot be chunked */
        if (i > 0)
            row_bytes *= dims[i];
    }
    if (sp < 0 || pl < 0 || H5Pset_obj_track_times(pl, 0) < 0) /* no timestamps: same record, same bytes */
        goto done;
    if (chunked) {
        hsize_t ch[DJCT_MAX_DIMS];
        memcpy(ch, dims, sizeof(hsize_t) * (size_t)rank);
        hsize_t rows = row_bytes ? chunk_bytes / row_bytes : dims[0];
        ch[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
        if (H5Pset_chunk(pl, rank, ch) < 0)
            goto done;
        if (gzip > 0 && (H5Pset_shuffle(pl) < 0 || H5Pset_deflate(pl, (unsigned)gzip) < 0))
            goto done;
    }
    ds = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
done:
    CLOSE(H5Pclose, pl);
    CLOSE(H5Sclose, sp);
    return ds;
}

/* group creation without timestamps, so that writing the same record twice gives the same bytes */
hid_t h5_new_group(hid_t loc, const char *name)
{
    hid_t pl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    if (pl >= 0 && H5Pset_obj_track_times(pl, 0) >= 0)
        g = H5Gcreate2(loc, name, H5P_DEFAULT, pl, H5P_DEFAULT);
    CLOSE(H5Pclose, pl);
    return g;
}

static int write_array(const char *path, hid_t cg, const char *obj, const char *member, const djct_array *a,
                       size_t chunk_bytes, int gzip)
{
    hid_t g = -1, ds = -1;
    int rc = 0;
    if ((g = h5_new_group(cg, member)) < 0)
        return h5fail(DJCT_EIO, path, obj, "cannot create group");
    const char *nm = a->name ? a->name : "";
    if (h5_write_str_attr(g, "name", &nm, 1, 1) < 0 ||
        (a->n_feature_names &&
         h5_write_str_attr(g, "feature_names", (const char *const *)a->feature_names, a->n_feature_names, 0) < 0)) {
        rc = h5fail(DJCT_EIO, path, obj, "cannot write attributes");
        goto done;
    }
    int ragged = djct_array_is_ragged(a);
    hsize_t dims[DJCT_MAX_DIMS];
    int rank = a->ndim - ragged;
    if (ragged) {
        dims[0] = (hsize_t)(-a->shape[1]);
        for (int i = 2; i < a->ndim; i++)
            dims[i - 1] = (hsize_t)a->shape[i];
    } else {
        for (int i = 0; i < a->ndim; i++)
            dims[i] = (hsize_t)a->shape[i];
    }
    int f32 = a->dtype == DJCT_DTYPE_FLOAT32;
    if ((ds = make_dataset(g, "values", f32 ? H5T_IEEE_F32LE : H5T_STD_I32LE, rank, dims, chunk_bytes, gzip)) < 0 ||
        (a->n_values && H5Dwrite(ds, f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                 a->values) < 0)) {
        rc = h5fail(DJCT_EIO, path, obj, "cannot write values");
        goto done;
    }
    if (ragged) {
        CLOSE(H5Dclose, ds);
        hsize_t n = a->n_row_splits;
        if ((ds = make_dataset(g, "row_splits", H5T_STD_I64LE, 1, &n, chunk_bytes, gzip)) < 0 ||
            H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, a->row_splits) < 0) {
            rc = h5fail(DJCT_EIO, path, obj, "cannot write row_splits");
            goto done;
        }
    }
done:
    CLOSE(H5Dclose, ds);
    CLOSE(H5Gclose, g);
    return rc;
}

int h5_write_settings(const char *path, const djct_h5_write_options *opts, size_t *chunk, int *gzip)
{
    DJCT_CHECK_VERSION(opts, DJCT_H5_WRITE_OPTIONS_VERSION, "djct_h5_write_options");
    int rc = h5_poisoned(path); /* the same line as every other HDF5 function, naming the file that crashed */
    if (rc < 0)
        return rc;
    *chunk = opts && opts->chunk_bytes ? opts->chunk_bytes : (size_t)1 << 20;
    *gzip = opts ? opts->gzip_level : 0;
    if (*gzip < 0 || *gzip > 9)
        return djct_error_set(DJCT_EINVAL, "djct_h5_write_options.gzip_level %d outside 0..9", *gzip);
    return 0;
}

int djct_h5_write(const char *path, const djct_record *rec, const djct_h5_write_options *opts)
{
    DJCT_CHECK_ARG(path);
    DJCT_CHECK_ARG(rec);
    size_t chunk;
    int gzip, rc = h5_write_settings(path, opts, &chunk, &gzip);
    if (rc < 0)
        return rc;
    const djct_array *lists[3] = {rec->features, rec->truths, rec->weights};
    size_t ns[3] = {rec->n_features, rec->n_truths, rec->n_weights};
    if (ns[0] == 0)
        return djct_error_set(DJCT_EINVAL, "'%s': the record has no feature array; djct files need at least one", path);
    int64_t ev = djct_array_nrows(&lists[0][0]);
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < ns[c]; i++) {
            const djct_array *a = &lists[c][i];
            if (djct_array_validate(a) < 0)
                return djct_error_prefix("'%s': %s %zu", path, h5_containers[c], i);
            if (a->dtype != DJCT_DTYPE_FLOAT32 && a->dtype != DJCT_DTYPE_INT32)
                return djct_error_set(DJCT_EINVAL, "'%s': %s %zu: dtype %s; the layout holds float32 or int32", path,
                                      h5_containers[c], i, djct_dtype_name(a->dtype));
            if (djct_array_nrows(a) != ev)
                return djct_error_set(DJCT_EINVAL, "'%s': %s %zu: %" PRId64 " events, features 0 has %" PRId64, path,
                                      h5_containers[c], i, djct_array_nrows(a), ev);
        }
    h5_quiet();
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), cg = -1;
    if (fid < 0)
        return h5fail(DJCT_EIO, path, "/", "cannot create the file");
    const char *fmt = DJCT_H5_LAYOUT;
    if (h5_write_str_attr(fid, "djct_format", &fmt, 1, 1) < 0) {
        rc = h5fail(DJCT_EIO, path, "/", "cannot write attribute djct_format");
        goto done;
    }
    for (int c = 0; c < 3 && rc == 0; c++) {
        char obj[64];
        snprintf(obj, sizeof(obj), "/%s", h5_containers[c]);
        if ((cg = h5_new_group(fid, h5_containers[c])) < 0) {
            rc = h5fail(DJCT_EIO, path, obj, "cannot create group");
            break;
        }
        for (size_t i = 0; i < ns[c] && rc == 0; i++) {
            char member[24];
            snprintf(member, sizeof(member), "%03zu", i);
            snprintf(obj, sizeof(obj), "/%s/%s", h5_containers[c], member);
            rc = write_array(path, cg, obj, member, &lists[c][i], chunk, gzip);
        }
        CLOSE(H5Gclose, cg);
    }
done:
    if (H5Fclose(fid) < 0 && rc == 0)
        rc = h5fail(DJCT_EIO, path, "/", "cannot close (flush) the file");
    if (rc < 0)
        unlink(path);
    return rc;
}

