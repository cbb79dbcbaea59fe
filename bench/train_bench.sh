#!/usr/bin/env bash
# djct_train vs PyTorch DDP-gloo: events/s training the MLP 784-256-256-10 on Fashion-MNIST, batch 128
# per rank, Adam lr 1e-3, 1 intra-op thread per process, OpenBLAS, the same malloc settings on both
# sides. Each round runs every configuration once (the order rotates per round); ratios are taken
# per round, then the median [min..max] over rounds.
#   djct1, djct2          djct_train with 1 and 2 ranks
#   djct2_noavg           2 ranks, --no-average (no gradient communication: the compute-scaling bound)
#   djct2_noovl           2 ranks, --no-overlap (buckets reduced after backward instead of during it)
#   djct2_sb, djct2_sb_noovl   2 ranks with 256 KiB buckets (5 buckets for the 1 MB MLP, so that
#                         there is something to overlap; the default 4 MiB bucket holds the whole
#                         MLP, whose one bucket is always reduced after backward)
#   djct2_nofsync, djct1_nofsync   --no-fsync: the journal is not fsync'ed at every row (default: it is)
#   ddp1, ddp2            bench/ddp_mlp.py, DDP with 1 and 2 processes (torch.multiprocessing.spawn)
# djct throughput is steady state: global events / wall time between the journal rows of steps
# WARMUP and STEPS (history.jsonl _runtime), so start-up and the first steps are excluded but
# everything a step costs (data, compute, communication, logging) is in. DDP is timed the same way.
# Usage: bench/train_bench.sh [ROUNDS=3] [STEPS=200] [WARMUP=30]
# Environment: BUILD (build), OUT (results dir, /tmp/train_bench-$$), DATA_DIR (prepared Fashion-MNIST),
#   CONFIGS (space-separated subset of the names above), PYTHON (/usr/bin/python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
STEPS=${2:-200}
WARMUP=${3:-30}
BUILD=${BUILD:-$root/build}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-/tmp/train_bench-$$}
DATA_DIR=${DATA_DIR:-${DJCT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/djct}/fashion_mnist}
CONFIGS=${CONFIGS:-djct1 djct1_nofsync djct2 djct2_nofsync djct2_noavg djct2_noovl ddp1 ddp2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# the same for both sides: glibc malloc keeps freed memory (no mmap/munmap page-fault churn, see
# ../shared/docs/perf_baselines.md), one thread per process for torch, OpenMP and OpenBLAS
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none
        -x MALLOC_MMAP_MAX_ -x MALLOC_TRIM_THRESHOLD_ -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
train=$BUILD/bin/djct_train
[ -x "$train" ] || { echo "train_bench.sh: $train not found; run make -j2" >&2; exit 1; }
if [ ! -f "$DATA_DIR/train.h5" ]; then
  "$PYTHON" "$root/examples/fashion_mnist/prepare.py" "$DATA_DIR"
fi
mkdir -p "$OUT"
echo "train_bench: rounds $ROUNDS, steps $STEPS (warm-up $WARMUP), results in $OUT"
echo "uptime at start: $(uptime)" | tee "$OUT/load.txt"
# both sides use the same OpenBLAS kernels: the environment's OPENBLAS_CORETYPE, else OpenBLAS's own
# pick for this CPU (djct_train's BLAS line in $OUT/r1_djct*.log names them)
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset (OpenBLAS picks by CPU)}" | tee -a "$OUT/load.txt"

run_one() { # round config
  local r=$1 cfg=$2 dir=$OUT/r$1_$2 np extra=()
  case $cfg in
    djct*|ddp*) ;; *) echo "unknown config $cfg" >&2; exit 2 ;;
  esac
  np=${cfg//[!0-9]/}; np=${np:0:1}
  case $cfg in
    djct*)
      [[ $cfg == *_noavg ]] && extra+=(--no-average)
      [[ $cfg == *_noovl* ]] && extra+=(--no-overlap)
      [[ $cfg == *_sb* ]] && extra+=(--bucket-mb 0.25)
      [[ $cfg == *_nofsync ]] && extra+=(--no-fsync)
      rm -rf "$dir"
      "${MPIRUN[@]}" -np "$np" "$train" --model mlp --data "$DATA_DIR/train.h5" --batch-events 128 \
        --optimizer adam --lr 0.001 --epochs 1 --max-steps "$STEPS" --threads 1 --no-validate \
        --checkpoint-every-minutes 0 --wandb-mode offline --progress none --run-dir "$dir" \
        "${extra[@]}" > "$dir.log" 2>&1 || { echo "$cfg failed, see $dir.log" >&2; tail -5 "$dir.log" >&2; exit 1; }
      "$PYTHON" - "$dir" "$cfg" "$WARMUP" "$r" >> "$OUT/results.jsonl" <<'PY'
import glob, json, statistics as st, sys
d, cfg, w, r = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = [x for x in map(json.loads, open(glob.glob(d + "/wandb/*/history.jsonl")[0])) if "t_step" in x]
summ = json.load(open(d + "/summary.json"))
steady = [x for x in rows if x["global_step"] > w]
first, last = rows[w - 1], rows[-1]   # the row of step w, the last row
events = summ["ranks"] * 128 * (last["global_step"] - first["global_step"])
wall = last["_runtime"] - first["_runtime"]
mean = lambda k: st.mean(x[k] for x in steady)
print(json.dumps({"round": r, "config": cfg, "world": summ["ranks"], "threads": summ["threads_per_rank"],
                  "events_per_s": events / wall, "wall_per_step_ms": 1e3 * wall / (last["global_step"] - first["global_step"]),
                  "t_step_ms": 1e3 * mean("t_step"), "t_data_ms": 1e3 * mean("t_data"),
                  "t_comm_ms": 1e3 * mean("t_comm"), "t_compute_ms": 1e3 * mean("t_compute"),
                  "step_ms_median": 1e3 * st.median(x["t_step"] for x in steady),
                  "summary": {k: summ[k] for k in ("events_per_s", "step_time_s", "t_data_s", "t_comm_s", "t_compute_s")}}))
PY
      ;;
    ddp*)
      "$PYTHON" "$root/bench/ddp_mlp.py" --data "$DATA_DIR/train.h5" --np "$np" --steps "$STEPS" \
        --warmup "$WARMUP" --threads 1 > "$dir.log" 2>&1 || { echo "$cfg failed, see $dir.log" >&2; tail -5 "$dir.log" >&2; exit 1; }
      tail -1 "$dir.log" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); d.update(round=int(sys.argv[1]), config=sys.argv[2]); print(json.dumps(d))' "$r" "$cfg" >> "$OUT/results.jsonl"
      ;;
  esac
  echo "round $r $cfg: $(tail -1 "$OUT/results.jsonl" | "$PYTHON" -c 'import json,sys; print("%.0f events/s" % json.load(sys.stdin)["events_per_s"])')"
}

read -r -a cfgs <<< "$CONFIGS"
for ((r = 1; r <= ROUNDS; r++)); do
  n=${#cfgs[@]}
  for ((i = 0; i < n; i++)); do
    run_one "$r" "${cfgs[$(( (i + r - 1) % n ))]}"
  done
  echo "uptime after round $r: $(uptime)" | tee -a "$OUT/load.txt"
done
"$PYTHON" "$root/bench/train_bench_summary.py" "$OUT/results.jsonl" | tee "$OUT/summary.md"
