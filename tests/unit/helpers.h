/*
 * helpers.h - what the model-level unit tests share: the test model and
 * pools loaded or the test failed; a group's start and end (its temp
 * folder, the backend, its shared model); GSM8K slices and short texts
 * written as files, and whole files read back for byte comparisons. A
 * helper that cannot do its part fails the test, naming the path; the temp
 * folder's say why and return a status, for the group setup and teardown.
 * Include after cmocka.h, in a file that defines _XOPEN_SOURCE 700 before
 * its first #include (the temp folder goes with nftw, an XSI function).
 */
#ifndef TMAP_TEST_HELPERS_H
#define TMAP_TEST_HELPERS_H

#if !defined(_XOPEN_SOURCE) || _XOPEN_SOURCE < 500
#error "define _XOPEN_SOURCE 700 before the first #include: helpers.h needs nftw"
#endif

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmap.h"

/* The model at path, on 2 threads: the tests are sized for 2 cores. */
static inline struct tmap_model *test_load_model(const char *path, int32_t n_ctx, int32_t n_batch,
                                                 int32_t n_seq)
{
    struct tmap_model_params p = tmap_model_default_params();
    p.path = path;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_seq = n_seq;
    p.n_threads = 2;
    struct tmap_model *m = NULL;
    struct tmap_error err = { 0 };
    if (tmap_model_load(&p, &m, &err))
        fail_msg("cannot load the model %s: %s", path, err.message);
    return m;
}

/* The data file at path as a pool, read with the default settings. */
static inline struct tmap_pool *test_load_pool(const char *path)
{
    struct tmap_pool_params pp = tmap_pool_default_params();
    struct tmap_pool *pool = NULL;
    struct tmap_error err = { 0 };
    if (tmap_pool_load(path, &pp, &pool, &err))
        fail_msg("cannot load the pool %s: %s", path, err.message);
    return pool;
}

/* A new folder /tmp/tmap-test-NAME.XXXXXX, its path in buf; false (said
 * why) for the group setup to return -1. */
static inline bool test_make_tmpdir(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "/tmp/tmap-test-%s.XXXXXX", name);
    if (mkdtemp(buf))
        return true;
    print_error("cannot make the temp folder %s: %s\n", buf, strerror(errno));
    return false;
}

/* nftw's visit for test_remove_tmpdir: one file, link or emptied folder. */
static inline int test_remove_entry(const char *path, const struct stat *st, int type,
                                    struct FTW *at)
{
    (void)st;
    (void)type;
    (void)at;
    if (remove(path) == 0)
        return 0;
    print_error("cannot remove %s: %s\n", path, strerror(errno));
    return 1; /* stops the walk; nftw hands it back */
}

/* Removes dir and all in it: depth first, so that each folder is empty by
 * its turn, and links removed, never followed. 0, or -1 after saying why. */
static inline int test_remove_tmpdir(const char *dir)
{
    int open_folders = 16;
    int status = nftw(dir, test_remove_entry, open_folders, FTW_DEPTH | FTW_PHYS);
    if (status == -1)
        print_error("cannot walk the temp folder %s: %s\n", dir, strerror(errno));
    return status == 0 ? 0 : -1;
}

/* A model test group's start: its temp folder, in tmpdir, and the backend,
 * quiet. False (said why) for the group setup to return -1. */
static inline bool test_begin_group(char *tmpdir, size_t n, const char *name)
{
    if (!test_make_tmpdir(tmpdir, n, name))
        return false;
    tmap_backend_init(true);
    return true;
}

/* Its end: frees the group's shared model (NULL when it keeps none) and
 * the backend, and removes tmpdir. 0, or -1 for the teardown to return. */
static inline int test_end_group(struct tmap_model *model, const char *tmpdir)
{
    tmap_model_free(model);
    tmap_backend_free();
    return test_remove_tmpdir(tmpdir);
}

/* Writes text as the whole file at path. */
static inline void test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Lines [first, first + count) of from, written to to. */
static inline void copy_lines(const char *from, const char *to, int first, int count)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    if (!in || !out)
        fail_msg("cannot copy %s to %s", from, to);
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < first + count && getline(&line, &cap, in) >= 0; i++)
        if (i >= first)
            fputs(line, out);
    free(line);
    fclose(in);
    fclose(out);
}

/* The first count records of the bundled GSM8K split ("train" or "test")
 * written to dir/name; path (n bytes) gets where. */
static inline void test_gsm8k_slice(char *path, size_t n, const char *dir, const char *name,
                                    const char *split, int count)
{
    char from[512];
    snprintf(from, sizeof from, "%s/data/gsm8k/%s.jsonl", TMAP_SOURCE_DIR, split);
    snprintf(path, n, "%s/%s", dir, name);
    copy_lines(from, path, 0, count);
}

/* The whole file, NUL-terminated; *n (may be NULL) gets its size. */
static inline char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)len + 1, 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    if (n)
        *n = (size_t)len;
    return b;
}

#endif
