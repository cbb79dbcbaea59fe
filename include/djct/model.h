/* The libtorch bridge: TorchScript models, their parameters and gradients as flat buffers, and
 * the LoggingModule/LossModule convention (docs/models.md); optimizers are in djct/optim.h. Plain C: no C++ or
 * libtorch type crosses this header. In a build without libtorch every function returns
 * DJCT_ENOTSUP (the free functions do nothing).
 *
 * Invariant: a model's trainable float32 parameters live in one flat slab and their gradients in
 * another, in backward order (the last registered parameter first); both stay at the same address
 * for the model's lifetime, so the gradient averaging can reduce the gradient slab in place. */
#ifndef DJCT_MODEL_H
#define DJCT_MODEL_H

#include "common.h"
#include "array.h"

DJCT_BEGIN_DECLS

/* the bridge's functions never throw: C++ callers may rely on it */
#ifndef DJCT_NOEXCEPT
#ifdef __cplusplus
#define DJCT_NOEXCEPT noexcept
#else
#define DJCT_NOEXCEPT
#endif
#endif

typedef struct djct_model djct_model;         /* a loaded or built-in TorchScript module */

typedef enum { DJCT_DEVICE_CPU = 0, DJCT_DEVICE_CUDA = 1 } djct_device_type;

/** Options of djct_model_load() and djct_model_builtin(). The size fields matter only to
 *  built-in models; 0 picks the model's default (see djct_model_builtin()). */
typedef struct {
    unsigned int version;     /* always first; filled in by the _INIT macro */
    int          device_type; /* DJCT_DEVICE_CPU or DJCT_DEVICE_CUDA (explicit; no fallback) */
    int          device_index;/* CUDA ordinal; ignored on CPU */
    int64_t      n_inputs;    /* mlp: flat input size (784); pointcloud: features per point (8) */
    int64_t      hidden;      /* hidden width (mlp 256, pointcloud 64) */
    int          n_layers;    /* hidden layers (mlp 2; pointcloud: per-point layers, 2) */
    int64_t      n_classes;   /* classes of the classification output (mlp 10, pointcloud 2) */
} djct_model_options;
#define DJCT_MODEL_OPTIONS_VERSION 1
#define DJCT_MODEL_OPTIONS_INIT { DJCT_MODEL_OPTIONS_VERSION, DJCT_DEVICE_CPU, 0, 0, 0, 0, 0 }

/* ---- process-wide settings ------------------------------------------------------------------ */

/** Seed libtorch's generators (CPU and, when present, CUDA), like torch.manual_seed(). */
DJCT_API int djct_torch_seed(uint64_t seed) DJCT_NOEXCEPT;
/** Set libtorch's intra-op thread count (at::set_num_threads) and OpenBLAS's pool to match
 *  (djct_blas_set_threads); n >= 1. */
DJCT_API int djct_torch_set_num_threads(int n) DJCT_NOEXCEPT;
/** Process-wide: whether TorchScript's graph executor optimises the graphs it runs (profiling runs,
 *  differentiable subgraphs with symbolic gradients, fusion); libtorch's default is on. Off, graphs
 *  run through the plain interpreter and autograd records each operation. On CPU, where libtorch
 *  1.13 fuses nothing by default, off is faster (the profiling runs and symbolic gradients cost
 *  more than they save); djct_train's --jit-optimize auto turns it off on CPU.
 *  Call before the first forward. */
DJCT_API int djct_torch_set_jit_optimize(int on) DJCT_NOEXCEPT;
/** Number of CUDA devices this libtorch can use into *count (0 on a CPU-only build). */
DJCT_API int djct_torch_cuda_device_count(int *count) DJCT_NOEXCEPT;
/** Whether models can train on CUDA in this build on this machine: *count usable devices, and
 *  when 0 the reason in `why` (cut to `why_cap`): "this libtorch has no CUDA, a CPU-only build",
 *  "libtorch finds no usable GPU (...)", or that djct itself was built without CUDA. */
