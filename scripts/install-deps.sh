#!/usr/bin/env bash
# Install every Debian package djct needs to build, test and run its examples.
# Idempotent: when everything is present it only asks dpkg (well under a second).
# Usage: scripts/install-deps.sh [--check]   (--check: report what is missing, exit 1 if any)
set -euo pipefail

# One list, grouped by what needs it. Keep in sync with docs/dependencies (README "Dependencies").
PACKAGES=(
  # build
  build-essential pkg-config zlib1g-dev
  # MPI
  openmpi-bin libopenmpi-dev
  # data layer
  libhdf5-dev hdf5-tools
  # logging / wandb
  libcurl4-openssl-dev libcjson-dev
  # HTTPS test certificates (tests/test_log.c)
  openssl
  # config files
  libinih-dev
  # libtorch bridge + an optimized BLAS (Debian's reference BLAS is ~13x slower)
  libtorch-dev libopenblas0-pthread
  # Python helper tests, h5py interop, DDP baseline
  python3-torch python3-numpy python3-h5py
  # examples
  dataset-fashion-mnist
  # sanitizers and fuzzers
  clang libclang-rt-14-dev
  # SLURM tests and scaling plots
  munge slurmctld slurmd slurm-client iproute2 util-linux gnuplot-nox
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  [ "${1:-}" = "--check" ] || echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "${1:-}" = "--check" ]; then
  echo "install-deps: missing: ${missing[*]}" >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root: sudo $0   (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian images often forbid service starts during install; daemons are started by our scripts.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
