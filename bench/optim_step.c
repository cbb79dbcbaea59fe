/* Optimizer step time: djct's fused Adam/AdamW pass against libtorch's own step
 * (DJCT_TORCH_ADAM=1), side by side on the same model, plus SGD for scale. One intra-op thread,
 * malloc tuned as djct_train does. Rounds alternate the two so drift hits both alike; each
 * prints the median step, the summary the median over rounds and the ratio.
 * Usage: optim_step [mlp|pointcloud] [rounds=7] [steps=300] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djct/djct.h"
#include "bench_util.h"

#define TRY(call) do { if ((call) < 0) { fprintf(stderr, "optim_step: %s\n", djct_last_error()); exit(1); } } while (0)

/* median step time (us) of `steps` steps after 20 warm-up steps; the gradient stays fixed */
static double time_steps(djct_model *m, int kind, double wd, int torch_adam, int steps)
{
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT;
    oo.kind = kind;
    oo.lr = 1e-3;
    oo.momentum = kind == DJCT_OPTIM_SGD ? 0.9 : 0.0;
    oo.weight_decay = wd;
    if (torch_adam)
        setenv("DJCT_TORCH_ADAM", "1", 1);
    djct_optimizer *o = NULL;
    TRY(djct_optimizer_create(&o, m, &oo));
    unsetenv("DJCT_TORCH_ADAM");
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int i = 0; i < 20 + steps; i++) {
        double t0 = 1e6 * bench_now_s();
        TRY(djct_optimizer_step(o));
        if (i >= 20)
            t[i - 20] = 1e6 * bench_now_s() - t0;
    }
    double r = bench_median(t, steps);
    free(t);
    djct_optimizer_free(o);
    return r;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "mlp";
    int rounds = argc > 2 ? atoi(argv[2]) : 7, steps = argc > 3 ? atoi(argv[3]) : 300;
    if (rounds < 1 || steps < 1 || (strcmp(name, "mlp") && strcmp(name, "pointcloud"))) {
        fprintf(stderr, "usage: optim_step [mlp|pointcloud] [rounds>=1] [steps>=1]\n");
        return 2;
    }
    djct_tune_malloc();
    TRY(djct_torch_set_num_threads(1));
    TRY(djct_torch_seed(0));
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    if (!strcmp(name, "mlp")) {
        mo.n_inputs = 784;
        mo.hidden = 256;
        mo.n_classes = 10;
    }
    djct_model *m = NULL;
    TRY(djct_model_builtin(&m, name, &mo));
    float *g;
    size_t n;
    TRY(djct_model_grads(m, &g, &n));
    for (size_t i = 0; i < n; i++) /* small, varied, like a gradient late in training */
        g[i] = 1e-3f * (float)((long)(i * 2654435761u % 2001) - 1000) / 1000.0f;
    printf("# optim_step: %s, %zu parameters, %d rounds x %d steps, 1 thread; BLAS: %s\n", name, n, rounds, steps,
           djct_blas_describe());
    const struct { const char *label; int kind; double wd; } k[] = {
        {"adam", DJCT_OPTIM_ADAM, 0.0}, {"adam+l2", DJCT_OPTIM_ADAM, 0.01}, {"adamw", DJCT_OPTIM_ADAMW, 0.01}};
    printf("| optimizer | djct fused us | libtorch us | libtorch / fused |\n|---|---|---|---|\n");
    for (size_t c = 0; c < sizeof k / sizeof *k; c++) {
        double *f = malloc(sizeof(double) * (size_t)rounds), *l = malloc(sizeof(double) * (size_t)rounds),
               *q = malloc(sizeof(double) * (size_t)rounds);
        for (int r = 0; r < rounds; r++) {
            int first = r % 2; /* alternate which runs first */
            double a = time_steps(m, k[c].kind, k[c].wd, first, steps);
            double b = time_steps(m, k[c].kind, k[c].wd, !first, steps);
            f[r] = first ? b : a;
            l[r] = first ? a : b;
            q[r] = l[r] / f[r];
        }
        printf("| %s | %.1f | %.1f | %.2f |\n", k[c].label, bench_median(f, rounds), bench_median(l, rounds), bench_median(q, rounds));
        free(f);
        free(l);
        free(q);
    }
    double *s = malloc(sizeof(double) * (size_t)rounds);
    for (int r = 0; r < rounds; r++)
        s[r] = time_steps(m, DJCT_OPTIM_SGD, 0.0, 0, steps);
    printf("| sgd (momentum 0.9, libtorch) | - | %.1f | - |\n", bench_median(s, rounds));
    free(s);
    djct_model_free(m);
    return 0;
}
