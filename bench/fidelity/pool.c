/*
 * pool.c - bench_fidelity_pool: one verdict from bench/fidelity runs on
 * several corruption seeds (docs/fidelity.md).
 *
 * One seed's interval for an arm against random subsets covers its held-out
 * items and fine-tuning seeds, and on the shipped base model it is about as
 * wide as any selection's effect: a configuration ahead on every seed may
 * still exclude zero on none. A change of default must stand on more than
 * one seed, so this reads the OUT folders of several runs (their
 * losses.csv and arms.csv) and gives, for each arm present in all of them:
 *
 *   - its difference to random subsets (and to equal-token random subsets)
 *     on each seed;
 *   - the mean over the seeds, with a 95% interval from a bootstrap that
 *     draws the held-out items once for every seed (the runs share them)
 *     and each seed's fine-tuning runs within that seed
 *     (tmap_bootstrap_strata_diff): how sure the mean over these pools is;
 *   - the seeds' own spread: mean +/- t(S-1) sd / sqrt(S) of the per-seed
 *     differences, which also counts how much the corruption draw moves
 *     the result; with few seeds it is wide, and it is the one to quote for
 *     "another pool would come out the same way".
 *
 * The runs must have used the same held-out items (the same heldout.jsonl,
 * as bench_fidelity's defaults give whatever the seed).
 *
 * With --html FILE it also writes the verdict as a page: for each reference,
 * every arm's mean with both intervals and its seeds as dots.
 *
 *   bench_fidelity_pool [--bootstrap N] [--html FILE] OUT1 OUT2 ...
 */
#include "chart.h"
#include "util/csv.h"
#include "util/stats.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_SEEDS = 64, NAME_LEN = 64 };

/* The two references every arm is judged against, and their kinds in
 * losses.csv. */
enum { REF_RANDOM, REF_TOKENS, N_REFS };
static const char *const ref_kinds[N_REFS] = { "random", "tokens" };

/* One row of losses.csv: an arm's per-item losses for one fine-tuning seed,
 * and (from arms.csv) the arm's share of corrupted records. */
struct row {
    char    name[NAME_LEN], kind[16];
    double *loss;
    double  corrupted;
};

/* One corruption seed: an OUT folder. */
struct run {
    const char *dir;
    struct row *rows;
    size_t      n_rows, n_items;
    double     *ref[N_REFS];   /* the reference kinds' rows, stacked: n_ref x n_items */
    size_t      n_ref[N_REFS];
    char       *line;          /* getline's buffer, while a file is read */
    size_t      line_cap;
    char      **fields;        /* ... and its fields */
};

/* The runs read, global so that what they hold stays reachable until the
 * end (fail() exits from anywhere) and main frees it once. */
static struct run g_runs[MAX_SEEDS];
static size_t     g_n_runs;

static void free_runs(void)
{
    for (size_t s = 0; s < g_n_runs; s++) {
        struct run *r = &g_runs[s];
        for (size_t k = 0; k < r->n_rows; k++)
            free(r->rows[k].loss);
        free(r->rows);
        for (int f = 0; f < N_REFS; f++)
            free(r->ref[f]);
        free(r->line);
        free(r->fields);
    }
}

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_fidelity_pool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static FILE *open_in(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail("%s: cannot open: %s", path, strerror(errno));
    return f;
}

/* The next line of f, split into at most max fields (r->fields); -1 at the
 * end of the file. */
static int next_line(struct run *r, FILE *f, int max, const char *path, size_t line_no)
{
    ssize_t len = getline(&r->line, &r->line_cap, f);
    if (len < 0)
        return -1;
    if (len > 0 && r->line[len - 1] == '\n')
        r->line[len - 1] = '\0';
    int n = tmap_csv_split(r->line, r->fields, max);
    if (n < 0)
        fail("%s:%zu: a quote that does not close", path, line_no);
    return n;
}

