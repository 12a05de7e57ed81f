/*
 * ann.cpp - the FAISS side of ann.h: an IVF-Flat index with inner product
 * over L2-normalised rows, and the diversity statistic from it.
 *
 * Why IVF-Flat: the pipeline promises the same bytes on any thread count
 * (docs/design.md section 14). HNSW's graph depends on the order in which
 * parallel inserts land, so its neighbours change with the thread count; IVF
 * has no such step. k-means on a seeded sample fixes the centroids, a row's
 * list depends only on its similarities to them, each list holds its rows in
 * index order (IndexIVFFlat::add_core appends them by ascending row, each
 * list owned by one thread), and a query's answer depends only on its own
 * lists. Flat (uncompressed) lists keep the similarities exact; at 64
 * dimensions a million rows cost 256 MB, as much as the rows themselves.
 *
 * FAISS trains (faiss::Clustering) and holds the lists; the scan of a query's
 * lists is ours. Debian's libfaiss is built for baseline x86-64, so its scan
 * computes each inner product with the scalar fvec_inner_product_ref (28% of
 * the time in a profile at 20k rows); an sgemv of the query against each
 * list goes through OpenBLAS's AVX2 kernels instead, and our top-k heap
 * breaks ties towards the lower row as neighbors.c does.
 *
 * Rounding: OpenBLAS rounds differently with another thread count and with a
 * row's place in an sgemm (neighbors.c measured both), and the row-to-
 * centroid similarities decide lists. So for the duration of a call OpenBLAS
 * runs single-threaded and OpenMP threads share the work; the row-to-centroid
 * products go through one sgemm shape only, TILE rows starting at a multiple
 * of TILE in the whole matrix (the last tile zero padded), so a row's
 * similarities are the same bits in every call, whether it builds the index
 * or queries a range [begin, end); a list's similarities to a query come from
 * one sgemv over the list's fixed rows. k-means runs through the same tiles
 * (tiled_ip below) on its fixed sample, and FAISS's centroid update sums each
 * centroid's rows in row order whatever the thread count. A row's own list is
 * therefore always its first probe.
 *
 * A query whose lists hold fewer than k other rows scans twice as many lists,
 * until it has k or has scanned them all. The chosen rows' distances are then
 * recomputed in double and summed in index order, as neighbors.c does, so a
 * row whose neighbours are the exact ones gets the exact value, bit for bit.
 *
 * The OpenBLAS setting is process-wide: as with neighbors.c, do not run this
 * beside other OpenBLAS work or from two threads at once.
 */
#include "indicators/ann.h"

extern "C" {
#include "util/error.h"
#include "util/random.h"
}

#include <cblas.h>
#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <vector>

namespace {

using idx_t = faiss::Index::idx_t;

const size_t TILE = 256;          /* rows per sgemm (see the top) */
const size_t QUERY_CHUNK = 16384; /* query rows at a time: bounds the buffers */
const size_t PER_LIST = 40;       /* k-means sample rows per list by default */
/* Recall@10 on clustered rows at 100k (docs/design.md section 2): 0.981
 * with 8 lists scanned, 0.987 with 16, for twice the scan. */
const size_t DEFAULT_NPROBE = 8;
/* FAISS warns on stderr below 39 sample rows per centroid; fewer lists for
 * small n keep it quiet and the centroids meaningful. */
const size_t MIN_PER_LIST = 39;

/* OpenBLAS single-threaded for the scope (see the top). */
struct blas_one_thread {
    int saved;
    blas_one_thread() : saved(openblas_get_num_threads()) { openblas_set_num_threads(1); }
    ~blas_one_thread() { openblas_set_num_threads(saved); }
    blas_one_thread(const blas_one_thread &) = delete;
    blas_one_thread &operator=(const blas_one_thread &) = delete;
};

/* The similarities of rows t0 .. t0 + TILE - 1 of x (n rows) to m centres:
 * always one sgemm of TILE x m x dim, rows past n zero. */
void tile_sims(const float *x, size_t n, size_t t0, const float *centres, size_t m, int dim,
               float *rows, float *sims)
{
    size_t have = std::min(TILE, n - t0);
    std::memcpy(rows, x + t0 * (size_t)dim, have * (size_t)dim * sizeof *rows);
    std::memset(rows + have * (size_t)dim, 0, (TILE - have) * (size_t)dim * sizeof *rows);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)TILE, (int)m, dim, 1.0f, rows, dim,
                centres, dim, 0.0f, sims, (int)m);
}

