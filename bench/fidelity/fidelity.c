/*
 * fidelity.c - bench/fidelity: does a tmap selection fine-tune better than
 * a random subset of the same size? The closed loop the ICL proxy stands in
 * for, run for real on the shipped base model (docs/fidelity.md).
 *
 *   1. a pool of GSM8K train records the base model never saw, with known
 *      corruption injected (corrupt.c) and labelled;
 *   2. `tmap run` on it: scores, tiny set, learned weights, selection;
 *   3. arms of the same share: tmap's selection, random subsets, random
 *      subsets with tmap's token count, equal weights, each indicator
 *      alone, and the whole pool;
 *   4. each arm fine-tunes the base model with identical settings, on
 *      several data-order seeds (`tmap finetune`'s code);
 *   5. each fine-tuned model is scored on held-out GSM8K test records (none
 *      in the tiny set): mean response loss per item;
 *   6. per arm: loss, the difference to random with a 95% interval over
 *      items and seeds (util/stats.c), token count, corruption shares; and
 *      Spearman between the proxy value of each subset and its fine-tuned
 *      held-out log-likelihood, for tmap's proxy settings and for the
 *      variants below (draws and groups, nearest-neighbour demonstrations,
 *      a tiny set of every validation item);
 *   7. the same Spearman for a second proxy: a short fine-tune from the base
 *      model on a sample of each subset, judged by the tiny set's loss.
 *
 * Fine-tuned losses and second-proxy values are kept in OUT/arms/KEY.loss,
 * KEY a hash of the records and the settings, so a rerun in the same
 * folder (a new variant, a new report) fine-tunes nothing twice.
 *
 * Writes OUT/fidelity.md (the table), OUT/arms.csv, OUT/losses.csv (each
 * arm's loss per held-out item and seed, which bench_fidelity_pool pools
 * over corruption seeds), OUT/fidelity.html (the plots, inline SVG) and
 * prints the table.
 */
#include "util/clock.h"
#include "chart.h"
#include "corrupt.h"

#include "util/csv.h"
#include "util/random.h"
#include "util/stats.h"

#include "tmap.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>
#include <unistd.h>

/* ---- settings ------------------------------------------------------------ */

struct settings {
    const char *model, *data, *test, *out;
    size_t      pool_first;   /* 1-based line of the pool's first record in data */
    size_t      pool_size;
    double      corrupt_rate;
    uint64_t    seed;         /* corruption, random arms, the run */
    size_t      n_random;     /* random arms (and as many token-matched ones) */
    size_t      n_ft_seeds;   /* data-order seeds per arm */
    int32_t     epochs;
    float       lr;
    size_t      n_val;        /* test records 1..n_val feed the tiny set */
    size_t      n_heldout;    /* test records after them: the held-out evaluation (0 = all of them) */
    int32_t     n_threads;
    double      ratio;
    size_t      n_bootstrap;
    bool        pool_only;    /* write the corrupted pool and stop (make demo's pool) */
    bool        auc_only;     /* score every indicator, write OUT/indicators.md and stop */
    size_t      ft_proxy;     /* records the fine-tune proxy trains on (0 = no second proxy) */
    const char *ft_layers;    /* the fine-tune proxy's --train-layers (NULL = every tensor); the arms train all */
    bool        singles;      /* an arm per indicator alone (the most arms) */
    const char *singles_only; /* NULL, or a comma list: those indicators' arms only */
    double      drop;         /* filter arms: share of the pool left out */
    bool        filters;      /* the filter-selection and clean arms (and two more tmap runs) */
    bool        signed_run;   /* the tmap run --signed arm (one more tmap run) */
    enum tmap_select_mode select; /* tmap run's --select, and the equal-weight and single arms' (top) */
    size_t      strata;       /* --strata, for --select stratified (10) */
    const char *indicators;   /* tmap run's --indicators ("default") */
    uint32_t    indicator_mask;
};

/* lr 3e-4: the highest rate tried at which every subset still improves the
 * base model, and the one where the corruption matters most
 * (docs/fidelity.md). The filter, clean and --signed arms are opt-in: the
 * default arms (tmap with each proxy, random, equal-token random, equal
 * weights, each indicator alone, the full pool) fit in an hour on 2 cores. */
static struct settings default_settings(void)
{
    struct settings s = {
        .model = NULL, .data = NULL, .test = NULL, .out = NULL,
        .pool_first = 5474, .pool_size = 1000, .corrupt_rate = 0.2, .seed = 1,
        .n_random = 3, .n_ft_seeds = 2, .epochs = 1, .lr = 3e-4f,
        .n_val = 300, .n_heldout = 0, .n_threads = 0, .ratio = 0.3, .n_bootstrap = 2000,
        .ft_proxy = 64, .singles = true, .drop = 0.3, .filters = false, .signed_run = false,
        .select = TMAP_SELECT_TOP, .strata = 10, .indicators = "default", .indicator_mask = TMAP_IND_DEFAULT,
    };
    return s;
}

static double t_start;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%6.0f s] ", tmap_now_seconds() - t_start);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static _Noreturn void die(const char *what, const struct tmap_error *err)
{
    fprintf(stderr, "bench_fidelity: %s: %s\n", what, err ? err->message : strerror(errno));
    exit(1);
}

/* ---- files --------------------------------------------------------------- */

/* Lines [first, first + n) of path (1-based), without newlines. */
static char **read_lines(const char *path, size_t first, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die(path, NULL);
    char **lines = calloc(n, sizeof *lines), *buf = NULL;
    size_t cap = 0, got = 0;
    ssize_t len;
    for (size_t line = 1; got < n && (len = getline(&buf, &cap, f)) >= 0; line++) {
        if (line < first)
            continue;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        lines[got++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    if (got < n) {
        fprintf(stderr, "bench_fidelity: %s: has %zu lines from line %zu, %zu wanted\n", path, got, first, n);
        exit(1);
    }
    return lines;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die(path, NULL);
    size_t n = 0;
    int c, last = '\n';
    while ((c = getc(f)) != EOF) {
        n += c == '\n';
        last = c;
    }
    fclose(f);
    return n + (last != '\n'); /* a last line without its newline */
}

static void write_lines(const char *path, char *const *lines, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, NULL);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    if (fclose(f) != 0)
        die(path, NULL);
}

static void path_in(const struct settings *s, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", s->out, name);
}

/* ---- arms ---------------------------------------------------------------- */

/* ARM_FILTER: filter selections (the lowest share left out, the rest
 * drawn); ARM_CLEAN: random subsets of the records the generator left
 * alone, which no selection can see: what removing every corrupted record
 * would be worth, the ceiling of any filter. */
enum arm_kind { ARM_TMAP, ARM_RANDOM, ARM_TOKENS, ARM_EQUAL, ARM_SINGLE, ARM_FILTER, ARM_CLEAN, ARM_FULL };

/* Proxy settings the bench judges side by side against the same fine-tuned
 * arms: the first is tmap's defaults, as tmap run used them; the others are
 * what a change of default must be justified against (docs/fidelity.md).
 * A variant equal to the defaults costs nothing: the memo serves it. */
struct variant {
    const char           *name;
    bool                  defaults;
    enum tmap_demo_policy policy;
    size_t                draws, groups;
    bool                  whole_val; /* the tiny set: every validation item, weight 1, not the run's anchors */
};

static const struct variant variants[] = {
    { "tmap's defaults", true, TMAP_DEMOS_RANDOM, 0, 0, false },
    { "random, 2 draws, 1 group", false, TMAP_DEMOS_RANDOM, 2, 1, false },
    { "random, 2 draws x 10 groups", false, TMAP_DEMOS_RANDOM, 2, 10, false },
    /* The demonstration policy: each item's nearest records of the subset. */
    { "knn demonstrations", false, TMAP_DEMOS_KNN, 1, 1, false },
    /* The tiny set's size: all validation items (3x the anchors). */
    { "random, 2 draws, all validation items", false, TMAP_DEMOS_RANDOM, 2, 1, true },
};
#define N_VARIANTS (sizeof variants / sizeof variants[0])

struct arm {
    char          name[64];
    enum arm_kind kind;
    size_t       *rows;
    size_t        n;
    int64_t       tokens;
    size_t        bad[FID_N_KINDS];
    double        proxy;       /* as the search computes it */
    double        proxy_mean;  /* over the fresh draws too */
    double        proxy_v[N_VARIANTS];
    double        proxy_ft;    /* the fine-tune proxy: minus the tiny set's loss after a short fine-tune */
    double       *loss;        /* n_ft_seeds x n_heldout, per item */
    double        mean_loss;
    double        diff, low, high;          /* against random, with its interval */
    double        diff_t, low_t, high_t;    /* against token-matched random */
};

struct bench {
    struct settings     s;
    struct tmap_pool   *pool, *heldout, *tiny, *val;
    double             *val_weights; /* 1 per validation item: the whole-validation proxy variant */
    struct fid_record  *rec;
    int64_t            *rec_tokens; /* training tokens per pool record */
    struct tmap_scores *scores;
    struct tmap_weights learned, learned_signed, learned_ft, learned_filter, learned_filter_ft;
    struct arm         *arms;
    size_t              n_arms, cap_arms;
    double             *base_loss;  /* n_heldout */
    double              base_mean;
    double              seconds_run, seconds_ft, seconds_eval;
    struct tmap_baselines baselines, baselines_signed, baselines_ft, baselines_filter, baselines_filter_ft;
    double              spearman, spearman_mean;
    size_t              n_spearman;
    double              spearman_v[N_VARIANTS], seconds_v[N_VARIANTS]; /* per variant: rho, s per evaluation */
    double              spearman_ft, seconds_ft_proxy; /* the fine-tune proxy's */
    size_t              n_ft_proxy_evals;
};

static struct arm *add_arm(struct bench *b, const char *name, enum arm_kind kind, const size_t *rows, size_t n)
{
    if (b->n_arms == b->cap_arms) {
        b->cap_arms = b->cap_arms ? 2 * b->cap_arms : 32;
        b->arms = realloc(b->arms, b->cap_arms * sizeof *b->arms);
    }
    struct arm *a = &b->arms[b->n_arms++];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->kind = kind;
    a->rows = malloc((n ? n : 1) * sizeof *a->rows);
    memcpy(a->rows, rows, n * sizeof *rows);
    a->n = n;
    for (size_t i = 0; i < n; i++) {
        a->tokens += b->rec_tokens[rows[i]];
        a->bad[b->rec[rows[i]].kind]++;
    }
    /* A duplicate is only harm when its original is in the subset too. */
    a->bad[FID_DUPLICATE] = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fid_record *r = &b->rec[rows[i]];
        if (r->kind != FID_DUPLICATE)
            continue;
        for (size_t k = 0; k < n; k++)
            if (rows[k] == r->source) {
                a->bad[FID_DUPLICATE]++;
                break;
            }
    }
    return a;
}

