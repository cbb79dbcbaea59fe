/* Direct reads of the HDF5 layout: arrays whose raw bytes are native, unfiltered and at known
 * file offsets are copied from a read-only mapping of the file, without libhdf5 (whose hyperslab
 * reads cost far more per event run), and can be prefaulted in file order. Any doubt (filters,
 * userblock, unallocated chunks, a mismatch with what libhdf5 reads) leaves the array to libhdf5. */
#include "djct/h5.h"
#include "djct/error.h"
#include "djct_int.h"
#include "h5_int.h"
#include "h5_file_int.h"
#include "guard_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* H5Dget_chunk_info_by_coord walks the whole chunk index per call in libhdf5 1.10, so finding
 * the offsets is quadratic in the chunks, per array and per open: past a few thousand chunks the
 * open costs more than direct reads save. Arrays with more chunks are read through libhdf5. */
#define MAX_DIRECT_CHUNKS ((size_t)8192)

/* Decide whether array h can be read straight from the file: little-endian native dtype, no
 * filters, contiguous storage or chunks spanning whole rows, every chunk allocated, unfiltered
 * and inside the file. Anything else (compression, userblock, missing chunks) stays with libhdf5. */
static void probe_direct(djct_h5_file *f, h5arr *h)
{
    hid_t t = -1, dcpl = -1;
    h->direct = 0;
    size_t row_bytes = h->row_values * 4;
    if (h->conv.mode != H5C_NATIVE)
        return; /* converted at read: through libhdf5 */
    h5_at("%s (storage layout and chunk index)", h->vname);
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
void h5_direct_rows(const djct_h5_file *f, const h5arr *h, hsize_t r0, hsize_t r1, char *dst)
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
int h5_map_guarded(const djct_h5_file *f, const h5arr *h, int (*body)(void *), void *arg)
{
    djct_guard g = {.sigs = DJCT_GUARD_BUS, .lo = f->map, .hi = f->map + f->file_size};
    int rc = djct_guard_run(&g, body, arg);
    if (g.sig)
        return djct_error_set(DJCT_EIO, "'%s': %s: the file is shorter than when it was opened (%s "
                              "reading it); was it truncated or rewritten? restore it and open it again", f->path,
                              h->vname, djct_guard_signame(g.sig));
    return rc;
}

typedef struct {
    const djct_h5_file *f;
    const h5arr *h;
    hsize_t r0, r1;
    char *dst;
} rows_args;

static int h5_rows_body(void *p)
{
    rows_args *a = p;
    h5_direct_rows(a->f, a->h, a->r0, a->r1, a->dst);
    return 0;
}

/* Touch one byte of every page of the direct arrays' rows, in file order, after asking the kernel
 * to read them ahead (MADV_WILLNEED: a cold file is read in large requests, not row by row).
 * Random rows of the first epoch then find their pages mapped: a first touch costs a page fault
 * (dear in a VM under shadow paging), which the prefetch threads otherwise pay while the ranks
 * compute. */
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
        int rc = h5_map_guarded(f, a.h, prefault_body, &a); /* names this array if the file shrank */
        if (rc < 0)
            return rc;
    }
    return a.touched;
}

/* Map the file when some array is direct, and check on the first and last row of each direct
 * array that the mapping holds what libhdf5 reads; any doubt turns direct reads off. */
void h5_setup_direct(djct_h5_file *f)
{
    h5_at("/ (file creation properties)");
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
                h5_at("%s", h->vname);
                hid_t fs = H5Dget_space(h->ds), ms = -1;
                ok = fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                     (ms = H5Screate_simple(h->rank, count, NULL)) >= 0 &&
                     H5Dread(h->ds, h->dtype == DJCT_DTYPE_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, ms,
                             fs, H5P_DEFAULT, a) >= 0;
                CLOSE(H5Sclose, ms);
                CLOSE(H5Sclose, fs);
                if (ok) {
                    rows_args ra = {f, h, r[i][0], r[i][0] + 1, b};
                    ok = h5_map_guarded(f, h, h5_rows_body, &ra) == 0 && memcmp(a, b, rb) == 0;
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

