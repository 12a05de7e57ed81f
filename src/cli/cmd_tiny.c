/*
 * cmd_tiny.c - `tmap tiny`: pick ~100 weighted anchor items that stand for
 * a validation set; the proxy evaluates only these.
 */
#include "cli/cli.h"

#include <stdio.h>


static int run_tiny(struct tmap_model_params *mp, const char *val_path, struct cli_data_options *d,
                    const struct tmap_tiny_params *tp, const char *out_path)
{
    struct tmap_error err = { 0 };
    struct tmap_pool *val = NULL;
    struct tmap_model *model = NULL;
    struct tmap_tiny tiny = { 0 };
    tmap_backend_init(true);
    enum tmap_status st = cli_load_pool(d, val_path, &val, &err);
    if (!st && tp->mode == TMAP_TINY_ANCHORS)
        st = cli_model_load(mp, &model, &err);
    if (!st)
        st = tmap_tiny_select(val, model, tp, &tiny, &err);
    if (!st)
        st = tmap_tiny_write(&tiny, val, out_path, &err);
    if (!st && !cli_quiet) {
        double wmax = 0.0;
        for (size_t i = 0; i < tiny.n; i++)
            wmax = tiny.weights[i] > wmax ? tiny.weights[i] : wmax;
        size_t n = tmap_pool_size(val), could = tp->n < n ? tp->n : n;
        char fewer[96] = "";
        if (tiny.n < could)
            snprintf(fewer, sizeof fewer, ", fewer than the %zu asked for: the items repeat one another", tp->n);
        fprintf(stderr, "tmap: %zu anchors of %zu items (%s%s), largest weight %.4f; wrote %s\n", tiny.n, n,
                tmap_tiny_mode_name(tp->mode), fewer, wmax, out_path);
    }
    int rc = st ? cli_report(&err) : 0;
    tmap_tiny_free(&tiny);
    tmap_model_free(model);
    tmap_pool_free(val);
    tmap_backend_free();
    return rc;
}

int cmd_tiny(int argc, char **argv)
{
    struct tmap_model_params mp = tmap_model_default_params();
    struct tmap_tiny_params tp = tmap_tiny_default_params();
    struct cli_data_options d;
    cli_data_options_init(&d);
    const char *val_path = NULL, *out_path = "tiny.jsonl";
    int mode = 0, template_choice = 0;
    const struct cli_option options[] = {
        CLI_MODEL_OPTIONS(mp),
        { "-d|--data", CLI_STRING, &val_path, "FILE", "the task's validation data", 0, 0, NULL },
        { "-n", CLI_SIZE, &tp.n, "N", "anchors (default 100)", 1, 1e9, NULL },
        { "--mode", CLI_CHOICE, &mode, "anchors|random", "k-medoids anchors, or a random sample", 0, 0, tmap_tiny_mode_names() },
        { "--seed", CLI_U64, &tp.seed, "S", "random seed (default 42)", 0, 0, NULL },
        { "--cache", CLI_STRING, &tp.store_path, "DB", "store for the embeddings", 0, 0, NULL },
        { "--template", CLI_CHOICE, &template_choice, "plain|chat", "how the model reads an item to embed it (default plain)", 0, 0, tmap_template_names() },
        { "-o|--out", CLI_STRING, &out_path, "FILE", "the tiny set, JSONL with tmap_weight (default tiny.jsonl)", 0, 0, NULL },
        CLI_DATA_OPTIONS(d),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap tiny -m MODEL -d VAL [-n 100] [--mode anchors|random] [--seed S] --out tiny.jsonl",
        "Clusters the validation items' embeddings (k-medoids, k-means++ seeding) and keeps each\n"
        "medoid, weighted by its cluster's share of the set.",
        options, 0, 0,
    };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    tp.mode = mode == 1 ? TMAP_TINY_RANDOM : TMAP_TINY_ANCHORS;
    tp.tmpl = (enum tmap_template)template_choice;
    if (!val_path)
        return cli_usage_error(&spec, "no validation data given (-d FILE)");
    if (!mp.path && tp.mode == TMAP_TINY_ANCHORS)
        return cli_usage_error(&spec, "anchors need a model for embeddings (-m FILE.gguf)");
    rc = cli_check_paths(&spec, (const struct cli_path[]){ { "-d", val_path }, { "-m", mp.path }, { NULL, NULL } },
                         (const struct cli_path[]){ { "-o", out_path }, { "--cache", tp.store_path }, { NULL, NULL } });
    if (rc == 0)
        rc = cli_data_options_finish(&d, val_path);
    if (rc == 0)
        rc = run_tiny(&mp, val_path, &d, &tp, out_path);
    cli_data_options_free(&d);
    return rc;
}
