/*
 * learn.c - `tmap learn`: the Bayesian search for the indicator weights
 * whose subset gives the best proxy value (docs/design.md section 6; arXiv
 * 2605.09665's contribution). The subsets come from select/select.c's
 * chooser, the baselines each result is measured against from baselines.c.
 *
 * The objective the search sees, for a candidate w: combine the percentile
 * ranks with w, take the top ratio of the pool (O(N) quickselect), hash the
 * selected rows, and ask the proxy with demonstrations drawn from that
 * subset. A w whose subset was already judged reuses that value and spends
 * no budget; so does a value the proxy's own memo serves.
 *
 * Distributed (params.distributed under mpirun; docs/distributed.md):
 * every rank runs the same search; the proxy evaluations of a batch (the
 * search's q candidates, the random baselines, the redraws) are shared out,
 * the t-th to compute going to rank t % size, and every rank gets every
 * value, so every rank takes the same next step. Rank 0 alone reads and
 * writes the proxy memo in the store. A value depends only on its subset,
 * draws and seed, never on the rank that computed it: the result for a
 * given q is the same at any number of ranks.
 */
#include "learn/objective.h"

#include "dist/dist.h"
#include "indicators/scores.h"
#include "proxy/proxy.h"
#include "search/search.h"
#include "select/rank.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

struct tmap_learn_params tmap_learn_default_params(void)
{
    struct tmap_learn_params p = {
        .select = tmap_select_default_params(), .search = TMAP_SEARCH_BO, .iters = 30, .seed = 42,
        .proxy = tmap_proxy_default_params(), .n_random = 5, .n_redraws = 4, .batch = 1,
    };
    /* Random draws look at the whole subset; the top k would judge only its
     * first eight samples, which many weightings share. */
    p.proxy.policy = TMAP_DEMOS_RANDOM;
    p.proxy.draws = 2;
    return p;
}

/* ------------------------------------------------------------------------ */
/* The search                                                               */
/* ------------------------------------------------------------------------ */

/* Values for m jobs: rank 0's memo first, then the rest computed, shared
 * out among the ranks and gathered on every rank, then memoised by rank 0.
 * One process does the same with one rank. */
enum tmap_status objective_run_jobs(struct objective *o, struct job *jobs, size_t m, struct tmap_error *err)
{
    uint64_t seed = tmap_proxy_seed(o->proxy);
    uint8_t *known = calloc(m ? m : 1, 1);
    size_t *todo = malloc((m ? m : 1) * sizeof *todo), *counts = calloc((size_t)o->size, sizeof *counts);
    double *mine = malloc((m ? m : 1) * sizeof *mine), *all = malloc((m ? m : 1) * sizeof *all);
    enum tmap_status st = known && todo && counts && mine && all ? TMAP_OK
                                                                 : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    st = o->size > 1 ? dist_worst_status(st, err) : st;
    for (size_t j = 0; !st && o->rank == 0 && j < m; j++) {
        tmap_proxy_set_seed(o->proxy, jobs[j].seed);
        known[j] = proxy_memo_get(o->proxy, o->pool, jobs[j].rows, jobs[j].k, jobs[j].s, &jobs[j].value);
    }
    for (size_t j = 0; !st && o->size > 1 && j < m; j++) {
        dist_bcast(&known[j], 1, 0);
        if (known[j])
            dist_bcast(&jobs[j].value, sizeof jobs[j].value, 0);
    }
    size_t n_todo = 0, n_mine = 0;
    for (size_t j = 0; !st && j < m; j++)
        if (!known[j])
            todo[n_todo++] = j;
    /* Fewer evaluations than ranks: each is computed by all the ranks
     * together, slice by slice, when the proxy has slices to share. */
    bool together = o->size > 1 && n_todo < (size_t)o->size && proxy_splits(o->proxy);
    proxy_set_collective(o->proxy, together);
    for (size_t t = 0; !st && together && t < n_todo; t++) {
        struct job *jb = &jobs[todo[t]];
        tmap_proxy_set_seed(o->proxy, jb->seed);
        st = proxy_compute(o->proxy, o->pool, jb->rows, jb->k, jb->s, &jb->value, NULL, err);
    }
    proxy_set_collective(o->proxy, false);
    for (size_t t = 0; !st && !together && t < n_todo; t++) {
        counts[t % (size_t)o->size]++;
        if ((int)(t % (size_t)o->size) != o->rank)
            continue;
        struct job *jb = &jobs[todo[t]];
        tmap_proxy_set_seed(o->proxy, jb->seed);
        st = proxy_compute(o->proxy, o->pool, jb->rows, jb->k, jb->s, &mine[n_mine++], NULL, err);
    }
    tmap_proxy_set_seed(o->proxy, seed);
    if (o->size > 1 && n_todo > 0 && !together) {
        st = dist_worst_status(st, err);
        if (!st && dist_allgather_doubles(mine, all, counts) != 0)
            st = tmap_fail(err, TMAP_ERR_IO, "could not gather %zu proxy values from the ranks", n_todo);
    } else {
        memcpy(all, mine, n_mine * sizeof *all);
    }
    /* all holds rank 0's values, then rank 1's, ...: rank r's i-th is the
     * (r + i size)-th job to compute. */
    for (size_t r = 0, at = 0; !st && !together && r < (size_t)o->size; r++)
        for (size_t i = 0; i < counts[r]; i++)
            jobs[todo[r + i * (size_t)o->size]].value = all[at++];
    for (size_t t = 0; !st && o->rank == 0 && t < n_todo; t++) {
        struct job *jb = &jobs[todo[t]];
        tmap_proxy_set_seed(o->proxy, jb->seed);
        st = proxy_memo_put(o->proxy, o->pool, jb->rows, jb->k, jb->s, jb->value, err);
    }
    tmap_proxy_set_seed(o->proxy, seed);
    if (o->size > 1)
        st = dist_share_status(st, err, 0);
    free(known);
    free(todo);
    free(counts);
    free(mine);
    free(all);
    return st;
}

