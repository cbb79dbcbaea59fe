/* The epoch planner on its own (src/dataset_plan.c), from event sizes alone: the properties every
 * plan must have, checked over many random inputs (each property is one check that reports the
 * first input that breaks it), then the edge cases one by one. */
#include "harness.h"
#include "dataset_int.h"

#include <inttypes.h>

#define MAX_FILES 6

typedef struct {
    djct_plan_input in;
    int64_t first[MAX_FILES + 1];
    int64_t *elements;
} plan_case;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int64_t random_below(int64_t n) { return (int64_t)(next_random() % (uint64_t)n); }

/* a random data set (sizes from several distributions, some files empty) and random options */
static void random_case(plan_case *c, int index)
{
    memset(c, 0, sizeof(*c));
    size_t n_files = 1 + (size_t)random_below(MAX_FILES);
    for (size_t f = 0; f < n_files; f++)
        c->first[f + 1] = c->first[f] + random_below(index % 9 == 0 ? 4 : 60);
    int64_t n = c->first[n_files];
    c->elements = malloc((size_t)(n + 1) * sizeof(int64_t));
    int sizes = (int)random_below(4);
    for (int64_t e = 0; e < n; e++)
        c->elements[e] = sizes == 0 ? 1 : sizes == 1 ? random_below(20) : sizes == 2 ? random_below(300)
                                                                      : 1 + random_below(40);
    djct_plan_input *in = &c->in;
    in->world_size = 1 + (int)random_below(6);
    in->shuffle = (int)random_below(3);
    in->seed = next_random();
    in->by_elements = random_below(3) != 0;
    in->batch_events = 1 + random_below(8);
    in->batch_elements = in->by_elements ? 1 + random_below(150) : 0;
    in->squared_limit = in->by_elements && random_below(3) == 0;
    in->strict = (int)random_below(2);
    in->drop_last = (int)random_below(2);
    in->n_events = n;
    in->event_elements = c->elements;
    in->n_files = n_files;
    in->file_first = c->first;
}

static int64_t rank_cap(const djct_plan_input *in)
{
    int64_t cap = in->batch_elements;
    if (in->squared_limit) {
        int64_t r = 0;
        while ((r + 1) <= cap / (r + 1))
            r++;
        cap = r;
    }
    return cap;
}

static int64_t bin_size(const djct_dataset_plan *p, int64_t bin) { return p->bin_start[bin + 1] - p->bin_start[bin]; }

/* ---- the properties; each returns 1 when the plan has it ---- */

/* one bin per rank and step: offsets start at 0, never decrease, end at the planned count */
static int bins_are_well_formed(const djct_dataset_plan *p, int ranks)
{
    if (p->bin_start[0] != 0 || p->bin_start[p->steps * ranks] != p->n_planned || p->stats.steps != p->steps)
        return 0;
    for (int64_t b = 0; b < p->steps * ranks; b++)
        if (bin_size(p, b) < 0)
            return 0;
    return 1;
}

/* no event twice; planned plus dropped is every event */
static int every_event_once(const djct_dataset_plan *p, const djct_plan_input *in)
{
    unsigned char *seen = calloc((size_t)in->n_events + 1, 1);
    int ok = seen != NULL;
    for (int64_t i = 0; ok && i < p->n_planned; i++) {
        int64_t e = p->events[i];
        ok = e >= 0 && e < in->n_events && !seen[e];
        if (ok)
            seen[e] = 1;
    }
    free(seen);
    return ok && p->n_planned + p->stats.dropped_events == in->n_events && p->stats.events == p->n_planned;
}

/* a bin's events ascend (one gather per file), and bin_elements is their sum */
static int bins_ascend_and_add_up(const djct_dataset_plan *p, const djct_plan_input *in)
{
    int64_t total = 0;
    for (int64_t b = 0; b < p->steps * in->world_size; b++) {
        int64_t sum = 0;
        for (int64_t i = p->bin_start[b]; i < p->bin_start[b + 1]; i++) {
            if (i > p->bin_start[b] && p->events[i] <= p->events[i - 1])
                return 0;
            sum += in->event_elements[p->events[i]];
        }
        if (sum != p->bin_elements[b])
            return 0;
        total += sum;
    }
    return total == p->stats.elements;
}

