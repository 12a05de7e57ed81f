/*
 * eval.c - whole-benchmark evaluation of a model with a few-shot prompt
 * (`tmap eval`): accuracy by greedy generation and answer extraction,
 * loglik of the gold response, or multiple choice by log-likelihood, with
 * a bootstrap interval.
 *
 * It measures what the ICL proxy (docs/design.md section 5) estimates on a
 * tiny set, so prompts are laid out the same way: the demonstrations, then
 * the query, tokenized whole. The demonstrations are what every prompt
 * starts with, so the longest common token prefix of a group of prompts is
 * decoded once and shared; working on tokens rather than text makes that
 * exact for any template and tokenizer (the tokens decoded are the tokens
 * of each whole prompt).
 */
#include "model/model.h"
#include "task/answer.h"
#include "task/fewshot.h"
#include "util/clock.h"
#include "util/atomic.h"
#include "util/error.h"
#include "util/random.h"
#include "util/stats.h"
#include "util/utf8.h"

#include <jansson.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Items per pass through the model: big enough that the demonstrations'
 * decode (once per pass) is small beside the items, small enough that a
 * long benchmark reports progress. */
enum { EVAL_GROUP = 256 };


struct tmap_eval_params tmap_eval_default_params(void)
{
    struct tmap_eval_params p = {
        .metric = TMAP_METRIC_ACCURACY, .n_shots = 0, .tmpl = TMAP_TEMPLATE_PLAIN,
        .max_tokens = 256, .n_bootstrap = 1000, .seed = 42,
    };
    return p;
}

/* ------------------------------------------------------------------------ */
/* Bootstrap                                                                */
/* ------------------------------------------------------------------------ */

enum tmap_status tmap_bootstrap_mean_ci(const double *values, size_t n, size_t n_resamples, uint64_t seed,
                                        double *low, double *high, struct tmap_error *err)
{
    *low = *high = NAN;
    if (n == 0 || n_resamples == 0)
        return TMAP_OK;
    double *means = malloc(n_resamples * sizeof *means);
    if (!means)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %zu bootstrap resamples", n_resamples);
    uint64_t state = seed;
    for (size_t b = 0; b < n_resamples; b++) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += values[tmap_random_next(&state) % n]; /* bias of % is below 1e-15 here */
        means[b] = sum / (double)n;
    }
    tmap_sort_doubles(means, n_resamples);
    *low = tmap_quantile_sorted(means, n_resamples, 0.025);
    *high = tmap_quantile_sorted(means, n_resamples, 0.975);
    free(means);
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* The run and its result                                                   */
/* ------------------------------------------------------------------------ */

struct eval_run {
    struct tmap_model             *m;
    const struct tmap_pool        *test;
    const struct tmap_eval_params *p;
    struct tmap_eval_result       *res;
    struct tmap_sample            *demos;
    size_t                         n_demos;
    enum tmap_template             tmpl;      /* after the chat fallback */
    bool                           own_space; /* the tokenizer puts a space before text itself */
    double                         t0; /* tmap_now_seconds() at the start */
    struct tmap_model_counters     c0;
};

/* A group of test items: their records and whole prompts' tokens. */
struct group {
    size_t               first, n;
    struct tmap_sample  *s;
    int32_t            **tokens;
    int32_t             *n_tokens;
    int32_t              shared; /* leading tokens every prompt of the group has */
};

static bool alloc_result(struct tmap_eval_result *res, size_t n)
{
    size_t k = n ? n : 1;
    res->ids = calloc(k, sizeof *res->ids);
    res->scores = malloc(k * sizeof *res->scores);
    res->predictions = calloc(k, sizeof *res->predictions);
    res->extracted = calloc(k, sizeof *res->extracted);
    res->gold = calloc(k, sizeof *res->gold);
    res->logliks = malloc(k * sizeof *res->logliks);
    res->choices = malloc(k * sizeof *res->choices);
    if (!res->ids || !res->scores || !res->predictions || !res->extracted || !res->gold || !res->logliks ||
        !res->choices)
        return false;
    for (size_t i = 0; i < n; i++) {
        res->scores[i] = res->logliks[i] = NAN;
        res->choices[i] = -1;
    }
    res->n_items = n;
    return true;
}

