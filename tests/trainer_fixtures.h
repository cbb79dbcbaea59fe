/* Test fixtures for the trainer's MPI tests (test_trainer_mpi.c, test_train_controls_mpi.c): a
 * classification set held in memory whose event g (F inputs, a label out of C) depends only on g,
 * so runs that group the same events differently can be compared; one batch of it as a record;
 * the small MLP both train (libtorch seeded alike every time), its optimizer, and the largest
 * difference of two parameter slabs. */
#ifndef DJCT_TEST_TRAINER_FIXTURES_H
#define DJCT_TEST_TRAINER_FIXTURES_H

#include "djct/djct.h"

#include <math.h>
#include <stdio.h>

#define F 6      /* inputs */
#define C 3      /* classes */
#define MAXB 256 /* events in one batch at most */

/* events g0 .. g0+n-1: inputs x (n, F) and labels y (n); `shift` is added to every label (mod C) */
static inline void fill(int64_t g0, int n, float *x, int32_t *y, int shift)
{
    for (int i = 0; i < n; i++) {
        int64_t g = g0 + i;
        for (int j = 0; j < F; j++)
            x[i * F + j] = (float)sin(0.37 * (double)g + 1.3 * j) + (float)((g * 7 + j) % C == 0);
        y[i] = (int32_t)(((g * 7) + shift) % C);
    }
}

/* one batch in memory, as the record a loader hands out */
typedef struct {
    float x[MAXB * F];
    int32_t y[MAXB];
    djct_array feat, lab;
    djct_record rec;
} mem_batch;

/* b->rec describes the first n events in b->x and b->y */
static inline void mem_batch_set(mem_batch *b, int n)
{
    b->feat = (djct_array){.name = "x", .dtype = DJCT_DTYPE_FLOAT32, .ndim = 2, .shape = {n, F},
                           .values = b->x, .n_values = (size_t)n * F};
    b->lab = (djct_array){.name = "label", .dtype = DJCT_DTYPE_INT32, .ndim = 1, .shape = {n},
                          .values = b->y, .n_values = (size_t)n};
    b->rec = (djct_record){.features = &b->feat, .n_features = 1, .truths = &b->lab, .n_truths = 1};
}

/* the loaders' release: their batches live in the loader */
static inline void ml_release(void *self, const djct_record *b) { (void)self; (void)b; }

/* the MLP F -> 16 -> C, the same initial parameters every call */
static inline djct_model *make_model(void)
{
    djct_model *m = NULL;
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    mo.n_inputs = F;
    mo.hidden = 16;
    mo.n_layers = 1;
    mo.n_classes = C;
    djct_torch_seed(7);
    if (djct_model_builtin(&m, "mlp", &mo))
        fprintf(stderr, "model: %s\n", djct_last_error());
    return m;
}

static inline djct_optimizer *make_opt(djct_model *m, int kind, double lr, double momentum, double wd)
{
    djct_optimizer *o = NULL;
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.kind = kind;
    oo.lr = lr;
    oo.momentum = momentum;
    oo.weight_decay = wd;
    if (djct_optimizer_create(&o, m, &oo))
        fprintf(stderr, "optimizer: %s\n", djct_last_error());
    return o;
}

static inline double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

#endif
