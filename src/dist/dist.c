/*
 * dist.c - ranks and collectives over MPI_COMM_WORLD, or one rank without
 * MPI (see dist.h).
 *
 * MPI is started only when a launcher started this process (mpirun sets
 * OMPI_COMM_WORLD_SIZE, PMIx launchers such as srun set PMIX_RANK, MPICH's
 * hydra PMI_SIZE): a plain `tmap score` stays one process and never pays
 * MPI's start-up. Errors are MPI's default, MPI_ERRORS_ARE_FATAL: a failed
 * send means a dead peer, and the launcher then stops the whole job and
 * names the rank and host (docs/distributed.md); a rank can do nothing
 * useful about it, so the return codes below are for the single-process
 * build's symmetry more than for recovery.
 */
#include "dist/dist.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef TMAP_MPI
#include <mpi.h>
#endif

enum { HOST_LEN = 64 };

static int   g_rank, g_size = 1, g_local_rank, g_local_size = 1;
#ifdef TMAP_MPI
static bool  g_started;
static bool  g_told_all;  /* a collective told every rank of a failure */
static bool  g_told_mine; /* ... and the failure was this rank's, its message sent to all */
static bool  g_met_at_end; /* tmap_dist_failed's barrier was the end's */
#endif
static char  g_host_single[HOST_LEN];
static char *g_hosts; /* size x HOST_LEN, every rank's host name */

static void own_host(char out[HOST_LEN])
{
    if (gethostname(out, HOST_LEN) != 0)
        strcpy(out, "?");
    out[HOST_LEN - 1] = '\0';
}

bool tmap_dist_available(void)
{
#ifdef TMAP_MPI
    return true;
#else
    return false;
#endif
}

#ifdef TMAP_MPI
static bool launched_by_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}
#endif

enum tmap_status tmap_dist_init(int *argc, char ***argv, struct tmap_error *err)
{
    own_host(g_host_single);
#ifdef TMAP_MPI
    if (g_started || !launched_by_mpi())
        return TMAP_OK;
    /* FUNNELED: only the main thread calls MPI; llama.cpp's and OpenMP's
     * threads compute between the calls. */
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return tmap_fail(err, TMAP_ERR_IO, "MPI_Init_thread failed");
    g_started = true;
    if (provided < MPI_THREAD_FUNNELED) {
        tmap_dist_finalize();
        return tmap_fail(err, TMAP_ERR_IO, "this MPI gives thread level %d, tmap needs MPI_THREAD_FUNNELED", provided);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* The rank among those on this host: which GPU this rank takes. */
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &g_local_rank);
    MPI_Comm_size(local, &g_local_size);
    MPI_Comm_free(&local);
    g_hosts = calloc((size_t)g_size, HOST_LEN);
    if (!g_hosts) {
        tmap_dist_finalize();
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for %d host names", g_size);
    }
    MPI_Allgather(g_host_single, HOST_LEN, MPI_CHAR, g_hosts, HOST_LEN, MPI_CHAR, MPI_COMM_WORLD);
#else
    (void)argc;
    (void)argv;
    (void)err;
#endif
    return TMAP_OK;
}

void tmap_dist_finalize(void)
{
#ifdef TMAP_MPI
    if (g_started) {
        /* MPI_Finalize waits for every rank spinning; the ranks done early
         * (all but rank 0 after scoring in `tmap run`) sleep here instead. */
        if (!g_met_at_end)
            dist_barrier();
        MPI_Finalize();
        g_started = false;
        g_told_all = g_told_mine = g_met_at_end = false;
    }
#endif
    free(g_hosts);
    g_hosts = NULL;
    g_rank = 0;
    g_size = 1;
    g_local_rank = 0;
    g_local_size = 1;
}

int tmap_dist_rank(void)
{
    return g_rank;
}

int tmap_dist_size(void)
{
    return g_size;
}

int tmap_dist_local_rank(void)
{
    return g_local_rank;
}

int dist_local_size(void)
{
    return g_local_size;
}

int dist_rank(void)
{
    return g_rank;
}

int dist_size(void)
{
    return g_size;
}

const char *dist_host(int rank)
{
    if (rank < 0 || rank >= g_size)
        return "";
    if (!g_hosts) {
        if (!g_host_single[0])
            own_host(g_host_single);
        return g_host_single;
    }
    return g_hosts + (size_t)rank * HOST_LEN;
}

