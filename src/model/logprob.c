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
 * the last token of a sample is not decoded at all unless choices or an
 * embedding need it. An embedding is the mean of the final hidden states
 * over the last prompt token and every response token, the positions that
 * are outputs anyway (read through model.c's eval callback), so it costs
 * nothing beyond the scoring pass itself.
 */
#include "model/logsumexp.h"
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
    bool           feed_last; /* decode the last token too (choices, embedding) */
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
    bool extras = r->embedding || r->n_choices > 0;
    if (r->n_prompt < 1 || r->n_response < 0 || (r->n_response == 0 && !extras) ||
        r->n_response + 1 > n_ctx)
        return TMAP_FIT_SKIPPED;
    p->prompt     = r->prompt;
    p->n_prompt   = r->n_prompt;
    p->response   = r->response;
    p->n_response = r->n_response;
    p->feed_last  = extras;
    int32_t over = r->n_prompt + r->n_response - n_ctx;
    if (over <= 0)
        return TMAP_FIT_WHOLE;
    p->n_drop    = over;
    p->n_prompt -= over;
    return TMAP_FIT_TRUNCATED;
}

int32_t tmap_model_logprob_cost(const struct tmap_model *m, const struct tmap_logprob_request *r)
{
    struct planned p;
    if (plan(r, m->info.n_ctx, &p) == TMAP_FIT_SKIPPED)
        return 0;
    return planned_len(&p) - (p.feed_last ? 0 : 1);
}

/* After a shared prefix nothing is truncated: a request that does not fit
 * in the room the prefix leaves is skipped, and the prompt must hold at
 * least one token (the first scored token is predicted from it). */
static enum tmap_fit plan_after_prefix(const struct tmap_logprob_request *r, int32_t room, struct planned *p)
{
    memset(p, 0, sizeof *p);
    if (r->n_prompt < 1 || r->n_prompt + r->n_response > room)
        return TMAP_FIT_SKIPPED;
    enum tmap_fit fit = plan(r, room, p);
    return fit == TMAP_FIT_WHOLE ? fit : TMAP_FIT_SKIPPED;
}

/* A sequence slot of the context and the sample it is working through. */
struct slot {
    bool    busy;
    size_t  request;
    int32_t next;     /* next position to decode */
    int32_t n_feed;   /* positions to decode */
    double *pooled;   /* running sum of hidden states (embedding requests) */
};

/* What one position of the current batch contributes to its request. */
struct output_ref {
    int32_t slot;
    int32_t pos;
    int32_t target; /* the token whose log-probability this row gives, or -1 */
};

/*
 * One llama.cpp context and the batch it is working on. A model loaded
 * with n_lanes 2 has two contexts over the same weights (model.h), and the
 * run alternates between them: while the device computes one lane's call,
 * the host reads the other's logits and queues its next call. With one
 * lane the loop below is the plain decode, read, refill.
 */
struct lane {
    struct tmap_model   *m;          /* the model, or its twin: whose context this lane decodes in */
    struct slot         *slots;
    int32_t              n_slots;    /* n_seq, less the prefix's sequence 0 */
    struct llama_batch   batch;
    struct output_ref   *refs;
    const float        **row_logits; /* per batch row: its logits, when read */
    double              *row_norm;   /* ... and their log-sum-exp */
    bool                 in_flight;  /* batch decoded, outputs not read yet */
};

struct run {
    struct tmap_model                 *m;
    const struct tmap_logprob_request *requests;
    struct planned                    *plans;
    struct tmap_logprob_result        *results;
    size_t                             n;
    size_t                             next_request;
    struct lane                        lanes[2];
    int32_t                            n_lanes;
    bool                               embeddings; /* some request wants one: capture hidden states */
    const int32_t                     *prefix;     /* shared by every request, or NULL */
    int32_t                            n_prefix;
};

/* The KV-cache sequence of slot s: sequence 0 holds a shared prefix. */
static int32_t slot_seq(const struct run *r, int32_t s)
{
    return r->n_prefix > 0 ? s + 1 : s;
}

