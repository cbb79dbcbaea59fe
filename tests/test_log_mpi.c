/* The logging singleton over real ranks: mean/sum/min/max across ranks, key sets that differ
 * between ranks (reduced over the ranks that logged each key, no deadlock), the one-collective fast
 * path once key sets agree, inactive ranks, and that only rank 0 writes files or connects (ranks > 0
 * point at a trap socket of their own and must see no connection and write nothing). */
#define HARNESS_MPI
#include "harness.h"
#include "wandb_testlib.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int rank, size;
static char tmp[256];
static djct_comm *log_comm; /* non-NULL: the singleton runs on it (watched), as in djct_train */

static cJSON *flush_row(const char *prefix, int *rc)
{
    *rc = djct_log_flush(prefix, -1);
    if (*rc == 0)
        *rc = djct_log_settle(); /* a row whose keys changed is completed here */
    return rank == 0 ? cJSON_Parse(djct_log_last_row()) : NULL;
}

static double num(cJSON *o, const char *k) { return json_num(o, k); }

/* an offline run of this id, each rank with a directory of its own (only rank 0 may write one) */
static void init_offline(const char *run_id)
{
    char runs[512];
    snprintf(runs, sizeof(runs), "%s/runs-%s-%d", tmp, run_id, rank);
    djct_log_options o = DJCT_LOG_OPTIONS_INIT;
    o.mode = DJCT_LOG_MODE_OFFLINE;
    o.dir = runs;
    o.run_id = run_id;
    o.no_fsync = 1;
    o.comm = log_comm;
    CHECK_OK(djct_log_init(&o));
}

