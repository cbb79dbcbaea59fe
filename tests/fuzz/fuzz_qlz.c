/* libFuzzer target for the QuickLZ codec against the plain models of tests/qlz_model.h. The
 * first input byte picks what the rest is fed to:
 *   even: a sequence of raw chunks, each decoded through one djct state and one model state;
 *         both must accept or both reject it, and accepted chunks must decode to the same bytes
 *         (the fast loop of src/qlz.c must agree with a decoder that checks every byte); the same
 *         chunks decoded back to back into one block without a state (djct_qlz_decompress_at)
 *         must give the same verdicts and bytes;
 *   odd:  data, cut into chunks of 1..4096 bytes (sizes from the second byte) and compressed
 *         through one djct state and one model state; every chunk must come out byte for byte
 *         alike and decode back to the data.
 * Any difference, crash, leak, hang or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"
#include "qlz_int.h"
#include "qlz_model.h"

/* states live across inputs (1-2 MB each) and are reset for every input */
static djct_qlz_dstate *ds;
static djct_qlz_cstate *cs;

static void decode_chunks(const uint8_t *p, size_t n)
{
    static model_dstate ms;
    static uint8_t a[1 << 20], b[1 << 20], blk[1 << 21];
    djct_qlz_dstate_reset(ds);
    ms.counter = 0;
    size_t pos = 0, at = 0, counter = 0;
    while (pos < n) {
        size_t csz, dsz, la = 0, lb = 0, lc = 0, eo = 0;
        int comp;
        if (djct_qlz_header(&csz, &dsz, &comp, p + pos, n - pos) || csz > n - pos)
            break;
        if (dsz > sizeof(blk) - at) /* the block is full: the in-place decoder would say so first */
            break;
        int ra = djct_qlz_decompress(ds, p + pos, csz, a, sizeof(a), &la);
        int rb = model_decompress(&ms, p + pos, csz, b, sizeof(b), &lb);
        int rc = djct_qlz_decompress_at(&counter, p + pos, csz, blk, at, at + sizeof(a), &lc, &eo);
        if ((ra == 0) != (rb == 0) || (ra == 0 && (la != lb || memcmp(a, b, la))))
            abort();
        if (rc != ra || (ra == 0 && (lc != la || memcmp(blk + at, a, la))))
            abort();
        if (ra)
            break;
        pos += csz;
        at += lc;
    }
}

static void compress_chunks(const uint8_t *p, size_t n, unsigned sizes)
{
    static model_state ms;
    static uint8_t a[DJCT_QLZ_BOUND(4096)], b[DJCT_QLZ_BOUND(4096)], back[4096];
    djct_qlz_cstate_reset(cs);
    djct_qlz_dstate_reset(ds);
    ms.counter = 0;
    memset(ms.cnt, 0, sizeof(ms.cnt));
    size_t pos = 0, k = 0;
    while (pos < n) {
        /* chunk sizes cycle through 1..4096 driven by `sizes`: tiny ones, 11-byte edges, big ones */
        size_t len = 1 + ((sizes * 2654435761u >> (k++ % 20)) & 4095);
        if (len > n - pos)
            len = n - pos;
        size_t la = 0, lb = model_compress(&ms, p + pos, len, b), got = 0;
        if (djct_qlz_compress(cs, p + pos, len, a, sizeof(a), &la) || la != lb || memcmp(a, b, la))
            abort();
        if (djct_qlz_decompress(ds, a, la, back, sizeof(back), &got) || got != len || memcmp(back, p + pos, len))
            abort();
        pos += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ds && (djct_qlz_dstate_create(&ds) || djct_qlz_cstate_create(&cs)))
        abort();
    if (size < 2)
        return 0;
    if (data[0] % 2 == 0)
        decode_chunks(data + 1, size - 1);
    else
        compress_chunks(data + 2, size - 2, data[1]);
    return 0;
}
