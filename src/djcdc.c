/* .djcdc DataCollection files (djcdata.md section 10): seven protocol-0 pickles back to back.
 * A small pickle machine for the subset DataCollection writes: marks, lists, dicts, tuples,
 * memo put/get, strings (V raw-unicode-escape, S quoted), ints, floats, None, globals (kept as
 * names, never resolved) and a few protocol-1 shorthands. REDUCE/BUILD/INST/OBJ produce opaque
 * objects, so arbitrary user objects in pickles 4 and 7 are skipped rather than understood.
 * Only pickle 1 (samples), 5 (batch size) and 6 (sum-of-squares flag) are used. */
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PV_MARK, PV_NONE, PV_INT, PV_FLOAT, PV_STR, PV_LIST, PV_DICT, PV_TUPLE, PV_GLOBAL, PV_OBJ };

typedef struct pv {
    int type;
    int64_t i;
    char *s;          /* PV_STR: UTF-8 bytes, NUL-terminated; PV_GLOBAL: "module.name" */
    size_t slen;
    struct pv **items; /* PV_LIST: elements */
    size_t n, cap;
    struct pv *next_alloc;
} pv;

typedef struct {
    const unsigned char *b;
    size_t len, pos;
    const char *name;
    pv *allocs;   /* every object, freed at the end */
    pv **stack;
    size_t sp, scap;
    pv **memo;
    size_t nmemo;
    int truncated; /* the last error was running out of data */
} pk;

#define MAX_STACK 100000
#define MAX_MEMO 100000

static int perr(pk *p, size_t at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int perr(pk *p, size_t at, const char *fmt, ...)
{
    char m[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    return djct_error_set(DJCT_EINVAL, "file '%s': byte %zu: %s", p->name, at, m);
}

static pv *pv_new(pk *p, int type)
{
    pv *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->type = type;
    v->next_alloc = p->allocs;
    p->allocs = v;
    return v;
}

static void pk_free(pk *p)
{
    for (pv *v = p->allocs, *n; v; v = n) {
        n = v->next_alloc;
        free(v->s);
        free(v->items);
        free(v);
    }
    free(p->stack);
    free(p->memo);
    memset(p, 0, sizeof(*p));
}

static int push(pk *p, pv *v)
{
    if (!v)
        return djct_error_oom();
    if (p->sp == p->scap) {
        if (p->scap >= MAX_STACK)
            return perr(p, p->pos, "pickle stack deeper than %d", MAX_STACK);
        size_t nc = p->scap ? p->scap * 2 : 64;
        pv **s = realloc(p->stack, nc * sizeof(pv *));
        if (!s)
            return djct_error_oom();
        p->stack = s;
        p->scap = nc;
    }
    p->stack[p->sp++] = v;
    return 0;
}

static int list_add(pv *l, pv *v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        pv **it = realloc(l->items, nc * sizeof(pv *));
        if (!it)
            return djct_error_oom();
        l->items = it;
        l->cap = nc;
    }
    l->items[l->n++] = v;
    return 0;
}

/* the text up to the next '\n' (exclusive); advances past it */
static int line(pk *p, const char **s, size_t *n, size_t op_at)
{
    const unsigned char *e = memchr(p->b + p->pos, '\n', p->len - p->pos);
    if (!e) {
        p->truncated = 1;
        return perr(p, op_at, "pickle opcode '%c' argument has no end of line (file truncated?)", p->b[op_at]);
    }
    *s = (const char *)p->b + p->pos;
    *n = (size_t)(e - (p->b + p->pos));
    p->pos += *n + 1;
    return 0;
}

static int mark_index(pk *p, size_t at, size_t *mi)
{
    for (size_t i = p->sp; i-- > 0;)
        if (p->stack[i]->type == PV_MARK) {
            *mi = i;
            return 0;
        }
    return perr(p, at, "pickle opcode '%c' without a MARK", p->b[at]);
}

static void put_utf8(char *o, size_t *k, uint32_t c)
{
    if (c < 0x80) {
        o[(*k)++] = (char)c;
    } else if (c < 0x800) {
        o[(*k)++] = (char)(0xC0 | (c >> 6));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (c >> 12));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (c >> 18));
        o[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    }
}

static int hexval(const char *s, size_t n, uint32_t *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        int c = s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    return 0;
}

