/* Option tables: parsing of command lines and INI files (inih) into a caller's struct, help and
 * dump. Every error names the option, the value seen, where it came from and what is allowed. */
#include "djct/options.h"
#include "djct/error.h"
#include "djct_int.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *field(void *dst, const djct_opt *o) { return (char *)dst + o->offset; }
static const void *cfield(const void *src, const djct_opt *o) { return (const char *)src + o->offset; }

/* option names may be written with '-' or '_' */
static int name_eq(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; i < blen && a[i]; i++) {
        char x = a[i] == '_' ? '-' : a[i], y = b[i] == '_' ? '-' : b[i];
        if (x != y)
            return 0;
    }
    return i == blen && a[i] == '\0';
}

static const djct_opt *find(const djct_opt *t, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].type != DJCT_OPT_ARGS && name_eq(t[i].name, name, len))
            return &t[i];
    return NULL;
}

static const djct_opt *find_args(const djct_opt *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].type == DJCT_OPT_ARGS)
            return &t[i];
    return NULL;
}

/* a default outside the option's range is a sentinel ("not given"), not a value a user may give */
static int in_range(const djct_opt *o, double v) { return !(o->min < o->max) || (v >= o->min && v <= o->max); }

/* A default "${VAR:-text}" (or "${VAR}") reads the environment variable VAR when it is set and not
 * empty, else it is `text` (or nothing): the environment sits between the built-in default and what
 * the user gives (a config file or the command line), as the wandb SDK orders WANDB_* variables.
 * Returns 1 with var and lit (lit NULL for none) for such a default, 0 for a plain one. */
static int env_default(const char *def, char *var, size_t vn, char *lit, size_t ln, int *has_lit)
{
    if (!def || strncmp(def, "${", 2) != 0)
        return 0;
    const char *p = def + 2, *end = strchr(p, '}');
    size_t n = strcspn(p, ":}");
    if (!end || n == 0 || n >= vn)
        return 0;
    memcpy(var, p, n);
    var[n] = '\0';
    *has_lit = p[n] == ':' && p[n + 1] == '-';
    lit[0] = '\0';
    if (*has_lit)
        snprintf(lit, ln, "%.*s", (int)(end - (p + n + 2)), p + n + 2);
    return 1;
}

/* the built-in default's text: a plain default, or the part after ":-" of an environment default */
static const char *literal_default(const djct_opt *o, char *buf, size_t n)
{
    char var[128];
    int has_lit = 0;
    if (env_default(o->def, var, sizeof(var), buf, n, &has_lit))
        return has_lit ? buf : NULL;
    return o->def;
}

/* Levenshtein distance, for "did you mean" */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* the closest option name within 3 edits, for "did you mean" (positional ARGS have no name a user types) */
static const char *suggest(const djct_opt *t, size_t n, const char *name)
{
    const char *best = NULL;
    size_t bd = 4;
    for (size_t i = 0; i < n; i++) {
        size_t d = t[i].type == DJCT_OPT_ARGS ? 99 : edit_distance(name, t[i].name);
        if (d < bd) {
            bd = d;
            best = t[i].name;
        }
    }
    return best;
}

static const char *suggest_choice(const djct_opt_choice *c, const char *value)
{
    const char *best = NULL;
    size_t bd = 3;
    for (; c && c->name; c++) {
        size_t d = edit_distance(value, c->name);
        if (d < bd) {
            bd = d;
            best = c->name;
        }
    }
    return best;
}

/* "a|b|c" for messages and --help */
static void choice_list(const djct_opt_choice *c, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; c && c->name && used < n; c++) {
        int k = snprintf(buf + used, n - used, "%s%s", used ? "|" : "", c->name);
        if (k < 0)
            break;
        used += (size_t)k;
    }
}

