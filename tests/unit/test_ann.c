/*
 * test_ann.c - unit tests of the approximate diversity (ann.cpp) against the
 * exact one (neighbors.c) on clustered unit rows: recall@10 and the means,
 * the same bits on 1 and 2 threads, in two calls and for any split of the
 * queries into ranges, the caps (n below the list count, n == 1, k >= n),
 * duplicates, and every error. Skipped (77) when tmap has no FAISS.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indicators/ann.h"
#include "indicators/neighbors.h"
#include "util/random.h"

#if TMAP_HAVE_FAISS

#define K 10

#include "asserts.h"
#include "skip.h"

static double gaussian(uint64_t *state)
{
    double u = tmap_random_unit(state), v = tmap_random_unit(state);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* n unit rows of dimension dim around `clusters` random centres, noise
 * sigma per coordinate (clusters == 0: uniform on the sphere). */
static float *clustered_rows(size_t n, int32_t dim, size_t clusters, double sigma, uint64_t seed)
{
    float *rows = malloc(n * (size_t)dim * sizeof *rows);
    float *centres = malloc((clusters ? clusters : 1) * (size_t)dim * sizeof *centres);
    assert_non_null(rows);
    assert_non_null(centres);
    uint64_t s = seed;
    for (size_t i = 0; i < clusters + n; i++) {
        float *row = i < clusters ? centres + i * (size_t)dim : rows + (i - clusters) * (size_t)dim;
        const float *centre = i >= clusters && clusters
                                  ? centres + (tmap_random_next(&s) % clusters) * (size_t)dim
                                  : NULL;
        double norm = 0;
        for (int32_t d = 0; d < dim; d++) {
            row[d] = (float)(centre ? centre[d] + sigma * gaussian(&s) : gaussian(&s));
            norm += (double)row[d] * row[d];
        }
        for (int32_t d = 0; d < dim; d++)
            row[d] = (float)(row[d] / sqrt(norm));
    }
    free(centres);
    return rows;
}

/* Approximate diversity of all n rows with default settings but `nlist`. */
static void ann_values(const float *rows, size_t n, int32_t dim, int32_t k, size_t nlist,
                       double *out)
{
    struct tmap_ann_params p = tmap_ann_default_params();
    p.nlist = nlist;
    p.seed = 5;
    struct tmap_ann *ann = NULL;
    struct tmap_error err = {0};
    assert_int_equal(tmap_ann_build(rows, n, dim, &p, &ann, &err), TMAP_OK);
    assert_int_equal(tmap_ann_knn_mean_distance(ann, k, 0, n, out, &err), TMAP_OK);
    tmap_ann_free(ann);
}

/* ---- against the exact search ------------------------------------------ */

static void test_recall(void **state)
{
    (void)state;
    const size_t n = 4000;
    const int32_t dim = 32;
    float *rows = clustered_rows(n, dim, 100, 0.15, 11);
    size_t *exact_nb = malloc(n * K * sizeof *exact_nb), *ann_nb = malloc(n * K * sizeof *ann_nb);
    double *exact = malloc(n * sizeof *exact), *approx = malloc(n * sizeof *approx);
    struct tmap_error err = {0};
    assert_int_equal(tmap_knn_neighbours(rows, n, dim, K, exact_nb, &err), TMAP_OK);
    assert_int_equal(tmap_knn_mean_distance(rows, n, dim, K, exact, &err), TMAP_OK);

    struct tmap_ann_params p = tmap_ann_default_params();
    struct tmap_ann *ann = NULL;
    assert_int_equal(tmap_ann_build(rows, n, dim, &p, &ann, &err), TMAP_OK);
    struct tmap_ann_params used;
    tmap_ann_get_params(ann, &used);
    assert_int_equal(used.nlist, n / 39); /* 4 sqrt(n) = 253, capped at 39 rows a list */
    assert_true(used.nprobe > 0 && used.nprobe <= used.nlist);
    assert_int_equal(tmap_ann_knn(ann, K, 0, n, ann_nb, &err), TMAP_OK);
    assert_int_equal(tmap_ann_knn_mean_distance(ann, K, 0, n, approx, &err), TMAP_OK);
    tmap_ann_free(ann);

    size_t hits = 0, same_rows = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        size_t row_hits = 0;
        for (size_t j = 0; j < K; j++) {
            assert_true(ann_nb[i * K + j] != i);
            assert_true(j == 0 || ann_nb[i * K + j - 1] < ann_nb[i * K + j]);
            for (size_t l = 0; l < K; l++)
                row_hits += ann_nb[i * K + j] == exact_nb[i * K + l];
        }
        hits += row_hits;
        /* the same neighbours give the same arithmetic, so the same bits */
        if (row_hits == K) {
            same_rows++;
            assert_true(approx[i] == exact[i]);
        }
        worst = fmax(worst, approx[i] - exact[i]);
        /* approximate neighbours can only be farther */
        assert_true(approx[i] >= exact[i] - 1e-6);
    }
    double recall = (double)hits / (double)(n * K);
    print_message("recall@10 %.4f, %zu of %zu rows exact, worst excess %.3g\n", recall,
                  same_rows, n, worst);
    assert_true(recall >= 0.95);
    assert_true(worst < 0.05);
    free(rows);
    free(exact_nb);
    free(ann_nb);
    free(exact);
    free(approx);
}

