/*
 * report.c - report.html: a summary, five inline-SVG charts, the best and
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
 *   - every number is printed from integers (put_num), never with %f, so the
 *     bytes depend neither on the C locale (a decimal comma would break SVG
 *     coordinates) nor on the sign of a zero;
 *   - per-row data is binned before drawing, so a 100k-row pool gives a page
 *     of the same size as a 300-row one;
 *   - the page has no script at all and a Content-Security-Policy that
 *     forbids scripts and fetches, so even a bug in the escaping could not
 *     run data from the pool.
 */
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

enum {
    CHART_W            = 880,  /* every chart's width in SVG pixels */
    TEXT_CHARS         = 400,  /* prompt and response shown per sample */
    TRACE_CIRCLES      = 1000, /* above this, trace points become one path */
    HIST_BINS          = 40,   /* the combined score */
    PANEL_BINS         = 20,   /* each indicator */
    HIST_MAX_BINS      = 40,
    PANEL_COLUMNS      = 3,
    TABLE_INDICATORS   = 12,   /* indicator values listed per sample */
    COLUMN_LABEL_CHARS = 22,   /* heatmap names before an ellipsis */
};

/* ---- the page buffer ----------------------------------------------------- */

struct html {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed: later writes are dropped, the call fails */
};

static void put_n(struct html *h, const char *s, size_t n)
{
    if (h->failed || n == 0)
        return;
    if (n > SIZE_MAX - h->len - 1 || !tmap_grow((void **)&h->data, &h->cap, h->len + n + 1, 1)) {
        h->failed = true;
        return;
    }
    memcpy(h->data + h->len, s, n);
    h->len += n;
    h->data[h->len] = '\0';
}

static void put_s(struct html *h, const char *s)
{
    put_n(h, s, strlen(s));
}

/* printf into the buffer; used for integers and fixed text only (see put_num). */
__attribute__((format(printf, 2, 3))) static void putf(struct html *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (h->failed)
        return;
    if (n < 0 || !tmap_grow((void **)&h->data, &h->cap, h->len + (size_t)n + 1, 1)) {
        h->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(h->data + h->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    h->len += (size_t)n;
}

static void put_num(struct html *h, double x, int decimals);

/* Magnitudes beyond fixed point: mantissa and exponent, still from integers. */
static void put_sci(struct html *h, double x)
{
    int e = (int)floor(log10(fabs(x)));
    put_num(h, x / pow(10.0, e), 3);
    putf(h, "e%d", e);
}

/* x with exactly `decimals` (0..6) digits after the point. Built from the
 * integer x * 10^decimals so that the locale cannot change the point and a
 * value that rounds to zero never prints as "-0.00". */
static void put_num(struct html *h, double x, int decimals)
{
    static const uint64_t scales[] = { 1, 10, 100, 1000, 10000, 100000, 1000000 };
    if (isnan(x)) {
        put_s(h, "n/a");
        return;
    }
    if (isinf(x)) {
        put_s(h, x > 0 ? "inf" : "-inf");
        return;
    }
    uint64_t scale = scales[decimals < 0 ? 0 : decimals > 6 ? 6 : decimals];
    double scaled = round(fabs(x) * (double)scale);
    if (scaled >= 1e15) {
        put_sci(h, x);
        return;
    }
    uint64_t v = (uint64_t)scaled;
    putf(h, "%s%" PRIu64, x < 0 && v != 0 ? "-" : "", v / scale);
    if (scale > 1)
        putf(h, ".%0*" PRIu64, decimals, v % scale);
}

/* Indicator values range from probabilities to token counts: about four
 * significant digits, without printing "512.0000". */
static void put_val(struct html *h, double x)
{
    double a = fabs(x);
    put_num(h, x, a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4);
}

/* A percentage of `part` in `whole` with one decimal. */
static void put_pct(struct html *h, size_t part, size_t whole)
{
    put_num(h, whole ? 100.0 * (double)part / (double)whole : 0.0, 1);
    put_s(h, "%");
}

static const char *escape_of(unsigned char c)
{
    switch (c) {
    case '&':  return "&amp;";
    case '<':  return "&lt;";
    case '>':  return "&gt;";
    case '"':  return "&quot;";
    case '\'': return "&#39;";
    case '\t': case '\n': case '\r': return NULL;
    default: break;
    }
    /* C0 controls and DEL are not allowed in HTML text, not even as
     * character references: show U+FFFD as a parser would. */
    return c < 0x20 || c == 0x7f ? "\xEF\xBF\xBD" : NULL;
}

/* s[0..n) with the five HTML specials escaped: safe in text and in quoted
 * attribute values alike. */
static void put_esc_n(struct html *h, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = escape_of((unsigned char)s[i]);
        if (!rep)
            continue;
        put_n(h, s + start, i - start);
        put_s(h, rep);
        start = i + 1;
    }
    put_n(h, s + start, n - start);
}

static void put_esc(struct html *h, const char *s)
{
    if (s)
        put_esc_n(h, s, strlen(s));
}

/* Bytes of s holding at most max_chars code points. The cut falls before a
 * byte that is not a continuation byte, so a multi-byte character is never
 * split (and invalid input cannot make it read past the terminator). */
static size_t utf8_prefix(const char *s, size_t max_chars, bool *cut)
{
    size_t chars = 0;
    for (size_t i = 0; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80)
            continue;
        if (chars == max_chars) {
            *cut = true;
            return i;
        }
        chars++;
    }
    *cut = false;
    return strlen(s);
}

