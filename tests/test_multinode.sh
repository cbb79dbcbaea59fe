#!/usr/bin/env bash
# Multi-node without a cluster: two emulated hosts = two network + UTS namespaces (own hostnames,
# own addresses on a veth pair). Part 1: Open MPI alone, mpirun in host 1 starts the remote orted
# through a fake rsh agent that enters host 2's namespace; 4 ranks (2 per host) run an allreduce
# probe (the veth counters must show its 1 MiB), the project's test_harness_mpi, and djct_train on a
# small data set with --check-consistency (identical parameters on every rank at the end; and the
# check fails with --no-average) over TCP. Part 2: the local SLURM cluster in netns
# mode (one slurmd per namespace) runs scripts/slurm/djct_multinode.sbatch on 2 nodes x 2 ranks with
# mpirun and with srun --mpi=pmix. Needs root and namespaces; otherwise prints skip lines. ~1-1.5 min.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
MPIPROG=$PWD/$BUILD/tests/test_harness_mpi
S=$PWD/scripts/slurm_cluster.sh
pass=0; fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; return 1; fi; }
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; }
NS1=djct-mn1 NS2=djct-mn2 NET=10.202.0 V1=djct-mnv1 V2=djct-mnv2

if [ "$(id -u)" != 0 ]; then echo "skip: not root: network namespaces need CAP_NET_ADMIN/CAP_SYS_ADMIN"; finish; exit; fi
for c in ip unshare nsenter mpirun mpicc; do
    command -v $c >/dev/null || { echo "skip: $c not installed (scripts/install-deps.sh)"; finish; exit; }
done
[ -x "$MPIPROG" ] || { echo "FAIL: $MPIPROG not built (make tests)"; fail=$((fail + 1)); finish; exit; }
exec 9>/tmp/djct-slurm-test.lock      # shared with test_slurm.sh: one such test at a time
flock -w 900 9 || { echo "FAIL: another SLURM/netns test holds /tmp/djct-slurm-test.lock"; exit 1; }

tmp=$(mktemp -d /tmp/djct-mn.XXXXXX); chmod 755 "$tmp"
cleanup() {
    DJCT_SLURM_ROOT=/tmp/djct-slurm-mn "$S" down >/dev/null 2>&1
    ip netns del $NS1 2>/dev/null; ip netns del $NS2 2>/dev/null   # the veth pair goes with them
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # a runner timeout still runs cleanup
cleanup_ns_leftovers() { ip netns del $NS1 2>/dev/null; ip netns del $NS2 2>/dev/null; true; }
cleanup_ns_leftovers
if ! err=$(ip netns add $NS1 2>&1); then
    echo "skip: network namespaces not allowed here (ip netns add: $err)"; finish; exit
fi
ip netns add $NS2
ip link add $V1 type veth peer name $V2
ip link set $V1 netns $NS1; ip link set $V2 netns $NS2
ip -n $NS1 addr add $NET.1/24 dev $V1; ip -n $NS2 addr add $NET.2/24 dev $V2
for n in 1 2; do ip -n djct-mn$n link set lo up; ip -n djct-mn$n link set djct-mnv$n up; done

# fake ssh for Open MPI: nsrsh HOST CMD... runs CMD in the namespace emulating HOST, under its name
cat > "$tmp/nsrsh" <<EOF
#!/bin/sh
host=\$1; shift
case \$host in
    $NET.1|djct-h1) ns=$NS1; hn=djct-h1 ;;
    $NET.2|djct-h2) ns=$NS2; hn=djct-h2 ;;
    *) echo "nsrsh: unknown host \$host" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" unshare --uts /bin/sh -c "hostname \$hn; \$*"
