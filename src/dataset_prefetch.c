/* Prefetch: a producer thread builds this rank's next batches into a bounded queue, so next()
 * waits only when decoding falls behind the step. */
#include "djct/dataset.h"
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void *producer(void *arg)
{
    pthread_setname_np(pthread_self(), "djct-prefetch"); /* shown by top -H, ps -L, gdb */
    djct_dataset *ds = arg;
    for (;;) {
        pthread_mutex_lock(&ds->mu);
        int64_t s = ds->build_step;
        int stop = ds->stop;
        pthread_mutex_unlock(&ds->mu);
        if (stop || s >= ds->plan.steps)
            break;
        bint *b = NULL;
        int rc = dataset_build_batch(ds, s, &b);
        pthread_mutex_lock(&ds->mu);
        if (rc < 0) {
            ds->err = rc;
            snprintf(ds->errmsg, sizeof(ds->errmsg), "%s", djct_last_error());
            pthread_cond_broadcast(&ds->cv_item);
            pthread_mutex_unlock(&ds->mu);
            return NULL;
        }
        while (ds->qcount == ds->o.prefetch_depth && !ds->stop)
            pthread_cond_wait(&ds->cv_space, &ds->mu);
        if (ds->stop) {
            pthread_mutex_unlock(&ds->mu);
            djct_batch_release(ds, &b->b);
            break;
        }
        ds->q[(ds->qhead + ds->qcount) % ds->o.prefetch_depth] = b;
        ds->qcount++;
        ds->build_step++;
        pthread_cond_broadcast(&ds->cv_item);
        pthread_mutex_unlock(&ds->mu);
    }
    pthread_mutex_lock(&ds->mu);
    ds->done = 1;
    pthread_cond_broadcast(&ds->cv_item);
    pthread_mutex_unlock(&ds->mu);
    return NULL;
}

void dataset_stop_prefetch(djct_dataset *ds)
{
    if (ds->running) {
        pthread_mutex_lock(&ds->mu);
        ds->stop = 1;
        pthread_cond_broadcast(&ds->cv_space);
        pthread_mutex_unlock(&ds->mu);
        dataset_pool_interrupt(ds); /* it may be waiting for a file the decode threads make */
        pthread_join(ds->th, NULL);
        ds->running = 0;
    }
    while (ds->qcount) {
        bint *b = ds->q[ds->qhead];
        ds->qhead = (ds->qhead + 1) % (ds->o.prefetch_depth ? ds->o.prefetch_depth : 1);
        ds->qcount--;
        djct_batch_release(ds, &b->b);
    }
    ds->qhead = 0;
    ds->stop = ds->done = ds->err = 0;
    ds->errmsg[0] = 0;
}

int dataset_start_prefetch(djct_dataset *ds)
{
    ds->build_step = ds->cursor;
    if (ds->o.prefetch_depth <= 0 || ds->cursor >= ds->plan.steps)
        return 0;
    int e = pthread_create(&ds->th, NULL, producer, ds);
    if (e)
        return djct_error_set(DJCT_ERROR, "dataset: cannot start the prefetch thread: %s", strerror(e));
    ds->running = 1;
    return 0;
}

