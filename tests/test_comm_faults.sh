#!/usr/bin/env bash
# comm fault handling with real ranks: the watchdog names a rank that never arrives (and the
# collective, by its label) and the job ends within the timeout; djct_comm_abort on one rank ends
# every rank (no hang).
set -u
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin=$BUILD/tests/test_comm_fault_mpi
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

run() { # np mode -> sets out, rc, secs
  local s=$SECONDS
  out=$(timeout -k 5 60 $MPIRUN -np "$1" "$bin" "$2" 2>&1); rc=$?
  secs=$((SECONDS - s))
}

watched() { # np mode collective-name completed-line
  run "$1" "$2"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && ok || bad "np=$1 $2: rc=$rc (want the abort's non-zero code, not a timeout)"
  grep -q "^rank [0-9]*: $3 (collective #[0-9]*) did not complete within 2.* ranks that did not arrive: 1;" <<<"$out" \
    && ok || bad "np=$1 $2: no rank named rank 1 (and only rank 1)"
  grep -q "rank 1 does not answer" <<<"$out" && ok || bad "np=$1 $2: no detail for rank 1"
  grep -q "$4" <<<"$out" && bad "np=$1 $2: the collective completed" || ok
}

for np in 2 4; do
  # watchdog: 2 s timeout, rank 1 sleeps 60 s and never reaches the collective; large reductions
  # wait for every rank with a watched barrier (or, weighted, at their weight collective) first
  watched "$np" watchdog barrier "barrier completed"
  watched "$np" watchdog-large "reduce bucket 0" "large reduction completed"
  watched "$np" watchdog-weighted "weight sum" "large reduction completed"
  # labels: rank 1 stays away from each small collective in turn (timeout 0.5 s); every one must
  # be named with its label, and the job must end normally once rank 1 comes late
  run "$np" labels
  [ "$rc" -eq 0 ] && ok || bad "np=$np labels: rc=$rc"
  missing=""
  for label in "test allreduce" "test bcast" "test allreduce_start" "test mpi_allreduce" "test mpi_reduce" \
               "test mpi_bcast" "test mpi_allgather" "test mpi_allgatherv" "test mpi_ibcast p2p" "test mpi_ibcast"; do
    grep -q "^rank [0-9]*: $label (collective #[0-9]*) did not complete within [0-9.]* s; ranks that did not arrive: 1[;,].*rank 1 does not answer" <<<"$out" \
      || { missing=$label; break; }
  done
  [ -z "$missing" ] && ok || bad "np=$np labels: no rank named rank 1 with the label '$missing'"
  grep -q "returned" <<<"$out" && bad "np=$np labels: a call did not time out: $(grep -m1 returned <<<"$out")" || ok
  [ "$(grep -c "labels done" <<<"$out")" -eq "$np" ] && ok || bad "np=$np labels: not every rank finished"
  # abort: rank 1 fails, the others sit in a barrier with no watchdog
  run "$np" abort
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && ok || bad "np=$np abort: rc=$rc (want the abort's code, not a timeout)"
  grep -q "^rank 1: injected failure after step 1" <<<"$out" && ok || bad "np=$np abort: no rank-prefixed message"
  grep -q "barrier completed" <<<"$out" && bad "np=$np abort: a barrier completed" || ok
  [ "$fail" -gt 0 ] && { echo "---- output (np=$np) ----"; echo "$out" | head -40; }
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
