/* loader_bench: what the data loader alone delivers (djct_dataset_next/release, no model), in
 * ragged elements/s and MB/s of batch payload (values and row splits, 10^6 B/s), from compressed
 * .djctd and from uncompressed HDF5 (read through a mapping) holding the same synthetic
 * point-cloud events (make_record), with the serial decode (decode_threads 0: the prefetch thread
 * decodes each .djctd file whole) and with each given number of decode threads, side by side in
 * one run: every round runs every configuration once, in rotated order, and the table gives the
 * median over rounds. A run opens the dataset (cold decoded-file cache, warm page cache) and takes
 * --epochs epochs; with the default cache smaller than the decoded data every epoch decodes every
 * .djctd file again. Before timing, one epoch of every configuration is hashed: the batches must
 * be the same bytes whatever the thread count (exit 1 if not).
 * usage: loader_bench [--dir DIR] [--events N] [--files F] [--threads 0,1,2] [--epochs E]
 *                     [--repeats R] [--cache-mb MB] [--batch-elements L] [--prefetch D]
 *                     [--shuffle files|global|none] [--payload hits|random] */
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "djct/djct.h"
#include "bench_util.h"

#define MAX_T 16
#define MAX_R 99

typedef struct {
    const char *dir;
    int64_t events, files, batch_elements, epochs;
    int repeats, prefetch, shuffle, n_threads, threads[MAX_T], random;
    size_t cache_mb;
} opts;

static void die(const char *what)
{
    fprintf(stderr, "loader_bench: %s: %s\n", what, djct_last_error());
    exit(1);
}

static double dir_mb(const char *dir, const char *ext)
{
    double b = 0;
    char p[4200];
    for (int f = 0; f < 100000; f++) {
        struct stat st;
        snprintf(p, sizeof(p), "%s/part-%03d.%s", dir, f, ext);
        if (stat(p, &st) != 0)
            break;
        b += (double)st.st_size;
    }
    return b / 1e6;
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0; }

/* File f of the data: its events' points (lognormal per event, mean 200, sigma 1), four float32
 * per point as the point-cloud hits payload of bench/qlz_payloads.h (x, y = k/2 with k < 512, z an
 * integer < 64, e = k/100 with k < 1000; QuickLZ keeps about 2/3 of it), or uniform random floats
 * (stored chunks: no decoding, a copy); an int32 label and a float32 target per event. */
static void make_record(djct_record *r, const opts *o, int64_t f)
{
    int64_t e0 = o->events * f / o->files, n = o->events * (f + 1) / o->files - e0;
    uint64_t s = 1000003u * (uint64_t)(f + 1);
    int64_t *rs = malloc(sizeof(int64_t) * (size_t)(n + 1));
    rs[0] = 0;
    for (int64_t e = 0; e < n; e++) {
        double z = sqrt(-2 * log(unif(&s))) * cos(6.283185307179586 * unif(&s));
        int64_t k = (int64_t)llround(exp(log(200.0) - 0.5 + z));
        rs[e + 1] = rs[e] + (k < 1 ? 1 : k);
    }
    int64_t T = rs[n];
    float *v = malloc(sizeof(float) * (size_t)T * 4), *tg = malloc(sizeof(float) * (size_t)n + 4);
    for (int64_t i = 0; i < T * 4; i++) {
        uint64_t k = mix(&s);
        v[i] = o->random ? (float)(unif(&s) * 200 - 100)
               : i % 4 < 2 ? (float)(k % 512) / 2.0f : i % 4 == 2 ? (float)(k % 64) : (float)(k % 1000) / 100.0f;
    }
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n + 4);
    for (int64_t e = 0; e < n; e++) {
        lab[e] = (int32_t)((e0 + e) % 3);
        tg[e] = (float)(rs[e + 1] - rs[e]) / 200.0f;
    }
    memset(r, 0, sizeof(*r));
    r->features = calloc(1, sizeof(djct_array));
    r->truths = calloc(2, sizeof(djct_array));
    r->n_features = 1;
    r->n_truths = 2;
    r->features[0] = (djct_array){.name = strdup("points"), .dtype = DJCT_DTYPE_FLOAT32, .ndim = 3,
                                  .shape = {n, -T, 4}, .row_splits = rs, .n_row_splits = (size_t)n + 1,
                                  .values = v, .n_values = (size_t)T * 4};
    r->truths[0] = (djct_array){.name = strdup("label"), .dtype = DJCT_DTYPE_INT32, .ndim = 2, .shape = {n, 1},
                                .values = lab, .n_values = (size_t)n};
    r->truths[1] = (djct_array){.name = strdup("target"), .dtype = DJCT_DTYPE_FLOAT32, .ndim = 2,
                                .shape = {n, 1}, .values = tg, .n_values = (size_t)n};
}

