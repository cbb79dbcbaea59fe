/* comm's device-side logic without a GPU, with real MPI ranks: the same-GPU refusal over gathered
 * (host, UUID) records, and the staged MPI path for device buffers on the host stand-in of
 * comm_test_fake_gpu (copies queued on a pretend stream and run only when an event after them is
 * found complete, a rank-dependent number of queries later). Staged buckets must give exactly what
 * the same plan over host buffers gives (sum, average, weighted, equal weights, a zero weight,
 * blocking and overlapped, with and without a producer stream), which fails when a bucket reaches
 * MPI before its copy landed or when ranks post their buckets in different orders. Broadcast and
 * the consistency check of staged buffers; the refusals. */
#define HARNESS_MPI
#include "harness.h"

#include "comm_int.h"

#include <math.h>
#include <stdint.h>

static int rank, size;

static void test_shared_gpu(void)
{
    comm_gpu_id ids[4] = {{"node1", "GPU-aaaa", 0}, {"node1", "GPU-bbbb", 1}, {"node2", "GPU-aaaa", 0}, {"node2", "GPU-cccc", 0}};
    char msg[600] = "";
    /* distinct GPUs, and the same UUID on two hosts (not one physical GPU) */
    CHECK(comm_shared_gpu(ids, 4, msg, sizeof(msg)) == 0 && msg[0] == '\0');
    /* per-rank CUDA_VISIBLE_DEVICES: both ranks use "device 0", which is one GPU */
    snprintf(ids[3].uuid, sizeof(ids[3].uuid), "GPU-aaaa");
    CHECK(comm_shared_gpu(ids, 4, msg, sizeof(msg)) == 1);
    CHECK(strstr(msg, "ranks 2 and 3 both use GPU GPU-aaaa on node2") != NULL);
    CHECK(strstr(msg, "--backend mpi") != NULL && strstr(msg, "ranks per node") != NULL);
    CHECK(strchr(msg, '\n') == NULL);
    /* two indices, one GPU (the first pair is named) */
    comm_gpu_id two[3] = {{"n", "GPU-x", 0}, {"n", "GPU-y", 1}, {"n", "GPU-x", 1}};
    CHECK(comm_shared_gpu(two, 3, msg, sizeof(msg)) == 1 && strstr(msg, "ranks 0 and 2") != NULL &&
          strstr(msg, "device 0 of rank 0, device 1 of rank 2") != NULL);
}

/* integer-valued data, different on each rank */
static double val(int r, size_t i, int b) { return (double)(r + 1) * (double)((long)((i * 5 + (size_t)b * 3) % 11) - 5); }

enum { NB = 7 };
/* buffer counts in backward order; the first four live in one slab (zero-copy buckets), the rest
 * apart (packed per piece); one is float64 */
static const size_t COUNTS[NB] = {300, 17, 1000, 64, 129, 5, 700};
static const djct_dtype DT[NB] = {DJCT_DTYPE_FLOAT32, DJCT_DTYPE_FLOAT32, DJCT_DTYPE_FLOAT32, DJCT_DTYPE_FLOAT32,
                                  DJCT_DTYPE_FLOAT32, DJCT_DTYPE_FLOAT64, DJCT_DTYPE_FLOAT32};

typedef struct {
    float *slab;
    void *apart[NB];
    djct_comm_buffer b[NB];
} set;

static void set_make(set *s, int device)
{
    size_t slab = 0;
    for (int i = 0; i < 4; i++)
        slab += COUNTS[i];
    s->slab = malloc(slab * sizeof(float));
    for (int i = 0, off = 0; i < NB; i++) {
        void *p;
        if (i < 4) {
            p = s->slab + off;
            off += (int)COUNTS[i];
        } else
            p = s->apart[i] = malloc(COUNTS[i] * djct_dtype_size(DT[i]));
        s->b[i] = (djct_comm_buffer){p, COUNTS[i], DT[i], device};
    }
}

