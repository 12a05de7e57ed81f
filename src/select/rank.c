/*
 * rank.c - percentile ranks, the combined score and top-r% selection
 * (docs/design.md section 3).
 *
 * Ranking sorts each column once. A comparison sort of 1M doubles costs
 * about 100 ms, and ten columns would eat the whole 1 s budget for a 1M x 10
 * selection, so the sort is an LSD radix sort on the doubles' bit patterns
 * mapped to order-preserving unsigned keys: 11 bits a pass, and passes in
 * which every key has the same digit (the exponent bits of values in a narrow
 * range, typically) are skipped.
 *
 * Selection must give the same subset for the same inputs, so rows are
 * ordered by a strict total order: s descending, then tiebreak ascending,
 * then row index ascending. With no two rows equal under that order the
 * top-k set is unique, whatever pivots quickselect draws.
 */
#include "select/rank.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: hashing cannot fail */
#include <xxhash.h>

#include "util/error.h"

/* ---- percentile ranks --------------------------------------------------- */

#define RADIX_BITS   11
#define RADIX_SIZE   (1u << RADIX_BITS)
#define RADIX_PASSES 6 /* ceil(64 / 11) */

struct keyed {
    uint64_t key;
    size_t   row;
};

/* Unsigned keys in the order of the doubles: flip every bit of a negative
 * number (larger magnitude = smaller), set the sign bit of a positive one.
 * -0.0 is folded into +0.0 first so that the two zeros tie, as they compare. */
static uint64_t order_key(double v)
{
    if (v == 0.0)
        v = 0.0;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits >> 63) ? ~bits : bits | ((uint64_t)1 << 63);
}

/* LSD radix sort of a[0..n) by key, stable, using tmp as the other buffer.
 * Returns the buffer that holds the sorted result. */
static struct keyed *radix_sort(struct keyed *a, struct keyed *tmp, size_t n)
{
    static const unsigned mask = RADIX_SIZE - 1;
    size_t (*count)[RADIX_SIZE] = calloc(RADIX_PASSES, sizeof *count);
    if (!count)
        return NULL;
    for (size_t i = 0; i < n; i++)
        for (unsigned p = 0; p < RADIX_PASSES; p++)
            count[p][(a[i].key >> (p * RADIX_BITS)) & mask]++;
    for (unsigned p = 0; p < RADIX_PASSES; p++) {
        unsigned shift = p * RADIX_BITS;
        if (count[p][(a[0].key >> shift) & mask] == n)
            continue; /* one digit for every key: this pass would not move anything */
        size_t next = 0;
        for (unsigned b = 0; b < RADIX_SIZE; b++) {
            size_t c = count[p][b];
            count[p][b] = next;
            next += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[p][(a[i].key >> shift) & mask]++] = a[i];
        struct keyed *swap = a;
        a = tmp;
        tmp = swap;
    }
    free(count);
    return a;
}

/* Writes the ranks of the sorted valid entries: a run of equal keys at
 * sorted positions [lo, hi) shares the mean 0-based position (lo + hi - 1)/2,
 * which divided by n_valid - 1 is the percentile rank. */
static void write_ranks(const struct keyed *sorted, size_t n_valid, bool higher_is_better,
                        double *u)
{
    double scale = 1.0 / (double)(n_valid - 1);
    for (size_t lo = 0, hi; lo < n_valid; lo = hi) {
        for (hi = lo + 1; hi < n_valid && sorted[hi].key == sorted[lo].key; hi++)
            ;
        double rank = 0.5 * (double)(lo + hi - 1) * scale;
        if (!higher_is_better)
            rank = 1.0 - rank;
        for (size_t i = lo; i < hi; i++)
            u[sorted[i].row] = rank;
    }
}

