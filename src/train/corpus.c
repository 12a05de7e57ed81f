/*
 * corpus.c - a pool as the token sequences training reads: tokenizing, the
 * held-out split, the per-epoch order, and packing into windows.
 *
 * Packing, not padding: llama_opt_epoch trains on fixed windows of n_ctx
 * tokens and labels every position, so padding would train the model to
 * predict padding. Records are laid end to end instead (each starts with
 * BOS and ends with EOS, which mark the boundaries), and every window starts
 * at the start of a record. Laid end to end across window edges, about half
 * of GSM8K's records would be cut in two at 512 tokens, their answers
 * trained without their questions: the link from question to answer is
 * what the base model must learn, and scoring always reads a record from
 * its first token. So whole records fill a window, a record from a little
 * further on fills its tail where one fits, and the rest of the tail is the
 * beginning of the next record (trained again, whole, in the next window).
 * Only a record longer than a window is cut, into window-sized chunks.
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

/* The layout scoring uses (tmap.h): the prompt under tmpl (BOS first), the
 * response's tokens as they follow it; then what closes the turn (EOS, or a
 * chat template's end-of-turn markup: tmap_model_tokenize_turn). */
static enum tmap_status tokenize_sample(struct tmap_model *m, const char *path, const struct tmap_sample *s,
                                        enum tmap_template tmpl, struct ft_seq *out, struct tmap_error *err)
{
    char *prompt = NULL;
    int32_t *pt = NULL, *rt = NULL, *et = NULL, np = 0, nr = 0, ne = 0;
    enum tmap_status st = tmap_model_format_prompt(m, s, tmpl, &prompt, NULL, err);
    if (!st)
        st = tmap_model_tokenize_prompt(m, prompt, tmpl, &pt, &np, err);
    if (!st)
        st = tmap_model_tokenize_turn(m, s, tmpl, &rt, &nr, &et, &ne, err);
    free(prompt);
    if (!st && nr < 1)
        st = tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: record %s: the response has no tokens", path, s->line,
                       s->id);
    int32_t *all = st ? NULL : malloc((size_t)(np + nr + ne) * sizeof *all);
    if (!st && !all)
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory tokenizing record %s", s->id);
    if (!st) {
        memcpy(all, pt, (size_t)np * sizeof *all);
        memcpy(all + np, rt, (size_t)nr * sizeof *all);
        if (ne)
            memcpy(all + np + nr, et, (size_t)ne * sizeof *all);
        out->tokens     = all;
        out->n_prompt   = np;
        out->n_response = nr;
        out->n_tokens   = np + nr + ne;
        out->n_response_bytes = (int64_t)strlen(s->response);
    }
    free(pt);
    free(rt);
    free(et);
    return st;
}

enum tmap_status ft_corpus_build(struct tmap_model *m, const struct tmap_pool *pool,
                                 const size_t *idx, size_t n, enum tmap_template tmpl, struct ft_corpus *out,
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
            st = tokenize_sample(m, tmap_pool_path(pool), &s, tmpl, &out->seqs[i], err);
            tmap_sample_free(&s);
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

/* How far ahead the packer looks for a record that fills a window's tail. */
#define PACK_LOOKAHEAD 64

/* A window holds n_ctx inputs and one more token for the last label: a
 * slice of n_ctx + 1 tokens. A record is laid out as chunks: tokens
 * [j * n_ctx, j * n_ctx + n_ctx + 1), the last one shorter; a record that
 * fits a window is one chunk. */
struct chunk {
    size_t  rec;
    int32_t from, n;
};

static size_t count_chunks(const struct ft_corpus *c, int32_t n_ctx)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        k += c->seqs[i].n_tokens > n_ctx + 1 ? (size_t)(c->seqs[i].n_tokens - 2) / (size_t)n_ctx + 1 : 1;
    return k;
}

