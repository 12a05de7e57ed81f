/*
 * test_rank.c - unit tests of select/rank.c: percentile ranks (ties, NaN,
 * signed zeros, infinities, and the radix sort against a quadratic
 * reference), the combination, the selected count for awkward ratios,
 * quickselect against a full sort, the diversity filter and the subset hash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "select/rank.h"

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t next_random(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(next_random() >> 11) * 0x1.0p-53;
}

static void ranks(const double *x, size_t n, bool higher, double *u)
{
    struct tmap_error err = { 0 };
    if (tmap_percentile_ranks(x, n, higher, u, &err) != TMAP_OK)
        fail_msg("ranking failed: %s", err.message);
}

static void assert_doubles(const double *got, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > 1e-12)
            fail_msg("entry %zu: got %.17g, want %.17g", i, got[i], want[i]);
}

/* ---- percentile ranks --------------------------------------------------- */

static void test_ranks_ties(void **state)
{
    (void)state;
    /* sorted: 1 (position 0), 2 and 2 (positions 1, 2: both 1.5), 3 (3), 5 (4);
     * u = position / (5 - 1). */
    const double x[] = { 3, 1, 2, 2, 5 };
    const double want[] = { 0.75, 0.0, 0.375, 0.375, 1.0 };
    const double flipped[] = { 0.25, 1.0, 0.625, 0.625, 0.0 };
    double u[5];
    ranks(x, 5, true, u);
    assert_doubles(u, want, 5);
    ranks(x, 5, false, u);
    assert_doubles(u, flipped, 5);
}

static void test_ranks_nan(void **state)
{
    (void)state;
    /* Valid: 1 (position 0), 4 and 4 (1.5 each), n_valid = 3, so 0 and 0.75;
     * NaN is neutral in both directions. */
    const double x[] = { NAN, 4, NAN, 1, 4 };
    const double want[] = { 0.5, 0.75, 0.5, 0.0, 0.75 };
    const double flipped[] = { 0.5, 0.25, 0.5, 1.0, 0.25 };
    double u[5];
    ranks(x, 5, true, u);
    assert_doubles(u, want, 5);
    ranks(x, 5, false, u);
    assert_doubles(u, flipped, 5);
}

static void test_ranks_degenerate(void **state)
{
    (void)state;
    const double one_valid[] = { NAN, 7, NAN };
    const double all_half[] = { 0.5, 0.5, 0.5 };
    double u[3] = { -1, -1, -1 };
    ranks(one_valid, 3, true, u);
    assert_doubles(u, all_half, 3);
    ranks(one_valid + 1, 1, false, u);
    assert_doubles(u, all_half, 1);
    ranks(NULL, 0, true, NULL);
    const double same[] = { 2, 2, 2 };
    ranks(same, 3, true, u);
    assert_doubles(u, all_half, 3);
}

static void test_ranks_signs_and_infinities(void **state)
{
    (void)state;
    /* -0.0 and +0.0 compare equal, so they tie (positions 2 and 3 -> 2.5/5). */
    const double x[] = { INFINITY, 2, 0.0, -0.0, -1, -INFINITY };
    const double want[] = { 1.0, 0.8, 0.5, 0.5, 0.2, 0.0 };
    double u[6];
    ranks(x, 6, true, u);
    assert_doubles(u, want, 6);
}

/* (number below + (number equal - 1) / 2) / (n_valid - 1), by counting. */
static void reference_ranks(const double *x, size_t n, double *u)
{
    size_t n_valid = 0;
    for (size_t i = 0; i < n; i++)
        n_valid += !isnan(x[i]);
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            u[i] = 0.5;
            continue;
        }
        size_t below = 0, equal = 0;
        for (size_t j = 0; j < n; j++) {
            below += x[j] < x[i];
            equal += x[j] == x[i];
        }
        u[i] = ((double)below + 0.5 * (double)(equal - 1)) / (double)(n_valid - 1);
    }
}

