/* libtorch bridge: built-in models, flat parameter/gradient slabs, the LoggingModule/LossModule
 * convention driven from C, optimizers and schedules, save/load, bad input, and the device-aware
 * helpers (finite check, slab copy, staged batches) on CPU tensors.
 * `test_model --roundtrip IN.pt OUT.pt DATA.bin` is the C half of tests/test_python.sh. */
#include "harness.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

/* ---- data ----------------------------------------------------------------------------------- */

static uint64_t rng = 12345;
static float frand(void) /* deterministic U(-1, 1) */
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

static djct_array regular(const char *name, djct_dtype t, void *v, int ndim, int64_t d0, int64_t d1)
{
    djct_array a;
    memset(&a, 0, sizeof a);
    a.name = (char *)name;
    a.dtype = t;
    a.ndim = ndim;
    a.shape[0] = d0;
    a.shape[1] = d1;
    a.values = v;
    a.n_values = (size_t)(ndim == 1 ? d0 : d0 * d1);
    return a;
}

/* a classification problem: label = argmax over 4 fixed projections of x */
enum { B = 64, F = 20, C = 4 };
static float X[B * F];
static int32_t LAB[B];
static void make_mlp_data(void)
{
    for (int i = 0; i < B * F; i++)
        X[i] = frand();
    for (int b = 0; b < B; b++) {
        int best = 0;
        float bv = -1e9f;
        for (int c = 0; c < C; c++) {
            float s = 0;
            for (int f = c * 5; f < c * 5 + 5; f++)
                s += X[b * F + f];
            if (s > bv)
                bv = s, best = c;
        }
        LAB[b] = best;
    }
}

/* point clouds: E events, ragged points with P features; label = sign of mean feature 0 */
enum { E = 16, P = 5 };
static int64_t RS[E + 1];
static float PTS[E * 40 * P];
static int32_t PLAB[E];
static float PLABF[E], PTGT[E];
static int64_t make_pc_data(void)
{
    RS[0] = 0;
    for (int e = 0; e < E; e++)
        RS[e + 1] = RS[e] + 1 + (e * 7) % 37;
    int64_t n = RS[E];
    for (int64_t i = 0; i < n * P; i++)
        PTS[i] = frand();
    for (int e = 0; e < E; e++) {
        double s = 0;
        for (int64_t i = RS[e]; i < RS[e + 1]; i++)
            s += PTS[i * P];
        s /= (double)(RS[e + 1] - RS[e]);
        PLAB[e] = s > 0;
        PLABF[e] = (float)PLAB[e];
        PTGT[e] = (float)(2.0 * s + 0.5);
    }
    return n;
}

static djct_array pc_points(int64_t n)
{
    djct_array a;
    memset(&a, 0, sizeof a);
    a.name = "points";
    a.dtype = DJCT_DTYPE_FLOAT32;
    a.ndim = 3;
    a.shape[0] = E;
    a.shape[1] = -n;
    a.shape[2] = P;
    a.row_splits = RS;
    a.n_row_splits = E + 1;
    a.values = PTS;
    a.n_values = (size_t)(n * P);
    return a;
}

/* ---- helpers -------------------------------------------------------------------------------- */

struct metrics {
    int n;
    char names[16][64];
    double values[16];
};
static int on_metric(void *user, const char *name, double v)
{
    struct metrics *m = user;
    if (m->n < 16) {
        snprintf(m->names[m->n], 64, "%s", name);
        m->values[m->n++] = v;
    }
    return 0;
}
static double metric(const struct metrics *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name))
            return m->values[i];
    return NAN;
}

static int ready_calls, ready_order_ok;
static size_t ready_last;
static void on_ready(void *user, size_t index)
{
    (void)user;
    ready_calls++;
    ready_last = index;
}

static double abs_sum(const float *p, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs(p[i]);
    return s;
}