DJCT_API int djct_torch_cuda_available(int *count, char *why, size_t why_cap) DJCT_NOEXCEPT;

/* ---- models ---------------------------------------------------------------------------------- */

/** Load a TorchScript module (.pt) whose forward is
 *  `forward(self, features: List[Tensor], targets: Optional[List[Tensor]])`, move it to the
 *  device, put its trainable parameters into the flat slab and give every one a zero gradient.
 *  LoggingModules without a name get `LoggingModule1`, `LoggingModule2`, ... (module order).
 *  The model starts in training mode. On success *out is yours; release it with djct_model_free().
 *  @return 0; DJCT_EIO (missing file), DJCT_ETORCH (not TorchScript, libtorch error), DJCT_EINVAL
 *  (wrong forward signature, non-float32 trainable parameter), DJCT_ENOTSUP (CUDA unavailable). */
DJCT_API int djct_model_load(djct_model **out, const char *path, const djct_model_options *opts) DJCT_NOEXCEPT;

/** Build a built-in model by name: "mlp" (features [x: float32 (B, n_inputs) or (B, ...)],
 *  targets [label (B) int32/int64/float32]) or "pointcloud" (features [points float32
 *  (N, n_inputs), row splits int64 (B+1)], targets [label (B), target float32 (B)]).
 *  Documented in docs/models.md. Parameters are drawn from libtorch's generator (see
 *  djct_torch_seed()). `opts` may be NULL for defaults. Release with djct_model_free(). */
DJCT_API int djct_model_builtin(djct_model **out, const char *name, const djct_model_options *opts) DJCT_NOEXCEPT;

/** Free the model (NULL is fine). Optimizers created on it stay valid but update nothing seen. */
DJCT_API void djct_model_free(djct_model *m) DJCT_NOEXCEPT;

/** Save the module as TorchScript (torch.jit.load reads it), with its current parameters and
 *  switch states; recorded losses are cleared first. */
DJCT_API int djct_model_save(djct_model *m, const char *path) DJCT_NOEXCEPT;

/** Training (on != 0) or evaluation mode (module.train()/eval()). In evaluation mode forward
 *  runs with autograd disabled (as under torch.no_grad()) and djct_model_backward() refuses. */
DJCT_API int djct_model_train(djct_model *m, int on) DJCT_NOEXCEPT;

/** Run forward(features, targets). Each djct_array becomes one tensor, or two for a ragged array
 *  (values (total, inner...) then row splits int64 (rows+1)), in order, wrapping the caller's
 *  memory without a copy on CPU (copied to the device on CUDA). `targets` NULL passes None.
 *  The arrays' memory must stay valid and unchanged until djct_model_backward() returned or the
 *  next forward. Recorded losses are cleared first (as djct_model_clear_all_losses()).
 *  Errors name the model file and the libtorch message (one line). */
DJCT_API int djct_model_forward(djct_model *m, const djct_array *features, size_t n_features,
                                const djct_array *targets, size_t n_targets) DJCT_NOEXCEPT;

/** Stage a batch for a later djct_model_forward_staged(): the arrays (as djct_model_forward()
 *  takes them) are copied now, so their memory may be reused as soon as this returns. On a CUDA
 *  model the copy goes into one of two pinned host buffers (waiting only for the copy that last
 *  used it) and from there to the device with non-blocking copies on the model's own copy stream,
 *  after the work already queued on libtorch's current stream; the forward that uses the batch
 *  waits for them on the device. Stage batch k+1 before computing step k and the copy overlaps
 *  step k. On a CPU model the arrays are copied into tensors (djct_model_forward() wraps without a
 *  copy: prefer it there). Batches are used oldest first. */
DJCT_API int djct_model_stage(djct_model *m, const djct_array *features, size_t n_features,
                              const djct_array *targets, size_t n_targets) DJCT_NOEXCEPT;
/** Run forward on the oldest staged batch (as djct_model_forward() otherwise).
 *  @return 0; DJCT_EINVAL when nothing is staged. */
