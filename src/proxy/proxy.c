/*
 * proxy.c - the in-context-learning proxy (docs/design.md section 5): how well
 * the target model answers the tiny set with demonstrations drawn from a
 * candidate subset. It stands in for "fine-tune on the subset and
 * evaluate", and the weight search calls it dozens of times, so its cost is
 * the cost of learning the weights.
 *
 * Each evaluation lays out one prompt per tiny item (demonstrations, then
 * the item's query), tokenizes them, and finds the longest token prefix
 * they all share. With the top and random policies that prefix is the
 * whole demonstration block: it is decoded once and its KV cells are shared
 * by every query (tmap_model_logprob_shared), so the block costs k demos
 * once instead of once per item. Finding the prefix on tokens rather than
 * on text makes it work for any template and tokenizer, and the unshared
 * path decodes exactly the same token sequences (tests compare the two).
 *
 * Values are memoised in the store under a hash of everything they depend
 * on: model, tiny set and weights, metric, policy and its parameters, and
 * the demonstrations that can be drawn.
 *
 * The fine-tune proxy (TMAP_PROXY_FINETUNE) asks the question ICL stands in
 * for, at a small scale: each draw trains a copy of the model on records
 * drawn from the subset and scores the tiny set's answers under it with no
 * demonstrations. The copy is loaded once (without mmap, as training
 * writes the weights), trained and judged in memory, and set back from the
 * model's file after each draw (ft_train_judge): a draw writes nothing,
 * where writing a 7B model's checkpoints would take minutes and twice its
 * size on disk.
 */

#include "util/clock.h"
#include "dist/dist.h"
#include "model/model.h"
#include "proxy/proxy.h"
#include "store/store.h"
#include "task/answer.h"
#include "task/fewshot.h"
#include "train/finetune.h"
#include "util/error.h"
#include "util/random.h"

#include "tmap.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

struct tmap_proxy_params tmap_proxy_default_params(void)
{
    struct tmap_proxy_params p = {
        .k = 8, .policy = TMAP_DEMOS_TOP, .draws = 2, .groups = 1, .metric = TMAP_METRIC_LOGLIK,
        .tmpl = TMAP_TEMPLATE_PLAIN, .seed = 42, .share_prefix = true, .max_tokens = 256,
        .kind = TMAP_PROXY_ICL, .ft_records = 64, .ft_epochs = 1, .ft_lr = 1e-4f, .slices = 1,
    };
    return p;
}

/* What the proxy keeps of one tiny item between evaluations. */
struct tiny_item {
    struct tmap_sample s;
    int32_t           *answer; /* gold response tokens (loglik) */
    int32_t            n_answer;
    int32_t          **choice;   /* per choice: its tokens (mc) */
    int32_t           *n_choice;
};

struct tmap_proxy {
    struct tmap_model       *model;
    const struct tmap_pool  *tiny;
    struct tmap_proxy_params p;
    double                  *weights;
    struct tiny_item        *items;
    size_t                   n;
    struct tmap_store       *store;
    uint8_t                  tiny_hash[16];
    float                   *tiny_emb;  /* knn only */
    const struct tmap_pool  *emb_pool;  /* the demonstration pool whose embeddings are cached */
    float                   *demo_emb;
    int32_t                  dim;
    const struct tmap_pool  *copies_pool; /* the demonstration pool is_copy describes */
    bool                    *is_copy;   /* per row of it: asks a tiny item's question, so never drawn */
    bool                     any_copy;
    struct tmap_model       *ft_model;  /* the fine-tune proxy's trainable copy, loaded on first use */
    int32_t                **ft_prompt; /* per tiny item: its bare query's tokens, which the copy scores */
    int32_t                 *ft_n_prompt;
    bool                     collective; /* the MPI ranks compute this evaluation together (proxy.h) */
};

/* ------------------------------------------------------------------------ */
/* Setting up                                                               */
/* ------------------------------------------------------------------------ */

static void free_item(struct tiny_item *it)
{
    for (size_t c = 0; it->choice && c < it->s.n_choices; c++)
        free(it->choice[c]);
    free(it->choice);
    free(it->n_choice);
    free(it->answer);
    tmap_sample_free(&it->s);
}

static void free_ft_prompts(struct tmap_proxy *px)
{
    for (size_t i = 0; px->ft_prompt && i < px->n; i++)
        free(px->ft_prompt[i]);
    free(px->ft_prompt);
    free(px->ft_n_prompt);
    px->ft_prompt = NULL;
    px->ft_n_prompt = NULL;
}

void tmap_proxy_free(struct tmap_proxy *px)
{
    if (!px)
        return;
    for (size_t i = 0; px->items && i < px->n; i++)
        free_item(&px->items[i]);
    free(px->items);
    free(px->weights);
    free(px->tiny_emb);
    free(px->demo_emb);
    free(px->is_copy);
    tmap_store_close(px->store);
    tmap_model_free(px->ft_model);
    free_ft_prompts(px);
    free(px);
}

uint64_t tmap_proxy_seed(const struct tmap_proxy *px)
{
    return px->p.seed;
}

void tmap_proxy_set_seed(struct tmap_proxy *px, uint64_t seed)
{
    px->p.seed = seed;
}

static enum tmap_status prepare_item(struct tmap_proxy *px, size_t i, struct tmap_error *err)
{
    struct tiny_item *it = &px->items[i];
    enum tmap_status st = tmap_pool_sample(px->tiny, i, &it->s, err);
    if (!st)
        st = tmap_model_tokenize_response(px->model, &it->s, px->p.tmpl, &it->answer, &it->n_answer, err);
    if (st || px->p.metric != TMAP_METRIC_MC)
        return st;
    if (it->s.n_choices == 0 || it->s.answer_index < 0)
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: the mc metric needs a multiple-choice record",
                         tmap_pool_path(px->tiny), it->s.line);
    it->choice = calloc(it->s.n_choices, sizeof *it->choice);
    it->n_choice = calloc(it->s.n_choices, sizeof *it->n_choice);
    if (!it->choice || !it->n_choice)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory preparing the tiny set");
    for (size_t c = 0; c < it->s.n_choices && !st; c++)
        st = tmap_model_tokenize(px->model, it->s.choices[c], false, &it->choice[c], &it->n_choice[c], err);
    return st;
}

