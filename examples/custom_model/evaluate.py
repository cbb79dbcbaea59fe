#!/usr/bin/python3
"""Evaluate the model djct_train wrote (<run dir>/model.pt) back in Python: torch.jit.load,
switch every LossModule and LoggingModule off with djct's helper, run pure inference (targets
None) on the validation files (djct's HDF5 layout, read with h5py), report accuracy and energy
resolution, and check them against what the C side logged for the same weights in the run
journal (<run dir>/wandb/<id>/history.jsonl). Exit 0 when everything comparable agrees, 1 if not.
With --wandb the numbers are also appended to that run's journal as eval_* (djct.wandb_wrapper),
so `djct_sync` uploads them into the same wandb run as the training metrics.
Usage: evaluate.py RUN_DIR VAL_DIR_OR_FILES... [--batch-elements N] [--json OUT] [--wandb]"""
import argparse
import glob
import json
import math
import os
import sys

import h5py
import numpy as np
import torch

import djct


def read_h5(path):
    """points [n, 4] float32, row splits [E+1] int64, label [E] int32, energy [E] float32."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("djct_format") != "djct-ragged-1":
            sys.exit(f"evaluate.py: '{path}' is not in djct's HDF5 layout (docs/hdf5_layout.md); "
                     "generate with djct_gen --format h5 or convert with djct_convert")
        pts = f["features/000/values"][...].astype(np.float32)
        rs = f["features/000/row_splits"][...].astype(np.int64).reshape(-1)
        label = f["truths/000/values"][...].reshape(-1).astype(np.int32)
        energy = f["truths/001/values"][...].reshape(-1).astype(np.float32)
    return pts, rs, label, energy


def infer(model, pts, rs, keep, chunk_events=64):
    """Run the model on the kept events, `chunk_events` at a time, targets None."""
    idx = np.flatnonzero(keep)
    logits, energy = [], []
    with torch.no_grad():
        for c in range(0, len(idx), chunk_events):
            ev = idx[c:c + chunk_events]
            counts = rs[ev + 1] - rs[ev]
            p = np.concatenate([pts[rs[e]:rs[e + 1]] for e in ev])
            split = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            out = model([torch.from_numpy(p), torch.from_numpy(split)], None)
            logits.append(out[0])
            energy.append(out[1])
    return torch.cat(logits), torch.cat(energy)


def journal_of(run_dir):
    runs = sorted(glob.glob(os.path.join(run_dir, "wandb", "*", "history.jsonl")), key=os.path.getmtime)
    if not runs:
        sys.exit(f"evaluate.py: no run journal under '{run_dir}/wandb/*/history.jsonl'; was it trained "
                 "with --wandb-mode offline or online?")
    with open(runs[-1]) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    return runs[-1], rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("val", nargs="+", help="validation .h5 files or directories holding them")
    ap.add_argument("--batch-elements", type=int, default=6400,
                    help="djct_train's --batch-elements: larger events were dropped there (strict), so here too")
    ap.add_argument("--json", help="also write the numbers to this file")
    ap.add_argument("--wandb", action="store_true",
                    help="append the numbers to the run's journal as eval_* (upload with djct_sync)")
    a = ap.parse_args(argv)

    files = []
    for v in a.val:
        files += sorted(glob.glob(os.path.join(v, "*.h5"))) if os.path.isdir(v) else [v]
    if not files:
        sys.exit(f"evaluate.py: no .h5 files in {a.val}")
    model_path = os.path.join(a.run_dir, "model.pt")
    model = torch.jit.load(model_path)
    # djct_train saved it with its metrics logging on (the switches are attributes of the file):
    # switch everything off, so the model needs no targets
    djct.switch_all_logging(model, logging_active=False)
    djct.switch_all_losses(model, loss_active=False)
    model.eval()

    logits, pred, labels, truths, dropped = [], [], [], [], 0
    for path in files:
        pts, rs, label, energy = read_h5(path)
        keep = (rs[1:] - rs[:-1]) <= a.batch_elements if a.batch_elements > 0 else np.ones(len(label), bool)
        dropped += int((~keep).sum())
        lg, pr = infer(model, pts, rs, keep)
        logits.append(lg); pred.append(pr)
        labels.append(torch.from_numpy(label[keep])); truths.append(torch.from_numpy(energy[keep]))
    logits, pred = torch.cat(logits), torch.cat(pred)
    label, truth = torch.cat(labels).long(), torch.cat(truths)
    n = label.numel()
    assert all(not getattr(m, "_djct_losses") for m in model.modules() if djct.is_loss_module(m)), \
        "a loss was recorded although every LossModule is off"

    correct = (logits.argmax(1) == label).double()
    res = (pred - truth).double()                                   # in log(1 + E)
    e_pred, e_true = torch.expm1(pred.double()), torch.expm1(truth.double())
    rel = e_pred / e_true - 1                                       # in E itself
    ce = float(torch.nn.functional.cross_entropy(logits.double(), label))
    mse = float((res * res).mean())
    r = {"events": n, "dropped_events": dropped, "accuracy": float(correct.mean()),
         "resolution_log": float(res.std(unbiased=False)), "bias_log": float(res.mean()),
         "resolution_rel": float(rel.std(unbiased=False)), "bias_rel": float(rel.mean()),
         "cross_entropy": ce, "mse": mse, "loss": ce + mse}
    conf = torch.zeros(logits.size(1), logits.size(1), dtype=torch.int64)
    conf.index_put_((label, logits.argmax(1)), torch.ones(n, dtype=torch.int64), accumulate=True)
    print(f"evaluate.py: {model_path} on {len(files)} file(s), {n} events"
          + (f" ({dropped} larger than --batch-elements {a.batch_elements} left out, as djct_train did)" if dropped else ""))
    print(f"  accuracy            {r['accuracy']:.4f}   (3 classes: narrow, medium, wide showers)")
    print("  confusion (rows: true class, columns: predicted)")
    for i, row in enumerate(conf.tolist()):
        print(f"    {i}: " + " ".join(f"{v:6d}" for v in row))
    print(f"  energy resolution   {r['resolution_rel']:.4f} (std of E_pred/E_true - 1), bias {r['bias_rel']:+.4f}")
    print(f"  in log(1 + E)       std {r['resolution_log']:.4f}, bias {r['bias_log']:+.4f}")
    print(f"  loss                {r['loss']:.5f} (cross entropy {ce:.5f} + MSE {mse:.5f})")

    # what the C side logged for the same weights: the validation row, if it is the last row
    # (no training step came after it)
    jpath, rows = journal_of(a.run_dir)
    # the rows djct_train wrote: not the eval_* rows an earlier --wandb appended
    rows = [row for row in rows if any(not k.startswith(("_", "eval_")) for k in row)]
    val_rows = [i for i, row in enumerate(rows) if "val_shower_n_events" in row]
    fails = 0
    if not val_rows:
        print(f"  journal {jpath}: no validation row with val_shower_* metrics: nothing to compare")
    elif val_rows[-1] != len(rows) - 1:
        print(f"  journal {jpath}: training went on after the last validation row, so its numbers are for "
              "other weights: not compared")
    else:
        v = rows[val_rows[-1]]
        nc = v["val_shower_n_events"]
        c_bias = v["val_shower_sum_res"] / nc
        c = {"accuracy": v["val_shower_n_correct"] / nc, "bias_log": c_bias,
             "resolution_log": math.sqrt(max(v["val_shower_sum_res2"] / nc - c_bias * c_bias, 0.0)),
             "loss": v["val_loss"]}
        # the C side ran other batch shapes: outputs differ in the last float bits, not more
        tol = {"accuracy": 1.5 / n, "bias_log": 1e-4, "resolution_log": 1e-4 * max(1, r["resolution_log"]),
               "loss": 1e-4 * max(1, r["loss"])}
        ep = int(v["val_epoch"]) + 1 if "val_epoch" in v else "?"
        print(f"  journal {jpath}, last row (the validation after epoch {ep}, same weights):")
        for k in ("accuracy", "resolution_log", "bias_log", "loss"):
            ok = abs(c[k] - r[k]) <= tol[k]
            fails += not ok
            print(f"    {k:15s} C {c[k]:.6f}  Python {r[k]:.6f}  {'matches' if ok else 'DIFFERS'}")
        r["c_side"] = c
    r["compare_failures"] = fails
    if a.wandb:
        # the same run as the training metrics: djct_train's journal, continued (next _step)
        djct.wandb_wrapper.init(run_dir=a.run_dir)
        for k in ("accuracy", "resolution_rel", "bias_rel", "resolution_log", "bias_log", "loss",
                  "cross_entropy", "mse", "events"):
            djct.wandb_wrapper.log(k, r[k])
        djct.wandb_wrapper.flush(prefix="eval_")
        djct.wandb_wrapper.finish()       # prints the djct_sync command
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    if fails:
        print(f"evaluate.py: {fails} number(s) differ between the C side and Python", file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
