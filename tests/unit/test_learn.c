/*
 * test_learn.c - selection, the weight search on the real proxy, the output
 * files, and the whole run: counts are ceil(ratio x N), selected lines are
 * the input lines byte for byte, the same seed gives the same bytes, and a
 * reused subset spends no budget.
 */
#define _XOPEN_SOURCE 700 /* nftw, for helpers.h */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "tmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_POOL = 40, N_VAL = 12 };

static char tmpdir[256], pool_path[512], val_path[512];
static struct tmap_model *model;
static struct tmap_pool *pool, *val;
static struct tmap_scores *scores;

static void test_select_counts_and_bytes(void **state)
{
    (void)state;
    struct tmap_weights w;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_weights_uniform(scores, &w, &err), TMAP_OK);
    const double ratios[] = { 0.3, 0.1, 0.25, 1.0, 0.01 };
    const size_t expect[] = { 12, 4, 10, 40, 1 };
    for (int r = 0; r < 5; r++) {
        struct tmap_selection sel;
        assert_int_equal(tmap_select(pool, scores, &w, ratios[r], false, &sel, &err), TMAP_OK);
        assert_int_equal(sel.n, expect[r]);
        tmap_selection_free(&sel);
    }
    struct tmap_selection sel;
    assert_int_equal(tmap_select(pool, scores, &w, 0.3, false, &sel, &err), TMAP_OK);
    char out[600];
    snprintf(out, sizeof out, "%s/selected.jsonl", tmpdir);
    assert_int_equal(tmap_write_selected(pool, &sel, out, &err), TMAP_OK);
    /* Every selected line is its input line, byte for byte. */
    char *text = slurp(out, NULL), *line = text;
    for (size_t i = 0; i < sel.n; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, sel.rows[i], &rec);
        assert_memory_equal(line, rec.raw, rec.raw_bytes);
        assert_int_equal(line[rec.raw_bytes], '\n');
        line += rec.raw_bytes + 1;
    }
    assert_int_equal(*line, '\0');
    /* The selected rows have the highest combined scores. */
    double lowest_in = INFINITY, highest_out = -INFINITY;
    for (size_t i = 0; i < N_POOL; i++) {
        if (sel.selected[i])
            lowest_in = fmin(lowest_in, sel.combined[i]);
        else
            highest_out = fmax(highest_out, sel.combined[i]);
    }
    assert_true(lowest_in >= highest_out);
    free(text);
    tmap_selection_free(&sel);

    assert_int_equal(tmap_select(pool, scores, &w, 1.5, false, &sel, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "ratio 1.5"));
    tmap_weights_free(&w);
}

static void test_diversity_filter(void **state)
{
    (void)state;
    struct tmap_weights w;
    struct tmap_selection sel;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_weights_uniform(scores, &w, &err), TMAP_OK);
    assert_int_equal(tmap_select(pool, scores, &w, 0.3, false, &sel, &err), TMAP_OK);
    /* Four orthogonal directions: row i points along axis i % 4, so at a
     * threshold of 0.5 only one row per direction can be kept. */
    float emb[N_POOL * 4] = { 0 };
    for (size_t i = 0; i < N_POOL; i++)
        emb[i * 4 + i % 4] = 1.0f;
    size_t best = 0;
    for (size_t i = 1; i < N_POOL; i++)
        if (sel.combined[i] > sel.combined[best])
            best = i;
    assert_int_equal(tmap_selection_diversify(pool, &sel, emb, 4, 0.5, &err), TMAP_OK);
    assert_int_equal(sel.n, 4);
    bool seen[4] = { 0 };
    for (size_t i = 0; i < sel.n; i++) {
        assert_false(seen[sel.rows[i] % 4]);
        seen[sel.rows[i] % 4] = true;
    }
    assert_true(sel.selected[best]); /* the walk starts at the best sample */
    assert_int_equal(tmap_selection_diversify(pool, &sel, emb, 4, 1.5, &err), TMAP_ERR_USAGE);
    tmap_selection_free(&sel);
    tmap_weights_free(&w);
}

/* A pool whose rows 5, 6 and 9 repeat rows 0, 3 and 0 exactly (same
 * content, so same scores), and whose row 7 differs from row 1 only in its
 * id: ids are not content, so it is a duplicate too. */
