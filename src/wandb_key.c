/* The wandb client's credentials: the API key (explicit, WANDB_API_KEY, ~/private/wandb_api.sh,
 * ~/.netrc for the base URL's host (as curl; then host:port, as `wandb login` writes it), with a warning when a key file is readable by others), the
 * CA bundle to trust, and whether a base URL would carry the key unencrypted over a network. The
 * key is only ever returned to the caller, never formatted into a message. */
#include "wandb_int.h"
#include "journal_int.h"
#include "djct/error.h"
#include "djct_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void add_warning(char *warn, size_t size, const char *fmt, ...)
{
    if (!warn || size == 0)
        return;
    size_t used = strlen(warn);
    if (used + 2 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(warn + used, size - used - 1, fmt, ap);
    va_end(ap);
    used = strlen(warn);
    warn[used] = '\n';
    warn[used + 1] = '\0';
}

static void check_perms(const char *path, const char *shown, char *warn, size_t size)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        add_warning(warn, size, "key file %s is readable by group or others (mode %04o); run: chmod 600 %s",
                    shown, (unsigned)(st.st_mode & 0777), shown);
}

/* the value of a WANDB_API_KEY=... line, quotes and `export ` removed */
static char *key_from_sh(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[1024], *key = NULL;
    while (!key && fgets(line, sizeof(line), f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "export ", 7) == 0)
            for (p += 7; *p == ' '; p++)
                ;
        if (strncmp(p, "WANDB_API_KEY=", 14) != 0)
            continue;
        p += 14;
        size_t n = strcspn(p, "\r\n");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == ';'))
            n--;
        if (n >= 2 && (p[0] == '"' || p[0] == '\'') && p[n - 1] == p[0]) {
            p++;
            n -= 2;
        }
        if (n > 0 && (key = malloc(n + 1)) != NULL) {
            memcpy(key, p, n);
            key[n] = '\0';
        }
    }
    memset(line, 0, sizeof(line));
    fclose(f);
    return key;
}

/* netloc of a URL: host[:port] */
static void url_netloc(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static char *key_from_netrc(const char *path, const char *machine, char *warn, size_t size)
{
    char *text = NULL;
    if (jr_read_file(path, &text, NULL) != 0)
        return NULL;
    char *key = NULL, *save = NULL;
    int in_machine = 0, expect = 0; /* 1 machine name, 2 password, 3 skip one token */
    for (char *t = strtok_r(text, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (expect == 1) {
            in_machine = strcmp(t, machine) == 0;
            expect = 0;
        } else if (expect == 2) {
            if (in_machine && !key)
                key = strdup(t);
            expect = 0;
        } else if (expect == 3) {
            expect = 0;
        } else if (strcmp(t, "machine") == 0) {
            expect = 1;
        } else if (strcmp(t, "default") == 0) {
            in_machine = 0;
        } else if (strcmp(t, "password") == 0) {
            expect = 2;
        } else if (strcmp(t, "login") == 0 || strcmp(t, "account") == 0) {
            expect = 3;
        } else if (strcmp(t, "macdef") == 0) {
            break; /* macros run to the end of the paragraph; we need nothing after them */
        }
    }
    if (expect == 2 && in_machine)
        add_warning(warn, size, "netrc %s: entry for %s has no password value; ignored", path, machine);
    memset(text, 0, strlen(text));
    free(text);
    return key;
}

int wb_resolve_ca(const char *explicit_path, const char **path, const char **source)
{
    static const char *const vars[] = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"};
    *path = NULL;
    *source = "system";
    if (explicit_path && *explicit_path) {
        *path = explicit_path;
        *source = "the ca_bundle option";
    }
    for (size_t i = 0; !*path && i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            *path = v;
            *source = vars[i];
        }
    }
    struct stat st;
    if (*path && (stat(*path, &st) != 0 || !S_ISREG(st.st_mode) || access(*path, R_OK) != 0))
        return djct_error_set(DJCT_EINVAL, "CA bundle '%s' (from %s) is not a readable file; point it at the PEM "
                              "file of the CA that signed the server's certificate, or unset it", *path, *source);
    return 0;
}

int wb_resolve_key(const char *base_url, const char *explicit_key, char **key, const char **source,
                   char *warn, size_t warn_size)
{
    *key = NULL;
    *source = "none";
    const char *env = getenv("WANDB_API_KEY");
    const char *home = getenv("HOME");
    char path[4096];
    if (explicit_key && *explicit_key) {
        *source = "option";
        return (*key = strdup(explicit_key)) ? 0 : djct_error_oom();
    }
    if (env && *env) {
        *source = "WANDB_API_KEY";
        return (*key = strdup(env)) ? 0 : djct_error_oom();
    }
    if (home && *home) {
        snprintf(path, sizeof(path), "%s/private/wandb_api.sh", home);
        if ((*key = key_from_sh(path)) != NULL) {
            *source = "~/private/wandb_api.sh";
            check_perms(path, "~/private/wandb_api.sh", warn, warn_size);
            return 0;
        }
    }
    const char *netrc = getenv("NETRC");
    path[0] = '\0';
    if (netrc && *netrc) {
        if (netrc[0] == '~' && home)
            snprintf(path, sizeof(path), "%s%s", home, netrc + 1);
        else
            snprintf(path, sizeof(path), "%s", netrc);
    } else if (home && *home) {
        snprintf(path, sizeof(path), "%s/.netrc", home);
        if (access(path, F_OK) != 0) {
            snprintf(path, sizeof(path), "%s/_netrc", home);
            if (access(path, F_OK) != 0)
                snprintf(path, sizeof(path), "%s/.netrc", home);
        }
    }
    if (path[0]) {
        /* curl matches `machine` against the host alone; `wandb login` writes host:port for a URL
         * with a port: the host first, then host:port */
        char netloc[512], machine[512];
        url_netloc(base_url ? base_url : WB_DEFAULT_BASE_URL, netloc, sizeof(netloc));
        snprintf(machine, sizeof(machine), "%s", netloc);
        char *colon = machine[0] == '[' ? strstr(machine, "]:") : strrchr(machine, ':');
        if (colon)
            colon[machine[0] == '[' ? 1 : 0] = '\0';
        *key = key_from_netrc(path, machine, warn, warn_size);
        if (!*key && strcmp(machine, netloc) != 0)
            *key = key_from_netrc(path, netloc, warn, warn_size);
        if (*key) {
            *source = "netrc";
            check_perms(path, path, warn, warn_size);
        }
    }
    return 0;
}

int wb_plain_http_remote(const char *url, char *host, size_t host_size)
{
    char h[256];
    if (strncasecmp(url, "http://", 7) != 0) {
        if (host && host_size)
            host[0] = '\0';
        return 0;
    }
    const char *p = url + 7;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (*p == '[') { /* [v6]:port */
        const char *e = memchr(p, ']', n);
        n = e ? (size_t)(e - p - 1) : n - 1;
        p++;
    } else {
        const char *c = memchr(p, ':', n);
        if (c)
            n = (size_t)(c - p);
    }
    snprintf(h, sizeof(h), "%.*s", (int)(n < sizeof(h) ? n : sizeof(h) - 1), p);
    if (host)
        snprintf(host, host_size, "%s", h);
    int loopback = !strcasecmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1");
    return !loopback;
}
