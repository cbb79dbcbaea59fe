/* Small helpers the library's modules share (src/util_int.h): clocks, FNV-1a, rank lists. */
#include "util_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

double djct_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double djct_wall_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

#define FNV1A_PRIME 0x100000001b3ull

uint64_t djct_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV1A_PRIME;
    return h;
}

uint64_t djct_fnv1a_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * FNV1A_PRIME;
    return h;
}

uint64_t djct_fnv1a_u64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        h = (h ^ ((v >> (8 * i)) & 0xff)) * FNV1A_PRIME;
    return h;
}

char *djct_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void djct_rank_list_add(djct_rank_list *l, int rank)
{
    if (l->len < sizeof(l->text) - 16)
        l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%d", l->count ? ", " : "", rank);
    l->count++;
}
