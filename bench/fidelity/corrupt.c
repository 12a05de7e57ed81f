/*
 * corrupt.c - the labelled corruption of bench/fidelity's pool (corrupt.h).
 *
 * Who gets corrupted is one seeded shuffle; duplicates are taken from the
 * second half of the pool so an earlier clean original always exists, the
 * other kinds from what is left. Text is edited through jansson, so every
 * line written is valid JSON whatever the record holds.
 */
#include "corrupt.h"

#include "util/random.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fid_kind_name(enum fid_kind kind)
{
    static const char *const names[FID_N_KINDS] = { "clean", "wrong_answer", "truncated", "swapped", "off_task",
                                                    "duplicate" };
    return kind < FID_N_KINDS ? names[kind] : "?";
}

void fid_records_free(struct fid_record *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        free(r[i].line);
}

/* Sentences that answer nothing in GSM8K: chat filler, a recipe, a weather
 * report; written for this bench. */
static const char *const off_task[] = {
    "Thank you for your question, I am always happy to help.",
    "The weather tomorrow will be mild with a light breeze from the west.",
    "Preheat the oven and let the dough rest for twenty minutes before baking.",
    "As an assistant I cannot browse the internet right now.",
    "The museum opens at nine and the guided tour starts at the main entrance.",
    "Remember to water the plants on the balcony twice a week in summer.",
    "This story is about a knight who travelled across the northern hills.",
    "Please let me know if there is anything else I can do for you today.",
    "The train to the coast leaves from platform four every hour.",
    "Stir the sauce slowly until it thickens, then add a pinch of salt.",
    "Our team meeting has been moved to Thursday afternoon.",
    "The poem describes the sea at dawn and the sound of the gulls.",
    "Click the settings icon and choose a new password to continue.",
    "Many birds fly south before the first frost of the autumn.",
    "The library asks readers to return books within three weeks.",
    "Good morning! I hope you are having a wonderful day.",
};
#define N_OFF_TASK (sizeof off_task / sizeof off_task[0])

struct work {
    const char *const *lines;
    size_t             n;
    json_t           **rec;   /* parsed originals */
    uint64_t           state; /* one stream for every choice after the shuffle */
    char              *errbuf;
    size_t             errsize;
};

static int fail(struct work *w, const char *fmt, size_t i)
{
    snprintf(w->errbuf, w->errsize, fmt, i + 1);
    return -1;
}

static const char *answer_of(json_t *rec)
{
    return json_string_value(json_object_get(rec, "answer"));
}

/* A copy of record i with its answer replaced, as one compact JSON line in
 * the dataset's own key order. */
static char *with_answer(struct work *w, size_t i, const char *answer)
{
    json_t *copy = json_deep_copy(w->rec[i]);
    char *line = NULL;
    if (copy && json_object_set_new(copy, "answer", json_string(answer)) == 0)
        line = json_dumps(copy, JSON_PRESERVE_ORDER);
    json_decref(copy);
    return line;
}

/* "... #### 72" -> "... #### 75": the final answer moved by 1..9 either
 * way (never to a negative number from a non-negative one). */
static char *wrong_answer(struct work *w, size_t i)
{
    const char *a = answer_of(w->rec[i]), *mark = strstr(a, "####");
    if (!mark)
        return NULL;
    char digits[64];
    size_t nd = 0;
    for (const char *c = mark + 4; *c && nd + 1 < sizeof digits; c++)
        if ((*c >= '0' && *c <= '9') || *c == '-' || *c == '.')
            digits[nd++] = *c;
    digits[nd] = '\0';
    double v = nd ? strtod(digits, NULL) : 0.0;
    long delta = 1 + (long)(tmap_random_next(&w->state) % 9);
    if (tmap_random_next(&w->state) % 2 && v - (double)delta >= 0)
        delta = -delta;
    double nv = v + (double)delta;
    size_t head = (size_t)(mark - a);
    size_t size = head + 64;
    char *text = malloc(size);
    if (!text)
        return NULL;
    if (nv == floor(nv))
        snprintf(text, size, "%.*s#### %.0f", (int)head, a, nv);
    else
        snprintf(text, size, "%.*s#### %g", (int)head, a, nv);
    char *line = with_answer(w, i, text);
    free(text);
    return line;
}

/* The solution cut at 30-70% of its length, at a space, before "####". */
static char *truncated(struct work *w, size_t i)
{
    const char *a = answer_of(w->rec[i]), *mark = strstr(a, "####");
    size_t body = mark ? (size_t)(mark - a) : strlen(a);
    size_t cut = (size_t)((double)body * (0.3 + 0.4 * tmap_random_unit(&w->state)));
    while (cut > 1 && a[cut] != ' ' && a[cut] != '\n')
        cut--;
    if (cut < 1)
        cut = body > 1 ? body / 2 : 1;
    char *text = strndup(a, cut);
    char *line = text ? with_answer(w, i, text) : NULL;
    free(text);
    return line;
}

static char *swapped(struct work *w, size_t i, size_t *source)
{
    size_t k = (size_t)(tmap_random_next(&w->state) % (w->n - 1));
    *source = k >= i ? k + 1 : k; /* any record but i */
    return with_answer(w, i, answer_of(w->rec[*source]));
}

