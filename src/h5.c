/* The djct-ragged-1 HDF5 layout (docs/hdf5_layout.md): write with libhdf5, and read only after
 * validating every group, dataset, dtype, extent and row split, so that a hostile file fails
 * with one line naming file, object and field instead of crashing or allocating wildly.
 * libhdf5 itself can crash on a corrupt file before djct sees anything, so files are read
 * through djct's checking driver (h5fd_int.h) and every libhdf5 call that parses a file runs
 * under the crash guard (guard_int.h); after a crash no more libhdf5 calls are made in the
 * process. HDF5's automatic error printing is switched off per call (it is per thread in
 * threadsafe builds) and the innermost HDF5 message is appended to djct's error. */
#include "djct/h5.h"
#include "djct/error.h"
#include "djct_int.h"
#include "h5_int.h"
#include "guard_int.h"
#include "h5fd_int.h"

#include <hdf5.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const CONTAINERS[3] = {"features", "truths", "weights"};
#define MAX_ARRAYS_PER_GROUP 4096
#define MAX_FEATURE_NAMES 1000000
#define MAX_STRING_BYTES (1 << 20)

/* ---- errors ----------------------------------------------------------------------------- */

static herr_t walk_first(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc)
        snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

/* one line: '<path>': <object>: <what> (hdf5: <innermost message>) */
static int h5fail(int code, const char *path, const char *obj, const char *what)
{
    char detail[200] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, detail);
    H5Eclear2(H5E_DEFAULT);
    if (detail[0])
        return djct_error_set(code, "'%s': %s: %s (hdf5: %s)", path, obj, what, detail);
    return djct_error_set(code, "'%s': %s: %s", path, obj, what);
}

static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

#define CLOSE(fn, h)                                                                       \
    do {                                                                                   \
        if ((h) >= 0)                                                                      \
            fn(h);                                                                         \
        (h) = -1;                                                                          \
    } while (0)

/* ---- crashes inside libhdf5 ----------------------------------------------------------------
 * libhdf5 1.10 faults on some corrupt files (a variable-length string whose global heap is
 * damaged crashes in H5Aread -> H5HG_read) or loops forever (another damaged global heap spins
 * in its cache loader) before djct can check anything. Opening a file and reading values
 * through libhdf5 therefore run under the crash guard, and opening also under a CPU-time limit
 * for libhdf5's code. After a caught crash or loop libhdf5's state (API context stack, the
 * file's metadata cache, open objects) cannot be trusted, so the process is poisoned: djct
 * makes no further libhdf5 call, and every djct HDF5 function fails at once naming the file. */

static atomic_int g_poison;              /* 0 clean, 1 being recorded, 2 g_crashed holds the file */
static char g_crashed[512];
static const char *g_crash_kind = "crashed"; /* or "looped" */
static _Thread_local char tl_at[192];    /* the object being parsed now, for the crash message */
/* CPU seconds libhdf5 may spend opening a file before it counts as looping: this plus one per
 * 16 MiB of file (row splits are decompressed during open) */
static double g_open_cpu = 60;
static pthread_once_t g_code_once = PTHREAD_ONCE_INIT;
static const char *g_h5_lo, *g_h5_hi;    /* libhdf5's code */

static void find_libhdf5(void)
{
    if (djct_guard_code_of((void (*)(void))H5open, &g_h5_lo, &g_h5_hi) != 0)
        g_h5_lo = g_h5_hi = NULL; /* no CPU limit then */
}

void djct_h5_set_open_cpu_limit(double seconds) { g_open_cpu = seconds; }

static void at(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_at, sizeof(tl_at), fmt, ap);
    va_end(ap);
}

int djct_h5_poisoned(void) { return atomic_load(&g_poison) != 0; }

void djct_h5_unpoison(void) { atomic_store(&g_poison, 0); }

/* 0, or the error for any HDF5 work on `path` once libhdf5 has crashed in this process */
static int poisoned(const char *path)
{
    int p = atomic_load(&g_poison);
    if (!p)
        return 0;
    return djct_error_set(DJCT_EIO, "'%s': HDF5 is disabled in this process since libhdf5 %s on '%s' "
                          "(corrupt file?); fix or remove that file and restart", path,
                          p == 2 ? g_crash_kind : "crashed", p == 2 ? g_crashed : "a file another thread was reading");
}

/* record that libhdf5 crashed (g->sig) on `path` while reading `obj`; poisons the process */
static int crashed(const char *path, const djct_guard *g, const char *obj)
{
    int clean = 0;
    djct_guard_exit_quietly(3); /* libhdf5's exit handler would crash or spin on the state left behind */
    if (atomic_compare_exchange_strong(&g_poison, &clean, 1)) {
        snprintf(g_crashed, sizeof(g_crashed), "%s", path);
        g_crash_kind = g->sig == SIGXCPU ? "looped" : "crashed";
        atomic_store(&g_poison, 2);
    }
    if (g->sig == SIGXCPU)
        return djct_error_set(DJCT_EIO, "'%s': libhdf5 still ran after %g s of CPU time reading %s (an endless "
                              "loop on a corrupt file?); HDF5 reading is disabled in this process, fix or remove "
                              "the file", path, g->cpu_seconds, obj);
    return djct_error_set(DJCT_EIO, "'%s': libhdf5 crashed (%s) while reading %s (corrupt file?); HDF5 reading "
                          "is disabled in this process, fix or remove the file", path,
                          djct_guard_signame(g->sig), obj);
}

/* Run body(arg), a series of libhdf5 calls on the file `path`, under the crash guard; with
 * cpu_seconds > 0 stopped once it spent that long in libhdf5's code. */
static int h5_guarded(const char *path, double cpu_seconds, int (*body)(void *), void *arg)
{
    djct_guard g = {.sigs = DJCT_GUARD_ANY, .cpu_seconds = cpu_seconds};
    if (cpu_seconds > 0) {
        pthread_once(&g_code_once, find_libhdf5);
        g.code_lo = g_h5_lo;
        g.code_hi = g_h5_hi;
    }
    int rc = djct_guard_run(&g, body, arg);
    djct_h5_fd_check_heaps(0); /* in case the guard jumped out of a string read */
    return g.sig ? crashed(path, &g, tl_at) : rc;
}

