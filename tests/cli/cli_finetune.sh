#!/usr/bin/env bash
# tmap finetune and tmap model pretrain end to end on a 32-wide, 1-layer
# model and 40 GSM8K records: epoch lines, checkpoints, resume, the same
# bytes from the same command, and the errors.
. "$(dirname "$0")/lib.sh"

head -n 40 "$SRC/data/gsm8k/train.jsonl" > d40.jsonl
head -n 10 "$SRC/data/gsm8k/test.jsonl" > t10.jsonl
head -n 20 d40.jsonl > d20.jsonl
"$TMAP" model create --quiet --out base.gguf --n-embd 32 --n-layer 1 --seed 3

check "finetune writes the model, a checkpoint and epoch lines"
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out ft.gguf --epochs 2 --lr 1e-2 -c 256 --val-split 0.2 \
    --eval t10.jsonl -t 2
expect_status 0
expect_out "epoch     train       val  val_resp eval_resp"
expect_true grep -qE '^    0         -   10\.[0-9]{4}   10\.[0-9]{4}   10\.[0-9]{4}' .out
expect_true grep -qE '^    2 ' .out
# All 34 tensors but rope_freqs: token_embd, attn_k and attn_v train with
# tmap's llama.cpp patch (scripts/llama-patches), which make setup applies.
expect_err "trained 33 tensors on 32 records"
expect_true test -z "$(grep "lacks tmap's training patch" .err)"
expect_err "8 held out"
expect_err "wrote ft.gguf"
expect_true test -s ft.gguf
expect_true test -s ft.ckpt-epoch2.gguf
expect_true test ! -e ft.ckpt-epoch1.gguf
expect_true grep -q '"epoch": 2' ft.ckpt.json
# Not a terminal: no progress line, nothing but the summary on stderr.
expect_true test "$(wc -l < .err)" -eq 1

check "training lowers the loss, by the printed numbers"
e0=$(awk '$1 == 0 { print $4 }' .out)
e2=$(awk '$1 == 2 { print $4 }' .out)
t1=$(awk '$1 == 1 { print $2 }' .out)
t2=$(awk '$1 == 2 { print $2 }' .out)
expect_true awk -v a="$e0" -v b="$e2" 'BEGIN { exit !(b < a - 3) }'
expect_true awk -v a="$t1" -v b="$t2" 'BEGIN { exit !(b < a) }'
run "$TMAP" info -m ft.gguf
expect_out "context        2048 tokens (trained)"

check "resume goes on from the checkpoint"
run "$TMAP" finetune -q -m base.gguf -d d40.jsonl --out ft.gguf --epochs 3 --lr 1e-2 -c 256 --val-split 0.2 \
    --eval t10.jsonl -t 2 --resume
expect_status 0
expect_no_err
r2=$(awk '$1 == 2 { print $4 }' .out)
expect_true test "$r2" = "$e2"          # epoch 2 as the checkpoint left it
expect_true grep -qE '^    3 ' .out
expect_true test "$(grep -cE '^ +[0-9]+ ' .out)" -eq 2
run "$TMAP" finetune -q -m base.gguf -d d40.jsonl --out ft.gguf --epochs 3 --lr 1e-2 -c 256 --val-split 0.2 -t 2 --resume
expect_status 1
expect_err "ft.ckpt.json: the checkpoint has done 3 epochs; --epochs 3 leaves nothing to do"

check "--template chat trains the model's own turns, and a resume keeps the layout"
"$TMAP" model create --quiet --out chat.gguf --n-embd 32 --n-layer 1 --seed 3 --chat-template llama2
run "$TMAP" finetune -m chat.gguf -d d20.jsonl --out ftc.gguf --template chat --epochs 1 --lr 1e-2 -c 256 \
    --eval t10.jsonl -t 2
