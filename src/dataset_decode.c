/* The decode pool: threads that decode this rank's .djctd files ahead of the batch producer, in
 * the order the epoch plan reads them, within the cache budget. The unit of work is a value block
 * (one array of one record, src/djcdata_parts.c): a file's layout pass is one job, then each of
 * its blocks; the pool hands out the jobs of the file needed first before any later file's, so
 * the threads share the file the producer waits for and then decode the next ones (lookahead).
 * Only the producer (the prefetch thread, or next()'s caller) queues and takes files and owns the
 * lookahead; the workers parse and decode. A file decoded here is the record djct_djcdata_read
 * returns, or its error, so batches are the same whatever the number of threads. */
#include "djct/dataset.h"
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"
#include "djcdata_int.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DF_QUEUED, DF_PARSING, DF_DECODING, DF_DONE };

typedef struct dfile {
    struct dfile  *next;
    size_t         file;
    int            state;
    djcdata_parts *parts;      /* after the layout pass */
    int            open_rc;    /* the layout pass could not start (open, memory) */
    char          *open_msg;
    size_t         n_blocks, next_block, finished;
    size_t         first_fail; /* the lowest failed block (n_blocks: none); later ones are skipped */
} dfile;

struct dpool {
    pthread_t      *th;
    int             n;
    pthread_mutex_t mu;
    pthread_cond_t  cv_work;  /* workers: a job, a drain's end or stop */
    pthread_cond_t  cv_done;  /* producer: a job finished */
    dfile          *head;     /* in the order the producer needs them */
    int             busy;     /* workers out of the lock on a job */
    int             draining; /* no new jobs: a reset waits for the busy ones */
    int             interrupt; /* a producer waiting in take gives up */
    int             stop;
    djct_dataset   *ds;
};

/* ---- workers ---- */

/* The next job, under the lock: *blk = SIZE_MAX for f's layout pass, else a block of f. */
static dfile *pick(dpool *P, size_t *blk)
{
    for (dfile *f = P->head; f; f = f->next) {
        if (f->state == DF_QUEUED) {
            f->state = DF_PARSING;
            *blk = SIZE_MAX;
            return f;
        }
        while (f->state == DF_DECODING && f->next_block < f->n_blocks) {
            size_t i = f->next_block++;
            if (i < f->first_fail) {
                *blk = i;
                return f;
            }
            /* after a failed block: the error is decided (the first failing block in file order) */
            if (++f->finished == f->n_blocks) {
                f->state = DF_DONE;
                pthread_cond_broadcast(&P->cv_done);
            }
        }
    }
    return NULL;
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "djct-decode");
    dpool *P = arg;
    djct_dataset *ds = P->ds;
    unsigned char *scratch = NULL; /* compressed bytes of the block being decoded */
    size_t cap = 0, blk = 0;
    pthread_mutex_lock(&P->mu);
    for (;;) {
        dfile *f = NULL;
        while (!P->stop && (P->draining || !(f = pick(P, &blk)))) {
            free(scratch); /* idle: hold no buffer */
            scratch = NULL;
            cap = 0;
            pthread_cond_wait(&P->cv_work, &P->mu);
        }
        if (P->stop)
            break;
        P->busy++;
        pthread_mutex_unlock(&P->mu);
        if (blk == SIZE_MAX) {
            djcdata_parts *parts = NULL;
            int rc = djcdata_parts_open(&parts, ds->files[f->file].path, NULL, 0);
            char *msg = rc ? strdup(djct_last_error()) : NULL;
            pthread_mutex_lock(&P->mu);
            f->parts = parts;
            f->open_rc = rc;
            f->open_msg = msg;
            f->n_blocks = f->first_fail = djcdata_parts_count(parts);
            f->state = f->n_blocks ? DF_DECODING : DF_DONE;
            if (f->n_blocks > 1)
                pthread_cond_broadcast(&P->cv_work); /* its blocks are for every idle worker */
        } else {
            int rc = djcdata_parts_decode(f->parts, blk, &scratch, &cap);
            pthread_mutex_lock(&P->mu);
            if (rc && blk < f->first_fail)
                f->first_fail = blk;
            if (++f->finished == f->n_blocks)
                f->state = DF_DONE;
        }
        P->busy--;
        pthread_cond_broadcast(&P->cv_done);
    }
    pthread_mutex_unlock(&P->mu);
    free(scratch);
    return NULL;
}

