/*
 * test_proxy.c - tiny sets (anchors deterministic by seed, weights summing
 * to 1, the file round trip) and the ICL proxy: shared-prefix values equal
 * naive ones, values equal a hand-built computation, knn uses the true
 * nearest demonstrations, and the memo serves repeats with no model work;
 * demonstrations that outgrow the context are left out and counted; the
 * fine-tune proxy tells the task's records from off-task text, equals
 * training into a file by hand, trains only --train-layers' tensors when
 * asked, and reports a model file changed under it.
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
#include "util/random.h"

#include <ggml-cpu.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { N_DEMOS = 24, N_VAL = 30 };

static char tmpdir[256], demos_path[512], val_path[512];
static struct tmap_model *model;
static struct tmap_pool *demos, *val;

static void all_rows(size_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rows[i] = i;
}

/* ---- tiny sets ---------------------------------------------------------- */

static void test_tiny_anchors(void **state)
{
    (void)state;
    struct tmap_tiny_params p = tmap_tiny_default_params();
    p.n = 6;
    p.seed = 3;
    struct tmap_tiny a, b, c;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_tiny_select(val, model, &p, &a, &err), TMAP_OK);
    assert_int_equal(tmap_tiny_select(val, model, &p, &b, &err), TMAP_OK);
    assert_int_equal(a.n, 6);
    double sum = 0;
    for (size_t i = 0; i < a.n; i++) {
        sum += a.weights[i];
        assert_int_equal(a.rows[i], b.rows[i]); /* deterministic by seed */
        assert_true(a.weights[i] == b.weights[i]);
        assert_true(a.weights[i] > 0);
        if (i > 0)
            assert_true(a.rows[i] > a.rows[i - 1]); /* distinct, in file order */
        /* weights are cluster shares: multiples of 1/N_VAL */
        double count = a.weights[i] * N_VAL;
        assert_true(fabs(count - round(count)) < 1e-9);
    }
    assert_true(fabs(sum - 1.0) < 1e-12);

    p.mode = TMAP_TINY_RANDOM;
    assert_int_equal(tmap_tiny_select(val, NULL, &p, &c, &err), TMAP_OK);
    for (size_t i = 0; i < c.n; i++)
        assert_true(fabs(c.weights[i] - 1.0 / 6) < 1e-12);

    /* More anchors than items: every item, equal weights. */
    struct tmap_tiny all;
    p.mode = TMAP_TINY_ANCHORS;
    p.n = 1000;
    assert_int_equal(tmap_tiny_select(val, model, &p, &all, &err), TMAP_OK);
    assert_int_equal(all.n, N_VAL);

    /* The file round trip keeps the weights, and records stay readable. */
    char path[600];
    snprintf(path, sizeof path, "%s/tiny.jsonl", tmpdir);
    assert_int_equal(tmap_tiny_write(&a, val, path, &err), TMAP_OK);
    struct tmap_pool *tiny = test_load_pool(path);
    assert_int_equal(tmap_pool_size(tiny), 6);
    double w[6];
    assert_int_equal(tmap_tiny_weights(tiny, w, &err), TMAP_OK);
    for (size_t i = 0; i < 6; i++)
        assert_true(fabs(w[i] - a.weights[i]) < 1e-15);
    struct tmap_record r0, v0;
    tmap_pool_record(tiny, 0, &r0);
    tmap_pool_record(val, a.rows[0], &v0);
    assert_memory_equal(r0.hash, v0.hash, 16); /* same content */
    tmap_pool_free(tiny);

    tmap_tiny_free(&a);
    tmap_tiny_free(&b);
    tmap_tiny_free(&c);
    tmap_tiny_free(&all);
}

/* A validation set whose items repeat one another: never more anchors
 * than distinct items, none of them twice, each weighted by its copies.
 * (A medoid used to land on a repeat, or twice on one row: a unit vector's
 * distance to itself is about 1e-7 in floats, so the seeding kept drawing
 * once every distinct item was a medoid; the extra anchor had weight 0.) */
static void test_tiny_repeats(void **state)
{
    (void)state;
    char path[600], line[8192];
    snprintf(path, sizeof path, "%s/repeats.jsonl", tmpdir);
    FILE *in = fopen(val_path, "r"), *out = fopen(path, "w");
    assert_non_null(in);
    assert_non_null(out);
    char first[3][8192];
    for (int i = 0; fgets(line, sizeof line, in); i++) { /* the items, then items 0, 1, 0 again */
        fputs(line, out);
        if (i < 2)
            memcpy(first[i], line, sizeof line);
    }
    fputs(first[0], out);
    fputs(first[1], out);
    fputs(first[0], out);
    fclose(in);
    fclose(out);
    struct tmap_pool *rep = test_load_pool(path);
    const size_t n = N_VAL + 3;
    assert_int_equal(tmap_pool_size(rep), n);
    struct tmap_tiny_params p = tmap_tiny_default_params();
    p.seed = 3;
    struct tmap_error err = { 0 };
    size_t asked[] = { N_VAL - 1, N_VAL, N_VAL + 1, n, 1000 };
    for (size_t a = 0; a < sizeof asked / sizeof *asked; a++) {
        p.n = asked[a];
        struct tmap_tiny t;
        assert_int_equal(tmap_tiny_select(rep, model, &p, &t, &err), TMAP_OK);
        assert_int_equal(t.n, asked[a] < N_VAL ? asked[a] : N_VAL);
        double sum = 0;
        for (size_t i = 0; i < t.n; i++) {
            struct tmap_record r;
            tmap_pool_record(rep, t.rows[i], &r);
            assert_true(t.weights[i] > 0);
            sum += t.weights[i];
            for (size_t j = 0; j < i; j++) {
                struct tmap_record q;
                tmap_pool_record(rep, t.rows[j], &q);
                assert_true(memcmp(r.hash, q.hash, 16) != 0); /* no content twice */
            }
        }
        assert_true(fabs(sum - 1.0) < 1e-12);
        if (t.n == N_VAL) { /* one anchor per distinct item: item 0 has 3 copies, item 1 2 */
            assert_true(fabs(t.weights[0] - 3.0 / n) < 1e-12);
            assert_true(fabs(t.weights[1] - 2.0 / n) < 1e-12);
        }
        tmap_tiny_free(&t);
    }
    tmap_pool_free(rep);
}

