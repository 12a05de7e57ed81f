/*
 * bench_search.c - the weight search and the selection it drives, without a
 * model (docs/design.md sections 3 and 6):
 *
 *  (a) BO against random search (and the grid) on synthetic objectives over
 *      the simplex: how often each reaches 95% of the optimum in 30
 *      evaluations, 20 hidden optima per dimension;
 *  (b) BO's own cost per iteration (GP fit + acquisition) with 50 points,
 *      and the GP fit alone at 100-300 points (what a long --iters, or a
 *      trace of reused evaluations, pays each iteration);
 *  (c) ranks + combine + top-30% selection for 1M samples x 10 indicators:
 *      wall time and peak memory.
 *
 * Figures only, no pass/fail on time: the targets (BO beats random, under
 * 50 ms of overhead an iteration, under 1 s for 1M x 10) are printed beside
 * them.
 *
 * usage: bench_search [SEEDS (20)] [N_SAMPLES (1000000)]
 */
#include "util/clock.h"
#include "tmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "search/gp.h"
#include "search/search.h"
#include "select/rank.h"

#define PI 3.14159265358979323846

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

static _Noreturn void die(const char *what, const struct tmap_error *err)
{
    fprintf(stderr, "bench_search: %s: %s\n", what, err->message);
    exit(1);
}

static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state)
{
    return ((double)(next_u64(state) >> 11) + 1.0) * 0x1.0p-53;
}

static double normal(uint64_t *state)
{
    return sqrt(-2.0 * log(uniform(state))) * cos(2.0 * PI * uniform(state));
}

static void dirichlet(uint64_t *state, size_t d, double *w)
{
    double sum = 0.0;
    for (size_t k = 0; k < d; k++) {
        w[k] = -log(uniform(state));
        sum += w[k];
    }
    for (size_t k = 0; k < d; k++)
        w[k] /= sum;
}

/* ---- (a) synthetic objectives ------------------------------------------- */

/*
 * f(w) = -|w - h|^2 + 0.05 cos(6 pi <w - h, a>): a bowl around a hidden
 * point h (a Dirichlet(1) draw) with a ripple along a random unit direction
 * a. Both terms peak at w = h, so f_opt = f(h) = 0.05 exactly. f_min is the
 * lowest f over the d vertices and 100,000 Dirichlet(1) points. The search
 * sees f plus Gaussian noise of sd 1% of (f_opt - f_min); it is judged on the
 * noise-free f at its answer: score = (f(best_w) - f_min) / (f_opt - f_min),
 * a success when score >= 0.95.
 */
struct synthetic {
    size_t   d;
    double   h[16], a[16];
    double   f_opt, f_min, noise_sd;
    uint64_t noise;
    double  *obj_start; /* per evaluation, for (b) */
    size_t   n_calls;
};

static double synthetic_f(const struct synthetic *s, const double *w)
{
    double sq = 0.0, proj = 0.0;
    for (size_t k = 0; k < s->d; k++) {
        sq += (w[k] - s->h[k]) * (w[k] - s->h[k]);
        proj += (w[k] - s->h[k]) * s->a[k];
    }
    return -sq + 0.05 * cos(6.0 * PI * proj);
}

static void synthetic_init(struct synthetic *s, size_t d, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    uint64_t rng = seed * 7919 + d;
    dirichlet(&rng, d, s->h);
    double norm = 0.0;
    for (size_t k = 0; k < d; k++) {
        s->a[k] = normal(&rng);
        norm += s->a[k] * s->a[k];
    }
    for (size_t k = 0; k < d; k++)
        s->a[k] /= sqrt(norm);
    s->f_opt = synthetic_f(s, s->h);
    s->f_min = s->f_opt;
    double w[16];
    for (size_t v = 0; v < d; v++) {
        for (size_t k = 0; k < d; k++)
            w[k] = (double)(k == v);
        s->f_min = fmin(s->f_min, synthetic_f(s, w));
    }
    uint64_t ref = 0x5eed;
    for (int i = 0; i < 100000; i++) {
        dirichlet(&ref, d, w);
        s->f_min = fmin(s->f_min, synthetic_f(s, w));
    }
    s->noise_sd = 0.01 * (s->f_opt - s->f_min);
    s->noise = seed ^ 0xabcdef;
}

static enum tmap_status synthetic_objective(const double *w, size_t d, void *ud, double *value,
                                            bool *reused, struct tmap_error *err)
{
    (void)d;
    (void)err;
    struct synthetic *s = ud;
    if (s->obj_start)
        s->obj_start[s->n_calls] = tmap_now_seconds();
    s->n_calls++;
    *value = synthetic_f(s, w) + s->noise_sd * normal(&s->noise);
    *reused = false;
    return TMAP_OK;
}

