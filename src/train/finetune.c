/*
 * finetune.c - fine-tuning a GGUF model on a pool with llama.cpp's training
 * API (llama_opt_init, llama_opt_epoch, ggml_opt_dataset_*), docs/design.md
 * section 12. `tmap finetune` and `tmap model pretrain` call it
 * (tmap_finetune: load, train, write the model); the fine-tune proxy
 * trains a model it keeps loaded, judges it and has it set back from its
 * file (ft_train_judge: nothing written).
 *
 * One tmap_model (weights loaded without mmap, since the optimiser writes
 * them) carries two llama.cpp contexts on the same weights:
 *   - the training context made here: one sequence, n_ctx = n_batch =
 *     n_ubatch = the window (one optimiser step per window, no gradient
 *     accumulation), F32 KV cache (OUT_PROD has no F16 backward), flash
 *     attention off (it has no backward pass);
 *   - the model's own scoring context, which measures response-only losses
 *     with tmap_model_logprob between epochs. The optimiser updates the
 *     weights in place, so it always scores the current ones.
 *
 * Learning rate: linear warmup to params.lr over the first `warmup` of all
 * steps, then cosine decay to lr * lr_min at the last step, computed from
 * the global step in the callback ggml-opt calls before each step.
 */
/* realpath is XSI: name the whole base model in the sidecar. */
#define _XOPEN_SOURCE 700

#include "util/clock.h"
#include "model/model.h"
#include "train/finetune.h"
#include "util/error.h"

#include <ggml-opt.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const double PI = 3.14159265358979323846;

struct tmap_finetune_params tmap_finetune_default_params(void)
{
    struct tmap_finetune_params p = {
        .model        = tmap_model_default_params(),
        .out_path     = NULL,
        .n_epochs     = 1,
        .lr           = 1e-4f,
        .lr_min       = 0.1f,
        .warmup       = 0.05f,
        .weight_decay = 0.0f,
        .val_split    = 0.0f,
        .n_first      = 0,
        .rows         = NULL,
        .n_rows       = 0,
        .seed         = 42,
        .train_layers = NULL,
        .resume       = false,
        .eval_pool    = NULL,
        .tmpl         = TMAP_TEMPLATE_PLAIN,
        .notice       = NULL,
        .notice_user_data = NULL,
        .progress     = NULL,
        .progress_user_data = NULL,
    };
    p.model.n_ctx = 512;
    p.model.use_mmap = false;
    return p;
}

/* Everything one call works with. */
struct run {
    const struct tmap_finetune_params *p;
    const struct tmap_pool            *pool;
    struct tmap_finetune_result       *res;
    int32_t                            n_ctx;
    char                               base_real[PATH_MAX];
    char                               load_path[4096];
    struct tmap_model                 *m;
    bool                               in_place; /* m is the caller's; nothing is written (ft_train_judge) */
    struct llama_context              *tctx;
    struct tmap_tensor_spec           *layers;
    int32_t                            n_trained;
    /* The tensors the optimiser trains, and ggml-opt's context once the
     * first step has reported it: see clear_gradients. */
    const struct ggml_tensor         **params;
    size_t                             n_params;
    ggml_opt_context_t                 opt_ctx;
    uint32_t                           n_ctx_train; /* as loaded, before llama_opt_init changes it */
    char                              *chat_template;
    enum tmap_template                 layout;        /* params.tmpl, or plain on a model without a template */
    size_t                            *train_idx, *val_idx;
    size_t                             n_train, n_val;
    struct ft_corpus                   train, val, eval;
    char                               data_fingerprint[33];
    size_t                             n_records; /* the pool's, or its first n_first */
    char                               data_desc[256], eval_desc[256]; /* the training record's */
    int64_t                            total_steps, warmup_steps;
    struct ft_state                    state; /* epochs and steps done, history: the sidecar */
    double                             lr_now;
    int32_t                            epoch;        /* the epoch being trained */
    double                             t_start, t_train_end;
};

