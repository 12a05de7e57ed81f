/*
 * utf8.c - UTF-8 validation and code point counting.
 *
 * The validator follows the well-formed byte sequences of Unicode 15,
 * table 3-7: the second byte's range depends on the lead byte, which is what
 * excludes overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and
 * code points above U+10FFFF (F4 90..BF).
 */
#include "util/utf8.h"

#include <stdint.h>

/* Length of the sequence a lead byte starts, and the allowed range of the
 * byte after it; 0 for bytes that cannot start a sequence. */
static int sequence_length(uint8_t lead, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF)
        return 2;
    if (lead >= 0xE0 && lead <= 0xEF) {
        if (lead == 0xE0)
            *lo = 0xA0;
        if (lead == 0xED)
            *hi = 0x9F;
        return 3;
    }
    if (lead >= 0xF0 && lead <= 0xF4) {
        if (lead == 0xF0)
            *lo = 0x90;
        if (lead == 0xF4)
            *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* Bytes of the well-formed sequence at p (at most `left` bytes), or 0. */
static size_t sequence_at(const uint8_t *p, size_t left)
{
    uint8_t lo, hi;
    size_t len = (size_t)sequence_length(p[0], &lo, &hi);
    if (len == 0 || len > left)
        return 0;
    if (len > 1 && (p[1] < lo || p[1] > hi))
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool tmap_utf8_valid(const char *s, size_t n, size_t *bad_offset)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { /* the common case, without the table */
            i++;
            continue;
        }
        size_t len = sequence_at(p + i, n - i);
        if (len == 0) {
            if (bad_offset)
                *bad_offset = i;
            return false;
        }
        i += len;
    }
    return true;
}

size_t tmap_utf8_count(const char *s, size_t n)
{
    /* In valid UTF-8 every code point has exactly one byte that is not a
     * continuation byte (10xxxxxx). */
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((uint8_t)s[i] & 0xC0) != 0x80;
    return count;
}
