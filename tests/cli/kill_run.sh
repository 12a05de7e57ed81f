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
    "$TMAP" run "${common[@]}" --out "k$i" >/dev/null 2>&1 &
    pid=$!
    sleep "$at"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ $? -eq 137 ] && landed=$((landed + 1))
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
# The moments spread over the whole run: nearly all land before its end
# (the last twentieth may not, on a machine faster than the first run).
expect_true test "$landed" -ge 18

finish
