/*
 * utf8.h - checking and measuring UTF-8 text.
 *
 * Records are validated before jansson sees them, so a bad byte is reported
 * as "invalid UTF-8 at byte N" rather than as a JSON syntax error, and the
 * pool's length statistics count characters (code points), not bytes.
 */
#ifndef TMAP_UTIL_UTF8_H
#define TMAP_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). Otherwise *bad_offset (may be NULL)
 * receives the 0-based offset of the first byte of the bad sequence. */
bool tmap_utf8_valid(const char *s, size_t n, size_t *bad_offset);

/* Code points in s[0..n), which must be valid UTF-8. */
size_t tmap_utf8_count(const char *s, size_t n);

#endif
