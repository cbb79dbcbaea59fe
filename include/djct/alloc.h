/* The process's heap allocator, tuned for a training loop. */
#ifndef DJCT_ALLOC_H
#define DJCT_ALLOC_H

#include "common.h"

DJCT_BEGIN_DECLS

/** Keep freed heap memory in the process instead of returning it to the kernel (glibc mallopt:
 *  no mmap'ed chunks, trim threshold 2 GiB). Tensors and MPI temporaries of a training step are
 *  freed and allocated again every step; served from fresh mmaps they would pay first-touch page
 *  faults every step. Call it once, early in main, before threads start.
 *  @return 1 when applied; 0 when the user set MALLOC_MMAP_MAX_, MALLOC_MMAP_THRESHOLD_ or
 *  MALLOC_TRIM_THRESHOLD_ (their choice wins, nothing is changed) or glibc refused a setting. */
DJCT_API int djct_tune_malloc(void);

DJCT_END_DECLS

#endif /* DJCT_ALLOC_H */
