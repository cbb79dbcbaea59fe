#!/usr/bin/env bash
# Run djct's test suite from $BUILD: unit tests directly, *_mpi tests under $MPIRUN with every
# rank count in --np, *_mpi1 tests under $MPIRUN with one rank,
# shell tests (tests/test_*.sh), and each fuzz target for $FUZZ_SECONDS.
# Each test's last "N passed, N failed[, N skipped]" line is summed; the final line is the total.
# Usage: scripts/run-tests.sh [--np "2 4"] [--filter SUBSTRING] [--mpi-only]
set -u
NP="2 4"; FILTER=""; MPI_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    --np) NP=$2; shift 2;;
    --filter) FILTER=$2; shift 2;;
    --mpi-only) MPI_ONLY=1; shift;;
    *) echo "run-tests: unknown option $1; use --np, --filter, --mpi-only" >&2; exit 2;;
  esac
done
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
FUZZ_RUNS=${FUZZ_RUNS:-2000}
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
export BUILD MPIRUN
# Open MPI as root (CI runs as root); harmless otherwise
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# keep tests off the network and off the user's wandb account
export WANDB_MODE=${WANDB_MODE:-offline}
unset WANDB_API_KEY
if [ "${SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi

logdir=$BUILD/test-logs
mkdir -p "$logdir"
tp=0; tf=0; ts=0; broken=()
t_start=$(date +%s)

# run one command, parse its summary line, add to the totals
run_one() { # label cmd...
  local label=$1; shift
  local log="$logdir/${label//[^A-Za-z0-9_.-]/_}.log"
  local t0=$(date +%s%N) rc
  timeout --kill-after=10 "$TEST_TIMEOUT" "$@" >"$log" 2>&1; rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  local dt="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
  local line p=0 f=0 s=0
  line=$(grep -E '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(sed -E 's/.*\b([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/.*\b([0-9]+) failed.*/\1/' <<<"$line")
    s=$(sed -nE 's/.*\b([0-9]+) skipped.*/\1/p' <<<"$line"); s=${s:-0}
  fi
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    [ "$f" -eq 0 ] && f=1   # a crash, a hang or a missing summary counts as a failure
    broken+=("$label")
    printf 'FAIL %-44s %6ss  rc=%s  %s\n' "$label" "$dt" "$rc" "${line:-no summary line}"
    echo "---- last lines of $log ----"; tail -n 25 "$log" | sed 's/^/    /'
  else
    printf 'ok   %-44s %6ss  %s\n' "$label" "$dt" "$line"
  fi
  grep -h '^skip: ' "$log" | sort -u | sed 's/^/       /'
  tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
}

match() { [ -z "$FILTER" ] || [[ "$1" == *"$FILTER"* ]]; }

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  case $t in *.o|*.d) continue;; esac
  name=$(basename "$t")
  match "$name" || continue
  if [[ $name == *_mpi1 ]]; then
    # tests of the one-rank paths: a single rank under the launcher (leak checking as below)
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" run_one "$name np=1" $MPIRUN -np 1 "$t"
  elif [[ $name == *_mpi ]]; then
    # Open MPI dlcloses its components, so LeakSanitizer cannot attribute (or suppress) their
    # allocations: leak checking stays on for every non-MPI test only.
    for np in $NP; do
      ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" run_one "$name np=$np" $MPIRUN -np "$np" "$t"
    done
  elif [ $MPI_ONLY = 0 ]; then
    run_one "$name" "$t"
  fi
done

if [ $MPI_ONLY = 0 ]; then
  for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    match "$name" || continue
    # shell tests start MPI programs: the same LeakSanitizer exemption as the _mpi tests
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" run_one "$name" bash "$t"
  done
  if [ "${SAN:-0}" = 0 ]; then
    for f in "$BUILD"/fuzz/fuzz_*; do
      [ -x "$f" ] && [ -f "$f" ] || continue
      name=$(basename "$f")
      match "$name" || continue
      # deterministic in the suite (fixed seed and run count, a fresh corpus each time), so CI
      # cannot turn red by chance; `make fuzz` runs them by time for discovery
      work=$(mktemp -d); mkdir -p "$BUILD/fuzz/artifacts"
      run_one "$name ${FUZZ_RUNS}runs" bash -c "'$f' -seed=1 -runs=$FUZZ_RUNS -max_total_time=$((FUZZ_SECONDS * 6)) \
        -rss_limit_mb=1024 -timeout=10 -artifact_prefix='$BUILD/fuzz/artifacts/' '$work' 'tests/fuzz/corpus/$name' \
        && echo '1 passed, 0 failed'"
      rm -rf "$work"
    done
  fi
fi

echo "test time: $(( $(date +%s) - t_start )) s; logs in $logdir"
[ ${#broken[@]} -gt 0 ] && echo "failing: ${broken[*]}"
if [ $ts -gt 0 ]; then echo "$tp passed, $tf failed, $ts skipped"; else echo "$tp passed, $tf failed"; fi
[ $tf -eq 0 ]
