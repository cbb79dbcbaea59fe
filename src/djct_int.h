/* Internals shared within src/: argument checks and small helpers. Not installed. */
#ifndef DJCT_INT_H
#define DJCT_INT_H

#include "djct/array.h"
#include "djct/error.h"

/* Check a required argument: sets "invalid argument: NAME" and returns DJCT_EINVAL. */
#define DJCT_CHECK_ARG(x)                                                                  \
    do {                                                                                   \
        if (!(x))                                                                          \
            return djct_error_set(DJCT_EINVAL, "invalid argument: %s (in %s)", #x, __func__); \
    } while (0)

/* Reject an options struct from a different header version, naming the struct. */
#define DJCT_CHECK_VERSION(opts, want, name)                                               \
    do {                                                                                   \
        if ((opts) && (opts)->version != (want))                                           \
            return djct_error_set(DJCT_EINVAL,                                             \
                                  "%s version %u is not supported (this library has %u); " \
                                  "initialise it with the _INIT macro",                    \
                                  name, (unsigned)(opts)->version, (unsigned)(want));      \
    } while (0)

#define DJCT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Hot loops over whole gradient/parameter slabs: cloned for AVX-512, AVX2 and baseline x86-64,
 * the loader picking the best the CPU has (gcc; not under ASan, whose ifunc resolution runs too
 * early). DJCT_VECTORIZE also asks for -O3, whose vectoriser handles loops with epilogues that
 * gcc 12's -O2 leaves scalar. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define DJCT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define DJCT_VECTORIZE __attribute__((optimize("O3"), target_clones("avx512f", "avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define DJCT_CLONES
#define DJCT_VECTORIZE __attribute__((optimize("O3")))
#else
#define DJCT_CLONES
#define DJCT_VECTORIZE
#endif

/* 1 when none of g[0..n) is NaN or +-Inf (the trainer's check of the gradients before a step). */
int djct_all_finite(const float *g, size_t n);

/* The first event (row) of a batch that holds a NaN or +-Inf in any float32/float64 array
 * (features, truths, weights), or -1; *array (may be NULL) names that array ("features 'points'",
 * "truths 1"). For messages after a non-finite loss: only called on such steps. */
int64_t djct_record_nonfinite_event(const djct_record *r, char *array, size_t cap);

#endif /* DJCT_INT_H */