static void test_reductions(const char *run_id)
{
    init_offline(run_id);
    CHECK(djct_log_run_id() && strcmp(djct_log_run_id(), run_id) == 0);
    double n = size, sum_r = n * (n - 1) / 2;
    int rc;

    /* 1: same keys everywhere (first flush takes the key-gathering path: nothing agreed yet) */
    harness_rows calls = HARNESS_ROWS_INIT, mean = HARNESS_ROWS_INIT, sum = HARNESS_ROWS_INIT,
                 minmax = HARNESS_ROWS_INIT, twice = HARNESS_ROWS_INIT;
    for (int pass = 0; pass < 3; pass++) {
        ROW_OK(calls, djct_log("loss", rank + 1 + pass), "pass %d", pass);
        ROW_OK(calls, djct_log_reduce("count", 1, DJCT_REDUCE_SUM), "pass %d", pass);
        ROW_OK(calls, djct_log_reduce("lo", rank - pass, DJCT_REDUCE_MIN), "pass %d", pass);
        ROW_OK(calls, djct_log_reduce("hi", rank + pass, DJCT_REDUCE_MAX), "pass %d", pass);
        ROW_OK(calls, djct_log("acc", rank), "pass %d", pass);
        ROW_OK(calls, djct_log("acc", rank + 2), "pass %d", pass); /* two values here: mean over all 2n */
        cJSON *row = flush_row(NULL, &rc);
        ROW(calls, rc == 0, "pass %d: flush", pass);
        if (rank == 0) {
            ROW(mean, harness_near(num(row, "loss"), (n + 1) / 2 + pass, 1e-12) && num(row, "_step") == pass,
                "pass %d: loss %.17g, _step %g", pass, num(row, "loss"), num(row, "_step"));
            ROW(sum, num(row, "count") == n, "pass %d: count %g", pass, num(row, "count"));
            ROW(minmax, num(row, "lo") == -pass && num(row, "hi") == n - 1 + pass, "pass %d: lo %g, hi %g", pass,
                num(row, "lo"), num(row, "hi"));
            ROW(twice, harness_near(num(row, "acc"), (2 * sum_r + 2 * n) / (2 * n), 1e-12), "pass %d: acc %.17g",
                pass, num(row, "acc"));
        }
        cJSON_Delete(row);
    }
    CHECK_ROWS(calls);
    if (rank == 0) {
        CHECK_ROWS(mean);
        CHECK_ROWS(sum);
        CHECK_ROWS(minmax);
        CHECK_ROWS(twice);
    }
    djct_log_stats st;
    CHECK_OK(djct_log_get_stats(&st));
    CHECK(st.flushes == 3 && st.fast_flushes == 2); /* agreed key set: one packed collective */

    /* 2: different key sets: a key is reduced over the ranks that logged it */
    harness_rows c2 = HARNESS_ROWS_INIT;
    ROW_OK(c2, djct_log("common", rank), "common");
    if (rank % 2 == 0)
        ROW_OK(c2, djct_log("even", rank), "even");
    char mine[32];
    snprintf(mine, sizeof(mine), "only_r%d", rank);
    ROW_OK(c2, djct_log_reduce(mine, 10 * rank, DJCT_REDUCE_SUM), "%s", mine);
    if (rank == size - 1)
        ROW_OK(c2, djct_log_reduce("last_min", -7, DJCT_REDUCE_MIN), "last_min");
    cJSON *row = flush_row("val_", &rc);
    ROW(c2, rc == 0, "flush");
    CHECK_ROWS(c2);
    if (rank == 0) {
        double es = 0, ec = 0;
        for (int r = 0; r < size; r += 2)
            es += r, ec++;
        CHECK(harness_near(num(row, "val_common"), sum_r / n, 1e-12) && harness_near(num(row, "val_even"), es / ec, 1e-12));
        harness_rows only = HARNESS_ROWS_INIT;
        for (int r = 0; r < size; r++) {
            char k[40];
            snprintf(k, sizeof(k), "val_only_r%d", r);
            ROW(only, num(row, k) == 10 * r, "%s = %g", k, num(row, k));
        }
        CHECK_ROWS(only);
        CHECK(num(row, "val_last_min") == -7);
        CHECK(cJSON_GetObjectItem(row, "val_loss") == NULL);
    }
    cJSON_Delete(row);

    /* 3: nobody logs: no row, no step; 4: one rank logs, another is inactive */
    CHECK_OK(djct_log_flush(NULL, -1));
    if (rank == 1)
        djct_log_deactivate();
    CHECK_OK(djct_log("solo", 100 + rank)); /* ignored on rank 1 */
    row = flush_row(NULL, &rc);
    CHECK(rc == 0);
    if (rank == 0) {
        double s = 0;
        for (int r = 0; r < size; r++)
            s += r == 1 ? 0 : 100 + r;
        CHECK(harness_near(num(row, "solo"), s / (n - 1), 1e-12) && num(row, "_step") == 4);
    }
    cJSON_Delete(row);
    djct_log_activate();
    /* 5: more keys than the agreed vector on one rank only: still right */
    harness_rows c5 = HARNESS_ROWS_INIT;
    for (int k = 0; k < (rank == 0 ? 50 : 3); k++) {
        char name[32];
        snprintf(name, sizeof(name), "k%02d", k);
        ROW_OK(c5, djct_log(name, k), "%s", name);
    }
    row = flush_row(NULL, &rc);
    ROW(c5, rc == 0, "flush");
    CHECK_ROWS(c5);
    if (rank == 0)
        CHECK(num(row, "k49") == 49 && num(row, "k00") == 0 && num(row, "k02") == 2);
    cJSON_Delete(row);
    /* an explicit step that is not increasing fails alike on every rank, no hang */
    CHECK_OK(djct_log("late", 1));
    CHECK_ERR(djct_log_flush(NULL, 2), DJCT_EINVAL, "not after the last step");
    CHECK_OK(djct_log_finish(0));

    /* rank 0 alone wrote the journal */
    char p[1024];
    snprintf(p, sizeof(p), "%s/runs-red1-%d/red1/history.jsonl", tmp, rank);
    CHECK((access(p, F_OK) == 0) == (rank == 0));
    if (rank == 0)
        CHECK(t_count_lines(p) == 6);
}

/* The flushes of test_layout_transitions, one row each: the logging calls and flushes succeed
 * (calls), each took the path it should (path), and each row holds the exact values (vals). */
static harness_rows calls = HARNESS_ROWS_INIT, path = HARNESS_ROWS_INIT, vals = HARNESS_ROWS_INIT;

/* One flush; 1 when it took the one packed collective (the agreed layout), 0 when it gathered keys. */
static int flush_fast(const char *prefix, cJSON **row)
{
    djct_log_stats a, b;
    djct_log_get_stats(&a);
    int rc;
    *row = flush_row(prefix, &rc);
    djct_log_get_stats(&b);
    ROW(calls, rc == 0 && b.flushes == a.flushes + 1, "flush after %lld: rc %d", (long long)a.flushes, rc);
    return (int)(b.fast_flushes - a.fast_flushes);
}

