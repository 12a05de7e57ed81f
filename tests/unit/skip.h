/*
 * skip.h - a group run without the cases TMAP_TEST_SKIP names: a comma-
 * separated list of names or fnmatch(3) patterns. tests/CMakeLists.txt sets
 * it for the runs under valgrind, which leave out the largest cases (tens
 * of times slower there, and reaching no code the other cases miss).
 * cmocka's own skip filter takes a single pattern. Include after cmocka.h.
 */
#ifndef TMAP_TEST_SKIP_H
#define TMAP_TEST_SKIP_H

#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline bool test_skipped(const char *name, const char *list)
{
    while (list && *list) {
        size_t len = strcspn(list, ",");
        char pattern[128];
        if (len < sizeof pattern) {
            memcpy(pattern, list, len);
            pattern[len] = '\0';
            if (fnmatch(pattern, name, 0) == 0)
                return true;
        }
        list += len + (list[len] == ',');
    }
    return false;
}

/* cmocka_run_group_tests over the cases TMAP_TEST_SKIP leaves in. */
#define test_run_group(tests)                                                                       \
    test_run_group_skipping(#tests, tests, sizeof(tests) / sizeof((tests)[0]), getenv("TMAP_TEST_SKIP"))

static inline int test_run_group_skipping(const char *group, const struct CMUnitTest *tests, size_t n,
                                          const char *skip)
{
    struct CMUnitTest *kept = malloc((n ? n : 1) * sizeof *kept);
    if (!kept)
        return 1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!test_skipped(tests[i].name, skip))
            kept[m++] = tests[i];
        else
            printf("[ LEFT OUT ] %s (TMAP_TEST_SKIP)\n", tests[i].name);
    int failed = _cmocka_run_group_tests(group, kept, m, NULL, NULL);
    free(kept);
    return failed;
}

#endif
