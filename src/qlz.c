/* QuickLZ 1.5.0 level 3 with the 1,000,000-byte streaming buffer, written from djcdata.md
 * section 9 (no reference code). The decoder trusts nothing: every read of the body and every
 * match source/target is bounds-checked (a fast loop checks once per control word what a whole
 * word's items can reach, a careful loop checks each byte near the ends), so corrupt chunks give
 * DJCT_EINVAL, never an out-of-bounds access or a hang (each item advances the output by at least
 * one byte). The compressor makes the choices of section 9.5 step by step, so its output is
 * byte-identical to the reference qlz_compress; its hash table caches the bytes at each position
 * so that most candidates are judged without reading the data. */
#include "djct/qlz.h"
#include "djct/error.h"
#include "djct_int.h"
#include "qlz_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define BUFSZ DJCT_QLZ_STREAMING_BUFFER
#define HASH_VALUES 4096
#define POINTERS 16

struct djct_qlz_dstate {
    size_t counter;             /* bytes of buf used by the current stream */
    unsigned char buf[BUFSZ];   /* history of streaming-mode chunks */
};

/* One hash value's last POINTERS positions (slot = insertion count mod POINTERS) and the four
 * bytes found there, so that testing a candidate needs no read of the data (one cache-line pair
 * per hash value instead of up to 16 scattered reads), and a candidate that agrees in three
 * bytes only is known to give a 3-byte match without reading it. */
typedef struct {
    uint32_t pos[POINTERS]; /* in buf (streaming) or in the chunk (direct) */
    uint32_t key[POINTERS]; /* the four bytes at pos, little-endian */
} bucket;

struct djct_qlz_cstate {
    bucket tab[HASH_VALUES];  /* first, so that the allocation's alignment aligns the buckets */
    uint8_t cnt[HASH_VALUES]; /* 8-bit insertion counters; slots k < cnt (and < POINTERS) are valid */
    size_t counter;
    unsigned char buf[BUFSZ];
};

static inline uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}
static inline void wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* ---- states ------------------------------------------------------------------------------ */

int djct_qlz_dstate_create(djct_qlz_dstate **out)
{
    DJCT_CHECK_ARG(out);
    /* The spec's state is zero-initialised, but a byte of buf is never read before this stream
     * wrote it (matches may only reach back `counter + d` bytes), so plain malloc suffices and
     * saves zeroing 1 MB per block. */
    if (!(*out = malloc(sizeof(**out))))
        return djct_error_oom();
    (*out)->counter = 0;
    return 0;
}

void djct_qlz_dstate_reset(djct_qlz_dstate *s)
{
    if (s)
        s->counter = 0; /* history beyond the counter is never referenced: no need to zero 1 MB */
}

void djct_qlz_dstate_free(djct_qlz_dstate *s) { free(s); }

int djct_qlz_cstate_create(djct_qlz_cstate **out)
{
    DJCT_CHECK_ARG(out);
    /* cache-line aligned buckets; only the counters need zeros (slots not written since the
     * last reset are masked out wherever they are read), so the pages of the table and the
     * buffer stay untouched until used */
    size_t sz = (sizeof(**out) + 63) & ~(size_t)63;
    if (!(*out = aligned_alloc(64, sz)))
        return djct_error_oom();
    djct_qlz_cstate_reset(*out);
    return 0;
}

void djct_qlz_cstate_reset(djct_qlz_cstate *s)
{
    if (!s)
        return;
    s->counter = 0;
    memset(s->cnt, 0, sizeof(s->cnt));
}

void djct_qlz_cstate_free(djct_qlz_cstate *s) { free(s); }

/* ---- header -------------------------------------------------------------------------------- */

