/*
 * score.c - `tmap score`: every indicator of every pool sample, batched,
 * stored, resumable.
 *
 * Second stage of the pipeline (data -> model -> indicators -> proxy ->
 * search -> select). The pool is walked in batches of batch_samples; for
 * each batch:
 *   1. what the store already has is read back, and only the rest is
 *      computed (a rerun on the same inputs decodes nothing);
 *   2. text indicators are computed directly;
 *   3. model work is gathered into a few request lists and each list goes
 *      to tmap_model_logprob in one call, which packs many sequences into
 *      every llama_decode: the main pass (prompt + response: loss, length
 *      and, when the target model embeds, the embedding), the ifd pass
 *      (BOS + response), the judge's rating prompts, and the embedder's
 *      pass when it is another model. No sample is decoded more often than
 *      its indicators need;
 *   4. everything computed is written in one store transaction, so a
 *      killed run loses at most the batch in flight.
 * Diversity and relevance depend on the whole pool; they are computed at
 * the end from the embeddings (stored per sample) and never stored.
 *
 * Distributed (params.distributed under mpirun; docs/distributed.md;
 * score_dist.c, with scorer.h the state both files share): the batches
 * are shared out by their estimated cost (plan_owners), and
 * every rank sends what it computed to rank 0, the one store writer, which
 * stores the batches in pool order, each in its own transaction as above,
 * taking the others' between two of its own; a killed job loses only the
 * batches in flight. Batches are the same rows at any number of ranks, so
 * each llama_decode sees the same sequences and the values are the same
 * bits as a single process's (a sample's log-probabilities move by ~1e-6
 * with the other sequences of its decode call: model.h). For the same
 * reason, a sample whose content already appeared in an earlier batch is
 * never decoded again: its values are copied from that first row, so what
 * a batch decodes depends on the store's state at the start only, not on
 * how far the other ranks have got.
 */
#include "data/copies.h"
#include "util/clock.h"
#include "dist/dist.h"
#include "indicators/ann.h"
#include "indicators/neighbors.h"
#include "indicators/rating.h"
#include "indicators/scorer.h"
#include "indicators/scores.h"
#include "indicators/text.h"
#include "model/model.h"
#include "task/answer.h"
#include "store/store.h"
#include "util/error.h"
#include "util/fault.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tmap_score_params tmap_score_default_params(void)
{
    struct tmap_score_params p = {
        .indicators    = TMAP_IND_DEFAULT,
        .tmpl          = TMAP_TEMPLATE_PLAIN,
        .knn_k         = 10,
        .ann_min_rows  = 50000,
        .relevance_m   = 5,
        .batch_samples = 64,
    };
    return p;
}