static int one_line(void)
{
    return strchr(djct_last_error(), '\n') == NULL;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_mlp_training(void)
{
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.n_inputs = F;
    mo.hidden = 32;
    mo.n_classes = C;
    djct_model *m = NULL;
    CHECK_OK(djct_torch_seed(1));
    CHECK_OK(djct_model_builtin(&m, "mlp", &mo));
    if (!m)
        return;

    /* one slab each, in backward order: out_bias first (last registered), fc0_weight last */
    float *p = NULL, *g = NULL;
    size_t np = 0, ng = 0;
    CHECK_OK(djct_model_params(m, &p, &np));
    CHECK_OK(djct_model_grads(m, &g, &ng));
    CHECK(np == (size_t)(F * 32 + 32 + 32 * 32 + 32 + 32 * C + C) && ng == np);
    CHECK(djct_model_n_params(m) == 6);
    const char *name = NULL;
    size_t off = 1, cnt = 0, total = 0;
    CHECK_OK(djct_model_param_info(m, 0, &name, &off, &cnt));
    CHECK(name && !strcmp(name, "out_bias") && off == 0 && cnt == C);
    harness_rows contiguous = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < djct_model_n_params(m); i++) {
        ROW_OK(contiguous, djct_model_param_info(m, i, NULL, &off, &cnt), "parameter %zu", i);
        ROW(contiguous, off == total, "parameter %zu: offset %zu, want %zu", i, off, total);
        total += cnt;
    }
    ROW(contiguous, total == np, "all: %zu values, the slab has %zu", total, np);
    CHECK_ROWS(contiguous);
    CHECK_OK(djct_model_param_info(m, 5, &name, NULL, NULL));
    CHECK(!strcmp(name, "fc0_weight"));
    CHECK_ERR(djct_model_param_info(m, 6, NULL, NULL, NULL), DJCT_EINVAL, "parameter 6");
    CHECK(abs_sum(g, ng) == 0.0);

    /* convention: two LoggingModules, logging off by default (djctools), loss on */
    CHECK(djct_model_n_logging_modules(m) == 2);
    int lg = -1, isl = -1, lo = -1;
    CHECK_OK(djct_model_logging_module(m, 0, &name, &lg, &isl, &lo));
    CHECK(!strcmp(name, "loss") && lg == 0 && isl == 1 && lo == 1);
    CHECK_OK(djct_model_logging_module(m, 1, &name, &lg, &isl, &lo));
    CHECK(!strcmp(name, "metrics") && lg == 0 && isl == 0 && lo == 0);

    djct_array feat = regular("x", DJCT_DTYPE_FLOAT32, X, 2, B, F);
    djct_array targ = regular("label", DJCT_DTYPE_INT32, LAB, 1, B, 0);
    djct_optimizer *o = NULL;
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.lr = 1e-2;
    CHECK_OK(djct_optimizer_create(&o, m, &oo));
    CHECK_OK(djct_model_set_grad_ready_hook(m, on_ready, NULL));
    double first = 0, last = 0;
    harness_rows steps = HARNESS_ROWS_INIT;
    for (int step = 0; step < 60; step++) {
        ROW_OK(steps, djct_model_zero_grad(m), "step %d: zero_grad", step);
        ROW_OK(steps, djct_model_forward(m, &feat, 1, &targ, 1), "step %d: forward", step);
        ready_calls = 0;
        double l = 0;
        ROW_OK(steps, djct_model_backward(m, &l), "step %d: backward", step);
        if (step == 0) {
            first = l;
            /* every parameter reported once; the last reported is the first registered */
            ready_order_ok = ready_last == 5;
            CHECK(ready_calls == 6 && ready_order_ok);
            CHECK(abs_sum(g, ng) > 0);
            float *g2 = NULL, *p2 = NULL;
            CHECK_OK(djct_model_grads(m, &g2, &ng));
            CHECK_OK(djct_model_params(m, &p2, &np));
            CHECK(g2 == g && p2 == p); /* the slabs never move */
        }
        last = l;
        ROW_OK(steps, djct_optimizer_step(o), "step %d: optimizer", step);
    }
    CHECK_ROWS(steps);
    CHECK(djct_optimizer_steps(o) == 60);
    CHECK(first > 1.0 && last < 0.5 * first);
    if (!(last < 0.5 * first))
        fprintf(stderr, "  -> loss %g -> %g\n", first, last);
    CHECK_OK(djct_model_set_grad_ready_hook(m, NULL, NULL));

    /* outputs */
    CHECK(djct_model_n_outputs(m) == 1);
    const float *out = NULL;
    int64_t shape[DJCT_MAX_DIMS];
    int nd = 0;
    CHECK_OK(djct_model_output(m, 0, &out, shape, &nd));
    CHECK(nd == 2 && shape[0] == B && shape[1] == C);
    CHECK_ERR(djct_model_output(m, 1, &out, shape, &nd), DJCT_EINVAL, "output 1");

    /* metrics: recorded only while logging is on, prefixed with the module name, cleared */
    struct metrics mt = {0};
    CHECK_OK(djct_model_collect_metrics(m, on_metric, &mt));
    CHECK(mt.n == 0);
    CHECK_OK(djct_model_switch_all_logging(m, 1));
    CHECK_OK(djct_model_forward(m, &feat, 1, &targ, 1));
    CHECK_OK(djct_model_collect_metrics(m, on_metric, &mt));
    CHECK(mt.n == 2);
    CHECK(metric(&mt, "metrics_accuracy") > 0.5);
    double s = 0;
    CHECK_OK(djct_model_sum_all_losses(m, &s));
    CHECK_NEAR(metric(&mt, "loss_loss"), s, 1e-6);
    mt.n = 0;
    CHECK_OK(djct_model_collect_metrics(m, on_metric, &mt));
    CHECK(mt.n == 0);
    CHECK_OK(djct_model_clear_all_losses(m));
    CHECK_ERR(djct_model_sum_all_losses(m, &s), DJCT_EINVAL, "losses are active but none was recorded");

    /* inference: everything off, targets absent (None) */
    CHECK_OK(djct_model_switch_all_logging(m, 0));
    CHECK_OK(djct_model_switch_all_losses(m, 0));
    CHECK_OK(djct_model_train(m, 0));
    CHECK_OK(djct_model_forward(m, &feat, 1, NULL, 0));
    CHECK(djct_model_n_outputs(m) == 1);
    CHECK_ERR(djct_model_sum_all_losses(m, &s), DJCT_EINVAL, "every LossModule is switched off");
    CHECK_OK(djct_model_switch_all_losses(m, 1));
    CHECK_ERR(djct_model_sum_all_losses(m, &s), DJCT_EINVAL, "losses are active but none was recorded");
    /* an active loss with targets absent is the model's error, reported in one line */
    CHECK_ERR(djct_model_forward(m, &feat, 1, NULL, 0), DJCT_ETORCH, "is active but targets are None");
    CHECK(strstr(djct_last_error(), "model 'builtin:mlp'") != NULL && one_line());
    /* evaluation mode: losses computed, but nothing to backpropagate */
    CHECK_OK(djct_model_forward(m, &feat, 1, &targ, 1));
    CHECK_ERR(djct_model_backward(m, NULL), DJCT_EINVAL, "backward in evaluation mode");
    CHECK_OK(djct_model_train(m, 1));

    djct_optimizer_free(o);
    djct_model_free(m);
}

/* one training step: zero_grad, forward, backward (its loss into *loss, may be NULL), optimizer
 * step; 0, or the first failing call's code with its message in djct_last_error() */
static int train_step(djct_model *m, djct_optimizer *o, const djct_array *feat, const djct_array *targ, size_t nt,
                      double *loss)
{
    int rc;
    if ((rc = djct_model_zero_grad(m)) || (rc = djct_model_forward(m, feat, 1, targ, nt)) ||
        (rc = djct_model_backward(m, loss)))
        return rc;
    return djct_optimizer_step(o);
}