/* The first max_chars code points of s, escaped, with an ellipsis when cut. */
static void put_esc_trunc(struct html *h, const char *s, size_t max_chars)
{
    if (!s)
        return;
    bool cut;
    put_esc_n(h, s, utf8_prefix(s, max_chars, &cut));
    if (cut)
        put_s(h, "\xE2\x80\xA6");
}

/* ---- scales and ticks ---------------------------------------------------- */

/* Maps data [lo, hi] (hi > lo) linearly onto pixels [a, b]. */
struct scale {
    double lo, hi;
    double a, b;
};

static double at(const struct scale *s, double v)
{
    return s->a + (v - s->lo) / (s->hi - s->lo) * (s->b - s->a);
}

/* As at(), with v held to the data range: a mark for a value beyond a
 * clipped range sits on the frame's edge instead of outside it. */
static double at_within(const struct scale *s, double v)
{
    return at(s, fmin(fmax(v, s->lo), s->hi));
}

struct ticks {
    double first, step;
    int count, decimals;
};

/* About `want` ticks at multiples of 1, 2 or 5 times a power of ten. */
static struct ticks nice_ticks(double lo, double hi, int want)
{
    double raw = (hi - lo) / want;
    if (!(raw > 0) || !isfinite(raw)) /* a span beyond double range: one tick */
        return (struct ticks){ .first = lo, .step = 1, .count = 1 };
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    struct ticks t = { .step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag };
    t.first = ceil(lo / t.step - 1e-9) * t.step;
    t.count = (int)fmax(0, fmin(floor((hi - t.first) / t.step + 1e-9) + 1, 50));
    int d = (int)ceil(-log10(t.step) - 1e-9);
    t.decimals = d < 0 ? 0 : d > 6 ? 6 : d;
    return t;
}

/* Widens a point range (constant data still gets an axis), then rounds both
 * ends out to the tick grid so the extreme values sit on labelled lines. */
static struct ticks axis_range(double *lo, double *hi, int want)
{
    if (!(*hi > *lo)) {
        double pad = *lo != 0 ? fabs(*lo) * 0.1 : 1.0;
        *lo -= pad;
        *hi += pad;
    }
    struct ticks t = nice_ticks(*lo, *hi, want);
    *lo = floor(*lo / t.step + 1e-9) * t.step;
    *hi = ceil(*hi / t.step - 1e-9) * t.step;
    return nice_ticks(*lo, *hi, want);
}

/* ---- SVG pieces ---------------------------------------------------------- */

static void put_attr(struct html *h, const char *name, double v)
{
    putf(h, " %s=\"", name);
    put_num(h, v, 1);
    put_s(h, "\"");
}

static void svg_open(struct html *h, const char *id, int w, int ht, const char *label)
{
    putf(h,
         "<svg class=\"chart\" id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
         "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n",
         id, w, ht, w, ht, label);
}

static void svg_close(struct html *h)
{
    put_s(h, "</svg>\n");
}

