/*
 * checkpoint.c - writing trained models, and the sidecar a resume reads.
 *
 * llama_model_save_to_file writes what the loaded model holds, with two
 * differences from the file it was loaded from that matter here:
 *   - llama_opt_init sets the model's trained context to the training
 *     window (llama.cpp uses it as the window length), so a model tuned on
 *     256-token windows would claim a 256-token context;
 *   - the chat template is not written.
 * Both are put back by rewriting the metadata and appending the unchanged
 * tensor data block (tensor offsets are relative to that block).
 *
 * Every file is written beside its final name and renamed, so a killed run
 * leaves either the previous checkpoint or the new one, never half of one;
 * the sidecar is renamed last, so it only ever names a complete checkpoint.
 *
 * The fine-tune proxy trains a loaded model many times from the same start
 * and writes nothing: ft_restore_tensors reads the trained tensors back
 * from the model's file instead, which costs no second copy in memory.
 */
#include "train/finetune.h"
#include "util/atomic.h"
#include "util/error.h"
#include "util/file.h"

#include <errno.h>
#include <ggml-backend.h>
#include <gguf.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SIDECAR_VERSION = 1 };

/* ------------------------------------------------------------------------ */
/* Paths                                                                    */
/* ------------------------------------------------------------------------ */

/* OUT without a trailing ".gguf". */
static int stem_len(const char *out_path)
{
    size_t n = strlen(out_path);
    if (n > 5 && strcmp(out_path + n - 5, ".gguf") == 0)
        n -= 5;
    return (int)n;
}

void ft_checkpoint_path(const char *out_path, int32_t epoch, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s.ckpt-epoch%d.gguf", stem_len(out_path), out_path, epoch);
}

void ft_sidecar_path(const char *out_path, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s.ckpt.json", stem_len(out_path), out_path);
}

enum tmap_status ft_probe_writable(const char *path, struct tmap_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fclose(f);
    unlink(tmp);
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

/* gguf_write_to_file reports a short write only in the log: check that the
 * file holds every tensor's bytes. */
static bool file_complete(const struct gguf_context *g, const char *path)
{
    size_t end = 0;
    for (int64_t t = 0; t < gguf_get_n_tensors(g); t++) {
        size_t e = gguf_get_tensor_offset(g, t) + gguf_get_tensor_size(g, t);
        end = e > end ? e : end;
    }
    struct stat sb;
    return stat(path, &sb) == 0 && (size_t)sb.st_size >= gguf_get_data_offset(g) + end;
}

static void set_meta(struct gguf_context *g, const struct ft_model_meta *meta)
{
    char key[128];
    int64_t arch = gguf_find_key(g, "general.architecture");
    if (arch >= 0 && meta->n_ctx_train > 0) {
        snprintf(key, sizeof key, "%s.context_length", gguf_get_val_str(g, arch));
        gguf_set_val_u32(g, key, meta->n_ctx_train);
    }
    if (meta->chat_template)
        gguf_set_val_str(g, "tokenizer.chat_template", meta->chat_template);
    gguf_set_val_u32(g, "tmap.finetune.epochs", (uint32_t)meta->epochs);
    if (meta->data_desc)
        gguf_set_val_str(g, "tmap.train.data", meta->data_desc);
    if (meta->eval_desc && isfinite(meta->eval_response_loss)) {
        gguf_set_val_str(g, "tmap.train.eval.data", meta->eval_desc);
        gguf_set_val_f32(g, "tmap.train.eval.response_loss", (float)meta->eval_response_loss);
        if (isfinite(meta->eval_response_bpb))
            gguf_set_val_f32(g, "tmap.train.eval.response_bpb", (float)meta->eval_response_bpb);
    }
}

/* Rewrites `saved` (llama.cpp's output) into `next` with meta applied. */
static bool rewrite(const char *saved, const char *next, const struct ft_model_meta *meta)
{
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(saved, gp);
    if (!g)
        return false;
    bool ok = file_complete(g, saved);
    set_meta(g, meta);
    ok = ok && tmap_gguf_write_edited(g, saved, next);
    gguf_free(g);
    return ok;
}

enum tmap_status ft_save_model(struct llama_model *model, const char *path,
                               const struct ft_model_meta *meta, struct tmap_error *err)
{
    char saved[4200], next[4200];
    snprintf(saved, sizeof saved, "%s.tmp.%ld", path, (long)getpid());
    snprintf(next, sizeof next, "%s.meta.%ld", path, (long)getpid());
    /* llama.cpp's writer cannot report failure: find out first. */
    enum tmap_status st = ft_probe_writable(path, err);
    if (st)
        return st;
    llama_model_save_to_file(model, saved);
    bool ok = rewrite(saved, next, meta);
    int saved_errno = errno;
    unlink(saved);
    if (!ok) {
        unlink(next);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write the model (disk full?): %s", path,
                         strerror(saved_errno));
    }
    return tmap_atomic_publish(next, path, err);
}

