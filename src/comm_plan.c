/* comm's bucket plans: a list of (pointer, count, dtype, device) buffers cut into buckets from
 * counts and dtypes alone, so every rank builds the same plan and issues the same collectives in
 * the same order; zero-copy buckets reduce in place, others through a persistent pack buffer.
 * A step reduces every buffer in place, blocking (plan_reduce) or overlapped with the backward
 * pass (start, mark_ready, finish), weighted by each rank's weight. */
#include "comm_int.h"
#include "djct_int.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_BUCKET_BYTES ((size_t)1 << 30)

typedef struct {
    size_t buf, off, count; /* elements of buffer `buf` starting at `off` */
} seg_t;

typedef struct {
    djct_dtype   rt;        /* reduction dtype (float32 for halves on the host) */
    int          device;
    size_t       seg0, nseg;
    size_t       count;     /* elements */
    int          zero_copy; /* reduce in place at data */
    void        *data;      /* the span (zero copy) or the pack buffer */
    size_t       pending;   /* buffers not yet ready in this step */
    int          state;     /* 0 idle, 1 in flight, 2 done */
    int          divided;   /* this step's division already happened inside the reduction */
    int          identity;  /* one rank, nonzero weight: the result is the input, nothing moved */
    int          plain;     /* weighted, but every rank's weight is the same: summed unscaled, / size */
    MPI_Request  req;
    uint64_t     seq;       /* the collective number of its reduction */
    void        *event;     /* device buckets: CUDA event after the reduction */
} bucket_t;

struct djct_comm_plan {
    djct_comm        *c;
    djct_comm_buffer *bufs;
    size_t            n;
    size_t           *b_first, *b_end; /* buckets touched by each buffer */
    unsigned char    *ready;
    seg_t            *segs;
    size_t            nsegs;
    bucket_t         *b;
    size_t            nb, nzc;
    void             *slab;  /* host pack buffers */
    size_t            slab_bytes;
    void             *dslab; /* device pack buffers */
    int               active;
    int               op;
    double            weight, wsum;
    double            wbuf[3];   /* {sum, max, min} of the weights, in flight (posted at start) */
    int               wequal;    /* every rank passed the same weight (known once wpending is 0) */
    MPI_Request       wreq;
    uint64_t          wseq;      /* its collective number */
    int               wpending;
    int               wdefer;    /* one host bucket, reduced only at finish: post the weights there */
    int               wposted;   /* this step's weight collective is posted (or not needed) */
    size_t            next_launch, ndone;
    char              what_bucket[128], what_weight[128]; /* the watchdog's names (djct_comm_plan_set_label) */
};

static djct_dtype reduce_dtype(const djct_comm_buffer *b)
{
    if (b->device < 0 && (b->dtype == DJCT_DTYPE_FLOAT16 || b->dtype == DJCT_DTYPE_BFLOAT16))
        return DJCT_DTYPE_FLOAT32;
    return b->dtype;
}

static char *elem_ptr(const djct_comm_buffer *b, size_t off) { return (char *)b->ptr + off * djct_dtype_size(b->dtype); }

void djct_comm_plan_free(djct_comm_plan *p)
{
    if (!p)
        return;
    if (p->b)
        for (size_t i = 0; i < p->nb; i++)
            djct_nccl_event_free(p->b[i].event);
    if (p->slab)
        munmap(p->slab, p->slab_bytes);
    djct_dev_free(p->dslab);
    free(p->bufs);
    free(p->b_first);
    free(p->b_end);
    free(p->ready);
    free(p->segs);
    free(p->b);
    free(p);
}

size_t djct_comm_plan_bucket_count(const djct_comm_plan *p) { return p ? p->nb : 0; }

int djct_comm_plan_set_label(djct_comm_plan *p, const char *label)
{
    DJCT_CHECK_ARG(p);
    if (!label || !*label) {
        snprintf(p->what_bucket, sizeof(p->what_bucket), "reduce bucket");
        snprintf(p->what_weight, sizeof(p->what_weight), "weight sum");
    } else {
        snprintf(p->what_bucket, sizeof(p->what_bucket), "%s, bucket", label);
        snprintf(p->what_weight, sizeof(p->what_weight), "%s, weight sum", label);
    }
    return 0;
}
size_t djct_comm_plan_zero_copy_count(const djct_comm_plan *p) { return p ? p->nzc : 0; }

