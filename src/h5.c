/* The djct-ragged-1 HDF5 layout (docs/hdf5_layout.md): the reader, of djct's layout or of the
 * datasets a mapping file names (h5_map.c), ragged by row splits or by counts (turned into row
 * splits here, once). Files are read only after validating every group, dataset, dtype, extent
 * and row split, so that a hostile file fails with one line naming file, object and field
 * instead of crashing or allocating wildly. libhdf5 itself can crash on a corrupt file before
 * djct sees anything, so files are read through djct's checking driver (h5fd_int.h) and every
 * libhdf5 call that parses a file runs under the crash guard (guard_int.h); after a crash no
 * more libhdf5 calls are made in the process. HDF5's automatic error printing is switched off
 * per call (it is per thread in threadsafe builds) and the innermost HDF5 message is appended to
 * djct's error. The parts:
 * h5_map.c (mapping files), h5_convert.c (value dtypes), h5_direct.c (rows copied straight from a
 * mapping of the file), h5_read.c (values, the public readers), h5_write.c, h5_writer.c. */
#include "djct/h5.h"
#include "djct/error.h"
#include "djct_int.h"
#include "h5_int.h"
#include "guard_int.h"
#include "h5fd_int.h"
#include "h5_file_int.h"

#include <hdf5.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const h5_containers[3] = {"features", "truths", "weights"};

/* ---- errors ----------------------------------------------------------------------------- */

static herr_t walk_first(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc)
        snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

/* one line: '<path>': <object>: <what> (hdf5: <innermost message>) */
int h5fail(int code, const char *path, const char *obj, const char *what)
{
    char detail[200] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, detail);
    H5Eclear2(H5E_DEFAULT);
    if (detail[0])
        return djct_error_set(code, "'%s': %s: %s (hdf5: %s)", path, obj, what, detail);
    return djct_error_set(code, "'%s': %s: %s", path, obj, what);
}

void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

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

void h5_at(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_at, sizeof(tl_at), fmt, ap);
    va_end(ap);
}

int djct_h5_poisoned(void) { return atomic_load(&g_poison) != 0; }

void djct_h5_unpoison(void) { atomic_store(&g_poison, 0); }

/* 0, or the error for any HDF5 work on `path` once libhdf5 has crashed in this process */
int h5_poisoned(const char *path)
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
int h5_guarded(const char *path, double cpu_seconds, int (*body)(void *), void *arg)
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

static int close_body(void *p)
{
    djct_h5_file *f = p;
    for (size_t i = 0; i < f->n; i++) {
        CLOSE(H5Dclose, f->a[i].ds);
        h5_conv_clear(&f->a[i].conv);
    }
    CLOSE(H5Fclose, f->fid);
    return 0;
}

