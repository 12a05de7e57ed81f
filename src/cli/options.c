/*
 * options.c - the one option parser every command uses, driven by a table.
 *
 * Why not getopt_long: llama.cpp's flags mix short (-m), long (--model) and
 * multi-letter single-dash (-ngl, -np) names, which getopt_long_only would
 * read as abbreviations of other long options. A table also gives `--help`
 * for free and keeps every command's options in one place.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool cli_quiet;


/* ---- Reporting ---------------------------------------------------------- */

/* A message that opens with "rank R (" names the rank it is about: a
 * rank's input check, or a failure the ranks agreed on, which rank 0
 * reports too (as every rank but the failed one once did, "rank 2: rank 1
 * (host): ...", one line per rank). */
static bool names_a_rank(const char *message)
{
    int rank, used = 0;
    return sscanf(message, "rank %d (%n", &rank, &used) == 1 && used > 0;
}

int cli_report(const struct tmap_error *err)
{
    if (tmap_dist_size() > 1 && tmap_dist_rank() > 0) {
        /* The other ranks report only their own failures, which nobody
         * else may have heard of; an agreed one is rank 0's to report, as
         * is one of theirs a collective sent it. */
        if (!names_a_rank(err->message) && !tmap_dist_failure_told())
            fprintf(stderr, "tmap: rank %d: %s\n", tmap_dist_rank(), err->message);
    } else {
        fprintf(stderr, "tmap: %s\n", err->message);
    }
    return err->status ? (int)err->status : 1;
}

void cli_notice(const char *message, void *user_data)
{
    (void)user_data;
    if (!cli_quiet)
        fprintf(stderr, "tmap: note: %s\n", message);
}

enum tmap_status cli_warn_overlap(const struct tmap_pool *pool, const struct tmap_pool *val, const char *val_path,
                                  struct tmap_error *err)
{
    struct tmap_overlap o;
    char line[1024];
    enum tmap_status st = tmap_pool_overlap(pool, val, NULL, &o, err);
    if (!st && tmap_overlap_describe(&o, val_path, line, sizeof line) && tmap_dist_rank() == 0)
        fprintf(stderr, "tmap: warning: %s\n", line);
    return st;
}

enum tmap_status cli_model_load(const struct tmap_model_params *params, struct tmap_model **out,
                                struct tmap_error *err)
{
    enum tmap_status st = tmap_model_load(params, out, err);
    if (st)
        return st;
    struct tmap_model_info mi;
    tmap_model_get_info(*out, &mi);
    char line[512];
    if (tmap_model_context_warning(&mi, line, sizeof line) && tmap_dist_rank() == 0)
        fprintf(stderr, "tmap: warning: %s: %s\n", params->path, line);
    return TMAP_OK;
}

/* A usage error: the message and the command's usage line, in one write,
 * so that ranks printing at once do not interleave ("tmap: tmap: unknown
 * option"). Under mpirun every rank parses the same command line and
 * fails alike, so only rank 0 says so; a check of this host's files
 * (host_specific) is reported by every rank that fails it, as cli_report
 * reports a rank's own failures. */
static int usage_error(const struct cli_spec *spec, bool host_specific, const char *fmt, va_list ap)
{
    int rank = tmap_dist_rank(); /* 0 in one process */
    if (rank > 0 && !host_specific)
        return TMAP_ERR_USAGE;
    char message[2 * 4096 + 512]; /* two whole paths and the words around them */
    vsnprintf(message, sizeof message, fmt, ap);
    if (rank > 0)
        fprintf(stderr, "tmap: rank %d: %s\n", rank, message);
    else
        fprintf(stderr, "tmap: %s\nusage: %s  (--help for more)\n", message, spec->usage);
    return TMAP_ERR_USAGE;
}

int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_error(spec, false, fmt, ap);
    va_end(ap);
    return rc;
}

