/* QuickLZ level-3 encode/decode speed on the payloads of bench/qlz_payloads.h, side by side with
 * memcpy of the same bytes, optionally with the reference quicklz.c and with another build of
 * djct's codec loaded at run time; then .djctd read throughput against a raw fread of the same
 * file (page cache warm).
 *
 * The stream is cut into --chunk-byte chunks that go through one compressor state and one
 * decompressor state, as the chunks of a djcdata qblock do (with 1,000,000-byte chunks the
 * 1,000,000-byte streaming buffer alternates between streaming and direct chunks).
 * Every round times memcpy and each codec's encode and decode once, one after the other;
 * figures are medians over --repeats rounds, and each ratio djct/other (djct's speed over the
 * other's: above 1, djct is faster) is the median of the per-round ratios. MB/s are 10^6 bytes
 * of original data per second.
 *
 *   --reference LIB  a shared object of the reference quicklz.c 1.5.0 (QLZ_COMPRESSION_LEVEL 3,
 *                    QLZ_STREAMING_BUFFER 1000000): qlz_compress, qlz_decompress,
 *                    qlz_size_compressed, qlz_size_decompressed and qlz_get_setting are resolved with dlsym. The bench
 *                    fails when the reference's compressed bytes differ from djct's.
 *   --baseline LIB   a shared object exporting djct's qlz API (djct_qlz_compress,
 *                    djct_qlz_decompress, djct_qlz_{c,d}state_{create,reset,free},
 *                    djct_qlz_header, djct_last_error), e.g. an older src/qlz.c built with
 *                    src/error.c; docs/performance.md shows how.
 * Usage: qlz_bench [--mb N | --bytes N] [--chunk N] [--repeats R] [--payload NAME]
 *                  [--reference LIB] [--baseline LIB] [--no-file] [--dir DIR] */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djct/djct.h"
#include "bench_util.h"
#include "qlz_payloads.h"

#define NCODEC 3 /* djct, reference, baseline */

typedef struct {
    const char *name;
    int kind; /* 0 djct's API, 1 the reference's */
    int (*dcreate)(djct_qlz_dstate **);
    void (*dreset)(djct_qlz_dstate *);
    void (*dfree)(djct_qlz_dstate *);
    int (*ccreate)(djct_qlz_cstate **);
    void (*creset)(djct_qlz_cstate *);
    void (*cfree)(djct_qlz_cstate *);
    int (*header)(size_t *, size_t *, int *, const void *, size_t);
    int (*compress)(djct_qlz_cstate *, const void *, size_t, void *, size_t, size_t *);
    int (*decompress)(djct_qlz_dstate *, const void *, size_t, void *, size_t, size_t *);
    const char *(*last_error)(void);
    djct_qlz_cstate *cs;
    djct_qlz_dstate *ds;
    /* reference */
    size_t (*qcompress)(const void *, char *, size_t, void *);
    size_t (*qdecompress)(const char *, void *, void *);
    size_t (*qsize_compressed)(const char *);
    size_t (*qsize_decompressed)(const char *);
    int (*qget_setting)(int);
    void *rcs, *rds;
    size_t rcs_size, rds_size;
} codec;

static void *sym(void *lib, const char *path, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "qlz_bench: %s does not export %s; see the --reference/--baseline notes in bench/qlz_bench.c\n",
                path, name);
        exit(2);
    }
    return p;
}

static void *open_lib(const char *path)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "qlz_bench: cannot load %s: %s\n", path, dlerror());
        exit(2);
    }
    return lib;
}

static void load_djct_api(codec *c, void *lib, const char *path)
{
    *(void **)&c->dcreate = sym(lib, path, "djct_qlz_dstate_create");
    *(void **)&c->dreset = sym(lib, path, "djct_qlz_dstate_reset");
    *(void **)&c->dfree = sym(lib, path, "djct_qlz_dstate_free");
    *(void **)&c->ccreate = sym(lib, path, "djct_qlz_cstate_create");
    *(void **)&c->creset = sym(lib, path, "djct_qlz_cstate_reset");
    *(void **)&c->cfree = sym(lib, path, "djct_qlz_cstate_free");
    *(void **)&c->header = sym(lib, path, "djct_qlz_header");
    *(void **)&c->compress = sym(lib, path, "djct_qlz_compress");
    *(void **)&c->decompress = sym(lib, path, "djct_qlz_decompress");
    *(void **)&c->last_error = sym(lib, path, "djct_last_error");
}

