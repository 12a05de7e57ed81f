/*
 * test_score.c - tmap_score end to end on a created model and a GSM8K
 * slice: ifd against two independent passes, diversity and relevance
 * against brute force over independently computed embeddings, ratings,
 * the store serving a rerun with no model work, a SIGKILL mid-run losing at
 * most the batch in flight, the context-overflow skip, and --extra columns.
 */
#define _XOPEN_SOURCE 700 /* nftw, for helpers.h */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "indicators/rating.h"
#include "indicators/text.h"
#include "task/answer.h"
#include "store/store.h"
#include "helpers.h"
#include "tmap.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { N_POOL = 40, N_VAL = 12, DIM = 64 };

static char tmpdir[256];
static char pool_path[512], val_path[512];
static struct tmap_model *model;
static struct tmap_pool *pool, *val;

/* ---- fixtures ----------------------------------------------------------- */

static struct tmap_scores *score(const struct tmap_score_params *p)
{
    struct tmap_scores *s = NULL;
    struct tmap_error err = { 0 };
    if (tmap_score(pool, model, p, &s, &err))
        fail_msg("%s", err.message);
    return s;
}

static double col(const struct tmap_scores *s, size_t row, enum tmap_indicator ind)
{
    return tmap_scores_get(s, row, (size_t)ind);
}

/* Prompt and response tokens exactly as scoring lays a sample out. */
static void sample_tokens(const struct tmap_pool *from, size_t i, int32_t **prompt, int32_t *np,
                          int32_t **response, int32_t *nr)
{
    struct tmap_sample s;
    struct tmap_error err = { 0 };
    char *text;
    assert_int_equal(tmap_pool_sample(from, i, &s, &err), TMAP_OK);
    assert_int_equal(tmap_model_format_prompt(model, &s, TMAP_TEMPLATE_PLAIN, &text, NULL, &err), TMAP_OK);
    assert_int_equal(tmap_model_tokenize(model, text, true, prompt, np, &err), TMAP_OK);
    assert_int_equal(tmap_model_tokenize(model, s.response, false, response, nr, &err), TMAP_OK);
    free(text);
    tmap_sample_free(&s);
}

/* ---- indicators against independent computations ----------------------- */

static void test_loss_ifd_length_text(void **state)
{
    (void)state;
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_IFD) | (1u << TMAP_IND_LENGTH) |
                   (1u << TMAP_IND_STEPS) | (1u << TMAP_IND_NUMERACY) | (1u << TMAP_IND_LEXICAL) |
                   (1u << TMAP_IND_COVERAGE);
    p.batch_samples = 16;
    struct tmap_scores *s = score(&p);
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 512, 512, 1);
    struct tmap_error err = { 0 };
    for (size_t i = 0; i < N_POOL; i += 7) {
        int32_t *prompt, np, *response, nr;
        sample_tokens(pool, i, &prompt, &np, &response, &nr);
        struct tmap_logprob_request cond = { .prompt = prompt, .n_prompt = np, .response = response, .n_response = nr };
        struct tmap_logprob_request uncond = { .prompt = prompt, .n_prompt = 1, .response = response, .n_response = nr };
        struct tmap_logprob_result rc, ru;
        assert_int_equal(tmap_model_logprob(single, &cond, 1, &rc, &err), TMAP_OK);
        assert_int_equal(tmap_model_logprob(single, &uncond, 1, &ru, &err), TMAP_OK);
        double loss = -rc.sum_logprob / rc.n_tokens, loss_u = -ru.sum_logprob / ru.n_tokens;
        assert_true(fabs(col(s, i, TMAP_IND_LOSS) - loss) < 1e-4);
        if (fabs(col(s, i, TMAP_IND_IFD) - loss / loss_u) > 1e-4)
            fail_msg("row %zu: ifd %.6f vs %.6f", i, col(s, i, TMAP_IND_IFD), loss / loss_u);
        assert_true(col(s, i, TMAP_IND_LENGTH) == nr);

        struct tmap_sample smp;
        assert_int_equal(tmap_pool_sample(pool, i, &smp, &err), TMAP_OK);
        assert_true(col(s, i, TMAP_IND_STEPS) == tmap_indicator_steps(smp.response));
        assert_true(col(s, i, TMAP_IND_NUMERACY) == tmap_indicator_numeracy(smp.response));
        assert_true(col(s, i, TMAP_IND_LEXICAL) == tmap_indicator_mtld(smp.response));
        assert_true(col(s, i, TMAP_IND_COVERAGE) == tmap_indicator_coverage(smp.prompt, smp.response));
        tmap_sample_free(&smp);
        free(prompt);
        free(response);
    }
    /* Not asked for: no value. */
    assert_true(isnan(col(s, 0, TMAP_IND_QUALITY)));
    tmap_model_free(single);
    tmap_scores_free(s);
}

