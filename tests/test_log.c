/* The logging singleton in one process (no MPI_Init): key lookup, activate/deactivate, the
 * journal (layout, steps, resume, torn lines, CSV), and wandb against tests/wandb_server.py on
 * 127.0.0.1: exact requests, injected failures, a final 4xx, preempting, offline -> sync, resumed
 * sync. */
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "harness.h"
#include "wandb_int.h"
#include "wandb_testlib.h"

static char tmp[256];
static test_srv servers[7]; /* spawned together at the start: python starts slowly */

static djct_log_options base_opts(const char *runs)
{
    djct_log_options o = DJCT_LOG_OPTIONS_INIT;
    o.dir = runs;
    o.project = "proj";
    o.batch_interval_s = 0.1;
    o.heartbeat_s = 5;
    o.http_timeout_s = 5;
    o.retry_min_s = 0.05;
    o.retry_max_s = 0.4;
    o.init_timeout_s = 10;
    o.finish_timeout_s = 20;
    o.no_fsync = 0;
    return o;
}

/* servers[i] (spawned in main) once it answers: 1, or 0 after one failing check */
static int server_up(test_srv *s, int i)
{
    *s = servers[i];
    if (srv_wait(s) == 0)
        return 1;
    fprintf(stderr, "server %d: see %s\n", i, s->log);
    CHECK(!"wandb_server.py did not start");
    return 0;
}

/* base_opts for an online run against s under <tmp>/<name> (the path goes into runs) */
static djct_log_options online_opts(const test_srv *s, char runs[512], const char *name)
{
    snprintf(runs, 512, "%s/%s", tmp, name);
    djct_log_options o = base_opts(runs);
    o.mode = DJCT_LOG_MODE_ONLINE;
    o.base_url = s->url;
    o.api_key = TEST_KEY;
    return o;
}

