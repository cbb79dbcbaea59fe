/* Prediction (include/djct/predict.h, docs/predict.md): every rank runs the model over its
 * contiguous shard of the input, appends each batch's outputs and event ids to its part file, and
 * rank 0 joins the parts in rank order into the output (a temporary name, then a rename).
 * Invariants: rank r's part holds the events of its shard in input order, so the joined parts are
 * the input's order; every decision that must agree (the outputs' kinds, stopping on an error,
 * the verdict) comes from a collective all ranks reach, so a failing rank never strands the
 * others: after an error every rank stops at the next step and reports the first failing rank's
 * message. The parts: predict_kinds.c (output kinds, the options' lists), predict_parts.c (part
 * files and the join). */
#include "djct/predict.h"
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct/h5.h"
#include "comm_int.h"
#include "djct_int.h"
#include "predict_int.h"
#include "util_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MSG_BYTES 1024

static const char *kind_word(int k) { return k == DJCT_OUTPUT_EVENT ? "per event" : "per element"; }

/* ---- options ----------------------------------------------------------------------------- */


int djct_predict_options_check(const djct_predict_options *o)
{
    DJCT_CHECK_ARG(o);
    DJCT_CHECK_VERSION(o, DJCT_PREDICT_OPTIONS_VERSION, "djct_predict_options");
    if (!o->out_path || !*o->out_path)
        return djct_error_set(DJCT_EINVAL, "predict: no output file (out_path)");
    int f = o->format != DJCT_FORMAT_UNKNOWN ? o->format : (int)djct_format_from_name(o->out_path);
    if (o->format != DJCT_FORMAT_UNKNOWN && o->format != DJCT_FORMAT_H5 && o->format != DJCT_FORMAT_DJCTD)
        return djct_error_set(DJCT_EINVAL, "predict: format %d: predictions are written as HDF5 or .djctd", o->format);
    if (f != DJCT_FORMAT_H5 && f != DJCT_FORMAT_DJCTD) /* unknown, or a .djcsa (one array) */
        return djct_error_set(DJCT_EINVAL, "predict: output '%s': name it .h5, .hdf5 or .djctd, or give the format",
                              o->out_path);
    if (o->gzip_level < 0 || o->gzip_level > 9)
        return djct_error_set(DJCT_EINVAL, "predict: gzip level %d outside 0..9", o->gzip_level);
    djct_output_spec *s;
    size_t n;
    int rc = djct_output_specs_parse(&s, &n, o->output_kinds);
    djct_output_specs_free(s, n);
    if (rc)
        return rc;
    char **names;
    if ((rc = predict_split_list(&names, &n, o->output_names, "output names")))
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        for (size_t j = 0; j < i && rc == 0; j++)
            if (!strcmp(names[i], names[j]))
                rc = djct_error_set(DJCT_EINVAL, "output names '%s': '%s' is given twice", o->output_names, names[i]);
    predict_free_list(names, n);
    if (rc == 0 && n > DJCT_PREDICT_MAX_OUTPUTS)
        rc = djct_error_set(DJCT_EINVAL, "output names: %zu names, at most %d outputs", n, DJCT_PREDICT_MAX_OUTPUTS);
    return rc;
}


/* ---- the run's state ------------------------------------------------------------------------ */

typedef struct {
    char  *name;
    double sum, weight;
} acc;

#define AMBIGUOUS 3 /* a step-0 code: the shape fits both kinds */

typedef struct {
    djct_model *m;
    djct_dataset *ds;
    djct_comm *comm;
    const djct_predict_options *o;
    int rank, world, format;
    djct_output_spec *specs;
    size_t nspecs;
    char **names;
    size_t nnames;
    /* the outputs, agreed after step 0 */
    size_t nout;
    int kinds[DJCT_PREDICT_MAX_OUTPUTS], feat[DJCT_PREDICT_MAX_OUTPUTS];
    /* this rank's part */
    predict_part part;
    int64_t part_events, part_elements, first_id, next_id;
    /* ids: per input file its first global event */
    int64_t *file_first;
    size_t nf;
    char **paths; /* borrowed from the dataset's file metadata */
    int32_t *ids;
    size_t ids_cap;
    djct_array arrays[DJCT_PREDICT_MAX_OUTPUTS + 3];
    char defname[DJCT_PREDICT_MAX_OUTPUTS][32]; /* output_0, ... */
    djct_array *targets;
    size_t targets_cap;
    /* evaluation */
    int any_loss;
    acc *accs;
    size_t nacc, acc_cap;
    int64_t cur_events;
    double loss_sum, loss_w;
    /* the first error of this rank */
    int err;
    char msg[MSG_BYTES];
} pstate;

