/*
 * dist.h - the ranks of a distributed (MPI) run, and the few collectives
 * tmap needs (docs/distributed.md).
 *
 * Every call here works in every build: without MPI (no TMAP_MPI), or with
 * MPI but not launched by mpirun/srun, there is one rank and each
 * collective is the identity. So the callers (score.c, proxy.c, search)
 * have one code path, and a single process never touches MPI at all.
 *
 * Only the thread that called tmap_dist_init calls these
 * (MPI_THREAD_FUNNELED): llama.cpp's and OpenMP's workers never do.
 */
#ifndef TMAP_DIST_DIST_H
#define TMAP_DIST_DIST_H

#include "tmap.h"

#include <stddef.h>

/* This process's rank and the number of ranks (0 and 1 without MPI). */
int dist_rank(void);
int dist_size(void);

/* The ranks on this rank's host, itself included (1 without MPI): what
 * share of the host's memory each may count on. */
int dist_local_size(void);

/* The host name of a rank (gathered at start, so rank 0 can name the host
 * of any rank in a message); "" for a rank out of range. */
const char *dist_host(int rank);

/* A send in flight (dist_send_start). It and the buffer sent must stay
 * where they are, untouched, until dist_send_wait. */
struct dist_pending {
    void              *requests; /* MPI_Request[n_requests] */
    int                n_requests;
    unsigned long long size;     /* the first message: the size of the rest */
};

/* Starts sending n bytes to rank dest and returns at once: the sender
 * computes on while the message waits for its receiver, which posts
 * dist_recv with the same tag. Returns non-zero on failure. */
int dist_send_start(const void *buf, size_t n, int dest, int tag, struct dist_pending *p);

/* Waits for a started send (nothing when none is in flight). */
int dist_send_wait(struct dist_pending *p);

/* Receives the next message with this tag from rank src into a new buffer
 * (malloc'd; free it), whatever its size. */
int dist_recv(int src, int tag, void **buf, size_t *n);

/* The rank of some sender whose next message with this tag has arrived
 * (dist_recv will take it at once), or -1 when none has: a rank that has
 * its own work checks for the others' between two pieces of it. */
int dist_poll(int tag);

/* Rank root's n bytes, copied into every other rank's buf. */
int dist_bcast(void *buf, size_t n, int root);

/* Every rank gives counts[rank] doubles; every rank gets them all,
 * concatenated in rank order, in out (sum of counts). */
int dist_allgather_doubles(const double *mine, double *out, const size_t *counts);

/* The status rank root had, told to every rank, with its message (as
 * "rank ROOT (HOST): message" on the others): a collective call must stop
 * on every rank when it fails on one. */
enum tmap_status dist_share_status(enum tmap_status st, struct tmap_error *err, int root);

/* The worst status of any rank, on every rank: for a step that may fail
 * on any of them (out of memory, inputs unlike rank 0's). A rank that did
 * not fail itself gets the failed rank's message, as "rank R (HOST):
 * message"; of several, the one with the worst status, then the lowest
 * rank. */
enum tmap_status dist_worst_status(enum tmap_status st, struct tmap_error *err);

/* Waits until every rank gets here. */
void dist_barrier(void);

#endif
