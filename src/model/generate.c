/*
 * generate.c - greedy generation, many sequences per llama_decode call.
 *
 * The accuracy metric (docs/design.md section 5, `tmap eval`) reads what the
 * model writes, so this is the one place tmap samples tokens. It runs
 * continuous batching over the context's sequence slots, as logprob.c
 * does: every step is ONE decode call holding the last chosen token of
 * every generating slot, then as many prompt tokens of newly started
 * requests as the batch has room for (logits only at a prompt's last
 * token). A slot whose request ends frees its sequence and takes the next
 * request in the next step, so short answers never wait for long ones.
 *
 * With a shared prefix, sequence 0 holds it (decoded once) and slots use
 * sequences 1..n_seq-1, each starting from a copy of sequence 0
 * (llama_memory_seq_cp shares the cells in the unified cache; nothing is
 * copied). With one sequence only, the lone slot works in sequence 0 itself
 * and trims it back to the prefix after each request.
 *
 * Decoding is greedy: the highest logit wins, the lowest token id on a tie,
 * so the output depends only on the model and the tokens, never on batch
 * layout beyond float rounding (tests check batched == one by one).
 */
#include "model/model.h"
#include "util/error.h"
#include "util/grow.h"

#include <stdlib.h>
#include <string.h>

/* A sequence slot and the request it is working through. */
struct gen_slot {
    bool    busy;
    size_t  request;
    int32_t seq;     /* its KV-cache sequence */
    int32_t n_fed;   /* prompt tokens decoded so far */
    int32_t pos;     /* position of the next token it decodes */
    int32_t n_gen;   /* tokens chosen so far */
    int32_t budget;  /* tokens it may choose (max_tokens, or what the context holds) */
    int32_t pending; /* the last chosen token, decoded in the next step */
    int32_t row;     /* batch row whose logits choose its next token, or -1 */
    char   *text;
    size_t  len, cap;
};

struct gen_run {
    struct tmap_model                  *m;
    const struct tmap_generate_request *requests;
    size_t                              n, next_request;
    const struct tmap_generate_params  *params;
    char                              **outputs;
    int32_t                             n_prefix;
    size_t                              max_stop; /* bytes of the longest stop string */
    struct gen_slot                    *slots;
    int32_t                             n_slots;
    struct llama_batch                  batch;
};

struct tmap_generate_params tmap_generate_default_params(void)
{
    struct tmap_generate_params p = { .max_tokens = 256, .stops = NULL, .n_stops = 0 };
    return p;
}

static enum tmap_status check_args(const struct tmap_model *m, int32_t n_prefix,
                                   const struct tmap_generate_request *requests, size_t n,
                                   const struct tmap_generate_params *p, struct tmap_error *err)
{
    if (p->max_tokens < 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "max_tokens %d is negative", p->max_tokens);
    if (n_prefix < 0 || n_prefix > m->info.n_ctx)
        return tmap_fail(err, TMAP_ERR_USAGE, "a shared prefix of %d tokens does not fit the context of %d",
                         n_prefix, m->info.n_ctx);
    for (size_t i = 0; i < p->n_stops; i++)
        if (!p->stops[i] || !*p->stops[i])
            return tmap_fail(err, TMAP_ERR_USAGE, "stop string %zu is empty (it would stop at once)", i);
    /* The first token is chosen from the prompt's last logits, so a prompt
     * needs a token; the prefix is decoded without logits. */
    for (size_t i = 0; i < n; i++)
        if (requests[i].n_prompt < 1 || !requests[i].prompt)
            return tmap_fail(err, TMAP_ERR_USAGE, "generation request %zu has no prompt tokens", i);
    return TMAP_OK;
}

/* ---- slots -------------------------------------------------------------- */

static bool set_output(struct gen_run *r, size_t q, char *text)
{
    r->outputs[q] = text ? text : strdup("");
    return r->outputs[q] != NULL;
}

/* Hands the slot's text to its output and frees its sequence. With one
 * sequence and a prefix the slot works in sequence 0: trim it back to the
 * prefix instead of dropping the prefix. */
static enum tmap_status finish_slot(struct gen_run *r, struct gen_slot *sl, struct tmap_error *err)
{
    bool ok = set_output(r, sl->request, sl->text);
    sl->text = NULL;
    sl->len = sl->cap = 0;
    sl->busy = false;
    if (!ok)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory generating %zu outputs", r->n);
    llama_pos from = sl->seq == 0 && r->n_prefix > 0 ? r->n_prefix : -1;
    if (!llama_memory_seq_rm(llama_get_memory(r->m->ctx), sl->seq, from, -1))
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: cannot trim sequence 0 back to the prefix; "
                         "use 2 or more parallel sequences (-np)", r->m->info.description);
    return TMAP_OK;
}

