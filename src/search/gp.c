/*
 * gp.c - Gaussian-process regression for the weight search (docs/design.md
 * section 6).
 *
 * Model: y = m + f(x) + noise, f ~ GP(0, k), with the Matern 5/2 kernel
 *   k(r) = sv (1 + u + u^2/3) exp(-u),  u = sqrt(5) r / l,
 * r the Euclidean distance, l the lengthscale, sv the signal variance and
 * nv the noise variance. With K = k(X, X) + nv I = L L^T (GSL's Cholesky):
 *   alpha = K^-1 (y - m),
 *   mean(x*) = m + k*^T alpha,  var(x*) = sv - |L^-1 k*|^2,
 *   log p(y) = -1/2 (y - m)^T alpha - sum_i log L_ii - n/2 log(2 pi).
 *
 * Fitting (tmap_gp_fit) works on standardised y (zero mean, unit sd), so one
 * set of bounds suits every objective's units. The constant mean is
 * profiled out: for given (l, sv, nv) the likelihood is maximised by the
 * generalised-least-squares mean 1^T K^-1 y / 1^T K^-1 1, clamped to the
 * range of y so that far from the data the surrogate never promises more
 * than was seen. The remaining three hyperparameters are searched by BFGS
 * (GSL multimin) with the analytic gradient
 *   d log p / d theta = 1/2 tr((alpha alpha^T - K^-1) dK/d theta)
 * (Rasmussen and Williams, eq. 5.9), which stays exact for the profiled
 * likelihood because its derivative in m is zero at the optimum (or m is
 * pinned at a clamp). Each is optimised in log space and squashed into a box
 * by a logistic map, so BFGS runs unconstrained and never leaves the box:
 * lengthscale in [0.01, 10] x the largest distance between inputs, sv in
 * [0.01, 100] and nv in [1e-6, 1] (both in units of var(y)). The noise floor
 * also keeps K well conditioned (condition number below about 1e10).
 */
#include "search/gp.h"

#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_math.h> /* M_PI, M_SQRT2: not in strict C17 */
#include <gsl/gsl_multimin.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/random.h"

/* OpenBLAS's own controls (its cblas.h would clash with GSL's gsl_cblas.h).
 * A fit's matrices are tens to hundreds of rows: BLAS threads only add
 * wake-ups, and their spinning afterwards took a fifth of the CPU in
 * bench_search. So a fit runs OpenBLAS single-threaded, as neighbors.c does
 * for its own reasons; the setting is process-wide for the fit's duration. */
void openblas_set_num_threads(int n_threads);
int  openblas_get_num_threads(void);

#define N_HYPER  3   /* log lengthscale, log signal variance, log noise variance */
#define N_STARTS 5   /* BFGS starts: one default, the rest drawn from the seed */
#define MAX_ITER 100 /* BFGS iterations per start */
#define SQRT5    2.23606797749978969641

struct tmap_gp {
    size_t      n, d;
    double     *x;     /* n x d, row-major copy of the inputs */
    gsl_matrix *chol;  /* L, lower triangle */
    gsl_vector *alpha; /* K^-1 (y_std - mean) */
    double      lengthscale, signal_var, noise_var, mean; /* standardised units */
    double      y_shift, y_scale; /* y = y_shift + y_scale * y_std */
    double      lml;              /* in the units of y */
};

/* ---- kernel ------------------------------------------------------------- */

static double distance(const double *a, const double *b, size_t d)
{
    double sum = 0.0;
    for (size_t k = 0; k < d; k++)
        sum += (a[k] - b[k]) * (a[k] - b[k]);
    return sqrt(sum);
}

/* The Matern 5/2 correlation (the kernel over sv) at distance r and, when
 * dlog is given, its derivative in log(lengthscale), u^2 (1 + u) / 3 e^-u
 * (d/du [(1 + u + u^2/3) e^-u] = -u (1 + u) / 3 e^-u and du/dlog l = -u).
 * One exp for both: the exps are most of a fit's cost. */
static double matern(double r, double lengthscale, double *dlog)
{
    double u = SQRT5 * r / lengthscale, e = exp(-u);
    if (dlog)
        *dlog = u * u * (1.0 + u) / 3.0 * e;
    return (1.0 + u + u * u / 3.0) * e;
}

