/* Signal flags: async-signal-safe handlers that only store into sig_atomic_t. */
#include "djct/signals.h"
#include "djct/error.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_pending, g_last, g_sigints;
static struct sigaction g_old_int, g_old_term, g_old_usr1;
static int g_installed;

static void on_signal(int sig)
{
    g_last = sig;
    if (sig == SIGINT) {
        if (++g_sigints >= 2) { /* a second Ctrl-C: the user means it */
            signal(SIGINT, SIG_DFL);
            raise(SIGINT);
            return;
        }
        if (g_pending < DJCT_SIGNAL_STOP)
            g_pending = DJCT_SIGNAL_STOP;
    } else {
        g_pending = DJCT_SIGNAL_PREEMPT;
    }
}

int djct_signals_install(void)
{
    if (g_installed)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, &g_old_int) || sigaction(SIGTERM, &sa, &g_old_term) ||
        sigaction(SIGUSR1, &sa, &g_old_usr1))
        return djct_error_set(DJCT_ERROR, "cannot install signal handlers: %s", strerror(errno));
    g_installed = 1;
    return 0;
}

void djct_signals_restore(void)
{
    if (!g_installed)
        return;
    sigaction(SIGINT, &g_old_int, NULL);
    sigaction(SIGTERM, &g_old_term, NULL);
    sigaction(SIGUSR1, &g_old_usr1, NULL);
    g_installed = 0;
}

int djct_signals_pending(void) { return g_pending; }
int djct_signals_last(void) { return g_last; }

void djct_signals_clear(void)
{
    g_pending = DJCT_SIGNAL_NONE;
    g_last = 0;
    g_sigints = 0;
}
