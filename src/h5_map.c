/* Mapping files (docs/data.md, "HDF5 files as they are"): an INI file naming which datasets of an
 * HDF5 file in a layout of its own are the feature, truth and weight arrays, so that such files
 * train without conversion. One section per array, in the order the model gets them:
 *   [feature points]            values = /jets/points      counts = /jets/n_points
 *   feature_names = px, py, pz  dtype = float32            (row_splits or offsets instead of counts)
 * inih parses the pairs; a first pass over the lines finds the section headers with their line
 * numbers, so that an empty or repeated section is an error naming its line (inih reports
 * neither). A map is immutable once loaded. */
#include "djct/error.h"
#include "djct/h5.h"
#include "djct_int.h"
#include "h5_file_int.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const h5_splits_kind_name[4] = {"", "row_splits", "offsets", "counts"};

static const char *const KIND[3] = {"feature", "truth", "weight"};
#define KEYS "values, row_splits, offsets, counts, feature_names, dtype"
#define MAP_MAX_BYTES (1 << 20)
/* inih keeps section names in 50 bytes and reads lines of 200 (Debian's build): longer ones would
 * be cut silently, so they are refused */
#define INI_SECTION_MAX 49
#define INI_LINE_MAX 197

void djct_h5_map_free(djct_h5_map *m)
{
    if (!m)
        return;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < m->n[c]; i++) {
            h5_map_array *a = &m->a[c][i];
            free(a->name);
            free(a->values);
            free(a->splits);
            for (size_t k = 0; k < a->n_feature_names; k++)
                free(a->feature_names[k]);
            free(a->feature_names);
        }
        free(m->a[c]);
    }
    free(m->path);
    free(m);
}

/* ---- parsing ---- */

typedef struct {
    char *text;  /* between '[' and ']', as inih hands it to the handler */
    int   line;
    int   c;     /* container */
    size_t i;    /* index in it */
    int   keys;  /* pairs seen */
} section;

