# mpi_lib.sh - what the MPI tests share, sourced after lib.sh: a skip (77)
# when tmap is built without MPI or mpirun is missing, Open MPI's settings
# for root and for more ranks than cores, `mpi NP ARGS...`, and the
# `tmap run` fixture of mpi_run and mpi_search.
name=$(basename "$0" .sh)
"$TMAP" version | grep -q "MPI: yes" || { echo "$name: tmap is built without MPI"; exit 77; }
command -v mpirun >/dev/null || { echo "$name: no mpirun"; exit 77; }
# As root, Open MPI wants both of these; three ranks on two cores need
# --oversubscribe.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { local np=$1; shift; mpirun --oversubscribe -np "$np" "$TMAP" "$@"; }

# A small `tmap run` (pool, validation, options) and same_outputs FOLDER:
# the folder's outputs are the reference run's in ref/, the trace without
# its timing column.
run_fixture() {
    head -n 24 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
    head -n 8 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
    declare -g -a common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 1024 -b 512 -t 1 -n 4 --iters 4 -k 2
                          --draws 1 --baselines 2 --redraws 1 --indicators loss,steps,length,numeracy --seed 5
                          --batch-samples 4 --quiet)
    declare -g -a outputs=(selected.jsonl scores.csv weights.json tiny.jsonl)
}
same_outputs() {
    for f in "${outputs[@]}"; do cmp -s "ref/$f" "$1/$f" || { echo "$1/$f differs"; return 1; }; done
    cmp -s <(sed 's/,[^,]*$//' ref/trace.csv) <(sed 's/,[^,]*$//' "$1/trace.csv") || { echo "$1/trace.csv differs"; return 1; }
    grep -q '</html>' "$1/report.html"
}
