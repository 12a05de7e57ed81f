#!/usr/bin/env bash
# Packs, into .devkit/ (ignored by git), what scripts/device-check.sh needs
# on a GPU machine that reaches no package registry and has no apt: the
# Debian packages tmap builds and tests against (unpacked there, not
# installed), llama.cpp's patched source trimmed to the libraries, and the
# tokenizer families the tests cover. About 44 MB: with the checkout, 53 MB,
# which a device call took (59 MB it refused as over its 64 MiB: it seems
# to count .git too; docs/scoring.md).
#
# Usage: scripts/device-kit.sh            (then run device-check.sh there,
#                                          with .devkit carried)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit="$root/.devkit"

# Each library with its runtime package and what those need beyond a C
# runtime; pkgconf for CMake's pkg_check_modules. Not here: MPI and FAISS
# (both optional to the build), the browser and valgrind (their tests skip).
packages=(libjansson-dev libjansson4 libxxhash-dev libxxhash0 libsqlite3-dev libsqlite3-0 sqlite3
          libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libquadmath0
          libgsl-dev libgsl27 libgslcblas0 libcmocka-dev libcmocka0 pkgconf pkgconf-bin libpkgconf3)

rm -rf "$kit"
mkdir -p "$kit/debs"
(cd "$kit/debs" && apt-get download "${packages[@]}" >/dev/null)
TMAP_LLAMA_EXPORT="$kit/llama" "$root/scripts/llama-setup.sh" >/dev/null
echo "device-kit: $(du -sh "$kit" | cut -f1) in $kit ($(ls "$kit/debs" | wc -l) packages, llama.cpp $(cut -c1-12 "$kit/llama/llama-commit"))"
