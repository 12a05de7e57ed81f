/*
 * charts.c - the report's charts (charts.h): learned weights, baselines,
 * search convergence, the combined score and each indicator selected
 * against rejected, and the Spearman heatmap. Per-row data is binned before
 * drawing, so the page does not grow with the pool.
 */
#include "report/charts.h"

#include "util/grow.h"
#include "util/stats.h"
#include "util/utf8.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *chart_name_of(const struct tmap_report_input *in, size_t j)
{
    return in->names[j] ? in->names[j] : "(unnamed)";
}

/* ---- chart 1: learned weights -------------------------------------------- */

static void weight_bar(struct html *h, const struct tmap_report_input *in, size_t j, double cx,
                       double bw, const struct scale *y)
{
    double w = in->weights[j];
    double zero = scale_at(y, 0);
    if (!isfinite(w)) {
        svg_text(h, cx, zero - 4, "tick", "middle", "n/a");
        return;
    }
    double end = scale_at(y, w);
    double top = fmin(zero, end);
    /* A zero weight still shows as a hairline, so no indicator looks absent. */
    double height = fmax(fabs(end - zero), 1.0);
    svg_rect_begin(h, w < 0 ? "bar neg" : "bar pos", cx - bw / 2, top, bw, height);
    html_put_s(h, "<title>");
    html_put_esc(h, chart_name_of(in, j));
    html_put_s(h, ": ");
    html_put_num(h, w, 4);
    html_put_s(h, "</title></rect>\n");
    svg_text_begin(h, cx, w < 0 ? top + height + 13 : top - 4, "value", "middle");
    html_put_num(h, w, 3);
    html_put_s(h, "</text>\n");
}

static void weight_range(const struct tmap_report_input *in, double *lo, double *hi)
{
    *lo = 0;
    *hi = 0;
    for (size_t j = 0; j < in->n_indicators; j++) {
        if (isfinite(in->weights[j])) {
            *lo = fmin(*lo, in->weights[j]);
            *hi = fmax(*hi, in->weights[j]);
        }
    }
    if (*hi == *lo)
        *hi = 1; /* all zero or missing: still an axis from 0 to 1 */
}

void chart_weights(struct html *h, const struct tmap_report_input *in)
{
    size_t d = in->n_indicators;
    bool rotate = d > 6; /* more names than fit side by side */
    const int left = 64, right = 16, top = 28, bottom = rotate ? 110 : 40, ht = 220 + top + bottom;
    svg_open(h, "chart-weights", CHART_W, ht, "learned indicator weights");
    if (d == 0) {
        svg_note(h, CHART_W / 2.0, ht / 2.0, "no indicators: nothing was weighted");
        svg_close(h);
        return;
    }
    struct scale y = { 0, 0, ht - bottom, top };
    weight_range(in, &y.lo, &y.hi);
    struct ticks t = svg_axis_range(&y.lo, &y.hi, 5);
    svg_y_grid(h, &y, &t, left, CHART_W - right);
    double slot = (CHART_W - left - right) / (double)d;
    for (size_t j = 0; j < d; j++) {
        double cx = left + slot * ((double)j + 0.5);
        weight_bar(h, in, j, cx, fmin(slot * 0.7, 80), &y);
        svg_label(h, cx, ht - bottom + 18, rotate ? "end" : "middle", rotate ? -35 : 0,
                  chart_name_of(in, j), rotate ? 18 : (size_t)fmax(slot / 7, 4));
    }
    svg_line(h, "axis", left, scale_at(&y, 0), CHART_W - right, scale_at(&y, 0));
    svg_close(h);
}

/* ---- chart 1b: baselines ------------------------------------------------ */

/* One row of the baselines chart: a label and its values (one dot each),
 * with a mean and a +/- 1 sd bar when there is more than one value. */
struct baseline_row {
    const char   *label;
    const double *v;
    size_t        n;
    const char   *cls;
};

static void baseline_dots(struct html *h, const struct baseline_row *r, const struct scale *x, double y)
{
    double mean = 0, ss = 0;
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (!isfinite(r->v[i]))
            continue;
        html_printf(h, "<circle class=\"%s\" r=\"4\"", r->cls);
        svg_put_attr(h, "cx", scale_at_within(x, r->v[i]));
        svg_put_attr(h, "cy", y);
        html_put_s(h, "><title>");
        html_put_esc(h, r->label);
        html_put_s(h, ": ");
        html_put_num(h, r->v[i], 5);
        html_put_s(h, "</title></circle>\n");
        mean += r->v[i];
        m++;
    }
    if (m < 2)
        return;
    mean /= (double)m;
    for (size_t i = 0; i < r->n; i++)
        if (isfinite(r->v[i]))
            ss += (r->v[i] - mean) * (r->v[i] - mean);
    double sd = sqrt(ss / (double)(m - 1));
    svg_line(h, "sdbar", scale_at_within(x, mean - sd), y + 9, scale_at_within(x, mean + sd), y + 9);
    svg_line(h, "meanmark", scale_at_within(x, mean), y + 4, scale_at_within(x, mean), y + 14);
}