int djct_qlz_header_int(size_t *csize, size_t *dsize, int *compressed, const unsigned char *p,
                        size_t avail, size_t *err_off)
{
    *err_off = 0;
    if (avail < 1)
        return djct_error_set(DJCT_EINVAL, "chunk header missing (0 bytes left)");
    unsigned f = p[0];
    if ((f & 0xFC) != 0x6C)
        return djct_error_set(DJCT_EINVAL,
                              "chunk flag byte 0x%02x is not QuickLZ level 3 with a 1000000-byte "
                              "streaming buffer (want 0x6c..0x6f)", f);
    size_t hl = (f & 2) ? 9 : 3;
    if (avail < hl)
        return djct_error_set(DJCT_EINVAL, "chunk header needs %zu bytes, only %zu left", hl, avail);
    if (hl == 9) {
        *csize = rd32(p + 1);
        *dsize = rd32(p + 5);
    } else {
        *csize = p[1];
        *dsize = p[2];
    }
    *compressed = (int)(f & 1);
    if (*csize < hl)
        return djct_error_set(DJCT_EINVAL, "chunk size %zu is smaller than its %zu-byte header", *csize, hl);
    if (*dsize == 0)
        return djct_error_set(DJCT_EINVAL, "chunk says it decompresses to 0 bytes (never written)");
    if (!*compressed && *csize - hl != *dsize)
        return djct_error_set(DJCT_EINVAL, "stored chunk of %zu bytes holds %zu bytes of data, header says %zu",
                              *csize, *csize - hl, *dsize);
    return 0;
}

int djct_qlz_header(size_t *csize, size_t *dsize, int *compressed, const void *src, size_t avail)
{
    DJCT_CHECK_ARG(csize);
    DJCT_CHECK_ARG(dsize);
    DJCT_CHECK_ARG(compressed);
    DJCT_CHECK_ARG(src || !avail);
    size_t off;
    int rc = djct_qlz_header_int(csize, dsize, compressed, src, avail, &off);
    if (rc)
        djct_error_prefix("byte %zu of the chunk", off);
    return rc;
}

/* ---- decoder --------------------------------------------------------------------------------- */

#define QLZ_LIKELY(x) __builtin_expect(!!(x), 1)
#define QLZ_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* 16 bytes from s to d through a temporary: when a match's source overlaps its target, the whole
 * source block is read before any of it is written (compilers emit one unaligned load and store) */
static inline void copy16(unsigned char *d, const unsigned char *s)
{
    unsigned char tmp[16];
    memcpy(tmp, s, 16);
    memcpy(d, tmp, 16);
}

/* the same for 8 bytes */
static inline void copy8(unsigned char *d, const unsigned char *s)
{
    unsigned char tmp[8];
    memcpy(tmp, s, 8);
    memcpy(d, tmp, 8);
}

/* The fast loop needs, at each control word, this much body left (the word, 31 items of at most
 * 4 bytes, and the 32 bytes a literal run copy reads) and this much output left (a literal run
 * copy writes 32 bytes at most 31 bytes past the last checked position). */
#define FAST_SRC 160u
#define FAST_DST 64u

/* A match code by its first byte b (section 9.3), for the four-byte little-endian f at the code:
 * offset = (f >> osh) & omask, length len, code length nb. b & 3 is the kind: 0 a 6-bit offset
 * and length 3 (one byte); 1 a 14-bit offset, length 3; 2 a 10-bit offset, length 3..18 (two
 * bytes); 3 a 17-bit offset, length 3..33 (three bytes) unless bits 2..6 are 0, which makes the
 * four-byte code of length 3..258 whose length spans two bytes: len = 0 marks it. */
typedef struct {
    uint32_t omask;
    uint8_t osh, len, nb;
} match_code;

#define MC_ENTRY(b)                                                                                    \
    {((b) & 3) == 0 ? 0x3Fu : ((b) & 3) == 1 ? 0x3FFFu : ((b) & 3) == 2 ? 0x3FFu : 0x1FFFFu,            \
     ((b) & 3) <= 1 ? 2 : ((b) & 3) == 2 ? 6 : 7,                                                       \
     ((b) & 3) <= 1 ? 3 : ((b) & 3) == 2 ? (((b) >> 2) & 15) + 3 : ((b) & 127) == 3 ? 0 : (((b) >> 2) & 31) + 2, \
     ((b) & 3) == 0 ? 1 : ((b) & 3) <= 2 ? 2 : 3}
