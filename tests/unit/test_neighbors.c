/*
 * test_neighbors.c - unit tests of the exact nearest-neighbour statistics
 * (neighbors.c) against a brute-force reference in double precision, on
 * random L2-normalised rows: several k and m, the caps (k >= n, m >= n_val),
 * n == 1, duplicate rows (ties), more rows than one sgemm tile holds, and the
 * same answer whatever OpenBLAS's thread count.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indicators/neighbors.h"

#define TOLERANCE 1e-5

#include "asserts.h"
#include "skip.h"

/* ---- data and the reference -------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: plenty for test data, and the same on every machine */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* n random unit rows of dimension dim, malloc'd. */
static float *random_rows(size_t n, int32_t dim, uint64_t seed)
{
    float *rows = malloc(n * (size_t)dim * sizeof *rows);
    assert_non_null(rows);
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        float *row = rows + i * (size_t)dim;
        double norm = 0;
        for (int32_t d = 0; d < dim; d++) {
            row[d] = (float)((double)(rng_next(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
            norm += (double)row[d] * row[d];
        }
        for (int32_t d = 0; d < dim; d++)
            row[d] = (float)(row[d] / sqrt(norm));
    }
    return rows;
}

static double dot(const float *a, const float *b, int32_t dim)
{
    double sum = 0;
    for (int32_t d = 0; d < dim; d++)
        sum += (double)a[d] * b[d];
    return sum;
}

static int descending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Mean of the k largest similarities of row to cols (skipping index self),
 * by sorting them all; as distances (1 - cos) when `distance`. */
static double reference_row(const float *row, const float *cols, size_t n_cols, int32_t dim,
                            size_t self, size_t k, bool distance)
{
    double *sims = malloc(n_cols * sizeof *sims);
    assert_non_null(sims);
    size_t n = 0;
    for (size_t j = 0; j < n_cols; j++)
        if (j != self)
            sims[n++] = dot(row, cols + j * (size_t)dim, dim);
    qsort(sims, n, sizeof *sims, descending);
    k = k < n ? k : n;
    double sum = 0;
    for (size_t c = 0; c < k; c++)
        sum += distance ? 1.0 - sims[c] : sims[c];
    free(sims);
    return k ? sum / (double)k : 0.0;
}

static void check_knn(const float *emb, size_t n, int32_t dim, int32_t k)
{
    double *out = malloc(n * sizeof *out);
    struct tmap_error err = {0};
    assert_non_null(out);
    if (tmap_knn_mean_distance(emb, n, dim, k, out, &err) != TMAP_OK)
        fail_msg("knn failed: %s", err.message);
    for (size_t i = 0; i < n; i++) {
        double want = reference_row(emb + i * (size_t)dim, emb, n, dim, i, (size_t)k, true);
        if (fabs(out[i] - want) > TOLERANCE)
            fail_msg("n %zu k %d row %zu: %.9f, reference %.9f", n, k, i, out[i], want);
    }
    free(out);
}

static void check_topm(const float *pool, size_t n, const float *val, size_t n_val, int32_t dim,
                       int32_t m)
{
    double *out = malloc(n * sizeof *out);
    struct tmap_error err = {0};
    assert_non_null(out);
    if (tmap_topm_mean_similarity(pool, n, val, n_val, dim, m, out, &err) != TMAP_OK)
        fail_msg("top-m failed: %s", err.message);
    for (size_t i = 0; i < n; i++) {
        double want =
            reference_row(pool + i * (size_t)dim, val, n_val, dim, SIZE_MAX, (size_t)m, false);
        if (fabs(out[i] - want) > TOLERANCE)
            fail_msg("n %zu m %d row %zu: %.9f, reference %.9f", n, m, i, out[i], want);
    }
    free(out);
}

/* ---- diversity ---------------------------------------------------------- */

static void test_knn_random(void **state)
{
    (void)state;
    float *emb = random_rows(500, 16, 1);
    const int32_t ks[] = {1, 2, 10, 37, 498, 499, 500, 10000}; /* 499 = n - 1: every other row */
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        check_knn(emb, 500, 16, ks[i]);
    free(emb);
}

static void test_knn_small(void **state)
{
    (void)state;
    float *emb = random_rows(3, 16, 2);
    double out[3] = {-1, -1, -1};
    struct tmap_error err = {0};
    assert_int_equal(tmap_knn_mean_distance(emb, 1, 16, 10, out, &err), TMAP_OK);
    assert_true(out[0] == 0.0 && out[1] == -1); /* n == 1: 0, and nothing else written */
    assert_int_equal(tmap_knn_mean_distance(emb, 0, 16, 10, out, &err), TMAP_OK);
    check_knn(emb, 2, 16, 1);
    check_knn(emb, 2, 16, 5);
    check_knn(emb, 3, 16, 1);
    free(emb);
}

/* Every row twice: each row's nearest is its twin at distance 0, and the
 * ties between twins must not change the values. */
static void test_knn_duplicates(void **state)
{
    (void)state;
    const size_t half = 150;
    const int32_t dim = 16;
    float *emb = random_rows(2 * half, dim, 3);
    memcpy(emb + half * dim, emb, half * dim * sizeof *emb);
    check_knn(emb, 2 * half, dim, 1);
    check_knn(emb, 2 * half, dim, 3);
    double *out = malloc(2 * half * sizeof *out);
    struct tmap_error err = {0};
    assert_int_equal(tmap_knn_mean_distance(emb, 2 * half, dim, 1, out, &err), TMAP_OK);
    for (size_t i = 0; i < 2 * half; i++)
        assert_true(fabs(out[i]) < 1e-6);
    free(out);
    free(emb);
}

/* More rows than one tile has columns (4096), and k large enough that the
 * tile's row count shrinks to keep the heaps within budget. */
static void test_knn_many_tiles(void **state)
{
    (void)state;
    const size_t n = 4300;
    float *emb = random_rows(n, 4, 4);
    check_knn(emb, n, 4, 10);
    check_knn(emb, n, 4, 4298); /* heap budget: 60-row tiles */
    free(emb);
}

/* ---- relevance ---------------------------------------------------------- */

static void test_topm_random(void **state)
{
    (void)state;
    float *pool = random_rows(500, 16, 5), *val = random_rows(37, 16, 6);
    const int32_t ms[] = {1, 3, 10, 36, 37, 100};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        check_topm(pool, 500, val, 37, 16, ms[i]);
    check_topm(pool, 1, val, 1, 16, 5);
    check_topm(val, 37, pool, 500, 16, 10); /* more validation rows than pool rows */
    check_topm(pool, 500, pool, 500, 16, 1); /* the pool against itself: each row's best is 1 */
    free(pool);
    free(val);
}

static void test_topm_many_tiles(void **state)
{
    (void)state;
    float *pool = random_rows(300, 8, 7), *val = random_rows(4500, 8, 8);
    check_topm(pool, 300, val, 4500, 8, 10);
    free(pool);
    free(val);
}

/* ---- determinism and errors -------------------------------------------- */

/* The same rows give the same bits with 1 OpenBLAS thread and with 4. */
static void test_thread_count(void **state)
{
    (void)state;
    const size_t n = 2000;
    float *emb = random_rows(n, 32, 9);
    double *one = malloc(n * sizeof *one), *four = malloc(n * sizeof *four);
    struct tmap_error err = {0};
    int before = openblas_get_num_threads();
    openblas_set_num_threads(1);
    assert_int_equal(tmap_knn_mean_distance(emb, n, 32, 10, one, &err), TMAP_OK);
    openblas_set_num_threads(4);
    assert_int_equal(tmap_knn_mean_distance(emb, n, 32, 10, four, &err), TMAP_OK);
    openblas_set_num_threads(before);
    assert_memory_equal(one, four, n * sizeof *one);
    free(one);
    free(four);
    free(emb);
}

static void test_errors(void **state)
{
    (void)state;
    float row[4] = {1, 0, 0, 0};
    double out[1];
    struct tmap_error err = {0};
    assert_int_equal(tmap_knn_mean_distance(row, 1, 0, 10, out, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "dimension 0");
    assert_int_equal(tmap_knn_mean_distance(row, 1, 4, 0, out, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "k = 0");
    assert_int_equal(tmap_topm_mean_similarity(row, 1, row, 1, -3, 1, out, &err),
                     TMAP_ERR_USAGE);
    assert_contains(err.message, "dimension -3");
    assert_int_equal(tmap_topm_mean_similarity(row, 1, row, 1, 4, 0, out, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "m = 0");
    assert_int_equal(tmap_topm_mean_similarity(row, 1, row, 0, 4, 5, out, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "no rows");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_knn_random),
        cmocka_unit_test(test_knn_small),
        cmocka_unit_test(test_knn_duplicates),
        cmocka_unit_test(test_knn_many_tiles),
        cmocka_unit_test(test_topm_random),
        cmocka_unit_test(test_topm_many_tiles),
        cmocka_unit_test(test_thread_count),
        cmocka_unit_test(test_errors),
    };
    return test_run_group(tests); /* less TMAP_TEST_SKIP's cases (skip.h) */
}