EOF
chmod 755 "$tmp/nsrsh"
printf '%s slots=2\n%s slots=2\n' $NET.1 $NET.2 > "$tmp/hosts"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
in_h1() { timeout 120 ip netns exec $NS1 unshare --uts /bin/sh -c "hostname djct-h1; $*"; }
MPI="mpirun --mca plm_rsh_agent $tmp/nsrsh --hostfile $tmp/hosts -np 4 --bind-to none \
  --mca btl self,vader,tcp --mca btl_tcp_if_include $NET.0/24 --mca oob_tcp_if_include $NET.0/24"
bytes() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3_bytes"; }

# a small MPI probe (starts in a blink, unlike libtorch-linked programs): rank, host, and a 1 MiB
# allreduce that must cross the veth
cat > "$tmp/probe.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int rank, size, len, n = 1 << 18, bad = 0; char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) x[i] = (float)(rank + 1);
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++) bad += x[i] != (float)(size * (size + 1) / 2);
    printf("PROBE rank=%d size=%d host=%s bad=%d\n", rank, size, host, bad);
    free(x); MPI_Finalize(); return bad != 0;
}
EOF
mpicc -O2 -o "$tmp/probe" "$tmp/probe.c" || { echo "FAIL: mpicc probe.c"; fail=$((fail + 1)); finish; exit; }
probe_ok() { # probe_ok OUTPUT_FILE: 4 good ranks, 2 on each emulated host
    [ "$(grep -c '^PROBE rank=[0-3] size=4 host=.* bad=0$' "$1")" = 4 ] &&
    [ "$(grep -oE 'host=[^ ]+' "$1" | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')" = "2 2 " ] \
        || { sed 's/^/    /' "$1" >&2; return 1; }
}

# --- part 1: Open MPI across the two hosts -------------------------------------------------------
tx0=$(bytes $NS1 $V1 tx); rx0=$(bytes $NS2 $V2 rx)
in_h1 "$MPI $tmp/probe" > "$tmp/probe.out" 2>&1
ok test $? = 0
ok probe_ok "$tmp/probe.out"
ok test "$(grep -c 'host=djct-h2 ' "$tmp/probe.out")" = 2
tx1=$(bytes $NS1 $V1 tx); rx1=$(bytes $NS2 $V2 rx)
echo "veth $V1: +$((tx1 - tx0)) bytes sent, $V2: +$((rx1 - rx0)) bytes received (1 MiB allreduce)"
ok test $((tx1 - tx0)) -gt 500000    # bulk data (not just the ~5 KB of launch traffic) crossed the veth
ok test $((rx1 - rx0)) -gt 500000
# the project's MPI test program, 4 ranks over both hosts
in_h1 "$MPI $MPIPROG" > "$tmp/mpi.out" 2>&1
ok test $? = 0
ok grep -q '^16 passed, 0 failed' "$tmp/mpi.out" || sed 's/^/    /' "$tmp/mpi.out" >&2

