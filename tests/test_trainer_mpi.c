/* trainer: N ranks with their own batches end with the parameters of one model trained on the
 * combined batches (checked against a reference computed in-process with the plain model API),
 * also with unequal batch sizes where the event weighting matters; plain averaging then differs.
 * Batches staged one step ahead (what a GPU model does; DJCT_STAGE_BATCHES=1 on the CPU) train
 * bit for bit as direct ones, and nothing is staged past max_steps.
 * The trained model, with logging and losses switched off, saves and runs with targets absent. */
#define HARNESS_MPI
#include "harness.h"
#include "trainer_fixtures.h"

#include <math.h>
#include <unistd.h>

#define STEPS 6

typedef struct {
    int rank, size, unequal;
    int64_t nan_step; /* >= 0: this rank's batch of that step gets a NaN input (-1: never) */
    int nan_rank;
    int64_t step;
    mem_batch b;
} mem_loader;

static int batch_of(int rank, int unequal) { return unequal ? 3 + 5 * rank : 8; }

/* the events of (step, rank): consecutive global ids, all ranks of a step back to back */
static int64_t first_id(int64_t step, int rank, int size, int unequal)
{
    int64_t per_step = 0, before = 0;
    for (int r = 0; r < size; r++) {
        per_step += batch_of(r, unequal);
        if (r < rank)
            before += batch_of(r, unequal);
    }
    return step * per_step + before;
}

static int ml_begin(void *self, int64_t epoch, int64_t start, int64_t *n)
{
    mem_loader *l = self;
    (void)epoch;
    l->step = start;
    *n = STEPS;
    return 0;
}

static int ml_next(void *self, const djct_record **batch, djct_batch_info *info)
{
    mem_loader *l = self;
    int n = batch_of(l->rank, l->unequal);
    fill(first_id(l->step, l->rank, l->size, l->unequal), n, l->b.x, l->b.y, 0);
    if (l->step == l->nan_step && l->rank == l->nan_rank)
        l->b.x[1] = NAN;
    mem_batch_set(&l->b, n);
    l->step++;
    *batch = &l->b.rec;
    info->n_events = n;
    info->n_elements = n;
    return 0;
}

/* the optimizer of every case here: SGD, lr 0.2, momentum 0.5 */
static djct_optimizer *make_sgd(djct_model *m) { return make_opt(m, DJCT_OPTIM_SGD, 0.2, 0.5, 0); }

/* train with the trainer over `size` ranks; compare with one model on the combined batches.
 * nan_step >= 0: the last rank's batch of that step holds a NaN, so that step must be skipped
 * on every rank (the reference skips it too). */
static double run_case_nan(djct_comm *comm, int unequal, int weighting, int overlap, int64_t nan_step)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    djct_model *m = make_model();
    djct_optimizer *o = make_sgd(m);
    mem_loader l = {.rank = rank, .size = size, .unequal = unequal, .nan_step = nan_step, .nan_rank = size - 1};
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    to.weighting = weighting;
    to.overlap = overlap;
    to.epochs = 1;
    djct_trainer *t = NULL;
    CHECK_OK(djct_trainer_create(&t, m, o, comm, &ld, NULL, &to));
    CHECK_OK(djct_trainer_fit(t));
    int64_t gs = 0, skipped = -1;
    djct_trainer_position(t, &gs, &skipped, NULL, NULL);
    CHECK(gs == (nan_step >= 0 ? STEPS - 1 : STEPS));
    CHECK(skipped == (nan_step >= 0 ? 1 : 0));

    /* reference: one model, the combined batch of every step */
    djct_model *ref = make_model();
    djct_optimizer *ro = make_sgd(ref);
    static float x[MAXB * 8 * F];
    static int32_t y[MAXB * 8];
    int total = 0;
    for (int r = 0; r < size; r++)
        total += batch_of(r, unequal);
    harness_rows refsteps = HARNESS_ROWS_INIT;
    for (int64_t s = 0; s < STEPS; s++) {
        if (s == nan_step)
            continue;
        fill(first_id(s, 0, size, unequal), total, x, y, 0);
        djct_array fa = {.name = "x", .dtype = DJCT_DTYPE_FLOAT32, .ndim = 2, .shape = {total, F}, .values = x,
                         .n_values = (size_t)total * F};
        djct_array la = {.name = "label", .dtype = DJCT_DTYPE_INT32, .ndim = 1, .shape = {total}, .values = y,
                         .n_values = (size_t)total};
        ROW_OK(refsteps, djct_model_zero_grad(ref), "step %lld", (long long)s);
        ROW_OK(refsteps, djct_model_forward(ref, &fa, 1, &la, 1), "step %lld", (long long)s);
        ROW_OK(refsteps, djct_model_backward(ref, NULL), "step %lld", (long long)s);
        ROW_OK(refsteps, djct_optimizer_step(ro), "step %lld", (long long)s);
    }
    CHECK_ROWS(refsteps);
    float *p = NULL, *q = NULL;
    size_t np = 0, nq = 0;
    djct_model_params(m, &p, &np);
    djct_model_params(ref, &q, &nq);
    double d = np == nq ? max_diff(p, q, np) : 1e9;

    /* replicas agree bit for bit across ranks */
    djct_comm_buffer pb = {p, np, DJCT_DTYPE_FLOAT32, -1};
    CHECK_OK(djct_comm_check_consistent(comm, &pb, 1, NULL));

    djct_trainer_free(t);
    djct_optimizer_free(o);
    djct_optimizer_free(ro);
    djct_model_free(ref);
    djct_model_free(m);
    return d;
}

