/*
 * test_report.c - unit tests of report/report.c: a full report from
 * hand-made data (NaNs, a constant column, HTML specials in names, ids and
 * sample text), byte-for-byte determinism, degenerate inputs, a large pool
 * that must stay small on disk, and every error path.
 *
 * `test_report --sample PATH` writes the full report to PATH and exits: the
 * browser test (tests/cli/report_browser.sh) renders that file.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/report.h"
#include "util/utf8.h"

enum { N_ROWS = 300, N_IND = 6, N_TRACE = 30, N_SELECTED = 90 };

/* The weird strings the page must show escaped, and their escaped forms. */
#define NASTY_NAME "<b>&\"x'"
#define NASTY_NAME_ESC "&lt;b&gt;&amp;&quot;x&#39;"
#define SCRIPT_ESC "&lt;script&gt;alert(1)&lt;/script&gt;"
#define NASTY_ID_ESC "top&lt;i&gt;&amp;&quot;&#39;"

static char temp_dir[4096];

/* ---- helpers ------------------------------------------------------------ */

static const char *temp_path(const char *name)
{
    static char path[2][4400]; /* temp_dir, a slash and a d_name */
    static int turn;
    turn ^= 1;
    snprintf(path[turn], sizeof path[turn], "%s/%s", temp_dir, name);
    return path[turn];
}

static uint64_t rng_state;

static double uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    s[n] = '\0';
    if (len)
        *len = (size_t)n;
    return s;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t k = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        k++;
    return k;
}

#include "asserts.h"

#define assert_lacks(hay, needle)                                                                  \
    do {                                                                                           \
        if (strstr((hay), (needle)))                                                               \
            fail_msg("the report should not contain \"%s\"", (needle));                            \
    } while (0)

/* Five chart <svg> elements, each with at least one drawn child. */
static void assert_charts(const char *html)
{
    static const char *const shapes[] = { "<rect", "<path", "<circle", "<line", "<text" };
    size_t n = 0;
    for (const char *p = strstr(html, "<svg class=\"chart\""); p; p = strstr(p + 1, "<svg class=\"chart\"")) {
        const char *end = strstr(p, "</svg>");
        assert_non_null(end);
        bool drawn = false;
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            const char *s = strstr(p, shapes[k]);
            drawn = drawn || (s && s < end);
        }
        if (!drawn)
            fail_msg("chart %zu has no child element", n + 1);
        n++;
    }
    assert_int_equal(n, 6);
}