static size_t n_corrupt(const struct arm *a)
{
    size_t k = 0;
    for (int j = FID_WRONG_ANSWER; j < FID_N_KINDS; j++)
        k += a->bad[j];
    return k;
}

/* ---- the pool ------------------------------------------------------------ */

static void make_pool(struct bench *b)
{
    const struct settings *s = &b->s;
    char **lines = read_lines(s->data, s->pool_first, s->pool_size);
    b->rec = calloc(s->pool_size, sizeof *b->rec);
    char msg[256];
    if (fid_corrupt((const char *const *)lines, s->pool_size, s->corrupt_rate, s->seed, b->rec, msg, sizeof msg))
        fprintf(stderr, "bench_fidelity: %s: %s\n", s->data, msg), exit(1);
    char **out = malloc(s->pool_size * sizeof *out);
    for (size_t i = 0; i < s->pool_size; i++)
        out[i] = b->rec[i].line;
    char path[4200];
    path_in(s, "pool.jsonl", path, sizeof path);
    write_lines(path, out, s->pool_size);
    free(out);
    path_in(s, "labels.csv", path, sizeof path);
    FILE *f = fopen(path, "w");
    fprintf(f, "line,kind,source_line\n");
    for (size_t i = 0; i < s->pool_size; i++)
        fprintf(f, "%zu,%s,%zu\n", i + 1, fid_kind_name(b->rec[i].kind), b->rec[i].source + 1);
    fclose(f);
    for (size_t i = 0; i < s->pool_size; i++)
        free(lines[i]);
    free(lines);

    /* Validation (the tiny set's source) and held-out records: disjoint. */
    char **val = read_lines(s->test, 1, s->n_val), **held = read_lines(s->test, s->n_val + 1, s->n_heldout);
    path_in(s, "val.jsonl", path, sizeof path);
    write_lines(path, val, s->n_val);
    path_in(s, "heldout.jsonl", path, sizeof path);
    write_lines(path, held, s->n_heldout);
    for (size_t i = 0; i < s->n_val; i++)
        free(val[i]);
    for (size_t i = 0; i < s->n_heldout; i++)
        free(held[i]);
    free(val);
    free(held);
}

static struct tmap_model_params model_params(const struct bench *b, const char *path)
{
    struct tmap_model_params mp = tmap_model_default_params();
    mp.path = path;
    mp.n_threads = b->s.n_threads;
    mp.n_seq = 8;
    return mp;
}

/* Tokens each pool record trains on: BOS, prompt, response, EOS. */
static void count_tokens(struct bench *b)
{
    struct tmap_error err = { 0 };
    struct tmap_model_params mp = model_params(b, b->s.model);
    struct tmap_model *m;
    if (tmap_model_load(&mp, &m, &err))
        die(b->s.model, &err);
    size_t n = tmap_pool_size(b->pool);
    b->rec_tokens = calloc(n, sizeof *b->rec_tokens);
    for (size_t i = 0; i < n; i++) {
        struct tmap_sample smp;
        char *prompt = NULL;
        int32_t *pt = NULL, *rt = NULL, np = 0, nr = 0;
        if (tmap_pool_sample(b->pool, i, &smp, &err) ||
            tmap_model_format_prompt(m, &smp, TMAP_TEMPLATE_PLAIN, &prompt, NULL, &err) ||
            tmap_model_tokenize(m, prompt, true, &pt, &np, &err) ||
            tmap_model_tokenize(m, smp.response, false, &rt, &nr, &err))
            die("tokenizing the pool", &err);
        b->rec_tokens[i] = np + nr + 1;
        free(prompt);
        free(pt);
        free(rt);
        tmap_sample_free(&smp);
    }
    tmap_model_free(m);
}

/* ---- how each indicator sees each corruption ----------------------------- */

/* P(a clean record's value > a corrupted one's), ties half: how well an
 * indicator, in its default direction (higher = more wanted), ranks a kind
 * of corruption below the clean records. Records without a value (NaN)
 * are left out; NAN when either side has none. */
static double kind_auc(const struct bench *b, const double *v, enum fid_kind kind, size_t *n_kind)
{
    size_t n = b->s.pool_size, n_clean = 0;
    double wins = 0;
    *n_kind = 0;
    for (size_t i = 0; i < n; i++)
        if (b->rec[i].kind == kind && !isnan(v[i]))
            ++*n_kind;
    for (size_t j = 0; j < n; j++) {
        if (b->rec[j].kind != FID_CLEAN || isnan(v[j]))
            continue;
        n_clean++;
        for (size_t i = 0; i < n; i++)
            if (b->rec[i].kind == kind && !isnan(v[i]))
                wins += v[j] > v[i] ? 1.0 : v[j] == v[i] ? 0.5 : 0.0;
    }
    return *n_kind && n_clean ? wins / ((double)*n_kind * (double)n_clean) : NAN;
}

/* Every indicator (coverage included, which tmap run leaves out by default)
 * on the pool, through its own store in OUT/indicators.db, then
 * OUT/indicators.md: per indicator and corruption kind, the AUC above. */
