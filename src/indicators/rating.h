/*
 * rating.h - Deita-style rating indicators (`quality`, `complexity`): ask an
 * instruct model for a 1..6 rating and read the expected value from the
 * next-token distribution restricted to the tokens "1".."6".
 */
#ifndef TMAP_INDICATORS_RATING_H
#define TMAP_INDICATORS_RATING_H

#include "tmap.h"

enum { TMAP_RATING_LEVELS = 6 };

/* The judge-specific part of every rating prompt: which tokens spell the
 * ratings, and whether the judge's chat template is used. */
struct tmap_rater {
    struct tmap_model *judge;
    bool     chat;                        /* false: plain template (no chat template) */
    int32_t  tokens[TMAP_RATING_LEVELS];  /* the token of rating k+1 */
    int32_t  n_drop;                      /* prompt tokens to drop before reading them */
};

enum tmap_status tmap_rater_init(struct tmap_rater *r, struct tmap_model *judge, struct tmap_error *err);

/* The tokens of the prompt rating a sample's response (quality) or its
 * instruction alone (complexity); *tokens is malloc'd. */
enum tmap_status tmap_rater_prompt(const struct tmap_rater *r, const struct tmap_sample *s,
                                   enum tmap_indicator what, int32_t **tokens, int32_t *n_tokens,
                                   struct tmap_error *err);

/* sum_k k * p_k with p the softmax over the rating tokens' log-probabilities. */
double tmap_rater_expected(const double logprobs[TMAP_RATING_LEVELS]);

#endif
