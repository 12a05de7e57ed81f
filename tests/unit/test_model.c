/*
 * test_model.c - the model layer on a created model: loading and its errors,
 * tokenizing, prompt layout, batched teacher-forced log-probabilities against
 * one-sequence-at-a-time decoding, the context-overflow policy, and
 * deterministic model creation.
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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static int32_t *tokenize(struct tmap_model *m, const char *text, bool bos, int32_t *n)
{
    int32_t *t;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_tokenize(m, text, bos, &t, n, &err), TMAP_OK);
    return t;
}

/* ---- loading ------------------------------------------------------------ */

static void test_info(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 256, 128, 2);
    struct tmap_model_info in;
    tmap_model_get_info(m, &in);
    assert_string_equal(in.arch, "llama");
    assert_int_equal(in.n_vocab, 32000);
    assert_int_equal(in.n_layer, 2);
    assert_int_equal(in.n_embd, 64);
    assert_int_equal(in.n_ctx_train, 2048);
    assert_int_equal(in.n_ctx, 256);
    assert_int_equal(in.n_seq, 2);
    assert_false(in.has_chat_template);
    assert_int_equal(strlen(in.fingerprint), 32);
    assert_true(in.n_params > 32000 * 64);
    /* llama.cpp has no size class for it ("llama ?B (guessed) all F32"):
     * the count stands in, and the doubt stays with the weight type. */
    char expect[64];
    snprintf(expect, sizeof expect, "llama %.1fM all F32 (guessed)", (double)in.n_params / 1e6);
    assert_string_equal(in.description, expect);
    /* 256 of 2,048 trained tokens: nothing to warn of. */
    char line[512] = "";
    assert_false(tmap_model_context_warning(&in, line, sizeof line));
    assert_string_equal(line, "");
    tmap_model_free(m);

    /* Past the training context: loaded and run, with a warning. */
    m = test_load_model(TMAP_TEST_MODEL, 4096, 128, 1);
    tmap_model_get_info(m, &in);
    assert_int_equal(in.n_ctx, 4096);
    assert_true(tmap_model_context_warning(&in, line, sizeof line));
    assert_non_null(strstr(line, "a context of 4096 tokens is beyond the 2048 the model was trained on"));
    assert_true(tmap_model_context_warning(&in, NULL, 0));
    tmap_model_free(m);
    /* A model that records no training context cannot be checked. */
    in.n_ctx_train = 0;
    assert_false(tmap_model_context_warning(&in, NULL, 0));
}

/* Copies src to dst byte for byte, flipping the last byte when flip: the
 * end of a GGUF file is tensor data, so the copy differs in one weight. */
static void copy_model(const char *src, const char *dst, bool flip)
{
    size_t n;
    char *bytes = slurp(src, &n);
    assert_true(n > 0);
    if (flip)
        bytes[n - 1] ^= 0x01;
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(bytes);
}

/* The fingerprint sees every weight, and its cache serves an unchanged file
 * (only: a changed file has another modification time). */
static void test_fingerprint_sees_weights(void **state)
{
    (void)state;
    char a[512], b[512], cache[512];
    snprintf(a, sizeof a, "%s/fp-a.gguf", tmpdir);
    snprintf(b, sizeof b, "%s/fp-b.gguf", tmpdir);
    snprintf(cache, sizeof cache, "%s/fingerprints", tmpdir);
    setenv("TMAP_FINGERPRINT_CACHE", cache, 1);
    copy_model(TMAP_TEST_MODEL, a, false);
    copy_model(TMAP_TEST_MODEL, b, true);
    struct tmap_error err = { 0 };
    char fa[33], fb[33], again[33];
    bool cached = true;
    assert_int_equal(tmap_model_fingerprint(a, fa, &cached, &err), TMAP_OK);
    assert_false(cached);
    assert_int_equal(tmap_model_fingerprint(b, fb, &cached, &err), TMAP_OK);
    assert_string_not_equal(fa, fb);
    assert_int_equal(tmap_model_fingerprint(a, again, &cached, &err), TMAP_OK);
    assert_true(cached);
    assert_string_equal(fa, again);
    /* Rewritten in place with b's bytes: a new modification time, a new hash. */
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    copy_model(TMAP_TEST_MODEL, a, true);
    assert_int_equal(tmap_model_fingerprint(a, again, &cached, &err), TMAP_OK);
    assert_false(cached);
    assert_string_equal(again, fb);
    /* A cache grown past its size is compacted: the newest 256 keys stay,
     * the new line among them, and it still serves. */
    FILE *f = fopen(cache, "a");
    assert_non_null(f);
    for (int i = 0; i < 2000; i++)
        fprintf(f, "1 %d 100 5.000000000 %032x\n", i, i);
    fprintf(f, "1 1990 100 5.000000000 %032x\n", 77); /* a key again: its newest line only */
    fclose(f);
    nanosleep(&pause, NULL);
    copy_model(TMAP_TEST_MODEL, a, false);
    assert_int_equal(tmap_model_fingerprint(a, again, &cached, &err), TMAP_OK);
    assert_false(cached);
    size_t n_lines = 0, n_old = 0, n_again = 0;
    char line[256];
    f = fopen(cache, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        n_lines++;
        n_old += strncmp(line, "1 7 100 ", 8) == 0;
        if (strncmp(line, "1 1990 100 ", 11) == 0) {
            n_again++;
            assert_non_null(strstr(line, "0000004d\n"));
        }
    }
    fclose(f);
    assert_int_equal(n_lines, 256);
    assert_int_equal(n_old, 0); /* older than the newest 256 keys */
    assert_int_equal(n_again, 1);
    assert_int_equal(tmap_model_fingerprint(a, again, &cached, &err), TMAP_OK);
    assert_true(cached);
    assert_string_equal(again, fa);
    /* Off: always hashed. */
    setenv("TMAP_FINGERPRINT_CACHE", "off", 1);
    assert_int_equal(tmap_model_fingerprint(b, again, &cached, &err), TMAP_OK);
    assert_false(cached);
    assert_string_equal(again, fb);
    unsetenv("TMAP_FINGERPRINT_CACHE");
    /* Not GGUF: the loader's message. */
    snprintf(b, sizeof b, "%s/fp-not.gguf", tmpdir);
    test_write_file(b, "not a model\n");
    assert_int_equal(tmap_model_fingerprint(b, again, NULL, &err), TMAP_ERR_MODEL);
    assert_non_null(strstr(err.message, "fp-not.gguf: not a GGUF file"));
}

