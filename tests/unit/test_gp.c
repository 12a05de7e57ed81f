/*
 * test_gp.c - unit tests of search/gp.c: the posterior of a 3-point case
 * worked out by hand, expected improvement against its closed form, the
 * hyperparameter fit (sensible lengthscales, local optimality, consistency
 * with the fixed-hyperparameter model, determinism) and the error paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_math.h>

#include "search/gp.h"

#define assert_close(got, want, tol)                                                               \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= (tol)))                                                             \
            fail_msg("%s = %.12g, want %.12g (tolerance %g)", #got, g_, w_, (double)(tol));        \
    } while (0)

#include "asserts.h"
#include "skip.h"

static struct tmap_gp *fit(const double *x, const double *y, size_t n, size_t d, uint64_t seed)
{
    struct tmap_gp *gp = NULL;
    struct tmap_error err = { 0 };
    if (tmap_gp_fit(x, y, n, d, seed, &gp, &err) != TMAP_OK)
        fail_msg("fit failed: %s", err.message);
    return gp;
}

static struct tmap_gp *fit_fixed(const double *x, const double *y, size_t n, size_t d, double l,
                                 double sv, double nv, double m)
{
    struct tmap_gp *gp = NULL;
    struct tmap_error err = { 0 };
    if (tmap_gp_fit_fixed(x, y, n, d, l, sv, nv, m, &gp, &err) != TMAP_OK)
        fail_msg("fixed fit failed: %s", err.message);
    return gp;
}

/* ---- the 3-point case by hand ------------------------------------------- */

/*
 * x = (0, 1, 2), y = (1, 2, 0), mean m = 0.5, signal variance 1, noise
 * variance 0.1, lengthscale sqrt(5), so u = sqrt(5) r / l = r and
 * k(r) = (1 + r + r^2/3) e^-r:
 *   a = k(1) = (7/3) e^-1          = 0.858385362733
 *   b = k(2) = (13/3) e^-2         = 0.586452894025
 *   k(0.5) = (1.583333) e^-0.5     = 0.960340211212
 *   k(1.5) = (3.25) e^-1.5         = 0.725173020482
 * K = [[1.1, a, b], [a, 1.1, a], [b, a, 1.1]], Cholesky K = L L^T:
 *   L11 = sqrt(1.1)                         = 1.048808848170
 *   L21 = a / L11                           = 0.818438330522
 *   L31 = b / L11                           = 0.559160894808
 *   L22 = sqrt(1.1 - L21^2)                 = 0.655864848221
 *   L32 = (a - L31 L21) / L22               = 0.611020173715
 *   L33 = sqrt(1.1 - L31^2 - L32^2)         = 0.643423220774
 * r = y - m = (0.5, 1.5, -0.5); forward z = L^-1 r:
 *   z = (0.476731294623, 1.692154775685, -2.798329535123)
 * back alpha = L^-T z = (-2.401886323896, 6.631792119998, -4.349127362480)
 *   (check: K alpha = (0.5, 1.5, -0.5)).
 * At x* = 1.5, k* = (k(1.5), k(0.5), k(0.5)):
 *   mean = m + k*.alpha = 0.5 + 0.450351595005 = 0.950351595005
 *   v = L^-1 k* = (0.691425345760, 0.601421476722, 0.320537920209)
 *   var = 1 - |v|^2 = 0.057478640286
 * At x* = 0 (a training point), k* = (1, a, b):
 *   mean = 1.240188632390 (pulled from y = 1 towards the neighbours: the
 *   noise), var = 0.075845027943
 * log p(y) = -1/2 r.alpha - log(L11 L22 L33) - 3/2 log(2 pi)
 *          = -1/2 (10.921308699289) + 0.815098019516 - 2.756815599614
 *          = -7.402371929742
 */
