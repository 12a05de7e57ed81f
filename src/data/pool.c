/*
 * pool.c - the instruction pool: a mapped file and an index of its records.
 *
 * First stage of the pipeline (data -> model -> indicators -> ...). The file
 * is mapped read-only and never copied: loading walks it once, parses and
 * checks each record (format.c) and keeps only a small index entry per
 * record (where its bytes are, its line, format, id and content hash), so
 * memory grows with the number of records, not with their text. A sample's
 * text is rebuilt on demand by parsing its bytes again.
 *
 * Bad records never stop the walk: in FAIL mode they are listed and the
 * load fails at the end, so one run reports every problem worth fixing; in
 * SKIP mode they are counted and, optionally, written to a rejects file.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: hashing cannot fail */
#include <xxhash.h>

#include "data/format.h"
#include "util/error.h"
#include "util/grow.h"
#include "util/utf8.h"

enum {
    MAX_LISTED_BAD = 10,     /* bad records named in a FAIL-mode message */
    LISTED_LINE_BYTES = 360, /* 10 of them still leave room for the summary line */
};

struct pool_entry {
    size_t           offset, bytes; /* the record's raw bytes in the mapping */
    size_t           line;
    size_t           id;            /* offset of its id in pool->ids */
    uint8_t          hash[16];
    uint64_t         prompt_hash;
    enum tmap_format format;
};

struct tmap_pool {
    char                 *path;
    const char           *map; /* NULL for an empty file */
    size_t                map_bytes;
    struct pool_entry    *entries;
    size_t                n_entries, entries_cap;
    char                 *ids; /* every id, each ending in '\0' */
    size_t                ids_bytes, ids_cap;
    size_t               *slots; /* open addressing by id: entry index + 1, 0 = empty */
    size_t                n_slots;
    size_t                n_rejected, n_blank_lines;
    struct tmap_field_map fields; /* copies of the caller's keys */
    char                 *id_field;
};

/* State that lives only while a file is being read. */
struct loader {
    struct tmap_pool              *pool;
    const struct tmap_pool_params *params;
    struct tmap_error             *err;
    size_t                         n_bad;
    char                           listed[MAX_LISTED_BAD][LISTED_LINE_BYTES];
    FILE                          *rejects;
    size_t                         fallback_line, fallback_count;
};

/* A position in the mapping, with what messages need to name it. */
struct cursor {
    size_t offset;
    size_t line;       /* 1-based */
    size_t line_start; /* offset of the line's first byte */
};

struct tmap_pool_params tmap_pool_default_params(void)
{
    return (struct tmap_pool_params){
        .on_error = TMAP_ON_ERROR_FAIL,
        .id_field = "id",
        .max_record_bytes = (size_t)8 << 20,
    };
}

void tmap_sample_free(struct tmap_sample *sample)
{
    if (!sample)
        return;
    free(sample->arena_);
    memset(sample, 0, sizeof *sample);
    sample->answer_index = -1;
}

static enum tmap_status out_of_memory(struct tmap_error *err)
{
    return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
}

/* ---- the id table ---------------------------------------------------------- */

static const char *entry_id(const struct tmap_pool *pool, size_t i)
{
    return pool->ids + pool->entries[i].id;
}

/* The slot holding id, or the empty slot where it would go. The table is
 * never more than half full, so the probe ends. */
static size_t id_slot(const struct tmap_pool *pool, const char *id)
{
    size_t mask = pool->n_slots - 1;
    size_t s = (size_t)XXH3_64bits(id, strlen(id)) & mask;
    while (pool->slots[s] != 0 && strcmp(entry_id(pool, pool->slots[s] - 1), id) != 0)
        s = (s + 1) & mask;
    return s;
}

/* Doubles the table when one more entry would make it over half full. */
static bool id_table_reserve(struct tmap_pool *pool)
{
    if ((pool->n_entries + 1) * 2 <= pool->n_slots)
        return true;
    size_t *old = pool->slots, n_old = pool->n_slots;
    size_t n_new = n_old ? n_old * 2 : 256;
    size_t *slots = calloc(n_new, sizeof *slots);
    if (!slots)
        return false;
    pool->slots = slots;
    pool->n_slots = n_new;
    for (size_t s = 0; s < n_old; s++)
        if (old[s])
            pool->slots[id_slot(pool, entry_id(pool, old[s] - 1))] = old[s];
    free(old);
    return true;
}