static cJSON *read_json(const char *dir, const char *name)
{
    char p[2200];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    char *t = harness_slurp(p, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

/* a new run id: 8 characters of [a-z0-9], a different one each call */
static void test_new_run_id(void)
{
    char a[9], b[9];
    djct_log_new_run_id(a);
    djct_log_new_run_id(b);
    CHECK(strlen(a) == 8 && strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789") == 8);
    CHECK(strcmp(a, b) != 0);
}

static void test_key_lookup(void)
{
    char home[512], p[1024], *key = NULL, warn[1024];
    const char *src;
    snprintf(home, sizeof(home), "%s/home", tmp);
    snprintf(p, sizeof(p), "%s/private", home);
    mkdir(home, 0700);
    mkdir(p, 0700);
    setenv("HOME", home, 1);
    unsetenv("WANDB_API_KEY");
    unsetenv("NETRC");
    const char *url = "http://127.0.0.1:8080";

    warn[0] = '\0';
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(key == NULL && strcmp(src, "none") == 0);

    /* netrc: machine is the netloc (host:port) of the base URL; other machines are ignored */
    snprintf(p, sizeof(p), "%s/.netrc", home);
    t_write(p, "machine api.wandb.ai login user password wrongmachinekey\n"
               "machine 127.0.0.1:8080\n  login user\n  password netrckey111\n", 0600);
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(key && strcmp(key, "netrckey111") == 0 && strcmp(src, "netrc") == 0);
    CHECK(warn[0] == '\0');
    free(key);
    /* curl's reading: `machine` is the host alone; it wins over a host:port entry */
    t_write(p, "machine 127.0.0.1:8080 login user password portkey\nmachine 127.0.0.1 login u password hostkey\n",
            0600);
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(key && strcmp(key, "hostkey") == 0);
    free(key);
    t_write(p, "machine 127.0.0.1:8080\n  login user\n  password netrckey111\n", 0600);
    /* $NETRC wins over ~/.netrc */
    snprintf(p, sizeof(p), "%s/other-netrc", tmp);
    t_write(p, "machine 127.0.0.1:8080 login u password envnetrckey\n", 0600);
    setenv("NETRC", p, 1);
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(key && strcmp(key, "envnetrckey") == 0);
    free(key);
    unsetenv("NETRC");

    /* ~/private/wandb_api.sh beats netrc; `export` and quotes are accepted */
    snprintf(p, sizeof(p), "%s/private/wandb_api.sh", home);
    t_write(p, "# my key\nexport WANDB_API_KEY=\"shkey222\"\n", 0600);
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(key && strcmp(key, "shkey222") == 0 && strcmp(src, "~/private/wandb_api.sh") == 0);
    CHECK(warn[0] == '\0');
    free(key);
    /* readable by others: a warning naming the file and the fix, never the key */
    chmod(p, 0644);
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(strstr(warn, "readable by group or others") && strstr(warn, "chmod 600"));
    CHECK(!strstr(warn, "shkey222"));
    free(key);
    t_write(p, "WANDB_API_KEY='shkey333'\n", 0600);
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(key && strcmp(key, "shkey333") == 0);
    free(key);

    /* WANDB_API_KEY beats the file, the explicit key beats everything */
    setenv("WANDB_API_KEY", "envkey444", 1);
    CHECK_OK(wb_resolve_key(url, NULL, &key, &src, warn, sizeof(warn)));
    CHECK(key && strcmp(key, "envkey444") == 0 && strcmp(src, "WANDB_API_KEY") == 0);
    free(key);
    CHECK_OK(wb_resolve_key(url, "explicit555", &key, &src, warn, sizeof(warn)));
    CHECK(key && strcmp(key, "explicit555") == 0 && strcmp(src, "option") == 0);
    free(key);
    unsetenv("WANDB_API_KEY");

    /* through djct_log_init: key file warning surfaces; auto mode without a key goes offline */
    char runs[512];
    snprintf(runs, sizeof(runs), "%s/runs-key", tmp);
    chmod(p, 0640);
    djct_log_options o = base_opts(runs);
    o.mode = DJCT_LOG_MODE_OFFLINE;
    CHECK_OK(djct_log_init(&o));
    CHECK(strcmp(djct_log_key_source(), "none") == 0); /* offline: no key needed, none read */
    CHECK_OK(djct_log_finish(0));
    unlink(p);
    snprintf(p, sizeof(p), "%s/.netrc", home);
    unlink(p);
    unsetenv("WANDB_MODE");
    o.mode = DJCT_LOG_MODE_AUTO;
    CHECK_OK(djct_log_init(&o));
    CHECK(strstr(djct_log_warnings(), "no wandb API key found") != NULL);
    CHECK(strcmp(djct_log_key_source(), "none") == 0);
    CHECK_OK(djct_log_finish(0));
    /* explicit online without a key: an error that says what to do */
    o.mode = DJCT_LOG_MODE_ONLINE;
    CHECK_ERR(djct_log_init(&o), DJCT_EINVAL, "no API key");
    setenv("WANDB_MODE", "bogus", 1);
    o.mode = DJCT_LOG_MODE_AUTO;
    CHECK_ERR(djct_log_init(&o), DJCT_EINVAL, "WANDB_MODE='bogus'");
    setenv("WANDB_MODE", "offline", 1);
    o.version = 99;
    CHECK_ERR(djct_log_init(&o), DJCT_EINVAL, "djct_log_options version 99");
}

static void test_activate_and_steps(void)
{
    char runs[512];
    snprintf(runs, sizeof(runs), "%s/runs-act", tmp);
    CHECK_OK(djct_log("before_init", 1)); /* a no-op, not an error */
    CHECK_OK(djct_log_flush(NULL, -1));
    djct_log_options o = base_opts(runs);
    o.mode = DJCT_LOG_MODE_OFFLINE;
    o.run_id = "actrun";
    o.config_json = "{\"lr\":0.1,\"arch\":\"mlp\"}";
    o.csv = 1;
    CHECK_OK(djct_log_init(&o));
    CHECK_ERR(djct_log_init(&o), DJCT_EINVAL, "called twice");
    CHECK(djct_log_is_active());
    CHECK_OK(djct_log("a", 1.0));
    CHECK_OK(djct_log("a", 3.0)); /* accumulates: mean 2 */
    djct_log_deactivate();
    CHECK(!djct_log_is_active());
    CHECK_OK(djct_log("b", 2.0)); /* ignored */
    djct_log_activate();
    CHECK_OK(djct_log_reduce("c", 5.0, DJCT_REDUCE_SUM));
    CHECK_OK(djct_log_reduce("c", 6.0, DJCT_REDUCE_SUM));
    CHECK_ERR(djct_log_reduce("c", 1.0, DJCT_REDUCE_MAX), DJCT_EINVAL, "'c'");
    CHECK_ERR(djct_log(NULL, 1.0), DJCT_EINVAL, "name");
    CHECK_OK(djct_log_reduce("m", 4.0, DJCT_REDUCE_MIN));
    CHECK_OK(djct_log_reduce("m", -4.0, DJCT_REDUCE_MIN));
    CHECK_OK(djct_log_flush("val_", -1));
    cJSON *row = cJSON_Parse(djct_log_last_row());
    CHECK(row != NULL);
    CHECK_NEAR(json_num(row, "val_a"), 2.0, 1e-12);
    CHECK_NEAR(json_num(row, "val_c"), 11.0, 1e-12);
    CHECK_NEAR(json_num(row, "val_m"), -4.0, 1e-12);
    CHECK(cJSON_GetObjectItem(row, "val_b") == NULL && cJSON_GetObjectItem(row, "a") == NULL);
    CHECK_NEAR(json_num(row, "_step"), 0, 0);
    CHECK(json_num(row, "_runtime") >= 0 && json_num(row, "_timestamp") > 1.6e9);
    cJSON_Delete(row);
    /* nothing buffered: no row, the step does not advance */
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK_OK(djct_log("loss", 0.5));
    CHECK_OK(djct_log_flush(NULL, 10));
    CHECK_OK(djct_log("loss", 0.25));
    CHECK_OK(djct_log("weird", NAN));
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK(strstr(djct_log_last_row(), "\"_step\":11") && strstr(djct_log_last_row(), "\"weird\":NaN"));
    CHECK_OK(djct_log("loss", 0.1));
    CHECK_ERR(djct_log_flush(NULL, 5), DJCT_EINVAL, "step 5 is not after the last step 11");
    CHECK_OK(djct_log_config_set("epochs", "12"));
    CHECK_OK(djct_log_config_set("note", "plain text"));
    CHECK_OK(djct_log_summary_set("best", "0.01"));
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", djct_log_run_dir());
    CHECK(strstr(dir, "/runs-act/actrun") != NULL);
    CHECK_OK(djct_log_finish(7));
    CHECK(djct_log_run_dir() == NULL);

    char p[1200];
    snprintf(p, sizeof(p), "%s/history.jsonl", dir);
    CHECK(t_count_lines(p) == 3);
    cJSON *cfg = read_json(dir, "config.json"), *run = read_json(dir, "run.json"), *sum = read_json(dir, "summary.json");
    CHECK(cfg && json_num(cfg, "lr") == 0.1 && json_num(cfg, "epochs") == 12);
    CHECK(cfg && cJSON_IsString(cJSON_GetObjectItem(cfg, "note")));
    CHECK(run && json_num(run, "exit_code") == 7 && cJSON_IsTrue(cJSON_GetObjectItem(run, "finished")));
    CHECK(run && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(run, "mode")), "offline") == 0);
    CHECK(run && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(run, "run_id")), "actrun") == 0);
    CHECK(run && json_num(run, "jobs") == 1); /* a number, not null */
    CHECK(sum == NULL); /* holds a NaN token, which cJSON does not parse: check the text */
    snprintf(p, sizeof(p), "%s/summary.json", dir);
    char *st = harness_slurp(p, NULL);
    CHECK(st && strstr(st, "\"loss\":0.25") && strstr(st, "\"best\":0.01") && strstr(st, "\"_step\":11") &&
          strstr(st, "\"_wandb\":{\"runtime\":"));
    free(st);
    snprintf(p, sizeof(p), "%s/history.csv", dir);
    char *csv = harness_slurp(p, NULL);
    CHECK(csv && strncmp(csv, "_step,_runtime,_timestamp,val_a,val_c,val_m,loss,weird\n", 55) == 0);
    CHECK(t_count_lines(p) == 4);
    free(csv);
    cJSON_Delete(cfg);
    cJSON_Delete(run);
    cJSON_Delete(sum);

    /* resume the same run id (a requeued job): appended, steps and runtime continue; a torn last
     * line from a killed job is cut */
    snprintf(p, sizeof(p), "%s/history.jsonl", dir);
    FILE *f = fopen(p, "a");
    fputs("{\"loss\":0.987654321,\"_st", f);
    fclose(f);
    CHECK_OK(djct_log_init(&o));
    CHECK_OK(djct_log("loss", 0.05));
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK(strstr(djct_log_last_row(), "\"_step\":12") != NULL);
    CHECK_OK(djct_log_finish(0));
    CHECK(t_count_lines(p) == 4);
    char *h = harness_slurp(p, NULL);
    CHECK(h && !strstr(h, "\"_st\n") && !strstr(h, "0.987654321"));
    free(h);
    cfg = read_json(dir, "config.json");
    CHECK(cfg && json_num(cfg, "epochs") == 12); /* the first job's config entries survive */
    cJSON_Delete(cfg);
    run = read_json(dir, "run.json");
    CHECK(run && json_num(run, "jobs") == 2);
    cJSON_Delete(run);
    /* the summary of the first job stays (its override, a key this job did not log, a NaN) and this
     * job's rows update it */
    snprintf(p, sizeof(p), "%s/summary.json", dir);
    st = harness_slurp(p, NULL);
    CHECK(st && strstr(st, "\"best\":0.01") && strstr(st, "\"weird\":NaN") && strstr(st, "\"val_a\":2") &&
          strstr(st, "\"loss\":0.05") && strstr(st, "\"_step\":12"));
    free(st);
    snprintf(p, sizeof(p), "%s/history.csv", dir);
    CHECK(t_count_lines(p) == 5);
}

/* requests the server holds (the "hold" fault) right now */
static int held_uploads(test_srv *s)
{
    cJSON *st = srv_state(s);
    int n = st ? (int)json_num(st, "held") : -1;
    cJSON_Delete(st);
    return n;
}

/* wait (up to a minute: only a loaded machine takes long) until the uploader's request is held */
static int wait_held(test_srv *s)
{
    for (int i = 0; i < 1200 && held_uploads(s) != 1; i++)
        t_sleep(0.05);
    return held_uploads(s) == 1;
}