/* The tiny set's identity for the memo: its records' content and weights. */
static void hash_tiny(struct tmap_proxy *px)
{
    XXH3_state_t *h = XXH3_createState();
    XXH3_128bits_reset(h);
    for (size_t i = 0; i < px->n; i++) {
        struct tmap_record rec;
        tmap_pool_record(px->tiny, i, &rec);
        XXH3_128bits_update(h, rec.hash, sizeof rec.hash);
        XXH3_128bits_update(h, &px->weights[i], sizeof px->weights[i]);
    }
    XXH128_canonicalFromHash((XXH128_canonical_t *)px->tiny_hash, XXH3_128bits_digest(h));
    XXH3_freeState(h);
}

/* Which rows of the demonstration pool ask a tiny item's question: found
 * once per pool (tmap_pool_overlap), as its embeddings are, not per
 * evaluation. */
static enum tmap_status find_tiny_copies(struct tmap_proxy *px, const struct tmap_pool *demos,
                                         struct tmap_error *err)
{
    if (px->copies_pool == demos)
        return TMAP_OK;
    size_t n = tmap_pool_size(demos);
    free(px->is_copy);
    px->copies_pool = NULL;
    if (!(px->is_copy = malloc((n ? n : 1) * sizeof *px->is_copy)))
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %zu demonstration records", n);
    struct tmap_overlap overlap;
    enum tmap_status st = tmap_pool_overlap(demos, px->tiny, px->is_copy, &overlap, err);
    if (!st) {
        px->any_copy = overlap.n_pool_rows > 0;
        px->copies_pool = demos;
    }
    return st;
}

/* The subset's rows less those that ask a tiny item's question. Such a
 * copy, drawn as a demonstration (or fine-tuned on), hands the item its
 * own answer, and the proxy would pay for selecting it: the learned
 * weights would follow the leak. On return *rows and *n_rows are the rows
 * to draw from, in *kept (the caller frees it) when copies were left out;
 * a subset without copies is left as it is, so it is judged exactly as
 * before. */
static enum tmap_status without_tiny_copies(struct tmap_proxy *px, const struct tmap_pool *demos,
                                            const size_t **rows, size_t *n_rows, size_t **kept,
                                            struct tmap_error *err)
{
    *kept = NULL;
    size_t n = *n_rows, n_kept = n;
    enum tmap_status st = find_tiny_copies(px, demos, err);
    for (size_t i = 0; !st && px->any_copy && i < n; i++) {
        bool copy = px->is_copy[(*rows)[i]];
        if (copy && !*kept) { /* the first copy: the rows before it stay */
            if (!(*kept = malloc(n * sizeof **kept)))
                return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for a subset of %zu records", n);
            memcpy(*kept, *rows, i * sizeof **kept);
            n_kept = i;
        } else if (!copy && *kept) {
            (*kept)[n_kept++] = (*rows)[i];
        }
    }
    if (*kept && n_kept == 0) {
        free(*kept);
        *kept = NULL;
        return tmap_fail(err, TMAP_ERR_DATA, "every one of the subset's %zu records asks a tiny item's question: "
                         "nothing else to draw demonstrations from (`tmap data decontaminate` takes such "
                         "records out of the pool)", n);
    }
    if (*kept) {
        *rows = *kept;
        *n_rows = n_kept;
    }
    return st;
}

static enum tmap_status check_proxy_params(const struct tmap_proxy_params *p, struct tmap_error *err)
{
    if (p->k < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "k=%d demonstrations: at least 1 (-k)", p->k);
    if (p->policy == TMAP_DEMOS_RANDOM && p->draws < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "%zu draws: at least 1 (--draws)", p->draws);
    if (p->max_tokens < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "max tokens %d: at least 1", p->max_tokens);
    if (p->slices < 1 || p->slices > 4096)
        return tmap_fail(err, TMAP_ERR_USAGE, "%zu slices: 1 to 4096 (--proxy-slices)", p->slices);
    if (p->kind == TMAP_PROXY_FINETUNE) {
        if (p->metric != TMAP_METRIC_LOGLIK)
            return tmap_fail(err, TMAP_ERR_USAGE, "the fine-tune proxy scores log-likelihood only (--metric loglik)");
        if (p->ft_records < 1 || p->ft_epochs < 1 || !(p->ft_lr > 0.0f) || p->draws < 1)
            return tmap_fail(err, TMAP_ERR_USAGE, "fine-tune proxy: %zu records, %d epochs, lr %g, %zu draws: "
                             "each must be positive", p->ft_records, p->ft_epochs, (double)p->ft_lr, p->draws);
    } else if (p->ft_layers && *p->ft_layers) {
        return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s' applies to the fine-tune proxy only "
                         "(--proxy finetune)", p->ft_layers);
    }
    return TMAP_OK;
}

/* The fine-tune proxy's training window: the model's context, in
 * llama.cpp's multiples of 256, at most 1,024 (a short run needs no more). */
static int32_t ft_window(const struct tmap_model *model)
{
    struct tmap_model_info info;
    tmap_model_get_info(model, &info);
    int32_t n = info.n_ctx < 1024 ? info.n_ctx : 1024;
    n -= n % 256;
    return n < 256 ? 256 : n;
}

/* Before `tmap run`'s scoring pass, too: the tensors to train must be F32,
 * and the training copy must fit the memory there is (train/memory.c).
 * The model's context is given back first, as every draw gives it back
 * while the copy trains (eval_finetune_draw): the memory available then
 * is what counts, and the next run that decodes opens a fresh one. */
enum tmap_status proxy_check_model(struct tmap_model *model, const struct tmap_proxy_params *p, int copies,
                                   struct tmap_error *err)
{
    if (p->kind != TMAP_PROXY_FINETUNE)
        return TMAP_OK;
    struct tmap_error why = { 0 };
    const struct tmap_model_params *mp = tmap_model_load_params(model);
    tmap_model_release_context(model);
    enum tmap_status st = ft_check_training(mp->path, p->ft_layers, ft_window(model), mp->n_gpu_layers, copies, &why);
    return st ? tmap_fail(err, st, "--proxy finetune trains the model: %s", why.message) : TMAP_OK;
}