/* ---- the pool's life ---- */

static void dfile_free(dfile *f)
{
    djcdata_parts_free(f->parts);
    free(f->open_msg);
    free(f);
}

int dataset_pool_start(djct_dataset *ds)
{
    int any = 0;
    for (size_t i = 0; i < ds->nf; i++)
        any |= ds->files[i].format == DJCT_FORMAT_DJCTD;
    if (ds->o.decode_threads <= 0 || !any)
        return 0;
    dpool *P = calloc(1, sizeof(*P));
    if (!P || !(P->th = calloc((size_t)ds->o.decode_threads, sizeof(pthread_t))) ||
        !(ds->pooled = calloc(ds->nf + 1, 1))) {
        if (P)
            free(P->th);
        free(P);
        return djct_error_oom();
    }
    P->ds = ds;
    pthread_mutex_init(&P->mu, NULL);
    pthread_cond_init(&P->cv_work, NULL);
    pthread_cond_init(&P->cv_done, NULL);
    ds->pool = P;
    for (int i = 0; i < ds->o.decode_threads; i++) {
        int e = pthread_create(&P->th[i], NULL, worker, P);
        if (e) {
            dataset_pool_stop(ds);
            return djct_error_set(DJCT_ERROR, "dataset: cannot start decode thread %d of %d: %s; lower "
                                  "decode_threads", i + 1, ds->o.decode_threads, strerror(e));
        }
        P->n++;
    }
    return 0;
}

/* empty the pool; with `adopt`, the files fully decoded go into the cache */
static void drain(djct_dataset *ds, int adopt)
{
    dpool *P = ds->pool;
    if (!P)
        return;
    pthread_mutex_lock(&P->mu);
    P->draining = 1;
    while (P->busy)
        pthread_cond_wait(&P->cv_done, &P->mu);
    dfile *f = P->head;
    P->head = NULL;
    P->draining = 0;
    P->interrupt = 0;
    pthread_mutex_unlock(&P->mu);
    while (f) {
        dfile *n = f->next;
        djct_record rec;
        /* a broken file is left out: it fails again, with its message, when it is needed */
        if (adopt && f->state == DF_DONE && f->parts && djcdata_parts_finish(f->parts, &rec) == 0)
            dataset_source_adopt(ds, f->file, &rec);
        dfile_free(f);
        f = n;
    }
    memset(ds->pooled, 0, ds->nf);
    ds->n_pooled = 0;
    ds->ahead_bytes = 0;
    ds->la_pos = ds->la_step = 0;
}

void dataset_pool_reset(djct_dataset *ds) { drain(ds, 1); }

void dataset_pool_stop(djct_dataset *ds)
{
    dpool *P = ds->pool;
    if (!P)
        return;
    drain(ds, 0);
    pthread_mutex_lock(&P->mu);
    P->stop = 1;
    pthread_cond_broadcast(&P->cv_work);
    pthread_mutex_unlock(&P->mu);
    for (int i = 0; i < P->n; i++)
        pthread_join(P->th[i], NULL);
    pthread_mutex_destroy(&P->mu);
    pthread_cond_destroy(&P->cv_work);
    pthread_cond_destroy(&P->cv_done);
    free(P->th);
    free(P);
    ds->pool = NULL;
}

void dataset_pool_interrupt(djct_dataset *ds)
{
    dpool *P = ds->pool;
    if (!P)
        return;
    pthread_mutex_lock(&P->mu);
    P->interrupt = 1;
    pthread_cond_broadcast(&P->cv_done);
    pthread_mutex_unlock(&P->mu);
}

