/*
 * model.c - loading a GGUF model through llama.cpp, describing it,
 * tokenizing, and laying out a sample as the text the model reads.
 *
 * Every model computation in tmap goes through llama.cpp; this module owns
 * the llama_model / llama_context pair and the log plumbing. Scoring lives in
 * logprob.c, test-model creation in create.c.
 */
#include "model/model.h"
#include "util/error.h"

#include <ggml-backend.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* llama.cpp's limit on the sequences of a context (LLAMA_MAX_SEQ, which its
 * public header does not carry). */
#define TMAP_MAX_SEQ 256

/* ------------------------------------------------------------------------ */
/* llama.cpp's log                                                          */
/* ------------------------------------------------------------------------ */

static bool log_quiet;
static bool log_held; /* tmap_llama_log_hold: errors kept for our message, not printed */
static char last_error[512];

/* llama.cpp reports why a load failed only through its log; keep the first
 * error line since the call began (the specific reason, such as "unknown
 * model architecture: 'x'"; later lines only say that loading failed) so
 * our message can say it, and pass the rest to stderr unless quiet (the
 * library never writes to stdout). */
static void on_llama_log(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)user_data;
    if (level == GGML_LOG_LEVEL_ERROR && last_error[0] == '\0') {
        snprintf(last_error, sizeof last_error, "%s", text);
        size_t n = strlen(last_error);
        while (n > 0 && (last_error[n - 1] == '\n' || last_error[n - 1] == ' '))
            last_error[--n] = '\0';
    }
    if (!log_held && (!log_quiet || level == GGML_LOG_LEVEL_ERROR))
        fputs(text, stderr);
}

const char *tmap_llama_last_error(void)
{
    return last_error;
}

void tmap_llama_log_hold(bool hold)
{
    log_held = hold;
    if (hold)
        last_error[0] = '\0';
}

void tmap_backend_init(bool quiet)
{
    log_quiet = quiet;
    llama_log_set(on_llama_log, NULL);
    llama_backend_init();
}

void tmap_backend_free(void)
{
    llama_backend_free();
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

struct tmap_model_params tmap_model_default_params(void)
{
    struct tmap_model_params p = {
        .path         = NULL,
        .n_gpu_layers = -1,
        .n_threads    = 0,
        .n_ctx        = 0,
        .n_batch      = 2048,
        .n_seq        = 4,
        .use_mmap     = true,
        .main_gpu     = -1,
        .repack       = true,
        .n_lanes      = 1,
    };
    return p;
}

int32_t tmap_offload_devices(void)
{
    int32_t n_gpu = 0, n_igpu = 0;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        enum ggml_backend_dev_type type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        n_gpu += type == GGML_BACKEND_DEVICE_TYPE_GPU;
        n_igpu += type == GGML_BACKEND_DEVICE_TYPE_IGPU;
    }
    return n_gpu > 0 ? n_gpu : n_igpu;
}

/* One GPU, main_gpu modulo the GPUs there are (ranks may outnumber
 * them); nothing to do on a machine without any. */
static void set_main_gpu(struct llama_model_params *mp, int32_t main_gpu)
{
    if (main_gpu < 0)
        return;
    int32_t n_gpu = tmap_offload_devices();
    if (n_gpu == 0)
        return;
    mp->split_mode = LLAMA_SPLIT_MODE_NONE;
    mp->main_gpu = main_gpu % n_gpu;
}

static int32_t default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

static enum tmap_status check_params(const struct tmap_model_params *p, struct tmap_error *err)
{
    if (!p->path || !*p->path)
        return tmap_fail(err, TMAP_ERR_USAGE, "no model given (-m FILE.gguf)");
    if (p->n_ctx < 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "context size %d is negative (-c)", p->n_ctx);
    if (p->n_batch < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "batch size %d must be at least 1 (-b)", p->n_batch);
    if (p->n_seq < 1 || p->n_seq > TMAP_MAX_SEQ)
        return tmap_fail(err, TMAP_ERR_USAGE, "parallel sequences %d must be 1..256 (-np)", p->n_seq);
    if (p->n_threads < 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "thread count %d is negative (-t)", p->n_threads);
    if (p->n_lanes < 0 || p->n_lanes > 2)
        return tmap_fail(err, TMAP_ERR_USAGE, "lanes %d must be 1 or 2", p->n_lanes);
    return TMAP_OK;
}