/* Element mode: a bin holds at most the cap unless it is one oversized event alone; the bins
 * that are not such (the dealt ones) differ by at most the largest event in them (the bound of
 * dealing largest first to the least-loaded bin); no step is empty of elements. */
static int elements_are_balanced(const djct_dataset_plan *p, const djct_plan_input *in)
{
    int ranks = in->world_size;
    int64_t cap = rank_cap(in);
    for (int64_t s = 0; s < p->steps; s++) {
        int64_t low = INT64_MAX, high = 0, largest = 0, step_total = 0;
        for (int r = 0; r < ranks; r++) {
            int64_t b = s * ranks + r, el = p->bin_elements[b];
            step_total += el;
            if (bin_size(p, b) == 1 && in->event_elements[p->events[p->bin_start[b]]] > cap)
                continue; /* served alone */
            if (el > cap)
                return 0;
            for (int64_t i = p->bin_start[b]; i < p->bin_start[b + 1]; i++)
                largest = in->event_elements[p->events[i]] > largest ? in->event_elements[p->events[i]] : largest;
            low = el < low ? el : low;
            high = el > high ? el : high;
        }
        if (step_total == 0 || (low != INT64_MAX && high - low > largest))
            return 0;
    }
    return 1;
}

/* Count mode: a step deals world_size * batch events, the first ranks one more when it does not
 * divide; only the last step may be smaller, and not at all with drop_last. */
static int counts_are_balanced(const djct_dataset_plan *p, const djct_plan_input *in)
{
    int ranks = in->world_size;
    int64_t batch = in->batch_events > 0 ? in->batch_events : in->batch_elements;
    for (int64_t s = 0; s < p->steps; s++) {
        int64_t step_events = p->bin_start[(s + 1) * ranks] - p->bin_start[s * ranks];
        if (step_events != ranks * batch && (s + 1 < p->steps || in->drop_last))
            return 0;
        for (int r = 0; r < ranks; r++)
            if (bin_size(p, s * ranks + r) != step_events / ranks + (r < step_events % ranks))
                return 0;
    }
    return 1;
}

static int same_plan(const djct_dataset_plan *a, const djct_dataset_plan *b, int ranks)
{
    return a->steps == b->steps && a->n_planned == b->n_planned && a->stats.hash == b->stats.hash &&
           !memcmp(a->bin_start, b->bin_start, (size_t)(a->steps * ranks + 1) * sizeof(int64_t)) &&
           !memcmp(a->events, b->events, (size_t)a->n_planned * sizeof(int64_t));
}

#define FIRST_FAILURE(ok, failed_at, index)                                                        \
    do {                                                                                       \
        if (!(ok) && (failed_at) < 0)                                                          \
            (failed_at) = (index);                                                             \
    } while (0)

static void report(const char *what, int failed_at)
{
    if (failed_at >= 0)
        fprintf(stderr, "  -> %s: first failing random case %d\n", what, failed_at);
}

