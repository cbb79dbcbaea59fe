"""djct's Python helper: djctools-style LoggingModule / LossModule that stay TorchScript
compatible, model-wide switches, and export() that scripts and saves a model for djct_train.

The attribute names below are the convention the C side drives (docs/models.md); they are
defined once here and once in src/torch/model_int.hpp:
    every LoggingModule: _djct_name: str, logging_active: bool, _djct_metrics: Dict[str, Tensor]
    every LossModule also: loss_active: bool, _djct_losses: List[Tensor]
The module-wide functions also work on scripted / torch.jit.load'ed models (they look for the
attributes, not the Python class).
"""
from typing import Dict, List, Optional

import torch
from torch import Tensor

__all__ = ["LoggingModule", "LossModule", "switch_all_logging", "switch_all_losses",
           "sum_all_losses", "clear_all_losses", "collect_metrics", "export",
           "is_logging_module", "is_loss_module"]

ATTR_NAME, ATTR_LOGGING, ATTR_METRICS = "_djct_name", "logging_active", "_djct_metrics"
ATTR_LOSS, ATTR_LOSSES = "loss_active", "_djct_losses"


class LoggingModule(torch.nn.Module):
    """A module that records metrics only while `logging_active` (djctools semantics).

    Unnamed instances are called LoggingModule1, LoggingModule2, ... in creation order (one
    counter per process, as in djctools). Subclasses either implement
    `compute_metrics(inputs, targets)` and call the module as `self.m(inputs, targets)` (the
    base forward calls compute_metrics only while logging is on, so targets may be None
    otherwise), or write their own forward and call `self.log(...)`.
    """
    __jit_unused_properties__ = ["name"]
    _djct_name: str
    logging_active: bool
    _djct_metrics: Dict[str, Tensor]
    _instance_count = 0

    def __init_subclass__(cls, **kwargs):
        # TorchScript reads a module's attribute types from its class's __annotations__, which
        # Python does not merge along the bases: merge those of the djct classes in
        super().__init_subclass__(**kwargs)
        ann = {}
        for k in reversed(cls.__mro__):
            if isinstance(k, type) and issubclass(k, LoggingModule):
                ann.update(k.__dict__.get("__annotations__", {}))
        cls.__annotations__ = ann

    def __init__(self, name: Optional[str] = None, logging_active: bool = False):
        super().__init__()
        if name is None:
            LoggingModule._instance_count += 1
            name = f"LoggingModule{LoggingModule._instance_count}"
        self._djct_name = name
        self._djct_metrics = {}
        self.logging_active = False
        self.switch_logging(logging_active)

    @property
    def name(self) -> str:
        return self._djct_name

    def switch_logging(self, logging_active: bool) -> None:
        """Switch logging of this module and of every LoggingModule nested inside it."""
        for m in self.modules():
            if is_logging_module(m):
                setattr(m, ATTR_LOGGING, bool(logging_active))

    def log(self, metric_name: str, value: Tensor) -> None:
        """Record a metric (a tensor; its mean is logged) while logging is on; no-op otherwise."""
        if self.logging_active:
            self._djct_metrics[metric_name] = value.detach()

    def forward(self, inputs: List[Tensor], targets: Optional[List[Tensor]]) -> None:
        if self.logging_active:
            self.compute_metrics(inputs, targets)

    def compute_metrics(self, inputs: List[Tensor], targets: Optional[List[Tensor]]) -> None:
        raise NotImplementedError("subclasses of LoggingModule implement compute_metrics "
                                  "or their own forward")