static void indicator_auc(struct bench *b)
{
    const struct settings *s = &b->s;
    struct tmap_error err = { 0 };
    char pool_path[4200], val_path[4200], store[4200], path[4200];
    path_in(s, "pool.jsonl", pool_path, sizeof pool_path);
    path_in(s, "val.jsonl", val_path, sizeof val_path);
    path_in(s, "indicators.db", store, sizeof store);
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *pool, *val;
    if (tmap_pool_load(pool_path, &pp, &pool, &err) || tmap_pool_load(val_path, &pp, &val, &err))
        die("loading the pool", &err);
    struct tmap_model_params mp = model_params(b, s->model);
    struct tmap_model *m;
    if (tmap_model_load(&mp, &m, &err))
        die(s->model, &err);
    struct tmap_score_params sp = tmap_score_default_params();
    sp.indicators = TMAP_IND_ALL;
    sp.val = val;
    sp.store_path = store;
    struct tmap_scores *scores;
    double t0 = tmap_now_seconds();
    if (tmap_score(pool, m, &sp, &scores, &err))
        die("scoring every indicator", &err);
    say("every indicator scored in %.0f s", tmap_now_seconds() - t0);
    path_in(s, "indicators.md", path, sizeof path);
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "bench_fidelity: cannot write %s: %s\n", path, strerror(errno)), exit(1);
    fprintf(f, "# How each indicator ranks each corruption (seed %llu)\n\n"
               "AUC = P(a clean record's value > a corrupted record's value), ties half: 1 = the indicator, "
               "in its default direction (higher = more wanted), puts every corrupted record of the kind "
               "below every clean one; 0.5 = blind; 0 = it prefers them (the opposite direction, as "
               "--signed may learn, would then be the filter). Records without a value are left out "
               "(n = the kind's records with one).\n\n| indicator |",
            (unsigned long long)s->seed);
    for (int k = FID_WRONG_ANSWER; k < FID_N_KINDS; k++)
        fprintf(f, " %s |", fid_kind_name((enum fid_kind)k));
    fprintf(f, "\n|---|");
    for (int k = FID_WRONG_ANSWER; k < FID_N_KINDS; k++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    double *v = malloc(s->pool_size * sizeof *v);
    for (size_t c = 0; v && c < tmap_scores_n_columns(scores); c++) {
        bool any = false;
        for (size_t i = 0; i < s->pool_size; i++)
            any |= !isnan(v[i] = tmap_scores_get(scores, i, c));
        if (!any)
            continue;
        fprintf(f, "| %s |", tmap_scores_column_name(scores, c));
        for (int k = FID_WRONG_ANSWER; k < FID_N_KINDS; k++) {
            size_t n_kind;
            double auc = kind_auc(b, v, (enum fid_kind)k, &n_kind);
            if (isnan(auc))
                fprintf(f, " - |");
            else
                fprintf(f, " %.3f (n %zu) |", auc, n_kind);
        }
        fprintf(f, "\n");
    }
    free(v);
    fclose(f);
    say("wrote %s", path);
    tmap_scores_free(scores);
    tmap_model_free(m);
    tmap_pool_free(val);
    tmap_pool_free(pool);
}

/* ---- tmap run ------------------------------------------------------------ */

/* One tmap run into OUT/NAME, its scores shared through the first run's
 * store; --signed lets the search learn directions too. */
/* One tmap run on the pool, as a user runs it; finetune: with the
 * fine-tune proxy (one draw of ft_proxy records) instead of ICL; filter:
 * --select filter with the bench's --drop. */
static void run_once(struct bench *b, const char *name, bool signed_weights, bool finetune, bool filter,
                     struct tmap_weights *learned, struct tmap_baselines *baselines)
{
    const struct settings *s = &b->s;
    char pool[4200], val[4200], out[4200], store[4200];
    path_in(s, "pool.jsonl", pool, sizeof pool);
    path_in(s, "val.jsonl", val, sizeof val);
    path_in(s, name, out, sizeof out);
    path_in(s, "run/store.db", store, sizeof store);
    struct tmap_run_params p = tmap_run_default_params();
    p.model = model_params(b, s->model);
    p.pool_path = pool;
    p.val_path = val;
    p.out_dir = out;
    p.store_path = store;
    p.learn.select.ratio = s->ratio;
    p.score.indicators = s->indicator_mask;
    p.learn.select.seed = s->seed;
    p.learn.select.mode = s->select;
    p.learn.select.strata = s->strata;
    if (filter) {
        p.learn.select.mode = TMAP_SELECT_FILTER;
        p.learn.select.drop = s->drop;
    }
    p.learn.seed = s->seed;
    p.learn.signed_weights = signed_weights;
    p.learn.proxy.seed = s->seed;
    if (finetune) {
        p.learn.proxy.kind = TMAP_PROXY_FINETUNE;
        p.learn.proxy.draws = 1;
        p.learn.proxy.ft_records = s->ft_proxy;
        p.learn.proxy.ft_lr = s->lr;
        p.learn.proxy.ft_layers = s->ft_layers;
    }
    p.tiny.seed = s->seed;
    struct tmap_run_summary sum;
    struct tmap_error err = { 0 };
    double t0 = tmap_now_seconds();
    char how[96];
    snprintf(how, sizeof how, "%s%s%s%s", signed_weights ? " --signed" : "", filter ? " --select filter" : "",
             !filter && s->select != TMAP_SELECT_TOP ? " --select " : "",
             !filter && s->select != TMAP_SELECT_TOP ? tmap_select_mode_name(s->select) : "");
    if (finetune)
        strcat(how, " --proxy finetune");
    say("tmap run%s on %s (%zu records)", how, pool, s->pool_size);
    if (tmap_run(&p, &sum, &err))
        die("tmap run", &err);
    b->seconds_run += tmap_now_seconds() - t0;
    char line[256];
    tmap_baselines_describe(&sum.baselines, line, sizeof line);
    say("tmap run%s done in %.0f s: %s", how, tmap_now_seconds() - t0, line);
    *baselines = sum.baselines; /* arrays now owned here */
    memset(&sum.baselines, 0, sizeof sum.baselines);
    *learned = sum.weights;
    memset(&sum.weights, 0, sizeof sum.weights);
    tmap_run_summary_free(&sum);
}

static void run_tmap(struct bench *b)
{
    const struct settings *s = &b->s;
    char path[4300];
    path_in(s, "run", path, sizeof path);
    mkdir(path, 0777); /* the store lives here from the first run on */
    run_once(b, "run", false, false, false, &b->learned, &b->baselines);
    if (s->signed_run)
        run_once(b, "run-signed", true, false, false, &b->learned_signed, &b->baselines_signed);
    if (s->ft_proxy)
        run_once(b, "run-ft", false, true, false, &b->learned_ft, &b->baselines_ft);
    if (s->filters)
        run_once(b, "run-filter", false, false, true, &b->learned_filter, &b->baselines_filter);
    if (s->filters && s->ft_proxy)
        run_once(b, "run-filter-ft", false, true, true, &b->learned_filter_ft, &b->baselines_filter_ft);

    struct tmap_error err = { 0 };
    struct tmap_pool_params pp = tmap_pool_default_params();
    path_in(s, "pool.jsonl", path, sizeof path);
    if (tmap_pool_load(path, &pp, &b->pool, &err))
        die(path, &err);
    path_in(s, "run/scores.csv", path, sizeof path);
    if (tmap_scores_read_csv(b->pool, path, &b->scores, &err))
        die(path, &err);
    path_in(s, "run/tiny.jsonl", path, sizeof path);
    if (tmap_pool_load(path, &pp, &b->tiny, &err))
        die(path, &err);
    path_in(s, "heldout.jsonl", path, sizeof path);
    if (tmap_pool_load(path, &pp, &b->heldout, &err))
        die(path, &err);
    path_in(s, "val.jsonl", path, sizeof path);
    if (tmap_pool_load(path, &pp, &b->val, &err))
        die(path, &err);
    size_t n_val = tmap_pool_size(b->val);
    b->val_weights = malloc((n_val ? n_val : 1) * sizeof *b->val_weights);
    if (!b->val_weights) {
        errno = ENOMEM;
        die("the validation items' weights", NULL);
    }
    for (size_t i = 0; i < n_val; i++)
        b->val_weights[i] = 1.0;
}

/* The selection a weighting makes, as tmap select makes it: the top, or
 * (filter_seed > 0) the filter mode's draw with that seed. */
static void select_filtered(struct bench *b, const char *name, enum arm_kind kind, const double *w,
                            uint64_t filter_seed)
{
    struct tmap_weights ww = b->learned; /* names and directions (the same in both runs); these weights */
    ww.weights = (double *)w;
    struct tmap_selection sel;
    struct tmap_error err = { 0 };
    struct tmap_select_params sp = tmap_select_default_params();
    sp.ratio = b->s.ratio;
    sp.mode = b->s.select;
    sp.strata = b->s.strata;
    if (filter_seed) {
        sp.mode = TMAP_SELECT_FILTER;
        sp.drop = b->s.drop;
        sp.seed = filter_seed;
    }
    if (tmap_select(b->pool, b->scores, &ww, &sp, &sel, &err))
        die("tmap select", &err);
    add_arm(b, name, kind, sel.rows, sel.n);
    tmap_selection_free(&sel);
}

static void select_with(struct bench *b, const char *name, enum arm_kind kind, const double *w)
{
    select_filtered(b, name, kind, w, 0);
}

static int compare_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, c = *(const size_t *)y;
    return (a > c) - (a < c);
}

/* n_random arms NAME-1.. of k rows drawn from from[0..n_from), seeds
 * seed_base + 0, 1, ...; rows is workspace for n_from entries. */
