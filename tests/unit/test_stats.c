/*
 * test_stats.c - the statistics bench/fidelity stands on: Spearman's rho
 * (ties, constants, a known value) and the two-level bootstrap of a
 * difference between arms (it collapses when the difference is constant,
 * covers a known difference, and widens with seed-to-seed variation that
 * item resampling alone would miss), and its pooling over strata.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/random.h"
#include "util/stats.h"

#include <math.h>
#include <stdlib.h>

static void test_spearman(void **state)
{
    (void)state;
    double x[] = { 1, 2, 3, 4, 5 }, up[] = { 10, 20, 25, 40, 100 }, down[] = { 5, 4, 3, 2, 1 };
    assert_true(fabs(tmap_spearman(x, up, 5) - 1.0) < 1e-12);
    assert_true(fabs(tmap_spearman(x, down, 5) + 1.0) < 1e-12);
    /* By hand: ranks of y = 2 1 4 3 5, sum d^2 = 4, rho = 1 - 6*4/(5*24) = 0.8. */
    double y[] = { 2, 1, 4, 3, 5 };
    assert_true(fabs(tmap_spearman(x, y, 5) - 0.8) < 1e-12);
    /* Ties take average ranks: y ranks 1.5 1.5 3 4 5 against 1..5. */
    double t[] = { 7, 7, 8, 9, 10 };
    double rho = tmap_spearman(x, t, 5);
    assert_true(rho > 0.97 && rho < 1.0);
    double c[] = { 3, 3, 3, 3, 3 };
    assert_true(isnan(tmap_spearman(x, c, 5)));
    assert_true(isnan(tmap_spearman(x, y, 1)));
}

/* rows x items of noise around mean + per-row offset. */
static double *arm(size_t rows, size_t items, double mean, double row_sd, double item_sd, uint64_t seed,
                   const double *item_effect)
{
    double *m = malloc(rows * items * sizeof *m);
    uint64_t s = seed;
    for (size_t r = 0; r < rows; r++) {
        double off = row_sd * (tmap_random_unit(&s) - 0.5) * 3.46; /* uniform, sd = row_sd */
        for (size_t i = 0; i < items; i++)
            m[r * items + i] = mean + off + item_effect[i] + item_sd * (tmap_random_unit(&s) - 0.5) * 3.46;
    }
    return m;
}

static void test_bootstrap_two_level(void **state)
{
    (void)state;
    enum { ITEMS = 400 };
    double effect[ITEMS];
    uint64_t s = 3;
    for (size_t i = 0; i < ITEMS; i++)
        effect[i] = 2.0 * tmap_random_unit(&s); /* items differ a lot: pairing must cancel it */

    /* A constant difference: every resample gives it exactly. */
    double *a = arm(2, ITEMS, 1.0, 0, 0, 1, effect), *b = arm(3, ITEMS, 0.75, 0, 0, 2, effect);
    double d, lo, hi;
    assert_true(tmap_bootstrap_two_level_diff(a, 2, b, 3, ITEMS, 500, 9, &d, &lo, &hi));
    assert_true(fabs(d - 0.25) < 1e-12 && fabs(lo - 0.25) < 1e-12 && fabs(hi - 0.25) < 1e-12);
    free(a);
    free(b);

    /* Noise per item only: the interval covers the true 0.05 and is narrow,
     * since the shared item effects cancel. */
    a = arm(2, ITEMS, 1.05, 0, 0.1, 4, effect);
    b = arm(6, ITEMS, 1.00, 0, 0.1, 5, effect);
    assert_true(tmap_bootstrap_two_level_diff(a, 2, b, 6, ITEMS, 2000, 9, &d, &lo, &hi));
    assert_true(lo < 0.05 && 0.05 < hi);
    assert_true(hi - lo < 0.04);
    double narrow = hi - lo;
    free(a);
    free(b);

    /* The same, plus seed-to-seed offsets: the interval must widen. */
    a = arm(2, ITEMS, 1.05, 0.05, 0.1, 4, effect);
    b = arm(6, ITEMS, 1.00, 0.05, 0.1, 5, effect);
    assert_true(tmap_bootstrap_two_level_diff(a, 2, b, 6, ITEMS, 2000, 9, &d, &lo, &hi));
    assert_true(hi - lo > 2.0 * narrow);
    /* Deterministic by seed. */
    double d2, lo2, hi2;
    assert_true(tmap_bootstrap_two_level_diff(a, 2, b, 6, ITEMS, 2000, 9, &d2, &lo2, &hi2));
    assert_true(d == d2 && lo == lo2 && hi == hi2);
    free(a);
    free(b);

    assert_false(tmap_bootstrap_two_level_diff(effect, 0, effect, 1, ITEMS, 10, 1, &d, &lo, &hi));
    assert_true(isnan(d));
}

