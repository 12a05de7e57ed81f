/*
 * version.c - what `tmap version` reports: tmap's version and how this
 * binary was built, so a bug report says everything in one line.
 */
#include "tmap.h"

#include <llama.h>

#include <stdio.h>

const char *tmap_version(void)
{
    return TMAP_VERSION;
}

const char *tmap_build_info(void)
{
    static char info[1024];
    if (!info[0]) {
        snprintf(info, sizeof info,
                 "llama.cpp %s; cc %s; %s build%s; %s; %s; system: %s",
                 TMAP_LLAMA_COMMIT, __VERSION__, TMAP_BUILD_TYPE,
                 TMAP_SANITIZED ? " with ASan+UBSan" : "",
                 TMAP_HAVE_FAISS ? "FAISS: approximate diversity on large pools"
                                 : "no FAISS: diversity is exact at any size",
                 tmap_dist_available() ? "MPI: yes" : "MPI: no", llama_print_system_info());
    }
    return info;
}
