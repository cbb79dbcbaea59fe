/* General file helpers: atomic replacement of a file's content, whole-file reads, mkdir -p and
 * rm -rf. Used by checkpoints, the run journal and the apps; errors name the path and the reason. */
#ifndef DJCT_FILEUTIL_H
#define DJCT_FILEUTIL_H

#include "common.h"

DJCT_BEGIN_DECLS

/** Write `len` bytes to `path` atomically (temporary file in the same directory, fsync, rename,
 *  fsync of the directory): readers see the old or the new content, never a mix. */
DJCT_API int djct_write_file_atomic(const char *path, const void *data, size_t len);

/** Create `path` and its missing parents (mode 0755), like `mkdir -p`. */
DJCT_API int djct_mkdirs(const char *path);

/** Remove `path` and everything below it, like `rm -rf` (no error when it does not exist). */
DJCT_API int djct_remove_tree(const char *path);

/** Read a whole file into a malloc'ed buffer (NUL-terminated for convenience). */
DJCT_API int djct_read_file(void **data, size_t *len, const char *path);

DJCT_END_DECLS

#endif /* DJCT_FILEUTIL_H */
