/* crash guard: faults inside a guard come back as errors (SIGSEGV, SIGBUS in a shrunk mapping,
 * SIGFPE, stack overflow in a thread), nested guards and address ranges pick the right one, an
 * endless loop in the given code is stopped by the CPU limit (and only there), and every fault
 * outside a guard behaves as if djct were not there: the default core-dump death, the
 * sanitizer's report, or a handler installed before or after ours. The exit guard turns a crash
 * or a spin in an older exit handler into exit()'s status. Each case runs in a child process;
 * the parent asserts its exit status and output. */
#include "harness.h"
#include "guard_int.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifndef ASAN
#define ASAN 0
#endif

static char dir[256];

/* Run fn in a child; its stdout and stderr go to `out` (NUL-terminated). Returns the wait status. */
static int in_child(int (*fn)(void), char *out, size_t cap)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core); /* the deaths below are on purpose */
        alarm(60);                        /* a CPU limit that does not fire fails, not hangs */
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        _exit(fn());
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static int exited(int st, int code) { return WIFEXITED(st) && WEXITSTATUS(st) == code; }

/* died of sig as before djct: by the signal, or (sanitizer build) by its report */
static int died_of(int st, const char *out, int sig)
{
    if (ASAN)
        return WIFEXITED(st) && WEXITSTATUS(st) != 0 && strstr(out, "AddressSanitizer") != NULL;
    return WIFSIGNALED(st) && WTERMSIG(st) == sig;
}

/* ---- bodies ---------------------------------------------------------------------------- */

static char *noaccess; /* one PROT_NONE page */

static int touch(void *p) { return *(volatile char *)p; }

static int read_noaccess(void *unused) { return touch(noaccess + 8); }

__attribute__((no_sanitize("undefined"))) static int divide(void *p)
{
    volatile int zero = *(int *)p;
    return 7 / zero;
}

static int deep(volatile char *prev, long n)
{
    volatile char buf[512];
    buf[0] = prev ? prev[0] : 1;
    buf[511] = (char)n;
    return n > 0 ? deep(buf, n - 1) + buf[511] : buf[0];
}

static int overflow(void *unused) { return deep(NULL, 1L << 40); }

typedef struct {
    const char *map;
    size_t off;
} map_read;

static int read_map(void *p)
{
    map_read *m = p;
    return touch((char *)m->map + m->off);
}

static volatile unsigned long spins;

__attribute__((noinline)) static int spin(void *forever)
{
    for (;;) {
        spins++;
        if (!forever && spins > 400000000ul)
            return 5;
    }
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* spin for `seconds` of CPU, then return 5 */
static int spin_for(void *p)
{
    double until = cpu_now() + *(double *)p;
    while (cpu_now() < until)
        spins++;
    return 5;
}

/* ---- child cases: exit 0 when every expectation held, else the number of the first miss ---- */

static int c_segv(void)
{
    if (djct_guard_install() != 0)
        return 10;
    for (int i = 0; i < 3; i++) { /* the caught signal is unblocked again: catch it repeatedly */
        djct_guard g = {.sigs = DJCT_GUARD_ANY};
        int rc = djct_guard_run(&g, read_noaccess, NULL);
        if (rc != DJCT_ERROR || g.sig != SIGSEGV || g.addr != noaccess + 8)
            return 1 + i;
    }
    djct_guard g = {.sigs = DJCT_GUARD_ANY};
    if (djct_guard_run(&g, touch, dir) != '/' || g.sig != 0) /* no fault: body's result */
        return 5;
    if (strcmp(djct_guard_signame(SIGSEGV), "SIGSEGV") || strcmp(djct_guard_signame(SIGBUS), "SIGBUS"))
        return 6;
    return 0;
}

static int c_fpe(void)
{
    djct_guard_install();
    int zero = 0;
    djct_guard g = {.sigs = DJCT_GUARD_FPE};
    return djct_guard_run(&g, divide, &zero) == DJCT_ERROR && g.sig == SIGFPE ? 0 : 1;
}

/* a file mapping whose file shrinks: SIGBUS at an address inside the mapping */
static int c_bus_range(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/shrinks", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    long pg = sysconf(_SC_PAGESIZE);
    if (fd < 0 || ftruncate(fd, 4 * pg) != 0)
        return 1;
    char *m = mmap(NULL, (size_t)(4 * pg), PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED || ftruncate(fd, pg) != 0)
        return 2;
    djct_guard_install();
    map_read r = {m, (size_t)(2 * pg + 5)};
    /* an outer guard for anything; the inner one only for SIGBUS in the mapping */
    djct_guard in = {.sigs = DJCT_GUARD_BUS, .lo = m, .hi = m + 4 * pg};
    if (djct_guard_run(&in, read_map, &r) != DJCT_ERROR || in.sig != SIGBUS || in.addr != m + 2 * pg + 5)
        return 3;
    r.off = 7; /* still inside the file: no fault */
    if (djct_guard_run(&in, read_map, &r) != 0 || in.sig != 0)
        return 4;
    close(fd);
    unlink(path);
    return 0;
}

/* a fault the inner guard does not take (wrong signal, address outside its range) goes to the outer */
typedef struct {
    djct_guard *inner;
} nest_args;

static int nested_body(void *p)
{
    nest_args *a = p;
    djct_guard_run(a->inner, read_noaccess, NULL);
    return 99; /* not reached: the outer guard's jump skips this frame */
}

static int c_nested(void)
{
    djct_guard_install();
    char other[16];
    djct_guard inner = {.sigs = DJCT_GUARD_ANY, .lo = other, .hi = other + sizeof(other)};
    djct_guard outer = {.sigs = DJCT_GUARD_SEGV};
    nest_args a = {&inner};
    if (djct_guard_run(&outer, nested_body, &a) != DJCT_ERROR || outer.sig != SIGSEGV)
        return 1;
    /* the stack of guards is back to empty: an unguarded fault now kills (checked by the parent) */
    read_noaccess(NULL);
    return 2;
}

static void *overflow_thread(void *p)
{
    djct_guard g = {.sigs = DJCT_GUARD_SEGV};
    int rc = djct_guard_run(&g, overflow, NULL);
    *(int *)p = rc == DJCT_ERROR && g.sig == SIGSEGV;
    return NULL;
}

static int c_stack_overflow(void)
{
    djct_guard_install();
    pthread_attr_t at;
    pthread_t th;
    int ok = 0;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&th, &at, overflow_thread, &ok) != 0)
        return 1;
    pthread_join(th, NULL);
    return ok ? 0 : 2;
}