static void random_arms(struct bench *b, const char *name, enum arm_kind kind, const size_t *from, size_t n_from,
                        size_t k, uint64_t seed_base, size_t *rows)
{
    for (size_t r = 0; r < b->s.n_random; r++) {
        char label[64];
        size_t got = tmap_random_sample(from, n_from, k, seed_base + r, rows);
        qsort(rows, got, sizeof *rows, compare_size);
        snprintf(label, sizeof label, "%s-%zu", name, r + 1);
        add_arm(b, label, kind, rows, got);
    }
}

/* True when name is one of the comma-separated list's entries. */
static bool in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        size_t item = strcspn(p, ",");
        if (item == len && strncmp(p, name, len) == 0)
            return true;
        p += item + (p[item] == ',');
    }
    return false;
}

static void make_arms(struct bench *b)
{
    size_t n = tmap_pool_size(b->pool), d = b->learned.d;
    select_with(b, "tmap", ARM_TMAP, b->learned.weights);
    if (b->s.signed_run)
        select_with(b, "tmap --signed", ARM_TMAP, b->learned_signed.weights);
    if (b->s.ft_proxy)
        select_with(b, "tmap --proxy finetune", ARM_TMAP, b->learned_ft.weights);
    const struct arm *tm = &b->arms[0];
    size_t k = tm->n;
    int64_t target = tm->tokens;
    size_t *all = malloc(n * sizeof *all), *rows = malloc(n * sizeof *rows);
    for (size_t i = 0; i < n; i++)
        all[i] = i;
    random_arms(b, "random", ARM_RANDOM, all, n, k, b->s.seed * 1000, rows);
    for (size_t r = 0; r < b->s.n_random; r++) {
        /* Random records until the token count reaches tmap's. */
        char name[64];
        size_t got = tmap_random_sample(all, n, n, b->s.seed * 2000 + r, rows), m = 0;
        int64_t t = 0;
        while (m < got && t < target)
            t += b->rec_tokens[rows[m++]];
        qsort(rows, m, sizeof *rows, compare_size);
        snprintf(name, sizeof name, "tokens-%zu", r + 1);
        add_arm(b, name, ARM_TOKENS, rows, m);
    }
    double *w = calloc(d, sizeof *w);
    for (size_t j = 0; j < d; j++)
        w[j] = 1.0 / (double)d;
    select_with(b, "equal weights", ARM_EQUAL, w);
    if (b->s.filters) {
        /* tmap's filter runs select with the run's seed; the equal-weight
         * filters with three others, so their spread shows the draw's. */
        select_filtered(b, "tmap --select filter", ARM_TMAP, b->learned_filter.weights, b->s.seed);
        if (b->s.ft_proxy)
            select_filtered(b, "tmap --select filter --proxy finetune", ARM_TMAP, b->learned_filter_ft.weights,
                            b->s.seed);
        for (size_t r = 0; r < b->s.n_random; r++) {
            char name[64];
            snprintf(name, sizeof name, "filter, equal weights-%zu", r + 1);
            select_filtered(b, name, ARM_FILTER, w, b->s.seed * 3000 + r + 1);
        }
        size_t n_clean = 0;
        for (size_t i = 0; i < n; i++)
            if (b->rec[i].kind == FID_CLEAN)
                all[n_clean++] = i;
        random_arms(b, "clean random", ARM_CLEAN, all, n_clean, k, b->s.seed * 4000, rows);
        for (size_t i = 0; i < n; i++)
            all[i] = i;
    }
    if (b->s.singles_only) {
        size_t items = 1, matched = 0;
        for (const char *p = b->s.singles_only; *p; p++)
            items += *p == ',';
        for (size_t j = 0; j < d; j++)
            matched += in_list(b->s.singles_only, b->learned.names[j]);
        if (matched < items)
            say("--singles %s: %zu of its names are not among tmap run's indicators: no arm for them",
                b->s.singles_only, items - matched);
    }
    for (size_t j = 0; b->s.singles && j < d; j++) {
        if (b->s.singles_only && !in_list(b->s.singles_only, b->learned.names[j]))
            continue;
        char name[64];
        memset(w, 0, d * sizeof *w);
        w[j] = 1.0;
        snprintf(name, sizeof name, "%s alone", b->learned.names[j]);
        select_with(b, name, ARM_SINGLE, w);
    }
    add_arm(b, "full pool", ARM_FULL, all, n);
    free(w);
    free(all);
    free(rows);
}

/* ---- proxy values -------------------------------------------------------- */

/* Each arm's proxy value as the run's search computes it (same model, tiny
 * set, settings and store), its mean over the run's fresh draws, and its
 * value under each variant, timed. */
static void proxy_values(struct bench *b)
{
    const struct settings *s = &b->s;
    struct tmap_error err = { 0 };
    struct tmap_model_params mp = model_params(b, s->model);
    struct tmap_model *m;
    if (tmap_model_load(&mp, &m, &err))
        die(s->model, &err);
    char store[4200];
    path_in(s, "run/store.db", store, sizeof store);
    size_t n = tmap_pool_size(b->pool);
    double *order = calloc(n, sizeof *order); /* the top policy's order: file order */
    for (size_t i = 0; i < n; i++)
        order[i] = -(double)i;
    for (size_t v = 0; v < N_VARIANTS; v++) {
        struct tmap_learn_params lp = tmap_learn_default_params();
        lp.proxy.seed = s->seed;
        lp.proxy.store_path = store;
        if (!variants[v].defaults) {
            lp.proxy.policy = variants[v].policy;
            lp.proxy.draws = variants[v].draws;
            lp.proxy.groups = variants[v].groups;
        }
        lp.n_redraws = 2; /* the defaults' mean over 3 draws: the run's own and two of its redraws */
        struct tmap_proxy *px;
        const struct tmap_pool *tiny = variants[v].whole_val ? b->val : b->tiny;
        if (tmap_proxy_create(m, tiny, variants[v].whole_val ? b->val_weights : NULL, &lp.proxy, &px, &err))
            die("the proxy", &err);
        double seconds = 0;
        size_t evals = 0;
        for (size_t a = 0; a < b->n_arms; a++) {
            struct arm *arm = &b->arms[a];
            if (arm->kind == ARM_FULL)
                continue;
            /* The default variant: the run's own seed, then its redraws. */
            size_t draws = v == 0 ? 1 + lp.n_redraws : 1;
            double sum = 0.0;
            for (size_t r = 0; r < draws; r++) {
                double val;
                struct tmap_proxy_stats st;
                tmap_proxy_set_seed(px, s->seed + (r ? 1000 * r : 0));
                if (tmap_proxy_eval(px, b->pool, arm->rows, arm->n, order, &val, &st, &err))
                    die("the proxy", &err);
                if (!st.from_memo) {
                    seconds += st.seconds;
                    evals++;
                }
                if (r == 0)
                    arm->proxy_v[v] = val;
                sum += val;
            }
            if (v == 0) {
                arm->proxy = arm->proxy_v[0];
                arm->proxy_mean = sum / (double)draws;
            }
        }
        b->seconds_v[v] = evals ? seconds / (double)evals : NAN;
        tmap_proxy_free(px);
        if (evals)
            say("proxy variant %-38s %.2f s per evaluation", variants[v].name, b->seconds_v[v]);
        else /* the defaults' prompts (same draws, same groups), or a rerun */
            say("proxy variant %-38s every value from the memo", variants[v].name);
    }
    free(order);
    tmap_model_free(m);
}

/* ---- fine-tuning and held-out loss --------------------------------------- */

/* Mean response loss (nats/token) of each record of a pool (the held-out
 * records, the tiny set) under the model. */
static void pool_losses(struct bench *b, const struct tmap_pool *pool, const char *model_path, double *loss)
{
    struct tmap_error err = { 0 };
    struct tmap_model_params mp = model_params(b, model_path);
    struct tmap_model *m;
    if (tmap_model_load(&mp, &m, &err))
        die(model_path, &err);
    size_t n = tmap_pool_size(pool);
    struct tmap_logprob_request *req = calloc(n, sizeof *req);
    struct tmap_logprob_result *res = calloc(n, sizeof *res);
    int32_t **bufs = calloc(2 * n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        struct tmap_sample smp;
        char *prompt = NULL;
        if (tmap_pool_sample(pool, i, &smp, &err) ||
            tmap_model_format_prompt(m, &smp, TMAP_TEMPLATE_PLAIN, &prompt, NULL, &err) ||
            tmap_model_tokenize(m, prompt, true, &bufs[2 * i], &req[i].n_prompt, &err) ||
            tmap_model_tokenize(m, smp.response, false, &bufs[2 * i + 1], &req[i].n_response, &err))
            die("tokenizing the records to score", &err);
        req[i].prompt = bufs[2 * i];
        req[i].response = bufs[2 * i + 1];
        free(prompt);
        tmap_sample_free(&smp);
    }
    if (tmap_model_logprob(m, req, n, res, &err))
        die(model_path, &err);
    for (size_t i = 0; i < n; i++)
        loss[i] = res[i].n_tokens > 0 ? -res[i].sum_logprob / (double)res[i].n_tokens : NAN;
    for (size_t i = 0; i < 2 * n; i++)
        free(bufs[i]);
    free(bufs);
    free(req);
    free(res);
    tmap_model_free(m);
}

