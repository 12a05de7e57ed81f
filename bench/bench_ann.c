/*
 * bench_ann.c - diversity from the approximate index (src/indicators/ann.cpp)
 * against the exact search (neighbors.c), without a model (docs/design.md
 * section 2):
 *
 *  (a) N_COMPARE rows of dim 64, clustered and uniform on the sphere: the
 *      exact and the approximate diversity's time, their ratio, recall@10 of
 *      the approximate neighbours against the exact ones, and how far the
 *      means move;
 *  (b) N_LARGE clustered rows: the approximate diversity's time (train, add,
 *      search, means) and the process's peak resident memory. Started by
 *      mpirun (Open MPI's OMPI_COMM_WORLD_RANK and _SIZE), each process
 *      builds the whole index and answers its share of the queries, rows
 *      n r / N to n (r + 1) / N, as tmap score's ranks do (without the
 *      broadcast of the rows): the split's time is the slowest process's.
 *
 * Clustered rows mimic mean-pooled hidden states, which crowd around topics:
 * CLUSTERS centres uniform on the sphere, each row a centre plus Gaussian
 * noise of SIGMA per coordinate, normalised. Uniform rows are the hard case
 * for any index (in 64 dimensions every row is nearly as far as any other).
 *
 * One line per figure: "bench_ann n=... data=... figure=NAME value=V".
 * Figures only, no pass/fail on time; the targets (recall@10 >= 0.95 at
 * 100k, a million rows under 2 minutes and 2 GB on 2 cores) sit beside them
 * in docs/design.md.
 *
 * usage: bench_ann [N_COMPARE (100000)] [N_LARGE (1000000)] [CLUSTERS (2000)]
 *                  [SIGMA (0.1)] [NPROBE (default)] [NLIST (default)]
 */
#include "util/clock.h"
#include "tmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "indicators/ann.h"
#include "indicators/neighbors.h"
#include "util/random.h"

#define DIM 64
#define K   10

#if TMAP_HAVE_FAISS

