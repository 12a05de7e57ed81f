/*
 * search.c - Bayesian optimisation, random and grid search over indicator
 * weights (docs/design.md section 6).
 *
 * BO: evaluate the initial design (each indicator alone, then the uniform
 * vector), then repeatedly fit a GP (gp.c) to every evaluated point and
 * evaluate the candidate of highest expected improvement. Candidates are
 * n_candidates Dirichlet(1) draws, which cover the simplex evenly, plus
 * Gaussian perturbations of the five points of highest posterior mean,
 * projected back onto the space, which refine around the incumbent where
 * uniform draws in d = 10 rarely land. A candidate equal to an evaluated
 * point is never proposed: its value is known, and with a noise-free memo it
 * would be proposed again forever.
 *
 * Budget: only evaluations the objective did not serve from its memo count
 * (two weight vectors that select the same subset share one proxy value),
 * and max_evaluations bounds the total, so an objective that keeps
 * answering from its memo still ends the search.
 *
 * Batches (params.batch = q > 1): each round proposes q points by the
 * kriging believer (Ginsbourger et al., "Kriging is well-suited to
 * parallelize optimization", 2010): after choosing a point, the GP is
 * conditioned on its own posterior mean there (hyperparameters kept), which
 * leaves the mean unchanged and shrinks the variance around that point, so
 * the next EI maximum lies elsewhere. Chosen over the constant liar because
 * it needs no lie to pick (the minimum lie crowds the batch near the
 * incumbent, the maximum spreads it out; the believer follows the model)
 * and costs one fixed-hyperparameter fit per point. The q points depend
 * only on the trace, so the result for a given q is the same however they
 * are evaluated (one process or many MPI ranks).
 *
 * Randomness: one splitmix64 stream seeded by params.seed drives every draw,
 * and each GP fit gets a seed derived from it, so a seed reproduces the
 * trace exactly.
 */
#include "util/clock.h"
#include "search/search.h"

#include <gsl/gsl_math.h> /* M_PI: not in strict C17 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search/gp.h"
#include "util/error.h"
#include "util/random.h"
#include "util/grow.h"

#define N_REFINED      5    /* best points that get local perturbations */
#define N_PERTURBATIONS 50  /* perturbations per refined point */
#define XI_FRACTION    0.01 /* EI margin, as a share of the sd of the values seen */

struct run {
    size_t                    d;
    struct tmap_search_params p;
    size_t                    max_evaluations;
    size_t                    patience;
    size_t                    reused_in_a_row; /* the trace's trailing run of reused evaluations */
    tmap_objective_fn         f;
    void                     *ud;
    struct tmap_search_result res;
    size_t                    cap;
    uint64_t                  rng;
    double                   *scratch; /* 2 d: projections */
    const double             *pending; /* points of the batch being proposed, n_pending x d */
    size_t                    n_pending;
};

/* ---- randomness --------------------------------------------------------- */

/* Box-Muller; the second variate is dropped to keep the stream simple. */
static double normal(uint64_t *state)
{
    double r = sqrt(-2.0 * log(tmap_random_unit(state)));
    return r * cos(2.0 * M_PI * tmap_random_unit(state));
}

/* Dirichlet(1) is uniform on the simplex: normalised exponentials. Signed
 * search flips each sign by a coin, which is uniform on the L1 sphere. */
static void random_point(struct run *r, double *w)
{
    double sum = 0.0;
    for (size_t k = 0; k < r->d; k++) {
        w[k] = -log(tmap_random_unit(&r->rng));
        sum += w[k];
    }
    for (size_t k = 0; k < r->d; k++) {
        w[k] /= sum;
        if (r->p.signed_weights && (tmap_random_next(&r->rng) & 1))
            w[k] = -w[k];
    }
}

/* ---- the space ---------------------------------------------------------- */

