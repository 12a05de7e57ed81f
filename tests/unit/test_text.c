/*
 * test_text.c - unit tests of the model-free text indicators (text.c):
 * steps, numeracy and MTLD, on hand-made strings and on real GSM8K answers
 * whose counts were checked by reading them.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indicators/text.h"

#ifndef TMAP_SOURCE_DIR
#error "the build must define TMAP_SOURCE_DIR (the repository root)"
#endif

#define assert_near(actual, expected, tolerance)                                                   \
    do {                                                                                           \
        double a_ = (actual), e_ = (expected);                                                     \
        if (!(fabs(a_ - e_) <= (tolerance)))                                                       \
            fail_msg("%.15g is not %.15g (tolerance %g)", a_, e_, (double)(tolerance));           \
    } while (0)

/* The "answer" of the record on 1-based line `line` of the bundled GSM8K
 * training set, malloc'd. */
static char *gsm8k_field(size_t line, const char *field);

static char *gsm8k_answer(size_t line)
{
    return gsm8k_field(line, "answer");
}

static char *gsm8k_field(size_t line, const char *field)
{
    const char *path = TMAP_SOURCE_DIR "/data/gsm8k/train.jsonl";
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < line; i++)
        if (getline(&buf, &cap, f) < 0)
            fail_msg("%s has fewer than %zu lines", path, line);
    fclose(f);
    json_error_t jerr;
    json_t *record = json_loads(buf, 0, &jerr);
    free(buf);
    if (!record)
        fail_msg("%s:%zu: %s", path, line, jerr.text);
    char *value = strdup(json_string_value(json_object_get(record, field)));
    json_decref(record);
    return value;
}

/* ---- steps -------------------------------------------------------------- */

static void test_steps_lines(void **state)
{
    (void)state;
    assert_int_equal(tmap_indicator_steps("a\nb\n\n  \nc"), 3);
    assert_int_equal(tmap_indicator_steps("a\nb\n#### 5"), 2);
    assert_int_equal(tmap_indicator_steps("a\nb\n#### 5\n\n"), 2);
    /* "####" that is not the last line is a step like any other */
    assert_int_equal(tmap_indicator_steps("#### Plan\nx\ny"), 3);
    assert_int_equal(tmap_indicator_steps("\r\n  step one\r\n\tstep two\r\n"), 2);
    assert_int_equal(tmap_indicator_steps(""), 0);
    assert_int_equal(tmap_indicator_steps("  \n\n"), 0);
    assert_int_equal(tmap_indicator_steps("#### 42"), 0);
}

static void test_steps_sentences(void **state)
{
    (void)state;
    assert_int_equal(tmap_indicator_steps("It costs 3.5 dollars. Two make 7! Right?"), 3);
    assert_int_equal(tmap_indicator_steps("No terminator at all"), 1);
    assert_int_equal(tmap_indicator_steps("Wait... then 2.5x2=5. Done"), 3);
    assert_int_equal(tmap_indicator_steps("He said \"stop.\" Then he left."), 2);
    assert_int_equal(tmap_indicator_steps("Pi is 3.14159 or so."), 1);
    assert_int_equal(tmap_indicator_steps("?!..."), 0);
    /* one reasoning line before the answer line: sentences again */
    assert_int_equal(tmap_indicator_steps("First 2+2=4. Then 4*2=8.\n#### 8"), 2);
}

/*
 * Real answers, counted by reading them:
 *   line 1   2 lines ("Natalia sold 48/2 ...", "Natalia sold 48+24 ...")
 *   line 3   3 lines (Betty's wallet)
 *   line 6   5 lines (Mark's garden)
 *   line 54  3 lines (Caleb's ice cream, with U+00D7 and U+2212)
 *   line 346 3 lines (Adam's pay, with an en dash)
 *   line 457 2 lines (savings, with "$1,150.00" and "1150*.40")
 * and line 1's two lines joined into one (then its 2 sentences count).
 */
static void test_steps_gsm8k(void **state)
{
    (void)state;
    const size_t lines[] = {1, 3, 6, 54, 346, 457};
    const double steps[] = {2, 3, 5, 3, 3, 2};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char *answer = gsm8k_answer(lines[i]);
        if (tmap_indicator_steps(answer) != steps[i])
            fail_msg("line %zu: %g steps, expected %g in:\n%s", lines[i],
                     tmap_indicator_steps(answer), steps[i], answer);
        free(answer);
    }
    char *answer = gsm8k_answer(1);
    *strchr(answer, '\n') = ' ';
    assert_int_equal(tmap_indicator_steps(answer), 2);
    free(answer);
}

