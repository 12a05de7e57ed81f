/*
 * test_logsumexp.c - the log-softmax normaliser (model/logsumexp.c) against
 * a long-double reference: every version this CPU can run, on vocabulary
 * sized rows of several spreads and offsets, on short rows that end inside
 * a vector, and on the edge values (-inf terms, empty rows).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "model/logsumexp.h"
#include "util/random.h"

typedef double (*lse_fn)(const float *, int32_t);

struct version {
    const char *name;
    lse_fn      fn;
};

/* The versions to check: all that this CPU can run. */
static size_t versions(struct version out[4])
{
    size_t n = 0;
    out[n++] = (struct version){ "dispatch", tmap_log_sum_exp };
    out[n++] = (struct version){ "portable", tmap_log_sum_exp_portable };
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f"))
        out[n++] = (struct version){ "avx512", tmap_log_sum_exp_avx512 };
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        out[n++] = (struct version){ "avx2", tmap_log_sum_exp_avx2 };
#endif
    return n;
}

static double reference(const float *x, int32_t n)
{
    float max = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        max = x[i] > max ? x[i] : max;
    if (!isfinite(max))
        return max;
    long double sum = 0.0L;
    for (int32_t i = 0; i < n; i++)
        sum += expl((long double)x[i] - (long double)max);
    return (double)((long double)max + logl(sum));
}

/* Gaussian logits (Box-Muller) with the given spread and offset. */
static void fill(float *x, int32_t n, double spread, double offset, uint64_t seed)
{
    for (int32_t i = 0; i < n; i++) {
        double u = tmap_random_unit(&seed), v = tmap_random_unit(&seed);
        double g = sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
        x[i] = (float)(offset + spread * g);
    }
}

static void check_all(const float *x, int32_t n, double tolerance)
{
    struct version vs[4];
    size_t nv = versions(vs);
    double want = reference(x, n);
    for (size_t k = 0; k < nv; k++) {
        double got = vs[k].fn(x, n);
        if (isinf(want) ? got != want : !(fabs(got - want) <= tolerance))
            fail_msg("%s, n=%d: %.12g, reference %.12g (tolerance %g)", vs[k].name, (int)n, got, want,
                     tolerance);
    }
}

/* Whole vocabularies: the case that matters. 2e-6 absolute is 50x below
 * the 1e-4 the scoring tests ask of a log-probability. */
static void test_vocabulary_rows(void **state)
{
    (void)state;
    const int32_t sizes[] = { 32000, 32001, 151936 };
    const double spreads[] = { 0.01, 1.0, 4.0, 30.0 };
    const double offsets[] = { 0.0, 85.0, -300.0 };
    float *x = malloc(151936 * sizeof *x);
    uint64_t seed = 1;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 3; c++) {
                fill(x, sizes[a], spreads[b], offsets[c], seed++);
                check_all(x, sizes[a], 2e-6);
            }
    free(x);
}

/* Every length up to three vectors of 32: the tails use masks. */
static void test_short_rows(void **state)
{
    (void)state;
    float x[100];
    for (int32_t n = 1; n <= 100; n++) {
        fill(x, n, 3.0, 1.0, (uint64_t)n);
        check_all(x, n, 1e-6);
        x[n - 1] = 40.0f; /* the maximum in the last, partial vector */
        check_all(x, n, 1e-6);
    }
}

static void test_edge_values(void **state)
{
    (void)state;
    struct version vs[4];
    size_t nv = versions(vs);
    float x[40];
    for (size_t k = 0; k < nv; k++) {
        assert_true(isinf(vs[k].fn(x, 0)) && vs[k].fn(x, 0) < 0);
        for (int i = 0; i < 40; i++)
            x[i] = -INFINITY;
        double all_masked = vs[k].fn(x, 40);
        assert_true(isinf(all_masked) && all_masked < 0);
        x[7] = 2.5f; /* one finite logit: exactly that logit */
        assert_true(fabs(vs[k].fn(x, 40) - 2.5) < 1e-6);
        for (int i = 0; i < 40; i++)
            x[i] = 0.0f; /* n equal logits: log(n) */
        assert_true(fabs(vs[k].fn(x, 40) - log(40.0)) < 1e-6);
        x[3] = -1000.0f; /* far below the rest: contributes nothing, no NaN */
        assert_true(fabs(vs[k].fn(x, 40) - log(39.0)) < 1e-6);
        x[3] = NAN; /* a broken model's logit is not silently dropped */
        assert_true(isnan(vs[k].fn(x, 40)));
        x[3] = 0.0f;
        x[0] = -INFINITY; /* a leading -inf (the AVX-512 version's shift comes from the start) */
        assert_true(fabs(vs[k].fn(x, 40) - log(39.0)) < 1e-6);
    }
}

/* The largest logit far after the start, far above it (the AVX-512
 * version then moves its shift mid-row), and several such jumps. */
static void test_late_maximum(void **state)
{
    (void)state;
    float *x = malloc(32000 * sizeof *x);
    fill(x, 32000, 1.0, 0.0, 99);
    x[5000] = 100.0f;
    check_all(x, 32000, 2e-6);
    x[20000] = 230.0f;
    x[31999] = 231.0f;
    check_all(x, 32000, 2e-6);
    x[10] = 1e30f; /* beyond every headroom */
    check_all(x, 32000, 2e-6);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocabulary_rows),
        cmocka_unit_test(test_short_rows),
        cmocka_unit_test(test_edge_values),
        cmocka_unit_test(test_late_maximum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
