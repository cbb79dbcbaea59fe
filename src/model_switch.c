/* Switching LoggingModules and LossModules by name or glob (djct_model_switch_matching), the
 * "NAME=on|off,..." lists of djct_train's and djct_predict's --logging / --loss, and the one-line
 * description of the switches the apps print at start-up. Plain C over the bridge's public
 * calls (djct_model_logging_module, djct_model_switch), so it compiles once, without libtorch. */
#include "djct/model.h"
#include "djct/error.h"
#include "djct_int.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_name(int kind) { return kind == DJCT_SWITCH_LOSS ? "LossModule" : "LoggingModule"; }

/* "a, b, c": the modules a switch of `kind` can reach */
static void known_names(const djct_model *m, int kind, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < djct_model_n_logging_modules(m); i++) {
        const char *name = NULL;
        int is_loss = 0;
        if (djct_model_logging_module(m, i, &name, NULL, &is_loss, NULL) || (kind == DJCT_SWITCH_LOSS && !is_loss))
            continue;
        int k = snprintf(buf + at, n - at, "%s%s", at ? ", " : "", name);
        if (k < 0 || (size_t)k >= n - at) {
            snprintf(buf + (n > 5 ? n - 5 : 0), n > 5 ? 5 : n, "...");
            return;
        }
        at += (size_t)k;
    }
    if (!at)
        snprintf(buf, n, "(none)");
}

/* switch (apply) or only count the modules of `kind` whose name matches `pattern` */
static int match(djct_model *m, int kind, const char *pattern, int on, int apply, size_t *n_matched)
{
    if (kind != DJCT_SWITCH_LOGGING && kind != DJCT_SWITCH_LOSS)
        return djct_error_set(DJCT_EINVAL, "switch kind %d: use DJCT_SWITCH_LOGGING or DJCT_SWITCH_LOSS", kind);
    size_t matched = 0, plain_match = 0;
    for (size_t i = 0; i < djct_model_n_logging_modules(m); i++) {
        const char *name = NULL;
        int is_loss = 0, rc;
        if ((rc = djct_model_logging_module(m, i, &name, NULL, &is_loss, NULL)))
            return rc;
        if (fnmatch(pattern, name, 0) != 0)
            continue;
        if (kind == DJCT_SWITCH_LOSS && !is_loss) {
            plain_match++;
            continue;
        }
        /* by name: the module and the LoggingModules nested in it, as djctools' switches */
        if (apply && (rc = djct_model_switch(m, name, kind == DJCT_SWITCH_LOGGING ? on != 0 : -1,
                                             kind == DJCT_SWITCH_LOSS ? on != 0 : -1)))
            return rc;
        matched++;
    }
    if (n_matched)
        *n_matched = matched;
    if (!matched) {
        char known[1024];
        known_names(m, kind, known, sizeof(known));
        return djct_error_set(DJCT_EINVAL, "no %s matches '%s'%s; %ss: %s", kind_name(kind), pattern,
                              plain_match ? " (it names a LoggingModule without a loss)" : "", kind_name(kind),
                              known);
    }
    return 0;
}

int djct_model_switch_matching(djct_model *m, int kind, const char *pattern, int on, size_t *n_matched)
{
#if !DJCT_HAVE_TORCH
    return djct_error_set(DJCT_ENOTSUP, "djct_model_switch_matching: djct was built without libtorch");
#endif
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(pattern);
    if (n_matched)
        *n_matched = 0;
    return match(m, kind, pattern, on, 1, n_matched);
}

/* Check a "NAME=on|off,..." list; with a model also that every NAME matches, and with `apply`
 * switch entry by entry. */
static int walk_list(djct_model *m, int kind, const char *list, int apply)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return djct_error_oom();
    int rc = 0;
    for (char *e = strtok_r(copy, ",", &save); e && rc == 0; e = strtok_r(NULL, ",", &save)) {
        while (*e == ' ')
            e++;
        if (!*e)
            continue;
        char *eq = strrchr(e, '=');
        const char *v = eq ? eq + 1 : "";
        int on = !strcmp(v, "on") ? 1 : !strcmp(v, "off") ? 0 : -1;
        if (!eq || eq == e || on < 0) {
            rc = djct_error_set(DJCT_EINVAL, "%s switch '%s': write NAME=on or NAME=off (NAME as listed at "
                                "start-up, or a glob such as 'LoggingModule*')",
                                kind == DJCT_SWITCH_LOSS ? "loss" : "logging", e);
            break;
        }
        *eq = '\0';
        if (m)
            rc = match(m, kind, e, on, apply, NULL);
    }
    free(copy);
    return rc;
}

int djct_model_switch_list_check(int kind, const char *list)
{
    DJCT_CHECK_ARG(list);
    return walk_list(NULL, kind, list, 0);
}

int djct_model_switch_list(djct_model *m, int kind, const char *list)
{
#if !DJCT_HAVE_TORCH
    return djct_error_set(DJCT_ENOTSUP, "djct_model_switch_list: djct was built without libtorch");
#endif
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(list);
    int rc = walk_list(m, kind, list, 0); /* a bad entry anywhere switches nothing */
    return rc ? rc : walk_list(m, kind, list, 1);
}

int djct_model_describe_switches(const djct_model *m, char *buf, size_t n)
{
#if !DJCT_HAVE_TORCH
    return djct_error_set(DJCT_ENOTSUP, "djct_model_describe_switches: djct was built without libtorch");
#endif
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(buf && n > 0);
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < djct_model_n_logging_modules(m); i++) {
        const char *name = NULL;
        int log_on = 0, is_loss = 0, loss_on = 0, rc, k;
        if ((rc = djct_model_logging_module(m, i, &name, &log_on, &is_loss, &loss_on)))
            return rc;
        if (is_loss)
            k = snprintf(buf + at, n - at, "%s%s (loss %s, logging %s)", at ? ", " : "", name, loss_on ? "on" : "off",
                         log_on ? "on" : "off");
        else
            k = snprintf(buf + at, n - at, "%s%s (logging %s)", at ? ", " : "", name, log_on ? "on" : "off");
        if (k < 0 || (size_t)k >= n - at)
            return djct_error_set(DJCT_EINVAL, "describe switches: %zu bytes are too few", n);
        at += (size_t)k;
    }
    if (!at)
        snprintf(buf, n, "(no LoggingModule or LossModule)");
    return 0;
}
