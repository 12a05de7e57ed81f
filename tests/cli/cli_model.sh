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
expect_err "--n-embd: 0 is out of range"
run "$TMAP" model create --out x.gguf --vocab /nonexistent/v.gguf
expect_status 3
expect_err "/nonexistent/v.gguf: cannot read the vocabulary GGUF"
expect_true test ! -e x.gguf

finish