static void pairwise_distances(const double *x, size_t n, size_t d, gsl_matrix *dist)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++) {
            double r = distance(x + i * d, x + j * d, d);
            gsl_matrix_set(dist, i, j, r);
            gsl_matrix_set(dist, j, i, r);
        }
}

/* GSL's default handler aborts the process on errors such as a matrix that
 * is not positive definite; tmap reports those as statuses instead. */
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

static void handler_off(void)
{
    gsl_set_error_handler_off();
}

/* ---- one factorisation -------------------------------------------------- */

struct hyper {
    double lengthscale, signal_var, noise_var;
};

/* Fills chol with the Cholesky factor of K; false when K is not positive
 * definite. With dcorr, also keeps the kernel's derivative in log
 * lengthscale in dcorr's lower triangle and the correlation R in its upper
 * one, for lml_gradient: the exps are most of a fit's cost, and the same
 * ones serve both (the diagonal, R = 1 and dR = 0, is not stored). */
static bool factorise(const gsl_matrix *dist, struct hyper h, gsl_matrix *chol, gsl_matrix *dcorr)
{
    size_t n = dist->size1;
    for (size_t i = 0; i < n; i++) {
        const double *dist_row = dist->data + i * dist->tda;
        double *chol_row = chol->data + i * chol->tda;
        for (size_t j = 0; j < i; j++) {
            double dlog, r = matern(dist_row[j], h.lengthscale, dcorr ? &dlog : NULL), k = h.signal_var * r;
            chol_row[j] = k;
            chol->data[j * chol->tda + i] = k;
            if (dcorr) {
                dcorr->data[i * dcorr->tda + j] = dlog;
                dcorr->data[j * dcorr->tda + i] = r;
            }
        }
        chol_row[i] = h.signal_var + h.noise_var; /* matern(0) = 1 */
    }
    return gsl_linalg_cholesky_decomp1(chol) == GSL_SUCCESS;
}

/* The mean that maximises the likelihood for this K, clamped to [lo, hi];
 * tmp is scratch of length n. */
static double profiled_mean(const gsl_matrix *chol, const gsl_vector *y, double lo, double hi,
                            gsl_vector *tmp)
{
    gsl_vector_set_all(tmp, 1.0);
    gsl_linalg_cholesky_svx(chol, tmp); /* K^-1 1 */
    double num = 0.0, den = 0.0;
    gsl_blas_ddot(tmp, y, &num);
    for (size_t i = 0; i < tmp->size; i++)
        den += gsl_vector_get(tmp, i);
    double m = den > 0.0 ? num / den : 0.0;
    return m < lo ? lo : m > hi ? hi : m;
}

/* alpha = K^-1 (y - mean); returns the log marginal likelihood. */
static double solve_alpha(const gsl_matrix *chol, const gsl_vector *y, double mean,
                          gsl_vector *alpha)
{
    size_t n = y->size;
    for (size_t i = 0; i < n; i++)
        gsl_vector_set(alpha, i, gsl_vector_get(y, i) - mean);
    double quad = 0.0, log_det = 0.0;
    gsl_linalg_cholesky_svx(chol, alpha);
    for (size_t i = 0; i < n; i++) {
        quad += (gsl_vector_get(y, i) - mean) * gsl_vector_get(alpha, i);
        log_det += log(gsl_matrix_get(chol, i, i));
    }
    return -0.5 * quad - log_det - 0.5 * (double)n * log(2.0 * M_PI);
}

/* ---- the likelihood as a function of the search variables -------------- */

/* Everything BFGS's callbacks need, allocated once per fit. */
struct fit_work {
    const gsl_matrix *dist;
    const gsl_vector *y;          /* standardised */
    double            y_lo, y_hi; /* clamp for the profiled mean */
    double            lo[N_HYPER], hi[N_HYPER]; /* box, in log space */
    gsl_matrix       *chol, *kinv;
    gsl_matrix       *dcorr;      /* factorise's kernel values at the point evaluated last */
    gsl_vector       *alpha, *tmp;
    double            best_f;
    double            best_t[N_HYPER];
};

static double logistic(double t)
{
    return 1.0 / (1.0 + exp(-t));
}

/* Search variable t -> hyperparameter, and d log(hyperparameter) / dt. */
static double squash(const struct fit_work *w, const gsl_vector *t, size_t k, double *dlog_dt)
{
    double z = logistic(gsl_vector_get(t, k));
    if (dlog_dt)
        *dlog_dt = (w->hi[k] - w->lo[k]) * z * (1.0 - z);
    return exp(w->lo[k] + (w->hi[k] - w->lo[k]) * z);
}

