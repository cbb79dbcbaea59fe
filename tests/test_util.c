/* util: the clocks, FNV-1a (the published test vectors), splitmix64 (the reference sequence) and
 * rank lists as messages print them. */
#include "harness.h"
#include "util_int.h"

#include <time.h>

int main(void)
{
    /* the monotonic clock advances over a sleep; the wall clock is in the Unix era */
    double t0 = djct_now_s();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(djct_now_s() - t0 >= 0.019);
    CHECK(djct_wall_s() > 1.6e9);

    /* FNV-1a 64 (Fowler, Noll, Vo): "" is the offset basis, "a" and "foobar" the published values */
    CHECK(djct_fnv1a(DJCT_FNV1A_OFFSET, "", 0) == 0xcbf29ce484222325ull);
    CHECK(djct_fnv1a(DJCT_FNV1A_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(djct_fnv1a_str(DJCT_FNV1A_OFFSET, "foobar") == 0x85944171f73967e8ull);
    /* a 64-bit word is hashed as its bytes, least significant first, on every host */
    const unsigned char le[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    CHECK(djct_fnv1a_u64(DJCT_FNV1A_OFFSET, 0x0102030405060708ull) == djct_fnv1a(DJCT_FNV1A_OFFSET, le, 8));

    /* splitmix64 from state 0: the reference implementation's first outputs */
    uint64_t s = 0;
    uint64_t a = djct_splitmix64(&s), b = djct_splitmix64(&s);
    CHECK(a == 0xe220a8397b1dcdafull && b == 0x6e789e6aa1b965f4ull);

    /* rank lists */
    djct_rank_list l = {.len = 0};
    CHECK(l.count == 0 && !strcmp(djct_rank_list_plural(&l), ""));
    djct_rank_list_add(&l, 2);
    CHECK(!strcmp(l.text, "2") && !strcmp(djct_rank_list_plural(&l), ""));
    djct_rank_list_add(&l, 3);
    djct_rank_list_add(&l, 7);
    CHECK(!strcmp(l.text, "2, 3, 7") && l.count == 3 && !strcmp(djct_rank_list_plural(&l), "s"));
    for (int r = 8; r < 10000; r++) /* far more than fit: the text stays bounded, the count exact */
        djct_rank_list_add(&l, r);
    CHECK(l.count == 9995 && strlen(l.text) < sizeof(l.text) && !strncmp(l.text, "2, 3, 7, 8, 9", 13));
    return harness_report();
}
