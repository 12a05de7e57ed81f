#!/usr/bin/env bash
# The weight search under mpirun: with --batch 2 (two candidates a round,
# shared among the ranks) and with --proxy-slices 2 (each evaluation's
# slices shared), `tmap run` on 2 and 3 ranks writes selected.jsonl,
# scores.csv, weights.json, tiny.jsonl and trace.csv (less its timing
# column) byte for byte as one process does. Skipped (77) when
# tmap is built without MPI or mpirun is missing.
. "$(dirname "$0")/lib.sh"
. "$SRC/tests/cli/mpi_lib.sh"
run_fixture

# --batch 2: two candidates a round (kriging believer), shared among the
# ranks; one process is the reference again. 9 evaluations: past the
# initial design's 5 (4 indicators alone, equal weights).
check "--batch 2, one process: the reference"
run "$TMAP" run "${common[@]}" --iters 9 --batch 2 --out ref
expect_status 0
expect_true grep -q '"batch": 2' ref/weights.json
expect_true test "$(wc -l < ref/trace.csv)" -ge 10
for np in 2 3; do
    check "--batch 2 on $np ranks: the same outputs"
    run mpi "$np" run "${common[@]}" --iters 9 --batch 2 --out "b$np"
    expect_status 0
    expect_true same_outputs "b$np"
done

# --proxy-slices 2: each evaluation's tiny set in 2 slices; with one
# candidate a round, the ranks decode an evaluation's slices together.
check "--proxy-slices 2, one process: the reference"
rm -rf ref
run "$TMAP" run "${common[@]}" --proxy-slices 2 --out ref
expect_status 0
expect_true grep -q '"slices": 2' ref/weights.json
check "--proxy-slices 2 on 2 ranks: the same outputs"
run mpi 2 run "${common[@]}" --proxy-slices 2 --out s2
expect_status 0
expect_true same_outputs s2

finish