static double meta_double(const struct llama_model *model, const char *key)
{
    char buf[64];
    return llama_model_meta_val_str(model, key, buf, sizeof buf) > 0 ? strtod(buf, NULL) : NAN;
}

/* The tmap.train.* keys training writes (train/checkpoint.c), and
 * tmap.create.seed, which marks a created model that never trained. */
static void read_training_record(const struct llama_model *model, struct tmap_model_info *info)
{
    info->trained_on[0] = info->eval_on[0] = '\0';
    if (llama_model_meta_val_str(model, "tmap.train.data", info->trained_on, sizeof info->trained_on) < 0) {
        char seed[32];
        if (llama_model_meta_val_str(model, "tmap.create.seed", seed, sizeof seed) > 0)
            snprintf(info->trained_on, sizeof info->trained_on, "nothing: random init (tmap model create)");
        else
            info->trained_on[0] = '\0';
    }
    if (llama_model_meta_val_str(model, "tmap.train.eval.data", info->eval_on, sizeof info->eval_on) < 0)
        info->eval_on[0] = '\0';
    info->eval_response_loss = meta_double(model, "tmap.train.eval.response_loss");
    info->eval_response_bpb  = meta_double(model, "tmap.train.eval.response_bpb");
}

/* llama.cpp names a model by its architecture, size class and weight type
 * ("llama 8B Q4_K - Medium"), a size it has no class for as "?B", which
 * every created or small model is, and a type it inferred from the tensors
 * (no general.file_type) as "(guessed) all F32": "llama ?B (guessed) all
 * F32" read as if the size were guessed. Such a name gets the parameter
 * count, and the type's doubt after the type. */
static void name_unknown_size(char *description, size_t cap, uint64_t n_params)
{
    static const char guessed[] = " (guessed)";
    char *unknown = strstr(description, "?B");
    if (!unknown)
        return;
    bool type_guessed = strncmp(unknown + 2, guessed, sizeof guessed - 1) == 0;
    char size[16], rest[128];
    double n = (double)n_params;
    if (n >= 1e9)
        snprintf(size, sizeof size, "%.1fB", n / 1e9);
    else if (n >= 1e6)
        snprintf(size, sizeof size, "%.1fM", n / 1e6);
    else
        snprintf(size, sizeof size, "%.0fK", n / 1e3);
    snprintf(rest, sizeof rest, "%s", unknown + 2 + (type_guessed ? sizeof guessed - 1 : 0));
    size_t at = (size_t)(unknown - description);
    snprintf(description + at, cap - at, "%s%s%s", size, rest, type_guessed ? guessed : "");
}

static void fill_info(struct tmap_model *m, uint64_t file_bytes)
{
    struct tmap_model_info *info = &m->info;
    if (llama_model_meta_val_str(m->model, "general.architecture", info->arch, sizeof info->arch) < 0)
        snprintf(info->arch, sizeof info->arch, "unknown");
    llama_model_desc(m->model, info->description, sizeof info->description);
    info->n_params          = llama_model_n_params(m->model);
    name_unknown_size(info->description, sizeof info->description, info->n_params);
    info->file_bytes        = file_bytes;
    info->n_vocab           = llama_vocab_n_tokens(m->vocab);
    info->n_ctx_train       = llama_model_n_ctx_train(m->model);
    info->n_embd            = llama_model_n_embd(m->model);
    info->n_layer           = llama_model_n_layer(m->model);
    info->n_head            = llama_model_n_head(m->model);
    info->has_chat_template = llama_model_chat_template(m->model, NULL) != NULL;
    read_training_record(m->model, info);
}

/* Embeddings without llama.cpp's embeddings mode: that mode makes every
 * position an output and so computes vocabulary logits for every token,
 * which on a small model costs 20x the layers themselves. Instead the
 * scheduler's eval callback copies the final-norm hidden states
 * ("result_norm") of the output rows the scoring pass asks for anyway. */
