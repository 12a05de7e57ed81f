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
# The trained GSM8K base model (docs/base-model.md) when it is there.
base="$build/models/gsm8k-base.gguf"
if [ -f "$base" ]; then
    model=$base
else
    printf 'note: no trained base model, so a random-init one; train it (about 12 minutes on 2 cores) with:\n'
    printf '  %s model pretrain -d %s --eval %s --out %s\n' "$tmap" "$root/data/gsm8k/train.jsonl" \
        "$root/data/gsm8k/test.jsonl" "$base"
fi

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

# The demo's slice: sized to finish in a few minutes on 2 cores. A real run
# takes the whole files: tmap run -m MODEL -d POOL --val VAL --out DIR.
pool="$build/demo/pool.jsonl"
val="$build/demo/val.jsonl"
mkdir -p "$build/demo"
head -n "${DEMO_POOL:-1000}" "$root/data/gsm8k/train.jsonl" > "$pool"
head -n "${DEMO_VAL:-300}" "$root/data/gsm8k/test.jsonl" > "$val"

step "tmap and llama.cpp" "$tmap" version
[ -f "$model" ] || step "create the demo model" "$tmap" model create --out "$model" --n-embd 64 --n-layer 2 --seed 42
step "the model" "$tmap" info -m "$model"
step "the pool: GSM8K train, first ${DEMO_POOL:-1000} records" "$tmap" data stats "$pool" -m "$model"
step "the main job: score, tiny set, learn the weights, select 30%, report" \
    "$tmap" run -m "$model" -d "$pool" --val "$val" --out "$build/demo/out" \
    --ratio 0.3 -n 40 --iters 20 -k 4 --draws 1 --seed 42 --quiet
echo
echo "demo done; open $build/demo/out/report.html"