static int compare_descending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Euclidean projection of v onto the simplex (Held, Wolfe and Crowder 1974;
 * Duchi et al. 2008): w = max(v - theta, 0) with theta chosen so that w sums
 * to 1. sorted is scratch of d entries. */
static void project_simplex(const double *v, size_t d, double *sorted, double *w)
{
    memcpy(sorted, v, d * sizeof *v);
    qsort(sorted, d, sizeof *sorted, compare_descending);
    double cumsum = 0.0, theta = 0.0;
    for (size_t j = 0; j < d; j++) {
        cumsum += sorted[j];
        double t = (cumsum - 1.0) / (double)(j + 1);
        if (sorted[j] - t > 0.0)
            theta = t;
    }
    for (size_t k = 0; k < d; k++)
        w[k] = v[k] > theta ? v[k] - theta : 0.0;
}

/* Back onto the space: the simplex, or for signed weights the L1 sphere,
 * by projecting |v| onto the simplex and keeping v's signs (the nearest
 * point of the sphere in v's orthant). */
static void project(struct run *r, double *v)
{
    double *a = r->scratch, *sorted = r->scratch + r->d;
    for (size_t k = 0; k < r->d; k++)
        a[k] = r->p.signed_weights ? fabs(v[k]) : v[k];
    project_simplex(a, r->d, sorted, a);
    for (size_t k = 0; k < r->d; k++)
        v[k] = r->p.signed_weights && v[k] < 0.0 ? -a[k] : a[k];
}

/* ---- evaluations -------------------------------------------------------- */

/* Why patience: every reused evaluation still costs a GP fit over the whole
 * trace, and a search that keeps proposing weightings whose subsets it has
 * judged has run out of subsets it can tell apart. On a 10-record pool the
 * search used to make 300 evaluations for 16 subsets, nearly all of its
 * minutes in GP fits over hundreds of points. The grid walks a fixed
 * lattice and does not stall this way. */
static bool stalled(const struct run *r)
{
    return (r->p.method == TMAP_SEARCH_BO || r->p.method == TMAP_SEARCH_RANDOM) &&
           r->reused_in_a_row >= r->patience;
}

static bool budget_left(const struct run *r)
{
    return r->res.n_spent < r->p.iters && r->res.n_trace < r->max_evaluations && !stalled(r);
}

/* Points closer than this in every coordinate are the same point: far below
 * any weight difference that can change a subset, far above rounding. */
#define SAME_POINT 1e-12

static bool same_point(const double *v, const double *w, size_t d)
{
    size_t k = 0;
    while (k < d && fabs(v[k] - w[k]) <= SAME_POINT)
        k++;
    return k == d;
}

/* Evaluated, or already in the batch being proposed. */
static bool is_evaluated(const struct run *r, const double *w)
{
    for (size_t i = 0; i < r->res.n_trace; i++)
        if (same_point(r->res.trace[i].w, w, r->d))
            return true;
    for (size_t i = 0; i < r->n_pending; i++)
        if (same_point(r->pending + i * r->d, w, r->d))
            return true;
    return false;
}

static enum tmap_status append(struct run *r, const double *w, double value, bool reused,
                               double seconds, struct tmap_error *err)
{
    double *copy = malloc(r->d * sizeof *copy);
    if (!copy || !tmap_grow((void **)&r->res.trace, &r->cap, r->res.n_trace + 1,
                            sizeof *r->res.trace)) {
        free(copy);
        return tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    }
    memcpy(copy, w, r->d * sizeof *w);
    r->res.trace[r->res.n_trace++] = (struct tmap_search_entry){ copy, value, reused, seconds };
    r->res.n_spent += !reused;
    r->reused_in_a_row = reused ? r->reused_in_a_row + 1 : 0;
    return TMAP_OK;
}

