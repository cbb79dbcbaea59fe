/* The wandb client's transport: one POST through libcurl (Basic auth with the key, TLS settings,
 * Retry-After read from the reply) and the retry policy of ../shared/formats/wandb.md §4 around it
 * (which failures are final, exponential backoff with jitter, the deadline, the uploader's abort
 * and the caller's cancel flag). The key is only handed to libcurl and never formatted into a
 * message. */
#include "wandb_int.h"
#include "djct/error.h"
#include "djct_int.h"
#include "util_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- one POST -------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    wb_buf *b = ud;
    size_t n = sz * nm;
    if (b->len + n + 1 > (1u << 20))
        return n; /* replies we care about are tiny: keep the first MiB */
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    double *retry_after = ud;
    size_t n = sz * nm;
    if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        char v[128];
        size_t k = n - 12 < sizeof(v) - 1 ? n - 12 : sizeof(v) - 1;
        memcpy(v, p + 12, k);
        v[k] = '\0';
        char *end;
        double s = strtod(v, &end);
        if (end != v && s >= 0)
            *retry_after = s;
        else {
            time_t t = curl_getdate(v, NULL);
            if (t > 0)
                *retry_after = difftime(t, time(NULL)) > 0 ? difftime(t, time(NULL)) : 0;
        }
    }
    return n;
}

int wb_cancelled(const wb_uploader *u) { return u->cfg.cancel && *u->cfg.cancel; }

struct timespec wb_time_after(double s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + s;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    return ts;
}

/* Sleep up to `s` seconds; returns 1 when aborted or cancelled. */
static int nap(wb_uploader *u, double s)
{
    double until = djct_now_s() + s;
    pthread_mutex_lock(&u->mu);
    while (!u->abort_now && !wb_cancelled(u)) {
        double left = until - djct_now_s();
        if (left <= 0)
            break;
        if (u->cfg.cancel && left > 0.1) /* a signal handler cannot signal the condition: poll */
            left = 0.1;
        struct timespec ts = wb_time_after(left);
        pthread_cond_timedwait(&u->cv, &u->mu, &ts);
    }
    int a = u->abort_now || wb_cancelled(u);
    pthread_mutex_unlock(&u->mu);
    return a;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    wb_uploader *u = ud;
    return __atomic_load_n(&u->abort_now, __ATOMIC_RELAXED) || wb_cancelled(u) ? 1 : 0;
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* One POST. Returns the HTTP status (0 for a transport failure, with curl's code in *cerr). */
static long http_post(wb_uploader *u, const char *url, const char *body, wb_buf *reply, double *retry_after,
                      CURLcode *cerr, char *errbuf)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_init_once);
    if (!u->curl && !(u->curl = curl_easy_init())) {
        *cerr = CURLE_FAILED_INIT;
        return 0;
    }
    CURL *c = u->curl;
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: djct/" DJCT_VERSION_STRING);
    reply->len = 0;
    if (reply->data)
        reply->data[0] = '\0';
    *retry_after = -1;
    errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERNAME, "api");
    curl_easy_setopt(c, CURLOPT_PASSWORD, u->api_key ? u->api_key : "");
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* never carry the key to another host */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(u->cfg.http_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(u->cfg.http_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, u->cfg.insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, u->cfg.insecure ? 0L : 2L);
    if (u->ca_bundle) { /* exactly these CAs: not also the compiled-in CA directory */
        curl_easy_setopt(c, CURLOPT_CAINFO, u->ca_bundle);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, retry_after);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, u);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    *cerr = curl_easy_perform(c);
    long status = 0;
    if (*cerr == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    return status;
}

#define TLS_HINT                                                                                   \
    "; the server's TLS certificate is not trusted: set ca_bundle (or REQUESTS_CA_BUNDLE, "        \
    "djct_sync --ca-bundle) to its CA's PEM file, or, for a server you trust, turn verification " \
    "off explicitly (insecure, djct_sync --insecure)"

