/*
 * test_eval.c - whole-benchmark evaluation on a created model, against
 * values computed by hand with the model layer: the bootstrap interval,
 * loglik with and without shared demonstrations (plain and chat layouts),
 * multiple choice on a pool whose answers are set to what the model
 * prefers, accuracy on records whose gold is the model's own output, the
 * predictions file, and the errors.
 */
#define _XOPEN_SOURCE 700 /* nftw, for helpers.h */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "model/model.h" /* tmap_offload_devices */
#include "task/answer.h"
#include "tmap.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[256];
static struct tmap_model *model; /* 4 sequences */

/* ---- helpers ------------------------------------------------------------ */

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static struct tmap_pool *write_pool(const char *name, const char *text)
{
    char path[512];
    tmp_path(path, sizeof path, name);
    test_write_file(path, text);
    return test_load_pool(path);
}

/* The first n records of a bundled GSM8K split as a pool. */
static struct tmap_pool *gsm8k_pool(const char *split, const char *name, int n)
{
    char path[512];
    test_gsm8k_slice(path, sizeof path, tmpdir, name, split, n);
    return test_load_pool(path);
}

static struct tmap_eval_result evaluate(struct tmap_model *m, const struct tmap_pool *test,
                                        const struct tmap_pool *demos, const struct tmap_eval_params *p)
{
    struct tmap_eval_result r;
    struct tmap_error err = { 0 };
    if (tmap_eval_run(m, test, demos, p, &r, &err))
        fail_msg("eval failed: %s", err.message);
    return r;
}

/* log p(response | prompt text) by the model layer alone. */
static struct tmap_logprob_result logprob_by_hand(struct tmap_model *m, const char *prompt, const char *response)
{
    int32_t *pt, *rt, np, nr;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_tokenize(m, prompt, true, &pt, &np, &err), TMAP_OK);
    assert_int_equal(tmap_model_tokenize(m, response, false, &rt, &nr, &err), TMAP_OK);
    struct tmap_logprob_request req = { .prompt = pt, .n_prompt = np, .response = rt, .n_response = nr };
    struct tmap_logprob_result res;
    assert_int_equal(tmap_model_logprob(m, &req, 1, &res, &err), TMAP_OK);
    free(pt);
    free(rt);
    return res;
}

/* The same under a chat template: the response's tokens are those the whole
 * text (prompt then response) adds to the prompt's, as the model reads an
 * assistant turn (tmap_model_tokenize_response). */
static struct tmap_logprob_result logprob_by_hand_chat(struct tmap_model *m, const char *prompt, const char *response)
{
    int32_t *pt, *all, np, na;
    struct tmap_error err = { 0 };
    char both[1024];
    snprintf(both, sizeof both, "%s%s", prompt, response);
    assert_int_equal(tmap_model_tokenize(m, prompt, true, &pt, &np, &err), TMAP_OK);
    assert_int_equal(tmap_model_tokenize(m, both, true, &all, &na, &err), TMAP_OK);
    assert_true(na > np && memcmp(pt, all, (size_t)np * sizeof *pt) == 0);
    struct tmap_logprob_request req = { .prompt = pt, .n_prompt = np, .response = all + np, .n_response = na - np };
    struct tmap_logprob_result res;
    assert_int_equal(tmap_model_logprob(m, &req, 1, &res, &err), TMAP_OK);
    free(pt);
    free(all);
    return res;
}

/* The plain few-shot layout of docs/design.md section 5, written out here. */
static char *plain_prompt(const struct tmap_pool *demos, size_t k, const struct tmap_sample *query)
{
    size_t cap = 1 << 16, used = 0;
    char *text = malloc(cap);
    struct tmap_error err = { 0 };
    for (size_t j = 0; j < k; j++) {
        struct tmap_sample d;
        assert_int_equal(tmap_pool_sample(demos, j, &d, &err), TMAP_OK);
        used += (size_t)snprintf(text + used, cap - used, "Query: %s\nAnswer: %s\n\n", d.prompt, d.response);
        tmap_sample_free(&d);
    }
    snprintf(text + used, cap - used, "Query: %s\nAnswer:", query->prompt);
    return text;
}

