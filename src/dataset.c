/* Datasets: open (file list, metadata, schema check), seek and next, and the plan queries. The
 * parts: dataset_files.c (file lists), dataset_plan.c (the epoch plan), dataset_cache.c (decoded
 * files), dataset_batch.c (batch storage and assembly), dataset_prefetch.c (the producer thread),
 * dataset_decode.c (the threads that decode .djctd files ahead).
 * Invariants: every rank computes the same plan from metadata alone; every planned event is in
 * exactly one (step, rank) bin, and every rank has the same number of steps. */
#include "djct/dataset.h"
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"
#include "util_int.h"
#include "djct/djcdata.h"
#include "djct/h5.h"
#include "h5_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* ---- metadata and schema ---- */

const char *const dataset_container_name[3] = {"feature", "truth", "weight"};

void dataset_layout_lists(const djct_record *r, const djct_array *lists[3], size_t n[3])
{
    lists[0] = r->features;
    lists[1] = r->truths;
    lists[2] = r->weights;
    n[0] = r->n_features;
    n[1] = r->n_truths;
    n[2] = r->n_weights;
}

static int layout_ragged(const djct_array *a) { return a->n_row_splits > 0 || a->row_splits != NULL; }

/* every file must hold the arrays of file 0: same counts, dtypes, ndim, raggedness, inner dims */
static int check_schema(const djct_file_meta *m0, const djct_file_meta *m)
{
    const djct_array *l0[3], *l1[3];
    size_t n0[3], n1[3];
    dataset_layout_lists(&m0->layout, l0, n0);
    dataset_layout_lists(&m->layout, l1, n1);
    for (int c = 0; c < 3; c++) {
        if (n0[c] != n1[c])
            return djct_error_set(DJCT_EINVAL, "dataset: '%s' has %zu %s arrays, '%s' has %zu; all files must hold "
                                  "the same arrays", m->path, n1[c], dataset_container_name[c], m0->path, n0[c]);
        for (size_t i = 0; i < n0[c]; i++) {
            const djct_array *a = &l0[c][i], *b = &l1[c][i];
            int ra = layout_ragged(a), rb = layout_ragged(b);
            const char *what = NULL;
            if (a->dtype != b->dtype)
                what = "dtype";
            else if (ra != rb)
                what = "raggedness";
            else if (a->ndim != b->ndim)
                what = "ndim";
            else
                for (int d = ra ? 2 : 1; d < a->ndim && !what; d++)
                    if (a->shape[d] != b->shape[d])
                        what = "inner dimensions";
            if (what)
                return djct_error_set(DJCT_EINVAL, "dataset: '%s': %s array %zu ('%s'): %s differs from '%s' "
                                      "(%s %s, ndim %d vs %s %s, ndim %d); all files must hold the same arrays",
                                      m->path, dataset_container_name[c], i, b->name ? b->name : "", what, m0->path,
                                      djct_dtype_name(b->dtype), rb ? "ragged" : "regular", b->ndim,
                                      djct_dtype_name(a->dtype), ra ? "ragged" : "regular", a->ndim);
        }
    }
    return 0;
}

static int read_meta(djct_file_meta *m, const char *path, const djct_h5_map *map)
{
    djct_format f;
    if (djct_format_detect(&f, path) < 0)
        return djct_error_prefix("dataset");
    if (f == DJCT_FORMAT_H5) {
        djct_h5_read_options o = DJCT_H5_READ_OPTIONS_INIT;
        o.map = map;
        return djct_h5_read_meta_ext(m, path, &o);
    }
    if (f == DJCT_FORMAT_DJCSA)
        return djct_error_set(DJCT_EINVAL, "dataset: '%s' is a .djcsa (one array); datasets read .djctd or "
                              "HDF5 records (convert with djct_convert)", path);
    return djct_djcdata_read_meta(m, path);
}

/* ---- public ---- */

