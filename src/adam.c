/* Fused Adam/AdamW over a float32 slab: see adam_int.h. libtorch 1.13's step is eight tensor
 * operations (mul_, add_, mul_, addcmul_, sqrt, div, add_, addcdiv_), each a pass over the slab
 * and two of them allocating one: ~20 slab-sized reads and writes. This is one pass, 4 reads and
 * 3 writes. Built with -fno-math-errno so sqrtf vectorises, and cloned for
 * AVX-512 / AVX2 / baseline x86-64, the loader picking the best the CPU has. */
#include "adam_int.h"
#include "djct_int.h"

#include <math.h>

void djct_adam_scalars_for(djct_adam_scalars *k, double lr, double beta1, double beta2, double eps,
                           double weight_decay, djct_adam_mode mode, long long step)
{
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    k->b1 = (float)beta1;
    k->omb1 = (float)(1.0 - beta1);
    k->b2 = (float)beta2;
    k->omb2 = (float)(1.0 - beta2);
    k->sqrt_bc2 = (float)sqrt(bc2);
    k->eps = (float)eps;
    k->neg_step = (float)(-(lr / bc1));
    k->wd = mode == DJCT_ADAM_L2 ? (float)weight_decay : 0.0f;
    k->decay = mode == DJCT_ADAM_DECOUPLED ? (float)(1.0 - lr * weight_decay) : 1.0f;
}

/* the element update; L2 and DEC are constants at each use, so the branches fold away */
#define ADAM_ELEMENT(i, L2, DEC)                                                                   \
    do {                                                                                           \
        float pi = p[i], gi = g[i];                                                                \
        if (DEC)                                                                                   \
            pi = pi * k.decay;                                                                     \
        if (L2)                                                                                    \
            gi = gi + k.wd * pi;                                                                   \
        float mi = m[i] * k.b1;                                                                    \
        mi = mi + k.omb1 * gi;                                                                     \
        float vi = v[i] * k.b2;                                                                    \
        vi = vi + k.omb2 * gi * gi;                                                                \
        float den = sqrtf(vi) / k.sqrt_bc2;                                                        \
        den = den + k.eps;                                                                         \
        p[i] = pi + k.neg_step * mi / den;                                                         \
        m[i] = mi;                                                                                 \
        v[i] = vi;                                                                                 \
    } while (0)

/* blocks of 16 independent elements (straight-line code the compiler vectorises at -O2), then
 * the tail one by one */
#define ADAM_LOOP(L2, DEC)                                                                         \
    do {                                                                                           \
        size_t i = 0;                                                                              \
        for (; i + 16 <= n; i += 16)                                                               \
            for (size_t j = i; j < i + 16; j++)                                                    \
                ADAM_ELEMENT(j, L2, DEC);                                                          \
        for (; i < n; i++)                                                                         \
            ADAM_ELEMENT(i, L2, DEC);                                                              \
    } while (0)


DJCT_CLONES static void pass_plain(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                              size_t n, djct_adam_scalars k)
{
    ADAM_LOOP(0, 0);
}

DJCT_CLONES static void pass_l2(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                           size_t n, djct_adam_scalars k)
{
    ADAM_LOOP(1, 0);
}

DJCT_CLONES static void pass_decoupled(float *restrict p, const float *restrict g, float *restrict m,
                                  float *restrict v, size_t n, djct_adam_scalars k)
{
    ADAM_LOOP(0, 1);
}

void djct_adam_pass(float *p, const float *g, float *m, float *v, size_t n, const djct_adam_scalars *k,
                    djct_adam_mode mode)
{
    if (mode == DJCT_ADAM_L2)
        pass_l2(p, g, m, v, n, *k);
    else if (mode == DJCT_ADAM_DECOUPLED)
        pass_decoupled(p, g, m, v, n, *k);
    else
        pass_plain(p, g, m, v, n, *k);
}
