/* progress: the bar and the plain lines for given step reports and times (the caller's clock, so
 * the text is exact): ETA, SI units, '?' when unknown, when lines are due, closing an open bar. */
#include "harness.h"

#include <math.h>
#include <unistd.h>

static djct_step_report rep(int64_t epoch, int64_t step, int64_t steps, double loss, double ev_s, double el_s)
{
    djct_step_report r;
    memset(&r, 0, sizeof(r));
    r.epoch = epoch;
    r.step = step;
    r.steps = steps;
    r.global_step = epoch * steps + step + 1;
    r.loss = loss;
    r.lr = 0.001;
    r.events_per_s = ev_s;
    r.elements_per_s = el_s;
    r.t_step = 0.010;
    r.t_data = 0.001;
    r.t_comm = 0.0025;
    return r;
}

static int eta_is(double s, const char *want)
{
    char b[32];
    djct_format_eta(b, sizeof(b), s);
    if (strcmp(b, want))
        fprintf(stderr, "  eta(%g) = '%s', want '%s'\n", s, b, want);
    return !strcmp(b, want);
}

static int si_is(double x, const char *want)
{
    char b[32];
    djct_format_si(b, sizeof(b), x);
    if (strcmp(b, want))
        fprintf(stderr, "  si(%g) = '%s', want '%s'\n", x, b, want);
    return !strcmp(b, want);
}

static int text_is(const char *got, const char *want)
{
    if (strcmp(got, want))
        fprintf(stderr, "  got  '%s'\n  want '%s'\n", got, want);
    return !strcmp(got, want);
}