/* The p highest of sims[0 .. m), best first; a tie goes to the lower index,
 * so the choice does not depend on anything but the values. As costly as
 * the sgemm if done one value at a time: a block of values below the p-th
 * best so far is skipped with one vectorisable test. */
void top_p(const float *sims, size_t m, size_t p, idx_t *best, float *best_sim)
{
    const size_t BLOCK = 16;
    size_t have = 0;
    for (size_t c0 = 0; c0 < m; c0 += BLOCK) {
        size_t c1 = std::min(m, c0 + BLOCK);
        if (have == p && c1 - c0 == BLOCK) {
            const float worst = best_sim[p - 1];
            int above = 0;
            for (size_t c = c0; c < c1; c++)
                above |= sims[c] > worst;
            if (!above)
                continue;
        }
        for (size_t c = c0; c < c1; c++) {
            float s = sims[c];
            if (have == p && !(s > best_sim[p - 1]))
                continue;
            size_t at = have < p ? have++ : p - 1;
            while (at > 0 && s > best_sim[at - 1]) {
                best_sim[at] = best_sim[at - 1];
                best[at] = best[at - 1];
                at--;
            }
            best_sim[at] = s;
            best[at] = (idx_t)c;
        }
    }
}

/* For rows begin .. end - 1 of x (n rows): the p nearest of m centres, p per
 * row, from whole tiles (see the top). Tiles run on OpenMP threads. */
void assign_rows(const float *x, size_t n, size_t begin, size_t end, const float *centres,
                 size_t m, int dim, size_t p, idx_t *assign, float *assign_sim)
{
    if (begin >= end)
        return;
    long first = (long)(begin / TILE), last = (long)((end - 1) / TILE);
    /* buffers before the threads start: an exception must not leave an
     * OpenMP region */
    const int nt = omp_get_max_threads();
    std::vector<float> rows((size_t)nt * TILE * (size_t)dim), sims((size_t)nt * TILE * m);
#pragma omp parallel for schedule(dynamic) num_threads(nt)
    for (long t = first; t <= last; t++) {
        size_t t0 = (size_t)t * TILE, me = (size_t)omp_get_thread_num();
        float *tile = sims.data() + me * TILE * m;
        tile_sims(x, n, t0, centres, m, dim, rows.data() + me * TILE * (size_t)dim, tile);
        size_t r0 = std::max(t0, begin), r1 = std::min(t0 + TILE, end);
        for (size_t i = r0; i < r1; i++)
            top_p(tile + (i - t0) * m, m, p, assign + (i - begin) * p, assign_sim + (i - begin) * p);
    }
}

/* A flat inner-product index whose search goes through the tiles, so that
 * FAISS's k-means assigns its sample the same way on any thread count. */
struct tiled_ip : faiss::IndexFlatIP {
    explicit tiled_ip(idx_t dim) : faiss::IndexFlatIP(dim) {}

    void search(idx_t n, const float *x, idx_t k, float *distances, idx_t *labels,
                const faiss::SearchParameters *params = nullptr) const override
    {
        (void)params;
        size_t m = (size_t)ntotal, p = std::min((size_t)k, m);
        std::vector<idx_t> best((size_t)n * p);
        std::vector<float> best_sim((size_t)n * p);
        assign_rows(x, (size_t)n, 0, (size_t)n, get_xb(), m, (int)d, p, best.data(),
                    best_sim.data());
        for (idx_t i = 0; i < n; i++)
            for (idx_t j = 0; j < k; j++) {
                bool got = (size_t)j < p;
                labels[i * k + j] = got ? best[(size_t)i * p + (size_t)j] : -1;
                distances[i * k + j] = got ? best_sim[(size_t)i * p + (size_t)j] : -INFINITY;
            }
    }
};

