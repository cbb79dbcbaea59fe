/* Crash guard (guard_int.h). One handler for SIGSEGV, SIGBUS and SIGFPE: a thread inside
 * djct_guard_run() has its guards on a thread-local stack, and the handler jumps back to the
 * innermost guard the fault matches; every other fault goes to the action that was installed
 * before ours (ASan's report, Open MPI's backtrace, or the default core dump), unchanged. */
#include "guard_int.h"
#include "djct/error.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ALTSTACK_BYTES (64 * 1024)

static const int SIGS[3] = {SIGSEGV, SIGBUS, SIGFPE};
static struct sigaction g_prev[3];   /* what the process had before us, per SIGS[] entry */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_alt_key;

/* the guards of this thread, innermost first. initial-exec: the handler reads it with one load,
 * never through __tls_get_addr, which may allocate and is not async-signal-safe */
static _Thread_local djct_guard *volatile tl_top __attribute__((tls_model("initial-exec")));
static _Thread_local int tl_alt_done;
static pthread_once_t g_exit_once = PTHREAD_ONCE_INIT;
static volatile sig_atomic_t g_exiting, g_exit_status; /* set once exit() has begun, see below */

static int slot_of(int sig) { return sig == SIGSEGV ? 0 : sig == SIGBUS ? 1 : 2; }

/* Hand a fault that is not ours to the previous action, as if we had never been installed. */
static void pass_on(int sig, siginfo_t *si, void *uc)
{
    struct sigaction *p = &g_prev[slot_of(sig)];
    int sent = si->si_code <= 0; /* kill(), raise(), sigqueue(): nothing to re-execute */
    if (p->sa_handler == SIG_IGN && sent)
        return;
    if (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN) {
        /* put the default back: on return the faulting instruction runs again and the kernel
         * ends the process exactly as before (core dump); a sent signal is raised again */
        sigaction(sig, p, NULL);
        if (sent)
            raise(sig);
        return;
    }
    if (p->sa_flags & SA_RESETHAND) {
        struct sigaction d;
        memset(&d, 0, sizeof(d));
        d.sa_handler = SIG_DFL;
        sigaction(sig, &d, NULL);
    }
    if (p->sa_flags & SA_SIGINFO)
        p->sa_sigaction(sig, si, uc);
    else
        p->sa_handler(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    if (g_exiting && si->si_code > 0)
        _exit(g_exit_status); /* djct_guard_exit_quietly(): the rest of exit() crashed */
    int bit = sig == SIGSEGV ? DJCT_GUARD_SEGV : sig == SIGBUS ? DJCT_GUARD_BUS : DJCT_GUARD_FPE;
    /* only a fault the kernel raised for an instruction of this thread is a crash to recover */
    if (si->si_code > 0)
        for (djct_guard *g = tl_top; g; g = g->prev) {
            const char *a = si->si_addr;
            if ((g->sigs & bit) && (g->hi <= g->lo || (a >= g->lo && a < g->hi))) {
                g->sig = sig;
                g->addr = si->si_addr;
                siglongjmp(g->jb, 1);
            }
        }
    pass_on(sig, si, uc);
}

static void free_altstack(void *p)
{
    stack_t ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(p, ALTSTACK_BYTES);
}

static void make_key(void)
{
    if (pthread_key_create(&g_alt_key, free_altstack) != 0)
        g_alt_key = (pthread_key_t)-1;
}

/* A stack overflow inside a guard can only be caught on another stack. Give this thread one,
 * unless it has one already (ASan gives every thread its own); freed when the thread exits. */
static void ensure_altstack(void)
{
    tl_alt_done = 1;
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return;
    pthread_once(&g_key_once, make_key);
    if (g_alt_key == (pthread_key_t)-1)
        return;
    void *p = mmap(NULL, ALTSTACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return; /* no alternate stack: only stack overflows stay uncaught */
    stack_t ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_sp = p;
    ss.ss_size = ALTSTACK_BYTES;
    if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(g_alt_key, p) != 0) {
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, NULL);
        munmap(p, ALTSTACK_BYTES);
    }
}

int djct_guard_install(void)
{
    int rc = 0;
    pthread_mutex_lock(&g_mu);
    for (int s = 0; s < 3 && rc == 0; s++) {
        struct sigaction cur, sa;
        if (sigaction(SIGS[s], NULL, &cur) != 0) {
            rc = djct_error_set(DJCT_ERROR, "crash guard: cannot query the %s action: %s",
                                djct_guard_signame(SIGS[s]), strerror(errno));
            break;
        }
        if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault)
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        g_prev[s] = cur; /* before ours is live: the handler may read it at once */
        atomic_signal_fence(memory_order_seq_cst);
        if (sigaction(SIGS[s], &sa, NULL) != 0)
            rc = djct_error_set(DJCT_ERROR, "crash guard: cannot install the %s handler: %s",
                                djct_guard_signame(SIGS[s]), strerror(errno));
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int djct_guard_run(djct_guard *g, int (*body)(void *), void *arg)
{
    if (!tl_alt_done)
        ensure_altstack();
    g->sig = 0;
    g->addr = NULL;
    g->prev = tl_top;
    /* no signal mask saved (that would be a syscall per call); the caught signal is unblocked below */
    if (sigsetjmp(g->jb, 0)) {
        tl_top = g->prev;
        sigset_t un;
        sigemptyset(&un);
        sigaddset(&un, g->sig);
        pthread_sigmask(SIG_UNBLOCK, &un, NULL);
        return DJCT_ERROR;
    }
    tl_top = g;
    int rc = body(arg);
    tl_top = g->prev;
    return rc;
}

/* runs before the exit handlers registered earlier (libhdf5's H5_term_library among them) */
static void exiting(int status, void *arg)
{
    fflush(NULL); /* stdio is flushed after all exit handlers, too late if one of them crashes */
    g_exit_status = status & 0xff;
    g_exiting = 1;
}

static void register_exiting(void) { on_exit(exiting, NULL); }

void djct_guard_exit_quietly(void) { pthread_once(&g_exit_once, register_exiting); }

const char *djct_guard_signame(int sig)
{
    return sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" : "a fatal signal";
}
