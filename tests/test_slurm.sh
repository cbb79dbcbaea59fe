#!/usr/bin/env bash
# SLURM side against a real local cluster (scripts/slurm_cluster.sh: munged + slurmctld + slurmd),
# with the real djct_train (2 ranks, --threads 1, a small djct_gen data set):
#  - the GPU template (pretend GPUs, --device cpu) trains 3 epochs under mpirun and, through
#    djct_submit, under srun --mpi=pmix: exit 0, summary.json with the epochs' step count, one journal
#  - preemption under mpirun (scancel --batch: the template's trap forwards USR1) and srun (--full:
#    USR1 to the ranks directly and once more via the trap), sent once the job says it holds after
#    step 5 (DJCT_TEST_HOLD_AT_STEP: its ranks wait there until one has the signal, so it never races
#    the job's end): the trainer writes checkpoints/step-N,
#    exits 75, the job requeues itself, the requeued job prints "resumed from the checkpoint of step
#    N" and ends with exit 0, the same run id (one journal directory, one row per step) and the same
#    step count and final loss as the uninterrupted run of its launcher
#  - template plumbing with tests/fake_trainer.sh (see the comments there): array-task requeue,
#    a missing trainer, the scaling study as SLURM jobs; then `down` leaves nothing behind.
# Needs root (daemons); otherwise prints skip lines.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
TRAINER=${TRAINER:-$PWD/$BUILD/bin/djct_train}
GEN=$PWD/$BUILD/bin/djct_gen
FAKE=$PWD/tests/fake_trainer.sh   # template plumbing only, see below
S=$PWD/scripts/slurm_cluster.sh
pass=0; fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; return 1; fi; }
has() { grep -q -- "$1" "$2" || { echo "FAIL: '$1' not in $2:" >&2; sed 's/^/    /' "$2" >&2; return 1; }; }
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; }

