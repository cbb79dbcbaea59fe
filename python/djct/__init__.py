"""djct's Python helper: djctools-style LoggingModule / LossModule that stay TorchScript
compatible, model-wide switches, export() that scripts and saves a model for djct_train, and
wandb_wrapper (djct/wandb_tools.py), djctools' logging singleton writing a djct run journal.

The attribute names below are the convention the C side drives (docs/models.md); they are
defined once here and once in src/torch/model_int.hpp:
    every LoggingModule: _djct_name: str, logging_active: bool, _djct_metrics: Dict[str, Tensor]
    every LossModule also: loss_active: bool, _djct_losses: List[Tensor]
The module-wide functions also work on scripted / torch.jit.load'ed models (they look for the
attributes, not the Python class).
"""
import inspect
import typing
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from .wandb_tools import wandb_wrapper

__all__ = ["LoggingModule", "LossModule", "switch_all_logging", "switch_all_losses",
           "sum_all_losses", "clear_all_losses", "collect_metrics", "export",
           "is_logging_module", "is_loss_module", "Batch", "wandb_wrapper"]

ATTR_NAME, ATTR_LOGGING, ATTR_METRICS = "_djct_name", "logging_active", "_djct_metrics"
ATTR_LOSS, ATTR_LOSSES = "loss_active", "_djct_losses"

# The argument of a model written in djctools' call style, forward(self, data: djct.Batch) with
# `features, targets = data`; export() adapts it to the forward(features, targets) djct calls.
Batch = Tuple[List[Tensor], Optional[List[Tensor]]]


def _metric_tensor(module: str, metric: str, value: Any) -> Tensor:
    """A LoggingModule.log value as the tensor the convention stores. `value` is typed Any: a
    Union of Tensor and numbers does not survive torch.jit.save/load in libtorch 1.13, and
    TorchScript types a tensor's .item() as `number`, which only Any (or such a Union) accepts."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, float):
        return torch.tensor(value)
    if isinstance(value, bool):
        return torch.tensor(1.0 if value else 0.0)
    if isinstance(value, int):
        return torch.tensor(float(value))
    if not torch.jit.is_scripting():  # eager Python: numpy numbers and the like
        return torch.tensor(float(value))
    raise RuntimeError("LoggingModule '" + module + "': metric '" + metric + "' is neither a tensor "
                       "nor a real number; log a tensor, a float, an int or a bool")


def _flag(fn: str, value, alias, name: str, alias_name: str) -> bool:
    """A switch given by djct's / djctools' current keyword or by djctools' older one."""
    if value is None and alias is None:
        raise TypeError(f"{fn}() needs {name}=True or False (or {alias_name}=)")
    if value is not None and alias is not None:
        raise TypeError(f"{fn}() got both {name}= and {alias_name}=; give one")
    return bool(value if value is not None else alias)


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

    def switch_logging(self, logging_active: Optional[bool] = None,
                       enable_logging: Optional[bool] = None) -> None:
        """Switch logging of this module and of every LoggingModule nested inside it."""
        on = _flag("switch_logging", logging_active, enable_logging, "logging_active", "enable_logging")
        for m in self.modules():
            if is_logging_module(m):
                setattr(m, ATTR_LOGGING, on)

    def log(self, metric_name: str, value: Any) -> None:
        """Record a metric while logging is on (no-op otherwise): a tensor (its mean is logged)
        or a plain number (int, float, bool, a tensor's .item())."""
        if self.logging_active:
            self._djct_metrics[metric_name] = _metric_tensor(self._djct_name, metric_name, value)

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

    def switch_loss_calculation(self, loss_active: Optional[bool] = None,
                                enable_loss: Optional[bool] = None) -> None:
        """Switch loss computation of this module and of every LossModule nested inside it."""
        on = _flag("switch_loss_calculation", loss_active, enable_loss, "loss_active", "enable_loss")
        for m in self.modules():
            if is_loss_module(m):
                setattr(m, ATTR_LOSS, on)

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


def switch_all_logging(module: torch.nn.Module, logging_active: Optional[bool] = None,
                       enable_logging: Optional[bool] = None) -> None:
    """Switch logging of every LoggingModule (LossModules included) inside `module`.
    The switch is `logging_active` (djctools' current name) or `enable_logging` (its older one)."""
    on = _flag("switch_all_logging", logging_active, enable_logging, "logging_active", "enable_logging")
    for m in module.modules():
        if is_logging_module(m):
            setattr(m, ATTR_LOGGING, on)