#define MC4(b) MC_ENTRY(b), MC_ENTRY((b) + 1), MC_ENTRY((b) + 2), MC_ENTRY((b) + 3)
#define MC16(b) MC4(b), MC4((b) + 4), MC4((b) + 8), MC4((b) + 12)
#define MC64(b) MC16(b), MC16((b) + 16), MC16((b) + 32), MC16((b) + 48)
static const match_code MATCH_CODES[256] = {MC64(0), MC64(64), MC64(128), MC64(192)};

/* Decode a compressed body (section 9.3) into t[0..D); t[-hist..0) is valid history.
 * On error *err_off is the body offset of the offending item.
 *
 * Two loops share the position (s, d, cw). The fast loop runs while a whole control word's
 * items cannot reach past either end (checked once per word, plus each match's length), so its
 * literals and matches are copied in 16-byte blocks that may write up to 15 bytes beyond the
 * item, always inside t[0..D) and overwritten by the next items; every match's offset is still
 * checked against the history. The careful loop takes one item at a time and checks every byte:
 * it decodes anything the fast loop hands over (the items of a word without its end bit, a bad
 * offset, a match reaching into the last FAST_DST bytes, the first bytes of a stream without
 * history),
 * reports every error, decodes the end of every body, and hands back at a control word boundary
 * when the fast loop's conditions hold again. */
