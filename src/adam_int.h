/* The fused Adam/AdamW pass the optimizer runs over a float32 parameter slab (src/torch/optim.cpp
 * keeps the state in libtorch's AdamParamState tensors, so checkpoints are libtorch's format).
 * Internal: not installed. */
#ifndef DJCT_ADAM_INT_H
#define DJCT_ADAM_INT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { DJCT_ADAM_PLAIN = 0, DJCT_ADAM_L2 = 1, DJCT_ADAM_DECOUPLED = 2 } djct_adam_mode;

/* One step's scalars, in float as libtorch's CPU kernels use them for float tensors. */
typedef struct {
    float b1, omb1;   /* beta1, 1 - beta1 */
    float b2, omb2;   /* beta2, 1 - beta2 */
    float sqrt_bc2;   /* sqrt(1 - beta2^step) */
    float eps;
    float neg_step;   /* -lr / (1 - beta1^step) */
    float wd;         /* DJCT_ADAM_L2: weight decay added to the gradient */
    float decay;      /* DJCT_ADAM_DECOUPLED: 1 - lr * weight_decay, applied to p first */
} djct_adam_scalars;

/* Fill the scalars of step `step` (1 for the first) from the double-precision options. */
void djct_adam_scalars_for(djct_adam_scalars *k, double lr, double beta1, double beta2, double eps,
                           double weight_decay, djct_adam_mode mode, long long step);

/* p, m (exp_avg), v (exp_avg_sq) updated in place from g, n elements, one pass. Per element it
 * computes what libtorch 1.13's Adam/AdamW step computes, in the same order:
 *   [decoupled] p *= decay;  [L2] g' = g + wd * p
 *   m = m * b1 + omb1 * g';  v = v * b2 + omb2 * g' * g'
 *   p = p + neg_step * m / (sqrt(v) / sqrt_bc2 + eps) */
void djct_adam_pass(float *p, const float *g, float *m, float *v, size_t n, const djct_adam_scalars *k,
                    djct_adam_mode mode);

#ifdef __cplusplus
}
#endif

#endif /* DJCT_ADAM_INT_H */