void tmap_eval_result_free(struct tmap_eval_result *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->n_items; i++) {
        if (res->ids)
            free(res->ids[i]);
        if (res->predictions)
            free(res->predictions[i]);
        if (res->extracted)
            free(res->extracted[i]);
        if (res->gold)
            free(res->gold[i]);
    }
    free(res->ids);
    free(res->scores);
    free(res->predictions);
    free(res->extracted);
    free(res->gold);
    free(res->logliks);
    free(res->choices);
    memset(res, 0, sizeof *res);
}

static enum tmap_status check_params(const struct tmap_pool *demos, const struct tmap_eval_params *p,
                                     struct tmap_error *err)
{
    if (p->metric != TMAP_METRIC_ACCURACY && p->metric != TMAP_METRIC_LOGLIK && p->metric != TMAP_METRIC_MC)
        return tmap_fail(err, TMAP_ERR_USAGE, "unknown metric %d", (int)p->metric);
    if (p->n_shots > 0 && !demos)
        return tmap_fail(err, TMAP_ERR_USAGE, "%zu demonstrations asked for, but no demo pool given (--demos)",
                         p->n_shots);
    if (p->n_shots > 0 && p->n_shots > tmap_pool_size(demos))
        return tmap_fail(err, TMAP_ERR_USAGE, "%zu demonstrations asked for, but %s has only %zu records",
                         p->n_shots, tmap_pool_path(demos), tmap_pool_size(demos));
    if (p->metric == TMAP_METRIC_ACCURACY && p->max_tokens < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "max_tokens %d: accuracy needs at least 1 generated token",
                         p->max_tokens);
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Prompts                                                                  */
/* ------------------------------------------------------------------------ */

static enum tmap_status prompt_tokens(struct eval_run *r, const struct tmap_sample *s, int32_t **tokens,
                                      int32_t *n, struct tmap_error *err)
{
    char *text = NULL;
    /* The proxy's layout, by construction (task/fewshot.c). */
    enum tmap_status st = tmap_fewshot_layout(r->m, r->tmpl, r->demos, r->n_demos, s, &text, err);
    if (!st)
        st = tmap_model_tokenize_prompt(r->m, text, r->tmpl, tokens, n, err);
    free(text);
    return st;
}

static void free_group(struct group *g)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->s)
            tmap_sample_free(&g->s[i]);
        if (g->tokens)
            free(g->tokens[i]);
    }
    free(g->s);
    free(g->tokens);
    free(g->n_tokens);
}

