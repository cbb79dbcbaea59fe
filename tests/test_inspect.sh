#!/usr/bin/env bash
# djct_inspect on djcdata's upstream test files: text and --json output, --values, error exits.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
BUILD=${BUILD:-build}
BIN=$BUILD/bin/djct_inspect
FIX=${DJCT_FIXTURES:-../shared/fixtures/djcdata-upstream}
if [ ! -f "$FIX/trainData_previous.djctd" ]; then
  echo "skip: djcdata fixtures not found at $FIX"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
SA=$FIX/simpleArray_previous.djcsa; TD=$FIX/trainData_previous.djctd
out=$("$BIN" "$SA" "$TD"); rc=$?
ok test $rc = 0
ok grep -q "format djcsa, 1 record, 3 events, 100 elements" <<<"$out"
ok grep -q "format djctd, 1 record, 3 events, 100 elements" <<<"$out"
ok grep -q "elements per event: min 20, mean 33.33, max 40" <<<"$out"
ok grep -q "\[0\] '' float32 shape \[3, -100, 40, 7, 3\] ragged" <<<"$out"
ok test "$(grep -c 'features: 1 array' <<<"$out")" = 2
# JSON: parse with python's json module (any python3 has it)
json=$("$BIN" --json --values 2 "$TD"); rc=$?
ok test $rc = 0
check=$(python3 -c '
import json,sys
d=json.loads(sys.stdin.read())
f=d["files"][0]; a=f["arrays"][0]
print(f["format"], f["records"], f["events"], f["elements"], f["elements_per_event"]["min"], f["elements_per_event"]["max"],
      a["container"], a["dtype"], a["shape"], a["ragged"], len(a["values"]))' <<<"$json" 2>&1)
ok test "$check" = "djctd 1 3 100 20 40 features float32 [3, -100, 40, 7, 3] True 2"
# the values are np_arr[0,0,0,:2]: compare with the .npy bytes when numpy is there
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  vcheck=$(/usr/bin/python3 -c '
import json,sys,numpy as np
d=json.loads(sys.stdin.read()); v=d["files"][0]["arrays"][0]["values"]
a=np.load(sys.argv[1]).reshape(-1)[:2]
print(all(np.float32(x)==y for x,y in zip(v,a)))' "$FIX/np_arr.npy" <<<"$json")
  ok test "$vcheck" = "True"
fi
# metadata-only JSON has no values
meta=$("$BIN" --json "$SA"); rc=$?
ok test $rc = 0 -a -n "$meta"
ok test "$(grep -c '"values"' <<<"$meta")" = 0
# errors and usage
"$BIN" /nonexistent/x.djctd >/dev/null 2>"$BUILD/inspect.err"; rc=$?
ok test $rc = 1
ok grep -q "djct_inspect: file '/nonexistent/x.djctd': cannot open" "$BUILD/inspect.err"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the content decides the format, not the name (as for djct_train's dataset and djct_convert)
cp "$TD" "$tmp/renamed.h5"
ok grep -q "format djctd, 1 record, 3 events" <<<"$("$BIN" "$tmp/renamed.h5" 2>&1)"
head -c 1000 "$TD" > "$tmp/trunc.djctd"
"$BIN" "$tmp/trunc.djctd" >/dev/null 2>"$tmp/err"; rc=$?
ok test $rc = 1
ok grep -q "file '$tmp/trunc.djctd': byte " "$tmp/err"
"$BIN" --bogus >/dev/null 2>&1; ok test $? = 2
ok sh -c "'$BIN' --jsn '$TD' 2>&1 >/dev/null | grep -q \"unknown option '--jsn'; did you mean '--json'\""
"$BIN" >/dev/null 2>&1; ok test $? = 2
"$BIN" --values x "$TD" >/dev/null 2>&1; ok test $? = 2
ok sh -c "'$BIN' --help | grep -q -- '--values N'"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
