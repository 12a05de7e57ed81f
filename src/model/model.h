/*
 * model.h - what the model modules share inside the library.
 *
 * struct tmap_model wraps one llama_model and one llama_context. The context
 * holds n_seq sequences in one unified KV cache of n_ctx * n_seq cells, so
 * each sequence can always grow to n_ctx. Measured on CPU (bench_logprob,
 * 512x8 model, GSM8K): the unified cache scored 1.0x the speed of one sample
 * per call at n_seq 4, the per-sequence (non-unified) one 0.70x, because
 * llama.cpp must then split each batch into equal per-sequence slices.
 * Per-token log-probabilities also matched one-by-one decoding closer
 * (1e-6 vs 2e-4 nats).
 */
#ifndef TMAP_MODEL_MODEL_H
#define TMAP_MODEL_MODEL_H

#include "tmap.h"

#include <llama.h>

struct tmap_model {
    struct llama_model       *model;
    struct llama_context     *ctx;
    const struct llama_vocab *vocab;
    struct tmap_model_info    info;
    struct tmap_model_counters counters;
    struct tmap_model_params   params;    /* as loaded, params.path owned: the fine-tune proxy reloads it */
    int32_t                    n_threads; /* as llama.cpp runs; tmap's own loops reuse it */
    int32_t                    n_ubatch;  /* llama.cpp computes a decode call in pieces of this many tokens */
    int32_t                    companion_seq; /* the spare sequence of tmap_model_decode's companion, or -1 */
    /* Hidden states read during decode (see capture_hidden in model.c):
     * while capture is set, the final-norm rows of every output token of a
     * llama_decode call land here, in batch order. */
    bool                       capture;
    float                     *hidden;
    size_t                     n_hidden, cap_hidden; /* rows */
    /* Whether ctx was created with capture_hidden as its eval callback, and
     * how many decode calls it has made since a run last captured
     * (tmap_model_prepare_capture). */
    bool                       ctx_has_callback;
    uint64_t                   calls_since_capture;
    /* n_lanes 2: the second lane, a tmap_model of its own (context,
     * capture, counters) that borrows this one's weights, vocabulary and
     * path. NULL with one lane, and in the twin itself. */
    struct tmap_model         *twin;
    bool                       borrowed;
    /* Weights tmap named to llama.cpp's repacked CPU layout (placement.c),
     * or -1 where llama.cpp's default placed them. */
    int32_t                    n_repacked;
};

/* The parameters the model was loaded with (path included), for loading
 * another model of the same shape the same way. */
const struct tmap_model_params *tmap_model_load_params(const struct tmap_model *m);

/* A copy of the model at p->path to train the tensors trains selects
 * (NULL: every tensor): its weights in memory of its own, and on the CPU
 * the frozen weights below the lowest tensor that trains in llama.cpp's
 * repacked layout, the others plain (tmap_weight_placement_plan). */
struct tmap_tensor_spec;
enum tmap_status tmap_model_load_to_train(const struct tmap_model_params *p, const struct tmap_tensor_spec *trains,
                                          struct tmap_model **out, struct tmap_error *err);

/* The layout prompts get when asked for `asked`: chat only on a model that
 * carries a chat template (tmap_model_format_prompt falls back to plain). */
enum tmap_template tmap_model_layout(const struct tmap_model_info *info, enum tmap_template asked);

/* The layout a command asked for against what the model carries, in one
 * line for a notice: --template chat on a model with no chat template
 * (the plain layout is used), or the plain layout on a model that has one
 * (an instruct model reads its own turns better). false when they agree. */
bool tmap_model_template_note(const struct tmap_model_info *info, enum tmap_template asked, char *buf,
                              size_t size);

/* The tokens of a sample's response as the model reads them after its
 * prompt under tmpl. Plain: the response tokenized on its own (SentencePiece
 * gives it the leading space "Answer:" lacks). Chat: the tokens that follow
 * the prompt's when the prompt and the response are tokenized as one text,
 * as the model saw its assistant turns in training (a template such as
 * llama2's puts the answer right after "[/INST]", with no space); on its own
 * when the response holds text that would parse as a control token (data
 * never injects one) or when a token spans the boundary. */
enum tmap_status tmap_model_tokenize_response(struct tmap_model *m, const struct tmap_sample *s,
                                              enum tmap_template tmpl, int32_t **tokens, int32_t *n_tokens,
                                              struct tmap_error *err);

