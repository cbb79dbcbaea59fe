/* The trainer's creation: option checks, the agreement request, rank 0's parameters broadcast,
 * the gradient buffers and their bucket plan (bound to the model's stream on a GPU), the hook that
 * starts buckets during backward, the training controls; and the release of all of it. */
#include "djct/error.h"
#include "djct_int.h"
#include "trainer_int.h"
#include "util_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void djct_trainer_free(djct_trainer *t)
{
    if (!t)
        return;
    if (t->model) {
        djct_model_set_grad_ready_hook(t->model, NULL, NULL);
        if (t->stage)
            djct_model_drop_staged(t->model);
    }
    djct_comm_plan_free(t->plan);
    djct_comm_request_free(t->ag_req);
    djct_ctl_free(t->ctl);
    free(t->bufs);
    free(t->targets);
    free(t->run_dir);
    free(t->damaged);
    free(t->s_step.v);
    free(t->s_data.v);
    free(t->s_compute.v);
    free(t->s_comm.v);
    free(t);
}

int djct_trainer_create(djct_trainer **out, djct_model *model, djct_optimizer *opt, djct_comm *comm,
                        djct_loader *train, djct_loader *val, const djct_trainer_options *opts)
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(model);
    DJCT_CHECK_ARG(opt);
    DJCT_CHECK_ARG(comm);
    DJCT_CHECK_ARG(train);
    if (!opts || opts->version != 1) /* version 1 callers have no `controls` */
        DJCT_CHECK_VERSION(opts, DJCT_TRAINER_OPTIONS_VERSION, "djct_trainer_options");
    if (!train->begin_epoch || !train->next || !train->release)
        return djct_error_set(DJCT_EINVAL, "trainer: the training loader lacks begin_epoch/next/release");
    if (val && (!val->begin_epoch || !val->next || !val->release))
        return djct_error_set(DJCT_EINVAL, "trainer: the validation loader lacks begin_epoch/next/release");
    djct_trainer_options o = DJCT_TRAINER_OPTIONS_INIT;
    if (opts && opts->version == 1)
        memcpy(&o, opts, offsetof(djct_trainer_options, controls));
    else if (opts)
        o = *opts;
    if (o.weighting < DJCT_WEIGHT_EVENTS || o.weighting > DJCT_WEIGHT_NONE)
        return djct_error_set(DJCT_EINVAL, "trainer: weighting %d is not one of events(0), elements(1), none(2)",
                              o.weighting);
    if (o.epochs < 0 || o.max_steps < 0 || o.checkpoint_every_steps < 0 || o.checkpoint_every_minutes < 0)
        return djct_error_set(DJCT_EINVAL, "trainer: epochs, max_steps and checkpoint intervals must be >= 0");

    djct_trainer *t = calloc(1, sizeof(*t));
    if (!t)
        return djct_error_oom();
    int rc = 0;
    t->model = model;
    t->opt = opt;
    t->comm = comm;
    t->train = train;
    t->val = val;
    t->o = o;
    t->rank = djct_comm_rank(comm);
    t->size = djct_comm_size(comm);
    if ((rc = djct_comm_request_create(&t->ag_req, comm)))
        goto fail;
    if (o.run_dir && !(t->run_dir = strdup(o.run_dir))) {
        rc = djct_error_oom();
        goto fail;
    }
    t->o.run_dir = t->run_dir;
    if (t->o.log_every <= 0)
        t->o.log_every = 1;

    /* a model on a GPU: the communicator must be bound to that GPU (it reduces the slabs there) */
    t->device = djct_model_device_index(model);
    /* staging is what a GPU model needs; on the CPU it only adds a copy, but lets the tests run
     * the step-ahead logic where no GPU exists */
    const char *sb = getenv("DJCT_STAGE_BATCHES");
    t->stage = t->device >= 0 || (sb && !strcmp(sb, "1"));
    if (t->device >= 0 && djct_comm_device(comm) != t->device) {
        rc = djct_error_set(DJCT_EINVAL, "trainer: rank %d: the model is on cuda:%d but the communicator %s; create "
                            "the comm with device DJCT_COMM_DEVICE_AUTO and the model on djct_comm_device()",
                            t->rank, t->device, djct_comm_device(comm) < 0 ? "has no GPU" : "uses another GPU");
        goto fail;
    }
    /* on a GPU libtorch runs backward, and so the gradient-ready hook, on its own thread: the
     * staged MPI path then posts MPI calls from there while this thread waits in backward */
    if (t->device >= 0 && o.overlap && o.average && djct_comm_backend_in_use(comm) == DJCT_COMM_BACKEND_MPI &&
        djct_comm_mpi_thread_level() < DJCT_THREAD_SERIALIZED) {
        rc = djct_error_set(DJCT_EINVAL, "trainer: rank %d: a GPU model with overlap on the MPI backend reduces from "
                            "libtorch's backward thread; initialise MPI with DJCT_THREAD_SERIALIZED or more "
                            "(djct_comm_init_mpi), or set overlap 0", t->rank);
        goto fail;
    }
    /* every rank starts from rank 0's parameters */
    float *params = NULL;
    size_t nparams = 0;
    if ((rc = djct_model_params(model, &params, &nparams)) || (rc = djct_model_grads(model, &t->grads, &t->ngrads)))
        goto fail;
    djct_comm_buffer pb = {params, nparams, DJCT_DTYPE_FLOAT32, t->device};
    if ((rc = djct_comm_broadcast(comm, &pb, 1, 0)) || (rc = djct_comm_check_consistent(comm, &pb, 1, NULL)))
        goto fail;

    /* one buffer per parameter, in backward order: consecutive views of the gradient slab, so
     * every bucket reduces in place */
    t->nbufs = djct_model_n_params(model);
    if (t->nbufs == 0) {
        rc = djct_error_set(DJCT_EINVAL, "trainer: the model has no trainable parameters");
        goto fail;
    }
    if (!(t->bufs = calloc(t->nbufs, sizeof(*t->bufs)))) {
        rc = djct_error_oom();
        goto fail;
    }
    for (size_t i = 0; i < t->nbufs; i++) {
        size_t off = 0, cnt = 0;
        if ((rc = djct_model_param_info(model, i, NULL, &off, &cnt)))
            goto fail;
        t->bufs[i] = (djct_comm_buffer){t->grads + off, cnt, DJCT_DTYPE_FLOAT32, t->device};
    }
    djct_comm_plan_options po = DJCT_COMM_PLAN_OPTIONS_INIT;
    po.bucket_bytes = o.bucket_bytes;
    if ((rc = djct_comm_plan_create(&t->plan, comm, t->bufs, t->nbufs, &po)))
        goto fail;
    if (t->device >= 0) {
        /* buckets wait for libtorch's stream (the backward kernels), and the optimizer's work,
         * queued on that stream, waits for the reductions */
        void *stream = NULL;
        if ((rc = djct_model_cuda_stream(model, &stream)) || (rc = djct_comm_plan_set_stream(t->plan, stream)))
            goto fail;
    }
    if (o.overlap && o.average && (rc = djct_model_set_grad_ready_hook(model, tr_on_grad_ready, t)))
        goto fail;
    /* accumulation's micro-batches take the plain host path; a staged (GPU) step fetches its batch
     * one step ahead, and the two would take batches out of order */
    if (t->stage && o.controls && o.controls->accumulate > 1) {
        rc = djct_error_set(DJCT_ENOTSUP, "trainer: rank %d: gradient accumulation (accumulate %d) is not supported "
                            "for a model on a GPU yet; use accumulate 1 with a larger batch, or --device cpu",
                            t->rank, o.controls->accumulate);
        goto fail;
    }
    if ((rc = djct_ctl_create(&t->ctl, o.controls, model, opt, comm, t->run_dir, val && o.validate)))
        goto fail;
    t->o.controls = NULL; /* copied into t->ctl */
    t->last_ckpt_time = djct_now_s();
    t->stop_reason = DJCT_STOP_DONE;
    t->last_val_loss = NAN;
    t->last_loss = NAN; /* no step taken: no loss */
    t->bad_step = -1;
    *out = t;
    return 0;
fail:
    djct_trainer_free(t);
    return rc;
}