static int fail(pstate *P, int rc)
{
    if (!P->err) {
        P->err = rc ? rc : DJCT_ERROR;
        snprintf(P->msg, sizeof(P->msg), "%s", djct_last_error());
    }
    return P->err;
}


/* ---- evaluation ------------------------------------------------------------------------------- */

static acc *acc_get(pstate *P, const char *name)
{
    for (size_t i = 0; i < P->nacc; i++)
        if (!strcmp(P->accs[i].name, name))
            return &P->accs[i];
    if (P->nacc == P->acc_cap) {
        size_t c = P->acc_cap ? 2 * P->acc_cap : 16;
        acc *n = realloc(P->accs, c * sizeof(acc));
        if (!n)
            return NULL;
        P->accs = n;
        P->acc_cap = c;
    }
    acc *a = &P->accs[P->nacc];
    if (!(a->name = strdup(name)))
        return NULL;
    a->sum = a->weight = 0;
    P->nacc++;
    return a;
}

static int on_metric(void *user, const char *name, double v)
{
    pstate *P = user;
    acc *a = acc_get(P, name);
    if (!a)
        return 1;
    if (isfinite(v)) {
        a->sum += v * (double)P->cur_events;
        a->weight += (double)P->cur_events;
    }
    return 0;
}

/* every rank's accumulators, merged in rank order (first appearance keeps module order) */
static int reduce_eval(pstate *P, djct_predict_result *out)
{
    size_t cap = 64 + P->nacc * 80;
    for (size_t i = 0; i < P->nacc; i++)
        cap += strlen(P->accs[i].name);
    char *mine = malloc(cap);
    int rc = 0, len = 0, *lens = calloc((size_t)P->world, sizeof(int)), *displs = calloc((size_t)P->world, sizeof(int));
    char *all = NULL;
    pstate M;
    memset(&M, 0, sizeof(M));
    if (!mine || !lens || !displs) {
        rc = djct_error_oom();
        goto done;
    }
    len = snprintf(mine, cap, "\t%.17g\t%.17g\n", P->loss_sum, P->loss_w); /* the loss has no name */
    for (size_t i = 0; i < P->nacc; i++)
        len += snprintf(mine + len, cap - (size_t)len, "%s\t%.17g\t%.17g\n", P->accs[i].name, P->accs[i].sum,
                        P->accs[i].weight);
    if ((rc = djct_comm_mpi_allgather(P->comm, &len, lens, 1, MPI_INT, "evaluation sizes")))
        goto done;
    size_t total = 0;
    for (int r = 0; r < P->world; r++) {
        displs[r] = (int)total;
        total += (size_t)lens[r];
    }
    if (!(all = malloc(total + 1))) {
        rc = djct_error_oom();
        goto done;
    }
    if ((rc = djct_comm_mpi_allgatherv(P->comm, mine, len, all, lens, displs, MPI_CHAR, "evaluation metrics")))
        goto done;
    all[total] = '\0';
    double lsum = 0, lw = 0;
    for (char *save = NULL, *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2)
            continue;
        *t1 = '\0';
        double s = strtod(t1 + 1, NULL), w = strtod(t2 + 1, NULL);
        if (!*line) {
            lsum += s;
            lw += w;
            continue;
        }
        acc *a = acc_get(&M, line);
        if (!a) {
            rc = djct_error_oom();
            goto done;
        }
        a->sum += s;
        a->weight += w;
    }
    out->loss = lw > 0 ? lsum / lw : NAN;
    if (M.nacc && (!(out->metric_names = calloc(M.nacc, sizeof(char *))) ||
                   !(out->metric_values = calloc(M.nacc, sizeof(double))))) {
        rc = djct_error_oom();
        goto done;
    }
    for (size_t i = 0; i < M.nacc; i++) {
        out->metric_names[i] = M.accs[i].name;
        M.accs[i].name = NULL;
        out->metric_values[i] = M.accs[i].weight > 0 ? M.accs[i].sum / M.accs[i].weight : NAN;
        out->n_metrics++;
    }
