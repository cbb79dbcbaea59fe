#!/usr/bin/env bash
# HDF5 as users write it, end to end: a file written by h5py with its defaults (float64 hits,
# int64 counts and labels, float64 energies) in a layout of its own, plus a mapping file, is
# shown by djct_inspect (what the map resolves to, the dtypes converted at read), trains a few
# steps with djct_train on 2 ranks (--h5-map, and the map found beside the file), is predicted
# by djct_predict, and converts to .djctd with the values numpy's astype gives; a map naming a
# dataset the file lacks, and a label beyond int32, fail with one line naming dataset and file.
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
BUILD=${BUILD:-build}
B=$BUILD/bin
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
if ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "skip: $PY lacks h5py or numpy (apt-get install python3-h5py)"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
T=$(mktemp -d /tmp/djct_test_h5_map.XXXXXX); trap 'rm -rf "$T"' EXIT

"$PY" - "$T" <<'EOF'
import sys, h5py, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
n = rng.integers(1, 12, size=300)                  # int64: numpy's default
hits = rng.normal(size=(n.sum(), 4))               # float64
label = rng.integers(0, 3, size=300)               # int64
energy = rng.normal(size=300) * 10                 # float64
with h5py.File(d + "/showers.h5", "w") as f:
    g = f.create_group("events")
    g["hits"], g["n_hits"], g["label"], g["energy"] = hits, n, label, energy
np.concatenate([hits.astype(np.float32).ravel().view(np.uint32), label.astype(np.int32).view(np.uint32),
                energy.astype(np.float32).view(np.uint32)]).tofile(d + "/expected.bin")
EOF
ok test -f "$T/showers.h5"
cat >"$T/showers.ini" <<'EOF'
# which datasets of showers.h5 djct reads
[feature hits]
values = /events/hits
counts = /events/n_hits
feature_names = x, y, z, energy

[truth label]
values = /events/label

[truth energy]
values = /events/energy
EOF

# djct_inspect: the mapping, the datasets and the conversions
out=$("$B/djct_inspect" --h5-map "$T/showers.ini" "$T/showers.h5"); rc=$?
ok test $rc = 0
ok grep -q "  mapping: $T/showers.ini" <<<"$out"
ok grep -q "\[0\] 'hits' float32 shape \[300, -[0-9]*, 4\] ragged features: x y z energy" <<<"$out"
ok grep -q "        values: /events/hits, float64 in the file, read as float32 (rounded to nearest" <<<"$out"
ok grep -q "        row splits: made from the counts in /events/n_hits" <<<"$out"
ok grep -q "        values: /events/label, int64 in the file, read as int32 (a value outside int32 is an error)" <<<"$out"
# without the map: the file is not in djct's layout, and the message says what to do
out=$("$B/djct_inspect" "$T/showers.h5" 2>&1); rc=$?
ok test $rc = 1
ok grep -q "or name its datasets in a mapping file, docs/data.md" <<<"$out"

# djct_convert: the values numpy's astype gives, bit for bit
ok "$B/djct_convert" --h5-map "$T/showers.ini" "$T/showers.h5" "$T/showers.djctd"
"$B/djct_inspect" --json --values 1000000 "$T/showers.djctd" >"$T/conv.json"
ok "$PY" - "$T" <<'EOF'
import sys, json, numpy as np
d = sys.argv[1]
a = json.load(open(d + "/conv.json"))["files"][0]["arrays"]
want = np.fromfile(d + "/expected.bin", dtype=np.uint32)
nh = len(a[0]["values"])
got = np.concatenate([np.array(a[0]["values"], np.float32).view(np.uint32),
                      np.array(a[1]["values"], np.int32).view(np.uint32),
                      np.array(a[2]["values"], np.float32).view(np.uint32)])
sys.exit(0 if len(got) == len(want) and (got == want).all() else 1)
EOF

# djct_train on 2 ranks: with --h5-map, then with the map beside the file
if [ "${HAVE_TORCH:-1}" = 0 ]; then
  echo "skip: built without libtorch (djct_train, djct_predict)"