expect_status 0
expect_err "trained 33 tensors on 20 records in the chat layout"
expect_true grep -q '"template": "chat"' ftc.ckpt.json
c0=$(awk '$1 == 0 { print $5 }' .out)
run "$TMAP" finetune -q -m chat.gguf -d d20.jsonl --out ftp.gguf --epochs 1 --lr 1e-2 -c 256 --eval t10.jsonl -t 2
expect_status 0
p0=$(awk '$1 == 0 { print $5 }' .out)
expect_true test -n "$c0" -a -n "$p0" -a "$c0" != "$p0" # "[INST] ... [/INST]" is not "Query: ...\nAnswer:"
run "$TMAP" info -m ftc.gguf
expect_out "chat layout"
run "$TMAP" finetune -m chat.gguf -d d20.jsonl --out ftc.gguf --epochs 2 --lr 1e-2 -c 256 -t 2 --resume
expect_status 1
expect_err "ftc.ckpt.json: the checkpoint trained records in the chat layout; a resume must use --template chat"
# A model without a template: the plain layout, said once, the same numbers.
run "$TMAP" finetune -m base.gguf -d d20.jsonl --out ftb.gguf --template chat --epochs 1 --lr 1e-2 -c 256 \
    --eval t10.jsonl -t 2
expect_status 0
expect_err "has no chat template: prompts use the plain layout"
expect_true test -z "$(grep "chat layout" .err)"
cp .out b-chat.out
run "$TMAP" finetune -q -m base.gguf -d d20.jsonl --out ftb.gguf --epochs 1 --lr 1e-2 -c 256 --eval t10.jsonl -t 2
expect_true test "$(awk '{ print $5 }' .out)" = "$(awk '{ print $5 }' b-chat.out)"

check "pretrain gives the same bytes for the same command"
run "$TMAP" model pretrain -q -d d20.jsonl --out p1.gguf --n-embd 32 --n-layer 1 -c 256 --epochs 1 -t 2
expect_status 0
expect_true test -s p1.init.gguf
run "$TMAP" model pretrain -q -d d20.jsonl --out p2.gguf --n-embd 32 --n-layer 1 -c 256 --epochs 1 -t 1
expect_status 0
expect_true cmp -s p1.gguf p2.gguf

check "a longer training window lengthens the context, a shorter one never shrinks it"
run "$TMAP" info -m p1.gguf
expect_out "context        256 tokens (trained)"
run "$TMAP" finetune -q -m p1.gguf -d d20.jsonl --out long.gguf --epochs 1 --lr 1e-3 -c 512 -t 2
expect_status 0
run "$TMAP" info -m long.gguf
expect_out "context        512 tokens (trained)"
run "$TMAP" finetune -q -m long.gguf -d d20.jsonl --out back.gguf --epochs 1 --lr 1e-3 -c 256 -t 2
expect_status 0
run "$TMAP" info -m back.gguf
expect_out "context        512 tokens (trained)"

check "two fine-tunes of one model never share store entries"
# Same shapes, same metadata, different weights: the fingerprint must see
# the weights, or the second model gets the first one's losses.
head -n 8 d40.jsonl > d8.jsonl
run "$TMAP" finetune -q -m base.gguf -d d8.jsonl --out fa.gguf --epochs 1 --lr 1e-2 -c 256 -t 2
expect_status 0
run "$TMAP" finetune -q -m base.gguf -d d8.jsonl --out fb.gguf --epochs 1 --lr 1e-3 -c 256 -t 2
expect_status 0
expect_true test "$(stat -c %s fa.gguf)" -eq "$(stat -c %s fb.gguf)"
run "$TMAP" score -m fa.gguf -d d8.jsonl --indicators loss --cache two.db --out fa.csv -t 2
expect_status 0
expect_err "8 computed, 0 from the store"
run "$TMAP" score -m fb.gguf -d d8.jsonl --indicators loss --cache two.db --out fb.csv -t 2
expect_status 0
expect_err "8 computed, 0 from the store"
expect_true test -n "$(cmp fa.csv fb.csv)"
# The same model again: everything from the store, the fingerprint from
# its cache (the file is unchanged), the same scores.
run "$TMAP" score -m fb.gguf -d d8.jsonl --indicators loss --cache two.db --out fb2.csv -t 2
expect_status 0
expect_err "0 computed, 8 from the store"
expect_true cmp -s fb.csv fb2.csv

