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
 *   bench_fidelity_pool [--bootstrap N] OUT1 OUT2 ...
 */
#include "util/stats.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_SEEDS = 64, NAME_LEN = 64 };

/* One row of losses.csv: an arm's per-item losses for one fine-tuning seed. */
struct row {
    char    name[NAME_LEN], kind[16];
    double *loss;
};

/* One corruption seed: an OUT folder. */
struct run {
    const char *dir;
    struct row *rows;
    size_t      n_rows, n_items;
    char      **arms_csv;   /* arms.csv's lines, in arms_text */
    char       *arms_text;
    size_t      n_arms_csv;
    char       *text;       /* losses.csv's bytes and lines, while they are parsed */
    char      **lines;
};

/* The runs read, global so that what they hold stays reachable until the
 * end (fail() exits from anywhere) and main frees it once. */
static struct run g_runs[MAX_SEEDS];
static size_t     g_n_runs;

static void free_runs(void)
{
    for (size_t s = 0; s < g_n_runs; s++) {
        for (size_t k = 0; k < g_runs[s].n_rows; k++)
            free(g_runs[s].rows[k].loss);
        free(g_runs[s].rows);
        free(g_runs[s].arms_csv);
        free(g_runs[s].arms_text);
        free(g_runs[s].text);
        free(g_runs[s].lines);
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

/* The next CSV field of *line into out (at most cap bytes), quotes undone;
 * *line moves past it and its comma. False at the end of the line. */
static bool next_field(const char **line, char *out, size_t cap)
{
    const char *p = *line;
    if (!p)
        return false;
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
            if (*p == '"')
                p++; /* a doubled quote */
            if (n + 1 < cap)
                out[n++] = *p;
        }
        if (*p == '"')
            p++;
    } else {
        for (; *p && *p != ',' && *p != '\n'; p++)
            if (n + 1 < cap)
                out[n++] = *p;
    }
    out[n] = '\0';
    *line = *p == ',' ? p + 1 : NULL;
    return true;
}

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail("%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = 2 * cap + 65536 + 1;
            buf = realloc(buf, cap);
            if (!buf)
                fail("%s: out of memory", path);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad)
        fail("%s: cannot read: %s", path, strerror(errno));
    buf[n] = '\0';
    *size = n;
    return buf;
}

/* Splits buf into lines in place; returns them (buf owns the bytes). */
static char **split_lines(char *buf, size_t *n_lines)
{
    size_t n = 0, cap = 16;
    char **lines = malloc(cap * sizeof *lines);
    for (char *p = buf; lines && *p;) {
        char *end = strchr(p, '\n');
        if (end)
            *end = '\0';
        if (n == cap)
            lines = realloc(lines, (cap *= 2) * sizeof *lines);
        if (lines)
            lines[n++] = p;
        p = end ? end + 1 : p + strlen(p);
    }
    if (!lines)
        fail("out of memory");
    *n_lines = n;
    return lines;
}

