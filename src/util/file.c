/*
 * file.c - see file.h.
 */
#include "util/file.h"

#include <gguf.h>

#include <stdio.h>

/* Copies bytes [offset, end) of `from` to the end of `to`. */
static bool append_tail(FILE *from, long offset, FILE *to)
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

bool tmap_gguf_write_edited(struct gguf_context *g, const char *source, const char *out)
{
    long data_offset = (long)gguf_get_data_offset(g);
    if (!gguf_write_to_file(g, out, true)) /* metadata only */
        return false;
    FILE *from = fopen(source, "rb");
    FILE *to = from ? fopen(out, "ab") : NULL;
    bool ok = to && append_tail(from, data_offset, to);
    if (to && fclose(to) != 0)
        ok = false;
    if (from)
        fclose(from);
    return ok;
}
