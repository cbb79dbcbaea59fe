/* Crash guard (guard_int.h). One handler for SIGSEGV, SIGBUS, SIGFPE and SIGXCPU: a thread inside
 * djct_guard_run() has its guards on a thread-local stack, and the handler jumps back to the
 * innermost guard a fault matches. A guard with a CPU limit arms a per-thread CPU-time timer
 * (SIGXCPU); when it expires with the thread inside the guarded library's code, that counts as a
 * crash there. Every other signal goes to the action that was installed before ours (ASan's
 * report, Open MPI's backtrace, the default core dump), unchanged. */
#include "guard_int.h"
#include "djct/error.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define ALTSTACK_BYTES (64 * 1024)
#define RETRY_NS 10000000L /* the CPU limit hit outside the library: look again 10 ms (CPU) later */

#if defined(__x86_64__)
#define PC_OF(uc) ((const char *)((ucontext_t *)(uc))->uc_mcontext.gregs[REG_RIP])
#elif defined(__aarch64__)
#define PC_OF(uc) ((const char *)((ucontext_t *)(uc))->uc_mcontext.pc)
#else
#define PC_OF(uc) ((const char *)NULL) /* unknown machine: CPU limits are never armed */
#define NO_PC 1
#endif

static const int SIGS[4] = {SIGSEGV, SIGBUS, SIGFPE, SIGXCPU};
static struct sigaction g_prev[4];      /* what the process had before us, per SIGS[] entry */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT, g_exit_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_key_ok;
static char g_timer_tag;                /* sival_ptr of our timers' signals */
static volatile sig_atomic_t g_exiting, g_exit_status; /* set once exit() has begun */
static double g_exit_cpu;

/* per-thread resources, made on the thread's first guard and freed when it exits */
typedef struct {
    void   *alt;                        /* our alternate signal stack, or NULL */
    timer_t timer;                      /* CPU-time timer of the thread, delivers SIGXCPU */
    int     timer_ok;
} thread_res;

/* the guards of this thread, innermost first. initial-exec: the handler reads it with one load,
 * never through __tls_get_addr, which may allocate and is not async-signal-safe */
static _Thread_local djct_guard *volatile tl_top __attribute__((tls_model("initial-exec")));
static _Thread_local thread_res *tl_res;
static _Thread_local int tl_res_done;

static int slot_of(int sig) { return sig == SIGSEGV ? 0 : sig == SIGBUS ? 1 : sig == SIGFPE ? 2 : 3; }

/* Hand a signal that is not ours to the previous action, as if we had never been installed. */
static void pass_on(int sig, siginfo_t *si, void *uc)
{
    struct sigaction *p = &g_prev[slot_of(sig)];
    /* a fault happens again when the handler returns; SIGXCPU and sent signals do not */
    int refaults = sig != SIGXCPU && si->si_code > 0;
    if (p->sa_handler == SIG_IGN && !refaults)
        return;
    if (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN) {
        /* put the old action back: on return the kernel ends the process exactly as before */
        sigaction(sig, p, NULL);
        if (!refaults)
            raise(sig); /* blocked until we return */
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

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    int fault = sig != SIGXCPU && si->si_code > 0; /* raised by the kernel for an instruction here */
    int timer = sig == SIGXCPU && si->si_code == SI_TIMER && si->si_value.sival_ptr == &g_timer_tag;
    if (g_exiting && (fault || timer))
        _exit(g_exit_status); /* djct_guard_exit_quietly(): the rest of exit() crashed or spun */
    if (timer) {
        djct_guard *g = tl_top;
        while (g && !g->armed)
            g = g->prev;
        const char *pc = PC_OF(uc);
        if (g && pc >= g->code_lo && pc < g->code_hi) {
            g->sig = SIGXCPU;
            g->addr = pc;
            siglongjmp(g->jb, 1);
        }
        return; /* stale, or in other code (libc may hold a lock): the timer fires again soon */
    }
    if (fault) {
        int bit = sig == SIGSEGV ? DJCT_GUARD_SEGV : sig == SIGBUS ? DJCT_GUARD_BUS : DJCT_GUARD_FPE;
        const char *a = si->si_addr;
        for (djct_guard *g = tl_top; g; g = g->prev)
            if ((g->sigs & bit) && (g->hi <= g->lo || (a >= g->lo && a < g->hi))) {
                g->sig = sig;
                g->addr = si->si_addr;
                siglongjmp(g->jb, 1);
            }
    }
    pass_on(sig, si, uc);
}

/* ---- per-thread resources ---------------------------------------------------------------- */

static void free_res(void *p)
{
    thread_res *r = p;
    if (r->alt) {
        stack_t ss;
        memset(&ss, 0, sizeof(ss));
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, NULL);
        munmap(r->alt, ALTSTACK_BYTES);
    }
    if (r->timer_ok)
        timer_delete(r->timer);
    free(r);
}

static int make_timer(thread_res *r)
{
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGXCPU;
    sev.sigev_value.sival_ptr = &g_timer_tag;
    sev._sigev_un._tid = gettid();
    return timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &r->timer) == 0;
}

/* a forked child keeps the thread's memory and alternate stack but not its timer */
static void after_fork(void)
{
    if (tl_res)
        tl_res->timer_ok = make_timer(tl_res);
}

static void make_key(void)
{
    g_key_ok = pthread_key_create(&g_key, free_res) == 0;
    pthread_atfork(NULL, NULL, after_fork);
}

