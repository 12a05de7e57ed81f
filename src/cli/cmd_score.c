/*
 * cmd_score.c - `tmap score`: every indicator for every pool sample, kept in
 * a SQLite store so a rerun (or a resumed killed run) does no model work
 * twice, written as scores.csv.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct score_options {
    struct cli_data_options   data;
    struct tmap_model_params  model;
    struct tmap_score_params  score;
    const char *pool_path, *val_path, *indicators, *judge_path, *embed_path, *extra_path, *out_path;
    int  template_choice;
    bool dry_run;
};


/* Every model this command loads shares the target's runtime options. */
static enum tmap_status load_model(const struct score_options *o, const char *path,
                                   struct tmap_model **out, struct tmap_error *err)
{
    struct tmap_model_params p = o->model;
    p.path = path;
    return cli_model_load(&p, out, err);
}

struct loaded {
    struct tmap_pool  *pool, *val;
    struct tmap_model *model, *judge, *embedder;
};

static void free_loaded(struct loaded *l)
{
    tmap_model_free(l->embedder);
    tmap_model_free(l->judge);
    tmap_model_free(l->model);
    tmap_pool_free(l->val);
    tmap_pool_free(l->pool);
}

static enum tmap_status load_inputs(struct score_options *o, struct loaded *l, struct tmap_error *err)
{
    enum tmap_status st = cli_load_pool(&o->data, o->pool_path, &l->pool, err);
    if (!st && o->val_path)
        st = cli_load_pool(&o->data, o->val_path, &l->val, err);
    if (!st && l->val) /* relevance would score a copy of a validation record highest */
        st = cli_warn_overlap(l->pool, l->val, o->val_path, err);
    if (!st)
        st = load_model(o, o->model.path, &l->model, err);
    if (!st && o->judge_path)
        st = load_model(o, o->judge_path, &l->judge, err);
    if (!st && o->embed_path)
        st = load_model(o, o->embed_path, &l->embedder, err);
    o->score.val = l->val;
    o->score.judge = l->judge;
    o->score.embedder = l->embedder;
    return st;
}

static void print_plan(const struct tmap_score_plan *plan)
{
    printf("samples            %zu (%zu already in the store)\n", plan->n_samples, plan->n_cached);
    printf("forward passes     %llu sequences\n", (unsigned long long)plan->n_passes);
    printf("tokens to decode   %llu\n", (unsigned long long)plan->n_tokens);
    printf("measured speed     %.0f tokens/s (calibration slice)\n", plan->tokens_per_second);
    printf("estimated time     %.0f s (neighbour search not included)\n", plan->seconds);
}

static void print_summary(const struct tmap_scores *scores, const char *out_path)
{
    struct tmap_score_stats st;
    tmap_scores_get_stats(scores, &st);
    if (cli_quiet)
        return;
    char copies[64] = "", empty[64] = "", rate[64] = ""; /* no rate when nothing was decoded (a rerun, or text indicators) */
    if (st.n_copies)
        snprintf(copies, sizeof copies, ", %zu repeating an earlier sample", st.n_copies);
    if (st.n_empty)
        snprintf(empty, sizeof empty, " (%zu with an empty response)", st.n_empty);
    if (st.n_tokens > 0 && st.seconds > 0)
        snprintf(rate, sizeof rate, " (%.0f tokens/s)", (double)st.n_tokens / st.seconds);
    fprintf(stderr,
            "tmap: scored %zu samples: %zu computed, %zu from the store%s, %zu skipped%s; "
            "%llu tokens in %llu decode calls, %.1f s%s; wrote %s\n",
            st.n_samples, st.n_computed, st.n_from_store, copies, st.n_skipped, empty, (unsigned long long)st.n_tokens,
            (unsigned long long)st.n_decode_calls, st.seconds, rate, out_path);
}

static int run_score(struct score_options *o)
{
    struct tmap_error err = { 0 };
    struct loaded l = { 0 };
    tmap_backend_init(true);
    enum tmap_status st = load_inputs(o, &l, &err);
    bool writer = tmap_dist_rank() == 0; /* the other ranks only compute */
    if (!st && o->dry_run) {
        struct tmap_score_plan plan;
        if (writer)
            st = tmap_score_plan(l.pool, l.model, &o->score, &plan, &err);
        if (!st && writer)
            print_plan(&plan);
    } else if (!st) {
        struct tmap_scores *scores = NULL;
        st = tmap_score(l.pool, l.model, &o->score, &scores, &err);
        if (!st && o->extra_path && writer)
            st = tmap_scores_merge_csv(scores, l.pool, o->extra_path, &err);
        if (!st && writer)
            st = tmap_scores_write_csv(scores, l.pool, o->out_path, &err);
        if (!st)
            print_summary(scores, o->out_path);
        tmap_scores_free(scores);
    }
    int rc = st ? cli_report(&err) : 0;
    free_loaded(&l);
    tmap_backend_free();
    return rc;
}