/* on the command line options are shown with their dashes, in files as keys */
static int unknown(const djct_opt *t, size_t n, const char *name, const char *origin)
{
    const char *s = suggest(t, n, name);
    const char *d = strcmp(origin, "command line") ? "" : "--";
    if (s)
        return djct_error_set(DJCT_EINVAL, "%s: unknown option '%s%s'; did you mean '%s%s'? (see --help)", origin,
                              d, name, d, s);
    return djct_error_set(DJCT_EINVAL, "%s: unknown option '%s%s'; see --help for the options", origin, d, name);
}

static int range_err(const djct_opt *o, const char *value, const char *origin)
{
    return djct_error_set(DJCT_EINVAL, "%s: --%s %s is out of range; allowed %g..%g", origin, o->name, value,
                          o->min, o->max);
}

/* a value to show in "e.g. --name X": the default, unless it is a sentinel; then the range's start */
static const char *example(const djct_opt *o, char *buf, size_t n, const char *fallback)
{
    const char *def = literal_default(o, buf, n);
    if (def && in_range(o, strtod(def, NULL)))
        return def;
    if (o->min < o->max) {
        snprintf(buf, n, "%.15g", o->min);
        return buf;
    }
    return fallback;
}

static int set_value(const djct_opt *o, void *dst, const char *value, const char *origin)
{
    char *end = NULL, eg[40];
    errno = 0;
    switch (o->type) {
    case DJCT_OPT_INT:
    case DJCT_OPT_INT64: {
        if (!value || !*value)
            return djct_error_set(DJCT_EINVAL, "%s: --%s needs a whole number, e.g. --%s %s", origin, o->name,
                                  o->name, example(o, eg, sizeof(eg), "1"));
        long long v = strtoll(value, &end, 0);
        if (errno || *end)
            return djct_error_set(DJCT_EINVAL, "%s: --%s '%s' is not a whole number; e.g. --%s %s", origin,
                                  o->name, value, o->name, example(o, eg, sizeof(eg), "1"));
        if (!in_range(o, (double)v) && strcmp(origin, "default"))
            return range_err(o, value, origin);
        if (o->type == DJCT_OPT_INT) {
            if (v < INT32_MIN || v > INT32_MAX)
                return djct_error_set(DJCT_EINVAL, "%s: --%s %s does not fit an int", origin, o->name, value);
            *(int *)field(dst, o) = (int)v;
        } else {
            *(int64_t *)field(dst, o) = (int64_t)v;
        }
        return 0;
    }
    case DJCT_OPT_DOUBLE: {
        double v = value && *value ? strtod(value, &end) : NAN;
        if (!value || !*value || errno || *end || !isfinite(v))
            return djct_error_set(DJCT_EINVAL, "%s: --%s '%s' is not a finite number; e.g. --%s %s", origin,
                                  o->name, value ? value : "", o->name, example(o, eg, sizeof(eg), "0.1"));
        if (!in_range(o, v) && strcmp(origin, "default"))
            return range_err(o, value, origin);
        *(double *)field(dst, o) = v;
        return 0;
    }
    case DJCT_OPT_FLAG: {
        int v;
        if (!value || !strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") ||
            !strcasecmp(value, "on"))
            v = 1;
        else if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") ||
                 !strcasecmp(value, "off"))
            v = 0;
        else
            return djct_error_set(DJCT_EINVAL, "%s: --%s '%s' is not a switch; use true or false", origin,
                                  o->name, value);
        *(int *)field(dst, o) = v;
        return 0;
    }
    case DJCT_OPT_CHOICE: {
        if (!value)
            return djct_error_set(DJCT_EINVAL, "%s: --%s needs a value", origin, o->name);
        for (const djct_opt_choice *c = o->choices; c && c->name; c++)
            if (!strcmp(c->name, value)) {
                *(int *)field(dst, o) = c->value;
                return 0;
            }
        char list[512];
        choice_list(o->choices, list, sizeof(list));
        const char *s = suggest_choice(o->choices, value);
        if (s)
            return djct_error_set(DJCT_EINVAL, "%s: --%s '%s' is not allowed; use one of %s (did you mean '%s'?)",
                                  origin, o->name, value, list, s);
        return djct_error_set(DJCT_EINVAL, "%s: --%s '%s' is not allowed; use one of %s", origin, o->name, value,
                              list);
    }
    case DJCT_OPT_STRING:
    case DJCT_OPT_LIST: {
        if (!value)
            return djct_error_set(DJCT_EINVAL, "%s: --%s needs a value", origin, o->name);
        char **slot = field(dst, o);
        int append = o->type == DJCT_OPT_LIST && *slot && **slot;
        char *copy = malloc((append ? strlen(*slot) + 1 : 0) + strlen(value) + 1);
        if (!copy)
            return djct_error_oom();
        sprintf(copy, "%s%s%s", append ? *slot : "", append ? "," : "", value);
        free(*slot);
        *slot = copy;
        return 0;
    }
    case DJCT_OPT_ARGS:
        return djct_error_set(DJCT_EINVAL, "%s: %s is a positional argument, not an option", origin,
                              o->metavar ? o->metavar : o->name);
    }
    return djct_error_set(DJCT_EINVAL, "option table: --%s has an unknown type", o->name);
}