static double unsquash(const struct fit_work *w, size_t k, double value)
{
    double z = (log(value) - w->lo[k]) / (w->hi[k] - w->lo[k]);
    z = z < 1e-6 ? 1e-6 : z > 1.0 - 1e-6 ? 1.0 - 1e-6 : z;
    return log(z / (1.0 - z));
}

static struct hyper hyper_at(const struct fit_work *w, const gsl_vector *t, double dlog_dt[N_HYPER])
{
    struct hyper h;
    h.lengthscale = squash(w, t, 0, dlog_dt ? &dlog_dt[0] : NULL);
    h.signal_var = squash(w, t, 1, dlog_dt ? &dlog_dt[1] : NULL);
    h.noise_var = squash(w, t, 2, dlog_dt ? &dlog_dt[2] : NULL);
    return h;
}

/* 1/2 tr((alpha alpha^T - K^-1) dK/dtheta) for the three log-hyperparameters,
 * over the lower triangle (both matrices are symmetric: off-diagonal pairs
 * count twice). dK/dlog sv = sv R, dK/dlog nv = nv I; R and dK/dlog l come
 * from the factorise that preceded it at the same h. */
static void lml_gradient(struct fit_work *w, struct hyper h, double grad[N_HYPER])
{
    size_t n = w->dist->size1;
    gsl_matrix_memcpy(w->kinv, w->chol);
    gsl_linalg_cholesky_invert(w->kinv);
    grad[0] = grad[1] = grad[2] = 0.0;
    const double *alpha = w->alpha->data;
    size_t stride = w->alpha->stride;
    for (size_t i = 0; i < n; i++) {
        const double *kinv_row = w->kinv->data + i * w->kinv->tda;
        for (size_t j = 0; j <= i; j++) {
            double a = alpha[i * stride] * alpha[j * stride];
            double c = (i == j ? 0.5 : 1.0) * (a - kinv_row[j]);
            double dlog = 0.0, r = 1.0; /* matern at distance 0 */
            if (j < i) {
                dlog = w->dcorr->data[i * w->dcorr->tda + j];
                r = w->dcorr->data[j * w->dcorr->tda + i];
            }
            grad[0] += c * h.signal_var * dlog;
            grad[1] += c * h.signal_var * r;
            if (i == j)
                grad[2] += c * h.noise_var;
        }
    }
}

/* -log p(y) at t and, when g is given, its gradient in t. A K that is not
 * positive definite gives +inf (BFGS then backs off). Records the best t. */
static double evaluate(struct fit_work *w, const gsl_vector *t, gsl_vector *g)
{
    double dlog_dt[N_HYPER];
    struct hyper h = hyper_at(w, t, dlog_dt);
    if (g)
        gsl_vector_set_zero(g);
    if (!factorise(w->dist, h, w->chol, g ? w->dcorr : NULL))
        return GSL_POSINF;
    double m = profiled_mean(w->chol, w->y, w->y_lo, w->y_hi, w->tmp);
    double f = -solve_alpha(w->chol, w->y, m, w->alpha);
    if (f < w->best_f) {
        w->best_f = f;
        for (size_t k = 0; k < N_HYPER; k++)
            w->best_t[k] = gsl_vector_get(t, k);
    }
    if (g) {
        double grad[N_HYPER];
        lml_gradient(w, h, grad);
        for (size_t k = 0; k < N_HYPER; k++)
            gsl_vector_set(g, k, -grad[k] * dlog_dt[k]);
    }
    return f;
}

static double cb_f(const gsl_vector *t, void *p)
{
    return evaluate(p, t, NULL);
}

static void cb_df(const gsl_vector *t, void *p, gsl_vector *g)
{
    evaluate(p, t, g);
}

static void cb_fdf(const gsl_vector *t, void *p, double *f, gsl_vector *g)
{
    *f = evaluate(p, t, g);
}

/* ---- fitting ------------------------------------------------------------ */

/* Start 0 is a neutral guess (lengthscale half the spread of the inputs,
 * signal variance 1, noise 1% of var(y)); the others are uniform in the box
 * (within its inner 90%, where the logistic map is not flat). */
