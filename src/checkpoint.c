/* Checkpoint directories: temporary dir -> DONE manifest (sizes + CRC-32) -> atomic rename ->
 * latest pointer -> rotation. The invariant: a directory named step-N always verifies. */
#include "djct/checkpoint.h"
#include "djct/fileutil.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CKPT_SUB "checkpoints"

static char *fmt_path(const char *run_dir, const char *fmt, int64_t step)
{
    char name[64];
    snprintf(name, sizeof(name), fmt, step);
    char *sub = djct_path_join(run_dir, CKPT_SUB);
    char *p = sub ? djct_path_join(sub, name) : NULL;
    free(sub);
    return p;
}

/* CRC-32 and size of one file, streaming */
static int file_crc(const char *path, uint64_t *size, uint32_t *crc)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return djct_error_set(DJCT_EIO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char buf[1 << 16];
    uLong c = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
        c = crc32(c, buf, (uInt)got);
        total += got;
    }
    int err = ferror(f);
    fclose(f);
    if (err)
        return djct_error_set(DJCT_EIO, "read error in '%s'", path);
    *size = total;
    *crc = (uint32_t)c;
    return 0;
}

int djct_ckpt_partial_path(char **tmp_dir, const char *run_dir, int64_t step)
{
    DJCT_CHECK_ARG(tmp_dir);
    DJCT_CHECK_ARG(run_dir);
    if (step < 0)
        return djct_error_set(DJCT_EINVAL, "checkpoint step %" PRId64 " is negative", step);
    if (!(*tmp_dir = fmt_path(run_dir, ".step-%" PRId64 ".partial", step)))
        return djct_error_oom();
    return 0;
}

int djct_ckpt_begin(char **tmp_dir, const char *run_dir, int64_t step)
{
    char *p = NULL, *sub = NULL;
    int rc = djct_ckpt_partial_path(&p, run_dir, step);
    if (rc)
        return rc;
    if (!(sub = djct_path_join(run_dir, CKPT_SUB))) {
        free(p);
        return djct_error_oom();
    }
    if ((rc = djct_mkdirs(sub)) || (rc = djct_remove_tree(p)) || (rc = djct_mkdirs(p))) {
        free(p);
        free(sub);
        return djct_error_prefix("checkpoint of step %" PRId64, step);
    }
    free(sub);
    *tmp_dir = p;
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the regular files of a directory, sorted (the manifest order) */
static int list_files(char ***names, size_t *n, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return djct_error_set(DJCT_EIO, "cannot open directory '%s': %s", dir, strerror(errno));
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "DONE"))
            continue;
        char *p = djct_path_join(dir, e->d_name);
        struct stat st;
        int regular = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        if (!regular)
            continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nv = realloc(v, nc * sizeof(char *));
            if (!nv) {
                rc = djct_error_oom();
                break;
            }
            v = nv;
            cap = nc;
        }
        if (!(v[cnt] = strdup(e->d_name))) {
            rc = djct_error_oom();
            break;
        }
        cnt++;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    if (cnt)
        qsort(v, cnt, sizeof(char *), cmp_names);
    *names = v;
    *n = cnt;
    return 0;
}

/* complete checkpoints, newest first */
static int list_steps(int64_t **steps, size_t *n, const char *run_dir, int partial)
{
    char *sub = djct_path_join(run_dir, CKPT_SUB);
    if (!sub)
        return djct_error_oom();
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(sub);
    free(sub);
    if (!d)
        return 0;
    int64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        char tail[16] = "";
        int ok = partial ? sscanf(e->d_name, ".step-%" SCNd64 ".partia%1[l]", &s, tail) == 2
                         : sscanf(e->d_name, "step-%" SCNd64 "%1s", &s, tail) == 1;
        if (!ok || s < 0)
            continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, nc * sizeof(int64_t));
            if (!nv) {
                free(v);
                closedir(d);
                return djct_error_oom();
            }
            v = nv;
            cap = nc;
        }
        v[cnt++] = s;
    }
    closedir(d);
    /* newest first */
    for (size_t i = 1; i < cnt; i++)
        for (size_t j = i; j > 0 && v[j] > v[j - 1]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *steps = v;
    *n = cnt;
    return 0;
}

