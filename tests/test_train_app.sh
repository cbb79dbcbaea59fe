#!/usr/bin/env bash
# djct_train as users meet it: --help generated from the option table and documented in
# docs/training.md, one-line exit-2 errors for every bad option before any work (on 2 ranks,
# printed once, nothing started), config files with the command line winning, the resolved
# configuration printed, and a short real training run with its run directory (a name with a quote
# and a backslash) and a valid summary.json; --device auto's start-up line and, with a CPU-only
# libtorch, --device cuda's refusal.
set -u
. "$(dirname "$0")/train_lib.sh"
scratch djct_train_app

help=$("$T" --help); rc=$?
ok test $rc = 0
ok grep -q "exit codes: 0 done, 1 failure, 2 usage, 75 preempted" <<<"$help"
# every option in --help is documented, and the doc names no option the program lacks
opts=$(grep -oE -- '--(\[no-\])?[a-z][a-z0-9-]+' <<<"$help" | sed 's/\[no-\]//' | sort -u)
undocumented=$(for o in $opts; do grep -q -- "$o" docs/training.md || echo "$o"; done)
ok test -z "$undocumented" || echo "    in --help, not in docs/training.md: $undocumented" >&2
flat=$(sed 's/\[no-\]//g' <<<"$help")
unknown=$(for o in $(grep -oE -- '`--[a-z][a-z0-9-]+' docs/training.md | tr -d '`' | sed 's/^--no-/--/' | sort -u); do
  case $o in --signal|--mpi) continue;; esac    # SLURM's and srun's options, not djct_train's
  grep -q -- "$o" <<<"$flat" || echo "$o"
done)
ok test -z "$unknown" || echo "    in docs/training.md, not in --help: $unknown" >&2
ok test "$("$T" --version | cut -d' ' -f1)" = djct_train