enum tmap_status tmap_proxy_create(struct tmap_model *model, const struct tmap_pool *tiny, const double *weights,
                                   const struct tmap_proxy_params *p, struct tmap_proxy **out,
                                   struct tmap_error *err)
{
    *out = NULL;
    enum tmap_status st = check_proxy_params(p, err);
    if (!st)
        st = proxy_check_model(model, p, 1, err);
    if (st)
        return st;
    struct tmap_proxy *px = calloc(1, sizeof *px);
    size_t n = tmap_pool_size(tiny);
    if (px) {
        px->items = calloc(n ? n : 1, sizeof *px->items);
        px->weights = calloc(n ? n : 1, sizeof *px->weights);
    }
    if (!px || !px->items || !px->weights) {
        tmap_proxy_free(px);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for a proxy over %zu items", n);
    }
    *px = (struct tmap_proxy){ .model = model, .tiny = tiny, .p = *p, .items = px->items,
                               .weights = px->weights, .n = n };
    if (weights)
        memcpy(px->weights, weights, n * sizeof *weights);
    else
        st = tmap_tiny_weights(tiny, px->weights, err);
    for (size_t i = 0; i < n && !st; i++)
        st = prepare_item(px, i, err);
    if (!st && p->store_path)
        st = tmap_store_open(p->store_path, &px->store, err);
    if (!st && p->policy == TMAP_DEMOS_KNN) {
        bool *ok = NULL;
        st = tmap_embed_pool(tiny, model, p->tmpl, p->store_path, &px->tiny_emb, &ok, &px->dim, err);
        free(ok);
    }
    if (st) {
        tmap_proxy_free(px);
        return st;
    }
    hash_tiny(px);
    *out = px;
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Choosing demonstrations                                                  */
/* ------------------------------------------------------------------------ */

/* The k highest-scored rows (ties: lower row first), best first; without
 * scores, the first k rows. k is small: selection by repeated scan. */
static size_t pick_top(const size_t *rows, size_t n, const double *scores, size_t k, size_t *out)
{
    k = k < n ? k : n;
    if (!scores) {
        memcpy(out, rows, k * sizeof *out);
        return k;
    }
    for (size_t j = 0; j < k; j++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            bool taken = false;
            for (size_t t = 0; t < j && !taken; t++)
                taken = out[t] == rows[i];
            if (taken)
                continue;
            if (best == SIZE_MAX || scores[rows[i]] > scores[rows[best]] ||
                (scores[rows[i]] == scores[rows[best]] && rows[i] < rows[best]))
                best = i;
        }
        out[j] = rows[best];
    }
    return k;
}

/* The k demonstrations nearest to tiny item q (cosine), nearest last, so
 * the most similar example sits right before the query. */
static size_t pick_knn(const struct tmap_proxy *px, size_t q, const size_t *rows, size_t n, size_t k, size_t *out)
{
    k = k < n ? k : n;
    double *sim = malloc((n ? n : 1) * sizeof *sim);
    if (!sim)
        return 0;
    const float *e = px->tiny_emb + q * (size_t)px->dim;
    for (size_t i = 0; i < n; i++) {
        const float *d = px->demo_emb + rows[i] * (size_t)px->dim;
        sim[i] = 0.0;
        for (int32_t c = 0; c < px->dim; c++)
            sim[i] += (double)e[c] * d[c];
    }
    /* k is small: take the best k by repeated scan, filling out from the end. */
    for (size_t j = 0; j < k; j++) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (sim[i] > sim[best])
                best = i;
        out[k - 1 - j] = rows[best];
        sim[best] = -INFINITY;
    }
    free(sim);
    return k;
}

/* ------------------------------------------------------------------------ */
/* Prompts                                                                  */
/* ------------------------------------------------------------------------ */

static enum tmap_status layout(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                               size_t k, const struct tmap_sample *query, char **out, struct tmap_error *err)
{
    struct tmap_sample *demo = calloc(k ? k : 1, sizeof *demo);
    if (!demo)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory laying out a prompt");
    enum tmap_status st = TMAP_OK;
    size_t loaded = 0;
    for (; loaded < k && !st; loaded++)
        st = tmap_pool_sample(demos, rows[loaded], &demo[loaded], err);
    if (!st) /* one layout for the proxy and eval: task/fewshot.c */
        st = tmap_fewshot_layout(px->model, px->p.tmpl, demo, k, query, out, err);
    for (size_t j = 0; j < loaded; j++)
        tmap_sample_free(&demo[j]);
    free(demo);
    return st;
}

/* ------------------------------------------------------------------------ */
/* One set of prompts through the model                                     */
/* ------------------------------------------------------------------------ */

/* Prompts of a set of tiny items: tokens[j] is item[j]'s. A draw builds
 * them for every item, then scores them group by group (each group of the
 * random policy has its own demonstrations, so its own shared prefix). */
struct prompts {
    int32_t     **tokens;
    int32_t      *n;
    int32_t       shared; /* tokens every prompt of the set starts with (decoded once) */
    const size_t *item;   /* tiny item of each prompt */
    size_t        m;
};

static void free_prompts(struct prompts *pr, size_t n)
{
    for (size_t i = 0; pr->tokens && i < n; i++)
        free(pr->tokens[i]);
    free(pr->tokens);
    free(pr->n);
}

