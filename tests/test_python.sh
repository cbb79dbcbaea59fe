#!/usr/bin/env bash
# Round trip Python -> C -> Python: a model authored with python/djct and exported, trained by
# the C API (build/tests/test_model --roundtrip), reloaded by torch.jit.load with the same outputs;
# plus models the C side must refuse. Needs /usr/bin/python3 with torch (Debian python3-torch).
set -u
BUILD=${BUILD:-build}
PY=${DJCT_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
if [ "${HAVE_TORCH:-1}" = 0 ]; then echo "skip: built without libtorch"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "skip: $PY has no torch (apt-get install python3-torch)"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
P=0; F=0
tally() { # log file of a step that prints "N passed, N failed"
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then F=$((F + 1)); echo "FAIL: no summary in $1"; cat "$1"; return; fi
  P=$((P + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"))); F=$((F + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
  sed 's/^/  /' "$1"
}
export OMP_NUM_THREADS=1
echo "== author (Python)"; "$PY" "$here/python/roundtrip.py" author "$d" >"$d/a.log" 2>&1; tally "$d/a.log"
echo "== train (C)"; "$BUILD/tests/test_model" --roundtrip "$d/in.pt" "$d/out.pt" "$d/data.bin" >"$d/c.log" 2>&1; tally "$d/c.log"
lacks=$(for want in "module LoggingModule1 logging=0 loss=1/1" "module aux logging=0 loss=1/1" "module LoggingModule2 logging=0 loss=0/0" "metric LoggingModule1_loss" "metric LoggingModule2_mean_out"; do
  grep -qF "$want" "$d/c.log" || echo "'$want'"
done)
if [ -z "$lacks" ]; then P=$((P + 1)); else F=$((F + 1)); echo "FAIL: C output lacks $lacks"; fi
echo "== check (Python)"; "$PY" "$here/python/roundtrip.py" check "$d" >"$d/p.log" 2>&1; tally "$d/p.log"
echo "== refused models (C)"
"$BUILD/tests/test_model" --load-error "$d/bad_signature.pt" "forward must be forward(self, features: List[Tensor]" >"$d/e1.log" 2>&1; tally "$d/e1.log"
"$BUILD/tests/test_model" --load-error "$d/double.pt" "is Double; djct trains float32" >"$d/e2.log" 2>&1; tally "$d/e2.log"
echo "$P passed, $F failed"
[ "$F" -eq 0 ]
