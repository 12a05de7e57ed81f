/*
 * file.h - rewriting a GGUF file's metadata, shared by the modules that do
 * it (test-model creation, fine-tuning checkpoints).
 */
#ifndef TMAP_UTIL_FILE_H
#define TMAP_UTIL_FILE_H

#include <stdbool.h>

struct gguf_context;

/* Writes `out`: the metadata of g (read from `source` with no_alloc, then
 * edited) followed by source's tensor data block, unchanged. Tensor
 * offsets are relative to that block, so they stay valid. On failure `out`
 * may be partly written; the caller removes it. */
bool tmap_gguf_write_edited(struct gguf_context *g, const char *source, const char *out);

#endif