# --- static checks: scripts parse, the three templates share one body ---------------------------
bad=$(for f in scripts/slurm_cluster.sh scripts/djct_submit scripts/slurm/*.sbatch tests/fake_trainer.sh; do
    bash -n "$f" 2>&1 || echo "$f"
done)
ok test -z "$bad" || echo "    do not parse: $bad" >&2
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
for x in "$TRAINER" "$GEN"; do
    [ -x "$x" ] || { echo "FAIL: $x not built (make)"; fail=$((fail + 1)); finish; exit; }
done

# one SLURM test at a time on this machine (ports, munged); a private root and ports, so a
# developer's own `scripts/slurm_cluster.sh up` is left alone
exec 9>/tmp/djct-slurm-test.lock
flock -w 900 9 || { echo "FAIL: another SLURM test holds /tmp/djct-slurm-test.lock"; exit 1; }
export DJCT_SLURM_ROOT=/tmp/djct-slurm-test DJCT_SLURM_PORT=16837
tmp=$(mktemp -d /tmp/djct-slurm-t.XXXXXX); chmod 755 "$tmp"
etc_before=$(ls -la /etc/slurm 2>/dev/null | md5sum)
trap '"$S" down >/dev/null 2>&1; rm -rf "$tmp"' EXIT
trap 'exit 143' TERM INT   # a runner timeout still runs the EXIT trap (down)
up=(--cpus 16 --gpus 2)   # more slots than cores: all jobs start at once
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
unset DJCT_ARGS DJCT_RUN_DIR DJCT_RUN_ID DJCT_LAUNCHER DJCT_BIN DJCT_THREADS DJCT_DEVICE WANDB_RUN_ID WANDB_MODE
export DJCT_CACHE=${DJCT_CACHE:-$tmp/cache}

# --- template plumbing with the fake trainer (no libtorch start-up, so cheap to run many of):
# an array job under mpirun, 2 ranks per task: only the signalled task restarts (requeue target
# <array job>_<task>), and every mpirun rank sees the batch step's SLURM_PROCID=0 (the fake logs
# each rank's environment; djct_train does not); a missing trainer fails at once
arr=$(FAKE_STEP_S=0.1 DJCT_LAUNCHER=mpirun DJCT_BIN=$FAKE DJCT_ARGS="--max-steps 100" \
    sbatch --parsable -t 30 -n 2 --array=0-1 -o "$tmp/arr-%a.out" "$OLDPWD/scripts/slurm/djct_cpu.sbatch")
nobin=$(DJCT_BIN=/nonexistent/djct_train sbatch --parsable -t 30 -n 1 -o "$tmp/nobin.out" \
    "$OLDPWD/scripts/slurm/djct_cpu.sbatch")

# (the real jobs below take a while to reach training; the fake is quick, signal it first)
for _ in $(seq 300); do [ -s "$tmp/runs/djct-${arr}_1/ranks/rank-1.step" ] && break; sleep 0.1; done
ok scancel --signal=USR1 --batch "${arr}_1"

# the real trainer needs libtorch (a build without it still checks the plumbing above)
real=1
if ! "$TRAINER" --version 2>/dev/null | grep -q "libtorch yes"; then
    real=0; echo "skip: the real trainer: $TRAINER was built without libtorch"
fi
if [ $real = 1 ]; then
    # --- the real trainer: 3 epochs of a small data set, 2 ranks, 1 thread each -----------------
    # (a data path both the batch node and the ranks see; an epoch = a step count set by the data)
    "$GEN" --events 800 --files 2 --seed 5 --out "$tmp/data" >/dev/null ||
        { echo "FAIL: djct_gen"; fail=$((fail + 1)); finish; exit; }
    # 3 epochs (120 steps); the preempted jobs hold after step 5 until their ranks have the signal
    # (DJCT_TEST_HOLD_AT_STEP), so the signal always lands in training: it cannot race the job's end
    targs="--data $tmp/data --classes 3 --epochs 3 --batch-elements 2000 --seed 3 --progress none"
    targs+=" --no-validate --checkpoint-every-minutes 0"
    # uninterrupted, on the GPU template as written (2 pretend GPUs, --device cpu): mpirun via sbatch,
    # srun --mpi=pmix via djct_submit (which fills in ranks, GPUs, --cpus-per-task -> --threads 1)
    # (-t 30: the templates' --signal=B:USR1@300 would fire at once with a shorter limit)
    declare -A train_job pre_job train_dir
    train_dir[mpirun]=$tmp/train-mpirun train_dir[srun]=$tmp/train-srun
    train_job[mpirun]=$(DJCT_LAUNCHER=mpirun DJCT_BIN=$TRAINER DJCT_DEVICE=cpu DJCT_THREADS=1 \
        DJCT_RUN_DIR=$tmp/train-mpirun DJCT_ARGS="$targs" sbatch --parsable -t 30 --ntasks-per-node=2 \
        --gpus-per-node=2 -o "$tmp/train-mpirun.out" "$OLDPWD/scripts/slurm/djct_1node.sbatch")
    # shellcheck disable=SC2086
    train_job[srun]=$("$S" exec "$OLDPWD/scripts/djct_submit" --gpus-per-node 2 --cpus-per-rank 1 --time 30 \
        --launcher srun --bin "$TRAINER" --run-dir "$tmp/train-srun" --run-id fixed-id \
        --sbatch-arg "--output=$tmp/train-srun.out" -- $targs)
    # preempted: the CPU template, the same training; USR1 once the job holds after step 5 (below)
    for L in mpirun srun; do
        pre_job[$L]=$(DJCT_TEST_HOLD_AT_STEP=5 DJCT_LAUNCHER=$L DJCT_BIN=$TRAINER DJCT_THREADS=1 DJCT_RUN_DIR=$tmp/pre-$L \
            DJCT_ARGS="$targs" sbatch --parsable -t 30 -n 2 -o "$tmp/pre-$L.out" \
            "$OLDPWD/scripts/slurm/djct_cpu.sbatch")
    done
    ok test -n "${train_job[srun]}"

    rows() { cat "$1"/wandb/*/history.jsonl 2>/dev/null | wc -l; }
    holding() { grep -q '^holding after step 5 until a signal arrives' "$1" 2>/dev/null; }
    # mpirun's ranks are in the batch step: only the batch shell's trap can reach them (--batch);
    # srun's ranks also get the signal directly (--full); both must end in one checkpoint. Each job
    # is signalled once it says it holds; it trains on only once its ranks have the signal.
    declare -A signalled=([mpirun]=0 [srun]=0) how=([mpirun]=--batch [srun]=--full)
    end=$(($(date +%s) + 300))
    while [ $((signalled[mpirun] + signalled[srun])) -lt 2 ] && [ "$(date +%s)" -lt "$end" ]; do
        for L in mpirun srun; do
            if [ "${signalled[$L]}" = 0 ] && holding "$tmp/pre-$L.out"; then
                ok scancel --signal=USR1 "${how[$L]}" "${pre_job[$L]}"
                signalled[$L]=1
            fi
        done
        sleep 0.1
    done
    for L in mpirun srun; do
        [ "${signalled[$L]}" = 1 ] || { echo "FAIL: pre-$L never reported holding after step 5"; fail=$((fail + 1));
                                        sed 's/^/    /' "$tmp/pre-$L.out" >&2; }
    done

    field() { sed -n "s/.*\"$2\": \"\{0,1\}\([^,\"}]*\).*/\1/p" "$1/summary.json" 2>/dev/null; }
    journal_ok() { # journal_ok RUN_DIR RUN_ID STEPS: one journal directory, one row per step 1..STEPS
        [ "$(ls "$1/wandb")" = "$2" ] &&
        [ "$(rows "$1")" = "$3" ] &&
        [ "$(grep -o '"global_step":[0-9]*' "$1/wandb/$2/history.jsonl" | sort -u | wc -l)" = "$3" ] ||
            { echo "    journal of $1: $(ls "$1/wandb" | tr '\n' ' '), $(rows "$1") rows, want $2 and $3" >&2; return 1; }
    }
    declare -A steps loss
    for L in mpirun srun; do
        d=${train_dir[$L]} j=${train_job[$L]}
        ok "$S" wait "$j" 240 2>/dev/null || tail -n 20 "$tmp/train-$L.out" >&2
        ok has "launcher $L" "$tmp/train-$L.out"
        ok has '"stop": "done"' "$d/summary.json"
        ok test "$(field "$d" ranks)" = 2
        ok test "$(field "$d" epochs_done)" = 3
        steps[$L]=$(field "$d" steps) loss[$L]=$(field "$d" final_loss)
        ok test "${steps[$L]:-0}" -ge 10
        ok test -s "$d/model.pt"
        ok test "$(scontrol -o show job "$j" | grep -oE 'Restarts=[0-9]+')" = Restarts=0
    done
    ok journal_ok "$tmp/train-mpirun" "djct-${train_job[mpirun]}" "${steps[mpirun]}"
    ok journal_ok "$tmp/train-srun" fixed-id "${steps[srun]}"   # djct_submit --run-id
    # the same data and seed: the same steps under both launchers, and the same numbers
    ok test "${steps[mpirun]}" = "${steps[srun]}"
    ok test "${loss[mpirun]}" = "${loss[srun]}"
    echo "uninterrupted: ${steps[mpirun]} steps, final loss ${loss[mpirun]} (mpirun) / ${loss[srun]} (srun)"

    for L in mpirun srun; do
        j=${pre_job[$L]} r=$tmp/pre-$L o=$tmp/pre-$L.out
        ok "$S" wait "$j" 300 2>/dev/null
        ok test "$(scontrol -o show job "$j" | grep -oE 'Restarts=[0-9]+')" = Restarts=1
        ok has 'got SIGUSR1' "$o"
        ok has 'launcher exited with 75' "$o"
        ok has "requeueing job $j" "$o"
        ok has "job $j (restart 1)" "$o"
        # the first attempt stopped at step N with a complete checkpoint; the second resumed from it
        at=$(sed -n 's/^preempted at step \([0-9]*\):.*/\1/p' "$o" | head -n 1)
        ok test -n "$at"
        ok test -e "$r/checkpoints/step-${at:-x}/DONE"
        ok has "resumed from the checkpoint of step ${at:-x}" "$o"
        ok test "$(grep -c 'resumed from the checkpoint' "$o")" = 1
        echo "$L: preempted at step $at of ${steps[$L]}, resumed, $(field "$r" steps) steps in all"
        # the end: exit 0, the same run (id, journal) and the same training as the uninterrupted run
        ok has '"stop": "done"' "$r/summary.json"
        ok test "$(field "$r" run_id)" = "djct-$j"
        ok test "$(cat "$r/slurm_run_id")" = "djct-$j"
        ok test "$(field "$r" steps)" = "${steps[$L]}"
        ok test "$(field "$r" final_loss)" = "${loss[$L]}"
        ok journal_ok "$r" "djct-$j" "${steps[$L]}"
    done
