/* The logging flush's cross-rank reduction. The steady state is one MPI_Reduce of a packed
 * vector against the key layout every rank agreed on; rank 0 alone learns whether every rank's
 * keys fit it and tells the others at the next collective logging call, when, if they did not,
 * every rank takes the key-gathering path together (the union of keys becomes the new layout).
 * Every branch is decided from collective results, so ranks never take different paths. */
#include "djct/error.h"
#include "djct_int.h"
#include "log_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the packed reduction ---- */
/* The packed vector is one MPI element of a contiguous type, so MPI never splits it and the op
 * always sees the header:
 *   fast path:  [mismatch, layout hash, some rank logged nothing, some rank logged | a value per
 *                layout key | a count per key with a count slot]
 *   gathering:  [0, 0, 0, 0 | a value per union key | its count | 1 per key logged on this rank]
 * lg_combine() reduces each value with its key's op (mean and sum add, min, max), adds everything
 * after the values, ORs the flags and raises the mismatch flag when two layout hashes differ. It is
 * commutative and associative (NaN wins a min or max whatever the order), as MPI_Op_create(.., 1)
 * promises, so any reduction tree gives every rank the same flags and counts. */

static const unsigned char *red_ops; /* the op of each value slot (under g.mu) */
static int red_nv;                   /* value slots; the rest after them is summed */

void lg_combine(void *in_, void *inout_, int *len, MPI_Datatype *dt)
{
    const double *in = in_;
    double *io = inout_;
    int per = g.dtype_len;
    for (int el = 0; el < *len; el++, in += per, io += per) {
        if (in[0] != 0 || in[1] != io[1])
            io[0] = 1;
        io[2] = in[2] > io[2] ? in[2] : io[2];
        io[3] = in[3] > io[3] ? in[3] : io[3];
        const double *a = in + HDR;
        double *b = io + HDR;
        for (int k = 0; k < red_nv; k++) {
            switch (red_ops[k]) {
            case DJCT_REDUCE_MIN: b[k] = lg_min_nan(a[k], b[k]); break;
            case DJCT_REDUCE_MAX: b[k] = lg_max_nan(a[k], b[k]); break;
            default: b[k] += a[k];
            }
        }
        for (int k = red_nv; k < per - HDR; k++)
            b[k] += a[k];
    }
}

static int set_dtype(int len)
{
    if (g.dtype_len == len)
        return 0;
    if (g.dtype_len)
        MPI_Type_free(&g.dtype);
    g.dtype_len = 0;
    if (MPI_Type_contiguous(len, MPI_DOUBLE, &g.dtype) != MPI_SUCCESS || MPI_Type_commit(&g.dtype) != MPI_SUCCESS)
        return djct_error_set(DJCT_EMPI, "logging flush: cannot create an MPI datatype of %d doubles", len);
    g.dtype_len = len;
    return 0;
}

/* every rank gets the combined vector (one process: it already is) */
static int reduce_vec(double *vec, int len, int nv, const unsigned char *ops)
{
    if (!lg_multi())
        return 0;
    int rc = set_dtype(len);
    if (rc < 0)
        return rc;
    red_ops = ops;
    red_nv = nv;
    if ((rc = djct_comm_mpi_allreduce(g.comm, vec, 1, g.dtype, g.op, "the logging flush's key-gathering reduction")) < 0)
        return djct_error_prefix("logging flush: reduction of the packed metrics (%d doubles)", len);
    return 0;
}

static double local_value(const entry *e, int op)
{
    return op == DJCT_REDUCE_MIN ? e->min : op == DJCT_REDUCE_MAX ? e->max : e->sum;
}

static double identity(int op) { return op == DJCT_REDUCE_MIN ? INFINITY : op == DJCT_REDUCE_MAX ? -INFINITY : 0.0; }

/* ---- the agreed key layout ---- */

void lg_layout_free(layout *L)
{
    lg_layout_release(L->arena);
    lg_layout_release(L->name);
    lg_layout_release(L->op);
    lg_layout_release(L->cidx);
    free(L->ident);
    free(L->vec);
    free(L->rname);
    free(L->rvalue);
    memset(L, 0, sizeof(*L));
}

/* room for n keys whose names take `bytes` with their NULs */
static int layout_alloc(layout *L, int n, size_t bytes)
{
    size_t m = (size_t)n + 1;
    memset(L, 0, sizeof(*L));
    L->arena = malloc(bytes + 1);
    L->name = malloc(sizeof(char *) * m);
    L->op = malloc(m);
    L->cidx = malloc(sizeof(int) * m);
    L->ident = malloc(sizeof(double) * 2 * m);
    L->vec = malloc(sizeof(double) * (HDR + 3 * m));
    L->rname = malloc(sizeof(char *) * m);
    L->rvalue = malloc(sizeof(double) * m);
    if (!L->arena || !L->name || !L->op || !L->cidx || !L->ident || !L->vec || !L->rname || !L->rvalue) {
        lg_layout_free(L);
        return djct_error_oom();
    }
    return 0;
}