/* ---- the proxy ---------------------------------------------------------- */

static struct tmap_pool *tiny_pool(size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/tiny%zu.jsonl", tmpdir, n);
    copy_lines(TMAP_SOURCE_DIR "/data/gsm8k/test.jsonl", path, 0, (int)n);
    return test_load_pool(path);
}

static double eval(struct tmap_proxy *px, const double *scores, struct tmap_proxy_stats *st)
{
    size_t rows[N_DEMOS];
    all_rows(rows, N_DEMOS);
    double v;
    struct tmap_error err = { 0 };
    if (tmap_proxy_eval(px, demos, rows, N_DEMOS, scores, &v, st, &err))
        fail_msg("%s", err.message);
    return v;
}

static struct tmap_proxy *make_proxy(const struct tmap_pool *tiny, struct tmap_proxy_params p)
{
    struct tmap_proxy *px;
    struct tmap_error err = { 0 };
    if (tmap_proxy_create(model, tiny, NULL, &p, &px, &err))
        fail_msg("%s", err.message);
    return px;
}

/* The fine-tune proxy, one draw of n records: what its tests vary from. */
static struct tmap_proxy_params ft_params(size_t n_records)
{
    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.kind = TMAP_PROXY_FINETUNE;
    p.draws = 1;
    p.ft_records = n_records;
    return p;
}

static void test_shared_equals_naive(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(8);
    for (int policy = 0; policy < 2; policy++) {
        struct tmap_proxy_params p = tmap_proxy_default_params();
        p.k = 4;
        p.policy = (enum tmap_demo_policy)policy;
        struct tmap_proxy *shared = make_proxy(tiny, p);
        p.share_prefix = false;
        struct tmap_proxy *naive = make_proxy(tiny, p);
        struct tmap_proxy_stats ss, sn;
        double vs = eval(shared, NULL, &ss), vn = eval(naive, NULL, &sn);
        if (fabs(vs - vn) > 1e-4)
            fail_msg("policy %d: shared %.8f vs naive %.8f", policy, vs, vn);
        assert_true(vs < 0.0 && isfinite(vs));
        assert_true(ss.n_tokens * 2 < sn.n_tokens); /* the demonstrations were decoded once */
        tmap_proxy_free(shared);
        tmap_proxy_free(naive);
    }
    tmap_pool_free(tiny);
}

/* Groups: each group of the tiny set draws its own demonstrations and keeps
 * its own shared prefix. One group is the proxy as it always was (same
 * value); several give other values, equal to the unshared computation,
 * at the cost of one prefix per group; more groups than items is capped. */
static void test_groups(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(8);
    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.k = 3;
    p.policy = TMAP_DEMOS_RANDOM;
    p.draws = 1;
    struct tmap_proxy *one = make_proxy(tiny, p);
    p.groups = 4;
    struct tmap_proxy *four = make_proxy(tiny, p);
    p.share_prefix = false;
    struct tmap_proxy *naive = make_proxy(tiny, p);
    p.share_prefix = true;
    p.groups = 1000;
    struct tmap_proxy *capped = make_proxy(tiny, p);
    p.groups = 8;
    struct tmap_proxy *eight = make_proxy(tiny, p);
    struct tmap_proxy_stats s1, s4, sn, sc, s8;
    double v1 = eval(one, NULL, &s1), v4 = eval(four, NULL, &s4), vn = eval(naive, NULL, &sn);
    double vc = eval(capped, NULL, &sc), v8 = eval(eight, NULL, &s8);
    assert_true(v1 != v4);                  /* other demonstrations for groups 1..3 */
    if (fabs(v4 - vn) > 1e-4)
        fail_msg("4 groups: shared %.8f vs naive %.8f", v4, vn);
    assert_true(s4.n_tokens < sn.n_tokens); /* each group's demonstrations decoded once */
    assert_true(s1.n_tokens < s4.n_tokens); /* ...but four prefixes cost more than one */
    assert_true(vc == v8);                  /* 1000 groups of 8 items: 8 groups */
    /* Group 0 draws as one group does: with one item per group, item 0's
     * value is the one-group proxy's item 0 value, so the two proxies agree
     * when the tiny set is that single item. */
    struct tmap_pool *single = tiny_pool(1);
    p.groups = 1;
    struct tmap_proxy *a = make_proxy(single, p);
    p.groups = 5;
    struct tmap_proxy *b = make_proxy(single, p);
    assert_true(eval(a, NULL, NULL) == eval(b, NULL, NULL));
    tmap_proxy_free(a);
    tmap_proxy_free(b);
    tmap_pool_free(single);
    tmap_proxy_free(one);
    tmap_proxy_free(four);
    tmap_proxy_free(naive);
    tmap_proxy_free(capped);
    tmap_proxy_free(eight);
    tmap_pool_free(tiny);
}

