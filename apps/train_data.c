/* djct_train's data: --data and --val-data opened for this rank, or the embedded default set,
 * generated once (rank 0) into a cache directory that later runs reuse. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "train_int.h"

static int default_cache_dir(char *buf, size_t n, int64_t events, int64_t seed)
{
    const char *base = getenv("DJCT_CACHE");
    char tmp[2048];
    if (!base || !*base) {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(tmp, sizeof(tmp), "%s/djct", xdg);
        else if (home && *home)
            snprintf(tmp, sizeof(tmp), "%s/.cache/djct", home);
        else
            snprintf(tmp, sizeof(tmp), ".djct-cache");
        base = tmp;
    }
    return snprintf(buf, n, "%s/pointcloud-v1-e%" PRId64 "-s%" PRId64, base, events, seed) >= (int)n ? -1 : 0;
}

static void prepare_embedded_data(run *R)
{
    char dir[4096];
    if (default_cache_dir(dir, sizeof(dir), R->c.gen_events, 1))
        FAIL(R, "cache path too long; set DJCT_CACHE");
    int gen_rc = 0;
    if (R->rank == 0) {
        djct_gen_options go = DJCT_GEN_OPTIONS_INIT;
        go.events = R->c.gen_events;
        go.seed = 1;
        go.files = 4;
        int generated = 0;
        double g0 = app_now_s();
        printf("preparing the embedded dataset (%" PRId64 " synthetic point-cloud events) in %s\n", R->c.gen_events, dir);
        fflush(stdout);
        gen_rc = djct_gen_cached(dir, &go, &generated);
        if (gen_rc == 0 && generated)
            printf("generated in %.1f s (cached for later runs)\n", app_now_s() - g0);
        else if (gen_rc == 0)
            printf("using the cached copy\n");
        else
            fprintf(stderr, PROG ": rank 0: embedded dataset: %s\n", djct_last_error());
    }
    djct_comm_buffer gb = {&gen_rc, 1, DJCT_DTYPE_INT32, -1};
    if (djct_comm_broadcast(R->comm, &gb, 1, 0) || gen_rc)
        FAIL(R, "the embedded dataset could not be prepared in '%s'; set DJCT_CACHE to a writable place", dir);
    snprintf(R->train_spec, sizeof(R->train_spec), "%s/train", dir);
    if (!R->c.val_data)
        snprintf(R->val_spec, sizeof(R->val_spec), "%s/val", dir);
}

void open_data(run *R)
{
    app_resolve_decode_threads(&R->c.data_opts, R->c.threads, R->comm);
    const cfg *c = &R->c;
    if (!c->data)
        prepare_embedded_data(R);
    else
        snprintf(R->train_spec, sizeof(R->train_spec), "%s", c->data);
    if (c->val_data)
        snprintf(R->val_spec, sizeof(R->val_spec), "%s", c->val_data);

    djct_dataset_options dso = app_dataset_options(&c->data_opts, R->comm);
    dso.strict = c->strict;
    dso.seed = (uint64_t)c->seed;
    dso.shuffle = c->shuffle;
    if (djct_dataset_open(&R->train_ds, R->train_spec, &dso))
        FAIL(R, "--data '%s': %s", R->train_spec, djct_last_error());
    /* every rank read the same metadata: an empty set is seen alike */
    if (djct_dataset_n_events(R->train_ds) == 0)
        fail_alike(R, "--data '%s': no events in its %zu file%s; nothing to train on", R->train_spec,
                   djct_dataset_n_files(R->train_ds), djct_dataset_n_files(R->train_ds) == 1 ? "" : "s");
    if (R->val_spec[0]) {
        djct_dataset_options vo = dso;
        vo.shuffle = DJCT_SHUFFLE_NONE;
        if (djct_dataset_open(&R->val_ds, R->val_spec, &vo))
            FAIL(R, "--val-data '%s': %s", R->val_spec, djct_last_error());
        if (djct_dataset_n_events(R->val_ds) == 0)
            fail_alike(R, "--val-data '%s': no events in its %zu file%s; nothing to validate on (leave it out)",
                       R->val_spec, djct_dataset_n_files(R->val_ds), djct_dataset_n_files(R->val_ds) == 1 ? "" : "s");
    }
    R->steps_per_epoch = djct_dataset_steps(R->train_ds);
}