/* How many tokens text[0, n) makes on its own, as a response is tokenized. */
static int32_t tokens_of_prefix(const char *text, size_t n)
{
    char *head = strndup(text, n);
    int32_t *t, nt;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_model_tokenize(model, head, false, &t, &nt, &err), TMAP_OK);
    free(t);
    free(head);
    return nt;
}

/* support against a reference built another way: the answer's tokens are
 * those the response's text up to the answer's end adds to its text up to
 * the answer's start, each tokenized on its own; their log-probabilities
 * come from a one-sample request. Records without a marker get no value. */
static void test_support(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/support.jsonl", tmpdir);
    test_write_file(path,
                    "{\"question\": \"Tom has 3 apples and buys 4. How many?\", \"answer\": \"3 + 4 = 7\\n#### 7\"}\n"
                    "{\"question\": \"Add 20 and 52.\", \"answer\": \"20 + 52 = 72. The answer is 72. Done.\"}\n"
                    "{\"question\": \"Say hello.\", \"answer\": \"Hello there, 3 times.\"}\n");
    struct tmap_pool *own = test_load_pool(path);
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_SUPPORT);
    struct tmap_scores *s = NULL;
    struct tmap_error err = { 0 };
    if (tmap_score(own, model, &p, &s, &err))
        fail_msg("%s", err.message);
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 512, 512, 1);
    for (size_t i = 0; i < 2; i++) {
        int32_t *prompt, np, *response, nr;
        sample_tokens(own, i, &prompt, &np, &response, &nr);
        struct tmap_sample smp;
        assert_int_equal(tmap_pool_sample(own, i, &smp, &err), TMAP_OK);
        size_t begin, end;
        assert_true(tmap_marked_answer_span(smp.response, &begin, &end));
        int32_t from = tokens_of_prefix(smp.response, begin), to = tokens_of_prefix(smp.response, end);
        assert_true(from < to && to <= nr);
        double *lp = calloc((size_t)nr, sizeof *lp), want = 0.0, sum = 0.0;
        struct tmap_logprob_request q = { .prompt = prompt, .n_prompt = np, .response = response,
                                          .n_response = nr, .token_logprobs = lp };
        struct tmap_logprob_result r;
        assert_int_equal(tmap_model_logprob(single, &q, 1, &r, &err), TMAP_OK);
        for (int32_t j = 0; j < nr; j++) {
            assert_true(lp[j] <= 0.0);
            sum += lp[j];
            want += j >= from && j < to ? lp[j] : 0.0;
        }
        assert_true(fabs(sum - r.sum_logprob) < 1e-9); /* the terms of the sum, each once */
        if (fabs(col(s, i, TMAP_IND_SUPPORT) - want) > 1e-3)
            fail_msg("row %zu: support %.6f, the answer's tokens %d..%d give %.6f", i,
                     col(s, i, TMAP_IND_SUPPORT), from, to, want);
        free(lp);
        free(prompt);
        free(response);
        tmap_sample_free(&smp);
    }
    assert_true(isnan(col(s, 2, TMAP_IND_SUPPORT))); /* no marker */
    assert_false(isnan(col(s, 2, TMAP_IND_LOSS)));
    tmap_model_free(single);
    tmap_scores_free(s);
    tmap_pool_free(own);
}

