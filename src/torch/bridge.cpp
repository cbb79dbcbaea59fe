/* The libtorch bridge: TorchScript modules behind the plain-C API of djct/model.h.
 * Invariant: after djct_model_adopt() every trainable parameter is a view into one flat float32
 * slab and its .grad a view into one flat gradient slab; gradients are zeroed in place and never
 * set to undefined, so the comm module can reduce the gradient slab where it lies. */
#include "model_int.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/csrc/autograd/function_hook.h>

extern "C" {
#include "djct_int.h"
#include "djct/blas.h"
}

std::string djct_torch_one_line(const char *what)
{
    std::string s(what ? what : "");
    /* a TorchScript traceback ends with the exception line; elsewhere join the lines */
    if (s.find("Traceback of TorchScript") != std::string::npos ||
        s.find("The following operation failed") != std::string::npos) {
        size_t end = s.find_last_not_of(" \n\r\t");
        if (end == std::string::npos)
            return s;
        size_t start = s.find_last_of('\n', end);
        std::string last = s.substr(start == std::string::npos ? 0 : start + 1, end + 1 - (start == std::string::npos ? 0 : start + 1));
        /* a message can itself be several lines after "RuntimeError:"; take from that line on */
        size_t rt = s.rfind("Error: ");
        if (rt != std::string::npos) {
            size_t ls = s.find_last_of('\n', rt);
            last = s.substr(ls == std::string::npos ? 0 : ls + 1, end + 1 - (ls == std::string::npos ? 0 : ls + 1));
        }
        s = last;
    }
    std::string out;
    bool space = false;
    for (char c : s) {
        if (c == '\n' || c == '\r' || c == '\t') {
            space = true;
            continue;
        }
        if (space && !out.empty())
            out += ' ';
        space = false;
        out += c;
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

/* run body; on failure prefix the message with the model's file */
template <class F> static int mguard(const djct_model *m, const char *what, F &&body) noexcept
{
    int rc = guard(std::forward<F>(body));
    if (rc < 0 && m)
        djct_error_prefix("model '%s': %s", m->label.c_str(), what);
    return rc;
}

/* ---- process-wide ------------------------------------------------------------------------------ */

extern "C" int djct_torch_seed(uint64_t seed) noexcept
{
    return guard([&] {
        torch::manual_seed(seed);
        return 0;
    });
}

extern "C" int djct_torch_set_num_threads(int n) noexcept
{
    if (n < 1)
        return djct_error_set(DJCT_EINVAL, "thread count %d: use 1 or more", n);
    return guard([&] {
        at::set_num_threads(n);
        djct_blas_set_threads(n); /* OpenBLAS keeps its own pool, one thread per core by default */
        return 0;
    });
}

extern "C" int djct_torch_set_jit_optimize(int on) noexcept
{
    return guard([&] {
        torch::jit::setGraphExecutorOptimize(on != 0);
        return 0;
    });
}

/* The CUDA devices libtorch sees. at::getNumGPUs() (ATen/Context.h) is the spelling every libtorch
 * djct builds against has: 1.13 answers from CUDAHooksInterface::getNumGPUs(), 2.x from
 * AcceleratorHooksInterface::deviceCount(), the hook that later 2.x releases count devices with. */
static int cuda_device_count()
{
    return at::hasCUDA() ? (int)at::getNumGPUs() : 0;
}

extern "C" int djct_torch_cuda_device_count(int *count) noexcept
{
    DJCT_CHECK_ARG(count);
    return guard([&] {
        *count = cuda_device_count();
        return 0;
    });
}

int djct_model_device(torch::Device *dev, const djct_model_options *opts, const std::string &label)
{
    DJCT_CHECK_VERSION(opts, DJCT_MODEL_OPTIONS_VERSION, "djct_model_options");
    int type = opts ? opts->device_type : DJCT_DEVICE_CPU;
    if (type == DJCT_DEVICE_CPU) {
        *dev = torch::Device(torch::kCPU);
        return 0;
    }
    if (type != DJCT_DEVICE_CUDA)
        return djct_error_set(DJCT_EINVAL, "model '%s': device_type %d is unknown; use "
                              "DJCT_DEVICE_CPU or DJCT_DEVICE_CUDA", label.c_str(), type);
    if (!at::hasCUDA())
        return djct_error_set(DJCT_ENOTSUP, "model '%s': CUDA requested but this libtorch has no "
                              "usable CUDA (CPU-only build or no GPU); use DJCT_DEVICE_CPU",
                              label.c_str());
    int n = cuda_device_count();
    if (opts->device_index < 0 || opts->device_index >= n)
        return djct_error_set(DJCT_EINVAL, "model '%s': CUDA device %d does not exist (%d visible)",
                              label.c_str(), opts->device_index, n);
    *dev = torch::Device(torch::kCUDA, (c10::DeviceIndex)opts->device_index);
    return 0;
}

/* ---- adopting a module: signature, slab, hooks, convention ------------------------------------ */

namespace {
struct ReadyHook : torch::autograd::FunctionPostHook {
    std::shared_ptr<djct_hook_state> st;
    size_t index;
    ReadyHook(std::shared_ptr<djct_hook_state> s, size_t i) : st(std::move(s)), index(i) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list &outputs,
                                              const torch::autograd::variable_list &) override
    {
        if (st->fn)
            st->fn(st->user, index);
        return outputs;
    }
};
} // namespace

static int check_signature(djct_model *m)
{
    auto method = m->mod.find_method("forward");
    if (!method)
        return djct_error_set(DJCT_EINVAL, "model '%s': has no forward method; djct needs "
                              "forward(self, features: List[Tensor], targets: Optional[List[Tensor]])",
                              m->label.c_str());
    const c10::FunctionSchema &s = method->function().getSchema();
    const auto &a = s.arguments();
    bool ok = a.size() == 3 && *a[1].type() == *c10::ListType::ofTensors() &&
              *a[2].type() == *c10::OptionalType::create(c10::ListType::ofTensors());
    if (!ok) {
        std::ostringstream os;
        os << s;
        return djct_error_set(DJCT_EINVAL, "model '%s': forward must be forward(self, features: "
                              "List[Tensor], targets: Optional[List[Tensor]]), found %s; see "
                              "docs/models.md", m->label.c_str(), os.str().c_str());
    }
    return 0;
}

static int build_slab(djct_model *m)
{
    std::vector<std::pair<std::string, torch::Tensor>> ps;
    std::unordered_set<c10::TensorImpl *> seen;
    for (const auto &np : m->mod.named_parameters(true)) {
        const torch::Tensor &p = np.value;
        if (!p.requires_grad() || !seen.insert(p.unsafeGetTensorImpl()).second)
            continue;
        if (p.scalar_type() != torch::kFloat)
            return djct_error_set(DJCT_EINVAL, "model '%s': parameter '%s' is %s; djct trains "
                                  "float32 parameters (call .float() before export)",
                                  m->label.c_str(), np.name.c_str(),
                                  c10::toString(p.scalar_type()));
        ps.emplace_back(np.name, p);
    }
    /* backward order: the last registered parameter gets its gradient first */
    std::reverse(ps.begin(), ps.end());
    size_t total = 0;
    for (auto &np : ps) {
        m->names.push_back(np.first);
        m->offsets.push_back(total);
        m->counts.push_back((size_t)np.second.numel());
        total += (size_t)np.second.numel();
    }
    auto opt = torch::TensorOptions().dtype(torch::kFloat).device(m->device);
    m->flat = torch::empty({(int64_t)total}, opt);
    m->flatgrad = torch::zeros({(int64_t)total}, opt);
    torch::NoGradGuard ng;
    for (size_t i = 0; i < ps.size(); i++) {
        torch::Tensor p = ps[i].second;
        auto view = m->flat.narrow(0, (int64_t)m->offsets[i], (int64_t)m->counts[i]).view(p.sizes());
        view.copy_(p);
        p.set_data(view);
        p.mutable_grad() = m->flatgrad.narrow(0, (int64_t)m->offsets[i], (int64_t)m->counts[i]).view(p.sizes());
        m->params.push_back(p);
        auto acc = torch::autograd::impl::grad_accumulator(p);
        acc->add_post_hook(std::make_unique<ReadyHook>(m->hook, i));
        m->accumulators.push_back(std::move(acc));
    }
    return 0;
}

static void find_logmods(djct_model *m)
{
    int auto_n = 0;
    std::unordered_set<std::string> taken;
    for (const auto &nm : m->mod.named_modules()) {
        m->module_paths.push_back(nm.name);
        const auto &t = nm.value.type();
        if (!t->hasAttribute(DJCT_ATTR_NAME) || !t->hasAttribute(DJCT_ATTR_LOGGING) ||
            !t->hasAttribute(DJCT_ATTR_METRICS))
            continue;
        djct_logmod lm;
        lm.obj = nm.value._ivalue();
        lm.path = nm.name;
        lm.slot_logging = t->getAttributeSlot(DJCT_ATTR_LOGGING);
        lm.slot_metrics = t->getAttributeSlot(DJCT_ATTR_METRICS);
        lm.is_loss = t->hasAttribute(DJCT_ATTR_LOSS) && t->hasAttribute(DJCT_ATTR_LOSSES);
        lm.slot_loss = lm.is_loss ? t->getAttributeSlot(DJCT_ATTR_LOSS) : 0;
        lm.slot_losses = lm.is_loss ? t->getAttributeSlot(DJCT_ATTR_LOSSES) : 0;
        lm.name = lm.obj->getAttr(DJCT_ATTR_NAME).toStringRef();
        if (!lm.name.empty())
            taken.insert(lm.name);
        m->logmods.push_back(std::move(lm));
    }
    /* djctools' auto-names for unnamed modules, skipping names already used */
    for (auto &lm : m->logmods) {
        if (!lm.name.empty())
            continue;
        do
            lm.name = "LoggingModule" + std::to_string(++auto_n);
        while (taken.count(lm.name));
        taken.insert(lm.name);
        lm.obj->setAttr(DJCT_ATTR_NAME, lm.name);
    }
}

int djct_model_adopt(djct_model **out, torch::jit::Module mod, const std::string &label,
                     const djct_model_options *opts)
{
    djct_model *m = nullptr;
    int rc = guard([&] {
        torch::Device dev(torch::kCPU);
        int err = djct_model_device(&dev, opts, label);
        if (err < 0)
            return err;
        m = new djct_model();
        m->mod = std::move(mod);
        m->label = label;
        m->device = dev;
        if ((err = check_signature(m)) < 0)
            return err;
        m->mod.to(dev);
        m->mod.train(true);
        if ((err = build_slab(m)) < 0)
            return err;
        find_logmods(m);
        return 0;
    });
    if (rc == DJCT_ETORCH)
        djct_error_prefix("model '%s'", label.c_str());
    if (rc < 0) {
        delete m;
        return rc;
    }
    *out = m;
    return 0;
}

extern "C" int djct_model_load(djct_model **out, const char *path, const djct_model_options *opts) noexcept
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(path);
    *out = nullptr;
    FILE *f = fopen(path, "rb");
    if (!f)
        return djct_error_set(DJCT_EIO, "model '%s': cannot open: %s", path, strerror(errno));
    fclose(f);
    torch::jit::Module mod;
    torch::Device dev(torch::kCPU);
    int rc = djct_model_device(&dev, opts, path);
    if (rc < 0)
        return rc;
    rc = guard([&] {
        mod = torch::jit::load(path, dev);
        return 0;
    });
    if (rc < 0)
        return djct_error_prefix("model '%s': not a loadable TorchScript file", path);
    return djct_model_adopt(out, std::move(mod), path, opts);
}