static enum tmap_status load_group(struct eval_run *r, struct group *g, struct tmap_error *err)
{
    g->s = calloc(g->n, sizeof *g->s);
    g->tokens = calloc(g->n, sizeof *g->tokens);
    g->n_tokens = calloc(g->n, sizeof *g->n_tokens);
    if (!g->s || !g->tokens || !g->n_tokens)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %zu test items", g->n);
    enum tmap_status st = TMAP_OK;
    for (size_t i = 0; i < g->n && !st; i++) {
        st = tmap_pool_sample(r->test, g->first + i, &g->s[i], err);
        if (!st && !(r->res->ids[g->first + i] = strdup(g->s[i].id)))
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %zu test items", g->n);
        if (!st)
            st = prompt_tokens(r, &g->s[i], &g->tokens[i], &g->n_tokens[i], err);
    }
    /* loglik and mc share through sequence 0, which needs a second one. */
    bool can_share = r->p->metric == TMAP_METRIC_ACCURACY || r->m->info.n_seq >= 2;
    g->shared = !st && can_share ? tmap_fewshot_common_prefix(g->tokens, g->n_tokens, g->n) : 0;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Accuracy                                                                 */
/* ------------------------------------------------------------------------ */

static char *trimmed_copy(const char *s)
{
    const char *end = s + strlen(s);
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    return strndup(s, (size_t)(end - s));
}

/* The answer in text as a new string, or NULL (*oom when memory ran out). */
static char *extract_copy(const char *text, bool *oom)
{
    size_t cap = strlen(text) + 2; /* the number is never longer than the text, plus "0" */
    char *out = malloc(cap);
    if (!out) {
        *oom = true;
        return NULL;
    }
    if (tmap_extract_answer(text, out, cap))
        return out;
    free(out);
    return NULL;
}

/* Item i's output against its gold answer: as numbers when the record's
 * short answer is one, else as trimmed text. Takes output. */
static enum tmap_status judge_output(struct eval_run *r, size_t i, const struct tmap_sample *s, char *output,
                                     struct tmap_error *err)
{
    struct tmap_eval_result *res = r->res;
    bool oom = false, correct;
    res->predictions[i] = output;
    char *gold = s->answer ? extract_copy(s->answer, &oom) : NULL;
    if (gold) {
        res->gold[i] = gold;
        res->extracted[i] = extract_copy(output, &oom);
        correct = res->extracted[i] && tmap_answers_match(res->extracted[i], gold);
    } else {
        res->gold[i] = trimmed_copy(s->answer ? s->answer : s->response);
        res->extracted[i] = trimmed_copy(output);
        oom |= !res->gold[i] || !res->extracted[i];
        correct = !oom && strcmp(res->extracted[i], res->gold[i]) == 0;
    }
    res->scores[i] = correct ? 1.0 : 0.0;
    return oom ? tmap_fail(err, TMAP_ERR_NOMEM, "out of memory judging item %s", s->id) : TMAP_OK;
}

static enum tmap_status run_accuracy(struct eval_run *r, struct group *g, struct tmap_error *err)
{
    struct tmap_generate_request *req = calloc(g->n, sizeof *req);
    size_t *item = calloc(g->n, sizeof *item);
    char **out = calloc(g->n, sizeof *out);
    enum tmap_status st = req && item && out ? TMAP_OK
                                             : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory generating");
    size_t n = 0;
    for (size_t i = 0; i < g->n && !st; i++) {
        if (g->n_tokens[i] >= r->m->info.n_ctx)
            continue; /* no room for a single token: skipped */
        req[n] = (struct tmap_generate_request){ g->tokens[i] + g->shared, g->n_tokens[i] - g->shared };
        item[n++] = i;
    }
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = r->p->max_tokens;
    gp.stops = tmap_fewshot_stops;
    gp.n_stops = tmap_fewshot_n_stops;
    if (!st && n > 0)
        st = tmap_model_generate(r->m, g->tokens[0], g->shared, req, n, &gp, out, err);
    for (size_t k = 0; k < n; k++) {
        if (!st)
            st = judge_output(r, g->first + item[k], &g->s[item[k]], out[k], err);
        else
            free(out[k]);
    }
    free(req);
    free(item);
    free(out);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Log-likelihood and multiple choice                                       */
/* ------------------------------------------------------------------------ */

/* Scores requests that continue the group's shared tokens. */
static enum tmap_status score(struct eval_run *r, const struct group *g, const struct tmap_logprob_request *req,
                              size_t n, struct tmap_logprob_result *out, struct tmap_error *err)
{
    if (g->shared > 0)
        return tmap_model_logprob_shared(r->m, g->tokens[0], g->shared, req, n, out, err);
    return tmap_model_logprob(r->m, req, n, out, err);
}

static enum tmap_status run_loglik(struct eval_run *r, struct group *g, struct tmap_error *err)
{
    struct tmap_logprob_request *req = calloc(g->n, sizeof *req);
    struct tmap_logprob_result *out = calloc(g->n, sizeof *out);
    int32_t **gold = calloc(g->n, sizeof *gold);
    enum tmap_status st = req && out && gold ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory scoring");
    for (size_t i = 0; i < g->n && !st; i++) {
        req[i] = (struct tmap_logprob_request){ .prompt = g->tokens[i] + g->shared,
                                                .n_prompt = g->n_tokens[i] - g->shared };
        st = tmap_model_tokenize_response(r->m, &g->s[i], r->tmpl, &gold[i], &req[i].n_response, err);
        req[i].response = gold[i];
    }
    if (!st)
        st = score(r, g, req, g->n, out, err);
    for (size_t i = 0; i < g->n && !st; i++) {
        size_t at = g->first + i;
        /* Only whole prompts count: a truncated one lost demonstrations. */
        if (out[i].fit == TMAP_FIT_WHOLE && out[i].n_tokens > 0)
            r->res->scores[at] = r->res->logliks[at] = out[i].sum_logprob / out[i].n_tokens;
        if (g->s[i].answer && !(r->res->gold[at] = strdup(g->s[i].answer)))
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory scoring");
    }
    for (size_t i = 0; gold && i < g->n; i++)
        free(gold[i]);
    free(gold);
    free(req);
    free(out);
    return st;
}

/* A choice as the model reads it after "Answer:": " " + its text. A
 * SentencePiece tokenizer already puts that space before the text it is
 * given ("Paris" -> "▁Paris", " Paris" -> "▁", "▁Paris"), so it gets the
 * bare text. */
static enum tmap_status choice_tokens(struct eval_run *r, const char *choice, int32_t **tokens, int32_t *n,
                                      struct tmap_error *err)
{
    if (r->own_space)
        return tmap_model_tokenize(r->m, choice, false, tokens, n, err);
    size_t len = strlen(choice);
    char *text = malloc(len + 2);
    if (!text)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory tokenizing a choice");
    text[0] = ' ';
    memcpy(text + 1, choice, len + 1);
    enum tmap_status st = tmap_model_tokenize(r->m, text, false, tokens, n, err);
    free(text);
    return st;
}

/* Does this tokenizer put a space before the text it is given? */
static enum tmap_status detect_own_space(struct eval_run *r, struct tmap_error *err)
{
    int32_t *t = NULL, n = 0;
    enum tmap_status st = tmap_model_tokenize(r->m, "a", false, &t, &n, err);
    if (!st && n > 0) {
        char piece[16];
        int32_t len = llama_token_to_piece(r->m->vocab, t[0], piece, sizeof piece, 0, false);
        r->own_space = len > 0 && piece[0] == ' ';
    }
    free(t);
    return st;
}

struct mc_requests {
    struct tmap_logprob_request *req;
    struct tmap_logprob_result  *out;
    int32_t                    **tokens;
    size_t                       n;
};

static void free_mc(struct mc_requests *q)
{
    for (size_t k = 0; q->tokens && k < q->n; k++)
        free(q->tokens[k]);
    free(q->tokens);
    free(q->req);
    free(q->out);
}

/* One request per choice of every item, items in order. */
static enum tmap_status build_mc(struct eval_run *r, const struct group *g, struct mc_requests *q,
                                 struct tmap_error *err)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->s[i].n_choices == 0 || g->s[i].answer_index < 0)
            return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: record %s has no choices; the mc metric needs "
                             "multiple-choice records", tmap_pool_path(r->test), g->s[i].line, g->s[i].id);
        q->n += g->s[i].n_choices;
    }
    q->req = calloc(q->n, sizeof *q->req);
    q->out = calloc(q->n, sizeof *q->out);
    q->tokens = calloc(q->n, sizeof *q->tokens);
    if (!q->req || !q->out || !q->tokens)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory scoring %zu choices", q->n);
    enum tmap_status st = TMAP_OK;
    for (size_t i = 0, k = 0; i < g->n && !st; i++)
        for (size_t c = 0; c < g->s[i].n_choices && !st; c++, k++) {
            q->req[k] = (struct tmap_logprob_request){ .prompt = g->tokens[i] + g->shared,
                                                       .n_prompt = g->n_tokens[i] - g->shared };
            st = choice_tokens(r, g->s[i].choices[c], &q->tokens[k], &q->req[k].n_response, err);
            q->req[k].response = q->tokens[k];
        }
    return st;
}