void djct_dataset_free(djct_dataset *ds)
{
    if (!ds)
        return;
    dataset_stop_prefetch(ds);
    dataset_pool_stop(ds);
    while (ds->freelist) {
        bint *b = ds->freelist;
        ds->freelist = b->next;
        dataset_bint_free(b);
    }
    for (size_t i = 0; i < ds->nsrc; i++)
        dataset_source_clear(&ds->src[i]);
    free(ds->src);
    for (size_t i = 0; i < ds->nf; i++)
        djct_file_meta_clear(&ds->files[i]);
    free(ds->files);
    free(ds->prefaulted);
    free(ds->fbytes);
    free(ds->pooled);
    free(ds->use_start);
    free(ds->use_file);
    free(ds->fuse_start);
    free(ds->fuse_step);
    free(ds->first);
    free(ds->cnt);
    free(ds->lay);
    free(ds->row_values);
    free(ds->ragged);
    djct_h5_map_free(ds->h5map);
    djct_dataset_plan_clear(&ds->plan);
    free(ds->q);
    pthread_mutex_destroy(&ds->mu);
    pthread_cond_destroy(&ds->cv_item);
    pthread_cond_destroy(&ds->cv_space);
    free(ds);
}

/* the dataset's plan of `epoch` */
static int plan_epoch(djct_dataset *ds, int64_t epoch)
{
    const djct_dataset_options *o = &ds->o;
    djct_plan_input in = {o->world_size, o->shuffle, o->seed, ds->by_elements, o->batch_events, o->batch_elements,
                          o->squared_limit, o->strict, o->drop_last, ds->N, ds->cnt, ds->nf, ds->first};
    return djct_dataset_plan_make(&ds->plan, &in, epoch);
}

static int check_options(const djct_dataset_options *o)
{
    if (o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size)
        return djct_error_set(DJCT_EINVAL, "dataset: rank %d / world_size %d: need 0 <= rank < world_size", o->rank,
                              o->world_size);
    if (o->batch_elements < 0 || o->batch_events < 0 || (o->batch_elements == 0 && o->batch_events == 0))
        return djct_error_set(DJCT_EINVAL, "dataset: batch_elements %" PRId64 " and batch_events %" PRId64
                              ": set one of them > 0 (djcdata: attempting empty split)", o->batch_elements,
                              o->batch_events);
    if (o->shuffle < DJCT_SHUFFLE_NONE || o->shuffle > DJCT_SHUFFLE_SHARDS)
        return djct_error_set(DJCT_EINVAL, "dataset: shuffle %d is not a djct_shuffle (0 to 3)", o->shuffle);
    if (o->prefetch_depth < 0 || o->prefetch_depth > 1024)
        return djct_error_set(DJCT_EINVAL, "dataset: prefetch_depth %d outside 0..1024", o->prefetch_depth);
    if (o->decode_threads < 0 || o->decode_threads > 1024)
        return djct_error_set(DJCT_EINVAL, "dataset: decode_threads %d outside 0..1024", o->decode_threads);
    return 0;
}

