/* Plain models of QuickLZ level 3 with the 1,000,000-byte streaming buffer (djcdata.md section
 * 9), written for clarity, not speed: src/qlz.c must produce exactly what they produce.
 * model_compress makes the reference compressor's choices with every candidate measured byte by
 * byte; model_decompress decodes one item at a time with every bound checked, with the same
 * acceptance rules as src/qlz.c (what it accepts, djct must decode to the same bytes; what it
 * rejects, djct must reject). Used by tests/test_qlz.c and tests/fuzz/fuzz_qlz.c. Header-only. */
#ifndef DJCT_TEST_QLZ_MODEL_H
#define DJCT_TEST_QLZ_MODEL_H

#include <stdint.h>
#include <string.h>

#include "djct/qlz.h"

/* The reference's choices written out plainly: 4096 hash values of 16 positions with 8-bit
 * insertion counters, every candidate measured byte by byte, the longest (then latest) match. */
typedef struct {
    size_t counter;
    uint8_t cnt[4096];
    uint32_t slot[4096][16];
    unsigned char buf[DJCT_QLZ_STREAMING_BUFFER];
} model_state;

static inline uint32_t model_hash(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    return ((v >> 12) ^ v) & 0xFFF;
}

static inline void model_put(unsigned char *o, uint32_t v, int nb)
{
    for (int i = 0; i < nb; i++)
        o[i] = (unsigned char)(v >> (8 * i));
}

static inline size_t model_core(const unsigned char *B, size_t start, size_t n, unsigned char *out, model_state *st)
{
    const unsigned char *in = B + start;
    size_t p = 0, o = 4, cwpos = 0;
    uint32_t acc = 1u << 31;
    while (n >= 11 && p <= n - 11) {
        if (acc & 1) {
            if (p > n / 2 && o > p - (p >> 5))
                return 0;
            model_put(out + cwpos, (acc >> 1) | (1u << 31), 4);
            cwpos = o;
            o += 4;
            acc = 1u << 31;
        }
        size_t rem = n - 4 - p < 255 ? n - 4 - p : 255, P = start + p, best_pos = 0, best_len = 0;
        uint32_t h = model_hash(in + p);
        unsigned c = st->cnt[h];
        for (unsigned k = 0; k < 16 && k < c; k++) {
            size_t q = st->slot[h][k], m = 0;
            while (q + 2 < P && m < rem && B[q + m] == in[p + m])
                m++;
            if (m >= 3 && (m > best_len || (m == best_len && q > best_pos))) {
                best_pos = q;
                best_len = m;
            }
        }
        st->slot[h][c & 15] = (uint32_t)P;
        st->cnt[h] = (uint8_t)(c + 1);
        if (best_len >= 3 && P - best_pos < 131071) {
            for (size_t u = 1; u < best_len; u++) {
                uint32_t h2 = model_hash(in + p + u);
                st->slot[h2][st->cnt[h2]++ & 15] = (uint32_t)(P + u);
            }
            acc = (acc >> 1) | (1u << 31);
            uint32_t off = (uint32_t)(P - best_pos), len = (uint32_t)best_len;
            if (len == 3 && off <= 63) {
                model_put(out + o, off << 2, 1);
                o += 1;
            } else if (len == 3 && off <= 16383) {
                model_put(out + o, off << 2 | 1, 2);
                o += 2;
            } else if (len <= 18 && off <= 1023) {
                model_put(out + o, (len - 3) << 2 | off << 6 | 2, 2);
                o += 2;
            } else if (len <= 33) {
                model_put(out + o, (len - 2) << 2 | off << 7 | 3, 3);
                o += 3;
            } else {
                model_put(out + o, (len - 3) << 7 | off << 15 | 3, 4);
                o += 4;
            }
            p += best_len;
        } else {
            out[o++] = in[p++];
            acc >>= 1;
        }
    }
    for (; p < n; p++) {
        if (acc & 1) {
            model_put(out + cwpos, (acc >> 1) | (1u << 31), 4);
            cwpos = o;
            o += 4;
            acc = 1u << 31;
        }
        out[o++] = in[p];
        acc >>= 1;
    }
    while (!(acc & 1))
        acc >>= 1;
    model_put(out + cwpos, (acc >> 1) | (1u << 31), 4);
    for (; o < 9; o++)
        out[o] = 0;
    return o;
}

