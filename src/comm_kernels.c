/* comm's element passes over whole buckets: float16/bfloat16 <-> float32 (round to nearest
 * even), scaling by a weight or a divisor (correctly rounded), packing and unpacking, and the two
 * MPI operators comm defines. No MPI call and no state beyond the divisor of the sum-and-divide
 * operator. */
#include "comm_int.h"
#include "djct_int.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- float16 and bfloat16 ---- */

static inline float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint32_t f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0)
            bits = sign;
        else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    return f32_from_bits(bits);
}

static uint16_t float_to_half(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((ax >> 13) - ((127 - 15) << 10)), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static float bf16_to_float(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

static uint16_t float_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* The passes below run over whole buckets and are DJCT_VECTORIZE'd: with shared-memory copies
 * as fast as they are, an SSE2 pass (or operator) would make an average visibly slower than Open
 * MPI's own, AVX-512, SUM. Each keeps one loop per dtype (and per exact reciprocal): a test inside
 * one shared loop would stop it vectorising. */

static int is_pow2(double d)
{
    int e;
    return d > 0 && frexp(d, &e) == 0.5;
}

/* dst[i] = src[i] * w (dst may be src), or 0 when w == 0 (so NaN from a weightless rank cannot
 * leak); one pass, a copy when w == 1 */
DJCT_VECTORIZE static void mul_into(void *dst, const void *src, size_t n, djct_dtype rt, double w)
{
    if (w == 0.0) {
        memset(dst, 0, n * djct_dtype_size(rt));
        return;
    }
    if (w == 1.0) {
        if (dst != src)
            memcpy(dst, src, n * djct_dtype_size(rt));
        return;
    }
    if (rt == DJCT_DTYPE_FLOAT64) {
        double *d = dst;
        const double *x = src;
        for (size_t i = 0; i < n; i++)
            d[i] = x[i] * w;
    } else {
        float *d = dst, wf = (float)w;
        const float *x = src;
        for (size_t i = 0; i < n; i++)
            d[i] = x[i] * wf;
    }
}

/* dst[i] = src[i] / d (dst may be src), correctly rounded (a multiply when 1/d is exact); one
 * pass, a copy when d == 1 */
DJCT_VECTORIZE static void div_into(void *dst, const void *src, size_t n, djct_dtype rt, double d)
{
    if (d == 1.0) {
        if (dst != src)
            memcpy(dst, src, n * djct_dtype_size(rt));
        return;
    }
    int p2 = is_pow2(d);
    if (rt == DJCT_DTYPE_FLOAT64) {
        double *v = dst, r = 1.0 / d;
        const double *x = src;
        if (p2)
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] * r;
        else
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] / d;
    } else {
        float *v = dst, df = (float)d, r = 1.0f / df;
        const float *x = src;
        if (p2)
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] * r;
        else
            for (size_t i = 0; i < n; i++)
                v[i] = x[i] / df;
    }
}

void comm_scale_mul(void *x, size_t n, djct_dtype rt, double w) { mul_into(x, x, n, rt, w); }
void comm_scale_div(void *x, size_t n, djct_dtype rt, double d) { div_into(x, x, n, rt, d); }

/* With two ranks every result element comes from exactly one application of the reduction
 * operator, whatever algorithm MPI picks (there is no identity to combine with). So the division
 * can ride inside the operator: (a + b) / d, rounded exactly as sum-then-comm_scale_div. This saves a
 * whole pass over the bucket. The divisor is thread-local and
 * only set around a call that completes before returning (blocking or watched), never while a
 * non-blocking step is in flight. */
static _Thread_local double tl_div;

void comm_sum_div_set(double d) { tl_div = d; }

/* the step's weights: {sum, max, min} (three doubles per element of wstat_t) */
void comm_wstat_op(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    const double *a = in;
    double *b = inout;
    for (int i = 0; i < *len; i++, a += 3, b += 3) {
        b[0] += a[0];
        b[1] = a[1] > b[1] ? a[1] : b[1];
        b[2] = a[2] < b[2] ? a[2] : b[2];
    }
}

DJCT_VECTORIZE void comm_sum_div_op(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    size_t n = (size_t)*len;
    int p2 = is_pow2(tl_div);
    if (*dt == MPI_DOUBLE) {
        const double *a = in;
        double *b = inout, d = tl_div, r = 1.0 / d;
        if (p2)
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) * r;
        else
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) / d;
    } else {
        const float *a = in;
        float *b = inout, d = (float)tl_div, r = 1.0f / d;
        if (p2)
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) * r;
        else
            for (size_t i = 0; i < n; i++)
                b[i] = (a[i] + b[i]) / d;
    }
}

/* dst (reduction dtype) = src (buffer dtype) * w; w == 0 writes zeros */
DJCT_VECTORIZE void comm_pack_seg(void *dst, const void *src, size_t n, djct_dtype st, double w)
{
    if (st == DJCT_DTYPE_FLOAT64 || st == DJCT_DTYPE_FLOAT32) { /* copy and scale in one pass */
        mul_into(dst, src, n, st, w);
        return;
    }
    if (w == 0.0) {
        memset(dst, 0, n * 4);
        return;
    }
    float *d = dst, wf = (float)w;
    const uint16_t *s = src;
    if (st == DJCT_DTYPE_FLOAT16)
        for (size_t i = 0; i < n; i++)
            d[i] = half_to_float(s[i]) * wf;
    else
        for (size_t i = 0; i < n; i++)
            d[i] = bf16_to_float(s[i]) * wf;
}

/* dst (buffer dtype) = src (reduction dtype) / div */
DJCT_VECTORIZE void comm_unpack_seg(void *dst, void *src, size_t n, djct_dtype dt, double div)
{
    if (dt == DJCT_DTYPE_FLOAT64 || dt == DJCT_DTYPE_FLOAT32) { /* divide and copy in one pass */
        div_into(dst, src, n, dt, div);
        return;
    }
    comm_scale_div(src, n, DJCT_DTYPE_FLOAT32, div);
    const float *s = src;
    uint16_t *d = dst;
    if (dt == DJCT_DTYPE_FLOAT16)
        for (size_t i = 0; i < n; i++)
            d[i] = float_to_half(s[i]);
    else
        for (size_t i = 0; i < n; i++)
            d[i] = float_to_bf16(s[i]);
}

