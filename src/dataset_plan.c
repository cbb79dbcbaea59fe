/* The epoch plan: a pure function of (event sizes, options, seed, epoch), so every rank computes
 * the same one without talking to the others. Invariant: every planned event is in exactly one
 * (step, rank) bin, and every rank has the same number of steps. docs/data.md explains it. */
#include "djct/dataset.h"
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do
        x = splitmix(s);
    while (x >= lim);
    return x % n;
}

static void shuffle64(int64_t *a, int64_t n, uint64_t *s)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)below(s, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int64_t isqrt64(int64_t v)
{
    int64_t r = 0;
    while ((r + 1) <= v / (r + 1))
        r++;
    return r;
}

typedef struct {
    int     bin;
    int64_t id;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->bin != y->bin)
        return x->bin < y->bin ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* largest first, ties by id: the LPT order */
static int cmp_size(const void *a, const void *b, void *arg)
{
    const int64_t *cnt = arg;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (cnt[x] != cnt[y])
        return cnt[x] > cnt[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

typedef struct { /* the plan under construction */
    int64_t *off, *el;
    int64_t  steps, cap;
    int64_t  nev;
} planbuf;

static int plan_push_step(djct_dataset *ds, planbuf *pb, pair *pairs, size_t np, const int64_t *bin_sum)
{
    int W = ds->o.world_size;
    if (pb->steps == pb->cap) {
        int64_t c = pb->cap ? pb->cap * 2 : 64;
        int64_t *o = realloc(pb->off, (size_t)(c * W + 1) * sizeof(int64_t));
        if (!o)
            return djct_error_oom();
        pb->off = o;
        int64_t *e = realloc(pb->el, (size_t)(c * W) * sizeof(int64_t));
        if (!e)
            return djct_error_oom();
        pb->el = e;
        pb->cap = c;
    }
    qsort(pairs, np, sizeof(pair), cmp_pair);
    size_t i = 0;
    for (int r = 0; r < W; r++) {
        pb->off[pb->steps * W + r] = pb->nev;
        pb->el[pb->steps * W + r] = bin_sum[r];
        while (i < np && pairs[i].bin == r)
            ds->ev[pb->nev++] = pairs[i++].id;
    }
    pb->steps++;
    pb->off[pb->steps * W] = pb->nev;
    return 0;
}

int dataset_plan_epoch(djct_dataset *ds, int64_t epoch)
{
    int W = ds->o.world_size, rc = 0;
    int64_t N = ds->N;
    int64_t *perm = malloc((size_t)(N + 1) * sizeof(int64_t)), *items = malloc((size_t)(N + 1) * sizeof(int64_t));
    int64_t *dq = malloc((size_t)(N + 1) * sizeof(int64_t)), *ndq = malloc((size_t)(N + 1) * sizeof(int64_t));
    pair *pairs = malloc((size_t)(N + W + 1) * sizeof(pair));
    int64_t *load = calloc((size_t)W, sizeof(int64_t)), *solo = calloc((size_t)W, sizeof(int64_t));
    planbuf pb = {0};
    djct_plan_stats st = {0};
    if (!perm || !items || !dq || !ndq || !pairs || !load || !solo) {
        rc = djct_error_oom();
        goto done;
    }
    free(ds->ev);
    if (!(ds->ev = malloc((size_t)(N + 1) * sizeof(int64_t)))) {
        rc = djct_error_oom();
        goto done;
    }
    /* the event order of this epoch */
    uint64_t s = ds->o.seed ^ 0x6A09E667F3BCC908ull;
    splitmix(&s);
    s ^= (uint64_t)epoch * 0xD1B54A32D192ED03ull;
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    if (ds->o.shuffle == DJCT_SHUFFLE_GLOBAL)
        shuffle64(perm, N, &s);
    else if (ds->o.shuffle == DJCT_SHUFFLE_FILES) {
        int64_t *fo = malloc((ds->nf + 1) * sizeof(int64_t));
        if (!fo) {
            rc = djct_error_oom();
            goto done;
        }
        for (size_t f = 0; f < ds->nf; f++)
            fo[f] = (int64_t)f;
        shuffle64(fo, (int64_t)ds->nf, &s);
        int64_t at = 0;
        for (size_t i = 0; i < ds->nf; i++) {
            size_t f = (size_t)fo[i];
            for (int64_t e = ds->first[f]; e < ds->first[f + 1]; e++)
                perm[at + e - ds->first[f]] = e;
            shuffle64(perm + at, ds->first[f + 1] - ds->first[f], &s);
            at += ds->first[f + 1] - ds->first[f];
        }
        free(fo);
    }
    const int64_t *cnt = ds->cnt;
    if (!ds->by_elements) {
        /* count mode: W * B events per step, dealt in near-equal contiguous parts */
        int64_t B = ds->o.batch_events > 0 ? ds->o.batch_events : ds->o.batch_elements;
        int64_t sum[1024];
        int64_t *bs = W <= 1024 ? sum : load;
        for (int64_t pos = 0; pos < N;) {
            int64_t m = N - pos < (int64_t)W * B ? N - pos : (int64_t)W * B;
            if (m < (int64_t)W * B && ds->o.drop_last) {
                for (int64_t i = pos; i < N; i++) {
                    st.dropped_events++;
                    st.dropped_elements += cnt[perm[i]];
                }
                break;
            }
            size_t np = 0;
            int64_t base = m / W, extra = m % W, at = pos;
            for (int r = 0; r < W; r++) {
                int64_t take = base + (r < extra);
                bs[r] = 0;
                for (int64_t i = 0; i < take; i++, at++) {
                    pairs[np].bin = r;
                    pairs[np++].id = perm[at];
                    bs[r] += cnt[perm[at]];
                }
            }
            if ((rc = plan_push_step(ds, &pb, pairs, np, bs)) < 0)
                goto done;
            pos += m;
        }
    } else {
        /* element mode: fill a global step up to W bins of the cap, then LPT into the bins */
        int64_t L = ds->o.batch_elements, C = ds->o.squared_limit ? isqrt64(L) : L;
        int sq = ds->o.squared_limit;
        int64_t T = C > INT64_MAX / W ? INT64_MAX : C * W;
        int close_at_full = !sq || C * C == L;
        int64_t pos = 0, nd = 0, di = 0;
        while (pos < N || di < nd) {
            int64_t S = 0;
            size_t ni = 0;
            int nsolo = 0;
            for (;;) {
                int from_dq = di < nd;
                if (!from_dq && pos >= N)
                    break;
                int64_t id = from_dq ? dq[di] : perm[pos], n = cnt[id];
                if (n > C) {
                    if (ds->o.strict && n > L) { /* djcdata: usable iff n <= L (unsquared) */
                        st.dropped_events++;
                        st.dropped_elements += n;
                        from_dq ? di++ : pos++;
                        if (W == 1 && (ni || nsolo))
                            break; /* djcdata closes the batch before the dropped event */
                        continue;
                    }
                    if (S > T - C || nsolo >= W)
                        break;
                    solo[nsolo++] = id;
                    S += C;
                } else {
                    if (S > T - n)
                        break;
                    items[ni++] = id;
                    S += n;
                }
                from_dq ? di++ : pos++;
                if (nsolo == W || (S == T && close_at_full))
                    break;
            }
            /* assign: solos seal their bins; the rest largest first into the least-loaded bin */
            size_t np = 0, nnew = 0;
            for (int r = 0; r < W; r++)
                load[r] = 0;
            for (int r = 0; r < nsolo; r++) {
                pairs[np].bin = r;
                pairs[np++].id = solo[r];
                load[r] = cnt[solo[r]];
            }
            qsort_r(items, ni, sizeof(int64_t), cmp_size, (void *)cnt);
            for (size_t i = 0; i < ni; i++) {
                int best = -1;
                for (int r = nsolo; r < W; r++)
                    if (best < 0 || load[r] < load[best])
                        best = r;
                int64_t n = cnt[items[i]];
                if (best < 0 || load[best] + n > C) {
                    ndq[nnew++] = items[i]; /* does not fit now: first in line for the next step */
                    continue;
                }
                load[best] += n;
                pairs[np].bin = best;
                pairs[np++].id = items[i];
            }
            /* the deferred events go first, then what was still queued */
            for (int64_t i = di; i < nd; i++)
                ndq[nnew++] = dq[i];
            int64_t *t = dq;
            dq = ndq;
            ndq = t;
            nd = (int64_t)nnew;
            di = 0;
            int64_t tot = 0;
            for (int r = 0; r < W; r++)
                tot += load[r];
            if (np == 0)
                continue;
            if (tot == 0) { /* djcdata drops batches without elements */
                st.dropped_events += (int64_t)np;
                continue;
            }
            if ((rc = plan_push_step(ds, &pb, pairs, np, load)) < 0)
                goto done;
        }
    }
    /* stats and hash */
    st.steps = pb.steps;
    st.events = pb.nev;
    double ratio = 0;
    int64_t nr = 0;
    for (int64_t i = 0; i < pb.steps; i++) {
        int64_t mx = 0, sum = 0;
        for (int r = 0; r < W; r++) {
            sum += pb.el[i * W + r];
            mx = pb.el[i * W + r] > mx ? pb.el[i * W + r] : mx;
        }
        st.elements += sum;
        if (sum > 0) {
            ratio += (double)mx * W / (double)sum;
            nr++;
        }
    }
    st.straggler_ratio = nr ? ratio / (double)nr : 1.0;
    uint64_t h = 0xcbf29ce484222325ull;
#define FNV(x) do { uint64_t v_ = (uint64_t)(x); for (int b_ = 0; b_ < 8; b_++) { h ^= (v_ >> (8 * b_)) & 0xff; h *= 0x100000001b3ull; } } while (0)
    FNV(pb.steps);
    FNV(W);
    for (int64_t i = 0; i <= pb.steps * W && pb.off; i++)
        FNV(pb.off[i]);
    for (int64_t i = 0; i < pb.nev; i++)
        FNV(ds->ev[i]);
#undef FNV
    st.hash = h;
    free(ds->bin_off);
    free(ds->bin_el);
    if (!pb.off) { /* no step at all */
        pb.off = calloc(1, sizeof(int64_t));
        if (!pb.off) {
            rc = djct_error_oom();
            goto done;
        }
    }
    ds->bin_off = pb.off;
    ds->bin_el = pb.el;
    pb.off = pb.el = NULL;
    ds->steps = st.steps;
    ds->st = st;
    ds->epoch = epoch;
done:
    free(pb.off);
    free(pb.el);
    free(perm);
    free(items);
    free(dq);
    free(ndq);
    free(pairs);
    free(load);
    free(solo);
    return rc;
}

