#!/usr/bin/env bash
# Runs the benchmarks under bench/ on models tmap creates (cached in the
# build folder). Each benchmark prints ratios measured within its own run.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
models="$build/bench-models"
mkdir -p "$models"

# The weight search and the selection (no model needed).
"$build/bench/bench_search"
# Diversity: exact against the approximate index at 100k rows, then 1M rows.
"$build/bench/bench_ann"

for shape in "64 2" "512 8"; do
    read -r embd layers <<< "$shape"
    m="$models/llama-${embd}x${layers}.gguf"
    [ -f "$m" ] || "$build/tmap" model create --quiet --out "$m" --n-embd "$embd" --n-layer "$layers" \
        --n-head $((embd / 32 > 1 ? embd / 32 : 2))
    "$build/bench/bench_logprob" "$m" "$root/data/gsm8k/train.jsonl" "${BENCH_SAMPLES:-256}"
    "$build/bench/bench_score" "$m" "$root/data/gsm8k/train.jsonl" "${BENCH_SAMPLES:-256}" 2
    "$build/bench/bench_proxy" "$m" "$root/data/gsm8k/train.jsonl" "$root/data/gsm8k/test.jsonl" 8 100 2
done

# A big vocabulary: Qwen2's 151,936 tokens in a qwen2 model (q/k/v biases)
# of the 512x8 shape, where the output layer and the log-softmax over it
# weigh most (docs/design.md 10). Needs llama.cpp's vocabularies (setup).
vocabs="$(cat "$build/.llama-prefix" 2>/dev/null)/share/tmap/vocab"
if [ -f "$vocabs/ggml-vocab-qwen2.gguf" ]; then
    m="$models/qwen2-512x8.gguf"
    [ -f "$m" ] || "$build/tmap" model create --quiet --out "$m" --arch qwen2 --vocab "$vocabs/ggml-vocab-qwen2.gguf" \
        --n-embd 512 --n-layer 8 --n-head 16
    "$build/bench/bench_score" "$m" "$root/data/gsm8k/train.jsonl" "${BENCH_SAMPLES:-256}" 2
fi

# Scale-out with MPI: 2 ranks against 1 (skipped without MPI).
"$root/bench/mpi.sh" "$build" "$models/llama-512x8.gguf" "$root/data/gsm8k/train.jsonl" \
    "$root/data/gsm8k/test.jsonl" "${BENCH_MPI_SAMPLES:-128}"