int djct_comm_plan_create(djct_comm_plan **out, djct_comm *c, const djct_comm_buffer *bufs, size_t n,
                          const djct_comm_plan_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(c);
    *out = NULL;
    DJCT_CHECK_VERSION(opts, DJCT_COMM_PLAN_OPTIONS_VERSION, "djct_comm_plan_options");
    size_t cap = opts && opts->bucket_bytes ? opts->bucket_bytes : DJCT_COMM_DEFAULT_BUCKET_BYTES;
    if (cap > MAX_BUCKET_BYTES || cap < 64)
        return djct_error_set(DJCT_EINVAL, "djct_comm_plan_options.bucket_bytes = %zu; use 64 B .. 1 GiB (0: default %zu)",
                              cap, DJCT_COMM_DEFAULT_BUCKET_BYTES);
    int rc = comm_check_buffers(c, bufs, n, 0);
    if ((rc = comm_agree(c, rc, "djct_comm_plan_create")) < 0)
        return rc;
    if ((rc = comm_enter(c, "plan layout check", SIZE_MAX)) < 0)
        return rc;
    if ((rc = comm_agree_sig(c, DJCT_EINVAL, comm_layout_sig(bufs, n), "buffer lists (counts, dtypes)", "; every rank must pass the same "
                        "buffers in the same order", NULL, NULL)) < 0)
        return rc;

    djct_comm_plan *p = calloc(1, sizeof(*p));
    if (!p)
        return djct_error_oom();
    p->c = c;
    p->n = n;
    djct_comm_plan_set_label(p, NULL);
    size_t max_segs = n;
    for (size_t i = 0; i < n; i++)
        max_segs += bufs[i].count / (cap / 8 ? cap / 8 : 1) + 1;
    p->bufs = malloc(sizeof(*bufs) * (n ? n : 1));
    p->b_first = calloc(n ? n : 1, sizeof(size_t));
    p->b_end = calloc(n ? n : 1, sizeof(size_t));
    p->ready = calloc(n ? n : 1, 1);
    p->segs = malloc(sizeof(seg_t) * max_segs);
    p->b = calloc(max_segs, sizeof(bucket_t));
    if (!p->bufs || !p->b_first || !p->b_end || !p->ready || !p->segs || !p->b) {
        djct_comm_plan_free(p);
        return djct_error_oom();
    }
    if (n)
        memcpy(p->bufs, bufs, sizeof(*bufs) * n);

    /* Greedy, from counts and dtypes only (so every rank builds the same buckets): a buffer that
     * does not fit closes the open bucket; one larger than a bucket is cut into bucket-sized pieces. */
    bucket_t *cur = NULL;
    size_t cur_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const djct_comm_buffer *bf = &bufs[i];
        djct_dtype rt = reduce_dtype(bf);
        size_t es = djct_dtype_size(rt), cap_el = cap / es;
        p->b_first[i] = p->b_end[i] = p->nb;
        if (bf->count == 0)
            continue;
        if (cur && (cur->rt != rt || cur->device != bf->device || cur_bytes + bf->count * es > cap))
            cur = NULL;
        size_t off = 0;
        while (off < bf->count) {
            if (!cur) {
                cur = &p->b[p->nb++];
                cur->rt = rt;
                cur->device = bf->device;
                cur->seg0 = p->nsegs;
                cur_bytes = 0;
            }
            if (off == 0)
                p->b_first[i] = (size_t)(cur - p->b);
            size_t room = cap_el - cur_bytes / es, take = bf->count - off < room ? bf->count - off : room;
            p->segs[p->nsegs++] = (seg_t){i, off, take};
            cur->nseg++;
            cur->count += take;
            cur_bytes += take * es;
            off += take;
            if (cur_bytes / es >= cap_el)
                cur = NULL;
        }
        p->b_end[i] = p->nb;
    }

    /* zero copy when the pieces are of the reduction dtype and follow each other in memory */
    size_t host_pack = 0, dev_pack = 0;
    for (size_t k = 0; k < p->nb; k++) {
        bucket_t *bk = &p->b[k];
        int zc = 1;
        char *expect = NULL;
        for (size_t j = 0; j < bk->nseg && zc; j++) {
            const seg_t *sg = &p->segs[bk->seg0 + j];
            const djct_comm_buffer *bf = &bufs[sg->buf];
            char *ptr = elem_ptr(bf, sg->off);
            if (bf->dtype != bk->rt || (expect && ptr != expect))
                zc = 0;
            expect = ptr + sg->count * djct_dtype_size(bf->dtype);
        }
        bk->zero_copy = zc;
        if (zc) {
            bk->data = elem_ptr(&bufs[p->segs[bk->seg0].buf], p->segs[bk->seg0].off);
            p->nzc++;
        } else {
            size_t bytes = (bk->count * djct_dtype_size(bk->rt) + 63) & ~(size_t)63;
            bk->data = (void *)(bk->device >= 0 ? dev_pack : host_pack); /* offset until allocated */
            *(bk->device >= 0 ? &dev_pack : &host_pack) += bytes;
        }
    }
    /* persistent pack buffers, touched once now, so no step pays first-touch page faults */
    if (host_pack) {
        p->slab_bytes = host_pack;
        p->slab = mmap(NULL, host_pack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p->slab == MAP_FAILED) {
            p->slab = NULL;
            rc = djct_error_set(DJCT_ENOMEM, "rank %d: cannot map %zu bytes of pack buffers", c->rank, host_pack);
        } else {
#ifdef MADV_HUGEPAGE
            if (host_pack >= ((size_t)2 << 20))
                madvise(p->slab, host_pack, MADV_HUGEPAGE);
#endif
            memset(p->slab, 0, host_pack);
        }
    }
    if (rc == 0 && dev_pack)
        rc = djct_dev_malloc(&p->dslab, dev_pack);
    for (size_t k = 0; rc == 0 && k < p->nb; k++)
        if (!p->b[k].zero_copy)
            p->b[k].data = (char *)(p->b[k].device >= 0 ? p->dslab : p->slab) + (size_t)p->b[k].data;
    if ((rc = comm_agree(c, rc, "pack buffer allocation")) < 0) {
        djct_comm_plan_free(p);
        return rc;
    }
    p->wdefer = p->nb == 1 && p->b[0].device < 0; /* the same on every rank, as the buckets */
    *out = p;
    return 0;
}