DJCT_API int djct_model_forward_staged(djct_model *m) DJCT_NOEXCEPT;
/** Number of staged batches not yet used. */
DJCT_API size_t djct_model_n_staged(const djct_model *m) DJCT_NOEXCEPT;
/** Forget the staged batches not yet used (e.g. the one staged ahead when training stops). */
DJCT_API int djct_model_drop_staged(djct_model *m) DJCT_NOEXCEPT;

/** Number of outputs of the last forward: 1 for a Tensor, n for a tuple/list of tensors, 0 for
 *  None. */
DJCT_API size_t djct_model_n_outputs(const djct_model *m) DJCT_NOEXCEPT;

/** Output i of the last forward as float32: *data (borrowed, valid until the next forward or
 *  free), its shape into shape[DJCT_MAX_DIMS] and *ndim. */
DJCT_API int djct_model_output(djct_model *m, size_t i, const float **data, int64_t *shape, int *ndim) DJCT_NOEXCEPT;

/** Sum of the losses recorded by all LossModules since the last forward into *value.
 *  DJCT_EINVAL "losses are active but none was recorded" when a LossModule is active and nothing
 *  was recorded (e.g. forward ran without targets), or when every loss is switched off. */
DJCT_API int djct_model_sum_all_losses(djct_model *m, double *value) DJCT_NOEXCEPT;

/** Backpropagate the sum of recorded losses (as djct_model_sum_all_losses(); *loss may be NULL),
 *  accumulating into the gradient slab. Losses are cleared afterwards. */
DJCT_API int djct_model_backward(djct_model *m, double *loss) DJCT_NOEXCEPT;

/** Set the whole gradient slab to zero (gradients stay defined, at the same address). */
DJCT_API int djct_model_zero_grad(djct_model *m) DJCT_NOEXCEPT;

/** Forget recorded losses of every LossModule. */
DJCT_API int djct_model_clear_all_losses(djct_model *m) DJCT_NOEXCEPT;

/** The parameter slab: *ptr (borrowed, host or device memory per the model's device) and its
 *  float32 element count. */
DJCT_API int djct_model_params(djct_model *m, float **ptr, size_t *count) DJCT_NOEXCEPT;
/** The gradient slab, laid out like the parameter slab. */
DJCT_API int djct_model_grads(djct_model *m, float **ptr, size_t *count) DJCT_NOEXCEPT;
/** The CUDA device index the model lives on, or -1 on the CPU. Cannot fail (NULL: -1). */
DJCT_API int djct_model_device_index(const djct_model *m) DJCT_NOEXCEPT;
/** Whether every gradient in the slab is finite, computed where the slab lives (on a GPU one
 *  flag is copied back), into *finite (1 or 0). */
DJCT_API int djct_model_grads_finite(djct_model *m, int *finite) DJCT_NOEXCEPT;
/** Copy src's parameter slab into dst's (the same layout; any devices): resuming from a saved
 *  model. @return 0; DJCT_EINVAL when the slabs differ in size. */
DJCT_API int djct_model_copy_params(djct_model *dst, djct_model *src) DJCT_NOEXCEPT;
/** libtorch's current CUDA stream of the model's device on the calling thread (a cudaStream_t as
 *  void *): the stream its forward, backward and optimizer work goes to, for
 *  djct_comm_plan_set_stream(). libtorch's default stream (handle 0) comes as cudaStreamLegacy,
 *  so the result is never NULL for a CUDA model; *stream is NULL for a CPU model.
 *  @return 0; DJCT_ENOTSUP when this build cannot reach libtorch's streams. */
DJCT_API int djct_model_cuda_stream(djct_model *m, void **stream) DJCT_NOEXCEPT;
/** Number of trainable parameters (tensors) in the slab. */
DJCT_API size_t djct_model_n_params(const djct_model *m) DJCT_NOEXCEPT;
/** Parameter i in backward order: its qualified name (borrowed), offset and element count in
 *  the slabs. Any output may be NULL. */
DJCT_API int djct_model_param_info(const djct_model *m, size_t i, const char **name,
                                   size_t *offset, size_t *count) DJCT_NOEXCEPT;

