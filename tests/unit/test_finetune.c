/*
 * test_finetune.c - training on a created 32-wide, 1-layer model and a few
 * dozen GSM8K records: the loss falls (by numbers), the written GGUF loads
 * and scores what training measured, resume goes on from the checkpoint,
 * --train-layers trains only what it names, and bad inputs fail with the
 * right status and a message naming the value at fault. (The recorded base
 * model's check, real vs shuffled answers, is tests/cli/base_model.sh.)
 */
#define _XOPEN_SOURCE 700 /* nftw, for helpers.h */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "model/model.h"
#include "tmap.h"
#include "train/finetune.h"

#include <gguf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];
static char model_path[512]; /* the created model every test trains */
static char data_path[512];  /* the first 40 GSM8K training records */
static char eval_path[512];  /* the first 10 GSM8K test records */

/* ---- helpers ------------------------------------------------------------ */

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

/* The settings every test starts from: small enough for about a second an
 * epoch on 2 cores. */
static struct tmap_finetune_params params(const char *out)
{
    struct tmap_finetune_params p = tmap_finetune_default_params();
    p.model.path = model_path;
    p.model.n_ctx = 256;
    p.model.n_threads = 2;
    p.out_path = out;
    p.lr = 1e-2f;
    p.val_split = 0.2f;
    p.seed = 11;
    return p;
}

/* Collects the epoch lines a run reports. */
struct epochs {
    struct tmap_finetune_epoch e[16];
    int n;
    int64_t n_step_reports;
};

static void collect(const struct tmap_finetune_progress *p, void *user_data)
{
    struct epochs *ep = user_data;
    if (!p->epoch_done) {
        ep->n_step_reports++;
        return;
    }
    if (ep->n < 16)
        ep->e[ep->n++] = *p->epoch_done;
}

static struct tmap_finetune_result train_ok(const struct tmap_pool *pool, struct tmap_finetune_params *p,
                                            struct epochs *ep)
{
    struct tmap_finetune_result r;
    struct tmap_error err = { 0 };
    p->progress = collect;
    p->progress_user_data = ep;
    if (tmap_finetune(pool, p, &r, &err))
        fail_msg("finetune failed: %s", err.message);
    return r;
}

/* Mean response loss of a pool's first n records under the model at path,
 * as tmap_model_logprob scores them. */
static double scored_loss(const char *path, int32_t n_ctx, const struct tmap_pool *pool, size_t n)
{
    struct tmap_model *m = test_load_model(path, n_ctx, 2048, 4); /* default batch, sequences */
    struct tmap_error err = { 0 };
    struct tmap_logprob_request *req = calloc(n, sizeof *req);
    struct tmap_logprob_result *res = calloc(n, sizeof *res);
    int32_t **bufs = calloc(2 * n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        struct tmap_sample s;
        char *prompt;
        assert_int_equal(tmap_pool_sample(pool, i, &s, &err), TMAP_OK);
        assert_int_equal(tmap_model_format_prompt(m, &s, TMAP_TEMPLATE_PLAIN, &prompt, NULL, &err), TMAP_OK);
        assert_int_equal(tmap_model_tokenize(m, prompt, true, &bufs[2 * i], &req[i].n_prompt, &err), TMAP_OK);
        assert_int_equal(tmap_model_tokenize(m, s.response, false, &bufs[2 * i + 1], &req[i].n_response, &err),
                         TMAP_OK);
        req[i].prompt = bufs[2 * i];
        req[i].response = bufs[2 * i + 1];
        free(prompt);
        tmap_sample_free(&s);
    }
    assert_int_equal(tmap_model_logprob(m, req, n, res, &err), TMAP_OK);
    double sum = 0;
    int64_t tokens = 0;
    for (size_t i = 0; i < n; i++) {
        sum -= res[i].sum_logprob;
        tokens += res[i].n_tokens;
    }
    for (size_t i = 0; i < 2 * n; i++)
        free(bufs[i]);
    free(bufs);
    free(req);
    free(res);
    tmap_model_free(m);
    return sum / (double)tokens;
}

static bool tensor_same(const char *a, const char *b, const char *name);

/* ---- training ----------------------------------------------------------- */

