/* BLAS threads and a report of its kernels: see include/djct/blas.h. */
#include "djct/blas.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* dlsym returns an object pointer; this is POSIX's blessed way to turn it into a function */
static void *sym(const char *name) { return dlsym(RTLD_DEFAULT, name); }

static const char *openblas_string(const char *fn)
{
    char *(*get)(void);
    void *p = sym(fn);
    if (!p)
        return NULL;
    memcpy(&get, &p, sizeof get);
    return get();
}

static int cpu_has_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    /* the set OpenBLAS's AVX-512 sgemm kernels (SkylakeX, Cooperlake) need */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static const char *g_threads_from; /* who sized the pool: NULL (OpenBLAS), "djct", an env name */

int djct_blas_set_threads(int n)
{
    void (*set)(int);
    void *p = sym("openblas_set_num_threads");
    if (!p || n < 1)
        return 0;
    /* the user's explicit choice for OpenBLAS wins (OMP_NUM_THREADS is OpenMP's and torch's) */
    static const char *const envs[] = {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"};
    for (size_t i = 0; i < sizeof envs / sizeof *envs; i++) {
        const char *v = getenv(envs[i]);
        if (v && *v) {
            g_threads_from = envs[i];
            return 0;
        }
    }
    memcpy(&set, &p, sizeof set);
    set(n);
    g_threads_from = "djct";
    return 1;
}

const char *djct_blas_describe(void)
{
    static char line[256];
    const char *core = openblas_string("openblas_get_corename");
    if (!core)
        return "not OpenBLAS (kernels and threads are that library's own)";
    const char *cfg = openblas_string("openblas_get_config");
    char ver[32] = "OpenBLAS";
    if (cfg && !strncmp(cfg, "OpenBLAS ", 9)) { /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." */
        size_t k = strcspn(cfg + 9, " ");
        snprintf(ver, sizeof(ver), "OpenBLAS %.*s", (int)(k < 16 ? k : 16), cfg + 9);
    }
    const char *env = getenv("OPENBLAS_CORETYPE");
    char why[160] = "";
    if (env && *env) {
        int avx2_set = !strcasecmp(core, "Haswell") || !strcasecmp(core, "Zen") || !strcasecmp(core, "SandyBridge");
        if (avx2_set && cpu_has_avx512())
            snprintf(why, sizeof(why),
                     " (forced by OPENBLAS_CORETYPE=%.20s on an AVX-512 CPU: unset it for OpenBLAS's AVX-512 kernels, "
                     "faster sgemm)", env);
        else
            snprintf(why, sizeof(why), " (OPENBLAS_CORETYPE=%.20s)", env);
    }
    char thr[64] = "";
    int (*get)(void);
    void *p = sym("openblas_get_num_threads");
    if (p) {
        memcpy(&get, &p, sizeof get);
        int n = get();
        int by_env = g_threads_from && strcmp(g_threads_from, "djct"); /* the user's variable sized it */
        snprintf(thr, sizeof(thr), ", %d thread%s%s%s%s", n, n == 1 ? "" : "s", by_env ? " (" : "",
                 by_env ? g_threads_from : "", by_env ? ")" : "");
    }
    snprintf(line, sizeof(line), "%s, %.24s kernels%s%s", ver, core, why, thr);
    return line;
}