/* The tokens request q may choose: the prefix, its prompt and its output
 * stay within one sequence's n_ctx (tmap.h). 0 when the prompt fills it. */
static int32_t budget_of(const struct gen_run *r, size_t q)
{
    int32_t room = r->m->info.n_ctx - r->n_prefix - r->requests[q].n_prompt;
    int32_t max = r->params->max_tokens;
    return room < 0 ? 0 : room < max ? room : max;
}

static void start_slot(struct gen_run *r, struct gen_slot *sl, size_t q)
{
    if (r->n_prefix > 0 && sl->seq != 0)
        llama_memory_seq_cp(llama_get_memory(r->m->ctx), 0, sl->seq, -1, -1);
    sl->busy    = true;
    sl->request = q;
    sl->n_fed   = 0;
    sl->pos     = r->n_prefix;
    sl->n_gen   = 0;
    sl->budget  = budget_of(r, q);
    sl->pending = -1;
    sl->row     = -1;
}

/* Gives every free slot the next request; requests with nothing to
 * generate get "" without a decode. */
static bool assign_free_slots(struct gen_run *r)
{
    for (int32_t s = 0; s < r->n_slots; s++) {
        struct gen_slot *sl = &r->slots[s];
        while (!sl->busy && r->next_request < r->n) {
            size_t q = r->next_request++;
            if (budget_of(r, q) == 0) {
                if (!set_output(r, q, NULL))
                    return false;
                continue;
            }
            start_slot(r, sl, q);
        }
    }
    return true;
}

/* ---- one step ----------------------------------------------------------- */

static void add_row(struct gen_run *r, struct gen_slot *sl, int32_t token, bool logits)
{
    int32_t i = r->batch.n_tokens++;
    r->batch.token[i]     = token;
    r->batch.pos[i]       = sl->pos++;
    r->batch.n_seq_id[i]  = 1;
    r->batch.seq_id[i][0] = sl->seq;
    r->batch.logits[i]    = logits;
    if (logits)
        sl->row = i;
}

/* Generating slots first, one token each, so a long prompt arriving never
 * delays them; then prompt tokens fill the room left. */
static int32_t fill_batch(struct gen_run *r)
{
    int32_t cap = r->m->info.n_batch;
    r->batch.n_tokens = 0;
    for (int32_t s = 0; s < r->n_slots; s++)
        r->slots[s].row = -1;
    for (int32_t s = 0; s < r->n_slots && r->batch.n_tokens < cap; s++) {
        struct gen_slot *sl = &r->slots[s];
        if (sl->busy && sl->pending >= 0)
            add_row(r, sl, sl->pending, true);
    }
    for (int32_t s = 0; s < r->n_slots; s++) {
        struct gen_slot *sl = &r->slots[s];
        if (!sl->busy)
            continue;
        const struct tmap_generate_request *q = &r->requests[sl->request];
        while (sl->n_fed < q->n_prompt && r->batch.n_tokens < cap) {
            bool last = sl->n_fed == q->n_prompt - 1;
            add_row(r, sl, q->prompt[sl->n_fed++], last);
        }
    }
    return r->batch.n_tokens;
}

/* Highest logit; on a tie the lowest id, so the choice never depends on
 * how a vector loop would order equal values. */
