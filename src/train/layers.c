/*
 * layers.c - which tensors train: the --train-layers spec.
 *
 * A spec is a comma list of items; a tensor trains when any item matches it.
 *   N or N-M  layer numbers: every tensor named blk.K.* for K in [N, M];
 *   NAME      a name part: matches where a '.'-separated part of the tensor
 *             name begins with it, so "attn" takes attn_q/k/v/output/norm of
 *             every layer, "ffn_down" one matrix per layer, "output" the
 *             output matrix and output_norm (not blk.K.attn_output), and
 *             "blk.1.ffn" one layer's feed-forward.
 * The filter is what llama_opt_init's param_filter asks; llama.cpp itself
 * still skips rope_freqs and tensors that are not F32 (and token_embd, when
 * built without scripts/llama-patches).
 */
#include "train/finetune.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <gguf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_ITEMS = 64 };

struct ft_item {
    bool    is_range;
    int32_t first, last; /* ranges */
    char   *name;        /* name parts */
};

struct ft_layers {
    struct ft_item items[MAX_ITEMS];
    size_t         n;
    char          *copy; /* the spec, cut into items */
};

void ft_layers_free(struct ft_layers *l)
{
    if (!l)
        return;
    free(l->copy);
    free(l);
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 6)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static enum tmap_status parse_item(char *text, struct ft_item *it, const char *spec,
                                   struct tmap_error *err)
{
    memset(it, 0, sizeof *it);
    size_t n = strlen(text);
    if (n == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s': an empty item", spec);
    const char *dash = strchr(text, '-');
    if (!dash && all_digits(text, n)) {
        it->is_range = true;
        it->first = it->last = atoi(text);
        return TMAP_OK;
    }
    if (dash) {
        size_t left = (size_t)(dash - text);
        if (!all_digits(text, left) || !all_digits(dash + 1, strlen(dash + 1)))
            return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s': '%s' is not a layer range N-M",
                             spec, text);
        it->is_range = true;
        it->first = atoi(text);
        it->last = atoi(dash + 1);
        if (it->last < it->first)
            return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s': range '%s' runs backwards", spec,
                             text);
        return TMAP_OK;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)text[i]) && text[i] != '_' && text[i] != '.')
            return tmap_fail(err, TMAP_ERR_USAGE,
                             "--train-layers '%s': '%s' is neither a layer range nor a tensor name part",
                             spec, text);
    it->name = text;
    return TMAP_OK;
}

enum tmap_status ft_layers_parse(const char *spec, struct ft_layers **out, struct tmap_error *err)
{
    *out = NULL;
    if (!spec || !*spec)
        return TMAP_OK; /* NULL filter: everything */
    struct ft_layers *l = calloc(1, sizeof *l);
    if (l)
        l->copy = strdup(spec);
    if (!l || !l->copy) {
        ft_layers_free(l);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory parsing --train-layers");
    }
    /* Split by hand: strtok would skip empty items, and "0,,1" is a typo
     * worth reporting. */
    for (char *item = l->copy; item;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (l->n == MAX_ITEMS) {
            ft_layers_free(l);
            return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s': more than %d items", spec, MAX_ITEMS);
        }
        enum tmap_status st = parse_item(item, &l->items[l->n++], spec, err);
        if (st) {
            ft_layers_free(l);
            return st;
        }
        item = comma ? comma + 1 : NULL;
    }
    *out = l;
    return TMAP_OK;
}

/* The K of "blk.K.", or -1. */
static int32_t layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0 || !isdigit((unsigned char)name[4]))
        return -1;
    return atoi(name + 4);
}

static bool item_matches(const struct ft_item *it, const char *name)
{
    if (it->is_range) {
        int32_t k = layer_of(name);
        return k >= it->first && k <= it->last;
    }
    size_t n = strlen(it->name);
    for (const char *p = name; *p; p++)
        if ((p == name || p[-1] == '.') && strncmp(p, it->name, n) == 0)
            return true;
    return false;
}