/* V: raw-unicode-escape: \uXXXX, \UXXXXXXXX, other bytes are Latin-1 code points */
static int str_V(pk *p, pv *v, const char *s, size_t n, size_t at)
{
    if (!(v->s = malloc(n * 4 + 1)))
        return djct_error_oom();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (unsigned char)s[i];
        if (c == '\\' && i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
            size_t h = s[i + 1] == 'u' ? 4 : 8;
            if (i + 2 + h > n || hexval(s + i + 2, h, &c) || c > 0x10FFFF)
                return perr(p, at, "bad \\%c escape in a V string", s[i + 1]);
            i += 1 + h;
        }
        put_utf8(v->s, &k, c);
    }
    v->s[k] = 0;
    v->slen = k;
    return 0;
}

/* S: a Python repr: 'text' or "text" with backslash escapes */
static int str_S(pk *p, pv *v, const char *s, size_t n, size_t at)
{
    if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return perr(p, at, "S string is not quoted");
    s++;
    n -= 2;
    if (!(v->s = malloc(n + 1)))
        return djct_error_oom();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char e = s[++i];
            uint32_t x;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '0': c = 0; break;
            case '\\': case '\'': case '"': c = e; break;
            case 'x':
                if (i + 2 >= n || hexval(s + i + 1, 2, &x))
                    return perr(p, at, "bad \\x escape in an S string");
                c = (char)x;
                i += 2;
                break;
            default: v->s[k++] = '\\'; c = e; break;
            }
        }
        v->s[k++] = c;
    }
    v->s[k] = 0;
    v->slen = k;
    return 0;
}

static int parse_int(pk *p, const char *s, size_t n, int64_t *out, size_t at)
{
    char tmp[32];
    if (n && s[n - 1] == 'L') /* Python 2 longs: L123L */
        n--;
    if (n == 0 || n >= sizeof(tmp))
        return perr(p, at, "integer '%.*s' is not a number", (int)(n < 40 ? n : 40), s);
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *e;
    errno = 0;
    long long v = strtoll(tmp, &e, 10);
    if (*e || errno)
        return perr(p, at, "integer '%s' is not a 64-bit number", tmp);
    *out = v;
    return 0;
}