/* A stack overflow inside a guard can only be caught on another stack: give this thread one,
 * unless it has one already (ASan gives every thread its own). And a CPU-time timer. */
static thread_res *thread_setup(void)
{
    tl_res_done = 1;
    pthread_once(&g_key_once, make_key);
    thread_res *r = g_key_ok ? calloc(1, sizeof(*r)) : NULL;
    if (!r)
        return NULL; /* guards still work; only stack overflows and CPU limits are not caught */
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
        void *p = mmap(NULL, ALTSTACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        stack_t ss;
        memset(&ss, 0, sizeof(ss));
        ss.ss_sp = p;
        ss.ss_size = ALTSTACK_BYTES;
        if (p != MAP_FAILED && sigaltstack(&ss, NULL) == 0)
            r->alt = p;
        else if (p != MAP_FAILED)
            munmap(p, ALTSTACK_BYTES);
    }
    r->timer_ok = make_timer(r);
    pthread_setspecific(g_key, r);
    tl_res = r;
    return r;
}

/* first expiry after `seconds` of this thread's CPU time, then every RETRY_NS; 0 disarms */
static int set_timer(thread_res *r, double seconds)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    if (seconds > 0) {
        its.it_value.tv_sec = (time_t)seconds;
        its.it_value.tv_nsec = (long)((seconds - (double)its.it_value.tv_sec) * 1e9);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
        its.it_interval.tv_nsec = RETRY_NS;
    }
    return timer_settime(r->timer, 0, &its, NULL);
}

/* ---- public ---------------------------------------------------------------------------- */

int djct_guard_install(void)
{
    int rc = 0;
    pthread_mutex_lock(&g_mu);
    for (int s = 0; s < 4 && rc == 0; s++) {
        struct sigaction cur, sa;
        if (sigaction(SIGS[s], NULL, &cur) != 0) {
            rc = djct_error_set(DJCT_ERROR, "crash guard: cannot query the %s action: %s",
                                djct_guard_signame(SIGS[s]), strerror(errno));
            break;
        }
        if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_signal)
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_signal;
        /* SA_RESTART: a CPU-limit tick must not fail a read() with EINTR */
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        g_prev[s] = cur; /* before ours is live: the handler may read it at once */
        if (sigaction(SIGS[s], &sa, NULL) != 0)
            rc = djct_error_set(DJCT_ERROR, "crash guard: cannot install the %s handler: %s",
                                djct_guard_signame(SIGS[s]), strerror(errno));
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int djct_guard_run(djct_guard *g, int (*body)(void *), void *arg)
{
    thread_res *r = tl_res_done ? tl_res : thread_setup();
    g->sig = 0;
    g->addr = NULL;
    g->armed = 0;
    g->prev = tl_top;
    int limit = g->cpu_seconds > 0 && g->code_hi > g->code_lo && r && r->timer_ok;
#ifdef NO_PC
    limit = 0;
#endif
    for (djct_guard *o = g->prev; o && limit; o = o->prev)
        limit = !o->armed; /* the outer limit stays in force */
    /* no signal mask saved (that would be a syscall per call); the caught signal is unblocked below */
    if (sigsetjmp(g->jb, 0)) {
        tl_top = g->prev;
        if (g->armed)
            set_timer(r, 0);
        sigset_t un;
        sigemptyset(&un);
        sigaddset(&un, g->sig);
        pthread_sigmask(SIG_UNBLOCK, &un, NULL);
        return DJCT_ERROR;
    }
    tl_top = g;
    if (limit)
        g->armed = set_timer(r, g->cpu_seconds) == 0;
    int rc = body(arg);
    if (g->armed)
        set_timer(r, 0);
    tl_top = g->prev;
    return rc;
}

typedef struct {
    uintptr_t fn;
    const char *lo, *hi;
} code_find;

static int find_code(struct dl_phdr_info *info, size_t size, void *p)
{
    code_find *c = p;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && c->fn >= lo && c->fn < lo + ph->p_memsz) {
            c->lo = (const char *)lo;
            c->hi = (const char *)(lo + ph->p_memsz);
            return 1;
        }
    }
    return 0;
}

int djct_guard_code_of(void (*fn)(void), const char **lo, const char **hi)
{
    code_find c = {(uintptr_t)fn, NULL, NULL};
    if (!fn || !dl_iterate_phdr(find_code, &c))
        return -1;
    *lo = c.lo;
    *hi = c.hi;
    return 0;
}

/* runs before the exit handlers registered earlier (libhdf5's H5_term_library among them) */
static void exiting(int status, void *arg)
{
    fflush(NULL); /* stdio is flushed after all exit handlers, too late if one of them crashes */
    g_exit_status = status & 0xff;
    g_exiting = 1;
    thread_res *r = tl_res_done ? tl_res : thread_setup();
    if (r && r->timer_ok && g_exit_cpu > 0)
        set_timer(r, g_exit_cpu);
}

static void register_exiting(void) { on_exit(exiting, NULL); }

void djct_guard_exit_quietly(double cpu_seconds)
{
    g_exit_cpu = cpu_seconds;
    pthread_once(&g_exit_once, register_exiting);
}

const char *djct_guard_signame(int sig)
{
    return sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE"
         : sig == SIGXCPU ? "SIGXCPU" : "a fatal signal";
}
