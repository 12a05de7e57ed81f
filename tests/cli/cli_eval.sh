#!/usr/bin/env bash
# tmap eval end to end on 10 GSM8K test items and the created model: the
# result block, the predictions file, the bootstrap seed, loglik and mc,
# and bad input. A random model answers nothing right: accuracy 0.
. "$(dirname "$0")/lib.sh"

head -n 10 "$SRC/data/gsm8k/test.jsonl" > test.jsonl
head -n 2 "$SRC/data/gsm8k/train.jsonl" > demos.jsonl
common=(-m "$MODEL" -d test.jsonl -c 1024 -t 2 -np 4)

check "accuracy with two demonstrations"
run "$TMAP" eval "${common[@]}" --demos demos.jsonl --shots 2 --max-tokens 16 --out preds.jsonl
expect_status 0
expect_out "metric     accuracy"
expect_out "value      0.0000"
expect_out "95% CI     0.0000 .. 0.0000  (bootstrap, 1000 resamples, seed 42)"
expect_out "items      10 (0 skipped: do not fit the context)"
expect_out "shots      2"
expect_err "evaluated 10 items in"
expect_err "; wrote preds.jsonl"
expect_true test "$(wc -l < preds.jsonl)" -eq 10
expect_true grep -q '^{"id":"1","prediction":".*","extracted":.*,"gold":"18","correct":false,"loglik":null,"skipped":false}$' preds.jsonl
expect_true grep -q '^{"id":"10",.*"gold":"460",' preds.jsonl
expect_true test "$(grep -c '"correct":false' preds.jsonl)" -eq 10
# the demonstrations are decoded once and shared by every item
expect_true grep -qE '[0-9]{3} prompt tokens shared' "$WORK/.err"

check "the same run, the same output"
cp "$WORK/.out" first.out
run "$TMAP" eval "${common[@]}" --demos demos.jsonl --shots 2 --max-tokens 16 --out again.jsonl --quiet
expect_status 0
expect_no_err
expect_true cmp -s first.out "$WORK/.out"
expect_true cmp -s preds.jsonl again.jsonl

check "loglik: mean log-probability per token, its interval by seed"
run "$TMAP" eval "${common[@]}" --metric loglik --seed 3 --out ll.jsonl
expect_status 0
expect_out "metric     loglik"
expect_true grep -qE '^value      -(9|10|11)\.[0-9]{4}$' "$WORK/.out"
expect_out "seed 3)"
expect_true test "$(grep -c '"loglik":-' ll.jsonl)" -eq 10
cp "$WORK/.out" seed3.out
run "$TMAP" eval "${common[@]}" --metric loglik --seed 3
expect_true cmp -s seed3.out "$WORK/.out"
run "$TMAP" eval "${common[@]}" --metric loglik --seed 4
expect_true test "$(grep CI seed3.out)" != "$(grep CI "$WORK/.out")"
run "$TMAP" eval "${common[@]}" --metric loglik --bootstrap 0
expect_out "95% CI     none (--bootstrap 0)"

check "multiple choice"
cp "$SRC/tests/fixtures/data/mc_arc.jsonl" mc.jsonl
run "$TMAP" eval -m "$MODEL" -d mc.jsonl --metric mc -o mc_preds.jsonl
expect_status 0
expect_out "metric     mc"
expect_out "items      2 (0 skipped"
expect_true grep -q '"id":"Mercury_1",.*"gold":"steam",.*"choice":[0-3],' mc_preds.jsonl

check "chat without a template falls back to plain"
run "$TMAP" eval "${common[@]}" --template chat --max-tokens 2
expect_status 0
expect_err "has no chat template: prompts use the plain layout"

check "help and the command table"
run "$TMAP" eval --help
expect_status 0
expect_out "--metric accuracy|loglik|mc"
expect_out "--bootstrap N"
run "$TMAP" --help
expect_out "eval"

check "bad input"
run "$TMAP" eval -m "$MODEL" -d nothere.jsonl
expect_status 3
expect_err "nothere.jsonl: cannot open"
run "$TMAP" eval "${common[@]}" --metric fun
expect_status 1
expect_err "--metric: 'fun' is not one of: loglik, accuracy, mc"
run "$TMAP" eval -d test.jsonl
expect_status 1
expect_err "no model given"
run "$TMAP" eval "${common[@]}" --shots 3
expect_status 1
expect_err "--shots 3 needs demonstrations (--demos FILE)"
run "$TMAP" eval "${common[@]}" --demos demos.jsonl --shots 5
expect_status 1
expect_err "5 demonstrations asked for, but demos.jsonl has only 2 records"
run "$TMAP" eval "${common[@]}" --metric mc
expect_status 2
expect_err "test.jsonl:1: record 1 has no choices"
run "$TMAP" eval "${common[@]}" --max-tokens 2 --out /nonexistent/dir/p.jsonl
expect_status 3
expect_err "/nonexistent/dir/p.jsonl: cannot write"

check "demonstrations that ask a test question: a warning naming the first; the records past --shots do not count"
{ head -n 1 demos.jsonl; sed -n 4p test.jsonl; sed -n 6p test.jsonl; } > leaky-demos.jsonl
run "$TMAP" eval "${common[@]}" --demos leaky-demos.jsonl --shots 2 --metric loglik --bootstrap 0
expect_status 0
expect_err "tmap: warning: 1 of the 2 demonstrations (the first records of leaky-demos.jsonl; the first: line 2) ask a question of test.jsonl"
run "$TMAP" eval "${common[@]}" --demos leaky-demos.jsonl --shots 1 --metric loglik --bootstrap 0
expect_status 0
expect_true test "$(grep -c "warning" "$WORK/.err")" -eq 0

finish
