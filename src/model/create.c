/*
 * create.c - small random-init Llama models with a real tokenizer.
 *
 * No weights can be downloaded where tmap is developed and tested, so tests
 * and the demo build their own models (docs/design.md section 13): GGUF metadata
 * for a plain Llama, the tokenizer key/values copied from a vocab-only GGUF,
 * and llama_model_init_from_user filling every tensor through a callback.
 *
 * Determinism: each tensor draws from its own generator, seeded by the
 * model seed and a hash of the tensor's name, so the bytes do not depend on
 * the order in which llama.cpp creates tensors, nor on which thread fills
 * which: the callback only lists the tensors, and they are filled after
 * llama.cpp returns, several at once (a 7B shape holds 6.7 billion draws,
 * minutes on one core).
 */
#include "model/model.h"
#include "util/atomic.h"
#include "util/error.h"
#include "util/file.h"
#include "util/grow.h"
#include "util/random.h"

#include <ggml-backend.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>
#include <xxhash.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tmap_model_create_params tmap_model_create_default_params(void)
{
    struct tmap_model_create_params p = {
        .n_embd        = 64,
        .n_layer       = 2,
        .n_head        = 4,
        .n_head_kv     = 4,
        .n_ff          = 0, /* 0 = the Llama ratio, about 8/3 n_embd */
        .n_ctx         = 2048,
        .seed          = 42,
        .init_std      = 0.02f,
        .vocab_path    = NULL,
        .chat_template = NULL,
        .arch          = "llama",
    };
    return p;
}

/* The architectures whose tensors llama.cpp can lay out from the shape keys
 * written below alone. Each differs from the Llama in what real models of
 * the family differ in (qwen2: q/k/v biases; qwen3: q/k norms; gemma: tied
 * output, scaled embeddings; starcoder2 and gpt2: LayerNorm with biases,
 * gpt2 learned positions), so a model of each family exercises its graph.
 * phi3 is not here: llama.cpp cannot build it from user data (its optional
 * fused and split q/k/v tensors), so Phi-3's vocabulary goes in a Llama. */
static const char *const create_archs[] = { "llama", "qwen2", "qwen3", "gemma", "starcoder2", "gpt2", NULL };

const char *tmap_model_arch_names(void)
{
    return "llama,qwen2,qwen3,gemma,starcoder2,gpt2";
}