/* Opens <text> and leaves it open for the caller's escaped content. */
static void text_begin(struct html *h, double x, double y, const char *cls, const char *anchor)
{
    putf(h, "<text class=\"%s\"", cls);
    put_attr(h, "x", x);
    put_attr(h, "y", y);
    putf(h, " text-anchor=\"%s\">", anchor);
}

static void svg_text(struct html *h, double x, double y, const char *cls, const char *anchor,
                     const char *text)
{
    text_begin(h, x, y, cls, anchor);
    put_esc(h, text);
    put_s(h, "</text>\n");
}

/* The explanation drawn where a chart has nothing to show. */
static void svg_note(struct html *h, double x, double y, const char *text)
{
    svg_text(h, x, y, "note", "middle", text);
}

static void svg_line(struct html *h, const char *cls, double xa, double ya, double xb, double yb)
{
    putf(h, "<line class=\"%s\"", cls);
    put_attr(h, "x1", xa);
    put_attr(h, "y1", ya);
    put_attr(h, "x2", xb);
    put_attr(h, "y2", yb);
    put_s(h, "/>\n");
}

/* Writes <rect ...> without closing it: a <title> may follow. */
static void rect_begin(struct html *h, const char *cls, double x, double y, double w, double ht)
{
    putf(h, "<rect class=\"%s\"", cls);
    put_attr(h, "x", x);
    put_attr(h, "y", y);
    put_attr(h, "width", w);
    put_attr(h, "height", ht);
    put_s(h, ">");
}

/* A label of user text, shortened for display with the full text as its
 * tooltip; rotated labels turn about their anchor point. */
static void svg_label(struct html *h, double x, double y, const char *anchor, double rotate,
                      const char *text, size_t max_chars)
{
    putf(h, "<text class=\"label\"");
    put_attr(h, "x", x);
    put_attr(h, "y", y);
    putf(h, " text-anchor=\"%s\"", anchor);
    if (rotate != 0) {
        put_s(h, " transform=\"rotate(");
        put_num(h, rotate, 1);
        put_s(h, " ");
        put_num(h, x, 1);
        put_s(h, " ");
        put_num(h, y, 1);
        put_s(h, ")\"");
    }
    put_s(h, "><title>");
    put_esc(h, text);
    put_s(h, "</title>");
    put_esc_trunc(h, text, max_chars);
    put_s(h, "</text>\n");
}

/* Horizontal grid lines with their values on the left, x from xa to xb. */
static void y_grid(struct html *h, const struct scale *y, const struct ticks *t, double xa, double xb)
{
    for (int k = 0; k < t->count; k++) {
        double v = t->first + k * t->step;
        double py = at(y, v);
        svg_line(h, "grid", xa, py, xb, py);
        text_begin(h, xa - 6, py + 4, "tick", "end");
        put_num(h, v, t->decimals);
        put_s(h, "</text>\n");
    }
}

static const char *name_of(const struct tmap_report_input *in, size_t j)
{
    return in->names[j] ? in->names[j] : "(unnamed)";
}

/* ---- chart 1: learned weights -------------------------------------------- */

static void weight_bar(struct html *h, const struct tmap_report_input *in, size_t j, double cx,
                       double bw, const struct scale *y)
{
    double w = in->weights[j];
    double zero = at(y, 0);
    if (!isfinite(w)) {
        svg_text(h, cx, zero - 4, "tick", "middle", "n/a");
        return;
    }
    double end = at(y, w);
    double top = fmin(zero, end);
    /* A zero weight still shows as a hairline, so no indicator looks absent. */
    double height = fmax(fabs(end - zero), 1.0);
    rect_begin(h, w < 0 ? "bar neg" : "bar pos", cx - bw / 2, top, bw, height);
    put_s(h, "<title>");
    put_esc(h, name_of(in, j));
    put_s(h, ": ");
    put_num(h, w, 4);
    put_s(h, "</title></rect>\n");
    text_begin(h, cx, w < 0 ? top + height + 13 : top - 4, "value", "middle");
    put_num(h, w, 3);
    put_s(h, "</text>\n");
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

static void chart_weights(struct html *h, const struct tmap_report_input *in)
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
    struct ticks t = axis_range(&y.lo, &y.hi, 5);
    y_grid(h, &y, &t, left, CHART_W - right);
    double slot = (CHART_W - left - right) / (double)d;
    for (size_t j = 0; j < d; j++) {
        double cx = left + slot * ((double)j + 0.5);
        weight_bar(h, in, j, cx, fmin(slot * 0.7, 80), &y);
        svg_label(h, cx, ht - bottom + 18, rotate ? "end" : "middle", rotate ? -35 : 0,
                  name_of(in, j), rotate ? 18 : (size_t)fmax(slot / 7, 4));
    }
    svg_line(h, "axis", left, at(&y, 0), CHART_W - right, at(&y, 0));
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
        putf(h, "<circle class=\"%s\" r=\"4\"", r->cls);
        put_attr(h, "cx", at_within(x, r->v[i]));
        put_attr(h, "cy", y);
        put_s(h, "><title>");
        put_esc(h, r->label);
        put_s(h, ": ");
        put_num(h, r->v[i], 5);
        put_s(h, "</title></circle>\n");
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
    svg_line(h, "sdbar", at_within(x, mean - sd), y + 9, at_within(x, mean + sd), y + 9);
    svg_line(h, "meanmark", at_within(x, mean), y + 4, at_within(x, mean), y + 14);
}

