#!/usr/bin/env bash
# Detect djct's dependencies once and write build/config.mk (make variables) plus a summary.
# Called by the Makefile when config.mk is missing or a knob changed; `make config` re-runs it.
# Usage: scripts/configure.sh OUT_MK  (knobs come from the environment: WITH_TORCH, WITH_CUDA,
#        CUDA_HOME, NCCL_HOME, LIBTORCH, TORCH_PYTHON, INSTALL_DEPS, MPICC, CC, CXX)
# libtorch is Debian's libtorch-dev unless LIBTORCH=DIR (an unpacked libtorch zip: include/, lib/,
# share/cmake/Torch) or TORCH_PYTHON=PY (the torch package that interpreter imports) says otherwise.
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)

bad() { echo "configure: $1" >&2; exit 2; }

WITH_TORCH=${WITH_TORCH:-auto}
WITH_CUDA=${WITH_CUDA:-auto}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NCCL_HOME=${NCCL_HOME:-}
LIBTORCH=${LIBTORCH:-}
TORCH_PYTHON=${TORCH_PYTHON:-}
INSTALL_DEPS=${INSTALL_DEPS:-1}
MPICC=${MPICC:-mpicc}
CXX=${CXX:-g++}

case $WITH_TORCH in auto|0|1) ;; *) bad "WITH_TORCH=$WITH_TORCH is not allowed; use auto, 0 or 1";; esac
case $WITH_CUDA in auto|0|1) ;; *) bad "WITH_CUDA=$WITH_CUDA is not allowed; use auto, 0 or 1";; esac
case $INSTALL_DEPS in 0|1) ;; *) bad "INSTALL_DEPS=$INSTALL_DEPS is not allowed; use 1 or 0";; esac

# A fresh machine needs nothing by hand: install what is missing (or say how, when not root).
# INSTALL_DEPS=0: the libraries come from elsewhere (modules, a private prefix); only detect them.
if [ "$INSTALL_DEPS" = 1 ] && ! "$here/install-deps.sh" --check 2>/dev/null; then
  "$here/install-deps.sh" || { echo "configure: dependencies missing; see the message above" \
    "(INSTALL_DEPS=0 when they come from elsewhere)" >&2; exit 1; }
fi

tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT

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

# ---- libtorch (optional unless WITH_TORCH=1, LIBTORCH or TORCH_PYTHON) ----------------------------
# Each source fills: t_hdr (the folder holding torch/, ATen/, c10/), t_inc (compiler flags for the
# headers), t_lib (the folder with libtorch*.so; "" = the linker's default path), t_ver, t_where
# (for the summary), t_abi / t_abi_from (the C++ ABI the libtorch declares, and who says so; ""
# when it declares none), t_cuda (its CUDA version, "" = CPU-only, "yes" = version unknown).
[ -n "$LIBTORCH" ] && [ -n "$TORCH_PYTHON" ] && \
  bad "LIBTORCH=$LIBTORCH and TORCH_PYTHON=$TORCH_PYTHON both given; set only one of them"
[ "$WITH_TORCH" = 0 ] && [ -n "$LIBTORCH$TORCH_PYTHON" ] && \
  bad "WITH_TORCH=0 contradicts ${LIBTORCH:+LIBTORCH=$LIBTORCH}${TORCH_PYTHON:+TORCH_PYTHON=$TORCH_PYTHON}; drop one of them"

t_hdr="" t_inc="" t_lib="" t_ver="" t_where="" t_abi="" t_abi_from="" t_cuda="" torch_site=""

