/*
 * csv.h - writing CSV fields the way RFC 4180 readers expect: quoted when
 * they hold a comma, a quote or a line break, quotes doubled. Sample ids
 * are the user's own text and may hold any of those.
 */
#ifndef TMAP_UTIL_CSV_H
#define TMAP_UTIL_CSV_H

#include <stdio.h>

void tmap_csv_write_field(FILE *f, const char *text);

#endif