/* the two copies of the data, written once per set of parameters (a stamp file says which) */
static void make_data(const opts *o, char spec[2][4200])
{
    char stamp[4200], want[256], have[256] = "";
    snprintf(want, sizeof(want), "events %" PRId64 " files %" PRId64 " payload %s v2\n", o->events, o->files,
             o->random ? "random" : "hits");
    snprintf(stamp, sizeof(stamp), "%s/stamp", o->dir);
    FILE *f = fopen(stamp, "r");
    if (f) {
        if (!fgets(have, sizeof(have), f))
            have[0] = 0;
        fclose(f);
    }
    for (int k = 0; k < 2; k++)
        snprintf(spec[k], 4200, "%s/%s", o->dir, k ? "h5" : "djctd");
    if (!strcmp(want, have))
        return;
    remove(stamp);
    mkdir(o->dir, 0755);
    fprintf(stderr, "loader_bench: writing %s and %s\n", spec[0], spec[1]);
    for (int k = 0; k < 2; k++)
        mkdir(spec[k], 0755);
    for (int64_t i = 0; i < o->files; i++) {
        djct_record r;
        make_record(&r, o, i);
        char p[8500];
        snprintf(p, sizeof(p), "%s/part-%03" PRId64 ".djctd", spec[0], i);
        if (djct_djcdata_write(p, &r, NULL) < 0)
            die(p);
        snprintf(p, sizeof(p), "%s/part-%03" PRId64 ".h5", spec[1], i); /* uncompressed: mapped */
        if (djct_h5_write(p, &r, NULL) < 0)
            die(p);
        djct_record_clear(&r);
    }
    /* files of another size from an earlier run would join the dataset: none may be left */
    for (int64_t i = o->files; i < 100000; i++) {
        char p[8500];
        int gone = 0;
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof(p), "%s/part-%03" PRId64 ".%s", spec[k], i, k ? "h5" : "djctd");
            gone += remove(p) != 0;
        }
        if (gone == 2)
            break;
    }
    if ((f = fopen(stamp, "w"))) {
        fputs(want, f);
        fclose(f);
    }
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* the payload of a batch; with h != NULL also a hash of all its bytes */
static size_t payload(const djct_batch *b, uint64_t *h)
{
    const djct_array *l[3] = {b->record.features, b->record.truths, b->record.weights};
    size_t n[3] = {b->record.n_features, b->record.n_truths, b->record.n_weights}, bytes = 0;
    if (h) {
        *h = fnv(*h, &b->step, sizeof(b->step));
        *h = fnv(*h, b->event_ids, sizeof(int64_t) * (size_t)b->n_events);
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n[c]; i++) {
            size_t vb = l[c][i].n_values * djct_dtype_size(l[c][i].dtype), rb = l[c][i].n_row_splits * 8;
            bytes += vb + rb;
            if (h) {
                *h = fnv(*h, l[c][i].values, vb);
                *h = fnv(*h, l[c][i].row_splits, rb);
            }
        }
    return bytes;
}

