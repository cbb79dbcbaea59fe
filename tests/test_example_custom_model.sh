#!/usr/bin/env bash
# examples/custom_model end to end on tiny data: the Python model exports, djct_train trains it on
# 2 ranks (exit 0), the metrics of its LossModules/LoggingModule reach the run journal, the trained
# model reloads in Python and runs with targets absent, and evaluate.py's numbers equal the C
# side's validation row (and it does notice when they do not) and join the run's journal as the
# next row (djct.wandb_wrapper).
set -u
BUILD=${BUILD:-build}
PY=${DJCT_PYTHON:-/usr/bin/python3}
root=$(cd "$(dirname "$0")/.." && pwd)
ex=$root/examples/custom_model
if [ "${HAVE_TORCH:-1}" = 0 ]; then echo "skip: built without libtorch"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
if ! "$PY" -c 'import torch, h5py' 2>/dev/null; then
  echo "skip: $PY has no torch or h5py (apt-get install python3-torch python3-h5py)"
  echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
P=0; F=0
ok() { if "$@"; then P=$((P + 1)); else F=$((F + 1)); echo "FAIL: $*"; fi; }
has() { grep -qE -- "$2" "$1"; }
d=$(mktemp -d /tmp/djct_custom_model.XXXXXX); trap 'rm -rf "$d"' EXIT
export OMP_NUM_THREADS=1 PYTHONPATH=$root/python

# 1 epoch of 400 events (about 8 steps on 2 ranks), so the last journal row is the validation of
# the saved weights and evaluate.py can compare; --max-steps caps it should the data plan change
OUT=$d BUILD=$BUILD EVENTS=400 VAL_EVENTS=200 EPOCHS=1 MAX_STEPS=20 \
  bash "$ex/run.sh" --threads 1 --checkpoint-every-minutes 0 >"$d/run.log" 2>&1
rc=$?
ok test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -n 30 "$d/run.log"
echo "== export"
ok has "$d/run.log" "^model.py: wrote .*model.pt: ShowerNet, [0-9]+ parameters; classification \(LossModule\), regression \(LossModule\), shower \(LoggingModule\)"
ok test -s "$d/model.pt"
echo "== train"
ok has "$d/run.log" "^done: [0-9]+ steps"
ok test -s "$d/run/model.pt"
ok has "$d/run/summary.json" '"stop": "done"'
j=$(ls "$d"/run/wandb/*/history.jsonl 2>/dev/null | head -n 1)
ok test -n "$j"
echo "== journal ${j:-missing}"
for k in shower_accuracy shower_resolution shower_bias classification_loss regression_loss loss \
         val_shower_accuracy val_shower_resolution val_classification_loss val_regression_loss val_loss; do
  ok has "${j:-/dev/null}" "\"$k\":[-0-9.eE+]+"
done
echo "== evaluate"
ok has "$d/run.log" "^evaluate.py: .*model.pt on 2 file\(s\), [0-9]+ events"
ok has "$d/run.log" "^  accuracy +[01]\.[0-9]+"
ok test "$(grep -c ' matches$' "$d/run.log")" -eq 4
ok test "$(grep -c 'DIFFERS' "$d/run.log")" -eq 0
# evaluate.py --wandb: its numbers are the journal's next row, in the same run
"$PY" - "${j:-/dev/null}" >"$d/eval_row.log" 2>&1 <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last, before = rows[-1], rows[-2]
print("eval row:", sorted(k for k in last if not k.startswith("_"))[:3], last["_step"] == before["_step"] + 1,
      "val_loss" in before)
PYEOF
ok has "$d/eval_row.log" "^eval row: \['eval_accuracy', 'eval_bias_log', 'eval_bias_rel'\] True True"
ok has "$d/run.log" "^djct.wandb_wrapper: run [a-z0-9]+: [0-9]+ rows in .*/run/wandb/[a-z0-9]+; upload with: djct_sync "
# evaluate.py must notice a disagreement: tamper with the C side's numbers
cp -r "$d/run" "$d/bad"
jb=$(ls "$d"/bad/wandb/*/history.jsonl | head -n 1)
"$PY" - "$jb" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
v = [r for r in rows if "val_shower_n_correct" in r][-1]   # the validation row, before the eval_* row
v["val_shower_n_correct"] = v["val_shower_n_correct"] * 0.5 + 1
v["val_loss"] *= 1.01
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PYEOF
"$PY" "$ex/evaluate.py" "$d/bad" "$d/data/val" >"$d/bad.log" 2>&1
ok test $? -eq 1
ok test "$(grep -c 'DIFFERS' "$d/bad.log")" -eq 2
echo "== the trained model in pure inference"
"$PY" - "$d/run/model.pt" >"$d/infer.log" 2>&1 <<'PYEOF'
import sys, torch, djct
m = torch.jit.load(sys.argv[1])
on = [getattr(x, "logging_active") for x in m.modules() if djct.is_logging_module(x)]
print("logging as saved by djct_train:", on)
pts = torch.rand(10, 4); rs = torch.tensor([0, 3, 10])
try:
    m([pts, rs], None)
    print("BAD: ran with targets None while losses are on")
except Exception as e:
    print("refused:", "targets are None" in str(e))
djct.switch_all_logging(m, False); djct.switch_all_losses(m, False); m.eval()
with torch.no_grad():
    logits, energy = m([pts, rs], None)
print("inference", tuple(logits.shape), tuple(energy.shape), bool(torch.isfinite(logits).all() and torch.isfinite(energy).all()))
PYEOF
ok has "$d/infer.log" "^logging as saved by djct_train: \[True, True, True\]"
ok has "$d/infer.log" "^refused: True"
ok has "$d/infer.log" "^inference \(2, 3\) \(2,\) True"
[ "$F" -eq 0 ] || { echo "-- run.log"; tail -n 40 "$d/run.log"; cat "$d/bad.log" "$d/infer.log"; }
echo "$P passed, $F failed"
[ "$F" -eq 0 ]
