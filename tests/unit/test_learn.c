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

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_POOL = 40, N_VAL = 12 };

static char tmpdir[256], pool_path[512], val_path[512];
static struct tmap_model *model;
static struct tmap_pool *pool, *val;
static struct tmap_scores *scores;

static const struct tmap_select_params *select_params(double ratio, bool keep_duplicates)
{
    static struct tmap_select_params p;
    p = tmap_select_default_params();
    p.ratio = ratio;
    p.keep_duplicates = keep_duplicates;
    return &p;
}

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
        assert_int_equal(tmap_select(pool, scores, &w, select_params(ratios[r], false), &sel, &err), TMAP_OK);
        assert_int_equal(sel.n, expect[r]);
        tmap_selection_free(&sel);
    }
    struct tmap_selection sel;
    assert_int_equal(tmap_select(pool, scores, &w, select_params(0.3, false), &sel, &err), TMAP_OK);
    char out[600];
    snprintf(out, sizeof out, "%s/selected.jsonl", tmpdir);
    assert_int_equal(tmap_selection_write(pool, &sel, out, &err), TMAP_OK);
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

    assert_int_equal(tmap_select(pool, scores, &w, select_params(1.5, false), &sel, &err), TMAP_ERR_USAGE);
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
    assert_int_equal(tmap_select(pool, scores, &w, select_params(0.3, false), &sel, &err), TMAP_OK);
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
    assert_int_equal(tmap_select(dp, ds, &w, select_params(0.5, false), &sel, &err), TMAP_OK);
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
    assert_int_equal(tmap_select(dp, ds, &w, select_params(1.0, false), &sel, &err), TMAP_OK);
    assert_int_equal(sel.n, 6);
    tmap_selection_free(&sel);
    /* keep_duplicates: the old behaviour, every row eligible. */
    assert_int_equal(tmap_select(dp, ds, &w, select_params(1.0, true), &sel, &err), TMAP_OK);
    assert_int_equal(sel.n, 10);
    assert_int_equal(sel.n_duplicates, 0);
    tmap_selection_free(&sel);
    tmap_weights_free(&w);
    tmap_scores_free(ds);
    tmap_pool_free(dp);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids a filter selection picks from the pool in the file at path,
 * scored by two indicators that need no model work. */
static char **filter_ids(const char *path, uint64_t seed, size_t *n)
{
    struct tmap_pool *fp = test_load_pool(path);
    struct tmap_error err = { 0 };
    struct tmap_score_params sp = tmap_score_default_params();
    sp.indicators = (1u << TMAP_IND_LENGTH) | (1u << TMAP_IND_NUMERACY);
    struct tmap_scores *fs;
    assert_int_equal(tmap_score(fp, model, &sp, &fs, &err), TMAP_OK);
    struct tmap_weights w;
    assert_int_equal(tmap_weights_uniform(fs, &w, &err), TMAP_OK);
    struct tmap_select_params p = tmap_select_default_params();
    p.mode = TMAP_SELECT_FILTER;
    p.seed = seed;
    struct tmap_selection sel;
    assert_int_equal(tmap_select(fp, fs, &w, &p, &sel, &err), TMAP_OK);
    char **ids = calloc(sel.n, sizeof *ids);
    for (size_t i = 0; i < sel.n; i++) {
        struct tmap_record rec;
        tmap_pool_record(fp, sel.rows[i], &rec);
        ids[i] = strdup(rec.id);
    }
    qsort(ids, sel.n, sizeof *ids, compare_strings);
    *n = sel.n;
    tmap_selection_free(&sel);
    tmap_weights_free(&w);
    tmap_scores_free(fs);
    tmap_pool_free(fp);
    return ids;
}

/* Filter mode: the lowest drop share never enters, the rest is a seeded
 * draw that does not depend on the file's order. */