/* log a (mean), b (sum), c (min), d (max); odd ranks in the opposite order */
static void log_abcd(void)
{
    if (rank % 2 == 0) {
        ROW_OK(calls, djct_log("a", rank + 1), "a");
        ROW_OK(calls, djct_log_reduce("b", 10 * rank, DJCT_REDUCE_SUM), "b");
        ROW_OK(calls, djct_log_reduce("c", -rank, DJCT_REDUCE_MIN), "c");
        ROW_OK(calls, djct_log_reduce("d", 0.5 * rank, DJCT_REDUCE_MAX), "d");
    } else {
        ROW_OK(calls, djct_log_reduce("d", 0.5 * rank, DJCT_REDUCE_MAX), "d");
        ROW_OK(calls, djct_log_reduce("c", -rank, DJCT_REDUCE_MIN), "c");
        ROW_OK(calls, djct_log_reduce("b", 10 * rank, DJCT_REDUCE_SUM), "b");
        ROW_OK(calls, djct_log("a", rank + 1), "a");
    }
}

/* a..d over the ranks in `in` (a mask), exactly: integer sums, one division */
static void check_abcd(cJSON *row, unsigned in, int step)
{
    if (rank != 0)
        return;
    double s = 0, cnt = 0, b = 0, c = INFINITY, d = -INFINITY;
    for (int r = 0; r < size; r++) {
        if (!(in >> r & 1))
            continue;
        s += r + 1;
        cnt++;
        b += 10 * r;
        c = -r < c ? -r : c;
        d = 0.5 * r > d ? 0.5 * r : d;
    }
    ROW(vals, num(row, "a") == s / cnt && num(row, "b") == b && num(row, "c") == c && num(row, "d") == d &&
                  num(row, "_step") == step && cJSON_GetArraySize(row) == 4 + 3,
        "step %d: a %g b %g c %g d %g _step %g, %d keys; want %g %g %g %g", step, num(row, "a"), num(row, "b"),
        num(row, "c"), num(row, "d"), num(row, "_step"), cJSON_GetArraySize(row), s / cnt, b, c, d);
}

/* log a..d, flush: fast (1) or gathering (0) as wanted, and exact over the ranks in `in` */
static void abcd_flush(int want_fast, unsigned in, int step)
{
    cJSON *row;
    log_abcd();
    int fast = flush_fast(NULL, &row);
    ROW(path, fast == want_fast, "step %d: fast %d, want %d", step, fast, want_fast);
    check_abcd(row, in, step);
    cJSON_Delete(row);
}

/* The agreed key layout across its transitions, flush by flush: which flushes take the one packed
 * collective (fast) and which gather the keys, with exact results either way. */
