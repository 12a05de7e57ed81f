/*
 * finetune.h - what the training modules share inside the library.
 *
 * finetune.c runs the training (llama_opt_init / llama_opt_epoch) and owns
 * the schedule; corpus.c turns a pool into token sequences, the held-out
 * split and the packed windows llama_opt_epoch reads; layers.c checks
 * what --train-layers selects (model/tensor_spec.c parses it); checkpoint.c writes models and the resume sidecar.
 */
#ifndef TMAP_TRAIN_FINETUNE_H
#define TMAP_TRAIN_FINETUNE_H

#include "tmap.h"

#include <llama.h>

/* ---- finetune.c --------------------------------------------------------- */

typedef enum tmap_status (*ft_judge_fn)(struct tmap_model *trained, void *user_data, struct tmap_error *err);

/* The fine-tune proxy's way in: trains m's own weights (m loaded without
 * mmap from params->model.path, and checked by the caller) on the records
 * params names, calls judge(m) on the trained weights, then reads the
 * trained tensors back from m's file, so that m is again as loaded.
 * Nothing is written: out_path, resume and checkpoints are unused. Should
 * it fail, m's weights may be neither: the caller drops m. */
enum tmap_status ft_train_judge(struct tmap_model *m, const struct tmap_pool *pool,
                                const struct tmap_finetune_params *params, struct tmap_finetune_result *result,
                                ft_judge_fn judge, void *judge_data, struct tmap_error *err);

/* ---- corpus.c ----------------------------------------------------------- */

/* One record as the model reads it: prompt tokens (BOS first), response
 * tokens, then what closes the turn (EOS, or a chat template's end-of-turn
 * markup). That end is trained but never scored (scoring stops at the
 * response's last token). */
struct ft_seq {
    int32_t *tokens;
    int32_t  n_prompt;
    int32_t  n_response;
    int32_t  n_tokens; /* prompt + response + the turn's end */
    int64_t  n_response_bytes; /* of the response text, for bits per byte */
};

struct ft_corpus {
    struct ft_seq *seqs;
    size_t         n;
    int64_t        n_tokens;
};

/* Tokenizes the records idx[0..n) of pool, laid out by tmpl (which must be
 * one the model has: tmap_model_layout). */
enum tmap_status ft_corpus_build(struct tmap_model *m, const struct tmap_pool *pool,
                                 const size_t *idx, size_t n, enum tmap_template tmpl, struct ft_corpus *out,
                                 struct tmap_error *err);
void ft_corpus_free(struct ft_corpus *c);

/* Splits records 0..n-1 into training and held-out ones: a seeded shuffle
 * takes round(n * val_split) held-out records (at least one when val_split
 * > 0 and n >= 2, never all); both lists come back in file order. */
enum tmap_status ft_split(size_t n, float val_split, uint64_t seed, size_t **train, size_t *n_train,
                          size_t **val, size_t *n_val, struct tmap_error *err);

/* The order of the training records in an epoch, a function of (seed,
 * epoch) alone so that a resumed run sees the order it would have seen. */
size_t *ft_epoch_order(size_t n, uint64_t seed, int32_t epoch);

/* Windows of n_ctx inputs the corpus packs into with the records in
 * `order` (NULL = as stored); the count depends a little on the order. -1
 * when out of memory. */
int64_t ft_n_windows(const struct ft_corpus *c, const size_t *order, int32_t n_ctx);

/* Writes the n_windows windows of that packing (corpus.c says how records
 * are laid out): inputs to data and the next tokens to labels, n_ctx each.
 * False when out of memory or n_windows is not the packing's count. */
bool ft_pack(const struct ft_corpus *c, const size_t *order, int32_t n_ctx, int64_t n_windows,
             int32_t *data, int32_t *labels);

/* ---- memory.c ----------------------------------------------------------- */

/* The least memory, in bytes, that training the tensors spec selects (NULL
 * or "": all) of the model at a path holds, with windows of n_ctx tokens;
 * memory.c says what each part counts. */
struct ft_memory_need {
    uint64_t weights, optimiser, window, total;
    int32_t  n_trained; /* F32 tensors that train */
};
enum tmap_status ft_memory_need(const char *model_path, const char *spec, int32_t n_ctx, struct ft_memory_need *out,
                                struct tmap_error *err);