/* ---- the open, validated file ---------------------------------------------------------- */

typedef struct {
    char    obj[64];               /* "/features/000" for messages */
    hid_t   ds;                    /* the values dataset */
    int     ragged;
    int     rank;                  /* of `values` */
    hsize_t ext[DJCT_MAX_DIMS];
    size_t  row_values;            /* values per ragged element or per event */
    int64_t *rs;                   /* row splits (ragged only) */
    djct_dtype dtype;
    /* direct reads: the raw bytes are native, unfiltered and at known file offsets, so rows are
     * copied from the file mapping without libhdf5 (one hyperslab run costs ~50 us in libhdf5) */
    int      direct;
    hsize_t  chunk_rows;           /* rows per chunk (contiguous: all rows, one "chunk") */
    size_t   n_chunks;
    uint64_t *chunk_off;           /* file offset of each chunk, in row order */
} h5arr;

struct djct_h5_file {
    char          *path;
    hid_t          fid;
    uint64_t       max_bytes;      /* bound on any declared extent, from the file size */
    size_t         chunk_cache;    /* bytes of HDF5 chunk cache per values dataset (0: default) */
    djct_file_meta meta;
    size_t         n;              /* flat arrays: features, truths, weights */
    h5arr         *a;
    uint64_t       file_size;
    const char    *map;            /* read-only mapping of the whole file when an array is direct */
    /* buffers held across a libhdf5 call during open: here rather than in locals, so that a
     * crash inside libhdf5 leaves nothing of djct's unreachable (close frees them) */
    void          *scratch[2];
};

static int close_body(void *p)
{
    djct_h5_file *f = p;
    for (size_t i = 0; i < f->n; i++)
        CLOSE(H5Dclose, f->a[i].ds);
    CLOSE(H5Fclose, f->fid);
    return 0;
}

void djct_h5_file_close(djct_h5_file *f)
{
    if (!f)
        return;
    if (!djct_h5_poisoned()) { /* else the libhdf5 handles are abandoned: no more libhdf5 calls */
        at("/ (closing the file)");
        h5_guarded(f->path, 0, close_body, f);
    }
    for (size_t i = 0; i < f->n; i++) {
        free(f->a[i].rs);
        free(f->a[i].chunk_off);
    }
    if (f->map)
        munmap((void *)f->map, (size_t)f->file_size);
    free(f->a);
    free(f->scratch[0]);
    free(f->scratch[1]);
    djct_file_meta_clear(&f->meta);
    free(f->path);
    free(f);
}

const djct_file_meta *djct_h5_file_meta(const djct_h5_file *f) { return &f->meta; }

const int64_t *djct_h5_file_row_splits(const djct_h5_file *f, size_t k) { return k < f->n ? f->a[k].rs : NULL; }

/* Read a string attribute (fixed or variable length) into n strings.
 * Returns 1 when absent, 0 when read, <0 on error (message set). */
static int read_strings(djct_h5_file *f, const char *obj, hid_t loc, const char *aname, char ***out, size_t *nout)
{
    const char *path = f->path;
    char where[128];
    snprintf(where, sizeof(where), "%s attribute '%s'", obj, aname);
    at("%s", where);
    htri_t ex = H5Aexists(loc, aname);
    if (ex < 0)
        return h5fail(DJCT_EINVAL, path, where, "cannot be checked");
    if (ex == 0)
        return 1;
    int rc = 0;
    hid_t a = -1, ft = -1, mt = -1, sp = -1;
    char **res = NULL;
    size_t n = 0;
    if ((a = H5Aopen(loc, aname, H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "cannot be opened");
        goto done;
    }
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: must be a string (or array of strings); "
                            "write it with h5py as str or list of str", path, where);
        goto done;
    }
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (np < 0 || np > MAX_FEATURE_NAMES) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: %" PRId64 " strings is outside 0..%d", path, where, (int64_t)np,
                            MAX_FEATURE_NAMES);
        goto done;
    }
    n = (size_t)np;
    /* res and the read buffer live in f->scratch while libhdf5 runs */
    if (!(res = f->scratch[0] = calloc(n + 1, sizeof(char *)))) {
        rc = djct_error_oom();
        goto done;
    }
    if (H5Tis_variable_str(ft) > 0) {
        char **tmp = f->scratch[1] = calloc(n + 1, sizeof(char *));
        if (!tmp || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(ft)) < 0) {
            rc = tmp ? h5fail(DJCT_EINVAL, path, where, "string type") : djct_error_oom();
            goto done;
        }
        /* the strings live in the global heap: djct's driver checks each collection libhdf5 loads;
         * a corrupt object index still crashes libhdf5 1.10 here (H5HG_read): the guard catches it */
        djct_h5_fd_check_heaps(1);
        herr_t got = n ? H5Aread(a, mt, tmp) : 0;
        djct_h5_fd_check_heaps(0);
        if (got < 0) {
            rc = h5fail(DJCT_EINVAL, path, where, "cannot be read");
            goto done;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            const char *s = tmp[i] ? tmp[i] : "";
            if (strlen(s) > MAX_STRING_BYTES)
                rc = djct_error_set(DJCT_EINVAL, "'%s': %s: string %zu longer than %d bytes", path, where, i,
                                    MAX_STRING_BYTES);
            else if (!(res[i] = strdup(s)))
                rc = djct_error_oom();
        }
        if (n)
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, tmp);
    } else {
        size_t sz = H5Tget_size(ft);
        if (sz == 0 || sz > MAX_STRING_BYTES) {
            rc = djct_error_set(DJCT_EINVAL, "'%s': %s: fixed string size %zu outside 1..%d", path, where, sz,
                                MAX_STRING_BYTES);
            goto done;
        }
        char *buf = f->scratch[1] = calloc(n ? n : 1, sz + 1);
        if (!buf || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, sz + 1) < 0 ||
            H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) {
            rc = buf ? h5fail(DJCT_EINVAL, path, where, "string type") : djct_error_oom();
            goto done;
        }
        if (n && H5Aread(a, mt, buf) < 0) {
            rc = h5fail(DJCT_EINVAL, path, where, "cannot be read");
            goto done;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            buf[i * (sz + 1) + sz] = 0;
            if (!(res[i] = strdup(buf + i * (sz + 1))))
                rc = djct_error_oom();
        }
    }