static double gaussian(uint64_t *state)
{
    double u = tmap_random_unit(state), v = tmap_random_unit(state);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void normalise(float *row)
{
    double norm = 0;
    for (int d = 0; d < DIM; d++)
        norm += (double)row[d] * row[d];
    for (int d = 0; d < DIM; d++)
        row[d] = (float)(row[d] / sqrt(norm));
}

/* n unit rows: around `clusters` centres (0 = uniform on the sphere). */
static float *make_rows(size_t n, size_t clusters, double sigma, uint64_t seed)
{
    float *rows = malloc(n * DIM * sizeof *rows);
    float *centres = malloc((clusters ? clusters : 1) * DIM * sizeof *centres);
    if (!rows || !centres) {
        free(rows);
        free(centres);
        return NULL;
    }
    uint64_t state = seed;
    for (size_t c = 0; c < clusters; c++) {
        for (int d = 0; d < DIM; d++)
            centres[c * DIM + d] = (float)gaussian(&state);
        normalise(centres + c * DIM);
    }
    for (size_t i = 0; i < n; i++) {
        const float *centre = clusters ? centres + (tmap_random_next(&state) % clusters) * DIM : NULL;
        for (int d = 0; d < DIM; d++)
            rows[i * DIM + d] = (float)((centre ? centre[d] : 0.0) + (centre ? sigma : 1.0) * gaussian(&state));
        normalise(rows + i * DIM);
    }
    free(centres);
    return rows;
}

/* CPU seconds of the whole process, user + system: with other jobs on the
 * machine, wall time says little and this says what the work cost. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

static int fail(const char *what, const struct tmap_error *err)
{
    fprintf(stderr, "bench_ann: %s: %s\n", what, err ? err->message : "out of memory");
    return 1;
}

static void figure(size_t n, const char *data, const char *name, double value)
{
    printf("bench_ann n=%zu dim=%d k=%d data=%s figure=%s value=%.6g\n", n, DIM, K, data, name, value);
    fflush(stdout);
}

/* This process's share of n queries: all of them, or under mpirun its
 * rank's range. */
static void query_share(size_t n, size_t *begin, size_t *end)
{
    const char *rank = getenv("OMPI_COMM_WORLD_RANK"), *size = getenv("OMPI_COMM_WORLD_SIZE");
    size_t r = rank ? strtoull(rank, NULL, 10) : 0, N = size ? strtoull(size, NULL, 10) : 1;
    if (N < 1 || r >= N)
        r = 0, N = 1;
    *begin = n * r / N;
    *end = n * (r + 1) / N;
}

/* Approximate diversity of n rows, timed: build plus the queries of rows
 * begin..end (out[i - begin]). */
static int ann_diversity(const float *rows, size_t n, const char *data, const struct tmap_ann_params *p,
                         size_t begin, size_t end, double *out, double *seconds, struct tmap_ann **keep)
{
    struct tmap_error err = {0};
    struct tmap_ann *ann = NULL;
    double t0 = tmap_now_seconds(), cpu0 = cpu_seconds();
    if (tmap_ann_build(rows, n, DIM, p, &ann, &err)) {
        tmap_ann_free(ann);
        return fail("approximate index", &err);
    }
    double t1 = tmap_now_seconds();
    if (end - begin < n)
        figure(n, data, "queries_from_row", (double)begin), figure(n, data, "queries_to_row", (double)end);
    if (tmap_ann_knn_mean_distance(ann, K, begin, end, out, &err)) {
        tmap_ann_free(ann);
        return fail("approximate diversity", &err);
    }
    *seconds = tmap_now_seconds() - t0;
    figure(n, data, "ann_cpu_seconds", cpu_seconds() - cpu0);
    figure(n, data, "ann_build_seconds", t1 - t0);
    figure(n, data, "ann_search_seconds", *seconds - (t1 - t0));
    *keep = ann;
    return 0;
}

static int compare(size_t n, size_t clusters, double sigma, const struct tmap_ann_params *p)
{
    const char *data = clusters ? "clustered" : "uniform";
    float *rows = make_rows(n, clusters, sigma, 42);
    double *exact = malloc(n * sizeof *exact), *approx = malloc(n * sizeof *approx);
    size_t *nb_exact = malloc(n * K * sizeof *nb_exact), *nb_ann = malloc(n * K * sizeof *nb_ann);
    int rc = 1;
    struct tmap_error err = {0};
    struct tmap_ann *ann = NULL;
    if (!rows || !exact || !approx || !nb_exact || !nb_ann) {
        fail("rows", NULL);
        goto out;
    }
    double t0 = tmap_now_seconds(), cpu0 = cpu_seconds();
    if (tmap_knn_mean_distance(rows, n, DIM, K, exact, &err)) {
        fail("exact diversity", &err);
        goto out;
    }
    double exact_s = tmap_now_seconds() - t0, ann_s = 0;
    figure(n, data, "exact_cpu_seconds", cpu_seconds() - cpu0);
    if (ann_diversity(rows, n, data, p, 0, n, approx, &ann_s, &ann))
        goto out;
    /* neighbour lists for recall: not part of either timing */
    if (tmap_knn_neighbours(rows, n, DIM, K, nb_exact, &err) ||
        tmap_ann_knn(ann, K, 0, n, nb_ann, &err)) {
        fail("neighbour lists", &err);
        goto out;
    }
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) /* both lists sorted by index: a merge */
        for (size_t a = 0, b = 0; a < K && b < K;) {
            size_t x = nb_exact[i * K + a], y = nb_ann[i * K + b];
            hits += x == y;
            a += x <= y;
            b += y <= x;
        }
    double max_diff = 0, sum_diff = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(approx[i] - exact[i]);
        max_diff = d > max_diff ? d : max_diff;
        sum_diff += d;
    }
    struct tmap_ann_params used;
    tmap_ann_get_params(ann, &used);
    figure(n, data, "nlist", (double)used.nlist);
    figure(n, data, "nprobe", (double)used.nprobe);
    figure(n, data, "train_rows", (double)used.train_rows);
    figure(n, data, "exact_seconds", exact_s);
    figure(n, data, "ann_seconds", ann_s);
    figure(n, data, "exact_over_ann", exact_s / ann_s);
    figure(n, data, "recall@10", (double)hits / (double)(n * K));
    figure(n, data, "mean_abs_diff", sum_diff / (double)n);
    figure(n, data, "max_abs_diff", max_diff);
    rc = 0;