/* The proxy value for given demonstrations, built by hand: the plain
 * few-shot text, one teacher-forced pass per item, the mean (uniform
 * weights: the tiny file has none). */
static double by_hand_on(struct tmap_model *m, const struct tmap_pool *tiny, size_t n_items,
                         size_t (*demo_of)(size_t item, size_t j), size_t k)
{
    struct tmap_error err = { 0 };
    double sum = 0;
    for (size_t i = 0; i < n_items; i++) {
        char text[16384] = "";
        for (size_t j = 0; j < k; j++) {
            struct tmap_sample d;
            assert_int_equal(tmap_pool_sample(demos, demo_of(i, j), &d, &err), TMAP_OK);
            snprintf(text + strlen(text), sizeof text - strlen(text), "Query: %s\nAnswer: %s\n\n", d.prompt, d.response);
            tmap_sample_free(&d);
        }
        struct tmap_sample q;
        assert_int_equal(tmap_pool_sample(tiny, i, &q, &err), TMAP_OK);
        snprintf(text + strlen(text), sizeof text - strlen(text), "Query: %s\nAnswer:", q.prompt);
        int32_t *pt, np, *rt, nr;
        assert_int_equal(tmap_model_tokenize(m, text, true, &pt, &np, &err), TMAP_OK);
        assert_int_equal(tmap_model_tokenize(m, q.response, false, &rt, &nr, &err), TMAP_OK);
        struct tmap_logprob_request req = { .prompt = pt, .n_prompt = np, .response = rt, .n_response = nr };
        struct tmap_logprob_result res;
        assert_int_equal(tmap_model_logprob(m, &req, 1, &res, &err), TMAP_OK);
        sum += res.sum_logprob / res.n_tokens;
        free(pt);
        free(rt);
        tmap_sample_free(&q);
    }
    return sum / (double)n_items;
}

static double by_hand(const struct tmap_pool *tiny, size_t n_items, size_t (*demo_of)(size_t item, size_t j),
                      size_t k)
{
    return by_hand_on(model, tiny, n_items, demo_of, k);
}

static size_t top_demo(size_t item, size_t j)
{
    (void)item;
    /* scores below rank rows 23, 22, 21 first */
    return N_DEMOS - 1 - j;
}

static void test_top_by_hand(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(3);
    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.k = 3;
    struct tmap_proxy *px = make_proxy(tiny, p);
    double scores[N_DEMOS];
    for (size_t i = 0; i < N_DEMOS; i++)
        scores[i] = (double)i;
    double v = eval(px, scores, NULL);
    double ref = by_hand(tiny, 3, top_demo, 3);
    if (fabs(v - ref) > 1e-4)
        fail_msg("top: proxy %.8f vs by hand %.8f", v, ref);
    tmap_proxy_free(px);
    tmap_pool_free(tiny);
}

/* The demonstration records with tiny item 0 (of tiny_pool(3)) appended
 * as row N_DEMOS, in tmpdir/name. */
static struct tmap_pool *leaky_demos(const char *name)
{
    char path[600], item[600];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    snprintf(item, sizeof item, "%s/tiny3.jsonl", tmpdir);
    copy_lines(demos_path, path, 0, N_DEMOS);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    char *text = slurp(item, NULL);
    fwrite(text, 1, strcspn(text, "\n") + 1, f);
    free(text);
    fclose(f);
    struct tmap_pool *leaky = test_load_pool(path);
    assert_int_equal(tmap_pool_size(leaky), N_DEMOS + 1);
    return leaky;
}

/* A demonstration pool that holds a tiny item's own record: the proxy never
 * draws it (it would hand the item its answer), so the subset with the copy
 * is judged exactly as the subset without it, even when the copy scores
 * highest under the top policy; a subset of copies alone is refused. */
static void test_tiny_copies_never_drawn(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(3);
    struct tmap_pool *leaky = leaky_demos("leaky-demos.jsonl");

    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.k = 3;
    struct tmap_proxy *px = make_proxy(tiny, p);
    double scores[N_DEMOS + 1];
    size_t rows[N_DEMOS + 1];
    for (size_t i = 0; i <= N_DEMOS; i++) {
        scores[i] = (double)i; /* the copy, last, scores highest */
        rows[i] = i;
    }
    double with_copy, without;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_proxy_eval(px, leaky, rows, N_DEMOS + 1, scores, &with_copy, NULL, &err), TMAP_OK);
    assert_int_equal(tmap_proxy_eval(px, leaky, rows, N_DEMOS, scores, &without, NULL, &err), TMAP_OK);
    assert_true(isfinite(with_copy));
    assert_true(with_copy == without);
    struct tmap_proxy_counters c;
    assert_int_equal(tmap_proxy_count_demos(px, leaky, rows, N_DEMOS + 1, scores, &c, &err), TMAP_OK);
    assert_int_equal(c.n_demos_wanted, 3 * 3);

    size_t only_copy = N_DEMOS;
    double v;
    assert_int_equal(tmap_proxy_eval(px, leaky, &only_copy, 1, scores, &v, NULL, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "every one of the subset's 1 records asks a tiny item's question"));
    tmap_proxy_free(px);
    tmap_pool_free(leaky);
    tmap_pool_free(tiny);
}

