/*
 * cmd_model.c - `tmap model create`: a small random-init Llama with the
 * Llama-2 tokenizer (or another vocabulary), the same bytes for the same
 * arguments; tests and the demo use these, since no weights can be
 * downloaded. `tmap model quantize`: llama.cpp's quantizer. `tmap model
 * pretrain` lives with the training commands in cmd_finetune.c.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

/* A ChatML template, written out so that llama.cpp's template detection
 * recognises it; `--chat-template chatml` stores it in the model. */
static const char chatml_template[] =
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static int model_create(int argc, char **argv)
{
    struct tmap_model_create_params p = tmap_model_create_default_params();
    const char *out = NULL;
    char arch_help[160];
    snprintf(arch_help, sizeof arch_help, "architecture: %s (default llama)", tmap_model_arch_names());
    const struct cli_option options[] = {
        { "-o|--out", CLI_STRING, &out, "FILE", "where to write the GGUF", 0, 0, NULL },
        { "--n-embd", CLI_INT, &p.n_embd, "N", "width (default 64)", 8, 65536, NULL },
        { "--n-layer", CLI_INT, &p.n_layer, "N", "layers (default 2)", 1, 1024, NULL },
        { "--n-head", CLI_INT, &p.n_head, "N", "attention heads (default 4)", 1, 1024, NULL },
        { "--n-head-kv", CLI_INT, &p.n_head_kv, "N", "key/value heads (default = --n-head)", 1, 1024, NULL },
        { "--n-ff", CLI_INT, &p.n_ff, "N", "feed-forward width (default about 8/3 n_embd)", 0, 1 << 20, NULL },
        { "--ctx", CLI_INT, &p.n_ctx, "N", "trained context length (default 2048)", 16, 1 << 20, NULL },
        { "--seed", CLI_U64, &p.seed, "S", "random seed (default 42)", 0, 0, NULL },
        { "--std", CLI_FLOAT, &p.init_std, "X", "weight standard deviation (default 0.02)", 1e-6, 10, NULL },
        { "--vocab", CLI_STRING, &p.vocab_path, "FILE", "tokenizer: a vocab-only GGUF or a SentencePiece .vocab (default: the bundled Llama-2 GGUF)", 0, 0, NULL },
        { "--chat-template", CLI_STRING, &p.chat_template, "T", "store a chat template: 'chatml', a llama.cpp template name (llama3, mistral-v7, phi3, gemma, ...) or template text", 0, 0, NULL },
        { "--arch", CLI_STRING, &p.arch, "NAME", arch_help, 0, 0, NULL },
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap model create --out FILE [--n-embd 64] [--n-layer 2] [--seed S]",
        "Writes a random-init GGUF (a Llama unless --arch) with a real tokenizer.",
        options, 0, 0,
    };
    bool head_kv_given = cli_given(argc, argv, "--n-head-kv");
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc >= 0)
        return rc;
    if (!out)
        return cli_usage_error(&spec, "no output file given (--out FILE)");
    rc = cli_check_paths(&spec, (const struct cli_path[]){ { "--vocab", p.vocab_path }, { NULL, NULL } },
                         (const struct cli_path[]){ { "-o", out }, { NULL, NULL } });
    if (rc != 0)
        return rc;
    if (!head_kv_given)
        p.n_head_kv = p.n_head;
    if (p.chat_template && strcmp(p.chat_template, "chatml") == 0)
        p.chat_template = chatml_template;

    tmap_backend_init(true);
    struct tmap_error err = { 0 };
    rc = tmap_model_create(out, &p, &err) ? cli_report(&err) : 0;
    tmap_backend_free();
    if (rc == 0 && !cli_quiet)
        fprintf(stderr, "tmap: wrote %s\n", out);
    return rc;
}

static int model_quantize(int argc, char **argv)
{
    struct tmap_model_quantize_params p = tmap_model_quantize_default_params();
    char type_help[512];
    snprintf(type_help, sizeof type_help, "weight type: %s (default q8_0)", tmap_quant_type_names());
    const struct cli_option options[] = {
        { "--type", CLI_STRING, &p.type, "T", type_help, 0, 0, NULL },
        { "--keep-f32", CLI_STRING, &p.keep_f32, "SPEC", "keep these tensors F32, a --train-layers spec (layers N or N-M, name parts, comma list)", 0, 0, NULL },
        { "-t|--threads", CLI_INT, &p.n_threads, "N", "threads (0 = all cores)", 0, 1024, NULL },
        CLI_OPT_END,
    };
    const struct cli_spec spec = {
        "tmap model quantize IN.gguf OUT.gguf [--type q8_0] [--keep-f32 SPEC]",
        "Stores a model's weights in another type with llama.cpp's llama_model_quantize: f16 or q8_0\n"
        "to make it small, f32 to fine-tune it (llama.cpp trains F32 weights only), a k-quant to run it.\n"
        "Norms and other 1-d tensors stay F32. The metadata and tokenizer are kept. --keep-f32 SPEC\n"
        "keeps the tensors SPEC selects F32, so that --train-layers SPEC (tmap finetune, or the\n"
        "fine-tune proxy of tmap proxy, learn and run) trains them while the rest stays small.",
        options, 2, 2,
    };
    const char *pos[2];
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0)
        return rc;
    rc = cli_check_paths(&spec, (const struct cli_path[]){ { "IN", pos[0] }, { NULL, NULL } },
                         (const struct cli_path[]){ { "OUT", pos[1] }, { NULL, NULL } });
    if (rc != 0)
        return rc;
    tmap_backend_init(true);
    struct tmap_error err = { 0 };
    rc = tmap_model_quantize(pos[0], pos[1], &p, &err) ? cli_report(&err) : 0;
    tmap_backend_free();
    if (rc == 0 && !cli_quiet)
        fprintf(stderr, "tmap: wrote %s (%s%s%s)\n", pos[1], p.type, p.keep_f32 && *p.keep_f32 ? "; F32: " : "",
                p.keep_f32 && *p.keep_f32 ? p.keep_f32 : "");
    return rc;
}

int cmd_model(int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {
        { "create", model_create, "write a small random-init Llama GGUF" },
        { "pretrain", cmd_model_pretrain, "create a small Llama and train it on data (the GSM8K base model)" },
        { "quantize", model_quantize, "store a model's weights as f16, q8_0, a k-quant or f32" },
    };
    return cli_run_subcommand("model", subs, sizeof subs / sizeof subs[0], argc, argv);
}
