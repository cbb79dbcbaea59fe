#!/usr/bin/env bash
# Round trip Python -> C -> Python: a model authored with python/djct and exported, trained by
# the C API (build/tests/test_model --roundtrip), reloaded by torch.jit.load with the same outputs;
# plus models the C side must refuse. djctools' API as its README writes it: a model in
# djctools' style (plain-number log, keyword switches, static spellings, model([features,
# targets])) exported, trained by djct_train on 2 ranks, its metrics in the journal, reloaded;
# the one-line export errors for missing type hints; djct.wandb_wrapper's journals (new, and
# djct_train's run continued) uploaded by djct_sync to tests/wandb_server.py.
# Needs /usr/bin/python3 with torch (Debian python3-torch).
set -u
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
PY=${DJCT_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
if [ "${HAVE_TORCH:-1}" = 0 ]; then echo "skip: built without libtorch"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "skip: $PY has no torch (apt-get install python3-torch)"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
P=0; F=0
tally() { # log file of a step that prints "N passed, N failed"
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then F=$((F + 1)); echo "FAIL: no summary in $1"; cat "$1"; return; fi
  P=$((P + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"))); F=$((F + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
  sed 's/^/  /' "$1"
}
export OMP_NUM_THREADS=1
echo "== author (Python)"; "$PY" "$here/python/roundtrip.py" author "$d" >"$d/a.log" 2>&1; tally "$d/a.log"
echo "== train (C)"; "$BUILD/tests/test_model" --roundtrip "$d/in.pt" "$d/out.pt" "$d/data.bin" >"$d/c.log" 2>&1; tally "$d/c.log"
for want in "module LoggingModule1 logging=0 loss=1/1" "module aux logging=0 loss=1/1" "module LoggingModule2 logging=0 loss=0/0" "metric LoggingModule1_loss" "metric LoggingModule2_mean_out"; do
  if grep -qF "$want" "$d/c.log"; then P=$((P + 1)); else F=$((F + 1)); echo "FAIL: C output lacks '$want'"; fi
done
echo "== check (Python)"; "$PY" "$here/python/roundtrip.py" check "$d" >"$d/p.log" 2>&1; tally "$d/p.log"
echo "== refused models (C)"
"$BUILD/tests/test_model" --load-error "$d/bad_signature.pt" "forward must be forward(self, features: List[Tensor]" >"$d/e1.log" 2>&1; tally "$d/e1.log"
"$BUILD/tests/test_model" --load-error "$d/double.pt" "is Double; djct trains float32" >"$d/e2.log" 2>&1; tally "$d/e2.log"

echo "== djctools' style: author and export (Python)"
"$PY" "$here/python/djctools_style.py" author "$d" >"$d/s.log" 2>&1; tally "$d/s.log"
echo "== djctools' style: train with djct_train on 2 ranks"
"$BUILD/bin/djct_gen" --events 240 --files 2 --seed 3 --mean-points 20 --out "$d/data" >"$d/g.log" 2>&1 &&
  "$BUILD/bin/djct_gen" --events 60 --files 1 --seed 4 --mean-points 20 --out "$d/val" >>"$d/g.log" 2>&1 ||
  { F=$((F + 1)); echo "FAIL: djct_gen"; cat "$d/g.log"; }
$MPIRUN -np 2 "$BUILD/bin/djct_train" --model "$d/djs.pt" --data "$d/data" --val-data "$d/val" --epochs 1 \
  --max-steps 20 --batch-elements 400 --run-dir "$d/run" --wandb-mode offline --threads 1 \
  --checkpoint-every-minutes 0 --progress lines >"$d/t.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^done: ' "$d/t.log"; then P=$((P + 1)); else F=$((F + 1)); echo "FAIL: djct_train rc=$rc"; tail -n 20 "$d/t.log"; fi
j=$(ls "$d"/run/wandb/*/history.jsonl 2>/dev/null | head -n 1)
# the plain numbers (123, 1, the .item() accuracy, the event count) and the losses, training and validation
for k in '"LoggingModule1_example_metric":123[,}]' '"shower_batches":1[,}]' '"acc_accuracy":[0-9.eE+-]+' \
         '"acc_events":[0-9]+[,}]' '"shower_loss":[0-9.eE+-]+' '"val_LoggingModule1_example_metric":123[,}]' \
         '"val_acc_accuracy":[0-9.eE+-]+' '"val_shower_loss":[0-9.eE+-]+'; do
  if grep -qE "$k" "${j:-/dev/null}"; then P=$((P + 1)); else F=$((F + 1)); echo "FAIL: journal ${j:-missing} lacks $k"; fi
done
echo "== djctools' style: the trained model (Python)"
"$PY" "$here/python/djctools_style.py" check "$d" >"$d/sc.log" 2>&1; tally "$d/sc.log"
echo "== djct.wandb_wrapper: journals, uploaded by djct_sync (Python)"
"$PY" "$here/python/wrapper_journal.py" "$d" "$BUILD" >"$d/w.log" 2>&1; tally "$d/w.log"
echo "$P passed, $F failed"
[ "$F" -eq 0 ]
