/* djcdata internals visible to tests: the writer's chunk payload limit (the reference's
 * 0xFFFFFFFF - 400 bytes); tests lower it to produce multi-chunk qblocks with streaming
 * references. Not thread-safe to change while writing. */
#ifndef DJCT_DJCDATA_INT_H
#define DJCT_DJCDATA_INT_H

#include <stddef.h>

extern size_t djct_djcdata_chunk_limit;

#endif /* DJCT_DJCDATA_INT_H */
