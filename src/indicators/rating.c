/*
 * rating.c - rating prompts for `quality` and `complexity`.
 *
 * The rating is read, not generated: one forward pass over the prompt gives
 * the next-token distribution, restricted to the six rating tokens, and the
 * indicator is its expected value (Deita's scorers do the same). The
 * wording is tmap's own.
 *
 * Which token spells "3" right after "Rating: " depends on the tokenizer
 * (SentencePiece ends the prompt with a lone "▁" and then emits "3"; BPE may
 * fold the space into " 3"). tmap_rater_init finds out once per judge by
 * tokenizing a probe with and without each digit: the tokens shared by all
 * seven are the prompt, the first token after them spells the digit, and
 * any prompt tokens past the shared part are dropped before reading.
 */
#include "task/fewshot.h"
#include "indicators/rating.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char suffix[] = "Rating: ";

static const char quality_task[] =
    "Rate the response below to the instruction above it. Judge correctness, "
    "helpfulness and clarity together, on a scale from 1 (poor) to 6 (excellent). "
    "Reply with the number only.\n\n### Instruction:\n%s\n\n### Response:\n%s";

static const char complexity_task[] =
    "Rate how complex the instruction below is: how much knowledge, reasoning and "
    "how many steps a good answer needs, on a scale from 1 (very simple) to 6 "
    "(very complex). Reply with the number only.\n\n### Instruction:\n%s";

/* Given the probe's tokens and the probe + digit tokens, find each digit's
 * token and how many trailing probe tokens the digits replace. */
static enum tmap_status find_rating_tokens(struct tmap_rater *r, const int32_t *base, int32_t n_base,
                                           int32_t *const with[], const int32_t n_with[],
                                           struct tmap_error *err)
{
    int32_t shared = n_base;
    for (int k = 0; k < TMAP_RATING_LEVELS; k++) {
        int32_t c = tmap_tokens_common_prefix(base, n_base, with[k], n_with[k]);
        shared = c < shared ? c : shared;
    }
    for (int k = 0; k < TMAP_RATING_LEVELS; k++) {
        if (shared >= n_with[k])
            return tmap_fail(err, TMAP_ERR_MODEL, "the judge's tokenizer spells rating %d with no token of its own", k + 1);
        r->tokens[k] = with[k][shared];
        for (int i = 0; i < k; i++)
            if (r->tokens[i] == r->tokens[k])
                return tmap_fail(err, TMAP_ERR_MODEL,
                                 "the judge's tokenizer gives ratings %d and %d the same first token", i + 1, k + 1);
    }
    r->n_drop = n_base - shared;
    return TMAP_OK;
}

enum tmap_status tmap_rater_init(struct tmap_rater *r, struct tmap_model *judge, struct tmap_error *err)
{
    memset(r, 0, sizeof *r);
    r->judge = judge;
    struct tmap_model_info info;
    tmap_model_get_info(judge, &info);
    r->chat = info.has_chat_template;

    char probe[64];
    snprintf(probe, sizeof probe, "The answer is fine.\n%s", suffix);
    int32_t *base = NULL, n_base = 0;
    int32_t *with[TMAP_RATING_LEVELS] = { 0 }, n_with[TMAP_RATING_LEVELS] = { 0 };
    enum tmap_status st = tmap_model_tokenize(judge, probe, false, &base, &n_base, err);
    for (int k = 0; k < TMAP_RATING_LEVELS && !st; k++) {
        char text[80];
        snprintf(text, sizeof text, "%s%d", probe, k + 1);
        st = tmap_model_tokenize(judge, text, false, &with[k], &n_with[k], err);
    }
    if (!st)
        st = find_rating_tokens(r, base, n_base, with, n_with, err);
    free(base);
    for (int k = 0; k < TMAP_RATING_LEVELS; k++)
        free(with[k]);
    return st;
}

/* The task text with the sample's fields in it; malloc'd. */
static char *task_text(const struct tmap_sample *s, enum tmap_indicator what)
{
    bool quality = what == TMAP_IND_QUALITY;
    size_t n = strlen(s->prompt) + (quality ? strlen(s->response) : 0) + sizeof quality_task + 1;
    char *text = malloc(n);
    if (!text)
        return NULL;
    if (quality)
        snprintf(text, n, quality_task, s->prompt, s->response);
    else
        snprintf(text, n, complexity_task, s->prompt);
    return text;
}

/* The whole prompt: the task as the user's turn of the judge's chat
 * template (or as plain text without one), then "Rating: ". */
static enum tmap_status prompt_text(const struct tmap_rater *r, const struct tmap_sample *s,
                                    enum tmap_indicator what, char **out, struct tmap_error *err)
{
    char *task = task_text(s, what);
    if (!task)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory rating sample %s", s->id);
    char *head = NULL;
    if (r->chat) {
        struct tmap_turn turn = { "user", task };
        struct tmap_sample chat = { .id = s->id, .prompt = task, .response = "", .turns = &turn,
                                    .n_turns = 1, .answer_index = -1 };
        enum tmap_status st = tmap_model_format_prompt(r->judge, &chat, TMAP_TEMPLATE_CHAT, &head, NULL, err);
        free(task);
        if (st)
            return st;
    } else {
        head = task;
    }
    size_t n = strlen(head) + sizeof suffix + 4;
    *out = malloc(n);
    if (*out)
        snprintf(*out, n, "%s%s%s", head, r->chat ? "" : "\n\n", suffix);
    free(head);
    return *out ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory rating sample %s", s->id);
}

enum tmap_status tmap_rater_prompt(const struct tmap_rater *r, const struct tmap_sample *s,
                                   enum tmap_indicator what, int32_t **tokens, int32_t *n_tokens,
                                   struct tmap_error *err)
{
    char *text;
    enum tmap_status st = prompt_text(r, s, what, &text, err);
    if (st)
        return st;
    st = tmap_model_tokenize_prompt(r->judge, text, r->chat ? TMAP_TEMPLATE_CHAT : TMAP_TEMPLATE_PLAIN,
                                    tokens, n_tokens, err);
    free(text);
    if (!st && *n_tokens > r->n_drop + 1)
        *n_tokens -= r->n_drop;
    return st;
}

double tmap_rater_expected(const double logprobs[TMAP_RATING_LEVELS])
{
    double max = logprobs[0];
    for (int k = 1; k < TMAP_RATING_LEVELS; k++)
        max = fmax(max, logprobs[k]);
    double z = 0.0, sum = 0.0;
    for (int k = 0; k < TMAP_RATING_LEVELS; k++) {
        double p = exp(logprobs[k] - max);
        z += p;
        sum += (k + 1) * p;
    }
    return sum / z;
}
