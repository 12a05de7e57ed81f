/*
 * objective.h - the weight search's objective (learn.c) as the baselines
 * (baselines.c) use it: a candidate weighting's subset judged by the proxy
 * through one memo, its evaluations shared out among MPI ranks.
 */
#ifndef TMAP_LEARN_OBJECTIVE_H
#define TMAP_LEARN_OBJECTIVE_H

#include "select/select.h"
#include "tmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A seen subset and the proxy value it got. */
struct memo_entry {
    uint64_t hash;
    double   value;
};

struct objective {
    const struct tmap_pool         *pool;
    struct tmap_proxy              *proxy;
    const struct tmap_learn_params *p;
    const double                   *u; /* ranks, n x d */
    size_t                          n, d;
    struct chooser                  ch;
    double                         *s;
    size_t                         *rows;
    struct memo_entry              *memo;
    size_t                          n_memo;
    uint64_t                       *hashes; /* per evaluation, for the trace */
    size_t                          n_evals, cap_evals;
    int                             rank, size; /* 0 and 1 unless distributed */
};

/* One proxy evaluation to make: a subset, the scores that order it, and
 * the proxy's seed for its draws. */
struct job {
    const size_t *rows;
    size_t        k;
    const double *s;
    uint64_t      seed;
    double        value;
};

/* Values for m jobs: rank 0's memo first, then the rest computed, shared
 * out among the ranks and gathered on every rank, then memoised by rank 0.
 * One process does the same with one rank. */
enum tmap_status objective_run_jobs(struct objective *o, struct job *jobs, size_t m, struct tmap_error *err);

/* The search's objective for q candidates (w is q x d, ud the objective):
 * values[j] for each, reused[j] when its subset was judged before. */
enum tmap_status objective_evaluate_batch(const double *w, size_t q, size_t d, void *ud, double *values, bool *reused,
                                          struct tmap_error *err);

/* Equal weights, each indicator alone, random subsets of k rows and fresh
 * draws of the learned weights' subset, and the verdict they give, into
 * out->baselines (out->weights and out->n_duplicates already set). */
enum tmap_status run_baselines(struct objective *o, size_t k, struct tmap_learn_result *out, struct tmap_error *err);

#endif