static void test_pointcloud(void)
{
    int64_t n = make_pc_data();
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.n_inputs = P;
    mo.hidden = 16;
    djct_model *m = NULL;
    CHECK_OK(djct_torch_seed(2));
    CHECK_OK(djct_model_builtin(&m, "pointcloud", &mo));
    if (!m)
        return;
    CHECK(djct_model_n_logging_modules(m) == 3);
    djct_array feat = pc_points(n);
    djct_array targ[2] = {regular("label", DJCT_DTYPE_INT32, PLAB, 1, E, 0),
                          regular("target", DJCT_DTYPE_FLOAT32, PTGT, 1, E, 0)};
    CHECK_OK(djct_model_forward(m, &feat, 1, targ, 2));
    CHECK(djct_model_n_outputs(m) == 2);
    const float *out = NULL;
    int64_t shape[DJCT_MAX_DIMS];
    int nd = 0;
    CHECK_OK(djct_model_output(m, 0, &out, shape, &nd));
    CHECK(nd == 2 && shape[0] == E && shape[1] == 2);
    CHECK_OK(djct_model_output(m, 1, &out, shape, &nd));
    CHECK(nd == 1 && shape[0] == E);

    /* float32 labels work too */
    djct_array targf[2] = {regular("label", DJCT_DTYPE_FLOAT32, PLABF, 1, E, 0), targ[1]};
    double l1 = 0, l2 = 0;
    CHECK_OK(djct_model_forward(m, &feat, 1, targ, 2));
    CHECK_OK(djct_model_sum_all_losses(m, &l1));
    CHECK_OK(djct_model_forward(m, &feat, 1, targf, 2));
    CHECK_OK(djct_model_sum_all_losses(m, &l2));
    CHECK_NEAR(l1, l2, 1e-7);

    /* regression switched off by name: its head gets a defined zero gradient, no crash */
    CHECK_OK(djct_model_switch(m, "regression", -1, 0));
    int lg, isl, lo;
    const char *name;
    CHECK_OK(djct_model_logging_module(m, 1, &name, &lg, &isl, &lo));
    CHECK(!strcmp(name, "regression") && isl == 1 && lo == 0);
    CHECK_OK(djct_model_zero_grad(m));
    CHECK_OK(djct_model_forward(m, &feat, 1, targ, 2));
    CHECK_OK(djct_model_backward(m, NULL));
    float *g;
    size_t ng, off, cnt;
    CHECK_OK(djct_model_grads(m, &g, &ng));
    harness_rows heads = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < djct_model_n_params(m); i++) {
        ROW_OK(heads, djct_model_param_info(m, i, &name, &off, &cnt), "parameter %zu", i);
        double s = abs_sum(g + off, cnt);
        ROW(heads, !strncmp(name, "reg_", 4) ? s == 0.0 : s > 0.0, "%s: |gradient| %g", name, s);
    }
    CHECK_ROWS(heads);
    CHECK_OK(djct_model_switch(m, "regression", -1, 1));

    /* train both heads; metrics of the point-cloud LoggingModule */
    djct_optimizer *o = NULL;
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.lr = 5e-3;
    CHECK_OK(djct_optimizer_create(&o, m, &oo));
    double first = 0, last = 0;
    harness_rows steps = HARNESS_ROWS_INIT;
    for (int step = 0; step < 80; step++)
        ROW_OK(steps, train_step(m, o, &feat, targ, 2, step == 0 ? &first : &last), "step %d", step);
    CHECK_ROWS(steps);
    CHECK(last < 0.7 * first);
    if (!(last < 0.7 * first))
        fprintf(stderr, "  -> loss %g -> %g\n", first, last);
    CHECK_OK(djct_model_switch(m, "metrics", 1, -1));
    CHECK_OK(djct_model_forward(m, &feat, 1, targ, 2));
    struct metrics mt = {0};
    CHECK_OK(djct_model_collect_metrics(m, on_metric, &mt));
    CHECK(mt.n == 3);
    CHECK(metric(&mt, "metrics_accuracy") >= 0.0 && metric(&mt, "metrics_resolution") > 0.0);
    CHECK(!isnan(metric(&mt, "metrics_bias")));

    /* nested toggles: the root path switches everything below it */
    CHECK_OK(djct_model_switch(m, "", 0, 0));
    harness_rows all_off = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < 3; i++) {
        ROW_OK(all_off, djct_model_logging_module(m, i, NULL, &lg, NULL, &lo), "module %zu", i);
        ROW(all_off, lg == 0 && lo == 0, "module %zu: logging %d, loss %d", i, lg, lo);
    }
    CHECK_ROWS(all_off);
    CHECK_OK(djct_model_forward(m, &feat, 1, NULL, 0)); /* pure inference */
    CHECK_ERR(djct_model_switch(m, "nope", 1, 1), DJCT_EINVAL, "classification, regression, metrics");
    CHECK_ERR(djct_model_switch(m, "metrics", 2, 1), DJCT_EINVAL, "use 1 (on), 0 (off) or -1");

    /* save with switch states; a reload gives the same outputs and states */
    char path[] = "/tmp/djct_test_model_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(djct_model_switch(m, "classification", 1, 1));
    CHECK_OK(djct_model_save(m, path));
    CHECK_OK(djct_model_train(m, 0));
    CHECK_OK(djct_model_switch(m, "classification", 0, 0));
    CHECK_OK(djct_model_forward(m, &feat, 1, NULL, 0));
    const float *a = NULL, *b = NULL;
    CHECK_OK(djct_model_output(m, 1, &a, shape, &nd));
    djct_model *m2 = NULL;
    CHECK_OK(djct_model_load(&m2, path, NULL));
    if (m2) {
        CHECK(djct_model_n_logging_modules(m2) == 3);
        CHECK_OK(djct_model_logging_module(m2, 0, &name, &lg, NULL, &lo));
        CHECK(!strcmp(name, "classification") && lg == 1 && lo == 1);
        CHECK_OK(djct_model_logging_module(m2, 1, &name, &lg, NULL, &lo));
        CHECK(!strcmp(name, "regression") && lg == 0 && lo == 0);
        CHECK_OK(djct_model_train(m2, 0));
        CHECK_OK(djct_model_switch_all_losses(m2, 0));
        CHECK_OK(djct_model_switch_all_logging(m2, 0));
        CHECK_OK(djct_model_forward(m2, &feat, 1, NULL, 0));
        CHECK_OK(djct_model_output(m2, 1, &b, shape, &nd));
        int same = 1;
        for (int e = 0; e < E; e++)
            same &= fabsf(a[e] - b[e]) < 1e-6f;
        CHECK(same);
    }
    djct_model_free(m2);
    unlink(path);

    /* wrong input: labels out of range, missing row splits (model errors, one line) */
    CHECK_OK(djct_model_switch_all_losses(m, 1));
    int32_t bad[E];
    for (int e = 0; e < E; e++)
        bad[e] = 7;
    djct_array tbad[2] = {regular("label", DJCT_DTYPE_INT32, bad, 1, E, 0), targ[1]};
    CHECK_ERR(djct_model_forward(m, &feat, 1, tbad, 2), DJCT_ETORCH, "out of bounds");
    CHECK(one_line());
    djct_array flatpts = regular("points", DJCT_DTYPE_FLOAT32, PTS, 2, n, P);
    CHECK_ERR(djct_model_forward(m, &flatpts, 1, targ, 2), DJCT_ETORCH, "model 'builtin:pointcloud': forward");
    CHECK(one_line());
    djct_optimizer_free(o);
    djct_model_free(m);
}

/* the small one-hidden-layer MLP that the optimizer tests train on (X, LAB) */
static djct_model_options small_mlp(void)
{
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.n_inputs = F;
    mo.hidden = 8;
    mo.n_layers = 1;
    mo.n_classes = C;
    return mo;
}

/* one training step of m with o on (feat, targ) */
/* the training steps of a test: each a row of one check (check_trained() where a test ends) */
static harness_rows trained = HARNESS_ROWS_INIT;

static void check_trained(void)
{
    CHECK_ROWS(trained);
    trained = (harness_rows)HARNESS_ROWS_INIT;
}

static void train_once(djct_model *m, djct_optimizer *o, const djct_array *feat, const djct_array *targ)
{
    ROW_OK(trained, train_step(m, o, feat, targ, 1, NULL), "a training step");
}

