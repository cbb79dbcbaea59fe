/* djct_gen: write a deterministic synthetic irregular dataset (toy particle showers, see
 * include/djct/gen.h). A thin app over djct_gen_write(); the same options give identical bytes. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>

#include "app_common.h"
#include "djct/djct.h"

typedef struct {
    int64_t events, files, seed, max_points;
    int format;
    char *out;
    double mean_points, sigma;
    int gzip;
} cfg;

static const djct_opt_choice FORMATS[] = {{"djctd", DJCT_FORMAT_DJCTD}, {"h5", DJCT_FORMAT_H5}, {NULL, 0}};

#define O(f) offsetof(cfg, f)
static const djct_opt T[] = {
    {"events", 'n', DJCT_OPT_INT64, O(events), "20000", NULL, 1, 1e12, "N", "events in total", "Dataset"},
    {"files", 0, DJCT_OPT_INT64, O(files), "4", NULL, 1, 100000, "N", "files to split them into, equal shares", NULL},
    {"seed", 0, DJCT_OPT_INT64, O(seed), "1", NULL, 0, 9e18, "N", "seed; the same seed gives identical files", NULL},
    {"format", 'f', DJCT_OPT_CHOICE, O(format), "djctd", FORMATS, 0, 0, NULL, "file format", NULL},
    {"out", 'o', DJCT_OPT_STRING, O(out), "djct_gen_data", NULL, 0, 0, "DIR", "output directory, created if missing", NULL},
    {"mean-points", 0, DJCT_OPT_DOUBLE, O(mean_points), "200", NULL, 1, 1e7, "X", "mean points per event (lognormal)", NULL},
    {"sigma", 0, DJCT_OPT_DOUBLE, O(sigma), "1.0", NULL, 0, 5, "X", "lognormal sigma of the points per event (heavy tail)", NULL},
    {"max-points", 0, DJCT_OPT_INT64, O(max_points), "100000", NULL, 1, 1073741824, "N", "cap on points per event", NULL},
    {"gzip", 0, DJCT_OPT_INT, O(gzip), "0", NULL, 0, 9, "N", "h5 only: gzip level", NULL},
};
#define NT (sizeof(T) / sizeof(T[0]))

#define USAGE                                                                                               \
    "usage: djct_gen [options]\n"                                                                           \
    "Write a synthetic point-cloud dataset: per event a lognormal number of points with 4 float\n"          \
    "features (x, y, z, energy), an int32 class label (0..2: narrow, medium, wide showers) and a\n"         \
    "float32 regression target log(1 + total energy) that a model can learn from the points.\n"             \
    "Files: OUT/part-NNN.djctd or .h5 with features [points (ragged)], truths [label, energy]."

int main(int argc, char **argv)
{
    cfg c;
    int rc0 = app_start("djct_gen", T, NT, USAGE, 0, &c, sizeof(c), argc, argv);
    if (rc0 != APP_GO_ON)
        return rc0;
    if (c.files > c.events) {
        fprintf(stderr, "djct_gen: --files %" PRId64 " is more than --events %" PRId64 "\n", c.files, c.events);
        djct_opts_free(T, NT, &c);
        return 2;
    }
    djct_gen_options go = DJCT_GEN_OPTIONS_INIT;
    go.events = c.events;
    go.files = c.files;
    go.seed = (uint64_t)c.seed;
    go.format = c.format;
    go.mean_points = c.mean_points;
    go.sigma = c.sigma;
    go.max_points = c.max_points;
    go.gzip = c.gzip;
    int rc = djct_gen_write(c.out, &go);
    if (rc) {
        fprintf(stderr, "djct_gen: %s\n", djct_last_error());
        djct_opts_free(T, NT, &c);
        return 1;
    }
    printf("djct_gen: wrote %" PRId64 " events in %" PRId64 " %s files to %s\n", c.events, c.files,
           djct_opts_choice_name(FORMATS, c.format), c.out);
    djct_opts_free(T, NT, &c);
    return 0;
}
