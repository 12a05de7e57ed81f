/*
 * report.c - report.html: a summary, five inline-SVG charts (charts.c, drawn
 * with svg.c into html.c's buffer), the best and
 * worst samples and the configuration, on one page built in memory and
 * written atomically.
 *
 * Choices, also stated on the page so a reader need not find this file:
 *   - distributions are overlaid histograms on one binning shared by the
 *     selected and rejected rows, each group normalised to its own size:
 *     the selection is typically 30% of the pool, so raw counts would flatten
 *     its shape next to the rejected 70%;
 *   - correlations are Spearman's rho over the rows where both indicators
 *     are present: indicators such as length or loss are skewed, and the
 *     percentile-rank normalisation (docs/design.md section 3) uses only order;
 *   - every number is printed from integers (html_put_num, report/html.c), never with %f, so the
 *     bytes depend neither on the C locale (a decimal comma would break SVG
 *     coordinates) nor on the sign of a zero;
 *   - per-row data is binned before drawing, so a 100k-row pool gives a page
 *     of the same size as a 300-row one;
 *   - the page has no script at all and a Content-Security-Policy that
 *     forbids scripts and fetches, so even a bug in the escaping could not
 *     run data from the pool.
 */
#include "report/charts.h"
#include "report/report.h"

#include "util/atomic.h"
#include "util/error.h"
#include "util/grow.h"
#include "util/stats.h"
#include "util/utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the best and worst samples ------------------------------------------ */

/* A row and its combined score, for the ranking of samples. */
struct ranked {
    double v;
    size_t i;
};