static bool capture_hidden(struct ggml_tensor *t, bool ask, void *user_data)
{
    struct tmap_model *m = user_data;
    if (ask)
        return m->capture && strcmp(t->name, "result_norm") == 0;
    size_t rows = (size_t)t->ne[1], width = (size_t)t->ne[0];
    if (t->type != GGML_TYPE_F32 || width != (size_t)m->info.n_embd)
        return true;
    if (m->n_hidden + rows > m->cap_hidden) {
        size_t cap = 2 * (m->n_hidden + rows);
        float *moved = realloc(m->hidden, cap * width * sizeof *moved);
        if (!moved)
            return false; /* cancels the decode: reported as its failure */
        m->hidden = moved;
        m->cap_hidden = cap;
    }
    ggml_backend_tensor_get(t, m->hidden + m->n_hidden * width, 0, rows * width * sizeof(float));
    m->n_hidden += rows;
    return true;
}

static enum tmap_status open_context(struct tmap_model *m, const struct tmap_model_params *p, bool callback,
                                     struct tmap_error *err)
{
    int32_t n_ctx = p->n_ctx;
    if (n_ctx == 0)
        n_ctx = m->info.n_ctx_train > 0 && m->info.n_ctx_train < 4096 ? m->info.n_ctx_train : 4096;

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx           = (uint32_t)n_ctx * (uint32_t)p->n_seq;
    cp.n_batch         = (uint32_t)p->n_batch;
    cp.n_ubatch        = (uint32_t)(p->n_batch < 512 ? p->n_batch : 512);
    cp.n_seq_max       = (uint32_t)p->n_seq;
    cp.kv_unified      = true; /* see model.h */
    cp.pooling_type    = LLAMA_POOLING_TYPE_NONE; /* tmap pools hidden states itself */
    cp.cb_eval         = callback ? capture_hidden : NULL; /* see tmap_model_prepare_capture */
    cp.cb_eval_user_data = callback ? m : NULL;
    cp.n_threads       = p->n_threads ? p->n_threads : default_threads();
    cp.n_threads_batch = cp.n_threads;
    cp.no_perf         = true;

    last_error[0] = '\0';
    m->ctx = llama_init_from_model(m->model, cp);
    if (!m->ctx)
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: cannot create a context of %d x %d tokens: %s",
                         p->path, p->n_seq, n_ctx, tmap_llama_last_error());
    m->ctx_has_callback    = callback;
    m->calls_since_capture = 0;
    m->counters.n_context_opens++;
    m->n_threads    = cp.n_threads;
    /* The companion's sequence (tmap_model_decode): the last one llama.cpp
     * allows, which a unified cache takes without a larger n_seq_max (one
     * more sequence there cost scoring a third of its speed on the 64-wide
     * bench model). A recurrent state has a slot per n_seq_max sequence
     * only, so those models go without. */
    bool recurrent = llama_model_is_recurrent(m->model) || llama_model_is_hybrid(m->model);
    m->companion_seq = !recurrent && p->n_seq < TMAP_MAX_SEQ ? TMAP_MAX_SEQ - 1 : -1;
    m->n_ubatch     = (int32_t)cp.n_ubatch;
    m->info.n_ctx   = n_ctx;
    m->info.n_batch = p->n_batch;
    m->info.n_seq   = p->n_seq;
    return TMAP_OK;
}

/* The second lane (n_lanes 2): its own context over the same weights. */
static enum tmap_status open_twin(struct tmap_model *m, struct tmap_error *err)
{
    struct tmap_model *t = calloc(1, sizeof *t);
    if (!t)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for a second lane on %s", m->params.path);
    t->model    = m->model;
    t->vocab    = m->vocab;
    t->info     = m->info;
    t->params   = m->params; /* path too: the owner's */
    t->borrowed = true;
    m->twin = t;
    return open_context(t, &t->params, false, err);
}

static enum tmap_status load(const struct tmap_model_params *p, const struct tmap_weight_training *training,
                             struct tmap_model **out, struct tmap_error *err)
{
    *out = NULL;
    enum tmap_status st = check_params(p, err);
    if (st)
        return st;

    struct stat sb;
    if (stat(p->path, &sb) != 0)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", p->path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return tmap_fail(err, TMAP_ERR_IO, "%s: not a regular file", p->path);

