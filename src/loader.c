/* The default loader: djct_dataset behind the trainer's loader interface. */
#include "djct/trainer.h"
#include "djct/error.h"
#include "djct_int.h"

#include <inttypes.h>
#include <stddef.h>

static int ds_begin(void *self, int64_t epoch, int64_t start, int64_t *n_steps)
{
    djct_dataset *ds = self;
    int rc = djct_dataset_seek(ds, epoch, start);
    if (rc)
        return rc;
    *n_steps = djct_dataset_steps(ds);
    return 0;
}

static int ds_next(void *self, const djct_record **batch, djct_batch_info *info)
{
    djct_dataset *ds = self;
    djct_batch *b = NULL;
    int rc = djct_dataset_next(ds, &b);
    if (rc)
        return rc;
    if (!b)
        return djct_error_set(DJCT_EINVAL, "dataset: epoch %" PRId64 " has no step %" PRId64
                              " (the plan and the trainer disagree)",
                              djct_dataset_epoch(ds), djct_dataset_position(ds));
    *batch = &b->record; /* record is the first member: release maps it back */
    info->n_events = b->n_events;
    info->n_elements = b->n_elements;
    return 0;
}

static void ds_release(void *self, const djct_record *batch)
{
    if (batch)
        djct_batch_release(self, (djct_batch *)((char *)batch - offsetof(djct_batch, record)));
}

static double ds_wait(void *self) { return djct_dataset_wait_seconds(self); }

static int ds_describe(void *self, const djct_record *batch, int64_t event, char *buf, size_t cap)
{
    const djct_batch *b = (const djct_batch *)((const char *)batch - offsetof(djct_batch, record));
    if (event >= b->n_events)
        return djct_error_set(DJCT_EINVAL, "dataset: event %" PRId64 " of a batch of %" PRId64, event, b->n_events);
    return event >= 0 ? djct_dataset_describe_events(self, b->event_ids + event, 1, buf, cap)
                      : djct_dataset_describe_events(self, b->event_ids, (size_t)b->n_events, buf, cap);
}

int djct_loader_from_dataset(djct_loader *out, djct_dataset *ds)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(ds);
    out->self = ds;
    out->begin_epoch = ds_begin;
    out->next = ds_next;
    out->release = ds_release;
    out->wait_seconds = ds_wait;
    out->destroy = NULL;
    out->describe = ds_describe;
    return 0;
}