/* How far two computations of one item's log-likelihood may differ when
 * the other sequences of their decode calls differ. On the CPU only the
 * order of the sums changes (about 1e-6: model.h). llama.cpp's CUDA kernels
 * round through F16 and choose other kernels for other batch shapes: on an
 * H200, 2.9e-4 nats per token between the same chat item decoded beside a
 * demonstration and by hand. */
static double logprob_tolerance(void)
{
    return tmap_offload_devices() > 0 ? 1e-3 : 1e-4;
}

static void expect_near(double got, double want, double tol, const char *what, size_t i)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s, item %zu: %.8f, by hand %.8f", what, i, got, want);
}

/* ---- bootstrap ---------------------------------------------------------- */

static void test_bootstrap(void **state)
{
    (void)state;
    double v[40], mean = 0;
    for (int i = 0; i < 40; i++) {
        v[i] = (i * 7) % 3 == 0 ? 1.0 : 0.0;
        mean += v[i] / 40;
    }
    double lo, hi, lo2, hi2, lo3, hi3;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_bootstrap_mean_ci(v, 40, 1000, 7, &lo, &hi, &err), TMAP_OK);
    assert_true(lo < mean && mean < hi);
    /* a proportion near 1/3 over 40 items: the interval is about +-0.15 */
    assert_true(hi - lo > 0.2 && hi - lo < 0.4);
    assert_int_equal(tmap_bootstrap_mean_ci(v, 40, 1000, 7, &lo2, &hi2, &err), TMAP_OK);
    assert_true(lo == lo2 && hi == hi2); /* the same seed, the same interval */
    assert_int_equal(tmap_bootstrap_mean_ci(v, 40, 1000, 8, &lo3, &hi3, &err), TMAP_OK);
    assert_true(lo3 != lo || hi3 != hi);
    assert_true(fabs(lo3 - lo) < 0.06 && fabs(hi3 - hi) < 0.06);

    double same[5] = { -2.5, -2.5, -2.5, -2.5, -2.5 };
    assert_int_equal(tmap_bootstrap_mean_ci(same, 5, 100, 1, &lo, &hi, &err), TMAP_OK);
    assert_true(lo == -2.5 && hi == -2.5);
    assert_int_equal(tmap_bootstrap_mean_ci(v, 0, 100, 1, &lo, &hi, &err), TMAP_OK);
    assert_true(isnan(lo) && isnan(hi));
    assert_int_equal(tmap_bootstrap_mean_ci(v, 40, 0, 1, &lo, &hi, &err), TMAP_OK);
    assert_true(isnan(lo) && isnan(hi));
}

/* ---- loglik ------------------------------------------------------------- */

