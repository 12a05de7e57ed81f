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
 * With a sixth argument, `diagnose`, more arms run in each round, to say
 * where a gap to raw decoding comes from (each arm's ratio is to raw):
 *   raw+callback   raw decoding on a context given an eval callback that
 *                  asks for no tensor (llama.cpp then waits for the device
 *                  after each micro-batch)
 *   raw+read       raw decoding that waits for each call's logits and takes
 *                  the log-sum-exp of every scored row, as tmap must
 *   raw+capture    raw+callback that also copies the final-norm hidden
 *                  states out (tmap's embedding capture)
 *   raw+embd-mode  llama.cpp's embeddings mode instead, every position an
 *                  output, the scored rows' hidden states read
 *   tmap+diversity tmap score with the diversity indicator too (capture on)
 *   tmap 2 lanes   tmap score on a model loaded with n_lanes 2 (tmap.h): two
 *                  contexts taking turns, one computing while the host
 *                  reads the other
 *
 * usage: bench_score MODEL.gguf DATA.jsonl [N_SAMPLES] [N_THREADS] [ROUNDS] [diagnose]
 */
#include "model/logsumexp.h"
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

/* What a raw arm does besides decoding. */
struct raw_mode {
    bool read;       /* wait for each call's logits and reduce the scored rows */
    bool embd_mode;  /* llama.cpp's embeddings mode; read the scored rows' states */
    int32_t threads; /* for the reduction */
    int32_t n_embd;
};

/* The eval callback of the raw+callback and raw+capture arms, shaped like
 * tmap's capture_hidden (src/model/model.c). */
struct capture {
    bool    on;
    float  *rows;
    size_t  cap; /* floats */
};

static bool capture_cb(struct ggml_tensor *t, bool ask, void *user_data)
{
    struct capture *c = user_data;
    if (ask)
        return c->on && strcmp(t->name, "result_norm") == 0;
    size_t n = (size_t)ggml_nelements(t);
    if (t->type == GGML_TYPE_F32 && n <= c->cap)
        ggml_backend_tensor_get(t, c->rows, 0, n * sizeof(float));
    return true;
}

/* Raw continuous batching over n_par sequence slots, nothing else unless
 * mode asks. Ends once the device has finished (llama_decode returns
 * before a GPU has). */
static double raw_decode(struct llama_context *ctx, const struct sequence *seqs, size_t n,
                         int32_t n_par, int32_t n_batch, const struct raw_mode *mode)
{
    struct llama_batch batch = llama_batch_init(n_batch, 0, 1);
    size_t *slot_seq = calloc((size_t)n_par, sizeof *slot_seq);
    int32_t *slot_pos = calloc((size_t)n_par, sizeof *slot_pos);
    bool *busy = calloc((size_t)n_par, sizeof *busy);
    double *norms = calloc((size_t)n_batch, sizeof *norms);
    const float **rows = calloc((size_t)n_batch, sizeof *rows);
    size_t next = 0;
    llama_memory_t mem = llama_get_memory(ctx);
    int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    volatile double sink = 0.0;
    if (mode->embd_mode)
        llama_set_embeddings(ctx, true);
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
        if (mode->read) {
            /* As tmap's collect_outputs: the row pointers first (the
             * first waits for the device), then the rows on every thread. */
            int32_t nt = batch.n_tokens;
            for (int32_t i = 0; i < nt; i++)
                rows[i] = batch.logits[i] ? llama_get_logits_ith(ctx, i) : NULL;
#pragma omp parallel for num_threads(mode->threads) schedule(static)
            for (int32_t i = 0; i < nt; i++)
                norms[i] = rows[i] ? tmap_log_sum_exp(rows[i], n_vocab) : 0.0;
            for (int32_t i = 0; i < nt; i++)
                sink += norms[i];
        }
        if (mode->embd_mode)
            for (int32_t i = 0; i < batch.n_tokens; i++)
                if (batch.logits[i])
                    sink += llama_get_embeddings_ith(ctx, i)[mode->n_embd - 1];
        for (int32_t s = 0; s < n_par; s++)
            if (busy[s] && slot_pos[s] >= seqs[slot_seq[s]].n) {
                llama_memory_seq_rm(mem, s, -1, -1);
                busy[s] = false;
            }
    }
    llama_synchronize(ctx);
    double dt = tmap_now_seconds() - t0;
    if (mode->embd_mode)
        llama_set_embeddings(ctx, false);
    (void)sink;
    llama_batch_free(batch);
    free(norms);
    free(rows);
    free(slot_seq);
    free(slot_pos);
    free(busy);
    return dt;
}

/* One timed tmap_score; its token count into *n_tokens. */
static double tmap_arm(struct tmap_pool *pool, struct tmap_model *model, const struct tmap_score_params *sp,
                       uint64_t *n_tokens)
{
    struct tmap_error err = { 0 };
    struct tmap_scores *scores;
    double t0 = tmap_now_seconds();
    if (tmap_score(pool, model, sp, &scores, &err))
        die("tmap_score", &err);
    double dt = tmap_now_seconds() - t0;
    struct tmap_score_stats st;
    tmap_scores_get_stats(scores, &st);
    tmap_scores_free(scores);
    *n_tokens = st.n_tokens;
    return dt;
}

enum arm { ARM_RAW, ARM_TMAP, ARM_RAW_CALLBACK, ARM_RAW_READ, ARM_RAW_CAPTURE, ARM_RAW_EMBD, ARM_TMAP_DIVERSITY,
           ARM_TMAP_LANES, N_ARMS };
static const char *const arm_names[N_ARMS] = { "raw llama_decode", "tmap score", "raw+callback", "raw+read",
                                               "raw+capture", "raw+embd-mode", "tmap+diversity", "tmap 2 lanes" };

static struct llama_context *raw_context(struct llama_model *lm, const struct tmap_model_info *info, int32_t threads,
                                         struct capture *cb)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(info->n_ctx * info->n_seq);
    cp.n_batch = (uint32_t)info->n_batch;
    cp.n_ubatch = (uint32_t)(info->n_batch < 512 ? info->n_batch : 512);
    cp.n_seq_max = (uint32_t)info->n_seq;
    cp.kv_unified = true;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    if (cb) {
        cp.cb_eval = capture_cb;
        cp.cb_eval_user_data = cb;
    }
    struct llama_context *ctx = llama_init_from_model(lm, cp);
    if (!ctx)
        die("creating a raw context", NULL);
    return ctx;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_score MODEL.gguf DATA.jsonl [N_SAMPLES] [N_THREADS] [ROUNDS] [diagnose]\n");
        return 1;
    }
    size_t n = argc > 3 ? (size_t)atol(argv[3]) : 256;
    int32_t threads = argc > 4 ? atoi(argv[4]) : 2;
    int rounds = argc > 5 ? atoi(argv[5]) : 3;
    rounds = rounds < 1 ? 1 : rounds > 15 ? 15 : rounds;
    bool diagnose = argc > 6 && strcmp(argv[6], "diagnose") == 0;
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
    if (tmap_weight_placement_plan(argv[1], true, NULL, &lmp, &placement, NULL))
        die("placing the raw model's weights", NULL);
    struct llama_model *lm = llama_model_load_from_file(argv[1], lmp);
    tmap_weight_placement_free(&placement);
    if (!lm)
        die("loading the raw model", NULL);
    struct llama_context *ctx = raw_context(lm, &info, threads, NULL);
    struct capture cap = { 0 };
    struct llama_context *ctx_cb = NULL;
    int n_arms = 2;
    if (diagnose) {
        cap.cap = (size_t)info.n_batch * (size_t)info.n_embd;
        cap.rows = malloc(cap.cap * sizeof *cap.rows);
        ctx_cb = raw_context(lm, &info, threads, &cap);
        n_arms = N_ARMS;
    }
    struct tmap_score_params sp_div = sp;
    sp_div.indicators |= 1u << TMAP_IND_DIVERSITY;
    /* Its own model: capture gives a context the eval callback for the
     * next TMAP_CALLBACK_SHED_CALLS calls, which would reach into the
     * plain tmap arm of the next round. */
    struct tmap_model *model_div = NULL, *model_lanes = NULL;
    if (diagnose && tmap_model_load(&mp, &model_div, &err))
        die(argv[1], &err);
    struct tmap_model_params mp_lanes = mp;
    mp_lanes.n_lanes = 2;
    if (diagnose && tmap_model_load(&mp_lanes, &model_lanes, &err))
        die(argv[1], &err);

    printf("bench_score: %s (%d wide, %d layers), %zu GSM8K samples, loss + ifd, %d threads, %d rounds%s\n",
           argv[1], info.n_embd, info.n_layer, n, threads, rounds, diagnose ? ", diagnosing" : "");
    static double ratios[N_ARMS][15];
    uint64_t arm_tokens[N_ARMS] = { 0 };
    for (int round = 0; round < rounds; round++) {
        double rate[N_ARMS] = { 0 };
        /* Each round starts at another arm: whichever runs first pays
         * for what the one before it left in the caches. */
        for (int k = 0; k < n_arms; k++) {
            int a = (k + round) % n_arms;
            struct raw_mode mode = { .threads = threads, .n_embd = info.n_embd };
            struct llama_context *c = ctx;
            double dt;
            uint64_t tokens = n_tokens;
            switch ((enum arm)a) {
            case ARM_TMAP:
                dt = tmap_arm(subpool, model, &sp, &tokens);
                break;
            case ARM_TMAP_DIVERSITY:
                dt = tmap_arm(subpool, model_div, &sp_div, &tokens);
                break;
            case ARM_TMAP_LANES:
                dt = tmap_arm(subpool, model_lanes, &sp, &tokens);
                break;
            default:
                mode.read = a == ARM_RAW_READ;
                mode.embd_mode = a == ARM_RAW_EMBD;
                if (a == ARM_RAW_CALLBACK || a == ARM_RAW_CAPTURE)
                    c = ctx_cb;
                cap.on = a == ARM_RAW_CAPTURE;
                llama_memory_clear(llama_get_memory(c), true);
                dt = raw_decode(c, seqs, n_seqs, info.n_seq, info.n_batch, &mode);
                break;
            }
            arm_tokens[a] = tokens;
            rate[a] = (double)tokens / dt;
        }
        printf("  round %d:", round + 1);
        for (int a = 0; a < n_arms; a++) {
            ratios[a][round] = rate[a] / rate[ARM_RAW];
            printf("%s %s %.0f tokens/s", a ? "," : "", arm_names[a], rate[a]);
            if (a)
                printf(" (%.2f)", ratios[a][round]);
        }
        printf("\n");
    }
    printf("  tokens: tmap %llu, raw %llu\n", (unsigned long long)arm_tokens[ARM_TMAP],
           (unsigned long long)n_tokens);
    for (int a = 1; a < n_arms; a++) {
        tmap_sort_doubles(ratios[a], (size_t)rounds);
        double median = tmap_quantile_sorted(ratios[a], (size_t)rounds, 0.5);
        if (a == ARM_TMAP)
            printf("  ratio tmap / raw : %.2f (median of %d rounds; lowest %.2f, highest %.2f)\n", median, rounds,
                   ratios[a][0], ratios[a][rounds - 1]);
        else
            printf("  ratio %s / raw : %.2f (median; %.2f-%.2f)\n", arm_names[a], median, ratios[a][0],
                   ratios[a][rounds - 1]);
    }
    struct tmap_model_counters mc;
    tmap_model_get_counters(model, &mc);
    printf("  tmap's contexts opened: %llu (each capture switch opens one)\n",
           (unsigned long long)mc.n_context_opens);

    for (size_t i = 0; i < n_seqs; i++)
        free(seqs[i].tokens);
    free(seqs);
    free(cap.rows);
    if (ctx_cb)
        llama_free(ctx_cb);
    llama_free(ctx);
    llama_model_free(lm);
    tmap_model_free(model);
    tmap_model_free(model_div);
    tmap_model_free(model_lanes);
    tmap_pool_free(subpool);
    tmap_pool_free(pool);
    unlink(sub_path);
    tmap_backend_free();
    return 0;
}
