#!/usr/bin/env bash
# Installs what tmap needs on Debian: build tools and libraries from the
# archive, then llama.cpp (scripts/llama-setup.sh). Idempotent and quick when
# everything is in place: it asks dpkg, and only calls apt-get for what is
# missing. Prints the llama.cpp prefix on its last line.
#
# Usage: scripts/setup.sh [cpu|cuda] [--test] [--fuzz]
#   --test also installs what only the tests need (make test, make asan), so
#   that `make demo` stays lean; --fuzz what make fuzz needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# libfaiss-dev: the approximate neighbours behind diversity on large pools
# (optional to the build: without it diversity is exact at any size).
packages=(build-essential cmake pkg-config git ca-certificates npm
          libjansson-dev libxxhash-dev libcmocka-dev libsqlite3-dev libopenblas-dev libgsl-dev
          libfaiss-dev libopenmpi-dev openmpi-bin)
# chromium: tests/cli/report_browser.sh renders report.html headless.
# sqlite3: tests/cli/kill_run.sh runs PRAGMA integrity_check on killed stores.
# valgrind: the model-free unit tests run again under memcheck (tests/valgrind.sh).
test_packages=(chromium sqlite3 valgrind)
# clang and its runtime libraries (libFuzzer, ASan, UBSan): make fuzz.
# clang only recommends the runtime, so a machine set to skip
# recommendations would lack libFuzzer without the second name.
fuzz_packages=(clang libclang-rt-14-dev)

gpu=cpu
for arg in "$@"; do
    case "$arg" in
        --test) packages+=("${test_packages[@]}") ;;
        --fuzz) packages+=("${fuzz_packages[@]}") ;;
        *)      gpu=$arg ;; # cpu|cuda: llama-setup.sh checks it
    esac
done

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from elsewhere (nodesource, nvm): having the command is enough.
if command -v npm >/dev/null 2>&1; then
    missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]}"

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

"$here/llama-setup.sh" "$gpu"