extern "C" void djct_model_free(djct_model *m) noexcept
{
    if (!m)
        return;
    try {
        m->hook->fn = nullptr; /* a graph that outlives the model may still run the hooks */
        djct_model_release_device(m);
        delete m;
    } catch (...) {
    }
}

/* ---- convention helpers ------------------------------------------------------------------------ */

static void clear_losses(djct_model *m)
{
    for (auto &lm : m->logmods)
        if (lm.is_loss)
            lm.obj->getSlot(lm.slot_losses).toList().clear();
    m->loss = torch::Tensor();
}

extern "C" int djct_model_clear_all_losses(djct_model *m) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "clear_all_losses", [&] {
        clear_losses(m);
        return 0;
    });
}

extern "C" int djct_model_save(djct_model *m, const char *path) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(path);
    int rc = guard([&] {
        clear_losses(m);
        m->mod.save(path);
        return 0;
    });
    if (rc < 0)
        djct_error_prefix("model '%s': saving to '%s'", m->label.c_str(), path);
    return rc;
}

extern "C" int djct_model_train(djct_model *m, int on) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "train", [&] {
        m->mod.train(on != 0);
        m->training = on != 0;
        return 0;
    });
}

/* ---- forward ----------------------------------------------------------------------------------- */

static int to_scalar_type(djct_dtype t, c10::ScalarType *st)
{
    switch (t) {
    case DJCT_DTYPE_FLOAT32: *st = torch::kFloat; return 0;
    case DJCT_DTYPE_INT32: *st = torch::kInt; return 0;
    case DJCT_DTYPE_FLOAT64: *st = torch::kDouble; return 0;
    case DJCT_DTYPE_INT64: *st = torch::kLong; return 0;
    case DJCT_DTYPE_FLOAT16: *st = torch::kHalf; return 0;
    case DJCT_DTYPE_BFLOAT16: *st = torch::kBFloat16; return 0;
    }
    return -1;
}

