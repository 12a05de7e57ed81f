/*
 * logsumexp.c - see logsumexp.h. Built with -O3 in the hope that the
 * portable loop vectorises; GCC 12 keeps it scalar (215 us per 32,000-logit
 * row, measured), hence the AVX2 version.
 *
 * After subtracting the maximum every term is exp(t) with t <= 0, which
 * is computed as 2^y with y = t log2(e): split y into its nearest integer
 * k and a fraction f in [-1/2, 1/2], so 2^y = 2^k 2^f. 2^f is a degree-5
 * polynomial: the one through the six Chebyshev nodes of [-1/2, 1/2]
 * (solved once with GSL's LU), whose worst relative error evaluated in
 * float is 2.2e-7 - a tenth of a Taylor polynomial's of the same degree.
 * 2^k goes into the float's exponent. y is clamped at -126: 2^-126 is the
 * smallest normal float, and such a term cannot move a sum whose largest
 * term is 1, while going lower would make denormals, which are slow.
 *
 * Three versions: AVX-512 intrinsics (vscalefps applies 2^k in one
 * instruction, vrndscaleps rounds, masks take the tail) and AVX2 + FMA
 * intrinsics, both reading the row from memory once, and a plain two-pass
 * loop for every other CPU.
 * Why it matters: on a small model the vocabulary projection is most of
 * the forward pass, and this is a second look at its whole output, which
 * raw decoding never reads. bench/score measures what is left.
 */
#include "model/logsumexp.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* 2^f on [-1/2, 1/2]: c0 + c1 f + ... + c5 f^5. */
#define EXP2_C0 1.000000075e+00f
#define EXP2_C1 6.931471880e-01f
#define EXP2_C2 2.402210749e-01f
#define EXP2_C3 5.550357114e-02f
#define EXP2_C4 9.676031918e-03f
#define EXP2_C5 1.339086336e-03f
#define LOG2E 1.44269504088896341f
#define Y_FLOOR (-126.0f)
#define BLOCK 1024 /* terms summed in float before going into a double; a multiple of 32 */

#ifdef HAVE_X86
/* The one-pass walk of the vector versions (see tmap_log_sum_exp_avx512's
 * comment): block_max gives a block's maximum (and sets *nan on a NaN
 * when the sums would not carry it), block_sum its terms' sum against the
 * maximum so far. */
typedef float (*block_max_fn)(const float *x, int32_t from, int32_t to, bool *nan);
typedef double (*block_sum_fn)(const float *x, int32_t from, int32_t to, float max);

static double one_pass(const float *logits, int32_t n, block_max_fn block_max_of, block_sum_fn block_sum)
{
    float max = -INFINITY;
    double sum = 0.0;
    bool nan = false;
    for (int32_t v = 0; v < n; v += BLOCK) {
        int32_t end = v + BLOCK <= n ? v + BLOCK : n;
        float block_max = block_max_of(logits, v, end, &nan);
        if (nan)
            return NAN; /* a broken model: say so rather than skip the term */
        if (block_max > max) {
            if (isinf(block_max))
                return block_max; /* an overflowed logit */
            sum *= exp((double)max - (double)block_max);
            max = block_max;
        }
        if (max > -INFINITY)
            sum += block_sum(logits, v, end, max);
    }
    return max > -INFINITY ? (double)max + log(sum) : max;
}
#endif

