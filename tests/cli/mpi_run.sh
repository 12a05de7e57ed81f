#!/usr/bin/env bash
# `mpirun -np 2|3 tmap run`: selected.jsonl, scores.csv, weights.json,
# tiny.jsonl and trace.csv (less its timing column) byte for byte those of
# one process, and the report written. Skipped (77) when
# tmap is built without MPI or mpirun is missing.
. "$(dirname "$0")/lib.sh"

"$TMAP" version | grep -q "MPI: yes" || { echo "mpi_run: tmap is built without MPI"; exit 77; }
command -v mpirun >/dev/null || { echo "mpi_run: no mpirun"; exit 77; }
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