static void test_load_errors(void **state)
{
    (void)state;
    struct tmap_model_params p = tmap_model_default_params();
    struct tmap_error err = { 0 };
    struct tmap_model *m = NULL;

    p.path = "/nonexistent/model.gguf";
    assert_int_equal(tmap_model_load(&p, &m, &err), TMAP_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/model.gguf: cannot open: No such file"));
    assert_null(m);

    char path[512];
    snprintf(path, sizeof path, "%s/not-a-model.gguf", tmpdir);
    test_write_file(path, "{\"question\": \"this is JSON, not GGUF\"}\n");
    p.path = path;
    assert_int_equal(tmap_model_load(&p, &m, &err), TMAP_ERR_MODEL);
    assert_non_null(strstr(err.message, "not a GGUF file"));

    p.path = TMAP_TEST_MODEL;
    p.n_seq = 0;
    assert_int_equal(tmap_model_load(&p, &m, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "parallel sequences 0"));

    p = tmap_model_default_params();
    assert_int_equal(tmap_model_load(&p, &m, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "no model given"));
}

/* ---- text --------------------------------------------------------------- */

static void test_tokenize(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 128, 64, 1);
    int32_t n_bos, n_plain;
    int32_t *with_bos = tokenize(m, "Natalia sold 48 clips.", true, &n_bos);
    int32_t *plain = tokenize(m, "Natalia sold 48 clips.", false, &n_plain);
    assert_int_equal(with_bos[0], 1); /* the Llama-2 BOS */
    assert_int_equal(n_bos, n_plain + 1);
    assert_memory_equal(with_bos + 1, plain, (size_t)n_plain * sizeof *plain);
    free(with_bos);
    free(plain);

    /* Data text that looks like a control token stays text. */
    int32_t n;
    int32_t *t = tokenize(m, "</s>", false, &n);
    assert_true(n > 1);
    for (int32_t i = 0; i < n; i++)
        assert_int_not_equal(t[i], 2); /* EOS */
    free(t);
    tmap_model_free(m);
}

static void test_format_prompt(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 128, 64, 1);
    struct tmap_turn turns[] = { { "user", "What is 2+2?" } };
    struct tmap_sample s = { .id = "1", .prompt = "What is 2+2?", .response = "4",
                             .turns = turns, .n_turns = 1, .answer_index = -1 };
    char *out;
    bool fell_back;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_format_prompt(m, &s, TMAP_TEMPLATE_PLAIN, &out, &fell_back, &err), TMAP_OK);
    assert_string_equal(out, "Query: What is 2+2?\nAnswer:");
    assert_false(fell_back);
    free(out);
    assert_int_equal(tmap_model_format_prompt(m, &s, TMAP_TEMPLATE_CHAT, &out, &fell_back, &err), TMAP_OK);
    assert_string_equal(out, "Query: What is 2+2?\nAnswer:");
    assert_true(fell_back); /* the test model has no chat template */
    free(out);
    tmap_model_free(m);

    /* A model made with a ChatML template lays turns out as ChatML. */
    char path[512];
    snprintf(path, sizeof path, "%s/chatml.gguf", tmpdir);
    struct tmap_model_create_params cp = tmap_model_create_default_params();
    cp.n_embd = 32;
    cp.n_layer = 1;
    cp.chat_template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    assert_int_equal(tmap_model_create(path, &cp, &err), TMAP_OK);
    struct tmap_model_params p = tmap_model_default_params();
    p.path = path;
    p.n_ctx = 64;
    p.n_seq = 1;
    assert_int_equal(tmap_model_load(&p, &m, &err), TMAP_OK);
    assert_int_equal(tmap_model_format_prompt(m, &s, TMAP_TEMPLATE_CHAT, &out, &fell_back, &err), TMAP_OK);
    assert_false(fell_back);
    assert_string_equal(out, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    tmap_model_free(m);
}

/* ---- log-probabilities -------------------------------------------------- */

static const char *const texts[][2] = {
    { "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
      "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n#### 72" },
    { "Weng earns $12 an hour for babysitting.", "Weng earns 12/60 = $0.2 per minute.\n#### 10" },
    { "Hi", "Hello there, how can I help you today?" },
    { "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she "
      "needs. Her parents decided to give her $15 for that purpose, and her grandparents twice as much "
      "as her parents. How much more money does Betty need to buy the wallet?",
      "In the beginning, Betty has only 100 / 2 = $50.\nBetty's grandparents gave her 15 * 2 = $30.\n"
      "This means, Betty needs 100 - 50 - 30 - 15 = $5 more.\n#### 5" },
    { "Q", "A" },
    { "Julie is reading a 120-page book.", "She read 12 x 2 = 24 pages today.\n#### 42" },
    { "James writes a 3-page letter to 2 different friends twice a week.", "#### 624" },
    { "Albert is wondering how much pizza he can eat in one day.", "He eats 2 * 16 + 2 * 8 = 48 slices.\n#### 48" },
};
#define N_TEXTS (sizeof texts / sizeof texts[0])

