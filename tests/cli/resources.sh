#!/usr/bin/env bash
# Out of resources. A pool larger than the address space allows (ulimit -v):
# exit status 5 and a message naming the file. Outputs on a full file system
# and on a read-only one (a small tmpfs mounted for the test, so root only:
# elsewhere those checks report a skip to ctest): a clear message, exit
# status 3, the store intact, the earlier outputs untouched, no temporary
# files left behind.
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || { echo "resources: needs the sqlite3 command (make setup installs it)"; exit 1; }

check "a pool larger than ulimit -v"
# AddressSanitizer reserves terabytes of shadow address space at start, so
# a sanitized tmap cannot run under any ulimit -v: that check is for the
# normal build only (make test runs it).
# Nor can a CUDA build: its libraries (cuBLAS alone maps hundreds of MB)
# fail to load under a limit the 204 MB pool exceeds (seen on an H200
# machine: "libcublas.so.13: failed to map segment"); the CPU build checks it.
if "$TMAP" version | grep -q "with ASan"; then
    echo "resources: a sanitized build cannot run under ulimit -v; that check is left to make test"
elif "$TMAP" version | grep -q "CUDA :"; then
    echo "resources: a CUDA build cannot load its libraries under ulimit -v; that check is left to the CPU build"
else
    line='{"question": "What is two plus two, asked at length: '$(printf 'x%.0s' $(seq 2000))'?", "answer": "2 + 2 = 4\n#### 4"}'
    yes "$line" | head -n 100000 > big.jsonl  # 204 MB
    # OpenBLAS's worker threads retry a failed allocation forever under a
    # low ulimit -v; one thread has no workers.
    run bash -c 'ulimit -v 150000; OPENBLAS_NUM_THREADS=1 exec "$0" data stats big.jsonl' "$TMAP"
    expect_status 5
    expect_err "big.jsonl: out of memory"
    rm -f big.jsonl
fi

mnt=$WORK/mnt
mkdir -p "$mnt"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=2m tmpfs "$mnt" 2>/dev/null; then
    echo "resources: the full and read-only file system checks need root and mount: skipped"
    finish || exit 1
    exit 77
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$WORK"' EXIT

head -n 24 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
head -n 8 "$SRC/data/gsm8k/test.jsonl" > val.jsonl
common=(-m "$MODEL" -d pool.jsonl --val val.jsonl -c 1024 -b 512 -t 2 -n 4 --iters 3 -k 2 --draws 1
        --baselines 2 --redraws 1 --indicators loss,steps,length --cache store.db --quiet)
outputs=(selected.jsonl scores.csv weights.json tiny.jsonl trace.csv report.html)
untouched() {
    for f in "${outputs[@]}"; do cmp -s "saved/$f" "$mnt/out/$f" || return 1; done
    [ -z "$(ls "$mnt/out" | grep '\.tmp\.')" ]
}

check "a first run writes its outputs on the small file system"
run "$TMAP" run "${common[@]}" --seed 5 --out "$mnt/out"
expect_status 0
cp -r "$mnt/out" saved

check "a full file system: exit 3, the reason, nothing lost"
dd if=/dev/zero of="$mnt/filler" bs=64k 2>/dev/null
run "$TMAP" run "${common[@]}" --seed 6 --out "$mnt/out"
expect_status 3
expect_err "No space left on device"
expect_err "$mnt/out/"
expect_true untouched
expect_true test "$(sqlite3 store.db 'PRAGMA integrity_check')" = ok

check "a read-only file system: exit 3, the reason, nothing lost"
rm -f "$mnt/filler"
mount -o remount,ro "$mnt"
run "$TMAP" run "${common[@]}" --seed 6 --out "$mnt/out"
expect_status 3
expect_err "Read-only file system"
expect_true untouched
expect_true test "$(sqlite3 store.db 'PRAGMA integrity_check')" = ok

check "space again: the run finishes from the store"
mount -o remount,rw "$mnt"
run "$TMAP" run "${common[@]}" --seed 6 --out "$mnt/out"
expect_status 0
expect_true test -s "$mnt/out/selected.jsonl"

finish
