/* options: one table drives defaults, INI files (inih), the command line, help and the dump;
 * every bad value is a one-line error naming the option and what is allowed. */
#include "harness.h"

#include <stddef.h>
#include <unistd.h>

typedef struct {
    char *config;
    int epochs;
    int64_t batch;
    double lr;
    char *model;
    int opt;
    int resume;
    int average;
    int64_t values;
} cfg;

enum { OPT_SGD = 10, OPT_ADAM = 11, OPT_ADAMW = 12 };
static const djct_opt_choice OPTS[] = {{"sgd", OPT_SGD}, {"adam", OPT_ADAM}, {"adamw", OPT_ADAMW}, {NULL, 0}};

static const djct_opt T[] = {
    {"config", 'c', DJCT_OPT_STRING, offsetof(cfg, config), NULL, NULL, 0, 0, "FILE", "config file", "General"},
    {"epochs", 'e', DJCT_OPT_INT, offsetof(cfg, epochs), "3", NULL, 1, 100000, "N", "epochs", NULL},
    {"batch-elements", 0, DJCT_OPT_INT64, offsetof(cfg, batch), "6400", NULL, 1, 1e12, "N", "elements", NULL},
    {"lr", 0, DJCT_OPT_DOUBLE, offsetof(cfg, lr), "0.001", NULL, 0, 10, "X", "learning rate", "Optimizer"},
    {"model", 0, DJCT_OPT_STRING, offsetof(cfg, model), "pointcloud", NULL, 0, 0, "NAME", "model", NULL},
    {"optimizer", 0, DJCT_OPT_CHOICE, offsetof(cfg, opt), "adam", OPTS, 0, 0, NULL, "optimizer", NULL},
    {"resume", 0, DJCT_OPT_FLAG, offsetof(cfg, resume), "0", NULL, 0, 0, NULL, "resume", NULL},
    {"average", 0, DJCT_OPT_FLAG, offsetof(cfg, average), "1", NULL, 0, 0, NULL, "average gradients", NULL},
    /* -1 is a sentinel ("not given"), outside the range a user may give */
    {"values", 0, DJCT_OPT_INT64, offsetof(cfg, values), "-1", NULL, 0, 1e9, "N", "values to show", NULL},
};
#define N (sizeof(T) / sizeof(T[0]))

typedef struct {
    int json;
    char **files;
} args;
static const djct_opt TA[] = {
    {"json", 0, DJCT_OPT_FLAG, offsetof(args, json), "0", NULL, 0, 0, NULL, "JSON output", NULL},
    {"file", 0, DJCT_OPT_ARGS, offsetof(args, files), NULL, NULL, 1, 2, "FILE...", "the inputs", NULL},
};
#define NTA (sizeof(TA) / sizeof(TA[0]))

/* a repeatable option (djct_train's --logging): every value is appended */
typedef struct {
    char *config;
    char *logging;
} lcfg;
static const djct_opt TL[] = {
    {"config", 0, DJCT_OPT_STRING, offsetof(lcfg, config), NULL, NULL, 0, 0, "FILE", "config file", NULL},
    {"logging", 0, DJCT_OPT_LIST, offsetof(lcfg, logging), NULL, NULL, 0, 0, "NAME=on|off", "switches", NULL},
};
#define NTL (sizeof(TL) / sizeof(TL[0]))

/* defaults from the environment (djct_train's WANDB_* twins): built-in < environment < config < command line */
typedef struct {
    char *config, *project, *entity;
    int mode;
    int64_t every;
} ecfg;
static const djct_opt_choice MODES[] = {{"auto", 0}, {"online", 1}, {"offline", 2}, {"dryrun", 2}, {NULL, 0}};
static const djct_opt TE[] = {
    {"config", 0, DJCT_OPT_STRING, offsetof(ecfg, config), NULL, NULL, 0, 0, "FILE", "config file", NULL},
    {"project", 0, DJCT_OPT_STRING, offsetof(ecfg, project), "${DJCT_T_PROJECT:-djct}", NULL, 0, 0, "NAME", "project", NULL},
    {"entity", 0, DJCT_OPT_STRING, offsetof(ecfg, entity), "${DJCT_T_ENTITY}", NULL, 0, 0, "NAME", "entity", NULL},
    {"mode", 0, DJCT_OPT_CHOICE, offsetof(ecfg, mode), "${DJCT_T_MODE:-auto}", MODES, 0, 0, NULL, "mode", NULL},
    {"every", 0, DJCT_OPT_INT64, offsetof(ecfg, every), "${DJCT_T_EVERY:-5}", NULL, 1, 100, "N", "every", NULL},
};
#define NTE (sizeof(TE) / sizeof(TE[0]))

