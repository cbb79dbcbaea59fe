#!/usr/bin/env bash
# The libtorch paths of scripts/configure.sh, on libtorch folders laid out like PyTorch's libtorch
# zip (include/, lib/, share/cmake/Torch) made of Debian's files in a temporary directory: a good one
# (summary, flags, run path; one real build of djct_train that links and trains a model without
# LD_LIBRARY_PATH), one whose TorchConfig.cmake declares the other C++ ABI, one without
# libtorch_cpu, TORCH_PYTHON=/usr/bin/python3, a TORCH_PYTHON whose torch cannot be imported, and
# NCCL from a folder laid out like pip's nvidia-nccl-cu13 (include/nccl.h, lib/libnccl.so.2 only);
# a zip with CUDA (libtorch_cuda, c10/cuda headers) switches on the bridge's CUDA stream code,
# which is compiled here with -Werror against Debian's c10/cuda headers.
set -u
pass=0; fail=0; skip=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
skipped() { skip=$((skip+1)); echo "skip: $*"; }
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
unset LD_LIBRARY_PATH LIBTORCH TORCH_PYTHON NCCL_HOME
unset MAKEFLAGS MFLAGS MAKELEVEL   # the build below is a make of its own, not a job of the suite's
export INSTALL_DEPS=0
deb=/usr/lib/x86_64-linux-gnu

if [ ! -f /usr/include/torch/script.h ] || ! ls $deb/libtorch_cpu.so* >/dev/null 2>&1; then
  skipped "Debian's libtorch-dev is not installed: no libtorch to lay out"
  echo "$pass passed, $fail failed, $skip skipped"; exit 0
fi

# a libtorch laid out like the zip, made of symlinks to Debian's files (the versioned names too, so
# the loader can find the libraries' sonames through the run path)
make_zip() { # dir
  mkdir -p "$1/include" "$1/lib" "$1/share/cmake/Torch"
  for d in ATen c10 caffe2 torch; do [ -e "/usr/include/$d" ] && ln -s "/usr/include/$d" "$1/include/$d"; done
  for f in $deb/libtorch.so* $deb/libtorch_cpu.so* $deb/libc10.so* $deb/libtorch_global_deps.so*; do
    ln -s "$f" "$1/lib/"
  done
  cp $deb/cmake/Torch/TorchConfig.cmake "$1/share/cmake/Torch/"
}
configure() { # out-prefix env-assignments...: run configure alone, keep stdout/stderr/rc
  local o=$1; shift
  env "$@" "$root/scripts/configure.sh" "$o.mk" >"$o.out" 2>"$o.err"; echo $? >"$o.rc"
}
one_error() { # out-prefix pattern: exit 2 and exactly one line on stderr, which matches
  [ "$(cat "$1.rc")" = 2 ] && [ "$(grep -c . "$1.err")" = 1 ] && grep -q -- "$2" "$1.err" \
    || { echo "  rc $(cat "$1.rc"), stderr: $(cat "$1.err")" >&2; return 1; }
}

z=$tmp/libtorch; make_zip "$z"
# NCCL laid out like pip's nvidia-nccl-cu13, from the CUDA toolkit's copy
nccl=""
cuda=${CUDA_HOME:-/usr/local/cuda}
nccl_so=$(ls "$cuda"/lib*/libnccl.so.2 2>/dev/null | head -1)
if [ -f "$cuda/include/nccl.h" ] && [ -n "$nccl_so" ] && [ -x "$cuda/bin/nvcc" ]; then
  nccl=$tmp/nvidia/nccl; mkdir -p "$nccl/include" "$nccl/lib"
  ln -s "$cuda/include/nccl.h" "$nccl/include/"
  ln -s "$(readlink -f "$nccl_so")" "$nccl/lib/libnccl.so.2"
fi

# ---- the good zip: summary, flags, run paths -------------------------------------------------------
configure "$tmp/good" LIBTORCH="$z" ${nccl:+NCCL_HOME=$nccl}
ok test "$(cat "$tmp/good.rc")" = 0 || cat "$tmp/good.err" >&2
ver=$(sed -n 's/^#define TORCH_VERSION_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' \
      /usr/include/torch/csrc/api/include/torch/version.h | paste -sd.)
ok grep -qx "  ✓ libtorch $ver at $z (LIBTORCH), C++11 ABI (_GLIBCXX_USE_CXX11_ABI=1), CPU only" "$tmp/good.out"
ok grep -qx "TORCH_LIBS := -L$z/lib -Wl,-rpath,$z/lib -ltorch -ltorch_cpu -lc10" "$tmp/good.mk"
ok grep -qx "TORCH_CXXFLAGS := -isystem $z/include -isystem $z/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1" "$tmp/good.mk"
if [ -n "$nccl" ]; then
  ok grep -q "^CUDA_LIBS := -L$nccl/lib -Wl,-rpath,$nccl/lib -l:libnccl.so.2 .*-lcudart$" "$tmp/good.mk"
  ok grep -q "CUDA .* / NCCL [0-9.]* from $nccl: GPU code compiled" "$tmp/good.out"