# the checks every non-Debian libtorch passes: headers and the three core libraries
check_layout() { # knob-text root-dir
  local knob=$1 dir=$2 have
  [ -f "$dir/include/torch/script.h" ] && [ -f "$dir/include/torch/csrc/api/include/torch/version.h" ] || \
    bad "$knob: $dir has no include/torch/script.h and include/torch/csrc/api/include/torch/version.h; not a libtorch (expected the layout of PyTorch's libtorch zip: include/, lib/, share/cmake/Torch)"
  for l in torch_cpu torch c10; do
    if ! ls "$dir/lib/lib$l.so"* >/dev/null 2>&1; then
      have=$(cd "$dir/lib" 2>/dev/null && ls -d libtorch*.so libc10*.so 2>/dev/null | paste -sd' ' || true)
      bad "$knob: $dir/lib has no lib$l.so (found: ${have:-nothing}); an incomplete libtorch: unpack the zip or reinstall the package again"
    fi
  done
}

# "2.11.0" from torch/version.h (libtorch >= 1.8 writes TORCH_VERSION_MAJOR/MINOR/PATCH)
header_version() { # version.h
  sed -n 's/^#define TORCH_VERSION_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' "$1" | paste -sd.
}

if [ "$WITH_TORCH" != 0 ] && [ -n "$LIBTORCH" ]; then
  [ -d "$LIBTORCH" ] || bad "LIBTORCH=$LIBTORCH: no such directory; point it at the unpacked libtorch zip (the folder holding include/ and lib/)"
  dir=$(cd "$LIBTORCH" && pwd)
  check_layout "LIBTORCH=$LIBTORCH" "$dir"
  t_hdr=$dir/include
  t_inc="-isystem $dir/include -isystem $dir/include/torch/csrc/api/include"
  t_lib=$dir/lib
  t_where="$dir (LIBTORCH)"
  # the zip's build-version says e.g. 2.11.0+cu130; older zips lack it
  if [ -f "$dir/build-version" ]; then t_ver=$(head -1 "$dir/build-version"); fi
  [ -n "$t_ver" ] || t_ver=$(header_version "$dir/include/torch/csrc/api/include/torch/version.h")
  cfg=$dir/share/cmake/Torch/TorchConfig.cmake
  if [ -f "$cfg" ]; then
    t_abi=$(grep -o '_GLIBCXX_USE_CXX11_ABI=[01]' "$cfg" | head -1 | cut -d= -f2 || true)
    t_abi_from="share/cmake/Torch/TorchConfig.cmake"
  fi
  if ls "$dir/lib/libtorch_cuda.so"* >/dev/null 2>&1; then
    t_cuda=yes
    case $t_ver in *+cu[0-9]*) cu=${t_ver##*+cu}; t_cuda="${cu%?}.${cu: -1}";; esac
  fi
elif [ "$WITH_TORCH" != 0 ] && [ -n "$TORCH_PYTHON" ]; then
  py=$(command -v "$TORCH_PYTHON" || true)
  [ -n "$py" ] && [ -x "$py" ] || bad "TORCH_PYTHON=$TORCH_PYTHON: no such program; give the python3 whose torch to build against, e.g. TORCH_PYTHON=\$(which python3) after module load"
  info=$("$py" -c '
import os, sys
try:
    import torch
except BaseException as e:
    msg = str(e).splitlines()
    print("ERR " + type(e).__name__ + (": " + msg[0] if msg else ""))
    sys.exit(0)
print("DIR " + os.path.dirname(os.path.abspath(torch.__file__)))
print("VER " + torch.__version__)
print("ABI " + str(int(bool(torch._C._GLIBCXX_USE_CXX11_ABI))))
print("CUDA " + (torch.version.cuda or ""))
' 2>/dev/null || true)
  err=$(sed -n 's/^ERR //p' <<<"$info")
  [ -z "$err" ] || bad "TORCH_PYTHON=$py cannot import torch ($err); use the python3 of your PyTorch installation (after module load or conda activate)"
  dir=$(sed -n 's/^DIR //p' <<<"$info")
  [ -n "$dir" ] || bad "TORCH_PYTHON=$py did not answer where its torch is (run: $py -c 'import torch')"
  check_layout "TORCH_PYTHON=$py (torch at $dir)" "$dir"
  t_hdr=$dir/include
  t_inc="-isystem $dir/include -isystem $dir/include/torch/csrc/api/include"
  t_lib=$dir/lib
  t_ver=$(sed -n 's/^VER //p' <<<"$info")
  t_where="$dir (TORCH_PYTHON=$py)"
  t_abi=$(sed -n 's/^ABI //p' <<<"$info")
  t_abi_from="torch._C._GLIBCXX_USE_CXX11_ABI"
  t_cuda=$(sed -n 's/^CUDA //p' <<<"$info")
  if [ -n "$t_cuda" ] && ! ls "$dir/lib/libtorch_cuda.so"* >/dev/null 2>&1; then
    bad "TORCH_PYTHON=$py: torch.version.cuda is $t_cuda but $dir/lib has no libtorch_cuda.so; reinstall torch"
  fi
  torch_site=$(dirname "$dir")
  # pip's torch finds its CUDA libraries (site-packages/nvidia/*/lib) by its own run path; the
  # linker must find them too to check libtorch_cuda's symbols
  for d in "$torch_site"/nvidia/*/lib; do [ -d "$d" ] && t_rpl="${t_rpl:-} -Wl,-rpath-link,$d"; done
elif [ "$WITH_TORCH" != 0 ]; then
  # the default: Debian's libtorch-dev, exactly as before the LIBTORCH/TORCH_PYTHON knobs
  if [ -f /usr/include/torch/script.h ] && ls /usr/lib/x86_64-linux-gnu/libtorch_cpu.so* >/dev/null 2>&1 \
     || [ -f /usr/lib/libtorch_cpu.so ]; then
    t_ver=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null | sed 's/[+-].*//' || true)
    t_ver=${t_ver:-$(header_version /usr/include/torch/csrc/api/include/torch/version.h)}
    t_hdr=/usr/include
    t_inc="-I/usr/include/torch/csrc/api/include"
    t_where="/usr/lib/x86_64-linux-gnu (Debian libtorch-dev)"
    t_abi=$(grep -ho '_GLIBCXX_USE_CXX11_ABI=[01]' /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake 2>/dev/null \
            | head -1 | cut -d= -f2 || true)
    t_abi_from="/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake"
    if ls /usr/lib/x86_64-linux-gnu/libtorch_cuda.so* >/dev/null 2>&1; then t_cuda=yes; fi
  elif [ "$WITH_TORCH" = 1 ]; then
    bad "WITH_TORCH=1 but libtorch was not found; install libtorch-dev (scripts/install-deps.sh), or set LIBTORCH=DIR or TORCH_PYTHON=PY"
  fi
fi

torch=0
if [ -n "$t_hdr" ]; then
  torch=1
  # libtorch 2.13 and later refuse C++17 (an #error in ATen.h / torch/all.h)
  cxxstd=c++17
  if grep -qs 'C++20 or later compatible compiler is required' "$t_hdr/ATen/ATen.h" \
       "$t_hdr/torch/csrc/api/include/torch/all.h"; then
    cxxstd=c++20
  fi
  # The C++ ABI: what the libtorch declares must be what its libraries were built with, or the
  # bridge fails to link on std::string symbols. A tiny program calling c10's std::string entry
  # settles it: it links with exactly one value of _GLIBCXX_USE_CXX11_ABI.
  printf '%s\n' '#include <c10/util/Exception.h>' \
    'int main(int argc, char **argv) { if (argc > 1000) TORCH_CHECK(false, std::string(argv[0])); return 0; }' \
    > "$tmpd/abi.cpp"
  t_ldir=${t_lib:+-L$t_lib -Wl,-rpath,$t_lib}
  abi_links() { # 0|1
    # shellcheck disable=SC2086
    "$CXX" -std=$cxxstd $t_inc -D_GLIBCXX_USE_CXX11_ABI="$1" -c "$tmpd/abi.cpp" -o "$tmpd/abi$1.o" \
      >"$tmpd/abi$1.log" 2>&1 || { cc_failed=1; return 1; }
    # shellcheck disable=SC2086
    "$CXX" -o "$tmpd/abi$1" "$tmpd/abi$1.o" $t_ldir -lc10 >>"$tmpd/abi$1.log" 2>&1
  }
  first_error() { grep -m1 -E 'error|undefined reference' "$1" | sed 's/^[^ ]*: //' | cut -c1-200 || true; }
  cdef=$(printf '#include <string>\n' | "$CXX" -x c++ -std=$cxxstd -E -dM - 2>/dev/null \
         | sed -n 's/^#define _GLIBCXX_USE_CXX11_ABI //p' || true)
  cdef=${cdef:-1}
  want=${t_abi:-$cdef}
  other=$((1 - want))
  cc_failed=0
  if abi_links "$want"; then
    abi=$want
  elif [ $cc_failed = 1 ]; then
    bad "libtorch at $t_where: a test program including c10/util/Exception.h does not compile with $CXX -std=$cxxstd: $(first_error "$tmpd/abi$want.log")"
  elif abi_links "$other"; then
    if [ -n "$t_abi" ]; then
      bad "libtorch at $t_where: $t_abi_from says _GLIBCXX_USE_CXX11_ABI=$t_abi but its libc10.so links only with =$other; they disagree: use a libtorch whose configuration and libraries come from the same build"
    fi
    abi=$other
  else
    bad "libtorch at $t_where: a test program does not link against its libc10.so with $CXX (tried _GLIBCXX_USE_CXX11_ABI=0 and 1): $(first_error "$tmpd/abi$want.log"); use a Linux x86-64 libtorch built for a compatible C++ library"
  fi
  abi_text="C++11 ABI (_GLIBCXX_USE_CXX11_ABI=1)"
  [ "$abi" = 1 ] || abi_text="pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0; $CXX defaults to $cdef)"
  mk+=("TORCH_CXXSTD := $cxxstd")
  # libtorch's CUDA streams (c10/cuda) for the device-resident training step: a libtorch with
  # CUDA ships these headers; the bridge uses them only together with djct's own CUDA code
  tcuda=""
  if [ -n "$t_cuda" ] && [ -f "$t_hdr/c10/cuda/CUDAStream.h" ] && [ -f "$t_hdr/c10/cuda/impl/cuda_cmake_macros.h" ]; then
    tcuda=" -DDJCT_TORCH_CUDA=1"
  fi
  mk+=("TORCH_CXXFLAGS := $t_inc -D_GLIBCXX_USE_CXX11_ABI=$abi$tcuda")
  # torch_cuda registers CUDA by static initialisers only, so it must be linked --no-as-needed
  # (STYLE.md); the CPU libraries go --as-needed so programs that use no model do not load libtorch
  tl="-ltorch -ltorch_cpu -lc10"
  if [ -n "$t_cuda" ]; then
    cl="-ltorch_cuda"
    if [ -n "$t_lib" ] && ls "$t_lib/libc10_cuda.so"* >/dev/null 2>&1; then cl="$cl -lc10_cuda"; fi
    tl="-Wl,--no-as-needed $cl -Wl,--as-needed $tl"
  fi
  # the libtorch's folder goes into the programs' run path: nothing needs LD_LIBRARY_PATH
  mk+=("TORCH_LIBS := ${t_ldir:+$t_ldir }$tl${t_rpl:-}")
  case $t_cuda in "") cuda_text="CPU only";; yes) cuda_text="with CUDA";; *) cuda_text="CUDA $t_cuda";; esac
  [ -z "$t_cuda" ] || [ -n "$tcuda" ] || cuda_text="$cuda_text (no c10/cuda headers: models cannot train on the GPU)"
  summary+=("✓ libtorch ${t_ver:-found} at $t_where, $abi_text, $cuda_text")
