/* The journal and checkpoints: djct_log_checkpoint() gives the journal's last _step for a
 * checkpoint to keep (every row flushed before it is in the journal), djct_log_rewind() takes the
 * journal back to it when a job continues from that checkpoint. The rows logged after it (by a job
 * that was killed, or that ended after its last checkpoint) are steps the continuing job logs again:
 * they move to history.rewound.jsonl, so history.jsonl and history.csv keep one row per training
 * step. The replayed rows get the same _step and the same line offsets as the rows they replace, so
 * whatever the server does with a line it already holds (replace it by offset, or ignore a row whose
 * _step it has), it keeps one row per training step; the uploader re-sends from the first moved line. */
#include "djct/error.h"
#include "djct_int.h"
#include "log_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JR_REWOUND "history.rewound.jsonl"

void lg_upload_cfg_free(void)
{
    free(g.up_base);
    free(g.up_ca);
    g.up_base = g.up_ca = NULL;
    memset(&g.up_cfg, 0, sizeof(g.up_cfg));
}

int djct_log_checkpoint(int64_t *last_step)
{
    DJCT_CHECK_ARG(last_step);
    *last_step = -2;
    pthread_mutex_lock(&g.mu);
    int rc = 0;
    if (g.initialised && g.mode != DJCT_LOG_MODE_DISABLED) {
        rc = lg_settle(); /* a row that waits for the gathering path gets written */
        if (rc == 0 && g.rank == 0)
            lg_writer_drain(); /* every row in the journal (flushed to the kernel at each row) */
        *last_step = g.last_step;
    }
    pthread_mutex_unlock(&g.mu);
    return rc;
}

static void step_of(void *ctx, const char *key, double v)
{
    if (strcmp(key, "_step") == 0)
        *(int64_t *)ctx = (int64_t)v;
}

/* a growing text */
typedef struct {
    char *s;
    size_t len, cap;
} text;

static int text_add(text *t, const char *p, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *ns = realloc(t->s, cap);
        if (!ns)
            return djct_error_oom();
        t->s = ns;
        t->cap = cap;
    }
    memcpy(t->s + t->len, p, n);
    t->len += n;
    t->s[t->len] = '\0';
    return 0;
}