static enum tmap_status score_loglik(struct tmap_proxy *px, const struct prompts *pr, double *values,
                                     struct tmap_error *err)
{
    struct tmap_logprob_request *req = calloc(pr->m, sizeof *req);
    struct tmap_logprob_result *res = calloc(pr->m, sizeof *res);
    enum tmap_status st = req && res ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < pr->m && !st; j++) {
        const struct tiny_item *it = &px->items[pr->item[j]];
        req[j] = (struct tmap_logprob_request){ .prompt = pr->tokens[j] + pr->shared, .n_prompt = pr->n[j] - pr->shared,
                                               .response = it->answer, .n_response = it->n_answer };
    }
    if (!st)
        st = tmap_model_logprob_shared(px->model, pr->tokens[0], pr->shared, req, pr->m, res, err);
    for (size_t j = 0; j < pr->m && !st; j++)
        values[pr->item[j]] = res[j].n_tokens > 0 ? res[j].sum_logprob / res[j].n_tokens : NAN;
    free(req);
    free(res);
    return st;
}

static bool is_correct(const struct tiny_item *it, const char *output)
{
    char got[64], gold[64];
    if (!tmap_extract_answer(output, got, sizeof got))
        return false;
    if (it->s.answer)
        snprintf(gold, sizeof gold, "%s", it->s.answer);
    else if (!tmap_extract_answer(it->s.response, gold, sizeof gold))
        return false;
    return tmap_answers_match(got, gold);
}

static enum tmap_status score_accuracy(struct tmap_proxy *px, const struct prompts *pr, double *values,
                                       struct tmap_error *err)
{
    struct tmap_generate_request *req = calloc(pr->m, sizeof *req);
    char **outputs = calloc(pr->m, sizeof *outputs);
    enum tmap_status st = req && outputs ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < pr->m && !st; j++)
        req[j] = (struct tmap_generate_request){ pr->tokens[j] + pr->shared, pr->n[j] - pr->shared };
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = px->p.max_tokens;
    gp.stops = tmap_fewshot_stops;
    gp.n_stops = tmap_fewshot_n_stops;
    if (!st)
        st = tmap_model_generate(px->model, pr->tokens[0], pr->shared, req, pr->m, &gp, outputs, err);
    for (size_t j = 0; j < pr->m; j++) {
        if (!st)
            values[pr->item[j]] = is_correct(&px->items[pr->item[j]], outputs[j]) ? 1.0 : 0.0;
        free(outputs[j]);
    }
    free(req);
    free(outputs);
    return st;
}

/* Multiple choice: every choice of every item is one request; an item is
 * right when its gold choice has the highest total log-probability. */
static enum tmap_status score_mc(struct tmap_proxy *px, const struct prompts *pr, double *values,
                                 struct tmap_error *err)
{
    size_t total = 0;
    for (size_t j = 0; j < pr->m; j++)
        total += px->items[pr->item[j]].s.n_choices;
    struct tmap_logprob_request *req = calloc(total ? total : 1, sizeof *req);
    struct tmap_logprob_result *res = calloc(total ? total : 1, sizeof *res);
    enum tmap_status st = req && res ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    for (size_t j = 0, q = 0; j < pr->m && !st; j++) {
        const struct tiny_item *it = &px->items[pr->item[j]];
        for (size_t c = 0; c < it->s.n_choices; c++, q++)
            req[q] = (struct tmap_logprob_request){ .prompt = pr->tokens[j] + pr->shared, .n_prompt = pr->n[j] - pr->shared,
                                                   .response = it->choice[c], .n_response = it->n_choice[c] };
    }
    if (!st)
        st = tmap_model_logprob_shared(px->model, pr->tokens[0], pr->shared, req, total, res, err);
    for (size_t j = 0, q = 0; j < pr->m && !st; j++) {
        const struct tiny_item *it = &px->items[pr->item[j]];
        size_t best = 0;
        for (size_t c = 0; c < it->s.n_choices; c++)
            if (res[q + c].sum_logprob > res[q + best].sum_logprob)
                best = c;
        values[pr->item[j]] = res[q + best].fit == TMAP_FIT_SKIPPED ? NAN : (int)best == it->s.answer_index;
        q += it->s.n_choices;
    }
    free(req);
    free(res);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Evaluations                                                              */
/* ------------------------------------------------------------------------ */

/* Groups of the tiny set a draw gives demonstrations of their own: the
 * random policy's `groups`, never more than the items. */
static size_t n_groups(const struct tmap_proxy *px)
{
    size_t g = px->p.policy == TMAP_DEMOS_RANDOM && px->p.groups > 1 ? px->p.groups : 1;
    return g < px->n ? g : (px->n ? px->n : 1);
}

/* The demonstrations of tiny item q for this draw. Item q is in group
 * q mod groups; group 0 draws with the seed itself, so one group draws
 * what the proxy always drew. */
static size_t choose_demos(const struct tmap_proxy *px, size_t q, const size_t *rows, size_t n_rows,
                           const double *scores, uint64_t seed, size_t *out)
{
    size_t k = (size_t)px->p.k, g = q % n_groups(px);
    switch (px->p.policy) {
    case TMAP_DEMOS_TOP:    return pick_top(rows, n_rows, scores, k, out);
    case TMAP_DEMOS_RANDOM: return tmap_random_sample(rows, n_rows, k, g ? seed ^ (0x67726f7570ULL * g) : seed, out);
    case TMAP_DEMOS_KNN:    return pick_knn(px, q, rows, n_rows, k, out);
    }
    return 0;
}

/* Context an item needs after its prompt: its answer, its longest choice,
 * or (generation) a share of the token budget. */
static int32_t room_after_prompt(const struct tmap_proxy *px, size_t i)
{
    const struct tiny_item *it = &px->items[i];
    if (px->p.metric == TMAP_METRIC_ACCURACY)
        return px->p.max_tokens < 64 ? px->p.max_tokens : 64;
    if (px->p.metric == TMAP_METRIC_MC) {
        int32_t most = 0;
        for (size_t c = 0; c < it->s.n_choices; c++)
            most = it->n_choice[c] > most ? it->n_choice[c] : most;
        return most;
    }
    return it->n_answer;
}

/* Item i's prompt with the first *k_io of the chosen demonstrations; when
 * it does not fit the context, the last demonstrations are left out until
 * it does (k demonstrations of a long-answer pool can outgrow -c), and
 * *k_io says how many stayed. The other items keep theirs: the shared
 * prefix then simply ends earlier. */
static enum tmap_status fitting_prompt(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *chosen,
                                       size_t *k_io, size_t i, int32_t **tokens, int32_t *n, struct tmap_error *err)
{
    size_t k = *k_io;
    struct tmap_model_info info;
    tmap_model_get_info(px->model, &info);
    int32_t limit = info.n_ctx - room_after_prompt(px, i);
    for (;;) {
        char *text = NULL;
        enum tmap_status st = layout(px, demos, chosen, k, &px->items[i].s, &text, err);
        if (!st)
            st = tmap_model_tokenize_prompt(px->model, text, px->p.tmpl, tokens, n, err);
        free(text);
        if (st || *n <= limit || k == 0) {
            *k_io = k;
            return st;
        }
        free(*tokens);
        *tokens = NULL;
        k--;
    }
}

/* count, when not NULL, adds up what the prompts hold. */
static enum tmap_status build_prompts(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                      size_t n_rows, const double *scores, uint64_t seed, struct prompts *pr,
                                      struct tmap_proxy_counters *count, struct tmap_error *err)
{
    pr->tokens = calloc(px->n ? px->n : 1, sizeof *pr->tokens);
    pr->n = calloc(px->n ? px->n : 1, sizeof *pr->n);
    size_t *chosen = calloc((size_t)px->p.k, sizeof *chosen);
    enum tmap_status st = pr->tokens && pr->n && chosen ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < px->n && !st; i++) {
        size_t wanted = choose_demos(px, i, rows, n_rows, scores, seed, chosen), k = wanted;
        st = fitting_prompt(px, demos, chosen, &k, i, &pr->tokens[i], &pr->n[i], err);
        if (count) {
            count->n_prompts++;
            count->n_demos_wanted += wanted;
            count->n_demos += k;
        }
    }
    free(chosen);
    return st;
}

