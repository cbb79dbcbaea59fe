/* The logging singleton: the API and the per-rank metric buffer. Invariants: every rank takes
 * the same path through djct_log_flush (decided only from collective results), so differing key
 * sets can never deadlock; only rank 0 touches files or the network. The reduction is in
 * log_reduce.c, rank 0's writer thread in log_writer.c, its sinks in log_sinks.c, init and finish
 * in log_run.c, djct_log_sync in log_sync.c. */
#include "djct/log.h"
#include "djct/error.h"
#include "djct_int.h"
#include "log_int.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

log_state g = {.mu = PTHREAD_MUTEX_INITIALIZER, .key_source = "none"};

static pthread_mutex_t warn_mu = PTHREAD_MUTEX_INITIALIZER; /* g.warn: the writer thread warns too */

void lg_warnf(const char *fmt, ...)
{
    pthread_mutex_lock(&warn_mu);
    size_t used = strlen(g.warn);
    if (used + 2 >= sizeof(g.warn)) {
        pthread_mutex_unlock(&warn_mu);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.warn + used, sizeof(g.warn) - used - 1, fmt, ap);
    va_end(ap);
    used = strlen(g.warn);
    g.warn[used] = '\n';
    g.warn[used + 1] = '\0';
    pthread_mutex_unlock(&warn_mu);
}

/* ---- the buffer ------------------------------------------------------------------------------ */

static int index_rebuild(int icap);

/* The logged values into g.held, in case rank 0 asks for the gathering path; `clear` forgets them
 * in the entries in the same pass (after a flush). No allocation: heldcap follows the entries'. */
void lg_held_take(int clear)
{
    int m = 0;
    for (int i = 0; i < g.n; i++) {
        entry *e = &g.e[i];
        if (e->cnt > 0) {
            g.held[m++] = (held_rec){e->name, e->op, e->sum, e->cnt, e->min, e->max};
            if (clear)
                e->cnt = 0;
        }
    }
    g.nheld = m;
}

/* After a flush: keep the names (the next step usually logs the same ones) but forget the values.
 * Names not logged in this flush are dropped once they outnumber the live ones, so a run that
 * invents names (e.g. per-epoch keys) does not grow the buffer without bound. */
void lg_buffer_reset(void)
{
    int stale = g.n - g.live;
    if (stale > 64 && stale > g.live) {
        int m = 0;
        for (int i = 0; i < g.n; i++) {
            if (g.e[i].cnt > 0)
                g.e[m++] = g.e[i];
            else
                free(g.e[i].name);
        }
        g.n = m;
        if (g.index && index_rebuild(g.icap) < 0) { /* out of memory: forget the names instead */
            for (int i = 0; i < g.n; i++)
                free(g.e[i].name);
            g.n = 0;
            memset(g.index, 0, sizeof(int) * (size_t)g.icap);
        }
    }
    lg_held_take(1); /* the values stay held for the gathering path rank 0 may ask for (settle) */
    g.live = 0;
}

/* Drop everything (finish). */
void lg_buffer_free(void)
{
    for (int i = 0; i < g.n; i++)
        free(g.e[i].name);
    g.n = g.live = 0;
    if (g.index)
        memset(g.index, 0, sizeof(int) * (size_t)g.icap);
}

static int index_rebuild(int icap)
{
    int *ix = calloc((size_t)icap, sizeof(int));
    if (!ix)
        return djct_error_oom();
    for (int i = 0; i < g.n; i++) {
        size_t h = (size_t)djct_fnv1a_str(DJCT_FNV1A_OFFSET, g.e[i].name) & (size_t)(icap - 1);
        while (ix[h])
            h = (h + 1) & (size_t)(icap - 1);
        ix[h] = i + 1;
    }
    free(g.index);
    g.index = ix;
    g.icap = icap;
    return 0;
}


/* The fast path's packing, done as values arrive: the value goes straight into its slot of the
 * layout's vector (identities after each flush), and the flag the flush sends is kept up to date.
 * So the flush itself has nothing to pack. */