/* ---- one step ---- */

static int weight_post(djct_comm_plan *p);

static int start_step(djct_comm_plan *p, djct_comm_op op, double weight)
{
    djct_comm *c = p->c;
    if (p->active)
        return djct_error_set(DJCT_EINVAL, "rank %d: a plan step is already running; call djct_comm_plan_finish first", c->rank);
    if (op != DJCT_COMM_SUM && op != DJCT_COMM_AVERAGE && op != DJCT_COMM_WEIGHTED)
        return djct_error_set(DJCT_EINVAL, "rank %d: op %d is not a djct_comm_op", c->rank, (int)op);
    if (op == DJCT_COMM_WEIGHTED && !(weight >= 0 && isfinite(weight)))
        return djct_error_set(DJCT_EINVAL, "rank %d: weight %g; use a finite weight >= 0 (e.g. this rank's events)", c->rank, weight);
    int rc;
    p->op = op;
    p->weight = op == DJCT_COMM_WEIGHTED ? weight : 1.0;
    p->wsum = op == DJCT_COMM_AVERAGE ? (double)c->size : 1.0;
    p->wequal = 0;
    /* one small collective ({sum, max, min} of the weights), not waited for here: the sum is
     * needed only to divide, and equality only to skip the multiply (host: when a bucket lands;
     * NCCL: to pre-multiply at launch), so the ranks do not synchronise between forward and
     * backward. Weights are >= 0, so a rank's own weight already says whether it contributes.
     * A plan of one host bucket posts it when that bucket is reduced instead (weight_sum):
     * nothing needs it earlier, and its completion then proves every rank arrived. */
    p->wposted = op != DJCT_COMM_WEIGHTED;
    if (op == DJCT_COMM_WEIGHTED && !p->wdefer && (rc = weight_post(p)) < 0)
        return rc;
    for (size_t k = 0; k < p->nb; k++) {
        p->b[k].pending = 0;
        p->b[k].state = 0;
    }
    for (size_t i = 0; i < p->n; i++) {
        p->ready[i] = 0;
        for (size_t k = p->b_first[i]; k < p->b_end[i]; k++)
            p->b[k].pending++;
    }
    p->next_launch = p->ndone = 0;
    p->active = 1;
    return 0;
}

/* post this step's weight collective */
static int weight_post(djct_comm_plan *p)
{
    djct_comm *c = p->c;
    int rc;
    if ((rc = comm_enter(c, p->what_weight, SIZE_MAX)) < 0)
        return rc;
    p->wseq = c->seq;
    p->wbuf[0] = p->wbuf[1] = p->wbuf[2] = p->weight;
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, p->wbuf, 1, c->wstat_t, c->wstat, c->world, &p->wreq));
    p->wpending = 1;
    p->wposted = 1;
    return 0;
}

