/* The SHARDS plan (DJCT_SHUFFLE_SHARDS): every rank a contiguous range of the events in input
 * order, the ranges balanced by elements, batches packed in order. What prediction needs: rank r's
 * outputs are one contiguous piece of the result, so the pieces join in rank order.
 * Invariant: every event is in exactly one bin and the bins of each rank, step by step, hold its
 * range in order; nothing is dropped (no strict limit, no empty-batch rule). */
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
    int64_t *prefix = malloc((size_t)(n + 1) * sizeof(int64_t));
    int64_t *first = malloc((size_t)(W + 1) * sizeof(int64_t));
    int64_t *nb = calloc((size_t)W, sizeof(int64_t));       /* batches per rank */
    int64_t *bstart = malloc((size_t)(n + W + 1) * sizeof(int64_t)); /* batch starts, rank by rank */
    int64_t *boff = malloc((size_t)(W + 1) * sizeof(int64_t));      /* rank r's batches in bstart */
    int64_t *off = NULL, *el = NULL;
    if (!prefix || !first || !nb || !bstart || !boff) {
        rc = djct_error_oom();
        goto done;
    }
    prefix[0] = 0;
    for (int64_t i = 0; i < n; i++)
        prefix[i + 1] = prefix[i] + cnt[i];
    if (prefix[n] == 0) /* no elements at all: balance events */
        for (int64_t i = 0; i <= n; i++)
            prefix[i] = i;
    int64_t total = prefix[n];
    first[0] = 0;
    first[W] = n;
    for (int64_t r = 1; r < W; r++) /* target r * total / W without overflow */
        first[r] = cut_at(prefix, first[r - 1], n, (total / W) * r + (total % W) * r / W);
    /* batches of each rank, in order */
    int64_t nbt = 0;
    for (int64_t r = 0; r < W; r++) {
        boff[r] = nbt;
        int64_t in = 0, sum = 0;
        for (int64_t i = first[r]; i < first[r + 1]; i++) {
            int64_t c = cap > 0 ? cnt[i] : 1, limit = cap > 0 ? cap : batch_events;
            if (in > 0 && sum + c > limit) { /* close the batch before this event */
                in = 0;
                sum = 0;
            }
            if (in == 0)
                bstart[nbt++] = i;
            in++;
            sum += c;
        }
        nb[r] = nbt - boff[r];
        steps = nb[r] > steps ? nb[r] : steps;
    }
    boff[W] = nbt;
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
            int64_t b = boff[r] + s;
            int64_t end = s + 1 < nb[r] ? bstart[b + 1] : first[r + 1];
            for (int64_t i = bstart[b]; i < end; i++) {
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
    free(boff);
    return rc;
}
