/*
 * test_quantize.c - what quantization does to the numbers tmap ranks by.
 * The shipped base model (models/gsm8k-base.gguf, F32) is stored as F16,
 * Q8_0 and Q4_K_M by tmap_model_quantize (llama_model_quantize), and each
 * copy scores the per-sample response loss of the first 100 GSM8K test
 * records. F16 and Q8_0 must stay within 0.02 nats of F32 on every record
 * and rank the records the same way (Spearman at least 0.99); Q4_K_M's
 * figures are printed, not held to a bound (a 4-bit model is a different
 * model, and a user choosing one should see by how much).
 */
#define _XOPEN_SOURCE 700 /* nftw, for helpers.h */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "tmap.h"
#include "util/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N_RECORDS 100

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_begin_group(tmpdir, sizeof tmpdir, "quantize") ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return test_end_group(NULL, tmpdir);
}

/* Every record's response loss (nats per token) under the model at path. */
static double *losses(const char *path, struct tmap_pool *pool)
{
    struct tmap_model *m = test_load_model(path, 512, 512, 4);
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = 1u << TMAP_IND_LOSS;
    struct tmap_scores *s = NULL;
    struct tmap_error err = { 0 };
    if (tmap_score(pool, m, &p, &s, &err))
        fail_msg("%s: %s", path, err.message);
    size_t n = tmap_pool_size(pool);
    double *out = malloc(n * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = tmap_scores_get(s, i, TMAP_IND_LOSS);
    tmap_scores_free(s);
    tmap_model_free(m);
    return out;
}

struct fidelity {
    double max_diff, mean_diff, spearman;
};

static struct fidelity compare(const double *ref, const double *q, size_t n)
{
    struct fidelity f = { 0, 0, tmap_spearman(ref, q, n) };
    for (size_t i = 0; i < n; i++) {
        assert_true(isfinite(ref[i]) && isfinite(q[i]));
        double d = fabs(q[i] - ref[i]);
        f.max_diff = d > f.max_diff ? d : f.max_diff;
        f.mean_diff += d / (double)n;
    }
    return f;
}

static void test_quantized_base_model(void **state)
{
    (void)state;
    char base[512], data[512];
    snprintf(base, sizeof base, "%s/models/gsm8k-base.gguf", TMAP_SOURCE_DIR);
    test_gsm8k_slice(data, sizeof data, tmpdir, "test200.jsonl", "test", N_RECORDS);
    struct tmap_pool *pool = test_load_pool(data);
    assert_int_equal(tmap_pool_size(pool), N_RECORDS);
    double *ref = losses(base, pool);

    const char *types[] = { "f16", "q8_0", "q4_k_m" };
    const double bound[] = { 0.02, 0.02, INFINITY };
    for (size_t t = 0; t < 3; t++) {
        char out[600];
        snprintf(out, sizeof out, "%s/base-%s.gguf", tmpdir, types[t]);
        struct tmap_model_quantize_params qp = tmap_model_quantize_default_params();
        qp.type = types[t];
        qp.n_threads = 2;
        struct tmap_error err = { 0 };
        if (tmap_model_quantize(base, out, &qp, &err))
            fail_msg("%s: %s", types[t], err.message);
        double *q = losses(out, pool);
        struct fidelity f = compare(ref, q, N_RECORDS);
        printf("quantize %-6s vs f32 on %d GSM8K test records: max |loss diff| %.4f nats, mean %.4f, "
               "Spearman %.4f\n", types[t], N_RECORDS, f.max_diff, f.mean_diff, f.spearman);
        if (isfinite(bound[t])) {
            assert_true(f.max_diff <= bound[t]);
            assert_true(f.spearman >= 0.99);
        }
        free(q);
    }
    free(ref);
    tmap_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantized_base_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