int djct_ckpt_commit(char **final_dir, const char *run_dir, int64_t step, const char *meta_json, int keep)
{
    DJCT_CHECK_ARG(run_dir);
    char *tmp = NULL, *fin = NULL, *sub = NULL, *done = NULL, *json = NULL, **names = NULL;
    size_t nnames = 0;
    cJSON *root = NULL, *meta = NULL;
    int rc = djct_ckpt_partial_path(&tmp, run_dir, step);
    if (rc)
        return rc;
    if (!(fin = fmt_path(run_dir, "step-%" PRId64, step)) || !(sub = djct_path_join(run_dir, CKPT_SUB)) ||
        !(done = djct_path_join(tmp, "DONE"))) {
        rc = djct_error_oom();
        goto out;
    }
    if (meta_json && !(meta = cJSON_Parse(meta_json))) {
        rc = djct_error_set(DJCT_EINVAL, "checkpoint of step %" PRId64 ": metadata is not valid JSON", step);
        goto out;
    }
    if ((rc = list_files(&names, &nnames, tmp)))
        goto out;
    root = cJSON_CreateObject();
    cJSON *files = cJSON_CreateArray();
    if (!root || !files) {
        cJSON_Delete(files);
        rc = djct_error_oom();
        goto out;
    }
    cJSON_AddStringToObject(root, "magic", DJCT_CKPT_MAGIC);
    cJSON_AddNumberToObject(root, "version", DJCT_CKPT_VERSION);
    cJSON_AddNumberToObject(root, "step", (double)step);
    cJSON_AddItemToObject(root, "files", files);
    for (size_t i = 0; i < nnames; i++) {
        char *p = djct_path_join(tmp, names[i]);
        uint64_t size = 0;
        uint32_t crc = 0;
        if (!p) {
            rc = djct_error_oom();
            goto out;
        }
        rc = djct_fsync_path(p, 0);
        if (rc == 0)
            rc = file_crc(p, &size, &crc);
        free(p);
        if (rc)
            goto out;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", names[i]);
        cJSON_AddNumberToObject(f, "size", (double)size);
        cJSON_AddNumberToObject(f, "crc32", (double)crc);
        cJSON_AddItemToArray(files, f);
    }
    if (meta) {
        cJSON_AddItemToObject(root, "meta", meta);
        meta = NULL;
    }
    if (!(json = cJSON_Print(root))) {
        rc = djct_error_oom();
        goto out;
    }
    if ((rc = djct_write_file_atomic(done, json, strlen(json))))
        goto out;
    /* a checkpoint of the same step written earlier (e.g. before a crash) is replaced */
    struct stat st;
    if (stat(fin, &st) == 0 && (rc = djct_remove_tree(fin)))
        goto out;
    if (rename(tmp, fin)) {
        rc = djct_error_set(DJCT_EIO, "rename '%s' -> '%s' failed: %s", tmp, fin, strerror(errno));
        goto out;
    }
    if ((rc = djct_fsync_path(sub, 1)))
        goto out;
    {
        char *latest = djct_path_join(sub, "latest");
        char line[64];
        int len = snprintf(line, sizeof(line), "step-%" PRId64 "\n", step);
        rc = latest ? djct_write_file_atomic(latest, line, (size_t)len) : djct_error_oom();
        free(latest);
        if (rc)
            goto out;
    }
    /* rotation: keep the newest `keep` complete ones; drop partial leftovers */
    int64_t *steps = NULL;
    size_t ns = 0;
    if (keep > 0 && list_steps(&steps, &ns, run_dir, 0) == 0) {
        for (size_t i = (size_t)keep; i < ns; i++) {
            if (steps[i] == step)
                continue;
            char *old = fmt_path(run_dir, "step-%" PRId64, steps[i]);
            if (old)
                djct_remove_tree(old);
            free(old);
        }
    }
    free(steps);
    if (list_steps(&steps, &ns, run_dir, 1) == 0)
        for (size_t i = 0; i < ns; i++)
            if (steps[i] <= step) {
                char *old = fmt_path(run_dir, ".step-%" PRId64 ".partial", steps[i]);
                if (old)
                    djct_remove_tree(old);
                free(old);
            }
    free(steps);
    if (final_dir) {
        *final_dir = fin;
        fin = NULL;
    }
out:
    if (rc)
        djct_error_prefix("checkpoint of step %" PRId64 " in '%s'", step, run_dir);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    cJSON_Delete(root);
    cJSON_Delete(meta);
    free(json);
    free(tmp);
    free(fin);
    free(sub);
    free(done);
    return rc;
}