/* Descending combined score, then ascending row: a stable, total order. */
static int cmp_score_desc(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static void sample_indicators(struct html *h, const struct tmap_report_input *in, size_t row)
{
    html_put_s(h, "<td class=\"ind\">");
    for (size_t j = 0; j < in->n_indicators && j < TABLE_INDICATORS; j++) {
        html_put_esc_trunc(h, chart_name_of(in, j), 24);
        html_put_s(h, ": ");
        html_put_val(h, in->raw[j * in->n_rows + row]);
        html_put_s(h, "<br>");
    }
    if (in->n_indicators > TABLE_INDICATORS)
        html_put_s(h, "\xE2\x80\xA6");
    html_put_s(h, "</td>");
}

/* The id, prompt and response cells, read from the pool when there is one;
 * a record that cannot be read says so in its row rather than failing the
 * whole report. */
static void sample_text(struct html *h, const struct tmap_report_input *in, size_t row)
{
    struct tmap_sample s;
    struct tmap_error e = { 0 };
    if (!in->pool) {
        html_printf(h, "<td class=\"id\">row %zu</td><td class=\"text muted\">(no pool given)</td>"
                "<td class=\"text muted\">(no pool given)</td>", row + 1);
        return;
    }
    if (tmap_pool_sample(in->pool, row, &s, &e) != TMAP_OK) {
        html_printf(h, "<td class=\"id\">row %zu</td><td class=\"text muted\" colspan=\"2\">", row + 1);
        html_put_esc(h, e.message);
        html_put_s(h, "</td>");
        tmap_sample_free(&s);
        return;
    }
    html_put_s(h, "<td class=\"id\">");
    html_put_esc(h, s.id);
    html_put_s(h, "</td><td class=\"text\">");
    html_put_esc_trunc(h, s.prompt, TEXT_CHARS);
    html_put_s(h, "</td><td class=\"text\">");
    html_put_esc_trunc(h, s.response, TEXT_CHARS);
    html_put_s(h, "</td>");
    tmap_sample_free(&s);
}

static void sample_row(struct html *h, const struct tmap_report_input *in, size_t rank, size_t row)
{
    html_printf(h, "<tr><td class=\"num\">%zu</td>", rank);
    sample_text(h, in, row);
    html_put_s(h, "<td class=\"num\">");
    html_put_num(h, in->combined[row], 4);
    html_printf(h, "</td><td>%s</td>", in->selected[row] ? "yes" : "no");
    sample_indicators(h, in, row);
    html_put_s(h, "</tr>\n");
}

static void sample_table(struct html *h, const struct tmap_report_input *in,
                         const struct ranked *order, size_t n, bool worst)
{
    size_t k = in->n_examples < n ? in->n_examples : n;
    html_printf(h, "<h3>%s %zu by combined score</h3>\n", worst ? "Worst" : "Best", k);
    html_put_s(h, "<table class=\"samples\"><thead><tr><th>#</th><th>id</th><th>prompt</th>"
             "<th>response</th><th>score</th><th>selected</th><th>indicators (raw)</th></tr>"
             "</thead><tbody>\n");
    for (size_t r = 0; r < k; r++)
        sample_row(h, in, r + 1, worst ? order[n - 1 - r].i : order[r].i);
    html_put_s(h, "</tbody></table>\n");
}

static void section_samples(struct html *h, const struct tmap_report_input *in)
{
    html_put_s(h, "<h2>Best and worst samples</h2>\n");
    struct ranked *order = malloc((in->n_rows ? in->n_rows : 1) * sizeof *order);
    if (!order) {
        h->failed = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < in->n_rows; i++)
        if (isfinite(in->combined[i]))
            order[n++] = (struct ranked){ in->combined[i], i };
    qsort(order, n, sizeof *order, cmp_score_desc);
    if (in->n_examples == 0 || n == 0) {
        html_printf(h, "<p class=\"muted\">%s</p>\n",
             in->n_examples == 0 ? "No samples were asked for." : "No sample has a finite combined score.");
    } else {
        html_printf(h, "<p class=\"muted\">Text cut at %d characters. Ties go to the earlier row.</p>\n",
             TEXT_CHARS);
        sample_table(h, in, order, n, false);
        sample_table(h, in, order, n, true);
    }
    free(order);
}

/* ---- the page ------------------------------------------------------------ */

static const char page_css[] =
    "body{font-family:\"DejaVu Sans\",Verdana,Arial,sans-serif;margin:0;background:#f5f6f8;"
    "color:#1a202c;line-height:1.4}\n"
    "main{max-width:920px;margin:0 auto;padding:20px}\n"
    "h1{font-size:1.45em;margin:0 0 4px}\n"
    "h2{font-size:1.1em;margin:28px 0 6px;padding-bottom:3px;border-bottom:1px solid #d9dee5}\n"
    "h3{font-size:.95em;margin:14px 0 6px}\n"
    ".muted,.sub{color:#5a6475}\n.sub{margin:0 0 14px}\n"
    ".summary{display:flex;flex-wrap:wrap;gap:8px}\n"
    ".stat{background:#fff;border:1px solid #d9dee5;border-radius:6px;padding:6px 12px}\n"
    ".stat .k{display:block;font-size:.72em;color:#5a6475;text-transform:uppercase;"
    "letter-spacing:.04em}\n.stat .v{font-size:1.1em;font-weight:bold}\n"
    "figure{background:#fff;border:1px solid #d9dee5;border-radius:6px;margin:8px 0;padding:8px}\n"
    "figcaption{font-size:.85em;color:#5a6475;margin:2px 4px 0}\n"
    "svg.chart{display:block;max-width:100%;height:auto;font-size:12px}\n"
    "svg text{fill:#2d3748}\nsvg .tick{fill:#5a6475;font-size:11px}\n"
    "svg .note{fill:#5a6475;font-style:italic;font-size:14px}\n"
    "svg .value,svg .legend,svg .label{font-size:11px}\nsvg .axis-title{font-size:12px}\n"
    ".grid{stroke:#edf0f4}\n.axis{stroke:#4a5568}\n"
    ".bar.pos{fill:#3182ce}\n.bar.neg{fill:#dd6b20}\n"
    ".fresh{fill:#3182ce}\n.reused{fill:#fff;stroke:#dd6b20;stroke-width:1.5}\n"
    ".dots{fill:none;stroke-width:5;stroke-linecap:round}\n.dots.fresh{stroke:#3182ce}\n"
    ".dots.reused{stroke:#dd6b20}\n"
    ".best{fill:none;stroke:#2f855a;stroke-width:2}\n"
    ".chosen{stroke:#805ad5;stroke-width:1.5;stroke-dasharray:6 4}\n"
    ".frame{fill:#fff;stroke:#d9dee5}\n"
    ".h-sel{fill:#3182ce;fill-opacity:.45;stroke:#2b6cb0}\n"
    ".h-rej{fill:#a0aec0;fill-opacity:.45;stroke:#718096}\n"
    ".mean{stroke-width:1.5;stroke-dasharray:3 2}\n.m-sel{stroke:#2b6cb0}\n.m-rej{stroke:#4a5568}\n"
    ".hit{fill:transparent}\n.hit:hover{fill:rgba(0,0,0,.07)}\n"
    ".cut{stroke:#c53030;stroke-width:1.5;stroke-dasharray:4 3}\n"
    ".na{fill:#e2e8f0}\n.cellv{font-size:11px}\nsvg .cellv.dark{fill:#fff}\n"
    ".legend-bar{stroke:#a0aec0}\n"
    "circle.learned{fill:#2f855a}\ncircle.random{fill:#a0aec0;stroke:#4a5568}\ncircle.other{fill:#3182ce}\n"
    ".sdbar{stroke:#4a5568;stroke-width:2}\n.meanmark{stroke:#1a202c;stroke-width:2}\n"
    "table{border-collapse:collapse;width:100%;background:#fff;font-size:.82em}\n"
    "th,td{border:1px solid #d9dee5;padding:4px 6px;vertical-align:top;text-align:left}\n"
    "th{background:#edf0f4}\ntd.num{text-align:right;white-space:nowrap}\n"
    "td.id{word-break:break-all;max-width:90px}\ntd.ind{white-space:nowrap;font-size:.92em}\n"
    "td.text{white-space:pre-wrap;word-break:break-word;max-width:260px}\n"
    "pre{background:#fff;border:1px solid #d9dee5;border-radius:6px;padding:8px;"
    "white-space:pre-wrap;word-break:break-word;font-size:.82em}\n"
    "footer{margin-top:28px;font-size:.8em;color:#5a6475}\n";

static void page_head(struct html *h, const char *title)
{
    html_put_s(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
             /* Nothing may run or be fetched: the page is meant to work offline,
              * and this also stops any data that escaped the escaping. */
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
             "style-src 'unsafe-inline'; img-src data:\">\n"
             "<link rel=\"icon\" href=\"data:,\">\n<title>");
    html_put_esc(h, title);
    html_put_s(h, "</title>\n<style>\n");
    html_put_s(h, page_css);
    html_put_s(h, "</style>\n</head>\n<body>\n<main>\n");
}

static void stat_begin(struct html *h, const char *key)
{
    html_printf(h, "<div class=\"stat\"><span class=\"k\">%s</span><span class=\"v\">", key);
}

static void stat_end(struct html *h)
{
    html_put_s(h, "</span></div>\n");
}

static size_t count_true(const bool *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++)
        k += v[i];
    return k;
}

