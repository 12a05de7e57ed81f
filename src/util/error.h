/*
 * error.h - filling a caller's struct tmap_error.
 *
 * Every fallible library call ends in `return tmap_fail(err, STATUS, ...)`, so
 * the status returned and the status stored can never disagree.
 */
#ifndef TMAP_UTIL_ERROR_H
#define TMAP_UTIL_ERROR_H

#include "tmap.h"

/* Stores status and the printf-style message in err (which may be NULL) and
 * returns status. */
enum tmap_status tmap_fail(struct tmap_error *err, enum tmap_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends a line to err's message (used to list several bad records). */
void tmap_error_append(struct tmap_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void tmap_error_clear(struct tmap_error *err);

#endif
