/* The BLAS under libtorch's CPU kernels (Debian: OpenBLAS through libblas.so.3).
 *  - Threads: OpenBLAS runs its own thread pool, one thread per core unless OPENBLAS_NUM_THREADS
 *    says otherwise, whatever at::set_num_threads says. With several ranks per node those pools
 *    oversubscribe the cores, and a step slows down several times over.
 *    djct_torch_set_num_threads therefore sizes it too.
 *  - Kernels: OpenBLAS picks them once, when it loads, from the CPU, unless OPENBLAS_CORETYPE
 *    names a kernel set. djct leaves that choice alone and reports it: an AVX2 set forced on an
 *    AVX-512 CPU (OPENBLAS_CORETYPE=Haswell) leaves sgemm's widest kernels unused.
 * Everything is looked up at run time (dlsym): with another BLAS these functions do nothing. */
#ifndef DJCT_BLAS_H
#define DJCT_BLAS_H

#include "common.h"

DJCT_BEGIN_DECLS

/** Size OpenBLAS's thread pool (n >= 1). Returns 1 when set; 0 when the process has no OpenBLAS
 *  or OPENBLAS_NUM_THREADS / GOTO_NUM_THREADS is set (the user's choice is kept). */
DJCT_API int djct_blas_set_threads(int n);

/** One line for start-up reports, e.g. "OpenBLAS 0.3.21, Cooperlake kernels, 1 thread", with a
 *  hint when OPENBLAS_CORETYPE forces AVX2 kernels on an AVX-512 CPU; "not OpenBLAS" otherwise.
 *  The string is static (not thread-safe; call from one thread). */
DJCT_API const char *djct_blas_describe(void);

DJCT_END_DECLS

#endif /* DJCT_BLAS_H */
