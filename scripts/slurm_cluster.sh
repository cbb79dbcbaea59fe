#!/usr/bin/env bash
# slurm_cluster.sh - djct's throwaway local SLURM cluster for tests: munged + slurmctld + slurmd(s).
# Everything lives under $DJCT_SLURM_ROOT (default /tmp/djct-slurm), including slurm.conf: the
# daemons get `-f`, clients get SLURM_CONF, so /etc/slurm is never read or written. Only pids read
# from our own pid files (and checked against /proc/PID/comm) are ever signalled.
#
# Usage (as root):
#   slurm_cluster.sh up [--nodes N] [--netns] [--cpus C] [--gpus G]   start (idempotent: already up in the
#                                       same mode -> exit 0); prints nothing on stdout
#   slurm_cluster.sh exec CMD...       run a client command (sbatch, squeue, ...) against the cluster
#   slurm_cluster.sh shell             an interactive shell that can reach the cluster
#   slurm_cluster.sh env               print `export SLURM_CONF=...` (eval it in the caller)
#   slurm_cluster.sh status            daemons, sinfo, squeue; exit 1 when not up
#   slurm_cluster.sh wait JOBID [TIMEOUT_S]   poll every 0.2 s; exit with the job's exit code
#   slurm_cluster.sh selftest          srun, sbatch + mpirun, sbatch + srun --mpi=pmix, scancel --signal
#   slurm_cluster.sh down              cancel jobs, stop what `up` started, remove namespaces and root
# Isolation (default): the daemons live in a private network namespace (djct-sc<PORT>) with only
# loopback, so nothing listens on the host's interfaces; clients reach them through `exec`/`shell`
# (nsenter --net; jobs run inside already). --host-network: daemons in the host's namespace instead
# (they bind 0.0.0.0:PORT, PORT+1..; SLURM has no bind-address option) for hosts without netns rights.
# Modes: default one node named $(hostname -s) on 127.0.0.1; --nodes N: N slurmd (djct-n1..N) on
# 127.0.0.1 with one hostname; --netns --nodes N: each slurmd in its own network + UTS namespace
# (hostname djct-nX, address $SUBNET.X on bridge djct-br0 inside the private namespace; controller
# at $SUBNET.254), so ranks on different "nodes" talk real TCP. --gpus G: G pretend GPUs per node
# (gres; no CUDA_VISIBLE_DEVICES). `up` records the mode; later commands read it.
# Knobs (environment): DJCT_SLURM_ROOT=/tmp/djct-slurm  DJCT_SLURM_PORT=16817 (slurmctld; slurmd
#   use PORT+1..)  DJCT_SLURM_SUBNET=10.201.0  DJCT_SLURM_TIMEOUT=60 (s until nodes IDLE)
#   DJCT_SLURM_KEEP=0 (1: `down` keeps the logs in ROOT)
# Facts and pitfalls: docs/hpc.md ("The local SLURM cluster") and ../shared/docs/slurm_local.md.
set -euo pipefail

ROOT=${DJCT_SLURM_ROOT:-/tmp/djct-slurm}
PORT=${DJCT_SLURM_PORT:-16817}
SUBNET=${DJCT_SLURM_SUBNET:-10.201.0}
TIMEOUT=${DJCT_SLURM_TIMEOUT:-60}
KEEP=${DJCT_SLURM_KEEP:-0}
CONF=$ROOT/etc/slurm.conf
STATE=$ROOT/cluster.env          # the mode `up` used: NODES NETNS CPUS PORT SUBNET
OWNER_MARK=$ROOT/.djct-slurm     # ROOT is ours (rm -rf only such a directory)
HOSTS_TAG="# djct slurm_cluster.sh netns node"
BRIDGE=djct-br0
SELF=$(readlink -f "$0")
export SLURM_CONF=$CONF

