/* QuickLZ level 3 (src/qlz.c): the worked examples of djcdata.md sections 4 and 9.4 byte for
 * byte, the benchmark payloads against hashes of the reference compressor's output, round trips
 * over many sizes and data kinds (direct and streaming modes, cross-chunk references),
 * hand-built streams for every match encoding, random valid streams written item by item, and
 * corrupt chunks. */
#include "harness.h"

#include <stdint.h>

#include "../bench/qlz_payloads.h"
#include "qlz_int.h"
#include "qlz_model.h"

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

/* The three payloads of bench/qlz_payloads.h (2,000,000 bytes each, cut into 400,000-byte
 * chunks through one state: streaming chunks with history, a direct chunk when the buffer is
 * full, streaming again) compress to exactly the bytes of the reference qlz_compress (quicklz.c
 * 1.5.0, level 3, streaming buffer 1,000,000; not part of djct). The hashes are FNV-1a of the
 * concatenated chunks as the reference wrote them; docs/performance.md shows how to build the
 * reference, and `qlz_bench --bytes 2000000 --chunk 400000 --repeats 1 --no-file --reference LIB`
 * prints them after checking that both compressors agree. The chunks decode back. */
static void test_reference_payloads(void)
{
    static const struct {
        int kind;
        uint64_t fnv;
    } want[] = {{QLZP_SMOOTH, 0x3a10a2141fc3fd50ull}, {QLZP_HITS, 0xde74efaca6a36ba6ull},
                {QLZP_ROWSPLITS, 0x47ac3fd287e98909ull}};
    const size_t n = 2000000, chunk = 400000;
    unsigned char *in = malloc(n), *c = malloc(n + n / 8 + 64 * (n / chunk + 1)), *out = malloc(n);
    djct_qlz_cstate *cs;
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_cstate_create(&cs));
    CHECK_OK(djct_qlz_dstate_create(&ds));
    int bad = -1;
    for (size_t k = 0; k < DJCT_ARRAY_LEN(want) && bad < 0; k++) {
        qlzp_fill(in, n, want[k].kind);
        djct_qlz_cstate_reset(cs);
        djct_qlz_dstate_reset(ds);
        size_t clen = 0, dlen = 0;
        int ok = 1;
        for (size_t i = 0; i < n && ok; i += chunk) {
            size_t got;
            ok = djct_qlz_compress(cs, in + i, chunk, c + clen, DJCT_QLZ_BOUND(chunk), &got) == 0;
            clen += got;
        }
        for (size_t i = 0, o = 0; i < clen && ok; o += dlen) {
            size_t cl, dl;
            int comp;
            ok = djct_qlz_header(&cl, &dl, &comp, c + i, clen - i) == 0 &&
                 djct_qlz_decompress(ds, c + i, cl, out + o, n - o, &dlen) == 0;
            i += cl;
        }
        if (!ok || qlzp_fnv1a(c, clen, QLZP_FNV_SEED) != want[k].fnv || memcmp(in, out, n)) {
            bad = (int)k;
            fprintf(stderr, "  payload %s: %s, FNV-1a %016llx (want %016llx)\n", QLZP_NAME[want[k].kind],
                    ok ? "compressed" : djct_last_error(), (unsigned long long)qlzp_fnv1a(c, clen, QLZP_FNV_SEED),
                    (unsigned long long)want[k].fnv);
        }
    }
    CHECK(bad < 0);
    djct_qlz_cstate_free(cs);
    djct_qlz_dstate_free(ds);
    free(in);
    free(c);
    free(out);
}

/* ---- the compressor against a plain model of section 9.5 ------------------------------------ */

/* Streams of chunks of every data kind and size class, through one djct state and one model
 * state: every chunk must come out byte for byte as the model writes it. */
