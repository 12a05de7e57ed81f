/*
 * test_search.c - unit tests of search/search.c: determinism, the budget
 * (reused evaluations are free, max_evaluations and patience end a
 * memo-only loop),
 * points on the simplex and the L1 sphere, BO on an easy quadratic, the grid
 * lattice, no search (equal weights), the initial design, batches by the
 * kriging believer and the error paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"

#include "asserts.h"

/* ---- objectives --------------------------------------------------------- */

/* -|w - target|^2: a smooth bowl with its top at target. */
struct quadratic {
    const double *target;
    size_t        calls;
};

static enum tmap_status quadratic(const double *w, size_t d, void *ud, double *value,
                                  bool *reused, struct tmap_error *err)
{
    (void)err;
    struct quadratic *q = ud;
    double sum = 0.0;
    for (size_t k = 0; k < d; k++)
        sum += (w[k] - q->target[k]) * (w[k] - q->target[k]);
    *value = -sum;
    *reused = false;
    q->calls++;
    return TMAP_OK;
}

/* A memo keyed by the "subset" w selects, here the index of its largest
 * weight: only d subsets exist, so after d fresh values everything is
 * reused, as with a real proxy whose weights all select one subset. */
struct memo {
    bool   seen[16];
    double values[16];
    size_t calls;
};

static enum tmap_status memoised(const double *w, size_t d, void *ud, double *value, bool *reused,
                                 struct tmap_error *err)
{
    (void)err;
    struct memo *m = ud;
    size_t top = 0;
    for (size_t k = 1; k < d; k++)
        if (w[k] > w[top])
            top = k;
    *reused = m->seen[top];
    if (!m->seen[top]) {
        m->seen[top] = true;
        m->values[top] = (double)top;
    }
    *value = m->values[top];
    m->calls++;
    return TMAP_OK;
}

/* Every other call is served from the memo. */
static enum tmap_status alternating(const double *w, size_t d, void *ud, double *value,
                                    bool *reused, struct tmap_error *err)
{
    (void)err;
    size_t *calls = ud;
    *value = w[0] - w[d - 1];
    *reused = (*calls)++ % 2 == 1;
    return TMAP_OK;
}

static enum tmap_status failing(const double *w, size_t d, void *ud, double *value, bool *reused,
                                struct tmap_error *err)
{
    (void)w;
    (void)d;
    (void)value;
    (void)reused;
    size_t *calls = ud;
    if (++*calls < 3) {
        *value = 0.0;
        *reused = false;
        return TMAP_OK;
    }
    snprintf(err->message, sizeof err->message, "proxy failed on call %zu", *calls);
    err->status = TMAP_ERR_MODEL;
    return TMAP_ERR_MODEL;
}

static enum tmap_status not_a_number(const double *w, size_t d, void *ud, double *value,
                                     bool *reused, struct tmap_error *err)
{
    (void)w;
    (void)d;
    (void)ud;
    (void)err;
    *value = NAN;
    *reused = false;
    return TMAP_OK;
}

/* ---- helpers ------------------------------------------------------------ */

static struct tmap_search_result run(size_t d, const struct tmap_search_params *p,
                                     tmap_objective_fn f, void *ud)
{
    struct tmap_search_result r;
    struct tmap_error err = { 0 };
    if (tmap_search_run(d, p, f, ud, &r, &err) != TMAP_OK)
        fail_msg("search failed: %s", err.message);
    return r;
}

static struct tmap_search_params params(enum tmap_search_kind method, size_t iters,
                                        uint64_t seed)
{
    struct tmap_search_params p = tmap_search_default_params();
    p.method = method;
    p.iters = iters;
    p.seed = seed;
    return p;
}

/* Every point on the simplex (or, signed, the L1 sphere) and no point twice. */
static void assert_on_space(const struct tmap_search_result *r, bool signed_weights)
{
    for (size_t i = 0; i < r->n_trace; i++) {
        const double *w = r->trace[i].w;
        double sum = 0.0;
        for (size_t k = 0; k < r->d; k++) {
            if (!signed_weights && w[k] < 0.0)
                fail_msg("point %zu: w[%zu] = %g < 0", i, k, w[k]);
            sum += fabs(w[k]);
        }
        if (fabs(sum - 1.0) > 1e-12)
            fail_msg("point %zu: sum |w| = %.17g", i, sum);
        for (size_t j = 0; j < i; j++)
            if (memcmp(w, r->trace[j].w, r->d * sizeof *w) == 0)
                fail_msg("points %zu and %zu are the same", j, i);
    }
}