struct tokenized {
    int32_t *prompt[N_TEXTS], *response[N_TEXTS];
    struct tmap_logprob_request req[N_TEXTS];
};

static void tokenize_texts(struct tmap_model *m, struct tokenized *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < N_TEXTS; i++) {
        t->prompt[i] = tokenize(m, texts[i][0], true, &t->req[i].n_prompt);
        t->response[i] = tokenize(m, texts[i][1], false, &t->req[i].n_response);
        t->req[i].prompt = t->prompt[i];
        t->req[i].response = t->response[i];
    }
}

static void free_texts(struct tokenized *t)
{
    for (size_t i = 0; i < N_TEXTS; i++) {
        free(t->prompt[i]);
        free(t->response[i]);
    }
}

static void test_batched_equals_sequential(void **state)
{
    (void)state;
    /* Batched: 4 sequences side by side, 48-token decode calls, so samples
     * share calls and long ones span several. Reference: one sample at a
     * time, each in a single call. */
    struct tmap_model *batched = test_load_model(TMAP_TEST_MODEL, 256, 48, 4);
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 256, 512, 1);
    struct tokenized t;
    tokenize_texts(batched, &t);

    struct tmap_logprob_result rb[N_TEXTS], rs[N_TEXTS];
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_logprob(batched, t.req, N_TEXTS, rb, &err), TMAP_OK);
    for (size_t i = 0; i < N_TEXTS; i++)
        assert_int_equal(tmap_model_logprob(single, &t.req[i], 1, &rs[i], &err), TMAP_OK);

    int64_t total = 0, alone_calls = 0;
    for (size_t i = 0; i < N_TEXTS; i++) {
        assert_int_equal(rb[i].fit, TMAP_FIT_WHOLE);
        assert_int_equal(rb[i].n_tokens, t.req[i].n_response);
        assert_int_equal(rs[i].n_tokens, t.req[i].n_response);
        assert_true(rb[i].sum_logprob < 0.0 && isfinite(rb[i].sum_logprob));
        /* 1e-4 per token, as docs/design.md asks of every batched path */
        double tol = 1e-4 * rb[i].n_tokens;
        if (fabs(rb[i].sum_logprob - rs[i].sum_logprob) > tol)
            fail_msg("sample %zu: batched %.8f vs single %.8f", i, rb[i].sum_logprob, rs[i].sum_logprob);
        int64_t len = t.req[i].n_prompt + t.req[i].n_response - 1;
        total += len;
        alone_calls += (len + 47) / 48;
    }

    /* Every token but each sample's last is decoded exactly once, and
     * sharing calls between samples beats one sample per 48-token call. */
    struct tmap_model_counters cb, cs;
    tmap_model_get_counters(batched, &cb);
    tmap_model_get_counters(single, &cs);
    assert_int_equal(cb.n_tokens_decoded, total);
    assert_int_equal(cs.n_tokens_decoded, total);
    assert_int_equal(cs.n_decode_calls, N_TEXTS);
    assert_true(cb.n_decode_calls >= (uint64_t)(total + 47) / 48);
    assert_true(cb.n_decode_calls < (uint64_t)alone_calls);

    free_texts(&t);
    tmap_model_free(batched);
    tmap_model_free(single);
}

static void test_random_model_is_near_uniform(void **state)
{
    (void)state;
    /* A random-init model with std 0.02 barely prefers any token: the mean
     * loss must sit close to log(32000) = 10.37 nats. Catches a wrong
     * softmax or a wrong target token. */
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 256, 256, 2);
    struct tokenized t;
    tokenize_texts(m, &t);
    struct tmap_logprob_result r[N_TEXTS];
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_logprob(m, t.req, N_TEXTS, r, &err), TMAP_OK);
    double sum = 0;
    int64_t n = 0;
    for (size_t i = 0; i < N_TEXTS; i++) {
        sum -= r[i].sum_logprob;
        n += r[i].n_tokens;
    }
    /* Pooled over ~150 tokens: one token's loss varies by ~0.16 nats here. */
    double loss = sum / (double)n;
    if (fabs(loss - log(32000.0)) >= 0.05)
        fail_msg("mean loss %.4f nats over %lld tokens, log(32000) = %.4f", loss, (long long)n, log(32000.0));
    free_texts(&t);
    tmap_model_free(m);
}

