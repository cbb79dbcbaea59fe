/* The epoch plan: which events each rank gets at each step of an epoch. A pure function of (event
 * sizes, file boundaries, options, seed, epoch), so every rank computes the same plan without
 * talking to the others. Invariants: every planned event is in exactly one (step, rank) bin; every
 * step has one bin per rank, so every rank runs the same number of steps; in element mode a bin
 * holds at most the cap, except a bin holding one oversized event alone. docs/data.md explains
 * the algorithm; tests/test_dataset_plan.c checks these properties. */
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"
#include "dataset_shards_int.h"
#include "util_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- random order -------------------------------------------------------------------------- */

/* uniform in [0, n): rejection keeps it unbiased */
static uint64_t random_below(uint64_t *state, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do
        x = djct_splitmix64(state);
    while (x >= limit);
    return x % n;
}

/* Fisher-Yates */
static void shuffle_ids(int64_t *ids, int64_t n, uint64_t *state)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)random_below(state, (uint64_t)i + 1), t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
}

/* the random stream of one epoch: a function of (seed, epoch) alone */
static uint64_t epoch_stream(uint64_t seed, int64_t epoch)
{
    uint64_t state = seed ^ 0x6A09E667F3BCC908ull;
    djct_splitmix64(&state);
    return state ^ (uint64_t)epoch * 0xD1B54A32D192ED03ull;
}

/* The epoch's event order into order[n_events]: file order (NONE), all events permuted (GLOBAL),
 * or the files permuted and then the events within each file (FILES). */
static int order_events(int64_t *order, const djct_plan_input *in, int64_t epoch)
{
    uint64_t state = epoch_stream(in->seed, epoch);
    for (int64_t i = 0; i < in->n_events; i++)
        order[i] = i;
    if (in->shuffle == DJCT_SHUFFLE_GLOBAL)
        shuffle_ids(order, in->n_events, &state);
    if (in->shuffle != DJCT_SHUFFLE_FILES)
        return 0;
    int64_t *file_order = malloc((in->n_files + 1) * sizeof(int64_t));
    if (!file_order)
        return djct_error_oom();
    for (size_t f = 0; f < in->n_files; f++)
        file_order[f] = (int64_t)f;
    shuffle_ids(file_order, (int64_t)in->n_files, &state);
    int64_t at = 0;
    for (size_t i = 0; i < in->n_files; i++) {
        size_t f = (size_t)file_order[i];
        int64_t first = in->file_first[f], n = in->file_first[f + 1] - first;
        for (int64_t e = 0; e < n; e++)
            order[at + e] = first + e;
        shuffle_ids(order + at, n, &state);
        at += n;
    }
    free(file_order);
    return 0;
}

/* ---- the plan under construction ----------------------------------------------------------- */

typedef struct {
    int     rank;
    int64_t event;
} assignment;

/* by rank, then by event id: a bin's events ascend, so each file is read with one gather */
static int cmp_assignment(const void *a, const void *b)
{
    const assignment *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return x->event < y->event ? -1 : x->event > y->event;
}

typedef struct {
    int                world_size;
    const int64_t     *elements;      /* per event */
    djct_dataset_plan *plan;          /* steps, bin_start and bin_elements grow; events is sized */
    int64_t            step_room;     /* steps bin_start/bin_elements have room for */
    assignment        *assigned;      /* this step's (rank, event) pairs */
    size_t             n_assigned;
    int64_t           *rank_elements; /* world_size: this step's elements per rank */
    djct_plan_stats   *stats;
} plan_builder;

static int grow_steps(plan_builder *b)
{
    int64_t room = b->step_room ? b->step_room * 2 : 64, ranks = b->world_size;
    int64_t *start = realloc(b->plan->bin_start, (size_t)(room * ranks + 1) * sizeof(int64_t));
    if (!start)
        return djct_error_oom();
    b->plan->bin_start = start;
    int64_t *elements = realloc(b->plan->bin_elements, (size_t)(room * ranks) * sizeof(int64_t));
    if (!elements)
        return djct_error_oom();
    b->plan->bin_elements = elements;
    b->step_room = room;
    return 0;
}

