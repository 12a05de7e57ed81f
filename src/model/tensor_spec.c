/*
 * tensor_spec.c - naming a set of a model's tensors in a few characters:
 * the spec that --train-layers (which tensors train) and `tmap model
 * quantize --keep-f32` (which tensors stay F32, so that they can train)
 * both take, so that one spec written for the one serves the other.
 *
 * A spec is a comma list of items; a tensor is selected when any item
 * matches it.
 *   N or N-M  layer numbers: every tensor named blk.K.* for K in [N, M];
 *   NAME      a name part: matches where a '.'-separated part of the tensor
 *             name begins with it, so "attn" takes attn_q/k/v/output/norm of
 *             every layer, "ffn_down" one matrix per layer, "output" the
 *             output matrix and output_norm (not blk.K.attn_output), and
 *             "blk.1.ffn" one layer's feed-forward.
 */
#include "model/model.h"
#include "util/error.h"

#include <ctype.h>
#include <gguf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_ITEMS = 64 };

struct spec_item {
    bool    is_range;
    int32_t first, last; /* ranges */
    char   *name;        /* name parts */
};

struct tmap_tensor_spec {
    struct spec_item items[MAX_ITEMS];
    size_t           n;
    char            *copy; /* the spec, cut into items */
    char            *text; /* the spec as given, for messages */
    char             flag[32];
};

void tmap_tensor_spec_free(struct tmap_tensor_spec *s)
{
    if (!s)
        return;
    free(s->copy);
    free(s->text);
    free(s);
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

static enum tmap_status parse_item(char *text, struct spec_item *it, const struct tmap_tensor_spec *s,
                                   struct tmap_error *err)
{
    memset(it, 0, sizeof *it);
    size_t n = strlen(text);
    if (n == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "%s '%s': an empty item", s->flag, s->text);
    const char *dash = strchr(text, '-');
    if (!dash && all_digits(text, n)) {
        it->is_range = true;
        it->first = it->last = atoi(text);
        return TMAP_OK;
    }
    if (dash) {
        size_t left = (size_t)(dash - text);
        if (!all_digits(text, left) || !all_digits(dash + 1, strlen(dash + 1)))
            return tmap_fail(err, TMAP_ERR_USAGE, "%s '%s': '%s' is not a layer range N-M", s->flag, s->text,
                             text);
        it->is_range = true;
        it->first = atoi(text);
        it->last = atoi(dash + 1);
        if (it->last < it->first)
            return tmap_fail(err, TMAP_ERR_USAGE, "%s '%s': range '%s' runs backwards", s->flag, s->text, text);
        return TMAP_OK;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)text[i]) && text[i] != '_' && text[i] != '.')
            return tmap_fail(err, TMAP_ERR_USAGE, "%s '%s': '%s' is neither a layer range nor a tensor name part",
                             s->flag, s->text, text);
    it->name = text;
    return TMAP_OK;
}

enum tmap_status tmap_tensor_spec_parse(const char *spec, const char *flag, struct tmap_tensor_spec **out,
                                        struct tmap_error *err)
{
    *out = NULL;
    if (!spec || !*spec)
        return TMAP_OK; /* NULL: every tensor */
    struct tmap_tensor_spec *s = calloc(1, sizeof *s);
    if (s) {
        s->copy = strdup(spec);
        s->text = strdup(spec);
        snprintf(s->flag, sizeof s->flag, "%s", flag);
    }
    if (!s || !s->copy || !s->text) {
        tmap_tensor_spec_free(s);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory parsing %s", flag);
    }
    /* Split by hand: strtok would skip empty items, and "0,,1" is a typo
     * worth reporting. */
    for (char *item = s->copy; item;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (s->n == MAX_ITEMS) {
            enum tmap_status st = tmap_fail(err, TMAP_ERR_USAGE, "%s '%s': more than %d items", flag, spec,
                                            MAX_ITEMS);
            tmap_tensor_spec_free(s);
            return st;
        }
        enum tmap_status st = parse_item(item, &s->items[s->n++], s, err);
        if (st) {
            tmap_tensor_spec_free(s);
            return st;
        }
        item = comma ? comma + 1 : NULL;
    }
    *out = s;
    return TMAP_OK;
}

int32_t tmap_tensor_block(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0 || !isdigit((unsigned char)name[4]))
        return -1;
    return atoi(name + 4);
}

static bool item_matches(const struct spec_item *it, const char *name)
{
    if (it->is_range) {
        int32_t k = tmap_tensor_block(name);
        return k >= it->first && k <= it->last;
    }
    size_t n = strlen(it->name);
    for (const char *p = name; *p; p++)
        if ((p == name || p[-1] == '.') && strncmp(p, it->name, n) == 0)
            return true;
    return false;
}

bool tmap_tensor_spec_match(const struct tmap_tensor_spec *s, const char *tensor_name)
{
    if (!s)
        return true;
    for (size_t i = 0; i < s->n; i++)
        if (item_matches(&s->items[i], tensor_name))
            return true;
    return false;
}

/* Every item must select something: a typo would otherwise select nothing
 * of what was meant and say nothing. */
enum tmap_status tmap_tensor_spec_check(const struct tmap_tensor_spec *s, const struct gguf_context *g,
                                        const char *path, int32_t *n_matched, struct tmap_error *err)
{
    int64_t n_tensors = gguf_get_n_tensors(g);
    *n_matched = 0;
    for (int64_t t = 0; t < n_tensors; t++)
        *n_matched += tmap_tensor_spec_match(s, gguf_get_tensor_name(g, t));
    for (size_t i = 0; s && i < s->n; i++) {
        bool any = false;
        for (int64_t t = 0; t < n_tensors && !any; t++)
            any = item_matches(&s->items[i], gguf_get_tensor_name(g, t));
        if (any)
            continue;
        if (s->items[i].is_range)
            return tmap_fail(err, TMAP_ERR_USAGE, "%s '%s': %s has no layer in %d-%d", s->flag, s->text, path,
                             s->items[i].first, s->items[i].last);
        return tmap_fail(err, TMAP_ERR_USAGE, "%s '%s': '%s' matches no tensor of %s", s->flag, s->text,
                         s->items[i].name, path);
    }
    return TMAP_OK;
}