static void chart_baselines(struct html *h, const struct tmap_report_input *in)
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
        snprintf(names[j], sizeof names[j], "%s alone", j < in->n_indicators ? name_of(in, j) : "?");
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
    struct ticks t = axis_range(&x.lo, &x.hi, 6);
    for (int k = 0; k < t.count; k++) {
        double v = t.first + k * t.step, px = at(&x, v);
        svg_line(h, "grid", px, top, px, ht - bottom);
        text_begin(h, px, ht - bottom + 16, "tick", "middle");
        put_num(h, v, t.decimals);
        put_s(h, "</text>\n");
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
    struct ticks t = nice_ticks(1, n > 1 ? (double)n : 2, 8);
    double step = fmax(round(t.step), 1);
    for (double v = step > 1 ? step : 1; v <= (double)n; v += step) {
        text_begin(h, at(x, v), base + 16, "tick", "middle");
        put_num(h, v, 0);
        put_s(h, "</text>\n");
    }
    svg_text(h, (x->a + x->b) / 2, base + 34, "axis-title", "middle", "evaluation (in search order)");
}

/* The running maximum as a step line: proxy values are better when higher. */
static void best_so_far(struct html *h, const struct tmap_report_input *in, const struct scale *x,
                        const struct scale *y)
{
    double best = -INFINITY;
    put_s(h, "<path class=\"best\" d=\"");
    for (size_t i = 0; i < in->n_trace; i++) {
        double v = in->trace_values[i];
        if (!isfinite(v))
            continue;
        if (best == -INFINITY) {
            put_s(h, "M");
            put_num(h, at(x, (double)i + 1), 1);
            put_s(h, " ");
        } else {
            put_s(h, " H");
            put_num(h, at(x, (double)i + 1), 1);
            put_s(h, " V");
        }
        if (v > best || best == -INFINITY)
            best = v;
        put_num(h, at(y, best), 1);
    }
    put_s(h, "\"><title>best so far</title></path>\n");
}

static void trace_point(struct html *h, const struct tmap_report_input *in, size_t i,
                        const struct scale *x, const struct scale *y)
{
    bool reused = in->trace_reused && in->trace_reused[i];
    putf(h, "<circle class=\"%s\"", reused ? "reused" : "fresh");
    put_attr(h, "cx", at(x, (double)i + 1));
    put_attr(h, "cy", at(y, in->trace_values[i]));
    putf(h, " r=\"%s\"><title>evaluation %zu: ", reused ? "4" : "3.5", i + 1);
    put_num(h, in->trace_values[i], 4);
    put_s(h, reused ? " (reused from the memo: no budget spent)" : "");
    put_s(h, "</title></circle>\n");
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
            putf(h, "<path class=\"dots %s\" d=\"", reused ? "reused" : "fresh");
        any = true;
        put_s(h, "M");
        put_num(h, at(x, (double)i + 1), 1);
        put_s(h, " ");
        put_num(h, at(y, in->trace_values[i]), 1);
        put_s(h, "h0");
    }
    if (any)
        put_s(h, "\"/>\n");
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
    putf(h, "<circle class=\"fresh\" r=\"3.5\"");
    put_attr(h, "cx", x + 8);
    put_attr(h, "cy", y);
    put_s(h, "/>\n");
    svg_text(h, x + 20, y + 4, "legend", "start", "evaluated");
    putf(h, "<circle class=\"reused\" r=\"4\"");
    put_attr(h, "cx", x + 8);
    put_attr(h, "cy", y + 20);
    put_s(h, "/>\n");
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
    double py = at(y, value);
    putf(h, "<line class=\"chosen\"");
    put_attr(h, "x1", x->a);
    put_attr(h, "y1", py);
    put_attr(h, "x2", x->b);
    put_attr(h, "y2", py);
    put_s(h, "><title>chosen weights: ");
    put_num(h, value, 4);
    put_s(h, "</title></line>\n");
}

