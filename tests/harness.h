/* The whole test framework. Each test main ends `return harness_report();` (or, in MPI tests,
 * `return harness_report_mpi();` after defining HARNESS_MPI before the include): the last line
 * printed is "N passed, N failed[, N skipped]" and the exit code is the verdict.
 * MPI tests sum the counts over ranks with MPI_Allreduce; rank 0 prints; all ranks exit alike.
 * One CHECK per behaviour: a loop over rows is one check (ROW / ROW_OK, then CHECK_ROWS), so the
 * counts say how many behaviours hold, not how many rows a loop had. */
#ifndef DJCT_TEST_HARNESS_H
#define DJCT_TEST_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "djct/djct.h"

static int harness_passed, harness_failed, harness_skipped;

#define CHECK(c)                                                                           \
    do {                                                                                   \
        if (c)                                                                             \
            harness_passed++;                                                              \
        else {                                                                             \
            harness_failed++;                                                              \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);                   \
        }                                                                                  \
    } while (0)

/* a call expected to succeed; on failure prints djct_last_error() */
#define CHECK_OK(call)                                                                     \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        CHECK(rc_ == 0);                                                                   \
        if (rc_)                                                                           \
            fprintf(stderr, "  -> %s: %s\n", djct_error_name(rc_), djct_last_error());     \
    } while (0)

/* a call expected to fail with `code` and a message containing `needle` */
#define CHECK_ERR(call, code, needle)                                                      \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        CHECK(rc_ == (code));                                                              \
        CHECK(strstr(djct_last_error(), (needle)) != NULL);                                \
        if (rc_ != (code) || !strstr(djct_last_error(), (needle)))                         \
            fprintf(stderr, "  -> got %s \"%s\", want %s containing \"%s\"\n",             \
                    djct_error_name(rc_), djct_last_error(), djct_error_name(code), (needle)); \
    } while (0)

/* compare doubles within an absolute tolerance */
#define CHECK_NEAR(a, b, tol)                                                              \
    do {                                                                                   \
        double a_ = (double)(a), b_ = (double)(b);                                         \
        CHECK(a_ - b_ <= (tol) && b_ - a_ <= (tol));                                       \
        if (!(a_ - b_ <= (tol) && b_ - a_ <= (tol)))                                       \
            fprintf(stderr, "  -> %.9g vs %.9g (tol %g)\n", a_, b_, (double)(tol));         \
    } while (0)

/* A loop is one check: ROW(r, cond, fmt, ...) notes the first row whose condition fails (the
 * condition, its line, the row described by fmt); ROW_OK(r, call, fmt, ...) the same for a call
 * that must return 0 (with djct_last_error()); CHECK_ROWS(r) then counts one pass, or one failure
 * naming the first bad row and how many rows failed.
 *   harness_rows r = HARNESS_ROWS_INIT;
 *   for (int i = 0; i < n; i++) ROW(r, out[i] == want[i], "i=%d: %g, want %g", i, out[i], want[i]);
 *   CHECK_ROWS(r); */
typedef struct {
    int bad, line;
    const char *what;
    char row[512];
} harness_rows;
#define HARNESS_ROWS_INIT {0, 0, NULL, ""}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static inline void harness_row_fail(harness_rows *r, int line, const char *what, const char *err, const char *fmt, ...)
{
    if (r->bad++)
        return;
    r->line = line;
    r->what = what;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(r->row, sizeof(r->row), fmt, ap);
    va_end(ap);
    if (err && k >= 0 && (size_t)k < sizeof(r->row))
        snprintf(r->row + k, sizeof(r->row) - (size_t)k, " (%s)", err);
}

#define ROW(r, cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond))                                                                       \
            harness_row_fail(&(r), __LINE__, #cond, NULL, __VA_ARGS__);                    \
    } while (0)

#define ROW_OK(r, call, ...)                                                               \
    do {                                                                                   \
        if ((call) != 0)                                                                   \
            harness_row_fail(&(r), __LINE__, #call " == 0", djct_last_error(), __VA_ARGS__); \
    } while (0)

#define CHECK_ROWS(r)                                                                      \
    do {                                                                                   \
        if ((r).bad == 0)                                                                  \
            harness_passed++;                                                              \
        else {                                                                             \
            harness_failed++;                                                              \
            fprintf(stderr, "FAIL %s:%d: %s at %s; %d row(s) failed\n", __FILE__, (r).line,  \
                    (r).what, (r).row, (r).bad);                                           \
        }                                                                                  \
    } while (0)

/* a call's result was `code` with a message containing `needle`, for ROW conditions */
static inline int harness_err_is(int rc, int code, const char *needle)
{
    return rc == code && strstr(djct_last_error(), needle) != NULL;
}

/* |a - b| <= tol, for ROW conditions */
static inline int harness_near(double a, double b, double tol) { return a - b <= tol && b - a <= tol; }

/* a part that cannot run here (no GPU, no libtorch): say why, count it as skipped only */
static inline void harness_skip(const char *why)
{
    harness_skipped++;
    printf("skip: %s\n", why);
}

static inline int harness_print(int passed, int failed, int skipped)
{
    fflush(stderr);
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

static inline int harness_report(void)
{
    return harness_print(harness_passed, harness_failed, harness_skipped);
}

/* The whole file at `path`, malloc'ed and NUL-terminated (the NUL not counted in *len, which may
 * be NULL); NULL when it cannot be read. */
static inline char *harness_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? (char *)malloc((size_t)n + 1) : NULL; /* a cast: C++ includes this too */
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    fclose(f);
    return b;
}

/* Kilobytes of this process's mappings of `path` that are present in its page tables (the Rss
 * lines of /proc/self/smaps); -1 when smaps cannot be read. */
static inline long harness_mapped_kb(const char *path)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[4096];
    long kb = 0, v;
    int in = 0;
    size_t pl = strlen(path);
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
            line[--n] = 0;
        if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' '))
            in = n >= pl && !strcmp(line + n - pl, path); /* a mapping's header line */
        else if (in && sscanf(line, "Rss: %ld kB", &v) == 1)
            kb += v;
    }
    fclose(f);
    return kb;
}

#ifdef HARNESS_MPI
#include <mpi.h>
/* Sum over ranks; rank 0 prints; everyone returns the same verdict. Finalizes MPI. */
static inline int harness_report_mpi(void)
{
    int mine[3] = {harness_passed, harness_failed, harness_skipped}, all[3] = {0, 0, 0}, rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Allreduce(mine, all, 3, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = all[1] ? 1 : 0;
    if (rank == 0)
        harness_print(all[0], all[1], all[2]);
    MPI_Finalize();
    return rc;
}
#endif

#endif /* DJCT_TEST_HARNESS_H */