int djct_dataset_open_files(djct_dataset **out, const char *const *paths, size_t n_paths,
                            const djct_dataset_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(paths || !n_paths);
    DJCT_CHECK_VERSION(opts, DJCT_DATASET_OPTIONS_VERSION, "djct_dataset_options");
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    if (opts)
        o = *opts;
    int rc = check_options(&o);
    if (rc < 0)
        return rc;
    if (n_paths == 0)
        return djct_error_set(DJCT_EINVAL, "dataset: no files");
    djct_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds)
        return djct_error_oom();
    ds->o = o;
    ds->o.h5_map = NULL;
    pthread_mutex_init(&ds->mu, NULL);
    pthread_cond_init(&ds->cv_item, NULL);
    pthread_cond_init(&ds->cv_space, NULL);
    if (!(ds->files = calloc(n_paths, sizeof(djct_file_meta))) || !(ds->first = calloc(n_paths + 1, sizeof(int64_t))) ||
        !(ds->prefaulted = calloc(n_paths, 1)) ||
        !(ds->q = calloc((size_t)(o.prefetch_depth ? o.prefetch_depth : 1), sizeof(bint *)))) {
        rc = djct_error_oom();
        goto fail;
    }
    if (o.h5_map && (rc = djct_h5_map_load(&ds->h5map, o.h5_map)) < 0) {
        rc = djct_error_prefix("dataset");
        goto fail;
    }
    for (size_t i = 0; i < n_paths; i++) {
        if ((rc = read_meta(&ds->files[i], paths[i], ds->h5map)) < 0)
            goto fail;
        ds->nf = i + 1;
        if (i && (rc = check_schema(&ds->files[0], &ds->files[i])) < 0)
            goto fail;
        ds->first[i + 1] = ds->first[i] + ds->files[i].n_events;
    }
    ds->N = ds->first[ds->nf];
    const djct_array *l[3];
    dataset_layout_lists(&ds->files[0].layout, l, ds->counts);
    ds->n_arrays = ds->counts[0] + ds->counts[1] + ds->counts[2];
    if (!ds->counts[0]) {
        rc = djct_error_set(DJCT_EINVAL, "dataset: '%s' has no feature array", ds->files[0].path);
        goto fail;
    }
    if (!(ds->lay = calloc(ds->n_arrays, sizeof(*ds->lay))) ||
        !(ds->row_values = calloc(ds->n_arrays, sizeof(size_t))) || !(ds->ragged = calloc(ds->n_arrays, sizeof(int))) ||
        !(ds->cnt = malloc((size_t)(ds->N + 1) * sizeof(int64_t))) || !(ds->fbytes = calloc(ds->nf, sizeof(size_t)))) {
        rc = djct_error_oom();
        goto fail;
    }
    int any_ragged = 0;
    for (int c = 0, k = 0; c < 3; c++)
        for (size_t i = 0; i < ds->counts[c]; i++, k++) {
            const djct_array *a = &l[c][i];
            ds->lay[k] = a;
            ds->ragged[k] = layout_ragged(a);
            any_ragged |= ds->ragged[k];
            size_t rv = 1;
            for (int d = ds->ragged[k] ? 2 : 1; d < a->ndim; d++)
                rv *= (size_t)a->shape[d];
            ds->row_values[k] = rv;
        }
    for (size_t f = 0; f < ds->nf; f++) { /* what a decoded file takes in the cache (dataset_cache.c) */
        const djct_array *fl[3];
        size_t fn[3];
        dataset_layout_lists(&ds->files[f].layout, fl, fn);
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < fn[c]; i++) {
                const djct_array *a = &fl[c][i];
                int rg = layout_ragged(a);
                size_t rv = 1;
                for (int d = rg ? 2 : 1; d < a->ndim; d++)
                    rv *= (size_t)a->shape[d];
                ds->fbytes[f] += (size_t)(rg ? -a->shape[1] : a->shape[0]) * rv * djct_dtype_size(a->dtype) +
                                 (rg ? (size_t)(a->shape[0] + 1) * sizeof(int64_t) : 0);
            }
    }
    for (size_t f = 0; f < ds->nf; f++)
        for (int64_t e = 0; e < ds->files[f].n_events; e++)
            ds->cnt[ds->first[f] + e] = any_ragged && ds->files[f].event_elements ? ds->files[f].event_elements[e]
                                                                                  : any_ragged ? 0 : 1;
    ds->by_elements = any_ragged && o.batch_elements > 0;
    if (any_ragged && o.batch_elements == 0 && o.batch_events == 0) {
        rc = djct_error_set(DJCT_EINVAL, "dataset: ragged data needs batch_elements > 0 (attempting empty split)");
        goto fail;
    }
    if ((rc = plan_epoch(ds, 0)) < 0 || (rc = dataset_pool_start(ds)) < 0 || (rc = dataset_pool_plan(ds)) < 0 ||
        (rc = dataset_start_prefetch(ds)) < 0)
        goto fail;
    *out = ds;
    return 0;
fail:
    djct_dataset_free(ds);
    return rc;
}

