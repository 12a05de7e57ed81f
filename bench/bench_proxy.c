/*
 * bench_proxy.c - what KV-prefix sharing buys the proxy: one evaluation at
 * k demonstrations over a tiny set, with the demonstrations decoded once
 * and shared by every item, against decoding them for every item. Same
 * model, tokens and threads, in one run; prints tokens, wall time, ratios
 * and the difference in value. A third arm, the floor, gives the items the
 * same layout after one one-line demonstration: what their own tokens
 * cost, which no sharing can save (its ratio to the naive arm bounds the
 * speed-up any sharing could reach on this model).
 *
 * The first evaluation in a process pays for llama.cpp's output buffer
 * growing to its largest size (a fresh allocation, zeroed, each time the
 * count of logits rows in one decode call sets a record: about 0.7 s of
 * page faults on the 64-wide model), which the arm that happens to run
 * first would carry; a search pays it once in dozens of evaluations. So one
 * untimed evaluation goes first, then the arms alternate for several rounds
 * and each reports its median.
 *
 * LANES 2 loads the model with n_lanes 2 (tmap.h): two contexts taking
 * turns, so that on a GPU one computes while the host reads the other.
 *
 * usage: bench_proxy MODEL.gguf POOL.jsonl VAL.jsonl [K] [TINY_ITEMS] [THREADS] [ROUNDS] [LANES]
 */
#include "tmap.h"
#include "util/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Noreturn void die(const char *what, const struct tmap_error *err)
{
    fprintf(stderr, "bench_proxy: %s: %s\n", what, err->message);
    exit(1);
}

static struct tmap_pool *load_head(const char *path, size_t n, char *tmp_path)
{
    struct tmap_error err = { 0 };
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *all, *head;
    if (tmap_pool_load(path, &pp, &all, &err))
        die(path, &err);
    int fd = mkstemp(tmp_path);
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < n && i < tmap_pool_size(all); i++) {
        struct tmap_record rec;
        tmap_pool_record(all, i, &rec);
        fwrite(rec.raw, 1, rec.raw_bytes, f);
        fputc('\n', f);
    }
    fclose(f);
    tmap_pool_free(all);
    if (tmap_pool_load(tmp_path, &pp, &head, &err))
        die(tmp_path, &err);
    return head;
}

/* A pool of one record far shorter than any real demonstration. */
static struct tmap_pool *one_line_pool(char *tmp_path)
{
    struct tmap_error err = { 0 };
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *pool;
    int fd = mkstemp(tmp_path);
    FILE *f = fdopen(fd, "w");
    fputs("{\"question\": \"1+1?\", \"answer\": \"#### 2\"}\n", f);
    fclose(f);
    if (tmap_pool_load(tmp_path, &pp, &pool, &err))
        die(tmp_path, &err);
    return pool;
}

static double run(struct tmap_model *m, struct tmap_pool *tiny, struct tmap_pool *demos, int32_t k, bool share,
                  struct tmap_proxy_stats *st)
{
    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.k = k;
    p.share_prefix = share;
    struct tmap_proxy *px;
    struct tmap_error err = { 0 };
    if (tmap_proxy_create(m, tiny, NULL, &p, &px, &err))
        die("proxy", &err);
    size_t n = tmap_pool_size(demos);
    size_t *rows = malloc(n * sizeof *rows);
    for (size_t i = 0; i < n; i++)
        rows[i] = i;
    double v;
    if (tmap_proxy_eval(px, demos, rows, n, NULL, &v, st, &err))
        die("eval", &err);
    free(rows);
    tmap_proxy_free(px);
    return v;
}

static double median(double *v, int n)
{
    tmap_sort_doubles(v, (size_t)n);
    return tmap_quantile_sorted(v, (size_t)n, 0.5);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_proxy MODEL.gguf POOL.jsonl VAL.jsonl [K] [TINY_ITEMS] [THREADS] [ROUNDS] [LANES]\n");
        return 1;
    }
    int32_t k = argc > 4 ? atoi(argv[4]) : 8;
    size_t n_tiny = argc > 5 ? (size_t)atol(argv[5]) : 100;
    int32_t threads = argc > 6 ? atoi(argv[6]) : 2;
    int rounds = argc > 7 ? atoi(argv[7]) : 3;
    int32_t lanes = argc > 8 ? atoi(argv[8]) : 1;
    rounds = rounds < 1 ? 1 : rounds > 15 ? 15 : rounds;
    tmap_backend_init(true);
    char demo_path[] = "/tmp/tmap-bench-proxy-demos-XXXXXX", tiny_path[] = "/tmp/tmap-bench-proxy-tiny-XXXXXX";
    char line_path[] = "/tmp/tmap-bench-proxy-line-XXXXXX";
    struct tmap_pool *demos = load_head(argv[2], (size_t)k, demo_path);
    struct tmap_pool *tiny = load_head(argv[3], n_tiny, tiny_path);
    struct tmap_pool *line = one_line_pool(line_path);

    struct tmap_model_params mp = tmap_model_default_params();
    mp.path = argv[1];
    mp.n_ctx = 4096;
    mp.n_seq = 8;
    mp.n_threads = threads;
    mp.n_lanes = lanes;
    struct tmap_model *m;
    struct tmap_error err = { 0 };
    if (tmap_model_load(&mp, &m, &err))
        die(argv[1], &err);
    struct tmap_model_info info;
    tmap_model_get_info(m, &info);

    struct tmap_proxy_stats shared, naive, floor_;
    double t_shared[15], t_naive[15], t_floor[15], vs = 0.0, vn = 0.0;
    run(m, tiny, demos, k, true, &shared); /* warm-up, untimed */
    for (int r = 0; r < rounds; r++) {
        vn = run(m, tiny, demos, k, false, &naive);
        vs = run(m, tiny, demos, k, true, &shared);
        run(m, tiny, line, 1, true, &floor_);
        t_naive[r] = naive.seconds;
        t_shared[r] = shared.seconds;
        t_floor[r] = floor_.seconds;
    }
    double sn = median(t_naive, rounds), ss = median(t_shared, rounds), sf = median(t_floor, rounds);
    printf("bench_proxy: %s (%d wide, %d layers), k=%d demonstrations, %zu tiny items, loglik, %d threads, "
           "%d lane%s, median of %d rounds after a warm-up\n",
           argv[1], info.n_embd, info.n_layer, k, tmap_pool_size(tiny), threads, lanes, lanes == 1 ? "" : "s",
           rounds);
    printf("  without sharing : %9llu tokens  %7.2f s\n", (unsigned long long)naive.n_tokens, sn);
    printf("  shared prefix   : %9llu tokens  %7.2f s\n", (unsigned long long)shared.n_tokens, ss);
    printf("  tokens ratio shared/naive : %.3f   speed-up : %.2fx   |value difference| : %.2e\n",
           (double)shared.n_tokens / (double)naive.n_tokens, sn / ss, fabs(vs - vn));
    printf("  floor (items after a one-line demonstration) : %9llu tokens  %7.2f s\n",
           (unsigned long long)floor_.n_tokens, sf);
    printf("  bound on any sharing's speed-up, naive/floor : %.2fx   shared arm above the floor : %.2f s\n", sn / sf,
           ss - sf);
    tmap_model_free(m);
    tmap_pool_free(tiny);
    tmap_pool_free(demos);
    tmap_pool_free(line);
    unlink(demo_path);
    unlink(tiny_path);
    unlink(line_path);
    tmap_backend_free();
    return 0;
}
