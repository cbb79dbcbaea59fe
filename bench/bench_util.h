/* What every benchmark here needs: a monotonic clock and medians over repeats. Header-only. */
#ifndef DJCT_BENCH_UTIL_H
#define DJCT_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* seconds on CLOCK_MONOTONIC */
static inline double bench_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ascending, in place */
static inline void bench_sort(double *v, int n) { qsort(v, (size_t)n, sizeof *v, bench_cmp_double); }

/* the median of v[0..n) (sorts v; the mean of the two middle values when n is even) */
static inline double bench_median(double *v, int n)
{
    bench_sort(v, n);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif /* DJCT_BENCH_UTIL_H */