static void test_loss_falls_and_model_scores(void **state)
{
    (void)state;
    char out[512];
    tmp_path(out, sizeof out, "loss.gguf");
    struct tmap_pool *pool = test_load_pool(data_path);
    struct tmap_finetune_params p = params(out);
    p.n_epochs = 2;
    struct tmap_pool *eval = test_load_pool(eval_path);
    p.eval_pool = eval;
    struct epochs ep = { 0 };
    struct tmap_finetune_result r = train_ok(pool, &p, &ep);

    assert_int_equal(r.n_train_records, 32);
    assert_int_equal(r.n_val_records, 8);
    assert_int_equal(r.first_epoch, 1);
    /* All 34 but rope_freqs; unpatched llama.cpp leaves token_embd out too. */
    assert_int_equal(r.n_trained_tensors, r.llama_patched ? 33 : 32);
    assert_int_equal(ep.n, 3);                 /* before training, then 2 epochs */
    /* Windows start at record starts, so their count moves a little with
     * each epoch's order; n_train_windows is the first epoch's. */
    assert_true(ep.n_step_reports >= r.n_train_windows + r.last.n_steps);
    assert_true(llabs(r.last.n_steps - r.n_train_windows) <= 2);

    /* A random model starts near log(32000) = 10.37 nats per token. */
    assert_true(fabs(r.before.val_response_loss - log(32000.0)) < 0.1);
    assert_true(fabs(r.before.val_loss - log(32000.0)) < 0.1);
    assert_true(isnan(r.before.train_loss));
    /* Training loss falls epoch over epoch, and far below the start. */
    double t1 = ep.e[1].train_loss, t2 = ep.e[2].train_loss;
    if (!(t1 < 9.0 && t2 < t1 - 0.5))
        fail_msg("train losses %.4f %.4f", t1, t2);
    assert_true(r.last.val_response_loss < r.before.val_response_loss - 3.0);
    assert_true(r.last.val_loss < r.before.val_loss - 1.0); /* prompts included: less to learn */
    assert_true(r.last.eval_response_loss < r.before.eval_response_loss - 3.0);
    assert_int_equal(r.last.n_tokens, r.last.n_steps * 256);
    /* Every kind of weight trains: with tmap's llama.cpp patch the keys,
     * values and token embeddings too (llama.cpp alone leaves them as they
     * were: scripts/llama-patches/README.md). */
    assert_false(tensor_same(model_path, out, "blk.0.attn_q.weight"));
    assert_false(tensor_same(model_path, out, "blk.0.ffn_up.weight"));
    if (r.llama_patched) {
        assert_false(tensor_same(model_path, out, "blk.0.attn_k.weight"));
        assert_false(tensor_same(model_path, out, "blk.0.attn_v.weight"));
        assert_false(tensor_same(model_path, out, "token_embd.weight"));
    }
    /* The schedule ends at lr * lr_min. */
    assert_true(fabs(r.last.lr - 1e-3) < 1e-6);

    /* The file holds the trained weights: scored again it gives the loss
     * training reported (the same scoring path and its 256-token context,
     * which drops the prompt's start on the longest records)... */
    double again = scored_loss(out, 256, eval, tmap_pool_size(eval));
    if (fabs(again - r.last.eval_response_loss) > 1e-3)
        fail_msg("written model scores %.5f, training reported %.5f", again, r.last.eval_response_loss);
    /* ...and keeps the base model's context (llama_opt_init had set it to
     * the window). */
    struct tmap_model_params mp = tmap_model_default_params();
    mp.path = out;
    mp.n_ctx = 256;
    struct tmap_model *m;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_load(&mp, &m, &err), TMAP_OK);
    struct tmap_model_info info;
    tmap_model_get_info(m, &info);
    assert_int_equal(info.n_ctx_train, 2048);
    tmap_model_free(m);
    char sidecar[512];
    tmp_path(sidecar, sizeof sidecar, "loss.ckpt.json");
    assert_int_equal(access(sidecar, F_OK), 0);
    tmap_pool_free(eval);
    tmap_pool_free(pool);
}

