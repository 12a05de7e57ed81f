/*
 * cmd_eval.c - `tmap eval`: a model's score on a whole benchmark with a
 * few-shot prompt, with a bootstrap interval, and optionally every
 * prediction as JSONL. What the ICL proxy estimates on a tiny set, this
 * measures on all of it.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The demonstrations when --demos is given without --shots (docs/design.md
 * section 5's k). */
enum { DEFAULT_SHOTS = 8 };

struct eval_options {
    struct cli_data_options  data;
    struct tmap_model_params model;
    struct tmap_eval_params  eval;
    const char *test_path, *demos_path, *out_path;
    size_t shots; /* SIZE_MAX: not given */
    int    metric_choice, template_choice;
};


struct loaded {
    struct tmap_pool  *test, *demos;
    struct tmap_model *model;
};

/* Demonstrations that ask a test question put that item's answer in every
 * prompt: its score then says what the model can copy, not what it knows. */
static enum tmap_status warn_leaking_demos(const struct eval_options *o, const struct loaded *l,
                                           struct tmap_error *err)
{
    size_t n_demos = tmap_pool_size(l->demos), n_used = o->eval.n_shots < n_demos ? o->eval.n_shots : n_demos;
    bool *asks = malloc((n_demos ? n_demos : 1) * sizeof *asks);
    if (!asks) {
        err->status = TMAP_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory for %zu demonstrations", n_demos);
        return err->status;
    }
    struct tmap_overlap overlap;
    enum tmap_status st = tmap_pool_overlap(l->demos, l->test, asks, &overlap, err);
    size_t n_leaking = 0, first = 0;
    for (size_t i = 0; !st && i < n_used; i++)
        if (asks[i] && n_leaking++ == 0)
            first = i;
    struct tmap_record rec;
    if (n_leaking && tmap_pool_record(l->demos, first, &rec) == TMAP_OK)
        fprintf(stderr, "tmap: warning: %zu of the %zu demonstrations (the first records of %s; the first: line %zu) "
                        "ask a question of %s: those items see their own question answered in every prompt, so "
                        "their scores overstate what the model knows (`tmap data decontaminate %s --against %s "
                        "-o CLEAN` leaves them out)\n",
                n_leaking, n_used, o->demos_path, rec.line, o->test_path, o->demos_path, o->test_path);
    free(asks);
    return st;
}

static enum tmap_status load_inputs(struct eval_options *o, struct loaded *l, struct tmap_error *err)
{
    enum tmap_status st = cli_load_pool(&o->data, o->test_path, &l->test, err);
    if (!st && o->demos_path)
        st = cli_load_pool(&o->data, o->demos_path, &l->demos, err);
    if (!st && l->demos)
        st = warn_leaking_demos(o, l, err);
    if (!st)
        st = cli_model_load(&o->model, &l->model, err);
    return st;
}

static void print_result(const struct tmap_eval_result *r, const struct eval_options *o)
{
    printf("metric     %s\n", tmap_metric_name(r->kind));
    printf("value      %.4f\n", r->metric);
    if (isnan(r->ci_low))
        printf("95%% CI     none (%s)\n", r->n ? "--bootstrap 0" : "no items");
    else
        printf("95%% CI     %.4f .. %.4f  (bootstrap, %zu resamples, seed %llu)\n", r->ci_low, r->ci_high,
               o->eval.n_bootstrap, (unsigned long long)o->eval.seed);
    printf("items      %zu (%zu skipped: do not fit the context)\n", r->n, r->n_items - r->n);
    printf("shots      %zu\n", o->eval.n_shots);
}

static void print_summary(const struct tmap_eval_result *r, const char *out_path)
{
    if (cli_quiet)
        return;
    fprintf(stderr, "tmap: evaluated %zu items in %.1f s: %llu tokens in %llu decode calls (%.0f tokens/s), "
                    "%d prompt tokens shared%s%s\n",
            r->n_items, r->seconds, (unsigned long long)r->n_tokens_decoded,
            (unsigned long long)r->n_decode_calls, r->seconds > 0 ? (double)r->n_tokens_decoded / r->seconds : 0.0,
            r->n_prefix_tokens, out_path ? "; wrote " : "", out_path ? out_path : "");
}

