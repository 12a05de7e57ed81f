/*
 * store.c - the SQLite score store (see store.h for what it keeps and why).
 *
 * Schema version 1, recorded in meta(key, value) as 'schema_version':
 *   scores(model, sample, indicator, value)  value NULL = NaN
 *   embeddings(model, sample, dim, vec)      vec = dim little-endian float32
 *   proxy(key, value)
 * A file with a higher version was written by a newer tmap; it is refused
 * rather than written in a layout that tmap does not know. Every statement
 * is prepared once at open and reset after each use.
 */
#include "store/store.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"

#define STORE_SCHEMA_VERSION 1

/* Long enough to wait out another process's batch commit (milliseconds). */
#define STORE_BUSY_TIMEOUT_MS 30000

enum store_stmt {
    STMT_BEGIN,
    STMT_BEGIN_READ,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_PUT_VALUE,
    STMT_GET_VALUE,
    STMT_PUT_EMBEDDING,
    STMT_GET_EMBEDDING,
    STMT_PUT_PROXY,
    STMT_GET_PROXY,
    STMT_COUNT
};

static const char *const STMT_SQL[STMT_COUNT] = {
    [STMT_BEGIN]         = "BEGIN IMMEDIATE",
    [STMT_BEGIN_READ]    = "BEGIN",
    [STMT_COMMIT]        = "COMMIT",
    [STMT_ROLLBACK]      = "ROLLBACK",
    [STMT_PUT_VALUE]     = "INSERT OR REPLACE INTO scores (model, sample, indicator, value) "
                           "VALUES (?1, ?2, ?3, ?4)",
    [STMT_GET_VALUE]     = "SELECT value FROM scores WHERE model = ?1 AND sample = ?2 "
                           "AND indicator = ?3",
    [STMT_PUT_EMBEDDING] = "INSERT OR REPLACE INTO embeddings (model, sample, dim, vec) "
                           "VALUES (?1, ?2, ?3, ?4)",
    [STMT_GET_EMBEDDING] = "SELECT dim, vec FROM embeddings WHERE model = ?1 AND sample = ?2",
    [STMT_PUT_PROXY]     = "INSERT OR REPLACE INTO proxy (key, value) VALUES (?1, ?2)",
    [STMT_GET_PROXY]     = "SELECT value FROM proxy WHERE key = ?1",
};

/* Tables after meta; embeddings keep a rowid because their rows are large. */
static const char SCHEMA_SQL[] =
    "CREATE TABLE IF NOT EXISTS scores (model TEXT NOT NULL, sample BLOB NOT NULL, "
    "  indicator TEXT NOT NULL, value REAL, PRIMARY KEY (model, sample, indicator)) "
    "  WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, sample BLOB NOT NULL, "
    "  dim INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (model, sample));"
    "CREATE TABLE IF NOT EXISTS proxy (key TEXT PRIMARY KEY, value REAL) WITHOUT ROWID;";

struct tmap_store {
    sqlite3      *db;
    sqlite3_stmt *stmt[STMT_COUNT];
    char         *path;
};

/* ---- errors ------------------------------------------------------------- */

static enum tmap_status status_of(int rc)
{
    return rc == SQLITE_NOMEM ? TMAP_ERR_NOMEM : TMAP_ERR_IO;
}

