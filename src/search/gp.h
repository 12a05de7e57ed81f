/*
 * gp.h - the Gaussian-process surrogate of the weight search (docs/design.md
 * section 6): Matern 5/2 kernel with one isotropic lengthscale, constant
 * mean, signal and noise variance.
 *
 * tmap_gp_fit standardises y, then picks the hyperparameters that maximise
 * the log marginal likelihood (BFGS from several seeded starts, with the
 * constant mean profiled out in closed form); tmap_gp_fit_fixed takes them
 * as given. Predictions are of the latent function (no noise added), in the
 * units of y.
 *
 * The first call turns GSL's error handler off for the whole process: GSL's
 * default aborts on a matrix that is not positive definite, and a library
 * must report that as a status instead.
 */
#ifndef TMAP_SEARCH_GP_H
#define TMAP_SEARCH_GP_H

#include "tmap.h"

#include <stddef.h>
#include <stdint.h>

struct tmap_gp;

/* x is n x d row-major, y has n entries; n >= 1, d >= 1. Deterministic given
 * seed. Fails with TMAP_ERR_DATA on non-finite inputs or when no start gives
 * a positive definite kernel matrix, TMAP_ERR_NOMEM when memory runs out. */
enum tmap_status tmap_gp_fit(const double *x, const double *y, size_t n, size_t d, uint64_t seed,
                             struct tmap_gp **out, struct tmap_error *err);

/* The same model with hyperparameters given, in the units of y (no
 * standardising). TMAP_ERR_DATA when the kernel matrix is not positive
 * definite (duplicated inputs need noise_var > 0), TMAP_ERR_USAGE for a
 * lengthscale or signal_var <= 0 or a noise_var < 0. */
enum tmap_status tmap_gp_fit_fixed(const double *x, const double *y, size_t n, size_t d,
                                   double lengthscale, double signal_var, double noise_var,
                                   double mean, struct tmap_gp **out, struct tmap_error *err);

/* Posterior mean and variance of the latent function at one point x (d
 * entries). NaN for both when scratch memory for a large n cannot be had. */
void tmap_gp_predict(const struct tmap_gp *gp, const double *x, double *mean, double *var);

/* log p(y | x, hyperparameters) in the units of y (for a standardised fit,
 * the Jacobian -n log(sd of y) is included, so the value is comparable with
 * tmap_gp_fit_fixed's on the same data). */
double tmap_gp_log_marginal_likelihood(const struct tmap_gp *gp);

/* The hyperparameters in the units of y (any pointer may be NULL). */
void tmap_gp_hyperparameters(const struct tmap_gp *gp, double *lengthscale, double *signal_var,
                             double *noise_var, double *mean);

void tmap_gp_free(struct tmap_gp *gp);

/* Expected improvement over best for a maximisation, with margin xi:
 * (mean - best - xi) Phi(z) + sd phi(z), z = (mean - best - xi) / sd;
 * max(mean - best - xi, 0) when var is 0 (or negative from rounding). */
double tmap_expected_improvement(double mean, double var, double best, double xi);

#endif