static void epoch_init(struct tmap_finetune_epoch *e, int32_t epoch)
{
    memset(e, 0, sizeof *e);
    e->epoch = epoch;
    e->train_loss = e->val_loss = e->val_response_loss = e->eval_response_loss = e->lr = NAN;
    e->val_response_bpb = e->eval_response_bpb = NAN;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

static enum tmap_status check_params(const struct tmap_pool *pool, const struct tmap_finetune_params *p,
                                     bool in_place, struct tmap_error *err)
{
    if (!p->model.path || !*p->model.path)
        return tmap_fail(err, TMAP_ERR_USAGE, "no model given (-m FILE.gguf)");
    if (!in_place && (!p->out_path || !*p->out_path))
        return tmap_fail(err, TMAP_ERR_USAGE, "no output file given (--out FILE.gguf)");
    if (!pool || tmap_pool_size(pool) == 0 || (p->rows && p->n_rows == 0))
        return tmap_fail(err, TMAP_ERR_DATA, "%s: no records to train on", pool ? tmap_pool_path(pool) : "(no pool)");
    for (size_t i = 0; p->rows && i < p->n_rows; i++)
        if (p->rows[i] >= tmap_pool_size(pool))
            return tmap_fail(err, TMAP_ERR_USAGE, "%s: record %zu to train on is past its %zu records",
                             tmap_pool_path(pool), p->rows[i], tmap_pool_size(pool));
    if (p->tmpl != TMAP_TEMPLATE_PLAIN && p->tmpl != TMAP_TEMPLATE_CHAT)
        return tmap_fail(err, TMAP_ERR_USAGE, "template %d: neither plain nor chat", (int)p->tmpl);
    if (p->n_epochs < 1)
        return tmap_fail(err, TMAP_ERR_USAGE, "--epochs %d: must be at least 1", p->n_epochs);
    if (!(p->lr > 0.0f) || !isfinite(p->lr))
        return tmap_fail(err, TMAP_ERR_USAGE, "--lr %g: must be a positive number", (double)p->lr);
    if (!(p->lr_min > 0.0f && p->lr_min <= 1.0f))
        return tmap_fail(err, TMAP_ERR_USAGE, "lr_min %g: must be in (0, 1]", (double)p->lr_min);
    if (!(p->warmup >= 0.0f && p->warmup < 1.0f))
        return tmap_fail(err, TMAP_ERR_USAGE, "--warmup %g: must be in [0, 1)", (double)p->warmup);
    if (!(p->weight_decay >= 0.0f && p->weight_decay <= 1.0f))
        return tmap_fail(err, TMAP_ERR_USAGE, "--weight-decay %g: must be in [0, 1]", (double)p->weight_decay);
    if (!(p->val_split >= 0.0f && p->val_split <= 0.9f))
        return tmap_fail(err, TMAP_ERR_USAGE, "--val-split %g: must be in [0, 0.9]", (double)p->val_split);
    /* llama.cpp pads every context to a multiple of 256; another window
     * would no longer be n_ctx = n_batch = n_ubatch. */
    int32_t c = p->model.n_ctx ? p->model.n_ctx : 512;
    if (c < 256 || c % 256 != 0)
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "-c %d: the training window must be a multiple of 256 (llama.cpp pads contexts to that)", c);
    return TMAP_OK;
}