static void test_resume_continues(void **state)
{
    (void)state;
    char out[512], ckpt1[512], ckpt2[512];
    tmp_path(out, sizeof out, "resume.gguf");
    tmp_path(ckpt1, sizeof ckpt1, "resume.ckpt-epoch1.gguf");
    tmp_path(ckpt2, sizeof ckpt2, "resume.ckpt-epoch2.gguf");
    struct tmap_pool *pool = test_load_pool(data_path);
    struct tmap_finetune_params p = params(out);
    p.n_epochs = 1;
    struct epochs first = { 0 };
    struct tmap_finetune_result a = train_ok(pool, &p, &first);
    assert_int_equal(access(ckpt1, F_OK), 0);

    p.n_epochs = 2;
    p.resume = true;
    struct epochs second = { 0 };
    struct tmap_finetune_result b = train_ok(pool, &p, &second);
    assert_int_equal(b.first_epoch, 2);
    assert_int_equal(b.before.epoch, 1);
    assert_int_equal(b.last.epoch, 2);
    /* It starts from the checkpoint's weights, not the base model's... */
    if (fabs(b.before.val_response_loss - a.last.val_response_loss) > 1e-4)
        fail_msg("resumed from %.5f, the checkpoint had %.5f", b.before.val_response_loss, a.last.val_response_loss);
    /* ...and its epoch trains on from there, well below where epoch 1 began. */
    if (!(b.last.train_loss < a.last.train_loss - 0.5))
        fail_msg("epoch 2 train loss %.4f after epoch 1's %.4f", b.last.train_loss, a.last.train_loss);
    assert_int_equal(access(ckpt2, F_OK), 0);
    assert_int_equal(access(ckpt1, F_OK), -1); /* replaced */

    /* Nothing left to do, and a resume that would change the split. */
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_finetune(pool, &p, NULL, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "resume.ckpt.json: the checkpoint has done 2 epochs; --epochs 2"));
    p.n_epochs = 3;
    p.seed = 12;
    assert_int_equal(tmap_finetune(pool, &p, NULL, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "the checkpoint used --seed 11 --val-split 0.2 -c 256"));
    tmap_pool_free(pool);
}

/* Bytes of tensor `name` in a GGUF file. */
static void *tensor_bytes(const char *path, const char *name, size_t *n)
{
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(path, gp);
    assert_non_null(g);
    int64_t t = gguf_find_tensor(g, name);
    assert_true(t >= 0);
    *n = gguf_get_tensor_size(g, t);
    size_t at = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, t);
    gguf_free(g);
    void *buf = malloc(*n);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)at, SEEK_SET), 0);
    assert_int_equal(fread(buf, 1, *n, f), *n);
    fclose(f);
    return buf;
}

