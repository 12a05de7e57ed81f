/*
 * file.c - see file.h.
 */
#include "util/file.h"

bool tmap_file_append_tail(FILE *from, long offset, FILE *to)
{
    char buf[1 << 16];
    size_t n;
    if (fseek(from, offset, SEEK_SET) != 0)
        return false;
    while ((n = fread(buf, 1, sizeof buf, from)) > 0)
        if (fwrite(buf, 1, n, to) != n)
            return false;
    return !ferror(from);
}
