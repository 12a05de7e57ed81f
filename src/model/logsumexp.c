/*
 * logsumexp.c - see logsumexp.h. Built with -O3 so the loops vectorise.
 *
 * exp(x) for x <= 0: write x = n ln2 + r with n the nearest integer to
 * x / ln2 (found with the 1.5 * 2^23 trick, which vectorises on plain SSE2
 * where floorf does not), so |r| <= ln2/2,
 * so exp(x) = 2^n exp(r); exp(r) is a degree-6 Taylor polynomial (error
 * below 2e-8 relative on that interval) and 2^n goes straight into the
 * float's exponent bits. Inputs below -87 (whose exp is below FLT_MIN and
 * cannot move a sum whose largest term is 1) are clamped there.
 */
#include "model/logsumexp.h"

#include <math.h>
#include <string.h>

static inline float exp_nonpositive(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;       /* ln2 split in two so that */
    const float ln2_lo = 1.428606765330187045e-6f; /* n * ln2_hi is exact      */
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.0f ? -87.0f : x;
    float n = (x * log2e + round_magic) - round_magic;
    float r = x - n * ln2_hi - n * ln2_lo;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* One build runs everywhere, yet uses the widest vectors the CPU has. */
__attribute__((target_clones("avx512f", "avx2", "default")))
double tmap_log_sum_exp(const float *logits, int32_t n)
{
    float max = logits[0];
    for (int32_t v = 1; v < n; v++)
        max = logits[v] > max ? logits[v] : max;
    /* Sixteen partial sums: one AVX-512 register (two AVX2 ones), and a
     * rounding error that stays small over 150k terms. */
    float part[16] = { 0 };
    int32_t v = 0;
    for (; v + 16 <= n; v += 16)
        for (int k = 0; k < 16; k++)
            part[k] += exp_nonpositive(logits[v + k] - max);
    double sum = 0.0;
    for (; v < n; v++)
        sum += exp_nonpositive(logits[v] - max);
    for (int k = 0; k < 16; k++)
        sum += part[k];
    return (double)max + log(sum);
}
