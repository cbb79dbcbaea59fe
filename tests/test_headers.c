/* The umbrella header compiles as C11 and as C++17 with -Werror (see the Makefile rules),
 * pulls in no MPI/CUDA/torch header, and its functions link from both languages. */
#include "djct/djct.h"
#include "harness.h"

#ifdef MPI_VERSION
#error "djct/djct.h must not include mpi.h"
#endif
#ifdef __CUDA_RUNTIME_H__
#error "djct/djct.h must not include CUDA headers"
#endif

int main(void)
{
    CHECK(djct_version() != NULL);
    CHECK(djct_error_set(DJCT_EINVAL, "x") == DJCT_EINVAL);
    CHECK(djct_last_error_code() == DJCT_EINVAL);
    return harness_report();
}
