/*
 * search.h - the weight search (docs/design.md section 6): find indicator weights
 * w that maximise an objective (the ICL proxy of the subset w selects),
 * spending a small budget of objective evaluations.
 *
 * The space is the simplex (w >= 0, sum w = 1) or, with signed_weights, the
 * L1 sphere (sum |w| = 1), so the search can also learn an indicator's
 * direction. Bayesian optimisation (a Gaussian process over w and expected
 * improvement, gp.h) is the default; random and grid search are the
 * baselines that make BO's gain measurable. The objective is opaque here:
 * search.c never selects a subset itself.
 */
#ifndef TMAP_SEARCH_SEARCH_H
#define TMAP_SEARCH_SEARCH_H

#include "tmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* The value of weights w (d entries), higher is better. *reused = true when
 * the caller served it from its memo (w selects a subset already evaluated):
 * such an evaluation spends no budget. A status other than TMAP_OK ends the
 * search with that status and err. */
typedef enum tmap_status (*tmap_objective_fn)(const double *w, size_t d, void *user_data,
                                              double *value, bool *reused,
                                              struct tmap_error *err);

/* q values at once (w is q x d): the batch that batch > 1 proposes, which
 * the caller may evaluate side by side (learn.c shares it among MPI ranks).
 * Same contract as tmap_objective_fn per point. */
typedef enum tmap_status (*tmap_objective_batch_fn)(const double *w, size_t q, size_t d, void *user_data,
                                                    double *values, bool *reused, struct tmap_error *err);

struct tmap_search_params {
    enum tmap_search_kind method;
    size_t   iters;           /* budget: evaluations not reused (default 30) */
    bool     signed_weights;  /* search the L1 sphere instead of the simplex */
    uint64_t seed;
    size_t   n_candidates;    /* BO: random candidates for expected improvement (2000) */
    size_t   max_evaluations; /* reused ones included; 0 = 10 * iters (the default) */
    /* BO and random: stop once this many evaluations in a row were reused,
     * i.e. the search keeps landing on subsets it has judged (a small pool
     * has few subsets to find); 0 = iters (the default). */
    size_t   patience;
    /* BO: points proposed per round (1). More than 1 proposes them by the
     * kriging believer (search.c) and, with batch_f, evaluates them in one
     * call; the initial design goes in batches too. */
    size_t   batch;
    tmap_objective_batch_fn batch_f;
    /* Called after every evaluation, i counting from 0 (may be NULL). */
    void (*on_eval)(size_t i, const double *w, size_t d, double value, bool reused, void *ud);
    void *on_eval_user_data;
};

struct tmap_search_params tmap_search_default_params(void);

struct tmap_search_entry {
    double *w;       /* d entries */
    double  value;
    bool    reused;
    double  seconds; /* wall time of the objective call */
};

struct tmap_search_result {
    size_t  d;
    double *best_w;              /* an evaluated point (see tmap_search_run) */
    double  best_value;          /* the value observed at best_w */
    double  best_posterior_mean; /* BO: the GP's mean at best_w; NaN for random and grid */
    struct tmap_search_entry *trace; /* every evaluation, in order */
    size_t  n_trace;
    size_t  n_spent;             /* evaluations that were not reused */
    bool    stalled;             /* ended by patience: no new subset in that many evaluations */
};

/* Runs the search until iters evaluations were spent, max_evaluations were
 * made, patience evaluations in a row were reused, or (BO, grid, d = 1) no
 * unevaluated point is left. BO starts with the
 * d vertices and the uniform vector, then proposes the candidate of highest
 * expected improvement; random draws Dirichlet(1) points (random signs when
 * signed); grid walks the simplex lattice {k/h} with the largest h whose point
 * count fits in iters. best_w is the evaluated point with the highest
 * posterior mean (BO) or the highest observed value (random, grid; the first
 * on ties). Deterministic given seed. On failure *out is empty. */
enum tmap_status tmap_search_run(size_t d, const struct tmap_search_params *p,
                                 tmap_objective_fn f, void *ud, struct tmap_search_result *out,
                                 struct tmap_error *err);

void tmap_search_result_free(struct tmap_search_result *r);

/* The number of points of the simplex lattice {k/h} in d dimensions,
 * C(h + d - 1, d - 1), saturating at SIZE_MAX. */
size_t tmap_simplex_lattice_size(size_t d, size_t h);

#endif