static int decode_body(const unsigned char *src, size_t slen, unsigned char *t, size_t D, size_t hist,
                       size_t *err_off)
{
    static const unsigned char tz[16] = {4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0};
    size_t s = 0, d = 0;
    uint32_t cw = 1;
    const int fast_ok = slen >= FAST_SRC && D >= FAST_DST;
    const size_t s_lim = fast_ok ? slen - FAST_SRC : 0, d_lim = fast_ok ? D - FAST_DST : 0;
    /* off - 3 > d + hist - 3 rejects offsets below 3 and beyond the history in one comparison;
     * it needs d + hist >= 3, which the careful loop waits for */
    const size_t hist3 = hist - 3;
    if (!fast_ok || hist < 3)
        goto careful;
fast:
    while (s <= s_lim && d <= d_lim) {
        cw = rd32(src + s);
        s += 4;
        if (QLZ_UNLIKELY(!(cw >> 31))) /* never written by QuickLZ: the careful loop judges it */
            goto careful_item;
        /* w holds the 8 body bytes at s, f the 4 at s: the next code is shifted out of w rather
         * than loaded again, which keeps a load off the path from one item to the next */
        uint64_t w = rd64(src + s);
        uint32_t f = (uint32_t)w;
        for (;;) {
            if (!(cw & 1)) {
                unsigned n = (unsigned)__builtin_ctz(cw); /* a run of literals, ended by a match or the end bit */
                copy16(t + d, src + s);
                if (n > 16)
                    copy16(t + d + 16, src + s + 16);
                f = n <= 4 ? (uint32_t)(w >> (8 * n)) : rd32(src + s + n);
                s += n;
                d += n;
                w = rd64(src + s);
                cw >>= n;
                if (cw == 1)
                    break;
            }
            const match_code *m = &MATCH_CODES[f & 255];
            size_t off = (f >> m->osh) & m->omask, len = m->len;
            unsigned nb = m->nb;
            if (QLZ_UNLIKELY(len == 0)) { /* the four-byte code */
                off = f >> 15;
                len = ((f >> 7) & 255) + 3;
                nb = 4;
            }
            if (QLZ_UNLIKELY(off - 3 > d + hist3 || d + len > d_lim))
                goto careful; /* this item again, checked */
            unsigned char *o = t + d;
            const unsigned char *from = o - off;
            /* A block may read and write past the match's bytes (rewritten later), but every
             * byte it must copy lies before its target and is final. */
            if (QLZ_LIKELY(off >= 16)) {
                copy16(o, from);
                for (size_t i = 16; i < len; i += 16)
                    copy16(o + i, from + i);
            } else if (off >= len) {
                /* a short offset reads bytes just written; 8-byte blocks overlap fewer of the
                 * stores still in flight than 16-byte ones (faster on int64 row splits) */
                copy8(o, from);
                if (len > 8)
                    copy8(o + 8, from + 8);
            } else {
                /* overlapping: each 8-byte block reads only `off` bytes that are final (the
                 * rest it reads and writes is rewritten by the next block, off bytes on) */
                size_t step = off >= 8 ? 8 : off;
                for (size_t i = 0; i < len; i += step)
                    copy8(o + i, from + i);
            }
            f = (uint32_t)(w >> (8 * nb));
            s += nb;
            w = rd64(src + s);
            d += len;
            cw >>= 1;
            if (cw == 1)
                break;
        }
    }
careful:
    for (;;) {
        if (cw == 1) {
            if (fast_ok && s <= s_lim && d <= d_lim && d + hist >= 3)
                goto fast;
            if (slen - s < 4) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "control word runs past the end of the %zu-byte body "
                                      "(output at %zu of %zu)", slen, d, D);
            }
            cw = rd32(src + s);
            s += 4;
        }
    careful_item:
        if (cw & 1) {
            cw >>= 1;
            if (s >= slen) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "match runs past the end of the %zu-byte body", slen);
            }
            unsigned b0 = src[s];
            uint32_t f = 0;
            if (slen - s >= 4)
                f = rd32(src + s);
            else
                for (size_t i = 0; s + i < slen; i++)
                    f |= (uint32_t)src[s + i] << (8 * i);
            uint32_t off, len;
            size_t nb;
            if ((b0 & 3) == 0) {
                off = b0 >> 2; len = 3; nb = 1;
            } else if ((b0 & 3) == 1) {
                off = (f & 0xFFFF) >> 2; len = 3; nb = 2;
            } else if ((b0 & 3) == 2) {
                off = (f & 0xFFFF) >> 6; len = ((f >> 2) & 15) + 3; nb = 2;
            } else if ((b0 & 127) != 3) {
                off = (f >> 7) & 0x1FFFF; len = ((f >> 2) & 31) + 2; nb = 3;
            } else {
                off = f >> 15; len = ((f >> 7) & 255) + 3; nb = 4;
            }
            if (slen - s < nb) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "%zu-byte match code runs past the end of the %zu-byte body",
                                      nb, slen);
            }
            if (off < 3) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "match offset %u < 3 (never written by QuickLZ)", (unsigned)off);
            }
            if (off > d + hist) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "match offset %u reaches before the start of the stream "
                                      "(%zu bytes of history)", (unsigned)off, d + hist);
            }
            if (len > D - d) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "match of %u bytes at output %zu overruns the chunk's %zu bytes",
                                      (unsigned)len, d, D);
            }
            unsigned char *o = t + d;
            const unsigned char *from = o - off;
            if (off >= len)
                memcpy(o, from, len);
            else
                for (uint32_t i = 0; i < len; i++) /* overlapping: forward, byte by byte */
                    o[i] = from[i];
            s += nb;
            d += len;
        } else if (d + 11 < D) {
            size_t n = tz[cw & 0xF];
            if (slen - s < n) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "literals run past the end of the %zu-byte body", slen);
            }
            memcpy(t + d, src + s, n);
            s += n;
            d += n;
            cw >>= n;
        } else {
            while (d < D) {
                if (cw == 1) {
                    s += 4; /* skip a control word unread */
                    cw = 1u << 31;
                }
                if (s >= slen) {
                    *err_off = slen;
                    return djct_error_set(DJCT_EINVAL, "literal tail runs past the end of the %zu-byte body "
                                          "(output at %zu of %zu)", slen, d, D);
                }
                t[d++] = src[s++];
                cw >>= 1;
            }
            /* the reference pads bodies shorter than 9 bytes to 9; otherwise every byte is used */
            if (s != slen && !(slen == 9 && s < 9)) {
                *err_off = s;
                return djct_error_set(DJCT_EINVAL, "body has %zu unused bytes after the last item", slen - s);
            }
            return 0;
        }
    }
}