/* The memo keys a value by the rows a draw may use. Subsets a and b differ
 * only behind a copy of a tiny item, which scores highest: the top 3 of
 * each as given are the same (the copy and rows N-1, N-2), but the draws,
 * without the copy, take row N-3 for a and row 0 for b. b's value must be
 * b's own, not a's served from the memo. */
static void test_memo_keys_rows_drawn(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(3);
    struct tmap_pool *leaky = leaky_demos("leaky-memo.jsonl");
    char db[600];
    snprintf(db, sizeof db, "%s/leaky-memo.db", tmpdir);
    double scores[N_DEMOS + 1];
    for (size_t i = 0; i <= N_DEMOS; i++)
        scores[i] = (double)i;
    size_t a[] = { N_DEMOS, N_DEMOS - 1, N_DEMOS - 2, N_DEMOS - 3 };
    size_t b[] = { N_DEMOS, N_DEMOS - 1, N_DEMOS - 2, 0 };

    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.k = 3;
    struct tmap_proxy *plain = make_proxy(tiny, p);
    p.store_path = db;
    struct tmap_proxy *memo = make_proxy(tiny, p);
    struct tmap_error err = { 0 };
    double va, vb, vb_memo, va_again;
    struct tmap_proxy_stats sa, sb;
    assert_int_equal(tmap_proxy_eval(plain, leaky, a, 4, scores, &va, NULL, &err), TMAP_OK);
    assert_int_equal(tmap_proxy_eval(plain, leaky, b, 4, scores, &vb, NULL, &err), TMAP_OK);
    assert_true(va != vb); /* else the test could not tell the keys apart */
    assert_int_equal(tmap_proxy_eval(memo, leaky, a, 4, scores, &va_again, &sa, &err), TMAP_OK);
    assert_int_equal(tmap_proxy_eval(memo, leaky, b, 4, scores, &vb_memo, &sb, &err), TMAP_OK);
    assert_false(sb.from_memo);
    assert_true(va_again == va && vb_memo == vb);
    /* The same subset without its copy is drawn alike: one value, one key. */
    assert_int_equal(tmap_proxy_eval(memo, leaky, b + 1, 3, scores, &vb_memo, &sb, &err), TMAP_OK);
    assert_true(sb.from_memo);
    assert_true(vb_memo == vb);
    tmap_proxy_free(plain);
    tmap_proxy_free(memo);
    tmap_pool_free(leaky);
    tmap_pool_free(tiny);
}

/* knn reference: embeddings of both sides, brute-force nearest, nearest last. */
static float *tiny_emb, *demo_emb;
static int32_t emb_dim;

static size_t knn_demo(size_t item, size_t j)
{
    double sim[N_DEMOS];
    for (size_t d = 0; d < N_DEMOS; d++) {
        sim[d] = 0;
        for (int32_t c = 0; c < emb_dim; c++)
            sim[d] += (double)tiny_emb[item * emb_dim + c] * demo_emb[d * emb_dim + c];
    }
    /* j = 0 is the farthest of the k=3 nearest; j = 2 the nearest */
    size_t order[N_DEMOS];
    for (size_t d = 0; d < N_DEMOS; d++)
        order[d] = d;
    for (size_t a = 0; a < N_DEMOS; a++)
        for (size_t b = a + 1; b < N_DEMOS; b++)
            if (sim[order[b]] > sim[order[a]]) {
                size_t t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    return order[2 - j];
}

static void test_knn_by_hand(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(3);
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_embed_pool(tiny, model, TMAP_TEMPLATE_PLAIN, NULL, &tiny_emb, NULL, &emb_dim, &err), TMAP_OK);
    assert_int_equal(tmap_embed_pool(demos, model, TMAP_TEMPLATE_PLAIN, NULL, &demo_emb, NULL, &emb_dim, &err), TMAP_OK);
    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.k = 3;
    p.policy = TMAP_DEMOS_KNN;
    struct tmap_proxy *px = make_proxy(tiny, p);
    double v = eval(px, NULL, NULL);
    double ref = by_hand(tiny, 3, knn_demo, 3);
    if (fabs(v - ref) > 1e-4)
        fail_msg("knn: proxy %.8f vs by hand %.8f", v, ref);
    free(tiny_emb);
    free(demo_emb);
    tmap_proxy_free(px);
    tmap_pool_free(tiny);
}

static void test_memo(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(4);
    struct tmap_proxy_params p = tmap_proxy_default_params();
    char db[600];
    snprintf(db, sizeof db, "%s/memo.db", tmpdir);
    p.store_path = db;
    p.k = 2;
    struct tmap_proxy *px = make_proxy(tiny, p);
    struct tmap_proxy_stats a, b;
    double va = eval(px, NULL, &a), vb = eval(px, NULL, &b);
    assert_false(a.from_memo);
    assert_true(a.n_tokens > 0);
    assert_true(b.from_memo);
    assert_int_equal(b.n_tokens, 0);
    assert_true(va == vb);
    /* Other scores that pick the same top 2: the same value, from the memo. */
    double scores[N_DEMOS] = { 5, 4 };
    struct tmap_proxy_stats c;
    assert_true(eval(px, scores, &c) == va);
    assert_true(c.from_memo);
    tmap_proxy_free(px);
    tmap_pool_free(tiny);
}