static void test_embeddings(void **state)
{
    (void)state;
    struct tmap_model *batched = test_load_model(TMAP_TEST_MODEL, 256, 48, 4);
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 256, 512, 1);
    struct tokenized t, plain;
    tokenize_texts(batched, &t);
    tokenize_texts(batched, &plain);
    int32_t dim = 64;
    float *eb = calloc(N_TEXTS * (size_t)dim, sizeof *eb), *es = calloc(N_TEXTS * (size_t)dim, sizeof *es);
    for (size_t i = 0; i < N_TEXTS; i++)
        t.req[i].embedding = eb + i * (size_t)dim;

    struct tmap_logprob_result rb[N_TEXTS], rs[N_TEXTS], rp[N_TEXTS];
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_logprob(batched, t.req, N_TEXTS, rb, &err), TMAP_OK);
    assert_int_equal(tmap_model_logprob(batched, plain.req, N_TEXTS, rp, &err), TMAP_OK);
    for (size_t i = 0; i < N_TEXTS; i++) {
        t.req[i].embedding = es + i * (size_t)dim;
        assert_int_equal(tmap_model_logprob(single, &t.req[i], 1, &rs[i], &err), TMAP_OK);
    }
    for (size_t i = 0; i < N_TEXTS; i++) {
        double norm = 0, cos = 0;
        for (int32_t d = 0; d < dim; d++) {
            norm += (double)eb[i * dim + d] * eb[i * dim + d];
            cos += (double)eb[i * dim + d] * es[i * dim + d];
        }
        assert_true(fabs(norm - 1.0) < 1e-5); /* unit length */
        /* Float rounding differs with the batch layout; a short response
         * pools few states, so compare directions, not components. */
        if (cos < 1.0 - 1e-6)
            fail_msg("sample %zu: batched and single embeddings have cosine %.9f", i, cos);
        /* Reading hidden states must not change the scores of the same pass. */
        assert_int_equal(rb[i].n_tokens, rp[i].n_tokens);
        assert_true(fabs(rb[i].sum_logprob - rp[i].sum_logprob) < 1e-4 * rb[i].n_tokens);
    }
    /* Different texts, different directions. */
    double dot = 0;
    for (int32_t d = 0; d < dim; d++)
        dot += (double)eb[d] * eb[2 * dim + d];
    assert_true(dot < 0.9999);
    free(eb);
    free(es);
    free_texts(&t);
    free_texts(&plain);
    tmap_model_free(batched);
    tmap_model_free(single);
}

/* The eval callback comes and goes with capture (tmap_model_prepare_capture):
 * each switch recreates the context, and no result may change with it. */
static void test_capture_switches_context(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 256, 48, 4);
    struct tokenized t, plain;
    tokenize_texts(m, &t);
    tokenize_texts(m, &plain);
    int32_t dim = 64;
    float *e1 = calloc(N_TEXTS * (size_t)dim, sizeof *e1), *e2 = calloc(N_TEXTS * (size_t)dim, sizeof *e2);
    struct tmap_logprob_result r0[N_TEXTS], r[N_TEXTS];
    struct tmap_error err = { 0 };
    struct tmap_model_counters c;

    assert_int_equal(tmap_model_logprob(m, plain.req, N_TEXTS, r0, &err), TMAP_OK);
    tmap_model_get_counters(m, &c);
    assert_int_equal(c.n_context_opens, 1); /* plain scoring keeps the load's context */

    for (size_t i = 0; i < N_TEXTS; i++)
        t.req[i].embedding = e1 + i * (size_t)dim;
    assert_int_equal(tmap_model_logprob(m, t.req, N_TEXTS, r, &err), TMAP_OK);
    tmap_model_get_counters(m, &c);
    assert_int_equal(c.n_context_opens, 2); /* capture gains the callback */

    /* A few plain runs keep it (scoring alternates kinds of pass)... */
    uint64_t calls_at_capture = c.n_decode_calls;
    assert_int_equal(tmap_model_logprob(m, plain.req, N_TEXTS, r, &err), TMAP_OK);
    tmap_model_get_counters(m, &c);
    assert_int_equal(c.n_context_opens, 2);
    for (size_t i = 0; i < N_TEXTS; i++)
        assert_true(fabs(r[i].sum_logprob - r0[i].sum_logprob) < 1e-4 * r0[i].n_tokens);

    /* ... until TMAP_CALLBACK_SHED_CALLS calls have captured nothing. */
    while (c.n_decode_calls - calls_at_capture < TMAP_CALLBACK_SHED_CALLS) {
        assert_int_equal(tmap_model_logprob(m, plain.req, N_TEXTS, r, &err), TMAP_OK);
        tmap_model_get_counters(m, &c);
        assert_int_equal(c.n_context_opens, 2);
    }
    assert_int_equal(tmap_model_logprob(m, plain.req, N_TEXTS, r, &err), TMAP_OK);
    tmap_model_get_counters(m, &c);
    assert_int_equal(c.n_context_opens, 3);
    for (size_t i = 0; i < N_TEXTS; i++)
        assert_true(fabs(r[i].sum_logprob - r0[i].sum_logprob) < 1e-4 * r0[i].n_tokens);

    /* Capturing again gets the same embeddings as the first time. */
    for (size_t i = 0; i < N_TEXTS; i++)
        t.req[i].embedding = e2 + i * (size_t)dim;
    assert_int_equal(tmap_model_logprob(m, t.req, N_TEXTS, r, &err), TMAP_OK);
    tmap_model_get_counters(m, &c);
    assert_int_equal(c.n_context_opens, 4);
    for (size_t i = 0; i < N_TEXTS * (size_t)dim; i++)
        assert_true(fabsf(e1[i] - e2[i]) < 1e-6f);

    free(e1);
    free(e2);
    free_texts(&t);
    free_texts(&plain);
    tmap_model_free(m);
}

/* n_lanes 2 (tmap.h): two contexts taking turns give what one gives, to
 * the rounding of another batch layout, and both do work. */