/* TMAP_ERR_NOMEM, with the figures and how to need less, when copies
 * times need (for spec and n_ctx) is more than ram + swap bytes. copies is
 * how many processes of this host train a copy at once: the ranks of a
 * distributed `tmap run` on one machine each train their own. */
enum tmap_status ft_memory_verdict(const char *model_path, const char *spec, int32_t n_ctx,
                                   const struct ft_memory_need *need, int copies, uint64_t ram, uint64_t swap,
                                   struct tmap_error *err);

/* ft_memory_verdict for the tensors trains selects of the model whose
 * header g holds, against the memory and swap the system has available now
 * (/proc/meminfo). Skipped where the layers go to a GPU (n_gpu_layers not 0
 * and a GPU present) or the system does not say. */
struct gguf_context;
struct tmap_tensor_spec;
enum tmap_status ft_check_memory(const struct gguf_context *g, const struct tmap_tensor_spec *trains,
                                 const char *model_path, const char *spec, int32_t n_ctx, int32_t n_gpu_layers,
                                 int copies, struct tmap_error *err);

/* ---- layers.c ----------------------------------------------------------- */

/* What a training run checks before its copy loads, on one read of the
 * file's header: tmap_finetune_check_layers, then ft_check_memory with
 * windows of n_ctx tokens, for copies trained at once on this host. */
enum tmap_status ft_check_training(const char *model_path, const char *spec, int32_t n_ctx, int32_t n_gpu_layers,
                                   int copies, struct tmap_error *err);

/* Whether the model file holds the tensor `name` as F32 (false when it
 * cannot be read or has no such tensor). */
bool ft_tensor_is_f32(const char *model_path, const char *name);

/* ---- checkpoint.c ------------------------------------------------------- */

/* What llama.cpp's saver drops or changes and a saved model must keep. */
struct ft_model_meta {
    uint32_t    n_ctx_train;   /* llama_opt_init overwrites it with the window */
    const char *chat_template; /* the saver does not write it; NULL = none */
    int32_t     epochs;        /* recorded as tmap.finetune.epochs */
    /* The training record (tmap.train.*, read back into tmap_model_info):
     * file names, not paths, so the bytes do not depend on where the data
     * lives. eval_desc NULL: no eval data. */
    const char *data_desc;
    const char *eval_desc;
    double      eval_response_loss, eval_response_bpb;
};

/* Fails early, naming path, when path cannot be created. */
enum tmap_status ft_probe_writable(const char *path, struct tmap_error *err);

/* Writes the model to path (atomically: beside it, then renamed). */
enum tmap_status ft_save_model(struct llama_model *model, const char *path,
                               const struct ft_model_meta *meta, struct tmap_error *err);

/* Sets each of the n tensors (F32, as llama.cpp trains) back to the data
 * the GGUF file at path holds for it. */
enum tmap_status ft_restore_tensors(const char *path, const struct ggml_tensor *const *tensors, size_t n,
                                    struct tmap_error *err);

/* STEM.ckpt-epochN.gguf and STEM.ckpt.json for an OUT path. */
void ft_checkpoint_path(const char *out_path, int32_t epoch, char *buf, size_t size);
void ft_sidecar_path(const char *out_path, char *buf, size_t size);

/* What the sidecar records: enough to resume, and to refuse a resume whose
 * data or split would differ. */
struct ft_state {
    int32_t  epoch;              /* epochs done */
    int64_t  step;               /* optimiser steps done */
    char     checkpoint[4200];   /* the checkpoint GGUF of that epoch */
    char     base_model[4096];   /* realpath of the model training began from */
    char     data_fingerprint[33];
    size_t   n_records;
    uint64_t seed;
    float    val_split;
    int32_t  n_ctx;
    float    lr;
    int32_t  n_epochs;
    char     train_layers[256];
    enum tmap_template tmpl;     /* the records' layout; a sidecar without one: plain */
    struct tmap_finetune_epoch *history; /* one per epoch done, malloc'd */
    size_t   n_history;
};

enum tmap_status ft_state_write(const char *path, const struct ft_state *s, struct tmap_error *err);
enum tmap_status ft_state_read(const char *path, struct ft_state *s, struct tmap_error *err);
void ft_state_free(struct ft_state *s);

#endif