static int path_error(const struct cli_spec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int path_error(const struct cli_spec *spec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_error(spec, true, fmt, ap);
    va_end(ap);
    return rc;
}

/* Do a and b name one file? Existing files by inode; a path that does not
 * exist yet can only clash with the same spelling. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    bool has_a = stat(a, &sa) == 0, has_b = stat(b, &sb) == 0;
    if (has_a && has_b)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return !has_a && !has_b && strcmp(a, b) == 0;
}

int cli_check_paths(const struct cli_spec *spec, const struct cli_path *inputs, const struct cli_path *outputs)
{
    for (const struct cli_path *o = outputs; o->flag; o++) {
        if (!o->path)
            continue;
        for (const struct cli_path *i = inputs; i->flag; i++)
            if (i->path && same_file(o->path, i->path))
                return path_error(spec, "%s %s is the same file as %s %s: writing it would destroy the input", o->flag,
                                  o->path, i->flag, i->path);
        for (const struct cli_path *q = outputs; q < o; q++)
            if (q->path && same_file(o->path, q->path))
                return path_error(spec, "%s %s and %s %s are the same file: one would overwrite the other", q->flag,
                                  q->path, o->flag, o->path);
    }
    return 0;
}

void cli_print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* ---- Help --------------------------------------------------------------- */

void cli_print_help(const struct cli_spec *spec)
{
    printf("usage: %s\n", spec->usage);
    if (spec->description)
        printf("\n%s\n", spec->description);
    printf("\noptions:\n");
    for (const struct cli_option *o = spec->options; o && o->names; o++) {
        char left[64];
        char names[48];
        snprintf(names, sizeof names, "%s", o->names);
        for (char *bar = strchr(names, '|'); bar; bar = strchr(bar, '|'))
            *bar = ',';
        snprintf(left, sizeof left, "%s%s%s", names, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-30s %s\n", left, o->help);
    }
    printf("  %-30s %s\n", "-q,--quiet", "no notices or progress on stderr");
    printf("  %-30s %s\n", "-h,--help", "this help");
}

/* ---- Parsing ------------------------------------------------------------ */

static bool name_matches(const char *names, const char *arg, size_t arg_len)
{
    const char *p = names;
    while (*p) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == arg_len && strncmp(p, arg, len) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

static const struct cli_option *find_option(const struct cli_spec *spec, const char *arg, size_t len)
{
    for (const struct cli_option *o = spec->options; o && o->names; o++)
        if (name_matches(o->names, arg, len))
            return o;
    return NULL;
}

/* Edits between a and b, capped at limit + 1. */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb, size_t limit)
{
    if (na > 63 || nb > 63)
        return limit + 1;
    size_t d[64][64];
    for (size_t i = 0; i <= na; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= nb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[na][nb] > limit ? limit + 1 : d[na][nb];
}

void cli_guess_offer(struct cli_guess *g, const char *name, size_t name_len, size_t limit)
{
    size_t d = edit_distance(g->word, g->len, name, name_len, limit);
    if (d <= limit && (!g->name || d < g->distance)) {
        g->name = name;
        g->name_len = name_len;
        g->distance = d;
    }
}

/* The long option an unknown "--word" most likely meant (--indicator for
 * --indicators, --ouput for --out), or NULL. Short options are one letter
 * from each other, so a typo in one has no likely meaning. */
static struct cli_guess likely_option(const struct cli_spec *spec, const char *arg, size_t len)
{
    struct cli_guess g = { .word = arg, .len = len };
    if (len < 4 || strncmp(arg, "--", 2) != 0)
        return g;
    size_t limit = len < 6 ? 1 : 2;
    /* Every command takes --quiet and --help besides its own options. */
    static const struct cli_option common[] = { { "--quiet", CLI_FLAG, NULL, NULL, NULL, 0, 0, NULL },
                                                { "--help", CLI_FLAG, NULL, NULL, NULL, 0, 0, NULL },
                                                CLI_OPT_END };
    for (const struct cli_option *lists[] = { spec->options, common }, **l = lists; l < lists + 2; l++)
        for (const struct cli_option *o = *l; o && o->names; o++)
            for (const char *p = o->names; *p;) {
                const char *end = strchr(p, '|');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                if (n > 2 && strncmp(p, "--", 2) == 0)
                    cli_guess_offer(&g, p, n, limit);
                p = end ? end + 1 : p + n;
            }
    return g;
}

static int parse_number(const struct cli_spec *spec, const char *name, const char *value,
                        const struct cli_option *o, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v))
        return cli_usage_error(spec, "%s: '%s' is not a number", name, value);
    if (o->kind != CLI_FLOAT && o->kind != CLI_DOUBLE && v != floor(v))
        return cli_usage_error(spec, "%s: '%s' is not a whole number", name, value);
    bool ranged = o->kind != CLI_U64;
    if (ranged && (v < o->min || v > o->max))
        return cli_usage_error(spec, "%s: %s is out of range [%.15g, %.15g]", name, value, o->min, o->max);
    if (o->kind == CLI_U64 && v < 0)
        return cli_usage_error(spec, "%s: %s must not be negative", name, value);
    *out = v;
    return -1;
}

static int set_choice(const struct cli_spec *spec, const char *name, const char *value,
                      const struct cli_option *o)
{
    for (int i = 0; o->choices[i]; i++) {
        if (strcmp(o->choices[i], value) == 0) {
            *(int *)o->target = i;
            return -1;
        }
    }
    char list[256] = "";
    for (int i = 0; o->choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, o->choices[i], sizeof list - strlen(list) - 1);
    }
    return cli_usage_error(spec, "%s: '%s' is not one of: %s", name, value, list);
}