static torch::Tensor wrap(const djct_piece &pc, const torch::Device &dev)
{
    auto opt = torch::TensorOptions().dtype(pc.st);
    int64_t n = 1;
    for (int64_t s : pc.sizes)
        n *= s;
    torch::Tensor t = (n == 0 || !pc.data) ? torch::empty(pc.sizes, opt) : torch::from_blob(pc.data, pc.sizes, opt);
    return dev.is_cpu() ? t : t.to(dev);
}

/* one array -> one tensor's worth of memory, or two for a ragged array (values, row splits) */
static int array_pieces(const djct_model *m, const djct_array *a, const char *role, size_t i,
                        std::vector<djct_piece> &out)
{
    const char *nm = a->name ? a->name : "";
    if (djct_array_validate(a) < 0)
        return djct_error_prefix("model '%s': %s[%zu] '%s'", m->label.c_str(), role, i, nm);
    c10::ScalarType st;
    if (to_scalar_type(a->dtype, &st) < 0)
        return djct_error_set(DJCT_EINVAL, "model '%s': %s[%zu] '%s' has unknown dtype %d",
                              m->label.c_str(), role, i, nm, (int)a->dtype);
    std::vector<int64_t> sizes;
    if (a->row_splits) {
        sizes.push_back(a->row_splits[a->n_row_splits - 1]);
        for (int d = 2; d < a->ndim; d++)
            sizes.push_back(a->shape[d]);
        out.push_back({a->values, sizes, st});
        out.push_back({a->row_splits, {(int64_t)a->n_row_splits}, torch::kLong});
    } else {
        for (int d = 0; d < a->ndim; d++)
            sizes.push_back(a->shape[d]);
        out.push_back({a->values, sizes, st});
    }
    return 0;
}