static void test_compressor_model(void)
{
    model_state *ms = malloc(sizeof(*ms));
    djct_qlz_cstate *cs;
    CHECK_OK(djct_qlz_cstate_create(&cs));
    const size_t cap = 700000;
    unsigned char *in = malloc(cap), *a = malloc(DJCT_QLZ_BOUND(cap)), *b = malloc(DJCT_QLZ_BOUND(cap));
    int bad = 0, total = 0;
    for (int stream = 0; stream < 10 && !bad; stream++) {
        ms->counter = 0;
        memset(ms->cnt, 0, sizeof(ms->cnt));
        djct_qlz_cstate_reset(cs);
        for (int c = 0; c < 12 && !bad; c++) {
            size_t r = xr() % 10, n = r < 4 ? 1 + xr() % 300 : r < 8 ? 1 + xr() % 30000 : 100000 + xr() % 600000;
            int kind = (int)(xr() % 9);
            if (kind < 6)
                fill(in, n, kind);
            else
                qlzp_fill(in, n, kind - 6); /* smooth, hits, row splits */
            size_t la = 0, lb = model_compress(ms, in, n, b);
            total++;
            if (djct_qlz_compress(cs, in, n, a, DJCT_QLZ_BOUND(n), &la) || la != lb || memcmp(a, b, la)) {
                bad = 1;
                fprintf(stderr, "  stream %d chunk %d (%zu bytes of kind %d): %zu bytes, the model wrote %zu\n", stream,
                        c, n, kind, la, lb);
            }
        }
    }
    CHECK(bad == 0);
    printf("qlz compressor vs model: %d chunks\n", total);
    djct_qlz_cstate_free(cs);
    free(ms);
    free(in);
    free(a);
    free(b);
}

/* ---- random valid streams, written item by item ---------------------------------------------- */

typedef struct {
    unsigned char *b; /* body */
    size_t n, cwpos;
    uint32_t cw;
    unsigned items;
    size_t *cws, ncw; /* where the control words went (cws may be NULL) */
} body_writer;

static void bw_item(body_writer *w, int match)
{
    if (w->items % 31 == 0) { /* a control word precedes every 31 items */
        if (w->items)
            memcpy(w->b + w->cwpos, &(uint32_t){w->cw | 1u << 31}, 4);
        w->cwpos = w->n;
        if (w->cws)
            w->cws[w->ncw++] = w->n;
        w->n += 4;
        w->cw = 0;
    }
    if (match)
        w->cw |= 1u << (w->items % 31);
    w->items++;
}

static void bw_finish(body_writer *w)
{
    memcpy(w->b + w->cwpos, &(uint32_t){w->cw | 1u << 31}, 4);
    while (w->n < 9) /* the reference's minimum body */
        w->b[w->n++] = 0;
}

/* A body that decodes to out[0..D), drawing literals and matches of every encoding at random
 * (style 0: mixed, 1: mostly short offsets and overlaps, 2: long matches, 3: literal runs);
 * out[-hist..0) is the history. Matches stop 11 bytes before the end and end 4 bytes before it,
 * as the compressor's do. Returns the body length. */
static size_t write_stream_cw(unsigned char *out, size_t D, size_t hist, unsigned char *body, int style, size_t *cws,
                              size_t *ncw)
{
    static const uint32_t maxoff[5] = {63, 16383, 1023, 131071, 131071};
    static const uint32_t minlen[5] = {3, 3, 3, 3, 3}, maxlen[5] = {3, 3, 18, 33, 258};
    body_writer w = {body, 0, 0, 0, 0, cws, 0};
    size_t d = 0;
    while (d + 11 <= D) {
        int lit = (int)(xr() % 8) < (style == 3 ? 6 : 2);
        unsigned kind = xr() % 5;
        uint32_t avail = d + hist > 131071 ? 131071 : (uint32_t)(d + hist);
        uint32_t hi = maxoff[kind] < avail ? maxoff[kind] : avail;
        if (lit || hi < 3) {
            bw_item(&w, 0);
            out[d] = (unsigned char)(style == 1 ? xr() % 4 : xr());
            w.b[w.n++] = out[d++];
            continue;
        }
        uint32_t off = style == 1 && hi > 20 ? 3 + xr() % 18 : 3 + xr() % (hi - 2);
        uint32_t lmax = maxlen[kind] < D - 4 - d ? maxlen[kind] : (uint32_t)(D - 4 - d);
        if (lmax < minlen[kind]) {
            bw_item(&w, 0);
            out[d] = (unsigned char)xr();
            w.b[w.n++] = out[d++];
            continue;
        }
        uint32_t len = style == 2 ? lmax - xr() % (lmax - minlen[kind] + 1) / 4
                                  : minlen[kind] + xr() % (lmax - minlen[kind] + 1);
        uint32_t f;
        size_t nb;
        if (kind == 0) {
            f = off << 2; nb = 1;
        } else if (kind == 1) {
            f = off << 2 | 1; nb = 2;
        } else if (kind == 2) {
            f = off << 6 | (len - 3) << 2 | 2; nb = 2;
        } else if (kind == 3) {
            f = off << 7 | (len - 2) << 2 | 3; nb = 3;
        } else {
            f = off << 15 | (len - 3) << 7 | 3; nb = 4;
        }
        bw_item(&w, 1);
        for (size_t i = 0; i < nb; i++)
            w.b[w.n++] = (unsigned char)(f >> (8 * i));
        for (uint32_t i = 0; i < len; i++, d++) /* forward, byte by byte: overlaps repeat */
            out[d] = out[d - off];
    }
    while (d < D) {
        bw_item(&w, 0);
        out[d] = (unsigned char)xr();
        w.b[w.n++] = out[d++];
    }
    bw_finish(&w);
    if (ncw)
        *ncw = w.ncw;
    return w.n;
}