else
  common=(--classes 3 --epochs 1 --max-steps 3 --batch-elements 300 --threads 1 --wandb-mode disabled --progress none)
  $MPIRUN -np 2 "$B/djct_train" --data "$T/showers.h5" --h5-map "$T/showers.ini" "${common[@]}" \
    --run-dir "$T/run" >"$T/train.out" 2>&1
  ok test $? = 0
  ok grep -q "data: $T/showers.h5 (1 files, 300 events, .*HDF5 datasets as mapped by $T/showers.ini" "$T/train.out"
  ok grep -Eq "^done: 3 steps .*final loss [0-9]" "$T/train.out"
  cp "$T/showers.ini" "$T/showers.h5.djct.ini"
  $MPIRUN -np 2 "$B/djct_train" --data "$T/showers.h5" "${common[@]}" --run-dir "$T/run2" >"$T/train2.out" 2>&1
  ok test $? = 0
  ok grep -Eq "^done: 3 steps" "$T/train2.out"
  rm "$T/showers.h5.djct.ini"
  # djct_predict over the same mapped file: one row per input event
  $MPIRUN -np 2 "$B/djct_predict" --model "$T/run/model.pt" --data "$T/showers.h5" --h5-map "$T/showers.ini" \
    --out "$T/preds.h5" --threads 1 --progress none >"$T/pred.out" 2>&1
  ok test $? = 0
  ok grep -q "format h5, 1 record, 300 events" <<<"$("$B/djct_inspect" "$T/preds.h5")"
  # a map naming a dataset the file lacks: one line naming dataset, map and file, exit 1
  sed 's|/events/label|/events/labels|' "$T/showers.ini" >"$T/typo.ini"
  $MPIRUN -np 2 "$B/djct_train" --data "$T/showers.h5" --h5-map "$T/typo.ini" "${common[@]}" \
    --run-dir "$T/run3" >"$T/typo.out" 2>&1
  ok test $? = 1
  ok grep -q "djct_train: rank 0: --data '$T/showers.h5': '$T/showers.h5': /events/labels (\[truth label\] in map '$T/typo.ini'): no such dataset; fix the map's 'values' line or the file" "$T/typo.out"
fi

# the mapping file of docs/data.md, on a file with its datasets: what djct_inspect prints there
sed -n '/^```ini$/,/^```$/p' docs/data.md | sed '1d;$d' >"$T/doc.ini"
"$PY" - "$T" <<'EOF'
import sys, h5py, numpy as np
rng = np.random.default_rng(11)
n = rng.integers(1, 12, size=300)
with h5py.File(sys.argv[1] + "/doc.h5", "w") as f:
    g = f.create_group("events")
    g["hits"], g["n_hits"] = rng.normal(size=(n.sum(), 4)), n
    g["calo"] = rng.integers(0, 256, size=(300, 32, 32)).astype(np.uint8)
    g["label"], g["energy"], g["weight"] = rng.integers(0, 3, size=300), rng.normal(size=300), np.ones(300)
EOF
out=$("$B/djct_inspect" --h5-map "$T/doc.ini" "$T/doc.h5"); rc=$?
ok test $rc = 0
ok grep -q "\[0\] 'hits' float32 shape \[300, -[0-9]*, 4\] ragged features: x y z energy" <<<"$out"
ok grep -q "\[1\] 'image' float32 shape \[300, 32, 32\]" <<<"$out"
ok grep -q "values: /events/calo, uint8 in the file, read as float32 (exact)" <<<"$out"
ok grep -q "weights: 1 array" <<<"$out"

# a label beyond int32: djct_convert names the dataset, its row and event, exit 1
"$PY" -c "
import h5py, numpy as np
with h5py.File('$T/big.h5', 'w') as f:
    f['x'] = np.zeros((5, 2)); f['y'] = np.array([0, 1, 2**40, 3, 4])"
printf '[feature x]\nvalues = /x\n[truth y]\nvalues = /y\n' >"$T/big.ini"
err=$("$B/djct_convert" --h5-map "$T/big.ini" "$T/big.h5" "$T/big.djctd" 2>&1 >/dev/null); rc=$?
ok test $rc = 1
ok test "$err" = "djct_convert: '$T/big.h5': /y ([truth y] in map '$T/big.ini'): row 2 (event 2): value 1099511627776 is outside int32; djct reads int64 as int32: bring the values into int32's range, or store them as float32"
ok test ! -e "$T/big.djctd"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
