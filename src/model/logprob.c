/*
 * logprob.c - teacher-forced log-probabilities of responses, many sequences
 * per llama_decode call.
 *
 * This is the inner loop of most indicators (loss, ifd) and of the ICL proxy,
 * and nearly all of tmap's compute, so it never decodes one sample per call.
 * It runs continuous batching over the context's n_seq sequence slots: each
 * decode call is filled with up to n_batch tokens taken from every busy
 * slot; a slot whose sample is done is cleared and takes the next request at
 * once. Long samples simply span several calls. There is no padding, so
 * sorting by length is not needed for packing.
 *
 * Only positions whose next token is a response token ask for logits, and
 * the last token of a sample is never decoded at all (nothing reads its
 * logits).
 */
#include "model/model.h"
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One request as it will be decoded, after the context-overflow policy. */
struct planned {
    const int32_t *prompt;   /* first token kept is prompt[0] (BOS) */
    int32_t        n_drop;   /* prompt tokens dropped after prompt[0] */
    int32_t        n_prompt; /* prompt tokens kept, BOS included */
    const int32_t *response;
    int32_t        n_response;
};

static int32_t planned_len(const struct planned *p)
{
    return p->n_prompt + p->n_response;
}

/* Token i of the sequence as decoded (prompt kept, then response). */
static int32_t planned_token(const struct planned *p, int32_t i)
{
    if (i < p->n_prompt)
        return i == 0 ? p->prompt[0] : p->prompt[i + p->n_drop];
    return p->response[i - p->n_prompt];
}

/* The overflow policy of tmap.h: drop prompt tokens from the left, keeping
 * the first one (BOS); skip when the response cannot fit with one prompt
 * token before it. */
static enum tmap_fit plan(const struct tmap_logprob_request *r, int32_t n_ctx, struct planned *p)
{
    memset(p, 0, sizeof *p);
    if (r->n_prompt < 1 || r->n_response < 1 || r->n_response + 1 > n_ctx)
        return TMAP_FIT_SKIPPED;
    p->prompt     = r->prompt;
    p->n_prompt   = r->n_prompt;
    p->response   = r->response;
    p->n_response = r->n_response;
    int32_t over = r->n_prompt + r->n_response - n_ctx;
    if (over <= 0)
        return TMAP_FIT_WHOLE;
    p->n_drop    = over;
    p->n_prompt -= over;
    return TMAP_FIT_TRUNCATED;
}

/* A sequence slot of the context and the sample it is working through. */
struct slot {
    bool    busy;
    size_t  request;
    int32_t next;   /* next position to decode */
    int32_t n_feed; /* positions to decode: all but the last token */
};

/* Where each output row of the current batch goes. */
struct output_ref {
    size_t  request;
    int32_t target; /* the token whose log-probability this row gives */
};

struct run {
    struct tmap_model                 *m;
    struct planned                    *plans;
    struct tmap_logprob_result        *results;
    size_t                             n;
    size_t                             next_request;
    struct slot                       *slots;
    struct llama_batch                 batch;
    struct output_ref                 *refs;
};

/* log softmax(logits)[target], in double so long responses sum stably. */
static double token_logprob(const float *logits, int32_t n_vocab, int32_t target)
{
    float max = logits[0];
    for (int32_t v = 1; v < n_vocab; v++)
        if (logits[v] > max)
            max = logits[v];
    double sum = 0.0;
    for (int32_t v = 0; v < n_vocab; v++)
        sum += exp((double)logits[v] - max);
    return (double)logits[target] - max - log(sum);
}

static void assign_free_slots(struct run *r)
{
    for (int32_t s = 0; s < r->m->info.n_seq; s++) {
        struct slot *sl = &r->slots[s];
        while (!sl->busy && r->next_request < r->n) {
            size_t q = r->next_request++;
            if (r->results[q].fit == TMAP_FIT_SKIPPED)
                continue;
            sl->busy    = true;
            sl->request = q;
            sl->next    = 0;
            sl->n_feed  = planned_len(&r->plans[q]) - 1;
        }
    }
}

/* Fills the batch from every busy slot in turn; returns the token count. */
static int32_t fill_batch(struct run *r)
{
    int32_t cap = r->m->info.n_batch, n = 0;
    r->batch.n_tokens = 0;
    for (int32_t s = 0; s < r->m->info.n_seq && n < cap; s++) {
        struct slot *sl = &r->slots[s];
        if (!sl->busy)
            continue;
        const struct planned *p = &r->plans[sl->request];
        for (; sl->next < sl->n_feed && n < cap; sl->next++, n++) {
            int32_t pos = sl->next;
            bool want = pos + 1 >= p->n_prompt; /* next token is a response token */
            r->batch.token[n]     = planned_token(p, pos);
            r->batch.pos[n]       = pos;
            r->batch.n_seq_id[n]  = 1;
            r->batch.seq_id[n][0] = s;
            r->batch.logits[n]    = want;
            r->refs[n].request    = sl->request;
            r->refs[n].target     = want ? planned_token(p, pos + 1) : -1;
        }
    }
    r->batch.n_tokens = n;
    return n;
}

static void collect_outputs(struct run *r)
{
    int32_t n_vocab = r->m->info.n_vocab;
    for (int32_t i = 0; i < r->batch.n_tokens; i++) {
        if (!r->batch.logits[i])
            continue;
        const float *logits = llama_get_logits_ith(r->m->ctx, i);
        struct tmap_logprob_result *res = &r->results[r->refs[i].request];
        res->sum_logprob += token_logprob(logits, n_vocab, r->refs[i].target);
        res->n_tokens++;
    }
}

static void release_finished_slots(struct run *r)
{
    llama_memory_t mem = llama_get_memory(r->m->ctx);
    for (int32_t s = 0; s < r->m->info.n_seq; s++) {
        struct slot *sl = &r->slots[s];
        if (sl->busy && sl->next >= sl->n_feed) {
            llama_memory_seq_rm(mem, s, -1, -1);
            sl->busy = false;
        }
    }
}

static enum tmap_status run_all(struct run *r, struct tmap_error *err)
{
    llama_memory_clear(llama_get_memory(r->m->ctx), true);
    for (;;) {
        assign_free_slots(r);
        if (fill_batch(r) == 0)
            return TMAP_OK;
        enum tmap_status st = tmap_model_decode(r->m, r->batch, err);
        if (st) {
            llama_memory_clear(llama_get_memory(r->m->ctx), true);
            return st;
        }
        collect_outputs(r);
        release_finished_slots(r);
    }
}

enum tmap_status tmap_model_logprob(struct tmap_model *m, const struct tmap_logprob_request *requests,
                                    size_t n, struct tmap_logprob_result *results,
                                    struct tmap_error *err)
{
    struct run r = { .m = m, .results = results, .n = n };
    r.plans = calloc(n ? n : 1, sizeof *r.plans);
    r.slots = calloc((size_t)m->info.n_seq, sizeof *r.slots);
    r.refs  = calloc((size_t)m->info.n_batch, sizeof *r.refs);
    r.batch = llama_batch_init(m->info.n_batch, 0, 1);
    enum tmap_status st = TMAP_OK;
    if (!r.plans || !r.slots || !r.refs || !r.batch.token) {
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory scoring %zu samples", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].fit = plan(&requests[i], m->info.n_ctx, &r.plans[i]);
        results[i].n_prompt_dropped = r.plans[i].n_drop;
    }
    st = run_all(&r, err);
out:
    llama_batch_free(r.batch);
    free(r.refs);
    free(r.slots);
    free(r.plans);
    return st;
}