static size_t write_stream(unsigned char *out, size_t D, size_t hist, unsigned char *body, int style)
{
    return write_stream_cw(out, D, hist, body, style, NULL, NULL);
}

/* Streams of every size class through one decompressor state, as the chunks of one block:
 * streaming chunks whose matches reach into earlier chunks, and direct chunks once the
 * 1,000,000-byte buffer is full. Each chunk must decode to what its writer meant. */
static void test_random_streams(void)
{
    const size_t cap = 1200000;
    unsigned char *want = malloc(cap), *got = malloc(cap), *body = malloc(2 * cap), *chunk = malloc(2 * cap + 9);
    unsigned char *blk = malloc(cap); /* the same chunks decoded in place, without a state */
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_dstate_create(&ds));
    int bad = 0, total = 0, bad_at = 0;
    for (int block = 0; block < 12 && !bad; block++) {
        size_t counter = 0, pos = 0; /* the writer's model of the stream buffer (section 9.2) */
        size_t at_counter = 0;
        djct_qlz_dstate_reset(ds);
        for (int c = 0; c < 40 && !bad; c++) {
            size_t r = xr() % 100, D = r < 40 ? 1 + xr() % 200 : r < 80 ? 1 + xr() % 5000 : r < 95 ? xr() % 100000 + 1
                                                                                                   : 300000 + xr() % 400000;
            if (pos + D > cap) /* start the buffer over, as a new block would */
                break;
            int direct = counter + D - 1 >= DJCT_QLZ_STREAMING_BUFFER;
            size_t hist = direct ? 0 : counter;
            size_t blen = write_stream(want + pos, D, hist, body, (block + c) % 4);
            chunk[0] = 0x6f;
            memcpy(chunk + 1, &(uint32_t){(uint32_t)(blen + 9)}, 4);
            memcpy(chunk + 5, &(uint32_t){(uint32_t)D}, 4);
            memcpy(chunk + 9, body, blen);
            size_t dlen = 0;
            total++;
            if (djct_qlz_decompress(ds, chunk, blen + 9, got + pos, cap - pos, &dlen) || dlen != D ||
                memcmp(got + pos, want + pos, D)) {
                bad = 1;
                fprintf(stderr, "  block %d chunk %d (%zu bytes, history %zu, style %d): %s\n", block, c, D, hist,
                        (block + c) % 4, djct_last_error());
            }
            size_t alen = 0, eo = 0;
            if (djct_qlz_decompress_at(&at_counter, chunk, blen + 9, blk, pos, cap, &alen, &eo) || alen != D ||
                memcmp(blk + pos, want + pos, D) || at_counter != (direct ? 0 : counter + D)) {
                bad_at = 1;
                fprintf(stderr, "  in place: block %d chunk %d: %s\n", block, c, djct_last_error());
            }
            counter = direct ? 0 : counter + D;
            pos += D;
        }
    }
    CHECK(bad == 0);
    CHECK(bad_at == 0);
    free(blk);
    printf("qlz random streams: %d chunks decoded\n", total);
    djct_qlz_dstate_free(ds);
    free(want);
    free(got);
    free(body);
    free(chunk);
}

/* A chunk of `lits` literals, one four-byte match code (offset off, length 5) and 300 literals;
 * the 9-byte header is included. Returns its length. */