int djct_batch_pieces(const djct_model *m, const djct_array *features, size_t n_features,
                      const djct_array *targets, size_t n_targets, std::vector<djct_piece> &out,
                      size_t *n_feature_pieces)
{
    int err;
    for (size_t i = 0; i < n_features; i++)
        if ((err = array_pieces(m, &features[i], "features", i, out)) < 0)
            return err;
    *n_feature_pieces = out.size();
    for (size_t i = 0; i < n_targets; i++)
        if ((err = array_pieces(m, &targets[i], "targets", i, out)) < 0)
            return err;
    return 0;
}

/* autocast of the forward pass per the model's precision (djct_model_set_precision), restoring
 * the thread's previous state and dropping the cast weights' cache afterwards, as torch.autocast */
struct AutocastScope {
    bool on = false, cuda = false, prev = false;
    at::ScalarType prev_dtype = at::kFloat;
    explicit AutocastScope(const djct_model *m)
    {
        if (m->precision == DJCT_PRECISION_FP32)
            return;
        at::ScalarType dt = m->precision == DJCT_PRECISION_BF16 ? at::kBFloat16 : at::kHalf;
        on = true;
        cuda = m->device.is_cuda();
        if (cuda) {
            prev = at::autocast::is_enabled();
            prev_dtype = at::autocast::get_autocast_gpu_dtype();
            at::autocast::set_autocast_gpu_dtype(dt);
            at::autocast::set_enabled(true);
        } else {
            prev = at::autocast::is_cpu_enabled();
            prev_dtype = at::autocast::get_autocast_cpu_dtype();
            at::autocast::set_autocast_cpu_dtype(dt);
            at::autocast::set_cpu_enabled(true);
        }
        at::autocast::increment_nesting();
    }
    ~AutocastScope()
    {
        if (!on)
            return;
        if (at::autocast::decrement_nesting() == 0)
            at::autocast::clear_cache();
        if (cuda) {
            at::autocast::set_enabled(prev);
            at::autocast::set_autocast_gpu_dtype(prev_dtype);
        } else {
            at::autocast::set_cpu_enabled(prev);
            at::autocast::set_autocast_cpu_dtype(prev_dtype);
        }
    }
};