/* Many ties, both signs, wide exponents, some NaN: every radix pass runs. */
static void test_ranks_against_reference(void **state)
{
    (void)state;
    enum { N = 3000 };
    double *x = malloc(N * sizeof *x), *u = malloc(N * sizeof *u), *ref = malloc(N * sizeof *ref);
    rng_state = 11;
    for (size_t i = 0; i < N; i++) {
        uint64_t kind = next_random() % 4;
        x[i] = kind == 0   ? (double)(next_random() % 7) - 3.0
               : kind == 1 ? (uniform() - 0.5) * pow(10.0, (double)(next_random() % 40) - 20)
               : kind == 2 ? uniform()
                           : (next_random() % 10 == 0 ? NAN : -uniform());
    }
    ranks(x, N, true, u);
    reference_ranks(x, N, ref);
    assert_doubles(u, ref, N);
    free(x);
    free(u);
    free(ref);
}

/* ---- combination and count ---------------------------------------------- */

static void test_combine(void **state)
{
    (void)state;
    /* u column-major, 3 rows x 2 columns: columns (0, 0.5, 1) and (1, 0, 0.5). */
    const double u[] = { 0.0, 0.5, 1.0, 1.0, 0.0, 0.5 };
    const double w[] = { 0.25, 0.75 };
    const double want[] = { 0.75, 0.125, 0.625 };
    double s[3];
    tmap_combine(u, 3, 2, w, s);
    assert_doubles(s, want, 3);
}

static void test_select_count(void **state)
{
    (void)state;
    assert_int_equal(tmap_select_count(0.3, 10), 3);
    assert_int_equal(tmap_select_count(0.3, 7), 3);     /* 2.1 -> 3 */
    assert_int_equal(tmap_select_count(0.07, 100), 7);  /* 7.000000000000001 */
    assert_int_equal(tmap_select_count(0.55, 200), 110); /* 110.00000000000001 */
    assert_int_equal(tmap_select_count(0.29, 100), 29); /* 28.999999999999996 */
    assert_int_equal(tmap_select_count(0.07 + 1e-6, 100), 8); /* 7.0001: a real excess */
    assert_int_equal(tmap_select_count(1.0, 7), 7);
    assert_int_equal(tmap_select_count(1e-9, 7), 1);
    assert_int_equal(tmap_select_count(0.3, 1000000), 300000);
    assert_int_equal(tmap_select_count(0.0, 7), 0);
    assert_int_equal(tmap_select_count(NAN, 7), 0);
    assert_int_equal(tmap_select_count(2.0, 7), 7);
    assert_int_equal(tmap_select_count(0.5, 0), 0);
}

/* ---- top selection against a full sort ---------------------------------- */

static const double   *ref_s;
static const uint32_t *ref_tiebreak;

static int compare_order(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    double sx = ref_s[x], sy = ref_s[y];
    bool nx = isnan(sx), ny = isnan(sy);
    if (nx != ny)
        return nx ? 1 : -1;
    if (!nx && sx != sy)
        return sx > sy ? -1 : 1;
    uint32_t tx = ref_tiebreak ? ref_tiebreak[x] : 0, ty = ref_tiebreak ? ref_tiebreak[y] : 0;
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return (x > y) - (x < y);
}