static void chart_trace(struct html *h, const struct tmap_report_input *in)
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
    struct ticks t = axis_range(&y.lo, &y.hi, 5);
    struct scale x = { 0.5, (double)in->n_trace + 0.5, left, CHART_W - right };
    y_grid(h, &y, &t, left, CHART_W - right);
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

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
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
    qsort(sorted, m, sizeof *sorted, cmp_double);
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
    putf(h, "<path class=\"%s\" d=\"M", g ? "h-sel" : "h-rej");
    put_num(h, x->a, 1);
    put_s(h, " ");
    put_num(h, y->a, 1);
    for (int b = 0; b < hs->n_bins; b++) {
        put_s(h, " V");
        put_num(h, at(y, bin_share(hs, g, b)), 1);
        put_s(h, " H");
        put_num(h, at(x, bin_edge(hs, b + 1)), 1);
    }
    put_s(h, " V");
    put_num(h, y->a, 1);
    put_s(h, "Z\"/>\n");
}

/* Invisible full-height bins that carry the counts as tooltips. */
static void hist_hits(struct html *h, const struct hist *hs, const struct scale *x,
                      const struct scale *y)
{
    for (int b = 0; b < hs->n_bins; b++) {
        double xa = at(x, bin_edge(hs, b)), xb = at(x, bin_edge(hs, b + 1));
        rect_begin(h, "hit", xa, y->b, xb - xa, y->a - y->b);
        put_s(h, "<title>");
        put_val(h, bin_edge(hs, b));
        put_s(h, " to ");
        put_val(h, bin_edge(hs, b + 1));
        putf(h, ": selected %zu (", hs->count[1][b]);
        put_pct(h, hs->count[1][b], hs->total[1]);
        putf(h, "), rejected %zu (", hs->count[0][b]);
        put_pct(h, hs->count[0][b], hs->total[0]);
        put_s(h, ")</title></rect>\n");
    }
}

static void hist_means(struct html *h, const struct hist *hs, const struct scale *x,
                       const struct scale *y)
{
    for (int g = 0; g < 2; g++) {
        if (!hs->total[g])
            continue;
        double mean = hs->sum[g] / (double)hs->total[g];
        double px = at_within(x, mean);
        putf(h, "<line class=\"mean %s\"", g ? "m-sel" : "m-rej");
        put_attr(h, "x1", px);
        put_attr(h, "y1", y->a);
        put_attr(h, "x2", px);
        put_attr(h, "y2", y->b);
        putf(h, "><title>mean of the %s: ", g ? "selected" : "rejected");
        put_val(h, mean);
        put_s(h, "</title></line>\n");
    }
}

/* The x range's ends under the plot, or the single value of a constant. */
static void hist_x_labels(struct html *h, const struct hist *hs, double xa, double xb, double base)
{
    if (hs->constant) {
        text_begin(h, (xa + xb) / 2, base + 14, "tick", "middle");
        put_s(h, "constant: ");
        put_val(h, hs->smallest);
        put_s(h, "</text>\n");
        return;
    }
    text_begin(h, xa, base + 14, "tick", "start");
    put_s(h, hs->cut_lo ? "\xE2\x89\xA4 " : ""); /* the edge bin holds what lies below */
    put_val(h, hs->lo);
    put_s(h, "</text>\n");
    text_begin(h, xb, base + 14, "tick", "end");
    put_s(h, hs->cut_hi ? "\xE2\x89\xA5 " : "");
    put_val(h, hs->hi);
    put_s(h, "</text>\n");
}