static void test_online_exact(void)
{
    test_srv s;
    if (!server_up(&s, 0))
        return;
    char runs[512];
    djct_log_options o = online_opts(&s, runs, "runs-online");
    o.run_id = "onl1";
    o.run_name = "display-1";
    o.group = "grp";
    o.tags = "mpi, c";
    o.notes = "a note";
    o.config_json = "{\"lr\":0.01,\"ranks\":4}";
    o.heartbeat_s = 3600;
    /* the uploader creates the run and sleeps until its heartbeat (an hour here): the first row
     * must wake it; its request is held, so the rows after it pile up and go out batched */
    CHECK_OK(srv_control(&s, "{\"fs\":[\"hold\"]}"));
    CHECK_OK(djct_log_init(&o));
    harness_rows rows = HARNESS_ROWS_INIT;
    for (int i = 0; i < 20; i++) {
        ROW_OK(rows, djct_log("loss", 1.0 / (i + 1)), "row %d", i);
        ROW_OK(rows, djct_log("acc", i * 0.05), "row %d", i);
        ROW_OK(rows, djct_log_flush(NULL, -1), "row %d: flush", i);
        if (i == 0)
            ROW(rows, wait_held(&s), "the first row did not wake the uploader");
    }
    CHECK_ROWS(rows);
    CHECK_OK(srv_control(&s, "{\"release\":true}"));
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", djct_log_run_dir());
    djct_log_stats stt;
    CHECK(strstr(djct_log_last_row(), "\"_step\":19") != NULL); /* waits for the writer thread */
    CHECK_OK(djct_log_get_stats(&stt));
    CHECK(stt.rows == 20);
    CHECK_OK(djct_log_finish(3));
    CHECK(strcmp(djct_log_warnings(), "") == 0);

    cJSON *st = srv_state(&s), *run = srv_run(st, "test-entity/proj/onl1");
    CHECK(run != NULL);
    CHECK(history_exact(srv_file(run, "wandb-history.jsonl"), 20, 0));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(run, "complete")) && json_num(run, "exitcode") == 3);
    cJSON *sum = cJSON_GetArrayItem(srv_file(run, "wandb-summary.json"), 0);
    cJSON *sj = sum ? cJSON_Parse(sum->valuestring) : NULL;
    CHECK(sj && json_num(sj, "_step") == 19 && fabs(json_num(sj, "loss") - 0.05) < 1e-12);
    CHECK(sj && cJSON_GetObjectItem(sj, "_wandb") && cJSON_GetObjectItem(sj, "_runtime"));
    cJSON_Delete(sj);
    /* the UpsertBucket variables */
    cJSON *up = cJSON_GetArrayItem(cJSON_GetObjectItem(run, "upserts"), 0);
    CHECK(up && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(up, "name")), "onl1") == 0);
    CHECK(up && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(up, "project")), "proj") == 0);
    CHECK(up && cJSON_IsNull(cJSON_GetObjectItem(up, "entity")));
    CHECK(up && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(up, "displayName")), "display-1") == 0);
    CHECK(up && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(up, "groupName")), "grp") == 0);
    CHECK(up && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(up, "notes")), "a note") == 0);
    cJSON *tags = cJSON_GetObjectItem(up, "tags");
    CHECK(cJSON_GetArraySize(tags) == 2 && !strcmp(cJSON_GetArrayItem(tags, 1)->valuestring, "c"));
    cJSON *cfg = up ? cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItem(up, "config"))) : NULL;
    CHECK(cfg && json_num(cJSON_GetObjectItem(cfg, "lr"), "value") == 0.01);
    CHECK(cfg && json_num(cJSON_GetObjectItem(cfg, "ranks"), "value") == 4);
    cJSON_Delete(cfg);
    /* every request: Basic api:<key>; file_stream offsets contiguous from 0, complete only last */
    cJSON *reqs = srv_requests(&s), *r;
    int n_fs = 0, bad_auth = 0, next = 0, contiguous = 1, complete_at = -1, idx = 0, n_gql = 0;
    cJSON_ArrayForEach(r, reqs)
    {
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind"));
        bad_auth += strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "auth")), "ok") != 0;
        if (!strcmp(kind, "gql"))
            n_gql++;
        if (strcmp(kind, "fs"))
            continue;
        if (!strstr(cJSON_GetStringValue(cJSON_GetObjectItem(r, "path")), "/files/test-entity/proj/onl1/file_stream"))
            contiguous = 0;
        cJSON *body = cJSON_GetObjectItem(r, "body");
        cJSON *h = cJSON_GetObjectItem(cJSON_GetObjectItem(body, "files"), "wandb-history.jsonl");
        if (h) {
            contiguous &= (int)json_num(h, "offset") == next;
            next += cJSON_GetArraySize(cJSON_GetObjectItem(h, "content"));
        }
        if (cJSON_IsTrue(cJSON_GetObjectItem(body, "complete")))
            complete_at = idx;
        idx++;
        n_fs++;
    }
    CHECK(bad_auth == 0 && n_gql == 1);
    CHECK(contiguous && next == 20);
    CHECK(complete_at == n_fs - 1);
    CHECK(n_fs >= 2 && n_fs < 20); /* the held one, then the rest batched: not one request per row */
    if (!(n_fs >= 2 && n_fs < 20))
        fprintf(stderr, "file_stream requests: %d\n", n_fs);
    cJSON_Delete(reqs);
    cJSON_Delete(st);
    /* the key is never in the journal */
    CHECK(!t_grep_dir(dir, TEST_KEY));
    cJSON *us = read_json(dir, "upload-state.json");
    CHECK(us && json_num(us, "history_acked") == 20 && cJSON_IsTrue(cJSON_GetObjectItem(us, "complete_sent")));
    cJSON_Delete(us);
    srv_stop(&s);
}

static void test_faults_exactly_once(void)
{
    test_srv s;
    if (!server_up(&s, 1))
        return;
    /* the first file_stream request is held until released: every flush meanwhile returns */
    CHECK_OK(srv_control(&s, "{\"gql\":[500,\"drop\"],\"fs\":[\"hold\",500,\"429:0.3\",\"drop\",\"applydrop\",502,"
                             "\"ok\",\"applydrop\"]}"));
    char runs[512];
    djct_log_options o = online_opts(&s, runs, "runs-faults");
    o.run_id = "flt1";
    o.entity = "team";
    CHECK_OK(djct_log_init(&o));
    harness_rows rows = HARNESS_ROWS_INIT;
    for (int i = 0; i < 30; i++) {
        ROW_OK(rows, djct_log("x", i), "row %d", i);
        ROW_OK(rows, djct_log_flush(NULL, -1), "row %d: flush", i);
        if (i == 0)
            ROW(rows, wait_held(&s), "the first upload never reached the server");
        t_sleep(0.03);
    }
    CHECK_ROWS(rows);
    /* the training loop never waits for the uploads: 29 flushes returned, the upload still held */
    CHECK(held_uploads(&s) == 1);
    CHECK_OK(srv_control(&s, "{\"release\":true}"));
    CHECK_OK(djct_log_finish(0));
    cJSON *st = srv_state(&s), *run = srv_run(st, "team/proj/flt1");
    CHECK(history_exact(srv_file(run, "wandb-history.jsonl"), 30, 0));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(run, "complete")) && json_num(run, "exitcode") == 0);
    /* Retry-After honoured: the request after the 429 came >= 0.3 s later */
    cJSON *reqs = srv_requests(&s), *r;
    double t429 = -1, after = -1;
    int n429 = 0;
    cJSON_ArrayForEach(r, reqs)
    {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind")), "fs"))
            continue;
        if (t429 >= 0 && after < 0)
            after = json_num(r, "t");
        if (json_num(r, "status") == 429) {
            t429 = json_num(r, "t");
            n429++;
        }
    }
    CHECK(n429 == 1 && after - t429 >= 0.28);
    cJSON_Delete(reqs);
    cJSON_Delete(st);
    srv_stop(&s);
}