void scorer_notice(const struct scorer *sc, const char *fmt, ...)
{
    if (!sc->p->notice)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc->p->notice(msg, sc->p->notice_user_data);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

static const char *template_name(enum tmap_template t)
{
    /* "chat2": since the response is read in place after the generation
     * prompt (tmap_model_tokenize_response), values stored under "chat"
     * came from other tokens and must not be served. */
    return t == TMAP_TEMPLATE_CHAT ? "chat2" : "plain";
}

/* Store keys say which model computed a value and how it read the sample:
 * the same GGUF under another template gives other numbers. */
static void make_keys(struct scorer *sc)
{
    struct tmap_model_info mi, ji, ei;
    tmap_model_get_info(sc->model, &mi);
    tmap_model_get_info(sc->judge, &ji);
    tmap_model_get_info(sc->embedder, &ei);
    sc->tmpl = tmap_model_layout(&mi, sc->p->tmpl);
    enum tmap_template et = sc->embedder == sc->model ? sc->tmpl : TMAP_TEMPLATE_PLAIN;
    snprintf(sc->key_model, sizeof sc->key_model, "%s/%s", mi.fingerprint, template_name(sc->tmpl));
    snprintf(sc->key_judge, sizeof sc->key_judge, "%s/rating-v1", ji.fingerprint);
    /* "e2": embeddings pool the hidden states of the scored positions; the
     * version keeps vectors of another definition out of the same store. */
    snprintf(sc->key_embed, sizeof sc->key_embed, "%s/%s/e2", ei.fingerprint, template_name(et));
    sc->dim = ei.n_embd;
}

static const char *key_for(const struct scorer *sc, enum tmap_indicator ind)
{
    if (BIT(ind) & TEXT_ONLY)
        return "";
    if (BIT(ind) & RATINGS)
        return sc->key_judge;
    return sc->key_model;
}

/* ------------------------------------------------------------------------ */
/* Reading a batch and what the store has                                   */
/* ------------------------------------------------------------------------ */

double *scorer_cell(struct target *t, size_t row, enum tmap_indicator ind)
{
    return &tmap_scores_column(t->scores, (size_t)ind)[row];
}

void scorer_lookup_stored(struct scorer *sc, struct target *t, struct item *it)
{
    /* A row that repeats an earlier one, in an earlier batch or in this
     * one, is not decoded: scorer_finish_batch copies the first's values,
     * computed by then. Decoded apart (beside other sequences in a
     * micro-batch) the two would differ in the last digits, and the store,
     * keyed by content, would serve a rerun the later one's for both. */
    if (t->first[it->row] != it->row) {
        it->copy = true;
        return;
    }
    for (int j = 0; j < TMAP_IND_COUNT; j++) {
        if (!(t->mask & BIT(j) & PER_SAMPLE))
            continue;
        double v;
        if (sc->store && tmap_store_get_value(sc->store, key_for(sc, (enum tmap_indicator)j), it->rec.hash,
                                              tmap_indicator_name((enum tmap_indicator)j), &v))
            *scorer_cell(t, it->row, (enum tmap_indicator)j) = v;
        else
            it->missing |= BIT(j);
    }
    if (!t->embed)
        return;
    float *row = t->emb + it->row * (size_t)sc->dim;
    if (sc->store && tmap_store_get_embedding(sc->store, sc->key_embed, it->rec.hash, row, sc->dim)) {
        t->has_emb[it->row] = true;
        return;
    }
    /* A sample the target model skipped (too long) has a stored NaN loss and
     * no embedding: asking again would only skip it again. */
    double loss;
    bool known_skip = sc->embedder == sc->model && sc->store &&
                      tmap_store_get_value(sc->store, sc->key_model, it->rec.hash, "loss", &loss) && isnan(loss);
    it->want_emb = !known_skip;
}

static void free_item(struct item *it)
{
    tmap_sample_free(&it->s);
    free(it->prompt);
    free(it->response);
    free(it->rating[0]);
    free(it->rating[1]);
    free(it->eprompt);
    free(it->eresponse);
    free(it->token_lp);
}

/* Prompt (with BOS) and response tokens of a sample as `model` reads it. */
static enum tmap_status tokenize_sample(struct tmap_model *model, enum tmap_template tmpl,
                                        const struct tmap_sample *s, int32_t **prompt, int32_t *n_prompt,
                                        int32_t **response, int32_t *n_response, struct tmap_error *err)
{
    char *text;
    enum tmap_status st = tmap_model_format_prompt(model, s, tmpl, &text, NULL, err);
    if (st)
        return st;
    st = tmap_model_tokenize_prompt(model, text, tmpl, prompt, n_prompt, err);
    free(text);
    if (!st)
        st = tmap_model_tokenize_response(model, s, tmpl, response, n_response, err);
    return st;
}

/* Does the sample go through the target model (loss, ifd, support, or its
 * embedding)? length alone only tokenizes it: a pool scored for length
 * and the text indicators decodes nothing. */
static bool needs_main_pass(const struct scorer *sc, const struct item *it)
{
    return (it->missing & DECODED) || (it->want_emb && sc->embedder == sc->model);
}

/* support: which response tokens spell the answer the response marks
 * ("#### 72", "The answer is 72"). The tokens end where the response's text
 * ends (tmap_model_tokenize_response), so their bytes are counted back from
 * there: a leading space SentencePiece adds to the first token moves
 * nothing. A token that straddles the answer's first byte counts as the
 * answer's (a BPE token " 72" holds the space before it). */
static enum tmap_status find_answer_tokens(struct scorer *sc, struct item *it, struct tmap_error *err)
{
    it->answer_from = it->answer_to = 0;
    size_t begin, end, len = strlen(it->s.response);
    if (it->n_response == 0 || !tmap_marked_answer_span(it->s.response, &begin, &end))
        return TMAP_OK;
    int32_t *bytes = malloc((size_t)it->n_response * sizeof *bytes);
    it->token_lp = calloc((size_t)it->n_response, sizeof *it->token_lp);
    if (!bytes || !it->token_lp) {
        free(bytes);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the answer of sample %zu", it->row + 1);
    }
    enum tmap_status st = tmap_model_piece_bytes(sc->model, it->response, it->n_response, bytes, err);
    size_t at_end = len; /* byte where token i ends, walking back from the last */
    int32_t from = it->n_response, to = it->n_response;
    for (int32_t i = it->n_response - 1; !st && i >= 0; i--) {
        size_t at_start = (size_t)bytes[i] > at_end ? 0 : at_end - (size_t)bytes[i];
        if (at_start >= end)
            to = i; /* after the answer */
        else if (at_end > begin)
            from = i; /* covers some of it */
        else
            break;
        at_end = at_start;
    }
    free(bytes);
    if (!st && from < to) {
        it->answer_from = from;
        it->answer_to = to;
    }
    return st;
}

static enum tmap_status prepare_item(struct scorer *sc, struct item *it, struct tmap_error *err)
{
    enum tmap_status st = TMAP_OK;
    it->main_done = needs_main_pass(sc, it);
    it->support = NAN;
    if (it->main_done)
        st = tokenize_sample(sc->model, sc->tmpl, &it->s, &it->prompt, &it->n_prompt, &it->response,
                             &it->n_response, err);
    else if (it->missing & BIT(TMAP_IND_LENGTH)) /* counts the response's tokens: the prompt's are not needed */
        st = tmap_model_tokenize_response(sc->model, &it->s, sc->tmpl, &it->response, &it->n_response, err);
    if (!st && it->main_done && (it->missing & BIT(TMAP_IND_SUPPORT)))
        st = find_answer_tokens(sc, it, err);
    for (int r = 0; r < 2 && !st; r++) {
        enum tmap_indicator ind = r == 0 ? TMAP_IND_QUALITY : TMAP_IND_COMPLEXITY;
        if (it->missing & BIT(ind))
            st = tmap_rater_prompt(&sc->rater, &it->s, ind, &it->rating[r], &it->n_rating[r], err);
    }
    if (!st && it->want_emb && sc->embedder != sc->model)
        st = tokenize_sample(sc->embedder, TMAP_TEMPLATE_PLAIN, &it->s, &it->eprompt, &it->n_eprompt,
                             &it->eresponse, &it->n_eresponse, err);
    return st;
}

static void compute_text(struct target *t, struct item *it)
{
    const char *r = it->s.response;
    if (it->missing & BIT(TMAP_IND_STEPS))
        *scorer_cell(t, it->row, TMAP_IND_STEPS) = tmap_indicator_steps(r);
    if (it->missing & BIT(TMAP_IND_LEXICAL))
        *scorer_cell(t, it->row, TMAP_IND_LEXICAL) = tmap_indicator_mtld(r);
    if (it->missing & BIT(TMAP_IND_NUMERACY))
        *scorer_cell(t, it->row, TMAP_IND_NUMERACY) = tmap_indicator_numeracy(r);
    if (it->missing & BIT(TMAP_IND_COVERAGE))
        *scorer_cell(t, it->row, TMAP_IND_COVERAGE) = tmap_indicator_coverage(it->s.prompt, r);
    it->computed |= it->missing & TEXT_ONLY;
}

/* The text indicators (with text) and the tokens of every item of a batch.
 * Items are independent, and on a pool scored for length and the text
 * indicators alone this is the whole cost, so the model's threads share
 * them (llama.cpp's tokenizers are safe to call from several threads). A
 * thread stops at its first failure; the earliest failing item's error is
 * the one reported, as a loop in order would report it. */
static enum tmap_status prepare_batch(struct scorer *sc, struct target *t, struct item *items, size_t n,
                                      bool text)
{
    int n_threads = sc->model->n_threads > 1 ? sc->model->n_threads : 1;
    struct tmap_error *errs = calloc((size_t)n_threads, sizeof *errs);
    if (!errs)
        return tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory preparing a batch of %zu samples", n);
    size_t first_failed = n;
#pragma omp parallel num_threads(n_threads)
    {
        int me = omp_get_thread_num();
        size_t failed = n;
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            if (failed < n)
                continue; /* chunks come in order: nothing later can fail first */
            if (text)
                compute_text(t, &items[i]);
            if (prepare_item(sc, &items[i], &errs[me]))
                failed = i;
        }
#pragma omp critical
        if (failed < first_failed) {
            first_failed = failed;
            *sc->err = errs[me];
        }
    }
    free(errs);
    return first_failed < n ? sc->err->status : TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Model work: request lists, one tmap_model_logprob call each              */
/* ------------------------------------------------------------------------ */

enum pass { PASS_MAIN, PASS_UNCOND, PASS_QUALITY, PASS_COMPLEXITY, PASS_EMBED };

struct request_list {
    struct tmap_logprob_request *req;
    struct tmap_logprob_result  *res;
    struct item                **item;
    enum pass                   *pass;
    size_t                       n;
};

static bool list_alloc(struct request_list *l, size_t cap)
{
    memset(l, 0, sizeof *l);
    l->req  = calloc(cap, sizeof *l->req);
    l->res  = calloc(cap, sizeof *l->res);
    l->item = calloc(cap, sizeof *l->item);
    l->pass = calloc(cap, sizeof *l->pass);
    return l->req && l->res && l->item && l->pass;
}

static void list_free(struct request_list *l)
{
    free(l->req);
    free(l->res);
    free(l->item);
    free(l->pass);
}

static struct tmap_logprob_request *list_add(struct request_list *l, struct item *it, enum pass pass)
{
    l->item[l->n] = it;
    l->pass[l->n] = pass;
    memset(&l->req[l->n], 0, sizeof l->req[l->n]);
    return &l->req[l->n++];
}

/* Lists per model and per kind of pass: embedding requests make
 * llama.cpp output every position, so they never share a call with plain
 * scoring. */
enum { LIST_MAIN_EMB, LIST_MAIN, LIST_UNCOND, LIST_RATING, LIST_EMBEDDER, N_LISTS };

static void add_requests(struct scorer *sc, struct target *t, struct item *it,
                         struct request_list lists[N_LISTS])
{
    if (needs_main_pass(sc, it)) {
        bool emb = it->want_emb && sc->embedder == sc->model;
        struct tmap_logprob_request *q = list_add(&lists[emb ? LIST_MAIN_EMB : LIST_MAIN], it, PASS_MAIN);
        *q = (struct tmap_logprob_request){ .prompt = it->prompt, .n_prompt = it->n_prompt,
                                           .response = it->response, .n_response = it->n_response,
                                           .embedding = emb ? t->emb + it->row * (size_t)sc->dim : NULL,
                                           .token_logprobs = it->token_lp };
    }
    if (it->missing & BIT(TMAP_IND_IFD)) {
        /* ifd's denominator: the response after BOS alone. */
        struct tmap_logprob_request *q = list_add(&lists[LIST_UNCOND], it, PASS_UNCOND);
        *q = (struct tmap_logprob_request){ .prompt = it->prompt, .n_prompt = 1,
                                           .response = it->response, .n_response = it->n_response };
    }
    for (int r = 0; r < 2; r++) {
        if (!it->rating[r])
            continue;
        struct tmap_logprob_request *q =
            list_add(&lists[LIST_RATING], it, r == 0 ? PASS_QUALITY : PASS_COMPLEXITY);
        *q = (struct tmap_logprob_request){ .prompt = it->rating[r], .n_prompt = it->n_rating[r],
                                           .choices = sc->rater.tokens, .n_choices = TMAP_RATING_LEVELS,
                                           .choice_logprobs = it->rating_lp[r] };
    }
    if (it->eprompt) {
        struct tmap_logprob_request *q = list_add(&lists[LIST_EMBEDDER], it, PASS_EMBED);
        *q = (struct tmap_logprob_request){ .prompt = it->eprompt, .n_prompt = it->n_eprompt,
                                           .response = it->eresponse, .n_response = it->n_eresponse,
                                           .embedding = t->emb + it->row * (size_t)sc->dim };
    }
}

static double mean_loss(const struct tmap_logprob_result *r)
{
    return r->fit == TMAP_FIT_SKIPPED || r->n_tokens == 0 ? NAN : -r->sum_logprob / r->n_tokens;
}

static void take_result(struct scorer *sc, struct item *it, enum pass pass,
                        const struct tmap_logprob_result *r)
{
    bool skipped = r->fit == TMAP_FIT_SKIPPED;
    switch (pass) {
    case PASS_MAIN:
        it->loss = mean_loss(r);
        it->skipped = skipped;
        if (!skipped && it->answer_from < it->answer_to) {
            it->support = 0.0;
            for (int32_t i = it->answer_from; i < it->answer_to; i++)
                it->support += it->token_lp[i];
        }
        it->emb_done = !skipped && it->want_emb && sc->embedder == sc->model;
        break;
    case PASS_UNCOND:
        it->loss_uncond = mean_loss(r);
        break;
    case PASS_QUALITY:
    case PASS_COMPLEXITY:
        if (skipped)
            it->rating_lp[pass == PASS_QUALITY ? 0 : 1][0] = NAN;
        break;
    case PASS_EMBED:
        it->emb_done = !skipped;
        break;
    }
}

static enum tmap_status run_list(struct scorer *sc, struct tmap_model *model, struct request_list *l)
{
    if (l->n == 0)
        return TMAP_OK;
    enum tmap_status st = tmap_model_logprob(model, l->req, l->n, l->res, sc->err);
    for (size_t i = 0; !st && i < l->n; i++)
        take_result(sc, l->item[i], l->pass[i], &l->res[i]);
    return st;
}

/* Turns pass results into indicator values. */
static void derive_values(struct target *t, struct item *it)
{
    if (it->missing & BIT(TMAP_IND_LOSS))
        *scorer_cell(t, it->row, TMAP_IND_LOSS) = it->loss;
    if (it->missing & BIT(TMAP_IND_IFD))
        *scorer_cell(t, it->row, TMAP_IND_IFD) = it->loss_uncond > 0 ? it->loss / it->loss_uncond : NAN;
    if (it->missing & BIT(TMAP_IND_LENGTH))
        *scorer_cell(t, it->row, TMAP_IND_LENGTH) = it->n_response;
    if (it->missing & BIT(TMAP_IND_SUPPORT))
        *scorer_cell(t, it->row, TMAP_IND_SUPPORT) = it->support;
    for (int r = 0; r < 2; r++) {
        enum tmap_indicator ind = r == 0 ? TMAP_IND_QUALITY : TMAP_IND_COMPLEXITY;
        if (it->missing & BIT(ind))
            *scorer_cell(t, it->row, ind) = isnan(it->rating_lp[r][0]) ? NAN : tmap_rater_expected(it->rating_lp[r]);
    }
    it->computed |= it->missing & (MAIN_PASS | RATINGS);
    if (it->emb_done)
        t->has_emb[it->row] = true;
}

/* ------------------------------------------------------------------------ */
/* One batch                                                                */
/* ------------------------------------------------------------------------ */

/* Did this batch compute anything for the item that the store lacks? */
static bool it_has_news(const struct item *it)
{
    return it->computed || it->emb_done || it->main_done;
}

static enum tmap_status store_item(struct scorer *sc, struct target *t, const struct item *it)
{
    enum tmap_status st = TMAP_OK;
    for (int j = 0; j < TMAP_IND_COUNT && !st; j++) {
        enum tmap_indicator ind = (enum tmap_indicator)j;
        if (it->computed & BIT(j))
            st = tmap_store_put_value(sc->store, key_for(sc, ind), it->rec.hash, tmap_indicator_name(ind),
                                      *scorer_cell(t, it->row, ind), sc->err);
    }
    /* The main pass's loss is kept even when only ifd was asked for: a
     * NaN there is how a rerun knows the sample does not fit. */
    if (!st && it->main_done && !(it->computed & BIT(TMAP_IND_LOSS)))
        st = tmap_store_put_value(sc->store, sc->key_model, it->rec.hash, "loss", it->loss, sc->err);
    if (!st && it->emb_done)
        st = tmap_store_put_embedding(sc->store, sc->key_embed, it->rec.hash,
                                      t->emb + it->row * (size_t)sc->dim, sc->dim, sc->err);
    return st;
}

static enum tmap_status store_batch(struct scorer *sc, struct target *t, struct item *items, size_t n)
{
    if (!sc->store)
        return TMAP_OK;
    enum tmap_status st = tmap_store_begin(sc->store, sc->err);
    for (size_t i = 0; i < n && !st; i++)
        if (it_has_news(&items[i]))
            st = store_item(sc, t, &items[i]);
    if (!st)
        return tmap_store_commit(sc->store, sc->err);
    tmap_store_rollback(sc->store);
    return st;
}

/* The model each request list goes to. */
static struct tmap_model *list_model(const struct scorer *sc, int list)
{
    return list == LIST_RATING ? sc->judge : list == LIST_EMBEDDER ? sc->embedder : sc->model;
}

/* Every request the items need, in their lists; the lists are allocated
 * here and freed by the caller (list_free) whatever is returned. */
static enum tmap_status build_lists(struct scorer *sc, struct target *t, struct item *items, size_t n,
                                    struct request_list lists[N_LISTS])
{
    bool ok = true;
    for (int k = 0; k < N_LISTS; k++)
        ok &= list_alloc(&lists[k], n * 2 + 1);
    if (!ok)
        return tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory scoring a batch");
    for (size_t i = 0; i < n; i++)
        add_requests(sc, t, &items[i], lists);
    return TMAP_OK;
}

static enum tmap_status model_work(struct scorer *sc, struct target *t, struct item *items, size_t n)
{
    struct request_list lists[N_LISTS];
    enum tmap_status st = build_lists(sc, t, items, n, lists);
    for (int k = 0; k < N_LISTS && !st; k++)
        st = run_list(sc, list_model(sc, k), &lists[k]);
    for (int k = 0; k < N_LISTS; k++)
        list_free(&lists[k]);
    return st;
}

static enum tmap_status load_items(struct scorer *sc, struct target *t, size_t begin,
                                   struct item *items, size_t n)
{
    /* The batch's lookups in one read transaction: a fifth of the time of
     * a pool scored for the text indicators went to each lookup's locking. */
    bool reading = !t->missing && tmap_store_begin_read(sc->store);
    enum tmap_status st = TMAP_OK;
    for (size_t i = 0; i < n && !st; i++) {
        struct item *it = &items[i];
        it->row = begin + i;
        tmap_pool_record(t->pool, it->row, &it->rec);
        st = tmap_pool_sample(t->pool, it->row, &it->s, sc->err);
        if (st)
            break;
        if (t->missing) {
            it->missing = t->missing[it->row];
            it->want_emb = t->flags[it->row] & FLAG_WANT_EMB;
            it->copy = t->flags[it->row] & FLAG_COPY;
        } else {
            scorer_lookup_stored(sc, t, it);
        }
    }
    if (reading)
        tmap_store_rollback(sc->store);
    return st;
}

/* Loads, computes and (for the computing rank) fills in one batch; the
 * items keep what scorer_finish_batch and the store need. */
static enum tmap_status compute_batch(struct scorer *sc, struct target *t, size_t begin, struct item *items,
                                      size_t n)
{
    enum tmap_status st = load_items(sc, t, begin, items, n);
    if (!st)
        st = prepare_batch(sc, t, items, n, t->scores != NULL);
    if (!st)
        st = model_work(sc, t, items, n);
    for (size_t i = 0; i < n && !st; i++)
        derive_values(t, &items[i]);
    return st;
}

/* Values of a row that repeats an earlier row's content: that row's. */
static void copy_first(struct scorer *sc, struct target *t, const struct item *it)
{
    size_t from = t->first[it->row];
    for (int j = 0; j < TMAP_IND_COUNT && t->scores; j++)
        if (t->mask & BIT(j) & PER_SAMPLE)
            *scorer_cell(t, it->row, (enum tmap_indicator)j) = *scorer_cell(t, from, (enum tmap_indicator)j);
    if (t->embed && t->has_emb[from]) {
        memcpy(t->emb + it->row * (size_t)sc->dim, t->emb + from * (size_t)sc->dim, (size_t)sc->dim * sizeof *t->emb);
        t->has_emb[it->row] = true;
    }
}

static bool response_is_empty(const struct tmap_pool *pool, size_t row)
{
    struct tmap_sample s;
    struct tmap_error ignored;
    if (tmap_pool_sample(pool, row, &s, &ignored) != TMAP_OK)
        return false;
    bool empty = s.response[0] == '\0';
    tmap_sample_free(&s);
    return empty;
}

/* Rank 0's side of a batch, computed here or received: copies, notices,
 * counts, and the store transaction. */
enum tmap_status scorer_finish_batch(struct scorer *sc, struct target *t, struct item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        if (it->copy)
            copy_first(sc, t, it);
        /* An empty response whose request also asked for an embedding is
         * decoded, not skipped (the embedding needs its prompt), yet it has
         * no loss: it is told like a skipped one. */
        bool empty_now = !it->skipped && (it->computed & BIT(TMAP_IND_LOSS)) && it->n_response == 0;
        /* One skipped before (its loss stored as NaN) is told again, so a
         * rerun from the store says what the first run said. */
        bool skipped_before = !it->skipped && !empty_now && !it_has_news(it) && (t->mask & BIT(TMAP_IND_LOSS)) &&
                              isnan(*scorer_cell(t, it->row, TMAP_IND_LOSS));
        if (!skipped_before && !it->skipped && !empty_now)
            continue;
        /* An empty response is told apart: no context would help it. The
         * pass that skipped it knows its token count (a rank that scored
         * the batch sends it); a rerun from the store reads the text again. */
        bool empty = it->skipped || empty_now ? it->n_response == 0 : response_is_empty(t->pool, it->row);
        sc->stats.n_skipped++;
        sc->stats.n_empty += empty;
        if (empty)
            scorer_notice(sc, "%s:%zu: sample %s: its response is empty: nothing to score, so its model indicators "
                          "are left empty", tmap_pool_path(t->pool), it->rec.line, it->rec.id);
        else if (skipped_before)
            scorer_notice(sc, "%s:%zu: sample %s: its response does not fit the context (so the store says); its model "
                   "indicators are left empty", tmap_pool_path(t->pool), it->rec.line, it->rec.id);
        else
            scorer_notice(sc, "%s:%zu: sample %s: %d response tokens do not fit the context; its model indicators are left empty",
                   tmap_pool_path(t->pool), it->rec.line, it->rec.id, it->n_response);
    }
    enum tmap_status st = store_batch(sc, t, items, n);
    for (size_t i = 0; i < n && t->scores; i++) {
        bool news = it_has_news(&items[i]);
        sc->stats.n_computed += news;
        sc->stats.n_copies += !news && items[i].copy;
        sc->stats.n_from_store += !news && !items[i].copy;
    }
    return st;
}