static void test_filter_selection(void **state)
{
    (void)state;
    struct tmap_weights w;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_weights_uniform(scores, &w, &err), TMAP_OK);
    struct tmap_select_params p = tmap_select_default_params();
    p.mode = TMAP_SELECT_FILTER; /* ratio 0.3, drop 0.3: 12 of the 28 best of 40 */
    struct tmap_selection a, b, top;
    assert_int_equal(tmap_select(pool, scores, &w, &p, &a, &err), TMAP_OK);
    assert_int_equal(a.n, 12);
    for (size_t i = 0; i < a.n; i++) {
        size_t better = 0;
        for (size_t r = 0; r < N_POOL; r++)
            better += a.combined[r] > a.combined[a.rows[i]];
        assert_true(better < 28);
    }
    /* Not the top 12: the draw spreads over all 28. */
    assert_int_equal(tmap_select(pool, scores, &w, select_params(0.3, false), &top, &err), TMAP_OK);
    assert_memory_not_equal(a.rows, top.rows, a.n * sizeof *a.rows);
    /* The same seed, the same rows; another seed, others. */
    assert_int_equal(tmap_select(pool, scores, &w, &p, &b, &err), TMAP_OK);
    assert_memory_equal(a.rows, b.rows, a.n * sizeof *a.rows);
    tmap_selection_free(&b);
    p.seed = 7;
    assert_int_equal(tmap_select(pool, scores, &w, &p, &b, &err), TMAP_OK);
    assert_memory_not_equal(a.rows, b.rows, a.n * sizeof *a.rows);
    tmap_selection_free(&b);
    /* The drop must leave at least the ratio. */
    p.drop = 0.8;
    assert_int_equal(tmap_select(pool, scores, &w, &p, &b, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "drop 0.8"));
    tmap_selection_free(&a);
    tmap_selection_free(&top);
    tmap_weights_free(&w);

    /* The same records (with ids: GSM8K's come from line numbers) in
     * reverse order select the same ones. */
    char forward[600], reversed[600];
    snprintf(forward, sizeof forward, "%s/forward.jsonl", tmpdir);
    snprintf(reversed, sizeof reversed, "%s/reversed.jsonl", tmpdir);
    FILE *ff = fopen(forward, "w"), *fr = fopen(reversed, "w");
    for (size_t i = 0; i < N_POOL; i++) {
        struct tmap_record rec, rev;
        tmap_pool_record(pool, i, &rec);
        tmap_pool_record(pool, N_POOL - 1 - i, &rev);
        assert_int_equal(rec.raw[0], '{');
        fprintf(ff, "{\"id\": \"r%02zu\", %.*s\n", i, (int)rec.raw_bytes - 1, rec.raw + 1);
        fprintf(fr, "{\"id\": \"r%02zu\", %.*s\n", N_POOL - 1 - i, (int)rev.raw_bytes - 1, rev.raw + 1);
    }
    fclose(ff);
    fclose(fr);
    size_t n1, n2;
    char **ids1 = filter_ids(forward, 42, &n1), **ids2 = filter_ids(reversed, 42, &n2);
    assert_int_equal(n1, 12);
    assert_int_equal(n2, 12);
    for (size_t i = 0; i < n1; i++) {
        assert_string_equal(ids1[i], ids2[i]);
        free(ids1[i]);
        free(ids2[i]);
    }
    free(ids1);
    free(ids2);
}

/* From a pretty-printed JSON array (Alpaca's own layout), selected.jsonl
 * and tiny.jsonl hold one parseable record per line, each equal to its
 * array element; from JSONL the lines stay byte for byte (above). */
/* Stratified mode: the pool in bands of record length, each band giving the
 * ratio of its own records, its highest combined scores; one band is the
 * top selection. */
