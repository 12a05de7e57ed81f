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
 */
#include "model/model.h"
#include "util/error.h"

#include <ggml-backend.h>
#include <gguf.h>

#include <stdio.h>
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

/* A device llama.cpp could offload layers to (an accelerator such as BLAS
 * only helps the CPU and holds no weights). */
static bool has_gpu(void)
{
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        enum ggml_backend_dev_type type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU)
            return true;
    }
    return false;
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

/* "blk.12.ffn_up.weight" -> "^blk\.12\.ffn_up\.weight$" (every name
 * llama.cpp gives is letters, digits, '_' and '.'); all_blocks: any block
 * number. */
static char *name_pattern(const char *name, bool all_blocks)
{
    size_t cap = 2 * strlen(name) + 16;
    char *out = malloc(cap), *o = out;
    if (!out)
        return NULL;
    *o++ = '^';
    if (all_blocks) {
        o += sprintf(o, "blk\\.[0-9]+\\.");
        name = strchr(name + 4, '.') + 1;
    }
    for (; *name; name++) {
        if (*name == '.')
            *o++ = '\\';
        *o++ = *name;
    }
    *o++ = '$';
    *o = '\0';
    return out;
}

static bool add_pattern(struct tmap_weight_placement *pl, char *pattern)
{
    if (!pattern)
        return false;
    char **grown = realloc(pl->patterns, (pl->n + 1) * sizeof *grown);
    if (!grown) {
        free(pattern);
        return false;
    }
    pl->patterns = grown;
    pl->patterns[pl->n++] = pattern;
    return true;
}

/* One pattern per role when every block's weight of that role repacks (the
 * usual case: a few patterns for the whole model), else one per weight
 * (k-quant mixes give some layers' ffn_down another type). */
static bool plan_patterns(struct ggml_context *meta, ggml_backend_dev_t cpu, ggml_backend_buffer_t dummy,
                          struct tmap_weight_placement *pl)
{
    size_t n = 0;
    for (struct ggml_tensor *t = ggml_get_first_tensor(meta); t; t = ggml_get_next_tensor(meta, t))
        n++;
    bool *takes = calloc(n ? n : 1, sizeof *takes), *done = calloc(n ? n : 1, sizeof *done);
    struct ggml_tensor **tensors = calloc(n ? n : 1, sizeof *tensors);
    bool ok = takes && done && tensors;
    size_t i = 0;
    for (struct ggml_tensor *t = ggml_get_first_tensor(meta); ok && t; t = ggml_get_next_tensor(meta, t), i++) {
        const char *role;
        tensors[i] = t;
        takes[i] = matrix_weight(t, &role) && takes_weight(cpu, dummy, t);
        done[i] = !takes[i];
    }
    for (i = 0; ok && i < n; i++) {
        if (done[i])
            continue;
        const char *role;
        matrix_weight(tensors[i], &role);
        bool whole_role = role != NULL;
        for (size_t j = 0; whole_role && j < n; j++) {
            const char *other;
            if (matrix_weight(tensors[j], &other) && other && strcmp(other, role) == 0 && !takes[j])
                whole_role = false;
        }
        if (whole_role) {
            for (size_t j = i; j < n; j++) {
                const char *other;
                if (!done[j] && matrix_weight(tensors[j], &other) && other && strcmp(other, role) == 0)
                    done[j] = true;
            }
        }
        done[i] = true;
        ok = add_pattern(pl, name_pattern(ggml_get_name(tensors[i]), whole_role));
    }
    free(takes);
    free(done);
    free(tensors);
    return ok;
}

enum tmap_status tmap_weight_placement_plan(const char *path, bool repack, struct llama_model_params *mp,
                                            struct tmap_weight_placement *out, struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    if (!repack) {
        mp->use_extra_bufts = false;
        return TMAP_OK;
    }
    if (!tmap_cpu_offers_amx_buffers())
        return TMAP_OK; /* llama.cpp's default: every extra buffer type */
    mp->use_extra_bufts = false;
    ggml_backend_buffer_type_t repacked = cpu_extra_buffer_type("CPU_REPACK");
    if (!repacked || has_gpu())
        return TMAP_OK;

    /* The file's tensors as metadata only; a file gguf cannot read is left
     * to llama.cpp's loader, whose message names the reason. */
    struct ggml_context *meta = NULL;
    struct gguf_init_params gp = { true, &meta };
    struct gguf_context *gguf = gguf_init_from_file(path, gp);
    if (!gguf)
        return TMAP_OK;
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(repacked, 0);
    bool ok = dummy && plan_patterns(meta, cpu, dummy, out);
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
