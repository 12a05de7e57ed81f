/*
 * test_generate.c - greedy generation on a created model: batched outputs
 * equal one-request-at-a-time outputs, a shared prefix equals decoding
 * prefix + prompt from scratch, stop strings cut, max_tokens and the
 * context bound the output, every step is one decode call for all active
 * sequences, and bad arguments say what is wrong.
 *
 * A random-weight model writes gibberish, which is fine: greedy decoding is
 * deterministic, so equal inputs must give equal gibberish. With one
 * caveat, measured: its top two logits sometimes lie within float rounding
 * of each other (4.8e-6 apart at one step of the "Albert" query below),
 * and a different batch layout rounds differently (~1e-6) and may flip
 * that choice. So the reference here is greedy decoding written the plain
 * way, one sequence, one token per call, that also records how far apart
 * the top two logits were at every step: outputs must equal it exactly up
 * to the first step where they were within 1e-4, and wholly when there is
 * no such step (the usual case).
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t calls(const struct tmap_model *m)
{
    struct tmap_model_counters c;
    tmap_model_get_counters(m, &c);
    return c.n_decode_calls;
}

static uint64_t tokens_decoded(const struct tmap_model *m)
{
    struct tmap_model_counters c;
    tmap_model_get_counters(m, &c);
    return c.n_tokens_decoded;
}

/* ---- the reference ------------------------------------------------------ */

/* Two logits closer than this may swap under another batch layout. */
#define NEAR_TIE 1e-4

struct reference {
    char   text[8192];
    size_t len;
    size_t decisive; /* bytes chosen before the first near-tie (len when none) */
};

