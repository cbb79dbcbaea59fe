/* QuickLZ level 3 (src/qlz.c): the worked examples of djcdata.md sections 4 and 9.4 byte for
 * byte, round trips over many sizes and data kinds (direct and streaming modes, cross-chunk
 * references), hand-built streams for every match encoding, and corrupt chunks. */
#include "harness.h"

#include <stdint.h>

#define DJCT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const unsigned char RS_CHUNK[] = {0x6d, 0x17, 0x18, 0x28, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xca, 0x00,
                                         0x01, 0x12, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
static const unsigned char DATA_CHUNK[] = {0x6d, 0x1b, 0x18, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x80, 0x3f,
                                           0x00, 0x00, 0x00, 0x40, 0x0c, 0x10, 0x80, 0x40, 0x00, 0x00, 0xa0,
                                           0x40, 0x00, 0x00, 0xc0, 0x40};

static uint64_t rng = 88172645463325252ull;
static uint32_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* data kinds: 0 random bytes, 1 smooth quantised floats, 2 int64 row splits, 3 zeros,
 * 4 small alphabet text, 5 random floats */
static void fill(unsigned char *b, size_t n, int kind)
{
    if (kind == 0 || kind == 5) {
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)xr();
        if (kind == 5)
            for (size_t i = 3; i < n; i += 4)
                b[i] = 0x3f + (b[i] & 1); /* exponent byte of floats in [0.5, 4) */
    } else if (kind == 1) {
        for (size_t i = 0; i + 4 <= n; i += 4) {
            float f = (float)((int)((i / 4) % 97) - 40) * 0.25f;
            memcpy(b + i, &f, 4);
        }
        for (size_t i = n & ~(size_t)3; i < n; i++)
            b[i] = 7;
    } else if (kind == 2) {
        int64_t v = 0;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(b + i, &v, 8);
            v += xr() % 300;
        }
        for (size_t i = n & ~(size_t)7; i < n; i++)
            b[i] = 1;
    } else if (kind == 3) {
        memset(b, 0, n);
    } else {
        for (size_t i = 0; i < n; i++)
            b[i] = "abcab cabbage "[xr() % 14];
    }
}

static int roundtrip(size_t n, int kind)
{
    unsigned char *in = malloc(n + 1), *c = malloc(DJCT_QLZ_BOUND(n)), *out = malloc(n + 1);
    djct_qlz_cstate *cs = NULL;
    djct_qlz_dstate *ds = NULL;
    int ok = 0;
    size_t clen = 0, dlen = 0;
    fill(in, n, kind);
    if (djct_qlz_cstate_create(&cs) || djct_qlz_dstate_create(&ds))
        goto done;
    if (djct_qlz_compress(cs, in, n, c, DJCT_QLZ_BOUND(n), &clen))
        goto done;
    if (djct_qlz_decompress(ds, c, clen, out, n, &dlen))
        goto done;
    ok = dlen == n && memcmp(in, out, n) == 0;
done:
    if (!ok)
        fprintf(stderr, "  roundtrip n=%zu kind=%d: %s\n", n, kind, djct_last_error());
    djct_qlz_cstate_free(cs);
    djct_qlz_dstate_free(ds);
    free(in);
    free(c);
    free(out);
    return ok;
}

static void test_worked_examples(void)
{
    djct_qlz_cstate *cs;
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_cstate_create(&cs));
    CHECK_OK(djct_qlz_dstate_create(&ds));
    int64_t rs[3] = {0, 1, 3};
    float v[6] = {1, 2, 3, 4, 5, 6};
    unsigned char c[128], out[64];
    size_t clen = 0, dlen = 0;
    CHECK_OK(djct_qlz_compress(cs, rs, 24, c, sizeof(c), &clen));
    CHECK(clen == sizeof(RS_CHUNK) && memcmp(c, RS_CHUNK, clen) == 0);
    djct_qlz_cstate_reset(cs);
    CHECK_OK(djct_qlz_compress(cs, v, 24, c, sizeof(c), &clen));
    CHECK(clen == sizeof(DATA_CHUNK) && memcmp(c, DATA_CHUNK, clen) == 0);

    CHECK_OK(djct_qlz_decompress(ds, RS_CHUNK, sizeof(RS_CHUNK), out, sizeof(out), &dlen));
    CHECK(dlen == 24 && memcmp(out, rs, 24) == 0);
    djct_qlz_dstate_reset(ds);
    CHECK_OK(djct_qlz_decompress(ds, DATA_CHUNK, sizeof(DATA_CHUNK), out, sizeof(out), &dlen));
    CHECK(dlen == 24 && memcmp(out, v, 24) == 0);

    size_t cs_, dsz;
    int comp;
    CHECK_OK(djct_qlz_header(&cs_, &dsz, &comp, RS_CHUNK, sizeof(RS_CHUNK)));
    CHECK(cs_ == 23 && dsz == 24 && comp == 1);
    djct_qlz_cstate_free(cs);
    djct_qlz_dstate_free(ds);
}