static int load_manifest(cJSON **out, const char *dir)
{
    char *done = djct_path_join(dir, "DONE");
    void *data = NULL;
    if (!done)
        return djct_error_oom();
    int rc = djct_read_file(&data, NULL, done);
    if (rc) {
        free(done);
        return djct_error_set(DJCT_EINVAL, "checkpoint '%s' is incomplete: no DONE marker", dir);
    }
    cJSON *root = cJSON_Parse(data);
    free(data);
    if (!root) {
        rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': DONE is not valid JSON", dir);
    } else {
        cJSON *magic = cJSON_GetObjectItemCaseSensitive(root, "magic");
        cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
        if (!cJSON_IsString(magic) || strcmp(magic->valuestring, DJCT_CKPT_MAGIC))
            rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': DONE has no '%s' magic", dir, DJCT_CKPT_MAGIC);
        else if (!cJSON_IsNumber(ver) || ver->valueint != DJCT_CKPT_VERSION)
            rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': version %d is not supported (want %d)", dir,
                                cJSON_IsNumber(ver) ? ver->valueint : -1, DJCT_CKPT_VERSION);
    }
    free(done);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return 0;
}

int djct_ckpt_verify(const char *dir)
{
    DJCT_CHECK_ARG(dir);
    cJSON *root = NULL;
    int rc = load_manifest(&root, dir);
    if (rc)
        return rc;
    cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files"), *f;
    if (!cJSON_IsArray(files))
        rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': DONE lists no files", dir);
    cJSON_ArrayForEach(f, files)
    {
        if (rc)
            break;
        cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        cJSON *size = cJSON_GetObjectItemCaseSensitive(f, "size");
        cJSON *crc = cJSON_GetObjectItemCaseSensitive(f, "crc32");
        if (!cJSON_IsString(name) || !cJSON_IsNumber(size) || !cJSON_IsNumber(crc) || strchr(name->valuestring, '/')) {
            rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': malformed file entry in DONE", dir);
            break;
        }
        char *p = djct_path_join(dir, name->valuestring);
        uint64_t s = 0;
        uint32_t c = 0;
        rc = p ? file_crc(p, &s, &c) : djct_error_oom();
        if (rc == 0 && s != (uint64_t)size->valuedouble)
            rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': file '%s' has %" PRIu64 " bytes, DONE says %.0f",
                                dir, name->valuestring, s, size->valuedouble);
        else if (rc == 0 && c != (uint32_t)crc->valuedouble)
            rc = djct_error_set(DJCT_EINVAL, "checkpoint '%s': file '%s' fails its CRC-32 check (corrupt)", dir,
                                name->valuestring);
        free(p);
    }
    cJSON_Delete(root);
    return rc;
}

int djct_ckpt_find_latest(char **dir, int64_t *step, const char *run_dir)
{
    DJCT_CHECK_ARG(dir);
    DJCT_CHECK_ARG(run_dir);
    *dir = NULL;
    if (step)
        *step = -1;
    int64_t *steps = NULL;
    size_t n = 0;
    int rc = list_steps(&steps, &n, run_dir, 0);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char *p = fmt_path(run_dir, "step-%" PRId64, steps[i]);
        if (!p) {
            free(steps);
            return djct_error_oom();
        }
        if (djct_ckpt_verify(p) == 0) {
            *dir = p;
            if (step)
                *step = steps[i];
            break;
        }
        free(p);
    }
    free(steps);
    djct_error_clear();
    return 0;
}

/* append a line to a growing text (out of memory: the line is dropped, the count still counts) */
static void text_add(char **text, size_t *len, const char *line)
{
    size_t n = strlen(line);
    char *t = realloc(*text, *len + n + 2);
    if (!t)
        return;
    memcpy(t + *len, line, n);
    t[*len + n] = '\n';
    t[*len + n + 1] = '\0';
    *text = t;
    *len += n + 1;
}

/* checkpoints set aside earlier: step-N.damaged[.K] */
static int count_damaged(const char *run_dir)
{
    char *sub = djct_path_join(run_dir, CKPT_SUB);
    DIR *d = sub ? opendir(sub) : NULL;
    free(sub);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        int end = 0;
        if (sscanf(e->d_name, "step-%" SCNd64 ".damaged%n", &s, &end) == 1 && end > 0)
            n++;
    }
    closedir(d);
    return n;
}