static int c_unguarded(void)
{
    djct_guard_install();
    djct_guard g = {.sigs = DJCT_GUARD_ANY};
    djct_guard_run(&g, read_noaccess, NULL);
    read_noaccess(NULL); /* after a guarded crash, outside any guard */
    return 1;
}

static int join(void *th) { return pthread_join(*(pthread_t *)th, NULL); }

static void *fault_thread(void *unused)
{
    read_noaccess(NULL);
    return NULL;
}

static int c_unguarded_thread(void)
{
    djct_guard_install();
    pthread_t th;
    /* another thread faults while this one is inside a guard: not this guard's business */
    if (pthread_create(&th, NULL, fault_thread, NULL) != 0)
        return 1;
    djct_guard g = {.sigs = DJCT_GUARD_ANY};
    djct_guard_run(&g, join, &th);
    return 2;
}

static volatile sig_atomic_t user_hits;

static void user_handler(int sig, siginfo_t *si, void *uc)
{
    if (++user_hits == 1) {
        const char m[] = "user handler ran\n";
        (void)!write(2, m, sizeof(m) - 1);
    }
    _exit(42);
}

static void install_user(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = user_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(sig, &sa, NULL);
}

/* a handler that was there first still gets the faults outside guards */
static int c_chain_before(void)
{
    install_user(SIGSEGV);
    djct_guard_install();
    djct_guard g = {.sigs = DJCT_GUARD_ANY};
    if (djct_guard_run(&g, read_noaccess, NULL) != DJCT_ERROR || user_hits)
        return 1;
    read_noaccess(NULL);
    return 2;
}

/* one installed after ours replaces it; djct_guard_install() takes over again and chains to it */
static int c_chain_after(void)
{
    djct_guard_install();
    install_user(SIGSEGV);
    djct_guard_install();
    djct_guard g = {.sigs = DJCT_GUARD_ANY};
    if (djct_guard_run(&g, read_noaccess, NULL) != DJCT_ERROR)
        return 1;
    read_noaccess(NULL);
    return 2;
}

/* raise()d, not a fault: never caught, even inside a guard */
static int raise_segv(void *unused) { return raise(SIGSEGV); }

static int c_sent(void)
{
    install_user(SIGSEGV);
    djct_guard_install();
    djct_guard g = {.sigs = DJCT_GUARD_ANY};
    djct_guard_run(&g, raise_segv, NULL);
    return 1;
}

