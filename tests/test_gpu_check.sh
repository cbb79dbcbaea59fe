#!/usr/bin/env bash
# scripts/gpu_check.sh's path for machines without MPI, HDF5, libcurl, cJSON and inih, rehearsed
# without a GPU: --fetch-debs (from apt's cache, the rest from the Debian mirror when it is reachable;
# otherwise `skip:`), then --debs --hide-system --exec, which unpacks them into a private prefix and
# runs a command in a mount namespace where the system's own copies of those packages and ssh are
# hidden. There configure finds all five in the prefix, and a program built with the prefix's mpicc
# (MPI, HDF5, cJSON, inih, libcurl) writes and reads back an HDF5 file on each of 2 ranks under the
# prefix's mpirun. The GPU parts are scripts/gpu_check.sh's own (run by hand, docs/hpc.md).
set -u
pass=0; fail=0; skip=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
finish() { if [ $skip -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
           [ $fail -eq 0 ]; exit; }
skipped() { skip=$((skip+1)); echo "skip: $*"; finish; }
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset MAKEFLAGS MFLAGS MAKELEVEL

grep -q '^12' /etc/debian_version 2>/dev/null || skipped "not a Debian 12 machine: --fetch-debs downloads Debian 12 packages"
{ [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; } || \
  skipped "--hide-system needs root and a private mount namespace (unshare --mount)"
if ! "$root/scripts/gpu_check.sh" --fetch-debs "$tmp/debs" >"$tmp/fetch.log" 2>&1; then
  skipped "no packages: $(tail -1 "$tmp/fetch.log" | cut -c1-200)"
fi
n=$(ls "$tmp/debs"/*.deb 2>/dev/null | wc -l)
ok test "$n" -ge 30
for p in openmpi-bin libopenmpi-dev libhdf5-dev libcurl4-openssl-dev libcjson-dev libinih-dev; do
  ok sh -c "ls '$tmp/debs/${p}_'*.deb >/dev/null 2>&1"
done
# what an Ubuntu-like image has stays out (the C++ runtime, TLS)
ok sh -c "! ls '$tmp/debs'/libstdc++6_*.deb '$tmp/debs'/libssl3_*.deb '$tmp/debs'/openssh-client_*.deb 2>/dev/null | grep -q ."

cat >"$tmp/h5mpi.c" <<'C'
#include <cJSON.h>
#include <curl/curl.h>
#include <hdf5.h>
#include <ini.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
static int on_ini(void *u, const char *s, const char *k, const char *v) { *(int *)u += !strcmp(k, "n"); return 1; }
int main(int argc, char **argv)
{
    int rank, size, good = 0, all = 0, w[10], r[10], seen = 0;
    char path[4096];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 0; i < 10; i++) w[i] = rank * 10 + i;
    snprintf(path, sizeof(path), "%s/rank%d.h5", argv[1], rank);
    hsize_t dims[1] = {10};
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "x", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
    H5Dclose(d); H5Sclose(sp); H5Fclose(f);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    d = H5Dopen2(f, "x", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r);
    H5Dclose(d); H5Fclose(f);
    cJSON *j = cJSON_Parse("{\"a\": 3}");
    ini_parse_string("[s]\nn = 1\n", on_ini, &seen);
    good = !memcmp(w, r, sizeof(w)) && j && cJSON_GetObjectItem(j, "a")->valueint == 3 && seen == 1 &&
           curl_version() != NULL;
    cJSON_Delete(j);
    MPI_Allreduce(&good, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%d of %d ranks read back their HDF5 file\n", all, size);
    MPI_Finalize();
    return all == size ? 0 : 1;
}
C
cat >"$tmp/inner.sh" <<'SH'
T=$1; ROOT=$2
# a hidden file reads as /dev/null: empty
[ -e /usr/bin/mpirun.openmpi ] && [ ! -s /usr/bin/mpirun.openmpi ] && echo "system mpirun hidden"
INSTALL_DEPS=0 WITH_TORCH=0 WITH_CUDA=0 "$ROOT/scripts/configure.sh" "$T/cfg.mk" >"$T/cfg.out" 2>&1
echo "configure rc $?"
"$MPICC" -o "$T/h5mpi" "$T/h5mpi.c" $(pkg-config --cflags --libs hdf5 libcjson inih libcurl) >"$T/cc.log" 2>&1
echo "compile rc $?"
ldd "$T/h5mpi" >"$T/ldd.txt" 2>&1
"$GPU_CHECK_MPIRUN" --allow-run-as-root --oversubscribe -np 2 "$T/h5mpi" "$T" >"$T/run.log" 2>&1
echo "run rc $?"
SH
"$root/scripts/gpu_check.sh" --debs "$tmp/debs" --hide-system --work "$tmp/work" --time-limit 300 \
  --exec bash "$tmp/inner.sh" "$tmp" "$root" >"$tmp/inner.out" 2>&1
ok test $? = 0 || tail -5 "$tmp/inner.out" >&2
P=$tmp/work/prefix
ok grep -q "hid [0-9]* files" "$tmp/inner.out"
ok grep -qx "system mpirun hidden" "$tmp/inner.out"
ok grep -qx "configure rc 0" "$tmp/inner.out" || cat "$tmp/cfg.out" >&2
for lib in MPI HDF5 libcurl cJSON inih zlib; do ok grep -q "✓ $lib" "$tmp/cfg.out"; done
ok grep -q "^MPI_CFLAGS := -I$P/usr/lib/x86_64-linux-gnu/openmpi/include" "$tmp/cfg.mk"
ok grep -q "^HDF5_CFLAGS := -I$P/usr/include/hdf5/serial" "$tmp/cfg.mk"
ok grep -qx "compile rc 0" "$tmp/inner.out" || cat "$tmp/cc.log" >&2
ok grep -q "libmpi.so.40 => $P/" "$tmp/ldd.txt"
ok grep -q "libhdf5_serial.so.103 => $P/" "$tmp/ldd.txt"
ok grep -q "libcjson.so.1 => $P/" "$tmp/ldd.txt"
ok grep -qx "run rc 0" "$tmp/inner.out" || cat "$tmp/run.log" >&2
ok grep -qx "2 of 2 ranks read back their HDF5 file" "$tmp/run.log"
finish
