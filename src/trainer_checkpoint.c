/* The trainer's checkpoints: rank 0 writes the model, the optimizer and the position (with the
 * journal's step and the training controls' state), every rank learns the result; resume reads
 * the latest complete checkpoint that rank 0 picks, on every rank, or none at all. */
#include "djct/checkpoint.h"
#include "djct/error.h"
#include "djct/log.h"
#include "djct_int.h"
#include "trainer_int.h"
#include "util_int.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int djct_trainer_save_checkpoint(djct_trainer *t)
{
    DJCT_CHECK_ARG(t);
    if (!t->run_dir)
        return djct_error_set(DJCT_EINVAL, "trainer: no run directory, cannot checkpoint; set run_dir");
    int rc = 0, rc0 = 0;
    char *dir = NULL;
    /* the journal's last step goes with the checkpoint: a job resuming from it rewinds the journal
     * to it (collective: every rank calls it; -2 when logging is off) */
    int64_t journal_step = -2;
    t->error_shared = 0;
    if ((rc = djct_log_checkpoint(&journal_step)))
        return rc;
    if (t->rank == 0) {
        rc = djct_ckpt_begin(&dir, t->run_dir, t->global_step);
        if (rc == 0) {
            size_t n = strlen(dir) + 32;
            char *p = malloc(n);
            if (!p)
                rc = djct_error_oom();
            if (rc == 0) {
                snprintf(p, n, "%s/model.pt", dir);
                rc = djct_model_save(t->model, p);
            }
            if (rc == 0) {
                snprintf(p, n, "%s/optimizer.pt", dir);
                rc = djct_optimizer_save(t->opt, p);
            }
            free(p);
        }
        if (rc == 0) {
            char meta[1024], ctl[512];
            djct_ctl_state_json(t->ctl, ctl, sizeof(ctl));
            snprintf(meta, sizeof(meta),
                     "{\"epoch\": %" PRId64 ", \"step\": %" PRId64 ", \"global_step\": %" PRId64
                     ", \"skipped\": %" PRId64 ", \"world_size\": %d, \"seed\": %" PRIu64 ", \"log_step\": %" PRId64 "%s}",
                     t->epoch, t->step, t->global_step, t->skipped, t->size, t->o.seed, journal_step, ctl);
            rc = djct_ckpt_commit(NULL, t->run_dir, t->global_step, meta, t->o.keep_checkpoints);
        }
        free(dir);
    }
    /* everyone learns whether rank 0 succeeded */
    int ok = rc == 0;
    char what[80];
    snprintf(what, sizeof(what), "step %" PRId64 "'s checkpoint result", t->global_step);
    t->error_shared = 0;
    int mrc = djct_comm_bcast(t->comm, &ok, sizeof(ok), 0, what);
    if (mrc)
        return mrc;
    t->error_shared = !ok; /* rank 0's message is the one that says why */
    if (!ok && t->rank != 0)
        rc0 = djct_error_set(DJCT_EIO, "trainer: rank 0 failed to write the checkpoint of step %" PRId64,
                             t->global_step);
    t->last_ckpt_time = djct_now_s();
    return rc ? rc : rc0;
}