/* A resume must see the same held-out records, or validation would leak. */
static enum tmap_status check_resume(const struct run *r, const char *sidecar, struct tmap_error *err)
{
    const struct ft_state *s = &r->state;
    if (strcmp(s->base_model, r->base_real) != 0)
        return tmap_fail(err, TMAP_ERR_USAGE, "%s: the checkpoint was trained from %s, not %s", sidecar,
                         s->base_model, r->base_real);
    if (strcmp(s->data_fingerprint, r->data_fingerprint) != 0 || s->n_records != r->n_records)
        return tmap_fail(err, TMAP_ERR_DATA, "%s: not the data the checkpoint was trained on (%zu records, fingerprint %s)",
                         tmap_pool_path(r->pool), s->n_records, s->data_fingerprint);
    if (s->seed != r->p->seed || s->val_split != r->p->val_split || s->n_ctx != r->n_ctx)
        return tmap_fail(err, TMAP_ERR_USAGE,
                         "%s: the checkpoint used --seed %llu --val-split %g -c %d; a resume must use the same",
                         sidecar, (unsigned long long)s->seed, (double)s->val_split, s->n_ctx);
    if (s->tmpl != r->layout)
        return tmap_fail(err, TMAP_ERR_USAGE, "%s: the checkpoint trained records in the %s layout; a resume must "
                         "use --template %s", sidecar, tmap_template_name(s->tmpl), tmap_template_name(s->tmpl));
    if (s->epoch >= r->p->n_epochs)
        return tmap_fail(err, TMAP_ERR_USAGE, "%s: the checkpoint has done %d epochs; --epochs %d leaves nothing to do",
                         sidecar, s->epoch, r->p->n_epochs);
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* Setting up                                                               */
/* ------------------------------------------------------------------------ */

/* Fresh run: record where it starts. Resume: read the sidecar and load the
 * checkpoint it names instead of the base model. */
static enum tmap_status plan_start(struct run *r, struct tmap_error *err)
{
    char sidecar[4200];
    ft_sidecar_path(r->p->out_path, sidecar, sizeof sidecar);
    if (!realpath(r->p->model.path, r->base_real))
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", r->p->model.path, strerror(errno));
    if (!r->p->resume) {
        snprintf(r->load_path, sizeof r->load_path, "%s", r->p->model.path);
        return TMAP_OK;
    }
    enum tmap_status st = ft_state_read(sidecar, &r->state, err);
    if (st)
        return st;
    ft_checkpoint_path(r->p->out_path, r->state.epoch, r->load_path, sizeof r->load_path);
    if (access(r->load_path, R_OK) != 0)
        return tmap_fail(err, TMAP_ERR_IO, "%s: the checkpoint %s names cannot be read: %s", r->load_path,
                         sidecar, strerror(errno));
    return TMAP_OK;
}

static enum tmap_status load_model(struct run *r, struct tmap_error *err)
{
    if (!r->in_place) {
        struct tmap_model_params mp = r->p->model;
        mp.path     = r->load_path;
        mp.n_ctx    = r->n_ctx;
        mp.n_batch  = r->n_ctx;
        mp.n_seq    = 4;
        /* Every weight plain, not only those the backward pass reaches
         * (placement.c): saving the model reads each one back, and
         * llama.cpp's repacked buffer cannot give its weights back (a call
         * through a null pointer: SIGSEGV, seen in tests/cli/cli_finetune.sh).
         * The fine-tune proxy's copy, never saved, keeps the rest repacked. */
        mp.repack = false;
        enum tmap_status st = tmap_model_load_to_train(&mp, r->layers, &r->m, err);
        if (st)
            return st;
    }
    r->n_ctx_train = (uint32_t)llama_model_n_ctx_train(r->m->model);
    const char *tmpl = llama_model_chat_template(r->m->model, NULL);
    if (tmpl && !(r->chat_template = strdup(tmpl)))
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory loading %s", r->load_path);
    r->layout = tmap_model_layout(&r->m->info, r->p->tmpl);
    r->res->layout = r->layout;
    char note[512];
    if (r->p->notice && tmap_model_template_note(&r->m->info, r->p->tmpl, note, sizeof note))
        r->p->notice(note, r->p->notice_user_data);
    return TMAP_OK;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The data part of the training record a saved model carries. */
static void describe_data(struct run *r)
{
    size_t total = tmap_pool_size(r->pool);
    const char *name = base_name(tmap_pool_path(r->pool));
    int len = r->p->rows ? snprintf(r->data_desc, sizeof r->data_desc, "%s (%zu chosen of %zu records", name,
                                    r->n_records, total)
              : r->n_records < total
                  ? snprintf(r->data_desc, sizeof r->data_desc, "%s (first %zu of %zu records", name, r->n_records, total)
                  : snprintf(r->data_desc, sizeof r->data_desc, "%s (%zu records", name, r->n_records);
    if (len > 0 && (size_t)len < sizeof r->data_desc)
        len += snprintf(r->data_desc + len, sizeof r->data_desc - (size_t)len, r->n_val ? ", %zu held out)" : ")",
                        r->n_val);
    /* Plain, the layout of every model trained before chat layouts were, says nothing. */
    if (r->layout == TMAP_TEMPLATE_CHAT && len > 0 && (size_t)len < sizeof r->data_desc)
        snprintf(r->data_desc + len, sizeof r->data_desc - (size_t)len, ", chat layout");
    if (r->p->eval_pool)
        snprintf(r->eval_desc, sizeof r->eval_desc, "%s (%zu records)", base_name(tmap_pool_path(r->p->eval_pool)),
                 tmap_pool_size(r->p->eval_pool));
}

/* What a model saved after `epochs` epochs records (checkpoint.c). */
static struct ft_model_meta model_meta(const struct run *r, int32_t epochs, const struct tmap_finetune_epoch *e,
                                       char *data, size_t size)
{
    snprintf(data, size, "%s, %d epoch%s", r->data_desc, epochs, epochs == 1 ? "" : "s");
    /* Training on windows longer than the declared context teaches the
     * positions past it (how a 512-token model becomes a 2,048-token one):
     * the saved model declares the window, so scoring and the proxy use it. */
    uint32_t n_ctx_train = (uint32_t)r->n_ctx > r->n_ctx_train ? (uint32_t)r->n_ctx : r->n_ctx_train;
    struct ft_model_meta meta = {
        .n_ctx_train = n_ctx_train, .chat_template = r->chat_template, .epochs = epochs,
        .data_desc = data, .eval_desc = r->p->eval_pool ? r->eval_desc : NULL,
        .eval_response_loss = e->eval_response_loss, .eval_response_bpb = e->eval_response_bpb,
    };
    return meta;
}

/* Training windows in this epoch's order (-1: out of memory). */
static int64_t epoch_windows(const struct run *r, int32_t epoch)
{
    size_t *order = ft_epoch_order(r->train.n, r->p->seed, epoch);
    int64_t n = order ? ft_n_windows(&r->train, order, r->n_ctx) : -1;
    free(order);
    return n;
}

static enum tmap_status build_corpora(struct run *r, struct tmap_error *err)
{
    size_t n = tmap_pool_size(r->pool);
    if (r->p->n_first > 0 && r->p->n_first < n)
        n = r->p->n_first; /* the rest of the file stays unseen */
    if (r->p->rows)
        n = r->p->n_rows;
    enum tmap_status st = ft_split(n, r->p->val_split, r->p->seed, &r->train_idx, &r->n_train, &r->val_idx,
                                   &r->n_val, err);
    for (size_t i = 0; !st && r->p->rows && i < r->n_train; i++)
        r->train_idx[i] = r->p->rows[r->train_idx[i]]; /* positions in rows -> records of the pool */
    for (size_t i = 0; !st && r->p->rows && i < r->n_val; i++)
        r->val_idx[i] = r->p->rows[r->val_idx[i]];
    if (!st)
        st = ft_corpus_build(r->m, r->pool, r->train_idx, r->n_train, r->layout, &r->train, err);
    if (!st)
        st = ft_corpus_build(r->m, r->pool, r->val_idx, r->n_val, r->layout, &r->val, err);
    if (!st && r->p->eval_pool)
        st = ft_corpus_build(r->m, r->p->eval_pool, NULL, tmap_pool_size(r->p->eval_pool), r->layout, &r->eval,
                             err);
    if (st)
        return st;
    r->n_records = n;
    if (!r->in_place) { /* for the sidecar and the saved model's record, which an in-place run has not */
        tmap_pool_fingerprint(r->pool, r->p->rows, n, r->data_fingerprint);
        describe_data(r);
    }
    r->res->n_train_records = r->n_train;
    r->res->n_val_records   = r->n_val;
    r->res->n_train_windows = epoch_windows(r, r->state.epoch + 1);
    r->res->n_val_windows   = ft_n_windows(&r->val, NULL, r->n_ctx);
    if (r->res->n_train_windows < 0 || r->res->n_val_windows < 0)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory packing %zu records", n);
    if (r->res->n_train_windows < 1)
        return tmap_fail(err, TMAP_ERR_DATA,
                         "%s: the %zu training records hold %lld tokens, not one window of %d (lower -c)",
                         tmap_pool_path(r->pool), r->n_train, (long long)r->train.n_tokens, r->n_ctx + 1);
    return TMAP_OK;
}

/* ------------------------------------------------------------------------ */
/* The optimiser                                                            */
/* ------------------------------------------------------------------------ */

static double lr_at(const struct run *r, int64_t step)
{
    double peak = r->p->lr, low = (double)r->p->lr * r->p->lr_min;
    if (step < r->warmup_steps)
        return peak * (double)(step + 1) / (double)r->warmup_steps;
    int64_t span = r->total_steps - r->warmup_steps;
    double t = span > 1 ? (double)(step - r->warmup_steps) / (double)(span - 1) : 1.0;
    if (t > 1.0)
        t = 1.0; /* a resume with fewer --epochs than planned: stay at the floor */
    return low + (peak - low) * 0.5 * (1.0 + cos(PI * t));
}

/* Zeroes the gradient accumulators before a step computes into them.
 *
 * llama.cpp rebuilds its training graph every step (ggml-opt's non-static
 * mode), and ggml-opt then gives each trained tensor a persistent gradient
 * accumulator that the backward pass adds into. It zeroes them once, when
 * they are allocated, and never again: its per-period reset looks for the
 * gradient graph after the previous step has already dropped it. Left so,
 * step t follows the sum of every gradient since step 1, an optimiser with
 * momentum 1: a 2-layer model learned a copy task to 1.9 nats/token in 666
 * steps, where zeroed accumulators learn it to near 0, and learning rates
 * that suit real training diverged. ggml-opt asks for the optimiser's
 * parameters just before it computes a step, with that step's graph in
 * place, so the accumulators are found through it and zeroed here. Where a
 * later ggml zeroes them itself, this costs one memset per tensor. */
static void clear_gradients(struct run *r)
{
    if (!r->opt_ctx || ggml_opt_static_graphs(r->opt_ctx))
        return; /* the first step's are fresh; static graphs keep no accumulators */
    for (size_t i = 0; i < r->n_params; i++) {
        struct ggml_tensor *acc = ggml_opt_grad_acc(r->opt_ctx, (struct ggml_tensor *)r->params[i]);
        if (acc)
            ggml_backend_tensor_memset(acc, 0, 0, ggml_nbytes(acc));
    }
}

/* ggml-opt calls this once before every optimiser step. */
static struct ggml_opt_optimizer_params optimizer_params(void *user_data)
{
    struct run *r = user_data;
    clear_gradients(r);
    struct ggml_opt_optimizer_params o = ggml_opt_get_default_optimizer_params(NULL);
    r->lr_now = lr_at(r, r->state.step);
    o.adamw.alpha = (float)r->lr_now;
    o.adamw.wd    = r->p->weight_decay;
    r->state.step++;
    return o;
}

/* llama_opt_init's param_filter. llama.cpp asks only about F32 tensors,
 * and skips rope_freqs after asking: it is not counted. Unpatched, it never
 * asks about token_embd (scripts/llama-patches/README.md), which is how a
 * run tells that attn_k, attn_v and token_embd will not train. */
static bool param_filter(const struct ggml_tensor *t, void *user_data)
{
    struct run *r = user_data;
    bool take = tmap_tensor_spec_match(r->layers, t->name);
    if (strcmp(t->name, "token_embd.weight") == 0)
        r->res->llama_patched = true;
    if (take && strcmp(t->name, "rope_freqs.weight") != 0) {
        const struct ggml_tensor **grown = realloc(r->params, (r->n_params + 1) * sizeof *grown);
        if (grown) { /* out of memory here only costs the gradient clearing: see n_params below */
            r->params = grown;
            r->params[r->n_params++] = t;
        }
        r->n_trained++;
    }
    return take;
}

static enum tmap_status open_training(struct run *r, struct tmap_error *err)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t)r->n_ctx;
    cp.n_seq_max       = 1;
    cp.n_threads       = r->m->n_threads;
    cp.n_threads_batch = cp.n_threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.no_perf = true;
    r->tctx = llama_init_from_model(r->m->model, cp);
    if (!r->tctx)
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: cannot create a training context of %d tokens: %s",
                         r->load_path, r->n_ctx, tmap_llama_last_error());
    /* llama_opt_epoch computes through the scheduler without setting the
     * CPU backend's thread count, which only llama_decode sets; one decode
     * first, or training runs on ggml's default of 4 threads. */
    llama_token bos = llama_vocab_bos(r->m->vocab);
    if (llama_decode(r->tctx, llama_batch_get_one(&bos, 1)) != 0)
        return tmap_fail(err, TMAP_ERR_MODEL, "%s: the training context cannot decode: %s", r->load_path,
                         tmap_llama_last_error());
    llama_memory_clear(llama_get_memory(r->tctx), true);
    return TMAP_OK;
}