/* Run one pickle from p->pos to its STOP; *result is the top of the stack. */
static int run_pickle(pk *p, pv **result)
{
    int rc;
    p->sp = 0;
    p->nmemo = 0;
    while (p->pos < p->len) {
        size_t at = p->pos;
        unsigned char op = p->b[p->pos++];
        const char *s;
        size_t n;
        pv *v;
        switch (op) {
        case '(':
            rc = push(p, pv_new(p, PV_MARK));
            break;
        case 'l': case 't': case 'd': {
            size_t mi = 0;
            if ((rc = mark_index(p, at, &mi)))
                return rc;
            if (!(v = pv_new(p, op == 'l' ? PV_LIST : op == 't' ? PV_TUPLE : PV_DICT)))
                return djct_error_oom();
            for (size_t i = mi + 1; i < p->sp; i++)
                if ((rc = list_add(v, p->stack[i])))
                    return rc;
            p->sp = mi;
            rc = push(p, v);
            break;
        }
        case ']': rc = push(p, pv_new(p, PV_LIST)); break;
        case ')': rc = push(p, pv_new(p, PV_TUPLE)); break;
        case '}': rc = push(p, pv_new(p, PV_DICT)); break;
        case 'p': case 'g': {
            int64_t idx;
            if ((rc = line(p, &s, &n, at)) || (rc = parse_int(p, s, n, &idx, at)))
                return rc;
            if (idx < 0 || idx >= MAX_MEMO)
                return perr(p, at, "memo index %" PRId64 " out of range", idx);
            if (op == 'p') {
                if (!p->sp)
                    return perr(p, at, "PUT on an empty stack");
                if ((size_t)idx >= p->nmemo) {
                    pv **m = realloc(p->memo, ((size_t)idx + 1) * sizeof(pv *));
                    if (!m)
                        return djct_error_oom();
                    for (size_t i = p->nmemo; i <= (size_t)idx; i++)
                        m[i] = NULL;
                    p->memo = m;
                    p->nmemo = (size_t)idx + 1;
                }
                p->memo[idx] = p->stack[p->sp - 1];
                rc = 0;
            } else {
                if ((size_t)idx >= p->nmemo || !p->memo[idx])
                    return perr(p, at, "GET of memo %" PRId64 " that was never PUT", idx);
                rc = push(p, p->memo[idx]);
            }
            break;
        }
        case 'a': {
            if (p->sp < 2 || p->stack[p->sp - 2]->type != PV_LIST)
                return perr(p, at, "APPEND without a list below the value");
            rc = list_add(p->stack[p->sp - 2], p->stack[p->sp - 1]);
            p->sp--;
            break;
        }
        case 'e': {
            size_t mi = 0;
            if ((rc = mark_index(p, at, &mi)))
                return rc;
            if (mi == 0 || p->stack[mi - 1]->type != PV_LIST)
                return perr(p, at, "APPENDS without a list below the MARK");
            for (size_t i = mi + 1; i < p->sp; i++)
                if ((rc = list_add(p->stack[mi - 1], p->stack[i])))
                    return rc;
            p->sp = mi;
            rc = 0;
            break;
        }
        case 's': {
            if (p->sp < 3 || p->stack[p->sp - 3]->type != PV_DICT)
                return perr(p, at, "SETITEM without a dict below key and value");
            p->sp -= 2;
            rc = 0;
            break;
        }
        case 'u': {
            size_t mi = 0;
            if ((rc = mark_index(p, at, &mi)))
                return rc;
            if (mi == 0 || p->stack[mi - 1]->type != PV_DICT || (p->sp - mi - 1) % 2)
                return perr(p, at, "SETITEMS without a dict below the MARK or with an odd item count");
            p->sp = mi;
            rc = 0;
            break;
        }
        case 'V': case 'S':
            if ((rc = line(p, &s, &n, at)))
                return rc;
            if (!(v = pv_new(p, PV_STR)))
                return djct_error_oom();
            if ((rc = op == 'V' ? str_V(p, v, s, n, at) : str_S(p, v, s, n, at)))
                return rc;
            rc = push(p, v);
            break;
        case 'I': case 'L':
            if ((rc = line(p, &s, &n, at)))
                return rc;
            if (!(v = pv_new(p, PV_INT)))
                return djct_error_oom();
            if ((rc = parse_int(p, s, n, &v->i, at)))
                return rc;
            rc = push(p, v);
            break;
        case 'F':
            if ((rc = line(p, &s, &n, at)))
                return rc;
            rc = push(p, pv_new(p, PV_FLOAT));
            break;
        case 'K': case 'M': case 'J': { /* protocol-1 binary ints */
            size_t nb = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if (p->len - p->pos < nb) {
                p->truncated = 1;
                return perr(p, at, "truncated binary int");
            }
            uint32_t x = 0;
            for (size_t i = 0; i < nb; i++)
                x |= (uint32_t)p->b[p->pos + i] << (8 * i);
            p->pos += nb;
            if (!(v = pv_new(p, PV_INT)))
                return djct_error_oom();
            v->i = op == 'J' ? (int64_t)(int32_t)x : (int64_t)x;
            rc = push(p, v);
            break;
        }
        case 'N': rc = push(p, pv_new(p, PV_NONE)); break;
        case 0x88: case 0x89: /* protocol-2 True/False */
            if (!(v = pv_new(p, PV_INT)))
                return djct_error_oom();
            v->i = op == 0x88;
            rc = push(p, v);
            break;
        case 'c': {
            const char *m, *nm;
            size_t mn, nn;
            if ((rc = line(p, &m, &mn, at)) || (rc = line(p, &nm, &nn, at)))
                return rc;
            if (!(v = pv_new(p, PV_GLOBAL)) || !(v->s = malloc(mn + nn + 2)))
                return djct_error_oom();
            snprintf(v->s, mn + nn + 2, "%.*s.%.*s", (int)mn, m, (int)nn, nm);
            rc = push(p, v);
            break;
        }
        case 'i': { /* INST module\nname\n: MARK args -> object */
            const char *m, *nm;
            size_t mn, nn, mi = 0;
            if ((rc = line(p, &m, &mn, at)) || (rc = line(p, &nm, &nn, at)) || (rc = mark_index(p, at, &mi)))
                return rc;
            p->sp = mi;
            rc = push(p, pv_new(p, PV_OBJ));
            break;
        }
        case 'o': {
            size_t mi = 0;
            if ((rc = mark_index(p, at, &mi)))
                return rc;
            if (p->sp - mi < 2)
                return perr(p, at, "OBJ without a class");
            p->sp = mi;
            rc = push(p, pv_new(p, PV_OBJ));
            break;
        }
        case 'R': /* callable args -> object */
            if (p->sp < 2)
                return perr(p, at, "REDUCE needs a callable and arguments");
            p->sp -= 2;
            rc = push(p, pv_new(p, PV_OBJ));
            break;
        case 'b': /* obj state -> obj */
            if (p->sp < 2)
                return perr(p, at, "BUILD needs an object and a state");
            p->sp--;
            rc = 0;
            break;
        case '0':
            if (!p->sp)
                return perr(p, at, "POP on an empty stack");
            p->sp--;
            rc = 0;
            break;
        case '1': {
            size_t mi = 0;
            if ((rc = mark_index(p, at, &mi)))
                return rc;
            p->sp = mi;
            break;
        }
        case '2':
            if (!p->sp)
                return perr(p, at, "DUP on an empty stack");
            rc = push(p, p->stack[p->sp - 1]);
            break;
        case '.':
            if (p->sp != 1 || p->stack[0]->type == PV_MARK)
                return perr(p, at, "STOP with %zu items on the stack (want 1)", p->sp);
            *result = p->stack[0];
            return 0;
        default:
            return perr(p, at, "pickle opcode 0x%02x ('%c') is not in the protocol-0 subset djct reads", op,
                        op >= 32 && op < 127 ? op : '?');
        }
        if (rc)
            return rc;
    }
    p->truncated = 1;
    return perr(p, p->len, "pickle ends without STOP (file truncated?)");
}

