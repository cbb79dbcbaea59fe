/* Option tables: one table drives command-line parsing, config files (INI, parsed with inih),
 * --help and the printed resolved configuration. Values land in the caller's struct at the
 * offsets the table gives. Precedence: defaults < config file < command line. */
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
    DJCT_OPT_CHOICE  /* char * limited to `choices` ("a|b|c") */
} djct_opt_type;

typedef struct {
    const char   *name;     /* long name without dashes; also the config-file key */
    char          short_name; /* 0: none */
    djct_opt_type type;
    size_t        offset;   /* offsetof(struct, field) */
    const char   *def;      /* default, written as a user would (NULL: 0 / NULL) */
    const char   *choices;  /* DJCT_OPT_CHOICE: "a|b|c" */
    double        min, max; /* numeric range, checked when min < max */
    const char   *metavar;  /* "N", "FILE", ... */
    const char   *help;     /* one line */
    const char   *group;    /* heading in --help; NULL continues the previous group */
} djct_opt;

/** Set every field of `dst` to the table's default. Strings are strdup'ed. */
DJCT_API int djct_opts_defaults(const djct_opt *table, size_t n, void *dst);

/** Parse one value for option `name` (as if given on the command line); `origin` names where it
 *  came from for error messages (e.g. "--epochs" or "config 'a.ini' line 3"). */
DJCT_API int djct_opts_set(const djct_opt *table, size_t n, void *dst, const char *name,
                           const char *value, const char *origin);

/** Parse an INI config file: keys are option names (dashes or underscores), sections are ignored
 *  except that a `[name]` section must be empty or the program's; unknown keys are errors with a
 *  suggestion. Returns DJCT_EINVAL/DJCT_EIO with "config 'FILE' line N: ..." messages. */
DJCT_API int djct_opts_parse_file(const djct_opt *table, size_t n, void *dst, const char *path);

/** Parse argv[1..argc): `--name value`, `--name=value`, `-x value`, `--flag`, `--no-flag`.
 *  A `--config FILE` option (if the table has a STRING option named "config") is applied first,
 *  so the command line overrides the file. Positional arguments are an error unless
 *  `positional` is non-NULL: then they are collected (pointers into argv) into a NULL-terminated
 *  malloc'ed array the caller frees. "--help"/"-h" and "--version" are not handled here. */
DJCT_API int djct_opts_parse_argv(const djct_opt *table, size_t n, void *dst, int argc, char **argv,
                                  char ***positional);

/** Write --help text for the table to `f`, after `usage` (one line). */
DJCT_API void djct_opts_print_help(const djct_opt *table, size_t n, const char *usage, FILE *f);

/** Write the resolved configuration (`name = value` lines, INI-compatible) to `f`. */
DJCT_API void djct_opts_print(const djct_opt *table, size_t n, const void *src, FILE *f);

/** Free the strings the table's STRING/CHOICE fields point to and NULL them. */
DJCT_API void djct_opts_free(const djct_opt *table, size_t n, void *dst);

DJCT_END_DECLS

#endif /* DJCT_OPTIONS_H */