static void test_roundtrips(void)
{
    static const size_t sizes[] = {1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 20, 31, 32, 33, 62, 63, 64, 100, 215,
                                   216, 217, 252, 253, 255, 256, 257, 1000, 4096, 65536, 100003, 999999,
                                   1000000, 1000001, 2500000};
    int bad = 0, total = 0;
    for (size_t i = 0; i < DJCT_ARRAY_LEN(sizes); i++)
        for (int kind = 0; kind < 6; kind++) {
            total++;
            if (!roundtrip(sizes[i], kind))
                bad++;
        }
    CHECK(bad == 0);
    printf("qlz roundtrips: %d of %d ok\n", total - bad, total);
}

/* several chunks through one state, as a multi-chunk qblock: streaming references across chunks,
 * a stored chunk in the middle, and a direct-mode chunk when the buffer fills */
static void test_streaming(void)
{
    djct_qlz_cstate *cs;
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_cstate_create(&cs));
    CHECK_OK(djct_qlz_dstate_create(&ds));
    size_t sizes[] = {5000, 5000, 300, 100, 400000, 500000, 200000, 7, 90000, 5000};
    int kinds[] = {4, 4, 0, 1, 1, 2, 4, 3, 0, 4};
    size_t tot = 0;
    for (size_t i = 0; i < DJCT_ARRAY_LEN(sizes); i++)
        tot += sizes[i];
    unsigned char *in = malloc(tot), *c = malloc(DJCT_QLZ_BOUND(tot)), *out = malloc(tot);
    size_t pos = 0, cpos = 0;
    size_t clens[16];
    harness_rows chunks = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < DJCT_ARRAY_LEN(sizes); i++) {
        fill(in + pos, sizes[i], kinds[i]);
        if (i == 1) /* chunk 1 repeats chunk 0: it can only compress by referencing it */
            memcpy(in + pos, in, sizes[i]);
        ROW_OK(chunks, djct_qlz_compress(cs, in + pos, sizes[i], c + cpos, DJCT_QLZ_BOUND(sizes[i]), &clens[i]),
               "chunk %zu", i);
        pos += sizes[i];
        cpos += clens[i];
    }
    CHECK_ROWS(chunks);
    CHECK(clens[1] < clens[0] / 4); /* cross-chunk references were used */
    CHECK(c[clens[0] + clens[1]] == 0x6e); /* random bytes: stored chunk with a 9-byte header */
    size_t ipos = 0, opos = 0, dlen;
    int ok = 1;
    for (size_t i = 0; i < DJCT_ARRAY_LEN(sizes); i++) {
        int rc = djct_qlz_decompress(ds, c + ipos, clens[i], out + opos, tot - opos, &dlen);
        if (rc || dlen != sizes[i]) {
            ok = 0;
            fprintf(stderr, "  chunk %zu: %s\n", i, djct_last_error());
            break;
        }
        ipos += clens[i];
        opos += dlen;
    }
    CHECK(ok && opos == tot && memcmp(in, out, tot) == 0);
    /* the same chunk 1 decoded with a fresh state lacks its history: rejected, never read */
    djct_qlz_dstate_reset(ds);
    CHECK_ERR(djct_qlz_decompress(ds, c + clens[0], clens[1], out, tot, &dlen), DJCT_EINVAL,
              "reaches before the start of the stream");
    free(in);
    free(c);
    free(out);
    djct_qlz_cstate_free(cs);
    djct_qlz_dstate_free(ds);
}

/* hand-built streams with every match encoding, decoded and compared with the intended bytes */
static void test_encodings(void)
{
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_dstate_create(&ds));
    /* encodings 4 and 5 from the compressor on suitable data, checked by inspecting the body */
    djct_qlz_cstate *cs;
    CHECK_OK(djct_qlz_cstate_create(&cs));
    unsigned char in[3000], c[4000], out[3000];
    fill(in, sizeof(in), 4);
    for (int i = 0; i < 400; i++)
        in[i] = (unsigned char)xr();
    memcpy(in + 2000, in + 100, 300); /* offset 1900 (> 1023), length 255 -> encoding 5 */
    memcpy(in + 1500, in + 50, 20);   /* offset 1450, length 20 -> encoding 4 */
    memcpy(in + 1200, in + 1150, 12); /* offset 50, length 12 -> encoding 3 */
    memcpy(in + 1100, in + 1000, 3);  /* offset 100, length 3 -> encoding 2 */
    memcpy(in + 900, in + 880, 3);    /* offset 20, length 3 -> encoding 1 */
    size_t clen, dlen;
    CHECK_OK(djct_qlz_compress(cs, in, sizeof(in), c, sizeof(c), &clen));
    CHECK(c[0] == 0x6f); /* compressed, 9-byte header */
    CHECK_OK(djct_qlz_decompress(ds, c, clen, out, sizeof(out), &dlen));
    CHECK(dlen == sizeof(in) && memcmp(in, out, dlen) == 0);
    djct_qlz_cstate_free(cs);

    /* an overlapping match (offset 3, len 9) in a hand-made chunk: "abc" then copy */
    unsigned char h[] = {0x6d, 0, 23, 0x08, 0, 0, 0x80, 'a', 'b', 'c', 0x1a, 0x00, 'x', 'y', 'z', 'w', 'v', 'u', 't', 's', 'r', 'q', 'p'};
    /* item 3 = match: encoding 3, offset 0 ... built below */
    uint32_t f = (3u << 6) | ((9u - 3) << 2) | 2; /* offset 3, len 9 */
    h[10] = (unsigned char)f;
    h[11] = (unsigned char)(f >> 8);
    h[1] = sizeof(h);
    h[2] = 3 + 9 + 11; /* abc + 9 copied + 11 literals */
    djct_qlz_dstate_reset(ds);
    CHECK_OK(djct_qlz_decompress(ds, h, sizeof(h), out, sizeof(out), &dlen));
    CHECK(dlen == 23 && memcmp(out, "abcabcabcabcxyzwvutsrqp", 23) == 0);
    djct_qlz_dstate_free(ds);
}

