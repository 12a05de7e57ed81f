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

for shape in "64 2" "512 8"; do
    read -r embd layers <<< "$shape"
    m="$models/llama-${embd}x${layers}.gguf"
    [ -f "$m" ] || "$build/tmap" model create --quiet --out "$m" --n-embd "$embd" --n-layer "$layers" \
        --n-head $((embd / 32 > 1 ? embd / 32 : 2))
    "$build/bench/bench_logprob" "$m" "$root/data/gsm8k/train.jsonl" "${BENCH_SAMPLES:-256}"
    "$build/bench/bench_score" "$m" "$root/data/gsm8k/train.jsonl" "${BENCH_SAMPLES:-256}" 2
    "$build/bench/bench_proxy" "$m" "$root/data/gsm8k/train.jsonl" "$root/data/gsm8k/test.jsonl" 8 100 2
done

# Scale-out with MPI: 2 ranks against 1 (skipped without MPI).
"$root/bench/mpi.sh" "$build" "$models/llama-512x8.gguf" "$root/data/gsm8k/train.jsonl" \
    "$root/data/gsm8k/test.jsonl" "${BENCH_MPI_SAMPLES:-128}"