static void test_three_points_by_hand(void **state)
{
    (void)state;
    const double x[] = { 0, 1, 2 }, y[] = { 1, 2, 0 };
    struct tmap_gp *gp = fit_fixed(x, y, 3, 1, sqrt(5.0), 1.0, 0.1, 0.5);
    double mean, var;
    tmap_gp_predict(gp, (double[]){ 1.5 }, &mean, &var);
    assert_close(mean, 0.950351595005, 1e-11);
    assert_close(var, 0.057478640286, 1e-11);
    tmap_gp_predict(gp, (double[]){ 0.0 }, &mean, &var);
    assert_close(mean, 1.240188632390, 1e-11);
    assert_close(var, 0.075845027943, 1e-11);
    assert_close(tmap_gp_log_marginal_likelihood(gp), -7.402371929742, 1e-11);
    /* Far away the prior comes back: mean m, variance sv. */
    tmap_gp_predict(gp, (double[]){ 1e3 }, &mean, &var);
    assert_close(mean, 0.5, 1e-12);
    assert_close(var, 1.0, 1e-12);
    tmap_gp_free(gp);
}

/* In d = 2 the distance is Euclidean: the same three points placed on a
 * diagonal with spacing 1 give the same posterior. */
static void test_distance_is_euclidean(void **state)
{
    (void)state;
    const double s = 1.0 / sqrt(2.0);
    const double x[] = { 0, 0, s, s, 2 * s, 2 * s }, y[] = { 1, 2, 0 };
    struct tmap_gp *gp = fit_fixed(x, y, 3, 2, sqrt(5.0), 1.0, 0.1, 0.5);
    double mean, var;
    tmap_gp_predict(gp, (double[]){ 1.5 * s, 1.5 * s }, &mean, &var);
    assert_close(mean, 0.950351595005, 1e-11);
    assert_close(var, 0.057478640286, 1e-11);
    tmap_gp_free(gp);
}

/* ---- expected improvement ----------------------------------------------- */

/* EI = g Phi(g/sd) + sd phi(g/sd), g = mean - best - xi. Table values:
 * Phi(1) = 0.841344746069, phi(1) = 0.241970724519, Phi(0.5) =
 * 0.691462461274, phi(0.5) = 0.352065326764, phi(0) = 0.398942280401. */
static void test_expected_improvement(void **state)
{
    (void)state;
    assert_close(tmap_expected_improvement(0.0, 1.0, 0.0, 0.0), 0.398942280401, 1e-12);
    /* g = 1, sd = 1: Phi(1) + phi(1) */
    assert_close(tmap_expected_improvement(1.0, 1.0, 0.0, 0.0), 1.083315470588, 1e-12);
    /* g = -1, sd = 1: -Phi(-1) + phi(1) = -(1 - Phi(1)) + phi(1) */
    assert_close(tmap_expected_improvement(2.0, 1.0, 3.0, 0.0), 0.083315470588, 1e-12);
    /* g = 1, sd = 2: Phi(0.5) + 2 phi(0.5) */
    assert_close(tmap_expected_improvement(1.5, 4.0, 0.5, 0.0), 1.395593114803, 1e-12);
    /* the margin xi moves the threshold: g = 2 - 0 - 1 = 1 */
    assert_close(tmap_expected_improvement(2.0, 1.0, 0.0, 1.0), 1.083315470588, 1e-12);
    /* var -> 0: EI -> max(g, 0), continuously */
    assert_close(tmap_expected_improvement(2.0, 0.0, 1.0, 0.0), 1.0, 0.0);
    assert_close(tmap_expected_improvement(2.0, 1e-300, 1.0, 0.0), 1.0, 1e-12);
    assert_close(tmap_expected_improvement(2.0, 1e-12, 1.0, 0.0), 1.0, 1e-12);
    assert_close(tmap_expected_improvement(0.0, 0.0, 1.0, 0.0), 0.0, 0.0);
    assert_close(tmap_expected_improvement(0.0, 1e-300, 1.0, 0.0), 0.0, 0.0);
    assert_close(tmap_expected_improvement(0.0, -1e-18, 1.0, 0.0), 0.0, 0.0);
    /* far below best: tiny but never negative */
    double far = tmap_expected_improvement(-30.0, 1.0, 0.0, 0.0);
    assert_true(far >= 0.0 && far < 1e-190);
}