void djct_h5_file_close(djct_h5_file *f)
{
    if (!f)
        return;
    if (!djct_h5_poisoned()) { /* else the libhdf5 handles are abandoned: no more libhdf5 calls */
        h5_at("/ (closing the file)");
        h5_guarded(f->path, 0, close_body, f);
    }
    for (size_t i = 0; i < f->n; i++) {
        free(f->a[i].rs);
        free(f->a[i].chunk_off);
        free(f->a[i].vname);
        free(f->a[i].sname);
    }
    djct_h5_map_free(f->own_h5map);
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
    h5_at("%s", where);
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
const char *h5_where(const djct_h5_file *f, const h5arr *h, const char *dataset, char *buf, size_t n)
{
    if (f->h5map)
        snprintf(buf, n, "%s (%s in map '%s')", dataset, h->obj, f->h5map->path);
    else
        snprintf(buf, n, "%s", dataset);
    return buf;
}

/* a dataset the array needs is not in the file (`values`: its values, else its ragged index):
 * what to fix */
static int missing(const djct_h5_file *f, const char *where, int values)
{
    if (f->h5map)
        return h5fail(DJCT_EINVAL, f->path, where, values ? "no such dataset; fix the map's 'values' line or "
                      "the file (h5ls -r lists the file's datasets)" : "no such dataset; fix the map's row_splits, "
                      "offsets or counts line or the file (h5ls -r lists the file's datasets)");
    return h5fail(DJCT_EINVAL, f->path, where, "dataset missing; every array group needs a 'values' dataset");
}

/* the ragged index of h: row splits (or offsets: the same) or counts, turned into row splits */
static int open_splits(djct_h5_file *f, hid_t loc, const char *splits, int kind, djct_array *lay, h5arr *h)
{
    const char *path = f->path;
    char where[700];
    int rc = 0;
    hid_t t = -1, sp = -1, rsd = -1;
    h5_where(f, h, h->sname, where, sizeof(where));
    h5_at("%s", h->sname);
    htri_t ex = H5Lexists(loc, splits, H5P_DEFAULT);
    if (ex <= 0)
        return missing(f, where, 0);
    if ((rsd = H5Dopen2(loc, splits, H5P_DEFAULT)) < 0 || (t = H5Dget_type(rsd)) < 0 || (sp = H5Dget_space(rsd)) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "cannot be opened as a dataset");
        goto done;
    }
    if (H5Tget_class(t) != H5T_INTEGER) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: dtype must be an integer (int64), got class %d", path, where,
                            (int)H5Tget_class(t));
        goto done;
    }
    int counts = kind == H5S_COUNTS;
    hsize_t n = 0;
    if (H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &n, NULL) < 0 || (!counts && n < 1)) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: must be 1-D with %s entries", path, where,
                            counts ? "one per event" : "events+1 >= 1");
        goto done;
    }
    if (n > f->max_bytes / 8) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: %llu entries is more than the file can hold", path, where,
                            (unsigned long long)n);
        goto done;
    }
    if ((rc = check_chunk_sizes(f, rsd, 1, &n, H5Tget_size(t), where)) < 0)
        goto done;
    hsize_t nrs = counts ? n + 1 : n; /* entries of the row splits */
    if (!(h->rs = malloc(nrs * sizeof(int64_t)))) {
        rc = djct_error_oom();
        goto done;
    }
    /* integers wider than int64 or beyond it are clipped by libhdf5: caught below as a count that
     * overflows or a last entry that is not the rows */
    h->rs[0] = 0;
    if (n && H5Dread(rsd, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, h->rs + counts) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "cannot be read");
        goto done;
    }
    if (counts) {
        for (hsize_t i = 0; i < n; i++) {
            int64_t c = h->rs[i + 1];
            if (c < 0) {
                rc = djct_error_set(DJCT_EINVAL, "'%s': %s: entry %llu (event %llu) is %" PRId64 "; counts must be "
                                    ">= 0", path, where, (unsigned long long)i, (unsigned long long)i, c);
                goto done;
            }
            if (c > INT64_MAX - h->rs[i]) {
                rc = djct_error_set(DJCT_EINVAL, "'%s': %s: the counts' sum overflows int64 at entry %llu (%" PRId64
                                    " after %" PRId64 "); the file is corrupt", path, where, (unsigned long long)i, c,
                                    h->rs[i]);
                goto done;
            }
            h->rs[i + 1] = h->rs[i] + c;
        }
        if ((uint64_t)h->rs[n] != (uint64_t)h->ext[0]) {
            rc = djct_error_set(DJCT_EINVAL, "'%s': %s: the counts sum to %" PRId64 ", but %s has %llu rows; every "
                                "value row must belong to one event", path, where, h->rs[n], h->vname,
                                (unsigned long long)h->ext[0]);
            goto done;
        }
    } else {
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
            rc = djct_error_set(DJCT_EINVAL, "'%s': %s: last entry %" PRId64 " != %llu rows of %s", path, where,
                                h->rs[n - 1], (unsigned long long)h->ext[0], h->vname);
            goto done;
        }
    }
    lay->shape[0] = (int64_t)nrs - 1;
    lay->shape[1] = -(int64_t)h->ext[0];
    lay->n_row_splits = (size_t)nrs; /* as the djcdata meta reader: marks the layout array ragged */
    for (int i = 1; i < h->rank; i++)
        lay->shape[i + 1] = (int64_t)h->ext[i];
done:
    CLOSE(H5Tclose, t);
    CLOSE(H5Sclose, sp);
    CLOSE(H5Dclose, rsd);
    return rc;
}

int h5_open_data(djct_h5_file *f, hid_t loc, const char *values, const char *splits, int kind, int want,
                 djct_array *lay, h5arr *h)
{
    const char *path = f->path;
    char where[700], why[300];
    int rc = 0;
    hid_t t = -1, sp = -1;
    h5_where(f, h, h->vname, where, sizeof(where));
    h5_at("%s", h->vname);
    htri_t ex = H5Lexists(loc, values, H5P_DEFAULT);
    if (ex <= 0)
        return missing(f, where, 1);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0 && f->chunk_cache) /* random event access: keep decoded chunks instead of re-reading them */
        H5Pset_chunk_cache(dapl, 100003, f->chunk_cache, 0.75);
    h->ds = H5Dopen2(loc, values, dapl >= 0 ? dapl : H5P_DEFAULT);
    CLOSE(H5Pclose, dapl);
    if (h->ds < 0)
        return h5fail(DJCT_EINVAL, path, where, "cannot be opened as a dataset");
    if ((t = H5Dget_type(h->ds)) < 0 || (sp = H5Dget_space(h->ds)) < 0) {
        rc = h5fail(DJCT_EINVAL, path, where, "type or dataspace unreadable");
        goto done;
    }
    if (h5_conv_classify(&h->conv, t, want, why, sizeof(why)) < 0) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: %s", path, where, why);
        goto done;
    }
    size_t tsz = H5Tget_size(t);
    lay->dtype = h->dtype = h->conv.target;
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank < 1 || rank > DJCT_MAX_DIMS - 1) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': %s: rank %d outside 1..%d", path, where, rank, DJCT_MAX_DIMS - 1);
        goto done;
    }
    h->rank = rank;
    H5Sget_simple_extent_dims(sp, h->ext, NULL);
    /* the declared size must be plausible for the file: deflate cannot exceed ~1032:1; counted in
     * at least 4 bytes a value, what a converted value takes in memory */
    uint64_t total = tsz > 4 ? tsz : 4;
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
    h->ragged = splits != NULL;
    h->splits_kind = splits ? kind : 0;
    lay->ndim = rank + h->ragged;
    if (!h->ragged) {
        for (int i = 0; i < rank; i++)
            lay->shape[i] = (int64_t)h->ext[i];
        goto done;
    }
    rc = open_splits(f, loc, splits, kind, lay, h);
