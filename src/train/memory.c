/*
 * memory.c - whether a training run can fit before it starts.
 *
 * Linux overcommits: llama.cpp's buffers for a training copy of a model
 * that does not fit are granted, and the kernel's OOM killer ends the
 * process with SIGKILL when they are first written, without a word. For
 * `tmap run --proxy finetune` that happens after the scoring pass, which
 * on a large pool is hours. So the least memory training needs is worked
 * out from the model file's header before anything loads, and a run that
 * cannot fit in the memory and swap the system has available stops there,
 * saying what it needs and how to need less.
 *
 * The figure is a floor, never an estimate of the peak: it counts what
 * training certainly holds (docs/finetune.md compares it with measured
 * peaks), so it never turns away a run that would have fit.
 */
#include "model/model.h"
#include "train/finetune.h"
#include "util/error.h"
#include "util/fault.h"

#include <gguf.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* An unsigned integer of the model's architecture (`ARCH.key`), 0 when
 * absent. */
static uint64_t arch_uint(const struct gguf_context *g, const char *arch, const char *key)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    int64_t k = gguf_find_key(g, name);
    if (k < 0)
        return 0;
    switch (gguf_get_kv_type(g, k)) {
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, k);
    case GGUF_TYPE_INT32:  return gguf_get_val_i32(g, k) > 0 ? (uint64_t)gguf_get_val_i32(g, k) : 0;
    case GGUF_TYPE_UINT64: return gguf_get_val_u64(g, k);
    case GGUF_TYPE_ARRAY:  /* per-layer head counts: the first layer's stands for all */
        if (gguf_get_arr_type(g, k) == GGUF_TYPE_UINT32 && gguf_get_arr_n(g, k) > 0)
            return ((const uint32_t *)gguf_get_arr_data(g, k))[0];
        return 0;
    default: return 0;
    }
}

static uint64_t vocab_size(const struct gguf_context *g, const char *arch)
{
    int64_t k = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_ARRAY)
        return gguf_get_arr_n(g, k);
    return arch_uint(g, arch, "vocab_size");
}

/* Floats of keys and values a layer caches per token: the heads that hold
 * keys and values times their widths (key_length and value_length where
 * the file gives them, as Gemma's do, else the width of a query head). 0
 * where a floor cannot count on it: no attention heads (a recurrent
 * model's state) or a compressed cache (DeepSeek's latent attention). */
static uint64_t kv_width(const struct gguf_context *g, const char *arch)
{
    uint64_t n_embd = arch_uint(g, arch, "embedding_length");
    uint64_t n_head = arch_uint(g, arch, "attention.head_count");
    uint64_t n_head_kv = arch_uint(g, arch, "attention.head_count_kv");
    if (n_head == 0 || arch_uint(g, arch, "attention.kv_lora_rank") > 0)
        return 0;
    if (n_head_kv == 0)
        n_head_kv = n_head;
    uint64_t k = arch_uint(g, arch, "attention.key_length"), v = arch_uint(g, arch, "attention.value_length");
    k = k ? k : n_embd / n_head;
    v = v ? v : n_embd / n_head;
    return n_head_kv * (k + v);
}

/*
 * The parts, each a floor:
 *   weights    every tensor, in memory of the copy's own (loaded unmapped:
 *              the optimiser writes it);
 *   optimiser  for each tensor that trains (F32), its gradient and AdamW's
 *              two moments, F32 like it;
 *   window     the training context's KV cache (F32, one window of n_ctx
 *              cells in every layer, keys and values at the model's
 *              key-value width) and two rows of logits per position (the
 *              output and its gradient), which on a small model with a
 *              large vocabulary outweigh the rest.
 * Activations, the compute buffers and the scoring context come on top.
 */
static void need_of(const struct gguf_context *g, const struct tmap_tensor_spec *trains, int32_t n_ctx,
                    struct ft_memory_need *out)
{
    memset(out, 0, sizeof *out);
    for (int64_t t = 0; t < gguf_get_n_tensors(g); t++) {
        const char *name = gguf_get_tensor_name(g, t);
        uint64_t bytes = gguf_get_tensor_size(g, t);
        out->weights += bytes;
        if (tmap_tensor_spec_match(trains, name) && strcmp(name, "rope_freqs.weight") != 0 &&
            gguf_get_tensor_type(g, t) == GGML_TYPE_F32) {
            out->optimiser += 3 * bytes;
            out->n_trained++;
        }
    }
    char arch[64] = "llama";
    int64_t k = gguf_find_key(g, "general.architecture");
    if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_STRING)
        snprintf(arch, sizeof arch, "%s", gguf_get_val_str(g, k));
    uint64_t cells = n_ctx > 0 ? (uint64_t)n_ctx : 0;
    out->window = cells * kv_width(g, arch) * arch_uint(g, arch, "block_count") * sizeof(float) +
                  2 * cells * vocab_size(g, arch) * sizeof(float);
    out->total = out->weights + out->optimiser + out->window;
}