else
  skipped "no nvcc and NCCL under $cuda: the pip-style NCCL_HOME is not tried"
fi

# a TorchConfig.cmake without the ABI line: the link test alone decides
z2=$tmp/noabi; make_zip "$z2"; sed -i '/_GLIBCXX_USE_CXX11_ABI/d' "$z2/share/cmake/Torch/TorchConfig.cmake"
configure "$tmp/noabi" LIBTORCH="$z2"
ok grep -q "TORCH_CXXFLAGS := .* -D_GLIBCXX_USE_CXX11_ABI=1$" "$tmp/noabi.mk"

# ---- a libtorch with CUDA: its c10/cuda headers switch on the bridge's stream code ------------------
# (Debian's libtorch is CPU-only; libtorch_cuda here is a name only, nothing links it, and the
# generated c10/cuda/impl/cuda_cmake_macros.h of a CUDA build is written by hand)
zc=$tmp/cudazip; make_zip "$zc"; ln -s "$(readlink -f $deb/libc10.so)" "$zc/lib/libtorch_cuda.so"
rm "$zc/include/c10"; mkdir -p "$zc/include/c10"
for e in /usr/include/c10/*; do [ "$(basename "$e")" = cuda ] || ln -s "$e" "$zc/include/c10/"; done
mkdir -p "$zc/include/c10/cuda/impl"
for e in /usr/include/c10/cuda/*; do [ -d "$e" ] || ln -s "$e" "$zc/include/c10/cuda/"; done
for e in /usr/include/c10/cuda/impl/*; do ln -s "$e" "$zc/include/c10/cuda/impl/"; done
echo '#define C10_CUDA_BUILD_SHARED_LIBS' >"$zc/include/c10/cuda/impl/cuda_cmake_macros.h"
echo "2.11.0+cu130" >"$zc/build-version"
configure "$tmp/cudazip" LIBTORCH="$zc"
ok grep -q "^TORCH_CXXFLAGS := .* -DDJCT_TORCH_CUDA=1$" "$tmp/cudazip.mk"
ok grep -q "✓ libtorch 2.11.0+cu130 at $zc (LIBTORCH), .*, CUDA 13.0$" "$tmp/cudazip.out"
ok grep -q "^TORCH_LIBS := .*-Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed" "$tmp/cudazip.mk"
# the same without the generated header: no stream code, and the summary says what that costs
rm "$zc/include/c10/cuda/impl/cuda_cmake_macros.h"
configure "$tmp/cudanohdr" LIBTORCH="$zc"
ok sh -c "! grep -q DJCT_TORCH_CUDA '$tmp/cudanohdr.mk'"
ok grep -q "CUDA 13.0 (no c10/cuda headers: models cannot train on the GPU)" "$tmp/cudanohdr.out"
echo '#define C10_CUDA_BUILD_SHARED_LIBS' >"$zc/include/c10/cuda/impl/cuda_cmake_macros.h"
# the bridge's device code as a CUDA libtorch build compiles it (stream, events, pinned staging),
# against libtorch 1.13's c10/cuda headers and this machine's CUDA: compiled, never run here
if grep -q "DJCT_HAVE_CUDA=1" "$tmp/cudazip.mk"; then
  flags=$(sed -n 's/^\(TORCH_CXXFLAGS\|CUDA_CFLAGS\|MPI_CFLAGS\) := //p' "$tmp/cudazip.mk" | paste -sd' ')
  # shellcheck disable=SC2086
  g++ -std=c++17 -fsyntax-only -Wall -Wextra -Wno-unused-parameter -Werror -I"$root/include" -I"$root/src" \
    -D_GNU_SOURCE -DDJCT_HAVE_TORCH=1 $flags "$root/src/torch/device.cpp" >"$tmp/devcc.log" 2>&1
  ok test $? = 0 || head -5 "$tmp/devcc.log" >&2
else
  skipped "no CUDA toolkit with NCCL: the bridge's CUDA path is not compiled"
fi

# ---- what must stop configure: one line naming what was found --------------------------------------
z3=$tmp/wrongabi; make_zip "$z3"
sed -i 's/_GLIBCXX_USE_CXX11_ABI=1/_GLIBCXX_USE_CXX11_ABI=0/' "$z3/share/cmake/Torch/TorchConfig.cmake"
configure "$tmp/wrongabi" LIBTORCH="$z3"
ok one_error "$tmp/wrongabi" "TorchConfig.cmake says _GLIBCXX_USE_CXX11_ABI=0 but its libc10.so links only with =1"

z4=$tmp/nocpu; make_zip "$z4"; rm "$z4"/lib/libtorch_cpu.so*
configure "$tmp/nocpu" LIBTORCH="$z4"
ok one_error "$tmp/nocpu" "LIBTORCH=$z4: $z4/lib has no libtorch_cpu.so (found: libc10.so libtorch.so"

configure "$tmp/nodir" LIBTORCH="$tmp/missing"
ok one_error "$tmp/nodir" "LIBTORCH=$tmp/missing: no such directory"
configure "$tmp/notorch" LIBTORCH="$tmp"
ok one_error "$tmp/notorch" "has no include/torch/script.h"
configure "$tmp/both" LIBTORCH="$z" TORCH_PYTHON=/usr/bin/python3
ok one_error "$tmp/both" "set only one of them"
configure "$tmp/badnccl" NCCL_HOME="$tmp"
ok one_error "$tmp/badnccl" "NCCL_HOME=$tmp has no include/nccl.h"

# ---- TORCH_PYTHON ----------------------------------------------------------------------------------
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  tdir=$(/usr/bin/python3 -c 'import os, torch; print(os.path.dirname(os.path.abspath(torch.__file__)))')
  tver=$(/usr/bin/python3 -c 'import torch; print(torch.__version__)')
  configure "$tmp/py" TORCH_PYTHON=/usr/bin/python3
  ok grep -qx "  ✓ libtorch $tver at $tdir (TORCH_PYTHON=/usr/bin/python3), C++11 ABI (_GLIBCXX_USE_CXX11_ABI=1), CPU only" "$tmp/py.out"
  ok grep -qx "TORCH_LIBS := -L$tdir/lib -Wl,-rpath,$tdir/lib -ltorch -ltorch_cpu -lc10" "$tmp/py.mk"
else
  skipped "/usr/bin/python3 cannot import torch (python3-torch missing)"
fi
# a python whose torch is broken: configure names the exception
mkdir -p "$tmp/broken/torch"
echo 'raise ImportError("libtorch_cpu.so: cannot open shared object file")' > "$tmp/broken/torch/__init__.py"
printf '#!/bin/sh\nPYTHONPATH=%s exec /usr/bin/python3 "$@"\n' "$tmp/broken" > "$tmp/python3"; chmod +x "$tmp/python3"
configure "$tmp/pybad" TORCH_PYTHON="$tmp/python3"
ok one_error "$tmp/pybad" "TORCH_PYTHON=$tmp/python3 cannot import torch (ImportError: libtorch_cpu.so: cannot open shared object file)"
configure "$tmp/pynone" TORCH_PYTHON="$tmp/no-such-python"
ok one_error "$tmp/pynone" "TORCH_PYTHON=$tmp/no-such-python: no such program"

# ---- one real build against the zip: djct_train links, finds libtorch (and NCCL) by its run path,
# trains; then another LIBTORCH for the same build folder re-runs configure (the knob is in the key)
b=$tmp/build
mk=(make -s --no-print-directory -C "$root" BUILD="$b" SAN=0 OPT=-O0 LIBTORCH="$z" ${nccl:+NCCL_HOME=$nccl})
if "${mk[@]}" "$b/bin/djct_train" >"$tmp/build.log" 2>&1; then
  pass=$((pass+1))
  rp=$(readelf -d "$b/bin/djct_train" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
  ok grep -q "$z/lib" <<<"$rp"
  ok sh -c "ldd '$b/bin/djct_train' | grep -q 'libtorch_cpu.so.* => $z/lib/libtorch_cpu.so'"
  if [ -n "$nccl" ]; then
    ok grep -q "$nccl/lib" <<<"$rp"
    ok sh -c "ldd '$b/bin/djct_train' | grep -q 'libnccl.so.2 => $nccl/lib/libnccl.so.2'"
  fi
  ok sh -c "! ldd '$b/bin/djct_train' | grep -q 'not found'"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}
  DJCT_CACHE=$tmp/cache $MPIRUN -np 1 "$b/bin/djct_train" --max-steps 3 --gen-events 500 --run-dir "$tmp/run" \
    --wandb-mode disabled --progress none --no-validate --checkpoint-every-minutes 0 --threads 1 >"$tmp/run.log" 2>&1
  ok test $? = 0 || tail -5 "$tmp/run.log" >&2
  ok grep -q '"steps": 3' "$tmp/run/summary.json"
  "${mk[@]}" LIBTORCH="$z3" "$b/bin/djct_train" >"$tmp/rebuild.log" 2>&1
  ok grep -q "configure: libtorch at $z3 (LIBTORCH): .*says _GLIBCXX_USE_CXX11_ABI=0" "$tmp/rebuild.log"
else
  fail=$((fail+1)); echo "FAIL: building djct_train against $z" >&2; tail -20 "$tmp/build.log" >&2
fi

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
