#!/usr/bin/env bash
# Fashion-MNIST with djct_train: convert Debian's dataset-fashion-mnist to djct HDF5 (once, cached),
# train the built-in MLP (784-256-256-10) with NP ranks, print the test accuracy per epoch from
# the run journal (val_metrics_accuracy rows of <run-dir>/wandb/<id>/history.jsonl), then predict
# the test set with djct_predict (<run-dir>/test_predictions.h5 and its .eval.json report) and
# compute the accuracy from the predictions file against the test labels.
# Usage: examples/fashion_mnist/run.sh [extra djct_train options]
# Environment: NP (ranks, 2), EPOCHS (3), RUN_DIR (runs/fashion_mnist-<time>), DATA_DIR (cached data,
#   $DJCT_CACHE/fashion_mnist), DJCT_TRAIN / DJCT_PREDICT (the binaries), MPIRUN (launcher command),
#   PYTHON (/usr/bin/python3), PREPARE_ARGS (extra prepare.py options, e.g. "--train-events 12800";
#   use a separate DATA_DIR with them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
NP=${NP:-2}
EPOCHS=${EPOCHS:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
DJCT_TRAIN=${DJCT_TRAIN:-$root/build/bin/djct_train}
DJCT_PREDICT=${DJCT_PREDICT:-$root/build/bin/djct_predict}
DATA_DIR=${DATA_DIR:-${DJCT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/djct}/fashion_mnist}
RUN_DIR=${RUN_DIR:-runs/fashion_mnist-$(date +%Y%m%d-%H%M%S)}
MPIRUN=${MPIRUN:-mpirun --bind-to none}
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

[ -x "$DJCT_TRAIN" ] || { echo "run.sh: $DJCT_TRAIN not found; run make -j2 in $root or set DJCT_TRAIN" >&2; exit 1; }
[ -x "$DJCT_PREDICT" ] || { echo "run.sh: $DJCT_PREDICT not found; run make -j2 in $root or set DJCT_PREDICT" >&2; exit 1; }

if [ ! -f "$DATA_DIR/train.h5" ] || [ ! -f "$DATA_DIR/test.h5" ]; then
  # shellcheck disable=SC2086
  "$PYTHON" "$here/prepare.py" "$DATA_DIR" ${PREPARE_ARGS:-}
fi

# shellcheck disable=SC2086
$MPIRUN -np "$NP" "$DJCT_TRAIN" --model mlp --data "$DATA_DIR/train.h5" --val-data "$DATA_DIR/test.h5" \
  --batch-events 128 --epochs "$EPOCHS" --lr 0.001 --optimizer adam \
  --run-dir "$RUN_DIR" --wandb-mode offline "$@"

"$PYTHON" - "$RUN_DIR" <<'PY'
import glob, json, sys
rows = []
for path in sorted(glob.glob(sys.argv[1] + "/wandb/*/history.jsonl")):
    with open(path) as f:
        rows += [r for r in map(json.loads, f) if "val_metrics_accuracy" in r]
if not rows:
    sys.exit(f"run.sh: no val_metrics_accuracy rows under {sys.argv[1]}/wandb (validation off, or stopped before an epoch ended?)")
for r in rows:
    print(f"epoch {int(r['val_epoch']) + 1}: test accuracy {r['val_metrics_accuracy']:.4f}  test loss {r['val_loss']:.4f}")
PY

# predict the test set with the trained model: one row per image, in test.h5's order, with the
# evaluation (mean loss, the metrics LoggingModule's accuracy over all images) in the report
# shellcheck disable=SC2086
$MPIRUN -np "$NP" "$DJCT_PREDICT" --model "$RUN_DIR/model.pt" --data "$DATA_DIR/test.h5" \
  --out "$RUN_DIR/test_predictions.h5" --batch-events 256 --with-targets --output-names logits --progress none

"$PYTHON" - "$RUN_DIR/test_predictions.h5" "$DATA_DIR/test.h5" <<'PY'
import json, sys
import h5py, numpy as np
with h5py.File(sys.argv[1]) as p, h5py.File(sys.argv[2]) as t:
    logits = p["features/000/values"][...]             # (images, 10), the model's output
    index = p["truths/002/values"][...]                # each row's image in test.h5
    labels = t["truths/000/values"][...].reshape(-1)
accuracy = float(np.mean(logits.argmax(1) == labels[index]))
report = json.load(open(sys.argv[1] + ".eval.json"))
print(f"test accuracy from the predictions file: {accuracy:.4f} ({len(index)} images; "
      f"djct_predict's report: {report['metrics']['metrics_accuracy']:.4f}, loss {report['loss']:.4f})")
PY
