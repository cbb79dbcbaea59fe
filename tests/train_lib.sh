# Sourced by the djct_train shell tests (tests/test_train_*.sh), after their `set -u`: the checks'
# counts and `ok`, the build and the launcher, Open MPI's permission to run as root, a scratch
# directory, the skip where torch (and h5py) are missing, and the closing line.
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
PY=/usr/bin/python3
T=$BUILD/bin/djct_train

# scratch NAME: $tmp is a new directory /tmp/NAME.XXXXXX; at exit the test's background jobs are
# killed and it is removed
scratch() {
  tmp=$(mktemp -d "/tmp/$1.XXXXXX")
  trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
}

# skip_without_torch [h5py]: without libtorch in the build or torch (and h5py) in $PY the test
# is one skip
skip_without_torch() {
  local mods=torch what="no libtorch / python3-torch"
  if [ "${1:-}" = h5py ]; then mods="torch, h5py"; what="$what / h5py"; fi
  if ! "$PY" -c "import $mods" 2>/dev/null || [ "${HAVE_TORCH:-1}" = 0 ]; then
    echo "skip: $what"; echo "0 passed, 0 failed, 1 skipped"; exit 0
  fi
}

# the last line, "N passed, N failed"; the status is the verdict
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; }