static void test_layout_transitions(void)
{
    init_offline("layout1");
    unsigned every = (1u << size) - 1;
    cJSON *row;

    /* zero keys, empty layout: fast, no row */
    CHECK(flush_fast(NULL, &row) == 1 && (row == NULL || cJSON_GetArraySize(row) == 0));
    cJSON_Delete(row);
    /* the first keys gather; the same keys again (odd ranks log them in another order) are fast */
    for (int i = 0; i <= 2; i++)
        abcd_flush(i > 0, every, i);
    /* different keys: a everywhere, e on even ranks only -> gather, e reduced over those ranks */
    for (int i = 3; i <= 4; i++) {
        ROW_OK(calls, djct_log("a", rank + 1), "step %d: a", i);
        if (rank % 2 == 0)
            ROW_OK(calls, djct_log_reduce("e", 100 + rank, DJCT_REDUCE_SUM), "step %d: e", i);
        int fast = flush_fast("v_", &row);
        ROW(path, fast == (i == 4), "step %d: fast %d", i, fast); /* then fast: e has a count slot */
        if (rank == 0) {
            double es = 0;
            for (int r = 0; r < size; r += 2)
                es += 100 + r;
            ROW(vals, num(row, "v_a") == (double)size * (size + 1) / 2 / size && num(row, "v_e") == es &&
                          cJSON_GetObjectItem(row, "v_b") == NULL && cJSON_GetArraySize(row) == 2 + 3 &&
                          num(row, "_step") == i,
                "step %d: v_a %g, v_e %g (want %g), %d keys", i, num(row, "v_a"), num(row, "v_e"), es,
                cJSON_GetArraySize(row));
        }
        cJSON_Delete(row);
    }
    /* the same keys as at first again: gather once, then fast */
    for (int i = 5; i <= 6; i++)
        abcd_flush(i == 6, every, i);
    /* nobody logs: fast, no row, the step does not move, and the layout stays */
    CHECK(flush_fast(NULL, &row) == 1 && (row == NULL || num(row, "_step") == 6));
    cJSON_Delete(row);
    abcd_flush(1, every, 7);
    /* a mean logged twice on rank 0 (a has no count slot): gather, then fast */
    for (int i = 8; i <= 9; i++) {
        log_abcd();
        if (rank == 0)
            ROW_OK(calls, djct_log("a", 8), "step %d: a twice", i);
        int fast = flush_fast(NULL, &row);
        ROW(path, fast == (i == 9), "step %d: fast %d", i, fast);
        if (rank == 0) {
            double s = 8;
            for (int r = 0; r < size; r++)
                s += r + 1;
            ROW(vals, num(row, "a") == s / (size + 1) && num(row, "b") == 10.0 * size * (size - 1) / 2,
                "step %d: a %g (want %g), b %g", i, num(row, "a"), s / (size + 1), num(row, "b"));
        }
        cJSON_Delete(row);
    }
    /* the last rank inactive (logs nothing) while the others log: gather, then fast; active again: fast */
    djct_log_flush(NULL, -1); /* nothing: fast */
    djct_log_settle();        /* ranks > 0 count it once they know */
    for (int i = 10; i <= 12; i++) {
        if (rank == size - 1 && i < 12)
            djct_log_deactivate();
        abcd_flush(i > 10, i < 12 ? every & ~(1u << (size - 1)) : every, i);
        djct_log_activate();
    }
    /* one name, two ops: the lowest rank's wins (a sum here), every flush gathers */
    for (int i = 13; i <= 14; i++) {
        ROW_OK(calls, djct_log_reduce("z", rank + 1, rank == 0 ? DJCT_REDUCE_SUM : DJCT_REDUCE_MAX), "step %d: z", i);
        int fast = flush_fast(NULL, &row);
        ROW(path, fast == 0, "step %d: fast %d", i, fast);
        if (rank == 0)
            ROW(vals, num(row, "z") == (double)size * (size + 1) / 2, "step %d: z %g", i, num(row, "z"));
        cJSON_Delete(row);
    }
    /* g (mean) and k (sum) everywhere, then rank 1 leaves g out but logs k: gather, then fast */
    for (int i = 15; i <= 17; i++) {
        ROW_OK(calls, djct_log_reduce("k", rank, DJCT_REDUCE_SUM), "step %d: k", i);
        if (i == 15 || rank != 1)
            ROW_OK(calls, djct_log("g", rank + 1), "step %d: g", i);
        int fast = flush_fast(NULL, &row);
        ROW(path, fast == (i == 17), "step %d: fast %d", i, fast);
        if (rank == 0) {
            double s = (double)size * (size + 1) / 2 - (i == 15 ? 0 : 2);
            ROW(vals, num(row, "g") == s / (i == 15 ? size : size - 1) && num(row, "k") == (double)size * (size - 1) / 2,
                "step %d: g %g, k %g", i, num(row, "g"), num(row, "k"));
        }
        cJSON_Delete(row);
    }
    CHECK_ROWS(calls);
    CHECK_ROWS(path);
    if (rank == 0)
        CHECK_ROWS(vals);
    djct_log_stats st;
    CHECK_OK(djct_log_get_stats(&st));
    CHECK(st.flushes == 21 && st.fast_flushes == 12);
    CHECK_OK(djct_log_finish(0));
}

