/* Option tables: one table drives command-line parsing, config files (INI, parsed with inih),
 * --help and the printed resolved configuration. Values land in the caller's struct at the
 * offsets the table gives. Precedence: defaults < environment (a "${VAR:-default}" default) <
 * config file < command line.
 *
 *   typedef enum { OPT_SGD, OPT_ADAM } optim;
 *   static const djct_opt_choice OPTIMS[] = {{"sgd", OPT_SGD}, {"adam", OPT_ADAM}, {NULL, 0}};
 *   typedef struct { int epochs; int optim; char **files; } cfg;
 *   static const djct_opt T[] = {
 *       {"epochs", 'e', DJCT_OPT_INT, offsetof(cfg, epochs), "3", NULL, 1, 1e6, "N", "epochs", "General"},
 *       {"optimizer", 0, DJCT_OPT_CHOICE, offsetof(cfg, optim), "adam", OPTIMS, 0, 0, NULL, "optimizer", NULL},
 *       {"file", 0, DJCT_OPT_ARGS, offsetof(cfg, files), NULL, NULL, 1, 1e9, "FILE...", "inputs", NULL},
 *   };
 */
#ifndef DJCT_OPTIONS_H
#define DJCT_OPTIONS_H

#include <stdio.h>

#include "common.h"

DJCT_BEGIN_DECLS

typedef enum {
    DJCT_OPT_INT,    /* int */
    DJCT_OPT_INT64,  /* int64_t */
    DJCT_OPT_DOUBLE, /* double */
    DJCT_OPT_STRING, /* char * (owned by the struct; free with djct_opts_free) */
    DJCT_OPT_FLAG,   /* int, 0/1; on the command line --name sets 1, --no-name sets 0 */
    DJCT_OPT_CHOICE, /* int: the value of the name given, from the option's `choices` table */
    DJCT_OPT_ARGS,   /* char **: the positional arguments, a NULL-terminated array of pointers into
                        argv (the array is owned by the struct, the strings by argv); command line
                        only; at most one per table */
    DJCT_OPT_LIST    /* char * as STRING, but repeatable: each value given (config file first,
                        then the command line) is appended after a ',' instead of replacing */
} djct_opt_type;

/** One allowed name of a DJCT_OPT_CHOICE option and the value it stands for (usually an enum
 *  constant). A table of them ends with {NULL, 0}. */
typedef struct {
    const char *name;
    int         value;
} djct_opt_choice;

typedef struct {
    const char   *name;     /* long name without dashes; also the config-file key (ARGS: a name
                               for messages only) */
    char          short_name; /* 0: none */
    djct_opt_type type;
    size_t        offset;   /* offsetof(struct, field) */
    const char   *def;      /* default, written as a user would (NULL: 0 / NULL); a number
                               outside [min, max] is a sentinel ("not given"): allowed as the
                               default, refused from the user, not shown in --help.
                               "${VAR:-text}": the environment variable VAR when it is set and not
                               empty (checked like a user's value; errors name VAR), else `text`;
                               "${VAR}": VAR, else nothing. --help shows "[$VAR, else text]" */
    const djct_opt_choice *choices; /* DJCT_OPT_CHOICE: the allowed names, {NULL, 0}-terminated */
    double        min, max; /* numeric range, checked when min < max; ARGS: how many */
    const char   *metavar;  /* "N", "FILE", ...; ARGS: as shown in --help, e.g. "FILE..." */
    const char   *help;     /* one line */
    const char   *group;    /* heading in --help; NULL continues the previous group */
} djct_opt;

/** Set every field of `dst` to the table's default. Strings are strdup'ed. */
DJCT_API int djct_opts_defaults(const djct_opt *table, size_t n, void *dst);

/** Parse one value for option `name` (as if given on the command line); `origin` names where it
 *  came from for error messages (e.g. "--epochs" or "config 'a.ini' line 3"). */
DJCT_API int djct_opts_set(const djct_opt *table, size_t n, void *dst, const char *name,
                           const char *value, const char *origin);

/** Parse an INI config file: keys are option names (dashes or underscores), `[section]` lines
 *  are ignored; unknown keys are errors with a suggestion. Returns DJCT_EINVAL/DJCT_EIO with "config 'FILE' line N: ..." messages. */
DJCT_API int djct_opts_parse_file(const djct_opt *table, size_t n, void *dst, const char *path);

/** Parse argv[1..argc): `--name value`, `--name=value`, `-x value`, `--flag`, `--no-flag`;
 *  everything after `--` is positional. A `--config FILE` option (if the table has a STRING option
 *  named "config") is applied first, so the command line overrides the file. Positional arguments
 *  go to the table's DJCT_OPT_ARGS field (their count checked against its min..max), else, when
 *  `positional` is non-NULL, into a NULL-terminated malloc'ed array the caller frees; otherwise
 *  they are an error. "--help"/"-h" and "--version" are not handled here (djct_opts_argv_has). */
DJCT_API int djct_opts_parse_argv(const djct_opt *table, size_t n, void *dst, int argc, char **argv,
                                  char ***positional);

/** 1 when `long_name` (e.g. "--help") or `short_name` (e.g. "-h"; may be NULL) is one of
 *  argv[1..argc) before any `--`, else 0: for what an app handles before parsing (--help, --version). */
DJCT_API int djct_opts_argv_has(int argc, char **argv, const char *long_name, const char *short_name);

/** The name of `value` in a choice table; NULL when it has none. */
DJCT_API const char *djct_opts_choice_name(const djct_opt_choice *choices, int value);

/** Write --help text for the table to `f`, after `usage` (one or more lines). */
DJCT_API void djct_opts_print_help(const djct_opt *table, size_t n, const char *usage, FILE *f);

/** Write the resolved configuration (`name = value` lines, INI-compatible; choices by name, no
 *  `config`, no positional arguments) to `f`. */
DJCT_API void djct_opts_print(const djct_opt *table, size_t n, const void *src, FILE *f);

/** Free what the table's STRING and ARGS fields own and NULL them. */
DJCT_API void djct_opts_free(const djct_opt *table, size_t n, void *dst);

DJCT_END_DECLS

#endif /* DJCT_OPTIONS_H */
