/*
 * learn.c - `tmap learn` and `tmap select`: weights over the indicator
 * columns, the subset they select, and the Bayesian search for the weights
 * whose subset gives the best in-context-learning proxy (docs/design.md
 * sections 3 and 6; arXiv 2605.09665's contribution).
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
#include "dist/dist.h"
#include "indicators/scores.h"
#include "proxy/proxy.h"
#include "search/search.h"
#include "select/rank.h"
#include "util/error.h"
#include "util/random.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

struct tmap_select_params tmap_select_default_params(void)
{
    struct tmap_select_params p = {
        .ratio = 0.3, .mode = TMAP_SELECT_TOP, .drop = 0.3, .seed = 42, .strata = 10, .keep_duplicates = false,
    };
    return p;
}

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
/* Weights                                                                  */
/* ------------------------------------------------------------------------ */

void tmap_weights_free(struct tmap_weights *w)
{
    if (!w)
        return;
    for (size_t j = 0; w->names && j < w->d; j++)
        free(w->names[j]);
    free(w->names);
    free(w->weights);
    free(w->higher_is_better);
    memset(w, 0, sizeof *w);
}

static bool weights_alloc(struct tmap_weights *w, size_t d)
{
    memset(w, 0, sizeof *w);
    w->d = d;
    w->names = calloc(d ? d : 1, sizeof *w->names);
    w->weights = calloc(d ? d : 1, sizeof *w->weights);
    w->higher_is_better = calloc(d ? d : 1, sizeof *w->higher_is_better);
    w->proxy_value = NAN;
    return w->names && w->weights && w->higher_is_better;
}

static bool column_has_values(const struct tmap_scores *s, size_t col)
{
    for (size_t i = 0; i < s->n_rows; i++)
        if (!isnan(s->values[col * s->n_rows + i]))
            return true;
    return false;
}

/* Indicators keep their default direction; extra columns count as
 * "higher is better" (a reward model's score, say). */
static bool column_direction(const char *name)
{
    for (int j = 0; j < TMAP_IND_COUNT; j++)
        if (strcmp(name, tmap_indicator_name((enum tmap_indicator)j)) == 0)
            return tmap_indicator_higher_is_better((enum tmap_indicator)j);
    return true;
}