static void slot_add(const entry *e, double v, int first)
{
    layout *L = &g.lay;
    int s = e->slot;
    if (s < 0 || e->op != L->op[s]) { /* not in the layout, or another op there */
        g.misfit = 1;
        return;
    }
    double *x = L->vec + HDR + s;
    *x = e->op == DJCT_REDUCE_MIN ? lg_min_nan(v, *x) : e->op == DJCT_REDUCE_MAX ? lg_max_nan(v, *x) : *x + v;
    if (L->cidx[s] >= 0)
        L->vec[HDR + L->n + L->cidx[s]] += 1;
    else if (first)
        g.uncounted++;
    else if (e->op == DJCT_REDUCE_MEAN) /* its count would have to be the number of ranks */
        g.misfit = 1;
}

static int buffer_add(const char *name, double v, int op)
{
    if (!g.index && index_rebuild(64) < 0)
        return DJCT_ENOMEM;
    size_t h = (size_t)djct_fnv1a_str(DJCT_FNV1A_OFFSET, name) & (size_t)(g.icap - 1);
    while (g.index[h]) {
        entry *e = &g.e[g.index[h] - 1];
        if (strcmp(e->name, name) == 0) {
            if (e->cnt == 0) { /* first time since the last flush; the op may change */
                *e = (entry){e->name, op, e->slot, v, 1, v, v};
                g.live++;
                slot_add(e, v, 1);
                return 0;
            }
            if (e->op != op)
                return djct_error_set(DJCT_EINVAL, "metric '%s' was logged with reduce op %d and now %d in the same "
                                      "flush; use one op per name", name, e->op, op);
            e->sum += v;
            e->cnt += 1;
            e->min = lg_min_nan(v, e->min);
            e->max = lg_max_nan(v, e->max);
            slot_add(e, v, 0);
            return 0;
        }
        h = (h + 1) & (size_t)(g.icap - 1);
    }
    if (g.n == g.ecap) {
        int nc = g.ecap ? g.ecap * 2 : 64;
        entry *ne = realloc(g.e, sizeof(entry) * (size_t)nc);
        if (!ne)
            return djct_error_oom();
        g.e = ne;
        held_rec *nh = realloc(g.held, sizeof(held_rec) * (size_t)nc); /* a flush copies into it */
        if (!nh)
            return djct_error_oom();
        g.held = nh;
        g.ecap = g.heldcap = nc;
    }
    char *nm = strdup(name);
    if (!nm)
        return djct_error_oom();
    g.e[g.n] = (entry){nm, op, lg_layout_find(&g.lay, name), v, 1, v, v};
    slot_add(&g.e[g.n], v, 1);
    g.index[h] = ++g.n;
    g.live++;
    if (2 * g.n > g.icap)
        return index_rebuild(g.icap * 2);
    return 0;
}

int djct_log_reduce(const char *name, double value, djct_reduce_op op)
{
    if (!name || !*name)
        return djct_error_set(DJCT_EINVAL, "djct_log: metric name is NULL or empty");
    if ((int)op < DJCT_REDUCE_MEAN || (int)op > DJCT_REDUCE_MAX)
        return djct_error_set(DJCT_EINVAL, "djct_log_reduce('%s'): unknown reduce op %d; use DJCT_REDUCE_*", name,
                              (int)op);
    pthread_mutex_lock(&g.mu);
    int rc = 0;
    if (g.initialised && g.active && g.mode != DJCT_LOG_MODE_DISABLED)
        rc = buffer_add(name, value, (int)op);
    pthread_mutex_unlock(&g.mu);
    return rc;
}

int djct_log(const char *name, double value) { return djct_log_reduce(name, value, DJCT_REDUCE_MEAN); }

void djct_log_activate(void)
{
    pthread_mutex_lock(&g.mu);
    g.active = 1;
    pthread_mutex_unlock(&g.mu);
}

void djct_log_deactivate(void)
{
    pthread_mutex_lock(&g.mu);
    g.active = 0;
    pthread_mutex_unlock(&g.mu);
}

int djct_log_is_active(void)
{
    pthread_mutex_lock(&g.mu);
    int a = g.initialised && g.active && g.mode != DJCT_LOG_MODE_DISABLED;
    pthread_mutex_unlock(&g.mu);
    return a;
}


