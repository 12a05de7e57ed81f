/*
 * neighbors.c - exact k-nearest-neighbour statistics by tiled sgemm.
 *
 * For each tile of up to TILE_ROWS query rows and TILE_COLS candidate rows,
 * cblas_sgemm writes the tile's similarities (rows . cols^T), and each query
 * row offers its part of the tile to a heap of its k best candidates so far.
 * A worker holds one tile plus k candidates per row of its tile, whatever n
 * is; the tile's row count shrinks when k is large so the heaps stay within
 * HEAP_BUDGET. Every pair is compared, so the neighbours are exact (two
 * candidates whose cosines differ by less than float rounding, ~1e-6, may be
 * ranked either way, which moves a mean by at most that much). When k covers
 * every candidate, the mean is one dot product with their sum instead.
 *
 * Cost: n^2 * dim multiply-adds in sgemm, plus n^2 heap offers that mostly
 * end in one comparison with the heap's worst (k well below n; with k near
 * n most offers go into the heap and cost log k). Measured with k = 10 on a
 * 2-core AMD EPYC shared with other jobs (OpenBLAS 0.3.21, Haswell kernel):
 *   n =  20,000, dim 64:  0.76 s  (sgemm 0.44 s of it), 18 MiB peak RSS
 *   n = 100,000, dim 64:  17.6 s  (sgemm 14.4 s of it)
 * That is 23x for 25x the pairs: time grows as n^2 * dim while memory stays
 * at the rows plus a few MiB per worker. Beyond ~100k rows it is minutes
 * (about 7 min for 500k rows of dim 64 on this machine, and the sgemm part
 * grows with dim); so past score params' ann_min_rows, diversity comes from
 * the approximate index of ann.cpp when tmap has FAISS.
 *
 * Determinism: OpenBLAS's sgemm rounds differently with another thread count
 * (measured: 1 vs 2 threads on a 256 x 4096 x 64 tile changed 7% of the
 * results, by up to 1.2e-6) and with a row's place in the tile, which could
 * swap two near-tied neighbours across the k-th place. So for the duration of
 * a call OpenBLAS runs single-threaded and tmap runs its own workers instead
 * (as many as OpenBLAS had threads: OPENBLAS_NUM_THREADS or the core count),
 * each taking whole row tiles whose shape depends only on the input. A row's
 * similarities are then the same bits for any worker count, exact ties go to
 * the lower index, and the value is recomputed in double from the chosen
 * rows and summed in index order. Another machine may pick another OpenBLAS
 * kernel and differ where neighbours are within ~1e-6 of each other. The
 * thread setting is process-wide: do not run these functions beside other
 * OpenBLAS work, or from two threads at once.
 */
#include "indicators/neighbors.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define TILE_ROWS   256
#define TILE_COLS   4096
#define HEAP_BUDGET ((size_t)1 << 18) /* candidates in one worker's heaps (4 MiB) */

struct candidate {
    float  sim;
    size_t index;
};

/* One search: for every row of `rows`, the k best of `cols`. */
struct search {
    const float *rows, *cols;
    size_t       n_rows, n_cols;
    int32_t      dim;
    size_t       k;
    bool         exclude_self; /* rows and cols are one matrix: skip i == j */
    bool         distance;     /* report 1 - cos (diversity), else cos */
    size_t      *neighbours;   /* optional: each row's k chosen columns, by index */
};

/* A row's k best so far, as a heap with the worst at the root. */
struct heap {
    struct candidate *items;
    size_t            size;
};

/* Higher similarity wins; on a tie the lower index does, so the choice does
 * not depend on the order candidates arrive in. */
static bool better(struct candidate a, struct candidate b)
{
    return a.sim > b.sim || (a.sim == b.sim && a.index < b.index);
}

