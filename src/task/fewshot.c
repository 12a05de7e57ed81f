/*
 * fewshot.c - few-shot prompt layout and the shared prefix (fewshot.h).
 */
#include "task/fewshot.h"
#include "util/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tmap_fewshot_stops[] = { "\n\nQuery:", "\nQuery:", "Query:" };
const size_t      tmap_fewshot_n_stops = sizeof tmap_fewshot_stops / sizeof tmap_fewshot_stops[0];

static enum tmap_status layout_plain(struct tmap_model *model, const struct tmap_sample *demos, size_t k,
                                     const struct tmap_sample *query, char **out, struct tmap_error *err)
{
    char *tail = NULL;
    enum tmap_status st = tmap_model_format_prompt(model, query, TMAP_TEMPLATE_PLAIN, &tail, NULL, err);
    if (st)
        return st;
    size_t bytes = strlen(tail) + 1;
    for (size_t j = 0; j < k; j++)
        bytes += strlen(demos[j].prompt) + strlen(demos[j].response) + sizeof "Query: \nAnswer: \n\n";
    char *text = malloc(bytes), *at = text;
    if (!text) {
        free(tail);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory laying out the prompt of %s", query->id);
    }
    for (size_t j = 0; j < k; j++)
        at += sprintf(at, "Query: %s\nAnswer: %s\n\n", demos[j].prompt, demos[j].response);
    strcpy(at, tail);
    free(tail);
    *out = text;
    return TMAP_OK;
}

static enum tmap_status layout_chat(struct tmap_model *model, const struct tmap_sample *demos, size_t k,
                                    const struct tmap_sample *query, char **out, struct tmap_error *err)
{
    size_t n_turns = query->n_turns;
    for (size_t j = 0; j < k; j++)
        n_turns += demos[j].n_turns + 1;
    struct tmap_turn *turns = calloc(n_turns ? n_turns : 1, sizeof *turns);
    if (!turns)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory laying out the prompt of %s", query->id);
    size_t t = 0;
    for (size_t j = 0; j < k; j++) {
        memcpy(turns + t, demos[j].turns, demos[j].n_turns * sizeof *turns);
        t += demos[j].n_turns;
        turns[t++] = (struct tmap_turn){ "assistant", demos[j].response };
    }
    memcpy(turns + t, query->turns, query->n_turns * sizeof *turns);
    struct tmap_sample conversation = *query;
    conversation.turns = turns;
    conversation.n_turns = n_turns;
    bool fell_back = false;
    enum tmap_status st = tmap_model_format_prompt(model, &conversation, TMAP_TEMPLATE_CHAT, out, &fell_back, err);
    free(turns);
    if (!st && fell_back) {
        free(*out);
        *out = NULL;
        return layout_plain(model, demos, k, query, out, err);
    }
    return st;
}

enum tmap_status tmap_fewshot_layout(struct tmap_model *model, enum tmap_template tmpl,
                                     const struct tmap_sample *demos, size_t k, const struct tmap_sample *query,
                                     char **out, struct tmap_error *err)
{
    *out = NULL;
    return tmpl == TMAP_TEMPLATE_CHAT ? layout_chat(model, demos, k, query, out, err)
                                      : layout_plain(model, demos, k, query, out, err);
}

int32_t tmap_tokens_common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    int32_t n = 0;
    while (n < na && n < nb && a[n] == b[n])
        n++;
    return n;
}

int32_t tmap_fewshot_common_prefix(int32_t *const *tokens, const int32_t *n, size_t count)
{
    if (count < 2)
        return 0;
    int32_t len = n[0] - 1;
    for (size_t i = 1; i < count && len > 0; i++)
        len = tmap_tokens_common_prefix(tokens[0], len, tokens[i], n[i] - 1);
    return len > 0 ? len : 0;
}
