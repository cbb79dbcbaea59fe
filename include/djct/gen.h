/* Synthetic irregular data: toy particle showers with a heavy-tailed (lognormal) number of points
 * per event, 4 float features per point (x, y, z, energy), an int32 class label (0..2: narrow,
 * medium, wide showers) and a float32 regression target log(1 + total energy) that a model can
 * learn from the points. Event g draws everything from its own stream seeded by (seed, g), so the
 * data do not depend on how events are split into files, and the same options give identical
 * bytes. Used by djct_gen and by djct_train's embedded default. */
#ifndef DJCT_GEN_H
#define DJCT_GEN_H

#include "common.h"

DJCT_BEGIN_DECLS

typedef struct {
    unsigned int version;     /* always first */
    int64_t      events;      /* events in total */
    int64_t      files;       /* files, equal shares */
    uint64_t     seed;
    int          format;      /* DJCT_FORMAT_DJCTD or DJCT_FORMAT_H5 (djct_format) */
    double       mean_points; /* mean points per event */
    double       sigma;       /* lognormal sigma of the points per event */
    int64_t      max_points;  /* cap on points per event */
    int          gzip;        /* HDF5 only: gzip level 0..9 */
    int64_t      first_event; /* global id of the first event (a validation set continues the ids) */
} djct_gen_options;
#define DJCT_GEN_OPTIONS_VERSION 1
#define DJCT_GEN_OPTIONS_INIT { DJCT_GEN_OPTIONS_VERSION, 20000, 4, 1, 1, 200.0, 1.0, 100000, 0, 0 }

/** Write `dir`/part-NNN.djctd (or .h5), creating `dir`. */
DJCT_API int djct_gen_write(const char *dir, const djct_gen_options *opts);

/** The cached training + validation pair used as djct_train's default: `dir`/train (opts) and
 *  `dir`/val (a fifth as many events, one file, ids after the training events), written into a
 *  temporary directory and renamed, so concurrent jobs and killed runs never see half a set.
 *  Nothing is written when `dir` already holds a complete set. *generated (may be NULL) is 1
 *  when this call wrote it. */
DJCT_API int djct_gen_cached(const char *dir, const djct_gen_options *opts, int *generated);

DJCT_END_DECLS

#endif /* DJCT_GEN_H */
