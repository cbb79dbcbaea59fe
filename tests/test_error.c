/* error module: codes, thread-local messages, prefixing, OOM without allocation. */
#include "harness.h"

#include <pthread.h>

static void *other_thread(void *arg)
{
    (void)arg;
    /* a fresh thread starts with no error, and its errors stay its own */
    int clean = djct_last_error()[0] == '\0' && djct_last_error_code() == DJCT_OK;
    djct_error_set(DJCT_EIO, "thread-local %d", 7);
    return clean ? (void *)1 : NULL;
}

int main(void)
{
    CHECK(djct_last_error() != NULL);
    CHECK(strcmp(djct_last_error(), "") == 0);
    CHECK(djct_last_error_code() == DJCT_OK);

    CHECK(djct_error_set(DJCT_EINVAL, "option --batch %d is negative", -3) == DJCT_EINVAL);
    CHECK(strcmp(djct_last_error(), "option --batch -3 is negative") == 0);
    CHECK(djct_last_error_code() == DJCT_EINVAL);

    CHECK(djct_error_prefix("file '%s'", "a.djctd") == DJCT_EINVAL);
    CHECK(strcmp(djct_last_error(), "file 'a.djctd': option --batch -3 is negative") == 0);

    pthread_t t;
    void *ret = NULL;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
    pthread_join(t, &ret);
    CHECK(ret == (void *)1);
    CHECK(strstr(djct_last_error(), "a.djctd") != NULL); /* untouched by the other thread */

    CHECK(djct_error_oom() == DJCT_ENOMEM);
    CHECK(strcmp(djct_last_error(), "out of memory") == 0);

    /* long messages are truncated, never overflow */
    char big[4000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    djct_error_set(DJCT_ERROR, "%s", big);
    CHECK(strlen(djct_last_error()) == 1023);
    djct_error_prefix("%s", big);
    CHECK(strlen(djct_last_error()) == 1023);

    djct_error_clear();
    CHECK(djct_last_error()[0] == '\0' && djct_last_error_code() == DJCT_OK);

    CHECK(strcmp(djct_error_name(DJCT_ETORCH), "ETORCH") == 0);
    CHECK(strcmp(djct_error_name(12345), "unknown") == 0);
    CHECK(strcmp(djct_version(), "0.1.0") == 0);
    CHECK(strstr(djct_build_features(), "libtorch") != NULL);
    return harness_report();
}
