#!/usr/bin/env bash
# The trained base model (tmap model pretrain, docs/base-model.md) must have
# learned GSM8K: its `loss` indicator is lower on real answers than on the
# same answers shuffled across questions. Skipped, with a note, when the
# model has not been trained in this build folder (training takes most of an
# hour on 2 cores, so the test suite never trains it).
. "$(dirname "$0")/lib.sh"

BASE=$(dirname "$MODEL")/../models/gsm8k-base.gguf
if [ ! -f "$BASE" ]; then
    echo "skipped: no trained base model at $BASE (make it with: tmap model pretrain ...)"
    finish
    exit $?
fi

head -n 200 "$SRC/data/gsm8k/test.jsonl" > real.jsonl
# Record i keeps its question and takes record i+1's answer (the last takes
# the first's): the same texts, wrongly paired.
awk -F'", "answer": "' '{ q[NR] = $1; a[NR] = $2 } END { for (i = 1; i <= NR; i++) print q[i] "\", \"answer\": \"" a[i % NR + 1] }' \
    real.jsonl > shuffled.jsonl

mean_loss() { awk -F, 'NR > 1 && $4 != "" { s += $4; n++ } END { printf "%.4f\n", s / n }' "$1"; }

check "loss separates real from shuffled answers"
run "$TMAP" score -m "$BASE" -d real.jsonl --indicators loss -o real.csv --quiet
expect_status 0
run "$TMAP" score -m "$BASE" -d shuffled.jsonl --indicators loss -o shuffled.csv --quiet
expect_status 0
real=$(mean_loss real.csv)
shuffled=$(mean_loss shuffled.csv)
echo "mean loss: real $real, shuffled $shuffled nats/token"
expect_true awk -v r="$real" -v s="$shuffled" 'BEGIN { exit !(r < s) }'

finish