static int run_eval(struct eval_options *o)
{
    struct tmap_error err = { 0 };
    struct loaded l = { 0 };
    tmap_backend_init(true);
    enum tmap_status st = load_inputs(o, &l, &err);
    struct tmap_eval_result result = { 0 };
    if (!st)
        st = tmap_eval_run(l.model, l.test, l.demos, &o->eval, &result, &err);
    if (!st && o->out_path)
        st = tmap_eval_write_predictions(&result, o->out_path, &err);
    if (!st) {
        print_result(&result, o);
        print_summary(&result, o->out_path);
    }
    int rc = st ? cli_report(&err) : 0;
    tmap_eval_result_free(&result);
    tmap_model_free(l.model);
    tmap_pool_free(l.demos);
    tmap_pool_free(l.test);
    tmap_backend_free();
    return rc;
}

/* --shots defaults to 8 with --demos and means nothing without it. */
static int finish_options(struct eval_options *o, const struct cli_spec *spec)
{
    if (!o->model.path)
        return cli_usage_error(spec, "no model given (-m FILE.gguf)");
    if (!o->test_path)
        return cli_usage_error(spec, "no test data given (-d FILE)");
    if (!o->demos_path && o->shots != SIZE_MAX && o->shots > 0)
        return cli_usage_error(spec, "--shots %zu needs demonstrations (--demos FILE)", o->shots);
    o->eval.n_shots = !o->demos_path ? 0 : o->shots == SIZE_MAX ? DEFAULT_SHOTS : o->shots;
    o->eval.metric = (enum tmap_metric)o->metric_choice;
    o->eval.tmpl = (enum tmap_template)o->template_choice;
    return -1;
}

int cmd_eval(int argc, char **argv)
{
    struct eval_options o = { .shots = SIZE_MAX };
    cli_data_options_init(&o.data);
    o.model = tmap_model_default_params();
    o.eval = tmap_eval_default_params();
    o.eval.notice = cli_notice;
    o.eval.progress = cli_progress;
    o.metric_choice = (int)o.eval.metric;
    o.template_choice = (int)o.eval.tmpl;
    const struct cli_option options[] = {
        CLI_MODEL_OPTIONS(o.model),
        { "-d|--data", CLI_STRING, &o.test_path, "FILE", "the benchmark's test records (JSONL or JSON array)", 0, 0, NULL },
        { "--demos", CLI_STRING, &o.demos_path, "FILE", "demonstrations: the first --shots records of FILE", 0, 0, NULL },
        { "--shots", CLI_SIZE, &o.shots, "K", "demonstrations per prompt (default 8 with --demos, else 0)", 0, 1e6, NULL },
        { "--metric", CLI_CHOICE, &o.metric_choice, "loglik|accuracy|mc", "what is measured (default accuracy)", 0, 0, tmap_metric_names() },
        { "--max-tokens", CLI_INT, &o.eval.max_tokens, "N", "accuracy: new tokens per item (default 256)", 1, 1 << 20, NULL },
        { "--template", CLI_CHOICE, &o.template_choice, "plain|chat", "prompt layout (default plain)", 0, 0, tmap_template_names() },
        { "-o|--out", CLI_STRING, &o.out_path, "FILE", "write every prediction here (JSONL)", 0, 0, NULL },
        { "--seed", CLI_U64, &o.eval.seed, "S", "bootstrap seed (default 42)", 0, 0, NULL },
        { "--bootstrap", CLI_SIZE, &o.eval.n_bootstrap, "N", "resamples for the 95% interval (default 1000, 0 = none)", 0, 1e7, NULL },
        CLI_DATA_OPTIONS(o.data),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap eval -m MODEL -d TEST [--demos FILE --shots K] [--metric accuracy|loglik|mc] [--out preds.jsonl]",
        "accuracy: greedy generation, the answer's number against the gold one (GSM8K rules).\n"
        "loglik: mean log-probability per token of the gold response. mc: multiple choice by log-likelihood.",
        options, 0, 0,
    };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if ((rc = finish_options(&o, &spec)) >= 0)
        return rc;
    rc = cli_check_paths(&spec,
                         (const struct cli_path[]){ { "-d", o.test_path }, { "--demos", o.demos_path },
                                                    { "-m", o.model.path }, { NULL, NULL } },
                         (const struct cli_path[]){ { "-o", o.out_path }, { NULL, NULL } });
    if (rc == 0)
        rc = cli_data_options_finish(&o.data, o.test_path);
    if (rc == 0)
        rc = run_eval(&o);
    cli_data_options_free(&o.data);
    return rc;
}
