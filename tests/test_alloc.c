/* alloc: djct_tune_malloc applies glibc's settings, and leaves them to the user when a MALLOC_*_
 * variable is set. */
#include "harness.h"

#include <stdlib.h>

int main(void)
{
    setenv("MALLOC_TRIM_THRESHOLD_", "131072", 1);
    CHECK(djct_tune_malloc() == 0); /* the user's choice wins */
    unsetenv("MALLOC_TRIM_THRESHOLD_");
    unsetenv("MALLOC_MMAP_MAX_");
    unsetenv("MALLOC_MMAP_THRESHOLD_");
#if defined(__SANITIZE_ADDRESS__)
    harness_skip("AddressSanitizer replaces glibc's malloc, whose settings djct_tune_malloc changes");
#else
    CHECK(djct_tune_malloc() == 1);
#endif
    return harness_report();
}