done:
    free(f->scratch[1]);
    f->scratch[0] = f->scratch[1] = NULL;
    CLOSE(H5Tclose, mt);
    CLOSE(H5Tclose, ft);
    CLOSE(H5Sclose, sp);
    CLOSE(H5Aclose, a);
    if (rc < 0) {
        for (size_t i = 0; res && i < n; i++)
            free(res[i]);
        free(res);
        return rc;
    }
    *out = res;
    *nout = n;
    return 0;
}

static void free_strings(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

#define MAX_CHUNKS ((size_t)1 << 20)
#define FEW_CHUNKS 256

/* libhdf5 1.10 copies a whole chunk out of the buffer it read an unfiltered chunk into, whatever
 * size the chunk index records, so a corrupt index makes it read past that buffer (found by
 * fuzzing, under ASan; without it the bytes past are garbage or a fault). An unfiltered chunk
 * stores exactly its bytes: every allocated chunk of dataset ds is checked before libhdf5 reads
 * any. A few allocated chunks are listed by index; otherwise each chunk of the grid is looked up
 * (O(log n) each; listing by index or coordinate costs O(n) per chunk in 1.10). A grid of more
 * than MAX_CHUNKS chunks is not checked. */
static int check_chunk_sizes(djct_h5_file *f, hid_t ds, int rank, const hsize_t *ext, size_t tsize,
                             const char *where)
{
    hid_t dcpl = H5Dget_create_plist(ds), fs = -1;
    hsize_t cd[DJCT_MAX_DIMS], idx[DJCT_MAX_DIMS] = {0}, coord[DJCT_MAX_DIMS] = {0}, nalloc = 0, size = 0;
    uint64_t bytes = tsize;
    size_t n = 1;
    int rc = 0;
    if (dcpl < 0) {
        rc = h5fail(DJCT_EINVAL, f->path, where, "creation properties unreadable");
        goto done;
    }
    if (H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_nfilters(dcpl) != 0)
        goto done;
    if (H5Pget_chunk(dcpl, rank, cd) != rank) {
        rc = h5fail(DJCT_EINVAL, f->path, where, "chunk shape unreadable");
        goto done;
    }
    for (int i = 0; i < rank; i++) {
        if (cd[i] == 0) {
            rc = djct_error_set(DJCT_EINVAL, "'%s': %s: chunk dimension %d is 0; the file is corrupt", f->path, where, i);
            goto done;
        }
        bytes = bytes > UINT64_MAX / cd[i] ? UINT64_MAX : bytes * cd[i];
        hsize_t per = ext[i] / cd[i] + (ext[i] % cd[i] != 0);
        n = per && n > MAX_CHUNKS / per ? MAX_CHUNKS + 1 : n * (size_t)per;
    }
    if (n == 0 || (fs = H5Dget_space(ds)) < 0 || H5Dget_num_chunks(ds, fs, &nalloc) < 0) {
        rc = n ? h5fail(DJCT_EINVAL, f->path, where, "chunk index unreadable") : 0;
        goto done;
    }
    size = bytes; /* nothing wrong found yet */
    if (nalloc <= FEW_CHUNKS) {
        for (hsize_t c = 0; c < nalloc; c++) {
            unsigned mask = 0;
            haddr_t addr = HADDR_UNDEF;
            if (H5Dget_chunk_info(ds, fs, c, coord, &mask, &addr, &size) < 0) {
                rc = h5fail(DJCT_EINVAL, f->path, where, "chunk index unreadable");
                goto done;
            }
            if (size != bytes)
                break;
        }
    } else if (n <= MAX_CHUNKS) {
        for (size_t c = 0; c < n; c++) {
            for (int i = 0; i < rank; i++)
                coord[i] = idx[i] * cd[i];
            /* fails for a chunk that is not allocated: nothing to read there */
            if (H5Dget_chunk_storage_size(ds, coord, &size) >= 0 && size != bytes)
                break;
            size = bytes;
            for (int i = rank - 1; i >= 0 && ++idx[i] * cd[i] >= ext[i]; i--)
                idx[i] = 0;
        }
    }
    H5Eclear2(H5E_DEFAULT);
    if (size != bytes && nalloc)
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: the chunk at row %llu stores %llu bytes, an unfiltered chunk "
                            "of this shape holds %" PRIu64 "; the file is corrupt", f->path, where,
                            (unsigned long long)coord[0], (unsigned long long)size, bytes);
done:
    CLOSE(H5Sclose, fs);
    CLOSE(H5Pclose, dcpl);
    return rc;
}

