#!/usr/bin/python3
"""A point-cloud model authored in Python with djct's helper (python/djct), the djctools way:
the network owns its LossModules (classification, regression) and a LoggingModule (metrics),
and djct_train drives them through the attribute convention (docs/models.md).

Data (djct_gen): features [points (ragged, [n, 4]: x, y, z, energy)], truths [label int32
(0..2: narrow, medium, wide showers), energy float32 = log(1 + total energy)].

The network is DeepSets with GarNet-flavoured message passing (Kieseler et al., "Learning
representations of irregular particle-detector geometry with distance-weighted graph networks"):
every point learns its distance to a few aggregators, aggregators collect distance-weighted point
features per event (a segment mean, linear in the number of points, no neighbour search), and
every point reads them back with the same weights. Then a mean over the points of each event and
two heads. Usage: model.py OUT.pt [--seed N]"""
import argparse
import sys
from typing import List, Optional, Tuple

import torch
from torch import Tensor

import djct


def segment_ids(row_splits: Tensor) -> Tuple[Tensor, Tensor]:
    """Event index of every point, and points per event (row splits [B+1] or [B+1, 1])."""
    rs = row_splits.reshape(-1).to(torch.int64)
    counts = rs[1:] - rs[:-1]
    seg = torch.repeat_interleave(torch.arange(counts.size(0), device=rs.device), counts)
    return seg, counts


def segment_mean(x: Tensor, seg: Tensor, counts: Tensor) -> Tensor:
    """Mean of the rows of x per event: [N, F] -> [B, F] (0 for an event without points)."""
    out = torch.zeros([counts.size(0), x.size(1)], dtype=x.dtype, device=x.device)
    out = out.index_add_(0, seg, x)
    return out / counts.clamp(min=1).to(x.dtype).unsqueeze(1)


class GarNetBlock(torch.nn.Module):
    """Points exchange information through `n_agg` learned aggregators per event."""

    def __init__(self, n_in: int, n_agg: int = 4, n_filters: int = 16, n_out: int = 32):
        super().__init__()
        self.n_agg, self.n_filters = n_agg, n_filters
        self.distance = torch.nn.Linear(n_in, n_agg)      # learned distance to each aggregator
        self.filters = torch.nn.Linear(n_in, n_filters)   # what each point sends
        self.out = torch.nn.Linear(n_in + n_agg * n_filters + n_agg, n_out)

    def forward(self, x: Tensor, seg: Tensor, counts: Tensor) -> Tensor:
        n = x.size(0)
        d = self.distance(x)                               # [N, A]
        w = torch.exp(-d * d)                              # potential: 1 at the aggregator
        f = self.filters(x)                                # [N, F]
        wf = (w.unsqueeze(2) * f.unsqueeze(1)).reshape(n, self.n_agg * self.n_filters)
        agg = segment_mean(wf, seg, counts)                # [B, A*F]
        back = (w.unsqueeze(2) * agg[seg].reshape(n, self.n_agg, self.n_filters))
        back = back.reshape(n, self.n_agg * self.n_filters)
        return torch.nn.functional.elu(self.out(torch.cat([x, back, w], dim=1)))


class ClassificationLoss(djct.LossModule):
    """Cross entropy of the logits against truth 0 (the shower class)."""

    def compute_loss(self, inputs: List[Tensor], targets: List[Tensor]) -> Tensor:
        logits = inputs[0]
        if logits.size(0) == 0:              # a rank's empty last batch: nothing to learn
            return logits.sum() * 0.0
        loss = torch.nn.functional.cross_entropy(logits, targets[0].reshape(-1).to(torch.int64))
        self.log("loss", loss)
        return loss


class RegressionLoss(djct.LossModule):
    """Mean squared error of the prediction against truth 1, log(1 + total energy)."""

    def compute_loss(self, inputs: List[Tensor], targets: List[Tensor]) -> Tensor:
        pred = inputs[1]
        if pred.size(0) == 0:
            return pred.sum() * 0.0
        loss = torch.nn.functional.mse_loss(pred, targets[1].reshape(-1).to(pred.dtype))
        self.log("loss", loss)
        return loss


