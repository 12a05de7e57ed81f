/*
 * test_store.c - unit tests of the SQLite score store (store.c): round
 * trips, transactions, durability across a killed writer, the file's mode
 * and schema, and every error a user can meet when opening one.
 *
 * Store files live in a mkdtemp directory that the group teardown removes.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

#define MODEL "0123456789abcdef0123456789abcdef"

static char temp_dir[4096];

#include "asserts.h"

/* ---- helpers ------------------------------------------------------------ */

/* A fresh path in the temp directory: any store left there is removed. */
static const char *store_path(const char *name)
{
    static char path[4200];
    char side[4300];
    snprintf(path, sizeof path, "%s/%s", temp_dir, name);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return path;
}

static struct tmap_store *open_ok(const char *path)
{
    struct tmap_store *store = NULL;
    struct tmap_error err = {0};
    if (tmap_store_open(path, &store, &err) != TMAP_OK)
        fail_msg("opening %s failed: %s", path, err.message);
    assert_non_null(store);
    return store;
}

/* The 16-byte key of row r of batch b (any distinct pattern will do). */
static void sample_key(uint32_t b, uint32_t r, uint8_t key[16])
{
    memset(key, 0xA5, 16);
    memcpy(key, &b, sizeof b);
    memcpy(key + 4, &r, sizeof r);
}

static void put_ok(struct tmap_store *store, const char *model, const uint8_t key[16],
                   const char *indicator, double value)
{
    struct tmap_error err = {0};
    if (tmap_store_put_value(store, model, key, indicator, value, &err) != TMAP_OK)
        fail_msg("put failed: %s", err.message);
}

static void check_value(struct tmap_store *store, const char *model, const uint8_t key[16],
                         const char *indicator, double expected)
{
    double value = -1;
    if (!tmap_store_get_value(store, model, key, indicator, &value))
        fail_msg("no value for %s/%s", model[0] ? model : "\"\"", indicator);
    if (isnan(expected))
        assert_true(isnan(value));
    else
        assert_true(value == expected);
}

/* Fails the test with message when opening path does not fail as expected. */
static void expect_open_error(const char *path, enum tmap_status status, const char *message)
{
    struct tmap_store *store = NULL;
    struct tmap_error err = {0};
    assert_int_equal(tmap_store_open(path, &store, &err), status);
    assert_null(store);
    assert_int_equal(err.status, status);
    assert_contains(err.message, path);
    assert_contains(err.message, message);
}