void chart_baselines(struct html *h, const struct tmap_report_input *in)
{
    const struct tmap_baselines *b = in->baselines;
    size_t d = b ? b->d : 0, n_rows = 4 + d;
    const int left = 190, right = 24, top = 16, row_h = 26, bottom = 40;
    const int ht = top + bottom + row_h * (int)n_rows;
    svg_open(h, "chart-baselines", CHART_W, ht, "proxy values of the learned weights and the baselines");
    if (!b || b->verdict == TMAP_VERDICT_UNKNOWN) {
        svg_note(h, CHART_W / 2.0, ht / 2.0, "no baselines were measured");
        svg_close(h);
        return;
    }
    struct baseline_row *rows = calloc(n_rows, sizeof *rows);
    char (*names)[64] = calloc(d ? d : 1, sizeof *names);
    if (!rows || !names) {
        free(rows);
        free(names);
        svg_note(h, CHART_W / 2.0, ht / 2.0, "out of memory drawing the baselines");
        svg_close(h);
        return;
    }
    rows[0] = (struct baseline_row){ "learned, fresh draws", b->redraws, b->n_redraws, "learned" };
    rows[1] = (struct baseline_row){ "learned, as searched", &in->best_value, 1, "learned" };
    rows[2] = (struct baseline_row){ "random subsets", b->random, b->n_random, "random" };
    rows[3] = (struct baseline_row){ "equal weights", &b->equal, 1, "other" };
    for (size_t j = 0; j < d; j++) {
        snprintf(names[j], sizeof names[j], "%s alone", j < in->n_indicators ? chart_name_of(in, j) : "?");
        rows[4 + j] = (struct baseline_row){ names[j], &b->single[j], 1, "other" };
    }
    double lo = INFINITY, hi = -INFINITY;
    for (size_t r = 0; r < n_rows; r++)
        for (size_t i = 0; i < rows[r].n; i++)
            if (isfinite(rows[r].v[i])) {
                lo = fmin(lo, rows[r].v[i]);
                hi = fmax(hi, rows[r].v[i]);
            }
    if (!(lo <= hi))
        lo = hi = 0;
    struct scale x = { lo, hi, left, CHART_W - right };
    struct ticks t = svg_axis_range(&x.lo, &x.hi, 6);
    for (int k = 0; k < t.count; k++) {
        double v = t.first + k * t.step, px = scale_at(&x, v);
        svg_line(h, "grid", px, top, px, ht - bottom);
        svg_text_begin(h, px, ht - bottom + 16, "tick", "middle");
        html_put_num(h, v, t.decimals);
        html_put_s(h, "</text>\n");
    }
    for (size_t r = 0; r < n_rows; r++) {
        double y = top + row_h * ((double)r + 0.5);
        svg_label(h, left - 10, y + 4, "end", 0, rows[r].label, 26);
        baseline_dots(h, &rows[r], &x, y);
    }
    svg_text(h, (left + CHART_W - right) / 2.0, ht - 6, "tick", "middle", "proxy value (higher is better)");
    free(rows);
    free(names);
    svg_close(h);
}

/* ---- chart 2: search convergence ----------------------------------------- */

/* Finite range of the trace and the chosen value; false when there is none. */
static bool trace_range(const struct tmap_report_input *in, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < in->n_trace; i++) {
        if (isfinite(in->trace_values[i])) {
            *lo = fmin(*lo, in->trace_values[i]);
            *hi = fmax(*hi, in->trace_values[i]);
        }
    }
    if (*lo > *hi)
        return false;
    if (isfinite(in->best_value)) {
        *lo = fmin(*lo, in->best_value);
        *hi = fmax(*hi, in->best_value);
    }
    return true;
}

/* Integer ticks along the evaluation axis, with the axis line. */
static void trace_x_axis(struct html *h, const struct scale *x, size_t n, double base)
{
    svg_line(h, "axis", x->a, base, x->b, base);
    struct ticks t = svg_nice_ticks(1, n > 1 ? (double)n : 2, 8);
    double step = fmax(round(t.step), 1);
    for (double v = step > 1 ? step : 1; v <= (double)n; v += step) {
        svg_text_begin(h, scale_at(x, v), base + 16, "tick", "middle");
        html_put_num(h, v, 0);
        html_put_s(h, "</text>\n");
    }
    svg_text(h, (x->a + x->b) / 2, base + 34, "axis-title", "middle", "evaluation (in search order)");
}