/* Strata (bench/fidelity's corruption seeds) sharing their items: the
 * statistic is the mean of the strata's differences; one stratum is the
 * two-level bootstrap draw for draw; four strata of the same noise give
 * about half the interval of one (sd / sqrt(4)); and arms whose item
 * effects differ give the mean of that difference over the items. */
static void test_bootstrap_strata(void **state)
{
    (void)state;
    enum { ITEMS = 300, STRATA = 4 };
    double effect[ITEMS], d, lo, hi, d1, lo1, hi1;
    uint64_t s = 11;
    for (size_t i = 0; i < ITEMS; i++)
        effect[i] = 2.0 * tmap_random_unit(&s);

    /* Constant differences 0.1, 0.2, 0.3, 0.6 per stratum: exactly 0.3. */
    const double shift[STRATA] = { 0.1, 0.2, 0.3, 0.6 };
    double *a[STRATA], *b[STRATA];
    struct tmap_bootstrap_stratum st[STRATA];
    for (size_t k = 0; k < STRATA; k++) {
        a[k] = arm(2, ITEMS, 1.0 + shift[k], 0, 0, 20 + k, effect);
        b[k] = arm(3, ITEMS, 1.0, 0, 0, 30 + k, effect);
        st[k] = (struct tmap_bootstrap_stratum){ .a = a[k], .n_a = 2, .b = b[k], .n_b = 3 };
    }
    assert_true(tmap_bootstrap_strata_diff(st, STRATA, ITEMS, 400, 5, &d, &lo, &hi));
    assert_true(fabs(d - 0.3) < 1e-12 && fabs(lo - 0.3) < 1e-12 && fabs(hi - 0.3) < 1e-12);
    for (size_t k = 0; k < STRATA; k++) {
        free(a[k]);
        free(b[k]);
    }

    /* The same noise in every stratum, with seed-to-seed offsets. */
    for (size_t k = 0; k < STRATA; k++) {
        a[k] = arm(2, ITEMS, 1.05, 0.03, 0.1, 40 + k, effect);
        b[k] = arm(6, ITEMS, 1.00, 0.03, 0.1, 50 + k, effect);
        st[k] = (struct tmap_bootstrap_stratum){ .a = a[k], .n_a = 2, .b = b[k], .n_b = 6 };
    }
    assert_true(tmap_bootstrap_strata_diff(st, 1, ITEMS, 2000, 9, &d1, &lo1, &hi1));
    double d2, lo2, hi2;
    assert_true(tmap_bootstrap_two_level_diff(a[0], 2, b[0], 6, ITEMS, 2000, 9, &d2, &lo2, &hi2));
    assert_true(d1 == d2 && lo1 == lo2 && hi1 == hi2);
    assert_true(tmap_bootstrap_strata_diff(st, STRATA, ITEMS, 2000, 9, &d, &lo, &hi));
    assert_true(lo < 0.05 && 0.05 < hi);
    double ratio = (hi - lo) / (hi1 - lo1);
    assert_true(ratio > 0.35 && ratio < 0.75);
    for (size_t k = 0; k < STRATA; k++) {
        free(a[k]);
        free(b[k]);
    }

    /* b's item effects are twice a's: the difference is minus the mean
     * item effect, inside the interval. */
    double twice[ITEMS];
    for (size_t i = 0; i < ITEMS; i++)
        twice[i] = 2.0 * effect[i];
    for (size_t k = 0; k < STRATA; k++) {
        a[k] = arm(2, ITEMS, 1.0, 0, 0.01, 60 + k, effect);
        b[k] = arm(2, ITEMS, 1.0, 0, 0.01, 70 + k, twice);
        st[k] = (struct tmap_bootstrap_stratum){ .a = a[k], .n_a = 2, .b = b[k], .n_b = 2 };
    }
    double mean_effect = 0.0;
    for (size_t i = 0; i < ITEMS; i++)
        mean_effect += effect[i] / ITEMS;
    assert_true(tmap_bootstrap_strata_diff(st, STRATA, ITEMS, 2000, 9, &d, &lo, &hi));
    assert_true(fabs(d + mean_effect) < 0.01);
    assert_true(lo < -mean_effect && -mean_effect < hi);
    for (size_t k = 0; k < STRATA; k++) {
        free(a[k]);
        free(b[k]);
    }

    struct tmap_bootstrap_stratum empty = { .a = effect, .n_a = 0, .b = effect, .n_b = 1 };
    assert_false(tmap_bootstrap_strata_diff(&empty, 1, ITEMS, 10, 1, &d, &lo, &hi));
    assert_false(tmap_bootstrap_strata_diff(st, 0, ITEMS, 10, 1, &d, &lo, &hi));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spearman),
        cmocka_unit_test(test_bootstrap_two_level),
        cmocka_unit_test(test_bootstrap_strata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