def switch_all_losses(module: torch.nn.Module, loss_active: Optional[bool] = None,
                      enable_loss: Optional[bool] = None) -> None:
    """Switch loss computation of every LossModule inside `module` (`loss_active` or `enable_loss`)."""
    on = _flag("switch_all_losses", loss_active, enable_loss, "loss_active", "enable_loss")
    for m in module.modules():
        if is_loss_module(m):
            setattr(m, ATTR_LOSS, on)


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


# djctools' static-method spellings: LoggingModule.switch_all_logging(model, ...),
# LossModule.switch_all_losses / sum_all_losses / clear_all_losses(model)
LoggingModule.switch_all_logging = staticmethod(switch_all_logging)
LossModule.switch_all_losses = staticmethod(switch_all_losses)
LossModule.sum_all_losses = staticmethod(sum_all_losses)
LossModule.clear_all_losses = staticmethod(clear_all_losses)


# ---- export -------------------------------------------------------------------------------------

class _BatchCall(torch.nn.Module):
    """djct's forward(features, targets) around a model written as forward(self, data: djct.Batch)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):
        return self.model((features, targets))


class _ListCall(torch.nn.Module):
    """The same for forward(self, data: List[Optional[List[Tensor]]])."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):
        data: List[Optional[List[Tensor]]] = [features, targets]
        return self.model(data)


_LIST_T = List[Tensor]
_OPT_LIST_T = Optional[List[Tensor]]
_TYPES = "(from typing import List, Optional; from torch import Tensor)"


def _hints(fn):
    """Parameter name -> annotation (None where there is none), `self` left out."""
    try:
        resolved = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001  an annotation that does not resolve: TorchScript will say
        resolved = {}
    out = {}
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        ann = resolved.get(p.name, p.annotation)
        out[p.name] = None if ann is inspect.Parameter.empty else ann
    return out


def _type_str(t) -> str:
    s = getattr(t, "__name__", None) if not typing.get_args(t) else None
    return s or str(t).replace("typing.", "").replace("torch.", "")


def _is_list_of_tensor(t) -> bool:
    return typing.get_origin(t) in (list, List) and typing.get_args(t) == (Tensor,)


def _is_optional_list_of_tensor(t) -> bool:
    args = typing.get_args(t)
    return (typing.get_origin(t) is Union and len(args) == 2 and type(None) in args
            and any(_is_list_of_tensor(a) for a in args))


def _check_compute(cls, method: str, want_targets_optional: bool) -> None:
    """A LoggingModule/LossModule subclass that relies on the base forward: its compute_metrics /
    compute_loss must take (inputs: List[Tensor], targets: [Optional[]]List[Tensor]), annotated,
    because TorchScript types an unannotated parameter as Tensor."""
    fn = getattr(cls, method)
    base = LossModule.compute_loss if method == "compute_loss" else LoggingModule.compute_metrics
    kind = "LossModule" if method == "compute_loss" else "LoggingModule"
    if fn is base:  # used only through log() / add_loss() by its parent: nothing to check
        return
    hints = _hints(fn)
    names = list(hints)
    tgt = "Optional[List[Tensor]]" if want_targets_optional else "List[Tensor]"
    ret = "None" if method == "compute_metrics" else "Tensor"
    if len(names) != 2:
        raise TypeError(f"djct.export: {cls.__qualname__}.{method}(self, {', '.join(names)}) must take two "
                        f"arguments, (inputs: List[Tensor], targets: {tgt}), as the {kind} is called "
                        f"self.module(inputs, targets)")
    a, b = names
    want = f"def {method}(self, {a}: List[Tensor], {b}: {tgt}) -> {ret} {_TYPES}"
    if hints[a] is None or hints[b] is None:
        missing = " and ".join(repr(n) for n in names if hints[n] is None)
        raise TypeError(f"djct.export: {cls.__qualname__}.{method}(self, {a}, {b}): {missing} "
                        f"{'have' if ' and ' in missing else 'has'} no type hint and TorchScript needs "
                        f"one; write {want}")
    ok_b = _is_optional_list_of_tensor(hints[b]) if want_targets_optional else _is_list_of_tensor(hints[b])
    for n, ok in ((a, _is_list_of_tensor(hints[a])), (b, ok_b)):
        if not ok and not isinstance(hints[n], str):  # a string that did not resolve: TorchScript will say
            raise TypeError(f"djct.export: {cls.__qualname__}.{method}: '{n}' is annotated "
                            f"{_type_str(hints[n])}, but the {kind} passes its call's lists; write {want}")


