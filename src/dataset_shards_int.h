/* The SHARDS plan of the dataset (DJCT_SHUFFLE_SHARDS), shared between src/dataset.c and its
 * planner src/dataset_shards.c: a pure function of the per-event element counts. Not installed. */
#ifndef DJCT_DATASET_SHARDS_INT_H
#define DJCT_DATASET_SHARDS_INT_H

#include <stdint.h>

/* Plan `n` events (cnt[i]: elements of event i, or 1 when batches count events) over `world`
 * ranks. The events are cut into batches in their order, independently of `world`: with cap > 0
 * a batch takes events while their elements stay <= cap (an event larger than cap is a batch of
 * its own), with cap == 0 `batch_events` events per batch. Rank r gets a contiguous run of these
 * batches, the runs balanced by elements (by batches when every count is 0). Nothing is dropped.
 * Step s holds batch s of every rank (an empty bin when a rank has fewer batches), so
 * *steps = the most batches of any rank. Outputs, in the dataset's plan format:
 *   ev[n]              filled with the events in bin order (step by step, rank by rank)
 *   *off               malloc'ed, steps * world + 1: bin (s, r) holds ev[off[s*world+r] .. off[s*world+r+1])
 *   *el                malloc'ed, steps * world: elements per bin (NULL when steps is 0)
 * Returns 0 or DJCT_ENOMEM. */
int djct_plan_shards(const int64_t *cnt, int64_t n, int world, int64_t cap, int64_t batch_events, int64_t *ev,
                     int64_t **off, int64_t **el, int64_t *steps);

#endif /* DJCT_DATASET_SHARDS_INT_H */