class LossModule(LoggingModule):
    """A loss term: while `loss_active` it computes and records its loss; while inactive it
    does nothing and never touches the targets. Subclasses implement
    `compute_loss(inputs, targets) -> Tensor` (a scalar, the mean over the batch) and are called
    as `self.loss(inputs, targets)`; or write their own forward and call `self.add_loss(loss)`
    under `if self.loss_active:`. Logging (`self.log`) is switched separately.
    """
    loss_active: bool
    _djct_losses: List[Tensor]

    def __init__(self, name: Optional[str] = None, logging_active: bool = False,
                 loss_active: bool = True):
        super().__init__(name=name, logging_active=logging_active)
        self._djct_losses = []
        self.loss_active = True
        self.switch_loss_calculation(loss_active)

    def switch_loss_calculation(self, loss_active: bool) -> None:
        """Switch loss computation of this module and of every LossModule nested inside it."""
        for m in self.modules():
            if is_loss_module(m):
                setattr(m, ATTR_LOSS, bool(loss_active))

    def add_loss(self, loss: Tensor) -> None:
        if self.loss_active:
            self._djct_losses.append(loss)

    def clear_losses(self) -> None:
        self._djct_losses = []

    def forward(self, inputs: List[Tensor], targets: Optional[List[Tensor]]) -> None:
        if self.loss_active:
            if targets is None:
                raise RuntimeError("LossModule '" + self._djct_name + "' is active but targets "
                                   "are None; switch it off for inference")
            self.add_loss(self.compute_loss(inputs, targets))

    def compute_loss(self, inputs: List[Tensor], targets: List[Tensor]) -> Tensor:
        raise NotImplementedError("subclasses of LossModule implement compute_loss "
                                  "or their own forward")


def is_logging_module(m) -> bool:
    """True for a LoggingModule, eager or scripted (it has the convention's attributes)."""
    return all(hasattr(m, a) for a in (ATTR_NAME, ATTR_LOGGING, ATTR_METRICS))


def is_loss_module(m) -> bool:
    return is_logging_module(m) and hasattr(m, ATTR_LOSS) and hasattr(m, ATTR_LOSSES)


def switch_all_logging(module: torch.nn.Module, logging_active: bool) -> None:
    """Switch logging of every LoggingModule (LossModules included) inside `module`."""
    for m in module.modules():
        if is_logging_module(m):
            setattr(m, ATTR_LOGGING, bool(logging_active))


def switch_all_losses(module: torch.nn.Module, loss_active: bool) -> None:
    """Switch loss computation of every LossModule inside `module`."""
    for m in module.modules():
        if is_loss_module(m):
            setattr(m, ATTR_LOSS, bool(loss_active))


def sum_all_losses(module: torch.nn.Module) -> Tensor:
    """Sum of the losses recorded by every LossModule inside `module` (what djct backpropagates).
    Raises RuntimeError when nothing was recorded, as the C side does."""
    losses, active = [], False
    for m in module.modules():
        if is_loss_module(m):
            active = active or bool(getattr(m, ATTR_LOSS))
            losses.extend(getattr(m, ATTR_LOSSES))
    if not losses:
        raise RuntimeError("losses are active but none was recorded" if active else
                           "every LossModule is switched off, so there is no loss to sum")
    total = losses[0].reshape(())
    for l in losses[1:]:
        total = total + l.reshape(())
    return total


def clear_all_losses(module: torch.nn.Module) -> None:
    """Forget the recorded losses of every LossModule inside `module`."""
    for m in module.modules():
        if is_loss_module(m):
            setattr(m, ATTR_LOSSES, [])


def collect_metrics(module: torch.nn.Module) -> Dict[str, float]:
    """Recorded metrics as {"<name>_<metric>": float}, then cleared (as djct's C side does)."""
    out = {}
    for m in module.modules():
        if is_logging_module(m):
            for k, v in dict(getattr(m, ATTR_METRICS)).items():
                out[f"{getattr(m, ATTR_NAME)}_{k}"] = float(v.float().mean())
            setattr(m, ATTR_METRICS, {})
    return out


def export(model: torch.nn.Module, path: str) -> torch.jit.ScriptModule:
    """Script `model` (if it is not scripted yet), check the forward signature djct expects,
    clear recorded losses and metrics, and save it to `path`. Returns the scripted module."""
    scripted = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
    schema = scripted.forward.schema
    args = schema.arguments
    ok = (len(args) == 3 and str(args[1].type) == "List[Tensor]"
          and str(args[2].type) == "Optional[List[Tensor]]")
    if not ok:
        raise TypeError(f"djct.export: forward must be forward(self, features: List[Tensor], "
                        f"targets: Optional[List[Tensor]]), found {schema}")
    for name, p in scripted.named_parameters():
        if p.requires_grad and p.dtype != torch.float32:
            raise TypeError(f"djct.export: parameter '{name}' is {p.dtype}; djct trains float32 "
                            "parameters (call .float() first)")
    clear_all_losses(scripted)
    for m in scripted.modules():
        if is_logging_module(m):
            setattr(m, ATTR_METRICS, {})
    scripted.save(path)
    return scripted
