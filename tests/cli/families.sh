#!/usr/bin/env bash
# Every tokenizer family whose vocabulary llama.cpp's source ships
# (models/ggml-vocab-*.gguf, copied by scripts/llama-setup.sh), each in a
# small created model of the matching architecture where llama.cpp can
# build one from hyperparameters (qwen2, qwen3, gemma, gpt2, starcoder2; a
# Llama otherwise), through score, tiny, proxy, eval and run. Families with
# a chat template in llama.cpp also run with --template chat.
#
# Usage: families.sh TMAP SRC MODEL VOCAB_DIR [FAMILY...]
. "$(dirname "$0")/lib.sh"
VOCABS=$4
command -v sqlite3 >/dev/null || { echo "families: needs the sqlite3 command (make setup --test installs it)"; exit 1; }
shift 4
if [ ! -f "$VOCABS/.all" ]; then
    echo "SKIP: $VOCABS lacks llama.cpp's vocabularies (scripts/llama-setup.sh copies them)"
    exit 77
fi

# family -> "architecture chat-template" (- = none)
declare -A spec=(
    [llama-spm]="llama llama2"       [llama-bpe]="llama llama3"
    [qwen2]="qwen2 chatml"           [qwen35]="qwen3 chatml"
    [phi-3]="llama phi3"             [gemma-4]="gemma gemma"
    [gpt-2]="gpt2 -"                 [gpt-neox]="llama -"
    [starcoder]="starcoder2 -"       [refact]="llama -"
    [deepseek-llm]="llama deepseek"  [deepseek-coder]="llama -"
    [command-r]="llama command-r"    [falcon]="llama falcon3"
    [mpt]="llama -"                  [baichuan]="llama -"
    [aquila]="llama -"               [bert-bge]="llama -"
)
families=("$@")
[ ${#families[@]} -eq 0 ] && families=("${!spec[@]}")

head -n 8 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 3 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
finite() { awk -v x="$1" 'BEGIN { exit !(x + 0 == x && x > -1e30 && x < 0) }'; }
rt=(-c 512 -t 1 -q)
# The batch: llama.cpp reserves and clears n_batch x n_vocab floats of
# logits per decode, which on a 32-wide model with a 150k-260k vocabulary
# is most of the time (gemma-4: score 8.3 s at the default -b, 2.8 s at
# 64). Qwen2 and Llama-3, the vocabularies users bring first, run at the
# default batch; the others at 64, which also takes records longer than
# one batch through the decodes that continue a sequence.
batch() { case $1 in qwen2|llama-bpe) ;; *) echo -b 64 ;; esac; }