int djct_log_flush(const char *prefix, int64_t step)
{
    pthread_mutex_lock(&g.mu);
    if (!g.initialised || g.mode == DJCT_LOG_MODE_DISABLED) {
        lg_buffer_free();
        pthread_mutex_unlock(&g.mu);
        return 0;
    }
    int rc = lg_settle();
    /* every rank knows the last step here (rank 0's, from settle), so a bad step fails alike */
    if (rc == 0 && step >= 0 && step <= g.last_step)
        rc = djct_error_set(DJCT_EINVAL, "djct_log_flush: step %" PRId64 " is not after the last step %" PRId64
                            "; pass -1 for the next step (this row was dropped)", step, g.last_step);
    else if (rc == 0)
        rc = lg_flush_now(prefix, step);
    lg_buffer_reset();
    lg_layout_clear();
    pthread_mutex_unlock(&g.mu);
    return rc;
}

int djct_log_settle(void)
{
    pthread_mutex_lock(&g.mu);
    int rc = g.initialised && g.mode != DJCT_LOG_MODE_DISABLED ? lg_settle() : 0;
    pthread_mutex_unlock(&g.mu);
    return rc;
}

/* ---- config / summary ------------------------------------------------------------------------------ */

static cJSON *parse_value(const char *json_or_value)
{
    cJSON *v = cJSON_Parse(json_or_value);
    return v ? v : cJSON_CreateString(json_or_value);
}

int djct_log_config_set(const char *key, const char *json_or_value)
{
    DJCT_CHECK_ARG(key && *key);
    DJCT_CHECK_ARG(json_or_value);
    pthread_mutex_lock(&g.mu);
    int rc = 0;
    if (!g.initialised)
        rc = djct_error_set(DJCT_EINVAL, "djct_log_config_set('%s'): call djct_log_init first", key);
    else if (g.rank == 0 && g.dir) {
        cJSON_DeleteItemFromObjectCaseSensitive(g.config, key);
        cJSON_AddItemToObject(g.config, key, parse_value(json_or_value));
        if ((rc = lg_config_write()) == 0 && g.up)
            wb_uploader_config_changed(g.up);
    }
    pthread_mutex_unlock(&g.mu);
    return rc;
}

int djct_log_summary_set(const char *key, const char *json_or_value)
{
    DJCT_CHECK_ARG(key && *key);
    DJCT_CHECK_ARG(json_or_value);
    pthread_mutex_lock(&g.mu);
    int rc = 0;
    if (!g.initialised)
        rc = djct_error_set(DJCT_EINVAL, "djct_log_summary_set('%s'): call djct_log_init first", key);
    else if (g.rank == 0 && g.dir) {
        pthread_mutex_lock(&lg_sink_mu);
        cJSON_DeleteItemFromObjectCaseSensitive(g.summary_user, key);
        cJSON_AddItemToObject(g.summary_user, key, parse_value(json_or_value));
        if ((rc = lg_summary_write(0)) == 0 && g.up)
            wb_uploader_notify(g.up, 1);
        pthread_mutex_unlock(&lg_sink_mu);
    }
    pthread_mutex_unlock(&g.mu);
    return rc;
}

/* ---- queries --------------------------------------------------------------------------------------- */

const char *djct_log_warnings(void)
{
    lg_writer_drain(); /* the warnings of every row flushed so far */
    pthread_mutex_lock(&g.mu);
    if (g.up) {
        char f[1024];
        wb_uploader_fatal(g.up, f, sizeof(f));
        if (f[0] && !strstr(g.warn, f))
            lg_warnf("%s", f);
    }
    pthread_mutex_unlock(&g.mu);
    return g.warn;
}

const char *djct_log_key_source(void) { return g.key_source; }

const char *djct_log_run_dir(void) { return g.initialised ? g.dir : NULL; }

const char *djct_log_run_id(void) { return g.initialised && g.run_id[0] ? g.run_id : NULL; }

const char *djct_log_last_row(void)
{
    lg_writer_drain();
    pthread_mutex_lock(&lg_sink_mu);
    const char *r = g.last_row ? g.last_row : "";
    pthread_mutex_unlock(&lg_sink_mu);
    return r;
}

int djct_log_get_stats(djct_log_stats *out)
{
    DJCT_CHECK_ARG(out);
    pthread_mutex_lock(&g.mu);
    *out = g.stats;
    out->rows_rewound = g.rows_rewound;
    pthread_mutex_lock(&lg_sink_mu);
    out->rows = lg_rows_written;
    pthread_mutex_unlock(&lg_sink_mu);
    if (g.up)
        wb_uploader_stats(g.up, &out->rows_acked, NULL, &out->upload_state);
    pthread_mutex_unlock(&g.mu);
    return 0;
}