static enum tmap_status init_optimizer(struct run *r, struct tmap_error *err)
{
    struct llama_opt_params op = {
        .n_ctx_train     = (uint32_t)r->n_ctx,
        .param_filter    = param_filter,
        .param_filter_ud = r,
        .get_opt_pars    = optimizer_params,
        .get_opt_pars_ud = r,
        .optimizer_type  = GGML_OPT_OPTIMIZER_TYPE_ADAMW,
    };
    llama_opt_init(r->tctx, r->m->model, op);
    r->res->n_trained_tensors = r->n_trained;
    /* llama.cpp asks only about F32 tensors: a token_embd of another type
     * (left out by --train-layers) says nothing about the patch. An
     * in-place run (the proxy, every draw) reports no patch state and
     * skips rereading the file's header for it. */
    if (!r->res->llama_patched && !r->in_place && !ft_tensor_is_f32(r->load_path, "token_embd.weight"))
        r->res->llama_patched = true;
    if (r->n_params != (size_t)r->n_trained)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory listing the %d tensors to train", r->n_trained);
    if (r->n_trained > 0)
        return TMAP_OK;
    if (r->layers)
        return tmap_fail(err, TMAP_ERR_USAGE, "--train-layers '%s' selects no tensor llama.cpp can train in %s "
                         "(rope_freqs and non-F32 tensors never train; nor token_embd in an unpatched llama.cpp)", r->p->train_layers, r->load_path);
    return tmap_fail(err, TMAP_ERR_MODEL, "%s: no tensor llama.cpp can train (it trains F32 tensors only, "
                     "not quantized or F16 ones)", r->load_path);
}