/* Scores slice `slice` of one group's prompts (items g, g + groups, ...,
 * cut into px->p.slices contiguous runs) with its own shared prefix. */
static enum tmap_status score_group(struct tmap_proxy *px, const struct prompts *all, size_t g, size_t groups,
                                    size_t slice, double *values, struct tmap_error *err)
{
    size_t in_group = (px->n - g + groups - 1) / groups, slices = px->p.slices;
    size_t from = in_group * slice / slices, m = in_group * (slice + 1) / slices - from;
    if (m == 0)
        return TMAP_OK;
    size_t *item = malloc((m ? m : 1) * sizeof *item);
    struct prompts pr = { .tokens = malloc((m ? m : 1) * sizeof *pr.tokens), .n = malloc((m ? m : 1) * sizeof *pr.n),
                          .item = item, .m = m };
    enum tmap_status st = item && pr.tokens && pr.n ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    for (size_t j = 0; !st && j < m; j++) {
        item[j] = g + (from + j) * groups;
        pr.tokens[j] = all->tokens[item[j]];
        pr.n[j] = all->n[item[j]];
    }
    bool share = px->p.share_prefix && px->p.policy != TMAP_DEMOS_KNN;
    pr.shared = !st && share ? tmap_fewshot_common_prefix(pr.tokens, pr.n, pr.m) : 0;
    if (!st && px->p.metric == TMAP_METRIC_LOGLIK)
        st = score_loglik(px, &pr, values, err);
    else if (!st && px->p.metric == TMAP_METRIC_ACCURACY)
        st = score_accuracy(px, &pr, values, err);
    else if (!st)
        st = score_mc(px, &pr, values, err);
    free(item);
    free(pr.tokens);
    free(pr.n);
    return st;
}

/* One draw: every tiny item with its demonstrations, weighted mean. */
/* The tiny set's weighted mean of per-item values; items without one (NAN:
 * they did not fit) are counted in *n_skipped. NAN when none has a value. */
static double tiny_mean(const struct tmap_proxy *px, const double *values, size_t *n_skipped)
{
    double sum = 0.0, wsum = 0.0;
    for (size_t i = 0; i < px->n; i++) {
        if (isnan(values[i])) {
            (*n_skipped)++;
            continue;
        }
        sum += px->weights[i] * values[i];
        wsum += px->weights[i];
    }
    return wsum > 0.0 ? sum / wsum : NAN;
}

/* Every item's value from the rank that scored it (collective draws). */
static enum tmap_status gather_items(struct tmap_proxy *px, size_t groups, double *values, struct tmap_error *err)
{
    int size = dist_size();
    size_t n = px->n, slices = px->p.slices;
    size_t *counts = malloc((size_t)size * sizeof *counts);
    double *all = malloc((size_t)size * (n ? n : 1) * sizeof *all);
    enum tmap_status st = counts && all ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    st = dist_worst_status(st, err);
    for (int r = 0; !st && r < size; r++)
        counts[r] = n;
    if (!st && dist_allgather_doubles(values, all, counts) != 0)
        st = tmap_fail(err, TMAP_ERR_IO, "could not gather %zu proxy item values from the ranks", n);
    for (size_t g = 0; !st && g < groups; g++) {
        size_t in_group = (n - g + groups - 1) / groups;
        for (size_t c = 0; c < slices; c++) {
            int owner = (int)((g * slices + c) % (size_t)size);
            for (size_t j = in_group * c / slices; j < in_group * (c + 1) / slices; j++)
                values[g + j * groups] = all[(size_t)owner * n + g + j * groups];
        }
    }
    free(counts);
    free(all);
    return st;
}