/* the step's assignments become one bin per rank */
static int close_step(plan_builder *b)
{
    djct_dataset_plan *p = b->plan;
    int rc;
    if (p->steps == b->step_room && (rc = grow_steps(b)) < 0)
        return rc;
    qsort(b->assigned, b->n_assigned, sizeof(assignment), cmp_assignment);
    size_t i = 0;
    for (int rank = 0; rank < b->world_size; rank++) {
        int64_t bin = p->steps * b->world_size + rank;
        p->bin_start[bin] = p->n_planned;
        p->bin_elements[bin] = b->rank_elements[rank];
        while (i < b->n_assigned && b->assigned[i].rank == rank)
            p->events[p->n_planned++] = b->assigned[i++].event;
    }
    p->steps++;
    p->bin_start[p->steps * b->world_size] = p->n_planned;
    b->n_assigned = 0;
    return 0;
}

static void assign(plan_builder *b, int rank, int64_t event)
{
    b->assigned[b->n_assigned].rank = rank;
    b->assigned[b->n_assigned++].event = event;
}

static void drop_event(plan_builder *b, int64_t event)
{
    b->stats->dropped_events++;
    b->stats->dropped_elements += b->elements[event];
}

/* ---- count mode: batches count events -------------------------------------------------------- */

/* world_size * batch events per step, dealt in near-equal contiguous parts (the first ranks take
 * one more when the step does not divide) */
static int plan_by_count(plan_builder *b, const djct_plan_input *in, const int64_t *order)
{
    int64_t batch = in->batch_events > 0 ? in->batch_events : in->batch_elements;
    int64_t per_step = (int64_t)b->world_size * batch;
    for (int64_t next = 0; next < in->n_events;) {
        int64_t take = in->n_events - next < per_step ? in->n_events - next : per_step;
        if (take < per_step && in->drop_last) {
            for (int64_t i = next; i < in->n_events; i++)
                drop_event(b, order[i]);
            break;
        }
        int64_t base = take / b->world_size, extra = take % b->world_size, at = next;
        for (int rank = 0; rank < b->world_size; rank++) {
            int64_t n = base + (rank < extra);
            b->rank_elements[rank] = 0;
            for (int64_t i = 0; i < n; i++, at++) {
                assign(b, rank, order[at]);
                b->rank_elements[rank] += b->elements[order[at]];
            }
        }
        int rc = close_step(b);
        if (rc < 0)
            return rc;
        next += take;
    }
    return 0;
}

/* ---- element mode: batches limited by ragged elements ---------------------------------------- */

/* Where the next events come from: the events a step deferred (first in line), then the epoch's
 * order. */
typedef struct {
    const int64_t *order;
    int64_t        next, n_events;
    int64_t       *deferred, *next_deferred; /* two queues, swapped after each step */
    int64_t        deferred_at, n_deferred;
} event_source;

static int source_empty(const event_source *s) { return s->deferred_at >= s->n_deferred && s->next >= s->n_events; }

static int64_t source_peek(const event_source *s)
{
    return s->deferred_at < s->n_deferred ? s->deferred[s->deferred_at] : s->order[s->next];
}

static void source_take(event_source *s)
{
    if (s->deferred_at < s->n_deferred)
        s->deferred_at++;
    else
        s->next++;
}

typedef struct {
    int64_t  rank_cap;     /* elements per bin: the limit, or its square root when squared */
    int64_t  limit;        /* the option: strict mode drops events above it (unsquared, as djcdata) */
    int64_t  step_cap;     /* rank_cap * world_size (saturating) */
    int      close_at_cap; /* a step that reaches step_cap exactly is full (djcdata's rule) */
    int64_t *fitting;      /* this step's events within rank_cap */
    size_t   n_fitting;
    int64_t *oversized;    /* this step's events above rank_cap, one bin each */
    int      n_oversized;
} step_fill;

static int64_t integer_sqrt(int64_t v)
{
    int64_t r = 0;
    while ((r + 1) <= v / (r + 1))
        r++;
    return r;
}

/* Collect one global step: events while their elements fit step_cap; an oversized event counts a
 * whole bin; strict mode drops events above the limit (with one rank a drop closes the batch, as
 * djcdata does). */
