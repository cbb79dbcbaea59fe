/* Built-in models, built without Python: a torch::jit::Module per (sub)module with registered
 * parameters and attributes and TorchScript source compiled at run time, so a saved built-in is
 * ordinary TorchScript. Each loss and metric submodule follows the convention of docs/models.md
 * (attribute names in model_int.hpp). */
#include "model_int.hpp"

#include <cmath>
#include <cstring>

#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

extern "C" {
#include "djct_int.h"
}

namespace {
using torch::jit::Module;

/* run-time TorchScript knows `torch.*` (the native resolver); `raise Exception(...)` needs the
   exception name too, which Python's resolver would normally provide */
struct Resolver : torch::jit::Resolver {
    std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string &name,
                                                           torch::jit::GraphFunction &,
                                                           const torch::jit::SourceRange &) override
    {
        if (name == "torch")
            return std::make_shared<torch::jit::BuiltinModule>("aten");
        if (name == "Exception")
            return std::make_shared<torch::jit::ExceptionValue>(name);
        return nullptr;
    }
};

void define(Module &m, const std::string &src)
{
    m.define(src, std::make_shared<Resolver>());
}

struct Builder {
    std::shared_ptr<torch::jit::CompilationUnit> cu = std::make_shared<torch::jit::CompilationUnit>();

    Module make(const std::string &cls)
    {
        return Module(c10::QualifiedName("__torch__.djct.builtin." + cls), cu, false);
    }

    /* the convention's attributes; loss adds loss_active and the recorded-loss list */
    Module logging_module(const std::string &cls, const std::string &name, bool loss)
    {
        Module m = make(cls);
        m.register_attribute(DJCT_ATTR_NAME, c10::StringType::get(), name);
        m.register_attribute(DJCT_ATTR_LOGGING, c10::BoolType::get(), false);
        m.register_attribute(DJCT_ATTR_METRICS,
                             c10::DictType::create(c10::StringType::get(), c10::TensorType::get()),
                             c10::impl::GenericDict(c10::StringType::get(), c10::TensorType::get()));
        if (loss) {
            m.register_attribute(DJCT_ATTR_LOSS, c10::BoolType::get(), true);
            m.register_attribute(DJCT_ATTR_LOSSES, c10::ListType::ofTensors(), c10::List<at::Tensor>());
        }
        return m;
    }
};

/* nn.Linear's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias */
void linear(Module &m, const std::string &name, int64_t in, int64_t out)
{
    double b = 1.0 / std::sqrt((double)in);
    torch::NoGradGuard ng;
    m.register_parameter(name + "_weight", torch::empty({out, in}).uniform_(-b, b).requires_grad_(), false);
    m.register_parameter(name + "_bias", torch::empty({out}).uniform_(-b, b).requires_grad_(), false);
}

std::string lin(const std::string &x, const std::string &name)
{
    return "torch.linear(" + x + ", self." + name + "_weight, self." + name + "_bias)";
}

const char *NEED_TARGETS =
    "        if targets is None:\n"
    "            raise Exception(\"%s '\" + self." DJCT_ATTR_NAME " + \"' is active but targets "
    "are None; switch it off for inference\")\n";

std::string need_targets(const char *what)
{
    char buf[512];
    snprintf(buf, sizeof buf, NEED_TARGETS, what);
    return buf;
}

/* a LossModule of the convention: while active, `body` computes `loss` from the argument `arg`
 * and the targets; the loss is recorded, and logged while logging is on */
Module loss_module(Builder &b, const std::string &cls, const std::string &name, const std::string &arg,
                   const std::string &body)
{
    Module m = b.logging_module(cls, name, true);
    define(m,
        "def forward(self, " + arg + ": Tensor, targets: Optional[List[Tensor]]):\n"
        "    if self." DJCT_ATTR_LOSS ":\n" + need_targets("LossModule") + body +
        "        self." DJCT_ATTR_LOSSES ".append(loss)\n"
        "        if self." DJCT_ATTR_LOGGING ":\n"
        "            self." DJCT_ATTR_METRICS "['loss'] = loss.detach()\n");
    return m;
}