/* ---- tests -------------------------------------------------------------- */

static void test_deterministic(void **state)
{
    (void)state;
    static const enum tmap_search_kind methods[] = { TMAP_SEARCH_BO, TMAP_SEARCH_RANDOM };
    const double target[] = { 0.1, 0.6, 0.1, 0.2 };
    for (size_t m = 0; m < 2; m++) {
        struct tmap_search_params p = params(methods[m], 12, 42);
        p.n_candidates = 300;
        struct quadratic qa = { target, 0 }, qb = { target, 0 };
        struct tmap_search_result a = run(4, &p, quadratic, &qa), b = run(4, &p, quadratic, &qb);
        assert_int_equal(a.n_trace, b.n_trace);
        for (size_t i = 0; i < a.n_trace; i++) {
            assert_memory_equal(a.trace[i].w, b.trace[i].w, 4 * sizeof(double));
            assert_true(a.trace[i].value == b.trace[i].value);
        }
        assert_memory_equal(a.best_w, b.best_w, 4 * sizeof(double));
        /* another seed, another trace (after BO's fixed initial design) */
        p.seed = 43;
        struct quadratic qc = { target, 0 };
        struct tmap_search_result c = run(4, &p, quadratic, &qc);
        assert_true(memcmp(a.trace[a.n_trace - 1].w, c.trace[c.n_trace - 1].w,
                           4 * sizeof(double)) != 0);
        tmap_search_result_free(&a);
        tmap_search_result_free(&b);
        tmap_search_result_free(&c);
    }
}

static void test_budget_counts_fresh_only(void **state)
{
    (void)state;
    static const enum tmap_search_kind methods[] = { TMAP_SEARCH_BO, TMAP_SEARCH_RANDOM };
    for (size_t m = 0; m < 2; m++) {
        size_t calls = 0;
        struct tmap_search_params p = params(methods[m], 8, 1);
        p.n_candidates = 200;
        struct tmap_search_result r = run(3, &p, alternating, &calls);
        assert_int_equal(r.n_spent, 8);
        assert_int_equal(r.n_trace, 15); /* fresh, reused, ..., fresh */
        assert_int_equal(calls, r.n_trace);
        size_t reused = 0;
        for (size_t i = 0; i < r.n_trace; i++)
            reused += r.trace[i].reused;
        assert_int_equal(reused, 7);
        tmap_search_result_free(&r);
    }
}

static void test_max_evaluations_stops_memo_loop(void **state)
{
    (void)state;
    static const enum tmap_search_kind methods[] = { TMAP_SEARCH_BO, TMAP_SEARCH_RANDOM };
    for (size_t m = 0; m < 2; m++) {
        struct memo memo = { 0 };
        struct tmap_search_params p = params(methods[m], 10, 2);
        p.n_candidates = 200;
        p.max_evaluations = 25;
        p.patience = 1000; /* out of the way: this test is about max_evaluations */
        struct tmap_search_result r = run(3, &p, memoised, &memo);
        assert_int_equal(r.n_spent, 3); /* only three subsets exist */
        assert_int_equal(r.n_trace, 25);
        assert_false(r.stalled);
        assert_int_equal(memo.calls, 25);
        assert_on_space(&r, false);
        tmap_search_result_free(&r);
    }
    /* 0 means 10 x iters */
    struct memo memo = { 0 };
    struct tmap_search_params p = params(TMAP_SEARCH_RANDOM, 4, 2);
    p.patience = 1000;
    struct tmap_search_result r = run(3, &p, memoised, &memo);
    assert_int_equal(r.n_trace, 40);
    tmap_search_result_free(&r);
}

/* A stalled search's trace ends with exactly `patience` reused entries. */
static void assert_stalled_after(const struct tmap_search_result *r, size_t patience)
{
    assert_true(r->stalled);
    assert_true(r->n_trace > patience && r->n_trace < 100);
    for (size_t i = r->n_trace - patience; i < r->n_trace; i++)
        assert_true(r->trace[i].reused);
    assert_false(r->trace[r->n_trace - patience - 1].reused);
}