/* The running maximum as a step line: proxy values are better when higher. */
static void best_so_far(struct html *h, const struct tmap_report_input *in, const struct scale *x,
                        const struct scale *y)
{
    double best = -INFINITY;
    html_put_s(h, "<path class=\"best\" d=\"");
    for (size_t i = 0; i < in->n_trace; i++) {
        double v = in->trace_values[i];
        if (!isfinite(v))
            continue;
        if (best == -INFINITY) {
            html_put_s(h, "M");
            html_put_num(h, scale_at(x, (double)i + 1), 1);
            html_put_s(h, " ");
        } else {
            html_put_s(h, " H");
            html_put_num(h, scale_at(x, (double)i + 1), 1);
            html_put_s(h, " V");
        }
        if (v > best || best == -INFINITY)
            best = v;
        html_put_num(h, scale_at(y, best), 1);
    }
    html_put_s(h, "\"><title>best so far</title></path>\n");
}

static void trace_point(struct html *h, const struct tmap_report_input *in, size_t i,
                        const struct scale *x, const struct scale *y)
{
    bool reused = in->trace_reused && in->trace_reused[i];
    html_printf(h, "<circle class=\"%s\"", reused ? "reused" : "fresh");
    svg_put_attr(h, "cx", scale_at(x, (double)i + 1));
    svg_put_attr(h, "cy", scale_at(y, in->trace_values[i]));
    html_printf(h, " r=\"%s\"><title>evaluation %zu: ", reused ? "4" : "3.5", i + 1);
    html_put_num(h, in->trace_values[i], 4);
    html_put_s(h, reused ? " (reused from the memo: no budget spent)" : "");
    html_put_s(h, "</title></circle>\n");
}

/* Past TRACE_CIRCLES points, one path per kind: zero-length round-capped
 * segments draw as dots, so the page stays light however long the search. */
static void trace_dots(struct html *h, const struct tmap_report_input *in, bool reused,
                       const struct scale *x, const struct scale *y)
{
    bool any = false;
    for (size_t i = 0; i < in->n_trace; i++) {
        bool r = in->trace_reused && in->trace_reused[i];
        if (r != reused || !isfinite(in->trace_values[i]))
            continue;
        if (!any) /* no empty d="": browsers report it as an error */
            html_printf(h, "<path class=\"dots %s\" d=\"", reused ? "reused" : "fresh");
        any = true;
        html_put_s(h, "M");
        html_put_num(h, scale_at(x, (double)i + 1), 1);
        html_put_s(h, " ");
        html_put_num(h, scale_at(y, in->trace_values[i]), 1);
        html_put_s(h, "h0");
    }
    if (any)
        html_put_s(h, "\"/>\n");
}

static void trace_points(struct html *h, const struct tmap_report_input *in, const struct scale *x,
                         const struct scale *y)
{
    if (in->n_trace > TRACE_CIRCLES) {
        trace_dots(h, in, false, x, y);
        trace_dots(h, in, true, x, y);
        return;
    }
    for (size_t i = 0; i < in->n_trace; i++)
        if (isfinite(in->trace_values[i]))
            trace_point(h, in, i, x, y);
}

static void trace_legend(struct html *h, double x, double y)
{
    html_printf(h, "<circle class=\"fresh\" r=\"3.5\"");
    svg_put_attr(h, "cx", x + 8);
    svg_put_attr(h, "cy", y);
    html_put_s(h, "/>\n");
    svg_text(h, x + 20, y + 4, "legend", "start", "evaluated");
    html_printf(h, "<circle class=\"reused\" r=\"4\"");
    svg_put_attr(h, "cx", x + 8);
    svg_put_attr(h, "cy", y + 20);
    html_put_s(h, "/>\n");
    svg_text(h, x + 20, y + 24, "legend", "start", "reused (memo)");
    svg_line(h, "best", x, y + 40, x + 16, y + 40);
    svg_text(h, x + 20, y + 44, "legend", "start", "best so far");
    svg_line(h, "chosen", x, y + 60, x + 16, y + 60);
    svg_text(h, x + 20, y + 64, "legend", "start", "chosen weights");
}