static enum tmap_status eval_draw(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                  size_t n_rows, const double *scores, uint64_t seed, double *value,
                                  size_t *n_skipped, struct tmap_error *err)
{
    struct prompts pr = { 0 };
    double *values = calloc(px->n ? px->n : 1, sizeof *values);
    enum tmap_status st = values ? build_prompts(px, demos, rows, n_rows, scores, seed, &pr, NULL, err)
                                 : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    size_t groups = n_groups(px), slices = px->p.slices;
    /* Collective: slice t of the groups x slices goes to rank t % size;
     * each rank scores its own, then every rank takes each item's value
     * from the rank that scored it, so the mean is summed in item order
     * everywhere. */
    int size = px->collective ? dist_size() : 1, rank = px->collective ? dist_rank() : 0;
    for (size_t g = 0; g < groups && !st; g++)
        for (size_t c = 0; c < slices && !st; c++) {
            size_t t = g * slices + c;
            if ((int)(t % (size_t)size) == rank)
                st = score_group(px, &pr, g, groups, c, values, err);
        }
    if (size > 1) {
        st = dist_worst_status(st, err);
        if (!st)
            st = gather_items(px, groups, values, err);
    }
    double mean = st ? NAN : tiny_mean(px, values, n_skipped);
    struct tmap_model_info info;
    tmap_model_get_info(px->model, &info);
    if (!st && isnan(mean))
        st = tmap_fail(err, TMAP_ERR_DATA, "no tiny item fits the context (%d tokens) even without "
                                           "demonstrations (those that do not fit are left out): raise -c",
                       info.n_ctx);
    *value = st ? NAN : mean;
    free_prompts(&pr, px->n);
    free(values);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The fine-tune proxy                                                      */
/* ------------------------------------------------------------------------ */

/* Each tiny item's bare query, tokenized once for every draw. */
static enum tmap_status ft_prompts(struct tmap_proxy *px, struct tmap_error *err)
{
    if (px->ft_prompt)
        return TMAP_OK;
    px->ft_prompt = calloc(px->n ? px->n : 1, sizeof *px->ft_prompt);
    px->ft_n_prompt = calloc(px->n ? px->n : 1, sizeof *px->ft_n_prompt);
    enum tmap_status st = px->ft_prompt && px->ft_n_prompt ? TMAP_OK
                                                            : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < px->n && !st; i++) {
        char *text = NULL;
        st = layout(px, NULL, NULL, 0, &px->items[i].s, &text, err);
        if (!st)
            st = tmap_model_tokenize_prompt(px->model, text, px->p.tmpl, &px->ft_prompt[i], &px->ft_n_prompt[i],
                                            err);
        free(text);
    }
    if (st)
        free_ft_prompts(px);
    return st;
}

/* The copy the fine-tune proxy trains: the proxy's model as loaded, with
 * its weights in memory of its own and a context per sequence as long as
 * the longest tiny item (in llama.cpp's multiples of 256), not the
 * proxy's: the copy scores bare queries, and its cache is held while it
 * trains. */
static enum tmap_status load_ft_model(struct tmap_proxy *px, struct tmap_error *err)
{
    if (px->ft_model)
        return TMAP_OK;
    enum tmap_status st = ft_prompts(px, err);
    if (st)
        return st;
    struct tmap_model_info info;
    tmap_model_get_info(px->model, &info);
    int32_t longest = 1;
    for (size_t i = 0; i < px->n; i++)
        if (px->ft_n_prompt[i] + px->items[i].n_answer > longest)
            longest = px->ft_n_prompt[i] + px->items[i].n_answer;
    int32_t n_ctx = (longest + 255) / 256 * 256;
    struct tmap_model_params mp = *tmap_model_load_params(px->model);
    mp.n_ctx = n_ctx < info.n_ctx ? n_ctx : info.n_ctx; /* an item past the proxy's is skipped there too */
    struct tmap_tensor_spec *trains = NULL;
    st = tmap_tensor_spec_parse(px->p.ft_layers, "--train-layers", &trains, err);
    if (!st)
        st = tmap_model_load_to_train(&mp, trains, &px->ft_model, err);
    tmap_tensor_spec_free(trains);
    return st;
}

/* What a draw's judge fills in. */
struct ft_judging {
    struct tmap_proxy *px;
    double            *values;   /* per tiny item */
    uint64_t           n_tokens; /* decoded to judge */
};

/* Each tiny item's answer under the trained model, after its bare query. */
static enum tmap_status score_tuned(struct tmap_model *tuned, void *user_data, struct tmap_error *err)
{
    struct ft_judging *j = user_data;
    struct tmap_proxy *px = j->px;
    struct tmap_logprob_request *req = calloc(px->n ? px->n : 1, sizeof *req);
    struct tmap_logprob_result *res = calloc(px->n ? px->n : 1, sizeof *res);
    enum tmap_status st = req && res ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < px->n && !st; i++) {
        req[i].prompt = px->ft_prompt[i];
        req[i].n_prompt = px->ft_n_prompt[i];
        req[i].response = px->items[i].answer;
        req[i].n_response = px->items[i].n_answer;
    }
    struct tmap_model_counters before, after;
    tmap_model_get_counters(tuned, &before);
    if (!st)
        st = tmap_model_logprob(tuned, req, px->n, res, err);
    for (size_t i = 0; i < px->n && !st; i++)
        j->values[i] = res[i].n_tokens > 0 ? res[i].sum_logprob / res[i].n_tokens : NAN;
    tmap_model_get_counters(tuned, &after);
    j->n_tokens += after.n_tokens_decoded - before.n_tokens_decoded;
    free(req);
    free(res);
    return st;
}

/* One draw of the fine-tune proxy: ft_records records of rows, drawn with
 * seed (which also orders the training), train the copy of the model; the
 * value is the tiny set's weighted mean log-probability per answer token
 * under it, as the ICL proxy's loglik with no demonstrations. */