static size_t one_match_chunk(unsigned char *chunk, size_t lits, uint32_t off)
{
    body_writer w = {chunk + 9, 0, 0, 0, 0, NULL, 0};
    for (size_t i = 0; i < lits + 1 + 300; i++) {
        bw_item(&w, i == lits);
        if (i != lits) {
            w.b[w.n++] = (unsigned char)i;
            continue;
        }
        uint32_t f = off << 15 | (5 - 3) << 7 | 3;
        memcpy(w.b + w.n, &f, 4);
        w.n += 4;
    }
    bw_finish(&w);
    chunk[0] = 0x6f;
    memcpy(chunk + 1, &(uint32_t){(uint32_t)(w.n + 9)}, 4);
    memcpy(chunk + 5, &(uint32_t){(uint32_t)(lits + 5 + 300)}, 4);
    return w.n + 9;
}

/* Offsets one byte beyond the history and below 3 are rejected wherever the match sits: at the
 * start of a chunk, in the middle of a long one, and after the history of earlier chunks. */
static void test_bad_offsets(void)
{
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_dstate_create(&ds));
    unsigned char chunk[4096], out[4096];
    size_t dlen, prev = 0, n;
    int ok = 1;
    static const size_t lits[] = {3, 40, 700};
    for (size_t i = 0; i < DJCT_ARRAY_LEN(lits); i++) {
        /* direct history: exactly the chunk's own output so far */
        djct_qlz_dstate_reset(ds);
        n = one_match_chunk(chunk, lits[i], (uint32_t)lits[i]);
        ok &= djct_qlz_decompress(ds, chunk, n, out, sizeof(out), &dlen) == 0 && out[lits[i]] == 0;
        djct_qlz_dstate_reset(ds);
        n = one_match_chunk(chunk, lits[i], (uint32_t)lits[i] + 1);
        ok &= djct_qlz_decompress(ds, chunk, n, out, sizeof(out), &dlen) == DJCT_EINVAL &&
              strstr(djct_last_error(), "reaches before the start") != NULL;
        djct_qlz_dstate_reset(ds);
        n = one_match_chunk(chunk, lits[i], 2);
        ok &= djct_qlz_decompress(ds, chunk, n, out, sizeof(out), &dlen) == DJCT_EINVAL &&
              strstr(djct_last_error(), "< 3") != NULL;
        /* streaming: a first chunk of 1000 bytes, then offsets up to its start and one beyond */
        djct_qlz_dstate_reset(ds);
        n = one_match_chunk(chunk, 695, 3);
        ok &= djct_qlz_decompress(ds, chunk, n, out, sizeof(out), &prev) == 0 && prev == 1000;
        n = one_match_chunk(chunk, lits[i], (uint32_t)(lits[i] + prev));
        ok &= djct_qlz_decompress(ds, chunk, n, out, sizeof(out), &dlen) == 0 && out[lits[i]] == 0;
        djct_qlz_dstate_reset(ds);
        n = one_match_chunk(chunk, 695, 3);
        ok &= djct_qlz_decompress(ds, chunk, n, out, sizeof(out), &prev) == 0;
        n = one_match_chunk(chunk, lits[i], (uint32_t)(lits[i] + prev + 1));
        ok &= djct_qlz_decompress(ds, chunk, n, out, sizeof(out), &dlen) == DJCT_EINVAL &&
              strstr(djct_last_error(), "reaches before the start") != NULL;
        if (!ok) {
            fprintf(stderr, "  match after %zu literals: %s\n", lits[i], djct_last_error());
            break;
        }
    }
    CHECK(ok);
    djct_qlz_dstate_free(ds);
}

/* Valid streams spoiled in the ways a damaged file would be (a flipped bit, a control word
 * without its end bit or replaced, a body cut short, a wrong output size), after a valid chunk
 * of history or without: djct must accept exactly what the model of tests/qlz_model.h accepts
 * and decode it to the same bytes, in finite time: a control word without its end bit inside the
 * fast loop's reach must be decoded as its items by the careful loop. */
