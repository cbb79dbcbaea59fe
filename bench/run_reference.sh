#!/usr/bin/env bash
# The reference runs of docs/performance.md: every benchmark with the parameters its table uses,
# one after another, each one's output kept in OUT/<name>.txt, and OUT/machine.txt saying where and
# when they ran (host, CPUs, commit, load average before and after each benchmark). Run it on a
# machine with nothing else running; a load average above the core count means the tables measure
# the load.
#
#   bench/run_reference.sh [--out DIR] [--old BUILD] [NAME...]
#
# NAME: allreduce log_flush qlz data loader bridge optim train scaling (default: all). --old BUILD
# names a build directory of an earlier commit (its bin/ and bench/): allreduce, log_flush, data
# and train then run that build too, right after the current one, for a before/after table. The
# codec's side-by-side columns need QLZ_REFERENCE (a shared object of the reference quicklz.c) and
# QLZ_BASELINE (an older djct codec); docs/performance.md shows how to build both. Environment:
# BUILD (build), PYTHON (/usr/bin/python3), DATA_DIR (Fashion-MNIST for train, prepared if absent).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=/tmp/djct-reference-$(date -u +%Y%m%d-%H%M)
old=
names=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --old) old=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run_reference.sh: unknown option '$1'; see --help" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
all=(allreduce log_flush qlz data loader bridge optim train scaling)
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for n in "${names[@]}"; do
  [[ " ${all[*]} " == *" $n "* ]] || { echo "run_reference.sh: unknown benchmark '$n'; one of: ${all[*]}" >&2; exit 2; }
done
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$BUILD/bench/allreduce" ] || { echo "run_reference.sh: $BUILD/bench/allreduce not found; run make -j2 first" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
mkdir -p "$out"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "host: $(hostname); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}'); kernel $(uname -r); $(mpirun --version 2>/dev/null | head -1)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  [ -n "$old" ] && echo "old build: $old"
} > "$out/machine.txt"
load() { cut -d' ' -f1-3 /proc/loadavg; }

run() { # name command...: the output in $out/name.txt, the load before and after in machine.txt
  local name=$1; shift
  local before; before=$(load)
  echo "== $name: $*" | tee "$out/$name.txt"
  "$@" >> "$out/$name.txt" 2>&1 || { echo "run_reference.sh: $name failed; see $out/$name.txt" >&2; tail -5 "$out/$name.txt" >&2; return 1; }
  echo "$name: load average $before before, $(load) after" >> "$out/machine.txt"
}

for n in "${names[@]}"; do
  case $n in
    allreduce)
      for b in "$BUILD" ${old:+"$old"}; do
        tag=$([ "$b" = "$BUILD" ] && echo "" || echo "-old")
        run "allreduce-np2$tag" "${MPIRUN[@]}" -np 2 "$b/bench/allreduce" --rounds 5 --reps 20 --max-mib 64 --only sweep
        run "allreduce-params-np2$tag" "${MPIRUN[@]}" -np 2 "$b/bench/allreduce" --rounds 5 --reps 20 --only params
      done
      run allreduce-np4 "${MPIRUN[@]}" -np 4 "$BUILD/bench/allreduce" --rounds 3 --reps 10 --max-mib 16 --only sweep ;;
    log_flush)
      for b in "$BUILD" ${old:+"$old"}; do
        tag=$([ "$b" = "$BUILD" ] && echo "" || echo "-old")
        run "log_flush-np2$tag" "${MPIRUN[@]}" -np 2 "$b/bench/log_flush" --iters 500 --repeats 7 --steps 30 --dir /tmp
      done
      run log_flush-np4 "${MPIRUN[@]}" -np 4 "$BUILD/bench/log_flush" --iters 500 --repeats 5 --steps 30 --dir /tmp ;;
    qlz)
      run qlz "$BUILD/bench/qlz_bench" --mb 16 --repeats 7 --no-file \
        ${QLZ_REFERENCE:+--reference "$QLZ_REFERENCE"} ${QLZ_BASELINE:+--baseline "$QLZ_BASELINE"}
      run qlz-file "$BUILD/bench/qlz_bench" --mb 16 --repeats 7 ;;
    data)
      for b in "$BUILD" ${old:+"$old"}; do
        tag=$([ "$b" = "$BUILD" ] && echo "" || echo "-old")
        run "data$tag" "$b/bench/data_bench" --repeats 5 --dir "$out/data-files"
        rm -rf "$out/data-files"
      done ;;
    loader)
      run loader "$BUILD/bench/loader_bench" --threads 0,1,2 --repeats 5 --dir "$out/loader-files"
      rm -rf "$out/loader-files" ;;
    bridge)
      run bridge env BUILD="$BUILD" bash bench/run_model_step.sh 5 200 ;;
    optim)
      run optim "$BUILD/bench/optim_step" mlp 7 300 ;;
    train)
      run train env BUILD="$BUILD" OUT="$out/train" CONFIGS="djct1 djct2 djct2_noavg ddp1 ddp2" bash bench/train_bench.sh 5 200 30
      if [ -n "$old" ]; then
        # the old build with its own harness (its options are the ones that build knows)
        oldsrc=$(cd "$old/.." && pwd)
        run train-old env BUILD="$old" OUT="$out/train-old" CONFIGS="djct1 djct2 djct2_noavg ddp1 ddp2" \
          bash "$oldsrc/bench/train_bench.sh" 3 200 30
      fi ;;
    scaling)
      rm -rf "$out/study" "$out/study-data"
      "$BUILD/bin/djct_gen" --events 3000 --files 4 --seed 5 --out "$out/study-data" > /dev/null
      run scaling env DJCT_BIN="$BUILD/bin/djct_train" scripts/scaling_study --ranks "1 2 4" --mode both --steps 60 \
        --batch-elements 8000 --out "$out/study" -- --data "$out/study-data" --classes 3 --threads 1 \
        --progress none --no-validate --checkpoint-every-minutes 0 ;;
  esac
done
echo "run_reference.sh: results in $out"