static void test_stratified_selection(void **state)
{
    (void)state;
    struct tmap_error err = { 0 };
    struct tmap_weights w;
    assert_int_equal(tmap_weights_uniform(scores, &w, &err), TMAP_OK);
    for (size_t j = 0; j < w.d; j++)
        w.weights[j] = strcmp(w.names[j], "steps") == 0; /* long solutions have more steps */
    /* The bands, computed here by hand: rows by prompt + response bytes,
     * ties by id. */
    size_t len[N_POOL], by_len[N_POOL], band[N_POOL];
    const char *id[N_POOL];
    for (size_t i = 0; i < N_POOL; i++) {
        struct tmap_sample smp;
        struct tmap_record rec;
        assert_int_equal(tmap_pool_sample(pool, i, &smp, &err), TMAP_OK);
        tmap_pool_record(pool, i, &rec);
        len[i] = strlen(smp.prompt) + strlen(smp.response);
        id[i] = rec.id;
        tmap_sample_free(&smp);
        by_len[i] = i;
    }
    for (size_t i = 1; i < N_POOL; i++) /* insertion sort */
        for (size_t j = i; j > 0 && (len[by_len[j - 1]] > len[by_len[j]] ||
                                     (len[by_len[j - 1]] == len[by_len[j]] && strcmp(id[by_len[j - 1]], id[by_len[j]]) > 0));
             j--) {
            size_t t = by_len[j];
            by_len[j] = by_len[j - 1];
            by_len[j - 1] = t;
        }
    for (size_t pos = 0; pos < N_POOL; pos++)
        band[by_len[pos]] = pos * 4 / N_POOL;

    struct tmap_select_params p = tmap_select_default_params();
    p.mode = TMAP_SELECT_STRATIFIED;
    p.strata = 4; /* 10 records a band, 3 of each selected */
    struct tmap_selection sel, top;
    assert_int_equal(tmap_select(pool, scores, &w, &p, &sel, &err), TMAP_OK);
    assert_int_equal(sel.n, 12);
    for (size_t b = 0; b < 4; b++) {
        size_t in = 0;
        double lowest_in = INFINITY, highest_out = -INFINITY;
        for (size_t i = 0; i < N_POOL; i++) {
            if (band[i] != b)
                continue;
            in += sel.selected[i];
            if (sel.selected[i])
                lowest_in = fmin(lowest_in, sel.combined[i]);
            else
                highest_out = fmax(highest_out, sel.combined[i]);
        }
        assert_int_equal(in, 3);
        assert_true(lowest_in >= highest_out);
    }
    /* Not the top 12, which crowd into the long bands. */
    assert_int_equal(tmap_select(pool, scores, &w, select_params(0.3, false), &top, &err), TMAP_OK);
    assert_memory_not_equal(sel.rows, top.rows, sel.n * sizeof *sel.rows);
    tmap_selection_free(&sel);
    /* One band: the top selection itself. */
    p.strata = 1;
    assert_int_equal(tmap_select(pool, scores, &w, &p, &sel, &err), TMAP_OK);
    assert_int_equal(sel.n, top.n);
    assert_memory_equal(sel.rows, top.rows, sel.n * sizeof *sel.rows);
    tmap_selection_free(&sel);
    tmap_selection_free(&top);
    p.strata = 0;
    assert_int_equal(tmap_select(pool, scores, &w, &p, &sel, &err), TMAP_ERR_USAGE);
    assert_non_null(strstr(err.message, "0 length bands"));
    tmap_weights_free(&w);
}

