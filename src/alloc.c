/* Heap tuning for the training loop (include/djct/alloc.h). */
#include "djct/alloc.h"

#include <limits.h>
#include <malloc.h>
#include <stdlib.h>

int djct_tune_malloc(void)
{
    if (getenv("MALLOC_MMAP_MAX_") || getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_"))
        return 0;
    int ok = mallopt(M_MMAP_MAX, 0) == 1;
    ok &= mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
    return ok ? 1 : 0;
}
