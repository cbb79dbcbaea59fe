/* The QuickLZ benchmark payloads, shared by bench/qlz_bench.c and tests/test_qlz.c (which checks
 * the compressed bytes against hashes of the reference compressor's output on the same bytes).
 * Every generator is deterministic: it restarts its own xorshift state on each call, so a
 * payload depends only on its kind and length. Header-only. */
#ifndef DJCT_QLZ_PAYLOADS_H
#define DJCT_QLZ_PAYLOADS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { QLZP_SMOOTH, QLZP_HITS, QLZP_ROWSPLITS, QLZP_RANDOM, QLZP_COUNT };

static const char *const QLZP_NAME[QLZP_COUNT] = {"smooth", "hits", "rowsplits", "random"};
static const char *const QLZP_TITLE[QLZP_COUNT] = {"smooth quantised float32", "point-cloud hits", "int64 row splits",
                                                   "random float32"};

static inline uint32_t qlzp_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)*s;
}

/* Fill b[0..n) with payload `kind`; a tail shorter than one element is zero. Values are built in
 * 4- or 8-byte little-endian elements written with memcpy, so b needs no alignment.
 *  smooth:    float32 sin(i % 4096 * 0.01) * 10 + (i / 7) % 5, quantised to 1/64
 *  hits:      float32 (x, y, z, e) per hit, x and y = k/2 (k < 512), z an integer < 64,
 *             e = k/100 (k < 1000), each k drawn independently
 *  rowsplits: int64 row splits 0, ... with increments 1..400
 *  random:    float32 uniform in [-100, 100) (incompressible: stored chunks) */
static inline void qlzp_fill(unsigned char *b, size_t n, int kind)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    memset(b, 0, n);
    if (kind == QLZP_SMOOTH) {
        for (size_t i = 0; i < n / 4; i++) {
            double x = sin((double)(i % 4096) * 0.01) * 10.0 + (double)((i / 7) % 5);
            float f = (float)(floor(x * 64.0) / 64.0);
            memcpy(b + 4 * i, &f, 4);
        }
    } else if (kind == QLZP_HITS) {
        for (size_t i = 0; i < n / 4; i++) {
            uint32_t k = qlzp_next(&s);
            float f;
            switch (i % 4) {
            case 0:
            case 1: f = (float)(k % 512) / 2.0f; break;
            case 2: f = (float)(k % 64); break;
            default: f = (float)(k % 1000) / 100.0f; break;
            }
            memcpy(b + 4 * i, &f, 4);
        }
    } else if (kind == QLZP_ROWSPLITS) {
        int64_t v = 0;
        for (size_t i = 0; i < n / 8; i++) {
            memcpy(b + 8 * i, &v, 8);
            v += 1 + (int64_t)(qlzp_next(&s) % 400);
        }
    } else {
        for (size_t i = 0; i < n / 4; i++) {
            float f = (float)qlzp_next(&s) / 4294967296.0f * 200.0f - 100.0f;
            memcpy(b + 4 * i, &f, 4);
        }
    }
}

/* FNV-1a, 64 bits: a fingerprint of a compressed stream */
static inline uint64_t qlzp_fnv1a(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}
#define QLZP_FNV_SEED 0xCBF29CE484222325ull

#endif /* DJCT_QLZ_PAYLOADS_H */
