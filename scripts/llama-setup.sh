#!/usr/bin/env bash
# Builds llama.cpp's libraries (no tools, no server, no tests) from the source
# bundle that the npm package node-llama-cpp ships, and installs them into a
# cache outside the checkout keyed by version and build flags.
#
# Why npm: no Debian package carries llama.cpp and only Debian's archive and
# the npm registry are reachable here; node-llama-cpp carries the full
# llama.cpp tree as a git bundle.
#
# Usage: scripts/llama-setup.sh [cpu|cuda]      (prints the install prefix)
# Env:   TMAP_LLAMA_DIR   use this existing install instead (nothing is built)
#        TMAP_CACHE       cache root (default ~/.cache/tmap)
#        TMAP_LLAMA_EXPORT=DIR  write the patched source, trimmed to what a
#                         CPU or CUDA build of the libraries reads, and the
#                         vocabularies as DIR/vocab.tar.xz, to DIR and build
#                         nothing (scripts/device-kit.sh: a machine that
#                         reaches no registry builds from it)
set -euo pipefail

npm_version=3.21.1
gpu=${1:-cpu}

if [ -n "${TMAP_LLAMA_DIR:-}" ]; then
    if [ ! -f "$TMAP_LLAMA_DIR/include/llama.h" ]; then
        echo "llama-setup: TMAP_LLAMA_DIR=$TMAP_LLAMA_DIR has no include/llama.h" >&2
        exit 1
    fi
    echo "$TMAP_LLAMA_DIR"
    exit 0
fi

flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON
       -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
       -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_COMMON=OFF
       -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=ON
       -DCMAKE_INSTALL_RPATH='$ORIGIN')  # installed libs find their siblings
case "$gpu" in
    cpu)  ;;
    cuda) flags+=(-DGGML_CUDA=ON) ;;
    *)    echo "llama-setup: unknown variant '$gpu' (cpu or cuda)" >&2; exit 1 ;;
esac

# tmap's patches to llama.cpp's training (scripts/llama-patches/README.md):
# without them attn_k, attn_v and token_embd never train.
patches=("$(cd "$(dirname "$0")" && pwd)"/llama-patches/*.patch)

# The key changes whenever the version, a flag or a patch changes, so two
# variants never overwrite each other and a stale build is never reused.
flag_hash=$( { printf '%s\n' "${flags[@]}"; cat "${patches[@]}"; } | sha256sum | cut -c1-10)
cache=${TMAP_CACHE:-$HOME/.cache/tmap}
prefix="$cache/llama/node-llama-cpp-$npm_version-$gpu-$flag_hash"

# Fetches the source bundle into $work/src and applies tmap's patches.
fetch_source() {
    echo "llama-setup: fetching node-llama-cpp@$npm_version from the npm registry" >&2
    (cd "$work" && npm pack --silent "node-llama-cpp@$npm_version" >/dev/null)
    tar -xzf "$work/node-llama-cpp-$npm_version.tgz" -C "$work" package/llama/gitRelease.bundle
    git clone --quiet "$work/package/llama/gitRelease.bundle" "$work/src" 2>/dev/null
    for p in "${patches[@]}"; do
        git -C "$work/src" apply "$p" || { echo "llama-setup: cannot apply $p" >&2; exit 1; }
    done
}

# The vocab-only GGUFs of every tokenizer family llama.cpp ships are how test
# models get a real tokenizer (docs/design.md 13; tests/cli/families.sh).
# The marker says the set is whole; a prefix built before the set was copied
# gets it without a rebuild.
copy_vocabs() {
    mkdir -p "$prefix/share/tmap/vocab"
    cp "$work"/src/models/ggml-vocab-*.gguf "$prefix/share/tmap/vocab/"
    touch "$prefix/share/tmap/vocab/.all"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/tmap-llama.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${TMAP_LLAMA_EXPORT:-}" ]; then
    fetch_source
    out=$TMAP_LLAMA_EXPORT
    rm -rf "$out"
    mkdir -p "$out/ggml/src"
    cp -r "$work"/src/{CMakeLists.txt,LICENSE,licenses,cmake,include,src,vendor} "$out/"
    # vendor/: header-only libraries that llama.cpp's tools and common read,
    # never the libraries; their 5.8 MB would take the kit, the checkout
    # and its .git past the 64 MiB a device call carries. The CMake targets
    # stay (vendor/CMakeLists.txt adds them); cpp-httplib is added only with
    # LLAMA_BUILD_COMMON, which is off.
    : > "$out/vendor/miniaudio/miniaudio.h"
    : > "$out/vendor/nlohmann/json.hpp"
    rm -rf "$out/vendor/cpp-httplib"
    cp -r "$work"/src/ggml/{CMakeLists.txt,cmake,include} "$out/ggml/"
    # ggml's own files and the two backends a build here or on an NVIDIA
    # machine uses; the other backends are only read when switched on.
    find "$work/src/ggml/src" -maxdepth 1 -type f -exec cp {} "$out/ggml/src/" \;
    cp -r "$work"/src/ggml/src/{ggml-cpu,ggml-cuda,ggml-blas} "$out/ggml/src/"
    # The tokenizer families the tests cover (copy_vocabs), compressed:
    # 74 MB as they are, 15 MB so.
    (cd "$work/src/models" && tar -cJf "$out/vocab.tar.xz" ggml-vocab-*.gguf)
    git -C "$work/src" log -1 --format=%H > "$out/llama-commit"
    for p in "${patches[@]}"; do basename "$p"; done > "$out/llama-patches"
    echo "$out"
    exit 0
fi

if [ -f "$prefix/.complete" ]; then
    if [ ! -f "$prefix/share/tmap/vocab/.all" ]; then
        fetch_source
        copy_vocabs
    fi
    echo "$prefix"
    exit 0
fi

start=$(date +%s)
fetch_source

echo "llama-setup: building llama.cpp ($gpu) into $prefix" >&2
cmake -S "$work/src" -B "$work/build" "${flags[@]}" >"$work/configure.log" 2>&1 \
    || { cat "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j"$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log" >&2; exit 1; }
# Install straight into the final prefix (pkg-config, CMake files and RUNPATHs
# record it); the .complete marker, written last, is what makes it count, so
# a killed build is rebuilt from scratch next time.
rm -rf "$prefix"
cmake -DCMAKE_INSTALL_PREFIX="$prefix" -P "$work/build/cmake_install.cmake" >/dev/null

copy_vocabs
git -C "$work/src" log -1 --format=%H > "$prefix/share/tmap/llama-commit"
for p in "${patches[@]}"; do basename "$p"; done > "$prefix/share/tmap/llama-patches"
echo "$(( $(date +%s) - start ))" > "$prefix/.build-seconds"
touch "$prefix/.complete"
echo "llama-setup: done in $(( $(date +%s) - start )) s" >&2
echo "$prefix"