fi

for t in 0 1; do ok "$S" wait "${arr}_$t" 240 2>/dev/null; done
ok test "$(scontrol -o show job "${arr}_0" | grep -oE 'Restarts=[0-9]+')" = Restarts=0
ok test "$(scontrol -o show job "${arr}_1" | grep -oE 'Restarts=[0-9]+')" = Restarts=1
ok has "requeueing job ${arr}_1" "$tmp/arr-1.out"
ok test "$(grep -c "^start run_id=djct-${arr}_1 " "$tmp/runs/djct-${arr}_1/fake_trainer.log")" = 2
ok test "$(grep -c "^start run_id=djct-${arr}_0 " "$tmp/runs/djct-${arr}_0/fake_trainer.log")" = 1
ok has "^end run_id=djct-${arr}_1 step=100" "$tmp/runs/djct-${arr}_1/fake_trainer.log"
# mpirun leaves the batch step's SLURM_PROCID (0) on every rank; the trainer must ask MPI
ok test "$(cat "$tmp/runs/djct-${arr}_0"/ranks/rank-*.log | grep -c 'SLURM_PROCID=0')" = 2
# a missing trainer: exit 1 and a message naming it, not a requeue loop
"$S" wait "$nobin" 60 2>/dev/null; ok test $? = 1
ok has "trainer '/nonexistent/djct_train' not found" "$tmp/nobin.out"

