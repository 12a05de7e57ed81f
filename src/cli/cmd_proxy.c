/*
 * cmd_proxy.c - `tmap proxy`: the in-context-learning score of the target
 * model on a tiny set, with demonstrations drawn from a subset: the cheap
 * stand-in for fine-tuning on that subset.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>


struct proxy_options {
    struct tmap_model_params mp;
    struct tmap_proxy_params pp;
    struct cli_data_options  d;
    const char *demos_path, *tiny_path;
    int  policy, metric, tmpl, kind;
    bool no_share, json;
};

static int run_proxy(struct proxy_options *o)
{
    struct tmap_error err = { 0 };
    struct tmap_pool *demos = NULL, *tiny = NULL;
    struct tmap_model *model = NULL;
    struct tmap_proxy *proxy = NULL;
    size_t *rows = NULL;
    tmap_backend_init(true);
    enum tmap_status st = cli_load_pool(&o->d, o->demos_path, &demos, &err);
    if (!st)
        st = cli_load_pool(&o->d, o->tiny_path, &tiny, &err);
    if (!st)
        st = cli_warn_overlap(demos, tiny, o->tiny_path, &err);
    if (!st)
        st = cli_model_load(&o->mp, &model, &err);
    if (!st)
        st = tmap_proxy_create(model, tiny, NULL, &o->pp, &proxy, &err);
    size_t n = demos ? tmap_pool_size(demos) : 0;
    if (!st && !(rows = malloc((n ? n : 1) * sizeof *rows))) {
        err.status = st = TMAP_ERR_NOMEM;
        snprintf(err.message, sizeof err.message, "out of memory for %zu demonstrations", n);
    }
    double value = 0;
    struct tmap_proxy_stats ps = { 0 };
    for (size_t i = 0; !st && i < n; i++)
        rows[i] = i;
    if (!st)
        st = tmap_proxy_eval(proxy, demos, rows, n, NULL, &value, &ps, &err);
    if (!st && o->json)
        printf("{\"proxy\": %.10g, \"kind\": \"%s\", \"metric\": \"%s\", \"policy\": \"%s\", \"k\": %d, "
               "\"tiny_items\": %zu, \"tokens\": %llu, \"seconds\": %.3f, \"from_memo\": %s, \"skipped\": %zu}\n",
               value, tmap_proxy_kind_names()[o->kind], tmap_metric_names()[o->metric], tmap_demo_policy_names()[o->policy], o->pp.k,
               tmap_pool_size(tiny),
               (unsigned long long)ps.n_tokens, ps.seconds, ps.from_memo ? "true" : "false", ps.n_skipped);
    else if (!st)
        printf("proxy %s = %.6f  (%s demos, k=%d, %zu tiny items; %llu tokens, %.2f s%s)\n",
               tmap_metric_names()[o->metric], value, tmap_demo_policy_names()[o->policy], o->pp.k, tmap_pool_size(tiny),
               (unsigned long long)ps.n_tokens, ps.seconds, ps.from_memo ? ", from the memo" : "");
    int rc = st ? cli_report(&err) : 0;
    free(rows);
    tmap_proxy_free(proxy);
    tmap_model_free(model);
    tmap_pool_free(tiny);
    tmap_pool_free(demos);
    tmap_backend_free();
    return rc;
}

int cmd_proxy(int argc, char **argv)
{
    struct proxy_options o = { 0 };
    o.mp = tmap_model_default_params();
    o.mp.n_seq = 8; /* one sequence holds the shared demonstrations */
    o.pp = tmap_proxy_default_params();
    cli_data_options_init(&o.d);
    const struct cli_option options[] = {
        CLI_MODEL_OPTIONS(o.mp),
        { "--demos-from", CLI_STRING, &o.demos_path, "FILE", "the subset demonstrations are drawn from", 0, 0, NULL },
        { "--tiny", CLI_STRING, &o.tiny_path, "FILE", "the tiny set (from tmap tiny)", 0, 0, NULL },
        { "-k", CLI_INT, &o.pp.k, "K", "demonstrations per prompt (default 8)", 1, 1000, NULL },
        { "--policy", CLI_CHOICE, &o.policy, "top|random|knn", "how demonstrations are drawn (default top: file order)", 0, 0, tmap_demo_policy_names() },
        { "--draws", CLI_SIZE, &o.pp.draws, "M", "random policy: draws averaged (default 2)", 1, 1000, NULL },
        { "--groups", CLI_SIZE, &o.pp.groups, "G", "random policy: tiny-set groups, each with its own demonstrations (default 1)", 1, 10000, NULL },
        { "--metric", CLI_CHOICE, &o.metric, "loglik|accuracy|mc", "what is measured (default loglik)", 0, 0, tmap_metric_names() },
        { "--proxy", CLI_CHOICE, &o.kind, "icl|finetune", "in-context learning (default), or a short fine-tune on records drawn from the subset", 0, 0, tmap_proxy_kind_names() },
        { "--ft-records", CLI_SIZE, &o.pp.ft_records, "N", "fine-tune proxy: records drawn per draw (default 64)", 1, 1000000, NULL },
        { "--train-layers", CLI_STRING, &o.pp.ft_layers, "SPEC", "fine-tune proxy: which tensors train, as in tmap finetune (default all)", 0, 0, NULL },
        { "--template", CLI_CHOICE, &o.tmpl, "plain|chat", "prompt layout (default plain)", 0, 0, tmap_template_names() },
        { "--max-tokens", CLI_INT, &o.pp.max_tokens, "N", "accuracy: tokens generated per item (default 256)", 1, 1 << 20, NULL },
        { "--seed", CLI_U64, &o.pp.seed, "S", "random seed (default 42)", 0, 0, NULL },
        { "--cache", CLI_STRING, &o.pp.store_path, "DB", "memoise proxy values in this store", 0, 0, NULL },
        { "--no-share", CLI_FLAG, &o.no_share, NULL, "decode the demonstrations for every item (for comparison)", 0, 0, NULL },
        { "--json", CLI_FLAG, &o.json, NULL, "print one JSON object", 0, 0, NULL },
        CLI_DATA_OPTIONS(o.d),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap proxy -m MODEL --demos-from SUBSET.jsonl --tiny tiny.jsonl [-k 8] [--policy top|random|knn] [--metric loglik|accuracy|mc]",
        NULL, options, 0, 0,
    };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (!o.mp.path || !o.demos_path || !o.tiny_path)
        return cli_usage_error(&spec, "needs -m MODEL, --demos-from FILE and --tiny FILE");
    o.pp.policy = (enum tmap_demo_policy)o.policy;
    o.pp.metric = (enum tmap_metric)o.metric;
    o.pp.kind = (enum tmap_proxy_kind)o.kind;
    o.pp.tmpl = o.tmpl == 1 ? TMAP_TEMPLATE_CHAT : TMAP_TEMPLATE_PLAIN;
    o.pp.share_prefix = !o.no_share;
    rc = cli_check_paths(&spec,
                         (const struct cli_path[]){ { "--demos-from", o.demos_path }, { "--tiny", o.tiny_path },
                                                    { "-m", o.mp.path }, { NULL, NULL } },
                         (const struct cli_path[]){ { "--cache", o.pp.store_path }, { NULL, NULL } });
    if (rc == 0)
        rc = cli_data_options_finish(&o.d, o.demos_path);
    if (rc == 0)
        rc = run_proxy(&o);
    cli_data_options_free(&o.d);
    return rc;
}