static void test_two_lanes(void **state)
{
    (void)state;
    struct tmap_model *one = test_load_model(TMAP_TEST_MODEL, 256, 48, 4);
    struct tmap_model_params p = tmap_model_default_params();
    p.path = TMAP_TEST_MODEL;
    p.n_ctx = 256;
    p.n_batch = 48;
    p.n_seq = 4;
    p.n_threads = 2;
    p.n_lanes = 2;
    struct tmap_model *two = NULL;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_load(&p, &two, &err), TMAP_OK);
    struct tmap_model_counters c0, c1;
    tmap_model_get_counters(two, &c0);
    assert_int_equal(c0.n_context_opens, 2);

    struct tokenized t1, t2;
    tokenize_texts(one, &t1);
    tokenize_texts(one, &t2);
    int32_t dim = 64;
    float *e1 = calloc(N_TEXTS * (size_t)dim, sizeof *e1), *e2 = calloc(N_TEXTS * (size_t)dim, sizeof *e2);
    for (size_t i = 0; i < N_TEXTS; i++) {
        t1.req[i].embedding = e1 + i * (size_t)dim;
        t2.req[i].embedding = e2 + i * (size_t)dim;
    }
    struct tmap_logprob_result r1[N_TEXTS], r2[N_TEXTS];
    tmap_model_get_counters(one, &c1);
    uint64_t one_before = c1.n_tokens_decoded;
    assert_int_equal(tmap_model_logprob(one, t1.req, N_TEXTS, r1, &err), TMAP_OK);
    assert_int_equal(tmap_model_logprob(two, t2.req, N_TEXTS, r2, &err), TMAP_OK);
    for (size_t i = 0; i < N_TEXTS; i++) {
        assert_int_equal(r1[i].fit, r2[i].fit);
        assert_int_equal(r1[i].n_tokens, r2[i].n_tokens);
        if (fabs(r1[i].sum_logprob - r2[i].sum_logprob) > 1e-4 * r1[i].n_tokens)
            fail_msg("sample %zu: one lane %.8f vs two %.8f", i, r1[i].sum_logprob, r2[i].sum_logprob);
        double cos = 0;
        for (int32_t d = 0; d < dim; d++)
            cos += (double)e1[i * dim + d] * e2[i * dim + d];
        if (cos < 1.0 - 1e-6)
            fail_msg("sample %zu: embeddings of one and two lanes have cosine %.9f", i, cos);
    }
    /* The same tokens decoded, and the second lane took its share. */
    tmap_model_get_counters(one, &c1);
    struct tmap_model_counters c2;
    tmap_model_get_counters(two, &c2);
    assert_int_equal(c2.n_tokens_decoded - c0.n_tokens_decoded, c1.n_tokens_decoded - one_before);
    assert_true(two->twin != NULL && two->twin->counters.n_decode_calls > 0);
    assert_true(two->counters.n_decode_calls > 0);

    /* A shared prefix: each lane decodes it once. */
    int32_t n_prefix;
    int32_t *prefix = tokenize(one, "Query: What is 2+3?\nAnswer: 2+3 = 5\n#### 5\n\n", true, &n_prefix);
    for (size_t i = 0; i < N_TEXTS; i++) {
        t1.req[i].embedding = t2.req[i].embedding = NULL;
        t1.req[i].prompt = t2.req[i].prompt = t1.prompt[i] + 1; /* continues the prefix: no BOS */
        t1.req[i].n_prompt = t2.req[i].n_prompt = t1.req[i].n_prompt - 1;
    }
    tmap_model_get_counters(two, &c0);
    tmap_model_get_counters(one, &c1);
    assert_int_equal(tmap_model_logprob_shared(one, prefix, n_prefix, t1.req, N_TEXTS, r1, &err), TMAP_OK);
    assert_int_equal(tmap_model_logprob_shared(two, prefix, n_prefix, t2.req, N_TEXTS, r2, &err), TMAP_OK);
    struct tmap_model_counters c3;
    tmap_model_get_counters(one, &c3);
    tmap_model_get_counters(two, &c2);
    assert_int_equal(c2.n_tokens_decoded - c0.n_tokens_decoded,
                     c3.n_tokens_decoded - c1.n_tokens_decoded + (uint64_t)n_prefix);
    for (size_t i = 0; i < N_TEXTS; i++) {
        assert_int_equal(r1[i].n_tokens, r2[i].n_tokens);
        if (fabs(r1[i].sum_logprob - r2[i].sum_logprob) > 2e-4 * r1[i].n_tokens)
            fail_msg("query %zu: one lane %.8f vs two %.8f after a prefix", i, r1[i].sum_logprob,
                     r2[i].sum_logprob);
    }

    /* No third lane. */
    struct tmap_model *bad = NULL;
    p.n_lanes = 3;
    assert_int_equal(tmap_model_load(&p, &bad, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "lanes 3"));

    free(prefix);
    free(e1);
    free(e2);
    free_texts(&t1);
    free_texts(&t2);
    tmap_model_free(one);
    tmap_model_free(two);
}

static void test_choices(void **state)
{
    (void)state;
    /* The next-token log-probabilities of a few candidate tokens must equal
     * teacher-forced scoring of each candidate as a one-token response. */
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 256, 64, 3);
    int32_t n;
    int32_t *prompt = tokenize(m, "Rate this answer from 1 to 6. Score:", true, &n);
    const int32_t choices[] = { 29896, 29906, 29941, 29946, 29945, 29953 };
    double lp[6];
    struct tmap_logprob_request req[7] = {
        { .prompt = prompt, .n_prompt = n, .choices = choices, .n_choices = 6, .choice_logprobs = lp },
    };
    for (int c = 0; c < 6; c++)
        req[1 + c] = (struct tmap_logprob_request){ .prompt = prompt, .n_prompt = n,
                                                     .response = &choices[c], .n_response = 1 };
    struct tmap_logprob_result r[7];
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_logprob(m, req, 7, r, &err), TMAP_OK);
    assert_int_equal(r[0].fit, TMAP_FIT_WHOLE);
    for (int c = 0; c < 6; c++)
        if (fabs(lp[c] - r[1 + c].sum_logprob) > 1e-4)
            fail_msg("choice %d: %.6f vs teacher-forced %.6f", c, lp[c], r[1 + c].sum_logprob);
    free(prompt);
    tmap_model_free(m);
}

