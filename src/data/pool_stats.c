/*
 * pool_stats.c - what is in a pool: records per format and the length
 * distributions of prompts and responses, in characters and, given a model,
 * in that model's tokens (the unit that decides what scoring will cost).
 */
#include "tmap.h"
#include "util/error.h"
#include "util/stats.h"
#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

struct length_columns {
    double *prompt_chars, *response_chars, *prompt_tokens, *response_tokens;
};

static void free_columns(struct length_columns *c)
{
    free(c->prompt_chars);
    free(c->response_chars);
    free(c->prompt_tokens);
    free(c->response_tokens);
}

static enum tmap_status count_tokens(struct tmap_model *model, const char *text, bool add_bos,
                                     double *out, struct tmap_error *err)
{
    int32_t *tokens, n;
    enum tmap_status st = tmap_model_tokenize(model, text, add_bos, &tokens, &n, err);
    free(tokens);
    *out = n;
    return st;
}

static enum tmap_status measure_sample(const struct tmap_pool *pool, size_t i,
                                       struct tmap_model *model, struct length_columns *c,
                                       struct tmap_error *err)
{
    struct tmap_sample s;
    enum tmap_status st = tmap_pool_sample(pool, i, &s, err);
    if (st)
        return st;
    c->prompt_chars[i]   = (double)tmap_utf8_count(s.prompt, strlen(s.prompt));
    c->response_chars[i] = (double)tmap_utf8_count(s.response, strlen(s.response));
    if (model) {
        /* Counted as scoring will see them: the prompt with BOS, the
         * response as a continuation without. */
        st = count_tokens(model, s.prompt, true, &c->prompt_tokens[i], err);
        if (!st)
            st = count_tokens(model, s.response, false, &c->response_tokens[i], err);
    }
    tmap_sample_free(&s);
    return st;
}

enum tmap_status tmap_pool_stats(const struct tmap_pool *pool, struct tmap_model *model,
                                 struct tmap_pool_stats *out, struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = tmap_pool_size(pool);
    out->n_records     = n;
    out->n_rejected    = tmap_pool_n_rejected(pool);
    out->n_blank_lines = tmap_pool_n_blank_lines(pool);
    out->has_tokens    = model != NULL;

    size_t cells = n ? n : 1;
    struct length_columns c = {
        .prompt_chars    = calloc(cells, sizeof(double)),
        .response_chars  = calloc(cells, sizeof(double)),
        .prompt_tokens   = calloc(cells, sizeof(double)),
        .response_tokens = calloc(cells, sizeof(double)),
    };
    enum tmap_status st = TMAP_OK;
    if (!c.prompt_chars || !c.response_chars || !c.prompt_tokens || !c.response_tokens)
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory summarising %zu records", n);

    for (size_t i = 0; i < n && !st; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        out->n_by_format[rec.format]++;
        st = measure_sample(pool, i, model, &c, err);
    }
    if (!st) {
        tmap_length_summarise(c.prompt_chars, n, &out->prompt_chars);
        tmap_length_summarise(c.response_chars, n, &out->response_chars);
        if (model) {
            tmap_length_summarise(c.prompt_tokens, n, &out->prompt_tokens);
            tmap_length_summarise(c.response_tokens, n, &out->response_tokens);
        }
    }
    free_columns(&c);
    return st;
}