static char *off_task_text(struct work *w, size_t i)
{
    char text[1024] = "";
    size_t sentences = 2 + (size_t)(tmap_random_next(&w->state) % 3);
    for (size_t s = 0; s < sentences; s++) {
        if (s)
            strcat(text, " ");
        strcat(text, off_task[tmap_random_next(&w->state) % N_OFF_TASK]);
    }
    return with_answer(w, i, text);
}

static int parse_all(struct work *w)
{
    for (size_t i = 0; i < w->n; i++) {
        json_error_t je;
        w->rec[i] = json_loads(w->lines[i], 0, &je);
        if (!w->rec[i] || !json_is_string(json_object_get(w->rec[i], "question")) || !answer_of(w->rec[i]))
            return fail(w, "record %zu: not a GSM8K record (needs string \"question\" and \"answer\")", i);
    }
    return 0;
}

/* Who is corrupted, and how: duplicates from a shuffle of the second half
 * (an earlier clean original then exists), the other kinds from a shuffle
 * of everyone left. */
static int assign_kinds(struct work *w, size_t n_bad, enum fid_kind *kind)
{
    size_t per[FID_N_KINDS] = { 0 };
    for (int k = FID_WRONG_ANSWER; k < FID_N_KINDS; k++)
        per[k] = n_bad / (FID_N_KINDS - 1) + ((size_t)(k - FID_WRONG_ANSWER) < n_bad % (FID_N_KINDS - 1));
    size_t *order = malloc(w->n * sizeof *order);
    if (!order)
        return -1;
    for (size_t i = 0; i < w->n; i++)
        order[i] = i;
    size_t half = w->n / 2, n_dup = per[FID_DUPLICATE] < w->n - half ? per[FID_DUPLICATE] : w->n - half;
    size_t *second = order + half;
    for (size_t i = 0; i < n_dup; i++) { /* partial shuffle of the second half */
        size_t j = i + (size_t)(tmap_random_next(&w->state) % (w->n - half - i));
        size_t t = second[i];
        second[i] = second[j];
        second[j] = t;
        kind[second[i]] = FID_DUPLICATE;
    }
    size_t m = 0;
    for (size_t i = 0; i < w->n; i++)
        if (kind[i] == FID_CLEAN)
            order[m++] = i;
    size_t at = 0;
    for (int k = FID_WRONG_ANSWER; k < FID_DUPLICATE; k++)
        for (size_t c = 0; c < per[k] && at < m; c++, at++) {
            size_t j = at + (size_t)(tmap_random_next(&w->state) % (m - at));
            size_t t = order[at];
            order[at] = order[j];
            order[j] = t;
            kind[order[at]] = (enum fid_kind)k;
        }
    free(order);
    return 0;
}

/* An earlier clean record for duplicate i. */
static size_t duplicate_source(struct work *w, const enum fid_kind *kind, size_t i)
{
    size_t start = (size_t)(tmap_random_next(&w->state) % i);
    for (size_t s = 0; s < i; s++) {
        size_t j = (start + s) % i;
        if (kind[j] == FID_CLEAN)
            return j;
    }
    return SIZE_MAX;
}

static int build(struct work *w, const enum fid_kind *kind, struct fid_record *out)
{
    for (size_t i = 0; i < w->n; i++) {
        out[i].kind = kind[i];
        out[i].source = i;
        switch (kind[i]) {
        case FID_CLEAN:        out[i].line = strdup(w->lines[i]); break;
        case FID_WRONG_ANSWER: out[i].line = wrong_answer(w, i); break;
        case FID_TRUNCATED:    out[i].line = truncated(w, i); break;
        case FID_SWAPPED:      out[i].line = swapped(w, i, &out[i].source); break;
        case FID_OFF_TASK:     out[i].line = off_task_text(w, i); break;
        case FID_DUPLICATE:
            out[i].source = duplicate_source(w, kind, i);
            if (out[i].source == SIZE_MAX)
                return fail(w, "record %zu: no earlier clean record to duplicate", i);
            out[i].line = strdup(w->lines[out[i].source]);
            break;
        case FID_N_KINDS: break;
        }
        if (!out[i].line)
            return fail(w, "record %zu: out of memory, or no \"####\" final answer to change", i);
    }
    return 0;
}

int fid_corrupt(const char *const *lines, size_t n, double rate, uint64_t seed, struct fid_record *out,
                char *errbuf, size_t errsize)
{
    struct work w = { lines, n, calloc(n ? n : 1, sizeof(json_t *)), seed, errbuf, errsize };
    enum fid_kind *kind = calloc(n ? n : 1, sizeof *kind);
    memset(out, 0, n * sizeof *out);
    int rc = w.rec && kind ? 0 : -1;
    if (rc)
        snprintf(errbuf, errsize, "out of memory for %zu records", n);
    if (!rc && (n < 4 || !(rate >= 0.0 && rate <= 0.5))) {
        snprintf(errbuf, errsize, "needs at least 4 records and a rate in [0, 0.5] (got %zu, %g)", n, rate);
        rc = -1;
    }
    if (!rc)
        rc = parse_all(&w);
    if (!rc && assign_kinds(&w, (size_t)llround(rate * (double)n), kind) != 0) {
        snprintf(errbuf, errsize, "out of memory for %zu records", n);
        rc = -1;
    }
    if (!rc)
        rc = build(&w, kind, out);
    for (size_t i = 0; w.rec && i < n; i++)
        json_decref(w.rec[i]);
    free(w.rec);
    free(kind);
    if (rc) {
        fid_records_free(out, n);
        memset(out, 0, n * sizeof *out);
    }
    return rc;
}
