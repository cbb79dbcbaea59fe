/* The run journal: atomic whole-file writes, the append-only history.jsonl and its line reader.
 * Only rank 0 (and djct_sync) ever calls into this file. */
#include "journal_int.h"
#include "djct/fileutil.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int jr_mkdirs(const char *path)
{
    int rc = djct_mkdirs(path);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", djct_last_error());
        return djct_error_set(rc, "%s; check the log dir option or $DJCT_LOG_DIR", msg);
    }
    return 0;
}

int jr_write_atomic(const char *dir, const char *name, const char *text, int do_fsync)
{
    char dst[4096];
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    return djct_write_atomic(dst, text, strlen(text), do_fsync);
}

int jr_read_file(const char *path, char **out, size_t *len)
{
    void *data = NULL;
    int rc = djct_read_whole(&data, len, path, 0, 1);
    *out = data;
    return rc;
}

int jr_read_json(const char *dir, const char *name, cJSON **out)
{
    char path[4096], *text;
    *out = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int rc = jr_read_file(path, &text, NULL);
    if (rc != 0)
        return rc;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j)
        return djct_error_set(DJCT_EINVAL, "'%s' is not valid JSON; restore it or delete it", path);
    *out = j;
    return 0;
}

/* ---- numbers ------------------------------------------------------------------------------- */

int jr_fmt_double(char *buf, size_t size, double v)
{
    if (isnan(v))
        return snprintf(buf, size, "NaN");
    if (isinf(v))
        return snprintf(buf, size, v > 0 ? "Infinity" : "-Infinity");
    if (v == floor(v) && fabs(v) < 1e15)
        return snprintf(buf, size, "%.0f", v);
    int n = snprintf(buf, size, "%.15g", v);
    if (strtod(buf, NULL) != v)
        n = snprintf(buf, size, "%.17g", v);
    return n;
}

/* ---- history.jsonl ------------------------------------------------------------------------- */

static void last_fields(void *ctx, const char *key, double v)
{
    jr_history *h = ctx;
    if (strcmp(key, "_step") == 0)
        h->last_step = (int64_t)v;
    else if (strcmp(key, "_runtime") == 0)
        h->last_runtime = v;
}

int jr_history_open(jr_history *h, const char *dir)
{
    char path[4096], *text = NULL;
    size_t len = 0;
    memset(h, 0, sizeof(*h));
    h->last_step = -1;
    snprintf(path, sizeof(path), "%s/%s", dir, JR_HISTORY);
    int rc = jr_read_file(path, &text, &len);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        /* a job killed mid-write leaves a torn last line: cut it so offsets stay line-exact */
        size_t keep = len;
        while (keep > 0 && text[keep - 1] != '\n')
            keep--;
        if (keep != len && truncate(path, (off_t)keep) != 0) {
            free(text);
            return djct_error_set(DJCT_EIO, "cannot repair torn last line of '%s': %s", path, strerror(errno));
        }
        for (size_t i = 0; i < keep; i++) {
            if (text[i] == '\n') {
                h->lines++;
                text[i] = '\0';
            }
        }
        /* the last complete line starts after the second-to-last NUL */
        if (h->lines > 0) {
            size_t e = keep - 1, s = e;
            while (s > 0 && text[s - 1] != '\0')
                s--;
            jr_flat_parse(text + s, last_fields, h);
        }
        free(text);
    }
    h->f = fopen(path, "a");
    if (!h->f)
        return djct_error_set(DJCT_EIO, "cannot open '%s' for appending: %s", path, strerror(errno));
    return 0;
}

int jr_history_append(jr_history *h, const char *line, size_t len)
{
    if (fwrite(line, 1, len, h->f) != len || fputc('\n', h->f) == EOF)
        return djct_error_set(DJCT_EIO, "cannot append to the history journal: %s; is the disk full?", strerror(errno));
    h->lines++;
    return 0;
}