/* one run: open, `epochs` epochs of next/release; elements and bytes delivered, seconds from
 * open to the last release; with hash != NULL one epoch only, hashed */
static void run(const opts *o, const char *spec, int threads, uint64_t *hash, double *sec, double *el, double *by)
{
    djct_dataset_options d = DJCT_DATASET_OPTIONS_INIT;
    d.batch_elements = o->batch_elements;
    d.shuffle = o->shuffle;
    d.seed = 1;
    d.prefetch_depth = o->prefetch;
    d.cache_bytes = o->cache_mb << 20;
    d.decode_threads = threads;
    djct_dataset *ds;
    double t0 = bench_now_s(), elements = 0, bytes = 0;
    if (djct_dataset_open(&ds, spec, &d) < 0)
        die(spec);
    int64_t epochs = hash ? 1 : o->epochs;
    for (int64_t e = 0; e < epochs; e++) {
        djct_batch *b;
        int rc;
        if (djct_dataset_begin_epoch(ds, e) < 0)
            die("begin_epoch");
        while ((rc = djct_dataset_next(ds, &b)) == 0 && b) {
            elements += (double)b->n_elements;
            bytes += (double)payload(b, hash);
            djct_batch_release(ds, b);
        }
        if (rc < 0)
            die("next");
    }
    *sec = bench_now_s() - t0;
    *el = elements;
    *by = bytes;
    djct_dataset_free(ds);
}

