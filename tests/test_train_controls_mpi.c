/* training controls over real ranks (djct/train_controls.h): clipping bounds the update to
 * lr * clip_norm and leaves every rank with the same parameters; N accumulated micro-batches of B
 * events give the parameters of one batch of N*B (also with a shorter last group) with one
 * reduction per group; bf16 autocast trains (the loss falls) and differs from fp32; frozen
 * parameters stay bit-identical under AdamW's weight decay, an unknown pattern lists names; a
 * validation loss that improves for three epochs and then worsens keeps the model of the third
 * epoch, lowers the learning rate after the plateau patience and stops after the patience; fp16
 * on CPU and bad values are refused with one line. */
#define HARNESS_MPI
#include "harness.h"
#include "trainer_fixtures.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

/* Every rank's batch of step s holds `sizes[s]` events; event ids are contiguous per (step, rank)
 * in the order (earlier steps, lower ranks) first, so runs with different groupings of the same
 * events can be compared. */
typedef struct {
    int rank, size;
    const int *sizes;
    int64_t nsteps, step;
    int label_shift; /* added to every label (mod C): a validation set that gets worse */
    mem_batch b;
} mem_loader;

static int ml_begin(void *self, int64_t epoch, int64_t start, int64_t *n)
{
    mem_loader *l = self;
    (void)epoch;
    l->step = start;
    *n = l->nsteps;
    return 0;
}

static int ml_next(void *self, const djct_record **batch, djct_batch_info *info)
{
    mem_loader *l = self;
    int64_t before = 0;
    for (int64_t s = 0; s < l->step; s++)
        before += (int64_t)l->sizes[s] * l->size;
    int n = l->sizes[l->step];
    fill(before + (int64_t)l->rank * n, n, l->b.x, l->b.y, l->label_shift);
    mem_batch_set(&l->b, n);
    l->step++;
    *batch = &l->b.rec;
    info->n_events = n;
    info->n_elements = n;
    return 0;
}


static float *params_copy(djct_model *m, size_t *n)
{
    float *p = NULL;
    djct_model_params(m, &p, n);
    float *c = malloc(*n * sizeof(float));
    memcpy(c, p, *n * sizeof(float));
    return c;
}

static int consistent(djct_comm *comm, djct_model *m)
{
    float *p = NULL;
    size_t n = 0;
    djct_model_params(m, &p, &n);
    djct_comm_buffer pb = {p, n, DJCT_DTYPE_FLOAT32, -1};
    return djct_comm_check_consistent(comm, &pb, 1, NULL);
}

typedef struct {
    double loss[64];
    double lr[64];
    int n;
    djct_model *m;
    int64_t snap_epoch; /* copy the parameters at the end of this epoch */
    float *snap;
    size_t nsnap;
} recorder;

static int on_step(void *user, const djct_step_report *r)
{
    recorder *rec = user;
    if (rec->n < 64) {
        rec->loss[rec->n] = r->loss;
        rec->lr[rec->n] = r->lr;
        rec->n++;
    }
    if (rec->snap_epoch == r->epoch && r->step + 1 == r->steps) {
        free(rec->snap);
        rec->snap = params_copy(rec->m, &rec->nsnap);
    }
    return 0;
}

/* train for `epochs` with the controls (NULL: none); the trainer borrows `ld` */
static djct_trainer *train(djct_comm *comm, djct_model *m, djct_optimizer *o, djct_loader *ld,
                           djct_train_controls *tc, int overlap, int64_t epochs, recorder *rec)
{
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    to.overlap = overlap;
    to.epochs = epochs;
    to.controls = tc;
    to.checkpoint_every_minutes = 0;
    if (rec) {
        to.train_callback = on_step;
        to.callback_user = rec;
    }
    djct_trainer *t = NULL;
    CHECK_OK(djct_trainer_create(&t, m, o, comm, ld, NULL, &to));
    if (t)
        CHECK_OK(djct_trainer_fit(t));
    return t;
}

/* clipping: one SGD step (no momentum) moves the parameters by lr * clip_norm exactly, because
 * the unclipped gradient is larger; the same on every rank */