static void remove_model(const char *path)
{
    char stem[4200], p[4300];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(path) - 5), path); /* without .gguf */
    unlink(path);
    snprintf(p, sizeof p, "%s.ckpt.json", stem);
    unlink(p);
    for (int e = 1; e <= 100; e++) {
        snprintf(p, sizeof p, "%s.ckpt-epoch%d.gguf", stem, e);
        unlink(p);
    }
}

/* ---- results kept between runs ------------------------------------------ */

/* What a kept result depends on: the records, what was done with them
 * (tag: a seed, the proxy's sample), and the settings that shape every
 * fine-tune and evaluation. */
static uint64_t result_key(const struct bench *b, const size_t *rows, size_t n, uint64_t tag)
{
    const struct settings *s = &b->s;
    XXH64_state_t *h = XXH64_createState();
    XXH64_reset(h, 0x66696465ULL);
    XXH64_update(h, rows, n * sizeof *rows);
    XXH64_update(h, &tag, sizeof tag);
    XXH64_update(h, s->model, strlen(s->model));
    XXH64_update(h, &s->epochs, sizeof s->epochs);
    XXH64_update(h, &s->lr, sizeof s->lr);
    XXH64_update(h, &s->n_val, sizeof s->n_val);
    XXH64_update(h, &s->n_heldout, sizeof s->n_heldout);
    XXH64_update(h, &s->pool_first, sizeof s->pool_first);
    uint64_t key = XXH64_digest(h);
    XXH64_freeState(h);
    return key;
}

/* A kept result: a key line, then the values, one per line (%.17g reads
 * back the same double). False when missing or kept under another key. */
static bool kept_read(const char *path, uint64_t key, double *v, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    unsigned long long k = 0;
    bool ok = fscanf(f, "%llx", &k) == 1 && k == key;
    for (size_t i = 0; ok && i < n; i++)
        ok = fscanf(f, "%lg", &v[i]) == 1;
    fclose(f);
    return ok;
}