/* Stores value into o's target; returns -1 on success or an exit status. */
static int set_option(const struct cli_spec *spec, const char *name, const struct cli_option *o,
                      const char *value)
{
    double v = 0;
    int rc;
    switch (o->kind) {
    case CLI_FLAG:
    case CLI_FLAG_OFF:
        *(bool *)o->target = o->kind == CLI_FLAG;
        return -1;
    case CLI_STRING:
        *(const char **)o->target = value;
        return -1;
    case CLI_CHOICE:
        return set_choice(spec, name, value, o);
    case CLI_U64:
        /* Seeds need all 64 bits; doubles would lose them. */
        if (*value == '-' || !*value)
            return cli_usage_error(spec, "%s: '%s' is not a non-negative integer", name, value);
        char *end;
        errno = 0;
        unsigned long long u = strtoull(value, &end, 10);
        if (errno || *end)
            return cli_usage_error(spec, "%s: '%s' is not a non-negative integer", name, value);
        *(uint64_t *)o->target = (uint64_t)u;
        return -1;
    case CLI_INT:
    case CLI_SIZE:
    case CLI_FLOAT:
    case CLI_DOUBLE:
        rc = parse_number(spec, name, value, o, &v);
        if (rc >= 0)
            return rc;
        if (o->kind == CLI_INT)
            *(int32_t *)o->target = (int32_t)v;
        else if (o->kind == CLI_SIZE)
            *(size_t *)o->target = (size_t)v;
        else if (o->kind == CLI_DOUBLE)
            *(double *)o->target = v;
        else
            *(float *)o->target = (float)v;
        return -1;
    }
    return -1;
}

static int parse_one(const struct cli_spec *spec, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct cli_option *o = find_option(spec, arg, len);
    if (!o) {
        struct cli_guess likely = likely_option(spec, arg, len);
        if (likely.name)
            return cli_usage_error(spec, "unknown option '%.*s'; did you mean %.*s?", (int)len, arg,
                                   (int)likely.name_len, likely.name);
        return cli_usage_error(spec, "unknown option '%.*s'", (int)len, arg);
    }
    if (o->kind == CLI_FLAG || o->kind == CLI_FLAG_OFF) {
        if (eq)
            return cli_usage_error(spec, "%.*s takes no value", (int)len, arg);
        return set_option(spec, arg, o, NULL);
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
        if (*i + 1 >= argc)
            return cli_usage_error(spec, "%s needs a value (%s)", arg, o->arg);
        value = argv[++*i];
    }
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)len, arg);
    return set_option(spec, name, o, value);
}

bool cli_given(int argc, char **argv, const char *flag)
{
    size_t n = strlen(flag);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], flag, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
            return true;
    return false;
}

int cli_parse(const struct cli_spec *spec, int argc, char **argv, const char **positional,
              size_t *n_positional)
{
    *n_positional = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
            cli_print_help(spec);
            return 0;
        }
        if (!options_done && (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0)) {
            cli_quiet = true;
            continue;
        }
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            int rc = parse_one(spec, argc, argv, &i);
            if (rc >= 0)
                return rc;
            continue;
        }
        if (*n_positional >= spec->max_positional)
            return cli_usage_error(spec, "unexpected argument '%s'", arg);
        positional[(*n_positional)++] = arg;
    }
    if (*n_positional < spec->min_positional)
        return cli_usage_error(spec, "missing argument");
    return -1;
}

/* ---- Data options ------------------------------------------------------- */

void cli_data_options_init(struct cli_data_options *d)
{
    memset(d, 0, sizeof *d);
    d->pool = tmap_pool_default_params();
    d->pool.notice = cli_notice;
}

/* --fields prompt=K,response=K,answer=K: point the pool's field map into a
 * private copy of the string, split at ',' and '='. */