static void test_final_4xx_then_sync(void)
{
    test_srv s;
    if (!server_up(&s, 2))
        return;
    char runs[512], dir[1024];
    djct_log_options o = online_opts(&s, runs, "runs-final");
    o.run_id = "fin1";
    CHECK_OK(djct_log_init(&o));
    snprintf(dir, sizeof(dir), "%s", djct_log_run_dir());
    harness_rows rows = HARNESS_ROWS_INIT;
    for (int i = 0; i < 5; i++) {
        ROW_OK(rows, djct_log("y", i), "row %d", i);
        ROW_OK(rows, djct_log_flush(NULL, -1), "row %d: flush", i);
    }
    djct_log_stats stt = {0};
    for (int i = 0; i < 100 && stt.rows_acked < 5; i++) {
        t_sleep(0.05);
        djct_log_get_stats(&stt);
    }
    CHECK(stt.rows_acked == 5 && stt.upload_state == 1);
    CHECK_OK(srv_control(&s, "{\"fs_always\":404}"));
    for (int i = 5; i < 12; i++) {
        ROW_OK(rows, djct_log("y", i), "row %d", i);
        ROW_OK(rows, djct_log_flush(NULL, -1), "row %d: flush", i);
        t_sleep(0.02);
    }
    CHECK_ROWS(rows);
    for (int i = 0; i < 100 && stt.upload_state != 2; i++) {
        t_sleep(0.05);
        djct_log_get_stats(&stt);
    }
    CHECK(stt.upload_state == 2);
    CHECK(strstr(djct_log_warnings(), "HTTP 404") && strstr(djct_log_warnings(), "djct_sync"));
    /* journaling goes on after the stream stopped */
    CHECK_OK(djct_log("y", 12));
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK_ERR(djct_log_finish(0), DJCT_EIO, "djct_sync");
    char p[1200];
    snprintf(p, sizeof(p), "%s/history.jsonl", dir);
    CHECK(t_count_lines(p) == 13);
    cJSON *us = read_json(dir, "upload-state.json");
    CHECK(us && json_num(us, "history_acked") == 5 && cJSON_IsString(cJSON_GetObjectItem(us, "fatal")));
    cJSON_Delete(us);
    /* the 404 was not retried: exactly one 404 answer */
    cJSON *reqs = srv_requests(&s), *r;
    int n404 = 0;
    cJSON_ArrayForEach(r, reqs) n404 += json_num(r, "status") == 404;
    CHECK(n404 == 1);
    cJSON_Delete(reqs);

    /* later, from a login node: djct_sync resumes at the acknowledged offset */
    CHECK_OK(srv_control(&s, "{\"fs_always\":null}"));
    djct_sync_options so = DJCT_SYNC_OPTIONS_INIT;
    so.api_key = TEST_KEY;
    so.retry_min_s = 0.05;
    so.timeout_s = 20;
    djct_log_upload rep;
    CHECK_OK(djct_log_sync(&rep, dir, &so));
    CHECK(rep.rows_sent == 8 && rep.complete && rep.rows == 13 && rep.rows_pending == 0);
    cJSON *st = srv_state(&s), *run = srv_run(st, "test-entity/proj/fin1");
    CHECK(history_exact(srv_file(run, "wandb-history.jsonl"), 13, 0));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(run, "complete")) && json_num(run, "exitcode") == 0);
    reqs = srv_requests(&s);
    int first_sync_offset = -1, seen404 = 0;
    cJSON_ArrayForEach(r, reqs)
    {
        if (json_num(r, "status") == 404)
            seen404 = 1;
        cJSON *h = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "body"), "files"),
                                       "wandb-history.jsonl");
        if (seen404 && json_num(r, "status") == 200 && h && first_sync_offset < 0)
            first_sync_offset = (int)json_num(h, "offset");
    }
    CHECK(first_sync_offset == 5);
    cJSON_Delete(reqs);
    cJSON_Delete(st);
    srv_stop(&s);
}

/* run the djct_sync app on `dir` with the key in its environment (and `env`, "VAR=value " or "");
 * it must succeed and say `expect`, and never the key */
static void sync_app(const char *env, const char *dir, const char *expect)
{
    char cmd[4096];
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof(cmd), "%sWANDB_API_KEY=%s %s/bin/djct_sync --retry-min 0.05 %s > %s/sync.out 2>&1", env,
             TEST_KEY, build, dir, tmp);
    int rc = system(cmd);
    CHECK(rc == 0);
    snprintf(cmd, sizeof(cmd), "%s/sync.out", tmp);
    char *out = harness_slurp(cmd, NULL);
    CHECK(out && strstr(out, expect) && !strstr(out, TEST_KEY));
    if (rc != 0 && out)
        fprintf(stderr, "djct_sync said: %s\n", out);
    free(out);
}

static void test_offline_then_sync(void)
{
    test_srv s;
    if (!server_up(&s, 3))
        return;
    char runs[512], dir[1024];
    snprintf(runs, sizeof(runs), "%s/runs-offline", tmp);
    djct_log_options o = base_opts(runs);
    o.mode = DJCT_LOG_MODE_OFFLINE;
    o.base_url = s.url; /* recorded in run.json for djct_sync; offline never connects */
    o.run_id = "off1";
    o.config_json = "{\"batch\":32}";
    CHECK_OK(djct_log_init(&o));
    snprintf(dir, sizeof(dir), "%s", djct_log_run_dir());
    harness_rows rows = HARNESS_ROWS_INIT;
    for (int i = 0; i < 7; i++) {
        ROW_OK(rows, djct_log_reduce("z", i, DJCT_REDUCE_MAX), "row %d", i);
        ROW_OK(rows, djct_log_flush("train_", -1), "row %d: flush", i);
    }
    CHECK_ROWS(rows);
    CHECK_OK(djct_log_finish(2));
    cJSON *reqs = srv_requests(&s);
    CHECK(cJSON_GetArraySize(reqs) == 0);
    cJSON_Delete(reqs);

    sync_app("", dir, "sent 7 history rows, the config and the summary; nothing left"); /* the app, as a user runs it */
    cJSON *st = srv_state(&s), *run = srv_run(st, "test-entity/proj/off1");
    CHECK(history_exact(srv_file(run, "wandb-history.jsonl"), 7, 0));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(run, "complete")) && json_num(run, "exitcode") == 2);
    cJSON *line = cJSON_GetArrayItem(srv_file(run, "wandb-history.jsonl"), 6);
    CHECK(line && strstr(line->valuestring, "\"train_z\":6"));
    cJSON *up = cJSON_GetArrayItem(cJSON_GetObjectItem(run, "upserts"), 0);
    CHECK(up && strstr(cJSON_GetStringValue(cJSON_GetObjectItem(up, "config")), "\"batch\":{\"value\":32}"));
    cJSON_Delete(st);

    /* syncing again sends no history; without upload-state the server's historyLineCount is used */
    djct_sync_options so = DJCT_SYNC_OPTIONS_INIT;
    so.api_key = TEST_KEY;
    djct_log_upload rep;
    CHECK_OK(djct_log_sync(&rep, dir, &so));
    CHECK(rep.rows_sent == 0 && rep.complete);
    char p[1200];
    snprintf(p, sizeof(p), "%s/upload-state.json", dir);
    unlink(p);
    CHECK_OK(djct_log_sync(&rep, dir, &so));
    CHECK(rep.rows_sent == 0);
    st = srv_state(&s);
    CHECK(history_exact(srv_file(srv_run(st, "test-entity/proj/off1"), "wandb-history.jsonl"), 7, 0));
    cJSON_Delete(st);
    CHECK(!t_grep_dir(dir, TEST_KEY));

    /* errors name the problem */
    CHECK_ERR(djct_log_sync(NULL, tmp, &so), DJCT_EINVAL, "not a djct run directory");
    so.api_key = NULL;
    unsetenv("WANDB_API_KEY");
    CHECK_ERR(djct_log_sync(NULL, dir, &so), DJCT_EINVAL, "no wandb API key");
    srv_stop(&s);
}