static void kept_write(const char *path, uint64_t key, const double *v, size_t n)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "bench_fidelity: %s: %s\n", tmp, strerror(errno));
        exit(1);
    }
    fprintf(f, "%016llx\n", (unsigned long long)key);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.17g\n", v[i]);
    if (fclose(f) || rename(tmp, path)) {
        fprintf(stderr, "bench_fidelity: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* Writes the records of rows as a JSONL file and loads it. */
static struct tmap_pool *subset_pool(struct bench *b, const size_t *rows, size_t n, const char *path)
{
    char **lines = malloc((n ? n : 1) * sizeof *lines);
    for (size_t i = 0; i < n; i++)
        lines[i] = b->rec[rows[i]].line;
    write_lines(path, lines, n);
    free(lines);
    struct tmap_error err = { 0 };
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *data;
    if (tmap_pool_load(path, &pp, &data, &err))
        die(path, &err);
    return data;
}

/* Fine-tunes the base model on data with the arms' settings and scores
 * pool (n_items records) under the result. */
static void finetune_and_score(struct bench *b, const struct tmap_pool *data, const char *tuned, int32_t n_ctx,
                               uint64_t seed, const char *layers, const struct tmap_pool *pool, double *loss)
{
    const struct settings *s = &b->s;
    struct tmap_error err = { 0 };
    struct tmap_finetune_params fp = tmap_finetune_default_params();
    fp.model.path = s->model;
    fp.model.n_threads = s->n_threads;
    fp.model.n_ctx = n_ctx;
    fp.out_path = tuned;
    fp.n_epochs = s->epochs;
    fp.lr = s->lr;
    fp.seed = seed;
    fp.train_layers = layers;
    double t0 = tmap_now_seconds();
    if (tmap_finetune(data, &fp, NULL, &err))
        die(tuned, &err);
    double t1 = tmap_now_seconds();
    b->seconds_ft += t1 - t0;
    pool_losses(b, pool, tuned, loss);
    b->seconds_eval += tmap_now_seconds() - t1;
    remove_model(tuned);
}

/* The second proxy. A model this small learns little in context, so the
 * ICL proxy may be weak exactly where the benchmark can measure it; this
 * one asks the question the benchmark asks, at a fraction of the cost:
 * fine-tune the base model for one epoch on ft_proxy records drawn from
 * the subset, and score the tiny set (the search's own data, not the
 * held-out records). Higher is better, like the ICL proxy. */
static void finetune_proxy(struct bench *b, struct arm *a, size_t idx)
{
    const struct settings *s = &b->s;
    size_t k = s->ft_proxy < a->n ? s->ft_proxy : a->n, n_tiny = tmap_pool_size(b->tiny);
    size_t *rows = malloc((k ? k : 1) * sizeof *rows);
    k = tmap_random_sample(a->rows, a->n, k, s->seed * 3000 + 7, rows);
    qsort(rows, k, sizeof *rows, compare_size);
    char path[4200];
    /* Every tensor keeps the key it always had. */
    uint64_t tag = 0x667470ULL ^ (s->ft_layers ? XXH3_64bits(s->ft_layers, strlen(s->ft_layers)) : 0);
    uint64_t key = result_key(b, rows, k, tag);
    snprintf(path, sizeof path, "%s/arms/%016llx.loss", s->out, (unsigned long long)key);
    double kept[2];
    if (kept_read(path, key, kept, 2)) {
        a->proxy_ft = kept[0];
        b->seconds_ft_proxy += kept[1];
        b->n_ft_proxy_evals++;
        free(rows);
        return;
    }
    char subset[4200], tuned[4200];
    snprintf(subset, sizeof subset, "%s/arms/%02zu-ftproxy.jsonl", s->out, idx);
    snprintf(tuned, sizeof tuned, "%s/arms/%02zu-ftproxy.gguf", s->out, idx);
    double t0 = tmap_now_seconds();
    struct tmap_pool *data = subset_pool(b, rows, k, subset);
    double *loss = calloc(n_tiny ? n_tiny : 1, sizeof *loss), sum = 0;
    size_t m = 0;
    finetune_and_score(b, data, tuned, 512, 100, s->ft_layers, b->tiny, loss);
    for (size_t i = 0; i < n_tiny; i++)
        if (isfinite(loss[i])) {
            sum += loss[i];
            m++;
        }
    a->proxy_ft = m ? -sum / (double)m : NAN;
    kept[0] = a->proxy_ft;
    kept[1] = tmap_now_seconds() - t0;
    kept_write(path, key, kept, 2);
    b->seconds_ft_proxy += kept[1];
    b->n_ft_proxy_evals++;
    tmap_pool_free(data);
    free(loss);
    free(rows);
}

/* An arm's fine-tune proxy value as the reports print it: "not run" when
 * the benchmark has no second proxy (--ft-proxy 0). */
static const char *ft_proxy_text(const struct bench *b, const struct arm *a, char *buf, size_t size)
{
    if (!b->s.ft_proxy)
        return "not run";
    snprintf(buf, size, "%.4f", a->proxy_ft);
    return buf;
}

static void finetune_arm(struct bench *b, struct arm *a, size_t idx)
{
    const struct settings *s = &b->s;
    size_t n_items = tmap_pool_size(b->heldout);
    a->loss = calloc(s->n_ft_seeds * n_items, sizeof *a->loss);
    char subset[4200], tuned[4200], kept[4200];
    snprintf(subset, sizeof subset, "%s/arms/%02zu.jsonl", s->out, idx);
    struct tmap_pool *data = NULL;
    for (size_t seed = 0; seed < s->n_ft_seeds; seed++) {
        double *loss = a->loss + seed * n_items;
        uint64_t key = result_key(b, a->rows, a->n, 100 + seed);
        snprintf(kept, sizeof kept, "%s/arms/%016llx.loss", s->out, (unsigned long long)key);
        if (kept_read(kept, key, loss, n_items))
            continue;
        if (!data)
            data = subset_pool(b, a->rows, a->n, subset);
        snprintf(tuned, sizeof tuned, "%s/arms/%02zu-seed%zu.gguf", s->out, idx, seed + 1);
        finetune_and_score(b, data, tuned, 512, 100 + seed, NULL, b->heldout, loss);
        kept_write(kept, key, loss, n_items);
    }
    if (s->ft_proxy && a->kind != ARM_FULL)
        finetune_proxy(b, a, idx);
    tmap_pool_free(data);
    double sum = 0;
    size_t m = 0;
    for (size_t i = 0; i < s->n_ft_seeds * n_items; i++)
        if (isfinite(a->loss[i])) {
            sum += a->loss[i];
            m++;
        }
    a->mean_loss = sum / (double)m;
    char ft[32];
    say("arm %-22s %4zu records %7lld tokens, %3zu corrupted: held-out loss %.4f, fine-tune proxy %s", a->name, a->n,
        (long long)a->tokens, n_corrupt(a), a->mean_loss, ft_proxy_text(b, a, ft, sizeof ft));
}

/* Rows of every arm of one kind, stacked: the reference of a comparison. */
static double *stack_kind(const struct bench *b, enum arm_kind kind, size_t *n_rows)
{
    size_t n_items = tmap_pool_size(b->heldout), per = b->s.n_ft_seeds, k = 0;
    for (size_t a = 0; a < b->n_arms; a++)
        k += b->arms[a].kind == kind;
    double *m = malloc((k ? k : 1) * per * n_items * sizeof *m);
    size_t r = 0;
    for (size_t a = 0; a < b->n_arms; a++)
        if (b->arms[a].kind == kind) {
            memcpy(m + r * n_items, b->arms[a].loss, per * n_items * sizeof *m);
            r += per;
        }
    *n_rows = r;
    return m;
}

static void compare_arms(struct bench *b)
{
    size_t n_items = tmap_pool_size(b->heldout), nr, nt;
    double *rnd = stack_kind(b, ARM_RANDOM, &nr), *tok = stack_kind(b, ARM_TOKENS, &nt);
    for (size_t a = 0; a < b->n_arms; a++) {
        struct arm *arm = &b->arms[a];
        tmap_bootstrap_two_level_diff(arm->loss, b->s.n_ft_seeds, rnd, nr, n_items, b->s.n_bootstrap, 17 + a,
                                      &arm->diff, &arm->low, &arm->high);
        tmap_bootstrap_two_level_diff(arm->loss, b->s.n_ft_seeds, tok, nt, n_items, b->s.n_bootstrap, 29 + a,
                                      &arm->diff_t, &arm->low_t, &arm->high_t);
    }
    free(rnd);
    free(tok);
    /* Fidelity: the proxy (higher is better) against the fine-tuned held-out
     * log-likelihood (minus the loss, higher is better), over every subset
     * but the full pool (the proxy judges subsets of the selection's size). */
    double *x = malloc(b->n_arms * sizeof *x), *xm = malloc(b->n_arms * sizeof *xm),
           *y = malloc(b->n_arms * sizeof *y);
    size_t m = 0;
    for (size_t a = 0; a < b->n_arms; a++)
        if (b->arms[a].kind != ARM_FULL) {
            x[m] = b->arms[a].proxy;
            xm[m] = b->arms[a].proxy_mean;
            y[m] = -b->arms[a].mean_loss;
            m++;
        }
    b->spearman = tmap_spearman(x, y, m);
    b->spearman_mean = tmap_spearman(xm, y, m);
    b->n_spearman = m;
    for (size_t v = 0; v < N_VARIANTS; v++) {
        size_t k = 0;
        for (size_t a = 0; a < b->n_arms; a++)
            if (b->arms[a].kind != ARM_FULL)
                x[k++] = b->arms[a].proxy_v[v];
        b->spearman_v[v] = tmap_spearman(x, y, m);
    }
    if (b->s.ft_proxy) {
        size_t k = 0;
        for (size_t a = 0; a < b->n_arms; a++)
            if (b->arms[a].kind != ARM_FULL)
                x[k++] = b->arms[a].proxy_ft;
        b->spearman_ft = tmap_spearman(x, y, m);
    }
    free(x);
    free(xm);
    free(y);
}

/* ---- reports ------------------------------------------------------------- */

static void write_table(const struct bench *b, FILE *f, bool markdown)
{
    const char *sep = markdown ? " | " : ",";
    if (markdown)
        fprintf(f, "| arm | records | tokens | corrupted | wrong | trunc | swap | off | dup | proxy | proxy (3 draws) | "
                   "ft proxy | held-out loss | vs random (95%% CI) | vs equal-token random (95%% CI) |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    else
        fprintf(f, "arm,records,tokens,corrupted,wrong_answer,truncated,swapped,off_task,duplicate,proxy,proxy_mean,"
                   "proxy_finetune,heldout_loss,diff_random,low_random,high_random,diff_tokens,low_tokens,high_tokens\n");
    char ft[32];
    for (size_t a = 0; a < b->n_arms; a++) {
        const struct arm *r = &b->arms[a];
        if (markdown)
            fprintf(f, "| %s", r->name);
        else
            tmap_csv_write_field(f, r->name); /* "filter, equal weights-1" holds a comma */
        fprintf(f, "%s%zu%s%lld%s%.1f%%", sep, r->n, sep, (long long)r->tokens, sep,
                100.0 * (double)n_corrupt(r) / (double)r->n);
        for (int k = FID_WRONG_ANSWER; k < FID_N_KINDS; k++)
            fprintf(f, "%s%zu", sep, r->bad[k]);
        if (markdown)
            fprintf(f, " | %.4f | %.4f | %s | %.4f | %+.4f [%+.4f, %+.4f] | %+.4f [%+.4f, %+.4f] |\n", r->proxy,
                    r->proxy_mean, ft_proxy_text(b, r, ft, sizeof ft), r->mean_loss, r->diff, r->low, r->high,
                    r->diff_t, r->low_t, r->high_t);
        else
            fprintf(f, ",%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n", r->proxy, r->proxy_mean, r->proxy_ft,
                    r->mean_loss,
                    r->diff, r->low, r->high, r->diff_t, r->low_t, r->high_t);
    }
}

static const char *const kind_names[] = { "tmap", "random", "tokens", "equal", "single", "filter", "clean", "full" };

/* OUT/losses.csv: every arm's held-out loss per item, one row per
 * fine-tuning seed (arm, kind, seed, then the items in heldout.jsonl's
 * order), for pooling several corruption seeds (bench_fidelity_pool). */
static void write_losses(const struct bench *b)
{
    char path[4200];
    path_in(&b->s, "losses.csv", path, sizeof path);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, NULL);
    size_t n_items = tmap_pool_size(b->heldout);
    fprintf(f, "arm,kind,seed");
    for (size_t i = 0; i < n_items; i++)
        fprintf(f, ",item_%zu", i + 1);
    fputc('\n', f);
    for (size_t a = 0; a < b->n_arms; a++)
        for (size_t r = 0; r < b->s.n_ft_seeds; r++) {
            const struct arm *arm = &b->arms[a];
            tmap_csv_write_field(f, arm->name);
            fprintf(f, ",%s,%zu", kind_names[arm->kind], r + 1);
            for (size_t i = 0; i < n_items; i++)
                fprintf(f, ",%.9g", arm->loss[r * n_items + i]);
            fputc('\n', f);
        }
    if (fclose(f) != 0)
        die(path, NULL);
}

/* One tmap run's own verdict line (tmap_baselines_describe) under a label. */
static void write_verdict(FILE *f, const char *what, const struct tmap_baselines *bl)
{
    char line[256];
    tmap_baselines_describe(bl, line, sizeof line);
    fprintf(f, "%s: %s.\n", what, line);
}

/* head, then each indicator's name and weight (with its sign: --signed). */
static void write_weights(FILE *f, const char *head, const struct tmap_weights *w, bool with_sign)
{
    fputs(head, f);
    for (size_t j = 0; j < w->d; j++)
        fprintf(f, with_sign ? " %s %+.3f" : " %s %.3f", w->names[j], w->weights[j]);
}

/* A proxy variant's time per evaluation, or that the memo served every
 * value (the defaults' prompts, or a rerun): no time of its own. */
static const char *variant_seconds_text(const struct bench *b, size_t v, char *buf, size_t size)
{
    if (isnan(b->seconds_v[v]))
        return "from the memo";
    snprintf(buf, size, "%.2f s per evaluation", b->seconds_v[v]);
    return buf;
}

static void write_markdown(const struct bench *b)
{
    char path[4200];
    path_in(&b->s, "fidelity.md", path, sizeof path);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, NULL);
    fprintf(f, "# bench/fidelity (seed %llu)\n\n", (unsigned long long)b->s.seed);
    fprintf(f, "Base model %s: held-out loss %.4f nats/token before fine-tuning (%zu held-out items).\n",
            b->s.model, b->base_mean, tmap_pool_size(b->heldout));
    fprintf(f, "Pool: %zu records (train lines %zu-%zu), %.0f%% corrupted; ratio %.2f; %zu fine-tuning seeds per arm, "
               "%d epoch(s) at lr %g.\n",
            b->s.pool_size, b->s.pool_first, b->s.pool_first + b->s.pool_size - 1, 100 * b->s.corrupt_rate,
            b->s.ratio, b->s.n_ft_seeds, b->s.epochs, (double)b->s.lr);
    fprintf(f, "tmap run's indicators: %s. How each indicator ranks each corruption: indicators.md.\n",
            b->s.indicators);
    if (b->s.select == TMAP_SELECT_STRATIFIED)
        fprintf(f, "Selection: stratified, %zu bands of record length (tmap run, equal weights, each indicator "
                   "alone).\n", b->s.strata);
    write_verdict(f, "tmap run's own verdict", &b->baselines);
    if (b->s.signed_run)
        write_verdict(f, "tmap run --signed's own verdict", &b->baselines_signed);
    if (b->s.ft_proxy)
        write_verdict(f, "tmap run --proxy finetune's own verdict (its own proxy)", &b->baselines_ft);
    if (b->s.filters) {
        char what[96];
        snprintf(what, sizeof what, "tmap run --select filter (drop %.2f)'s own verdict", b->s.drop);
        write_verdict(f, what, &b->baselines_filter);
        if (b->s.ft_proxy)
            write_verdict(f, "tmap run --select filter --proxy finetune's own verdict (its own proxy)",
                          &b->baselines_filter_ft);
    }
    fprintf(f, "\n");
    write_weights(f, "Learned weights:", &b->learned, false);
    if (b->s.signed_run)
        write_weights(f, ".\nLearned weights (--signed):", &b->learned_signed, true);
    if (b->s.ft_proxy)
        write_weights(f, ".\nLearned weights (--proxy finetune):", &b->learned_ft, false);
    if (b->s.filters)
        write_weights(f, ".\nLearned weights (--select filter):", &b->learned_filter, false);
    if (b->s.filters && b->s.ft_proxy)
        write_weights(f, ".\nLearned weights (--select filter --proxy finetune):", &b->learned_filter_ft, false);
    fprintf(f, ".\n\n");
    fprintf(f, "Loss differences are arm minus reference (negative: the arm fine-tunes better), with 95%% intervals "
               "from a two-level bootstrap over held-out items (paired) and seeds.\n\n");
    write_table(b, f, true);
    fprintf(f, "\nSpearman(proxy, fine-tuned held-out log-likelihood) over %zu subsets: %.3f as searched, %.3f "
               "averaged over 3 draws.\n", b->n_spearman, b->spearman, b->spearman_mean);
    fprintf(f, "\nProxy variants against the same fine-tuned arms (time is per evaluation not served from the "
               "memo):\n\n| proxy | time | Spearman |\n|---|---|---|\n");
    char seconds[64];
    for (size_t v = 0; v < N_VARIANTS; v++)
        fprintf(f, "| %s | %s | %.3f |\n", variants[v].name,
                variant_seconds_text(b, v, seconds, sizeof seconds), b->spearman_v[v]);
    if (b->s.ft_proxy)
        fprintf(f, "| fine-tune proxy: 1 epoch on %zu records of the subset%s%s, tiny-set loss | %.2f s per evaluation | %.3f |\n",
                b->s.ft_proxy, b->s.ft_layers ? ", training " : "", b->s.ft_layers ? b->s.ft_layers : "",
                b->seconds_ft_proxy / (double)(b->n_ft_proxy_evals ? b->n_ft_proxy_evals : 1),
                b->spearman_ft);
    fprintf(f, "\nTime: tmap run %.0f s, fine-tuning %.0f s and scoring %.0f s (arms and the fine-tune proxy), %.0f s in all.\n", b->seconds_run,
            b->seconds_ft, b->seconds_eval, tmap_now_seconds() - t_start);
    if (fclose(f) != 0)
        die(path, NULL);
    path_in(&b->s, "arms.csv", path, sizeof path);
    if (!(f = fopen(path, "w")))
        die(path, NULL);
    write_table(b, f, false);
    if (fclose(f) != 0)
        die(path, NULL);
}

/* Two plots as inline SVG: proxy against fine-tuned loss, and each arm's
 * difference to random with its interval. */
static void html_scatter(const struct bench *b, FILE *f)
{
    const double W = 760, H = 420, L = 70, R = 20, T = 20, B = 50;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t a = 0; a < b->n_arms; a++) {
        if (b->arms[a].kind == ARM_FULL)
            continue;
        x0 = fmin(x0, b->arms[a].proxy), x1 = fmax(x1, b->arms[a].proxy);
        y0 = fmin(y0, b->arms[a].mean_loss), y1 = fmax(y1, b->arms[a].mean_loss);
    }
    double px = (x1 - x0) * 0.08 + 1e-9, py = (y1 - y0) * 0.08 + 1e-9;
    x0 -= px, x1 += px, y0 -= py, y1 += py;
    fprintf(f, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
               "aria-label=\"proxy against fine-tuned held-out loss\">\n", W, H, W, H);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\" stroke=\"#ccd\"/>\n", L, T,
            W - L - R, H - T - B);
    for (size_t a = 0; a < b->n_arms; a++) {
        const struct arm *r = &b->arms[a];
        if (r->kind == ARM_FULL)
            continue;
        double cx = L + (r->proxy - x0) / (x1 - x0) * (W - L - R);
        double cy = T + (r->mean_loss - y0) / (y1 - y0) * (H - T - B);
        const char *color = r->kind == ARM_TMAP ? "#2f855a" : r->kind == ARM_RANDOM ? "#718096"
                            : r->kind == ARM_TOKENS ? "#a0aec0" : r->kind == ARM_FILTER ? "#d69e2e"
                            : r->kind == ARM_CLEAN ? "#805ad5" : "#3182ce";
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"><title>%s: proxy %.4f, loss %.4f</title>"
                   "</circle>\n", cx, cy, color, r->name, r->proxy, r->mean_loss);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%s</text>\n", cx + 7, cy + 3, r->name);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"12\">proxy value (higher is better): "
               "%.4f to %.4f</text>\n", (L + W - R) / 2, H - 15, x0, x1);
    fprintf(f, "<text x=\"15\" y=\"%.0f\" font-size=\"12\" transform=\"rotate(-90 15 %.0f)\" text-anchor=\"middle\">"
               "held-out loss after fine-tuning (lower is better, %.4f at top to %.4f)</text>\n</svg>\n",
            (T + H - B) / 2, (T + H - B) / 2, y0, y1);
}