int djct_qlz_check_at(size_t *dsize, int *compressed, const unsigned char *head, size_t avail, size_t len,
                      size_t room, size_t *err_off)
{
    size_t csize;
    int rc;
    if ((rc = djct_qlz_header_int(&csize, dsize, compressed, head, avail, err_off)))
        return rc;
    if (csize != len) {
        *err_off = 1;
        return djct_error_set(DJCT_EINVAL, "chunk header says %zu bytes, the block gives it %zu", csize, len);
    }
    if (*dsize > room) {
        *err_off = (head[0] & 2) ? 5 : 2; /* the decompressed-size field */
        return djct_error_set(DJCT_EINVAL, "chunk decompresses to %zu bytes, only %zu remain of the block",
                              *dsize, room);
    }
    return 0;
}

int djct_qlz_decompress_int(djct_qlz_dstate *st, const unsigned char *src, size_t src_len,
                            unsigned char *dst, size_t dst_cap, size_t *out_len, size_t *err_off)
{
    size_t dsize;
    int comp, rc;
    if ((rc = djct_qlz_check_at(&dsize, &comp, src, src_len, src_len, dst_cap, err_off)))
        return rc;
    size_t hl = (src[0] & 2) ? 9 : 3;
    const unsigned char *body = src + hl;
    size_t blen = src_len - hl;
    if (st->counter + dsize - 1 >= BUFSZ) {
        /* direct: history is this chunk's own output */
        if (comp) {
            if ((rc = decode_body(body, blen, dst, dsize, 0, err_off))) {
                *err_off += hl;
                return rc;
            }
        } else {
            memcpy(dst, body, dsize);
        }
        st->counter = 0;
    } else {
        unsigned char *t = st->buf + st->counter;
        if (comp) {
            if ((rc = decode_body(body, blen, t, dsize, st->counter, err_off))) {
                *err_off += hl;
                return rc;
            }
        } else {
            memcpy(t, body, dsize);
        }
        memcpy(dst, t, dsize);
        st->counter += dsize;
    }
    *out_len = dsize;
    return 0;
}

/* The chunks of a block are decoded into it back to back, so the bytes a state would hold in its
 * buffer, block[pos - *counter .. pos), are already in place as the block's own earlier output:
 * no state, and no copy through one. decode_body reads and writes only block[pos - hist ..
 * pos + dsize), so blocks decoded by different threads never touch each other's bytes. */
int djct_qlz_decompress_at(size_t *counter, const void *chunk, size_t len, unsigned char *block, size_t pos,
                           size_t cap, size_t *out_len, size_t *err_off)
{
    const unsigned char *src = chunk;
    size_t dsize;
    int comp, rc;
    if (pos > cap || *counter > pos) {
        *err_off = 0;
        return djct_error_set(DJCT_EINVAL, "qlz_decompress_at: output position %zu with %zu bytes of history "
                              "in a %zu-byte block", pos, *counter, cap);
    }
    if ((rc = djct_qlz_check_at(&dsize, &comp, src, len, len, cap - pos, err_off)))
        return rc;
    size_t hl = (src[0] & 2) ? 9 : 3;
    if (comp) {
        size_t hist = *counter + dsize - 1 >= BUFSZ ? 0 : *counter; /* direct when it does not fit */
        if ((rc = decode_body(src + hl, len - hl, block + pos, dsize, hist, err_off))) {
            *err_off += hl;
            return rc;
        }
    } else {
        memcpy(block + pos, src + hl, dsize);
    }
    djct_qlz_counter_advance(counter, dsize);
    *out_len = dsize;
    return 0;
}