/* Validate one array group and fill the layout array + the h5arr. */
static int open_array(djct_h5_file *f, hid_t grp, const char *obj, djct_array *lay, h5arr *h)
{
    const char *path = f->path;
    char where[128];
    int rc = 0;
    hid_t t = -1, sp = -1, rsd = -1;
    char **strs = NULL;
    size_t ns = 0;

    /* name: optional string attribute */
    if ((rc = read_strings(f, obj, grp, "name", &strs, &ns)) < 0)
        return rc;
    if (rc == 0 && ns != 1) {
        free_strings(strs, ns);
        return djct_error_set(DJCT_EINVAL, "'%s': %s attribute 'name': holds %zu strings, want one", path, obj, ns);
    }
    lay->name = rc == 0 ? strs[0] : strdup("");
    if (rc == 0)
        free(strs);
    if (!lay->name)
        return djct_error_oom();
    rc = read_strings(f, obj, grp, "feature_names", &lay->feature_names, &lay->n_feature_names);
    if (rc < 0)
        return rc;
    rc = 0;

    /* values */
    snprintf(where, sizeof(where), "%s/values", obj);
    at("%s", where);
    htri_t ex = H5Lexists(grp, "values", H5P_DEFAULT);
    if (ex <= 0)
        return h5fail(DJCT_EINVAL, path, where, "dataset missing; every array group needs a 'values' dataset");
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0 && f->chunk_cache) /* random event access: keep decoded chunks instead of re-reading them */
        H5Pset_chunk_cache(dapl, 100003, f->chunk_cache, 0.75);
    h->ds = H5Dopen2(grp, "values", dapl >= 0 ? dapl : H5P_DEFAULT);
    CLOSE(H5Pclose, dapl);
    if (h->ds < 0)
        return h5fail(DJCT_EINVAL, path, where, "cannot be opened as a dataset");
    if ((t = H5Dget_type(h->ds)) < 0 || (sp = H5Dget_space(h->ds)) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "type or dataspace unreadable");
        goto done;
    }
    H5T_class_t cls = H5Tget_class(t);
    size_t tsz = H5Tget_size(t);
    if (cls == H5T_FLOAT && tsz == 4)
        h->dtype = DJCT_DTYPE_FLOAT32;
    else if (cls == H5T_INTEGER && tsz == 4 && H5Tget_sign(t) == H5T_SGN_2)
        h->dtype = DJCT_DTYPE_INT32;
    else {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: dtype (class %d, %zu bytes) is not float32 or int32; "
                            "convert with numpy .astype('float32') or 'int32'", path, where, (int)cls, tsz);
        goto done;
    }
    lay->dtype = h->dtype;
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank < 1 || rank > DJCT_MAX_DIMS - 1) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: rank %d outside 1..%d", path, where, rank, DJCT_MAX_DIMS - 1);
        goto done;
    }
    h->rank = rank;
    H5Sget_simple_extent_dims(sp, h->ext, NULL);
    /* the declared size must be plausible for the file: deflate cannot exceed ~1032:1 */
    uint64_t total = 4;
    for (int i = 0; i < rank; i++) {
        if (h->ext[i] && total > f->max_bytes / h->ext[i]) {
            rc = djct_error_set(DJCT_EINVAL, "'%s': %s: extent %d = %llu makes the dataset larger than the file "
                                "can hold (limit %" PRIu64 " bytes)", path, where, i,
                                (unsigned long long)h->ext[i], f->max_bytes);
            goto done;
        }
        total *= h->ext[i];
    }
    h->row_values = 1;
    for (int i = 1; i < rank; i++)
        h->row_values *= (size_t)h->ext[i];
    if ((rc = check_chunk_sizes(f, h->ds, rank, h->ext, tsz, where)) < 0)
        goto done;

    /* row_splits: optional; present = ragged */
    snprintf(where, sizeof(where), "%s/row_splits", obj);
    at("%s", where);
    if ((ex = H5Lexists(grp, "row_splits", H5P_DEFAULT)) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "cannot be checked");
        goto done;
    }
    h->ragged = ex > 0;
    lay->ndim = rank + h->ragged;
    if (!h->ragged) {
        for (int i = 0; i < rank; i++)
            lay->shape[i] = (int64_t)h->ext[i];
        goto done;
    }
    CLOSE(H5Tclose, t);
    CLOSE(H5Sclose, sp);
    if ((rsd = H5Dopen2(grp, "row_splits", H5P_DEFAULT)) < 0 || (t = H5Dget_type(rsd)) < 0 ||
        (sp = H5Dget_space(rsd)) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "cannot be opened as a dataset");
        goto done;
    }
    if (H5Tget_class(t) != H5T_INTEGER) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: dtype must be an integer (int64), got class %d", path, where,
                            (int)H5Tget_class(t));
        goto done;
    }
    hsize_t n = 0;
    if (H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &n, NULL) < 0 || n < 1) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: must be 1-D with events+1 >= 1 entries", path, where);
        goto done;
    }
    if (n > f->max_bytes / 8) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: %llu entries is more than the file can hold", path, where,
                            (unsigned long long)n);
        goto done;
    }
    if ((rc = check_chunk_sizes(f, rsd, 1, &n, H5Tget_size(t), where)) < 0)
        goto done;
    if (!(h->rs = malloc(n * sizeof(int64_t)))) {
        rc = djct_error_oom();
        goto done;
    }
    if (H5Dread(rsd, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, h->rs) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "cannot be read");
        goto done;
    }
    if (h->rs[0] != 0) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: entry 0 is %" PRId64 ", must be 0", path, where, h->rs[0]);
        goto done;
    }
    for (hsize_t i = 1; i < n; i++)
        if (h->rs[i] < h->rs[i - 1]) {
            rc = djct_error_set(DJCT_EINVAL, "'%s': %s: decreases at entry %llu (%" PRId64 " after %" PRId64 ")",
                                path, where, (unsigned long long)i, h->rs[i], h->rs[i - 1]);
            goto done;
        }
    if ((uint64_t)h->rs[n - 1] != (uint64_t)h->ext[0]) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: last entry %" PRId64 " != %llu rows of %s/values", path, where,
                            h->rs[n - 1], (unsigned long long)h->ext[0], obj);
        goto done;
    }
    lay->shape[0] = (int64_t)n - 1;
    lay->shape[1] = -(int64_t)h->ext[0];
    lay->n_row_splits = (size_t)n; /* as the djcdata meta reader: marks the layout array ragged */
    for (int i = 1; i < rank; i++)
        lay->shape[i + 1] = (int64_t)h->ext[i];
done:
    CLOSE(H5Tclose, t);
    CLOSE(H5Sclose, sp);
    CLOSE(H5Dclose, rsd);
    return rc;
}


/* ---- direct reads ------------------------------------------------------------------------ */

/* H5Dget_chunk_info_by_coord walks the whole chunk index per call in libhdf5 1.10, so finding
 * the offsets is quadratic: 8192 chunks take 0.3 s, 16384 1.3 s, 60000 21 s (per array, per
 * open). Arrays with more chunks are read through libhdf5. */
#define MAX_DIRECT_CHUNKS ((size_t)8192)

/* Decide whether array h can be read straight from the file: little-endian native dtype, no
 * filters, contiguous storage or chunks spanning whole rows, every chunk allocated, unfiltered
 * and inside the file. Anything else (compression, userblock, missing chunks) stays with libhdf5. */