static void chosen_line(struct html *h, double value, const struct scale *x, const struct scale *y)
{
    if (!isfinite(value))
        return;
    double py = scale_at(y, value);
    html_printf(h, "<line class=\"chosen\"");
    svg_put_attr(h, "x1", x->a);
    svg_put_attr(h, "y1", py);
    svg_put_attr(h, "x2", x->b);
    svg_put_attr(h, "y2", py);
    html_put_s(h, "><title>chosen weights: ");
    html_put_num(h, value, 4);
    html_put_s(h, "</title></line>\n");
}

void chart_trace(struct html *h, const struct tmap_report_input *in)
{
    const int ht = 320, left = 64, right = 150, top = 24, bottom = 50;
    svg_open(h, "chart-trace", CHART_W, ht, "search convergence");
    struct scale y = { 0, 0, ht - bottom, top };
    if (!trace_range(in, &y.lo, &y.hi)) {
        svg_note(h, CHART_W / 2.0, ht / 2.0,
                 in->n_trace == 0 ? "no search evaluations were recorded"
                                  : "no evaluation gave a finite proxy value");
        svg_close(h);
        return;
    }
    struct ticks t = svg_axis_range(&y.lo, &y.hi, 5);
    struct scale x = { 0.5, (double)in->n_trace + 0.5, left, CHART_W - right };
    svg_y_grid(h, &y, &t, left, CHART_W - right);
    trace_x_axis(h, &x, in->n_trace, ht - bottom);
    svg_label(h, 14, (ht - bottom + top) / 2.0, "middle", -90, "proxy value", 40);
    chosen_line(h, in->best_value, &x, &y);
    best_so_far(h, in, &x, &y);
    trace_points(h, in, &x, &y);
    trace_legend(h, CHART_W - right + 16, top + 10);
    if (in->n_trace == 1)
        svg_note(h, (left + CHART_W - right) / 2.0, top + 14,
                 "a single evaluation: nothing to converge yet");
    svg_close(h);
}

/* ---- charts 3 and 4: distributions, selected vs rejected ----------------- */

struct hist {
    double lo, hi;              /* bin range (widened by 1 around a constant) */
    int n_bins;
    bool constant;              /* every present value equal */
    double smallest;            /* the smallest present value: a constant's value */
    bool cut_lo, cut_hi;        /* values lie beyond lo / hi, counted in the edge bins */
    size_t count[2][HIST_MAX_BINS]; /* [0] rejected, [1] selected */
    size_t total[2];
    double sum[2];              /* for the group means */
    size_t n_missing;
};

static int bin_of(const struct hist *hs, double v)
{
    double f = (v - hs->lo) / (hs->hi - hs->lo) * hs->n_bins;
    if (!(f < hs->n_bins)) /* the top edge, beyond it, or an overflowed span */
        return hs->n_bins - 1;
    return f < 0 ? 0 : (int)f;
}

/* The binning range: the 0.5th to 99.5th percentile of the present values,
 * so a handful of outliers (one 4k-token response among 200-token ones)
 * cannot squeeze everything else into one bin; values beyond fall into the
 * edge bins. When that range is empty but the values differ, min to max. */
static void hist_range(struct html *h, struct hist *hs, const double *v, size_t n)
{
    double *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) {
        h->failed = true;
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            sorted[m++] = v[i];
    tmap_sort_doubles(sorted, m);
    if (m > 0) {
        hs->lo = tmap_quantile_sorted(sorted, m, 0.005);
        hs->hi = tmap_quantile_sorted(sorted, m, 0.995);
        if (!(hs->hi > hs->lo)) {
            hs->lo = sorted[0];
            hs->hi = sorted[m - 1];
        }
        hs->constant = sorted[0] == sorted[m - 1];
        hs->smallest = sorted[0];
        hs->cut_lo = sorted[0] < hs->lo;
        hs->cut_hi = sorted[m - 1] > hs->hi;
    }
    free(sorted);
}

/* Bins v[0..n) by selection over one range shared by both groups. */
static void hist_fill(struct html *h, struct hist *hs, const double *v, size_t n, const bool *sel,
                      int n_bins)
{
    memset(hs, 0, sizeof *hs);
    hist_range(h, hs, v, n);
    hs->n_bins = n_bins;
    if (hs->constant) {
        /* Relative for large values, or v + 0.5 would round back to v. */
        double pad = fmax(0.5, fabs(hs->lo) * 1e-6);
        hs->n_bins = 1;
        hs->lo -= pad;
        hs->hi += pad;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            hs->n_missing++;
            continue;
        }
        int g = sel[i] ? 1 : 0;
        hs->count[g][bin_of(hs, v[i])]++;
        hs->total[g]++;
        hs->sum[g] += v[i];
    }
}

static double bin_share(const struct hist *hs, int g, int b)
{
    return hs->total[g] ? (double)hs->count[g][b] / (double)hs->total[g] : 0.0;
}

