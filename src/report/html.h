/*
 * html.h - the report's page buffer: text appended in memory, numbers
 * printed from integers (never %f, so no locale or negative zero can change
 * a byte), and every piece of data escaped on the way in.
 */
#ifndef TMAP_REPORT_HTML_H
#define TMAP_REPORT_HTML_H

#include <stdbool.h>
#include <stddef.h>

struct html {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed: later writes are dropped, the call fails */
};

/* Raw text, trusted (the page's own markup). */
void html_put_n(struct html *h, const char *s, size_t n);
void html_put_s(struct html *h, const char *s);
/* printf for integers and fixed text only: numbers go through html_put_num. */
__attribute__((format(printf, 2, 3))) void html_printf(struct html *h, const char *fmt, ...);
/* x with the given decimals, printed from integers; html_put_sci beyond
 * fixed point; html_put_val picks; html_put_pct: part of whole, one decimal. */
void html_put_num(struct html *h, double x, int decimals);
void html_put_sci(struct html *h, double x);
void html_put_val(struct html *h, double x);
void html_put_pct(struct html *h, size_t part, size_t whole);
/* Data: the five HTML specials escaped, C0 controls as U+FFFD; _trunc keeps
 * at most max_chars code points and adds an ellipsis when it cuts. */
void html_put_esc_n(struct html *h, const char *s, size_t n);
void html_put_esc(struct html *h, const char *s);
void html_put_esc_trunc(struct html *h, const char *s, size_t max_chars);
/* Bytes of s holding at most max_chars code points (never splitting one). */
size_t html_utf8_prefix(const char *s, size_t max_chars, bool *cut);

#endif