static void probe_direct(djct_h5_file *f, h5arr *h)
{
    hid_t t = -1, dcpl = -1;
    h->direct = 0;
    size_t row_bytes = h->row_values * 4;
    at("%s/values (storage layout and chunk index)", h->obj);
    if (h->ext[0] == 0 || row_bytes == 0 || (t = H5Dget_type(h->ds)) < 0)
        goto done;
    if (H5Tequal(t, h->dtype == DJCT_DTYPE_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32) <= 0)
        goto done;
    if ((dcpl = H5Dget_create_plist(h->ds)) < 0 || H5Pget_nfilters(dcpl) != 0)
        goto done;
    uint64_t bytes = (uint64_t)h->ext[0] * row_bytes;
    H5D_layout_t lay = H5Pget_layout(dcpl);
    if (lay == H5D_CONTIGUOUS) {
        if (H5Pget_external_count(dcpl) != 0)
            goto done;
        haddr_t off = H5Dget_offset(h->ds);
        if (off == HADDR_UNDEF || off > f->file_size || bytes > f->file_size - off)
            goto done;
        if (!(h->chunk_off = malloc(sizeof(uint64_t))))
            goto done;
        h->chunk_rows = h->ext[0];
        h->n_chunks = 1;
        h->chunk_off[0] = off;
    } else if (lay == H5D_CHUNKED) {
        hsize_t cd[DJCT_MAX_DIMS];
        if (H5Pget_chunk(dcpl, h->rank, cd) != h->rank || cd[0] == 0)
            goto done;
        for (int i = 1; i < h->rank; i++)
            if (cd[i] != h->ext[i])
                goto done; /* chunks must hold whole rows */
        size_t n = (size_t)((h->ext[0] + cd[0] - 1) / cd[0]);
        uint64_t cbytes = (uint64_t)cd[0] * row_bytes;
        if (n > MAX_DIRECT_CHUNKS || !(h->chunk_off = malloc(n * sizeof(uint64_t))))
            goto done;
        hsize_t coord[DJCT_MAX_DIMS] = {0};
        for (size_t c = 0; c < n; c++) {
            unsigned mask = 0;
            haddr_t addr = HADDR_UNDEF;
            hsize_t size = 0;
            coord[0] = (hsize_t)c * cd[0];
            if (H5Dget_chunk_info_by_coord(h->ds, coord, &mask, &addr, &size) < 0 || mask != 0 ||
                addr == HADDR_UNDEF || size != cbytes || addr > f->file_size || size > f->file_size - addr)
                goto done;
            h->chunk_off[c] = addr;
        }
        h->chunk_rows = cd[0];
        h->n_chunks = n;
    } else
        goto done;
    h->direct = 1;
done:
    if (!h->direct) {
        free(h->chunk_off);
        h->chunk_off = NULL;
    }
    H5Eclear2(H5E_DEFAULT);
    CLOSE(H5Tclose, t);
    CLOSE(H5Pclose, dcpl);
}

/* copy rows [r0, r1) of a direct array to dst */
static void direct_rows(const djct_h5_file *f, const h5arr *h, hsize_t r0, hsize_t r1, char *dst)
{
    size_t rb = h->row_values * 4;
    while (r0 < r1) {
        size_t c = (size_t)(r0 / h->chunk_rows);
        hsize_t in = r0 - (hsize_t)c * h->chunk_rows, take = h->chunk_rows - in;
        if (take > r1 - r0)
            take = r1 - r0;
        memcpy(dst, f->map + h->chunk_off[c] + in * rb, (size_t)take * rb);
        dst += take * rb;
        r0 += take;
    }
}

/* Run body(arg), copies out of f's mapping for array h, catching SIGBUS there: the file shrank
 * under the mapping (truncated or rewritten since it was opened). libhdf5 is not involved, so
 * this poisons nothing. */
static int map_guarded(const djct_h5_file *f, const h5arr *h, int (*body)(void *), void *arg)
{
    djct_guard g = {.sigs = DJCT_GUARD_BUS, .lo = f->map, .hi = f->map + f->file_size};
    int rc = djct_guard_run(&g, body, arg);
    if (g.sig)
        return djct_error_set(DJCT_EIO, "'%s': %s/values: the file is shorter than when it was opened (%s "
                              "reading it); was it truncated or rewritten? restore it and open it again", f->path,
                              h->obj, djct_guard_signame(g.sig));
    return rc;
}

typedef struct {
    const djct_h5_file *f;
    const h5arr *h;
    hsize_t r0, r1;
    char *dst;
} rows_args;

static int rows_body(void *p)
{
    rows_args *a = p;
    direct_rows(a->f, a->h, a->r0, a->r1, a->dst);
    return 0;
}

/* Touch one byte of every page of the direct arrays' rows, in file order, after asking the kernel
 * to read them ahead (MADV_WILLNEED: a cold file is read in large requests, not row by row).
 * Random rows of the first epoch then find their pages mapped: a first touch costs a page fault
 * (~2 us on this project's VM, under shadow paging), which the prefetch threads otherwise pay
 * while the ranks compute. */
typedef struct {
    const djct_h5_file *f;
    const h5arr *h;
    int64_t limit, touched;
    int full; /* the limit stopped it */
} prefault_args;

static int prefault_body(void *p)
{
    prefault_args *a = p;
    const h5arr *h = a->h;
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096, rb = h->row_values * 4;
    volatile const unsigned char *m = (volatile const unsigned char *)a->f->map;
    for (size_t c = 0; c < h->n_chunks; c++) {
        hsize_t rows = h->chunk_rows;
        if ((hsize_t)c * h->chunk_rows + rows > h->ext[0])
            rows = h->ext[0] - (hsize_t)c * h->chunk_rows;
        size_t lo = (size_t)h->chunk_off[c], hi = lo + (size_t)rows * rb;
        if ((int64_t)(hi - lo) > a->limit - a->touched) {
            a->full = 1;
            return 0;
        }
        size_t alo = lo & ~(page - 1);
        madvise((void *)(a->f->map + alo), hi - alo, MADV_WILLNEED);
        unsigned char sink = 0;
        for (size_t o = lo; o < hi; o = (o & ~(page - 1)) + page)
            sink ^= m[o];
        (void)sink;
        a->touched += (int64_t)(hi - lo);
    }
    return 0;
}