/* ---- determinism --------------------------------------------------------- */

static void test_threads_and_repeats(void **state)
{
    (void)state;
    const size_t n = 3000;
    const int32_t dim = 24;
    float *rows = clustered_rows(n, dim, 60, 0.2, 12);
    double *runs[4];
    int saved_omp = omp_get_max_threads(), saved_blas = openblas_get_num_threads();
    for (int r = 0; r < 4; r++) {
        runs[r] = malloc(n * sizeof *runs[r]);
        /* 1 thread, 2 threads, 2 again, then 2 with OpenBLAS threaded
         * outside the call */
        omp_set_num_threads(r == 0 ? 1 : 2);
        openblas_set_num_threads(r == 3 ? 2 : 1);
        ann_values(rows, n, dim, K, 0, runs[r]);
    }
    omp_set_num_threads(saved_omp);
    openblas_set_num_threads(saved_blas);
    for (int r = 1; r < 4; r++)
        assert_memory_equal(runs[0], runs[r], n * sizeof *runs[0]);
    /* and OpenBLAS's setting is given back */
    assert_int_equal(openblas_get_num_threads(), saved_blas);
    for (int r = 0; r < 4; r++)
        free(runs[r]);
    free(rows);
}

static void test_split(void **state)
{
    (void)state;
    const size_t n = 2500;
    const int32_t dim = 16;
    float *rows = clustered_rows(n, dim, 50, 0.2, 13);
    double *whole = malloc(n * sizeof *whole), *parts = malloc(n * sizeof *parts);
    struct tmap_ann_params p = tmap_ann_default_params();
    struct tmap_ann *ann = NULL;
    struct tmap_error err = {0};
    assert_int_equal(tmap_ann_build(rows, n, dim, &p, &ann, &err), TMAP_OK);
    assert_int_equal(tmap_ann_knn_mean_distance(ann, K, 0, n, whole, &err), TMAP_OK);
    /* ranges that cut tiles (256 rows) anywhere, one of a single row, an
     * empty one */
    const size_t cuts[] = {0, 1, 100, 100, 257, 1000, 1001, 2222, n};
    for (size_t c = 0; c + 1 < sizeof cuts / sizeof *cuts; c++)
        assert_int_equal(tmap_ann_knn_mean_distance(ann, K, cuts[c], cuts[c + 1], parts + cuts[c], &err),
                         TMAP_OK);
    assert_memory_equal(whole, parts, n * sizeof *whole);
    /* an index built again (another rank) answers the same */
    struct tmap_ann *again = NULL;
    assert_int_equal(tmap_ann_build(rows, n, dim, &p, &again, &err), TMAP_OK);
    assert_int_equal(tmap_ann_knn_mean_distance(again, K, 1234, n, parts + 1234, &err), TMAP_OK);
    assert_memory_equal(whole, parts, n * sizeof *whole);
    /* another seed, other centroids: still a valid answer, close to it */
    p.seed = 99;
    struct tmap_ann *other = NULL;
    assert_int_equal(tmap_ann_build(rows, n, dim, &p, &other, &err), TMAP_OK);
    assert_int_equal(tmap_ann_knn_mean_distance(other, K, 0, n, parts, &err), TMAP_OK);
    for (size_t i = 0; i < n; i++)
        assert_true(fabs(parts[i] - whole[i]) < 0.1);
    tmap_ann_free(ann);
    tmap_ann_free(again);
    tmap_ann_free(other);
    free(whole);
    free(parts);
    free(rows);
}

/* ---- edge cases ---------------------------------------------------------- */

/* With one list every row is scanned: the exact neighbours, so the exact
 * values up to near-ties in float. */
static void assert_close_to_exact(const float *rows, size_t n, int32_t dim, int32_t k,
                                  size_t nlist)
{
    double *exact = malloc(n * sizeof *exact), *approx = malloc(n * sizeof *approx);
    struct tmap_error err = {0};
    assert_int_equal(tmap_knn_mean_distance(rows, n, dim, k, exact, &err), TMAP_OK);
    ann_values(rows, n, dim, k, nlist, approx);
    for (size_t i = 0; i < n; i++)
        if (fabs(approx[i] - exact[i]) > 1e-9)
            fail_msg("row %zu of %zu (k %d): approximate %.17g, exact %.17g", i, n, (int)k,
                     approx[i], exact[i]);
    free(exact);
    free(approx);
}