/* After a pickle that could not be understood (4 or 7): continue after its STOP. Pickle 4 is
 * followed by "I<batch>\n." "I0x\n." - find the first such pair; pickle 7 is the last. */
static int skip_pickle(pk *p, int which)
{
    if (which == 7) {
        p->pos = p->len;
        return 0;
    }
    for (size_t i = p->pos; i + 1 < p->len; i++) {
        if (p->b[i] != '.' || p->b[i + 1] != 'I')
            continue;
        size_t j = i + 2;
        if (j < p->len && p->b[j] == '-')
            j++;
        size_t d0 = j;
        while (j < p->len && p->b[j] >= '0' && p->b[j] <= '9')
            j++;
        if (j == d0 || j + 1 >= p->len || p->b[j] != '\n' || p->b[j + 1] != '.')
            continue;
        j += 2;
        if (p->len - j >= 5 && p->b[j] == 'I' && p->b[j + 1] == '0' && (p->b[j + 2] == '0' || p->b[j + 2] == '1') &&
            p->b[j + 3] == '\n' && p->b[j + 4] == '.') {
            p->pos = i + 1;
            return 0;
        }
    }
    return perr(p, p->pos, "pickle 4 (weighter objects) is not understood and the batch size after it was not found");
}

static char *join_path(const char *dir, const char *s)
{
    if (!dir || !dir[0] || s[0] == '/')
        return strdup(s);
    size_t n = strlen(dir) + strlen(s) + 2;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", s);
    return r;
}

