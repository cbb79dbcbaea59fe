/* checkpoint: partial dir -> DONE manifest -> rename; verification catches truncation and
 * corruption; the latest complete checkpoint wins; rotation. */
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static int exists(const char *run, const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/checkpoints/%s", run, name);
    return stat(p, &st) == 0;
}

static void commit_step(const char *run, int64_t s, const char *model)
{
    char *tmp = NULL;
    CHECK_OK(djct_ckpt_begin(&tmp, run, s));
    if (tmp)
        put(tmp, "model.pt", model);
    CHECK_OK(djct_ckpt_commit(NULL, run, s, NULL, 3));
    free(tmp);
}

/* Resuming never skips a damaged checkpoint silently: each one newer than the one used is named
 * with its file and mismatch and renamed step-N.damaged (never overwritten: a second one of the
 * same step becomes .damaged.1), which rotation and resume leave alone; the count tells "no
 * checkpoint yet" from "all damaged", also in a later call. */
static void test_damaged(void)
{
    char run[] = "/tmp/djct_test_ckpt_dmg_XXXXXX";
    CHECK(mkdtemp(run) != NULL);
    char *dir = NULL, *dmg = NULL, p[512];
    int64_t step = 0;
    int nd = -1;
    CHECK_OK(djct_ckpt_find_latest_checked(&dir, &step, &dmg, &nd, run));
    CHECK(dir == NULL && step == -1 && dmg && !strcmp(dmg, "") && nd == 0);
    free(dmg);
    for (int64_t s = 10; s <= 30; s += 10)
        commit_step(run, s, "weights");
    /* step 30 truncated, step 20 with a flipped byte: both named, both set aside, 10 used */
    snprintf(p, sizeof(p), "%s/checkpoints/step-30", run);
    put(p, "model.pt", "wei");
    snprintf(p, sizeof(p), "%s/checkpoints/step-20", run);
    put(p, "model.pt", "weighTs");
    CHECK_OK(djct_ckpt_find_latest_checked(&dir, &step, &dmg, &nd, run));
    CHECK(step == 10 && dir && strstr(dir, "step-10") && nd == 2);
    CHECK(dmg && strstr(dmg, "step-30': file 'model.pt' has 3 bytes, DONE says 7; moved aside to '") &&
          strstr(dmg, "step-30.damaged'\n") && strstr(dmg, "step-20': file 'model.pt' fails its CRC-32 check") &&
          strstr(dmg, "step-20.damaged'\n"));
    free(dir);
    free(dmg);
    CHECK(exists(run, "step-30.damaged") && exists(run, "step-20.damaged") && !exists(run, "step-30") &&
          !exists(run, "step-20"));
    snprintf(p, sizeof(p), "%s/checkpoints/latest", run);
    void *data = NULL;
    CHECK(djct_read_file(&data, NULL, p) == 0 && data && !strcmp(data, "step-10\n"));
    free(data);
    /* new checkpoints of the same steps, with rotation (keep 3): the damaged copies stay untouched */
    for (int64_t s = 20; s <= 50; s += 10)
        commit_step(run, s, "fresh");
    snprintf(p, sizeof(p), "%s/checkpoints/step-30.damaged/model.pt", run);
    data = NULL;
    size_t len = 0;
    CHECK(djct_read_file(&data, &len, p) == 0 && len == 3);
    free(data);
    CHECK(exists(run, "step-20.damaged") && exists(run, "step-30.damaged") && !exists(run, "step-10") &&
          !exists(run, "step-20") && exists(run, "step-50"));
    /* every checkpoint damaged: none found, all set aside (step-30 a second time: .damaged.1) */
    for (int64_t s = 30; s <= 50; s += 10) {
        snprintf(p, sizeof(p), "%s/checkpoints/step-%d", run, (int)s);
        put(p, "model.pt", "x");
    }
    CHECK_OK(djct_ckpt_find_latest_checked(&dir, &step, &dmg, &nd, run));
    CHECK(dir == NULL && step == -1 && nd == 5 && dmg && strstr(dmg, "step-50.damaged'") &&
          strstr(dmg, "step-30.damaged.1'"));
    free(dmg);
    CHECK(exists(run, "step-30.damaged") && exists(run, "step-30.damaged.1") && !exists(run, "latest"));
    /* a later call: nothing new to say, and still "all damaged", not "none yet" */
    CHECK_OK(djct_ckpt_find_latest_checked(&dir, &step, &dmg, &nd, run));
    CHECK(dir == NULL && nd == 5 && dmg && !strcmp(dmg, ""));
    free(dmg);
    CHECK_OK(djct_remove_tree(run));
}