    struct tmap_model *m = calloc(1, sizeof *m);
    char *path = strdup(p->path);
    if (!m || !path) {
        free(m);
        free(path);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory loading %s", p->path);
    }
    m->params = *p;
    m->params.path = path;
    st = tmap_model_fingerprint(p->path, m->info.fingerprint, NULL, err);
    if (st)
        goto fail;

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = p->n_gpu_layers;
    mp.load_mode    = p->use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
    set_main_gpu(&mp, p->main_gpu);
    struct tmap_weight_placement placement;
    st = tmap_weight_placement_plan(p->path, p->repack, training, &mp, &placement, err);
    if (st)
        goto fail;
    m->n_repacked = placement.n_weights;
    last_error[0]   = '\0';
    m->model = llama_model_load_from_file(p->path, mp);
    tmap_weight_placement_free(&placement);
    if (!m->model) {
        st = tmap_fail(err, TMAP_ERR_MODEL, "%s: llama.cpp cannot load this model: %s", p->path,
                       *last_error ? last_error : "no reason given");
        goto fail;
    }
    m->vocab = llama_model_get_vocab(m->model);
    fill_info(m, (uint64_t)sb.st_size);
    st = open_context(m, p, false, err);
    if (st)
        goto fail;
    if (p->n_lanes == 2 && (st = open_twin(m, err)))
        goto fail;
    *out = m;
    return TMAP_OK;
fail:
    tmap_model_free(m);
    return st;
}

enum tmap_status tmap_model_load(const struct tmap_model_params *p, struct tmap_model **out,
                                 struct tmap_error *err)
{
    return load(p, NULL, out, err);
}

enum tmap_status tmap_model_load_to_train(const struct tmap_model_params *p, const struct tmap_tensor_spec *trains,
                                          struct tmap_model **out, struct tmap_error *err)
{
    struct tmap_model_params own = *p;
    own.use_mmap = false; /* mmapped weights are read-only; the optimiser writes them */
    struct tmap_weight_training training = { trains };
    return load(&own, &training, out, err);
}

void tmap_model_free(struct tmap_model *m)
{
    if (!m)
        return;
    tmap_model_free(m->twin);
    if (m->ctx)
        llama_free(m->ctx);
    free(m->hidden);
    if (!m->borrowed) {
        if (m->model)
            llama_model_free(m->model);
        free((char *)m->params.path);
    }
    free(m);
}

const struct tmap_model_params *tmap_model_load_params(const struct tmap_model *m)
{
    return &m->params;
}

void tmap_model_get_info(const struct tmap_model *m, struct tmap_model_info *out)
{
    *out = m->info;
}

bool tmap_model_context_warning(const struct tmap_model_info *info, char *buf, size_t size)
{
    /* A model that records no training context (0) cannot be checked. */
    if (info->n_ctx_train <= 0 || info->n_ctx <= info->n_ctx_train)
        return false;
    if (buf && size)
        snprintf(buf, size, "a context of %d tokens is beyond the %d the model was trained on: positions past %d "
                 "are ones it never saw, so its log-likelihoods there mean little (-c %d or less)",
                 info->n_ctx, info->n_ctx_train, info->n_ctx_train, info->n_ctx_train);
    return true;
}

enum tmap_template tmap_model_layout(const struct tmap_model_info *info, enum tmap_template asked)
{
    return asked == TMAP_TEMPLATE_CHAT && info->has_chat_template ? TMAP_TEMPLATE_CHAT : TMAP_TEMPLATE_PLAIN;
}

bool tmap_model_template_note(const struct tmap_model_info *info, enum tmap_template asked, char *buf,
                              size_t size)
{
    if (tmap_model_layout(info, asked) != asked)
        snprintf(buf, size, "the model (%s) has no chat template: prompts use the plain layout", info->description);
    else if (asked != TMAP_TEMPLATE_CHAT && info->has_chat_template)
        snprintf(buf, size, "the model (%s) carries a chat template, but prompts use the plain layout (the "
                 "default): for an instruct model, --template chat lays them out as its own turns",
                 info->description);
    else
        return false;
    return true;
}

/* Every field is a count, so a twin's counters add field by field; a field
 * added to tmap_model_counters must be added here too (test_two_lanes
 * compares the sums). */
static void add_counters(struct tmap_model_counters *to, const struct tmap_model_counters *from)
{
    to->n_decode_calls   += from->n_decode_calls;
    to->n_tokens_decoded += from->n_tokens_decoded;
    to->n_context_opens  += from->n_context_opens;
}