static struct row *find_row(const struct run *r, const char *name)
{
    for (size_t k = 0; k < r->n_rows; k++)
        if (strcmp(r->rows[k].name, name) == 0)
            return &r->rows[k];
    return NULL;
}

static void read_losses(struct run *r, const char *path)
{
    FILE *f = open_in(path);
    ssize_t len = getline(&r->line, &r->line_cap, f);
    r->n_items = 0;
    for (ssize_t i = 0; i < len; i++)
        r->n_items += r->line[i] == ',';
    if (r->n_items < 3)
        fail("%s:1: not a losses.csv header", path);
    r->n_items -= 2; /* arm,kind,seed,item_1,... */
    int max = (int)r->n_items + 4; /* one more than a row holds, to see one that holds more */
    r->fields = malloc((size_t)max * sizeof *r->fields);
    if (!r->fields)
        fail("out of memory");
    size_t cap = 0;
    for (size_t line_no = 2;; line_no++) {
        int n = next_line(r, f, max, path, line_no);
        if (n < 0)
            break;
        if (n < 3)
            fail("%s:%zu: too few fields", path, line_no);
        if ((size_t)n != r->n_items + 3)
            fail("%s:%zu: %d losses, the header names %zu", path, line_no, n - 3, r->n_items);
        if (r->n_rows == cap) {
            cap = cap ? 2 * cap : 32;
            struct row *grown = realloc(r->rows, cap * sizeof *grown);
            if (!grown)
                fail("out of memory");
            r->rows = grown;
        }
        struct row *w = &r->rows[r->n_rows++];
        *w = (struct row){ .corrupted = NAN };
        snprintf(w->name, sizeof w->name, "%s", r->fields[0]);
        snprintf(w->kind, sizeof w->kind, "%s", r->fields[1]);
        if (!(w->loss = malloc(r->n_items * sizeof *w->loss)))
            fail("out of memory");
        for (size_t i = 0; i < r->n_items; i++) {
            char *end;
            w->loss[i] = strtod(r->fields[i + 3], &end);
            if (end == r->fields[i + 3] || *end)
                fail("%s:%zu: item %zu: '%s' is not a number", path, line_no, i + 1, r->fields[i + 3]);
        }
    }
    fclose(f);
    if (r->n_rows == 0)
        fail("%s: no arms (run bench_fidelity with this build: it writes losses.csv)", path);
}

/* Each arm's share of corrupted records: arms.csv's 4th column. */
static void read_corrupted(struct run *r, const char *path)
{
    FILE *f = open_in(path);
    for (size_t line_no = 1;; line_no++) {
        int n = next_line(r, f, 5, path, line_no);
        if (n < 0)
            break;
        if (line_no == 1 || n < 4)
            continue;
        for (size_t k = 0; k < r->n_rows; k++)
            if (strcmp(r->rows[k].name, r->fields[0]) == 0)
                r->rows[k].corrupted = strtod(r->fields[3], NULL);
    }
    fclose(f);
}

/* Rows of one arm (or of every arm of a kind) stacked: n x n_items. */
static double *stack(const struct run *r, const char *name, const char *kind, size_t *n)
{
    double *m = malloc((r->n_rows ? r->n_rows : 1) * r->n_items * sizeof *m);
    *n = 0;
    for (size_t k = 0; m && k < r->n_rows; k++)
        if ((name && strcmp(r->rows[k].name, name) == 0) || (kind && strcmp(r->rows[k].kind, kind) == 0))
            memcpy(m + (*n)++ * r->n_items, r->rows[k].loss, r->n_items * sizeof *m);
    if (!m)
        fail("out of memory");
    return m;
}

static void read_run(struct run *r, const char *dir)
{
    char losses[4200], arms[4200];
    r->dir = dir;
    snprintf(losses, sizeof losses, "%s/losses.csv", dir);
    snprintf(arms, sizeof arms, "%s/arms.csv", dir);
    read_losses(r, losses);
    read_corrupted(r, arms);
    for (int f = 0; f < N_REFS; f++) {
        r->ref[f] = stack(r, NULL, ref_kinds[f], &r->n_ref[f]);
        if (!r->n_ref[f])
            fail("%s: no '%s' arms to compare the others with", losses, ref_kinds[f]);
    }
}

