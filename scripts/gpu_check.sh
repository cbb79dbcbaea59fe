#!/usr/bin/env bash
# The GPU check of djct in one go (docs/hpc.md "Checking a GPU machine"). On a Linux machine with
# an NVIDIA GPU, CUDA's nvcc and a Python whose torch has CUDA, it builds djct against that torch
# (TORCH_PYTHON=) in a work folder and runs, within --time-limit seconds in all (build included):
#   a) 1 rank on the GPU (MLP: the default --device auto, point cloud: --device cuda) against
#      --device cpu, same seed: the GPU run says it is on cuda:0, and the loss curves of the two
#      journals agree within A_RTOL/A_ATOL at every step; then the MLP's GPU run resumes from its
#      checkpoint on the GPU for A_RESUME more steps
#   b) tests/test_nccl_mpi with one rank: NCCL bootstrapped from MPI, reductions of device buffers
#      checked against known answers
#   c) 2 ranks on one GPU with --backend mpi (device gradients staged through host memory) against
#      1 rank with the doubled batch: the same parameters after C_STEPS steps (within C_TOL); and
#      the same 2 ranks with the default backend are refused (two ranks of one NCCL communicator
#      on one GPU) with the message naming both ranks and the GPU
#   d) djct's steady-state events/s on the GPU against bench/torch_eager.py (the same MLP, batch and
#      optimizer in plain PyTorch eager on the same GPU), as a ratio
#   e) bench/nccl_allreduce: djct's bucketed average against a raw ncclAllReduce of the same bytes
# and writes one markdown summary (--out FILE, default $OUT/gpu_check.md) saying what ran, what
# passed, the figures and what was skipped; $OUT/gpu_check.log (or FILE's .log) keeps the details.
#
# Machines without Open MPI, HDF5, libcurl, cJSON or inih: on a Debian 12 machine first run
#   scripts/gpu_check.sh --fetch-debs DIR      (apt-get download of the packages and the libraries
#                                               they need that an Ubuntu-like image lacks)
# then pass --debs DIR there: the packages are unpacked with dpkg -x into a private prefix (never
# into /) and the build and runs use it (OPAL_PREFIX, PATH, LD_LIBRARY_PATH, pkg-config).
# --no-gpu rehearses all of it on a CPU machine: the same unpacking, build and runs, with the CPU
# where a part needs a GPU (and a GPU part that cannot run says so). --hide-system (root, with
# --debs) runs it in a private mount namespace where the system's own copies of those packages and
# of ssh are hidden, so nothing but the prefix can serve them.
#
# Usage: scripts/gpu_check.sh [--debs DIR] [--python PY] [--out FILE] [--time-limit S] [--only abcde]
#                             [--work DIR] [--jobs N] [--no-gpu] [--hide-system]
#        scripts/gpu_check.sh --fetch-debs DIR
#        scripts/gpu_check.sh --debs DIR [--hide-system] [--work DIR] --exec CMD ARGS...
#          (only the prefix: CMD runs in its environment, with MPICC, GPU_CHECK_MPIRUN, GPU_CHECK_PREFIX)
# Exit: 0 every part that ran passed, 1 a part failed or the build failed, 2 usage.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
self="$root/scripts/gpu_check.sh"

# ---- what every part runs: the djct_train options in one place ------------------------------------
# (adjust here when djct_train's options change)
TRAIN_COMMON=(--epochs 1 --seed 7 --no-validate --checkpoint-every-minutes 0 --wandb-mode offline
              --progress none --watchdog-seconds 120)
TRAIN_MLP=(--model mlp --batch-events 128 --optimizer adam --lr 0.001)       # data: bench/mlp_data.py
TRAIN_PC=(--model pointcloud --gen-events 4000 --batch-elements 6400 --optimizer adam --lr 0.001)
DEV_GPU=(--device cuda)
DEV_AUTO=(--device auto)                       # djct_train's default, said explicitly
DEV_CPU=(--device cpu)
A_STEPS=100; A_RTOL=0.01; A_ATOL=0.001         # a) |loss_gpu - loss_cpu| <= A_ATOL + A_RTOL |loss_cpu|
A_RESUME=10                                    # a) steps the MLP's GPU run continues after resuming
C_STEPS=50; C_TOL=0.0001                       # c) largest |p_2ranks - p_1rank| over all parameters
C_BACKEND=(--backend mpi)
D_STEPS=400; D_WARMUP=50                       # d) steady state: the steps after D_WARMUP
E_ARGS=(--reps 20 --max-mib 256)
MLP_EVENTS=40000

