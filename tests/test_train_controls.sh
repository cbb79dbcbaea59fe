#!/usr/bin/env bash
# djct_train's training controls on real runs (2 ranks, the built-in point-cloud model): --help
# lists them; an INI config sets them all (the resolved configuration shows them) and the run
# logs grad_norm every step, takes one optimizer step per --accumulate batches, keeps best/ by a
# max-mode metric and leaves the --freeze'd parameters at their initial values (the same in two
# runs with different learning rates, the others differ; a djctools-style export's model.<...>
# names); early stopping and reduce-on-plateau
# act on a monitor that never improves after the first validation, also across a resume; fp16 on
# CPU, a bad --monitor
# and a --freeze pattern matching nothing are one-line errors.
set -u
. "$(dirname "$0")/train_lib.sh"
scratch djct_controls

"$BUILD/bin/djct_gen" --events 300 --files 2 --seed 3 --out "$tmp/data" >/dev/null
train() { # run-name options... : 2 ranks, the run in $tmp/<name>, its output in $tmp/<name>.out
  local name=$1; shift
  $MPIRUN -np 2 "$T" --data "$tmp/data" --val-data "$tmp/data/part-001.djctd" --classes 3 \
    --batch-elements 2000 --threads 1 --wandb-mode offline --progress none --run-dir "$tmp/$name" "$@" \
    >"$tmp/$name.out" 2>&1
}
journal() { ls "$tmp/$1"/wandb/*/history.jsonl 2>/dev/null | head -1; }
summary() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/$1/summary.json" "$2"; }

"$T" --help >"$tmp/help.out" 2>&1
missing=""
for o in clip-grad-norm accumulate precision monitor monitor-mode min-delta keep-best early-stopping \
         plateau-patience plateau-factor plateau-min-lr freeze; do
  grep -qE -- "^    --(\[no-\])?$o " "$tmp/help.out" || missing="$missing $o"
done
ok test -z "$missing"

# everything from a config file
cat >"$tmp/c.ini" <<'EOF'
[djct_train]
clip-grad-norm = 0.5
accumulate = 2
precision = bf16
monitor = val_metrics_accuracy
monitor-mode = max
keep-best = true
plateau-patience = 5
plateau-factor = 0.5
freeze = point0_*,global0_bias
EOF
train cfg --config "$tmp/c.ini" --epochs 2; ok test $? = 0
ok grep -q '^clip-grad-norm = 0.5$' "$tmp/cfg.out"
ok grep -q '^precision = bf16$' "$tmp/cfg.out"
ok grep -q '^freeze = point0_\*,global0_bias$' "$tmp/cfg.out"
train plain --epochs 2; ok test $? = 0
# one optimizer step per two batches (an odd epoch's last group is a single batch)
ok $PY -c 'import sys; a, p = int(sys.argv[1]), int(sys.argv[2]); sys.exit(0 if a > 0 and p // 2 <= a <= (p + 3) // 2 else f"{a} steps vs {p}")' \
  "$(summary cfg steps)" "$(summary plain steps)"
# grad_norm in every training row, positive and finite
ok $PY -c 'import json, math, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "loss" in r]
sys.exit(0 if rows and all(0 < r.get("grad_norm", -1) < math.inf for r in rows) else "grad_norm missing")' "$(journal cfg)"
ok $PY -c 'import json,sys; b = json.load(open(sys.argv[1]))
sys.exit(0 if b["metric"] == "val_metrics_accuracy" and b["mode"] == "max" and b["epoch"] in (0, 1) else str(b))' "$tmp/cfg/best/best.json"
ok test -s "$tmp/cfg/best/model.pt"

# frozen parameters keep their initial values: two runs with different learning rates agree on
# them (same seed, same initial parameters) and differ on the others
train cfg2 --config "$tmp/c.ini" --epochs 2 --lr 0.01; ok test $? = 0
ok $PY -c 'import sys, torch
a = dict(torch.jit.load(sys.argv[1]).named_parameters()); b = dict(torch.jit.load(sys.argv[2]).named_parameters())
frozen = {"point0_weight", "point0_bias", "global0_bias"}
bad = [n for n in a if torch.equal(a[n], b[n]) != (n in frozen)]
sys.exit(0 if not bad else f"frozen/trained mismatch: {bad}")' "$tmp/cfg/model.pt" "$tmp/cfg2/model.pt"

# a model exported in djctools' call style names its parameters model.<...>: freeze by that name
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$tmp/djs"
if $PY "$here/python/djctools_style.py" author "$tmp/djs" >"$tmp/djs.log" 2>&1; then
  train djs_run --model "$tmp/djs/djs.pt" --epochs 1 --max-steps 6 --freeze 'model.embed.*'; ok test $? = 0
  ok $PY -c 'import sys, torch
a = dict(torch.jit.load(sys.argv[1]).named_parameters()); b = dict(torch.jit.load(sys.argv[2]).named_parameters())
bad = [n for n in a if torch.equal(a[n], b[n]) != n.startswith("model.embed.")]
sys.exit(0 if len(a) == 4 and not bad else f"frozen/trained mismatch: {bad} of {list(a)}")' "$tmp/djs/djs.pt" "$tmp/djs_run/model.pt"
else
  ok false; tail -n 5 "$tmp/djs.log"
fi

# early stopping and the plateau: with --min-delta 1e9 only the first validation counts as an
# improvement, so patience 2 stops after epoch 3 of 6 and the lr halves after every validation
train early --epochs 6 --early-stopping 2 --plateau-patience 1 --plateau-factor 0.5 --min-delta 1e9 --lr 0.002
ok test $? = 0
ok grep -q '^early stopping after 3 epochs: val_loss did not improve for 2 validations$' "$tmp/early.out"
ok test "$(summary early stop)" = early-stopped
ok test "$(summary early epochs_done)" = 3
ok $PY -c 'import json,sys
lr = {}
for r in map(json.loads, open(sys.argv[1])):
    if "lr" in r: lr.setdefault(int(r["epoch"]), set()).add(r["lr"])
want = {0: {0.002}, 1: {0.002}, 2: {0.001}}
sys.exit(0 if lr == want else f"lr per epoch {lr}")' "$(journal early)"

# resume keeps the plateau's factor (optimizer state) and the best value and counters
# (checkpoint metadata): 2 epochs, then 2 more; validation 2 does not improve on validation 0's
# best, so the lr halves again for epoch 3 (a fresh best would keep it)
train pl --epochs 2 --plateau-patience 1 --plateau-factor 0.5 --min-delta 1e9 --lr 0.002; ok test $? = 0
train pl --epochs 4 --plateau-patience 1 --plateau-factor 0.5 --min-delta 1e9 --lr 0.002 --resume; ok test $? = 0
ok $PY -c 'import json,sys
lr = {}
for r in map(json.loads, open(sys.argv[1])):
    if "lr" in r: lr.setdefault(int(r["epoch"]), set()).add(r["lr"])
want = {0: {0.002}, 1: {0.002}, 2: {0.001}, 3: {0.0005}}
sys.exit(0 if lr == want else f"lr per epoch {lr}")' "$(journal pl)"

# errors
train fp16 --precision fp16; ok test $? = 2
ok test "$(grep -c '^djct_train: --precision fp16 needs --device cuda: libtorch autocasts to bfloat16 only on CPU; use --precision bf16$' "$tmp/fp16.out")" = 1
train mon --monitor accuracy; ok test $? = 2
ok grep -q "^djct_train: --monitor 'accuracy' is not a validation metric" "$tmp/mon.out"
train frz --freeze 'model.enc*' --epochs 1; ok test $? = 1
ok grep -q "freeze: no parameter matches 'model.enc\*'; parameters: point0_weight, point0_bias, .*(10 in all)$" "$tmp/frz.out"
train mon2 --monitor val_nothing --keep-best --epochs 1; ok test $? = 1
ok grep -q "monitor 'val_nothing' was not recorded by the validation pass (recorded: val_loss, .*val_metrics_accuracy" "$tmp/mon2.out"
# a staged (GPU-style) step fetches its batch a step ahead: accumulation is refused there, named
DJCT_STAGE_BATCHES=1 train staged --accumulate 2 --epochs 1; ok test $? = 1
ok grep -q "gradient accumulation (accumulate 2) is not supported for a model on a GPU yet" "$tmp/staged.out"

[ $fail -gt 0 ] && tail -n 5 "$tmp"/*.out
finish