typedef struct {
    djct_h5_map *m;
    section     *s;
    size_t       ns;
    size_t       cur;  /* the section of the last pair */
    int          failed;
    char         msg[900];
    char         last_key[64];
} parse_ctx;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* "[feature NAME]": container and name (trimmed, malloc'ed), or a message */
static int section_kind(const char *text, int *c, char **name, char *msg, size_t nmsg)
{
    char buf[INI_SECTION_MAX + 2];
    snprintf(buf, sizeof(buf), "%s", text);
    char *t = trim(buf), *sp = t;
    while (*sp && !isspace((unsigned char)*sp))
        sp++;
    size_t klen = (size_t)(sp - t);
    *c = -1;
    for (int k = 0; k < 3; k++)
        if ((klen == strlen(KIND[k]) || (klen == strlen(KIND[k]) + 1 && t[klen - 1] == 's')) &&
            !strncmp(t, KIND[k], strlen(KIND[k])))
            *c = k;
    char *nm = trim(sp);
    if (*c < 0 || !*nm) {
        snprintf(msg, nmsg, "section [%s] is not [feature NAME], [truth NAME] or [weight NAME]", text);
        return -1;
    }
    if (!(*name = strdup(nm))) {
        snprintf(msg, nmsg, "out of memory");
        return -1;
    }
    return 0;
}

/* First pass, as inih reads the lines: the section headers with their lines (and the arrays they
 * make), lines too long for inih, repeated sections. Returns the line of an error, 0 when fine. */
static int scan_sections(parse_ctx *P, const char *text)
{
    int line = 0, had_key = 0;
    const char *p = text;
    if (!strncmp(p, "\xEF\xBB\xBF", 3))
        p += 3;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        line++;
        if (len > INI_LINE_MAX) {
            snprintf(P->msg, sizeof(P->msg), "longer than %d characters (the INI reader's limit); shorten the "
                     "dataset path or the names", INI_LINE_MAX);
            return line;
        }
        char buf[INI_LINE_MAX + 2];
        memcpy(buf, p, len);
        buf[len] = '\0';
        char *start = buf;
        while (isspace((unsigned char)*start))
            start++;
        size_t n = strlen(start);
        while (n && isspace((unsigned char)start[n - 1]))
            start[--n] = '\0';
        p = e ? e + 1 : p + len;
        if (!*start || *start == ';' || *start == '#')
            continue;
        if (had_key && start > buf) /* a continuation of the value above, as inih reads it */
            continue;
        if (*start != '[') {
            if (!strpbrk(start, "=:")) {
                snprintf(P->msg, sizeof(P->msg), "not 'key = value', '[section]' or a comment");
                return line;
            }
            had_key = 1;
            continue;
        }
        had_key = 0;
        char *close = strchr(start, ']');
        if (!close) {
            snprintf(P->msg, sizeof(P->msg), "'[' without ']'");
            return line;
        }
        *close = '\0';
        const char *inner = start + 1;
        if (strlen(inner) > INI_SECTION_MAX) {
            snprintf(P->msg, sizeof(P->msg), "section [%s] is longer than %d characters (the INI reader's limit); "
                     "use a shorter array name", inner, INI_SECTION_MAX);
            return line;
        }
        int c;
        char *name = NULL;
        if (section_kind(inner, &c, &name, P->msg, sizeof(P->msg)) < 0)
            return line;
        for (size_t k = 0; k < P->ns; k++) {
            h5_map_array *o = &P->m->a[P->s[k].c][P->s[k].i];
            if (P->s[k].c == c && !strcmp(o->name, name)) {
                snprintf(P->msg, sizeof(P->msg), "[%s %s] appears twice (first at line %d); one section per array",
                         KIND[c], name, P->s[k].line);
                free(name);
                return line;
            }
        }
        if (P->m->n[c] >= MAX_ARRAYS_PER_GROUP) {
            snprintf(P->msg, sizeof(P->msg), "more than %d %s arrays", MAX_ARRAYS_PER_GROUP, KIND[c]);
            free(name);
            return line;
        }
        section *ns = realloc(P->s, (P->ns + 1) * sizeof(section));
        h5_map_array *na = ns ? realloc(P->m->a[c], (P->m->n[c] + 1) * sizeof(h5_map_array)) : NULL;
        char *t = na ? strdup(inner) : NULL;
        if (ns)
            P->s = ns;
        if (na)
            P->m->a[c] = na;
        if (!t) {
            snprintf(P->msg, sizeof(P->msg), "out of memory");
            free(name);
            return line;
        }
        h5_map_array *a = &P->m->a[c][P->m->n[c]];
        memset(a, 0, sizeof(*a));
        a->name = name;
        a->dtype = -1;
        a->line = line;
        P->s[P->ns++] = (section){t, line, c, P->m->n[c]++, 0};
    }
    return 0;
}

static int set_path(char **dst, const char *value, parse_ctx *P, const char *key)
{
    if (*dst) {
        snprintf(P->msg, sizeof(P->msg), "'%s' given twice in one section", key);
        return 0;
    }
    if (!*value) {
        snprintf(P->msg, sizeof(P->msg), "'%s' is empty; give a dataset path such as /group/name", key);
        return 0;
    }
    if (!(*dst = strdup(value))) {
        snprintf(P->msg, sizeof(P->msg), "out of memory");
        return 0;
    }
    return 1;
}

static int add_names(h5_map_array *a, const char *value, parse_ctx *P)
{
    char *copy = strdup(value), *save = NULL;
    if (!copy) {
        snprintf(P->msg, sizeof(P->msg), "out of memory");
        return 0;
    }
    int ok = 1;
    /* an empty entry (", ,") is a mistake; a trailing ',' before a continuation line is not */
    size_t n = strlen(copy);
    for (size_t i = 0; i + 1 < n && ok; i++)
        if (copy[i] == ',') {
            size_t j = i + 1;
            while (j < n && isspace((unsigned char)copy[j]))
                j++;
            if (j < n && copy[j] == ',')
                ok = 0;
        }
    if (!ok || copy[0] == ',')
        snprintf(P->msg, sizeof(P->msg), "feature_names '%s' has an empty entry", value);
    for (char *t = ok ? strtok_r(copy, ",", &save) : NULL; t && ok; t = strtok_r(NULL, ",", &save)) {
        char *nm = trim(t);
        if (!*nm)
            continue;
        char **nv = a->n_feature_names < MAX_FEATURE_NAMES
                        ? realloc(a->feature_names, (a->n_feature_names + 1) * sizeof(char *))
                        : NULL;
        if (nv)
            a->feature_names = nv;
        if (!nv || !(nv[a->n_feature_names] = strdup(nm))) {
            snprintf(P->msg, sizeof(P->msg), nv ? "out of memory" : "more than %d feature names", MAX_FEATURE_NAMES);
            ok = 0;
            break;
        }
        a->n_feature_names++;
    }
    free(copy);
    return ok;
}