static void test_properties_on_random_inputs(void)
{
    enum { CASES = 3000 };
    int made = -1, formed = -1, once = -1, ascend = -1, balance = -1, counts = -1, determinism = -1;
    for (int k = 0; k < CASES; k++) {
        plan_case c;
        random_case(&c, k);
        int64_t epoch = random_below(4);
        djct_dataset_plan p = {0}, again = {0};
        int ok = c.elements && djct_dataset_plan_make(&p, &c.in, epoch) == 0 &&
                 djct_dataset_plan_make(&again, &c.in, epoch) == 0;
        FIRST_FAILURE(ok, made, k);
        if (ok) {
            FIRST_FAILURE(bins_are_well_formed(&p, c.in.world_size), formed, k);
            FIRST_FAILURE(every_event_once(&p, &c.in), once, k);
            FIRST_FAILURE(bins_ascend_and_add_up(&p, &c.in), ascend, k);
            if (c.in.by_elements)
                FIRST_FAILURE(elements_are_balanced(&p, &c.in), balance, k);
            else
                FIRST_FAILURE(counts_are_balanced(&p, &c.in), counts, k);
            FIRST_FAILURE(same_plan(&p, &again, c.in.world_size), determinism, k);
        }
        djct_dataset_plan_clear(&p);
        djct_dataset_plan_clear(&again);
        free(c.elements);
    }
    CHECK(made < 0);
    report("planning failed", made);
    CHECK(formed < 0);
    report("bins not one per rank and step", formed);
    CHECK(once < 0);
    report("an event planned twice, or lost without being counted as dropped", once);
    CHECK(ascend < 0);
    report("a bin's events not ascending, or its elements not their sum", ascend);
    CHECK(balance < 0);
    report("element bins over the cap or unbalanced", balance);
    CHECK(counts < 0);
    report("count bins not dealt evenly", counts);
    CHECK(determinism < 0);
    report("the same input gave another plan", determinism);
}

/* ---- shuffling: the seed and the epoch choose the order, nothing else ---- */

/* two files; elements 1..13 (element mode: cap 40) or 1 each (count mode: 4 events per bin) */
static void fixed_case(plan_case *c, int64_t n_events, int ranks, int by_elements)
{
    memset(c, 0, sizeof(*c));
    c->elements = malloc((size_t)(n_events + 1) * sizeof(int64_t));
    for (int64_t e = 0; e < n_events; e++)
        c->elements[e] = by_elements ? 1 + (e * 7) % 13 : 1;
    c->first[1] = n_events / 2;
    c->first[2] = n_events;
    djct_plan_input *in = &c->in;
    in->world_size = ranks;
    in->shuffle = DJCT_SHUFFLE_GLOBAL;
    in->seed = 42;
    in->by_elements = by_elements;
    in->batch_events = 4;
    in->batch_elements = by_elements ? 40 : 0;
    in->n_events = n_events;
    in->event_elements = c->elements;
    in->n_files = 2;
    in->file_first = c->first;
}

static uint64_t plan_hash(const djct_plan_input *in, int64_t epoch)
{
    djct_dataset_plan p = {0};
    uint64_t h = djct_dataset_plan_make(&p, in, epoch) == 0 ? p.stats.hash : 0;
    djct_dataset_plan_clear(&p);
    return h;
}

static void test_seed_and_epoch(void)
{
    for (int mode = 0; mode < 2; mode++) {
        plan_case c;
        fixed_case(&c, 200, 3, mode);
        uint64_t base = plan_hash(&c.in, 0);
        CHECK(base != 0 && plan_hash(&c.in, 0) == base); /* reproducible */
        CHECK(plan_hash(&c.in, 1) != base);               /* another epoch, another order */
        c.in.seed = 43;
        CHECK(plan_hash(&c.in, 0) != base);               /* another seed, another order */
        c.in.shuffle = DJCT_SHUFFLE_FILES;
        CHECK(plan_hash(&c.in, 0) != plan_hash(&c.in, 1));
        c.in.shuffle = DJCT_SHUFFLE_NONE;                 /* file order: the epoch does not matter */
        CHECK(plan_hash(&c.in, 0) == plan_hash(&c.in, 5));
        free(c.elements);
    }
    /* FILES keeps each file's events together: with one rank and steps of 5 events over files of
     * 10, no step reads more than two files */
    plan_case c;
    fixed_case(&c, 0, 1, 0);
    free(c.elements);
    c.elements = malloc(40 * sizeof(int64_t));
    for (int e = 0; e < 40; e++)
        c.elements[e] = 1;
    c.in.event_elements = c.elements;
    c.in.n_events = 40;
    c.in.n_files = 4;
    for (int f = 0; f <= 4; f++)
        c.first[f] = 10 * f;
    c.in.shuffle = DJCT_SHUFFLE_FILES;
    c.in.batch_events = 5;
    djct_dataset_plan p = {0};
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 3));
    int few_files = p.steps == 8;
    for (int64_t s = 0; few_files && s < p.steps; s++) {
        int files = 0; /* a bin ascends, so its files are runs */
        for (int64_t i = p.bin_start[s]; i < p.bin_start[s + 1]; i++)
            files += i == p.bin_start[s] || p.events[i] / 10 != p.events[i - 1] / 10;
        few_files = files <= 2;
    }
    CHECK(few_files);
    djct_dataset_plan_clear(&p);
    free(c.elements);
}

