/*
 * text.c - the model-free text indicators: steps, numeracy, MTLD, coverage.
 *
 * All four scan the text once or twice and need memory in proportion to it,
 * so they cost nothing next to a forward pass; the rules each one follows are
 * spelled out in text.h, next to its declaration.
 */
#include "indicators/text.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "util/grow.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ---- steps -------------------------------------------------------------- */

/* [*b, *e) shrinks to the line without surrounding whitespace. */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_space(**b))
        (*b)++;
    while (*e > *b && is_space((*e)[-1]))
        (*e)--;
}

/* The end of the line that starts at s (its '\n' or the final '\0'). */
static const char *line_end(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl ? nl : s + strlen(s);
}

static bool is_terminator(char c)
{
    return c == '.' || c == '!' || c == '?';
}

static bool is_closer(char c)
{
    return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}';
}

/* Sentences in [b, e): see tmap_indicator_steps in text.h. */
static double count_sentences(const char *b, const char *e)
{
    double n = 0;
    bool in_sentence = false;
    for (const char *p = b; p < e;) {
        if (!is_terminator(*p)) {
            in_sentence |= !is_space(*p) && !is_closer(*p);
            p++;
            continue;
        }
        while (p < e && is_terminator(*p))
            p++;
        while (p < e && is_closer(*p))
            p++;
        if ((p == e || is_space(*p)) && in_sentence) {
            n++;
            in_sentence = false;
        }
    }
    return n + (in_sentence ? 1 : 0);
}

/* Sets [*b, *e) to the trimmed line that starts at *s and moves *s past its
 * '\n' (NULL after the last line); false when no line is left. */
static bool next_line(const char **s, const char **b, const char **e)
{
    if (!*s)
        return false;
    const char *end = line_end(*s);
    *b = *s;
    *e = end;
    *s = *end ? end + 1 : NULL;
    trim(b, e);
    return true;
}

double tmap_indicator_steps(const char *response)
{
    const char *s = response, *b, *e;
    const char *answer = NULL; /* the last non-empty line, when it is "#### ..." */
    while (next_line(&s, &b, &e))
        if (b < e)
            answer = b;
    if (answer && strncmp(answer, "####", 4) != 0)
        answer = NULL;

    double n = 0;
    const char *first_b = NULL, *first_e = NULL;
    for (s = response; next_line(&s, &b, &e);) {
        if (b == e || b == answer)
            continue;
        if (n++ == 0) {
            first_b = b;
            first_e = e;
        }
    }
    return n == 1 ? count_sentences(first_b, first_e) : n;
}

/* ---- numeracy ----------------------------------------------------------- */

/* A malloc'd copy of s without GSM8K calculator annotations "<<...>>"; an
 * unclosed "<<" is kept as text. NULL when memory runs out. */
static char *strip_annotations(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    bool closable = true; /* false once no ">>" is left: keeps "<<<<..." linear */
    while (*s) {
        const char *close = closable && strncmp(s, "<<", 2) == 0 ? strstr(s + 2, ">>") : NULL;
        if (close) {
            s = close + 2;
            continue;
        }
        closable &= strncmp(s, "<<", 2) != 0;
        *o++ = *s++;
    }
    *o = '\0';
    return out;
}

enum token { TOKEN_NONE, TOKEN_NUMBER, TOKEN_OPERATOR, TOKEN_OTHER };

/* The length of the non-ASCII operator at p, 0 if none: U+00D7 and U+00F7
 * (multiplication and division signs), U+2212 (minus sign) and U+2013 (en
 * dash), which GSM8K answers write for minus (train.jsonl lines 54, 346). */
static size_t utf8_operator_len(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    if (u[0] == 0xC3 && (u[1] == 0x97 || u[1] == 0xB7))
        return 2;
    if (u[0] == 0xE2 && ((u[1] == 0x88 && u[2] == 0x92) || (u[1] == 0x80 && u[2] == 0x93)))
        return 3;
    return 0;
}

/* Letters and digits of a word; non-ASCII bytes count as letters. */
static bool is_word_byte(const char *p)
{
    return is_alpha(*p) || is_digit(*p) || ((unsigned char)*p >= 0x80 && !utf8_operator_len(p));
}

/* Whether a number starts at p: "5", "$5", ".5" or "$.5". */
static bool starts_number(const char *p)
{
    if (*p == '$')
        p++;
    return is_digit(*p) || (*p == '.' && is_digit(p[1]));
}

/* "$1,234.5%": moves past the number that starts at p. */
static const char *skip_number(const char *p)
{
    if (*p == '$')
        p++;
    while (is_digit(*p) || ((*p == ',' || *p == '.') && is_digit(p[1])))
        p++;
    return *p == '%' ? p + 1 : p;
}

/* Reads the token at p (not a space or tab); returns where the next starts.
 * `start` is the beginning of the text, to look one byte back for "x". */
