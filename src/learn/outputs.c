/*
 * outputs.c - the files a run leaves (docs/design.md section 7): selected.jsonl
 * (records byte for byte), scores.csv (hash, raw values, ranks, combined score,
 * selected flag), weights.json and trace.csv; and reading scores.csv and
 * weights.json back for `tmap select`.
 *
 * Every file is written through util/atomic.h (temporary name, fsync,
 * rename), so a killed run never leaves a truncated output behind.
 * selected.jsonl is one record per line whatever the input's layout: the
 * input line byte for byte from JSONL, an element of a JSON array on one
 * line (tmap_record_write_line).
 */
#include "data/format.h"
#include "indicators/scores.h"
#include "util/atomic.h"
#include "util/csv.h"
#include "util/error.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- selected.jsonl, scores.csv, trace.csv ----------------------------- */

enum tmap_status tmap_selection_write(const struct tmap_pool *pool, const struct tmap_selection *sel,
                                     const char *path, struct tmap_error *err)
{
    struct tmap_atomic_file o;
    enum tmap_status st = tmap_atomic_open(&o, path, "w", err);
    if (st)
        return st;
    for (size_t i = 0; i < sel->n; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, sel->rows[i], &rec);
        tmap_record_write_line(o.f, rec.raw, rec.raw_bytes); /* a failed write shows at commit */
    }
    return tmap_atomic_commit(&o, err);
}


static void csv_number(FILE *f, double v)
{
    if (isnan(v))
        fputc(',', f);
    else
        fprintf(f, ",%.17g", v);
}

enum tmap_status tmap_selection_write_table(const struct tmap_pool *pool, const struct tmap_scores *s,
                                        const struct tmap_weights *w, const struct tmap_selection *sel,
                                        const char *path, struct tmap_error *err)
{
    struct tmap_atomic_file o;
    enum tmap_status st = tmap_atomic_open(&o, path, "w", err);
    if (st)
        return st;
    size_t *cols = calloc(w->d ? w->d : 1, sizeof *cols);
    if (!cols) {
        tmap_atomic_abort(&o);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory writing %s", path);
    }
    /* The hash lets tmap select refuse these scores for a record edited since. */
    fputs("id,hash", o.f);
    for (size_t j = 0; j < w->d; j++) {
        cols[j] = tmap_scores_find_column(s, w->names[j]);
        fputc(',', o.f);
        tmap_csv_write_field(o.f, w->names[j]);
    }
    for (size_t j = 0; j < w->d; j++) {
        fputs(",rank_", o.f);
        tmap_csv_write_field(o.f, w->names[j]);
    }
    fputs(",combined,selected\n", o.f);
    for (size_t i = 0; i < s->n_rows; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        char hex[33];
        tmap_hash_hex(rec.hash, hex);
        tmap_csv_write_field(o.f, rec.id);
        fprintf(o.f, ",%s", hex);
        for (size_t j = 0; j < w->d; j++)
            csv_number(o.f, cols[j] == SIZE_MAX ? NAN : s->values[cols[j] * s->n_rows + i]);
        for (size_t j = 0; j < w->d; j++)
            csv_number(o.f, sel->ranks[j * s->n_rows + i]);
        csv_number(o.f, sel->combined[i]);
        fprintf(o.f, ",%d\n", sel->selected[i] ? 1 : 0);
    }
    free(cols);
    return tmap_atomic_commit(&o, err);
}

enum tmap_status tmap_learn_result_write_trace(const struct tmap_learn_result *r, const char *path, struct tmap_error *err)
{
    struct tmap_atomic_file o;
    enum tmap_status st = tmap_atomic_open(&o, path, "w", err);
    if (st)
        return st;
    fputs("iteration", o.f);
    for (size_t j = 0; j < r->weights.d; j++) {
        fputs(",w_", o.f);
        tmap_csv_write_field(o.f, r->weights.names[j]);
    }
    fputs(",proxy,reused,subset_hash,seconds\n", o.f);
    for (size_t i = 0; i < r->n_trace; i++) {
        const struct tmap_trace_entry *e = &r->trace[i];
        fprintf(o.f, "%zu", i);
        for (size_t j = 0; j < r->weights.d; j++)
            fprintf(o.f, ",%.10g", e->w[j]);
        fprintf(o.f, ",%.10g,%d,%016llx,%.3f\n", e->value, e->reused ? 1 : 0,
                (unsigned long long)e->subset_hash, e->seconds);
    }
    return tmap_atomic_commit(&o, err);
}

