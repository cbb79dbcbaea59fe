/* Shared macros of the public API: symbol export and the C/C++ linkage guard.
 * Every public header includes this first; it pulls in no MPI, CUDA or libtorch header. */
#ifndef DJCT_COMMON_H
#define DJCT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define DJCT_API __attribute__((visibility("default")))
#else
#define DJCT_API
#endif

#ifdef __cplusplus
#define DJCT_BEGIN_DECLS extern "C" {
#define DJCT_END_DECLS }
#else
#define DJCT_BEGIN_DECLS
#define DJCT_END_DECLS
#endif

#endif /* DJCT_COMMON_H */
