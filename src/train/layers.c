/*
 * layers.c - which tensors train: the --train-layers spec (its syntax is
 * model/tensor_spec.c's, shared with `tmap model quantize --keep-f32`).
 *
 * The spec is what llama_opt_init's param_filter asks; llama.cpp itself
 * still skips rope_freqs and tensors that are not F32 (and token_embd, when
 * built without scripts/llama-patches), which is why the tensors a spec
 * selects are checked here before any training starts.
 */
#include "model/model.h"
#include "train/finetune.h"
#include "util/error.h"

#include <errno.h>
#include <gguf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
 * F32 (rope_freqs, which never trains, aside). The rest need not be:
 * frozen quantized weights train through (the gradient passes them by),
 * which is what makes a quantized 7B model with an F32 top trainable. */
static enum tmap_status check_types(const struct tmap_tensor_spec *l, const char *spec,
                                    const struct gguf_context *g, const char *path, struct tmap_error *err)
{
    int64_t n_tensors = gguf_get_n_tensors(g), first = -1;
    int32_t n_selected = 0, n_other = 0;
    for (int64_t t = 0; t < n_tensors; t++) {
        const char *name = gguf_get_tensor_name(g, t);
        if (!tmap_tensor_spec_match(l, name) || strcmp(name, "rope_freqs.weight") == 0)
            continue;
        n_selected++;
        if (gguf_get_tensor_type(g, t) != GGML_TYPE_F32) {
            n_other++;
            first = first < 0 ? t : first;
        }
    }
    if (!n_other)
        return TMAP_OK;
    char how[1024];
    if (l)
        snprintf(how, sizeof how, "`tmap model quantize %s OUT.gguf --type q8_0 --keep-f32 %s` writes a copy "
                 "in which they are F32 and the other weights Q8_0 (or the type named)", path, spec);
    else
        snprintf(how, sizeof how, "`tmap model quantize %s OUT.gguf --type f32` writes a copy that trains (it "
                 "keeps the quantized weights' values), or --train-layers SPEC trains some tensors, which "
                 "`--keep-f32 SPEC` there leaves F32", path);
    return tmap_fail(err, TMAP_ERR_MODEL,
                     "%s: %d of the %d tensors to train are not F32 (%s is %s), and llama.cpp trains F32 tensors "
                     "only: they would stay as they are. %s", path, n_other, n_selected,
                     gguf_get_tensor_name(g, first), ggml_type_name(gguf_get_tensor_type(g, first)), how);
}

/* Parses spec, opens the file's header and runs both checks of what
 * trains; on success the caller frees *l and *g. */
static enum tmap_status open_checked(const char *model_path, const char *spec, struct tmap_tensor_spec **l,
                                     struct gguf_context **g, int32_t *n_matched, struct tmap_error *err)
{
    *n_matched = 0;
    *g = NULL;
    enum tmap_status st = tmap_tensor_spec_parse(spec, "--train-layers", l, err);
    if (st)
        return st;
    if (access(model_path, R_OK) != 0)
        st = tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", model_path, strerror(errno));
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    if (!st && !(*g = gguf_init_from_file(model_path, gp)))
        st = tmap_fail(err, TMAP_ERR_MODEL, "%s: not a readable GGUF file", model_path);
    if (!st)
        st = tmap_tensor_spec_check(*l, *g, model_path, n_matched, err);
    if (!st)
        st = check_types(*l, spec, *g, model_path, err);
    if (st) {
        gguf_free(*g);
        tmap_tensor_spec_free(*l);
        *g = NULL;
        *l = NULL;
    }
    return st;
}

enum tmap_status tmap_finetune_check_layers(const char *model_path, const char *spec,
                                            int32_t *n_matched, struct tmap_error *err)
{
    struct tmap_tensor_spec *l;
    struct gguf_context *g;
    enum tmap_status st = open_checked(model_path, spec, &l, &g, n_matched, err);
    if (!st) {
        gguf_free(g);
        tmap_tensor_spec_free(l);
    }
    return st;
}

enum tmap_status ft_check_training(const char *model_path, const char *spec, int32_t n_ctx, int32_t n_gpu_layers,
                                   int copies, struct tmap_error *err)
{
    struct tmap_tensor_spec *l;
    struct gguf_context *g;
    int32_t n_matched;
    enum tmap_status st = open_checked(model_path, spec, &l, &g, &n_matched, err);
    if (!st) {
        st = ft_check_memory(g, l, model_path, spec, n_ctx, n_gpu_layers, copies, err);
        gguf_free(g);
        tmap_tensor_spec_free(l);
    }
    return st;
}