void tmap_model_get_counters(const struct tmap_model *m, struct tmap_model_counters *out)
{
    *out = m->counters;
    if (m->twin)
        add_counters(out, &m->twin->counters);
}

enum tmap_status tmap_model_prepare_capture(struct tmap_model *m, bool capture, struct tmap_error *err)
{
    m->capture = false;
    bool want = capture || (m->ctx_has_callback && m->calls_since_capture < TMAP_CALLBACK_SHED_CALLS);
    if (want != m->ctx_has_callback || !m->ctx) {
        /* Free first: a GPU that holds the model may not hold two
         * contexts. A failed reopen leaves none, and the next run tries
         * again (tmap_model_decode refuses to run without one). */
        if (m->ctx)
            llama_free(m->ctx);
        m->ctx = NULL;
        enum tmap_status st = open_context(m, &m->params, want, err);
        if (st)
            return st;
    }
    if (capture)
        m->calls_since_capture = 0;
    m->capture = capture;
    return TMAP_OK;
}

void tmap_model_release_context(struct tmap_model *m)
{
    if (m->twin)
        tmap_model_release_context(m->twin);
    if (m->ctx)
        llama_free(m->ctx);
    m->ctx = NULL;
    m->capture = false;
}

/*
 * A micro-batch of a single token takes its own road through llama.cpp's
 * CPU flash attention: with 512 cells or more in the cache, it splits the
 * cells among the threads and adds up their partial sums, so the token's
 * values change with the thread count (measured: one quality value in 40
 * moved by 5e-5 between -t 1 and -t 2 at the default batch, where a call of
 * 513 tokens ends in such a micro-batch). A call whose last micro-batch
 * would hold one token gets a companion: a throwaway token in a sequence
 * of its own (companion_seq), no output, removed after the call. Every
 * micro-batch then holds two tokens or more, whose values are the same on
 * any thread count; the real tokens never see the companion (another
 * sequence), and it costs one token in the calls that need it. Returns
 * whether it was added.
 */
static bool add_companion(const struct tmap_model *m, struct llama_batch *batch)
{
    int32_t n = batch->n_tokens;
    if (m->companion_seq < 0 || n % m->n_ubatch != 1 || n >= m->info.n_batch)
        return false; /* no spare sequence, no lone token, or no room under n_batch */
    batch->token[n]     = batch->token[n - 1];
    batch->pos[n]       = 0;
    batch->n_seq_id[n]  = 1;
    batch->seq_id[n][0] = m->companion_seq;
    batch->logits[n]    = 0;
    batch->n_tokens     = n + 1;
    return true;
}

enum tmap_status tmap_model_decode(struct tmap_model *m, struct llama_batch batch,
                                   struct tmap_error *err)
{
    if (!m->ctx)
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: no llama.cpp context (recreating it failed earlier)",
                         m->params.path);
    m->n_hidden = 0;
    int32_t n_tokens = batch.n_tokens;
    bool companion = add_companion(m, &batch);
    int rc = llama_decode(m->ctx, batch);
    if (companion) {
        llama_memory_seq_rm(llama_get_memory(m->ctx), m->companion_seq, -1, -1);
        if (rc == 1) { /* no cell left for it (llama.cpp changed nothing): the call as it was */
            batch.n_tokens = n_tokens;
            rc = llama_decode(m->ctx, batch);
        }
    }
    batch.n_tokens = n_tokens;
    m->counters.n_decode_calls++;
    if (!m->capture)
        m->calls_since_capture++;
    m->counters.n_tokens_decoded += (uint64_t)batch.n_tokens;
    if (rc != 0)
        return tmap_fail(err, TMAP_ERR_MODEL, "llama_decode failed (code %d) on a batch of %d tokens%s%s",
                         rc, batch.n_tokens, *last_error ? ": " : "", last_error);
    return TMAP_OK;
}

