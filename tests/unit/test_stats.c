/*
 * test_stats.c - the statistics bench/fidelity stands on: Spearman's rho
 * (ties, constants, a known value) and the two-level bootstrap of a
 * difference between arms (it collapses when the difference is constant,
 * covers a known difference, and widens with seed-to-seed variation that
 * item resampling alone would miss).
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spearman),
        cmocka_unit_test(test_bootstrap_two_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