/* Runs one SQL statement on path with SQLite itself (outside the store). */
static void raw_sql(const char *path, const char *sql, char *out, size_t size)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    assert_true(rc == SQLITE_ROW || rc == SQLITE_DONE);
    if (out)
        snprintf(out, size, "%s", rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- round trips -------------------------------------------------------- */

static void test_values(void **state)
{
    (void)state;
    struct tmap_store *store = open_ok(store_path("values.db"));
    uint8_t a[16], b[16];
    sample_key(1, 1, a);
    sample_key(1, 2, b);
    put_ok(store, MODEL, a, "loss", 1.25);
    put_ok(store, MODEL, a, "ifd", -0.0625);
    put_ok(store, MODEL, b, "loss", 1e300);
    put_ok(store, "", a, "steps", 4);
    put_ok(store, MODEL "/chat", a, "loss", 1.5); /* a key with a settings suffix */
    put_ok(store, MODEL, b, "quality", NAN);      /* stored as NULL, read as NaN */
    check_value(store, MODEL, a, "loss", 1.25);
    check_value(store, MODEL, a, "ifd", -0.0625);
    check_value(store, MODEL, b, "loss", 1e300);
    check_value(store, "", a, "steps", 4);
    check_value(store, MODEL "/chat", a, "loss", 1.5);
    check_value(store, MODEL, b, "quality", NAN);
    put_ok(store, MODEL, a, "loss", 2.5); /* a second put replaces */
    check_value(store, MODEL, a, "loss", 2.5);
    tmap_store_close(store);
}

static void test_missing(void **state)
{
    (void)state;
    struct tmap_store *store = open_ok(store_path("missing.db"));
    uint8_t a[16], b[16];
    sample_key(1, 1, a);
    sample_key(1, 2, b);
    put_ok(store, MODEL, a, "loss", 1);
    double v = 42;
    float vec[4] = {9, 9, 9, 9};
    assert_false(tmap_store_get_value(store, MODEL, b, "loss", &v));     /* other sample */
    assert_false(tmap_store_get_value(store, MODEL, a, "ifd", &v));      /* other indicator */
    assert_false(tmap_store_get_value(store, "", a, "loss", &v));        /* other model */
    assert_false(tmap_store_get_embedding(store, MODEL, a, vec, 4));
    assert_false(tmap_store_get_proxy(store, "00ff", &v));
    assert_true(v == 42 && vec[0] == 9); /* untouched */
    tmap_store_close(store);
}

static void test_embeddings(void **state)
{
    (void)state;
    struct tmap_store *store = open_ok(store_path("embeddings.db"));
    uint8_t a[16];
    sample_key(7, 7, a);
    const float vec[5] = {0.5f, -0.25f, 1e-30f, 3.0e30f, -0.0f};
    struct tmap_error err = {0};
    assert_int_equal(tmap_store_put_embedding(store, MODEL, a, vec, 5, &err), TMAP_OK);
    float back[5] = {0};
    assert_true(tmap_store_get_embedding(store, MODEL, a, back, 5));
    assert_memory_equal(back, vec, sizeof vec);
    float other[4] = {0};
    assert_false(tmap_store_get_embedding(store, MODEL, a, other, 4)); /* another dim */
    assert_false(tmap_store_get_embedding(store, "", a, back, 5));     /* another model */
    tmap_store_close(store);
}

static void test_proxy(void **state)
{
    (void)state;
    struct tmap_store *store = open_ok(store_path("proxy.db"));
    struct tmap_error err = {0};
    assert_int_equal(tmap_store_put_proxy(store, "9f86d081884c7d65", 0.375, &err), TMAP_OK);
    assert_int_equal(tmap_store_put_proxy(store, "2c26b46b68ffc68f", NAN, &err), TMAP_OK);
    double v = 0;
    assert_true(tmap_store_get_proxy(store, "9f86d081884c7d65", &v));
    assert_true(v == 0.375);
    assert_true(tmap_store_get_proxy(store, "2c26b46b68ffc68f", &v));
    assert_true(isnan(v));
    tmap_store_close(store);
}

/* ---- transactions and durability --------------------------------------- */

static void test_rollback(void **state)
{
    (void)state;
    const char *path = store_path("rollback.db");
    struct tmap_store *store = open_ok(path);
    struct tmap_error err = {0};
    uint8_t a[16], b[16];
    sample_key(1, 1, a);
    sample_key(1, 2, b);
    assert_int_equal(tmap_store_begin(store, &err), TMAP_OK);
    put_ok(store, MODEL, a, "loss", 1);
    assert_int_equal(tmap_store_put_embedding(store, MODEL, a, (float[]){1, 2}, 2, &err), TMAP_OK);
    assert_int_equal(tmap_store_put_proxy(store, "abcd", 1, &err), TMAP_OK);
    tmap_store_rollback(store);
    double v;
    float vec[2];
    assert_false(tmap_store_get_value(store, MODEL, a, "loss", &v));
    assert_false(tmap_store_get_embedding(store, MODEL, a, vec, 2));
    assert_false(tmap_store_get_proxy(store, "abcd", &v));
    tmap_store_rollback(store); /* none open: nothing happens */

    /* a batch still open at close is dropped too */
    assert_int_equal(tmap_store_begin(store, &err), TMAP_OK);
    put_ok(store, MODEL, b, "loss", 2);
    tmap_store_close(store);
    store = open_ok(path);
    assert_false(tmap_store_get_value(store, MODEL, b, "loss", &v));
    tmap_store_close(store);
}

/* A read transaction: the gets inside it see the store, another
 * connection can still commit meanwhile (WAL), the reader's snapshot does
 * not see that commit until it ends, and puts after it commit as before.
 * None can begin inside a write transaction. */
static void test_read_transaction(void **state)
{
    (void)state;
    const char *path = store_path("read.db");
    struct tmap_store *store = open_ok(path), *writer = open_ok(path);
    struct tmap_error err = {0};
    uint8_t a[16], b[16];
    sample_key(1, 1, a);
    sample_key(1, 2, b);
    put_ok(store, MODEL, a, "loss", 1.5);
    assert_true(tmap_store_begin_read(store));
    check_value(store, MODEL, a, "loss", 1.5);
    put_ok(writer, MODEL, b, "loss", 2.5); /* not blocked by the reader */
    double v;
    assert_false(tmap_store_get_value(store, MODEL, b, "loss", &v)); /* the snapshot */
    tmap_store_rollback(store);
    check_value(store, MODEL, b, "loss", 2.5);
    put_ok(store, MODEL, a, "ifd", 0.5); /* autocommit again */
    check_value(writer, MODEL, a, "ifd", 0.5);
    assert_int_equal(tmap_store_begin(store, &err), TMAP_OK);
    assert_false(tmap_store_begin_read(store));
    tmap_store_rollback(store);
    assert_false(tmap_store_begin_read(NULL));
    tmap_store_close(writer);
    tmap_store_close(store);
}

static void test_reopen(void **state)
{
    (void)state;
    const char *path = store_path("reopen.db");
    struct tmap_store *store = open_ok(path);
    struct tmap_error err = {0};
    uint8_t a[16];
    sample_key(3, 4, a);
    assert_int_equal(tmap_store_begin(store, &err), TMAP_OK);
    put_ok(store, MODEL, a, "loss", 0.5);
    assert_int_equal(tmap_store_put_embedding(store, MODEL, a, (float[]){1, 2, 3}, 3, &err),
                     TMAP_OK);
    assert_int_equal(tmap_store_commit(store, &err), TMAP_OK);
    put_ok(store, "", a, "lexical", 12.5); /* outside a batch: commits at once */
    assert_int_equal(tmap_store_put_proxy(store, "beef", -3, &err), TMAP_OK);
    tmap_store_close(store);

    store = open_ok(path);
    check_value(store, MODEL, a, "loss", 0.5);
    check_value(store, "", a, "lexical", 12.5);
    float vec[3];
    assert_true(tmap_store_get_embedding(store, MODEL, a, vec, 3));
    assert_true(vec[0] == 1 && vec[1] == 2 && vec[2] == 3);
    double v;
    assert_true(tmap_store_get_proxy(store, "beef", &v) && v == -3);
    tmap_store_close(store);
}

/* A killed writer: the child writes batches of KILL_ROWS values, reporting
 * each batch number on the pipe once its commit has returned. */
#define KILL_ROWS     200
#define OPEN_BATCH_AT 30          /* deterministic case: batches before the open one */
#define OPEN_MARK     UINT32_MAX  /* reported when that batch is open, half written */

static void put_batch_rows(struct tmap_store *store, uint32_t b, uint32_t from, uint32_t to)
{
    struct tmap_error err = {0};
    for (uint32_t r = from; r < to; r++) {
        uint8_t key[16];
        sample_key(b, r, key);
        if (tmap_store_put_value(store, MODEL, key, "loss", b * 1000.0 + r, &err) != TMAP_OK)
            _exit(3);
    }
}

/* The child's whole life; never returns. open_at == 0: commit batches until
 * killed; otherwise commit open_at batches, then leave one open and wait. */
static void writer_child(const char *path, int fd, uint32_t open_at)
{
    struct tmap_store *store = NULL;
    struct tmap_error err = {0};
    if (tmap_store_open(path, &store, &err) != TMAP_OK)
        _exit(2);
    for (uint32_t b = 0;; b++) {
        if (tmap_store_begin(store, &err) != TMAP_OK)
            _exit(4);
        if (open_at && b == open_at) {
            put_batch_rows(store, b, 0, KILL_ROWS / 2);
            uint32_t mark = OPEN_MARK;
            if (write(fd, &mark, sizeof mark) != sizeof mark)
                _exit(5);
            for (;;)
                pause();
        }
        put_batch_rows(store, b, 0, KILL_ROWS);
        if (tmap_store_commit(store, &err) != TMAP_OK || write(fd, &b, sizeof b) != sizeof b)
            _exit(6);
    }
}

/* Rows of batch b present in the store: 0 or KILL_ROWS, never between. */
static uint32_t batch_rows(struct tmap_store *store, uint32_t b)
{
    uint32_t found = 0;
    for (uint32_t r = 0; r < KILL_ROWS; r++) {
        uint8_t key[16];
        double v;
        sample_key(b, r, key);
        if (tmap_store_get_value(store, MODEL, key, "loss", &v)) {
            assert_true(v == b * 1000.0 + r);
            found++;
        }
    }
    if (found != 0 && found != KILL_ROWS)
        fail_msg("batch %u is half there: %u of %u rows", b, found, KILL_ROWS);
    return found;
}

/* Forks the writer, reads reports until `enough` says stop, kills it with
 * SIGKILL; returns the last batch reported committed (or OPEN_MARK seen). */
static uint32_t run_and_kill(const char *path, uint32_t open_at, uint32_t enough,
                             bool *saw_open)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        writer_child(path, fds[1], open_at);
    }
    close(fds[1]);
    uint32_t report, last = OPEN_MARK, n = 0;
    *saw_open = false;
    while (n < enough && read(fds[0], &report, sizeof report) == sizeof report) {
        if (report == OPEN_MARK) {
            *saw_open = true;
            break;
        }
        last = report;
        n++;
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    while (read(fds[0], &report, sizeof report) == sizeof report) /* sent before the kill */
        if (report != OPEN_MARK)
            last = report;
    close(fds[0]);
    return last;
}

