/* Optimizers over a model's parameter slab: libtorch's SGD/Adam/AdamW given the one flat
 * parameter tensor (whose .grad is the gradient slab), so their state is one slab per moment.
 * SGD steps with libtorch; Adam/AdamW keep libtorch's state but step with one fused pass
 * (src/adam.c) instead of libtorch's eight on a CPU slab. On a CUDA slab every optimizer steps with
 * libtorch on the device (queued on the current stream, so after whatever that stream waits for):
 * the fused pass is host code and never sees device memory. Learning-rate schedules are applied
 * before each step. */
#include "model_int.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <type_traits>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/archive.h>

extern "C" {
#include "djct_int.h"
}
#include "adam_int.h"

struct djct_optimizer {
    djct_optimizer_options o;
    std::string label;
    torch::Tensor param;  /* shares storage with the model's slab; .grad is the gradient slab */
    std::unique_ptr<torch::optim::Optimizer> opt;
    int64_t steps = 0;
    double lr_scale = 1.0; /* reduce-on-plateau's factor over the schedule */
    bool torch_adam = false; /* DJCT_TORCH_ADAM=1 at creation: libtorch's Adam step, not the fused pass */
};

static double lr_at(const djct_optimizer_options &o, int64_t step)
{
    if (o.warmup_steps > 0 && step < o.warmup_steps)
        return o.lr * (double)(step + 1) / (double)o.warmup_steps;
    int64_t t = step - (o.warmup_steps > 0 ? o.warmup_steps : 0);
    switch (o.schedule) {
    case DJCT_LR_STEP:
        return o.lr * std::pow(o.gamma, (double)(t / o.step_size));
    case DJCT_LR_COSINE: {
        int64_t span = o.total_steps - (o.warmup_steps > 0 ? o.warmup_steps : 0);
        double f = span > 0 ? std::min(1.0, (double)t / (double)span) : 1.0;
        return o.min_lr + (o.lr - o.min_lr) * 0.5 * (1.0 + std::cos(M_PI * f));
    }
    default:
        return o.lr;
    }
}

static int check_options(const djct_optimizer_options *o, const std::string &label)
{
    const char *l = label.c_str();
    if (o->kind < DJCT_OPTIM_SGD || o->kind > DJCT_OPTIM_ADAMW)
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': kind %d is unknown; use "
                              "DJCT_OPTIM_SGD, DJCT_OPTIM_ADAM or DJCT_OPTIM_ADAMW", l, o->kind);
    if (!(o->lr > 0) || !std::isfinite(o->lr))
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': lr %g must be > 0", l, o->lr);
    if (o->schedule < DJCT_LR_CONSTANT || o->schedule > DJCT_LR_COSINE)
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': schedule %d is unknown; use "
                              "DJCT_LR_CONSTANT, DJCT_LR_STEP or DJCT_LR_COSINE", l, o->schedule);
    if (o->schedule == DJCT_LR_STEP && o->step_size < 1)
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': step schedule needs step_size >= 1, "
                              "got %lld", l, (long long)o->step_size);
    if (o->schedule == DJCT_LR_COSINE && o->total_steps <= o->warmup_steps)
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': cosine schedule needs total_steps "
                              "(%lld) > warmup_steps (%lld)", l, (long long)o->total_steps,
                              (long long)o->warmup_steps);
    if (o->warmup_steps < 0 || o->momentum < 0 || o->weight_decay < 0 || o->eps < 0 ||
        o->beta1 < 0 || o->beta1 >= 1 || o->beta2 < 0 || o->beta2 >= 1)
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': warmup_steps, momentum, "
                              "weight_decay, eps must be >= 0 and betas in [0, 1)", l);
    return 0;
}

