#!/usr/bin/env bash
# SLURM side against a real local cluster (scripts/slurm_cluster.sh: munged + slurmctld + slurmd):
# the templates run a real MPI program with 2 ranks under mpirun and srun --mpi=pmix; a job running
# the (fake) trainer gets USR1, writes a checkpoint, requeues itself, resumes under the same run id
# and finishes with exit 0; djct_submit and the scaling study submit real jobs; `down` leaves
# nothing behind. Needs root (daemons); otherwise prints skip lines. About 1-2 minutes.
# LEAD: when djct_train lands, set TRAINER=$BUILD/bin/djct_train below. The job-level checks (exit
# codes, Restarts=, the template's output, checkpoints/step-N/DONE, summary.json) stay; the ones
# reading fake_trainer.log / ranks/rank-N.log are fake-only: switch them to the trainer's journal
# (run id, resume step) and give it data options through DJCT_ARGS.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
TRAINER=${TRAINER:-$PWD/tests/fake_trainer.sh}
MPIPROG=$PWD/$BUILD/tests/test_harness_mpi
S=$PWD/scripts/slurm_cluster.sh
pass=0; fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; return 1; fi; }
has() { grep -q -- "$1" "$2" || { echo "FAIL: '$1' not in $2:" >&2; sed 's/^/    /' "$2" >&2; return 1; }; }
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; }

