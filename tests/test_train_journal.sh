#!/usr/bin/env bash
# djct_train's run journal and its upload, with 2 real ranks and tests/wandb_server.py on 127.0.0.1:
#  - an online run against a dead server: exit 0, the end says what was not uploaded and the exact
#    djct_sync command, summary.json records it; that command then uploads everything
#  - SIGKILL after rows past the last checkpoint, then --resume: one row per training step in the
#    journal, the CSV and on the server, whether it replaces lines by offset or orders them by _step
# The API key appears in no file and no output.
set -u
. "$(dirname "$0")/train_lib.sh"
KEY=djcttestkey0123456789abcdefghijklmnopqrstuv   # a fake key, never a real one
scratch djct_train_journal
trap 'for p in "$tmp"/*.pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done; rm -rf "$tmp"' EXIT
skip_without_torch
unset WANDB_API_KEY WANDB_BASE_URL WANDB_PROJECT WANDB_ENTITY WANDB_RUN_ID
"$BUILD/bin/djct_gen" --events 1200 --files 2 --seed 4 --out "$tmp/data" >/dev/null || { echo "FAIL: djct_gen"; exit 1; }
common=(--data "$tmp/data" --classes 3 --batch-elements 3000 --seed 3 --threads 1 --progress none --no-validate
        --checkpoint-every-minutes 0)
train() { $MPIRUN -np 2 "$BUILD/bin/djct_train" "${common[@]}" "$@"; }

# server NAME [args]: start tests/wandb_server.py; sets URL_<NAME> and STATE_<NAME>
server() {
  local n=$1; shift
  ( DJCT_TEST_KEY=$KEY "$PY" tests/wandb_server.py --port-file "$tmp/$n.port" --state "$tmp/$n.state" \
      --log "$tmp/$n.log" --lifetime 600 "$@" & echo $! > "$tmp/$n.pid" )
  for _ in $(seq 600); do [ -s "$tmp/$n.port" ] && break; sleep 0.05; done
  printf -v "URL_$n" 'http://127.0.0.1:%s' "$(cat "$tmp/$n.port" 2>/dev/null)"
  printf -v "STATE_$n" '%s' "$tmp/$n.state"
}
server A

# ---- an online run against a dead server ------------------------------------------------------
# nothing listens on port 1: every attempt is refused and retried until the upload wait ends
WANDB_API_KEY=$KEY WANDB_BASE_URL=http://127.0.0.1:1 train --epochs 1 --run-dir "$tmp/D" --wandb-mode online \
  --upload-timeout 2 > "$tmp/D.out" 2> "$tmp/D.err"; rc=$?
ok test $rc = 0
jd=$(ls -d "$tmp"/D/wandb/*/)
rows=$(wc -l < "$jd/history.jsonl")
ok grep -q "^djct_train: rank 0: warning: wandb upload incomplete: $rows of $rows history rows, the config, the summary and \`complete\` were not uploaded (UpsertBucket to http://127.0.0.1:1: .*); nothing is lost, the journal has everything$" "$tmp/D.err"
ok grep -qx "djct_train: rank 0: finish the upload with: djct_sync ${jd%/}" "$tmp/D.err"
ok test "$(grep -c 'wandb upload incomplete' "$tmp/D.err")" = 1     # rank 0 only
ok "$PY" - "$tmp/D/summary.json" "$rows" "${jd%/}" <<'PY'
import json, sys
u = json.load(open(sys.argv[1])).get("upload") or {}
want = {"mode": "online", "complete": False, "rows": int(sys.argv[2]), "rows_uploaded": 0,
        "rows_pending": int(sys.argv[2]), "config_pending": True, "summary_pending": True,
        "complete_pending": True, "sync_command": "djct_sync " + sys.argv[3]}
bad = {k: u.get(k) for k in want if u.get(k) != want[k]}
if bad or "127.0.0.1:1" not in u.get("error", ""):
    sys.exit(f"summary.json upload: {u}")
PY
# the printed command, from a machine that reaches the server, uploads everything
cmd=$(sed -n 's/^djct_train: rank 0: finish the upload with: //p' "$tmp/D.err")
WANDB_API_KEY=$KEY WANDB_BASE_URL=$URL_A $BUILD/bin/$cmd > "$tmp/D.sync" 2>&1; rc=$?
ok test $rc = 0
ok grep -q "nothing left: the server has all $rows rows and the run is complete" "$tmp/D.sync"
ok "$PY" - "$STATE_A" "$(basename "$jd")" "$rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"].get("test-entity/djct/" + sys.argv[2]) or {}
h = r.get("files", {}).get("wandb-history.jsonl", [])
if len(h) != int(sys.argv[3]) or None in h or not r.get("complete") or r.get("exitcode") != 0:
    sys.exit(f"server: {len(h)} rows, complete {r.get('complete')}, exitcode {r.get('exitcode')}")
PY

# ---- SIGKILL after rows past the last checkpoint, then --resume ---------------------------------
# The killed job's journal (rows past the checkpoint included) is uploaded to server A (replaces a
# line by offset) and, from a copy, to server B (keeps history ordered by _step: ignores a row whose
# _step it has). The job resumed from the checkpoint: one row per training step in history.jsonl
# and history.csv, the rows past the checkpoint in history.rewound.jsonl, _step consecutive; then
# the server has one row per training step either way: A (the resumed job online) the journal line
# for line, B (the copy resumed offline, then djct_sync) every training step once.
server B --history-mode step
jopts=(--epochs 2 --val-data "$tmp/data/part-001.djctd" --validate --checkpoint-every-steps 7)
DJCT_TEST_HOLD_AT_STEP=17 train "${jopts[@]}" --run-dir "$tmp/J" --wandb-mode offline > "$tmp/J1.out" 2>&1 &
pid=$!
for _ in $(seq 2400); do grep -q "^holding after step 17" "$tmp/J1.out" 2>/dev/null && break; sleep 0.05; done
ok grep -q "^holding after step 17" "$tmp/J1.out"
sleep 0.2   # the writer thread puts the held step's row into the journal within 20 ms
kill -9 $pid $(pgrep -P $pid) 2>/dev/null; wait $pid 2>/dev/null
ok test ! -f "$tmp/J/model.pt"
jj=$(ls -d "$tmp"/J/wandb/*/); jj=${jj%/}; id=$(basename "$jj")
ok "$PY" - "$jj/history.jsonl" <<'PY'
import json, sys
g = [json.loads(l).get("global_step") for l in open(sys.argv[1])]
if max(x for x in g if x is not None) != 17:   # rows past the checkpoint of step 14
    sys.exit(f"killed job's global steps: {g}")