/* "PATH: what: SQLite's reason", with the status SQLite's code implies. */
static enum tmap_status store_fail(const struct tmap_store *s, int rc, struct tmap_error *err,
                                   const char *what)
{
    if (rc == SQLITE_NOTADB)
        return tmap_fail(err, TMAP_ERR_IO, "%s: not a tmap score store (%s: %s)", s->path, what,
                         sqlite3_errmsg(s->db));
    return tmap_fail(err, status_of(rc), "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* ---- running statements ------------------------------------------------- */

/* Steps a bound statement once and makes it ready for the next use; returns
 * SQLite's code (SQLITE_DONE or SQLITE_ROW on success). */
/* Steps a statement whose bindings returned bind_rc, then readies it for
 * reuse; a failed binding is returned as it is, with nothing run. */
static int run(sqlite3_stmt *st, int bind_rc)
{
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int exec(struct tmap_store *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

/* The first column of the first row of sql as text into out ("" when there
 * is no row); returns SQLite's code. */
static int query_text(struct tmap_store *s, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    out[0] = '\0';
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(st, 0);
        snprintf(out, size, "%s", text ? (const char *)text : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- opening ------------------------------------------------------------ */

static enum tmap_status open_db(struct tmap_store *s, struct tmap_error *err)
{
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK && !s->db)
        return tmap_fail(err, TMAP_ERR_NOMEM, "%s: out of memory opening the score store", s->path);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, err, "cannot open the score store");
    /* SQLite falls back to read-only when it may not write the file; every
     * put would then fail, so say so now, once. */
    if (sqlite3_db_readonly(s->db, "main") == 1)
        return tmap_fail(err, TMAP_ERR_IO,
                         "%s: the score store is read-only (tmap writes every score it "
                         "computes there): make it writable or choose another file",
                         s->path);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    return TMAP_OK;
}

/* WAL makes a commit one append to the log and lets readers work beside the
 * writer; synchronous=NORMAL syncs the log at checkpoints only, which a
 * killed process cannot undo (only a power cut can lose the last commits). */
/* Switching a new file to WAL needs the file to itself for a moment: when
 * several processes open one new store at once, the others see SQLITE_BUSY
 * (SQLite does not always call the busy handler here) or the old mode. Both
 * pass as soon as the first switch is done, so wait and ask again, for as
 * long as the busy timeout. */
static int journal_wal(struct tmap_store *s, char *mode, size_t size)
{
    int rc = SQLITE_OK;
    for (int waited_ms = 0; waited_ms <= STORE_BUSY_TIMEOUT_MS; waited_ms += 20) {
        rc = query_text(s, "PRAGMA journal_mode=WAL", mode, size);
        bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
        if (!busy && (rc != SQLITE_OK || strcmp(mode, "wal") == 0))
            return rc;
        nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
    }
    return rc;
}

static enum tmap_status set_journal(struct tmap_store *s, struct tmap_error *err)
{
    char mode[32] = "";
    int rc = journal_wal(s, mode, sizeof mode);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, err, "cannot read the file");
    if (strcmp(mode, "wal") != 0)
        return tmap_fail(err, TMAP_ERR_IO,
                         "%s: cannot switch the score store to WAL mode (it stays in '%s' "
                         "mode); put it on a local file system",
                         s->path, mode);
    rc = exec(s, "PRAGMA synchronous=NORMAL");
    return rc == SQLITE_OK ? TMAP_OK : store_fail(s, rc, err, "cannot set synchronous=NORMAL");
}

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

/* Creates the tables a new file needs; refuses a schema newer than ours.
 * Runs inside the transaction that check_schema opens. */
static enum tmap_status create_schema(struct tmap_store *s, struct tmap_error *err)
{
    int rc = exec(s, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) "
                     "WITHOUT ROWID");
    char version[64];
    if (rc == SQLITE_OK)
        rc = query_text(s, "SELECT value FROM meta WHERE key = 'schema_version'", version,
                        sizeof version);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, err, "cannot read the schema version");
    if (version[0] == '\0') {
        rc = exec(s, "INSERT INTO meta (key, value) VALUES ('schema_version', '" STRINGIFY(
                         STORE_SCHEMA_VERSION) "')");
    } else {
        char *end;
        long v = strtol(version, &end, 10);
        if (end == version || *end != '\0' || v < 1)
            return tmap_fail(err, TMAP_ERR_IO, "%s: unreadable score store schema version '%s'",
                             s->path, version);
        if (v > STORE_SCHEMA_VERSION)
            return tmap_fail(err, TMAP_ERR_IO,
                             "%s: score store schema version %ld is newer than this tmap's (%d): "
                             "use a newer tmap or another store file",
                             s->path, v, STORE_SCHEMA_VERSION);
    }
    if (rc == SQLITE_OK)
        rc = exec(s, SCHEMA_SQL);
    return rc == SQLITE_OK ? TMAP_OK : store_fail(s, rc, err, "cannot create the tables");
}

static enum tmap_status check_schema(struct tmap_store *s, struct tmap_error *err)
{
    int rc = exec(s, "BEGIN IMMEDIATE");
    for (int waited_ms = 0; (rc & 0xff) == SQLITE_BUSY && waited_ms < STORE_BUSY_TIMEOUT_MS; waited_ms += 20) {
        nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL); /* see journal_wal */
        rc = exec(s, "BEGIN IMMEDIATE");
    }
    if (rc != SQLITE_OK)
        return store_fail(s, rc, err, "cannot lock the store to check its schema");
    enum tmap_status st = create_schema(s, err);
    if (st != TMAP_OK) {
        exec(s, "ROLLBACK");
        return st;
    }
    rc = exec(s, "COMMIT");
    return rc == SQLITE_OK ? TMAP_OK : store_fail(s, rc, err, "cannot create the tables");
}