int main(void)
{
    CHECK(eta_is(0, "0s") && eta_is(42.4, "42s") && eta_is(59.4, "59s") && eta_is(60, "1m00s") &&
          eta_is(187, "3m07s") && eta_is(3599, "59m59s") && eta_is(3600, "1h00m") && eta_is(7500, "2h05m"));
    CHECK(eta_is(NAN, "?") && eta_is(INFINITY, "?") && eta_is(-1, "?"));
    CHECK(si_is(0, "0") && si_is(999, "999") && si_is(1000, "1.0k") && si_is(12345, "12.3k") &&
          si_is(999999, "1000.0k") && si_is(1e6, "1.00M") && si_is(3.456e9, "3456.00M"));
    CHECK(si_is(NAN, "?") && si_is(-5, "?") && si_is(INFINITY, "?"));

    /* a bar: redrawn on every step, closed with a newline at the epoch's last step */
    djct_progress *p = NULL;
    djct_progress_options o = DJCT_PROGRESS_OPTIONS_INIT;
    o.mode = DJCT_PROGRESS_BAR;
    o.bar_width = 8;
    CHECK_OK(djct_progress_create(&p, &o));
    CHECK(djct_progress_mode_of(p) == DJCT_PROGRESS_BAR);
    char b[512];
    djct_progress_start(p, 100.0, 8); /* 8 steps to go */
    djct_step_report r = rep(0, 0, 4, 1.5, 1234, 2.5e6);
    size_t n = djct_progress_step(p, &r, 101.0, b, sizeof(b)); /* 1 step/s: 7 left */
    CHECK(n == strlen(b) && text_is(b, "\r\033[Kepoch 1 [##......] 1/4 loss 1.5000 1.2k ev/s 2.50M el/s ETA 7s"));
    r = rep(0, 3, 4, 0.25, 10, 999);
    djct_progress_step(p, &r, 102.0, b, sizeof(b));
    djct_progress_step(p, &r, 103.0, b, sizeof(b));
    djct_progress_step(p, &r, 104.0, b, sizeof(b)); /* 4 done in 4 s: 4 left */
    CHECK(text_is(b, "\r\033[Kepoch 1 [########] 4/4 loss 0.2500 10 ev/s 999 el/s ETA 4s\n"));
    CHECK(djct_progress_end(p, b, sizeof(b)) == 0); /* the epoch's last step closed it */
    r = rep(1, 0, 4, 0.2, 10, 10);
    djct_progress_step(p, &r, 105.0, b, sizeof(b));
    CHECK(djct_progress_end(p, b, sizeof(b)) == 1 && !strcmp(b, "\n") && djct_progress_end(p, b, sizeof(b)) == 0);
    /* an unknown total: the ETA is '?' */
    djct_progress_start(p, 0.0, 0);
    djct_progress_step(p, &r, 1.0, b, sizeof(b));
    CHECK(strstr(b, " ETA ?") != NULL);
    /* a short buffer is cut, never overrun */
    char small[16];
    n = djct_progress_step(p, &r, 2.0, small, sizeof(small));
    CHECK(n == 15 && strlen(small) == 15);
    djct_progress_free(p);

    /* lines: at most one per every_s seconds, always at an epoch's last step */
    o.mode = DJCT_PROGRESS_LINES;
    o.every_s = 10;
    CHECK_OK(djct_progress_create(&p, &o));
    djct_progress_start(p, 0.0, 100);
    r = rep(0, 0, 50, 2.0, 3.2e4, 7.5e5);
    int shown = 0, at[4] = {0};
    for (int s = 0; s < 50; s++) { /* one step a second, the epoch's last at t = 50 */
        r.step = s;
        r.global_step = s + 1;
        if (djct_progress_step(p, &r, 1.0 + s, b, sizeof(b)) && shown < 4)
            at[shown++] = s + 1;
    }
    CHECK(shown == 4 && at[0] == 10 && at[1] == 20 && at[2] == 30 && at[3] == 40);
    CHECK(text_is(b, "epoch 1 step 50/50 global 50 loss 2.0000 lr 0.001 32.0k ev/s 750.0k el/s data 10.0% comm 25.0% "
                     "ETA 50s\n"));
    CHECK(djct_progress_end(p, b, sizeof(b)) == 0); /* lines leave nothing open */
    djct_progress_free(p);

    /* prediction batches: no epoch, global step, lr or comm; the loss only when there is one */
    o.mode = DJCT_PROGRESS_LINES;
    o.every_s = 0;
    o.prediction = 1;
    CHECK_OK(djct_progress_create(&p, &o));
    djct_progress_start(p, 0.0, 10);
    r = rep(0, 1, 10, NAN, 500, 2e4);
    djct_progress_step(p, &r, 1.0, b, sizeof(b));
    CHECK(text_is(b, "predict step 2/10 500 ev/s 20.0k el/s data 10.0% ETA 9s\n"));
    r.loss = 0.75;
    djct_progress_step(p, &r, 2.0, b, sizeof(b));
    CHECK(text_is(b, "predict step 2/10 loss 0.7500 500 ev/s 20.0k el/s data 10.0% ETA 8s\n"));
    djct_progress_free(p);
    o.mode = DJCT_PROGRESS_BAR;
    CHECK_OK(djct_progress_create(&p, &o));
    djct_progress_start(p, 0.0, 4);
    r = rep(0, 3, 4, NAN, 5, 6);
    djct_progress_step(p, &r, 1.0, b, sizeof(b));
    CHECK(text_is(b, "\r\033[Kpredict [########] 4/4 5 ev/s 6 el/s ETA 3s\n"));
    djct_progress_free(p);
    o.prediction = 0;

    /* none: nothing; bad options are refused by name */
    o.mode = DJCT_PROGRESS_NONE;
    CHECK_OK(djct_progress_create(&p, &o));
    CHECK(djct_progress_step(p, &r, 1.0, b, sizeof(b)) == 0 && b[0] == '\0');
    djct_progress_free(p);
    o.mode = 7;
    CHECK_ERR(djct_progress_create(&p, &o), DJCT_EINVAL, "mode 7");
    o.mode = DJCT_PROGRESS_LINES;
    o.every_s = NAN;
    CHECK_ERR(djct_progress_create(&p, &o), DJCT_EINVAL, "every_s");
    o.every_s = 1;
    o.bar_width = 500;
    CHECK_ERR(djct_progress_create(&p, &o), DJCT_EINVAL, "bar_width 500");
    o.bar_width = 0;
    o.version = 99;
    CHECK_ERR(djct_progress_create(&p, &o), DJCT_EINVAL, "djct_progress_options version 99");
    /* auto: a bar only on a terminal (the suite's stderr is a log file) */
    djct_progress_options a = DJCT_PROGRESS_OPTIONS_INIT;
    CHECK_OK(djct_progress_create(&p, &a));
    CHECK(djct_progress_mode_of(p) == (isatty(2) ? DJCT_PROGRESS_BAR : DJCT_PROGRESS_LINES));
    djct_progress_free(p);
    return harness_report();
}
