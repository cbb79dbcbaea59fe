/* libFuzzer target for the HDF5 layout checks. An input that starts with the HDF5 signature is
 * a file image (libhdf5's parser + djct's checks); an input that starts with 'M' is a mapping file
 * (its text up to the first NUL byte) and a recipe for a file in a layout of its own (datasets
 * /a, /b, /g/c, /g/d, /n, /rs of any dtype, rank and extent), read through that map; any other
 * input is a recipe that builds a djct-like file with libhdf5 from the bytes (groups present or
 * missing, dtypes from bool to uint64, float16 and big-endian, ranks, extents up to "huge and
 * unallocated", row splits or counts of any value and type, attributes of the wrong kind), so
 * the layout checks and the conversions are exercised deeply. Either way the file is read with
 * djct_h5_read_meta, djct_h5_inspect, djct_h5_read and djct_h5_read_events; they must fail
 * cleanly (one line) or succeed with arrays that pass djct_array_validate. libhdf5 itself crashes, loops or overflows
 * a buffer on some file images (the seed libhdf5_* inputs): djct's file driver or crash guard
 * must turn that into an error; after a caught crash the target lifts the poisoning so that one
 * such input does not end the exploration. With DJCT_FUZZ_GUARDED=DIR set, each input whose
 * crash the guard caught is saved there. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djct/djct.h"
#include "data_fixtures.h"
#include "h5_int.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} rd;

static unsigned take(rd *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static void str_attr(hid_t loc, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Awrite(a, t, &v);
        H5Aclose(a);
    }
    H5Sclose(s);
    H5Tclose(t);
}

static void int_attr(hid_t loc, const char *name, int n)
{
    hsize_t d = (hsize_t)n;
    hid_t s = n ? H5Screate_simple(1, &d, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT);
    int v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (a >= 0) {
        H5Awrite(a, H5T_NATIVE_INT, v);
        H5Aclose(a);
    }
    H5Sclose(s);
}

static void names_attr(hid_t loc, int n)
{
    const char *v[4] = {"x", "y", "", "energy"};
    hsize_t d = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate_simple(1, &d, NULL);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t a = H5Acreate2(loc, "feature_names", t, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Awrite(a, t, v);
        H5Aclose(a);
    }
    H5Sclose(s);
    H5Tclose(t);
}

/* the value types of a recipe: djct's own, and what users write (h5py's bool, float16, ...) */
static hid_t value_type(unsigned k)
{
    switch (k % 12) {
    case 0: return H5Tcopy(H5T_NATIVE_FLOAT);
    case 1: return H5Tcopy(H5T_NATIVE_INT);
    case 2: return H5Tcopy(H5T_NATIVE_DOUBLE);
    case 3: return H5Tcopy(H5T_NATIVE_SHORT);
    case 4: return H5Tcopy(H5T_NATIVE_UINT);
    case 5: return H5Tcopy(H5T_NATIVE_INT64);
    case 6: return H5Tcopy(H5T_NATIVE_UINT8);
    case 7: return H5Tcopy(H5T_NATIVE_UINT64);
    case 8: return H5Tcopy(H5T_IEEE_F64BE);
    case 9: return fx_h5_bool_type();
    case 10: {
        hid_t t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 10, 5, 0, 10);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 15);
        return t;
    }
    default: return H5Tcopy(H5T_NATIVE_INT8);
    }
}