static void test_duplicates_enter_once(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/dups.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    const char *q[] = { "What is 2+3?", "What is 7*6?", "Name a prime.", "What is 10-4?", "What is 9/3?" };
    const char *a[] = { "2+3=5\\n#### 5", "7*6=42\\nSo 42.\\n#### 42", "Two.\\n#### 2", "10-4=6\\n#### 6",
                        "9/3=3\\n#### 3" };
    int src[] = { 0, 1, 2, 3, 4, 0, 3, 1, 2, 0 };
    for (int i = 0; i < 10; i++)
        fprintf(f, "{\"id\": \"r%d\", \"question\": \"%s\", \"answer\": \"%s\"}\n", i, q[src[i] % 5],
                i == 8 ? "Three.\\n#### 3" : a[src[i]]);
    fclose(f);
    struct tmap_pool *dp = test_load_pool(path);
    struct tmap_error err = { 0 };
    struct tmap_score_params sp = tmap_score_default_params();
    sp.indicators = (1u << TMAP_IND_STEPS) | (1u << TMAP_IND_NUMERACY);
    struct tmap_scores *ds;
    assert_int_equal(tmap_score(dp, model, &sp, &ds, &err), TMAP_OK);
    struct tmap_weights w;
    assert_int_equal(tmap_weights_uniform(ds, &w, &err), TMAP_OK);

    /* 10 rows, 4 duplicates (5, 6, 7, 9): 6 distinct contents. */
    struct tmap_selection sel;
    assert_int_equal(tmap_select(dp, ds, &w, 0.5, false, &sel, &err), TMAP_OK);
    assert_int_equal(sel.n_duplicates, 4);
    assert_int_equal(sel.n, 5);
    for (size_t i = 0; i < sel.n; i++)
        for (size_t k = i + 1; k < sel.n; k++) {
            struct tmap_record ra, rb;
            tmap_pool_record(dp, sel.rows[i], &ra);
            tmap_pool_record(dp, sel.rows[k], &rb);
            assert_true(memcmp(ra.hash, rb.hash, 16) != 0);
        }
    assert_false(sel.selected[5] || sel.selected[6] || sel.selected[7] || sel.selected[9]);
    tmap_selection_free(&sel);
    /* Asked for more than there are distinct records: all 6 and no more. */
    assert_int_equal(tmap_select(dp, ds, &w, 1.0, false, &sel, &err), TMAP_OK);
    assert_int_equal(sel.n, 6);
    tmap_selection_free(&sel);
    /* keep_duplicates: the old behaviour, every row eligible. */
    assert_int_equal(tmap_select(dp, ds, &w, 1.0, true, &sel, &err), TMAP_OK);
    assert_int_equal(sel.n, 10);
    assert_int_equal(sel.n_duplicates, 0);
    tmap_selection_free(&sel);
    tmap_weights_free(&w);
    tmap_scores_free(ds);
    tmap_pool_free(dp);
}

static struct tmap_learn_result learn_once(uint64_t seed, size_t iters)
{
    struct tmap_pool *tiny = test_load_pool(val_path);
    struct tmap_error err = { 0 };
    struct tmap_learn_params lp = tmap_learn_default_params();
    lp.iters = iters;
    lp.seed = seed;
    lp.proxy.k = 2;
    lp.proxy.draws = 1;
    struct tmap_proxy *px;
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &lp.proxy, &px, &err), TMAP_OK);
    struct tmap_learn_result r;
    if (tmap_learn(pool, scores, px, &lp, &r, &err))
        fail_msg("%s", err.message);
    tmap_proxy_free(px);
    tmap_pool_free(tiny);
    return r;
}

