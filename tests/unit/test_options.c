/*
 * test_options.c - the CLI's table-driven option parser: llama.cpp-style
 * names, values, ranges, choices and every rejection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

struct parsed {
    struct tmap_model_params mp;
    uint64_t seed;
    float ratio;
    double share;
    int mode;
    bool json;
    const char *pos[2];
    size_t n_pos;
};

static const char *const modes[] = { "anchors", "random", NULL };

static int parse(struct parsed *p, int argc, char **argv)
{
    memset(p, 0, sizeof *p);
    p->mp = tmap_model_default_params();
    const struct cli_option options[] = {
        CLI_MODEL_OPTIONS(p->mp),
        { "--seed", CLI_U64, &p->seed, "S", "seed", 0, 0, NULL },
        { "--ratio", CLI_FLOAT, &p->ratio, "X", "ratio", 0.0, 1.0, NULL },
        { "--share", CLI_DOUBLE, &p->share, "X", "share", 0.0, 1.0, NULL },
        { "--mode", CLI_CHOICE, &p->mode, "M", "mode", 0, 0, modes },
        { "--json", CLI_FLAG, &p->json, NULL, "json", 0, 0, NULL },
        CLI_OPT_END,
    };
    const struct cli_spec spec = { "tmap test [options] A [B]", NULL, options, 1, 2 };
    /* Errors go to stderr; silence it so the test output stays readable. */
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    int rc = cli_parse(&spec, argc, argv, p->pos, &p->n_pos);
    fclose(stderr);
    stderr = saved;
    return rc;
}

#define ARGV(...) ((char *[]){ "test", __VA_ARGS__ })
#define ARGC(...) ((int)(sizeof((char *[]){ "test", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(p, ...) parse(p, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_llama_style_flags(void **state)
{
    (void)state;
    struct parsed p;
    assert_int_equal(PARSE(&p, "-m", "x.gguf", "-ngl", "99", "-t", "2", "-c", "512", "-b", "64",
                           "-np", "8", "in.jsonl"), -1);
    assert_string_equal(p.mp.path, "x.gguf");
    assert_int_equal(p.mp.n_gpu_layers, 99);
    assert_int_equal(p.mp.n_threads, 2);
    assert_int_equal(p.mp.n_ctx, 512);
    assert_int_equal(p.mp.n_batch, 64);
    assert_int_equal(p.mp.n_seq, 8);
    assert_int_equal(p.n_pos, 1);
    assert_string_equal(p.pos[0], "in.jsonl");

    assert_int_equal(PARSE(&p, "--model=y.gguf", "--n-gpu-layers", "-1", "a", "b", "--json"), -1);
    assert_string_equal(p.mp.path, "y.gguf");
    assert_int_equal(p.mp.n_gpu_layers, -1);
    assert_true(p.json);
    assert_int_equal(p.n_pos, 2);
}

static void test_values(void **state)
{
    (void)state;
    struct parsed p;
    assert_int_equal(PARSE(&p, "--seed", "18446744073709551615", "--ratio", "0.3", "--mode", "random", "a"), -1);
    assert_true(p.seed == UINT64_MAX); /* all 64 bits survive */
    assert_true(p.ratio > 0.2999f && p.ratio < 0.3001f);
    assert_int_equal(p.mode, 1);
    /* A double option holds the value exactly as strtod reads it. */
    assert_int_equal(PARSE(&p, "--share", "0.3", "a"), -1);
    assert_true(p.share == 0.3);

    /* "--" ends options: a file may start with '-' */
    assert_int_equal(PARSE(&p, "--", "-odd-name.jsonl"), -1);
    assert_string_equal(p.pos[0], "-odd-name.jsonl");
}

static void test_rejections(void **state)
{
    (void)state;
    struct parsed p;
    assert_int_equal(PARSE(&p, "--bogus", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "-t", "two", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "-t", "1.5", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "-np", "0", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "--ratio", "1.5", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "--ratio", "nan", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "--seed", "-3", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "--seed", "99999999999999999999", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "--mode", "irt", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "--json=yes", "a"), TMAP_ERR_USAGE);
    assert_int_equal(PARSE(&p, "a", "-m"), TMAP_ERR_USAGE);       /* missing value */
    assert_int_equal(PARSE(&p, "a", "b", "c"), TMAP_ERR_USAGE);   /* too many */
    assert_int_equal(PARSE(&p, "--json"), TMAP_ERR_USAGE);        /* too few */
}

static void test_help_returns_zero(void **state)
{
    (void)state;
    struct parsed p;
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = PARSE(&p, "--help");
    fclose(stdout);
    stdout = saved;
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_style_flags),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_help_returns_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
