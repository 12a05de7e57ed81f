/*
 * svg.c - scales, ticks and SVG elements for the report's charts (svg.h).
 */
#include "report/svg.h"

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

/* ---- scales and ticks ---------------------------------------------------- */


double scale_at(const struct scale *s, double v)
{
    return s->a + (v - s->lo) / (s->hi - s->lo) * (s->b - s->a);
}

/* As scale_at(), with v held to the data range: a mark for a value beyond a
 * clipped range sits on the frame's edge instead of outside it. */
double scale_at_within(const struct scale *s, double v)
{
    return scale_at(s, fmin(fmax(v, s->lo), s->hi));
}


/* About `want` ticks at multiples of 1, 2 or 5 times a power of ten. */
struct ticks svg_nice_ticks(double lo, double hi, int want)
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
struct ticks svg_axis_range(double *lo, double *hi, int want)
{
    if (!(*hi > *lo)) {
        double pad = *lo != 0 ? fabs(*lo) * 0.1 : 1.0;
        *lo -= pad;
        *hi += pad;
    }
    struct ticks t = svg_nice_ticks(*lo, *hi, want);
    *lo = floor(*lo / t.step + 1e-9) * t.step;
    *hi = ceil(*hi / t.step - 1e-9) * t.step;
    return svg_nice_ticks(*lo, *hi, want);
}

/* ---- SVG pieces ---------------------------------------------------------- */

void svg_put_attr(struct html *h, const char *name, double v)
{
    html_printf(h, " %s=\"", name);
    html_put_num(h, v, 1);
    html_put_s(h, "\"");
}

void svg_open(struct html *h, const char *id, int w, int ht, const char *label)
{
    html_printf(h,
         "<svg class=\"chart\" id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
         "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n",
         id, w, ht, w, ht, label);
}

void svg_close(struct html *h)
{
    html_put_s(h, "</svg>\n");
}

/* Opens <text> and leaves it open for the caller's escaped content. */
void svg_text_begin(struct html *h, double x, double y, const char *cls, const char *anchor)
{
    html_printf(h, "<text class=\"%s\"", cls);
    svg_put_attr(h, "x", x);
    svg_put_attr(h, "y", y);
    html_printf(h, " text-anchor=\"%s\">", anchor);
}

void svg_text(struct html *h, double x, double y, const char *cls, const char *anchor,
                     const char *text)
{
    svg_text_begin(h, x, y, cls, anchor);
    html_put_esc(h, text);
    html_put_s(h, "</text>\n");
}

/* The explanation drawn where a chart has nothing to show. */
void svg_note(struct html *h, double x, double y, const char *text)
{
    svg_text(h, x, y, "note", "middle", text);
}

void svg_line(struct html *h, const char *cls, double xa, double ya, double xb, double yb)
{
    html_printf(h, "<line class=\"%s\"", cls);
    svg_put_attr(h, "x1", xa);
    svg_put_attr(h, "y1", ya);
    svg_put_attr(h, "x2", xb);
    svg_put_attr(h, "y2", yb);
    html_put_s(h, "/>\n");
}

/* Writes <rect ...> without closing it: a <title> may follow. */
void svg_rect_begin(struct html *h, const char *cls, double x, double y, double w, double ht)
{
    html_printf(h, "<rect class=\"%s\"", cls);
    svg_put_attr(h, "x", x);
    svg_put_attr(h, "y", y);
    svg_put_attr(h, "width", w);
    svg_put_attr(h, "height", ht);
    html_put_s(h, ">");
}

/* A label of user text, shortened for display with the full text as its
 * tooltip; rotated labels turn about their anchor point. */
void svg_label(struct html *h, double x, double y, const char *anchor, double rotate,
                      const char *text, size_t max_chars)
{
    html_printf(h, "<text class=\"label\"");
    svg_put_attr(h, "x", x);
    svg_put_attr(h, "y", y);
    html_printf(h, " text-anchor=\"%s\"", anchor);
    if (rotate != 0) {
        html_put_s(h, " transform=\"rotate(");
        html_put_num(h, rotate, 1);
        html_put_s(h, " ");
        html_put_num(h, x, 1);
        html_put_s(h, " ");
        html_put_num(h, y, 1);
        html_put_s(h, ")\"");
    }
    html_put_s(h, "><title>");
    html_put_esc(h, text);
    html_put_s(h, "</title>");
    html_put_esc_trunc(h, text, max_chars);
    html_put_s(h, "</text>\n");
}

/* Horizontal grid lines with their values on the left, x from xa to xb. */
void svg_y_grid(struct html *h, const struct scale *y, const struct ticks *t, double xa, double xb)
{
    for (int k = 0; k < t->count; k++) {
        double v = t->first + k * t->step;
        double py = scale_at(y, v);
        svg_line(h, "grid", xa, py, xb, py);
        svg_text_begin(h, xa - 6, py + 4, "tick", "end");
        html_put_num(h, v, t->decimals);
        html_put_s(h, "</text>\n");
    }
}
