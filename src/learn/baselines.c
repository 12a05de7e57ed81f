/*
 * baselines.c - what every learned weighting is measured against (docs/
 * design.md section 6): equal weights and each indicator alone (the
 * search's initial design, so mostly served by its memo), random subsets of
 * the learned selection's size, and the learned subset under fresh
 * demonstration draws (the proxy's own noise). The verdict is how far the
 * learned weights stand above random subsets in units of that noise; the
 * words for it, and what may help a run that did not beat them, are here
 * too, so that the summary, tmap learn and report.html say the same.
 */
#include "learn/objective.h"

#include "select/rank.h"
#include "util/error.h"
#include "util/random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mean_sd(const double *v, size_t n, double *mean, double *sd)
{
    double m = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        m += v[i];
    m = n ? m / (double)n : NAN;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
}

/* Equal weights and each indicator alone: the search's initial design, so
 * the memo serves most of them at no cost. The rest (a search shorter than
 * its design leaves some) go out in one batch, which the ranks share. */
static enum tmap_status design_baselines(struct objective *o, struct tmap_baselines *b, struct tmap_error *err)
{
    size_t d = o->d;
    double *w = calloc((d + 1) * d, sizeof *w), *values = malloc((d + 1) * sizeof *values);
    bool *reused = malloc((d + 1) * sizeof *reused);
    if (!w || !values || !reused) {
        free(w);
        free(values);
        free(reused);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the baselines");
    }
    for (size_t j = 0; j < d; j++) {
        w[j] = 1.0 / (double)d;     /* row 0: equal weights */
        w[(j + 1) * d + j] = 1.0;   /* row j + 1: indicator j alone */
    }
    enum tmap_status st = objective_evaluate_batch(w, d + 1, d, o, values, reused, err);
    if (!st) {
        b->equal = values[0];
        memcpy(b->single, values + 1, d * sizeof *values);
    }
    free(w);
    free(values);
    free(reused);
    return st;
}

/* Random subsets of the size the learned weights select, drawn from the
 * whole pool as a user without tmap would (duplicates included), each
 * listed in row order as selections are. */
static int compare_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static enum tmap_status random_baselines(struct objective *o, size_t k, struct tmap_baselines *b,
                                         struct tmap_error *err)
{
    size_t *all = malloc((o->n ? o->n : 1) * sizeof *all);
    if (!all)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the baselines");
    for (size_t i = 0; i < o->n; i++)
        all[i] = i;
    /* The top policy ranks a subset's demonstrations by score: equal weights
     * give a neutral order. */
    double *w = malloc(o->d * sizeof *w);
    enum tmap_status st = w ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the baselines");
    for (size_t j = 0; !st && j < o->d; j++)
        w[j] = 1.0 / (double)o->d;
    if (!st)
        tmap_combine(o->u, o->n, o->d, w, o->s);
    /* Every subset first, then one objective_run_jobs: the ranks share them. */
    size_t n = o->n ? o->n : 1;
    size_t *rows = malloc((b->n_random ? b->n_random : 1) * n * sizeof *rows);
    struct job *jobs = calloc(b->n_random ? b->n_random : 1, sizeof *jobs);
    if (!st && (!rows || !jobs))
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the baselines");
    /* Distinct subsets: one drawn twice would be judged twice under the
     * same demonstration seed and shrink the spread the verdict divides
     * by. On a pool big enough that never happens; on one too small for
     * n_random distinct subsets (3 records, 1 kept), fewer are kept. */
    size_t kept = 0;
    for (size_t r = 0; r < b->n_random && !st; r++) {
        size_t *mine = rows + kept * n, got = 0;
        bool fresh = false;
        for (uint64_t t = 0; t < 64 && !fresh; t++) {
            /* "random" + r, apart from the search's streams; t > 0 only after a repeat */
            uint64_t seed = o->p->seed ^ (0x72616e646f6dULL + r + (t << 32));
            got = tmap_random_sample(all, o->n, k, seed, mine);
            qsort(mine, got, sizeof *mine, compare_size);
            fresh = true;
            for (size_t q = 0; q < kept && fresh; q++)
                fresh = jobs[q].k != got || memcmp(jobs[q].rows, mine, got * sizeof *mine) != 0;
        }
        if (fresh)
            jobs[kept++] = (struct job){ .rows = mine, .k = got, .s = o->s, .seed = tmap_proxy_seed(o->proxy) };
    }
    b->n_random = kept;
    if (!st)
        st = objective_run_jobs(o, jobs, b->n_random, err);
    for (size_t r = 0; r < b->n_random && !st; r++)
        b->random[r] = jobs[r].value;
    free(rows);
    free(jobs);
    free(w);
    free(all);
    return st;
}