static void load_reference(codec *c, const char *path)
{
    void *lib = open_lib(path);
    *(void **)&c->qcompress = sym(lib, path, "qlz_compress");
    *(void **)&c->qdecompress = sym(lib, path, "qlz_decompress");
    *(void **)&c->qsize_compressed = sym(lib, path, "qlz_size_compressed");
    *(void **)&c->qsize_decompressed = sym(lib, path, "qlz_size_decompressed");
    *(void **)&c->qget_setting = sym(lib, path, "qlz_get_setting");
    /* settings 0: level, 1/2: state sizes, 3: streaming buffer (quicklz.h 1.5.0) */
    if (c->qget_setting(0) != 3 || c->qget_setting(3) != 1000000) {
        fprintf(stderr, "qlz_bench: %s is built with level %d and streaming buffer %d; djct needs level 3 and "
                "1000000 (-DQLZ_COMPRESSION_LEVEL=3 -DQLZ_STREAMING_BUFFER=1000000)\n",
                path, c->qget_setting(0), c->qget_setting(3));
        exit(2);
    }
    c->rcs_size = (size_t)c->qget_setting(1);
    c->rds_size = (size_t)c->qget_setting(2);
    c->rcs = calloc(1, c->rcs_size);
    c->rds = calloc(1, c->rds_size);
    if (!c->rcs || !c->rds) {
        fprintf(stderr, "qlz_bench: out of memory\n");
        exit(1);
    }
}

static void codec_reset(codec *c)
{
    if (c->kind) { /* the reference wants zeroed states at the start of a stream */
        memset(c->rcs, 0, c->rcs_size);
        memset(c->rds, 0, c->rds_size);
    } else {
        c->creset(c->cs);
        c->dreset(c->ds);
    }
}

/* in[0..n) as chunks of `chunk` bytes through the codec's compressor: *clen bytes into out */
static int encode(codec *c, const unsigned char *in, size_t n, size_t chunk, unsigned char *out, size_t *clen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += chunk) {
        size_t len = n - i < chunk ? n - i : chunk, got = 0;
        if (c->kind)
            got = c->qcompress(in + i, (char *)out + o, len, c->rcs);
        else if (c->compress(c->cs, in + i, len, out + o, DJCT_QLZ_BOUND(len), &got))
            return -1;
        if (!got)
            return -1;
        o += got;
    }
    *clen = o;
    return 0;
}

/* the chunks of c[0..clen) through the codec's decompressor into out (n bytes expected) */
static int decode(codec *c, const unsigned char *in, size_t clen, unsigned char *out, size_t n)
{
    size_t i = 0, o = 0;
    while (i < clen) {
        size_t cs, ds, got = 0;
        int comp;
        if (c->kind) {
            cs = c->qsize_compressed((const char *)in + i);
            if (cs > clen - i || c->qsize_decompressed((const char *)in + i) > n - o)
                return -1;
            got = c->qdecompress((const char *)in + i, out + o, c->rds);
        } else if (c->header(&cs, &ds, &comp, in + i, clen - i) || cs > clen - i ||
                   c->decompress(c->ds, in + i, cs, out + o, n - o, &got)) {
            return -1;
        }
        i += cs;
        o += got;
    }
    return o == n ? 0 : -1;
}

static void fail(const codec *c, const char *what, const char *payload)
{
    fprintf(stderr, "qlz_bench: %s: %s %s failed%s%s\n", payload, c->name, what, c->kind ? "" : ": ",
            c->kind ? "" : c->last_error());
    exit(1);
}

