/* Rank 0's sinks, fed by the writer thread under lg_sink_mu: the history row as JSON text into
 * the journal (history.jsonl, fsync'ed), summary.json (last value per key, rewritten at most once
 * a second), history.csv, the console, the uploader's notification; and config.json. */
#include "djct/error.h"
#include "djct_int.h"
#include "log_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_EVERY_S 1.0

static int str_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*len + n + 1) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return djct_error_oom();
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int append_key(char **buf, size_t *len, size_t *cap, const char *prefix, const char *name)
{
    char tmp[512];
    int n = snprintf(tmp + 1, sizeof(tmp) - 3, "%s%s", prefix, name);
    int plain = n > 0 && n < (int)sizeof(tmp) - 3;
    for (int i = 1; plain && i <= n; i++)
        plain = tmp[i] != '"' && tmp[i] != '\\' && (unsigned char)tmp[i] >= 0x20;
    if (plain) { /* the common case needs no escaping: skip cJSON's allocations */
        tmp[0] = '"';
        tmp[n + 1] = '"';
        return str_append(buf, len, cap, tmp, (size_t)n + 2);
    }
    snprintf(tmp, sizeof(tmp), "%s%s", prefix, name);
    cJSON *s = cJSON_CreateString(tmp);
    char *q = s ? cJSON_PrintUnformatted(s) : NULL;
    cJSON_Delete(s);
    if (!q)
        return djct_error_oom();
    int rc = str_append(buf, len, cap, q, strlen(q));
    free(q);
    return rc;
}

static int col_index(const char *name)
{
    for (int i = 0; i < g.ncols; i++)
        if (strcmp(g.cols[i], name) == 0)
            return i;
    return -1;
}

static int add_col(const char *name)
{
    char **nc = realloc(g.cols, sizeof(char *) * ((size_t)g.ncols + 1));
    if (!nc)
        return djct_error_oom();
    g.cols = nc;
    if (!(g.cols[g.ncols] = strdup(name)))
        return djct_error_oom();
    g.ncols++;
    return 0;
}

static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
}

typedef struct {
    char (*vals)[40];
} csv_row;

static void csv_collect(void *ctx, const char *key, double v)
{
    csv_row *r = ctx;
    int c = col_index(key);
    if (c < 0) {
        if (add_col(key) < 0)
            return;
        return; /* the header is rewritten by the caller once all columns are known */
    }
    jr_fmt_double(r->vals[c], 40, v);
}

/* Rewrite history.csv from history.jsonl: new columns appeared (rare: e.g. first validation). */
int lg_csv_rewrite(void)
{
    char path[4096], *text = NULL;
    snprintf(path, sizeof(path), "%s/%s", g.dir, JR_HISTORY);
    if (jr_read_file(path, &text, NULL) != 0)
        return djct_error_set(DJCT_EIO, "cannot re-read '%s' for history.csv", path);
    /* pass 1: all columns */
    csv_row r = {NULL};
    char *save = NULL;
    for (int pass = 0; pass < 2; pass++) {
        char *copy = strdup(text);
        if (!copy) {
            free(text);
            return djct_error_oom();
        }
        if (pass == 1) {
            snprintf(path, sizeof(path), "%s/%s", g.dir, JR_CSV);
            if (g.csv_f)
                fclose(g.csv_f);
            if (!(g.csv_f = fopen(path, "w"))) {
                free(copy);
                free(text);
                return djct_error_set(DJCT_EIO, "cannot write '%s': %s", path, strerror(errno));
            }
            for (int c = 0; c < g.ncols; c++) {
                if (c)
                    fputc(',', g.csv_f);
                csv_field(g.csv_f, g.cols[c]);
            }
            fputc('\n', g.csv_f);
        }
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            r.vals = calloc((size_t)g.ncols + 64, 40);
            if (!r.vals)
                break;
            jr_flat_parse(line, csv_collect, &r);
            if (pass == 1) {
                for (int c = 0; c < g.ncols; c++) {
                    if (c)
                        fputc(',', g.csv_f);
                    fputs(r.vals[c], g.csv_f);
                }
                fputc('\n', g.csv_f);
            }
            free(r.vals);
        }
        free(copy);
    }
    free(text);
    fflush(g.csv_f);
    return 0;
}