void djct_djcdc_free(char **paths, size_t n)
{
    if (!paths)
        return;
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

int djct_djcdc_read_mem(char ***paths, size_t *n, int64_t *batch_size, int *squared, const void *buf, size_t len,
                        const char *base_dir, const char *name)
{
    DJCT_CHECK_ARG(paths);
    DJCT_CHECK_ARG(n);
    DJCT_CHECK_ARG(buf || !len);
    pk p = {0};
    p.b = buf;
    p.len = len;
    p.name = name ? name : "<memory>";
    char **out = NULL;
    size_t nout = 0;
    int64_t bs = 1;
    int sq = 0, rc = 0;
    pv *r = NULL;
    if (len == 0) {
        rc = perr(&p, 0, "empty file, want a pickled list of sample files");
        goto fail;
    }
    /* 1: samples */
    if ((rc = run_pickle(&p, &r)))
        goto fail;
    if (r->type != PV_LIST) {
        rc = perr(&p, 0, "pickle 1 (samples) is not a list");
        goto fail;
    }
    if (r->n && !(out = calloc(r->n, sizeof(char *)))) {
        rc = djct_error_oom();
        goto fail;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->items[i]->type != PV_STR || r->items[i]->slen == 0 || strlen(r->items[i]->s) != r->items[i]->slen) {
            rc = perr(&p, 0, "pickle 1 (samples): item %zu is not a non-empty file name", i);
            goto fail;
        }
        if (!(out[nout] = join_path(base_dir, r->items[i]->s))) {
            rc = djct_error_oom();
            goto fail;
        }
        nout++;
    }
    /* 2: sources (bookkeeping only; older files may end here) */
    if (p.pos < p.len) {
        size_t at = p.pos;
        if ((rc = run_pickle(&p, &r)))
            goto fail;
        if (r->type != PV_LIST) {
            rc = perr(&p, at, "pickle 2 (source list) is not a list");
            goto fail;
        }
    }
    /* 3: the data class (a GLOBAL, not resolved), 4: weighter objects (skippable) */
    if (p.pos < p.len) {
        size_t at = p.pos;
        if ((rc = run_pickle(&p, &r)))
            goto fail;
        if (r->type != PV_GLOBAL) {
            rc = perr(&p, at, "pickle 3 (data class) is not a class reference");
            goto fail;
        }
        if (p.pos >= p.len) {
            rc = perr(&p, p.pos, "pickle 4 (weighter objects) missing after the data class (file truncated?)");
            goto fail;
        }
        if ((rc = run_pickle(&p, &r)) && (p.truncated || (rc = skip_pickle(&p, 4))))
            goto fail;
        for (int k = 5; k <= 6; k++) {
            size_t at5 = p.pos;
            if (p.pos >= p.len) {
                rc = perr(&p, at5, "pickle %d (%s) missing (file truncated?)", k, k == 5 ? "batch size" : "squared flag");
                goto fail;
            }
            if ((rc = run_pickle(&p, &r)))
                goto fail;
            if (r->type != PV_INT || (k == 5 && r->i < 0) || (k == 6 && r->i != 0 && r->i != 1)) {
                rc = perr(&p, at5, "pickle %d (%s) is not %s", k, k == 5 ? "batch size" : "squared flag",
                          k == 5 ? "a non-negative integer" : "a bool");
                goto fail;
            }
            if (k == 5)
                bs = r->i;
            else
                sq = (int)r->i;
        }
        /* 7: options dict (skippable, but present) */
        if (p.pos >= p.len) {
            rc = perr(&p, p.pos, "pickle 7 (options) missing (file truncated?)");
            goto fail;
        }
        if ((rc = run_pickle(&p, &r))) {
            if (p.truncated)
                goto fail;
            skip_pickle(&p, 7);
        }
        while (p.pos < p.len && (p.b[p.pos] == '\n' || p.b[p.pos] == ' '))
            p.pos++;
        if (p.pos < p.len) {
            rc = perr(&p, p.pos, "%zu unexpected bytes after the seventh pickle", p.len - p.pos);
            goto fail;
        }
    }
    pk_free(&p);
    *paths = out;
    *n = nout;
    if (batch_size)
        *batch_size = bs;
    if (squared)
        *squared = sq;
    return 0;
fail:
    pk_free(&p);
    djct_djcdc_free(out, nout);
    return rc;
}

int djct_djcdc_read(char ***paths, size_t *n, int64_t *batch_size, int *squared, const char *path)
{
    DJCT_CHECK_ARG(paths);
    DJCT_CHECK_ARG(n);
    DJCT_CHECK_ARG(path);
    void *data = NULL;
    size_t len = 0;
    if (djct_read_whole(&data, &len, path, (size_t)1 << 30, 0) < 0)
        return djct_error_prefix("DataCollection");
    unsigned char *buf = data;
    /* dataDir = dirname(abspath(djcdc)) */
    char *dir = NULL;
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 0;
    if (path[0] == '/') {
        dir = strndup(path, dl ? dl : 1);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) {
            free(buf);
            return djct_error_set(DJCT_EIO, "file '%s': cannot get the working directory: %s", path, strerror(errno));
        }
        size_t n2 = strlen(cwd) + dl + 2;
        if ((dir = malloc(n2)))
            snprintf(dir, n2, "%s%s%.*s", cwd, dl ? "/" : "", (int)dl, path);
    }
    if (!dir) {
        free(buf);
        return djct_error_oom();
    }
    int rc = djct_djcdc_read_mem(paths, n, batch_size, squared, buf, len, dir, path);
    free(dir);
    free(buf);
    return rc;
}
