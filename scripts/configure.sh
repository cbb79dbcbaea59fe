#!/usr/bin/env bash
# Detect djct's dependencies once and write build/config.mk (make variables) plus a summary.
# Called by the Makefile when config.mk is missing or a knob changed; `make config` re-runs it.
# Usage: scripts/configure.sh OUT_MK  (knobs come from the environment: WITH_TORCH, WITH_CUDA,
#        CUDA_HOME, MPICC, CC, CXX)
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)

# A fresh machine needs nothing by hand: install what is missing (or say how, when not root).
if ! "$here/install-deps.sh" --check 2>/dev/null; then
  "$here/install-deps.sh" || { echo "configure: dependencies missing; see the message above" >&2; exit 1; }
fi

WITH_TORCH=${WITH_TORCH:-auto}
WITH_CUDA=${WITH_CUDA:-auto}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
MPICC=${MPICC:-mpicc}
CXX=${CXX:-g++}

bad() { echo "configure: $1" >&2; exit 2; }
case $WITH_TORCH in auto|0|1) ;; *) bad "WITH_TORCH=$WITH_TORCH is not allowed; use auto, 0 or 1";; esac
case $WITH_CUDA in auto|0|1) ;; *) bad "WITH_CUDA=$WITH_CUDA is not allowed; use auto, 0 or 1";; esac

summary=()
mk=()
req() { # name pkgconfig-module
  if pkg-config --exists "$2"; then
    summary+=("✓ $1 $(pkg-config --modversion "$2")")
  else
    bad "$1 not found (pkg-config $2); run scripts/install-deps.sh as root"
  fi
}

# MPI (required): flags from the wrapper compiler, so any MPI with mpicc works.
command -v "$MPICC" >/dev/null || bad "MPICC=$MPICC not found; install openmpi-bin/libopenmpi-dev or set MPICC"
mk+=("MPI_CFLAGS := $($MPICC --showme:compile)")
mk+=("MPI_LIBS := $($MPICC --showme:link)")
summary+=("✓ MPI $($MPICC --showme:version 2>&1 | head -1 | sed 's/.*Open MPI/Open MPI/')")

req HDF5 hdf5
mk+=("HDF5_CFLAGS := $(pkg-config --cflags hdf5)" "HDF5_LIBS := $(pkg-config --libs hdf5)")
req libcurl libcurl
req cJSON libcjson
req inih inih
req zlib zlib
mk+=("DEP_CFLAGS := $(pkg-config --cflags libcurl libcjson inih zlib)")
mk+=("DEP_LIBS := $(pkg-config --libs libcurl libcjson inih zlib) -lpthread -lm")

# libtorch (optional unless WITH_TORCH=1)
torch=0
TORCH_INC=/usr/include/torch/csrc/api/include
if [ "$WITH_TORCH" != 0 ]; then
  if [ -f /usr/include/torch/script.h ] && ls /usr/lib/x86_64-linux-gnu/libtorch_cpu.so* >/dev/null 2>&1 \
     || [ -f /usr/lib/libtorch_cpu.so ]; then
    tv=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null | sed 's/[+-].*//')
    torch=1
    summary+=("✓ libtorch ${tv:-found}")
    # the ABI libtorch was built with; a mismatch gives link errors on std::string symbols
    abi=$(printf '#include <torch/csrc/api/include/torch/version.h>\n' >/dev/null; \
          grep -ho '_GLIBCXX_USE_CXX11_ABI=[01]' /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake 2>/dev/null | head -1)
    mk+=("TORCH_CXXFLAGS := -I$TORCH_INC -D${abi:-_GLIBCXX_USE_CXX11_ABI=1}")
    # torch_cuda registers CUDA by static initialisers only, so it must be linked --no-as-needed
    # (STYLE.md); the CPU libraries go --as-needed so programs that use no model do not load libtorch
    tl="-ltorch -ltorch_cpu -lc10"
    if ls /usr/lib/x86_64-linux-gnu/libtorch_cuda.so* >/dev/null 2>&1; then
      tl="-Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed $tl"
    fi
    mk+=("TORCH_LIBS := $tl")
  elif [ "$WITH_TORCH" = 1 ]; then
    bad "WITH_TORCH=1 but libtorch was not found; install libtorch-dev (scripts/install-deps.sh)"
  else
    summary+=("✗ libtorch: not found, models disabled")
  fi
else
  summary+=("✗ libtorch: disabled (WITH_TORCH=0)")
fi
mk+=("HAVE_TORCH := $torch")

# CUDA + NCCL: compiled and linked whenever nvcc, nccl.h and libnccl are there.
cuda=0
if [ "$WITH_CUDA" != 0 ]; then
  nccl_lib=$(ls "$CUDA_HOME"/lib64/libnccl.so* "$CUDA_HOME"/lib/libnccl.so* 2>/dev/null | head -1 || true)
  if [ -x "$CUDA_HOME/bin/nvcc" ] && [ -f "$CUDA_HOME/include/nccl.h" ] && [ -n "$nccl_lib" ]; then
    cuda=1
    cv=$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
    nv=$(sed -n 's/^#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' "$CUDA_HOME/include/nccl.h" | paste -sd.)
    summary+=("✓ CUDA $cv / NCCL $nv: GPU code compiled (runs only where a GPU exists)")
    libdir=$(dirname "$nccl_lib")
    mk+=("CUDA_CFLAGS := -I$CUDA_HOME/include -DDJCT_HAVE_CUDA=1")
    mk+=("CUDA_LIBS := -L$libdir -Wl,-rpath,$libdir -lnccl -lcudart")
  elif [ "$WITH_CUDA" = 1 ]; then
    bad "WITH_CUDA=1 but $CUDA_HOME lacks bin/nvcc, include/nccl.h or lib64/libnccl.so; set CUDA_HOME"
  else
    summary+=("✗ CUDA/NCCL: not found under $CUDA_HOME (nvcc, nccl.h, libnccl), CPU-only")
  fi
else
  summary+=("✗ CUDA/NCCL: disabled (WITH_CUDA=0), CPU-only")
fi
mk+=("HAVE_CUDA := $cuda")

# libFuzzer (clang) for the fuzz targets
if command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char*d,long n){return 0;}' \
     | clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
  mk+=("HAVE_FUZZER := 1"); summary+=("✓ libFuzzer (clang)")
else
  mk+=("HAVE_FUZZER := 0"); summary+=("✗ libFuzzer: clang -fsanitize=fuzzer unavailable, fuzz targets skipped")
fi

mkdir -p "$(dirname "$out")"
{
  echo "# generated by scripts/configure.sh; delete to re-detect"
  printf '%s\n' "${mk[@]}"
  echo "CONFIG_SUMMARY := $(printf '%s; ' "${summary[@]}")"
} > "$out.tmp"
mv "$out.tmp" "$out"
printf 'djct configuration:\n'
printf '  %s\n' "${summary[@]}"
