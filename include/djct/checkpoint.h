/* Checkpoint directories. A checkpoint of step N is written into a temporary directory
 * `<run_dir>/checkpoints/.step-N.partial/`, completed by a `DONE` manifest (magic, version, step,
 * every file with its size and CRC-32, and caller metadata as JSON), then renamed to
 * `<run_dir>/checkpoints/step-N/` and recorded in `<run_dir>/checkpoints/latest`. Resume only ever
 * uses directories whose manifest verifies, so a run killed at any instant leaves either the old
 * or the new checkpoint usable. Multi-rank use: every rank writes its files into the directory
 * djct_ckpt_begin() returned, the ranks synchronise, then one rank calls djct_ckpt_commit(). */
#ifndef DJCT_CHECKPOINT_H
#define DJCT_CHECKPOINT_H

#include "common.h"

DJCT_BEGIN_DECLS

#define DJCT_CKPT_MAGIC "djct-checkpoint"
#define DJCT_CKPT_VERSION 1

/** Create (empty) the temporary directory for step `step` under `run_dir` (created if needed) and
 *  return its path in *tmp_dir (yours; free()). A stale partial directory of the same step is
 *  removed first. */
DJCT_API int djct_ckpt_begin(char **tmp_dir, const char *run_dir, int64_t step);

/** Return the temporary directory path of step `step` without touching the disk (ranks other
 *  than the one that called djct_ckpt_begin use this). *tmp_dir is yours; free(). */
DJCT_API int djct_ckpt_partial_path(char **tmp_dir, const char *run_dir, int64_t step);

/** Complete step `step`: fsync every file, write the DONE manifest with `meta_json` (a JSON
 *  object text, may be NULL), rename to step-N, fsync, update `latest`, and delete all but the
 *  newest `keep` complete checkpoints (keep <= 0 keeps all) and stale partial directories.
 *  *final_dir (may be NULL) receives the final path (yours; free()). */
DJCT_API int djct_ckpt_commit(char **final_dir, const char *run_dir, int64_t step, const char *meta_json,
                              int keep);

/** Check a checkpoint directory: its manifest parses, has the right magic/version, and every file
 *  listed has the recorded size and CRC-32. DJCT_EINVAL/DJCT_EIO name the file and the mismatch. */
DJCT_API int djct_ckpt_verify(const char *dir);

/** The newest complete, verified checkpoint of `run_dir`: *dir (yours; free()) and *step.
 *  Returns 0 with *dir = NULL and *step = -1 when there is none. Incomplete or corrupt
 *  checkpoints are skipped (an older complete one is used) without a word, and left in place:
 *  to resume, use djct_ckpt_find_latest_checked(), which names and sets them aside. */
DJCT_API int djct_ckpt_find_latest(char **dir, int64_t *step, const char *run_dir);

/** The newest verified checkpoint, for resuming (as djct_ckpt_find_latest, same outputs), where a
 *  damaged one is never skipped silently: each checkpoint newer than the one found that fails
 *  verification is renamed `step-N.damaged` (`step-N.damaged.1`, ... when that name is taken: never
 *  overwritten, never removed by rotation, never used to resume) and named in *damaged, one line
 *  each: "checkpoint '<dir>': file 'model.pt' has 100 bytes, DONE says 2000; moved aside to
 *  '<dir>.damaged'" (yours; free(); "" when none). *n_damaged (may be NULL) gets the number of
 *  checkpoints set aside in the run directory, by this call or earlier ones, so a caller can tell
 *  "no checkpoint yet" (0) from "every checkpoint is damaged". Only one process may call it. */
DJCT_API int djct_ckpt_find_latest_checked(char **dir, int64_t *step, char **damaged, int *n_damaged,
                                           const char *run_dir);

/** The caller metadata stored in a checkpoint's manifest (JSON object text; yours; free()). */
DJCT_API int djct_ckpt_read_meta(char **meta_json, const char *dir);

DJCT_END_DECLS

#endif /* DJCT_CHECKPOINT_H */