#ifdef TMAP_MPI
/* MPI counts are ints: large buffers go in pieces of at most 1 GiB. */
static const size_t CHUNK = (size_t)1 << 30;

/* Waits for a request by polling with short sleeps. MPI's own blocking
 * calls spin a core while they wait, and a rank waits a lot (rank 0 for a
 * batch, the others for rank 0 at the end of a job): on a machine with as
 * many cores as ranks that spinning took the core the computing rank
 * needed. A message arrives at most ~1 ms late this way. */
static int wait_request_until(MPI_Request *req, double deadline)
{
    long ns = 20000;
    for (;;) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (done)
            return 0;
        if (MPI_Wtime() > deadline)
            return 1; /* still pending */
        struct timespec ts = { 0, ns };
        nanosleep(&ts, NULL);
        if (ns < 1000000)
            ns *= 2;
    }
}

static int wait_request(MPI_Request *req)
{
    return wait_request_until(req, INFINITY);
}
#endif

int dist_send_start(const void *buf, size_t n, int dest, int tag, struct dist_pending *p)
{
    p->requests = NULL;
    p->n_requests = 0;
#ifdef TMAP_MPI
    if (!g_started)
        return -1;
    /* The size, then the pieces: dist_recv's protocol. */
    size_t pieces = (n + CHUNK - 1) / CHUNK;
    MPI_Request *req = malloc((pieces + 1) * sizeof *req);
    if (!req)
        return -1;
    p->size = n;
    int k = 0, rc = MPI_Isend(&p->size, 1, MPI_UNSIGNED_LONG_LONG, dest, tag, MPI_COMM_WORLD, &req[k++]);
    for (size_t at = 0; rc == MPI_SUCCESS && at < n; at += CHUNK) {
        int len = (int)(n - at < CHUNK ? n - at : CHUNK);
        rc = MPI_Isend((const char *)buf + at, len, MPI_BYTE, dest, tag, MPI_COMM_WORLD, &req[k++]);
    }
    p->requests = req;
    p->n_requests = k;
    return rc == MPI_SUCCESS ? 0 : -1;
#else
    (void)buf;
    (void)n;
    (void)dest;
    (void)tag;
    return -1;
#endif
}

int dist_send_wait(struct dist_pending *p)
{
    int rc = 0;
#ifdef TMAP_MPI
    MPI_Request *req = p->requests;
    for (int k = 0; k < p->n_requests; k++)
        if (wait_request(&req[k]) != 0)
            rc = -1;
#endif
    free(p->requests);
    p->requests = NULL;
    p->n_requests = 0;
    return rc;
}

int dist_recv(int src, int tag, void **buf, size_t *n)
{
    *buf = NULL;
    *n = 0;
#ifdef TMAP_MPI
    if (!g_started)
        return -1;
    unsigned long long size;
    MPI_Request req;
    if (MPI_Irecv(&size, 1, MPI_UNSIGNED_LONG_LONG, src, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
        wait_request(&req) != 0)
        return -1;
    char *b = malloc(size ? size : 1);
    if (!b)
        return -1;
    for (size_t at = 0; at < size; at += CHUNK) {
        int len = (int)(size - at < CHUNK ? size - at : CHUNK);
        if (MPI_Irecv(b + at, len, MPI_BYTE, src, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
            wait_request(&req) != 0) {
            free(b);
            return -1;
        }
    }
    *buf = b;
    *n = size;
    return 0;
#else
    (void)src;
    (void)tag;
    return -1;
#endif
}

int dist_poll(int tag)
{
#ifdef TMAP_MPI
    if (!g_started || g_size == 1)
        return -1;
    int arrived = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &arrived, &status) != MPI_SUCCESS || !arrived)
        return -1;
    return status.MPI_SOURCE;
#else
    (void)tag;
    return -1;
#endif
}