/* an endless loop in the given code stops at the CPU limit; the thread goes on normally */
static int c_cpu_limit(void)
{
    djct_guard_install();
    djct_guard g = {.sigs = DJCT_GUARD_ANY, .cpu_seconds = 0.2};
    if (djct_guard_code_of((void (*)(void))spin, &g.code_lo, &g.code_hi) != 0 ||
        !(g.code_lo <= (const char *)(uintptr_t)spin && (const char *)(uintptr_t)spin < g.code_hi))
        return 1;
    double t0 = cpu_now();
    if (djct_guard_run(&g, spin, &g) != DJCT_ERROR || g.sig != SIGXCPU)
        return 2;
    double used = cpu_now() - t0;
    if (used < 0.2 || used > 2)
        return 3;
    if (strcmp(djct_guard_signame(SIGXCPU), "SIGXCPU"))
        return 4;
    /* the limit is off again: a long unguarded spin is not interrupted */
    double s = 0.5;
    if (spin_for(&s) != 5)
        return 5;
    /* a body that finishes under the limit keeps its result */
    djct_guard q = g;
    q.cpu_seconds = 2;
    s = 0.1;
    if (djct_guard_run(&q, spin_for, &s) != 5 || q.sig != 0)
        return 6;
    return 0;
}

/* over the limit but in other code (here libc's range; the loop is in this program and makes no
 * calls): not stopped */
static int c_cpu_limit_elsewhere(void)
{
    djct_guard_install();
    djct_guard g = {.sigs = DJCT_GUARD_ANY, .cpu_seconds = 0.05};
    if (djct_guard_code_of((void (*)(void))abort, &g.code_lo, &g.code_hi) != 0)
        return 1;
    double t0 = cpu_now();
    if (djct_guard_run(&g, spin, NULL) != 5 || g.sig != 0)
        return 2;
    return cpu_now() - t0 > 0.1 ? 0 : 3; /* it did run past the limit */
}

static void crash_at_exit(void) { read_noaccess(NULL); }

static void spin_at_exit(void) { spin((void *)1); }

static int c_exit_spin(void)
{
    atexit(spin_at_exit);
    djct_guard_install();
    djct_guard_exit_quietly(0.2);
    exit(9);
}

/* djct_guard_exit_quietly(): a crash in an older exit handler ends the process with exit()'s status */
static int c_exit_quietly(void)
{
    atexit(crash_at_exit);
    djct_guard_install();
    djct_guard_exit_quietly(0);
    printf("buffered, no newline"); /* a pipe: fully buffered, flushed by the exit guard */
    exit(7);
}

static int c_exit_not_armed(void)
{
    atexit(crash_at_exit);
    djct_guard_install();
    exit(7);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/djct_test_guard_%d", (int)getpid());
    if (mkdir(dir, 0700) != 0)
        return 1;
    noaccess = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(noaccess != MAP_FAILED);
    char out[8192];
    int st;
    /* this thread's guard resources (alternate stack, CPU timer) exist before the forks, as in a
     * program that read files before: the children must get a timer of their own */
    djct_guard pre = {.sigs = DJCT_GUARD_ANY};
    CHECK(djct_guard_run(&pre, touch, dir) == '/' && pre.sig == 0);

    st = in_child(c_segv, out, sizeof(out));
    CHECK(exited(st, 0));
    st = in_child(c_fpe, out, sizeof(out));
    CHECK(exited(st, 0));
    st = in_child(c_bus_range, out, sizeof(out));
    CHECK(exited(st, 0));
    st = in_child(c_stack_overflow, out, sizeof(out));
    CHECK(exited(st, 0));
    if (!exited(st, 0))
        fprintf(stderr, "  stack overflow child: status %#x\n%s\n", st, out);

    st = in_child(c_cpu_limit, out, sizeof(out));
    CHECK(exited(st, 0));
    if (!exited(st, 0))
        fprintf(stderr, "  cpu limit child: status %#x\n%s\n", st, out);
    st = in_child(c_cpu_limit_elsewhere, out, sizeof(out));
    CHECK(exited(st, 0));

    st = in_child(c_nested, out, sizeof(out));
    CHECK(died_of(st, out, SIGSEGV));
    st = in_child(c_unguarded, out, sizeof(out));
    CHECK(died_of(st, out, SIGSEGV));
    st = in_child(c_unguarded_thread, out, sizeof(out));
    CHECK(died_of(st, out, SIGSEGV));

    st = in_child(c_chain_before, out, sizeof(out));
    CHECK(exited(st, 42) && strstr(out, "user handler ran"));
    st = in_child(c_chain_after, out, sizeof(out));
    CHECK(exited(st, 42) && strstr(out, "user handler ran"));
    st = in_child(c_sent, out, sizeof(out));
    CHECK(exited(st, 42));

    st = in_child(c_exit_quietly, out, sizeof(out));
    CHECK(exited(st, 7));
    CHECK(strcmp(out, "buffered, no newline") == 0);
    st = in_child(c_exit_spin, out, sizeof(out));
    CHECK(exited(st, 9));
    st = in_child(c_exit_not_armed, out, sizeof(out));
    CHECK(died_of(st, out, SIGSEGV));

    rmdir(dir);
    return harness_report();
}