static int csv_row_write(const reduced *red, const char *prefix, int64_t step, double runtime, double ts)
{
    char name[512];
    int newcol = 0;
    const char *fixed[3] = {"_step", "_runtime", "_timestamp"};
    for (int i = 0; i < 3; i++)
        if (col_index(fixed[i]) < 0) {
            add_col(fixed[i]);
            newcol = 1;
        }
    for (int i = 0; i < red->n; i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, red->name[i]);
        if (col_index(name) < 0) {
            if (add_col(name) < 0)
                return DJCT_ENOMEM;
            newcol = 1;
        }
    }
    if (newcol || !g.csv_f)
        return lg_csv_rewrite();
    char (*vals)[40] = calloc((size_t)g.ncols, 40);
    if (!vals)
        return djct_error_oom();
    jr_fmt_double(vals[col_index("_step")], 40, (double)step);
    jr_fmt_double(vals[col_index("_runtime")], 40, runtime);
    jr_fmt_double(vals[col_index("_timestamp")], 40, ts);
    for (int i = 0; i < red->n; i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, red->name[i]);
        jr_fmt_double(vals[col_index(name)], 40, red->value[i]);
    }
    for (int c = 0; c < g.ncols; c++) {
        if (c)
            fputc(',', g.csv_f);
        fputs(vals[c], g.csv_f);
    }
    fputc('\n', g.csv_f);
    free(vals);
    fflush(g.csv_f);
    return 0;
}

/* summary.json: last value per key + _step/_runtime/_timestamp/_wandb.runtime, user overrides on top.
 * Values are kept as raw JSON text so NaN/Infinity survive as bare tokens. */
static void summary_put_raw(const char *key, const char *raw);

static void summary_fold(void *ctx, const char *key, double v)
{
    char num[64];
    if (strcmp(key, "_step") == 0)
        snprintf(num, sizeof(num), "%.0f", v);
    else
        jr_fmt_double(num, sizeof(num), v);
    summary_put_raw(key, num);
    if (strcmp(key, "_runtime") == 0) {
        snprintf(num, sizeof(num), "{\"runtime\":%.0f}", floor(v));
        summary_put_raw("_wandb", num);
    }
}

static void summary_member(void *ctx, const char *key, const char *raw, size_t len)
{
    char *v = strndup(raw, len);
    if (v)
        summary_put_raw(key, v);
    free(v);
}

int lg_summary_load(void)
{
    char path[4096], *text = NULL;
    snprintf(path, sizeof(path), "%s/%s", g.dir, JR_SUMMARY);
    int rc = jr_read_file(path, &text, NULL);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* none yet */
    rc = jr_object_members(text, summary_member, NULL);
    free(text);
    if (rc < 0) {
        char m[512];
        snprintf(m, sizeof(m), "%s", djct_last_error());
        return djct_error_set(DJCT_EINVAL, "'%s': %s; restore it or delete it (the summary then starts from this "
                              "job's rows)", path, m);
    }
    return 0;
}

