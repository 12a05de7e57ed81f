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
#include "model/model.h" /* the weight placement */
#include "tmap.h"
#include "util/stats.h"

#include <gguf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Every record's response loss (nats per token) under the model at path,
 * its quantized weights repacked by llama.cpp or not. */
static double *losses_placed(const char *path, struct tmap_pool *pool, bool repack)
{
    struct tmap_model_params mp = tmap_model_default_params();
    mp.path = path;
    mp.n_ctx = mp.n_batch = 512;
    mp.n_seq = 4;
    mp.n_threads = 2;
    mp.repack = repack;
    struct tmap_model *m = NULL;
    struct tmap_error err = { 0 };
    if (tmap_model_load(&mp, &m, &err))
        fail_msg("cannot load the model %s: %s", path, err.message);
    struct tmap_score_params p = tmap_score_default_params();
    p.indicators = 1u << TMAP_IND_LOSS;
    struct tmap_scores *s = NULL;
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

static double *losses(const char *path, struct tmap_pool *pool)
{
    return losses_placed(path, pool, true);
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

/* Q4_0 weights in llama.cpp's repacked CPU layout. On a CPU with AMX
 * buffers every extra buffer type is off and tmap names each weight that
 * CPU_REPACK takes (src/model/placement.c): there the plan must name every
 * matrix of every block, as one pattern per role, unless a GPU takes the
 * weights. Everywhere, the repacked
 * kernels must score like the plain ones (--no-repack): they only change
 * the order of the sums. */
static void test_repacked_q4_0(void **state)
{
    (void)state;
    char base[512], data[512], q4[600];
    snprintf(base, sizeof base, "%s/models/gsm8k-base.gguf", TMAP_SOURCE_DIR);
    snprintf(q4, sizeof q4, "%s/base-q4_0.gguf", tmpdir);
    test_gsm8k_slice(data, sizeof data, tmpdir, "test200.jsonl", "test", N_RECORDS);
    struct tmap_model_quantize_params qp = tmap_model_quantize_default_params();
    qp.type = "q4_0";
    qp.n_threads = 2;
    struct tmap_error err = { 0 };
    if (tmap_model_quantize(base, q4, &qp, &err))
        fail_msg("q4_0: %s", err.message);

    struct llama_model_params lmp = llama_model_default_params();
    struct tmap_weight_placement pl;
    assert_int_equal(tmap_weight_placement_plan(q4, true, NULL, &lmp, &pl, &err), TMAP_OK);
    if (tmap_cpu_offers_amx_buffers() && tmap_offload_devices() > 0) {
        /* A GPU takes the weights (every layer offloaded by default): none
         * is named to the CPU's repacked layout (seen on an H200 machine,
         * whose CPU offers AMX). */
        assert_false(lmp.use_extra_bufts);
        assert_int_equal(pl.n, 0);
    } else if (tmap_cpu_offers_amx_buffers()) {
        const char *roles[] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" };
        assert_false(lmp.use_extra_bufts);
        assert_int_equal(pl.n, 7);
        assert_non_null(lmp.tensor_buft_overrides);
        assert_null(lmp.tensor_buft_overrides[pl.n].pattern);
        for (size_t r = 0; r < 7; r++) {
            char want[64];
            snprintf(want, sizeof want, "^blk\\.[0-9]+\\.%s\\.weight$", roles[r]);
            bool found = false;
            for (size_t i = 0; i < pl.n; i++)
                found |= strcmp(pl.patterns[i], want) == 0;
            if (!found)
                fail_msg("no override %s", want);
        }
        printf("repack: AMX buffers offered; %zu weight roles named to CPU_REPACK\n", pl.n);
    } else {
        assert_true(lmp.use_extra_bufts); /* llama.cpp's default stands */
        assert_int_equal(pl.n, 0);
    }
    tmap_weight_placement_free(&pl);
    struct llama_model_params off = llama_model_default_params();
    assert_int_equal(tmap_weight_placement_plan(q4, false, NULL, &off, &pl, &err), TMAP_OK);
    assert_false(off.use_extra_bufts);
    assert_int_equal(pl.n, 0);

    struct tmap_pool *pool = test_load_pool(data);
    double *plain = losses_placed(q4, pool, false), *repacked = losses_placed(q4, pool, true);
    struct fidelity f = compare(plain, repacked, N_RECORDS);
    printf("q4_0 repacked vs plain on %d GSM8K test records: max |loss diff| %.5f nats, Spearman %.4f\n",
           N_RECORDS, f.max_diff, f.spearman);
    assert_true(f.max_diff <= 0.01);
    assert_true(f.spearman >= 0.99);
    free(plain);
    free(repacked);
    tmap_pool_free(pool);
}

/* --keep-f32: the tensors a --train-layers spec selects stay F32 and the
 * other matrices take the type asked; an item that selects nothing, or a
 * spec that does not parse, is a usage error and writes no file. */
static void test_keep_f32(void **state)
{
    (void)state;
    char base[512], out[600];
    snprintf(base, sizeof base, "%s/models/gsm8k-base.gguf", TMAP_SOURCE_DIR);
    snprintf(out, sizeof out, "%s/base-q4_0-top-f32.gguf", tmpdir);
    struct tmap_model_quantize_params qp = tmap_model_quantize_default_params();
    qp.type = "q4_0";
    qp.keep_f32 = "3,output";
    qp.n_threads = 2;
    struct tmap_error err = { 0 };
    if (tmap_model_quantize(base, out, &qp, &err))
        fail_msg("%s", err.message);
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(out, gp);
    assert_non_null(g);
    int n_kept = 0, n_quantized = 0;
    for (int64_t t = 0; t < gguf_get_n_tensors(g); t++) {
        const char *name = gguf_get_tensor_name(g, t);
        enum ggml_type type = gguf_get_tensor_type(g, t);
        bool selected = strncmp(name, "blk.3.", 6) == 0 || strncmp(name, "output", 6) == 0;
        if (selected) {
            if (type != GGML_TYPE_F32)
                fail_msg("%s is %s, --keep-f32 asked F32", name, ggml_type_name(type));
            n_kept++;
        } else if (strstr(name, "attn_q.weight") || strstr(name, "ffn_down.weight")) {
            if (type != GGML_TYPE_Q4_0)
                fail_msg("%s is %s, not q4_0", name, ggml_type_name(type));
            n_quantized++;
        }
    }
    gguf_free(g);
    assert_true(n_kept >= 9);         /* block 3's matrices and norms, output and its norm */
    assert_int_equal(n_quantized, 6); /* blocks 0-2, two roles each */

    char bad[600];
    snprintf(bad, sizeof bad, "%s/never.gguf", tmpdir);
    const char *specs[] = { "9", "outpt", "3-1", "3,,output" };
    const char *says[] = { "has no layer in 9-9", "'outpt' matches no tensor", "runs backwards", "an empty item" };
    for (size_t i = 0; i < 4; i++) {
        qp.keep_f32 = specs[i];
        assert_int_equal(tmap_model_quantize(base, bad, &qp, &err), TMAP_ERR_USAGE);
        assert_non_null(strstr(err.message, "--keep-f32"));
        if (!strstr(err.message, says[i]))
            fail_msg("--keep-f32 %s: %s", specs[i], err.message);
        assert_int_not_equal(access(bad, F_OK), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantized_base_model),
        cmocka_unit_test(test_repacked_q4_0),
        cmocka_unit_test(test_keep_f32),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