static double run_case(djct_comm *comm, int unequal, int weighting, int overlap)
{
    return run_case_nan(comm, unequal, weighting, overlap, -1);
}

/* nonfinite = stop: fit fails on every rank with a message that names the step */
static void run_nan_stop(djct_comm *comm, int average)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    djct_model *m = make_model();
    djct_optimizer *o = make_sgd(m);
    mem_loader l = {.rank = rank, .size = size, .nan_step = 2, .nan_rank = 0};
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    to.epochs = 1;
    to.average = average;
    to.nonfinite = DJCT_NONFINITE_STOP;
    djct_trainer *t = NULL;
    CHECK_OK(djct_trainer_create(&t, m, o, comm, &ld, NULL, &to));
    CHECK(djct_trainer_fit(t) < 0);
    const char *e = djct_last_error();
    if (rank == 0)
        printf("nonfinite=stop (average %d): %s\n", average, e);
    CHECK(strstr(e, "non-finite") != NULL);
    CHECK(strstr(e, "step 2") != NULL);
    /* the batch is named, staged or not (x[1] is event 0's second input) */
    CHECK(strstr(e, "rank 0's batch: event 0 of its 8 holds a non-finite value in features 'x'") != NULL);
    int64_t gs = -1;
    djct_trainer_position(t, &gs, NULL, NULL, NULL);
    CHECK(gs == 2);
    djct_trainer_free(t);
    djct_optimizer_free(o);
    djct_model_free(m);
}

/* staging: the number of batches staged ahead, seen after each step */
typedef struct {
    djct_model *m;
    int n;
    size_t staged[STEPS];
} stage_seen;

static int see_staged(void *user, const djct_step_report *r)
{
    stage_seen *s = user;
    (void)r;
    if (s->n < STEPS)
        s->staged[s->n++] = djct_model_n_staged(s->m);
    return 0;
}

/* max_steps 4 of an epoch of STEPS: the parameters after training, with or without staging;
 * *fetched receives how many batches the loader gave out */
static void run_max_steps(djct_comm *comm, int stage, float *params, size_t cap, int64_t *fetched, stage_seen *seen)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    if (stage)
        setenv("DJCT_STAGE_BATCHES", "1", 1);
    djct_model *m = make_model();
    djct_optimizer *o = make_sgd(m);
    mem_loader l = {.rank = rank, .size = size, .unequal = 1, .nan_step = -1};
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    to.epochs = 1;
    to.max_steps = 4;
    to.train_callback = see_staged;
    to.callback_user = seen;
    seen->m = m;
    seen->n = 0;
    djct_trainer *t = NULL;
    CHECK_OK(djct_trainer_create(&t, m, o, comm, &ld, NULL, &to));
    unsetenv("DJCT_STAGE_BATCHES");
    CHECK_OK(djct_trainer_fit(t));
    *fetched = l.step;
    float *p = NULL;
    size_t np = 0;
    djct_model_params(m, &p, &np);
    if (p && np <= cap)
        memcpy(params, p, np * sizeof(float));
    djct_trainer_free(t);
    djct_optimizer_free(o);
    djct_model_free(m);
}