enum tmap_status tmap_weights_uniform(const struct tmap_scores *s, struct tmap_weights *out,
                                      struct tmap_error *err)
{
    size_t d = 0;
    for (size_t j = 0; j < s->n_cols; j++)
        d += column_has_values(s, j);
    if (d == 0)
        return tmap_fail(err, TMAP_ERR_DATA, "no score column holds a value: nothing to weigh");
    if (!weights_alloc(out, d))
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %zu weights", d);
    for (size_t j = 0, k = 0; j < s->n_cols; j++) {
        if (!column_has_values(s, j))
            continue;
        out->names[k] = strdup(s->names[j]);
        if (!out->names[k]) {
            tmap_weights_free(out);
            return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for weights");
        }
        out->weights[k] = 1.0 / (double)d;
        out->higher_is_better[k] = column_direction(s->names[j]);
        k++;
    }
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Ranks and selection                                                      */
/* ------------------------------------------------------------------------ */

/* Row order by sample id (strcmp): the tie-break that makes the same inputs
 * select the same subset whatever order the file lists them in. The sort
 * carries each row's id with it, so no global state: selections may run on
 * several threads at once. */
struct id_row {
    const char *id;
    size_t      row;
};

static int compare_id_rows(const void *a, const void *b)
{
    const struct id_row *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

static uint32_t *id_order(const struct tmap_pool *pool)
{
    size_t n = tmap_pool_size(pool);
    struct id_row *rows = malloc((n ? n : 1) * sizeof *rows);
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!rows || !order) {
        free(rows);
        free(order);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        rows[i] = (struct id_row){ rec.id, i };
    }
    qsort(rows, n, sizeof *rows, compare_id_rows);
    for (size_t i = 0; i < n; i++)
        order[rows[i].row] = (uint32_t)i;
    free(rows);
    return order;
}

/* Exact duplicates: rows whose content hash an earlier row in id order
 * already has. Identical records get identical scores from every built-in
 * indicator, so which copy stands for them only needs to be fixed once:
 * the lowest id. NULL when out of memory; *n_dup counts them. */
struct hash_row {
    uint8_t  hash[16];
    uint32_t order;
    size_t   row;
};

static int compare_hash_rows(const void *a, const void *b)
{
    const struct hash_row *x = a, *y = b;
    int c = memcmp(x->hash, y->hash, 16);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static bool *duplicate_rows(const struct tmap_pool *pool, const uint32_t *order, size_t *n_dup)
{
    size_t n = tmap_pool_size(pool);
    bool *dup = calloc(n ? n : 1, sizeof *dup);
    struct hash_row *hr = malloc((n ? n : 1) * sizeof *hr);
    *n_dup = 0;
    if (!dup || !hr) {
        free(dup);
        free(hr);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        memcpy(hr[i].hash, rec.hash, sizeof hr[i].hash);
        hr[i].order = order[i];
        hr[i].row = i;
    }
    qsort(hr, n, sizeof *hr, compare_hash_rows);
    for (size_t i = 1; i < n; i++) {
        if (memcmp(hr[i].hash, hr[i - 1].hash, 16) == 0) {
            dup[hr[i].row] = true;
            (*n_dup)++;
        }
    }
    free(hr);
    return dup;
}

/* What turns combined scores into rows, set up once per pool and used for
 * every candidate weighting. */
struct chooser {
    const struct tmap_select_params *p;
    size_t    n;
    uint32_t *order; /* id order: the tie-break */
    bool     *dup;   /* exact duplicates, kept out (NULL: keep them) */
    double   *key;   /* filter mode: each row's draw key (NULL in top mode) */
    uint32_t *band;  /* stratified mode: each row's length band (NULL otherwise) */
    struct banded *banded; /* stratified mode: workspace, one entry a row */
    double   *work;
};

/* A row as the stratified mode orders it: by band, then as precedes()
 * orders rows (higher score, then the id order); NaN (a duplicate) last. */
struct banded {
    double   s;
    uint32_t band, order;
    size_t   row;
};

static int compare_banded(const void *x, const void *y)
{
    const struct banded *a = x, *b = y;
    if (a->band != b->band)
        return a->band < b->band ? -1 : 1;
    bool na = isnan(a->s), nb = isnan(b->s);
    if (na != nb)
        return na ? 1 : -1;
    if (!na && a->s != b->s)
        return a->s > b->s ? -1 : 1;
    if (a->order != b->order)
        return a->order < b->order ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static enum tmap_status check_select_params(const struct tmap_select_params *p, struct tmap_error *err)
{
    if (!(p->ratio > 0.0 && p->ratio <= 1.0))
        return tmap_fail(err, TMAP_ERR_USAGE, "ratio %g must be in (0, 1]", p->ratio);
    if (p->mode != TMAP_SELECT_TOP && p->mode != TMAP_SELECT_FILTER && p->mode != TMAP_SELECT_STRATIFIED)
        return tmap_fail(err, TMAP_ERR_USAGE, "unknown selection mode %d", (int)p->mode);
    if (p->mode == TMAP_SELECT_STRATIFIED && !(p->strata >= 1 && p->strata <= UINT32_MAX))
        return tmap_fail(err, TMAP_ERR_USAGE, "%zu length bands: the stratified selection needs at least 1",
                         p->strata);
    if (p->mode == TMAP_SELECT_FILTER && !(p->drop >= 0.0 && p->ratio + p->drop <= 1.0 + 1e-9))
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "drop %g with ratio %g: the filter must leave at least the ratio (drop in [0, 1 - ratio])",
                         p->drop, p->ratio);
    return TMAP_OK;
}

/* A key in [0, 1) per row from its content hash and the seed: a row keeps
 * its key whatever the file order and whatever the weights. */
static void draw_keys(const struct tmap_pool *pool, uint64_t seed, double *key)
{
    size_t n = tmap_pool_size(pool);
    for (size_t i = 0; i < n; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        key[i] = (double)(XXH3_64bits_withSeed(rec.hash, sizeof rec.hash, seed) >> 11) * 0x1.0p-53;
    }
}

/* Each row's length band: rows sorted by the bytes of prompt and response
 * (ties in id order) and cut into `strata` runs of equal count. */
static enum tmap_status length_bands(const struct tmap_pool *pool, const uint32_t *order, size_t strata,
                                     struct banded *tmp, uint32_t *band, struct tmap_error *err)
{
    size_t n = tmap_pool_size(pool);
    for (size_t i = 0; i < n; i++) {
        struct tmap_sample smp;
        enum tmap_status st = tmap_pool_sample(pool, i, &smp, err);
        if (st)
            return st;
        /* The length stands in the score slot; ascending, so negated. */
        tmp[i] = (struct banded){ -(double)(strlen(smp.prompt) + strlen(smp.response)), 0, order[i], i };
        tmap_sample_free(&smp);
    }
    qsort(tmp, n, sizeof *tmp, compare_banded);
    for (size_t pos = 0; pos < n; pos++)
        band[tmp[pos].row] = (uint32_t)(pos * strata / n);
    return TMAP_OK;
}

static void chooser_free(struct chooser *c)
{
    free(c->order);
    free(c->dup);
    free(c->key);
    free(c->band);
    free(c->banded);
    free(c->work);
    memset(c, 0, sizeof *c);
}

static enum tmap_status chooser_init(struct chooser *c, const struct tmap_pool *pool,
                                     const struct tmap_select_params *p, size_t *n_dup, struct tmap_error *err)
{
    memset(c, 0, sizeof *c);
    *n_dup = 0;
    enum tmap_status st = check_select_params(p, err);
    if (st)
        return st;
    size_t n = tmap_pool_size(pool), cells = n ? n : 1;
    c->p = p;
    c->n = n;
    c->order = id_order(pool);
    c->work = malloc(cells * sizeof *c->work);
    if (c->order && !p->keep_duplicates)
        c->dup = duplicate_rows(pool, c->order, n_dup);
    if (p->mode == TMAP_SELECT_FILTER && (c->key = malloc(cells * sizeof *c->key)) != NULL)
        draw_keys(pool, p->seed, c->key);
    if (p->mode == TMAP_SELECT_STRATIFIED) {
        c->band = malloc(cells * sizeof *c->band);
        c->banded = malloc(cells * sizeof *c->banded);
    }
    if (!c->order || !c->work || (!p->keep_duplicates && !c->dup) || (p->mode == TMAP_SELECT_FILTER && !c->key) ||
        (p->mode == TMAP_SELECT_STRATIFIED && (!c->band || !c->banded))) {
        chooser_free(c);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory selecting from %zu samples", n);
    }
    if (c->band) {
        st = length_bands(pool, c->order, p->strata, c->banded, c->band, err);
        if (st)
            chooser_free(c);
    }
    return st;
}

/* Stratified mode: each row's score becomes its place within its band,
 * 1 - (place + 0.5) / (the band's distinct rows), so the top of all rows
 * by it takes the ratio of every band (bands of equal count give equal
 * keys at equal places, and the id order breaks those ties). */
static void band_places(const struct chooser *c)
{
    size_t n = c->n;
    struct banded *b = c->banded;
    for (size_t i = 0; i < n; i++)
        b[i] = (struct banded){ c->work[i], c->band[i], c->order[i], i };
    qsort(b, n, sizeof *b, compare_banded);
    for (size_t lo = 0, hi; lo < n; lo = hi) {
        size_t distinct = 0;
        for (hi = lo; hi < n && b[hi].band == b[lo].band; hi++)
            distinct += !isnan(b[hi].s);
        for (size_t i = lo; i < hi; i++)
            if (!isnan(b[i].s))
                c->work[b[i].row] = 1.0 - ((double)(i - lo) + 0.5) / (double)distinct;
    }
}

/* The rows combined scores s select, duplicates left out: they rank below
 * every other row (NaN), so they can only reach the top when distinct rows
 * run out, and are dropped then. rows needs room for n (workspace); its
 * first `returned` entries are the selection in ascending row order. */
static size_t choose_rows(const struct chooser *c, const double *s, size_t *rows)
{
    size_t n = c->n;
    for (size_t i = 0; i < n; i++)
        c->work[i] = c->dup && c->dup[i] ? NAN : s[i];
    if (c->p->mode == TMAP_SELECT_FILTER) {
        /* What the drop leaves, then the draw among it: the highest keys. */
        size_t kept = tmap_select_top(c->work, c->order, n, 1.0 - c->p->drop, rows);
        for (size_t i = 0; i < n; i++)
            c->work[i] = NAN;
        for (size_t j = 0; j < kept; j++)
            if (!(c->dup && c->dup[rows[j]]))
                c->work[rows[j]] = c->key[rows[j]];
    }
    if (c->p->mode == TMAP_SELECT_STRATIFIED)
        band_places(c);
    size_t k = tmap_select_top(c->work, c->order, n, c->p->ratio, rows), chosen = 0;
    for (size_t i = 0; i < k; i++)
        if (!isnan(c->work[rows[i]]))
            rows[chosen++] = rows[i];
    assert(chosen <= tmap_select_count(c->p->ratio, n));
    for (size_t i = 1; i < chosen; i++)
        assert(rows[i - 1] < rows[i]); /* ascending row order, each row once */
    return chosen;
}

/* The weights name a column the scores do not hold: say which ones they do
 * hold (a column of NaNs only was never scored), so a typo or a scores file
 * from another run shows at once. */
static enum tmap_status missing_column(const struct tmap_scores *s, const char *name, struct tmap_error *err)
{
    char held[512] = "";
    size_t used = 0;
    for (size_t col = 0; col < s->n_cols && used < sizeof held; col++) {
        bool scored = false;
        for (size_t r = 0; r < s->n_rows && !scored; r++)
            scored = !isnan(s->values[col * s->n_rows + r]);
        if (scored) {
            int n = snprintf(held + used, sizeof held - used, "%s%s", used ? ", " : "", s->names[col]);
            used += n > 0 ? (size_t)n : 0;
        }
    }
    return tmap_fail(err, TMAP_ERR_DATA, "the weights name \"%s\", which the scores do not hold (they hold: %s)",
                     name, used ? held : "nothing");
}

/* Percentile ranks of the weighted columns, column-major n x d. */
static enum tmap_status rank_columns(const struct tmap_scores *s, const struct tmap_weights *w, double *u,
                                     struct tmap_error *err)
{
    for (size_t j = 0; j < w->d; j++) {
        size_t col = tmap_scores_find_column(s, w->names[j]);
        if (col == SIZE_MAX)
            return missing_column(s, w->names[j], err);
        enum tmap_status st = tmap_percentile_ranks(s->values + col * s->n_rows, s->n_rows,
                                                    w->higher_is_better[j], u + j * s->n_rows, err);
        if (st)
            return st;
    }
    return TMAP_OK;
}

void tmap_selection_free(struct tmap_selection *s)
{
    if (!s)
        return;
    free(s->rows);
    free(s->selected);
    free(s->combined);
    free(s->ranks);
    memset(s, 0, sizeof *s);
}

/* A selection's arrays for n samples (ranks too when d > 0), nothing
 * selected yet. */
static enum tmap_status selection_alloc(struct tmap_selection *sel, size_t n, size_t d, struct tmap_error *err)
{
    size_t cells = n ? n : 1;
    sel->n_rows = n;
    sel->rows = malloc(cells * sizeof *sel->rows);
    sel->selected = calloc(cells, sizeof *sel->selected);
    sel->combined = malloc(cells * sizeof *sel->combined);
    sel->ranks = d ? malloc(cells * d * sizeof *sel->ranks) : NULL;
    if (!sel->rows || !sel->selected || !sel->combined || (d && !sel->ranks))
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the selection of %zu samples", n);
    return TMAP_OK;
}

/* selected[] from the first n of rows[]. */
static void mark_selected(struct tmap_selection *sel)
{
    memset(sel->selected, 0, sel->n_rows * sizeof *sel->selected);
    for (size_t i = 0; i < sel->n; i++)
        sel->selected[sel->rows[i]] = true;
}

enum tmap_status tmap_select(const struct tmap_pool *pool, const struct tmap_scores *scores,
                             const struct tmap_weights *w, const struct tmap_select_params *p,
                             struct tmap_selection *out, struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = scores->n_rows;
    if (n != tmap_pool_size(pool))
        return tmap_fail(err, TMAP_ERR_DATA, "%zu score rows for a pool of %zu records", n, tmap_pool_size(pool));
    struct chooser ch;
    enum tmap_status st = chooser_init(&ch, pool, p, &out->n_duplicates, err);
    if (st)
        return st;
    st = selection_alloc(out, n, w->d ? w->d : 1, err);
    if (!st)
        st = rank_columns(scores, w, out->ranks, err);
    if (!st) {
        tmap_combine(out->ranks, n, w->d, w->weights, out->combined);
        out->n = choose_rows(&ch, out->combined, out->rows);
        mark_selected(out);
    }
    chooser_free(&ch);
    if (st)
        tmap_selection_free(out);
    return st;
}

enum tmap_status tmap_selection_diversify(const struct tmap_pool *pool, struct tmap_selection *sel,
                                          const float *emb, int32_t dim, double threshold, struct tmap_error *err)
{
    if (!(threshold > -1.0 && threshold <= 1.0))
        return tmap_fail(err, TMAP_ERR_USAGE, "similarity threshold %g must be in (-1, 1]", threshold);
    uint32_t *order = id_order(pool);
    if (!order)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the diversity filter");
    sel->n = tmap_select_diverse(sel->combined, order, sel->n_rows, emb, dim, threshold, sel->n, sel->rows);
    free(order);
    mark_selected(sel);
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* The search                                                               */
/* ------------------------------------------------------------------------ */

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
static enum tmap_status run_jobs(struct objective *o, struct job *jobs, size_t m, struct tmap_error *err)
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
 * value and spends no budget; the rest go to run_jobs. A value from the
 * store's memo (an earlier or killed run) still counts against the budget:
 * a rerun must search exactly as far as the first run did, or a warm store
 * would change the weights it learns. */
static enum tmap_status evaluate_batch(const double *w, size_t q, size_t d, void *ud, double *values, bool *reused,
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
        st = run_jobs(o, jobs, m, err);
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
    return evaluate_batch(w, 1, d, ud, value, reused, err);
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

/* ------------------------------------------------------------------------ */
/* Baselines                                                                */
/* ------------------------------------------------------------------------ */

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
    enum tmap_status st = evaluate_batch(w, d + 1, d, o, values, reused, err);
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
    /* Every subset first, then one run_jobs: the ranks share them. */
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
        st = run_jobs(o, jobs, b->n_random, err);
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
    enum tmap_status st = run_jobs(o, jobs, b->n_redraws, err);
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

static enum tmap_status run_baselines(struct objective *o, size_t k, struct tmap_learn_result *out,
                                      struct tmap_error *err)
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

/* The clause that opens the line of a run that had no choice. */
static int describe_no_choice(const struct tmap_baselines *b, char *buf, size_t size)
{
    return snprintf(buf, size, "the selection keeps every distinct record of the pool (%zu), so all weightings "
                    "select the same subset and the weights are arbitrary", b->n_distinct);
}

void tmap_baselines_describe(const struct tmap_baselines *b, char *buf, size_t size)
{
    if (b->no_choice) {
        /* Said first, as it explains the rest: a pool of one record ten
         * times over, or --ratio 1 with nothing to drop. */
        int used = describe_no_choice(b, buf, size);
        if (used < 0 || (size_t)used >= size)
            return;
        buf += used;
        size -= (size_t)used;
        if (b->verdict == TMAP_VERDICT_UNKNOWN) {
            snprintf(buf, size, " (no other subset of its size to compare with)");
            return;
        }
        /* Random subsets may still differ from it by holding duplicates. */
        snprintf(buf, size, "; learned %.4f vs random %.4f, which may hold duplicates", b->learned_mean,
                 b->random_mean);
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
    sp.batch_f = evaluate_batch;
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