static void test_learn(void **state)
{
    (void)state;
    struct tmap_learn_result a = learn_once(5, 8), b = learn_once(5, 8);
    assert_int_equal(a.n_spent, 8);
    assert_true(a.n_trace >= 8);
    double sum = 0;
    for (size_t j = 0; j < a.weights.d; j++) {
        assert_true(a.weights.weights[j] >= 0);
        sum += a.weights.weights[j];
        assert_true(a.weights.weights[j] == b.weights.weights[j]); /* deterministic */
    }
    assert_true(fabs(sum - 1.0) < 1e-9);
    size_t spent = 0;
    for (size_t i = 0; i < a.n_trace; i++) {
        spent += !a.trace[i].reused;
        /* a reused entry names a subset an earlier entry already judged */
        bool seen = false;
        for (size_t k = 0; k < i && a.trace[i].reused && !seen; k++)
            seen = a.trace[k].subset_hash == a.trace[i].subset_hash;
        assert_true(!a.trace[i].reused || seen);
    }
    assert_int_equal(spent, a.n_spent);
    /* The chosen weights were evaluated: their value is in the trace. */
    bool found = false;
    for (size_t i = 0; i < a.n_trace; i++)
        found |= a.trace[i].value == a.weights.proxy_value;
    assert_true(found);

    char wpath[600], tpath[600];
    snprintf(wpath, sizeof wpath, "%s/weights.json", tmpdir);
    snprintf(tpath, sizeof tpath, "%s/trace.csv", tmpdir);
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_weights_write_json(&a.weights, &a.baselines, "{\"seed\": 5}", wpath, &err), TMAP_OK);
    assert_int_equal(tmap_trace_write_csv(&a, tpath, &err), TMAP_OK);
    struct tmap_weights back;
    assert_int_equal(tmap_weights_read_json(wpath, &back, &err), TMAP_OK);
    assert_int_equal(back.d, a.weights.d);
    for (size_t j = 0; j < back.d; j++) {
        assert_string_equal(back.names[j], a.weights.names[j]);
        assert_true(back.weights[j] == a.weights.weights[j]); /* 17 digits: exact */
    }
    char *trace = slurp(tpath, NULL);
    size_t lines = 0;
    for (char *c = trace; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, a.n_trace + 1);
    assert_non_null(strstr(trace, "iteration,w_loss,w_ifd"));
    free(trace);
    tmap_weights_free(&back);
    tmap_learn_result_free(&a);
    tmap_learn_result_free(&b);

    assert_int_equal(tmap_weights_read_json("/nonexistent/w.json", &back, &err), TMAP_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/w.json"));
}

static double trace_value_at(const struct tmap_learn_result *r, const double *w)
{
    for (size_t i = 0; i < r->n_trace; i++)
        if (memcmp(r->trace[i].w, w, r->weights.d * sizeof *w) == 0)
            return r->trace[i].value;
    return NAN;
}

/* Every learn measures itself: equal weights and each indicator alone (the
 * search's own values, from its memo), random subsets, fresh draws of the
 * learned subset, and a verdict that follows from them. */
static void test_baselines(void **state)
{
    (void)state;
    struct tmap_learn_result a = learn_once(5, 8), b = learn_once(5, 8);
    const struct tmap_baselines *bl = &a.baselines;
    size_t d = a.weights.d;
    assert_int_equal(bl->d, d);
    assert_int_equal(bl->n_random, 5);
    assert_int_equal(bl->n_redraws, 4);
    double *w = calloc(d, sizeof *w);
    for (size_t j = 0; j < d; j++)
        w[j] = 1.0 / (double)d;
    assert_true(bl->equal == trace_value_at(&a, w));
    for (size_t j = 0; j < d; j++) {
        memset(w, 0, d * sizeof *w);
        w[j] = 1.0;
        assert_true(bl->single[j] == trace_value_at(&a, w));
    }
    free(w);
    /* Random subsets differ from each other and from the learned subset's
     * value; redraws are other demonstrations, so other values. */
    double mean = 0, ss = 0;
    for (size_t i = 0; i < bl->n_random; i++) {
        assert_true(isfinite(bl->random[i]) && bl->random[i] < 0);
        mean += bl->random[i];
    }
    mean /= (double)bl->n_random;
    for (size_t i = 0; i < bl->n_random; i++)
        ss += (bl->random[i] - mean) * (bl->random[i] - mean);
    assert_true(fabs(bl->random_mean - mean) < 1e-12);
    assert_true(fabs(bl->random_sd - sqrt(ss / (double)(bl->n_random - 1))) < 1e-12);
    assert_true(bl->random_sd > 0);
    assert_true(bl->redraws[0] != bl->redraws[1]);
    double z = (bl->learned_mean - bl->random_mean) /
               sqrt(bl->learned_sd * bl->learned_sd + bl->random_sd * bl->random_sd);
    assert_true(fabs(bl->z - z) < 1e-9);
    enum tmap_verdict v = z >= 2 ? TMAP_VERDICT_BEATS : z <= -2 ? TMAP_VERDICT_LOSES : TMAP_VERDICT_WITHIN;
    assert_int_equal(bl->verdict, v);
    char line[256];
    tmap_baselines_describe(bl, line, sizeof line);
    assert_non_null(strstr(line, "vs random"));
    assert_non_null(strstr(line, v == TMAP_VERDICT_BEATS ? "beats random subsets" : "random subsets"));
    /* Deterministic, like the rest of the search. */
    for (size_t i = 0; i < bl->n_random; i++)
        assert_true(bl->random[i] == b.baselines.random[i]);
    for (size_t i = 0; i < bl->n_redraws; i++)
        assert_true(bl->redraws[i] == b.baselines.redraws[i]);
    tmap_learn_result_free(&a);
    tmap_learn_result_free(&b);

    /* Without random subsets there is no verdict, and it says so. */
    struct tmap_baselines none = { .n_random = 0 };
    tmap_baselines_describe(&none, line, sizeof line);
    assert_non_null(strstr(line, "not measured"));
}

