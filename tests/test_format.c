/* format: the one detector decides by content, so a file renamed to another format's extension
 * is still read as what it is (by the dataset as by the apps), and a file that is none of them is
 * refused with its first bytes and, where its name promised a format, with that. */
#include "harness.h"
#include "data_fixtures.h"

#include <unistd.h>

static char dir[] = "/tmp/djct_test_format_XXXXXX";
static char path_buf[600];
static const char *P(const char *name)
{
    snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, name);
    return path_buf;
}

static void put(const char *name, const void *bytes, size_t n)
{
    FILE *f = fopen(P(name), "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
}

static int detect(const char *name, djct_format *f) { return djct_format_detect(f, P(name)); }

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    int64_t counts[4] = {3, 1, 4, 1};
    char a[600], b[600];
    CHECK_OK(fx_write(P("real.djctd"), counts, 4, 0, 1));
    CHECK_OK(fx_write(P("real.h5"), counts, 4, 0, 1));
    djct_record r;
    fx_record(&r, counts, 4, 0, 1);
    CHECK_OK(djct_djcsa_write(P("real.djcsa"), &r.features[0], NULL));
    djct_record_clear(&r);

    djct_format f = DJCT_FORMAT_UNKNOWN;
    CHECK(detect("real.djctd", &f) == 0 && f == DJCT_FORMAT_DJCTD);
    CHECK(detect("real.h5", &f) == 0 && f == DJCT_FORMAT_H5);
    CHECK(detect("real.djcsa", &f) == 0 && f == DJCT_FORMAT_DJCSA);
    CHECK(!strcmp(djct_format_name(DJCT_FORMAT_H5), "h5") && !strcmp(djct_format_name(DJCT_FORMAT_UNKNOWN), "unknown"));
    /* an output's format by its name: nothing is read (none of these exist) */
    CHECK(djct_format_from_name("out/a.h5") == DJCT_FORMAT_H5 && djct_format_from_name("x.hdf5") == DJCT_FORMAT_H5 &&
          djct_format_from_name("p.djctd") == DJCT_FORMAT_DJCTD && djct_format_from_name("one.djcsa") == DJCT_FORMAT_DJCSA &&
          djct_format_from_name("p.h5.bak") == DJCT_FORMAT_UNKNOWN && djct_format_from_name("h5") == DJCT_FORMAT_UNKNOWN &&
          djct_format_from_name(NULL) == DJCT_FORMAT_UNKNOWN);

    /* renamed: the content decides, for the detector and for every reader that chooses by it */
    snprintf(a, sizeof(a), "%s", P("real.djctd"));
    snprintf(b, sizeof(b), "%s", P("djctd-named.h5"));
    CHECK(link(a, b) == 0);
    snprintf(a, sizeof(a), "%s", P("real.h5"));
    snprintf(b, sizeof(b), "%s", P("h5-named.djctd"));
    CHECK(link(a, b) == 0);
    CHECK(detect("djctd-named.h5", &f) == 0 && f == DJCT_FORMAT_DJCTD);
    CHECK(detect("h5-named.djctd", &f) == 0 && f == DJCT_FORMAT_H5);
    CHECK(djct_djcdata_format_of(P("djctd-named.h5")) == DJCT_FORMAT_DJCTD);
    CHECK(djct_h5_format_of(P("djctd-named.h5")) == DJCT_FORMAT_UNKNOWN);
    djct_dataset_options o = DJCT_DATASET_OPTIONS_INIT;
    o.batch_elements = 8;
    o.prefetch_depth = 0;
    djct_dataset *ds = NULL;
    char spec[1300];
    snprintf(a, sizeof(a), "%s", P("djctd-named.h5"));
    snprintf(spec, sizeof(spec), "%s,%s", a, P("h5-named.djctd"));
    CHECK_OK(djct_dataset_open(&ds, spec, &o));
    CHECK(djct_dataset_n_events(ds) == 8);
    djct_dataset_free(ds);

    /* not a format: the first bytes, and what the name promised */
    put("text.h5", "hello, world", 12);
    CHECK_ERR(detect("text.h5", &f), DJCT_EINVAL, "named like an HDF5 file but its first bytes (68 65 6c 6c 6f 2c 20 77)");
    CHECK(f == DJCT_FORMAT_UNKNOWN);
    put("text.bin", "abc", 3);
    CHECK_ERR(detect("text.bin", &f), DJCT_EINVAL, "not a .djctd, .djcsa or HDF5 file (first bytes 61 62 63)");
    put("empty.djctd", "", 0);
    CHECK_ERR(detect("empty.djctd", &f), DJCT_EINVAL, "empty");
    CHECK_ERR(detect("missing.djctd", &f), DJCT_EIO, "missing.djctd': cannot open");
    CHECK_ERR(djct_dataset_open(&ds, P("text.h5"), &o), DJCT_EINVAL, "dataset: file '");
    CHECK_ERR(djct_format_detect(NULL, P("real.h5")), DJCT_EINVAL, "out");

    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return harness_report();
}
