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

# The fine-tune proxy's memory check counts a copy for every rank of the
# host (all train at once in the search's initial design), and a rank
# whose check fails stops every rank before the scoring pass: rank 0 names
# it, exit 5, no scores. TMAP_FAULT=memory-check:1 is a host with nothing
# available; given to rank 1 alone (a second app context), rank 0's own
# check passes.
check "--proxy finetune: every rank's copy counted, one rank's failure told by rank 0"
ft=(--proxy finetune --train-layers output --ft-records 4)
run env TMAP_FAULT=memory-check:1 mpirun --oversubscribe -np 2 "$TMAP" run "${common[@]}" "${ft[@]}" --out mem2
expect_status 5
expect_err "each of the 2 ranks on this host trains its own copy at once"
expect_true test ! -e mem2/scores.csv
run mpirun --oversubscribe -np 1 "$TMAP" run "${common[@]}" "${ft[@]}" --out mem1 : \
    -np 1 env TMAP_FAULT=memory-check:1 "$TMAP" run "${common[@]}" "${ft[@]}" --out mem1
expect_status 5
expect_err "tmap: rank 1 ("
expect_err "--proxy finetune trains the model:"
expect_true test "$(grep -c 'trains the model' "$WORK/.err")" -eq 1
expect_true test ! -e mem1/scores.csv

finish
