/*
 * logsumexp.h - log(sum_v exp(logits[v])) over a whole vocabulary, fast.
 *
 * Teacher-forced scoring needs this once per scored token, over 32k-150k
 * logits: with libm's exp() it cost as much as the forward pass of a small
 * model (perf: 26% of `tmap score` on the 64-wide test model). The version
 * here vectorises (no calls in the loop) and is accurate to about 1e-7
 * relative per term.
 */
#ifndef TMAP_MODEL_LOGSUMEXP_H
#define TMAP_MODEL_LOGSUMEXP_H

#include <stdint.h>

double tmap_log_sum_exp(const float *logits, int32_t n);

#endif