class ShowerMetrics(djct.LoggingModule):
    """accuracy; resolution and bias (std and mean of prediction - truth in log(1 + E), i.e. about
    the relative energy resolution). Also per-batch sums (events, correct, residual, residual^2):
    djct averages each metric over batches and ranks, and a ratio of two such means is the exact
    figure over the whole validation set, whatever the batching (evaluate.py checks it)."""

    def compute_metrics(self, inputs: List[Tensor], targets: Optional[List[Tensor]]) -> None:
        if targets is None:
            raise RuntimeError("LoggingModule '" + self._djct_name + "' is active but targets are None; "
                               "switch logging off for inference")
        logits, pred = inputs[0], inputs[1]
        n = logits.size(0)
        if n == 0:                           # log nothing, so every metric keeps the same batches
            return
        label = targets[0].reshape(-1).to(torch.int64)
        correct = (logits.argmax(dim=1) == label).to(torch.float32)
        res = pred.detach() - targets[1].reshape(-1).to(pred.dtype)
        self.log("accuracy", correct.mean())
        self.log("resolution", res.std(unbiased=False))
        self.log("bias", res.mean())
        self.log("n_events", n)             # a plain number is fine too
        self.log("n_correct", correct.sum())
        self.log("sum_res", res.sum())
        self.log("sum_res2", (res * res).sum())


class ShowerNet(torch.nn.Module):
    """forward(features=[points, row_splits], targets=[label, energy] or None) ->
    (logits [B, n_classes], energy prediction [B])."""

    def __init__(self, n_classes: int = 3, hidden: int = 32, energy_offset: float = 5.5):
        super().__init__()
        self.embed = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ELU(),
                                         torch.nn.Linear(hidden, hidden), torch.nn.ELU())
        self.garnet1 = GarNetBlock(hidden, n_out=hidden)
        self.garnet2 = GarNetBlock(hidden, n_out=hidden)
        self.event = torch.nn.Sequential(torch.nn.Linear(2 * hidden + 1, hidden), torch.nn.ELU())
        self.cls_head = torch.nn.Linear(hidden, n_classes)
        self.energy_head = torch.nn.Linear(hidden, 1)
        with torch.no_grad():                # start near the typical log(1 + E): the MSE begins small
            self.energy_head.bias.fill_(energy_offset)
        self.classification = ClassificationLoss(name="classification")
        self.regression = RegressionLoss(name="regression")
        self.metrics = ShowerMetrics(name="shower")

    def forward(self, features: List[Tensor], targets: Optional[List[Tensor]]) -> Tuple[Tensor, Tensor]:
        points, row_splits = features[0], features[1]
        seg, counts = segment_ids(row_splits)
        # transverse position relative to the event's centroid (the width tells the class),
        # depth as is, log energy
        centre = segment_mean(points[:, 0:2], seg, counts)
        x = torch.cat([points[:, 0:2] - centre[seg], points[:, 2:3],
                       torch.log1p(points[:, 3:4].clamp(min=0))], dim=1)
        h = self.embed(x)
        h = self.garnet1(h, seg, counts)
        h = h + self.garnet2(h, seg, counts)
        sums = torch.zeros([counts.size(0), h.size(1)], dtype=h.dtype, device=h.device).index_add_(0, seg, h)
        pooled = torch.cat([segment_mean(h, seg, counts), sums / 100.0,
                            torch.log1p(counts.to(h.dtype)).unsqueeze(1)], dim=1)
        g = self.event(pooled)
        logits = self.cls_head(g)
        energy = self.energy_head(g).reshape(-1)
        self.classification([logits, energy], targets)   # no-ops while switched off
        self.regression([logits, energy], targets)
        self.metrics([logits, energy], targets)
        return logits, energy


def main(argv=None):
    ap = argparse.ArgumentParser(description="define ShowerNet and export it for djct_train")
    ap.add_argument("out", help="the TorchScript file to write, e.g. model.pt")
    ap.add_argument("--seed", type=int, default=1, help="seed of the initial parameters")
    ap.add_argument("--classes", type=int, default=3)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    net = ShowerNet(n_classes=a.classes)
    scripted = djct.export(net, a.out)
    n_params = sum(p.numel() for p in scripted.parameters())
    mods = [f"{getattr(m, djct.ATTR_NAME)} ({'LossModule' if djct.is_loss_module(m) else 'LoggingModule'})"
            for m in scripted.modules() if djct.is_logging_module(m)]
    print(f"model.py: wrote {a.out}: ShowerNet, {n_params} parameters; {', '.join(mods)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