for fam in "${families[@]}"; do
    read -r arch tmpl <<< "${spec[$fam]}"
    read -ra b <<< "$(batch "$fam")"
    vocab=$VOCABS/ggml-vocab-$fam.gguf
    m=$fam.gguf
    check "$fam: create ($arch, template $tmpl)"
    chat=(); [ "$tmpl" != - ] && chat=(--chat-template "$tmpl")
    run "$TMAP" model create -q --out "$m" --vocab "$vocab" --arch "$arch" --n-embd 32 --n-layer 1 --n-head 2 \
        --ctx 512 "${chat[@]}"
    expect_status 0
    run "$TMAP" info -m "$m" --json
    expect_out "\"architecture\": \"$arch\""

    check "$fam: score (loss, ifd)"
    # Not quiet: the plain layout on a model with a chat template is said
    # (an instruct model reads its own turns better); on one without,
    # nothing is.
    run "$TMAP" score -m "$m" -c 512 -t 1 "${b[@]}" -d pool.jsonl --indicators loss,ifd,length -o "$fam.csv"
    expect_status 0
    if [ "$tmpl" != - ]; then
        expect_err "carries a chat template, but prompts use the plain layout (the default): for an instruct model, --template chat"
    else
        expect_err_lacks "chat template"
    fi
    expect_true test "$(wc -l < "$fam.csv")" -eq 9
    # loss is a mean negative log-likelihood: positive and finite on every row
    expect_true awk -F, 'NR > 1 && !($4 + 0 > 0 && $4 + 0 < 100) { bad = 1 } END { exit bad }' "$fam.csv"

    check "$fam: tiny, proxy, eval"
    run "$TMAP" tiny -m "$m" "${rt[@]}" "${b[@]}" -d val.jsonl -n 2 -o "$fam-tiny.jsonl"
    expect_status 0
    expect_true test "$(wc -l < "$fam-tiny.jsonl")" -eq 2
    run "$TMAP" proxy -m "$m" "${rt[@]}" "${b[@]}" --demos-from pool.jsonl --tiny "$fam-tiny.jsonl" -k 2 --json
    expect_status 0
    value=$(grep -oE '"proxy": -?[0-9.e+-]+' "$WORK/.out" | grep -oE -- '-?[0-9.e+-]+$')
    expect_true finite "$value"
    run "$TMAP" eval -m "$m" "${rt[@]}" "${b[@]}" -d val.jsonl --metric loglik --bootstrap 0
    expect_status 0
    expect_out "items      3 (0 skipped"

    check "$fam: run"
    # --diverse 1: the diversity filter runs (it drops nothing), reading
    # the embeddings scoring stored under the run's template
    t=(); [ "$tmpl" != - ] && t=(--template chat --diverse 1)
    run "$TMAP" run -m "$m" "${rt[@]}" "${b[@]}" -d pool.jsonl --val val.jsonl -n 2 --iters 2 -k 2 --draws 1 \
        --baselines 1 --redraws 1 --indicators loss,length "${t[@]}" --out "run-$fam"
    expect_status 0
    expect_true test "$(wc -l < "run-$fam/selected.jsonl")" -eq 3
    if [ "$tmpl" != - ]; then
        expect_true grep -q '"template": "chat"' "run-$fam/weights.json"
        # every embedding (scoring, tiny set, diversity) read under the chat template
        expect_true test "$(sqlite3 "run-$fam/store.db" "SELECT DISTINCT substr(model, 34) FROM embeddings")" = chat2/e2
    fi
done

# Quantized weights go to llama.cpp's repacked CPU layout by default (on a
# CPU with AMX, by tmap's own plan: src/model/placement.c); --no-repack
# keeps them plain. In every architecture both must load and score the
# same records within 0.01 nats (the kernels only add in another order).
for fam in llama-spm qwen2 qwen35 gemma-4 gpt-2 starcoder; do
    [[ " ${families[*]} " == *" $fam "* ]] || continue
    read -r arch tmpl <<< "${spec[$fam]}"
    b=(-b 64) # the default batch is tried above; here only the weights' layout differs
    check "$fam: Q4_0, repacked and plain ($arch)"
    run "$TMAP" model create -q --out "q-$fam.gguf" --vocab "$VOCABS/ggml-vocab-$fam.gguf" --arch "$arch" \
        --n-embd 64 --n-layer 1 --n-head 2 --ctx 512
    expect_status 0
    run "$TMAP" model quantize -q "q-$fam.gguf" "q4-$fam.gguf" --type q4_0
    expect_status 0
    run "$TMAP" score -m "q4-$fam.gguf" "${rt[@]}" "${b[@]}" -d pool.jsonl --indicators loss -o "q4-$fam.csv"
    expect_status 0
    run "$TMAP" score -m "q4-$fam.gguf" "${rt[@]}" "${b[@]}" -d pool.jsonl --indicators loss -o "q4-$fam-plain.csv" --no-repack
    expect_status 0
    expect_true awk -F, 'FNR == 1 { next } NR == FNR { loss[$1] = $4; next }
                         { d = $4 - loss[$1]; if (d < 0) d = -d; if (!($4 + 0 > 0) || d > 0.01) bad = 1; n++ }
                         END { exit bad || n != 8 }' "q4-$fam.csv" "q4-$fam-plain.csv"
done

check "a Unigram vocabulary llama.cpp cannot write: a message, not an abort"
if [ -f "$VOCABS/ggml-vocab-nomic-bert-moe.gguf" ]; then
    run "$TMAP" model create -q --out nomic.gguf --vocab "$VOCABS/ggml-vocab-nomic-bert-moe.gguf"
    expect_status 4
    expect_err "ggml-vocab-nomic-bert-moe.gguf: a Unigram vocabulary with a precompiled character map"
    expect_true test ! -e nomic.gguf
fi
finish
