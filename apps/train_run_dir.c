/* djct_train's run id and run directory, the same on every rank: rank 0 decides and broadcasts
 * (--run-id, else $WANDB_RUN_ID, else the one stored in --run-dir, else random; --run-dir, else
 * runs/<run id>) and writes the id into the directory for the next job of the run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_int.h"

/* --run-id (else $WANDB_RUN_ID: the option's default), else the one stored in --run-dir, else random */
static void decide_run_id(const cfg *c, char *run_id, size_t n)
{
    run_id[0] = '\0';
    if (c->run_id)
        snprintf(run_id, n, "%s", c->run_id);
    else if (c->run_dir) {
        char p[4200];
        void *d = NULL;
        snprintf(p, sizeof(p), "%s/run_id", c->run_dir);
        if (djct_read_file(&d, NULL, p) == 0) {
            snprintf(run_id, n, "%s", (char *)d);
            run_id[strcspn(run_id, "\r\n")] = '\0';
            free(d);
        }
    }
    if (!run_id[0])
        djct_log_new_run_id(run_id);
}

void choose_run(run *R)
{
    if (R->rank == 0) {
        decide_run_id(&R->c, R->run_id, sizeof(R->run_id));
        if (R->c.run_dir)
            snprintf(R->run_dir, sizeof(R->run_dir), "%s", R->c.run_dir);
        else
            snprintf(R->run_dir, sizeof(R->run_dir), "runs/%s", R->run_id);
    }
    djct_comm_buffer idb[2] = {{R->run_id, sizeof(R->run_id) / 4, DJCT_DTYPE_INT32, -1},
                               {R->run_dir, sizeof(R->run_dir) / 4, DJCT_DTYPE_INT32, -1}};
    if (djct_comm_broadcast(R->comm, idb, 2, 0))
        FAIL(R, "%s", djct_last_error());
    if (R->rank == 0) {
        if (djct_mkdirs(R->run_dir))
            FAIL(R, "run directory: %s; pass a writable --run-dir", djct_last_error());
        char p[4200];
        snprintf(p, sizeof(p), "%s/run_id", R->run_dir);
        djct_write_file_atomic(p, R->run_id, strlen(R->run_id));
    }
}