static int parse(opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        i++;
        if (!strcmp(a, "--dir"))
            o->dir = v;
        else if (!strcmp(a, "--events"))
            o->events = atoll(v);
        else if (!strcmp(a, "--files"))
            o->files = atoll(v);
        else if (!strcmp(a, "--epochs"))
            o->epochs = atoll(v);
        else if (!strcmp(a, "--repeats"))
            o->repeats = atoi(v);
        else if (!strcmp(a, "--cache-mb"))
            o->cache_mb = (size_t)atoll(v);
        else if (!strcmp(a, "--batch-elements"))
            o->batch_elements = atoll(v);
        else if (!strcmp(a, "--prefetch"))
            o->prefetch = atoi(v);
        else if (!strcmp(a, "--payload"))
            o->random = !strcmp(v, "random") ? 1 : !strcmp(v, "hits") ? 0 : -1;
        else if (!strcmp(a, "--shuffle"))
            o->shuffle = !strcmp(v, "none") ? DJCT_SHUFFLE_NONE : !strcmp(v, "global") ? DJCT_SHUFFLE_GLOBAL
                         : !strcmp(v, "files")                 ? DJCT_SHUFFLE_FILES
                                                               : -1;
        else if (!strcmp(a, "--threads")) {
            o->n_threads = 0;
            for (const char *p = v; *p && o->n_threads < MAX_T;) {
                char *end;
                long t = strtol(p, &end, 10);
                if (end == p || t < 0 || t > 1024)
                    return -1;
                o->threads[o->n_threads++] = (int)t;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                    return -1;
            }
        } else
            return -1;
    }
    return o->events >= 100 && o->files >= 1 && o->epochs >= 1 && o->repeats >= 1 && o->repeats <= MAX_R &&
                   o->batch_elements >= 1 && o->prefetch >= 0 && o->shuffle >= 0 && o->n_threads >= 1 &&
                   o->random >= 0
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    opts o = {"/tmp/djct_loader_bench", 60000, 12, 6400, 2, 5, 2, DJCT_SHUFFLE_FILES, 3, {0, 1, 2}, 0, 64};
    if (parse(&o, argc, argv) < 0) {
        fprintf(stderr, "usage: loader_bench [--dir DIR] [--events N>=100] [--files F] [--threads 0,1,2] "
                        "[--epochs E] [--repeats 1..99] [--cache-mb MB] [--batch-elements L] [--prefetch D] "
                        "[--shuffle files|global|none] [--payload hits|random]\n");
        return 2;
    }
    char spec[2][4200];
    make_data(&o, spec);
    cpu_set_t cs;
    int cores = sched_getaffinity(0, sizeof(cs), &cs) == 0 ? CPU_COUNT(&cs) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    static const char *shuf[] = {"none", "files", "global"};
    printf("loader_bench: %" PRId64 " events in %" PRId64 " files (lognormal points, mean 200, 4 float32 each: "
           "%s); .djctd %.1f MB, .h5 %.1f MB on disk; %" PRId64 " epoch(s) per run, cache %zu MiB, prefetch %d, "
           "shuffle %s, %" PRId64 " elements per batch, %d cores available; median of %d rounds\n",
           o.events, o.files, o.random ? "random floats, stored chunks" : "point-cloud hits, QuickLZ-coded",
           dir_mb(spec[0], "djctd"), dir_mb(spec[1], "h5"), o.epochs, o.cache_mb, o.prefetch, shuf[o.shuffle],
           o.batch_elements, cores, o.repeats);

    /* the batches first: the same bytes with every thread count (and, the data being the same
     * events, in both formats) */
    uint64_t h[2][MAX_T];
    int same = 1, same_formats = 1;
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < o.n_threads; t++) {
            double s, e, b;
            h[k][t] = 1469598103934665603ull;
            run(&o, spec[k], o.threads[t], &h[k][t], &s, &e, &b);
            same &= h[k][t] == h[k][0];
            same_formats &= h[k][t] == h[0][0];
        }
    printf("batches of epoch 0 the same bytes for every thread count: %s; in both formats: %s\n", same ? "yes" : "NO",
           same_formats ? "yes" : "no");
    if (!same)
        return 1;

    /* the timed rounds: every configuration once per round, the order rotated from round to round */
    int nc = 2 * o.n_threads;
    static double els[2 * MAX_T][MAX_R], mbs[2 * MAX_T][MAX_R];
    for (int r = 0; r < o.repeats; r++)
        for (int j = 0; j < nc; j++) {
            int c = (j + r) % nc, k = c / o.n_threads, t = c % o.n_threads;
            double s, e, b;
            run(&o, spec[k], o.threads[t], NULL, &s, &e, &b);
            els[c][r] = e / s;
            mbs[c][r] = b / s / 1e6;
            fprintf(stderr, "  round %d: %s, %d decode threads: %.2f s, %.3g elements/s\n", r + 1, k ? "h5" : "djctd",
                    o.threads[t], s, e / s);
        }
    char vs[32];
    if (o.threads[0] == 0)
        snprintf(vs, sizeof(vs), "serial");
    else
        snprintf(vs, sizeof(vs), "%d thread%s", o.threads[0], o.threads[0] == 1 ? "" : "s");
    printf("| data | decode threads | elements/s | MB/s | vs %s | elements/s range |\n|---|---|---|---|---|---|\n", vs);
    for (int c = 0; c < nc; c++) {
        int k = c / o.n_threads, t = c % o.n_threads;
        double lo = els[c][0], hi = els[c][0];
        for (int r = 1; r < o.repeats; r++) {
            lo = els[c][r] < lo ? els[c][r] : lo;
            hi = els[c][r] > hi ? els[c][r] : hi;
        }
        double m = bench_median(els[c], o.repeats), mb = bench_median(mbs[c], o.repeats);
        double base = bench_median(els[k * o.n_threads], o.repeats); /* the first thread count given */
        printf("| %s | %d%s | %.4g | %.0f | %.2f | %.3g-%.3g |\n", k ? ".h5 (uncompressed, mapped)" : ".djctd (QuickLZ)",
               o.threads[t], o.threads[t] == 0 ? " (serial)" : "", m, mb, m / base, lo, hi);
    }
    printf("(decode threads apply to .djctd files only: the .h5 rows take the same path, a reference)\n");
    return 0;
}