static inline float exp2_nonpositive(float y)
{
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    y = y >= Y_FLOOR ? y : Y_FLOOR; /* NaN too: the caller has checked for it */
    float k = (y + round_magic) - round_magic; /* vectorises where rintf may not */
    float f = y - k;
    float p = EXP2_C0 + f * (EXP2_C1 + f * (EXP2_C2 + f * (EXP2_C3 + f * (EXP2_C4 + f * EXP2_C5))));
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* One build runs everywhere, yet uses the widest vectors the CPU has. */
__attribute__((target_clones("avx2", "default")))
double tmap_log_sum_exp_portable(const float *logits, int32_t n)
{
    if (n <= 0)
        return -INFINITY;
    float max = logits[0];
    bool nan = false;
    for (int32_t v = 0; v < n; v++) {
        max = logits[v] > max ? logits[v] : max;
        nan |= logits[v] != logits[v];
    }
    if (nan)
        return NAN; /* a broken model: say so rather than skip the term */
    if (!isfinite(max))
        return max; /* all -inf, or an overflowed logit: nothing to sum */
    /* Sixteen partial sums (two AVX2 registers) per block of BLOCK terms,
     * then into a double: float sums of 150k terms near 1 would lose 1e-5. */
    double sum = 0.0;
    int32_t v = 0;
    for (; v + 16 <= n;) {
        float part[16] = { 0 };
        int32_t end = v + BLOCK <= n ? v + BLOCK : n - (n - v) % 16;
        for (; v < end; v += 16)
            for (int k = 0; k < 16; k++)
                part[k] += exp2_nonpositive((logits[v + k] - max) * LOG2E);
        for (int k = 0; k < 16; k++)
            sum += part[k];
    }
    for (; v < n; v++)
        sum += exp2_nonpositive((logits[v] - max) * LOG2E);
    return (double)max + log(sum);
}

#ifdef HAVE_X86
/* 2^y for y <= 0, lanewise. NaN stays NaN (vmaxps returns its second
 * operand when either is NaN), so a NaN logit makes the sum NaN. */
__attribute__((target("avx512f")))
static inline __m512 exp2_avx512(__m512 y)
{
    y = _mm512_max_ps(_mm512_set1_ps(Y_FLOOR), y);
    __m512 k = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(y, k);
    __m512 p = _mm512_set1_ps(EXP2_C5);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP2_C0));
    return _mm512_scalef_ps(p, k);
}

static inline __mmask16 first_lanes(int32_t count)
{
    return (__mmask16)(count >= 16 ? 0xffff : (1u << count) - 1);
}

/* Largest of x[from, to), to > from. Four chains, so each max does not
 * wait for the one before. */
__attribute__((target("avx512f")))
static float max_avx512(const float *x, int32_t from, int32_t to, bool *nan)
{
    (void)nan; /* a NaN logit reaches the sum instead: exp2_avx512 keeps it */
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    int32_t v = from;
    for (; v + 64 <= to; v += 64) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + v));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + v + 16));
        m2 = _mm512_max_ps(m2, _mm512_loadu_ps(x + v + 32));
        m3 = _mm512_max_ps(m3, _mm512_loadu_ps(x + v + 48));
    }
    for (; v < to; v += 16)
        m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(m0, first_lanes(to - v), x + v));
    return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
}

/* Sum of exp(x - max) over x[from, to), at most BLOCK terms, in float
 * then double. */
__attribute__((target("avx512f")))
static double block_sum_avx512(const float *x, int32_t from, int32_t to, float max)
{
    const __m512 log2e = _mm512_set1_ps(LOG2E), vmax = _mm512_set1_ps(max);
    /* Two accumulators, so the adds do not wait on each other. */
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int32_t v = from;
    for (; v + 32 <= to; v += 32) {
        /* Ask for the next block now, so it streams in while this one is
         * summed (prefetches past the row's end are harmless). */
        _mm_prefetch((const char *)(x + v + BLOCK), _MM_HINT_T0);
        _mm_prefetch((const char *)(x + v + BLOCK + 16), _MM_HINT_T0);
        __m512 y0 = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + v), vmax), log2e);
        __m512 y1 = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + v + 16), vmax), log2e);
        s0 = _mm512_add_ps(s0, exp2_avx512(y0));
        s1 = _mm512_add_ps(s1, exp2_avx512(y1));
    }
    for (; v < to; v += 16) {
        __mmask16 lanes = first_lanes(to - v);
        __m512 y = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + v), vmax), log2e);
        s0 = _mm512_mask_add_ps(s0, lanes, s0, exp2_avx512(y));
    }
    float lanes_sum[16];
    _mm512_storeu_ps(lanes_sum, _mm512_add_ps(s0, s1));
    double sum = 0.0;
    for (int k = 0; k < 16; k++)
        sum += lanes_sum[k];
    return sum;
}

/*
 * One pass over memory instead of two. The portable version reads the
 * whole row for its maximum, then again for the sum; the rows of a decode
 * batch (up to 2048 x 128 KiB of logits) are far out of cache, so that
 * first read cost as much as all the arithmetic. Here each block of BLOCK
 * logits (4 KiB) is read for its maximum and summed while it is still in
 * L1, and the next block is prefetched meanwhile. The sum so far is kept
 * relative to the largest logit so far; when a block raises it, the sum is
 * scaled down to match (a few times per row: each block's maximum must
 * beat all before it). Measured on one core, 32k-logit rows: two passes
 * 6.4 us per cold row (3.1 warm), blocks without the prefetch 7.0-7.5,
 * with it 3.7-4.6 (3.1 warm). In `tmap score` both threads together then
 * read about 40 GB/s: the memory's speed, not the arithmetic, is the limit.
 */
