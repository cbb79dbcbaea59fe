/* data_bench: (1) read throughput of .djctd and HDF5 (plain, gzip) whole-file readers and of the
 * dataset's batch assembly, against a raw fread of the same file bytes in the same run (hot page
 * cache, MB/s = 10^6 B/s of decoded payload, ratio per round, median over rounds); (2) the
 * straggler ratio of djct's plan vs fixed events per batch vs a per-rank element cap, for 2 and 4
 * ranks, computed from metadata in one process (perf_baselines.md section 3 data: lognormal points
 * per event, mean 200, sigma 1).
 * usage: data_bench [--events N] [--repeats R] [--dir DIR] [--epb E] [--features F] */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "djct/djct.h"
#include "bench_util.h"

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0; }

static void die(const char *what)
{
    fprintf(stderr, "data_bench: %s: %s\n", what, djct_last_error());
    exit(1);
}

static size_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

/* raw fread of the whole file into a buffer that has been written before (no page faults) */
static double time_fread(const char *p, char *buf, size_t n)
{
    double t0 = bench_now_s();
    FILE *f = fopen(p, "rb");
    size_t got = f ? fread(buf, 1, n, f) : 0;
    if (f)
        fclose(f);
    if (got != n) {
        fprintf(stderr, "data_bench: short read of %s\n", p);
        exit(1);
    }
    return bench_now_s() - t0;
}

static size_t payload(const djct_record *r)
{
    size_t b = 0;
    const djct_array *l[3] = {r->features, r->truths, r->weights};
    size_t n[3] = {r->n_features, r->n_truths, r->n_weights};
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n[c]; i++)
            b += l[c][i].n_values * djct_dtype_size(l[c][i].dtype) + l[c][i].n_row_splits * 8;
    return b;
}

/* mean over steps of max/mean of per-rank elements; steps formed from consecutive batches */
static double straggler(const int64_t *batch_el, int64_t nb, int W)
{
    double r = 0;
    int64_t n = 0;
    for (int64_t s = 0; s + W <= nb; s += W) {
        int64_t mx = 0, sum = 0;
        for (int k = 0; k < W; k++) {
            sum += batch_el[s + k];
            mx = batch_el[s + k] > mx ? batch_el[s + k] : mx;
        }
        if (sum) {
            r += (double)mx * W / (double)sum;
            n++;
        }
    }
    return n ? r / (double)n : 1;
}

