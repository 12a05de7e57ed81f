/*
 * test_data.c - unit tests of the data module: format detection and
 * extraction (format.c), the pool (pool.c), and the UTF-8 and statistics
 * helpers they rely on.
 *
 * Fixtures live one case per file in tests/fixtures/data (TMAP_FIXTURES);
 * files too big to commit (the 10 MB line) are written at test time to a
 * mkdtemp directory that the group teardown removes.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "tmap.h"
#include "util/stats.h"
#include "util/utf8.h"

#ifndef TMAP_FIXTURES
#error "the build must define TMAP_FIXTURES (the tests/fixtures/data directory)"
#endif
#ifndef TMAP_SOURCE_DIR
#error "the build must define TMAP_SOURCE_DIR (the repository root)"
#endif

static char temp_dir[4096];

#include "asserts.h"

#define assert_not_contains(haystack, needle)                                                      \
    do {                                                                                           \
        if (strstr((haystack), (needle)))                                                          \
            fail_msg("did not expect \"%s\" in:\n%s", (needle), (haystack));                       \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

static const char *fixture(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", TMAP_FIXTURES, name);
    return path;
}

static const char *temp_path(const char *name)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", temp_dir, name);
    return path;
}

static struct tmap_pool *load_with(const char *path, const struct tmap_pool_params *params)
{
    struct tmap_pool *pool = NULL;
    struct tmap_error err = {0};
    enum tmap_status status = tmap_pool_load(path, params, &pool, &err);
    if (status != TMAP_OK)
        fail_msg("loading %s failed: %s", path, err.message);
    assert_non_null(pool);
    return pool;
}

static struct tmap_pool *load(const char *name)
{
    return load_with(fixture(name), NULL);
}

/* Loads a file that must fail; returns the status, message in *err. */
static enum tmap_status load_fails(const char *path, const struct tmap_pool_params *params,
                                   struct tmap_error *err)
{
    struct tmap_pool *pool = (struct tmap_pool *)&pool; /* must be reset to NULL */
    enum tmap_status status = tmap_pool_load(path, params, &pool, err);
    assert_int_not_equal(status, TMAP_OK);
    assert_int_equal(err->status, status);
    assert_null(pool);
    return status;
}

static void get_sample(const struct tmap_pool *pool, size_t i, struct tmap_sample *s)
{
    struct tmap_error err = {0};
    if (tmap_pool_sample(pool, i, s, &err) != TMAP_OK)
        fail_msg("sample %zu: %s", i, err.message);
}

/* Checks the parts every sample has. */
static void assert_sample(const struct tmap_sample *s, enum tmap_format format, const char *prompt,
                          const char *response, const char *answer)
{
    assert_int_equal(s->format, format);
    assert_string_equal(s->prompt, prompt);
    assert_string_equal(s->response, response);
    if (answer)
        assert_string_equal(s->answer, answer);
    else
        assert_null(s->answer);
}

static void assert_turn(const struct tmap_sample *s, size_t i, const char *role,
                        const char *content)
{
    assert_true(i < s->n_turns);
    assert_string_equal(s->turns[i].role, role);
    assert_string_equal(s->turns[i].content, content);
}

/* Non-chat samples: the prompt as one user turn, no choices. */
static void assert_plain_turns(const struct tmap_sample *s)
{
    assert_int_equal(s->n_turns, 1);
    assert_turn(s, 0, "user", s->prompt);
}

static char *read_whole(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    *bytes = (size_t)size;
    return text;
}

/* Collects notices for the tests that expect them. */
struct notices {
    size_t n;
    char   text[8][256];
};

static void collect_notice(const char *message, void *user_data)
{
    struct notices *notices = user_data;
    if (notices->n < 8)
        snprintf(notices->text[notices->n], sizeof notices->text[0], "%s", message);
    notices->n++;
}

static void hex(const uint8_t hash[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", hash[i]);
}

/* ---- formats ------------------------------------------------------------ */

static void test_alpaca(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("alpaca.jsonl");
    assert_int_equal(tmap_pool_size(pool), 3);
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_ALPACA, "Name a colour.", "Blue.", NULL);
    assert_plain_turns(&s);
    assert_int_equal(s.answer_index, -1);
    assert_int_equal(s.n_choices, 0);
    assert_null(s.choices);
    assert_string_equal(s.id, "1");
    assert_int_equal(s.line, 1);
    tmap_sample_free(&s);
    get_sample(pool, 1, &s);
    assert_sample(&s, TMAP_FORMAT_ALPACA, "Translate to French.\n\nGood morning", "Bonjour", NULL);
    assert_plain_turns(&s);
    tmap_sample_free(&s);
    get_sample(pool, 2, &s); /* no "input" at all */
    assert_sample(&s, TMAP_FORMAT_ALPACA, "Say hi.", "Hi!", NULL);
    tmap_sample_free(&s);
    assert_null(s.arena_);
    tmap_pool_free(pool);
}

