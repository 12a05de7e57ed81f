/*
 * score_dist.c - `tmap score` over MPI ranks (docs/distributed.md): the
 * batches of a target are shared out by their estimated cost
 * (plan_owners), every rank sends what it computes to rank 0, the one
 * store writer, which stores them in pool order (score_as_rank0), and a
 * failure anywhere stops every rank at the first batch that will not be
 * stored. score.c computes and stores the batches themselves; scorer.h is
 * what the two share.
 */
#include "indicators/scorer.h"
#include "util/clock.h"
#include "util/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Batches between ranks                                                    */
/* ------------------------------------------------------------------------ */

/* What a rank sends rank 0 for one batch: a head, n wire items, then n
 * embeddings of dim floats (zeros where none was computed). Both ends are
 * this same binary, so the structs travel as they are. */
struct wire_head {
    struct tmap_error err;     /* status TMAP_OK, or why the batch failed */
    uint64_t          n_tokens, n_decode_calls;
    uint64_t          n;
    uint32_t          stopped; /* no batch: the rank stopped because rank 0 failed */
};

struct wire_item {
    double   values[TMAP_IND_COUNT];
    double   loss;
    uint32_t computed;
    int32_t  n_response;
    uint8_t  emb_done, main_done, skipped, copy;
};

static size_t wire_size(const struct scorer *sc, size_t n)
{
    return sizeof(struct wire_head) + n * (sizeof(struct wire_item) + (size_t)sc->dim * sizeof(float));
}

/* Batch messages are tagged by target, so the validation set's never
 * match the pool's. TAG_STOP is rank 0's word to the other ranks, exactly
 * one per target and rank: at its first failure (stop computing) or once
 * it has taken every batch (nothing is left to compute). */
enum { TAG_POOL = 1, TAG_VALIDATION = 2, TAG_STOP = 3 };

static int wire_tag(const struct target *t)
{
    return t->scores ? TAG_POOL : TAG_VALIDATION;
}

/* Waits for the send in one slot, if any, and frees its bytes. */
static enum tmap_status finish_send(struct scorer *sc, size_t slot)
{
    int rc = dist_send_wait(&sc->sending[slot]);
    free(sc->send_buf[slot]);
    sc->send_buf[slot] = NULL;
    if (rc != 0)
        return tmap_fail(sc->err, TMAP_ERR_IO, "rank %d (%s): could not send a batch to rank 0", sc->rank,
                         dist_host(sc->rank));
    return TMAP_OK;
}

/* Waits for every batch in flight. */
static enum tmap_status finish_sending(struct scorer *sc)
{
    enum tmap_status st = TMAP_OK;
    for (size_t slot = 0; slot < IN_FLIGHT; slot++) {
        enum tmap_status one = finish_send(sc, slot);
        st = st ? st : one;
    }
    return st;
}

/* (scorer.h) */
enum tmap_status scorer_send_batch(struct scorer *sc, struct target *t, const struct item *items, size_t n,
                                   enum tmap_status computed, uint64_t tokens, uint64_t calls, bool stopped)
{
    size_t size = wire_size(sc, computed ? 0 : n);
    char *buf = calloc(1, size);
    if (!buf)
        return tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory sending a batch of %zu", n);
    struct wire_head *h = (struct wire_head *)buf;
    if (computed && sc->err)
        h->err = *sc->err;
    h->err.status = computed;
    h->stopped = stopped;
    h->n_tokens = tokens;
    h->n_decode_calls = calls;
    h->n = computed ? 0 : n;
    struct wire_item *w = (struct wire_item *)(h + 1);
    float *emb = (float *)(w + h->n);
    for (size_t i = 0; i < h->n; i++) {
        const struct item *it = &items[i];
        w[i] = (struct wire_item){ .loss = it->loss, .computed = it->computed, .n_response = it->n_response,
                                   .emb_done = it->emb_done, .main_done = it->main_done, .skipped = it->skipped,
                                   .copy = it->copy };
        for (int j = 0; j < TMAP_IND_COUNT && t->scores; j++)
            w[i].values[j] = *scorer_cell(t, it->row, (enum tmap_indicator)j);
        if (it->emb_done)
            memcpy(emb + i * (size_t)sc->dim, t->emb + it->row * (size_t)sc->dim, (size_t)sc->dim * sizeof *emb);
    }
    /* The rank computes its next batches while rank 0 is still busy with
     * its own; it waits only when IN_FLIGHT sends are still untaken. */
    size_t slot = sc->n_sent++ % IN_FLIGHT;
    enum tmap_status st = finish_send(sc, slot);
    if (!st && dist_send_start(buf, size, 0, wire_tag(t), &sc->sending[slot]) != 0)
        st = tmap_fail(sc->err, TMAP_ERR_IO, "rank %d (%s): could not send a batch to rank 0", sc->rank,
                       dist_host(sc->rank));
    if (st)
        free(buf);
    else
        sc->send_buf[slot] = buf;
    return st;
}