/* ---- numeracy ----------------------------------------------------------- */

static void test_numeracy_rules(void **state)
{
    (void)state;
    assert_int_equal(tmap_indicator_numeracy("48/2 = <<48/2=24>>24"), 1);
    assert_int_equal(tmap_indicator_numeracy("100 - 50 - 30 - 15 = 5"), 3);
    assert_int_equal(tmap_indicator_numeracy("2 x 3, 2x3, 2 X 3, 2 \u00d7 3, 6 \u00f7 2"), 5);
    assert_int_equal(tmap_indicator_numeracy("9 \u2212 4 and 9 \u2013 4"), 2);
    assert_int_equal(tmap_indicator_numeracy("$1,000.50 * 5% and 1150*.40"), 2);
    assert_int_equal(tmap_indicator_numeracy("12/60 = $<<12/60=0.2>>0.2 per minute"), 1);
    /* no number on one side, or a word in between */
    assert_int_equal(tmap_indicator_numeracy("box 3x + y, A4-5, COVID-19, 5 apples + 3"), 0);
    assert_int_equal(tmap_indicator_numeracy("3 - -2"), 0);
    assert_int_equal(tmap_indicator_numeracy("5\n- 3"), 0); /* a list, not 5 - 3 */
    assert_int_equal(tmap_indicator_numeracy("<<2+2 never closed"), 1);
    assert_int_equal(tmap_indicator_numeracy(""), 0);
}

/*
 * Real answers, counted by reading them (annotations removed):
 *   line 1    48/2, 48+24                                   2
 *   line 3    100 / 2, 15 * 2, 100 - 50 - 30 - 15          1 + 1 + 3 = 5
 *   line 6    80/100 * 10, 10 + 8, 10 + 18, 25/100 * 28,
 *             28 + 7                                        2 + 1 + 1 + 2 + 1 = 7
 *   line 54   10 x $4, 4 x $1 (U+00D7), $40 - $4 (U+2212)   3
 *   line 346  $40 / 10, $40 - $4 (en dash), $36 * 30        3
 *   line 457  600+250+150+150, 1150*.40                     3 + 1 = 4
 *   line 557  $80,000 * 140%, $112,000 * 120%               2
 */
static void test_numeracy_gsm8k(void **state)
{
    (void)state;
    const size_t lines[] = {1, 3, 6, 54, 346, 457, 557};
    const double ops[] = {2, 5, 7, 3, 3, 4, 2};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char *answer = gsm8k_answer(lines[i]);
        if (tmap_indicator_numeracy(answer) != ops[i])
            fail_msg("line %zu: %g operations, expected %g in:\n%s", lines[i],
                     tmap_indicator_numeracy(answer), ops[i], answer);
        free(answer);
    }
}

/* ---- MTLD --------------------------------------------------------------- */

/*
 * "One fish, two fish, red fish, blue fish." by hand (8 words):
 *
 * forward   one 1/1, fish 2/2, two 3/3, fish 3/4 = .75, red 4/5 = .80,
 *           fish 4/6 = .667 <= .72: factor 1, reset;
 *           blue 1/1, fish 2/2: remainder TTR 1, partial (1 - 1)/.28 = 0.
 *           8 / 1 = 8.
 * backward  fish 1/1, blue 2/2, fish 2/3 = .667: factor 1, reset;
 *           red 1/1, fish 2/2, two 3/3, fish 3/4 = .75, one 4/5 = .80:
 *           remainder TTR .8, partial (1 - .8)/.28 = 5/7.
 *           8 / (1 + 5/7) = 8 * 7/12 = 14/3.
 * MTLD      (8 + 14/3) / 2 = 19/3 = 6.333...
 */
static void test_mtld_by_hand(void **state)
{
    (void)state;
    assert_near(tmap_indicator_mtld("One fish, two fish, red fish, blue fish."), 19.0 / 3.0,
                        1e-12);
}

/*
 * The threshold is inclusive. "wa wb ... wr" (18 distinct words), "wa" seven
 * times, then "x y" (27 words):
 *
 * forward   the first 25 words reach 18 types / 25 tokens = .72 exactly, which
 *           closes factor 1; "x y" is a remainder of TTR 1 (partial 0).
 *           27 / 1 = 27. (Were the test "< .72", word 26 would give 19/26 and
 *           the pass 27 / (7/27 / .28) = 29.16.)
 * backward  x y wa wa wa: 3/5 = .6, factor 1; wa wa: 1/2, factor 2;
 *           wa wa: factor 3; wr ... wa: 18 distinct, partial 0. 27 / 3 = 9.
 * MTLD      (27 + 9) / 2 = 18.
 */
