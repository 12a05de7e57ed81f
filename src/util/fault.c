/*
 * fault.c - TMAP_FAULT, read once (see fault.h).
 */
#include "util/fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