/* Evaluates w unless it was evaluated before (then nothing happens). */
static enum tmap_status evaluate(struct run *r, const double *w, struct tmap_error *err)
{
    if (is_evaluated(r, w))
        return TMAP_OK;
    double value = NAN, start = tmap_now_seconds();
    bool reused = false;
    enum tmap_status st = r->f(w, r->d, r->ud, &value, &reused, err);
    if (st != TMAP_OK)
        return st;
    double seconds = tmap_now_seconds() - start;
    if (!isfinite(value))
        return tmap_fail(err, TMAP_ERR_DATA,
                         "weight search: the objective returned %g at evaluation %zu", value,
                         r->res.n_trace + 1);
    st = append(r, w, value, reused, seconds, err);
    if (st == TMAP_OK && r->p.on_eval)
        r->p.on_eval(r->res.n_trace - 1, w, r->d, value, reused, r->p.on_eval_user_data);
    return st;
}

/* Room in the budget for a batch of up to q: what is left to spend and to
 * evaluate. */
static size_t batch_room(const struct run *r, size_t q)
{
    size_t spend = r->p.iters - r->res.n_spent, total = r->max_evaluations - r->res.n_trace;
    size_t m = spend < total ? spend : total;
    return m < q ? m : q;
}

/* Evaluates m points (m x d) in one call of the batch objective, then
 * records them in order, as m single evaluations would be. Each gets an
 * equal share of the call's time. */
static enum tmap_status evaluate_batch(struct run *r, const double *w, size_t m, struct tmap_error *err)
{
    double *values = malloc(m * sizeof *values);
    bool *reused = calloc(m, sizeof *reused);
    enum tmap_status st = values && reused ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    double start = tmap_now_seconds();
    if (!st)
        st = r->p.batch_f(w, m, r->d, r->ud, values, reused, err);
    double seconds = (tmap_now_seconds() - start) / (double)m;
    for (size_t j = 0; j < m && !st; j++) {
        if (!isfinite(values[j])) {
            st = tmap_fail(err, TMAP_ERR_DATA, "weight search: the objective returned %g at evaluation %zu",
                           values[j], r->res.n_trace + 1);
            break;
        }
        st = append(r, w + j * r->d, values[j], reused[j], seconds, err);
        if (!st && r->p.on_eval)
            r->p.on_eval(r->res.n_trace - 1, w + j * r->d, r->d, values[j], reused[j], r->p.on_eval_user_data);
    }
    free(values);
    free(reused);
    return st;
}

static bool batched(const struct run *r)
{
    return r->p.batch > 1 && r->p.batch_f;
}

/* The initial design in batches of q (points evaluated before skipped). */
static enum tmap_status initial_design_batched(struct run *r, struct tmap_error *err)
{
    size_t q = r->p.batch, d = r->d;
    double *w = malloc(q * d * sizeof *w);
    if (!w)
        return tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    enum tmap_status st = TMAP_OK;
    size_t v = 0;
    while (!st && v <= d && budget_left(r)) {
        size_t m = 0, room = batch_room(r, q);
        r->pending = w;
        for (; v <= d && m < room; v++) {
            double *p = w + m * d;
            for (size_t k = 0; k < d; k++)
                p[k] = v == d ? 1.0 / (double)d : (double)(k == v);
            r->n_pending = m;
            if (!is_evaluated(r, p))
                m++;
        }
        r->pending = NULL;
        r->n_pending = 0;
        if (m > 0)
            st = evaluate_batch(r, w, m, err);
    }
    free(w);
    return st;
}

/* The d vertices, then the uniform vector (docs/design.md section 6); signed
 * search starts from the same, positive, points. */
static enum tmap_status initial_design(struct run *r, double *w, struct tmap_error *err)
{
    if (batched(r))
        return initial_design_batched(r, err);
    for (size_t v = 0; v <= r->d && budget_left(r); v++) {
        for (size_t k = 0; k < r->d; k++)
            w[k] = v == r->d ? 1.0 / (double)r->d : (double)(k == v);
        enum tmap_status st = evaluate(r, w, err);
        if (st != TMAP_OK)
            return st;
    }
    return TMAP_OK;
}