done:
    CLOSE(H5Tclose, t);
    CLOSE(H5Sclose, sp);
    return rc;
}

/* One array group of djct's layout: its attributes, `values` and `row_splits` or `counts`. */
static int open_array(djct_h5_file *f, hid_t grp, const char *obj, djct_array *lay, h5arr *h)
{
    const char *path = f->path;
    char where[128];
    int rc = 0;
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

    /* row_splits or counts: optional, present = ragged */
    htri_t ex[2];
    static const char *const idx[2] = {"row_splits", "counts"};
    for (int i = 0; i < 2; i++) {
        snprintf(where, sizeof(where), "%s/%s", obj, idx[i]);
        h5_at("%s", where);
        if ((ex[i] = H5Lexists(grp, idx[i], H5P_DEFAULT)) < 0)
            return h5fail(DJCT_EINVAL, path, where, "cannot be checked");
    }
    if (ex[0] > 0 && ex[1] > 0)
        return djct_error_set(DJCT_EINVAL, "'%s': %s: has both row_splits and counts; keep one (counts: one entry "
                              "per event; row_splits: events + 1, starting at 0)", path, obj);
    int kind = ex[0] > 0 ? H5S_ROW_SPLITS : ex[1] > 0 ? H5S_COUNTS : 0;
    if (asprintf(&h->vname, "%s/values", obj) < 0) {
        h->vname = NULL;
        return djct_error_oom();
    }
    if (kind && asprintf(&h->sname, "%s/%s", obj, idx[kind != H5S_ROW_SPLITS]) < 0) {
        h->sname = NULL;
        return djct_error_oom();
    }
    return h5_open_data(f, grp, "values", kind ? idx[kind != H5S_ROW_SPLITS] : NULL, kind, -1, lay, h);
}

int djct_h5_file_open(djct_h5_file **out, const char *path) { return djct_h5_file_open_map(out, path, 0, NULL); }

int djct_h5_file_open_cached(djct_h5_file **out, const char *path, size_t chunk_cache_bytes)
{
    return djct_h5_file_open_map(out, path, chunk_cache_bytes, NULL);
}

/* djct's own layout: the djct_format attribute, then /features, /truths, /weights */
static int open_layout(djct_h5_file *f)
{
    const char *path = f->path;
    int rc = 0;
    hid_t ag = -1;
    char **strs = NULL;
    size_t ns = 0;
    if ((rc = read_strings(f, "/", f->fid, "djct_format", &strs, &ns)) != 0) {
        if (rc > 0)
            rc = djct_error_set(DJCT_EINVAL, "'%s': /: attribute 'djct_format' missing; not a djct HDF5 file (set it "
                                "to \"" DJCT_H5_LAYOUT "\", docs/hdf5_layout.md, or name its datasets in a mapping "
                                "file, docs/data.md)", path);
        return rc;
    }
    if (ns != 1 || strcmp(strs[0], DJCT_H5_LAYOUT) != 0) {
        rc = djct_error_set(DJCT_EINVAL, "'%s': /: attribute 'djct_format' is \"%s\", this reader knows \""
                            DJCT_H5_LAYOUT "\"", path, ns ? strs[0] : "");
        free_strings(strs, ns);
        return rc;
    }
    free_strings(strs, ns); /* before more libhdf5 calls: a crash in them leaks nothing */
    djct_record *lay = &f->meta.layout;
    djct_array **slots[3] = {&lay->features, &lay->truths, &lay->weights};
    size_t *counts[3] = {&lay->n_features, &lay->n_truths, &lay->n_weights};
    size_t nper[3] = {0, 0, 0};
    hid_t grps[3] = {-1, -1, -1};
    for (int c = 0; c < 3; c++) {
        h5_at("/%s", h5_containers[c]);
        htri_t ex = H5Lexists(f->fid, h5_containers[c], H5P_DEFAULT);
        if (ex <= 0) {
            if (c == 0) {
                rc = h5fail(DJCT_EINVAL, path, "/features", "group missing; a djct file needs at least one feature array");
                goto close_grps;
            }
            continue; /* truths and weights may be absent: empty */
        }
        char obj[32];
        snprintf(obj, sizeof(obj), "/%s", h5_containers[c]);
        H5G_info_t gi;
        if ((grps[c] = H5Gopen2(f->fid, h5_containers[c], H5P_DEFAULT)) < 0 || H5Gget_info(grps[c], &gi) < 0) {
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
        f->a[k].ds = f->a[k].conv.mem = -1;
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
            snprintf(h->obj, sizeof(h->obj), "/%s/%s", h5_containers[c], member);
            h5_at("%s", h->obj);
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
        }
    }
close_grps:
    for (int c = 0; c < 3; c++)
        CLOSE(H5Gclose, grps[c]);
    CLOSE(H5Gclose, ag);
    return rc;
}

