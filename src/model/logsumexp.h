/*
 * logsumexp.h - log(sum_v exp(logits[v])) over a whole vocabulary, fast.
 *
 * Teacher-forced scoring needs this once per scored token, over 32k-150k
 * logits: with libm's exp() it cost as much as the forward pass of a small
 * model (perf: 26% of `tmap score` on the 64-wide test model). The versions
 * here vectorise (no calls in the loop) and are accurate to about 2e-7
 * relative per term.
 */
#ifndef TMAP_MODEL_LOGSUMEXP_H
#define TMAP_MODEL_LOGSUMEXP_H

#include <stdint.h>

/* log(sum exp(logits[0..n-1])); -inf when n <= 0. Picks the version for
 * this CPU at each call (a cached feature bit, no cost to speak of). */
double tmap_log_sum_exp(const float *logits, int32_t n);

/* The versions it picks from, visible so the tests can check each one
 * against a double-precision reference. The AVX-512 one exists only on
 * x86 and must only be called where the CPU has AVX-512F; the same for
 * the AVX2 one and AVX2 + FMA. */
double tmap_log_sum_exp_portable(const float *logits, int32_t n);
#if defined(__x86_64__) || defined(__i386__)
double tmap_log_sum_exp_avx512(const float *logits, int32_t n);
double tmap_log_sum_exp_avx2(const float *logits, int32_t n); /* AVX2 and FMA */
#endif

#endif
