/*
 * bench_score.c - `tmap score` (loss + ifd) against raw llama_decode on the
 * same token sequences, the same batch shape (n_seq sequences side by side,
 * n_batch tokens per call, logits only where a response token is scored)
 * and the same threads, in one run. The ratio says what tmap's own work
 * (parsing, tokenizing, log-softmax, bookkeeping) costs on top of the engine.
 *
 * The arms alternate for several rounds and the median ratio is reported:
 * on a shared 2-core machine the speed of either arm alone drifts by 30%
 * from one second to the next, and whichever arm ran first also paid for
 * the cold caches.
 *
 * usage: bench_score MODEL.gguf DATA.jsonl [N_SAMPLES] [N_THREADS] [ROUNDS]
 */
#include "model/model.h" /* tmap_weight_placement_plan */
#include "util/clock.h"
#include "util/stats.h"
#include "tmap.h"

#include <llama.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Noreturn void die(const char *what, const struct tmap_error *err)
{
    fprintf(stderr, "bench_score: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

/* A token sequence and the first position whose logits are read. */
struct sequence {
    int32_t *tokens;
    int32_t  n;
    int32_t  first_output;
};

/* The sequences tmap score decodes for loss + ifd: prompt + response and
 * BOS + response, each without its last token (nothing reads its logits). */
static struct sequence *build_sequences(struct tmap_model *m, struct tmap_pool *pool, size_t n,
                                        size_t *n_seq_out, uint64_t *n_tokens)
{
    struct sequence *seqs = calloc(2 * n, sizeof *seqs);
    struct tmap_error err = { 0 };
    *n_tokens = 0;
    for (size_t i = 0; i < n; i++) {
        struct tmap_sample s;
        char *text;
        int32_t *p, np, *r, nr;
        if (tmap_pool_sample(pool, i, &s, &err) ||
            tmap_model_format_prompt(m, &s, TMAP_TEMPLATE_PLAIN, &text, NULL, &err) ||
            tmap_model_tokenize(m, text, true, &p, &np, &err) ||
            tmap_model_tokenize(m, s.response, false, &r, &nr, &err))
            die("tokenizing", &err);
        struct sequence *a = &seqs[2 * i], *b = &seqs[2 * i + 1];
        a->n = np + nr - 1;
        a->tokens = malloc((size_t)(np + nr) * sizeof(int32_t));
        memcpy(a->tokens, p, (size_t)np * sizeof(int32_t));
        memcpy(a->tokens + np, r, (size_t)nr * sizeof(int32_t));
        a->first_output = np - 1;
        b->n = nr;
        b->tokens = malloc((size_t)(nr + 1) * sizeof(int32_t));
        b->tokens[0] = p[0];
        memcpy(b->tokens + 1, r, (size_t)nr * sizeof(int32_t));
        b->first_output = 0;
        *n_tokens += (uint64_t)(a->n + b->n);
        free(text);
        free(p);
        free(r);
        tmap_sample_free(&s);
    }
    *n_seq_out = 2 * n;
    return seqs;
}

/* Raw continuous batching over n_par sequence slots, nothing else. */
static double raw_decode(struct llama_context *ctx, const struct sequence *seqs, size_t n,
                         int32_t n_par, int32_t n_batch)
{
    struct llama_batch batch = llama_batch_init(n_batch, 0, 1);
    size_t *slot_seq = calloc((size_t)n_par, sizeof *slot_seq);
    int32_t *slot_pos = calloc((size_t)n_par, sizeof *slot_pos);
    bool *busy = calloc((size_t)n_par, sizeof *busy);
    size_t next = 0;
    llama_memory_t mem = llama_get_memory(ctx);
    double t0 = tmap_now_seconds();
    for (;;) {
        for (int32_t s = 0; s < n_par; s++)
            if (!busy[s] && next < n) {
                busy[s] = true;
                slot_seq[s] = next++;
                slot_pos[s] = 0;
            }
        batch.n_tokens = 0;
        for (int32_t s = 0; s < n_par && batch.n_tokens < n_batch; s++) {
            if (!busy[s])
                continue;
            const struct sequence *q = &seqs[slot_seq[s]];
            for (; slot_pos[s] < q->n && batch.n_tokens < n_batch; slot_pos[s]++) {
                int32_t k = batch.n_tokens++;
                batch.token[k] = q->tokens[slot_pos[s]];
                batch.pos[k] = slot_pos[s];
                batch.n_seq_id[k] = 1;
                batch.seq_id[k][0] = s;
                batch.logits[k] = slot_pos[s] >= q->first_output;
            }
        }
        if (batch.n_tokens == 0)
            break;
        if (llama_decode(ctx, batch) != 0)
            die("llama_decode", NULL);
        for (int32_t s = 0; s < n_par; s++)
            if (busy[s] && slot_pos[s] >= seqs[slot_seq[s]].n) {
                llama_memory_seq_rm(mem, s, -1, -1);
                busy[s] = false;
            }
    }
    double dt = tmap_now_seconds() - t0;
    llama_batch_free(batch);
    free(slot_seq);
    free(slot_pos);
    free(busy);
    return dt;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_score MODEL.gguf DATA.jsonl [N_SAMPLES] [N_THREADS] [ROUNDS]\n");
        return 1;
    }
    size_t n = argc > 3 ? (size_t)atol(argv[3]) : 256;
    int32_t threads = argc > 4 ? atoi(argv[4]) : 2;
    int rounds = argc > 5 ? atoi(argv[5]) : 3;
    rounds = rounds < 1 ? 1 : rounds > 15 ? 15 : rounds;
    tmap_backend_init(true);
    struct tmap_error err = { 0 };
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *pool;
    if (tmap_pool_load(argv[2], &pp, &pool, &err))
        die(argv[2], &err);
    n = n < tmap_pool_size(pool) ? n : tmap_pool_size(pool);

    /* tmap score on the first n samples (a pool file of exactly those). */
    char sub_path[] = "/tmp/tmap-bench-score-XXXXXX";
    int fd = mkstemp(sub_path);
    FILE *sub = fdopen(fd, "w");
    for (size_t i = 0; i < n; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        fwrite(rec.raw, 1, rec.raw_bytes, sub);
        fputc('\n', sub);
    }
    fclose(sub);
    struct tmap_pool *subpool;
    if (tmap_pool_load(sub_path, &pp, &subpool, &err))
        die(sub_path, &err);

    struct tmap_model_params mp = tmap_model_default_params();
    mp.path = argv[1];
    mp.n_ctx = 1024;
    mp.n_threads = threads;
    struct tmap_model *model;
    if (tmap_model_load(&mp, &model, &err))
        die(argv[1], &err);
    struct tmap_model_info info;
    tmap_model_get_info(model, &info);

    struct tmap_score_params sp = tmap_score_default_params();
    sp.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_IFD);
    sp.batch_samples = n; /* one batch, as the raw loop sees it */

    /* Raw llama_decode on a context of the same shape. */
    size_t n_seqs;
    uint64_t n_tokens;
    struct sequence *seqs = build_sequences(model, subpool, n, &n_seqs, &n_tokens);
    struct llama_model_params lmp = llama_model_default_params();
    struct tmap_weight_placement placement; /* tmap's kernels: the same buffers its load chose */
    if (tmap_weight_placement_plan(argv[1], true, &lmp, &placement, NULL))
        die("placing the raw model's weights", NULL);
    struct llama_model *lm = llama_model_load_from_file(argv[1], lmp);
    tmap_weight_placement_free(&placement);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(info.n_ctx * info.n_seq);
    cp.n_batch = (uint32_t)info.n_batch;
    cp.n_ubatch = (uint32_t)(info.n_batch < 512 ? info.n_batch : 512);
    cp.n_seq_max = (uint32_t)info.n_seq;
    cp.kv_unified = true;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    struct llama_context *ctx = lm ? llama_init_from_model(lm, cp) : NULL;
    if (!lm || !ctx)
        die("loading the raw context", NULL);

    printf("bench_score: %s (%d wide, %d layers), %zu GSM8K samples, loss + ifd, %d threads, %d rounds\n",
           argv[1], info.n_embd, info.n_layer, n, threads, rounds);
    double ratios[15];
    uint64_t tmap_tokens = 0;
    for (int round = 0; round < rounds; round++) {
        struct tmap_scores *scores;
        double t0 = tmap_now_seconds();
        if (tmap_score(subpool, model, &sp, &scores, &err))
            die("tmap_score", &err);
        double t_tmap = tmap_now_seconds() - t0;
        struct tmap_score_stats st;
        tmap_scores_get_stats(scores, &st);
        tmap_scores_free(scores);
        tmap_tokens = st.n_tokens;

        llama_memory_clear(llama_get_memory(ctx), true);
        double t_raw = raw_decode(ctx, seqs, n_seqs, info.n_seq, info.n_batch);

        double tmap_rate = (double)st.n_tokens / t_tmap, raw_rate = (double)n_tokens / t_raw;
        ratios[round] = tmap_rate / raw_rate;
        printf("  round %d: raw llama_decode %8.0f tokens/s (%.2f s), tmap score %8.0f tokens/s (%.2f s), "
               "ratio %.2f\n",
               round + 1, raw_rate, t_raw, tmap_rate, t_tmap, ratios[round]);
    }
    printf("  tokens: tmap %llu, raw %llu\n", (unsigned long long)tmap_tokens, (unsigned long long)n_tokens);
    tmap_sort_doubles(ratios, (size_t)rounds);
    double median = tmap_quantile_sorted(ratios, (size_t)rounds, 0.5);
    printf("  ratio tmap / raw : %.2f (median of %d rounds; lowest %.2f, highest %.2f)\n", median, rounds,
           ratios[0], ratios[rounds - 1]);

    for (size_t i = 0; i < n_seqs; i++)
        free(seqs[i].tokens);
    free(seqs);
    llama_free(ctx);
    llama_model_free(lm);
    tmap_model_free(model);
    tmap_pool_free(subpool);
    tmap_pool_free(pool);
    unlink(sub_path);
    tmap_backend_free();
    return 0;
}
