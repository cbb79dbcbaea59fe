/* The MPI side of the harness: real ranks, counts summed over ranks, rank 0 prints the line.
 * Also checks that the launcher gave every rank a distinct identity from MPI itself. */
#define HARNESS_MPI
#include "harness.h"

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size >= 2);

    /* every rank counts one check; the sum must equal the world size */
    int one = 1, sum = 0;
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(sum == size);

    /* distinct ranks: gather and check 0..size-1 each appear once */
    int *ranks = calloc((size_t)size, sizeof(int));
    MPI_Allgather(&rank, 1, MPI_INT, ranks, 1, MPI_INT, MPI_COMM_WORLD);
    int ok = 1;
    for (int i = 0; i < size; i++)
        ok &= ranks[i] == i;
    CHECK(ok);
    free(ranks);

    /* errors are per-process: an error set on rank 1 is not seen on rank 0 */
    if (rank == 1)
        djct_error_set(DJCT_EMPI, "rank %d only", rank);
    CHECK((rank == 1) == (djct_last_error_code() == DJCT_EMPI));
    return harness_report_mpi();
}