static double score(const struct synthetic *s, const double *w)
{
    return (synthetic_f(s, w) - s->f_min) / (s->f_opt - s->f_min);
}

struct tally {
    size_t hits, hits99;
    double sum;
};

static void run_method(size_t d, uint64_t seed, enum tmap_search_kind method, struct tally *t)
{
    struct synthetic s;
    synthetic_init(&s, d, seed);
    struct tmap_search_params p = tmap_search_default_params();
    p.method = method;
    p.iters = 30;
    p.seed = seed;
    struct tmap_search_result r;
    struct tmap_error err = { 0 };
    if (tmap_search_run(d, &p, synthetic_objective, &s, &r, &err) != TMAP_OK)
        die("search", &err);
    double sc = score(&s, r.best_w);
    t->hits += sc >= 0.95;
    t->hits99 += sc >= 0.99;
    t->sum += sc;
    tmap_search_result_free(&r);
}

static void bench_bo_vs_random(size_t n_seeds)
{
    static const char *names[] = { "bo", "random", "grid" };
    printf("(a) reaching 95%% of the optimum in 30 evaluations, %zu hidden optima each:\n"
           "    score = (f(best_w) - f_min) / (f_opt - f_min), noise-free f; f_opt = f(h) "
           "exactly,\n    f_min = min over the vertices and 100k Dirichlet(1) points; "
           "noise sd 1%% of the range\n",
           n_seeds);
    for (size_t d = 6; d <= 10; d += 4) {
        struct tally t[3] = { { 0, 0, 0 } };
        double start = tmap_now_seconds();
        for (uint64_t seed = 1; seed <= n_seeds; seed++)
            for (int m = 0; m < 3; m++)
                run_method(d, seed, (enum tmap_search_kind)m, &t[m]);
        for (int m = 0; m < 3; m++)
            printf("    d = %2zu  %-6s  reached 95%%: %2zu / %zu   (99%%: %2zu)   mean score %.3f\n",
                   d, names[m], t[m].hits, n_seeds, t[m].hits99, t[m].sum / (double)n_seeds);
        printf("    d = %2zu  bo / random hits: %.2fx   (%.1f s for the lot)\n", d,
               (double)t[0].hits / (double)(t[1].hits ? t[1].hits : 1), tmap_now_seconds() - start);
    }
}

/* ---- (b) BO's overhead -------------------------------------------------- */

struct overhead {
    double *after; /* time on_eval saw evaluation i end */
};

static void note_end(size_t i, const double *w, size_t d, double value, bool reused, void *ud)
{
    (void)w;
    (void)d;
    (void)value;
    (void)reused;
    ((struct overhead *)ud)->after[i] = tmap_now_seconds();
}

/* Seconds of one GP fit over n points (x is n x d). */
static double time_fit(const double *x, const double *y, size_t n, size_t d)
{
    struct tmap_gp *gp = NULL;
    struct tmap_error err = { 0 };
    double t0 = tmap_now_seconds();
    if (tmap_gp_fit(x, y, n, d, 1, &gp, &err) != TMAP_OK)
        die("gp fit", &err);
    double seconds = tmap_now_seconds() - t0;
    tmap_gp_free(gp);
    return seconds;
}

/* One GP fit over n Dirichlet(1) points of s's objective (noise-free): the
 * fit's cost grows with the trace, which nothing else caps below
 * 10 x --iters points. */
static double fit_seconds(const struct synthetic *s, size_t n)
{
    double *x = malloc(n * s->d * sizeof *x), *y = malloc(n * sizeof *y);
    if (!x || !y) {
        fprintf(stderr, "bench_search: out of memory\n");
        exit(1);
    }
    uint64_t rng = 0xf17 + n;
    for (size_t i = 0; i < n; i++) {
        dirichlet(&rng, s->d, x + i * s->d);
        y[i] = synthetic_f(s, x + i * s->d);
    }
    double seconds = time_fit(x, y, n, s->d);
    free(x);
    free(y);
    return seconds;
}

/* The time between one evaluation's end and the next one's start is BO's
 * proposal: the GP fit plus the acquisition. Measured in a 56-evaluation run
 * at d = 10; the proposal made with n points evaluated precedes evaluation n
 * (0-based). */