/* ---- fitting ------------------------------------------------------------ */

enum { N_SMOOTH = 25, N_SAMPLE = 60 };

/* y = sin(freq x) at 25 evenly spaced x in [0, 10]. */
static void sine(double freq, double *x, double *y)
{
    for (size_t i = 0; i < N_SMOOTH; i++) {
        x[i] = 10.0 * (double)i / (N_SMOOTH - 1);
        y[i] = sin(freq * x[i]);
    }
}

static uint64_t rng_state;

static double uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return ((double)((z ^ (z >> 31)) >> 11) + 1.0) * 0x1.0p-53;
}

static double normal(void)
{
    return sqrt(-2.0 * log(uniform())) * cos(2.0 * M_PI * uniform());
}

/* A draw from the model itself: y = L z at 60 points in [0, 10], with L the
 * Cholesky factor of the unit-variance Matern 5/2 kernel of lengthscale l
 * (plus 1e-8 jitter), z standard normal. */
static void gp_sample(double lengthscale, uint64_t seed, double *x, double *y)
{
    gsl_matrix *k = gsl_matrix_alloc(N_SAMPLE, N_SAMPLE);
    for (size_t i = 0; i < N_SAMPLE; i++)
        x[i] = 10.0 * (double)i / (N_SAMPLE - 1);
    for (size_t i = 0; i < N_SAMPLE; i++)
        for (size_t j = 0; j < N_SAMPLE; j++) {
            double u = sqrt(5.0) * fabs(x[i] - x[j]) / lengthscale;
            gsl_matrix_set(k, i, j, (1.0 + u + u * u / 3.0) * exp(-u) + (i == j ? 1e-8 : 0.0));
        }
    assert_int_equal(gsl_linalg_cholesky_decomp1(k), GSL_SUCCESS);
    rng_state = seed;
    double z[N_SAMPLE];
    for (size_t i = 0; i < N_SAMPLE; i++)
        z[i] = normal();
    for (size_t i = 0; i < N_SAMPLE; i++) {
        y[i] = 0.0;
        for (size_t j = 0; j <= i; j++)
            y[i] += gsl_matrix_get(k, i, j) * z[j];
    }
    gsl_matrix_free(k);
}

/* Data drawn from a GP with a known lengthscale: the fit recovers it within
 * a factor of 2, and tells the shorter scale from the longer. */
static void test_fit_recovers_lengthscale(void **state)
{
    (void)state;
    static const double truth[] = { 0.7, 2.5 };
    double x[N_SAMPLE], y[N_SAMPLE], fitted[2];
    for (size_t t = 0; t < 2; t++) {
        gp_sample(truth[t], 21 + t, x, y);
        struct tmap_gp *gp = fit(x, y, N_SAMPLE, 1, 1);
        double nv, sv;
        tmap_gp_hyperparameters(gp, &fitted[t], &sv, &nv, NULL);
        if (!(fitted[t] > 0.5 * truth[t] && fitted[t] < 2.0 * truth[t]))
            fail_msg("lengthscale %g fitted, %g true", fitted[t], truth[t]);
        assert_true(nv < 1e-3 * sv); /* noise-free draws: almost no noise */
        tmap_gp_free(gp);
    }
}

/* A smooth function: the fit interpolates it, and three times the frequency
 * gives a markedly shorter lengthscale. (The value itself is long, about 7
 * for sin(x): an analytic function looks smoother than any Matern 5/2 draw,
 * and the likelihood answers with a long scale and a large variance.) */
