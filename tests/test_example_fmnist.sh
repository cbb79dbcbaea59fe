#!/usr/bin/env bash
# examples/fashion_mnist smoke test: prepare.py on a subset (12800 train / 2000 test images), then
# run.sh trains the MLP one epoch with 2 ranks (50 steps of 2 x 128) and must reach test accuracy > 0.6
# (chance is 0.1; a full run reaches ~0.86); its predict step (djct_predict on 2 ranks) writes one
# row per test image, and the accuracy computed from that file must equal djct_predict's own
# event-weighted accuracy and be close to the validation pass's. Skips without Debian's
# dataset-fashion-mnist.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
src=/usr/share/datasets/fashion-mnist
PYTHON=${PYTHON:-/usr/bin/python3}
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
  echo "skip: $src absent (apt-get install dataset-fashion-mnist)"
  echo "0 passed, 0 failed"; exit 0
fi
if ! "$PYTHON" -c 'import h5py, numpy' 2>/dev/null; then
  echo "skip: $PYTHON lacks h5py/numpy (apt-get install python3-h5py)"
  echo "0 passed, 0 failed"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

out=$(DATA_DIR="$tmp/data" RUN_DIR="$tmp/run" EPOCHS=1 PREPARE_ARGS="--train-events 12800 --test-events 2000" \
      DJCT_TRAIN="$root/$BUILD/bin/djct_train" DJCT_PREDICT="$root/$BUILD/bin/djct_predict" DJCT_CACHE="$tmp/cache" \
      PYTHON="$PYTHON" MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none" \
      timeout -k 5 180 "$root/examples/fashion_mnist/run.sh" --progress none 2>&1); rc=$?
[ "$rc" -eq 0 ] && ok || bad "run.sh exited $rc"
grep -q "^train: 12800 images" <<<"$out" && ok || bad "prepare.py did not write the 12800-image subset"
"$PYTHON" -c 'import h5py,sys; f=h5py.File(sys.argv[1]); x=f["features/000/values"]; y=f["truths/000/values"];
assert x.shape==(2000,784) and x.dtype=="float32" and y.dtype=="int32" and f["features/000"].attrs["name"]=="image", (x.shape,x.dtype,y.dtype)
assert 0.0 <= x[:].min() and x[:].max() <= 1.0 and set(y[:].tolist()) == set(range(10))' "$tmp/data/test.h5" 2>&1 \
  && ok || bad "test.h5 layout (shape/dtype/name/range/labels)"
grep -q '"steps": 50,' "$tmp/run/summary.json" 2>/dev/null && ok || bad "summary.json does not say 50 steps: $(cat "$tmp/run/summary.json" 2>/dev/null)"
acc=$(sed -n 's/^epoch 1: test accuracy \([0-9.]*\).*/\1/p' <<<"$out")
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN{exit !(a > 0.6 && a <= 1.0)}'; then ok; else bad "test accuracy '${acc}' not in (0.6, 1]"; fi
pred=$(sed -n 's/^test accuracy from the predictions file: \([0-9.]*\) (\([0-9]*\) images; djct_predict.s report: \([0-9.]*\),.*/\1 \2 \3/p' <<<"$out")
read -r pacc pimages prep <<<"$pred"
[ "${pimages:-}" = 2000 ] && ok || bad "the predictions file does not hold the 2000 test images: '$pred'"
if [ -n "${prep:-}" ] && awk -v a="$pacc" -v b="$prep" -v v="${acc:-0}" 'BEGIN{d=a-b; e=a-v; exit !(d < 1e-4 && d > -1e-4 && e < 0.02 && e > -0.02)}'; then ok
else bad "accuracy from the predictions file '${pacc:-}' vs djct_predict's '${prep:-}' and validation's '${acc:-}'"; fi
[ "$fail" -gt 0 ] && { echo "---- output ----"; tail -30 <<<"$out"; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
