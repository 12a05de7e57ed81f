/*
 * fuzz_prompt.c - the prompt layout: records of any format laid out under
 * the plain template and under two chat templates (ChatML and Llama 3,
 * through llama.cpp), then tokenized. The model is created once, small.
 * The input's first byte picks the chat template; the rest is records.
 */
#include "fuzz.h"

#include <string.h>

static struct tmap_model *models[2];

static const char *const templates[2] = {
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tmap_backend_init(true);
    for (int t = 0; t < 2; t++) {
        struct tmap_model_create_params cp = tmap_model_create_default_params();
        cp.n_embd = 32;
        cp.n_layer = 1;
        cp.n_head = 2;
        cp.n_head_kv = 2;
        cp.n_ff = 64;
        cp.chat_template = templates[t];
        char name[32];
        snprintf(name, sizeof name, "prompt-model-%d.gguf", t);
        const char *path = fuzz_file(name, (const uint8_t *)"", 0);
        struct tmap_error err = { 0 };
        if (tmap_model_create(path, &cp, &err) != TMAP_OK) {
            fprintf(stderr, "fuzz_prompt: %s\n", err.message);
            abort();
        }
        struct tmap_model_params mp = tmap_model_default_params();
        mp.path = path;
        mp.n_ctx = 256;
        mp.n_threads = 1;
        mp.n_seq = 1;
        if (tmap_model_load(&mp, &models[t], &err) != TMAP_OK) {
            fprintf(stderr, "fuzz_prompt: %s\n", err.message);
            abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct tmap_model *m = models[data[0] & 1];
    const char *path = fuzz_file("prompt", data + 1, size - 1);
    struct tmap_pool_params pp = fuzz_pool_params();
    struct tmap_pool *pool = NULL;
    struct tmap_error err = { 0 };
    if (tmap_pool_load(path, &pp, &pool, &err) != TMAP_OK)
        return 0;
    for (size_t i = 0; i < tmap_pool_size(pool) && i < 8; i++) {
        struct tmap_sample s;
        if (tmap_pool_sample(pool, i, &s, &err) != TMAP_OK)
            continue;
        for (int t = 0; t < 2; t++) {
            enum tmap_template tmpl = t ? TMAP_TEMPLATE_CHAT : TMAP_TEMPLATE_PLAIN;
            char *prompt = NULL;
            bool fell_back = false;
            if (tmap_model_format_prompt(m, &s, tmpl, &prompt, &fell_back, &err) != TMAP_OK)
                continue;
            if (fell_back) /* both models carry a template */
                abort();
            int32_t *tokens = NULL, n = 0;
            if (tmap_model_tokenize_prompt(m, prompt, tmpl, &tokens, &n, &err) == TMAP_OK)
                free(tokens);
            free(prompt);
        }
        tmap_sample_free(&s);
    }
    tmap_pool_free(pool);
    return 0;
}