/* cross entropy on logits vs integer-valued labels (int32, int64 or float32) in targets[idx] */
Module xent_loss(Builder &b, const std::string &name, int idx)
{
    return loss_module(b, "CrossEntropyLoss", name, "logits",
                       "        labels = targets[" + std::to_string(idx) + "].reshape([-1]).long()\n"
                       "        loss = torch.nll_loss(torch.log_softmax(logits, 1), labels)\n");
}

Module mse_loss(Builder &b, const std::string &name, int idx)
{
    return loss_module(b, "MSELoss", name, "pred",
                       "        truth = targets[" + std::to_string(idx) + "].reshape([-1]).to(pred.dtype)\n"
                       "        loss = torch.mse_loss(pred, truth)\n");
}

/* a LoggingModule of the convention: while logging is on, `body` fills the metrics from the
 * arguments `args` and the targets */
Module metrics_module(Builder &b, const std::string &cls, const std::string &name, const std::string &args,
                      const std::string &body)
{
    Module m = b.logging_module(cls, name, false);
    define(m,
        "def forward(self, " + args + ", targets: Optional[List[Tensor]]):\n"
        "    if self." DJCT_ATTR_LOGGING ":\n" + need_targets("LoggingModule") + body);
    return m;
}

/* the classifier's accuracy, `acc`, against the integer labels in targets[0] */
const char *ACCURACY =
    "        labels = targets[0].reshape([-1]).long()\n"
    "        acc = (torch.argmax(logits, 1) == labels).float().mean()\n";

Module accuracy(Builder &b, const std::string &name)
{
    return metrics_module(b, "Accuracy", name, "logits: Tensor",
                          std::string(ACCURACY) + "        self." DJCT_ATTR_METRICS "['accuracy'] = acc.detach()\n");
}

/* accuracy of the classifier and resolution (std of pred - truth) and bias of the regression */
Module pc_metrics(Builder &b, const std::string &name)
{
    return metrics_module(b, "PointCloudMetrics", name, "logits: Tensor, pred: Tensor",
                          std::string(ACCURACY) +
                          "        res = pred.detach() - targets[1].reshape([-1]).to(pred.dtype)\n"
                          "        self." DJCT_ATTR_METRICS "['accuracy'] = acc.detach()\n"
                          "        self." DJCT_ATTR_METRICS "['resolution'] = torch.std(res)\n"
                          "        self." DJCT_ATTR_METRICS "['bias'] = torch.mean(res)\n");
}

/* the sizes of a built-in: the options', or the model's default where 0 (or no options) */
struct Sizes {
    int64_t in, hid, cls;
    int layers;
};

Sizes sizes(const djct_model_options *o, int64_t in, int64_t hid, int64_t cls)
{
    return {o && o->n_inputs ? o->n_inputs : in, o && o->hidden ? o->hidden : hid,
            o && o->n_classes ? o->n_classes : cls, o && o->n_layers ? o->n_layers : 2};
}

/* the hidden layers <prefix>0, <prefix>1, ... on the variable x: linear to the hidden width, then
 * relu; their lines go to src. Returns the width of x after them. */
int64_t relu_layers(Module &m, std::string &src, const std::string &x, const std::string &prefix, const Sizes &s)
{
    int64_t width = s.in;
    for (int l = 0; l < s.layers; l++) {
        std::string n = prefix + std::to_string(l);
        linear(m, n, width, s.hid);
        width = s.hid;
        src += "    " + x + " = torch.relu(" + lin(x, n) + ")\n";
    }
    return width;
}