/* the weight sum of this step: wait for it (block; posting it first in a deferred plan) or only
 * look (poll: *ready 0 while in flight or not yet posted) */
static int weight_sum(djct_comm_plan *p, int block, int *ready)
{
    if (ready)
        *ready = 1;
    int late = 0, rc;
    if (!p->wposted) {
        if (!block) {
            if (ready)
                *ready = 0;
            return 0;
        }
        if ((rc = weight_post(p)) < 0)
            return rc;
        late = 1;
    }
    if (!p->wpending)
        return 0;
    if (block) {
        djct_comm *c = p->c;
        c->what = p->what_weight;
        c->what_index = SIZE_MAX;
        c->wait_seq = p->wseq;
        if ((rc = comm_wait_reqs(c, 1, &p->wreq)) < 0)
            return rc;
        if (late) /* every rank posted it at its bucket's reduction, which comes next */
            c->arrived_seq = c->seq + 1;
    } else {
        int done = 0;
        MPI_TRY(p->c, MPI_Test(&p->wreq, &done, MPI_STATUS_IGNORE));
        if (!done) {
            *ready = 0;
            return 0;
        }
    }
    p->wpending = 0;
    p->wsum = p->wbuf[0];
    p->wequal = p->wbuf[1] == p->wbuf[2];
    return 0;
}

/* what bucket k's sum is divided by: 1 for SUM, the rank count for AVERAGE and for equal weights,
 * else the weight sum (1 when every weight is 0: the buffers are zeros then) */
static double bucket_divisor(const djct_comm_plan *p, const bucket_t *bk)
{
    if (p->op == DJCT_COMM_SUM)
        return 1.0;
    if (bk->plain)
        return (double)p->c->size;
    return p->wsum > 0 ? p->wsum : 1.0;
}

static int launch(djct_comm_plan *p, size_t k, int blocking)
{
    djct_comm *c = p->c;
    bucket_t *bk = &p->b[k];
    int rc;
    /* all-zero weights: nothing to average; keep the collectives (peers issue them too) */
    double w = p->op == DJCT_COMM_WEIGHTED ? p->weight : 1.0; /* all weights 0 <=> every rank's is */
    if ((bk->device >= 0 || blocking) && (rc = weight_sum(p, 1, NULL)) < 0) /* NCCL: premultiply; blocking: divide */
        return rc;
    /* Equal nonzero weights everywhere (fixed-size batches): the weighted average is the plain
     * one, so nothing is multiplied before the sum and the sum is divided by the rank count (no
     * pass, and exact where w*g would round). Only where the weights are known by construction
     * (device and blocking buckets), so every rank decides alike; a non-blocking bucket launched
     * before the weights arrived is multiplied as before. */
    bk->plain = p->op == DJCT_COMM_WEIGHTED && (bk->device >= 0 || blocking) && p->wequal && w > 0;
    if ((rc = comm_enter(c, p->what_bucket, k)) < 0)
        return rc;
    bk->seq = c->seq;
    if (bk->device >= 0) {
        djct_nccl *nc = c->nccl;
        size_t es = djct_dtype_size(bk->rt);
        if (!bk->zero_copy)
            for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
                const seg_t *sg = &p->segs[bk->seg0 + j];
                if ((rc = djct_nccl_copy(nc, (char *)bk->data + pos * es, elem_ptr(&p->bufs[sg->buf], sg->off), sg->count * es)) < 0)
                    return rc;
                pos += sg->count;
            }
        if (w == 0.0 && (rc = djct_nccl_zero(nc, bk->data, bk->count * es)) < 0)
            return rc;
        if (bk->plain)
            rc = djct_nccl_allreduce(nc, bk->data, bk->count, bk->rt, DJCT_NCCL_AVG, 1.0);
        else if (p->op == DJCT_COMM_WEIGHTED)
            rc = djct_nccl_allreduce(nc, bk->data, bk->count, bk->rt, DJCT_NCCL_PREMUL, p->wsum > 0 ? w / p->wsum : 0.0);
        else
            rc = djct_nccl_allreduce(nc, bk->data, bk->count, bk->rt, p->op == DJCT_COMM_AVERAGE ? DJCT_NCCL_AVG : DJCT_NCCL_SUM, 1.0);
        if (rc < 0)
            return rc;
        if (!bk->zero_copy)
            for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
                const seg_t *sg = &p->segs[bk->seg0 + j];
                if ((rc = djct_nccl_copy(nc, elem_ptr(&p->bufs[sg->buf], sg->off), (char *)bk->data + pos * es, sg->count * es)) < 0)
                    return rc;
                pos += sg->count;
            }
        djct_nccl_event_free(bk->event);
        bk->event = NULL;
        if ((rc = djct_nccl_record(nc, &bk->event)) < 0)
            return rc;
        bk->state = 1;
        return 0;
    }
    /* one rank with a nonzero weight: the average of one contribution is itself (w*g/w would
     * only add a rounding), so nothing is packed, reduced or unpacked. Weight 0 takes the normal
     * path, which zeroes. */
    bk->identity = c->size == 1 && w != 0.0;
    if (bk->identity) {
        bk->req = MPI_REQUEST_NULL; /* "in flight" completes at once on every path */
        bk->state = blocking ? 2 : 1;
        return 0;
    }
    double wm = bk->plain ? 1.0 : w;
    if (bk->zero_copy)
        comm_scale_mul(bk->data, bk->count, bk->rt, wm);
    else
        for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
            const seg_t *sg = &p->segs[bk->seg0 + j];
            comm_pack_seg((char *)bk->data + pos * djct_dtype_size(bk->rt), elem_ptr(&p->bufs[sg->buf], sg->off), sg->count,
                     p->bufs[sg->buf].dtype, wm);
            pos += sg->count;
        }
    MPI_Datatype t = bk->rt == DJCT_DTYPE_FLOAT64 ? MPI_DOUBLE : MPI_FLOAT;
    bk->divided = 0;
    if (blocking) {
        double div = bucket_divisor(p, bk);
        if (div != 1.0 && c->sum_div != MPI_OP_NULL) {
            comm_sum_div_set(div);
            bk->divided = 1;
        }
        if ((rc = comm_coll_allreduce(c, bk->data, (int)bk->count, t, bk->divided ? c->sum_div : MPI_SUM)) < 0)
            return rc;
        bk->state = 2;
        return 0;
    }
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, bk->data, (int)bk->count, t, MPI_SUM, c->world, &bk->req));
    bk->state = 1;
    return 0;
}