static void test_shared_prefix_equals_naive(void **state)
{
    (void)state;
    /* Few-shot layout: a demonstration block shared by every query. */
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 512, 64, 4);
    int32_t n_prefix;
    int32_t *prefix = tokenize(m, "Query: What is 2+3?\nAnswer: 2+3 = 5\n#### 5\n\n"
                                  "Query: What is 10-4?\nAnswer: 10-4 = 6\n#### 6\n\n", true, &n_prefix);
    struct tokenized t;
    tokenize_texts(m, &t);
    struct tmap_logprob_request shared[N_TEXTS], naive[N_TEXTS];
    int32_t *joined[N_TEXTS];
    double *lp_shared[N_TEXTS], *lp_naive[N_TEXTS]; /* per-token values, both paths */
    for (size_t i = 0; i < N_TEXTS; i++) {
        /* the query continues the prefix: drop its own BOS */
        shared[i] = t.req[i];
        shared[i].prompt = t.prompt[i] + 1;
        shared[i].n_prompt = t.req[i].n_prompt - 1;
        joined[i] = malloc((size_t)(n_prefix + shared[i].n_prompt) * sizeof(int32_t));
        memcpy(joined[i], prefix, (size_t)n_prefix * sizeof(int32_t));
        memcpy(joined[i] + n_prefix, shared[i].prompt, (size_t)shared[i].n_prompt * sizeof(int32_t));
        naive[i] = t.req[i];
        naive[i].prompt = joined[i];
        naive[i].n_prompt = n_prefix + shared[i].n_prompt;
        lp_shared[i] = calloc((size_t)t.req[i].n_response, sizeof(double));
        lp_naive[i] = calloc((size_t)t.req[i].n_response, sizeof(double));
        shared[i].token_logprobs = lp_shared[i];
        naive[i].token_logprobs = lp_naive[i];
    }
    struct tmap_logprob_result rs[N_TEXTS], rn[N_TEXTS];
    struct tmap_error err = { 0 };
    struct tmap_model_counters c0, c1, c2;
    tmap_model_get_counters(m, &c0);
    assert_int_equal(tmap_model_logprob_shared(m, prefix, n_prefix, shared, N_TEXTS, rs, &err), TMAP_OK);
    tmap_model_get_counters(m, &c1);
    assert_int_equal(tmap_model_logprob(m, naive, N_TEXTS, rn, &err), TMAP_OK);
    tmap_model_get_counters(m, &c2);
    for (size_t i = 0; i < N_TEXTS; i++) {
        assert_int_equal(rs[i].fit, TMAP_FIT_WHOLE);
        assert_int_equal(rs[i].n_tokens, rn[i].n_tokens);
        /* The KV cache is F16 (relative rounding 5e-4) and the two runs
         * batch the prefix differently: up to ~1e-4 nats a token apart on
         * this model (measured: 5.5e-4 over 5 tokens). A wrong position or
         * mask moves a token by nats. */
        if (fabs(rs[i].sum_logprob - rn[i].sum_logprob) > 2e-4 * rs[i].n_tokens)
            fail_msg("query %zu: shared %.8f vs naive %.8f", i, rs[i].sum_logprob, rn[i].sum_logprob);
        double sum = 0.0;
        for (int32_t j = 0; j < rs[i].n_tokens; j++) {
            sum += lp_shared[i][j];
            if (fabs(lp_shared[i][j] - lp_naive[i][j]) > 1e-3)
                fail_msg("query %zu token %d: shared %.6f vs naive %.6f", i, j, lp_shared[i][j], lp_naive[i][j]);
        }
        assert_true(fabs(sum - rs[i].sum_logprob) < 1e-9);
    }
    /* The prefix was decoded once, not once per query. */
    uint64_t shared_tokens = c1.n_tokens_decoded - c0.n_tokens_decoded;
    uint64_t naive_tokens = c2.n_tokens_decoded - c1.n_tokens_decoded;
    assert_int_equal(naive_tokens - shared_tokens, (uint64_t)n_prefix * (N_TEXTS - 1));

    /* A query that does not fit after the prefix is skipped, never cut. */
    struct tmap_model *small = test_load_model(TMAP_TEST_MODEL, n_prefix + 8, 64, 2);
    assert_int_equal(tmap_model_logprob_shared(small, prefix, n_prefix, shared, 1, rs, &err), TMAP_OK);
    assert_int_equal(rs[0].fit, TMAP_FIT_SKIPPED);
    tmap_model_free(small);
    for (size_t i = 0; i < N_TEXTS; i++) {
        free(joined[i]);
        free(lp_shared[i]);
        free(lp_naive[i]);
    }
    free(prefix);
    free_texts(&t);
    tmap_model_free(m);
}

