/* Rank 0's row writer thread: a flush on rank 0 hands its row (names, values, step, times) to
 * this thread, which formats it, appends it to the journal and feeds the sinks, so the training
 * loop never pays for formatting, which costs far more than the reduction itself. Rows are written
 * in flush order. The names point into a layout's arena, which is therefore freed only once no
 * queued row can refer to it (lg_layout_release). Sink state (journal, summary, CSV, console,
 * last_row, rows) is under lg_sink_mu; nothing here takes g.mu. */
#include "djct/error.h"
#include "djct_int.h"
#include "log_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define WRITER_QUEUE_MAX 4096 /* rows queued before a flush waits for the writer (a stalled disk) */
#define WRITER_BATCH 32       /* a flush wakes the writer when this many rows wait ... */
#define WRITER_DELAY_S 0.02   /* ... else the writer takes them after this long */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    pthread_t thr;
    int on, stop, busy, qlen;
    int drain;      /* someone waits for the queue to empty: write now */
    row_rec *head, *tail;
    void **retired; /* layout arrays that queued rows may still point into */
    int nretired, retcap;
    row_rec *spare; /* written records, for reuse */
    int nspare;
    int err;        /* the first error of a row write, reported by djct_log_finish */
    char msg[512];
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

pthread_mutex_t lg_sink_mu = PTHREAD_MUTEX_INITIALIZER;
int64_t lg_rows_written;

/* a row write failed (W.mu held, or no writer thread): warn once, keep the first error for
 * djct_log_finish; a full disk fails every row after it */
static void row_failed(int rc, int64_t step)
{
    if (W.err)
        return;
    lg_warnf("history row of step %" PRId64 " not written (nor, perhaps, later ones): %s", step, djct_last_error());
    W.err = rc;
    snprintf(W.msg, sizeof(W.msg), "%s", djct_last_error());
}

#define WRITER_SPARE_MAX 64

static void retired_free(void) /* W.mu held, nothing queued or being written */
{
    for (int i = 0; i < W.nretired; i++)
        free(W.retired[i]);
    W.nretired = 0;
}

/* the time WRITER_DELAY_S from now, for pthread_cond_timedwait */
static struct timespec writer_deadline(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += (long)(WRITER_DELAY_S * 1e9);
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

/* Every WRITER_DELAY_S, or as soon as WRITER_BATCH rows wait or somebody drains, write every
 * queued row. A flush thus signals this thread once per WRITER_BATCH rows, not per row: a wake-up
 * costs the flushing thread a system call, more than the reduction itself. */
static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "djct-logwriter"); /* shown by top -H, ps -L, gdb */
    (void)arg;
    pthread_mutex_lock(&W.mu);
    while (!W.stop || W.head) {
        struct timespec until = writer_deadline();
        while (!W.stop && !(W.drain && W.head) && W.qlen < WRITER_BATCH)
            if (pthread_cond_timedwait(&W.work, &W.mu, &until) == ETIMEDOUT)
                break;
        while (W.head) {
            row_rec *r = W.head;
            if (!(W.head = r->next))
                W.tail = NULL;
            W.qlen--;
            W.busy = 1;
            pthread_mutex_unlock(&W.mu);
            pthread_mutex_lock(&lg_sink_mu);
            int rc = lg_row_write(r);
            pthread_mutex_unlock(&lg_sink_mu);
            pthread_mutex_lock(&W.mu);
            if (rc < 0)
                row_failed(rc, r->step);
            if (W.nspare < WRITER_SPARE_MAX) {
                r->next = W.spare;
                W.spare = r;
                W.nspare++;
            } else {
                free(r);
            }
            W.busy = 0;
            if (W.qlen == WRITER_QUEUE_MAX - 1)
                pthread_cond_broadcast(&W.idle); /* a flush may be waiting for room */
        }
        retired_free();
        pthread_cond_broadcast(&W.idle);
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

void lg_writer_start(void)
{
    W.stop = W.err = 0;
    W.msg[0] = '\0';
    W.on = pthread_create(&W.thr, NULL, writer_main, NULL) == 0; /* else rows are written in line */
}

/* wait until every queued row is written */
void lg_writer_drain(void)
{
    pthread_mutex_lock(&W.mu);
    W.drain++;
    pthread_cond_signal(&W.work);
    while (W.on && (W.head || W.busy))
        pthread_cond_wait(&W.idle, &W.mu);
    W.drain--;
    pthread_mutex_unlock(&W.mu);
}

void lg_writer_stop(void)
{
    if (!W.on)
        return;
    pthread_mutex_lock(&W.mu);
    W.stop = 1;
    pthread_cond_signal(&W.work);
    pthread_mutex_unlock(&W.mu);
    pthread_join(W.thr, NULL);
    pthread_mutex_lock(&W.mu);
    W.on = 0;
    retired_free();
    free(W.retired);
    W.retired = NULL;
    W.retcap = 0;
    while (W.spare) {
        row_rec *r = W.spare;
        W.spare = r->next;
        free(r);
    }
    W.nspare = 0;
    pthread_mutex_unlock(&W.mu);
}

int lg_writer_error(char *msg, size_t cap)
{
    pthread_mutex_lock(&W.mu);
    int err = W.err;
    snprintf(msg, cap, "%s", W.msg);
    pthread_mutex_unlock(&W.mu);
    return err;
}

/* an array of a layout: freed now, or once the rows queued before this call are written */
void lg_layout_release(void *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&W.mu);
    if (W.on && (W.head || W.busy)) {
        if (W.nretired == W.retcap) {
            int nc = W.retcap ? 2 * W.retcap : 8;
            void **nr = realloc(W.retired, sizeof(void *) * (size_t)nc);
            if (!nr) { /* cannot keep it safely: wait for the writer instead */
                while (W.head || W.busy)
                    pthread_cond_wait(&W.idle, &W.mu);
                pthread_mutex_unlock(&W.mu);
                free(a);
                return;
            }
            W.retired = nr;
            W.retcap = nc;
        }
        W.retired[W.nretired++] = a;
        a = NULL;
    }
    pthread_mutex_unlock(&W.mu);
    free(a);
}