int djct_trainer_resume(djct_trainer *t, int *resumed, int64_t *step)
{
    DJCT_CHECK_ARG(t);
    if (resumed)
        *resumed = 0;
    if (step)
        *step = -1;
    if (!t->run_dir)
        return 0;
    /* rank 0 picks the checkpoint, setting damaged ones aside; everyone uses that one */
    struct {
        char path[4096];
        int32_t n_damaged;
    } pick = {"", 0};
    char *path = pick.path;
    int64_t found = -1;
    free(t->damaged);
    t->damaged = NULL;
    if (t->rank == 0) {
        char *dir = NULL;
        int nd = 0;
        int rc = djct_ckpt_find_latest_checked(&dir, &found, &t->damaged, &nd, t->run_dir);
        if (rc == 0 && dir)
            snprintf(pick.path, sizeof(pick.path), "%s", dir);
        pick.n_damaged = nd;
        free(dir);
    }
    int rc = djct_comm_bcast(t->comm, &pick, sizeof(pick), 0, "the resume checkpoint's path");
    if (rc)
        return rc;
    t->n_damaged = pick.n_damaged;
    if (!path[0])
        return 0;
    char *meta = NULL;
    int ok = 1;
    char err[1024] = "";
    int64_t journal_step = -2; /* the journal's last step at the checkpoint; -2: not recorded */
    rc = djct_ckpt_read_meta(&meta, path);
    cJSON *m = rc == 0 ? cJSON_Parse(meta) : NULL;
    free(meta);
    if (rc == 0 && !m)
        rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': metadata unreadable", path);
    if (rc == 0) {
        cJSON *e = cJSON_GetObjectItem(m, "epoch"), *s = cJSON_GetObjectItem(m, "step"),
              *g = cJSON_GetObjectItem(m, "global_step"), *k = cJSON_GetObjectItem(m, "skipped"),
              *w = cJSON_GetObjectItem(m, "world_size");
        if (!cJSON_IsNumber(e) || !cJSON_IsNumber(s) || !cJSON_IsNumber(g))
            rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': metadata lacks epoch/step/global_step", path);
        else if (cJSON_IsNumber(w) && w->valueint != t->size)
            rc = djct_error_set(DJCT_EINVAL,
                                "checkpoint '%s' was written with %d ranks, this run has %d; resume with %d ranks "
                                "(the data plan depends on the rank count)",
                                path, w->valueint, t->size, w->valueint);
        else {
            t->epoch = (int64_t)e->valuedouble;
            t->step = (int64_t)s->valuedouble;
            t->global_step = (int64_t)g->valuedouble;
            t->skipped = cJSON_IsNumber(k) ? (int64_t)k->valuedouble : 0;
            cJSON *ls = cJSON_GetObjectItem(m, "log_step");
            journal_step = cJSON_IsNumber(ls) ? (int64_t)ls->valuedouble : -2;
            djct_ctl_restore(t->ctl, m);
        }
    }
    cJSON_Delete(m);
    /* parameters: load the saved module and copy its slab into ours (same layout) */
    if (rc == 0) {
        char p[4200];
        djct_model *saved = NULL;
        snprintf(p, sizeof(p), "%s/model.pt", path);
        rc = djct_model_load(&saved, p, NULL);
        float *src = NULL, *dst = NULL;
        size_t ns = 0, nd = 0;
        if (rc == 0 && (rc = djct_model_params(saved, &src, &ns)) == 0 && (rc = djct_model_params(t->model, &dst, &nd)) == 0) {
            if (ns != nd)
                rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': model has %zu parameters, this model %zu", path,
                                    ns, nd);
            else /* the saved model is on the CPU; ours may be on a GPU */
                rc = djct_model_copy_params(t->model, saved);
        }
        djct_model_free(saved);
        if (rc == 0) {
            snprintf(p, sizeof(p), "%s/optimizer.pt", path);
            rc = djct_optimizer_load(t->opt, p);
        }
    }
    if (rc) {
        ok = 0;
        snprintf(err, sizeof(err), "%s", djct_last_error());
    }
    int all_ok = ok;
    int mrc = djct_comm_allreduce(t->comm, &all_ok, 1, DJCT_DTYPE_INT32, DJCT_COMM_REDUCE_MIN, "the resume agreement");
    if (mrc)
        return mrc;
    if (!all_ok)
        return rc ? djct_error_set(rc, "%s", err)
                  : djct_error_set(DJCT_EIO, "trainer: another rank failed to resume from '%s'", path);
    /* the journal goes back to the checkpoint's step (every rank read the same metadata) */
    if ((rc = djct_log_rewind(journal_step)))
        return rc;
    if (resumed)
        *resumed = 1;
    if (step)
        *step = t->global_step;
    return 0;
}