int lg_layout_find(const layout *L, const char *name)
{
    int lo = 0, hi = L->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(L->name[mid], name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* the entries' slots follow a new layout (binary search: only when the layout changes) */
static void layout_map_entries(void)
{
    for (int i = 0; i < g.n; i++)
        g.e[i].slot = lg_layout_find(&g.lay, g.e[i].name);
}

/* Fast path: my values are already in the vector (slot_add). I raise the mismatch flag when my
 * keys did not fit the layout: a key outside it, another op, a mean without a count slot logged
 * more than once, or (when I logged anything) a key without a count slot that I did not log. A rank
 * that logged nothing says so instead: whether that breaks the layout depends on whether anybody
 * logged (see lg_flush_now). */
static double *layout_vec(void) { return g.lay.vec ? g.lay.vec : g.hdr_only; }

static void layout_header(void)
{
    layout *L = &g.lay;
    double *vec = layout_vec();
    vec[0] = g.misfit || (g.live > 0 && g.uncounted != L->n - L->ncnt);
    vec[1] = L->hash;
    vec[2] = g.live == 0;
    vec[3] = g.live > 0;
}

/* after every flush: the vector back to the identities, nothing logged */
void lg_layout_clear(void)
{
    layout *L = &g.lay;
    if (L->n)
        memcpy(L->vec + HDR, L->ident, sizeof(double) * (size_t)(L->n + L->ncnt));
    g.misfit = 0;
    g.uncounted = 0;
}

typedef struct {
    const char *name;
    int op, pos;
} cand;

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The gathering path: every rank learns every rank's (op, name) list, the union becomes the new
 * layout (the lowest rank's op wins a name logged with different ops) and one packed reduction
 * over it gives the result: a key is reduced over the ranks that logged it. Every allocation is
 * sized from collective results and checked collectively before the next collective, so a rank
 * out of memory makes every rank drop this row alike instead of leaving the others waiting. */
static int reduce_gather(const held_rec *hv, int nh, reduced *out)
{
    layout nl = {0};
    char *mine = NULL, *all = NULL;
    cand *c = NULL;
    int rc = 0, mylen = -1;
    size_t bytes = 0;
    for (int i = 0; i < nh; i++)
        bytes += strlen(hv[i].name) + 2;
    if (bytes <= INT32_MAX && (mine = malloc(bytes + 1)) != NULL) {
        char *p = mine;
        for (int i = 0; i < nh; i++) {
            *p++ = (char)('0' + hv[i].op);
            size_t l = strlen(hv[i].name) + 1;
            memcpy(p, hv[i].name, l);
            p += l;
        }
        mylen = (int)bytes;
    }
    if (!lg_multi())
        g.lens[0] = mylen;
    else if ((rc = djct_comm_mpi_allgather(g.comm, &mylen, g.lens, 1, MPI_INT, "the logging flush's key-list sizes")) < 0) {
        djct_error_prefix("logging flush: gathering the key-list sizes");
        goto done;
    }
    int64_t total = 0;
    for (int r = 0; r < g.size; r++) {
        if (g.lens[r] < 0) {
            rc = djct_error_set(DJCT_ENOMEM, "logging flush: rank %d could not pack its %s key names (out of "
                                "memory or over 2 GiB); this row is dropped on every rank", r,
                                r == g.rank ? "" : "(not this rank's)");
            goto drop;
        }
        g.displs[r] = (int)(total < INT32_MAX ? total : 0);
        total += g.lens[r];
    }
    if (total > INT32_MAX) {
        rc = djct_error_set(DJCT_EINVAL, "logging flush: the key names of all ranks take %" PRId64 " bytes, more "
                            "than MPI can gather (2 GiB); log fewer or shorter names (this row is dropped)", total);
        goto drop;
    }
    int maxkeys = (int)(total / 3); /* each name takes an op digit, a character and a NUL at least */
    int ok = (all = malloc((size_t)total + 1)) != NULL && (c = malloc(sizeof(cand) * ((size_t)maxkeys + 1))) != NULL &&
             layout_alloc(&nl, maxkeys, (size_t)total) == 0;
    int all_ok = ok;
    if (lg_multi() &&
        (rc = djct_comm_mpi_allreduce(g.comm, &all_ok, 1, MPI_INT, MPI_MIN, "the logging flush's allocation check")) < 0) {
        djct_error_prefix("logging flush: agreeing on the allocation check");
        goto done;
    }
    if (!all_ok) {
        rc = djct_error_set(DJCT_ENOMEM, "logging flush: %s ran out of memory for the key lists of all ranks "
                            "(%" PRId64 " bytes); this row is dropped on every rank", ok ? "another rank" : "this rank",
                            total);
        goto drop;
    }
    if (!lg_multi())
        memcpy(all, mine, (size_t)total);
    else if ((rc = djct_comm_mpi_allgatherv(g.comm, mine, mylen, all, g.lens, g.displs, MPI_CHAR,
                                            "the logging flush's key names")) < 0) {
        djct_error_prefix("logging flush: gathering the key names");
        goto done;
    }
    /* the union, sorted by name; among equal names the first (lowest rank) comes first */
    int nc = 0;
    for (int64_t off = 0; off < total; nc++) {
        c[nc] = (cand){all + off + 1, all[off] - '0', nc};
        off += (int64_t)strlen(all + off + 1) + 2;
    }
    if (nc > 1)
        qsort(c, (size_t)nc, sizeof(cand), cmp_cand);
    char *a = nl.arena;
    for (int i = 0; i < nc; i++) {
        if (i > 0 && strcmp(c[i].name, c[i - 1].name) == 0)
            continue;
        size_t l = strlen(c[i].name) + 1;
        memcpy(a, c[i].name, l);
        nl.name[nl.n] = a;
        nl.op[nl.n++] = (unsigned char)c[i].op;
        a += l;
    }
    lg_layout_free(&g.lay);
    g.lay = nl;
    nl = (layout){0};
    layout_map_entries();
    /* one reduction over the union: values, counts, and how many ranks logged each key */
    layout *L = &g.lay;
    double *v = L->vec + HDR, *cnt = v + L->n, *logged = cnt + L->n;
    for (int k = 0; k < L->n; k++) {
        v[k] = identity(L->op[k]);
        cnt[k] = logged[k] = 0;
    }
    for (int i = 0; i < nh; i++) {
        int k = lg_layout_find(L, hv[i].name); /* every held name is in the union */
        if (k < 0)
            continue;
        int op = L->op[k];
        v[k] = op == DJCT_REDUCE_MIN ? hv[i].min : op == DJCT_REDUCE_MAX ? hv[i].max : hv[i].sum;
        cnt[k] = hv[i].cnt;
        logged[k] = 1;
    }
    L->vec[0] = L->vec[1] = L->vec[2] = L->vec[3] = 0;
    if ((rc = reduce_vec(L->vec, HDR + 3 * L->n, L->n, L->op)) < 0)
        goto done;
    /* every union key was logged somewhere (cnt > 0): the result is the layout in order, which is
     * also the names the fast path's unpack expects. The next flush's layout has a count slot
     * where this flush needed one, and starts its vector from the identities. */
    uint64_t h = DJCT_FNV1A_OFFSET;
    L->ncnt = 0;
    for (int k = 0; k < L->n; k++) {
        L->rname[k] = L->name[k];
        L->rvalue[k] = lg_finish_value(L->op[k], v[k], cnt[k]);
        int every_once = logged[k] == g.size && (L->op[k] != DJCT_REDUCE_MEAN || cnt[k] == g.size);
        L->cidx[k] = every_once ? -1 : L->ncnt++;
        h = djct_fnv1a_u64(djct_fnv1a_str(h, L->name[k]), (uint64_t)(L->op[k] + 1) | (every_once ? 0 : 16));
    }
    L->hash = (double)(h & ((1ULL << 52) - 1));
    for (int k = 0; k < L->n; k++) {
        L->ident[k] = identity(L->op[k]);
        if (L->cidx[k] >= 0)
            L->ident[L->n + L->cidx[k]] = 0;
    }
    out->n = L->n;
    out->name = L->rname;
    out->value = L->rvalue;
    goto done;
drop: /* agreed by all ranks: start again from an empty layout */
    lg_layout_free(&g.lay);
    layout_map_entries();
done:
    lg_layout_free(&nl);
    free(mine);
    free(all);
    free(c);
    return rc;
}

/* The values logged since the last flush, written into the layout's vector afresh: after the
 * gathering path changed the layout, the values slot_add() packed into the old one are void. */
static void layout_repack(void)
{
    layout *L = &g.lay;
    lg_layout_clear();
    double *v = L->vec ? L->vec + HDR : NULL;
    for (int i = 0; i < g.n; i++) {
        const entry *e = &g.e[i];
        if (e->cnt == 0)
            continue;
        int s = e->slot;
        if (s < 0 || e->op != L->op[s]) {
            g.misfit = 1;
            continue;
        }
        v[s] = local_value(e, e->op);
        if (L->cidx[s] >= 0) {
            v[L->n + L->cidx[s]] = e->cnt;
        } else {
            g.uncounted++;
            if (e->op == DJCT_REDUCE_MEAN && e->cnt > 1)
                g.misfit = 1;
        }
    }
}



/* the held flush through the gathering path (collective); rank 0 writes its row */
static int gather_held(void)
{
    reduced red = {0};
    int rc = reduce_gather(g.held, g.nheld, &red);
    if (rc == 0 && g.rank == 0 && red.n > 0) /* every union key, in layout order, final values */
        lg_row_emit(red.n, 0, g.lay.name, NULL, NULL, red.value, g.held_prefix ? g.held_prefix : "", g.held_step);
    free(g.held_prefix);
    g.held_prefix = NULL;
    g.nheld = 0;
    layout_repack();
    return rc;
}

/* Rank 0 tells every rank its verdict on this flush: {gathering path needed, last step}. Up to
 * OUTCOME_P2P_MAX ranks it is a send per rank, beyond one non-blocking broadcast; either way
 * nobody waits for it before the next collective logging call (lg_settle()). */
#define OUTCOME_P2P_MAX 16

static int post_outcome(void)
{
    int rc = djct_comm_mpi_ibcast(g.oreq, g.omsg, 2, MPI_INT64_T, 0, g.verdict_bcast ? 0 : OUTCOME_P2P_MAX,
                                  "the logging flush's verdict");
    g.opending = 1; /* a failed post leaves what it posted to the wait */
    return rc < 0 ? djct_error_prefix("logging flush: posting rank 0's verdict") : 0;
}

/* Complete the last flush: learn rank 0's verdict and, when its keys did not fit the layout, run
 * the gathering path over the held values (every rank, together). Called first by every
 * collective logging call, so all ranks take the same path. */
int lg_settle(void)
{
    if (!g.opending)
        return 0;
    g.opending = 0;
    if (djct_comm_wait(g.oreq) < 0)
        return djct_error_prefix("logging flush: receiving rank 0's verdict on the last flush");
    if (g.rank != 0) {
        g.last_step = g.omsg[1];
        g.stats.fast_flushes += g.omsg[0] == 0;
    }
    return g.omsg[0] ? gather_held() : 0;
}

/* One flush: one MPI_Reduce of the packed vector to rank 0, which alone can tell whether every
 * rank's keys fit the agreed layout. If they did (the steady state), rank 0 unpacks and queues the
 * row; nothing here sorts, hashes, compares names or allocates. If not, rank 0 keeps the row's
 * step and the next collective call (settle) reduces the held values over the union of keys. */
int lg_flush_now(const char *prefix, int64_t step)
{
    layout *L = &g.lay;
    double *vec = layout_vec();
    layout_header();
    g.stats.flushes++;
    double t0 = djct_now_s();
    if (lg_multi()) {
        int len = HDR + L->n + L->ncnt, rc = set_dtype(len);
        if (rc < 0)
            return rc;
        red_ops = L->op;
        red_nv = L->n;
        if ((rc = djct_comm_mpi_reduce(g.comm, vec, 1, g.dtype, g.op, 0, "the logging flush")) < 0)
            return djct_error_prefix("logging flush: reduction of the packed metrics (%d doubles)", len);
    }
    int gather = 0, rc = 0;
    int64_t next = step < 0 ? g.last_step + 1 : step; /* the step of this flush's row, if it has one */
    if (g.rank == 0) {
        /* the layout holds: no rank's keys broke it, and if a rank logged nothing while others
         * logged, every key has a count slot. Nobody logged at all: no row, and the layout stays. */
        if (vec[0] == 0 && (vec[3] == 0 || vec[2] == 0 || L->ncnt == L->n)) {
            g.stats.fast_flushes++;
            if (vec[3] != 0) { /* somebody logged, so some key has a count: the writer unpacks */
                g.last_step = next;
                lg_row_emit(L->n, L->ncnt, L->name, L->op, L->cidx, vec + HDR, prefix ? prefix : "", g.last_step);
            }
        } else {
            gather = 1;
            g.held_step = g.last_step = next;
            free(g.held_prefix);
            g.held_prefix = strdup(prefix ? prefix : ""); /* out of memory: the row loses its prefix */
        }
        g.omsg[0] = gather;
        g.omsg[1] = g.last_step;
    }
    if (lg_multi()) {
        rc = post_outcome();
    } else if (gather) {
        lg_held_take(0);
        rc = gather_held();
    }
    g.stats.reduce_seconds += djct_now_s() - t0;
    return rc;
}
