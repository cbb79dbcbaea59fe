#!/usr/bin/env bash
# djct_train as users meet it: --help generated from the option table and documented in
# docs/training.md, one-line exit-2 errors for every bad option before any heavy work (on 2 ranks,
# printed once), config files with the command line winning, the resolved configuration printed,
# the requeue exit code and a short real training run with its run directory.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$BUILD/bin/djct_train
tmp=$(mktemp -d /tmp/djct_train_app.XXXXXX); trap 'rm -rf "$tmp"' EXIT

help=$("$T" --help); rc=$?
ok test $rc = 0
ok grep -q "exit codes: 0 done, 1 failure, 2 usage, 75 preempted" <<<"$help"
# every option in --help is documented, and the doc names no option the program lacks
opts=$(grep -oE -- '--(\[no-\])?[a-z][a-z0-9-]+' <<<"$help" | sed 's/\[no-\]//' | sort -u)
for o in $opts; do ok grep -q -- "$o" docs/training.md; done
flat=$(sed 's/\[no-\]//g' <<<"$help")
for o in $(grep -oE -- '`--[a-z][a-z0-9-]+' docs/training.md | tr -d '`' | sed 's/^--no-/--/' | sort -u); do
  case $o in --signal|--mpi) continue;; esac    # SLURM's and srun's options, not djct_train's
  ok grep -q -- "$o" <<<"$flat"
done
ok test "$("$T" --version | cut -d' ' -f1)" = djct_train

# usage errors: exit 2, one line, printed once although two ranks saw it, fast (no data, no model)
err2() { local want=$1; shift; local out rc t0=$(date +%s)
  out=$($MPIRUN -np 2 "$T" "$@" 2>&1 >/dev/null | grep -v '^\[' ); rc=$?
  out=$(grep 'djct_train' <<<"$out")
  if [[ $out == *"$want"* ]] && [ "$(wc -l <<<"$out")" = 1 ] && [ $(( $(date +%s) - t0 )) -lt 30 ]; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: djct_train $* -> '$out' (want one line with '$want')" >&2; fi; }
err2 "--epochs 'ten' is not a whole number" --epochs ten
err2 "--lr -1 is out of range" --lr -1
err2 "--optimizer 'lamb' is not allowed; use one of sgd|adam|adamw" --optimizer lamb
err2 "unknown option '--epoch'; did you mean '--epochs'" --epoch 3
err2 "--model '/nonexistent.pt' is neither a built-in model" --model /nonexistent.pt
printf '[djct_train]\nepochs = 2\nlearning-rate = 3\n' > "$tmp/bad.ini"
err2 "config '$tmp/bad.ini' line 3: unknown option 'learning-rate'" --config "$tmp/bad.ini"
$MPIRUN -np 2 "$T" --epochs ten >/dev/null 2>&1; ok test $? = 2

# a short real run from a config file; the command line overrides the file
"$BUILD/bin/djct_gen" --events 400 --files 2 --seed 2 --out "$tmp/data" >/dev/null
printf '[djct_train]\ndata = %s\nval-data = %s/part-001.djctd\nclasses = 3\nepochs = 5\nbatch-elements = 4000\nthreads = 1\nwandb-mode = offline\n' \
  "$tmp/data" "$tmp/data" > "$tmp/run.ini"
out=$($MPIRUN -np 2 "$T" --config "$tmp/run.ini" --epochs 1 --run-dir "$tmp/run" --progress lines 2>&1); rc=$?
ok test $rc = 0
ok grep -q '^epochs = 1$' <<<"$out"                       # resolved configuration, command line won
ok grep -q "^data = $tmp/data\$" <<<"$out"
ok test "$(grep -c '^---- resolved configuration ----$' <<<"$out")" = 1   # rank 0 only
ok grep -q '^rank 1/2 on ' <<<"$out"                       # rank-ordered start-up lines
ok grep -q '^done: ' <<<"$out"
for f in model.pt summary.json run_id checkpoints/latest; do ok test -e "$tmp/run/$f"; done
ok grep -q '"ranks": 2' "$tmp/run/summary.json"
j=$(ls "$tmp"/run/wandb/*/history.jsonl)
for k in '"loss"' '"lr"' '"events_per_s"' '"elements_per_s"' '"t_data"' '"t_compute"' '"t_comm"' \
         '"metrics_accuracy"' '"val_loss"' '"val_metrics_accuracy"'; do ok grep -q "$k" "$j"; done
# the resolved options are the run's config
ok grep -q '"batch-elements"' "$(dirname "$j")/config.json"

[ $fail -gt 0 ] && printf '%s\n' "$out" | tail -20
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