int djct_opts_defaults(const djct_opt *table, size_t n, void *dst)
{
    DJCT_CHECK_ARG(table);
    DJCT_CHECK_ARG(dst);
    for (size_t i = 0; i < n; i++) {
        const djct_opt *o = &table[i];
        switch (o->type) {
        case DJCT_OPT_INT:
        case DJCT_OPT_FLAG:
        case DJCT_OPT_CHOICE: *(int *)field(dst, o) = 0; break;
        case DJCT_OPT_INT64: *(int64_t *)field(dst, o) = 0; break;
        case DJCT_OPT_DOUBLE: *(double *)field(dst, o) = 0; break;
        case DJCT_OPT_STRING:
        case DJCT_OPT_LIST: *(char **)field(dst, o) = NULL; break;
        case DJCT_OPT_ARGS: *(char ***)field(dst, o) = NULL; break;
        }
        if (!o->def || o->type == DJCT_OPT_ARGS)
            continue;
        char var[128], lit[512], origin[160];
        int has_lit = 0, rc = 0;
        if (env_default(o->def, var, sizeof(var), lit, sizeof(lit), &has_lit)) {
            const char *env = getenv(var);
            snprintf(origin, sizeof(origin), "environment variable %s", var);
            if (env && *env)
                rc = set_value(o, dst, env, origin);
            else if (has_lit)
                rc = set_value(o, dst, lit, "default");
        } else {
            rc = set_value(o, dst, o->def, "default");
        }
        if (rc)
            return rc;
    }
    return 0;
}

int djct_opts_set(const djct_opt *table, size_t n, void *dst, const char *name, const char *value,
                  const char *origin)
{
    DJCT_CHECK_ARG(table);
    DJCT_CHECK_ARG(name);
    const djct_opt *o = find(table, n, name, strlen(name));
    if (!o)
        return unknown(table, n, name, origin ? origin : "option");
    return set_value(o, dst, value, origin ? origin : "option");
}

struct ini_ctx {
    const djct_opt *table;
    size_t n;
    void *dst;
    const char *path;
    int rc;
    int no_key; /* a line without a key ("= 5"): not an option line */
};

