/* Internals of the libtorch bridge shared by the src/torch C++ files (C++ only; never included from C).
 * The model struct, the one exception guard (STYLE "The C/C++ bridge") and the convention's
 * attribute names, which are defined here once (docs/models.md, python/djct/__init__.py). */
#ifndef DJCT_TORCH_MODEL_INT_HPP
#define DJCT_TORCH_MODEL_INT_HPP

#include <torch/script.h>

#include <deque>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "djct/error.h"
#include "djct/model.h"
#include "djct/optim.h"

/* ---- the convention: attribute names, defined once -------------------------------------------- */
#define DJCT_ATTR_NAME    "_djct_name"    /* str: the LoggingModule's name (metric prefix) */
#define DJCT_ATTR_LOGGING "logging_active" /* bool */
#define DJCT_ATTR_METRICS "_djct_metrics" /* Dict[str, Tensor]: recorded metrics */
#define DJCT_ATTR_LOSS    "loss_active"    /* bool: only LossModules have it */
#define DJCT_ATTR_LOSSES  "_djct_losses"  /* List[Tensor]: recorded losses */

/* libtorch messages can span lines (TorchScript tracebacks): keep the line that says what went
 * wrong, so every djct message stays one line. */
std::string djct_torch_one_line(const char *what);

template <class F> static int guard(F &&body) noexcept
{
    try {
        return body();
    } catch (const c10::Error &e) {
        return djct_error_set(DJCT_ETORCH, "libtorch: %s",
                              djct_torch_one_line(e.what_without_backtrace()).c_str());
    } catch (const std::bad_alloc &) {
        return djct_error_oom();
    } catch (const std::exception &e) {
        return djct_error_set(DJCT_ETORCH, "%s", djct_torch_one_line(e.what()).c_str());
    } catch (...) {
        return djct_error_set(DJCT_ETORCH, "unknown C++ exception");
    }
}

/* a LoggingModule found by walking named_modules(), with its attribute slots resolved once */
struct djct_logmod {
    c10::intrusive_ptr<c10::ivalue::Object> obj;
    std::string path;     /* qualified submodule name ("" for the root) */
    std::string name;     /* value of _djct_name */
    size_t slot_logging, slot_metrics;
    bool is_loss;
    size_t slot_loss, slot_losses;
};

struct djct_hook_state {
    djct_grad_ready_fn fn = nullptr;
    void *user = nullptr;
};

/* a batch staged ahead of its forward (src/torch/device.cpp): its tensors on the model's device
 * and the event after their copies */
struct djct_staged {
    std::vector<torch::Tensor> feats, tgts;
    bool has_targets = false;
    void *copied = nullptr; /* cudaEvent_t (CUDA models), borrowed from the pinned slot */
};

/* the staging of a CUDA model: pinned host slots (used in turn), the copy stream and events */
struct djct_stager {
    void *stream = nullptr;         /* cudaStream_t, non-blocking, the model's own */
    void *slot[2] = {nullptr, nullptr};
    size_t cap[2] = {0, 0};
    void *slot_done[2] = {nullptr, nullptr}; /* cudaEvent_t: the last copy that read the slot */
    void *mark = nullptr;           /* cudaEvent_t on the compute stream before a batch's copies */
    int next = 0;
};

struct djct_model {
    torch::jit::Module mod;
    std::string label;                   /* the file, or "builtin:<name>", for messages */
    torch::Device device{torch::kCPU};
    bool training = true;
    torch::Tensor flat, flatgrad;        /* the slabs (1-D float32) */
    std::vector<torch::Tensor> params;   /* backward order; views into flat */
    std::vector<std::string> names;
    std::vector<size_t> offsets, counts;
    std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
    std::shared_ptr<djct_hook_state> hook = std::make_shared<djct_hook_state>();
    std::vector<djct_logmod> logmods;
    std::vector<std::string> module_paths;
    std::vector<torch::Tensor> outputs;  /* last forward, detached */
    std::vector<torch::Tensor> outputs_f32;
    torch::Tensor loss;                  /* last sum_all_losses */
    std::deque<djct_staged> staged;      /* djct_model_stage, oldest first */
    djct_stager stager;
    /* training controls (djct/train_controls.h): autocast of forward, the factor backward
       multiplies the loss by, and the frozen parameters (indices in backward order) with a copy
       of their values kept across an optimizer step */
    int precision = DJCT_PRECISION_FP32;
    double loss_scale = 1.0;
    std::vector<size_t> frozen;
    std::vector<torch::Tensor> frozen_keep;
};

/* the memory of one tensor of a forward's input: the caller's pointer, sizes, dtype */
struct djct_piece {
    void *data;
    std::vector<int64_t> sizes;
    c10::ScalarType st;
};
/* a batch's pieces, validated: the features' (one per array, or two for a ragged array: values,
 * row splits) then the targets'; *n_feature_pieces: how many of them are the features' */
int djct_batch_pieces(const djct_model *m, const djct_array *features, size_t n_features,
                      const djct_array *targets, size_t n_targets, std::vector<djct_piece> &out,
                      size_t *n_feature_pieces);
/* forward on tensors already on the model's device; throws like libtorch (run inside guard) */
int djct_model_run_forward(djct_model *m, const c10::List<at::Tensor> &feats, const c10::List<at::Tensor> &tgts,
                           bool has_targets);
/* clear the last forward's losses and outputs */
void djct_model_forget_forward(djct_model *m);
/* release the staging's CUDA objects after its copies completed (device.cpp); before delete */
void djct_model_release_device(djct_model *m) noexcept;

/* Take over a module: device, slab, convention; *out on success. Used by load and builtins. */
int djct_model_adopt(djct_model **out, torch::jit::Module mod, const std::string &label,
                     const djct_model_options *opts);
/* Check the options' version and the device; fills *dev. */
int djct_model_device(torch::Device *dev, const djct_model_options *opts, const std::string &label);

#endif /* DJCT_TORCH_MODEL_INT_HPP */
