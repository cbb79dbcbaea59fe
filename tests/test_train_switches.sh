#!/usr/bin/env bash
# djct_train --logging / --loss on real runs (2 ranks, the built-in point-cloud model): the
# start-up line lists every module's state, a switched-off LoggingModule's metrics are absent from
# the journal (training and validation) while the others stay, a switched-off loss changes the
# loss (the two single-loss runs add up to the run with both, step 1, same seed), the INI config
# and repeated options apply in order, an unknown name is a one-line error listing the known
# ones (exit 1) and a malformed entry a usage error (exit 2) before anything starts.
set -u
. "$(dirname "$0")/train_lib.sh"
scratch djct_switches

"$BUILD/bin/djct_gen" --events 200 --files 2 --seed 3 --out "$tmp/data" >/dev/null
train() { # run-name options... : one epoch, 2 ranks, the journal in $tmp/<name>
  local name=$1; shift
  $MPIRUN -np 2 "$T" --data "$tmp/data" --val-data "$tmp/data/part-001.djctd" --classes 3 --epochs 1 \
    --batch-elements 3000 --threads 1 --wandb-mode offline --progress none --run-dir "$tmp/$name" "$@" \
    >"$tmp/$name.out" 2>&1
}
journal() { ls "$tmp/$1"/wandb/*/history.jsonl 2>/dev/null | head -1; }
first_loss() { $PY -c 'import json,sys
print(next(r["loss"] for r in map(json.loads, open(sys.argv[1])) if "loss" in r and "val_loss" not in r))' "$(journal "$1")"; }

train all; ok test $? = 0
ok grep -q '^modules: classification (loss on, logging on), regression (loss on, logging on), metrics (logging on)$' "$tmp/all.out"
j=$(journal all)
ok grep -q '"metrics_accuracy"' "$j"
ok grep -q '"val_metrics_accuracy"' "$j"

# one loss off changes the loss: classification alone + regression alone = both (the first step:
# same parameters and batch); metrics off: its metrics are gone, the LossModules' metrics stay
train nocls --loss classification=off; ok test $? = 0
train noreg --loss regression=off --logging metrics=off; ok test $? = 0
ok grep -q '^modules: classification (loss off, logging on), regression (loss on' "$tmp/nocls.out"
ok grep -q '^modules: classification (loss on, logging on), regression (loss off, logging on), metrics (logging off)$' "$tmp/noreg.out"
ok test "$(grep -c '"classification_loss"' "$(journal nocls)")" = 0
j=$(journal noreg)
ok test -n "$j"
ok test "$(grep -c 'metrics_accuracy\|metrics_resolution\|metrics_bias' "$j")" = 0
ok grep -q '"classification_loss"' "$j"
ok grep -q '"val_classification_loss"' "$j"
a=$(first_loss all); c=$(first_loss nocls); r=$(first_loss noreg)
ok $PY -c 'import sys; a, c, r = map(float, sys.argv[1:])
sys.exit(0 if c > 0 and r > 0 and abs(a - c) > 1e-3 * a and abs(a - (c + r)) < 1e-4 * a else f"loss {a} vs {c} + {r}")' "$a" "$c" "$r"

# a config file, then repeated options and globs, in order
printf '[djct_train]\nloss = regression=off\nlogging = *=off\n' > "$tmp/sw.ini"
train cfg --config "$tmp/sw.ini" --logging 'class*=on' --logging 'metrics=on,metrics=off' --loss 'reg*=on'; ok test $? = 0
ok grep -q '^modules: classification (loss on, logging on), regression (loss on, logging off), metrics (logging off)$' "$tmp/cfg.out"
ok grep -q '^logging = \*=off,class\*=on,metrics=on,metrics=off$' "$tmp/cfg.out"   # the resolved configuration

# errors: an unknown name lists the known ones (exit 1); a malformed entry is a usage error
train bad --loss 'regresion=off'; ok test $? = 1
ok test "$(grep -c "djct_train: rank [01]: --loss: no LossModule matches 'regresion'; LossModules: classification, regression$" "$tmp/bad.out")" -ge 1
train bad3 --logging metrics; ok test $? = 2
ok test "$(grep -c "^djct_train: --logging: logging switch 'metrics': write NAME=on or NAME=off" "$tmp/bad3.out")" = 1
ok test ! -e "$tmp/bad3"

[ $fail -gt 0 ] && tail -5 "$tmp"/*.out
finish