/* line `n` (1-based) of `path`, trimmed and cut to fit, for messages; "" when unreadable */
static void file_line(const char *path, int n, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    for (int i = 1; fgets(line, sizeof(line), f); i++) {
        size_t len = strlen(line);
        int whole = len && line[len - 1] == '\n';
        if (i == n) {
            char *a = line, *e = line + len;
            while (*a == ' ' || *a == '\t')
                a++;
            while (e > a && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            snprintf(buf, cap, "%.*s%s", (int)(e - a > 80 ? 80 : e - a), a, e - a > 80 || !whole ? "..." : "");
            break;
        }
        while (!whole && fgets(line, sizeof(line), f)) { /* the rest of a long line */
            len = strlen(line);
            whole = len && line[len - 1] == '\n';
        }
    }
    fclose(f);
}

/* Debian's inih passes no line number to the handler; a handler returning 0 makes ini_parse_file
 * return the line, so the message is completed after the parse ("config" -> "config 'F' line N") */
static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    (void)section;
    const char *origin = "config";
    if (!*name) {
        c->no_key = 1;
        c->rc = DJCT_EINVAL;
        return 0;
    }
    if (!strcmp(name, "config")) {
        c->rc = djct_error_set(DJCT_EINVAL, "%s: a config file cannot include another (key 'config')", origin);
        return 0;
    }
    c->rc = djct_opts_set(c->table, c->n, c->dst, name, value, origin);
    return c->rc == 0;
}

int djct_opts_parse_file(const djct_opt *table, size_t n, void *dst, const char *path)
{
    DJCT_CHECK_ARG(table);
    DJCT_CHECK_ARG(path);
    FILE *f = fopen(path, "r");
    if (!f)
        return djct_error_set(DJCT_EIO, "config '%s': cannot open: %s; check the --config path", path,
                              strerror(errno));
    struct ini_ctx c = {table, n, dst, path, 0, 0};
    int line = ini_parse_file(f, on_ini_pair, &c);
    fclose(f);
    if ((c.rc && c.no_key) || (!c.rc && line > 0)) {
        char text[128];
        file_line(path, line, text, sizeof(text));
        return djct_error_set(DJCT_EINVAL, "config '%s' line %d: not an option line: '%s'; write 'key = value' "
                              "(keys: the long option names) or '[section]'", path, line, text);
    }
    if (c.rc) {
        char msg[1024];
        const char *m = djct_last_error();
        snprintf(msg, sizeof(msg), "%s", strncmp(m, "config: ", 8) ? m : m + 8);
        return djct_error_set(c.rc, "config '%s' line %d: %s", path, line, msg);
    }
    if (line < 0)
        return djct_error_set(DJCT_EIO, "config '%s': read error", path);
    return 0;
}

