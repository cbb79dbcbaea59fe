"""Python half of tests/test_predict.sh (run with /usr/bin/python3, Debian's torch and h5py):
  predict_models.py export DIR
      DIR/pointwise.pt    per-event logits and a per-point score (a LossModule, a LoggingModule)
      DIR/needs_targets.pt forward reads targets even with every module switched off
      DIR/scalar.pt       returns a scalar
      DIR/onepoint.h5     8 events of exactly one point each (the ambiguous case)
      DIR/late.pt         fails in forward on an event whose points hold a value above 30
      DIR/late.h5         40 events of 2 points, every value the event's index
  predict_models.py check MODEL PREDS.h5 INPUT.h5...
      PREDS.h5 holds one row per input event in input order: event_id 0..N-1, file_index and
      file_event per input file, the input files as file_index's feature names, and every output
      equal to MODEL's forward (targets None, every module off) on each input file as one batch;
      an output with row splits has the row splits of the input's ragged feature array
Prints "N passed, N failed"."""
import os
import sys
from typing import List, Optional

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from _common import check, finish, segment_mean  # noqa: E402  (first: djct on the path)
import djct  # noqa: E402


class Classification(djct.LossModule):
    def compute_loss(self, inputs: List[Tensor], targets: List[Tensor]) -> Tensor:
        loss = F.cross_entropy(inputs[0], targets[0].reshape(-1).to(torch.int64))
        self.log("loss", loss)
        return loss


class MeanScore(djct.LoggingModule):
    def compute_metrics(self, inputs: List[Tensor], targets: Optional[List[Tensor]]) -> None:
        self.log("mean_score", inputs[0].mean())


class Pointwise(torch.nn.Module):
    """(logits per event (B, 3), a score per point (N,))"""

    def __init__(self):
        super().__init__()
        self.point = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 3)
        self.score = torch.nn.Linear(8, 1)
        self.classification = Classification(name="classification")
        self.scores = MeanScore(name="scores")

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):
        h = torch.tanh(self.point(features[0]))
        logits = self.head(segment_mean(h, features[1]))
        score = self.score(h).reshape(-1)
        self.classification([logits], targets)
        self.scores([score], targets)
        return logits, score


class NeedsTargets(torch.nn.Module):
    """a model that reads its targets even though it has no module to switch"""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(4, 3)

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):
        assert targets is not None, "NeedsTargets needs its targets"
        return self.head(segment_mean(features[0], features[1])) + 0 * targets[0].reshape(-1, 1).to(torch.float32)


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(4, 1)

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):
        return self.head(features[0]).mean()


class Late(torch.nn.Module):
    """fails on the events of the second half of late.h5 only, i.e. on one rank, not at once"""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(4, 3)

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]):
        if bool((features[0] > 30).any()):
            raise RuntimeError("late failure on an event above 30")
        return self.head(segment_mean(features[0], features[1]))


def write_late(path):
    n = 40
    with h5py.File(path, "w") as f:
        f.attrs["djct_format"] = "djct-ragged-1"
        g = f.create_group("features/000")
        g.attrs["name"] = "points"
        g.create_dataset("values", data=np.repeat(np.arange(n, dtype=np.float32), 8).reshape(2 * n, 4))
        g.create_dataset("row_splits", data=np.arange(0, 2 * n + 1, 2, dtype=np.int64))


def write_onepoint(path):
    n = 8
    rs = np.arange(n + 1, dtype=np.int64)
    with h5py.File(path, "w") as f:
        f.attrs["djct_format"] = "djct-ragged-1"
        g = f.create_group("features/000")
        g.attrs["name"] = "points"
        g.create_dataset("values", data=np.arange(n * 4, dtype=np.float32).reshape(n, 4) / 10)
        g.create_dataset("row_splits", data=rs)
        t = f.create_group("truths/000")
        t.attrs["name"] = "label"
        t.create_dataset("values", data=(np.arange(n) % 3).astype(np.int32))


def export(d):
    torch.manual_seed(3)
    djct.export(Pointwise(), os.path.join(d, "pointwise.pt"))
    djct.export(NeedsTargets(), os.path.join(d, "needs_targets.pt"))
    djct.export(Scalar(), os.path.join(d, "scalar.pt"))
    write_onepoint(os.path.join(d, "onepoint.h5"))
    djct.export(Late(), os.path.join(d, "late.pt"))
    write_late(os.path.join(d, "late.h5"))
    check(True, "export")


def check_preds(model_path, preds_path, inputs):
    m = torch.jit.load(model_path)
    m.eval()
    djct.switch_all_logging(m, False)
    djct.switch_all_losses(m, False)
    p = h5py.File(preds_path, "r")
    names = [p[f"truths/{i:03d}"].attrs["name"] for i in range(3)]
    check(names == ["event_id", "file_index", "file_event"], f"id arrays {names}")
    eid, fidx, fev = (p[f"truths/{i:03d}/values"][...] for i in range(3))
    listed = [s.decode() if isinstance(s, bytes) else s for s in p["truths/001"].attrs.get("feature_names", [])]
    counts, expect = [], []
    for path in inputs:
        with h5py.File(path, "r") as f:
            counts.append(len(f["features/000/row_splits"]) - 1)
    n = sum(counts)
    check(len(eid) == n and np.array_equal(eid, np.arange(n)), f"event_id is 0..{n - 1} ({len(eid)} rows)")
    want_f = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    want_e = np.concatenate([np.arange(c) for c in counts])
    check(np.array_equal(fidx, want_f) and np.array_equal(fev, want_e), "file_index / file_event per input file")
    check([os.path.basename(s) for s in listed] == [os.path.basename(s) for s in inputs],
          f"file_index names the input files: {listed}")
    n_out = len(p["features"])
    at = 0
    outs = [[] for _ in range(n_out)]
    splits = []
    for path in inputs:
        with h5py.File(path, "r") as f:
            x = torch.from_numpy(f["features/000/values"][...])
            rs = torch.from_numpy(f["features/000/row_splits"][...].astype(np.int64))
        with torch.no_grad():
            y = m([x, rs], None)
        y = y if isinstance(y, tuple) else (y,)
        for i in range(n_out):
            outs[i].append(y[i].numpy())
        splits.append(rs.numpy() + at)
        at += int(rs[-1])
    want_rs = np.concatenate([splits[0]] + [s[1:] for s in splits[1:]])
    for i in range(n_out):
        g = p[f"features/{i:03d}"]
        got = g["values"][...]
        want = np.concatenate(outs[i])
        check(got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=1e-6),
              f"output {i} ({g.attrs['name']}) equals the model's forward: {got.shape} vs {want.shape}, "
              f"max diff {np.abs(got - want).max() if got.shape == want.shape else 'n/a'}")
        if "row_splits" in g:
            check(np.array_equal(g["row_splits"][...], want_rs), f"output {i} has the input's row splits")
        else:
            check(got.shape[0] == n, f"output {i} is per event: {got.shape[0]} rows")


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2])
    elif sys.argv[1] == "check":
        check_preds(sys.argv[2], sys.argv[3], sys.argv[4:])
    finish()