int djct_qlz_decompress(djct_qlz_dstate *s, const void *src, size_t src_len, void *dst, size_t dst_cap,
                        size_t *out_len)
{
    DJCT_CHECK_ARG(s);
    DJCT_CHECK_ARG(src || !src_len);
    DJCT_CHECK_ARG(dst || !dst_cap);
    DJCT_CHECK_ARG(out_len);
    size_t off = 0;
    int rc = djct_qlz_decompress_int(s, src, src_len, dst, dst_cap, out_len, &off);
    if (rc)
        djct_error_prefix("byte %zu of the chunk", off);
    return rc;
}

/* ---- compressor ------------------------------------------------------------------------------ */

static inline uint32_t hash_key(uint32_t v3) { return ((v3 >> 12) ^ v3) & (HASH_VALUES - 1); }

/* insert position pos, where the four bytes v4 are, under the hash of its first three */
static inline void insert(djct_qlz_cstate *st, uint32_t v4, uint32_t pos)
{
    uint32_t h = hash_key(v4 & 0xFFFFFF);
    unsigned j = st->cnt[h];
    st->cnt[h] = (uint8_t)(j + 1);
    st->tab[h].pos[j & (POINTERS - 1)] = pos;
    st->tab[h].key[j & (POINTERS - 1)] = v4;
}

/* Bits k of *m3 / *m4: slot k of b agrees with v4 in its first three / all four bytes (valid
 * slot or not; the caller masks). */
static inline void key_hits(const bucket *b, uint32_t v4, unsigned *m3, unsigned *m4)
{
#if defined(__SSE2__)
    const __m128i want4 = _mm_set1_epi32((int)v4), want3 = _mm_set1_epi32((int)(v4 & 0xFFFFFF)),
                  low3 = _mm_set1_epi32(0xFFFFFF);
    unsigned r3 = 0, r4 = 0;
    for (int i = 0; i < POINTERS / 4; i++) {
        __m128i k = _mm_loadu_si128((const __m128i *)(const void *)(b->key + 4 * i));
        r4 |= (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, want4))) << (4 * i);
        r3 |= (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(k, low3), want3)))
              << (4 * i);
    }
    *m3 = r3;
    *m4 = r4;
#else
    unsigned r3 = 0, r4 = 0;
    for (unsigned k = 0; k < POINTERS; k++) {
        r3 |= (unsigned)(((b->key[k] ^ v4) & 0xFFFFFF) == 0) << k;
        r4 |= (unsigned)(b->key[k] == v4) << k;
    }
    *m3 = r3;
    *m4 = r4;
#endif
}

/* How far a and b agree, knowing their first 4 bytes do: at most rem (>= 4). Byte by byte:
 * 4- and 8-byte reads with a count of trailing zeros measured slower on every payload here. */
static inline size_t extend(const unsigned char *a, const unsigned char *b, size_t rem)
{
    size_t m = 4;
    while (m < rem && a[m] == b[m])
        m++;
    return m;
}

/* The level-3 core over B[start .. start+n): returns the body length (>= 9), or 0 when it gives
 * up (the caller then stores the chunk). Positions in the hash table are absolute in B.
 * At each position the reference takes, among the valid slots of the position's hash value whose
 * first three bytes match and that lie at least 3 bytes back, the longest match (at most 255
 * bytes and ending 4 bytes before the chunk's end), the latest position on ties; a match more
 * than 131070 bytes back becomes a literal. */