static double bin_edge(const struct hist *hs, int b)
{
    return hs->lo + (hs->hi - hs->lo) * b / hs->n_bins;
}

/* One group's histogram as a single outlined step shape. */
static void hist_path(struct html *h, const struct hist *hs, int g, const struct scale *x,
                      const struct scale *y)
{
    html_printf(h, "<path class=\"%s\" d=\"M", g ? "h-sel" : "h-rej");
    html_put_num(h, x->a, 1);
    html_put_s(h, " ");
    html_put_num(h, y->a, 1);
    for (int b = 0; b < hs->n_bins; b++) {
        html_put_s(h, " V");
        html_put_num(h, scale_at(y, bin_share(hs, g, b)), 1);
        html_put_s(h, " H");
        html_put_num(h, scale_at(x, bin_edge(hs, b + 1)), 1);
    }
    html_put_s(h, " V");
    html_put_num(h, y->a, 1);
    html_put_s(h, "Z\"/>\n");
}

/* Invisible full-height bins that carry the counts as tooltips. */
static void hist_hits(struct html *h, const struct hist *hs, const struct scale *x,
                      const struct scale *y)
{
    for (int b = 0; b < hs->n_bins; b++) {
        double xa = scale_at(x, bin_edge(hs, b)), xb = scale_at(x, bin_edge(hs, b + 1));
        svg_rect_begin(h, "hit", xa, y->b, xb - xa, y->a - y->b);
        html_put_s(h, "<title>");
        html_put_val(h, bin_edge(hs, b));
        html_put_s(h, " to ");
        html_put_val(h, bin_edge(hs, b + 1));
        html_printf(h, ": selected %zu (", hs->count[1][b]);
        html_put_pct(h, hs->count[1][b], hs->total[1]);
        html_printf(h, "), rejected %zu (", hs->count[0][b]);
        html_put_pct(h, hs->count[0][b], hs->total[0]);
        html_put_s(h, ")</title></rect>\n");
    }
}

static void hist_means(struct html *h, const struct hist *hs, const struct scale *x,
                       const struct scale *y)
{
    for (int g = 0; g < 2; g++) {
        if (!hs->total[g])
            continue;
        double mean = hs->sum[g] / (double)hs->total[g];
        double px = scale_at_within(x, mean);
        html_printf(h, "<line class=\"mean %s\"", g ? "m-sel" : "m-rej");
        svg_put_attr(h, "x1", px);
        svg_put_attr(h, "y1", y->a);
        svg_put_attr(h, "x2", px);
        svg_put_attr(h, "y2", y->b);
        html_printf(h, "><title>mean of the %s: ", g ? "selected" : "rejected");
        html_put_val(h, mean);
        html_put_s(h, "</title></line>\n");
    }
}

/* The x range's ends under the plot, or the single value of a constant. */
static void hist_x_labels(struct html *h, const struct hist *hs, double xa, double xb, double base)
{
    if (hs->constant) {
        svg_text_begin(h, (xa + xb) / 2, base + 14, "tick", "middle");
        html_put_s(h, "constant: ");
        html_put_val(h, hs->smallest);
        html_put_s(h, "</text>\n");
        return;
    }
    svg_text_begin(h, xa, base + 14, "tick", "start");
    html_put_s(h, hs->cut_lo ? "\xE2\x89\xA4 " : ""); /* the edge bin holds what lies below */
    html_put_val(h, hs->lo);
    html_put_s(h, "</text>\n");
    svg_text_begin(h, xb, base + 14, "tick", "end");
    html_put_s(h, hs->cut_hi ? "\xE2\x89\xA5 " : "");
    html_put_val(h, hs->hi);
    html_put_s(h, "</text>\n");
}

struct box {
    double x, y, w, h;
};

/* Draws the histogram inside b; returns the x scale for overlays, or
 * false (after drawing a note) when the column has no value at all. */
static bool hist_draw(struct html *h, const struct hist *hs, struct box b, struct scale *x_out)
{
    svg_rect_begin(h, "frame", b.x, b.y, b.w, b.h);
    html_put_s(h, "</rect>\n");
    if (hs->total[0] + hs->total[1] == 0) {
        svg_note(h, b.x + b.w / 2, b.y + b.h / 2,
                 hs->n_missing ? "all values missing" : "no rows");
        return false;
    }
    double peak = 0;
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < hs->n_bins; k++)
            peak = fmax(peak, bin_share(hs, g, k));
    struct scale x = { hs->lo, hs->hi, b.x + 1, b.x + b.w - 1 };
    struct scale y = { 0, peak > 0 ? peak * 1.08 : 1, b.y + b.h, b.y };
    for (int g = 0; g < 2; g++)
        if (hs->total[g])
            hist_path(h, hs, g, &x, &y);
    hist_means(h, hs, &x, &y);
    hist_hits(h, hs, &x, &y);
    hist_x_labels(h, hs, b.x, b.x + b.w, b.y + b.h);
    if (hs->n_missing) {
        svg_text_begin(h, b.x + b.w, b.y - 6, "tick", "end"); /* above the frame, clear of the bars */
        html_printf(h, "%zu missing</text>\n", hs->n_missing);
    }
    *x_out = x;
    return true;
}

