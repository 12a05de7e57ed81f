/*
 * svg.h - what the report's charts are drawn with: linear scales, tick
 * steps, and SVG elements written into the page buffer.
 */
#ifndef TMAP_REPORT_SVG_H
#define TMAP_REPORT_SVG_H

#include "report/html.h"

/* Maps data [lo, hi] (hi > lo) linearly onto pixels [a, b]. */
struct scale {
    double lo, hi;
    double a, b;
};

struct ticks {
    double first, step;
    int count, decimals;
};

/* The pixel of data value v; _within holds v to the data range first. */
double scale_at(const struct scale *s, double v);
double scale_at_within(const struct scale *s, double v);
/* About `want` round tick steps over [lo, hi]; svg_axis_range also widens
 * lo and hi to whole steps. */
struct ticks svg_nice_ticks(double lo, double hi, int want);
struct ticks svg_axis_range(double *lo, double *hi, int want);
/* Elements: attributes, the <svg> frame, text (escaped), lines, rects,
 * labels cut to max_chars, horizontal grid lines. */
void svg_put_attr(struct html *h, const char *name, double v);
void svg_open(struct html *h, const char *id, int w, int ht, const char *label);
void svg_close(struct html *h);
void svg_text_begin(struct html *h, double x, double y, const char *cls, const char *anchor);
void svg_text(struct html *h, double x, double y, const char *cls, const char *anchor,
              const char *text);
void svg_note(struct html *h, double x, double y, const char *text);
void svg_line(struct html *h, const char *cls, double xa, double ya, double xb, double yb);
void svg_rect_begin(struct html *h, const char *cls, double x, double y, double w, double ht);
void svg_label(struct html *h, double x, double y, const char *anchor, double rotate,
               const char *text, size_t max_chars);
void svg_y_grid(struct html *h, const struct scale *y, const struct ticks *t, double xa, double xb);

#endif
