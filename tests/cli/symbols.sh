#!/usr/bin/env bash
# The library's boundary: libtmap.so exports the functions include/tmap.h
# declares and nothing else. Every exported symbol must be tmap_*, and every
# TMAP_API function of the header must be exported (a declaration without a
# definition, or a definition hidden by mistake, fails here).
. "$(dirname "$0")/lib.sh"
LIB=$4

check "libtmap.so exports only tmap_* symbols"
# GCC exports the ifunc resolver of a target_clones function (logsumexp.c)
# whatever the function's visibility; a name with a '.' cannot be called
# from C, so it is left out here.
nm -D --defined-only "$LIB" | awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /\.resolver$/ { print $3 }' | sort > exported.txt
expect_true test -s exported.txt
grep -v '^tmap_' exported.txt > foreign.txt
expect_true test ! -s foreign.txt
[ -s foreign.txt ] && echo "not tmap_*: $(tr '\n' ' ' < foreign.txt)"

check "every TMAP_API function is exported, nothing more"
grep -oE '^TMAP_API [^(]*\btmap_[a-z0-9_]+\(' "$SRC/include/tmap.h" | grep -oE 'tmap_[a-z0-9_]+\($' | tr -d '(' | sort -u > declared.txt
expect_true cmp -s declared.txt exported.txt
cmp -s declared.txt exported.txt || diff declared.txt exported.txt | head -20
echo "$(wc -l < exported.txt) symbols exported"

finish