int64_t djct_h5_file_prefault(djct_h5_file *f, int64_t limit)
{
    if (!f || !f->map || limit <= 0)
        return 0;
    prefault_args a = {f, NULL, limit, 0, 0};
    for (size_t k = 0; k < f->n && !a.full; k++) {
        if (!f->a[k].direct)
            continue;
        a.h = &f->a[k];
        int rc = map_guarded(f, a.h, prefault_body, &a); /* names this array if the file shrank */
        if (rc < 0)
            return rc;
    }
    return a.touched;
}

/* Map the file when some array is direct, and check on the first and last row of each direct
 * array that the mapping holds what libhdf5 reads; any doubt turns direct reads off. */
static void setup_direct(djct_h5_file *f)
{
    at("/ (file creation properties)");
    hid_t fcpl = H5Fget_create_plist(f->fid);
    hsize_t ub = 1;
    if (fcpl < 0 || H5Pget_userblock(fcpl, &ub) < 0 || ub != 0) {
        CLOSE(H5Pclose, fcpl);
        goto off;
    }
    CLOSE(H5Pclose, fcpl);
    int any = 0;
    for (size_t k = 0; k < f->n; k++) {
        probe_direct(f, &f->a[k]);
        any |= f->a[k].direct;
    }
    if (!any)
        return;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != f->file_size) {
        if (fd >= 0)
            close(fd);
        goto off;
    }
    void *m = mmap(NULL, (size_t)f->file_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        goto off;
    f->map = m;
    for (size_t k = 0; k < f->n; k++) {
        h5arr *h = &f->a[k];
        if (!h->direct)
            continue;
        size_t rb = h->row_values * 4;
        char *a = f->scratch[0] = malloc(rb), *b = f->scratch[1] = malloc(rb); /* one row each */
        int64_t ev[2] = {0, f->meta.n_events - 1};
        int ok = a && b && f->meta.n_events > 0;
        if (ok) {
            /* rows of the first and last event through libhdf5 vs the mapping */
            hsize_t r[2][2];
            for (int i = 0; i < 2; i++) {
                r[i][0] = h->ragged ? (hsize_t)h->rs[ev[i]] : (hsize_t)ev[i];
                r[i][1] = h->ragged ? (hsize_t)h->rs[ev[i] + 1] : (hsize_t)ev[i] + 1;
                if (r[i][1] > r[i][0] + 1)
                    r[i][1] = r[i][0] + 1;
            }
            for (int i = 0; i < 2 && ok; i++) {
                if (r[i][1] == r[i][0])
                    continue;
                hsize_t start[DJCT_MAX_DIMS] = {0}, count[DJCT_MAX_DIMS];
                memcpy(count, h->ext, sizeof(hsize_t) * (size_t)h->rank);
                start[0] = r[i][0];
                count[0] = 1;
                at("%s/values", h->obj);
                hid_t fs = H5Dget_space(h->ds), ms = -1;
                ok = fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                     (ms = H5Screate_simple(h->rank, count, NULL)) >= 0 &&
                     H5Dread(h->ds, h->dtype == DJCT_DTYPE_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, ms,
                             fs, H5P_DEFAULT, a) >= 0;
                CLOSE(H5Sclose, ms);
                CLOSE(H5Sclose, fs);
                if (ok) {
                    rows_args ra = {f, h, r[i][0], r[i][0] + 1, b};
                    ok = map_guarded(f, h, rows_body, &ra) == 0 && memcmp(a, b, rb) == 0;
                }
            }
        }
        free(a);
        free(b);
        f->scratch[0] = f->scratch[1] = NULL;
        H5Eclear2(H5E_DEFAULT);
        if (!ok) {
            h->direct = 0;
            free(h->chunk_off);
            h->chunk_off = NULL;
        }
    }
    return;
off:
    H5Eclear2(H5E_DEFAULT);
    for (size_t k = 0; k < f->n; k++) {
        f->a[k].direct = 0;
        free(f->a[k].chunk_off);
        f->a[k].chunk_off = NULL;
    }
}

int djct_h5_file_direct(const djct_h5_file *f)
{
    if (!f || !f->map)
        return 0;
    for (size_t k = 0; k < f->n; k++)
        if (!f->a[k].direct && f->a[k].row_values)
            return 0;
    return 1;
}

int djct_h5_file_open(djct_h5_file **out, const char *path) { return djct_h5_file_open_cached(out, path, 0); }

