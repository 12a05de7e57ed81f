#!/usr/bin/env bash
# Runs each libFuzzer harness (fuzz/fuzz_*.c) for RUNS executions or SECONDS,
# whichever comes first, from the committed corpus, then merges what it found
# into fuzz/corpus/NAME (kept minimal: only inputs that add coverage).
# Crash, leak and timeout reproducers go to fuzz/crashes/NAME/, which ctest
# does not replay until they are fixed and moved into the corpus.
# Prints one line per harness: executions, seconds, crashes.
#
# Usage: [FUZZ_SEED=N] scripts/fuzz.sh BUILD_DIR RUNS SECONDS [NAME...]
#   FUZZ_SEED=N (N > 0) makes libFuzzer's mutations repeatable, as CI wants;
#   0 or unset lets libFuzzer draw a seed, as a long hunt wants.
set -uo pipefail
build=$1 runs=$2 seconds=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(records fields csv weights tiny answer prompt)
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
# Each input goes through a file (the parsers read files): in memory that
# is 3.4x the executions per second of a disk-backed /tmp.
[ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
status=0
for name in "${names[@]}"; do
    bin=$build/fuzz/fuzz_$name
    corpus=$here/fuzz/corpus/$name
    crashes=$here/fuzz/crashes/$name
    work=$build/fuzz/work-$name
    mkdir -p "$crashes" "$work"
    log=$build/fuzz/$name.log
    start=$(date +%s)
    "$bin" -seed="${FUZZ_SEED:-0}" -runs="$runs" -max_total_time="$seconds" -max_len=65536 -timeout=20 -rss_limit_mb=2560 \
        -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "$corpus" >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    found=$(find "$crashes" -type f | wc -l)
    # Keep the corpus small: merge only inputs that add coverage.
    "$bin" -merge=1 "$corpus" "$work" >"$build/fuzz/$name.merge.log" 2>&1
    printf 'fuzz %-8s %12s executions in %5d s, exit %d, %d reproducer(s) in fuzz/crashes/%s\n' \
        "$name" "${execs:-?}" "$took" "$rc" "$found" "$name"
    [ "$rc" -ne 0 ] || [ "$found" -ne 0 ] && status=1
done
exit $status