/* ------------------------------------------------------------------------ */
/* Measuring                                                                */
/* ------------------------------------------------------------------------ */

/* Mean nats per response token, as scoring computes it, and bits per byte
 * of the response text of the same records (a record the context cannot
 * hold is left out of both). */
static enum tmap_status response_loss(struct run *r, const struct ft_corpus *c, double *loss, double *bpb,
                                      int64_t *n_tokens, struct tmap_error *err)
{
    *loss = *bpb = NAN;
    *n_tokens = 0;
    if (c->n == 0)
        return TMAP_OK;
    struct tmap_logprob_request *req = calloc(c->n, sizeof *req);
    struct tmap_logprob_result *res = calloc(c->n, sizeof *res);
    enum tmap_status st = req && res ? TMAP_OK
                                     : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory scoring %zu records", c->n);
    for (size_t i = 0; !st && i < c->n; i++) {
        req[i].prompt     = c->seqs[i].tokens;
        req[i].n_prompt   = c->seqs[i].n_prompt;
        req[i].response   = c->seqs[i].tokens + c->seqs[i].n_prompt;
        req[i].n_response = c->seqs[i].n_response;
    }
    if (!st)
        st = tmap_model_logprob(r->m, req, c->n, res, err);
    double sum = 0.0;
    int64_t n_bytes = 0;
    for (size_t i = 0; !st && i < c->n; i++) {
        sum -= res[i].sum_logprob;
        *n_tokens += res[i].n_tokens;
        if (res[i].n_tokens > 0)
            n_bytes += c->seqs[i].n_response_bytes;
    }
    if (!st && *n_tokens > 0)
        *loss = sum / (double)*n_tokens;
    if (!st && n_bytes > 0)
        *bpb = sum / (double)n_bytes / log(2.0);
    free(req);
    free(res);
    return st;
}