static void html_intervals(const struct bench *b, FILE *f)
{
    struct chart_row *rows = calloc(b->n_arms ? b->n_arms : 1, sizeof *rows);
    if (!rows) {
        errno = ENOMEM;
        die("a chart of the arms", NULL);
    }
    for (size_t a = 0; a < b->n_arms; a++) {
        const struct arm *r = &b->arms[a];
        rows[a] = (struct chart_row){ .name = r->name, .mid = r->diff, .low = r->low, .high = r->high,
                                      .spread_low = NAN, .spread_high = NAN,
                                      .fill = chart_fill(r->diff, r->low, r->high) };
    }
    chart_intervals(f, rows, b->n_arms, "each arm's held-out loss minus random's, with 95% intervals",
                    "held-out loss minus random's (left of the red line: better than random)");
    free(rows);
}

static void write_html(const struct bench *b)
{
    char path[4200], title[64];
    path_in(&b->s, "fidelity.html", path, sizeof path);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, NULL);
    snprintf(title, sizeof title, "bench/fidelity, seed %llu", (unsigned long long)b->s.seed);
    chart_page_open(f, title);
    fprintf(f, "<p>Spearman(proxy, fine-tuned held-out log-likelihood) over %zu subsets: <b>%.3f</b> "
               "(%.3f with the proxy averaged over 3 draws). Base model held-out loss %.4f.</p>\n",
            b->n_spearman, b->spearman, b->spearman_mean, b->base_mean);
    fprintf(f, "<h2>Proxy against fine-tuned loss</h2>\n");
    html_scatter(b, f);
    fprintf(f, "<h2>Each arm against random subsets</h2>\n");
    html_intervals(b, f);
    fprintf(f, "<h2>Table</h2>\n<table><tr><th>arm</th><th>records</th><th>tokens</th><th>corrupted</th>"
               "<th>proxy</th><th>held-out loss</th><th>vs random [95%%]</th><th>vs equal-token random [95%%]</th>"
               "</tr>\n");
    for (size_t a = 0; a < b->n_arms; a++) {
        const struct arm *r = &b->arms[a];
        fprintf(f, "<tr><td>%s</td><td>%zu</td><td>%lld</td><td>%.1f%%</td><td>%.4f</td><td>%.4f</td>"
                   "<td>%+.4f [%+.4f, %+.4f]</td><td>%+.4f [%+.4f, %+.4f]</td></tr>\n",
                r->name, r->n, (long long)r->tokens, 100.0 * (double)n_corrupt(r) / (double)r->n, r->proxy,
                r->mean_loss, r->diff, r->low, r->high, r->diff_t, r->low_t, r->high_t);
    }
    fprintf(f, "</table>\n</body></html>\n");
    if (fclose(f) != 0)
        die(path, NULL);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_fidelity --model BASE.gguf --data train.jsonl --test test.jsonl --out DIR\n"
            "       [--seed S] [--pool-first LINE] [--pool-size N] [--corrupt RATE] [--random-arms N]\n"
            "       [--ft-seeds N] [--epochs N] [--lr X] [--val N] [--heldout N (0 = all)] [-t THREADS]\n"
            "       [--ft-proxy RECORDS]   (the second proxy's sample, default 64; 0 = off)\n"
            "       [--ft-layers SPEC]     (the second proxy trains only these tensors, as --train-layers)\n"
            "       [--singles 0|LIST]     (no arm per indicator alone: half the fine-tunes; or only these, e.g.\n"
            "                              support,length)\n"
            "       [--filters 1]          (filter-selection and clean arms, two filter runs)\n"
            "       [--signed 1]           (a tmap run --signed arm: one tmap run more)\n"
            "       [--drop F]             (filter selections: share of the pool left out, default 0.3)\n"
            "       [--select top|stratified] [--strata N]  (tmap run's selection, and the equal-weight and\n"
            "                              single-indicator arms'; default top)\n"
            "       [--pool-only 1]   (only write OUT/pool.jsonl and OUT/labels.csv)\n"
            "       [--indicators LIST]    (tmap run's --indicators, default \"default\"; e.g. loss,ifd,length)\n"
            "       [--indicators-only 1]   (only the pool and OUT/indicators.md: each indicator's AUC)\n");
    exit(2);
}