static void test_outputs_from_json_array(void **state)
{
    (void)state;
    char path[600], out[600], tiny_out[600];
    snprintf(path, sizeof path, "%s/pretty.json", tmpdir);
    snprintf(out, sizeof out, "%s/pretty-selected.jsonl", tmpdir);
    snprintf(tiny_out, sizeof tiny_out, "%s/pretty-tiny.jsonl", tmpdir);
    test_write_file(path, "[\n  {\n    \"instruction\": \"Add 2 and 3.\",\n    \"input\": \"\",\n"
                          "    \"output\": \"2 + 3 = 5, \\\"five\\\"\\n#### 5\"\n  },\n"
                          "  {\n    \"instruction\": \"Say  two  spaces\",\n    \"input\": \"x\",\n"
                          "    \"output\": \"a  b\\tc\",\n    \"n\": 1.50\n  },\n"
                          "  { }\n]\n");
    struct tmap_pool_params pp = tmap_pool_default_params();
    pp.on_error = TMAP_ON_ERROR_SKIP;
    struct tmap_pool *ap;
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_pool_load(path, &pp, &ap, &err), TMAP_OK);
    assert_int_equal(tmap_pool_size(ap), 2);
    struct tmap_score_params sp = tmap_score_default_params();
    sp.indicators = 1u << TMAP_IND_NUMERACY;
    struct tmap_scores *as;
    assert_int_equal(tmap_score(ap, model, &sp, &as, &err), TMAP_OK);
    struct tmap_weights w;
    assert_int_equal(tmap_weights_uniform(as, &w, &err), TMAP_OK);
    struct tmap_selection sel;
    assert_int_equal(tmap_select(ap, as, &w, select_params(1.0, false), &sel, &err), TMAP_OK);
    assert_int_equal(sel.n, 2);
    assert_int_equal(tmap_selection_write(ap, &sel, out, &err), TMAP_OK);
    struct tmap_tiny tiny = { .n = 2, .rows = (size_t[]){ 0, 1 }, .weights = (double[]){ 0.25, 0.75 } };
    assert_int_equal(tmap_tiny_write(&tiny, ap, tiny_out, &err), TMAP_OK);
    const char *files[] = { out, tiny_out };
    for (int f = 0; f < 2; f++) {
        char *text = slurp(files[f], NULL), *save = NULL;
        size_t n = 0;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
            json_error_t je;
            json_t *got = json_loads(line, 0, &je);
            assert_non_null(got);
            struct tmap_record rec;
            tmap_pool_record(ap, n, &rec);
            json_t *want = json_loadb(rec.raw, rec.raw_bytes, 0, &je);
            if (f == 1) { /* tiny.jsonl adds the anchor's weight and nothing else */
                assert_true(json_real_value(json_object_get(got, "tmap_weight")) == (n ? 0.75 : 0.25));
                json_object_del(got, "tmap_weight");
            }
            assert_true(json_equal(got, want));
            json_decref(got);
            json_decref(want);
        }
        assert_int_equal(n, 2);
        free(text);
    }
    /* The tiny file reads back as a validation set with its weights. */
    struct tmap_pool *back;
    assert_int_equal(tmap_pool_load(tiny_out, &pp, &back, &err), TMAP_OK);
    assert_int_equal(tmap_pool_size(back), 2);
    double tw[2];
    assert_int_equal(tmap_tiny_weights(back, tw, &err), TMAP_OK);
    assert_true(fabs(tw[1] - 0.75) < 1e-12);
    tmap_pool_free(back);
    tmap_selection_free(&sel);
    tmap_weights_free(&w);
    tmap_scores_free(as);
    tmap_pool_free(ap);
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
    /* The result carries its weights' selection: what tmap_select makes. */
    struct tmap_error serr = { 0 };
    struct tmap_select_params sp = tmap_select_default_params();
    struct tmap_selection sel;
    assert_int_equal(tmap_select(pool, scores, &a.weights, &sp, &sel, &serr), TMAP_OK);
    assert_int_equal(a.selection.n_rows, sel.n_rows);
    assert_int_equal(a.selection.n, sel.n);
    assert_int_equal(a.selection.n_duplicates, sel.n_duplicates);
    assert_memory_equal(a.selection.rows, sel.rows, sel.n * sizeof *sel.rows);
    assert_memory_equal(a.selection.selected, sel.selected, sel.n_rows * sizeof *sel.selected);
    assert_memory_equal(a.selection.combined, sel.combined, sel.n_rows * sizeof *sel.combined);
    assert_memory_equal(a.selection.ranks, sel.ranks, sel.n_rows * a.weights.d * sizeof *sel.ranks);
    tmap_selection_free(&sel);

    char wpath[600], tpath[600];
    snprintf(wpath, sizeof wpath, "%s/weights.json", tmpdir);
    snprintf(tpath, sizeof tpath, "%s/trace.csv", tmpdir);
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_weights_write_json(&a.weights, &a.baselines, "{\"seed\": 5}", wpath, &err), TMAP_OK);
    assert_int_equal(tmap_learn_result_write_trace(&a, tpath, &err), TMAP_OK);
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
    assert_false(bl->no_choice); /* 12 of 40 */
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

    /* A proxy that gives every subset the same value says so. */
    struct tmap_baselines flat = { .n_random = 5, .n_redraws = 4, .learned_mean = -11.89, .random_mean = -11.89,
                                   .verdict = TMAP_VERDICT_WITHIN };
    tmap_baselines_describe(&flat, line, sizeof line);
    assert_non_null(strstr(line, "the proxy gives every subset the same value, so the learned weights are arbitrary"));
    assert_non_null(strstr(line, "does NOT beat random"));
    flat.random_sd = 0.001;
    tmap_baselines_describe(&flat, line, sizeof line);
    assert_null(strstr(line, "same value"));
    assert_non_null(strstr(line, "0.0 sd better"));

    /* Without random subsets there is no verdict, and it says so. */
    struct tmap_baselines none = { .n_random = 0 };
    tmap_baselines_describe(&none, line, sizeof line);
    assert_non_null(strstr(line, "not measured"));
}