/** Called from inside djct_model_backward(), on the thread running autograd, when parameter
 *  `index` (backward order) has its gradient accumulated for this backward. Must not call back
 *  into the model. */
typedef void (*djct_grad_ready_fn)(void *user, size_t index);
/** Install (fn non-NULL) or remove (fn NULL) the gradient-ready callback. */
DJCT_API int djct_model_set_grad_ready_hook(djct_model *m, djct_grad_ready_fn fn, void *user) DJCT_NOEXCEPT;

/* ---- training controls (used by the trainer, include/djct/train_controls.h) ------------------ */

/** Arithmetic of the forward pass. Parameters, gradients and optimizer state stay float32. */
typedef enum {
    DJCT_PRECISION_FP32 = 0, /* no autocast */
    DJCT_PRECISION_BF16 = 1, /* forward under autocast to bfloat16 (CPU and CUDA) */
    DJCT_PRECISION_FP16 = 2  /* forward under autocast to float16 (CUDA only: libtorch's CPU
                                autocast takes bfloat16 alone); needs loss scaling */
} djct_precision;
/** Run later forwards (training and evaluation) under autocast to `precision` (djct_precision),
 *  like torch.autocast. @return 0; DJCT_EINVAL (unknown value); DJCT_ENOTSUP for fp16 on CPU. */
DJCT_API int djct_model_set_precision(djct_model *m, int precision) DJCT_NOEXCEPT;
/** djct_model_backward() backpropagates loss * scale (1 by default; finite, > 0): fp16 loss
 *  scaling and weighted gradient accumulation. The loss it reports stays unscaled. */
DJCT_API int djct_model_set_loss_scale(djct_model *m, double scale) DJCT_NOEXCEPT;
/** Multiply the whole gradient slab by `factor` in place (host or device). */
DJCT_API int djct_model_scale_grads(djct_model *m, double factor) DJCT_NOEXCEPT;
/** The L2 norm of the whole gradient slab (summed in double) into *norm; when max_norm > 0 and
 *  the norm is finite and larger, scale the slab by max_norm / (norm + 1e-6), as
 *  torch.nn.utils.clip_grad_norm_. */
DJCT_API int djct_model_clip_grad_norm(djct_model *m, double max_norm, double *norm) DJCT_NOEXCEPT;
/** Mark parameter i (backward order) trainable (on != 0, the default) or frozen. A frozen
 *  parameter still gets its gradient computed (so the gradient-ready hooks keep firing), but
 *  djct_model_hold_frozen() zeroes it and djct_model_restore_frozen() undoes any update. */
DJCT_API int djct_model_set_trainable(djct_model *m, size_t i, int on) DJCT_NOEXCEPT;
/** 1 when parameter i is trainable, 0 when frozen or out of range. */
DJCT_API int djct_model_is_trainable(const djct_model *m, size_t i) DJCT_NOEXCEPT;
/** Before an optimizer step: zero the frozen parameters' gradients and keep a copy of their
 *  values. */
DJCT_API int djct_model_hold_frozen(djct_model *m) DJCT_NOEXCEPT;
/** After the step: write the kept values back, so frozen parameters stay bit-identical whatever
 *  the optimizer does (weight decay, momentum). */
DJCT_API int djct_model_restore_frozen(djct_model *m) DJCT_NOEXCEPT;
/** Freeze every parameter whose qualified name (djct_model_param_info) matches one of the
 *  `,`-separated globs of `patterns` (fnmatch: `*`, `?`, `[...]`; djctools call-style models
 *  exported by djct.export name theirs `model.<...>`); nothing is frozen unless every glob
 *  matches. *n_frozen (may be NULL) receives how many parameters are frozen in all.
 *  @return 0; DJCT_EINVAL naming a pattern that matches no parameter and listing some names
 *  (src/model_freeze.c). */
DJCT_API int djct_model_freeze(djct_model *m, const char *patterns, size_t *n_frozen) DJCT_NOEXCEPT;