/* All of opening: every libhdf5 call that parses the file's metadata. f is freed by the caller. */
static int open_body(void *p)
{
    djct_h5_file *f = p;
    const char *path = f->path;
    int rc = 0;
    hid_t ag = -1;
    char **strs = NULL;
    size_t ns = 0;
    at("/ (superblock)");
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        rc = djct_error_set(DJCT_EINVAL, "'%s': not an HDF5 file (no HDF5 signature)", path);
        goto fail;
    }
    if ((f->fid = H5Fopen(path, H5F_ACC_RDONLY, djct_h5_fapl())) < 0) {
        rc = h5fail(DJCT_EIO, path, "/", "cannot be opened by libhdf5");
        goto fail;
    }
    if ((rc = read_strings(f, "/", f->fid, "djct_format", &strs, &ns)) != 0) {
        if (rc > 0)
            rc = djct_error_set(DJCT_EINVAL, "'%s': /: attribute 'djct_format' missing; not a djct HDF5 file "
                                "(set it to \"" DJCT_H5_LAYOUT "\", see docs/hdf5_layout.md)", path);
        goto fail;
    }
    if (ns != 1 || strcmp(strs[0], DJCT_H5_LAYOUT) != 0) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': /: attribute 'djct_format' is \"%s\", this reader knows \""
                            DJCT_H5_LAYOUT "\"", path, ns ? strs[0] : "");
        goto fail;
    }
    free_strings(strs, ns); /* before more libhdf5 calls: a crash in them leaks nothing */
    strs = NULL;
    djct_record *lay = &f->meta.layout;
    djct_array **slots[3] = {&lay->features, &lay->truths, &lay->weights};
    size_t *counts[3] = {&lay->n_features, &lay->n_truths, &lay->n_weights};
    size_t nper[3] = {0, 0, 0};
    hid_t grps[3] = {-1, -1, -1};
    for (int c = 0; c < 3; c++) {
        at("/%s", CONTAINERS[c]);
        htri_t ex = H5Lexists(f->fid, CONTAINERS[c], H5P_DEFAULT);
        if (ex <= 0) {
            if (c == 0) {
                rc = h5fail(DJCT_EINVAL, path, "/features", "group missing; a djct file needs at least one feature array");
                goto close_grps;
            }
            continue; /* truths and weights may be absent: empty */
        }
        char obj[32];
        snprintf(obj, sizeof(obj), "/%s", CONTAINERS[c]);
        H5G_info_t gi;
        if ((grps[c] = H5Gopen2(f->fid, CONTAINERS[c], H5P_DEFAULT)) < 0 || H5Gget_info(grps[c], &gi) < 0) {
            rc = h5fail(DJCT_EINVAL, path, obj, "is not a readable group");
            goto close_grps;
        }
        if (gi.nlinks > MAX_ARRAYS_PER_GROUP) {
            rc = djct_error_set(DJCT_EINVAL, "'%s': %s: %llu members, at most %d arrays", path, obj,
                                (unsigned long long)gi.nlinks, MAX_ARRAYS_PER_GROUP);
            goto close_grps;
        }
        nper[c] = (size_t)gi.nlinks;
    }
    if (nper[0] == 0) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': /features: no arrays (members 000, 001, ...); a djct file needs "
                            "at least one feature array", path);
        goto close_grps;
    }
    f->n = nper[0] + nper[1] + nper[2];
    if (!(f->a = calloc(f->n, sizeof(h5arr)))) {
        rc = djct_error_oom();
        goto close_grps;
    }
    for (size_t k = 0; k < f->n; k++)
        f->a[k].ds = -1;
    size_t k = 0;
    for (int c = 0; c < 3; c++) {
        if (!nper[c])
            continue;
        if (!(*slots[c] = calloc(nper[c], sizeof(djct_array)))) {
            rc = djct_error_oom();
            goto close_grps;
        }
        *counts[c] = nper[c];
        for (size_t i = 0; i < nper[c]; i++, k++) {
            char member[24];
            snprintf(member, sizeof(member), "%03zu", i);
            h5arr *h = &f->a[k];
            snprintf(h->obj, sizeof(h->obj), "/%s/%s", CONTAINERS[c], member);
            at("%s", h->obj);
            if (H5Lexists(grps[c], member, H5P_DEFAULT) <= 0) {
                rc = h5fail(DJCT_EINVAL, path, h->obj, "group missing; array groups must be named 000, 001, ... "
                            "without gaps");
                goto close_grps;
            }
            if ((ag = H5Gopen2(grps[c], member, H5P_DEFAULT)) < 0) {
                rc = h5fail(DJCT_EINVAL, path, h->obj, "is not a group");
                goto close_grps;
            }
            rc = open_array(f, ag, h->obj, &(*slots[c])[i], h);
            CLOSE(H5Gclose, ag);
            if (rc < 0)
                goto close_grps;
            int64_t ev = h->ragged ? (*slots[c])[i].shape[0] : (int64_t)h->ext[0];
            if (k == 0)
                f->meta.n_events = ev;
            else if (ev != f->meta.n_events) {
                rc = djct_error_set(DJCT_EINVAL, "'%s': %s: %" PRId64 " events, but %s has %" PRId64
                                    "; every array must have one row per event", path, h->obj, ev, f->a[0].obj,
                                    f->meta.n_events);
                goto close_grps;
            }
        }
    }
close_grps:
    for (int c = 0; c < 3; c++)
        CLOSE(H5Gclose, grps[c]);
    if (rc < 0)
        goto fail;
    /* per-event elements: sum over the distinct row-split vectors (djcdata.md section 11) */
    f->meta.n_records = 1;
    f->meta.format = DJCT_FORMAT_H5;
    if (!(f->meta.path = strdup(path))) {
        rc = djct_error_oom();
        goto fail;
    }
    int64_t ne = f->meta.n_events;
    f->meta.n_elements = ne;
    for (size_t i = 0; i < f->n; i++) {
        if (!f->a[i].ragged)
            continue;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = f->a[j].ragged && !memcmp(f->a[j].rs, f->a[i].rs, (size_t)(ne + 1) * sizeof(int64_t));
        if (dup)
            continue;
        if (!f->meta.event_elements) {
            if (!(f->meta.event_elements = calloc((size_t)ne + 1, sizeof(int64_t)))) {
                rc = djct_error_oom();
                goto fail;
            }
            f->meta.n_elements = 0;
        }
        for (int64_t e = 0; e < ne; e++)
            f->meta.event_elements[e] += f->a[i].rs[e + 1] - f->a[i].rs[e];
        f->meta.n_elements += f->a[i].rs[ne];
    }
    setup_direct(f);
    return 0;
fail:
    free_strings(strs, ns);
    CLOSE(H5Gclose, ag);
    return rc;
}

int djct_h5_file_open_cached(djct_h5_file **out, const char *path, size_t chunk_cache_bytes)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    int rc = poisoned(path);
    if (rc < 0)
        return rc;
    /* (re)install the crash handlers here, not per read: an MPI or torch runtime may have put its
     * own in since; ours then chains to it. If it fails, crashes stay crashes, as before. */
    djct_guard_install();
    h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0)
        return djct_error_set(DJCT_EIO, "'%s': cannot open: %s", path, strerror(errno));
    djct_h5_file *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return djct_error_oom();
    }
    f->fid = -1;
    f->chunk_cache = chunk_cache_bytes;
    f->max_bytes = (uint64_t)st.st_size * 1100u + (1u << 20);
    f->file_size = (uint64_t)st.st_size;
    if ((rc = h5_guarded(path, g_open_cpu + (double)f->file_size / (16 << 20), open_body, f)) < 0) {
        djct_h5_file_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

djct_format djct_h5_format_of(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *fp = path ? fopen(path, "rb") : NULL;
    if (!fp)
        return DJCT_FORMAT_UNKNOWN;
    size_t got = fread(b, 1, 8, fp);
    fclose(fp);
    return got == 8 && !memcmp(b, sig, 8) ? DJCT_FORMAT_H5 : DJCT_FORMAT_UNKNOWN;
}

int djct_h5_read_meta(djct_file_meta *out, const char *path)
{
    DJCT_CHECK_ARG(out);
    djct_h5_file *f = NULL;
    int rc = djct_h5_file_open(&f, path);
    if (rc < 0)
        return rc;
    *out = f->meta;
    memset(&f->meta, 0, sizeof(f->meta));
    djct_h5_file_close(f);
    return 0;
}

/* ---- reading values -------------------------------------------------------------------- */

typedef struct {
    djct_h5_file *f;
    h5arr *h;
    const int64_t *events; /* sorted, or NULL: the range first..first+n */
    int64_t first;
    size_t n;
    void *dst;
} gather_args;

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
        direct_rows(f, h, r0, r1, out);
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
        return h5fail(DJCT_EIO, f->path, h->obj, "dataspace");
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
            rc = h5fail(DJCT_EIO, f->path, h->obj, "hyperslab selection failed");
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
        H5Dread(h->ds, h->dtype == DJCT_DTYPE_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT,
                dst) < 0)
        rc = h5fail(DJCT_EIO, f->path, h->obj, "values cannot be read");