/* The prompt in one call, then one token per call, all in sequence 0. */
static void reference_greedy(struct tmap_model *m, const int32_t *prompt, int32_t n_prompt, int32_t max_tokens,
                             struct reference *ref)
{
    memset(ref, 0, sizeof *ref);
    ref->decisive = SIZE_MAX;
    llama_memory_clear(llama_get_memory(m->ctx), true);
    struct llama_batch b = llama_batch_init(n_prompt, 0, 1);
    for (int32_t i = 0; i < n_prompt; i++) {
        b.token[i] = prompt[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = i == n_prompt - 1;
    }
    b.n_tokens = n_prompt;
    for (int32_t step = 0, pos = n_prompt; step < max_tokens; step++, pos++) {
        assert_int_equal(llama_decode(m->ctx, b), 0);
        const float *l = llama_get_logits_ith(m->ctx, b.n_tokens - 1);
        int32_t best = 0, second = 1;
        for (int32_t t = 1; t < m->info.n_vocab; t++) {
            if (l[t] > l[best]) {
                second = best;
                best = t;
            } else if (t != best && l[t] > l[second]) {
                second = t;
            }
        }
        if (ref->decisive == SIZE_MAX && l[best] - l[second] < NEAR_TIE)
            ref->decisive = ref->len;
        if (llama_vocab_is_eog(m->vocab, best))
            break;
        int32_t n = llama_token_to_piece(m->vocab, best, ref->text + ref->len,
                                         (int32_t)(sizeof ref->text - ref->len - 1), 0, false);
        assert_true(n >= 0);
        ref->len += (size_t)n;
        b.token[0] = best;
        b.pos[0] = pos;
        b.logits[0] = true;
        b.n_tokens = 1;
    }
    ref->text[ref->len] = '\0';
    if (ref->decisive == SIZE_MAX)
        ref->decisive = ref->len;
    llama_batch_free(b);
    llama_memory_clear(llama_get_memory(m->ctx), true);
}

static size_t n_near_ties;

/* out equals the reference up to its first near-tie, and wholly without one. */
static void expect_reference(const char *out, const struct reference *ref, const char *what, size_t i)
{
    assert_non_null(out);
    bool whole = ref->decisive == ref->len;
    n_near_ties += !whole;
    if (whole ? strcmp(out, ref->text) != 0 : strncmp(out, ref->text, ref->decisive) != 0)
        fail_msg("%s, query %zu (%s):\n  \"%s\"\nvs\n  \"%s\"", what, i,
                 whole ? "whole text" : "before a near-tie", out, ref->text);
}

/* ---- prompts ------------------------------------------------------------ */

static const char *const demo = "Query: Natalia sold 48 clips in April and half as many in May. How many "
                                "clips did she sell?\nAnswer: 48/2 = 24 in May, 48+24 = 72 in all.\n#### 72\n\n";

static const char *const queries[] = {
    "Query: Weng earns $12 an hour for babysitting. She did 50 minutes. How much did she earn?\nAnswer:",
    "Query: Betty needs $100 for a wallet and has half. Her parents give $15 and her grandparents twice "
    "as much. How much more does she need?\nAnswer:",
    "Query: Hi\nAnswer:",
    "Query: Julie read 12 pages yesterday and twice as many today. How many pages did she read?\nAnswer:",
    "Query: James writes a 3-page letter to 2 friends twice a week. How many pages a year?\nAnswer:",
    "Query: Q\nAnswer:",
    "Query: Albert buys 2 large pizzas of 16 slices and 2 small ones of 8. How many slices?\nAnswer:",
};
#define N_QUERIES (sizeof queries / sizeof queries[0])

/* Token lists of every query: alone (BOS first), and after the demo. */
struct prompts {
    int32_t *prefix;
    int32_t  n_prefix;
    int32_t *alone[N_QUERIES], *after[N_QUERIES], *joined[N_QUERIES];
    struct tmap_generate_request req_alone[N_QUERIES], req_after[N_QUERIES], req_joined[N_QUERIES];
};

static int32_t *tokenize(struct tmap_model *m, const char *text, bool bos, int32_t *n)
{
    int32_t *t = NULL;
    struct tmap_error err = { 0 };
    if (tmap_model_tokenize(m, text, bos, &t, n, &err))
        fail_msg("%s", err.message);
    return t;
}

static void make_prompts(struct tmap_model *m, struct prompts *p)
{
    memset(p, 0, sizeof *p);
    p->prefix = tokenize(m, demo, true, &p->n_prefix);
    for (size_t i = 0; i < N_QUERIES; i++) {
        int32_t n_alone, n_after;
        p->alone[i] = tokenize(m, queries[i], true, &n_alone);
        p->after[i] = tokenize(m, queries[i], false, &n_after);
        /* The unshared reference reads exactly the tokens the shared run
         * reads: the prefix, then the query's own tokens. */
        p->joined[i] = malloc((size_t)(p->n_prefix + n_after) * sizeof(int32_t));
        memcpy(p->joined[i], p->prefix, (size_t)p->n_prefix * sizeof(int32_t));
        memcpy(p->joined[i] + p->n_prefix, p->after[i], (size_t)n_after * sizeof(int32_t));
        p->req_alone[i] = (struct tmap_generate_request){ p->alone[i], n_alone };
        p->req_after[i] = (struct tmap_generate_request){ p->after[i], n_after };
        p->req_joined[i] = (struct tmap_generate_request){ p->joined[i], p->n_prefix + n_after };
    }
}

static void free_prompts(struct prompts *p)
{
    free(p->prefix);
    for (size_t i = 0; i < N_QUERIES; i++) {
        free(p->alone[i]);
        free(p->after[i]);
        free(p->joined[i]);
    }
}

static void generate(struct tmap_model *m, const int32_t *prefix, int32_t n_prefix,
                     const struct tmap_generate_request *req, size_t n,
                     const struct tmap_generate_params *gp, char **out)
{
    struct tmap_error err = { 0 };
    if (tmap_model_generate(m, prefix, n_prefix, req, n, gp, out, &err))
        fail_msg("generate failed: %s", err.message);
}

/* One request per call: the reference every batched run must equal. */
static void generate_one_by_one(struct tmap_model *m, const struct tmap_generate_request *req, size_t n,
                                const struct tmap_generate_params *gp, char **out)
{
    for (size_t i = 0; i < n; i++)
        generate(m, NULL, 0, &req[i], 1, gp, &out[i]);
}

static void free_outputs(char **out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(out[i]);
}

/* ---- equality ----------------------------------------------------------- */

static void test_batched_equals_one_by_one(void **state)
{
    (void)state;
    /* 3 sequences for 7 queries: slots are refilled as requests end, and a
     * 32-token batch makes long prompts span calls shared with other
     * slots' generated tokens. */
    struct tmap_model *batched = test_load_model(TMAP_TEST_MODEL, 256, 32, 3);
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 256, 512, 1);
    struct prompts p;
    make_prompts(batched, &p);
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = 24;
    char *b[N_QUERIES], *s[N_QUERIES];
    generate(batched, NULL, 0, p.req_alone, N_QUERIES, &gp, b);
    generate_one_by_one(single, p.req_alone, N_QUERIES, &gp, s);
    for (size_t i = 0; i < N_QUERIES; i++) {
        struct reference ref;
        reference_greedy(single, p.req_alone[i].prompt, p.req_alone[i].n_prompt, gp.max_tokens, &ref);
        /* One by one decodes in the reference's layout: bit for bit the same. */
        assert_string_equal(s[i], ref.text);
        expect_reference(b[i], &ref, "batched vs the reference", i);
        assert_true(strlen(b[i]) > 0);
    }
    free_outputs(b, N_QUERIES);
    free_outputs(s, N_QUERIES);
    free_prompts(&p);
    tmap_model_free(batched);
    tmap_model_free(single);
}

