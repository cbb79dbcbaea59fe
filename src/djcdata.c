/* The djcdata .djcsa/.djctd reader (djcdata.md sections 1-8). It is sequential over a source
 * (djcdata_source.c: a memory image or a FILE) that checks every size against the bytes that
 * remain before allocating anything, so hostile sizes end in a one-line error "file 'X': byte N:
 * <where>: <what>" and never in a huge allocation. Value blocks can be skipped (metadata) or
 * decoded; row splits are always decoded and checked. The writer is djcdata_write.c. */
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct/qlz.h"
#include "djct_int.h"
#include "djcdata_int.h"
#include "qlz_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- records ----------------------------------------------------------------------------------- */

const char *const djcdata_containers[3] = {"features", "truths", "weights"};

static djct_array **cont_arr(djct_record *r, int c)
{
    return c == 0 ? &r->features : c == 1 ? &r->truths : &r->weights;
}
static size_t *cont_n(djct_record *r, int c)
{
    return c == 0 ? &r->n_features : c == 1 ? &r->n_truths : &r->n_weights;
}

/* One trainData record (section 5); `rec` is the record index for messages. */
static int read_record(src_t *s, djct_record *r, int mode, size_t rec)
{
    char where[64];
    int rc;
    uint64_t at;
    memset(r, 0, sizeof(*r));
    snprintf(where, sizeof(where), "record %zu", rec);
    if ((rc = djcdata_rd_version(s, NULL, where, "record version")))
        return rc;
    /* nested shape header: kept to compare with the arrays */
    uint64_t nsh[3] = {0, 0, 0};
    int32_t(*sh[3])[DJCDATA_MAX_NDIM + 1] = {NULL, NULL, NULL}; /* [k, dims...] */
    uint64_t at_sh[3][1];
    for (int c = 0; c < 3; c++) {
        char w[96];
        snprintf(w, sizeof(w), "record %zu %s shape header", rec, djcdata_containers[c]);
        at = s->pos;
        if ((rc = djcdata_rd_u64(s, &nsh[c], w, "count")))
            goto fail;
        if (nsh[c] > djcdata_src_left(s) / 8) {
            rc = djcdata_src_err(s, at, w, "count %" PRIu64 " exceeds what the %" PRIu64 " bytes left can hold", nsh[c],
                         djcdata_src_left(s));
            goto fail;
        }
        at_sh[c][0] = s->pos;
        if (nsh[c] && !(sh[c] = calloc((size_t)nsh[c], sizeof(*sh[c])))) {
            rc = djct_error_oom();
            goto fail;
        }
        for (uint64_t i = 0; i < nsh[c]; i++) {
            uint64_t k;
            at = s->pos;
            if ((rc = djcdata_rd_u64(s, &k, w, "ndim")))
                goto fail;
            if (k > DJCDATA_MAX_NDIM) {
                rc = djcdata_src_err(s, at, w, "shape %" PRIu64 " has %" PRIu64 " dimensions (at most %d)", i, k, DJCDATA_MAX_NDIM);
                goto fail;
            }
            sh[c][i][0] = (int32_t)k;
            for (uint64_t j = 0; j < k; j++) {
                uint32_t d;
                if ((rc = djcdata_rd_u32(s, &d, w, "dimension")))
                    goto fail;
                sh[c][i][1 + j] = (int32_t)d;
            }
        }
    }
    for (int c = 0; c < 3; c++) {
        char w[96];
        uint64_t n;
        snprintf(w, sizeof(w), "record %zu %s", rec, djcdata_containers[c]);
        at = s->pos;
        if ((rc = djcdata_rd_u64(s, &n, w, "array count")))
            goto fail;
        if (n != nsh[c]) {
            rc = djcdata_src_err(s, at, w, "%" PRIu64 " arrays but the shape header lists %" PRIu64, n, nsh[c]);
            goto fail;
        }
        if (n && !(*cont_arr(r, c) = calloc((size_t)n, sizeof(djct_array)))) {
            rc = djct_error_oom();
            goto fail;
        }
        for (uint64_t i = 0; i < n; i++) {
            djct_array *a = &(*cont_arr(r, c))[i];
            uint64_t at_a = s->pos;
            if (s->lay) /* the flat index of this array */
                s->lay->cur_flat = (c > 0 ? r->n_features : 0) + (c > 1 ? r->n_truths : 0) + (size_t)i;
            if ((rc = djcdata_read_array(s, a, mode, djcdata_containers[c], (size_t)i, rec)))
                goto fail;
            (*cont_n(r, c))++;
            int same = sh[c][i][0] == a->ndim;
            for (int j = 0; same && j < a->ndim; j++)
                same = sh[c][i][1 + j] == a->shape[j];
            if (!same) {
                char aw[200];
                djcdata_array_where(aw, sizeof(aw), djcdata_containers[c], (size_t)i, rec, a->name);
                rc = djcdata_src_err(s, at_a, aw, "shape differs from the record's shape header (byte %" PRIu64 ")",
                             at_sh[c][0]);
                goto fail;
            }
        }
    }
    /* every array of a record describes the same events */
    int64_t nev = -1;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < *cont_n(r, c); i++) {
            djct_array *a = &(*cont_arr(r, c))[i];
            if (nev < 0) {
                nev = a->shape[0];
            } else if (a->shape[0] != nev) {
                char aw[200];
                djcdata_array_where(aw, sizeof(aw), djcdata_containers[c], i, rec, a->name);
                rc = djcdata_src_err(s, s->pos, aw, "has %" PRId64 " events (shape[0]) but the record's first array has %" PRId64,
                             a->shape[0], nev);
                goto fail;
            }
        }
    for (int c = 0; c < 3; c++)
        free(sh[c]);
    return 0;