static void test_optimizers(void)
{
    djct_model_options mo = small_mlp();
    djct_array feat = regular("x", DJCT_DTYPE_FLOAT32, X, 2, B, F);
    djct_array targ = regular("label", DJCT_DTYPE_INT32, LAB, 1, B, 0);

    /* schedules */
    djct_model *m = NULL;
    CHECK_OK(djct_model_builtin(&m, "mlp", &mo));
    if (!m)
        return;
    djct_optimizer *o = NULL;
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.kind = DJCT_OPTIM_SGD;
    oo.momentum = 0.9;
    oo.lr = 0.1;
    oo.warmup_steps = 4;
    oo.schedule = DJCT_LR_COSINE;
    oo.total_steps = 14;
    oo.min_lr = 0.01;
    CHECK_OK(djct_optimizer_create(&o, m, &oo));
    double lrs[16];
    for (int i = 0; i < 16; i++) {
        lrs[i] = djct_optimizer_lr(o);
        train_once(m, o, &feat, &targ);
    }
    /* warm-up to the peak, then cosine down to min_lr, and there it stays */
    CHECK(harness_near(lrs[0], 0.025, 1e-12) && harness_near(lrs[3], 0.1, 1e-12));
    CHECK(harness_near(lrs[4], 0.1, 1e-12) && harness_near(lrs[9], 0.01 + 0.09 * 0.5, 1e-12) &&
          harness_near(lrs[14], 0.01, 1e-12));
    CHECK(harness_near(lrs[15], 0.01, 1e-12));
    djct_optimizer_free(o);
    oo.warmup_steps = 0;
    oo.schedule = DJCT_LR_STEP;
    oo.step_size = 3;
    oo.gamma = 0.5;
    CHECK_OK(djct_optimizer_create(&o, m, &oo));
    CHECK_NEAR(djct_optimizer_lr(o), 0.1, 1e-12);
    harness_rows zero = HARNESS_ROWS_INIT;
    for (int i = 0; i < 7; i++)
        ROW_OK(zero, djct_optimizer_step(o), "step %d", i); /* zero gradients: fine */
    CHECK_ROWS(zero);
    CHECK_NEAR(djct_optimizer_lr(o), 0.025, 1e-12);
    djct_optimizer_free(o);
    oo.schedule = DJCT_LR_COSINE;
    oo.total_steps = 0;
    CHECK_ERR(djct_optimizer_create(&o, m, &oo), DJCT_EINVAL, "cosine schedule needs total_steps");
    oo = (djct_optimizer_options)DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.kind = 9;
    CHECK_ERR(djct_optimizer_create(&o, m, &oo), DJCT_EINVAL, "kind 9 is unknown");
    oo.version = 99;
    CHECK_ERR(djct_optimizer_create(&o, m, &oo), DJCT_EINVAL, "djct_optimizer_options version 99");
    djct_model_free(m);

    /* state round trip for each kind: A trains 3 steps, its model + optimizer state go to B;
       one more identical step on both gives identical parameters */
    int kinds[3] = {DJCT_OPTIM_SGD, DJCT_OPTIM_ADAM, DJCT_OPTIM_ADAMW};
    harness_rows rt = HARNESS_ROWS_INIT, same = HARNESS_ROWS_INIT, refused = HARNESS_ROWS_INIT;
    for (int k = 0; k < 3; k++) {
        djct_model *a = NULL, *b = NULL;
        djct_optimizer *oa = NULL, *ob = NULL;
        djct_optimizer_options q = DJCT_OPTIMIZER_OPTIONS_INIT;
        q.kind = kinds[k];
        q.lr = 0.05;
        q.momentum = 0.9;
        q.weight_decay = 0.01;
        ROW_OK(rt, djct_torch_seed(3), "kind %d", k);
        ROW_OK(rt, djct_model_builtin(&a, "mlp", &mo), "kind %d", k);
        ROW_OK(rt, djct_optimizer_create(&oa, a, &q), "kind %d", k);
        for (int i = 0; i < 3; i++) {
            train_once(a, oa, &feat, &targ);
        }
        char path[] = "/tmp/djct_test_opt_XXXXXX", mpath[] = "/tmp/djct_test_m_XXXXXX";
        close(mkstemp(path));
        close(mkstemp(mpath));
        void *buf = NULL;
        size_t len = 0;
        ROW_OK(rt, djct_optimizer_save(oa, path), "kind %d: save", k);
        ROW_OK(rt, djct_optimizer_save_buffer(oa, &buf, &len), "kind %d: save_buffer", k);
        ROW_OK(rt, djct_model_save(a, mpath), "kind %d: model save", k);
        ROW_OK(rt, djct_model_load(&b, mpath, NULL), "kind %d: model load", k);
        ROW_OK(rt, djct_optimizer_create(&ob, b, &q), "kind %d", k);
        if (k == 1)
            ROW_OK(rt, djct_optimizer_load(ob, path), "kind %d: load", k);
        else
            ROW_OK(rt, djct_optimizer_load_buffer(ob, buf, len), "kind %d: load_buffer", k);
        long long loaded = (long long)djct_optimizer_steps(ob);
        for (int i = 0; i < 2; i++) {
            train_once(i ? b : a, i ? ob : oa, &feat, &targ);
        }
        float *pa = NULL, *pb = NULL;
        size_t na = 0, nb = 1;
        ROW_OK(rt, djct_model_params(a, &pa, &na), "kind %d", k);
        ROW_OK(rt, djct_model_params(b, &pb, &nb), "kind %d", k);
        ROW(same, loaded == 3 && na == nb && pa && pb && memcmp(pa, pb, na * sizeof(float)) == 0,
            "kind %d: %lld steps loaded (3 saved), parameters %s", k, loaded,
            na == nb && pa && pb && !memcmp(pa, pb, na * sizeof(float)) ? "equal" : "differ");
        /* a state of another kind is refused */
        djct_optimizer *oc = NULL;
        djct_optimizer_options q2 = q;
        q2.kind = (kinds[k] + 1) % 3;
        ROW_OK(rt, djct_optimizer_create(&oc, b, &q2), "kind %d", k);
        ROW(refused, harness_err_is(djct_optimizer_load_buffer(oc, buf, len), DJCT_EINVAL, "holds kind"),
            "kind %d, another kind's state: '%s'", k, djct_last_error());
        ROW(refused, harness_err_is(djct_optimizer_load_buffer(oc, "garbage", 7), DJCT_ETORCH, "loading from memory"),
            "kind %d, garbage: '%s'", k, djct_last_error());
        ROW(refused, harness_err_is(djct_optimizer_load(oc, "/nonexistent/opt.pt"), DJCT_EIO, "cannot open"),
            "kind %d, no file: '%s'", k, djct_last_error());
        djct_optimizer_free(oc);
        free(buf);
        unlink(path);
        unlink(mpath);
        djct_optimizer_free(oa);
        djct_optimizer_free(ob);
        djct_model_free(a);
        djct_model_free(b);
    }
    CHECK_ROWS(rt);
    CHECK_ROWS(same);
    CHECK_ROWS(refused);
    check_trained();
}

/* djct's fused Adam/AdamW pass against libtorch's own step (DJCT_TORCH_ADAM=1), same model, same
 * batches: plain, L2 weight decay, decoupled weight decay. They may differ by float rounding only;
 * a wrong bias correction, eps placement or decay form is orders of magnitude above the bound.
 * Then the fused optimizer's state, loaded into a libtorch-stepped one, continues alike. */
