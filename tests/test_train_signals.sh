#!/usr/bin/env bash
# djct_train and signals, 2 real ranks (docs/training.md "Signals"):
#  - SIGUSR1 to mpirun during start-up (mpirun forwards it): the handlers are in place from the
#    program's start, so the ranks stop at the first step boundary with a checkpoint, exit 75
#  - SIGTERM to one rank means preempted, as SIGUSR1: checkpoint, every rank stops, exit 75
#  - SIGTERM to mpirun: Open MPI's mpirun passes TERM to the ranks and exits 1 whatever they return
#    (its own rule); the ranks still stop at the step boundary and write the checkpoint, given the
#    time (odls_base_sigkill_timeout: SIGKILL follows TERM after 1 s by default)
set -u
. "$(dirname "$0")/train_lib.sh"
scratch djct_signals
skip_without_torch
"$BUILD/bin/djct_gen" --events 1000 --files 2 --seed 5 --out "$tmp/data" >/dev/null || { echo "FAIL: djct_gen"; exit 1; }
common=(--data "$tmp/data" --classes 3 --epochs 2 --batch-elements 3000 --seed 3 --threads 1 --wandb-mode offline
        --progress none --no-validate --checkpoint-every-minutes 0)

wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.02; done
}
rank_pids() { # the djct_train rank processes of run dir $1
  for p in $(pgrep -x djct_train); do tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q -- "--run-dir $1 " && echo $p; done; }
catches_usr1() { # every rank of run dir $1 (2 of them) has a SIGUSR1 handler
  local n=0 p mask
  for p in $(rank_pids "$1"); do
    mask=$(awk '/^SigCgt:/{print $2}' /proc/$p/status 2>/dev/null) || continue
    (( (0x${mask:-0} >> 9) & 1 )) && n=$((n + 1))
  done
  [ "$n" = 2 ]; }
holding() { grep -q "^holding after step $2 until a signal arrives" "$1"; }
stop_of() { sed -n 's/.*"stop": "\([a-z]*\)".*/\1/p' "$1/summary.json" 2>/dev/null; }

# A: SIGUSR1 to mpirun while the ranks start (before the banner, before MPI is up)
$MPIRUN -np 2 "$BUILD/bin/djct_train" "${common[@]}" --run-dir "$tmp/A" > "$tmp/A.log" 2>&1 &
pid=$!
ok wait_for 60 catches_usr1 "$tmp/A"
started=$(grep -c "^djct_train [0-9.]*: 2 ranks" "$tmp/A.log")
ok test "$started" = 0 || echo "    the handlers came only after start-up (the banner was printed)" >&2
kill -USR1 $pid
wait $pid; rc=$?
ok test $rc = 75
ok grep -q "^preempted at step 1: checkpoint written" "$tmp/A.log"
ok test -f "$tmp/A/checkpoints/step-1/DONE"
ok test "$(stop_of "$tmp/A")" = preempted

# B: SIGTERM to rank 1 only: preempted, every rank stops, 75
DJCT_TEST_HOLD_AT_STEP=3 $MPIRUN -np 2 "$BUILD/bin/djct_train" "${common[@]}" --run-dir "$tmp/B" > "$tmp/B.log" 2>&1 &
pid=$!
ok wait_for 120 holding "$tmp/B.log" 3
ranks=($(rank_pids "$tmp/B"))
kill -TERM "${ranks[1]:-0}"
wait $pid; rc=$?
ok test $rc = 75
ok grep -q "^preempted at step 4: checkpoint written" "$tmp/B.log"
ok test -f "$tmp/B/checkpoints/step-4/DONE"

# C: SIGTERM to mpirun: the checkpoint is written (the ranks get 10 s before SIGKILL here), and
# mpirun exits 1 by its own rule
DJCT_TEST_HOLD_AT_STEP=3 $MPIRUN --mca odls_base_sigkill_timeout 10 -np 2 "$BUILD/bin/djct_train" "${common[@]}" \
    --run-dir "$tmp/C" > "$tmp/C.log" 2>&1 &
pid=$!
ok wait_for 120 holding "$tmp/C.log" 3
kill -TERM $pid
wait $pid; rc=$?
ok test $rc = 1
ok test -f "$tmp/C/checkpoints/step-4/DONE"
ok test "$(stop_of "$tmp/C")" = preempted

[ $fail -gt 0 ] && for f in "$tmp"/*.log; do echo "---- $f"; grep -v ' = ' "$f" | tail -6; done
finish