/* What may help after a baseline verdict (the summary's and report's
 * "what may help" line): only a run whose
 * search chose weights and did not beat random subsets gets one, and it
 * never names what the run already does (its proxy, its indicators). */
static void test_baselines_advice(void **state)
{
    (void)state;
    char *all[] = { "loss", "support", "coverage" }, *pair[] = { "coverage", "support" }, *one[] = { "support" };
    const struct tmap_weights many = { .d = 3, .names = all }, cleaning = { .d = 2, .names = pair },
                              support_only = { .d = 1, .names = one };
    struct tmap_baselines b = { .verdict = TMAP_VERDICT_WITHIN };
    struct tmap_learn_params learn = tmap_learn_default_params();
    learn.proxy.kind = TMAP_PROXY_ICL;
    const char *hint = tmap_baselines_advice(&b, &learn, &many);
    assert_non_null(hint);
    assert_non_null(strstr(hint, "--proxy finetune"));
    assert_non_null(strstr(hint, "--indicators support,coverage"));
    assert_non_null(strstr(hint, "docs/fidelity.md"));
    assert_ptr_equal(tmap_baselines_advice(&b, &learn, &support_only), hint); /* coverage would be new */
    b.verdict = TMAP_VERDICT_LOSES;
    assert_ptr_equal(tmap_baselines_advice(&b, &learn, &many), hint);

    /* ICL over the two cleaning indicators: the proxy or no search. */
    hint = tmap_baselines_advice(&b, &learn, &cleaning);
    assert_non_null(hint);
    assert_non_null(strstr(hint, "--proxy finetune"));
    assert_non_null(strstr(hint, "--search equal"));
    assert_null(strstr(hint, "--indicators"));

    learn.proxy.kind = TMAP_PROXY_FINETUNE;
    hint = tmap_baselines_advice(&b, &learn, &many);
    assert_non_null(hint);
    assert_null(strstr(hint, "--proxy"));
    assert_non_null(strstr(hint, "--indicators support,coverage"));
    assert_non_null(strstr(hint, "--search equal"));

    /* Both already: no flag left but --search equal, and what the closed
     * loop measured of the configuration. */
    hint = tmap_baselines_advice(&b, &learn, &cleaning);
    assert_non_null(hint);
    assert_null(strstr(hint, "--proxy"));
    assert_null(strstr(hint, "--indicators"));
    assert_non_null(strstr(hint, "--search equal"));
    assert_non_null(strstr(hint, "four corruption seeds"));

    /* Nothing to mend: beaten, not measured, or no search at all. */
    b.verdict = TMAP_VERDICT_BEATS;
    assert_null(tmap_baselines_advice(&b, &learn, &many));
    b.verdict = TMAP_VERDICT_UNKNOWN;
    assert_null(tmap_baselines_advice(&b, &learn, &many));
    b.verdict = TMAP_VERDICT_WITHIN;
    learn.search = TMAP_SEARCH_EQUAL;
    assert_null(tmap_baselines_advice(&b, &learn, &cleaning));

    /* No choice: the pool and the ratio, whatever the verdict or the search. */
    b.no_choice = true;
    for (int v = TMAP_VERDICT_UNKNOWN; v <= TMAP_VERDICT_LOSES; v++) {
        b.verdict = (enum tmap_verdict)v;
        hint = tmap_baselines_advice(&b, &learn, &many);
        assert_non_null(hint);
        assert_non_null(strstr(hint, "--ratio"));
    }
}

/* A pool with fewer distinct subsets of the selection's size than random
 * baselines asked for: each is judged once, none twice. */