/* ---- the plan's file reads ---- */

/* without an index (out of memory) the pool only decodes the files the producer asks for */
static void plan_clear(djct_dataset *ds)
{
    free(ds->use_start);
    free(ds->use_file);
    free(ds->fuse_start);
    free(ds->fuse_step);
    ds->use_start = ds->fuse_start = ds->fuse_step = NULL;
    ds->use_file = NULL;
    ds->n_uses = 0;
}

int dataset_pool_plan(djct_dataset *ds)
{
    if (!ds->pool)
        return 0;
    plan_clear(ds);
    int rc = djct_error_oom();
    const djct_dataset_plan *pl = &ds->plan;
    int W = ds->o.world_size, r = ds->o.rank;
    if (!(ds->use_start = calloc((size_t)pl->steps + 2, sizeof(int64_t))) ||
        !(ds->fuse_start = calloc(ds->nf + 2, sizeof(int64_t))))
        goto fail;
    /* pass 0 counts the distinct files of each step, pass 1 lists them */
    for (int pass = 0; pass < 2; pass++) {
        int64_t u = 0;
        for (int64_t s = 0; s < pl->steps; s++) {
            ds->use_start[s] = u;
            const int64_t *b = pl->bin_start + s * W + r, *ev = pl->events;
            size_t f = 0, hi = ds->nf;
            if (b[0] < b[1]) /* the file of the first event */
                while (hi - f > 1) {
                    size_t mid = f + (hi - f) / 2;
                    if (ds->first[mid] <= ev[b[0]])
                        f = mid;
                    else
                        hi = mid;
                }
            for (int64_t e = b[0]; e < b[1]; e++) { /* ascending ids: files ascending */
                if (e > b[0] && ev[e] < ds->first[f + 1])
                    continue;
                while (ev[e] >= ds->first[f + 1])
                    f++;
                if (pass)
                    ds->use_file[u] = f;
                u++;
            }
        }
        ds->use_start[pl->steps] = u;
        ds->n_uses = u;
        if (!pass && !(ds->use_file = malloc((size_t)u * sizeof(size_t) + 1)))
            goto fail;
    }
    /* per file the steps that read it, ascending (a counting sort of the uses by file) */
    if (!(ds->fuse_step = malloc((size_t)ds->n_uses * sizeof(int64_t) + 1)))
        goto fail;
    for (int64_t u = 0; u < ds->n_uses; u++)
        ds->fuse_start[ds->use_file[u] + 1]++;
    for (size_t f = 0; f < ds->nf; f++)
        ds->fuse_start[f + 1] += ds->fuse_start[f];
    int64_t *at = malloc((ds->nf + 1) * sizeof(int64_t));
    if (!at)
        goto fail;
    memcpy(at, ds->fuse_start, ds->nf * sizeof(int64_t));
    for (int64_t s = 0; s < pl->steps; s++)
        for (int64_t u = ds->use_start[s]; u < ds->use_start[s + 1]; u++)
            ds->fuse_step[at[ds->use_file[u]]++] = s;
    free(at);
    ds->la_pos = ds->la_step = 0;
    return 0;
fail:
    plan_clear(ds);
    return rc;
}

