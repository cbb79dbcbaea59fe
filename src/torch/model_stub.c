/* Build without libtorch: every entry of djct/model.h reports DJCT_ENOTSUP (free functions do
 * nothing), so WITH_TORCH=0 links and callers get a clear message. Generated from the header. */
#include <stdio.h>

#include "djct/error.h"
#include "djct/model.h"
#include "djct/optim.h"

static int notsup(const char *fn)
{
    return djct_error_set(DJCT_ENOTSUP, "%s: this djct was built without libtorch (WITH_TORCH=0 or libtorch not found)", fn);
}

int djct_torch_seed(uint64_t seed)
{
    return notsup(__func__);
}

int djct_torch_set_num_threads(int n)
{
    return notsup(__func__);
}

int djct_torch_set_jit_optimize(int on)
{
    return notsup(__func__);
}

int djct_torch_cuda_device_count(int *count)
{
    return notsup(__func__);
}

int djct_torch_cuda_available(int *count, char *why, size_t why_cap)
{
    if (count)
        *count = 0;
    if (why && why_cap)
        snprintf(why, why_cap, "this djct was built without libtorch");
    return 0;
}

int djct_model_device_index(const djct_model *m)
{
    return -1;
}

int djct_model_grads_finite(djct_model *m, int *finite)
{
    return notsup(__func__);
}

int djct_model_copy_params(djct_model *dst, djct_model *src)
{
    return notsup(__func__);
}

int djct_model_cuda_stream(djct_model *m, void **stream)
{
    return notsup(__func__);
}

int djct_model_stage(djct_model *m, const djct_array *features, size_t n_features, const djct_array *targets,
                     size_t n_targets)
{
    return notsup(__func__);
}

int djct_model_forward_staged(djct_model *m)
{
    return notsup(__func__);
}

size_t djct_model_n_staged(const djct_model *m)
{
    return 0;
}

int djct_model_drop_staged(djct_model *m)
{
    return notsup(__func__);
}

int djct_model_load(djct_model **out, const char *path, const djct_model_options *opts)
{
    return notsup(__func__);
}

int djct_model_builtin(djct_model **out, const char *name, const djct_model_options *opts)
{
    return notsup(__func__);
}

void djct_model_free(djct_model *m)
{
    (void)0;
}

int djct_model_save(djct_model *m, const char *path)
{
    return notsup(__func__);
}

int djct_model_train(djct_model *m, int on)
{
    return notsup(__func__);
}

int djct_model_forward(djct_model *m, const djct_array *features, size_t n_features, const djct_array *targets, size_t n_targets)
{
    return notsup(__func__);
}

size_t djct_model_n_outputs(const djct_model *m)
{
    return 0;
}

int djct_model_output(djct_model *m, size_t i, const float **data, int64_t *shape, int *ndim)
{
    return notsup(__func__);
}

int djct_model_sum_all_losses(djct_model *m, double *value)
{
    return notsup(__func__);
}

int djct_model_backward(djct_model *m, double *loss)
{
    return notsup(__func__);
}

int djct_model_zero_grad(djct_model *m)
{
    return notsup(__func__);
}

int djct_model_clear_all_losses(djct_model *m)
{
    return notsup(__func__);
}

int djct_model_params(djct_model *m, float **ptr, size_t *count)
{
    return notsup(__func__);
}

int djct_model_grads(djct_model *m, float **ptr, size_t *count)
{
    return notsup(__func__);
}

size_t djct_model_n_params(const djct_model *m)
{
    return 0;
}

int djct_model_param_info(const djct_model *m, size_t i, const char **name, size_t *offset, size_t *count)
{
    return notsup(__func__);
}

int djct_model_set_grad_ready_hook(djct_model *m, djct_grad_ready_fn fn, void *user)
{
    return notsup(__func__);
}

int djct_model_switch_all_logging(djct_model *m, int on)
{
    return notsup(__func__);
}

int djct_model_switch_all_losses(djct_model *m, int on)
{
    return notsup(__func__);
}

int djct_model_switch(djct_model *m, const char *name, int logging_on, int loss_on)
{
    return notsup(__func__);
}

size_t djct_model_n_logging_modules(const djct_model *m)
{
    return 0;
}

int djct_model_logging_module(const djct_model *m, size_t i, const char **name, int *logging_on, int *is_loss, int *loss_on)
{
    return notsup(__func__);
}

int djct_model_collect_metrics(djct_model *m, djct_metric_fn fn, void *user)
{
    return notsup(__func__);
}

int djct_optimizer_create(djct_optimizer **out, djct_model *m, const djct_optimizer_options *opts)
{
    return notsup(__func__);
}

int djct_optimizer_step(djct_optimizer *o)
{
    return notsup(__func__);
}

double djct_optimizer_lr(const djct_optimizer *o)
{
    return 0.0;
}

int64_t djct_optimizer_steps(const djct_optimizer *o)
{
    return 0;
}

int djct_optimizer_save(djct_optimizer *o, const char *path)
{
    return notsup(__func__);
}

int djct_optimizer_save_buffer(djct_optimizer *o, void **buf, size_t *len)
{
    return notsup(__func__);
}

int djct_optimizer_load(djct_optimizer *o, const char *path)
{
    return notsup(__func__);
}

int djct_optimizer_load_buffer(djct_optimizer *o, const void *buf, size_t len)
{
    return notsup(__func__);
}

void djct_optimizer_free(djct_optimizer *o)
{
    (void)0;
}

int djct_model_set_precision(djct_model *m, int precision)
{
    return notsup(__func__);
}

int djct_model_set_loss_scale(djct_model *m, double scale)
{
    return notsup(__func__);
}

int djct_model_scale_grads(djct_model *m, double factor)
{
    return notsup(__func__);
}

int djct_model_clip_grad_norm(djct_model *m, double max_norm, double *norm)
{
    return notsup(__func__);
}

int djct_model_set_trainable(djct_model *m, size_t i, int on)
{
    return notsup(__func__);
}

int djct_model_is_trainable(const djct_model *m, size_t i)
{
    return 0;
}

int djct_model_hold_frozen(djct_model *m)
{
    return notsup(__func__);
}

int djct_model_restore_frozen(djct_model *m)
{
    return notsup(__func__);
}

int djct_optimizer_set_lr_scale(djct_optimizer *o, double scale)
{
    return notsup(__func__);
}

double djct_optimizer_lr_scale(const djct_optimizer *o)
{
    return 0.0;
}
