#!/usr/bin/env bash
# scripts/scaling_study end to end, locally under mpirun:
#  - the real djct_train (small djct_gen data, 1 thread per rank): strong + weak runs on 1 and 2
#    ranks, CSV rows whose numbers come from the runs' summary.json (2 ranks really ran, they spent
#    time communicating, 1 rank did not), whose throughput is the runs' steady-state figure and whose
#    speed-up/efficiency follow from that same throughput (the columns agree); non-empty PNG plots;
#    the table; machine.txt
#  - tests/fake_trainer.sh where only the tool's plumbing is under test: its timings come from a
#    fixed model, so the speed-up of 4 ranks is known to exceed 1 (measured ones on 2 cores are
#    not), and --collect-only; then the error paths.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
TRAINER=${TRAINER:-$PWD/$BUILD/bin/djct_train}
FAKE=$PWD/tests/fake_trainer.sh
pass=0; fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*" >&2; return 1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 DJCT_CACHE=${DJCT_CACHE:-$tmp/cache}
st=scripts/scaling_study
col() { awk -F, -v m="$2" -v n="$3" -v c="$4" 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
        $1 == m && $2 == n { print $h[c] }' "$1"; }
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d * d <= 1e-6 * (a * a + b * b) + 1e-12) }'; }
pngs_ok() { # pngs_ok DIR: the three plots are PNG files with something in them
    local p
    for p in speedup efficiency time_split; do
        [ "$(head -c 4 "$1/$p.png" 2>/dev/null | od -An -c | tr -d ' ')" = '211PNG' ] &&
            [ "$(stat -c %s "$1/$p.png")" -gt 2000 ] || { echo "    $1/$p.png missing or empty" >&2; return 1; }
    done
}

# --- the real trainer ----------------------------------------------------------------------------
if [ -x "$TRAINER" ] && "$TRAINER" --version 2>/dev/null | grep -q 'libtorch yes'; then
    "$BUILD/bin/djct_gen" --events 600 --files 2 --seed 5 --out "$tmp/data" >/dev/null || echo "FAIL: djct_gen" >&2
    DJCT_BIN=$TRAINER $st --ranks "1 2" --mode both --steps 4 --batch-elements 2000 --out "$tmp/r" -- \
        --data "$tmp/data" --classes 3 --threads 1 --progress none --no-validate --checkpoint-every-minutes 0 \
        >"$tmp/rout" 2>"$tmp/rerr"; rc=$?
    ok test $rc = 0 || cat "$tmp/rerr" "$tmp"/r/runs/*/launcher.log >&2
    csv=$tmp/r/scaling.csv
    ok test "$(head -n 1 "$csv" | cut -d, -f1-7)" = "mode,ranks,batch_elements_per_rank,steps,steady_steps,wall_per_step_s,elements_per_s"
    ok test "$(grep -c '^strong,' "$csv")" = 2
    ok test "$(grep -c '^weak,' "$csv")" = 2
    ok test "$(col "$csv" strong 2 batch_elements_per_rank)" = 1000
    ok test "$(col "$csv" weak 2 batch_elements_per_rank)" = 2000
    for m in strong weak; do
        # what the trainer measured: 4 steps on the rank count asked for, the last 3 after the
        # warm-up step in the steady-state figures; 2 ranks average gradients (communication time
        # > 0), 1 rank has nobody to talk to; positive times and throughput
        ok grep -q '"ranks": 2, .*"steps": 4, .*"steady_steps": 3, ' "$tmp/r/runs/$m-n2/summary.json"
        ok test "$(col "$csv" $m 2 steps),$(col "$csv" $m 2 steady_steps)" = 4,3
        ok awk -v c="$(col "$csv" $m 2 t_comm_s)" 'BEGIN { exit !(c > 0) }'
        ok awk -v c="$(col "$csv" $m 1 t_comm_s)" -v s="$(col "$csv" $m 1 step_time_s)" 'BEGIN { exit !(c < 0.01 * s) }'
        ok awk -v a="$(col "$csv" $m 1 t_compute_s) $(col "$csv" $m 1 elements_per_s) $(col "$csv" $m 1 final_loss)" \
               -v b="$(col "$csv" $m 2 t_compute_s) $(col "$csv" $m 2 elements_per_s) $(col "$csv" $m 2 final_loss)" \
               'BEGIN { n = split(a " " b, v, " "); for (i = 1; i <= n; i++) if (!(v[i] > 0)) exit 1; exit n != 6 }'
        # the CSV's throughput is the summary's steady-state figure (6 significant digits in the CSV)
        ok close "$(col "$csv" $m 2 elements_per_s)" \
              "$(sed -n 's/.*"steady_elements_per_s": \([^,]*\),.*/\1/p' "$tmp/r/runs/$m-n2/summary.json")"
        ok test "$(col "$csv" $m 1 efficiency)" = 1
        # one measure throughout: speed-up = 2-rank over 1-rank elements/s, efficiency = speed-up / 2
        x1=$(col "$csv" $m 1 elements_per_s) x2=$(col "$csv" $m 2 elements_per_s)
        ok close "$(col "$csv" $m 2 speedup)" "$(awk -v a="$x1" -v b="$x2" 'BEGIN { print b / a }')"
        ok close "$(col "$csv" $m 2 efficiency)" "$(awk -v a="$x1" -v b="$x2" 'BEGIN { print b / a / 2 }')"
    done
    ok pngs_ok "$tmp/r"
    ok grep -q 'efficiency' "$tmp/rout"
    ok grep -qE '^start: .* load average [0-9.]+ [0-9.]+ [0-9.]+$' "$tmp/r/machine.txt"
    ok grep -qE '^end: ' "$tmp/r/machine.txt"
    ok test "$(grep -cE '^(strong|weak) +[12] ' "$tmp/rout")" = 4
    sed -n '/^mode /,/^scaling_study:/p' "$tmp/rout" | head -n 5
else
    echo "skip: real trainer: $TRAINER missing or built without libtorch"
fi

# --- plumbing with the fake trainer --------------------------------------------------------------
export FAKE_STEP_S=0.01
DJCT_BIN=$FAKE $st --ranks "1 2 4" --mode both --steps 4 --batch-elements 4000 --out "$tmp/s" \
    >"$tmp/out" 2>"$tmp/err"; rc=$?
ok test $rc = 0 || cat "$tmp/err" >&2
csv=$tmp/s/scaling.csv
ok test "$(grep -c '^strong,' "$csv")" = 3
ok test "$(grep -c '^weak,' "$csv")" = 3
ok test "$(col "$csv" strong 4 batch_elements_per_rank)" = 1000
ok test "$(col "$csv" weak 4 batch_elements_per_rank)" = 4000
# the fake's model: splitting 4000 elements over 4 ranks is faster, efficiency = speed-up / N
ok awk -v s="$(col "$csv" strong 4 speedup)" -v e="$(col "$csv" strong 4 efficiency)" 'BEGIN { exit !(s > 1 && (s / 4 - e)^2 < 1e-6) }'
ok awk -v s="$(col "$csv" weak 4 speedup)" -v e="$(col "$csv" weak 4 efficiency)" 'BEGIN { exit !(e > 0 && e <= 1.0001 && (4 * e - s)^2 < 1e-4) }'
ok pngs_ok "$tmp/s"
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
# a run too short for a steady-state window (1 step: only the warm-up) is named and left out
DJCT_BIN=$FAKE $st --ranks 1 --mode weak --steps 1 --out "$tmp/w" >/dev/null 2>"$tmp/err"; ok test $? = 1
ok grep -q 'no steady-state window (1 steps)' "$tmp/err"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