/* one pair; 0 with P->msg set on an error */
static int pair(parse_ctx *P, const char *sect, const char *key, const char *value)
{
    if (!*sect) {
        snprintf(P->msg, sizeof(P->msg), "'%s' comes before any section; start with [feature NAME]", key);
        return 0;
    }
    size_t k = P->cur < P->ns && !strcmp(P->s[P->cur].text, sect) ? P->cur : P->ns;
    for (size_t j = 0; j < P->ns && k == P->ns; j++)
        if (!strcmp(P->s[j].text, sect))
            k = j;
    if (k == P->ns) { /* cannot happen: the first pass read the same lines */
        snprintf(P->msg, sizeof(P->msg), "section [%s] not seen by the first pass", sect);
        return 0;
    }
    int continued = k == P->cur && P->s[k].keys && !strcmp(P->last_key, key);
    P->cur = k;
    P->s[k].keys++;
    snprintf(P->last_key, sizeof(P->last_key), "%s", key);
    h5_map_array *a = &P->m->a[P->s[k].c][P->s[k].i];
    if (!strcmp(key, "values"))
        return set_path(&a->values, value, P, key);
    if (!strcmp(key, "feature_names")) {
        if (a->n_feature_names && !continued) {
            snprintf(P->msg, sizeof(P->msg), "'feature_names' given twice in one section");
            return 0;
        }
        return add_names(a, value, P);
    }
    for (int s = H5S_ROW_SPLITS; s <= H5S_COUNTS; s++)
        if (!strcmp(key, h5_splits_kind_name[s])) {
            if (a->splits_kind && a->splits_kind != s) {
                snprintf(P->msg, sizeof(P->msg), "[%s %s] has both %s and %s; keep one", KIND[P->s[k].c], a->name,
                         h5_splits_kind_name[a->splits_kind], key);
                return 0;
            }
            a->splits_kind = s;
            return set_path(&a->splits, value, P, key);
        }
    if (!strcmp(key, "dtype")) {
        if (strcmp(value, "float32") && strcmp(value, "int32")) {
            snprintf(P->msg, sizeof(P->msg), "dtype '%s': float32 or int32 (leave it out to read floating point as "
                     "float32 and integers and bools as int32)", value);
            return 0;
        }
        a->dtype = strcmp(value, "float32") ? DJCT_DTYPE_INT32 : DJCT_DTYPE_FLOAT32;
        return 1;
    }
    snprintf(P->msg, sizeof(P->msg), "unknown key '%s' in [%s]; the keys are " KEYS, key, sect);
    return 0;
}

/* inih's handler: 0 makes ini_parse_string return this line; it reads on, so the first message
 * is kept */
static int on_pair(void *user, const char *sect, const char *key, const char *value)
{
    parse_ctx *P = user;
    if (P->failed)
        return 1;
    if (pair(P, sect, key, value))
        return 1;
    P->failed = 1;
    return 0;
}