/* True when two files hold the same bytes. */
static bool same_bytes(const char *a, const char *b)
{
    FILE *fa = open_in(a), *fb = fopen(b, "r");
    bool same = fb != NULL;
    char x[65536], y[65536];
    while (same) {
        size_t na = fread(x, 1, sizeof x, fa), nb = fread(y, 1, sizeof y, fb);
        same = na == nb && memcmp(x, y, na) == 0;
        if (na < sizeof x)
            break;
    }
    fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static double mean_of(const double *v, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    return sum / (double)n;
}

/* 97.5% quantile of Student's t with df degrees of freedom. */
static double t975(size_t df)
{
    static const double t[] = { NAN,   12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086 };
    return df < sizeof t / sizeof t[0] ? t[df] : 1.96;
}

struct pooled {
    double per_seed[MAX_SEEDS];
    double diff, low, high;   /* the mean over seeds, items and runs drawn */
    double spread_low, spread_high;
};

/* An arm against each reference, per seed and pooled. */
static void pool_arm(const struct run *runs, size_t n_runs, const char *name, size_t n_boot, struct pooled out[N_REFS])
{
    struct tmap_bootstrap_stratum st[MAX_SEEDS] = { 0 };
    double *own[MAX_SEEDS];
    size_t n_items = runs[0].n_items;
    for (size_t s = 0; s < n_runs; s++)
        own[s] = stack(&runs[s], name, NULL, &st[s].n_a);
    for (int f = 0; f < N_REFS; f++) {
        struct pooled *o = &out[f];
        for (size_t s = 0; s < n_runs; s++) {
            st[s].a = own[s];
            st[s].b = runs[s].ref[f];
            st[s].n_b = runs[s].n_ref[f];
            o->per_seed[s] = mean_of(own[s], st[s].n_a * n_items) - mean_of(st[s].b, st[s].n_b * n_items);
        }
        tmap_bootstrap_strata_diff(st, n_runs, n_items, n_boot, 7, &o->diff, &o->low, &o->high);
        double mean = 0.0, ss = 0.0;
        for (size_t s = 0; s < n_runs; s++)
            mean += o->per_seed[s] / (double)n_runs;
        for (size_t s = 0; s < n_runs; s++)
            ss += (o->per_seed[s] - mean) * (o->per_seed[s] - mean);
        double half = n_runs > 1 ? t975(n_runs - 1) * sqrt(ss / (double)(n_runs - 1) / (double)n_runs) : NAN;
        o->spread_low = mean - half;
        o->spread_high = mean + half;
    }
    for (size_t s = 0; s < n_runs; s++)
        free(own[s]);
}

static void print_cell(const struct pooled *p, size_t n_runs)
{
    printf(" |");
    for (size_t s = 0; s < n_runs; s++)
        printf("%s%+.4f", s ? " / " : " ", chart_shown(p->per_seed[s]));
    bool excludes = chart_shown(p->low) > 0 || chart_shown(p->high) < 0;
    printf(" | %s%+.4f [%+.4f, %+.4f]%s", excludes ? "**" : "", chart_shown(p->diff), chart_shown(p->low),
           chart_shown(p->high), excludes ? "**" : "");
    if (n_runs > 1) {
        bool spread_excludes = chart_shown(p->spread_low) > 0 || chart_shown(p->spread_high) < 0;
        printf(" | %s[%+.4f, %+.4f]%s", spread_excludes ? "**" : "", chart_shown(p->spread_low),
               chart_shown(p->spread_high), spread_excludes ? "**" : "");
    } else {
        printf(" | -");
    }
}

/* One arm as pooled, for the table and the page. */
struct pooled_arm {
    const char   *name;
    double        corrupted[MAX_SEEDS];
    struct pooled vs[N_REFS];
};

/* One chart: each arm's mean against reference ref, its 95% interval over
 * items and runs (thick), the seeds' own spread (thin), each seed (ring). */
static void html_chart(FILE *f, const struct pooled_arm *arms, size_t n_arms, size_t n_runs, int ref)
{
    struct chart_row *rows = calloc(n_arms ? n_arms : 1, sizeof *rows);
    if (!rows)
        fail("out of memory for a chart of %zu arms", n_arms);
    for (size_t a = 0; a < n_arms; a++) {
        const struct pooled *p = &arms[a].vs[ref];
        rows[a] = (struct chart_row){ .name = arms[a].name, .mid = p->diff, .low = p->low, .high = p->high,
                                      .spread_low = n_runs > 1 ? p->spread_low : NAN,
                                      .spread_high = n_runs > 1 ? p->spread_high : NAN,
                                      .spread_title = "over seeds", .rings = p->per_seed, .n_rings = n_runs,
                                      .fill = chart_fill(p->diff, p->low, p->high) };
    }
    char aria[128];
    snprintf(aria, sizeof aria, "each arm minus %s subsets, pooled over %zu seeds",
             ref == REF_RANDOM ? "random" : "equal-token random", n_runs);
    chart_intervals(f, rows, n_arms, aria, "held-out loss minus the reference's (left of the red line: better)");
    free(rows);
}

static void write_html(const char *path, const struct pooled_arm *arms, size_t n_arms, size_t n_boot)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail("%s: cannot write: %s", path, strerror(errno));
    char title[64];
    snprintf(title, sizeof title, "bench/fidelity, pooled over %zu corruption seeds", g_n_runs);
    chart_page_open(f, title);
    fprintf(f, "<p>Folders:");
    for (size_t s = 0; s < g_n_runs; s++) {
        fprintf(f, "%s seed %zu <code>", s ? "," : "", s + 1);
        chart_put_escaped(f, g_runs[s].dir);
        fprintf(f, "</code>");
    }
    fprintf(f, ". %zu held-out items, %zu resamples. Each row: the mean over seeds (filled dot: green or red "
               "where its 95%% interval over items and fine-tuning runs, the thick line, excludes zero), the seeds' "
               "own spread (thin line, t with %zu df) and each seed (rings).</p>\n",
            g_runs[0].n_items, n_boot, g_n_runs - 1);
    fprintf(f, "<h2>Against random subsets of the same size</h2>\n");
    html_chart(f, arms, n_arms, g_n_runs, REF_RANDOM);
    fprintf(f, "<h2>Against random subsets with the same number of tokens</h2>\n");
    html_chart(f, arms, n_arms, g_n_runs, REF_TOKENS);
    fprintf(f, "<h2>Table</h2>\n<table><tr><th>arm</th><th>corrupted, per seed</th><th>vs random [95%%]</th>"
               "<th>over seeds</th><th>vs equal-token random [95%%]</th><th>over seeds</th></tr>\n");
    for (size_t a = 0; a < n_arms; a++) {
        fprintf(f, "<tr><td>");
        chart_put_escaped(f, arms[a].name);
        fprintf(f, "</td><td>");
        for (size_t s = 0; s < g_n_runs; s++)
            fprintf(f, "%s%.1f%%", s ? " / " : "", arms[a].corrupted[s]);
        fprintf(f, "</td>");
        for (int r = 0; r < N_REFS; r++) {
            const struct pooled *p = &arms[a].vs[r];
            fprintf(f, "<td>%+.4f [%+.4f, %+.4f]</td>", chart_shown(p->diff), chart_shown(p->low),
                    chart_shown(p->high));
            if (g_n_runs > 1)
                fprintf(f, "<td>[%+.4f, %+.4f]</td>", chart_shown(p->spread_low), chart_shown(p->spread_high));
            else
                fprintf(f, "<td>-</td>");
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n</body></html>\n");
    if (fclose(f) != 0)
        fail("%s: cannot write: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
    size_t n_boot = 2000;
    const char *html = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bootstrap") == 0 && i + 1 < argc) {
            n_boot = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--html") == 0 && i + 1 < argc) {
            html = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_fidelity_pool [--bootstrap N] [--html FILE] OUT1 OUT2 ...\n"
                            "  OUT: folders of bench_fidelity runs on other corruption seeds\n");
            return 1;
        } else if (g_n_runs == MAX_SEEDS) {
            fail("at most %d folders", MAX_SEEDS);
        } else {
            g_n_runs++; /* first, so that free_runs sees what read_run holds */
            read_run(&g_runs[g_n_runs - 1], argv[i]);
        }
    }
    if (g_n_runs == 0 || n_boot == 0)
        fail("no folders (usage: bench_fidelity_pool [--bootstrap N] [--html FILE] OUT1 OUT2 ...)");
    /* Pairing items across seeds needs the same items in the same order. */
    for (size_t s = 1; s < g_n_runs; s++) {
        char first[4200], other[4200];
        snprintf(first, sizeof first, "%s/heldout.jsonl", g_runs[0].dir);
        snprintf(other, sizeof other, "%s/heldout.jsonl", g_runs[s].dir);
        if (g_runs[s].n_items != g_runs[0].n_items || !same_bytes(first, other))
            fail("%s: its held-out items are not %s's (the runs must share heldout.jsonl)", other, g_runs[0].dir);
    }

    printf("Pooled over %zu corruption seeds (", g_n_runs);
    for (size_t s = 0; s < g_n_runs; s++)
        printf("%s%s", s ? ", " : "", g_runs[s].dir);
    printf("), %zu held-out items, %zu resamples. Differences: arm minus reference, per seed, then the mean "
           "over seeds with a 95%% interval over items and fine-tuning runs, then the seeds' own spread "
           "(t, %zu df). Bold: the interval excludes zero.\n\n",
           g_runs[0].n_items, n_boot, g_n_runs - 1);
    printf("| arm | corrupted | vs random, per seed | mean [95%%] | over seeds [95%%] "
           "| vs equal-token random, per seed | mean [95%%] | over seeds [95%%] |\n"
           "|---|---|---|---|---|---|---|---|\n");
    struct pooled_arm *arms = calloc(g_runs[0].n_rows, sizeof *arms);
    size_t n_arms = 0;
    if (!arms)
        fail("out of memory");
    for (size_t k = 0; k < g_runs[0].n_rows; k++) {
        const struct row *w = &g_runs[0].rows[k];
        if (strcmp(w->kind, "random") == 0 || strcmp(w->kind, "tokens") == 0)
            continue;
        if (k > 0 && strcmp(g_runs[0].rows[k - 1].name, w->name) == 0)
            continue; /* the arm's next fine-tuning seed */
        bool everywhere = true;
        for (size_t s = 1; s < g_n_runs; s++)
            everywhere = everywhere && find_row(&g_runs[s], w->name);
        if (!everywhere) {
            fprintf(stderr, "bench_fidelity_pool: '%s' is not in every folder; left out\n", w->name);
            continue;
        }
        struct pooled_arm *arm = &arms[n_arms++];
        arm->name = w->name;
        pool_arm(g_runs, g_n_runs, w->name, n_boot, arm->vs);
        printf("| %s |", w->name);
        for (size_t s = 0; s < g_n_runs; s++) {
            arm->corrupted[s] = find_row(&g_runs[s], w->name)->corrupted;
            printf("%s%.1f%%", s ? " / " : " ", arm->corrupted[s]);
        }
        print_cell(&arm->vs[REF_RANDOM], g_n_runs);
        print_cell(&arm->vs[REF_TOKENS], g_n_runs);
        printf(" |\n");
    }
    if (html)
        write_html(html, arms, n_arms, n_boot);
    free(arms);
    free_runs();
    return 0;
}
