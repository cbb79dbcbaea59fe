/* Step time (forward + backward + Adam) of a built-in model through djct's C API.
 * Usage: model_step mlp|pointcloud [steps=200] [warmup=20] [save.pt]
 * JIT_OPTIMIZE=0|1 in the environment sets djct_torch_set_jit_optimize (unset: libtorch's default, on).
 * Prints "bridge <model> median_ms <x>"; with save.pt, also saves the model so that
 * model_step_plain runs the very same TorchScript. The data follow bench/model_step_data.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "djct/djct.h"
#include "model_step_data.h"
#include "bench_util.h"

#define TRY(call) do { if ((call) < 0) { fprintf(stderr, "model_step: %s\n", djct_last_error()); return 1; } } while (0)

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "mlp";
    int steps = argc > 2 ? atoi(argv[2]) : 200, warm = argc > 3 ? atoi(argv[3]) : 20;
    int pc = !strcmp(name, "pointcloud");
    djct_tune_malloc(); /* as djct_train does; model_step_plain does the same mallopt */
    TRY(djct_torch_set_num_threads(1));
    if (getenv("JIT_OPTIMIZE"))
        TRY(djct_torch_set_jit_optimize(atoi(getenv("JIT_OPTIMIZE"))));
    TRY(djct_torch_seed(0));
    djct_model_options mo = DJCT_MODEL_OPTIONS_INIT;
    if (pc) { mo.n_inputs = PC_F; mo.hidden = PC_H; } else { mo.n_inputs = MLP_IN; mo.hidden = MLP_H; mo.n_classes = MLP_C; }
    djct_model *m = NULL;
    TRY(djct_model_builtin(&m, name, &mo));
    if (argc > 4)
        TRY(djct_model_save(m, argv[4]));
    struct bench_data d;
    bench_data_make(&d, pc);
    djct_array feat, targ[2];
    memset(&feat, 0, sizeof feat);
    memset(targ, 0, sizeof targ);
    feat.dtype = DJCT_DTYPE_FLOAT32;
    feat.values = d.x;
    targ[0].dtype = DJCT_DTYPE_INT32; targ[0].ndim = 1; targ[0].values = d.label;
    targ[1].dtype = DJCT_DTYPE_FLOAT32; targ[1].ndim = 1; targ[1].values = d.target;
    if (pc) {
        feat.ndim = 3; feat.shape[0] = PC_E; feat.shape[1] = -d.n_points; feat.shape[2] = PC_F;
        feat.row_splits = d.rs; feat.n_row_splits = PC_E + 1; feat.n_values = (size_t)d.n_points * PC_F;
        targ[0].shape[0] = targ[1].shape[0] = PC_E; targ[0].n_values = targ[1].n_values = PC_E;
    } else {
        feat.ndim = 2; feat.shape[0] = MLP_B; feat.shape[1] = MLP_IN; feat.n_values = MLP_B * MLP_IN;
        targ[0].shape[0] = MLP_B; targ[0].n_values = MLP_B;
    }
    djct_optimizer *o = NULL;
    djct_optimizer_options oo = DJCT_OPTIMIZER_OPTIONS_INIT; /* Adam 1e-3 */
    TRY(djct_optimizer_create(&o, m, &oo));
    double *t = calloc((size_t)steps, sizeof *t), loss = 0;
    for (int s = -warm; s < steps; s++) {
        double t0 = 1e3 * bench_now_s();
        TRY(djct_model_zero_grad(m));
        TRY(djct_model_forward(m, &feat, 1, targ, pc ? 2 : 1));
        TRY(djct_model_backward(m, &loss));
        TRY(djct_optimizer_step(o));
        if (s >= 0)
            t[s] = 1e3 * bench_now_s() - t0;
    }
    bench_sort(t, steps);
    printf("bridge %s median_ms %.4f last_loss %.4f\n", name, t[steps / 2], loss);
    djct_optimizer_free(o);
    djct_model_free(m);
    bench_data_free(&d);
    free(t);
    return 0;
}