int djct_model_run_forward(djct_model *m, const c10::List<at::Tensor> &feats, const c10::List<at::Tensor> &tgts,
                           bool has_targets)
{
    std::vector<c10::IValue> in;
    in.emplace_back(feats);
    in.emplace_back(has_targets ? c10::IValue(tgts) : c10::IValue());
    c10::IValue out;
    {
        torch::AutoGradMode gm(m->training);
        AutocastScope ac(m);
        out = m->mod.forward(std::move(in));
    }
    auto keep = [&](const c10::IValue &v) {
        if (!v.isTensor())
            throw std::runtime_error("forward returned a " + v.tagKind() +
                                     " inside its output; return a Tensor, a tuple/list of "
                                     "Tensors or None");
        m->outputs.push_back(v.toTensor().detach());
    };
    if (out.isNone()) {
    } else if (out.isTensor()) {
        keep(out);
    } else if (out.isTuple()) {
        for (const auto &v : out.toTupleRef().elements())
            keep(v);
    } else if (out.isList()) {
        c10::List<c10::IValue> l = out.toList();
        for (size_t k = 0; k < l.size(); k++)
            keep(l.get(k));
    } else {
        keep(out);
    }
    return 0;
}

void djct_model_forget_forward(djct_model *m)
{
    clear_losses(m);
    m->outputs.clear();
    m->outputs_f32.clear();
}

extern "C" int djct_model_forward(djct_model *m, const djct_array *features, size_t n_features,
                                  const djct_array *targets, size_t n_targets) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(features || n_features == 0);
    DJCT_CHECK_ARG(targets || n_targets == 0);
    int rc = guard([&] {
        djct_model_forget_forward(m);
        std::vector<djct_piece> pieces;
        size_t nf = 0;
        int err = djct_batch_pieces(m, features, n_features, targets, n_targets, pieces, &nf);
        if (err < 0)
            return err;
        c10::List<at::Tensor> feats, tgts;
        for (size_t k = 0; k < pieces.size(); k++)
            (k < nf ? feats : tgts).push_back(wrap(pieces[k], m->device));
        return djct_model_run_forward(m, feats, tgts, targets != nullptr);
    });
    if (rc == DJCT_ETORCH)
        djct_error_prefix("model '%s': forward", m->label.c_str());
    return rc;
}

extern "C" size_t djct_model_n_outputs(const djct_model *m) noexcept
{
    return m ? m->outputs.size() : 0;
}

extern "C" int djct_model_output(djct_model *m, size_t i, const float **data, int64_t *shape,
                                 int *ndim) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(data);
    if (i >= m->outputs.size())
        return djct_error_set(DJCT_EINVAL, "model '%s': output %zu requested, the last forward "
                              "returned %zu", m->label.c_str(), i, m->outputs.size());
    return mguard(m, "output", [&] {
        if (m->outputs_f32.size() != m->outputs.size())
            m->outputs_f32.assign(m->outputs.size(), torch::Tensor());
        torch::Tensor &t = m->outputs_f32[i];
        if (!t.defined())
            t = m->outputs[i].to(torch::kCPU, torch::kFloat).contiguous();
        if (t.dim() > DJCT_MAX_DIMS)
            return djct_error_set(DJCT_EINVAL, "model '%s': output %zu has %d dimensions (max %d)",
                                  m->label.c_str(), i, (int)t.dim(), DJCT_MAX_DIMS);
        *data = t.data_ptr<float>();
        if (ndim)
            *ndim = (int)t.dim();
        if (shape)
            for (int64_t d = 0; d < t.dim(); d++)
                shape[d] = t.size(d);
        return 0;
    });
}

/* ---- losses, backward, gradients --------------------------------------------------------------- */