/* ---- weights.json -------------------------------------------------------- */

/* The baselines as weights.json records them; single values by name. */
static json_t *baselines_json(const struct tmap_weights *w, const struct tmap_baselines *b)
{
    json_t *o = json_object(), *single = json_object(), *random = json_array(), *redraws = json_array();
    for (size_t j = 0; j < b->d && j < w->d; j++)
        json_object_set_new(single, w->names[j], json_real(b->single[j]));
    for (size_t i = 0; i < b->n_random; i++)
        json_array_append_new(random, json_real(b->random[i]));
    for (size_t i = 0; i < b->n_redraws; i++)
        json_array_append_new(redraws, json_real(b->redraws[i]));
    static const char *const verdicts[] = { "unknown", "beats_random", "within_noise", "worse_than_random" };
    char sentence[512];
    tmap_baselines_describe(b, sentence, sizeof sentence);
    json_object_set_new(o, "equal_weights", json_real(b->equal));
    json_object_set_new(o, "single_indicator", single);
    json_object_set_new(o, "random_subsets", random);
    json_object_set_new(o, "learned_redraws", redraws);
    json_object_set_new(o, "random_mean", isfinite(b->random_mean) ? json_real(b->random_mean) : json_null());
    json_object_set_new(o, "random_sd", json_real(b->random_sd));
    json_object_set_new(o, "learned_mean", isfinite(b->learned_mean) ? json_real(b->learned_mean) : json_null());
    json_object_set_new(o, "learned_sd", json_real(b->learned_sd));
    json_object_set_new(o, "z", isfinite(b->z) ? json_real(b->z) : json_null());
    json_object_set_new(o, "verdict", json_string(verdicts[b->verdict]));
    json_object_set_new(o, "distinct_records", json_integer((json_int_t)b->n_distinct));
    json_object_set_new(o, "no_choice", json_boolean(b->no_choice));
    json_object_set_new(o, "summary", json_string(sentence));
    return o;
}

enum tmap_status tmap_weights_write_json(const struct tmap_weights *w, const struct tmap_baselines *baselines,
                                         const char *config_json, const char *path, struct tmap_error *err)
{
    json_t *root = json_object(), *list = json_array();
    for (size_t j = 0; j < w->d; j++) {
        json_t *e = json_object();
        json_object_set_new(e, "name", json_string(w->names[j]));
        json_object_set_new(e, "direction", json_string(w->higher_is_better[j] ? "higher" : "lower"));
        json_object_set_new(e, "weight", json_real(w->weights[j]));
        json_array_append_new(list, e);
    }
    json_object_set_new(root, "tmap_version", json_string(tmap_version()));
    json_object_set_new(root, "indicators", list);
    json_object_set_new(root, "proxy_value", isnan(w->proxy_value) ? json_null() : json_real(w->proxy_value));
    if (baselines)
        json_object_set_new(root, "baselines", baselines_json(w, baselines));
    json_t *config = config_json ? json_loads(config_json, 0, NULL) : NULL;
    json_object_set_new(root, "config", config ? config : json_object());
    struct tmap_atomic_file o;
    enum tmap_status st = tmap_atomic_open(&o, path, "w", err);
    if (!st) {
        /* Sorted keys and fixed indentation: the same run gives the same bytes. */
        if (json_dumpf(root, o.f, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) != 0) {
            tmap_atomic_abort(&o);
            st = tmap_fail(err, TMAP_ERR_IO, "%s: cannot write the weights", path);
        } else {
            fputc('\n', o.f);
            st = tmap_atomic_commit(&o, err);
        }
    }
    json_decref(root);
    return st;
}