# --- static checks: scripts parse, the three templates share one body ---------------------------
for f in scripts/slurm_cluster.sh scripts/djct_submit scripts/slurm/*.sbatch tests/fake_trainer.sh; do
    ok bash -n "$f"
done
body() { sed -n '/^# ---- body:/,$p' "$1"; }
ok test -n "$(body scripts/slurm/djct_1node.sbatch)"
for f in scripts/slurm/djct_multinode.sbatch scripts/slurm/djct_cpu.sbatch; do
    ok cmp -s <(body scripts/slurm/djct_1node.sbatch) <(body "$f")
done
ok test "$(scripts/djct_submit --nodes 2 --gpus-per-node 4 --dry-run -- --epochs 2 | grep -c 'djct_multinode.sbatch')" = 1

if [ "$(id -u)" != 0 ]; then echo "skip: not root: the local SLURM cluster needs root"; finish; exit; fi
for c in munged slurmctld slurmd sbatch mpirun; do
    command -v $c >/dev/null || { echo "skip: $c not installed (scripts/install-deps.sh)"; finish; exit; }
done
[ -x "$MPIPROG" ] || { echo "FAIL: $MPIPROG not built (make tests)"; fail=$((fail + 1)); finish; exit; }

# one SLURM test at a time on this machine (ports, munged); a private root and ports, so a
# developer's own `scripts/slurm_cluster.sh up` is left alone
exec 9>/tmp/djct-slurm-test.lock
flock -w 900 9 || { echo "FAIL: another SLURM test holds /tmp/djct-slurm-test.lock"; exit 1; }
export DJCT_SLURM_ROOT=/tmp/djct-slurm-test DJCT_SLURM_PORT=16837
tmp=$(mktemp -d /tmp/djct-slurm-t.XXXXXX); chmod 755 "$tmp"
etc_before=$(ls -la /etc/slurm 2>/dev/null | md5sum)
trap '"$S" down >/dev/null 2>&1; rm -rf "$tmp"' EXIT
trap 'exit 143' TERM INT   # a runner timeout still runs the EXIT trap (down)
up=(--cpus 8 --gpus 2)
"$S" up "${up[@]}" 2>"$tmp/up.log"; rc=$?
if [ $rc != 0 ] && grep -q 'cannot create network namespace' "$tmp/up.log"; then
    # no netns rights: daemons on the host network (they bind 0.0.0.0 on ports 16837-16838)
    echo "skip: isolated cluster: network namespaces not allowed; running on the host network"
    up+=(--host-network); "$S" up "${up[@]}" 2>"$tmp/up.log"; rc=$?
fi
ok test $rc = 0 || { cat "$tmp/up.log"; finish; exit; }
eval "$("$S" env)"
# the daemons sit in a private network namespace: clients go through `slurm_cluster.sh exec`
sbatch() { "$S" exec sbatch "$@"; }
scontrol() { "$S" exec scontrol "$@"; }
scancel() { "$S" exec scancel "$@"; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # jobs run as root here
ok "$S" up "${up[@]}" 2>/dev/null                                   # idempotent
ok "$S" status >/dev/null
ok test "$(scontrol show config | grep -c "$DJCT_SLURM_ROOT/etc/slurm.conf")" -ge 1
cd "$tmp" || exit 1
unset DJCT_ARGS DJCT_RUN_DIR DJCT_RUN_ID DJCT_LAUNCHER DJCT_BIN WANDB_RUN_ID

# --- preemption: fake trainer, USR1 to the batch shell (mpirun) or to everything (srun) ----------
declare -A pre_job
for L in mpirun srun; do
    pre_job[$L]=$(FAKE_STEP_S=0.05 DJCT_LAUNCHER=$L DJCT_BIN=$TRAINER DJCT_RUN_DIR=$tmp/run-$L \
        DJCT_ARGS="--max-steps 200 --batch-elements 500" sbatch --parsable -t 30 -n 2 \
        -o "$tmp/pre-$L.out" "$OLDPWD/scripts/slurm/djct_cpu.sbatch")
done
# an array job: only the signalled task may restart (requeue target <array job>_<task>)
arr=$(FAKE_STEP_S=0.05 DJCT_LAUNCHER=srun DJCT_BIN=$TRAINER DJCT_ARGS="--max-steps 100" \
    sbatch --parsable -t 30 -n 1 --array=0-1 -o "$tmp/arr-%a.out" "$OLDPWD/scripts/slurm/djct_cpu.sbatch")
for L in mpirun srun; do
    for _ in $(seq 300); do [ -s "$tmp/run-$L/ranks/rank-1.step" ] && break; sleep 0.1; done
    ok test -s "$tmp/run-$L/ranks/rank-1.step"
done
# mpirun's ranks are in the batch step: only the batch shell's trap can reach them (--batch);
# srun's ranks also get the signal directly (--full); both must end in one checkpoint
ok scancel --signal=USR1 --batch "${pre_job[mpirun]}"
ok scancel --signal=USR1 --full "${pre_job[srun]}"
for _ in $(seq 300); do [ -s "$tmp/runs/djct-${arr}_1/ranks/rank-0.step" ] && break; sleep 0.1; done
ok scancel --signal=USR1 --batch "${arr}_1"
# --- the GPU template with 2 ranks, a real MPI program, both launchers ---------------------------
# (-t 30: the templates' --signal=B:USR1@300 would fire at once with a shorter limit)
declare -A mpi_job
for L in mpirun srun; do
    mpi_job[$L]=$(DJCT_LAUNCHER=$L DJCT_BIN=$MPIPROG sbatch --parsable -t 30 --ntasks-per-node=2 \
        --gpus-per-node=2 -o "$tmp/mpi-$L.out" "$OLDPWD/scripts/slurm/djct_1node.sbatch")
done
nobin=$(DJCT_BIN=/nonexistent/djct_train sbatch --parsable -t 30 -n 1 -o "$tmp/nobin.out" \
    "$OLDPWD/scripts/slurm/djct_cpu.sbatch")
for L in mpirun srun; do
    ok "$S" wait "${mpi_job[$L]}" 180 2>/dev/null
    ok has "launcher $L" "$tmp/mpi-$L.out"
    ok has '^8 passed, 0 failed' "$tmp/mpi-$L.out"
done
for L in mpirun srun; do
    j=${pre_job[$L]} r=$tmp/run-$L
    ok "$S" wait "$j" 240 2>/dev/null
    ok test "$(scontrol -o show job "$j" | grep -oE 'Restarts=[0-9]+')" = Restarts=1
    ok has 'got SIGUSR1' "$tmp/pre-$L.out"
    ok has "requeueing job $j" "$tmp/pre-$L.out"
    ok has "job $j (restart 1)" "$tmp/pre-$L.out"
    ck=$(ls -d "$r"/checkpoints/step-*/DONE 2>/dev/null | head -n 1)
    ok test -n "$ck"
    ok test "$(ls "$(dirname "${ck:-/nonexistent}")"/rank-*.state 2>/dev/null | wc -l)" = 2
    # two starts, the same run id, the second from the checkpoint's step; then the end
    ok test "$(grep -c '^start run_id=djct-'"$j"' ' "$r/fake_trainer.log")" = 2
    step=$(basename "$(dirname "${ck:-x/step-x/DONE}")"); step=${step#step-}
    ok test "$(sed -n 2p "$r/fake_trainer.log")" = "start run_id=djct-$j step=$step ranks=2 restart=1"
    ok has "^end run_id=djct-$j step=200" "$r/fake_trainer.log"
    ok test "$(cat "$r/slurm_run_id")" = "djct-$j"
    ok has '"ranks": 2' "$r/summary.json"
    ok has 'WANDB_MODE=offline' "$r/ranks/rank-1.log"
done
for t in 0 1; do ok "$S" wait "${arr}_$t" 240 2>/dev/null; done
ok test "$(scontrol -o show job "${arr}_0" | grep -oE 'Restarts=[0-9]+')" = Restarts=0
ok test "$(scontrol -o show job "${arr}_1" | grep -oE 'Restarts=[0-9]+')" = Restarts=1
ok has "requeueing job ${arr}_1" "$tmp/arr-1.out"
ok test "$(grep -c "^start run_id=djct-${arr}_1 " "$tmp/runs/djct-${arr}_1/fake_trainer.log")" = 2
ok test "$(grep -c "^start run_id=djct-${arr}_0 " "$tmp/runs/djct-${arr}_0/fake_trainer.log")" = 1
# a missing trainer: exit 1 and a message naming it, not a requeue loop
"$S" wait "$nobin" 60 2>/dev/null; ok test $? = 1
ok has "trainer '/nonexistent/djct_train' not found" "$tmp/nobin.out"
# mpirun leaves the batch step's SLURM_PROCID (0) on every rank; the trainer must ask MPI
ok test "$(grep -c 'SLURM_PROCID=0' "$tmp"/run-mpirun/ranks/rank-*.log | awk -F: '{s+=$2} END {print s}')" -ge 2

# --- djct_submit fills in ranks and passes trainer options --------------------------------------
j=$("$S" exec "$OLDPWD/scripts/djct_submit" --cpu --ranks-per-node 2 --time 30 --launcher srun \
    --bin "$TRAINER" --run-dir "$tmp/run-submit" --run-id fixed-id --sbatch-arg "--output=$tmp/submit.out" \
    -- --max-steps 5 --batch-elements 100)
ok test -n "$j"
ok "$S" wait "$j" 120 2>/dev/null
ok has 'start run_id=fixed-id step=0 ranks=2' "$tmp/run-submit/fake_trainer.log"
ok has '"steps": 5' "$tmp/run-submit/summary.json"

# --- the scaling study as SLURM jobs -------------------------------------------------------------
if [ -x "$OLDPWD/scripts/scaling_study" ]; then
    ok "$S" exec env FAKE_STEP_S=0.01 DJCT_BIN="$TRAINER" "$OLDPWD/scripts/scaling_study" --slurm --ranks "1 2" \
        --mode strong --steps 5 --batch-elements 2000 --out "$tmp/study" >"$tmp/study.log" 2>&1 \
        || cat "$tmp/study.log" >&2
    ok test "$(grep -c '^strong,' "$tmp/study/scaling.csv" 2>/dev/null)" = 2
fi

# --- down: no daemon of ours left, root removed, /etc/slurm untouched ---------------------------
pids=$(cat "$DJCT_SLURM_ROOT"/run/*.pid 2>/dev/null | tr -dc '0-9\n')
cd "$OLDPWD" || exit 1
ok "$S" down 2>/dev/null
gone() { case $(cat "/proc/$1/comm" 2>/dev/null) in slurmctld|slurmd|munged) return 1 ;; esac; }
for p in $pids; do ok gone "$p"; done
ok test ! -e "$DJCT_SLURM_ROOT"
ok test "$(ls -la /etc/slurm 2>/dev/null | md5sum)" = "$etc_before"
finish