static void test_fused_adam(void)
{
    djct_model_options mo = small_mlp();
    djct_array feat = regular("x", DJCT_DTYPE_FLOAT32, X, 2, B, F);
    djct_array targ = regular("label", DJCT_DTYPE_INT32, LAB, 1, B, 0);
    const struct { int kind; double wd; const char *name; } cases[] = {
        {DJCT_OPTIM_ADAM, 0.0, "adam"}, {DJCT_OPTIM_ADAM, 0.01, "adam+l2"}, {DJCT_OPTIM_ADAMW, 0.05, "adamw"}};
    harness_rows calls = HARNESS_ROWS_INIT, alike = HARNESS_ROWS_INIT, state = HARNESS_ROWS_INIT;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        djct_model *m[2] = {NULL, NULL};
        djct_optimizer *o[2] = {NULL, NULL};
        djct_optimizer_options q = DJCT_OPTIMIZER_OPTIONS_INIT;
        q.kind = cases[c].kind;
        q.lr = 0.01;
        q.weight_decay = cases[c].wd;
        for (int i = 0; i < 2; i++) {
            ROW_OK(calls, djct_torch_seed(11), "%s", cases[c].name);
            ROW_OK(calls, djct_model_builtin(&m[i], "mlp", &mo), "%s", cases[c].name);
            if (i)
                setenv("DJCT_TORCH_ADAM", "1", 1);
            ROW_OK(calls, djct_optimizer_create(&o[i], m[i], &q), "%s", cases[c].name);
            unsetenv("DJCT_TORCH_ADAM");
        }
        if (!o[0] || !o[1])
            break;
        float *p0, *p1, *start;
        size_t n0, n1;
        ROW_OK(calls, djct_model_params(m[0], &p0, &n0), "%s", cases[c].name);
        ROW_OK(calls, djct_model_params(m[1], &p1, &n1), "%s", cases[c].name);
        start = malloc(n0 * sizeof(float));
        memcpy(start, p0, n0 * sizeof(float));
        for (int step = 0; step < 25; step++)
            for (int i = 0; i < 2; i++)
                train_once(m[i], o[i], &feat, &targ);
        double diff = 0, moved = 0;
        for (size_t j = 0; j < n0 && n0 == n1; j++) {
            diff = fmax(diff, fabs((double)p0[j] - (double)p1[j]));
            moved = fmax(moved, fabs((double)p0[j] - (double)start[j]));
        }
        ROW(alike, n0 == n1 && diff < 1e-5 && moved > 0.05, "fused %s: max |fused - libtorch| %g, max move %g",
            cases[c].name, diff, moved);
        /* the fused state is libtorch's: loaded into the libtorch-stepped optimizer, both go on alike */
        void *buf = NULL;
        size_t len = 0;
        ROW_OK(calls, djct_optimizer_save_buffer(o[0], &buf, &len), "%s", cases[c].name);
        ROW_OK(calls, djct_optimizer_load_buffer(o[1], buf, len), "%s", cases[c].name);
        memcpy(p1, p0, n0 * sizeof(float));
        for (int i = 0; i < 2; i++)
            train_once(m[i], o[i], &feat, &targ);
        diff = 0;
        for (size_t j = 0; j < n0; j++)
            diff = fmax(diff, fabs((double)p0[j] - (double)p1[j]));
        ROW(state, diff < 1e-6, "%s: after loading the fused state, max difference %g", cases[c].name, diff);
        free(buf);
        free(start);
        for (int i = 0; i < 2; i++) {
            djct_optimizer_free(o[i]);
            djct_model_free(m[i]);
        }
    }
    CHECK_ROWS(calls);
    CHECK_ROWS(alike);
    CHECK_ROWS(state);
    check_trained();
}

/* TorchScript's graph-executor optimisation off (djct_train's default on CPU) against on: the same
 * training to float rounding, losses recorded alike; the loss and the parameters must move */
static void test_jit_optimize(void)
{
    djct_model_options mo = small_mlp();
    djct_array feat = regular("x", DJCT_DTYPE_FLOAT32, X, 2, B, F);
    djct_array targ = regular("label", DJCT_DTYPE_INT32, LAB, 1, B, 0);
    float *params[2] = {NULL, NULL};
    double loss[2][2];
    size_t n[2] = {0, 0};
    harness_rows calls = HARNESS_ROWS_INIT;
    for (int mode = 0; mode < 2; mode++) {
        ROW_OK(calls, djct_torch_set_jit_optimize(mode), "mode %d", mode);
        ROW_OK(calls, djct_torch_seed(5), "mode %d", mode);
        djct_model *m = NULL;
        djct_optimizer *o = NULL;
        ROW_OK(calls, djct_model_builtin(&m, "mlp", &mo), "mode %d", mode);
        if (!m)
            break;
        ROW_OK(calls, djct_optimizer_create(&o, m, NULL), "mode %d", mode);
        for (int step = 0; step < 12; step++) {
            double l = NAN;
            ROW_OK(calls, train_step(m, o, &feat, &targ, 1, &l), "mode %d step %d", mode, step);
            if (step == 0 || step == 11)
                loss[mode][step ? 1 : 0] = l;
        }
        float *p;
        ROW_OK(calls, djct_model_params(m, &p, &n[mode]), "mode %d", mode);
        params[mode] = malloc(n[mode] * sizeof(float));
        memcpy(params[mode], p, n[mode] * sizeof(float));
        djct_optimizer_free(o);
        djct_model_free(m);
    }
    ROW_OK(calls, djct_torch_set_jit_optimize(1), "back to libtorch's default for the other tests");
    CHECK_ROWS(calls);
    double diff = 0;
    for (size_t j = 0; j < n[0] && n[0] == n[1]; j++)
        diff = fmax(diff, fabs((double)params[0][j] - (double)params[1][j]));
    CHECK(n[0] == n[1] && n[0] > 0 && diff < 1e-5);
    CHECK(harness_near(loss[0][0], loss[1][0], 1e-6) && harness_near(loss[0][1], loss[1][1], 1e-5));
    CHECK(loss[0][1] < loss[0][0]);
    free(params[0]);
    free(params[1]);
}

static void test_bad_input(void)
{
    djct_model *m = NULL;
    CHECK_ERR(djct_model_load(&m, "/nonexistent/model.pt", NULL), DJCT_EIO,
              "model '/nonexistent/model.pt': cannot open");
    char path[] = "/tmp/djct_test_bad_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "not a zip archive at all", 25) == 25);
    close(fd);
    CHECK_ERR(djct_model_load(&m, path, NULL), DJCT_ETORCH, "not a loadable TorchScript file");
    CHECK(strstr(djct_last_error(), path) != NULL && one_line());
    unlink(path);
    CHECK(m == NULL);
    CHECK_ERR(djct_model_builtin(&m, "resnet", NULL), DJCT_EINVAL, "built-in model 'resnet' does not exist");
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.device_type = DJCT_DEVICE_CUDA;
    int ngpu = -1;
    CHECK_OK(djct_torch_cuda_device_count(&ngpu));
    if (ngpu == 0)
        CHECK_ERR(djct_model_builtin(&m, "mlp", &mo), DJCT_ENOTSUP, "CUDA requested");
    else
        harness_skip("a GPU is visible: the no-CUDA error path is not exercised");
    mo.device_type = 7;
    CHECK_ERR(djct_model_builtin(&m, "mlp", &mo), DJCT_EINVAL, "device_type 7");
    mo = (djct_model_options)DJCT_MODEL_OPTIONS_INIT;
    mo.version = 0;
    CHECK_ERR(djct_model_builtin(&m, "mlp", &mo), DJCT_EINVAL, "djct_model_options version 0");
    mo = (djct_model_options)DJCT_MODEL_OPTIONS_INIT;
    mo.n_classes = 1;
    CHECK_ERR(djct_model_builtin(&m, "mlp", &mo), DJCT_EINVAL, "n_classes >= 2");
    CHECK_ERR(djct_torch_set_num_threads(0), DJCT_EINVAL, "thread count 0");
    CHECK_ERR(djct_model_load(NULL, "x", NULL), DJCT_EINVAL, "invalid argument");

    mo.n_inputs = F;
    mo.hidden = 8;
    mo.n_classes = C;
    CHECK_OK(djct_model_builtin(&m, "mlp", &mo));
    if (!m)
        return;
    /* wrong shape: 19 features into a 20-input MLP */
    djct_array feat = regular("x", DJCT_DTYPE_FLOAT32, X, 2, B, F - 1);
    feat.n_values = (size_t)(B * (F - 1));
    djct_array targ = regular("label", DJCT_DTYPE_INT32, LAB, 1, B, 0);
    CHECK_ERR(djct_model_forward(m, &feat, 1, &targ, 1), DJCT_ETORCH, "cannot be multiplied");
    CHECK(strstr(djct_last_error(), "model 'builtin:mlp': forward") != NULL && one_line());
    /* inconsistent arrays and unknown dtypes never reach libtorch */
    feat.n_values = 3;
    CHECK_ERR(djct_model_forward(m, &feat, 1, &targ, 1), DJCT_EINVAL, "features[0] 'x'");
    feat = regular("x", (djct_dtype)42, X, 2, B, F);
    CHECK_ERR(djct_model_forward(m, &feat, 1, &targ, 1), DJCT_EINVAL, "dtype");
    /* label count does not match the batch */
    feat = regular("x", DJCT_DTYPE_FLOAT32, X, 2, B, F);
    targ = regular("label", DJCT_DTYPE_INT32, LAB, 1, B - 3, 0);
    CHECK_ERR(djct_model_forward(m, &feat, 1, &targ, 1), DJCT_ETORCH, "size mismatch");
    CHECK(one_line());
    /* no features at all */
    CHECK_ERR(djct_model_forward(m, NULL, 0, &targ, 1), DJCT_ETORCH, "out of range");
    CHECK_ERR(djct_model_save(m, "/nonexistent/dir/m.pt"), DJCT_ETORCH, "saving to '/nonexistent/dir/m.pt'");
    CHECK(one_line());
    /* after errors the model still works */
    targ = regular("label", DJCT_DTYPE_INT32, LAB, 1, B, 0);
    CHECK_OK(djct_model_forward(m, &feat, 1, &targ, 1));
    CHECK_OK(djct_model_backward(m, NULL));
    djct_model_free(m);
}