static bool remember_hash(struct objective *o, uint64_t h)
{
    if (o->n_evals == o->cap_evals) {
        size_t cap = o->cap_evals ? 2 * o->cap_evals : 64;
        uint64_t *moved = realloc(o->hashes, cap * sizeof *moved);
        if (!moved)
            return false;
        o->hashes = moved;
        o->cap_evals = cap;
    }
    o->hashes[o->n_evals++] = h;
    return true;
}

static struct memo_entry *find_memo(struct objective *o, uint64_t h)
{
    for (size_t i = 0; i < o->n_memo; i++)
        if (o->memo[i].hash == h)
            return &o->memo[i];
    return NULL;
}

/* The search's q candidates (w is q x d): each selects its subset; a
 * subset judged before (in this search or earlier in the batch) reuses its
 * value and spends no budget; the rest go to objective_run_jobs. A value
 * from the store's memo (an earlier or killed run) still counts against the budget:
 * a rerun must search exactly as far as the first run did, or a warm store
 * would change the weights it learns. */
enum tmap_status objective_evaluate_batch(const double *w, size_t q, size_t d, void *ud, double *values, bool *reused,
                                          struct tmap_error *err)
{
    struct objective *o = ud;
    size_t n = o->n ? o->n : 1;
    double *s = malloc(q * n * sizeof *s);
    size_t *rows = malloc(q * n * sizeof *rows), *same = malloc(q * sizeof *same);
    uint64_t *h = malloc(q * sizeof *h);
    struct job *jobs = calloc(q, sizeof *jobs);
    size_t m = 0;
    enum tmap_status st = s && rows && same && h && jobs ? TMAP_OK
                                                         : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory in the weight search");
    for (size_t j = 0; !st && j < q; j++) {
        double *sj = s + j * n;
        size_t *rj = rows + j * n;
        tmap_combine(o->u, o->n, d, w + j * d, sj);
        size_t k = choose_rows(&o->ch, sj, rj);
        h[j] = tmap_subset_hash(rj, k);
        if (!remember_hash(o, h[j]))
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory in the weight search");
        struct memo_entry *e = find_memo(o, h[j]);
        same[j] = SIZE_MAX;
        for (size_t i = 0; i < j; i++)
            if (h[i] == h[j] && same[i] == SIZE_MAX)
                same[j] = i;
        reused[j] = e || same[j] != SIZE_MAX;
        if (e)
            values[j] = e->value;
        else if (same[j] == SIZE_MAX)
            jobs[m++] = (struct job){ .rows = rj, .k = k, .s = sj, .seed = tmap_proxy_seed(o->proxy) };
    }
    if (!st)
        st = objective_run_jobs(o, jobs, m, err);
    for (size_t j = 0, t = 0; !st && j < q; j++) {
        if (reused[j] && same[j] == SIZE_MAX)
            continue;
        if (same[j] != SIZE_MAX) {
            values[j] = values[same[j]];
            continue;
        }
        values[j] = jobs[t++].value;
        struct memo_entry *moved = realloc(o->memo, (o->n_memo + 1) * sizeof *moved);
        if (!moved) {
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory in the weight search");
            break;
        }
        o->memo = moved;
        o->memo[o->n_memo++] = (struct memo_entry){ h[j], values[j] };
    }
    free(s);
    free(rows);
    free(same);
    free(h);
    free(jobs);
    return st;
}

static enum tmap_status evaluate(const double *w, size_t d, void *ud, double *value, bool *reused,
                                 struct tmap_error *err)
{
    return objective_evaluate_batch(w, 1, d, ud, value, reused, err);
}