static void bench_overhead(void)
{
    enum { N_EVAL = 56, D = 10 };
    double obj_start[N_EVAL], after[N_EVAL];
    struct synthetic s;
    synthetic_init(&s, D, 1);
    s.obj_start = obj_start;
    struct overhead o = { after };
    struct tmap_search_params p = tmap_search_default_params();
    p.iters = N_EVAL;
    p.seed = 1;
    p.on_eval = note_end;
    p.on_eval_user_data = &o;
    struct tmap_search_result r;
    struct tmap_error err = { 0 };
    if (tmap_search_run(D, &p, synthetic_objective, &s, &r, &err) != TMAP_OK)
        die("search", &err);
    double at50 = obj_start[50] - after[49], sum = 0.0;
    for (size_t n = 45; n < N_EVAL; n++)
        sum += obj_start[n] - after[n - 1];
    /* the GP fit alone on the same 50 points, for the split */
    double x[50 * D], y[50];
    for (size_t i = 0; i < 50; i++) {
        memcpy(x + i * D, r.trace[i].w, sizeof(double) * D);
        y[i] = r.trace[i].value;
    }
    double fit = time_fit(x, y, 50, D);
    printf("(b) BO overhead per iteration at d = 10, 2000 candidates + 250 perturbations:\n"
           "    with 50 points: %.1f ms (GP fit alone %.1f ms, so acquisition %.1f ms); "
           "mean over 45..55 points: %.1f ms   [target < 50 ms]\n",
           at50 * 1e3, fit * 1e3, (at50 - fit) * 1e3, sum / (N_EVAL - 45) * 1e3);
    printf("    GP fit alone with 100 / 200 / 300 points (a long --iters): %.0f / %.0f / %.0f ms\n",
           fit_seconds(&s, 100) * 1e3, fit_seconds(&s, 200) * 1e3, fit_seconds(&s, 300) * 1e3);
    tmap_search_result_free(&r);
}

/* ---- (c) the selection at scale ----------------------------------------- */

/* Ten indicator columns shaped like tmap's: continuous ones, integer counts
 * with heavy ties (steps, length, numeracy), ratings in [1, 6], a few NaN. */
static void make_columns(double *x, size_t n, size_t d)
{
    uint64_t rng = 99;
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < n; i++) {
            double v;
            switch (j % 4) {
            case 0: v = normal(&rng) * 2.0 + 1.0; break;
            case 1: v = floor(-log(uniform(&rng)) * 6.0); break;
            case 2: v = 1.0 + 5.0 * uniform(&rng); break;
            default: v = uniform(&rng) < 1e-3 ? NAN : -log(uniform(&rng)); break;
            }
            x[j * n + i] = v;
        }
}

static void bench_selection(size_t n)
{
    enum { D = 10 };
    double rss_before = peak_rss_mib();
    double *x = malloc(n * D * sizeof *x), *u = malloc(n * D * sizeof *u);
    double *s = malloc(n * sizeof *s);
    size_t *out = malloc(n * sizeof *out);
    uint32_t *tiebreak = malloc(n * sizeof *tiebreak);
    if (!x || !u || !s || !out || !tiebreak) {
        fprintf(stderr, "bench_search: out of memory\n");
        exit(1);
    }
    make_columns(x, n, D);
    uint64_t rng = 7;
    for (size_t i = 0; i < n; i++)
        tiebreak[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = next_u64(&rng) % i;
        uint32_t t = tiebreak[i - 1];
        tiebreak[i - 1] = tiebreak[j];
        tiebreak[j] = t;
    }
    const double w[D] = { 0.2, 0.05, 0.1, 0.15, 0.05, 0.1, 0.1, 0.05, 0.1, 0.1 };
    struct tmap_error err = { 0 };
    double t0 = tmap_now_seconds();
    for (size_t j = 0; j < D; j++)
        if (tmap_percentile_ranks(x + j * n, n, j % 2 == 0, u + j * n, &err) != TMAP_OK)
            die("ranks", &err);
    double t1 = tmap_now_seconds();
    tmap_combine(u, n, D, w, s);
    double t2 = tmap_now_seconds();
    size_t k = tmap_select_top(s, tiebreak, n, 0.3, out);
    double t3 = tmap_now_seconds();
    uint64_t hash = tmap_subset_hash(out, k);
    double t4 = tmap_now_seconds();
    printf("(c) %zu samples x %d indicators, top 30%% (%zu rows, subset hash %016llx):\n"
           "    ranks %.0f ms + combine %.0f ms + select %.0f ms = %.0f ms   [target < 1000 ms]\n"
           "    per search evaluation (combine + select + hash): %.0f ms\n"
           "    peak RSS %.0f MiB (%.0f MiB before; inputs %.0f MiB, ranks %.0f MiB)\n",
           n, D, k, (unsigned long long)hash, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3,
           (t3 - t0) * 1e3, (t4 - t1) * 1e3, peak_rss_mib(), rss_before,
           (double)(n * D * sizeof *x) / 1048576.0, (double)(n * D * sizeof *u) / 1048576.0);
    free(x);
    free(u);
    free(s);
    free(out);
    free(tiebreak);
}

int main(int argc, char **argv)
{
    size_t n_seeds = argc > 1 ? strtoul(argv[1], NULL, 10) : 20;
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    printf("bench_search\n");
    bench_selection(n); /* first, so that the peak RSS is its own */
    bench_overhead();
    bench_bo_vs_random(n_seeds);
    return 0;
}