static bool arch_known(const char *arch)
{
    for (int i = 0; create_archs[i]; i++)
        if (strcmp(create_archs[i], arch) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Deterministic normal draws                                               */
/* ------------------------------------------------------------------------ */

/* Box-Muller, both outputs used. */
static void fill_normal(float *out, int64_t n, uint64_t *state, float std)
{
    for (int64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(tmap_random_unit(state)));
        double t = 6.283185307179586 * tmap_random_unit(state);
        out[i] = (float)(r * cos(t)) * std;
        if (i + 1 < n)
            out[i + 1] = (float)(r * sin(t)) * std;
    }
}

static bool name_ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* ------------------------------------------------------------------------ */
/* Filling tensors                                                          */
/* ------------------------------------------------------------------------ */

struct fill_state {
    uint64_t             seed;
    float                std;
    bool                 failed;
    struct ggml_tensor **tensors; /* as llama.cpp hands them over */
    size_t               n, cap;
};

/* init_from_user hands over every optional tensor of the architecture too.
 * Random biases, rope frequency factors or output scales would turn the
 * model into something no real Llama computes, so those get their neutral
 * values: norms, scales and rope factors 1, biases 0. */
static float neutral_value(const char *name, bool *is_neutral)
{
    *is_neutral = true;
    if (strstr(name, "norm") || strstr(name, "scale") || strstr(name, "rope_freqs"))
        return 1.0f;
    if (name_ends_with(name, ".bias") || strstr(name, "_b."))
        return 0.0f;
    *is_neutral = false;
    return 0.0f;
}

/* llama_model_init_from_user's callback: the tensor's buffer is in place,
 * so it is filled later, with the others. */
static void list_tensor(struct ggml_tensor *t, void *user_data)
{
    struct fill_state *fs = user_data;
    if (!tmap_grow((void **)&fs->tensors, &fs->cap, fs->n + 1, sizeof *fs->tensors)) {
        fs->failed = true;
        return;
    }
    fs->tensors[fs->n++] = t;
}

/* Fills one tensor; false when memory ran out or its type is not a float. */
static bool fill_tensor(struct ggml_tensor *t, const struct fill_state *fs)
{
    int64_t n = ggml_nelements(t);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return false;
    bool ok = true, neutral;
    float c = neutral_value(t->name, &neutral);
    if (neutral) {
        for (int64_t i = 0; i < n; i++)
            v[i] = c;
    } else {
        uint64_t state = fs->seed ^ XXH64(t->name, strlen(t->name), 0);
        fill_normal(v, n, &state, fs->std);
    }

    if (t->type == GGML_TYPE_F32) {
        ggml_backend_tensor_set(t, v, 0, ggml_nbytes(t));
    } else if (t->type == GGML_TYPE_F16) {
        ggml_fp16_t *h = malloc((size_t)n * sizeof *h);
        ok = h != NULL;
        if (h) {
            ggml_fp32_to_fp16_row(v, h, n);
            ggml_backend_tensor_set(t, h, 0, ggml_nbytes(t));
        }
        free(h);
    } else {
        ok = false; /* init_from_user makes F32 unless told otherwise */
    }
    free(v);
    return ok;
}

/* Every listed tensor, largest first so that no thread is left with a big
 * one at the end. Each thread holds one tensor's draws at a time. */
static int by_size_descending(const void *a, const void *b)
{
    int64_t x = ggml_nelements(*(struct ggml_tensor *const *)a), y = ggml_nelements(*(struct ggml_tensor *const *)b);
    return (x < y) - (x > y);
}

static bool fill_all(struct fill_state *fs)
{
    if (fs->n > 1)
        qsort(fs->tensors, fs->n, sizeof *fs->tensors, by_size_descending);
    int failures = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : failures)
    for (size_t i = 0; i < fs->n; i++)
        failures += !fill_tensor(fs->tensors[i], fs);
    return failures == 0;
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                 */
/* ------------------------------------------------------------------------ */

static enum tmap_status check_create_params(const struct tmap_model_create_params *p,
                                            struct tmap_error *err)
{
    if (p->n_embd < 8 || p->n_layer < 1 || p->n_head < 1 || p->n_ctx < 16)
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "model shape n_embd=%d n_layer=%d n_head=%d n_ctx=%d is too small "
                         "(at least 8, 1, 1, 16)", p->n_embd, p->n_layer, p->n_head, p->n_ctx);
    if (p->n_embd % p->n_head != 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "n_embd=%d is not a multiple of n_head=%d",
                         p->n_embd, p->n_head);
    if ((p->n_embd / p->n_head) % 2 != 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "head size %d must be even (rotary embeddings)",
                         p->n_embd / p->n_head);
    if (p->n_head_kv < 1 || p->n_head % p->n_head_kv != 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "n_head=%d is not a multiple of n_head_kv=%d",
                         p->n_head, p->n_head_kv);
    if (!(p->init_std > 0.0f))
        return tmap_fail(err, TMAP_ERR_USAGE, "init_std %g must be positive", (double)p->init_std);
    if (p->arch && !arch_known(p->arch))
        return tmap_fail(err, TMAP_ERR_USAGE, "unknown architecture '%s' (%s)", p->arch, tmap_model_arch_names());
    return TMAP_OK;
}