static void test_only_rank0_connects(void)
{
    test_srv s = {0};
    int trap = -1, port = 0;
    char url[64] = "", runs[512];
    snprintf(runs, sizeof(runs), "%s/runs-conn-%d", tmp, rank);
    if (rank == 0) {
        if (srv_spawn(&s, tmp, "mpi") != 0 || srv_wait(&s) != 0)
            CHECK(!"wandb_server.py did not start");
        snprintf(url, sizeof(url), "%s", s.url);
    } else {
        /* a listening socket nobody should ever reach */
        trap = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t l = sizeof(a);
        CHECK(bind(trap, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(trap, 8) == 0);
        getsockname(trap, (struct sockaddr *)&a, &l);
        port = ntohs(a.sin_port);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
        fcntl(trap, F_SETFL, O_NONBLOCK);
    }
    djct_log_options o = DJCT_LOG_OPTIONS_INIT;
    o.mode = DJCT_LOG_MODE_ONLINE;
    o.dir = runs;
    o.project = "mpiproj";
    o.run_id = "conn1";
    o.base_url = url;
    o.api_key = TEST_KEY;
    o.batch_interval_s = 0.1;
    o.retry_min_s = 0.05;
    o.retry_max_s = 0.3;
    o.finish_timeout_s = 20;
    CHECK_OK(djct_log_init(&o));
    harness_rows cc = HARNESS_ROWS_INIT;
    for (int i = 0; i < 10; i++) {
        ROW_OK(cc, djct_log("x", rank * 10 + i), "row %d: x", i);
        ROW_OK(cc, djct_log_reduce("ranks", 1, DJCT_REDUCE_SUM), "row %d: ranks", i);
        ROW_OK(cc, djct_log_flush(NULL, -1), "row %d: flush", i);
    }
    CHECK_ROWS(cc);
    CHECK_OK(djct_log_finish(0));
    if (rank == 0) {
        cJSON *st = srv_state(&s), *run = srv_run(st, "test-entity/mpiproj/conn1");
        cJSON *h = srv_file(run, "wandb-history.jsonl");
        CHECK(history_exact(h, 10, 0));
        cJSON *l9 = cJSON_Parse(cJSON_GetStringValue(cJSON_GetArrayItem(h, 9)));
        CHECK(harness_near(num(l9, "x"), 10.0 * (size - 1) / 2 + 9, 1e-12) && num(l9, "ranks") == size);
        cJSON_Delete(l9);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(run, "complete")));
        cJSON *reqs = srv_requests(&s), *r;
        int gql = 0;
        cJSON_ArrayForEach(r, reqs) gql += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind")), "gql");
        CHECK(gql == 1); /* one run, created once: not one per rank */
        cJSON_Delete(reqs);
        cJSON_Delete(st);
        srv_stop(&s);
    } else {
        int c = accept(trap, NULL, NULL);
        CHECK(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        if (c >= 0)
            close(c);
        close(trap);
        CHECK(access(runs, F_OK) != 0); /* not even the directory */
    }
}

/* Names outlive a flush (the fast path neither sorts nor allocates): a mean logged a different
 * number of times per rank stays exact on the fast path, a name may change its op between flushes
 * (one key-gathering flush, then fast again), and names invented per flush are reduced right and do
 * not pile up. */
