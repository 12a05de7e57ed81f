/*
 * helpers.h - file helpers the model-level unit tests share: GSM8K slices
 * as pool files, and whole files read back for byte comparisons. Include
 * after cmocka.h.
 */
#ifndef TMAP_TEST_HELPERS_H
#define TMAP_TEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>

/* Lines [first, first + count) of from, written to to. */
static inline void copy_lines(const char *from, const char *to, int first, int count)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < first + count && getline(&line, &cap, in) >= 0; i++)
        if (i >= first)
            fputs(line, out);
    free(line);
    fclose(in);
    fclose(out);
}

/* The whole file, NUL-terminated; *n (may be NULL) gets its size. */
static inline char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)len + 1, 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    if (n)
        *n = (size_t)len;
    return b;
}

#endif