static int sum_losses(djct_model *m)
{
    std::vector<torch::Tensor> ls;
    bool active = false;
    for (auto &lm : m->logmods) {
        if (!lm.is_loss)
            continue;
        active |= lm.obj->getSlot(lm.slot_loss).toBool();
        for (const at::Tensor &t : lm.obj->getSlot(lm.slot_losses).toTensorVector()) {
            if (t.numel() != 1)
                return djct_error_set(DJCT_EINVAL, "model '%s': LossModule '%s' recorded a loss "
                                      "with %lld elements; record a scalar (a mean over the batch)",
                                      m->label.c_str(), lm.name.c_str(), (long long)t.numel());
            ls.push_back(t.reshape({}));
        }
    }
    if (ls.empty())
        return djct_error_set(DJCT_EINVAL, active
            ? "model '%s': losses are active but none was recorded (forward without targets, or "
              "a LossModule that was not called?)"
            : "model '%s': every LossModule is switched off, so there is no loss to sum; switch "
              "one on", m->label.c_str());
    torch::Tensor total = ls[0];
    for (size_t i = 1; i < ls.size(); i++)
        total = total + ls[i];
    m->loss = total;
    return 0;
}

extern "C" int djct_model_sum_all_losses(djct_model *m, double *value) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "sum_all_losses", [&] {
        int err = sum_losses(m);
        if (err < 0)
            return err;
        if (value)
            *value = m->loss.item<double>();
        return 0;
    });
}

extern "C" int djct_model_backward(djct_model *m, double *loss) noexcept
{
    DJCT_CHECK_ARG(m);
    if (!m->training)
        return djct_error_set(DJCT_EINVAL, "model '%s': backward in evaluation mode; call "
                              "djct_model_train(m, 1) before the forward", m->label.c_str());
    int rc = guard([&] {
        /* forward clears the sum; djct_model_sum_all_losses since then already made it */
        int err = m->loss.defined() ? 0 : sum_losses(m);
        if (err < 0)
            return err;
        if (!m->loss.requires_grad())
            return djct_error_set(DJCT_EINVAL, "model '%s': the loss does not depend on any "
                                  "trainable parameter",
                                  m->label.c_str());
        if (loss)
            *loss = m->loss.item<double>();
        if (m->loss_scale != 1.0)
            (m->loss * m->loss_scale).backward();
        else
            m->loss.backward();
        /* autograd accumulates into a defined .grad in place; if anything replaced one, put its
           value back into the slab so comm and the optimizer see it */
        for (size_t i = 0; i < m->params.size(); i++) {
            torch::Tensor &g = m->params[i].mutable_grad();
            auto view = m->flatgrad.narrow(0, (int64_t)m->offsets[i], (int64_t)m->counts[i])
                            .view(m->params[i].sizes());
            if (!g.defined() || g.data_ptr() != view.data_ptr()) {
                torch::NoGradGuard ng;
                if (g.defined())
                    view.copy_(g);
                g = view;
            }
        }
        clear_losses(m);
        return 0;
    });
    if (rc == DJCT_ETORCH)
        djct_error_prefix("model '%s': backward", m->label.c_str());
    return rc;
}

extern "C" int djct_model_zero_grad(djct_model *m) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "zero_grad", [&] {
        m->flatgrad.zero_();
        return 0;
    });
}

extern "C" int djct_model_params(djct_model *m, float **ptr, size_t *count) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(ptr);
    DJCT_CHECK_ARG(count);
    *ptr = m->flat.numel() ? m->flat.data_ptr<float>() : nullptr;
    *count = (size_t)m->flat.numel();
    return 0;
}

extern "C" int djct_model_grads(djct_model *m, float **ptr, size_t *count) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(ptr);
    DJCT_CHECK_ARG(count);
    *ptr = m->flatgrad.numel() ? m->flatgrad.data_ptr<float>() : nullptr;
    *count = (size_t)m->flatgrad.numel();
    return 0;
}

extern "C" size_t djct_model_n_params(const djct_model *m) noexcept
{
    return m ? m->params.size() : 0;
}

/* the error for index i of a model's n parameters, LoggingModules, ... */
static int bad_index(const djct_model *m, size_t i, size_t n, const char *what)
{
    return djct_error_set(DJCT_EINVAL, "model '%s': %s %zu requested, it has %zu", m->label.c_str(), what, i, n);
}

extern "C" int djct_model_param_info(const djct_model *m, size_t i, const char **name,
                                     size_t *offset, size_t *count) noexcept
{
    DJCT_CHECK_ARG(m);
    if (i >= m->params.size())
        return bad_index(m, i, m->params.size(), "parameter");
    if (name)
        *name = m->names[i].c_str();
    if (offset)
        *offset = m->offsets[i];
    if (count)
        *count = m->counts[i];
    return 0;
}