static enum tmap_status read_indicator(json_t *e, size_t j, const char *path, struct tmap_weights *w,
                                       struct tmap_error *err)
{
    json_t *name = json_object_get(e, "name"), *weight = json_object_get(e, "weight");
    json_t *dir = json_object_get(e, "direction");
    if (!json_is_string(name) || !json_is_number(weight))
        return tmap_fail(err, TMAP_ERR_DATA, "%s: indicator %zu needs a string name and a numeric weight", path, j);
    const char *dir_name = json_is_string(dir) ? json_string_value(dir) : "higher";
    if (dir && (!json_is_string(dir) || (strcmp(dir_name, "higher") != 0 && strcmp(dir_name, "lower") != 0)))
        return tmap_fail(err, TMAP_ERR_DATA, "%s: indicator \"%s\": direction must be \"higher\" or \"lower\"", path,
                         json_string_value(name));
    for (size_t i = 0; i < j; i++)
        if (strcmp(w->names[i], json_string_value(name)) == 0)
            return tmap_fail(err, TMAP_ERR_DATA, "%s: indicator \"%s\" is listed twice", path, w->names[i]);
    w->names[j] = strdup(json_string_value(name));
    w->weights[j] = json_number_value(weight);
    w->higher_is_better[j] = strcmp(dir_name, "lower") != 0;
    return w->names[j] ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
}

/* A JSON file's root, or a message naming the file: "cannot open" with the
 * system's reason when it cannot be read, the line and column otherwise. */
static enum tmap_status load_json(const char *path, json_t **root, struct tmap_error *err)
{
    json_error_t jerr;
    *root = json_load_file(path, 0, &jerr);
    if (*root)
        return TMAP_OK;
    FILE *f = fopen(path, "r");
    if (!f)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    return tmap_fail(err, TMAP_ERR_DATA, "%s:%d: not valid JSON: %s", path, jerr.line, jerr.text);
}

enum tmap_status tmap_weights_read_json(const char *path, struct tmap_weights *w, struct tmap_error *err)
{
    memset(w, 0, sizeof *w);
    json_t *root;
    enum tmap_status st = load_json(path, &root, err);
    if (st)
        return st;
    json_t *list = json_object_get(root, "indicators");
    size_t d = json_is_array(list) ? json_array_size(list) : 0;
    if (d == 0)
        st = tmap_fail(err, TMAP_ERR_DATA, "%s: no \"indicators\" list; tmap learn and tmap run write one, "
                       "{\"indicators\": [{\"name\": \"quality\", \"weight\": 0.5}, ...]}", path);
    w->d = d;
    w->names = calloc(d ? d : 1, sizeof *w->names);
    w->weights = calloc(d ? d : 1, sizeof *w->weights);
    w->higher_is_better = calloc(d ? d : 1, sizeof *w->higher_is_better);
    if (!st && (!w->names || !w->weights || !w->higher_is_better))
        st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
    for (size_t j = 0; j < d && !st; j++)
        st = read_indicator(json_array_get(list, j), j, path, w, err);
    /* Every weight zero ranks every record equal: the "selection" would be
     * the pool's first records, which nobody asks for on purpose. */
    bool any_weight = false;
    for (size_t j = 0; j < d && !st; j++)
        any_weight = any_weight || w->weights[j] != 0.0;
    if (!st && !any_weight)
        st = tmap_fail(err, TMAP_ERR_DATA, "%s: every weight is 0, so nothing ranks one record above another", path);
    json_t *pv = json_object_get(root, "proxy_value");
    w->proxy_value = json_is_number(pv) ? json_number_value(pv) : NAN;
    json_decref(root);
    if (st)
        tmap_weights_free(w);
    return st;
}

char *tmap_learn_params_to_json(const struct tmap_learn_params *p)
{
    const struct tmap_proxy_params *pp = &p->proxy;
    json_t *c = json_pack("{s:f, s:s, s:f, s:I, s:s, s:I, s:b, s:I, s:I, s:{s:s, s:i, s:s, s:I, s:I, s:s, s:I, s:i, s:f, s:s?, s:I}}",
                          "ratio", p->select.ratio, "select", tmap_select_mode_name(p->select.mode), "drop",
                          p->select.mode == TMAP_SELECT_FILTER ? p->select.drop : 0.0, "strata",
                          (json_int_t)(p->select.mode == TMAP_SELECT_STRATIFIED ? p->select.strata : 0), "search",
                          tmap_search_kind_name(p->search), "iters", (json_int_t)p->iters, "signed",
                          p->signed_weights, "seed", (json_int_t)p->seed, "batch",
                          (json_int_t)(p->batch ? p->batch : 1), "proxy", "kind",
                          tmap_proxy_kind_name(pp->kind), "k", pp->k, "policy", tmap_demo_policy_name(pp->policy),
                          "draws", (json_int_t)pp->draws, "groups", (json_int_t)pp->groups, "metric",
                          tmap_metric_name(pp->metric), "ft_records", (json_int_t)pp->ft_records, "ft_epochs",
                          pp->ft_epochs, "ft_lr", (double)pp->ft_lr, "ft_layers",
                          pp->ft_layers && *pp->ft_layers ? pp->ft_layers : NULL, "slices", (json_int_t)pp->slices);
    char *text = c ? json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(c);
    return text;
}