static void test_staged(djct_comm *comm)
{
    /* the same cases as above, staged: the same distance to the reference, i.e. the same bits */
    double d1 = run_case(comm, 0, DJCT_WEIGHT_EVENTS, 1);
    setenv("DJCT_STAGE_BATCHES", "1", 1);
    double s1 = run_case(comm, 0, DJCT_WEIGHT_EVENTS, 1);
    unsetenv("DJCT_STAGE_BATCHES");
    CHECK(s1 == d1);
    double d2 = run_case_nan(comm, 1, DJCT_WEIGHT_EVENTS, 0, 0);
    setenv("DJCT_STAGE_BATCHES", "1", 1);
    double s2 = run_case_nan(comm, 1, DJCT_WEIGHT_EVENTS, 0, 0);
    unsetenv("DJCT_STAGE_BATCHES");
    CHECK(s2 == d2 && s2 < 2e-5);

    /* a NaN input stops training naming the batch's event, though it went back to the loader
     * when it was staged */
    setenv("DJCT_STAGE_BATCHES", "1", 1);
    run_nan_stop(comm, 1);
    run_nan_stop(comm, 0);
    unsetenv("DJCT_STAGE_BATCHES");

    /* max_steps mid-epoch: one batch ahead after every step but the last, none fetched past it */
    static float pd[4096], ps[4096];
    int64_t fd = -1, fs = -1;
    stage_seen sd, ss;
    run_max_steps(comm, 0, pd, 4096, &fd, &sd);
    run_max_steps(comm, 1, ps, 4096, &fs, &ss);
    CHECK(fd == 4 && fs == 4);
    CHECK(ss.n == 4 && ss.staged[0] == 1 && ss.staged[1] == 1 && ss.staged[2] == 1 && ss.staged[3] == 0);
    CHECK(sd.n == 4 && sd.staged[0] == 0);
    CHECK(memcmp(pd, ps, sizeof(pd)) == 0);
}

int main(int argc, char **argv)
{
    if (djct_comm_init_mpi(&argc, &argv, DJCT_THREAD_FUNNELED)) {
        fprintf(stderr, "%s\n", djct_last_error());
        return 1;
    }
    djct_comm *comm = NULL;
    djct_comm_options co = DJCT_COMM_OPTIONS_INIT;
    co.device = DJCT_COMM_DEVICE_NONE;
    co.timeout_seconds = 120;
    CHECK_OK(djct_comm_create(&comm, &co));
    int rank = djct_comm_rank(comm);
    djct_model *probe = NULL;
    if (djct_model_builtin(&probe, "mlp", NULL) == DJCT_ENOTSUP) {
        harness_skip("no libtorch in this build");
        djct_comm_free(comm);
        return harness_report_mpi();
    }
    djct_model_free(probe);
    djct_torch_set_num_threads(1);

    double d1 = run_case(comm, 0, DJCT_WEIGHT_EVENTS, 1);
    if (rank == 0)
        printf("equal batches, overlap: max |param - reference| = %.3g\n", d1);
    CHECK(d1 < 2e-5);
    double d2 = run_case(comm, 0, DJCT_WEIGHT_EVENTS, 0);
    CHECK(d2 < 2e-5);
    double d3 = run_case(comm, 1, DJCT_WEIGHT_EVENTS, 1);
    if (rank == 0)
        printf("unequal batches, event weighting: %.3g\n", d3);
    CHECK(d3 < 2e-5);
    double d4 = run_case(comm, 1, DJCT_WEIGHT_NONE, 1);
    if (rank == 0)
        printf("unequal batches, plain average: %.3g (must differ)\n", d4);
    CHECK(d4 > 1e-4);

    /* a NaN on one rank skips the step everywhere (both the overlapped and the blocking
     * reduction), and the replicas stay equal to the reference without that step */
    double d5 = run_case_nan(comm, 0, DJCT_WEIGHT_EVENTS, 1, 3);
    if (rank == 0)
        printf("NaN at step 3 on the last rank, overlap: %.3g\n", d5);
    CHECK(d5 < 2e-5);
    double d6 = run_case_nan(comm, 1, DJCT_WEIGHT_EVENTS, 0, 0);
    CHECK(d6 < 2e-5);
    run_nan_stop(comm, 1);
    run_nan_stop(comm, 0);
    test_staged(comm);

    /* pure inference after training: everything switched off, saved, reloaded, targets absent */
    djct_model *m = make_model();
    CHECK_OK(djct_model_switch_all_logging(m, 0));
    CHECK_OK(djct_model_switch_all_losses(m, 0));
    char path[128];
    snprintf(path, sizeof(path), "/tmp/djct_test_trainer_%d_%ld.pt", rank, (long)getpid());
    CHECK_OK(djct_model_save(m, path));
    djct_model *back = NULL;
    CHECK_OK(djct_model_load(&back, path, NULL));
    float x[4 * F];
    int32_t y[4];
    fill(0, 4, x, y, 0);
    djct_array fa = {.name = "x", .dtype = DJCT_DTYPE_FLOAT32, .ndim = 2, .shape = {4, F}, .values = x, .n_values = 4 * F};
    CHECK_OK(djct_model_train(back, 0));
    CHECK_OK(djct_model_forward(back, &fa, 1, NULL, 0));
    CHECK(djct_model_n_outputs(back) >= 1);
    const float *out = NULL;
    int64_t shape[DJCT_MAX_DIMS];
    int ndim = 0;
    CHECK_OK(djct_model_output(back, 0, &out, shape, &ndim));
    CHECK(ndim >= 1 && shape[0] == 4);
    unlink(path);
    djct_model_free(back);
    djct_model_free(m);
    djct_comm_free(comm);
    return harness_report_mpi();
}
