/*
 * corpus.c - a pool as the token sequences training reads: tokenizing, the
 * held-out split, the per-epoch order, and packing into windows.
 *
 * Packing, not padding: llama_opt_epoch trains on fixed windows of n_ctx
 * tokens and labels every position, so padding would train the model to
 * predict padding. Records are laid end to end instead (each starts with
 * BOS and ends with EOS, which mark the boundaries), and the few tokens past
 * the last whole window are left out of that epoch; the per-epoch shuffle
 * makes them different tokens each epoch.
 */
#include "model/model.h"
#include "train/finetune.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ------------------------------------------------------------------------ */
/* Records to tokens                                                        */
/* ------------------------------------------------------------------------ */

/* The layout scoring uses (bench_logprob.c, tmap.h): the prompt tokenized
 * with BOS, the response tokenized on its own; then EOS. */
static enum tmap_status tokenize_sample(struct tmap_model *m, const char *path, const struct tmap_sample *s,
                                        struct ft_seq *out, struct tmap_error *err)
{
    char *prompt = NULL;
    int32_t *pt = NULL, *rt = NULL, np = 0, nr = 0;
    enum tmap_status st = tmap_model_format_prompt(m, s, TMAP_TEMPLATE_PLAIN, &prompt, NULL, err);
    if (!st)
        st = tmap_model_tokenize(m, prompt, true, &pt, &np, err);
    if (!st)
        st = tmap_model_tokenize(m, s->response, false, &rt, &nr, err);
    free(prompt);
    if (!st && nr < 1)
        st = tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: record %s: the response has no tokens", path, s->line,
                       s->id);
    /* A vocabulary without EOS (rare) trains without it. */
    llama_token eos = llama_vocab_eos(m->vocab);
    int32_t n_eos = eos == LLAMA_TOKEN_NULL ? 0 : 1;
    int32_t *all = st ? NULL : malloc((size_t)(np + nr + n_eos) * sizeof *all);
    if (!st && !all)
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory tokenizing record %s", s->id);
    if (!st) {
        memcpy(all, pt, (size_t)np * sizeof *all);
        memcpy(all + np, rt, (size_t)nr * sizeof *all);
        if (n_eos)
            all[np + nr] = eos;
        out->tokens     = all;
        out->n_prompt   = np;
        out->n_response = nr;
        out->n_tokens   = np + nr + n_eos;
    }
    free(pt);
    free(rt);
    return st;
}

enum tmap_status ft_corpus_build(struct tmap_model *m, const struct tmap_pool *pool,
                                 const size_t *idx, size_t n, struct ft_corpus *out,
                                 struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    out->seqs = calloc(n ? n : 1, sizeof *out->seqs);
    if (!out->seqs)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %zu records", n);
    for (size_t i = 0; i < n; i++) {
        struct tmap_sample s;
        enum tmap_status st = tmap_pool_sample(pool, idx ? idx[i] : i, &s, err);
        if (!st) {
            st = tokenize_sample(m, tmap_pool_path(pool), &s, &out->seqs[i], err);
            tmap_sample_clear(&s);
        }
        if (st) {
            ft_corpus_free(out);
            return st;
        }
        out->n++;
        out->n_tokens += out->seqs[i].n_tokens;
    }
    return TMAP_OK;
}

void ft_corpus_free(struct ft_corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->seqs[i].tokens);
    free(c->seqs);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------------ */
/* Split and order                                                          */
/* ------------------------------------------------------------------------ */

/* splitmix64: small, well mixed, and ours, so that a seed names the same
 * split and order on every platform and llama.cpp version. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Fisher-Yates; the modulo bias is below 2^-40 for any pool that fits. */
static void shuffle(size_t *v, size_t n, uint64_t state)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix64(&state) % i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static size_t n_held_out(size_t n, float val_split)
{
    if (val_split <= 0.0f || n < 2)
        return 0;
    size_t k = (size_t)((double)n * val_split + 0.5);
    if (k < 1)
        k = 1;
    return k < n ? k : n - 1;
}

enum tmap_status ft_split(size_t n, float val_split, uint64_t seed, size_t **train, size_t *n_train,
                          size_t **val, size_t *n_val, struct tmap_error *err)
{
    size_t k = n_held_out(n, val_split);
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    *val = malloc((k ? k : 1) * sizeof **val);
    *train = malloc((n - k ? n - k : 1) * sizeof **train);
    if (!perm || !*val || !*train) {
        free(perm);
        free(*val);
        free(*train);
        *val = *train = NULL;
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory splitting %zu records", n);
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    /* A stream of its own (the seed's hash), apart from the epoch orders. */
    shuffle(perm, n, XXH64(&seed, sizeof seed, 0x7661));
    memcpy(*val, perm, k * sizeof *perm);
    memcpy(*train, perm + k, (n - k) * sizeof *perm);
    free(perm);
    qsort(*val, k, sizeof **val, cmp_size);
    qsort(*train, n - k, sizeof **train, cmp_size);
    *n_val = k;
    *n_train = n - k;
    return TMAP_OK;
}

size_t *ft_epoch_order(size_t n, uint64_t seed, int32_t epoch)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return NULL;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    uint64_t key[2] = { seed, (uint64_t)epoch };
    shuffle(order, n, XXH64(key, sizeof key, 0x6570));
    return order;
}

/* ------------------------------------------------------------------------ */
/* Windows                                                                  */
/* ------------------------------------------------------------------------ */

int64_t ft_n_windows(const struct ft_corpus *c, int32_t n_ctx)
{
    return c->n_tokens > 0 ? (c->n_tokens - 1) / n_ctx : 0;
}

/* Copies n tokens of the stream (the records end to end, in order),
 * starting `skip` tokens in. */
static void copy_stream(const struct ft_corpus *c, const size_t *order, int64_t skip, int32_t *out,
                        int64_t n)
{
    int64_t at = 0;
    for (size_t i = 0; i < c->n && at < n; i++) {
        const struct ft_seq *s = &c->seqs[order ? order[i] : i];
        int64_t from = skip < s->n_tokens ? skip : s->n_tokens;
        skip -= from;
        int64_t take = s->n_tokens - from;
        if (take > n - at)
            take = n - at;
        memcpy(out + at, s->tokens + from, (size_t)take * sizeof *out);
        at += take;
    }
}

void ft_pack(const struct ft_corpus *c, const size_t *order, int32_t n_ctx, int64_t n_windows,
             int32_t *data, int32_t *labels)
{
    /* Window w holds inputs stream[w*n_ctx, (w+1)*n_ctx) and the labels one
     * token further on: every window's data are contiguous in the stream. */
    copy_stream(c, order, 0, data, n_windows * n_ctx);
    copy_stream(c, order, 1, labels, n_windows * n_ctx);
}

void ft_pool_fingerprint(const struct tmap_pool *pool, char out[33])
{
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    size_t n = tmap_pool_size(pool);
    XXH3_128bits_update(st, &n, sizeof n);
    for (size_t i = 0; i < n; i++) {
        struct tmap_record r;
        if (tmap_pool_record(pool, i, &r) == TMAP_OK)
            XXH3_128bits_update(st, r.hash, sizeof r.hash);
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}