/* Patience (default: iters): a search that keeps landing on subsets it has
 * judged stops after that many in a row, long before 10 x iters, and says
 * so. */
static void test_patience_ends_a_stalled_search(void **state)
{
    (void)state;
    static const enum tmap_search_kind methods[] = { TMAP_SEARCH_BO, TMAP_SEARCH_RANDOM };
    static const size_t patience[] = { 0, 4 }; /* 0: iters, 10 */
    for (size_t m = 0; m < 2; m++)
        for (size_t j = 0; j < 2; j++) {
            struct memo memo = { 0 };
            struct tmap_search_params p = params(methods[m], 10, 2);
            p.n_candidates = 200;
            p.patience = patience[j];
            struct tmap_search_result r = run(3, &p, memoised, &memo);
            assert_int_equal(r.n_spent, 3);
            assert_stalled_after(&r, patience[j] ? patience[j] : 10);
            tmap_search_result_free(&r);
        }
    /* A search that spends its budget is not stalled, reuses or not. */
    size_t calls = 0;
    struct tmap_search_params p = params(TMAP_SEARCH_BO, 8, 1);
    p.n_candidates = 200;
    struct tmap_search_result r = run(3, &p, alternating, &calls);
    assert_int_equal(r.n_spent, 8);
    assert_false(r.stalled);
    tmap_search_result_free(&r);
}

struct seen {
    size_t count;
    bool   in_order;
};

static void on_eval(size_t i, const double *w, size_t d, double value, bool reused, void *ud)
{
    (void)w;
    (void)d;
    (void)value;
    (void)reused;
    struct seen *s = ud;
    s->in_order = s->in_order && i == s->count;
    s->count++;
}

/* Vertices then the uniform vector, reported through on_eval; points stay on
 * the space for every method, signed or not. */
static void test_points_on_space(void **state)
{
    (void)state;
    const double target[] = { 0.3, 0.1, 0.2, 0.15, 0.25 };
    for (int method = 0; method < 3; method++)
        for (int sign = 0; sign < 2; sign++) {
            struct quadratic q = { target, 0 };
            struct seen seen = { 0, true };
            struct tmap_search_params p = params((enum tmap_search_kind)method, 20, 9);
            p.signed_weights = sign;
            p.n_candidates = 300;
            p.on_eval = on_eval;
            p.on_eval_user_data = &seen;
            struct tmap_search_result r = run(5, &p, quadratic, &q);
            assert_on_space(&r, sign);
            assert_int_equal(seen.count, r.n_trace);
            assert_true(seen.in_order);
            if (method == TMAP_SEARCH_BO) {
                for (size_t v = 0; v < 5; v++)
                    assert_true(r.trace[v].w[v] == 1.0);
                for (size_t k = 0; k < 5; k++)
                    assert_true(r.trace[5].w[k] == 0.2);
            }
            if (sign && method != TMAP_SEARCH_GRID) { /* some weight went negative */
                bool negative = false;
                for (size_t i = 0; i < r.n_trace; i++)
                    for (size_t k = 0; k < 5; k++)
                        negative = negative || r.trace[i].w[k] < 0.0;
                assert_true(negative);
            }
            tmap_search_result_free(&r);
        }
}

/* The bowl's top at (0.2, 0.5, 0.3): BO gets within 0.05 of it in 15
 * evaluations (4 of them the initial design). */
static void test_bo_finds_quadratic_optimum(void **state)
{
    (void)state;
    const double target[] = { 0.2, 0.5, 0.3 };
    for (uint64_t seed = 1; seed <= 3; seed++) {
        struct quadratic q = { target, 0 };
        struct tmap_search_params p = params(TMAP_SEARCH_BO, 15, seed);
        struct tmap_search_result r = run(3, &p, quadratic, &q);
        assert_int_equal(r.n_trace, 15);
        assert_int_equal(q.calls, 15);
        if (!(r.best_value > -0.05 * 0.05))
            fail_msg("seed %d: best w (%.3f, %.3f, %.3f), value %g", (int)seed, r.best_w[0],
                     r.best_w[1], r.best_w[2], r.best_value);
        assert_true(isfinite(r.best_posterior_mean));
        tmap_search_result_free(&r);
    }
}

/* The batch objective over quadratic: records each call's size. */
struct batch_log {
    struct quadratic q;
    size_t           sizes[64], n_calls;
};