fail:
    for (int c = 0; c < 3; c++)
        free(sh[c]);
    djct_record_clear(r);
    return rc;
}

/* can array b be appended to array a (section 5)? */
static int compatible(src_t *s, const djct_array *a, const djct_array *b, const char *cont, size_t i, size_t rec)
{
    char w[200];
    djcdata_array_where(w, sizeof(w), cont, i, rec, a->name);
    int ra = a->n_row_splits > 0, rb = b->n_row_splits > 0;
    if (a->dtype != b->dtype || a->ndim != b->ndim || ra != rb)
        return djcdata_src_err(s, s->pos, w, "cannot be appended to record 0's: %s %dd %s vs %s %dd %s",
                       djct_dtype_name(b->dtype), b->ndim, rb ? "ragged" : "regular", djct_dtype_name(a->dtype),
                       a->ndim, ra ? "ragged" : "regular");
    for (int d = ra ? 2 : 1; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return djcdata_src_err(s, s->pos, w, "inner dimension %d is %" PRId64 ", record 0 has %" PRId64, d, b->shape[d],
                           a->shape[d]);
    return 0;
}

static int records_compatible(src_t *s, const djct_record *first, const djct_record *r, size_t rec)
{
    for (int c = 0; c < 3; c++) {
        if (ccont_n(first, c) != ccont_n(r, c))
            return djcdata_src_err(s, s->pos, "record", "record %zu has %zu %s arrays, record 0 has %zu", rec,
                           ccont_n(r, c), djcdata_containers[c], ccont_n(first, c));
        for (size_t i = 0; i < ccont_n(r, c); i++) {
            int rc = compatible(s, &ccont_arr(first, c)[i], &ccont_arr(r, c)[i], djcdata_containers[c], i, rec);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* append b's events to a (names from a); b is consumed (values/row splits moved or freed) */
static int append_array(djct_array *a, djct_array *b)
{
    size_t es = 4;
    if (b->values && b->n_values) { /* (metadata reads have no values) */
        void *v = realloc(a->values, (a->n_values + b->n_values) * es);
        if (!v)
            return djct_error_oom();
        memcpy((char *)v + a->n_values * es, b->values, b->n_values * es);
        a->values = v;
    }
    if (a->n_row_splits) {
        size_t na = a->n_row_splits, nb = b->n_row_splits;
        if (a->row_splits && b->row_splits) {
            int64_t *rs = realloc(a->row_splits, (na + nb - 1) * sizeof(int64_t));
            if (!rs)
                return djct_error_oom();
            int64_t last = rs[na - 1];
            for (size_t i = 1; i < nb; i++)
                rs[na - 1 + i] = b->row_splits[i] + last;
            a->row_splits = rs;
        }
        a->n_row_splits = na + nb - 1;
        a->shape[1] += b->shape[1];
    }
    a->shape[0] += b->shape[0];
    a->n_values += b->n_values;
    djct_array_clear(b);
    return 0;
}

/* per-event element counts of one record: sum over its distinct row-split vectors */
static int record_event_elements(const djct_record *r, int64_t *out, int64_t nev, int *any)
{
    const djct_array *seen[3 * 64];
    size_t nseen = 0;
    *any = 0;
    for (int64_t e = 0; e < nev; e++)
        out[e] = 0;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < ccont_n(r, c); i++) {
            const djct_array *a = &ccont_arr(r, c)[i];
            if (!a->row_splits)
                continue;
            *any = 1;
            int dup = 0;
            for (size_t k = 0; k < nseen && !dup; k++)
                dup = seen[k]->n_row_splits == a->n_row_splits &&
                      !memcmp(seen[k]->row_splits, a->row_splits, a->n_row_splits * sizeof(int64_t));
            if (dup)
                continue;
            if (nseen < DJCT_ARRAY_LEN(seen))
                seen[nseen++] = a;
            for (int64_t e = 0; e < nev && (size_t)e + 1 < a->n_row_splits; e++)
                out[e] += a->row_splits[e + 1] - a->row_splits[e];
        }
    return 0;
}

static int64_t record_events(const djct_record *r)
{
    for (int c = 0; c < 3; c++)
        if (ccont_n(r, c))
            return ccont_arr(r, c)[0].shape[0];
    return 0;
}

/* ---- whole files ---- */

static int is_djcsa_name(const char *p)
{
    size_t n = strlen(p);
    return n >= 6 && !strcmp(p + n - 6, ".djcsa");
}

/* .djcsa body: file version + one array, nothing after it */
static int parse_djcsa(src_t *s, djct_array *a, int mode)
{
    int rc;
    if ((rc = djcdata_rd_version(s, NULL, "djcsa header", "file version")))
        return rc;
    if ((rc = djcdata_read_array(s, a, mode, "features", 0, 0)))
        return rc;
    if (s->pos != s->size) {
        rc = djcdata_src_err(s, s->pos, "djcsa", "%" PRIu64 " trailing bytes after the array", s->size - s->pos);
        djct_array_clear(a);
        return rc;
    }
    return 0;
}

/* every record of a .djctd, concatenated (mode FULL/META) into *out; *nrec counts them.
 * With meta != NULL, per-event element counts are accumulated there. */
static int parse_djctd(src_t *s, djct_record *out, int mode, size_t *nrec, djct_file_meta *meta)
{
    int rc = 0;
    size_t rec = 0;
    djct_record r;
    memset(out, 0, sizeof(*out));
    if (s->size == 0)
        return djcdata_src_err(s, 0, "record 0", "file is empty");
    int64_t *ee = NULL;
    size_t nee = 0;
    int any_ragged = 0;
    while (s->pos < s->size) {
        if ((rc = read_record(s, &r, mode, rec)))
            goto fail;
        if (rec > 0 && (rc = records_compatible(s, out, &r, rec))) {
            djct_record_clear(&r);
            goto fail;
        }
        if (meta) {
            int64_t nev = record_events(&r);
            int any;
            int64_t *t = realloc(ee, ((size_t)nee + (size_t)nev + 1) * sizeof(int64_t));
            if (!t) {
                djct_record_clear(&r);
                rc = djct_error_oom();
                goto fail;
            }
            ee = t;
            record_event_elements(&r, ee + nee, nev, &any);
            nee += (size_t)nev;
            any_ragged |= any;
        }
        if (rec == 0) {
            *out = r;
        } else {
            for (int c = 0; c < 3; c++)
                for (size_t i = 0; i < *cont_n(out, c); i++)
                    if ((rc = append_array(&(*cont_arr(out, c))[i], &(*cont_arr(&r, c))[i]))) {
                        djct_record_clear(&r);
                        goto fail;
                    }
            djct_record_clear(&r);
        }
        rec++;
    }
    *nrec = rec;
    if (meta) {
        meta->n_events = (int64_t)nee;
        if (any_ragged) {
            meta->event_elements = ee;
            meta->n_elements = 0;
            for (size_t i = 0; i < nee; i++)
                meta->n_elements += ee[i];
        } else {
            free(ee);
            meta->n_elements = (int64_t)nee;
        }
    }
    return 0;
fail:
    free(ee);
    djct_record_clear(out);
    return rc;
}

static int record_of_array(djct_record *out, djct_array *a)
{
    memset(out, 0, sizeof(*out));
    if (!(out->features = malloc(sizeof(djct_array)))) {
        djct_array_clear(a);
        return djct_error_oom();
    }
    out->features[0] = *a;
    out->n_features = 1;
    return 0;
}

static int sniff_djcsa(src_t *s)
{
    /* .djcsa starts with two version floats; a .djctd with a version and a u64 count */
    unsigned char b[8];
    if (s->size < 8)
        return 0;
    if (s->mem)
        memcpy(b, s->mem, 8);
    else if (fread(b, 1, 8, s->fp) != 8 || fseeko(s->fp, 0, SEEK_SET) != 0)
        return 0;
    uint32_t v = le32(b + 4);
    return v == DJCDATA_V20 || v == DJCDATA_V21;
}

/* a .djcsa or a .djctd: the content decides (as djct_format_detect); the name only for a file too
 * short to tell, which then fails with the message of the format it was meant to be */
static int is_djcsa(src_t *s, const char *path) { return s->size >= 8 ? sniff_djcsa(s) : is_djcsa_name(path); }

/* A whole file as one record: with `path`, a .djcsa (sniffed) is a record of its one array, read
 * whole; else every record of a .djctd, read in `mode`. */
static int parse_file(src_t *s, djct_record *out, const char *path, int mode)
{
    size_t n;
    memset(out, 0, sizeof(*out));
    if (path && is_djcsa(s, path)) {
        djct_array a;
        int rc = parse_djcsa(s, &a, MODE_FULL);
        return rc ? rc : record_of_array(out, &a);
    }
    return parse_djctd(s, out, mode, &n, NULL);
}

/* the source over the file at `path`, or (path NULL) over `len` bytes at `buf` named `name` */
static int open_src(src_t *s, const char *path, const void *buf, size_t len, const char *name)
{
    return path ? djcdata_src_open(s, path) : djcdata_src_mem(s, buf, len, name);
}

/* The public whole-file readers: a .djcsa's array into *arr when arr is given, else the file as a
 * record into *rec (parse_file). */
static int read_whole(djct_record *rec, djct_array *arr, const char *path, const void *buf, size_t len,
                      const char *name)
{
    src_t s;
    int rc = open_src(&s, path, buf, len, name);
    if (!rc)
        rc = arr ? parse_djcsa(&s, arr, MODE_FULL) : parse_file(&s, rec, path, MODE_FULL);
    djcdata_src_close(&s);
    return rc;
}

int djcdata_layout_pass(src_t *s, djct_record *out, const char *path)
{
    return parse_file(s, out, path, MODE_PARTS);
}

int djct_djcdata_read_mem(djct_record *out, const void *buf, size_t len, const char *name)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(buf || !len);
    return read_whole(out, NULL, NULL, buf, len, name);
}

int djct_djcsa_read_mem(djct_array *out, const void *buf, size_t len, const char *name)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(buf || !len);
    return read_whole(NULL, out, NULL, buf, len, name);
}

int djct_djcsa_read(djct_array *out, const char *path)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    return read_whole(NULL, out, path, NULL, 0, NULL);
}

