/*
 * scorer.h - what the two halves of `tmap score` share: score.c (batches,
 * the store, whole runs) and score_dist.c (sharing the batches among MPI
 * ranks). Private to src/indicators; the public face is tmap_score() in
 * tmap.h.
 */
#ifndef TMAP_SCORER_H
#define TMAP_SCORER_H

#include "dist/dist.h"
#include "indicators/rating.h"
#include "model/model.h"
#include "store/store.h"
#include "tmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BIT(ind) (1u << (ind))

/* Indicators with one stored value per sample (the rest come from
 * embeddings at the end), and the groups that share a model pass. */
enum {
    PER_SAMPLE = BIT(TMAP_IND_LOSS) | BIT(TMAP_IND_IFD) | BIT(TMAP_IND_QUALITY) | BIT(TMAP_IND_COMPLEXITY) |
                 BIT(TMAP_IND_STEPS) | BIT(TMAP_IND_LENGTH) | BIT(TMAP_IND_LEXICAL) | BIT(TMAP_IND_NUMERACY) |
                 BIT(TMAP_IND_SUPPORT) | BIT(TMAP_IND_COVERAGE),
    TEXT_ONLY  = BIT(TMAP_IND_STEPS) | BIT(TMAP_IND_LEXICAL) | BIT(TMAP_IND_NUMERACY) | BIT(TMAP_IND_COVERAGE),
    /* The main pass tokenizes the sample for all four; length needs no
     * more than that, the other three decode it. */
    MAIN_PASS  = BIT(TMAP_IND_LOSS) | BIT(TMAP_IND_IFD) | BIT(TMAP_IND_LENGTH) | BIT(TMAP_IND_SUPPORT),
    DECODED    = BIT(TMAP_IND_LOSS) | BIT(TMAP_IND_IFD) | BIT(TMAP_IND_SUPPORT),
    RATINGS    = BIT(TMAP_IND_QUALITY) | BIT(TMAP_IND_COMPLEXITY),
    NEIGHBOUR  = BIT(TMAP_IND_DIVERSITY) | BIT(TMAP_IND_RELEVANCE),
};

/* The rows being scored: the pool (with a score table), or the validation
 * set (embeddings only, for relevance). */
struct target {
    const struct tmap_pool *pool;
    struct tmap_scores     *scores; /* NULL for the validation set */
    uint32_t                mask;   /* per-sample indicators wanted */
    bool                    embed;  /* embeddings wanted */
    float                  *emb;    /* n x dim */
    bool                   *has_emb;
    size_t                 *first;  /* per row: the first row with the same content */
    uint32_t               *missing; /* distributed: per row, what rank 0's store lacks */
    uint8_t                *flags;   /* ... and FLAG_* */
    const char             *stage;
};

enum { FLAG_WANT_EMB = 1, FLAG_COPY = 2 };

/* Batches a rank other than 0 may have sent and not seen received yet.
 * Rank 0 takes batches only between two of its own, and a send completes
 * only once taken: with one in flight, rank 1 sat 5 s of a 50 s bench run
 * waiting for rank 0 to finish a batch. */
enum { IN_FLIGHT = 4 };

struct scorer {
    const struct tmap_score_params *p;
    struct tmap_model *model, *judge, *embedder;
    struct tmap_store *store;
    struct tmap_rater  rater;
    bool               rater_ready;
    enum tmap_template tmpl; /* what the target model actually reads */
    char key_model[48], key_judge[48], key_embed[48];
    int32_t dim;
    struct tmap_score_stats stats;
    struct tmap_model_counters work_at_start;
    uint64_t remote_tokens, remote_calls; /* decoded by the other ranks (rank 0) */
    struct dist_pending sending[IN_FLIGHT]; /* batches sent, in flight (ranks > 0) */
    void   *send_buf[IN_FLIGHT];            /* ... and their bytes */
    size_t  n_sent;
    int     rank, size;                   /* 0 and 1 unless distributed */
    double  t0;
    double  busy, waited;                 /* seconds computing batches, and (rank 0) waiting
                                           * for the others' */
    size_t  n_batches;                    /* ... batches this rank computed */
    struct tmap_error *err;
};

/* One sample of the batch in flight. */
struct item {
    size_t             row;
    struct tmap_sample s;
    struct tmap_record rec;
    uint32_t           missing;      /* per-sample indicators to compute */
    uint32_t           computed;     /* ... and those computed */
    bool               want_emb;
    bool               emb_done;
    int32_t           *prompt, n_prompt, *response, n_response; /* target tokens */
    int32_t           *rating[2], n_rating[2];                  /* quality, complexity */
    int32_t           *eprompt, n_eprompt, *eresponse, n_eresponse; /* other embedder */
    double             loss, loss_uncond;
    double            *token_lp;     /* support: each response token's log p (main pass) */
    int32_t            answer_from, answer_to; /* support: the answer's tokens; from == to: none */
    double             support;
    double             rating_lp[2][TMAP_RATING_LEVELS];
    bool               skipped;
    bool               main_done; /* the main pass ran (its loss is stored) */
    bool               copy;      /* same content as a row of an earlier batch */
};

/* ---- score.c ----------------------------------------------------------- */

/* A notice through params.notice (rank 0's, under MPI). */
void scorer_notice(const struct scorer *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The table's cell of one row and indicator. */
double *scorer_cell(struct target *t, size_t row, enum tmap_indicator ind);

/* Fills it->missing (and what the store holds) for the row of it, or
 * marks it a copy of an earlier row with the same content. */
void scorer_lookup_stored(struct scorer *sc, struct target *t, struct item *it);

/* Computes one batch of this rank's (a rank other than 0 sends it to rank
 * 0, failed or not), then stores and copies it (rank 0). */
enum tmap_status scorer_compute_own(struct scorer *sc, struct target *t, size_t begin, struct item *items, size_t n);
enum tmap_status scorer_finish_batch(struct scorer *sc, struct target *t, struct item *items, size_t n);
void scorer_free_items(struct item *items, size_t n);

/* Rows in batch k of the target. */
size_t scorer_batch_count(const struct scorer *sc, const struct target *t, size_t k);

void scorer_report_progress(struct scorer *sc, const char *stage, size_t done, size_t total);
struct tmap_model_counters scorer_work_so_far(const struct scorer *sc);

/* ---- score_dist.c ------------------------------------------------------ */

/* Sends a batch to rank 0: its values, or why it failed (computed), or
 * (stopped) that the rank stopped before it. */
enum tmap_status scorer_send_batch(struct scorer *sc, struct target *t, const struct item *items, size_t n,
                                   enum tmap_status computed, uint64_t tokens, uint64_t calls, bool stopped);

/* Scores a target over every rank (sc->size > 1), failed being this rank's
 * status so far (the ranks agree on it before any batch); returns the
 * status every rank shares. */
enum tmap_status scorer_score_distributed(struct scorer *sc, struct target *t, size_t n_batches,
                                          enum tmap_status failed);

#endif
