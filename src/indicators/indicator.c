/*
 * indicator.c - the indicator catalogue: ids, default directions, and
 * parsing the user's list.
 *
 * Directions: every indicator defaults to "higher raw value = more wanted".
 * For loss and ifd that means harder samples for this model, the choice of
 * IFD-style selection (Li et al. 2024); `--signed` in the weight search can
 * learn the opposite where the task wants it. For support it means a final
 * answer the model finds likely after reading the solution that leads to it;
 * for coverage, a response that uses more of its prompt's terms.
 */
#include "tmap.h"
#include "util/error.h"

#include <string.h>

static const char *const names[TMAP_IND_COUNT] = {
    [TMAP_IND_LOSS]       = "loss",
    [TMAP_IND_IFD]        = "ifd",
    [TMAP_IND_QUALITY]    = "quality",
    [TMAP_IND_COMPLEXITY] = "complexity",
    [TMAP_IND_DIVERSITY]  = "diversity",
    [TMAP_IND_RELEVANCE]  = "relevance",
    [TMAP_IND_STEPS]      = "steps",
    [TMAP_IND_LENGTH]     = "length",
    [TMAP_IND_LEXICAL]    = "lexical",
    [TMAP_IND_NUMERACY]   = "numeracy",
    [TMAP_IND_SUPPORT]    = "support",
    [TMAP_IND_COVERAGE]   = "coverage",
};

const char *tmap_indicator_name(enum tmap_indicator ind)
{
    return ind < TMAP_IND_COUNT ? names[ind] : "unknown";
}

bool tmap_indicator_higher_is_better(enum tmap_indicator ind)
{
    (void)ind;
    return true;
}

static int find_indicator(const char *name, size_t len)
{
    for (int j = 0; j < TMAP_IND_COUNT; j++)
        if (strlen(names[j]) == len && strncmp(names[j], name, len) == 0)
            return j;
    return -1;
}

enum tmap_status tmap_indicator_parse_list(const char *list, uint32_t *mask, struct tmap_error *err)
{
    *mask = 0;
    uint32_t named = 0; /* by name, not through "default" or "all" */
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len == 0 || (p[len] == ',' && p[len + 1] == '\0'))
            return tmap_fail(err, TMAP_ERR_USAGE, "the indicator list '%s' has an empty item (two commas, or one "
                             "at an end)", list);
        if (len == 3 && strncmp(p, "all", 3) == 0) {
            *mask |= TMAP_IND_ALL;
        } else if (len == 7 && strncmp(p, "default", 7) == 0) {
            *mask |= TMAP_IND_DEFAULT;
        } else {
            int j = find_indicator(p, len);
            if (j < 0) {
                char known[256] = "";
                for (int k = 0; k < TMAP_IND_COUNT; k++) {
                    strcat(known, k ? ", " : "");
                    strcat(known, names[k]);
                }
                return tmap_fail(err, TMAP_ERR_USAGE, "unknown indicator '%.*s' (known: %s, default, all)",
                                 (int)len, p, known);
            }
            /* A set, so a repeat changes nothing, but it is more likely a
             * slip for another name than meant ("loss,loss"). */
            if (named & 1u << j)
                return tmap_fail(err, TMAP_ERR_USAGE, "indicator '%s' is named twice in '%s'", names[j], list);
            named |= 1u << j;
            *mask |= 1u << j;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (!*mask)
        return tmap_fail(err, TMAP_ERR_USAGE, "no indicators given");
    return TMAP_OK;
}
