/*
 * cmd_data.c - `tmap data stats FILE`: how many records of which format,
 * what was rejected, and how long prompts and responses are, in characters
 * and (with -m) in the model's tokens. `tmap data decontaminate POOL
 * --against FILE`: the pool without the records that ask a question of
 * FILE (a benchmark's test set, the run's validation data).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_summary_row(const char *name, const struct tmap_length_summary *s)
{
    printf("  %-17s %8.0f %8.0f %8.0f %8.0f %8.0f %8.0f %9.1f\n", name, s->min, s->p25, s->p50,
           s->p75, s->p95, s->max, s->mean);
}

static void print_text(const char *path, const struct tmap_pool_stats *st)
{
    printf("file       %s\nrecords    %zu\nrejected   %zu\nblank      %zu\n", path, st->n_records,
           st->n_rejected, st->n_blank_lines);
    printf("formats   ");
    for (int f = 0; f < TMAP_FORMAT_COUNT; f++)
        if (st->n_by_format[f])
            printf(" %s=%zu", tmap_format_name((enum tmap_format)f), st->n_by_format[f]);
    printf("\n\nlengths             %8s %8s %8s %8s %8s %8s %9s\n", "min", "p25", "p50", "p75",
           "p95", "max", "mean");
    print_summary_row("prompt chars", &st->prompt_chars);
    print_summary_row("response chars", &st->response_chars);
    if (st->has_tokens) {
        print_summary_row("prompt tokens", &st->prompt_tokens);
        print_summary_row("response tokens", &st->response_tokens);
    }
}

static void print_json_summary(const char *name, const struct tmap_length_summary *s, bool last)
{
    printf("\"%s\": {\"min\": %g, \"p25\": %g, \"p50\": %g, \"p75\": %g, \"p95\": %g, \"max\": %g, "
           "\"mean\": %.4f}%s", name, s->min, s->p25, s->p50, s->p75, s->p95, s->max, s->mean,
           last ? "" : ", ");
}

static void print_json(const char *path, const struct tmap_pool_stats *st)
{
    printf("{\"file\": ");
    cli_print_json_string(path);
    printf(", \"records\": %zu, \"rejected\": %zu, \"blank_lines\": %zu, \"formats\": {",
           st->n_records, st->n_rejected, st->n_blank_lines);
    bool first = true;
    for (int f = 0; f < TMAP_FORMAT_COUNT; f++) {
        if (!st->n_by_format[f])
            continue;
        printf("%s\"%s\": %zu", first ? "" : ", ", tmap_format_name((enum tmap_format)f),
               st->n_by_format[f]);
        first = false;
    }
    printf("}, ");
    print_json_summary("prompt_chars", &st->prompt_chars, false);
    print_json_summary("response_chars", &st->response_chars, !st->has_tokens);
    if (st->has_tokens) {
        print_json_summary("prompt_tokens", &st->prompt_tokens, false);
        print_json_summary("response_tokens", &st->response_tokens, true);
    }
    printf("}\n");
}

static int run_stats(const char *path, struct cli_data_options *d, struct tmap_model_params *mp,
                     bool json)
{
    struct tmap_error err = { 0 };
    struct tmap_pool *pool = NULL;
    struct tmap_model *model = NULL;
    struct tmap_pool_stats st;
    int rc = 0;

    if (cli_load_pool(d, path, &pool, &err))
        return cli_report(&err);
    if (mp->path) {
        tmap_backend_init(true);
        mp->n_ctx = 64; /* tokenizing only: no real context needed */
        mp->n_seq = 1;
        if (tmap_model_load(mp, &model, &err))
            rc = cli_report(&err);
    }
    if (rc == 0 && tmap_pool_stats(pool, model, &st, &err))
        rc = cli_report(&err);
    if (rc == 0) {
        if (json)
            print_json(path, &st);
        else
            print_text(path, &st);
    }
    tmap_model_free(model);
    if (mp->path)
        tmap_backend_free();
    tmap_pool_free(pool);
    return rc;
}

static int data_stats(int argc, char **argv)
{
    struct cli_data_options d;
    cli_data_options_init(&d);
    struct tmap_model_params mp = tmap_model_default_params();
    mp.n_gpu_layers = 0;
    bool json = false;
    const struct cli_option options[] = {
        { "-m|--model", CLI_STRING, &mp.path, "FILE", "also count lengths in this model's tokens", 0, 0, NULL },
        CLI_DATA_OPTIONS(d),
        { "--json", CLI_FLAG, &json, NULL, "print one JSON object", 0, 0, NULL },
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap data stats FILE [-m MODEL] [--fields MAP] [--on-error fail|skip] [--json]",
        "FILE is JSONL or a JSON array; each record's format (alpaca, gsm8k, sharegpt,\n"
        "openai, generic, mc) is detected on its own.",
        options, 1, 1,
    };
    const char *path = NULL;
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, &path, &n_pos);
    if (rc >= 0)
        return rc;
    rc = cli_data_options_finish(&d, path);
    if (rc == 0)
        rc = run_stats(path, &d, &mp, json);
    cli_data_options_free(&d);
    return rc;
}