struct box {
    double x, y, w, h;
};

/* Draws the histogram inside b; returns the x scale for overlays, or
 * false (after drawing a note) when the column has no value at all. */
static bool hist_draw(struct html *h, const struct hist *hs, struct box b, struct scale *x_out)
{
    rect_begin(h, "frame", b.x, b.y, b.w, b.h);
    put_s(h, "</rect>\n");
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
        text_begin(h, b.x + b.w, b.y - 6, "tick", "end"); /* above the frame, clear of the bars */
        putf(h, "%zu missing</text>\n", hs->n_missing);
    }
    *x_out = x;
    return true;
}

static void hist_legend(struct html *h, double x, double y)
{
    rect_begin(h, "h-sel", x, y - 9, 14, 10);
    put_s(h, "</rect>\n");
    svg_text(h, x + 20, y, "legend", "start", "selected");
    rect_begin(h, "h-rej", x + 100, y - 9, 14, 10);
    put_s(h, "</rect>\n");
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

static void chart_combined(struct html *h, const struct tmap_report_input *in)
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
        double px = at_within(&x, cut);
        svg_line(h, "cut", px, b.y, px, b.y + b.h);
        text_begin(h, px, b.y - 6, "tick", "middle");
        put_s(h, "cut-off ");
        put_num(h, cut, 4);
        put_s(h, "</text>\n");
    }
    svg_close(h);
}

static void indicator_panel(struct html *h, const struct tmap_report_input *in, size_t j,
                            struct box cell)
{
    struct hist hs;
    hist_fill(h, &hs, in->raw + j * in->n_rows, in->n_rows, in->selected, PANEL_BINS);
    svg_label(h, cell.x, cell.y + 12, "start", 0, name_of(in, j), 38);
    struct box b = { cell.x, cell.y + 20, cell.w, cell.h - 20 - 34 };
    struct scale x;
    hist_draw(h, &hs, b, &x);
}

static void chart_indicators(struct html *h, const struct tmap_report_input *in)
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
    putf(h, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static void corr_cell(struct html *h, const struct tmap_report_input *in, const struct corr *c,
                      size_t a, size_t b, struct box cell)
{
    double rho = c->rho[a * c->d + b];
    put_s(h, "<rect class=\"cell\"");
    put_attr(h, "x", cell.x);
    put_attr(h, "y", cell.y);
    put_attr(h, "width", cell.w);
    put_attr(h, "height", cell.h);
    put_s(h, " fill=\"");
    if (isnan(rho))
        put_s(h, "#e2e8f0");
    else
        put_color(h, rho);
    put_s(h, "\"><title>");
    put_esc(h, name_of(in, a));
    put_s(h, " / ");
    put_esc(h, name_of(in, b));
    put_s(h, isnan(rho) ? ": undefined (under 3 rows with both, or a constant column)" : ": rho = ");
    if (!isnan(rho))
        put_num(h, rho, 3);
    putf(h, ", %zu rows with both</title></rect>\n", c->n_both[a * c->d + b]);
    if (cell.w < 30)
        return; /* too small for text: the tooltip carries the value */
    text_begin(h, cell.x + cell.w / 2, cell.y + cell.h / 2 + 4,
               !isnan(rho) && fabs(rho) > 0.6 ? "cellv dark" : "cellv", "middle");
    put_num(h, rho, 2);
    put_s(h, "</text>\n");
}

static void corr_legend(struct html *h, double x, double y, double height)
{
    put_s(h, "<defs><linearGradient id=\"corr-gradient\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
             "<stop offset=\"0\" stop-color=\"#b2182b\"/><stop offset=\"0.5\" stop-color=\"#f7f7f7\"/>"
             "<stop offset=\"1\" stop-color=\"#2166ac\"/></linearGradient></defs>\n");
    put_s(h, "<rect class=\"legend-bar\" fill=\"url(#corr-gradient)\"");
    put_attr(h, "x", x);
    put_attr(h, "y", y);
    put_attr(h, "width", 14);
    put_attr(h, "height", height);
    put_s(h, "/>\n");
    svg_text(h, x + 20, y + 4, "tick", "start", "+1");
    svg_text(h, x + 20, y + height / 2 + 4, "tick", "start", "0");
    svg_text(h, x + 20, y + height + 4, "tick", "start", "\xE2\x88\x92" "1");
    svg_text(h, x - 2, y - 10, "legend", "start", "Spearman \xCF\x81");
    rect_begin(h, "na", x, y + height + 16, 14, 14);
    put_s(h, "</rect>\n");
    svg_text(h, x + 20, y + height + 27, "tick", "start", "n/a");
}

static void corr_draw(struct html *h, const struct tmap_report_input *in, const struct corr *c,
                      double left, double top, double size)
{
    size_t d = c->d;
    for (size_t a = 0; a < d; a++) {
        double y = top + size * (double)a;
        svg_label(h, left - 6, y + size / 2 + 4, "end", 0, name_of(in, a), 22);
        for (size_t b = 0; b < d; b++)
            corr_cell(h, in, c, a, b, (struct box){ left + size * (double)b, y, size - 1, size - 1 });
    }
    for (size_t b = 0; b < d; b++)
        svg_label(h, left + size * ((double)b + 0.5) + 4, top + size * (double)d + 10, "end", -45,
                  name_of(in, b), COLUMN_LABEL_CHARS);
}

/* Height under the grid for the column names, rotated by 45 degrees: about
 * 6.5 px per character at 11 px, times sin 45. */
static double column_label_room(const struct tmap_report_input *in)
{
    size_t longest = 0;
    for (size_t j = 0; j < in->n_indicators; j++) {
        bool cut;
        const char *name = name_of(in, j);
        size_t chars = tmap_utf8_count(name, utf8_prefix(name, COLUMN_LABEL_CHARS, &cut));
        longest = chars + cut > longest ? chars + cut : longest;
    }
    return 24 + 4.7 * (double)longest;
}

static void chart_correlations(struct html *h, const struct tmap_report_input *in)
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
    put_s(h, "<td class=\"ind\">");
    for (size_t j = 0; j < in->n_indicators && j < TABLE_INDICATORS; j++) {
        put_esc_trunc(h, name_of(in, j), 24);
        put_s(h, ": ");
        put_val(h, in->raw[j * in->n_rows + row]);
        put_s(h, "<br>");
    }
    if (in->n_indicators > TABLE_INDICATORS)
        put_s(h, "\xE2\x80\xA6");
    put_s(h, "</td>");
}

