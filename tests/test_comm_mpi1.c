/* comm on a single rank (run as mpirun -np 1, whatever NP says): the average of one contribution is
 * the contribution itself, bit for bit, on the blocking and the overlapped paths, zero-copy and
 * packed buckets alike (w*g/w would round: the values below are chosen so that it does); weight 0
 * still zeroes (even NaN) and reports that nothing was averaged. */
#define HARNESS_MPI
#include "harness.h"

#include <math.h>
#include <stdint.h>

#define N 1000

static float f32[N];
static double f64[N];
static float f32_orig[N];
static double f64_orig[N];

static void fill(void)
{
    for (int i = 0; i < N; i++) {
        f32[i] = f32_orig[i] = 0.1f * (float)(i + 1) / 7.0f;
        f64[i] = f64_orig[i] = 0.1 * (double)(i + 1) / 7.0;
    }
}

/* the test can fail: with weight 3, at least one value does not survive x*3/3 */
static void check_rounding_matters(void)
{
    int differs = 0;
    for (int i = 0; i < N; i++) {
        volatile float x = f32_orig[i] * 3.0f;
        differs += x / 3.0f != f32_orig[i];
    }
    CHECK(differs > 0);
}

static int unchanged(void)
{
    return !memcmp(f32, f32_orig, sizeof f32) && !memcmp(f64, f64_orig, sizeof f64);
}

int main(int argc, char **argv)
{
    CHECK_OK(djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED));
    djct_comm *c = NULL;
    CHECK_OK(djct_comm_create(&c, NULL));
    if (!c)
        return harness_report_mpi();
    CHECK(djct_comm_size(c) == 1);
    fill();
    check_rounding_matters();

    /* f32 alone: one zero-copy bucket; f32 + f64 with a small bucket: packed buckets */
    djct_comm_buffer b[2] = {{f32, N, DJCT_DTYPE_FLOAT32, -1}, {f64, N, DJCT_DTYPE_FLOAT64, -1}};
    harness_rows calls = HARNESS_ROWS_INIT, same = HARNESS_ROWS_INIT, zeroed = HARNESS_ROWS_INIT;
    for (int layout = 0; layout < 2; layout++) {
        djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
        po.bucket_bytes = layout ? 1024 : 0;
        djct_comm_plan *p = NULL;
        ROW_OK(calls, djct_comm_plan_create(&p, c, b, layout ? 2 : 1, &po), "layout %d", layout);
        if (!p)
            continue;
        if (!layout)
            CHECK(djct_comm_plan_zero_copy_count(p) == djct_comm_plan_bucket_count(p));
        /* every op, blocking and overlapped, leaves one rank's values as they were */
        const djct_comm_op ops[] = {DJCT_COMM_SUM, DJCT_COMM_AVERAGE, DJCT_COMM_WEIGHTED};
        for (int oi = 0; oi < 3; oi++) {
            fill();
            ROW_OK(calls, djct_comm_plan_reduce(p, ops[oi], 3.0), "layout %d op %d", layout, oi);
            ROW(same, unchanged(), "layout %d op %d, blocking", layout, oi);
            fill();
            ROW_OK(calls, djct_comm_plan_start(p, ops[oi], 3.0), "layout %d op %d", layout, oi);
            ROW_OK(calls, djct_comm_plan_mark_ready(p, 0), "layout %d op %d", layout, oi);
            ROW_OK(calls, djct_comm_plan_progress(p), "layout %d op %d", layout, oi);
            ROW_OK(calls, djct_comm_plan_finish(p), "layout %d op %d", layout, oi);
            ROW(same, unchanged(), "layout %d op %d, overlapped", layout, oi);
        }
        /* weight 0: zeroed, even a NaN, and told */
        fill();
        f32[5] = NAN;
        ROW(zeroed, harness_err_is(djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, 0.0), DJCT_EINVAL,
                                   "every rank passed weight 0"),
            "layout %d: '%s'", layout, djct_last_error());
        int zero = 1;
        for (int i = 0; i < N; i++)
            zero &= f32[i] == 0.0f && (!layout || f64[i] == 0.0);
        ROW(zeroed, zero, "layout %d: values left after weight 0", layout);
        /* a plan step after an error starts cleanly */
        fill();
        ROW_OK(calls, djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, 0.5), "layout %d, after the error", layout);
        ROW(same, unchanged(), "layout %d, after the error", layout);
        djct_comm_plan_free(p);
    }
    CHECK_ROWS(calls);
    CHECK_ROWS(same);
    CHECK_ROWS(zeroed);
    djct_comm_free(c);
    return harness_report_mpi();
}