/* Embeddings computed one sample at a time, as the reference. */
static float *reference_embeddings(const struct tmap_pool *from, size_t n)
{
    struct tmap_model *single = test_load_model(TMAP_TEST_MODEL, 512, 512, 1);
    float *emb = calloc(n * DIM, sizeof *emb);
    struct tmap_error err = { 0 };
    for (size_t i = 0; i < n; i++) {
        int32_t *prompt, np, *response, nr;
        sample_tokens(from, i, &prompt, &np, &response, &nr);
        struct tmap_logprob_request q = { .prompt = prompt, .n_prompt = np, .response = response,
                                          .n_response = nr, .embedding = emb + i * DIM };
        struct tmap_logprob_result r;
        assert_int_equal(tmap_model_logprob(single, &q, 1, &r, &err), TMAP_OK);
        free(prompt);
        free(response);
    }
    tmap_model_free(single);
    return emb;
}

static double dot(const float *a, const float *b)
{
    double d = 0;
    for (int k = 0; k < DIM; k++)
        d += (double)a[k] * b[k];
    return d;
}

static int compare_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_diversity_relevance_brute_force(void **state)
{
    (void)state;
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = (1u << TMAP_IND_DIVERSITY) | (1u << TMAP_IND_RELEVANCE);
    p.val = val;
    p.knn_k = 5;
    p.relevance_m = 3;
    p.batch_samples = 16;
    struct tmap_scores *s = score(&p);
    float *e = reference_embeddings(pool, N_POOL), *ev = reference_embeddings(val, N_VAL);
    double sims[N_POOL];
    for (size_t i = 0; i < N_POOL; i++) {
        size_t n = 0;
        for (size_t j = 0; j < N_POOL; j++)
            if (j != i)
                sims[n++] = dot(e + i * DIM, e + j * DIM);
        qsort(sims, n, sizeof *sims, compare_desc);
        double div = 0;
        for (int k = 0; k < 5; k++)
            div += (1.0 - sims[k]) / 5;
        for (size_t j = 0; j < N_VAL; j++)
            sims[j] = dot(e + i * DIM, ev + j * DIM);
        qsort(sims, N_VAL, sizeof *sims, compare_desc);
        double rel = (sims[0] + sims[1] + sims[2]) / 3;
        if (fabs(col(s, i, TMAP_IND_DIVERSITY) - div) > 1e-4 || fabs(col(s, i, TMAP_IND_RELEVANCE) - rel) > 1e-4)
            fail_msg("row %zu: diversity %.6f vs %.6f, relevance %.6f vs %.6f", i,
                     col(s, i, TMAP_IND_DIVERSITY), div, col(s, i, TMAP_IND_RELEVANCE), rel);
    }
    free(e);
    free(ev);
    tmap_scores_free(s);
}

static int notices_seen;
static char last_notice[512];

static void count_notice(const char *msg, void *ud)
{
    (void)ud;
    notices_seen++;
    snprintf(last_notice, sizeof last_notice, "%s", msg);
}

/* Past ann_min_rows diversity comes from the approximate index; on 40 rows
 * it has one list, so it scans every row and must give the exact values
 * (bit for bit: the same neighbours, the same arithmetic). Without FAISS the
 * exact search runs, with a notice that says what it costs. */
static void test_diversity_through_index(void **state)
{
    (void)state;
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = 1u << TMAP_IND_DIVERSITY;
    p.knn_k = 5;
    p.ann_min_rows = 0; /* exact */
    struct tmap_scores *exact = score(&p);
    p.ann_min_rows = N_POOL;
    p.notice = count_notice;
    notices_seen = 0;
    struct tmap_scores *approx = score(&p);
    for (size_t i = 0; i < N_POOL; i++)
        if (col(approx, i, TMAP_IND_DIVERSITY) != col(exact, i, TMAP_IND_DIVERSITY))
            fail_msg("row %zu: through the index %.17g, exact %.17g", i,
                     col(approx, i, TMAP_IND_DIVERSITY), col(exact, i, TMAP_IND_DIVERSITY));
#if TMAP_HAVE_FAISS
    assert_int_equal(notices_seen, 1);
    assert_non_null(strstr(last_notice, "from an approximate index (FAISS IVF-Flat, 1 lists"));
#else
    assert_int_equal(notices_seen, 1);
    assert_non_null(strstr(last_notice, "built without FAISS"));
#endif
    tmap_scores_free(exact);
    tmap_scores_free(approx);
}