static int codec_payload(codec *cd, int ncodec, int kind, size_t n, size_t chunk, int reps, unsigned char *in,
                         unsigned char *cbuf[NCODEC], unsigned char *out, unsigned char *cp, double *t)
{
    const char *pn = QLZP_NAME[kind];
    size_t clen[NCODEC] = {0};
    qlzp_fill(in, n, kind);
    /* first pass: outputs, their equality, round trips (also warms every buffer) */
    for (int k = 0; k < ncodec; k++) {
        codec_reset(&cd[k]);
        if (encode(&cd[k], in, n, chunk, cbuf[k], &clen[k]))
            fail(&cd[k], "encode", pn);
        codec_reset(&cd[k]);
        memset(out, 0xA5, n);
        if (decode(&cd[k], cbuf[k], clen[k], out, n) || memcmp(in, out, n))
            fail(&cd[k], "round trip", pn);
    }
    int same = 1;
    for (int k = 1; k < ncodec; k++)
        if (clen[k] != clen[0] || memcmp(cbuf[k], cbuf[0], clen[0])) {
            fprintf(stderr, "qlz_bench: %s: %s's compressed bytes differ from djct's (%zu vs %zu bytes)\n", pn,
                    cd[k].name, clen[k], clen[0]);
            same = 0;
        }
    memcpy(cp, in, n);
    /* t[r * (1 + 2 * NCODEC) + j]: j = 0 memcpy, 1 + 2k encode of codec k, 2 + 2k decode */
    const int W = 1 + 2 * NCODEC;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now_s();
        memcpy(cp, in, n);
        __asm__ volatile("" ::"r"(cp) : "memory");
        t[r * W] = bench_now_s() - t0;
        for (int k = 0; k < ncodec; k++) {
            size_t l;
            codec_reset(&cd[k]);
            t0 = bench_now_s();
            if (encode(&cd[k], in, n, chunk, cbuf[k], &l))
                fail(&cd[k], "encode", pn);
            t[r * W + 1 + 2 * k] = bench_now_s() - t0;
            codec_reset(&cd[k]);
            t0 = bench_now_s();
            if (decode(&cd[k], cbuf[k], clen[k], out, n))
                fail(&cd[k], "decode", pn);
            t[r * W + 2 + 2 * k] = bench_now_s() - t0;
        }
    }
    double *v = malloc((size_t)reps * sizeof(double)), med[1 + 2 * NCODEC], rat[2 * NCODEC];
    for (int j = 0; j < 1 + 2 * ncodec; j++) {
        for (int r = 0; r < reps; r++)
            v[r] = t[r * W + j];
        med[j] = bench_median(v, reps);
    }
    for (int j = 2; j < 2 * ncodec; j++) { /* per-round time of codec k / djct's time */
        for (int r = 0; r < reps; r++)
            v[r] = t[r * W + 1 + j] / t[r * W + 1 + j % 2];
        rat[j] = bench_median(v, reps);
    }
    free(v);
    double MB = (double)n / 1e6;
    printf("| %s | %.3f | %.0f |", QLZP_TITLE[kind], (double)clen[0] / (double)n, MB / med[0]);
    for (int k = 0; k < ncodec; k++) {
        printf(" %.1f | %.1f |", MB / med[1 + 2 * k], MB / med[2 + 2 * k]);
        if (k) /* djct / other = other's time / djct's time */
            printf(" %.2f | %.2f |", rat[2 * k], rat[2 * k + 1]);
    }
    printf(" %.4f | %.4f | %016" PRIx64 " |%s\n", med[0] / med[1], med[0] / med[2],
           qlzp_fnv1a(cbuf[0], clen[0], QLZP_FNV_SEED), same ? "" : " DIFFERENT");
    fflush(stdout);
    return same;
}

