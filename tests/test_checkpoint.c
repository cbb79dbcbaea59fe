/* checkpoint: partial dir -> DONE manifest -> rename; verification catches truncation and
 * corruption; the latest complete checkpoint wins; rotation. */
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text)
{
    char p[512];
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
    return harness_report();
}