static void test_gsm8k(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("gsm8k.jsonl");
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_GSM8K, "What is 2+2?", "2+2=4\n#### 4", "4");
    assert_plain_turns(&s);
    assert_int_equal(s.answer_index, -1);
    tmap_sample_free(&s);
    get_sample(pool, 1, &s); /* thousands separator and trailing space */
    assert_sample(&s, TMAP_FORMAT_GSM8K, "How many?", "Count them.\n#### 1,234 ", "1234");
    tmap_sample_free(&s);
    get_sample(pool, 2, &s);
    assert_sample(&s, TMAP_FORMAT_GSM8K, "No marker?", "Just text", NULL);
    tmap_sample_free(&s);
    get_sample(pool, 3, &s); /* the last marker wins */
    assert_string_equal(s.answer, "-7");
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_mc_list(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("mc_list.jsonl");
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_MC, "Capital of France?\nA. Rome\nB. Paris\nC. Berlin", "B", "B");
    assert_int_equal(s.n_choices, 3);
    assert_string_equal(s.choices[0], "Rome");
    assert_string_equal(s.choices[1], "Paris");
    assert_string_equal(s.choices[2], "Berlin");
    assert_int_equal(s.answer_index, 1);
    assert_plain_turns(&s);
    tmap_sample_free(&s);
    get_sample(pool, 1, &s); /* integer answerKey: a 0-based index */
    assert_sample(&s, TMAP_FORMAT_MC, "2+3?\nA. 4\nB. 5", "B", "B");
    assert_int_equal(s.answer_index, 1);
    tmap_sample_free(&s);
    get_sample(pool, 2, &s); /* MMLU's "answer" index */
    assert_sample(&s, TMAP_FORMAT_MC, "MMLU style\nA. x\nB. y\nC. z", "C", "C");
    assert_int_equal(s.answer_index, 2);
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_mc_arc(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("mc_arc.jsonl");
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_MC, "Which is a gas?\n1. ice\n2. steam\n3. rock\n4. wood", "2",
                  "2");
    assert_int_equal(s.n_choices, 4);
    assert_string_equal(s.choices[1], "steam");
    assert_int_equal(s.answer_index, 1);
    assert_string_equal(s.id, "Mercury_1");
    tmap_sample_free(&s);
    get_sample(pool, 1, &s);
    assert_sample(&s, TMAP_FORMAT_MC, "Pick C\nA. a\nB. b\nC. c", "C", "C");
    assert_int_equal(s.answer_index, 2);
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_sharegpt(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("sharegpt.jsonl");
    struct tmap_sample s;
    get_sample(pool, 0, &s); /* one user turn: the prompt is its text */
    assert_sample(&s, TMAP_FORMAT_SHAREGPT, "Hello", "Hi there", NULL);
    assert_int_equal(s.n_turns, 1);
    assert_turn(&s, 0, "user", "Hello");
    assert_int_equal(s.answer_index, -1);
    tmap_sample_free(&s);
    get_sample(pool, 1, &s); /* multi-turn: everything before the last answer */
    assert_sample(&s, TMAP_FORMAT_SHAREGPT,
                  "System: Be brief.\nUser: What is 1+1?\nAssistant: 2\nUser: And 2+2?", "4", NULL);
    assert_int_equal(s.n_turns, 4);
    assert_turn(&s, 0, "system", "Be brief.");
    assert_turn(&s, 1, "user", "What is 1+1?");
    assert_turn(&s, 2, "assistant", "2");
    assert_turn(&s, 3, "user", "And 2+2?");
    tmap_sample_free(&s);
    get_sample(pool, 2, &s); /* a user turn after the last answer is dropped */
    assert_sample(&s, TMAP_FORMAT_SHAREGPT, "Q", "A", NULL);
    assert_int_equal(s.n_turns, 1);
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_openai(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("openai.jsonl");
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_OPENAI, "Hi", "Hello!", NULL);
    assert_int_equal(s.n_turns, 1);
    assert_turn(&s, 0, "user", "Hi");
    tmap_sample_free(&s);
    get_sample(pool, 1, &s); /* text parts are concatenated */
    assert_sample(&s, TMAP_FORMAT_OPENAI, "System: You are terse.\nUser: Part one. Part two.",
                  "Done.", NULL);
    assert_int_equal(s.n_turns, 2);
    assert_turn(&s, 0, "system", "You are terse.");
    assert_turn(&s, 1, "user", "Part one. Part two.");
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_generic(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("generic.jsonl");
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_GENERIC, "p1", "r1", NULL);
    assert_plain_turns(&s);
    tmap_sample_free(&s);
    get_sample(pool, 1, &s);
    assert_sample(&s, TMAP_FORMAT_GENERIC, "p2", "c2", NULL);
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_custom_fields(void **state)
{
    (void)state;
    struct tmap_pool_params params = tmap_pool_default_params();
    params.fields.prompt = "text";
    params.fields.response = "label";
    struct tmap_pool *pool = load_with(fixture("custom.jsonl"), &params);
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_CUSTOM, "Tell me", "told", NULL);
    assert_plain_turns(&s);
    tmap_sample_free(&s);
    tmap_pool_free(pool);

    /* A named answer key is required in every record. */
    params.fields.answer = "gold";
    struct tmap_error err;
    assert_int_equal(load_fails(fixture("custom.jsonl"), &params, &err), TMAP_ERR_DATA);
    assert_contains(err.message,
                    "custom.jsonl:2: missing field \"gold\" (detected format: custom)");

    /* Keys set without both prompt and response are a usage error. */
    params.fields.prompt = NULL;
    assert_int_equal(load_fails(fixture("custom.jsonl"), &params, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "--fields needs both prompt=KEY and response=KEY");
}

static void test_custom_answer(void **state)
{
    (void)state;
    struct tmap_pool_params params = tmap_pool_default_params();
    params.fields = (struct tmap_field_map){"text", "label", "gold"};
    params.on_error = TMAP_ON_ERROR_SKIP;
    struct tmap_pool *pool = load_with(fixture("custom.jsonl"), &params);
    assert_int_equal(tmap_pool_size(pool), 1);
    assert_int_equal(tmap_pool_n_rejected(pool), 1);
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_sample(&s, TMAP_FORMAT_CUSTOM, "Tell me", "told", "42");
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_format_names(void **state)
{
    (void)state;
    assert_string_equal(tmap_format_name(TMAP_FORMAT_ALPACA), "alpaca");
    assert_string_equal(tmap_format_name(TMAP_FORMAT_GSM8K), "gsm8k");
    assert_string_equal(tmap_format_name(TMAP_FORMAT_SHAREGPT), "sharegpt");
    assert_string_equal(tmap_format_name(TMAP_FORMAT_OPENAI), "openai");
    assert_string_equal(tmap_format_name(TMAP_FORMAT_GENERIC), "generic");
    assert_string_equal(tmap_format_name(TMAP_FORMAT_MC), "mc");
    assert_string_equal(tmap_format_name(TMAP_FORMAT_CUSTOM), "custom");
    assert_string_equal(tmap_format_name(TMAP_FORMAT_COUNT), "unknown");
}

/* ---- reading files ------------------------------------------------------ */

/* The bytes of 1-based line `line` of text, without "\n" or a CRLF's "\r". */
static const char *line_of(const char *text, size_t bytes, size_t line, size_t *line_bytes)
{
    const char *p = text, *end = text + bytes;
    for (size_t l = 1; l < line; l++) {
        p = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(p);
        p++;
    }
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((eol ? eol : end) - p);
    if (n > 0 && p[n - 1] == '\r')
        n--;
    *line_bytes = n;
    return p;
}

/* Every record's raw bytes are its line of the file, byte for byte. */
static void assert_raw_is_line(const struct tmap_pool *pool, const char *path, size_t skip)
{
    size_t bytes;
    char *text = read_whole(path, &bytes);
    for (size_t i = 0; i < tmap_pool_size(pool); i++) {
        struct tmap_record r;
        assert_int_equal(tmap_pool_record(pool, i, &r), TMAP_OK);
        size_t n;
        const char *line = line_of(text, bytes, r.line, &n);
        if (r.line == 1) { /* a byte-order mark is not part of the record */
            line += skip;
            n -= skip;
        }
        assert_int_equal(r.raw_bytes, n);
        assert_memory_equal(r.raw, line, n);
    }
    free(text);
}

static void test_raw_passthrough(void **state)
{
    (void)state;
    const char *names[] = {"alpaca.jsonl", "sharegpt.jsonl", "openai.jsonl", "mc_arc.jsonl"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        struct tmap_pool *pool = load(names[k]);
        assert_raw_is_line(pool, fixture(names[k]), 0);
        tmap_pool_free(pool);
    }
}

static void test_crlf(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("crlf.jsonl");
    assert_int_equal(tmap_pool_size(pool), 2);
    assert_raw_is_line(pool, fixture("crlf.jsonl"), 0);
    struct tmap_record r;
    assert_int_equal(tmap_pool_record(pool, 1, &r), TMAP_OK);
    assert_int_equal(r.line, 2);
    assert_int_equal(r.raw[r.raw_bytes - 1], '}');
    struct tmap_sample s;
    get_sample(pool, 1, &s); /* escaped CRLF inside a string is content, kept */
    assert_string_equal(s.prompt, "c\r\nd");
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_bom(void **state)
{
    (void)state;
    struct notices notices = {0};
    struct tmap_pool_params params = tmap_pool_default_params();
    params.notice = collect_notice;
    params.notice_user_data = &notices;
    struct tmap_pool *pool = load_with(fixture("bom.jsonl"), &params);
    assert_int_equal(tmap_pool_size(pool), 2);
    assert_int_equal(notices.n, 1);
    assert_contains(notices.text[0], "bom.jsonl:1: UTF-8 byte-order mark skipped");
    assert_raw_is_line(pool, fixture("bom.jsonl"), 3);
    struct tmap_record r;
    tmap_pool_record(pool, 0, &r);
    assert_int_equal(r.raw[0], '{');
    tmap_pool_free(pool);
}

static void test_blank_lines(void **state)
{
    (void)state;
    struct notices notices = {0};
    struct tmap_pool_params params = tmap_pool_default_params();
    params.notice = collect_notice;
    params.notice_user_data = &notices;
    struct tmap_pool *pool = load_with(fixture("blank_lines.jsonl"), &params);
    assert_int_equal(tmap_pool_size(pool), 2);
    assert_int_equal(tmap_pool_n_blank_lines(pool), 4);
    assert_int_equal(tmap_pool_n_rejected(pool), 0);
    assert_int_equal(notices.n, 4);
    const size_t blank[] = {1, 3, 4, 6};
    for (size_t k = 0; k < 4; k++) {
        char expected[128];
        snprintf(expected, sizeof expected, "blank_lines.jsonl:%zu: blank line skipped", blank[k]);
        assert_contains(notices.text[k], expected);
    }
    struct tmap_record r;
    tmap_pool_record(pool, 1, &r);
    assert_int_equal(r.line, 5);
    assert_string_equal(r.id, "5");
    tmap_pool_free(pool);
}

static void test_json_array(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("array.json");
    assert_int_equal(tmap_pool_size(pool), 2);
    struct tmap_record r;
    assert_int_equal(tmap_pool_record(pool, 0, &r), TMAP_OK);
    assert_string_equal(r.id, "a");
    assert_int_equal(r.line, 2);
    assert_int_equal(r.format, TMAP_FORMAT_GENERIC);
    const char first[] = "{\"id\": \"a\", \"prompt\": \"first\", \"response\": \"one\"}";
    assert_int_equal(r.raw_bytes, strlen(first));
    assert_memory_equal(r.raw, first, strlen(first));
    assert_int_equal(tmap_pool_record(pool, 1, &r), TMAP_OK);
    assert_int_equal(r.line, 3);
    assert_int_equal(r.format, TMAP_FORMAT_ALPACA);
    assert_int_equal(r.raw[0], '{');
    assert_int_equal(r.raw[r.raw_bytes - 1], '}'); /* the element, multi-line, exactly */
    assert_non_null(memchr(r.raw, '\n', r.raw_bytes));
    struct tmap_sample s;
    get_sample(pool, 1, &s);
    assert_sample(&s, TMAP_FORMAT_ALPACA, "second", "two", NULL);
    assert_string_equal(s.id, "b");
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

static void test_json_array_one_line(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("array_oneline.json");
    assert_int_equal(tmap_pool_size(pool), 2);
    struct tmap_record r;
    tmap_pool_record(pool, 0, &r);
    assert_string_equal(r.id, "1");
    assert_int_equal(r.raw_bytes, strlen("{\"prompt\": \"x\", \"response\": \"y\"}"));
    tmap_pool_record(pool, 1, &r); /* same line: the id gets an ordinal */
    assert_string_equal(r.id, "1.2");
    assert_int_equal(r.line, 1);
    assert_memory_equal(r.raw, "{\"prompt\": \"z\", \"response\": \"w\"}", r.raw_bytes);
    tmap_pool_free(pool);
}

static void test_ids(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("ids.jsonl");
    struct tmap_record r;
    tmap_pool_record(pool, 0, &r);
    assert_string_equal(r.id, "alpha");
    tmap_pool_record(pool, 1, &r);
    assert_string_equal(r.id, "42");
    tmap_pool_record(pool, 2, &r);
    assert_string_equal(r.id, "3");
    assert_int_equal(tmap_pool_find(pool, "alpha"), 0);
    assert_int_equal(tmap_pool_find(pool, "42"), 1);
    assert_int_equal(tmap_pool_find(pool, "3"), 2);
    assert_int_equal(tmap_pool_find(pool, "beta"), SIZE_MAX);
    assert_int_equal(tmap_pool_find(pool, NULL), SIZE_MAX);
    struct tmap_sample s;
    get_sample(pool, 1, &s);
    assert_string_equal(s.id, "42");
    tmap_sample_free(&s);
    assert_string_equal(tmap_pool_path(pool), fixture("ids.jsonl"));
    tmap_pool_free(pool);

    /* No id field at all: every id is a line number. */
    struct tmap_pool_params params = tmap_pool_default_params();
    params.id_field = NULL;
    pool = load_with(fixture("ids.jsonl"), &params);
    tmap_pool_record(pool, 0, &r);
    assert_string_equal(r.id, "1");
    tmap_pool_free(pool);
}

static void test_duplicate_ids(void **state)
{
    (void)state;
    struct tmap_error err;
    assert_int_equal(load_fails(fixture("dup_ids.jsonl"), NULL, &err), TMAP_ERR_DATA);
    assert_contains(err.message, "dup_ids.jsonl:3: duplicate id \"x\" (first on line 1)");
    assert_contains(err.message, "1 bad records in ");
}

static void test_out_of_range(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("generic.jsonl");
    struct tmap_record r;
    assert_int_equal(tmap_pool_record(pool, 2, &r), TMAP_ERR_USAGE);
    struct tmap_sample s;
    struct tmap_error err;
    assert_int_equal(tmap_pool_sample(pool, 2, &s, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "record 2 is out of range (the pool has 2)");
    assert_null(s.arena_);
    tmap_sample_free(&s);
    tmap_pool_free(pool);
    tmap_pool_free(NULL);
    tmap_sample_free(NULL);
}

static void test_gsm8k_train(void **state)
{
    (void)state;
    struct tmap_pool *pool = load_with(TMAP_SOURCE_DIR "/data/gsm8k/train.jsonl", NULL);
    assert_int_equal(tmap_pool_size(pool), 7473);
    assert_int_equal(tmap_pool_n_rejected(pool), 0);
    assert_int_equal(tmap_pool_n_blank_lines(pool), 0);
    for (size_t i = 0; i < tmap_pool_size(pool); i++) {
        struct tmap_record r;
        tmap_pool_record(pool, i, &r);
        assert_int_equal(r.format, TMAP_FORMAT_GSM8K);
        assert_int_equal(r.line, i + 1);
    }
    struct tmap_sample s;
    get_sample(pool, 0, &s);
    assert_string_equal(s.answer, "72");
    assert_contains(s.prompt, "Natalia sold clips to 48 of her friends");
    tmap_sample_free(&s);
    tmap_pool_free(pool);
}

/* ---- the sample hash ---------------------------------------------------- */

static void record_hash(const struct tmap_pool *pool, size_t i, char out[33])
{
    struct tmap_record r;
    assert_int_equal(tmap_pool_record(pool, i, &r), TMAP_OK);
    hex(r.hash, out);
}

static void test_hash(void **state)
{
    (void)state;
    struct tmap_pool *pool = load("hash.jsonl");
    char h[6][33];
    for (size_t i = 0; i < 6; i++)
        record_hash(pool, i, h[i]);
    /* The definition: XXH3-128 of prompt, 0, response, big-endian. */
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits("Hi\0there", 8));
    char direct[33];
    hex(c.digest, direct);
    assert_string_equal(h[0], direct);
    /* Pinned, so a change of definition cannot slip through unnoticed. */
    assert_string_equal(h[0], "7e1cb1ada53af2cbe65449381d29799e");
    assert_string_equal(h[1], h[0]);     /* surrounding whitespace ignored */
    assert_string_not_equal(h[2], h[0]); /* content is not */
    assert_string_equal(h[3], h[4]);     /* CRLF hashes as LF */
    assert_string_not_equal(h[5], h[4]); /* a lone CR is content */
    tmap_pool_free(pool);

    /* Stable: the same file loaded again gives the same hashes. */
    pool = load("hash.jsonl");
    char again[33];
    record_hash(pool, 0, again);
    assert_string_equal(again, h[0]);
    tmap_pool_free(pool);
}

/* The fingerprint of a pool's content: what ranks on different hosts
 * compare, and what a fine-tuned GGUF records of its data. */
static void write_records(const char *name, const char *const *lines, size_t n)
{
    FILE *f = fopen(temp_path(name), "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
}

static void fingerprint_of(const char *name, const size_t *rows, size_t n, char out[33])
{
    struct tmap_pool *pool = load_with(temp_path(name), NULL);
    tmap_pool_fingerprint(pool, rows, n == SIZE_MAX ? tmap_pool_size(pool) : n, out);
    tmap_pool_free(pool);
}

static void test_pool_fingerprint(void **state)
{
    (void)state;
    const char *a[] = { "{\"id\": \"a\", \"question\": \"1+1?\", \"answer\": \"#### 2\"}",
                        "{\"id\": \"b\", \"question\": \"2+2?\", \"answer\": \"#### 4\"}",
                        "{\"id\": \"c\", \"question\": \"3+3?\", \"answer\": \"#### 6\"}" };
    /* The same content under other ids, other spacing, another file name. */
    const char *renamed[] = { "{\"question\": \" 1+1?\", \"answer\": \"#### 2 \", \"id\": \"x\"}",
                              "{\"question\": \"2+2?\", \"answer\": \"#### 4\"}",
                              "{\"id\": \"z\", \"question\": \"3+3?\", \"answer\": \"#### 6\"}" };
    const char *swapped[] = { a[1], a[0], a[2] };
    write_records("fp_a.jsonl", a, 3);
    write_records("fp_renamed.jsonl", renamed, 3);
    write_records("fp_swapped.jsonl", swapped, 3);
    write_records("fp_two.jsonl", a, 2);
    char fa[33], fr[33], fs[33], f2[33], rows_swapped[33], first_two[33];
    fingerprint_of("fp_a.jsonl", NULL, SIZE_MAX, fa);
    fingerprint_of("fp_renamed.jsonl", NULL, SIZE_MAX, fr);
    fingerprint_of("fp_swapped.jsonl", NULL, SIZE_MAX, fs);
    fingerprint_of("fp_two.jsonl", NULL, SIZE_MAX, f2);
    assert_int_equal(strlen(fa), 32);
    assert_string_equal(fa, fr);     /* ids, names and spacing do not count */
    assert_string_not_equal(fa, fs); /* the order does */
    assert_string_not_equal(fa, f2); /* and so does every record */
    /* rows picks records: a's rows 1, 0, 2 are the swapped file; its first
     * two, the two-record file. */
    const size_t order[] = { 1, 0, 2 };
    fingerprint_of("fp_a.jsonl", order, 3, rows_swapped);
    fingerprint_of("fp_a.jsonl", NULL, 2, first_two);
    assert_string_equal(rows_swapped, fs);
    assert_string_equal(first_two, f2);
    /* Pinned: fine-tuned GGUFs record this value, so its definition must
     * not change unnoticed. */
    assert_string_equal(fa, "482a707bfd5a6cc22da43d5b74d86058");
    const char *written[] = { "fp_a.jsonl", "fp_renamed.jsonl", "fp_swapped.jsonl", "fp_two.jsonl" };
    for (size_t i = 0; i < 4; i++)
        unlink(temp_path(written[i]));
}

/* The overlap of two pools written from these lines (files NAME_pool.jsonl
 * and NAME_val.jsonl); asks has a slot per pool line. */
static void overlap_of(const char *name, const char *const *pool_lines, size_t n_pool,
                       const char *const *val_lines, size_t n_val, bool *asks, struct tmap_overlap *o)
{
    char pool_name[64], val_name[64];
    snprintf(pool_name, sizeof pool_name, "%s_pool.jsonl", name);
    snprintf(val_name, sizeof val_name, "%s_val.jsonl", name);
    write_records(pool_name, pool_lines, n_pool);
    write_records(val_name, val_lines, n_val);
    struct tmap_pool *pool = load_with(temp_path(pool_name), NULL);
    struct tmap_pool *val = load_with(temp_path(val_name), NULL);
    struct tmap_error err;
    assert_int_equal(tmap_pool_overlap(pool, val, asks, o, &err), TMAP_OK);
    tmap_pool_free(val);
    tmap_pool_free(pool);
    unlink(temp_path(pool_name));
    unlink(temp_path(val_name));
}

/* Validation records the pool repeats: by prompt (any answer) and by whole
 * record, through CRLF and surrounding whitespace, counted per validation
 * record however many pool copies it has. */
static void test_pool_overlap(void **state)
{
    (void)state;
    const char *pool_lines[] = {
        "{\"id\": \"p1\", \"question\": \"1+1?\", \"answer\": \"#### 2\"}",
        "{\"id\": \"p2\", \"question\": \"2+2?\\r\\n\", \"answer\": \" #### 4\"}",
        "{\"id\": \"p3\", \"question\": \"2+2?\", \"answer\": \"#### 5\"}",
        "{\"id\": \"p4\", \"question\": \"3+3?\", \"answer\": \"#### 7\"}",
        "{\"id\": \"p5\", \"question\": \"9+9?\", \"answer\": \"#### 18\"}",
    };
    const char *val_lines[] = {
        "{\"id\": \"v1\", \"question\": \"5+5?\", \"answer\": \"#### 10\"}", /* not in the pool */
        "{\"id\": \"v3\", \"question\": \"3+3?\", \"answer\": \"#### 6\"}",  /* p4 by prompt */
        "{\"id\": \"v2\", \"question\": \"2+2?\", \"answer\": \"#### 4\"}",  /* p2 exactly, p3 by prompt */
        "{\"id\": \"v4\", \"question\": \"3+3?\", \"answer\": \"#### 7\"}",  /* p4 exactly */
        "{\"id\": \"v5\", \"question\": \"1+1\", \"answer\": \"#### 2\"}",   /* another question */
    };
    write_records("ov_pool.jsonl", pool_lines, 5);
    write_records("ov_val.jsonl", val_lines, 5);
    struct tmap_pool *pool = load_with(temp_path("ov_pool.jsonl"), NULL);
    struct tmap_pool *val = load_with(temp_path("ov_val.jsonl"), NULL);
    struct tmap_overlap o;
    struct tmap_error err;
    bool asks[5];
    assert_int_equal(tmap_pool_overlap(pool, val, asks, &o, &err), TMAP_OK);
    const bool expected[5] = { false, true, true, true, false }; /* p2, p3, p4 */
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(asks[i], expected[i]);
    assert_int_equal(o.n_val, 5);
    assert_int_equal(o.n_prompts, 3);   /* v3, v2, v4 */
    assert_int_equal(o.n_records, 2);   /* v2 (p2 through CRLF and spaces), v4 */
    assert_int_equal(o.n_pool_rows, 3); /* p2, p3, p4 */
    assert_int_equal(o.first, 1);       /* v3: the question alone counts */
    assert_int_equal(o.first_line, 2);
    char line[1024] = "untouched";
    assert_true(tmap_overlap_describe(&o, "val.jsonl", line, sizeof line));
    assert_non_null(strstr(line, "3 of the 5 records of val.jsonl ask a question the pool also holds "
                                 "(2 with the same answer; 3 pool records; the first: line 2)"));

    /* A pool against itself repeats every record; against a disjoint set,
     * none, and the line is left alone. */
    assert_int_equal(tmap_pool_overlap(pool, pool, NULL, &o, &err), TMAP_OK);
    assert_int_equal(o.n_prompts, 5);
    assert_int_equal(o.n_records, 5);
    assert_int_equal(o.n_pool_rows, 5);
    const char *other[] = { val_lines[0], val_lines[4] };
    write_records("ov_other.jsonl", other, 2);
    struct tmap_pool *disjoint = load_with(temp_path("ov_other.jsonl"), NULL);
    assert_int_equal(tmap_pool_overlap(pool, disjoint, asks, &o, &err), TMAP_OK);
    assert_int_equal(o.n_prompts + o.n_records + o.n_pool_rows + o.first_line, 0);
    assert_int_equal(o.first, SIZE_MAX);
    for (size_t i = 0; i < 5; i++)
        assert_false(asks[i]);
    strcpy(line, "untouched");
    assert_false(tmap_overlap_describe(&o, "other.jsonl", line, sizeof line));
    assert_string_equal(line, "untouched");
    tmap_pool_free(disjoint);
    tmap_pool_free(val);
    tmap_pool_free(pool);
    const char *written[] = { "ov_pool.jsonl", "ov_val.jsonl", "ov_other.jsonl" };
    for (size_t i = 0; i < 3; i++)
        unlink(temp_path(written[i]));
}

/* A question copied with its case or line wrapping changed is still the
 * same question; one with other characters is not. */
static void test_pool_overlap_question_form(void **state)
{
    (void)state;
    const char *pool_lines[] = {
        "{\"question\": \"  what is  Nine\\n\\tplus NINE?\", \"answer\": \"#### 18\"}",
        "{\"question\": \"What is nine plus nine ?\", \"answer\": \"#### 18\"}",
        "{\"question\": \"Whät is nine plus nine?\", \"answer\": \"#### 18\"}",
    };
    const char *val_lines[] = { "{\"question\": \"What is nine plus nine?\", \"answer\": \"#### 18\"}" };
    struct tmap_overlap o;
    bool asks[3];
    overlap_of("oq", pool_lines, 3, val_lines, 1, asks, &o);
    assert_true(asks[0]);  /* case and whitespace runs */
    assert_false(asks[1]); /* a space where there was none */
    assert_false(asks[2]); /* another letter: only ASCII case folds */
    assert_int_equal(o.n_prompts, 1);
    assert_int_equal(o.n_records, 0); /* the whole record's hash stays exact */
}

/* ---- bad input ---------------------------------------------------------- */

/* Loads a fixture that must fail with TMAP_ERR_DATA; returns the message. */
static const char *data_error(const char *name)
{
    static struct tmap_error err;
    assert_int_equal(load_fails(fixture(name), NULL, &err), TMAP_ERR_DATA);
    return err.message;
}

static void test_truncated_line(void **state)
{
    (void)state;
    const char *m = data_error("truncated.jsonl");
    assert_contains(m, "truncated.jsonl:2: invalid JSON: premature end of input near '\"ans' "
                       "(column 24)");
    assert_contains(m, "1 bad records in ");
    assert_contains(m, "truncated.jsonl; --on-error skip sets them aside");
}

/* jansson reads one line at a time: its "end of file" is the line's end. */
static void test_line_cut_after_a_key(void **state)
{
    (void)state;
    const char *m = data_error("cut_after_key.jsonl");
    assert_contains(m, "cut_after_key.jsonl:2: invalid JSON: unexpected token near end of line (column ");
    assert_null(strstr(m, "end of file"));
}

static void test_truncated_array(void **state)
{
    (void)state;
    const char *m = data_error("truncated_array.json");
    assert_contains(m, "truncated_array.json:4: invalid JSON: end of file inside the array, "
                       "expected ',' or ']'");
    m = data_error("truncated_element.json");
    assert_contains(m, "truncated_element.json:3: invalid JSON: premature end of input near "
                       "'\"resp' (line 3, column 23)");
    m = data_error("array_garbage.json");
    assert_contains(m, "array_garbage.json:1: invalid JSON: expected ',' or ']' after an element "
                       "(column 35)");
}

static void test_wrong_types(void **state)
{
    (void)state;
    const char *m = data_error("wrong_type.jsonl");
    assert_contains(m, "wrong_type.jsonl:1: field \"answer\" must be a string, got number");
    assert_contains(m, "wrong_type.jsonl:2: field \"input\" must be a string, got null");
    assert_contains(m, "wrong_type.jsonl:3: field \"messages\" must be an array, got string");
    assert_contains(m, "wrong_type.jsonl:4: field \"conversations[0].value\" must be a string, "
                       "got number");
    assert_contains(m, "wrong_type.jsonl:5: field \"id\" must be a string or an integer, "
                       "got number");
    assert_contains(m, "wrong_type.jsonl:6: field \"id\" is an empty string");
    assert_contains(m, "6 bad records in ");
}

static void test_missing_fields(void **state)
{
    (void)state;
    const char *m = data_error("missing_field.jsonl");
    assert_contains(m, "missing_field.jsonl:1: missing field \"output\" (detected format: alpaca)");
    assert_contains(m, "missing_field.jsonl:2: missing field \"answerKey\" (detected format: mc)");
    assert_contains(m, "missing_field.jsonl:3: missing field \"conversations[0].value\" "
                       "(detected format: sharegpt)");
    assert_contains(m, "missing_field.jsonl:4: missing field \"response\" or \"completion\" "
                       "(detected format: generic)");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    const char *m = data_error("bad_utf8.jsonl");
    assert_contains(m, "bad_utf8.jsonl:2: invalid UTF-8 at byte 16");
}

static void test_not_object(void **state)
{
    (void)state;
    const char *m = data_error("not_object.jsonl");
    assert_contains(m, "not_object.jsonl:2: record is not a JSON object, got number");
    assert_contains(m, "not_object.jsonl:3: record is not a JSON object, got string");
    assert_contains(m, "not_object.jsonl:4: record is not a JSON object, got array");
}

static void test_unknown_format(void **state)
{
    (void)state;
    const char *m = data_error("unknown_format.jsonl");
    assert_contains(m, "unknown_format.jsonl:1: no known format (keys: foo, bar); "
                       "use --fields prompt=KEY,response=KEY");
    assert_contains(m, "unknown_format.jsonl:2: no known format (keys: none)");
}

static void test_bad_chat(void **state)
{
    (void)state;
    const char *m = data_error("bad_chat.jsonl");
    assert_contains(m, "bad_chat.jsonl:1: field \"conversations[0].from\" has unknown role "
                       "\"tool\"");
    assert_contains(m, "bad_chat.jsonl:2: field \"messages[1].role\" has unknown role \"tool\" "
                       "(expected system, user or assistant)");
    assert_contains(m, "bad_chat.jsonl:3: field \"messages\" has no assistant turn");
    assert_contains(m, "bad_chat.jsonl:4: field \"messages[0].content[0].type\" is "
                       "\"image_url\"; only \"text\" parts are supported");
    assert_contains(m, "bad_chat.jsonl:5: field \"conversations\" has no turn before its last "
                       "assistant turn");
    assert_contains(m, "bad_chat.jsonl:6: field \"messages[1].content\" must be a string or an "
                       "array of text parts, got null");
}

static void test_bad_mc(void **state)
{
    (void)state;
    const char *m = data_error("bad_mc.jsonl");
    assert_contains(m, "bad_mc.jsonl:1: unknown answerKey \"E\" (labels: A, B, C, D)");
    assert_contains(m, "bad_mc.jsonl:2: field \"answerKey\" is 5, out of range for 2 choices");
    assert_contains(m, "bad_mc.jsonl:3: field \"choices\" is empty");
    assert_contains(m, "bad_mc.jsonl:4: field \"choices\" must be an array of strings or an object "
                       "with \"text\" and \"label\" arrays, got string");
    assert_contains(m, "bad_mc.jsonl:5: field \"choices\" has 2 texts but 1 labels");
    assert_contains(m, "bad_mc.jsonl:6: field \"answerKey\" must be a string label or an integer "
                       "index, got boolean");
}

static void test_no_records(void **state)
{
    (void)state;
    const char *names[] = {"empty.jsonl", "only_blank.jsonl"};
    for (size_t k = 0; k < 2; k++) {
        char expected[4200];
        snprintf(expected, sizeof expected, "%s: no records", fixture(names[k]));
        assert_string_equal(data_error(names[k]), expected);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    struct tmap_error err;
    assert_int_equal(load_fails(fixture("no_such_file.jsonl"), NULL, &err), TMAP_ERR_IO);
    assert_contains(err.message, "no_such_file.jsonl: cannot open: No such file or directory");
    assert_int_equal(load_fails(TMAP_FIXTURES, NULL, &err), TMAP_ERR_IO);
    char expected[4200];
    snprintf(expected, sizeof expected, "%s: cannot read: Is a directory", TMAP_FIXTURES);
    assert_string_equal(err.message, expected);
}

/* A file that is not text (a model given as data, a compressed or columnar
 * data set) is named for what it is, in one message, with nothing set
 * aside as bad records even in SKIP mode. */
static void test_not_text(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t      n;
        const char *expected;
    } files[] = {
/* The literal and its length without the terminator, so that a count can never
 * run past the literal (a hand-counted 37 for 35 bytes read out of bounds). */
#define BYTES(literal) literal, sizeof literal - 1
        {BYTES("GGUF\x03\0\0\0\n\n"), "a GGUF model, not data: did -m and -d change places?"},
        {BYTES("\x1f\x8b\x08\0\n"), "gzip-compressed: decompress it first"},
        {BYTES("PAR1\x15\x04\n"), "a Parquet file"},
        {BYTES("{\"prompt\": \"a\", \"response\": \"b\"}\n\0\n"), "a binary file (a NUL byte in its first 35 bytes)"},
#undef BYTES
    };
    char path[4200], rejects[4200];
    snprintf(path, sizeof path, "%s", temp_path("not_text.jsonl"));
    snprintf(rejects, sizeof rejects, "%s", temp_path("not_text_rejects.jsonl"));
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(files[i].bytes, 1, files[i].n, f), files[i].n);
        fclose(f);
        struct tmap_pool_params params = tmap_pool_default_params();
        params.on_error = TMAP_ON_ERROR_SKIP;
        params.rejects_path = rejects;
        struct tmap_error err;
        assert_int_equal(load_fails(path, &params, &err), TMAP_ERR_DATA);
        assert_contains(err.message, path);
        assert_contains(err.message, files[i].expected);
        assert_null(strchr(err.message, '\n')); /* one line, not one per stray newline byte */
        assert_int_equal(access(rejects, F_OK), -1);
    }
    unlink(path); /* the group teardown removes the folder only when empty */
}

/* A JSON line of exactly `bytes` bytes: a generic record with a long response. */
static char *long_record(size_t bytes)
{
    const char head[] = "{\"prompt\": \"p\", \"response\": \"", tail[] = "\"}";
    char *line = malloc(bytes + 2);
    assert_non_null(line);
    memcpy(line, head, sizeof head - 1);
    memset(line + sizeof head - 1, 'x', bytes - (sizeof head - 1) - (sizeof tail - 1));
    memcpy(line + bytes - (sizeof tail - 1), tail, sizeof tail - 1);
    line[bytes] = '\n';
    line[bytes + 1] = '\0';
    return line;
}

static void test_huge_line(void **state)
{
    (void)state;
    const size_t bytes = 10u << 20;
    const char good[] = "{\"prompt\": \"a\", \"response\": \"b\"}\n";
    char *line = long_record(bytes);
    const char *path = temp_path("huge.jsonl");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(good, f);
    fwrite(line, 1, bytes + 1, f);
    assert_int_equal(fclose(f), 0);
    free(line);

    struct tmap_error err;
    assert_int_equal(load_fails(path, NULL, &err), TMAP_ERR_DATA);
    assert_contains(err.message, "huge.jsonl:2: record is 10485760 bytes, over the limit of "
                                 "8388608 (max_record_bytes)");

    struct tmap_pool_params params = tmap_pool_default_params();
    params.max_record_bytes = 16u << 20;
    struct tmap_pool *pool = load_with(path, &params);
    assert_int_equal(tmap_pool_size(pool), 2);
    struct tmap_sample s;
    get_sample(pool, 1, &s);
    assert_int_equal(strlen(s.response), bytes - strlen("{\"prompt\": \"p\", \"response\": \"\"}"));
    tmap_sample_free(&s);
    tmap_pool_free(pool);
    unlink(path);
}

static void test_fail_lists_first_ten(void **state)
{
    (void)state;
    const char *m = data_error("many_bad.jsonl");
    for (size_t line = 1; line <= 10; line++) {
        char expected[64];
        snprintf(expected, sizeof expected, "many_bad.jsonl:%zu: no known format", line);
        assert_contains(m, expected);
    }
    assert_not_contains(m, "many_bad.jsonl:11:");
    assert_contains(m, "12 bad records in ");
    /* One bad record per line, then the summary: 11 lines. */
    size_t lines = 1;
    for (const char *p = m; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 11);
    const char *last = strrchr(m, '\n') + 1;
    char expected[4200];
    snprintf(expected, sizeof expected, "12 bad records in %s; --on-error skip sets them aside",
             fixture("many_bad.jsonl"));
    assert_string_equal(last, expected);
}

/* ---- skip mode ---------------------------------------------------------- */

/* The rejects file, one parsed JSON object per line; *n gets the count. */
static json_t **read_rejects(const char *path, size_t *n)
{
    size_t bytes;
    char *text = read_whole(path, &bytes);
    json_t **lines = calloc(16, sizeof *lines);
    *n = 0;
    for (char *line = strtok(text, "\n"); line && *n < 16; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        lines[*n] = json_loads(line, 0, &jerr);
        if (!lines[*n])
            fail_msg("rejects line %zu is not JSON: %s", *n + 1, jerr.text);
        (*n)++;
    }
    free(text);
    return lines;
}

static void free_rejects(json_t **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i]);
    free(lines);
}

static const char *str_field(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static void test_skip_writes_rejects(void **state)
{
    (void)state;
    const char *rejects = temp_path("rejects.jsonl");
    struct tmap_pool_params params = tmap_pool_default_params();
    params.on_error = TMAP_ON_ERROR_SKIP;
    params.rejects_path = rejects;
    struct tmap_pool *pool = load_with(fixture("skip.jsonl"), &params);
    assert_int_equal(tmap_pool_size(pool), 2);
    assert_int_equal(tmap_pool_n_rejected(pool), 2);
    struct tmap_record r;
    tmap_pool_record(pool, 1, &r);
    assert_int_equal(r.line, 4);
    tmap_pool_free(pool);

    size_t n;
    json_t **lines = read_rejects(rejects, &n);
    assert_int_equal(n, 2);
    assert_string_equal(str_field(lines[0], "file"), fixture("skip.jsonl"));
    assert_int_equal(json_integer_value(json_object_get(lines[0], "line")), 2);
    assert_contains(str_field(lines[0], "reason"), "invalid JSON: ");
    assert_string_equal(str_field(lines[0], "raw"), "{\"prompt\": \"cut");
    assert_null(json_object_get(lines[0], "raw_base64"));
    /* Not UTF-8: kept as base64 of the exact bytes. */
    assert_int_equal(json_integer_value(json_object_get(lines[1], "line")), 3);
    assert_string_equal(str_field(lines[1], "reason"), "invalid UTF-8 at byte 16");
    assert_null(json_object_get(lines[1], "raw"));
    assert_string_equal(str_field(lines[1], "raw_base64"),
                        "eyJwcm9tcHQiOiAiY2Fm6SIsICJyZXNwb25zZSI6ICJ4In0=");
    free_rejects(lines, n);

    /* The file describes the latest load: a rerun replaces, never doubles. */
    pool = load_with(fixture("skip.jsonl"), &params);
    tmap_pool_free(pool);
    lines = read_rejects(rejects, &n);
    assert_int_equal(n, 2);
    free_rejects(lines, n);
    unlink(rejects);
}

static void test_skip_truncated_array(void **state)
{
    (void)state;
    const char *rejects = temp_path("array_rejects.jsonl");
    struct tmap_pool_params params = tmap_pool_default_params();
    params.on_error = TMAP_ON_ERROR_SKIP;
    params.rejects_path = rejects;
    struct tmap_pool *pool = load_with(fixture("truncated_element.json"), &params);
    assert_int_equal(tmap_pool_size(pool), 1);
    assert_int_equal(tmap_pool_n_rejected(pool), 1);
    tmap_pool_free(pool);
    size_t n;
    json_t **lines = read_rejects(rejects, &n);
    assert_int_equal(n, 1);
    assert_int_equal(json_integer_value(json_object_get(lines[0], "line")), 3);
    assert_string_equal(str_field(lines[0], "raw"), "{\"prompt\": \"c\", \"resp");
    free_rejects(lines, n);
    unlink(rejects);
}

static void test_skip_without_rejects_file(void **state)
{
    (void)state;
    struct tmap_pool_params params = tmap_pool_default_params();
    params.on_error = TMAP_ON_ERROR_SKIP;
    struct tmap_pool *pool = load_with(fixture("not_object.jsonl"), &params);
    assert_int_equal(tmap_pool_size(pool), 1);
    assert_int_equal(tmap_pool_n_rejected(pool), 3);
    tmap_pool_free(pool);
}

static void test_skip_all_rejected(void **state)
{
    (void)state;
    struct tmap_pool_params params = tmap_pool_default_params();
    params.on_error = TMAP_ON_ERROR_SKIP;
    struct tmap_error err;
    assert_int_equal(load_fails(fixture("all_bad.jsonl"), &params, &err), TMAP_ERR_DATA);
    char expected[4200];
    snprintf(expected, sizeof expected, "%s: no valid records (2 rejected)",
             fixture("all_bad.jsonl"));
    assert_string_equal(err.message, expected);
}

static void test_rejects_unwritable(void **state)
{
    (void)state;
    struct tmap_pool_params params = tmap_pool_default_params();
    params.on_error = TMAP_ON_ERROR_SKIP;
    params.rejects_path = temp_path("no/such/dir/rejects.jsonl");
    struct tmap_error err;
    assert_int_equal(load_fails(fixture("skip.jsonl"), &params, &err), TMAP_ERR_IO);
    assert_contains(err.message,
                    "no/such/dir/rejects.jsonl: cannot open: No such file or directory");
}

static void write_small_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A small file's whole text (a static buffer). */
static const char *small_file(const char *path)
{
    static char text[4096];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The rejects file is an output: it never overwrites the input or other
 * data, a second input of the same command adds to it, and a clean load
 * leaves none of an earlier one behind. */
static void test_rejects_file_guarded(void **state)
{
    (void)state;
    const char *record = "{\"prompt\": \"a\", \"response\": \"b\"}\n";
    const char *input_text = "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"cut\n";
    char input[4200], data[4200], rejects[4200];
    snprintf(input, sizeof input, "%s", temp_path("guard_input.jsonl"));
    snprintf(data, sizeof data, "%s", temp_path("guard_data.jsonl"));
    snprintf(rejects, sizeof rejects, "%s", temp_path("guard_rejects.jsonl"));
    write_small_file(input, input_text);
    write_small_file(data, record);
    struct tmap_pool_params params = tmap_pool_default_params();
    params.on_error = TMAP_ON_ERROR_SKIP;
    struct tmap_error err;

    params.rejects_path = input;
    assert_int_equal(load_fails(input, &params, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "the rejects file is the input itself");
    assert_string_equal(small_file(input), input_text);

    params.rejects_path = data;
    assert_int_equal(load_fails(input, &params, &err), TMAP_ERR_USAGE);
    assert_contains(err.message, "does not hold rejected records");
    assert_string_equal(small_file(data), record);

    /* The first input starts the file, the second adds to it. */
    params.rejects_path = rejects;
    tmap_pool_free(load_with(input, &params));
    params.rejects_append = true;
    tmap_pool_free(load_with(input, &params));
    size_t n;
    json_t **lines = read_rejects(rejects, &n);
    assert_int_equal(n, 2);
    free_rejects(lines, n);

    /* A clean load that starts the file anew leaves nothing stale. */
    params.rejects_append = false;
    tmap_pool_free(load_with(data, &params));
    assert_int_equal(access(rejects, F_OK), -1);
    unlink(input);
    unlink(data);
}

/* ---- utf8 and stats helpers -------------------------------------------- */

static void test_utf8(void **state)
{
    (void)state;
    size_t bad = 99;
    assert_true(tmap_utf8_valid("", 0, &bad));
    assert_true(tmap_utf8_valid("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15, &bad));
    assert_int_equal(tmap_utf8_count("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15), 9);
    assert_true(tmap_utf8_valid("\xF4\x8F\xBF\xBF", 4, NULL)); /* U+10FFFF */
    struct {
        const char *bytes;
        size_t      n, bad;
    } cases[] = {
        {"ab\xC0\x80", 4, 2},     /* overlong NUL */
        {"\xE0\x80\xAF", 3, 0},   /* overlong '/' */
        {"x\xED\xA0\x80", 4, 1},  /* a surrogate */
        {"\xF4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"abc\xE2\x82", 5, 3},    /* cut short */
        {"\x80", 1, 0},           /* a lone continuation byte */
        {"ok\xFF", 3, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_false(tmap_utf8_valid(cases[i].bytes, cases[i].n, &bad));
        assert_int_equal(bad, cases[i].bad);
    }
}

static void test_length_summary(void **state)
{
    (void)state;
    struct tmap_length_summary s;
    tmap_length_summarise(NULL, 0, &s);
    assert_true(s.min == 0 && s.p50 == 0 && s.max == 0 && s.mean == 0);
    double one[] = {7};
    tmap_length_summarise(one, 1, &s);
    assert_true(s.min == 7 && s.p25 == 7 && s.p95 == 7 && s.max == 7 && s.mean == 7);
    double v[] = {4, 1, 3, 2}; /* R: quantile(1:4, c(.25, .5, .75, .95)) */
    tmap_length_summarise(v, 4, &s);
    assert_true(v[0] == 1 && v[3] == 4); /* sorted in place */
    assert_float_equal(s.min, 1, 1e-12);
    assert_float_equal(s.p25, 1.75, 1e-12);
    assert_float_equal(s.p50, 2.5, 1e-12);
    assert_float_equal(s.p75, 3.25, 1e-12);
    assert_float_equal(s.p95, 3.85, 1e-12);
    assert_float_equal(s.max, 4, 1e-12);
    assert_float_equal(s.mean, 2.5, 1e-12);
}

/* ---- runner ------------------------------------------------------------- */

static int make_temp_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/tmap-test-data-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(temp_dir) ? 0 : -1;
}

/* Fails when a test left a file behind (ctest reads cmocka's message). */
static int remove_temp_dir(void **state)
{
    (void)state;
    if (rmdir(temp_dir) == 0)
        return 0;
    fprintf(stderr, "cannot remove %s: %s (a test left files in it)\n", temp_dir, strerror(errno));
    return -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpaca),
        cmocka_unit_test(test_gsm8k),
        cmocka_unit_test(test_mc_list),
        cmocka_unit_test(test_mc_arc),
        cmocka_unit_test(test_sharegpt),
        cmocka_unit_test(test_openai),
        cmocka_unit_test(test_generic),
        cmocka_unit_test(test_custom_fields),
        cmocka_unit_test(test_custom_answer),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_raw_passthrough),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_blank_lines),
        cmocka_unit_test(test_json_array),
        cmocka_unit_test(test_json_array_one_line),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_duplicate_ids),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_gsm8k_train),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_pool_fingerprint),
        cmocka_unit_test(test_pool_overlap),
        cmocka_unit_test(test_pool_overlap_question_form),
        cmocka_unit_test(test_truncated_line),
        cmocka_unit_test(test_line_cut_after_a_key),
        cmocka_unit_test(test_truncated_array),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_unknown_format),
        cmocka_unit_test(test_bad_chat),
        cmocka_unit_test(test_bad_mc),
        cmocka_unit_test(test_no_records),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_not_text),
        cmocka_unit_test(test_huge_line),
        cmocka_unit_test(test_fail_lists_first_ten),
        cmocka_unit_test(test_skip_writes_rejects),
        cmocka_unit_test(test_skip_truncated_array),
        cmocka_unit_test(test_skip_without_rejects_file),
        cmocka_unit_test(test_skip_all_rejected),
        cmocka_unit_test(test_rejects_unwritable),
        cmocka_unit_test(test_rejects_file_guarded),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_length_summary),
    };
    return cmocka_run_group_tests(tests, make_temp_dir, remove_temp_dir);
}
