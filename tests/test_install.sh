#!/usr/bin/env bash
# make install into a temporary prefix, then build an external C program with
# `pkg-config --cflags --libs djct` and run it: it links and calls djct_last_error().
set -u
pass=0; fail=0
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*" >&2; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
BUILD=${BUILD:-build}
ok make -s --no-print-directory install PREFIX="$tmp/prefix" BUILD="$BUILD" >"$tmp/install.log" 2>&1 \
  || tail -20 "$tmp/install.log"
ok test -f "$tmp/prefix/include/djct/djct.h"
ok test -f "$tmp/prefix/lib/libdjct.a"
ok test -L "$tmp/prefix/lib/libdjct.so"
ok test -f "$tmp/prefix/lib/pkgconfig/djct.pc"
cat >"$tmp/ext.c" <<'C'
#include <djct/djct.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    djct_error_set(DJCT_EIO, "from outside %d", 42);
    printf("%s %s %s\n", djct_version(), djct_error_name(djct_last_error_code()), djct_last_error());
    return strcmp(djct_last_error(), "from outside 42") != 0;
}
C
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
ok pkg-config --exists djct
san=""; [ "${SAN:-0}" = 1 ] && san="-fsanitize=address,undefined"
ok gcc -std=c11 $san -o "$tmp/ext" "$tmp/ext.c" $(pkg-config --cflags --libs djct)
out=$("$tmp/ext" 2>&1); rc=$?
ok test "$rc" = 0
ok test "$out" = "0.1.0 EIO from outside 42"
# the shared library resolves from the rpath, not from the build tree
ok sh -c "ldd '$tmp/ext' | grep -q '$tmp/prefix/lib/libdjct.so'"
# apps are installed
ok test -x "$tmp/prefix/bin/djct_train"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