done:
    for (size_t i = 0; i < M.nacc; i++)
        free(M.accs[i].name);
    free(M.accs);
    free(mine);
    free(all);
    free(lens);
    free(displs);
    return rc;
}

/* ---- one batch -------------------------------------------------------------------------------- */

static int make_targets(pstate *P, const djct_record *b, const djct_array **t, size_t *n)
{
    size_t need = b->n_truths + b->n_weights;
    if (need > P->targets_cap) {
        djct_array *nv = realloc(P->targets, need * sizeof(djct_array));
        if (!nv)
            return djct_error_oom();
        P->targets = nv;
        P->targets_cap = need;
    }
    if (b->n_truths)
        memcpy(P->targets, b->truths, b->n_truths * sizeof(djct_array));
    if (b->n_weights)
        memcpy(P->targets + b->n_truths, b->weights, b->n_weights * sizeof(djct_array));
    *t = P->targets;
    *n = need;
    return 0;
}

static int forward(pstate *P, const djct_batch *b)
{
    const djct_record *r = &b->record;
    const djct_array *t = NULL;
    size_t nt = 0;
    int rc;
    if (P->o->with_targets) {
        if ((rc = make_targets(P, r, &t, &nt)))
            return rc;
        return djct_model_forward(P->m, r->features, r->n_features, t, nt);
    }
    if ((rc = djct_model_forward(P->m, r->features, r->n_features, NULL, 0)) == 0 || r->n_truths == 0)
        return rc;
    /* does it fail because it reads the targets? try once with them */
    char first[MSG_BYTES];
    snprintf(first, sizeof(first), "%s", djct_last_error());
    if (make_targets(P, r, &t, &nt) == 0 && djct_model_forward(P->m, r->features, r->n_features, t, nt) == 0)
        return djct_error_set(DJCT_EINVAL, "the model reads its targets although every LossModule and LoggingModule "
                              "is switched off: forward with targets None fails (%s) and with targets works; "
                              "predict with targets (djct_predict --with-targets) or let forward skip what needs "
                              "targets when they are None (docs/models.md)", first);
    return djct_error_set(rc, "%s", first);
}

/* check an output's rows against its agreed kind */
static int fits(pstate *P, size_t i, const int64_t *shape, int ndim, const djct_batch *b)
{
    const djct_array *f = b->record.features;
    int64_t want = P->kinds[i] == DJCT_OUTPUT_EVENT ? b->n_events : predict_elements_of(&f[P->feat[i]]);
    if (ndim >= 1 && shape[0] == want)
        return 0;
    char lab[160] = "";
    if (P->kinds[i] == DJCT_OUTPUT_ELEMENT)
        predict_feature_label(lab, sizeof(lab), f, P->feat[i]);
    return djct_error_set(DJCT_EINVAL, "output %zu has %" PRId64 " rows in the batch of events %" PRId64 "..%" PRId64
                          "; as a %s output%s%s it needs %" PRId64, i, ndim >= 1 ? shape[0] : 0, b->event_ids[0],
                          b->event_ids[b->n_events - 1], kind_word(P->kinds[i]), lab[0] ? " of " : "", lab, want);
}