enum tmap_status ft_memory_need(const char *model_path, const char *spec, int32_t n_ctx, struct ft_memory_need *out,
                                struct tmap_error *err)
{
    struct tmap_tensor_spec *trains;
    enum tmap_status st = tmap_tensor_spec_parse(spec, "--train-layers", &trains, err);
    if (st)
        return st;
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(model_path, gp);
    if (!g)
        st = tmap_fail(err, TMAP_ERR_MODEL, "%s: not a readable GGUF file", model_path);
    else
        need_of(g, trains, n_ctx, out);
    gguf_free(g);
    tmap_tensor_spec_free(trains);
    return st;
}

/* MemAvailable and SwapFree of /proc/meminfo, in bytes; false where there
 * is no such file (not Linux), and the check is then skipped. */
static bool memory_available(uint64_t *ram, uint64_t *swap)
{
    if (tmap_fault_due("memory-check")) { /* tests: a machine with none left */
        *ram = *swap = 0;
        return true;
    }
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return false;
    char line[256];
    unsigned long long kb;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *ram = (uint64_t)kb * 1024;
            found |= 1;
        } else if (sscanf(line, "SwapFree: %llu kB", &kb) == 1) {
            *swap = (uint64_t)kb * 1024;
            found |= 2;
        }
    }
    fclose(f);
    return found == 3;
}

/* "12.3 GB", or "45 MB" below a gigabyte: small models and their parts
 * would all read 0.0 GB. */
struct size_text {
    char s[24];
};

static struct size_text size_text(uint64_t bytes)
{
    struct size_text t;
    if (bytes >= 1000000000u)
        snprintf(t.s, sizeof t.s, "%.1f GB", (double)bytes / 1e9);
    else
        snprintf(t.s, sizeof t.s, "%.0f MB", (double)bytes / 1e6);
    return t;
}

enum tmap_status ft_memory_verdict(const char *model_path, const char *spec, int32_t n_ctx,
                                   const struct ft_memory_need *need, int copies, uint64_t ram, uint64_t swap,
                                   struct tmap_error *err)
{
    copies = copies > 1 ? copies : 1;
    uint64_t all = need->total * (uint64_t)copies;
    if (all <= ram + swap)
        return TMAP_OK;
    /* The way out where the need is: fewer copies where one fits, else
     * the window or what trains. */
    char how[512], many[160] = "";
    if (copies > 1)
        snprintf(many, sizeof many, ", and each of the %d ranks on this host trains its own copy at once: %s in all",
                 copies, size_text(all).s);
    if (copies > 1 && need->total <= ram + swap) {
        unsigned long long fit = (ram + swap) / need->total;
        snprintf(how, sizeof how, "fewer ranks on this host need less: %llu fit (mpirun --map-by ppr:%llu:node)",
                 fit, fit);
    } else if (need->window > need->weights + need->optimiser)
        snprintf(how, sizeof how, "a shorter training window (-c, now %d) needs less", n_ctx);
    else if (spec && *spec)
        snprintf(how, sizeof how, "fewer tensors to train (--train-layers '%s' now) need less", spec);
    else
        snprintf(how, sizeof how, "training the top alone needs less: --train-layers LAST,output (LAST the "
                 "last block's number), and `tmap model quantize %s OUT.gguf --type q8_0 --keep-f32 LAST,output` "
                 "stores the other weights in a quarter of the room", model_path);
    return tmap_fail(err, TMAP_ERR_NOMEM,
                     "%s: training it needs at least %s (weights %s; gradients and AdamW moments of the %d "
                     "tensors that train %s; the training window %s)%s, and %s is available (%s of memory, %s of "
                     "swap): it would be killed part way; %s (docs/finetune.md)",
                     model_path, size_text(need->total).s, size_text(need->weights).s, need->n_trained,
                     size_text(need->optimiser).s, size_text(need->window).s, many, size_text(ram + swap).s,
                     size_text(ram).s, size_text(swap).s, how);
}

enum tmap_status ft_check_memory(const struct gguf_context *g, const struct tmap_tensor_spec *trains,
                                 const char *model_path, const char *spec, int32_t n_ctx, int32_t n_gpu_layers,
                                 int copies, struct tmap_error *err)
{
    /* Offloaded layers live in the GPU's memory, which is not
     * overcommitted: an allocation that does not fit fails when made. */
    if (n_gpu_layers != 0 && tmap_offload_devices() > 0)
        return TMAP_OK;
    uint64_t ram = 0, swap = 0;
    if (!memory_available(&ram, &swap))
        return TMAP_OK;
    struct ft_memory_need need;
    need_of(g, trains, n_ctx, &need);
    return ft_memory_verdict(model_path, spec, n_ctx, &need, copies, ram, swap, err);
}
