/*
 * fewshot.h - the one layout of a few-shot prompt, shared by everything that
 * prompts a model with demonstrations: the ICL proxy (src/proxy/proxy.c) and
 * eval (src/eval/eval.c). tmap.h promises that eval reads prompts exactly
 * as the proxy does, because the proxy's claim is that it predicts eval;
 * one function makes that true by construction, and test_eval checks it
 * with both templates and multi-turn records.
 */
#ifndef TMAP_TASK_FEWSHOT_H
#define TMAP_TASK_FEWSHOT_H

#include "tmap.h"

#include <stddef.h>
#include <stdint.h>

/* Where a generated answer ends: the model starting the next block. */
extern const char *const tmap_fewshot_stops[];
extern const size_t      tmap_fewshot_n_stops;

/* The prompt text for query after k demonstrations.
 * Plain: each demonstration as "Query: PROMPT\nAnswer: RESPONSE\n\n", then
 * the query as tmap_model_format_prompt's plain template lays it out.
 * Chat: each demonstration's own turns (system and earlier turns of a
 * multi-turn record included) with its response as the assistant's turn,
 * then the query's turns, through the model's chat template; a model with no
 * template gets the plain layout. *out is malloc'd. */
enum tmap_status tmap_fewshot_layout(struct tmap_model *model, enum tmap_template tmpl,
                                     const struct tmap_sample *demos, size_t k, const struct tmap_sample *query,
                                     char **out, struct tmap_error *err);

/* The length of the longest common prefix of token lists a and b. */
int32_t tmap_tokens_common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb);

/* The number of leading tokens every one of the count token lists shares,
 * leaving each at least one token of its own (the first scored or generated
 * token is predicted from the last prompt token, which must be decoded with
 * the sequence's own logits). 0 when count < 2. */
int32_t tmap_fewshot_common_prefix(int32_t *const *tokens, const int32_t *n, size_t count);

#endif
