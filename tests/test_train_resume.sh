#!/usr/bin/env bash
# djct_train checkpoints, resume and preemption with 2 real ranks:
#  - a run killed with SIGKILL and resumed ends with weights bit-identical to an uninterrupted run
#  - SIGUSR1 to ONE rank: all ranks agree at a step boundary, checkpoint, exit 75; the resumed run
#    finishes bit-identical too
#  - SIGINT to one rank: a checkpoint and exit 130
#  - damaged checkpoints (truncated, a flipped byte) are named and set aside, never skipped silently:
#    resume from an older good one; all damaged is exit 1 unless --fresh-if-damaged
# The interrupted runs hold after a step (DJCT_TEST_HOLD_AT_STEP) until a signal arrives, and are
# signalled once they say so: the signal can never come after the run ended.
set -u
. "$(dirname "$0")/train_lib.sh"
scratch djct_resume
skip_without_torch
"$BUILD/bin/djct_gen" --events 2000 --files 3 --seed 5 --out "$tmp/data" >/dev/null || { echo "FAIL: djct_gen"; exit 1; }
common=(--data "$tmp/data" --classes 3 --epochs 2 --batch-elements 3000 --seed 3 --threads 1 --wandb-mode offline
        --progress none --no-validate --checkpoint-every-minutes 0)
train() { $MPIRUN -np 2 "$BUILD/bin/djct_train" "${common[@]}" "$@"; }

same_params() { # same_params A.pt B.pt: every parameter bit-identical
  "$PY" - "$1" "$2" <<'PY'
import sys, torch
a = dict(torch.jit.load(sys.argv[1]).named_parameters()); b = dict(torch.jit.load(sys.argv[2]).named_parameters())
assert a.keys() == b.keys(), (a.keys(), b.keys())
bad = [k for k in a if not torch.equal(a[k], b[k])]
print("identical" if not bad else "differ: " + ", ".join(bad))
sys.exit(1 if bad else 0)
PY
}
steps_of() { sed -n 's/.*"steps": \([0-9]*\).*/\1/p' "$1/summary.json"; }
wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.1; done
}
ckpt_at_least() { ls -d "$1"/checkpoints/step-* 2>/dev/null | sed 's/.*step-//' | awk -v m="$2" '$1>=m{f=1} END{exit !f}' \
                  && [ -f "$(ls -d "$1"/checkpoints/step-* | head -1)/DONE" ]; }
rank_pids() { # the djct_train rank processes of run dir $1 (mpirun's children), oldest first
  for p in $(pgrep -x djct_train); do tr '\0' ' ' < /proc/$p/cmdline | grep -q -- "--run-dir $1 " && echo $p; done; }
holding() { grep -q "^holding after step $2 until a signal arrives" "$1"; }

# A: uninterrupted
train --run-dir "$tmp/A" --checkpoint-every-steps 7 > "$tmp/A.log" 2>&1; rc=$?
ok test $rc = 0
ok test -f "$tmp/A/model.pt"
total=$(steps_of "$tmp/A"); echo "uninterrupted: $total steps"
ok test "${total:-0}" -gt 20

# B: SIGKILL after the first checkpoints, then --resume
DJCT_TEST_HOLD_AT_STEP=15 train --run-dir "$tmp/B" --checkpoint-every-steps 7 > "$tmp/B1.log" 2>&1 &
pid=$!
ok wait_for 120 holding "$tmp/B1.log" 15
ok ckpt_at_least "$tmp/B" 14
kill -9 $pid $(pgrep -P $pid) 2>/dev/null; wait $pid 2>/dev/null
ok test ! -f "$tmp/B/model.pt"     # it really died before the end
train --run-dir "$tmp/B" --checkpoint-every-steps 7 --resume > "$tmp/B2.log" 2>&1; rc=$?
ok test $rc = 0
ok grep -q "resumed from the checkpoint of step" "$tmp/B2.log"
ok same_params "$tmp/A/model.pt" "$tmp/B/model.pt"
# the journal continues the same run: one run id, rows from both parts
ok test "$(ls "$tmp/B/wandb" | wc -l)" = 1

# C: SIGUSR1 to rank 1 only -> every rank stops, checkpoint, exit 75; then resume
DJCT_TEST_HOLD_AT_STEP=5 train --run-dir "$tmp/C" > "$tmp/C1.log" 2>&1 &
pid=$!
ok wait_for 120 holding "$tmp/C1.log" 5
ranks=($(rank_pids "$tmp/C"))
ok test "${#ranks[@]}" = 2
kill -USR1 "${ranks[1]:-0}"
wait $pid; rc=$?
ok test $rc = 75
ok grep -q "preempted at step" "$tmp/C1.log"
ok test -n "$(ls -d "$tmp"/C/checkpoints/step-* 2>/dev/null)"
ok grep -q '"stop": "preempted"' "$tmp/C/summary.json"
train --run-dir "$tmp/C" --resume > "$tmp/C2.log" 2>&1; rc=$?
ok test $rc = 0
ok same_params "$tmp/A/model.pt" "$tmp/C/model.pt"
ok test "$(steps_of "$tmp/C")" = "$total"

