/*
 * fault.h - failures made on purpose, so that tests can reach the paths a
 * real failure takes mid-run (a rank whose batch fails while the others
 * compute on) without a real disk, model or network fault, which no test
 * can summon at a chosen moment (docs/reliability.md).
 *
 * TMAP_FAULT=SITE:N in the environment makes the N-th pass through SITE in
 * this process fail, N counting from 1. Without the variable nothing ever
 * fails and a check costs one comparison. Sites:
 *
 *   score-batch   a batch of `tmap score` (or `tmap run`'s scoring), as
 *                 this process computes it: pool and validation batches
 *                 together, in the order it computes them
 *   memory-check  the check before a training copy loads (train/memory.c):
 *                 the system reports no memory or swap available
 *
 * TMAP_FAULT_SLOW=SITE:SECONDS makes every pass through SITE wait that long
 * first: a slow rank, whose timing a test cannot otherwise choose (a rank
 * far behind the others when one of them fails).
 */
#ifndef TMAP_UTIL_FAULT_H
#define TMAP_UTIL_FAULT_H

#include <stdbool.h>

/* Counts a pass through site; true when TMAP_FAULT asks this pass to fail.
 * Only the thread that drives the work calls it. */
bool tmap_fault_due(const char *site);

/* Waits as TMAP_FAULT_SLOW asks at site (usually not at all). */
void tmap_fault_slow(const char *site);

#endif