static void *syncer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "djct-fsync"); /* shown by top -H, ps -L, gdb */
    jr_history *h = arg;
    int fd = fileno(h->f);
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->dirty && !h->closing)
            pthread_cond_wait(&h->cv, &h->mu);
        if (!h->dirty && h->closing)
            break;
        h->dirty = 0;
        pthread_mutex_unlock(&h->mu);
        int rc = fsync(fd), e = errno; /* the disk wait happens here, not in the training loop */
        pthread_mutex_lock(&h->mu);
        if (rc != 0 && !h->sync_errno)
            h->sync_errno = e;
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int jr_history_sync(jr_history *h, int do_fsync)
{
    if (!h->f)
        return 0;
    if (fflush(h->f) != 0)
        return djct_error_set(DJCT_EIO, "cannot flush the history journal: %s; is the disk full?", strerror(errno));
    if (!do_fsync)
        return 0;
    if (!h->syncer_on) {
        if (pthread_mutex_init(&h->mu, NULL) || pthread_cond_init(&h->cv, NULL) ||
            pthread_create(&h->syncer, NULL, syncer_main, h)) {
            /* no thread: fsync in line, as before */
            return fsync(fileno(h->f)) == 0 ? 0
                                             : djct_error_set(DJCT_EIO, "cannot fsync the history journal: %s",
                                                              strerror(errno));
        }
        h->syncer_on = 1;
    }
    pthread_mutex_lock(&h->mu);
    int e = h->sync_errno;
    h->sync_errno = 0;
    h->dirty = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (e)
        return djct_error_set(DJCT_EIO, "fsync of the history journal failed: %s; is the disk full?", strerror(e));
    return 0;
}

void jr_history_close(jr_history *h)
{
    if (h->syncer_on) {
        pthread_mutex_lock(&h->mu);
        h->closing = 1;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->syncer, NULL);
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        h->syncer_on = 0;
    }
    if (h->f) {
        fflush(h->f);
        fsync(fileno(h->f)); /* the last rows reach the disk before the run ends */
        fclose(h->f);
    }
    h->f = NULL;
}

/* ---- flat parser (our own lines only: string keys, number / NaN / Infinity values) ---------- */

int jr_flat_parse(const char *s, void (*fn)(void *ctx, const char *key, double v), void *ctx)
{
    while (*s == ' ')
        s++;
    if (*s++ != '{')
        return djct_error_set(DJCT_EINVAL, "history line does not start with '{'");
    for (;;) {
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == '}' || *s == '\0')
            return 0;
        if (*s != '"')
            return djct_error_set(DJCT_EINVAL, "history line: expected a key at '%.20s'", s);
        const char *k0 = s++;
        while (*s && *s != '"')
            s += (*s == '\\' && s[1]) ? 2 : 1;
        if (*s != '"')
            return djct_error_set(DJCT_EINVAL, "history line: unterminated key");
        s++;
        /* let cJSON undo the escapes of the quoted key */
        size_t klen = (size_t)(s - k0);
        cJSON *kj = cJSON_ParseWithLength(k0, klen);
        while (*s == ' ' || *s == ':')
            s++;
        char *end;
        double v = strtod(s, &end);
        if (end != s && kj && cJSON_IsString(kj))
            fn(ctx, kj->valuestring, v);
        cJSON_Delete(kj);
        if (end == s) { /* not a number: skip a string / object / literal value */
            int depth = 0, in_str = 0;
            for (; *s; s++) {
                if (in_str) {
                    if (*s == '\\' && s[1])
                        s++;
                    else if (*s == '"')
                        in_str = 0;
                } else if (*s == '"') {
                    in_str = 1;
                } else if (*s == '{' || *s == '[') {
                    depth++;
                } else if (*s == '}' || *s == ']') {
                    if (depth-- == 0)
                        break;
                } else if (*s == ',' && depth == 0) {
                    break;
                }
            }
        } else {
            s = end;
        }
    }
}

/* ---- whole objects with NaN tokens (summary.json) ------------------------------------------ */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* the end of the JSON value at s (strings, nesting and bare tokens), NULL when malformed */
static const char *value_end(const char *s)
{
    int depth = 0;
    const char *start = s;
    for (; *s; s++) {
        if (*s == '"') {
            for (s++; *s && *s != '"'; s++)
                if (*s == '\\' && s[1])
                    s++;
            if (!*s)
                return NULL;
        } else if (*s == '{' || *s == '[') {
            depth++;
        } else if (*s == '}' || *s == ']') {
            if (depth == 0)
                break;
            depth--;
        } else if (*s == ',' && depth == 0) {
            break;
        }
    }
    if (depth != 0 || s == start)
        return NULL;
    while (s > start && (s[-1] == ' ' || s[-1] == '\t' || s[-1] == '\n' || s[-1] == '\r'))
        s--;
    return s;
}