size_t tmap_pool_find(const struct tmap_pool *pool, const char *id)
{
    if (!pool || !id || pool->n_slots == 0)
        return SIZE_MAX;
    size_t s = pool->slots[id_slot(pool, id)];
    return s ? s - 1 : SIZE_MAX;
}

/* ---- bad records ------------------------------------------------------------ */

static void notify(const struct loader *ld, size_t line, const char *what)
{
    if (!ld->params->notice)
        return;
    char message[1024];
    snprintf(message, sizeof message, "%s:%zu: %s", ld->pool->path, line, what);
    ld->params->notice(message, ld->params->notice_user_data);
}

/* Standard base64 with padding, NUL-terminated; malloc'd. */
static char *base64_encode(const unsigned char *in, size_t n)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t bits = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            bits |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            bits |= in[i + 2];
        *o++ = digits[bits >> 18 & 63];
        *o++ = digits[bits >> 12 & 63];
        *o++ = i + 1 < n ? digits[bits >> 6 & 63] : '=';
        *o++ = i + 2 < n ? digits[bits & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* A JSON string of the longest valid UTF-8 prefix of s: messages echo record
 * text cut at a byte count, which may split a character. */
static json_t *json_text_prefix(const char *s)
{
    size_t n = strlen(s), bad;
    if (!tmap_utf8_valid(s, n, &bad))
        n = bad;
    return json_stringn(s, n);
}

/* The rejects line keeps the record's bytes exactly: as "raw" when they are
 * text, as "raw_base64" when they are not valid UTF-8. */
static json_t *reject_json(const struct loader *ld, size_t line, const char *raw,
                           size_t raw_bytes, const char *reason)
{
    json_t *record = json_object();
    json_object_set_new(record, "file", json_text_prefix(ld->pool->path));
    json_object_set_new(record, "line", json_integer((json_int_t)line));
    json_object_set_new(record, "reason", json_text_prefix(reason));
    if (tmap_utf8_valid(raw, raw_bytes, NULL)) {
        json_object_set_new(record, "raw", json_stringn(raw, raw_bytes));
    } else {
        char *encoded = base64_encode((const unsigned char *)raw, raw_bytes);
        json_object_set_new(record, "raw_base64", encoded ? json_string(encoded) : NULL);
        free(encoded);
    }
    return record;
}

static enum tmap_status write_reject(struct loader *ld, size_t line, const char *raw,
                                     size_t raw_bytes, const char *reason)
{
    /* Opened at the first reject, so no file appears when nothing is
     * rejected; truncated then, so a rerun never mixes in stale rejects,
     * unless an earlier file of the same command started it. */
    const char *path = ld->params->rejects_path;
    if (!ld->rejects && !(ld->rejects = fopen(path, ld->params->rejects_append ? "a" : "w")))
        return tmap_fail(ld->err, TMAP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    json_t *record = reject_json(ld, line, raw, raw_bytes, reason);
    int failed = !record || json_dumpf(record, ld->rejects, JSON_COMPACT) != 0 ||
                 fputc('\n', ld->rejects) == EOF;
    json_decref(record);
    if (failed)
        return tmap_fail(ld->err, TMAP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return TMAP_OK;
}

static enum tmap_status close_rejects(struct loader *ld, enum tmap_status status)
{
    if (!ld->rejects)
        return status;
    bool failed = ferror(ld->rejects) || fclose(ld->rejects) != 0;
    ld->rejects = NULL;
    if (failed && status == TMAP_OK)
        return tmap_fail(ld->err, TMAP_ERR_IO, "%s: cannot write: %s", ld->params->rejects_path,
                         strerror(errno));
    return status;
}

/* Sets a bad record aside. Only a failure to write the rejects file stops
 * the load from here. */
static enum tmap_status reject(struct loader *ld, size_t line, const char *raw, size_t raw_bytes,
                               const char *reason)
{
    ld->n_bad++;
    if (ld->params->on_error == TMAP_ON_ERROR_FAIL) {
        if (ld->n_bad <= MAX_LISTED_BAD)
            snprintf(ld->listed[ld->n_bad - 1], LISTED_LINE_BYTES, "%s:%zu: %s", ld->pool->path,
                     line, reason);
        return TMAP_OK;
    }
    ld->pool->n_rejected++;
    if (!ld->params->rejects_path)
        return TMAP_OK;
    return write_reject(ld, line, raw, raw_bytes, reason);
}

__attribute__((format(printf, 5, 6)))
static enum tmap_status reject_fmt(struct loader *ld, size_t line, const char *raw,
                                   size_t raw_bytes, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return reject(ld, line, raw, raw_bytes, reason);
}

static enum tmap_status reject_too_long(struct loader *ld, size_t line, const char *raw,
                                        size_t raw_bytes)
{
    return reject_fmt(ld, line, raw, raw_bytes,
                      "record is %zu bytes, over the limit of %zu (max_record_bytes)", raw_bytes,
                      ld->params->max_record_bytes);
}

/* ---- accepted records ------------------------------------------------------ */

/* Records without an id are named by their line; records that share a line
 * (a JSON array written on one line) get "LINE.2", "LINE.3", ... after the
 * first, so ids stay unique. */
static const char *fallback_id(struct loader *ld, size_t line, char *buf, size_t buf_bytes)
{
    if (line != ld->fallback_line) {
        ld->fallback_line = line;
        ld->fallback_count = 0;
    }
    if (++ld->fallback_count == 1)
        snprintf(buf, buf_bytes, "%zu", line);
    else
        snprintf(buf, buf_bytes, "%zu.%zu", line, ld->fallback_count);
    return buf;
}

static enum tmap_status add_entry(struct tmap_pool *pool, const struct tmap_sample *sample,
                                  size_t offset, size_t bytes, struct tmap_error *err)
{
    size_t id_bytes = strlen(sample->id) + 1;
    if (!tmap_grow((void **)&pool->entries, &pool->entries_cap, pool->n_entries + 1,
                   sizeof *pool->entries) ||
        !tmap_grow((void **)&pool->ids, &pool->ids_cap, pool->ids_bytes + id_bytes, 1) ||
        !id_table_reserve(pool))
        return out_of_memory(err);
    struct pool_entry *e = &pool->entries[pool->n_entries];
    *e = (struct pool_entry){.offset = offset, .bytes = bytes, .line = sample->line,
                             .id = pool->ids_bytes, .format = sample->format};
    if (tmap_sample_hash(sample, e->hash) != TMAP_OK)
        return out_of_memory(err);
    e->prompt_hash = tmap_sample_prompt_hash(sample);
    memcpy(pool->ids + pool->ids_bytes, sample->id, id_bytes);
    pool->ids_bytes += id_bytes;
    pool->slots[id_slot(pool, sample->id)] = ++pool->n_entries;
    return TMAP_OK;
}

static enum tmap_status index_sample(struct loader *ld, const struct tmap_sample *sample,
                                     size_t offset, size_t bytes)
{
    const char *raw = ld->pool->map + offset;
    size_t first = tmap_pool_find(ld->pool, sample->id);
    if (first != SIZE_MAX)
        return reject_fmt(ld, sample->line, raw, bytes,
                          "duplicate id \"%.64s\" (first on line %zu)", sample->id,
                          ld->pool->entries[first].line);
    return add_entry(ld->pool, sample, offset, bytes, ld->err);
}

/* Checks a parsed record and indexes it, or rejects it with the reason. */
static enum tmap_status take_value(struct loader *ld, const json_t *value, size_t offset,
                                   size_t bytes, size_t line)
{
    const char *raw = ld->pool->map + offset;
    if (!json_is_object(value))
        return reject_fmt(ld, line, raw, bytes, "record is not a JSON object, got %s",
                          tmap_json_type_name(value));
    struct tmap_error reason;
    char id_buf[48];
    const char *id;
    if (tmap_format_id(value, ld->pool->id_field, id_buf, sizeof id_buf, &id, &reason) != TMAP_OK)
        return reject(ld, line, raw, bytes, reason.message);
    if (!id)
        id = fallback_id(ld, line, id_buf, sizeof id_buf);
    struct tmap_sample sample;
    enum tmap_status status =
        tmap_format_extract(value, &ld->pool->fields, id, line, &sample, &reason);
    if (status == TMAP_ERR_DATA)
        return reject(ld, line, raw, bytes, reason.message);
    if (status != TMAP_OK)
        return tmap_fail(ld->err, status, "%s:%zu: %s", ld->pool->path, line, reason.message);
    status = index_sample(ld, &sample, offset, bytes);
    tmap_sample_free(&sample);
    return status;
}

/* ---- JSONL ------------------------------------------------------------------ */

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_json_space(s[i]))
            return false;
    return true;
}

/* UTF-8 is checked before jansson sees the line, so a bad byte is reported
 * as what it is rather than as a JSON syntax error. */
static enum tmap_status take_line(struct loader *ld, size_t offset, size_t bytes, size_t line)
{
    const char *raw = ld->pool->map + offset;
    if (is_blank(raw, bytes)) {
        ld->pool->n_blank_lines++;
        notify(ld, line, "blank line skipped");
        return TMAP_OK;
    }
    if (bytes > ld->params->max_record_bytes)
        return reject_too_long(ld, line, raw, bytes);
    size_t bad;
    if (!tmap_utf8_valid(raw, bytes, &bad))
        return reject_fmt(ld, line, raw, bytes, "invalid UTF-8 at byte %zu", bad + 1);
    json_error_t jerr;
    json_t *value = json_loadb(raw, bytes, JSON_DECODE_ANY, &jerr);
    if (!value) {
        /* jansson was handed one line, so its "end of file" is the line's
         * end: a record cut short, not the file. */
        char *eof = strstr(jerr.text, "end of file");
        if (eof)
            memcpy(eof, "end of line", strlen("end of line")); /* as long as what it replaces */
        return reject_fmt(ld, line, raw, bytes, "invalid JSON: %s (column %d)", jerr.text,
                          jerr.column);
    }
    enum tmap_status status = take_value(ld, value, offset, bytes, line);
    json_decref(value);
    return status;
}

static enum tmap_status read_jsonl(struct loader *ld, size_t offset)
{
    const char *map = ld->pool->map;
    size_t size = ld->pool->map_bytes;
    for (size_t line = 1; offset < size; line++) {
        const char *newline = memchr(map + offset, '\n', size - offset);
        size_t end = newline ? (size_t)(newline - map) : size;
        size_t bytes = end - offset;
        if (bytes > 0 && map[end - 1] == '\r') /* CRLF: the CR is not part of the record */
            bytes--;
        enum tmap_status status = take_line(ld, offset, bytes, line);
        if (status != TMAP_OK)
            return status;
        offset = end + 1;
    }
    return TMAP_OK;
}

/* ---- JSON arrays ----------------------------------------------------------- */

/* Moves c forward by n bytes, keeping its line and line start. */
static void advance(const struct tmap_pool *pool, struct cursor *c, size_t n)
{
    if (n == 0) /* also keeps memchr off the NULL map of an empty file */
        return;
    const char *p = pool->map + c->offset, *end = p + n;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        c->line++;
        c->line_start = (size_t)(++p - pool->map);
    }
    c->offset += n;
}