static size_t count_missing(const struct tmap_report_input *in)
{
    size_t k = 0;
    for (size_t i = 0; i < in->n_indicators * in->n_rows; i++)
        k += !isfinite(in->raw[i]);
    return k;
}

static void section_summary(struct html *h, const struct tmap_report_input *in)
{
    size_t n_sel = count_true(in->selected, in->n_rows);
    html_put_s(h, "<section class=\"summary\">\n");
    stat_begin(h, "pool");
    html_printf(h, "%zu sample%s", in->n_rows, in->n_rows == 1 ? "" : "s");
    stat_end(h);
    stat_begin(h, "selected");
    html_printf(h, "%zu (", n_sel);
    html_put_pct(h, n_sel, in->n_rows);
    html_put_s(h, ")");
    stat_end(h);
    stat_begin(h, "best proxy value");
    html_put_num(h, in->best_value, 4);
    stat_end(h);
    stat_begin(h, "indicators");
    html_printf(h, "%zu", in->n_indicators);
    stat_end(h);
    stat_begin(h, "search");
    html_printf(h, "%zu evaluation%s, %zu reused%s", in->n_trace, in->n_trace == 1 ? "" : "s",
         count_true(in->trace_reused, in->n_trace),
         in->search_stalled ? "; " TMAP_SEARCH_STALLED_WORDS : "");
    stat_end(h);
    if (in->baselines) {
        char line[512];
        tmap_baselines_describe(in->baselines, line, sizeof line);
        stat_begin(h, "against random subsets");
        html_put_esc(h, line);
        stat_end(h);
    }
    if (in->advice) {
        stat_begin(h, "what may help");
        html_put_esc(h, in->advice);
        stat_end(h);
    }
    stat_begin(h, "exact duplicates kept out");
    html_printf(h, "%zu", in->n_duplicates);
    stat_end(h);
    if (in->model_knowledge) {
        stat_begin(h, "what the model knows");
        html_put_esc(h, in->model_knowledge);
        stat_end(h);
    }
    if (in->overlap_warning) {
        stat_begin(h, "validation in the pool: WARNING");
        html_put_esc(h, in->overlap_warning);
        stat_end(h);
    }
    if (in->context_warning) {
        stat_begin(h, "context: WARNING");
        html_put_esc(h, in->context_warning);
        stat_end(h);
    }
    stat_begin(h, "missing values");
    size_t missing = count_missing(in);
    html_printf(h, "%zu (", missing);
    html_put_pct(h, missing, in->n_indicators * in->n_rows);
    html_put_s(h, ")");
    stat_end(h);
    html_put_s(h, "</section>\n");
}

/* A chart in a <figure> with its heading and a caption saying how to read it. */
static void figure(struct html *h, const char *heading, const char *caption,
                   void (*draw)(struct html *, const struct tmap_report_input *),
                   const struct tmap_report_input *in)
{
    html_printf(h, "<h2>%s</h2>\n<figure>\n", heading);
    draw(h, in);
    html_printf(h, "<figcaption>%s</figcaption>\n</figure>\n", caption);
}