static int compare_index(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The reference: sort every row by the order, take the first k, sort those. */
static size_t reference_top(const double *s, const uint32_t *tiebreak, size_t n, double ratio,
                            size_t *out)
{
    ref_s = s;
    ref_tiebreak = tiebreak;
    for (size_t i = 0; i < n; i++)
        out[i] = i;
    qsort(out, n, sizeof *out, compare_order);
    size_t k = tmap_select_count(ratio, n);
    qsort(out, k, sizeof *out, compare_index);
    return k;
}

static void check_top(const double *s, const uint32_t *tiebreak, size_t n, double ratio)
{
    size_t *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    size_t k = tmap_select_top(s, tiebreak, n, ratio, got);
    size_t k_ref = reference_top(s, tiebreak, n, ratio, want);
    assert_int_equal(k, k_ref);
    for (size_t i = 0; i < k; i++)
        if (got[i] != want[i])
            fail_msg("n %zu ratio %g: entry %zu is row %zu, want %zu", n, ratio, i, got[i],
                     want[i]);
    free(got);
    free(want);
}

/* A random permutation, as a precomputed order of sample ids would be. */
static uint32_t *permutation(size_t n)
{
    uint32_t *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = next_random() % i;
        uint32_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    return p;
}

static void test_select_top_reference(void **state)
{
    (void)state;
    static const size_t sizes[] = { 1, 2, 3, 7, 10, 100, 1001, 20000 };
    static const double ratios[] = { 0.3, 0.1, 0.5, 0.999, 1.0, 1e-6, 0.7 };
    rng_state = 5;
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++) {
        size_t n = sizes[a];
        double *s = malloc(n * sizeof *s);
        uint32_t *tiebreak = permutation(n);
        for (size_t i = 0; i < n; i++) /* half the rows share one of 5 values */
            s[i] = next_random() % 2 ? (double)(next_random() % 5) * 0.25 : uniform();
        for (size_t b = 0; b < sizeof ratios / sizeof *ratios; b++) {
            check_top(s, tiebreak, n, ratios[b]);
            check_top(s, NULL, n, ratios[b]);
        }
        free(s);
        free(tiebreak);
    }
}

/* Every row tied, sorted and reversed inputs, NaN scores. */
static void test_select_top_special(void **state)
{
    (void)state;
    enum { N = 5000 };
    double *s = malloc(N * sizeof *s);
    rng_state = 9;
    uint32_t *tiebreak = permutation(N);
    for (size_t i = 0; i < N; i++)
        s[i] = 1.0;
    check_top(s, tiebreak, N, 0.3);
    check_top(s, NULL, N, 0.3);
    for (size_t i = 0; i < N; i++)
        s[i] = (double)i;
    check_top(s, tiebreak, N, 0.3);
    for (size_t i = 0; i < N; i++)
        s[i] = -(double)i;
    check_top(s, tiebreak, N, 0.3);
    for (size_t i = 0; i < N; i++)
        s[i] = i % 3 == 0 ? NAN : uniform();
    check_top(s, tiebreak, N, 0.9); /* more rows than numbers: NaN rows come last */
    free(s);
    free(tiebreak);
}

static void test_select_top_hand(void **state)
{
    (void)state;
    /* s ties at 0.5 between rows 1, 2 and 4; tiebreak prefers 4, then 1. */
    const double s[] = { 0.9, 0.5, 0.5, 0.1, 0.5, 0.2, 0.3 };
    const uint32_t tiebreak[] = { 6, 1, 2, 5, 0, 3, 4 };
    size_t out[7];
    assert_int_equal(tmap_select_top(s, tiebreak, 7, 0.3, out), 3); /* 2.1 -> 3 */
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[2], 4);
    assert_int_equal(tmap_select_top(s, NULL, 7, 0.3, out), 3); /* row index: 1, 2 */
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[2], 2);
}

static void test_select_top_deterministic(void **state)
{
    (void)state;
    enum { N = 50000 };
    double *s = malloc(N * sizeof *s);
    size_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    rng_state = 3;
    uint32_t *tiebreak = permutation(N);
    for (size_t i = 0; i < N; i++)
        s[i] = (double)(next_random() % 100);
    size_t ka = tmap_select_top(s, tiebreak, N, 0.3, a);
    size_t kb = tmap_select_top(s, tiebreak, N, 0.3, b);
    assert_int_equal(ka, kb);
    assert_memory_equal(a, b, ka * sizeof *a);
    assert_true(tmap_subset_hash(a, ka) == tmap_subset_hash(b, kb));
    free(s);
    free(a);
    free(b);
    free(tiebreak);
}

