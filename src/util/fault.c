/*
 * fault.c - TMAP_FAULT and TMAP_FAULT_SLOW, each read once (see fault.h).
 */
#include "util/fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    bool read;
    char site[32];
    long at;     /* the pass that fails; 0: none */
    long passes; /* passes through site so far */
} g_fault;

static void read_spec(void)
{
    g_fault.read = true;
    const char *spec = getenv("TMAP_FAULT");
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon || (size_t)(colon - spec) >= sizeof g_fault.site)
        return;
    char *end;
    long at = strtol(colon + 1, &end, 10);
    if (*end != '\0' || at < 1)
        return;
    memcpy(g_fault.site, spec, (size_t)(colon - spec));
    g_fault.site[colon - spec] = '\0';
    g_fault.at = at;
}

bool tmap_fault_due(const char *site)
{
    if (!g_fault.read)
        read_spec();
    if (g_fault.at == 0 || strcmp(site, g_fault.site) != 0)
        return false;
    return ++g_fault.passes == g_fault.at;
}

void tmap_fault_slow(const char *site)
{
    static bool read;
    static char slow_site[32];
    static double seconds;
    if (!read) {
        read = true;
        const char *spec = getenv("TMAP_FAULT_SLOW");
        const char *colon = spec ? strchr(spec, ':') : NULL;
        char *end;
        if (colon && (size_t)(colon - spec) < sizeof slow_site) {
            double s = strtod(colon + 1, &end);
            if (*end == '\0' && s > 0 && s < 3600) {
                memcpy(slow_site, spec, (size_t)(colon - spec));
                seconds = s;
            }
        }
    }
    if (seconds <= 0 || strcmp(site, slow_site) != 0)
        return;
    struct timespec ts = { .tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
