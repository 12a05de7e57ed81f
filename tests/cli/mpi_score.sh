#!/usr/bin/env bash
# `mpirun -np 2|3 tmap score`: the same scores.csv, byte for byte, as one
# process (and as each other), with a store or without, on a pool whose
# last records repeat earlier ones in other batches; ranks given another
# pool order, model or batch size stop before any batch, named; a rank whose
# host lacks the model stops the job instead of leaving it waiting; a batch
# failing on rank 0 stops rank 1 early, one failing on rank 1 stops the job,
# and each keeps the batches before it; then a rank killed
# with kill -9 mid-run: the job ends non-zero naming the rank and host,
# the store keeps the finished batches, and a rerun completes identically.
# Skipped (77) when tmap is built without MPI or mpirun is missing.
. "$(dirname "$0")/lib.sh"

. "$SRC/tests/cli/mpi_lib.sh"
command -v sqlite3 >/dev/null || { echo "mpi_score: needs the sqlite3 command"; exit 77; }

head -n 36 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 4 "$SRC/data/gsm8k/train.jsonl" >> pool.jsonl # duplicates of batch 0 in batch 9
head -n 8 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 512 -b 512 -t 1 --batch-samples 4 --indicators all) # all: support too

check "one process: the reference"
run "$TMAP" score "${common[@]}" --cache ref.db -o ref.csv
expect_status 0
expect_err "scored 40 samples: 36 computed, 0 from the store, 4 repeating an earlier sample"

check "2 ranks, no store: the same bytes"
run mpi 2 score "${common[@]}" -o np2.csv
expect_status 0
expect_true cmp -s ref.csv np2.csv
# Only rank 0 prints the summary.
expect_true test "$(grep -c 'scored 40 samples' "$WORK/.err")" -eq 1

check "a usage error under mpirun: said once, by rank 0, not interleaved"
run mpi 2 score "${common[@]}" --indicator loss -o never.csv
expect_status 1
expect_true test "$(grep -c "unknown option '--indicator'; did you mean --indicators?" "$WORK/.err")" -eq 1
expect_true test "$(grep -c '^usage: tmap score' "$WORK/.err")" -eq 1
expect_err_lacks "tmap: tmap:"
run mpi 2 score "${common[@]}" -o pool.jsonl       # a check of each host's files: every rank that fails says so
expect_status 1
expect_err "-o pool.jsonl is the same file as -d pool.jsonl: writing it would destroy the input"
expect_err "tmap: rank 1: -o pool.jsonl is the same file as -d pool.jsonl"
expect_true test "$(wc -l < pool.jsonl)" -eq 40

check "3 ranks with a store: the same bytes, the same counts"
run mpi 3 score "${common[@]}" --cache np3.db -o np3.csv
expect_status 0
expect_true cmp -s ref.csv np3.csv
expect_err "scored 40 samples: 36 computed, 0 from the store, 4 repeating an earlier sample"
expect_true test "$(sqlite3 np3.db 'select count(*) from scores')" = "$(sqlite3 ref.db 'select count(*) from scores')"

check "a rerun on 3 ranks is served from the store"
run mpi 3 score "${common[@]}" --cache np3.db -o again.csv
expect_status 0
expect_err "0 computed, 36 from the store, 4 repeating an earlier sample"
expect_err "0 tokens in 0 decode calls"
expect_true cmp -s ref.csv again.csv

check "3 ranks on a store holding the first half: the same bytes; rank 0 keeps the stored batches"
# Batches are shared out by their cost. Those with nothing to compute stay
# with rank 0: the 5 stored, batch 9 (copies of batch 0) and the 2 of the
# validation set (embeddings stored); the 4 left go mostly to ranks 1, 2.
head -n 20 pool.jsonl > half.jsonl
run "$TMAP" score "${common[@]/pool.jsonl/half.jsonl}" --cache half.db -o half.csv
expect_status 0
run mpi 3 score "${common[@]}" --cache half.db -o half3.csv
expect_status 0
expect_true cmp -s ref.csv half3.csv
expect_err "scored 40 samples: 16 computed, 20 from the store, 4 repeating an earlier sample"
shares=$(sed -n 's/.*the ranks. shares of the scoring: //p' "$WORK/.err")
echo "shares: $shares"
rank0=$(echo "$shares" | sed -n 's/^rank 0 ([^)]*) \([0-9]*\) batches.*/\1/p')
expect_true test "${rank0:-0}" -ge 8
expect_true test "${rank0:-99}" -le 10
expect_true grep -qE "rank 1 \([^)]*\) [1-9][0-9]* batches" <<< "$shares"
expect_true grep -qE "rank 2 \([^)]*\) [1-9][0-9]* batches" <<< "$shares"