static void hist_legend(struct html *h, double x, double y)
{
    svg_rect_begin(h, "h-sel", x, y - 9, 14, 10);
    html_put_s(h, "</rect>\n");
    svg_text(h, x + 20, y, "legend", "start", "selected");
    svg_rect_begin(h, "h-rej", x + 100, y - 9, 14, 10);
    html_put_s(h, "</rect>\n");
    svg_text(h, x + 120, y, "legend", "start", "rejected");
    svg_line(h, "mean m-sel", x + 212, y - 10, x + 212, y + 1);
    svg_text(h, x + 220, y, "legend", "start", "group means (dashed)");
}

/* The lowest combined score among the selected rows: the selection's edge. */
static double cutoff_of(const struct tmap_report_input *in)
{
    double cut = INFINITY;
    for (size_t i = 0; i < in->n_rows; i++)
        if (in->selected[i] && isfinite(in->combined[i]))
            cut = fmin(cut, in->combined[i]);
    return cut;
}

void chart_combined(struct html *h, const struct tmap_report_input *in)
{
    const int ht = 250;
    struct box b = { 40, 34, CHART_W - 80, ht - 34 - 30 };
    svg_open(h, "chart-combined", CHART_W, ht, "combined score, selected vs rejected");
    hist_legend(h, b.x, 18);
    struct hist hs;
    hist_fill(h, &hs, in->combined, in->n_rows, in->selected, HIST_BINS);
    struct scale x;
    double cut = cutoff_of(in);
    if (hist_draw(h, &hs, b, &x) && isfinite(cut) && !hs.constant) {
        double px = scale_at_within(&x, cut);
        svg_line(h, "cut", px, b.y, px, b.y + b.h);
        svg_text_begin(h, px, b.y - 6, "tick", "middle");
        html_put_s(h, "cut-off ");
        html_put_num(h, cut, 4);
        html_put_s(h, "</text>\n");
    }
    svg_close(h);
}

static void indicator_panel(struct html *h, const struct tmap_report_input *in, size_t j,
                            struct box cell)
{
    struct hist hs;
    hist_fill(h, &hs, in->raw + j * in->n_rows, in->n_rows, in->selected, PANEL_BINS);
    svg_label(h, cell.x, cell.y + 12, "start", 0, chart_name_of(in, j), 38);
    struct box b = { cell.x, cell.y + 20, cell.w, cell.h - 20 - 34 };
    struct scale x;
    hist_draw(h, &hs, b, &x);
}

void chart_indicators(struct html *h, const struct tmap_report_input *in)
{
    const double cell_w = (CHART_W - 20) / (double)PANEL_COLUMNS, cell_h = 170, top = 32;
    size_t rows = (in->n_indicators + PANEL_COLUMNS - 1) / PANEL_COLUMNS;
    int ht = (int)(top + (double)(rows ? rows : 1) * cell_h);
    svg_open(h, "chart-distributions", CHART_W, ht, "indicator distributions, selected vs rejected");
    if (in->n_indicators == 0) {
        svg_note(h, CHART_W / 2.0, ht / 2.0, "no indicators to show");
        svg_close(h);
        return;
    }
    hist_legend(h, 10, 18);
    for (size_t j = 0; j < in->n_indicators; j++) {
        struct box cell = { 10 + cell_w * (double)(j % PANEL_COLUMNS) + 8,
                            top + cell_h * (double)(j / PANEL_COLUMNS), cell_w - 24, cell_h };
        indicator_panel(h, in, j, cell);
    }
    svg_close(h);
}

/* ---- chart 5: Spearman correlations --------------------------------------- */

struct corr {
    size_t d;
    double *rho;    /* d x d, NaN where undefined */
    size_t *n_both; /* rows where both are present */
};

/* Workspace: each column's ranks over its own present rows, and one pair's
 * values and ranks over the rows where both are present. */
struct pair_work {
    double *col_ranks; /* d x n, column-major like raw, NaN where missing */
    size_t *n_valid;   /* present rows per column */
    double *xa, *xb, *ra, *rb;
    bool    failed;    /* a ranking ran out of memory */
};