static void start_point(const struct fit_work *w, size_t start, double spread, uint64_t *rng,
                        gsl_vector *t)
{
    if (start == 0) {
        gsl_vector_set(t, 0, unsquash(w, 0, 0.5 * spread));
        gsl_vector_set(t, 1, unsquash(w, 1, 1.0));
        gsl_vector_set(t, 2, unsquash(w, 2, 1e-2));
        return;
    }
    for (size_t k = 0; k < N_HYPER; k++) {
        double z = 0.05 + 0.9 * (double)(tmap_random_next(rng) >> 11) * 0x1.0p-53;
        gsl_vector_set(t, k, log(z / (1.0 - z)));
    }
}

/* One BFGS run from t; the best point seen is kept in w. */
static void minimise_from(struct fit_work *w, gsl_multimin_fdfminimizer *s, gsl_vector *t)
{
    gsl_multimin_function_fdf fdf = { cb_f, cb_df, cb_fdf, N_HYPER, w };
    if (gsl_multimin_fdfminimizer_set(s, &fdf, t, 0.1, 0.1) != GSL_SUCCESS)
        return;
    for (int iter = 0; iter < MAX_ITER; iter++) {
        if (gsl_multimin_fdfminimizer_iterate(s) != GSL_SUCCESS)
            return; /* no further progress along the line: take the best seen */
        if (gsl_multimin_test_gradient(s->gradient, 1e-5) == GSL_SUCCESS)
            return;
    }
}

static void work_free(struct fit_work *w)
{
    gsl_matrix_free(w->chol);
    gsl_matrix_free(w->kinv);
    gsl_matrix_free(w->dcorr);
    gsl_vector_free(w->alpha);
    gsl_vector_free(w->tmp);
}

static bool work_alloc(struct fit_work *w, size_t n)
{
    w->chol = gsl_matrix_alloc(n, n);
    w->kinv = gsl_matrix_alloc(n, n);
    w->dcorr = gsl_matrix_alloc(n, n);
    w->alpha = gsl_vector_alloc(n);
    w->tmp = gsl_vector_alloc(n);
    return w->chol && w->kinv && w->dcorr && w->alpha && w->tmp;
}

/* The box (docs/design.md section 6 leaves it open; see the top of this file). */
static void set_box(struct fit_work *w, double spread)
{
    w->lo[0] = log(0.01 * spread);
    w->hi[0] = log(10.0 * spread);
    w->lo[1] = log(1e-2);
    w->hi[1] = log(1e2);
    w->lo[2] = log(1e-6);
    w->hi[2] = log(1.0);
}

/* Multi-start BFGS; on success w->best_t holds the best hyperparameters. */
static enum tmap_status optimise(struct fit_work *w, double spread, uint64_t seed,
                                 struct tmap_error *err)
{
    gsl_multimin_fdfminimizer *s =
        gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, N_HYPER);
    gsl_vector *t = gsl_vector_alloc(N_HYPER);
    if (!s || !t) {
        gsl_multimin_fdfminimizer_free(s);
        gsl_vector_free(t);
        return tmap_fail(err, TMAP_ERR_NOMEM, "fitting a Gaussian process: out of memory");
    }
    uint64_t rng = seed;
    w->best_f = GSL_POSINF;
    for (size_t start = 0; start < N_STARTS; start++) {
        start_point(w, start, spread, &rng, t);
        minimise_from(w, s, t); /* setting the start evaluates it, so it counts too */
    }
    gsl_multimin_fdfminimizer_free(s);
    gsl_vector_free(t);
    if (!isfinite(w->best_f))
        return tmap_fail(err, TMAP_ERR_DATA,
                         "fitting a Gaussian process: no hyperparameters give a positive "
                         "definite kernel matrix");
    return TMAP_OK;
}

static struct tmap_gp *gp_alloc(const double *x, size_t n, size_t d)
{
    struct tmap_gp *gp = calloc(1, sizeof *gp);
    if (!gp)
        return NULL;
    gp->n = n;
    gp->d = d;
    gp->x = malloc(n * d * sizeof *gp->x);
    gp->chol = gsl_matrix_alloc(n, n);
    gp->alpha = gsl_vector_alloc(n);
    if (!gp->x || !gp->chol || !gp->alpha) {
        tmap_gp_free(gp);
        return NULL;
    }
    memcpy(gp->x, x, n * d * sizeof *gp->x);
    gp->y_scale = 1.0;
    return gp;
}