static void summary_forget(void *ctx, const char *key, double v)
{
    (void)ctx;
    (void)v;
    cJSON_DeleteItemFromObjectCaseSensitive(g.summary, key);
    if (strcmp(key, "_runtime") == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(g.summary, "_wandb");
}

int lg_summary_rebuild(char *kept, char *moved)
{
    char *save = NULL;
    for (char *l = strtok_r(moved, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        jr_flat_parse(l, summary_forget, NULL);
    save = NULL;
    for (char *l = strtok_r(kept, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        jr_flat_parse(l, summary_fold, NULL);
    djct_error_clear();
    g.pending_len = 0;
    if (g.pending)
        g.pending[0] = '\0';
    return lg_summary_write(1);
}

int lg_summary_write(int do_fsync)
{
    /* fold the rows written since the last rewrite: last value per key wins */
    char *save = NULL;
    for (char *l = g.pending ? strtok_r(g.pending, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
        jr_flat_parse(l, summary_fold, NULL);
    g.pending_len = 0;
    if (g.pending)
        g.pending[0] = '\0';
    cJSON *s = cJSON_Duplicate(g.summary, 1);
    if (!s)
        return djct_error_oom();
    for (cJSON *it = g.summary_user ? g.summary_user->child : NULL; it; it = it->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(s, it->string);
        cJSON_AddItemToObject(s, it->string, cJSON_Duplicate(it, 1));
    }
    char *t = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    if (!t)
        return djct_error_oom();
    int rc = jr_write_atomic(g.dir, JR_SUMMARY, t, do_fsync);
    free(t);
    return rc;
}

static void summary_put_raw(const char *key, const char *raw)
{
    cJSON_DeleteItemFromObjectCaseSensitive(g.summary, key);
    cJSON_AddRawToObject(g.summary, key, raw);
}

/* one row into the journal and the other sinks (the writer thread, or in line; lg_sink_mu held) */
int lg_row_write(const row_rec *r)
{
    /* unpack: a key without a count slot was logged by every rank (once, if a mean); a key whose
     * count is 0 was logged by nobody this time */
    static const char **un;
    static double *uv;
    static int ucap;
    if (r->n > ucap) {
        const char **nn = realloc(un, sizeof(char *) * (size_t)r->n);
        if (nn)
            un = nn;
        double *nv = nn ? realloc(uv, sizeof(double) * (size_t)r->n) : NULL;
        if (!nv)
            return djct_error_oom();
        uv = nv;
        ucap = r->n;
    }
    reduced rd = {0, un, uv}, *red = &rd;
    for (int k = 0; k < r->n; k++) {
        double v = r->raw[k];
        if (r->op) {
            double cnt = r->cidx[k] >= 0 ? r->raw[r->n + r->cidx[k]] : (double)r->size;
            if (cnt == 0)
                continue;
            v = lg_finish_value(r->op[k], v, cnt);
        }
        un[rd.n] = r->name[k];
        uv[rd.n++] = v;
    }
    const char *prefix = r->prefix;
    int64_t step = r->step;
    double runtime = r->runtime, ts = r->ts;
    char *line = NULL, num[64];
    size_t len = 0, cap = 0;
    int rc = str_append(&line, &len, &cap, "{", 1);
    for (int i = 0; rc == 0 && i < red->n; i++) {
        if ((rc = append_key(&line, &len, &cap, prefix, red->name[i])) < 0)
            break;
        int k = jr_fmt_double(num + 1, sizeof(num) - 1, red->value[i]);
        num[0] = ':';
        rc = str_append(&line, &len, &cap, num, (size_t)k + 1);
        if (rc == 0)
            rc = str_append(&line, &len, &cap, ",", 1);
    }
    if (rc == 0) {
        char tail[160];
        int k = snprintf(tail, sizeof(tail), "\"_step\":%" PRId64 ",\"_runtime\":", step);
        k += jr_fmt_double(tail + k, sizeof(tail) - (size_t)k, runtime);
        k += snprintf(tail + k, sizeof(tail) - (size_t)k, ",\"_timestamp\":");
        k += jr_fmt_double(tail + k, sizeof(tail) - (size_t)k, ts);
        k += snprintf(tail + k, sizeof(tail) - (size_t)k, "}");
        rc = str_append(&line, &len, &cap, tail, (size_t)k);
    }
    if (rc < 0) {
        free(line);
        return rc;
    }
    /* journal first: the row is on disk before the uploader can see it */
    if ((rc = jr_history_append(&g.hist, line, len)) < 0 || (rc = jr_history_sync(&g.hist, !g.no_fsync)) < 0) {
        free(line);
        return rc;
    }
    lg_rows_written++;
    /* summary.json is derivable from history.jsonl: fold the rows into it and rewrite it at most
     * once a second (and at finish), not on every flush, which would cost more than the reduction */
    if ((rc = str_append(&g.pending, &g.pending_len, &g.pending_cap, line, len)) < 0 ||
        (rc = str_append(&g.pending, &g.pending_len, &g.pending_cap, "\n", 1)) < 0) {
        free(line);
        return rc;
    }
    double tnow = djct_now_s();
    if (tnow - g.summary_written >= SUMMARY_EVERY_S) {
        if ((rc = lg_summary_write(0)) < 0) {
            free(line);
            return rc;
        }
        g.summary_written = tnow;
    }
    if (g.console) {
        printf("[djct] step %" PRId64 ":", step);
        for (int i = 0; i < red->n; i++) {
            jr_fmt_double(num, sizeof(num), red->value[i]);
            printf(" %s%s=%s", prefix, red->name[i], num);
        }
        printf("\n");
        fflush(stdout);
    }
    if (g.csv && (rc = csv_row_write(red, prefix, step, runtime, ts)) < 0)
        lg_warnf("history.csv: %s", djct_last_error());
    if (g.up)
        wb_uploader_notify(g.up, len + 1);
    free(g.last_row);
    g.last_row = line;
    return 0;
}


int lg_config_write(void)
{
    char *t = cJSON_Print(g.config);
    if (!t)
        return djct_error_oom();
    int rc = jr_write_atomic(g.dir, JR_CONFIG, t, !g.no_fsync);
    free(t);
    return rc;
}
