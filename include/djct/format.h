/* The file formats djct reads and writes, and the one detector every reader choice goes through:
 * by the file's first bytes, the name serving only to explain a file whose content is not known.
 * A file about to be written has no content yet: its format comes from its name
 * (djct_format_from_name), in this one place as well. */
#ifndef DJCT_FORMAT_H
#define DJCT_FORMAT_H

#include "common.h"

DJCT_BEGIN_DECLS

/** File formats djct reads and writes. */
typedef enum {
    DJCT_FORMAT_UNKNOWN = 0,
    DJCT_FORMAT_DJCTD   = 1, /* djcdata TrainData: one or more records */
    DJCT_FORMAT_DJCSA   = 2, /* djcdata SimpleArray: one array */
    DJCT_FORMAT_H5      = 3  /* djct's HDF5 layout (docs/hdf5_layout.md) */
} djct_format;

/** The format of the file at `path`, from its first 8 bytes: the HDF5 signature, or djcdata's
 *  version word (2.0 or 2.1; a second version word right after it makes a .djcsa). The extension
 *  does not decide: a .djctd renamed .h5 is a .djctd. Does not validate the rest of the file.
 *  @return 0 with *out set; DJCT_EIO when the file cannot be opened or read; DJCT_EINVAL when
 *  its content is none of the formats (the message names the first bytes, and says so when the
 *  name promised a format), *out = DJCT_FORMAT_UNKNOWN. */
DJCT_API int djct_format_detect(djct_format *out, const char *path);

/** The format a file to be written is named for: DJCT_FORMAT_H5 for a name ending in .h5 or
 *  .hdf5, DJCT_FORMAT_DJCTD for .djctd, DJCT_FORMAT_DJCSA for .djcsa, else (and for NULL)
 *  DJCT_FORMAT_UNKNOWN. Reads nothing: for outputs, which do not exist yet; an existing file's
 *  format is its content's (djct_format_detect). */
DJCT_API djct_format djct_format_from_name(const char *path);

/** "djctd", "djcsa", "h5" or "unknown". */
DJCT_API const char *djct_format_name(djct_format f);

DJCT_END_DECLS

#endif /* DJCT_FORMAT_H */
