/* libFuzzer target for the djcdata parser and the QuickLZ decoder. The first input byte picks
 * what the rest is fed to: 0 a .djctd image (full read), 1 a .djcsa image, 2 .djctd metadata,
 * 3 .djcsa metadata, 4 a sequence of raw QuickLZ chunks through one streaming state, 5 a .djcdc
 * pickle. Any crash, leak, hang or sanitizer report is a bug; errors are expected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"

static void check_record(const djct_record *r)
{
    for (size_t i = 0; i < r->n_features; i++)
        if (djct_array_validate(&r->features[i]) != 0)
            abort(); /* the reader must only return valid arrays */
    for (size_t i = 0; i < r->n_truths; i++)
        if (djct_array_validate(&r->truths[i]) != 0)
            abort();
    for (size_t i = 0; i < r->n_weights; i++)
        if (djct_array_validate(&r->weights[i]) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 6;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (mode) {
    case 0: {
        djct_record r;
        if (djct_djcdata_read_mem(&r, p, n, "fuzz.djctd") == 0) {
            check_record(&r);
            djct_record_clear(&r);
        }
        break;
    }
    case 1: {
        djct_array a;
        if (djct_djcsa_read_mem(&a, p, n, "fuzz.djcsa") == 0) {
            if (djct_array_validate(&a) != 0)
                abort();
            /* a valid array re-encodes and reads back identically */
            void *buf;
            size_t len;
            djct_array b;
            if (djct_djcsa_write_mem(&buf, &len, &a, NULL) != 0 || djct_djcsa_read_mem(&b, buf, len, "re") != 0)
                abort();
            if (b.n_values != a.n_values || (a.n_values && memcmp(a.values, b.values, a.n_values * 4) != 0))
                abort();
            djct_array_clear(&b);
            free(buf);
            djct_array_clear(&a);
        }
        break;
    }
    case 2:
    case 3: {
        djct_file_meta m;
        if (djct_djcdata_read_meta_mem(&m, p, n, mode == 2 ? DJCT_FORMAT_DJCTD : DJCT_FORMAT_DJCSA, "fuzz") == 0)
            djct_file_meta_clear(&m);
        break;
    }
    case 4: {
        djct_qlz_dstate *s;
        if (djct_qlz_dstate_create(&s))
            return 0;
        static uint8_t out[1 << 21];
        size_t pos = 0;
        while (pos < n) {
            size_t cs, ds, got;
            int comp;
            if (djct_qlz_header(&cs, &ds, &comp, p + pos, n - pos) || cs > n - pos)
                break;
            if (djct_qlz_decompress(s, p + pos, cs, out, sizeof(out), &got))
                break;
            pos += cs;
        }
        djct_qlz_dstate_free(s);
        break;
    }
    default: {
        char **paths;
        size_t np;
        int64_t bs;
        int sq;
        if (djct_djcdc_read_mem(&paths, &np, &bs, &sq, p, n, "/base", "fuzz.djcdc") == 0)
            djct_djcdc_free(paths, np);
        break;
    }
    }
    return 0;
}
