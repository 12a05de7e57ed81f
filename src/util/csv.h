/*
 * csv.h - CSV fields the RFC 4180 way: written quoted when they hold a
 * comma, a quote or a line break, quotes doubled (sample ids are the
 * user's own text and may hold any of those), and split back.
 */
#ifndef TMAP_UTIL_CSV_H
#define TMAP_UTIL_CSV_H

#include <stdio.h>

void tmap_csv_write_field(FILE *f, const char *text);

/* Splits one CSV line (no line break) in place into at most max fields,
 * quotes undone. Returns the field count, or -1 on a bad quote; a line of
 * more than max fields gives max, the rest unread. */
int tmap_csv_split(char *line, char **fields, int max);

#endif