static enum tmap_status check_inputs(const double *x, const double *y, size_t n, size_t d,
                                     struct tmap_error *err)
{
    if (n == 0 || d == 0)
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "fitting a Gaussian process: %zu points of dimension %zu", n, d);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            return tmap_fail(err, TMAP_ERR_DATA,
                             "fitting a Gaussian process: y[%zu] is not finite (%g)", i, y[i]);
        for (size_t k = 0; k < d; k++)
            if (!isfinite(x[i * d + k]))
                return tmap_fail(err, TMAP_ERR_DATA,
                                 "fitting a Gaussian process: x[%zu][%zu] is not finite", i, k);
    }
    pthread_once(&handler_once, handler_off);
    return TMAP_OK;
}

/* Sets y_std = (y - shift) / scale with the sample's mean and sd (scale 1
 * when every y is the same); returns the range of y_std in lo, hi. */
static void standardise(struct tmap_gp *gp, const double *y, gsl_vector *y_std, double *lo,
                        double *hi)
{
    size_t n = gp->n;
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += y[i];
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++)
        sq += (y[i] - mean) * (y[i] - mean);
    double sd = sqrt(sq / (double)n);
    gp->y_shift = mean;
    gp->y_scale = sd > 1e-12 * fmax(1.0, fabs(mean)) ? sd : 1.0;
    *lo = GSL_POSINF;
    *hi = GSL_NEGINF;
    for (size_t i = 0; i < n; i++) {
        double v = (y[i] - mean) / gp->y_scale;
        gsl_vector_set(y_std, i, v);
        *lo = fmin(*lo, v);
        *hi = fmax(*hi, v);
    }
}

static double largest(const gsl_matrix *dist)
{
    double m = gsl_matrix_max(dist);
    return m > 0.0 ? m : 1.0;
}

/* Refactorises at the optimum found and stores the model in gp. */
static void finish_fit(struct tmap_gp *gp, struct fit_work *w)
{
    gsl_vector_const_view t = gsl_vector_const_view_array(w->best_t, N_HYPER);
    struct hyper h = hyper_at(w, &t.vector, NULL);
    factorise(w->dist, h, gp->chol, NULL); /* succeeded at this t before */
    gp->mean = profiled_mean(gp->chol, w->y, w->y_lo, w->y_hi, w->tmp);
    double lml = solve_alpha(gp->chol, w->y, gp->mean, gp->alpha);
    gp->lengthscale = h.lengthscale;
    gp->signal_var = h.signal_var;
    gp->noise_var = h.noise_var;
    gp->lml = lml - (double)gp->n * log(gp->y_scale);
}

enum tmap_status tmap_gp_fit(const double *x, const double *y, size_t n, size_t d, uint64_t seed,
                             struct tmap_gp **out, struct tmap_error *err)
{
    *out = NULL;
    enum tmap_status st = check_inputs(x, y, n, d, err);
    if (st != TMAP_OK)
        return st;
    struct tmap_gp *gp = gp_alloc(x, n, d);
    struct fit_work w = { 0 };
    gsl_matrix *dist = gsl_matrix_alloc(n, n);
    gsl_vector *y_std = gsl_vector_alloc(n);
    if (!gp || !dist || !y_std || !work_alloc(&w, n)) {
        st = tmap_fail(err, TMAP_ERR_NOMEM, "fitting a Gaussian process: out of memory");
        goto done;
    }
    pairwise_distances(x, n, d, dist);
    standardise(gp, y, y_std, &w.y_lo, &w.y_hi);
    w.dist = dist;
    w.y = y_std;
    set_box(&w, largest(dist));
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    st = optimise(&w, largest(dist), seed, err);
    openblas_set_num_threads(blas_threads);
    if (st == TMAP_OK) {
        finish_fit(gp, &w);
        *out = gp;
        gp = NULL;
    }
done:
    work_free(&w);
    gsl_matrix_free(dist);
    gsl_vector_free(y_std);
    tmap_gp_free(gp);
    return st;
}