/* Killed at a random point in a stream of commits: every reported batch is
 * whole, the one after may be whole or absent (committed, not yet reported),
 * and nothing later exists. */
static void test_killed_between_commits(void **state)
{
    (void)state;
    const char *path = store_path("killed.db");
    bool saw_open;
    uint32_t last = run_and_kill(path, 0, 25, &saw_open);
    assert_true(last != OPEN_MARK && last >= 24);
    struct tmap_store *store = open_ok(path);
    for (uint32_t b = 0; b <= last; b++)
        assert_int_equal(batch_rows(store, b), KILL_ROWS);
    batch_rows(store, last + 1);
    assert_int_equal(batch_rows(store, last + 2), 0);
    tmap_store_close(store);
}

/* Killed with a batch open and half written: every committed batch is there
 * and nothing of the open one. */
static void test_killed_mid_batch(void **state)
{
    (void)state;
    const char *path = store_path("killed-open.db");
    bool saw_open;
    uint32_t last = run_and_kill(path, OPEN_BATCH_AT, UINT32_MAX, &saw_open);
    assert_true(saw_open);
    assert_int_equal(last, OPEN_BATCH_AT - 1);
    struct tmap_store *store = open_ok(path);
    for (uint32_t b = 0; b < OPEN_BATCH_AT; b++)
        assert_int_equal(batch_rows(store, b), KILL_ROWS);
    assert_int_equal(batch_rows(store, OPEN_BATCH_AT), 0);
    tmap_store_close(store);
}