static enum tmap_status quadratic_batch(const double *w, size_t m, size_t d, void *ud, double *values,
                                        bool *reused, struct tmap_error *err)
{
    struct batch_log *b = ud;
    if (b->n_calls < 64)
        b->sizes[b->n_calls] = m;
    b->n_calls++;
    for (size_t j = 0; j < m; j++)
        quadratic(w + j * d, d, &b->q, &values[j], &reused[j], err);
    return TMAP_OK;
}

/* q = 3 by the kriging believer: rounds of 3 distinct points (the initial
 * design's 4 points as 3 + 1), the budget spent exactly, the same trace
 * twice, and the optimum still found. */
static void test_bo_batch(void **state)
{
    (void)state;
    const double target[] = { 0.2, 0.5, 0.3 };
    struct tmap_search_result r[2];
    for (int k = 0; k < 2; k++) {
        struct batch_log b = { .q = { target, 0 } };
        struct tmap_search_params p = params(TMAP_SEARCH_BO, 16, 3);
        p.batch = 3;
        p.batch_f = quadratic_batch;
        r[k] = run(3, &p, quadratic, &b);
        assert_int_equal(r[k].n_trace, 16);
        assert_int_equal(b.q.calls, 16);
        /* 4 design points: 3 + 1; then 12 in rounds of 3. */
        assert_int_equal(b.n_calls, 6);
        assert_int_equal(b.sizes[0], 3);
        assert_int_equal(b.sizes[1], 1);
        for (size_t c = 2; c < b.n_calls; c++)
            assert_int_equal(b.sizes[c], 3);
        for (size_t i = 0; i < r[k].n_trace; i++)
            for (size_t j = 0; j < i; j++) {
                double dist = 0.0;
                for (size_t e = 0; e < 3; e++)
                    dist += fabs(r[k].trace[i].w[e] - r[k].trace[j].w[e]);
                assert_true(dist > 1e-9);
            }
        if (!(r[k].best_value > -0.05 * 0.05))
            fail_msg("best w (%.3f, %.3f, %.3f), value %g", r[k].best_w[0], r[k].best_w[1], r[k].best_w[2],
                     r[k].best_value);
    }
    for (size_t i = 0; i < r[0].n_trace; i++)
        assert_memory_equal(r[0].trace[i].w, r[1].trace[i].w, 3 * sizeof(double));
    tmap_search_result_free(&r[0]);
    tmap_search_result_free(&r[1]);
}

/* Signed: the top at (0.5, -0.3, 0.2) needs a negative weight. */
static void test_bo_signed(void **state)
{
    (void)state;
    const double target[] = { 0.5, -0.3, 0.2 };
    struct quadratic q = { target, 0 };
    struct tmap_search_params p = params(TMAP_SEARCH_BO, 20, 5);
    p.signed_weights = true;
    struct tmap_search_result r = run(3, &p, quadratic, &q);
    assert_on_space(&r, true);
    if (!(r.best_value > -0.1 * 0.1))
        fail_msg("best w (%.3f, %.3f, %.3f), value %g", r.best_w[0], r.best_w[1], r.best_w[2],
                 r.best_value);
    tmap_search_result_free(&r);
}