static void test_loglik_by_hand(void **state)
{
    (void)state;
    struct tmap_pool *test = gsm8k_pool("test", "ll_test.jsonl", 6);
    struct tmap_pool *demos = gsm8k_pool("train", "ll_demos.jsonl", 3);
    struct tmap_model *one = test_load_model(TMAP_TEST_MODEL, 1024, 256, 1);
    struct tmap_eval_params p = tmap_eval_default_params();
    p.metric = TMAP_METRIC_LOGLIK;
    for (size_t k = 0; k <= 2; k += 2) {
        p.n_shots = k;
        struct tmap_eval_result r = evaluate(model, test, demos, &p);
        /* one sequence: nothing shared, every prompt decoded whole */
        struct tmap_eval_result r1 = evaluate(one, test, demos, &p);
        assert_int_equal(r.n, 6);
        assert_int_equal(r.kind, TMAP_METRIC_LOGLIK);
        assert_true(k == 0 || r.n_prefix_tokens > 100); /* the demonstrations */
        assert_int_equal(r1.n_prefix_tokens, 0);
        double mean = 0;
        for (size_t i = 0; i < 6; i++) {
            struct tmap_sample s;
            struct tmap_error err = { 0 };
            assert_int_equal(tmap_pool_sample(test, i, &s, &err), TMAP_OK);
            char *prompt = plain_prompt(demos, k, &s);
            struct tmap_logprob_result h = logprob_by_hand(model, prompt, s.response);
            double want = h.sum_logprob / h.n_tokens;
            expect_near(r.scores[i], want, logprob_tolerance(), "shared demonstrations vs by hand", i);
            expect_near(r1.scores[i], want, logprob_tolerance(), "one sequence vs by hand", i);
            assert_true(r.logliks[i] == r.scores[i]);
            assert_string_equal(r.gold[i], s.answer);
            assert_string_equal(r.ids[i], s.id);
            assert_null(r.predictions[i]);
            mean += r.scores[i] / 6;
            free(prompt);
            tmap_sample_free(&s);
        }
        expect_near(r.metric, mean, 1e-12, "the metric is the mean", 0);
        assert_true(r.ci_low <= r.metric && r.metric <= r.ci_high);
        tmap_eval_result_free(&r);
        tmap_eval_result_free(&r1);
    }
    tmap_model_free(one);
    tmap_pool_free(test);
    tmap_pool_free(demos);
}

static void test_chat_layout(void **state)
{
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "chatml.gguf");
    struct tmap_model_create_params cp = tmap_model_create_default_params();
    cp.n_embd = 32;
    cp.n_layer = 1;
    cp.chat_template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_create(path, &cp, &err), TMAP_OK);
    struct tmap_model *chat = test_load_model(path, 512, 256, 3);
    struct tmap_pool *test = write_pool("chat_test.jsonl",
                                        "{\"prompt\": \"What is 2+2?\", \"response\": \"4\"}\n"
                                        "{\"prompt\": \"What is 3+3?\", \"response\": \"It is 6.\"}\n");
    struct tmap_pool *demos = write_pool("chat_demos.jsonl", "{\"prompt\": \"What is 1+1?\", \"response\": \"2\"}\n");
    struct tmap_eval_params p = tmap_eval_default_params();
    p.metric = TMAP_METRIC_LOGLIK;
    p.tmpl = TMAP_TEMPLATE_CHAT;
    p.n_shots = 1;
    struct tmap_eval_result r = evaluate(chat, test, demos, &p);
    const char *questions[] = { "What is 2+2?", "What is 3+3?" }, *answers[] = { "4", "It is 6." };
    for (size_t i = 0; i < 2; i++) {
        char prompt[512];
        snprintf(prompt, sizeof prompt,
                 "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>\n"
                 "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", questions[i]);
        struct tmap_logprob_result h = logprob_by_hand_chat(chat, prompt, answers[i]);
        expect_near(r.scores[i], h.sum_logprob / h.n_tokens, logprob_tolerance(), "chat layout vs by hand", i);
    }
    tmap_eval_result_free(&r);
    tmap_model_free(chat);
    tmap_pool_free(test);
    tmap_pool_free(demos);
}

/* The proxy's whole claim is that it predicts eval, so both must read the
 * same prompt: for the same demonstrations and item, the proxy's loglik
 * value (top policy, one tiny item of weight 1) equals eval's score, under
 * the plain and the chat template, with multi-turn demonstrations (a system
 * turn and earlier turns) and a multi-turn query. */