static void sift_up(struct candidate *h, size_t i)
{
    while (i > 0 && better(h[(i - 1) / 2], h[i])) {
        struct candidate t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void sift_down(struct candidate *h, size_t size)
{
    for (size_t i = 0;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < size && better(h[worst], h[l]))
            worst = l;
        if (r < size && better(h[worst], h[r]))
            worst = r;
        if (worst == i)
            return;
        struct candidate t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

static void heap_offer(struct heap *h, size_t k, struct candidate c)
{
    if (h->size < k) {
        h->items[h->size] = c;
        sift_up(h->items, h->size++);
    } else if (better(c, h->items[0])) {
        h->items[0] = c;
        sift_down(h->items, k);
    }
}

/* Offers one tile row (candidates j0 .. j0 + n - 1) to a row's heap. */
static void scan_row(const float *sims, size_t j0, size_t n, size_t self, struct heap *h,
                     size_t k)
{
    for (size_t c = 0; c < n; c++) {
        /* the common case: full heap, candidate worse than its worst */
        if (h->size == k && sims[c] < h->items[0].sim)
            continue;
        if (j0 + c != self)
            heap_offer(h, k, (struct candidate){sims[c], j0 + c});
    }
}

static int by_index(const void *a, const void *b)
{
    size_t x = ((const struct candidate *)a)->index, y = ((const struct candidate *)b)->index;
    return (x > y) - (x < y);
}

static double dot_double(const float *a, const float *b, int32_t dim)
{
    double sum = 0;
    for (int32_t d = 0; d < dim; d++)
        sum += (double)a[d] * (double)b[d];
    return sum;
}

/* The reported value of row i from its chosen neighbours (see the top). */
static double finish_row(const struct search *s, size_t i, struct heap *h)
{
    qsort(h->items, h->size, sizeof *h->items, by_index);
    for (size_t c = 0; s->neighbours && c < h->size; c++)
        s->neighbours[i * s->k + c] = h->items[c].index;
    const float *row = s->rows + i * (size_t)s->dim;
    double sum = 0;
    for (size_t c = 0; c < h->size; c++) {
        double cos = dot_double(row, s->cols + h->items[c].index * (size_t)s->dim, s->dim);
        sum += s->distance ? 1.0 - cos : cos;
    }
    return h->size ? sum / (double)h->size : 0.0;
}

/* Rows i0 .. i0 + n_rows - 1 against every column, a tile at a time. */
static void search_rows(const struct search *s, size_t i0, size_t n_rows, size_t tile_cols,
                        float *tile, struct heap *heaps, double *out)
{
    const size_t dim = (size_t)s->dim;
    for (size_t r = 0; r < n_rows; r++)
        heaps[r].size = 0;
    for (size_t j0 = 0; j0 < s->n_cols; j0 += tile_cols) {
        size_t n_cols = s->n_cols - j0 < tile_cols ? s->n_cols - j0 : tile_cols;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_rows, (int)n_cols,
                    (int)s->dim, 1.0f, s->rows + i0 * dim, (int)s->dim, s->cols + j0 * dim,
                    (int)s->dim, 0.0f, tile, (int)n_cols);
        for (size_t r = 0; r < n_rows; r++) {
            size_t self = s->exclude_self ? i0 + r : SIZE_MAX;
            scan_row(tile + r * n_cols, j0, n_cols, self, &heaps[r], s->k);
        }
    }
    for (size_t r = 0; r < n_rows; r++)
        out[i0 + r] = finish_row(s, i0 + r, &heaps[r]);
}

/* One worker's buffers; workers take row tiles from a shared counter, so
 * which worker computes a row never changes the row's result. */
struct worker {
    const struct search *s;
    size_t               tile_rows, tile_cols;
    _Atomic size_t      *next_row;
    double              *out;
    float               *tile;
    struct heap         *heaps;
    struct candidate    *items;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        size_t i0 = atomic_fetch_add(w->next_row, w->tile_rows);
        if (i0 >= w->s->n_rows)
            return NULL;
        size_t n = w->s->n_rows - i0 < w->tile_rows ? w->s->n_rows - i0 : w->tile_rows;
        search_rows(w->s, i0, n, w->tile_cols, w->tile, w->heaps, w->out);
    }
}

static void free_workers(struct worker *w, size_t n)
{
    for (size_t i = 0; w && i < n; i++) {
        free(w[i].tile);
        free(w[i].heaps);
        free(w[i].items);
    }
    free(w);
}

/* n_workers sets of buffers, NULL when memory runs out. */
static struct worker *make_workers(const struct search *s, size_t n_workers, size_t tile_rows,
                                   size_t tile_cols, _Atomic size_t *next_row, double *out)
{
    struct worker *w = calloc(n_workers, sizeof *w);
    for (size_t i = 0; w && i < n_workers; i++) {
        w[i] = (struct worker){s, tile_rows, tile_cols, next_row, out, NULL, NULL, NULL};
        w[i].tile = malloc(tile_rows * tile_cols * sizeof *w[i].tile);
        w[i].heaps = calloc(tile_rows, sizeof *w[i].heaps);
        w[i].items = malloc(tile_rows * s->k * sizeof *w[i].items);
        if (!w[i].tile || !w[i].heaps || !w[i].items) {
            free_workers(w, i + 1);
            return NULL;
        }
        for (size_t r = 0; r < tile_rows; r++)
            w[i].heaps[r].items = w[i].items + r * s->k;
    }
    return w;
}

/* Runs the workers: this thread is worker 0; a thread that cannot start
 * leaves its share to the others. */
static void run_workers(struct worker *w, size_t n_workers)
{
    pthread_t *threads = calloc(n_workers, sizeof *threads);
    bool *started = calloc(n_workers, sizeof *started);
    for (size_t i = 1; threads && started && i < n_workers; i++)
        started[i] = pthread_create(&threads[i], NULL, work, &w[i]) == 0;
    work(&w[0]);
    for (size_t i = 1; threads && started && i < n_workers; i++)
        if (started[i])
            pthread_join(threads[i], NULL);
    free(threads);
    free(started);
}

/* When k covers every candidate the mean needs no search: it is one dot
 * product with the candidates' sum, O(n dim) instead of O(n^2 dim). */
static enum tmap_status mean_over_all(const struct search *s, double *out,
                                      struct tmap_error *err)
{
    const size_t dim = (size_t)s->dim;
    double *sum = calloc(dim, sizeof *sum);
    if (!sum)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for a %zu-dimension sum", dim);
    for (size_t j = 0; j < s->n_cols; j++)
        for (size_t d = 0; d < dim; d++)
            sum[d] += s->cols[j * dim + d];
    for (size_t i = 0; i < s->n_rows; i++) {
        const float *row = s->rows + i * dim;
        double dot = 0;
        for (size_t d = 0; d < dim; d++)
            dot += row[d] * sum[d];
        if (s->exclude_self)
            dot -= dot_double(row, row, s->dim);
        double cos = dot / (double)s->k;
        out[i] = s->distance ? 1.0 - cos : cos;
    }
    free(sum);
    return TMAP_OK;
}

static enum tmap_status run_search(const struct search *s, double *out, struct tmap_error *err)
{
    if (s->k == s->n_cols - (s->exclude_self ? 1 : 0) && !s->neighbours)
        return mean_over_all(s, out, err);
    size_t tile_rows = HEAP_BUDGET / s->k;
    tile_rows = tile_rows < 1 ? 1 : tile_rows > TILE_ROWS ? TILE_ROWS : tile_rows;
    tile_rows = tile_rows < s->n_rows ? tile_rows : s->n_rows;
    size_t tile_cols = s->n_cols < TILE_COLS ? s->n_cols : TILE_COLS;

    /* as many workers as OpenBLAS would use threads, each calling a
     * single-threaded sgemm (see the top of the file) */
    int blas_threads = openblas_get_num_threads();
    size_t n_tiles = (s->n_rows + tile_rows - 1) / tile_rows;
    size_t n_workers = blas_threads > 1 ? (size_t)blas_threads : 1;
    n_workers = n_workers < n_tiles ? n_workers : n_tiles;

    _Atomic size_t next_row = 0;
    struct worker *w = make_workers(s, n_workers, tile_rows, tile_cols, &next_row, out);
    if (!w)
        return tmap_fail(err, TMAP_ERR_NOMEM,
                         "out of memory for %zu workers' %zu x %zu similarity tiles and "
                         "%zu-neighbour heaps",
                         n_workers, tile_rows, tile_cols, s->k);
    openblas_set_num_threads(1);
    run_workers(w, n_workers);
    openblas_set_num_threads(blas_threads);
    free_workers(w, n_workers);
    return TMAP_OK;
}

enum tmap_status tmap_knn_mean_distance(const float *emb, size_t n, int32_t dim, int32_t k,
                                        double *out, struct tmap_error *err)
{
    if (dim <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "diversity: embedding dimension %d is not positive",
                         (int)dim);
    if (k <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "diversity: k = %d neighbours is not positive",
                         (int)k);
    if (n <= 1) {
        if (n == 1)
            out[0] = 0.0; /* no other row: nothing is near, nothing is far */
        return TMAP_OK;
    }
    struct search s = {
        .rows = emb, .cols = emb, .n_rows = n, .n_cols = n, .dim = dim,
        .k = (size_t)k < n - 1 ? (size_t)k : n - 1, .exclude_self = true, .distance = true,
    };
    return run_search(&s, out, err);
}

enum tmap_status tmap_knn_neighbours(const float *emb, size_t n, int32_t dim, int32_t k,
                                     size_t *neighbours, struct tmap_error *err)
{
    if (dim <= 0 || k <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "neighbours: dimension %d and k = %d must be positive",
                         (int)dim, (int)k);
    if (n <= 1)
        return TMAP_OK;
    double *out = malloc(n * sizeof *out);
    if (!out)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %zu values", n);
    struct search s = {
        .rows = emb, .cols = emb, .n_rows = n, .n_cols = n, .dim = dim,
        .k = (size_t)k < n - 1 ? (size_t)k : n - 1, .exclude_self = true, .distance = true,
        .neighbours = neighbours,
    };
    enum tmap_status st = run_search(&s, out, err);
    free(out);
    return st;
}

enum tmap_status tmap_topm_mean_similarity(const float *pool, size_t n, const float *val,
                                           size_t n_val, int32_t dim, int32_t m, double *out,
                                           struct tmap_error *err)
{
    if (dim <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "relevance: embedding dimension %d is not positive",
                         (int)dim);
    if (m <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "relevance: m = %d similarities is not positive",
                         (int)m);
    if (n_val == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "relevance: the validation set has no rows");
    if (n == 0)
        return TMAP_OK;
    struct search s = {
        .rows = pool, .cols = val, .n_rows = n, .n_cols = n_val, .dim = dim,
        .k = (size_t)m < n_val ? (size_t)m : n_val, .exclude_self = false, .distance = false,
    };
    return run_search(&s, out, err);
}