static void test_buffer_reuse(void)
{
    init_offline("reuse1");
    double n = size;
    int rc;
    harness_rows rc1 = HARNESS_ROWS_INIT, m1 = HARNESS_ROWS_INIT, x1 = HARNESS_ROWS_INIT;
    for (int pass = 0; pass < 4; pass++) {
        /* rank 0 logs m twice, the others once: mean over all n + 1 values */
        ROW_OK(rc1, djct_log("m", rank + pass), "pass %d: m", pass);
        if (rank == 0)
            ROW_OK(rc1, djct_log("m", 10), "pass %d: m twice", pass);
        /* x: mean on passes 0 and 1, sum on 2 and 3 */
        ROW_OK(rc1, djct_log_reduce("x", rank + 1, pass >= 2 ? DJCT_REDUCE_SUM : DJCT_REDUCE_MEAN), "pass %d: x", pass);
        cJSON *row = flush_row(NULL, &rc);
        ROW(rc1, rc == 0, "pass %d: flush", pass);
        if (rank == 0) {
            double m = (n * (n - 1) / 2 + n * pass + 10) / (n + 1), x = pass >= 2 ? n * (n + 1) / 2 : (n + 1) / 2;
            ROW(m1, harness_near(num(row, "m"), m, 1e-12), "pass %d: m %.17g, want %.17g", pass, num(row, "m"), m);
            ROW(x1, harness_near(num(row, "x"), x, 1e-12), "pass %d: x %.17g, want %.17g", pass, num(row, "x"), x);
        }
        cJSON_Delete(row);
    }
    CHECK_ROWS(rc1);
    if (rank == 0) {
        CHECK_ROWS(m1);
        CHECK_ROWS(x1);
    }
    djct_log_stats st;
    CHECK_OK(djct_log_get_stats(&st));
    /* gathering: the first flush and the op change (passes 0 and 2); the layout's: 1 and 3 */
    CHECK(st.flushes == 4 && st.fast_flushes == 2);
    harness_rows rc2 = HARNESS_ROWS_INIT, fresh = HARNESS_ROWS_INIT;
    for (int pass = 0; pass < 5; pass++) { /* 100 new names per flush */
        for (int k = 0; k < 100; k++) {
            char name[32];
            snprintf(name, sizeof(name), "p%d_k%03d", pass, k);
            ROW_OK(rc2, djct_log(name, rank + k), "%s", name);
        }
        cJSON *row = flush_row(NULL, &rc);
        ROW(rc2, rc == 0, "pass %d: flush", pass);
        if (rank == 0) {
            char first[32], last[32], old[32];
            snprintf(first, sizeof(first), "p%d_k000", pass);
            snprintf(last, sizeof(last), "p%d_k099", pass);
            snprintf(old, sizeof(old), "p%d_k000", pass - 1);
            /* 100 keys + _step, _runtime, _timestamp; none of the last flush's */
            ROW(fresh, cJSON_GetArraySize(row) == 100 + 3 && harness_near(num(row, first), (n - 1) / 2, 1e-12) &&
                           harness_near(num(row, last), (n - 1) / 2 + 99, 1e-12) && !cJSON_GetObjectItem(row, old),
                "pass %d: %d keys, %s %g, %s %g, %s %s", pass, cJSON_GetArraySize(row), first, num(row, first), last,
                num(row, last), old, cJSON_GetObjectItem(row, old) ? "present" : "absent");
        }
        cJSON_Delete(row);
    }
    CHECK_ROWS(rc2);
    if (rank == 0)
        CHECK_ROWS(fresh);
    CHECK_OK(djct_log_finish(0));
}

/* The journal of run `id` (rank 0's directory), one parsed row per line; NULL elsewhere. */
static cJSON *journal_rows(const char *id)
{
    if (rank != 0)
        return NULL;
    char p[1024], line[65536];
    snprintf(p, sizeof(p), "%s/runs-%s-0/%s/history.jsonl", tmp, id, id);
    FILE *f = fopen(p, "r");
    cJSON *a = cJSON_CreateArray();
    while (f && fgets(line, sizeof(line), f))
        cJSON_AddItemToArray(a, cJSON_Parse(line));
    if (f)
        fclose(f);
    return a;
}

/* A flush whose keys changed is known to be one only on rank 0 (the steady state is one
 * MPI_Reduce): its row keeps its step and is written at the next collective logging call, before
 * that call's own row, so the journal stays in step order with exact values. finish completes a
 * last such flush. A bad explicit step fails on every rank alike before any communication, even
 * when nobody logged. Thousands of rows queued faster than the writer thread writes them arrive
 * complete and in order. */