int djct_djcdata_read(djct_record *out, const char *path)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    return read_whole(out, NULL, path, NULL, 0, NULL);
}

static int read_meta_int(djct_file_meta *out, src_t *s, int djcsa)
{
    int rc;
    if (djcsa) {
        djct_array a;
        if ((rc = parse_djcsa(s, &a, MODE_META)))
            return rc;
        out->format = DJCT_FORMAT_DJCSA;
        out->n_records = 1;
        out->n_events = a.shape[0];
        if (a.row_splits) {
            if (!(out->event_elements = malloc(((size_t)a.shape[0] + 1) * sizeof(int64_t)))) {
                djct_array_clear(&a);
                return djct_error_oom();
            }
            for (int64_t e = 0; e < a.shape[0]; e++)
                out->event_elements[e] = a.row_splits[e + 1] - a.row_splits[e];
            out->n_elements = -a.shape[1];
        } else {
            out->n_elements = a.shape[0];
        }
        free(a.row_splits);
        a.row_splits = NULL;
        return record_of_array(&out->layout, &a);
    }
    out->format = DJCT_FORMAT_DJCTD;
    if ((rc = parse_djctd(s, &out->layout, MODE_META, &out->n_records, out)))
        return rc;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < *cont_n(&out->layout, c); i++) {
            djct_array *a = &(*cont_arr(&out->layout, c))[i];
            free(a->row_splits);
            a->row_splits = NULL;
        }
    return 0;
}