enum tmap_status tmap_model_decode_prefix(struct tmap_model *m, const int32_t *tokens, int32_t n,
                                          struct tmap_error *err)
{
    llama_memory_clear(llama_get_memory(m->ctx), true);
    if (n > m->info.n_ctx)
        return tmap_fail(err, TMAP_ERR_DATA, "a shared prefix of %d tokens does not fit the context of %d",
                         n, m->info.n_ctx);
    struct llama_batch batch = llama_batch_init(m->info.n_batch, 0, 1);
    enum tmap_status st = TMAP_OK;
    /* No prefix token is an output, so there are no hidden rows to keep:
     * capture pauses here rather than in every caller. */
    bool capture = m->capture;
    m->capture = false;
    for (int32_t at = 0; at < n && !st; at += m->info.n_batch) {
        int32_t len = n - at < m->info.n_batch ? n - at : m->info.n_batch;
        for (int32_t i = 0; i < len; i++) {
            batch.token[i]     = tokens[at + i];
            batch.pos[i]       = at + i;
            batch.n_seq_id[i]  = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i]    = false;
        }
        batch.n_tokens = len;
        st = tmap_model_decode(m, batch, err);
    }
    m->capture = capture;
    llama_batch_free(batch);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Text                                                                     */
/* ------------------------------------------------------------------------ */

static enum tmap_status tokenize(struct tmap_model *m, const char *text, bool add_bos, bool special,
                                 int32_t **tokens, int32_t *n_tokens, struct tmap_error *err)
{
    *tokens   = NULL;
    *n_tokens = 0;
    size_t len = strlen(text);
    if (len > INT32_MAX / 2)
        return tmap_fail(err, TMAP_ERR_DATA, "text of %zu bytes is too long to tokenize", len);

    /* A token covers at least one byte, plus BOS: len + 2 always suffices. */
    int32_t cap = (int32_t)len + 2;
    int32_t *buf = malloc((size_t)cap * sizeof *buf);
    if (!buf)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    int32_t n = llama_tokenize(m->vocab, text, (int32_t)len, buf, cap, add_bos, special);
    if (n < 0) {
        free(buf);
        return tmap_fail(err, TMAP_ERR_MODEL, "tokenizer failed on a text of %zu bytes", len);
    }
    *tokens   = buf;
    *n_tokens = n;
    return TMAP_OK;
}

enum tmap_status tmap_model_tokenize(struct tmap_model *m, const char *text, bool add_bos,
                                     int32_t **tokens, int32_t *n_tokens, struct tmap_error *err)
{
    /* parse_special=false: text from a data set must never turn into control
     * tokens, whatever it contains. */
    return tokenize(m, text, add_bos, false, tokens, n_tokens, err);
}

enum tmap_status tmap_model_tokenize_prompt(struct tmap_model *m, const char *text, enum tmap_template tmpl,
                                            int32_t **tokens, int32_t *n_tokens, struct tmap_error *err)
{
    /* A chat template's markers must be the model's control tokens; the
     * user text inside them is parsed the same way, as llama.cpp's own
     * server does: the price of using the model's template at all. */
    bool chat = tmpl == TMAP_TEMPLATE_CHAT && llama_model_chat_template(m->model, NULL) != NULL;
    return tokenize(m, text, true, chat, tokens, n_tokens, err);
}

enum tmap_status tmap_model_piece_bytes(struct tmap_model *m, const int32_t *tokens, int32_t n, int32_t *bytes,
                                        struct tmap_error *err)
{
    char small[64];
    for (int32_t i = 0; i < n; i++) {
        int32_t len = llama_token_to_piece(m->vocab, tokens[i], small, sizeof small, 0, false);
        if (len < 0) { /* a piece longer than the buffer: only its length is wanted */
            char *big = malloc((size_t)-len);
            if (!big)
                return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading token %d's text", tokens[i]);
            len = llama_token_to_piece(m->vocab, tokens[i], big, -len, 0, false);
            free(big);
            if (len < 0)
                return tmap_fail(err, TMAP_ERR_MODEL, "could not read the text of token %d", tokens[i]);
        }
        bytes[i] = len;
    }
    return TMAP_OK;
}

static enum tmap_status format_chat(struct tmap_model *m, const char *tmpl, const struct tmap_sample *s,
                                    const char *reply, char **out, struct tmap_error *err);

