/* comm with real MPI ranks: identity, start-up report, NCCL without a GPU, exact sum / average /
 * weighted average over odd sizes, zero-length buffers, many buckets, mixed dtypes, zero-copy and
 * packed buckets, the non-blocking path, broadcast, the consistency check, and error messages. */
#define HARNESS_MPI
#include "harness.h"

#include <math.h>
#include <stdint.h>

static int rank, size;

/* integer-valued data, different on each rank */
static double val(int r, size_t i, int b) { return (double)(r + 1) * (double)((long)((i * 7 + (size_t)b * 3) % 13) - 6); }

static float bf16f(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}
static uint16_t f2bf(float f) /* exact for the small integers used here */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return (uint16_t)(x >> 16);
}
static float halff(uint16_t h) /* normal numbers only, enough for these values */
{
    if ((h & 0x7fff) == 0)
        return (h & 0x8000) ? -0.0f : 0.0f;
    int e = (h >> 10) & 31, m = h & 1023;
    float v = ldexpf(1.0f + (float)m / 1024.0f, e - 15);
    return (h & 0x8000) ? -v : v;
}
static uint16_t f2half(float f) /* exact for small integers and halves */
{
    if (f == 0)
        return signbit(f) ? 0x8000 : 0;
    uint16_t s = f < 0 ? 0x8000 : 0;
    float a = fabsf(f);
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5,1) */
    int he = e - 1 + 15, hm = (int)((m * 2 - 1) * 1024);
    return (uint16_t)(s | (he << 10) | hm);
}

/* a buffer list with every dtype and awkward sizes; `slab` puts the float32 ones back to back */
enum { NB = 9 };
static const size_t counts[NB] = {1, 7, 0, 1001, 65537, 3, 0, 257, 4099};
static const djct_dtype dts[NB] = {DJCT_DTYPE_FLOAT32, DJCT_DTYPE_FLOAT64, DJCT_DTYPE_FLOAT32, DJCT_DTYPE_FLOAT32,
                                   DJCT_DTYPE_FLOAT32, DJCT_DTYPE_FLOAT16, DJCT_DTYPE_FLOAT64, DJCT_DTYPE_BFLOAT16,
                                   DJCT_DTYPE_FLOAT64};

static void fill(djct_comm_buffer *b, int r, int poison)
{
    for (int k = 0; k < NB; k++)
        for (size_t i = 0; i < b[k].count; i++) {
            double v = poison ? NAN : val(r, i, k);
            switch (b[k].dtype) {
            case DJCT_DTYPE_FLOAT32:  ((float *)b[k].ptr)[i] = (float)v; break;
            case DJCT_DTYPE_FLOAT64:  ((double *)b[k].ptr)[i] = v; break;
            case DJCT_DTYPE_FLOAT16:  ((uint16_t *)b[k].ptr)[i] = poison ? 0x7e00 : f2half((float)v); break;
            case DJCT_DTYPE_BFLOAT16: ((uint16_t *)b[k].ptr)[i] = poison ? 0x7fc0 : f2bf((float)v); break;
            default: break;
            }
        }
}

static double get(const djct_comm_buffer *b, size_t i)
{
    switch (b->dtype) {
    case DJCT_DTYPE_FLOAT32:  return ((float *)b->ptr)[i];
    case DJCT_DTYPE_FLOAT64:  return ((double *)b->ptr)[i];
    case DJCT_DTYPE_FLOAT16:  return halff(((uint16_t *)b->ptr)[i]);
    default:                  return bf16f(((uint16_t *)b->ptr)[i]);
    }
}

/* weights: rank r has weight r (rank 0 contributes nothing, even NaN) */
static int check_result(const djct_comm_buffer *b, djct_comm_op op, const char *label)
{
    int bad = 0;
    double wsum = 0;
    for (int r = 0; r < size; r++)
        wsum += r;
    for (int k = 0; k < NB; k++)
        for (size_t i = 0; i < b[k].count; i++) {
            double sum = 0, wsumv = 0;
            for (int r = 0; r < size; r++) {
                sum += val(r, i, k);
                wsumv += r * val(r, i, k);
            }
            double want;
            int half = b[k].dtype == DJCT_DTYPE_FLOAT16 || b[k].dtype == DJCT_DTYPE_BFLOAT16;
            if (op == DJCT_COMM_SUM)
                want = sum;
            else if (op == DJCT_COMM_AVERAGE)
                want = b[k].dtype == DJCT_DTYPE_FLOAT64 ? sum / size : (double)((float)sum / (float)size);
            else
                want = b[k].dtype == DJCT_DTYPE_FLOAT64 ? wsumv / wsum : (double)((float)wsumv / (float)wsum);
            double got = get(&b[k], i);
            /* float32 and float64: bitwise the correctly rounded result; halves: one rounding */
            double tol = half ? fabs(want) / 64 + 1e-6 : 0;
            if (!(fabs(got - want) <= tol)) {
                if (bad++ < 3)
                    fprintf(stderr, "rank %d %s: buffer %d [%zu] %s: got %.9g want %.9g\n", rank, label, k, i,
                            djct_dtype_name(b[k].dtype), got, want);
            }
        }
    return bad == 0;
}