/* ---- the file ----------------------------------------------------------- */

static void test_wal_mode(void **state)
{
    (void)state;
    const char *path = store_path("wal.db");
    struct tmap_store *store = open_ok(path);
    uint8_t a[16];
    sample_key(1, 1, a);
    put_ok(store, MODEL, a, "loss", 1);
    char wal[4300], mode[32], version[32];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(access(wal, F_OK), 0); /* the commit went to the log */
    raw_sql(path, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    raw_sql(path, "SELECT value FROM meta WHERE key = 'schema_version'", version, sizeof version);
    assert_string_equal(version, "1");
    tmap_store_close(store);
}

static void test_not_a_database(void **state)
{
    (void)state;
    const char *path = store_path("garbage.db");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database, only text. ", f);
    fclose(f);
    expect_open_error(path, TMAP_ERR_IO, "not a tmap score store");
}

static void test_newer_schema(void **state)
{
    (void)state;
    const char *path = store_path("newer.db");
    tmap_store_close(open_ok(path));
    raw_sql(path, "UPDATE meta SET value = '2' WHERE key = 'schema_version'", NULL, 0);
    expect_open_error(path, TMAP_ERR_IO, "schema version 2 is newer than this tmap's (1)");
    raw_sql(path, "UPDATE meta SET value = 'two' WHERE key = 'schema_version'", NULL, 0);
    expect_open_error(path, TMAP_ERR_IO, "unreadable score store schema version 'two'");
}

static void test_cannot_open(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/no-such-dir/store.db", temp_dir);
    expect_open_error(path, TMAP_ERR_IO, "cannot open the score store");
    struct tmap_store *store = NULL;
    struct tmap_error err = {0};
    assert_int_equal(tmap_store_open("", &store, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "path is empty");
}

/* Root may write any file, so as root the check runs in a child that has
 * become "nobody" (uid 65534). Exit status 0 = the error was as expected. */
static void test_read_only(void **state)
{
    (void)state;
    const char *path = store_path("read-only.db");
    tmap_store_close(open_ok(path));
    assert_int_equal(chmod(path, 0444), 0);
    if (geteuid() != 0) {
        expect_open_error(path, TMAP_ERR_IO, "read-only");
        return;
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        struct tmap_store *store = NULL;
        struct tmap_error err = {0};
        enum tmap_status st = tmap_store_open(path, &store, &err);
        bool ok = st == TMAP_ERR_IO && strstr(err.message, path) && strstr(err.message, "read-only");
        if (!ok)
            printf("unexpected: status %d, message: %s\n", (int)st, err.message);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- misuse ------------------------------------------------------------- */

static void test_bad_calls(void **state)
{
    (void)state;
    const char *path = store_path("misuse.db");
    struct tmap_store *store = open_ok(path);
    struct tmap_error err = {0};
    uint8_t a[16];
    sample_key(1, 1, a);

    assert_int_equal(tmap_store_put_embedding(store, MODEL, a, (float[]){1}, 0, &err),
                     TMAP_ERR_USAGE);
    assert_contains(err.message, "has dimension 0");

    assert_int_equal(tmap_store_begin(store, &err), TMAP_OK);
    assert_int_equal(tmap_store_begin(store, &err), TMAP_ERR_IO);
    assert_contains(err.message, path);
    assert_contains(err.message, "cannot begin a batch");
    tmap_store_rollback(store);

    assert_int_equal(tmap_store_commit(store, &err), TMAP_ERR_IO); /* nothing to commit */
    assert_contains(err.message, "cannot commit a batch");
    tmap_store_close(store);
    tmap_store_close(NULL);
}

/* ---- main --------------------------------------------------------------- */

static int make_temp_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/tmap-test-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    /* 0755 so that the read-only test's "nobody" child can reach its file */
    return mkdtemp(temp_dir) && chmod(temp_dir, 0755) == 0 ? 0 : -1;
}

static int remove_temp_dir(void **state)
{
    (void)state;
    const char *names[] = {"values.db", "missing.db", "embeddings.db", "proxy.db",
                           "rollback.db", "read.db", "reopen.db", "killed.db", "killed-open.db",
                           "wal.db", "garbage.db", "newer.db", "read-only.db", "misuse.db"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        store_path(names[i]);
    return rmdir(temp_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_proxy),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_read_transaction),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_killed_between_commits),
        cmocka_unit_test(test_killed_mid_batch),
        cmocka_unit_test(test_wal_mode),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_newer_schema),
        cmocka_unit_test(test_cannot_open),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_bad_calls),
    };
    return cmocka_run_group_tests(tests, make_temp_dir, remove_temp_dir);
}
