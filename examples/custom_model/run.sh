#!/usr/bin/env bash
# The custom-model example end to end: export a Python model (model.py), generate data (djct_gen,
# cached), train it with djct_train on NP ranks, evaluate the result back in Python (evaluate.py),
# whose numbers join the run's journal (djct.wandb_wrapper; upload with djct_sync).
# Knobs (environment): OUT (default examples/custom_model/out), EVENTS (3000), VAL_EVENTS (1000),
# EPOCHS (2), NP (2), MAX_STEPS (0: none), LR (0.003), BUILD (build), PY (/usr/bin/python3),
# MPIRUN (default "mpirun --oversubscribe --bind-to none", plus --allow-run-as-root as root).
# Extra arguments are passed to djct_train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
PY=${PY:-/usr/bin/python3}
OUT=${OUT:-$here/out}
EVENTS=${EVENTS:-3000}
VAL_EVENTS=${VAL_EVENTS:-1000}
EPOCHS=${EPOCHS:-2}
NP=${NP:-2}
MAX_STEPS=${MAX_STEPS:-0}
LR=${LR:-0.003}
BATCH_ELEMENTS=6400

for b in djct_gen djct_train; do
  [ -x "$BUILD/bin/$b" ] || { echo "run.sh: $BUILD/bin/$b not found; run 'make -j2' in $root first" >&2; exit 1; }
done
"$PY" -c 'import torch, h5py' 2>/dev/null ||
  { echo "run.sh: $PY lacks torch or h5py; apt-get install python3-torch python3-h5py" >&2; exit 1; }
if [ -z "${MPIRUN:-}" ]; then
  MPIRUN="mpirun --oversubscribe --bind-to none"
  [ "$(id -u)" = 0 ] && MPIRUN+=" --allow-run-as-root"
fi
read -ra mpi <<<"$MPIRUN"
mpi+=(-np "$NP")
mkdir -p "$OUT"
export PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}"

echo "== 1. export the model"
"$PY" "$here/model.py" "$OUT/model.pt"

echo "== 2. data (djct_gen, HDF5 so that evaluate.py reads it with h5py)"
gen() { # dir events seed
  local stamp="events=$2 files=2 seed=$3 format=h5"
  if [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$stamp" ]; then
    echo "using the cached $1 ($stamp)"; return
  fi
  rm -rf "$1"; mkdir -p "$(dirname "$1")"
  "$BUILD/bin/djct_gen" --events "$2" --files 2 --seed "$3" --format h5 --out "$1"
  echo "$stamp" >"$1/.stamp"
}
gen "$OUT/data/train" "$EVENTS" 1
gen "$OUT/data/val" "$VAL_EVENTS" 2      # another seed: events the model never saw

echo "== 3. train with djct_train on $NP ranks"
rm -rf "$OUT/run"
"${mpi[@]}" "$BUILD/bin/djct_train" --model "$OUT/model.pt" --data "$OUT/data/train" --val-data "$OUT/data/val" \
  --epochs "$EPOCHS" --max-steps "$MAX_STEPS" --lr "$LR" --batch-elements "$BATCH_ELEMENTS" \
  --run-dir "$OUT/run" --wandb-mode offline --progress lines "$@"

echo "== 4. evaluate in Python (the numbers also go into the run's journal: --wandb)"
"$PY" "$here/evaluate.py" "$OUT/run" "$OUT/data/val" --batch-elements "$BATCH_ELEMENTS" --json "$OUT/eval.json" --wandb
