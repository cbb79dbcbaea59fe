/* Progress of a run for a person watching: a redrawn bar on a terminal, or plain lines at most
 * every few seconds (for log files), with throughput and an ETA. The library only formats: the
 * caller prints what djct_progress_step() returns (rank 0 of an app, typically), so the same
 * printer serves every program that steps through batches (djct_train, prediction, benchmarks).
 *
 *   djct_progress_options po = DJCT_PROGRESS_OPTIONS_INIT;
 *   po.mode = DJCT_PROGRESS_AUTO;
 *   djct_progress_create(&p, &po);
 *   djct_progress_start(p, now(), total_steps);
 *   ... per step: if (djct_progress_step(p, &report, now(), line, sizeof line))
 *                     fputs(line, djct_progress_mode_of(p) == DJCT_PROGRESS_BAR ? stderr : stdout);
 *   ... at the end: if (djct_progress_end(p, line, sizeof line)) fputs(line, stderr);
 */
#ifndef DJCT_PROGRESS_H
#define DJCT_PROGRESS_H

#include "common.h"
#include "trainer.h"

DJCT_BEGIN_DECLS

typedef enum {
    DJCT_PROGRESS_NONE = 0,  /* nothing */
    DJCT_PROGRESS_BAR = 1,   /* one line redrawn in place ("\r\033[K...") on every step, closed with
                                "\n" at an epoch's last step: for a terminal (stderr) */
    DJCT_PROGRESS_LINES = 2, /* one full line at most every `every_s` seconds and at an epoch's last
                                step: for log files (stdout) */
    DJCT_PROGRESS_AUTO = 3   /* BAR when stderr is a terminal, else LINES (decided at create) */
} djct_progress_mode;

typedef struct {
    unsigned int version; /* always first; filled in by the _INIT macro */
    int          mode;    /* djct_progress_mode */
    double       every_s; /* LINES: seconds between lines */
    int          bar_width; /* BAR: characters of the bar; 0: 24 */
    int          prediction; /* 1: the steps are prediction batches (djct_predict): "predict" instead
                                of the epoch, no global step, learning rate or communication share,
                                the loss only when finite (with targets) */
} djct_progress_options;
#define DJCT_PROGRESS_OPTIONS_VERSION 2
#define DJCT_PROGRESS_OPTIONS_INIT { DJCT_PROGRESS_OPTIONS_VERSION, DJCT_PROGRESS_AUTO, 10.0, 0, 0 }

typedef struct djct_progress djct_progress;

/** A printer in `opts->mode` (NULL: the defaults). On success *out is yours; release it with
 *  djct_progress_free(). @return 0, or DJCT_EINVAL for a bad mode, interval or version. */
DJCT_API int djct_progress_create(djct_progress **out, const djct_progress_options *opts);

/** The mode in effect (AUTO resolved): BAR output belongs on stderr, LINES on stdout. */
DJCT_API int djct_progress_mode_of(const djct_progress *p);

/** Start the clock: `now` in seconds on any monotonic clock (the caller's, passed to every call),
 *  `total_steps` the steps this run will still take (for the ETA; <= 0: unknown, the ETA is "?"). */
DJCT_API void djct_progress_start(djct_progress *p, double now, int64_t total_steps);

/** Account one finished step and format what to show now into buf (NUL-terminated, cut to n).
 *  The rate is the steps done since start over the time since start; the ETA is the steps left
 *  at that rate. BAR:   "\r\033[Kepoch E [####....] S/N loss L EV ev/s EL el/s ETA T";
 *  LINES: "epoch E step S/N global G loss L lr R EV ev/s EL el/s data D% comm C% ETA T\n";
 *  prediction: "predict [####....] S/N [loss L] EV ev/s EL el/s ETA T" and
 *  "predict step S/N [loss L] EV ev/s EL el/s data D% ETA T\n";
 *  throughputs in SI units (1.2k, 3.45M). @return the length written; 0: nothing to show now. */
DJCT_API size_t djct_progress_step(djct_progress *p, const djct_step_report *r, double now, char *buf,
                                   size_t n);

/** What closes an open bar ("\n") before other output follows, e.g. on a stop mid-epoch;
 *  @return its length, 0 when nothing is open. */
DJCT_API size_t djct_progress_end(djct_progress *p, char *buf, size_t n);

/** Free the printer; NULL is fine. */
DJCT_API void djct_progress_free(djct_progress *p);

/** A duration for people: "42s", "3m07s", "2h05m"; "?" when negative or not finite. */
DJCT_API void djct_format_eta(char *buf, size_t n, double seconds);

/** A rate or count in SI units: "999", "12.3k", "1.23M"; "?" when negative or not finite. */
DJCT_API void djct_format_si(char *buf, size_t n, double x);

DJCT_END_DECLS

#endif /* DJCT_PROGRESS_H */