static void test_deferred_rows(const char *tag)
{
    char id1[32], id2[32];
    snprintf(id1, sizeof(id1), "defer1%s", tag);
    snprintf(id2, sizeof(id2), "defer2%s", tag);
    init_offline(id1);
    double n = size;
    CHECK_OK(djct_log("a", rank));                 /* step 0: gathering (first flush) */
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK_OK(djct_log("a", rank + 1));             /* step 1: fast */
    CHECK_OK(djct_log_flush(NULL, -1));
    CHECK_OK(djct_log_reduce("v", rank, DJCT_REDUCE_MAX)); /* step 2: new key, no a */
    CHECK_OK(djct_log_flush("val_", -1));
    CHECK_OK(djct_log_reduce("v", rank + 5, DJCT_REDUCE_MAX)); /* step 3: fast again */
    CHECK_OK(djct_log_flush("val_", -1));
    CHECK_ERR(djct_log_flush(NULL, 3), DJCT_EINVAL, "not after the last step"); /* nothing logged */
    CHECK_OK(djct_log("late", rank));               /* step 10: new key, completed by finish */
    CHECK_OK(djct_log_flush(NULL, 10));
    CHECK_OK(djct_log_finish(0));
    cJSON *rows = journal_rows(id1);
    if (rank == 0) {
        const double step[5] = {0, 1, 2, 3, 10};
        harness_rows order = HARNESS_ROWS_INIT;
        ROW(order, cJSON_GetArraySize(rows) == 5, "%d rows, want 5", cJSON_GetArraySize(rows));
        for (int i = 0; i < cJSON_GetArraySize(rows) && i < 5; i++)
            ROW(order, num(cJSON_GetArrayItem(rows, i), "_step") == step[i], "row %d: _step %g, want %g", i,
                num(cJSON_GetArrayItem(rows, i), "_step"), step[i]);
        CHECK_ROWS(order);
        CHECK_NEAR(num(cJSON_GetArrayItem(rows, 0), "a"), (n - 1) / 2, 1e-12);
        CHECK_NEAR(num(cJSON_GetArrayItem(rows, 1), "a"), (n + 1) / 2, 1e-12);
        CHECK(num(cJSON_GetArrayItem(rows, 2), "val_v") == n - 1);
        CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 2), "a") == NULL);
        CHECK(num(cJSON_GetArrayItem(rows, 3), "val_v") == n + 4);
        CHECK_NEAR(num(cJSON_GetArrayItem(rows, 4), "late"), (n - 1) / 2, 1e-12);
    }
    cJSON_Delete(rows);

    /* more rows than the writer's queue holds, as fast as the ranks can flush */
    init_offline(id2);
    const int N = 6000;
    harness_rows many = HARNESS_ROWS_INIT;
    for (int i = 0; i < N; i++) {
        ROW_OK(many, djct_log_reduce("i", i, DJCT_REDUCE_SUM), "row %d: log", i);
        ROW_OK(many, djct_log_flush(NULL, -1), "row %d: flush", i);
    }
    CHECK_ROWS(many);
    if (rank == 0)
        CHECK(strstr(djct_log_last_row(), "\"_step\":5999") != NULL);
    djct_log_stats st;
    CHECK_OK(djct_log_get_stats(&st));
    CHECK(rank != 0 || st.rows == N);
    CHECK_OK(djct_log_finish(0));
    rows = journal_rows(id2);
    if (rank == 0) {
        harness_rows all = HARNESS_ROWS_INIT;
        ROW(all, cJSON_GetArraySize(rows) == N, "%d rows, want %d", cJSON_GetArraySize(rows), N);
        for (int i = 0; i < N && i < cJSON_GetArraySize(rows); i++) {
            cJSON *r = cJSON_GetArrayItem(rows, i);
            ROW(all, num(r, "_step") == i && num(r, "i") == n * i, "row %d: _step %g, i %g", i, num(r, "_step"),
                num(r, "i"));
        }
        CHECK_ROWS(all);
    }
    cJSON_Delete(rows);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0) {
        snprintf(tmp, sizeof(tmp), "/tmp/djct-test-logmpi-XXXXXX");
        if (!mkdtemp(tmp))
            tmp[0] = '\0';
    }
    MPI_Bcast(tmp, sizeof(tmp), MPI_CHAR, 0, MPI_COMM_WORLD);
    unsetenv("WANDB_MODE");
    unsetenv("WANDB_API_KEY");
    unsetenv("WANDB_BASE_URL");
    test_reductions("red1");
    MPI_Barrier(MPI_COMM_WORLD);
    /* the same on a djct_comm with a watchdog: every logging collective through comm's watched
     * path (non-blocking with a polled wait), the verdict by its point-to-point broadcast */
    djct_comm_options co = DJCT_COMM_OPTIONS_INIT;
    co.device = DJCT_COMM_DEVICE_NONE;
    co.timeout_seconds = 60;
    CHECK_OK(djct_comm_create(&log_comm, &co));
    test_reductions("red2");
    djct_comm_free(log_comm);
    log_comm = NULL;
    MPI_Barrier(MPI_COMM_WORLD);
    test_buffer_reuse();
    MPI_Barrier(MPI_COMM_WORLD);
    test_layout_transitions();
    MPI_Barrier(MPI_COMM_WORLD);
    test_deferred_rows("");
    MPI_Barrier(MPI_COMM_WORLD);
    setenv("DJCT_LOG_VERDICT_BCAST", "1", 1); /* rank 0's verdict by MPI_Ibcast, as beyond 16 ranks */
    test_deferred_rows("b");
    unsetenv("DJCT_LOG_VERDICT_BCAST");
    MPI_Barrier(MPI_COMM_WORLD);
    test_only_rank0_connects();
    int failed = harness_failed, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0 && !any) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
    }
    return harness_report_mpi();
}
