/* cpus: djct_cpus_per_rank gives a rank bound to a subset of the CPUs that subset, and shares the
 * online CPUs among the node's ranks otherwise, never less than one. The binding is changed with
 * sched_setaffinity on this process, as a launcher would set it. */
#include "harness.h"

#include <sched.h>
#include <unistd.h>

int main(void)
{
    int online = (int)sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t all;
    if (sched_getaffinity(0, sizeof(all), &all) != 0 || online < 2) {
        harness_skip("fewer than 2 online CPUs, or no affinity mask to read");
        return harness_report();
    }
    if (CPU_COUNT(&all) != online) {
        harness_skip("started bound to a subset of the CPUs; the unbound case cannot be set up here");
    } else {
        CHECK(djct_cpus_per_rank(1) == online);
        CHECK(djct_cpus_per_rank(2) == (online / 2 > 1 ? online / 2 : 1));
        CHECK(djct_cpus_per_rank(online + 1) == 1); /* more ranks than CPUs: still one thread */
        CHECK(djct_cpus_per_rank(0) == online);     /* below 1 counts as 1 */
    }
    /* bound to all but one CPU: that subset is the rank's, however many ranks share the node */
    cpu_set_t sub = all;
    int dropped = 0;
    for (int c = 0; c < CPU_SETSIZE && !dropped; c++)
        if (CPU_ISSET(c, &sub)) {
            CPU_CLR(c, &sub);
            dropped = 1;
        }
    int want = CPU_COUNT(&sub);
    if (sched_setaffinity(0, sizeof(sub), &sub) != 0) {
        harness_skip("sched_setaffinity refused a subset of the CPUs");
    } else {
        CHECK(djct_cpus_per_rank(1) == want && djct_cpus_per_rank(want + 1) == want);
        sched_setaffinity(0, sizeof(all), &all);
    }
    return harness_report();
}