static void test_proxy_reads_as_eval(void **state)
{
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "chatml-proxy.gguf");
    struct tmap_model_create_params cp = tmap_model_create_default_params();
    cp.n_embd = 32;
    cp.n_layer = 1;
    cp.chat_template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                       "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_create(path, &cp, &err), TMAP_OK);
    struct tmap_model *chat = test_load_model(path, 1024, 512, 2);
    struct tmap_pool *demos = write_pool("proxy_eval_demos.jsonl",
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
        "{\"role\": \"user\", \"content\": \"What is 1+1?\"}, {\"role\": \"assistant\", \"content\": \"2\"}]}\n"
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi.\"}, {\"from\": \"gpt\", \"value\": \"Hello.\"}, "
        "{\"from\": \"human\", \"value\": \"And 2+3?\"}, {\"from\": \"gpt\", \"value\": \"5\"}]}\n");
    struct tmap_pool *item = write_pool("proxy_eval_item.jsonl",
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"Count with me.\"}, {\"from\": \"gpt\", \"value\": \"One.\"}, "
        "{\"from\": \"human\", \"value\": \"What is 3+4?\"}, {\"from\": \"gpt\", \"value\": \"It is 7.\"}]}\n");
    const size_t rows[] = { 0, 1 };
    const double file_order[] = { 1.0, 0.0 }; /* the top policy's order: eval's first n_shots */
    for (int t = 0; t < 2; t++) {
        enum tmap_template tmpl = t ? TMAP_TEMPLATE_CHAT : TMAP_TEMPLATE_PLAIN;
        struct tmap_eval_params ep = tmap_eval_default_params();
        ep.metric = TMAP_METRIC_LOGLIK;
        ep.tmpl = tmpl;
        ep.n_shots = 2;
        ep.n_bootstrap = 0;
        struct tmap_eval_result r = evaluate(chat, item, demos, &ep);
        struct tmap_proxy_params pp = tmap_proxy_default_params();
        pp.k = 2;
        pp.policy = TMAP_DEMOS_TOP;
        pp.metric = TMAP_METRIC_LOGLIK;
        pp.tmpl = tmpl;
        struct tmap_proxy *px;
        assert_int_equal(tmap_proxy_create(chat, item, NULL, &pp, &px, &err), TMAP_OK);
        double value;
        assert_int_equal(tmap_proxy_eval(px, demos, rows, 2, file_order, &value, NULL, &err), TMAP_OK);
        assert_true(isfinite(r.scores[0]));
        expect_near(value, r.scores[0], logprob_tolerance(), tmpl == TMAP_TEMPLATE_CHAT ? "proxy vs eval, chat" : "proxy vs eval, plain", 0);
        tmap_proxy_free(px);
        tmap_eval_result_free(&r);
    }
    tmap_model_free(chat);
    tmap_pool_free(demos);
    tmap_pool_free(item);
}

/* ---- multiple choice ---------------------------------------------------- */

static const char *const mc_questions[] = { "Which is a gas?", "Which one is a colour?", "Pick a number." };
static const char *const mc_choices[][3] = {
    { "ice", "steam", "rock" }, { "red", "table", "dog" }, { "seven", "blue", "house" } };

static void write_mc_record(char *out, size_t n, size_t q, const char *key)
{
    snprintf(out, n, "{\"id\": \"q%zu\", \"question\": \"%s\", \"choices\": {\"text\": [\"%s\", \"%s\", \"%s\"], "
             "\"label\": [\"A\", \"B\", \"C\"]}, \"answerKey\": \"%s\"}\n",
             q, mc_questions[q], mc_choices[q][0], mc_choices[q][1], mc_choices[q][2], key);
}

/* The choice the model prefers after the item's prompt, by hand: total
 * log-probability of the choice text read right after "Answer:". */
static int preferred_choice(const struct tmap_pool *pool, size_t i, double *best_lp)
{
    struct tmap_sample s;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_pool_sample(pool, i, &s, &err), TMAP_OK);
    char *prompt = plain_prompt(NULL, 0, &s);
    int best = 0;
    for (size_t c = 0; c < s.n_choices; c++) {
        /* The Llama tokenizer gives "seven" its leading space itself. */
        double lp = logprob_by_hand(model, prompt, s.choices[c]).sum_logprob;
        if (c == 0 || lp > *best_lp) {
            *best_lp = lp;
            best = (int)c;
        }
    }
    free(prompt);
    tmap_sample_free(&s);
    return best;
}