/* The response's tokens, as tmap_model_tokenize_response gives them, and
 * in *end what the model reads after them, so that training teaches it to
 * stop: plain, EOS; chat, the template's markup that closes the assistant
 * turn (chatml's "<|im_end|>\n", llama2's "</s>"), with EOS after it only
 * when that markup holds no end-of-generation token (Gemma vocabularies
 * where "<end_of_turn>" is text). *end is empty when the vocabulary has
 * neither, and malloc'd either way. One formatting of the conversation
 * serves both. */
enum tmap_status tmap_model_tokenize_turn(struct tmap_model *m, const struct tmap_sample *s,
                                          enum tmap_template tmpl, int32_t **tokens, int32_t *n_tokens,
                                          int32_t **end, int32_t *n_end, struct tmap_error *err);

/* bytes[i]: how many bytes of text token i stands for (its piece; 0 for a
 * control token). Lets a caller find which tokens cover a span of text. */
enum tmap_status tmap_model_piece_bytes(struct tmap_model *m, const int32_t *tokens, int32_t n, int32_t *bytes,
                                        struct tmap_error *err);

/*
 * Sets the context up for a logprob run that does (capture) or does not
 * read hidden states, and sets m->capture. Call it before the run's first
 * decode: switching recreates the context, whose memory is then empty.
 *
 * Why switch at all: llama.cpp's scheduler, given an eval callback, waits
 * for the device at the end of every micro-batch (ggml_backend_sched
 * computes the graph piecewise so the callback can look at each node), so
 * on a GPU the host cannot build the next micro-batch while the current
 * one runs. A context is therefore opened without the callback, gains it
 * when a run first needs hidden states, and loses it again once
 * TMAP_CALLBACK_SHED_CALLS decode calls in a row have captured nothing:
 * scoring alternates capturing and plain passes every few dozen calls and
 * keeps the callback throughout, while a long plain phase (the proxy's
 * search) sheds it. On a CPU the wait costs nothing either way.
 */
#define TMAP_CALLBACK_SHED_CALLS 64
enum tmap_status tmap_model_prepare_capture(struct tmap_model *m, bool capture, struct tmap_error *err);

/*
 * Gives back the context (the second lane's too) and keeps the weights:
 * the next run opens a fresh one through tmap_model_prepare_capture, as a
 * failed reopen would. For a phase that leaves the model idle while
 * another context works: the fine-tune proxy trains a copy of the model,
 * and the training context, the copy's weights and the optimiser's state
 * all want the memory (measured in docs/finetune.md). The KV cache is the
 * context's bulk: n_seq * n_ctx cells, 1 GiB on a 1024-wide 16-layer model
 * with tmap run's 8 sequences of 2,048, 4 GiB on an 8B with grouped-query
 * attention at 4,096.
 */
void tmap_model_release_context(struct tmap_model *m);

/* Decodes a batch, counting calls and tokens; names the model on failure.
 * With m->capture set, m->hidden holds the batch's output rows afterwards. */
enum tmap_status tmap_model_decode(struct tmap_model *m, struct llama_batch batch,
                                   struct tmap_error *err);

/* Prefix sharing (docs/design.md section 5): decodes tokens into sequence 0 at
 * positions 0..n-1 (in n_batch chunks, no logits, no hidden rows
 * captured), after clearing the memory. Sequences 1..n_seq-1 then start from it with
 * llama_memory_seq_cp(mem, 0, s, -1, -1): in the unified KV cache that
 * shares the cells, it copies nothing. */
enum tmap_status tmap_model_decode_prefix(struct tmap_model *m, const int32_t *tokens, int32_t n,
                                          struct tmap_error *err);

/* Positions tmap_model_logprob decodes for this request (without a shared
 * prefix) under its overflow policy; 0 when it would skip the request.
 * Dry runs count with it. */
int32_t tmap_model_logprob_cost(const struct tmap_model *m, const struct tmap_logprob_request *r);

/* Reads a tokenizer for a created model (vocab.c): a vocab-only GGUF, or a
 * SentencePiece `.vocab` file (spm_train, BPE, --byte_fallback) turned into
 * the same tokenizer.* keys. The caller frees *out with gguf_free. */
struct gguf_context;
enum tmap_status tmap_vocab_read(const char *path, struct gguf_context **out, struct tmap_error *err);

