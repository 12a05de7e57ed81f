#!/usr/bin/env bash
# Writes the few-shot corpus that turns the 512-token GSM8K base model into
# the 2,048-token one (docs/base-model.md, "A context that holds the
# demonstrations"): the records the base model trained on (the first 5,473
# of data/gsm8k/train.jsonl) laid out in chains, as the ICL proxy lays out
# its prompts: "Query: Q1\nAnswer: A1\n\nQuery: Q2\nAnswer: A2\n\n...".
# Each chain is one record whose question holds every earlier pair, so
# training reads it from its first token and the loss covers every answer
# with the answers before it in context: what the proxy asks of the model.
#
#   scripts/make-gsm8k-fewshot.sh OUT.jsonl [MAX_BYTES]
#
# Consecutive records join a chain until its text would pass MAX_BYTES
# (default 3,800: about 1,700 tokens at the vocabulary's 2.22 bytes/token,
# so a chain fits a 2,048-token window whole). Deterministic: the same
# input gives the same bytes. Needs python3 (to read and write the JSONL).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: make-gsm8k-fewshot.sh OUT.jsonl [MAX_BYTES]}
python3 - "$root/data/gsm8k/train.jsonl" 5473 "${2:-3800}" > "$out" <<'PY'
import json, sys
path, first, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
records = []
with open(path) as f:
    for i, line in enumerate(f):
        if i >= first:
            break
        r = json.loads(line)
        records.append((r["question"], r["answer"]))

def emit(chain):
    # "Query: " + question + "\nAnswer:" is how tmap lays out a record, and
    # the answer is read after a space: the question field carries the rest.
    question = "\n\nQuery: ".join(q + "\nAnswer: " + a for q, a in chain[:-1])
    question = question + "\n\nQuery: " + chain[-1][0] if question else chain[-1][0]
    print(json.dumps({"question": question, "answer": chain[-1][1]}))

chain, size = [], 0
for q, a in records:
    n = len(q) + len(a) + 20
    if chain and size + n > limit:
        emit(chain)
        chain, size = [], 0
    chain.append((q, a))
    size += n
if chain:
    emit(chain)
PY
echo "wrote $out: $(wc -l < "$out") chains of the first 5,473 records" >&2
