#!/usr/bin/env bash
# `mpirun -np 2|3 tmap run`: selected.jsonl, scores.csv, weights.json,
# tiny.jsonl and trace.csv (less its timing column) byte for byte those of
# one process, and the report written. Skipped (77) when
# tmap is built without MPI or mpirun is missing.
. "$(dirname "$0")/lib.sh"
. "$SRC/tests/cli/mpi_lib.sh"
run_fixture

check "one process: the reference"
run "$TMAP" run "${common[@]}" --out ref
expect_status 0

for np in 2 3; do
    check "$np ranks: the same outputs"
    run mpi "$np" run "${common[@]}" --out "np$np"
    expect_status 0
    expect_true same_outputs "np$np"
    # Rank 0 alone prints the summary table.
    expect_true test "$(grep -c '^weight search' "$WORK/.out")" -eq 1
done

finish