static void column_ranks(const double *col, size_t n, struct pair_work *w, double *out,
                         size_t *n_valid)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(col[i]))
            w->xa[m++] = col[i];
    if (!tmap_average_ranks(w->xa, m, w->ra))
        w->failed = true;
    m = 0;
    for (size_t i = 0; i < n; i++)
        out[i] = isfinite(col[i]) ? w->ra[m++] : NAN;
    *n_valid = m;
}

/* Spearman's rho of columns a and b over the rows where both are present. */
static double spearman_pair(const struct tmap_report_input *in, size_t a, size_t b,
                            struct pair_work *w, size_t *m_out)
{
    size_t n = in->n_rows, m = 0;
    const double *ca = in->raw + a * n, *cb = in->raw + b * n;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(ca[i]) && isfinite(cb[i])) {
            w->xa[m] = ca[i];
            w->xb[m] = cb[i];
            w->ra[m] = w->col_ranks[a * n + i];
            w->rb[m] = w->col_ranks[b * n + i];
            m++;
        }
    }
    *m_out = m;
    if (m < 3) /* two points always correlate perfectly: not a measurement */
        return NAN;
    /* Only when missing values differ between the columns do the pair's rows
     * differ from each column's own, and only then must it be ranked afresh. */
    if ((m != w->n_valid[a] || m != w->n_valid[b]) &&
        (!tmap_average_ranks(w->xa, m, w->ra) || !tmap_average_ranks(w->xb, m, w->rb)))
        w->failed = true;
    return tmap_pearson(w->ra, w->rb, m);
}

static void pair_work_free(struct pair_work *w)
{
    free(w->col_ranks);
    free(w->n_valid);
    free(w->xa);
    free(w->xb);
    free(w->ra);
    free(w->rb);
}

/* Exact pairwise Spearman. Each column is sorted once; a pair needs its own
 * two sorts only when the columns miss values in different rows. */
static bool corr_compute(const struct tmap_report_input *in, struct corr *c)
{
    size_t d = in->n_indicators, n = in->n_rows, cap = n ? n : 1;
    c->d = d;
    c->rho = calloc(d * d, sizeof *c->rho);
    c->n_both = calloc(d * d, sizeof *c->n_both);
    struct pair_work w = { malloc(d * cap * sizeof(double)), calloc(d, sizeof(size_t)),
                           malloc(cap * sizeof(double)), malloc(cap * sizeof(double)),
                           malloc(cap * sizeof(double)), malloc(cap * sizeof(double)), false };
    bool ok = c->rho && c->n_both && w.col_ranks && w.n_valid && w.xa && w.xb && w.ra && w.rb;
    for (size_t j = 0; ok && j < d; j++)
        column_ranks(in->raw + j * n, n, &w, w.col_ranks + j * n, &w.n_valid[j]);
    for (size_t a = 0; ok && a < d; a++) {
        for (size_t b = a; b < d; b++) {
            size_t m;
            double r = spearman_pair(in, a, b, &w, &m);
            c->rho[a * d + b] = c->rho[b * d + a] = r;
            c->n_both[a * d + b] = c->n_both[b * d + a] = m;
        }
    }
    ok = ok && !w.failed;
    pair_work_free(&w);
    return ok;
}