static void read_run(struct run *r, const char *dir)
{
    char path[4200];
    size_t size, n_lines;
    r->dir = dir;
    snprintf(path, sizeof path, "%s/losses.csv", dir);
    r->text = read_file(path, &size);
    char **lines = r->lines = split_lines(r->text, &n_lines);
    if (n_lines < 2)
        fail("%s: no arms (run bench_fidelity with this build: it writes losses.csv)", path);
    r->n_items = 0;
    for (const char *p = lines[0]; *p; p++)
        r->n_items += *p == ',';
    if (r->n_items < 3)
        fail("%s:1: not a losses.csv header", path);
    r->n_items -= 2; /* arm,kind,seed,item_1,... */
    r->rows = calloc(n_lines - 1, sizeof *r->rows);
    r->n_rows = n_lines - 1;
    for (size_t k = 1; k < n_lines; k++) {
        struct row *w = &r->rows[k - 1];
        const char *p = lines[k];
        char field[64];
        w->loss = malloc(r->n_items * sizeof *w->loss);
        if (!w->loss || !next_field(&p, w->name, sizeof w->name) || !next_field(&p, w->kind, sizeof w->kind) ||
            !next_field(&p, field, sizeof field))
            fail("%s:%zu: too few fields", path, k + 1);
        for (size_t i = 0; i < r->n_items; i++) {
            char *end;
            if (!next_field(&p, field, sizeof field))
                fail("%s:%zu: %zu losses, the header names %zu", path, k + 1, i, r->n_items);
            w->loss[i] = strtod(field, &end);
            if (end == field || *end)
                fail("%s:%zu: item %zu: '%s' is not a number", path, k + 1, i + 1, field);
        }
        if (p)
            fail("%s:%zu: more losses than the header names", path, k + 1);
    }
    free(r->lines);
    free(r->text);
    r->lines = NULL;
    r->text = NULL;
    snprintf(path, sizeof path, "%s/arms.csv", dir);
    r->arms_text = read_file(path, &size);
    r->arms_csv = split_lines(r->arms_text, &r->n_arms_csv);
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

/* The arm's share of corrupted records, from arms.csv (column 4). */
static double corrupted(const struct run *r, const char *name)
{
    for (size_t k = 1; k < r->n_arms_csv; k++) {
        const char *p = r->arms_csv[k];
        char field[NAME_LEN];
        if (!next_field(&p, field, sizeof field) || strcmp(field, name) != 0)
            continue;
        for (int c = 0; c < 3 && next_field(&p, field, sizeof field); c++)
            ;
        return strtod(field, NULL);
    }
    return NAN;
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

/* arm against the rows of one reference kind, per seed and pooled. */
static void pool_arm(const struct run *runs, size_t n_runs, const char *name, const char *reference, size_t n_boot,
                     struct pooled *out)
{
    struct tmap_bootstrap_stratum st[MAX_SEEDS] = { 0 };
    double *own[MAX_SEEDS], *ref[MAX_SEEDS];
    size_t n_items = runs[0].n_items;
    for (size_t s = 0; s < n_runs; s++) {
        own[s] = stack(&runs[s], name, NULL, &st[s].n_a);
        ref[s] = stack(&runs[s], NULL, reference, &st[s].n_b);
        st[s].a = own[s];
        st[s].b = ref[s];
        if (!st[s].n_b) {
            for (size_t k = 0; k <= s; k++) {
                free(own[k]);
                free(ref[k]);
            }
            fail("%s: no '%s' arms to compare '%s' with", runs[s].dir, reference, name);
        }
        out->per_seed[s] = mean_of(own[s], st[s].n_a * n_items) - mean_of(ref[s], st[s].n_b * n_items);
    }
    tmap_bootstrap_strata_diff(st, n_runs, n_items, n_boot, 7, &out->diff, &out->low, &out->high);
    double mean = 0.0, ss = 0.0;
    for (size_t s = 0; s < n_runs; s++)
        mean += out->per_seed[s] / (double)n_runs;
    for (size_t s = 0; s < n_runs; s++)
        ss += (out->per_seed[s] - mean) * (out->per_seed[s] - mean);
    double half = n_runs > 1 ? t975(n_runs - 1) * sqrt(ss / (double)(n_runs - 1) / (double)n_runs) : NAN;
    out->spread_low = mean - half;
    out->spread_high = mean + half;
    for (size_t s = 0; s < n_runs; s++) {
        free(own[s]);
        free(ref[s]);
    }
}

static bool has_arm(const struct run *r, const char *name)
{
    for (size_t k = 0; k < r->n_rows; k++)
        if (strcmp(r->rows[k].name, name) == 0)
            return true;
    return false;
}

/* A difference as printed, to 4 decimals: what rounds to zero is zero
 * (+0.0000, never bold), whatever the last bits of a subtraction say. */
static double shown(double v)
{
    return round(v * 1e4) / 1e4 + 0.0;
}

static void print_cell(const struct pooled *p, size_t n_runs)
{
    printf(" |");
    for (size_t s = 0; s < n_runs; s++)
        printf("%s%+.4f", s ? " / " : " ", shown(p->per_seed[s]));
    bool excludes = shown(p->low) > 0 || shown(p->high) < 0;
    printf(" | %s%+.4f [%+.4f, %+.4f]%s", excludes ? "**" : "", shown(p->diff), shown(p->low), shown(p->high),
           excludes ? "**" : "");
    if (n_runs > 1) {
        bool spread_excludes = shown(p->spread_low) > 0 || shown(p->spread_high) < 0;
        printf(" | %s[%+.4f, %+.4f]%s", spread_excludes ? "**" : "", shown(p->spread_low), shown(p->spread_high),
               spread_excludes ? "**" : "");
    } else {
        printf(" | -");
    }
}

int main(int argc, char **argv)
{
    size_t n_boot = 2000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bootstrap") == 0 && i + 1 < argc) {
            n_boot = strtoul(argv[++i], NULL, 10);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_fidelity_pool [--bootstrap N] OUT1 OUT2 ...\n"
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
        fail("no folders (usage: bench_fidelity_pool [--bootstrap N] OUT1 OUT2 ...)");
    /* Pairing items across seeds needs the same items in the same order. */
    size_t first_size;
    char path[4200];
    snprintf(path, sizeof path, "%s/heldout.jsonl", g_runs[0].dir);
    char *first = read_file(path, &first_size);
    for (size_t s = 1; s < g_n_runs; s++) {
        size_t size;
        snprintf(path, sizeof path, "%s/heldout.jsonl", g_runs[s].dir);
        char *other = read_file(path, &size);
        bool same = g_runs[s].n_items == g_runs[0].n_items && size == first_size && memcmp(first, other, size) == 0;
        free(other);
        if (!same) {
            free(first);
            fail("%s: its held-out items are not %s's (the runs must share heldout.jsonl)", path, g_runs[0].dir);
        }
    }
    free(first);

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
    for (size_t k = 0; k < g_runs[0].n_rows; k++) {
        const struct row *w = &g_runs[0].rows[k];
        if (strcmp(w->kind, "random") == 0 || strcmp(w->kind, "tokens") == 0)
            continue;
        if (k > 0 && strcmp(g_runs[0].rows[k - 1].name, w->name) == 0)
            continue; /* the arm's next fine-tuning seed */
        bool everywhere = true;
        for (size_t s = 1; s < g_n_runs; s++)
            everywhere = everywhere && has_arm(&g_runs[s], w->name);
        if (!everywhere) {
            fprintf(stderr, "bench_fidelity_pool: '%s' is not in every folder; left out\n", w->name);
            continue;
        }
        struct pooled vs_random, vs_tokens;
        pool_arm(g_runs, g_n_runs, w->name, "random", n_boot, &vs_random);
        pool_arm(g_runs, g_n_runs, w->name, "tokens", n_boot, &vs_tokens);
        printf("| %s |", w->name);
        for (size_t s = 0; s < g_n_runs; s++)
            printf("%s%.1f%%", s ? " / " : " ", corrupted(&g_runs[s], w->name));
        print_cell(&vs_random, g_n_runs);
        print_cell(&vs_tokens, g_n_runs);
        printf(" |\n");
    }
    free_runs();
    return 0;
}