static void *alloc_bufs(djct_comm_buffer *b, int slab)
{
    size_t total = 0;
    for (int k = 0; k < NB; k++)
        total += counts[k] * djct_dtype_size(dts[k]) + 64;
    char *mem = calloc(1, total), *p = mem;
    for (int k = 0; k < NB; k++) {
        /* each buffer aligned to its element size; same-dtype neighbours stay back to back */
        size_t es = djct_dtype_size(dts[k]);
        p = mem + ((size_t)(p - mem) + es - 1) / es * es;
        b[k] = (djct_comm_buffer){p, counts[k], dts[k], -1};
        p += counts[k] * djct_dtype_size(dts[k]) + (slab ? 0 : 64);
    }
    return mem;
}

static void test_identity(djct_comm *c)
{
    CHECK(djct_comm_rank(c) == rank);
    CHECK(djct_comm_size(c) == size);
    /* mpirun on one machine: one node, local == world */
    CHECK(djct_comm_node_count(c) == 1);
    CHECK(djct_comm_node_index(c) == 0);
    CHECK(djct_comm_local_size(c) == size);
    CHECK(djct_comm_local_rank(c) == rank);
    const char *text = NULL;
    CHECK_OK(djct_comm_startup_report(c, &text));
    CHECK(text != NULL);
    if (text && rank == 0) {
        int lines = 0, ordered = 1;
        const char *q = text;
        for (int r = 0; r < size; r++) {
            char want[32];
            snprintf(want, sizeof(want), "rank %d/%d on ", r, size);
            const char *hit = strstr(q, want);
            ordered &= hit != NULL;
            if (hit)
                q = hit + 1;
        }
        for (const char *s = text; *s; s++)
            lines += *s == '\n';
        CHECK(lines == size);
        CHECK(ordered);
        CHECK(strstr(text, "backend MPI") != NULL);
    } else if (text)
        CHECK(text[0] == '\0');
}

static void test_nccl_without_gpu(void)
{
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.backend = DJCT_COMM_BACKEND_NCCL;
    djct_comm *c = NULL;
    int rc = djct_comm_create(&c, &o);
    if (rc == 0) {
        harness_skip("a GPU is visible: NCCL-without-GPU error not testable here");
        djct_comm_free(c);
        return;
    }
    CHECK(rc == DJCT_ENOTSUP);
    CHECK(strstr(djct_last_error(), "NCCL backend requested") != NULL);
    CHECK(strstr(djct_last_error(), "DJCT_COMM_BACKEND_MPI") != NULL);
    CHECK(c == NULL);
    /* the MPI backend remains */
    o.backend = DJCT_COMM_BACKEND_MPI;
    CHECK_OK(djct_comm_create(&c, &o));
    CHECK(c && djct_comm_backend_in_use(c) == DJCT_COMM_BACKEND_MPI && djct_comm_device(c) == -1);
    /* a device buffer on a comm without a GPU: clear refusal */
    float x = 0;
    djct_comm_buffer db = {&x, 1, DJCT_DTYPE_FLOAT32, 0};
    djct_comm_plan *p = NULL;
    CHECK_ERR(djct_comm_plan_create(&p, c, &db, 1, NULL), DJCT_ENOTSUP, "the communicator has no GPU");
    djct_comm_free(c);
    /* a GPU asked for by index on a GPU-less machine */
    o.device = 0;
    o.backend = DJCT_COMM_BACKEND_AUTO;
    CHECK_ERR(djct_comm_create(&c, &o), DJCT_ENOTSUP, "no GPU is visible");
}

