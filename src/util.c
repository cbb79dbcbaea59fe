/* Small helpers the library's modules share (src/util_int.h): clocks, path joins, rank lists. */
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
