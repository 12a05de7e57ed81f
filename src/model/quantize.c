/*
 * quantize.c - storing a model's weights in another type through
 * llama.cpp's own llama_model_quantize: F16 or Q8_0 to ship a model small,
 * F32 to train one (llama.cpp's optimiser trains F32 tensors only), the
 * k-quants users run.
 *
 * The output is written beside its final name and renamed, so a killed run
 * never leaves a half model under that name.
 */
#include "model/model.h"
#include "util/atomic.h"
#include "util/error.h"

#include <errno.h>
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
    struct tmap_model_quantize_params p = { .type = "q8_0", .n_threads = 0 };
    return p;
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
    if (llama_model_quantize(in_path, tmp, &qp) != 0) {
        unlink(tmp);
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: llama.cpp cannot store it as %s: %s", in_path,
                         quant_types[i].name, tmap_llama_last_error());
    }
    return tmap_atomic_publish(tmp, out_path, err);
}