enum tmap_status tmap_percentile_ranks(const double *x, size_t n, bool higher_is_better, double *u,
                                       struct tmap_error *err)
{
    size_t n_valid = 0;
    for (size_t i = 0; i < n; i++) {
        u[i] = 0.5; /* NaN stays neutral; valid entries are overwritten below */
        n_valid += !isnan(x[i]);
    }
    if (n_valid <= 1)
        return TMAP_OK;
    struct keyed *a = malloc(2 * n_valid * sizeof *a);
    if (!a)
        return tmap_fail(err, TMAP_ERR_NOMEM, "ranking %zu values: out of memory", n);
    for (size_t i = 0, j = 0; i < n; i++)
        if (!isnan(x[i]))
            a[j++] = (struct keyed){ order_key(x[i]), i };
    struct keyed *sorted = radix_sort(a, a + n_valid, n_valid);
    if (sorted)
        write_ranks(sorted, n_valid, higher_is_better, u);
    free(a);
    if (!sorted)
        return tmap_fail(err, TMAP_ERR_NOMEM, "ranking %zu values: out of memory", n);
    return TMAP_OK;
}

/* ---- combination -------------------------------------------------------- */

/* Rows in blocks that stay in L1 while every column is added in, so s is
 * written once instead of d times; columns are still summed in order j =
 * 0..d-1, so the result does not depend on the block size. */
#define COMBINE_BLOCK 2048

void tmap_combine(const double *u, size_t n, size_t d, const double *w, double *s)
{
    for (size_t lo = 0; lo < n; lo += COMBINE_BLOCK) {
        size_t hi = n - lo < COMBINE_BLOCK ? n : lo + COMBINE_BLOCK;
        for (size_t i = lo; i < hi; i++)
            s[i] = 0.0;
        for (size_t j = 0; j < d; j++) {
            const double *col = u + j * n;
            double wj = w[j];
            for (size_t i = lo; i < hi; i++)
                s[i] += wj * col[i];
        }
    }
}

/* ---- selection ---------------------------------------------------------- */

struct order {
    const double   *s;
    const uint32_t *tiebreak;
};

/* True when row a comes before row b: higher s, then lower tiebreak, then
 * lower index. NaN ranks after every number (a weight vector with a NaN in it
 * must still give a well-defined subset). */
static bool precedes(const struct order *o, size_t a, size_t b)
{
    double sa = o->s[a], sb = o->s[b];
    if (sa > sb)
        return true;
    if (sa < sb)
        return false;
    bool na = isnan(sa), nb = isnan(sb);
    if (na != nb)
        return nb;
    if (o->tiebreak && o->tiebreak[a] != o->tiebreak[b])
        return o->tiebreak[a] < o->tiebreak[b];
    return a < b;
}

size_t tmap_select_count(double ratio, size_t n)
{
    if (!(ratio > 0.0) || n == 0)
        return 0;
    if (ratio >= 1.0)
        return n;
    double k = ratio * (double)n;
    double nearest = nearbyint(k);
    double tolerance = fmax(1e-9, 4.0 * DBL_EPSILON * k);
    double count = fabs(k - nearest) <= tolerance ? nearest : ceil(k);
    return count >= (double)n ? n : (size_t)count;
}

/* splitmix64: a tiny generator for quickselect's pivots. Its seed is fixed,
 * but the pivots never change the result (see the top of this file); random
 * pivots only keep sorted or adversarial inputs from going quadratic. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void swap_rows(size_t *a, size_t *b)
{
    size_t t = *a;
    *a = *b;
    *b = t;
}

/* Lomuto partition of rows[lo..hi) around a random pivot; returns the
 * pivot's final place: rows before it precede it, rows after it do not. */
static size_t partition(size_t *rows, size_t lo, size_t hi, const struct order *o, uint64_t *rng)
{
    swap_rows(&rows[lo + splitmix64(rng) % (hi - lo)], &rows[hi - 1]);
    size_t pivot = rows[hi - 1], store = lo;
    for (size_t i = lo; i + 1 < hi; i++)
        if (precedes(o, rows[i], pivot))
            swap_rows(&rows[i], &rows[store++]);
    swap_rows(&rows[store], &rows[hi - 1]);
    return store;
}

/* Rearranges rows[0..n) so that rows[0..k) are the k rows that come first. */
static void quickselect(size_t *rows, size_t n, size_t k, const struct order *o)
{
    uint64_t rng = 0x746d61702d73656cu;
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t p = partition(rows, lo, hi, o, &rng);
        if (p + 1 == k || p == k)
            return;
        if (p < k)
            lo = p + 1;
        else
            hi = p;
    }
}