static void test_preempt_and_slow(void)
{
    test_srv s;
    if (!server_up(&s, 4))
        return;
    /* the first file_stream request is held until released, every later answer takes 0.5 s:
       flush must not notice */
    CHECK_OK(srv_control(&s, "{\"fs\":[\"hold\"],\"fs_always\":\"slow:0.5\"}"));
    char runs[512];
    djct_log_options o = online_opts(&s, runs, "runs-preempt");
    o.run_id = "pre1";
    o.no_fsync = 1;
    CHECK_OK(djct_log_init(&o));
    harness_rows rows = HARNESS_ROWS_INIT;
    for (int i = 0; i < 40; i++) {
        djct_log("q", i);
        ROW_OK(rows, djct_log_flush(NULL, -1), "row %d", i);
        if (i == 0)
            ROW(rows, wait_held(&s), "the first upload never reached the server");
        t_sleep(0.01);
    }
    CHECK_ROWS(rows);
    CHECK(held_uploads(&s) == 1); /* 39 flushes returned while the first upload was held */
    CHECK_OK(srv_control(&s, "{\"release\":true}"));
    CHECK_OK(djct_log_mark_preempting());
    CHECK_OK(djct_log_finish(0));
    cJSON *st = srv_state(&s), *run = srv_run(st, "test-entity/proj/pre1");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(run, "preempting")));
    CHECK(!cJSON_IsTrue(cJSON_GetObjectItem(run, "complete")));
    CHECK(history_exact(srv_file(run, "wandb-history.jsonl"), 40, 0));
    cJSON_Delete(st);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/pre1", runs);
    cJSON *rj = read_json(dir, "run.json");
    CHECK(rj && cJSON_IsTrue(cJSON_GetObjectItem(rj, "preempted")) && cJSON_IsNull(cJSON_GetObjectItem(rj, "exit_code")));
    cJSON_Delete(rj);

    /* a dead server: finish gives up at its time limit and says how to recover */
    CHECK_OK(srv_control(&s, "{\"fs_always\":500}"));
    o.run_id = "pre2";
    o.finish_timeout_s = 0.5;
    CHECK_OK(djct_log_init(&o));
    djct_log("q", 1);
    CHECK_OK(djct_log_flush(NULL, -1));
    int rc = djct_log_finish(0);
    CHECK(rc == DJCT_ETIMEOUT && strstr(djct_last_error(), "did not finish within") &&
          strstr(djct_last_error(), "djct_sync"));
    srv_stop(&s);
}

/* ---- the journal back to a checkpoint ---------------------------------------------------------- */

static void rows_logged(djct_log_options *o, int n, int64_t *ckpt_step, int ckpt_after)
{
    CHECK_OK(djct_log_init(o));
    for (int i = 0; i < n; i++) {
        djct_log("global_step", i + 1);
        djct_log_flush(NULL, -1);
        if (i + 1 == ckpt_after)
            CHECK_OK(djct_log_checkpoint(ckpt_step));
    }
}

/* A job continues from a checkpoint: the rows logged after it move aside (history.rewound.jsonl),
 * the next row takes the next _step, CSV, summary and upload state follow; rows the Python wrapper
 * appended after a finished job stay; a killed job's rows never pass for those. */
static void test_rewind(void)
{
    char runs[512], dir[1200], p[1400];
    snprintf(runs, sizeof(runs), "%s/runs-rewind", tmp);
    djct_log_options o = base_opts(runs);
    o.mode = DJCT_LOG_MODE_OFFLINE;
    o.run_id = "rw1";
    o.csv = 1;
    int64_t ck = -5, never = -5;
    CHECK(djct_log_checkpoint(&ck) == 0 && ck == -2); /* not initialised */
    /* job 1: 10 rows, a checkpoint after the 6th (its _step 5). A process cannot be killed and go on
     * testing, so the job finishes and then run.json and upload-state.json are made as a killed
     * job leaves them */
    rows_logged(&o, 10, &ck, 6);
    CHECK(ck == 5);
    snprintf(dir, sizeof(dir), "%s", djct_log_run_dir());
    CHECK_OK(djct_log_finish(0));
    /* as a killed job leaves it: no lines_at_finish, an upload state that went past the checkpoint */
    cJSON *run = read_json(dir, "run.json");
    cJSON_DeleteItemFromObject(run, "lines_at_finish");
    char *t = cJSON_Print(run);
    snprintf(p, sizeof(p), "%s/run.json", dir);
    t_write(p, t, 0644);
    free(t);
    cJSON_Delete(run);
    snprintf(p, sizeof(p), "%s/upload-state.json", dir);
    t_write(p, "{\"history_acked\": 9, \"summary_acked\": true, \"complete_sent\": false}", 0644);
    /* job 2 continues from the checkpoint */
    CHECK_OK(djct_log_init(&o));
    CHECK_OK(djct_log_rewind(5));
    djct_log_stats st;
    CHECK_OK(djct_log_get_stats(&st));
    CHECK(st.rows_rewound == 4);
    CHECK_OK(djct_log("global_step", 7));
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK(strstr(djct_log_last_row(), "\"_step\":6,") != NULL);
    CHECK_OK(djct_log_checkpoint(&never)); /* the rows are in the journal */
    snprintf(p, sizeof(p), "%s/history.jsonl", dir);
    CHECK(t_count_lines(p) == 7);
    snprintf(p, sizeof(p), "%s/history.rewound.jsonl", dir);
    char *rw = harness_slurp(p, NULL);
    CHECK(rw && t_count_lines(p) == 4 && strstr(rw, "\"global_step\":7,\"_step\":6") &&
          strstr(rw, "\"global_step\":10,\"_step\":9"));
    free(rw);
    snprintf(p, sizeof(p), "%s/history.csv", dir);
    CHECK(t_count_lines(p) == 8);
    cJSON *us = read_json(dir, "upload-state.json");
    CHECK(us && json_num(us, "history_acked") == 6 && cJSON_IsFalse(cJSON_GetObjectItem(us, "summary_acked")));
    cJSON_Delete(us);
    CHECK_OK(djct_log_finish(0));
    cJSON *sum = read_json(dir, "summary.json");
    CHECK(sum && json_num(sum, "global_step") == 7 && json_num(sum, "_step") == 6);
    cJSON_Delete(sum);
    run = read_json(dir, "run.json");
    CHECK(run && json_num(run, "lines_at_finish") == 7);
    cJSON_Delete(run);

    /* after a finished job, another writer (the Python wrapper) appends two rows; a job continuing
     * from an earlier checkpoint (_step 3) moves the finished job's rows after it, not those two */
    snprintf(p, sizeof(p), "%s/history.jsonl", dir);
    FILE *f = fopen(p, "a");
    fputs("{\"eval_acc\":0.5,\"_step\":7,\"_runtime\":1,\"_timestamp\":1700000000}\n"
          "{\"eval_acc\":0.75,\"_step\":8,\"_runtime\":2,\"_timestamp\":1700000001}\n", f);
    fclose(f);
    CHECK_OK(djct_log_init(&o));
    CHECK_OK(djct_log_rewind(3));
    CHECK_OK(djct_log_get_stats(&st));
    CHECK(st.rows_rewound == 3);
    CHECK_OK(djct_log("global_step", 5));
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK(strstr(djct_log_last_row(), "\"_step\":9,") != NULL); /* after the kept rows */
    char *h = harness_slurp(p, NULL);
    CHECK(h && t_count_lines(p) == 7 && strstr(h, "\"global_step\":4,\"_step\":3") && strstr(h, "eval_acc\":0.5") &&
          strstr(h, "eval_acc\":0.75") && !strstr(h, "\"global_step\":7"));
    free(h);
    /* a killed job never marks where it stopped: all its rows after a checkpoint are its own */
    CHECK_OK(djct_log_rewind(-1));
    CHECK_OK(djct_log_get_stats(&st));
    CHECK(st.rows_rewound == 7 && t_count_lines(p) == 0);
    CHECK_OK(djct_log_finish(0));
    snprintf(p, sizeof(p), "%s/history.csv", dir);
    CHECK(access(p, F_OK) != 0);
    /* nothing to move: a no-op */
    CHECK_OK(djct_log_init(&o));
    CHECK_OK(djct_log_rewind(100));
    CHECK_OK(djct_log_get_stats(&st));
    CHECK(st.rows_rewound == 0);
    CHECK_OK(djct_log_finish(0));
}