log() { echo "slurm_cluster: $*" >&2; }
die() { echo "slurm_cluster: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100)); }

NODES=1 NETNS=0 CPUS=4 GPUS=0 ISOLATE=0
CTLNS=djct-sc$PORT
load_state() { # the mode of the running cluster, if any
    [ -r "$STATE" ] || return 1
    # shellcheck disable=SC1090
    . "$STATE"
}

# run a command where the cluster's network is (the private namespace, or here)
inns() { if [ "$ISOLATE" = 1 ]; then nsenter --net="/run/netns/$CTLNS" "$@"; else "$@"; fi; }
client() { local c=$1; shift; if [ "$ISOLATE" = 1 ]; then inns "$c" "$@"; else command "$c" "$@"; fi; }
scontrol() { client scontrol "$@"; }
squeue() { client squeue "$@"; }
scancel() { client scancel "$@"; }
sinfo() { client sinfo "$@"; }
sbatch() { client sbatch "$@"; }
srun() { client srun "$@"; }

node_names() {
    if [ "$NETNS" = 1 ] || [ "$NODES" -gt 1 ]; then seq -f 'djct-n%g' 1 "$NODES"
    else hostname -s; fi
}

# pid from a pid file, only if alive and running the expected program (pid files outlive daemons)
pid_of() { # pid_of FILE COMM
    local pid
    [ -r "$1" ] || return 1
    pid=$(tr -dc '0-9' < "$1")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    echo "$pid"
}

# SIGTERM, wait up to 15 s, then SIGKILL; args are "PID NAME"
stop_pids() {
    local it i alive
    for it in "$@"; do kill -TERM "${it%% *}" 2>/dev/null || true; done
    for i in $(seq 150); do
        alive=0
        for it in "$@"; do kill -0 "${it%% *}" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    for it in "$@"; do
        if kill -0 "${it%% *}" 2>/dev/null; then
            log "${it#* } (pid ${it%% *}) ignored SIGTERM for 15 s: SIGKILL"
            kill -KILL "${it%% *}" 2>/dev/null || true
        fi
    done
}

# slurmstepd daemons of OUR cluster: they keep our slurmd log open
our_stepds() {
    local p fd
    for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
        for fd in "/proc/$p/fd/"*; do
            if [[ $(readlink "$fd" 2>/dev/null) == "$ROOT/"* ]]; then echo "$p"; break; fi
        done
    done
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
ctl_alive() { pid_of "$ROOT/run/slurmctld.pid" slurmctld >/dev/null; }

write_conf() { # write_conf SLURM_USER
    local h ctl mem i node
    h=$(hostname -s)
    ctl=127.0.0.1; [ "$NETNS" = 1 ] && ctl=$SUBNET.254
    local gres=""
    if [ "$GPUS" -gt 0 ]; then
        # pretend GPUs: device files are empty regular files, so SLURM's gres/gpu plugin hands out
        # indices and sets CUDA_VISIBLE_DEVICES per job/step exactly as on a GPU node
        gres=" Gres=gpu:$GPUS"
        mkdir -p "$ROOT/dev"
        for i in $(seq 0 $((GPUS - 1))); do : > "$ROOT/dev/gpu$i"; done
        echo "# written by djct scripts/slurm_cluster.sh" > "$ROOT/etc/gres.conf"
        echo "Name=gpu File=$ROOT/dev/gpu[0-$((GPUS - 1))]" >> "$ROOT/etc/gres.conf"
    fi
    mem=$(awk -v n="$NODES" '/^MemTotal:/ { m = int($2 / 1024 * 0.8 / n); print (m < 256 ? 256 : m) }' /proc/meminfo)
    cat > "$CONF" <<EOF
# written by djct scripts/slurm_cluster.sh; removed by its \`down\`
ClusterName=djctlocal
SlurmctldHost=${h}(${ctl})
SlurmctldPort=${PORT}
SlurmUser=$1
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again only cred_expire s later (default 120 s): keep tests fast
AuthInfo=cred_expire=5
StateSaveLocation=${ROOT}/state
SlurmdSpoolDir=${ROOT}/spool/%n
SlurmctldPidFile=${ROOT}/run/slurmctld.pid
SlurmdPidFile=${ROOT}/run/slurmd-%n.pid
SlurmctldLogFile=${ROOT}/log/slurmctld.log
SlurmdLogFile=${ROOT}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# per-node TmpFS: the PMIx plugin makes spmix_appdir_* there; shared, steps across slurmds collide
TmpFS=${ROOT}/tmp/%n
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# look at pending jobs every second (default 30 s): requeued jobs restart promptly
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Debian's Open MPI has PMIx but no PMI2: srun --mpi=pmi2/none fails in MPI_Init
MpiDefault=pmix
# advertise more CPUs than cores; reject impossible jobs at submit instead of pending forever
SlurmdParameters=config_overrides
EnforcePartLimits=ALL
ReturnToService=2
JobRequeue=1
MailProg=/bin/true
GresTypes=gpu
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
EOF
    {
        if [ "$NETNS" = 1 ]; then
            echo "SlurmdPort=$((PORT + 1))"
            i=0
            for node in $(node_names); do
                i=$((i + 1))
                echo "NodeName=$node NodeHostname=$node NodeAddr=$SUBNET.$i CPUs=$CPUS RealMemory=$mem$gres State=UNKNOWN"
            done
        elif [ "$NODES" -gt 1 ]; then
            echo "TaskProlog=$ROOT/etc/taskprolog.sh"
            i=0
            for node in $(node_names); do
                i=$((i + 1))
                echo "NodeName=$node NodeHostname=$h NodeAddr=127.0.0.1 Port=$((PORT + i)) CPUs=$CPUS RealMemory=$mem$gres State=UNKNOWN"
            done
        else
            echo "SlurmdPort=$((PORT + 1))"
            echo "NodeName=$h NodeHostname=$h NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem$gres State=UNKNOWN"
        fi
        echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
    } >> "$CONF"
    # slurmd 22.05 always loads a cgroup plugin; IgnoreSystemd matters on cgroup-v2 hosts without systemd
    printf '# written by djct scripts/slurm_cluster.sh\nCgroupPlugin=autodetect\nIgnoreSystemd=yes\n' \
        > "$ROOT/etc/cgroup.conf"
    if [ "$NETNS" != 1 ] && [ "$NODES" -gt 1 ]; then
        # same hostname on every node -> Open MPI's vader /dev/shm segment names collide (SIGSEGV);
        # a per-node backing directory, for job steps only (mpirun forwards the batch step's env)
        cat > "$ROOT/etc/taskprolog.sh" <<EOF
#!/bin/sh
[ -n "\$SLURM_STEP_ID" ] || exit 0
echo "export OMPI_MCA_btl_vader_backing_directory=$ROOT/tmp/\$SLURMD_NODENAME"
EOF
        chmod 755 "$ROOT/etc/taskprolog.sh"
    fi
}

net_up() { # bridge djct-br0 ($SUBNET.254) + namespace djct-nX ($SUBNET.X) per node
    local i node
    for c in ip nsenter unshare; do command -v $c >/dev/null || die "--netns needs $c (iproute2, util-linux)"; done
    local br=(ip)   # the bridge and the controller's address: in the private namespace if isolated
    [ "$ISOLATE" = 1 ] && br=(ip -n "$CTLNS")
    "${br[@]}" link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE (network namespaces not allowed here?)"
    [ "$ISOLATE" = 1 ] || echo "bridge $BRIDGE" >> "$ROOT/run/netns.list"
    "${br[@]}" addr add "$SUBNET.254/24" dev "$BRIDGE"
    "${br[@]}" link set "$BRIDGE" up
    i=0
    for node in $(node_names); do
        i=$((i + 1))
        ip netns add "$node"
        echo "netns $node" >> "$ROOT/run/netns.list"
        "${br[@]}" link add "djct-v$i" type veth peer name eth0 netns "$node"
        "${br[@]}" link set "djct-v$i" master "$BRIDGE" up
        ip -n "$node" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$node" link set eth0 up
        ip -n "$node" link set lo up
        echo "$SUBNET.$i $node $HOSTS_TAG" >> /etc/hosts
    done
}

net_down() {
    local kind name rest
    if [ -r "$ROOT/run/netns.list" ]; then
        while read -r kind name; do
            case $kind in
                netns) ip netns del "$name" 2>/dev/null || true ;;
                bridge) ip link del "$name" 2>/dev/null || true ;;
            esac
        done < <(tac "$ROOT/run/netns.list")
    fi
    if grep -qF "$HOSTS_TAG" /etc/hosts 2>/dev/null; then
        # rewrite in place: /etc/hosts is often a bind mount (no sed -i, no rename)
        rest=$(grep -vF "$HOSTS_TAG" /etc/hosts || true); printf '%s\n' "$rest" > /etc/hosts
    fi
}