done:
    CLOSE(H5Sclose, ms);
    CLOSE(H5Sclose, fs);
    return rc;
}

/* Rows of events (sorted) or of first..first+n of flat array k into dst, under the crash guard. */
static int gather(djct_h5_file *f, size_t k, const int64_t *events, int64_t first, size_t n, void *dst)
{
    int rc = poisoned(f->path);
    if (rc < 0)
        return rc;
    gather_args a = {f, &f->a[k], events, first, n, dst};
    if (a.h->direct)
        return map_guarded(f, a.h, gather_direct, &a);
    h5_quiet();
    at("%s/values", a.h->obj);
    return h5_guarded(f->path, 0, gather_h5, &a);
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

int djct_h5_read_events(djct_record *out, const char *path, int64_t first_event, int64_t n_events)
{
    DJCT_CHECK_ARG(out);
    djct_h5_file *f = NULL;
    int rc = djct_h5_file_open(&f, path);
    if (rc < 0)
        return rc;
    rc = read_range(f, out, first_event, n_events);
    djct_h5_file_close(f);
    return rc;
}

int djct_h5_read(djct_record *out, const char *path)
{
    DJCT_CHECK_ARG(out);
    djct_h5_file *f = NULL;
    int rc = djct_h5_file_open(&f, path); /* once: the meta and the values from one handle */
    if (rc < 0)
        return rc;
    rc = read_range(f, out, 0, f->meta.n_events);
    djct_h5_file_close(f);
    return rc;
}

/* ---- writing --------------------------------------------------------------------------- */

static int write_str_attr(hid_t loc, const char *aname, const char *const *s, size_t n, int scalar)
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
static hid_t new_group(hid_t loc, const char *name)
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
    if ((g = new_group(cg, member)) < 0)
        return h5fail(DJCT_EIO, path, obj, "cannot create group");
    const char *nm = a->name ? a->name : "";
    if (write_str_attr(g, "name", &nm, 1, 1) < 0 ||
        (a->n_feature_names &&
         write_str_attr(g, "feature_names", (const char *const *)a->feature_names, a->n_feature_names, 0) < 0)) {
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

int djct_h5_write(const char *path, const djct_record *rec, const djct_h5_write_options *opts)
{
    DJCT_CHECK_ARG(path);
    DJCT_CHECK_ARG(rec);
    DJCT_CHECK_VERSION(opts, DJCT_H5_WRITE_OPTIONS_VERSION, "djct_h5_write_options");
    int rc = poisoned(path);
    if (rc < 0)
        return rc;
    size_t chunk = opts && opts->chunk_bytes ? opts->chunk_bytes : (size_t)1 << 20;
    int gzip = opts ? opts->gzip_level : 0;
    if (gzip < 0 || gzip > 9)
        return djct_error_set(DJCT_EINVAL, "djct_h5_write_options.gzip_level %d outside 0..9", gzip);
    const djct_array *lists[3] = {rec->features, rec->truths, rec->weights};
    size_t ns[3] = {rec->n_features, rec->n_truths, rec->n_weights};
    if (ns[0] == 0)
        return djct_error_set(DJCT_EINVAL, "'%s': the record has no feature array; djct files need at least one", path);
    int64_t ev = djct_array_nrows(&lists[0][0]);
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < ns[c]; i++) {
            const djct_array *a = &lists[c][i];
            if (djct_array_validate(a) < 0)
                return djct_error_prefix("'%s': %s %zu", path, CONTAINERS[c], i);
            if (a->dtype != DJCT_DTYPE_FLOAT32 && a->dtype != DJCT_DTYPE_INT32)
                return djct_error_set(DJCT_EINVAL, "'%s': %s %zu: dtype %s; the layout holds float32 or int32", path,
                                      CONTAINERS[c], i, djct_dtype_name(a->dtype));
            if (djct_array_nrows(a) != ev)
                return djct_error_set(DJCT_EINVAL, "'%s': %s %zu: %" PRId64 " events, features 0 has %" PRId64, path,
                                      CONTAINERS[c], i, djct_array_nrows(a), ev);
        }
    h5_quiet();
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), cg = -1;
    if (fid < 0)
        return h5fail(DJCT_EIO, path, "/", "cannot create the file");
    const char *fmt = DJCT_H5_LAYOUT;
    if (write_str_attr(fid, "djct_format", &fmt, 1, 1) < 0) {
        rc = h5fail(DJCT_EIO, path, "/", "cannot write attribute djct_format");
        goto done;
    }
    for (int c = 0; c < 3 && rc == 0; c++) {
        char obj[64];
        snprintf(obj, sizeof(obj), "/%s", CONTAINERS[c]);
        if ((cg = new_group(fid, CONTAINERS[c])) < 0) {
            rc = h5fail(DJCT_EIO, path, obj, "cannot create group");
            break;
        }
        for (size_t i = 0; i < ns[c] && rc == 0; i++) {
            char member[24];
            snprintf(member, sizeof(member), "%03zu", i);
            snprintf(obj, sizeof(obj), "/%s/%s", CONTAINERS[c], member);
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
