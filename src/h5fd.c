/* A read-only libhdf5 file driver that reads like the default one (sec2: pread, zeros past the
 * end of the file) and checks every global heap collection before libhdf5 parses it. libhdf5
 * 1.10 trusts the object sizes of a collection: one that runs past the collection's end makes
 * H5HG_read copy past its buffers (heap corruption, which no crash guard can undo), and a
 * zero-sized free-space record makes its loader loop forever. Such a collection is refused here
 * with a read error naming its file offset, so the string attribute that needed it fails cleanly.
 * libhdf5 reads global heaps as raw data, so the check applies while djct reads a string
 * attribute (djct_h5_fd_check_heaps), when no dataset values are read.
 * Built for the libhdf5 1.10 driver interface; elsewhere djct_h5_fapl() is the default driver. */
#include "h5fd_int.h"

#include <hdf5.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALIGN8(x) (((x) + 7) & ~(uint64_t)7)

static _Thread_local int tl_check;

void djct_h5_fd_check_heaps(int on) { tl_check = on; }

static uint64_t get_len(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | (i < 8 ? p[i] : 0);
    return v;
}

int djct_h5_check_gheap(const unsigned char *b, size_t n, unsigned len_size, char *why, size_t cap)
{
    if (len_size < 2 || len_size > 8 || n < 8 + len_size)
        return 0; /* not decodable here; libhdf5 refuses it itself */
    uint64_t size = get_len(b + 8, len_size), hdr = ALIGN8(8 + len_size), objhdr = ALIGN8(8 + len_size);
    if (size < hdr || size > n) {
        snprintf(why, cap, "collection size %" PRIu64 " outside %" PRIu64 "..%zu", size, hdr, n);
        return -1;
    }
    /* the walk of libhdf5's loader (H5HG__cache_heap_deserialize), with the bounds it lacks */
    uint64_t p = hdr;
    while (p < size) {
        if (size - p < objhdr)
            break; /* a remainder too small for a record is free space */
        unsigned idx = (unsigned)b[p] | (unsigned)b[p + 1] << 8;
        uint64_t osize = get_len(b + p + 8, len_size);
        uint64_t need = idx ? (osize > size ? UINT64_MAX : objhdr + ALIGN8(osize)) : osize;
        if (need == 0 || need > size - p) {
            snprintf(why, cap, "object %u of %" PRIu64 " bytes at collection byte %" PRIu64 " %s", idx, osize, p,
                     need == 0 ? "has no size (the loader would loop)" : "runs past the collection's end");
            return -1;
        }
        p += need;
    }
    return 0;
}

#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10

typedef struct {
    H5FD_t   pub;        /* first: libhdf5 owns it */
    int      fd;
    haddr_t  eoa, eof;
    dev_t    dev;
    ino_t    ino;
    unsigned len_size;   /* "size of lengths" from the superblock, 0 when unknown */
} dfile;

static herr_t fail(const char *func, const char *fmt, const char *detail)
{
    H5Epush2(H5E_DEFAULT, __FILE__, func, __LINE__, H5E_ERR_CLS, H5E_VFL, H5E_READERROR, fmt, detail);
    return -1;
}

/* the superblock's "size of lengths", which the global heap's size fields use */
static unsigned lengths_size(int fd, uint64_t eof)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[16];
    for (uint64_t at = 0; at + sizeof(b) <= eof; at = at ? at * 2 : 512)
        if (pread(fd, b, sizeof(b), (off_t)at) == (ssize_t)sizeof(b) && !memcmp(b, sig, 8))
            return b[8] < 2 ? b[14] : b[10];
    return 0;
}

static H5FD_t *d_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    if (flags != H5F_ACC_RDONLY) {
        fail("d_open", "%s", "djct's checking driver only reads");
        return NULL;
    }
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot open: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        fail("d_open", "%s", msg);
        return NULL;
    }
    dfile *f = calloc(1, sizeof(*f));
    if (!f) {
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->eof = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->len_size = lengths_size(fd, (uint64_t)st.st_size);
    return &f->pub;
}

static herr_t d_close(H5FD_t *file)
{
    dfile *f = (dfile *)file;
    close(f->fd);
    free(f);
    return 0;
}

static int d_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const dfile *x = (const dfile *)a, *y = (const dfile *)b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static herr_t d_query(const H5FD_t *file, unsigned long *flags)
{
    /* as the default driver, less what only matters for writing */
    *flags = H5FD_FEAT_ACCUMULATE_METADATA_READ | H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_POSIX_COMPAT_HANDLE |
             H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
    return 0;
}

static haddr_t d_get_eoa(const H5FD_t *file, H5FD_mem_t type) { return ((const dfile *)file)->eoa; }

static herr_t d_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    ((dfile *)file)->eoa = addr;
    return 0;
}

static haddr_t d_get_eof(const H5FD_t *file, H5FD_mem_t type) { return ((const dfile *)file)->eof; }

static herr_t d_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    *handle = &((dfile *)file)->fd;
    return 0;
}

static herr_t d_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, void *buf)
{
    dfile *f = (dfile *)file;
    unsigned char *p = buf;
    if (addr == HADDR_UNDEF || addr > (haddr_t)INT64_MAX - size)
        return fail("d_read", "%s", "address out of range");
    for (size_t left = size, at = 0; left > 0;) {
        ssize_t got = pread(f->fd, p + at, left, (off_t)(addr + at));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fail("d_read", "%s", strerror(errno));
        if (got == 0) { /* past the end of the file: zeros, as the default driver */
            memset(p + at, 0, left);
            break;
        }
        at += (size_t)got;
        left -= (size_t)got;
    }
    /* the first read of a collection may be a 4 KiB probe of a larger one: checked when whole */
    if (tl_check && type == H5FD_MEM_DRAW && size >= 16 && !memcmp(p, "GCOL", 4) && f->len_size &&
        get_len(p + 8, f->len_size) <= size) {
        char why[160], msg[256];
        if (djct_h5_check_gheap(p, size, f->len_size, why, sizeof(why)) < 0) {
            snprintf(msg, sizeof(msg), "global heap collection at byte %" PRIu64 " is corrupt: %s", (uint64_t)addr,
                     why);
            return fail("d_read", "%s", msg);
        }
    }
    return 0;
}

static herr_t d_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, const void *buf)
{
    return fail("d_write", "%s", "djct's checking driver only reads");
}

static const H5FD_class_t DRIVER = {
    .name = "djct_checked",
    .maxaddr = (haddr_t)INT64_MAX,
    .fc_degree = H5F_CLOSE_WEAK,
    .open = d_open,
    .close = d_close,
    .cmp = d_cmp,
    .query = d_query,
    .get_eoa = d_get_eoa,
    .set_eoa = d_set_eoa,
    .get_eof = d_get_eof,
    .get_handle = d_get_handle,
    .read = d_read,
    .write = d_write,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static hid_t g_fapl = H5P_DEFAULT;

static void make_fapl(void)
{
    hid_t id = H5FDregister(&DRIVER), fapl = id >= 0 ? H5Pcreate(H5P_FILE_ACCESS) : -1;
    if (fapl >= 0 && H5Pset_driver(fapl, id, NULL) >= 0)
        g_fapl = fapl;
    else if (fapl >= 0)
        H5Pclose(fapl);
    H5Eclear2(H5E_DEFAULT);
}

hid_t djct_h5_fapl(void)
{
    pthread_once(&g_once, make_fapl);
    return g_fapl;
}

#else

hid_t djct_h5_fapl(void) { return H5P_DEFAULT; }

#endif