int jr_object_members(const char *text, void (*fn)(void *ctx, const char *key, const char *raw, size_t rawlen),
                      void *ctx)
{
    const char *s = skip_ws(text);
    if (*s++ != '{')
        return djct_error_set(DJCT_EINVAL, "not a JSON object (it does not start with '{')");
    for (;;) {
        s = skip_ws(s);
        if (*s == '}')
            return 0;
        if (*s != '"')
            return djct_error_set(DJCT_EINVAL, "expected a quoted key at byte %ld", (long)(s - text));
        const char *k0 = s++;
        while (*s && *s != '"')
            s += (*s == '\\' && s[1]) ? 2 : 1;
        if (*s != '"')
            return djct_error_set(DJCT_EINVAL, "unterminated key at byte %ld", (long)(k0 - text));
        s++;
        cJSON *kj = cJSON_ParseWithLength(k0, (size_t)(s - k0));
        s = skip_ws(s);
        if (*s != ':' || !cJSON_IsString(kj)) {
            cJSON_Delete(kj);
            return djct_error_set(DJCT_EINVAL, "expected ':' after a key at byte %ld", (long)(s - text));
        }
        s = skip_ws(s + 1);
        const char *e = value_end(s);
        if (!e) {
            cJSON_Delete(kj);
            return djct_error_set(DJCT_EINVAL, "malformed value at byte %ld", (long)(s - text));
        }
        fn(ctx, kj->valuestring, s, (size_t)(e - s));
        cJSON_Delete(kj);
        s = skip_ws(e);
        if (*s == ',')
            s++;
        else if (*s != '}')
            return djct_error_set(DJCT_EINVAL, "expected ',' or '}' at byte %ld", (long)(s - text));
    }
}

/* ---- reader ------------------------------------------------------------------------------- */

int jr_reader_open(jr_reader *r, const char *dir)
{
    char path[4096];
    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "%s/%s", dir, JR_HISTORY);
    r->f = fopen(path, "rb");
    if (!r->f)
        return errno == ENOENT ? 1 : djct_error_set(DJCT_EIO, "cannot read '%s': %s", path, strerror(errno));
    return 0;
}

int jr_reader_seek(jr_reader *r, int64_t start)
{
    if (start < r->line) {
        r->line = 0;
        r->pos = 0;
    }
    if (fseek(r->f, r->pos, SEEK_SET) != 0)
        return djct_error_set(DJCT_EIO, "cannot seek in the history journal");
    int c;
    long pos = r->pos;
    while (r->line < start && (c = getc(r->f)) != EOF) {
        pos++;
        if (c == '\n') {
            r->line++;
            r->pos = pos;
        }
    }
    clearerr(r->f);
    if (r->line < start)
        return djct_error_set(DJCT_EINVAL, "history journal has %" PRId64 " complete lines, need %" PRId64,
                              r->line, start);
    return 0;
}

int jr_reader_batch(jr_reader *r, size_t max_bytes, cJSON **out, int64_t *n, long *end_pos)
{
    *out = NULL;
    *n = 0;
    *end_pos = r->pos;
    if (fseek(r->f, r->pos, SEEK_SET) != 0)
        return djct_error_set(DJCT_EIO, "cannot seek in the history journal");
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t got;
    cJSON *arr = NULL;
    long pos = r->pos;
    while ((got = getline(&line, &cap, r->f)) > 0) {
        if (line[got - 1] != '\n') /* being written right now: not a line yet */
            break;
        if (*n > 0 && total + (size_t)got > max_bytes)
            break;
        line[got - 1] = '\0';
        if (!arr && !(arr = cJSON_CreateArray()))
            goto oom;
        cJSON *s = cJSON_CreateString(line);
        if (!s)
            goto oom;
        cJSON_AddItemToArray(arr, s);
        pos += got;
        total += (size_t)got;
        (*n)++;
    }
    clearerr(r->f);
    free(line);
    *out = arr;
    *end_pos = pos;
    return 0;
oom:
    free(line);
    cJSON_Delete(arr);
    *n = 0;
    return djct_error_oom();
}

void jr_reader_close(jr_reader *r)
{
    if (r->f)
        fclose(r->f);
    r->f = NULL;
}