static void test_overflow_policy(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 32, 64, 2);
    int32_t prompt[40], response[10], long_response[40];
    for (int i = 0; i < 40; i++)
        prompt[i] = i == 0 ? 1 : 100 + i;
    for (int i = 0; i < 10; i++)
        response[i] = 500 + i;
    for (int i = 0; i < 40; i++)
        long_response[i] = 700 + i;
    /* The truncated prompt written out by hand: BOS, then the last 21. */
    int32_t kept[22];
    kept[0] = 1;
    memcpy(kept + 1, prompt + 19, 21 * sizeof(int32_t));

    /* Per-token values of the truncated request and of its hand-made twin:
     * token j of the response lands in slot j whatever was dropped. */
    double lp_cut[10], lp_kept[10];
    struct tmap_logprob_request req[] = {
        { .prompt = prompt, .n_prompt = 40, .response = response, .n_response = 10, .token_logprobs = lp_cut },
        { .prompt = prompt, .n_prompt = 40, .response = long_response, .n_response = 40 },
        { .prompt = kept, .n_prompt = 22, .response = response, .n_response = 10, .token_logprobs = lp_kept },
        { .prompt = prompt, .n_prompt = 5, .response = response, .n_response = 10 },
    };
    struct tmap_logprob_result r[4];
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_logprob(m, req, 4, r, &err), TMAP_OK);

    assert_int_equal(r[0].fit, TMAP_FIT_TRUNCATED);
    assert_int_equal(r[0].n_prompt_dropped, 40 + 10 - 32);
    assert_int_equal(r[0].n_tokens, 10);
    assert_true(fabs(r[0].sum_logprob - r[2].sum_logprob) < 1e-4 * 10);
    assert_int_equal(r[2].fit, TMAP_FIT_WHOLE);
    double sum = 0.0;
    for (int j = 0; j < 10; j++) {
        sum += lp_cut[j];
        if (fabs(lp_cut[j] - lp_kept[j]) > 1e-3)
            fail_msg("response token %d: %.6f truncated vs %.6f by hand", j, lp_cut[j], lp_kept[j]);
    }
    assert_true(fabs(sum - r[0].sum_logprob) < 1e-9);

    assert_int_equal(r[1].fit, TMAP_FIT_SKIPPED); /* the response alone overflows */
    assert_int_equal(r[1].n_tokens, 0);
    assert_true(r[1].sum_logprob == 0.0);

    assert_int_equal(r[3].fit, TMAP_FIT_WHOLE);
    assert_int_equal(r[3].n_tokens, 10);
    tmap_model_free(m);
}

/* A call whose last micro-batch holds one token gets a companion token in
 * a sequence of its own (tmap_model_decode). Here the cache is full without
 * it: 256 cells, and a multiple-choice request whose 256 prompt tokens are
 * all decoded, in calls of 255 and 1. The call with the companion finds no
 * cell for it and must be made again as it was, not fail; the values are
 * those of a single call of 256. */
static void test_companion_without_room(void **state)
{
    (void)state;
    int32_t prompt[256], choices[2] = { 900, 901 };
    for (int i = 0; i < 256; i++)
        prompt[i] = i == 0 ? 1 : 300 + i;
    double lp[2][2];
    for (int k = 0; k < 2; k++) {
        int32_t n_batch = k == 0 ? 255 : 256;
        struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 256, n_batch, 1);
        struct tmap_logprob_request req = { .prompt = prompt, .n_prompt = 256, .choices = choices, .n_choices = 2,
                                            .choice_logprobs = lp[k] };
        struct tmap_logprob_result r;
        struct tmap_error err = { 0 };
        struct tmap_model_counters c;
        if (tmap_model_logprob(m, &req, 1, &r, &err))
            fail_msg("n_batch %d: %s", n_batch, err.message);
        tmap_model_get_counters(m, &c);
        assert_int_equal(c.n_decode_calls, k == 0 ? 2 : 1);
        assert_int_equal(c.n_tokens_decoded, 256);
        assert_int_equal(r.fit, TMAP_FIT_WHOLE);
        tmap_model_free(m);
    }
    for (int c = 0; c < 2; c++)
        if (!(isfinite(lp[0][c]) && fabs(lp[0][c] - lp[1][c]) < 1e-3))
            fail_msg("choice %d: %.6f in two calls, %.6f in one", c, lp[0][c], lp[1][c]);
}

/* ---- creation ----------------------------------------------------------- */

static void test_create_deterministic(void **state)
{
    (void)state;
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/a.gguf", tmpdir);
    snprintf(b, sizeof b, "%s/b.gguf", tmpdir);
    snprintf(c, sizeof c, "%s/c.gguf", tmpdir);
    struct tmap_model_create_params p = tmap_model_create_default_params();
    p.n_embd = 32;
    p.n_layer = 1;
    p.seed = 123;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_create(a, &p, &err), TMAP_OK);
    assert_int_equal(tmap_model_create(b, &p, &err), TMAP_OK);
    p.seed = 124;
    assert_int_equal(tmap_model_create(c, &p, &err), TMAP_OK);

    size_t na, nb, nc;
    char *da = slurp(a, &na), *db = slurp(b, &nb), *dc = slurp(c, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    assert_int_equal(na, nc);
    assert_true(memcmp(da, dc, na) != 0);
    free(da);
    free(db);
    free(dc);
}

