/*
 * error.c - status names and the one place messages are formatted.
 */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *tmap_status_name(enum tmap_status status)
{
    switch (status) {
    case TMAP_OK:        return "ok";
    case TMAP_ERR_USAGE: return "usage error";
    case TMAP_ERR_DATA:  return "data error";
    case TMAP_ERR_IO:    return "I/O error";
    case TMAP_ERR_MODEL: return "model error";
    case TMAP_ERR_NOMEM: return "out of memory";
    }
    return "unknown status";
}

enum tmap_status tmap_fail(struct tmap_error *err, enum tmap_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void tmap_error_append(struct tmap_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    size_t used = strlen(err->message);
    if (used + 2 >= sizeof err->message)
        return; /* full: the first lines are the useful ones */
    if (used > 0)
        err->message[used++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + used, sizeof err->message - used, fmt, ap);
    va_end(ap);
}

void tmap_error_clear(struct tmap_error *err)
{
    if (err) {
        err->status = TMAP_OK;
        err->message[0] = '\0';
    }
}