/* ---- random and grid ---------------------------------------------------- */

/* Draws in a row that may land on evaluated points before the space counts
 * as exhausted: only a space of a few points (d = 1) gets there. */
#define MAX_REPEATS 1000

static enum tmap_status run_random(struct run *r, double *w, struct tmap_error *err)
{
    for (size_t repeats = 0; budget_left(r) && repeats < MAX_REPEATS;) {
        random_point(r, w);
        if (is_evaluated(r, w)) {
            repeats++;
            continue;
        }
        repeats = 0;
        enum tmap_status st = evaluate(r, w, err);
        if (st != TMAP_OK)
            return st;
    }
    return TMAP_OK;
}

size_t tmap_simplex_lattice_size(size_t d, size_t h)
{
    /* C(h + d - 1, d - 1) as a running product C(h + j, j), j = 1..d-1,
     * each step exact: C(h + j, j) = C(h + j - 1, j - 1) * (h + j) / j. */
    size_t c = 1;
    for (size_t j = 1; j < d; j++) {
        if (c > SIZE_MAX / (h + j))
            return SIZE_MAX;
        c = c * (h + j) / j;
    }
    return c;
}

/* The next composition of h into d parts after c, in decreasing
 * lexicographic order from (h, 0, ..., 0) to (0, ..., 0, h); false after
 * the last. */
static bool next_composition(size_t *c, size_t d)
{
    size_t j = d - 1;
    while (j > 0 && c[j - 1] == 0)
        j--;
    if (j == 0)
        return false;
    size_t tail = 1;
    for (size_t k = j; k < d; k++) {
        tail += c[k];
        c[k] = 0;
    }
    c[j - 1]--;
    c[j] = tail;
    return true;
}

static size_t grid_resolution(size_t d, size_t budget)
{
    size_t h = 1;
    while (d > 1 && tmap_simplex_lattice_size(d, h + 1) <= budget)
        h++;
    return h;
}

static enum tmap_status run_grid(struct run *r, double *w, struct tmap_error *err)
{
    size_t h = grid_resolution(r->d, r->p.iters);
    size_t *c = calloc(r->d, sizeof *c);
    if (!c)
        return tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    c[0] = h;
    enum tmap_status st = TMAP_OK;
    do {
        for (size_t k = 0; k < r->d; k++)
            w[k] = (double)c[k] / (double)h;
        st = evaluate(r, w, err);
    } while (st == TMAP_OK && budget_left(r) && next_composition(c, r->d));
    free(c);
    return st;
}

/* No search: the centre of the simplex, once, so that what follows (the
 * baselines, the report) has its proxy value. Where the proxy cannot tell
 * subsets apart, a search only picks whichever weighting its draws favour;
 * equal weights over indicators chosen by hand are then the steadier
 * choice (docs/fidelity.md, `--indicators support,coverage`). */
static enum tmap_status run_equal(struct run *r, double *w, struct tmap_error *err)
{
    for (size_t k = 0; k < r->d; k++)
        w[k] = 1.0 / (double)r->d;
    return evaluate(r, w, err);
}

/* ---- Bayesian optimisation ---------------------------------------------- */

/* The evaluated points and values as the GP's inputs. */
static enum tmap_status fit_gp(struct run *r, struct tmap_gp **gp, struct tmap_error *err)
{
    size_t n = r->res.n_trace, d = r->d;
    double *x = malloc(n * d * sizeof *x), *y = malloc(n * sizeof *y);
    enum tmap_status st = TMAP_OK;
    if (!x || !y) {
        st = tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            memcpy(x + i * d, r->res.trace[i].w, d * sizeof *x);
            y[i] = r->res.trace[i].value;
        }
        uint64_t seed = r->p.seed ^ (0x6770u + n);
        st = tmap_gp_fit(x, y, n, d, tmap_random_next(&seed), gp, err);
    }
    free(x);
    free(y);
    return st;
}