/* The metadata of the file at `path` (its format sniffed), or of `len` bytes at `buf` named
 * `name` in the format `djcsa` says. */
static int read_meta_whole(djct_file_meta *out, const char *path, const void *buf, size_t len, int djcsa,
                           const char *name)
{
    memset(out, 0, sizeof(*out));
    src_t s;
    int rc = open_src(&s, path, buf, len, name);
    if (!rc && path)
        djcsa = is_djcsa(&s, path);
    if (!rc && !(out->path = strdup(s.name)))
        rc = djct_error_oom();
    if (!rc)
        rc = read_meta_int(out, &s, djcsa);
    djcdata_src_close(&s);
    if (rc)
        djct_file_meta_clear(out);
    return rc;
}

int djct_djcdata_read_meta(djct_file_meta *out, const char *path)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    return read_meta_whole(out, path, NULL, 0, 0, NULL);
}

int djct_djcdata_read_meta_mem(djct_file_meta *out, const void *buf, size_t len, djct_format format,
                               const char *name)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(buf || !len);
    if (format != DJCT_FORMAT_DJCTD && format != DJCT_FORMAT_DJCSA)
        return djct_error_set(DJCT_EINVAL, "djct_djcdata_read_meta_mem: format must be DJCT_FORMAT_DJCTD or DJCT_FORMAT_DJCSA");
    return read_meta_whole(out, NULL, buf, len, format == DJCT_FORMAT_DJCSA, name);
}