static void test_mc_forced(void **state)
{
    (void)state;
    /* First learn what the model prefers, then write a pool whose gold is
     * that choice for q0 and q2 and another one for q1: accuracy 2/3. */
    char text[2048] = "", rec[512];
    for (size_t q = 0; q < 3; q++) {
        write_mc_record(rec, sizeof rec, q, "A");
        strcat(text, rec);
    }
    struct tmap_pool *probe = write_pool("mc_probe.jsonl", text);
    int best[3];
    double best_lp[3];
    for (size_t q = 0; q < 3; q++)
        best[q] = preferred_choice(probe, q, &best_lp[q]);
    text[0] = '\0';
    for (size_t q = 0; q < 3; q++) {
        char key[2] = { (char)('A' + (q == 1 ? (best[q] + 1) % 3 : best[q])), '\0' };
        write_mc_record(rec, sizeof rec, q, key);
        strcat(text, rec);
    }
    struct tmap_pool *pool = write_pool("mc.jsonl", text);
    struct tmap_eval_params p = tmap_eval_default_params();
    p.metric = TMAP_METRIC_MC;
    struct tmap_eval_result r = evaluate(model, pool, NULL, &p);
    assert_int_equal(r.n, 3);
    expect_near(r.metric, 2.0 / 3.0, 1e-12, "mc accuracy", 0);
    for (size_t q = 0; q < 3; q++) {
        assert_int_equal(r.choices[q], best[q]);
        assert_string_equal(r.predictions[q], mc_choices[q][best[q]]);
        expect_near(r.logliks[q], best_lp[q], logprob_tolerance(), "chosen choice's log-probability", q);
        assert_true(r.scores[q] == (q == 1 ? 0.0 : 1.0));
    }
    assert_string_equal(r.gold[1], mc_choices[1][(best[1] + 1) % 3]);
    tmap_eval_result_free(&r);

    /* Records without choices cannot be scored as multiple choice. */
    struct tmap_pool *gsm = gsm8k_pool("test", "mc_gsm.jsonl", 2);
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_eval_run(model, gsm, NULL, &p, &r, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "mc_gsm.jsonl:1: record 1 has no choices"));
    assert_null(r.scores);
    tmap_pool_free(gsm);
    tmap_pool_free(probe);
    tmap_pool_free(pool);
}

/* ---- accuracy ----------------------------------------------------------- */

/* What the model writes after the item's prompt, by hand. */
static char *generate_by_hand(const struct tmap_pool *pool, size_t i, int32_t max_tokens)
{
    struct tmap_sample s;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_pool_sample(pool, i, &s, &err), TMAP_OK);
    char *prompt = plain_prompt(NULL, 0, &s);
    int32_t *t, n;
    assert_int_equal(tmap_model_tokenize(model, prompt, true, &t, &n, &err), TMAP_OK);
    static const char *const stops[] = { "\n\nQuery:", "\nQuery:", "Query:" };
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = max_tokens;
    gp.stops = stops;
    gp.n_stops = 3;
    char *out = NULL;
    assert_int_equal(tmap_model_generate(model, NULL, 0, &(struct tmap_generate_request){ t, n }, 1, &gp, &out, &err),
                     TMAP_OK);
    free(t);
    free(prompt);
    tmap_sample_free(&s);
    return out;
}

/* A JSON string literal of s (s has no quotes or backslashes to escape
 * except those handled here). */
static void json_quote(char *out, size_t n, const char *s)
{
    json_t *j = json_string(s);
    char *d = json_dumps(j, JSON_ENCODE_ANY);
    snprintf(out, n, "%s", d);
    free(d);
    json_decref(j);
}

