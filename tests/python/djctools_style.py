"""Python half of tests/test_python.sh for djctools' API as its README writes it (run with
/usr/bin/python3, Debian's torch):
  djctools_style.py author DIR   eager checks; export DIR/djs.pt (a model in djctools' call style)
  djctools_style.py check DIR    DIR/run/model.pt, trained by djct_train, in djctools' call style
Prints "N passed, N failed"."""
import os
import sys
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from _common import check, error_of, finish, one_line_error, segment_mean  # noqa: E402  (first: djct on the path)
import djct  # noqa: E402
from djct.module_extensions import LoggingModule, LossModule  # noqa: E402  djctools' import path
from djct.module_extensions import switch_all_logging, switch_all_losses  # noqa: E402


class ShowerLoss(LossModule):
    """djctools' MNISTLossModule, typed for TorchScript"""

    def compute_loss(self, outputs: List[Tensor], targets: List[Tensor]) -> Tensor:
        loss = F.cross_entropy(outputs[0], targets[0].reshape(-1).to(torch.int64))
        self.log("loss", loss)
        self.log("batches", 1)                 # a plain int
        return loss


class Accuracy(LoggingModule):
    """djctools' MNISTAccuracyModule: the accuracy as a plain Python number from .item()"""

    def compute_metrics(self, outputs: List[Tensor], targets: Optional[List[Tensor]]) -> None:
        if targets is None:
            return
        _, predicted = torch.max(outputs[0], 1)
        total = targets[0].size(0)
        correct = (predicted == targets[0].reshape(-1).to(torch.int64)).sum().item()
        self.log("accuracy", 100 * correct / max(total, 1))
        self.log("events", total)


class ShowerModel(torch.nn.Module):
    """forward(data) with `inputs, targets = data`, as djctools' README and MNIST example write it"""

    def __init__(self):
        super().__init__()
        self.example = LoggingModule(logging_active=True)   # README: module.log("example_metric", 123)
        self.loss_module = ShowerLoss(logging_active=True, loss_active=True, name="shower")
        self.accuracy_module = Accuracy(logging_active=True, name="acc")
        self.embed = torch.nn.Linear(4, 16)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, data: djct.Batch):
        inputs, targets = data
        points, row_splits = inputs[0], inputs[1]
        x = torch.cat([points[:, 0:3], torch.log1p(points[:, 3:4].clamp(min=0))], dim=1)
        outputs = self.head(segment_mean(torch.relu(self.embed(x)), row_splits))
        self.example.log("example_metric", 123)
        self.loss_module([outputs], targets)
        self.accuracy_module([outputs], targets)
        return outputs


class ListStyle(torch.nn.Module):
    """the other accepted typing of djctools' argument: a list [features, targets]"""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, data: List[Optional[List[Tensor]]]) -> Tensor:
        features = data[0]
        assert features is not None
        return self.lin(features[0])


# ---- the cases that must fail at export with one line ----------------------------------------
class UntypedLoss(LossModule):
    def compute_loss(self, predictions, targets):
        return F.mse_loss(predictions, targets)


class HalfTypedMetrics(LoggingModule):
    def compute_metrics(self, predictions: List[Tensor], targets) -> None:
        self.log("n", predictions[0].size(0))


class TensorTypedLoss(LossModule):
    def compute_loss(self, predictions: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(predictions, targets)


def holder(module):
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)
            self.term = module

        def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]) -> Tensor:
            out = self.lin(features[0]).reshape(-1)
            self.term([out], targets)
            return out
    return Holder()


class UntypedCall(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, data):
        inputs, targets = data
        return self.lin(inputs[0])


class UntypedPair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, features, targets):
        return self.lin(features[0])


class TensorCall(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x)


def batch(n_events=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 9, (n_events,), generator=g)
    rs = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    points = torch.rand(int(rs[-1]), 4, generator=g)
    label = torch.randint(0, 3, (n_events,), generator=g).to(torch.int32)
    energy = torch.rand(n_events, generator=g)
    return [points, rs], [label, energy]