check "finetune errors"
run "$TMAP" finetune -m base.gguf -d missing.jsonl --out x.gguf
expect_status 3
expect_err "missing.jsonl: cannot open"
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out x.gguf --epochs 0
expect_status 1
expect_err "--epochs 0: must be at least 1"
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out /nonexistent/dir/x.gguf
expect_status 3
expect_err "/nonexistent/dir/x.gguf: cannot write"
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out x.gguf --train-layers 'attn,bogus'
expect_status 1
expect_err "--train-layers 'attn,bogus': 'bogus' matches no tensor of base.gguf"
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out x.gguf --train-layers '1-0'
expect_status 1
expect_err "range '1-0' runs backwards"
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out x.gguf -c 300
expect_status 1
expect_err "-c 300: the training window must be a multiple of 256"
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out x.gguf --val-split 2
expect_status 1
expect_err "--val-split 2: must be in [0, 0.9]"
run "$TMAP" finetune -d d40.jsonl --out x.gguf
expect_status 1
expect_err "no model given"
run "$TMAP" finetune -m base.gguf --out x.gguf
expect_status 1
expect_err "no training data given (-d FILE)"
# llama.cpp trains F32 tensors only: a quantized model is refused, not
# trained in its norms alone; leaving its quantized tensors out is allowed.
"$TMAP" model quantize -q base.gguf base-q8.gguf --type q8_0
run "$TMAP" finetune -m base-q8.gguf -d d20.jsonl --out x.gguf -c 256 -t 2
expect_status 4
expect_err "base-q8.gguf: 9 of the 33 tensors to train are not F32 (output.weight is q8_0)"
expect_err "tmap model quantize base-q8.gguf OUT.gguf --type f32"
run "$TMAP" finetune -m base-q8.gguf -d d20.jsonl --out xq.gguf -c 256 -t 2 --train-layers attn_norm,ffn_norm
expect_status 0
expect_err "trained 2 tensors on 20 records"
expect_true test -z "$(grep "lacks tmap's training patch" .err)" # token_embd is q8_0: nothing to tell
# The fine-tune proxy trains it too: refused before the scoring pass.
run "$TMAP" run -m base-q8.gguf -d d40.jsonl --val t10.jsonl --out q8run --proxy finetune -t 2
expect_status 4
expect_err "--proxy finetune trains the model: base-q8.gguf: 9 of the 33 tensors to train are not F32"
expect_true test ! -e q8run/scores.csv
# With a spec, the message names the copy that would train it.
run "$TMAP" finetune -m base-q8.gguf -d d20.jsonl --out x.gguf -c 256 -t 2 --train-layers output
expect_status 4
expect_err "tmap model quantize base-q8.gguf OUT.gguf --type q8_0 --keep-f32 output"
# A Q4_0 model whose first block stays F32 (--keep-f32) trains it: the
# gradient passes back through the frozen Q4_0 block above it, which
# training holds unrepacked (llama.cpp's scheduler aborted the process on
# the repacked layout, which this CPU-only test sees where Q4_0 repacks).
"$TMAP" model create --quiet --out base2.gguf --n-embd 32 --n-layer 2 --seed 3
run "$TMAP" model quantize base2.gguf base-q4.gguf --type q4_0 --keep-f32 0
expect_status 0
expect_err "wrote base-q4.gguf (q4_0; F32: 0)"
run "$TMAP" finetune -m base-q4.gguf -d d20.jsonl --out xq4.gguf -c 256 -t 2 --train-layers 0 \
    --lr 1e-2 --eval t10.jsonl
