#!/usr/bin/env bash
# djct_train's run journal and its upload, with 2 real ranks and tests/wandb_server.py on 127.0.0.1:
#  - an online run against a dead server: exit 0, the end says what was not uploaded and the exact
#    djct_sync command, summary.json records it; that command then uploads everything
# The API key appears in no file and no output.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
PY=/usr/bin/python3
KEY=djcttestkey0123456789abcdefghijklmnopqrstuv   # a fake key, never a real one
tmp=$(mktemp -d /tmp/djct_train_journal.XXXXXX)
trap 'for p in "$tmp"/*.pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done; rm -rf "$tmp"' EXIT
if ! "$PY" -c 'import torch' 2>/dev/null || [ "${HAVE_TORCH:-1}" = 0 ]; then
  echo "skip: no libtorch / python3-torch"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
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

# the key went nowhere but the Authorization header
leaks=$(grep -rl -- "$KEY" "$tmp" 2>/dev/null)
ok test -z "$leaks" || echo "    the key is in: $leaks" >&2

[ $fail -gt 0 ] && for f in "$tmp"/*.out "$tmp"/*.err; do echo "---- $f"; tail -5 "$f"; done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