static void assert_no_script(const char *html)
{
    char *low = strdup(html);
    assert_non_null(low);
    for (char *p = low; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    bool found = strstr(low, "<script") != NULL;
    free(low);
    if (found)
        fail_msg("the report contains a <script element");
}

/* Writes the report, checks the call and the shared structure, returns the text. */
static char *write_report(const char *name, const struct tmap_report_input *in)
{
    struct tmap_error err = { 0 };
    const char *path = temp_path(name);
    if (tmap_report_write_html(path, in, &err) != TMAP_OK)
        fail_msg("report failed: %s", err.message);
    size_t len = 0;
    char *html = read_all(path, &len);
    assert_non_null(html);
    assert_int_equal(strlen(html), len);
    assert_true(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    assert_contains(html, "</html>\n");
    assert_true(tmap_utf8_valid(html, len, NULL));
    assert_charts(html);
    assert_no_script(html);
    return html;
}

static bool temp_files_left(void)
{
    DIR *d = opendir(temp_dir);
    assert_non_null(d);
    bool found = false;
    for (struct dirent *e; (e = readdir(d));)
        found = found || strstr(e->d_name, ".tmp.");
    closedir(d);
    return found;
}

/* ---- the fixture -------------------------------------------------------- */

static void put_long_text(FILE *f)
{
    /* 480 code points of one-, two- and three-byte characters, so the cut at
     * 400 lands among multi-byte ones. */
    for (int k = 0; k < 60; k++)
        fputs("caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD ", f);
}

/* A generic-format pool: record 0 (the best row) and record 1 (the worst)
 * carry markup in their id and text. */
static void write_pool(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"id\":\"top<i>&\\\"'\",\"prompt\":\"Say <script>alert(1)</script> & \\\"hi\\\"\","
          "\"response\":\"",
          f);
    put_long_text(f);
    fputs("\"}\n", f);
    fputs("{\"id\":\"bottom\",\"prompt\":\"What is 2+2?\",\"response\":\"<script>alert(1)</script>"
          "\\nline two\"}\n",
          f);
    for (int i = 2; i < N_ROWS; i++)
        fprintf(f, "{\"id\":\"s%03d\",\"prompt\":\"Question %d: how many?\",\"response\":\"%d "
                   "apples.\\n#### %d\"}\n",
                i, i, i * 3, i * 3);
    fclose(f);
}

struct fixture {
    const char *names[N_IND];
    double weights[N_IND];
    double raw[N_IND * N_ROWS];
    double combined[N_ROWS];
    bool selected[N_ROWS];
    double trace[N_TRACE];
    bool reused[N_TRACE];
    struct tmap_pool *pool;
};

static struct fixture fx;

static void make_columns(void)
{
    rng_state = 11;
    for (int i = 0; i < N_ROWS; i++) {
        double u = uniform();
        fx.raw[0 * N_ROWS + i] = 0.5 + 2 * u * u;                             /* loss */
        fx.raw[1 * N_ROWS + i] = i % 13 ? 0.6 + 0.5 * uniform() : NAN;        /* ifd */
        fx.raw[2 * N_ROWS + i] = 1 + 5 * uniform();                           /* quality */
        fx.raw[3 * N_ROWS + i] = i % 7 ? u + 0.3 * uniform() : NAN;           /* nasty */
        fx.raw[4 * N_ROWS + i] = 3.0;                                         /* constant */
        fx.raw[5 * N_ROWS + i] = floor(20 + 480 * uniform());                 /* length */
    }
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

static void make_selection(void)
{
    double sorted[N_ROWS];
    for (int i = 0; i < N_ROWS; i++) {
        double s = 0;
        for (int j = 0; j < N_IND; j++) {
            double v = fx.raw[j * N_ROWS + i];
            s += isfinite(v) ? fx.weights[j] * v / (j == 5 ? 100 : 1) : 0;
        }
        fx.combined[i] = i == 0 ? 10 : i == 1 ? -10 : s;
        sorted[i] = fx.combined[i];
    }
    qsort(sorted, N_ROWS, sizeof *sorted, cmp_desc);
    for (int i = 0; i < N_ROWS; i++)
        fx.selected[i] = fx.combined[i] >= sorted[N_SELECTED - 1];
}

static void make_trace(void)
{
    for (int i = 0; i < N_TRACE; i++) {
        fx.reused[i] = i % 4 == 3; /* the memo returns an earlier value */
        fx.trace[i] = fx.reused[i] ? fx.trace[i - 2]
                                   : -1.2 + 0.3 * (1 - exp(-i / 6.0)) + 0.03 * uniform();
    }
}

static int setup_fixture(void)
{
    static const char *const names[N_IND] = { "loss", "ifd", "quality", NASTY_NAME, "constant", "length" };
    static const double weights[N_IND] = { -0.25, 0.15, 0.3, 0.1, 0.0, 0.2 };
    memcpy(fx.names, names, sizeof names);
    memcpy(fx.weights, weights, sizeof weights);
    make_columns();
    make_selection();
    make_trace();
    snprintf(temp_dir, sizeof temp_dir, "%s/tmap-report.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(temp_dir))
        return -1;
    write_pool(temp_path("pool.jsonl"));
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_error err = { 0 };
    return tmap_pool_load(temp_path("pool.jsonl"), &pp, &fx.pool, &err) == TMAP_OK ? 0 : -1;
}

static int teardown_fixture(void)
{
    tmap_pool_free(fx.pool);
    DIR *d = opendir(temp_dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.')
            unlink(temp_path(e->d_name));
    if (d)
        closedir(d);
    rmdir(temp_dir);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return setup_fixture();
}

static int group_teardown(void **state)
{
    (void)state;
    return teardown_fixture();
}

static struct tmap_report_input full_input(void)
{
    struct tmap_report_input in = tmap_report_default_input();
    in.title = "tmap: GSM8K pool for tmap-llama-64x2 <test>";
    in.model_description = "llama 64x2 & friends";
    in.config_json = "{\"ratio\": 0.3, \"note\": \"</pre><script>alert(2)</script>\"}";
    in.n_indicators = N_IND;
    in.names = fx.names;
    in.weights = fx.weights;
    in.n_rows = N_ROWS;
    in.raw = fx.raw;
    in.combined = fx.combined;
    in.selected = fx.selected;
    in.n_trace = N_TRACE;
    in.trace_values = fx.trace;
    in.trace_reused = fx.reused;
    in.best_value = fx.trace[N_TRACE - 2];
    in.pool = fx.pool;
    return in;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_full_report(void **state)
{
    (void)state;
    struct tmap_report_input in = full_input();
    char *html = write_report("full.html", &in);
    assert_contains(html, "<title>tmap: GSM8K pool for tmap-llama-64x2 &lt;test&gt;</title>");
    assert_contains(html, "llama 64x2 &amp; friends");
    assert_contains(html, "300 samples");
    assert_contains(html, "90 (30.0%)");
    assert_contains(html, "30 evaluations, 7 reused");
    assert_contains(html, SCRIPT_ESC);
    assert_contains(html, NASTY_NAME_ESC);
    assert_lacks(html, NASTY_NAME);
    assert_contains(html, NASTY_ID_ESC);
    assert_contains(html, "&lt;/pre&gt;&lt;script&gt;alert(2)");
    /* 400 code points kept, then an ellipsis; the 401st would be "c". */
    assert_contains(html, "\xE4\xBD\xA0\xE5\xA5\xBD \xE2\x80\xA6</td>");
    assert_contains(html, "Spearman");
    assert_contains(html, "constant: 3.000");      /* the constant column's panel */
    assert_contains(html, "24 missing");           /* rows 0, 13, ..., 299: ifd */
    assert_contains(html, "43 missing");           /* rows 0, 7, ..., 294: the nasty one */
    assert_contains(html, "<title>loss: -0.2500</title>");
    assert_contains(html, "class=\"bar neg\"");
    assert_contains(html, "(reused from the memo: no budget spent)");
    assert_contains(html, "<h3>Best 5 by combined score</h3>");
    assert_contains(html, "<h3>Worst 5 by combined score</h3>");
    assert_contains(html, "<td class=\"id\">bottom</td>");
    /* Nothing to fetch: the only URLs are the SVG namespace's. */
    assert_int_equal(count_of(html, "https:"), 0);
    assert_int_equal(count_of(html, "http:"), count_of(html, "xmlns=\"http://www.w3.org/2000/svg\""));
    assert_false(temp_files_left());
    free(html);
}

/* The Baselines chart: one dot per random subset and redraw, the learned
 * and equal-weight values, one row per indicator alone, a mean +/- sd bar
 * where there are several values, and the verdict in the summary. */
static void test_baselines_chart(void **state)
{
    (void)state;
    struct tmap_report_input in = full_input();
    double single[N_IND], random[5] = { -2.7, -2.6, -2.65, -2.62, -2.58 }, redraws[4] = { -2.41, -2.42, -2.40, -2.43 };
    for (size_t j = 0; j < N_IND; j++)
        single[j] = -2.5 - 0.01 * (double)j;
    struct tmap_baselines b = {
        .equal = -2.55, .single = single, .d = N_IND, .random = random, .n_random = 5, .redraws = redraws,
        .n_redraws = 4, .random_mean = -2.63, .random_sd = 0.0464, .learned_mean = -2.415, .learned_sd = 0.0129,
        .z = 4.5, .verdict = TMAP_VERDICT_BEATS,
    };
    in.baselines = &b;
    in.n_duplicates = 7;
    in.model_knowledge = "held-out loss 1.130 bits/byte";
    char *html = write_report("baselines.html", &in);
    const char *chart = strstr(html, "id=\"chart-baselines\"");
    assert_non_null(chart);
    const char *end = strstr(chart, "</svg>");
    size_t dots = 0, bars = 0;
    for (const char *p = strstr(chart, "<circle"); p && p < end; p = strstr(p + 1, "<circle"))
        dots++;
    for (const char *p = strstr(chart, "class=\"sdbar\""); p && p < end; p = strstr(p + 1, "class=\"sdbar\""))
        bars++;
    assert_int_equal(dots, 4 + 1 + 5 + 1 + N_IND); /* redraws, as searched, random, equal, singles */
    assert_int_equal(bars, 2);                      /* redraws and random subsets */
    assert_contains(html, "beats random subsets by more than the noise");
    assert_contains(html, "exact duplicates kept out</span><span class=\"v\">7");
    assert_contains(html, "held-out loss 1.130 bits/byte");
    free(html);
}

static void test_deterministic(void **state)
{
    (void)state;
    struct tmap_report_input in = full_input();
    char *a = write_report("same-a.html", &in);
    char *b = write_report("same-b.html", &in);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

/* Rank correlations of monotone transforms: 1 and -1 exactly, also when a
 * missing value in one column leaves the other column's own ranks with a
 * gap (so they must be ranked afresh over the rows both have). */
static void test_correlation_values(void **state)
{
    (void)state;
    const char *names[3] = { "a", "b", "c" };
    const double weights[3] = { 0.5, 0.25, 0.25 };
    double raw[3 * 10], combined[10];
    bool selected[10];
    for (int i = 0; i < 10; i++) {
        raw[i] = i * i;            /* monotone in i: rank correlation exactly 1 */
        raw[10 + i] = i;
        raw[20 + i] = i == 5 ? NAN : -(double)i * i;
        combined[i] = i;
        selected[i] = i >= 7;
    }
    struct tmap_report_input in = tmap_report_default_input();
    in.n_indicators = 3;
    in.names = names;
    in.weights = weights;
    in.n_rows = 10;
    in.raw = raw;
    in.combined = combined;
    in.selected = selected;
    char *html = write_report("corr.html", &in);
    assert_contains(html, "a / b: rho = 1.000, 10 rows with both");
    assert_contains(html, "a / c: rho = -1.000, 9 rows with both");
    assert_contains(html, "b / c: rho = -1.000, 9 rows with both");
    assert_contains(html, "c / c: rho = 1.000, 9 rows with both");
    assert_contains(html, "no search evaluations were recorded");
    assert_contains(html, "<td class=\"id\">row 10</td>"); /* no pool: the best row by number */
    free(html);
}

/* One row, a constant and an all-missing column, a single evaluation, no pool. */
static void test_degenerate(void **state)
{
    (void)state;
    const char *names[2] = { "constant", "empty" };
    const double weights[2] = { 1.0, 0.0 };
    const double raw[2] = { 4.0, NAN };
    const double combined[1] = { 0.7 };
    const bool selected[1] = { true };
    const double trace[1] = { -0.5 };
    struct tmap_report_input in = tmap_report_default_input();
    in.n_indicators = 2;
    in.names = names;
    in.weights = weights;
    in.n_rows = 1;
    in.raw = raw;
    in.combined = combined;
    in.selected = selected;
    in.n_trace = 1;
    in.trace_values = trace;
    in.best_value = -0.5;
    char *html = write_report("degenerate.html", &in);
    assert_contains(html, "all values missing");
    assert_contains(html, "a single evaluation: nothing to converge yet");
    assert_contains(html, "under 3 rows: no correlation can be measured");
    assert_contains(html, "constant: 4.000");
    assert_contains(html, "<td class=\"id\">row 1</td>");
    assert_contains(html, "1 (100.0%)");
    free(html);
}

/* Nothing at all: no rows, no indicators, no trace, no examples asked for. */
static void test_empty(void **state)
{
    (void)state;
    struct tmap_report_input in = tmap_report_default_input();
    in.n_examples = 0;
    char *html = write_report("empty.html", &in);
    assert_contains(html, "no indicators: nothing was weighted");
    assert_contains(html, "no search evaluations were recorded");
    assert_contains(html, "no rows");
    assert_contains(html, "no indicators to show");
    assert_contains(html, "no indicators to correlate");
    assert_contains(html, "No samples were asked for.");
    assert_contains(html, "<title>tmap report</title>");
    assert_contains(html, "(none given)");
    free(html);
}

/* A trace of NaNs only, and weights that are all negative or missing. */
static void test_bad_trace_and_weights(void **state)
{
    (void)state;
    const char *names[2] = { "x", "y" };
    const double weights[2] = { -0.5, NAN };
    const double raw[4] = { 1, 2, NAN, NAN };
    const double combined[2] = { NAN, NAN };
    const bool selected[2] = { false, false };
    const double trace[3] = { NAN, NAN, NAN };
    struct tmap_report_input in = tmap_report_default_input();
    in.n_indicators = 2;
    in.names = names;
    in.weights = weights;
    in.n_rows = 2;
    in.raw = raw;
    in.combined = combined;
    in.selected = selected;
    in.n_trace = 3;
    in.trace_values = trace;
    char *html = write_report("bad-trace.html", &in);
    assert_contains(html, "no evaluation gave a finite proxy value");
    assert_contains(html, "No sample has a finite combined score.");
    assert_contains(html, "<title>x: -0.5000</title>");
    assert_contains(html, ">n/a</text>"); /* the missing weight */
    assert_contains(html, "0 (0.0%)");
    free(html);
}

/* Huge and tiny magnitudes: every coordinate stays a number, and a value
 * that rounds to zero never prints as "-0". */
static void test_extreme_values(void **state)
{
    (void)state;
    enum { N = 50 };
    const char *names[2] = { "big", "tiny" };
    const double weights[2] = { 1e6, -1e-9 };
    double raw[2 * N], combined[N];
    bool selected[N];
    for (int i = 0; i < N; i++) {
        raw[i] = 1e20;
        raw[N + i] = 1e-12 * i;
        combined[i] = i % 2 ? 1e15 + i : -1e15;
        selected[i] = i % 2;
    }
    const double trace[3] = { 1e12, 1e12 + 1, -0.0 };
    struct tmap_report_input in = tmap_report_default_input();
    in.n_indicators = 2;
    in.names = names;
    in.weights = weights;
    in.n_rows = N;
    in.raw = raw;
    in.combined = combined;
    in.selected = selected;
    in.n_trace = 3;
    in.trace_values = trace;
    in.best_value = 1e12 + 1;
    char *html = write_report("extreme.html", &in);
    assert_lacks(html, "=\"n/a\"");
    assert_lacks(html, "inf\"");
    assert_lacks(html, ">-0<");
    assert_contains(html, "<title>tiny: 0.0000</title>");
    assert_contains(html, "<title>big: 1000000.0000</title>");
    assert_contains(html, "constant: 1.000e20");
    free(html);
}

/* 100k rows and a long trace: the page must not grow with the pool. */
enum { BIG_N = 100000, BIG_D = 3, BIG_T = 1500 };

struct big_data {
    double raw[BIG_N * BIG_D], combined[BIG_N], trace[BIG_T];
    bool selected[BIG_N], reused[BIG_T];
};

static void fill_big(struct big_data *b)
{
    rng_state = 5;
    for (size_t i = 0; i < BIG_N; i++) {
        for (int j = 0; j < BIG_D; j++) /* each column misses other rows */
            b->raw[j * BIG_N + i] = i % 101 == (size_t)j ? NAN : uniform();
        b->combined[i] = uniform();
        b->selected[i] = b->combined[i] > 0.7;
    }
    for (int i = 0; i < BIG_T; i++) {
        b->trace[i] = uniform();
        b->reused[i] = i % 3 == 0;
    }
}

static void test_large_pool_stays_small(void **state)
{
    (void)state;
    const char *names[BIG_D] = { "u", "v", "w" };
    const double weights[BIG_D] = { 0.2, 0.3, 0.5 };
    struct big_data *b = malloc(sizeof *b);
    assert_non_null(b);
    fill_big(b);
    struct tmap_report_input in = tmap_report_default_input();
    in.n_indicators = BIG_D;
    in.names = names;
    in.weights = weights;
    in.n_rows = BIG_N;
    in.raw = b->raw;
    in.combined = b->combined;
    in.selected = b->selected;
    in.n_trace = BIG_T;
    in.trace_values = b->trace;
    in.trace_reused = b->reused;
    in.best_value = 0.9;
    char *html = write_report("large.html", &in);
    assert_true(strlen(html) < 120 * 1024);
    assert_contains(html, "class=\"dots fresh\"");
    assert_contains(html, "class=\"dots reused\"");
    assert_int_equal(count_of(html, "<circle"), 2); /* the legend's only */
    free(html);
    free(b);
}

static void expect_failure(const char *path, const struct tmap_report_input *in,
                           enum tmap_status want, const char *message)
{
    struct tmap_error err = { 0 };
    assert_int_equal(tmap_report_write_html(path, in, &err), want);
    assert_int_equal(err.status, want);
    if (!strstr(err.message, message))
        fail_msg("expected \"%s\" in \"%s\"", message, err.message);
}

static void test_errors(void **state)
{
    (void)state;
    struct tmap_report_input in = full_input();
    expect_failure(temp_path("x.html"), NULL, TMAP_ERR_USAGE, "the input is NULL");
    expect_failure(NULL, &in, TMAP_ERR_USAGE, "the path is NULL");
    in.combined = NULL;
    expect_failure(temp_path("x.html"), &in, TMAP_ERR_USAGE, "combined is NULL");
    in = full_input();
    in.trace_values = NULL;
    expect_failure(temp_path("x.html"), &in, TMAP_ERR_USAGE, "trace_values is NULL");
    in = full_input();
    in.n_rows = 10;
    expect_failure(temp_path("x.html"), &in, TMAP_ERR_USAGE, "the pool has 300 records but n_rows is 10");
    in = full_input();
    const char *bad = temp_path("no-such-dir/report.html");
    expect_failure(bad, &in, TMAP_ERR_IO, bad);
    assert_int_equal(access(temp_path("x.html"), F_OK), -1);
    assert_false(temp_files_left());
}

/* ---- entry ---------------------------------------------------------------- */

static int write_sample(const char *path)
{
    if (setup_fixture() != 0) {
        fprintf(stderr, "test_report: cannot build the fixture\n");
        return 1;
    }
    struct tmap_report_input in = full_input();
    struct tmap_error err = { 0 };
    enum tmap_status st = tmap_report_write_html(path, &in, &err);
    if (st != TMAP_OK)
        fprintf(stderr, "test_report: %s\n", err.message);
    teardown_fixture();
    return st == TMAP_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--sample") == 0)
        return write_sample(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_report),
        cmocka_unit_test(test_baselines_chart),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_correlation_values),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_bad_trace_and_weights),
        cmocka_unit_test(test_extreme_values),
        cmocka_unit_test(test_large_pool_stays_small),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