int djct_opts_parse_argv(const djct_opt *table, size_t n, void *dst, int argc, char **argv, char ***positional)
{
    DJCT_CHECK_ARG(table);
    DJCT_CHECK_ARG(dst);
    const djct_opt *args = find_args(table, n);
    char **pos = NULL;
    size_t npos = 0;
    int rc = 0;
    if (args || positional) {
        if (!(pos = calloc((size_t)argc + 1, sizeof(char *))))
            return djct_error_oom();
    }
    /* pass 0 applies --config so that the command line wins; pass 1 the rest */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (int i = 1; i < argc && rc == 0; i++) {
            const char *a = argv[i];
            const djct_opt *o = NULL;
            const char *value = NULL;
            char origin[300];
            int negated = 0;
            if (!strcmp(a, "--")) { /* the rest is positional */
                for (int j = i + 1; j < argc && pass == 1; j++) {
                    if (!pos) {
                        rc = djct_error_set(DJCT_EINVAL, "unexpected argument '%s'; see --help", argv[j]);
                        break;
                    }
                    pos[npos++] = argv[j];
                }
                break;
            }
            if (a[0] == '-' && a[1] == '-' && a[2]) {
                const char *name = a + 2, *eq = strchr(name, '=');
                size_t len = eq ? (size_t)(eq - name) : strlen(name);
                o = find(table, n, name, len);
                if (!o && len > 3 && !strncmp(name, "no-", 3)) {
                    o = find(table, n, name + 3, len - 3);
                    if (o && o->type == DJCT_OPT_FLAG)
                        negated = 1;
                    else
                        o = NULL;
                }
                if (!o) {
                    char tmp[128];
                    snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 120 ? len : 120), name);
                    rc = unknown(table, n, tmp, "command line");
                    break;
                }
                if (eq)
                    value = eq + 1;
            } else if (a[0] == '-' && a[1] && a[2] == '\0' && a[1] != '-') {
                for (size_t k = 0; k < n; k++)
                    if (table[k].short_name == a[1] && table[k].type != DJCT_OPT_ARGS)
                        o = &table[k];
                if (!o) {
                    rc = djct_error_set(DJCT_EINVAL, "command line: unknown option '%s'; see --help", a);
                    break;
                }
            } else {
                if (pass == 1) {
                    if (!pos) {
                        rc = djct_error_set(DJCT_EINVAL, "unexpected argument '%s'; options start with --, see --help",
                                            a);
                        break;
                    }
                    pos[npos++] = argv[i];
                }
                continue;
            }
            snprintf(origin, sizeof(origin), "--%s", o->name);
            if (o->type == DJCT_OPT_FLAG) {
                if (negated && value) {
                    rc = djct_error_set(DJCT_EINVAL, "command line: --no-%s takes no value", o->name);
                    break;
                }
                if (!value)
                    value = negated ? "0" : "1";
            } else if (!value) {
                if (i + 1 >= argc) {
                    rc = djct_error_set(DJCT_EINVAL, "command line: --%s needs a value%s%s", o->name,
                                        o->metavar ? " " : "", o->metavar ? o->metavar : "");
                    break;
                }
                value = argv[++i];
            }
            int is_config = !strcmp(o->name, "config");
            if (is_config != (pass == 0))
                continue;
            snprintf(origin, sizeof(origin), "command line");
            rc = set_value(o, dst, value, origin);
            if (rc == 0 && is_config)
                rc = djct_opts_parse_file(table, n, dst, value);
        }
    }
    if (rc == 0 && args) {
        const char *what = args->metavar ? args->metavar : args->name;
        if (args->min < args->max && (double)npos < args->min)
            rc = djct_error_set(DJCT_EINVAL, "command line: %s: %zu given, at least %g needed; see --help", what, npos,
                                args->min);
        else if (args->min < args->max && (double)npos > args->max)
            rc = djct_error_set(DJCT_EINVAL, "command line: %s: %zu given, at most %g allowed; see --help", what, npos,
                                args->max);
        if (rc == 0) {
            char ***slot = field(dst, args);
            free(*slot);
            *slot = pos;
            return 0;
        }
    }
    if (rc) {
        free(pos);
        return rc;
    }
    if (positional)
        *positional = pos;
    return 0;
}

int djct_opts_argv_has(int argc, char **argv, const char *long_name, const char *short_name)
{
    for (int i = 1; argv && i < argc && argv[i] && strcmp(argv[i], "--"); i++)
        if ((long_name && !strcmp(argv[i], long_name)) || (short_name && !strcmp(argv[i], short_name)))
            return 1;
    return 0;
}

const char *djct_opts_choice_name(const djct_opt_choice *choices, int value)
{
    for (const djct_opt_choice *c = choices; c && c->name; c++)
        if (c->value == value)
            return c->name;
    return NULL;
}

/* the default as --help shows it; NULL for none and for a sentinel outside the range */
static const char *shown_default(const djct_opt *o, char *buf, size_t n)
{
    char var[128], lit[256];
    int has_lit = 0;
    if (o->type != DJCT_OPT_ARGS && env_default(o->def, var, sizeof(var), lit, sizeof(lit), &has_lit)) {
        if (has_lit && lit[0])
            snprintf(buf, n, "$%s, else %s", var, lit);
        else
            snprintf(buf, n, "$%s", var);
        return buf;
    }
    if (o->type == DJCT_OPT_FLAG)
        return o->def && strcmp(o->def, "0") ? "on" : "off";
    if (!o->def || o->type == DJCT_OPT_ARGS)
        return NULL;
    if (o->type == DJCT_OPT_INT || o->type == DJCT_OPT_INT64 || o->type == DJCT_OPT_DOUBLE)
        return in_range(o, strtod(o->def, NULL)) ? o->def : NULL;
    return o->def;
}

