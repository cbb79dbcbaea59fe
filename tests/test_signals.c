/* signals: handlers only set flags; USR1/TERM mean preempt, INT means stop, preempt wins. */
#include "harness.h"

#include <signal.h>

/* the code the SLURM templates requeue on (scripts/slurm): part of the contract, fixed at compile time */
_Static_assert(DJCT_EXIT_REQUEUE == 75, "DJCT_EXIT_REQUEUE must stay 75 (sysexits EX_TEMPFAIL)");

int main(void)
{
    CHECK_OK(djct_signals_install());
    CHECK_OK(djct_signals_install()); /* idempotent */
    CHECK(djct_signals_pending() == DJCT_SIGNAL_NONE);
    raise(SIGINT);
    CHECK(djct_signals_pending() == DJCT_SIGNAL_STOP && djct_signals_last() == SIGINT);
    raise(SIGUSR1);
    CHECK(djct_signals_pending() == DJCT_SIGNAL_PREEMPT && djct_signals_last() == SIGUSR1);
    djct_signals_clear();
    CHECK(djct_signals_pending() == DJCT_SIGNAL_NONE);
    raise(SIGTERM);
    CHECK(djct_signals_pending() == DJCT_SIGNAL_PREEMPT && djct_signals_last() == SIGTERM);
    djct_signals_clear();
    raise(SIGINT); /* a single SIGINT after clear only stops */
    CHECK(djct_signals_pending() == DJCT_SIGNAL_STOP);
    djct_signals_restore();
    return harness_report();
}