static void skip_space(const struct tmap_pool *pool, struct cursor *c)
{
    size_t n = 0;
    while (c->offset + n < pool->map_bytes && is_json_space(pool->map[c->offset + n]))
        n++;
    advance(pool, c, n);
}

static bool at_char(const struct tmap_pool *pool, const struct cursor *c, char ch)
{
    return c->offset < pool->map_bytes && pool->map[c->offset] == ch;
}

/* 1-based column of c in characters, as jansson counts them. */
static size_t column(const struct tmap_pool *pool, const struct cursor *c)
{
    return tmap_utf8_count(pool->map + c->line_start, c->offset - c->line_start) + 1;
}

/* After a syntax error the element boundaries that follow cannot be
 * trusted, so everything from c to the end of the file becomes one bad
 * record (kept whole in the rejects file) and the walk ends. */
__attribute__((format(printf, 3, 4)))
static enum tmap_status reject_rest(struct loader *ld, const struct cursor *c, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    const struct tmap_pool *pool = ld->pool;
    return reject(ld, c->line, pool->map + c->offset, pool->map_bytes - c->offset, reason);
}

static enum tmap_status element_error(struct loader *ld, const struct cursor *c,
                                      const json_error_t *jerr)
{
    const struct tmap_pool *pool = ld->pool;
    size_t left = pool->map_bytes - c->offset, bad;
    size_t scanned = (size_t)jerr->position + 4 < left ? (size_t)jerr->position + 4 : left;
    if (!tmap_utf8_valid(pool->map + c->offset, scanned, &bad)) {
        struct cursor at = *c;
        advance(pool, &at, bad);
        return reject_rest(ld, c, "invalid UTF-8 at byte %zu of line %zu",
                           at.offset - at.line_start + 1, at.line);
    }
    /* jansson counts lines and columns from the start of the element. */
    size_t more_lines = jerr->line > 1 ? (size_t)jerr->line - 1 : 0;
    size_t jcol = jerr->column > 0 ? (size_t)jerr->column : 1;
    size_t line = c->line + more_lines, col = more_lines ? jcol : column(pool, c) + jcol - 1;
    return reject_rest(ld, c, "invalid JSON: %s (line %zu, column %zu)", jerr->text, line, col);
}

