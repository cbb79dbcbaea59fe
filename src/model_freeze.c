/* Freezing parameters by name glob (djct_model_freeze, djct_train's --freeze): plain C over the
 * bridge's public calls (djct_model_param_info, djct_model_set_trainable), like model_switch.c.
 * djctools call-style models exported by djct.export name their parameters "model.<...>". */
#include "djct/model.h"
#include "djct/error.h"
#include "djct_int.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "a, b, c, ... (N in all)": a few parameter names for a message, in registration order */
static void some_names(const djct_model *m, char *buf, size_t n)
{
    size_t np = djct_model_n_params(m), at = 0, shown = 0;
    buf[0] = '\0';
    for (size_t k = np; k-- > 0 && shown < 8;) { /* backward order: walk it back */
        const char *name = NULL;
        if (djct_model_param_info(m, k, &name, NULL, NULL))
            continue;
        int w = snprintf(buf + at, n - at, "%s%s", at ? ", " : "", name);
        if (w < 0 || (size_t)w >= n - at)
            break;
        at += (size_t)w;
        shown++;
    }
    if (shown < np && at + 24 < n)
        snprintf(buf + at, n - at, ", ... (%zu in all)", np);
    if (!np)
        snprintf(buf, n, "(none)");
}

int djct_model_freeze(djct_model *m, const char *patterns, size_t *n_frozen)
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(patterns);
    size_t np = djct_model_n_params(m);
    int rc = 0;
    /* every pattern must match something before anything is frozen */
    for (int apply = 0; apply < 2 && rc == 0; apply++) {
        char *save = NULL, *copy = strdup(patterns);
        if (!copy) {
            rc = djct_error_oom();
            break;
        }
        for (char *p = strtok_r(copy, ",", &save); p && rc == 0; p = strtok_r(NULL, ",", &save)) {
            while (*p == ' ')
                p++;
            size_t len = strlen(p);
            while (len && p[len - 1] == ' ')
                p[--len] = '\0';
            if (!*p)
                continue;
            size_t hits = 0;
            for (size_t i = 0; i < np && rc == 0; i++) {
                const char *name = NULL;
                if ((rc = djct_model_param_info(m, i, &name, NULL, NULL)))
                    break;
                if (fnmatch(p, name, 0) == 0) {
                    hits++;
                    if (apply)
                        rc = djct_model_set_trainable(m, i, 0);
                }
            }
            if (rc == 0 && !hits) {
                char names[1024];
                some_names(m, names, sizeof(names));
                rc = djct_error_set(DJCT_EINVAL, "freeze: no parameter matches '%s'; parameters: %s", p, names);
            }
        }
        free(copy);
    }
    if (rc == 0 && n_frozen) {
        *n_frozen = 0;
        for (size_t i = 0; i < np; i++)
            *n_frozen += !djct_model_is_trainable(m, i);
    }
    return rc;
}