/* The learned subset under fresh demonstration draws: how much the proxy
 * moves for reasons that are not the data. */
static enum tmap_status redraw_baselines(struct objective *o, const double *best_w, struct tmap_baselines *b,
                                         struct tmap_error *err)
{
    tmap_combine(o->u, o->n, o->d, best_w, o->s);
    size_t k = choose_rows(&o->ch, o->s, o->rows);
    uint64_t seed = tmap_proxy_seed(o->proxy);
    struct job *jobs = calloc(b->n_redraws ? b->n_redraws : 1, sizeof *jobs);
    if (!jobs)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the baselines");
    for (size_t i = 0; i < b->n_redraws; i++) /* seeds past the draws one evaluation makes */
        jobs[i] = (struct job){ .rows = o->rows, .k = k, .s = o->s, .seed = seed + 1000 * (i + 1) };
    enum tmap_status st = objective_run_jobs(o, jobs, b->n_redraws, err);
    for (size_t i = 0; i < b->n_redraws && !st; i++)
        b->redraws[i] = jobs[i].value;
    free(jobs);
    return st;
}

static void judge(struct tmap_baselines *b)
{
    mean_sd(b->random, b->n_random, &b->random_mean, &b->random_sd);
    mean_sd(b->redraws, b->n_redraws, &b->learned_mean, &b->learned_sd);
    b->z = NAN;
    b->verdict = TMAP_VERDICT_UNKNOWN;
    if (b->n_random < 2 || b->n_redraws < 1)
        return;
    double noise = sqrt(b->learned_sd * b->learned_sd + b->random_sd * b->random_sd);
    double diff = b->learned_mean - b->random_mean;
    b->z = noise > 0.0 ? diff / noise : (diff > 0.0 ? INFINITY : diff < 0.0 ? -INFINITY : 0.0);
    b->verdict = b->z >= 2.0 ? TMAP_VERDICT_BEATS : b->z <= -2.0 ? TMAP_VERDICT_LOSES : TMAP_VERDICT_WITHIN;
}

enum tmap_status run_baselines(struct objective *o, size_t k, struct tmap_learn_result *out, struct tmap_error *err)
{
    struct tmap_baselines *b = &out->baselines;
    b->d = o->d;
    b->n_random = o->p->n_random;
    b->n_redraws = o->p->n_redraws;
    b->single = calloc(o->d ? o->d : 1, sizeof *b->single);
    b->random = calloc(b->n_random ? b->n_random : 1, sizeof *b->random);
    b->redraws = calloc(b->n_redraws ? b->n_redraws : 1, sizeof *b->redraws);
    if (!b->single || !b->random || !b->redraws)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the baselines");
    /* A selection that keeps every distinct record is the same whatever
     * the weights: its verdict can only measure what dropping duplicates
     * is worth, so the summary must not read it as the search's. */
    b->n_distinct = o->n - out->n_duplicates;
    b->no_choice = k >= b->n_distinct;
    enum tmap_status st = design_baselines(o, b, err);
    if (!st && k > 0)
        st = random_baselines(o, k, b, err);
    if (!st && k > 0)
        st = redraw_baselines(o, out->weights.weights, b, err);
    if (!st)
        judge(b);
    return st;
}