enum tmap_status tmap_gp_fit_fixed(const double *x, const double *y, size_t n, size_t d,
                                   double lengthscale, double signal_var, double noise_var,
                                   double mean, struct tmap_gp **out, struct tmap_error *err)
{
    *out = NULL;
    if (!(lengthscale > 0.0) || !(signal_var > 0.0) || !(noise_var >= 0.0) || !isfinite(mean))
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "Gaussian process: lengthscale %g, signal variance %g, noise variance "
                         "%g, mean %g (need > 0, > 0, >= 0, finite)",
                         lengthscale, signal_var, noise_var, mean);
    enum tmap_status st = check_inputs(x, y, n, d, err);
    if (st != TMAP_OK)
        return st;
    struct tmap_gp *gp = gp_alloc(x, n, d);
    gsl_matrix *dist = gsl_matrix_alloc(n, n);
    gsl_vector *yv = gsl_vector_alloc(n);
    if (!gp || !dist || !yv) {
        st = tmap_fail(err, TMAP_ERR_NOMEM, "fitting a Gaussian process: out of memory");
        goto done;
    }
    pairwise_distances(x, n, d, dist);
    memcpy(yv->data, y, n * sizeof *y);
    struct hyper h = { lengthscale, signal_var, noise_var };
    if (!factorise(dist, h, gp->chol, NULL)) {
        st = tmap_fail(err, TMAP_ERR_DATA,
                       "Gaussian process: the kernel matrix of %zu points is not positive "
                       "definite (duplicated inputs need a noise variance > 0)", n);
        goto done;
    }
    gp->lengthscale = lengthscale;
    gp->signal_var = signal_var;
    gp->noise_var = noise_var;
    gp->mean = mean;
    gp->lml = solve_alpha(gp->chol, yv, mean, gp->alpha);
    *out = gp;
    gp = NULL;
done:
    gsl_matrix_free(dist);
    gsl_vector_free(yv);
    tmap_gp_free(gp);
    return st;
}

/* ---- prediction and the rest -------------------------------------------- */

#define PREDICT_STACK 256 /* points served without a heap allocation */

void tmap_gp_predict(const struct tmap_gp *gp, const double *x, double *mean, double *var)
{
    size_t n = gp->n;
    double stack[PREDICT_STACK];
    double *k = n <= PREDICT_STACK ? stack : malloc(n * sizeof *k);
    if (!k) {
        *mean = *var = NAN;
        return;
    }
    for (size_t i = 0; i < n; i++)
        k[i] = gp->signal_var *
               matern(distance(x, gp->x + i * gp->d, gp->d), gp->lengthscale, NULL);
    gsl_vector_view kv = gsl_vector_view_array(k, n);
    double m = 0.0, vv = 0.0;
    gsl_blas_ddot(&kv.vector, gp->alpha, &m);
    gsl_blas_dtrsv(CblasLower, CblasNoTrans, CblasNonUnit, gp->chol, &kv.vector); /* L^-1 k* */
    gsl_blas_ddot(&kv.vector, &kv.vector, &vv);
    double v = gp->signal_var - vv;
    *mean = gp->y_shift + gp->y_scale * (gp->mean + m);
    *var = gp->y_scale * gp->y_scale * (v > 0.0 ? v : 0.0);
    if (k != stack)
        free(k);
}

double tmap_gp_log_marginal_likelihood(const struct tmap_gp *gp)
{
    return gp->lml;
}

void tmap_gp_hyperparameters(const struct tmap_gp *gp, double *lengthscale, double *signal_var,
                             double *noise_var, double *mean)
{
    double s2 = gp->y_scale * gp->y_scale;
    if (lengthscale)
        *lengthscale = gp->lengthscale;
    if (signal_var)
        *signal_var = gp->signal_var * s2;
    if (noise_var)
        *noise_var = gp->noise_var * s2;
    if (mean)
        *mean = gp->y_shift + gp->y_scale * gp->mean;
}

void tmap_gp_free(struct tmap_gp *gp)
{
    if (!gp)
        return;
    free(gp->x);
    gsl_matrix_free(gp->chol);
    gsl_vector_free(gp->alpha);
    free(gp);
}

double tmap_expected_improvement(double mean, double var, double best, double xi)
{
    double gain = mean - best - xi;
    if (!(var > 0.0))
        return gain > 0.0 ? gain : 0.0;
    double sd = sqrt(var), z = gain / sd;
    double cdf = 0.5 * erfc(-z / M_SQRT2);
    double pdf = exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
    double ei = gain * cdf + sd * pdf;
    return ei > 0.0 ? ei : 0.0; /* rounding can leave -1e-17 far below best */
}