/* ---- djct_sync as a user meets it ------------------------------------------------------------- */

/* run `env djct_sync args` in the background, output to out; returns the pid */
static pid_t sync_spawn(const char *env, const char *args, const char *out)
{
    char cmd[4096];
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof(cmd), "exec env %s %s/bin/djct_sync --retry-min 0.05 --retry-max 0.2 %s > %s 2>&1", env,
             build, args, out);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* run it to the end: its exit code (-1: did not end within 60 s), its output into *text */
static int sync_run(const char *env, const char *args, char **text)
{
    char out[600];
    snprintf(out, sizeof(out), "%s/sync-run.out", tmp);
    pid_t pid = sync_spawn(env, args, out);
    int st = 0, done = 0;
    for (int i = 0; i < 1200 && !(done = waitpid(pid, &st, WNOHANG) == pid); i++)
        t_sleep(0.05);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    *text = harness_slurp(out, NULL);
    if (!*text)
        *text = strdup("");
    return done && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_str(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void offline_run(const char *runs, const char *run_id, const char *base_url, int rows, char *dir, size_t n)
{
    djct_log_options o = base_opts(runs);
    o.mode = DJCT_LOG_MODE_OFFLINE;
    o.base_url = base_url;
    o.run_id = run_id;
    CHECK_OK(djct_log_init(&o));
    snprintf(dir, n, "%s", djct_log_run_dir());
    for (int i = 0; i < rows; i++) {
        djct_log("v", i);
        djct_log_flush(NULL, -1);
    }
    CHECK_OK(djct_log_finish(0));
}

/* djct_sync: the base URL is --base-url, else $WANDB_BASE_URL, else the run's record (with a
 * note when that is not the record); one line per retry; what was sent and what is left at the
 * end; SIGINT stops it with that account and exit 130; the key file warning is shown; .netrc is
 * read by host; plain http to a host that is not a loopback address is refused without --insecure */
static void test_sync_app(void)
{
    test_srv s;
    if (!server_up(&s, 6))
        return;
    char runs[512], dir[1024], args[2048], env[2048], *out = NULL;
    snprintf(runs, sizeof(runs), "%s/runs-syncapp", tmp);
    /* an offline run records the default server: a self-hosted user names theirs in the environment */
    offline_run(runs, "sa1", NULL, 5, dir, sizeof(dir));
    snprintf(env, sizeof(env), "WANDB_API_KEY=%s WANDB_BASE_URL=%s/", TEST_KEY, s.url);
    int rc = sync_run(env, dir, &out);
    CHECK(rc == 0);
    char want[1600];
    snprintf(want, sizeof(want), "note: uploading to %s (WANDB_BASE_URL), not to https://api.wandb.ai, which the "
             "run recorded", s.url);
    CHECK(strstr(out, want) != NULL);
    CHECK(strstr(out, "sent 5 history rows, the config and the summary; nothing left: the server has all 5 rows and "
                      "the run is complete"));
    if (rc != 0)
        fprintf(stderr, "djct_sync said: %s\n", out);
    free(out);
    cJSON *st = srv_state(&s);
    CHECK(history_exact(srv_file(srv_run(st, "test-entity/proj/sa1"), "wandb-history.jsonl"), 5, 0));
    cJSON_Delete(st);

    /* --base-url wins over WANDB_BASE_URL (a dead one here); every retry is a line, naming the
     * request, the server, the reason and the next wait */
    offline_run(runs, "sa2", s.url, 6, dir, sizeof(dir));
    CHECK_OK(srv_control(&s, "{\"gql\":[503,\"429:0.1\"]}"));
    snprintf(env, sizeof(env), "WANDB_API_KEY=%s WANDB_BASE_URL=http://127.0.0.1:1", TEST_KEY);
    snprintf(args, sizeof(args), "--base-url %s %s", s.url, dir);
    rc = sync_run(env, args, &out);
    CHECK(rc == 0);
    snprintf(want, sizeof(want), "%s: UpsertBucket to %s: HTTP 503; retry 1 in ", dir, s.url);
    CHECK(strstr(out, want) != NULL);
    snprintf(want, sizeof(want), "UpsertBucket to %s: HTTP 429; retry 2 in 0.1 s (giving up in ", s.url);
    CHECK(strstr(out, want) != NULL);
    CHECK(count_str(out, "; retry ") == 2 && !strstr(out, "note: uploading"));
    CHECK(strstr(out, "sent 6 history rows"));
    free(out);

    /* SIGINT while a request is in flight: it stops, says what was sent and what is left, exit 130;
     * running it again finishes the upload */
    offline_run(runs, "sa3", s.url, 8, dir, sizeof(dir));
    CHECK_OK(srv_control(&s, "{\"fs\":[\"hold\"]}"));
    char outp[600];
    snprintf(outp, sizeof(outp), "%s/sync-int.out", tmp);
    snprintf(env, sizeof(env), "WANDB_API_KEY=%s", TEST_KEY);
    pid_t pid = sync_spawn(env, dir, outp);
    CHECK(wait_held(&s));
    kill(pid, SIGINT);
    int wst = 0, done = 0;
    for (int i = 0; i < 600 && !(done = waitpid(pid, &wst, WNOHANG) == pid); i++)
        t_sleep(0.05);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &wst, 0);
    }
    CHECK(done && WIFEXITED(wst) && WEXITSTATUS(wst) == 130);
    CHECK_OK(srv_control(&s, "{\"release\":true}"));
    out = harness_slurp(outp, NULL);
    CHECK(out && strstr(out, ": interrupted\n") && strstr(out, "sent 0 history rows; left: 8 of 8 history rows, "
                                                          "the summary and `complete`; run djct_sync again"));
    free(out);
    rc = sync_run(env, dir, &out);
    CHECK(rc == 0 && strstr(out, "sent 8 history rows"));
    free(out);

    /* warnings are shown: a key file readable by others, the key read from it */
    char home[600], p[800];
    snprintf(home, sizeof(home), "%s/home-syncapp", tmp);
    snprintf(p, sizeof(p), "%s/private", home);
    mkdir(home, 0700);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/private/wandb_api.sh", home);
    t_write(p, "export WANDB_API_KEY=" TEST_KEY "\n", 0644);
    snprintf(env, sizeof(env), "-u WANDB_API_KEY -u NETRC HOME=%s", home);
    rc = sync_run(env, dir, &out);
    CHECK(rc == 0 && strstr(out, "warning: key file ~/private/wandb_api.sh is readable by group or others (mode 0644); "
                                 "run: chmod 600 ~/private/wandb_api.sh"));
    CHECK(!strstr(out, TEST_KEY));
    free(out);
    unlink(p);
    /* .netrc by host, as curl reads it: no port in `machine` */
    snprintf(p, sizeof(p), "%s/.netrc", home);
    t_write(p, "machine 127.0.0.1 login api password " TEST_KEY "\n", 0600);
    rc = sync_run(env, dir, &out);
    CHECK(rc == 0 && strstr(out, "nothing left"));
    free(out);

    /* plain http to a host that is not a loopback address: refused before the key is read or sent,
     * unless --insecure (0.0.0.0 reaches this machine on Linux, so the opt-out can upload) */
    snprintf(env, sizeof(env), "WANDB_API_KEY=%s", TEST_KEY);
    int before = srv_count_all(&s);
    snprintf(args, sizeof(args), "--base-url http://0.0.0.0:%d %s", s.port, dir);
    rc = sync_run(env, args, &out);
    CHECK(rc == 1 && strstr(out, "refusing to send the API key over plain http to 0.0.0.0") &&
          strstr(out, "--insecure"));
    CHECK(srv_count_all(&s) == before);
    free(out);
    snprintf(args, sizeof(args), "--insecure --base-url http://0.0.0.0:%d %s", s.port, dir);
    rc = sync_run(env, args, &out);
    CHECK(rc == 0 && strstr(out, "nothing left") && !strstr(out, "refusing"));
    free(out);
    /* an online training run against such a server is warned */
    djct_log_options o = base_opts(runs);
    o.mode = DJCT_LOG_MODE_ONLINE;
    o.api_key = TEST_KEY;
    o.base_url = "http://0.0.0.0:1";
    o.run_id = "sa4";
    o.finish_timeout_s = 0.3;
    CHECK_OK(djct_log_init(&o));
    CHECK(strstr(djct_log_warnings(), "plain http to 0.0.0.0, not a loopback address") != NULL);
    djct_log_finish(0);
    CHECK(!t_grep_dir(runs, TEST_KEY));
    srv_stop(&s);
}