static const char *read_token(const char *start, const char *p, enum token *kind)
{
    if (starts_number(p)) {
        *kind = TOKEN_NUMBER;
        return skip_number(p);
    }
    if (strchr("+-*/", *p)) {
        *kind = TOKEN_OPERATOR;
        return p + 1;
    }
    size_t op_len = utf8_operator_len(p);
    if (op_len) {
        *kind = TOKEN_OPERATOR;
        return p + op_len;
    }
    bool lone_x = (*p == 'x' || *p == 'X') && !is_alpha(p[1]) && (p == start || !is_alpha(p[-1]));
    if (lone_x) {
        *kind = TOKEN_OPERATOR;
        return p + 1;
    }
    *kind = TOKEN_OTHER;
    if (!is_word_byte(p))
        return p + 1;
    while (is_word_byte(p)) /* a word swallows its digits: "A4" is no number */
        p++;
    return p;
}

double tmap_indicator_numeracy(const char *response)
{
    char *text = strip_annotations(response);
    if (!text)
        return NAN;
    double n = 0;
    enum token before = TOKEN_NONE, last = TOKEN_NONE;
    for (const char *p = text; *p;) {
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        enum token kind;
        p = read_token(text, p, &kind);
        if (kind == TOKEN_NUMBER && last == TOKEN_OPERATOR && before == TOKEN_NUMBER)
            n++;
        before = last;
        last = kind;
    }
    free(text);
    return n;
}

/* ---- MTLD --------------------------------------------------------------- */

#define MTLD_THRESHOLD 0.72

/* The words of a text: lowercased copies laid end to end in `text`, word i
 * at span[i], and its type id (equal words share one). */
struct span {
    size_t start, len;
};

struct words {
    char        *text;  /* the words' characters, lowercased, as split so far */
    size_t       len;   /* ... bytes of it in use */
    struct span *span;
    size_t      *type;
    size_t       n, cap, n_types;
};

static void words_free(struct words *w)
{
    free(w->text);
    free(w->span);
    free(w->type);
}

/* Decodes the code point at p into *cp; returns its length in bytes (1 for a
 * byte that starts no valid sequence, which is then read as U+FFFD). */
static size_t decode_utf8(const char *p, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t len = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    if (u[0] < 0x80 || len == 1) {
        *cp = u[0] < 0x80 ? u[0] : 0xFFFD;
        return 1;
    }
    *cp = u[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        *cp = (*cp << 6) | (u[i] & 0x3F);
    }
    return len;
}

/* Whether a non-ASCII code point belongs to a word: everything but the
 * Latin-1 symbols, x and / signs, general punctuation (dashes, quotes),
 * arrows, mathematical and technical symbols, and CJK punctuation. */
