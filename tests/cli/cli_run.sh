#!/usr/bin/env bash
# tmap run / learn / select end to end on a small GSM8K slice: every output,
# byte-identical reruns, selected lines identical to input lines, and
# `tmap select` reproducing the run's selection from its files.
. "$(dirname "$0")/lib.sh"

head -n 40 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 12 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 1024 -b 512 -t 2 -n 4 --iters 5 -k 2 --draws 1
        --indicators loss,steps,length,numeracy --seed 3)

check "run writes every output and a summary"
run "$TMAP" run "${common[@]}" --out a
expect_status 0
for f in selected.jsonl scores.csv weights.json trace.csv tiny.jsonl report.html store.db; do
    expect_true test -s "a/$f"
done
expect_out "proxy, learned weights"
expect_out "report: a/report.html"
expect_true test "$(wc -l < a/selected.jsonl)" -eq 12
expect_true grep -q '^id,loss,steps,length,numeracy,rank_loss,rank_steps,rank_length,rank_numeracy,combined,selected$' a/scores.csv

check "every selected line is an input line"
while IFS= read -r line; do
    grep -qxF -- "$line" pool.jsonl || { bad "not an input line: ${line:0:60}"; break; }
done < a/selected.jsonl
ok

check "same seed, same bytes; a rerun does no model work"
run "$TMAP" run "${common[@]}" --out b
expect_status 0
expect_true cmp -s a/selected.jsonl b/selected.jsonl
expect_true cmp -s a/weights.json b/weights.json
run "$TMAP" run "${common[@]}" --out a
expect_out "0 computed, 40 from the store"

check "tmap select reproduces the selection from scores.csv and weights.json"
run "$TMAP" select -d pool.jsonl --scores a/scores.csv --weights a/weights.json --ratio 0.3 -o again.jsonl
expect_status 0
expect_true cmp -s a/selected.jsonl again.jsonl

check "learn alone"
run "$TMAP" score -m "$MODEL" -d pool.jsonl --indicators loss,steps -o s.csv -c 1024 --quiet
run "$TMAP" learn -m "$MODEL" -d pool.jsonl --scores s.csv --tiny a/tiny.jsonl --iters 4 -k 2 --draws 1 -c 1024 --quiet
expect_status 0
expect_out "proxy"
expect_true test -s weights.json
expect_true test -s trace.csv

check "bad input"
run "$TMAP" run -m "$MODEL" -d pool.jsonl --out x
expect_status 1
expect_err "needs -m MODEL, -d POOL, --val VAL and --out DIR"
run "$TMAP" run "${common[@]}" --out x --ratio 0
expect_status 1
run "$TMAP" select -d pool.jsonl --scores a/scores.csv --weights nothere.json
expect_status 3
expect_err "nothere.json"
run "$TMAP" run "${common[@]}" --out pool.jsonl
expect_status 3
expect_err "pool.jsonl: exists and is not a folder"

finish