enum tmap_status ft_restore_tensors(const char *path, const struct ggml_tensor *const *tensors, size_t n,
                                    struct tmap_error *err)
{
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(path, gp);
    FILE *f = g ? fopen(path, "rb") : NULL;
    enum { CHUNK = 1 << 20 };
    char *buf = f ? malloc(CHUNK) : NULL;
    enum tmap_status st = !g   ? tmap_fail(err, TMAP_ERR_MODEL, "%s: not a readable GGUF file", path)
                          : !f ? tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", path, strerror(errno))
                          : !buf ? tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path)
                                 : TMAP_OK;
    for (size_t i = 0; i < n && !st; i++) {
        struct ggml_tensor *t = (struct ggml_tensor *)tensors[i]; /* ggml's setter takes it non-const */
        int64_t id = gguf_find_tensor(g, t->name);
        size_t size = ggml_nbytes(t);
        /* A file changed since it was loaded no longer holds the start. */
        if (id < 0 || gguf_get_tensor_type(g, id) != t->type || gguf_get_tensor_size(g, id) != size) {
            st = tmap_fail(err, TMAP_ERR_MODEL, "%s: tensor %s is not the one loaded (was the file replaced?)",
                           path, t->name);
            break;
        }
        if (fseeko(f, (off_t)(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id)), SEEK_SET) != 0) {
            st = tmap_fail(err, TMAP_ERR_IO, "%s: cannot read tensor %s: %s", path, t->name, strerror(errno));
            break;
        }
        for (size_t done = 0; done < size && !st; done += CHUNK) {
            size_t part = size - done < CHUNK ? size - done : CHUNK;
            if (fread(buf, 1, part, f) != part)
                st = tmap_fail(err, TMAP_ERR_IO, "%s: tensor %s is cut short", path, t->name);
            else
                ggml_backend_tensor_set(t, buf, done, part);
        }
    }
    free(buf);
    if (f)
        fclose(f);
    if (g)
        gguf_free(g);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The sidecar                                                              */
/* ------------------------------------------------------------------------ */

/* JSON has no NaN: a loss that was not measured is null. */
static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static double real_or_nan(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A float as the decimal it was typed as (0.2, not 0.200000003). */
static double float_value(float v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)v);
    return strtod(buf, NULL);
}

static json_t *epoch_to_json(const struct tmap_finetune_epoch *e)
{
    return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:f}",
                     "epoch", (int)e->epoch,
                     "train_loss", real_or_null(e->train_loss),
                     "val_loss", real_or_null(e->val_loss),
                     "val_response_loss", real_or_null(e->val_response_loss),
                     "eval_response_loss", real_or_null(e->eval_response_loss),
                     "val_response_bpb", real_or_null(e->val_response_bpb),
                     "eval_response_bpb", real_or_null(e->eval_response_bpb),
                     "lr", real_or_null(e->lr),
                     "n_steps", (json_int_t)e->n_steps,
                     "n_tokens", (json_int_t)e->n_tokens,
                     "train_seconds", e->train_seconds);
}

static void epoch_from_json(const json_t *o, struct tmap_finetune_epoch *e)
{
    memset(e, 0, sizeof *e);
    e->epoch              = (int32_t)json_integer_value(json_object_get(o, "epoch"));
    e->train_loss         = real_or_nan(json_object_get(o, "train_loss"));
    e->val_loss           = real_or_nan(json_object_get(o, "val_loss"));
    e->val_response_loss  = real_or_nan(json_object_get(o, "val_response_loss"));
    e->eval_response_loss = real_or_nan(json_object_get(o, "eval_response_loss"));
    e->val_response_bpb   = real_or_nan(json_object_get(o, "val_response_bpb"));
    e->eval_response_bpb  = real_or_nan(json_object_get(o, "eval_response_bpb"));
    e->lr                 = real_or_nan(json_object_get(o, "lr"));
    e->n_steps            = (int64_t)json_integer_value(json_object_get(o, "n_steps"));
    e->n_tokens           = (int64_t)json_integer_value(json_object_get(o, "n_tokens"));
    e->train_seconds      = real_or_nan(json_object_get(o, "train_seconds"));
}