elif [ "$WITH_TORCH" = 0 ]; then
  summary+=("✗ libtorch: disabled (WITH_TORCH=0)")
else
  summary+=("✗ libtorch: not found, models disabled")
fi
mk+=("HAVE_TORCH := $torch")

# ---- CUDA + NCCL: compiled and linked whenever nvcc, nccl.h, libnccl and libcudart are there -------
# NCCL comes from NCCL_HOME (the pip package nvidia-nccl-cu13 is site-packages/nvidia/nccl, its
# library only libnccl.so.2), else from beside TORCH_PYTHON's torch, else from CUDA_HOME.
cuda=0
if [ -n "$NCCL_HOME" ]; then
  [ -f "$NCCL_HOME/include/nccl.h" ] && ls "$NCCL_HOME"/lib*/libnccl.so* >/dev/null 2>&1 || \
    bad "NCCL_HOME=$NCCL_HOME has no include/nccl.h and lib/libnccl.so*; point it at the folder holding both (pip's nvidia-nccl-cu13: site-packages/nvidia/nccl)"
  nh=$NCCL_HOME
elif [ -n "$torch_site" ] && [ -f "$torch_site/nvidia/nccl/include/nccl.h" ]; then
  nh=$torch_site/nvidia/nccl
else
  nh=$CUDA_HOME
