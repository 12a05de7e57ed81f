#!/usr/bin/env bash
# The GPU checks of docs/scoring.md ("On a GPU") in one prepared run on a
# lent machine (the device tool: one H200, 16 cores, no package registry,
# no apt, 15 minutes a session). Needs .devkit/ from scripts/device-kit.sh,
# carried with the call. Stages, in order, each timed in the log:
#
#   build   unpack the kit's Debian packages into /tmp/tmap-kit (unpacked,
#           not installed: the image is not Debian), build llama.cpp with
#           CUDA from the kit's source and tmap against both (build-gpu/,
#           build-gpu-llama/: ignored, so kept while the machine stays warm)
#   model   a 7B-shape model (4096 wide, 32 layers, Llama-2 vocabulary,
#           Q8_0) for the benches, unless one is there
#   bench   bench_score and bench_proxy on it, GPU memory from nvidia-smi
#           (BENCH_SAMPLES, default 256; BENCH_DIAGNOSE=1 adds bench_score's
#           diagnostic arms and a two-lane bench_proxy; BENCH_PROXY=0 leaves
#           bench_proxy out)
#   test    the suite with every layer offloaded (tmap's default -ngl -1;
#           CTEST_ARGS narrows it)
#   test+model  both at once: the model is written while the suite runs
#           (nothing is timed there), so a bench call that follows has less
#           to do in the time a call is given
#
# Usage (device tool, repository root; .devkit in carry, timeout_s 590),
# each call right after the one before, while the machine is warm:
#   STAGES="build test+model" bash scripts/device-check.sh
#   STAGES=bench BENCH_DIAGNOSE=1 bash scripts/device-check.sh
# DEVICE_GPU=cpu rehearses every stage on a machine without a GPU,
# SHAPE="512 8" shrinks the bench model for that, and DEVICE_LLAMA=PREFIX
# takes an installed llama.cpp instead of building one.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# $OUT brings back 8 files at most: the log, ctest's and the two benches'
# outputs go there, the build logs beside the builds (a failure's tail is
# in the log).
out=${OUT:-$root/device-out}
logs="$root/build-gpu-logs"
gpu=${DEVICE_GPU:-cuda}
stages=${STAGES:-build bench test}
read -r embd layers <<< "${SHAPE:-4096 32}"
jobs=$(nproc)
kit=/tmp/tmap-kit
# Outside the checkout: CMake leaves directories of the project out of an
# installed library's RUNPATH, and tests/cli/install.sh links against one.
llama=${DEVICE_LLAMA:-/tmp/tmap-llama}
mkdir -p "$out" "$logs"
exec > >(tee -a "$out/device-check.log") 2>&1
t0=$(date +%s)
say() { echo "== +$(( $(date +%s) - t0 ))s $*"; }
die() { say "FAILED: $*"; exit 1; }

[ -d .devkit/debs ] && [ -d .devkit/llama ] || die "no .devkit here: run scripts/device-kit.sh and carry .devkit"