static void test_create_errors(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
    struct tmap_model_create_params p = tmap_model_create_default_params();
    struct tmap_error err = { 0 };

    p.n_head = 5;
    p.n_head_kv = 5;
    assert_int_equal(tmap_model_create(path, &p, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "n_embd=64 is not a multiple of n_head=5"));

    p = tmap_model_create_default_params();
    p.vocab_path = "/nonexistent/vocab.gguf";
    assert_int_equal(tmap_model_create(path, &p, &err), TMAP_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/vocab.gguf: cannot read the vocabulary GGUF"));

    p = tmap_model_create_default_params();
    assert_int_equal(tmap_model_create("/nonexistent/dir/m.gguf", &p, &err), TMAP_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/dir/m.gguf: cannot write"));
    assert_int_equal(access(path, F_OK), -1);
}

/* A SentencePiece .vocab (spm_train's) is a tokenizer: the model made with
 * the shipped GSM8K vocabulary tokenizes as spm_encode does (ids from
 * `spm_encode --output_format=id` on the .model trained with it), and the
 * training record says the model knows nothing. */
static void test_create_with_sentencepiece_vocab(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/spm.gguf", tmpdir);
    struct tmap_model_create_params p = tmap_model_create_default_params();
    p.n_layer = 1;
    p.vocab_path = TMAP_SOURCE_DIR "/models/gsm8k-2k.vocab";
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_create(path, &p, &err), TMAP_OK);
    struct tmap_model *m = test_load_model(path, 256, 256, 1);
    struct tmap_model_info info;
    tmap_model_get_info(m, &info);
    assert_int_equal(info.n_vocab, 2048);
    assert_string_equal(info.trained_on, "nothing: random init (tmap model create)");
    assert_true(isnan(info.eval_response_loss));
    int32_t *tok, n;
    assert_int_equal(tmap_model_tokenize(m, "Natalia sold 48/2 = <<48/2=24>>24 clips in May.", false, &tok, &n, &err),
                     TMAP_OK);
    const int32_t want[] = { 625, 290, 284, 745, 651, 1940, 1969, 1975, 1981, 1958, 281, 291, 1969, 1975,
                             1981, 1958, 1959, 1958, 1969, 277, 1958, 1969, 547, 1137, 302, 374, 308, 1965 };
    assert_int_equal(n, sizeof want / sizeof want[0]);
    assert_memory_equal(tok, want, sizeof want);
    free(tok);
    tmap_model_free(m);
}

/* Bad SentencePiece vocabularies name the file and line. */
static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_bad_sentencepiece_vocab(void **state)
{
    (void)state;
    char vocab[512], out[512];
    snprintf(vocab, sizeof vocab, "%s/bad.vocab", tmpdir);
    snprintf(out, sizeof out, "%s/bad-spm.gguf", tmpdir);
    struct tmap_model_create_params p = tmap_model_create_default_params();
    p.vocab_path = vocab;
    struct tmap_error err = { 0 };
    write_text(vocab, "<unk>\t0\n<s>\t0\n</s>\t0\n\u2581the\tnot-a-number\n");
    assert_int_equal(tmap_model_create(out, &p, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "bad.vocab:4: piece"));
    write_text(vocab, "<unk>\t0\n<s>\t0\nno tab here\n");
    assert_int_equal(tmap_model_create(out, &p, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "bad.vocab:3: not a SentencePiece vocabulary line"));
    write_text(vocab, "<unk>\t0\n<s>\t0\n</s>\t0\na\t-1\n");
    assert_int_equal(tmap_model_create(out, &p, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "has 0 of the 256 byte pieces"));
    write_text(vocab, "<s>\t0\n</s>\t0\n");
    assert_int_equal(tmap_model_create(out, &p, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "needs the pieces <unk>, <s> and </s>"));
    write_text(vocab, "");
    assert_int_equal(tmap_model_create(out, &p, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "empty vocabulary"));
    assert_int_equal(access(out, F_OK), -1);
}

/* tmap model quantize: another weight type, the same metadata and a loss
 * that barely moves at q8_0; an unknown type is named. */
static void test_quantize(void **state)
{
    (void)state;
    char f32[512], q8[512];
    snprintf(f32, sizeof f32, "%s/q-in.gguf", tmpdir);
    snprintf(q8, sizeof q8, "%s/q8.gguf", tmpdir);
    struct tmap_model_create_params cp = tmap_model_create_default_params();
    cp.n_layer = 1;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_create(f32, &cp, &err), TMAP_OK);
    struct tmap_model_quantize_params qp = tmap_model_quantize_default_params();
    qp.type = "nosuch";
    assert_int_equal(tmap_model_quantize(f32, q8, &qp, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "--type 'nosuch'"));
    qp.type = "q8_0";
    assert_int_equal(tmap_model_quantize(f32, q8, &qp, &err), TMAP_OK);
    struct stat a, b;
    assert_int_equal(stat(f32, &a), 0);
    assert_int_equal(stat(q8, &b), 0);
    assert_true(b.st_size * 3 < a.st_size); /* 8.5 bits a weight instead of 32 */
    struct tmap_model *m = test_load_model(q8, 256, 256, 1);
    struct tmap_model_info info;
    tmap_model_get_info(m, &info);
    assert_int_equal(info.n_vocab, 32000);
    assert_non_null(strstr(info.description, "Q8_0"));
    tmap_model_free(m);
    assert_int_equal(tmap_model_quantize("/nonexistent/in.gguf", q8, &qp, &err), TMAP_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/in.gguf: cannot open"));
}

static int setup(void **state)
{
    (void)state;
    return test_begin_group(tmpdir, sizeof tmpdir, "model") ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return test_end_group(NULL, tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_fingerprint_sees_weights),
        cmocka_unit_test(test_create_with_sentencepiece_vocab),
        cmocka_unit_test(test_bad_sentencepiece_vocab),
        cmocka_unit_test(test_quantize),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_format_prompt),
        cmocka_unit_test(test_batched_equals_sequential),
        cmocka_unit_test(test_random_model_is_near_uniform),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_capture_switches_context),
        cmocka_unit_test(test_two_lanes),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_shared_prefix_equals_naive),
        cmocka_unit_test(test_overflow_policy),
        cmocka_unit_test(test_companion_without_room),
        cmocka_unit_test(test_create_deterministic),
        cmocka_unit_test(test_create_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