/* ---- diversity filter --------------------------------------------------- */

static void test_select_diverse(void **state)
{
    (void)state;
    /* Unit rows in the plane. Cosines: r0.r1 = 0.995, r0.r2 = 0, r0.r3 = 0.6,
     * r2.r3 = 0.8, r4 = -r0. Walk by s: r0, r1, r2, r3, r4. */
    const float emb[] = { 1.0f, 0.0f, 0.995f, 0.0998749f, 0.0f, 1.0f, 0.6f, 0.8f, -1.0f, 0.0f };
    const double s[] = { 0.9, 0.8, 0.7, 0.6, 0.5 };
    size_t out[5];
    /* threshold 0.9: r1 is dropped (0.995 to r0); want 3 stops after r3. */
    assert_int_equal(tmap_select_diverse(s, NULL, 5, emb, 2, 0.9, 3, out), 3);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 3);
    /* want more than there are: every novel row, r4 too. */
    assert_int_equal(tmap_select_diverse(s, NULL, 5, emb, 2, 0.9, 10, out), 4);
    assert_int_equal(out[3], 4);
    /* threshold 0.7: r3 goes too (0.8 to r2). */
    assert_int_equal(tmap_select_diverse(s, NULL, 5, emb, 2, 0.7, 10, out), 3);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 4);
    /* threshold 1: nothing is too similar, so it is the top selection. */
    assert_int_equal(tmap_select_diverse(s, NULL, 5, emb, 2, 1.0, 2, out), 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
}

static void test_select_diverse_ties(void **state)
{
    (void)state;
    /* r0 and r1 are identical and tied on s; the tiebreak makes r1 the one
     * kept, and r0 is then dropped as its duplicate. */
    const float emb[] = { 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f };
    const double s[] = { 0.5, 0.5, 0.1 };
    const uint32_t tiebreak[] = { 1, 0, 2 };
    size_t out[3];
    assert_int_equal(tmap_select_diverse(s, tiebreak, 3, emb, 2, 0.9, 3, out), 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 2);
}

/* ---- hash --------------------------------------------------------------- */

static void test_subset_hash(void **state)
{
    (void)state;
    size_t rows[600];
    uint8_t bytes[600 * 8];
    for (size_t i = 0; i < 600; i++) {
        rows[i] = i * 7 + 3;
        for (int b = 0; b < 8; b++)
            bytes[i * 8 + (size_t)b] = (uint8_t)((uint64_t)rows[i] >> (8 * b));
    }
    /* Spans several internal buffers, and equals the hash of the LE bytes. */
    assert_true(tmap_subset_hash(rows, 600) == XXH3_64bits(bytes, sizeof bytes));
    assert_true(tmap_subset_hash(rows, 0) == XXH3_64bits(bytes, 0));
    assert_true(tmap_subset_hash(rows, 599) != tmap_subset_hash(rows, 600));
    size_t other[600];
    memcpy(other, rows, sizeof rows);
    other[300]++;
    assert_true(tmap_subset_hash(other, 600) != tmap_subset_hash(rows, 600));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_ties),
        cmocka_unit_test(test_ranks_nan),
        cmocka_unit_test(test_ranks_degenerate),
        cmocka_unit_test(test_ranks_signs_and_infinities),
        cmocka_unit_test(test_ranks_against_reference),
        cmocka_unit_test(test_combine),
        cmocka_unit_test(test_select_count),
        cmocka_unit_test(test_select_top_reference),
        cmocka_unit_test(test_select_top_special),
        cmocka_unit_test(test_select_top_hand),
        cmocka_unit_test(test_select_top_deterministic),
        cmocka_unit_test(test_select_diverse),
        cmocka_unit_test(test_select_diverse_ties),
        cmocka_unit_test(test_subset_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
