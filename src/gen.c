/* Synthetic toy particle showers (see include/djct/gen.h). */
#include "djct/gen.h"
#include "djct/array.h"
#include "djct/fileutil.h"
#include "djct/djcdata.h"
#include "djct/error.h"
#include "djct/h5.h"
#include "djct_int.h"
#include "util_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static double unif(uint64_t *s) { return ((double)(djct_splitmix64(s) >> 11) + 0.5) / 9007199254740992.0; }
static double gauss(uint64_t *s) { return sqrt(-2 * log(unif(s))) * cos(6.283185307179586 * unif(s)); }

static uint64_t event_seed(uint64_t seed, int64_t g)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)g * 0xC2B2AE3D27D4EB4Full;
    djct_splitmix64(&s);
    return s;
}

static int64_t n_points(uint64_t seed, int64_t g, double mean, double sigma, int64_t cap)
{
    uint64_t s = event_seed(seed, g);
    double k = round(exp(log(mean) - 0.5 * sigma * sigma + sigma * gauss(&s)));
    return k < 1 ? 1 : k > (double)cap ? cap : (int64_t)k;
}

/* one file: events [g0, g1) */
static int write_part(const char *path, const djct_gen_options *o, int64_t g0, int64_t g1)
{
    int64_t E = g1 - g0, T = 0;
    int64_t *rs = malloc(sizeof(int64_t) * (size_t)(E + 1));
    if (!rs)
        return djct_error_oom();
    rs[0] = 0;
    for (int64_t e = 0; e < E; e++)
        rs[e + 1] = rs[e] + n_points(o->seed, g0 + e, o->mean_points, o->sigma, o->max_points);
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
        uint64_t s = event_seed(o->seed, g0 + e);
        gauss(&s); /* the draw n_points() used */
        int cls = (int)(djct_splitmix64(&s) % 3);
        double spread = cls == 0 ? 0.3 : cls == 1 ? 1.0 : 2.5;
        double cx = gauss(&s), cy = gauss(&s), depth = 1 + unif(&s) * 4;
        double total = 0;
        for (int64_t j = rs[e]; j < rs[e + 1]; j++) {
            double z = depth * -log(unif(&s)); /* longitudinal: exponential */
            double r = spread * (0.2 + 0.3 * z); /* the shower widens with depth */
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
    if (o->format == DJCT_FORMAT_H5) {
        djct_h5_write_options ho = DJCT_H5_WRITE_OPTIONS_INIT;
        ho.gzip_level = o->gzip;
        rc = djct_h5_write(path, &rec, &ho);
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

static int check(const djct_gen_options *o)
{
    if (o->events < 1 || o->files < 1 || o->files > o->events)
        return djct_error_set(DJCT_EINVAL, "gen: %" PRId64 " events in %" PRId64 " files: need 1 <= files <= events",
                              o->events, o->files);
    if (o->format != DJCT_FORMAT_DJCTD && o->format != DJCT_FORMAT_H5)
        return djct_error_set(DJCT_EINVAL, "gen: format %d is neither djctd nor h5", o->format);
    if (!(o->mean_points >= 1) || !(o->sigma >= 0) || o->max_points < 1 || o->gzip < 0 || o->gzip > 9 ||
        o->first_event < 0)
        return djct_error_set(DJCT_EINVAL, "gen: mean points >= 1, sigma >= 0, max points >= 1, gzip 0..9 and "
                                           "first event >= 0 are required");
    return 0;
}

int djct_gen_write(const char *dir, const djct_gen_options *opts)
{
    DJCT_CHECK_ARG(dir);
    DJCT_CHECK_VERSION(opts, DJCT_GEN_OPTIONS_VERSION, "djct_gen_options");
    djct_gen_options o = DJCT_GEN_OPTIONS_INIT;
    if (opts)
        o = *opts;
    int rc = check(&o);
    if (rc)
        return rc;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return djct_error_set(DJCT_EIO, "gen: cannot create directory '%s': %s", dir, strerror(errno));
    for (int64_t f = 0; f < o.files; f++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/part-%03" PRId64 ".%s", dir, f, o.format == DJCT_FORMAT_H5 ? "h5" : "djctd");
        int64_t g0 = o.first_event + f * o.events / o.files, g1 = o.first_event + (f + 1) * o.events / o.files;
        if ((rc = write_part(path, &o, g0, g1)))
            return djct_error_prefix("gen: '%s'", path);
    }
    return 0;
}

int djct_gen_cached(const char *dir, const djct_gen_options *opts, int *generated)
{
    DJCT_CHECK_ARG(dir);
    DJCT_CHECK_VERSION(opts, DJCT_GEN_OPTIONS_VERSION, "djct_gen_options");
    djct_gen_options o = DJCT_GEN_OPTIONS_INIT;
    if (opts)
        o = *opts;
    if (generated)
        *generated = 0;
    char done[4200], tmp[4200], sub[4300];
    snprintf(done, sizeof(done), "%s/COMPLETE", dir);
    struct stat st;
    if (stat(done, &st) == 0)
        return 0;
    /* the parents of dir (dir itself appears by the rename below) */
    {
        char parent[4096];
        snprintf(parent, sizeof(parent), "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            int prc = djct_mkdirs(parent);
            if (prc)
                return djct_error_prefix("gen: set DJCT_CACHE to a writable directory");
        }
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dir, (long)getpid());
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return djct_error_set(DJCT_EIO, "gen: cannot create '%s': %s; set DJCT_CACHE to a writable directory", tmp,
                              strerror(errno));
    snprintf(sub, sizeof(sub), "%s/train", tmp);
    int rc = djct_gen_write(sub, &o);
    if (rc == 0) {
        djct_gen_options v = o;
        v.events = o.events / 5 > 0 ? o.events / 5 : 1;
        v.files = 1;
        v.first_event = o.first_event + o.events;
        snprintf(sub, sizeof(sub), "%s/val", tmp);
        rc = djct_gen_write(sub, &v);
    }
    if (rc == 0) {
        char marker[4300];
        snprintf(marker, sizeof(marker), "%s/COMPLETE", tmp);
        rc = djct_write_file_atomic(marker, "ok\n", 3);
    }
    if (rc == 0 && rename(tmp, dir) != 0) {
        /* another job finished first: use its copy */
        if (stat(done, &st) == 0) {
            djct_remove_tree(tmp);
            return 0;
        }
        rc = djct_error_set(DJCT_EIO, "gen: cannot rename '%s' to '%s': %s", tmp, dir, strerror(errno));
    }
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", djct_last_error());
        djct_remove_tree(tmp); /* never leave half a set behind */
        return djct_error_set(rc, "%s", msg);
    }
    if (generated)
        *generated = 1;
    return 0;
}
