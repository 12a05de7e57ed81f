/*
 * cmd_finetune.c - `tmap finetune`: train a GGUF model on a pool with
 * llama.cpp's training API; and `tmap model pretrain`: the small GSM8K base
 * model tmap trains itself (a created Llama, then the same training).
 *
 * Results go to stdout, one line per epoch (epoch 0 is the model before
 * training). The per-step progress line goes to stderr, only on a terminal
 * and without --quiet.
 */
#include "util/clock.h"
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Printing ------------------------------------------------------------ */

static void print_loss(double v)
{
    if (isfinite(v))
        printf(" %9.4f", v);
    else
        printf(" %9s", "-");
}

static void print_header(void)
{
    printf("%5s %9s %9s %9s %9s %9s %9s %8s %7s\n", "epoch", "train", "val", "val_resp", "eval_resp",
           "eval_bpb", "lr", "tok/s", "seconds");
}

static void print_epoch(const struct tmap_finetune_epoch *e)
{
    printf("%5d", e->epoch);
    print_loss(e->train_loss);
    print_loss(e->val_loss);
    print_loss(e->val_response_loss);
    print_loss(e->eval_response_loss);
    print_loss(e->eval_response_bpb);
    if (isfinite(e->lr))
        printf(" %9.2e", e->lr);
    else
        printf(" %9s", "-");
    if (e->train_seconds > 0)
        printf(" %8.0f %7.1f\n", (double)e->n_tokens / e->train_seconds, e->train_seconds);
    else
        printf(" %8s %7s\n", "-", "-");
    fflush(stdout);
}

struct progress_state {
    double last_draw;
    bool   header_done;
};

/* Step lines are redrawn in place at most 5 times a second; epoch lines
 * are the command's output. */
static void on_progress(const struct tmap_finetune_progress *p, void *user_data)
{
    struct progress_state *ps = user_data;
    bool draw = !cli_quiet && isatty(STDERR_FILENO);
    if (p->epoch_done) {
        if (draw && ps->last_draw > 0)
            fputs("\r\033[K", stderr);
        if (!ps->header_done)
            print_header();
        ps->header_done = true;
        print_epoch(p->epoch_done);
        return;
    }
    double now = tmap_now_seconds();
    if (!draw || (now - ps->last_draw < 0.2 && p->step < p->n_steps))
        return;
    ps->last_draw = now;
    double eta = p->step > 0 ? p->seconds / (double)p->step * (double)(p->n_steps - p->step) : 0;
    fprintf(stderr, "\repoch %d/%d  step %lld/%lld  loss %.4f  lr %.2e  %.0fs left   ", p->epoch,
            p->n_epochs, (long long)p->step, (long long)p->n_steps, p->train_loss, p->lr, eta);
    fflush(stderr);
}

static void print_summary(const struct tmap_finetune_result *r, const char *out)
{
    if (!r->llama_patched)
        fprintf(stderr, "tmap: warning: this llama.cpp lacks tmap's training patch: token_embd, attn_k and attn_v "
                "did not train (scripts/llama-patches/README.md)\n");
    if (cli_quiet)
        return;
    fprintf(stderr, "tmap: trained %d tensors on %zu records%s (%lld windows of %d tokens), %zu held out; "
            "%.1f s; wrote %s\n", r->n_trained_tensors, r->n_train_records,
            r->layout == TMAP_TEMPLATE_CHAT ? " in the chat layout" : "", (long long)r->n_train_windows, r->n_ctx,
            r->n_val_records, r->seconds, out);
}

/* ---- Running ------------------------------------------------------------- */

static enum tmap_status load_eval(const char *path, struct tmap_pool **out, struct tmap_error *err)
{
    *out = NULL;
    if (!path)
        return TMAP_OK;
    struct tmap_pool_params pp = tmap_pool_default_params();
    pp.notice = cli_notice;
    return tmap_pool_load(path, &pp, out, err);
}

/* Loads the pools, trains, prints; returns the exit status. */
static int run(struct tmap_finetune_params *fp, const char *data_path, const char *eval_path,
               struct cli_data_options *d)
{
    struct tmap_error err = { 0 };
    struct tmap_pool *pool = NULL, *eval = NULL;
    struct tmap_finetune_result res;
    struct progress_state ps = { 0 };
    fp->progress = on_progress;
    fp->progress_user_data = &ps;
    fp->notice = cli_notice;
    int rc = 0;
    if (cli_load_pool(d, data_path, &pool, &err) || load_eval(eval_path, &eval, &err)) {
        rc = cli_report(&err);
    } else {
        fp->eval_pool = eval;
        if (tmap_finetune(pool, fp, &res, &err))
            rc = cli_report(&err);
        else
            print_summary(&res, fp->out_path);
    }
    tmap_pool_free(eval);
    tmap_pool_free(pool);
    return rc;
}