static void read_loss(ggml_opt_result_t result, double *loss)
{
    int64_t n = 0;
    double unc;
    ggml_opt_result_ndata(result, &n);
    if (n > 0)
        ggml_opt_result_loss(result, loss, &unc); /* unc must not be NULL when empty */
}

/* The all-token loss on held-out windows, without training. */
static void val_window_loss(struct run *r, double *loss)
{
    int64_t nv = r->res->n_val_windows;
    if (nv < 1)
        return;
    ggml_opt_dataset_t ds = ggml_opt_dataset_init(GGML_TYPE_I32, GGML_TYPE_I32, r->n_ctx, r->n_ctx, nv, 1);
    if (ft_pack(&r->val, NULL, r->n_ctx, nv, ggml_opt_dataset_data(ds)->data, ggml_opt_dataset_labels(ds)->data)) {
        ggml_opt_result_t rv = ggml_opt_result_init();
        llama_opt_epoch(r->tctx, ds, NULL, rv, 0, NULL, NULL);
        read_loss(rv, loss);
        ggml_opt_result_free(rv);
    }
    ggml_opt_dataset_free(ds);
}

static enum tmap_status measure(struct run *r, struct tmap_finetune_epoch *e, struct tmap_error *err)
{
    enum tmap_status st = response_loss(r, &r->val, &e->val_response_loss, &e->val_response_bpb,
                                        &e->n_val_response_tokens, err);
    if (!st)
        st = response_loss(r, &r->eval, &e->eval_response_loss, &e->eval_response_bpb,
                           &e->n_eval_response_tokens, err);
    return st;
}

static void report(struct run *r, const struct tmap_finetune_epoch *done, int64_t step, int64_t n_steps,
                   double train_loss)
{
    if (!r->p->progress)
        return;
    struct tmap_finetune_progress pr = {
        .epoch = r->epoch, .n_epochs = r->p->n_epochs, .step = step, .n_steps = n_steps,
        .train_loss = train_loss, .lr = r->lr_now, .seconds = tmap_now_seconds() - r->t_start,
        .epoch_done = done,
    };
    r->p->progress(&pr, r->p->progress_user_data);
}

/* ------------------------------------------------------------------------ */
/* Epochs                                                                   */
/* ------------------------------------------------------------------------ */

/* ggml's epoch callback takes no user data: the run in progress on this
 * thread is reached through this. */
static _Thread_local struct run *active_run;

static void on_batch(bool train, ggml_opt_context_t opt_ctx, ggml_opt_dataset_t dataset,
                     ggml_opt_result_t result, int64_t ibatch, int64_t ibatch_max, int64_t t_start_us)
{
    (void)dataset;
    (void)t_start_us;
    struct run *r = active_run;
    if (!train || !r)
        return;
    r->opt_ctx = opt_ctx;
    if (ibatch == ibatch_max)
        r->t_train_end = tmap_now_seconds();
    double loss = NAN;
    read_loss(result, &loss);
    report(r, NULL, ibatch, ibatch_max, loss);
}

/* One pass over the training windows (in this epoch's order), then the
 * held-out windows, in one llama_opt_epoch call. */
static enum tmap_status train_epoch(struct run *r, struct tmap_finetune_epoch *e, struct tmap_error *err)
{
    int64_t nv = r->res->n_val_windows;
    size_t *order = ft_epoch_order(r->train.n, r->p->seed, r->epoch);
    int64_t nt = order ? ft_n_windows(&r->train, order, r->n_ctx) : -1;
    ggml_opt_dataset_t ds = nt > 0 ? ggml_opt_dataset_init(GGML_TYPE_I32, GGML_TYPE_I32, r->n_ctx, r->n_ctx, nt + nv, 1)
                                   : NULL;
    bool packed = false;
    if (ds) {
        int32_t *data = ggml_opt_dataset_data(ds)->data, *labels = ggml_opt_dataset_labels(ds)->data;
        packed = ft_pack(&r->train, order, r->n_ctx, nt, data, labels) &&
                 ft_pack(&r->val, NULL, r->n_ctx, nv, data + nt * r->n_ctx, labels + nt * r->n_ctx);
    }
    free(order);
    if (!packed) {
        if (ds)
            ggml_opt_dataset_free(ds);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory packing %zu records", r->train.n);
    }

