/* Library version. */
#ifndef DJCT_VERSION_H
#define DJCT_VERSION_H

#include "common.h"

DJCT_BEGIN_DECLS

#define DJCT_VERSION_MAJOR 0
#define DJCT_VERSION_MINOR 1
#define DJCT_VERSION_PATCH 0

/** The version of the linked library, "MAJOR.MINOR.PATCH". */
DJCT_API const char *djct_version(void);

/** One line naming the optional parts compiled in, e.g. "libtorch yes, CUDA/NCCL yes". */
DJCT_API const char *djct_build_features(void);

DJCT_END_DECLS

#endif /* DJCT_VERSION_H */