static void test_ratings(void **state)
{
    (void)state;
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = (1u << TMAP_IND_QUALITY) | (1u << TMAP_IND_COMPLEXITY);
    p.notice = count_notice;
    notices_seen = 0;
    struct tmap_scores *s = score(&p);
    /* The test model has no chat template: the output must say so. */
    assert_int_equal(notices_seen, 1);
    assert_non_null(strstr(last_notice, "no chat template"));

    /* Reference for row 3: its rating prompt, the six digit tokens, softmax. */
    struct tmap_rater r;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_rater_init(&r, model, &err), TMAP_OK);
    struct tmap_sample smp;
    assert_int_equal(tmap_pool_sample(pool, 3, &smp, &err), TMAP_OK);
    int32_t *tokens, n;
    assert_int_equal(tmap_rater_prompt(&r, &smp, TMAP_IND_QUALITY, &tokens, &n, &err), TMAP_OK);
    double lp[TMAP_RATING_LEVELS];
    for (int k = 0; k < TMAP_RATING_LEVELS; k++) {
        struct tmap_logprob_request q = { .prompt = tokens, .n_prompt = n, .response = &r.tokens[k], .n_response = 1 };
        struct tmap_logprob_result res;
        assert_int_equal(tmap_model_logprob(model, &q, 1, &res, &err), TMAP_OK);
        lp[k] = res.sum_logprob;
    }
    assert_true(fabs(col(s, 3, TMAP_IND_QUALITY) - tmap_rater_expected(lp)) < 1e-4);
    for (size_t i = 0; i < N_POOL; i++) {
        assert_true(col(s, i, TMAP_IND_QUALITY) >= 1.0 && col(s, i, TMAP_IND_QUALITY) <= 6.0);
        assert_true(col(s, i, TMAP_IND_COMPLEXITY) >= 1.0 && col(s, i, TMAP_IND_COMPLEXITY) <= 6.0);
    }
    /* The rating tokens are the digits themselves in the Llama-2 vocabulary. */
    assert_int_equal(r.tokens[0], 29896);
    free(tokens);
    tmap_sample_free(&smp);
    tmap_scores_free(s);
}

static void test_rater_expected(void **state)
{
    (void)state;
    const double certain3[6] = { -50, -50, 0, -50, -50, -50 };
    assert_true(fabs(tmap_rater_expected(certain3) - 3.0) < 1e-9);
    const double uniform[6] = { -2, -2, -2, -2, -2, -2 };
    assert_true(fabs(tmap_rater_expected(uniform) - 3.5) < 1e-12);
    const double half[6] = { log(0.5), -INFINITY, -INFINITY, -INFINITY, -INFINITY, log(0.5) };
    assert_true(fabs(tmap_rater_expected(half) - 3.5) < 1e-12);
}

/* ---- the store ---------------------------------------------------------- */

static void write_scores(const struct tmap_scores *s, const char *name, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", tmpdir, name);
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_scores_write_csv(s, pool, path, &err), TMAP_OK);
}

static void test_rerun_served_from_store(void **state)
{
    (void)state;
    char db[512], a[512], b[512];
    snprintf(db, sizeof db, "%s/rerun.db", tmpdir);
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = TMAP_IND_ALL;
    p.val = val;
    p.store_path = db;
    p.batch_samples = 16;
    struct tmap_scores *first = score(&p);
    struct tmap_score_stats st;
    tmap_scores_get_stats(first, &st);
    assert_int_equal(st.n_computed, N_POOL);
    assert_true(st.n_decode_calls > 0);

    struct tmap_scores *second = score(&p);
    tmap_scores_get_stats(second, &st);
    assert_int_equal(st.n_from_store, N_POOL);
    assert_int_equal(st.n_computed, 0);
    assert_int_equal(st.n_decode_calls, 0); /* no model work at all */
    assert_int_equal(st.n_tokens, 0);

    write_scores(first, "first.csv", a, sizeof a);
    write_scores(second, "second.csv", b, sizeof b);
    char *ta = slurp(a, NULL), *tb = slurp(b, NULL);
    assert_string_equal(ta, tb);
    assert_non_null(strstr(ta, "id,line,hash,loss,ifd,quality,complexity,diversity,relevance,steps,length,lexical,numeracy,support,coverage\n"));
    free(ta);
    free(tb);
    tmap_scores_free(first);
    tmap_scores_free(second);
}