static void test_clip(djct_comm *comm)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    static const int sizes[1] = {16};
    double lr = 0.5, clip = 0.05;
    djct_model *m = make_model();
    djct_optimizer *o = make_opt(m, DJCT_OPTIM_SGD, lr, 0, 0);
    size_t n = 0;
    float *before = params_copy(m, &n);
    mem_loader l = {.rank = rank, .size = size, .sizes = sizes, .nsteps = 1};
    djct_train_controls tc = DJCT_TRAIN_CONTROLS_INIT;
    tc.clip_norm = clip;
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer *t = train(comm, m, o, &ld, &tc, 1, 1, NULL);
    float *p = NULL;
    djct_model_params(m, &p, &n);
    double d2 = 0;
    for (size_t i = 0; i < n; i++)
        d2 += ((double)p[i] - before[i]) * ((double)p[i] - before[i]);
    /* without clipping the same step moves much further: the gradient's norm is above the clip */
    djct_model *u = make_model();
    djct_optimizer *uo = make_opt(u, DJCT_OPTIM_SGD, lr, 0, 0);
    mem_loader l2 = {.rank = rank, .size = size, .sizes = sizes, .nsteps = 1};
    djct_loader ld2 = {&l2, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer *ut = train(comm, u, uo, &ld2, NULL, 1, 1, NULL);
    float *q = NULL;
    djct_model_params(u, &q, &n);
    double u2 = 0;
    for (size_t i = 0; i < n; i++)
        u2 += ((double)q[i] - before[i]) * ((double)q[i] - before[i]);
    if (rank == 0)
        printf("clip %.3g: |update| = %.6g (lr * clip = %.6g), unclipped |update| = %.6g\n", clip, sqrt(d2), lr * clip,
               sqrt(u2));
    CHECK(fabs(sqrt(d2) - lr * clip) < 1e-3 * lr * clip);
    CHECK(sqrt(u2) > 2 * lr * clip);
    CHECK_OK(consistent(comm, m));
    djct_trainer_free(ut);
    djct_optimizer_free(uo);
    djct_model_free(u);
    djct_trainer_free(t);
    djct_optimizer_free(o);
    djct_model_free(m);
    free(before);
}

/* accumulation: micro-batches of B, N per step, against one batch of N*B (group sizes `groups`) */
static void test_accumulate(djct_comm *comm, int overlap)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    enum { B = 5, N = 4, STEPS = 10 }; /* groups of 4, 4 and 2 micro-batches */
    static const int micro[STEPS] = {B, B, B, B, B, B, B, B, B, B};
    static const int whole[3] = {N * B, N * B, 2 * B};
    djct_model *m = make_model();
    djct_optimizer *o = make_opt(m, DJCT_OPTIM_SGD, 0.2, 0.5, 0);
    mem_loader l = {.rank = rank, .size = size, .sizes = micro, .nsteps = STEPS};
    djct_train_controls tc = DJCT_TRAIN_CONTROLS_INIT;
    tc.accumulate = N;
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer *t = train(comm, m, o, &ld, &tc, overlap, 2, NULL);
    int64_t gs = 0;
    djct_trainer_position(t, &gs, NULL, NULL, NULL);
    int64_t red = djct_trainer_reductions(t);

    djct_model *r = make_model();
    djct_optimizer *ro = make_opt(r, DJCT_OPTIM_SGD, 0.2, 0.5, 0);
    mem_loader lr = {.rank = rank, .size = size, .sizes = whole, .nsteps = 3};
    djct_loader rld = {&lr, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer *rt = train(comm, r, ro, &rld, NULL, overlap, 2, NULL);
    float *p = NULL, *q = NULL;
    size_t np = 0, nq = 0;
    djct_model_params(m, &p, &np);
    djct_model_params(r, &q, &nq);
    double d = np == nq ? max_diff(p, q, np) : 1e9;
    if (rank == 0)
        printf("accumulate %d (overlap %d): %lld optimizer steps, %lld reductions for %d batches; "
               "max |param - one batch of N*B| = %.3g\n", N, overlap, (long long)gs, (long long)red, 2 * STEPS, d);
    CHECK(gs == 6);
    CHECK(red == 6);
    CHECK(d < 2e-5);
    CHECK_OK(consistent(comm, m));
    djct_trainer_free(rt);
    djct_optimizer_free(ro);
    djct_model_free(r);
    djct_trainer_free(t);
    djct_optimizer_free(o);
    djct_model_free(m);
}

/* bf16: the loss falls over training, and differs from the fp32 run's (autocast is on) */
static void test_bf16(djct_comm *comm)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    static const int sizes[8] = {32, 32, 32, 32, 32, 32, 32, 32};
    double first[2], last[2];
    for (int bf = 0; bf < 2; bf++) {
        djct_model *m = make_model();
        djct_optimizer *o = make_opt(m, DJCT_OPTIM_ADAM, 0.01, 0, 0);
        mem_loader l = {.rank = rank, .size = size, .sizes = sizes, .nsteps = 8};
        djct_train_controls tc = DJCT_TRAIN_CONTROLS_INIT;
        tc.precision = bf ? DJCT_PRECISION_BF16 : DJCT_PRECISION_FP32;
        recorder rec = {.m = m, .snap_epoch = -1};
        djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
        djct_trainer *t = train(comm, m, o, &ld, &tc, 1, 5, &rec);
        /* the first and the last epoch's mean loss */
        first[bf] = last[bf] = 0;
        for (int i = 0; i < 8; i++) {
            first[bf] += rec.loss[i] / 8;
            last[bf] += rec.loss[rec.n - 8 + i] / 8;
        }
        if (bf)
            CHECK_OK(consistent(comm, m));
        djct_trainer_free(t);
        djct_optimizer_free(o);
        djct_model_free(m);
    }
    if (rank == 0)
        printf("bf16: mean loss of the first epoch %.5f, of the fifth %.5f (fp32: %.5f, %.5f)\n", first[1], last[1],
               first[0], last[0]);
    CHECK(last[1] < 0.8 * first[1]);
    CHECK(first[1] != first[0]);
}