/* ---- edge cases ---- */

static void test_edges(void)
{
    djct_dataset_plan p = {0};
    /* no events: no step, and the plan is still well formed */
    plan_case c;
    fixed_case(&c, 0, 4, 1);
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(p.steps == 0 && p.n_planned == 0 && p.bin_start[0] == 0 && p.stats.straggler_ratio == 1.0);
    free(c.elements);

    /* fewer events than ranks: one step, every rank has a bin, the last one empty */
    fixed_case(&c, 3, 4, 0);
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(p.steps == 1 && bin_size(&p, 0) == 1 && bin_size(&p, 1) == 1 && bin_size(&p, 2) == 1 && bin_size(&p, 3) == 0);
    c.in.by_elements = 1;
    c.in.batch_elements = 40;
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(p.steps == 1 && p.n_planned == 3 && bins_are_well_formed(&p, 4) && bin_size(&p, 3) == 0);
    free(c.elements);

    /* one event far over the cap among small ones: served alone in a bin of its own ... */
    fixed_case(&c, 9, 2, 1);
    c.elements[4] = 1000;
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    int alone = 0;
    for (int64_t b = 0; b < p.steps * 2; b++)
        alone += bin_size(&p, b) == 1 && p.events[p.bin_start[b]] == 4;
    CHECK(alone == 1 && p.n_planned == 9 && elements_are_balanced(&p, &c.in));
    /* ... or, strict, dropped and counted */
    c.in.strict = 1;
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(p.n_planned == 8 && p.stats.dropped_events == 1 && p.stats.dropped_elements == 1000);
    free(c.elements);

    /* only oversized events, more than ranks: each served alone, every event once */
    fixed_case(&c, 5, 2, 1);
    for (int e = 0; e < 5; e++)
        c.elements[e] = 100 + e;
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(p.steps == 3 && every_event_once(&p, &c.in) && bin_size(&p, 5) == 0);

    /* a step whose events have no elements is dropped, its events counted */
    for (int e = 0; e < 5; e++)
        c.elements[e] = 0;
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(p.steps == 0 && p.stats.dropped_events == 5);
    free(c.elements);

    /* count mode, drop_last: the partial last step goes, counted */
    fixed_case(&c, 10, 2, 0);
    c.in.drop_last = 1; /* steps of 2 * 4: one full step, 2 events dropped */
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(p.steps == 1 && p.n_planned == 8 && p.stats.dropped_events == 2);
    free(c.elements);

    /* squared limit: the cap is the square root (40 -> 6 elements per bin) */
    fixed_case(&c, 30, 2, 1);
    c.in.squared_limit = 1;
    CHECK_OK(djct_dataset_plan_make(&p, &c.in, 0));
    CHECK(rank_cap(&c.in) == 6 && elements_are_balanced(&p, &c.in) && every_event_once(&p, &c.in));
    free(c.elements);
    djct_dataset_plan_clear(&p);
}

int main(void)
{
    test_properties_on_random_inputs();
    test_seed_and_epoch();
    test_edges();
    return harness_report();
}
