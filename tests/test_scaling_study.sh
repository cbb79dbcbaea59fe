#!/usr/bin/env bash
# scripts/scaling_study end to end, locally under mpirun: strong + weak runs of the (fake) trainer,
# CSV rows and efficiencies, non-empty PNG plots, the table; then its error paths. ~10 s.
# LEAD: when djct_train lands, set TRAINER=$BUILD/bin/djct_train (+ data options in TRAINER_ARGS).
set -u
cd "$(dirname "$0")/.." || exit 1
TRAINER=${TRAINER:-$PWD/tests/fake_trainer.sh}
TRAINER_ARGS=${TRAINER_ARGS:-}
pass=0; fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; return 1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 FAKE_STEP_S=0.01 DJCT_BIN=$TRAINER
st=scripts/scaling_study
# shellcheck disable=SC2086
$st --ranks "1 2 4" --mode both --steps 4 --batch-elements 4000 --out "$tmp/s" -- $TRAINER_ARGS \
    >"$tmp/out" 2>"$tmp/err"; rc=$?
ok test $rc = 0 || cat "$tmp/err" >&2
csv=$tmp/s/scaling.csv
ok test "$(head -n 1 "$csv" | cut -d, -f1-5)" = "mode,ranks,batch_elements_per_rank,steps,step_time_s"
ok test "$(grep -c '^strong,' "$csv")" = 3
ok test "$(grep -c '^weak,' "$csv")" = 3
col() { awk -F, -v m="$1" -v n="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
        $1 == m && $2 == n { print $h[c] }' "$csv"; }
# strong: the global batch is split; weak: every rank keeps it
ok test "$(col strong 4 batch_elements_per_rank)" = 1000
ok test "$(col weak 4 batch_elements_per_rank)" = 4000
# the base point has speed-up and efficiency 1; efficiency = speed-up / N (strong), speed-up = N * E (weak)
ok test "$(col strong 1 efficiency)" = 1
ok test "$(col weak 1 efficiency)" = 1
ok awk -v s="$(col strong 4 speedup)" -v e="$(col strong 4 efficiency)" 'BEGIN { exit !(s > 1 && (s / 4 - e)^2 < 1e-6) }'
ok awk -v s="$(col weak 4 speedup)" -v e="$(col weak 4 efficiency)" 'BEGIN { exit !(e > 0 && e <= 1.0001 && (4 * e - s)^2 < 1e-4) }'
for p in speedup efficiency time_split; do
    ok test "$(head -c 4 "$tmp/s/$p.png" | od -An -c | tr -d ' ')" = '211PNG'
    ok test "$(stat -c %s "$tmp/s/$p.png")" -gt 2000
done
ok grep -q 'efficiency' "$tmp/out"
ok test "$(grep -cE '^(strong|weak) ' "$tmp/out")" = 6
# --collect-only redoes the CSV from the run directories without running anything
rm "$csv"
ok $st --collect-only --out "$tmp/s" >/dev/null 2>&1
ok test "$(grep -c '^weak,' "$csv")" = 3
# error paths: named value, usage exit 2; a failing run is reported and fails the study
$st --mode sideways --out "$tmp/x" >/dev/null 2>"$tmp/err"; ok test $? = 2
ok grep -q "mode 'sideways'" "$tmp/err"
$st --ranks "1 two" --out "$tmp/x" >/dev/null 2>"$tmp/err"; ok test $? = 2
DJCT_BIN=/nonexistent/djct_train $st --out "$tmp/x" >/dev/null 2>"$tmp/err"; ok test $? = 2
ok grep -q "trainer '/nonexistent/djct_train' not found" "$tmp/err"
DJCT_BIN=/bin/false $st --ranks 1 --mode weak --steps 1 --out "$tmp/f" >/dev/null 2>"$tmp/err"; ok test $? = 1
ok grep -q 'weak, 1 rank(s): trainer exited with' "$tmp/err"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
