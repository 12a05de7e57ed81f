#!/usr/bin/env bash
# The main job on the bundled default: the shipped GSM8K base model
# (models/gsm8k-base.gguf, docs/base-model.md) picks 30% of a pool of GSM8K
# train records it never saw, a fifth of them corrupted on purpose (wrong
# final answers, truncated solutions, other questions' answers, off-task
# text, duplicates: bench/fidelity/corrupt.c), so the demo shows both what
# tmap learns and what it keeps out.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
tmap="$build/tmap"
model="$root/models/gsm8k-base.gguf"

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

# The demo's slice, sized to finish in under two minutes on 2 cores: 600
# records after the 5,473 the base model trained on, 300 test records as
# the task's validation data, 32 anchors and 12 search steps. A real run takes whole files:
#   tmap run -m MODEL -d POOL --val VAL --out DIR
demo="$build/demo"
mkdir -p "$demo"
step "the pool: GSM8K train records 5474-6073, 20% corrupted (labels in $demo/labels.csv)" \
    "$build/bench/bench_fidelity" --pool-only 1 --data "$root/data/gsm8k/train.jsonl" \
    --test "$root/data/gsm8k/test.jsonl" --out "$demo" --seed 1 --pool-size "${DEMO_POOL:-600}"
head -n "${DEMO_VAL:-300}" "$root/data/gsm8k/test.jsonl" > "$demo/val.jsonl"

step "tmap and llama.cpp" "$tmap" version
step "the model" "$tmap" info -m "$model"
step "the main job: score, tiny set, learn the weights, baselines, select 30%, report" \
    "$tmap" run -m "$model" -d "$demo/pool.jsonl" --val "$demo/val.jsonl" --out "$demo/out" \
    --ratio 0.3 -n 32 --iters 12 --seed 42 --quiet

# What a selection kept out: the labels say which records were corrupted.
corrupted() {
    awk -F'\t' -v what="$1" 'FNR == NR { kind[FNR] = $0; next }
            FILENAME ~ /pool.jsonl$/ { split(kind[FNR + 1], f, ","); bad = f[2] != "clean";
                                       if (!(($0) in clean)) clean[$0] = 0; if (!bad) clean[$0] = 1;
                                       pool++; pool_bad += bad; next }
            { sel++; if (!clean[$0]) sel_bad++ }
            END { printf "%-28s %d of %d in the pool (%.1f%%), %d of %d in the selection (%.1f%%)\n",
                         what, pool_bad, pool, 100 * pool_bad / pool, sel_bad, sel, 100 * sel_bad / sel }' \
        "$demo/labels.csv" "$demo/pool.jsonl" "$2"
}
echo
corrupted "corrupted records" "$demo/out/selected.jsonl"

# For a pool suspected of wrong or misaligned answers, the configuration
# bench/fidelity supports on four corruption seeds (docs/fidelity.md): the
# two indicators that see them, equal weights, no search. Its scores come
# from the main job's store: nothing is decoded twice.
step "a pool suspected of wrong or misaligned answers: the two cleaning indicators, equal weights" \
    "$tmap" run -m "$model" -d "$demo/pool.jsonl" --val "$demo/val.jsonl" --out "$demo/clean" \
    --cache "$demo/out/store.db" --ratio 0.3 -n 32 --seed 42 --quiet --indicators support,coverage --search equal
echo
corrupted "corrupted, cleaning run" "$demo/clean/selected.jsonl"
echo
echo "demo done; open $demo/out/report.html"
