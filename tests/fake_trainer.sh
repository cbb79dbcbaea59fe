#!/usr/bin/env bash
# fake_trainer.sh - stands in for djct_train (same options, run directory, checkpoints, exit codes
# and summary.json) where only plumbing is under test: the SLURM templates' array-task requeue and
# rank environment, scripts/scaling_study's SLURM submission and arithmetic on known timings. It
# starts in milliseconds (djct_train: seconds of libtorch start-up); everything that trains uses the
# real djct_train. One process per rank, started by mpirun or srun; no MPI: ranks agree through files
# in the run directory. Timings in summary.json come from a simple model, not from measurement:
#   t_compute = batch_elements * FAKE_S_PER_ELEMENT, t_data = 0.1 t_compute + 0.5 ms,
#   t_comm = 0 for 1 rank, else 2 ms + 1 ms * log2(ranks); the steady-state figures are the same model
# Knobs (env): FAKE_STEP_S=0.02 (real sleep per step), FAKE_S_PER_ELEMENT=2e-6.
# On SIGUSR1/SIGTERM: stop at the next step boundary, write checkpoints/step-N/ (one file per rank,
# then DONE from rank 0), exit 75. --resume continues from the newest step-N/DONE.
set -u
prog=fake_trainer
run_dir="" run_id="" resume=0 max_steps="" epochs=1 batch=1000 ck_every=0
while [ $# -gt 0 ]; do
    case $1 in
        --run-dir) run_dir=$2; shift 2 ;;
        --run-id) run_id=$2; shift 2 ;;
        --resume) resume=1; shift ;;
        --max-steps) max_steps=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --batch-elements) batch=$2; shift 2 ;;
        --checkpoint-every-steps) ck_every=$2; shift 2 ;;
        --config|--data|--val-data|--model|--seed|--checkpoint-every-minutes|--wandb-mode|--threads|--device) shift 2 ;;
        --no-average) shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "$prog: unknown option '$1' (djct_train options only)" >&2; exit 2 ;;
    esac
done
# rank: what MPI's launcher says, in the order that is right under both mpirun and srun
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}
size=${OMPI_COMM_WORLD_SIZE:-${SLURM_NTASKS:-1}}
[ -n "$run_id" ] || run_id=${WANDB_RUN_ID:-fake-$(date +%Y%m%d-%H%M)}
[ -n "$run_dir" ] || run_dir=runs/$run_id
[ -n "$max_steps" ] || max_steps=$((epochs * 10))
step_s=${FAKE_STEP_S:-0.02}
ck=$run_dir/checkpoints
mkdir -p "$ck" "$run_dir/ranks"
say() { echo "$prog: rank $rank/$size: $*"; }

start=0
if [ $resume = 1 ]; then
    last=$(ls -d "$ck"/step-*/DONE 2>/dev/null | sed -E 's|.*/step-([0-9]+)/DONE|\1|' | sort -n | tail -n 1)
    [ -n "$last" ] && start=$last
fi
printf 'rank=%s size=%s run_id=%s start=%s host=%s SLURM_PROCID=%s SLURM_RESTART_COUNT=%s WANDB_MODE=%s\n' \
    "$rank" "$size" "$run_id" "$start" "$(hostname)" "${SLURM_PROCID:--}" "${SLURM_RESTART_COUNT:-0}" \
    "${WANDB_MODE:--}" >> "$run_dir/ranks/rank-$rank.log"
[ "$rank" = 0 ] && echo "start run_id=$run_id step=$start ranks=$size restart=${SLURM_RESTART_COUNT:-0}" \
    >> "$run_dir/fake_trainer.log"
say "run $run_id, steps $start..$max_steps, run dir $run_dir"

stop_file=$run_dir/.stop_at.from-$start   # one per incarnation: a stale one never stops a resumed run
got_signal=0
trap 'got_signal=1' USR1 TERM

write_checkpoint() { # write_checkpoint STEP: every rank its file, rank 0 waits for all, then DONE
    local d=$ck/step-$1 n
    mkdir -p "$d"
    echo "run_id=$run_id step=$1" > "$d/rank-$rank.state"
    [ "$rank" = 0 ] || return 0
    for _ in $(seq 600); do
        n=$(ls "$d"/rank-*.state 2>/dev/null | wc -l)
        [ "$n" -ge "$size" ] && { touch "$d/DONE"; return 0; }
        sleep 0.05
    done
    echo "$prog: rank 0: checkpoint step $1: only $n of $size ranks wrote their state in 30 s" >&2
    return 1
}

step=$start
while [ "$step" -lt "$max_steps" ]; do
    if [ $got_signal = 1 ] && [ ! -e "$stop_file" ]; then
        # the first rank to see the signal picks the stop step; the others follow the file. Written
        # aside and hard-linked (atomic, fails if present), in this shell: a subshell would not keep
        # the trap, and a second USR1 (srun + --full deliver two) would kill it mid-write.
        echo $((step + 1)) > "$stop_file.$rank"
        ln "$stop_file.$rank" "$stop_file" 2>/dev/null || true
        rm -f "$stop_file.$rank"
    fi
    s=""
    if [ -e "$stop_file" ]; then read -r s < "$stop_file" || s=""; fi
    if [[ $s =~ ^[0-9]+$ ]] && [ "$step" -ge "$s" ]; then
        write_checkpoint "$s" || exit 1
        # like the real trainer's barrier after DONE: mpirun and srun --kill-on-bad-exit kill the
        # other ranks as soon as one exits non-zero, so nobody leaves before the checkpoint is complete
        for _ in $(seq 600); do [ -e "$ck/step-$s/DONE" ] && break; sleep 0.05; done
        say "preempted: checkpoint step $s written, exit 75 (requeue me)"
        exit 75
    fi
    sleep "$step_s"
    step=$((step + 1))
    echo "$step" > "$run_dir/ranks/rank-$rank.step"
    if [ "$ck_every" -gt 0 ] && [ $((step % ck_every)) = 0 ] && [ "$step" -lt "$max_steps" ]; then
        write_checkpoint "$step" || exit 1
    fi
done

if [ "$rank" = 0 ]; then
    awk -v n="$size" -v b="$batch" -v s="$max_steps" -v pe="${FAKE_S_PER_ELEMENT:-2e-6}" 'BEGIN {
        tc = b * pe; td = 0.1 * tc + 0.0005; tm = (n > 1) ? 0.002 + 0.001 * log(n) / log(2) : 0
        t = td + tc + tm; el = n * b / t
        printf "{\"ranks\": %d, \"steps\": %d, \"events_per_s\": %.3f, \"elements_per_s\": %.3f, ", n, s, el / 10, el
        printf "\"step_time_s\": %.6f, \"t_data_s\": %.6f, \"t_compute_s\": %.6f, \"t_comm_s\": %.6f, ", t, td, tc, tm
        w = int(s / 10); if (w < 1) w = 1
        printf "\"steady_steps\": %d, \"steady_events_per_s\": %.3f, \"steady_elements_per_s\": %.3f, ", s - w, el / 10, el
        printf "\"steady_wall_per_step_s\": %.6f, ", t
        printf "\"final_loss\": %.6f, \"batch_elements\": %d, \"fake\": true}\n", 1 / (1 + 0.05 * s), b
    }' > "$run_dir/summary.json.tmp" && mv "$run_dir/summary.json.tmp" "$run_dir/summary.json"
    echo "end run_id=$run_id step=$step" >> "$run_dir/fake_trainer.log"
fi
say "finished $step steps"
exit 0