/* The dry run's counts are the run's: the same tokens (validation
 * embeddings included), a measured speed, nothing written to the store;
 * after the run, everything is cached and nothing is left to decode. */
static void test_plan_matches_run(void **state)
{
    (void)state;
    char db[512];
    snprintf(db, sizeof db, "%s/plan.db", tmpdir);
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = TMAP_IND_ALL;
    p.val = val;
    p.store_path = db;
    p.batch_samples = 16;
    struct tmap_score_plan plan;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_score_plan(pool, model, &p, &plan, &err), TMAP_OK);
    assert_int_equal(plan.n_samples, N_POOL);
    assert_int_equal(plan.n_cached, 0);
    assert_true(plan.tokens_per_second > 0 && plan.seconds > 0);

    struct tmap_scores *s = score(&p);
    struct tmap_score_stats st;
    tmap_scores_get_stats(s, &st);
    assert_int_equal(st.n_computed, N_POOL); /* the plan stored nothing */
    assert_int_equal(plan.n_tokens, st.n_tokens);
    tmap_scores_free(s);

    assert_int_equal(tmap_score_plan(pool, model, &p, &plan, &err), TMAP_OK);
    assert_int_equal(plan.n_cached, N_POOL);
    assert_int_equal(plan.n_tokens, 0);
}

/* Has the store committed the loss of this pool row? */
static bool row_committed(struct tmap_store *store, const char *key, size_t row)
{
    struct tmap_record rec;
    tmap_pool_record(pool, row, &rec);
    double v;
    return tmap_store_get_value(store, key, rec.hash, "loss", &v);
}

/* A real `tmap score` process (exec'd: a forked copy of this process would
 * inherit OpenMP's thread pool, which does not survive fork) is killed with
 * SIGKILL once two batches are committed, while it works on the next. */
static void kill_mid_run(const char *db)
{
    struct tmap_model_info info;
    tmap_model_get_info(model, &info);
    char key[64];
    snprintf(key, sizeof key, "%s/plain", info.fingerprint);
    char out[600];
    snprintf(out, sizeof out, "%s/killed.csv", tmpdir);

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        execl(TMAP_BINARY, "tmap", "score", "--quiet", "-m", TMAP_TEST_MODEL, "-d", pool_path, "--cache", db,
              "--indicators", "loss,ifd,steps", "--batch-samples", "8", "-c", "512", "-b", "512", "-t", "2", "-o", out,
              (char *)NULL);
        _exit(127);
    }
    struct tmap_store *store = NULL;
    struct tmap_error err = { 0 };
    for (int tries = 0; tries < 6000; tries++) { /* 60 s at most */
        if (!store && access(db, F_OK) == 0)
            tmap_store_open(db, &store, &err);
        if (store && row_committed(store, key, 15))
            break;
        nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
    }
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    assert_true(WIFSIGNALED(status)); /* killed, not finished before the kill */
    assert_non_null(store);
    assert_true(row_committed(store, key, 15));
    tmap_store_close(store);
}

