/*
 * proxy.h - the ICL proxy's memo and computation apart, for a caller that
 * shares evaluations among MPI ranks (learn.c): rank 0 reads and writes
 * the memo, every rank computes its share. tmap_proxy_eval is the two
 * together.
 */
#ifndef TMAP_PROXY_PROXY_H
#define TMAP_PROXY_PROXY_H

#include "tmap.h"

/* Whether an evaluation can be shared among ranks: in-context, with more
 * than one slice. */
bool proxy_splits(const struct tmap_proxy *px);

/* From now on, proxy_compute is a collective call: every rank makes it
 * with the same arguments, scores its share of the slices, and gets the
 * value (only when proxy_splits). */
void proxy_set_collective(struct tmap_proxy *px, bool collective);

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

/* The fine-tune proxy trains copies of the model: one whose tensors
 * llama.cpp cannot train (quantized, F16) is refused here, before a run
 * spends its scoring pass, not at the first evaluation; so is one whose
 * copies, one for each of the `copies` processes that may train at once on
 * this host, would not fit its memory. TMAP_OK for the ICL proxy. */
enum tmap_status proxy_check_model(struct tmap_model *model, const struct tmap_proxy_params *p, int copies,
                                   struct tmap_error *err);

#endif