extern "C" int djct_optimizer_create(djct_optimizer **out, djct_model *m,
                                     const djct_optimizer_options *opts) noexcept
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(m);
    DJCT_CHECK_VERSION(opts, DJCT_OPTIMIZER_OPTIONS_VERSION, "djct_optimizer_options");
    *out = nullptr;
    djct_optimizer_options o = DJCT_OPTIMIZER_OPTIONS_INIT;
    if (opts)
        o = *opts;
    int err = check_options(&o, m->label);
    if (err < 0)
        return err;
    djct_optimizer *op = nullptr;
    int rc = guard([&] {
        op = new djct_optimizer();
        op->o = o;
        op->label = m->label;
        const char *ta = getenv("DJCT_TORCH_ADAM");
        op->torch_adam = ta && *ta && strcmp(ta, "0");
        /* a second handle on the slab, not the model's own tensor: its .grad is set here */
        op->param = m->flat.detach();
        op->param.mutable_grad() = m->flatgrad;
        std::vector<torch::Tensor> ps{op->param};
        double lr0 = lr_at(o, 0);
        switch (o.kind) {
        case DJCT_OPTIM_SGD:
            op->opt = std::make_unique<torch::optim::SGD>(ps, torch::optim::SGDOptions(lr0)
                .momentum(o.momentum).nesterov(o.nesterov != 0).weight_decay(o.weight_decay));
            break;
        case DJCT_OPTIM_ADAM:
            op->opt = std::make_unique<torch::optim::Adam>(ps, torch::optim::AdamOptions(lr0)
                .betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
            break;
        default:
            op->opt = std::make_unique<torch::optim::AdamW>(ps, torch::optim::AdamWOptions(lr0)
                .betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
        }
        return 0;
    });
    if (rc < 0) {
        delete op;
        return djct_error_prefix("optimizer for '%s'", m->label.c_str());
    }
    *out = op;
    return 0;
}

/* The key a libtorch optimizer files a parameter's state under, so the fused step's state is found
 * by libtorch's own step, save and load. 1.13 (and early 2.x) key the state map by the parameter's
 * TensorImpl pointer printed to a string (c10::guts::to_string, an ostream <<); later 2.x by the
 * pointer itself, and c10::guts::to_string is gone (pytorch PR 108480). The map's key type picks. */
template <class Key> static Key state_key(c10::TensorImpl *impl)
{
    if constexpr (std::is_same_v<Key, std::string>) {
        std::ostringstream os;
        os << impl;
        return os.str();
    } else {
        return impl;
    }
}

/* Adam/AdamW on a float32 CPU slab: libtorch's own state (created as its step() would create it,
 * so save/load and a later libtorch step see the same thing), advanced by the fused pass of
 * src/adam.c instead of libtorch's eight tensor operations. Returns false when the slab is not
 * such a tensor (then libtorch steps). */
template <class State>
static bool fused_adam_step(djct_optimizer *o, double lr)
{
    torch::Tensor &p = o->param;
    const torch::Tensor &g = p.grad();
    if (p.device().type() != torch::kCPU || p.scalar_type() != torch::kFloat || !p.is_contiguous() ||
        !g.defined() || g.device().type() != torch::kCPU || g.scalar_type() != torch::kFloat ||
        !g.is_contiguous())
        return false;
    auto &states = o->opt->state();
    using Key = std::decay_t<decltype(states.begin()->first)>;
    const Key key = state_key<Key>(p.unsafeGetTensorImpl());
    auto it = states.find(key);
    if (it == states.end()) {
        auto st = std::make_unique<State>();
        st->step(0);
        st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = states.emplace(key, std::move(st)).first;
    }
    auto &st = static_cast<State &>(*it->second);
    torch::Tensor &m = st.exp_avg(), &v = st.exp_avg_sq();
    if (m.scalar_type() != torch::kFloat || v.scalar_type() != torch::kFloat || !m.is_contiguous() ||
        !v.is_contiguous() || m.numel() != p.numel() || v.numel() != p.numel())
        return false;
    st.step(st.step() + 1);
    djct_adam_mode mode = o->o.weight_decay == 0.0 ? DJCT_ADAM_PLAIN
                          : o->o.kind == DJCT_OPTIM_ADAMW ? DJCT_ADAM_DECOUPLED : DJCT_ADAM_L2;
    djct_adam_scalars k;
    djct_adam_scalars_for(&k, lr, o->o.beta1, o->o.beta2, o->o.eps, o->o.weight_decay, mode,
                          (long long)st.step());
    djct_adam_pass(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
                   (size_t)p.numel(), &k, mode);
    return true;
}

extern "C" int djct_optimizer_step(djct_optimizer *o) noexcept
{
    DJCT_CHECK_ARG(o);
    int rc = guard([&] {
        double lr = lr_at(o->o, o->steps) * o->lr_scale;
        for (auto &g : o->opt->param_groups())
            g.options().set_lr(lr);
        bool fused = o->torch_adam ? false
                     : o->o.kind == DJCT_OPTIM_ADAM  ? fused_adam_step<torch::optim::AdamParamState>(o, lr)
                     : o->o.kind == DJCT_OPTIM_ADAMW ? fused_adam_step<torch::optim::AdamWParamState>(o, lr)
                                                     : false;
        if (!fused)
            o->opt->step();
        o->steps++;
        return 0;
    });
    if (rc < 0)
        djct_error_prefix("optimizer for '%s': step", o->label.c_str());
    return rc;
}

extern "C" double djct_optimizer_lr(const djct_optimizer *o) noexcept
{
    return o ? lr_at(o->o, o->steps) * o->lr_scale : 0.0;
}

extern "C" int djct_optimizer_set_lr_scale(djct_optimizer *o, double scale) noexcept
{
    DJCT_CHECK_ARG(o);
    if (!(scale > 0) || !std::isfinite(scale))
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': learning-rate scale %g must be finite "
                              "and > 0", o->label.c_str(), scale);
    o->lr_scale = scale;
    return 0;
}

