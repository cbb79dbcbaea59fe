/* Shared synthetic batch of bench/model_step.c and bench/model_step_plain.cpp: the same shapes
 * and row splits (values only need to be finite and labels in range). MLP: 128 x 784 -> 10
 * (Fashion-MNIST sizes, perf_baselines section 2). Point cloud: 32 events, 50..350 points each
 * (mean ~200), 8 features, hidden 64 (section 3). */
#ifndef BENCH_MODEL_STEP_DATA_H
#define BENCH_MODEL_STEP_DATA_H
#include <stdint.h>
#include <stdlib.h>

enum { MLP_B = 128, MLP_IN = 784, MLP_H = 256, MLP_C = 10, PC_E = 32, PC_F = 8, PC_H = 64 };

struct bench_data {
    float *x, *target;
    int32_t *label;
    int64_t *rs, n_points;
};

static inline void bench_data_make(struct bench_data *d, int pc)
{
    uint64_t r = 42;
    int64_t n;
    d->rs = (int64_t *)calloc(PC_E + 1, sizeof(int64_t));
    for (int e = 0; e < PC_E; e++)
        d->rs[e + 1] = d->rs[e] + 50 + (e * 97) % 301;
    d->n_points = d->rs[PC_E];
    n = pc ? d->n_points * PC_F : (int64_t)MLP_B * MLP_IN;
    d->x = (float *)malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        d->x[i] = (float)((r >> 40) / 16777216.0) - 0.5f;
    }
    int nb = pc ? PC_E : MLP_B;
    d->label = (int32_t *)malloc((size_t)nb * sizeof(int32_t));
    d->target = (float *)malloc((size_t)nb * sizeof(float));
    for (int b = 0; b < nb; b++) {
        d->label[b] = b % (pc ? 2 : MLP_C);
        d->target[b] = 0.01f * (float)b;
    }
}

static inline void bench_data_free(struct bench_data *d)
{
    free(d->x); free(d->target); free(d->label); free(d->rs);
}
#endif
