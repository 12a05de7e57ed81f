/*
 * placement.c - which of llama.cpp's CPU weight buffers a model's weights
 * go to.
 *
 * llama.cpp's CPU backend can move quantized weights into "extra" buffer
 * types that hold them in a layout of their own, for the matrix products
 * that are most of tmap's work: CPU_REPACK (interleaved blocks for AVX2,
 * AVX-512 and NEON) and, on Intel Xeons since Sapphire Rapids, AMX. The
 * AMX one crashes in its matrix multiply on Q8_0 weights: measured on such
 * a machine, tests/unit/test_quantize died with SIGSEGV in
 * ggml_backend_amx_mul_mat (llama.cpp issue 20824, open, reports the same
 * on a 30B Q4_K_M model). llama.cpp can only switch the extra buffer types
 * on or off together (use_extra_bufts), and off costs the repacked kernels
 * too: on a 2-core AMX Xeon they score Q4_0 and Q4_K_M models 1.2x to
 * 1.35x faster than the plain ones (docs/scoring.md).
 *
 * So where the CPU offers AMX buffers, tmap turns the extra types off and
 * then names, tensor by tensor, the weights CPU_REPACK takes, through
 * llama.cpp's tensor buffer overrides: the same kernels a CPU without AMX
 * runs. Which weights it takes is asked of the CPU device itself, the way
 * llama.cpp's loader asks (a matrix product whose weight sits in a buffer
 * of that type), so a type the repacked kernels lack stays plain. Elsewhere
 * llama.cpp's default stands, and with a GPU nothing is overridden: an
 * override would keep offloadable layers on the CPU.
 *
 * A model loaded to be trained is planned the same way, tensor by tensor.
 * The backward pass multiplies by every frozen weight between the loss and
 * the lowest tensor that trains (the gradient of a product with respect to
 * its input), which the repacked layout cannot do: llama.cpp's scheduler
 * aborts. Below that tensor it never goes, so the frozen weights there
 * keep the repacked kernels. For a quantized model whose top trains
 * (--train-layers 31,output on a 7B) that is nearly every weight: the
 * fine-tune proxy ran 1.34x faster on a 1024x16 Q4_K_M model training its
 * top block (docs/finetune.md). A model to be saved is loaded plain all
 * the same (finetune.c): the repacked buffer cannot give its weights back.
 */
#include "model/model.h"
#include "util/error.h"
#include "util/grow.h"

#include <ggml-backend.h>
#include <gguf.h>

#include <stdlib.h>
#include <string.h>

static ggml_backend_buffer_type_t cpu_extra_buffer_type(const char *name)
{
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu)
        return NULL;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    ggml_backend_dev_get_extra_bufts_t get_extra = (ggml_backend_dev_get_extra_bufts_t)
        ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
    if (!get_extra)
        return NULL;
    for (ggml_backend_buffer_type_t *b = get_extra(cpu); b && *b; b++)
        if (strcmp(ggml_backend_buft_name(*b), name) == 0)
            return *b;
    return NULL;
}

bool tmap_cpu_offers_amx_buffers(void)
{
    return cpu_extra_buffer_type("AMX") != NULL;
}

/* A weight of a repeating block ("blk.12.ffn_up.weight") or the output
 * projection: the matrices llama.cpp multiplies by. The token embedding is
 * read by rows and never repacked. Only 2-d weights: MoE experts (3-d)
 * stay plain. A 2-d block weight that llama.cpp reads otherwise than by a
 * matrix product (an SSM's convolution) is F32 in every quantized file
 * (llama_model_quantize leaves it), and no F32 weight repacks. *role: the
 * name after "blk.N." */
static bool matrix_weight(const struct ggml_tensor *t, const char **role)
{
    const char *name = ggml_get_name(t);
    size_t len = strlen(name);
    if (ggml_n_dims(t) != 2 || len < 7 || strcmp(name + len - 7, ".weight") != 0)
        return false;
    if (strcmp(name, "output.weight") == 0) {
        *role = NULL;
        return true;
    }
    if (strncmp(name, "blk.", 4) != 0)
        return false;
    const char *p = name + 4;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p != '.')
        return false;
    *role = p + 1;
    return true;
}

/* Where a tensor sits in the forward pass, for the backward pass's reach:
 * block K at K, the output projection and its norm above every block, and
 * anything else (the token embedding) below them all. */
