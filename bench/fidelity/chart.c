/*
 * chart.c - see chart.h. Plain fprintf into the page: these are a
 * benchmark's pages, read by people, and their numbers are the tables'.
 */
#include "chart.h"

#include <math.h>

double chart_shown(double v)
{
    return round(v * 1e4) / 1e4 + 0.0;
}

const char *chart_fill(double mid, double low, double high)
{
    if (chart_shown(low) > 0 || chart_shown(high) < 0)
        return mid < 0 ? CHART_BETTER : CHART_WORSE;
    return CHART_NEUTRAL;
}

void chart_put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

void chart_page_open(FILE *f, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    chart_put_escaped(f, title);
    fputs("</title><style>body{font-family:sans-serif;max-width:980px;margin:auto;padding:16px}"
          "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccd;padding:3px 6px}"
          "</style></head><body>\n<h1>", f);
    chart_put_escaped(f, title);
    fputs("</h1>\n", f);
}

static double x_of(double v, double lo, double hi, double left, double width)
{
    return left + (v - lo) / (hi - lo) * width;
}

/* The data range: every end drawn, and zero, widened by 5% each side. */
static void range_of(const struct chart_row *rows, size_t n_rows, double *lo, double *hi)
{
    *lo = 0.0, *hi = 0.0;
    for (size_t a = 0; a < n_rows; a++) {
        const struct chart_row *r = &rows[a];
        *lo = fmin(*lo, r->low), *hi = fmax(*hi, r->high);
        if (isfinite(r->spread_low) && isfinite(r->spread_high))
            *lo = fmin(*lo, r->spread_low), *hi = fmax(*hi, r->spread_high);
        for (size_t s = 0; s < r->n_rings; s++)
            *lo = fmin(*lo, r->rings[s]), *hi = fmax(*hi, r->rings[s]);
    }
    double pad = (*hi - *lo) * 0.05 + 1e-9;
    *lo -= pad, *hi += pad;
}

void chart_intervals(FILE *f, const struct chart_row *rows, size_t n_rows, const char *aria, const char *axis)
{
    const double W = 880, L = 220, R = 20, T = 20, row = 26, width = W - L - R;
    double H = T + row * (double)n_rows + 40, lo, hi;
    range_of(rows, n_rows, &lo, &hi);
    fprintf(f, "<svg class=\"chart\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
               "aria-label=\"", W, H, W, H);
    chart_put_escaped(f, aria);
    fputs("\">\n", f);
    double zx = x_of(0.0, lo, hi, L, width);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#c53030\" stroke-dasharray=\"4 3\"/>\n",
            zx, T - 5, zx, H - 35);
    for (size_t a = 0; a < n_rows; a++) {
        const struct chart_row *r = &rows[a];
        double y = T + row * ((double)a + 0.5);
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">", L - 8, y + 4);
        chart_put_escaped(f, r->name);
        fputs("</text>\n", f);
        if (isfinite(r->spread_low) && isfinite(r->spread_high))
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#a0aec0\" stroke-width=\"1\">"
                       "<title>%s: [%+.4f, %+.4f]</title></line>\n",
                    x_of(r->spread_low, lo, hi, L, width), y + 6, x_of(r->spread_high, lo, hi, L, width), y + 6,
                    r->spread_title ? r->spread_title : "spread", chart_shown(r->spread_low),
                    chart_shown(r->spread_high));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#4a5568\" stroke-width=\"3\"/>\n",
                x_of(r->low, lo, hi, L, width), y, x_of(r->high, lo, hi, L, width), y);
        for (size_t s = 0; s < r->n_rings; s++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"none\" stroke=\"#718096\">"
                       "<title>seed %zu: %+.4f</title></circle>\n",
                    x_of(r->rings[s], lo, hi, L, width), y - 6, s + 1, chart_shown(r->rings[s]));
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"><title>", x_of(r->mid, lo, hi, L, width), y,
                r->fill);
        chart_put_escaped(f, r->name);
        fprintf(f, ": %+.4f [%+.4f, %+.4f]</title></circle>\n", chart_shown(r->mid), chart_shown(r->low),
                chart_shown(r->high));
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"12\">", L + width / 2, H - 12);
    chart_put_escaped(f, axis);
    fprintf(f, ", %.4f to %.4f</text>\n</svg>\n", lo, hi);
}