/* What keys the model's scores in the store (fingerprint.c): xxh3-128 of
 * every byte of the GGUF file at path, as 32 hex digits in out, served from
 * a small cache keyed by device, inode, size and modification time when the
 * file is unchanged (*cached, may be NULL, says so). */
enum tmap_status tmap_model_fingerprint(const char *path, char out[33], bool *cached, struct tmap_error *err);

/* The error for a file gguf_init_from_file could not read (read under
 * tmap_llama_log_hold, so that gguf's complaint is kept): "a truncated or
 * damaged GGUF file (... REASON)" when it begins as a GGUF file does, else
 * "not a GGUF file"; TMAP_ERR_MODEL either way. */
enum tmap_status tmap_gguf_unreadable(const char *path, struct tmap_error *err);

/* The last error line llama.cpp logged, or "" (added to our messages). */
const char *tmap_llama_last_error(void);

/* While held, llama.cpp's and gguf's log lines are not printed; the first
 * error line is still kept (tmap_llama_last_error, cleared when the hold
 * starts). For reading a file whose failure tmap reports in its own
 * message, which then carries that line, so the reason appears once. */
void tmap_llama_log_hold(bool hold);

/* The devices llama.cpp offloads layers to: its GPUs, or where it has none
 * its integrated GPUs (as llama.cpp chooses); 0 on a CPU-only machine (an
 * accelerator such as BLAS only helps the CPU and holds no layers). */
int32_t tmap_offload_devices(void);

/* True where llama.cpp's CPU device offers its AMX weight buffers, which
 * tmap leaves off (they crash on Q8_0: placement.c says more). */
bool tmap_cpu_offers_amx_buffers(void);

/* Where llama.cpp puts a model's weights on the CPU (placement.c): without
 * repack every extra buffer type is off; with it, llama.cpp's default,
 * except that on a CPU with AMX buffers the weights that CPU_REPACK takes
 * are named to it one by one and the rest stay plain. Fills
 * mp->use_extra_bufts and mp->tensor_buft_overrides, which point into *out
 * until tmap_weight_placement_free (after the load). A program that loads
 * a model beside tmap's (bench/score's raw loop) plans the same way to run
 * the same kernels. */
struct tmap_weight_placement {
    struct llama_model_tensor_buft_override *overrides; /* NULL-pattern terminated */
    char                                   **patterns;
    size_t                                   n;
    int32_t n_weights; /* weights named to CPU_REPACK; -1 where llama.cpp's default decides */
};
/* What a model is loaded to train; the plan takes NULL for a model loaded
 * to run. Its frozen weights that the backward pass reaches stay plain,
 * those below the lowest tensor that trains may repack (placement.c says
 * why). With a GPU, or without repack, every weight is plain. A struct,
 * not the bare spec, because a NULL spec already means every tensor. */
struct tmap_weight_training {
    const struct tmap_tensor_spec *trains; /* NULL: every tensor trains */
};
enum tmap_status tmap_weight_placement_plan(const char *path, bool repack,
                                            const struct tmap_weight_training *training,
                                            struct llama_model_params *mp, struct tmap_weight_placement *out,
                                            struct tmap_error *err);
void tmap_weight_placement_free(struct tmap_weight_placement *pl);

/* A set of a model's tensors named by a spec (tensor_spec.c): a comma list
 * of layer numbers or ranges ("3", "6-7": every tensor of blk.K) and name
 * parts ("attn", "output"), as --train-layers and `tmap model quantize
 * --keep-f32` take it; flag names the option in messages. A NULL or empty
 * spec parses to NULL, which selects every tensor. */
enum tmap_status tmap_tensor_spec_parse(const char *spec, const char *flag, struct tmap_tensor_spec **out,
                                        struct tmap_error *err);
bool tmap_tensor_spec_match(const struct tmap_tensor_spec *s, const char *tensor_name);
/* The K of a repeating block's tensor ("blk.K.ffn_up.weight"), or -1. */
int32_t tmap_tensor_block(const char *tensor_name);
/* Counts in *n_matched the tensors of the GGUF file g (read from path) the
 * spec selects, and fails (TMAP_ERR_USAGE) on an item that selects none. */
enum tmap_status tmap_tensor_spec_check(const struct tmap_tensor_spec *s, const struct gguf_context *g,
                                        const char *path, int32_t *n_matched, struct tmap_error *err);
void tmap_tensor_spec_free(struct tmap_tensor_spec *s);

#endif