int64_t dataset_pool_next_use(const djct_dataset *ds, size_t file, int64_t step)
{
    if (!ds->fuse_step)
        return INT64_MAX;
    int64_t lo = ds->fuse_start[file], hi = ds->fuse_start[file + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ds->fuse_step[mid] < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ds->fuse_start[file + 1] ? ds->fuse_step[lo] : INT64_MAX;
}

void dataset_pool_evicted(djct_dataset *ds, size_t file, int64_t from)
{
    int64_t nu = dataset_pool_next_use(ds, file, from);
    if (nu != INT64_MAX && ds->use_start && ds->use_start[nu] < ds->la_pos) { /* the lookahead passed it as cached */
        ds->la_pos = ds->use_start[nu];
        ds->la_step = nu;
    }
}

/* ---- the producer's side ---- */

/* queue `file` (at the front: the producer needs it now; else at the back) */
static int enqueue(djct_dataset *ds, size_t file, int front)
{
    dpool *P = ds->pool;
    dfile *f = calloc(1, sizeof(*f));
    if (!f)
        return djct_error_oom();
    f->file = file;
    f->state = DF_QUEUED;
    pthread_mutex_lock(&P->mu);
    dfile **at = &P->head;
    if (!front)
        while (*at)
            at = &(*at)->next;
    f->next = *at;
    *at = f;
    pthread_cond_signal(&P->cv_work);
    pthread_mutex_unlock(&P->mu);
    ds->pooled[file] = 1;
    ds->n_pooled++;
    ds->ahead_bytes += ds->fbytes[file];
    return 0;
}

void dataset_pool_ahead(djct_dataset *ds, int64_t step)
{
    if (!ds->pool || !ds->fuse_step || step >= ds->plan.steps)
        return;
    size_t budget = dataset_cache_budget(ds), most = 4 * (size_t)ds->pool->n + 4;
    if (ds->la_pos < ds->use_start[step]) {
        ds->la_pos = ds->use_start[step];
        ds->la_step = step;
    }
    while (ds->la_pos < ds->n_uses && ds->n_pooled < most) {
        while (ds->use_start[ds->la_step + 1] <= ds->la_pos)
            ds->la_step++;
        size_t f = ds->use_file[ds->la_pos];
        if (ds->files[f].format != DJCT_FORMAT_DJCTD || ds->pooled[f] || dataset_source_cached(ds, f)) {
            ds->la_pos++;
            continue;
        }
        /* The cached files read before f must stay; the others make room. The files of this
         * step are read into the cache during this batch anyway: they are always queued. */
        if (ds->la_step > step) {
            size_t keep = 0;
            for (size_t i = 0; i < ds->nsrc; i++)
                if (dataset_pool_next_use(ds, ds->src[i].file, step) <= ds->la_step)
                    keep += ds->src[i].bytes;
            if ((ds->n_pooled || keep) && keep + ds->ahead_bytes + ds->fbytes[f] > budget)
                return; /* later, when files before it are done with */
        }
        if (enqueue(ds, f, 0) < 0)
            return; /* out of memory: the file is decoded when it is needed */
        ds->la_pos++;
    }
}

int dataset_pool_take(djct_dataset *ds, size_t file, djct_record *out)
{
    dpool *P = ds->pool;
    int rc;
    if (!ds->pooled[file] && (rc = enqueue(ds, file, 1)) < 0)
        return rc;
    pthread_mutex_lock(&P->mu);
    dfile **at = &P->head;
    while (*at && (*at)->file != file)
        at = &(*at)->next;
    dfile *f = *at;
    if (f->state == DF_QUEUED && at != &P->head) { /* needed now: first in line */
        *at = f->next;
        f->next = P->head;
        P->head = f;
    }
    while (f->state != DF_DONE && !P->interrupt)
        pthread_cond_wait(&P->cv_done, &P->mu);
    at = &P->head;
    while (*at != f)
        at = &(*at)->next;
    if (f->state != DF_DONE) {
        pthread_mutex_unlock(&P->mu);
        return djct_error_set(DJCT_ERROR, "dataset: decoding '%s' was interrupted (the prefetch thread is "
                              "stopping)", ds->files[file].path);
    }
    *at = f->next;
    pthread_mutex_unlock(&P->mu);
    ds->pooled[file] = 0;
    ds->n_pooled--;
    ds->ahead_bytes -= ds->fbytes[file];
    rc = f->parts ? djcdata_parts_finish(f->parts, out)
         : f->open_msg ? djct_error_set(f->open_rc, "%s", f->open_msg) : djct_error_oom();
    dfile_free(f);
    return rc;
}