static void page_charts(struct html *h, const struct tmap_report_input *in)
{
    figure(h, "Learned weights",
           "One bar per indicator; a negative weight (signed search) hangs below the axis.",
           chart_weights, in);
    figure(h, "Baselines",
           "Proxy value of the learned weights against what could be had without them, all through "
           "the same proxy and memo: the learned subset under fresh demonstration draws (its noise), "
           "its value as the search saw it (a maximum, so biased up), random subsets of the same size, "
           "equal weights and each indicator alone. Bars: mean +/- 1 sd.",
           chart_baselines, in);
    figure(h, "Search convergence",
           "Proxy value of each evaluation in search order (higher is better). Hollow points were "
           "served from the memo because their weights selected an already evaluated subset; the "
           "step line is the best value so far, the dashed line the chosen weights.",
           chart_trace, in);
    figure(h, "Combined score",
           "Overlaid histograms on one shared binning, each group as a share of its own size; the "
           "red line is the lowest selected score. Bins span the 0.5th to 99.5th percentile: values "
           "beyond count in the edge bins (marked \xE2\x89\xA4 and \xE2\x89\xA5).",
           chart_combined, in);
    figure(h, "Indicator distributions",
           "Per indicator, overlaid histograms of the raw values on a binning shared by both groups, "
           "each group as a share of its own size, binned like the combined score; dashed lines are "
           "the group means; missing values (NaN) are left out and counted.",
           chart_indicators, in);
    figure(h, "Indicator correlations",
           "Spearman rank correlation over the rows where both indicators are present; hover a "
           "cell for the exact value and the number of rows.",
           chart_correlations, in);
}

static void page_body(struct html *h, const struct tmap_report_input *in, const char *title)
{
    html_put_s(h, "<h1>");
    html_put_esc(h, title);
    html_put_s(h, "</h1>\n<p class=\"sub\">");
    html_put_esc(h, in->model_description ? in->model_description : "");
    html_put_s(h, "</p>\n");
    section_summary(h, in);
    page_charts(h, in);
    section_samples(h, in);
    html_put_s(h, "<h2>Configuration</h2>\n<pre class=\"config\">");
    html_put_esc(h, in->config_json ? in->config_json : "(none given)");
    html_printf(h, "</pre>\n<footer>Written by tmap %s.</footer>\n</main>\n</body>\n</html>\n",
         TMAP_VERSION);
}

/* ---- checks and the file ------------------------------------------------- */

static enum tmap_status check_input(const struct tmap_report_input *in, struct tmap_error *err)
{
    const char *missing = NULL;
    if (in->n_indicators && !in->names)
        missing = "names";
    else if (in->n_indicators && !in->weights)
        missing = "weights";
    else if (in->n_indicators && in->n_rows && !in->raw)
        missing = "raw";
    else if (in->n_rows && !in->combined)
        missing = "combined";
    else if (in->n_rows && !in->selected)
        missing = "selected";
    else if (in->n_trace && !in->trace_values)
        missing = "trace_values";
    if (missing)
        return tmap_fail(err, TMAP_ERR_USAGE, "report: %s is NULL but the counts call for it", missing);
    if (in->n_indicators && in->n_rows > SIZE_MAX / sizeof(double) / in->n_indicators)
        return tmap_fail(err, TMAP_ERR_USAGE, "report: %zu rows x %zu indicators overflow",
                         in->n_rows, in->n_indicators);
    if (in->pool && tmap_pool_size(in->pool) != in->n_rows)
        return tmap_fail(err, TMAP_ERR_USAGE, "report: the pool has %zu records but n_rows is %zu",
                         tmap_pool_size(in->pool), in->n_rows);
    return TMAP_OK;
}

/* Beside the target, flushed to disk, then renamed: a reader never sees a
 * half-written report, and a failed write leaves the old one in place. */
static enum tmap_status write_atomic(const char *path, const char *data, size_t n,
                                     struct tmap_error *err)
{
    struct tmap_atomic_file a;
    enum tmap_status st = tmap_atomic_open(&a, path, "wb", err);
    if (st)
        return st;
    fwrite(data, 1, n, a.f); /* a short write shows at commit */
    return tmap_atomic_commit(&a, err);
}

struct tmap_report_input tmap_report_default_input(void)
{
    return (struct tmap_report_input){ .best_value = NAN, .n_examples = TMAP_REPORT_DEFAULT_EXAMPLES };
}

enum tmap_status tmap_report_write_html(const char *path, const struct tmap_report_input *in,
                                        struct tmap_error *err)
{
    if (!path || !in)
        return tmap_fail(err, TMAP_ERR_USAGE, "report: %s is NULL", path ? "the input" : "the path");
    enum tmap_status st = check_input(in, err);
    if (st != TMAP_OK)
        return st;
    const char *title = in->title ? in->title : "tmap report";
    struct html h = { 0 };
    page_head(&h, title);
    page_body(&h, in, title);
    if (h.failed) {
        free(h.data);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory building the report %s", path);
    }
    st = write_atomic(path, h.data, h.len, err);
    free(h.data);
    return st;
}