/* What a proposal step needs: the surrogate, the incumbent and its margin. */
struct acquisition {
    const struct tmap_gp *gp;
    double                best, xi;
    double                best_ei;
    bool                  found;
};

/* Scores candidate v and keeps it in w when its EI is the highest so far
 * (the first wins ties, so the proposal is deterministic). */
static void offer(struct run *r, struct acquisition *a, const double *v, double *w)
{
    if (is_evaluated(r, v))
        return;
    double mean, var;
    tmap_gp_predict(a->gp, v, &mean, &var);
    double ei = tmap_expected_improvement(mean, var, a->best, a->xi);
    if (!a->found || ei > a->best_ei) {
        a->found = true;
        a->best_ei = ei;
        memcpy(w, v, r->d * sizeof *v);
    }
}

/* Indices of the (up to) N_REFINED evaluated points of highest posterior
 * mean, best first; means[i] is the posterior mean at trace point i. */
static size_t top_points(const double *means, size_t n, size_t *top)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (count == N_REFINED && !(means[i] > means[top[N_REFINED - 1]]))
            continue;
        size_t at = count < N_REFINED ? count++ : N_REFINED - 1;
        for (; at > 0 && means[i] > means[top[at - 1]]; at--)
            top[at] = top[at - 1]; /* strictly greater: the earlier point wins a tie */
        top[at] = i;
    }
    return count;
}

/* Perturbations of the best points at three scales, projected back. */
static void offer_perturbations(struct run *r, struct acquisition *a, const size_t *top,
                                size_t n_top, double *v, double *w)
{
    static const double scales[] = { 0.01, 0.03, 0.1 };
    for (size_t t = 0; t < n_top; t++)
        for (size_t j = 0; j < N_PERTURBATIONS; j++) {
            const double *centre = r->res.trace[top[t]].w;
            double scale = scales[j % 3];
            for (size_t k = 0; k < r->d; k++)
                v[k] = centre[k] + scale * normal(&r->rng);
            project(r, v);
            offer(r, a, v, w);
        }
}

/* EI's incumbent: the highest posterior mean at an evaluated point, which
 * is steadier than the highest noisy observation. xi is a small margin in
 * the units of the values. */
static void set_incumbent(struct run *r, struct acquisition *a, double *means, size_t *top,
                          size_t *n_top)
{
    size_t n = r->res.n_trace;
    double var, sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        tmap_gp_predict(a->gp, r->res.trace[i].w, &means[i], &var);
        sum += r->res.trace[i].value;
    }
    for (size_t i = 0; i < n; i++) {
        double dev = r->res.trace[i].value - sum / (double)n;
        sq += dev * dev;
    }
    *n_top = top_points(means, n, top);
    a->best = means[top[0]];
    a->xi = XI_FRACTION * sqrt(sq / (double)n);
}

/* One EI maximisation over fresh candidates, with gp as the surrogate. */
static void propose_with(struct run *r, const struct tmap_gp *gp, double *means, double *v, double *w, bool *found)
{
    struct acquisition a = { .gp = gp };
    size_t top[N_REFINED], n_top;
    set_incumbent(r, &a, means, top, &n_top);
    for (size_t c = 0; c < r->p.n_candidates; c++) {
        random_point(r, v);
        offer(r, &a, v, w);
    }
    offer_perturbations(r, &a, top, n_top, v, w);
    *found = a.found;
}

/* The next point to evaluate, in w; false when every candidate was
 * evaluated already. */
static enum tmap_status propose(struct run *r, double *w, bool *found, struct tmap_error *err)
{
    struct tmap_gp *gp = NULL;
    enum tmap_status st = fit_gp(r, &gp, err);
    double *means = malloc(r->res.n_trace * sizeof *means), *v = malloc(r->d * sizeof *v);
    if (st == TMAP_OK && (!means || !v))
        st = tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    if (st == TMAP_OK)
        propose_with(r, gp, means, v, w, found);
    free(means);
    free(v);
    tmap_gp_free(gp);
    return st;
}

