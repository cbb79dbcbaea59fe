/* Helpers for the logging tests: start/stop tests/wandb_server.py on 127.0.0.1, steer its faults,
 * read what it stored, and small file utilities. Header-only (static inline: a test may use any
 * subset without unused-function warnings), test code only. */
#ifndef DJCT_WANDB_TESTLIB_H
#define DJCT_WANDB_TESTLIB_H

#include "harness.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* the fake key every test uses; never a real one */
#define TEST_KEY "djcttestkey0123456789abcdefghijklmnopqrstuv"

typedef struct {
    pid_t pid;
    int port;
    char url[64], state[512], log[512], portf[512];
    char ca[1024]; /* HTTPS: the CA that signed its certificate ("" for plain HTTP) */
} test_srv;

static inline void t_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static inline double t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void t_write(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    chmod(path, (mode_t)mode);
}

static inline int t_count_lines(const char *path)
{
    char *t = harness_slurp(path, NULL);
    int n = 0;
    for (char *p = t; p && *p; p++)
        n += *p == '\n';
    free(t);
    return n;
}

/* 1 when `needle` occurs in any file under dir (recursive) */
static inline int t_grep_dir(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    char p[1024];
    while (!found && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            found = t_grep_dir(p, needle);
        } else {
            char *t = harness_slurp(p, NULL);
            found = t && strstr(t, needle);
            free(t);
        }
    }
    closedir(d);
    return found;
}

static inline const char *t_server_script(void)
{
    const char *s = getenv("DJCT_TEST_SERVER");
    if (s)
        return s;
    if (access("tests/wandb_server.py", R_OK) == 0)
        return "tests/wandb_server.py";
    return "../tests/wandb_server.py";
}

/* spawn the server; srv_wait() before use */
/* Start the server; with cert/key (PEM files) it speaks HTTPS, and `ca` is what signed cert. */
static inline int srv_spawn_tls(test_srv *s, const char *tmp, const char *tag, const char *cert,
                                const char *key, const char *ca)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->state, sizeof(s->state), "%s/srv-%s-state.json", tmp, tag);
    snprintf(s->log, sizeof(s->log), "%s/srv-%s-log.jsonl", tmp, tag);
    snprintf(s->portf, sizeof(s->portf), "%s/srv-%s-port", tmp, tag);
    snprintf(s->ca, sizeof(s->ca), "%s", cert ? ca : "");
    setenv("DJCT_TEST_KEY", TEST_KEY, 1);
    char *argv[] = {"python3", (char *)t_server_script(), "--port-file", s->portf, "--state", s->state,
                    "--log", s->log, "--lifetime", "150", cert ? "--tls-cert" : NULL, (char *)cert,
                    "--tls-key", (char *)key, NULL};
    return posix_spawnp(&s->pid, "python3", NULL, NULL, argv, environ) != 0 ? -1 : 0;
}

static inline int srv_spawn(test_srv *s, const char *tmp, const char *tag)
{
    return srv_spawn_tls(s, tmp, tag, NULL, NULL, NULL);
}

/* wait (up to 30 s: python starts slowly on a loaded machine) for the port */
static inline int srv_wait(test_srv *s)
{
    if (s->pid <= 0)
        return -1;
    for (int i = 0; i < 1200; i++) {
        char *p = harness_slurp(s->portf, NULL);
        if (p) {
            s->port = atoi(p);
            free(p);
            snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d", s->ca[0] ? "https" : "http", s->port);
            return 0;
        }
        t_sleep(0.025);
    }
    return -1;
}

static inline size_t t_discard(char *p, size_t sz, size_t nm, void *ud) { return sz * nm; }

static inline int srv_post(test_srv *s, const char *path, const char *json)
{
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, t_discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (s->ca[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca);
    int rc = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    curl_easy_cleanup(c);
    return rc;
}

static inline int srv_control(test_srv *s, const char *json) { return srv_post(s, "/_control", json); }

static inline void srv_stop(test_srv *s)
{
    if (s->pid <= 0)
        return;
    srv_post(s, "/_quit", "{}");
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        t_sleep(0.02);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static inline cJSON *srv_state(test_srv *s)
{
    char *t = harness_slurp(s->state, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

/* the run "entity/project/run_id" in a state (borrowed) */
static inline cJSON *srv_run(cJSON *st, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "runs"), key);
}

static inline cJSON *srv_file(cJSON *run, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(run, "files"), name);
}

/* every request logged so far, as a JSON array (caller deletes) */
static inline cJSON *srv_requests(test_srv *s)
{
    char *t = harness_slurp(s->log, NULL), *save = NULL;
    cJSON *a = cJSON_CreateArray();
    for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(l);
        if (j)
            cJSON_AddItemToArray(a, j);
    }
    free(t);
    return a;
}

/* every request the server logged */
static inline int srv_count_all(test_srv *s)
{
    cJSON *reqs = srv_requests(s);
    int n = cJSON_GetArraySize(reqs);
    cJSON_Delete(reqs);
    return n;
}

/* history as stored by the server: 1 when lines 0..n-1 are present, no gaps, and line i has _step
 * first_step + i, nothing beyond n */
static inline int history_exact(cJSON *hist, int n, int first_step)
{
    if (!cJSON_IsArray(hist) || cJSON_GetArraySize(hist) != n)
        return 0;
    for (int i = 0; i < n; i++) {
        cJSON *line = cJSON_GetArrayItem(hist, i);
        if (!cJSON_IsString(line))
            return 0;
        cJSON *row = cJSON_Parse(line->valuestring);
        cJSON *st = cJSON_GetObjectItemCaseSensitive(row, "_step");
        int ok = cJSON_IsNumber(st) && (int)st->valuedouble == first_step + i &&
                 cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(row, "_runtime")) &&
                 cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(row, "_timestamp"));
        cJSON_Delete(row);
        if (!ok)
            return 0;
    }
    return 1;
}

static inline double json_num(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -12345.0;
}

#endif /* DJCT_WANDB_TESTLIB_H */