/* Options both commands take, after the model and data ones. */
#define TRAIN_OPTIONS(fp, eval)                                                                                \
    { "--epochs", CLI_INT, &(fp).n_epochs, "N", "epochs in all, earlier ones of a --resume included", -1e6, 1e6, NULL }, \
    { "--lr", CLI_FLOAT, &(fp).lr, "X", "peak learning rate (AdamW)", -1e6, 1e6, NULL },                      \
    { "--lr-min", CLI_FLOAT, &(fp).lr_min, "F", "the cosine decay ends at lr * F (default 0.1)", -1e6, 1e6, NULL }, \
    { "--warmup", CLI_FLOAT, &(fp).warmup, "F", "fraction of steps in linear warmup (default 0.05)", -1e6, 1e6, NULL }, \
    { "--weight-decay", CLI_FLOAT, &(fp).weight_decay, "X", "AdamW weight decay (default 0)", -1e6, 1e6, NULL }, \
    { "--train-layers", CLI_STRING, &(fp).train_layers, "SPEC", "train only these: layers N or N-M, name parts (attn,ffn,output), comma list", 0, 0, NULL }, \
    { "--val-split", CLI_FLOAT, &(fp).val_split, "F", "hold out this fraction of records (by --seed)", -1e6, 1e6, NULL }, \
    { "--first", CLI_SIZE, &(fp).n_first, "N", "train on the first N records of DATA only; the rest stay unseen (default: all)", 0, 1e12, NULL }, \
    { "--seed", CLI_U64, &(fp).seed, "S", "held-out records and data order (default 42)", 0, 0, NULL },       \
    { "--eval", CLI_STRING, &(eval), "FILE", "also report the response loss on this data, every epoch", 0, 0, NULL }, \
    { "--resume", CLI_FLAG, &(fp).resume, NULL, "go on from OUT's last checkpoint (STEM.ckpt.json)", 0, 0, NULL }

/* -c and friends, without -b and -np: training fixes both. */
#define TRAIN_MODEL_OPTIONS(mp)                                                                               \
    { "-t|--threads", CLI_INT, &(mp).n_threads, "N", "CPU threads (0 = all cores)", 0, 1024, NULL },          \
    { "-c|--ctx-size", CLI_INT, &(mp).n_ctx, "N", "training window in tokens, a multiple of 256 (default 512)", 0, 1 << 20, NULL }, \
    { "-ngl|--n-gpu-layers", CLI_INT, &(mp).n_gpu_layers, "N", "layers to offload to the GPU (-1 = all)", -1, 1 << 20, NULL }

int cmd_finetune(int argc, char **argv)
{
    struct tmap_finetune_params fp = tmap_finetune_default_params();
    struct cli_data_options d;
    cli_data_options_init(&d);
    const char *data = NULL, *eval = NULL;
    int template_choice = (int)fp.tmpl;
    const struct cli_option options[] = {
        { "-m|--model", CLI_STRING, &fp.model.path, "FILE", "GGUF model to train", 0, 0, NULL },
        { "-d|--data", CLI_STRING, &data, "FILE", "training records (JSONL or JSON array)", 0, 0, NULL },
        { "-o|--out", CLI_STRING, &fp.out_path, "FILE", "where to write the trained GGUF", 0, 0, NULL },
        { "--template", CLI_CHOICE, &template_choice, "plain|chat", "record layout (default plain); chat: the model's own template, ending each response with its end-of-turn markup", 0, 0, tmap_template_names() },
        TRAIN_OPTIONS(fp, eval),
        TRAIN_MODEL_OPTIONS(fp.model),
        CLI_DATA_OPTIONS(d),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap finetune -m MODEL -d DATA --out OUT.gguf [--template plain|chat] [--epochs N] [--lr X] [-c CTX] "
        "[--train-layers SPEC] [--val-split F] [--seed S] [--resume]",
        "Fine-tunes a GGUF model on a pool with llama.cpp's training API. Each record is read as scoring\n"
        "reads it (BOS, \"Query: PROMPT\\nAnswer:\", the response) plus EOS; with --template chat as the\n"
        "model's own turns, the response closed by the template's end-of-turn markup. Records are packed\n"
        "into windows of -c tokens, one AdamW step per window, learning rate warmed up then cosine-decayed.\n"
        "The training loss covers every token (llama.cpp cannot mask the prompt); val_resp and\n"
        "eval_resp are response-only losses, as scoring measures them. Every epoch writes\n"
        "STEM.ckpt-epochN.gguf and STEM.ckpt.json beside OUT; --resume goes on from there (weights,\n"
        "epoch, schedule and data order; not AdamW's moments).",
        options, 0, 0,
    };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    fp.tmpl = (enum tmap_template)template_choice;
    if (!fp.model.path)
        return cli_usage_error(&spec, "no model given (-m FILE.gguf)");
    if (!data)
        return cli_usage_error(&spec, "no training data given (-d FILE)");
    if (!fp.out_path)
        return cli_usage_error(&spec, "no output file given (--out FILE.gguf)");
    rc = cli_check_paths(&spec,
                         (const struct cli_path[]){ { "-m", fp.model.path }, { "-d", data }, { "--eval", eval },
                                                    { NULL, NULL } },
                         (const struct cli_path[]){ { "-o", fp.out_path }, { NULL, NULL } });
    if (rc == 0)
        rc = cli_data_options_finish(&d, data);
    if (rc == 0) {
        tmap_backend_init(true);
        rc = run(&fp, data, eval, &d);
        tmap_backend_free();
    }
    cli_data_options_free(&d);
    return rc;
}

