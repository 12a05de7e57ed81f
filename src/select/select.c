/*
 * select.c - `tmap select`: weights over the indicator columns and the
 * subset they select (docs/design.md section 3). Percentile ranks of the
 * weighted columns, combined by the weights, then the top ratio of the pool
 * (or, in filter mode, a seeded draw from all but the lowest, or, in
 * stratified mode, the top of each length band), exact duplicates kept
 * out. Ties fall to the sample id, so the same inputs select the same
 * subset whatever order the file lists them in.
 *
 * The weight search (learn/learn.c) selects once per candidate weighting:
 * it sets up a chooser once per pool (select.h) and calls choose_rows for
 * each, as tmap_select does once.
 */
#include "select/select.h"

#include "data/copies.h"
#include "indicators/scores.h"
#include "select/rank.h"
#include "util/error.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct tmap_select_params tmap_select_default_params(void)
{
    struct tmap_select_params p = {
        .ratio = 0.3, .mode = TMAP_SELECT_TOP, .drop = 0.3, .seed = 42, .strata = 10, .keep_duplicates = false,
    };
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
static bool *duplicate_rows(const struct tmap_pool *pool, const uint32_t *order, size_t *n_dup)
{
    size_t n = tmap_pool_size(pool);
    bool *dup = calloc(n ? n : 1, sizeof *dup);
    size_t *first = malloc((n ? n : 1) * sizeof *first);
    *n_dup = dup && first ? pool_find_copies(pool, order, first) : SIZE_MAX;
    if (*n_dup == SIZE_MAX) {
        *n_dup = 0;
        free(dup);
        free(first);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        dup[i] = first[i] != i;
    free(first);
    return dup;
}

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

void chooser_free(struct chooser *c)
{
    free(c->order);
    free(c->dup);
    free(c->key);
    free(c->band);
    free(c->banded);
    free(c->work);
    memset(c, 0, sizeof *c);
}

enum tmap_status chooser_init(struct chooser *c, const struct tmap_pool *pool, const struct tmap_select_params *p,
                              size_t *n_dup, struct tmap_error *err)
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
size_t choose_rows(const struct chooser *c, const double *s, size_t *rows)
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
enum tmap_status rank_columns(const struct tmap_scores *s, const struct tmap_weights *w, double *u,
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
enum tmap_status selection_alloc(struct tmap_selection *sel, size_t n, size_t d, struct tmap_error *err)
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
void mark_selected(struct tmap_selection *sel)
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