static size_t compress_core(const unsigned char *B, size_t start, size_t n, unsigned char *out,
                            djct_qlz_cstate *st)
{
    const unsigned char *in = B + start;
    size_t p = 0, o = 4, cwpos = 0;
    uint32_t acc = 1u << 31;
    if (n >= 11) {
        while (p <= n - 11) {
            if (acc & 1) {
                if (p > n / 2 && o > p - (p >> 5))
                    return 0;
                wr32(out + cwpos, (acc >> 1) | (1u << 31));
                cwpos = o;
                o += 4;
                acc = 1u << 31;
            }
            size_t rem = n - 4 - p;
            if (rem > 255)
                rem = 255;
            const unsigned char *cur = in + p;
            uint32_t P = (uint32_t)(start + p), v4 = rd32(cur), h = hash_key(v4 & 0xFFFFFF);
            unsigned c = st->cnt[h], m3, m4;
            bucket *bk = &st->tab[h];
            key_hits(bk, v4, &m3, &m4);
            /* Positions only grow between table resets, so slot order is age order. Rotated so
             * that bit i is slot (c + i) mod POINTERS, the highest set bit is the latest position:
             * visiting candidates from there, a later one wins only by being strictly longer,
             * which the byte at the best length so far can rule out without measuring it. */
            unsigned r = c & (POINTERS - 1), full = (1u << POINTERS) - 1;
            unsigned valid = c >= POINTERS ? full : (1u << c) - 1;
            m4 &= valid;
            m4 = ((m4 >> r) | (m4 << (POINTERS - r))) & full;
            size_t best_len = 0;
            uint32_t best_pos = 0;
            while (m4) { /* four bytes agree: measure how far */
                unsigned i = 31 - (unsigned)__builtin_clz(m4);
                m4 ^= 1u << i;
                uint32_t q = bk->pos[(r + i) & (POINTERS - 1)];
                if (q + 2 >= P || (best_len && B[q + best_len] != cur[best_len]))
                    continue;
                size_t m = extend(B + q, cur, rem);
                if (m > best_len) {
                    best_pos = q;
                    best_len = m;
                    if (m == rem)
                        break;
                }
            }
            if (!best_len) { /* three bytes agree at most: the latest such position */
                m3 &= valid;
                m3 = ((m3 >> r) | (m3 << (POINTERS - r))) & full;
                while (m3) {
                    unsigned i = 31 - (unsigned)__builtin_clz(m3);
                    m3 ^= 1u << i;
                    uint32_t q = bk->pos[(r + i) & (POINTERS - 1)];
                    if (q + 2 < P) {
                        best_pos = q;
                        best_len = 3;
                        break;
                    }
                }
            }
            bk->pos[c & (POINTERS - 1)] = P;
            bk->key[c & (POINTERS - 1)] = v4;
            st->cnt[h] = (uint8_t)(c + 1);
            if (best_len >= 3 && P - best_pos < 131071) {
                uint32_t vu = v4;
                for (size_t u = 1; u < best_len; u++) {
                    vu = vu >> 8 | (uint32_t)cur[u + 3] << 24;
                    insert(st, vu, P + (uint32_t)u);
                }
                acc = (acc >> 1) | (1u << 31);
                uint32_t off = P - best_pos, len = (uint32_t)best_len;
                if (len == 3 && off <= 63) {
                    out[o++] = (unsigned char)(off << 2);
                } else if (len == 3 && off <= 16383) {
                    uint32_t f = (off << 2) | 1;
                    out[o++] = (unsigned char)f;
                    out[o++] = (unsigned char)(f >> 8);
                } else if (len <= 18 && off <= 1023) {
                    uint32_t f = ((len - 3) << 2) | (off << 6) | 2;
                    out[o++] = (unsigned char)f;
                    out[o++] = (unsigned char)(f >> 8);
                } else if (len <= 33) {
                    uint32_t f = ((len - 2) << 2) | (off << 7) | 3;
                    out[o++] = (unsigned char)f;
                    out[o++] = (unsigned char)(f >> 8);
                    out[o++] = (unsigned char)(f >> 16);
                } else {
                    uint32_t f = ((len - 3) << 7) | (off << 15) | 3;
                    wr32(out + o, f);
                    o += 4;
                }
                p += best_len;
            } else {
                out[o++] = *cur;
                p++;
                acc >>= 1;
            }
        }
    }
    while (p < n) { /* tail: literals only, no hash insertion at level 3 */
        if (acc & 1) {
            wr32(out + cwpos, (acc >> 1) | (1u << 31));
            cwpos = o;
            o += 4;
            acc = 1u << 31;
        }
        out[o++] = in[p++];
        acc >>= 1;
    }
    while (!(acc & 1))
        acc >>= 1;
    wr32(out + cwpos, (acc >> 1) | (1u << 31));
    if (o < 9) { /* the reference leaves these uninitialised; zeros keep output deterministic */
        memset(out + o, 0, 9 - o);
        o = 9;
    }
    return o;
}