nodes_idle() { scontrol -o show node 2>/dev/null | grep -cE ' State=(IDLE|ALLOCATED|MIXED)[ +]' || true; }

cmd_up() {
    local want_nodes=1 want_netns=0 want_cpus=4 want_gpus=0 want_isolate=1 slurm_user=root t0 node i c n want
    while [ $# -gt 0 ]; do
        case $1 in
            --nodes) want_nodes=$2; shift 2 ;;
            --netns) want_netns=1; shift ;;
            --cpus) want_cpus=$2; shift 2 ;;
            --gpus) want_gpus=$2; shift 2 ;;
            --host-network) want_isolate=0; shift ;;
            *) die "up: unknown option '$1'; use --nodes N, --netns, --cpus C, --gpus G, --host-network" ;;
        esac
    done
    [[ $want_nodes =~ ^[1-9][0-9]*$ ]] || die "up: --nodes '$want_nodes' is not a positive number"
    [[ $want_cpus =~ ^[1-9][0-9]*$ ]] || die "up: --cpus '$want_cpus' is not a positive number"
    [[ $want_gpus =~ ^[0-9]+$ ]] || die "up: --gpus '$want_gpus' is not a number"
    [ "$(id -u)" = 0 ] || die "up must run as root (munged, slurmd)"
    for c in munged munge unmunge slurmctld slurmd scontrol sinfo sbatch srun; do
        command -v $c >/dev/null || die "$c not found; run scripts/install-deps.sh"
    done
    if ctl_alive && load_state; then
        if [ "$NODES" = "$want_nodes" ] && [ "$NETNS" = "$want_netns" ] && [ "$CPUS" = "$want_cpus" ] \
           && [ "$GPUS" = "$want_gpus" ] && [ "$ISOLATE" = "$want_isolate" ] \
           && [ "$(nodes_idle)" = "$NODES" ]; then
            log "already up ($NODES node(s), netns=$NETNS) under $ROOT"; return 0
        fi
        die "a cluster with another mode (nodes=$NODES netns=$NETNS cpus=$CPUS gpus=$GPUS isolated=$ISOLATE) is up under $ROOT; run '$0 down' first"
    fi
    if [ -e "$ROOT" ]; then
        [ -e "$OWNER_MARK" ] || [ -z "$(ls -A "$ROOT")" ] \
            || die "$ROOT exists and was not made by this script; set DJCT_SLURM_ROOT or remove it"
        log "cleaning up a previous cluster under $ROOT"
        "$SELF" down >/dev/null 2>&1 || true
    fi
    NODES=$want_nodes NETNS=$want_netns CPUS=$want_cpus GPUS=$want_gpus ISOLATE=$want_isolate
    if [ "$ISOLATE" = 1 ] || [ "$NETNS" = 1 ]; then
        for c in ip nsenter unshare; do command -v $c >/dev/null || die "needs $c (iproute2, util-linux); or use --host-network"; done
    fi
    t0=$(now_ms)
    id slurm >/dev/null 2>&1 && slurm_user=slurm
    mkdir -p "$ROOT"/{state,spool,log,run,tmp,etc}
    touch "$OWNER_MARK"
    printf 'NODES=%s\nNETNS=%s\nCPUS=%s\nGPUS=%s\nISOLATE=%s\n' "$NODES" "$NETNS" "$CPUS" "$GPUS" "$ISOLATE" > "$STATE"
    if [ "$ISOLATE" = 1 ]; then
        ip netns del "$CTLNS" 2>/dev/null || true   # a leftover of a crashed run with this port
        ip netns add "$CTLNS" 2>"$ROOT/run/netns.err" \
            || die "cannot create network namespace $CTLNS ($(cat "$ROOT/run/netns.err")); use --host-network"
        echo "netns $CTLNS" >> "$ROOT/run/netns.list"
        ip -n "$CTLNS" link set lo up
        # SLURM binds through getaddrinfo(AI_ADDRCONFIG), which finds nothing where only lo has an
        # address ("Unable to resolve \"(null)\"", fatal): one address on a veth pair that leads nowhere
        ip -n "$CTLNS" link add djct-sa type veth peer name djct-sb
        ip -n "$CTLNS" addr add "$SUBNET.253/32" dev djct-sa
        ip -n "$CTLNS" link set djct-sa up
        ip -n "$CTLNS" link set djct-sb up
    fi
    for node in $(node_names); do
        mkdir -p "$ROOT/spool/$node" "$ROOT/tmp/$node"; chmod 1777 "$ROOT/tmp/$node"
    done
    chown "$slurm_user": "$ROOT/state" "$ROOT/log"
    chmod 755 "$ROOT" "$ROOT/run" "$ROOT/log" "$ROOT/etc"

    # munge: reuse a running munged (then never stop it); else start one and remember its pid
    if munge_ok; then
        log "reusing the running munged"
    else
        if [ ! -s /etc/munge/munge.key ]; then
            mkdir -p /etc/munge
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
            chown munge: /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
        fi
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge: /run/munge /var/log/munge /var/lib/munge; chmod 755 /run/munge
        runuser -u munge -- /usr/sbin/munged || die "munged failed to start (see /var/log/munge/munged.log)"
        for i in $(seq 100); do munge_ok && break; sleep 0.1; done
        munge_ok || die "munged did not answer within 10 s (see /var/log/munge/munged.log)"
        cp /run/munge/munged.pid "$ROOT/run/munged.pid"
    fi

    write_conf "$slurm_user"
    [ "$NETNS" = 1 ] && net_up
    inns slurmctld -f "$CONF" || die "slurmctld failed to start; see $ROOT/log/slurmctld.log"
    i=0
    for node in $(node_names); do
        i=$((i + 1))
        if [ "$NETNS" = 1 ]; then
            # nsenter, not `ip netns exec`: the latter remounts /sys and slurmd then dies with
            # "No filesystem mounted on /sys/fs/cgroup"
            nsenter --net="/run/netns/$node" unshare --uts /bin/sh -c \
                "hostname '$node' && exec slurmd -f '$CONF' -N '$node'" \
                || die "slurmd $node failed to start; see $ROOT/log/slurmd-$node.log"
        else
            inns slurmd -f "$CONF" -N "$node" || die "slurmd $node failed to start; see $ROOT/log/slurmd-$node.log"
        fi
    done
    want=$(node_names | wc -l)
    for i in $(seq $((TIMEOUT * 5))); do
        # a dead daemon never becomes IDLE (and scontrol then waits ~10 s per call): stop at once
        ctl_alive || { tail -n 5 "$ROOT/log/slurmctld.log" >&2; die "slurmctld died; see $ROOT/log/slurmctld.log"; }
        for node in $(node_names); do
            pid_of "$ROOT/run/slurmd-$node.pid" slurmd >/dev/null || [ "$i" -lt 10 ] || {
                tail -n 5 "$ROOT/log/slurmd-$node.log" >&2; die "slurmd $node died; see $ROOT/log/slurmd-$node.log"; }
        done
        n=$(scontrol -o show node 2>/dev/null | grep -c ' State=IDLE ' || true)
        [ "$n" = "$want" ] && break
        sleep 0.2
    done
    if [ "$n" != "$want" ]; then
        scontrol -o show node >&2 || true
        tail -n 20 "$ROOT"/log/*.log >&2 || true
        die "only $n of $want nodes IDLE after ${TIMEOUT} s; logs in $ROOT/log ('$0 down' cleans up)"
    fi
    log "up in $(secs_since "$t0") s: $want node(s) x $CPUS CPUs, netns=$NETNS, isolated=$ISOLATE"
    if [ "$ISOLATE" = 1 ]; then log "clients: $0 exec sbatch ... (or: $0 shell)"
    else log "clients: export SLURM_CONF=$CONF"; fi
}

cmd_down() {
    local t0 f pid jobs i victims=()
    t0=$(now_ms)
    load_state || true
    if [ -e "$ROOT" ] && [ ! -e "$OWNER_MARK" ]; then die "$ROOT was not made by this script; not touching it"; fi
    if ctl_alive; then
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for i in $(seq 100); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.1; done
        fi
    fi
    for f in "$ROOT"/run/slurmd-*.pid; do
        pid=$(pid_of "$f" slurmd) && victims+=("$pid $(basename "$f" .pid)")
    done
    pid=$(pid_of "$ROOT/run/slurmctld.pid" slurmctld) && victims+=("$pid slurmctld")
    [ ${#victims[@]} -gt 0 ] && stop_pids "${victims[@]}"
    victims=()
    for pid in $(our_stepds); do victims+=("$pid slurmstepd"); done
    [ ${#victims[@]} -gt 0 ] && stop_pids "${victims[@]}"
    pid=$(pid_of "$ROOT/run/munged.pid" munged) && stop_pids "$pid munged"
    net_down
    if [ "$KEEP" = 1 ]; then
        log "kept $ROOT (logs in $ROOT/log)"; rm -f "$STATE" "$ROOT"/run/*.pid
    elif [ -e "$OWNER_MARK" ]; then
        rm -rf "$ROOT"
    fi
    log "down in $(secs_since "$t0") s"
}

cmd_status() {
    local f pid rc=0
    load_state || { echo "not up (no $STATE)"; return 1; }
    echo "mode: nodes=$NODES netns=$NETNS cpus=$CPUS gpus=$GPUS isolated=$ISOLATE root=$ROOT conf=$CONF"
    for f in "$ROOT"/run/slurmctld.pid "$ROOT"/run/slurmd-*.pid "$ROOT"/run/munged.pid; do
        [ -e "$f" ] || continue
        pid=$(tr -dc '0-9' < "$f")
        if [ -d "/proc/$pid" ]; then echo "$(basename "$f" .pid): pid $pid alive"
        else echo "$(basename "$f" .pid): pid $pid DEAD"; rc=1; fi
    done
    scontrol ping || rc=1
    sinfo -N || rc=1
    squeue || rc=1
    return $rc
}

# `sbatch --wait` re-polls after 2 s then 8 s; poll every 0.2-0.5 s instead. A requeued job goes
# RUNNING -> REQUEUED/PENDING -> RUNNING; keep waiting through that. Exit code = the job's.
cmd_wait() {
    local jid=${1:?usage: slurm_cluster.sh wait JOBID [TIMEOUT_S]} limit=${2:-3600} t0 line state code
    load_state || true
    t0=$(date +%s)
    while :; do
        line=$(scontrol -o show job "$jid" 2>/dev/null) || die "job $jid unknown (SLURM_CONF=$SLURM_CONF)"
        state=$(grep -oE 'JobState=[A-Z_]+' <<<"$line" | cut -d= -f2)
        case $state in
            PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_FED|REQUEUE_HOLD|RESIZING|SIGNALING|STAGE_OUT) ;;
            *) break ;;
        esac
        [ $(( $(date +%s) - t0 )) -lt "$limit" ] || die "job $jid still $state after $limit s"
        # 0.2 s for short jobs, then 0.5 s: scontrol is not free on a shared 2-core box
        if [ $(( $(date +%s) - t0 )) -lt 5 ]; then sleep 0.2; else sleep 0.5; fi
    done
    code=$(grep -oE ' ExitCode=[0-9]+:[0-9]+' <<<"$line" | cut -d= -f2)
    log "job $jid $state ExitCode=$code Restarts=$(grep -oE 'Restarts=[0-9]+' <<<"$line" | cut -d= -f2)"
    [ "$state" = COMPLETED ] && exit 0
    [ "${code%%:*}" != 0 ] && exit "${code%%:*}"
    exit 1
}

cmd_selftest() {
    local d=$ROOT/selftest n np fails=0 jid i out
    load_state || die "not up; run '$0 up' first"
    command -v mpicc >/dev/null || die "mpicc not found (apt-get install libopenmpi-dev)"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    n=$(node_names | wc -l); np=$((2 * n))
    mkdir -p "$d"; chmod 755 "$d"
    cat > "$d/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, one, sum = 0, len; char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    one = rank + 1; MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("HELLO rank=%d size=%d sum=%d host=%s\n", rank, size, sum, host);
    MPI_Finalize(); return 0;
}
EOF
    mpicc -O2 -o "$d/hello" "$d/hello.c"
    good() { grep -c "HELLO .*size=$np sum=$((np * (np + 1) / 2)) " <<<"$1" || true; }
    verdict() { if [ "$2" = "$3" ]; then log "PASS $1"; else log "FAIL $1 ($2 of $3)"; fails=$((fails + 1)); fi; }
    out=$(cd "$d" && inns timeout 120 srun --mpi=pmix -N "$n" -n "$np" ./hello 2>&1 || true)
    verdict "srun --mpi=pmix -N $n -n $np" "$(good "$out")" "$np"
    cat > "$d/job.sh" <<EOF
#!/bin/bash
#SBATCH -N $n -n $np -t 5 -o $d/job.%j.out
cd $d
mpirun -np \$SLURM_NTASKS ./hello
srun --mpi=pmix ./hello
EOF
    jid=$(sbatch --parsable "$d/job.sh")
    "$SELF" wait "$jid" 300 || { log "FAIL sbatch job $jid exit != 0"; fails=$((fails + 1)); }
    verdict "sbatch: mpirun + srun --mpi=pmix" "$(good "$(cat "$d/job.$jid.out")")" "$((2 * np))"
    cat > "$d/sig.sh" <<EOF
#!/bin/bash
#SBATCH -n 1 -t 2 -o $d/sig.%j.out
srun -n 1 bash -c 'trap "echo GOT_USR1; exit 0" USR1; echo READY; for i in \$(seq 300); do sleep 0.1; done'
EOF
    jid=$(sbatch --parsable "$d/sig.sh")
    for i in $(seq 200); do grep -q READY "$d/sig.$jid.out" 2>/dev/null && break; sleep 0.1; done
    scancel --signal=USR1 "$jid"
    "$SELF" wait "$jid" 60 || true
    verdict "scancel --signal=USR1 reaches the step" "$(grep -c GOT_USR1 "$d/sig.$jid.out" || true)" 1
    [ $fails = 0 ] || die "selftest: $fails failure(s); logs in $ROOT/log"
    log "selftest passed"
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    exec) shift; load_state || die "not up"; [ $# -gt 0 ] || die "exec: no command"; inns "$@" ;;
    shell) load_state || die "not up"; echo "slurm_cluster: shell with SLURM_CONF=$CONF; exit to leave" >&2
           inns "${SHELL:-/bin/bash}" ;;
    status) cmd_status ;;
    wait) shift; cmd_wait "$@" ;;
    selftest) cmd_selftest ;;
    *) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; [ -z "${1:-}" ] || [ "$1" = -h ] || [ "$1" = --help ] || exit 2 ;;
esac