static bool tensor_same(const char *a, const char *b, const char *name)
{
    size_t na, nb;
    void *x = tensor_bytes(a, name, &na), *y = tensor_bytes(b, name, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void test_train_layers(void **state)
{
    (void)state;
    char out[512];
    tmp_path(out, sizeof out, "layers.gguf");
    struct tmap_pool *pool = test_load_pool(data_path);
    struct tmap_finetune_params p = params(out);
    p.train_layers = "output,ffn_down";
    struct epochs ep = { 0 };
    struct tmap_finetune_result r = train_ok(pool, &p, &ep);
    /* output.weight, output_norm.weight, blk.0.ffn_down.{weight,bias,scale,input_scale} */
    assert_int_equal(r.n_trained_tensors, 6);
    assert_false(tensor_same(model_path, out, "output.weight"));
    assert_false(tensor_same(model_path, out, "blk.0.ffn_down.weight"));
    assert_true(tensor_same(model_path, out, "blk.0.attn_q.weight"));
    assert_true(tensor_same(model_path, out, "blk.0.ffn_up.weight"));
    assert_true(tensor_same(model_path, out, "token_embd.weight"));

    int32_t n = 0;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_finetune_check_layers(model_path, "0", &n, &err), TMAP_OK);
    assert_int_equal(n, 30); /* every blk.0 tensor */
    assert_int_equal(tmap_finetune_check_layers(model_path, "attn", &n, &err), TMAP_OK);
    assert_int_equal(n, 17); /* attn_norm; attn_q/k/v/output weight, bias, scale, input_scale */
    tmap_pool_free(pool);
}

/* ---- packing ------------------------------------------------------------ */

/* Records of these lengths (tokens, EOS included), each token a distinct
 * value: record r's token j is 1000 r + j, its first (1000 r) standing for
 * its BOS. Window 16: the 40-token record is cut into chunks. */
static const int32_t pack_lengths[] = { 5, 12, 3, 9, 40, 7, 16, 17, 2, 11, 6, 8 };
#define N_PACK (sizeof pack_lengths / sizeof pack_lengths[0])

static void test_pack_windows_start_at_records(void **state)
{
    (void)state;
    const int32_t n_ctx = 16;
    struct ft_seq seqs[N_PACK];
    struct ft_corpus c = { seqs, N_PACK, 0 };
    for (size_t r = 0; r < N_PACK; r++) {
        seqs[r].n_tokens = pack_lengths[r];
        seqs[r].tokens = malloc((size_t)pack_lengths[r] * sizeof(int32_t));
        for (int32_t j = 0; j < pack_lengths[r]; j++)
            seqs[r].tokens[j] = 1000 * (int32_t)r + j;
        c.n_tokens += pack_lengths[r];
    }
    size_t order[N_PACK] = { 3, 0, 7, 11, 4, 9, 1, 5, 10, 2, 8, 6 };
    int64_t nw = ft_n_windows(&c, order, n_ctx);
    assert_true(nw > 0);
    int32_t *data = malloc((size_t)nw * n_ctx * sizeof *data), *labels = malloc((size_t)nw * n_ctx * sizeof *labels);
    assert_true(ft_pack(&c, order, n_ctx, nw, data, labels));
    assert_false(ft_pack(&c, order, n_ctx, nw + 1, data, labels)); /* a count that is not the packing's */

    bool whole[N_PACK] = { false };
    for (int64_t w = 0; w < nw; w++) {
        const int32_t *d = data + w * n_ctx, *l = labels + w * n_ctx;
        /* A window starts at a record's start, or at a chunk of the long
         * record (a multiple of the window into it). */
#define CHUNK_START(t) ((t) % 1000 == 0 || ((t) / 1000 == 4 && (t) % n_ctx == 0))
        assert_true(CHUNK_START(d[0]));
        /* Labels are the next tokens. */
        for (int32_t i = 0; i + 1 < n_ctx; i++)
            assert_int_equal(l[i], d[i + 1]);
        /* Within a window a record's tokens run in order. */
        for (int32_t i = 0; i + 1 < n_ctx; i++)
            assert_true(d[i + 1] == d[i] + 1 || CHUNK_START(d[i + 1]));
        /* The window's n_ctx + 1 tokens: its inputs and its last label. A
         * record whose first token is here, followed by all the rest, is
         * seen whole. */
        int32_t slice[17];
        memcpy(slice, d, (size_t)n_ctx * sizeof *slice);
        slice[n_ctx] = l[n_ctx - 1];
        for (int32_t i = 0; i <= n_ctx; i++) {
            int32_t r = slice[i] / 1000, len = pack_lengths[r], j = 0;
            if (slice[i] % 1000 != 0 || i + len > n_ctx + 1)
                continue;
            while (j < len && slice[i + j] == 1000 * r + j)
                j++;
            whole[r] |= j == len;
        }
    }
    /* Every record that fits a window is seen whole at least once. */
    for (size_t r = 0; r < N_PACK; r++)
        if (pack_lengths[r] <= n_ctx + 1)
            assert_true(whole[r]);
    /* The long record's every token is in some window. */
    for (int32_t j = 0; j < 40; j++) {
        bool seen = false;
        for (int64_t k = 0; k < nw * n_ctx && !seen; k++)
            seen = data[k] == 4000 + j || labels[k] == 4000 + j;
        assert_true(seen);
    }
    free(data);
    free(labels);
    for (size_t r = 0; r < N_PACK; r++)
        free(seqs[r].tokens);
}

/* ---- errors ------------------------------------------------------------- */

static void expect_fail(const struct tmap_pool *pool, const struct tmap_finetune_params *p,
                        enum tmap_status status, const char *text)
{
    struct tmap_error err = { 0 };
    enum tmap_status st = tmap_finetune(pool, p, NULL, &err);
    if (st != status || !strstr(err.message, text))
        fail_msg("status %d (wanted %d), message: %s (wanted: %s)", st, status, err.message, text);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    char out[512];
    tmp_path(out, sizeof out, "bad.gguf");
    struct tmap_pool *pool = test_load_pool(data_path);
    struct tmap_finetune_params p = params(out);

    p.n_epochs = 0;
    expect_fail(pool, &p, TMAP_ERR_USAGE, "--epochs 0: must be at least 1");
    p = params("/nonexistent/dir/out.gguf");
    expect_fail(pool, &p, TMAP_ERR_IO, "/nonexistent/dir/out.gguf: cannot write");
    p = params(out);
    p.model.n_ctx = 100;
    expect_fail(pool, &p, TMAP_ERR_USAGE, "-c 100: the training window must be a multiple of 256");
    p = params(out);
    p.lr = -1.0f;
    expect_fail(pool, &p, TMAP_ERR_USAGE, "--lr -1: must be a positive number");
    p.lr = 1e-3f;
    p.val_split = 0.95f;
    expect_fail(pool, &p, TMAP_ERR_USAGE, "--val-split 0.95");

    p = params(out);
    p.train_layers = "0,,output";
    expect_fail(pool, &p, TMAP_ERR_USAGE, "--train-layers '0,,output': an empty item");
    p.train_layers = "3-1";
    expect_fail(pool, &p, TMAP_ERR_USAGE, "range '3-1' runs backwards");
    p.train_layers = "attn,nosuch";
    expect_fail(pool, &p, TMAP_ERR_USAGE, "'nosuch' matches no tensor of");
    p.train_layers = "2-5";
    expect_fail(pool, &p, TMAP_ERR_USAGE, "has no layer in 2-5");
    p.train_layers = "ffn-up";
    expect_fail(pool, &p, TMAP_ERR_USAGE, "'ffn-up' is not a layer range N-M");
    p.train_layers = "rope_freqs";
    expect_fail(pool, &p, TMAP_ERR_USAGE, "selects no tensor llama.cpp can train");

    p = params(out);
    p.model.path = "/nonexistent/model.gguf";
    expect_fail(pool, &p, TMAP_ERR_IO, "/nonexistent/model.gguf: cannot open");
    p = params(out);
    p.resume = true;
    expect_fail(pool, &p, TMAP_ERR_IO, "bad.ckpt.json: no checkpoint to resume from");
    assert_int_equal(access(out, F_OK), -1);

    /* Too little data for one window. */
    char one[512];
    test_gsm8k_slice(one, sizeof one, tmpdir, "one.jsonl", "train", 1);
    struct tmap_pool *tiny = test_load_pool(one);
    p = params(out);
    p.val_split = 0.0f;
    expect_fail(tiny, &p, TMAP_ERR_DATA, "one.jsonl: the 1 training records hold");
    tmap_pool_free(tiny);

    /* A record whose response has no tokens. */
    char empty[512];
    tmp_path(empty, sizeof empty, "empty.jsonl");
    FILE *f = fopen(empty, "w");
    fputs("{\"question\": \"What is 2+2?\", \"answer\": \"\"}\n", f);
    fclose(f);
    struct tmap_pool *blank = test_load_pool(empty);
    expect_fail(blank, &p, TMAP_ERR_DATA, "empty.jsonl:1: record 1: the response has no tokens");
    tmap_pool_free(blank);

    /* A sidecar that is not one. */
    char sidecar[512];
    tmp_path(sidecar, sizeof sidecar, "bad.ckpt.json");
    f = fopen(sidecar, "w");
    fputs("{\"epoch\": ", f);
    fclose(f);
    p.resume = true;
    expect_fail(pool, &p, TMAP_ERR_DATA, "bad.ckpt.json:1: not valid JSON");
    f = fopen(sidecar, "w");
    fputs("{\"epoch\": 1}", f);
    fclose(f);
    expect_fail(pool, &p, TMAP_ERR_DATA, "bad.ckpt.json: not a tmap checkpoint sidecar");
    tmap_pool_free(pool);
}

/* ---- training in place (the fine-tune proxy's way in) ------------------- */

struct idle_check {
    bool   ctx_was_released; /* the model had no context of its own when judged */
    double loss;             /* what the judge scored, through a reopened context */
};

static enum tmap_status judge_idle(struct tmap_model *m, void *user_data, struct tmap_error *err)
{
    struct idle_check *c = user_data;
    c->ctx_was_released = m->ctx == NULL;
    static const int32_t prompt[] = { 1, 450, 1234 }, response[] = { 29871, 29945, 29889 };
    struct tmap_logprob_request req = { .prompt = prompt, .n_prompt = 3, .response = response, .n_response = 3 };
    struct tmap_logprob_result res;
    enum tmap_status st = tmap_model_logprob(m, &req, 1, &res, err);
    c->loss = st ? NAN : -res.sum_logprob / res.n_tokens;
    return st;
}

/* While the training context works, the model's own (its KV cache for
 * scoring) is given back; the judge's scoring opens a fresh one, and a
 * second run from the restored weights judges the same value. */
static void test_train_judge_releases_context(void **state)
{
    (void)state;
    struct tmap_pool *pool = test_load_pool(data_path);
    struct tmap_model_params mp = tmap_model_default_params();
    mp.path = model_path;
    mp.n_ctx = 256;
    mp.n_threads = 2;
    struct tmap_model *m;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_load_to_train(&mp, NULL, &m, &err), TMAP_OK);
    assert_non_null(m->ctx);
    struct tmap_finetune_params p = params(NULL);
    p.model = mp;
    p.val_split = 0.0f;
    size_t rows[] = { 0, 1, 2, 3 };
    p.rows = rows;
    p.n_rows = 4;
    struct idle_check first = { 0 }, second = { 0 };
    assert_int_equal(ft_train_judge(m, pool, &p, NULL, judge_idle, &first, &err), TMAP_OK);
    assert_true(first.ctx_was_released);
    assert_non_null(m->ctx); /* the judge's scoring reopened it */
    assert_true(isfinite(first.loss));
    assert_int_equal(ft_train_judge(m, pool, &p, NULL, judge_idle, &second, &err), TMAP_OK);
    assert_true(second.ctx_was_released);
    assert_true(second.loss == first.loss);
    tmap_model_free(m);
    tmap_pool_free(pool);
}

