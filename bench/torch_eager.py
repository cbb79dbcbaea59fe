#!/usr/bin/env python3
"""Plain PyTorch eager baseline for scripts/gpu_check.sh: the MLP 784-256-256-10 of djct's built-in
`mlp`, Adam lr 1e-3, cross entropy, BATCH events per step, one process, on --device (cuda or cpu),
on the HDF5 file djct_train reads (bench/mlp_data.py or examples/fashion_mnist/prepare.py). The
training set stays in host memory (pinned when the device is a GPU); each step gathers its batch by
index from a per-epoch permutation and copies it to the device without blocking, the way a plain
training loop feeds a GPU, as djct does from its host batches (bench/ddp_mlp.py is the CPU/DDP
sibling). Throughput = batch x (steps - warmup) / wall time of those steps, the device synchronised
before and after; printed as one JSON line.
Usage: torch_eager.py --data train.h5 [--device cuda] [--steps 300] [--warmup 50] [--batch 128]"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not 0 <= a.warmup < a.steps:
        sys.exit(f"torch_eager.py: --warmup {a.warmup} must be below --steps {a.steps}")
    import h5py
    import numpy as np
    import torch
    import torch.nn as nn

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_eager.py: --device cuda but torch.cuda.is_available() is False")
    with h5py.File(a.data, "r") as f:
        x = torch.from_numpy(np.ascontiguousarray(f["features/000/values"][:], dtype=np.float32))
        y = torch.from_numpy(f["truths/000/values"][:].astype(np.int64))
    x = x.reshape(len(x), -1)
    if dev.type == "cuda":
        x, y = x.pin_memory(), y.pin_memory()
    torch.manual_seed(a.seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    lossf = nn.CrossEntropyLoss()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    n = len(x)
    steps_per_epoch = n // a.batch
    if steps_per_epoch < 1:
        sys.exit(f"torch_eager.py: {n} events hold no batch of {a.batch}")
    xb_host = torch.empty((a.batch, x.shape[1]), dtype=x.dtype, pin_memory=dev.type == "cuda")
    yb_host = torch.empty((a.batch,), dtype=y.dtype, pin_memory=dev.type == "cuda")
    epoch, k, idx, t0 = 0, 0, None, None
    step_s = []
    for step in range(a.steps):
        if step == a.warmup:
            sync()
            t0 = time.perf_counter()
        if idx is None or k == steps_per_epoch:
            g = torch.Generator().manual_seed(a.seed * 1000 + epoch)
            idx = torch.randperm(n, generator=g)
            epoch, k = epoch + 1, 0
        s0 = time.perf_counter()
        b = idx[k * a.batch:(k + 1) * a.batch]
        k += 1
        torch.index_select(x, 0, b, out=xb_host)
        torch.index_select(y, 0, b, out=yb_host)
        xb = xb_host.to(dev, non_blocking=True)
        yb = yb_host.to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            # the pinned staging tensors are refilled next step: their copies must be done
            torch.cuda.current_stream().synchronize()
        step_s.append(time.perf_counter() - s0)
    sync()
    wall = time.perf_counter() - t0
    steady = sorted(step_s[a.warmup:])
    print(json.dumps({"impl": "torch-eager", "device": str(dev),
                      "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                      "threads": torch.get_num_threads(), "batch": a.batch, "steps": a.steps - a.warmup,
                      "events_per_s": a.batch * (a.steps - a.warmup) / wall,
                      "step_ms_median": 1e3 * steady[len(steady) // 2], "final_loss": loss.item(),
                      "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
