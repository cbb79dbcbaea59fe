/* QuickLZ level-3 encode/decode speed on realistic payloads, side by side with memcpy of the same
 * bytes, and .djctd read throughput against a raw fread of the same file (page cache warm).
 * Medians over --repeats runs. Usage: qlz_bench [--mb N] [--repeats R] [--dir DIR] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "djct/djct.h"
#include "bench_util.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* kinds: smooth quantised floats (detector-like hits), random floats, int64 row splits */
static void fill(unsigned char *b, size_t n, int kind)
{
    if (kind == 0) {
        float *f = (float *)b;
        for (size_t i = 0; i < n / 4; i++) {
            double x = sin((double)(i % 4096) * 0.01) * 10.0 + (double)((i / 7) % 5);
            f[i] = (float)(floor(x * 64.0) / 64.0); /* quantised to 1/64 */
        }
    } else if (kind == 1) {
        float *f = (float *)b;
        for (size_t i = 0; i < n / 4; i++)
            f[i] = (float)xr() / 4294967296.0f * 200.0f - 100.0f;
    } else {
        int64_t *r = (int64_t *)b, v = 0;
        for (size_t i = 0; i < n / 8; i++) {
            r[i] = v;
            uint32_t u = xr() % 1000;
            v += 20 + (int64_t)(u * u / 2000); /* heavy-ish tail of elements per event */
        }
    }
}

static const char *KIND[3] = {"smooth quantised float32", "random float32", "int64 row splits"};

int main(int argc, char **argv)
{
    size_t mb = 16;
    int reps = 5;
    const char *dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc)
            mb = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: qlz_bench [--mb N] [--repeats R] [--dir DIR]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 1000 || mb < 1 || mb > 4000) {
        fprintf(stderr, "qlz_bench: --repeats 1..1000 and --mb 1..4000\n");
        return 2;
    }
    size_t n = mb << 20;
    unsigned char *in = malloc(n), *c = malloc(DJCT_QLZ_BOUND(n)), *out = malloc(n), *cp = malloc(n);
    double *t = calloc((size_t)reps, sizeof(double));
    djct_qlz_cstate *cs;
    djct_qlz_dstate *ds;
    if (!in || !c || !out || !cp || !t || djct_qlz_cstate_create(&cs) || djct_qlz_dstate_create(&ds)) {
        fprintf(stderr, "qlz_bench: out of memory\n");
        return 1;
    }
    printf("QuickLZ level 3, one %zu MiB chunk (direct mode), median of %d runs\n", mb, reps);
    printf("%-26s %8s %11s %11s %11s %9s %9s\n", "data", "ratio", "enc MB/s", "dec MB/s", "memcpy MB/s",
           "enc/memcpy", "dec/memcpy");
    for (int kind = 0; kind < 3; kind++) {
        fill(in, n, kind);
        size_t clen = 0, dlen = 0;
        for (int r = 0; r < reps; r++) {
            djct_qlz_cstate_reset(cs);
            double t0 = bench_now_s();
            djct_qlz_compress(cs, in, n, c, DJCT_QLZ_BOUND(n), &clen);
            t[r] = bench_now_s() - t0;
        }
        double enc = bench_median(t, reps);
        for (int r = 0; r < reps; r++) {
            djct_qlz_dstate_reset(ds);
            double t0 = bench_now_s();
            if (djct_qlz_decompress(ds, c, clen, out, n, &dlen)) {
                fprintf(stderr, "qlz_bench: %s\n", djct_last_error());
                return 1;
            }
            t[r] = bench_now_s() - t0;
        }
        double dec = bench_median(t, reps);
        if (dlen != n || memcmp(in, out, n)) {
            fprintf(stderr, "qlz_bench: round trip mismatch\n");
            return 1;
        }
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now_s();
            memcpy(cp, in, n);
            __asm__ volatile("" ::"r"(cp) : "memory");
            t[r] = bench_now_s() - t0;
        }
        double mc = bench_median(t, reps);
        double MB = (double)n / 1e6;
        printf("%-26s %8.3f %11.1f %11.1f %11.1f %9.4f %9.4f%s\n", KIND[kind], (double)clen / (double)n, MB / enc,
               MB / dec, MB / mc, mc / enc, mc / dec, c[0] & 1 ? "" : "  (stored)");
    }

    /* .djctd read vs raw fread of the same bytes */
    printf("\n.djctd read (djct_djcdata_read) vs fread of the same file, page cache warm, median of %d\n", reps);
    printf("%-26s %10s %12s %12s %12s %10s\n", "payload", "file MB", "fread MB/s", "read MB/s", "decoded MB/s",
           "read/fread");
    for (int kind = 0; kind < 2; kind++) {
        /* one ragged float32 array [events, -elements, 4] with ~100 elements per event */
        size_t nvals = n / 4, nel = nvals / 4, nev = nel / 100;
        nel = nev * 100;
        nvals = nel * 4;
        int64_t *rs = malloc((nev + 1) * 8);
        for (size_t e = 0; e <= nev; e++)
            rs[e] = (int64_t)(e * 100);
        fill(in, nvals * 4, kind);
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
        printf("%-26s %10.1f %12.1f %12.1f %12.1f %10.3f\n", KIND[kind], (double)flen / 1e6, (double)flen / 1e6 / fr,
               (double)flen / 1e6 / rd, (double)(nvals * 4 + (nev + 1) * 8) / 1e6 / rd, fr / rd);
        free(rs);
        remove(path);
    }
    djct_qlz_cstate_free(cs);
    djct_qlz_dstate_free(ds);
    free(in);
    free(c);
    free(out);
    free(cp);
    free(t);
    return 0;
}