static void run_into(const char *dir, struct tmap_run_summary *s)
{
    struct tmap_run_params p = tmap_run_default_params();
    p.model.path = TMAP_TEST_MODEL;
    p.model.n_ctx = 2048;
    p.model.n_threads = 2;
    p.model.n_batch = 512;
    p.pool_path = pool_path;
    p.val_path = val_path;
    p.out_dir = dir;
    p.tiny.n = 4;
    p.learn.iters = 6;
    p.learn.proxy.k = 2;
    p.learn.proxy.draws = 1;
    p.score.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_STEPS) | (1u << TMAP_IND_DIVERSITY) |
                         (1u << TMAP_IND_LENGTH);
    struct tmap_error err = { 0 };
    if (tmap_run(&p, s, &err))
        fail_msg("%s", err.message);
}

static void test_run_is_reproducible(void **state)
{
    (void)state;
    char a[600], b[600], fa[700], fb[700];
    snprintf(a, sizeof a, "%s/run-a", tmpdir);
    snprintf(b, sizeof b, "%s/run-b", tmpdir);
    struct tmap_run_summary sa, sb;
    run_into(a, &sa);
    run_into(b, &sb);
    assert_int_equal(sa.n_selected, 12);
    assert_int_equal(sa.weights.d, 4);
    const char *files[] = { "selected.jsonl", "weights.json", "scores.csv", "tiny.jsonl", "report.html" };
    for (int f = 0; f < 5; f++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[f]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[f]);
        size_t na, nb;
        char *ta = slurp(fa, &na), *tb = slurp(fb, &nb);
        if (f < 4) {
            assert_int_equal(na, nb);
            assert_memory_equal(ta, tb, na);
        }
        assert_true(na > 0);
        free(ta);
        free(tb);
    }
    /* Again into a, whose store now answers every proxy value: the search
     * must stop where the first run stopped and learn the same weights. */
    struct tmap_run_summary sc;
    run_into(a, &sc);
    for (int f = 0; f < 2; f++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[f]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[f]);
        size_t na, nb;
        char *ta = slurp(fa, &na), *tb = slurp(fb, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ta, tb, na);
        free(ta);
        free(tb);
    }
    assert_int_equal(sc.n_evaluations, sa.n_evaluations);
    tmap_run_summary_free(&sa);
    tmap_run_summary_free(&sb);
    tmap_run_summary_free(&sc);
}

static int setup(void **state)
{
    (void)state;
    if (!test_begin_group(tmpdir, sizeof tmpdir, "learn"))
        return -1;
    test_gsm8k_slice(pool_path, sizeof pool_path, tmpdir, "pool.jsonl", "train", N_POOL);
    test_gsm8k_slice(val_path, sizeof val_path, tmpdir, "val.jsonl", "test", N_VAL);
    model = test_load_model(TMAP_TEST_MODEL, 2048, 512, 6);
    pool = test_load_pool(pool_path);
    val = test_load_pool(val_path);
    struct tmap_error err = { 0 };
    struct tmap_score_params sp = tmap_score_default_params();
    sp.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_IFD) | (1u << TMAP_IND_STEPS) |
                    (1u << TMAP_IND_NUMERACY) | (1u << TMAP_IND_LEXICAL);
    return tmap_score(pool, model, &sp, &scores, &err) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    tmap_scores_free(scores);
    tmap_pool_free(pool);
    tmap_pool_free(val);
    return test_end_group(model, tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_counts_and_bytes),
        cmocka_unit_test(test_diversity_filter),
        cmocka_unit_test(test_duplicates_enter_once),
        cmocka_unit_test(test_learn),
        cmocka_unit_test(test_baselines),
        cmocka_unit_test(test_run_is_reproducible),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
