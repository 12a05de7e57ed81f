/*
 * cmd_run.c - `tmap run`, the main command: score -> tiny -> learn ->
 * select -> report, into one output folder, with a summary table at the
 * end.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void print_eval(size_t i, const double *w, size_t d, double value, bool reused, void *ud)
{
    (void)w;
    (void)d;
    (void)ud;
    if (!cli_quiet)
        fprintf(stderr, "tmap: search evaluation %zu: proxy %.6f%s\n", i + 1, value,
                reused ? " (same subset: reused, no budget)" : "");
}

/* Which model, and whether it knows the task: a run on a model that knows
 * nothing is a smoke test, and says so. */
static void print_model(const struct tmap_model_info *m, const char *path)
{
    const char *base = strrchr(path, '/');
    printf("\n%-28s %s (%s, %d wide, %d layers, %d-token vocabulary)\n", "model", base ? base + 1 : path, m->arch,
           m->n_embd, m->n_layer, m->n_vocab);
    if (m->eval_on[0] && isfinite(m->eval_response_loss))
        printf("%-28s held-out loss %.3f bits/byte, %.4f nats/token on %s\n", "what it knows", m->eval_response_bpb,
               m->eval_response_loss, m->eval_on);
    if (m->trained_on[0])
        printf("%-28s %s\n", "trained on", m->trained_on);
    else
        printf("%-28s no training record in the model (not trained by tmap)\n", "trained on");
    char line[512];
    if (tmap_model_context_warning(m, line, sizeof line))
        printf("%-28s %s\n", "context: WARNING", line);
}

/* A judge or an embedder loaded past its training context: their scores
 * feed the selection as much as the target's do. */
static void print_helper_context(const struct tmap_model_info *m, const char *role, const char *path)
{
    char line[512];
    if (path && tmap_model_context_warning(m, line, sizeof line))
        printf("%-28s %s: %s\n", role, path, line);
}

/* The proxy's settings in a line: a value is only comparable under them. */
static void print_proxy(const struct tmap_proxy_params *pp)
{
    if (pp->kind == TMAP_PROXY_FINETUNE)
        printf("%-28s fine-tune: %zu records of the subset, %d epoch%s at lr %g, %zu draw%s%s%s\n", "proxy",
               pp->ft_records, pp->ft_epochs, pp->ft_epochs == 1 ? "" : "s", (double)pp->ft_lr, pp->draws,
               pp->draws == 1 ? "" : "s", pp->ft_layers && *pp->ft_layers ? ", training " : "",
               pp->ft_layers && *pp->ft_layers ? pp->ft_layers : "");
    else
        printf("%-28s in-context: %s, k %d, %s demonstrations%s\n", "proxy", tmap_metric_name(pp->metric), pp->k,
               tmap_demo_policy_name(pp->policy), pp->policy == TMAP_DEMOS_RANDOM ? ", averaged over draws" : "");
}

/* Ends a summary line: what --on-error skip set aside, and where. */
static void print_rejected(size_t n, const char *rejects_path)
{
    if (n)
        printf("; %zu bad record%s set aside%s%s", n, n == 1 ? "" : "s", rejects_path ? " in " : "",
               rejects_path ? rejects_path : "");
    printf("\n");
}