double dot_double(const float *a, const float *b, int dim)
{
    double sum = 0;
    for (int d = 0; d < dim; d++)
        sum += (double)a[d] * (double)b[d];
    return sum;
}

} // namespace

struct tmap_ann {
    const float                          *emb; /* the caller's rows */
    size_t                                n;
    int                                   dim;
    struct tmap_ann_params                p; /* resolved */
    std::vector<float>                    centroids;
    std::unique_ptr<faiss::IndexFlatIP>   quantizer;
    std::unique_ptr<faiss::IndexIVFFlat>  ivf;
    size_t                                longest_list;
};

namespace {

struct tmap_ann_params resolve(const struct tmap_ann_params *in, size_t n)
{
    struct tmap_ann_params p = *in;
    size_t most = std::max<size_t>(1, n / MIN_PER_LIST);
    if (p.nlist == 0)
        p.nlist = (size_t)std::lround(4.0 * std::sqrt((double)n));
    p.nlist = std::clamp<size_t>(p.nlist, 1, std::min(most, n));
    if (p.nprobe == 0)
        p.nprobe = DEFAULT_NPROBE;
    p.nprobe = std::min(p.nprobe, p.nlist);
    if (p.train_rows == 0)
        p.train_rows = PER_LIST * p.nlist;
    p.train_rows = std::clamp<size_t>(p.train_rows, p.nlist, n);
    if (p.n_iter <= 0)
        p.n_iter = 10;
    return p;
}

/* The seeded k-means sample, in row order (the order FAISS then shuffles
 * with its own seed). */
std::vector<float> training_sample(const float *emb, size_t n, int dim, size_t rows,
                                   uint64_t seed)
{
    std::vector<size_t> all(n), pick(rows);
    for (size_t i = 0; i < n; i++)
        all[i] = i;
    if (tmap_random_sample(all.data(), n, rows, seed, pick.data()) != rows)
        throw std::bad_alloc();
    std::sort(pick.begin(), pick.end());
    std::vector<float> out(rows * (size_t)dim);
    for (size_t r = 0; r < rows; r++)
        std::memcpy(&out[r * (size_t)dim], emb + pick[r] * (size_t)dim, (size_t)dim * sizeof(float));
    return out;
}

void build(struct tmap_ann *a)
{
    const size_t nlist = a->p.nlist;
    std::vector<float> sample = training_sample(a->emb, a->n, a->dim, a->p.train_rows, a->p.seed);
    faiss::ClusteringParameters cp;
    cp.niter = a->p.n_iter;
    cp.spherical = true; /* centroids on the sphere, like the rows */
    cp.seed = (int)((a->p.seed ^ (a->p.seed >> 32)) & INT_MAX);
    cp.min_points_per_centroid = 1;     /* the sample size is ours (resolve) */
    cp.max_points_per_centroid = INT_MAX; /* never subsample it again */
    faiss::Clustering kmeans(a->dim, nlist, cp);
    tiled_ip assigner(a->dim);
    kmeans.train((idx_t)a->p.train_rows, sample.data(), assigner);
    a->centroids = kmeans.centroids;

    a->quantizer.reset(new faiss::IndexFlatIP(a->dim));
    a->quantizer->add((idx_t)nlist, a->centroids.data());
    a->ivf.reset(new faiss::IndexIVFFlat(a->quantizer.get(), a->dim, nlist,
                                         faiss::METRIC_INNER_PRODUCT));
    std::vector<idx_t> list(a->n);
    std::vector<float> sim(a->n);
    assign_rows(a->emb, a->n, 0, a->n, a->centroids.data(), nlist, a->dim, 1, list.data(),
                sim.data());
    a->ivf->add_core((idx_t)a->n, a->emb, nullptr, list.data());
    a->longest_list = 0;
    for (size_t l = 0; l < nlist; l++)
        a->longest_list = std::max(a->longest_list, a->ivf->invlists->list_size(l));
}

/* A candidate neighbour; the better of two is the more similar, a tie going
 * to the lower row, as in neighbors.c. */
struct candidate {
    float  sim;
    size_t row;
};

bool better(const candidate &a, const candidate &b)
{
    return a.sim > b.sim || (a.sim == b.sim && a.row < b.row);
}

/* Per-thread buffers, made before the threads start. */
struct scratch {
    std::vector<float>     sims;  /* one list's similarities */
    std::vector<candidate> heap;  /* the k best so far, worst first */
};

/* Row i's k best other rows among those filed under its p lists; false when
 * the lists hold fewer than k other rows. Each list's similarities come from
 * one sgemv of the query against the list, whose rows sit in a fixed order:
 * the same bits whichever thread or range asks. */
bool scan_lists(const struct tmap_ann *a, size_t i, size_t k, const idx_t *lists, size_t p,
                scratch *w, size_t *out)
{
    const faiss::InvertedLists *inv = a->ivf->invlists;
    const float *query = a->emb + i * (size_t)a->dim;
    std::vector<candidate> &heap = w->heap;
    heap.clear();
    for (size_t j = 0; j < p; j++) {
        size_t size = inv->list_size((size_t)lists[j]);
        if (size == 0)
            continue;
        const float *rows = reinterpret_cast<const float *>(inv->get_codes((size_t)lists[j]));
        const idx_t *ids = inv->get_ids((size_t)lists[j]);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)size, a->dim, 1.0f, rows, a->dim, query, 1,
                    0.0f, w->sims.data(), 1);
        for (size_t r = 0; r < size; r++) {
            candidate c = {w->sims[r], (size_t)ids[r]};
            if (c.row == i || (heap.size() == k && !better(c, heap.front())))
                continue;
            if (heap.size() == k) {
                std::pop_heap(heap.begin(), heap.end(), better);
                heap.back() = c;
            } else {
                heap.push_back(c);
            }
            std::push_heap(heap.begin(), heap.end(), better);
        }
    }
    if (heap.size() < k)
        return false;
    for (size_t c = 0; c < k; c++)
        out[c] = heap[c].row;
    std::sort(out, out + k);
    return true;
}

