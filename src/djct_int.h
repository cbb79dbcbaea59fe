/* Internals shared within src/: argument checks and small helpers. Not installed. */
#ifndef DJCT_INT_H
#define DJCT_INT_H

#include "djct/error.h"

/* Check a required argument: sets "invalid argument: NAME" and returns DJCT_EINVAL. */
#define DJCT_CHECK_ARG(x)                                                                  \
    do {                                                                                   \
        if (!(x))                                                                          \
            return djct_error_set(DJCT_EINVAL, "invalid argument: %s (in %s)", #x, __func__); \
    } while (0)

/* Reject an options struct from a different header version, naming the struct. */
#define DJCT_CHECK_VERSION(opts, want, name)                                               \
    do {                                                                                   \
        if ((opts) && (opts)->version != (want))                                           \
            return djct_error_set(DJCT_EINVAL,                                             \
                                  "%s version %u is not supported (this library has %u); " \
                                  "initialise it with the _INIT macro",                    \
                                  name, (unsigned)(opts)->version, (unsigned)(want));      \
    } while (0)

#define DJCT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* DJCT_INT_H */
