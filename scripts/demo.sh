#!/usr/bin/env bash
# The main job on the bundled default: GSM8K from data/gsm8k and a model tmap
# builds itself (a small random-init Llama with the Llama-2 tokenizer).
#
# Today tmap reads and describes data and models; as scoring, the proxy and
# the weight search land, this script grows into `tmap run`.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
tmap="$build/tmap"
model="$build/models/demo-llama-64x2.gguf"
mkdir -p "$build/models"

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "tmap and llama.cpp" "$tmap" version
[ -f "$model" ] || step "create the demo model" "$tmap" model create --out "$model" --n-embd 64 --n-layer 2 --seed 42
step "the model" "$tmap" info -m "$model"
step "the pool: GSM8K train" "$tmap" data stats "$root/data/gsm8k/train.jsonl"
step "the task's validation data, in the model's tokens" \
    "$tmap" data stats "$root/data/gsm8k/test.jsonl" -m "$model"
echo
echo "demo done: model at $model"