# --- the scaling study as SLURM jobs: submission, waiting and collection are plumbing, so the fake
# (tests/test_scaling_study.sh runs the study with the real trainer, locally) -----------------------
if [ -x "$OLDPWD/scripts/scaling_study" ]; then
    ok "$S" exec env FAKE_STEP_S=0.01 DJCT_BIN="$FAKE" "$OLDPWD/scripts/scaling_study" --slurm --ranks "1 2" \
        --mode strong --steps 5 --batch-elements 2000 --out "$tmp/study" >"$tmp/study.log" 2>&1 \
        || cat "$tmp/study.log" >&2
    ok test "$(grep -c '^strong,' "$tmp/study/scaling.csv" 2>/dev/null)" = 2
fi

# --- down: no daemon of ours left, root removed, /etc/slurm untouched ---------------------------
pids=$(cat "$DJCT_SLURM_ROOT"/run/*.pid 2>/dev/null | tr -dc '0-9\n')
cd "$OLDPWD" || exit 1
ok "$S" down 2>/dev/null
gone() { case $(cat "/proc/$1/comm" 2>/dev/null) in slurmctld|slurmd|munged) return 1 ;; esac; }
left=$(for p in $pids; do gone "$p" || echo "$p"; done)
ok test -n "$pids" -a -z "$left" || echo "    daemons still running: $left (of: $pids)" >&2
ok test ! -e "$DJCT_SLURM_ROOT"
ok test "$(ls -la /etc/slurm 2>/dev/null | md5sum)" = "$etc_before"
finish