fi
if [ "$WITH_CUDA" != 0 ]; then
  nccl_lib=$(ls "$nh"/lib64/libnccl.so* "$nh"/lib/libnccl.so* 2>/dev/null | head -1 || true)
  cudart_lib=$(ls "$CUDA_HOME"/lib64/libcudart.so* "$CUDA_HOME"/lib/libcudart.so* 2>/dev/null | head -1 || true)
  if [ -x "$CUDA_HOME/bin/nvcc" ] && [ -f "$nh/include/nccl.h" ] && [ -n "$nccl_lib" ] && [ -n "$cudart_lib" ]; then
    cuda=1
    cv=$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
    nv=$(sed -n 's/^#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' "$nh/include/nccl.h" | paste -sd.)
    ndir=$(dirname "$nccl_lib")
    cdir=$(dirname "$cudart_lib")
    nflag=-lnccl
    [ "$(basename "$nccl_lib")" = libnccl.so ] || nflag="-l:$(basename "$nccl_lib")"
    from=""
    [ "$nh" = "$CUDA_HOME" ] || from=" from $nh"
    summary+=("✓ CUDA $cv / NCCL $nv$from: GPU code compiled (runs only where a GPU exists)")
    mk+=("CUDA_CFLAGS := -I$CUDA_HOME/include$([ "$nh" = "$CUDA_HOME" ] || echo " -I$nh/include") -DDJCT_HAVE_CUDA=1")
    if [ "$ndir" = "$cdir" ]; then
      mk+=("CUDA_LIBS := -L$ndir -Wl,-rpath,$ndir $nflag -lcudart")
    else
      mk+=("CUDA_LIBS := -L$ndir -Wl,-rpath,$ndir $nflag -L$cdir -Wl,-rpath,$cdir -lcudart")
    fi
    case $t_cuda in
      ""|yes) ;;
      *) [ "${t_cuda%%.*}" = "${cv%%.*}" ] || summary+=("! libtorch is built for CUDA $t_cuda, CUDA_HOME=$CUDA_HOME is $cv: two CUDA runtimes in one process; point CUDA_HOME at a CUDA ${t_cuda%%.*} toolkit");;
    esac
  elif [ "$WITH_CUDA" = 1 ]; then
    bad "WITH_CUDA=1 but $CUDA_HOME lacks bin/nvcc or lib64/libcudart.so, or $nh lacks include/nccl.h or lib/libnccl.so; set CUDA_HOME (and NCCL_HOME)"
  else
    summary+=("✗ CUDA/NCCL: not found under $CUDA_HOME${NCCL_HOME:+ and $NCCL_HOME} (nvcc, nccl.h, libnccl, libcudart), CPU-only")
  fi
else
  summary+=("✗ CUDA/NCCL: disabled (WITH_CUDA=0), CPU-only")
fi
mk+=("HAVE_CUDA := $cuda")
[ -z "$t_cuda" ] || [ $cuda = 1 ] || summary+=("! libtorch has CUDA but djct's CUDA/NCCL code is off (see the line above): no NCCL backend and no training on the GPU in this build")

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
