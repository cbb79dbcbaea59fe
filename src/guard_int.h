/* Crash guard: run a call that parses untrusted bytes (libhdf5 on a corrupt file, a copy from a
 * file mapping that may shrink) so that a hardware fault it raises in this thread, or an endless
 * loop inside one library's code, returns to the caller instead of killing or hanging the
 * process. Faults anywhere else keep their old behaviour (core dump, sanitizer report, another
 * library's handler): the handler passes them on. */
#ifndef DJCT_GUARD_INT_H
#define DJCT_GUARD_INT_H

#include <setjmp.h>
#include <stddef.h>

#define DJCT_GUARD_SEGV 1
#define DJCT_GUARD_BUS  2
#define DJCT_GUARD_FPE  4
#define DJCT_GUARD_ANY  (DJCT_GUARD_SEGV | DJCT_GUARD_BUS | DJCT_GUARD_FPE)

typedef struct djct_guard {
    int         sigs;         /* in: DJCT_GUARD_* the guard catches */
    const char *lo, *hi;      /* in: when hi > lo, only faults at addresses in [lo, hi) */
    double      cpu_seconds;  /* in: > 0: stop body once it has used this much CPU time of the
                                 thread, at an instruction in [code_lo, code_hi) (signal SIGXCPU) */
    const char *code_lo, *code_hi;
    int         sig;          /* out: the signal caught (SIGSEGV, ..., SIGXCPU), 0 when body returned */
    const void *addr;         /* out: its fault address */
    /* private */
    sigjmp_buf  jb;
    int         armed;
    struct djct_guard *prev;
} djct_guard;

/* Install the handlers for SIGSEGV, SIGBUS, SIGFPE and SIGXCPU, or re-install them when someone
 * replaced them since (that handler is then the one faults outside guards go to). Cheap to call
 * again: one sigaction() query per signal. Returns 0 or a negative DJCT_E* code (message set). */
int djct_guard_install(void);

/* Run body(arg) under guard g (inputs set, the rest filled in here). Returns body's result; when
 * a matching fault or the CPU limit stopped it, returns DJCT_ERROR with g->sig set and no
 * message: the caller names what crashed. Whatever body had allocated or locked stays so, and a
 * library stopped in the middle cannot be trusted any more. Guards nest: a fault goes to the
 * innermost guard that matches it, the CPU limit to the innermost guard that has one (an inner
 * limit is not armed while an outer one is). djct_guard_install() must have succeeded. */
int djct_guard_run(djct_guard *g, int (*body)(void *), void *arg);

/* The code segment of the loaded object (library or executable) that holds fn, for
 * djct_guard.code_lo/hi. Returns 0, or -1 when it cannot be found (use no CPU limit then). */
int djct_guard_code_of(void (*fn)(void), const char **lo, const char **hi);

/* From now on a fault during exit() (after main returned or exit() was called) ends the process
 * quietly with the status exit() was given, stdio flushed; so does spinning there for more than
 * cpu_seconds of CPU time (0: no limit). For after a caught crash in a library that still has an
 * exit handler: libhdf5's H5_term_library faults on the state its crash left. Only exit handlers
 * registered before the first call can be cut short this way. */
void djct_guard_exit_quietly(double cpu_seconds);

/* "SIGSEGV", "SIGBUS", "SIGFPE", "SIGXCPU", else "a fatal signal" */
const char *djct_guard_signame(int sig);

#endif /* DJCT_GUARD_INT_H */