    ggml_opt_result_t rt = ggml_opt_result_init(), rv = ggml_opt_result_init();
    r->t_start = r->t_train_end = tmap_now_seconds();
    active_run = r;
    llama_opt_epoch(r->tctx, ds, rt, rv, nt, on_batch, NULL);
    active_run = NULL;
    read_loss(rt, &e->train_loss);
    read_loss(rv, &e->val_loss);
    ggml_opt_result_free(rt);
    ggml_opt_result_free(rv);
    ggml_opt_dataset_free(ds);
    e->lr            = r->lr_now;
    e->n_steps       = nt;
    e->n_tokens      = nt * r->n_ctx;
    e->train_seconds = r->t_train_end - r->t_start;
    return measure(r, e, err);
}

static enum tmap_status save_checkpoint(struct run *r, const struct tmap_finetune_epoch *e,
                                        struct tmap_error *err)
{
    char path[4200], old[4200], sidecar[4200];
    ft_checkpoint_path(r->p->out_path, r->epoch, path, sizeof path);
    ft_checkpoint_path(r->p->out_path, r->state.epoch, old, sizeof old);
    ft_sidecar_path(r->p->out_path, sidecar, sizeof sidecar);
    char data[320];
    struct ft_model_meta meta = model_meta(r, r->epoch, e, data, sizeof data);
    enum tmap_status st = ft_save_model(r->m->model, path, &meta, err);
    if (st)
        return st;
    struct ft_state *s = &r->state;
    struct tmap_finetune_epoch *h = realloc(s->history, (s->n_history + 1) * sizeof *h);
    if (!h)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory recording epoch %d", r->epoch);
    s->history = h;
    s->history[s->n_history++] = *e;
    bool had_previous = s->epoch > 0;
    s->epoch = r->epoch;
    snprintf(s->checkpoint, sizeof s->checkpoint, "%s", path);
    st = ft_state_write(sidecar, s, err);
    if (!st && had_previous && strcmp(old, path) != 0)
        unlink(old); /* only once the sidecar names the new one */
    return st;
}

static void fill_state(struct run *r)
{
    struct ft_state *s = &r->state;
    snprintf(s->base_model, sizeof s->base_model, "%s", r->base_real);
    snprintf(s->data_fingerprint, sizeof s->data_fingerprint, "%s", r->data_fingerprint);
    s->n_records = r->n_records;
    s->seed      = r->p->seed;
    s->val_split = r->p->val_split;
    s->n_ctx     = r->n_ctx;
    s->lr        = r->p->lr;
    s->n_epochs  = r->p->n_epochs;
    snprintf(s->train_layers, sizeof s->train_layers, "%s", r->p->train_layers ? r->p->train_layers : "");
    s->tmpl      = r->layout;
}

/* A fresh run replaces an earlier run's checkpoint, once it is sure to
 * start (a run that fails its checks leaves the old one resumable). */
static void remove_stale_checkpoint(const struct run *r)
{
    char sidecar[4200], ckpt[4200];
    ft_sidecar_path(r->p->out_path, sidecar, sizeof sidecar);
    struct ft_state old;
    if (ft_state_read(sidecar, &old, NULL) == TMAP_OK) {
        ft_checkpoint_path(r->p->out_path, old.epoch, ckpt, sizeof ckpt);
        unlink(ckpt);
        ft_state_free(&old);
    }
    unlink(sidecar);
}

static enum tmap_status train_all(struct run *r, struct tmap_error *err)
{
    if (!r->p->resume && !r->in_place)
        remove_stale_checkpoint(r);
    /* The schedule spans every epoch's windows, before a resume's too. */
    r->total_steps = 0;
    for (int32_t ep = 1; ep <= r->p->n_epochs; ep++) {
        int64_t n = epoch_windows(r, ep);
        if (n < 0)
            return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory packing %zu records", r->train.n);
        r->total_steps += n;
    }
    r->warmup_steps = (int64_t)(r->p->warmup * (double)r->total_steps);
    r->res->first_epoch = r->state.epoch + 1;
    r->epoch = r->state.epoch;
    r->lr_now = r->state.step > 0 ? lr_at(r, r->state.step - 1) : NAN;

    struct tmap_finetune_epoch *before = &r->res->before;
    epoch_init(before, r->state.epoch);
    val_window_loss(r, &before->val_loss);
    enum tmap_status st = measure(r, before, err);
    if (st)
        return st;
    r->t_start = tmap_now_seconds();
    report(r, before, 0, 0, NAN);
    fill_state(r);

