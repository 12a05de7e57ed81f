/*
 * vocab.c - the tokenizer a created model gets: a vocab-only GGUF, or a
 * SentencePiece vocabulary trained on the data.
 *
 * Why a trained vocabulary: on a small model the output layer costs
 * n_embd * n_vocab per token, so with the 32k Llama-2 vocabulary a 64-wide
 * model spends about 20x more on its output than on its layers. A
 * SentencePiece BPE vocabulary of a few thousand pieces trained on the task's
 * text tokenizes GSM8K at about the same bytes per token (digits split, as
 * Llama-2 does) and frees that compute for width and depth
 * (docs/base-model.md).
 *
 * The SentencePiece file is the `.vocab` that spm_train writes beside its
 * `.model`: one piece per line, a tab, its score. llama.cpp's "llama"
 * tokenizer is SentencePiece's BPE: it merges the adjacent pair whose merged
 * piece scores highest, and falls back to <0xNN> byte pieces for anything
 * else, so a BPE model trained with --byte_fallback reads the same in both.
 * The piece types, which the .vocab file leaves out, follow SentencePiece's
 * own conventions: <unk>, the control pieces <s> </s> <pad>, and <0xNN>.
 */
#include "model/model.h"
#include "util/error.h"

#include <gguf.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A SentencePiece vocabulary larger than this is surely not one. */
#define MAX_PIECES (1 << 20)

struct spm_vocab {
    char   **pieces;
    float   *scores;
    int32_t *types;
    size_t   n;
    int32_t  unk, bos, eos;
};

static void spm_vocab_free(struct spm_vocab *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->types);
}

/* "<0x0A>": a byte-fallback piece. */
static bool is_byte_piece(const char *p)
{
    return strlen(p) == 6 && strncmp(p, "<0x", 3) == 0 && p[5] == '>' && strchr("0123456789ABCDEF", p[3]) &&
           strchr("0123456789ABCDEF", p[4]) && p[3] && p[4];
}

static int32_t piece_type(struct spm_vocab *v, const char *piece, int32_t id, int *n_bytes)
{
    if (strcmp(piece, "<unk>") == 0) {
        v->unk = id;
        return LLAMA_TOKEN_TYPE_UNKNOWN;
    }
    if (strcmp(piece, "<s>") == 0) {
        v->bos = id;
        return LLAMA_TOKEN_TYPE_CONTROL;
    }
    if (strcmp(piece, "</s>") == 0) {
        v->eos = id;
        return LLAMA_TOKEN_TYPE_CONTROL;
    }
    if (strcmp(piece, "<pad>") == 0)
        return LLAMA_TOKEN_TYPE_CONTROL;
    if (is_byte_piece(piece)) {
        (*n_bytes)++;
        return LLAMA_TOKEN_TYPE_BYTE;
    }
    return LLAMA_TOKEN_TYPE_NORMAL;
}

/* One line: PIECE TAB SCORE. The score follows the last tab, so a piece
 * holding a tab still reads. */
static enum tmap_status parse_line(struct spm_vocab *v, const char *path, size_t line_no, char *line,
                                   int *n_bytes, struct tmap_error *err)
{
    char *tab = strrchr(line, '\t');
    if (!tab || tab == line)
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: not a SentencePiece vocabulary line (PIECE<tab>SCORE)",
                         path, line_no);
    *tab = '\0';
    char *end;
    errno = 0;
    float score = strtof(tab + 1, &end);
    if (errno || end == tab + 1 || *end != '\0' || !isfinite(score))
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: piece '%s' has no numeric score ('%s')", path, line_no,
                         line, tab + 1);
    if (v->n >= MAX_PIECES)
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: more than %d pieces", path, line_no, MAX_PIECES);
    int32_t id = (int32_t)v->n;
    v->pieces[id] = strdup(line);
    if (!v->pieces[id])
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
    v->scores[id] = score;
    v->types[id] = piece_type(v, line, id, n_bytes);
    v->n++;
    return TMAP_OK;
}