__attribute__((target("avx512f")))
double tmap_log_sum_exp_avx512(const float *logits, int32_t n)
{
    return one_pass(logits, n, max_avx512, block_sum_avx512);
}
#endif

#ifdef HAVE_X86
/* The AVX2 + FMA version of the one-pass blocks above, for the CPUs
 * without AVX-512 (most desktops, many cloud machines). AVX2 has no
 * vscalefps and no lane masks, so 2^k goes into the exponent bits by
 * integer arithmetic (k >= -126 after the clamp, so k + 127 >= 1: a
 * normal float), and the tail of a row is summed lane by lane. vmaxps
 * does not carry a NaN through (it returns its second operand), so NaN
 * logits are looked for apart, with an unordered compare in the max pass.
 * Measured on this 2-core AVX2 machine (bench_logprob's rows, 32k
 * vocabulary): docs/scoring.md. */
__attribute__((target("avx2,fma")))
static inline __m256 exp2_avx2(__m256 y)
{
    y = _mm256_max_ps(_mm256_set1_ps(Y_FLOOR), y); /* NaN stays NaN: the second operand */
    __m256 k = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(y, k);
    __m256 p = _mm256_set1_ps(EXP2_C5);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP2_C0));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

/* Largest of x[from, to), to > from; *nan set when any is NaN. */
__attribute__((target("avx2,fma")))
static float max_avx2(const float *x, int32_t from, int32_t to, bool *nan)
{
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0, bad = _mm256_setzero_ps();
    int32_t v = from;
    for (; v + 32 <= to; v += 32) {
        __m256 a = _mm256_loadu_ps(x + v), b = _mm256_loadu_ps(x + v + 8), c = _mm256_loadu_ps(x + v + 16),
               d = _mm256_loadu_ps(x + v + 24);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q), _mm256_cmp_ps(c, d, _CMP_UNORD_Q)));
        m0 = _mm256_max_ps(m0, a);
        m1 = _mm256_max_ps(m1, b);
        m2 = _mm256_max_ps(m2, c);
        m3 = _mm256_max_ps(m3, d);
    }
    float lanes[8], max = -INFINITY;
    _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
    *nan |= _mm256_movemask_ps(bad) != 0;
    for (int k = 0; k < 8; k++)
        max = lanes[k] > max ? lanes[k] : max;
    for (; v < to; v++) {
        max = x[v] > max ? x[v] : max;
        *nan |= x[v] != x[v];
    }
    return max;
}

/* Sum of exp(x - max) over x[from, to), at most BLOCK terms, in float
 * then double. */
__attribute__((target("avx2,fma")))
static double block_sum_avx2(const float *x, int32_t from, int32_t to, float max)
{
    const __m256 log2e = _mm256_set1_ps(LOG2E), vmax = _mm256_set1_ps(max);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int32_t v = from;
    for (; v + 16 <= to; v += 16) {
        _mm_prefetch((const char *)(x + v + BLOCK), _MM_HINT_T0);
        __m256 y0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + v), vmax), log2e);
        __m256 y1 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + v + 8), vmax), log2e);
        s0 = _mm256_add_ps(s0, exp2_avx2(y0));
        s1 = _mm256_add_ps(s1, exp2_avx2(y1));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(s0, s1));
    double sum = 0.0;
    for (int k = 0; k < 8; k++)
        sum += lanes[k];
    for (; v < to; v++)
        sum += exp2_nonpositive((x[v] - max) * LOG2E);
    return sum;
}

__attribute__((target("avx2,fma")))
double tmap_log_sum_exp_avx2(const float *logits, int32_t n)
{
    return one_pass(logits, n, max_avx2, block_sum_avx2);
}
#endif

double tmap_log_sum_exp(const float *logits, int32_t n)
{
#ifdef HAVE_X86
    if (__builtin_cpu_supports("avx512f"))
        return tmap_log_sum_exp_avx512(logits, n);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return tmap_log_sum_exp_avx2(logits, n);
#endif
    return tmap_log_sum_exp_portable(logits, n);
}
