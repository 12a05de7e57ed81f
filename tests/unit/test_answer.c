/*
 * test_answer.c - GSM8K answer extraction and matching: every gold solution
 * of the bundled test set, the marker rules of docs/design.md section 5, the
 * number syntax (thousands, signs, decimals, "$", trailing "."), text
 * without a number, comparison as numbers, and the marked answer's bytes
 * (what the support indicator scores).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "task/answer.h"
#include "tmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A case may pass NULL on purpose; printf's "%s" must not see it. */
static const char *shown(const char *text)
{
    return text ? text : "(null)";
}

static void expect_answer(const char *text, const char *want)
{
    char out[64];
    bool found = tmap_extract_answer(text, out, sizeof out);
    if (!want) {
        if (found)
            fail_msg("\"%s\": expected no number, got \"%s\"", shown(text), out);
        assert_string_equal(out, "");
        return;
    }
    if (!found || strcmp(out, want) != 0)
        fail_msg("\"%s\": expected \"%s\", got %s\"%s\"", shown(text), want, found ? "" : "nothing, ", out);
}

static void test_gold_solutions(void **state)
{
    (void)state;
    /* Every gold solution of GSM8K's test set ends in "#### N": each must
     * give a number, the same the pool read after "####". */
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *pool = NULL;
    struct tmap_error err = { 0 };
    if (tmap_pool_load(TMAP_SOURCE_DIR "/data/gsm8k/test.jsonl", &pp, &pool, &err))
        fail_msg("%s", err.message);
    assert_int_equal(tmap_pool_size(pool), 1319);
    for (size_t i = 0; i < tmap_pool_size(pool); i++) {
        struct tmap_sample s;
        assert_int_equal(tmap_pool_sample(pool, i, &s, &err), TMAP_OK);
        char got[64];
        if (!tmap_extract_answer(s.response, got, sizeof got))
            fail_msg("line %zu: no number in the gold solution", s.line);
        assert_non_null(s.answer);
        if (!tmap_answers_match(got, s.answer))
            fail_msg("line %zu: extracted \"%s\", the pool's answer is \"%s\"", s.line, got, s.answer);
        tmap_sample_free(&s);
    }
    tmap_pool_free(pool);
}

static void test_markers(void **state)
{
    (void)state;
    expect_answer("#### 1,234", "1234");
    expect_answer("She pays 3 + 4 = 7.\n#### 7", "7");
    /* the last marker wins; the number after it, not the last number */
    expect_answer("#### 5\nlater: #### 12 apples, 3 left", "12");
    expect_answer("The answer is 42.", "42");
    expect_answer("the answer is: $1,000.00 in total, not 7", "1000");
    expect_answer("The answer is 3. Wait, the answer is 4 (not 9)", "4");
    /* "####" before "The answer is", whatever the order in the text */
    expect_answer("#### 8\nThe answer is 9", "8");
    /* a marker with no number after it falls through to the next rule */
    expect_answer("The answer is 6. ####", "6");
    expect_answer("6 then 7 ####", "7");
    /* the last number otherwise */
    expect_answer("18 + 24 = 42 clips", "42");
    expect_answer("So she has 5 left, then buys 13 more for $18.", "18");
}

static void test_number_syntax(void **state)
{
    (void)state;
    expect_answer("$18.", "18");
    expect_answer("#### $18.", "18");
    expect_answer("5.0", "5");
    expect_answer("It costs 2.50 dollars", "2.5");
    expect_answer("#### 0.75", "0.75");
    expect_answer("about .5 of it", ".5");
    expect_answer("#### 18 dollars per day.", "18");
    expect_answer("The answer is 42 apples and more text after it", "42");
    /* signs */
    expect_answer("#### -3", "-3");
    expect_answer("the change is = -12.5%", "-12.5");
    expect_answer("a loss of -$40", "-40");
    expect_answer("10-3", "3");        /* a subtraction, not minus three */
    expect_answer("x-4", "4");
    /* thousands groups only: a list stays a list */
    expect_answer("1,2,3", "3");
    expect_answer("12,345,678 people", "12345678");
    expect_answer("1,23 and", "23");
    /* no number at all */
    expect_answer("no digits here", NULL);
    expect_answer("", NULL);
    expect_answer("#### . $ -", NULL);
    expect_answer(NULL, NULL);
}

static void test_small_buffer(void **state)
{
    (void)state;
    char out[4];
    assert_true(tmap_extract_answer("#### 123", out, sizeof out));
    assert_string_equal(out, "123");
    assert_false(tmap_extract_answer("#### 1234", out, sizeof out));
    assert_string_equal(out, "");
    assert_false(tmap_extract_answer("#### 1", out, 0));
}

static void test_matching(void **state)
{
    (void)state;
    assert_true(tmap_answers_match("5", "5.00"));
    assert_true(tmap_answers_match("-3", "-3"));
    assert_true(tmap_answers_match("0.5", ".5"));
    assert_true(tmap_answers_match(" 72 ", "72"));
    assert_true(tmap_answers_match("007", "7"));
    assert_false(tmap_answers_match("3", "-3"));
    assert_false(tmap_answers_match("5", "5.01"));
    assert_false(tmap_answers_match("5", "five"));
    assert_false(tmap_answers_match("1,000", "1000")); /* extract first */
    assert_false(tmap_answers_match("", ""));
    assert_false(tmap_answers_match("inf", "inf"));
    assert_false(tmap_answers_match(NULL, "1"));
}

static void expect_span(const char *text, const char *want)
{
    size_t begin = 0, end = 0;
    bool found = tmap_marked_answer_span(text, &begin, &end);
    if (!want) {
        if (found)
            fail_msg("\"%s\": expected no marked answer, got \"%.*s\"", shown(text), (int)(end - begin),
                     shown(text) + begin);
        return;
    }
    if (!found || end - begin != strlen(want) || strncmp(text + begin, want, end - begin) != 0)
        fail_msg("\"%s\": expected the span \"%s\", got %s\"%.*s\"", shown(text), want, found ? "" : "nothing, ",
                 (int)(end - begin), shown(text) + begin);
}

static void test_marked_span(void **state)
{
    (void)state;
    expect_span("She pays 3 + 4 = 7.\n#### 7", "7");
    expect_span("#### 1,234", "1,234");               /* the bytes as written */
    expect_span("The answer is -$40. Done.", "-$40"); /* the sign and "$" with it, not the "." */
    expect_span("#### 5\nlater: #### 12 apples", "12");
    expect_span("The answer is 6. ####", "6");
    /* no marker, no claim: the last-number fallback is not a marked answer */
    expect_span("18 + 24 = 42 clips", NULL);
    expect_span("####", NULL);
    expect_span("", NULL);
    expect_span(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gold_solutions),
        cmocka_unit_test(test_markers),
        cmocka_unit_test(test_number_syntax),
        cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_marked_span),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