/* freezing: AdamW with weight decay leaves the frozen parameters bit-identical */
static void test_freeze(djct_comm *comm)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    static const int sizes[4] = {16, 16, 16, 16};
    djct_model *m = make_model();
    djct_optimizer *o = make_opt(m, DJCT_OPTIM_ADAMW, 0.01, 0, 0.1);
    size_t n = 0;
    float *before = params_copy(m, &n);
    mem_loader l = {.rank = rank, .size = size, .sizes = sizes, .nsteps = 4};
    djct_train_controls tc = DJCT_TRAIN_CONTROLS_INIT;
    tc.freeze = "fc0_*";
    tc.clip_norm = 1.0; /* the frozen gradients are zero before clipping */
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer *t = train(comm, m, o, &ld, &tc, 1, 2, NULL);
    float *p = NULL;
    djct_model_params(m, &p, &n);
    harness_rows rows = HARNESS_ROWS_INIT;
    size_t nfrozen = 0;
    for (size_t i = 0; i < djct_model_n_params(m); i++) {
        const char *name = NULL;
        size_t off = 0, cnt = 0;
        djct_model_param_info(m, i, &name, &off, &cnt);
        int frozen = strncmp(name, "fc0_", 4) == 0;
        nfrozen += frozen;
        int same = memcmp(p + off, before + off, cnt * sizeof(float)) == 0;
        ROW(rows, frozen == same, "parameter %s: frozen %d, unchanged %d", name, frozen, same);
        ROW(rows, djct_model_is_trainable(m, i) == !frozen, "parameter %s: trainable flag", name);
    }
    CHECK_ROWS(rows);
    CHECK(nfrozen == 2);
    CHECK_OK(consistent(comm, m));
    djct_trainer_free(t);
    djct_optimizer_free(o);

    /* a pattern that matches nothing: an error naming it and listing the names */
    size_t nf = 99;
    int rc = djct_model_freeze(m, "fc0_*,encoder.*", &nf);
    const char *e = djct_last_error();
    if (rank == 0)
        printf("freeze 'encoder.*': %s\n", e);
    CHECK(rc == DJCT_EINVAL && strstr(e, "'encoder.*'") && strstr(e, "fc0_weight") && strstr(e, "out_bias"));
    djct_model_free(m);
    free(before);
}

/* fp16 on a CPU model: libtorch 1.13 autocasts CPU to bfloat16 only, so the trainer refuses it
 * with one line; bad control values are refused naming the field */
static void test_refusals(djct_comm *comm)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    static const int sizes[1] = {8};
    djct_model *m = make_model();
    djct_optimizer *o = make_opt(m, DJCT_OPTIM_SGD, 0.1, 0, 0);
    mem_loader l = {.rank = rank, .size = size, .sizes = sizes, .nsteps = 1};
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    djct_train_controls tc = DJCT_TRAIN_CONTROLS_INIT;
    tc.precision = DJCT_PRECISION_FP16;
    to.controls = &tc;
    djct_trainer *t = NULL;
    int rc = djct_trainer_create(&t, m, o, comm, &ld, NULL, &to);
    const char *e = djct_last_error();
    if (rank == 0)
        printf("fp16 on CPU: %s\n", e);
    CHECK(rc == DJCT_ENOTSUP && t == NULL && strstr(e, "fp16") && strstr(e, "bfloat16") && !strchr(e, '\n'));
    tc = (djct_train_controls)DJCT_TRAIN_CONTROLS_INIT;
    tc.accumulate = 0;
    CHECK(djct_trainer_create(&t, m, o, comm, &ld, NULL, &to) == DJCT_EINVAL && strstr(djct_last_error(), "accumulate 0"));
    tc = (djct_train_controls)DJCT_TRAIN_CONTROLS_INIT;
    tc.patience = 2; /* early stopping without a validation loader */
    CHECK(djct_trainer_create(&t, m, o, comm, &ld, NULL, &to) == DJCT_EINVAL && strstr(djct_last_error(), "validation"));
    djct_optimizer_free(o);
    djct_model_free(m);
}

/* the monitor: validation on the training events improves while the model learns; from the
 * fourth validation on the labels are shifted, so the loss is worse than the best of epoch 2 */