static enum tmap_status eval_finetune_draw(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                           size_t n_rows, uint64_t seed, double *value, size_t *n_skipped,
                                           uint64_t *n_tokens, struct tmap_error *err)
{
    size_t k = px->p.ft_records < n_rows ? px->p.ft_records : n_rows;
    size_t *pick = malloc(k * sizeof *pick);
    double *values = calloc(px->n ? px->n : 1, sizeof *values);
    enum tmap_status st = pick && values ? load_ft_model(px, err) : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    struct ft_judging judging = { .px = px, .values = values };
    if (!st) {
        /* The ICL context idles while the copy trains; a later ICL
         * evaluation, or scoring, opens a fresh one. */
        tmap_model_release_context(px->model);
        k = tmap_random_sample(rows, n_rows, k, seed, pick);
        struct tmap_finetune_params fp = tmap_finetune_default_params();
        fp.model = *tmap_model_load_params(px->ft_model);
        fp.model.n_ctx = ft_window(px->model);
        fp.n_epochs = px->p.ft_epochs;
        fp.lr = px->p.ft_lr;
        fp.val_split = 0.0f;
        fp.seed = seed;
        fp.rows = pick;
        fp.n_rows = k;
        fp.tmpl = px->p.tmpl; /* train in the layout the tiny set is read in */
        fp.train_layers = px->p.ft_layers;
        struct tmap_finetune_result r;
        st = ft_train_judge(px->ft_model, demos, &fp, &r, score_tuned, &judging, err);
        if (!st)
            *n_tokens += (uint64_t)r.n_train_windows * (uint64_t)r.n_ctx + judging.n_tokens;
    }
    if (st && px->ft_model) { /* its weights may be half trained: the next draw loads them afresh */
        tmap_model_free(px->ft_model);
        px->ft_model = NULL;
    }
    double mean = st ? NAN : tiny_mean(px, values, n_skipped);
    if (!st && isnan(mean))
        st = tmap_fail(err, TMAP_ERR_DATA, "no tiny item fits the model's context");
    *value = st ? NAN : mean;
    free(pick);
    free(values);
    return st;
}

/* The memo key: everything the value depends on. For the top policy only
 * the k demonstrations chosen matter, so two subsets with the same top k
 * share one value; otherwise the whole subset does. Either way the key
 * covers the rows a draw may use, those left after without_tiny_copies:
 * keyed on the subset as given, two subsets whose top k differ only
 * behind a copy would share a value, and a value a store kept from before
 * copies were left out (drawn with them) would be served again. A subset
 * without copies keeps its key. */
static enum tmap_status memo_key(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                 size_t n_rows, const double *scores, char out[33], struct tmap_error *err)
{
    size_t *kept;
    enum tmap_status st = without_tiny_copies(px, demos, &rows, &n_rows, &kept, err);
    if (st)
        return st;
    struct tmap_model_info info;
    tmap_model_get_info(px->model, &info);
    size_t *top = calloc((size_t)px->p.k, sizeof *top);
    XXH3_state_t *h = XXH3_createState();
    if (!top || !h) {
        free(top);
        free(kept);
        XXH3_freeState(h);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory keying a proxy value");
    }
    size_t n = n_rows;
    const size_t *ids = rows;
    if (px->p.policy == TMAP_DEMOS_TOP) {
        n = pick_top(rows, n_rows, scores, (size_t)px->p.k, top);
        ids = top;
    }
    XXH3_128bits_reset(h);
    int32_t config[] = { 1 /* key version */, px->p.k, (int32_t)px->p.policy, (int32_t)px->p.metric,
                         (int32_t)px->p.tmpl, (int32_t)px->p.draws, px->p.max_tokens };
    XXH3_128bits_update(h, config, sizeof config);
    /* Chat values since the response is read in place (as the score keys'
     * "chat2"); plain values keep their keys. */
    if (px->p.tmpl == TMAP_TEMPLATE_CHAT)
        XXH3_128bits_update(h, "chat2", 5);
    /* The fine-tune proxy's settings join the key; ICL values keep theirs. */
    if (px->p.kind == TMAP_PROXY_FINETUNE) {
        int32_t ft[] = { (int32_t)px->p.kind, (int32_t)px->p.ft_records, px->p.ft_epochs };
        XXH3_128bits_update(h, ft, sizeof ft);
        XXH3_128bits_update(h, &px->p.ft_lr, sizeof px->p.ft_lr);
        /* Chat values since the short fine-tune trains in the chat layout
         * too (it trained plain records before); plain values keep theirs. */
        if (px->p.tmpl == TMAP_TEMPLATE_CHAT)
            XXH3_128bits_update(h, "ftchat", 6);
        /* Some tensors trained; every one, as before, keeps its keys. */
        if (px->p.ft_layers && *px->p.ft_layers) {
            XXH3_128bits_update(h, "ftlayers", 8);
            XXH3_128bits_update(h, px->p.ft_layers, strlen(px->p.ft_layers) + 1);
        }
    }
    /* One slice decodes as the proxy always did: its values keep their keys. */
    if (px->p.slices > 1 && px->p.kind == TMAP_PROXY_ICL) {
        uint64_t slices = px->p.slices;
        XXH3_128bits_update(h, "slices", 6);
        XXH3_128bits_update(h, &slices, sizeof slices);
    }
    /* One group draws as the proxy always drew: its values keep their keys. */
    if (n_groups(px) > 1) {
        int32_t groups = (int32_t)n_groups(px);
        XXH3_128bits_update(h, &groups, sizeof groups);
    }
    XXH3_128bits_update(h, &px->p.seed, sizeof px->p.seed);
    XXH3_128bits_update(h, info.fingerprint, 32);
    XXH3_128bits_update(h, px->tiny_hash, sizeof px->tiny_hash);
    for (size_t i = 0; i < n; i++) {
        struct tmap_record rec;
        tmap_pool_record(demos, ids[i], &rec);
        XXH3_128bits_update(h, rec.hash, sizeof rec.hash);
    }
    XXH128_hash_t d = XXH3_128bits_digest(h);
    XXH3_freeState(h);
    free(top);
    free(kept);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)d.high64, (unsigned long long)d.low64);
    return TMAP_OK;
}

static enum tmap_status embed_demos(struct tmap_proxy *px, const struct tmap_pool *demos, struct tmap_error *err)
{
    if (px->emb_pool == demos)
        return TMAP_OK;
    free(px->demo_emb);
    px->demo_emb = NULL;
    bool *ok = NULL;
    int32_t dim;
    enum tmap_status st = tmap_embed_pool(demos, px->model, px->p.tmpl, px->p.store_path, &px->demo_emb, &ok, &dim, err);
    free(ok);
    px->emb_pool = st ? NULL : demos;
    return st;
}

bool proxy_splits(const struct tmap_proxy *px)
{
    return px->p.kind == TMAP_PROXY_ICL && px->p.slices > 1;
}

