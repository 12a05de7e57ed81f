/*
 * format.h - turning one parsed record into a struct tmap_sample.
 *
 * The pool (pool.c) finds record boundaries and parses each record with
 * jansson; this module decides which of the known formats a record is in
 * (docs/design.md section 9), checks its fields and builds the sample's prompt,
 * response, short answer and chat turns. It also defines the sample hash
 * that identifies a record's content across files.
 *
 * Messages written to `reason` carry no file or line: the caller prefixes
 * them with "PATH:LINE: ".
 */
#ifndef TMAP_DATA_FORMAT_H
#define TMAP_DATA_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "tmap.h"

/* Text of a record's id: the value of the id_field key, a string or an
 * integer. *id is NULL when id_field is NULL or the key is absent; otherwise
 * it points into record or into buf (for integers). */
enum tmap_status tmap_format_id(const json_t *record, const char *id_field, char *buf,
                                size_t buf_bytes, const char **id, struct tmap_error *reason);

/* Detects record's format (fields->prompt set means custom) and fills out,
 * whose strings all live in one allocation freed by tmap_sample_free. id is
 * copied. Returns TMAP_ERR_DATA with a reason for a bad record, or
 * TMAP_ERR_NOMEM; out is left cleared on failure. */
enum tmap_status tmap_format_extract(const json_t *record, const struct tmap_field_map *fields,
                                     const char *id, size_t line, struct tmap_sample *out,
                                     struct tmap_error *reason);

/* "object", "string", "number", ... for messages ("got number"). */
const char *tmap_json_type_name(const json_t *value);

/* XXH3-128 of the normalised prompt, a 0 byte and the normalised response,
 * big-endian. Normalising turns CRLF into LF and strips leading and trailing
 * ASCII whitespace, so a record re-saved by another tool keeps its hash. */
enum tmap_status tmap_sample_hash(const struct tmap_sample *sample, uint8_t out[16]);

/* 64 bits of xxh3 over the prompt alone, read as a question: ASCII case
 * and runs of whitespace do not count. The same question with any answer
 * (tmap_pool_overlap, and so decontamination and the proxy's draws). */
uint64_t tmap_sample_prompt_hash(const struct tmap_sample *sample);

/* That hash as 32 lowercase hex digits and a NUL: the "hash" column of
 * scores files, which lets tmap select refuse scores of edited records. */
void tmap_hash_hex(const uint8_t hash[16], char out[33]);

/* Writes a record as one line of JSON, newline included: its input bytes
 * exactly when they hold no line break (every JSONL record), otherwise the
 * same bytes with the whitespace between tokens left out (an element of a
 * pretty-printed JSON array), so every output line parses on its own and
 * keeps the record's own keys, order, numbers and escapes. Returns false on
 * a write error. */
bool tmap_record_write_line(FILE *f, const char *raw, size_t n);

#endif