/* ---- the C half of tests/test_python.sh ------------------------------------------------------ */

/* DATA.bin in: int64 n, int64 f, then float32 x[n*f], float32 y[n]. Out (appended to DATA.bin.out):
   float32 outputs[n] of the trained model in evaluation mode with targets absent. */
static int roundtrip(const char *in, const char *outp, const char *data)
{
    FILE *f = fopen(data, "rb");
    int64_t hdr[2];
    if (!f || fread(hdr, sizeof hdr, 1, f) != 1) {
        fprintf(stderr, "roundtrip: cannot read %s\n", data);
        return 1;
    }
    size_t n = (size_t)hdr[0], nf = (size_t)hdr[1];
    float *x = malloc(n * nf * sizeof(float)), *y = malloc(n * sizeof(float));
    CHECK(fread(x, sizeof(float), n * nf, f) == n * nf && fread(y, sizeof(float), n, f) == n);
    fclose(f);
    djct_model *m = NULL;
    CHECK_OK(djct_model_load(&m, in, NULL));
    if (!m)
        return harness_report();
    /* names from the Python side, auto-names included */
    harness_rows modules = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < djct_model_n_logging_modules(m); i++) {
        const char *name = "?";
        int lg = -1, isl = -1, lo = -1;
        ROW_OK(modules, djct_model_logging_module(m, i, &name, &lg, &isl, &lo), "module %zu", i);
        printf("module %s logging=%d loss=%d/%d\n", name, lg, isl, lo);
    }
    CHECK_ROWS(modules);
    djct_array fa = regular("x", DJCT_DTYPE_FLOAT32, x, 2, (int64_t)n, (int64_t)nf);
    djct_array ta = regular("y", DJCT_DTYPE_FLOAT32, y, 1, (int64_t)n, 0);
    djct_optimizer *o = NULL;
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.lr = 1e-2;
    CHECK_OK(djct_optimizer_create(&o, m, &oo));
    CHECK_OK(djct_model_switch_all_logging(m, 1));
    double first = 0, last = 0;
    harness_rows steps = HARNESS_ROWS_INIT;
    for (int step = 0; step < 30; step++)
        ROW_OK(steps, train_step(m, o, &fa, &ta, 1, step ? &last : &first), "step %d", step);
    CHECK_ROWS(steps);
    struct metrics mt = {0};
    CHECK_OK(djct_model_collect_metrics(m, on_metric, &mt));
    for (int i = 0; i < mt.n; i++)
        printf("metric %s = %g\n", mt.names[i], mt.values[i]);
    CHECK(mt.n >= 1);
    printf("loss %g -> %g\n", first, last);
    CHECK(last < first);
    /* a switched-off loss with absent targets must be skipped by the model; the model file keeps
       the states: the Python side checks "aux" is off and runs inference with targets=None */
    CHECK_OK(djct_model_switch_all_logging(m, 0));
    CHECK_OK(djct_model_switch(m, "aux", 0, 0));
    CHECK_OK(djct_model_save(m, outp));
    CHECK_OK(djct_model_switch_all_losses(m, 0));
    CHECK_OK(djct_model_train(m, 0));
    CHECK_OK(djct_model_forward(m, &fa, 1, NULL, 0));
    const float *out;
    int64_t shape[DJCT_MAX_DIMS];
    int nd;
    CHECK_OK(djct_model_output(m, 0, &out, shape, &nd));
    char op[4096];
    snprintf(op, sizeof op, "%s.out", data);
    FILE *w = fopen(op, "wb");
    CHECK(w && fwrite(out, sizeof(float), n, w) == n);
    if (w)
        fclose(w);
    djct_optimizer_free(o);
    djct_model_free(m);
    free(x);
    free(y);
    return harness_report();
}

/* `test_model --load-error FILE SUBSTRING`: loading FILE fails with SUBSTRING in the message */
static int load_error(const char *path, const char *needle)
{
    djct_model *m = NULL;
    int rc = djct_model_load(&m, path, NULL);
    printf("rc %s: %s\n", djct_error_name(rc), djct_last_error());
    CHECK(rc < 0 && strstr(djct_last_error(), needle) && strstr(djct_last_error(), path) && one_line());
    djct_model_free(m);
    return harness_report();
}

/* OpenBLAS's own pool follows the torch thread count unless the user sized it; djct_blas_describe
 * names the library, its kernels and the pool */