/* Rank 0 takes a batch from its owner into the table and the items; a
 * failed batch comes back as its rank's error. */
static enum tmap_status receive_batch(struct scorer *sc, struct target *t, int owner, size_t begin,
                                      struct item *items, size_t n)
{
    void *buf;
    size_t size;
    if (dist_recv(owner, wire_tag(t), &buf, &size) != 0)
        return tmap_fail(sc->err, TMAP_ERR_IO, "no batch from rank %d (%s)", owner, dist_host(owner));
    const struct wire_head *h = buf;
    enum tmap_status st = TMAP_OK;
    if (size < sizeof *h || (h->err.status == TMAP_OK && size != wire_size(sc, n)))
        st = tmap_fail(sc->err, TMAP_ERR_IO, "rank %d (%s) sent %zu bytes for a batch of %zu", owner,
                       dist_host(owner), size, n);
    else if (h->stopped) { /* how far it got, for the user; the failure is rank 0's own */
        scorer_notice(sc, "%s", h->err.message);
        st = tmap_fail(sc->err, h->err.status, "%s", h->err.message);
    } else if (h->err.status != TMAP_OK)
        st = tmap_fail(sc->err, h->err.status, "rank %d (%s): %s", owner, dist_host(owner), h->err.message);
    if (st) {
        free(buf);
        return st;
    }
    sc->remote_tokens += h->n_tokens;
    sc->remote_calls += h->n_decode_calls;
    const struct wire_item *w = (const struct wire_item *)(h + 1);
    const float *emb = (const float *)(w + n);
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        it->row = begin + i;
        tmap_pool_record(t->pool, it->row, &it->rec);
        it->loss = w[i].loss;
        it->computed = w[i].computed;
        it->n_response = w[i].n_response;
        it->emb_done = w[i].emb_done;
        it->main_done = w[i].main_done;
        it->skipped = w[i].skipped;
        it->copy = w[i].copy;
        /* Only what the owner computed: rank 0 read the stored values
         * itself (plan_missing), and copies come from their first row. */
        for (int j = 0; j < TMAP_IND_COUNT && t->scores; j++)
            if (it->computed & BIT(j))
                *scorer_cell(t, it->row, (enum tmap_indicator)j) = w[i].values[j];
        if (w[i].emb_done) {
            memcpy(t->emb + it->row * (size_t)sc->dim, emb + i * (size_t)sc->dim, (size_t)sc->dim * sizeof *emb);
            t->has_emb[it->row] = true;
        }
    }
    free(buf);
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Sharing the batches among ranks                                          */
/* ------------------------------------------------------------------------ */

/* What a row will cost to compute, in bytes of text decoded: each pass
 * reads the record once (ifd's second pass, the response alone, about
 * half of it); copies and stored values cost nothing. It only has to rank
 * batches against each other: on the bench pool the measured time per
 * byte varied by about 7% from batch to batch (15% at most). */
