/* Signal flags for clean stops. The handlers only record the signal; the trainer acts on it at
 * the next step boundary, after all ranks agreed (never inside the handler).
 *   SIGUSR1 / SIGTERM -> DJCT_SIGNAL_PREEMPT: checkpoint, exit DJCT_EXIT_REQUEUE (SLURM
 *                        `--signal=B:USR1@...` preemption and time limits)
 *   SIGINT            -> DJCT_SIGNAL_STOP: stop cleanly; a second SIGINT kills at once. */
#ifndef DJCT_SIGNALS_H
#define DJCT_SIGNALS_H

#include "common.h"

DJCT_BEGIN_DECLS

typedef enum { DJCT_SIGNAL_NONE = 0, DJCT_SIGNAL_STOP = 1, DJCT_SIGNAL_PREEMPT = 2 } djct_signal_kind;

/** Exit code of a preempted run: a complete checkpoint was written, requeue the job with
 *  --resume (sysexits EX_TEMPFAIL). */
#define DJCT_EXIT_REQUEUE 75

/** Install the handlers (process-wide; idempotent). */
DJCT_API int djct_signals_install(void);
/** Restore the previous handlers. */
DJCT_API void djct_signals_restore(void);
/** The strongest pending request (PREEMPT > STOP > NONE) seen since install/clear. */
DJCT_API int djct_signals_pending(void);
/** The number of the last signal received (0: none). */
DJCT_API int djct_signals_last(void);
/** Forget pending requests. */
DJCT_API void djct_signals_clear(void);

DJCT_END_DECLS

#endif /* DJCT_SIGNALS_H */