static void test_blas_threads(void)
{
    int (*get)(void) = NULL;
    void *sym = dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
    if (!sym) {
        harness_skip("the BLAS is not OpenBLAS");
        CHECK(strstr(djct_blas_describe(), "not OpenBLAS") != NULL);
        return;
    }
    memcpy(&get, &sym, sizeof get);
    char *saved = getenv("OPENBLAS_NUM_THREADS") ? strdup(getenv("OPENBLAS_NUM_THREADS")) : NULL;
    unsetenv("OPENBLAS_NUM_THREADS");
    CHECK_OK(djct_torch_set_num_threads(2));
    CHECK(get() == 2);
    CHECK_OK(djct_torch_set_num_threads(1));
    CHECK(get() == 1);
    CHECK(djct_blas_set_threads(1) == 1);
    const char *d = djct_blas_describe();
    CHECK(!strncmp(d, "OpenBLAS 0.", 11) && strstr(d, " kernels") && strstr(d, ", 1 thread") && !strstr(d, "(OPENBLAS_NUM"));
    /* the user's OPENBLAS_NUM_THREADS wins: the pool keeps its size and the report says why */
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    CHECK(djct_blas_set_threads(2) == 0);
    CHECK(get() == 1);
    CHECK(strstr(djct_blas_describe(), "1 thread (OPENBLAS_NUM_THREADS)") != NULL);
    if (saved)
        setenv("OPENBLAS_NUM_THREADS", saved, 1);
    else
        unsetenv("OPENBLAS_NUM_THREADS");
    free(saved);
    CHECK_OK(djct_torch_set_num_threads(1));
}

/* switching single modules by name or glob (djct_train's and djct_predict's --logging / --loss) */
static int states(djct_model *m, const char *want)
{
    char buf[512];
    if (djct_model_describe_switches(m, buf, sizeof(buf)))
        return 0;
    if (strcmp(buf, want))
        fprintf(stderr, "  -> switches: %s\n     want:     %s\n", buf, want);
    return !strcmp(buf, want);
}

static void test_switch_matching(void)
{
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.n_inputs = P;
    mo.hidden = 8;
    djct_model *m = NULL;
    CHECK_OK(djct_model_builtin(&m, "pointcloud", &mo));
    if (!m)
        return;
    size_t n = 99;
    CHECK_OK(djct_model_switch_all_logging(m, 1));
    CHECK(states(m, "classification (loss on, logging on), regression (loss on, logging on), metrics (logging on)"));
    /* by name */
    CHECK_OK(djct_model_switch_matching(m, DJCT_SWITCH_LOSS, "regression", 0, &n));
    CHECK(n == 1 && states(m, "classification (loss on, logging on), regression (loss off, logging on), metrics (logging on)"));
    CHECK_OK(djct_model_switch_matching(m, DJCT_SWITCH_LOGGING, "metrics", 0, &n));
    CHECK(n == 1 && states(m, "classification (loss on, logging on), regression (loss off, logging on), metrics (logging off)"));
    /* by glob: logging reaches LossModules too, loss only LossModules */
    CHECK_OK(djct_model_switch_matching(m, DJCT_SWITCH_LOGGING, "*s*", 0, &n));
    CHECK(n == 3 && states(m, "classification (loss on, logging off), regression (loss off, logging off), metrics (logging off)"));
    CHECK_OK(djct_model_switch_matching(m, DJCT_SWITCH_LOSS, "*", 1, &n));
    CHECK(n == 2);
    /* a list applies in order: the later entry wins */
    CHECK_OK(djct_model_switch_list(m, DJCT_SWITCH_LOGGING, "*=on, class*=off,[mr]e*=on"));
    CHECK(states(m, "classification (loss on, logging off), regression (loss on, logging on), metrics (logging on)"));
    /* unknown names list the known ones; a LoggingModule is no LossModule */
    CHECK_ERR(djct_model_switch_matching(m, DJCT_SWITCH_LOGGING, "nope*", 0, &n), DJCT_EINVAL,
              "no LoggingModule matches 'nope*'; LoggingModules: classification, regression, metrics");
    CHECK(n == 0);
    CHECK_ERR(djct_model_switch_matching(m, DJCT_SWITCH_LOSS, "metrics", 0, NULL), DJCT_EINVAL,
              "no LossModule matches 'metrics' (it names a LoggingModule without a loss); LossModules: classification, regression");
    CHECK_ERR(djct_model_switch_list(m, DJCT_SWITCH_LOSS, "regression=maybe"), DJCT_EINVAL,
              "loss switch 'regression=maybe': write NAME=on or NAME=off");
    CHECK_ERR(djct_model_switch_list(m, DJCT_SWITCH_LOSS, "regression=off,=on"), DJCT_EINVAL, "loss switch '=on'");
    CHECK_ERR(djct_model_switch_list(m, DJCT_SWITCH_LOSS, "classification=off,bogus=on"), DJCT_EINVAL,
              "no LossModule matches 'bogus'");
    CHECK_ERR(djct_model_switch_matching(m, 7, "x", 1, NULL), DJCT_EINVAL, "switch kind 7");
    /* the syntax alone (what the apps check before loading anything); a malformed entry anywhere
     * in a list switches nothing */
    CHECK_OK(djct_model_switch_list_check(DJCT_SWITCH_LOSS, "a=on, b*=off,,"));
    CHECK_ERR(djct_model_switch_list_check(DJCT_SWITCH_LOGGING, "a=on,b"), DJCT_EINVAL, "logging switch 'b'");
    CHECK_ERR(djct_model_switch_list(m, DJCT_SWITCH_LOGGING, "*=off,metrics=of"), DJCT_EINVAL, "'metrics=of'");
    CHECK_ERR(djct_model_switch_list(m, DJCT_SWITCH_LOGGING, "*=off,nope=on"), DJCT_EINVAL, "'nope'");
    CHECK(states(m, "classification (loss on, logging off), regression (loss on, logging on), metrics (logging on)"));
    /* a switched-off loss changes the summed loss: regression alone vs both */
    int64_t ne = make_pc_data();
    djct_array feat = pc_points(ne);
    djct_array targ[2] = {regular("label", DJCT_DTYPE_INT32, PLAB, 1, E, 0),
                          regular("target", DJCT_DTYPE_FLOAT32, PTGT, 1, E, 0)};
    double both = 0, one = 0, cls = 0;
    CHECK_OK(djct_model_switch_list(m, DJCT_SWITCH_LOSS, "*=on"));
    CHECK_OK(djct_model_forward(m, &feat, 1, targ, 2));
    CHECK_OK(djct_model_sum_all_losses(m, &both));
    CHECK_OK(djct_model_switch_list(m, DJCT_SWITCH_LOSS, "classification=off"));
    CHECK_OK(djct_model_forward(m, &feat, 1, targ, 2));
    CHECK_OK(djct_model_sum_all_losses(m, &one));
    CHECK_OK(djct_model_switch_list(m, DJCT_SWITCH_LOSS, "classification=on,regression=off"));
    CHECK_OK(djct_model_forward(m, &feat, 1, targ, 2));
    CHECK_OK(djct_model_sum_all_losses(m, &cls));
    CHECK(one > 0 && cls > 0 && fabs(both - (one + cls)) < 1e-5 * both);
    djct_model_free(m);
}

/* the bridge's device-aware helpers, on CPU tensors: where a model lives, the finite check, the
 * slab copy, the stream (none on the CPU), batches staged ahead of their forward (the same losses
 * and outputs as a direct forward, oldest first, the caller's memory free at once) */