static void test_baselines_small_pool(void **state)
{
    (void)state;
    char small_path[512];
    test_gsm8k_slice(small_path, sizeof small_path, tmpdir, "pool3.jsonl", "train", 3);
    struct tmap_pool *small = test_load_pool(small_path), *tiny = test_load_pool(val_path);
    struct tmap_error err = { 0 };
    struct tmap_score_params sp = tmap_score_default_params();
    sp.indicators = (1u << TMAP_IND_LOSS) | (1u << TMAP_IND_STEPS);
    struct tmap_scores *sc;
    assert_int_equal(tmap_score(small, model, &sp, &sc, &err), TMAP_OK);
    struct tmap_learn_params lp = tmap_learn_default_params();
    lp.iters = 3;
    lp.seed = 5;
    lp.select.ratio = 0.3; /* 1 record of 3: three distinct subsets */
    lp.proxy.k = 1;
    lp.proxy.draws = 1;
    struct tmap_proxy *px;
    assert_int_equal(tmap_proxy_create(model, tiny, NULL, &lp.proxy, &px, &err), TMAP_OK);
    struct tmap_learn_result r;
    if (tmap_learn(small, sc, px, &lp, &r, &err))
        fail_msg("%s", err.message);
    assert_int_equal(r.baselines.n_random, 3);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < i; j++)
            assert_true(r.baselines.random[i] != r.baselines.random[j]);
    assert_int_equal(r.baselines.n_distinct, 3);
    assert_false(r.baselines.no_choice);
    tmap_learn_result_free(&r);
    tmap_scores_free(sc);
    tmap_pool_free(small);

    /* Two distinct records, the first three times over, at a ratio that
     * keeps two: every weighting selects both, and the line and the
     * advice say so rather than blame the proxy. */
    char first[600], second[600], dup_path[600];
    snprintf(first, sizeof first, "%s/first.jsonl", tmpdir);
    snprintf(second, sizeof second, "%s/second.jsonl", tmpdir);
    snprintf(dup_path, sizeof dup_path, "%s/dup4.jsonl", tmpdir);
    copy_lines(small_path, first, 0, 1);
    copy_lines(small_path, second, 1, 1);
    char *a = slurp(first, NULL), *b = slurp(second, NULL);
    FILE *out = fopen(dup_path, "w");
    assert_non_null(out);
    fprintf(out, "%s%s%s%s", a, b, a, a);
    fclose(out);
    free(a);
    free(b);
    struct tmap_pool *dup = test_load_pool(dup_path);
    assert_int_equal(tmap_score(dup, model, &sp, &sc, &err), TMAP_OK);
    lp.select.ratio = 0.5;
    if (tmap_learn(dup, sc, px, &lp, &r, &err))
        fail_msg("%s", err.message);
    assert_int_equal(r.n_duplicates, 2);
    assert_int_equal(r.selection.n, 2);
    assert_int_equal(r.baselines.n_distinct, 2);
    assert_true(r.baselines.no_choice);
    char line[512];
    tmap_baselines_describe(&r.baselines, line, sizeof line);
    assert_non_null(strstr(line, "the selection keeps every distinct record of the pool (2)"));
    assert_null(strstr(line, "sd better"));
    const char *hint = tmap_baselines_advice(&r.baselines, &lp, &r.weights);
    assert_non_null(hint);
    assert_non_null(strstr(hint, "more distinct records"));
    assert_non_null(strstr(hint, "a smaller --ratio"));
    assert_null(strstr(hint, "--proxy"));
    tmap_learn_result_free(&r);
    tmap_proxy_free(px);
    tmap_scores_free(sc);
    tmap_pool_free(tiny);
    tmap_pool_free(dup);
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
        cmocka_unit_test(test_filter_selection),
        cmocka_unit_test(test_stratified_selection),
        cmocka_unit_test(test_outputs_from_json_array),
        cmocka_unit_test(test_learn),
        cmocka_unit_test(test_baselines),
        cmocka_unit_test(test_baselines_small_pool),
        cmocka_unit_test(test_baselines_advice),
        cmocka_unit_test(test_run_is_reproducible),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