extern "C" int djct_model_set_grad_ready_hook(djct_model *m, djct_grad_ready_fn fn, void *user) noexcept
{
    DJCT_CHECK_ARG(m);
    m->hook->fn = nullptr;
    m->hook->user = user;
    m->hook->fn = fn;
    return 0;
}

/* ---- switches and metrics ---------------------------------------------------------------------- */

extern "C" int djct_model_switch_all_logging(djct_model *m, int on) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "switch_all_logging", [&] {
        for (auto &lm : m->logmods)
            lm.obj->setSlot(lm.slot_logging, c10::IValue(on != 0));
        return 0;
    });
}

extern "C" int djct_model_switch_all_losses(djct_model *m, int on) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "switch_all_losses", [&] {
        for (auto &lm : m->logmods)
            if (lm.is_loss)
                lm.obj->setSlot(lm.slot_loss, c10::IValue(on != 0));
        return 0;
    });
}

static bool under(const std::string &path, const std::string &prefix)
{
    if (prefix.empty())
        return true;
    return path == prefix || (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
                              path[prefix.size()] == '.');
}

extern "C" int djct_model_switch(djct_model *m, const char *name, int logging_on, int loss_on) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(name);
    if (logging_on < -1 || logging_on > 1 || loss_on < -1 || loss_on > 1)
        return djct_error_set(DJCT_EINVAL, "model '%s': switch '%s': use 1 (on), 0 (off) or -1 "
                              "(leave), got logging %d, loss %d", m->label.c_str(), name, logging_on, loss_on);
    return mguard(m, "switch", [&] {
        const std::string *prefix = nullptr;
        for (auto &lm : m->logmods)
            if (lm.name == name) {
                prefix = &lm.path;
                break;
            }
        if (!prefix)
            for (auto &p : m->module_paths)
                if (p == name) {
                    prefix = &p;
                    break;
                }
        if (!prefix) {
            std::string known;
            for (auto &lm : m->logmods)
                known += (known.empty() ? "" : ", ") + lm.name;
            return djct_error_set(DJCT_EINVAL, "model '%s': no LoggingModule or submodule named "
                                  "'%s'; LoggingModules: %s", m->label.c_str(), name,
                                  known.empty() ? "(none)" : known.c_str());
        }
        std::string pre = *prefix;
        for (auto &lm : m->logmods) {
            if (!under(lm.path, pre))
                continue;
            if (logging_on >= 0)
                lm.obj->setSlot(lm.slot_logging, c10::IValue(logging_on != 0));
            if (loss_on >= 0 && lm.is_loss)
                lm.obj->setSlot(lm.slot_loss, c10::IValue(loss_on != 0));
        }
        return 0;
    });
}

extern "C" size_t djct_model_n_logging_modules(const djct_model *m) noexcept
{
    return m ? m->logmods.size() : 0;
}

extern "C" int djct_model_logging_module(const djct_model *m, size_t i, const char **name,
                                         int *logging_on, int *is_loss, int *loss_on) noexcept
{
    DJCT_CHECK_ARG(m);
    if (i >= m->logmods.size())
        return bad_index(m, i, m->logmods.size(), "LoggingModule");
    return guard([&] {
        const djct_logmod &lm = m->logmods[i];
        if (name)
            *name = lm.name.c_str();
        if (logging_on)
            *logging_on = lm.obj->getSlot(lm.slot_logging).toBool();
        if (is_loss)
            *is_loss = lm.is_loss;
        if (loss_on)
            *loss_on = lm.is_loss ? lm.obj->getSlot(lm.slot_loss).toBool() : 0;
        return 0;
    });
}

extern "C" int djct_model_collect_metrics(djct_model *m, djct_metric_fn fn, void *user) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(fn);
    return mguard(m, "collect_metrics", [&] {
        std::string key;
        int stop = 0;
        for (auto &lm : m->logmods) {
            auto d = lm.obj->getSlot(lm.slot_metrics).toGenericDict();
            for (const auto &it : d) {
                if (stop)
                    break;
                key = lm.name + "_" + it.key().toStringRef();
                const at::Tensor t = it.value().toTensor();
                double v = t.numel() == 1 ? t.item<double>() : t.to(torch::kDouble).mean().item<double>();
                stop = fn(user, key.c_str(), v);
            }
            d.clear();
        }
        return 0;
    });
}