static void test_device_helpers(void)
{
    int n = -1;
    char why[256] = "";
    CHECK_OK(djct_torch_cuda_available(&n, why, sizeof(why)));
    CHECK(n > 0 || (why[0] != '\0' && strchr(why, '\n') == NULL));
    CHECK(djct_model_device_index(NULL) == -1);

    djct_model_options mo = small_mlp();
    djct_model *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(djct_torch_seed(3));
    CHECK_OK(djct_model_builtin(&a, "mlp", &mo));
    CHECK_OK(djct_model_builtin(&b, "mlp", &mo)); /* other parameters: the generator moved on */
    mo.hidden = 9;
    CHECK_OK(djct_model_builtin(&c, "mlp", &mo));
    if (!a || !b || !c)
        goto out;
    CHECK(djct_model_device_index(a) == -1);
    void *stream = (void *)1;
    CHECK_OK(djct_model_cuda_stream(a, &stream));
    CHECK(stream == NULL);

    /* finite check: computed by libtorch where the slab lives (here the CPU) */
    float *g = NULL, *pa = NULL, *pb = NULL;
    size_t ng = 0, na = 0, nb = 0;
    int fin = -1;
    CHECK_OK(djct_model_zero_grad(a));
    CHECK_OK(djct_model_grads(a, &g, &ng));
    CHECK_OK(djct_model_grads_finite(a, &fin));
    CHECK(fin == 1);
    g[ng / 2] = NAN;
    CHECK_OK(djct_model_grads_finite(a, &fin));
    CHECK(fin == 0);
    g[ng / 2] = 0;
    g[ng - 1] = -INFINITY;
    CHECK_OK(djct_model_grads_finite(a, &fin));
    CHECK(fin == 0);
    CHECK_OK(djct_model_zero_grad(a));

    /* slab copy: b's parameters become a's, bit for bit; another layout is refused */
    CHECK_OK(djct_model_params(a, &pa, &na));
    CHECK_OK(djct_model_params(b, &pb, &nb));
    CHECK(na == nb && memcmp(pa, pb, na * sizeof(float)) != 0);
    CHECK_OK(djct_model_copy_params(b, a));
    CHECK(memcmp(pa, pb, na * sizeof(float)) == 0);
    CHECK_ERR(djct_model_copy_params(c, a), DJCT_EINVAL, "must have the same layout");

    /* staged batches: two staged, used oldest first, each as a direct forward of the same data;
     * the arrays are copied at staging, so overwriting them afterwards changes nothing */
    make_mlp_data();
    static float x2[B * F];
    static int32_t l2[B];
    for (int i = 0; i < B * F; i++)
        x2[i] = -X[i];
    for (int i = 0; i < B; i++)
        l2[i] = (LAB[i] + 1) % C;
    djct_array f1 = regular("x", DJCT_DTYPE_FLOAT32, X, 2, B, F), t1 = regular("label", DJCT_DTYPE_INT32, LAB, 1, B, 0);
    djct_array f2 = regular("x", DJCT_DTYPE_FLOAT32, x2, 2, B, F), t2 = regular("label", DJCT_DTYPE_INT32, l2, 1, B, 0);
    double d1 = 0, d2 = 0, s1 = -1, s2 = -1;
    CHECK_OK(djct_model_forward(a, &f1, 1, &t1, 1));
    CHECK_OK(djct_model_sum_all_losses(a, &d1));
    const float *o = NULL;
    int64_t shape[DJCT_MAX_DIMS];
    int nd = 0;
    float out1[B * C];
    CHECK_OK(djct_model_output(a, 0, &o, shape, &nd));
    if (o)
        memcpy(out1, o, sizeof(out1));
    CHECK_OK(djct_model_forward(a, &f2, 1, &t2, 1));
    CHECK_OK(djct_model_sum_all_losses(a, &d2));
    CHECK(d1 != d2);
    CHECK_ERR(djct_model_forward_staged(a), DJCT_EINVAL, "none is staged");
    static float keep[B * F];
    memcpy(keep, X, sizeof(keep));
    CHECK_OK(djct_model_stage(a, &f1, 1, &t1, 1));
    CHECK_OK(djct_model_stage(a, &f2, 1, &t2, 1));
    CHECK(djct_model_n_staged(a) == 2);
    memset(X, 0, sizeof(X)); /* the caller's memory is free once staged */
    CHECK_OK(djct_model_forward_staged(a));
    CHECK_OK(djct_model_sum_all_losses(a, &s1));
    CHECK_OK(djct_model_output(a, 0, &o, shape, &nd));
    CHECK(o && nd == 2 && shape[0] == B && memcmp(o, out1, sizeof(out1)) == 0);
    CHECK_OK(djct_model_backward(a, NULL)); /* a staged batch trains like any other */
    CHECK_OK(djct_model_forward_staged(a));
    CHECK_OK(djct_model_sum_all_losses(a, &s2));
    CHECK(s1 == d1 && s2 == d2 && djct_model_n_staged(a) == 0);
    memcpy(X, keep, sizeof(keep));
    CHECK_OK(djct_model_stage(a, &f1, 1, &t1, 1));
    CHECK_OK(djct_model_drop_staged(a));
    CHECK(djct_model_n_staged(a) == 0);
    /* bad input is refused at staging, naming the array */
    djct_array bad = f1;
    bad.dtype = (djct_dtype)42;
    CHECK_ERR(djct_model_stage(a, &bad, 1, &t1, 1), DJCT_EINVAL, "features[0]");
    CHECK(djct_model_n_staged(a) == 0);

    /* a ragged batch (values + row splits) stages as it forwards */
    int64_t np = make_pc_data();
    djct_model_options po = DJCT_MODEL_OPTIONS_INIT;
    po.n_inputs = P;
    po.hidden = 8;
    djct_model *pc = NULL;
    CHECK_OK(djct_model_builtin(&pc, "pointcloud", &po));
    if (pc) {
        djct_array feat = pc_points(np);
        djct_array targ[2] = {regular("label", DJCT_DTYPE_INT32, PLAB, 1, E, 0),
                              regular("target", DJCT_DTYPE_FLOAT32, PTGT, 1, E, 0)};
        double direct = 0, staged = -1;
        CHECK_OK(djct_model_forward(pc, &feat, 1, targ, 2));
        CHECK_OK(djct_model_sum_all_losses(pc, &direct));
        CHECK_OK(djct_model_stage(pc, &feat, 1, targ, 2));
        CHECK_OK(djct_model_forward_staged(pc));
        CHECK_OK(djct_model_sum_all_losses(pc, &staged));
        CHECK(direct == staged);
    }
    djct_model_free(pc);
out:
    djct_model_free(a);
    djct_model_free(b);
    djct_model_free(c);
}

int main(int argc, char **argv)
{
#if !DJCT_HAVE_TORCH
    djct_model *m = NULL;
    CHECK_ERR(djct_model_builtin(&m, "mlp", NULL), DJCT_ENOTSUP, "without libtorch");
    harness_skip("built without libtorch");
    return harness_report();
#endif
    djct_torch_set_num_threads(1);
    if (argc == 5 && !strcmp(argv[1], "--roundtrip"))
        return roundtrip(argv[2], argv[3], argv[4]);
    if (argc == 4 && !strcmp(argv[1], "--load-error"))
        return load_error(argv[2], argv[3]);
    make_mlp_data();
    test_mlp_training();
    test_pointcloud();
    test_switch_matching();
    test_optimizers();
    test_fused_adam();
    test_jit_optimize();
    test_bad_input();
    test_blas_threads();
    test_device_helpers();
    return harness_report();
}