expect_status 0
expect_err "trained 30 tensors on 20 records"   # blk.0: its matrices, norms and scales
e0=$(awk '$1 == 0 { print $5 }' .out)
e1=$(awk '$1 == 1 { print $5 }' .out)
expect_true awk -v a="$e0" -v b="$e1" 'BEGIN { exit !(b < a) }'
# Its top kept F32 instead, the usual case (a 7B's last block and output).
# The fine-tune proxy's copy would keep the frozen block below in the
# repacked layout (test_proxy); a model to save must not, as saving reads
# every weight back, which the repacked buffer cannot (SIGSEGV, seen).
run "$TMAP" model quantize -q base2.gguf base-q4top.gguf --type q4_0 --keep-f32 1,output
expect_status 0
run "$TMAP" finetune -m base-q4top.gguf -d d20.jsonl --out xq4top.gguf -c 256 -t 2 --train-layers 1,output \
    --lr 1e-2 --eval t10.jsonl
expect_status 0
e0=$(awk '$1 == 0 { print $5 }' .out)
e1=$(awk '$1 == 1 { print $5 }' .out)
expect_true awk -v a="$e0" -v b="$e1" 'BEGIN { exit !(b < a) }'
# A --keep-f32 item that selects nothing is a usage error, and no file.
run "$TMAP" model quantize base.gguf never.gguf --type q4_0 --keep-f32 0,ouptut
expect_status 1
expect_err "--keep-f32 '0,ouptut': 'ouptut' matches no tensor of base.gguf"
expect_true test ! -e never.gguf
run "$TMAP" model quantize d20.jsonl never.gguf --type q4_0 --keep-f32 0
expect_status 4
expect_err "d20.jsonl: not a GGUF file"
expect_true test ! -e never.gguf
run "$TMAP" finetune -m base.gguf -d d40.jsonl --out new.gguf --resume
expect_status 3
expect_err "new.ckpt.json: no checkpoint to resume from"
expect_true test ! -e x.gguf
# Training that cannot fit the memory and swap available stops before the
# copy loads, with what it needs (src/train/memory.c), instead of being
# killed part way: a window of 1,048,576 tokens over a 32,000-token
# vocabulary needs 269 GB for its logits alone.
avail_kb=$(awk '/^(MemAvailable|SwapFree):/ { kb += $2 } END { print kb + 0 }' /proc/meminfo 2>/dev/null || echo 0)
if [ "$avail_kb" -gt 0 ] && [ "$avail_kb" -lt 260000000 ]; then
    run "$TMAP" finetune -m base.gguf -d d20.jsonl --out big.gguf -c 1048576 -t 2
    expect_status 5
    expect_err "base.gguf: training it needs at least 268.7 GB"
    expect_err "a shorter training window (-c, now 1048576) needs less"
    expect_true test ! -e big.gguf
else
    echo "no /proc/meminfo, or over 260 GB available: the refusal of a 269 GB window is not tested"
fi
# The fine-tune proxy's copy too, checked before tmap run's scoring pass
# (TMAP_FAULT=memory-check:1: the system says nothing is available).
run env TMAP_FAULT=memory-check:1 "$TMAP" run -m base.gguf -d d40.jsonl --val t10.jsonl --out memrun \
    --proxy finetune -t 2
expect_status 5
expect_err "--proxy finetune trains the model: base.gguf: training it needs at least"
expect_err "and 0 MB is available (0 MB of memory, 0 MB of swap): it would be killed part way"
expect_true test ! -e memrun/scores.csv

check "pretrain errors"
run "$TMAP" model pretrain --out p.gguf
expect_status 1
expect_err "no training data given (-d FILE)"
run "$TMAP" model pretrain -d d40.jsonl --out /nonexistent/dir/p.gguf
expect_status 3
expect_err "/nonexistent/dir/p.init.gguf: cannot write"

finish