/* Diverging blue (-1) - light grey (0) - red (+1). */
static void put_color(struct html *h, double rho)
{
    static const int neg[3] = { 0x21, 0x66, 0xac }, mid[3] = { 0xf7, 0xf7, 0xf7 },
                     pos[3] = { 0xb2, 0x18, 0x2b };
    const int *end = rho < 0 ? neg : pos;
    double t = fmin(fabs(rho), 1.0);
    int rgb[3];
    for (int k = 0; k < 3; k++)
        rgb[k] = (int)lround(mid[k] + (end[k] - mid[k]) * t);
    html_printf(h, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static void corr_cell(struct html *h, const struct tmap_report_input *in, const struct corr *c,
                      size_t a, size_t b, struct box cell)
{
    double rho = c->rho[a * c->d + b];
    html_put_s(h, "<rect class=\"cell\"");
    svg_put_attr(h, "x", cell.x);
    svg_put_attr(h, "y", cell.y);
    svg_put_attr(h, "width", cell.w);
    svg_put_attr(h, "height", cell.h);
    html_put_s(h, " fill=\"");
    if (isnan(rho))
        html_put_s(h, "#e2e8f0");
    else
        put_color(h, rho);
    html_put_s(h, "\"><title>");
    html_put_esc(h, chart_name_of(in, a));
    html_put_s(h, " / ");
    html_put_esc(h, chart_name_of(in, b));
    html_put_s(h, isnan(rho) ? ": undefined (under 3 rows with both, or a constant column)" : ": rho = ");
    if (!isnan(rho))
        html_put_num(h, rho, 3);
    html_printf(h, ", %zu rows with both</title></rect>\n", c->n_both[a * c->d + b]);
    if (cell.w < 30)
        return; /* too small for text: the tooltip carries the value */
    svg_text_begin(h, cell.x + cell.w / 2, cell.y + cell.h / 2 + 4,
               !isnan(rho) && fabs(rho) > 0.6 ? "cellv dark" : "cellv", "middle");
    html_put_num(h, rho, 2);
    html_put_s(h, "</text>\n");
}

static void corr_legend(struct html *h, double x, double y, double height)
{
    html_put_s(h, "<defs><linearGradient id=\"corr-gradient\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
             "<stop offset=\"0\" stop-color=\"#b2182b\"/><stop offset=\"0.5\" stop-color=\"#f7f7f7\"/>"
             "<stop offset=\"1\" stop-color=\"#2166ac\"/></linearGradient></defs>\n");
    html_put_s(h, "<rect class=\"legend-bar\" fill=\"url(#corr-gradient)\"");
    svg_put_attr(h, "x", x);
    svg_put_attr(h, "y", y);
    svg_put_attr(h, "width", 14);
    svg_put_attr(h, "height", height);
    html_put_s(h, "/>\n");
    svg_text(h, x + 20, y + 4, "tick", "start", "+1");
    svg_text(h, x + 20, y + height / 2 + 4, "tick", "start", "0");
    svg_text(h, x + 20, y + height + 4, "tick", "start", "\xE2\x88\x92" "1");
    svg_text(h, x - 2, y - 10, "legend", "start", "Spearman \xCF\x81");
    svg_rect_begin(h, "na", x, y + height + 16, 14, 14);
    html_put_s(h, "</rect>\n");
    svg_text(h, x + 20, y + height + 27, "tick", "start", "n/a");
}

static void corr_draw(struct html *h, const struct tmap_report_input *in, const struct corr *c,
                      double left, double top, double size)
{
    size_t d = c->d;
    for (size_t a = 0; a < d; a++) {
        double y = top + size * (double)a;
        svg_label(h, left - 6, y + size / 2 + 4, "end", 0, chart_name_of(in, a), 22);
        for (size_t b = 0; b < d; b++)
            corr_cell(h, in, c, a, b, (struct box){ left + size * (double)b, y, size - 1, size - 1 });
    }
    for (size_t b = 0; b < d; b++)
        svg_label(h, left + size * ((double)b + 0.5) + 4, top + size * (double)d + 10, "end", -45,
                  chart_name_of(in, b), COLUMN_LABEL_CHARS);
}

/* Height under the grid for the column names, rotated by 45 degrees: about
 * 6.5 px per character at 11 px, times sin 45. */
static double column_label_room(const struct tmap_report_input *in)
{
    size_t longest = 0;
    for (size_t j = 0; j < in->n_indicators; j++) {
        bool cut;
        const char *name = chart_name_of(in, j);
        size_t chars = tmap_utf8_count(name, html_utf8_prefix(name, COLUMN_LABEL_CHARS, &cut));
        longest = chars + cut > longest ? chars + cut : longest;
    }
    return 24 + 4.7 * (double)longest;
}

void chart_correlations(struct html *h, const struct tmap_report_input *in)
{
    const double left = 180, top = 30;
    size_t d = in->n_indicators;
    double size = d ? fmax(14, fmin(56, floor(560.0 / (double)d))) : 0;
    double grid = fmax(size * (double)d, 170);
    int ht = (int)(top + fmax(size * (double)d + column_label_room(in), grid) + 10);
    svg_open(h, "chart-correlations", CHART_W, ht, "indicator correlations (Spearman)");
    if (d == 0) {
        svg_note(h, CHART_W / 2.0, ht / 2.0, "no indicators to correlate");
        svg_close(h);
        return;
    }
    struct corr c = { 0 };
    if (!corr_compute(in, &c)) {
        h->failed = true;
    } else {
        corr_draw(h, in, &c, left, top, size);
        double legend_x = left + size * (double)d + 40, legend_h = fmin(grid - 70, 200);
        corr_legend(h, legend_x, top + 16, legend_h);
        if (in->n_rows < 3)
            svg_text(h, legend_x + 60, top + 16 + legend_h / 2, "note", "start",
                     "under 3 rows: no correlation can be measured");
    }
    free(c.rho);
    free(c.n_both);
    svg_close(h);
}
