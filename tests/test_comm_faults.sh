#!/usr/bin/env bash
# comm fault handling with real ranks: the watchdog names a rank that never arrives and the job
# ends within the timeout; djct_comm_abort on one rank ends every rank (no hang).
set -u
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin=$BUILD/tests/test_comm_fault_mpi
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

run() { # np mode -> sets out, rc, secs
  local t0; t0=$(date +%s%N)
  out=$(timeout -k 5 60 $MPIRUN -np "$1" "$bin" "$2" 2>&1); rc=$?
  secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
}

for np in 2 4; do
  # watchdog: 2 s timeout, rank 1 sleeps 60 s
  run "$np" watchdog
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && ok || bad "np=$np watchdog: rc=$rc (want the abort's non-zero code, not a timeout)"
  [ "$secs" -lt 45 ] && ok || bad "np=$np watchdog: took ${secs}s (timeout 2 s; 45 s allows for start-up on a loaded 2-core machine)"
  grep -q "^rank [0-9]*: barrier (collective #[0-9]*) did not complete within 2.* ranks that did not arrive: 1;" <<<"$out" \
    && ok || bad "np=$np watchdog: no rank named rank 1 (and only rank 1)"
  grep -q "rank 1 does not answer" <<<"$out" && ok || bad "np=$np watchdog: no detail for rank 1"
  grep -q "barrier completed" <<<"$out" && bad "np=$np watchdog: a barrier completed" || ok
  # the same for a 1 MiB reduction (watched arrival, then the blocking MPI call)
  run "$np" watchdog-large
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && ok || bad "np=$np watchdog-large: rc=$rc"
  [ "$secs" -lt 45 ] && ok || bad "np=$np watchdog-large: took ${secs}s"
  grep -q "^rank [0-9]*: reduce bucket 0 (collective #[0-9]*) did not complete within 2.* ranks that did not arrive: 1;" <<<"$out" \
    && ok || bad "np=$np watchdog-large: no rank named rank 1 (and only rank 1)"
  grep -q "large reduction completed" <<<"$out" && bad "np=$np watchdog-large: a reduction completed" || ok
  run "$np" watchdog-weighted
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && ok || bad "np=$np watchdog-weighted: rc=$rc"
  [ "$secs" -lt 45 ] && ok || bad "np=$np watchdog-weighted: took ${secs}s"
  grep -q "^rank [0-9]*: weight sum (collective #[0-9]*) did not complete within 2.* ranks that did not arrive: 1;" <<<"$out" \
    && ok || bad "np=$np watchdog-weighted: no rank named rank 1 (and only rank 1)"
  grep -q "large reduction completed" <<<"$out" && bad "np=$np watchdog-weighted: a reduction completed" || ok
  # abort: rank 1 fails, the others sit in a barrier with no watchdog
  run "$np" abort
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && ok || bad "np=$np abort: rc=$rc"
  [ "$secs" -lt 45 ] && ok || bad "np=$np abort: took ${secs}s"
  grep -q "^rank 1: injected failure after step 1" <<<"$out" && ok || bad "np=$np abort: no rank-prefixed message"
  grep -q "barrier completed" <<<"$out" && bad "np=$np abort: a barrier completed" || ok
  [ "$fail" -gt 0 ] && { echo "---- output (np=$np) ----"; echo "$out" | head -40; }
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