static void test_shared_prefix_equals_unshared(void **state)
{
    (void)state;
    struct tmap_model *shared = test_load_model(TMAP_TEST_MODEL, 256, 64, 4);
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 256, 512, 1);
    struct prompts p;
    make_prompts(shared, &p);
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = 24;
    char *a[N_QUERIES], *one[N_QUERIES];
    generate(shared, p.prefix, p.n_prefix, p.req_after, N_QUERIES, &gp, a);
    /* One sequence and a prefix: the lone slot works in sequence 0 and
     * trims it back after each request. */
    generate(single, p.prefix, p.n_prefix, p.req_after, N_QUERIES, &gp, one);
    for (size_t i = 0; i < N_QUERIES; i++) {
        struct reference ref; /* prefix + prompt from scratch, nothing shared */
        reference_greedy(single, p.req_joined[i].prompt, p.req_joined[i].n_prompt, gp.max_tokens, &ref);
        expect_reference(a[i], &ref, "shared prefix vs prefix + prompt from scratch", i);
        expect_reference(one[i], &ref, "one sequence with a prefix vs from scratch", i);
    }

    /* The prefix is decoded once per call, not once per query. */
    uint64_t prompt_tokens = (uint64_t)p.n_prefix;
    for (size_t i = 0; i < N_QUERIES; i++)
        prompt_tokens += (uint64_t)p.req_after[i].n_prompt;
    assert_true(tokens_decoded(shared) <= prompt_tokens + N_QUERIES * 23);
    assert_true(tokens_decoded(single) <= prompt_tokens + N_QUERIES * 23);

    free_outputs(a, N_QUERIES);
    free_outputs(one, N_QUERIES);
    free_prompts(&p);
    tmap_model_free(shared);
    tmap_model_free(single);
}

/* ---- stopping ----------------------------------------------------------- */