static int parse_fields(struct cli_data_options *d)
{
    d->fields_copy_ = strdup(d->fields);
    if (!d->fields_copy_)
        return TMAP_ERR_NOMEM;
    for (char *item = strtok(d->fields_copy_, ","); item; item = strtok(NULL, ",")) {
        char *eq = strchr(item, '=');
        if (!eq || eq[1] == '\0') {
            fprintf(stderr, "tmap: --fields: '%s' is not ROLE=KEY\n", item);
            return TMAP_ERR_USAGE;
        }
        *eq = '\0';
        if (strcmp(item, "prompt") == 0)
            d->pool.fields.prompt = eq + 1;
        else if (strcmp(item, "response") == 0)
            d->pool.fields.response = eq + 1;
        else if (strcmp(item, "answer") == 0)
            d->pool.fields.answer = eq + 1;
        else {
            fprintf(stderr, "tmap: --fields: unknown role '%s' (prompt, response or answer)\n", item);
            return TMAP_ERR_USAGE;
        }
    }
    if (!d->pool.fields.prompt || !d->pool.fields.response) {
        fprintf(stderr, "tmap: --fields needs both prompt=KEY and response=KEY\n");
        return TMAP_ERR_USAGE;
    }
    return 0;
}

int cli_data_options_finish(struct cli_data_options *d, const char *input_path)
{
    d->pool.on_error = d->on_error == 1 ? TMAP_ON_ERROR_SKIP : TMAP_ON_ERROR_FAIL;
    if (d->pool.rejects_path && d->pool.on_error != TMAP_ON_ERROR_SKIP) {
        fprintf(stderr, "tmap: --rejects needs --on-error skip\n");
        return TMAP_ERR_USAGE;
    }
    if (d->pool.on_error == TMAP_ON_ERROR_SKIP && !d->pool.rejects_path) {
        /* Skipped records must land somewhere: losing them silently is the
         * one thing a data tool must not do. The input's folder may be
         * read-only, so they go to the current one. */
        const char *base = strrchr(input_path, '/');
        snprintf(d->rejects_default_, sizeof d->rejects_default_, "%s.rejects.jsonl",
                 base ? base + 1 : input_path);
        d->pool.rejects_path = d->rejects_default_;
    }
    /* Every rank reads the same records; only rank 0 writes their rejects. */
    if (tmap_dist_size() > 1 && tmap_dist_rank() > 0)
        d->pool.rejects_path = NULL;
    return d->fields ? parse_fields(d) : 0;
}

enum tmap_status cli_load_pool(struct cli_data_options *d, const char *path, struct tmap_pool **out,
                               struct tmap_error *err)
{
    struct tmap_pool_params pp = d->pool;
    pp.rejects_append = d->n_loaded_ > 0;
    enum tmap_status st = tmap_pool_load(path, &pp, out, err);
    if (st != TMAP_OK)
        return st;
    d->n_loaded_++;
    size_t n = tmap_pool_n_rejected(*out);
    if (tmap_dist_rank() > 0)
        return TMAP_OK; /* rank 0 says it once */
    if (n && d->pool.rejects_path)
        fprintf(stderr, "tmap: %s: %zu bad record%s set aside in %s\n", path, n, n == 1 ? "" : "s",
                d->pool.rejects_path);
    else if (n)
        fprintf(stderr, "tmap: %s: %zu bad record%s skipped\n", path, n, n == 1 ? "" : "s");
    return TMAP_OK;
}

void cli_data_options_free(struct cli_data_options *d)
{
    free(d->fields_copy_);
    d->fields_copy_ = NULL;
}

/* ---- Learn options ------------------------------------------------------ */


void cli_learn_options_init(struct cli_learn_options *l)
{
    l->learn = tmap_learn_default_params();
    l->search = (int)l->learn.search;
    l->policy = (int)l->learn.proxy.policy;
    l->metric = (int)l->learn.proxy.metric;
    l->proxy = (int)l->learn.proxy.kind;
    l->select = (int)l->learn.select.mode;
    l->template_choice = (int)l->learn.proxy.tmpl;
}

void cli_learn_options_finish(struct cli_learn_options *l)
{
    l->learn.search = (enum tmap_search_kind)l->search;
    l->learn.proxy.policy = (enum tmap_demo_policy)l->policy;
    l->learn.proxy.metric = (enum tmap_metric)l->metric;
    l->learn.proxy.kind = (enum tmap_proxy_kind)l->proxy;
    l->learn.proxy.tmpl = (enum tmap_template)l->template_choice;
    l->learn.proxy.seed = l->learn.seed;
    l->learn.select.mode = (enum tmap_select_mode)l->select;
    l->learn.select.seed = l->learn.seed;
}