int djct_h5_map_load(djct_h5_map **out, const char *path)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return djct_error_set(DJCT_EIO, "map '%s': cannot open: %s; check the path (--h5-map)", path, strerror(errno));
    char *text = malloc(MAP_MAX_BYTES + 1);
    size_t len = text ? fread(text, 1, MAP_MAX_BYTES + 1, fp) : 0;
    int rerr = ferror(fp);
    fclose(fp);
    if (!text)
        return djct_error_oom();
    if (rerr || len > MAP_MAX_BYTES) {
        free(text);
        return djct_error_set(rerr ? DJCT_EIO : DJCT_EINVAL, "map '%s': %s", path,
                              rerr ? "read error" : "larger than 1 MiB; is it a mapping file?");
    }
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        free(text);
        return djct_error_set(DJCT_EINVAL, "map '%s': holds a NUL byte; not a text file", path);
    }
    parse_ctx P;
    memset(&P, 0, sizeof(P));
    int rc = 0, line;
    if (!(P.m = calloc(1, sizeof(djct_h5_map))) || !(P.m->path = strdup(path))) {
        rc = djct_error_oom();
        goto done;
    }
    P.cur = (size_t)-1;
    if ((line = scan_sections(&P, text)) != 0) {
        rc = djct_error_set(DJCT_EINVAL, "map '%s' line %d: %s", path, line, P.msg);
        goto done;
    }
    line = ini_parse_string(text, on_pair, &P);
    if (line != 0) {
        rc = djct_error_set(DJCT_EINVAL, "map '%s' line %d: %s", path, line,
                            P.msg[0] ? P.msg : "not 'key = value', '[section]' or a comment");
        goto done;
    }
    for (size_t k = 0; k < P.ns; k++) {
        const h5_map_array *a = &P.m->a[P.s[k].c][P.s[k].i];
        if (!a->values) {
            rc = djct_error_set(DJCT_EINVAL, "map '%s' line %d: [%s] has no 'values = DATASET'", path, P.s[k].line,
                                P.s[k].text);
            goto done;
        }
    }
    if (P.m->n[0] == 0)
        rc = djct_error_set(DJCT_EINVAL, "map '%s': no [feature NAME] section; the model needs at least one feature "
                            "array", path);
done:
    for (size_t k = 0; k < P.ns; k++)
        free(P.s[k].text);
    free(P.s);
    free(text);
    if (rc < 0) {
        djct_h5_map_free(P.m);
        return rc;
    }
    *out = P.m;
    return 0;
}

int h5_map_beside(djct_h5_map **out, const char *path)
{
    *out = NULL;
    size_t n = strlen(path) + sizeof(DJCT_H5_MAP_SUFFIX);
    char *mp = malloc(n);
    if (!mp)
        return djct_error_oom();
    snprintf(mp, n, "%s" DJCT_H5_MAP_SUFFIX, path);
    struct stat st;
    int rc = 0;
    if (stat(mp, &st) == 0)
        rc = djct_h5_map_load(out, mp) < 0 ? djct_error_prefix("'%s' (the map beside it)", path) : 1;
    free(mp);
    return rc;
}

/* ---- opening a file through a map ---- */

int h5_map_open_arrays(djct_h5_file *f)
{
    const djct_h5_map *m = f->h5map;
    djct_record *lay = &f->meta.layout;
    djct_array **slots[3] = {&lay->features, &lay->truths, &lay->weights};
    size_t *counts[3] = {&lay->n_features, &lay->n_truths, &lay->n_weights};
    f->n = m->n[0] + m->n[1] + m->n[2];
    if (!(f->a = calloc(f->n, sizeof(h5arr))))
        return djct_error_oom();
    for (size_t k = 0; k < f->n; k++)
        f->a[k].ds = f->a[k].conv.mem = -1;
    size_t k = 0;
    for (int c = 0; c < 3; c++) {
        if (!m->n[c])
            continue;
        if (!(*slots[c] = calloc(m->n[c], sizeof(djct_array))))
            return djct_error_oom();
        *counts[c] = m->n[c];
        for (size_t i = 0; i < m->n[c]; i++, k++) {
            const h5_map_array *a = &m->a[c][i];
            djct_array *l = &(*slots[c])[i];
            h5arr *h = &f->a[k];
            snprintf(h->obj, sizeof(h->obj), "[%s %s]", KIND[c], a->name);
            if (!(h->vname = strdup(a->values)) || (a->splits && !(h->sname = strdup(a->splits))) ||
                !(l->name = strdup(a->name)) ||
                (a->n_feature_names && !(l->feature_names = calloc(a->n_feature_names, sizeof(char *)))))
                return djct_error_oom();
            for (size_t j = 0; j < a->n_feature_names; j++) {
                if (!(l->feature_names[j] = strdup(a->feature_names[j])))
                    return djct_error_oom();
                l->n_feature_names = j + 1;
            }
            int rc = h5_open_data(f, f->fid, a->values, a->splits, a->splits_kind, a->dtype, l, h);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