    for (r->epoch = r->state.epoch + 1; r->epoch <= r->p->n_epochs; r->epoch++) {
        struct tmap_finetune_epoch *e = &r->res->last;
        epoch_init(e, r->epoch);
        st = train_epoch(r, e, err);
        if (!st && !r->in_place)
            st = save_checkpoint(r, e, err);
        if (st)
            return st;
        report(r, e, e->n_steps, e->n_steps, e->train_loss);
    }
    r->epoch = r->p->n_epochs;
    if (r->in_place)
        return TMAP_OK;
    char data[320];
    struct ft_model_meta meta = model_meta(r, r->p->n_epochs, &r->res->last, data, sizeof data);
    return ft_save_model(r->m->model, r->p->out_path, &meta, err);
}

/* ------------------------------------------------------------------------ */
/* The call                                                                 */
/* ------------------------------------------------------------------------ */

static void run_free(struct run *r)
{
    if (r->tctx)
        llama_free(r->tctx);
    if (!r->in_place)
        tmap_model_free(r->m);
    tmap_tensor_spec_free(r->layers);
    ft_corpus_free(&r->train);
    ft_corpus_free(&r->val);
    ft_corpus_free(&r->eval);
    free(r->train_idx);
    free(r->val_idx);
    free(r->chat_template);
    free(r->params);
    ft_state_free(&r->state);
}

static enum tmap_status prepare(struct run *r, struct tmap_error *err)
{
    char sidecar[4200];
    enum tmap_status st = TMAP_OK;
    if (r->in_place) /* the caller checked the model (proxy_check_model) */
        snprintf(r->load_path, sizeof r->load_path, "%s", r->p->model.path);
    else {
        ft_sidecar_path(r->p->out_path, sidecar, sizeof sidecar);
        st = ft_probe_writable(r->p->out_path, err);
        if (!st)
            st = plan_start(r, err);
    }
    if (!st)
        st = tmap_tensor_spec_parse(r->p->train_layers, "--train-layers", &r->layers, err);
    if (!st && !r->in_place)
        st = ft_check_training(r->p->model.path, r->p->train_layers, r->n_ctx, r->p->model.n_gpu_layers, 1, err);
    if (!st)
        st = load_model(r, err);
    if (!st)
        st = build_corpora(r, err);
    if (!st && r->p->resume && !r->in_place)
        st = check_resume(r, sidecar, err);
    return st;
}

/* Both ways in share this: train r's model (loaded here, or the caller's),
 * then judge it in place when judge is set. */
static enum tmap_status finetune(struct run *r, ft_judge_fn judge, void *judge_data, struct tmap_error *err)
{
    memset(r->res, 0, sizeof *r->res);
    epoch_init(&r->res->before, 0);
    epoch_init(&r->res->last, 0);
    double t0 = tmap_now_seconds();
    enum tmap_status st = check_params(r->pool, r->p, r->in_place, err);
    if (st)
        return st;
    r->n_ctx = r->p->model.n_ctx ? r->p->model.n_ctx : 512;
    r->res->n_ctx = r->n_ctx;
    st = prepare(r, err);
    /* The model's own context (its KV cache for scoring) idles while the
     * training context works: it goes, and response_loss or the judge
     * opens a fresh one when they score. */
    if (!st)
        tmap_model_release_context(r->m);
    if (!st)
        st = open_training(r, err);
    if (!st)
        st = init_optimizer(r, err);
    if (!st)
        st = train_all(r, err);
    /* The training context (optimiser moments, gradients, the backward
     * graph's buffers) is done with: the judge scores without it. */
    if (r->tctx) {
        llama_free(r->tctx);
        r->tctx = NULL;
    }
    if (!st && judge)
        st = judge(r->m, judge_data, err);
    /* Whatever happened, the caller's weights go back to the file's: the
     * optimiser may have moved them before a failure. */
    if (r->in_place && r->n_params > 0) {
        struct tmap_error restore_err = { 0 };
        enum tmap_status rs = ft_restore_tensors(r->load_path, r->params, r->n_params, &restore_err);
        if (rs && !st) {
            st = rs;
            if (err)
                *err = restore_err;
        }
    }
    run_free(r);
    r->res->seconds = tmap_now_seconds() - t0;
    return st;
}

enum tmap_status tmap_finetune(const struct tmap_pool *pool, const struct tmap_finetune_params *params,
                               struct tmap_finetune_result *result, struct tmap_error *err)
{
    struct tmap_finetune_result local;
    struct run r = { .p = params, .pool = pool, .res = result ? result : &local };
    return finetune(&r, NULL, NULL, err);
}

enum tmap_status ft_train_judge(struct tmap_model *m, const struct tmap_pool *pool,
                                const struct tmap_finetune_params *params, struct tmap_finetune_result *result,
                                ft_judge_fn judge, void *judge_data, struct tmap_error *err)
{
    struct tmap_finetune_result local;
    struct run r = { .p = params, .pool = pool, .res = result ? result : &local, .m = m, .in_place = true };
    return finetune(&r, judge, judge_data, err);
}