static void test_demos_trimmed_to_fit(void **state)
{
    (void)state;
    /* Eight GSM8K demonstrations need ~1,500 tokens: in a 512-token context
     * the proxy leaves out demonstrations instead of failing. (2048 and 4:
     * the library's default batch and sequences.) */
    struct tmap_model *small = test_load_model(TMAP_TEST_MODEL, 512, 2048, 4);
    struct tmap_error err = { 0 };
    struct tmap_pool *tiny = tiny_pool(3);
    struct tmap_proxy_params p = tmap_proxy_default_params();
    p.k = 8;
    struct tmap_proxy *px;
    assert_int_equal(tmap_proxy_create(small, tiny, NULL, &p, &px, &err), TMAP_OK);
    size_t rows[N_DEMOS];
    all_rows(rows, N_DEMOS);
    double v;
    struct tmap_proxy_stats st;
    if (tmap_proxy_eval(px, demos, rows, N_DEMOS, NULL, &v, &st, &err))
        fail_msg("%s", err.message);
    assert_true(isfinite(v) && v < 0);
    assert_int_equal(st.n_skipped, 0);
    /* The count says so: three prompts (the top policy draws once), eight
     * demonstrations asked for each, fewer held, and the line warns. */
    struct tmap_proxy_counters c;
    assert_int_equal(tmap_proxy_count_demos(px, demos, rows, N_DEMOS, NULL, &c, &err), TMAP_OK);
    assert_int_equal(c.n_prompts, 3);
    assert_int_equal(c.n_demos_wanted, 24);
    assert_true(c.n_demos < 12);
    assert_true(tmap_proxy_demos_cramped(&c));
    char line[512];
    tmap_proxy_describe_demos(&c, 512, line, sizeof line);
    assert_non_null(strstr(line, "asked for fit beside a tiny item (context 512 tokens): the proxy sees few"));
    /* None at all: every subset scores the same, and the line says so. */
    struct tmap_proxy_counters none = { .n_prompts = 3, .n_demos_wanted = 24, .n_demos = 0 };
    tmap_proxy_describe_demos(&none, 64, line, sizeof line);
    assert_non_null(strstr(line, "0.00 of the 8 asked for fit beside a tiny item (context 64 tokens): none fit"));
    assert_non_null(strstr(line, "every subset scores the same"));
    tmap_proxy_free(px);
    /* Four in the 2,048-token context all fit. */
    p.k = 4;
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &p, &px, &err), TMAP_OK);
    assert_int_equal(tmap_proxy_count_demos(px, demos, rows, N_DEMOS, NULL, &c, &err), TMAP_OK);
    assert_int_equal(c.n_prompts, 3);
    assert_int_equal(c.n_demos_wanted, 12);
    assert_int_equal(c.n_demos, 12);
    assert_false(tmap_proxy_demos_cramped(&c));
    tmap_proxy_describe_demos(&c, 2048, line, sizeof line);
    assert_string_equal(line, "4.00 of the 4 asked for fit beside a tiny item (context 2048 tokens)");
    /* A subset smaller than k asks for what it has. */
    assert_int_equal(tmap_proxy_count_demos(px, demos, rows, 3, NULL, &c, &err), TMAP_OK);
    assert_int_equal(c.n_demos_wanted, 9);
    assert_int_equal(c.n_demos, 9);
    tmap_proxy_free(px);
    tmap_pool_free(tiny);
    tmap_model_free(small);
}

static void test_errors(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(2);
    struct tmap_proxy_params p = tmap_proxy_default_params();
    struct tmap_proxy *px;
    struct tmap_error err = { 0 };
    p.k = 0;
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &p, &px, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "k=0"));
    p = tmap_proxy_default_params();
    p.metric = TMAP_METRIC_MC;
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &p, &px, &err), TMAP_ERR_DATA);
    assert_non_null(strstr(err.message, "needs a multiple-choice record"));
    p = tmap_proxy_default_params();
    px = make_proxy(tiny, p);
    double v;
    size_t none = 0;
    assert_int_equal(tmap_proxy_eval(px, demos, &none, 0, NULL, &v, NULL, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "no demonstrations"));
    tmap_proxy_free(px);
    tmap_pool_free(tiny);
}

/* The fine-tune proxy: training on the task's records must leave the tiny
 * set's answers likelier than training on off-task text; the value is the
 * same on a second evaluation (seeded sample and order); its temporary
 * folder is gone after the proxy is freed; and it refuses other metrics. */
/* What the fine-tune proxy's one draw computes, the long way: the records
 * it draws (seed p->seed), trained by tmap_finetune into a file, which is
 * loaded and scores each tiny item after its bare query. */