static bool same_tokens(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* Where the response's text ends in the whole conversation's text:
 * after its last occurrence at or past from (templates may trim it, then
 * it is not found: 0). */
static size_t response_end(const char *full, size_t from, const char *response)
{
    size_t lr = strlen(response), lf = strlen(full);
    if (lr == 0 || lf < from + lr)
        return 0;
    for (size_t at = lf - lr + 1; at-- > from;)
        if (memcmp(full + at, response, lr) == 0)
            return at + lr;
    return 0;
}

/* Under a chat template, one conversation gives both the response's tokens
 * and the markup after them, so it is formatted and tokenized once for
 * both. The response: the tokens the conversation up to the response's end
 * adds to the generation prompt's, so a template that opens the assistant
 * turn with a space after its generation prompt (mistral-v7) has the model
 * predict that space, as it would when generating; *tokens (the response
 * tokenized on its own) stays where the response holds text that parses as
 * a control token, or a token spans the boundary. The markup (chatml's
 * "<|im_end|>\n"), when end is not NULL: what the whole conversation's
 * tokens add to those up to the response's end (exactly what llama.cpp's
 * own tokenization holds), else the markup tokenized on its own; nothing
 * where the template trims the response so that its end cannot be found. */
static enum tmap_status chat_turn(struct tmap_model *m, const char *tmpl, const struct tmap_sample *s,
                                  int32_t **tokens, int32_t *n_tokens, int32_t **end, int32_t *n_end,
                                  struct tmap_error *err)
{
    int32_t *special = NULL, *prompt = NULL, *head = NULL, *whole = NULL;
    int32_t n_special = 0, n_prompt = 0, n_head = 0, n_whole = 0;
    char *gen = NULL, *full = NULL;
    enum tmap_status st = tokenize(m, s->response, false, true, &special, &n_special, err);
    bool clean = !st && same_tokens(special, n_special, *tokens, *n_tokens); /* else it injects control tokens */
    if (!st && (clean || end))
        st = format_chat(m, tmpl, s, NULL, &gen, err);
    if (!st && gen)
        st = format_chat(m, tmpl, s, s->response, &full, err);
    size_t lg = gen ? strlen(gen) : 0;
    size_t at = !st && full && strncmp(full, gen, lg) == 0 ? response_end(full, lg, s->response) : 0;
    if (at > 0) {
        char kept = full[at];
        full[at] = '\0';
        st = tokenize(m, full, true, true, &head, &n_head, err);
        full[at] = kept;
    }
    if (!st && clean && at > 0)
        st = tokenize(m, gen, true, true, &prompt, &n_prompt, err);
    if (!st && prompt && n_head > n_prompt && same_tokens(head, n_prompt, prompt, n_prompt)) {
        int32_t n = n_head - n_prompt, *own = malloc((size_t)n * sizeof *own);
        if (!own)
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory tokenizing sample %s", s->id);
        else {
            memcpy(own, head + n_prompt, (size_t)n * sizeof *own);
            free(*tokens);
            *tokens = own;
            *n_tokens = n;
        }
    }
    if (!st && end && at > 0 && full[at] != '\0') {
        st = tokenize(m, full, true, true, &whole, &n_whole, err);
        if (!st && n_whole > n_head && same_tokens(whole, n_head, head, n_head)) {
            memmove(whole, whole + n_head, (size_t)(n_whole - n_head) * sizeof *whole);
            *end = whole;
            *n_end = n_whole - n_head;
            whole = NULL;
        } else if (!st) {
            st = tokenize(m, full + at, false, true, end, n_end, err);
        }
    }
    free(whole);
    free(head);
    free(prompt);
    free(full);
    free(gen);
    free(special);
    return st;
}

/* What closes the turn after the markup: EOS, unless the markup already
 * holds an end-of-generation token. Takes over markup (malloc'd or NULL). */
static enum tmap_status add_eos(struct tmap_model *m, const struct tmap_sample *s, int32_t *markup,
                                int32_t n_markup, int32_t **tokens, int32_t *n_tokens, struct tmap_error *err)
{
    bool stops = false;
    for (int32_t i = 0; i < n_markup && !stops; i++)
        stops = llama_vocab_is_eog(m->vocab, markup[i]);
    /* A vocabulary without EOS (rare) goes without. */
    llama_token eos = llama_vocab_eos(m->vocab);
    int32_t n_eos = !stops && eos != LLAMA_TOKEN_NULL ? 1 : 0;
    int32_t *out = realloc(markup, (size_t)(n_markup + n_eos + 1) * sizeof *out);
    if (!out) {
        free(markup);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory tokenizing sample %s", s->id);
    }
    if (n_eos)
        out[n_markup] = eos;
    *tokens = out;
    *n_tokens = n_markup + n_eos;
    return TMAP_OK;
}

enum tmap_status tmap_model_tokenize_turn(struct tmap_model *m, const struct tmap_sample *s,
                                          enum tmap_template tmpl, int32_t **tokens, int32_t *n_tokens,
                                          int32_t **end, int32_t *n_end, struct tmap_error *err)
{
    if (end) {
        *end = NULL;
        *n_end = 0;
    }
    enum tmap_status st = tokenize(m, s->response, false, false, tokens, n_tokens, err);
    const char *t = tmpl == TMAP_TEMPLATE_CHAT ? llama_model_chat_template(m->model, NULL) : NULL;
    int32_t *markup = NULL, n_markup = 0;
    if (!st && t)
        st = chat_turn(m, t, s, tokens, n_tokens, end ? &markup : NULL, &n_markup, err);
    if (!st && end)
        st = add_eos(m, s, markup, n_markup, end, n_end, err);
    else
        free(markup);
    if (st) {
        free(*tokens);
        *tokens = NULL;
        *n_tokens = 0;
    }
    return st;
}

enum tmap_status tmap_model_tokenize_response(struct tmap_model *m, const struct tmap_sample *s,
                                              enum tmap_template tmpl, int32_t **tokens, int32_t *n_tokens,
                                              struct tmap_error *err)
{
    return tmap_model_tokenize_turn(m, s, tmpl, tokens, n_tokens, NULL, NULL, err);
}

static enum tmap_status format_plain(const struct tmap_sample *s, char **out, struct tmap_error *err)
{
    /* No trailing space after "Answer:": the response is tokenized on its own
     * and SentencePiece vocabularies give it its leading space. */
    size_t n = strlen(s->prompt) + 32;
    *out = malloc(n);
    if (!*out)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory formatting sample %s", s->id);
    snprintf(*out, n, "Query: %s\nAnswer:", s->prompt);
    return TMAP_OK;
}

/* The sample's turns through the model's template: with add_ass, the
 * generation prompt after them; with reply, that assistant turn too. */
static enum tmap_status format_chat(struct tmap_model *m, const char *tmpl, const struct tmap_sample *s,
                                    const char *reply, char **out, struct tmap_error *err)
{
    size_t n_msg = s->n_turns + (reply ? 1 : 0);
    struct llama_chat_message *msgs = calloc(n_msg ? n_msg : 1, sizeof *msgs);
    if (!msgs)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory formatting sample %s", s->id);
    size_t cap = 64;
    for (size_t i = 0; i < s->n_turns; i++) {
        msgs[i].role    = s->turns[i].role;
        msgs[i].content = s->turns[i].content;
        cap += strlen(s->turns[i].content) * 2 + 64;
    }
    if (reply) {
        msgs[s->n_turns].role    = "assistant";
        msgs[s->n_turns].content = reply;
        cap += strlen(reply) * 2 + 64;
    }
    bool add_ass = reply == NULL;
    char *buf = malloc(cap);
    int32_t need = buf ? llama_chat_apply_template(tmpl, msgs, n_msg, add_ass, buf, (int32_t)cap) : -1;
    if (need > (int32_t)cap) {
        free(buf);
        cap = (size_t)need + 1;
        buf = malloc(cap);
        need = buf ? llama_chat_apply_template(tmpl, msgs, n_msg, add_ass, buf, (int32_t)cap) : -1;
    }
    free(msgs);
    if (need < 0) {
        free(buf);
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: llama.cpp cannot apply this model's chat template (%s); "
                         "--template plain reads samples without it", m->params.path, m->info.description);
    }
    buf[need] = '\0';
    *out = buf;
    return TMAP_OK;
}

enum tmap_status tmap_model_format_prompt(struct tmap_model *m, const struct tmap_sample *s,
                                          enum tmap_template tmpl, char **out, bool *fell_back,
                                          struct tmap_error *err)
{
    *out = NULL;
    if (fell_back)
        *fell_back = false;
    if (tmpl == TMAP_TEMPLATE_CHAT) {
        const char *t = llama_model_chat_template(m->model, NULL);
        if (t)
            return format_chat(m, t, s, NULL, out, err);
        if (fell_back)
            *fell_back = true;
    }
    return format_plain(s, out, err);
}
