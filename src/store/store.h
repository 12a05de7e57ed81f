/*
 * store.h - the score store: every indicator value, embedding and proxy
 * value tmap has computed, in one SQLite file (docs/design.md section 8).
 *
 * Scoring asks the store before it computes anything and writes each batch of
 * results in one transaction, so a killed run loses at most the batch in
 * flight and a second run over the same pool and model recomputes nothing.
 *
 * Keys: the model key, the sample's 16-byte hash (tmap_record.hash) and the
 * indicator id. The model key is opaque text: the model's fingerprint (32
 * hex digits), optionally with a suffix for any setting the value depends on
 * ("<fingerprint>/plain" for a prompt template), or "" for the model-free
 * text indicators. The file is in WAL mode with synchronous=NORMAL: a commit
 * survives the process being killed (only a power cut can undo the last
 * ones), and readers never block the writer.
 */
#ifndef TMAP_STORE_STORE_H
#define TMAP_STORE_STORE_H

#include "tmap.h"

#include <stdbool.h>
#include <stdint.h>

struct tmap_store;

/* Opens the store at path, creating the file and its tables if missing. A
 * file that is not a SQLite database, is read-only, or holds a newer schema
 * than this tmap knows fails with a message naming the path. */
enum tmap_status tmap_store_open(const char *path, struct tmap_store **out,
                                 struct tmap_error *err);

/* Closes the store (NULL is fine); an open transaction is rolled back. */
void tmap_store_close(struct tmap_store *store);

/* One transaction per batch: puts between begin and commit land together or
 * not at all. Begin takes the write lock at once (BEGIN IMMEDIATE), so two
 * writers wait for each other there, up to the busy timeout, rather than
 * failing half-way through a batch. Puts outside a transaction commit one by
 * one. */
enum tmap_status tmap_store_begin(struct tmap_store *store, struct tmap_error *err);
enum tmap_status tmap_store_commit(struct tmap_store *store, struct tmap_error *err);

/* Drops the open transaction's puts; does nothing when none is open. */
void tmap_store_rollback(struct tmap_store *store);

/* Many gets in one read transaction (one snapshot, one lock): each get on
 * its own takes and drops SQLite's shared lock, a pair of fcntl calls. The
 * end is tmap_store_rollback. Returns false (and the gets run one by one)
 * if SQLite would not start it. */
bool tmap_store_begin_read(struct tmap_store *store);

/* Stores one indicator value, replacing any earlier one; NaN is stored as
 * NULL (a sample the indicator could not score) and read back as NaN. */
enum tmap_status tmap_store_put_value(struct tmap_store *store, const char *model,
                                      const uint8_t sample[16], const char *indicator,
                                      double value, struct tmap_error *err);

/* True and *value when the store has this value. A read that fails (the file
 * is locked past the timeout, say) also answers false: the caller recomputes,
 * which is never wrong. */
bool tmap_store_get_value(struct tmap_store *store, const char *model, const uint8_t sample[16],
                          const char *indicator, double *value);

/* Stores a sample's embedding under the embedding model's fingerprint, as
 * dim little-endian IEEE-754 floats. */
enum tmap_status tmap_store_put_embedding(struct tmap_store *store, const char *model,
                                          const uint8_t sample[16], const float *vec,
                                          int32_t dim, struct tmap_error *err);

/* False when the embedding is absent or has another dimension. */
bool tmap_store_get_embedding(struct tmap_store *store, const char *model,
                              const uint8_t sample[16], float *vec, int32_t dim);

/* Memoised proxy values (the ICL score of one candidate subset), keyed by a
 * hex hash string that the proxy computes from everything the value depends
 * on. NaN round-trips as for indicator values. */
enum tmap_status tmap_store_put_proxy(struct tmap_store *store, const char *key, double value,
                                      struct tmap_error *err);
bool tmap_store_get_proxy(struct tmap_store *store, const char *key, double *value);

#endif
