"""What the Python halves of the shell tests share: python/djct on the import path (import this
module before djct), the checks and their counts, one-line errors, the closing line."""
import os
import sys

import torch
from torch import Tensor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}", file=sys.stderr)


def error_of(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    return None


def one_line_error(fn, kind, needles, what):
    """fn raises `kind` with a one-line message containing every needle (a string: one needle)"""
    needles = [needles] if isinstance(needles, str) else needles
    e = error_of(fn)
    msg = str(e) if e is not None else ""
    ok = isinstance(e, kind) and "\n" not in msg and all(n in msg for n in needles)
    check(ok, f"{what}: got {type(e).__name__}: {msg!r}")


def segment_mean(x: Tensor, row_splits: Tensor) -> Tensor:
    rs = row_splits.reshape(-1).to(torch.int64)
    counts = rs[1:] - rs[:-1]
    seg = torch.repeat_interleave(torch.arange(counts.size(0)), counts)
    out = torch.zeros([counts.size(0), x.size(1)], dtype=x.dtype).index_add_(0, seg, x)
    return out / counts.clamp(min=1).to(x.dtype).unsqueeze(1)


def finish():
    """the last line, "N passed, N failed"; the exit status is the verdict"""
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
