/* The SHARDS plan (DJCT_SHUFFLE_SHARDS): every rank a contiguous range of the events in input
 * order, the ranges balanced by elements, batches packed in order. What prediction needs: rank r's
 * outputs are one contiguous piece of the result, so the pieces join in rank order.
 * Invariant: every event is in exactly one bin and the bins of each rank, step by step, hold its
 * range in order; the batches do not depend on the rank count; nothing is dropped (no strict
 * limit, no empty-batch rule). */
#include "dataset_shards_int.h"

#include <stdlib.h>

#include "djct/error.h"

/* the first index i >= lo with prefix[i] closest to target (prefix is non-decreasing) */
static int64_t cut_at(const int64_t *prefix, int64_t lo, int64_t n, int64_t target)
{
    int64_t a = lo, b = n; /* the first i in [lo, n] with prefix[i] >= target */
    while (a < b) {
        int64_t mid = a + (b - a) / 2;
        if (prefix[mid] >= target)
            b = mid;
        else
            a = mid + 1;
    }
    if (a > lo && target - prefix[a - 1] < prefix[a] - target)
        a--;
    return a;
}

int djct_plan_shards(const int64_t *cnt, int64_t n, int world, int64_t cap, int64_t batch_events, int64_t *ev,
                     int64_t **off_out, int64_t **el_out, int64_t *steps_out)
{
    int rc = 0;
    int64_t W = world, steps = 0;
    int64_t *prefix = malloc((size_t)(n + 1) * sizeof(int64_t));     /* elements before batch b */
    int64_t *first = malloc((size_t)(W + 1) * sizeof(int64_t));      /* rank r's first batch */
    int64_t *nb = calloc((size_t)W, sizeof(int64_t));                /* batches per rank */
    int64_t *bstart = malloc((size_t)(n + 1) * sizeof(int64_t));     /* first event of batch b */
    int64_t *off = NULL, *el = NULL;
    if (!prefix || !first || !nb || !bstart) {
        rc = djct_error_oom();
        goto done;
    }
    /* the batches, cut from the whole input in order: the same whatever the rank count, so every
     * event meets the same batch neighbours (and the same numerics) on 1 rank or many */
    int64_t nbt = 0;
    for (int64_t i = 0, in = 0, sum = 0; i < n; i++) {
        int64_t c = cap > 0 ? cnt[i] : 1, limit = cap > 0 ? cap : batch_events;
        if (in > 0 && sum + c > limit) /* close the batch before this event */
            in = sum = 0;
        if (in == 0)
            bstart[nbt++] = i;
        in++;
        sum += c;
    }
    bstart[nbt] = n;
    /* contiguous runs of batches per rank, balanced by elements (by batches when there are none) */
    prefix[0] = 0;
    for (int64_t b = 0; b < nbt; b++) {
        int64_t sum = 0;
        for (int64_t i = bstart[b]; i < bstart[b + 1]; i++)
            sum += cnt[i];
        prefix[b + 1] = prefix[b] + sum;
    }
    if (prefix[nbt] == 0)
        for (int64_t b = 0; b <= nbt; b++)
            prefix[b] = b;
    int64_t total = prefix[nbt];
    first[0] = 0; /* in batches */
    first[W] = nbt;
    for (int64_t r = 1; r < W; r++) /* target r * total / W without overflow */
        first[r] = cut_at(prefix, first[r - 1], nbt, (total / W) * r + (total % W) * r / W);
    for (int64_t r = 0; r < W; r++) {
        nb[r] = first[r + 1] - first[r];
        steps = nb[r] > steps ? nb[r] : steps;
    }
    if (!(off = malloc((size_t)(steps * W + 1) * sizeof(int64_t))) ||
        (steps && !(el = malloc((size_t)(steps * W) * sizeof(int64_t))))) {
        rc = djct_error_oom();
        goto done;
    }
    int64_t at = 0;
    for (int64_t s = 0; s < steps; s++)
        for (int64_t r = 0; r < W; r++) {
            off[s * W + r] = at;
            el[s * W + r] = 0;
            if (s >= nb[r])
                continue;
            int64_t b = first[r] + s;
            for (int64_t i = bstart[b]; i < bstart[b + 1]; i++) {
                ev[at++] = i;
                el[s * W + r] += cnt[i];
            }
        }
    off[steps * W] = at;
    *off_out = off;
    *el_out = el;
    *steps_out = steps;
    off = el = NULL;
done:
    free(off);
    free(el);
    free(prefix);
    free(first);
    free(nb);
    free(bstart);
    return rc;
}