static double finetuned_by_hand(const struct tmap_pool *tiny, const size_t *rows, size_t n_rows,
                                const struct tmap_proxy_params *p)
{
    size_t pick[N_DEMOS];
    size_t k = tmap_random_sample(rows, n_rows, p->ft_records, p->seed, pick);
    char out[600];
    snprintf(out, sizeof out, "%s/by-hand.gguf", tmpdir);
    struct tmap_finetune_params fp = tmap_finetune_default_params();
    fp.model = *tmap_model_load_params(model);
    fp.model.n_ctx = 1024; /* the proxy's window: the model's 2,048 capped */
    fp.out_path = out;
    fp.n_epochs = p->ft_epochs;
    fp.lr = p->ft_lr;
    fp.seed = p->seed;
    fp.rows = pick;
    fp.n_rows = k;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_finetune(demos, &fp, NULL, &err), TMAP_OK);
    struct tmap_model_params mp = *tmap_model_load_params(model);
    mp.path = out;
    struct tmap_model *tuned;
    assert_int_equal(tmap_model_load(&mp, &tuned, &err), TMAP_OK);
    double v = by_hand_on(tuned, tiny, tmap_pool_size(tiny), top_demo, 0);
    tmap_model_free(tuned);
    return v;
}

static void test_finetune_proxy(void **state)
{
    (void)state;
    char junk_path[600], ft_tmp[600];
    snprintf(junk_path, sizeof junk_path, "%s/junk.jsonl", tmpdir);
    snprintf(ft_tmp, sizeof ft_tmp, "%s/ft-tmp", tmpdir);
    assert_int_equal(mkdir(ft_tmp, 0777), 0);
    FILE *f = fopen(junk_path, "w");
    assert_non_null(f);
    for (int i = 0; i < N_DEMOS; i++) {
        fprintf(f, "{\"question\": \"Describe the garden, part %d.\", \"answer\": \"", i);
        for (int j = 0; j < 8; j++) /* about a GSM8K record's length: as many training windows */
            fprintf(f, "the roses by the old stone wall lean toward the morning light %d. ", j);
        fprintf(f, "\"}\n");
    }
    fclose(f);
    struct tmap_pool *junk = test_load_pool(junk_path);
    struct tmap_pool *tiny = tiny_pool(6);

    char *old_tmp = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", ft_tmp, 1);
    struct tmap_proxy_params p = ft_params(8);
    p.ft_lr = 1e-2f;
    struct tmap_proxy *px = make_proxy(tiny, p);
    size_t rows[N_DEMOS];
    all_rows(rows, N_DEMOS);
    double task, task_again, off;
    struct tmap_proxy_stats st;
    struct tmap_error err = { 0 };
    /* The in-context proxy on the same model, before and after: the
     * fine-tune proxy gives the model's context back while its copy
     * trains (tmap_model_release_context), and the next evaluation opens
     * a fresh one that gives the same value. */
    struct tmap_proxy *icl = make_proxy(tiny, tmap_proxy_default_params());
    double icl_before, icl_after;
    assert_int_equal(tmap_proxy_eval(icl, demos, rows, N_DEMOS, NULL, &icl_before, NULL, &err), TMAP_OK);
    assert_non_null(model->ctx);
    assert_int_equal(tmap_proxy_eval(px, demos, rows, N_DEMOS, NULL, &task, &st, &err), TMAP_OK);
    assert_true(st.n_tokens > 0);
    assert_null(model->ctx); /* released while the copy trained, not reopened since */
    struct tmap_model_counters c0, c1;
    tmap_model_get_counters(model, &c0);
    assert_int_equal(tmap_proxy_eval(icl, demos, rows, N_DEMOS, NULL, &icl_after, NULL, &err), TMAP_OK);
    tmap_model_get_counters(model, &c1);
    assert_non_null(model->ctx);
    assert_int_equal(c1.n_context_opens, c0.n_context_opens + 1);
    assert_true(icl_after == icl_before);
    tmap_proxy_free(icl);
    assert_int_equal(tmap_proxy_eval(px, demos, rows, N_DEMOS, NULL, &task_again, NULL, &err), TMAP_OK);
    assert_int_equal(tmap_proxy_eval(px, junk, rows, N_DEMOS, NULL, &off, NULL, &err), TMAP_OK);
    print_message("fine-tune proxy: task records %.4f, off-task %.4f\n", task, off);
    assert_true(task == task_again); /* the second evaluation trained from the weights as loaded */
    assert_true(task > off);
    double ref = finetuned_by_hand(tiny, rows, N_DEMOS, &p);
    if (fabs(task - ref) > 1e-6) /* the hand path scores item by item: float sums differ in the last digits */
        fail_msg("fine-tune proxy %.10f, tmap_finetune to a file and scored %.10f", task, ref);
    tmap_proxy_free(px);
    if (old_tmp)
        setenv("TMPDIR", old_tmp, 1);
    else
        unsetenv("TMPDIR");
    free(old_tmp);
    assert_int_equal(rmdir(ft_tmp), 0); /* empty: the proxy writes nothing */

    p.metric = TMAP_METRIC_ACCURACY;
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &p, &px, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "log-likelihood only"));
    tmap_pool_free(tiny);
    tmap_pool_free(junk);
}

/* --train-layers: the fine-tune proxy trains the tensors named alone; their
 * values get keys of their own, and the in-context proxy refuses it. */