static enum tmap_status grow(struct spm_vocab *v, size_t *cap, const char *path, struct tmap_error *err)
{
    if (v->n < *cap)
        return TMAP_OK;
    size_t next = *cap ? *cap * 2 : 4096;
    char **p = realloc(v->pieces, next * sizeof *p);
    if (p)
        v->pieces = p;
    float *s = realloc(v->scores, next * sizeof *s);
    if (s)
        v->scores = s;
    int32_t *t = realloc(v->types, next * sizeof *t);
    if (t)
        v->types = t;
    if (!p || !s || !t)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
    *cap = next;
    return TMAP_OK;
}

static enum tmap_status read_spm_vocab(const char *path, struct spm_vocab *v, struct tmap_error *err)
{
    memset(v, 0, sizeof *v);
    v->unk = v->bos = v->eos = -1;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t line_cap = 0, cap = 0, line_no = 0;
    ssize_t len;
    int n_bytes = 0;
    enum tmap_status st = TMAP_OK;
    while (!st && (len = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        st = grow(v, &cap, path, err);
        if (!st)
            st = parse_line(v, path, line_no, line, &n_bytes, err);
    }
    free(line);
    fclose(f);
    if (!st && v->n == 0)
        st = tmap_fail(err, TMAP_ERR_DATA, "%s: empty vocabulary", path);
    if (!st && (v->unk < 0 || v->bos < 0 || v->eos < 0))
        st = tmap_fail(err, TMAP_ERR_DATA, "%s: a SentencePiece vocabulary needs the pieces <unk>, <s> and </s>", path);
    /* llama.cpp tokenizes a character the vocabulary lacks as its bytes and
     * aborts when a byte piece is missing. */
    if (!st && n_bytes != 256)
        st = tmap_fail(err, TMAP_ERR_DATA,
                       "%s: has %d of the 256 byte pieces <0x00>..<0xFF>; train it with spm_train --byte_fallback=true",
                       path, n_bytes);
    if (st)
        spm_vocab_free(v);
    return st;
}

/* The tokenizer.* keys llama.cpp reads for a SentencePiece ("llama")
 * vocabulary. */
static struct gguf_context *spm_to_gguf(const struct spm_vocab *v)
{
    struct gguf_context *g = gguf_init_empty();
    if (!g)
        return NULL;
    gguf_set_val_str(g, "general.architecture", "llama");
    gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", (const char **)v->pieces, v->n);
    gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->scores, v->n);
    gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types, v->n);
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    gguf_set_val_u32(g, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    gguf_set_val_bool(g, "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(g, "tokenizer.ggml.add_eos_token", false);
    return g;
}

static bool is_gguf_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = { 0 };
    bool yes = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (f)
        fclose(f);
    return yes;
}

enum tmap_status tmap_vocab_read(const char *path, struct gguf_context **out, struct tmap_error *err)
{
    *out = NULL;
    if (access(path, R_OK) != 0)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot read the vocabulary GGUF or SentencePiece .vocab: %s", path,
                         strerror(errno));
    if (is_gguf_file(path)) {
        struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
        *out = gguf_init_from_file(path, gp);
        if (!*out)
            return tmap_fail(err, TMAP_ERR_IO, "%s: cannot read the vocabulary GGUF", path);
        if (gguf_find_key(*out, "tokenizer.ggml.tokens") < 0) {
            gguf_free(*out);
            *out = NULL;
            return tmap_fail(err, TMAP_ERR_MODEL, "%s: has no tokenizer.ggml.tokens", path);
        }
        return TMAP_OK;
    }
    struct spm_vocab v;
    enum tmap_status st = read_spm_vocab(path, &v, err);
    if (st)
        return st;
    *out = spm_to_gguf(&v);
    spm_vocab_free(&v);
    return *out ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory converting %s", path);
}