int dist_bcast(void *buf, size_t n, int root)
{
#ifdef TMAP_MPI
    if (!g_started || g_size == 1)
        return 0;
    for (size_t at = 0; at < n; at += CHUNK) {
        int len = (int)(n - at < CHUNK ? n - at : CHUNK);
        MPI_Request req;
        if (MPI_Ibcast((char *)buf + at, len, MPI_BYTE, root, MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
            wait_request(&req) != 0)
            return -1;
    }
#else
    (void)buf;
    (void)n;
    (void)root;
#endif
    return 0;
}

int dist_allgather_doubles(const double *mine, double *out, const size_t *counts)
{
    if (g_size == 1) {
        if (counts[0] && out != mine)
            memmove(out, mine, counts[0] * sizeof *out);
        return 0;
    }
#ifdef TMAP_MPI
    int *cnt = malloc((size_t)g_size * sizeof *cnt), *displ = malloc((size_t)g_size * sizeof *displ);
    int rc = cnt && displ ? 0 : -1;
    size_t at = 0;
    for (int r = 0; !rc && r < g_size; r++) {
        cnt[r] = (int)counts[r];
        displ[r] = (int)at;
        at += counts[r];
    }
    MPI_Request req;
    if (!rc && (MPI_Iallgatherv(mine, cnt[g_rank], MPI_DOUBLE, out, cnt, displ, MPI_DOUBLE, MPI_COMM_WORLD, &req) !=
                    MPI_SUCCESS ||
                wait_request(&req) != 0))
        rc = -1;
    free(cnt);
    free(displ);
    return rc;
#else
    return -1;
#endif
}

enum tmap_status dist_share_status(enum tmap_status st, struct tmap_error *err, int root)
{
    if (g_size == 1)
        return st;
    int code = (int)st;
    dist_bcast(&code, sizeof code, root);
    if (code == TMAP_OK)
        return TMAP_OK;
#ifdef TMAP_MPI
    g_told_all = true;
    g_told_mine = g_rank == root;
#endif
    /* The root's message travels with it, so every rank reports the cause. */
    struct tmap_error e = { 0 };
    if (g_rank == root && err)
        e = *err;
    dist_bcast(e.message, sizeof e.message, root);
    if (g_rank != root)
        return tmap_fail(err, (enum tmap_status)code, "rank %d (%s): %s", root, dist_host(root), e.message);
    return (enum tmap_status)code;
}

enum tmap_status dist_worst_status(enum tmap_status st, struct tmap_error *err)
{
#ifdef TMAP_MPI
    if (!g_started || g_size == 1)
        return st;
    int mine[2] = { (int)st, st ? g_rank : -1 }, worst[2];
    MPI_Request req;
    if (MPI_Iallreduce(mine, worst, 1, MPI_2INT, MPI_MAXLOC, MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
        wait_request(&req) != 0)
        return st ? st : tmap_fail(err, TMAP_ERR_IO, "could not agree on a status with the other ranks");
    if (worst[0] == TMAP_OK)
        return st;
    g_told_all = true;
    /* The failed rank's message travels with its status (every rank knows
     * which rank that is, so every rank joins the broadcast): rank 0 then
     * reports the cause, not only its kind. */
    struct tmap_error e = { 0 };
    if (g_rank == worst[1] && err)
        e = *err;
    g_told_mine = g_rank == worst[1];
    if (dist_bcast(e.message, sizeof e.message, worst[1]) != 0)
        snprintf(e.message, sizeof e.message, "%s", tmap_status_name((enum tmap_status)worst[0]));
    if (st)
        return st;
    return tmap_fail(err, (enum tmap_status)worst[0], "rank %d (%s): %s", worst[1], dist_host(worst[1]), e.message);
#else
    (void)err;
    return st;
#endif
}

#ifdef TMAP_MPI
/* How long a rank that failed alone waits for the others at the end
 * before it stops the job: ranks that finished (or failed the same way)
 * are already there or about to be; one that is not after this long is
 * computing towards a collective that needs the failed rank. */
static const double END_GRACE_S = 3.0;
#endif

void tmap_dist_failed(int status)
{
#ifdef TMAP_MPI
    if (!g_started || g_size == 1 || status == 0 || g_told_all)
        return;
    MPI_Request req;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) == MPI_SUCCESS &&
        wait_request_until(&req, MPI_Wtime() + END_GRACE_S) == 0) {
        g_met_at_end = true;
        return;
    }
    MPI_Abort(MPI_COMM_WORLD, status);
#else
    (void)status;
#endif
}

bool tmap_dist_failure_told(void)
{
#ifdef TMAP_MPI
    return g_told_mine;
#else
    return false;
#endif
}

void dist_barrier(void)
{
#ifdef TMAP_MPI
    MPI_Request req;
    if (g_started && g_size > 1 && MPI_Ibarrier(MPI_COMM_WORLD, &req) == MPI_SUCCESS)
        wait_request(&req);
#endif
}
