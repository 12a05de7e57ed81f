/*
 * test_dist.c - unit tests of dist/dist.c as one process (not launched by
 * mpirun, so MPI is never started, built with it or not): one rank, the
 * collectives are the identity, a status passes through unchanged, and the
 * host name is this machine's. The ranks at work are tests/cli/mpi_*.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist.h"

static void test_one_rank(void **state)
{
    (void)state;
    struct tmap_error err = { 0 };
    /* No launcher variables: init joins nothing. */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_SIZE");
    assert_int_equal(tmap_dist_init(NULL, NULL, &err), TMAP_OK);
    assert_int_equal(tmap_dist_rank(), 0);
    assert_int_equal(tmap_dist_size(), 1);
    assert_int_equal(tmap_dist_local_rank(), 0);
    assert_int_equal(dist_rank(), 0);
    assert_int_equal(dist_size(), 1);
    char host[256];
    assert_int_equal(gethostname(host, sizeof host), 0);
    host[63] = '\0';
    assert_string_equal(dist_host(0), host);
    assert_string_equal(dist_host(1), "");
    tmap_dist_finalize();
}

static void test_identity_collectives(void **state)
{
    (void)state;
    double mine[3] = { 1.5, -0.0, 3.25 }, out[3] = { 0 };
    size_t counts[1] = { 3 };
    assert_int_equal(dist_allgather_doubles(mine, out, counts), 0);
    assert_memory_equal(mine, out, sizeof mine);
    int x = 42;
    assert_int_equal(dist_bcast(&x, sizeof x, 0), 0);
    assert_int_equal(x, 42);
    dist_barrier();
}

static void test_status_passes_through(void **state)
{
    (void)state;
    struct tmap_error err = { .status = TMAP_ERR_DATA };
    strcpy(err.message, "pool.jsonl:3: bad record");
    assert_int_equal(dist_share_status(TMAP_ERR_DATA, &err, 0), TMAP_ERR_DATA);
    assert_string_equal(err.message, "pool.jsonl:3: bad record");
    assert_int_equal(dist_worst_status(TMAP_OK, &err), TMAP_OK);
    assert_int_equal(dist_worst_status(TMAP_ERR_NOMEM, &err), TMAP_ERR_NOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_rank),
        cmocka_unit_test(test_identity_collectives),
        cmocka_unit_test(test_status_passes_through),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