check "9 ranks, about one batch each: the same bytes; the shares notice gives the range"
# Past 8 ranks the notice gives the range and the slowest rank instead of
# a part per rank.
run mpi 9 score "${common[@]}" -o np9.csv
expect_status 0
expect_true cmp -s ref.csv np9.csv
expect_true grep -qE "shares of the scoring: 9 ranks, [0-9]+ to [0-9]+ batches each in [0-9.]+ to [0-9.]+ s, the slowest rank [0-8] " "$WORK/.err"

check "the approximate index's queries split among 2 and 3 ranks: the bytes of one process"
# --ann-min-rows 10 puts this pool's diversity on the FAISS index; each rank
# builds it and answers its share of the rows (skipped without FAISS).
if "$TMAP" version | grep -q "FAISS: approximate"; then
    run "$TMAP" score "${common[@]}" --ann-min-rows 10 -o ann1.csv
    expect_status 0
    expect_err "diversity of 40 samples from an approximate index"
    run mpi 2 score "${common[@]}" --ann-min-rows 10 -o ann2.csv
    expect_status 0
    expect_true cmp -s ann1.csv ann2.csv
    run mpi 3 score "${common[@]}" --ann-min-rows 10 -o ann3.csv
    expect_status 0
    expect_true cmp -s ann1.csv ann3.csv
    # The index was in use (on 40 rows it may find the exact neighbours), and
    # only rank 0 said so.
    expect_err "diversity of 40 samples from an approximate index"
    expect_true test "$(grep -c 'approximate index' "$WORK/.err")" -eq 1
else
    echo "no FAISS in this build: the split of the index's queries is not tested"
fi

# One launch, other arguments per rank (Open MPI's "A : B"): what a host
# with a stale copy of a file, or a rank started with other options, does.
mpmd() {
    local a=$1 b=$2
    shift 2
    # The timeout turns a job that would wait for ever into a failed check.
    run timeout --kill-after=10 120 mpirun --oversubscribe -np 1 "$TMAP" score "${common[@]}" $a "$@" \
        : -np 1 "$TMAP" score "${common[@]}" $b "$@"
}

check "each rank may use its own threads: the same bytes"
mpmd "-t 1" "-t 2" -o threads.csv
expect_status 0
expect_true cmp -s ref.csv threads.csv

check "rank 1 reads the pool in another order: stopped before any batch, named, nothing stored"
# The same 40 records with the first two swapped: a rank that scored its
# batches from this file would send rank 0 the values of other records.
sed -n 2p pool.jsonl > swapped.jsonl
sed -n 1p pool.jsonl >> swapped.jsonl
sed -n '3,$p' pool.jsonl >> swapped.jsonl
mpmd "-d pool.jsonl" "-d swapped.jsonl" --cache mixed.db -o mixed.csv
expect_status 2
expect_err "rank 1 ($(hostname)): its pool (swapped.jsonl: 40 records, fingerprint"
expect_err "is not rank 0's (40 records, fingerprint"
expect_true test ! -e mixed.csv
expect_true test "$(sqlite3 mixed.db 'select count(*) from scores')" -eq 0

check "rank 1 loads another model: stopped, named"
"$TMAP" model create --quiet --out other.gguf --n-embd 32 --n-layer 1 --seed 5
mpmd "-m $MODEL" "-m other.gguf" -o other.csv
expect_status 4
expect_err "rank 1 ($(hostname)): its target model (-m) is not rank 0's"
expect_true test ! -e other.csv

check "3 ranks, rank 1 loads another model: each rank names it once, not 'rank 2: rank 1'"
run timeout --kill-after=10 120 mpirun --oversubscribe -np 1 "$TMAP" score "${common[@]}" -m "$MODEL" -o other3.csv \
    : -np 1 "$TMAP" score "${common[@]}" -m other.gguf -o other3.csv \
    : -np 1 "$TMAP" score "${common[@]}" -m "$MODEL" -o other3.csv