/* The id, prompt and response cells, read from the pool when there is one;
 * a record that cannot be read says so in its row rather than failing the
 * whole report. */
static void sample_text(struct html *h, const struct tmap_report_input *in, size_t row)
{
    struct tmap_sample s;
    struct tmap_error e = { 0 };
    if (!in->pool) {
        putf(h, "<td class=\"id\">row %zu</td><td class=\"text muted\">(no pool given)</td>"
                "<td class=\"text muted\">(no pool given)</td>", row + 1);
        return;
    }
    if (tmap_pool_sample(in->pool, row, &s, &e) != TMAP_OK) {
        putf(h, "<td class=\"id\">row %zu</td><td class=\"text muted\" colspan=\"2\">", row + 1);
        put_esc(h, e.message);
        put_s(h, "</td>");
        tmap_sample_clear(&s);
        return;
    }
    put_s(h, "<td class=\"id\">");
    put_esc(h, s.id);
    put_s(h, "</td><td class=\"text\">");
    put_esc_trunc(h, s.prompt, TEXT_CHARS);
    put_s(h, "</td><td class=\"text\">");
    put_esc_trunc(h, s.response, TEXT_CHARS);
    put_s(h, "</td>");
    tmap_sample_clear(&s);
}

static void sample_row(struct html *h, const struct tmap_report_input *in, size_t rank, size_t row)
{
    putf(h, "<tr><td class=\"num\">%zu</td>", rank);
    sample_text(h, in, row);
    put_s(h, "<td class=\"num\">");
    put_num(h, in->combined[row], 4);
    putf(h, "</td><td>%s</td>", in->selected[row] ? "yes" : "no");
    sample_indicators(h, in, row);
    put_s(h, "</tr>\n");
}

