# lib.sh - assertions for the CLI tests. Each script sources this, runs its
# checks, and ends with `finish`, which prints "N passed, M failed".
#
# Usage in a script: run CMD...   (sets $status, $out, $err)
#                    expect_status N; expect_out TEXT; expect_err TEXT

TMAP=$1
SRC=$2
MODEL=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tmap-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# Model fingerprints are cached per user; tests keep theirs to themselves.
export TMAP_FINGERPRINT_CACHE="$WORK/fingerprints"

n_pass=0
n_fail=0
current=""

check() { current=$1; }

run() {
    "$@" >"$WORK/.out" 2>"$WORK/.err"
    status=$?
    out=$(cat "$WORK/.out")
    err=$(cat "$WORK/.err")
}

ok()   { n_pass=$((n_pass + 1)); }
bad()  {
    n_fail=$((n_fail + 1))
    echo "FAIL [$current] $*"
    echo "  status: $status"
    echo "  stdout: $(head -c 600 "$WORK/.out")"
    echo "  stderr: $(head -c 600 "$WORK/.err")"
}

expect_status() { [ "$status" -eq "$1" ] && ok || bad "expected exit status $1"; }
expect_out()    { grep -qF -- "$1" "$WORK/.out" && ok || bad "stdout lacks: $1"; }
expect_err()    { grep -qF -- "$1" "$WORK/.err" && ok || bad "stderr lacks: $1"; }
expect_err_lacks() { ! grep -qF -- "$1" "$WORK/.err" && ok || bad "stderr should not hold: $1"; }
expect_no_err() { [ ! -s "$WORK/.err" ] && ok || bad "stderr should be empty"; }
expect_true()   { if "$@"; then ok; else bad "not true: $*"; fi; }

finish() {
    echo "$n_pass passed, $n_fail failed"
    [ "$n_fail" -eq 0 ]
}