static void test_grid(void **state)
{
    (void)state;
    assert_int_equal(tmap_simplex_lattice_size(3, 6), 28);
    assert_int_equal(tmap_simplex_lattice_size(3, 7), 36);
    assert_int_equal(tmap_simplex_lattice_size(10, 2), 55);
    assert_int_equal(tmap_simplex_lattice_size(1, 9), 1);
    assert_int_equal(tmap_simplex_lattice_size(60, 60), SIZE_MAX);
    const double target[] = { 0.5, 0.25, 0.25, 0, 0, 0, 0, 0, 0, 0 };
    /* d = 3, budget 30: h = 6 gives 28 points (h = 7 would give 36) */
    struct quadratic q = { target, 0 };
    struct tmap_search_params p = params(TMAP_SEARCH_GRID, 30, 0);
    struct tmap_search_result r = run(3, &p, quadratic, &q);
    assert_int_equal(r.n_trace, 28);
    assert_on_space(&r, false);
    for (size_t i = 0; i < r.n_trace; i++)
        for (size_t k = 0; k < 3; k++) {
            double steps = r.trace[i].w[k] * 6.0;
            assert_true(fabs(steps - nearbyint(steps)) < 1e-12);
        }
    assert_true(r.trace[0].w[0] == 1.0); /* fixed order: (1,0,0) first, (0,0,1) last */
    assert_true(r.trace[27].w[2] == 1.0);
    assert_true(isnan(r.best_posterior_mean));
    /* the best observed point is the lattice point (3, 2, 1)/6 or one as near */
    assert_true(fabs(r.best_w[0] - 0.5) < 1e-12);
    tmap_search_result_free(&r);
    /* d = 10, budget 30: h = 2 needs 55, so the 10 vertices */
    struct quadratic q10 = { target, 0 };
    r = run(10, &p, quadratic, &q10);
    assert_int_equal(r.n_trace, 10);
    tmap_search_result_free(&r);
    /* budget below the vertex count: the first iters vertices */
    p.iters = 4;
    struct quadratic q4 = { target, 0 };
    r = run(10, &p, quadratic, &q4);
    assert_int_equal(r.n_trace, 4);
    tmap_search_result_free(&r);
}

/* d = 1: the simplex is one point; every method evaluates it once and stops. */
static void test_one_indicator(void **state)
{
    (void)state;
    const double target[] = { 1.0 };
    for (int method = 0; method <= TMAP_SEARCH_EQUAL; method++) {
        struct quadratic q = { target, 0 };
        struct tmap_search_params p = params((enum tmap_search_kind)method, 30, 0);
        struct tmap_search_result r = run(1, &p, quadratic, &q);
        assert_int_equal(r.n_trace, 1);
        assert_true(r.best_w[0] == 1.0);
        tmap_search_result_free(&r);
    }
}

/* No search: one evaluation, at equal weights, whatever the budget and
 * wherever the objective's top is (signed weights too: all positive). */
static void test_equal(void **state)
{
    (void)state;
    const double target[] = { 0.9, 0.1, 0, 0 };
    for (int sign = 0; sign < 2; sign++) {
        struct quadratic q = { target, 0 };
        struct tmap_search_params p = params(TMAP_SEARCH_EQUAL, 30, 7);
        p.signed_weights = sign;
        struct tmap_search_result r = run(4, &p, quadratic, &q);
        assert_int_equal(q.calls, 1);
        assert_int_equal(r.n_trace, 1);
        assert_int_equal(r.n_spent, 1);
        for (size_t k = 0; k < 4; k++)
            assert_true(r.best_w[k] == 0.25);
        assert_true(fabs(r.best_value - -(0.65 * 0.65 + 0.15 * 0.15 + 2 * 0.25 * 0.25)) < 1e-12);
        assert_true(isnan(r.best_posterior_mean));
        tmap_search_result_free(&r);
    }
}

static void test_errors(void **state)
{
    (void)state;
    struct tmap_search_result r;
    struct tmap_error err = { 0 };
    struct tmap_search_params p = params(TMAP_SEARCH_BO, 30, 0);
    size_t calls = 0;
    assert_int_equal(tmap_search_run(0, &p, failing, &calls, &r, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "no indicators");
    assert_int_equal(tmap_search_run(3, &p, NULL, NULL, &r, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "no objective");
    p.iters = 0;
    assert_int_equal(tmap_search_run(3, &p, failing, &calls, &r, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "budget of 0");
    p.iters = 30;
    assert_int_equal(tmap_search_run(3, &p, failing, &calls, &r, &err), TMAP_ERR_MODEL);
    assert_contains(err.message, "proxy failed on call 3");
    assert_null(r.trace); /* nothing half-built is handed back */
    assert_int_equal(tmap_search_run(3, &p, not_a_number, NULL, &r, &err), TMAP_ERR_DATA);
    assert_contains(err.message, "returned nan at evaluation 1");
    tmap_search_result_free(&r);
    tmap_search_result_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_budget_counts_fresh_only),
        cmocka_unit_test(test_max_evaluations_stops_memo_loop),
        cmocka_unit_test(test_patience_ends_a_stalled_search),
        cmocka_unit_test(test_points_on_space),
        cmocka_unit_test(test_bo_finds_quadratic_optimum),
        cmocka_unit_test(test_bo_signed),
        cmocka_unit_test(test_bo_batch),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_one_indicator),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