static void list_chunks(const struct ft_corpus *c, const size_t *order, int32_t n_ctx, struct chunk *out)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t rec = order ? order[i] : i;
        int32_t len = c->seqs[rec].n_tokens;
        for (int32_t from = 0;; from += n_ctx) {
            int32_t n = len - from < n_ctx + 1 ? len - from : n_ctx + 1;
            out[k++] = (struct chunk){ rec, from, n };
            if (from + n >= len)
                break;
        }
    }
}

/* Places the chunks into windows: every window starts at the start of a
 * chunk; whole chunks go in while they fit, in order, then the first of the
 * next PACK_LOOKAHEAD that fits the tail; what is left is filled with the
 * beginning of the next chunk, which then starts the following window in
 * full (the last window's tail repeats the epoch's first chunks, so every
 * record is trained whole each epoch). Returns the number of windows;
 * writes them when slices != NULL. */
static int64_t place(const struct ft_corpus *c, struct chunk *ch, size_t n_chunks, int32_t n_ctx,
                     int32_t *slices, bool *taken)
{
    int64_t w = 0;
    size_t next = 0; /* the first chunk not yet placed */
    const int32_t cap = n_ctx + 1;
    while (next < n_chunks) {
        int32_t *out = slices ? slices + w * cap : NULL;
        int32_t fill = 0;
        for (size_t j = next; j < n_chunks && j < next + PACK_LOOKAHEAD && fill < cap; j++) {
            if (taken[j] || ch[j].n > cap - fill)
                continue;
            if (out)
                memcpy(out + fill, c->seqs[ch[j].rec].tokens + ch[j].from, (size_t)ch[j].n * sizeof *out);
            fill += ch[j].n;
            taken[j] = true;
        }
        while (next < n_chunks && taken[next])
            next++;
        /* The tail: the start of the next chunk, which then opens the next
         * window whole; in the last window, the epoch's first chunks again. */
        for (size_t k = next < n_chunks ? next : 0; fill < cap && k < n_chunks; k++) {
            int32_t n = ch[k].n < cap - fill ? ch[k].n : cap - fill;
            if (out)
                memcpy(out + fill, c->seqs[ch[k].rec].tokens + ch[k].from, (size_t)n * sizeof *out);
            fill += n;
        }
        if (fill < cap)
            break; /* the whole corpus is shorter than a window */
        w++;
    }
    return w;
}

/* place() over the corpus in this order; slices NULL counts only. */
static int64_t pack(const struct ft_corpus *c, const size_t *order, int32_t n_ctx, int32_t *slices)
{
    size_t n = count_chunks(c, n_ctx);
    struct chunk *ch = malloc((n ? n : 1) * sizeof *ch);
    bool *taken = calloc(n ? n : 1, sizeof *taken);
    int64_t w = -1;
    if (ch && taken) {
        list_chunks(c, order, n_ctx, ch);
        w = place(c, ch, n, n_ctx, slices, taken);
    }
    free(ch);
    free(taken);
    return w;
}

int64_t ft_n_windows(const struct ft_corpus *c, const size_t *order, int32_t n_ctx)
{
    return c->n ? pack(c, order, n_ctx, NULL) : 0;
}

bool ft_pack(const struct ft_corpus *c, const size_t *order, int32_t n_ctx, int64_t n_windows,
             int32_t *data, int32_t *labels)
{
    const int32_t cap = n_ctx + 1;
    int32_t *slices = malloc((size_t)(n_windows ? n_windows : 1) * (size_t)cap * sizeof *slices);
    if (!slices)
        return false;
    bool ok = pack(c, order, n_ctx, slices) == n_windows;
    for (int64_t w = 0; ok && w < n_windows; w++) {
        memcpy(data + w * n_ctx, slices + w * cap, (size_t)n_ctx * sizeof *data);
        memcpy(labels + w * n_ctx, slices + w * cap + 1, (size_t)n_ctx * sizeof *labels);
    }
    free(slices);
    return ok;
}