static void test_mtld_threshold(void **state)
{
    (void)state;
    const char *text = "wa wb wc wd we wf wg wh wi wj wk wl wm wn wo wp wq wr "
                       "wa wa wa wa wa wa wa x y";
    assert_near(tmap_indicator_mtld(text), 18.0, 1e-12);
}

static void test_mtld_degenerate(void **state)
{
    (void)state;
    assert_near(tmap_indicator_mtld(""), 0.0, 0);
    assert_near(tmap_indicator_mtld(" ... !? -- "), 0.0, 0);
    /* every word distinct: no factor closes, MTLD is the word count */
    assert_near(tmap_indicator_mtld("alpha beta gamma delta"), 4.0, 0);
    /* one word: each pass is 1/1, 1/2 (factor), 1/1, 1/2 (factor), 1/1; 5/2 */
    assert_near(tmap_indicator_mtld("a a a a a"), 2.5, 1e-12);
}

/* Case, curly apostrophes and quoting do not make new words: four times the
 * type "don't", so each pass closes a factor every two words: 4/2 = 2. */
static void test_mtld_words(void **state)
{
    (void)state;
    assert_near(tmap_indicator_mtld("Don't DON'T don\u2019t 'don't'"), 2.0, 1e-12);
    /* a dash or an em dash separates words, accented letters do not */
    assert_near(tmap_indicator_mtld("caf\u00e9\u2014caf\u00e9-caf\u00e9 caf\u00e9"),
                        2.0, 1e-12);
}

/* ---- coverage ----------------------------------------------------------- */

/*
 * By hand: the prompt's terms (a digit, or at least 4 bytes) are 12, apples,
 * buys, 5 and more ("tom", "has", "and" are too short); the response uses
 * 12, 5 and apples: 3 of 5. Its own 17 is no prompt term and counts nowhere.
 */
static void test_coverage_by_hand(void **state)
{
    (void)state;
    assert_near(tmap_indicator_coverage("Tom has 12 apples and buys 5 more apples.", "12 + 5 = 17 apples.\n#### 17"),
                0.6, 1e-12);
    assert_near(tmap_indicator_coverage("APPLES and Pears", "pears, apples"), 1.0, 0);
    assert_near(tmap_indicator_coverage("seven dogs", "eight cats"), 0.0, 0);
    assert_near(tmap_indicator_coverage("seven dogs", ""), 0.0, 0);
    /* the prompt's last word and the response's first stay two words */
    assert_near(tmap_indicator_coverage("word", "word"), 1.0, 0);
    assert_near(tmap_indicator_coverage("ab 7", "7"), 1.0, 0);
    /* no term in the prompt: no value */
    assert_true(isnan(tmap_indicator_coverage("Why is it so?", "Because it is.")));
    assert_true(isnan(tmap_indicator_coverage("", "anything")));
}

/*
 * GSM8K train line 1. The question's 11 terms: natalia, sold, clips, 48,
 * friends, april, then, half, many, sell, altogether; its solution uses
 * natalia, sold, clips, 48, april, altogether: 6 of 11. Line 2's question
 * (weng, earns, 12, hour, babysitting, yesterday, just, 50, minutes, much,
 * earn) and its solution share weng, earns, 12, 50, minutes: 5 of 11. Line
 * 2's solution under line 1's question, a swapped answer, uses none.
 */
static void test_coverage_gsm8k(void **state)
{
    (void)state;
    char *q1 = gsm8k_field(1, "question"), *a1 = gsm8k_answer(1);
    char *q2 = gsm8k_field(2, "question"), *a2 = gsm8k_answer(2);
    assert_near(tmap_indicator_coverage(q1, a1), 6.0 / 11.0, 1e-12);
    assert_near(tmap_indicator_coverage(q2, a2), 5.0 / 11.0, 1e-12);
    assert_near(tmap_indicator_coverage(q1, a2), 0.0, 0);
    free(q1);
    free(a1);
    free(q2);
    free(a2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_lines),
        cmocka_unit_test(test_steps_sentences),
        cmocka_unit_test(test_steps_gsm8k),
        cmocka_unit_test(test_numeracy_rules),
        cmocka_unit_test(test_numeracy_gsm8k),
        cmocka_unit_test(test_mtld_by_hand),
        cmocka_unit_test(test_mtld_threshold),
        cmocka_unit_test(test_mtld_degenerate),
        cmocka_unit_test(test_mtld_words),
        cmocka_unit_test(test_coverage_by_hand),
        cmocka_unit_test(test_coverage_gsm8k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