static void test_env_defaults(const char *path)
{
    ecfg e = {0};
    unsetenv("DJCT_T_PROJECT");
    unsetenv("DJCT_T_ENTITY");
    unsetenv("DJCT_T_MODE");
    unsetenv("DJCT_T_EVERY");
    CHECK_OK(djct_opts_defaults(TE, NTE, &e));
    CHECK(!strcmp(e.project, "djct") && e.entity == NULL && e.mode == 0 && e.every == 5);
    djct_opts_free(TE, NTE, &e);
    setenv("DJCT_T_PROJECT", "envproj", 1);
    setenv("DJCT_T_ENTITY", "envteam", 1);
    setenv("DJCT_T_MODE", "dryrun", 1);
    setenv("DJCT_T_EVERY", "7", 1);
    CHECK_OK(djct_opts_defaults(TE, NTE, &e));
    CHECK(!strcmp(e.project, "envproj") && !strcmp(e.entity, "envteam") && e.mode == 2 && e.every == 7);
    /* the config file and the command line win over the environment */
    FILE *f = fopen(path, "w");
    fprintf(f, "project = fileproj\nevery = 9\n");
    fclose(f);
    char *a[] = {"p", "--config", (char *)path, "--entity", "cliteam"};
    CHECK_OK(djct_opts_parse_argv(TE, NTE, &e, 5, a, NULL));
    CHECK(!strcmp(e.project, "fileproj") && !strcmp(e.entity, "cliteam") && e.mode == 2 && e.every == 9);
    djct_opts_free(TE, NTE, &e);
    unlink(path);
    /* an empty variable counts as unset */
    setenv("DJCT_T_PROJECT", "", 1);
    CHECK_OK(djct_opts_defaults(TE, NTE, &e));
    CHECK(!strcmp(e.project, "djct"));
    djct_opts_free(TE, NTE, &e);
    /* a bad value in the environment is an error naming the variable */
    setenv("DJCT_T_MODE", "onlin", 1);
    CHECK_ERR(djct_opts_defaults(TE, NTE, &e), DJCT_EINVAL,
              "environment variable DJCT_T_MODE: --mode 'onlin' is not allowed; use one of auto|online|offline|dryrun");
    djct_opts_free(TE, NTE, &e);
    unsetenv("DJCT_T_MODE");
    setenv("DJCT_T_EVERY", "1000", 1);
    CHECK_ERR(djct_opts_defaults(TE, NTE, &e), DJCT_EINVAL, "environment variable DJCT_T_EVERY: --every 1000 is out of range");
    djct_opts_free(TE, NTE, &e);
    unsetenv("DJCT_T_EVERY");
    /* --help names the variable each option reads */
    char buf[4096] = {0};
    f = fmemopen(buf, sizeof(buf) - 1, "w");
    djct_opts_print_help(TE, NTE, NULL, f);
    fclose(f);
    CHECK(strstr(buf, "project [$DJCT_T_PROJECT, else djct]") && strstr(buf, "entity [$DJCT_T_ENTITY]") &&
          strstr(buf, "mode [$DJCT_T_MODE, else auto]") && strstr(buf, "every [$DJCT_T_EVERY, else 5]"));
    unsetenv("DJCT_T_PROJECT");
    unsetenv("DJCT_T_ENTITY");
}

static int parse(cfg *c, int argc, char **argv)
{
    djct_opts_free(T, N, c);
    if (djct_opts_defaults(T, N, c))
        return -100;
    return djct_opts_parse_argv(T, N, c, argc, argv, NULL);
}