enum { ABOVE_BLOCKS = INT32_MAX - 1, NOTHING_TRAINS = INT32_MAX };

static int32_t forward_position(const char *name)
{
    int32_t block = tmap_tensor_block(name);
    if (block >= 0)
        return block;
    return strncmp(name, "output", 6) == 0 ? ABOVE_BLOCKS : -1;
}

/* The lowest position of a tensor that trains: weights below it are never
 * reached by the backward pass. */
static int32_t backward_floor(struct ggml_context *meta, const struct tmap_weight_training *training)
{
    if (!training)
        return NOTHING_TRAINS;
    int32_t floor = NOTHING_TRAINS;
    for (struct ggml_tensor *t = ggml_get_first_tensor(meta); t; t = ggml_get_next_tensor(meta, t))
        if (tmap_tensor_spec_match(training->trains, ggml_get_name(t))) {
            int32_t at = forward_position(ggml_get_name(t));
            floor = at < floor ? at : floor;
        }
    return floor;
}

/* Would the CPU device multiply by this weight from a buffer of type buft?
 * The question llama.cpp's loader asks before it places a weight there. */
static bool takes_weight(ggml_backend_dev_t cpu, ggml_backend_buffer_t dummy, const struct ggml_tensor *w)
{
    struct ggml_init_params ip = { 4 * ggml_tensor_overhead(), NULL, true };
    struct ggml_context *ctx = ggml_init(ip);
    if (!ctx)
        return false;
    struct ggml_tensor *weight = ggml_new_tensor_2d(ctx, w->type, w->ne[0], w->ne[1]);
    struct ggml_tensor *input = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, w->ne[0], 512);
    weight->buffer = dummy;
    struct ggml_tensor *op = ggml_mul_mat(ctx, weight, input);
    bool ok = ggml_backend_dev_supports_op(cpu, op);
    ggml_free(ctx);
    return ok;
}

/* Appends text to a growing string; false when out of memory. */
static bool append(char **s, size_t *len, size_t *cap, const char *text, size_t n)
{
    if (!tmap_grow((void **)s, cap, *len + n + 1, 1))
        return false;
    memcpy(*s + *len, text, n);
    *len += n;
    (*s)[*len] = '\0';
    return true;
}

/* Appends a tensor name's part with its dots escaped (every name llama.cpp
 * gives is letters, digits, '_' and '.'). */
static bool append_escaped(char **s, size_t *len, size_t *cap, const char *text, size_t n)
{
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = text[i] == '.' ? append(s, len, cap, "\\.", 2) : append(s, len, cap, text + i, 1);
    return ok;
}

/* One pattern per weight role: "^blk\.[0-9]+\.ffn_up\.weight$" when every
 * block's weight of that role repacks (the usual case), else the blocks
 * that do, "^blk\.(1|2|4)\.attn_v\.weight$" (k-quant mixes give some
 * layers another type); the output projection by its name. A handful of
 * patterns, as llama.cpp tries each on every tensor it loads. */
