#!/usr/bin/python3
"""PyTorch DDP (gloo) baseline for bench/train_bench.sh: the MLP 784-256-256-10 of djct's built-in
`mlp`, Adam lr 1e-3, cross entropy, BATCH events per rank, on the djct HDF5 made by
examples/fashion_mnist/prepare.py. Each process holds the whole training set in one tensor and
gathers its batch by index (per-epoch shuffle, rank-strided shard, like DistributedSampler), so this
is the framework's floor with no DataLoader (../shared/docs/perf_baselines.md section 2).
Throughput = world x batch x (steps - warmup) / wall time of those steps (barrier before and after),
printed as one JSON line by rank 0.
Usage: ddp_mlp.py --data train.h5 [--np 2] [--steps 200] [--warmup 30] [--batch 128] [--threads 1]"""
import argparse
import json
import os
import socket
import sys
import time


def worker(rank, a, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    import h5py
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", rank=rank, world_size=a.np)
    with h5py.File(a.data, "r") as f:
        x = torch.from_numpy(np.ascontiguousarray(f["features/000/values"][:], dtype=np.float32))
        y = torch.from_numpy(f["truths/000/values"][:].astype(np.int64))
    torch.manual_seed(a.seed)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    model = DDP(model)  # broadcasts rank 0's parameters
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    lossf = nn.CrossEntropyLoss()
    n = len(x)
    per_rank = n // a.np
    steps_per_epoch = per_rank // a.batch
    step_s = []
    epoch, k, idx = 0, 0, None
    t0 = None
    for step in range(a.steps):
        if step == a.warmup:
            dist.barrier()
            t0 = time.perf_counter()
        if idx is None or k == steps_per_epoch:
            g = torch.Generator().manual_seed(a.seed * 1000 + epoch)
            idx = torch.randperm(n, generator=g)[rank:per_rank * a.np:a.np]
            epoch, k = epoch + 1, 0
        s0 = time.perf_counter()
        b = idx[k * a.batch:(k + 1) * a.batch]
        k += 1
        xb, yb = x[b], y[b]
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()
        step_s.append(time.perf_counter() - s0)
    dist.barrier()
    wall = time.perf_counter() - t0
    if rank == 0:
        steady = sorted(step_s[a.warmup:])
        print(json.dumps({"impl": "ddp-gloo", "world": a.np, "threads": torch.get_num_threads(),
                          "batch_per_rank": a.batch, "steps": a.steps - a.warmup,
                          "events_per_s": a.np * a.batch * (a.steps - a.warmup) / wall,
                          "step_ms_median": 1e3 * steady[len(steady) // 2], "final_loss": loss.item(),
                          "torch": torch.__version__, "blas": blas_name()}), flush=True)
    dist.destroy_process_group()


def blas_name():
    with open("/proc/self/maps") as f:
        libs = {l.split()[-1] for l in f if "blas" in l.lower()}
    return ",".join(sorted(os.path.basename(p) for p in libs)) or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not 0 <= a.warmup < a.steps:
        sys.exit(f"ddp_mlp.py: --warmup {a.warmup} must be below --steps {a.steps}")
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    import torch.multiprocessing as mp
    mp.spawn(worker, args=(a, port), nprocs=a.np, join=True)


if __name__ == "__main__":
    main()
