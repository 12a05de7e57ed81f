#!/usr/bin/env bash
# Remakes models/gsm8k-2k.vocab, the 2,048-piece SentencePiece vocabulary of
# the GSM8K base model (docs/base-model.md), from the records the base model
# trains on: the first 5,473 of data/gsm8k/train.jsonl (the last 2,000 stay
# unseen, for the demo and bench/fidelity). Only needed to change the
# vocabulary: the file is committed, and `tmap model pretrain` reads it.
#
# Needs Debian's sentencepiece (spm_train) and python3 (to read the JSONL).
# The same input gives the same .vocab (checked: two runs, identical bytes).
#
# BPE, as llama.cpp's "llama" tokenizer merges; digits split, as Llama-2
# does; byte fallback, so any text tokenizes; identity normalisation and
# whitespace kept, since llama.cpp applies neither.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$root/data/gsm8k/train.jsonl" 5473 > "$work/text.txt" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    for i, line in enumerate(f):
        if i >= int(sys.argv[2]):
            break
        r = json.loads(line)
        for part in (r["question"], r["answer"]):
            for text in part.split("\n"):
                if text.strip():
                    print(text)
PY
spm_train --input="$work/text.txt" --model_prefix="$work/gsm8k-2k" --vocab_size=2048 --model_type=bpe \
    --character_coverage=1.0 --byte_fallback=true --split_digits=true --normalization_rule_name=identity \
    --remove_extra_whitespaces=false --num_threads=1 --minloglevel=2 >/dev/null
cp "$work/gsm8k-2k.vocab" "$root/models/gsm8k-2k.vocab"
echo "wrote $root/models/gsm8k-2k.vocab"
