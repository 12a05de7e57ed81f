#!/usr/bin/env bash
# tmap model create and tmap info on created models, and their errors.
. "$(dirname "$0")/lib.sh"

check "create is deterministic"
run "$TMAP" model create --quiet --out a.gguf --n-embd 32 --n-layer 1 --seed 5
expect_status 0
expect_no_err
run "$TMAP" model create --quiet --out b.gguf --n-embd 32 --n-layer 1 --seed 5
expect_true cmp -s a.gguf b.gguf
run "$TMAP" model create --quiet --out c.gguf --n-embd 32 --n-layer 1 --seed 6
expect_true test "$(cksum < a.gguf)" != "$(cksum < c.gguf)"
# Tensors are filled several at once: the thread count must not show.
OMP_NUM_THREADS=1 run "$TMAP" model create --quiet --out t1.gguf --n-embd 64 --n-layer 3 --seed 5
OMP_NUM_THREADS=3 run "$TMAP" model create --quiet --out t3.gguf --n-embd 64 --n-layer 3 --seed 5
expect_true cmp -s t1.gguf t3.gguf

check "info describes the model"
run "$TMAP" info -m a.gguf
expect_status 0
expect_out "architecture   llama"
expect_out "vocabulary     32000 tokens"
expect_out "layers         1"
expect_out "width          32 (heads 4)"
expect_out "chat template  no"
run "$TMAP" info -m a.gguf --json
expect_status 0
expect_out '"architecture": "llama"'
expect_out '"n_vocab": 32000'
run "$TMAP" info a.gguf
expect_status 0
expect_out "model          a.gguf"
expect_out "layers         1"
run "$TMAP" info a.gguf -m chat.gguf
expect_status 1
expect_err "two models given ('a.gguf' and -m 'chat.gguf')"

check "chat template"
run "$TMAP" model create --quiet --out chat.gguf --n-embd 32 --n-layer 1 --chat-template chatml
run "$TMAP" info -m chat.gguf
expect_out "chat template  yes"

check "info errors"
run "$TMAP" info -m missing.gguf
expect_status 3
expect_err "missing.gguf: cannot open: No such file or directory"
printf '{"question": "not a model"}\n' > fake.gguf
run "$TMAP" info -m fake.gguf
expect_status 4
expect_err "fake.gguf: not a GGUF file"
run "$TMAP" info
expect_status 1
expect_err "no model given"

check "bad models: exit 4, the file named, the reason, never a crash"
# Every command that loads a model goes through one loader; score, eval and
# info stand for them.
"$TMAP" model create --quiet --out good.gguf --n-embd 16 --n-layer 1 --n-head 2
head -n 3 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -c 20 good.gguf > cut-header.gguf              # the magic, then nothing
head -c $(( $(stat -c %s good.gguf) / 2 )) good.gguf > cut-tensors.gguf
LC_ALL=C sed 's/llama/llamb/g' good.gguf > arch.gguf  # keys and name: an architecture no one knows
LC_ALL=C sed 's/tokenizer\.ggml\.model/tokenizer.ggml.modeX/' good.gguf > novocab.gguf
for cmd in info score eval; do
    case $cmd in
        info)  args=() ;;
        score) args=(-d pool.jsonl -o s.csv) ;;
        eval)  args=(-d pool.jsonl --metric loglik) ;;
    esac
    run "$TMAP" $cmd -q -m cut-header.gguf "${args[@]}"
    expect_status 4
    expect_err "cut-header.gguf: a truncated or damaged GGUF file"
    # gguf's own reason inside tmap's message, and nothing printed beside it
    expect_err "cannot be read: gguf_init_from_reader: "
    expect_true test "$(wc -l < "$WORK/.err")" -eq 1
    run "$TMAP" $cmd -q -m cut-tensors.gguf "${args[@]}"
    expect_status 4
    expect_err "cut-tensors.gguf: llama.cpp cannot load this model"
    expect_err "is not within the file bounds"
    run "$TMAP" $cmd -q -m arch.gguf "${args[@]}"
    expect_status 4
    expect_err "arch.gguf: llama.cpp cannot load this model"
    expect_err "unknown model architecture: 'llamb'"
    run "$TMAP" $cmd -q -m novocab.gguf "${args[@]}"
    expect_status 4
    expect_err "novocab.gguf: llama.cpp cannot load this model"
    expect_err "key not found in model: tokenizer.ggml.model"
done
expect_true test ! -e s.csv

check "create errors"
run "$TMAP" model create
expect_status 1
expect_err "no output file given (--out FILE)"
run "$TMAP" model create --out /nonexistent/dir/m.gguf
expect_status 3
expect_err "/nonexistent/dir/m.gguf: cannot write"
run "$TMAP" model create --out x.gguf --n-embd 30 --n-head 4
expect_status 1
expect_err "n_embd=30 is not a multiple of n_head=4"
run "$TMAP" model create --out x.gguf --n-embd 0
expect_status 1
expect_err "--n-embd: 0 is out of range [8, 65536]"
run "$TMAP" model create --out x.gguf --vocab /nonexistent/v.gguf
expect_status 3
expect_err "/nonexistent/v.gguf: cannot read the vocabulary GGUF"
expect_true test ! -e x.gguf

finish
