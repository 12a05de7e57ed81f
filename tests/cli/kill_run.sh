#!/usr/bin/env bash
# kill -9 anywhere in `tmap run`: 20 runs, each killed at a seeded random
# moment of its own twentieth of an uninterrupted run's wall time (so the
# kills cover scoring, the tiny set, the search, the selection and the
# report in proportion to their time), then rerun in the same folder. Every
# rerun must finish with the uninterrupted run's outputs byte for byte
# (trace.csv's timing column and report.html's aside), the store must pass
# SQLite's integrity check, and an output present right after a kill must
# already be whole: outputs are written under a temporary name and renamed.
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || { echo "kill_run: needs the sqlite3 command (make setup installs it)"; exit 1; }

head -n 24 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 8 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 1024 -b 512 -t 2 -n 4 --iters 4 -k 2 --draws 1
        --baselines 2 --redraws 1 --indicators loss,steps,length,numeracy --seed 5 --quiet)
outputs=(selected.jsonl scores.csv weights.json tiny.jsonl)
same_outputs() { # folder: the reference's outputs, trace without timings
    for f in "${outputs[@]}"; do cmp -s "ref/$f" "$1/$f" || return 1; done
    cmp -s <(sed 's/,[^,]*$//' ref/trace.csv) <(sed 's/,[^,]*$//' "$1/trace.csv") || return 1
    grep -q '</html>' "$1/report.html"
}

check "an uninterrupted run"
start=$(date +%s.%N)
run "$TMAP" run "${common[@]}" --out ref
expect_status 0
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')

check "20 kills at random moments, 20 reruns"
landed=0 whole=0 identical=0 intact=0
for i in $(seq 0 19); do
    at=$(awk -v t="$took" -v i="$i" 'BEGIN { srand(4242 + i); printf "%.3f", t * (i + rand()) / 20 }')
    # A run that finished before its kill proves nothing: the slot is tried
    # again, earlier, in a fresh folder (machines vary in speed).
    for try in 1 2 3 4 5 6 7 8; do
        rm -rf "k$i"
        "$TMAP" run "${common[@]}" --out "k$i" >/dev/null 2>&1 &
        pid=$!
        sleep "$at"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        if [ $? -eq 137 ]; then landed=$((landed + 1)); break; fi
        at=$(awk -v a="$at" 'BEGIN { printf "%.3f", a * 0.7 }')
    done
    partial=0
    for f in "${outputs[@]}" trace.csv; do
        [ -e "k$i/$f" ] && [ "$f" != trace.csv ] && ! cmp -s "ref/$f" "k$i/$f" && partial=1
    done
    [ $partial -eq 0 ] && whole=$((whole + 1))
    run "$TMAP" run "${common[@]}" --out "k$i"
    [ "$status" -eq 0 ] && same_outputs "k$i" && identical=$((identical + 1))
    [ "$(sqlite3 "k$i/store.db" 'PRAGMA integrity_check')" = ok ] && intact=$((intact + 1))
done
echo "kill tally: uninterrupted run ${took}s; $landed of 20 kills landed mid-run; $whole of 20 left only whole outputs;" \
     "$identical of 20 reruns identical; $intact of 20 stores intact"
expect_true test "$identical" -eq 20
expect_true test "$whole" -eq 20
expect_true test "$intact" -eq 20
expect_true test "$landed" -eq 20

check "two runs on one store at once: both finish, same outputs, nothing lost"
"$TMAP" run "${common[@]}" --out c1 --cache shared.db > c1.log 2>&1 &
p1=$!
"$TMAP" run "${common[@]}" --out c2 --cache shared.db > c2.log 2>&1 &
p2=$!
wait "$p1"; s1=$?
wait "$p2"; s2=$?
[ "$s1" -eq 0 ] && [ "$s2" -eq 0 ] || { echo "first run ($s1):"; cat c1.log; echo "second run ($s2):"; cat c2.log; }
expect_true test "$s1" -eq 0
expect_true test "$s2" -eq 0
expect_true test -z "$(grep -il 'locked' c1.log c2.log)"
expect_true same_outputs c1
expect_true same_outputs c2
# Every score either one computed is in the store: a third run does no model work.
loud=()
for a in "${common[@]}"; do [ "$a" != --quiet ] && loud+=("$a"); done
run "$TMAP" run "${loud[@]}" --out c3 --cache shared.db
expect_status 0
expect_out "0 computed, 24 from the store"
expect_true test "$(sqlite3 shared.db 'PRAGMA integrity_check')" = ok

finish