/* Parses the element at c and moves c past it; *parsed is false after a
 * syntax error, which ends the walk. */
static enum tmap_status read_element(struct loader *ld, struct cursor *c, bool *parsed)
{
    const struct tmap_pool *pool = ld->pool;
    const char *start = pool->map + c->offset;
    json_error_t jerr;
    /* DISABLE_EOF_CHECK: stop after one value and report its length in
     * jerr.position instead of requiring the end of the input. */
    json_t *value = json_loadb(start, pool->map_bytes - c->offset,
                               JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &jerr);
    *parsed = value != NULL;
    if (!value)
        return element_error(ld, c, &jerr);
    size_t bytes = (size_t)jerr.position;
    enum tmap_status status = bytes > ld->params->max_record_bytes
                                  ? reject_too_long(ld, c->line, start, bytes)
                                  : take_value(ld, value, c->offset, bytes, c->line);
    json_decref(value);
    advance(pool, c, bytes);
    return status;
}

static enum tmap_status array_end(struct loader *ld, struct cursor c)
{
    c.offset++; /* the ']' */
    skip_space(ld->pool, &c);
    if (c.offset < ld->pool->map_bytes)
        return reject_rest(ld, &c, "invalid JSON: text after the closing ']' (column %zu)",
                           column(ld->pool, &c));
    return TMAP_OK;
}