/* neighbours[(i - begin) * k ..] for rows begin .. end - 1, by index. A row
 * whose lists hold fewer than k other rows scans twice as many, up to all. */
void knn(const struct tmap_ann *a, size_t k, size_t begin, size_t end, size_t *neighbours)
{
    blas_one_thread one;
    const size_t nprobe = a->p.nprobe;
    const int nt = omp_get_max_threads();
    std::vector<scratch> work((size_t)nt);
    for (scratch &w : work) {
        w.sims.resize(a->longest_list);
        w.heap.reserve(k);
    }
    for (size_t c0 = begin; c0 < end; c0 += QUERY_CHUNK) {
        size_t c1 = std::min(end, c0 + QUERY_CHUNK);
        std::vector<idx_t> lists((c1 - c0) * nprobe);
        std::vector<float> list_sims((c1 - c0) * nprobe);
        assign_rows(a->emb, a->n, c0, c1, a->centroids.data(), a->p.nlist, a->dim, nprobe,
                    lists.data(), list_sims.data());
        std::vector<char> full(c1 - c0);
#pragma omp parallel for schedule(dynamic, 64) num_threads(nt)
        for (size_t i = c0; i < c1; i++)
            full[i - c0] = scan_lists(a, i, k, &lists[(i - c0) * nprobe], nprobe,
                                      &work[(size_t)omp_get_thread_num()],
                                      neighbours + (i - begin) * k);
        for (size_t i = c0; i < c1; i++)
            for (size_t p = 2 * nprobe; !full[i - c0]; p *= 2) {
                p = std::min(p, a->p.nlist);
                std::vector<idx_t> wide(p);
                std::vector<float> wide_sims(p);
                assign_rows(a->emb, a->n, i, i + 1, a->centroids.data(), a->p.nlist, a->dim, p,
                            wide.data(), wide_sims.data());
                full[i - c0] = scan_lists(a, i, k, wide.data(), p, &work[0],
                                          neighbours + (i - begin) * k);
                if (p == a->p.nlist)
                    break; /* every list: n - 1 >= k other rows, so full */
            }
    }
}

