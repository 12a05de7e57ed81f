/*
 * test_corrupt.c - bench/fidelity's corruption generator: each label says
 * what was done to its record (checked against the original), the shares
 * are as asked, clean records keep their bytes, duplicates copy an earlier
 * clean record, every line is valid JSON, and the seed decides it all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../bench/fidelity/corrupt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 60 };

static char *lines[N];

static char *field(const char *line, const char *key)
{
    json_t *r = json_loads(line, 0, NULL);
    assert_non_null(r);
    const char *v = json_string_value(json_object_get(r, key));
    assert_non_null(v);
    char *copy = strdup(v);
    json_decref(r);
    return copy;
}

static void check_record(const struct fid_record *out, size_t i)
{
    const struct fid_record *r = &out[i];
    char *q0 = field(lines[i], "question"), *a0 = field(lines[i], "answer");
    char *q = field(r->line, "question"), *a = field(r->line, "answer");
    const char *mark0 = strstr(a0, "####");
    switch (r->kind) {
    case FID_CLEAN:
        assert_string_equal(r->line, lines[i]);
        break;
    case FID_WRONG_ANSWER: {
        assert_string_equal(q, q0);
        const char *mark = strstr(a, "####");
        assert_non_null(mark);
        /* Same solution up to the final line, another final number. */
        assert_int_equal(mark - a, mark0 - a0);
        assert_memory_equal(a, a0, (size_t)(mark - a));
        assert_true(strtod(mark + 4, NULL) != strtod(mark0 + 4, NULL));
        break;
    }
    case FID_TRUNCATED:
        assert_string_equal(q, q0);
        assert_null(strstr(a, "####"));
        assert_true(strlen(a) < (size_t)(mark0 - a0));
        assert_memory_equal(a, a0, strlen(a)); /* a prefix of the original */
        break;
    case FID_SWAPPED: {
        assert_string_equal(q, q0);
        assert_true(r->source != i && r->source < N);
        char *other = field(lines[r->source], "answer");
        assert_string_equal(a, other);
        free(other);
        break;
    }
    case FID_OFF_TASK:
        assert_string_equal(q, q0);
        assert_null(strstr(a, "####"));
        assert_true(strlen(a) > 20);
        break;
    case FID_DUPLICATE:
        assert_true(r->source < i);
        assert_int_equal(out[r->source].kind, FID_CLEAN);
        assert_string_equal(r->line, lines[r->source]);
        break;
    default:
        fail_msg("record %zu: kind %d", i, r->kind);
    }
    free(q0);
    free(a0);
    free(q);
    free(a);
}

static void test_labels_match_what_was_done(void **state)
{
    (void)state;
    struct fid_record out[N];
    char err[256];
    assert_int_equal(fid_corrupt((const char *const *)lines, N, 0.2, 7, out, err, sizeof err), 0);
    size_t count[FID_N_KINDS] = { 0 };
    for (size_t i = 0; i < N; i++) {
        count[out[i].kind]++;
        check_record(out, i);
    }
    /* 20% of 60 = 12, in five equal shares of 2 plus 2 to the first kinds. */
    assert_int_equal(count[FID_CLEAN], 48);
    assert_int_equal(count[FID_WRONG_ANSWER], 3);
    assert_int_equal(count[FID_TRUNCATED], 3);
    assert_int_equal(count[FID_SWAPPED], 2);
    assert_int_equal(count[FID_OFF_TASK], 2);
    assert_int_equal(count[FID_DUPLICATE], 2);
    assert_string_equal(fid_kind_name(FID_OFF_TASK), "off_task");

    /* The same seed gives the same pool; another seed another. */
    struct fid_record again[N], other[N];
    assert_int_equal(fid_corrupt((const char *const *)lines, N, 0.2, 7, again, err, sizeof err), 0);
    assert_int_equal(fid_corrupt((const char *const *)lines, N, 0.2, 8, other, err, sizeof err), 0);
    bool differs = false;
    for (size_t i = 0; i < N; i++) {
        assert_string_equal(again[i].line, out[i].line);
        assert_int_equal(again[i].kind, out[i].kind);
        differs |= other[i].kind != out[i].kind;
    }
    assert_true(differs);
    fid_records_free(out, N);
    fid_records_free(again, N);
    fid_records_free(other, N);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct fid_record out[N];
    char err[256];
    const char *bad[] = { lines[0], lines[1], "{\"prompt\": \"x\"}", lines[3], lines[4] };
    assert_int_equal(fid_corrupt(bad, 5, 0.2, 1, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "record 3"));
    assert_int_equal(fid_corrupt((const char *const *)lines, 3, 0.2, 1, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 4"));
}

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen(TMAP_SOURCE_DIR "/data/gsm8k/train.jsonl", "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < N; i++) {
        ssize_t len = getline(&line, &cap, f);
        if (len <= 0)
            return -1;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        lines[i] = strdup(line);
    }
    free(line);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < N; i++)
        free(lines[i]);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_match_what_was_done),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