# ---- Debian packages for machines that lack them ------------------------------------------------------
# headers and link names (their own dependencies are not followed) ...
DEV_PKGS=(libopenmpi-dev openmpi-common libhdf5-dev libcurl4-openssl-dev libcjson-dev libinih-dev
          zlib1g-dev pkgconf pkgconf-bin)
# ... and the programs and libraries, with every library they depend on, except what an Ubuntu-like
# image with apt, Python and CUDA has (BASE: the C/C++ runtime, compression, TLS, systemd and PAM
# libraries) and what a one-node run does not use (SKIP: ssh, hwloc's X11/OpenCL plugins). A library
# whose soname such an image has in another version only (libunistring.so.2 for libpsl) is brought.
RUN_PKGS=(openmpi-bin libopenmpi3 libhdf5-103-1 libcurl4 libcjson1 libinih1 libpkgconf3)
BASE=" libc6 libgcc-s1 libstdc++6 gcc-12-base zlib1g libzstd1 liblzma5 libbz2-1.0 libcrypt1 libssl3
 libgnutls30 libgmp10 libnettle8 libhogweed6 libp11-kit0 libtasn1-6 libidn2-0 libffi8
 libselinux1 libpcre2-8-0 libudev1 libsystemd0 libcap2 libcap-ng0 libaudit1 libaudit-common libgcrypt20
 libgpg-error0 liblz4-1 libcom-err2 libkeyutils1 libacl1 libattr1 libmd0 libbsd0 libuuid1 libtinfo6
 libreadline8 readline-common libdb5.3 libsemanage2 libsemanage-common libsepol2 libpam0g
 libpam-modules libpam-modules-bin libpam-runtime debconf cdebconf dpkg perl-base tar adduser passwd
 install-info libdebian-installer4 libnewt0.52 libslang2 libtextwrap1 libatomic1 "
BASE=" $(echo $BASE) "
SKIP=" openssh-client rsh-client libhwloc-plugins libxnvctrl0 ocl-icd-libopencl1 libx11-6 libx11-data
 libxau6 libxcb1 libxdmcp6 libxext6 libxml2 libicu72 libpciaccess0 libfido2-1 libcbor0.8 libedit2 "
SKIP=" $(echo $SKIP) "

usage() { sed -n '2,/^set -uo/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "gpu_check: $*" >&2; exit 1; }

# ---- options ----------------------------------------------------------------------------------------
debs="" py="" out="" limit=480 only=abcde work="" jobs=$(nproc 2>/dev/null || echo 2) nogpu=0 hide=0 fetch=""
exec_cmd=()
while [ $# -gt 0 ]; do
  case $1 in
    --exec) shift; exec_cmd=("$@"); [ $# -gt 0 ] || usage; break;;
    --fetch-debs) fetch=${2?}; shift 2;;
    --debs) debs=${2?}; shift 2;;
    --python) py=${2?}; shift 2;;
    --out) out=${2?}; shift 2;;
    --time-limit) limit=${2?}; shift 2;;
    --only) only=${2?}; shift 2;;
    --work) work=${2?}; shift 2;;
    --jobs) jobs=${2?}; shift 2;;
    --no-gpu|--rehearse) nogpu=1; shift;;
    --hide-system) hide=1; shift;;
    -h|--help) usage;;
    *) echo "gpu_check: unknown option '$1'" >&2; usage;;
  esac
done
case $limit in ''|*[!0-9]*) echo "gpu_check: --time-limit '$limit': give whole seconds" >&2; exit 2;; esac
case $only in *[!a-e]*|'') echo "gpu_check: --only '$only': letters a to e" >&2; exit 2;; esac