static void test_bad_options(void)
{
    djct_comm *c = NULL;
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.version = 99;
    CHECK_ERR(djct_comm_create(&c, &o), DJCT_EINVAL, "djct_comm_options version 99");
    o = (djct_comm_options)DJCT_COMM_OPTIONS_INIT;
    o.timeout_seconds = -1;
    CHECK_ERR(djct_comm_create(&c, &o), DJCT_EINVAL, "timeout_seconds");
    CHECK_ERR(djct_comm_create(NULL, NULL), DJCT_EINVAL, "out");
}

/* every op, for a slab (zero-copy) and a scattered (packed) layout and several bucket sizes */
static void test_reduce(djct_comm *c)
{
    const size_t bucket_sizes[] = {256, 4096, 0};
    /* one row per layout x bucket size: the calls succeed, the plan's shape, each op's result,
       the non-blocking path's result and its misuse errors, finish marking everything ready */
    harness_rows calls = HARNESS_ROWS_INIT, shape = HARNESS_ROWS_INIT, ops_ok = HARNESS_ROWS_INIT,
                 nonblocking = HARNESS_ROWS_INIT, misuse = HARNESS_ROWS_INIT, marks_all = HARNESS_ROWS_INIT;
    for (int slab = 0; slab < 2; slab++)
        for (size_t bi = 0; bi < sizeof(bucket_sizes) / sizeof(bucket_sizes[0]); bi++) {
            djct_comm_buffer b[NB];
            void *mem = alloc_bufs(b, slab);
            djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
            po.bucket_bytes = bucket_sizes[bi];
            djct_comm_plan *p = NULL;
            char label[64];
            snprintf(label, sizeof(label), "slab=%d bucket=%zu", slab, bucket_sizes[bi]);
            ROW_OK(calls, djct_comm_plan_create(&p, c, b, NB, &po), "%s: create", label);
            if (!p) {
                free(mem);
                continue;
            }
            /* 256-byte buckets: many buckets, big buffers split; scattered buffers: some packed */
            ROW(shape, (bucket_sizes[bi] != 256 || djct_comm_plan_bucket_count(p) > 1000) &&
                           (slab || djct_comm_plan_zero_copy_count(p) < djct_comm_plan_bucket_count(p)),
                "%s: %zu buckets, %zu zero copy", label, djct_comm_plan_bucket_count(p),
                djct_comm_plan_zero_copy_count(p));
            const djct_comm_op ops[] = {DJCT_COMM_SUM, DJCT_COMM_AVERAGE, DJCT_COMM_WEIGHTED};
            for (int oi = 0; oi < 3; oi++) {
                char l2[96];
                snprintf(l2, sizeof(l2), "%s op=%d", label, oi);
                fill(b, rank, ops[oi] == DJCT_COMM_WEIGHTED && rank == 0);
                ROW_OK(calls, djct_comm_plan_reduce(p, ops[oi], (double)rank), "%s: reduce", l2);
                ROW(ops_ok, check_result(b, ops[oi], l2), "%s", l2);
            }
            /* non-blocking: buffers become ready in reverse order (as in a backward pass) */
            fill(b, rank, 0);
            ROW_OK(calls, djct_comm_plan_start(p, DJCT_COMM_AVERAGE, 0), "%s: start", label);
            for (int k = NB - 1; k >= 0; k--) {
                ROW_OK(calls, djct_comm_plan_mark_ready(p, (size_t)k), "%s: mark_ready %d", label, k);
                ROW_OK(calls, djct_comm_plan_progress(p), "%s: progress", label);
            }
            ROW(misuse, harness_err_is(djct_comm_plan_mark_ready(p, 0), DJCT_EINVAL, "marked ready twice"),
                "%s: a second mark_ready: '%s'", label, djct_last_error());
            ROW(misuse, harness_err_is(djct_comm_plan_mark_ready(p, NB), DJCT_EINVAL, "out of range"),
                "%s: mark_ready(NB): '%s'", label, djct_last_error());
            ROW_OK(calls, djct_comm_plan_finish(p), "%s: finish", label);
            char l3[96];
            snprintf(l3, sizeof(l3), "nonblocking %s", label);
            ROW(nonblocking, check_result(b, DJCT_COMM_AVERAGE, l3), "%s", l3);
            /* finish without marking: everything counts as ready */
            fill(b, rank, 0);
            ROW_OK(calls, djct_comm_plan_start(p, DJCT_COMM_SUM, 0), "%s: start", label);
            ROW_OK(calls, djct_comm_plan_mark_ready(p, 4), "%s: mark_ready 4", label);
            ROW_OK(calls, djct_comm_plan_finish(p), "%s: finish", label);
            ROW(marks_all, check_result(b, DJCT_COMM_SUM, "finish-marks-all"), "%s", label);
            djct_comm_plan_free(p);
            free(mem);
        }
    CHECK_ROWS(calls);
    CHECK_ROWS(shape);
    CHECK_ROWS(ops_ok);
    CHECK_ROWS(nonblocking);
    CHECK_ROWS(misuse);
    CHECK_ROWS(marks_all);
}