static struct gguf_context *build_metadata(const struct tmap_model_create_params *p,
                                           const struct gguf_context *vocab)
{
    struct gguf_context *g = gguf_init_empty();
    if (!g)
        return NULL;
    gguf_set_kv(g, vocab); /* the tokenizer.* keys, and the vocab file's hparams that we override */
    gguf_remove_key(g, "general.file_type");

    int32_t n_ff = p->n_ff > 0 ? p->n_ff : ((p->n_embd * 8 / 3 + 31) / 32) * 32;
    const char *arch = p->arch ? p->arch : "llama";
    char name[96];
    snprintf(name, sizeof name, "tmap-%s-%dx%d-seed%llu", arch, p->n_embd, p->n_layer,
             (unsigned long long)p->seed);
    gguf_set_val_str(g, "general.architecture", arch);
    gguf_set_val_str(g, "general.name", name);
    /* Every key is ARCH.something: llama.cpp reads the ones its
     * architecture needs (RMSNorm or LayerNorm epsilon) and ignores the rest. */
    char key[128];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    gguf_set_val_u32(g, ARCH_KEY("context_length"), (uint32_t)p->n_ctx);
    gguf_set_val_u32(g, ARCH_KEY("embedding_length"), (uint32_t)p->n_embd);
    gguf_set_val_u32(g, ARCH_KEY("feed_forward_length"), (uint32_t)n_ff);
    gguf_set_val_u32(g, ARCH_KEY("block_count"), (uint32_t)p->n_layer);
    gguf_set_val_u32(g, ARCH_KEY("attention.head_count"), (uint32_t)p->n_head);
    gguf_set_val_u32(g, ARCH_KEY("attention.head_count_kv"), (uint32_t)p->n_head_kv);
    gguf_set_val_u32(g, ARCH_KEY("rope.dimension_count"), (uint32_t)(p->n_embd / p->n_head));
    gguf_set_val_f32(g, ARCH_KEY("rope.freq_base"), 10000.0f);
    gguf_set_val_f32(g, ARCH_KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    gguf_set_val_f32(g, ARCH_KEY("attention.layer_norm_epsilon"), 1e-5f);
    int64_t tok = gguf_find_key(vocab, "tokenizer.ggml.tokens");
    if (tok >= 0)
        gguf_set_val_u32(g, ARCH_KEY("vocab_size"), (uint32_t)gguf_get_arr_n(vocab, tok));
#undef ARCH_KEY
    return g;
}

/* llama.cpp's model saver writes the tokenizer and the hyperparameters it
 * knows, not a chat template nor keys of ours: add them to the metadata,
 * keeping the tensor data as it is. tmap.create.seed marks a model that
 * has learned nothing (tmap info, tmap run's summary). */
static bool add_metadata(const char *path, const struct tmap_model_create_params *p)
{
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(path, gp);
    if (!g)
        return false;
    if (p->chat_template)
        gguf_set_val_str(g, "tokenizer.chat_template", p->chat_template);
    gguf_set_val_u64(g, "tmap.create.seed", p->seed);
    char next[4200];
    snprintf(next, sizeof next, "%s.meta", path);
    bool ok = tmap_gguf_write_edited(g, path, next);
    gguf_free(g);
    ok = ok && rename(next, path) == 0;
    if (!ok)
        unlink(next);
    return ok;
}

enum tmap_status tmap_model_create(const char *out_path, const struct tmap_model_create_params *p,
                                   struct tmap_error *err)
{
    enum tmap_status st = check_create_params(p, err);
    if (st)
        return st;
    const char *vocab_path = p->vocab_path ? p->vocab_path : getenv("TMAP_VOCAB");
    if (!vocab_path)
        vocab_path = TMAP_DEFAULT_VOCAB;

    struct gguf_context *vocab;
    st = tmap_vocab_read(vocab_path, &vocab, err);
    if (st)
        return st;
    /* llama.cpp's model writer aborts the process on a Unigram (T5-style)
     * vocabulary's character map (llama_model_saver cannot store a char
     * array): refuse it here with a message instead. */
    if (gguf_find_key(vocab, "tokenizer.ggml.precompiled_charsmap") >= 0) {
        gguf_free(vocab);
        return tmap_fail(err, TMAP_ERR_MODEL,
                         "%s: a Unigram vocabulary with a precompiled character map: llama.cpp cannot "
                         "write a model with it", vocab_path);
    }
    struct gguf_context *meta = build_metadata(p, vocab);
    gguf_free(vocab);
    if (!meta)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory building model metadata");

    struct fill_state fs = { .seed = p->seed, .std = p->init_std, .failed = false };
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0; /* created on the CPU; loaders offload as they like */
    struct llama_model *model = llama_model_init_from_user(meta, list_tensor, &fs, mp);
    gguf_free(meta);
    if (model && !fs.failed && !fill_all(&fs))
        fs.failed = true;
    free(fs.tensors);
    if (!model || fs.failed) {
        if (model)
            llama_model_free(model);
        return tmap_fail(err, TMAP_ERR_MODEL, "llama.cpp cannot build a model of this shape");
    }

    /* Write beside the target and rename, so a killed run never leaves a
     * half-written model under the final name. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid());
    FILE *probe = fopen(tmp, "wb"); /* llama.cpp's writer cannot report failure */
    if (!probe) {
        llama_model_free(model);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", out_path, strerror(errno));
    }
    fclose(probe);
    llama_model_save_to_file(model, tmp);
    llama_model_free(model);
    bool written = access(tmp, F_OK) == 0;
    if (written)
        written = add_metadata(tmp, p);
    if (!written) {
        unlink(tmp);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write the model", out_path);
    }
    return tmap_atomic_publish(tmp, out_path, err);
}