void tmap_baselines_describe(const struct tmap_baselines *b, char *buf, size_t size)
{
    if (b->no_choice) {
        /* Said first, as it explains the rest: a pool of one record ten
         * times over, or --ratio 1 with nothing to drop. Random subsets may
         * still differ from it by holding duplicates. */
        char tail[160] = " (no other subset of its size to compare with)";
        if (b->verdict != TMAP_VERDICT_UNKNOWN)
            snprintf(tail, sizeof tail, "; learned %.4f vs random %.4f, which may hold duplicates", b->learned_mean,
                     b->random_mean);
        snprintf(buf, size, "the selection keeps every distinct record of the pool (%zu), so all weightings select "
                 "the same subset and the weights are arbitrary%s", b->n_distinct, tail);
        return;
    }
    if (b->verdict == TMAP_VERDICT_UNKNOWN) {
        snprintf(buf, size, "not measured: needs at least 2 random subsets and 1 redraw");
        return;
    }
    static const char *const words[] = {
        [TMAP_VERDICT_BEATS] = "beats random subsets by more than the noise",
        [TMAP_VERDICT_WITHIN] = "does NOT beat random subsets by more than the noise",
        [TMAP_VERDICT_LOSES] = "does WORSE than random subsets, by more than the noise",
    };
    double z = b->z;
    /* No spread and no difference: every subset got the same value (no
     * demonstration fits, or the model ignores them), so the search had
     * nothing to follow and its weights are arbitrary. Say that, rather
     * than "0.0 sd". */
    if (b->learned_sd == 0.0 && b->random_sd == 0.0 && b->learned_mean == b->random_mean) {
        snprintf(buf, size, "learned %.4f = random %.4f, with no spread: the proxy gives every subset the same value, "
                 "so the learned weights are arbitrary: %s", b->learned_mean, b->random_mean, words[b->verdict]);
        return;
    }
    snprintf(buf, size, "learned %.4f +/- %.4f vs random %.4f +/- %.4f: %.1f sd %s: %s", b->learned_mean,
             b->learned_sd, b->random_mean, b->random_sd, fabs(z), z >= 0 ? "better" : "worse", words[b->verdict]);
}

/* Whether the run weighed exactly the two cleaning indicators. */
static bool weighs_cleaning_pair(const struct tmap_weights *w)
{
    bool support = false, coverage = false;
    for (size_t j = 0; j < w->d; j++) {
        if (strcmp(w->names[j], tmap_indicator_name(TMAP_IND_SUPPORT)) == 0)
            support = true;
        else if (strcmp(w->names[j], tmap_indicator_name(TMAP_IND_COVERAGE)) == 0)
            coverage = true;
        else
            return false;
    }
    return support && coverage;
}

const char *tmap_baselines_advice(const struct tmap_baselines *b, const struct tmap_learn_params *learn,
                                  const struct tmap_weights *w)
{
    if (b->no_choice)
        return "a pool with more distinct records than the selection keeps, or a smaller --ratio: only then do "
               "the weights choose anything";
    /* Equal weights were not searched for: the proxy chose nothing. */
    if ((b->verdict != TMAP_VERDICT_WITHIN && b->verdict != TMAP_VERDICT_LOSES) || learn->search == TMAP_SEARCH_EQUAL)
        return NULL;
    /* What bench/fidelity measured to beat random subsets on a model that
     * learns little in context (pooled over four corruption seeds): the
     * two cleaning indicators, searched by the fine-tune proxy or simply
     * given equal weights. A hint never names what the run already does;
     * a run that does both is told what the closed loop found of it, as
     * its own proxy cannot see a gain that small. */
#define WHERE_MEASURED "(docs/fidelity.md, \"When a run does not beat random\")"
    bool finetune = learn->proxy.kind == TMAP_PROXY_FINETUNE, cleaning = weighs_cleaning_pair(w);
    if (finetune && cleaning)
        return "--search equal gives about the same without a search; on bench/fidelity's small model this "
               "configuration fine-tuned better than random subsets on four corruption seeds, by less than "
               "this proxy's noise, so its verdict could not show it " WHERE_MEASURED;
    if (finetune)
        return "--indicators support,coverage for a pool with wrong or misaligned answers, or those two "
               "with --search equal " WHERE_MEASURED;
    if (cleaning)
        return "--proxy finetune for a model that learns little in context, or --search equal " WHERE_MEASURED;
    return "--proxy finetune for a model that learns little in context; --indicators support,coverage "
           "for a pool with wrong or misaligned answers, with --proxy finetune or --search equal " WHERE_MEASURED;
#undef WHERE_MEASURED
}
