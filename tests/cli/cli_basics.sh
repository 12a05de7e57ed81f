#!/usr/bin/env bash
# The command table, help and version output, and unknown input.
. "$(dirname "$0")/lib.sh"

check "help lists every command"
run "$TMAP" --help
expect_status 0
for c in version info data model; do expect_out "  $c "; done

check "no command is a usage error"
run "$TMAP"
expect_status 1

check "unknown command"
run "$TMAP" frobnicate
expect_status 1
expect_err "'frobnicate' is not a command"
expect_err_lacks "did you mean"
run "$TMAP" slect -d pool.jsonl             # a typo: the command it most likely meant
expect_status 1
expect_err "'slect' is not a command; did you mean select?"

check "version"
run "$TMAP" version
expect_status 0
expect_out "tmap 0.1.0"
expect_out "llama.cpp "
run "$TMAP" version --json
expect_status 0
expect_out '{"tmap": "0.1.0", "build": "'

check "every command has --help"
for c in "version" "info" "data stats" "data decontaminate" "model create"; do
    run "$TMAP" $c --help
    expect_status 0
    expect_out "usage: tmap $c"
done

check "subcommand groups"
run "$TMAP" data
expect_status 1
expect_err "tmap data: expected a subcommand"
expect_err "  stats "
expect_err "  decontaminate the pool without"   # the column widens to the longest name
run "$TMAP" model frob
expect_status 1
expect_err "tmap model: unknown subcommand 'frob'"
run "$TMAP" model --help
expect_status 0
expect_out "  create "

check "unknown option names itself and the usage"
run "$TMAP" info --frob
expect_status 1
expect_err "unknown option '--frob'"
expect_err "usage: tmap info"
expect_err_lacks "did you mean"            # nothing is near --frob
run "$TMAP" run --indicator loss            # a typo: the option it most likely meant
expect_status 1
expect_err "unknown option '--indicator'; did you mean --indicators?"
run "$TMAP" select --ouput x.jsonl
expect_err "unknown option '--ouput'; did you mean --out?"
run "$TMAP" score --quet
expect_err "unknown option '--quet'; did you mean --quiet?"
run "$TMAP" learn -x 1                      # short options are a letter apart: no guess
expect_err "unknown option '-x'"
expect_err_lacks "did you mean"

finish
