/*
 * file.h - small file helpers shared by the modules that rewrite GGUF files
 * (test-model creation, fine-tuning checkpoints).
 */
#ifndef TMAP_UTIL_FILE_H
#define TMAP_UTIL_FILE_H

#include <stdbool.h>
#include <stdio.h>

/* Copies bytes [offset, end) of `from` to the end of `to`. */
bool tmap_file_append_tail(FILE *from, long offset, FILE *to);

#endif