static void test_edges(void **state)
{
    (void)state;
    float *rows = clustered_rows(200, 8, 5, 0.3, 14);
    /* n = 1: no other row */
    double one = -1;
    ann_values(rows, 1, 8, K, 0, &one);
    assert_true(one == 0.0);
    /* n = 2, 3: k capped at n - 1 */
    assert_close_to_exact(rows, 2, 8, K, 0);
    assert_close_to_exact(rows, 3, 8, K, 0);
    /* fewer rows than lists asked for: capped (one list below 78 rows) */
    assert_close_to_exact(rows, 50, 8, K, 100);
    /* k >= n - 1: every other row */
    assert_close_to_exact(rows, 40, 8, 39, 0);
    assert_close_to_exact(rows, 40, 8, 1000, 0);
    /* several lists holding fewer than k rows: the scan widens until it has
     * k, and with k = n - 1 reaches every list */
    struct tmap_ann_params p = tmap_ann_default_params();
    p.nprobe = 1;
    struct tmap_ann *ann = NULL;
    struct tmap_error err = {0};
    assert_int_equal(tmap_ann_build(rows, 200, 8, &p, &ann, &err), TMAP_OK);
    struct tmap_ann_params used;
    tmap_ann_get_params(ann, &used);
    assert_int_equal(used.nlist, 5); /* 200 / 39 */
    double *approx = malloc(200 * sizeof *approx), *exact = malloc(200 * sizeof *exact);
    assert_int_equal(tmap_ann_knn_mean_distance(ann, 199, 0, 200, approx, &err), TMAP_OK);
    assert_int_equal(tmap_knn_mean_distance(rows, 200, 8, 199, exact, &err), TMAP_OK);
    for (size_t i = 0; i < 200; i++)
        assert_true(fabs(approx[i] - exact[i]) < 1e-9);
    tmap_ann_free(ann);
    free(approx);
    free(exact);
    free(rows);
}

static void test_duplicates(void **state)
{
    (void)state;
    /* 300 rows, each three times: a row's copies are its nearest, at
     * distance 0, and it never counts itself */
    const size_t n = 900;
    const int32_t dim = 12;
    float *base = clustered_rows(n / 3, dim, 10, 0.2, 15);
    float *rows = malloc(n * (size_t)dim * sizeof *rows);
    for (size_t i = 0; i < n; i++)
        memcpy(rows + i * (size_t)dim, base + (i % (n / 3)) * (size_t)dim, (size_t)dim * sizeof *rows);
    double *approx = malloc(n * sizeof *approx);
    ann_values(rows, n, dim, 2, 0, approx);
    for (size_t i = 0; i < n; i++)
        assert_true(fabs(approx[i]) < 1e-6);
    ann_values(rows, n, dim, 3, 0, approx);
    for (size_t i = 0; i < n; i++)
        assert_true(approx[i] > 1e-4); /* a third neighbour that is another row */
    free(approx);
    free(rows);
    free(base);
}

static void test_errors(void **state)
{
    (void)state;
    float *rows = clustered_rows(100, 4, 3, 0.3, 16);
    struct tmap_ann_params p = tmap_ann_default_params();
    struct tmap_ann *ann = (struct tmap_ann *)&p;
    struct tmap_error err = {0};
    double out[100];
    assert_int_equal(tmap_ann_build(rows, 100, 0, &p, &ann, &err), TMAP_ERR_USAGE);
    assert_null(ann);
    assert_contains(err.message, "dimension 0");
    assert_int_equal(tmap_ann_build(rows, 0, 4, &p, &ann, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "at least one row");
    assert_int_equal(tmap_ann_build(rows, 100, 4, &p, &ann, &err), TMAP_OK);
    assert_int_equal(tmap_ann_knn_mean_distance(ann, 0, 0, 100, out, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "k = 0");
    assert_int_equal(tmap_ann_knn_mean_distance(ann, K, 50, 40, out, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "[50, 40)");
    size_t nb[10];
    assert_int_equal(tmap_ann_knn(ann, K, 99, 101, nb, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "within the index's 100 rows");
    tmap_ann_free(ann);
    tmap_ann_free(NULL);
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall),
        cmocka_unit_test(test_threads_and_repeats),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_errors),
    };
    return test_run_group(tests); /* less TMAP_TEST_SKIP's cases (skip.h) */
}

#else

int main(void)
{
    printf("test_ann: tmap was built without FAISS\n");
    return 77;
}

#endif