# --- real training across the two hosts: djct_train, 2 + 2 ranks over TCP -----------------------
# The data sit on a path both hosts see (a shared file system on a real cluster). --check-consistency
# hashes every rank's parameters at the end and fails naming the ranks that differ from rank 0; with
# --no-average (no gradient exchange) the replicas drift apart, so the check must then fail.
TRAINER=$PWD/$BUILD/bin/djct_train
trainer_across_hosts() {
    if [ ! -x "$TRAINER" ] || [ ! -x "$PWD/$BUILD/bin/djct_gen" ]; then
        echo "FAIL: $TRAINER or djct_gen not built (make)" >&2; fail=$((fail + 1)); return 1
    fi
    if ! "$TRAINER" --version | grep -q 'libtorch yes'; then
        echo "skip: djct_train across hosts: built without libtorch"; return 0
    fi
    export DJCT_CACHE=${DJCT_CACHE:-$tmp/cache}
    "$PWD/$BUILD/bin/djct_gen" --events 300 --files 2 --seed 5 --out "$tmp/data" >/dev/null || return 1
    local steps=6 targs="--data $tmp/data --classes 3 --batch-elements 1500 --seed 3 --threads 1 \
--wandb-mode offline --progress none --no-validate --checkpoint-every-minutes 0 --check-consistency"
    local tx0 tx1 rc np
    tx0=$(bytes $NS1 $V1 tx)
    timeout 300 ip netns exec $NS1 unshare --uts /bin/sh -c "hostname djct-h1; $MPI $TRAINER $targs \
        --max-steps $steps --run-dir $tmp/train" > "$tmp/train.out" 2>&1; rc=$?
    tx1=$(bytes $NS1 $V1 tx)
    ok test $rc = 0 || tail -n 30 "$tmp/train.out" | sed 's/^/    /' >&2
    np=$(sed -n 's/^consistency: the \([0-9]*\) parameters are identical on all 4 ranks$/\1/p' "$tmp/train.out")
    ok test -n "$np"
    ok grep -q '"ranks": 4, .*"steps": '$steps', .*"stop": "done"' "$tmp/train/summary.json"
    ok test -s "$tmp/train/model.pt"
    # every step's gradient average crossed the veth: at least one full copy of the parameters
    echo "djct_train, 4 ranks on 2 hosts: $steps steps, ${np:-?} parameters identical on every rank;" \
        "veth $V1: +$((tx1 - tx0)) bytes sent"
    ok test $((tx1 - tx0)) -gt $((steps * ${np:-1000000} * 4))
    # the check can fail: without gradient averaging the ranks on both hosts drift apart
    timeout 300 ip netns exec $NS1 unshare --uts /bin/sh -c "hostname djct-h1; $MPI $TRAINER $targs \
        --max-steps 1 --no-average --run-dir $tmp/noavg" > "$tmp/noavg.out" 2>&1; rc=$?
    ok test $rc != 0
    ok grep -q 'check-consistency: parameters differ from rank 0 on ranks 1, 2, 3' "$tmp/noavg.out" \
        || grep 'djct_train' "$tmp/noavg.out" | sed 's/^/    /' >&2
}
trainer_across_hosts

# --- part 2: SLURM, one slurmd per namespace, the multi-node template ----------------------------
ip netns del $NS1; ip netns del $NS2
export DJCT_SLURM_ROOT=/tmp/djct-slurm-mn DJCT_SLURM_PORT=16857 DJCT_SLURM_SUBNET=10.203.0
if ! "$S" up --netns --nodes 2 --cpus 2 --gpus 2 2>"$tmp/up.log"; then
    fail=$((fail + 1)); echo "FAIL: slurm_cluster.sh up --netns --nodes 2 --gpus 2" >&2; cat "$tmp/up.log" >&2; finish; exit
fi
pass=$((pass + 1))
eval "$("$S" env)"
sbatch() { "$S" exec sbatch "$@"; }
cd "$tmp" || exit 1
unset DJCT_ARGS DJCT_RUN_DIR DJCT_RUN_ID DJCT_BIN DJCT_LAUNCHER
for L in mpirun srun; do
    # the GPU template as written, on 2 nodes x 2 pretend GPUs (slurm_cluster.sh --gpus)
    j=$(DJCT_LAUNCHER=$L DJCT_BIN=$tmp/probe sbatch --parsable -t 30 --ntasks-per-node=2 --gpus-per-node=2 \
        -o "$tmp/slurm-$L.out" "$OLDPWD/scripts/slurm/djct_multinode.sbatch")
    ok "$S" wait "$j" 180 2>/dev/null
    ok probe_ok "$tmp/slurm-$L.out"
    ok test "$(grep -c 'host=djct-n2 ' "$tmp/slurm-$L.out")" = 2
    ok grep -q "on 2 node(s) \[djct-n\[1-2\]\], 4 ranks, launcher $L" "$tmp/slurm-$L.out"
done
cd "$OLDPWD" || exit 1
ok "$S" down 2>/dev/null
ok test -z "$(ip netns list | grep -E '^djct-(n[0-9]|mn)')"
ok test "$(grep -c 'djct slurm_cluster.sh netns node' /etc/hosts)" = 0
finish
