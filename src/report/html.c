/*
 * html.c - the report's page buffer and escaping (html.h).
 */
#include "report/html.h"

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

/* ---- the page buffer ----------------------------------------------------- */


void html_put_n(struct html *h, const char *s, size_t n)
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

void html_put_s(struct html *h, const char *s)
{
    html_put_n(h, s, strlen(s));
}

/* printf into the buffer; used for integers and fixed text only (see put_num). */
__attribute__((format(printf, 2, 3))) void html_printf(struct html *h, const char *fmt, ...)
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

void html_put_num(struct html *h, double x, int decimals);

/* Magnitudes beyond fixed point: mantissa and exponent, still from integers. */
void html_put_sci(struct html *h, double x)
{
    int e = (int)floor(log10(fabs(x)));
    html_put_num(h, x / pow(10.0, e), 3);
    html_printf(h, "e%d", e);
}

/* x with exactly `decimals` (0..6) digits after the point. Built from the
 * integer x * 10^decimals so that the locale cannot change the point and a
 * value that rounds to zero never prints as "-0.00". */
void html_put_num(struct html *h, double x, int decimals)
{
    static const uint64_t scales[] = { 1, 10, 100, 1000, 10000, 100000, 1000000 };
    if (isnan(x)) {
        html_put_s(h, "n/a");
        return;
    }
    if (isinf(x)) {
        html_put_s(h, x > 0 ? "inf" : "-inf");
        return;
    }
    uint64_t scale = scales[decimals < 0 ? 0 : decimals > 6 ? 6 : decimals];
    double scaled = round(fabs(x) * (double)scale);
    if (scaled >= 1e15) {
        html_put_sci(h, x);
        return;
    }
    uint64_t v = (uint64_t)scaled;
    html_printf(h, "%s%" PRIu64, x < 0 && v != 0 ? "-" : "", v / scale);
    if (scale > 1)
        html_printf(h, ".%0*" PRIu64, decimals, v % scale);
}

/* Indicator values range from probabilities to token counts: about four
 * significant digits, without printing "512.0000". */
void html_put_val(struct html *h, double x)
{
    double a = fabs(x);
    html_put_num(h, x, a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4);
}

/* A percentage of `part` in `whole` with one decimal. */
void html_put_pct(struct html *h, size_t part, size_t whole)
{
    html_put_num(h, whole ? 100.0 * (double)part / (double)whole : 0.0, 1);
    html_put_s(h, "%");
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
void html_put_esc_n(struct html *h, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = escape_of((unsigned char)s[i]);
        if (!rep)
            continue;
        html_put_n(h, s + start, i - start);
        html_put_s(h, rep);
        start = i + 1;
    }
    html_put_n(h, s + start, n - start);
}

void html_put_esc(struct html *h, const char *s)
{
    if (s)
        html_put_esc_n(h, s, strlen(s));
}

/* Bytes of s holding at most max_chars code points. The cut falls before a
 * byte that is not a continuation byte, so a multi-byte character is never
 * split (and invalid input cannot make it read past the terminator). */
size_t html_utf8_prefix(const char *s, size_t max_chars, bool *cut)
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
void html_put_esc_trunc(struct html *h, const char *s, size_t max_chars)
{
    if (!s)
        return;
    bool cut;
    html_put_esc_n(h, s, html_utf8_prefix(s, max_chars, &cut));
    if (cut)
        html_put_s(h, "\xE2\x80\xA6");
}