static void sample_table(struct html *h, const struct tmap_report_input *in,
                         const struct ranked *order, size_t n, bool worst)
{
    size_t k = in->n_examples < n ? in->n_examples : n;
    putf(h, "<h3>%s %zu by combined score</h3>\n", worst ? "Worst" : "Best", k);
    put_s(h, "<table class=\"samples\"><thead><tr><th>#</th><th>id</th><th>prompt</th>"
             "<th>response</th><th>score</th><th>selected</th><th>indicators (raw)</th></tr>"
             "</thead><tbody>\n");
    for (size_t r = 0; r < k; r++)
        sample_row(h, in, r + 1, worst ? order[n - 1 - r].i : order[r].i);
    put_s(h, "</tbody></table>\n");
}

static void section_samples(struct html *h, const struct tmap_report_input *in)
{
    put_s(h, "<h2>Best and worst samples</h2>\n");
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
        putf(h, "<p class=\"muted\">%s</p>\n",
             in->n_examples == 0 ? "No samples were asked for." : "No sample has a finite combined score.");
    } else {
        putf(h, "<p class=\"muted\">Text cut at %d characters. Ties go to the earlier row.</p>\n",
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
    put_s(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
             /* Nothing may run or be fetched: the page is meant to work offline,
              * and this also stops any data that escaped the escaping. */
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
             "style-src 'unsafe-inline'; img-src data:\">\n"
             "<link rel=\"icon\" href=\"data:,\">\n<title>");
    put_esc(h, title);
    put_s(h, "</title>\n<style>\n");
    put_s(h, page_css);
    put_s(h, "</style>\n</head>\n<body>\n<main>\n");
}

static void stat_begin(struct html *h, const char *key)
{
    putf(h, "<div class=\"stat\"><span class=\"k\">%s</span><span class=\"v\">", key);
}

static void stat_end(struct html *h)
{
    put_s(h, "</span></div>\n");
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
    put_s(h, "<section class=\"summary\">\n");
    stat_begin(h, "pool");
    putf(h, "%zu sample%s", in->n_rows, in->n_rows == 1 ? "" : "s");
    stat_end(h);
    stat_begin(h, "selected");
    putf(h, "%zu (", n_sel);
    put_pct(h, n_sel, in->n_rows);
    put_s(h, ")");
    stat_end(h);
    stat_begin(h, "best proxy value");
    put_num(h, in->best_value, 4);
    stat_end(h);
    stat_begin(h, "indicators");
    putf(h, "%zu", in->n_indicators);
    stat_end(h);
    stat_begin(h, "search");
    putf(h, "%zu evaluation%s, %zu reused", in->n_trace, in->n_trace == 1 ? "" : "s",
         count_true(in->trace_reused, in->n_trace));
    stat_end(h);
    if (in->baselines) {
        char line[256];
        tmap_baselines_describe(in->baselines, line, sizeof line);
        stat_begin(h, "against random subsets");
        put_esc(h, line);
        stat_end(h);
    }
    stat_begin(h, "exact duplicates kept out");
    putf(h, "%zu", in->n_duplicates);
    stat_end(h);
    if (in->model_knowledge) {
        stat_begin(h, "what the model knows");
        put_esc(h, in->model_knowledge);
        stat_end(h);
    }
    stat_begin(h, "missing values");
    size_t missing = count_missing(in);
    putf(h, "%zu (", missing);
    put_pct(h, missing, in->n_indicators * in->n_rows);
    put_s(h, ")");
    stat_end(h);
    put_s(h, "</section>\n");
}

/* A chart in a <figure> with its heading and a caption saying how to read it. */
static void figure(struct html *h, const char *heading, const char *caption,
                   void (*draw)(struct html *, const struct tmap_report_input *),
                   const struct tmap_report_input *in)
{
    putf(h, "<h2>%s</h2>\n<figure>\n", heading);
    draw(h, in);
    putf(h, "<figcaption>%s</figcaption>\n</figure>\n", caption);
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
    put_s(h, "<h1>");
    put_esc(h, title);
    put_s(h, "</h1>\n<p class=\"sub\">");
    put_esc(h, in->model_description ? in->model_description : "");
    put_s(h, "</p>\n");
    section_summary(h, in);
    page_charts(h, in);
    section_samples(h, in);
    put_s(h, "<h2>Configuration</h2>\n<pre class=\"config\">");
    put_esc(h, in->config_json ? in->config_json : "(none given)");
    putf(h, "</pre>\n<footer>Written by tmap %s.</footer>\n</main>\n</body>\n</html>\n",
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