static void fill_step(plan_builder *b, const djct_plan_input *in, event_source *src, step_fill *fill)
{
    int64_t total = 0;
    fill->n_fitting = 0;
    fill->n_oversized = 0;
    while (!source_empty(src)) {
        int64_t event = source_peek(src), n = b->elements[event];
        if (n > fill->rank_cap) {
            if (in->strict && n > fill->limit) {
                drop_event(b, event);
                source_take(src);
                if (b->world_size == 1 && (fill->n_fitting || fill->n_oversized))
                    break;
                continue;
            }
            if (total > fill->step_cap - fill->rank_cap || fill->n_oversized >= b->world_size)
                break;
            fill->oversized[fill->n_oversized++] = event;
            total += fill->rank_cap;
        } else {
            if (total > fill->step_cap - n)
                break;
            fill->fitting[fill->n_fitting++] = event;
            total += n;
        }
        source_take(src);
        if (fill->n_oversized == b->world_size || (total == fill->step_cap && fill->close_at_cap))
            break;
    }
}

/* largest first, ties by id: the longest-processing-time order */
static int cmp_larger_first(const void *a, const void *b, void *elements_)
{
    const int64_t *elements = elements_;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (elements[x] != elements[y])
        return elements[x] > elements[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int least_loaded_open_bin(const plan_builder *b, int first_open)
{
    int best = -1;
    for (int rank = first_open; rank < b->world_size; rank++)
        if (best < 0 || b->rank_elements[rank] < b->rank_elements[best])
            best = rank;
    return best;
}

/* Deal the step into bins: each oversized event seals a bin of its own; the others, largest
 * first, go to the least-loaded open bin that stays within the cap. An event that fits nowhere is
 * deferred to the front of the next step, ahead of what was still deferred. */
static void deal_step(plan_builder *b, event_source *src, step_fill *fill)
{
    for (int rank = 0; rank < b->world_size; rank++)
        b->rank_elements[rank] = 0;
    for (int rank = 0; rank < fill->n_oversized; rank++) {
        assign(b, rank, fill->oversized[rank]);
        b->rank_elements[rank] = b->elements[fill->oversized[rank]];
    }
    qsort_r(fill->fitting, fill->n_fitting, sizeof(int64_t), cmp_larger_first, (void *)b->elements);
    int64_t n_next = 0;
    for (size_t i = 0; i < fill->n_fitting; i++) {
        int64_t event = fill->fitting[i], n = b->elements[event];
        int rank = least_loaded_open_bin(b, fill->n_oversized);
        if (rank < 0 || b->rank_elements[rank] + n > fill->rank_cap) {
            src->next_deferred[n_next++] = event;
            continue;
        }
        b->rank_elements[rank] += n;
        assign(b, rank, event);
    }
    for (int64_t i = src->deferred_at; i < src->n_deferred; i++)
        src->next_deferred[n_next++] = src->deferred[i];
    int64_t *t = src->deferred;
    src->deferred = src->next_deferred;
    src->next_deferred = t;
    src->n_deferred = n_next;
    src->deferred_at = 0;
}

/* Global steps filled up to world_size bins of the cap, then dealt into balanced bins. A step
 * whose bins hold no element at all is dropped, as djcdata drops empty batches. */
static int plan_by_elements(plan_builder *b, const djct_plan_input *in, const int64_t *order)
{
    int64_t n = in->n_events;
    step_fill fill = {0};
    event_source src = {order, 0, n, NULL, NULL, 0, 0};
    fill.limit = in->batch_elements;
    fill.rank_cap = in->squared_limit ? integer_sqrt(fill.limit) : fill.limit;
    fill.step_cap = fill.rank_cap > INT64_MAX / b->world_size ? INT64_MAX : fill.rank_cap * b->world_size;
    fill.close_at_cap = !in->squared_limit || fill.rank_cap * fill.rank_cap == fill.limit;
    fill.fitting = malloc((size_t)(n + 1) * sizeof(int64_t));
    fill.oversized = malloc((size_t)b->world_size * sizeof(int64_t));
    src.deferred = malloc((size_t)(n + 1) * sizeof(int64_t));
    src.next_deferred = malloc((size_t)(n + 1) * sizeof(int64_t));
    int rc = fill.fitting && fill.oversized && src.deferred && src.next_deferred ? 0 : djct_error_oom();
    while (rc == 0 && !source_empty(&src)) {
        fill_step(b, in, &src, &fill);
        deal_step(b, &src, &fill);
        int64_t step_elements = 0;
        for (int rank = 0; rank < b->world_size; rank++)
            step_elements += b->rank_elements[rank];
        if (b->n_assigned == 0)
            continue;
        if (step_elements == 0) {
            b->stats->dropped_events += (int64_t)b->n_assigned;
            b->n_assigned = 0;
            continue;
        }
        rc = close_step(b);
    }
    free(fill.fitting);
    free(fill.oversized);
    free(src.deferred);
    free(src.next_deferred);
    return rc;
}

/* ---- statistics and the plan's hash ---------------------------------------------------------- */

static void finish_stats(djct_dataset_plan *p, int world_size)
{
    djct_plan_stats *st = &p->stats;
    st->steps = p->steps;
    st->events = p->n_planned;
    double ratio_sum = 0;
    int64_t ratio_steps = 0;
    for (int64_t s = 0; s < p->steps; s++) {
        int64_t largest = 0, sum = 0;
        for (int rank = 0; rank < world_size; rank++) {
            int64_t e = p->bin_elements[s * world_size + rank];
            sum += e;
            largest = e > largest ? e : largest;
        }
        st->elements += sum;
        if (sum > 0) {
            ratio_sum += (double)largest * world_size / (double)sum;
            ratio_steps++;
        }
    }
    st->straggler_ratio = ratio_steps ? ratio_sum / (double)ratio_steps : 1.0;
    uint64_t h = DJCT_FNV1A_OFFSET;
    h = djct_fnv1a_u64(h, (uint64_t)p->steps);
    h = djct_fnv1a_u64(h, (uint64_t)world_size);
    for (int64_t i = 0; p->steps > 0 && i <= p->steps * world_size; i++)
        h = djct_fnv1a_u64(h, (uint64_t)p->bin_start[i]);
    for (int64_t i = 0; i < p->n_planned; i++)
        h = djct_fnv1a_u64(h, (uint64_t)p->events[i]);
    st->hash = h;
}

/* ---- the plan ---------------------------------------------------------------------------------- */

void djct_dataset_plan_clear(djct_dataset_plan *p)
{
    free(p->bin_start);
    free(p->bin_elements);
    free(p->events);
    memset(p, 0, sizeof(*p));
}

int djct_dataset_plan_make(djct_dataset_plan *out, const djct_plan_input *in, int64_t epoch)
{
    int ranks = in->world_size;
    int64_t n = in->n_events;
    djct_dataset_plan plan = {0};
    plan.epoch = epoch;
    int64_t *order = malloc((size_t)(n + 1) * sizeof(int64_t));
    plan_builder b = {ranks, in->event_elements, &plan, 0, NULL, 0, NULL, &plan.stats};
    b.assigned = malloc((size_t)(n + ranks + 1) * sizeof(assignment));
    b.rank_elements = calloc((size_t)ranks, sizeof(int64_t));
    plan.events = malloc((size_t)(n + 1) * sizeof(int64_t));
    int rc = order && b.assigned && b.rank_elements && plan.events ? 0 : djct_error_oom();
    if (rc == 0 && in->shuffle == DJCT_SHUFFLE_SHARDS) { /* contiguous shards in input order: src/dataset_shards.c */
        int64_t cap = !in->by_elements ? 0 : in->squared_limit ? integer_sqrt(in->batch_elements) : in->batch_elements;
        int64_t per_batch = in->batch_events > 0 ? in->batch_events : in->batch_elements;
        rc = djct_plan_shards(in->event_elements, n, ranks, cap, per_batch, plan.events, &plan.bin_start,
                              &plan.bin_elements, &plan.steps);
        plan.n_planned = n;
    } else {
        if (rc == 0)
            rc = order_events(order, in, epoch);
        if (rc == 0)
            rc = in->by_elements ? plan_by_elements(&b, in, order) : plan_by_count(&b, in, order);
    }
    if (rc == 0 && !plan.bin_start && !(plan.bin_start = calloc(1, sizeof(int64_t)))) /* no step at all */
        rc = djct_error_oom();
    if (rc == 0) {
        finish_stats(&plan, ranks);
        djct_dataset_plan_clear(out);
        *out = plan;
    } else {
        djct_dataset_plan_clear(&plan);
    }
    free(order);
    free(b.assigned);
    free(b.rank_elements);
    return rc;
}