static int32_t argmax(const float *logits, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static bool append_piece(struct gen_run *r, struct gen_slot *sl, int32_t token)
{
    char small[128];
    int32_t n = llama_token_to_piece(r->m->vocab, token, small, sizeof small, 0, false);
    char *piece = small;
    if (n < 0) { /* longer than any real vocabulary's pieces, but possible */
        if (!(piece = malloc((size_t)-n)))
            return false;
        n = llama_token_to_piece(r->m->vocab, token, piece, -n, 0, false);
    }
    bool ok = n >= 0 && tmap_grow((void **)&sl->text, &sl->cap, sl->len + (size_t)n + 1, 1);
    if (ok) {
        memcpy(sl->text + sl->len, piece, (size_t)n);
        sl->len += (size_t)n;
        sl->text[sl->len] = '\0';
    }
    if (piece != small)
        free(piece);
    return ok;
}

/* Cuts the text before the earliest stop string that the piece appended
 * at `from` completed; true when one did. Text before `from` held none, so
 * only matches reaching into the new bytes are looked for. */
static bool cut_at_stop(struct gen_run *r, struct gen_slot *sl, size_t from)
{
    size_t start = from + 1 > r->max_stop ? from + 1 - r->max_stop : 0;
    const char *cut = NULL;
    for (size_t i = 0; i < r->params->n_stops; i++) {
        const char *hit = strstr(sl->text + start, r->params->stops[i]);
        if (hit && (!cut || hit < cut))
            cut = hit;
    }
    if (!cut)
        return false;
    sl->len = (size_t)(cut - sl->text);
    sl->text[sl->len] = '\0';
    return true;
}

/* Chooses the next token of every slot whose logits this step produced,
 * and ends the requests that this token ends. */
static enum tmap_status choose_tokens(struct gen_run *r, struct tmap_error *err)
{
    for (int32_t s = 0; s < r->n_slots; s++) {
        struct gen_slot *sl = &r->slots[s];
        if (!sl->busy || sl->row < 0)
            continue;
        int32_t token = argmax(llama_get_logits_ith(r->m->ctx, sl->row), r->m->info.n_vocab);
        sl->n_gen++;
        sl->pending = -1;
        bool done = llama_vocab_is_eog(r->m->vocab, token); /* not part of the text */
        if (!done) {
            size_t from = sl->len;
            if (!append_piece(r, sl, token))
                return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory generating %zu outputs", r->n);
            done = cut_at_stop(r, sl, from) || sl->n_gen >= sl->budget;
        }
        if (!done) {
            sl->pending = token;
            continue;
        }
        enum tmap_status st = finish_slot(r, sl, err);
        if (st)
            return st;
    }
    return TMAP_OK;
}

/* ---- the run ------------------------------------------------------------ */

static enum tmap_status run_steps(struct gen_run *r, const int32_t *prefix, struct tmap_error *err)
{
    enum tmap_status st = TMAP_OK;
    if (r->n_prefix > 0)
        st = tmap_model_decode_prefix(r->m, prefix, r->n_prefix, err);
    else
        llama_memory_clear(llama_get_memory(r->m->ctx), true);
    while (!st) {
        if (!assign_free_slots(r))
            return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory generating %zu outputs", r->n);
        if (fill_batch(r) == 0)
            break;
        st = tmap_model_decode(r->m, r->batch, err);
        if (!st)
            st = choose_tokens(r, err);
    }
    return st;
}

static bool alloc_run(struct gen_run *r)
{
    int32_t n_seq = r->m->info.n_seq;
    /* Sequence 0 keeps the prefix while others work, unless it is the only one. */
    bool own_prefix_seq = r->n_prefix > 0 && n_seq > 1;
    r->n_slots = own_prefix_seq ? n_seq - 1 : n_seq;
    r->slots = calloc((size_t)r->n_slots, sizeof *r->slots);
    r->batch = llama_batch_init(r->m->info.n_batch, 0, 1);
    if (!r->slots || !r->batch.token)
        return false;
    for (int32_t s = 0; s < r->n_slots; s++)
        r->slots[s].seq = own_prefix_seq ? s + 1 : s;
    for (size_t i = 0; i < r->params->n_stops; i++) {
        size_t len = strlen(r->params->stops[i]);
        r->max_stop = len > r->max_stop ? len : r->max_stop;
    }
    return true;
}

static void free_run(struct gen_run *r)
{
    for (int32_t s = 0; r->slots && s < r->n_slots; s++)
        free(r->slots[s].text);
    free(r->slots);
    llama_batch_free(r->batch);
}

enum tmap_status tmap_model_generate(struct tmap_model *m, const int32_t *prefix, int32_t n_prefix,
                                     const struct tmap_generate_request *requests, size_t n,
                                     const struct tmap_generate_params *params, char **outputs,
                                     struct tmap_error *err)
{
    for (size_t i = 0; i < n; i++)
        outputs[i] = NULL;
    enum tmap_status st = check_args(m, n_prefix, requests, n, params, err);
    if (!st)
        st = tmap_model_prepare_capture(m, false, err);
    if (st)
        return st;
    struct gen_run r = { .m = m, .requests = requests, .n = n, .params = params,
                         .outputs = outputs, .n_prefix = n_prefix };
    if (!alloc_run(&r))
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory generating %zu outputs", n);
    else
        st = run_steps(&r, prefix, err);
    free_run(&r);
    llama_memory_clear(llama_get_memory(m->ctx), true);
    /* All or nothing: a caller never has to tell finished outputs apart. */
    for (size_t i = 0; st && i < n; i++) {
        free(outputs[i]);
        outputs[i] = NULL;
    }
    return st;
}
