/* A dataset's file list from one spec entry: a data file, a directory (its data files, sorted), a
 * glob pattern (sorted), a .djcdc DataCollection, or a text file naming one path per line. */
#include "djct/dataset.h"
#include "djct/error.h"
#include "djct_int.h"
#include "dataset_int.h"
#include "djct/djcdata.h"
#include "djct/h5.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int sl_add(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 16;
        char **q = realloc(l->p, c * sizeof(char *));
        if (!q)
            return djct_error_oom();
        l->p = q;
        l->cap = c;
    }
    if (!(l->p[l->n] = strdup(s)))
        return djct_error_oom();
    l->n++;
    return 0;
}

void dataset_list_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->p[i]);
    free(l->p);
}

static int has_ext(const char *s, const char *ext)
{
    size_t a = strlen(s), b = strlen(ext);
    return a > b && !strcmp(s + a - b, ext);
}

static int is_data_name(const char *s)
{
    return has_ext(s, ".djctd") || has_ext(s, ".h5") || has_ext(s, ".hdf5");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_list_file(strlist *l, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return djct_error_set(DJCT_EIO, "dataset: list file '%s': %s", path, strerror(errno));
    char *dcopy = strdup(path), line[4096], full[8192];
    if (!dcopy) {
        fclose(fp);
        return djct_error_oom();
    }
    const char *dir = dirname(dcopy);
    int rc = 0, lineno = 0;
    size_t before = l->n;
    while (rc == 0 && fgets(line, sizeof(line), fp)) {
        lineno++;
        char *s = line, *end;
        while (*s == ' ' || *s == '\t')
            s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = 0;
        if (!*s || *s == '#')
            continue;
        if (*s == '/')
            snprintf(full, sizeof(full), "%s", s);
        else
            snprintf(full, sizeof(full), "%s/%s", dir, s);
        struct stat st;
        if (stat(full, &st) != 0)
            rc = djct_error_set(DJCT_EIO, "dataset: list file '%s' line %d: '%s': %s", path, lineno, full,
                                strerror(errno));
        else
            rc = sl_add(l, full);
    }
    fclose(fp);
    free(dcopy);
    if (rc == 0 && l->n == before)
        rc = djct_error_set(DJCT_EINVAL, "dataset: list file '%s' names no file", path);
    return rc;
}

int dataset_list_add(strlist *l, const char *e)
{
    int rc = 0;
    if (strpbrk(e, "*?[")) {
        glob_t g;
        int gr = glob(e, 0, NULL, &g);
        if (gr == GLOB_NOMATCH)
            return djct_error_set(DJCT_EINVAL, "dataset: no file matches '%s'", e);
        if (gr != 0)
            return djct_error_set(DJCT_EIO, "dataset: glob '%s' failed (%d)", e, gr);
        for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
            rc = sl_add(l, g.gl_pathv[i]); /* glob sorts */
        globfree(&g);
        return rc;
    }
    struct stat st;
    if (stat(e, &st) != 0)
        return djct_error_set(DJCT_EIO, "dataset: '%s': %s", e, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(e);
        if (!d)
            return djct_error_set(DJCT_EIO, "dataset: directory '%s': %s", e, strerror(errno));
        size_t before = l->n;
        struct dirent *de;
        char full[8192];
        while (rc == 0 && (de = readdir(d)) != NULL)
            if (is_data_name(de->d_name)) {
                snprintf(full, sizeof(full), "%s/%s", e, de->d_name);
                rc = sl_add(l, full);
            }
        closedir(d);
        if (rc == 0 && l->n == before)
            return djct_error_set(DJCT_EINVAL, "dataset: directory '%s' holds no .djctd, .h5 or .hdf5 file", e);
        if (rc == 0)
            qsort(l->p + before, l->n - before, sizeof(char *), cmp_str);
        return rc;
    }
    if (has_ext(e, ".djcdc")) {
        char **paths = NULL;
        size_t n = 0;
        if ((rc = djct_djcdc_read(&paths, &n, NULL, NULL, e)) < 0)
            return djct_error_prefix("dataset");
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = sl_add(l, paths[i]);
        djct_djcdc_free(paths, n);
        return rc;
    }
    djct_format f;
    if (is_data_name(e) || djct_format_detect(&f, e) == 0) /* a data file (its reader checks it), else a list */
        return sl_add(l, e);
    return add_list_file(l, e);
}