static void test_zero_copy_slab(djct_comm *c)
{
    /* float32 views into one slab (the layout STYLE asks for): every bucket is zero copy */
    size_t n[4] = {200704, 256, 65536, 10};
    float *slab = calloc(266506, sizeof(float));
    djct_comm_buffer b[4];
    size_t off = 0;
    for (int k = 0; k < 4; k++) {
        b[k] = (djct_comm_buffer){slab + off, n[k], DJCT_DTYPE_FLOAT32, -1};
        off += n[k];
    }
    djct_comm_plan *p = NULL;
    CHECK_OK(djct_comm_plan_create(&p, c, b, 4, NULL));
    CHECK(p && djct_comm_plan_bucket_count(p) >= 1 && djct_comm_plan_zero_copy_count(p) == djct_comm_plan_bucket_count(p));
    for (size_t i = 0; i < off; i++)
        slab[i] = (float)((rank + 1) * (int)(i % 5));
    CHECK_OK(djct_comm_plan_reduce(p, DJCT_COMM_SUM, 0));
    int ok = 1;
    for (size_t i = 0; i < off; i++)
        ok &= slab[i] == (float)(size * (size + 1) / 2 * (int)(i % 5));
    CHECK(ok);
    djct_comm_plan_free(p);
    free(slab);
}

static void test_weights_and_errors(djct_comm *c)
{
    double x[3];
    djct_comm_buffer b = {x, 3, DJCT_DTYPE_FLOAT64, -1};
    djct_comm_plan *p = NULL;
    CHECK_OK(djct_comm_plan_create(&p, c, &b, 1, NULL));
    /* all weights zero: a clear error on every rank, zeros in the buffers */
    x[0] = x[1] = x[2] = 5;
    CHECK_ERR(djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, 0.0), DJCT_EINVAL, "every rank passed weight 0");
    CHECK(x[0] == 0 && x[2] == 0);
    CHECK_ERR(djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, -1.0), DJCT_EINVAL, "weight -1");
    /* only the last rank has weight: the result is its data */
    x[0] = rank;
    x[1] = rank == size - 1 ? 2.5 : NAN;
    x[2] = 1;
    CHECK_OK(djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, rank == size - 1 ? 3.0 : 0.0));
    CHECK(x[0] == size - 1 && x[1] == 2.5 && x[2] == 1);
    CHECK_ERR(djct_comm_plan_mark_ready(p, 0), DJCT_EINVAL, "outside a step");
    djct_comm_plan_free(p);

    /* equal weights on every rank (fixed-size batches): the weighted average is the plain average,
     * bit for bit, with no multiply before the sum. The data are chosen so that multiplying by 3
     * first rounds differently (checked), so the test fails if the multiply is still done. One
     * float32 buffer, blocking (plan_reduce) and overlapped (its only bucket is the last, blocking). */
    enum { NE = 4096 };
    float *e = malloc(NE * sizeof(float)), *avg = malloc(NE * sizeof(float));
    djct_comm_buffer eb = {e, NE, DJCT_DTYPE_FLOAT32, -1};
    CHECK_OK(djct_comm_plan_create(&p, c, &eb, 1, NULL));
#define FILL_E()                                                                                   \
    for (int i = 0; i < NE; i++)                                                                   \
    e[i] = 0.1f * (float)(i + 1) / (float)(7 + rank)
    FILL_E();
    CHECK_OK(djct_comm_plan_reduce(p, DJCT_COMM_AVERAGE, 0.0));
    memcpy(avg, e, NE * sizeof(float));
    /* what the premultiplied formula would give: sum of 3*e over ranks / (3*size), in float */
    int rounds_differ = 0;
    {
        float *t = malloc(NE * sizeof(float));
        FILL_E();
        for (int i = 0; i < NE; i++)
            t[i] = e[i] * 3.0f;
        MPI_Allreduce(MPI_IN_PLACE, t, NE, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (int i = 0; i < NE; i++)
            rounds_differ += t[i] / (float)(3 * size) != avg[i];
        free(t);
    }
    CHECK(rounds_differ > 0);
    FILL_E();
    CHECK_OK(djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, 3.0));
    CHECK(memcmp(e, avg, NE * sizeof(float)) == 0);
    FILL_E();
    CHECK_OK(djct_comm_plan_start(p, DJCT_COMM_WEIGHTED, 3.0));
    CHECK_OK(djct_comm_plan_mark_ready(p, 0));
    CHECK_OK(djct_comm_plan_finish(p));
    CHECK(memcmp(e, avg, NE * sizeof(float)) == 0);
    /* one rank's weight differs: the weighted formula again (not the plain average) */
    FILL_E();
    CHECK_OK(djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, rank == 0 ? 1.0 : 3.0));
    CHECK(memcmp(e, avg, NE * sizeof(float)) != 0);