/* Kept records to -o, dropped ones to --dropped: between the two files
 * every record of the pool is still somewhere, byte for byte. */
static enum tmap_status write_split(const struct tmap_pool *pool, const bool *asks, size_t *rows, const char *out,
                                    const char *dropped, size_t *n_kept, struct tmap_error *err)
{
    size_t n = tmap_pool_size(pool);
    enum tmap_status st = TMAP_OK;
    for (int pass = 0; pass < 2 && !st; pass++) {
        const char *path = pass == 0 ? out : dropped;
        struct tmap_selection sel = { .n_rows = n, .rows = rows };
        for (size_t i = 0; i < n; i++)
            if (asks[i] == (pass == 1))
                rows[sel.n++] = i;
        if (pass == 0)
            *n_kept = sel.n;
        if (path)
            st = tmap_selection_write(pool, &sel, path, err);
    }
    return st;
}

static int run_decontaminate(const char *pool_path, const char *against, const char *out, const char *dropped,
                             struct cli_data_options *d)
{
    struct tmap_error err = { 0 };
    struct tmap_pool *pool = NULL, *bench = NULL;
    struct tmap_overlap o;
    bool *asks = NULL;
    size_t *rows = NULL, n_kept = 0;
    enum tmap_status st = cli_load_pool(d, pool_path, &pool, &err);
    if (!st)
        st = cli_load_pool(d, against, &bench, &err);
    size_t n = tmap_pool_size(pool);
    if (!st && (!(asks = malloc((n ? n : 1) * sizeof *asks)) || !(rows = malloc((n ? n : 1) * sizeof *rows)))) {
        err.status = st = TMAP_ERR_NOMEM;
        snprintf(err.message, sizeof err.message, "out of memory for %zu records of %s", n, pool_path);
    }
    if (!st)
        st = tmap_pool_overlap(pool, bench, asks, &o, &err);
    if (!st)
        st = write_split(pool, asks, rows, out, dropped, &n_kept, &err);
    if (!st) {
        printf("kept %zu of %zu records of %s in %s; left out %zu that ask one of %zu questions of %s "
               "(%zu of them with the same answer)%s%s\n",
               n_kept, tmap_pool_size(pool), pool_path, out, o.n_pool_rows, o.n_prompts, against, o.n_records,
               dropped ? "; they are in " : "", dropped ? dropped : "");
    }
    free(rows);
    free(asks);
    tmap_pool_free(bench);
    tmap_pool_free(pool);
    return st ? cli_report(&err) : 0;
}

static int data_decontaminate(int argc, char **argv)
{
    struct cli_data_options d;
    cli_data_options_init(&d);
    const char *against = NULL, *out = NULL, *dropped = NULL;
    const struct cli_option options[] = {
        { "--against", CLI_STRING, &against, "FILE", "the questions to keep out (a test set, --val data): required", 0, 0, NULL },
        { "-o|--out", CLI_STRING, &out, "FILE", "where the kept records go (JSONL): required", 0, 0, NULL },
        { "--dropped", CLI_STRING, &dropped, "FILE", "where the left-out records go (JSONL)", 0, 0, NULL },
        CLI_DATA_OPTIONS(d),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap data decontaminate POOL --against FILE -o OUT [--dropped FILE]",
        "Writes POOL without the records that ask a question of FILE, whatever their\n"
        "answer, byte for byte and in order. Questions match after trimming surrounding\n"
        "whitespace and reading CRLF as LF; a reworded question is another question.\n"
        "Several test sets: concatenate them into one JSONL file.",
        options, 1, 1,
    };
    const char *pool_path = NULL;
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, &pool_path, &n_pos);
    if (rc >= 0)
        return rc;
    if (!against || !out)
        rc = cli_usage_error(&spec, "%s", !against ? "--against FILE is required" : "-o OUT is required");
    else
        rc = cli_check_paths(&spec,
                             (const struct cli_path[]){ { "POOL", pool_path }, { "--against", against }, { NULL, NULL } },
                             (const struct cli_path[]){ { "-o", out }, { "--dropped", dropped }, { NULL, NULL } });
    if (rc == 0)
        rc = cli_data_options_finish(&d, pool_path);
    if (rc == 0)
        rc = run_decontaminate(pool_path, against, out, dropped, &d);
    cli_data_options_free(&d);
    return rc;
}

int cmd_data(int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {
        { "stats", data_stats, "records per format, rejects, and length quantiles" },
        { "decontaminate", data_decontaminate, "the pool without the records asking a question of a test set" },
    };
    return cli_run_subcommand("data", subs, sizeof subs / sizeof subs[0], argc, argv);
}
