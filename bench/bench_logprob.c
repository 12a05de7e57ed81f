/*
 * bench_logprob.c - what batching buys: teacher-forced scoring of GSM8K
 * samples with many sequences per llama_decode call against one sample per
 * call, same model, same tokens, same threads, in one run. Prints tokens/s
 * of each and the ratio.
 *
 * usage: bench_logprob MODEL.gguf DATA.jsonl [N_SAMPLES] [N_THREADS]
 */
#include "util/clock.h"
#include "tmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Noreturn void die(const struct tmap_error *err)
{
    fprintf(stderr, "bench_logprob: %s\n", err->message);
    exit(1);
}

static struct tmap_model *load(const char *path, int32_t n_seq, int32_t n_batch, int32_t n_threads)
{
    struct tmap_model_params p = tmap_model_default_params();
    p.path = path;
    p.n_ctx = 512;
    p.n_seq = n_seq;
    p.n_batch = n_batch;
    p.n_threads = n_threads;
    struct tmap_model *m;
    struct tmap_error err = { 0 };
    if (tmap_model_load(&p, &m, &err))
        die(&err);
    return m;
}

/* Tokenizes the first n samples of the pool as prompt/response requests. */
static struct tmap_logprob_request *build_requests(struct tmap_model *m, struct tmap_pool *pool, size_t n,
                                                   int64_t *n_tokens)
{
    struct tmap_logprob_request *req = calloc(n, sizeof *req);
    struct tmap_error err = { 0 };
    *n_tokens = 0;
    for (size_t i = 0; i < n; i++) {
        struct tmap_sample s;
        char *prompt = NULL;
        int32_t *pt = NULL, *rt = NULL;
        if (tmap_pool_sample(pool, i, &s, &err) ||
            tmap_model_format_prompt(m, &s, TMAP_TEMPLATE_PLAIN, &prompt, NULL, &err) ||
            tmap_model_tokenize(m, prompt, true, &pt, &req[i].n_prompt, &err) ||
            tmap_model_tokenize(m, s.response, false, &rt, &req[i].n_response, &err))
            die(&err);
        req[i].prompt = pt;
        req[i].response = rt;
        *n_tokens += req[i].n_prompt + req[i].n_response - 1;
        free(prompt);
        tmap_sample_free(&s);
    }
    return req;
}

static double timed_run(struct tmap_model *m, const struct tmap_logprob_request *req, size_t n,
                        struct tmap_logprob_result *res, bool one_by_one)
{
    struct tmap_error err = { 0 };
    double t0 = tmap_now_seconds();
    if (one_by_one) {
        for (size_t i = 0; i < n; i++)
            if (tmap_model_logprob(m, &req[i], 1, &res[i], &err))
                die(&err);
    } else if (tmap_model_logprob(m, req, n, res, &err)) {
        die(&err);
    }
    return tmap_now_seconds() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_logprob MODEL.gguf DATA.jsonl [N_SAMPLES] [N_THREADS]\n");
        return 1;
    }
    size_t n = argc > 3 ? (size_t)atol(argv[3]) : 256;
    int32_t threads = argc > 4 ? atoi(argv[4]) : 0;
    tmap_backend_init(true);

    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *pool;
    struct tmap_error err = { 0 };
    if (tmap_pool_load(argv[2], &pp, &pool, &err))
        die(&err);
    if (n > tmap_pool_size(pool))
        n = tmap_pool_size(pool);

    struct tmap_model_params defaults = tmap_model_default_params();
    struct tmap_model *batched = load(argv[1], defaults.n_seq, defaults.n_batch, threads);
    struct tmap_model *single = load(argv[1], 1, 2048, threads);
    int64_t n_tokens;
    struct tmap_logprob_request *req = build_requests(batched, pool, n, &n_tokens);
    struct tmap_logprob_result *rb = calloc(n, sizeof *rb), *rs = calloc(n, sizeof *rs);

    double tb = timed_run(batched, req, n, rb, false);
    double ts = timed_run(single, req, n, rs, true);
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (rb[i].sum_logprob - rs[i].sum_logprob) / (rb[i].n_tokens ? rb[i].n_tokens : 1);
        if (d < 0)
            d = -d;
        if (d > max_diff)
            max_diff = d;
    }
    struct tmap_model_info info;
    tmap_model_get_info(batched, &info);
    printf("bench_logprob: %s (%d wide, %d layers), %zu GSM8K samples, %lld tokens\n", argv[1],
           info.n_embd, info.n_layer, n, (long long)n_tokens);
    printf("  one sample per llama_decode        : %8.0f tokens/s  (%.2f s)\n", (double)n_tokens / ts, ts);
    printf("  batched (%d sequences, %d-token calls): %8.0f tokens/s  (%.2f s)\n", info.n_seq,
           info.n_batch, (double)n_tokens / tb, tb);
    printf("  ratio batched / one-by-one         : %.2fx   max |diff| per token %.2e nats\n", ts / tb, max_diff);

    for (size_t i = 0; i < n; i++) {
        free((void *)req[i].prompt);
        free((void *)req[i].response);
    }
    free(req);
    free(rb);
    free(rs);
    tmap_model_free(batched);
    tmap_model_free(single);
    tmap_pool_free(pool);
    tmap_backend_free();
    return 0;
}