void proxy_set_collective(struct tmap_proxy *px, bool collective)
{
    px->collective = collective && proxy_splits(px);
}

bool proxy_memo_get(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows, size_t n_rows,
                    const double *scores, double *value)
{
    if (!px->store || n_rows == 0)
        return false;
    char key[33];
    struct tmap_error ignored; /* no key, no value: proxy_compute meets the same error and reports it */
    return !memo_key(px, demos, rows, n_rows, scores, key, &ignored) && tmap_store_get_proxy(px->store, key, value);
}

enum tmap_status proxy_memo_put(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                size_t n_rows, const double *scores, double value, struct tmap_error *err)
{
    if (!px->store)
        return TMAP_OK;
    char key[33];
    enum tmap_status st = memo_key(px, demos, rows, n_rows, scores, key, err);
    return st ? st : tmap_store_put_proxy(px->store, key, value, err);
}

/* Draws an evaluation averages: the random policy's and the fine-tune
 * proxy's; top and knn choose the same demonstrations every time. */
static size_t n_draws(const struct tmap_proxy *px)
{
    return px->p.policy == TMAP_DEMOS_RANDOM || px->p.kind == TMAP_PROXY_FINETUNE ? px->p.draws : 1;
}

enum tmap_status tmap_proxy_count_demos(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                        size_t n_rows, const double *scores, struct tmap_proxy_counters *out,
                                        struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    if (px->p.kind == TMAP_PROXY_FINETUNE || n_rows == 0)
        return TMAP_OK;
    size_t *kept; /* as proxy_compute draws them */
    enum tmap_status st = without_tiny_copies(px, demos, &rows, &n_rows, &kept, err);
    if (!st && px->p.policy == TMAP_DEMOS_KNN)
        st = embed_demos(px, demos, err);
    for (size_t d = 0; d < n_draws(px) && !st; d++) {
        struct prompts pr = { 0 };
        st = build_prompts(px, demos, rows, n_rows, scores, px->p.seed + d, &pr, out, err);
        free_prompts(&pr, px->n);
    }
    free(kept);
    return st;
}

/* Below half of what was asked for, a draw judges a subset by a record or
 * two, and the search reads noise (docs/fidelity.md measured it on a
 * 512-token model that fits at most one GSM8K record beside an item: the
 * in-context proxy's ranking of subsets against real fine-tuning, Spearman
 * between -0.25 and +0.14 over four runs). */
bool tmap_proxy_demos_cramped(const struct tmap_proxy_counters *c)
{
    return c->n_prompts > 0 && 2 * c->n_demos < c->n_demos_wanted;
}

void tmap_proxy_describe_demos(const struct tmap_proxy_counters *c, int32_t n_ctx, char *buf, size_t size)
{
    if (c->n_prompts == 0) {
        snprintf(buf, size, "none laid out (the fine-tune proxy, or an empty subset)");
        return;
    }
    double held = (double)c->n_demos / (double)c->n_prompts, wanted = (double)c->n_demos_wanted / (double)c->n_prompts;
    int n = snprintf(buf, size, "%.2f of the %.3g asked for fit beside a tiny item (context %d tokens)", held, wanted,
                     n_ctx);
    if (c->n_demos == 0 && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ": none fit, so every tiny item is judged without demonstrations and "
                                            "every subset scores the same: give a longer context (-c) or use --proxy "
                                            "finetune");
    else if (tmap_proxy_demos_cramped(c) && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ": the proxy sees few of each subset's records (where measured, its "
                                            "ranking was no better than chance: docs/fidelity.md); a longer "
                                            "context (-c) or --proxy finetune sees more");
}

enum tmap_status tmap_proxy_eval(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                 size_t n_rows, const double *scores, double *value,
                                 struct tmap_proxy_stats *stats, struct tmap_error *err)
{
    double t0 = tmap_now_seconds();
    *value = NAN;
    if (n_rows == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "no demonstrations to draw from (an empty subset)");
    if (proxy_memo_get(px, demos, rows, n_rows, scores, value)) {
        if (stats)
            *stats = (struct tmap_proxy_stats){ .from_memo = true, .seconds = tmap_now_seconds() - t0 };
        return TMAP_OK;
    }
    enum tmap_status st = proxy_compute(px, demos, rows, n_rows, scores, value, stats, err);
    if (!st)
        st = proxy_memo_put(px, demos, rows, n_rows, scores, *value, err);
    if (stats)
        stats->seconds = tmap_now_seconds() - t0;
    return st;
}

enum tmap_status proxy_compute(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                               size_t n_rows, const double *scores, double *value, struct tmap_proxy_stats *stats,
                               struct tmap_error *err)
{
    struct tmap_proxy_stats local = { 0 };
    double t0 = tmap_now_seconds();
    *value = NAN;
    if (n_rows == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "no demonstrations to draw from (an empty subset)");
    size_t *kept;
    enum tmap_status st = without_tiny_copies(px, demos, &rows, &n_rows, &kept, err);
    if (st)
        return st;
    struct tmap_model_counters before, after;
    tmap_model_get_counters(px->model, &before);
    bool finetune = px->p.kind == TMAP_PROXY_FINETUNE;
    if (px->p.policy == TMAP_DEMOS_KNN && !finetune)
        st = embed_demos(px, demos, err);
    size_t draws = n_draws(px);
    double sum = 0.0;
    uint64_t ft_tokens = 0;
    for (size_t d = 0; d < draws && !st; d++) {
        double v;
        st = finetune ? eval_finetune_draw(px, demos, rows, n_rows, px->p.seed + d, &v, &local.n_skipped, &ft_tokens,
                                           err)
                      : eval_draw(px, demos, rows, n_rows, scores, px->p.seed + d, &v, &local.n_skipped, err);
        sum += v;
    }
    free(kept);
    if (st)
        return st;
    *value = sum / (double)draws;
    tmap_model_get_counters(px->model, &after);
    local.n_tokens = after.n_tokens_decoded - before.n_tokens_decoded + ft_tokens;
    local.seconds = tmap_now_seconds() - t0;
    if (stats)
        *stats = local;
    return TMAP_OK;
}
