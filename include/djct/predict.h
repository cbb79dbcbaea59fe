/* Prediction: a model run over every event of a dataset, its outputs written to one file in the
 * input's event order with ids that line up with the input (docs/predict.md).
 *
 * Every rank predicts its own contiguous shard (a dataset opened with DJCT_SHUFFLE_SHARDS), in
 * evaluation mode, with targets None and every LoggingModule and LossModule switched off (the
 * djctools inference convention), or with targets and the caller's switches for an evaluation
 * (mean loss and metrics, event-weighted over all ranks). Each rank appends its batches to a part
 * file next to the output; rank 0 joins the parts in rank order into a temporary file and renames
 * it into place, so no rank holds more than a batch of outputs and a failed run leaves no
 * output behind. */
#ifndef DJCT_PREDICT_H
#define DJCT_PREDICT_H

#include "array.h"
#include "comm.h"
#include "common.h"
#include "dataset.h"
#include "model.h"
#include "trainer.h"

DJCT_BEGIN_DECLS

/* The truth arrays of a predictions file: per event, int32. */
#define DJCT_PREDICT_EVENT_ID   "event_id"   /* global index of the event in the input (0..N-1) */
#define DJCT_PREDICT_FILE_INDEX "file_index" /* the input file it came from; this array's feature
                                                names are the input files in order */
#define DJCT_PREDICT_FILE_EVENT "file_event" /* its index within that file */

/** Most model outputs a prediction writes. */
#define DJCT_PREDICT_MAX_OUTPUTS 64

/** How an output lines up with the input. */
typedef enum {
    DJCT_OUTPUT_AUTO    = 0, /* decided from the shapes (docs/predict.md) */
    DJCT_OUTPUT_EVENT   = 1, /* one row per event: written as a regular array [events, ...] */
    DJCT_OUTPUT_ELEMENT = 2  /* one row per element of a ragged feature array: written ragged with
                                that array's row splits [events, -elements, ...] */
} djct_output_kind;

typedef struct {
    unsigned int version;      /* always first; filled in by the _INIT macro */
    const char  *out_path;     /* the predictions file (required) */
    int          format;       /* DJCT_FORMAT_H5 or DJCT_FORMAT_DJCTD; DJCT_FORMAT_UNKNOWN: from
                                  out_path's extension (djct_format_from_name) */
    const char  *output_kinds; /* "KIND,KIND,...", one per model output: event, element (the ragged
                                  feature array with that many elements) or element:NAME (a ragged
                                  feature array by name or index); NULL or "": every output auto */
    const char  *output_names; /* "NAME,NAME,...": names of the output arrays; NULL: output_0, ... */
    int          with_targets; /* 0: targets None, every LoggingModule and LossModule switched off;
                                  1: targets (truths, then weights) and the model's switches as the
                                  caller set them, for the evaluation in the result */
    int          gzip_level;   /* HDF5 output: 0 none, 1..9 deflate */
    djct_batch_callback callback; /* after every batch on every rank (NULL: none); the report is
                                     this rank's: events, elements, the batch's loss (NaN without
                                     one), t_step, t_data; its return value is ignored */
    void        *callback_user;
} djct_predict_options;
#define DJCT_PREDICT_OPTIONS_VERSION 1
#define DJCT_PREDICT_OPTIONS_INIT \
    { DJCT_PREDICT_OPTIONS_VERSION, NULL, DJCT_FORMAT_UNKNOWN, NULL, NULL, 0, 0, NULL, NULL }

/** What a prediction did; the same on every rank except `seconds`. Release with
 *  djct_predict_result_clear(). */
typedef struct {
    int64_t events;             /* events predicted (all of the dataset's) */
    int64_t elements;           /* their elements (events when not ragged) */
    int64_t steps;              /* batches per rank (the most of any rank) */
    size_t  n_outputs;
    char  **output_names;       /* n_outputs */
    int    *output_kinds;       /* djct_output_kind, EVENT or ELEMENT */
    char  **output_ragged_like; /* ELEMENT: the name of the ragged feature array whose row splits
                                   the output takes ("" when unnamed); NULL for EVENT */
    double  loss;               /* with_targets: mean loss over all events (each batch's summed
                                   loss weighted by its events); NaN otherwise or with every loss off */
    size_t  n_metrics;          /* with_targets: every metric the model recorded, module order */
    char  **metric_names;       /* "<module>_<metric>" */
    double *metric_values;      /* means weighted by the events of the batches that recorded them */
    double  seconds;            /* this rank's wall time in djct_predict, the join included */
} djct_predict_result;

/** Check the options alone (version, out_path and its format, the syntax of output_kinds and
 *  output_names, gzip_level), for apps to refuse bad options before loading anything.
 *  @return 0 or DJCT_EINVAL naming the field. */
DJCT_API int djct_predict_options_check(const djct_predict_options *opts);

/** Predict every event of `ds` with `m` and write the predictions file (collective over `comm`).
 *  `ds` must be opened with shuffle DJCT_SHUFFLE_SHARDS, rank and world_size of `comm`, at its
 *  first epoch (checked: the ranks' events must tile the input in order). The model is put into
 *  evaluation mode; without with_targets every LoggingModule and LossModule is switched off (and
 *  stays so). Output kinds are agreed by all ranks after the first batch. *out is filled on
 *  success (zero it before; release with djct_predict_result_clear()).
 *  @return 0, or the first failing rank's error on every rank ("rank R: ..."): DJCT_EINVAL (a
 *  model that still needs targets, an output that is neither per event nor per element, an
 *  ambiguous output without output_kinds, a bad dataset), DJCT_EIO (writing), DJCT_ETORCH,
 *  DJCT_EMPI, DJCT_ENOMEM. On failure no output file and no part file is left. */
DJCT_API int djct_predict(djct_model *m, djct_dataset *ds, djct_comm *comm, const djct_predict_options *opts,
                          djct_predict_result *out);

/** Free what the result points to and zero it. NULL is fine. */
DJCT_API void djct_predict_result_clear(djct_predict_result *r);

DJCT_END_DECLS

#endif /* DJCT_PREDICT_H */