static size_t file_of(const pstate *P, int64_t id)
{
    size_t lo = 0, hi = P->nf;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (P->file_first[mid] <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void set_ids(djct_array *a, const char *name, int32_t *v, int64_t E)
{
    memset(a, 0, sizeof(*a));
    a->name = (char *)name;
    a->dtype = DJCT_DTYPE_INT32;
    a->ndim = 1;
    a->shape[0] = E;
    a->values = v;
    a->n_values = (size_t)E;
}

/* the batch's outputs and ids as a record, appended to this rank's part */
static int write_batch(pstate *P, const djct_batch *b)
{
    int64_t E = b->n_events;
    const djct_record *in = &b->record;
    if ((size_t)(3 * E) > P->ids_cap) {
        int32_t *n = realloc(P->ids, (size_t)(3 * E) * sizeof(int32_t));
        if (!n)
            return djct_error_oom();
        P->ids = n;
        P->ids_cap = (size_t)(3 * E);
    }
    int32_t *eid = P->ids, *fidx = P->ids + E, *fev = P->ids + 2 * E;
    size_t f = file_of(P, b->event_ids[0]);
    for (int64_t e = 0; e < E; e++) {
        int64_t id = b->event_ids[e];
        while (f + 1 < P->nf && P->file_first[f + 1] <= id)
            f++;
        eid[e] = (int32_t)id;
        fidx[e] = (int32_t)f;
        fev[e] = (int32_t)(id - P->file_first[f]);
    }
    for (size_t i = 0; i < P->nout; i++) {
        const float *data = NULL;
        int64_t shape[DJCT_MAX_DIMS];
        int nd = 0, rc;
        if ((rc = djct_model_output(P->m, i, &data, shape, &nd)))
            return rc;
        djct_array *a = &P->arrays[i];
        memset(a, 0, sizeof(*a));
        if (P->names)
            a->name = P->names[i];
        else {
            snprintf(P->defname[i], sizeof(P->defname[i]), "output_%zu", i);
            a->name = P->defname[i];
        }
        a->dtype = DJCT_DTYPE_FLOAT32;
        a->values = (void *)data;
        a->n_values = 1;
        for (int d = 0; d < nd; d++)
            a->n_values *= (size_t)shape[d];
        if (P->kinds[i] == DJCT_OUTPUT_ELEMENT) {
            if (nd + 1 > DJCT_MAX_DIMS)
                return djct_error_set(DJCT_EINVAL, "output %zu has %d dimensions; a per-element output can have %d",
                                      i, nd, DJCT_MAX_DIMS - 1);
            const djct_array *src = &in->features[P->feat[i]];
            a->ndim = nd + 1;
            a->shape[0] = E;
            a->shape[1] = -shape[0];
            for (int d = 1; d < nd; d++)
                a->shape[d + 1] = shape[d];
            a->row_splits = src->row_splits;
            a->n_row_splits = src->n_row_splits;
        } else {
            a->ndim = nd;
            memcpy(a->shape, shape, sizeof(int64_t) * (size_t)nd);
        }
    }
    djct_array *ids = P->arrays + P->nout;
    set_ids(&ids[0], DJCT_PREDICT_EVENT_ID, eid, E);
    set_ids(&ids[1], DJCT_PREDICT_FILE_INDEX, fidx, E);
    set_ids(&ids[2], DJCT_PREDICT_FILE_EVENT, fev, E);
    if (P->part_events == 0) { /* the input files by index, once per part */
        ids[1].feature_names = P->paths;
        ids[1].n_feature_names = P->nf;
    }
    djct_record rec = {P->arrays, P->nout, ids, 3, NULL, 0};
    int rc = predict_part_append(&P->part, &rec);
    if (rc)
        return rc;
    P->part_events += E;
    P->part_elements += b->n_elements;
    return 0;
}

/* forward, then (step 0) the local codes for the kinds agreement or (later) the check against
 * the agreed kinds; evaluation and the batch's loss */
static int run_batch(pstate *P, const djct_batch *b, int64_t step, int *codes, double *loss)
{
    int rc;
    *loss = NAN;
    if (b->n_events > 0 && (b->event_ids[0] != (P->next_id < 0 ? b->event_ids[0] : P->next_id) ||
                            b->event_ids[b->n_events - 1] != b->event_ids[0] + b->n_events - 1))
        return djct_error_set(DJCT_EINVAL, "predict: the batch of step %" PRId64 " does not continue this rank's "
                              "events in order; open the dataset with shuffle DJCT_SHUFFLE_SHARDS", step);
    if ((rc = forward(P, b)))
        return rc;
    size_t n = djct_model_n_outputs(P->m);
    if (step == 0) {
        if (n == 0)
            return djct_error_set(DJCT_EINVAL, "forward returned no tensor (None); return the predictions");
        if (n > DJCT_PREDICT_MAX_OUTPUTS)
            return djct_error_set(DJCT_EINVAL, "forward returned %zu outputs; at most %d can be written", n,
                                  DJCT_PREDICT_MAX_OUTPUTS);
        if (P->nspecs && P->nspecs != n)
            return djct_error_set(DJCT_EINVAL, "%zu output kinds are given for the model's %zu outputs", P->nspecs, n);
        if (P->nnames && P->nnames != n)
            return djct_error_set(DJCT_EINVAL, "%zu output names are given for the model's %zu outputs", P->nnames, n);
        codes[1] = (int)n;
    } else if (n != P->nout) {
        return djct_error_set(DJCT_EINVAL, "forward returned %zu outputs at step %" PRId64 ", %zu at the first", n,
                              step, P->nout);
    }
    for (size_t i = 0; i < n; i++) {
        const float *data;
        int64_t shape[DJCT_MAX_DIMS];
        int nd = 0, kind, feature;
        if ((rc = djct_model_output(P->m, i, &data, shape, &nd)))
            return rc;
        if (step > 0) {
            if ((rc = fits(P, i, shape, nd, b)))
                return rc;
            continue;
        }
        if ((rc = djct_output_classify(i, shape, nd, b->record.features, b->record.n_features, b->n_events,
                                       P->nspecs ? &P->specs[i] : NULL, &kind, &feature)))
            return rc;
        codes[2 + 2 * i] = kind == DJCT_OUTPUT_AUTO ? AMBIGUOUS : kind;
        codes[3 + 2 * i] = feature;
    }
    if (P->o->with_targets) {
        P->cur_events = b->n_events;
        if (P->any_loss) {
            if ((rc = djct_model_sum_all_losses(P->m, loss)))
                return rc;
            if (isfinite(*loss)) {
                P->loss_sum += *loss * (double)b->n_events;
                P->loss_w += (double)b->n_events;
            }
        }
        if ((rc = djct_model_collect_metrics(P->m, on_metric, P)))
            return rc;
    }
    return 0;
}

/* the kinds every rank's first batch allows: one decision, the same on every rank. Returns 0,
 * 1 when a rank failed (every rank stops; the error agreement reports it), or an error that every
 * rank found alike. */
static int agree_kinds(pstate *P, const int *codes, int ncodes)
{
    int *all = malloc((size_t)P->world * (size_t)ncodes * sizeof(int));
    if (!all)
        return djct_error_oom();
    int rc = djct_comm_mpi_allgather(P->comm, codes, all, ncodes, MPI_INT, "output kinds");
    if (rc) {
        free(all);
        return rc;
    }
    int failed = 0, n = 0, n_rank = -1;
    for (int r = 0; r < P->world && rc == 0; r++) {
        const int *c = all + (size_t)r * (size_t)ncodes;
        failed |= !c[0];
        if (!c[0] || !c[1])
            continue;
        if (n && c[1] != n)
            rc = djct_error_set(DJCT_EINVAL, "forward returned %d outputs on rank %d and %d on rank %d", n, n_rank,
                                c[1], r);
        n = c[1];
        n_rank = n_rank < 0 ? r : n_rank;
    }
    if (failed || rc) {
        free(all);
        return failed ? 1 : rc;
    }
    P->nout = (size_t)n;
    for (int i = 0; i < n && rc == 0; i++) {
        int kind = 0, feat = -1, by = -1, amb_feat = -1;
        for (int r = 0; r < P->world && rc == 0; r++) {
            const int *c = all + (size_t)r * (size_t)ncodes;
            int k = c[1] ? c[2 + 2 * i] : 0, fe = c[3 + 2 * i];
            if (k == AMBIGUOUS)
                amb_feat = fe;
            if (k != DJCT_OUTPUT_EVENT && k != DJCT_OUTPUT_ELEMENT)
                continue;
            if (kind && (k != kind || fe != feat))
                rc = djct_error_set(DJCT_EINVAL, "output %d is %s%s on rank %d but %s%s on rank %d; a prediction "
                                    "output must be one or the other in every batch", i, kind_word(kind),
                                    kind == DJCT_OUTPUT_ELEMENT ? " (of another array)" : "", by, kind_word(k),
                                    k == DJCT_OUTPUT_ELEMENT ? " (of another array)" : "", r);
            kind = k;
            feat = fe;
            by = by < 0 ? r : by;
        }
        if (rc == 0 && !kind) {
            char lab[160];
            predict_feature_label(lab, sizeof(lab), djct_dataset_file(P->ds, 0)->layout.features, amb_feat);
            rc = djct_error_set(DJCT_EINVAL, "output %d: in the first batch of every rank its rows are both the events "
                                "and the elements of the ragged feature array %s (one element per event?); say "
                                "which with the output kinds (djct_predict --output-kinds event or element)", i, lab);
        }
        P->kinds[i] = kind;
        P->feat[i] = kind == DJCT_OUTPUT_ELEMENT ? feat : -1;
    }
    free(all);
    return rc;
}


/* ---- the whole run -------------------------------------------------------------------------------- */

static void free_state(pstate *P)
{
    djct_output_specs_free(P->specs, P->nspecs);
    predict_free_list(P->names, P->nnames);
    free(P->file_first);
    free(P->paths);
    free(P->ids);
    free(P->targets);
    for (size_t i = 0; i < P->nacc; i++)
        free(P->accs[i].name);
    free(P->accs);
}

static int setup(pstate *P)
{
    int rc;
    const djct_predict_options *o = P->o;
    if ((rc = djct_output_specs_parse(&P->specs, &P->nspecs, o->output_kinds)) ||
        (rc = predict_split_list(&P->names, &P->nnames, o->output_names, "output names")))
        return rc;
    int64_t N = djct_dataset_n_events(P->ds);
    if (N == 0)
        return djct_error_set(DJCT_EINVAL, "predict: the input has no events");
    if (N > INT32_MAX)
        return djct_error_set(DJCT_EINVAL, "predict: the input has %" PRId64 " events; the ids are int32 (at most "
                              "%d): predict parts of it", N, INT32_MAX);
    P->nf = djct_dataset_n_files(P->ds);
    if (!(P->file_first = calloc(P->nf + 1, sizeof(int64_t))) || !(P->paths = calloc(P->nf, sizeof(char *))))
        return djct_error_oom();
    for (size_t f = 0; f < P->nf; f++) {
        const djct_file_meta *fm = djct_dataset_file(P->ds, f);
        P->file_first[f + 1] = P->file_first[f] + fm->n_events;
        P->paths[f] = fm->path;
    }
    const djct_file_meta *f0 = djct_dataset_file(P->ds, 0);
    if (o->with_targets && f0->layout.n_truths == 0)
        return djct_error_set(DJCT_EINVAL, "predict: with targets, but '%s' has no truth arrays", f0->path);
    if ((rc = djct_model_train(P->m, 0)))
        return rc;
    if (!o->with_targets &&
        ((rc = djct_model_switch_all_logging(P->m, 0)) || (rc = djct_model_switch_all_losses(P->m, 0))))
        return rc;
    for (size_t i = 0; i < djct_model_n_logging_modules(P->m); i++) {
        int is_loss = 0, loss_on = 0;
        if (djct_model_logging_module(P->m, i, NULL, NULL, &is_loss, &loss_on) == 0 && is_loss && loss_on)
            P->any_loss = 1;
    }
    /* this rank's part, next to the output: created now, so an unwritable place fails at once */
    return predict_part_create(&P->part, o->out_path, P->rank, P->format);
}

/* the step loop: every rank takes every step (the plan pads), the vote of step s is completed at
 * step s + 1, so an error anywhere stops every rank one step later */
static void predict_steps(pstate *P, int64_t steps)
{
    djct_comm_request *vote = NULL;
    int all_ok = 1, voting = 0;
    int vrc = djct_comm_request_create(&vote, P->comm);
    if (vrc) {
        fail(P, vrc);
        steps = 0;
    }
    int ncodes = 2 + 2 * DJCT_PREDICT_MAX_OUTPUTS;
    int codes[2 + 2 * DJCT_PREDICT_MAX_OUTPUTS];
    for (int64_t s = 0; s < steps; s++) {
        if (voting) {
            int rc = djct_comm_wait(vote);
            voting = 0;
            if (rc)
                fail(P, rc);
            if (rc || !all_ok)
                break;
        }
        double t0 = djct_now_s(), w0 = djct_dataset_wait_seconds(P->ds), loss = NAN;
        djct_batch *b = NULL;
        memset(codes, 0, sizeof(codes));
        int rc = P->err ? P->err : djct_dataset_next(P->ds, &b);
        if (rc == 0 && !b)
            rc = djct_error_set(DJCT_ERROR, "predict: the data ended at step %" PRId64 " of %" PRId64, s, steps);
        if (rc == 0 && b->n_events > 0)
            rc = run_batch(P, b, s, codes, &loss);
        if (rc)
            fail(P, rc);
        int stop = 0;
        if (s == 0) {
            codes[0] = P->err == 0;
            int a = agree_kinds(P, codes, ncodes);
            if (a < 0)
                fail(P, a);
            stop = a != 0 || P->err; /* the same on every rank */
        }
        if (P->err == 0 && b && b->n_events > 0) {
            if ((rc = write_batch(P, b)))
                fail(P, rc);
            if (P->first_id < 0)
                P->first_id = b->event_ids[0];
            P->next_id = b->event_ids[b->n_events - 1] + 1;
        }
        if (P->err == 0 && P->o->callback) {
            djct_step_report r;
            memset(&r, 0, sizeof(r));
            r.step = s;
            r.steps = steps;
            r.global_step = s + 1;
            r.loss = loss;
            r.events = b ? b->n_events : 0;
            r.elements = b ? b->n_elements : 0;
            r.t_step = djct_now_s() - t0;
            r.t_data = djct_dataset_wait_seconds(P->ds) - w0;
            r.t_compute = r.t_step - r.t_data;
            r.events_per_s = r.t_step > 0 ? (double)r.events / r.t_step : 0;
            r.elements_per_s = r.t_step > 0 ? (double)r.elements / r.t_step : 0;
            P->o->callback(P->o->callback_user, &r);
        }
        djct_batch_release(P->ds, b);
        if (stop)
            break;
        all_ok = P->err == 0;
        char label[64];
        snprintf(label, sizeof(label), "prediction step %" PRId64 "'s vote", s);
        if ((rc = djct_comm_allreduce_start(vote, &all_ok, 1, DJCT_DTYPE_INT32, DJCT_COMM_REDUCE_MIN, label)))
            fail(P, rc);
        else
            voting = 1;
    }
    if (voting)
        djct_comm_wait(vote);
    djct_comm_request_free(vote);
}

/* every rank's verdict: 0, or the first failing rank's code and message on every rank */
static int agree_error(pstate *P, int local_rc)
{
    if (local_rc)
        fail(P, local_rc);
    int first = P->err ? P->rank : P->world;
    int rc = djct_comm_allreduce(P->comm, &first, 1, DJCT_DTYPE_INT32, DJCT_COMM_REDUCE_MIN, "prediction error agreement");
    if (rc)
        return rc;
    if (first == P->world)
        return 0;
    char buf[MSG_BYTES + 16];
    memcpy(buf, &P->err, sizeof(int));
    snprintf(buf + sizeof(int), MSG_BYTES, "%s", P->msg);
    if ((rc = djct_comm_bcast(P->comm, buf, sizeof(buf), first, "prediction error message")))
        return rc;
    int code;
    memcpy(&code, buf, sizeof(int));
    buf[sizeof(buf) - 1] = '\0';
    return djct_error_set(code < 0 ? code : DJCT_ERROR, "rank %d: %s", first, buf + sizeof(int));
}

int djct_predict(djct_model *m, djct_dataset *ds, djct_comm *comm, const djct_predict_options *o,
                 djct_predict_result *out)
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(ds);
    DJCT_CHECK_ARG(comm);
    DJCT_CHECK_ARG(out);
    int rc = djct_predict_options_check(o);
    if (rc)
        return rc;
    double t0 = djct_now_s();
    memset(out, 0, sizeof(*out));
    pstate *P = calloc(1, sizeof(*P));
    if (!P)
        return djct_error_oom();
    P->m = m;
    P->ds = ds;
    P->o = o;
    P->comm = comm;
    P->rank = djct_comm_rank(comm);
    P->world = djct_comm_size(comm);
    P->format = o->format != DJCT_FORMAT_UNKNOWN ? o->format : (int)djct_format_from_name(o->out_path);
    P->first_id = P->next_id = -1;
    int64_t steps = djct_dataset_steps(ds);
    int64_t *info = NULL;
    char **parts = NULL;
    size_t nparts = 0;

    rc = setup(P);
    if (rc)
        fail(P, rc);
    /* a rank whose setup failed still takes part in the step-0 agreement, then all stop */
    predict_steps(P, steps);
    rc = predict_part_close(&P->part);
    if ((rc = agree_error(P, rc)))
        goto out;

    /* the parts tile the input in order; the sizes */
    int64_t mine[4] = {P->part_events, P->first_id, P->next_id, P->part_elements};
    info = malloc((size_t)P->world * 4 * sizeof(int64_t));
    parts = calloc((size_t)P->world, sizeof(char *));
    if ((rc = agree_error(P, info && parts ? 0 : djct_error_oom())))
        goto out;
    if ((rc = djct_comm_mpi_allgather(P->comm, mine, info, 4, MPI_INT64_T, "prediction part sizes")))
        goto out;
    int64_t expect = 0, elements = 0, N = djct_dataset_n_events(ds);
    for (int r = 0; r < P->world && rc == 0; r++) {
        const int64_t *v = info + 4 * r;
        if (v[0] == 0)
            continue;
        if (v[1] != expect || v[2] - v[1] != v[0])
            rc = djct_error_set(DJCT_EINVAL, "predict: rank %d holds events %" PRId64 "..%" PRId64 ", expected the "
                                "next from %" PRId64 "; open the dataset with shuffle DJCT_SHUFFLE_SHARDS", r, v[1],
                                v[2] - 1, expect);
        expect = v[2];
        elements += v[3];
        size_t len = strlen(o->out_path) + 32;
        char *p = malloc(len);
        if (!p) {
            rc = djct_error_oom();
            break;
        }
        predict_part_name(p, len, o->out_path, r, P->format);
        parts[nparts++] = p;
    }
    if (rc == 0 && expect != N)
        rc = djct_error_set(DJCT_EINVAL, "predict: the ranks predicted %" PRId64 " of the input's %" PRId64 " events; "
                            "open the dataset with shuffle DJCT_SHUFFLE_SHARDS at its first epoch", expect, N);
    if (rc) /* every rank found the same */
        goto out;
    if (o->with_targets && (rc = agree_error(P, reduce_eval(P, out))))
        goto out;
    int any_ragged = 0;
    for (size_t i = 0; i < P->nout; i++)
        any_ragged |= P->kinds[i] == DJCT_OUTPUT_ELEMENT;
    if ((rc = agree_error(P, P->rank == 0 ? predict_parts_join(o->out_path, P->format, o->gzip_level, parts, nparts, any_ragged) : 0)))
        goto out;

    out->events = N;
    out->elements = elements;
    out->steps = steps;
    out->n_outputs = P->nout;
    if (!(out->output_names = calloc(P->nout, sizeof(char *))) || !(out->output_kinds = calloc(P->nout, sizeof(int))) ||
        !(out->output_ragged_like = calloc(P->nout, sizeof(char *)))) {
        rc = djct_error_oom();
        goto out;
    }
    const djct_file_meta *f0 = djct_dataset_file(ds, 0);
    for (size_t i = 0; i < P->nout; i++) {
        char def[32];
        snprintf(def, sizeof(def), "output_%zu", i);
        out->output_kinds[i] = P->kinds[i];
        if (!(out->output_names[i] = strdup(P->names ? P->names[i] : def))) {
            rc = djct_error_oom();
            goto out;
        }
        if (P->kinds[i] == DJCT_OUTPUT_ELEMENT) {
            const char *nm = f0->layout.features[P->feat[i]].name;
            if (!(out->output_ragged_like[i] = strdup(nm ? nm : ""))) {
                rc = djct_error_oom();
                goto out;
            }
        }
    }
out:
    predict_part_remove(&P->part);
    for (size_t i = 0; i < nparts; i++)
        free(parts[i]);
    free(parts);
    free(info);
    free_state(P);
    free(P);
    out->seconds = djct_now_s() - t0;
    if (rc) {
        char keep[MSG_BYTES];
        snprintf(keep, sizeof(keep), "%s", djct_last_error());
        djct_predict_result_clear(out);
        djct_error_set(rc, "%s", keep);
    }
    return rc;
}

void djct_predict_result_clear(djct_predict_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_outputs; i++) {
        if (r->output_names)
            free(r->output_names[i]);
        if (r->output_ragged_like)
            free(r->output_ragged_like[i]);
    }
    free(r->output_names);
    free(r->output_kinds);
    free(r->output_ragged_like);
    for (size_t i = 0; i < r->n_metrics; i++)
        free(r->metric_names[i]);
    free(r->metric_names);
    free(r->metric_values);
    memset(r, 0, sizeof(*r));
}