static inline size_t model_compress(model_state *st, const unsigned char *src, size_t n, unsigned char *dst)
{
    size_t base = n < 216 ? 3 : 9, body;
    int comp = 1;
    if (st->counter + n - 1 >= DJCT_QLZ_STREAMING_BUFFER) {
        memset(st->cnt, 0, sizeof(st->cnt));
        body = model_core(src, 0, n, dst + base, st);
        memset(st->cnt, 0, sizeof(st->cnt));
        st->counter = 0;
    } else {
        memcpy(st->buf + st->counter, src, n);
        body = model_core(st->buf, st->counter, n, dst + base, st);
        if (!body)
            memset(st->cnt, 0, sizeof(st->cnt));
        st->counter += n;
    }
    if (!body) {
        memcpy(dst + base, src, n);
        body = n;
        comp = 0;
    }
    dst[0] = (unsigned char)(0x6C | (base == 9 ? 2 : 0) | comp);
    if (base == 9) {
        model_put(dst + 1, (uint32_t)(base + body), 4);
        model_put(dst + 5, (uint32_t)n, 4);
    } else {
        dst[1] = (unsigned char)(base + body);
        dst[2] = (unsigned char)n;
    }
    return base + body;
}

/* ---- decoder --------------------------------------------------------------------------------- */

typedef struct {
    size_t counter;
    unsigned char buf[DJCT_QLZ_STREAMING_BUFFER];
} model_dstate;

/* The body src[0..slen) into t[0..D); t[-hist..0) is history. 0, or -1 when corrupt. */
static inline int model_body(const unsigned char *src, size_t slen, unsigned char *t, size_t D, size_t hist)
{
    static const unsigned char tz[16] = {4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0};
    size_t s = 0, d = 0;
    uint32_t cw = 1;
    for (;;) {
        if (cw == 1) {
            if (slen - s < 4)
                return -1;
            cw = (uint32_t)src[s] | (uint32_t)src[s + 1] << 8 | (uint32_t)src[s + 2] << 16 | (uint32_t)src[s + 3] << 24;
            s += 4;
        }
        if (cw & 1) {
            cw >>= 1;
            if (s >= slen)
                return -1;
            uint32_t f = 0, off, len;
            for (size_t i = 0; i < 4 && s + i < slen; i++)
                f |= (uint32_t)src[s + i] << (8 * i);
            size_t nb;
            if ((f & 3) == 0) {
                off = (f >> 2) & 63; len = 3; nb = 1;
            } else if ((f & 3) == 1) {
                off = (f >> 2) & 0x3FFF; len = 3; nb = 2;
            } else if ((f & 3) == 2) {
                off = (f >> 6) & 0x3FF; len = ((f >> 2) & 15) + 3; nb = 2;
            } else if ((f & 127) != 3) {
                off = (f >> 7) & 0x1FFFF; len = ((f >> 2) & 31) + 2; nb = 3;
            } else {
                off = f >> 15; len = ((f >> 7) & 255) + 3; nb = 4;
            }
            if (slen - s < nb || off < 3 || off > d + hist || len > D - d)
                return -1;
            for (uint32_t i = 0; i < len; i++, d++)
                t[d] = t[d - off];
            s += nb;
        } else if (d + 11 < D) {
            size_t n = tz[cw & 15];
            if (slen - s < n)
                return -1;
            for (size_t i = 0; i < n; i++)
                t[d++] = src[s++];
            cw >>= n;
        } else {
            while (d < D) {
                if (cw == 1) {
                    s += 4;
                    cw = 1u << 31;
                }
                if (s >= slen)
                    return -1;
                t[d++] = src[s++];
                cw >>= 1;
            }
            return s == slen || (slen == 9 && s < 9) ? 0 : -1;
        }
    }
}

/* One chunk of exactly n bytes into dst (cap bytes), as djct_qlz_decompress: *out_len bytes. */
static inline int model_decompress(model_dstate *st, const unsigned char *src, size_t n, unsigned char *dst,
                                   size_t cap, size_t *out_len)
{
    size_t csize, dsize;
    int comp;
    if (djct_qlz_header(&csize, &dsize, &comp, src, n) || csize != n || dsize > cap)
        return -1;
    size_t hl = (src[0] & 2) ? 9 : 3;
    int direct = st->counter + dsize - 1 >= DJCT_QLZ_STREAMING_BUFFER;
    unsigned char *t = direct ? dst : st->buf + st->counter;
    if (comp) {
        if (model_body(src + hl, csize - hl, t, dsize, direct ? 0 : st->counter))
            return -1;
    } else {
        memcpy(t, src + hl, dsize);
    }
    if (!direct)
        memcpy(dst, t, dsize);
    st->counter = direct ? 0 : st->counter + dsize;
    *out_len = dsize;
    return 0;
}

#endif /* DJCT_TEST_QLZ_MODEL_H */
