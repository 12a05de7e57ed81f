#!/usr/bin/env bash
# The weight search under mpirun: with --batch 2 (two candidates a round,
# shared among the ranks) and with --proxy-slices 2 (each evaluation's
# slices shared), `tmap run` on 2 and 3 ranks writes selected.jsonl,
# scores.csv, weights.json, tiny.jsonl and trace.csv (less its timing
# column) byte for byte as one process does. Skipped (77) when
# tmap is built without MPI or mpirun is missing.
. "$(dirname "$0")/lib.sh"

"$TMAP" version | grep -q "MPI: yes" || { echo "mpi_search: tmap is built without MPI"; exit 77; }
command -v mpirun >/dev/null || { echo "mpi_search: no mpirun"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { local np=$1; shift; mpirun --oversubscribe -np "$np" "$TMAP" "$@"; }

head -n 24 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 8 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 1024 -b 512 -t 1 -n 4 --iters 4 -k 2 --draws 1
        --baselines 2 --redraws 1 --indicators loss,steps,length,numeracy --seed 5 --batch-samples 4 --quiet)
outputs=(selected.jsonl scores.csv weights.json tiny.jsonl)
same_outputs() { # folder: the reference's outputs, trace without timings
    for f in "${outputs[@]}"; do cmp -s "ref/$f" "$1/$f" || { echo "$1/$f differs"; return 1; }; done
    cmp -s <(sed 's/,[^,]*$//' ref/trace.csv) <(sed 's/,[^,]*$//' "$1/trace.csv") || { echo "$1/trace.csv differs"; return 1; }
    grep -q '</html>' "$1/report.html"
}

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