static void print_summary(const struct tmap_run_summary *s, const struct tmap_run_params *p)
{
    const char *model_path = p->model.path, *out_dir = p->out_dir;
    double ratio = p->learn.select.ratio;
    print_model(&s->model, model_path);
    print_helper_context(&s->judge, "judge context: WARNING", p->judge_path);
    print_helper_context(&s->embedder, "embedder context: WARNING", p->embed_path);
    printf("%-28s %zu records", "pool", s->n_pool);
    print_rejected(s->n_pool_rejected, p->pool.rejects_path);
    printf("%-28s %zu item%s -> %zu anchor%s", "validation", s->n_val, s->n_val == 1 ? "" : "s", s->n_tiny,
           s->n_tiny == 1 ? "" : "s");
    print_rejected(s->n_val_rejected, p->pool.rejects_path);
    char leak[1024];
    if (tmap_overlap_describe(&s->val_in_pool, p->val_path, leak, sizeof leak))
        printf("%-28s %s\n", "validation: WARNING", leak);
    /* "computed" counts samples that gained any value, a text-only one
     * too; the tokens say whether the model did any work for them. */
    printf("%-28s %zu computed, %zu from the store", "scoring", s->score_stats.n_computed,
           s->score_stats.n_from_store);
    if (s->score_stats.n_copies)
        printf(", %zu repeating an earlier sample", s->score_stats.n_copies);
    printf(", %llu tokens decoded, %.1f s", (unsigned long long)s->score_stats.n_tokens, s->seconds_score);
    size_t n_empty = s->score_stats.n_empty, n_long = s->score_stats.n_skipped - n_empty;
    if (n_long)
        printf("; %zu skipped, %s longer than the context (%d tokens): no model indicators", n_long,
               n_long == 1 ? "its response" : "their responses", s->model.n_ctx);
    if (n_empty)
        printf("; %zu with an empty response: no model indicators", n_empty);
    printf("\n");
    printf("%-28s %zu evaluation%s (%zu spent), %.1f s%s\n", "weight search", s->n_evaluations,
           s->n_evaluations == 1 ? "" : "s", s->n_spent, s->seconds_learn,
           s->search_stalled ? "; " TMAP_SEARCH_STALLED_WORDS : "");
    print_proxy(&p->learn.proxy);
    char line[512];
    if (p->learn.proxy.kind == TMAP_PROXY_ICL) {
        tmap_proxy_describe_demos(&s->proxy_demos, s->model.n_ctx, line, sizeof line);
        printf("%-28s %s\n", tmap_proxy_demos_cramped(&s->proxy_demos) ? "demonstrations: WARNING" : "demonstrations",
               line);
    }
    const struct tmap_baselines *b = &s->baselines;
    printf("%-28s %.6f\n", "proxy, equal weights", b->equal);
    printf("%-28s %.6f (search), %.6f +/- %.6f over %zu fresh draws\n", "proxy, learned weights",
           s->weights.proxy_value, b->learned_mean, b->learned_sd, b->n_redraws);
    printf("%-28s %.6f +/- %.6f over %zu subsets\n", "proxy, random subsets", b->random_mean, b->random_sd,
           b->n_random);
    tmap_baselines_describe(b, line, sizeof line);
    printf("%-28s %s\n", "baseline", line);
    const char *hint = tmap_baselines_advice(b, &p->learn, &s->weights);
    if (hint)
        printf("%-28s %s\n", "what may help", hint);
    /* The share actually kept, which --ratio's rounding up (ceil) and the
     * duplicates kept out can move: 1 record at 0.3 keeps 1 of 1. Below
     * 1%, one significant digit, so that 1 of 200 does not read 0%. */
    double share = s->n_pool ? 100.0 * (double)s->n_selected / (double)s->n_pool : ratio * 100.0;
    printf(share > 0.0 && share < 1.0 ? "%-28s %zu of %zu (%.1g%%)" : "%-28s %zu of %zu (%.0f%%)", "selected",
           s->n_selected, s->n_pool, share);
    if (p->learn.select.mode == TMAP_SELECT_FILTER)
        printf(", drawn at random from all but the lowest %.0f%%", p->learn.select.drop * 100.0);
    if (p->learn.select.mode == TMAP_SELECT_STRATIFIED)
        printf(", the highest of each of %zu length bands", p->learn.select.strata);
    if (s->n_duplicates)
        printf("; %zu exact duplicates kept out", s->n_duplicates);
    printf("\n");
    printf("\n%-14s %s\n", "indicator", "weight");
    for (size_t j = 0; j < s->weights.d; j++)
        printf("%-14s %+.4f\n", s->weights.names[j], s->weights.weights[j]);
    printf("\noutputs in %s/: selected.jsonl scores.csv weights.json trace.csv tiny.jsonl\n", out_dir);
    printf("report: %s/report.html   (%.1f s in all)\n", out_dir, s->seconds_total);
}

/* The run writes its files into OUT: none of them may be an input (a
 * second run on the first one's selection, given the same OUT, would
 * replace the pool it reads). */
static int check_run_paths(const struct cli_spec *spec, const struct tmap_run_params *p)
{
    static const char *const names[] = { "selected.jsonl", "scores.csv", "weights.json", "trace.csv",
                                          "tiny.jsonl", "report.html", "store.db" };
    enum { N_OUT = sizeof names / sizeof names[0] };
    char paths[N_OUT][4200];
    struct cli_path outputs[N_OUT + 1] = { { NULL, NULL } };
    for (size_t i = 0; i < N_OUT; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", p->out_dir, names[i]);
        outputs[i] = (struct cli_path){ "--out", paths[i] };
    }
    if (p->store_path) /* the store the run keeps in place of OUT/store.db */
        outputs[N_OUT - 1] = (struct cli_path){ "--cache", p->store_path };
    const struct cli_path inputs[] = { { "-d", p->pool_path }, { "--val", p->val_path }, { "-m", p->model.path },
                                       { "--judge", p->judge_path }, { "--embed-model", p->embed_path },
                                       { NULL, NULL } };
    return cli_check_paths(spec, inputs, outputs);
}