static void parse(int argc, char **argv, struct settings *s)
{
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--model")) s->model = v;
        else if (!strcmp(a, "--data")) s->data = v;
        else if (!strcmp(a, "--test")) s->test = v;
        else if (!strcmp(a, "--out")) s->out = v;
        else if (!strcmp(a, "--seed")) s->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--pool-first")) s->pool_first = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--pool-size")) s->pool_size = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--corrupt")) s->corrupt_rate = strtod(v, NULL);
        else if (!strcmp(a, "--random-arms")) s->n_random = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--ft-seeds")) s->n_ft_seeds = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--epochs")) s->epochs = (int32_t)strtol(v, NULL, 10);
        else if (!strcmp(a, "--lr")) s->lr = strtof(v, NULL);
        else if (!strcmp(a, "--val")) s->n_val = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--heldout")) s->n_heldout = strtoull(v, NULL, 10);
        else if (!strcmp(a, "-t")) s->n_threads = (int32_t)strtol(v, NULL, 10);
        else if (!strcmp(a, "--pool-only")) s->pool_only = strcmp(v, "0") != 0;
        else if (!strcmp(a, "--indicators-only")) s->auc_only = strcmp(v, "0") != 0;
        else if (!strcmp(a, "--indicators")) {
            struct tmap_error err = { 0 };
            if (tmap_indicator_parse_list(v, &s->indicator_mask, &err))
                fprintf(stderr, "bench_fidelity: --indicators: %s\n", err.message), exit(2);
            s->indicators = v;
        }
        else if (!strcmp(a, "--ft-proxy")) s->ft_proxy = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--ft-layers")) s->ft_layers = v;
        else if (!strcmp(a, "--singles")) {
            s->singles = strcmp(v, "0") != 0;
            s->singles_only = strcmp(v, "0") != 0 && strcmp(v, "1") != 0 ? v : NULL;
        }
        else if (!strcmp(a, "--filters")) s->filters = strcmp(v, "0") != 0;
        else if (!strcmp(a, "--signed")) s->signed_run = strcmp(v, "0") != 0;
        else if (!strcmp(a, "--drop")) s->drop = strtod(v, NULL);
        else if (!strcmp(a, "--strata")) s->strata = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--select")) {
            if (!strcmp(v, "top"))
                s->select = TMAP_SELECT_TOP;
            else if (!strcmp(v, "stratified"))
                s->select = TMAP_SELECT_STRATIFIED;
            else
                usage(); /* filter has its own arms: --filters 1 */
        }
        else usage();
    }
    if (s->n_random < 2 || s->n_ft_seeds < 1) {
        fprintf(stderr, "bench_fidelity: --random-arms %zu --ft-seeds %zu: the intervals need at least 2 random "
                        "arms (their spread) and 1 fine-tuning seed\n", s->n_random, s->n_ft_seeds);
        exit(2);
    }
    if ((!s->model && !s->pool_only) || !s->data || !s->test || !s->out)
        usage();
    /* Every test record the validation data leaves: on GSM8K 1,019 items,
     * whose interval is about 0.8x the width of 500's (docs/fidelity.md:
     * a seed-1 gain that 500 items called significant was not). */
    if (s->n_heldout == 0) {
        size_t lines = count_lines(s->test);
        if (lines <= s->n_val) {
            fprintf(stderr, "bench_fidelity: %s: %zu lines, none left after the %zu validation records\n", s->test,
                    lines, s->n_val);
            exit(1);
        }
        s->n_heldout = lines - s->n_val;
    }
}

int main(int argc, char **argv)
{
    struct bench b = { .s = default_settings() };
    parse(argc, argv, &b.s);
    t_start = tmap_now_seconds();
    tmap_backend_init(true);
    char path[4200];
    mkdir(b.s.out, 0777);
    path_in(&b.s, "arms", path, sizeof path);
    mkdir(path, 0777);

    make_pool(&b);
    if (b.s.pool_only) {
        printf("wrote %s/pool.jsonl and labels.csv\n", b.s.out);
        return 0;
    }
    indicator_auc(&b);
    if (b.s.auc_only) {
        tmap_backend_free();
        return 0;
    }
    run_tmap(&b);
    count_tokens(&b);
    make_arms(&b);
    say("%zu arms; proxy values", b.n_arms);
    proxy_values(&b);
    size_t n_items = tmap_pool_size(b.heldout);
    b.base_loss = calloc(n_items, sizeof *b.base_loss);
    pool_losses(&b, b.heldout, b.s.model, b.base_loss);
    for (size_t i = 0; i < n_items; i++)
        b.base_mean += b.base_loss[i] / (double)n_items;
    say("base model held-out loss %.4f over %zu items", b.base_mean, n_items);
    for (size_t a = 0; a < b.n_arms; a++)
        finetune_arm(&b, &b.arms[a], a);
    compare_arms(&b);
    write_markdown(&b);
    write_losses(&b);
    write_html(&b);
    write_table(&b, stdout, true);
    printf("\nSpearman(proxy, fine-tuned held-out log-likelihood) over %zu subsets: %.3f (%.3f over 3 draws)\n",
           b.n_spearman, b.spearman, b.spearman_mean);
    char seconds[64];
    for (size_t v = 0; v < N_VARIANTS; v++)
        printf("  proxy %-38s %s, Spearman %.3f\n", variants[v].name,
               variant_seconds_text(&b, v, seconds, sizeof seconds), b.spearman_v[v]);
    if (b.s.ft_proxy) {
        char name[160];
        snprintf(name, sizeof name, "fine-tune proxy (%zu records%s%s)", b.s.ft_proxy,
                 b.s.ft_layers ? ", training " : "", b.s.ft_layers ? b.s.ft_layers : "");
        printf("  %-44s %.2f s per evaluation, Spearman %.3f\n", name,
               b.seconds_ft_proxy / (double)(b.n_ft_proxy_evals ? b.n_ft_proxy_evals : 1), b.spearman_ft);
    }
    printf("wall time %.0f s; wrote %s/fidelity.md, arms.csv, losses.csv, fidelity.html\n", tmap_now_seconds() - t_start,
           b.s.out);
    tmap_backend_free();
    return 0;
}