/* ---- training controls: precision, loss and gradient scaling, clipping, frozen parameters ---- */

extern "C" int djct_model_set_precision(djct_model *m, int precision) noexcept
{
    DJCT_CHECK_ARG(m);
    if (precision < DJCT_PRECISION_FP32 || precision > DJCT_PRECISION_FP16)
        return djct_error_set(DJCT_EINVAL, "model '%s': precision %d is not one of fp32(0), bf16(1), "
                              "fp16(2)", m->label.c_str(), precision);
    /* libtorch 1.13's CPU autocast accepts bfloat16 only ("AutocastCPU only support Bfloat16") */
    if (precision == DJCT_PRECISION_FP16 && !m->device.is_cuda())
        return djct_error_set(DJCT_ENOTSUP, "model '%s': fp16 autocast needs a CUDA device: libtorch "
                              "on CPU autocasts to bfloat16 only; use bf16 on CPU", m->label.c_str());
    m->precision = precision;
    return 0;
}

extern "C" int djct_model_set_loss_scale(djct_model *m, double scale) noexcept
{
    DJCT_CHECK_ARG(m);
    if (!(scale > 0) || !std::isfinite(scale))
        return djct_error_set(DJCT_EINVAL, "model '%s': loss scale %g must be finite and > 0",
                              m->label.c_str(), scale);
    m->loss_scale = scale;
    return 0;
}

extern "C" int djct_model_scale_grads(djct_model *m, double factor) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "scale_grads", [&] {
        if (factor != 1.0) {
            torch::NoGradGuard ng;
            m->flatgrad.mul_(factor);
        }
        return 0;
    });
}

extern "C" int djct_model_clip_grad_norm(djct_model *m, double max_norm, double *norm) noexcept
{
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_ARG(norm);
    return mguard(m, "clip_grad_norm", [&] {
        torch::NoGradGuard ng;
        /* summed in double: the same value from the same slab on every rank, whatever its size */
        double n = m->flatgrad.numel() ? m->flatgrad.to(torch::kDouble).norm().item<double>() : 0.0;
        *norm = n;
        /* as torch.nn.utils.clip_grad_norm_: scale by max/(norm+1e-6) when above; a non-finite
           norm leaves the gradients as they are (the step is skipped) */
        if (max_norm > 0 && std::isfinite(n) && n > max_norm)
            m->flatgrad.mul_(max_norm / (n + 1e-6));
        return 0;
    });
}

extern "C" int djct_model_set_trainable(djct_model *m, size_t i, int on) noexcept
{
    DJCT_CHECK_ARG(m);
    if (i >= m->params.size())
        return bad_index(m, i, m->params.size(), "parameter");
    auto it = std::find(m->frozen.begin(), m->frozen.end(), i);
    if (!on && it == m->frozen.end())
        m->frozen.push_back(i);
    else if (on && it != m->frozen.end())
        m->frozen.erase(it);
    m->frozen_keep.clear();
    return 0;
}

extern "C" int djct_model_is_trainable(const djct_model *m, size_t i) noexcept
{
    if (!m || i >= m->params.size())
        return 0;
    return std::find(m->frozen.begin(), m->frozen.end(), i) == m->frozen.end();
}

extern "C" int djct_model_hold_frozen(djct_model *m) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "hold_frozen", [&] {
        torch::NoGradGuard ng;
        m->frozen_keep.clear();
        for (size_t i : m->frozen) {
            m->flatgrad.narrow(0, (int64_t)m->offsets[i], (int64_t)m->counts[i]).zero_();
            m->frozen_keep.push_back(m->flat.narrow(0, (int64_t)m->offsets[i], (int64_t)m->counts[i]).clone());
        }
        return 0;
    });
}

extern "C" int djct_model_restore_frozen(djct_model *m) noexcept
{
    DJCT_CHECK_ARG(m);
    return mguard(m, "restore_frozen", [&] {
        torch::NoGradGuard ng;
        for (size_t k = 0; k < m->frozen_keep.size() && k < m->frozen.size(); k++) {
            size_t i = m->frozen[k];
            m->flat.narrow(0, (int64_t)m->offsets[i], (int64_t)m->counts[i]).copy_(m->frozen_keep[k]);
        }
        m->frozen_keep.clear();
        return 0;
    });
}