/* rename a damaged checkpoint to step-N.damaged, or .damaged.1, .2, ...: never over another one */
static int set_aside(char **moved_to, const char *run_dir, int64_t step)
{
    char *from = fmt_path(run_dir, "step-%" PRId64, step), *to = NULL;
    int rc = from ? 0 : djct_error_oom();
    for (int k = 0; rc == 0 && k < 10000; k++) {
        char name[96];
        if (k == 0)
            snprintf(name, sizeof(name), "step-%" PRId64 ".damaged", step);
        else
            snprintf(name, sizeof(name), "step-%" PRId64 ".damaged.%d", step, k);
        char *sub = djct_path_join(run_dir, CKPT_SUB);
        to = sub ? djct_path_join(sub, name) : NULL;
        free(sub);
        if (!to) {
            rc = djct_error_oom();
            break;
        }
        struct stat st;
        if (lstat(to, &st) != 0) {
            if (rename(from, to) != 0)
                rc = djct_error_set(DJCT_EIO, "cannot rename '%s' to '%s': %s", from, to, strerror(errno));
            break;
        }
        free(to);
        to = NULL;
    }
    free(from);
    if (rc == 0 && !to)
        rc = djct_error_set(DJCT_EIO, "too many damaged copies of step %" PRId64, step);
    if (rc == 0)
        *moved_to = to;
    else
        free(to);
    return rc;
}

int djct_ckpt_find_latest_checked(char **dir, int64_t *step, char **damaged, int *n_damaged, const char *run_dir)
{
    DJCT_CHECK_ARG(dir);
    DJCT_CHECK_ARG(damaged);
    DJCT_CHECK_ARG(run_dir);
    *dir = NULL;
    *damaged = NULL;
    if (step)
        *step = -1;
    if (n_damaged)
        *n_damaged = 0;
    int64_t *steps = NULL;
    size_t n = 0, tlen = 0;
    int rc = list_steps(&steps, &n, run_dir, 0);
    if (rc)
        return rc;
    char *text = NULL;
    for (size_t i = 0; i < n; i++) {
        char *p = fmt_path(run_dir, "step-%" PRId64, steps[i]);
        if (!p) {
            rc = djct_error_oom();
            break;
        }
        if (djct_ckpt_verify(p) == 0) {
            *dir = p;
            if (step)
                *step = steps[i];
            break;
        }
        /* damaged: say why and move it out of the way of resume, rotation and new checkpoints */
        char why[1100], line[2400], *moved = NULL;
        snprintf(why, sizeof(why), "%s", djct_last_error());
        if (set_aside(&moved, run_dir, steps[i]) == 0)
            snprintf(line, sizeof(line), "%s; moved aside to '%s'", why, moved);
        else
            snprintf(line, sizeof(line), "%s; it could not be moved aside (%s)", why, djct_last_error());
        text_add(&text, &tlen, line);
        free(moved);
        free(p);
    }
    free(steps);
    if (rc) {
        free(text);
        free(*dir);
        *dir = NULL;
        return rc;
    }
    if (text) { /* `latest` named one of the damaged ones: point it at what resume uses */
        char *sub = djct_path_join(run_dir, CKPT_SUB), *latest = sub ? djct_path_join(sub, "latest") : NULL;
        if (latest && *dir && step) {
            char l[64];
            int len = snprintf(l, sizeof(l), "step-%" PRId64 "\n", *step);
            djct_write_file_atomic(latest, l, (size_t)len);
        } else if (latest && !*dir) {
            unlink(latest);
        }
        free(latest);
        free(sub);
    }
    if (n_damaged)
        *n_damaged = count_damaged(run_dir);
    *damaged = text ? text : strdup("");
    djct_error_clear();
    return *damaged ? 0 : djct_error_oom();
}

int djct_ckpt_read_meta(char **meta_json, const char *dir)
{
    DJCT_CHECK_ARG(meta_json);
    DJCT_CHECK_ARG(dir);
    cJSON *root = NULL;
    int rc = load_manifest(&root, dir);
    if (rc)
        return rc;
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "meta");
    *meta_json = meta ? cJSON_PrintUnformatted(meta) : strdup("{}");
    cJSON_Delete(root);
    return *meta_json ? 0 : djct_error_oom();
}