# usage errors: exit 2, one line, printed once although two ranks saw it, before any work: nothing
# on stdout (no start-up report, no banner) and no run directory
err2() { local want=$1; shift; local out rc
  out=$($MPIRUN -np 2 "$T" --run-dir "$tmp/never" "$@" 2>&1 >"$tmp/err2.out" | grep -v '^\[' ); rc=$?
  out=$(grep 'djct_train' <<<"$out")
  if [[ $out == *"$want"* ]] && [ "$(wc -l <<<"$out")" = 1 ] && [ ! -s "$tmp/err2.out" ] && [ ! -e "$tmp/never" ]; then
    pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: djct_train $* -> '$out' (want one line with '$want'); stdout: $(head -c 300 "$tmp/err2.out")" >&2; fi; }
err2 "--epochs 'ten' is not a whole number" --epochs ten
err2 "--lr -1 is out of range" --lr -1
err2 "--decode-threads -1 is out of range" --decode-threads -1
err2 "--optimizer 'lamb' is not allowed; use one of sgd|adam|adamw" --optimizer lamb
err2 "--shuffle 'globl' is not allowed; use one of none|files|global (did you mean 'global'?)" --shuffle globl
err2 "unknown option '--epoch'; did you mean '--epochs'" --epoch 3
err2 "--model '/nonexistent.pt' is neither a built-in model" --model /nonexistent.pt
printf '[djct_train]\nepochs = 2\nlearning-rate = 3\n' > "$tmp/bad.ini"
err2 "config '$tmp/bad.ini' line 3: unknown option 'learning-rate'" --config "$tmp/bad.ini"
$MPIRUN -np 2 "$T" --epochs ten >/dev/null 2>&1; ok test $? = 2
# a WANDB_* twin's variable is read like an option: a bad value is a usage error naming it
WANDB_MODE=onlin err2 "environment variable WANDB_MODE: --wandb-mode 'onlin' is not allowed" --epochs 1
# --help names the variable each option with a WANDB_* twin reads
ok grep -q -- "--project NAME .*\[\$WANDB_PROJECT, else djct\]" <<<"$help"
ok grep -q -- "--run-id ID .*\[\$WANDB_RUN_ID\]" <<<"$help"

# a short real run from a config file; the command line overrides the file
"$BUILD/bin/djct_gen" --events 400 --files 2 --seed 2 --out "$tmp/data" >/dev/null
printf '[djct_train]\ndata = %s\nval-data = %s/part-001.djctd\nclasses = 3\nepochs = 5\nbatch-elements = 4000\nthreads = 1\ndecode-threads = 2\nwandb-mode = offline\n' \
  "$tmp/data" "$tmp/data" > "$tmp/run.ini"
run=$tmp/'ru"n\dir'   # a quote and a backslash for the JSON files to escape
# the environment sits between the built-in defaults and the options: WANDB_PROJECT replaces the
# default project, --group wins over WANDB_RUN_GROUP, the config file's wandb-mode over WANDB_MODE
out=$(WANDB_PROJECT=envproj WANDB_RUN_GROUP=envgroup WANDB_TAGS=a,b WANDB_MODE=disabled \
      $MPIRUN -np 2 "$T" --config "$tmp/run.ini" --epochs 1 --run-dir "$run" --run-id app-test.1 --progress lines \
      --group cligroup 2>&1); rc=$?
ok test $rc = 0
ok grep -q '^epochs = 1$' <<<"$out"                       # resolved configuration, command line won
ok grep -q "^data = $tmp/data\$" <<<"$out"
ok grep -q '^shuffle = global$' <<<"$out"                 # a choice printed by name
ok grep -q '^decode-threads = 2$' <<<"$out"               # from the config file
ok test "$(grep -c '^---- resolved configuration ----$' <<<"$out")" = 1   # rank 0 only
ok grep -q '^rank 1/2 on ' <<<"$out"                       # rank-ordered start-up lines
ok grep -q '^done: ' <<<"$out"
# --device auto (the default) says which device and why; with a CPU-only libtorch the reason is that
tcuda=$(grep -c 'DJCT_TORCH_CUDA=1' "$BUILD/config.mk")
ok grep -qE '^device: (cpu|cuda:0 on rank 0) \(--device auto: .+\)$' <<<"$out"
if [ "$tcuda" = 0 ]; then
  ok grep -qx 'device: cpu (--device auto: this libtorch has no CUDA, a CPU-only build)' <<<"$out"
  # --device cuda where it cannot be: every rank ends with exit 1 at start-up, rank 0 naming why once
  cout=$($MPIRUN -np 2 "$T" --device cuda --run-dir "$tmp/cuda" --wandb-mode disabled 2>&1); crc=$?
  ok test $crc = 1
  ok test "$(grep -c '^djct_train: rank 0: --device cuda: this libtorch has no CUDA, a CPU-only build; use --device auto or cpu$' <<<"$cout")" = 1
  ok test ! -e "$tmp/cuda"
fi
absent=$(for f in model.pt summary.json run_id checkpoints/latest; do [ -e "$run/$f" ] || echo "$f"; done)
ok test -z "$absent" || echo "    missing in the run directory: $absent" >&2
# summary.json: valid JSON with the run's id and directory's values, the counts, the stop reason
ok /usr/bin/python3 - "$run/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
want = {"ranks": 2, "run_id": "app-test.1", "stop": "done", "epochs_done": 1, "skipped_steps": 0}
bad = {k: s.get(k) for k in want if s.get(k) != want[k]}
bad.update({k: s.get(k) for k in ("steps", "events_per_s", "elements_per_s", "step_time_s", "final_loss", "wall_s")
            if not isinstance(s.get(k), (int, float)) or s[k] <= 0})
if bad:
    sys.exit(f"summary.json: unexpected {bad}")
PY
ok grep -q '"ranks": 2, ' "$run/summary.json"               # one line, as scripts grep it
j=$(ls "$run"/wandb/*/history.jsonl)
nokey=$(for k in '"loss"' '"lr"' '"events_per_s"' '"elements_per_s"' '"t_data"' '"t_compute"' '"t_comm"' \
                 '"metrics_accuracy"' '"val_loss"' '"val_metrics_accuracy"'; do grep -q "$k" "$j" || echo "$k"; done)
ok test -z "$nokey" || echo "    not in the journal: $nokey" >&2
ok /usr/bin/python3 - "$(dirname "$j")/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
got = {k: r.get(k) for k in ("project", "group", "tags", "mode")}
if got != {"project": "envproj", "group": "cligroup", "tags": ["a", "b"], "mode": "offline"}:
    sys.exit(f"run.json: {got}")
PY
# the resolved options are the run's config (the run directory verbatim)
ok /usr/bin/python3 - "$(dirname "$j")/config.json" "$run" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
v = lambda k: c.get(k, {}).get("value") if isinstance(c.get(k), dict) else c.get(k)
if v("run-dir") != sys.argv[2] or v("batch-elements") is None or v("device") != "auto" or v("device_used") not in ("cpu", "cuda"):
    sys.exit(f"config.json: run-dir {v('run-dir')!r}, batch-elements {v('batch-elements')!r}, "
             f"device {v('device')!r}, device_used {v('device_used')!r}")
PY

[ $fail -gt 0 ] && printf '%s\n' "$out" | tail -20
finish
