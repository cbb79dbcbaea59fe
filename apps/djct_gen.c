/* djct_gen: a deterministic synthetic irregular dataset of toy particle showers.
 * Event g draws everything from its own stream seeded by (seed, g), so the data do not depend on
 * how events are split into files, and the same options give identical bytes. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "djct/djct.h"

typedef struct {
    const char *name, *arg, *help;
    char       *val;
} opt;

static opt OPTS[] = {
    {"--events", "N", "events in total (default 20000)", "20000"},
    {"--files", "N", "files to split them into, equal shares (default 4)", "4"},
    {"--seed", "N", "seed; the same seed gives identical files (default 1)", "1"},
    {"--format", "F", "djctd or h5 (default djctd)", "djctd"},
    {"--out", "DIR", "output directory, created if missing (default djct_gen_data)", "djct_gen_data"},
    {"--mean-points", "X", "mean points per event (lognormal; default 200)", "200"},
    {"--sigma", "X", "lognormal sigma of the points per event (default 1.0, heavy tail)", "1.0"},
    {"--gzip", "N", "h5 only: gzip level 0..9 (default 0)", "0"},
    {"--max-points", "N", "cap on points per event (default 100000)", "100000"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: djct_gen [options]\n"
               "Write a synthetic point-cloud dataset: per event a lognormal number of points with 4 float\n"
               "features (x, y, z, energy), an int32 class label (0..2: narrow, medium, wide showers) and a\n"
               "float32 regression target log(1 + total energy) that a model can learn from the points.\n"
               "Files: OUT/part-NNN.djctd or .h5 with features [points (ragged)], truths [label, energy].\n\n");
    for (size_t i = 0; i < sizeof(OPTS) / sizeof(OPTS[0]); i++)
        fprintf(f, "  %-14s %-4s %s\n", OPTS[i].name, OPTS[i].arg, OPTS[i].help);
    fprintf(f, "  %-14s %-4s %s\n", "--help", "", "this text");
}

static const char *get(const char *name)
{
    for (size_t i = 0; i < sizeof(OPTS) / sizeof(OPTS[0]); i++)
        if (!strcmp(OPTS[i].name, name))
            return OPTS[i].val;
    return NULL;
}

static int parse_i64(const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const char *s = get(name);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "djct_gen: %s '%s' is not an integer in %" PRId64 "..%" PRId64 "\n", name, s, lo, hi);
        exit(2);
    }
    *out = v;
    return 0;
}

static double parse_f(const char *name, double lo, double hi)
{
    const char *s = get(name);
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !(v >= lo && v <= hi)) {
        fprintf(stderr, "djct_gen: %s '%s' is not a number in %g..%g\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0; }
static double gauss(uint64_t *s) { return sqrt(-2 * log(unif(s))) * cos(6.283185307179586 * unif(s)); }

static uint64_t event_seed(uint64_t seed, int64_t g)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)g * 0xC2B2AE3D27D4EB4Full;
    mix(&s);
    return s;
}

static int64_t n_points(uint64_t seed, int64_t g, double mean, double sigma, int64_t cap)
{
    uint64_t s = event_seed(seed, g);
    double k = round(exp(log(mean) - 0.5 * sigma * sigma + sigma * gauss(&s)));
    return k < 1 ? 1 : k > (double)cap ? cap : (int64_t)k;
}

/* one file: events [g0, g1) */
static int write_part(const char *path, int h5, int gzip, uint64_t seed, int64_t g0, int64_t g1, double mean,
                      double sigma, int64_t cap)
{
    int64_t E = g1 - g0, T = 0;
    int64_t *rs = malloc(sizeof(int64_t) * (size_t)(E + 1));
    if (!rs)
        return djct_error_oom();
    rs[0] = 0;
    for (int64_t e = 0; e < E; e++)
        rs[e + 1] = rs[e] + n_points(seed, g0 + e, mean, sigma, cap);
    T = rs[E];
    static char *fn[4] = {"x", "y", "z", "energy"};
    djct_array feat = {.name = "points", .feature_names = fn, .n_feature_names = 4, .dtype = DJCT_DTYPE_FLOAT32,
                       .ndim = 3, .shape = {E, -T, 4}, .row_splits = rs, .n_row_splits = (size_t)E + 1,
                       .n_values = (size_t)T * 4};
    djct_array lab = {.name = "label", .dtype = DJCT_DTYPE_INT32, .ndim = 2, .shape = {E, 1}, .n_values = (size_t)E};
    djct_array en = {.name = "energy", .dtype = DJCT_DTYPE_FLOAT32, .ndim = 2, .shape = {E, 1}, .n_values = (size_t)E};
    float *v = malloc(sizeof(float) * (size_t)T * 4 + 4), *ev = malloc(sizeof(float) * (size_t)E + 4);
    int32_t *lv = malloc(sizeof(int32_t) * (size_t)E + 4);
    int rc = 0;
    if (!v || !ev || !lv) {
        rc = djct_error_oom();
        goto done;
    }
    for (int64_t e = 0; e < E; e++) {
        uint64_t s = event_seed(seed, g0 + e);
        gauss(&s); /* the draw n_points() used */
        int cls = (int)(mix(&s) % 3);
        double spread = cls == 0 ? 0.3 : cls == 1 ? 1.0 : 2.5;
        double cx = gauss(&s), cy = gauss(&s), depth = 1 + unif(&s) * 4;
        double total = 0;
        for (int64_t j = rs[e]; j < rs[e + 1]; j++) {
            double z = depth * -log(unif(&s));           /* longitudinal: exponential */
            double r = spread * (0.2 + 0.3 * z);          /* the shower widens with depth */
            float *p = v + 4 * j;
            p[0] = (float)(cx + r * gauss(&s));
            p[1] = (float)(cy + r * gauss(&s));
            p[2] = (float)z;
            p[3] = (float)(-log(unif(&s)) * (1.0 + 0.5 * cls));
            total += p[3];
        }
        lv[e] = cls;
        ev[e] = (float)log1p(total);
    }
    feat.values = v;
    lab.values = lv;
    en.values = ev;
    djct_array truths[2] = {lab, en};
    djct_record rec = {.features = &feat, .n_features = 1, .truths = truths, .n_truths = 2};
    if (h5) {
        djct_h5_write_options o = DJCT_H5_WRITE_OPTIONS_INIT;
        o.gzip_level = gzip;
        rc = djct_h5_write(path, &rec, &o);
    } else {
        rc = djct_djcdata_write(path, &rec, NULL);
    }
done:
    free(rs);
    free(v);
    free(ev);
    free(lv);
    return rc;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        size_t k = 0, n = sizeof(OPTS) / sizeof(OPTS[0]);
        const char *eq = strchr(argv[i], '=');
        size_t len = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        while (k < n && (strlen(OPTS[k].name) != len || strncmp(OPTS[k].name, argv[i], len)))
            k++;
        if (k == n) {
            fprintf(stderr, "djct_gen: unknown option '%s'; see djct_gen --help\n", argv[i]);
            return 2;
        }
        if (eq)
            OPTS[k].val = (char *)eq + 1;
        else if (i + 1 < argc)
            OPTS[k].val = argv[++i];
        else {
            fprintf(stderr, "djct_gen: %s needs a value (%s)\n", OPTS[k].name, OPTS[k].arg);
            return 2;
        }
    }
    int64_t events, files, seed, gzip, cap;
    parse_i64("--events", 1, INT64_C(1) << 40, &events);
    parse_i64("--files", 1, 100000, &files);
    parse_i64("--seed", 0, INT64_MAX, &seed);
    parse_i64("--gzip", 0, 9, &gzip);
    parse_i64("--max-points", 1, INT64_C(1) << 30, &cap);
    double mean = parse_f("--mean-points", 1, 1e7), sigma = parse_f("--sigma", 0, 5);
    const char *fmt = get("--format"), *out = get("--out");
    int h5 = !strcmp(fmt, "h5");
    if (!h5 && strcmp(fmt, "djctd")) {
        fprintf(stderr, "djct_gen: --format '%s' is not djctd or h5\n", fmt);
        return 2;
    }
    if (files > events) {
        fprintf(stderr, "djct_gen: --files %" PRId64 " is more than --events %" PRId64 "\n", files, events);
        return 2;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "djct_gen: cannot create directory '%s': %s\n", out, strerror(errno));
        return 1;
    }
    for (int64_t f = 0; f < files; f++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/part-%03" PRId64 ".%s", out, f, h5 ? "h5" : "djctd");
        int64_t g0 = f * events / files, g1 = (f + 1) * events / files;
        if (write_part(path, h5, (int)gzip, (uint64_t)seed, g0, g1, mean, sigma, cap) < 0) {
            fprintf(stderr, "djct_gen: %s\n", djct_last_error());
            return 1;
        }
    }
    printf("djct_gen: wrote %" PRId64 " events in %" PRId64 " %s files to %s\n", events, files, fmt, out);
    return 0;
}