/*
 * Requests start only while the tokens waiting to be decoded are fewer than
 * one micro-batch (n_ubatch: llama.cpp computes a call in micro-batches of
 * that size anyway). Every sequence in the unified KV cache widens the
 * attention window of every token decoded beside it (the mask hides the
 * other sequences' cells, but they are still visited), so filling all n_seq
 * slots at once made each token attend over every slot's cells: on the
 * 64-wide test model the shared-prefix proxy spent a quarter of its time in
 * attention, and bench/proxy's naive arm ran 1.8x faster with 2 sequences
 * than with 8.
 * With this rule a call holds about one micro-batch of new tokens, so the
 * matrix products see full micro-batches as before, and the window is the
 * prefix plus what is in flight (measured: docs/scoring.md).
 */
static void assign_free_slots(struct run *r, struct lane *ln)
{
    llama_memory_t mem = llama_get_memory(ln->m->ctx);
    int32_t budget = ln->m->n_ubatch, waiting = 0;
    for (int32_t s = 0; s < ln->n_slots; s++)
        if (ln->slots[s].busy)
            waiting += ln->slots[s].n_feed - ln->slots[s].next;
    for (int32_t s = 0; s < ln->n_slots && waiting < budget; s++) {
        struct slot *sl = &ln->slots[s];
        while (!sl->busy && r->next_request < r->n) {
            size_t q = r->next_request++;
            if (r->results[q].fit == TMAP_FIT_SKIPPED)
                continue;
            const struct planned *p = &r->plans[q];
            sl->busy    = true;
            sl->request = q;
            sl->next    = 0;
            sl->n_feed  = planned_len(p) - (p->feed_last ? 0 : 1);
            if (sl->pooled)
                memset(sl->pooled, 0, (size_t)r->m->info.n_embd * sizeof *sl->pooled);
            if (r->n_prefix > 0)
                llama_memory_seq_cp(mem, 0, slot_seq(r, s), -1, -1);
            waiting += sl->n_feed;
        }
    }
}

/* Does position pos of this request need its output row? */
static bool wants_output(const struct tmap_logprob_request *q, const struct planned *p, int32_t pos)
{
    int32_t last = planned_len(p) - 1;
    if (pos + 1 >= p->n_prompt && pos < last)
        return true; /* predicts a response token */
    if (q->n_choices > 0 && pos == last)
        return true;
    return q->embedding && pos + 1 >= p->n_prompt;
}

/* Fills the lane's batch from every busy slot in turn; returns the token count. */
static int32_t fill_batch(struct run *r, struct lane *ln)
{
    int32_t cap = r->m->info.n_batch, n = 0;
    for (int32_t s = 0; s < ln->n_slots && n < cap; s++) {
        struct slot *sl = &ln->slots[s];
        if (!sl->busy)
            continue;
        const struct planned *p = &r->plans[sl->request];
        const struct tmap_logprob_request *q = &r->requests[sl->request];
        int32_t last = planned_len(p) - 1;
        for (; sl->next < sl->n_feed && n < cap; sl->next++, n++) {
            int32_t pos = sl->next;
            bool predicts = pos + 1 >= p->n_prompt && pos < last;
            ln->batch.token[n]     = planned_token(p, pos);
            ln->batch.pos[n]       = r->n_prefix + pos;
            ln->batch.n_seq_id[n]  = 1;
            ln->batch.seq_id[n][0] = slot_seq(r, s);
            ln->batch.logits[n]    = wants_output(q, p, pos);
            ln->refs[n].slot       = s;
            ln->refs[n].pos        = pos;
            ln->refs[n].target     = predicts ? planned_token(p, pos + 1) : -1;
        }
    }
    ln->batch.n_tokens = n;
    return n;
}

static void collect_row(struct run *r, struct lane *ln, int32_t i, int32_t output_row)
{
    const struct output_ref *ref = &ln->refs[i];
    struct slot *sl = &ln->slots[ref->slot];
    const struct tmap_logprob_request *q = &r->requests[sl->request];
    const struct planned *p = &r->plans[sl->request];
    struct tmap_logprob_result *res = &r->results[sl->request];

    if (ln->row_logits[i]) {
        const float *logits = ln->row_logits[i];
        double norm = ln->row_norm[i];
        if (ref->target >= 0) {
            double lp = (double)logits[ref->target] - norm;
            res->sum_logprob += lp;
            res->n_tokens++;
            int32_t at = ref->pos + 1 - p->n_prompt; /* the response token this row predicts */
            if (q->token_logprobs && at >= 0 && at < p->n_response)
                q->token_logprobs[at] = lp;
        } else {
            for (int32_t c = 0; c < q->n_choices; c++)
                q->choice_logprobs[c] = (double)logits[q->choices[c]] - norm;
        }
    }
    if (q->embedding && ref->pos + 1 >= p->n_prompt) {
        const float *h = ln->m->hidden + (size_t)output_row * (size_t)r->m->info.n_embd;
        for (int32_t d = 0; d < r->m->info.n_embd; d++)
            sl->pooled[d] += h[d];
    }
}