#undef FILL_E
    djct_comm_plan_free(p);
    free(e);
    free(avg);

    /* unsupported dtype */
    int32_t iv[2];
    djct_comm_buffer ib = {iv, 2, DJCT_DTYPE_INT32, -1};
    CHECK_ERR(djct_comm_plan_create(&p, c, &ib, 1, NULL), DJCT_EINVAL, "dtype int32 cannot be averaged");
    /* a rank with a different buffer list: every rank is told which */
    float f[8];
    djct_comm_buffer fb = {f, rank == 1 ? 7 : 8, DJCT_DTYPE_FLOAT32, -1};
    CHECK_ERR(djct_comm_plan_create(&p, c, &fb, 1, NULL), DJCT_EINVAL, "differ from rank 0 on rank 1");
    /* NULL pointer on one rank only: all ranks fail, the others say where */
    fb.count = 8;
    fb.ptr = rank == size - 1 ? NULL : f;
    int rc = djct_comm_plan_create(&p, c, &fb, 1, NULL);
    CHECK(rc == DJCT_EINVAL);
    char want[32];
    snprintf(want, sizeof(want), "rank %d", size - 1);
    CHECK(strstr(djct_last_error(), rank == size - 1 ? "NULL pointer" : want) != NULL);
    djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
    po.bucket_bytes = (size_t)2 << 30;
    fb.ptr = f;
    CHECK_ERR(djct_comm_plan_create(&p, c, &fb, 1, &po), DJCT_EINVAL, "bucket_bytes");
}

static void test_broadcast_and_check(djct_comm *c)
{
    enum { N = 4 };
    float a[100];
    double d[3];
    int32_t iv[5];
    uint16_t h[0 + 1];
    djct_comm_buffer b[N] = {{a, 100, DJCT_DTYPE_FLOAT32, -1}, {d, 3, DJCT_DTYPE_FLOAT64, -1},
                             {iv, 5, DJCT_DTYPE_INT32, -1}, {h, 0, DJCT_DTYPE_BFLOAT16, -1}};
    for (int i = 0; i < 100; i++)
        a[i] = (float)(rank * 1000 + i);
    d[0] = d[1] = d[2] = rank;
    for (int i = 0; i < 5; i++)
        iv[i] = rank + i;
    int nd = -1;
    if (size > 1) {
        CHECK_ERR(djct_comm_check_consistent(c, b, N, &nd), DJCT_ERROR, "parameters differ from rank 0 on rank");
        CHECK(nd == size - 1);
    }
    CHECK_OK(djct_comm_broadcast(c, b, N, 0));
    CHECK(a[7] == 7.0f && d[2] == 0 && iv[4] == 4);
    CHECK_OK(djct_comm_check_consistent(c, b, N, &nd));
    CHECK(nd == 0);
    /* plant differences on the last rank (and on rank 2 with 4 ranks) */
    if (rank == size - 1)
        d[1] = 1e-300;
    if (size >= 4 && rank == 2)
        a[99] += 1;
    char want[96];
    if (size >= 4)
        snprintf(want, sizeof(want), "differ from rank 0 on ranks 2, %d (first differing buffer on rank 2: 0)", size - 1);
    else
        snprintf(want, sizeof(want), "differ from rank 0 on rank %d (first differing buffer on rank %d: 1)", size - 1, size - 1);
    CHECK_ERR(djct_comm_check_consistent(c, b, N, &nd), DJCT_ERROR, want);
    CHECK(nd == (size >= 4 ? 2 : 1));
    /* broadcast from another root repairs it */
    CHECK_OK(djct_comm_broadcast(c, b, N, size - 1));
    CHECK_OK(djct_comm_check_consistent(c, b, N, NULL));
    CHECK_ERR(djct_comm_broadcast(c, b, N, size), DJCT_EINVAL, "broadcast root");
}