int main(int argc, char **argv)
{
    int64_t E = 20000, epb = 32;
    int reps = 5, F = 2;
    const char *dir = "/tmp/djct_data_bench";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            E = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--epb") && i + 1 < argc)
            epb = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--features") && i + 1 < argc)
            F = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: data_bench [--events N] [--repeats R] [--dir DIR] [--epb E] [--features F]\n");
            return 2;
        }
    }
    if (E < 100 || reps < 1 || reps > 99 || epb < 1 || F < 1 || F > 64) {
        fprintf(stderr, "data_bench: need --events >= 100, --repeats 1..99, --epb >= 1, --features 1..64\n");
        return 2;
    }
    mkdir(dir, 0755);

    /* the data: lognormal points per event (mean 200, sigma 1), F random floats per point */
    uint64_t s = 2026;
    int64_t *rs = malloc(sizeof(int64_t) * (size_t)(E + 1));
    rs[0] = 0;
    for (int64_t e = 0; e < E; e++) {
        double z = sqrt(-2 * log(unif(&s))) * cos(6.283185307179586 * unif(&s));
        int64_t k = (int64_t)llround(exp(log(200.0) - 0.5 + z));
        rs[e + 1] = rs[e] + (k < 1 ? 1 : k);
    }
    int64_t T = rs[E];
    float *v = malloc(sizeof(float) * (size_t)T * (size_t)F);
    for (int64_t i = 0; i < T * F; i++)
        v[i] = (float)(unif(&s) * 2 - 1);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)E);
    for (int64_t e = 0; e < E; e++)
        lab[e] = (int32_t)(e % 3);
    djct_array feat = {.name = "points", .dtype = DJCT_DTYPE_FLOAT32, .ndim = 3, .shape = {E, -T, F},
                       .row_splits = rs, .n_row_splits = (size_t)E + 1, .values = v, .n_values = (size_t)(T * F)};
    djct_array tr = {.name = "label", .dtype = DJCT_DTYPE_INT32, .ndim = 2, .shape = {E, 1}, .values = lab,
                     .n_values = (size_t)E};
    djct_record rec = {.features = &feat, .n_features = 1, .truths = &tr, .n_truths = 1};
    char pd[1024], ph[1024], pz[1024];
    snprintf(pd, sizeof(pd), "%s/bench.djctd", dir);
    snprintf(ph, sizeof(ph), "%s/bench.h5", dir);
    snprintf(pz, sizeof(pz), "%s/bench_gzip1.h5", dir);
    printf("data_bench: %" PRId64 " events, %" PRId64 " points, %d float32 per point; files in %s\n",
           E, T, F, dir);
    if (djct_djcdata_write(pd, &rec, NULL) < 0)
        die(pd);
    djct_h5_write_options ho = DJCT_H5_WRITE_OPTIONS_INIT;
    if (djct_h5_write(ph, &rec, &ho) < 0)
        die(ph);
    ho.gzip_level = 1;
    if (djct_h5_write(pz, &rec, &ho) < 0)
        die(pz);
    size_t pay = payload(&rec);
    printf("payload %.1f MB; files: djctd %.1f MB, h5 %.1f MB, h5 gzip-1 %.1f MB\n\n", pay / 1e6,
           file_size(pd) / 1e6, file_size(ph) / 1e6, file_size(pz) / 1e6);

    /* (1) throughput: each round runs every reader once after a raw fread of the plain h5 bytes */
    size_t fb = file_size(ph);
    char *buf = malloc(fb + file_size(pd) + file_size(pz));
    memset(buf, 1, fb + file_size(pd) + file_size(pz));
    enum { RAW, DJCTD, H5, H5Z, DS_DJCTD, DS_H5, NR };
    static const char *names[NR] = {"raw fread (plain .h5 bytes)", "djct_djcdata_read .djctd (QuickLZ)",
                                    "djct_h5_read plain", "djct_h5_read gzip-1",
                                    "dataset batches .djctd (sync)", "dataset batches .h5 (sync)"};
    double mbs[NR][100], ratio[NR][100];
    for (int r = 0; r < reps + 1; r++) { /* round 0 warms the page cache and is not counted */
        double t[NR];
        t[RAW] = time_fread(ph, buf, fb);
        djct_record x;
        const char *paths[3] = {pd, ph, pz};
        for (int k = 0; k < 3; k++) {
            double t0 = bench_now_s();
            int rc = k == 0 ? djct_djcdata_read(&x, paths[k]) : djct_h5_read(&x, paths[k]);
            t[DJCTD + k] = bench_now_s() - t0;
            if (rc < 0)
                die(paths[k]);
            djct_record_clear(&x);
        }
        for (int k = 0; k < 2; k++) {
            djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
            o.batch_elements = 200 * epb;
            o.prefetch_depth = 0;
            o.shuffle = DJCT_SHUFFLE_GLOBAL;
            djct_dataset *ds;
            if (djct_dataset_open(&ds, k ? ph : pd, &o) < 0)
                die("dataset");
            djct_batch *b;
            size_t got = 0;
            double t0 = bench_now_s();
            while (djct_dataset_next(ds, &b) == 0 && b) {
                got += payload(&b->record);
                djct_batch_release(ds, b);
            }
            t[DS_DJCTD + k] = bench_now_s() - t0;
            t[DS_DJCTD + k] *= (double)pay / (double)got; /* normalise to the same payload */
            djct_dataset_free(ds);
        }
        if (r == 0)
            continue;
        for (int k = 0; k < NR; k++) {
            mbs[k][r - 1] = (k == RAW ? (double)fb : (double)pay) / t[k] / 1e6;
            ratio[k][r - 1] = mbs[k][r - 1] / ((double)fb / t[RAW] / 1e6);
        }
    }
    printf("read throughput, hot page cache, median of %d rounds (ratio to raw fread per round)\n", reps);
    printf("| reader | MB/s | / raw fread |\n|---|---|---|\n");
    for (int k = 0; k < NR; k++)
        printf("| %s | %.0f | %.3f |\n", names[k], bench_median(mbs[k], reps), bench_median(ratio[k], reps));

    /* (2) straggler ratio from metadata: djct plan vs the two baselines, same data */
    printf("\nstraggler ratio (mean over steps of max/mean points per rank), %" PRId64 " events, cap %" PRId64
           " points = %" PRId64 " events x 200\n", E, 200 * epb, epb);
    printf("| ranks | fixed %" PRId64 " events/batch | per-rank cap (greedy, round-robin) | djct plan | djct steps |"
           " djct dropped |\n|---|---|---|---|---|---|\n", epb);
    for (int W = 2; W <= 4; W += 2) {
        djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
        o.batch_elements = 200 * epb;
        o.world_size = W;
        o.prefetch_depth = 0;
        o.shuffle = DJCT_SHUFFLE_GLOBAL;
        o.seed = 1;
        djct_dataset *ds;
        double t0 = bench_now_s();
        if (djct_dataset_open(&ds, ph, &o) < 0)
            die("dataset");
        double tplan = bench_now_s() - t0;
        djct_plan_stats st;
        djct_dataset_plan_stats(ds, &st);
        const int64_t *cnt = djct_dataset_event_elements(ds);
        /* baselines over one global shuffled order */
        int64_t *perm = malloc(sizeof(int64_t) * (size_t)E), *bel = malloc(sizeof(int64_t) * (size_t)E);
        uint64_t ps = 99;
        for (int64_t i = 0; i < E; i++)
            perm[i] = i;
        for (int64_t i = E - 1; i > 0; i--) {
            int64_t j = (int64_t)(mix(&ps) % (uint64_t)(i + 1)), tt = perm[i];
            perm[i] = perm[j];
            perm[j] = tt;
        }
        int64_t nb = 0;
        for (int64_t i = 0; i < E; i += epb) {
            bel[nb] = 0;
            for (int64_t k = i; k < i + epb && k < E; k++)
                bel[nb] += cnt[perm[k]];
            nb++;
        }
        double fixed = straggler(bel, nb, W);
        nb = 0;
        int64_t x = 0;
        for (int64_t i = 0; i < E; i++) {
            int64_t n = cnt[perm[i]];
            if (x > 0 && x + n > 200 * epb) {
                bel[nb++] = x;
                x = 0;
            }
            x += n;
        }
        if (x)
            bel[nb++] = x;
        double capped = straggler(bel, nb, W);
        printf("| %d | %.4f | %.4f | **%.4f** | %" PRId64 " | %" PRId64 " |\n", W, fixed, capped, st.straggler_ratio,
               st.steps, st.dropped_events);
        fprintf(stderr, "  (plan for %d ranks computed in %.1f ms including metadata)\n", W, tplan * 1e3);
        free(perm);
        free(bel);
        djct_dataset_free(ds);
    }
    free(buf);
    free(rs);
    free(v);
    free(lab);
    return 0;
}
