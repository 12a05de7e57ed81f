/*
 * bench_proxy.c - what KV-prefix sharing buys the proxy: one evaluation at
 * k demonstrations over a tiny set, with the demonstrations decoded once
 * and shared by every item, against decoding them for every item. Same
 * model, tokens and threads, in one run; prints tokens, wall time, ratios
 * and the difference in value.
 *
 * usage: bench_proxy MODEL.gguf POOL.jsonl VAL.jsonl [K] [TINY_ITEMS] [THREADS]
 */
#include "tmap.h"

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

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_proxy MODEL.gguf POOL.jsonl VAL.jsonl [K] [TINY_ITEMS] [THREADS]\n");
        return 1;
    }
    int32_t k = argc > 4 ? atoi(argv[4]) : 8;
    size_t n_tiny = argc > 5 ? (size_t)atol(argv[5]) : 100;
    int32_t threads = argc > 6 ? atoi(argv[6]) : 2;
    tmap_backend_init(true);
    char demo_path[] = "/tmp/tmap-bench-proxy-demos-XXXXXX", tiny_path[] = "/tmp/tmap-bench-proxy-tiny-XXXXXX";
    struct tmap_pool *demos = load_head(argv[2], (size_t)k, demo_path);
    struct tmap_pool *tiny = load_head(argv[3], n_tiny, tiny_path);

    struct tmap_model_params mp = tmap_model_default_params();
    mp.path = argv[1];
    mp.n_ctx = 4096;
    mp.n_seq = 8;
    mp.n_threads = threads;
    struct tmap_model *m;
    struct tmap_error err = { 0 };
    if (tmap_model_load(&mp, &m, &err))
        die(argv[1], &err);
    struct tmap_model_info info;
    tmap_model_get_info(m, &info);

    struct tmap_proxy_stats shared, naive;
    double vs = run(m, tiny, demos, k, true, &shared);
    double vn = run(m, tiny, demos, k, false, &naive);
    printf("bench_proxy: %s (%d wide, %d layers), k=%d demonstrations, %zu tiny items, loglik, %d threads\n",
           argv[1], info.n_embd, info.n_layer, k, tmap_pool_size(tiny), threads);
    printf("  without sharing : %9llu tokens  %7.2f s\n", (unsigned long long)naive.n_tokens, naive.seconds);
    printf("  shared prefix   : %9llu tokens  %7.2f s\n", (unsigned long long)shared.n_tokens, shared.seconds);
    printf("  tokens ratio shared/naive : %.3f   speed-up : %.2fx   |value difference| : %.2e\n",
           (double)shared.n_tokens / (double)naive.n_tokens, naive.seconds / shared.seconds, fabs(vs - vn));
    tmap_model_free(m);
    tmap_pool_free(tiny);
    tmap_pool_free(demos);
    unlink(demo_path);
    unlink(tiny_path);
    tmap_backend_free();
    return 0;
}
