/*
 * cmd_learn.c - `tmap learn`: scores + tiny set + model -> weights.json and
 * trace.csv. The weights of the indicator columns are searched with
 * Bayesian optimisation (or random / grid, the baselines), each candidate
 * judged by the ICL proxy on the subset it selects.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_eval(size_t i, const double *w, size_t d, double value, bool reused, void *ud)
{
    (void)w;
    (void)d;
    (void)ud;
    if (!cli_quiet)
        fprintf(stderr, "tmap: evaluation %zu: proxy %.6f%s\n", i + 1, value, reused ? " (same subset: reused)" : "");
}

struct learn_inputs {
    struct tmap_pool  *pool, *tiny;
    struct tmap_scores *scores;
    struct tmap_model *model;
    struct tmap_proxy *proxy;
};

static int run_learn(struct tmap_model_params *mp, struct cli_learn_options *l, const char *pool_path,
                     const char *scores_path, const char *tiny_path, const char *weights_path,
                     const char *trace_path, const char *cache, struct cli_data_options *d)
{
    struct tmap_error err = { 0 };
    struct learn_inputs in = { 0 };
    struct tmap_learn_result res = { 0 };
    tmap_backend_init(true);
    l->learn.proxy.store_path = cache;
    l->learn.on_eval = print_eval;
    enum tmap_status st = cli_load_pool(d, pool_path, &in.pool, &err);
    if (!st)
        st = tmap_scores_read_csv(in.pool, scores_path, &in.scores, &err);
    if (!st)
        st = cli_load_pool(d, tiny_path, &in.tiny, &err);
    if (!st)
        st = cli_warn_overlap(in.pool, in.tiny, tiny_path, &err);
    if (!st)
        st = cli_model_load(mp, &in.model, &err);
    if (!st)
        st = tmap_proxy_create(in.model, in.tiny, NULL, &l->learn.proxy, &in.proxy, &err);
    if (!st)
        st = tmap_learn(in.pool, in.scores, in.proxy, &l->learn, &res, &err);
    char *config = st ? NULL : tmap_learn_params_to_json(&l->learn);
    if (!st)
        st = tmap_weights_write_json(&res.weights, &res.baselines, config, weights_path, &err);
    free(config);
    if (!st)
        st = tmap_learn_result_write_trace(&res, trace_path, &err);
    if (!st) {
        for (size_t j = 0; j < res.weights.d; j++)
            printf("%-12s %.4f\n", res.weights.names[j], res.weights.weights[j]);
        printf("proxy %.6f after %zu evaluation%s (%zu spent%s); wrote %s and %s\n", res.weights.proxy_value,
               res.n_trace, res.n_trace == 1 ? "" : "s", res.n_spent,
               res.stalled ? "; " TMAP_SEARCH_STALLED_WORDS : "", weights_path,
               trace_path);
        char line[512];
        tmap_baselines_describe(&res.baselines, line, sizeof line);
        printf("baselines: %s\n", line);
        const char *hint = tmap_baselines_advice(&res.baselines, &l->learn, &res.weights);
        if (hint)
            printf("what may help: %s\n", hint);
        if (res.n_duplicates)
            printf("exact duplicates kept out of every selection: %zu\n", res.n_duplicates);
        if (l->learn.proxy.kind == TMAP_PROXY_ICL) {
            struct tmap_proxy_counters pc;
            struct tmap_model_info mi;
            tmap_model_get_info(in.model, &mi);
            if (tmap_proxy_count_demos(in.proxy, in.pool, res.selection.rows, res.selection.n, res.selection.combined,
                                       &pc, &err))
                memset(&pc, 0, sizeof pc);
            tmap_proxy_describe_demos(&pc, mi.n_ctx, line, sizeof line);
            /* The label tmap run's summary gives it, so one grep finds both. */
            printf("%s: %s\n", tmap_proxy_demos_cramped(&pc) ? "demonstrations: WARNING" : "demonstrations", line);
        }
    }
    int rc = st ? cli_report(&err) : 0;
    tmap_learn_result_free(&res);
    tmap_proxy_free(in.proxy);
    tmap_model_free(in.model);
    tmap_scores_free(in.scores);
    tmap_pool_free(in.tiny);
    tmap_pool_free(in.pool);
    tmap_backend_free();
    return rc;
}

int cmd_learn(int argc, char **argv)
{
    struct tmap_model_params mp = tmap_model_default_params();
    mp.n_seq = 8;
    struct cli_learn_options l;
    cli_learn_options_init(&l);
    struct cli_data_options d;
    cli_data_options_init(&d);
    const char *pool = NULL, *scores = "scores.csv", *tiny = "tiny.jsonl", *weights = "weights.json";
    const char *trace = "trace.csv", *cache = NULL;
    const struct cli_option options[] = {
        CLI_MODEL_OPTIONS(mp),
        { "-d|--data", CLI_STRING, &pool, "FILE", "the pool that was scored", 0, 0, NULL },
        { "--scores", CLI_STRING, &scores, "CSV", "from tmap score (default scores.csv)", 0, 0, NULL },
        { "--tiny", CLI_STRING, &tiny, "FILE", "from tmap tiny (default tiny.jsonl)", 0, 0, NULL },
        { "-o|--weights", CLI_STRING, &weights, "FILE", "where to write the weights (default weights.json)", 0, 0, NULL },
        { "--trace", CLI_STRING, &trace, "FILE", "where to write the search trace (default trace.csv)", 0, 0, NULL },
        { "--cache", CLI_STRING, &cache, "DB", "memoise proxy values in this store", 0, 0, NULL },
        CLI_LEARN_OPTIONS(l),
        CLI_DATA_OPTIONS(d),
        CLI_OPT_END,
    };
    const struct cli_spec spec = { "tmap learn -m MODEL -d POOL --scores scores.csv --tiny tiny.jsonl [--ratio 0.3] [--iters 30] [-o weights.json]",
                                   NULL, options, 0, 0 };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (!mp.path || !pool)
        return cli_usage_error(&spec, "needs -m MODEL and -d POOL");
    /* The inputs left at their defaults and not here: a user who ran
     * nothing before is told which commands write them. */
    if (!cli_given(argc, argv, "--scores") && access(scores, F_OK) != 0)
        return cli_usage_error(&spec, "no --scores given and no %s here: `tmap score -m MODEL -d POOL -o %s` "
                               "writes it (or `tmap run` does every step)", scores, scores);
    if (!cli_given(argc, argv, "--tiny") && access(tiny, F_OK) != 0)
        return cli_usage_error(&spec, "no --tiny given and no %s here: `tmap tiny -m MODEL -d VAL -o %s` "
                               "writes it (or `tmap run` does every step)", tiny, tiny);
    cli_learn_options_finish(&l);
    rc = cli_check_paths(&spec,
                         (const struct cli_path[]){ { "-d", pool }, { "--scores", scores }, { "--tiny", tiny },
                                                    { "-m", mp.path }, { NULL, NULL } },
                         (const struct cli_path[]){ { "--weights", weights }, { "--trace", trace }, { "--cache", cache },
                                                    { NULL, NULL } });
    if (rc == 0)
        rc = cli_data_options_finish(&d, pool);
    if (rc == 0)
        rc = run_learn(&mp, &l, pool, scores, tiny, weights, trace, cache, &d);
    cli_data_options_free(&d);
    return rc;
}