static enum tmap_status prepare_all(struct tmap_store *s, struct tmap_error *err)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[i], NULL);
        if (rc != SQLITE_OK)
            return store_fail(s, rc, err, "cannot prepare a statement");
    }
    return TMAP_OK;
}

enum tmap_status tmap_store_open(const char *path, struct tmap_store **out,
                                 struct tmap_error *err)
{
    *out = NULL;
    if (!path || !*path) /* SQLite would quietly open a temporary database */
        return tmap_fail(err, TMAP_ERR_USAGE, "the score store path is empty");
    struct tmap_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return tmap_fail(err, TMAP_ERR_NOMEM, "%s: out of memory opening the score store", path);
    }
    enum tmap_status st = open_db(s, err);
    if (st == TMAP_OK)
        st = set_journal(s, err);
    if (st == TMAP_OK)
        st = check_schema(s, err);
    if (st == TMAP_OK)
        st = prepare_all(s, err);
    if (st != TMAP_OK) {
        tmap_store_close(s);
        return st;
    }
    *out = s;
    return TMAP_OK;
}

void tmap_store_close(struct tmap_store *store)
{
    if (!store)
        return;
    tmap_store_rollback(store);
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(store->stmt[i]);
    sqlite3_close(store->db);
    free(store->path);
    free(store);
}

/* ---- transactions ------------------------------------------------------- */

enum tmap_status tmap_store_begin(struct tmap_store *store, struct tmap_error *err)
{
    int rc = run(store->stmt[STMT_BEGIN], SQLITE_OK);
    return rc == SQLITE_DONE ? TMAP_OK : store_fail(store, rc, err, "cannot begin a batch");
}

enum tmap_status tmap_store_commit(struct tmap_store *store, struct tmap_error *err)
{
    int rc = run(store->stmt[STMT_COMMIT], SQLITE_OK);
    return rc == SQLITE_DONE ? TMAP_OK : store_fail(store, rc, err, "cannot commit a batch");
}

bool tmap_store_begin_read(struct tmap_store *store)
{
    return store && sqlite3_get_autocommit(store->db) && run(store->stmt[STMT_BEGIN_READ], SQLITE_OK) == SQLITE_DONE;
}

void tmap_store_rollback(struct tmap_store *store)
{
    if (!store || !store->db || sqlite3_get_autocommit(store->db))
        return;
    if (store->stmt[STMT_ROLLBACK])
        run(store->stmt[STMT_ROLLBACK], SQLITE_OK);
    else
        exec(store, "ROLLBACK");
}

/* ---- keys and values ---------------------------------------------------- */

static void sample_hex(const uint8_t sample[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", sample[i]);
}

/* Binds (model, sample) to parameters 1 and 2. The pointers only need to
 * live until run(), which clears the bindings. */
static int bind_key(sqlite3_stmt *st, const char *model, const uint8_t sample[16])
{
    int rc = sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    return rc == SQLITE_OK ? sqlite3_bind_blob(st, 2, sample, 16, SQLITE_STATIC) : rc;
}

/* NaN goes in as NULL: SQLite would turn it into NULL anyway, and saying so
 * here makes the round trip a decision rather than an accident. */
static int bind_value(sqlite3_stmt *st, int i, double value)
{
    return isnan(value) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, value);
}