int djct_djcdata_count_records(size_t *n_records, const char *path)
{
    DJCT_CHECK_ARG(n_records);
    DJCT_CHECK_ARG(path);
    src_t s;
    int rc = djcdata_src_open(&s, path);
    if (!rc) {
        if (is_djcsa(&s, path)) {
            *n_records = 1;
        } else {
            size_t rec = 0;
            djct_record r;
            while (!rc && s.pos < s.size) {
                if (!(rc = read_record(&s, &r, MODE_SKIP, rec)))
                    rec++;
                djct_record_clear(&r);
            }
            if (!rc && rec == 0)
                rc = djcdata_src_err(&s, 0, "record 0", "file is empty");
            *n_records = rec;
        }
    }
    djcdata_src_close(&s);
    return rc;
}

int djct_djcdata_read_record(djct_record *out, const char *path, size_t index)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    memset(out, 0, sizeof(*out));
    src_t s;
    int rc = djcdata_src_open(&s, path);
    if (!rc) {
        if (is_djcsa(&s, path)) {
            djct_array a;
            if (index != 0)
                rc = djct_error_set(DJCT_EINVAL, "file '%s': record %zu requested, a .djcsa has only record 0",
                                    path, index);
            else if (!(rc = parse_djcsa(&s, &a, MODE_FULL)))
                rc = record_of_array(out, &a);
        } else {
            djct_record r;
            for (size_t rec = 0; !rc && rec < index; rec++) {
                if (s.pos >= s.size)
                    rc = djct_error_set(DJCT_EINVAL, "file '%s': record %zu requested, the file has %zu", path,
                                        index, rec);
                else
                    rc = read_record(&s, &r, MODE_SKIP, rec);
                djct_record_clear(&r);
            }
            if (!rc && s.pos >= s.size)
                rc = djct_error_set(DJCT_EINVAL, "file '%s': record %zu requested, the file has %zu", path, index,
                                    index);
            if (!rc)
                rc = read_record(&s, out, MODE_FULL, index);
        }
    }
    djcdata_src_close(&s);
    return rc;
}

int djcdata_check_appendable(const char *path, const void *buf, size_t len)
{
    src_t s;
    djct_record first;
    int rc;
    if (!(rc = djcdata_src_open(&s, path))) {
        if (!(rc = read_record(&s, &first, MODE_SKIP, 0))) {
            djct_record mine;
            src_t m;
            if (!(rc = djcdata_src_mem(&m, buf, len, path))) {
                if (!(rc = read_record(&m, &mine, MODE_SKIP, 1)))
                    rc = records_compatible(&m, &first, &mine, 1);
                djct_record_clear(&mine);
            }
            djcdata_src_close(&m);
            djct_record_clear(&first);
        }
    }
    djcdata_src_close(&s);
    return rc;
}

djct_format djct_djcdata_format_of(const char *path)
{
    djct_format f = DJCT_FORMAT_UNKNOWN;
    return path && djct_format_detect(&f, path) == 0 ? f : DJCT_FORMAT_UNKNOWN;
}