/* the watchdog's polling path must give the same results when every rank is present */
static void test_watched_comm(void)
{
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.timeout_seconds = 20;
    o.device = DJCT_COMM_DEVICE_NONE;
    djct_comm *c = NULL;
    CHECK_OK(djct_comm_create(&c, &o));
    if (!c)
        return;
    CHECK_OK(djct_comm_barrier(c));
    djct_comm_buffer b[NB];
    void *mem = alloc_bufs(b, 0);
    djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
    po.bucket_bytes = 4096;
    djct_comm_plan *p = NULL;
    CHECK_OK(djct_comm_plan_create(&p, c, b, NB, &po));
    fill(b, rank, rank == 0);
    CHECK_OK(djct_comm_plan_reduce(p, DJCT_COMM_WEIGHTED, rank));
    CHECK(check_result(b, DJCT_COMM_WEIGHTED, "watched"));
    fill(b, rank, 0);
    CHECK_OK(djct_comm_plan_start(p, DJCT_COMM_AVERAGE, 0));
    CHECK_OK(djct_comm_plan_finish(p));
    CHECK(check_result(b, DJCT_COMM_AVERAGE, "watched nonblocking"));
    CHECK_OK(djct_comm_broadcast(c, b, NB, 0));
    CHECK_OK(djct_comm_check_consistent(c, b, NB, NULL));
    djct_comm_plan_free(p);
    free(mem);
    djct_comm_free(c);
}

/* djct_comm_init_mpi's transport defaults are in effect inside Open MPI (read back through the
 * MPI tool interface, not from the environment): vader copies through the shared segment, unless
 * the launcher said otherwise */
static char *launcher_copy_setting; /* the launcher's, read before djct_comm_init_mpi */

static void test_transport_defaults(void)
{
    int provided, idx, count, verbosity, bind, scope;
    MPI_Datatype dt;
    MPI_T_enum et;
    char name[128], desc[512];
    int nlen = sizeof name, dlen = sizeof desc;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) {
        harness_skip("no MPI tool interface");
        return;
    }
    if (MPI_T_cvar_get_index("btl_vader_single_copy_mechanism", &idx) != MPI_SUCCESS ||
        MPI_T_cvar_get_info(idx, name, &nlen, &verbosity, &dt, &et, desc, &dlen, &bind, &scope) != MPI_SUCCESS ||
        et == MPI_T_ENUM_NULL) {
        harness_skip("this MPI has no vader single-copy setting");
        MPI_T_finalize();
        return;
    }
    MPI_T_cvar_handle h;
    int value = -1, n = 0;
    CHECK(MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) == MPI_SUCCESS);
    CHECK(MPI_T_cvar_read(h, &value) == MPI_SUCCESS);
    MPI_T_cvar_handle_free(&h);
    CHECK(MPI_T_enum_get_info(et, &n, name, &(int){sizeof name}) == MPI_SUCCESS);
    char item[64] = "";
    for (int i = 0; i < n; i++) {
        int v, len = sizeof item;
        char nm[64];
        if (MPI_T_enum_get_item(et, i, &v, nm, &len) == MPI_SUCCESS && v == value)
            snprintf(item, sizeof item, "%s", nm);
    }
    const char *env = launcher_copy_setting;
    if (rank == 0 && strcmp(item, env ? env : "none"))
        fprintf(stderr, "vader single copy: %s (environment: %s)\n", item, env ? env : "unset");
    CHECK(!strcmp(item, env ? env : "none"));
    MPI_T_finalize();
}

int main(int argc, char **argv)
{
    if (getenv("OMPI_MCA_btl_vader_single_copy_mechanism"))
        launcher_copy_setting = strdup(getenv("OMPI_MCA_btl_vader_single_copy_mechanism"));
    CHECK_OK(djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED));
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* calling it again only checks the level */
    CHECK_OK(djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_SINGLE));
    CHECK_ERR(djct_comm_init_mpi(&argc, &argv, 7), DJCT_EINVAL, "thread level 7");

    test_transport_defaults();
    test_bad_options();
    djct_comm *c = NULL;
    CHECK_OK(djct_comm_create(&c, NULL));
    if (!c)
        return harness_report_mpi();
    test_identity(c);
    test_nccl_without_gpu();
    test_reduce(c);
    test_zero_copy_slab(c);
    test_weights_and_errors(c);
    test_broadcast_and_check(c);
    djct_comm_free(c);
    test_watched_comm();
    free(launcher_copy_setting);
    return harness_report_mpi();
}