/* rank 0: a row to the writer thread: the reduced vector as it is (the writer divides the means)
 * and pointers to the layout's arrays, which outlive the row (lg_layout_release) */
void lg_row_emit(int n, int ncnt, const char **name, const unsigned char *op, const int *cidx,
                 const double *raw, const char *prefix, int64_t step)
{
    size_t plen = strlen(prefix) + 1, vals = sizeof(double) * (size_t)(n + ncnt), need = vals + plen;
    row_rec *r = NULL;
    pthread_mutex_lock(&W.mu);
    if (W.spare && W.spare->cap >= need) {
        r = W.spare;
        W.spare = r->next;
        W.nspare--;
    }
    pthread_mutex_unlock(&W.mu);
    if (!r && (r = malloc(sizeof(row_rec) + need + 256)) != NULL)
        r->cap = need + 256;
    if (!r) {
        lg_warnf("history row of step %" PRId64 " dropped: out of memory", step);
        return;
    }
    r->next = NULL;
    r->step = step;
    r->runtime = g.runtime_base + (djct_now_s() - g.t0_mono);
    r->ts = djct_wall_s();
    r->n = n;
    r->ncnt = ncnt;
    r->size = g.size;
    r->name = name;
    r->op = op;
    r->cidx = cidx;
    r->raw = (double *)(r + 1);
    r->prefix = (char *)(r->raw + n + ncnt);
    memcpy(r->raw, raw, vals);
    memcpy(r->prefix, prefix, plen);
    pthread_mutex_lock(&W.mu);
    if (W.on) {
        while (W.qlen >= WRITER_QUEUE_MAX) {
            pthread_cond_signal(&W.work);
            pthread_cond_wait(&W.idle, &W.mu);
        }
        if (W.tail)
            W.tail->next = r;
        else
            W.head = r;
        W.tail = r;
        if (++W.qlen == WRITER_BATCH)
            pthread_cond_signal(&W.work);
        pthread_mutex_unlock(&W.mu);
        return;
    }
    pthread_mutex_unlock(&W.mu);
    pthread_mutex_lock(&lg_sink_mu);
    int rc = lg_row_write(r);
    pthread_mutex_unlock(&lg_sink_mu);
    if (rc < 0)
        row_failed(rc, step);
    free(r);
}
