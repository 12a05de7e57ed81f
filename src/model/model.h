/*
 * model.h - what the model modules share inside the library.
 *
 * struct tmap_model wraps one llama_model and one llama_context. The context
 * holds n_seq sequences of n_ctx cells each (a non-unified KV cache: scored
 * samples share no prefix, so each sequence attends to its own cells only).
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
};

/* Decodes a batch, counting calls and tokens; names the model on failure. */
enum tmap_status tmap_model_decode(struct tmap_model *m, struct llama_batch batch,
                                   struct tmap_error *err);

/* The last error line llama.cpp logged, or "" (added to our messages). */
const char *tmap_llama_last_error(void);

#endif