static double row_cost(const struct scorer *sc, const struct target *t, size_t row)
{
    uint32_t missing = t->missing[row];
    bool emb = t->flags[row] & FLAG_WANT_EMB;
    if (t->flags[row] & FLAG_COPY)
        return 0;
    struct tmap_record rec;
    tmap_pool_record(t->pool, row, &rec);
    double bytes = (double)rec.raw_bytes, passes = 0;
    if ((missing & DECODED) || (emb && sc->embedder == sc->model))
        passes += 1;
    if (missing & BIT(TMAP_IND_IFD))
        passes += 0.5;
    passes += (missing & BIT(TMAP_IND_QUALITY)) ? 1 : 0;
    passes += (missing & BIT(TMAP_IND_COMPLEXITY)) ? 1 : 0;
    if (emb && sc->embedder != sc->model)
        passes += 1;
    return bytes * passes;
}

struct batch_cost {
    double cost;
    size_t k;
};

static int dearer_first(const void *a, const void *b)
{
    const struct batch_cost *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? 1 : -1;
    return (x->k > y->k) - (x->k < y->k);
}

/* Who computes each batch of a target: the dearest first, each to the rank
 * with the least work so far (longest processing time first), so that the
 * ranks finish the target together whatever its batches cost; a batch
 * with nothing to compute (all stored) stays with rank 0, which holds its
 * values already. Each target is shared out on its own: the ranks meet at
 * its end. Every rank builds the same table from the shared plan. Round
 * robin (batch b to rank b mod N) gave one rank 55% of the bench pool's
 * work, and every stored batch of a resumed run to the ranks they went to
 * before. Returns false when out of memory. */
static bool plan_owners(const struct scorer *sc, const struct target *t, int *owner, size_t n_batches)
{
    size_t n = tmap_pool_size(t->pool), b = sc->p->batch_samples;
    struct batch_cost *order = malloc((n_batches ? n_batches : 1) * sizeof *order);
    double *load = calloc((size_t)sc->size, sizeof *load);
    if (!order || !load) {
        free(order);
        free(load);
        return false;
    }
    for (size_t k = 0; k < n_batches; k++) {
        order[k] = (struct batch_cost){ .cost = 0, .k = k };
        for (size_t i = k * b; i < n && i < (k + 1) * b; i++)
            order[k].cost += row_cost(sc, t, i);
    }
    qsort(order, n_batches, sizeof *order, dearer_first);
    for (size_t j = 0; j < n_batches; j++) {
        int best = 0;
        for (int r = 1; r < sc->size && order[j].cost > 0; r++)
            if (load[r] < load[best])
                best = r;
        owner[order[j].k] = best;
        load[best] += order[j].cost;
    }
    free(order);
    free(load);
    return true;
}

/* Rank 0's stop word: the first batch that will not be stored (every
 * batch before it still will be). An unreadable word stops everything. */
static size_t receive_stop(bool *told)
{
    void *word = NULL;
    size_t size = 0;
    uint64_t first = 0;
    *told = dist_recv(0, TAG_STOP, &word, &size) == 0;
    if (*told && size == sizeof first)
        memcpy(&first, word, sizeof first);
    free(word);
    return first > SIZE_MAX ? SIZE_MAX : (size_t)first;
}

/* A rank other than 0: its own batches in order, each sent as it is done.
 * After a failure (sent to rank 0 with the batch) it computes nothing
 * more. Between two batches it looks for rank 0's stop word, which names
 * the first batch that will not be stored: it still computes its batches
 * before that one, which will be (a slow rank would otherwise leave a hole
 * that one process would have filled, and the store would keep less), and
 * none from it on, which would only delay the end of the job (every rank
 * used to compute its whole share first). In place of that batch it sends
 * rank 0 a marker saying how far it got. */
