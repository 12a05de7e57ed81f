/*
 * cmd_select.c - `tmap select`: scores + weights -> selected.jsonl (the
 * records byte for byte) and, optionally, the full scores table with ranks,
 * combined score and selected flag. No model needed.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_select(int argc, char **argv)
{
    struct cli_data_options d;
    cli_data_options_init(&d);
    const char *pool_path = NULL, *scores_path = "scores.csv", *weights_path = "weights.json";
    const char *out = "selected.jsonl", *table = NULL;
    struct tmap_select_params sp = tmap_select_default_params();
    int mode = (int)sp.mode;
    const struct cli_option options[] = {
        { "-d|--data", CLI_STRING, &pool_path, "FILE", "the pool that was scored", 0, 0, NULL },
        { "--scores", CLI_STRING, &scores_path, "CSV", "from tmap score (default scores.csv)", 0, 0, NULL },
        { "--weights", CLI_STRING, &weights_path, "FILE", "from tmap learn (default weights.json)", 0, 0, NULL },
        { "-o|--out", CLI_STRING, &out, "FILE", "selected records (default selected.jsonl)", 0, 0, NULL },
        { "--table", CLI_STRING, &table, "CSV", "also write scores with ranks, combined score, selected flag", 0, 0, NULL },
        CLI_SELECT_OPTIONS(sp, mode),
        { "--seed", CLI_U64, &sp.seed, "S", "filter selection: the seed of the draw (default 42, as tmap learn's)", 0, 0, NULL },
        CLI_DATA_OPTIONS(d),
        CLI_OPT_END,
    };
    const struct cli_spec spec = { "tmap select -d POOL --scores scores.csv --weights weights.json [--ratio 0.3] [-o selected.jsonl]",
                                   NULL, options, 0, 0 };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (!pool_path)
        return cli_usage_error(&spec, "no pool given (-d FILE)");
    sp.mode = (enum tmap_select_mode)mode;
    rc = cli_check_paths(&spec,
                         (const struct cli_path[]){ { "-d", pool_path }, { "--scores", scores_path },
                                                    { "--weights", weights_path }, { NULL, NULL } },
                         (const struct cli_path[]){ { "-o", out }, { "--table", table }, { NULL, NULL } });
    if (rc != 0 || (rc = cli_data_options_finish(&d, pool_path)) != 0)
        return rc;
    struct tmap_error err = { 0 };
    /* The selection weights.json recorded is the default; a flag given
     * here wins. */
    struct tmap_select_params recorded = sp;
    struct tmap_error config_err = { 0 };
    enum tmap_status config_st = tmap_select_params_read_json(weights_path, &recorded, &config_err);
    if (config_st == TMAP_OK) {
        if (!cli_given(argc, argv, "--ratio"))
            sp.ratio = recorded.ratio;
        if (!cli_given(argc, argv, "--select"))
            sp.mode = recorded.mode;
        if (!cli_given(argc, argv, "--drop"))
            sp.drop = recorded.drop;
        if (!cli_given(argc, argv, "--strata"))
            sp.strata = recorded.strata;
        if (!cli_given(argc, argv, "--seed"))
            sp.seed = recorded.seed;
    }
    struct tmap_pool *pool = NULL;
    struct tmap_scores *scores = NULL;
    struct tmap_weights w = { 0 };
    struct tmap_selection sel = { 0 };
    enum tmap_status st = cli_load_pool(&d, pool_path, &pool, &err);
    if (!st)
        st = tmap_scores_read_csv(pool, scores_path, &scores, &err);
    if (!st)
        st = tmap_weights_read_json(weights_path, &w, &err);
    if (!st && config_st) { /* the file reads, its config does not */
        err = config_err;
        st = config_st;
    }
    if (!st)
        st = tmap_select(pool, scores, &w, &sp, &sel, &err);
    if (!st)
        st = tmap_selection_write(pool, &sel, out, &err);
    if (!st && table)
        st = tmap_selection_write_table(pool, scores, &w, &sel, table, &err);
    if (!st && !cli_quiet)
        fprintf(stderr, "tmap: selected %zu of %zu records (%zu exact duplicates kept out); wrote %s\n", sel.n,
                tmap_pool_size(pool), sel.n_duplicates, out);
    rc = st ? cli_report(&err) : 0;
    tmap_selection_free(&sel);
    tmap_weights_free(&w);
    tmap_scores_free(scores);
    tmap_pool_free(pool);
    cli_data_options_free(&d);
    return rc;
}