static void set_fill(set *s, int r)
{
    for (int i = 0; i < NB; i++)
        for (size_t j = 0; j < COUNTS[i]; j++) {
            if (DT[i] == DJCT_DTYPE_FLOAT64)
                ((double *)s->b[i].ptr)[j] = val(r, j, i);
            else
                ((float *)s->b[i].ptr)[j] = (float)val(r, j, i);
        }
}

static int set_equal(const set *a, const set *b)
{
    for (int i = 0; i < NB; i++)
        if (memcmp(a->b[i].ptr, b->b[i].ptr, COUNTS[i] * djct_dtype_size(DT[i])))
            return 0;
    return 1;
}

static void set_free(set *s)
{
    free(s->slab);
    for (int i = 4; i < NB; i++)
        free(s->apart[i]);
}

/* the known answer of element j of buffer i: sum_r w_r x_r / div */
static double expect(int i, size_t j, djct_comm_op op, int weights)
{
    double s = 0, ws = 0;
    for (int r = 0; r < size; r++) {
        double w = op != DJCT_COMM_WEIGHTED ? 1 : weights == 0 ? r + 1 : weights == 1 ? 2 : (r == 1 ? 0 : 1);
        s += w * val(r, j, i);
        ws += w;
    }
    return op == DJCT_COMM_SUM ? s : op == DJCT_COMM_AVERAGE ? s / size : s / ws;
}

static int matches_known(const set *s, djct_comm_op op, int weights)
{
    for (int i = 0; i < NB; i++)
        for (size_t j = 0; j < COUNTS[i]; j++) {
            double got = DT[i] == DJCT_DTYPE_FLOAT64 ? ((double *)s->b[i].ptr)[j] : ((float *)s->b[i].ptr)[j];
            double want = expect(i, j, op, weights);
            if (fabs(got - want) > 1e-5 * (1 + fabs(want)))
                return 0;
        }
    return 1;
}

/* one step: blocking (plan_reduce) or overlapped (start, buffers marked ready in order with
 * progress calls between them, finish) */
static int step(djct_comm_plan *p, djct_comm_op op, double w, int overlapped)
{
    if (!overlapped)
        return djct_comm_plan_reduce(p, op, w);
    int rc = djct_comm_plan_start(p, op, w);
    for (size_t i = 0; rc == 0 && i < NB; i++) {
        rc = djct_comm_plan_mark_ready(p, i);
        for (int k = 0; rc == 0 && k < 3; k++)
            rc = djct_comm_plan_progress(p);
    }
    int frc = djct_comm_plan_finish(p);
    return rc ? rc : frc;
}

