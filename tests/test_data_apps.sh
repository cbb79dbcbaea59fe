#!/usr/bin/env bash
# djct_gen and djct_convert: deterministic bytes, djctd <-> h5 round trips bit-identical,
# merge + split reproducing the generated parts, --help, and one-line usage/runtime errors;
# djct_sync's command line (its uploads are tests/test_log.c's).
set -u
# each process start costs 0.5-2 s on the shared VM (apps link libtorch/CUDA): keep runs few
B=${BUILD:-build}/bin
T=$(mktemp -d /tmp/djct_test_apps.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
# expect exit code $1 and a one-line stderr containing $2 from the rest
err() { local code=$1 want=$2; shift 2; local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq $code ] && [[ $out == *"$want"* ]] && [ $(printf '%s\n' "$out" | wc -l) -eq 1 ]; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: $* -> rc $rc, '$out' (want $code, '$want')" >&2; fi; }

G="$B/djct_gen --events 200 --mean-points 20"
ok $G --files 3 --seed 5 --out "$T/a" >/dev/null
ok $G --files 3 --seed 5 --out "$T/b" >/dev/null
ok cmp -s "$T/a/part-000.djctd" "$T/b/part-000.djctd"
ok cmp -s "$T/a/part-002.djctd" "$T/b/part-002.djctd"
ok $G --files 3 --seed 5 --format h5 --out "$T/h" >/dev/null
ok $G --files 3 --seed 5 --format h5 --out "$T/h2" >/dev/null
ok cmp -s "$T/h/part-001.h5" "$T/h2/part-001.h5"

C=$B/djct_convert
# djctd -> h5 -> djctd gives the same bytes; the generated h5 holds the same values
ok $C "$T/a/part-000.djctd" "$T/x.h5"
ok $C --gzip 3 "$T/x.h5" "$T/x.djctd"
ok cmp -s "$T/a/part-000.djctd" "$T/x.djctd"
ok $C "$T/h/part-000.h5" "$T/y.djctd"
ok cmp -s "$T/a/part-000.djctd" "$T/y.djctd"
# merge three parts, split back into three: the same files
ok $C "$T/a/part-000.djctd" "$T/h/part-001.h5" "$T/a/part-002.djctd" "$T/merged.h5"
ok $C --split 3 "$T/merged.h5" "$T/s.djctd"
differ=$(for k in 000 001 002; do cmp -s "$T/a/part-$k.djctd" "$T/s-$k.djctd" || echo "$k"; done)
ok test -z "$differ" || echo "    split parts that differ from the generated ones: $differ" >&2
# h5py sees the merged file's events
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  ok /usr/bin/python3 -c "import h5py,sys; f=h5py.File('$T/merged.h5'); sys.exit(0 if len(f['features/000/row_splits'])==201 and f['truths/000/values'].dtype=='int32' else 1)"
fi

ok bash -c "$B/djct_gen --help | grep -q -- '--mean-points'"
ok bash -c "$C --help | grep -q -- '--split'"
err 2 "unknown option '--bogus'" $B/djct_gen --bogus
err 2 "--format 'csv' is not allowed; use one of djctd|h5" $B/djct_gen --format csv --out "$T/z"
err 2 "--events 0 is out of range" $B/djct_gen --events 0 --out "$T/z"
err 2 "IN... OUT: 1 given, at least 2 needed" $C "$T/x.h5"
err 2 "unknown option '--splt'; did you mean '--split'" $C --splt 3 "$T/x.h5" "$T/o.h5"
err 2 "--split 0 is out of range; allowed 1..100000" $C --split 0 "$T/x.h5" "$T/o.h5"
err 2 "--split takes one input and one output name, got 3 files" $C --split 2 "$T/x.h5" "$T/x.djctd" "$T/o.h5"
err 1 "missing.djctd" $C "$T/missing.djctd" "$T/o.h5"
err 1 "extension must be .djctd, .h5 or .hdf5" $C "$T/x.h5" "$T/o.txt"
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  /usr/bin/python3 -c "import h5py,numpy as np; f=h5py.File('$T/other.h5','w'); f.attrs['djct_format']='djct-ragged-1'; f.create_group('features/000').create_dataset('values', data=np.zeros((4,3),np.float32))"
  err 1 "feature array 0 ('') differs from the first input" $C "$T/x.h5" "$T/other.h5" "$T/o.h5"
fi
S=$B/djct_sync
ok bash -c "$S --help | grep -q -- '--retry-max SECONDS'"
err 2 "RUN_DIR...: 0 given, at least 1 needed" $S
err 2 "--timeout 0 is out of range" $S --timeout 0 "$T"
err 2 "unknown option '--entiti'; did you mean '--entity'" $S --entiti x "$T"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