PY
cp -a "$tmp/J" "$tmp/K"
WANDB_API_KEY=$KEY WANDB_BASE_URL=$URL_A $BUILD/bin/djct_sync "$jj" > "$tmp/J.sync1" 2>&1; ok test $? = 0
WANDB_API_KEY=$KEY WANDB_BASE_URL=$URL_B $BUILD/bin/djct_sync "$tmp/K/wandb/$id" > "$tmp/K.sync1" 2>&1; ok test $? = 0
WANDB_API_KEY=$KEY WANDB_BASE_URL=$URL_A train "${jopts[@]}" --run-dir "$tmp/J" --wandb-mode online --resume \
  > "$tmp/J2.out" 2>&1; rc=$?
ok test $rc = 0
ok grep -q "^resumed from the checkpoint of step 14$" "$tmp/J2.out"
ok grep -q "^journal: the [0-9]* rows logged after that point moved to $jj/history.rewound.jsonl$" "$tmp/J2.out"
train "${jopts[@]}" --run-dir "$tmp/K" --wandb-mode offline --resume > "$tmp/K2.out" 2>&1; ok test $? = 0
WANDB_API_KEY=$KEY WANDB_BASE_URL=$URL_B $BUILD/bin/djct_sync "$tmp/K/wandb/$id" > "$tmp/K.sync2" 2>&1; ok test $? = 0
total=$(sed -n 's/.*"steps": \([0-9]*\).*/\1/p' "$tmp/J/summary.json")
# one row per training step (and one validation row per epoch) in a journal, _step consecutive
one_per_step() { "$PY" - "$@" <<'PY'
import csv, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
total = int(sys.argv[2])
g = [r["global_step"] for r in rows if "global_step" in r]
v = [r["val_epoch"] for r in rows if "val_epoch" in r]
s = [r["_step"] for r in rows]
bad = []
if g != list(range(1, total + 1)): bad.append(f"global steps {g}")
if v != [0, 1]: bad.append(f"validation epochs {v}")
if s != list(range(len(rows))): bad.append(f"_step {s}")
if len(sys.argv) > 3:   # the CSV holds the same rows
    c = list(csv.DictReader(open(sys.argv[3])))
    if [r["_step"] for r in c] != [str(x) for x in s]: bad.append(f"history.csv _step {[r['_step'] for r in c]}")
if len(sys.argv) > 4:   # the rows moved aside: the killed job's steps past the checkpoint
    m = [json.loads(l).get("global_step") for l in open(sys.argv[4])]
    if m != list(range(15, 18)): bad.append(f"history.rewound.jsonl global steps {m}")
if bad: sys.exit("; ".join(bad))
PY
}
ok one_per_step "$jj/history.jsonl" "$total" "$jj/history.csv" "$jj/history.rewound.jsonl"
ok one_per_step "$tmp/K/wandb/$id/history.jsonl" "$total"
# the servers: A holds the journal line for line, B every training step once
server_history() { "$PY" - "$1" "$id" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"]["test-entity/djct/" + sys.argv[2]]
h = r["files"]["wandb-history.jsonl"]
with open(sys.argv[3], "w") as f:
    f.writelines(l + "\n" for l in h)
PY
}
server_history "$STATE_A" "$tmp/A.hist"; server_history "$STATE_B" "$tmp/B.hist"
ok cmp -s "$tmp/A.hist" "$jj/history.jsonl"
ok one_per_step "$tmp/B.hist" "$total"

# the key went nowhere but the Authorization header
leaks=$(grep -rl -- "$KEY" "$tmp" 2>/dev/null)
ok test -z "$leaks" || echo "    the key is in: $leaks" >&2

[ $fail -gt 0 ] && for f in "$tmp"/*.out "$tmp"/*.err; do echo "---- $f"; tail -5 "$f"; done
finish