/* .djctd read vs raw fread of the same bytes (kinds smooth and random) */
static int file_payload(int kind, size_t n, int reps, unsigned char *in, double *t, const char *dir)
{
    /* one ragged float32 array [events, -elements, 4] with ~100 elements per event */
    size_t nvals = n / 4, nel = nvals / 4, nev = nel / 100;
    nel = nev * 100;
    nvals = nel * 4;
    int64_t *rs = malloc((nev + 1) * 8);
    for (size_t e = 0; e <= nev; e++)
        rs[e] = (int64_t)(e * 100);
    qlzp_fill(in, nvals * 4, kind);
    char *fn[4] = {"x", "y", "z", "e"};
    djct_array a = {"hits", fn, 4, DJCT_DTYPE_FLOAT32, 3, {(int64_t)nev, -(int64_t)nel, 4}, rs, nev + 1, in, nvals};
    djct_record rec = {&a, 1, NULL, 0, NULL, 0};
    char path[512];
    snprintf(path, sizeof(path), "%s/qlz_bench_%d_%ld.djctd", dir, kind, (long)getpid());
    if (djct_djcdata_write(path, &rec, NULL)) {
        fprintf(stderr, "qlz_bench: %s\n", djct_last_error());
        return 1;
    }
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    size_t flen = (size_t)ftell(f);
    fclose(f);
    for (int r = 0; r < reps + 1; r++) { /* first run warms the page cache */
        /* the baseline allocates its buffer like the reader does (page faults included) */
        double t0 = bench_now_s();
        unsigned char *fb = malloc(flen);
        f = fopen(path, "rb");
        size_t got = fread(fb, 1, flen, f);
        fclose(f);
        free(fb);
        if (r)
            t[r - 1] = bench_now_s() - t0;
        if (got != flen)
            return 1;
    }
    double fr = bench_median(t, reps);
    for (int r = 0; r < reps; r++) {
        djct_record back;
        double t0 = bench_now_s();
        if (djct_djcdata_read(&back, path)) {
            fprintf(stderr, "qlz_bench: %s\n", djct_last_error());
            return 1;
        }
        t[r] = bench_now_s() - t0;
        djct_record_clear(&back);
    }
    double rd = bench_median(t, reps);
    printf("%-26s %10.1f %12.1f %12.1f %12.1f %10.3f\n", QLZP_TITLE[kind], (double)flen / 1e6,
           (double)flen / 1e6 / fr, (double)flen / 1e6 / rd, (double)(nvals * 4 + (nev + 1) * 8) / 1e6 / rd, fr / rd);
    free(rs);
    remove(path);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: qlz_bench [--mb N | --bytes N] [--chunk N] [--repeats R] [--payload "
                    "smooth|hits|rowsplits|random|all] [--reference LIB] [--baseline LIB] [--no-file] [--dir DIR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t n = (size_t)16 << 20, chunk = 1000000;
    int reps = 7, only = -1, files = 1;
    const char *dir = "/tmp", *ref = NULL, *base = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-file")) {
            files = 0;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--mb"))
            n = (size_t)atol(v) << 20;
        else if (!strcmp(a, "--bytes"))
            n = (size_t)atol(v);
        else if (!strcmp(a, "--chunk"))
            chunk = (size_t)atol(v);
        else if (!strcmp(a, "--repeats"))
            reps = atoi(v);
        else if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "--reference"))
            ref = v;
        else if (!strcmp(a, "--baseline"))
            base = v;
        else if (!strcmp(a, "--payload")) {
            only = -2;
            for (int k = 0; k < QLZP_COUNT; k++)
                if (!strcmp(v, QLZP_NAME[k]))
                    only = k;
            if (!strcmp(v, "all"))
                only = -1;
            if (only == -2)
                usage();
        } else
            usage();
    }
    if (reps < 1 || reps > 1000 || n < 1 || n > ((size_t)4000 << 20) || chunk < 1 || chunk > DJCT_QLZ_MAX_CHUNK) {
        fprintf(stderr, "qlz_bench: --repeats 1..1000, --mb 1..4000 (--bytes up to 4000 MiB), --chunk 1..%zu\n",
                (size_t)DJCT_QLZ_MAX_CHUNK);
        return 2;
    }

    codec cd[NCODEC];
    memset(cd, 0, sizeof(cd));
    int nc = 0;
    cd[nc].name = "djct";
    cd[nc].dcreate = djct_qlz_dstate_create;
    cd[nc].dreset = djct_qlz_dstate_reset;
    cd[nc].dfree = djct_qlz_dstate_free;
    cd[nc].ccreate = djct_qlz_cstate_create;
    cd[nc].creset = djct_qlz_cstate_reset;
    cd[nc].cfree = djct_qlz_cstate_free;
    cd[nc].header = djct_qlz_header;
    cd[nc].compress = djct_qlz_compress;
    cd[nc].decompress = djct_qlz_decompress;
    cd[nc].last_error = djct_last_error;
    nc++;
    if (ref) {
        cd[nc].name = "reference";
        cd[nc].kind = 1;
        load_reference(&cd[nc], ref);
        nc++;
    }
    if (base) {
        cd[nc].name = "baseline";
        load_djct_api(&cd[nc], open_lib(base), base);
        nc++;
    }
    for (int k = 0; k < nc; k++)
        if (!cd[k].kind && (cd[k].ccreate(&cd[k].cs) || cd[k].dcreate(&cd[k].ds))) {
            fprintf(stderr, "qlz_bench: %s: out of memory\n", cd[k].name);
            return 1;
        }

    size_t cap = n + (n / chunk + 1) * 400 + n / 8; /* >= the sum of DJCT_QLZ_BOUND over the chunks */
    unsigned char *in = malloc(n), *out = malloc(n), *cp = malloc(n), *cbuf[NCODEC] = {0};
    double *t = calloc((size_t)reps * (1 + 2 * NCODEC), sizeof(double));
    for (int k = 0; k < nc; k++)
        cbuf[k] = malloc(cap);
    if (!in || !out || !cp || !t || !cbuf[nc - 1]) {
        fprintf(stderr, "qlz_bench: out of memory\n");
        return 1;
    }
    printf("QuickLZ level 3, streaming buffer 1000000: %zu bytes in %zu-byte chunks through one state; "
           "medians of %d rounds; x/y = speed of x over speed of y, the median of the per-round ratios\n", n, chunk,
           reps);
    for (int k = 1; k < nc; k++)
        printf("%s: %s\n", cd[k].name, cd[k].kind ? ref : base);
    printf("\n| payload | compressed/original | memcpy MB/s | djct enc MB/s | djct dec MB/s |");
    for (int k = 1; k < nc; k++) {
        const char *s = cd[k].kind ? "ref" : "base";
        printf(" %s enc MB/s | %s dec MB/s | enc djct/%s | dec djct/%s |", s, s, s, s);
    }
    printf(" djct enc/memcpy | djct dec/memcpy | stream FNV-1a |\n|---|---|---|---|---|");
    for (int k = 1; k < nc; k++)
        printf("---|---|---|---|");
    printf("---|---|---|\n");
    int ok = 1;
    for (int kind = 0; kind < QLZP_COUNT; kind++)
        if (only < 0 || only == kind)
            ok &= codec_payload(cd, nc, kind, n, chunk, reps, in, cbuf, out, cp, t);

    if (files && (only < 0 || only == QLZP_SMOOTH || only == QLZP_RANDOM)) {
        printf("\n.djctd read (djct_djcdata_read) vs fread of the same file, page cache warm, median of %d\n", reps);
        printf("%-26s %10s %12s %12s %12s %10s\n", "payload", "file MB", "fread MB/s", "read MB/s", "decoded MB/s",
               "read/fread");
        for (int kind = 0; kind < QLZP_COUNT; kind++)
            if ((kind == QLZP_SMOOTH || kind == QLZP_RANDOM) && (only < 0 || only == kind) &&
                file_payload(kind, n, reps, in, t, dir))
                return 1;
    }
    for (int k = 0; k < nc; k++) {
        if (!cd[k].kind) {
            cd[k].cfree(cd[k].cs);
            cd[k].dfree(cd[k].ds);
        }
        free(cd[k].rcs);
        free(cd[k].rds);
        free(cbuf[k]);
    }
    free(in);
    free(out);
    free(cp);
    free(t);
    if (!ok) {
        fprintf(stderr, "qlz_bench: compressed bytes differ between codecs (see above)\n");
        return 1;
    }
    return 0;
}