/* Computes one of this rank's batches; a rank other than 0 sends it to
 * rank 0, failed or not (rank 0 waits for every batch it is owed). */
enum tmap_status scorer_compute_own(struct scorer *sc, struct target *t, size_t begin, struct item *items, size_t n)
{
    double start = tmap_now_seconds();
    struct tmap_model_counters before = scorer_work_so_far(sc);
    enum tmap_status st;
    tmap_fault_slow("score-batch");
    if (!items)
        st = tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory scoring a batch of %zu", n);
    else if (tmap_fault_due("score-batch"))
        st = tmap_fail(sc->err, TMAP_ERR_MODEL, "samples %zu-%zu: failed on purpose (TMAP_FAULT)", begin + 1,
                       begin + n);
    else
        st = compute_batch(sc, t, begin, items, n);
    sc->busy += tmap_now_seconds() - start;
    sc->n_batches++;
    if (sc->rank != 0) {
        struct tmap_model_counters after = scorer_work_so_far(sc);
        enum tmap_status sent = scorer_send_batch(sc, t, items, n, st, after.n_tokens_decoded - before.n_tokens_decoded,
                                           after.n_decode_calls - before.n_decode_calls, false);
        st = st ? st : sent;
    }
    return st;
}

void scorer_free_items(struct item *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        free_item(&items[i]);
    free(items);
}

