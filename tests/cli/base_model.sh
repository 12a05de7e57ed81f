#!/usr/bin/env bash
# The shipped base model (models/gsm8k-base.gguf, docs/base-model.md) must
# know GSM8K: its `loss` indicator is at least 5% higher on answers moved to
# the wrong question than on the real ones (the first 100 test records,
# which it never trained on), and it carries the training record `tmap run`
# reports. The model is committed, so this never skips: a missing model
# fails.
. "$(dirname "$0")/lib.sh"

BASE=$SRC/models/gsm8k-base.gguf

check "the shipped base model is there and says what it learned"
run "$TMAP" info -m "$BASE"
expect_status 0
expect_out "vocabulary     2048 tokens"
expect_out "trained on     train.jsonl (first 5473 of 7473 records)"
expect_out "held-out loss"
expect_out "test.jsonl (1319 records)"

head -n 100 "$SRC/data/gsm8k/test.jsonl" > real.jsonl
# Record i keeps its question and takes record i+1's answer (the last takes
# the first's): the same texts, wrongly paired.
awk -F'", "answer": "' '{ q[NR] = $1; a[NR] = $2 } END { for (i = 1; i <= NR; i++) print q[i] "\", \"answer\": \"" a[i % NR + 1] }' \
    real.jsonl > shuffled.jsonl

mean_loss() { awk -F, 'NR > 1 && $4 != "" { s += $4; n++ } END { printf "%.4f\n", s / n }' "$1"; }

check "loss separates real from shuffled answers by at least 5%"
run "$TMAP" score -m "$BASE" -d real.jsonl --indicators loss -o real.csv --quiet
expect_status 0
run "$TMAP" score -m "$BASE" -d shuffled.jsonl --indicators loss -o shuffled.csv --quiet
expect_status 0
real=$(mean_loss real.csv)
shuffled=$(mean_loss shuffled.csv)
echo "mean loss: real $real, shuffled $shuffled nats/token"
expect_true awk -v r="$real" -v s="$shuffled" 'BEGIN { exit !(s >= 1.05 * r) }'

finish