extern "C" double djct_optimizer_lr_scale(const djct_optimizer *o) noexcept
{
    return o ? o->lr_scale : 0.0;
}

extern "C" int64_t djct_optimizer_steps(const djct_optimizer *o) noexcept
{
    return o ? o->steps : 0;
}

static void write_archive(djct_optimizer *o, torch::serialize::OutputArchive &ar)
{
    o->opt->save(ar);
    ar.write("djct_steps", torch::tensor(o->steps, torch::kLong));
    ar.write("djct_kind", torch::tensor((int64_t)o->o.kind, torch::kLong));
    ar.write("djct_numel", torch::tensor(o->param.numel(), torch::kLong));
    ar.write("djct_lr_scale", torch::tensor(o->lr_scale, torch::kDouble));
}

static int read_archive(djct_optimizer *o, torch::serialize::InputArchive &ar, const char *src)
{
    torch::Tensor steps, kind, numel;
    if (!ar.try_read("djct_steps", steps) || !ar.try_read("djct_kind", kind) ||
        !ar.try_read("djct_numel", numel))
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': %s is not a djct optimizer state",
                              o->label.c_str(), src);
    if (kind.item<int64_t>() != o->o.kind || numel.item<int64_t>() != o->param.numel())
        return djct_error_set(DJCT_EINVAL, "optimizer for '%s': %s holds kind %lld over %lld "
                              "parameters, this optimizer is kind %d over %lld", o->label.c_str(), src,
                              (long long)kind.item<int64_t>(), (long long)numel.item<int64_t>(),
                              o->o.kind, (long long)o->param.numel());
    o->opt->load(ar);
    o->steps = steps.item<int64_t>();
    torch::Tensor scale; /* absent from states saved before reduce-on-plateau existed */
    o->lr_scale = ar.try_read("djct_lr_scale", scale) ? scale.item<double>() : 1.0;
    return 0;
}

extern "C" int djct_optimizer_save(djct_optimizer *o, const char *path) noexcept
{
    DJCT_CHECK_ARG(o);
    DJCT_CHECK_ARG(path);
    int rc = guard([&] {
        torch::serialize::OutputArchive ar;
        write_archive(o, ar);
        ar.save_to(std::string(path));
        return 0;
    });
    if (rc < 0)
        djct_error_prefix("optimizer for '%s': saving to '%s'", o->label.c_str(), path);
    return rc;
}

extern "C" int djct_optimizer_save_buffer(djct_optimizer *o, void **buf, size_t *len) noexcept
{
    DJCT_CHECK_ARG(o);
    DJCT_CHECK_ARG(buf);
    DJCT_CHECK_ARG(len);
    int rc = guard([&] {
        torch::serialize::OutputArchive ar;
        write_archive(o, ar);
        std::ostringstream os;
        ar.save_to(os);
        std::string s = os.str();
        void *p = malloc(s.size() ? s.size() : 1);
        if (!p)
            return djct_error_oom();
        memcpy(p, s.data(), s.size());
        *buf = p;
        *len = s.size();
        return 0;
    });
    if (rc < 0)
        djct_error_prefix("optimizer for '%s': saving to memory", o->label.c_str());
    return rc;
}

extern "C" int djct_optimizer_load(djct_optimizer *o, const char *path) noexcept
{
    DJCT_CHECK_ARG(o);
    DJCT_CHECK_ARG(path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return djct_error_set(DJCT_EIO, "optimizer for '%s': cannot open '%s': %s",
                              o->label.c_str(), path, strerror(errno));
    fclose(f);
    std::string src = "'" + std::string(path) + "'";
    int rc = guard([&] {
        torch::serialize::InputArchive ar;
        /* the state goes where the parameters are (a CUDA optimizer's moments on its GPU) */
        ar.load_from(std::string(path), o->param.device());
        return read_archive(o, ar, src.c_str());
    });
    if (rc == DJCT_ETORCH)
        djct_error_prefix("optimizer for '%s': loading '%s'", o->label.c_str(), path);
    return rc;
}

extern "C" int djct_optimizer_load_buffer(djct_optimizer *o, const void *buf, size_t len) noexcept
{
    DJCT_CHECK_ARG(o);
    DJCT_CHECK_ARG(buf);
    int rc = guard([&] {
        torch::serialize::InputArchive ar;
        ar.load_from((const char *)buf, len, o->param.device());
        return read_archive(o, ar, "the buffer");
    });
    if (rc == DJCT_ETORCH)
        djct_error_prefix("optimizer for '%s': loading from memory", o->label.c_str());
    return rc;
}

extern "C" void djct_optimizer_free(djct_optimizer *o) noexcept
{
    try {
        delete o;
    } catch (...) {
    }
}