static enum tmap_status score_as_worker(struct scorer *sc, struct target *t, const int *owner, size_t n_batches)
{
    enum tmap_status st = TMAP_OK;
    size_t mine = 0, done = 0, stop_at = SIZE_MAX;
    bool told = false;
    for (size_t k = 0; k < n_batches; k++)
        mine += owner[k] == sc->rank;
    for (size_t k = 0; k < n_batches && !st; k++) {
        if (owner[k] != sc->rank)
            continue;
        if (!told && dist_poll(TAG_STOP) == 0)
            stop_at = receive_stop(&told);
        if (k >= stop_at) {
            st = tmap_fail(sc->err, TMAP_ERR_IO, "rank %d (%s) stopped after %zu of its %zu batches, as rank 0 failed",
                           sc->rank, dist_host(sc->rank), done, mine);
            scorer_send_batch(sc, t, NULL, 0, st, 0, 0, true);
            break;
        }
        size_t count = scorer_batch_count(sc, t, k);
        struct item *items = calloc(count, sizeof *items);
        st = scorer_compute_own(sc, t, k * sc->p->batch_samples, items, count);
        scorer_free_items(items, count);
        done++;
    }
    enum tmap_status sent = finish_sending(sc);
    if (!told) { /* wait for the word, so that no message is left unreceived */
        receive_stop(&told);
        if (!told && !st && !sent)
            sent = tmap_fail(sc->err, TMAP_ERR_IO, "rank %d (%s): no word from rank 0 at the end of the scoring",
                             sc->rank, dist_host(sc->rank));
    }
    return st ? st : sent;
}

/*
 * Rank 0 of a distributed run computes its own batches back to back and,
 * between two of them, takes whatever batches the other ranks have sent.
 * It stores them strictly in pool order, each as soon as every batch
 * before it is in (the frontier), so a killed job keeps what one process
 * would have kept. (Walking the batches in pool order, rank 0 waited for
 * each of the others' before its own next one: idle for 7 s of a 45 s
 * run.) It computes at most `window` batches past the frontier, which
 * bounds what it holds. After a failure it stores nothing from the first
 * failed batch on and tells the other ranks so (send_stop); every rank,
 * rank 0 too, still computes its batches before that one, so the store
 * keeps all that one process would have kept however far behind a rank
 * was; rank 0 takes every batch the others send, so that none of them
 * waits forever on a send.
 */
struct held {
    struct item     *items;
    bool             in;   /* computed or received (or given up) */
    enum tmap_status st;
};

struct rank0 {
    struct scorer   *sc;
    struct target   *t;
    const int       *owner;
    size_t           n_batches, frontier, failed_at;
    struct held     *held;
    size_t          *next;        /* per rank: the next batch it owes rank 0 */
    bool            *rank_failed;
    enum tmap_status failed;
    struct dist_pending *stop;    /* per rank: the stop word in flight */
    uint64_t         stop_word;   /* its text: failed_at when it was sent */
    bool             stop_sent;
};

/* Sends every other rank the stop word (once per target): the first batch
 * that will not be stored, SIZE_MAX at the end of a run that did not fail.
 * A later failure at an earlier batch is not sent: the others then compute
 * a few batches that are not stored, which costs time, not data. */
static void send_stop(struct rank0 *z)
{
    if (z->stop_sent)
        return;
    z->stop_sent = true;
    z->stop_word = z->failed_at;
    for (int r = 1; r < z->sc->size; r++)
        dist_send_start(&z->stop_word, sizeof z->stop_word, r, TAG_STOP, &z->stop[r]);
}

static void note_failure(struct rank0 *z, size_t k, enum tmap_status st)
{
    if (k < z->failed_at)
        z->failed_at = k;
    if (!z->failed) {
        z->failed = st;
        send_stop(z); /* the others' batches from failed_at on would not be stored */
    }
}