/* Up to m points (m x d in w) by the kriging believer; *n_found of them
 * (fewer only when candidates run out). */
static enum tmap_status propose_batch(struct run *r, size_t m, double *w, size_t *n_found, struct tmap_error *err)
{
    size_t n = r->res.n_trace, d = r->d;
    struct tmap_gp *gp = NULL;
    enum tmap_status st = fit_gp(r, &gp, err);
    double ls = 0, sv = 0, nv = 0, mu = 0;
    if (!st)
        tmap_gp_hyperparameters(gp, &ls, &sv, &nv, &mu);
    double *x = malloc((n + m) * d * sizeof *x), *y = malloc((n + m) * sizeof *y);
    double *means = malloc(n * sizeof *means), *v = malloc(d * sizeof *v);
    if (!st && (!x || !y || !means || !v))
        st = tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        memcpy(x + i * d, r->res.trace[i].w, d * sizeof *x);
        y[i] = r->res.trace[i].value;
    }
    *n_found = 0;
    r->pending = w;
    for (size_t j = 0; !st && j < m; j++) {
        bool found = false;
        r->n_pending = j;
        propose_with(r, gp, means, v, w + j * d, &found);
        if (!found)
            break;
        (*n_found)++;
        if (j + 1 == m)
            break;
        /* Believe the model at the new point, then condition on it. */
        double mean, var;
        tmap_gp_predict(gp, w + j * d, &mean, &var);
        memcpy(x + (n + j) * d, w + j * d, d * sizeof *x);
        y[n + j] = mean;
        struct tmap_gp *next = NULL;
        st = tmap_gp_fit_fixed(x, y, n + j + 1, d, ls, sv, nv > 0 ? nv : 1e-10 * sv, mu, &next, err);
        if (!st) {
            tmap_gp_free(gp);
            gp = next;
        }
    }
    r->pending = NULL;
    r->n_pending = 0;
    free(x);
    free(y);
    free(means);
    free(v);
    tmap_gp_free(gp);
    return st;
}

static enum tmap_status run_bo_batched(struct run *r, struct tmap_error *err)
{
    double *w = malloc(r->p.batch * r->d * sizeof *w);
    enum tmap_status st = w ? initial_design(r, w, err) : tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    size_t found = 1;
    while (st == TMAP_OK && found && budget_left(r)) {
        st = propose_batch(r, batch_room(r, r->p.batch), w, &found, err);
        if (st == TMAP_OK && found)
            st = evaluate_batch(r, w, found, err);
    }
    free(w);
    return st;
}

static enum tmap_status run_bo(struct run *r, double *w, struct tmap_error *err)
{
    if (batched(r))
        return run_bo_batched(r, err);
    enum tmap_status st = initial_design(r, w, err);
    bool found = true;
    while (st == TMAP_OK && found && budget_left(r)) {
        st = propose(r, w, &found, err);
        if (st == TMAP_OK && found)
            st = evaluate(r, w, err);
    }
    return st;
}

/* ---- the result --------------------------------------------------------- */

static size_t best_observed(const struct run *r)
{
    size_t best = 0;
    for (size_t i = 1; i < r->res.n_trace; i++)
        if (r->res.trace[i].value > r->res.trace[best].value)
            best = i;
    return best;
}

/* BO's answer: the evaluated point the final GP rates highest (docs/design.md
 * section 6), which discounts a lucky noisy observation. */
static enum tmap_status best_by_posterior(struct run *r, size_t *best, struct tmap_error *err)
{
    struct tmap_gp *gp = NULL;
    enum tmap_status st = fit_gp(r, &gp, err);
    if (st != TMAP_OK)
        return st;
    double top = -INFINITY, mean, var;
    for (size_t i = 0; i < r->res.n_trace; i++) {
        tmap_gp_predict(gp, r->res.trace[i].w, &mean, &var);
        if (mean > top) {
            top = mean;
            *best = i;
        }
    }
    r->res.best_posterior_mean = top;
    tmap_gp_free(gp);
    return TMAP_OK;
}

