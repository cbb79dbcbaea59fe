#!/usr/bin/env bash
# djct_predict end to end: the built-in point-cloud model trained a few steps by djct_train, then
# predicted with 1, 2 and 4 ranks: one row per input event in input order, ids that line up with
# the input files, outputs equal to the model's own forward in Python and bit-identical whatever
# the rank count; a .djctd output with the same values; a Python-authored model whose per-point
# output keeps the input's row splits; --with-targets reports the mean loss of a validation pass
# over the same events and every metric, --logging/--loss switch modules; a model that reads its
# targets, a scalar output and the ambiguous one-point-per-event case fail with one line (the last
# works with --output-kinds), a failure on one rank at a later batch stops every rank with that
# rank's message; bad options exit 2 before anything starts; no part or temporary file is left
# behind; --help matches docs/predict.md.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
PY=${DJCT_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
if [ "${HAVE_TORCH:-1}" = 0 ]; then echo "skip: built without libtorch"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
if ! "$PY" -c 'import torch, h5py' 2>/dev/null; then
  echo "skip: $PY lacks torch or h5py (apt-get install python3-torch python3-h5py)"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
P=$BUILD/bin/djct_predict
tmp=$(mktemp -d /tmp/djct_predict.XXXXXX); trap 'rm -rf "$tmp"' EXIT
tally() { # a Python check's log: add its "N passed, N failed"
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then fail=$((fail + 1)); echo "FAIL: no summary in $1" >&2; cat "$1" >&2; return; fi
  pass=$((pass + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"))); fail=$((fail + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
  grep FAIL "$1" >&2
}
predict() { # ranks name options... : $tmp/<name>.out, the exit status
  local np=$1 name=$2; shift 2
  $MPIRUN -np "$np" "$P" --threads 1 --progress none "$@" >"$tmp/$name.out" 2>&1
}
leftovers() { ls "$tmp"/out | grep -E '\.part-|\.tmp-' ; }

# --help comes from the option table and docs/predict.md documents every option (and no other)
help=$("$P" --help); ok test $? = 0
ok grep -q "exit codes: 0 done, 1 failure, 2 usage" <<<"$help"
opts=$(grep -oE -- '--(\[no-\])?[a-z][a-z0-9-]+' <<<"$help" | sed 's/\[no-\]//' | sort -u)
undocumented=$(for o in $opts; do grep -q -- "\`$o" docs/predict.md || echo "$o"; done)
ok test -z "$undocumented" || echo "    in --help, not in docs/predict.md: $undocumented" >&2
flat=$(sed 's/\[no-\]//g' <<<"$help")
unknown=$(for o in $(sed -n '/^## Options/,/^## /p' docs/predict.md | grep -oE -- '`--[a-z][a-z0-9-]+' | tr -d '`' | sort -u); do
  grep -q -- "$o" <<<"$flat" || echo "$o"; done)
ok test -z "$unknown" || echo "    in docs/predict.md's options, not in --help: $unknown" >&2

# data (HDF5, so Python reads the input too), a model trained a few steps, the Python models
mkdir -p "$tmp/out"
"$BUILD/bin/djct_gen" --events 600 --files 3 --seed 5 --mean-points 20 --format h5 --out "$tmp/data" >/dev/null
inputs=("$tmp"/data/part-*.h5)
$MPIRUN -np 2 "$BUILD/bin/djct_train" --data "$tmp/data" --val-data "$tmp/data" --classes 3 --epochs 1 \
  --batch-elements 2000 --threads 1 --wandb-mode disabled --progress none --run-dir "$tmp/run" >"$tmp/train.out" 2>&1
ok test $? = 0
"$PY" "$here/python/predict_models.py" export "$tmp" >"$tmp/export.log" 2>&1; tally "$tmp/export.log"

# 1, 2 and 4 ranks: the same file, matching the model's forward and the input's ids
for np in 1 2 4; do
  predict "$np" "np$np" --model "$tmp/run/model.pt" --data "$tmp/data" --out "$tmp/out/p$np.h5" --batch-elements 1500
  ok test $? = 0
done
ok grep -q '^done: 600 events' "$tmp/np2.out"
ok grep -q '^targets: None; every LoggingModule and LossModule off$' "$tmp/np2.out"
"$PY" "$here/python/predict_models.py" check "$tmp/run/model.pt" "$tmp/out/p2.h5" "${inputs[@]}" >"$tmp/check2.log" 2>&1
tally "$tmp/check2.log"
pairs=()   # files that must hold the same arrays bit for bit, compared at the end in one Python run
pairs+=("$tmp/out/p1.h5" "$tmp/out/p2.h5" "$tmp/out/p1.h5" "$tmp/out/p4.h5")
ok test -z "$(leftovers)"

# .djctd output (by extension): the same values, read back through djct_convert
predict 2 djctd --model "$tmp/run/model.pt" --data "$tmp/data" --out "$tmp/out/p.djctd" --batch-elements 1500
ok test $? = 0
ok "$BUILD/bin/djct_convert" "$tmp/out/p.djctd" "$tmp/p-from-djctd.h5"
pairs+=("$tmp/out/p1.h5" "$tmp/p-from-djctd.h5")
"$BUILD/bin/djct_inspect" "$tmp/out/p.djctd" >"$tmp/inspect.out" 2>&1
ok grep -q "600 events" "$tmp/inspect.out"
ok grep -q "'event_id' int32 shape \[600\]" "$tmp/inspect.out"

# a per-point output keeps the input's row splits (Python-authored model, 4 ranks, gzip)
predict 4 pointwise --model "$tmp/pointwise.pt" --data "$tmp/data" --out "$tmp/out/pw.h5" --batch-elements 1500 \
  --gzip 4 --output-names logits,score
ok test $? = 0
ok grep -q "^output score: per element of 'points' (its row splits)$" "$tmp/pointwise.out"
"$PY" "$here/python/predict_models.py" check "$tmp/pointwise.pt" "$tmp/out/pw.h5" "${inputs[@]}" >"$tmp/checkpw.log" 2>&1
tally "$tmp/checkpw.log"
ok "$PY" -c 'import h5py, sys; f = h5py.File(sys.argv[1]); g = f["features/001"]
sys.exit(0 if g.attrs["name"] == "score" and g["values"].compression == "gzip" else "names or gzip")' "$tmp/out/pw.h5"

# --with-targets: the mean loss of a validation pass over the same events (djct_train validated on
# all of them with the final parameters), every metric, the JSON report
predict 2 eval --model "$tmp/run/model.pt" --data "$tmp/data" --out "$tmp/out/e.h5" --with-targets --batch-elements 1500
ok test $? = 0
ok grep -q '^targets: fed; modules: classification (loss on, logging on), regression (loss on, logging on), metrics (logging on)$' "$tmp/eval.out"
ok "$PY" - "$tmp/out/e.h5.eval.json" "$tmp/run/summary.json" <<'PY'
import json, sys
r, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
want = {"metrics_accuracy", "metrics_resolution", "metrics_bias", "classification_loss", "regression_loss"}
ok = r["events"] == 600 and want <= set(r["metrics"]) and abs(r["loss"] - s["val_loss"]) <= 1e-5 * abs(s["val_loss"])
ok = ok and abs(r["metrics"]["classification_loss"] + r["metrics"]["regression_loss"] - r["loss"]) < 1e-5 * r["loss"]
sys.exit(0 if ok else f"report {r} vs validation loss {s['val_loss']}")
PY
pairs+=("$tmp/out/p1.h5" "$tmp/out/e.h5")   # targets change no prediction
predict 2 eval2 --model "$tmp/run/model.pt" --data "$tmp/data" --out "$tmp/out/e2.h5" --with-targets \
  --logging 'metrics=off' --loss regression=off --report "$tmp/out/e2.json"
ok test $? = 0
ok "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1]))
sys.exit(0 if "metrics_accuracy" not in r["metrics"] and "regression_loss" not in r["metrics"]
         and abs(r["loss"] - r["metrics"]["classification_loss"]) < 1e-6 * r["loss"] else f"{r}")' "$tmp/out/e2.json"
predict 2 evalbad --model "$tmp/run/model.pt" --data "$tmp/data" --out "$tmp/out/e3.h5" --with-targets --loss 'metrics=off'
ok test $? = 1
ok grep -q "djct_predict: rank [01]: --loss: no LossModule matches 'metrics' (it names a LoggingModule without a loss); LossModules: classification, regression" "$tmp/evalbad.out"

# models and data that cannot be predicted: one line each, exit 1, nothing left behind
predict 2 nt --model "$tmp/needs_targets.pt" --data "$tmp/data" --out "$tmp/out/nt.h5"
ok test $? = 1
ok test "$(grep -c '^djct_predict: rank 0: the model reads its targets although every LossModule and LoggingModule is switched off: .*NeedsTargets needs its targets.*--with-targets' "$tmp/nt.out")" = 1
predict 2 scalar --model "$tmp/scalar.pt" --data "$tmp/data" --out "$tmp/out/sc.h5"
ok test $? = 1
ok grep -q '^djct_predict: rank 0: output 0 is a scalar; a prediction output needs one row per event or per element' "$tmp/scalar.out"
predict 2 amb --model "$tmp/pointwise.pt" --data "$tmp/onepoint.h5" --out "$tmp/out/amb.h5"
ok test $? = 1
ok grep -q "^djct_predict: rank 0: output 0: in the first batch of every rank its rows are both the events and the elements of the ragged feature array 'points' (one element per event?); say which" "$tmp/amb.out"
ok test ! -e "$tmp/out/amb.h5"
ok test -z "$(leftovers)"
predict 2 amb2 --model "$tmp/pointwise.pt" --data "$tmp/onepoint.h5" --out "$tmp/out/amb.h5" --output-kinds event,element
ok test $? = 0
ok "$PY" -c 'import h5py, sys, numpy as np; f = h5py.File(sys.argv[1])
sys.exit(0 if f["features/000/values"].shape == (8, 3) and np.array_equal(f["features/001/row_splits"][...], np.arange(9)) else "kinds")' "$tmp/out/amb.h5"
predict 1 amb3 --model "$tmp/pointwise.pt" --data "$tmp/onepoint.h5" --out "$tmp/out/amb3.h5" --output-kinds event,element:nope
ok test $? = 1
ok grep -q "output 1: element:nope names no ragged feature array ('points' 8 elements)" "$tmp/amb3.out"

# a failure on one rank at a later batch stops every rank (the per-batch vote) with that rank's
# message: the events above 30 are rank 1's, in its third batch of 4 events
predict 2 late --model "$tmp/late.pt" --data "$tmp/late.h5" --out "$tmp/out/late.h5" --batch-elements 8
ok test $? = 1
ok test "$(grep -c "^djct_predict: rank 1: model '$tmp/late.pt': forward: .*late failure on an event above 30" "$tmp/late.out")" = 1
ok test ! -e "$tmp/out/late.h5"
ok test -z "$(leftovers)"

# usage errors: exit 2, one line, before anything starts (no banner, no output)
err2() { local want=$1; shift; local out rc np=${NP_ERR:-1}
  $MPIRUN -np "$np" "$P" "$@" >"$tmp/err2.out" 2>"$tmp/err2.err"; rc=$?
  out=$(grep 'djct_predict' "$tmp/err2.err")
  if [ $rc = 2 ] && [[ $out == *"$want"* ]] && [ "$(wc -l <<<"$out")" = 1 ] && [ ! -s "$tmp/err2.out" ]; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: djct_predict $* -> exit $rc, '$out' (want exit 2, one line with '$want')" >&2; fi; }
m=$tmp/run/model.pt
NP_ERR=2 err2 "--out FILE is required" --model "$m" --data "$tmp/data"   # printed once by 2 ranks
err2 "name it .h5, .hdf5 or .djctd, or give the format (--format h5|djctd)" --model "$m" --data "$tmp/data" --out "$tmp/out/x.bin"
err2 "--logging needs --with-targets" --model "$m" --data "$tmp/data" --out "$tmp/out/x.h5" --logging metrics=off
err2 "'elementwise' (output 1) is not event, element, element:NAME or auto" --model "$m" --data "$tmp/data" \
  --out "$tmp/out/x.h5" --output-kinds event,elementwise
err2 "--gzip applies to HDF5 output" --model "$m" --data "$tmp/data" --out "$tmp/out/x.djctd" --gzip 3
err2 "--loss: loss switch 'regression': write NAME=on or NAME=off" --model "$m" --data "$tmp/data" \
  --out "$tmp/out/x.h5" --with-targets --loss regression
ok test ! -e "$tmp/out/x.h5"
# an output nobody can write: exit 1 naming the place
predict 2 nodir --model "$m" --data "$tmp/data" --out "$tmp/no/such/dir/p.h5"
ok test $? = 1
ok grep -q "^djct_predict: rank 0: predict: cannot create '$tmp/no/such/dir/p.h5.part-0.h5' next to the output" "$tmp/nodir.out"
ok test -z "$(leftovers)"

"$PY" - "${pairs[@]}" >"$tmp/same.log" 2>&1 <<'PY'
import sys, h5py, numpy as np
def arrays(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out
p = f = 0
for a, b in zip(sys.argv[1::2], sys.argv[2::2]):
    x, y = arrays(a), arrays(b)
    bad = [k for k in x if k not in y or x[k].dtype != y[k].dtype or not np.array_equal(x[k], y[k])]
    if bad or x.keys() != y.keys():
        f += 1
        print(f"FAIL {a} vs {b}: differ in {bad or 'names'}")
    else:
        p += 1
print(f"{p} passed, {f} failed")
PY
tally "$tmp/same.log"

[ $fail -gt 0 ] && for f in "$tmp"/*.out; do echo "---- $f"; tail -5 "$f"; done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