int cmd_run(int argc, char **argv)
{
    struct tmap_run_params p = tmap_run_default_params();
    struct cli_learn_options l;
    cli_learn_options_init(&l);
    struct cli_data_options d;
    cli_data_options_init(&d);
    const char *indicators = "default";
    int tiny_mode = 0;
    const struct cli_option options[] = {
        CLI_MODEL_OPTIONS(p.model),
        { "-d|--data", CLI_STRING, &p.pool_path, "FILE", "the pool to select from", 0, 0, NULL },
        { "--val", CLI_STRING, &p.val_path, "FILE", "the task's validation data", 0, 0, NULL },
        { "-o|--out", CLI_STRING, &p.out_dir, "DIR", "output folder", 0, 0, NULL },
        { "--cache", CLI_STRING, &p.store_path, "DB", "score store (default OUT/store.db)", 0, 0, NULL },
        { "--indicators", CLI_STRING, &indicators, "LIST", "indicators to score and weigh: a comma list, default (all but coverage), all", 0, 0, NULL },
        { "-n|--tiny-items", CLI_SIZE, &p.tiny.n, "N", "anchors in the tiny set (default 100)", 1, 1e6, NULL },
        { "--tiny-mode", CLI_CHOICE, &tiny_mode, "anchors|random", "how anchors are picked", 0, 0, tmap_tiny_mode_names() },
        { "--judge", CLI_STRING, &p.judge_path, "GGUF", "rate quality/complexity with this model (default: the target)", 0, 0, NULL },
        { "--embed-model", CLI_STRING, &p.embed_path, "GGUF", "embeddings for diversity and relevance from this model (default: the target)", 0, 0, NULL },
        { "--batch-samples", CLI_SIZE, &p.score.batch_samples, "N", "samples per stored batch; the unit ranks share (default 64)", 1, 1e6, NULL },
        { "--diverse", CLI_DOUBLE, &p.diversity_threshold, "SIM", "drop a sample more similar than SIM (cosine) to a kept one", 0, 1, NULL },
        CLI_LEARN_OPTIONS(l),
        CLI_DATA_OPTIONS(d),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap run -m MODEL -d POOL --val VAL [--ratio 0.3] --out DIR",
        "score -> tiny -> learn -> select -> report, reusing the store.", options, 0, 0,
    };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (!p.model.path || !p.pool_path || !p.val_path || !p.out_dir)
        return cli_usage_error(&spec, "needs -m MODEL, -d POOL, --val VAL and --out DIR");
    struct tmap_error err = { 0 };
    if (tmap_indicator_parse_list(indicators, &p.score.indicators, &err))
        return cli_report(&err);
    cli_learn_options_finish(&l);
    /* One GPU per rank, by its rank on this host (harmless without GPUs). */
    if (tmap_dist_size() > 1 && p.model.main_gpu < 0)
        p.model.main_gpu = tmap_dist_local_rank();
    p.learn = l.learn;
    p.score.tmpl = p.learn.proxy.tmpl; /* the target reads samples as the proxy lays them out */
    p.learn.on_eval = print_eval;
    p.tiny.mode = tiny_mode == 1 ? TMAP_TINY_RANDOM : TMAP_TINY_ANCHORS;
    p.tiny.seed = p.learn.seed;
    p.score.notice = cli_notice;
    p.score.progress = cli_progress;
    p.score.distributed = true;
    p.learn.distributed = true;
    if ((rc = check_run_paths(&spec, &p)) != 0 || (rc = cli_data_options_finish(&d, p.pool_path)) != 0)
        return rc;
    p.pool = d.pool;
    tmap_backend_init(true);
    struct tmap_run_summary s;
    if (tmap_run(&p, &s, &err)) {
        rc = cli_report(&err);
    } else {
        if (tmap_dist_rank() == 0)
            print_summary(&s, &p);
        tmap_run_summary_free(&s);
    }
    tmap_backend_free();
    cli_data_options_free(&d);
    return rc;
}
