/* The CPU cores a rank of a job may use. */
#ifndef DJCT_CPUS_H
#define DJCT_CPUS_H

#include "common.h"

DJCT_BEGIN_DECLS

/** How many threads one rank should run, given how many ranks share its node (`local_ranks`,
 *  e.g. djct_comm_local_size()). When the process is bound to a subset of the node's online CPUs
 *  (taskset, srun --cpu-bind, mpirun --bind-to), that subset is this rank's and its size is the
 *  answer; otherwise the node's online CPUs are shared equally by its `local_ranks` ranks (a
 *  `local_ranks` below 1 counts as 1). Cannot fail: at least 1. Thread-safe. */
DJCT_API int djct_cpus_per_rank(int local_ranks);

DJCT_END_DECLS

#endif /* DJCT_CPUS_H */