def _check_convention(model: torch.nn.Module) -> None:
    """One-line errors, before TorchScript's longer ones, for the convention's methods."""
    seen = set()
    for m in model.modules():
        cls = type(m)
        if cls in seen or not isinstance(m, LoggingModule):
            continue
        seen.add(cls)
        if isinstance(m, LossModule):
            if cls.forward is LossModule.forward:
                _check_compute(cls, "compute_loss", False)
        elif cls.forward is LoggingModule.forward:
            _check_compute(cls, "compute_metrics", True)


def _call_style(model: torch.nn.Module) -> str:
    """'djct' for forward(self, features, targets), 'batch' / 'list' for djctools' one-argument
    forward(self, data) with data = [features, targets] (typed djct.Batch or a list)."""
    if isinstance(model, torch.jit.ScriptModule):
        args = model.forward.schema.arguments
        if len(args) == 2:
            t = str(args[1].type)
            if t == "Tuple[List[Tensor], Optional[List[Tensor]]]":
                return "batch"
            if t == "List[Optional[List[Tensor]]]":
                return "list"
        return "djct"
    cls = type(model)
    hints = _hints(cls.forward)
    names = list(hints)
    if len(names) == 2 and (hints[names[0]] is None or hints[names[1]] is None):
        a, b = names
        raise TypeError(f"djct.export: {cls.__qualname__}.forward(self, {a}, {b}) has no type hints and "
                        f"TorchScript needs them; write def forward(self, {a}: List[Tensor], "
                        f"{b}: Optional[List[Tensor]]) {_TYPES}")
    if len(names) == 1:
        (a,) = names
        t = hints[a]
        want = (f"write def forward(self, {a}: djct.Batch), djct.Batch = Tuple[List[Tensor], "
                f"Optional[List[Tensor]]], and unpack it with features, targets = {a}")
        if t is None:
            raise TypeError(f"djct.export: {cls.__qualname__}.forward(self, {a}) has no type hint and "
                            f"TorchScript needs one; {want}")
        if isinstance(t, str):  # an annotation that did not resolve here: its usual spellings
            t = {"djct.Batch": Batch, "Batch": Batch, "Tuple[List[Tensor],Optional[List[Tensor]]]": Batch,
                 "List[Optional[List[Tensor]]]": List[Optional[List[Tensor]]]}.get(t.replace(" ", ""), t)
        if typing.get_origin(t) in (tuple, Tuple) and len(typing.get_args(t)) == 2 \
                and _is_list_of_tensor(typing.get_args(t)[0]) \
                and _is_optional_list_of_tensor(typing.get_args(t)[1]):
            return "batch"
        if typing.get_origin(t) in (list, List) and len(typing.get_args(t)) == 1 \
                and _is_optional_list_of_tensor(typing.get_args(t)[0]):
            return "list"
        raise TypeError(f"djct.export: forward must be forward(self, features: List[Tensor], targets: "
                        f"Optional[List[Tensor]]) or djctools' forward(self, data: djct.Batch), found "
                        f"{cls.__qualname__}.forward(self, {a}: {_type_str(t)}); for djctools' call "
                        f"style model([features, targets]), {want}")
    return "djct"


def export(model: torch.nn.Module, path: str) -> torch.jit.ScriptModule:
    """Script `model` (if it is not scripted yet), check the forward signature djct expects,
    clear recorded losses and metrics, and save it to `path`. Returns the scripted module.

    A model written in djctools' call style, forward(self, data: djct.Batch) called as
    model([features, targets]), is saved inside an adapter whose forward(features, targets) is
    what djct calls; the model itself is the adapter's submodule `model`."""
    if not isinstance(model, torch.jit.ScriptModule):
        _check_convention(model)
    style = _call_style(model)
    if style == "batch":
        model = _BatchCall(model)
    elif style == "list":
        model = _ListCall(model)
    scripted = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
    schema = scripted.forward.schema
    args = schema.arguments
    ok = (len(args) == 3 and str(args[1].type) == "List[Tensor]"
          and str(args[2].type) == "Optional[List[Tensor]]")
    if not ok:
        raise TypeError(f"djct.export: forward must be forward(self, features: List[Tensor], "
                        f"targets: Optional[List[Tensor]]) or djctools' forward(self, data: djct.Batch), "
                        f"found {schema}")
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