typedef struct {
    mem_loader l;
    int calls;
} val_loader;

static int vl_begin(void *self, int64_t epoch, int64_t start, int64_t *n)
{
    val_loader *v = self;
    v->l.label_shift = v->calls++ >= 3 ? 1 : 0;
    return ml_begin(&v->l, epoch, start, n);
}

static int vl_next(void *self, const djct_record **b, djct_batch_info *info)
{
    return ml_next(&((val_loader *)self)->l, b, info);
}

static void test_monitor(djct_comm *comm)
{
    int rank = djct_comm_rank(comm), size = djct_comm_size(comm);
    static const int sizes[4] = {24, 24, 24, 24};
    char dir[] = "/tmp/djct_ctl_XXXXXX";
    int ok = 1;
    if (rank == 0)
        ok = mkdtemp(dir) != NULL;
    djct_comm_bcast(comm, dir, sizeof(dir), 0, "test dir");
    CHECK(ok);
    djct_model *m = make_model();
    djct_optimizer *o = make_opt(m, DJCT_OPTIM_SGD, 0.3, 0.5, 0);
    mem_loader l = {.rank = rank, .size = size, .sizes = sizes, .nsteps = 4};
    val_loader v = {.l = {.rank = rank, .size = size, .sizes = sizes, .nsteps = 4}};
    djct_loader ld = {&l, ml_begin, ml_next, ml_release, NULL, NULL, NULL};
    djct_loader vld = {&v, vl_begin, vl_next, ml_release, NULL, NULL, NULL};
    djct_train_controls tc = DJCT_TRAIN_CONTROLS_INIT;
    tc.keep_best = 1;
    tc.patience = 3;
    tc.plateau_patience = 2;
    tc.plateau_factor = 0.5;
    recorder rec = {.m = m, .snap_epoch = 2};
    djct_trainer_options to = DJCT_TRAINER_OPTIONS_INIT;
    to.epochs = 20;
    to.controls = &tc;
    to.run_dir = dir;
    to.checkpoint_every_minutes = 0;
    to.train_callback = on_step;
    to.callback_user = &rec;
    djct_trainer *t = NULL;
    CHECK_OK(djct_trainer_create(&t, m, o, comm, &ld, &vld, &to));
    CHECK_OK(djct_trainer_fit(t));
    int64_t ep = 0;
    djct_trainer_position(t, NULL, NULL, &ep, NULL);
    if (rank == 0)
        printf("monitor: stopped after %lld epochs (reason %d); lr of epochs 0..5: %g %g %g %g %g %g\n", (long long)ep,
               djct_trainer_stop_reason(t), rec.lr[0], rec.lr[4], rec.lr[8], rec.lr[12], rec.lr[16],
               rec.n > 20 ? rec.lr[20] : -1.0);
    /* validations 0, 1, 2 improve; 3, 4, 5 do not: patience 3 stops after epoch 5 */
    CHECK(djct_trainer_stop_reason(t) == DJCT_STOP_EARLY && ep == 6);
    /* plateau patience 2: the lr halves after validation 4 (epoch 5 trains at half) */
    CHECK(rec.n == 24 && rec.lr[16] == 0.3 && rec.lr[20] == 0.15);
    if (rank == 0) {
        char p[256], *js = NULL;
        size_t len = 0;
        snprintf(p, sizeof(p), "%s/best/best.json", dir);
        CHECK(djct_read_file((void **)&js, &len, p) == 0 && js && strstr(js, "\"epoch\": 2,") &&
              strstr(js, "\"metric\": \"val_loss\""));
        free(js);
        djct_model *best = NULL;
        snprintf(p, sizeof(p), "%s/best/model.pt", dir);
        CHECK_OK(djct_model_load(&best, p, NULL));
        float *bp = NULL;
        size_t nb = 0;
        if (best)
            djct_model_params(best, &bp, &nb);
        CHECK(rec.snap && nb == rec.nsnap && memcmp(bp, rec.snap, nb * sizeof(float)) == 0);
        djct_model_free(best);
        djct_remove_tree(dir);
    }
    free(rec.snap);
    djct_trainer_free(t);
    djct_optimizer_free(o);
    djct_model_free(m);
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
    djct_model *probe = NULL;
    if (djct_model_builtin(&probe, "mlp", NULL) == DJCT_ENOTSUP) {
        harness_skip("no libtorch in this build");
        djct_comm_free(comm);
        return harness_report_mpi();
    }
    djct_model_free(probe);
    djct_torch_set_num_threads(1);

    test_clip(comm);
    test_accumulate(comm, 1);
    test_accumulate(comm, 0);
    test_bf16(comm);
    test_freeze(comm);
    test_refusals(comm);
    test_monitor(comm);

    djct_comm_free(comm);
    return harness_report_mpi();
}