static void test_fit_smooth_function(void **state)
{
    (void)state;
    double x[N_SMOOTH], y[N_SMOOTH];
    sine(1.0, x, y);
    struct tmap_gp *slow = fit(x, y, N_SMOOTH, 1, 1);
    for (double t = 0.2; t < 10.0; t += 0.5) {
        double mean, var;
        tmap_gp_predict(slow, &t, &mean, &var);
        assert_close(mean, sin(t), 5e-3);
        assert_true(var < 1e-4);
    }
    sine(3.0, x, y);
    struct tmap_gp *fast = fit(x, y, N_SMOOTH, 1, 1);
    double l_slow, l_fast;
    tmap_gp_hyperparameters(slow, &l_slow, NULL, NULL, NULL);
    tmap_gp_hyperparameters(fast, &l_fast, NULL, NULL, NULL);
    if (!(l_fast < 0.6 * l_slow))
        fail_msg("lengthscale %g for sin(3x), %g for sin(x)", l_fast, l_slow);
    tmap_gp_free(slow);
    tmap_gp_free(fast);
}

/* The fit's likelihood, in the units of y, is that of tmap_gp_fit_fixed at
 * the fitted hyperparameters, and no nearby hyperparameters beat it. */
static void test_fit_is_optimal_and_consistent(void **state)
{
    (void)state;
    double x[N_SMOOTH], y[N_SMOOTH];
    sine(1.0, x, y);
    rng_state = 8;
    for (size_t i = 0; i < N_SMOOTH; i++) /* other units, noise of sd 1 */
        y[i] = 100.0 + 20.0 * y[i] + normal();
    struct tmap_gp *gp = fit(x, y, N_SMOOTH, 1, 4);
    double l, sv, nv, m, lml = tmap_gp_log_marginal_likelihood(gp);
    tmap_gp_hyperparameters(gp, &l, &sv, &nv, &m);
    struct tmap_gp *same = fit_fixed(x, y, N_SMOOTH, 1, l, sv, nv, m);
    assert_close(tmap_gp_log_marginal_likelihood(same), lml, 1e-8 * fabs(lml));
    double a_mean, a_var, b_mean, b_var, t = 4.3;
    tmap_gp_predict(gp, &t, &a_mean, &a_var);
    tmap_gp_predict(same, &t, &b_mean, &b_var);
    assert_close(a_mean, b_mean, 1e-8);
    assert_close(a_var, b_var, 1e-8);
    tmap_gp_free(same);
    static const double steps[] = { 0.9, 1.1 };
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++) {
            double f = steps[s];
            struct tmap_gp *near = fit_fixed(x, y, N_SMOOTH, 1, k == 0 ? l * f : l,
                                             k == 1 ? sv * f : sv, k == 2 ? nv * f : nv, m);
            double other = tmap_gp_log_marginal_likelihood(near);
            if (other > lml + 1e-6)
                fail_msg("hyperparameter %d x %g: log likelihood %.9g beats the fit's %.9g", k,
                         f, other, lml);
            tmap_gp_free(near);
        }
    tmap_gp_free(gp);
}

static void test_fit_deterministic(void **state)
{
    (void)state;
    /* 30 points in 3-D from a fixed formula */
    double x[90], y[30];
    for (size_t i = 0; i < 30; i++) {
        for (size_t k = 0; k < 3; k++)
            x[i * 3 + k] = fmod(0.37 * (double)(i * (k + 2)) + 0.11 * (double)k, 1.0);
        y[i] = -pow(x[i * 3] - 0.3, 2) + 0.5 * x[i * 3 + 1] * x[i * 3 + 2];
    }
    struct tmap_gp *a = fit(x, y, 30, 3, 77), *b = fit(x, y, 30, 3, 77);
    double ha[4], hb[4];
    tmap_gp_hyperparameters(a, &ha[0], &ha[1], &ha[2], &ha[3]);
    tmap_gp_hyperparameters(b, &hb[0], &hb[1], &hb[2], &hb[3]);
    assert_memory_equal(ha, hb, sizeof ha);
    assert_true(tmap_gp_log_marginal_likelihood(a) == tmap_gp_log_marginal_likelihood(b));
    double ma, va, mb, vb, q[3] = { 0.2, 0.4, 0.6 };
    tmap_gp_predict(a, q, &ma, &va);
    tmap_gp_predict(b, q, &mb, &vb);
    assert_true(ma == mb && va == vb);
    tmap_gp_free(a);
    tmap_gp_free(b);
}