/* Takes rank r's next batch (waiting for it if it has not arrived). */
static void take_batch(struct rank0 *z, int r)
{
    struct scorer *sc = z->sc;
    size_t k = z->next[r], count;
    if (k >= z->n_batches) {
        /* Nothing was owed: read it so it stops matching, and give up. */
        void *buf;
        size_t size;
        if (dist_recv(r, wire_tag(z->t), &buf, &size) == 0)
            free(buf);
        z->rank_failed[r] = true;
        note_failure(z, z->frontier, tmap_fail(sc->err, TMAP_ERR_IO, "rank %d (%s) sent a batch it was not given", r,
                                               dist_host(r)));
        return;
    }
    count = scorer_batch_count(sc, z->t, k);
    struct item *items = calloc(count, sizeof *items);
    /* Once something has failed, the first error is the one kept. */
    struct tmap_error scratch, *keep = sc->err;
    if (z->failed)
        sc->err = &scratch;
    double start = tmap_now_seconds();
    enum tmap_status st = items ? receive_batch(sc, z->t, r, k * sc->p->batch_samples, items, count)
                                : tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory receiving a batch of %zu", count);
    sc->waited += tmap_now_seconds() - start;
    sc->err = keep;
    z->held[k] = (struct held){ .items = items, .in = true, .st = st };
    if (st) {
        z->rank_failed[r] = true;
        note_failure(z, k, st);
    }
    do
        z->next[r]++;
    while (z->next[r] < z->n_batches && z->owner[z->next[r]] != r);
}

/* Stores the batches at the frontier that are in, in order. */
static void advance_frontier(struct rank0 *z)
{
    struct scorer *sc = z->sc;
    size_t n = tmap_pool_size(z->t->pool), b = sc->p->batch_samples;
    while (z->frontier < z->n_batches && z->held[z->frontier].in) {
        size_t k = z->frontier, count = scorer_batch_count(sc, z->t, k);
        struct held *h = &z->held[k];
        if (k < z->failed_at && !h->st) {
            /* Once something has failed, the first error is the one kept. */
            struct tmap_error scratch, *keep = sc->err;
            if (z->failed)
                sc->err = &scratch;
            enum tmap_status st = scorer_finish_batch(sc, z->t, h->items, count);
            sc->err = keep;
            if (st)
                note_failure(z, k, st);
            else if (!z->failed)
                scorer_report_progress(sc, z->t->stage, k * b + count, n);
        }
        scorer_free_items(h->items, count);
        h->items = NULL;
        z->frontier++;
    }
}

/* Rank 0's bookkeeping, allocated before the ranks agree to start: a rank
 * 0 that could not hold it would leave the others waiting on their sends. */
static bool rank0_alloc(struct rank0 *z, size_t n_batches, int size)
{
    z->held = calloc(n_batches ? n_batches : 1, sizeof *z->held);
    z->next = calloc((size_t)size, sizeof *z->next);
    z->rank_failed = calloc((size_t)size, sizeof *z->rank_failed);
    z->stop = calloc((size_t)size, sizeof *z->stop);
    return z->held && z->next && z->rank_failed && z->stop;
}

static void rank0_free(struct rank0 *z)
{
    free(z->held);
    free(z->next);
    free(z->rank_failed);
    free(z->stop);
}

