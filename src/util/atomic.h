/*
 * atomic.h - writing a file so that readers only ever see the old one or
 * the whole new one: write to a temporary name beside the target, flush and
 * fsync it, rename it over the target, fsync the folder so the rename itself
 * survives a power cut. Every output tmap writes goes through here, so a
 * kill -9 or a full disk never leaves a partial file (docs/reliability.md).
 *
 * A target that exists and is not a regular file (/dev/null, /dev/stdout,
 * a FIFO) is written in place: renaming over it would replace the device
 * itself, and run as root, `-o /dev/null` used to leave every program on
 * the machine writing into a plain file of that name.
 */
#ifndef TMAP_UTIL_ATOMIC_H
#define TMAP_UTIL_ATOMIC_H

#include "tmap.h"

#include <stdbool.h>
#include <stdio.h>

struct tmap_atomic_file {
    FILE       *f;         /* write here between open and commit */
    const char *path;      /* the target (not copied: keep it alive) */
    char        tmp[4200]; /* PATH.tmp.PID; empty when written in place */
};

/* Opens PATH.tmp.PID for writing ("w" or "wb"), or PATH itself when it is
 * not a regular file. */
enum tmap_status tmap_atomic_open(struct tmap_atomic_file *a, const char *path, const char *mode,
                                  struct tmap_error *err);

/* Flushes, fsyncs, closes and renames into place, then fsyncs the folder.
 * On any failure the temporary file is removed, the target is left as it
 * was, and the message names the target and the reason (a full disk says
 * "No space left on device"). */
enum tmap_status tmap_atomic_commit(struct tmap_atomic_file *a, struct tmap_error *err);

/* Closes and removes the temporary file; the target is left as it was. */
void tmap_atomic_abort(struct tmap_atomic_file *a);

/* For files another library writes by name (llama.cpp's GGUF writer,
 * jansson's json_dump_file): fsyncs tmp, renames it to path and fsyncs the
 * folder (a path that is not a regular file gets tmp's bytes copied in and
 * tmp removed); on failure removes tmp and names path and the reason. */
enum tmap_status tmap_atomic_publish(const char *tmp, const char *path, struct tmap_error *err);

/* fsyncs the folder holding path, so a rename into it is durable. */
bool tmap_fsync_parent(const char *path);

#endif
