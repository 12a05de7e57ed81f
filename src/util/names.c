/*
 * names.c - the one table of names per choice enum. The CLI offers exactly
 * these words (its --metric, --policy, ... choices are these tables, indexed
 * by the enum's value), weights.json and the summaries print them, and
 * tmap_*_name() reads them: a new value is named in one place.
 */
#include "tmap.h"

#include <stddef.h>

static const char *const metric_names[] = { [TMAP_METRIC_LOGLIK] = "loglik", [TMAP_METRIC_ACCURACY] = "accuracy",
                                            [TMAP_METRIC_MC] = "mc", NULL };
static const char *const search_names[] = { [TMAP_SEARCH_BO] = "bo", [TMAP_SEARCH_RANDOM] = "random",
                                            [TMAP_SEARCH_GRID] = "grid", [TMAP_SEARCH_EQUAL] = "equal", NULL };
static const char *const policy_names[] = { [TMAP_DEMOS_TOP] = "top", [TMAP_DEMOS_RANDOM] = "random",
                                            [TMAP_DEMOS_KNN] = "knn", NULL };
static const char *const template_names[] = { [TMAP_TEMPLATE_PLAIN] = "plain", [TMAP_TEMPLATE_CHAT] = "chat", NULL };
static const char *const proxy_names[] = { [TMAP_PROXY_ICL] = "icl", [TMAP_PROXY_FINETUNE] = "finetune", NULL };
static const char *const select_names[] = { [TMAP_SELECT_TOP] = "top", [TMAP_SELECT_FILTER] = "filter", [TMAP_SELECT_STRATIFIED] = "stratified", NULL };
static const char *const tiny_names[] = { [TMAP_TINY_ANCHORS] = "anchors", [TMAP_TINY_RANDOM] = "random", NULL };
static const char *const on_error_names[] = { [TMAP_ON_ERROR_FAIL] = "fail", [TMAP_ON_ERROR_SKIP] = "skip", NULL };

const char *const *tmap_metric_names(void) { return metric_names; }
const char *const *tmap_search_kind_names(void) { return search_names; }
const char *const *tmap_demo_policy_names(void) { return policy_names; }
const char *const *tmap_template_names(void) { return template_names; }
const char *const *tmap_proxy_kind_names(void) { return proxy_names; }
const char *const *tmap_select_mode_names(void) { return select_names; }
const char *const *tmap_tiny_mode_names(void) { return tiny_names; }
const char *const *tmap_on_error_names(void) { return on_error_names; }

/* table[value], or "unknown" for a value past its end. */
static const char *lookup(const char *const *table, size_t count, int value)
{
    return value >= 0 && (size_t)value < count ? table[value] : "unknown";
}

#define COUNT(table) (sizeof table / sizeof table[0] - 1)

const char *tmap_metric_name(enum tmap_metric v) { return lookup(metric_names, COUNT(metric_names), (int)v); }
const char *tmap_search_kind_name(enum tmap_search_kind v) { return lookup(search_names, COUNT(search_names), (int)v); }
const char *tmap_demo_policy_name(enum tmap_demo_policy v) { return lookup(policy_names, COUNT(policy_names), (int)v); }
const char *tmap_template_name(enum tmap_template v) { return lookup(template_names, COUNT(template_names), (int)v); }
const char *tmap_proxy_kind_name(enum tmap_proxy_kind v) { return lookup(proxy_names, COUNT(proxy_names), (int)v); }
const char *tmap_select_mode_name(enum tmap_select_mode v) { return lookup(select_names, COUNT(select_names), (int)v); }
const char *tmap_tiny_mode_name(enum tmap_tiny_mode v) { return lookup(tiny_names, COUNT(tiny_names), (int)v); }
const char *tmap_on_error_name(enum tmap_on_error v) { return lookup(on_error_names, COUNT(on_error_names), (int)v); }