/* Walks "[ value , value ... ]" with c at the '['. */
static enum tmap_status read_array(struct loader *ld, struct cursor c)
{
    const struct tmap_pool *pool = ld->pool;
    c.offset++;
    skip_space(pool, &c);
    if (at_char(pool, &c, ']'))
        return array_end(ld, c);
    for (;;) {
        bool parsed;
        enum tmap_status status = read_element(ld, &c, &parsed);
        if (status != TMAP_OK || !parsed)
            return status;
        skip_space(pool, &c);
        if (at_char(pool, &c, ']'))
            return array_end(ld, c);
        if (c.offset == pool->map_bytes)
            return reject_rest(ld, &c, "invalid JSON: end of file inside the array, "
                                       "expected ',' or ']'");
        if (!at_char(pool, &c, ','))
            return reject_rest(ld, &c, "invalid JSON: expected ',' or ']' after an element "
                                       "(column %zu)", column(pool, &c));
        c.offset++;
        skip_space(pool, &c);
    }
}

/* ---- loading --------------------------------------------------------------- */

static enum tmap_status check_params(const struct tmap_pool_params *params,
                                     struct tmap_error *err)
{
    const struct tmap_field_map *f = &params->fields;
    if ((f->prompt || f->response || f->answer) && !(f->prompt && f->response))
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "--fields needs both prompt=KEY and response=KEY");
    if (params->on_error != TMAP_ON_ERROR_FAIL && params->on_error != TMAP_ON_ERROR_SKIP)
        return tmap_fail(err, TMAP_ERR_USAGE, "on_error: unknown value %d", (int)params->on_error);
    if (params->max_record_bytes == 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "max_record_bytes must be at least 1");
    return TMAP_OK;
}

/* True when the file's first JSON value is a record reject_json wrote (an
 * empty file counts): only such a file may be replaced or added to. */
static bool holds_rejects(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    int c = fgetc(f);
    bool empty = c == EOF;
    json_t *first = NULL;
    if (!empty && ungetc(c, f) != EOF)
        first = json_loadf(f, JSON_DISABLE_EOF_CHECK, NULL);
    fclose(f);
    bool ok = empty || (json_is_object(first) && json_is_string(json_object_get(first, "file")) &&
                        json_is_integer(json_object_get(first, "line")) &&
                        json_is_string(json_object_get(first, "reason")));
    json_decref(first);
    return ok;
}