int djct_dataset_open(djct_dataset **out, const char *spec, const djct_dataset_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(spec);
    strlist l = {0};
    char *copy = strdup(spec), *save = NULL;
    int rc = copy ? 0 : djct_error_oom();
    for (char *e = copy ? strtok_r(copy, ",", &save) : NULL; e && rc == 0; e = strtok_r(NULL, ",", &save))
        if (*e)
            rc = dataset_list_add(&l, e);
    free(copy);
    if (rc == 0 && l.n == 0)
        rc = djct_error_set(DJCT_EINVAL, "dataset: spec '%s' names no file", spec);
    if (rc == 0)
        rc = djct_dataset_open_files(out, (const char *const *)l.p, l.n, opts);
    dataset_list_free(&l);
    return rc;
}

size_t djct_dataset_n_files(const djct_dataset *ds) { return ds ? ds->nf : 0; }
int64_t djct_dataset_n_events(const djct_dataset *ds) { return ds ? ds->N : 0; }
const djct_file_meta *djct_dataset_file(const djct_dataset *ds, size_t i) { return ds && i < ds->nf ? &ds->files[i] : NULL; }
const int64_t *djct_dataset_event_elements(const djct_dataset *ds) { return ds ? ds->cnt : NULL; }
int djct_dataset_counts_elements(const djct_dataset *ds) { return ds ? ds->by_elements : 0; }
int64_t djct_dataset_steps(const djct_dataset *ds) { return ds ? ds->plan.steps : 0; }
int64_t djct_dataset_epoch(const djct_dataset *ds) { return ds ? ds->plan.epoch : 0; }
int64_t djct_dataset_position(const djct_dataset *ds) { return ds ? ds->cursor : 0; }
double djct_dataset_wait_seconds(const djct_dataset *ds) { return ds ? ds->wait_total : 0; }
double djct_dataset_last_wait_seconds(const djct_dataset *ds) { return ds ? ds->wait_last : 0; }

int djct_dataset_seek(djct_dataset *ds, int64_t epoch, int64_t step)
{
    DJCT_CHECK_ARG(ds);
    if (epoch < 0)
        return djct_error_set(DJCT_EINVAL, "dataset: epoch %" PRId64 " is negative", epoch);
    if (epoch == ds->plan.epoch && step == ds->cursor) {
        /* already there (open, then begin_epoch(0)): what is in flight is what comes next */
        pthread_mutex_lock(&ds->mu);
        int healthy = !ds->err;
        pthread_mutex_unlock(&ds->mu);
        if (healthy)
            return 0;
    }
    dataset_stop_prefetch(ds);
    dataset_pool_reset(ds);
    int rc;
    if (epoch != ds->plan.epoch && ((rc = plan_epoch(ds, epoch)) < 0 || (rc = dataset_pool_plan(ds)) < 0))
        return rc;
    if (step < 0 || step > ds->plan.steps)
        return djct_error_set(DJCT_EINVAL, "dataset: step %" PRId64 " outside 0..%" PRId64 " of epoch %" PRId64,
                              step, ds->plan.steps, epoch);
    ds->cursor = step;
    return dataset_start_prefetch(ds);
}

int djct_dataset_begin_epoch(djct_dataset *ds, int64_t epoch) { return djct_dataset_seek(ds, epoch, 0); }

int djct_dataset_next(djct_dataset *ds, djct_batch **out)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(out);
    *out = NULL;
    double t0 = djct_now_s(), t1;
    bint *b = NULL;
    int rc = 0;
    if (ds->cursor >= ds->plan.steps) {
        ds->wait_last = 0;
        return 0;
    }
    if (!ds->running) {
        if ((rc = dataset_build_batch(ds, ds->cursor, &b)) < 0)
            return rc;
        t1 = djct_now_s();
    } else {
        pthread_mutex_lock(&ds->mu);
        while (ds->qcount == 0 && !ds->done && !ds->err)
            pthread_cond_wait(&ds->cv_item, &ds->mu);
        /* the wait ends when a batch is there; waking the producer below is hand-off cost */
        t1 = djct_now_s();
        if (ds->qcount) {
            b = ds->q[ds->qhead];
            ds->qhead = (ds->qhead + 1) % ds->o.prefetch_depth;
            ds->qcount--;
            pthread_cond_broadcast(&ds->cv_space);
        } else if (ds->err)
            rc = djct_error_set(ds->err, "%s", ds->errmsg);
        else
            rc = djct_error_set(DJCT_ERROR, "dataset: prefetch ended before step %" PRId64, ds->cursor);
        pthread_mutex_unlock(&ds->mu);
        if (rc < 0)
            return rc;
    }
    ds->wait_last = t1 - t0;
    ds->wait_total += ds->wait_last;
    b->b.wait_seconds = ds->wait_last;
    ds->cursor++;
    *out = &b->b;
    return 0;
}

