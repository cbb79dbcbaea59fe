/* fileutil: atomic replacement of a file, whole-file reads (also of a file without a size, and
 * with a size limit), mkdir -p, rm -rf; errors name the path. */
#include "harness.h"
#include "util_int.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

int main(void)
{
    char run[] = "/tmp/djct_test_fileutil_XXXXXX";
    CHECK(mkdtemp(run) != NULL);
    void *data = NULL;
    size_t len = 0;

    /* atomic write replaces content whole, and leaves no temporary file behind */
    char f1[300];
    snprintf(f1, sizeof(f1), "%s/state.json", run);
    CHECK_OK(djct_write_file_atomic(f1, "{\"a\":1}", 7));
    CHECK_OK(djct_write_file_atomic(f1, "{}", 2));
    CHECK_OK(djct_read_file(&data, &len, f1));
    CHECK(len == 2 && !strcmp(data, "{}"));
    free(data);
    CHECK_OK(djct_write_atomic(f1, "xyz", 3, 0)); /* not durable: the same replacement */
    CHECK_OK(djct_read_file(&data, &len, f1));
    CHECK(len == 3 && !strcmp(data, "xyz"));
    free(data);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", run);
    CHECK(system(cmd) == 0);
    char nodir[300];
    snprintf(nodir, sizeof(nodir), "%s/no/such/dir/f", run);
    CHECK_ERR(djct_write_file_atomic(nodir, "x", 1), DJCT_EIO, "cannot create '");
    CHECK_ERR(djct_read_file(&data, &len, "/nonexistent/x"), DJCT_EIO, "cannot open '/nonexistent/x'");

    /* internal reads: a missing file may be fine; a size limit; a file the size does not describe */
    CHECK(djct_read_whole(&data, &len, "/nonexistent/x", 0, 1) == 1 && data == NULL);
    CHECK_ERR(djct_read_whole(&data, &len, f1, 2, 0), DJCT_EIO, "is larger than 2 bytes");
    CHECK_OK(djct_read_whole(&data, &len, "/proc/self/stat", 0, 0)); /* size 0 in stat, text inside */
    CHECK(len > 0 && strlen(data) == len);
    free(data);

    /* mkdir -p and rm -rf */
    char deep[300];
    snprintf(deep, sizeof(deep), "%s/a/b/c", run);
    CHECK_OK(djct_mkdirs(deep));
    CHECK_OK(djct_mkdirs(deep)); /* existing: fine */
    put(deep, "f", "x");
    CHECK_ERR(djct_mkdirs("/proc/djct-no/x"), DJCT_EIO, "cannot create directory '/proc/djct-no'");
    CHECK_OK(djct_remove_tree(run));
    struct stat st;
    CHECK(stat(run, &st) != 0);
    CHECK_OK(djct_remove_tree(run)); /* gone already: fine */
    return harness_report();
}