/* ---- HTTPS ------------------------------------------------------------------------------------- */

static char tls_dir[600];
static int have_tls; /* openssl made a CA, a server certificate it signed, and an unrelated CA */

static int make_certs(void)
{
    snprintf(tls_dir, sizeof(tls_dir), "%s/tls", tmp);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "command -v openssl >/dev/null && mkdir -p %s && cd %s && "
             "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj '/CN=djct test CA' && "
             "openssl req -x509 $K -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=djct other CA' && "
             "openssl req $K -keyout srv.key -out srv.csr -subj '/CN=127.0.0.1' && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 "
             "-extfile ext",
             tls_dir, tls_dir);
    char quiet[sizeof(cmd) + 512]; /* cmd, the log path (tmp is at most 255 bytes) and the shell glue */
    snprintf(quiet, sizeof(quiet), "(%s) >%s/openssl.log 2>&1", cmd, tmp);
    return system(quiet) == 0 ? 0 : -1;
}

/* requests the server logged, by kind ("gql", "fs", "tls": a refused TLS handshake) */
static int srv_count(test_srv *s, const char *kind)
{
    cJSON *reqs = srv_requests(s), *r;
    int n = 0;
    cJSON_ArrayForEach(r, reqs) n += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind")), kind);
    cJSON_Delete(reqs);
    return n;
}

static int log_rows_online(djct_log_options *o, const char *run_id, int rows, char *dir, size_t dir_size)
{
    o->run_id = run_id;
    int rc = djct_log_init(o);
    if (rc != 0)
        return rc;
    snprintf(dir, dir_size, "%s", djct_log_run_dir());
    for (int i = 0; i < rows; i++)
        if ((rc = djct_log("t", i)) || (rc = djct_log_flush(NULL, -1)))
            return rc;
    return 0;
}

/* TLS verification stays on unless turned off explicitly: a server whose certificate the system
 * does not trust is refused with one line naming the certificate and both ways out, and the rows
 * stay in the journal for djct_sync; the opt-out uploads; a CA bundle (option or environment)
 * uploads with verification on, and one with another CA is still refused. */