/* ---- the memory check (train/memory.c) ---------------------------------- */

/* Bytes and count of the file's tensors (a created Llama has optional
 * biases and scales besides the usual ones: see tmap model create). */
static uint64_t all_tensor_bytes(const char *path, int32_t *n_tensors)
{
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(path, gp);
    assert_non_null(g);
    uint64_t bytes = 0;
    *n_tensors = (int32_t)gguf_get_n_tensors(g);
    for (int64_t t = 0; t < gguf_get_n_tensors(g); t++)
        bytes += gguf_get_tensor_size(g, t);
    gguf_free(g);
    return bytes;
}

/* The floor by hand on a created model with grouped-query attention (4
 * heads, 2 of them for keys and values), and the verdict on both sides of
 * it, with the way out the message names. */
static void test_memory_need_and_verdict(void **state)
{
    (void)state;
    char path[600];
    tmp_path(path, sizeof path, "gqa.gguf");
    struct tmap_model_create_params cp = tmap_model_create_default_params();
    cp.n_embd = 64;
    cp.n_layer = 2;
    cp.n_head = 4;
    cp.n_head_kv = 2;
    cp.seed = 9;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_create(path, &cp, &err), TMAP_OK);
    const uint64_t e = 64, kv = 32, v = 32000, layers = 2, f = 4; /* f: bytes of an F32 */
    int32_t n_tensors;
    uint64_t weights = all_tensor_bytes(path, &n_tensors);
    const uint64_t rope_freqs = f * (e / 4 / 2); /* one per rotated pair of a 16-wide head */

    struct ft_memory_need all, top;
    assert_int_equal(ft_memory_need(path, NULL, 512, &all, &err), TMAP_OK);
    assert_int_equal(all.weights, weights);
    assert_int_equal(all.optimiser, 3 * (weights - rope_freqs)); /* all F32; all but rope_freqs train */
    assert_int_equal(all.n_trained, n_tensors - 1);
    assert_int_equal(all.window, 512 * layers * 2 * kv * f + 2 * 512 * v * f);
    assert_int_equal(all.total, all.weights + all.optimiser + all.window);
    assert_int_equal(ft_memory_need(path, "output", 0, &top, &err), TMAP_OK);
    assert_int_equal(top.optimiser, 3 * f * (v * e + e)); /* output.weight and output_norm */
    assert_int_equal(top.n_trained, 2);
    assert_int_equal(top.window, 0);

    /* Enough in memory and swap together passes; a byte less fails. */
    assert_int_equal(ft_memory_verdict(path, NULL, 512, &all, 1, all.total / 2, all.total - all.total / 2, &err),
                     TMAP_OK);
    assert_int_equal(ft_memory_verdict(path, NULL, 512, &all, 1, all.total - 1, 0, &err), TMAP_ERR_NOMEM);
    assert_non_null(strstr(err.message, "gqa.gguf: training it needs at least"));
    assert_non_null(strstr(err.message, "a shorter training window (-c, now 512)")); /* 32,000 logits a token */
    assert_null(strstr(err.message, "ranks on this host"));
    /* Three ranks of a host train a copy each: room for two and a half
     * copies fails, says so, and names the two that fit; room for three
     * passes. */
    assert_int_equal(ft_memory_verdict(path, NULL, 512, &all, 3, 5 * (all.total / 2), 0, &err), TMAP_ERR_NOMEM);
    assert_non_null(strstr(err.message, "each of the 3 ranks on this host trains its own copy at once"));
    assert_non_null(strstr(err.message, "fewer ranks on this host need less: 2 fit (mpirun --map-by ppr:2:node)"));
    assert_int_equal(ft_memory_verdict(path, NULL, 512, &all, 3, 3 * all.total, 0, &err), TMAP_OK);
    /* Where not even one fits, the way out is the single copy's. */
    assert_int_equal(ft_memory_verdict(path, NULL, 512, &all, 3, all.total - 1, 0, &err), TMAP_ERR_NOMEM);
    assert_non_null(strstr(err.message, "a shorter training window (-c, now 512)"));
    assert_int_equal(ft_memory_verdict(path, "output", 0, &top, 1, 1000, 0, &err), TMAP_ERR_NOMEM);
    assert_non_null(strstr(err.message, "of the 2 tensors that train"));
    assert_non_null(strstr(err.message, "fewer tensors to train (--train-layers 'output' now)"));
    assert_int_equal(ft_memory_need(path, NULL, 0, &all, &err), TMAP_OK);
    assert_int_equal(ft_memory_verdict(path, NULL, 0, &all, 1, 1000, 0, &err), TMAP_ERR_NOMEM);
    assert_non_null(strstr(err.message, "--keep-f32 LAST,output"));
    assert_int_equal(ft_memory_need(eval_path, NULL, 256, &all, &err), TMAP_ERR_MODEL);
    assert_non_null(strstr(err.message, "not a readable GGUF file"));
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (!test_begin_group(tmpdir, sizeof tmpdir, "finetune"))
        return -1;
    tmp_path(model_path, sizeof model_path, "base.gguf");
    struct tmap_model_create_params cp = tmap_model_create_default_params();
    cp.n_embd = 32;
    cp.n_layer = 1;
    cp.seed = 5;
    struct tmap_error err = { 0 };
    if (tmap_model_create(model_path, &cp, &err) != TMAP_OK)
        return -1;
    test_gsm8k_slice(eval_path, sizeof eval_path, tmpdir, "gsm8k-test-10.jsonl", "test", 10);
    test_gsm8k_slice(data_path, sizeof data_path, tmpdir, "gsm8k-40.jsonl", "train", 40);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_end_group(NULL, tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_windows_start_at_records),
        cmocka_unit_test(test_loss_falls_and_model_scores),
        cmocka_unit_test(test_resume_continues),
        cmocka_unit_test(test_train_layers),
        cmocka_unit_test(test_train_judge_releases_context),
        cmocka_unit_test(test_memory_need_and_verdict),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