static enum tmap_status score_as_rank0(struct scorer *sc, struct target *t, const int *owner, size_t n_batches,
                                       struct rank0 *bookkeeping)
{
    struct rank0 z = *bookkeeping;
    z.sc = sc;
    z.t = t;
    z.owner = owner;
    z.n_batches = n_batches;
    z.failed_at = SIZE_MAX;
    z.stop_sent = false;
    size_t size = (size_t)sc->size, window = 2 * size + 2;
    for (size_t r = 0; r < size; r++) {
        z.next[r] = 0;
        while (z.next[r] < n_batches && owner[z.next[r]] != (int)r)
            z.next[r]++;
    }
    /* After a failure, rank 0's own batches before it are still computed:
     * they will be stored. */
    for (size_t k = 0; k < n_batches && k < z.failed_at; k++) {
        if (owner[k] != 0)
            continue;
        while (k >= z.frontier + window && k < z.failed_at) {
            if (!z.held[z.frontier].in)
                take_batch(&z, owner[z.frontier]);
            advance_frontier(&z);
        }
        if (k >= z.failed_at)
            break;
        size_t count = scorer_batch_count(sc, t, k);
        struct item *items = calloc(count, sizeof *items);
        enum tmap_status st = scorer_compute_own(sc, t, k * sc->p->batch_samples, items, count);
        z.held[k] = (struct held){ .items = items, .in = true, .st = st };
        if (st)
            note_failure(&z, k, st);
        for (int r; (r = dist_poll(wire_tag(t))) >= 0;)
            take_batch(&z, r);
        advance_frontier(&z);
    }
    /* The rest, in order: what the others still owe (a rank that failed
     * sends nothing after its failed batch or its marker; rank 0 computed
     * every batch of its own before failed_at, and none after). */
    while (z.frontier < n_batches) {
        struct held *h = &z.held[z.frontier];
        int r = owner[z.frontier];
        if (!h->in && (r == 0 || z.rank_failed[r]))
            h->in = true; /* never coming; past the failure, so never stored */
        else if (!h->in)
            take_batch(&z, r);
        advance_frontier(&z);
    }
    send_stop(&z); /* every batch is in: the others may leave */
    for (int r = 1; r < sc->size; r++)
        dist_send_wait(&z.stop[r]);
    return z.failed;
}

/* Distributed: rank 0 reads what the store holds for every row, once,
 * before any batch (its table gets the stored values), and tells every
 * rank what is missing. The other ranks never open the store, which then
 * only has to be reachable from rank 0's host; and what a batch computes
 * depends on the store at the start alone. */
static enum tmap_status plan_missing(struct scorer *sc, struct target *t)
{
    size_t n = tmap_pool_size(t->pool);
    t->missing = calloc(n ? n : 1, sizeof *t->missing);
    t->flags = calloc(n ? n : 1, sizeof *t->flags);
    enum tmap_status st = t->missing && t->flags ? TMAP_OK
                                                 : tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory planning %zu samples", n);
    bool reading = !st && sc->rank == 0 && tmap_store_begin_read(sc->store); /* one snapshot, one lock */
    for (size_t i = 0; i < n && !st && sc->rank == 0; i++) {
        struct item it = { .row = i };
        tmap_pool_record(t->pool, i, &it.rec);
        scorer_lookup_stored(sc, t, &it);
        t->missing[i] = it.missing;
        t->flags[i] = (uint8_t)((it.want_emb ? FLAG_WANT_EMB : 0) | (it.copy ? FLAG_COPY : 0));
    }
    if (reading)
        tmap_store_rollback(sc->store);
    st = dist_share_status(st, sc->err, 0);
    if (!st && (dist_bcast(t->missing, n * sizeof *t->missing, 0) != 0 ||
                dist_bcast(t->flags, n * sizeof *t->flags, 0) != 0))
        st = tmap_fail(sc->err, TMAP_ERR_IO, "could not share the plan of %zu samples among the ranks", n);
    return st;
}


enum tmap_status scorer_score_distributed(struct scorer *sc, struct target *t, size_t n_batches,
                                          enum tmap_status failed)
{
    int *owner = calloc(n_batches ? n_batches : 1, sizeof *owner);
    struct rank0 z = { 0 };
    bool ready = owner && (sc->rank != 0 || rank0_alloc(&z, n_batches, sc->size));
    if (!failed && !ready)
        failed = tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory for %zu batches", n_batches);
    failed = dist_worst_status(failed, sc->err);
    if (!failed)
        failed = plan_missing(sc, t);
    if (!failed && !plan_owners(sc, t, owner, n_batches))
        failed = tmap_fail(sc->err, TMAP_ERR_NOMEM, "out of memory sharing %zu batches among the ranks", n_batches);
    failed = dist_worst_status(failed, sc->err);
    if (!failed)
        failed = sc->rank == 0 ? score_as_rank0(sc, t, owner, n_batches, &z) : score_as_worker(sc, t, owner, n_batches);
    rank0_free(&z);
    free(owner);
    return dist_share_status(failed, sc->err, 0);
}