/* Does batch row i read logits (a scored token, or the choices)? */
static bool row_reads_logits(const struct run *r, const struct lane *ln, int32_t i)
{
    const struct output_ref *ref = &ln->refs[i];
    const struct slot *sl = &ln->slots[ref->slot];
    bool last = ref->pos == planned_len(&r->plans[sl->request]) - 1;
    return ref->target >= 0 || (last && r->requests[sl->request].n_choices > 0);
}

static void collect_outputs(struct run *r, struct lane *ln)
{
    /* The log-softmax normalisers are the costly part (a pass over the
     * vocabulary per row): compute them on every thread the model uses,
     * which sit idle between decode calls anyway. Each row is computed
     * the same way whatever the thread count, and the sums below run in
     * row order, so results do not depend on it. */
    int32_t n = ln->batch.n_tokens, n_vocab = r->m->info.n_vocab;
    for (int32_t i = 0; i < n; i++)
        ln->row_logits[i] =
            ln->batch.logits[i] && row_reads_logits(r, ln, i) ? llama_get_logits_ith(ln->m->ctx, i) : NULL;
#pragma omp parallel for num_threads(r->m->n_threads) schedule(static)
    for (int32_t i = 0; i < n; i++)
        if (ln->row_logits[i])
            ln->row_norm[i] = tmap_log_sum_exp(ln->row_logits[i], n_vocab);
    /* Output rows come in batch order: the k-th flagged token is hidden row k. */
    for (int32_t i = 0, row = 0; i < n; i++)
        if (ln->batch.logits[i])
            collect_row(r, ln, i, row++);
}

/* Mean over the pooled positions, then unit length (cosine = dot product). */
static void finish_embedding(struct run *r, const struct slot *sl)
{
    const struct tmap_logprob_request *q = &r->requests[sl->request];
    int32_t n_embd = r->m->info.n_embd;
    double norm = 0.0;
    for (int32_t d = 0; d < n_embd; d++)
        norm += sl->pooled[d] * sl->pooled[d];
    norm = norm > 0.0 ? sqrt(norm) : 1.0;
    for (int32_t d = 0; d < n_embd; d++)
        q->embedding[d] = (float)(sl->pooled[d] / norm);
}

static void release_finished_slots(struct run *r, struct lane *ln)
{
    llama_memory_t mem = llama_get_memory(ln->m->ctx);
    for (int32_t s = 0; s < ln->n_slots; s++) {
        struct slot *sl = &ln->slots[s];
        if (sl->busy && sl->next >= sl->n_feed) {
            if (r->requests[sl->request].embedding)
                finish_embedding(r, sl);
            llama_memory_seq_rm(mem, slot_seq(r, s), -1, -1);
            sl->busy = false;
        }
    }
}

/* A lane's context, ready for the run: capture as asked, memory empty,
 * the shared prefix (if any) in sequence 0. */
static enum tmap_status start_lane(struct run *r, struct lane *ln, struct tmap_error *err)
{
    /* First: a switch of eval callback recreates the context. */
    enum tmap_status st = tmap_model_prepare_capture(ln->m, r->embeddings, err);
    if (st)
        return st;
    if (r->n_prefix > 0)
        return tmap_model_decode_prefix(ln->m, r->prefix, r->n_prefix, err); /* clears the memory first */
    llama_memory_clear(llama_get_memory(ln->m->ctx), true);
    return TMAP_OK;
}

static enum tmap_status run_all(struct run *r, struct tmap_error *err)
{
    enum tmap_status st = TMAP_OK;
    for (int32_t l = 0; l < r->n_lanes && !st; l++)
        st = start_lane(r, &r->lanes[l], err);
    /* Each pass reads what a lane's last call gave, then queues its next
     * call; llama_decode returns before a GPU has finished, so with two
     * lanes one computes while the host reads the other. The requests
     * each lane takes depend only on token counts: results are the same
     * from run to run. */
    for (bool queued = !st; queued && !st;) {
        queued = false;
        for (int32_t l = 0; l < r->n_lanes && !st; l++) {
            struct lane *ln = &r->lanes[l];
            if (ln->in_flight) {
                collect_outputs(r, ln);
                release_finished_slots(r, ln);
                ln->in_flight = false;
            }
            assign_free_slots(r, ln);
            if (fill_batch(r, ln) == 0)
                continue;
            st = tmap_model_decode(ln->m, ln->batch, err);
            ln->in_flight = queued = !st;
        }
    }
    for (int32_t l = 0; l < r->n_lanes; l++) {
        struct tmap_model *lm = r->lanes[l].m;
        lm->capture = false;
        if (lm->ctx)
            llama_memory_clear(llama_get_memory(lm->ctx), true);
    }
    return st;
}

