#!/usr/bin/env bash
# Bridge overhead: bench/model_step (djct C API) vs bench/model_step_plain (plain libtorch loop
# on the same saved TorchScript), alternating order, ROUNDS rounds; prints per-model medians and
# the median [min..max] of the per-round ratio bridge/plain.
# Usage: bash bench/run_model_step.sh [ROUNDS=5] [STEPS=200]
set -eu
R=${1:-5}; S=${2:-200}; B=${BUILD:-build}/bench
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
for model in mlp pointcloud; do
  "$B/model_step" "$model" 1 1 "$d/$model.pt" >/dev/null
  : >"$d/$model.ratios"
  for r in $(seq "$R"); do
    if [ $((r % 2)) = 1 ]; then
      a=$("$B/model_step" "$model" "$S" 20 | awk '{print $4}'); b=$("$B/model_step_plain" "$d/$model.pt" "$model" "$S" 20 | awk '{print $4}')
    else
      b=$("$B/model_step_plain" "$d/$model.pt" "$model" "$S" 20 | awk '{print $4}'); a=$("$B/model_step" "$model" "$S" 20 | awk '{print $4}')
    fi
    echo "$a $b" >>"$d/$model.ratios"
    echo "round $r $model: bridge $a ms, plain $b ms, ratio $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')"
  done
  sort -n -k1 "$d/$model.ratios" | awk -v m="$model" '{a[NR]=$1} END{printf "%s bridge median step %.3f ms\n", m, a[int((NR+1)/2)]}'
  sort -n -k2 "$d/$model.ratios" | awk -v m="$model" '{a[NR]=$2} END{printf "%s plain  median step %.3f ms\n", m, a[int((NR+1)/2)]}'
  awk '{print $1/$2}' "$d/$model.ratios" | sort -g | awk -v m="$model" '{a[NR]=$1} END{printf "%s ratio bridge/plain: median %.3f [%.3f..%.3f] n=%d\n", m, a[int((NR+1)/2)], a[1], a[NR], NR}'
done