static void put_header(unsigned char *dst, size_t base, int compressed, size_t csize, size_t n)
{
    dst[0] = (unsigned char)(0x6C | (base == 9 ? 2 : 0) | (compressed ? 1 : 0));
    if (base == 9) {
        wr32(dst + 1, (uint32_t)csize);
        wr32(dst + 5, (uint32_t)n);
    } else {
        dst[1] = (unsigned char)csize;
        dst[2] = (unsigned char)n;
    }
}

int djct_qlz_compress(djct_qlz_cstate *st, const void *src, size_t n, void *dst, size_t dst_cap,
                      size_t *out_len)
{
    DJCT_CHECK_ARG(st);
    DJCT_CHECK_ARG(src);
    DJCT_CHECK_ARG(dst);
    DJCT_CHECK_ARG(out_len);
    if (n == 0 || n > DJCT_QLZ_MAX_CHUNK)
        return djct_error_set(DJCT_EINVAL, "qlz_compress: chunk of %zu bytes outside 1..%zu", n,
                              (size_t)DJCT_QLZ_MAX_CHUNK);
    if (dst_cap < DJCT_QLZ_BOUND(n))
        return djct_error_set(DJCT_EINVAL, "qlz_compress: output buffer of %zu bytes < DJCT_QLZ_BOUND(%zu) = %zu",
                              dst_cap, n, (size_t)DJCT_QLZ_BOUND(n));
    unsigned char *d = dst;
    size_t base = n < 216 ? 3 : 9, body;
    int compressed = 1;
    if (st->counter + n - 1 >= BUFSZ) {
        memset(st->cnt, 0, sizeof(st->cnt));
        body = compress_core(src, 0, n, d + base, st);
        memset(st->cnt, 0, sizeof(st->cnt));
        if (!body) {
            memcpy(d + base, src, n);
            body = n;
            compressed = 0;
        }
        st->counter = 0;
    } else {
        memcpy(st->buf + st->counter, src, n);
        body = compress_core(st->buf, st->counter, n, d + base, st);
        if (!body) {
            memcpy(d + base, src, n);
            body = n;
            compressed = 0;
            memset(st->cnt, 0, sizeof(st->cnt));
        }
        st->counter += n;
    }
    put_header(d, base, compressed, base + body, n);
    *out_len = base + body;
    return 0;
}

int djct_qlz_store(const void *src, size_t n, void *dst, size_t dst_cap, int small_header, size_t *out_len)
{
    DJCT_CHECK_ARG(src);
    DJCT_CHECK_ARG(dst);
    DJCT_CHECK_ARG(out_len);
    size_t base = (small_header && n <= 252) ? 3 : 9;
    if (n == 0 || n > (size_t)0xFFFFFFFFu - 9)
        return djct_error_set(DJCT_EINVAL, "qlz_store: chunk of %zu bytes outside 1..%zu", n,
                              (size_t)0xFFFFFFFFu - 9);
    if (dst_cap < n + base)
        return djct_error_set(DJCT_EINVAL, "qlz_store: output buffer of %zu bytes < %zu", dst_cap, n + base);
    put_header(dst, base, 0, n + base, n);
    memcpy((unsigned char *)dst + base, src, n);
    *out_len = n + base;
    return 0;
}