size_t scorer_batch_count(const struct scorer *sc, const struct target *t, size_t k)
{
    size_t n = tmap_pool_size(t->pool), b = sc->p->batch_samples;
    return n - k * b < b ? n - k * b : b;
}

/* One process: every batch in order, computed and stored. */
static enum tmap_status score_alone(struct scorer *sc, struct target *t, size_t n_batches)
{
    size_t n = tmap_pool_size(t->pool), b = sc->p->batch_samples;
    enum tmap_status st = TMAP_OK;
    for (size_t k = 0; k < n_batches && !st; k++) {
        size_t count = scorer_batch_count(sc, t, k);
        struct item *items = calloc(count, sizeof *items);
        st = scorer_compute_own(sc, t, k * b, items, count);
        if (!st)
            st = scorer_finish_batch(sc, t, items, count);
        scorer_free_items(items, count);
        if (!st)
            scorer_report_progress(sc, t->stage, k * b + count, n);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Whole runs                                                               */
/* ------------------------------------------------------------------------ */

/* Work done so far by every model this call uses, each counted once. */
struct tmap_model_counters scorer_work_so_far(const struct scorer *sc)
{
    struct tmap_model *models[3] = { sc->model, sc->judge != sc->model ? sc->judge : NULL,
                                     sc->embedder != sc->model && sc->embedder != sc->judge ? sc->embedder : NULL };
    struct tmap_model_counters sum = { 0 };
    for (int k = 0; k < 3; k++) {
        if (!models[k])
            continue;
        struct tmap_model_counters c;
        tmap_model_get_counters(models[k], &c);
        sum.n_tokens_decoded += c.n_tokens_decoded;
        sum.n_decode_calls += c.n_decode_calls;
    }
    return sum;
}

void scorer_report_progress(struct scorer *sc, const char *stage, size_t done, size_t total)
{
    if (!sc->p->progress)
        return;
    struct tmap_progress pr = { .stage = stage, .done = done, .total = total,
                                .n_tokens = scorer_work_so_far(sc).n_tokens_decoded - sc->work_at_start.n_tokens_decoded,
                                .seconds = tmap_now_seconds() - sc->t0 };
    sc->p->progress(&pr, sc->p->progress_user_data);
}

/* t->first: for each row, the first row with the same content hash. */
static enum tmap_status index_copies(struct scorer *sc, struct target *t)
{
    size_t n = tmap_pool_size(t->pool);
    t->first = malloc((n ? n : 1) * sizeof *t->first);
    if (!t->first || pool_find_copies(t->pool, NULL, t->first) == SIZE_MAX)
        return tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory indexing %zu samples", n);
    return TMAP_OK;
}

static enum tmap_status score_target(struct scorer *sc, struct target *t)
{
    size_t n = tmap_pool_size(t->pool), b = sc->p->batch_samples;
    size_t n_batches = (n + b - 1) / b;
    enum tmap_status failed = index_copies(sc, t);
    if (sc->size > 1)
        failed = scorer_score_distributed(sc, t, n_batches, failed); /* score_dist.c */
    else if (!failed)
        failed = score_alone(sc, t, n_batches);
    free(t->first);
    free(t->missing);
    free(t->flags);
    t->first = NULL;
    t->missing = NULL;
    t->flags = NULL;
    return failed;
}

/* Rows with an embedding, packed, and where each came from. When every row
 * has one, the packed rows are t->emb itself (*copied false): at a million
 * rows a copy would cost as much again as the embeddings. */
static float *packed_embeddings(const struct scorer *sc, const struct target *t, size_t **rows, size_t *n_rows,
                                bool *copied)
{
    size_t n = tmap_pool_size(t->pool), k = 0;
    size_t n_with = 0;
    for (size_t i = 0; i < n; i++)
        n_with += t->has_emb[i];
    *copied = n_with < n;
    float *out = *copied ? malloc((n ? n : 1) * (size_t)sc->dim * sizeof *out) : t->emb;
    *rows = malloc((n ? n : 1) * sizeof **rows);
    if (!out || !*rows) {
        if (*copied)
            free(out);
        free(*rows);
        *rows = NULL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!t->has_emb[i])
            continue;
        if (*copied)
            memcpy(out + k * (size_t)sc->dim, t->emb + i * (size_t)sc->dim, (size_t)sc->dim * sizeof *out);
        (*rows)[k++] = i;
    }
    *n_rows = k;
    return out;
}

/* Whether n rows are past --ann-min-rows, and so take diversity from the
 * approximate index when tmap has FAISS. */
static bool past_ann_threshold(const struct tmap_score_params *p, size_t n)
{
    return p->ann_min_rows > 0 && n >= p->ann_min_rows;
}

static bool use_ann(const struct tmap_score_params *p, size_t n)
{
    return TMAP_HAVE_FAISS && past_ann_threshold(p, n);
}

#if TMAP_HAVE_FAISS
/* Diversity from the approximate index, the queries split among the ranks:
 * every rank builds the same index from the same rows and seed (ann.h: the
 * same bits on any thread count), answers rows [n r / N, n (r+1) / N), and
 * the values are gathered in row order, so the result is the bits of one
 * process. Rank 0 alone holds the embeddings when this is called; the others
 * receive them (a million 64-wide rows: 256 MB each). A collective: every
 * rank calls it with the same n. */
static enum tmap_status ann_diversity(struct scorer *sc, const float *emb, size_t n, double *out)
{
    const struct tmap_score_params *p = sc->p;
    size_t row_floats = (size_t)sc->dim, begin = n * (size_t)sc->rank / (size_t)sc->size,
           end = n * (size_t)(sc->rank + 1) / (size_t)sc->size;
    float *mine = NULL; /* the rows received, on ranks > 0 */
    enum tmap_status st = TMAP_OK;
    if (sc->rank > 0 && !(mine = malloc(n * row_floats * sizeof *mine)))
        st = tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory for %zu embeddings of %d floats", n, sc->dim);
    if (sc->size > 1)
        st = dist_worst_status(st, sc->err);
    if (!st && sc->size > 1 && dist_bcast(sc->rank > 0 ? mine : (float *)emb, n * row_floats * sizeof *emb, 0))
        st = tmap_fail(sc->err, TMAP_ERR_IO, "could not share %zu embeddings among the ranks", n);
    struct tmap_ann_params ap = tmap_ann_default_params();
    ap.seed = p->ann_seed;
    struct tmap_ann *ann = NULL;
    double *all = out ? out : malloc((n ? n : 1) * sizeof *all); /* ranks > 0 gather too */
    double *part = sc->size == 1 ? all : malloc((end > begin ? end - begin : 1) * sizeof *part);
    if (!st && (!part || !all))
        st = tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory for %zu values", end - begin);
    if (!st)
        st = tmap_ann_build(sc->rank > 0 ? mine : emb, n, sc->dim, &ap, &ann, sc->err);
    if (!st && sc->rank == 0) { /* the values are approximate: say so, once */
        struct tmap_ann_params used;
        tmap_ann_get_params(ann, &used);
        scorer_notice(sc, "diversity of %zu samples from an approximate index (FAISS IVF-Flat, %zu lists, %zu probed; "
                   "--ann-min-rows %zu)", n, used.nlist, used.nprobe, p->ann_min_rows);
    }
    if (!st)
        st = tmap_ann_knn_mean_distance(ann, p->knn_k, begin, end, part, sc->err);
    tmap_ann_free(ann);
    if (sc->size > 1)
        st = dist_worst_status(st, sc->err);
    if (!st && sc->size > 1) {
        size_t *counts = malloc((size_t)sc->size * sizeof *counts);
        if (!counts)
            st = tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory");
        for (int r = 0; counts && r < sc->size; r++)
            counts[r] = n * (size_t)(r + 1) / (size_t)sc->size - n * (size_t)r / (size_t)sc->size;
        if (counts && dist_allgather_doubles(part, all, counts))
            st = tmap_fail(sc->err, TMAP_ERR_IO, "could not gather the diversity of %zu samples from the ranks", n);
        free(counts);
    }
    if (part != all)
        free(part);
    if (all != out)
        free(all);
    free(mine);
    return st;
}
#endif

/* Diversity of n packed rows: exact below p->ann_min_rows, else from an
 * approximate index when tmap has FAISS (docs/design.md section 2). The
 * exact path runs on rank 0 alone. */
static enum tmap_status diversity(struct scorer *sc, const float *emb, size_t n, double *out)
{
    const struct tmap_score_params *p = sc->p;
#if TMAP_HAVE_FAISS
    if (use_ann(p, n))
        return ann_diversity(sc, emb, n, out);
#else
    if (past_ann_threshold(p, n))
        scorer_notice(sc, "diversity: %zu rows and tmap was built without FAISS: the exact search costs "
                   "n^2 x dim (minutes past 100,000 rows, hours past a million)", n);
#endif
    return tmap_knn_mean_distance(emb, n, sc->dim, p->knn_k, out, sc->err);
}

/* Diversity and relevance from the embeddings rank 0 gathered. Every rank
 * calls it: the other ranks take a share of the approximate index's queries
 * (ann_diversity) and otherwise return at once. */
static enum tmap_status neighbour_indicators(struct scorer *sc, struct target *pool, struct target *val)
{
    size_t *rows = NULL, *vrows = NULL, n = 0, nv = 0;
    bool emb_copied = false, vemb_copied = false;
    float *emb = NULL, *vemb = NULL;
    double *out = NULL;
    enum tmap_status st = TMAP_OK;
    if (sc->rank == 0) {
        emb = packed_embeddings(sc, pool, &rows, &n, &emb_copied);
        vemb = val ? packed_embeddings(sc, val, &vrows, &nv, &vemb_copied) : NULL;
        out = malloc((n ? n : 1) * sizeof *out);
        if (!emb || !out || (val && !vemb))
            st = tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory for %zu embeddings", n);
    }
    bool want = (pool->mask & BIT(TMAP_IND_DIVERSITY)) != 0;
    if (sc->size > 1) {
        /* Rank 0 alone knows n, hence whether the ranks share the work. */
        st = dist_share_status(st, sc->err, 0);
        if (!st && dist_bcast(&n, sizeof n, 0))
            st = tmap_fail(sc->err, TMAP_ERR_IO, "could not share the number of embeddings among the ranks");
        bool shared = !st && want && use_ann(sc->p, n);
        if (sc->rank > 0)
            return shared ? diversity(sc, NULL, n, NULL) : st;
    }
    if (!st && want && n > 0) {
        st = diversity(sc, emb, n, out);
        for (size_t i = 0; !st && i < n; i++)
            *scorer_cell(pool, rows[i], TMAP_IND_DIVERSITY) = out[i];
    }
    if (!st && val && n > 0 && nv > 0) {
        st = tmap_topm_mean_similarity(emb, n, vemb, nv, sc->dim, sc->p->relevance_m, out, sc->err);
        for (size_t i = 0; !st && i < n; i++)
            *scorer_cell(pool, rows[i], TMAP_IND_RELEVANCE) = out[i];
    }
    if (emb_copied)
        free(emb);
    if (vemb_copied)
        free(vemb);
    free(rows);
    free(vrows);
    free(out);
    return st;
}

static enum tmap_status alloc_embeddings(struct scorer *sc, struct target *t)
{
    size_t n = tmap_pool_size(t->pool);
    t->emb = calloc((n ? n : 1) * (size_t)sc->dim, sizeof *t->emb);
    t->has_emb = calloc(n ? n : 1, sizeof *t->has_emb);
    if (!t->emb || !t->has_emb)
        return tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory for %zu embeddings of %d floats", n, sc->dim);
    return TMAP_OK;
}

static enum tmap_status check_score_params(const struct tmap_score_params *p, struct tmap_error *err)
{
    if (p->batch_samples < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "batch of %zu samples: must be at least 1", p->batch_samples);
    if (p->knn_k < 1 || p->relevance_m < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "k=%d and m=%d must be at least 1", p->knn_k, p->relevance_m);
    if ((p->indicators & ~TMAP_IND_ALL) || !p->indicators)
        return tmap_fail(err, TMAP_ERR_USAGE, "indicator mask 0x%x names no known indicator", p->indicators);
    return TMAP_OK;
}

/* Rank 0 alone opens the store: one store, one writer (plan_missing). */
static enum tmap_status open_store(struct scorer *sc)
{
    enum tmap_status st = TMAP_OK;
    if (sc->rank == 0)
        st = tmap_store_open(sc->p->store_path, &sc->store, sc->err);
    return sc->size > 1 ? dist_share_status(st, sc->err, 0) : st;
}

static enum tmap_status open_scorer(struct scorer *sc, struct tmap_model *model,
                                    const struct tmap_score_params *p, bool distributed, struct tmap_error *err)
{
    memset(sc, 0, sizeof *sc);
    sc->p = p;
    sc->err = err;
    sc->size = distributed ? dist_size() : 1;
    sc->rank = distributed ? dist_rank() : 0;
    sc->model = model;
    sc->judge = p->judge ? p->judge : model;
    sc->embedder = p->embedder ? p->embedder : model;
    sc->t0 = tmap_now_seconds();
    make_keys(sc);
    sc->work_at_start = scorer_work_so_far(sc);
    struct tmap_model_info mi;
    tmap_model_get_info(sc->model, &mi);
    char note[512];
    if (tmap_model_template_note(&mi, p->tmpl, note, sizeof note))
        scorer_notice(sc, "%s", note);
    enum tmap_status st = check_score_params(p, err);
    if (sc->size > 1)
        st = dist_share_status(st, err, 0);
    if (!st && p->store_path)
        st = open_store(sc);
    if (!st && (p->indicators & RATINGS)) {
        st = tmap_rater_init(&sc->rater, sc->judge, err);
        if (!st && !sc->rater.chat)
            scorer_notice(sc, "the judge model has no chat template: quality and complexity use a plain rating prompt");
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Distributed: every rank reads the same inputs                            */
/* ------------------------------------------------------------------------ */

/*
 * Each rank loads its own copy of the models, the pool and the validation
 * data (they must be readable on every node), and rank 0 files the values
 * another rank computes under its own records' hashes and its own models'
 * keys. A stale or reordered copy on one host would put wrong values under
 * right keys in the store, where no later run could tell them apart. So
 * before the first batch every rank compares what it was given with rank
 * 0's, and the first difference stops the run with the rank, the host and
 * what differs. Threads (-t) and devices may differ: they change the speed,
 * not the values.
 */
enum { N_INPUT_MODELS = 3, N_INPUT_DATA = 2, N_INPUT_OPTIONS = 7 };

struct inputs {
    char     key[N_INPUT_MODELS][48];  /* the store keys: target, judge, embedder */
    char     data[N_INPUT_DATA][33];   /* content fingerprints (they include the count) */
    uint64_t n_data[N_INPUT_DATA];     /* ... and the counts, for the message */
    int64_t  option[N_INPUT_OPTIONS];
};

static const char *const input_model[N_INPUT_MODELS] = { "target model (-m)", "judge model (--judge)", "embedding model (--embed-model)" };
static const char *const input_data[N_INPUT_DATA] = { "pool", "validation data" };
static const char *const input_option[N_INPUT_OPTIONS] = { "indicators (--indicators)", "context per sequence (-c)",
                                             "batch size (--batch-samples)", "neighbours (--knn)",
                                             "validation matches (--top-m)", "approximate index (--ann-min-rows)",
                                             "index seed" };

static void describe_inputs(const struct scorer *sc, const struct tmap_pool *pool, struct inputs *in)
{
    memset(in, 0, sizeof *in);
    snprintf(in->key[0], sizeof in->key[0], "%s", sc->key_model);
    snprintf(in->key[1], sizeof in->key[1], "%s", sc->key_judge);
    snprintf(in->key[2], sizeof in->key[2], "%s", sc->key_embed);
    const struct tmap_pool *data[N_INPUT_DATA] = { pool, sc->p->val };
    for (int d = 0; d < N_INPUT_DATA; d++) {
        in->n_data[d] = tmap_pool_size(data[d]);
        tmap_pool_fingerprint(data[d], NULL, tmap_pool_size(data[d]), in->data[d]);
    }
    struct tmap_model_info mi;
    tmap_model_get_info(sc->model, &mi);
    const struct tmap_score_params *p = sc->p;
    const int64_t option[N_INPUT_OPTIONS] = { p->indicators, mi.n_ctx, (int64_t)p->batch_samples, p->knn_k, p->relevance_m,
                          (int64_t)p->ann_min_rows, (int64_t)p->ann_seed };
    memcpy(in->option, option, sizeof option);
}

static enum tmap_status compare_inputs(const struct scorer *sc, const struct tmap_pool *pool,
                                       const struct inputs *mine, const struct inputs *root)
{
    for (int m = 0; m < N_INPUT_MODELS; m++)
        if (strcmp(mine->key[m], root->key[m]) != 0)
            return tmap_fail(sc->err, TMAP_ERR_MODEL,
                             "its %s is not rank 0's (fingerprint/template %s against %s): every host must "
                             "load the same file",
                             input_model[m], mine->key[m], root->key[m]);
    const struct tmap_pool *data[N_INPUT_DATA] = { pool, sc->p->val };
    for (int d = 0; d < N_INPUT_DATA; d++)
        if (strcmp(mine->data[d], root->data[d]) != 0)
            return tmap_fail(sc->err, TMAP_ERR_DATA,
                             "its %s (%s: %llu records, fingerprint %s) is not rank 0's (%llu records, "
                             "fingerprint %s): every host must hold the same records in the same order",
                             input_data[d], data[d] ? tmap_pool_path(data[d]) : "none",
                             (unsigned long long)mine->n_data[d], mine->data[d],
                             (unsigned long long)root->n_data[d], root->data[d]);
    for (int o = 0; o < N_INPUT_OPTIONS; o++)
        if (mine->option[o] != root->option[o])
            return tmap_fail(sc->err, TMAP_ERR_USAGE, "its %s is %lld, rank 0's %lld: every rank must be given "
                             "the same options", input_option[o], (long long)mine->option[o],
                             (long long)root->option[o]);
    return TMAP_OK;
}

/* A collective: every rank calls it before its first batch. */
static enum tmap_status check_same_inputs(struct scorer *sc, const struct tmap_pool *pool)
{
    struct inputs mine, root;
    describe_inputs(sc, pool, &mine);
    root = mine;
    enum tmap_status st = TMAP_OK;
    if (dist_bcast(&root, sizeof root, 0) != 0)
        st = tmap_fail(sc->err, TMAP_ERR_IO, "could not compare this rank's inputs with rank 0's");
    else if (sc->rank != 0)
        st = compare_inputs(sc, pool, &mine, &root);
    return dist_worst_status(st, sc->err);
}

/* Rank 0's table and counts, on every rank (a collective: every rank
 * calls it, whatever its status). */
static enum tmap_status share_table(struct scorer *sc, struct tmap_scores *scores, enum tmap_status st)
{
    st = dist_share_status(st, sc->err, 0);
    if (st)
        return st;
    size_t n = tmap_scores_n_rows(scores);
    if (dist_bcast(tmap_scores_column(scores, 0), n * TMAP_IND_COUNT * sizeof(double), 0) != 0 ||
        dist_bcast(&sc->stats, sizeof sc->stats, 0) != 0)
        return tmap_fail(sc->err, TMAP_ERR_IO, "could not share the scores of %zu samples among the ranks", n);
    return TMAP_OK;
}

enum { BALANCE_LISTED = 8 }; /* up to this many ranks, the notice names each */

/* Distributed: how the scoring was shared, as a notice from rank 0 (a
 * collective: every rank calls it once the run has succeeded). A rank that
 * computed for much longer than the others, or a rank 0 that waited long,
 * is what keeps N ranks from being N times as fast. */
static void report_balance(struct scorer *sc)
{
    size_t n = (size_t)sc->size, *counts = malloc(n * sizeof *counts);
    double mine[3] = { sc->busy, (double)sc->n_batches, sc->waited }, *all = malloc(3 * n * sizeof *all);
    for (size_t r = 0; counts && r < n; r++)
        counts[r] = 3;
    if (counts && all && dist_allgather_doubles(mine, all, counts) == 0 && sc->rank == 0) {
        char msg[400];
        int at = snprintf(msg, sizeof msg, "the ranks' shares of the scoring:");
        if (n <= BALANCE_LISTED) {
            for (size_t r = 0; r < n && at > 0 && (size_t)at < sizeof msg; r++)
                at += snprintf(msg + at, sizeof msg - (size_t)at, "%s rank %zu (%s) %.0f batches in %.1f s",
                               r ? ";" : "", r, dist_host((int)r), all[3 * r + 1], all[3 * r]);
        } else { /* a line per rank would not be read: the range, and who was slowest */
            size_t slow = 0, fast = 0, few = 0, many = 0;
            for (size_t r = 1; r < n; r++) {
                slow = all[3 * r] > all[3 * slow] ? r : slow;
                fast = all[3 * r] < all[3 * fast] ? r : fast;
                few = all[3 * r + 1] < all[3 * few + 1] ? r : few;
                many = all[3 * r + 1] > all[3 * many + 1] ? r : many;
            }
            at += snprintf(msg + at, sizeof msg - (size_t)at,
                           " %zu ranks, %.0f to %.0f batches each in %.1f to %.1f s, the slowest rank %zu (%s)", n,
                           all[3 * few + 1], all[3 * many + 1], all[3 * fast], all[3 * slow], slow,
                           dist_host((int)slow));
        }
        if (at > 0 && (size_t)at < sizeof msg)
            snprintf(msg + at, sizeof msg - (size_t)at, "; rank 0 waited %.1f s for the others' batches", all[2]);
        scorer_notice(sc, "%s", msg);
    }
    free(counts);
    free(all);
}

static enum tmap_status score_all(struct scorer *sc, const struct tmap_pool *pool,
                                  struct tmap_scores *scores)
{
    const struct tmap_score_params *p = sc->p;
    uint32_t mask = p->indicators;
    if ((mask & BIT(TMAP_IND_RELEVANCE)) && !p->val) {
        scorer_notice(sc, "relevance needs validation data (--val); it is left out");
        mask &= ~BIT(TMAP_IND_RELEVANCE);
    }
    struct target tp = { .pool = pool, .scores = scores, .mask = mask, .embed = (mask & NEIGHBOUR) != 0,
                         .stage = "scoring" };
    struct target tv = { .pool = p->val, .embed = true, .stage = "validation" };
    bool relevance = (mask & BIT(TMAP_IND_RELEVANCE)) != 0;
    enum tmap_status st = sc->size > 1 ? check_same_inputs(sc, pool) : TMAP_OK;
    if (!st && tp.embed)
        st = alloc_embeddings(sc, &tp);
    if (!st && relevance)
        st = alloc_embeddings(sc, &tv);
    if (!st)
        st = score_target(sc, &tp);
    if (!st && relevance)
        st = score_target(sc, &tv);
    /* Rank 0 holds every batch's values now: it finds the neighbours
     * (the other ranks share the approximate index's queries), then every
     * rank gets the finished table. */
    if (!st && tp.embed)
        st = neighbour_indicators(sc, &tp, relevance ? &tv : NULL);
    if (sc->size > 1)
        st = share_table(sc, scores, st);
    if (sc->size > 1 && !st)
        report_balance(sc);
    free(tp.emb);
    free(tp.has_emb);
    free(tv.emb);
    free(tv.has_emb);
    return st;
}

enum tmap_status tmap_score(const struct tmap_pool *pool, struct tmap_model *model,
                            const struct tmap_score_params *p, struct tmap_scores **out,
                            struct tmap_error *err)
{
    *out = NULL;
    struct scorer sc;
    enum tmap_status st = open_scorer(&sc, model, p, p->distributed, err);
    struct tmap_scores *scores = st ? NULL : tmap_scores_create(tmap_pool_size(pool));
    if (!st && !scores)
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the scores of %zu samples", tmap_pool_size(pool));

    if (!st)
        st = score_all(&sc, pool, scores);
    tmap_store_close(sc.store);
    if (st) {
        tmap_scores_free(scores);
        return st;
    }
    sc.stats.n_samples = tmap_pool_size(pool);
    /* Rank 0 counts every rank's decoding (sent with each batch). */
    struct tmap_model_counters work = scorer_work_so_far(&sc);
    sc.stats.n_tokens = work.n_tokens_decoded - sc.work_at_start.n_tokens_decoded + sc.remote_tokens;
    sc.stats.n_decode_calls = work.n_decode_calls - sc.work_at_start.n_decode_calls + sc.remote_calls;
    if (sc.size > 1) {
        dist_bcast(&sc.stats.n_tokens, sizeof sc.stats.n_tokens, 0);
        dist_bcast(&sc.stats.n_decode_calls, sizeof sc.stats.n_decode_calls, 0);
    }
    sc.stats.seconds = tmap_now_seconds() - sc.t0;
    scores->stats = sc.stats;
    *out = scores;
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Dry run                                                                  */
/* ------------------------------------------------------------------------ */

/* Tokens and passes of the requests a batch's items make: the very lists
 * model_work would decode, each costed by the model layer's overflow
 * policy. */
static enum tmap_status count_batch(struct scorer *sc, struct target *t, struct item *items, size_t n,
                                    struct tmap_score_plan *plan)
{
    struct request_list lists[N_LISTS];
    enum tmap_status st = build_lists(sc, t, items, n, lists);
    for (int k = 0; k < N_LISTS && !st; k++)
        for (size_t i = 0; i < lists[k].n; i++) {
            plan->n_tokens += (uint64_t)tmap_model_logprob_cost(list_model(sc, k), &lists[k].req[i]);
            plan->n_passes++;
        }
    for (int k = 0; k < N_LISTS; k++)
        list_free(&lists[k]);
    for (size_t i = 0; i < n && t->scores; i++)
        plan->n_cached += !(items[i].missing & PER_SAMPLE) && !items[i].want_emb;
    return st;
}

/*
 * Times model_work - the very passes the run will make - on growing slices
 * of the first batch: one sample untimed (the first decode allocates and
 * first touches llama.cpp's buffers, which cost as much as a small slice:
 * timing 16 samples from cold made the estimate 2.7x too long), then 4, 8,
 * 16... samples until a slice takes a second or the batch is used up. The
 * last slice's rate is the estimate: it is the largest, and warm.
 */
static enum tmap_status calibrate(struct scorer *sc, struct target *t, struct item *items, size_t n,
                                  struct tmap_score_plan *plan)
{
    size_t begin = 0, size = 1;
    while (begin < n) {
        size_t count = n - begin < size ? n - begin : size;
        uint64_t before = scorer_work_so_far(sc).n_tokens_decoded;
        double t0 = tmap_now_seconds();
        enum tmap_status st = model_work(sc, t, items + begin, count);
        if (st)
            return st;
        double dt = tmap_now_seconds() - t0;
        uint64_t tokens = scorer_work_so_far(sc).n_tokens_decoded - before;
        /* The untimed sample stands in only when nothing else is left. */
        if (tokens > 0 && dt > 0 && (begin > 0 || plan->tokens_per_second == 0))
            plan->tokens_per_second = (double)tokens / dt;
        begin += count;
        if (begin > count && dt >= 1.0)
            break;
        size = begin == count ? 4 : size * 2;
    }
    return TMAP_OK;
}

/* Counts the work for every row of a target; calibrates on its first batch
 * when asked. */
static enum tmap_status plan_target(struct scorer *sc, struct target *t, bool calibrate_first,
                                    struct tmap_score_plan *plan)
{
    size_t n = tmap_pool_size(t->pool), b = sc->p->batch_samples;
    enum tmap_status st = t->embed ? alloc_embeddings(sc, t) : TMAP_OK;
    if (!st)
        st = index_copies(sc, t);
    for (size_t begin = 0; begin < n && !st; begin += b) {
        size_t count = n - begin < b ? n - begin : b;
        struct item *items = calloc(count, sizeof *items);
        st = items ? load_items(sc, t, begin, items, count)
                   : tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory planning a batch of %zu", count);
        if (!st)
            st = prepare_batch(sc, t, items, count, false);
        if (!st)
            st = count_batch(sc, t, items, count, plan);
        if (!st && begin == 0 && calibrate_first)
            st = calibrate(sc, t, items, count, plan);
        for (size_t i = 0; items && i < count; i++)
            free_item(&items[i]);
        free(items);
    }
    free(t->emb);
    free(t->has_emb);
    free(t->first);
    t->emb = NULL;
    t->has_emb = NULL;
    t->first = NULL;
    return st;
}

enum tmap_status tmap_score_plan(const struct tmap_pool *pool, struct tmap_model *model,
                                 const struct tmap_score_params *p, struct tmap_score_plan *plan,
                                 struct tmap_error *err)
{
    memset(plan, 0, sizeof *plan);
    struct scorer sc;
    enum tmap_status st = open_scorer(&sc, model, p, false, err);
    size_t n = tmap_pool_size(pool);
    struct tmap_scores *scores = st ? NULL : tmap_scores_create(n);
    if (!st && !scores)
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory planning %zu samples", n);
    uint32_t mask = p->val ? p->indicators : p->indicators & ~BIT(TMAP_IND_RELEVANCE);
    struct target tp = { .pool = pool, .scores = scores, .mask = mask, .embed = (mask & NEIGHBOUR) != 0 };
    if (!st)
        st = plan_target(&sc, &tp, true, plan);
    /* Relevance also embeds the validation set: its tokens count too. */
    struct target tv = { .pool = p->val, .embed = true };
    if (!st && (mask & BIT(TMAP_IND_RELEVANCE)))
        st = plan_target(&sc, &tv, false, plan);
    plan->n_samples = n;
    if (plan->tokens_per_second > 0)
        plan->seconds = (double)plan->n_tokens / plan->tokens_per_second;
    tmap_scores_free(scores);
    tmap_store_close(sc.store);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Embeddings alone (tiny sets, knn demonstrations)                          */
/* ------------------------------------------------------------------------ */

enum tmap_status tmap_embed_pool(const struct tmap_pool *pool, struct tmap_model *model,
                                 enum tmap_template tmpl, const char *store_path, float **out, bool **ok, int32_t *dim,
                                 struct tmap_error *err)
{
    *out = NULL;
    if (ok)
        *ok = NULL;
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = BIT(TMAP_IND_DIVERSITY); /* any embedding indicator: no ratings set up */
    p.store_path = store_path;
    p.tmpl = tmpl;
    struct scorer sc;
    enum tmap_status st = open_scorer(&sc, model, &p, false, err);
    struct target t = { .pool = pool, .embed = true, .stage = "embedding" };
    if (!st)
        st = alloc_embeddings(&sc, &t);
    if (!st)
        st = score_target(&sc, &t);
    tmap_store_close(sc.store);
    *dim = sc.dim;
    if (st) {
        free(t.emb);
        free(t.has_emb);
        return st;
    }
    *out = t.emb;
    if (ok)
        *ok = t.has_emb;
    else
        free(t.has_emb);
    return TMAP_OK;
}