static double column_value(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

enum tmap_status tmap_store_put_value(struct tmap_store *store, const char *model,
                                      const uint8_t sample[16], const char *indicator,
                                      double value, struct tmap_error *err)
{
    sqlite3_stmt *st = store->stmt[STMT_PUT_VALUE];
    int rc = bind_key(st, model, sample);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, indicator, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_value(st, 4, value);
    rc = run(st, rc);
    if (rc == SQLITE_DONE)
        return TMAP_OK;
    char hex[33];
    sample_hex(sample, hex);
    return tmap_fail(err, status_of(rc), "%s: cannot store indicator '%s' of sample %s: %s",
                     store->path, indicator, hex, sqlite3_errmsg(store->db));
}

bool tmap_store_get_value(struct tmap_store *store, const char *model, const uint8_t sample[16],
                          const char *indicator, double *value)
{
    sqlite3_stmt *st = store->stmt[STMT_GET_VALUE];
    bool found = false;
    if (bind_key(st, model, sample) == SQLITE_OK &&
        sqlite3_bind_text(st, 3, indicator, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        *value = column_value(st, 0);
        found = true;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return found;
}

/* ---- embeddings --------------------------------------------------------- */

/* Blobs hold little-endian floats so a store moves between machines; on a
 * big-endian host each float's bytes are reversed on the way in and out. */
static void copy_floats_le(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char *b = dst;
    for (size_t i = 0; i < n; i++, b += 4) {
        unsigned char t0 = b[0], t1 = b[1];
        b[0] = b[3];
        b[1] = b[2];
        b[2] = t1;
        b[3] = t0;
    }
#endif
}

static int bind_embedding(sqlite3_stmt *st, const float *vec, int32_t dim)
{
    size_t bytes = (size_t)dim * sizeof(float);
    void *blob = sqlite3_malloc64(bytes); /* dim > 0: never 0 bytes */
    if (!blob)
        return SQLITE_NOMEM;
    copy_floats_le(blob, vec, (size_t)dim);
    int rc = sqlite3_bind_int(st, 3, dim);
    if (rc == SQLITE_OK)
        return sqlite3_bind_blob64(st, 4, blob, bytes, sqlite3_free);
    sqlite3_free(blob);
    return rc;
}

enum tmap_status tmap_store_put_embedding(struct tmap_store *store, const char *model,
                                          const uint8_t sample[16], const float *vec,
                                          int32_t dim, struct tmap_error *err)
{
    char hex[33];
    sample_hex(sample, hex);
    if (dim <= 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "%s: embedding of sample %s has dimension %d",
                         store->path, hex, (int)dim);
    sqlite3_stmt *st = store->stmt[STMT_PUT_EMBEDDING];
    int rc = bind_key(st, model, sample);
    if (rc == SQLITE_OK)
        rc = bind_embedding(st, vec, dim);
    rc = run(st, rc);
    if (rc == SQLITE_DONE)
        return TMAP_OK;
    return tmap_fail(err, status_of(rc), "%s: cannot store the embedding of sample %s: %s",
                     store->path, hex, rc == SQLITE_NOMEM ? "out of memory"
                                                           : sqlite3_errmsg(store->db));
}

bool tmap_store_get_embedding(struct tmap_store *store, const char *model,
                              const uint8_t sample[16], float *vec, int32_t dim)
{
    sqlite3_stmt *st = store->stmt[STMT_GET_EMBEDDING];
    bool found = false;
    if (dim > 0 && bind_key(st, model, sample) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_int64(st, 0) == dim) {
        const void *blob = sqlite3_column_blob(st, 1);
        if (blob && sqlite3_column_bytes(st, 1) == (int)((size_t)dim * sizeof(float))) {
            copy_floats_le(vec, blob, (size_t)dim);
            found = true;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return found;
}

/* ---- proxy values ------------------------------------------------------- */

enum tmap_status tmap_store_put_proxy(struct tmap_store *store, const char *key, double value,
                                      struct tmap_error *err)
{
    sqlite3_stmt *st = store->stmt[STMT_PUT_PROXY];
    int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_value(st, 2, value);
    rc = run(st, rc);
    if (rc == SQLITE_DONE)
        return TMAP_OK;
    return tmap_fail(err, status_of(rc), "%s: cannot store proxy value '%s': %s", store->path,
                     key, sqlite3_errmsg(store->db));
}

bool tmap_store_get_proxy(struct tmap_store *store, const char *key, double *value)
{
    sqlite3_stmt *st = store->stmt[STMT_GET_PROXY];
    bool found = false;
    if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        *value = column_value(st, 0);
        found = true;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return found;
}