static djct_array *flat_layout(djct_file_meta *m, size_t k)
{
    djct_record *r = &m->layout;
    if (k < r->n_features)
        return &r->features[k];
    k -= r->n_features;
    return k < r->n_truths ? &r->truths[k] : &r->weights[k - r->n_truths];
}

/* All of opening: every libhdf5 call that parses the file's metadata. f is freed by the caller. */
static int open_body(void *p)
{
    djct_h5_file *f = p;
    const char *path = f->path;
    int rc = 0;
    h5_at("/ (superblock)");
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return djct_error_set(DJCT_EINVAL, "'%s': not an HDF5 file (no HDF5 signature)", path);
    }
    if ((f->fid = H5Fopen(path, H5F_ACC_RDONLY, djct_h5_fapl())) < 0)
        return h5fail(DJCT_EIO, path, "/", "cannot be opened by libhdf5");
    if ((rc = f->h5map ? h5_map_open_arrays(f) : open_layout(f)) < 0)
        return rc;
    /* one row per event in every array */
    for (size_t k = 0; k < f->n; k++) {
        const h5arr *h = &f->a[k];
        int64_t ev = flat_layout(&f->meta, k)->shape[0];
        if (k == 0) {
            f->meta.n_events = ev;
        } else if (ev != f->meta.n_events) {
            const h5arr *h0 = &f->a[0];
            if (!f->h5map)
                return djct_error_set(DJCT_EINVAL, "'%s': %s: %" PRId64 " events, but %s has %" PRId64 "; every array "
                                      "must have one row per event", path, h->obj, ev, h0->obj, f->meta.n_events);
            return djct_error_set(DJCT_EINVAL, "'%s': %s %s: %" PRId64 " events, but %s %s has %" PRId64 " (map '%s'); "
                                  "every array must have one row per event", path, h->obj,
                                  h->ragged ? h->sname : h->vname, ev, h0->obj, h0->ragged ? h0->sname : h0->vname,
                                  f->meta.n_events, f->h5map->path);
        }
    }
    /* per-event elements: sum over the distinct row-split vectors (djcdata.md section 11) */
    f->meta.n_records = 1;
    f->meta.format = DJCT_FORMAT_H5;
    if (!(f->meta.path = strdup(path)))
        return djct_error_oom();
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
            if (!(f->meta.event_elements = calloc((size_t)ne + 1, sizeof(int64_t))))
                return djct_error_oom();
            f->meta.n_elements = 0;
        }
        for (int64_t e = 0; e < ne; e++)
            f->meta.event_elements[e] += f->a[i].rs[e + 1] - f->a[i].rs[e];
        f->meta.n_elements += f->a[i].rs[ne];
    }
    h5_setup_direct(f);
    return 0;
}

int djct_h5_file_open_map(djct_h5_file **out, const char *path, size_t chunk_cache_bytes, const djct_h5_map *map)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    int rc = h5_poisoned(path);
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
    f->h5map = map;
    if (!map && (rc = h5_map_beside(&f->own_h5map, path)) > 0)
        f->h5map = f->own_h5map;
    if (rc < 0 || (rc = h5_guarded(path, g_open_cpu + (double)f->file_size / (16 << 20), open_body, f)) < 0) {
        djct_h5_file_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

djct_format djct_h5_format_of(const char *path)
{
    djct_format f = DJCT_FORMAT_UNKNOWN;
    return path && djct_format_detect(&f, path) == 0 && f == DJCT_FORMAT_H5 ? f : DJCT_FORMAT_UNKNOWN;
}