/* the reduction of bucket k has landed: scale and unpack (host), nothing more (device) */
static void complete(djct_comm_plan *p, size_t k)
{
    bucket_t *bk = &p->b[k];
    bk->state = 2;
    p->ndone++;
    if (bk->device >= 0 || bk->identity)
        return;
    double div = bk->divided ? 1.0 : bucket_divisor(p, bk);
    if (bk->zero_copy)
        comm_scale_div(bk->data, bk->count, bk->rt, div);
    else
        for (size_t j = 0, pos = 0; j < bk->nseg; j++) {
            const seg_t *sg = &p->segs[bk->seg0 + j];
            comm_unpack_seg(elem_ptr(&p->bufs[sg->buf], sg->off), (char *)bk->data + pos * djct_dtype_size(bk->rt), sg->count,
                       p->bufs[sg->buf].dtype, div);
            pos += sg->count;
        }
}

/* test in-flight buckets, oldest first; stop at the first one still running */
static int poll_inflight(djct_comm_plan *p)
{
    for (size_t k = 0; k < p->next_launch; k++) {
        bucket_t *bk = &p->b[k];
        if (bk->state != 1)
            continue;
        int done = 0, rc;
        if (bk->device >= 0) {
            if ((rc = djct_nccl_query(bk->event, &done)) < 0)
                return rc;
        } else
            MPI_TRY(p->c, MPI_Test(&bk->req, &done, MPI_STATUS_IGNORE));
        if (!done)
            return 0;
        int known = 0;
        if ((rc = weight_sum(p, 0, &known)) < 0)
            return rc;
        if (!known)
            return 0; /* unpack once the divisor is known */
        complete(p, k);
    }
    return 0;
}

/* Launch the buckets whose buffers are all ready, in order. The last host bucket is kept for
 * djct_comm_plan_finish: its gradients are the last ones backward produces, so there is nothing
 * left to overlap with, and finish reduces it with the blocking path (tuned algorithms, the
 * division fused into the reduction) instead of a non-blocking one that only progresses when
 * polled. A plan of one bucket (an MLP of 1 MB) thus costs what the blocking reduction costs. */
static int launch_ready(djct_comm_plan *p, int final)
{
    int rc;
    while (p->next_launch < p->nb && p->b[p->next_launch].pending == 0) {
        size_t k = p->next_launch;
        int last_host = k + 1 == p->nb && p->b[k].device < 0;
        if (last_host && !final)
            break;
        if ((rc = launch(p, k, last_host)) < 0)
            return rc;
        p->next_launch++;
        if (last_host)
            complete(p, k);
    }
    return 0;
}