expect_status 4
expect_err "rank 1 ($(hostname)): its target model (-m) is not rank 0's"
expect_true test "$(grep -cE 'rank [0-9]+: rank [0-9]+ \(' "$WORK/.err")" -eq 0
expect_true test ! -e other3.csv

check "rank 1's host lacks the model file: the job stops (it does not wait for ever), named"
# A failure before any collective, on one rank only: rank 0 is waiting for
# it in the input check. The failed rank stops the job after a short grace.
mpmd "-m $MODEL" "-m missing.gguf" -o missing.csv
# MPI_Abort's code (3, the I/O error) or the error of the rank it cut off
# reaches mpirun first: any failure but the timeout's (124, 137).
stopped() { [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$status" -ne 137 ]; }
expect_true stopped
expect_err "tmap: rank 1: "
expect_err "missing.gguf"
expect_true test ! -e missing.csv

check "rank 0's host lacks the model file: the job stops, named"
mpmd "-m missing.gguf" "-m $MODEL" -o missing.csv
expect_true stopped
expect_err "missing.gguf"
expect_true test ! -e missing.csv

check "rank 1 is given another batch size: stopped, named"
mpmd "--batch-samples 4" "--batch-samples 8" -o batch.csv
expect_status 1
expect_err "its batch size (--batch-samples) is 8, rank 0's 4"
# A batch that fails mid-run on one rank. No real input fails on one rank
# only at a chosen batch, so TMAP_FAULT=score-batch:N makes the N-th batch
# its process computes fail (src/util/fault.h). A longer pool of small
# batches gives rank 1 many of them, so stopping early shows.
head -n 160 "$SRC/data/gsm8k/train.jsonl" > long.jsonl
long=(-m "$MODEL" -d long.jsonl --val val.jsonl -c 512 -b 512 -t 1 --batch-samples 2 --indicators loss,length)
faulty() { # RANK N ARGS...: rank RANK fails the N-th batch it computes
    local rank=$1 n=$2 on0=(env) on1=(env)
    shift 2
    if [ "$rank" -eq 0 ]; then on0+=("TMAP_FAULT=score-batch:$n"); else on1+=("TMAP_FAULT=score-batch:$n"); fi
    # SLOW1=SECONDS: every batch of rank 1 takes that much longer.
    [ -n "${SLOW1:-}" ] && on1+=("TMAP_FAULT_SLOW=score-batch:$SLOW1")
    run timeout --kill-after=10 120 mpirun --oversubscribe -np 1 "${on0[@]}" "$TMAP" score "${long[@]}" "$@" \
        : -np 1 "${on1[@]}" "$TMAP" score "${long[@]}" "$@"
}
# The store holds the batches before the failed one (samples A-B), in pool
# order, 2 values each, and a rerun on 2 ranks completes with the bytes of
# one that never failed.
kept_then_resumed() { # STORE OUTPUT
    local first
    first=$(sed -n 's/.*samples \([0-9]*\)-[0-9]*: failed on purpose.*/\1/p' "$WORK/.err" | head -n 1)
    echo "failed at sample $first; $(sqlite3 "$1" 'select count(*) from scores') values stored"
    expect_true test -n "$first"
    expect_true test ! -e "$2"
    expect_true test "$(sqlite3 "$1" 'select count(*) from scores')" -eq $((2 * (${first:-1} - 1)))
    run mpi 2 score "${long[@]}" --cache "$1" -o "$2"
    expect_status 0
    expect_true cmp -s long-ref.csv "$2"
    expect_err "$((${first:-1} - 1)) from the store"
}
run mpi 2 score "${long[@]}" -o long-ref.csv
expect_status 0

check "rank 0 fails its 5th batch: rank 1 stops before computing all of its own; the store keeps what came first"
faulty 0 5 --cache f0.db -o f0.csv
expect_status 4
expect_err "failed on purpose (TMAP_FAULT)"
# Before, rank 1 computed every batch of its share before the job ended.
read -r done share <<< "$(sed -n 's/.*note: rank 1 ([^)]*) stopped after \([0-9]*\) of its \([0-9]*\) batches, as rank 0 failed.*/\1 \2/p' "$WORK/.err")"
echo "rank 1 stopped after ${done:-?} of its ${share:-?} batches"
expect_true test -n "$share"
expect_true test "${done:-99}" -lt "${share:-0}"
# Rank 0 reports the failure; rank 1 does not repeat it as its own.
expect_true test "$(grep -c 'failed on purpose' "$WORK/.err")" -eq 1
expect_true test "$(grep -c '^tmap: rank 1:' "$WORK/.err")" -eq 0
kept_then_resumed f0.db f0.csv

check "rank 1 far behind when rank 0 fails: it still computes its batches before the failure, which are stored"
# Rank 0 fails its 3rd batch while a slow rank 1 has done few of its own;
# rank 1 used to stop at once, leaving holes before the failure that one
# process would have filled (seen on a loaded machine in CI).
SLOW1=0.3 faulty 0 3 --cache fs.db -o fs.csv
expect_status 4
expect_err "failed on purpose (TMAP_FAULT)"
kept_then_resumed fs.db fs.csv

check "rank 1 fails its 3rd batch: rank 0 names it once and stops; the store keeps what came first"
faulty 1 3 --cache f1.db -o f1.csv
expect_status 4
expect_err "tmap: rank 1 ($(hostname)): samples "
expect_true test "$(grep -c 'failed on purpose' "$WORK/.err")" -eq 1
kept_then_resumed f1.db f1.csv


check "kill -9 of rank 1 mid-run: the job stops and names it; a rerun completes identically"
# The kill must land mid-run: some batches stored, not all. The delay
# adapts until it does (machines vary in speed).
total=$(sqlite3 ref.db 'select count(*) from scores')
landed=0 delay=1.5
for try in 1 2 3 4 5 6; do
    rm -f k.db k.db-wal k.db-shm
    # mpirun itself in the background (not through a function's subshell):
    # the ranks are then its children.
    mpirun --oversubscribe -np 2 "$TMAP" score "${common[@]}" --cache k.db -o killed.csv --quiet \
        > kill.out 2> kill.err &
    launcher=$!
    sleep "$delay"
    # A job that ended before the kill leaves no rank to find either: that
    # delay was too long, not too short.
    ended=0
    kill -0 "$launcher" 2>/dev/null || ended=1
    rank1=""
    for pid in $(pgrep -P "$launcher"); do
        grep -qa "OMPI_COMM_WORLD_RANK=1" "/proc/$pid/environ" 2>/dev/null && rank1=$pid
    done
    [ -n "$rank1" ] && kill -9 "$rank1"
    wait "$launcher"
    kstatus=$?
    stored=$(sqlite3 k.db 'select count(*) from scores' 2>/dev/null || echo 0)
    if [ -n "$rank1" ] && [ "$kstatus" -ne 0 ] && [ "$stored" -gt 0 ] && [ "$stored" -lt "$total" ]; then
        landed=1
        break
    fi
    # Ranks not started yet, or nothing stored: later; finished first: earlier.
    echo "kill: try $try at ${delay}s: job ended first $ended, rank 1 found ${rank1:+yes}, exit $kstatus, $stored stored"
    factor=1.5
    if [ "$ended" -eq 1 ] || { [ -n "$rank1" ] && { [ "$kstatus" -eq 0 ] || [ "$stored" -ge "$total" ]; }; }; then
        factor=0.6
    fi
    delay=$(awk -v d="$delay" -v f="$factor" 'BEGIN { printf "%.2f", d * f }')
done
echo "kill: try $try, ${delay}s, exit $kstatus, $stored of $total values stored"
expect_true test "$landed" -eq 1
expect_true test "$kstatus" -ne 0
# Open MPI's launcher names the rank, the signal and the host.
expect_true grep -q "process rank 1 .* on node $(hostname) exited on signal 9" kill.err
[ "$landed" -eq 1 ] || cat kill.err
expect_true test "$(sqlite3 k.db 'PRAGMA integrity_check')" = ok
run mpi 2 score "${common[@]}" --cache k.db -o resumed.csv
expect_status 0
expect_true cmp -s ref.csv resumed.csv
expect_true grep -qE "[1-9][0-9]* from the store" "$WORK/.err"
expect_true test "$(sqlite3 k.db 'select count(*) from scores')" -eq "$total"

finish
