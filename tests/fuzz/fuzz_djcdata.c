/* libFuzzer target for the djcdata parser and the QuickLZ decoder. The first input byte picks
 * what the rest is fed to: 0 a .djctd image (full read), 1 a .djcsa image, 2 .djctd metadata,
 * 3 .djcsa metadata, 4 a sequence of raw QuickLZ chunks through one streaming state, 5 a .djcdc
 * pickle. A .djctd image is also read in parts (src/djcdata_parts.c, blocks from the last to the
 * first), which must give the serial reader's record or its exact error. Any crash, leak, hang,
 * difference or sanitizer report is a bug; errors are expected. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"
#include "data_fixtures.h"
#include "djcdata_int.h"

/* the image in parts: the serial reader's verdict (rc, and message `msg` or record `want`) */
static void check_parts(const uint8_t *p, size_t n, int rc, const char *msg, const djct_record *want)
{
    djcdata_parts *parts;
    djct_record got;
    int rp = djcdata_parts_open(&parts, "fuzz.djctd", p, n);
    if (rp == 0) {
        unsigned char *scratch = NULL;
        size_t cap = 0;
        for (size_t i = djcdata_parts_count(parts); i-- > 0;)
            djcdata_parts_decode(parts, i, &scratch, &cap);
        rp = djcdata_parts_finish(parts, &got);
        free(scratch);
        djcdata_parts_free(parts);
    }
    if (rp != rc || (rc ? strcmp(msg, djct_last_error()) != 0 : !fx_records_equal(want, &got)))
        abort();
    if (rp == 0)
        djct_record_clear(&got);
}

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
        static char msg[1024];
        int rc = djct_djcdata_read_mem(&r, p, n, "fuzz.djctd");
        snprintf(msg, sizeof(msg), "%s", djct_last_error());
        if (rc == 0)
            check_record(&r);
        check_parts(p, n, rc, msg, &r);
        if (rc == 0)
            djct_record_clear(&r);
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