/* ---- the LoggingModule / LossModule convention (docs/models.md) ------------------------------ */

/** Switch logging of every LoggingModule (LossModules included). */
DJCT_API int djct_model_switch_all_logging(djct_model *m, int on) DJCT_NOEXCEPT;
/** Switch loss computation of every LossModule. */
DJCT_API int djct_model_switch_all_losses(djct_model *m, int on) DJCT_NOEXCEPT;
/** Switch the module named `name` (a LoggingModule name or a submodule path such as
 *  "head.cls") and every LoggingModule nested inside it: logging_on / loss_on are 1 (on),
 *  0 (off) or -1 (leave). DJCT_EINVAL naming the known modules when nothing matches. */
DJCT_API int djct_model_switch(djct_model *m, const char *name, int logging_on, int loss_on) DJCT_NOEXCEPT;
/** Number of LoggingModules (LossModules included) in module order. */
DJCT_API size_t djct_model_n_logging_modules(const djct_model *m) DJCT_NOEXCEPT;
/** LoggingModule i: its name (borrowed), whether logging is on, whether it is a LossModule and
 *  whether its loss is on (0 for a plain LoggingModule). Any output may be NULL. */
DJCT_API int djct_model_logging_module(const djct_model *m, size_t i, const char **name,
                                       int *logging_on, int *is_loss, int *loss_on) DJCT_NOEXCEPT;

/** What djct_model_switch_matching() switches. */
typedef enum {
    DJCT_SWITCH_LOGGING = 0, /* logging_active of LoggingModules (LossModules included) */
    DJCT_SWITCH_LOSS    = 1  /* loss_active of LossModules */
} djct_switch_kind;

/** Switch on (on != 0) or off every LoggingModule (kind DJCT_SWITCH_LOGGING; LossModules are
 *  LoggingModules too) or every LossModule (DJCT_SWITCH_LOSS) whose name matches `pattern`: a
 *  name as djct_model_logging_module() gives it (auto-assigned `LoggingModule<k>` included) or a
 *  glob (fnmatch: `*`, `?`, `[...]`). Each matching module is switched with the LoggingModules
 *  nested in it (as djct_model_switch()). *n_matched (may be NULL) receives how many names
 *  matched. @return 0; DJCT_EINVAL "no LossModule matches 'x'; LossModules: a, b" when none
 *  does (src/model_switch.c; DJCT_ENOTSUP without libtorch). */
DJCT_API int djct_model_switch_matching(djct_model *m, int kind, const char *pattern, int on,
                                        size_t *n_matched) DJCT_NOEXCEPT;
/** Apply a switch list "NAME=on|off[,NAME=on|off...]" (NAME a name or glob, as above) in order,
 *  so a later entry wins for the modules it matches; an entry that is malformed or matches no
 *  module switches nothing of the list.
 *  @return 0; DJCT_EINVAL naming the entry that is malformed or matches nothing. */
DJCT_API int djct_model_switch_list(djct_model *m, int kind, const char *list) DJCT_NOEXCEPT;
/** Check only the syntax of such a list (no model needed: for option parsing).
 *  @return 0, or DJCT_EINVAL naming the malformed entry. */
DJCT_API int djct_model_switch_list_check(int kind, const char *list) DJCT_NOEXCEPT;
/** One line describing every LoggingModule's switches in module order into buf (cut to n):
 *  "classification (loss on, logging on), metrics (logging off)". @return 0, or DJCT_EINVAL
 *  when buf is too small. */
DJCT_API int djct_model_describe_switches(const djct_model *m, char *buf, size_t n) DJCT_NOEXCEPT;

/** Receives one metric; `name` is "<module name>_<metric>". Return non-zero to stop. */
typedef int (*djct_metric_fn)(void *user, const char *name, double value);
/** Hand every recorded metric to fn (module order, then metric order) and clear them all. */
DJCT_API int djct_model_collect_metrics(djct_model *m, djct_metric_fn fn, void *user) DJCT_NOEXCEPT;

DJCT_END_DECLS

#endif /* DJCT_MODEL_H */
