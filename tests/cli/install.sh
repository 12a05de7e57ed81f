#!/usr/bin/env bash
# make install's result, used as another C program would: installs the build
# into a fresh prefix, builds examples/select_top.c against it through
# find_package(tmap) and through pkg-config, and checks that both select
# exactly what `tmap select` selects.
. "$(dirname "$0")/lib.sh"
BUILD=$4

check "cmake --install into a fresh prefix"
run cmake --install "$BUILD" --prefix "$WORK/prefix"
expect_status 0
for f in bin/tmap include/tmap.h lib/libtmap.so lib/libtmap.a lib/cmake/tmap/tmapConfig.cmake lib/pkgconfig/tmap.pc; do
    expect_true test -e "$WORK/prefix/$f"
done

head -n 30 "$SRC/data/gsm8k/train.jsonl" > pool.jsonl
"$TMAP" score -m "$MODEL" -d pool.jsonl --indicators steps,length,numeracy -o scores.csv --quiet -c 1024
cat > weights.json <<'JSON'
{"indicators": [{"name": "steps", "weight": 0.5, "direction": "higher"},
                {"name": "numeracy", "weight": 0.5, "direction": "higher"}]}
JSON
"$TMAP" select -d pool.jsonl --scores scores.csv --weights weights.json --ratio 0.3 -o want.jsonl --quiet

check "find_package(tmap) builds and runs the example"
run cmake -S "$SRC/examples" -B ex -DCMAKE_PREFIX_PATH="$WORK/prefix"
expect_status 0
run cmake --build ex
expect_status 0
run ex/select_top pool.jsonl scores.csv weights.json 0.3 got.jsonl
expect_status 0
expect_out "selected 9 of 30 records with libtmap"
expect_true cmp -s want.jsonl got.jsonl

check "pkg-config builds the same program"
flags=$(PKG_CONFIG_PATH="$WORK/prefix/lib/pkgconfig" pkg-config --cflags --libs tmap)
expect_true test -n "$flags"
run cc -std=c17 -Wall -Wextra -Werror "$SRC/examples/select_top.c" $flags -o select_pc
expect_status 0
run ./select_pc pool.jsonl scores.csv weights.json 0.3 got2.jsonl
expect_status 0
expect_true cmp -s want.jsonl got2.jsonl

finish