void tmap_learn_result_free(struct tmap_learn_result *r)
{
    if (!r)
        return;
    free(r->baselines.single);
    free(r->baselines.random);
    free(r->baselines.redraws);
    tmap_selection_free(&r->selection);
    tmap_weights_free(&r->weights);
    for (size_t i = 0; r->trace && i < r->n_trace; i++)
        free(r->trace[i].w);
    free(r->trace);
    memset(r, 0, sizeof *r);
}

/* Moves the search's result into the public one. */
static enum tmap_status take_result(struct tmap_search_result *sr, const struct objective *o,
                                    struct tmap_learn_result *out, struct tmap_error *err)
{
    out->trace = calloc(sr->n_trace ? sr->n_trace : 1, sizeof *out->trace);
    if (!out->trace)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the search trace");
    for (size_t i = 0; i < sr->n_trace; i++) {
        out->trace[i] = (struct tmap_trace_entry){ sr->trace[i].w, sr->trace[i].value, sr->trace[i].reused,
                                                   sr->trace[i].seconds, i < o->n_evals ? o->hashes[i] : 0 };
        sr->trace[i].w = NULL;
    }
    out->n_trace = sr->n_trace;
    out->n_spent = sr->n_spent;
    out->stalled = sr->stalled;
    out->best_posterior_mean = sr->best_posterior_mean;
    memcpy(out->weights.weights, sr->best_w, sr->d * sizeof *sr->best_w);
    out->weights.proxy_value = sr->best_value;
    return TMAP_OK;
}

/* The learned weights' selection, as tmap_select makes it, so that tmap run
 * need not make it again (its ranks are added when the baselines are done
 * with them): the first k of o->rows, o->s the combined scores. */
static enum tmap_status keep_selection(const struct objective *o, size_t k, size_t n_dup, struct tmap_selection *sel,
                                       struct tmap_error *err)
{
    enum tmap_status st = selection_alloc(sel, o->n, 0, err);
    if (st)
        return st;
    sel->n = k;
    sel->n_duplicates = n_dup;
    memcpy(sel->rows, o->rows, k * sizeof *sel->rows);
    memcpy(sel->combined, o->s, o->n * sizeof *sel->combined);
    mark_selected(sel);
    return TMAP_OK;
}

enum tmap_status tmap_learn(const struct tmap_pool *pool, const struct tmap_scores *scores,
                            struct tmap_proxy *proxy, const struct tmap_learn_params *p,
                            struct tmap_learn_result *out, struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    if (scores->n_rows != tmap_pool_size(pool))
        return tmap_fail(err, TMAP_ERR_DATA, "%zu score rows for a pool of %zu records", scores->n_rows,
                         tmap_pool_size(pool));
    struct objective o = { .pool = pool, .proxy = proxy, .p = p, .rank = p->distributed ? dist_rank() : 0,
                           .size = p->distributed ? dist_size() : 1 };
    size_t n_dup;
    enum tmap_status st = chooser_init(&o.ch, pool, &p->select, &n_dup, err);
    if (st)
        return st;
    st = tmap_weights_uniform(scores, &out->weights, err);
    if (st) {
        chooser_free(&o.ch);
        return st;
    }
    out->n_duplicates = n_dup;
    size_t n = scores->n_rows, d = out->weights.d;
    o.n = n;
    o.d = d;
    double *u = malloc((n ? n : 1) * d * sizeof *u);
    o.u = u;
    o.s = malloc((n ? n : 1) * sizeof *o.s);
    o.rows = malloc((n ? n : 1) * sizeof *o.rows);
    if (!u || !o.s || !o.rows)
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the weight search over %zu samples", n);
    if (!st)
        st = rank_columns(scores, &out->weights, u, err);

    struct tmap_search_params sp = tmap_search_default_params();
    sp.method = p->search;
    sp.iters = p->iters;
    sp.signed_weights = p->signed_weights;
    sp.seed = p->seed;
    sp.on_eval = p->on_eval;
    sp.on_eval_user_data = p->on_eval_user_data;
    sp.batch = p->batch ? p->batch : 1;
    sp.batch_f = objective_evaluate_batch;
    struct tmap_search_result sr = { 0 };
    if (!st)
        st = tmap_search_run(d, &sp, evaluate, &o, &sr, err);
    if (!st)
        st = take_result(&sr, &o, out, err);
    if (!st) {
        /* Random subsets of the learned selection's size (smaller than the
         * ratio only when distinct records run out). */
        tmap_combine(u, n, d, out->weights.weights, o.s);
        size_t k = choose_rows(&o.ch, o.s, o.rows);
        st = keep_selection(&o, k, n_dup, &out->selection, err);
        if (!st)
            st = run_baselines(&o, k, out, err);
    }
    if (!st) {
        out->selection.ranks = u; /* the baselines are done with it */
        u = NULL;
    }
    tmap_search_result_free(&sr);
    free(u);
    chooser_free(&o.ch);
    free(o.s);
    free(o.rows);
    free(o.memo);
    free(o.hashes);
    if (st)
        tmap_learn_result_free(out);
    return st;
}