int djct_dataset_plan_stats(const djct_dataset *ds, djct_plan_stats *out)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(out);
    *out = ds->plan.stats;
    return 0;
}

int djct_dataset_plan_elements(const djct_dataset *ds, const int64_t **elements, int64_t *steps, int *world_size)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(elements);
    *elements = ds->plan.bin_elements;
    if (steps)
        *steps = ds->plan.steps;
    if (world_size)
        *world_size = ds->o.world_size;
    return 0;
}

int djct_dataset_describe_events(const djct_dataset *ds, const int64_t *ids, size_t n, char *buf, size_t cap)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(buf);
    if (cap == 0)
        return djct_error_set(DJCT_EINVAL, "djct_dataset_describe_events: cap 0");
    buf[0] = '\0';
    if (n && !ids)
        return djct_error_set(DJCT_EINVAL, "invalid argument: ids");
    size_t len = 0, i = 0;
    int more = 0;
    /* "'a.h5' events 3-5, 9; 'b.h5' event 0": runs of consecutive ids, file by file */
    while (i < n && !more) {
        int64_t id = ids[i];
        if (id < 0 || id >= ds->first[ds->nf])
            return djct_error_set(DJCT_EINVAL, "dataset: event id %" PRId64 " outside 0..%" PRId64, id,
                                  ds->first[ds->nf] - 1);
        size_t f = 0;
        while (f + 1 < ds->nf && ds->first[f + 1] <= id)
            f++;
        size_t j = i; /* the ids of file f */
        while (j < n && ids[j] >= ds->first[f] && ids[j] < ds->first[f + 1])
            j++;
        char part[4400];
        size_t pl = (size_t)snprintf(part, sizeof(part), "%s'%s' event%s ", len ? "; " : "", ds->files[f].path,
                                     j - i > 1 ? "s" : "");
        for (size_t k = i; k < j && pl < sizeof(part) - 48;) {
            size_t e = k;
            while (e + 1 < j && ids[e + 1] == ids[e] + 1)
                e++;
            int64_t a = ids[k] - ds->first[f], b = ids[e] - ds->first[f];
            pl += a == b ? (size_t)snprintf(part + pl, sizeof(part) - pl, "%s%" PRId64, k > i ? ", " : "", a)
                         : (size_t)snprintf(part + pl, sizeof(part) - pl, "%s%" PRId64 "-%" PRId64, k > i ? ", " : "", a, b);
            k = e + 1;
            if (k < j && pl >= sizeof(part) - 48) {
                snprintf(part + pl, sizeof(part) - pl, ", ...");
                break;
            }
        }
        if (len + strlen(part) + 8 >= cap) {
            more = 1;
            break;
        }
        memcpy(buf + len, part, strlen(part) + 1);
        len += strlen(part);
        i = j;
    }
    if (more && len + 6 < cap)
        memcpy(buf + len, len ? "; ..." : "...", len ? 6 : 4);
    return 0;
}

int djct_dataset_plan_events(const djct_dataset *ds, int64_t step, int rank, const int64_t **events, size_t *n_events)
{
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(events);
    DJCT_CHECK_ARG(n_events);
    if (step < 0 || step >= ds->plan.steps || rank < 0 || rank >= ds->o.world_size)
        return djct_error_set(DJCT_EINVAL, "dataset: step %" PRId64 " / rank %d outside the plan (%" PRId64
                              " steps, %d ranks)", step, rank, ds->plan.steps, ds->o.world_size);
    int64_t b = step * ds->o.world_size + rank;
    *events = ds->plan.events + ds->plan.bin_start[b];
    *n_events = (size_t)(ds->plan.bin_start[b + 1] - ds->plan.bin_start[b]);
    return 0;
}