static void dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, rd *r)
{
    hid_t s = H5Screate_simple(rank, dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t total = 1, ch[8];
    for (int i = 0; i < rank; i++) {
        total *= dims[i];
        ch[i] = 1;
    }
    int big = total > 4096;
    if (big || (take(r) & 1)) /* huge ones stay chunked and unallocated */
        H5Pset_chunk(pl, rank, ch);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(loc, name, type, s, lcpl, pl, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (d >= 0 && !big && total) {
        int64_t *buf = calloc(total, sizeof(int64_t));
        unsigned scale = take(r);
        for (hsize_t i = 0; i < total; i++) /* mostly increasing; now and then far beyond int32 */
            buf[i] = (int64_t)((uint64_t)((int64_t)(int8_t)take(r) + (int64_t)i) << ((scale & 0xf0) == 0xf0 ? (scale & 15) * 4 : 0));
        if (H5Tget_class(type) == H5T_ENUM) { /* no integer -> enum conversion: the bytes as they are */
            for (hsize_t i = 0; i < total; i++)
                ((uint8_t *)buf)[i] = (uint8_t)(buf[i] & ((scale & 1) ? 0xff : 1));
            H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        } else
            H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        free(buf);
    }
    if (d >= 0)
        H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(s);
}

static void recipe(const char *path, rd *r)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return;
    switch (take(r) % 4) {
    case 0: str_attr(f, "djct_format", "djct-ragged-1"); break;
    case 1: break;
    case 2: str_attr(f, "djct_format", "djct-ragged-2"); break;
    default: int_attr(f, "djct_format", 0);
    }
    static const char *cn[3] = {"features", "truths", "weights"};
    for (int c = 0; c < 3; c++) {
        unsigned m = take(r);
        if (c > 0 && (m & 1))
            continue;
        hid_t g = H5Gcreate2(f, cn[c], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        int na = (int)(m >> 1) % 4;
        for (int i = 0; i < na; i++) {
            unsigned k = take(r);
            char nm[16];
            snprintf(nm, sizeof(nm), "%03d", (k & 7) == 7 ? i + 1 : i);
            hid_t a = H5Gcreate2(g, nm, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (a < 0)
                continue;
            unsigned at = take(r);
            if (at & 1)
                str_attr(a, "name", "arr");
            else if (at & 2)
                int_attr(a, "name", 2);
            if (at & 4)
                names_attr(a, (int)(at >> 3) % 5);
            else if (at & 8)
                int_attr(a, "feature_names", 3);
            unsigned v = take(r), x = take(r);
            int rank = 1 + (int)(v % 3);
            hsize_t dims[3];
            for (int d = 0; d < rank; d++) {
                unsigned e = take(r);
                dims[d] = (e & 0xf0) == 0xf0 ? (hsize_t)1 << (20 + (e & 15)) : e % 7;
            }
            if (!(v & 0x80)) {
                hid_t vt = value_type(x);
                dataset(a, "values", vt, rank, dims, r);
                H5Tclose(vt);
            }
            if (v & 0x20) {
                unsigned e = take(r);
                hsize_t n = (e & 0xf0) == 0xf0 ? (hsize_t)1 << (20 + (e & 15)) : e % 9;
                static const hid_t *rst[4] = {&H5T_NATIVE_INT64_g, &H5T_NATIVE_INT_g, &H5T_NATIVE_FLOAT_g,
                                              &H5T_NATIVE_UINT64_g};
                /* row splits, counts, or both (refused) */
                if (!(x & 0x40) || (x & 0x80))
                    dataset(a, "row_splits", *rst[(v >> 6) % 4], 1, &n, r);
                if (x & 0x40)
                    dataset(a, "counts", *rst[(v >> 6) % 4], 1, &n, r);
            }
            H5Gclose(a);
        }
        H5Gclose(g);
    }
    H5Fclose(f);
}

/* a file in a layout of its own: datasets at a few fixed paths, for a fuzzed map to name */
static void user_recipe(const char *path, rd *r)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return;
    static const char *const names[6] = {"/a", "/b", "/g/c", "/g/d", "/n", "/rs"};
    for (int i = 0; i < 6; i++) {
        unsigned v = take(r);
        if (v & 0x80)
            continue; /* absent */
        int rank = 1 + (int)(v % 3);
        hsize_t dims[3];
        for (int d = 0; d < rank; d++) {
            unsigned e = take(r);
            dims[d] = (e & 0xf0) == 0xf0 ? (hsize_t)1 << (20 + (e & 15)) : e % 7;
        }
        hid_t t = value_type(v >> 2);
        dataset(f, names[i], t, rank, dims, r);
        H5Tclose(t);
    }
    H5Fclose(f);
}

/* libhdf5 1.10 leaks internal buffers when it rejects some corrupt files; those are not djct's
 * to fix. Suppress leaks allocated inside libhdf5; djct's own allocations stay checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }

/* keep an input whose libhdf5 crash was caught, named by an FNV-1a hash of its bytes */
static void save_guarded(const uint8_t *data, size_t size)
{
    const char *dir = getenv("DJCT_FUZZ_GUARDED");
    if (!dir || !*dir)
        return;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    char name[512];
    snprintf(name, sizeof(name), "%s/guarded-%016llx", dir, (unsigned long long)h);
    FILE *f = fopen(name, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
    }
}

static void check_record(djct_record *rec)
{
    for (size_t i = 0; i < rec->n_features; i++)
        if (djct_array_validate(&rec->features[i]) != 0)
            abort();
    for (size_t i = 0; i < rec->n_truths; i++)
        if (djct_array_validate(&rec->truths[i]) != 0)
            abort();
    for (size_t i = 0; i < rec->n_weights; i++)
        if (djct_array_validate(&rec->weights[i]) != 0)
            abort();
    djct_record_clear(rec);
}

/* libhdf5 allocates whatever a corrupt object header declares (seen: 2.6 GB for a 24 KB file)
 * and then fails reading it. A single allocation over 1 GiB therefore fails here, as on a node
 * with strict overcommit, instead of being reported: libhdf5 then returns an error. djct's own
 * allocations are bounded by the file size, so for these small inputs a djct out-of-memory error
 * is a finding (checked below). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=1024"; }
/* libhdf5 1.10's H5HG_read copies a global-heap object with the size the (corrupt) heap declares:
 * a read past the collection inside libhdf5 that djct cannot prevent (the raw attribute bytes that
 * name the object are not exposed) and whose worst outcome, a fault, the crash guard turns into an
 * error. Reports of memcpy/memmove called from libhdf5 itself are therefore suppressed; every
 * other over-read, and anything in djct's own code, still fails the target. */
const char *__asan_default_suppressions(void);
const char *__asan_default_suppressions(void) { return "interceptor_via_lib:libhdf5_serial.so\n"; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64], map_path[64];
    if (!path[0]) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        snprintf(path, sizeof(path), "/dev/shm/djct_fuzz_h5_%d.h5", (int)getpid());
        snprintf(map_path, sizeof(map_path), "/dev/shm/djct_fuzz_h5_%d.ini", (int)getpid());
        djct_h5_set_open_cpu_limit(0.2); /* small files open in milliseconds: a loop stops early */
    }
    djct_h5_map *map = NULL;
    djct_h5_read_options ro = DJCT_H5_READ_OPTIONS_INIT;
    if (size >= 1 && data[0] == 'M') { /* a map, then a recipe for the file it names datasets of */
        const uint8_t *end = memchr(data + 1, 0, size - 1);
        size_t n = end ? (size_t)(end - data - 1) : size - 1;
        FILE *f = fopen(map_path, "wb");
        if (!f)
            return 0;
        fwrite(data + 1, 1, n, f);
        fclose(f);
        rd r = {data + 1 + n + (end != NULL), size - 1 - n - (end != NULL)};
        user_recipe(path, &r);
        int rc = djct_h5_map_load(&map, map_path);
        unlink(map_path);
        const char *err = djct_last_error();
        if (rc != 0 && (strlen(err) > 1023 || strchr(err, '\n') || map))
            abort();
        if (rc != 0) {
            unlink(path);
            return 0;
        }
        ro.map = map;
    } else if (size >= 8 && !memcmp(data, "\x89HDF\r\n\x1a\n", 8)) {
        FILE *f = fopen(path, "wb");
        if (!f)
            return 0;
        fwrite(data, 1, size, f);
        fclose(f);
    } else {
        rd r = {data, size};
        recipe(path, &r);
    }
    djct_file_meta m;
    djct_record rec;
    djct_h5_info info;
    if (djct_h5_read_meta_ext(&m, path, &ro) == 0) {
        if (m.n_events < 0 || m.n_elements < 0 || m.layout.n_features == 0)
            abort();
        int64_t n = m.n_events;
        size_t na = m.layout.n_features + m.layout.n_truths + m.layout.n_weights;
        djct_file_meta_clear(&m);
        if (djct_h5_inspect(&info, path, &ro) == 0) {
            if (info.n_sources != na || !info.sources[0].values || !info.sources[0].stored)
                abort();
            djct_h5_info_clear(&info);
        }
        if (djct_h5_read_ext(&rec, path, &ro) == 0)
            check_record(&rec);
        if (n > 1 && djct_h5_read_events_ext(&rec, path, 1, n - 1, &ro) == 0)
            check_record(&rec);
    }
    djct_h5_map_free(map);
    const char *err = djct_last_error();
    if (strlen(err) > 1023 || strchr(err, '\n') || djct_last_error_code() == DJCT_ENOMEM)
        abort();
    if (djct_h5_poisoned()) {
        /* libhdf5 crashed or looped and the guard caught it: the error must say so */
        if (!strstr(err, "libhdf5 crashed") && !strstr(err, "libhdf5 still ran after") &&
            !strstr(err, "HDF5 is disabled in this process"))
            abort();
        save_guarded(data, size);
        djct_h5_unpoison();
    }
    unlink(path);
    return 0;
}