static void test_spoiled_streams(void)
{
    const size_t cap = 40000;
    unsigned char *want = malloc(2 * cap), *body = malloc(2 * cap), *chunk = malloc(2 * cap + 9);
    unsigned char *a = malloc(2 * cap), *b = malloc(2 * cap), *blk = malloc(3 * cap);
    size_t cws[2000], ncw = 0;
    model_dstate *ms = malloc(sizeof(*ms));
    djct_qlz_dstate *ds;
    CHECK_OK(djct_qlz_dstate_create(&ds));
    int bad = 0, accepted = 0, total = 0;
    harness_rows in_place = HARNESS_ROWS_INIT;
    for (int i = 0; i < 600 && !bad; i++) {
        size_t D = 1 + xr() % (xr() % 4 ? 3000 : cap), hist = i % 2 ? 1000 : 0, la = 0, lb = 0;
        djct_qlz_dstate_reset(ds);
        ms->counter = 0;
        if (hist) { /* a first chunk of 1000 bytes gives history */
            size_t hl = write_stream(want, hist, 0, body, 0);
            chunk[0] = 0x6f;
            memcpy(chunk + 1, &(uint32_t){(uint32_t)(hl + 9)}, 4);
            memcpy(chunk + 5, &(uint32_t){(uint32_t)hist}, 4);
            memcpy(chunk + 9, body, hl);
            size_t c0 = 0, l0 = 0, e0 = 0;
            if (djct_qlz_decompress(ds, chunk, hl + 9, a, 2 * cap, &la) ||
                model_decompress(ms, chunk, hl + 9, b, 2 * cap, &lb) ||
                djct_qlz_decompress_at(&c0, chunk, hl + 9, blk, 0, 3 * cap, &l0, &e0)) {
                bad = 1;
                break;
            }
        }
        size_t blen = write_stream_cw(want + hist, D, hist, body, i % 4, cws, &ncw), dsize = D;
        switch (i % 6) {
        case 0: body[xr() % blen] ^= (unsigned char)(1u << (xr() % 8)); break;
        case 1: body[cws[xr() % ncw] + 3] &= 0x7F; break; /* the end bit */
        case 2: memcpy(body + cws[xr() % ncw], &(uint32_t){xr() % 3 ? xr() : xr() % 2}, 4); break;
        case 3: blen -= 1 + xr() % (blen < 8 ? blen - 1 : 8); break;
        case 4: dsize = D + 1 + xr() % 40; break;
        default: dsize = D > 1 ? D - 1 - xr() % (D - 1) : 1; break;
        }
        chunk[0] = 0x6f;
        memcpy(chunk + 1, &(uint32_t){(uint32_t)(blen + 9)}, 4);
        memcpy(chunk + 5, &(uint32_t){(uint32_t)dsize}, 4);
        memcpy(chunk + 9, body, blen);
        int ra = djct_qlz_decompress(ds, chunk, blen + 9, a, 2 * cap, &la);
        char ma[1024];
        snprintf(ma, sizeof(ma), "%s", djct_last_error());
        size_t counter = hist, lc = 0, eo = 0;
        int rc = djct_qlz_decompress_at(&counter, chunk, blen + 9, blk, hist, hist + 2 * cap, &lc, &eo);
        char mc[1200];
        snprintf(mc, sizeof(mc), "byte %zu of the chunk: %s", eo, djct_last_error());
        ROW(in_place, rc == ra && (ra ? !strcmp(ma, mc) : lc == la && !memcmp(blk + hist, a, la)),
            "stream %d: in place %d '%s', with a state %d '%s'", i, rc, rc ? mc : "", ra, ra ? ma : "");
        int rb = model_decompress(ms, chunk, blen + 9, b, 2 * cap, &lb);
        total++;
        accepted += ra == 0;
        if ((ra == 0) != (rb == 0) || (ra == 0 && (la != lb || memcmp(a, b, la)))) {
            bad = 1;
            fprintf(stderr, "  stream %d (%zu bytes, spoiled %d): djct %s, model %s\n", i, D, i % 6,
                    ra ? djct_last_error() : "accepts", rb ? "rejects" : "accepts");
        }
    }
    CHECK(bad == 0);
    CHECK_ROWS(in_place);
    free(blk);
    printf("qlz spoiled streams: %d of %d accepted, as by the model\n", accepted, total);
    djct_qlz_dstate_free(ds);
    free(ms);
    free(want);
    free(body);
    free(chunk);
    free(a);
    free(b);
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
    /* too little room: the offset names the decompressed-size field of either header */
    CHECK_ERR(djct_qlz_decompress(ds, s3, l3, out, 4, &dlen), DJCT_EINVAL, "byte 2 of the chunk: chunk decompresses to 5");
    CHECK_ERR(djct_qlz_decompress(ds, s9, l9, out, 4, &dlen), DJCT_EINVAL, "byte 5 of the chunk: chunk decompresses to 5");
    djct_qlz_dstate_free(ds);
}

int main(void)
{
    test_worked_examples();
    test_reference_payloads();
    test_roundtrips();
    test_compressor_model();
    test_streaming();
    test_encodings();
    test_random_streams();
    test_bad_offsets();
    test_spoiled_streams();
    test_corrupt();
    return harness_report();
}