static bool plan_patterns(struct ggml_context *meta, ggml_backend_dev_t cpu, ggml_backend_buffer_t dummy,
                          int32_t floor, struct tmap_weight_placement *pl)
{
    size_t n = 0;
    for (struct ggml_tensor *t = ggml_get_first_tensor(meta); t; t = ggml_get_next_tensor(meta, t))
        n++;
    bool *takes = calloc(n ? n : 1, sizeof *takes), *done = calloc(n ? n : 1, sizeof *done);
    const char **roles = calloc(n ? n : 1, sizeof *roles);
    struct ggml_tensor **tensors = calloc(n ? n : 1, sizeof *tensors);
    pl->patterns = calloc(n ? n : 1, sizeof *pl->patterns); /* at most one per tensor */
    bool ok = takes && done && roles && tensors && pl->patterns;
    size_t i = 0;
    for (struct ggml_tensor *t = ggml_get_first_tensor(meta); ok && t; t = ggml_get_next_tensor(meta, t), i++) {
        tensors[i] = t;
        bool matrix = matrix_weight(t, &roles[i]);
        takes[i] = matrix && forward_position(ggml_get_name(t)) < floor && takes_weight(cpu, dummy, t);
        pl->n_weights += takes[i];
        if (!matrix)
            roles[i] = NULL;
    }
    for (i = 0; ok && i < n; i++) {
        if (!takes[i] || done[i])
            continue;
        char *pattern = NULL;
        size_t len = 0, cap = 0;
        const char *name = ggml_get_name(tensors[i]);
        if (!roles[i]) { /* output.weight */
            ok = append(&pattern, &len, &cap, "^", 1) && append_escaped(&pattern, &len, &cap, name, strlen(name)) &&
                 append(&pattern, &len, &cap, "$", 1);
            done[i] = true;
        } else {
            bool whole_role = true;
            for (size_t j = 0; j < n; j++)
                if (roles[j] && strcmp(roles[j], roles[i]) == 0 && !takes[j])
                    whole_role = false;
            ok = append(&pattern, &len, &cap, "^blk\\.", 6);
            if (whole_role)
                ok = ok && append(&pattern, &len, &cap, "[0-9]+", 6);
            for (size_t j = i, first = 1; ok && j < n; j++) {
                if (!takes[j] || done[j] || !roles[j] || strcmp(roles[j], roles[i]) != 0)
                    continue;
                done[j] = true;
                if (whole_role)
                    continue;
                const char *number = ggml_get_name(tensors[j]) + 4;
                ok = append(&pattern, &len, &cap, first ? "(" : "|", 1) &&
                     append(&pattern, &len, &cap, number, strcspn(number, "."));
                first = 0;
            }
            if (!whole_role)
                ok = ok && append(&pattern, &len, &cap, ")", 1);
            ok = ok && append(&pattern, &len, &cap, "\\.", 2) &&
                 append_escaped(&pattern, &len, &cap, roles[i], strlen(roles[i])) &&
                 append(&pattern, &len, &cap, "$", 1);
        }
        if (ok)
            pl->patterns[pl->n++] = pattern;
        else
            free(pattern);
    }
    free(takes);
    free(done);
    free(roles);
    free(tensors);
    return ok;
}

enum tmap_status tmap_weight_placement_plan(const char *path, bool repack,
                                            const struct tmap_weight_training *training,
                                            struct llama_model_params *mp, struct tmap_weight_placement *out,
                                            struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    if (!repack) {
        mp->use_extra_bufts = false;
        return TMAP_OK;
    }
    if (!training && !tmap_cpu_offers_amx_buffers()) {
        out->n_weights = -1; /* llama.cpp's default: every extra buffer type, uncounted */
        return TMAP_OK;
    }
    mp->use_extra_bufts = false;
    ggml_backend_buffer_type_t repacked = cpu_extra_buffer_type("CPU_REPACK");
    if (!repacked || tmap_offload_devices() > 0)
        return TMAP_OK;

    /* The file's tensors as metadata only; a file gguf cannot read is left
     * to llama.cpp's loader, whose message names the reason. */
    struct ggml_context *meta = NULL;
    struct gguf_init_params gp = { true, &meta };
    tmap_llama_log_hold(true);
    struct gguf_context *gguf = gguf_init_from_file(path, gp);
    tmap_llama_log_hold(false);
    if (!gguf)
        return TMAP_OK;
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(repacked, 0);
    bool ok = dummy && plan_patterns(meta, cpu, dummy, backward_floor(meta, training), out);
    if (dummy)
        ggml_backend_buffer_free(dummy);
    ggml_free(meta);
    gguf_free(gguf);
    if (ok && out->n > 0) {
        out->overrides = calloc(out->n + 1, sizeof *out->overrides); /* ends with a NULL pattern */
        ok = out->overrides != NULL;
        for (size_t i = 0; ok && i < out->n; i++)
            out->overrides[i] = (struct llama_model_tensor_buft_override){ out->patterns[i], repacked };
        if (ok)
            mp->tensor_buft_overrides = out->overrides;
    }
    if (!ok) {
        tmap_weight_placement_free(out);
        return tmap_fail(err, TMAP_ERR_NOMEM, "%s: out of memory placing the weights", path);
    }
    return TMAP_OK;
}

void tmap_weight_placement_free(struct tmap_weight_placement *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->patterns[i]);
    free(pl->patterns);
    free(pl->overrides);
    memset(pl, 0, sizeof *pl);
}