static void test_corrupt(void)
{
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_dstate_create(&ds));
    unsigned char b[64], out[64];
    size_t dlen;
    memcpy(b, RS_CHUNK, sizeof(RS_CHUNK));
    b[0] = 0x4d; /* other QuickLZ settings */
    CHECK_ERR(djct_qlz_decompress(ds, b, sizeof(RS_CHUNK), out, 64, &dlen), DJCT_EINVAL, "flag byte 0x4d");
    CHECK_ERR(djct_qlz_decompress(ds, RS_CHUNK, 22, out, 64, &dlen), DJCT_EINVAL, "header says 23");
    CHECK_ERR(djct_qlz_decompress(ds, RS_CHUNK, 23, out, 10, &dlen), DJCT_EINVAL, "decompresses to 24");
    CHECK_ERR(djct_qlz_decompress(ds, RS_CHUNK, 2, out, 64, &dlen), DJCT_EINVAL, "header needs 3");
    memcpy(b, RS_CHUNK, sizeof(RS_CHUNK));
    b[10] = 0xca + 0x40 * 0; /* keep */
    b[11] = 0x01;            /* offset (0x1ca >> 6) = 7 > history 3 */
    djct_qlz_dstate_reset(ds);
    CHECK_ERR(djct_qlz_decompress(ds, b, sizeof(RS_CHUNK), out, 64, &dlen), DJCT_EINVAL, "byte 10 of the chunk");
    memcpy(b, RS_CHUNK, sizeof(RS_CHUNK));
    b[2] = 30; /* claims more output than the body gives */
    djct_qlz_dstate_reset(ds);
    CHECK_ERR(djct_qlz_decompress(ds, b, sizeof(RS_CHUNK), out, 64, &dlen), DJCT_EINVAL, "past the end");
    /* stored chunk whose sizes disagree */
    unsigned char st[] = {0x6c, 6, 4, 1, 2, 3};
    CHECK_ERR(djct_qlz_decompress(ds, st, sizeof(st), out, 64, &dlen), DJCT_EINVAL, "stored chunk");
    /* every single-bit flip of a valid chunk: an error with a message, or output within the
     * buffer; never a crash (ASan in the SAN build sees any overrun) */
    harness_rows flips = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < sizeof(DATA_CHUNK); i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, DATA_CHUNK, sizeof(DATA_CHUNK));
            b[i] ^= (unsigned char)(1 << bit);
            djct_qlz_dstate_reset(ds);
            dlen = 12345;
            int rc = djct_qlz_decompress(ds, b, sizeof(DATA_CHUNK), out, 64, &dlen);
            ROW(flips, rc == 0 ? dlen <= 64 : rc < 0 && djct_last_error()[0] != '\0',
                "byte %zu bit %d: rc %d, %zu bytes out", i, bit, rc, dlen);
        }
    CHECK_ROWS(flips);
    /* stored chunks with both headers */
    unsigned char s3[300], s9[300];
    size_t l3, l9;
    CHECK_OK(djct_qlz_store("hello", 5, s3, sizeof(s3), 1, &l3));
    CHECK(l3 == 8 && s3[0] == 0x6c && s3[1] == 8 && s3[2] == 5);
    CHECK_OK(djct_qlz_store("hello", 5, s9, sizeof(s9), 0, &l9));
    CHECK(l9 == 14 && s9[0] == 0x6e && s9[1] == 14 && s9[5] == 5);
    djct_qlz_dstate_reset(ds);
    CHECK_OK(djct_qlz_decompress(ds, s3, l3, out, 64, &dlen));
    CHECK(dlen == 5 && !memcmp(out, "hello", 5));
    CHECK_OK(djct_qlz_decompress(ds, s9, l9, out, 64, &dlen));
    CHECK(dlen == 5 && !memcmp(out, "hello", 5));
    djct_qlz_dstate_free(ds);
}

int main(void)
{
    test_worked_examples();
    test_roundtrips();
    test_streaming();
    test_encodings();
    test_corrupt();
    return harness_report();
}