enum tmap_status tmap_select_params_read_json(const char *path, struct tmap_select_params *p, struct tmap_error *err)
{
    json_t *root;
    enum tmap_status st = load_json(path, &root, err);
    if (st)
        return st;
    json_t *c = json_object_get(root, "config");
    json_t *ratio = json_object_get(c, "ratio"), *mode = json_object_get(c, "select");
    json_t *drop = json_object_get(c, "drop"), *seed = json_object_get(c, "seed");
    json_t *strata = json_object_get(c, "strata");
    if (json_is_number(ratio))
        p->ratio = json_number_value(ratio);
    if (json_is_integer(seed))
        p->seed = (uint64_t)json_integer_value(seed);
    if (json_is_string(mode)) {
        const char *const *names = tmap_select_mode_names();
        size_t i = 0;
        while (names[i] && strcmp(names[i], json_string_value(mode)) != 0)
            i++;
        if (names[i])
            p->mode = (enum tmap_select_mode)i;
        else
            st = tmap_fail(err, TMAP_ERR_DATA, "%s: config.select \"%s\" is not one of top, filter, stratified", path,
                           json_string_value(mode));
    }
    /* drop is recorded as 0 for a top selection, where it means nothing. */
    if (json_is_number(drop) && p->mode == TMAP_SELECT_FILTER)
        p->drop = json_number_value(drop);
    /* strata likewise, 0 unless the selection was stratified. */
    if (json_is_integer(strata) && p->mode == TMAP_SELECT_STRATIFIED)
        p->strata = (size_t)json_integer_value(strata);
    json_decref(root);
    return st;
}

/* ---- scores.csv back in -------------------------------------------------- */

/* The raw columns of a scores file: every column but these. */
static bool is_raw_column(const char *name)
{
    return strcmp(name, "id") != 0 && strcmp(name, "line") != 0 && strcmp(name, "hash") != 0 &&
           strncmp(name, "rank_", 5) != 0 && strcmp(name, "combined") != 0 && strcmp(name, "selected") != 0;
}

enum tmap_status tmap_scores_read_csv(const struct tmap_pool *pool, const char *path, struct tmap_scores **out,
                                      struct tmap_error *err)
{
    *out = tmap_scores_create_empty(tmap_pool_size(pool));
    if (!*out)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
    size_t *line_of_row = calloc(tmap_pool_size(pool) ? tmap_pool_size(pool) : 1, sizeof *line_of_row);
    enum tmap_status st = line_of_row ? tmap_scores_merge_csv_columns(*out, pool, path, is_raw_column, line_of_row, err)
                                      : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
    /* A record with no row would rank as neutral and could be selected
     * without ever having been scored: the file belongs to another pool. */
    size_t missing = 0, first_missing = 0;
    for (size_t row = tmap_pool_size(pool); !st && row-- > 0;)
        if (!line_of_row[row]) {
            missing++;
            first_missing = row;
        }
    free(line_of_row);
    if (!st && missing) {
        struct tmap_record rec = { 0 };
        tmap_pool_record(pool, first_missing, &rec);
        st = tmap_fail(err, TMAP_ERR_DATA, "%s has no row for %zu of the %zu records of %s (the first: \"%s\", "
                       "line %zu); was it written for another pool?", path, missing, tmap_pool_size(pool),
                       tmap_pool_path(pool), rec.id ? rec.id : "?", rec.line);
    }
    if (st) {
        tmap_scores_free(*out);
        *out = NULL;
    }
    return st;
}