/* The item's best choice (the lowest index on a tie), or -1 when any
 * choice could not be scored whole. */
static int32_t best_choice(const struct tmap_logprob_result *out, size_t n_choices)
{
    int32_t best = 0;
    for (size_t c = 0; c < n_choices; c++) {
        if (out[c].fit != TMAP_FIT_WHOLE || out[c].n_tokens == 0)
            return -1;
        if (out[c].sum_logprob > out[best].sum_logprob)
            best = (int32_t)c;
    }
    return best;
}

static enum tmap_status judge_mc(struct eval_run *r, const struct group *g, const struct mc_requests *q,
                                 struct tmap_error *err)
{
    struct tmap_eval_result *res = r->res;
    for (size_t i = 0, k = 0; i < g->n; k += g->s[i].n_choices, i++) {
        const struct tmap_sample *s = &g->s[i];
        size_t at = g->first + i;
        res->gold[at] = strdup(s->choices[s->answer_index]);
        int32_t best = best_choice(q->out + k, s->n_choices);
        if (best >= 0) {
            res->choices[at] = best;
            res->predictions[at] = strdup(s->choices[best]);
            res->logliks[at] = q->out[k + (size_t)best].sum_logprob;
            res->scores[at] = best == s->answer_index ? 1.0 : 0.0;
        }
        if (!res->gold[at] || (best >= 0 && !res->predictions[at]))
            return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory judging item %s", s->id);
    }
    return TMAP_OK;
}