static void test_finetune_proxy_some_layers(void **state)
{
    (void)state;
    struct tmap_pool *tiny = tiny_pool(3);
    char db[600];
    snprintf(db, sizeof db, "%s/ft-layers.db", tmpdir);
    struct tmap_proxy_params p = ft_params(4);
    p.ft_lr = 1e-2f;
    p.store_path = db;
    struct tmap_proxy *all = make_proxy(tiny, p);
    p.ft_layers = "output";
    struct tmap_proxy *some = make_proxy(tiny, p);
    struct tmap_proxy_stats sa, ss, again;
    double va = eval(all, NULL, &sa), vs = eval(some, NULL, &ss), vs_again = eval(some, NULL, &again);
    print_message("fine-tune proxy: every tensor %.6f, output only %.6f\n", va, vs);
    assert_false(sa.from_memo);
    assert_false(ss.from_memo); /* not the every-tensor value */
    assert_true(again.from_memo);
    assert_true(vs_again == vs);
    assert_true(va != vs);
    tmap_proxy_free(all);
    tmap_proxy_free(some);

    struct tmap_proxy *px;
    struct tmap_error err = { 0 };
    p.ft_layers = "99";
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &p, &px, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "has no layer in 99-99"));
    p.kind = TMAP_PROXY_ICL;
    p.ft_layers = "output";
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &p, &px, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "fine-tune proxy only"));
    tmap_pool_free(tiny);
}

/* The test model as Q4_0 but for the tensors keep_f32 names, in tmpdir. */
static void q4_copy(char *path, size_t size, const char *name, const char *keep_f32)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    struct tmap_model_quantize_params qp = tmap_model_quantize_default_params();
    qp.type = "q4_0";
    qp.keep_f32 = keep_f32;
    qp.n_threads = 2;
    struct tmap_error err = { 0 };
    if (tmap_model_quantize(TMAP_TEST_MODEL, path, &qp, &err))
        fail_msg("%s", err.message);
}

/* A model quantized but for the tensors the proxy trains (`tmap model
 * quantize --keep-f32`), the way a 7B model's fine-tune proxy fits in
 * memory: the proxy trains block 0 through the frozen Q4_0 weights above
 * it, which its copy holds plain (llama.cpp's scheduler aborted on
 * repacked ones), sets the trained tensors back after each draw (the same
 * value twice) and comes close to the F32 model's value. A spec reaching
 * past the F32 tensors is refused, pointing at --keep-f32. */
static void test_finetune_proxy_quantized(void **state)
{
    (void)state;
    char path[600];
    q4_copy(path, sizeof path, "q4-block0-f32.gguf", "0");
    struct tmap_error err = { 0 };
    struct tmap_model *m = test_load_model(path, 1024, 512, 2);
    struct tmap_pool *tiny = tiny_pool(3);
    struct tmap_proxy_params p = ft_params(4);
    p.ft_lr = 1e-2f;
    p.ft_layers = "0";
    struct tmap_proxy *px, *f32 = make_proxy(tiny, p);
    assert_int_equal(tmap_proxy_create(m, tiny, NULL, &p, &px, &err), TMAP_OK);
    double vq = eval(px, NULL, NULL), vq_again = eval(px, NULL, NULL), vf = eval(f32, NULL, NULL);
    print_message("fine-tune proxy, block 0 trained: q4_0 with F32 block 0 %.6f (again %.6f), F32 %.6f\n", vq,
                  vq_again, vf);
    assert_true(isfinite(vq));
    assert_true(vq == vq_again);
    assert_true(fabs(vq - vf) < 0.05);
    tmap_proxy_free(px);
    tmap_proxy_free(f32);

    p.ft_layers = "0,output";
    assert_int_equal(tmap_proxy_create(m, tiny, NULL, &p, &px, &err), TMAP_ERR_MODEL);
    assert_non_null(strstr(err.message, "tensors to train are not F32"));
    assert_non_null(strstr(err.message, "--keep-f32 0,output"));
    tmap_model_free(m);
    tmap_pool_free(tiny);
}

/* The copy the fine-tune proxy trains, loaded for a spec: its frozen
 * weights below the lowest tensor that trains keep llama.cpp's repacked
 * CPU layout (the backward pass never reaches them), the rest are plain.
 * Training the top block of a Q4_0 model whose top is F32 then repacks
 * block 0's 7 matrices where the CPU repacks Q4_0 (AVX2, NEON), none when
 * block 0 or every tensor trains; the proxy trains through it without an
 * abort, repeats its value, and gives the plain copy's value but for the
 * kernels' rounding (the repacked ones sum in another order, so not to
 * the bit: which shows that they ran). */