Module build_mlp(const djct_model_options *o)
{
    Sizes sz = sizes(o, 784, 256, 10);
    Builder b;
    Module m = b.make("MLP");
    std::string src =
        "def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):\n"
        "    x = features[0]\n"
        "    x = x.reshape([x.size(0), -1]).float()\n";
    int64_t width = relu_layers(m, src, "x", "fc", sz);
    linear(m, "out", width, sz.cls);
    m.register_module("loss", xent_loss(b, "loss", 0));
    m.register_module("metrics", accuracy(b, "metrics"));
    src += "    logits = " + lin("x", "out") + "\n"
           "    self.loss.forward(logits, targets)\n"
           "    self.metrics.forward(logits, targets)\n"
           "    return logits\n";
    define(m, src);
    return m;
}

Module build_pointcloud(const djct_model_options *o)
{
    Sizes sz = sizes(o, 8, 64, 2);
    Builder b;
    Module m = b.make("PointCloud");
    std::string src =
        "def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):\n"
        "    h = features[0].float()\n"
        "    rs = features[1].reshape([-1])\n"
        "    n_events = rs.size(0) - 1\n";
    relu_layers(m, src, "h", "point", sz);
    linear(m, "global0", sz.hid, sz.hid);
    linear(m, "cls", sz.hid, sz.cls);
    linear(m, "reg", sz.hid, 1);
    m.register_module("classification", xent_loss(b, "classification", 0));
    m.register_module("regression", mse_loss(b, "regression", 1));
    m.register_module("metrics", pc_metrics(b, "metrics"));
    /* mean pooling per event: segment sum with index_add_ over repeat_interleave'd row splits */
    src += "    counts = rs[1:] - rs[:-1]\n"
           "    seg = torch.repeat_interleave(torch.arange(n_events, device=h.device), counts)\n"
           "    pooled = torch.zeros([n_events, h.size(1)], dtype=h.dtype, device=h.device)\n"
           "    pooled = pooled.index_add_(0, seg, h) / counts.clamp(1).to(h.dtype).unsqueeze(1)\n"
           "    g = torch.relu(" + lin("pooled", "global0") + ")\n"
           "    logits = " + lin("g", "cls") + "\n"
           "    pred = " + lin("g", "reg") + ".reshape([-1])\n"
           "    self.classification.forward(logits, targets)\n"
           "    self.regression.forward(pred, targets)\n"
           "    self.metrics.forward(logits, pred, targets)\n"
           "    return (logits, pred)\n";
    define(m, src);
    return m;
}
} // namespace

extern "C" int djct_model_builtin(djct_model **out, const char *name, const djct_model_options *opts) noexcept
{
    DJCT_CHECK_ARG(out);
    DJCT_CHECK_ARG(name);
    DJCT_CHECK_VERSION(opts, DJCT_MODEL_OPTIONS_VERSION, "djct_model_options");
    *out = nullptr;
    bool mlp = strcmp(name, "mlp") == 0, pc = strcmp(name, "pointcloud") == 0;
    if (!mlp && !pc)
        return djct_error_set(DJCT_EINVAL, "built-in model '%s' does not exist; use \"mlp\" or "
                              "\"pointcloud\"", name);
    if (opts && (opts->n_inputs < 0 || opts->hidden < 0 || opts->n_layers < 0 || opts->n_layers > 64 ||
                 opts->n_classes < 0 || (opts->n_classes == 1)))
        return djct_error_set(DJCT_EINVAL, "built-in model '%s': sizes must be >= 0 (0: default), "
                              "n_layers <= 64 and n_classes >= 2; got n_inputs %lld hidden %lld "
                              "n_layers %d n_classes %lld", name, (long long)opts->n_inputs,
                              (long long)opts->hidden, opts->n_layers, (long long)opts->n_classes);
    std::string label = std::string("builtin:") + name;
    torch::Device dev(torch::kCPU);
    int err = djct_model_device(&dev, opts, label);
    if (err < 0)
        return err;
    torch::jit::Module mod;
    int rc = guard([&] {
        mod = mlp ? build_mlp(opts) : build_pointcloud(opts);
        return 0;
    });
    if (rc < 0)
        return djct_error_prefix("model '%s'", label.c_str());
    return djct_model_adopt(out, std::move(mod), label, opts);
}