static void test_accuracy_forced(void **state)
{
    (void)state;
    /* Records without a numeric answer compare trimmed text: make the gold
     * of the first record the model's own output, the second's not. */
    const char *prompts[] = { "Say something.", "Say something else." };
    char text[4096], quoted[2048];
    snprintf(text, sizeof text, "{\"prompt\": \"%s\", \"response\": \"x\"}\n{\"prompt\": \"%s\", \"response\": \"y\"}\n",
             prompts[0], prompts[1]);
    struct tmap_pool *probe = write_pool("acc_probe.jsonl", text);
    char *said = generate_by_hand(probe, 0, 12);
    json_quote(quoted, sizeof quoted, said);
    snprintf(text, sizeof text, "{\"prompt\": \"%s\", \"response\": %s}\n{\"prompt\": \"%s\", \"response\": \"y\"}\n",
             prompts[0], quoted, prompts[1]);
    struct tmap_pool *pool = write_pool("acc.jsonl", text);
    struct tmap_eval_params p = tmap_eval_default_params();
    p.max_tokens = 12;
    struct tmap_eval_result r = evaluate(model, pool, NULL, &p);
    assert_int_equal(r.kind, TMAP_METRIC_ACCURACY);
    assert_string_equal(r.predictions[0], said);
    assert_true(r.scores[0] == 1.0);
    assert_true(r.scores[1] == 0.0);
    expect_near(r.metric, 0.5, 1e-12, "accuracy", 0);
    tmap_eval_result_free(&r);
    free(said);

    /* GSM8K records compare numbers: whatever the model wrote, the
     * extracted answer is tmap_extract_answer's and the gold is "####"'s. */
    struct tmap_pool *gsm = gsm8k_pool("test", "acc_gsm.jsonl", 3);
    r = evaluate(model, gsm, NULL, &p);
    for (size_t i = 0; i < 3; i++) {
        char *out = generate_by_hand(gsm, i, 12), want[256];
        assert_string_equal(r.predictions[i], out);
        bool found = tmap_extract_answer(out, want, sizeof want);
        if (found)
            assert_string_equal(r.extracted[i], want);
        else
            assert_null(r.extracted[i]);
        struct tmap_sample s;
        struct tmap_error err = { 0 };
        assert_int_equal(tmap_pool_sample(gsm, i, &s, &err), TMAP_OK);
        assert_string_equal(r.gold[i], s.answer);
        assert_true(r.scores[i] == (found && tmap_answers_match(want, s.answer) ? 1.0 : 0.0));
        tmap_sample_free(&s);
        free(out);
    }
    tmap_eval_result_free(&r);
    tmap_pool_free(gsm);
    tmap_pool_free(probe);
    tmap_pool_free(pool);
}

static void test_skipped_items(void **state)
{
    (void)state;
    /* 64 tokens per sequence: a long question cannot be read whole. */
    struct tmap_model *small = test_load_model(TMAP_TEST_MODEL, 64, 256, 2);
    char text[1024] = "{\"prompt\": \"Hi\", \"response\": \"Hello\"}\n{\"prompt\": \"";
    for (int i = 0; i < 70; i++)
        strcat(text, "apple "); /* one token each: 70 of them */
    strcat(text, "\", \"response\": \"x\"}\n");
    struct tmap_pool *pool = write_pool("skip.jsonl", text);
    struct tmap_eval_params p = tmap_eval_default_params();
    p.max_tokens = 4;
    for (int metric = 0; metric < 2; metric++) {
        p.metric = metric ? TMAP_METRIC_LOGLIK : TMAP_METRIC_ACCURACY;
        struct tmap_eval_result r = evaluate(small, pool, NULL, &p);
        assert_int_equal(r.n_items, 2);
        assert_int_equal(r.n, 1);
        assert_false(isnan(r.scores[0]));
        assert_true(isnan(r.scores[1]));
        assert_true(r.metric == r.scores[0]);
        tmap_eval_result_free(&r);
    }
    tmap_pool_free(pool);
    tmap_model_free(small);
}

/* ---- predictions file --------------------------------------------------- */