int main(void)
{
    char run[] = "/tmp/djct_test_ckpt_XXXXXX";
    CHECK(mkdtemp(run) != NULL);
    char *dir = NULL, *fin = NULL;
    int64_t step = 0;

    CHECK_OK(djct_ckpt_find_latest(&dir, &step, run));
    CHECK(dir == NULL && step == -1);

    harness_rows three = HARNESS_ROWS_INIT;
    for (int64_t s = 10; s <= 30; s += 10) {
        char *tmp = NULL;
        fin = NULL;
        ROW_OK(three, djct_ckpt_begin(&tmp, run, s), "step %lld: begin", (long long)s);
        put(tmp, "model.pt", "weights");
        put(tmp, "state-rank0.bin", s == 20 ? "twenty" : "other");
        ROW_OK(three, djct_ckpt_commit(&fin, run, s, "{\"epoch\": 2, \"note\": \"x\"}", 0), "step %lld: commit",
               (long long)s);
        ROW(three, fin && strstr(fin, "checkpoints/step-"), "step %lld: committed as '%s'", (long long)s,
            fin ? fin : "(null)");
        free(fin);
        free(tmp);
    }
    CHECK_ROWS(three);
    CHECK_OK(djct_ckpt_find_latest(&dir, &step, run));
    CHECK(step == 30 && dir && strstr(dir, "step-30"));
    CHECK_OK(djct_ckpt_verify(dir));
    char *meta = NULL;
    CHECK_OK(djct_ckpt_read_meta(&meta, dir));
    CHECK(meta && strstr(meta, "\"epoch\":2") && strstr(meta, "\"note\":\"x\""));
    free(meta);

    /* corrupt the newest: same size, different byte -> CRC; find_latest falls back to step 20 */
    put(dir, "model.pt", "wEights");
    CHECK_ERR(djct_ckpt_verify(dir), DJCT_EINVAL, "'model.pt' fails its CRC-32 check");
    put(dir, "model.pt", "w");
    CHECK_ERR(djct_ckpt_verify(dir), DJCT_EINVAL, "'model.pt' has 1 bytes, DONE says 7");
    free(dir);
    CHECK_OK(djct_ckpt_find_latest(&dir, &step, run));
    CHECK(step == 20);
    free(dir);

    /* a partial checkpoint (killed before commit) is never used */
    char *tmp = NULL;
    CHECK_OK(djct_ckpt_begin(&tmp, run, 40));
    put(tmp, "model.pt", "half");
    CHECK_OK(djct_ckpt_find_latest(&dir, &step, run));
    CHECK(step == 20);
    free(dir);
    CHECK_ERR(djct_ckpt_verify(tmp), DJCT_EINVAL, "no DONE marker");
    free(tmp);

    /* committing step 50 with keep=2 removes old complete ones and the stale partial 40 */
    CHECK_OK(djct_ckpt_begin(&tmp, run, 50));
    put(tmp, "model.pt", "fifty");
    CHECK_OK(djct_ckpt_commit(NULL, run, 50, NULL, 2));
    free(tmp);
    CHECK(exists(run, "step-50") && exists(run, "step-30") && !exists(run, "step-20") && !exists(run, "step-10"));
    CHECK(!exists(run, ".step-40.partial"));
    CHECK_OK(djct_ckpt_find_latest(&dir, &step, run));
    CHECK(step == 50);
    free(dir);
    char latest[256];
    snprintf(latest, sizeof(latest), "%s/checkpoints/latest", run);
    void *data = NULL;
    size_t len = 0;
    CHECK_OK(djct_read_file(&data, &len, latest));
    CHECK(data && !strcmp(data, "step-50\n"));
    free(data);

    /* bad metadata; a manifest with the wrong magic */
    CHECK_OK(djct_ckpt_begin(&tmp, run, 60));
    CHECK_ERR(djct_ckpt_commit(NULL, run, 60, "{not json", 0), DJCT_EINVAL, "metadata is not valid JSON");
    put(tmp, "DONE", "{\"magic\": \"other\", \"version\": 1, \"files\": []}");
    CHECK_ERR(djct_ckpt_verify(tmp), DJCT_EINVAL, "no 'djct-checkpoint' magic");
    free(tmp);
    CHECK_ERR(djct_ckpt_begin(&tmp, run, -1), DJCT_EINVAL, "negative");

    CHECK_OK(djct_remove_tree(run));
    test_damaged();
    return harness_report();
}