def author(d):
    torch.manual_seed(0)
    model = ShowerModel()
    feats, tgts = batch()
    check(model.example.name.startswith("LoggingModule"), "unnamed LoggingModule gets an auto-name")
    # the README's LoggingModule usage: log a plain number
    lm = LoggingModule(logging_active=True)
    lm.log("example_metric", 123)
    lm.log("ratio", 0.25)
    m = djct.collect_metrics(lm)
    check(m == {f"{lm.name}_example_metric": 123.0, f"{lm.name}_ratio": 0.25}, f"log a plain number: {m}")
    lm.switch_logging(False)
    lm.log("example_metric", 456)
    check(djct.collect_metrics(lm) == {}, "nothing logged while switched off")
    # djctools' keyword names, static spellings and call style, eager
    LoggingModule.switch_all_logging(model, logging_active=True)
    out = model([feats, tgts])
    total = LossModule.sum_all_losses(model)
    ref = F.cross_entropy(out, tgts[0].long())
    check(abs(float(total) - float(ref)) < 1e-6, "LossModule.sum_all_losses after model([features, targets])")
    got = djct.collect_metrics(model)
    want = {f"{model.example.name}_example_metric", "shower_loss", "shower_batches", "acc_accuracy", "acc_events"}
    check(set(got) == want and got["shower_batches"] == 1.0 and got["acc_events"] == 12.0
          and got[f"{model.example.name}_example_metric"] == 123.0, f"metric names and values {got}")
    LossModule.clear_all_losses(model)
    check(error_of(lambda: LossModule.sum_all_losses(model)) is not None, "LossModule.clear_all_losses")
    switch_all_logging(model, enable_logging=False)
    check(not any(x.logging_active for x in model.modules() if djct.is_logging_module(x)),
          "switch_all_logging(model, enable_logging=False)")
    switch_all_losses(model, enable_loss=False)
    check(not model.loss_module.loss_active, "switch_all_losses(model, enable_loss=False)")
    with torch.no_grad():
        pure = model([feats, None])                  # pure inference: targets None
    check(pure.shape == (12, 3), "model([features, None]) with everything off")
    LossModule.switch_all_losses(model, loss_active=True)
    check(model.loss_module.loss_active, "LossModule.switch_all_losses(model, loss_active=True)")
    model.loss_module.switch_loss_calculation(enable_loss=False)
    model.accuracy_module.switch_logging(enable_logging=True)
    check(not model.loss_module.loss_active and model.accuracy_module.logging_active,
          "instance switches with djctools' older keyword names")
    switch_all_losses(model, True)                   # positional, as before
    switch_all_logging(model, False)
    one_line_error(lambda: switch_all_logging(model), TypeError, ["logging_active=", "enable_logging="],
                   "a switch without its value")
    one_line_error(lambda: switch_all_losses(model, loss_active=True, enable_loss=False), TypeError,
                   ["both"], "a switch given twice")
    check(djct.module_extensions.LossModule is djct.LossModule, "djct.module_extensions is djct")

    # export: djct's forward(features, targets) around the djctools-style model
    scripted = djct.export(model, os.path.join(d, "djs.pt"))
    args = scripted.forward.schema.arguments
    check([str(a.type) for a in args[1:]] == ["List[Tensor]", "Optional[List[Tensor]]"],
          f"exported forward is djct's: {scripted.forward.schema}")
    loaded = torch.jit.load(os.path.join(d, "djs.pt"))
    djct.switch_all_losses(loaded, False)
    with torch.no_grad():
        check(torch.equal(loaded(feats, None), pure), "loaded(features, None) == eager")
        check(torch.equal(loaded.model([feats, None]), pure), "loaded.model([features, None]) == eager")
    djct.switch_all_losses(loaded, True)
    djct.switch_all_logging(loaded, True)
    loaded(feats, tgts)
    got = djct.collect_metrics(loaded)
    check(got.get(f"{model.example.name}_example_metric") == 123.0 and got.get("shower_batches") == 1.0
          and got.get("acc_events") == 12.0, f"plain numbers logged by the scripted model: {got}")
    check(abs(float(LossModule.sum_all_losses(loaded)) - float(ref)) < 1e-5, "scripted sum_all_losses")
    # an already scripted djctools-style model, and the list typing of the argument
    s2 = djct.export(torch.jit.script(ShowerModel()), os.path.join(d, "djs2.pt"))
    check(str(s2.forward.schema.arguments[2].type) == "Optional[List[Tensor]]", "export of a scripted model")
    lst = ListStyle()
    s3 = djct.export(lst, os.path.join(d, "list.pt"))
    with torch.no_grad():
        check(torch.equal(s3(feats, None), lst([feats, None])), "forward(self, data: List[Optional[List[Tensor]]])")

    # the one-line errors naming the annotation to add
    p = os.path.join(d, "bad.pt")
    one_line_error(lambda: djct.export(holder(UntypedLoss()), p), TypeError,
                   ["UntypedLoss.compute_loss(self, predictions, targets)", "no type hint",
                    "predictions: List[Tensor], targets: List[Tensor]"], "compute_loss without type hints")
    one_line_error(lambda: djct.export(holder(HalfTypedMetrics()), p), TypeError,
                   ["HalfTypedMetrics.compute_metrics", "'targets' has no type hint",
                    "targets: Optional[List[Tensor]]"], "compute_metrics without a targets type")
    one_line_error(lambda: djct.export(holder(TensorTypedLoss()), p), TypeError,
                   ["'predictions' is annotated Tensor", "predictions: List[Tensor]"],
                   "compute_loss typed Tensor")
    one_line_error(lambda: djct.export(UntypedCall(), p), TypeError,
                   ["UntypedCall.forward(self, data) has no type hint", "data: djct.Batch"],
                   "forward(self, data) without a type")
    one_line_error(lambda: djct.export(UntypedPair(), p), TypeError,
                   ["features: List[Tensor], targets: Optional[List[Tensor]]"],
                   "forward(self, features, targets) without types")
    one_line_error(lambda: djct.export(TensorCall(), p), TypeError,
                   ["forward must be", "found TensorCall.forward(self, x: Tensor)"], "forward(self, x: Tensor)")
    check(not os.path.exists(p), "no file written for a refused model")


def check_trained(d):
    feats, _ = batch(7, seed=5)
    before = torch.jit.load(os.path.join(d, "djs.pt"))
    m = torch.jit.load(os.path.join(d, "run", "model.pt"))
    check(hasattr(m, "model"), "djct_train saved the model with its djctools-style submodule")
    moved = any(not torch.equal(a, b) for a, b in zip(before.parameters(), m.parameters()))
    check(moved, "djct_train changed the parameters")
    LoggingModule.switch_all_logging(m, logging_active=False)
    LossModule.switch_all_losses(m, loss_active=False)
    m.eval()
    with torch.no_grad():
        a = m.model([feats, None])
        b = m(feats, None)
    check(a.shape == (7, 3) and torch.equal(a, b), "the trained model in djctools' call style, targets None")


if __name__ == "__main__":
    {"author": author, "check": check_trained}[sys.argv[1]](sys.argv[2])
    finish()
