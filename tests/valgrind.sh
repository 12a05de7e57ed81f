#!/usr/bin/env bash
# Runs one unit test under valgrind's memcheck: any invalid access, use of
# uninitialised memory or definite/indirect leak fails it (exit 99).
# "Possibly lost" blocks are not counted: the ones seen are the
# thread-local storage glibc keeps with the stacks of joined threads for
# reuse (test_ann: neighbors.c's workers), which valgrind cannot tell from a
# leak. Skipped (77) without valgrind, or when the test skips itself.
command -v valgrind >/dev/null || { echo "valgrind: not installed"; exit 77; }
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect "$@"