static json_t *state_to_json(const struct ft_state *s)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed); /* 64 bits: more than a JSON number keeps */
    json_t *history = json_array();
    for (size_t i = 0; history && i < s->n_history; i++)
        json_array_append_new(history, epoch_to_json(&s->history[i]));
    const char *slash = strrchr(s->checkpoint, '/');
    return json_pack("{s:s, s:i, s:i, s:I, s:s, s:s, s:s, s:I, s:s, s:f, s:i, s:f, s:i, s:s, s:s, s:o}",
                     "format", "tmap finetune checkpoint",
                     "version", SIDECAR_VERSION,
                     "epoch", (int)s->epoch,
                     "step", (json_int_t)s->step,
                     "checkpoint", slash ? slash + 1 : s->checkpoint,
                     "base_model", s->base_model,
                     "data_fingerprint", s->data_fingerprint,
                     "n_records", (json_int_t)s->n_records,
                     "seed", seed,
                     "val_split", float_value(s->val_split),
                     "n_ctx", (int)s->n_ctx,
                     "lr", float_value(s->lr),
                     "n_epochs", (int)s->n_epochs,
                     "train_layers", s->train_layers,
                     "template", tmap_template_name(s->tmpl),
                     "history", history);
}

enum tmap_status ft_state_write(const char *path, const struct ft_state *s, struct tmap_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    json_t *root = state_to_json(s);
    if (!root)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory writing %s", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (rc != 0) {
        int e = errno;
        unlink(tmp);
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return tmap_atomic_publish(tmp, path, err);
}

static enum tmap_status read_history(const json_t *arr, struct ft_state *s, const char *path,
                                     struct tmap_error *err)
{
    size_t n = json_array_size(arr);
    s->history = calloc(n + 1, sizeof *s->history);
    if (!s->history)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
    for (size_t i = 0; i < n; i++)
        epoch_from_json(json_array_get(arr, i), &s->history[i]);
    s->n_history = n;
    return TMAP_OK;
}

static enum tmap_status state_from_json(const json_t *root, struct ft_state *s, const char *path,
                                        struct tmap_error *err)
{
    const char *ckpt, *base, *data, *seed, *layers;
    json_t *history;
    int version, epoch, n_ctx, n_epochs;
    json_int_t step, n_records;
    double val_split, lr;
    json_error_t je;
    if (json_unpack_ex((json_t *)root, &je, 0,
                       "{s:i, s:i, s:I, s:s, s:s, s:s, s:I, s:s, s:F, s:i, s:F, s:i, s:s, s:o}",
                       "version", &version, "epoch", &epoch, "step", &step, "checkpoint", &ckpt,
                       "base_model", &base, "data_fingerprint", &data, "n_records", &n_records,
                       "seed", &seed, "val_split", &val_split, "n_ctx", &n_ctx, "lr", &lr,
                       "n_epochs", &n_epochs, "train_layers", &layers, "history", &history) != 0)
        return tmap_fail(err, TMAP_ERR_DATA, "%s: not a tmap checkpoint sidecar: %s", path, je.text);
    if (version != SIDECAR_VERSION)
        return tmap_fail(err, TMAP_ERR_DATA, "%s: sidecar version %d, this tmap reads %d", path, version,
                         SIDECAR_VERSION);
    s->epoch = epoch;
    s->step = step;
    snprintf(s->checkpoint, sizeof s->checkpoint, "%s", ckpt);
    snprintf(s->base_model, sizeof s->base_model, "%s", base);
    snprintf(s->data_fingerprint, sizeof s->data_fingerprint, "%s", data);
    s->n_records = (size_t)n_records;
    s->seed = strtoull(seed, NULL, 10);
    s->val_split = (float)val_split;
    s->n_ctx = n_ctx;
    s->lr = (float)lr;
    s->n_epochs = n_epochs;
    snprintf(s->train_layers, sizeof s->train_layers, "%s", layers);
    /* Sidecars written before chat layouts trained are plain. */
    const char *tmpl = json_string_value(json_object_get(root, "template"));
    s->tmpl = TMAP_TEMPLATE_PLAIN;
    if (tmpl && strcmp(tmpl, tmap_template_name(TMAP_TEMPLATE_CHAT)) == 0)
        s->tmpl = TMAP_TEMPLATE_CHAT;
    else if (tmpl && strcmp(tmpl, tmap_template_name(TMAP_TEMPLATE_PLAIN)) != 0)
        return tmap_fail(err, TMAP_ERR_DATA, "%s: template '%s' is neither plain nor chat", path, tmpl);
    return read_history(history, s, path, err);
}

enum tmap_status ft_state_read(const char *path, struct ft_state *s, struct tmap_error *err)
{
    memset(s, 0, sizeof *s);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (access(path, F_OK) != 0)
            return tmap_fail(err, TMAP_ERR_IO, "%s: no checkpoint to resume from: %s", path, strerror(errno));
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%d: not valid JSON: %s", path, je.line, je.text);
    }
    enum tmap_status st = state_from_json(root, s, path, err);
    json_decref(root);
    if (st)
        ft_state_free(s);
    return st;
}

void ft_state_free(struct ft_state *s)
{
    free(s->history);
    s->history = NULL;
    s->n_history = 0;
}