static void test_tls(void)
{
    if (!have_tls) {
        harness_skip("no openssl CLI to make test certificates (scripts/install-deps.sh installs it)");
        return;
    }
    test_srv s;
    if (!server_up(&s, 5))
        return;
    unsetenv("REQUESTS_CA_BUNDLE");
    unsetenv("CURL_CA_BUNDLE");
    unsetenv("SSL_CERT_FILE");
    char runs[512], dir[1024], ca[700], other[700], p[1200];
    snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
    snprintf(other, sizeof(other), "%s/other-ca.pem", tls_dir);
    djct_log_options o = online_opts(&s, runs, "runs-tls");

    /* (a) the default: refused at the handshake, one line, nothing lost */
    CHECK_OK(log_rows_online(&o, "tls1", 4, dir, sizeof(dir)));
    djct_log_stats st = {0};
    for (int i = 0; i < 200 && st.upload_state != 2; i++) {
        t_sleep(0.05);
        djct_log_get_stats(&st);
    }
    CHECK(st.upload_state == 2 && st.rows_acked == 0);
    const char *w = djct_log_warnings();
    CHECK(strstr(w, "certificate") && strstr(w, "ca_bundle") && strstr(w, "insecure") && !strstr(w, TEST_KEY));
    CHECK_ERR(djct_log_finish(0), DJCT_EIO, "TLS certificate is not trusted");
    const char *msg = djct_last_error();
    CHECK(!strchr(msg, '\n') && strstr(msg, "djct_sync") && !strstr(msg, TEST_KEY));
    snprintf(p, sizeof(p), "%s/history.jsonl", dir);
    CHECK(t_count_lines(p) == 4);
    for (int i = 0; i < 100 && srv_count(&s, "tls") == 0; i++)
        t_sleep(0.02);
    CHECK(srv_count(&s, "tls") >= 1 && srv_count(&s, "gql") == 0 && srv_count(&s, "fs") == 0);

    /* djct_sync verifies by default too; a bundle with another CA is refused; a missing one is named */
    djct_sync_options so = DJCT_SYNC_OPTIONS_INIT;
    so.api_key = TEST_KEY;
    so.retry_min_s = 0.05;
    so.timeout_s = 20;
    djct_log_upload rep;
    CHECK_ERR(djct_log_sync(&rep, dir, &so), DJCT_EIO, "certificate");
    CHECK(rep.rows_sent == 0 && rep.rows_pending == 4 && !rep.complete && strstr(rep.error, "certificate"));
    so.ca_bundle = other;
    CHECK_ERR(djct_log_sync(NULL, dir, &so), DJCT_EIO, "certificate");
    so.ca_bundle = "/nonexistent/ca.pem";
    CHECK_ERR(djct_log_sync(NULL, dir, &so), DJCT_EINVAL, "CA bundle '/nonexistent/ca.pem' (from the ca_bundle");
    setenv("SSL_CERT_FILE", "/nonexistent/env.pem", 1);
    so.ca_bundle = NULL;
    CHECK_ERR(djct_log_sync(NULL, dir, &so), DJCT_EINVAL, "(from SSL_CERT_FILE)");
    unsetenv("SSL_CERT_FILE");
    CHECK(srv_count(&s, "gql") == 0);

    /* (c) the app, trusting the test CA through $CURL_CA_BUNDLE: every row arrives */
    char env[800];
    snprintf(env, sizeof(env), "CURL_CA_BUNDLE=%s ", ca);
    sync_app(env, dir, "sent 4 history rows");
    cJSON *sst = srv_state(&s), *run = srv_run(sst, "test-entity/proj/tls1");
    CHECK(history_exact(srv_file(run, "wandb-history.jsonl"), 4, 0));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(run, "complete")) && json_num(run, "exitcode") == 0);
    cJSON_Delete(sst);

    /* (b) the explicit opt-out uploads online */
    o.insecure = 1;
    CHECK_OK(log_rows_online(&o, "tls2", 3, dir, sizeof(dir)));
    CHECK_OK(djct_log_finish(0));
    /* (c) the option, online; it wins over an environment variable naming another CA */
    o.insecure = 0;
    o.ca_bundle = ca;
    setenv("REQUESTS_CA_BUNDLE", other, 1);
    CHECK_OK(log_rows_online(&o, "tls3", 3, dir, sizeof(dir)));
    CHECK_OK(djct_log_finish(0));
    /* ... and the environment alone is refused for the other CA, at the handshake */
    o.ca_bundle = NULL;
    CHECK_OK(log_rows_online(&o, "tls4", 1, dir, sizeof(dir)));
    CHECK_ERR(djct_log_finish(0), DJCT_EIO, "certificate");
    unsetenv("REQUESTS_CA_BUNDLE");
    sst = srv_state(&s);
    CHECK(history_exact(srv_file(srv_run(sst, "test-entity/proj/tls2"), "wandb-history.jsonl"), 3, 0));
    CHECK(history_exact(srv_file(srv_run(sst, "test-entity/proj/tls3"), "wandb-history.jsonl"), 3, 0));
    CHECK(srv_run(sst, "test-entity/proj/tls4") == NULL);
    cJSON_Delete(sst);
    /* a bundle that cannot be read stops init before the run directory exists */
    o.ca_bundle = "/nonexistent/ca.pem";
    o.run_id = "tls5";
    CHECK_ERR(djct_log_init(&o), DJCT_EINVAL, "is not a readable file");
    snprintf(p, sizeof(p), "%s/tls5", runs);
    CHECK(access(p, F_OK) != 0);
    /* the key went nowhere but the Authorization header */
    CHECK(!t_grep_dir(runs, TEST_KEY) && !t_grep_dir(tls_dir, TEST_KEY));
    char *lg = harness_slurp(s.log, NULL);
    CHECK(lg && !strstr(lg, TEST_KEY));
    free(lg);
    srv_stop(&s);
}

/* A row the journal cannot take (here: the file size limit, as a full disk would) is a warning, not
 * a failed flush: a flush that failed on rank 0 alone would take rank 0 out of the training loop
 * while the other ranks wait for it. djct_log_finish reports it. Run in a child process, which the
 * size limit and SIGXFSZ would otherwise outlive. */
static void test_journal_write_fails(void)
{
    char runs[512];
    snprintf(runs, sizeof(runs), "%s/runs-full", tmp);
    pid_t pid = fork();
    if (pid == 0) {
        djct_log_options o = base_opts(runs);
        o.mode = DJCT_LOG_MODE_OFFLINE;
        o.run_id = "full1";
        if (djct_log_init(&o) != 0)
            _exit(100);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        int bad_flush = 0;
        for (int i = 0; i < 200; i++) {
            djct_log("loss_with_a_long_name_to_fill_the_journal", 1.0 / (i + 3));
            bad_flush |= djct_log_flush(NULL, -1) != 0;
        }
        int warned = strstr(djct_log_warnings(), "not written") != NULL;
        int frc = djct_log_finish(0);
        int named = strstr(djct_last_error(), "history") != NULL;
        _exit((bad_flush ? 1 : 0) | (warned ? 0 : 2) | (frc == DJCT_EIO ? 0 : 4) | (named ? 0 : 8));
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st));
    int code = WEXITSTATUS(st);
    CHECK(code != 100);
    CHECK(!(code & 1)); /* every flush returned 0 */
    CHECK(!(code & 2)); /* a warning says which row was not written */
    CHECK(!(code & 4)); /* finish: DJCT_EIO */
    CHECK(!(code & 8)); /* ... naming the history journal */
    char p[1024];
    snprintf(p, sizeof(p), "%s/full1/history.jsonl", runs);
    int lines = t_count_lines(p);
    CHECK(lines > 10 && lines < 200); /* the rows before the limit are there */
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/djct-test-log-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("WANDB_MODE", "offline", 1);
    unsetenv("WANDB_BASE_URL");
    unsetenv("WANDB_PROJECT");
    unsetenv("WANDB_ENTITY");
    unsetenv("WANDB_RUN_ID");
    const char *tags[7] = {"exact", "faults", "final", "sync", "preempt", NULL, "syncapp"};
    for (int i = 0; i < 7; i++)
        if (tags[i] && srv_spawn(&servers[i], tmp, tags[i]) != 0)
            fprintf(stderr, "cannot spawn python3 %s\n", t_server_script());
    have_tls = make_certs() == 0;
    if (have_tls) {
        char cert[700], key[700], ca[700];
        snprintf(cert, sizeof(cert), "%s/srv.pem", tls_dir);
        snprintf(key, sizeof(key), "%s/srv.key", tls_dir);
        snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
        if (srv_spawn_tls(&servers[5], tmp, "tls", cert, key, ca) != 0)
            fprintf(stderr, "cannot spawn python3 %s\n", t_server_script());
    }
    struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {{"new run id", test_new_run_id}, {"key lookup", test_key_lookup},
                 {"activate, steps, journal, resume", test_activate_and_steps},
                 {"online: exact requests", test_online_exact},
                 {"online: injected failures", test_faults_exactly_once},
                 {"online: final 4xx, then djct_sync", test_final_4xx_then_sync},
                 {"offline, then djct_sync", test_offline_then_sync},
                 {"slow server, preempting, finish limit", test_preempt_and_slow},
                 {"djct_sync: URL, retries, SIGINT, warnings", test_sync_app},
                 {"journal back to a checkpoint", test_rewind},
                 {"HTTPS: verification, opt-out, CA bundle", test_tls},
                 {"journal write fails: warning, finish", test_journal_write_fails}};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        double t0 = t_now();
        int before = harness_failed;
        parts[i].fn();
        printf("%-40s %5.2f s%s\n", parts[i].name, t_now() - t0, harness_failed > before ? "  FAILED" : "");
    }
    if (!harness_failed) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
    } else {
        fprintf(stderr, "kept %s for inspection\n", tmp);
    }
    return harness_report();
}