int djct_comm_plan_start(djct_comm_plan *p, djct_comm_op op, double weight)
{
    DJCT_CHECK_ARG(p);
    int rc = start_step(p, op, weight);
    if (rc < 0)
        return rc;
    /* buckets made only of zero-length buffers do not exist; a plan may have none at all */
    return launch_ready(p, 0);
}

int djct_comm_plan_mark_ready(djct_comm_plan *p, size_t index)
{
    DJCT_CHECK_ARG(p);
    if (!p->active)
        return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu marked ready outside a step; call djct_comm_plan_start first",
                              p->c->rank, index);
    if (index >= p->n)
        return djct_error_set(DJCT_EINVAL, "rank %d: buffer index %zu out of range (the plan has %zu buffers)", p->c->rank,
                              index, p->n);
    if (p->ready[index])
        return djct_error_set(DJCT_EINVAL, "rank %d: buffer %zu marked ready twice in one step", p->c->rank, index);
    p->ready[index] = 1;
    for (size_t k = p->b_first[index]; k < p->b_end[index]; k++)
        p->b[k].pending--;
    int rc = launch_ready(p, 0);
    return rc < 0 ? rc : poll_inflight(p);
}

int djct_comm_plan_progress(djct_comm_plan *p)
{
    DJCT_CHECK_ARG(p);
    return p->active ? poll_inflight(p) : 0;
}

int djct_comm_plan_finish(djct_comm_plan *p)
{
    DJCT_CHECK_ARG(p);
    djct_comm *c = p->c;
    if (!p->active)
        return djct_error_set(DJCT_EINVAL, "rank %d: djct_comm_plan_finish without djct_comm_plan_start", c->rank);
    int rc = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!p->ready[i]) {
            p->ready[i] = 1;
            for (size_t k = p->b_first[i]; k < p->b_end[i]; k++)
                p->b[k].pending--;
        }
    if ((rc = weight_sum(p, 1, NULL)) < 0 || (rc = launch_ready(p, 1)) < 0)
        goto out;
    /* host buckets: wait oldest first, unpacking each as it lands */
    for (size_t k = 0; k < p->nb; k++) {
        bucket_t *bk = &p->b[k];
        if (bk->state != 1 || bk->device >= 0)
            continue;
        c->what = p->what_bucket;
        c->what_index = k;
        c->wait_seq = bk->seq;
        if ((rc = comm_wait_reqs(c, 1, &bk->req)) < 0)
            goto out;
        complete(p, k);
    }
    if (c->nccl) {
        int any = 0;
        for (size_t k = 0; k < p->nb; k++)
            any |= p->b[k].device >= 0 && p->b[k].state == 1;
        if (any && (rc = djct_nccl_sync(c->nccl)) < 0)
            goto out;
        for (size_t k = 0; k < p->nb; k++)
            if (p->b[k].state == 1)
                complete(p, k);
    }
    if (p->op == DJCT_COMM_WEIGHTED && !(p->wsum > 0))
        rc = djct_error_set(DJCT_EINVAL, "rank %d: every rank passed weight 0, nothing to average; the buffers hold zeros. "
                            "Skip the optimizer step when no rank had events", c->rank);
out:
    if (p->wpending && !c->broken) /* an error path: keep the collectives matched */
        MPI_Wait(&p->wreq, MPI_STATUS_IGNORE);
    p->wpending = 0;
    p->active = 0;
    return rc;
}

int djct_comm_plan_reduce(djct_comm_plan *p, djct_comm_op op, double weight)
{
    DJCT_CHECK_ARG(p);
    int rc = start_step(p, op, weight);
    if (rc < 0)
        return rc;
    /* everything is ready: blocking reductions bucket by bucket (MPI's tuned algorithms) */
    for (size_t k = 0; k < p->nb; k++) {
        p->b[k].pending = 0;
        int blocking = p->b[k].device < 0;
        if ((rc = launch(p, k, blocking)) < 0) {
            if (p->wpending && !p->c->broken)
                MPI_Wait(&p->wreq, MPI_STATUS_IGNORE);
            p->wpending = 0;
            p->active = 0;
            return rc;
        }
        p->next_launch = k + 1;
        if (blocking)
            complete(p, k);
    }
    for (size_t i = 0; i < p->n; i++)
        p->ready[i] = 1;
    return djct_comm_plan_finish(p);
}