/* §4 RetryMostFailures; UpsertBucket also retries 409 */
static int retryable(int kind, long status, CURLcode cerr)
{
    if (status == 0) {
        switch (cerr) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_TOO_MANY_REDIRECTS:
        case CURLE_LOGIN_DENIED:
            return 0;
        default:
            return 1;
        }
    }
    if (status >= 500)
        return status != 501;
    if (status >= 400) {
        switch (status) {
        case 409:
            return kind == WB_KIND_UPSERT;
        case 400: case 401: case 403: case 404: case 410: case 413: case 422:
            return 0;
        default:
            return 1;
        }
    }
    return 1; /* 1xx/3xx: odd, try again */
}

static unsigned jitter_seed(void) { return (unsigned)(djct_now_s() * 1e6) ^ (unsigned)getpid(); }

static void set_last_fail(wb_uploader *u, const char *text)
{
    pthread_mutex_lock(&u->mu);
    snprintf(u->last_fail, sizeof(u->last_fail), "%.1000s", text);
    pthread_mutex_unlock(&u->mu);
}

void wb_notef(void (*note)(void *user, const char *line), void *user, const char *fmt, ...)
{
    if (!note)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    note(user, line);
}

int wb_post_retry(wb_uploader *u, int kind, const char *what, const char *url, const char *body,
                  double deadline, wb_buf *reply)
{
    static _Thread_local unsigned seed;
    if (!seed)
        seed = jitter_seed();
    char errbuf[CURL_ERROR_SIZE];
    for (int attempt = 0;; attempt++) {
        double ra;
        CURLcode cerr;
        long st = http_post(u, url, body, reply, &ra, &cerr, errbuf);
        if (st >= 200 && st < 300) {
            set_last_fail(u, "");
            return 0;
        }
        char why[CURL_ERROR_SIZE + 64], fail[CURL_ERROR_SIZE + 4200];
        if (st)
            snprintf(why, sizeof(why), "HTTP %ld", st);
        else
            snprintf(why, sizeof(why), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cerr));
        snprintf(fail, sizeof(fail), "%s to %s: %s", what, u->base_url, why);
        set_last_fail(u, fail);
        if (wb_cancelled(u))
            return djct_error_set(DJCT_ETIMEOUT, "%s, interrupted", fail);
        if (__atomic_load_n(&u->abort_now, __ATOMIC_RELAXED))
            return djct_error_set(DJCT_ETIMEOUT, "%s, aborted at the finish time limit", fail);
        if (!retryable(kind, st, cerr))
            return djct_error_set(DJCT_EIO, "%s, a final answer (not retried)%s", fail,
                                  st == 401 || st == 403                   ? "; check the API key"
                                  : cerr == CURLE_PEER_FAILED_VERIFICATION ? TLS_HINT
                                                                           : "");
        double wait;
        if (ra >= 0) {
            wait = ra < u->cfg.retry_max_s ? ra : u->cfg.retry_max_s;
        } else {
            double j = (double)rand_r(&seed) / ((double)RAND_MAX + 1.0);
            wait = u->cfg.retry_min_s * pow(2.0, attempt < 32 ? attempt : 32) * (1.0 + 0.25 * j);
            if (wait > u->cfg.retry_max_s)
                wait = u->cfg.retry_max_s;
        }
        double now = djct_now_s();
        if (deadline > 0 && now + wait > deadline)
            return djct_error_set(DJCT_ETIMEOUT, "%s, still failing after %d attempt%s", fail, attempt + 1,
                                  attempt ? "s" : "");
        if (deadline > 0)
            wb_notef(u->cfg.note, u->cfg.note_user, "%s; retry %d in %.1f s (giving up in %.0f s)", fail,
                     attempt + 1, wait, deadline - now);
        else
            wb_notef(u->cfg.note, u->cfg.note_user, "%s; retry %d in %.1f s", fail, attempt + 1, wait);
        if (nap(u, wait))
            return djct_error_set(DJCT_ETIMEOUT, "%s, %s", fail,
                                  wb_cancelled(u) ? "interrupted" : "aborted at the finish time limit");
    }
}