static bool is_word_code_point(uint32_t cp)
{
    return !(cp <= 0xBF || cp == 0xD7 || cp == 0xF7 || (cp >= 0x2000 && cp <= 0x206F) ||
             (cp >= 0x2190 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
             (cp >= 0xFF00 && cp <= 0xFF0F) || cp == 0xFFFD);
}

/* Appends the word character at p to out (lowercased; U+2019 as '\'');
 * returns its length in the input, 0 when p holds no word character. */
static size_t take_word_char(const char *p, char *out, size_t *out_len)
{
    if (is_alpha(*p) || is_digit(*p) || *p == '\'') {
        out[(*out_len)++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
        return 1;
    }
    uint32_t cp;
    size_t len = decode_utf8(p, &cp);
    if (cp == 0x2019) {
        out[(*out_len)++] = '\'';
        return len;
    }
    if (!is_word_code_point(cp))
        return 0;
    memcpy(out + *out_len, p, len);
    *out_len += len;
    return len;
}

/* Ends the word that began at w->text[begin]: drops its outer apostrophes and
 * records it unless nothing is left. False when memory runs out. */
static bool end_word(struct words *w, size_t begin, size_t *out_len)
{
    size_t b = begin, e = *out_len;
    while (b < e && w->text[b] == '\'')
        b++;
    while (e > b && w->text[e - 1] == '\'')
        e--;
    if (b == e) {
        *out_len = begin;
        return true;
    }
    if (!tmap_grow((void **)&w->span, &w->cap, w->n + 1, sizeof *w->span))
        return false;
    w->span[w->n++] = (struct span){b, e - b};
    return true;
}

/* Splits text into words (see text.h), after those w already holds: the
 * end of text ends a word, so two texts split one after the other share
 * one list (and, once typed, type ids) without a word across them. False
 * when memory runs out. */
static bool split_words(const char *text, struct words *w)
{
    size_t out_len = w->len, begin = w->len;
    char *grown = realloc(w->text, w->len + strlen(text) + 1);
    if (!grown)
        return false;
    w->text = grown;
    for (const char *p = text;;) {
        size_t used = *p ? take_word_char(p, w->text, &out_len) : 0;
        if (used) {
            p += used;
            continue;
        }
        if (out_len > begin && !end_word(w, begin, &out_len))
            return false;
        begin = out_len;
        if (!*p) {
            w->len = out_len;
            return true;
        }
        uint32_t cp;
        p += decode_utf8(p, &cp);
    }
}

static bool same_word(const struct words *w, size_t a, size_t b)
{
    return w->span[a].len == w->span[b].len &&
           memcmp(w->text + w->span[a].start, w->text + w->span[b].start, w->span[a].len) == 0;
}

/* Gives every word a type id (0, 1, ... in order of first use) through an
 * open-addressing table of word indices. False when memory runs out. */
static bool assign_types(struct words *w)
{
    size_t size = 16;
    while (size < 2 * w->n)
        size *= 2;
    size_t *slot = calloc(size, sizeof *slot); /* word index + 1, 0 = empty */
    w->type = malloc(w->n * sizeof *w->type);
    if (!slot || !w->type) {
        free(slot);
        return false;
    }
    for (size_t i = 0; i < w->n; i++) {
        size_t h = (size_t)XXH3_64bits(w->text + w->span[i].start, w->span[i].len) & (size - 1);
        while (slot[h] && !same_word(w, slot[h] - 1, i))
            h = (h + 1) & (size - 1);
        if (!slot[h]) {
            slot[h] = i + 1;
            w->type[i] = w->n_types++;
        } else {
            w->type[i] = w->type[slot[h] - 1];
        }
    }
    free(slot);
    return true;
}

/* One MTLD pass over the type ids, forward or backward. `seen[t]` holds the
 * number of the factor that last saw type t, so a new factor needs no reset. */
static double mtld_pass(const struct words *w, size_t *seen, bool backward)
{
    double factors = 0;
    size_t factor = 1, tokens = 0, types = 0;
    for (size_t k = 0; k < w->n; k++) {
        size_t t = w->type[backward ? w->n - 1 - k : k];
        tokens++;
        if (seen[t] != factor) {
            seen[t] = factor;
            types++;
        }
        /* ttr <= 0.72 in integers (0.72 = 18/25), so 18/25 itself closes */
        if (types * 25 <= tokens * 18) {
            factors++;
            factor++;
            tokens = types = 0;
        }
    }
    if (tokens > 0)
        factors += (1.0 - (double)types / (double)tokens) / (1.0 - MTLD_THRESHOLD);
    if (factors == 0)
        factors = 1; /* every word distinct: see text.h */
    return (double)w->n / factors;
}

/* The mean of the forward and backward passes; NaN when memory runs out. */
static double mtld_both_ways(const struct words *w)
{
    size_t *seen = calloc(w->n_types, sizeof *seen);
    if (!seen)
        return NAN;
    double forward = mtld_pass(w, seen, false);
    memset(seen, 0, w->n_types * sizeof *seen);
    double backward = mtld_pass(w, seen, true);
    free(seen);
    return (forward + backward) / 2;
}

double tmap_indicator_mtld(const char *text)
{
    struct words w = {0};
    double mtld = NAN;
    if (split_words(text, &w))
        mtld = w.n == 0 ? 0 : assign_types(&w) ? mtld_both_ways(&w) : NAN;
    words_free(&w);
    return mtld;
}

/* ---- coverage ----------------------------------------------------------- */

/* A word that names something the prompt is about: a number (any word with
 * a digit) or a word of at least 4 bytes; shorter words are mostly "the",
 * "and", "of", which every response shares with every prompt. */
static bool is_term(const struct words *w, size_t i)
{
    if (w->span[i].len >= 4)
        return true;
    for (size_t k = 0; k < w->span[i].len; k++)
        if (is_digit(w->text[w->span[i].start + k]))
            return true;
    return false;
}

double tmap_indicator_coverage(const char *prompt, const char *response)
{
    /* The prompt's words, then the response's, in one list, so that equal
     * words share one type id across the two. */
    struct words w = {0};
    unsigned char *where = NULL; /* per type: 1 the prompt has it, 3 both */
    double coverage = NAN;
    size_t n_prompt = 0;
    if (!split_words(prompt, &w))
        goto done;
    n_prompt = w.n;
    if (!split_words(response, &w) || !assign_types(&w) || !(where = calloc(w.n_types ? w.n_types : 1, 1)))
        goto done;
    for (size_t i = 0; i < w.n; i++)
        if (is_term(&w, i)) {
            if (i < n_prompt)
                where[w.type[i]] = 1;
            else if (where[w.type[i]])
                where[w.type[i]] = 3;
        }
    size_t terms = 0, used = 0;
    for (size_t t = 0; t < w.n_types; t++) {
        terms += where[t] != 0;
        used += where[t] == 3;
    }
    coverage = terms ? (double)used / (double)terms : NAN;
done:
    free(where);
    words_free(&w);
    return coverage;
}
