"""Python half of tests/test_python.sh (run with /usr/bin/python3, Debian's torch).
  roundtrip.py author DIR   eager checks of python/djct, export DIR/in.pt (+ bad models), DIR/data.bin
  roundtrip.py check DIR    reload DIR/out.pt trained by C; outputs must match the C side's
Prints "N passed, N failed"."""
import os
import struct
import sys
from typing import List, Optional

import torch
from torch import Tensor

from _common import check, finish  # noqa: E402  (first: djct on the path)
import djct  # noqa: E402


def raises(fn, needle):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return needle in str(e)
    return False


class Regression(djct.LossModule):
    def compute_loss(self, inputs: List[Tensor], targets: List[Tensor]) -> Tensor:
        loss = torch.nn.functional.mse_loss(inputs[0], targets[0].reshape(-1))
        self.log("loss", loss)
        return loss


class Smallness(djct.LossModule):
    """own forward: an L2 penalty on the output that never reads targets"""
    def forward(self, out: Tensor) -> None:
        if self.loss_active:
            self.add_loss(1e-3 * (out * out).mean())


class Stats(djct.LoggingModule):
    def compute_metrics(self, inputs: List[Tensor], targets: Optional[List[Tensor]]) -> None:
        self.log("mean_out", inputs[0].mean())


class Head(torch.nn.Module):
    """a plain module holding a LoggingModule: nested toggles go through it"""
    def __init__(self):
        super().__init__()
        self.stats = Stats()

    def forward(self, out: Tensor, targets: Optional[List[Tensor]]) -> None:
        self.stats([out], targets)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.loss = Regression()                 # LoggingModule1
        self.aux = Smallness(name="aux")
        self.head = Head()                       # its Stats: LoggingModule2

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):
        out = self.body(features[0]).reshape(-1)
        self.loss([out], targets)
        self.aux(out)
        self.head(out, targets)
        return out


class WrongSignature(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x)


class Double(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1).double()

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]) -> Tensor:
        return self.lin(features[0])


def author(d):
    torch.manual_seed(0)
    net = Net()
    # djctools semantics, eager
    check(net.loss.name == "LoggingModule1" and net.head.stats.name == "LoggingModule2"
          and net.aux.name == "aux", "auto-names")
    check(not net.loss.logging_active and net.loss.loss_active, "defaults: logging off, loss on")
    x = torch.randn(50, 6)
    y = (x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3])
    out = net([x], [y])
    total = djct.sum_all_losses(net)
    check(total.requires_grad and abs(float(total) - float(
        torch.nn.functional.mse_loss(out, y) + 1e-3 * (out * out).mean())) < 1e-6, "sum_all_losses")
    djct.clear_all_losses(net)
    check(raises(lambda: djct.sum_all_losses(net), "losses are active but none was recorded"),
          "nothing recorded")
    check(djct.collect_metrics(net) == {}, "no metrics while logging is off")
    djct.switch_all_logging(net, True)
    net([x], [y])
    m = djct.collect_metrics(net)
    check(set(m) == {"LoggingModule1_loss", "LoggingModule2_mean_out"}, f"metric names {m}")
    check(djct.collect_metrics(net) == {}, "metrics cleared")
    # nested toggles: switching the parent LossModule's logging reaches nested ones
    net.loss.switch_logging(False)
    check(not net.loss.logging_active and net.head.stats.logging_active, "switch one")
    djct.switch_all_losses(net, False)
    djct.switch_all_logging(net, False)
    check(not net.aux.loss_active, "switch_all_losses")
    djct.clear_all_losses(net)
    net.eval()
    with torch.no_grad():
        ref = net([x], None)               # pure inference: targets absent
    check(raises(lambda: djct.sum_all_losses(net), "switched off"), "all off")
    djct.switch_all_losses(net, True)
    check(raises(lambda: net([x], None), "is active but targets are None"), "active loss needs targets")
    net.train()
    djct.clear_all_losses(net)
    # scripted: same behaviour
    scripted = djct.export(net, os.path.join(d, "in.pt"))
    djct.switch_all_losses(scripted, False)
    with torch.no_grad():
        check(torch.equal(scripted([x], None), ref), "scripted inference == eager")
    djct.switch_all_losses(scripted, True)
    scripted([x], [y])
    check(abs(float(djct.sum_all_losses(scripted)) - float(total)) < 1e-5, "scripted sum == eager sum")
    check(raises(lambda: djct.export(WrongSignature(), os.path.join(d, "x.pt")), "forward must be"),
          "export checks the signature")
    torch.jit.script(WrongSignature()).save(os.path.join(d, "bad_signature.pt"))
    torch.jit.script(Double()).save(os.path.join(d, "double.pt"))
    with open(os.path.join(d, "data.bin"), "wb") as f:
        f.write(struct.pack("<qq", x.shape[0], x.shape[1]))
        f.write(x.contiguous().numpy().tobytes())
        f.write(y.contiguous().numpy().tobytes())


def check_trained(d):
    import numpy as np
    with open(os.path.join(d, "data.bin"), "rb") as f:
        n, nf = struct.unpack("<qq", f.read(16))
        x = torch.from_numpy(np.frombuffer(f.read(4 * n * nf), dtype=np.float32).reshape(n, nf).copy())
    c_out = torch.from_numpy(np.fromfile(os.path.join(d, "data.bin.out"), dtype=np.float32))
    before = torch.jit.load(os.path.join(d, "in.pt"))
    m = torch.jit.load(os.path.join(d, "out.pt"))
    # switch states saved by C: aux off (logging and loss), the rest as trained (loss on, logging off)
    check(not m.aux.loss_active and not m.aux.logging_active, "aux switched off by C")
    check(m.loss.loss_active and not m.loss.logging_active, "loss module states")
    check(m.loss._djct_name == "LoggingModule1", "names kept")
    moved = any(not torch.equal(a, b) for a, b in zip(before.parameters(), m.parameters()))
    check(moved, "C training changed the parameters")
    djct.switch_all_losses(m, False)
    djct.switch_all_logging(m, False)
    m.eval()
    with torch.no_grad():
        out = m([x], None)
    diff = float((out - c_out).abs().max())
    print(f"max |python - C| = {diff:.3g} over {n} outputs")
    check(out.shape == c_out.shape and diff < 1e-5, "Python reproduces C's outputs")


if __name__ == "__main__":
    {"author": author, "check": check_trained}[sys.argv[1]](sys.argv[2])
    finish()