static void test_finetune_proxy_repacked_below(void **state)
{
    (void)state;
    char path[600];
    q4_copy(path, sizeof path, "q4-top-f32.gguf", "1,output");
    struct tmap_error err = { 0 };

    const char *specs[] = { "1,output", "0", NULL };
    int32_t n_repacked[3];
    for (int i = 0; i < 3; i++) {
        struct tmap_model_params mp = tmap_model_default_params();
        mp.path = path;
        mp.n_ctx = 256;
        mp.n_threads = 2;
        struct tmap_tensor_spec *trains = NULL;
        struct tmap_model *copy = NULL;
        assert_int_equal(tmap_tensor_spec_parse(specs[i], "--train-layers", &trains, &err), TMAP_OK);
        if (tmap_model_load_to_train(&mp, trains, &copy, &err))
            fail_msg("%s", err.message);
        n_repacked[i] = copy->n_repacked;
        tmap_model_free(copy);
        tmap_tensor_spec_free(trains);
    }
    print_message("weights repacked in the copy that trains 1,output / 0 / every tensor: %d / %d / %d\n",
                  n_repacked[0], n_repacked[1], n_repacked[2]);
    bool repacks = tmap_offload_devices() == 0 && (ggml_cpu_has_avx2() || ggml_cpu_has_neon());
    assert_int_equal(n_repacked[0], repacks ? 7 : 0);
    assert_int_equal(n_repacked[1], 0);
    assert_int_equal(n_repacked[2], 0);

    struct tmap_pool *tiny = tiny_pool(3);
    struct tmap_proxy_params p = ft_params(4);
    p.ft_lr = 1e-2f;
    p.ft_layers = "1,output";
    double v[2], again = NAN;
    for (int plain = 0; plain < 2; plain++) {
        struct tmap_model_params mp = tmap_model_default_params();
        mp.path = path;
        mp.n_ctx = 1024;
        mp.n_batch = 512;
        mp.n_seq = 2;
        mp.n_threads = 2;
        mp.repack = !plain; /* the copy is loaded as the target was */
        struct tmap_model *m = NULL;
        struct tmap_proxy *px;
        if (tmap_model_load(&mp, &m, &err))
            fail_msg("%s", err.message);
        assert_int_equal(tmap_proxy_create(m, tiny, NULL, &p, &px, &err), TMAP_OK);
        v[plain] = eval(px, NULL, NULL);
        if (!plain)
            again = eval(px, NULL, NULL);
        tmap_proxy_free(px);
        tmap_model_free(m);
    }
    print_message("fine-tune proxy, top trained: block 0 repacked %.8f (again %.8f), plain %.8f\n", v[0], again,
                  v[1]);
    assert_true(isfinite(v[0]) && v[0] == again);
    assert_true(fabs(v[0] - v[1]) < 0.01);
    if (repacks)
        assert_true(v[0] != v[1]);
    tmap_pool_free(tiny);
}

/* The fine-tune proxy sets its trained weights back from the model's file:
 * a file cut short since it was loaded is an error naming it (no crash, no
 * value from half-restored weights), and so is the next evaluation, which
 * loads the copy again. */
static void test_finetune_proxy_file_changed(void **state)
{
    (void)state;
    char path[600], cmd[1400];
    snprintf(path, sizeof path, "%s/changing.gguf", tmpdir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", TMAP_TEST_MODEL, path);
    assert_int_equal(system(cmd), 0);
    struct tmap_model *m = test_load_model(path, 1024, 512, 2);
    struct tmap_pool *tiny = tiny_pool(2);
    struct tmap_proxy_params p = ft_params(4);
    struct tmap_proxy *px;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_proxy_create(m, tiny, NULL, &p, &px, &err), TMAP_OK);
    size_t rows[N_DEMOS];
    all_rows(rows, N_DEMOS);
    double v;
    assert_int_equal(tmap_proxy_eval(px, demos, rows, N_DEMOS, NULL, &v, NULL, &err), TMAP_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    assert_int_not_equal(tmap_proxy_eval(px, demos, rows, N_DEMOS, NULL, &v, NULL, &err), TMAP_OK);
    assert_true(isnan(v));
    print_message("after training: %s\n", err.message);
    assert_non_null(strstr(err.message, path));
    memset(&err, 0, sizeof err);
    assert_int_not_equal(tmap_proxy_eval(px, demos, rows, N_DEMOS, NULL, &v, NULL, &err), TMAP_OK);
    print_message("the next evaluation: %s\n", err.message);
    assert_non_null(strstr(err.message, path));
    tmap_proxy_free(px);
    tmap_pool_free(tiny);
    tmap_model_free(m);
}

static int setup(void **state)
{
    (void)state;
    if (!test_begin_group(tmpdir, sizeof tmpdir, "proxy"))
        return -1;
    test_gsm8k_slice(demos_path, sizeof demos_path, tmpdir, "demos.jsonl", "train", N_DEMOS);
    test_gsm8k_slice(val_path, sizeof val_path, tmpdir, "val.jsonl", "test", N_VAL);
    model = test_load_model(TMAP_TEST_MODEL, 2048, 512, 6);
    demos = test_load_pool(demos_path);
    val = test_load_pool(val_path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tmap_pool_free(demos);
    tmap_pool_free(val);
    return test_end_group(model, tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_anchors),
        cmocka_unit_test(test_tiny_repeats),
        cmocka_unit_test(test_shared_equals_naive),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_top_by_hand),
        cmocka_unit_test(test_tiny_copies_never_drawn),
        cmocka_unit_test(test_memo_keys_rows_drawn),
        cmocka_unit_test(test_knn_by_hand),
        cmocka_unit_test(test_memo),
        cmocka_unit_test(test_demos_trimmed_to_fit),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_finetune_proxy),
        cmocka_unit_test(test_finetune_proxy_some_layers),
        cmocka_unit_test(test_finetune_proxy_quantized),
        cmocka_unit_test(test_finetune_proxy_repacked_below),
        cmocka_unit_test(test_finetune_proxy_file_changed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