static void test_kill_resumes(void **state)
{
    (void)state;
    char db[512], a[512], b[512];
    snprintf(db, sizeof db, "%s/killed.db", tmpdir);
    kill_mid_run(db);

    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_IFD) | (1u << TMAP_IND_STEPS);
    p.store_path = db;
    p.batch_samples = 8;
    struct tmap_scores *resumed = score(&p);
    struct tmap_score_stats st;
    tmap_scores_get_stats(resumed, &st);
    /* Whole batches survive, nothing else: a multiple of 8, at least the
     * two seen committed; the rest is computed now. */
    assert_true(st.n_from_store >= 16 && st.n_from_store % 8 == 0);
    assert_true(st.n_computed > 0); /* the kill landed mid-run */
    assert_int_equal(st.n_computed, N_POOL - st.n_from_store);

    struct tmap_score_params fresh = p;
    fresh.store_path = NULL;
    struct tmap_scores *whole = score(&fresh);
    write_scores(resumed, "resumed.csv", a, sizeof a);
    write_scores(whole, "whole.csv", b, sizeof b);
    char *ta = slurp(a, NULL), *tb = slurp(b, NULL);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    tmap_scores_free(resumed);
    tmap_scores_free(whole);
}

/* ---- edges ------------------------------------------------------------- */

static void test_overflow_skips(void **state)
{
    (void)state;
    struct tmap_model *small = test_load_model(TMAP_TEST_MODEL, 64, 512, 2);
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_LENGTH);
    p.notice = count_notice;
    notices_seen = 0;
    struct tmap_scores *s = NULL;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_score(pool, small, &p, &s, &err), TMAP_OK);
    struct tmap_score_stats st;
    tmap_scores_get_stats(s, &st);
    assert_true(st.n_skipped > 0);
    assert_int_equal(notices_seen, (int)st.n_skipped);
    assert_non_null(strstr(last_notice, "do not fit the context"));
    size_t nan_rows = 0;
    for (size_t i = 0; i < N_POOL; i++) {
        nan_rows += isnan(col(s, i, TMAP_IND_LOSS));
        assert_false(isnan(col(s, i, TMAP_IND_LENGTH))); /* known without a pass */
        if (col(s, i, TMAP_IND_LENGTH) + 1 <= 64)
            assert_false(isnan(col(s, i, TMAP_IND_LOSS)));
    }
    assert_int_equal(nan_rows, st.n_skipped);
    tmap_scores_free(s);
    tmap_model_free(small);
}

static void test_relevance_without_val(void **state)
{
    (void)state;
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = (1u << TMAP_IND_RELEVANCE) | (1u << TMAP_IND_STEPS);
    p.notice = count_notice;
    notices_seen = 0;
    struct tmap_scores *s = score(&p);
    assert_int_equal(notices_seen, 1);
    assert_non_null(strstr(last_notice, "relevance needs validation data"));
    assert_true(isnan(col(s, 0, TMAP_IND_RELEVANCE)));
    assert_false(isnan(col(s, 0, TMAP_IND_STEPS)));
    tmap_scores_free(s);
}

static void test_extra_columns(void **state)
{
    (void)state;
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = 1u << TMAP_IND_STEPS;
    struct tmap_scores *s = score(&p);
    char path[512];
    struct tmap_error err = { 0 };
    snprintf(path, sizeof path, "%s/extra.csv", tmpdir);
    test_write_file(path, "id,reward,\"odd, name\"\n3,0.25,1\n1,-2,\n");
    assert_int_equal(tmap_scores_merge_csv(s, pool, path, &err), TMAP_OK);
    size_t reward = tmap_scores_find_column(s, "reward");
    size_t odd = tmap_scores_find_column(s, "odd, name");
    assert_int_not_equal(reward, SIZE_MAX);
    assert_true(tmap_scores_get(s, 2, reward) == 0.25); /* id 3 is line 3, row 2 */
    assert_true(tmap_scores_get(s, 0, reward) == -2.0);
    assert_true(isnan(tmap_scores_get(s, 0, odd)));
    assert_true(isnan(tmap_scores_get(s, 1, reward)));

    test_write_file(path, "id,other\n999,1\n");
    assert_int_equal(tmap_scores_merge_csv(s, pool, path, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "extra.csv:2: id \"999\" is not in"));
    test_write_file(path, "id,third\n2,abc\n");
    assert_int_equal(tmap_scores_merge_csv(s, pool, path, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "extra.csv:2: \"abc\" is not a number"));
    test_write_file(path, "name,x\n");
    assert_int_equal(tmap_scores_merge_csv(s, pool, path, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "extra.csv:1: the header must be id,NAME"));
    /* A user's column may be called hash: a score like any other, not the
     * content hash tmap's own scores files carry (which it would fail). */
    test_write_file(path, "id,hash\n1,0.5\n");
    assert_int_equal(tmap_scores_merge_csv(s, pool, path, &err), TMAP_OK);
    size_t hash = tmap_scores_find_column(s, "hash");
    assert_int_not_equal(hash, SIZE_MAX);
    assert_true(tmap_scores_get(s, 0, hash) == 0.5);
    tmap_scores_free(s);
}