static void test_stop_strings(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 256, 128, 2);
    struct prompts p;
    make_prompts(m, &p);
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = 32;
    char *full[2];
    generate(m, NULL, 0, p.req_alone, 2, &gp, full);

    /* Stops taken from the middle of each free-running output: the output
     * must end right before their first occurrence. */
    char stop0[4], stop1[5];
    size_t len0 = strlen(full[0]), len1 = strlen(full[1]);
    assert_true(len0 > 20 && len1 > 20);
    memcpy(stop0, full[0] + len0 / 2, 3);
    stop0[3] = '\0';
    memcpy(stop1, full[1] + len1 / 3, 4);
    stop1[4] = '\0';
    const char *stops[] = { "never in gibberish: 0xdeadbeef", stop0, stop1 };
    gp.stops = stops;
    gp.n_stops = 3;
    char *cut[2];
    generate(m, NULL, 0, p.req_alone, 2, &gp, cut);
    for (int i = 0; i < 2; i++) {
        /* the earliest of any stop in the free-running text */
        size_t at = strlen(full[i]);
        for (size_t k = 0; k < 3; k++) {
            const char *hit = strstr(full[i], stops[k]);
            if (hit && (size_t)(hit - full[i]) < at)
                at = (size_t)(hit - full[i]);
        }
        assert_true(at < strlen(full[i]));
        assert_int_equal(strlen(cut[i]), at);
        assert_memory_equal(cut[i], full[i], at);
    }
    free_outputs(full, 2);
    free_outputs(cut, 2);
    free_prompts(&p);
    tmap_model_free(m);
}

static void test_max_tokens(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 256, 512, 1);
    struct prompts p;
    make_prompts(m, &p);
    struct tmap_generate_params gp = tmap_generate_default_params();
    char *longer, *shorter, *none;

    gp.max_tokens = 30;
    generate(m, NULL, 0, &p.req_alone[0], 1, &gp, &longer);
    uint64_t c0 = calls(m);
    gp.max_tokens = 5;
    generate(m, NULL, 0, &p.req_alone[0], 1, &gp, &shorter);
    /* The prompt in one call, then one call per token but the last. */
    assert_int_equal(calls(m) - c0, 5);
    assert_true(strlen(shorter) < strlen(longer));
    assert_memory_equal(shorter, longer, strlen(shorter)); /* greedy: the same start */

    c0 = calls(m);
    gp.max_tokens = 0;
    generate(m, NULL, 0, &p.req_alone[0], 1, &gp, &none);
    assert_string_equal(none, "");
    assert_int_equal(calls(m), c0);
    free(longer);
    free(shorter);
    free(none);
    free_prompts(&p);
    tmap_model_free(m);
}

static void test_context_bounds_output(void **state)
{
    (void)state;
    /* 64 tokens per sequence: prefix + prompt + output stay within it. */
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 64, 512, 2);
    int32_t prompt[70];
    prompt[0] = 1;
    for (int i = 1; i < 70; i++)
        prompt[i] = 450 + i;
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = 100;
    struct tmap_generate_request req[] = { { prompt, 50 }, { prompt, 70 }, { prompt, 64 } };
    char *out[3];
    uint64_t c0 = calls(m);
    for (int i = 0; i < 3; i++)
        generate(m, NULL, 0, &req[i], 1, &gp, &out[i]);
    /* 50 tokens leave room for 14: 14 chosen, 13 decoded after the prompt's
     * call. The prompts that fill or overflow the context give "" and cost
     * nothing. */
    assert_int_equal(calls(m) - c0, 14);
    assert_true(strlen(out[0]) > 0);
    assert_string_equal(out[1], "");
    assert_string_equal(out[2], "");

    /* After a 20-token prefix, a 40-token prompt leaves room for 4. */
    char *after;
    c0 = calls(m);
    generate(m, prompt, 20, &(struct tmap_generate_request){ prompt + 20, 40 }, 1, &gp, &after);
    assert_int_equal(calls(m) - c0, 1 + 4);
    free_outputs(out, 3);
    free(after);
    tmap_model_free(m);
}

/* ---- batching ----------------------------------------------------------- */