# The kit's libraries and pkg-config, wherever a stage runs.
libdir="$kit/usr/lib/x86_64-linux-gnu"
if [ ! -x "$kit/usr/bin/pkgconf" ]; then
    mkdir -p "$kit"
    for f in .devkit/debs/*.deb; do dpkg -x "$f" "$kit" || die "cannot unpack $f"; done
    # The packages' .pc files name /usr; here they live under $kit/usr.
    sed -i "s|=/usr|=$kit/usr|" "$libdir"/pkgconfig/*.pc "$libdir"/openblas-pthread/pkgconfig/*.pc
fi
export LD_LIBRARY_PATH="$libdir:$libdir/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The linker too: CMakeLists.txt passes GSL by name (-lgsl, gslcblas left out).
export LIBRARY_PATH="$libdir:$libdir/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}"
export PKG_CONFIG_PATH="$libdir/pkgconfig:$libdir/openblas-pthread/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PATH="$kit/usr/bin:$PATH"
say "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no GPU')"

stage_build() {
    say "build: llama.cpp ($gpu) from the kit's source ($(cut -c1-12 .devkit/llama/llama-commit))"
    local flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF
                 -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
                 -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
                 -DGGML_NATIVE=ON -DCMAKE_INSTALL_RPATH='$ORIGIN')
    # Only the chip at hand: every extra CUDA architecture is another
    # compile of each kernel.
    [ "$gpu" = cuda ] && flags+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native)
    if [ ! -f "$llama/include/llama.h" ]; then
        rm -rf build-gpu  # built against another llama.cpp install
        cmake -S .devkit/llama -B build-gpu-llama "${flags[@]}" > "$logs/llama-configure.log" 2>&1 \
            || { tail -30 "$logs/llama-configure.log"; die "llama.cpp configure"; }
        cmake --build build-gpu-llama -j"$jobs" > "$logs/llama-build.log" 2>&1 \
            || { grep -m5 -B2 -A5 'error' "$logs/llama-build.log"; die "llama.cpp build"; }
        cmake --install build-gpu-llama --prefix "$llama" > /dev/null || die "llama.cpp install"
        mkdir -p "$llama/share/tmap/vocab"
        tar -C "$llama/share/tmap/vocab" -xJf .devkit/llama/vocab.tar.xz || die "vocabularies"
        touch "$llama/share/tmap/vocab/.all"
        cp .devkit/llama/llama-commit .devkit/llama/llama-patches "$llama/share/tmap/"
    fi
    say "build: tmap"
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$llama" \
        -DPKG_CONFIG_EXECUTABLE="$kit/usr/bin/pkgconf" -DTMAP_MPI=OFF -DTMAP_FAISS=OFF \
        > "$logs/tmap-configure.log" 2>&1 || { tail -30 "$logs/tmap-configure.log"; die "tmap configure"; }
    cmake --build build-gpu -j"$jobs" > "$logs/tmap-build.log" 2>&1 \
        || { grep -m5 -B2 -A5 'error' "$logs/tmap-build.log"; die "tmap build"; }
    build-gpu/tmap version
    say "build: done"
}

# GPU memory in use, MiB (0 without nvidia-smi), sampled while a command runs.
peak_vram() {
    local peak=0 now
    while kill -0 "$1" 2>/dev/null; do
        now=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
        [ -n "$now" ] && [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.5
    done
    echo "$peak"
}

timed_bench() {
    local name=$1
    shift
    "$@" > "$out/$name.txt" 2> "$logs/$name.err" &
    local pid=$!
    local vram
    vram=$(peak_vram "$pid")
    wait "$pid" || { tail -5 "$logs/$name.err"; die "$name"; }
    cat "$out/$name.txt"
    say "$name: peak GPU memory $vram MiB"
}

bench_model=build-gpu/bench-models/llama-${embd}x${layers}-q8_0.gguf

stage_model() {
    [ -f "$bench_model" ] && return 0
    mkdir -p build-gpu/bench-models
    # The F32 original of a 7B shape is 27 GB, written twice (tmap adds its
    # metadata to a copy): in memory when /dev/shm holds that, as the disk
    # has 64 GB in all.
    local f32=${bench_model%-q8_0.gguf}.gguf
    local shm_gb
    shm_gb=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
    [ "${shm_gb:-0}" -gt $(( embd * embd * layers * 13 * 8 / 1000000000 + 4 )) ] && f32=/dev/shm/tmap-f32.gguf
    say "model: creating the ${embd}x${layers} model ($f32, then Q8_0)"
    build-gpu/tmap model create --quiet --out "$f32" --n-embd "$embd" --n-layer "$layers" \
        --n-head $((embd / 128 > 1 ? embd / 128 : 2)) || die "model create"
    # Under another name until whole: a call cut short leaves no half model.
    build-gpu/tmap model quantize "$f32" "$bench_model.part" --type q8_0 > /dev/null || die "quantize"
    rm -f "$f32"
    mv "$bench_model.part" "$bench_model"
    ls -l "$bench_model"
    say "model: done"
}

stage_bench() {
    stage_model
    local threads=$jobs
    local diagnose=
    [ "${BENCH_DIAGNOSE:-0}" = 1 ] && diagnose=diagnose
    timed_bench bench_score build-gpu/bench/bench_score "$bench_model" data/gsm8k/train.jsonl \
        "${BENCH_SAMPLES:-256}" "$threads" 3 $diagnose
    [ "${BENCH_PROXY:-1}" = 0 ] || timed_bench bench_proxy build-gpu/bench/bench_proxy "$bench_model" \
        data/gsm8k/train.jsonl data/gsm8k/test.jsonl 8 100 "$threads" 3
    # Two lanes (tmap.h n_lanes) against the one-lane figures just above.
    [ "${BENCH_PROXY:-1}" = 0 ] || [ -z "$diagnose" ] || timed_bench bench_proxy_lanes \
        build-gpu/bench/bench_proxy "$bench_model" data/gsm8k/train.jsonl data/gsm8k/test.jsonl 8 100 "$threads" 3 2
    say "bench: done"
}

stage_test() {
    say "test: the suite, every layer offloaded"
    # shellcheck disable=SC2086
    (cd build-gpu && ctest -j"$jobs" --timeout 300 --output-on-failure ${CTEST_ARGS:-}) > "$out/ctest.log" 2>&1
    local rc=$?
    grep -E 'tests passed|tests failed|\*\*\*|Not Run|Skipped' "$out/ctest.log" | tail -25
    say "test: done (ctest exit $rc)"
}

for s in $stages; do
    case "$s" in
        build) stage_build ;;
        model) stage_model ;;
        bench) stage_bench ;;
        test)  stage_test ;;
        test+model)
            stage_model > "$logs/model.log" 2>&1 &
            model_pid=$!
            stage_test
            wait "$model_pid" || { tail -5 "$logs/model.log"; die "model (in the background)"; }
            cat "$logs/model.log" ;;
        *)     die "unknown stage '$s' (build, model, bench, test, test+model)" ;;
    esac
done
say "all done"