#define MARK ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* Sorts the first k entries of the permutation rows[0..n) ascending in O(n)
 * without workspace: mark entry r for every chosen row r (the top bit is free,
 * as rows < n), then sweep r upwards writing each marked r to the front. The
 * write position never passes the sweep, so no unread mark is overwritten. */
static void sort_chosen(size_t *rows, size_t n, size_t k)
{
    for (size_t j = 0; j < k; j++)
        rows[rows[j] & ~MARK] |= MARK;
    size_t count = 0;
    for (size_t r = 0; r < n; r++)
        if (rows[r] & MARK)
            rows[count++] = r;
}

size_t tmap_select_top(const double *s, const uint32_t *tiebreak, size_t n, double ratio,
                       size_t *out)
{
    size_t k = tmap_select_count(ratio, n);
    if (k == 0)
        return 0;
    struct order o = { s, tiebreak };
    for (size_t i = 0; i < n; i++)
        out[i] = i;
    if (k < n)
        quickselect(out, n, k, &o);
    sort_chosen(out, n, k);
    return k;
}

/* ---- diversity filter --------------------------------------------------- */

/* A binary heap over rows[0..size) with the first row in the order at the
 * root, so the walk pops rows best-first and only pays for the rows it
 * reaches (O(n) to build, O(log n) a pop). */
static void sift_down(size_t *rows, size_t size, size_t i, const struct order *o)
{
    for (;;) {
        size_t best = i, l = 2 * i + 1, r = l + 1;
        if (l < size && precedes(o, rows[l], rows[best]))
            best = l;
        if (r < size && precedes(o, rows[r], rows[best]))
            best = r;
        if (best == i)
            return;
        swap_rows(&rows[i], &rows[best]);
        i = best;
    }
}

static double dot(const float *a, const float *b, int32_t dim)
{
    double sum = 0.0;
    for (int32_t k = 0; k < dim; k++)
        sum += (double)a[k] * (double)b[k];
    return sum;
}

/* True when row is within threshold of none of the kept rows. */
static bool is_novel(const float *emb, int32_t dim, size_t row, const size_t *kept, size_t n_kept,
                     double threshold)
{
    const float *e = emb + row * (size_t)dim;
    for (size_t j = 0; j < n_kept; j++)
        if (dot(e, emb + kept[j] * (size_t)dim, dim) > threshold)
            return false;
    return true;
}

static int compare_rows(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

size_t tmap_select_diverse(const double *s, const uint32_t *tiebreak, size_t n, const float *emb,
                           int32_t dim, double threshold, size_t want, size_t *out)
{
    struct order o = { s, tiebreak };
    for (size_t i = 0; i < n; i++)
        out[i] = i;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(out, n, i, &o);
    /* Each pop frees the heap's last slot; kept rows fill the freed slots
     * from the end down (kept <= pops, so they never reach the heap). */
    size_t size = n, n_kept = 0;
    while (size > 0 && n_kept < want) {
        size_t row = out[0];
        out[0] = out[--size];
        sift_down(out, size, 0, &o);
        if (is_novel(emb, dim, row, out + n - n_kept, n_kept, threshold))
            out[n - ++n_kept] = row;
    }
    memmove(out, out + n - n_kept, n_kept * sizeof *out);
    qsort(out, n_kept, sizeof *out, compare_rows);
    return n_kept;
}

/* ---- subset hash -------------------------------------------------------- */

uint64_t tmap_subset_hash(const size_t *rows, size_t n)
{
    unsigned char buf[8 * 256];
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_64bits_reset(&state);
    for (size_t i = 0; i < n;) {
        size_t used = 0;
        for (; i < n && used < sizeof buf; i++, used += 8) {
            uint64_t v = (uint64_t)rows[i];
            for (int b = 0; b < 8; b++)
                buf[used + (size_t)b] = (unsigned char)(v >> (8 * b));
        }
        XXH3_64bits_update(&state, buf, used);
    }
    return XXH3_64bits_digest(&state);
}