/* append the moved rows to history.rewound.jsonl, durably: they are the only copy */
static int append_rewound(const char *rows, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", g.dir, JR_REWOUND);
    FILE *f = fopen(path, "a");
    if (!f)
        return djct_error_set(DJCT_EIO, "cannot open '%s': %s", path, strerror(errno));
    int ok = fwrite(rows, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok &= fclose(f) == 0;
    return ok ? 0 : djct_error_set(DJCT_EIO, "cannot write '%s': %s", path, strerror(e));
}

/* upload-state.json: the server's copy from `line` on is to be replaced */
static void upload_state_back_to(int64_t line)
{
    cJSON *st = NULL;
    if (jr_read_json(g.dir, JR_UPLOAD, &st) != 0 || !cJSON_IsObject(st)) {
        cJSON_Delete(st);
        djct_error_clear();
        return;
    }
    cJSON *a = cJSON_GetObjectItemCaseSensitive(st, "history_acked");
    if (cJSON_IsNumber(a) && a->valuedouble > (double)line)
        cJSON_SetNumberValue(a, (double)line);
    cJSON_ReplaceItemInObjectCaseSensitive(st, "summary_acked", cJSON_CreateFalse());
    cJSON_ReplaceItemInObjectCaseSensitive(st, "complete_sent", cJSON_CreateFalse());
    char *t = cJSON_Print(st);
    cJSON_Delete(st);
    if (t)
        jr_write_atomic(g.dir, JR_UPLOAD, t, 1);
    free(t);
    djct_error_clear();
}

/* rank 0: the work; *moved rows moved aside */
static int rewind_rank0(int64_t last_step, int64_t *moved)
{
    char path[4096], *all = NULL;
    size_t len = 0;
    *moved = 0;
    snprintf(path, sizeof(path), "%s/%s", g.dir, JR_HISTORY);
    int rc = jr_read_file(path, &all, &len);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* no journal yet */
    /* lines [0, cut) are up to the checkpoint's step, [cut, end) the jobs' rows after it, [end, n)
     * other writers' rows appended after the last finished job */
    int64_t n = 0, cut = -1;
    for (size_t i = 0, start = 0; i < len; i++) {
        if (all[i] != '\n')
            continue;
        if (cut < 0) {
            all[i] = '\0';
            int64_t st = INT64_MIN;
            jr_flat_parse(all + start, step_of, &st);
            all[i] = '\n';
            if (st > last_step)
                cut = n;
        }
        n++;
        start = i + 1;
    }
    djct_error_clear();
    int64_t end = g.others_from >= 0 && g.others_from < n ? g.others_from : n;
    if (cut < 0 || cut >= end) {
        free(all);
        return 0;
    }
    /* byte offsets of lines cut and end */
    size_t bcut = 0, bend = 0;
    for (int64_t line = 0, i = 0; (size_t)i < len && line < end; i++)
        if (all[i] == '\n') {
            line++;
            if (line == cut)
                bcut = (size_t)i + 1;
            if (line == end)
                bend = (size_t)i + 1;
        }
    if (cut == 0)
        bcut = 0;
    /* the uploader reads the journal: stop it while the journal changes (it starts again below) */
    if (g.up) {
        wb_uploader_free(g.up);
        g.up = NULL;
    }
    text kept = {0}, gone = {0};
    if ((rc = text_add(&kept, all, bcut)) < 0 || (rc = text_add(&kept, all + bend, len - bend)) < 0 ||
        (rc = text_add(&gone, all + bcut, bend - bcut)) < 0)
        goto out;
    /* the moved rows are safe in their own file before the journal loses them */
    if ((rc = append_rewound(gone.s, gone.len)) < 0)
        goto out;
    jr_history_close(&g.hist);
    if ((rc = jr_write_atomic(g.dir, JR_HISTORY, kept.s ? kept.s : "", 1)) < 0) {
        jr_history_open(&g.hist, g.dir);
        goto out;
    }
    if ((rc = jr_history_open(&g.hist, g.dir)) < 0)
        goto out;
    *moved = end - cut;
    g.last_step = g.hist.last_step;
    g.runtime_base = g.hist.last_runtime;
    g.others_from = -1;
    upload_state_back_to(cut);
    pthread_mutex_lock(&lg_sink_mu);
    int src = lg_summary_rebuild(kept.s ? kept.s : (char *)"", gone.s);
    if (g.csv) { /* the columns of what is left */
        for (int i = 0; i < g.ncols; i++)
            free(g.cols[i]);
        g.ncols = 0;
        if (g.hist.lines > 0) {
            lg_csv_rewrite();
        } else {
            if (g.csv_f)
                fclose(g.csv_f);
            g.csv_f = NULL;
            char csv[4096];
            snprintf(csv, sizeof(csv), "%s/%s", g.dir, JR_CSV);
            unlink(csv);
        }
    }
    free(g.last_row);
    g.last_row = NULL;
    pthread_mutex_unlock(&lg_sink_mu);
    if (src < 0)
        lg_warnf("summary.json after the rewind: %s", djct_last_error());
out:
    if (!g.up && g.up_base) { /* online: again, from the first moved line */
        int urc = wb_uploader_create(&g.up, &g.up_cfg);
        if (urc == 0 && (urc = wb_uploader_start(g.up)) < 0) {
            wb_uploader_free(g.up);
            g.up = NULL;
        }
        if (urc < 0)
            lg_warnf("wandb uploader not restarted after the rewind: %s; upload later with djct_sync %s",
                     djct_last_error(), g.dir);
    }
    free(kept.s);
    free(gone.s);
    free(all);
    return rc;
}

int djct_log_rewind(int64_t last_step)
{
    pthread_mutex_lock(&g.mu);
    if (!g.initialised || g.mode == DJCT_LOG_MODE_DISABLED || last_step < -1) {
        pthread_mutex_unlock(&g.mu);
        return 0;
    }
    struct {
        int32_t rc;
        int64_t last_step;
        char msg[512];
    } res = {0, -1, ""};
    if (g.rank == 0 && g.dir) {
        lg_writer_drain();
        int64_t moved = 0;
        res.rc = rewind_rank0(last_step, &moved);
        g.rows_rewound = moved;
        if (res.rc < 0)
            snprintf(res.msg, sizeof(res.msg), "%s", djct_last_error());
        res.last_step = g.last_step;
    }
    if (lg_multi() &&
        djct_comm_mpi_bcast(g.comm, &res, (int)sizeof(res), MPI_BYTE, 0, "the journal rewind's outcome") < 0) {
        int rc = djct_error_prefix("djct_log_rewind");
        pthread_mutex_unlock(&g.mu);
        return rc;
    }
    g.last_step = res.last_step;
    int rc = res.rc;
    if (rc < 0)
        djct_error_set(rc, "djct_log_rewind: %s", res.msg);
    pthread_mutex_unlock(&g.mu);
    return rc;
}