static void test_one_call_per_step(void **state)
{
    (void)state;
    struct tmap_model *batched = test_load_model(TMAP_TEST_MODEL, 256, 512, 4);
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 256, 512, 1);
    struct prompts p;
    make_prompts(batched, &p);
    struct tmap_generate_params gp = tmap_generate_default_params();
    gp.max_tokens = 16;

    /* Alone, request i costs one call per token chosen (the prompt's call
     * chooses the first; the last chosen is never decoded), so the calls
     * count its tokens. */
    uint64_t tokens[4], most = 0, sum_tokens = 0, c0 = calls(single), t0 = tokens_decoded(single);
    char *out[4];
    for (int i = 0; i < 4; i++) {
        uint64_t before = calls(single);
        generate(single, NULL, 0, &p.req_alone[i], 1, &gp, &out[i]);
        tokens[i] = calls(single) - before;
        most = tokens[i] > most ? tokens[i] : most;
        sum_tokens += tokens[i];
        free(out[i]);
    }
    assert_int_equal(calls(single) - c0, sum_tokens);
    /* Together, 4 requests in 4 sequences: every step decodes all of them
     * in one call, so the calls are those of the longest request, and the
     * tokens decoded are exactly the same. */
    generate(batched, NULL, 0, p.req_alone, 4, &gp, out);
    assert_int_equal(calls(batched), most);
    assert_int_equal(tokens_decoded(batched), tokens_decoded(single) - t0);
    free_outputs(out, 4);

    /* With a prefix, 3 slots: the prefix call, then steps. 3 requests of
     * at most 16 tokens fit one wave. */
    c0 = calls(batched);
    generate(batched, p.prefix, p.n_prefix, p.req_after, 3, &gp, out);
    assert_true(calls(batched) - c0 <= 1 + 16);
    free_outputs(out, 3);
    free_prompts(&p);
    tmap_model_free(batched);
    tmap_model_free(single);
}

/* ---- errors ------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    struct tmap_model *m = test_load_model(TMAP_TEST_MODEL, 64, 64, 2);
    int32_t prompt[] = { 1, 450, 451 };
    struct tmap_generate_request req[] = { { prompt, 3 }, { prompt, 0 } };
    struct tmap_generate_params gp = tmap_generate_default_params();
    struct tmap_error err = { 0 };
    char *out[2] = { (char *)1, (char *)1 };

    assert_int_equal(tmap_model_generate(m, NULL, 0, req, 2, &gp, out, &err), TMAP_ERR_USAGE);
    assert_string_equal(err.message, "generation request 1 has no prompt tokens");
    assert_null(out[0]);
    assert_null(out[1]);

    gp.max_tokens = -1;
    assert_int_equal(tmap_model_generate(m, NULL, 0, req, 1, &gp, out, &err), TMAP_ERR_USAGE);
    assert_string_equal(err.message, "max_tokens -1 is negative");

    gp = tmap_generate_default_params();
    const char *stops[] = { "ok", "" };
    gp.stops = stops;
    gp.n_stops = 2;
    assert_int_equal(tmap_model_generate(m, NULL, 0, req, 1, &gp, out, &err), TMAP_ERR_USAGE);
    assert_string_equal(err.message, "stop string 1 is empty (it would stop at once)");

    gp = tmap_generate_default_params();
    int32_t big[80] = { 1 };
    assert_int_equal(tmap_model_generate(m, big, 80, req, 1, &gp, out, &err), TMAP_ERR_USAGE);
    assert_string_equal(err.message, "a shared prefix of 80 tokens does not fit the context of 64");
    assert_null(out[0]);

    /* Nothing to do is fine. */
    assert_int_equal(tmap_model_generate(m, NULL, 0, req, 0, &gp, out, &err), TMAP_OK);
    assert_int_equal(tmap_generate_default_params().max_tokens, 256);
    tmap_model_free(m);
}

static int setup(void **state)
{
    (void)state;
    tmap_backend_init(true);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (n_near_ties > 0)
        print_message("%zu outputs compared only up to a near-tie of the top two logits\n", n_near_ties);
    tmap_backend_free();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_equals_one_by_one),
        cmocka_unit_test(test_shared_prefix_equals_unshared),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_context_bounds_output),
        cmocka_unit_test(test_one_call_per_step),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
