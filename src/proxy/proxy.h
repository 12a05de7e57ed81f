/*
 * proxy.h - the ICL proxy's memo and computation apart, for a caller that
 * shares evaluations among MPI ranks (learn.c): rank 0 reads and writes
 * the memo, every rank computes its share. tmap_proxy_eval is the two
 * together.
 */
#ifndef TMAP_PROXY_PROXY_H
#define TMAP_PROXY_PROXY_H

#include "tmap.h"

/* The memoised value of this subset, if the proxy has a store and it is
 * there. */
bool proxy_memo_get(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows, size_t n_rows,
                    const double *scores, double *value);

/* Remembers a value computed (here or by another rank); nothing without a
 * store. */
enum tmap_status proxy_memo_put(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                                size_t n_rows, const double *scores, double value, struct tmap_error *err);

/* The value, computed, never from or into the memo. */
enum tmap_status proxy_compute(struct tmap_proxy *px, const struct tmap_pool *demos, const size_t *rows,
                               size_t n_rows, const double *scores, double *value, struct tmap_proxy_stats *stats,
                               struct tmap_error *err);

#endif
