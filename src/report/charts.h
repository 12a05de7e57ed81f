/*
 * charts.h - the report's charts, each one inline <svg> written into the
 * page buffer from the run's data.
 */
#ifndef TMAP_REPORT_CHARTS_H
#define TMAP_REPORT_CHARTS_H

#include "report/report.h"
#include "report/svg.h"

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

/* Indicator j's name, or "(unnamed)" when the input has none. */
const char *chart_name_of(const struct tmap_report_input *in, size_t j);
/* Each writes one <svg class="chart"> (report_browser.sh checks every one
 * draws); a chart without data says so in its frame. */
void chart_weights(struct html *h, const struct tmap_report_input *in);
void chart_baselines(struct html *h, const struct tmap_report_input *in);
void chart_trace(struct html *h, const struct tmap_report_input *in);
void chart_combined(struct html *h, const struct tmap_report_input *in);
void chart_indicators(struct html *h, const struct tmap_report_input *in);
void chart_correlations(struct html *h, const struct tmap_report_input *in);

#endif
