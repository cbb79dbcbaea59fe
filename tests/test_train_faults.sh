#!/usr/bin/env bash
# One rank of a djct_train job fails, stalls or leaves early: the job must end (every rank, within
# the watchdog plus a generous margin), mpirun must exit non-zero, and one line must name the rank,
# the step and the reason. With 2 and 4 real ranks:
#  - stop: rank 1 is SIGSTOPped after global step 5 (DJCT_TEST_FAULT): the others' watchdog names
#    it and the step's gradient reduction; the abort must end the stopped process too
#  - bad:  one event's label is out of range (read by one rank only): that rank's forward raises,
#    it says so and ends the job without entering a collective (no wait for the watchdog)
#  - exit: rank 1 calls exit(0) in the middle of training: it says where, mpirun ends the job
#  - kill: rank 1 is SIGKILLed: mpirun names it and ends the job
# The time limit is a hang detector, not a performance assertion.
set -u
. "$(dirname "$0")/train_lib.sh"
scratch djct_train_faults
skip_without_torch h5py
W=10                # --watchdog-seconds
LIMIT=$((W + 60))   # a job still running after this hangs

"$BUILD/bin/djct_gen" --events 2000 --files 2 --seed 2 --out "$tmp/data" >/dev/null || { echo "FAIL: djct_gen"; exit 1; }
"$BUILD/bin/djct_gen" --events 2000 --files 2 --seed 2 --format h5 --out "$tmp/bad" >/dev/null || { echo "FAIL: djct_gen h5"; exit 1; }
"$PY" -c "
import h5py
with h5py.File('$tmp/bad/part-001.h5', 'r+') as f:
    f['truths/000/values'][500] = 7     # classes 0..2: one event out of range
" || { echo "FAIL: writing the bad label"; exit 1; }

alive() { # alive RUN_DIR: pids of this run's rank processes that still run (zombies are gone)
  for p in $(pgrep -x djct_train); do
    tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q -- "--run-dir $1 " || continue
    [ "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)" = Z ] || echo "$p"
  done; }

# run NP CASE: sets out, rc, secs, left (rank processes still alive once mpirun returned)
run() {
  local np=$1 case=$2 data=$tmp/data extra=() env=()
  case $case in
    bad) data=$tmp/bad; extra=(--shuffle none) ;;
    *)   env=(DJCT_TEST_FAULT=1:5:$case) ;;
  esac
  local dir=$tmp/run-$np-$case s=$SECONDS
  env "${env[@]}" timeout -k 5 $LIMIT $MPIRUN -np "$np" "$T" --data "$data" --classes 3 --epochs 2 \
      --batch-elements 3000 --threads 1 --wandb-mode offline --progress none --no-validate \
      --watchdog-seconds $W --run-dir "$dir" "${extra[@]}" > "$tmp/$np-$case.log" 2>&1
  rc=$?; secs=$((SECONDS - s))
  sleep 1   # the launcher has reaped its ranks; anything left is a stray process
  left=$(alive "$dir")
  out=$(cat "$tmp/$np-$case.log")
  [ -z "$left" ] || kill -9 $left 2>/dev/null
  if [ ! -e "$dir/model.pt" ] && ! grep -q '^done: ' <<<"$out"; then finished=0; else finished=1; fi
}

ended() { # the checks every case shares
  local np=$1 case=$2
  ok test "$secs" -lt "$LIMIT"          || echo "    np=$np $case: still running after ${LIMIT}s (a hang)" >&2
  ok test "$rc" -ne 0 -a "$rc" -ne 124   || echo "    np=$np $case: mpirun rc=$rc (want non-zero, not the hang timeout)" >&2
  ok test -z "$left"                     || echo "    np=$np $case: rank processes left: $left" >&2
  ok test "$finished" = 0                || echo "    np=$np $case: some rank finished training" >&2
}

for np in 2 4; do
  # stop: the others time out in step 5's collectives (0-based: the step after global step 5)
  run "$np" stop
  ended "$np" stop
  ok grep -qE "^djct_train: rank [0-9]+: trainer: epoch 0 step 5: .*epoch 0 step 5's (gradient reduction|agreement).* did not complete within $W.0 s; ranks that did not arrive: 1;.*rank 1 does not answer" <<<"$out" \
    || echo "    np=$np stop: no line naming rank 1 and step 5's collective" >&2
  # bad: the rank that read the event names itself, the step and the label; no watchdog wait
  run "$np" bad
  ended "$np" bad
  ok grep -qE "^djct_train: rank [0-9]+: trainer: epoch 0 step [0-9]+: .*Target 7 is out of bounds.*--classes" <<<"$out" \
    || echo "    np=$np bad: no line naming the rank, the step and the label" >&2
  ok test "$(grep -c "did not complete within" <<<"$out")" = 0 \
    || echo "    np=$np bad: the others waited for the watchdog: the failing rank entered a collective" >&2
  # exit: rank 1 says where it left
  run "$np" exit
  ended "$np" exit
  ok grep -q "^djct_train: rank 1: exit() called at epoch 0 step 4 before training ended" <<<"$out" \
    || echo "    np=$np exit: no line naming rank 1 and its step" >&2
  # kill: mpirun names the rank and the signal
  run "$np" kill
  ended "$np" kill
  ok grep -q "process rank 1 .* exited on signal 9" <<<"$out" || echo "    np=$np kill: mpirun did not name rank 1" >&2
  [ $fail -gt 0 ] && for f in "$tmp/$np"-*.log; do echo "---- $f"; grep -v '^[a-z_-]* = ' "$f" | tail -8; done
done
finish