out:
    tmap_ann_free(ann);
    free(rows);
    free(exact);
    free(approx);
    free(nb_exact);
    free(nb_ann);
    return rc;
}

/* Recall@10 of the index on `n_queries` sampled rows, against a brute-force
 * search over every row (no exact search of all n rows is affordable). */
static double sampled_recall(const float *rows, size_t n, const struct tmap_ann *ann,
                             size_t n_queries)
{
    size_t hits = 0, got[K];
    uint64_t state = 77;
    for (size_t q = 0; q < n_queries; q++) {
        size_t i = tmap_random_next(&state) % n, best[K];
        float best_sim[K];
        size_t have = 0;
        for (size_t j = 0; j < n; j++) {
            if (j == i)
                continue;
            float s = 0;
            for (int d = 0; d < DIM; d++)
                s += rows[i * DIM + d] * rows[j * DIM + d];
            if (have == K && !(s > best_sim[K - 1]))
                continue;
            size_t at = have < K ? have++ : K - 1;
            for (; at > 0 && s > best_sim[at - 1]; at--) {
                best_sim[at] = best_sim[at - 1];
                best[at] = best[at - 1];
            }
            best_sim[at] = s;
            best[at] = j;
        }
        struct tmap_error err = {0};
        if (tmap_ann_knn(ann, K, i, i + 1, got, &err))
            return fail("neighbour lists", &err), NAN;
        for (size_t a = 0; a < K; a++)
            for (size_t b = 0; b < K; b++)
                hits += best[a] == got[b];
    }
    return (double)hits / (double)(n_queries * K);
}

static int large(size_t n, size_t clusters, double sigma, const struct tmap_ann_params *p)
{
    float *rows = make_rows(n, clusters, sigma, 43);
    double *out = malloc(n * sizeof *out);
    struct tmap_ann *ann = NULL;
    double seconds = 0;
    size_t begin, end;
    query_share(n, &begin, &end);
    int rc = !rows || !out ? fail("rows", NULL)
                           : ann_diversity(rows, n, "clustered", p, begin, end, out, &seconds, &ann);
    if (!rc) {
        double mean = 0;
        for (size_t i = 0; i < end - begin; i++)
            mean += out[i];
        struct tmap_ann_params used;
        tmap_ann_get_params(ann, &used);
        figure(n, "clustered", "nlist", (double)used.nlist);
        figure(n, "clustered", "nprobe", (double)used.nprobe);
        figure(n, "clustered", "train_rows", (double)used.train_rows);
        figure(n, "clustered", "ann_seconds", seconds);
        figure(n, "clustered", "mean_diversity", mean / (double)(end - begin));
        figure(n, "clustered", "peak_rss_mib", peak_rss_mib());
        figure(n, "clustered", "recall@10_500_sampled_queries", sampled_recall(rows, n, ann, 500));
    }
    tmap_ann_free(ann);
    free(rows);
    free(out);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n_compare = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    size_t n_large = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    size_t clusters = argc > 3 ? strtoull(argv[3], NULL, 10) : 2000;
    double sigma = argc > 4 ? strtod(argv[4], NULL) : 0.1;
    struct tmap_ann_params p = tmap_ann_default_params();
    p.nprobe = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
    p.nlist = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
    printf("bench_ann: %zu clusters, sigma %g\n", clusters, sigma);
    if (n_compare && (compare(n_compare, clusters, sigma, &p) || compare(n_compare, 0, 0, &p)))
        return 1;
    if (n_large && large(n_large, clusters, sigma, &p))
        return 1;
    return 0;
}

#else

int main(void)
{
    printf("bench_ann: tmap was built without FAISS: nothing to measure\n");
    return 0;
}

#endif