# E: the newest checkpoint truncated, the one before it with a flipped byte: --resume names both
# (file, mismatch), sets them aside as step-N.damaged, resumes from the third and ends bit-identical
ckpts=($(ls -d "$tmp"/A/checkpoints/step-* | sed 's/.*step-//' | sort -n))   # oldest first
ok test "${#ckpts[@]}" = 3
cp -a "$tmp/A" "$tmp/E"; rm -f "$tmp/E/model.pt"
n0=${ckpts[0]}; n1=${ckpts[1]}; n2=${ckpts[2]}
size=$(stat -c %s "$tmp/E/checkpoints/step-$n2/model.pt")
truncate -s 100 "$tmp/E/checkpoints/step-$n2/model.pt"
"$PY" - "$tmp/E/checkpoints/step-$n1/optimizer.pt" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(200); b = f.read(1); f.seek(200); f.write(bytes([b[0] ^ 0x10]))
PY
train --run-dir "$tmp/E" --checkpoint-every-steps 7 --resume > "$tmp/E.log" 2>&1; rc=$?
ok test $rc = 0
ok grep -q "^djct_train: rank 0: warning: --resume: damaged checkpoint '$tmp/E/checkpoints/step-$n2': file 'model.pt' has 100 bytes, DONE says $size; moved aside to '$tmp/E/checkpoints/step-$n2.damaged'\$" "$tmp/E.log"
ok grep -q "^djct_train: rank 0: warning: --resume: damaged checkpoint '$tmp/E/checkpoints/step-$n1': file 'optimizer.pt' fails its CRC-32 check (corrupt); moved aside to '$tmp/E/checkpoints/step-$n1.damaged'\$" "$tmp/E.log"
ok grep -q "resumed from the checkpoint of step $n0\$" "$tmp/E.log"
ok same_params "$tmp/A/model.pt" "$tmp/E/model.pt"
# never overwritten: the damaged copies are as they were, beside the new checkpoints of the same steps
ok test "$(stat -c %s "$tmp/E/checkpoints/step-$n2.damaged/model.pt")" = 100
ok test -f "$tmp/E/checkpoints/step-$n2/DONE"

# F: every checkpoint damaged: exit 1 naming the way out, nothing overwritten, the journal untouched;
# --fresh-if-damaged then starts from step 0 (and ends bit-identical to A), the damaged copies kept
cp -a "$tmp/A" "$tmp/F"; rm -f "$tmp/F/model.pt"
for n in "${ckpts[@]}"; do truncate -s 10 "$tmp/F/checkpoints/step-$n/model.pt"; done
journal=$(ls "$tmp"/F/wandb/*/history.jsonl); sum=$(md5sum < "$journal")
train --run-dir "$tmp/F" --resume > "$tmp/F1.log" 2>&1; rc=$?
ok test $rc = 1
ok test "$(grep -c 'warning: --resume: damaged checkpoint' "$tmp/F1.log")" = 3
ok grep -q "^djct_train: rank 0: --resume: no usable checkpoint in $tmp/F/checkpoints: 3 damaged ones are set aside as step-N.damaged, nothing overwritten; restore a good copy as step-N, or start again from step 0 with --resume --fresh-if-damaged\$" "$tmp/F1.log"
ok test "$(md5sum < "$journal")" = "$sum"
ok test ! -e "$tmp/F/model.pt"
train --run-dir "$tmp/F" --resume > "$tmp/F2.log" 2>&1; rc=$?      # still refused: not "no checkpoint yet"
ok test $rc = 1
train --run-dir "$tmp/F" --resume --fresh-if-damaged > "$tmp/F3.log" 2>&1; rc=$?
ok test $rc = 0
ok grep -q "every checkpoint is damaged (set aside), starting fresh" "$tmp/F3.log"
ok same_params "$tmp/A/model.pt" "$tmp/F/model.pt"
ok test "$(ls -d "$tmp"/F/checkpoints/step-*.damaged | wc -l)" = 3

# D: SIGINT to rank 0 -> clean stop with a checkpoint, exit 130
DJCT_TEST_HOLD_AT_STEP=5 train --run-dir "$tmp/D" > "$tmp/D.log" 2>&1 &
pid=$!
ok wait_for 120 holding "$tmp/D.log" 5
ranks=($(rank_pids "$tmp/D"))
kill -INT "${ranks[0]:-0}"
wait $pid; rc=$?
ok test $rc = 130
ok test -n "$(ls -d "$tmp"/D/checkpoints/step-* 2>/dev/null)"

[ $fail -gt 0 ] && for f in "$tmp"/*.log; do echo "---- $f"; tail -5 "$f"; done
finish