enum tmap_status check_query(const struct tmap_ann *a, int32_t k, size_t begin, size_t end,
                             struct tmap_error *err)
{
    if (k <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "diversity: k = %d neighbours is not positive", (int)k);
    if (begin > end || end > a->n)
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "diversity: query rows [%zu, %zu) are not within the index's %zu rows",
                         begin, end, a->n);
    return TMAP_OK;
}

/* FAISS reports misuse and exhaustion by exceptions: none may reach C. */
template <typename F> enum tmap_status guarded(const char *what, struct tmap_error *err, F f)
{
    try {
        f();
        return TMAP_OK;
    } catch (const std::bad_alloc &) {
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the %s", what);
    } catch (const std::exception &e) {
        return tmap_fail(err, TMAP_ERR_USAGE, "FAISS failed in the %s: %s", what, e.what());
    }
}

} // namespace

extern "C" {

struct tmap_ann_params tmap_ann_default_params(void)
{
    struct tmap_ann_params p = {};
    p.n_iter = 10;
    return p;
}

enum tmap_status tmap_ann_build(const float *emb, size_t n, int32_t dim,
                                const struct tmap_ann_params *params, struct tmap_ann **out,
                                struct tmap_error *err)
{
    *out = nullptr;
    if (dim <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "diversity: embedding dimension %d is not positive",
                         (int)dim);
    if (n == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "diversity: an index needs at least one row");
    struct tmap_ann *a = nullptr;
    enum tmap_status st = guarded("nearest-neighbour index", err, [&] {
        a = new struct tmap_ann();
        a->emb = emb;
        a->n = n;
        a->dim = dim;
        a->p = resolve(params, n);
        blas_one_thread one;
        build(a);
    });
    if (st) {
        delete a;
        return st;
    }
    *out = a;
    return TMAP_OK;
}

void tmap_ann_free(struct tmap_ann *ann)
{
    delete ann;
}

void tmap_ann_get_params(const struct tmap_ann *ann, struct tmap_ann_params *out)
{
    *out = ann->p;
}

enum tmap_status tmap_ann_knn(const struct tmap_ann *ann, int32_t k, size_t begin, size_t end,
                              size_t *neighbours, struct tmap_error *err)
{
    enum tmap_status st = check_query(ann, k, begin, end, err);
    if (st || ann->n == 1)
        return st;
    size_t kk = std::min((size_t)k, ann->n - 1);
    return guarded("nearest-neighbour search", err, [&] { knn(ann, kk, begin, end, neighbours); });
}

enum tmap_status tmap_ann_knn_mean_distance(const struct tmap_ann *ann, int32_t k, size_t begin,
                                            size_t end, double *out, struct tmap_error *err)
{
    enum tmap_status st = check_query(ann, k, begin, end, err);
    if (st)
        return st;
    if (ann->n == 1) {
        if (begin < end)
            out[0] = 0.0; /* no other row: nothing is near, nothing is far */
        return TMAP_OK;
    }
    const size_t kk = std::min((size_t)k, ann->n - 1), dim = (size_t)ann->dim;
    return guarded("nearest-neighbour search", err, [&] {
        for (size_t c0 = begin; c0 < end; c0 += QUERY_CHUNK) {
            size_t c1 = std::min(end, c0 + QUERY_CHUNK);
            std::vector<size_t> nb((c1 - c0) * kk);
            knn(ann, kk, c0, c1, nb.data());
            /* in double, by index order: the exact path's arithmetic */
            for (size_t i = c0; i < c1; i++) {
                double sum = 0;
                for (size_t j = 0; j < kk; j++)
                    sum += 1.0 - dot_double(ann->emb + i * dim,
                                            ann->emb + nb[(i - c0) * kk + j] * dim, ann->dim);
                out[i - begin] = sum / (double)kk;
            }
        }
    });
}

} // extern "C"