static void test_predictions_file(void **state)
{
    (void)state;
    char *ids[] = { "a", "b" }, *pred[] = { "The answer is 5 \xE3\x81", NULL }, *ext[] = { "5", NULL };
    char *gold[] = { "5", "7" };
    double scores[] = { 1.0, NAN }, logliks[] = { NAN, NAN };
    int32_t choices[] = { -1, -1 };
    struct tmap_eval_result r = { .kind = TMAP_METRIC_ACCURACY, .n_items = 2, .ids = ids, .scores = scores,
                                  .predictions = pred, .extracted = ext, .gold = gold, .logliks = logliks,
                                  .choices = choices };
    char path[512];
    tmp_path(path, sizeof path, "preds.jsonl");
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_eval_write_predictions(&r, path, &err), TMAP_OK);
    FILE *f = fopen(path, "r");
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "{\"id\":\"a\",\"prediction\":\"The answer is 5 \xEF\xBF\xBD\xEF\xBF\xBD\","
                              "\"extracted\":\"5\",\"gold\":\"5\",\"correct\":true,\"loglik\":null,"
                              "\"skipped\":false}\n");
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "{\"id\":\"b\",\"prediction\":null,\"extracted\":null,\"gold\":\"7\","
                              "\"correct\":null,\"loglik\":null,\"skipped\":true}\n");
    assert_null(fgets(line, sizeof line, f));
    fclose(f);

    assert_int_equal(tmap_eval_write_predictions(&r, "/nonexistent/dir/preds.jsonl", &err), TMAP_ERR_IO);
    assert_string_equal(err.message, "/nonexistent/dir/preds.jsonl: cannot write: No such file or directory");
}

/* ---- errors ------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    struct tmap_pool *test = gsm8k_pool("test", "err_test.jsonl", 2);
    struct tmap_eval_params p = tmap_eval_default_params();
    struct tmap_eval_result r;
    struct tmap_error err = { 0 };

    p.n_shots = 2;
    assert_int_equal(tmap_eval_run(model, test, NULL, &p, &r, &err), TMAP_ERR_USAGE);
    assert_string_equal(err.message, "2 demonstrations asked for, but no demo pool given (--demos)");
    p.n_shots = 3;
    assert_int_equal(tmap_eval_run(model, test, test, &p, &r, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "3 demonstrations asked for, but "));
    assert_non_null(strstr(err.message, "err_test.jsonl has only 2 records"));
    p = tmap_eval_default_params();
    p.max_tokens = 0;
    assert_int_equal(tmap_eval_run(model, test, NULL, &p, &r, &err), TMAP_ERR_USAGE);
    assert_string_equal(err.message, "max_tokens 0: accuracy needs at least 1 generated token");
    p = tmap_eval_default_params();
    p.metric = (enum tmap_metric)9;
    assert_int_equal(tmap_eval_run(model, test, NULL, &p, &r, &err), TMAP_ERR_USAGE);
    assert_string_equal(err.message, "unknown metric 9");

    assert_string_equal(tmap_metric_name(TMAP_METRIC_ACCURACY), "accuracy");
    assert_string_equal(tmap_metric_name(TMAP_METRIC_LOGLIK), "loglik");
    assert_string_equal(tmap_metric_name(TMAP_METRIC_MC), "mc");
    tmap_eval_result_free(NULL);
    tmap_pool_free(test);
}

static int setup(void **state)
{
    (void)state;
    if (!test_begin_group(tmpdir, sizeof tmpdir, "eval"))
        return -1;
    model = test_load_model(TMAP_TEST_MODEL, 1024, 256, 4);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_end_group(model, tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_loglik_by_hand),
        cmocka_unit_test(test_chat_layout),
        cmocka_unit_test(test_proxy_reads_as_eval),
        cmocka_unit_test(test_mc_forced),
        cmocka_unit_test(test_accuracy_forced),
        cmocka_unit_test(test_skipped_items),
        cmocka_unit_test(test_predictions_file),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