static void test_indicator_list(void **state)
{
    (void)state;
    uint32_t mask;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_indicator_parse_list("loss,ifd", &mask, &err), TMAP_OK);
    assert_int_equal(mask, (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_IFD));
    assert_int_equal(tmap_indicator_parse_list("all", &mask, &err), TMAP_OK);
    assert_int_equal(mask, TMAP_IND_ALL);
    /* the default set, and tmap_score's default, hold support (docs/fidelity.md),
     * not yet coverage (opt-in: include/tmap.h) */
    assert_int_equal(tmap_indicator_parse_list("default", &mask, &err), TMAP_OK);
    assert_true(mask & (1u << TMAP_IND_SUPPORT));
    assert_int_equal(mask, TMAP_IND_ALL & ~(1u << TMAP_IND_COVERAGE));
    assert_int_equal(tmap_score_default_params().indicators, mask);
    assert_int_equal(tmap_indicator_parse_list("default,coverage", &mask, &err), TMAP_OK);
    assert_int_equal(mask, TMAP_IND_ALL);
    assert_int_equal(tmap_indicator_parse_list("steps,support", &mask, &err), TMAP_OK);
    assert_int_equal(mask, (1u << TMAP_IND_STEPS) | (1u << TMAP_IND_SUPPORT));
    assert_int_equal(tmap_indicator_parse_list("loss,bogus", &mask, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "unknown indicator 'bogus'"));
    /* A repeat by name is a slip; through "default" it is a union. */
    assert_int_equal(tmap_indicator_parse_list("loss,ifd,loss", &mask, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "indicator 'loss' is named twice"));
    assert_int_equal(tmap_indicator_parse_list("default,loss", &mask, &err), TMAP_OK);
    assert_int_equal(mask, TMAP_IND_DEFAULT);
    assert_int_equal(tmap_indicator_parse_list("loss,,ifd", &mask, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "empty item"));
    assert_int_equal(tmap_indicator_parse_list("loss,", &mask, &err), TMAP_ERR_USAGE);
    assert_int_equal(tmap_indicator_parse_list(",loss", &mask, &err), TMAP_ERR_USAGE);
}

static int setup(void **state)
{
    (void)state;
    if (!test_begin_group(tmpdir, sizeof tmpdir, "score"))
        return -1;
    test_gsm8k_slice(pool_path, sizeof pool_path, tmpdir, "pool.jsonl", "train", N_POOL);
    test_gsm8k_slice(val_path, sizeof val_path, tmpdir, "val.jsonl", "test", N_VAL);
    model = test_load_model(TMAP_TEST_MODEL, 512, 512, 4);
    pool = test_load_pool(pool_path);
    val = test_load_pool(val_path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tmap_pool_free(pool);
    tmap_pool_free(val);
    return test_end_group(model, tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_indicator_list),
        cmocka_unit_test(test_rater_expected),
        cmocka_unit_test(test_loss_ifd_length_text),
        cmocka_unit_test(test_support),
        cmocka_unit_test(test_diversity_relevance_brute_force),
        cmocka_unit_test(test_diversity_through_index),
        cmocka_unit_test(test_ratings),
        cmocka_unit_test(test_rerun_served_from_store),
        cmocka_unit_test(test_plan_matches_run),
        cmocka_unit_test(test_kill_resumes),
        cmocka_unit_test(test_overflow_skips),
        cmocka_unit_test(test_relevance_without_val),
        cmocka_unit_test(test_extra_columns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