static bool alloc_lane(struct run *r, struct lane *ln)
{
    const struct tmap_model_info *info = &r->m->info;
    ln->slots = calloc((size_t)info->n_seq, sizeof *ln->slots);
    ln->refs  = calloc((size_t)info->n_batch, sizeof *ln->refs);
    ln->row_logits = calloc((size_t)info->n_batch, sizeof *ln->row_logits);
    ln->row_norm = calloc((size_t)info->n_batch, sizeof *ln->row_norm);
    ln->batch = llama_batch_init(info->n_batch, 0, 1);
    if (!ln->slots || !ln->refs || !ln->row_logits || !ln->row_norm || !ln->batch.token)
        return false;
    for (int32_t s = 0; r->embeddings && s < info->n_seq; s++)
        if (!(ln->slots[s].pooled = calloc((size_t)info->n_embd, sizeof(double))))
            return false;
    return true;
}

static void free_lane(const struct run *r, struct lane *ln)
{
    for (int32_t s = 0; ln->slots && s < r->m->info.n_seq; s++)
        free(ln->slots[s].pooled);
    if (ln->batch.token)
        llama_batch_free(ln->batch);
    free(ln->refs);
    free(ln->row_logits);
    free(ln->row_norm);
    free(ln->slots);
}

/* Both entry points: plan every request, then run the slots. */
static enum tmap_status logprob_run(struct tmap_model *m, const int32_t *prefix, int32_t n_prefix,
                                    const struct tmap_logprob_request *requests, size_t n,
                                    struct tmap_logprob_result *results, struct tmap_error *err)
{
    struct run r = { .m = m, .requests = requests, .results = results, .n = n,
                     .prefix = prefix, .n_prefix = n_prefix };
    int32_t n_slots = m->info.n_seq - (n_prefix > 0 ? 1 : 0);
    if (n_slots < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "a shared prefix needs at least 2 parallel sequences (-np), not %d",
                         m->info.n_seq);
    r.n_lanes = m->twin ? 2 : 1;
    r.lanes[0].m = m;
    r.lanes[1].m = m->twin;
    for (size_t i = 0; i < n; i++)
        r.embeddings |= requests[i].embedding != NULL;
    enum tmap_status st = TMAP_OK;
    r.plans = calloc(n ? n : 1, sizeof *r.plans);
    bool ok = r.plans != NULL;
    for (int32_t l = 0; l < r.n_lanes; l++) {
        r.lanes[l].n_slots = n_slots;
        ok = ok && alloc_lane(&r, &r.lanes[l]);
    }
    if (!ok) {
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory scoring %zu samples", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].fit = n_prefix > 0 ? plan_after_prefix(&requests[i], m->info.n_ctx - n_prefix, &r.plans[i])
                                      : plan(&requests[i], m->info.n_ctx, &r.plans[i]);
        results[i].n_prompt_dropped = r.plans[i].n_drop;
    }
    st = run_all(&r, err);
out:
    for (int32_t l = 0; l < r.n_lanes; l++)
        free_lane(&r, &r.lanes[l]);
    free(r.plans);
    return st;
}

enum tmap_status tmap_model_logprob(struct tmap_model *m, const struct tmap_logprob_request *requests,
                                    size_t n, struct tmap_logprob_result *results,
                                    struct tmap_error *err)
{
    return logprob_run(m, NULL, 0, requests, n, results, err);
}

enum tmap_status tmap_model_logprob_shared(struct tmap_model *m, const int32_t *prefix, int32_t n_prefix,
                                           const struct tmap_logprob_request *requests, size_t n,
                                           struct tmap_logprob_result *results, struct tmap_error *err)
{
    if (n_prefix < 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "prefix length %d is negative", n_prefix);
    return logprob_run(m, prefix, n_prefix, requests, n, results, err);
}
