/* Error codes and the per-thread last-error message of libdjct.
 * Every function that can fail returns 0 or a negative djct_error_code and leaves a one-line,
 * human-readable reason in djct_last_error() of the calling thread. libdjct never prints,
 * never exits and never aborts. */
#ifndef DJCT_ERROR_H
#define DJCT_ERROR_H

#include "common.h"

DJCT_BEGIN_DECLS

typedef enum {
    DJCT_OK       = 0,
    DJCT_ERROR    = -1, /* generic failure */
    DJCT_EINVAL   = -2, /* bad argument, option or input data */
    DJCT_ENOMEM   = -3, /* allocation failed */
    DJCT_EIO      = -4, /* file or network I/O failed */
    DJCT_EMPI     = -5, /* an MPI call failed */
    DJCT_ETORCH   = -6, /* libtorch raised an error */
    DJCT_ETIMEOUT = -7, /* a wait exceeded its time limit */
    DJCT_ENOTSUP  = -8, /* not supported in this build or on this machine (e.g. no GPU) */
    DJCT_ENCCL    = -9  /* a NCCL or CUDA call failed */
} djct_error_code;

/** This thread's last error message; never NULL ("" when there was none).
 *  Valid until the next djct call on this thread that sets an error. */
DJCT_API const char *djct_last_error(void);

/** This thread's last error code (DJCT_OK when there was none). */
DJCT_API int djct_last_error_code(void);

/** Record an error for this thread and return `code`, so a caller can write
 *  `return djct_error_set(DJCT_EINVAL, "...", ...);`. The message is formatted printf-style into a
 *  fixed thread-local buffer (truncated at 1023 bytes); no allocation happens. */
DJCT_API int djct_error_set(int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** Record "out of memory" without allocating; returns DJCT_ENOMEM. */
DJCT_API int djct_error_oom(void);

/** Prefix the current message with `prefix: ` (e.g. a file name) and return the current code. */
DJCT_API int djct_error_prefix(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/** Forget this thread's last error. */
DJCT_API void djct_error_clear(void);

/** A short constant name for a code ("EINVAL", ...); "unknown" for other values. */
DJCT_API const char *djct_error_name(int code);

DJCT_END_DECLS

#endif /* DJCT_ERROR_H */