static enum tmap_status run_mc(struct eval_run *r, struct group *g, struct tmap_error *err)
{
    struct mc_requests q = { 0 };
    enum tmap_status st = build_mc(r, g, &q, err);
    if (!st)
        st = score(r, g, q.req, q.n, q.out, err);
    if (!st)
        st = judge_mc(r, g, &q, err);
    free_mc(&q);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */
/* ------------------------------------------------------------------------ */

static enum tmap_status run_group(struct eval_run *r, size_t first, size_t n, struct tmap_error *err)
{
    struct group g = { .first = first, .n = n };
    enum tmap_status st = load_group(r, &g, err);
    /* Demonstrations longer than the context: every item is skipped. */
    if (!st && g.shared < r->m->info.n_ctx) {
        if (r->p->metric == TMAP_METRIC_ACCURACY)
            st = run_accuracy(r, &g, err);
        else if (r->p->metric == TMAP_METRIC_LOGLIK)
            st = run_loglik(r, &g, err);
        else
            st = run_mc(r, &g, err);
    }
    if (!st && g.shared > r->res->n_prefix_tokens)
        r->res->n_prefix_tokens = g.shared;
    free_group(&g);
    return st;
}

static void report_progress(struct eval_run *r, size_t done)
{
    if (!r->p->progress)
        return;
    struct tmap_model_counters c;
    tmap_model_get_counters(r->m, &c);
    struct tmap_progress pr = { .stage = "evaluation", .done = done, .total = r->res->n_items,
                                .n_tokens = c.n_tokens_decoded - r->c0.n_tokens_decoded,
                                .seconds = tmap_now_seconds() - r->t0 };
    r->p->progress(&pr, r->p->progress_user_data);
}

static enum tmap_status load_demos(struct eval_run *r, const struct tmap_pool *demos, struct tmap_error *err)
{
    r->demos = calloc(r->p->n_shots ? r->p->n_shots : 1, sizeof *r->demos);
    if (!r->demos)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %zu demonstrations", r->p->n_shots);
    enum tmap_status st = TMAP_OK;
    for (; r->n_demos < r->p->n_shots && !st; r->n_demos++)
        st = tmap_pool_sample(demos, r->n_demos, &r->demos[r->n_demos], err);
    return st;
}

/* The chat template, or plain when the model has none; a notice when the
 * layout and the model disagree either way. */
static void choose_template(struct eval_run *r)
{
    r->tmpl = tmap_model_layout(&r->m->info, r->p->tmpl);
    char msg[512];
    if (r->p->notice && tmap_model_template_note(&r->m->info, r->p->tmpl, msg, sizeof msg))
        r->p->notice(msg, r->p->notice_user_data);
}

/* The mean of the scores that count, and its bootstrap interval. */
static enum tmap_status summarise(struct eval_run *r, struct tmap_error *err)
{
    struct tmap_eval_result *res = r->res;
    double *kept = malloc((res->n_items ? res->n_items : 1) * sizeof *kept), sum = 0.0;
    if (!kept)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory summarising %zu items", res->n_items);
    res->n = 0;
    for (size_t i = 0; i < res->n_items; i++)
        if (!isnan(res->scores[i]))
            sum += kept[res->n++] = res->scores[i];
    res->metric = res->n ? sum / (double)res->n : NAN;
    enum tmap_status st = tmap_bootstrap_mean_ci(kept, res->n, r->p->n_bootstrap, r->p->seed, &res->ci_low,
                                                 &res->ci_high, err);
    free(kept);
    return st;
}

static enum tmap_status evaluate(struct eval_run *r, const struct tmap_pool *demos, struct tmap_error *err)
{
    choose_template(r);
    enum tmap_status st = load_demos(r, demos, err);
    if (!st && r->p->metric == TMAP_METRIC_MC)
        st = detect_own_space(r, err);
    for (size_t first = 0; first < r->res->n_items && !st; first += EVAL_GROUP) {
        size_t n = r->res->n_items - first < EVAL_GROUP ? r->res->n_items - first : EVAL_GROUP;
        st = run_group(r, first, n, err);
        if (!st)
            report_progress(r, first + n);
    }
    return st ? st : summarise(r, err);
}

enum tmap_status tmap_eval_run(struct tmap_model *model, const struct tmap_pool *test,
                               const struct tmap_pool *demos, const struct tmap_eval_params *params,
                               struct tmap_eval_result *result, struct tmap_error *err)
{
    memset(result, 0, sizeof *result);
    enum tmap_status st = check_params(demos, params, err);
    if (st)
        return st;
    struct eval_run r = { .m = model, .test = test, .p = params, .res = result };
    r.t0 = tmap_now_seconds();
    tmap_model_get_counters(model, &r.c0);
    result->kind = params->metric;
    if (!alloc_result(result, tmap_pool_size(test)))
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %zu test items", tmap_pool_size(test));
    else
        st = evaluate(&r, demos, err);
    for (size_t j = 0; j < r.n_demos; j++)
        tmap_sample_free(&r.demos[j]);
    free(r.demos);
    struct tmap_model_counters c;
    tmap_model_get_counters(model, &c);
    result->n_tokens_decoded = c.n_tokens_decoded - r.c0.n_tokens_decoded;
    result->n_decode_calls = c.n_decode_calls - r.c0.n_decode_calls;
    result->seconds = tmap_now_seconds() - r.t0;
    if (st)
        tmap_eval_result_free(result);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Predictions file                                                         */
/* ------------------------------------------------------------------------ */

/* A JSON string of s, each byte that does not start valid UTF-8 replaced
 * by U+FFFD (jansson refuses invalid UTF-8); null for NULL. */
static json_t *text_json(const char *s)
{
    if (!s)
        return json_null();
    size_t n = strlen(s), bad, at = 0, used = 0;
    if (tmap_utf8_valid(s, n, NULL))
        return json_stringn(s, n);
    char *buf = malloc(3 * n + 1);
    if (!buf)
        return NULL;
    while (!tmap_utf8_valid(s + at, n - at, &bad)) {
        memcpy(buf + used, s + at, bad);
        memcpy(buf + used + bad, "\xEF\xBF\xBD", 3);
        used += bad + 3;
        at += bad + 1;
    }
    memcpy(buf + used, s + at, n - at);
    json_t *j = json_stringn(buf, used + n - at);
    free(buf);
    return j;
}

static json_t *number_json(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static json_t *item_json(const struct tmap_eval_result *res, size_t i)
{
    bool skipped = isnan(res->scores[i]);
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "id", text_json(res->ids[i]));
    bad |= json_object_set_new(o, "prediction", text_json(res->predictions[i]));
    bad |= json_object_set_new(o, "extracted", text_json(res->extracted[i]));
    bad |= json_object_set_new(o, "gold", text_json(res->gold[i]));
    bool judged = res->kind != TMAP_METRIC_LOGLIK && !skipped;
    bad |= json_object_set_new(o, "correct", judged ? json_boolean(res->scores[i] == 1.0) : json_null());
    bad |= json_object_set_new(o, "loglik", number_json(res->logliks[i]));
    if (res->kind == TMAP_METRIC_MC)
        bad |= json_object_set_new(o, "choice", res->choices[i] >= 0 ? json_integer(res->choices[i]) : json_null());
    bad |= json_object_set_new(o, "skipped", json_boolean(skipped));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

enum tmap_status tmap_eval_write_predictions(const struct tmap_eval_result *res, const char *path,
                                             struct tmap_error *err)
{
    struct tmap_atomic_file a;
    enum tmap_status st = tmap_atomic_open(&a, path, "w", err);
    if (st)
        return st;
    FILE *f = a.f;
    for (size_t i = 0; i < res->n_items && !st; i++) {
        json_t *o = item_json(res, i);
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (!line)
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory writing %s", path);
        else if (fprintf(f, "%s\n", line) < 0)
            st = tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        free(line);
        json_decref(o);
    }
    if (st) {
        tmap_atomic_abort(&a);
        return st;
    }
    return tmap_atomic_commit(&a, err);
}