/* ---- The base model ------------------------------------------------------ */

/* STEM.init.gguf beside OUT: the created model training starts from. */
static void init_path(const char *out, char *buf, size_t n)
{
    size_t len = strlen(out);
    if (len > 5 && strcmp(out + len - 5, ".gguf") == 0)
        len -= 5;
    snprintf(buf, n, "%.*s.init.gguf", (int)len, out);
}

int cmd_model_pretrain(int argc, char **argv)
{
    struct tmap_model_create_params cp = tmap_model_create_default_params();
    struct tmap_finetune_params fp = tmap_finetune_default_params();
    const char *data = NULL, *eval = NULL;
    /* The shipped base model (docs/base-model.md): see there for why. */
    cp.n_embd = 128;
    cp.n_layer = 4;
    cp.vocab_path = TMAP_GSM8K_VOCAB;
    fp.n_epochs = 5;
    fp.lr = 3e-3f;
    fp.model.n_ctx = 512;
    const struct cli_option options[] = {
        { "-d|--data", CLI_STRING, &data, "FILE", "training records (data/gsm8k/train.jsonl)", 0, 0, NULL },
        { "-o|--out", CLI_STRING, &fp.out_path, "FILE", "where to write the trained GGUF", 0, 0, NULL },
        { "--n-embd", CLI_INT, &cp.n_embd, "N", "width (default 128)", 8, 65536, NULL },
        { "--n-layer", CLI_INT, &cp.n_layer, "N", "layers (default 4)", 1, 1024, NULL },
        { "--n-head", CLI_INT, &cp.n_head, "N", "attention heads (default 4)", 1, 1024, NULL },
        { "--n-ff", CLI_INT, &cp.n_ff, "N", "feed-forward width (default about 8/3 n_embd)", 0, 1 << 20, NULL },
        { "--std", CLI_FLOAT, &cp.init_std, "X", "standard deviation of the initial weights (default 0.02)", 1e-6, 10, NULL },
        { "--vocab", CLI_STRING, &cp.vocab_path, "FILE", "tokenizer: a vocab-only GGUF or a SentencePiece .vocab (spm_train, BPE, --byte_fallback); default models/gsm8k-2k.vocab", 0, 0, NULL },
        { "--init-seed", CLI_U64, &cp.seed, "S", "seed of the initial weights (default 42)", 0, 0, NULL },
        TRAIN_OPTIONS(fp, eval),
        TRAIN_MODEL_OPTIONS(fp.model),
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap model pretrain -d data/gsm8k/train.jsonl --first 5473 --out FILE [--eval data/gsm8k/test.jsonl]",
        "Creates a small random-init Llama (as `tmap model create`, written to STEM.init.gguf) and trains\n"
        "it from scratch on the data with `tmap finetune`'s training. The defaults are those of the shipped\n"
        "GSM8K base model, models/gsm8k-base.gguf (docs/base-model.md): 128 wide, 4 layers, the 2,048-piece\n"
        "SentencePiece vocabulary models/gsm8k-2k.vocab, 512-token windows (its context), 5 epochs at\n"
        "lr 3e-3. With --eval the saved model\n"
        "records its held-out response loss (tmap info shows it). The same command gives the same bytes.",
        options, 0, 0,
    };
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (!data)
        return cli_usage_error(&spec, "no training data given (-d FILE)");
    if (!fp.out_path)
        return cli_usage_error(&spec, "no output file given (--out FILE.gguf)");
    rc = cli_check_paths(&spec,
                         (const struct cli_path[]){ { "-d", data }, { "--eval", eval }, { "--vocab", cp.vocab_path },
                                                    { NULL, NULL } },
                         (const struct cli_path[]){ { "-o", fp.out_path }, { NULL, NULL } });
    if (rc != 0)
        return rc;
    cp.n_head_kv = cp.n_head;
    /* A model trained from scratch on windows of -c tokens has never seen a
     * position past them: that is its context, and scoring and the proxy
     * must not go further (the proxy leaves out demonstrations to fit). */
    cp.n_ctx = fp.model.n_ctx;

    char init[4200];
    init_path(fp.out_path, init, sizeof init);
    fp.model.path = init;
    tmap_backend_init(true);
    struct tmap_error err = { 0 };
    if (tmap_model_create(init, &cp, &err)) {
        rc = cli_report(&err);
    } else {
        struct cli_data_options d; /* pretraining data: every record must read */
        cli_data_options_init(&d);
        rc = run(&fp, data, eval, &d);
    }
    tmap_backend_free();
    return rc;
}