# ---- --fetch-debs: on a Debian 12 machine with its package lists --------------------------------------
if [ -n "$fetch" ]; then
  grep -q '^12' /etc/debian_version 2>/dev/null || die "--fetch-debs needs a Debian 12 machine (the GPU machines get Debian 12 libraries)"
  [ "$(dpkg --print-architecture)" = amd64 ] || die "--fetch-debs: this machine is $(dpkg --print-architecture), the GPU machines are amd64"
  # the runtime closure, one apt-cache call per level: Depends and Pre-Depends ("<virtual>" names
  # are provided by packages already listed), stopping at BASE and SKIP
  declare -A seen=()
  level=("${RUN_PKGS[@]}")
  while [ ${#level[@]} -gt 0 ]; do
    for p in "${level[@]}"; do seen[$p]=1; done
    next=()
    for d in $(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
                 --no-enhances "${level[@]}" 2>/dev/null | sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([^<].*\)/\2/p' | sort -u); do
      d=${d%:any}
      [[ $BASE == *" $d "* || $SKIP == *" $d "* || -n "${seen[$d]:-}" ]] || next+=("$d")
    done
    level=("${next[@]}")
  done
  pkgs=$(printf '%s\n' "${!seen[@]}" "${DEV_PKGS[@]}" | sort -u)
  mkdir -p "$fetch" && cd "$fetch" || die "cannot create $fetch"
  # an earlier download of these packages goes (two versions of one package would both unpack)
  for f in ./*.deb; do
    [ -f "$f" ] && grep -qx "$(dpkg-deb -f "$f" Package)" <<<"$pkgs" && rm -f "$f"
  done
  # the candidate version from apt's own cache when it is there, the rest from the mirror
  get=()
  # shellcheck disable=SC2086
  while read -r p v; do
    v=${v//:/%3a}
    f=$(ls "/var/cache/apt/archives/${p}_${v}_"{amd64,all}.deb 2>/dev/null | head -1)
    if [ -n "$v" ] && [ -n "$f" ]; then cp "$f" .; else get+=("$p"); fi
  done < <(apt-cache policy $pkgs 2>/dev/null | awk '/^[^ ].*:$/ {p = substr($1, 1, length($1) - 1)} /^ *Candidate:/ {print p, $2}')
  if [ ${#get[@]} -gt 0 ]; then
    apt-get download "${get[@]}" >download.log 2>&1 || { tail -3 download.log >&2; die "apt-get download of ${#get[@]} packages failed (no network to the mirror? apt-get update?); see $fetch/download.log"; }
    rm -f download.log
  fi
  echo "gpu_check: $(echo "$pkgs" | wc -l) packages, $(du -sh . | cut -f1) in $fetch:"
  echo "$pkgs" | paste -sd' ' | fold -s -w 100 | sed 's/^/  /'
  exit 0
fi

# ---- the time limit: everything below, the build included, within $limit seconds --------------------
if [ -z "${DJCT_GPU_CHECK_INNER:-}" ]; then
  export DJCT_GPU_CHECK_INNER=1 DJCT_GPU_CHECK_DEADLINE=$(( $(date +%s) + limit ))
  # re-run under a timeout (and, with --hide-system, in a mount namespace of its own)
  set -- --debs "$debs" --python "$py" --out "$out" --time-limit "$limit" --only "$only" --work "$work" --jobs "$jobs"
  [ $nogpu = 1 ] && set -- "$@" --no-gpu
  [ $hide = 0 ] || set -- "$@" --hide-system
  [ ${#exec_cmd[@]} -eq 0 ] || set -- "$@" --exec "${exec_cmd[@]}"
  if [ $hide = 1 ]; then
    [ -n "$debs" ] || die "--hide-system needs --debs (it hides the system's copies of those packages)"
    [ "$(id -u)" = 0 ] || die "--hide-system needs root (a private mount namespace)"
    exec timeout -k 15 $((limit + 20)) unshare --mount --propagation private "$self" "$@"
  fi
  exec timeout -k 15 $((limit + 20)) "$self" "$@"
fi
deadline=$DJCT_GPU_CHECK_DEADLINE
left() { echo $(( deadline - $(date +%s) )); }

# ---- work folder -------------------------------------------------------------------------------------
[ -n "$work" ] || work=$(mktemp -d /tmp/djct-gpu-check.XXXXXX)
mkdir -p "$work" || die "cannot create $work"
work=$(cd "$work" && pwd)

# ---- the private prefix from Debian packages ---------------------------------------------------------
orig_ldp=${LD_LIBRARY_PATH:-}
mpicc=mpicc mpirun=mpirun
if [ -n "$debs" ]; then
  ls "$debs"/*.deb >/dev/null 2>&1 || die "--debs $debs holds no .deb files; make them with --fetch-debs on a Debian 12 machine"
  command -v dpkg >/dev/null || die "dpkg not found: it unpacks the packages (dpkg -x)"
  P=$work/prefix
  if [ $hide = 1 ]; then
    # hide the files this system has of those packages (and ssh): only the prefix can serve them
    n=0
    for d in "$debs"/*.deb openssh-client; do
      p=$d; [ -f "$d" ] && p=$(dpkg-deb -f "$d" Package)
      while read -r f; do
        [ -f "$f" ] && [ ! -L "$f" ] && mount --bind /dev/null "$f" && n=$((n + 1))
      done < <(dpkg -L "$p" 2>/dev/null)
    done
    echo "gpu_check: hid $n files of the system's copies of the packages in $debs and of openssh-client"
  fi
  rm -rf "$P"; mkdir -p "$P"
  for d in "$debs"/*.deb; do dpkg -x "$d" "$P" || die "dpkg -x $d failed"; done
  L=$P/usr/lib/x86_64-linux-gnu
  # what Debian's alternatives system would have linked
  [ -e "$L/pkgconfig/hdf5.pc" ] || ln -s hdf5-serial.pc "$L/pkgconfig/hdf5.pc"
  psm=$(ls "$P"/usr/lib/libpsm1/libpsm_infinipath.so.1.* 2>/dev/null | head -1)
  [ -z "$psm" ] || [ -e "$L/libpsm_infinipath.so.1" ] || ln -s "$psm" "$L/libpsm_infinipath.so.1"
  # link names whose library stays the machine's own (BASE, e.g. libz.so): point them at it
  for s in "$L"/*.so; do
    [ -L "$s" ] && [ ! -e "$s" ] || continue
    t=$(basename "$(readlink "$s")")
    while :; do
      for dir in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu; do
        [ -e "$dir/$t" ] && { ln -sf "$dir/$t" "$s"; break 2; }
      done
      [[ $t == *.so.* ]] || break
      t=${t%.*}
    done
  done
  export OPAL_PREFIX=$P/usr PMIX_INSTALL_PREFIX=$L/pmix2
  export PATH=$P/usr/bin:$PATH
  # (some Debian 12 packages still put their libraries under /lib)
  export LD_LIBRARY_PATH=$L:$P/lib/x86_64-linux-gnu:$L/openmpi/lib:$L/hdf5/serial:$L/pmix2/lib${orig_ldp:+:$orig_ldp}
  export PKG_CONFIG_LIBDIR=$L/pkgconfig:$P/usr/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$P
  export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
  # one node: no ssh, shared memory between ranks
  export OMPI_MCA_plm=isolated OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
  mpicc=$P/usr/bin/mpicc.openmpi mpirun=$P/usr/bin/mpirun.openmpi
  prefix_note="Debian packages from \`$debs\` ($(ls "$debs"/*.deb | wc -l) files, $(du -sh "$debs" | cut -f1)) unpacked into \`$P\`"
else
  prefix_note="the machine's own MPI, HDF5, libcurl, cJSON, inih"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 WANDB_MODE=offline
unset WANDB_API_KEY
MPIRUN=("$mpirun" --allow-run-as-root --oversubscribe --bind-to none)
# Python outside the prefix: its torch must not see the Debian libraries first (with --hide-system
# the system's python needs the prefix's copies of what was hidden)
py_ldp=$orig_ldp; [ $hide = 0 ] || py_ldp=${LD_LIBRARY_PATH:-}
pyrun() { LD_LIBRARY_PATH=$py_ldp "$py" "$@"; }
# --exec: only this command, in that environment
if [ ${#exec_cmd[@]} -gt 0 ]; then
  export MPICC=$mpicc GPU_CHECK_MPIRUN=$mpirun GPU_CHECK_PREFIX=${P:-}
  "${exec_cmd[@]}"; exit $?
fi

# ---- output -------------------------------------------------------------------------------------------
if [ -z "$out" ]; then
  if [ -n "${OUT:-}" ]; then out=$OUT/gpu_check.md; else out=$PWD/gpu_check.md; fi
fi
mkdir -p "$(dirname "$out")" || die "cannot create the folder of $out"
log=${out%.md}.log
: >"$log"
exec 3>&1
say() { echo "gpu_check: $*" >&3; echo "== $*" >>"$log"; }

head_md=() rows=() details=() failed=0
row() { rows+=("| $1 | $2 | $3 | $4 |"); }  # part, what, result, figures
detail() { details+=("$1"); }
write_md() {
  {
    printf '# djct GPU check\n\n'
    printf '%s\n' "${head_md[@]}"
    printf '\n| part | what | result | figures |\n|---|---|---|---|\n'
    printf '%s\n' "${rows[@]}"
    [ ${#details[@]} -eq 0 ] || { printf '\n## Details\n\n'; printf '%s\n' "${details[@]}"; }
  } >"$out.tmp" && mv "$out.tmp" "$out"
}
part=""
trap 'write_md' EXIT
trap '[ -z "$part" ] || row "$part" "" "**KILLED**: out of time (--time-limit $limit)" ""; write_md; exit 124' TERM
# the last lines of a log, as a fenced block for the summary
tail_block() { printf '```\n%s\n```\n' "$(tail -n "${2:-8}" "$1" | cut -c1-300)"; }
# keep each command's whole output in the log file
logged() { local f=$1; shift; { echo "\$ $*"; cat "$f"; } >>"$log"; }
# run with what is left of the time, minus a reserve for the parts after; rc 124 = out of time
timed() { # seconds-to-keep cmd...
  local keep=$1; shift
  local t=$(( $(left) - keep )); [ $t -gt 5 ] || return 124
  timeout -k 5 "$t" "$@"
}


# ---- the machine ---------------------------------------------------------------------------------------
[ -n "$py" ] || py=$(command -v python3 || true)
[ -n "$py" ] || die "no python3 on PATH; pass --python PY (the one whose torch to use)"
nvcc=$(command -v nvcc || true)
[ -n "$nvcc" ] || [ ! -x /usr/local/cuda/bin/nvcc ] || nvcc=/usr/local/cuda/bin/nvcc
cuda_home=/usr/local/cuda; [ -z "$nvcc" ] || cuda_home=$(cd "$(dirname "$nvcc")/.." && pwd)
tinfo=$(pyrun -c 'import torch, sys
print(torch.__version__, torch.version.cuda or "none", int(torch.cuda.is_available()), torch.cuda.device_count())' 2>&1 | tail -1)
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
head_md+=("- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(hostname); $(nproc) CPUs")
if [ $nogpu = 1 ]; then
  head_md+=("- **mode: rehearsal on a CPU machine (--no-gpu): no GPU ran; the parts that need one say so**")
else
  head_md+=("- GPU: ${gpu:-none found by nvidia-smi}")
fi
head_md+=("- nvcc: ${nvcc:-not found} ($( [ -n "$nvcc" ] && "$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))")
head_md+=("- python: $py; torch, CUDA, cuda available, devices: $tinfo")
head_md+=("- libraries: $prefix_note")
write_md
if [ $nogpu = 0 ]; then
  [ -n "$gpu" ] || { head_md+=("- **not run: nvidia-smi finds no GPU (use --no-gpu to rehearse on a CPU machine)**"); exit 1; }
  [ -n "$nvcc" ] || { head_md+=("- **not run: no nvcc on PATH or in /usr/local/cuda**"); exit 1; }
  set -- $tinfo
  [ "${3:-0}" = 1 ] || { head_md+=("- **not run: $py's torch has no usable CUDA ($tinfo)**"); exit 1; }
fi

# ---- build ---------------------------------------------------------------------------------------------
B=$work/build
targets=("$B/bin/djct_train" "$B/tests/test_nccl_mpi" "$B/bench/nccl_allreduce")
say "building djct against $py's torch in $B ($jobs jobs)"
t0=$(date +%s)
timed 60 make -C "$root" -j"$jobs" BUILD="$B" TORCH_PYTHON="$py" INSTALL_DEPS=0 CUDA_HOME="$cuda_home" \
  MPICC="$mpicc" "${targets[@]}" >"$work/build.log" 2>&1
rc=$?
logged "$work/build.log" make TORCH_PYTHON="$py" "${targets[@]}"
cfg=$(sed -n 's/^CONFIG_SUMMARY := //p' "$B/config.mk" 2>/dev/null | tr ';' '\n' | sed 's/^ *//' | grep -E 'libtorch|CUDA|MPI' | sed 's/$/;/' | paste -sd' ' || true)
head_md+=("- configure: ${cfg:-no configuration written}")
if [ $rc -ne 0 ]; then
  row build "make against $py's torch" "**FAILED** (rc $rc$([ $rc = 124 ] && echo ', out of time'))" "$(( $(date +%s) - t0 )) s"
  detail "### build"$'\n'"$(tail_block "$work/build.log" 25)"
  exit 1
fi
row build "make against $py's torch" pass "$(( $(date +%s) - t0 )) s"
say "built in $(( $(date +%s) - t0 )) s"

# ---- data ----------------------------------------------------------------------------------------------
export DJCT_CACHE=$work/cache
mlp=$work/mlp.h5
pyrun "$root/bench/mlp_data.py" "$mlp" --events $MLP_EVENTS >"$work/data.log" 2>&1 \
  || { row data "bench/mlp_data.py" "**FAILED**" ""; detail "### data"$'\n'"$(tail_block "$work/data.log")"; exit 1; }

# one djct_train run: train NAME NP ARGS...; its log is $work/NAME.log, its run dir $work/NAME
train() {
  local name=$1 np=$2; shift 2
  rm -rf "${work:?}/$name"
  timed 20 "${MPIRUN[@]}" -np "$np" "$B/bin/djct_train" "${TRAIN_COMMON[@]}" --run-dir "$work/$name" "$@" \
    >"$work/$name.log" 2>&1
  local rc=$?
  logged "$work/$name.log" djct_train "$name" -np "$np" "$@"
  return $rc
}
# why a run failed, in one line: djct_train's own message, else the last line
why() { { grep -m1 'djct_train: ' "$1" || tail -n 1 "$1"; } | cut -c1-240; }
history() { ls "$work/$1"/wandb/*/history.jsonl 2>/dev/null | head -1; }
# a failed run's row entry: REFUSED when djct_train declined the device, else FAILED
verdict() { # log [what]
  local w; w=$(why "$1")
  case $w in *CUDA*|*cuda*|*device*|*GPU*) echo "**REFUSED** by djct_train${2:+ ($2)}: $w";; *) echo "**FAILED**${2:+ ($2)}: $w";; esac
}
gpu_or_stand_in() { # the device arguments for a part that needs the GPU
  if [ $nogpu = 1 ]; then echo "${DEV_CPU[*]}"; else echo "${DEV_GPU[*]}"; fi
}

# ---- a) cuda vs cpu, MLP and point cloud --------------------------------------------------------------
part_a() {
  local m res figs
  for m in mlp pc; do
    local margs=("${TRAIN_MLP[@]}" --data "$mlp"); [ $m = pc ] && margs=("${TRAIN_PC[@]}")
    say "a) $m: cpu and cuda, $A_STEPS steps each"
    if ! train "a_${m}_cpu" 1 "${margs[@]}" "${DEV_CPU[@]}" --max-steps $A_STEPS; then
      row "a ($m)" "1 rank cuda vs cpu" "**FAILED**: the cpu run: $(why "$work/a_${m}_cpu.log")" ""; failed=1; continue
    fi
    local other=("${DEV_GPU[@]}") label=cuda
    [ $m = mlp ] && { other=("${DEV_AUTO[@]}"); label="auto (cuda)"; }
    if [ $nogpu = 1 ]; then
      # say how this build answers --device cuda, then compare with a cpu run of other threads
      train "a_${m}_cuda" 1 "${margs[@]}" "${DEV_GPU[@]}" --max-steps 2 || true
      detail "a) $m with --device cuda on this machine: $(why "$work/a_${m}_cuda.log")"
      other=("${DEV_CPU[@]}" --threads 1); label="cpu --threads 1 (stand-in for cuda)"
    fi
    if ! train "a_${m}_gpu" 1 "${margs[@]}" "${other[@]}" --max-steps $A_STEPS; then
      row "a ($m)" "1 rank $label vs cpu" "$(verdict "$work/a_${m}_gpu.log")" ""; failed=1; continue
    fi
    # the run must have been on the GPU, as its start-up line says (not a silent cpu fallback)
    if [ $nogpu = 0 ] && ! grep -q "^device: cuda:0 on rank 0 (${other[*]}: " "$work/a_${m}_gpu.log"; then
      row "a ($m)" "1 rank $label vs cpu" "**FAILED**: not on the GPU: $(grep -m1 '^device: ' "$work/a_${m}_gpu.log" || echo 'no device line')" ""
      failed=1; continue
    fi
    figs=$(pyrun - "$(history "a_${m}_cpu")" "$(history "a_${m}_gpu")" $A_RTOL $A_ATOL <<'PY'
import json, sys
def curve(p):
    return {r["global_step"]: r["loss"] for r in map(json.loads, open(p)) if "loss" in r and "global_step" in r}
a, b, rtol, atol = curve(sys.argv[1]), curve(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
steps = sorted(set(a) & set(b))
worst = max(steps, key=lambda s: abs(b[s] - a[s]) - rtol * abs(a[s])) if steps else None
ok = bool(steps) and all(abs(b[s] - a[s]) <= atol + rtol * abs(a[s]) for s in steps)
mr = max((abs(b[s] - a[s]) / max(abs(a[s]), 1e-12) for s in steps), default=float("nan"))
print("%s %d steps compared; max relative difference %.2e; loss %.4f -> %.4f (cpu), %.4f -> %.4f; worst step %s"
      % ("pass" if ok else "FAIL", len(steps), mr, a[steps[0]], a[steps[-1]], b[steps[0]], b[steps[-1]], worst)
      if steps else "FAIL no common steps in the two journals")
PY
)
    res=${figs%% *}; figs=${figs#* }
    [ "$res" = pass ] || { res="**FAILED**"; failed=1; }
    row "a ($m)" "1 rank $label vs cpu, $A_STEPS steps, seed 7: every step within $A_ATOL + $A_RTOL x loss" "$res" "$figs"
    [ $m = mlp ] || continue
    # resume on the GPU: parameters copied from the CPU-loaded checkpoint to the device, the
    # optimizer's moments loaded onto it, training goes on
    say "a) mlp: resume the $label run for $A_RESUME steps"
    timed 20 "${MPIRUN[@]}" -np 1 "$B/bin/djct_train" "${TRAIN_COMMON[@]}" --run-dir "$work/a_mlp_gpu" "${margs[@]}" \
      "${other[@]}" --resume --max-steps $((A_STEPS + A_RESUME)) >"$work/a_resume.log" 2>&1
    local rrc=$?
    logged "$work/a_resume.log" djct_train a_mlp_gpu --resume
    if [ $rrc = 0 ] && grep -q "^resumed from the checkpoint of step $A_STEPS\$" "$work/a_resume.log" &&
       grep -q '"steps": '$((A_STEPS + A_RESUME)) "$work/a_mlp_gpu/summary.json"; then
      row "a (mlp)" "resume the $label run from its checkpoint, $A_RESUME more steps" pass \
        "$(grep -m1 '^done: ' "$work/a_resume.log" | cut -c1-120)"
    else
      row "a (mlp)" "resume the $label run from its checkpoint" "$(verdict "$work/a_resume.log")" ""; failed=1
    fi
  done
}

# ---- b) NCCL from MPI, allreduce against known answers -------------------------------------------------
part_b() {
  say "b) tests/test_nccl_mpi, 1 rank"
  timed 20 "${MPIRUN[@]}" -np 1 "$B/tests/test_nccl_mpi" >"$work/b.log" 2>&1
  local rc=$? line
  logged "$work/b.log" test_nccl_mpi -np 1
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/b.log" | tail -1)
  if grep -q '^skip: ' "$work/b.log"; then
    row b "NCCL communicator of 1 from MPI: sum/average/weighted/broadcast of device buffers" \
      "skipped: $(grep -m1 '^skip: ' "$work/b.log" | cut -c7-)" "$line"
  elif [ $rc = 0 ]; then
    row b "NCCL communicator of 1 from MPI: sum/average/weighted/broadcast of device buffers" pass "$line"
  else
    row b "NCCL communicator of 1 from MPI" "**FAILED** (rc $rc)" "${line:-no summary line}"; failed=1
    detail "### b"$'\n'"$(tail_block "$work/b.log" 15)"
  fi
}

# ---- c) 2 ranks on one GPU (MPI backend) vs 1 rank with the doubled batch -------------------------------
part_c() {
  local dev; read -r -a dev <<<"$(gpu_or_stand_in)"
  say "c) 2 ranks x 64 events (${C_BACKEND[*]}) vs 1 rank x 128, ${dev[*]}, $C_STEPS steps"
  local half=("${TRAIN_MLP[@]}" --data "$mlp" --batch-events 64)
  if ! train c_1rank 1 "${TRAIN_MLP[@]}" --data "$mlp" "${dev[@]}" --max-steps $C_STEPS; then
    row c "2 ranks vs 1 rank, doubled batch" "$(verdict "$work/c_1rank.log" "the 1-rank run")" ""; failed=1; return
  fi
  if ! train c_2ranks 2 "${half[@]}" "${dev[@]}" "${C_BACKEND[@]}" --max-steps $C_STEPS; then
    row c "2 ranks on one device (${C_BACKEND[*]}) vs 1 rank, doubled batch" "$(verdict "$work/c_2ranks.log" "the 2-rank run")" ""
    failed=1; return
  fi
  local figs res
  figs=$(pyrun - "$work/c_1rank/model.pt" "$work/c_2ranks/model.pt" $C_TOL <<'PY'
import sys, torch
a = dict(torch.jit.load(sys.argv[1], map_location="cpu").named_parameters())
b = dict(torch.jit.load(sys.argv[2], map_location="cpu").named_parameters())
tol = float(sys.argv[3])
if set(a) != set(b):
    print("FAIL the two models have different parameters"); sys.exit()
d = max(float((a[k] - b[k]).abs().max()) for k in a)
print("%s largest parameter difference %.2e over %d tensors (%d values)" % ("pass" if d <= tol else "FAIL", d, len(a),
      sum(v.numel() for v in a.values())))
PY
)
  res=${figs%% *}; figs=${figs#* }
  [ "$res" = pass ] || { res="**FAILED**"; failed=1; }
  if [ $nogpu = 0 ] && ! { grep -q "^device: cuda:0 on rank 0 " "$work/c_2ranks.log" &&
                           grep -q "^rank 1/2 on .*GPU 0 of 1.*backend MPI\$" "$work/c_2ranks.log"; }; then
    res="**FAILED**"; failed=1; figs="not both ranks on GPU 0 with the MPI backend; $figs"
  fi
  row c "2 ranks x 64 on one device (${dev[*]} ${C_BACKEND[*]}) vs 1 rank x 128, MLP, $C_STEPS steps: parameters within $C_TOL" "$res" "$figs"
  [ $nogpu = 0 ] || return 0
  # the default backend would make the two ranks one NCCL communicator on one GPU: refused
  say "c) 2 ranks on one GPU with the default backend: the refusal"
  train c_shared 2 "${half[@]}" "${dev[@]}" --max-steps 1
  local w; w=$(grep -m1 'both use GPU' "$work/c_shared.log" | sed 's/^djct_train: //' | cut -c1-240)
  if grep -q 'ranks 0 and 1 both use GPU GPU-[0-9a-f-]* on .*--backend mpi' <<<"$w"; then
    row c "2 ranks on one GPU, default backend: refused before NCCL starts" pass "$w"
  else
    row c "2 ranks on one GPU, default backend: refused before NCCL starts" "**FAILED**: $(why "$work/c_shared.log")" ""; failed=1
  fi
}

# ---- d) events/s: djct vs plain PyTorch eager, same model, batch, device ---------------------------------
part_d() {
  local dev=cuda; [ $nogpu = 1 ] && dev=cpu
  say "d) djct vs torch eager on $dev, MLP, batch 128, $D_STEPS steps ($D_WARMUP warm-up)"
  train d_djct 1 "${TRAIN_MLP[@]}" --data "$mlp" --device $dev --max-steps $D_STEPS
  local drc=$?
  timed 10 env LD_LIBRARY_PATH="$py_ldp" "$py" "$root/bench/torch_eager.py" --data "$mlp" --device $dev \
    --steps $D_STEPS --warmup $D_WARMUP --batch 128 >"$work/d_eager.log" 2>&1
  local rc=$?
  logged "$work/d_eager.log" torch_eager.py --device $dev
  if [ $rc -ne 0 ]; then
    row d "events/s, djct vs PyTorch eager ($dev)" "**FAILED**: torch_eager.py: $(tail -1 "$work/d_eager.log" | cut -c1-200)" ""; failed=1; return
  fi
  if [ $drc -ne 0 ]; then
    row d "events/s, djct vs PyTorch eager ($dev)" "$(verdict "$work/d_djct.log" djct)" \
      "eager $(tail -1 "$work/d_eager.log" | pyrun -c 'import json, sys; print("%.0f" % json.loads(sys.stdin.read())["events_per_s"])') events/s"
    failed=1; return
  fi
  local figs
  figs=$(pyrun - "$(history d_djct)" "$work/d_eager.log" $D_WARMUP 128 <<'PY'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "t_step" in r]
w, batch = int(sys.argv[3]), int(sys.argv[4])
first, last = rows[w - 1], rows[-1]
djct = batch * (last["global_step"] - first["global_step"]) / (last["_runtime"] - first["_runtime"])
eager = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])["events_per_s"]
print("djct %.0f events/s, eager %.0f events/s: djct/eager = %.2f" % (djct, eager, djct / eager))
PY
)
  row d "steady-state events/s, 1 process on $dev, MLP 784-256-256-10, batch 128, Adam" \
    "measured$([ $nogpu = 1 ] && echo ' (CPU: not the GPU figure)')" "$figs"
}

# ---- e) NCCL busbw: djct's bucketed average vs raw ncclAllReduce ----------------------------------------
part_e() {
  say "e) bench/nccl_allreduce, 1 rank"
  timed 5 "${MPIRUN[@]}" -np 1 "$B/bench/nccl_allreduce" "${E_ARGS[@]}" >"$work/e.log" 2>&1
  local rc=$?
  logged "$work/e.log" nccl_allreduce -np 1 "${E_ARGS[@]}"
  if grep -q '^skip: ' "$work/e.log"; then
    row e "NCCL busbw, djct average vs raw ncclAllReduce" "skipped: $(grep -m1 '^skip: ' "$work/e.log" | cut -c7-)" ""
  elif [ $rc = 0 ] && grep -q '^{"ranks"' "$work/e.log"; then
    local figs
    figs=$(grep '^{"ranks"' "$work/e.log" | pyrun -c 'import json, sys
d = json.loads(sys.stdin.read())
print("; ".join("%d MiB: algbw djct %.0f / raw %.0f GB/s (%.2fx)" % (r["bytes"] >> 20, r["djct_algbw"], r["raw_algbw"],
      r["djct_algbw"] / r["raw_algbw"]) for r in d["rows"]) + "; busbw factor 2(n-1)/n = 0 with %d rank" % d["ranks"])')
    row e "NCCL, 1 rank: djct bucketed average vs raw ncclAllReduce of the same bytes" measured "$figs"
    detail "### e"$'\n'"$(grep '^|' "$work/e.log")"
  else
    row e "NCCL busbw, djct average vs raw ncclAllReduce" "**FAILED** (rc $rc)" ""; failed=1
    detail "### e"$'\n'"$(tail_block "$work/e.log" 15)"
  fi
}

for p in a b c d e; do
  [[ $only == *$p* ]] || continue
  if [ "$(left)" -lt 30 ]; then
    row "$p" "" "skipped: out of time (--time-limit $limit)" ""; failed=1; continue
  fi
  part=$p
  "part_$p"
  part=""
  write_md
done
say "summary: $out"
exit $failed