/* One point, or every y the same: nothing to standardise by, still a model. */
static void test_fit_degenerate(void **state)
{
    (void)state;
    double x[] = { 0.5 }, y[] = { 3.0 }, mean, var;
    struct tmap_gp *gp = fit(x, y, 1, 1, 0);
    tmap_gp_predict(gp, x, &mean, &var);
    assert_close(mean, 3.0, 1e-6);
    tmap_gp_free(gp);
    double xs[] = { 0, 1, 2, 3 }, ys[] = { 2, 2, 2, 2 };
    gp = fit(xs, ys, 4, 1, 0);
    tmap_gp_predict(gp, (double[]){ 1.5 }, &mean, &var);
    assert_close(mean, 2.0, 1e-9);
    tmap_gp_free(gp);
    /* duplicated inputs are fine with the fitted noise floor */
    double xd[] = { 1, 1, 2 }, yd[] = { 0, 0.1, 1 };
    gp = fit(xd, yd, 3, 1, 0);
    tmap_gp_free(gp);
}

/* Enough points to need the heap in tmap_gp_predict (> 256). */
static void test_predict_many_points(void **state)
{
    (void)state;
    enum { N = 300 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (size_t i = 0; i < N; i++) {
        x[i] = 0.1 * (double)i;
        y[i] = cos(x[i]);
    }
    struct tmap_gp *gp = fit_fixed(x, y, N, 1, 2.0, 1.0, 1e-6, 0.0);
    double mean, var, t = 10.05;
    tmap_gp_predict(gp, &t, &mean, &var);
    assert_close(mean, cos(t), 1e-4);
    tmap_gp_free(gp);
    free(x);
    free(y);
}

/* ---- errors ------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    struct tmap_gp *gp = (struct tmap_gp *)&gp;
    struct tmap_error err = { 0 };
    const double x[] = { 1, 1, 2 }, y[] = { 0, 1, 2 };
    /* the same input twice without noise: K is singular */
    assert_int_equal(tmap_gp_fit_fixed(x, y, 3, 1, 1.0, 1.0, 0.0, 0.0, &gp, &err),
                     TMAP_ERR_DATA);
    assert_null(gp);
    assert_contains(err.message, "not positive definite");
    assert_int_equal(tmap_gp_fit_fixed(x, y, 3, 1, -1.0, 1.0, 0.1, 0.0, &gp, &err),
                     TMAP_ERR_USAGE);
    assert_contains(err.message, "lengthscale -1");
    const double bad_y[] = { 0, NAN, 2 };
    assert_int_equal(tmap_gp_fit(x, bad_y, 3, 1, 0, &gp, &err), TMAP_ERR_DATA);
    assert_contains(err.message, "y[1] is not finite");
    const double bad_x[] = { 0, INFINITY, 2 };
    assert_int_equal(tmap_gp_fit(bad_x, y, 3, 1, 0, &gp, &err), TMAP_ERR_DATA);
    assert_contains(err.message, "x[1][0] is not finite");
    assert_int_equal(tmap_gp_fit(x, y, 0, 1, 0, &gp, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "0 points");
    tmap_gp_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_points_by_hand),
        cmocka_unit_test(test_distance_is_euclidean),
        cmocka_unit_test(test_expected_improvement),
        cmocka_unit_test(test_fit_recovers_lengthscale),
        cmocka_unit_test(test_fit_smooth_function),
        cmocka_unit_test(test_fit_is_optimal_and_consistent),
        cmocka_unit_test(test_fit_deterministic),
        cmocka_unit_test(test_fit_degenerate),
        cmocka_unit_test(test_predict_many_points),
        cmocka_unit_test(test_errors),
    };
    return test_run_group(tests); /* less TMAP_TEST_SKIP's cases (skip.h) */
}