static enum tmap_status finish(struct run *r, struct tmap_error *err)
{
    if (r->res.n_trace == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "weight search: nothing was evaluated");
    size_t best = 0;
    r->res.best_posterior_mean = NAN;
    if (r->p.method != TMAP_SEARCH_BO) {
        best = best_observed(r);
    } else {
        enum tmap_status st = best_by_posterior(r, &best, err);
        if (st != TMAP_OK)
            return st;
    }
    r->res.best_w = malloc(r->d * sizeof *r->res.best_w);
    if (!r->res.best_w)
        return tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    memcpy(r->res.best_w, r->res.trace[best].w, r->d * sizeof *r->res.best_w);
    r->res.best_value = r->res.trace[best].value;
    return TMAP_OK;
}

/* ---- entry points ------------------------------------------------------- */

struct tmap_search_params tmap_search_default_params(void)
{
    return (struct tmap_search_params){
        .method = TMAP_SEARCH_BO,
        .iters = 30,
        .seed = 0,
        .n_candidates = 2000,
        .max_evaluations = 0,
        .patience = 0,
        .batch = 1,
    };
}

static enum tmap_status check_params(size_t d, const struct tmap_search_params *p,
                                     tmap_objective_fn f, struct tmap_error *err)
{
    if (d == 0 || !f)
        return tmap_fail(err, TMAP_ERR_USAGE, "weight search: %s",
                         d == 0 ? "no indicators to weigh" : "no objective");
    if (p->iters == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "weight search: a budget of 0 evaluations");
    if (p->method != TMAP_SEARCH_BO && p->method != TMAP_SEARCH_RANDOM &&
        p->method != TMAP_SEARCH_GRID && p->method != TMAP_SEARCH_EQUAL)
        return tmap_fail(err, TMAP_ERR_USAGE, "weight search: unknown method %d", (int)p->method);
    return TMAP_OK;
}

enum tmap_status tmap_search_run(size_t d, const struct tmap_search_params *p,
                                 tmap_objective_fn f, void *ud, struct tmap_search_result *out,
                                 struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    struct tmap_search_params defaults = tmap_search_default_params();
    if (!p)
        p = &defaults;
    enum tmap_status st = check_params(d, p, f, err);
    if (st != TMAP_OK)
        return st;
    struct run r = { .d = d, .p = *p, .f = f, .ud = ud, .rng = p->seed };
    r.res.d = d;
    r.max_evaluations = p->max_evaluations ? p->max_evaluations : 10 * p->iters;
    r.patience = p->patience ? p->patience : p->iters;
    r.scratch = malloc(2 * d * sizeof *r.scratch);
    double *w = malloc(d * sizeof *w);
    if (!r.scratch || !w)
        st = tmap_fail(err, TMAP_ERR_NOMEM, "weight search: out of memory");
    else if (p->method == TMAP_SEARCH_BO)
        st = run_bo(&r, w, err);
    else if (p->method == TMAP_SEARCH_RANDOM)
        st = run_random(&r, w, err);
    else if (p->method == TMAP_SEARCH_GRID)
        st = run_grid(&r, w, err);
    else
        st = run_equal(&r, w, err);
    r.res.stalled = stalled(&r);
    if (st == TMAP_OK)
        st = finish(&r, err);
    free(r.scratch);
    free(w);
    if (st != TMAP_OK)
        tmap_search_result_free(&r.res);
    else
        *out = r.res;
    return st;
}

void tmap_search_result_free(struct tmap_search_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_trace; i++)
        free(r->trace[i].w);
    free(r->trace);
    free(r->best_w);
    memset(r, 0, sizeof *r);
}