void djct_opts_print_help(const djct_opt *table, size_t n, const char *usage, FILE *f)
{
    if (usage)
        fprintf(f, "%s\n", usage);
    for (size_t i = 0; i < n; i++) {
        const djct_opt *o = &table[i];
        if (o->group)
            fprintf(f, "\n%s:\n", o->group);
        char head[600], list[512];
        const char *sn = o->short_name ? "-" : "", *sc = o->short_name ? "," : " ";
        char s1 = o->short_name ? o->short_name : ' ';
        int len;
        if (o->type == DJCT_OPT_ARGS)
            len = snprintf(head, sizeof(head), "  %s", o->metavar ? o->metavar : o->name);
        else if (o->type == DJCT_OPT_FLAG)
            len = snprintf(head, sizeof(head), "  %s%c%s--[no-]%s", sn, s1, sc, o->name);
        else {
            if (o->type == DJCT_OPT_CHOICE)
                choice_list(o->choices, list, sizeof(list));
            len = snprintf(head, sizeof(head), "  %s%c%s--%s %s", sn, s1, sc, o->name,
                           o->type == DJCT_OPT_CHOICE ? list : (o->metavar ? o->metavar : "VALUE"));
        }
        fprintf(f, "%s", head);
        if (len >= 30)
            fprintf(f, "\n%30s", "");
        else
            fprintf(f, "%*s", 30 - len, "");
        fprintf(f, "%s", o->help ? o->help : "");
        char dbuf[640];
        const char *d = shown_default(o, dbuf, sizeof(dbuf));
        if (d)
            fprintf(f, " [%s]", d);
        fprintf(f, "\n");
    }
}

void djct_opts_print(const djct_opt *table, size_t n, const void *src, FILE *f)
{
    for (size_t i = 0; i < n; i++) {
        const djct_opt *o = &table[i];
        if (!strcmp(o->name, "config") || o->type == DJCT_OPT_ARGS)
            continue;
        const void *p = cfield(src, o);
        switch (o->type) {
        case DJCT_OPT_INT: fprintf(f, "%s = %d\n", o->name, *(const int *)p); break;
        case DJCT_OPT_FLAG: fprintf(f, "%s = %s\n", o->name, *(const int *)p ? "true" : "false"); break;
        case DJCT_OPT_INT64: fprintf(f, "%s = %" PRId64 "\n", o->name, *(const int64_t *)p); break;
        case DJCT_OPT_DOUBLE: fprintf(f, "%s = %.10g\n", o->name, *(const double *)p); break;
        case DJCT_OPT_CHOICE: {
            const char *s = djct_opts_choice_name(o->choices, *(const int *)p);
            fprintf(f, "%s = %s\n", o->name, s ? s : "");
            break;
        }
        case DJCT_OPT_STRING:
        case DJCT_OPT_LIST: {
            const char *s = *(char *const *)p;
            fprintf(f, "%s = %s\n", o->name, s ? s : "");
            break;
        }
        case DJCT_OPT_ARGS: break;
        }
    }
}

void djct_opts_free(const djct_opt *table, size_t n, void *dst)
{
    if (!table || !dst)
        return;
    for (size_t i = 0; i < n; i++)
        if (table[i].type == DJCT_OPT_STRING || table[i].type == DJCT_OPT_LIST) {
            char **slot = field(dst, &table[i]);
            free(*slot);
            *slot = NULL;
        } else if (table[i].type == DJCT_OPT_ARGS) {
            char ***slot = field(dst, &table[i]);
            free(*slot);
            *slot = NULL;
        }
}