static void test_staged(void)
{
    djct_comm_options o = DJCT_COMM_OPTIONS_INIT;
    o.device = DJCT_COMM_DEVICE_NONE;
    o.backend = DJCT_COMM_BACKEND_MPI;
    djct_comm *host = NULL, *dev = NULL;
    CHECK_OK(djct_comm_create(&host, &o));
    CHECK_OK(djct_comm_create(&dev, &o));
    if (!host || !dev) {
        djct_comm_free(host);
        djct_comm_free(dev);
        return;
    }
    /* copies land after 1 to 4 queries depending on the rank: ranks see them at different times */
    CHECK_OK(comm_test_fake_gpu(dev, 0, 1 + rank % 4));
    CHECK(djct_comm_device(dev) == 0 && djct_comm_backend_in_use(dev) == DJCT_COMM_BACKEND_MPI);

    set hs, ds;
    set_make(&hs, -1);
    set_make(&ds, 0);
    djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
    po.bucket_bytes = 1024; /* many buckets, pieces cut over several */
    djct_comm_plan *hp = NULL, *dp = NULL;
    CHECK_OK(djct_comm_plan_create(&hp, host, hs.b, NB, &po));
    CHECK_OK(djct_comm_plan_create(&dp, dev, ds.b, NB, &po));
    if (!hp || !dp)
        goto out;
    CHECK(djct_comm_plan_bucket_count(dp) == djct_comm_plan_bucket_count(hp) && djct_comm_plan_bucket_count(dp) >= 8);
    CHECK(djct_comm_plan_zero_copy_count(dp) == 0); /* staged buckets always go through the host copy */

    static const struct {
        djct_comm_op op;
        int weights; /* 0: rank+1, 1: all 2 (equal), 2: rank 1 weighs 0 */
    } CASES[] = {{DJCT_COMM_SUM, 0}, {DJCT_COMM_AVERAGE, 0}, {DJCT_COMM_WEIGHTED, 0}, {DJCT_COMM_WEIGHTED, 1},
                 {DJCT_COMM_WEIGHTED, 2}};
    harness_rows same = HARNESS_ROWS_INIT, known = HARNESS_ROWS_INIT;
    for (int stream = 0; stream < 2; stream++) {
        /* a producer stream: in the stand-in the producer is the host, so only the calls are
         * exercised; the device ordering is for scripts/gpu_check.sh */
        static char producer;
        CHECK_OK(djct_comm_plan_set_stream(dp, stream ? &producer : NULL));
        for (int ov = 0; ov < 2; ov++)
            for (size_t c = 0; c < sizeof(CASES) / sizeof(CASES[0]); c++) {
                int wk = CASES[c].weights;
                double w = wk == 0 ? rank + 1 : wk == 1 ? 2 : (rank == 1 ? 0 : 1);
                set_fill(&hs, rank);
                set_fill(&ds, rank);
                ROW_OK(same, step(hp, CASES[c].op, w, ov), "host plan, case %zu overlapped %d", c, ov);
                ROW_OK(same, step(dp, CASES[c].op, w, ov), "staged plan, case %zu overlapped %d stream %d", c, ov, stream);
                ROW(same, set_equal(&hs, &ds), "case %zu overlapped %d stream %d: staged differs from host", c, ov, stream);
                ROW(known, matches_known(&ds, CASES[c].op, wk), "case %zu overlapped %d stream %d", c, ov, stream);
            }
    }
    CHECK_ROWS(same);
    CHECK_ROWS(known);

    /* a producer stream is set between steps only */
    CHECK_OK(djct_comm_plan_start(dp, DJCT_COMM_SUM, 1));
    CHECK_ERR(djct_comm_plan_set_stream(dp, NULL), DJCT_EINVAL, "during a step");
    CHECK_OK(djct_comm_plan_finish(dp));

    /* broadcast and consistency check of staged buffers */
    set_fill(&ds, rank);
    CHECK_OK(djct_comm_broadcast(dev, ds.b, NB, size - 1));
    set_fill(&hs, size - 1);
    CHECK(set_equal(&hs, &ds));
    int ndiff = -1;
    CHECK_OK(djct_comm_check_consistent(dev, ds.b, NB, &ndiff));
    CHECK(ndiff == 0);
    if (rank == 1)
        ((float *)ds.b[2].ptr)[3] += 1;
    CHECK_ERR(djct_comm_check_consistent(dev, ds.b, NB, &ndiff), DJCT_ERROR, "differ from rank 0 on rank 1 (first differing buffer on rank 1: 2)");

    /* refusals: halves on the staged path, a device buffer where there is no GPU */
    uint16_t half[4] = {0};
    djct_comm_buffer hb = {half, 4, DJCT_DTYPE_FLOAT16, 0};
    djct_comm_plan *bad = NULL;
    CHECK_ERR(djct_comm_plan_create(&bad, dev, &hb, 1, NULL), DJCT_ENOTSUP, "float16 device buffers are averaged by NCCL only");
    hb.dtype = DJCT_DTYPE_FLOAT32;
    CHECK_ERR(djct_comm_plan_create(&bad, host, &hb, 1, NULL), DJCT_ENOTSUP, "the communicator has no GPU");
    hb.device = 1;
    CHECK_ERR(djct_comm_plan_create(&bad, dev, &hb, 1, NULL), DJCT_EINVAL, "lives on device 1 but this rank uses device 0");
    CHECK(bad == NULL);
out:
    djct_comm_plan_free(hp);
    djct_comm_plan_free(dp);
    set_free(&hs);
    set_free(&ds);
    djct_comm_free(dev);
    djct_comm_free(host);
}

int main(int argc, char **argv)
{
    CHECK_OK(djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED));
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    test_shared_gpu();
    test_staged();
    return harness_report_mpi();
}