bool ft_layers_match(const struct ft_layers *l, const char *tensor_name)
{
    if (!l)
        return true;
    for (size_t i = 0; i < l->n; i++)
        if (item_matches(&l->items[i], tensor_name))
            return true;
    return false;
}

/* Every item must select something: a typo would otherwise train nothing
 * of what was meant and say nothing. */
static enum tmap_status check_items(const struct ft_layers *l, const struct gguf_context *g,
                                    const char *spec, const char *path, int32_t *n_matched,
                                    struct tmap_error *err)
{
    int64_t n_tensors = gguf_get_n_tensors(g);
    *n_matched = 0;
    for (int64_t t = 0; t < n_tensors; t++)
        *n_matched += ft_layers_match(l, gguf_get_tensor_name(g, t));
    for (size_t i = 0; l && i < l->n; i++) {
        bool any = false;
        for (int64_t t = 0; t < n_tensors && !any; t++)
            any = item_matches(&l->items[i], gguf_get_tensor_name(g, t));
        if (any)
            continue;
        if (l->items[i].is_range)
            return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s': %s has no layer in %d-%d", spec,
                             path, l->items[i].first, l->items[i].last);
        return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s': '%s' matches no tensor of %s", spec,
                         l->items[i].name, path);
    }
    return TMAP_OK;
}

bool ft_tensor_is_f32(const char *model_path, const char *name)
{
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(model_path, gp);
    int64_t t = g ? gguf_find_tensor(g, name) : -1;
    bool f32 = t >= 0 && gguf_get_tensor_type(g, t) == GGML_TYPE_F32;
    gguf_free(g);
    return f32;
}

/* llama.cpp trains F32 tensors only and skips the rest without a word: a
 * quantized or F16 model would train its norms and nothing else, and its
 * run would look like any other. So every tensor the spec selects must be
 * F32 (rope_freqs, which never trains, aside). */
static enum tmap_status check_types(const struct ft_layers *l, const struct gguf_context *g, const char *path,
                                    struct tmap_error *err)
{
    int64_t n_tensors = gguf_get_n_tensors(g), first = -1;
    int32_t n_selected = 0, n_other = 0;
    for (int64_t t = 0; t < n_tensors; t++) {
        const char *name = gguf_get_tensor_name(g, t);
        if (!ft_layers_match(l, name) || strcmp(name, "rope_freqs.weight") == 0)
            continue;
        n_selected++;
        if (gguf_get_tensor_type(g, t) != GGML_TYPE_F32) {
            n_other++;
            first = first < 0 ? t : first;
        }
    }
    if (!n_other)
        return TMAP_OK;
    return tmap_fail(err, TMAP_ERR_MODEL,
                     "%s: %d of the %d tensors to train are not F32 (%s is %s), and llama.cpp trains F32 tensors "
                     "only: they would stay as they are. `tmap model quantize %s OUT.gguf --type f32` writes a "
                     "copy that trains (it keeps the quantized weights' values)%s", path, n_other, n_selected, gguf_get_tensor_name(g, first),
                     ggml_type_name(gguf_get_tensor_type(g, first)), path,
                     l ? ", or --train-layers can leave them out" : "");
}

enum tmap_status tmap_finetune_check_layers(const char *model_path, const char *spec,
                                            int32_t *n_matched, struct tmap_error *err)
{
    *n_matched = 0;
    struct ft_layers *l;
    enum tmap_status st = ft_layers_parse(spec, &l, err);
    if (st)
        return st;
    if (access(model_path, R_OK) != 0) {
        ft_layers_free(l);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", model_path, strerror(errno));
    }
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(model_path, gp);
    if (!g) {
        ft_layers_free(l);
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: not a readable GGUF file", model_path);
    }
    st = check_items(l, g, spec ? spec : "", model_path, n_matched, err);
    if (!st)
        st = check_types(l, g, model_path, err);
    gguf_free(g);
    ft_layers_free(l);
    return st;
}
