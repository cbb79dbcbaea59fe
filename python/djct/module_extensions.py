"""djctools' import path, `from djct.module_extensions import LossModule, switch_all_logging`:
the same objects as `djct.*` (python/djct/__init__.py)."""
from . import (LoggingModule, LossModule, clear_all_losses, collect_metrics, sum_all_losses,  # noqa: F401
               switch_all_logging, switch_all_losses)

__all__ = ["LoggingModule", "LossModule", "switch_all_logging", "switch_all_losses", "sum_all_losses",
           "clear_all_losses", "collect_metrics"]
