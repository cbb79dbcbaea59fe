/* The CPU cores of a rank (include/djct/cpus.h). */
#include "djct/cpus.h"

#include <sched.h>
#include <unistd.h>

int djct_cpus_per_rank(int local_ranks)
{
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int avail = (int)online;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        avail = CPU_COUNT(&set);
    /* bound to a subset: that subset is this rank's; otherwise share the node's cores */
    int per = avail < online ? avail : avail / (local_ranks < 1 ? 1 : local_ranks);
    return per < 1 ? 1 : per;
}
