#!/usr/bin/env python3
"""A synthetic data set for the MLP (784 inputs, 10 classes) in djct's HDF5 layout
(docs/hdf5_layout.md), for machines without Fashion-MNIST (scripts/gpu_check.sh): features/000
"x" float32 [N, 784], truths/000 "label" int32 [N]. Each class has its own random mean vector and
every event adds unit Gaussian noise, so the classes overlap and the loss falls steadily instead
of reaching zero in a few steps. The same --seed gives the same file.
Usage: mlp_data.py OUT.h5 [--events N] [--seed S]"""
import argparse
import os
import sys

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", metavar="OUT.h5")
    ap.add_argument("--events", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.events < 10:
        sys.exit(f"mlp_data.py: --events {a.events}: use 10 or more")
    rng = np.random.default_rng(a.seed)
    means = rng.normal(0.0, 0.05, size=(10, 784)).astype(np.float32)
    labels = rng.integers(0, 10, size=a.events).astype(np.int32)
    x = means[labels] + rng.normal(0.0, 1.0, size=(a.events, 784)).astype(np.float32)
    tmp = a.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["djct_format"] = "djct-ragged-1"
        g = f.create_group("features").create_group("000")
        g.attrs["name"] = "x"
        g.create_dataset("values", data=x)  # contiguous: batches read random rows
        t = f.create_group("truths").create_group("000")
        t.attrs["name"] = "label"
        t.create_dataset("values", data=labels)
    os.replace(tmp, a.out)
    print(f"{a.events} events -> {a.out}")


if __name__ == "__main__":
    main()
