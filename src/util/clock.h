/*
 * clock.h - the one clock tmap times its work with: monotonic seconds, so a
 * changed wall clock never makes a duration negative.
 */
#ifndef TMAP_UTIL_CLOCK_H
#define TMAP_UTIL_CLOCK_H

#include <time.h>

static inline double tmap_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
