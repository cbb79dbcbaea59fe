/* Progress printer: formats a bar or plain lines from the trainer's step reports; the caller
 * prints. Takes the caller's clock, so what it shows is a pure function of the reports and the
 * times given (tests/test_progress.c checks the text for set times). */
#include "djct/progress.h"
#include "djct/error.h"
#include "djct_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct djct_progress {
    int     mode; /* BAR, LINES or NONE */
    double  every_s;
    int     bar_width;
    double  t_start, t_last_print;
    int64_t done_steps, total_steps;
    int     bar_open; /* a bar line was drawn without its closing newline */
    int     prediction;
};

#define BAR_MAX 200

int djct_progress_create(djct_progress **out, const djct_progress_options *opts)
{
    djct_progress_options d = DJCT_PROGRESS_OPTIONS_INIT;
    DJCT_CHECK_ARG(out);
    *out = NULL;
    DJCT_CHECK_VERSION(opts, DJCT_PROGRESS_OPTIONS_VERSION, "djct_progress_options");
    if (!opts)
        opts = &d;
    if (opts->mode < DJCT_PROGRESS_NONE || opts->mode > DJCT_PROGRESS_AUTO)
        return djct_error_set(DJCT_EINVAL, "progress: mode %d is not a djct_progress_mode", opts->mode);
    if (!(opts->every_s >= 0) || !isfinite(opts->every_s))
        return djct_error_set(DJCT_EINVAL, "progress: every_s %g must be a finite number >= 0", opts->every_s);
    if (opts->bar_width < 0 || opts->bar_width > BAR_MAX)
        return djct_error_set(DJCT_EINVAL, "progress: bar_width %d is not in 0..%d", opts->bar_width, BAR_MAX);
    djct_progress *p = calloc(1, sizeof(*p));
    if (!p)
        return djct_error_oom();
    p->mode = opts->mode == DJCT_PROGRESS_AUTO ? (isatty(STDERR_FILENO) ? DJCT_PROGRESS_BAR : DJCT_PROGRESS_LINES)
                                               : opts->mode;
    p->every_s = opts->every_s;
    p->bar_width = opts->bar_width ? opts->bar_width : 24;
    p->prediction = opts->prediction != 0;
    *out = p;
    return 0;
}

int djct_progress_mode_of(const djct_progress *p) { return p ? p->mode : DJCT_PROGRESS_NONE; }

void djct_progress_start(djct_progress *p, double now, int64_t total_steps)
{
    if (!p)
        return;
    p->t_start = p->t_last_print = now;
    p->done_steps = 0;
    p->total_steps = total_steps;
}

void djct_format_eta(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else if (s < 1e9)
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
    else
        snprintf(buf, n, "?"); /* beyond int seconds: as good as unknown */
}

void djct_format_si(char *buf, size_t n, double x)
{
    if (!isfinite(x) || x < 0)
        snprintf(buf, n, "?");
    else if (x >= 1e6)
        snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, n, "%.1fk", x / 1e3);
    else
        snprintf(buf, n, "%.0f", x);
}

/* snprintf's return clipped to what was written */
static size_t written(int k, size_t n)
{
    if (k < 0 || n == 0)
        return 0;
    return (size_t)k < n ? (size_t)k : n - 1;
}

size_t djct_progress_step(djct_progress *p, const djct_step_report *r, double now, char *buf, size_t n)
{
    if (!p || !r || !buf || n == 0)
        return 0;
    buf[0] = '\0';
    p->done_steps++;
    if (p->mode == DJCT_PROGRESS_NONE)
        return 0;
    int last = r->step + 1 == r->steps;
    if (p->mode == DJCT_PROGRESS_LINES && now - p->t_last_print < p->every_s && !last)
        return 0;
    p->t_last_print = now;
    char eta[32], ev[32], el[32];
    /* the step count is an estimate when batches are ragged (an epoch can take a step more) */
    double rate = (double)p->done_steps / (now - p->t_start);
    int64_t left = p->total_steps > p->done_steps ? p->total_steps - p->done_steps : 0;
    djct_format_eta(eta, sizeof(eta), p->total_steps > 0 ? (double)left / rate : NAN);
    djct_format_si(ev, sizeof(ev), r->events_per_s);
    djct_format_si(el, sizeof(el), r->elements_per_s);
    if (p->mode == DJCT_PROGRESS_BAR) {
        char bar[BAR_MAX + 1];
        int fill = (int)((double)p->bar_width * (double)(r->step + 1) / (double)(r->steps ? r->steps : 1));
        for (int i = 0; i < p->bar_width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[p->bar_width] = '\0';
        if (p->prediction) {
            char loss[48] = "";
            if (isfinite(r->loss))
                snprintf(loss, sizeof(loss), " loss %.4f", r->loss);
            int k = snprintf(buf, n, "\r\033[Kpredict [%s] %" PRId64 "/%" PRId64 "%s %s ev/s %s el/s ETA %s%s", bar,
                             r->step + 1, r->steps, loss, ev, el, eta, last ? "\n" : "");
            p->bar_open = !last;
            return written(k, n);
        }
        int k = snprintf(buf, n, "\r\033[Kepoch %" PRId64 " [%s] %" PRId64 "/%" PRId64 " loss %.4f %s ev/s %s el/s ETA %s%s",
                         r->epoch + 1, bar, r->step + 1, r->steps, r->loss, ev, el, eta, last ? "\n" : "");
        p->bar_open = !last;
        return written(k, n);
    }
    double ts = r->t_step > 0 ? r->t_step : 1;
    if (p->prediction) {
        char loss[48] = "";
        if (isfinite(r->loss))
            snprintf(loss, sizeof(loss), " loss %.4f", r->loss);
        return written(snprintf(buf, n, "predict step %" PRId64 "/%" PRId64 "%s %s ev/s %s el/s data %.1f%% ETA %s\n",
                                r->step + 1, r->steps, loss, ev, el, 100.0 * r->t_data / ts, eta),
                       n);
    }
    int k = snprintf(buf, n,
                     "epoch %" PRId64 " step %" PRId64 "/%" PRId64 " global %" PRId64 " loss %.4f lr %.3g %s ev/s %s el/s "
                     "data %.1f%% comm %.1f%% ETA %s\n",
                     r->epoch + 1, r->step + 1, r->steps, r->global_step, r->loss, r->lr, ev, el, 100.0 * r->t_data / ts,
                     100.0 * r->t_comm / ts, eta);
    return written(k, n);
}

size_t djct_progress_end(djct_progress *p, char *buf, size_t n)
{
    if (!buf || n == 0)
        return 0;
    buf[0] = '\0';
    if (!p || !p->bar_open)
        return 0;
    p->bar_open = 0;
    return written(snprintf(buf, n, "\n"), n);
}

void djct_progress_free(djct_progress *p) { free(p); }
