/* What the djct programs share that is plumbing of programs, not library: the start of a program
 * (--help, --version, its option table parsed, a usage error's exit 2) and, for the two MPI
 * programs (djct_train, djct_predict), the options they have in common with what they build from
 * them: the dataset options, the rank's threads, libtorch's set-up, the module switches, rank 0's
 * progress lines. Linked into every program; public API (djct/djct.h) only. */
#ifndef DJCT_APP_COMMON_H
#define DJCT_APP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "djct/djct.h"

/* seconds on the monotonic clock */
double app_now_s(void);

/* ---- the start of a single-process program ---------------------------------------------------- */
enum { APP_GO_ON = -1 };

/* --help: the help on stdout, returns 0. With `version` set, --version: "PROG VERSION", returns 0.
 * Otherwise the table's defaults, then argv, into `cfg` (`size` bytes, zeroed first); a usage
 * error prints "PROG: message", frees what `cfg` owns and returns 2. APP_GO_ON: parsed. */
int app_start(const char *prog, const djct_opt *t, size_t nt, const char *usage, int version, void *cfg, size_t size,
              int argc, char **argv);

/* ---- the start of an MPI program (after djct_comm_init_mpi, before its communicator) ---------- */
/* "PROG VERSION (build features)" when argv has --version: returns 1, else 0 (call before MPI) */
int app_version(const char *prog, int argc, char **argv);

/* The rank for messages (the launcher's OMPI_COMM_WORLD_RANK, else 0); --help: rank 0 prints the
 * help and every rank leaves MPI with exit 0; otherwise the defaults, then argv, into `cfg` (a
 * usage error ends as app_usage_exit). Returns the rank. */
int app_mpi_options(const char *prog, const djct_opt *t, size_t nt, const char *usage, void *cfg, int argc,
                    char **argv);

/* a usage error under MPI: rank 0 prints "PROG: msg"; every rank frees what `cfg` owns, leaves
 * MPI and exits 2 */
_Noreturn void app_usage_exit(const char *prog, int rank, const djct_opt *t, size_t nt, void *cfg, const char *msg);

/* ---- what djct_train and djct_predict share --------------------------------------------------- */
/* --jit-optimize: the graph executor's optimisation */
enum { APP_JIT_AUTO = -1, APP_JIT_OFF = 0, APP_JIT_ON = 1 };
extern const djct_opt_choice APP_JIT[];      /* auto, on, off */
extern const djct_opt_choice APP_PROGRESS[]; /* auto, bar, lines, none */

/* The data options of both programs: a member `data_opts` of each program's cfg, filled by the
 * rows below (the rows worded alike in both tables; djct_inspect's --h5-map too) and by each
 * program's own rows. */
typedef struct {
    char *h5_map;
    int64_t batch_elements, batch_events, prefault_mb;
    int squared_limit, prefetch, decode_threads;
} app_data_opts;

#define APP_OPT_H5_MAP(off)                                                                                    \
    {"h5-map", 0, DJCT_OPT_STRING, (off), NULL, NULL, 0, 0, "FILE",                                            \
     "mapping file (INI) naming the datasets of HDF5 files in a layout of their own (default: each file's "    \
     "FILE.djct.ini beside it, if any; docs/data.md)", NULL}
#define APP_OPT_SQUARED_LIMIT(off)                                                                             \
    {"squared-limit", 0, DJCT_OPT_FLAG, (off), "0", NULL, 0, 0, NULL,                                          \
     "compare (sum of elements)^2 with --batch-elements (djcdata)", NULL}
#define APP_OPT_PREFETCH(off)                                                                                  \
    {"prefetch", 0, DJCT_OPT_INT, (off), "2", NULL, 0, 64, "N", "batches decoded ahead (0: none)", NULL}
#define APP_OPT_DECODE_THREADS(off)                                                                            \
    {"decode-threads", 0, DJCT_OPT_INT, (off), "-1", NULL, 0, 1024, "N",                                       \
     "threads decoding .djctd files ahead, in the order the batches need them (default: the rank's cores "     \
     "beyond --threads, at least 1; 0: decoded by the thread that builds the batches)", NULL}
#define APP_OPT_PRINT_EVERY(off)                                                                               \
    {"print-every", 0, DJCT_OPT_DOUBLE, (off), "10", NULL, 0, 1e6, "S", "seconds between plain progress lines", \
     NULL}

/* threads of this rank: --threads, or 0: its share of the node's cores (djct_cpus_per_rank) */
int app_threads(int threads_opt, const djct_comm *comm);

/* --decode-threads left at its default (-1) becomes the cores the rank has beyond its compute
 * threads (--threads), at least 1 */
void app_resolve_decode_threads(app_data_opts *d, int threads_opt, const djct_comm *comm);

/* the dataset options both programs set, for this rank of `comm` (the caller adds its own) */
djct_dataset_options app_dataset_options(const app_data_opts *d, const djct_comm *comm);

/* libtorch for this rank: `threads` intra-op threads (and OpenBLAS's), the graph executor's
 * optimisation by --jit-optimize (auto: on with cuda) */
int app_torch_setup(int threads, int jit_optimize, int device);

/* model options for `device`, on the GPU the communicator bound (index 0 when none) */
djct_model_options app_model_options(const djct_comm *comm, int device);

/* --logging, then --loss (NAME=on|off lists; NULL: not given). The check before any work returns
 * the option at fault ("logging" or "loss") or NULL; applying them to a model returns 0, or the
 * error with *opt naming the option. djct_last_error() says why. */
const char *app_switch_lists_check(const char *logging, const char *loss);
int app_switch_lists(djct_model *m, const char *logging, const char *loss, const char **opt);

/* Rank 0's progress printer (the other ranks' prints nothing): mode from --progress, every_s
 * from --print-every, `prediction` as djct_progress_options */
int app_progress_create(djct_progress **out, int rank, int mode, double every_s, int prediction);
/* a step's line, if one is due: the bar on stderr, plain lines on stdout */
void app_progress_print(djct_progress *p, const djct_step_report *r, double now);
/* ends a bar's line (on stderr) before other output */
void app_progress_end(djct_progress *p);

#endif /* DJCT_APP_COMMON_H */
