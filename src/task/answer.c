/*
 * answer.c - finding and comparing the final number of a solution.
 *
 * What counts as a number: digits, optionally grouped by thousands
 * ("1,234": a comma followed by exactly three digits continues the number,
 * so a list "1,2,3" stays three numbers), optionally with a fraction
 * (".5" after digits, or on its own). A "-" right before it (or before its
 * "$") is a sign unless a letter or digit precedes the "-": "10-3" is a
 * subtraction whose last number is 3, "= -3" is minus three.
 */
#include "task/answer.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A number's bytes in the text, sign included. */
struct span {
    const char *begin, *end;
};

/* Does a number start at p (text begins at base)? */
static bool starts_number(const char *base, const char *p)
{
    if (p > base && (is_digit(p[-1]) || (p[-1] == '.' && p - 1 > base && is_digit(p[-2]))))
        return false; /* inside a number already */
    return is_digit(p[0]) || (p[0] == '.' && is_digit(p[1]));
}

/* "," continues a number only as a thousands group: exactly three digits. */
static bool thousands_group(const char *p)
{
    return p[0] == ',' && is_digit(p[1]) && is_digit(p[2]) && is_digit(p[3]) && !is_digit(p[4]);
}

/* The number starting at p: its end, and its sign when one precedes it. */
static struct span number_at(const char *base, const char *p)
{
    struct span s = { p, p };
    while (is_digit(*s.end) || thousands_group(s.end))
        s.end += *s.end == ',' ? 4 : 1;
    if (s.end[0] == '.' && is_digit(s.end[1]))
        for (s.end++; is_digit(*s.end); s.end++) {}
    const char *sign = p > base && p[-1] == '$' ? p - 1 : p;
    if (sign > base && sign[-1] == '-' && (sign - 1 == base || !is_alnum(sign[-2])))
        s.begin = sign - 1;
    return s;
}

static bool first_number(const char *base, const char *from, struct span *out)
{
    for (const char *p = from; *p; p++)
        if (starts_number(base, p)) {
            *out = number_at(base, p);
            return true;
        }
    return false;
}

static bool last_number(const char *text, struct span *out)
{
    bool found = false;
    struct span s;
    for (const char *p = text; first_number(text, p, &s); p = s.end) {
        *out = s;
        found = true;
    }
    return found;
}

/* The start of the last occurrence of needle in text, or NULL. */
static const char *last_occurrence(const char *text, const char *needle, bool any_case)
{
    size_t n = strlen(needle);
    const char *last = NULL;
    for (const char *p = text; *p; p++)
        if (any_case ? strncasecmp(p, needle, n) == 0 : strncmp(p, needle, n) == 0)
            last = p;
    return last;
}

/* Copies the number without "," or "$" and without trailing fraction
 * zeros (and then a bare "."), so equal answers are usually equal strings
 * too. */
static bool write_number(struct span s, char *out, size_t out_bytes)
{
    size_t n = 0;
    for (const char *p = s.begin; p < s.end; p++) {
        if (*p == ',' || *p == '$') /* "-$40": the sign is kept, the "$" not */
            continue;
        if (n + 1 >= out_bytes)
            return false;
        out[n++] = *p;
    }
    if (memchr(out, '.', n)) {
        while (out[n - 1] == '0')
            n--;
        if (out[n - 1] == '.')
            n--;
    }
    if (n == 0 || (n == 1 && out[0] == '-')) /* ".0" alone */
        out[n++] = '0';
    out[n] = '\0';
    return true;
}

/* The number after the last "####", else after the last "the answer is". */
static bool marked_number(const char *text, struct span *s)
{
    const char *marker = last_occurrence(text, "####", false);
    if (marker && first_number(text, marker + 4, s))
        return true;
    marker = last_occurrence(text, "the answer is", true);
    return marker && first_number(text, marker + strlen("the answer is"), s);
}

bool tmap_marked_answer_span(const char *text, size_t *begin, size_t *end)
{
    struct span s;
    if (!text || !marked_number(text, &s))
        return false;
    *begin = (size_t)(s.begin - text);
    *end = (size_t)(s.end - text);
    return true;
}

bool tmap_extract_answer(const char *text, char *out, size_t out_bytes)
{
    if (out_bytes == 0)
        return false;
    out[0] = '\0';
    if (!text)
        return false;
    struct span s;
    bool found = marked_number(text, &s);
    if (!found)
        found = last_number(text, &s);
    if (found && write_number(s, out, out_bytes))
        return true;
    out[0] = '\0';
    return false;
}

/* "[-+]digits[.digits]" or "[-+].digits", surrounding spaces allowed. */
static bool parse_decimal(const char *s, double *out)
{
    while (*s == ' ')
        s++;
    const char *p = s + (*s == '-' || *s == '+');
    size_t digits = 0;
    for (; is_digit(*p); p++)
        digits++;
    if (*p == '.')
        for (p++; is_digit(*p); p++)
            digits++;
    while (*p == ' ')
        p++;
    if (digits == 0 || *p)
        return false;
    *out = strtod(s, NULL);
    return true;
}

bool tmap_answers_match(const char *a, const char *b)
{
    double x, y;
    /* strtod rounds correctly, so two spellings of one decimal number give
     * the same double and == is exact, not approximate. */
    return a && b && parse_decimal(a, &x) && parse_decimal(b, &y) && x == y;
}
