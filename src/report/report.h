/*
 * report.h - the self-contained HTML report of a tmap run (docs/design.md
 * section 7, report.html).
 *
 * The last step of the pipeline: after the search has learned the weights
 * and the selection is made, the caller hands over everything it already
 * holds (weights, raw indicator columns, combined scores, the selection,
 * the search trace, the pool for sample text) and gets one HTML file that
 * opens anywhere, offline: no script, no external stylesheet, font or
 * image; every chart is inline SVG drawn here. The same input gives the
 * same bytes, and the page stays light for a 100k-row pool because every
 * per-row quantity is binned before it is drawn.
 */
#ifndef TMAP_REPORT_REPORT_H
#define TMAP_REPORT_REPORT_H

#include "tmap.h"

#include <stdbool.h>
#include <stddef.h>

/* Best and worst samples shown by default (each). */
#define TMAP_REPORT_DEFAULT_EXAMPLES 5

struct tmap_report_input {
    const char *title;              /* page title and heading, NULL = "tmap report" */
    const char *model_description;  /* may be NULL */
    const char *config_json;        /* shown verbatim (escaped) in a <pre>, may be NULL */
    size_t n_indicators;
    const char *const *names;       /* indicator names, n_indicators */
    const double *weights;          /* learned weights, n_indicators (negative with signed search) */
    size_t n_rows;                  /* pool size */
    const double *raw;              /* raw values, column-major: raw[j * n_rows + i]; NaN = missing */
    const double *combined;         /* combined score per row (NaN rows are left out of the tables) */
    const bool *selected;           /* per row */
    size_t n_trace;                 /* search evaluations in order */
    const double *trace_values;     /* proxy value per evaluation (higher is better) */
    const bool *trace_reused;       /* served from the memo (no budget spent), may be NULL */
    bool search_stalled;            /* the search stopped early: no new subset in --iters evaluations */
    double best_value;              /* proxy value of the chosen weights, NaN = unknown */
    const struct tmap_pool *pool;   /* sample text for the tables, may be NULL */
    size_t n_examples;              /* best and worst samples to show, each (0 = no tables) */
    const struct tmap_baselines *baselines; /* what the learned weights are measured against, may be NULL */
    size_t n_duplicates;            /* exact duplicates kept out of the selection */
    const char *model_knowledge;    /* "held-out loss ... on ...", or a warning; may be NULL */
    const char *context_warning;    /* tmap_model_context_warning's line; may be NULL */
    const char *overlap_warning;    /* tmap_overlap_describe's line: validation the pool repeats; may be NULL */
    const char *advice;             /* tmap_baselines_advice's line; may be NULL */
};

/* Everything empty, best_value NaN, n_examples TMAP_REPORT_DEFAULT_EXAMPLES. */
struct tmap_report_input tmap_report_default_input(void);

/* Writes the report to path atomically (a temporary file beside it, then a
 * rename). Fails with TMAP_ERR_USAGE when an array the counts call for is
 * NULL or the pool's size differs from n_rows, TMAP_ERR_IO when the file
 * cannot be written, TMAP_ERR_NOMEM when memory runs out. */
enum tmap_status tmap_report_write_html(const char *path, const struct tmap_report_input *in,
                                        struct tmap_error *err);

#endif
