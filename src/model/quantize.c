/*
 * quantize.c - storing a model's weights in another type through
 * llama.cpp's own llama_model_quantize: F16 or Q8_0 to ship a model small,
 * F32 to train one (llama.cpp's optimiser trains F32 tensors only), the
 * k-quants users run.
 *
 * --keep-f32 leaves the tensors a --train-layers spec selects in F32, so a
 * model can stay small where it is frozen and train where it is not.
 *
 * The output is written beside its final name and renamed, so a killed run
 * never leaves a half model under that name.
 */
#include "model/model.h"
#include "util/atomic.h"
#include "util/error.h"

#include <errno.h>
#include <gguf.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The names users type (llama.cpp's llama-quantize spells them the same). */
static const struct {
    const char     *name;
    enum llama_ftype ftype;
} quant_types[] = {
    { "f32", LLAMA_FTYPE_ALL_F32 },         { "f16", LLAMA_FTYPE_MOSTLY_F16 },
    { "bf16", LLAMA_FTYPE_MOSTLY_BF16 },    { "q8_0", LLAMA_FTYPE_MOSTLY_Q8_0 },
    { "q6_k", LLAMA_FTYPE_MOSTLY_Q6_K },    { "q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M },
    { "q5_k_s", LLAMA_FTYPE_MOSTLY_Q5_K_S }, { "q5_1", LLAMA_FTYPE_MOSTLY_Q5_1 },
    { "q5_0", LLAMA_FTYPE_MOSTLY_Q5_0 },    { "q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M },
    { "q4_k_s", LLAMA_FTYPE_MOSTLY_Q4_K_S }, { "q4_1", LLAMA_FTYPE_MOSTLY_Q4_1 },
    { "q4_0", LLAMA_FTYPE_MOSTLY_Q4_0 },    { "q3_k_l", LLAMA_FTYPE_MOSTLY_Q3_K_L },
    { "q3_k_m", LLAMA_FTYPE_MOSTLY_Q3_K_M }, { "q3_k_s", LLAMA_FTYPE_MOSTLY_Q3_K_S },
    { "q2_k", LLAMA_FTYPE_MOSTLY_Q2_K },
};

#define N_QUANT_TYPES (sizeof quant_types / sizeof quant_types[0])

const char *tmap_quant_type_names(void)
{
    return "f32, f16, bf16, q8_0, q6_k, q5_k_m, q5_k_s, q5_1, q5_0, q4_k_m, q4_k_s, q4_1, q4_0, "
           "q3_k_l, q3_k_m, q3_k_s, q2_k";
}

struct tmap_model_quantize_params tmap_model_quantize_default_params(void)
{
    struct tmap_model_quantize_params p = { .type = "q8_0", .n_threads = 0, .keep_f32 = NULL };
    return p;
}

/* The overrides that keep a spec's tensors F32, as llama.cpp's quantizer
 * takes them: regular expressions, ended by a NULL pattern. One anchored
 * pattern per tensor the spec selects in the input's own tensor list, so
 * that the spec means here exactly what it means to --train-layers (a
 * pattern built from the spec itself would let a dot match any character
 * and a name part match in the middle of a name). */
struct keep_list {
    struct llama_model_tensor_override *overrides;
    char                              **names; /* the tensors, as named in the file */
    size_t                              n;
};

static void keep_list_free(struct keep_list *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free((char *)k->overrides[i].pattern);
        free(k->names[i]);
    }
    free(k->overrides);
    free(k->names);
    memset(k, 0, sizeof *k);
}

static char *anchored_pattern(const char *name)
{
    size_t n = strlen(name);
    char *p = malloc(2 * n + 3), *o = p;
    if (!p)
        return NULL;
    *o++ = '^';
    for (const char *c = name; *c; c++) {
        if (strchr(".[]{}()*+?^$|\\", *c))
            *o++ = '\\';
        *o++ = *c;
    }
    *o++ = '$';
    *o = '\0';
    return p;
}

static enum tmap_status keep_list_build(const char *in_path, const char *spec, struct keep_list *k,
                                        struct tmap_error *err)
{
    memset(k, 0, sizeof *k);
    struct tmap_tensor_spec *s = NULL;
    enum tmap_status st = tmap_tensor_spec_parse(spec, "--keep-f32", &s, err);
    if (st || !s)
        return st;
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    tmap_llama_log_hold(true);
    struct gguf_context *g = gguf_init_from_file(in_path, gp);
    tmap_llama_log_hold(false);
    int32_t n_matched = 0;
    st = g ? tmap_tensor_spec_check(s, g, in_path, &n_matched, err) : tmap_gguf_unreadable(in_path, err);
    if (!st) {
        k->overrides = calloc((size_t)n_matched + 1, sizeof *k->overrides);
        k->names = calloc((size_t)n_matched + 1, sizeof *k->names);
        if (!k->overrides || !k->names)
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %d tensor names", n_matched);
    }
    for (int64_t t = 0; !st && g && t < gguf_get_n_tensors(g); t++) {
        const char *name = gguf_get_tensor_name(g, t);
        if (!tmap_tensor_spec_match(s, name))
            continue;
        char *pattern = anchored_pattern(name), *copy = strdup(name);
        if (!pattern || !copy) {
            free(pattern);
            free(copy);
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for a tensor name");
        } else {
            k->names[k->n] = copy;
            k->overrides[k->n++] = (struct llama_model_tensor_override){ .pattern = pattern,
                                                                        .type = GGML_TYPE_F32 };
        }
    }
    if (g)
        gguf_free(g);
    tmap_tensor_spec_free(s);
    if (st)
        keep_list_free(k);
    return st;
}

/* llama.cpp applies an override only where it would quantize, and says
 * little when it does not: so the written file is read back, and a tensor
 * asked to stay F32 that is not fails the command before it is published. */
static enum tmap_status check_kept(const char *in_path, const char *tmp, const struct keep_list *k,
                                   struct tmap_error *err)
{
    if (!k->n)
        return TMAP_OK;
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(tmp, gp);
    if (!g)
        return tmap_fail(err, TMAP_ERR_IO, "%s: llama.cpp wrote a file gguf cannot read back", tmp);
    enum tmap_status st = TMAP_OK;
    for (size_t i = 0; i < k->n && !st; i++) {
        int64_t t = gguf_find_tensor(g, k->names[i]);
        if (t >= 0 && gguf_get_tensor_type(g, t) != GGML_TYPE_F32)
            st = tmap_fail(err, TMAP_ERR_MODEL, "%s: llama.cpp stored %s as %s although --keep-f32 asked F32",
                           in_path, k->names[i], ggml_type_name(gguf_get_tensor_type(g, t)));
    }
    gguf_free(g);
    return st;
}

enum tmap_status tmap_model_quantize(const char *in_path, const char *out_path,
                                     const struct tmap_model_quantize_params *params, struct tmap_error *err)
{
    size_t i = 0;
    while (i < N_QUANT_TYPES && strcasecmp(quant_types[i].name, params->type ? params->type : "") != 0)
        i++;
    if (i == N_QUANT_TYPES)
        return tmap_fail(err, TMAP_ERR_USAGE, "--type '%s': not a type tmap knows (%s)",
                         params->type ? params->type : "", tmap_quant_type_names());
    if (access(in_path, R_OK) != 0)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", in_path, strerror(errno));

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid());
    struct llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.ftype = quant_types[i].ftype;
    qp.nthread = params->n_threads;
    /* A quantized input may be re-stored (to F32 for training, say):
     * llama.cpp dequantizes it first. */
    qp.allow_requantize = true;
    struct keep_list keep;
    enum tmap_status st = keep_list_build(in_path, params->keep_f32, &keep, err);
    if (st)
        return st;
    qp.tt_overrides = keep.n ? keep.overrides : NULL;
    if (llama_model_quantize(in_path, tmp, &qp) != 0)
        st = tmap_fail(err, TMAP_ERR_MODEL, "%s: llama.cpp cannot store it as %s: %s", in_path,
                       quant_types[i].name, tmap_llama_last_error());
    if (!st)
        st = check_kept(in_path, tmp, &keep, err);
    keep_list_free(&keep);
    if (st) {
        unlink(tmp);
        return st;
    }
    return tmap_atomic_publish(tmp, out_path, err);
}
