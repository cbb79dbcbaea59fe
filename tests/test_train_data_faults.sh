#!/usr/bin/env bash
# Data that trains nothing must not end with exit 0 and a made-up loss (2 real ranks, HDF5 files
# edited with h5py):
#  - every event holds a NaN: every step is skipped -> exit 1, one line naming the epoch, the
#    first bad batch's file and event and the array; no "done"
#  - an Inf in every 25th event: many steps skipped -> one warning line (more than 10% of the
#    epoch's steps), training goes on, exit 0, skipped_steps in summary.json
#  - a file with no events -> exit 1 naming --data, before any training
#  - every event larger than the batch limit (dropped) -> exit 1: the epoch has no steps
#  - --resume of a finished run takes no step: summary.json's final_loss is null, not 0
set -u
. "$(dirname "$0")/train_lib.sh"
scratch djct_train_data
skip_without_torch h5py
for d in nan inf; do
  "$BUILD/bin/djct_gen" --events 1000 --files 2 --seed 4 --format h5 --out "$tmp/$d" >/dev/null || { echo "FAIL: djct_gen"; exit 1; }
done
"$PY" - "$tmp" <<'PY' || { echo "FAIL: editing the files"; exit 1; }
import sys, h5py, numpy as np
tmp = sys.argv[1]
for fn in ("part-000.h5", "part-001.h5"):
    with h5py.File(f"{tmp}/nan/{fn}", "r+") as f:          # every point's energy NaN
        v = f["features/000/values"]; a = v[...]; a[:, 3] = np.nan; v[...] = a
    with h5py.File(f"{tmp}/inf/{fn}", "r+") as f:          # the first point of every 25th event Inf
        v = f["features/000/values"]; rs = f["features/000/row_splits"][...]; a = v[...]
        a[rs[:-1:25], 0] = np.inf; v[...] = a
# a file of the same layout with no events
with h5py.File(f"{tmp}/inf/part-000.h5", "r") as src, h5py.File(f"{tmp}/empty.h5", "w") as f:
    f.attrs["djct_format"] = "djct-ragged-1"
    for grp in ("features", "truths"):
        for k, g0 in src[grp].items():
            g = f.create_group(f"{grp}/{k}")
            for a, b in g0.attrs.items():
                g.attrs[a] = b
            g.create_dataset("values", shape=(0,) + g0["values"].shape[1:], dtype=g0["values"].dtype)
            if "row_splits" in g0:
                g.create_dataset("row_splits", data=np.zeros(1, dtype="int64"))
PY

train() { # train DATA RUN_DIR [options]: sets out, rc
  local data=$1 dir=$2; shift 2
  out=$($MPIRUN -np 2 "$T" --data "$data" --classes 3 --epochs 1 --batch-elements 3000 --threads 1 --seed 3 \
        --wandb-mode offline --progress none --no-validate --run-dir "$dir" "$@" 2>&1); rc=$?
}
field() { "$PY" -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2], "absent"); print("null" if v is None else v)' "$1" "$2"; }

# every step skipped: an error naming the first bad batch
train "$tmp/nan" "$tmp/r-nan"
ok test "$rc" = 1
ok grep -qE "^djct_train: trainer: epoch 0 skipped every one of its [0-9]+ steps \(non-finite loss or gradient\): nothing was trained; the first: step 0, rank [01]'s batch: '$tmp/nan/part-00[01].h5' event [0-9]+ holds a non-finite value in features 'points'" <<<"$out" \
  || echo "    no line naming the bad batch: $(grep djct_train: <<<"$out" | tail -2)" >&2
ok test "$(grep -c '^djct_train: trainer: epoch 0 skipped every' <<<"$out")" = 1     # said once
ok test "$(grep -c '^done: ' <<<"$out")" = 0

# some steps skipped: one warning, training goes on
train "$tmp/inf" "$tmp/r-inf"
ok test "$rc" = 0
ok test "$(grep -cE '^djct_train: warning: epoch 0: [0-9]+ of its [0-9]+ steps skipped so far \(non-finite loss or gradient; the first at step [0-9]+\)' <<<"$out")" = 1 \
  || echo "    want one warning line: $(grep -c warning <<<"$out") found" >&2
ok test "$(field "$tmp/r-inf/summary.json" skipped_steps)" -gt 0

# no events at all
train "$tmp/empty.h5" "$tmp/r-empty"
ok test "$rc" = 1
ok test "$(grep -c "^djct_train: --data '$tmp/empty.h5': no events in its 1 file; nothing to train on" <<<"$out")" = 1 \
  || echo "    $(grep djct_train: <<<"$out" | head -2)" >&2

# every event dropped as larger than the batch limit: no steps
train "$tmp/inf" "$tmp/r-tiny" --batch-elements 2
ok test "$rc" = 1
ok grep -q "^djct_train: trainer: epoch 0 has no steps: the training data holds no events (or every event was dropped" <<<"$out" \
  || echo "    $(grep djct_train: <<<"$out" | head -2)" >&2

# a finished run resumed takes no step: no loss to report
train "$tmp/inf" "$tmp/r-inf" --resume
ok test "$rc" = 0
ok test "$(field "$tmp/r-inf/summary.json" final_loss)" = null
ok grep -q "^done: .*no step taken in this run" <<<"$out"
ok test "$(field "$tmp/r-inf/summary.json" val_loss)" = null    # no validation ran

[ $fail -gt 0 ] && printf '%s\n' "$out" | grep -v ' = ' | tail -12
finish