int cmd_score(int argc, char **argv)
{
    struct score_options o = { .out_path = "scores.csv", .indicators = "default" };
    cli_data_options_init(&o.data);
    o.model = tmap_model_default_params();
    o.score = tmap_score_default_params();
    o.score.notice = cli_notice;
    o.score.progress = cli_progress;
    o.score.distributed = true;
    const struct cli_option options[] = {
        CLI_MODEL_OPTIONS(o.model),
        { "-d|--data", CLI_STRING, &o.pool_path, "FILE", "the pool to score (JSONL or JSON array)", 0, 0, NULL },
        { "--val", CLI_STRING, &o.val_path, "FILE", "the task's validation data (for relevance)", 0, 0, NULL },
        { "--indicators", CLI_STRING, &o.indicators, "LIST", "a comma list, default (all but coverage), all", 0, 0, NULL },
        { "--cache", CLI_STRING, &o.score.store_path, "DB", "SQLite score store: reruns and killed runs resume", 0, 0, NULL },
        { "-o|--out", CLI_STRING, &o.out_path, "FILE", "scores CSV (default scores.csv)", 0, 0, NULL },
        { "--judge", CLI_STRING, &o.judge_path, "GGUF", "rate quality/complexity with this model", 0, 0, NULL },
        { "--embed-model", CLI_STRING, &o.embed_path, "GGUF", "compute embeddings with this model", 0, 0, NULL },
        { "--extra", CLI_STRING, &o.extra_path, "CSV", "merge your own columns (id,NAME,...)", 0, 0, NULL },
        { "--template", CLI_CHOICE, &o.template_choice, "plain|chat", "how the model reads a sample", 0, 0, tmap_template_names() },
        { "-k|--knn", CLI_INT, &o.score.knn_k, "K", "neighbours for diversity (default 10)", 1, 1000, NULL },
        { "--ann-min-rows", CLI_SIZE, &o.score.ann_min_rows, "N", "diversity from an approximate index from N rows on (default 50000; 0: always exact; needs FAISS)", 0, 1e12, NULL },
        { "--top-m", CLI_INT, &o.score.relevance_m, "M", "validation matches for relevance (default 5)", 1, 1000, NULL },
        { "--batch-samples", CLI_SIZE, &o.score.batch_samples, "N", "samples per stored batch (default 64)", 1, 1e6, NULL },
        { "--dry-run", CLI_FLAG, &o.dry_run, NULL, "print tokens, passes and an estimated time, then stop", 0, 0, NULL },
        CLI_DATA_OPTIONS(o.data),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap score -m MODEL -d POOL [--val VAL] [--indicators LIST] [--cache DB] [--out scores.csv]",
        "Indicators: loss ifd quality complexity diversity relevance steps length lexical numeracy support, and coverage (opt-in).",
        options, 0, 0,
    };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (!o.model.path)
        return cli_usage_error(&spec, "no model given (-m FILE.gguf)");
    if (!o.pool_path)
        return cli_usage_error(&spec, "no pool given (-d FILE)");
    struct tmap_error err = { 0 };
    if (tmap_indicator_parse_list(o.indicators, &o.score.indicators, &err))
        return cli_report(&err);
    o.score.tmpl = (enum tmap_template)o.template_choice;
    /* One GPU per rank, by its rank on this host (harmless without GPUs). */
    if (tmap_dist_size() > 1 && o.model.main_gpu < 0)
        o.model.main_gpu = tmap_dist_local_rank();
    rc = cli_check_paths(&spec,
                         (const struct cli_path[]){ { "-d", o.pool_path }, { "--val", o.val_path },
                                                    { "--extra", o.extra_path }, { "-m", o.model.path },
                                                    { "--judge", o.judge_path }, { "--embed-model", o.embed_path },
                                                    { NULL, NULL } },
                         (const struct cli_path[]){ { "-o", o.out_path }, { "--cache", o.score.store_path },
                                                    { NULL, NULL } });
    if (rc == 0)
        rc = cli_data_options_finish(&o.data, o.pool_path);
    if (rc == 0)
        rc = run_score(&o);
    cli_data_options_free(&o.data);
    return rc;
}