int main(void)
{
    cfg c = {0};
    CHECK_OK(djct_opts_defaults(T, N, &c));
    CHECK(c.epochs == 3 && c.batch == 6400 && c.lr == 0.001 && !strcmp(c.model, "pointcloud") && c.average == 1 &&
          c.opt == OPT_ADAM && c.values == -1);

    char *a1[] = {"p", "--epochs", "7", "--lr=0.5", "-e", "8", "--optimizer", "sgd", "--resume", "--no-average",
                  "--batch_elements", "12"};
    CHECK_OK(parse(&c, 12, a1));
    CHECK(c.epochs == 8 && c.lr == 0.5 && c.opt == OPT_SGD && c.resume == 1 && c.average == 0 && c.batch == 12);

    char *a2[] = {"p", "--epochs", "abc"};
    CHECK_ERR(parse(&c, 3, a2), DJCT_EINVAL, "--epochs 'abc' is not a whole number");
    char *a3[] = {"p", "--epochs", "0"};
    CHECK_ERR(parse(&c, 3, a3), DJCT_EINVAL, "--epochs 0 is out of range; allowed 1..100000");
    char *a4[] = {"p", "--optimizer", "lamb"};
    CHECK_ERR(parse(&c, 3, a4), DJCT_EINVAL, "--optimizer 'lamb' is not allowed; use one of sgd|adam|adamw");
    char *a4b[] = {"p", "--optimizer", "adamm"};
    CHECK_ERR(parse(&c, 3, a4b), DJCT_EINVAL, "use one of sgd|adam|adamw (did you mean 'adam'?)");
    /* a sentinel default is refused from the user */
    char *a4c[] = {"p", "--values", "-1"};
    CHECK_ERR(parse(&c, 3, a4c), DJCT_EINVAL, "--values -1 is out of range; allowed 0..1e+09");
    char *a5[] = {"p", "--epoch", "3"};
    CHECK_ERR(parse(&c, 3, a5), DJCT_EINVAL, "unknown option '--epoch'; did you mean '--epochs'");
    char *a6[] = {"p", "--lr"};
    CHECK_ERR(parse(&c, 2, a6), DJCT_EINVAL, "--lr needs a value");
    char *a7[] = {"p", "stray"};
    CHECK_ERR(parse(&c, 2, a7), DJCT_EINVAL, "unexpected argument 'stray'");
    char *a8[] = {"p", "--lr", "nan"};
    CHECK_ERR(parse(&c, 3, a8), DJCT_EINVAL, "not a finite number");
    char *a9[] = {"p", "--no-epochs"};
    CHECK_ERR(parse(&c, 2, a9), DJCT_EINVAL, "unknown option");

    /* config file, overridden by the command line regardless of order */
    char path[] = "/tmp/djct_test_opts_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "; comment\n[djct_train]\nepochs = 11\nlr = 0.25\nmodel = mlp\nresume = true\n");
    fclose(f);
    char *b1[] = {"p", "--epochs", "2", "--config", path};
    CHECK_OK(parse(&c, 5, b1));
    CHECK(c.epochs == 2 && c.lr == 0.25 && !strcmp(c.model, "mlp") && c.resume == 1);
    f = fopen(path, "w");
    fprintf(f, "optimizer = adamw\n");
    fclose(f);
    char *b1b[] = {"p", "--config", path};
    CHECK_OK(parse(&c, 3, b1b));
    CHECK(c.opt == OPT_ADAMW);

    f = fopen(path, "w");
    fprintf(f, "epochs = 4\nlearning_rate = 3\n");
    fclose(f);
    char *b2[] = {"p", "--config", path};
    CHECK_ERR(parse(&c, 3, b2), DJCT_EINVAL, "line 2: unknown option 'learning_rate'");
    f = fopen(path, "w");
    fprintf(f, "epochs = -4\n");
    fclose(f);
    CHECK_ERR(parse(&c, 3, b2), DJCT_EINVAL, "line 1: --epochs -4 is out of range");
    /* lines that are no option: named with their text, never as an unknown option '' */
    static const struct { const char *text, *want; } garbage[] = {
        {"epochs = 4\nthis line has no equals sign\n", "line 2: not an option line: 'this line has no equals sign'"},
        {"epochs = 4\n= 5\n", "line 2: not an option line: '= 5'"},
        {"  = lr\n", "line 1: not an option line: '= lr'"},
        {"[djct_train]\nlr\n", "line 2: not an option line: 'lr'"},
    };
    harness_rows rows = HARNESS_ROWS_INIT;
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        f = fopen(path, "w");
        fputs(garbage[i].text, f);
        fclose(f);
        int rc = parse(&c, 3, b2);
        ROW(rows, rc == DJCT_EINVAL && strstr(djct_last_error(), garbage[i].want) &&
                      !strstr(djct_last_error(), "unknown option"),
            "%s -> %s", garbage[i].text, djct_last_error());
    }
    CHECK_ROWS(rows);
    unlink(path);
    CHECK_ERR(parse(&c, 3, b2), DJCT_EIO, "cannot open");

    /* positional arguments when asked for */
    char **pos = NULL;
    char *p1[] = {"p", "x.djctd", "--epochs", "5", "y.h5", "--", "--z"};
    djct_opts_free(T, N, &c);
    djct_opts_defaults(T, N, &c);
    CHECK_OK(djct_opts_parse_argv(T, N, &c, 7, p1, &pos));
    CHECK(pos && !strcmp(pos[0], "x.djctd") && !strcmp(pos[1], "y.h5") && !strcmp(pos[2], "--z") && !pos[3]);
    free(pos);

    /* ... or into the table's ARGS field, counted against its min..max */
    args a = {0, NULL};
    CHECK_OK(djct_opts_defaults(TA, NTA, &a));
    char *q1[] = {"p", "one", "--json", "two"};
    CHECK_OK(djct_opts_parse_argv(TA, NTA, &a, 4, q1, NULL));
    CHECK(a.json == 1 && a.files && !strcmp(a.files[0], "one") && !strcmp(a.files[1], "two") && !a.files[2]);
    char *q2[] = {"p", "--json"};
    CHECK_ERR(djct_opts_parse_argv(TA, NTA, &a, 2, q2, NULL), DJCT_EINVAL, "FILE...: 0 given, at least 1 needed");
    char *q3[] = {"p", "a", "b", "c"};
    CHECK_ERR(djct_opts_parse_argv(TA, NTA, &a, 4, q3, NULL), DJCT_EINVAL, "FILE...: 3 given, at most 2 allowed");
    CHECK_ERR(djct_opts_set(TA, NTA, &a, "file", "x", "config"), DJCT_EINVAL, "unknown option 'file'"); /* not a key */
    djct_opts_free(TA, NTA, &a);
    CHECK(a.files == NULL);

    /* what apps handle before parsing; choice names back from values */
    char *h1[] = {"p", "--epochs", "3", "-h"}, *h2[] = {"p", "--", "--help"};
    CHECK(djct_opts_argv_has(4, h1, "--help", "-h") == 1 && djct_opts_argv_has(3, h2, "--help", "-h") == 0 &&
          djct_opts_argv_has(4, h1, "--version", NULL) == 0);
    CHECK(!strcmp(djct_opts_choice_name(OPTS, OPT_ADAMW), "adamw") && djct_opts_choice_name(OPTS, 99) == NULL);

    /* help and dump are generated from the same table */
    char buf[4096] = {0};
    f = fmemopen(buf, sizeof(buf) - 1, "w");
    djct_opts_print_help(T, N, "usage: p [options]", f);
    fclose(f);
    CHECK(strstr(buf, "--batch-elements N") && strstr(buf, "--[no-]average") && strstr(buf, "sgd|adam|adamw") &&
          strstr(buf, "[6400]") && strstr(buf, "Optimizer:"));
    CHECK(strstr(buf, "values to show\n")); /* the sentinel default is not shown */
    memset(buf, 0, sizeof(buf));
    f = fmemopen(buf, sizeof(buf) - 1, "w");
    djct_opts_print(T, N, &c, f);
    fclose(f);
    CHECK(strstr(buf, "epochs = 5\n") && strstr(buf, "model = pointcloud\n") && strstr(buf, "average = true\n") &&
          strstr(buf, "optimizer = adam\n") && !strstr(buf, "config ="));
    djct_opts_free(T, N, &c);
    CHECK(c.model == NULL);

    /* a list option appends: config file first, then each command-line value in order */
    lcfg l;
    f = fopen(path, "w");
    fprintf(f, "logging = metrics=off\n");
    fclose(f);
    char *la[] = {"p", "--logging", "a=on,b=off", "--config", path, "--logging=c*=on"};
    CHECK_OK(djct_opts_defaults(TL, NTL, &l));
    CHECK_OK(djct_opts_parse_argv(TL, NTL, &l, 6, la, NULL));
    CHECK(l.logging && !strcmp(l.logging, "metrics=off,a=on,b=off,c*=on"));
    djct_opts_free(TL, NTL, &l);
    CHECK(l.logging == NULL);
    unlink(path);
    test_env_defaults(path);
    return harness_report();
}