/* The rejects file is an output, and a path given by hand may name a file
 * the user keeps: the input itself (truncating what is mapped would crash
 * the load and empty the file), another input of the same command, any
 * data. Only a file that is not there, is not a regular file (/dev/null) or
 * already holds rejects may be written. */
static enum tmap_status check_rejects_path(const char *input, const struct tmap_pool_params *params,
                                           struct tmap_error *err)
{
    const char *path = params->rejects_path;
    struct stat in, out;
    if (params->on_error != TMAP_ON_ERROR_SKIP || !path || stat(path, &out) != 0 || !S_ISREG(out.st_mode))
        return TMAP_OK;
    if (stat(input, &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
        return tmap_fail(err, TMAP_ERR_USAGE, "%s: the rejects file is the input itself; give another (--rejects)",
                         path);
    if (!holds_rejects(path))
        return tmap_fail(err, TMAP_ERR_USAGE, "%s: exists and does not hold rejected records (its first line is "
                         "not one): not overwriting it; give another path (--rejects) or remove it", path);
    return TMAP_OK;
}

/* A rejects file left by an earlier run goes before this one reads, so
 * that the file afterwards holds this run's rejects or is not there at
 * all; a second input of the same command adds to the first's instead. */
static enum tmap_status clear_stale_rejects(const struct tmap_pool_params *params, struct tmap_error *err)
{
    const char *path = params->rejects_path;
    struct stat st;
    if (params->on_error != TMAP_ON_ERROR_SKIP || !path || params->rejects_append || stat(path, &st) != 0 ||
        !S_ISREG(st.st_mode))
        return TMAP_OK;
    if (unlink(path) != 0 && errno != ENOENT)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot remove the rejects of an earlier run: %s", path,
                         strerror(errno));
    return TMAP_OK;
}

static char *copy(const char *s, bool *ok)
{
    char *c = s ? strdup(s) : NULL;
    if (s && !c)
        *ok = false;
    return c;
}

static struct tmap_pool *pool_create(const char *path, const struct tmap_pool_params *params)
{
    struct tmap_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    bool ok = true;
    pool->path = copy(path, &ok);
    pool->id_field = copy(params->id_field, &ok);
    pool->fields.prompt = copy(params->fields.prompt, &ok);
    pool->fields.response = copy(params->fields.response, &ok);
    pool->fields.answer = copy(params->fields.answer, &ok);
    if (!ok) {
        tmap_pool_free(pool);
        return NULL;
    }
    return pool;
}

static enum tmap_status map_file(struct tmap_pool *pool, struct tmap_error *err)
{
    int fd = open(pool->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", pool->path, strerror(errno));
    struct stat st;
    enum tmap_status status = TMAP_OK;
    if (fstat(fd, &st) != 0)
        status = tmap_fail(err, TMAP_ERR_IO, "%s: cannot stat: %s", pool->path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        status = tmap_fail(err, TMAP_ERR_IO, "%s: cannot read: %s", pool->path, strerror(EISDIR));
    else if (!S_ISREG(st.st_mode))
        status = tmap_fail(err, TMAP_ERR_IO, "%s: cannot read: not a regular file", pool->path);
    else if (st.st_size > 0) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED && errno == ENOMEM) /* the address space is limited (ulimit -v) */
            status = tmap_fail(err, TMAP_ERR_NOMEM, "%s: out of memory: %jd bytes do not fit in what this "
                               "process may use (ulimit -v?)", pool->path, (intmax_t)st.st_size);
        else if (map == MAP_FAILED)
            status = tmap_fail(err, TMAP_ERR_IO, "%s: cannot map: %s", pool->path, strerror(errno));
        else {
            pool->map = map;
            pool->map_bytes = (size_t)st.st_size;
        }
    }
    close(fd); /* the mapping stays valid without the descriptor */
    return status;
}

/* A cursor at the first byte after a UTF-8 byte-order mark, if any. */
static struct cursor skip_bom(struct loader *ld)
{
    struct cursor c = {.offset = 0, .line = 1, .line_start = 0};
    const struct tmap_pool *pool = ld->pool;
    if (pool->map_bytes >= 3 && memcmp(pool->map, "\xEF\xBB\xBF", 3) == 0) {
        c.offset = c.line_start = 3;
        notify(ld, 1, "UTF-8 byte-order mark skipped");
    }
    return c;
}

/* The final verdict: every bad record (FAIL mode), or no records at all. */
static enum tmap_status summarise(const struct loader *ld)
{
    const struct tmap_pool *pool = ld->pool;
    if (ld->n_bad > 0 && ld->params->on_error == TMAP_ON_ERROR_FAIL) {
        tmap_fail(ld->err, TMAP_ERR_DATA, "%s", ld->listed[0]);
        for (size_t i = 1; i < ld->n_bad && i < MAX_LISTED_BAD; i++)
            tmap_error_append(ld->err, "%s", ld->listed[i]);
        tmap_error_append(ld->err, "%zu bad records in %s; --on-error skip sets them aside",
                          ld->n_bad, pool->path);
        return TMAP_ERR_DATA;
    }
    if (pool->n_entries == 0 && pool->n_rejected > 0)
        return tmap_fail(ld->err, TMAP_ERR_DATA, "%s: no valid records (%zu rejected)", pool->path,
                         pool->n_rejected);
    if (pool->n_entries == 0)
        return tmap_fail(ld->err, TMAP_ERR_DATA, "%s: no records", pool->path);
    return TMAP_OK;
}

/*
 * A file that is not text at all: a model passed where data was meant (-m
 * and -d swapped), or a data set still compressed or in a columnar format.
 * Read as JSONL it would yield one "bad record" per stray newline byte,
 * which names every line and says nothing useful; one message naming what
 * the file is says what to do.
 */
static enum tmap_status check_is_text(const struct tmap_pool *pool, struct tmap_error *err)
{
    static const struct {
        const char *magic;
        size_t      bytes;
        const char *what;
    } kinds[] = {
        {"GGUF", 4, "a GGUF model, not data: did -m and -d change places?"},
        {"\x1f\x8b", 2, "gzip-compressed: decompress it first (gunzip -k FILE)"},
        {"\x28\xb5\x2f\xfd", 4, "zstd-compressed: decompress it first (zstd -d FILE)"},
        {"BZh", 3, "bzip2-compressed: decompress it first (bunzip2 -k FILE)"},
        {"\xfd" "7zXZ", 5, "xz-compressed: decompress it first (xz -dk FILE)"},
        {"PAR1", 4, "a Parquet file: tmap reads JSONL or a JSON array; convert it first"},
        {"PK\x03\x04", 4, "a zip archive: unpack it first"},
        {"SQLite format 3", 15, "an SQLite database (a score store?), not data"},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (pool->map_bytes >= kinds[i].bytes && memcmp(pool->map, kinds[i].magic, kinds[i].bytes) == 0)
            return tmap_fail(err, TMAP_ERR_DATA, "%s: %s", pool->path, kinds[i].what);
    /* Text never holds a NUL byte; look at the first 4 KiB, enough for any
     * binary header and cheap on a file of any size. */
    size_t head = pool->map_bytes < 4096 ? pool->map_bytes : 4096;
    if (head > 0 && memchr(pool->map, '\0', head))
        return tmap_fail(err, TMAP_ERR_DATA, "%s: a binary file (a NUL byte in its first %zu bytes), not "
                         "JSONL or a JSON array of records", pool->path, head);
    return TMAP_OK;
}

/* JSON array when the first byte after the BOM and any whitespace is '[';
 * JSONL otherwise. */
static enum tmap_status read_records(struct tmap_pool *pool, const struct tmap_pool_params *params,
                                     struct tmap_error *err)
{
    struct loader ld = {.pool = pool, .params = params, .err = err};
    struct cursor start = skip_bom(&ld), first = start;
    skip_space(pool, &first);
    enum tmap_status status = at_char(pool, &first, '[') ? read_array(&ld, first)
                                                         : read_jsonl(&ld, start.offset);
    status = close_rejects(&ld, status);
    return status == TMAP_OK ? summarise(&ld) : status;
}

enum tmap_status tmap_pool_load(const char *path, const struct tmap_pool_params *params,
                                struct tmap_pool **out, struct tmap_error *err)
{
    struct tmap_pool_params defaults = tmap_pool_default_params();
    *out = NULL;
    if (!params)
        params = &defaults;
    if (!path)
        return tmap_fail(err, TMAP_ERR_USAGE, "no data file given");
    enum tmap_status status = check_params(params, err);
    if (status != TMAP_OK)
        return status;
    struct tmap_pool *pool = pool_create(path, params);
    if (!pool)
        return out_of_memory(err);
    status = check_rejects_path(path, params, err);
    if (status == TMAP_OK)
        status = map_file(pool, err);
    if (status == TMAP_OK)
        status = check_is_text(pool, err);
    if (status == TMAP_OK)
        status = clear_stale_rejects(params, err);
    if (status == TMAP_OK)
        status = read_records(pool, params, err);
    if (status != TMAP_OK) {
        tmap_pool_free(pool);
        return status;
    }
    *out = pool;
    return TMAP_OK;
}

void tmap_pool_free(struct tmap_pool *pool)
{
    if (!pool)
        return;
    if (pool->map)
        munmap((void *)pool->map, pool->map_bytes);
    free(pool->entries);
    free(pool->ids);
    free(pool->slots);
    free(pool->path);
    free(pool->id_field);
    free((char *)pool->fields.prompt);
    free((char *)pool->fields.response);
    free((char *)pool->fields.answer);
    free(pool);
}

/* ---- reading the index ----------------------------------------------------- */

size_t tmap_pool_size(const struct tmap_pool *pool)
{
    return pool ? pool->n_entries : 0;
}

size_t tmap_pool_n_rejected(const struct tmap_pool *pool)
{
    return pool ? pool->n_rejected : 0;
}

size_t tmap_pool_n_blank_lines(const struct tmap_pool *pool)
{
    return pool ? pool->n_blank_lines : 0;
}

const char *tmap_pool_path(const struct tmap_pool *pool)
{
    return pool ? pool->path : NULL;
}

enum tmap_status tmap_pool_record(const struct tmap_pool *pool, size_t i, struct tmap_record *out)
{
    if (!pool || i >= pool->n_entries)
        return TMAP_ERR_USAGE;
    const struct pool_entry *e = &pool->entries[i];
    *out = (struct tmap_record){.id = entry_id(pool, i), .line = e->line, .format = e->format,
                                .raw = pool->map + e->offset, .raw_bytes = e->bytes,
                                .prompt_hash = e->prompt_hash};
    memcpy(out->hash, e->hash, sizeof out->hash);
    return TMAP_OK;
}

/* n, then each record's content hash, in order: a record's place counts,
 * its id and line do not. (Fine-tuned GGUFs record this value; its bytes
 * must not change.) */
void tmap_pool_fingerprint(const struct tmap_pool *pool, const size_t *rows, size_t n, char out[33])
{
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_128bits_reset(&state);
    XXH3_128bits_update(&state, &n, sizeof n);
    for (size_t i = 0; i < n; i++) {
        struct tmap_record r;
        if (tmap_pool_record(pool, rows ? rows[i] : i, &r) == TMAP_OK)
            XXH3_128bits_update(&state, r.hash, sizeof r.hash);
    }
    XXH128_hash_t h = XXH3_128bits_digest(&state);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

/* Parses the record's bytes again; they were checked at load, so failing
 * here means the file changed underneath the mapping. */
enum tmap_status tmap_pool_sample(const struct tmap_pool *pool, size_t i, struct tmap_sample *out,
                                  struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    out->answer_index = -1;
    if (!pool || i >= pool->n_entries)
        return tmap_fail(err, TMAP_ERR_USAGE, "record %zu is out of range (the pool has %zu)", i,
                         tmap_pool_size(pool));
    const struct pool_entry *e = &pool->entries[i];
    json_error_t jerr;
    json_t *value = json_loadb(pool->map + e->offset, e->bytes, JSON_DECODE_ANY, &jerr);
    if (!value)
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: invalid JSON: %s (the file changed?)",
                         pool->path, e->line, jerr.text);
    struct tmap_error reason;
    enum tmap_status status =
        tmap_format_extract(value, &pool->fields, entry_id(pool, i), e->line, out, &reason);
    json_decref(value);
    if (status != TMAP_OK)
        return tmap_fail(err, status, "%s:%zu: %s", pool->path, e->line, reason.message);
    return TMAP_OK;
}
