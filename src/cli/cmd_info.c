/*
 * cmd_info.c - `tmap info -m MODEL`: what a GGUF model is, as tmap sees it.
 * The model may also come as the one positional argument (`tmap info
 * FILE`), the way people first type it.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>

static void print_text(const struct tmap_model_info *in, const char *path)
{
    printf("model          %s\n", path);
    printf("architecture   %s\n", in->arch);
    printf("description    %s\n", in->description);
    printf("parameters     %llu\n", (unsigned long long)in->n_params);
    printf("file bytes     %llu\n", (unsigned long long)in->file_bytes);
    printf("vocabulary     %d tokens\n", in->n_vocab);
    printf("context        %d tokens (trained)\n", in->n_ctx_train);
    printf("layers         %d\n", in->n_layer);
    printf("width          %d (heads %d)\n", in->n_embd, in->n_head);
    printf("chat template  %s\n", in->has_chat_template ? "yes" : "no (prompts use the plain template)");
    printf("fingerprint    %s\n", in->fingerprint);
    if (in->trained_on[0])
        printf("trained on     %s\n", in->trained_on);
    if (in->eval_on[0])
        printf("held-out loss  %.3f bits/byte, %.4f nats/token (response tokens of %s)\n", in->eval_response_bpb,
               in->eval_response_loss, in->eval_on);
}

static void print_json(const struct tmap_model_info *in, const char *path)
{
    printf("{\"model\": ");
    cli_print_json_string(path);
    printf(", \"architecture\": ");
    cli_print_json_string(in->arch);
    printf(", \"description\": ");
    cli_print_json_string(in->description);
    printf(", \"n_params\": %llu, \"file_bytes\": %llu, \"n_vocab\": %d, \"n_ctx_train\": %d, "
           "\"n_layer\": %d, \"n_embd\": %d, \"n_head\": %d, \"chat_template\": %s, \"fingerprint\": \"%s\"",
           (unsigned long long)in->n_params, (unsigned long long)in->file_bytes, in->n_vocab,
           in->n_ctx_train, in->n_layer, in->n_embd, in->n_head,
           in->has_chat_template ? "true" : "false", in->fingerprint);
    printf(", \"trained_on\": ");
    cli_print_json_string(in->trained_on);
    printf(", \"eval_on\": ");
    cli_print_json_string(in->eval_on);
    if (isfinite(in->eval_response_loss))
        printf(", \"eval_response_loss\": %.6f", in->eval_response_loss);
    else
        printf(", \"eval_response_loss\": null");
    if (isfinite(in->eval_response_bpb))
        printf(", \"eval_response_bpb\": %.6f}\n", in->eval_response_bpb);
    else
        printf(", \"eval_response_bpb\": null}\n");
}

int cmd_info(int argc, char **argv)
{
    struct tmap_model_params mp = tmap_model_default_params();
    /* Describing a model needs no real context: keep the KV cache tiny so
     * `info` on a 70B model costs no memory. */
    mp.n_ctx = 64;
    mp.n_seq = 1;
    mp.n_batch = 64;
    mp.n_gpu_layers = 0;
    bool json = false;
    const struct cli_option options[] = {
        { "-m|--model", CLI_STRING, &mp.path, "FILE", "GGUF model to describe", 0, 0, NULL },
        { "--json", CLI_FLAG, &json, NULL, "print one JSON object", 0, 0, NULL },
        CLI_OPT_END,
    };
    const struct cli_spec spec = { "tmap info [-m] MODEL [--json]", NULL, options, 0, 1 };
    const char *positional[1];
    size_t n_pos;
    int rc = cli_parse(&spec, argc, argv, positional, &n_pos);
    if (rc >= 0)
        return rc;
    if (n_pos == 1 && mp.path)
        return cli_usage_error(&spec, "two models given ('%s' and -m '%s'): give one", positional[0], mp.path);
    if (n_pos == 1)
        mp.path = positional[0];
    if (!mp.path)
        return cli_usage_error(&spec, "no model given (-m FILE.gguf)");

    tmap_backend_init(true);
    struct tmap_error err = { 0 };
    struct tmap_model *model;
    if (tmap_model_load(&mp, &model, &err))
        rc = cli_report(&err);
    else {
        struct tmap_model_info info;
        tmap_model_get_info(model, &info);
        if (json)
            print_json(&info, mp.path);
        else
            print_text(&info, mp.path);
        tmap_model_free(model);
        rc = 0;
    }
    tmap_backend_free();
    return rc;
}
