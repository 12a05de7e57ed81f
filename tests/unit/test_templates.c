/*
 * test_templates.c - chat templates, family by family: the tokens tmap
 * scores for a multi-turn record under --template chat (the prompt laid out
 * by tmap_model_format_prompt, then the response as the assistant turn)
 * must be exactly the tokens llama.cpp gives the whole conversation when the
 * test lays it out and tokenizes it by hand (llama_chat_apply_template, then
 * llama_tokenize with special tokens parsed), up to the template's
 * end-of-turn markup after the response. What `tmap finetune --template
 * chat` trains is that whole conversation: the same tokens, then the
 * markup as llama.cpp tokenizes it, holding an end-of-generation token.
 *
 * Each family's model is created with its own vocabulary (llama.cpp's
 * models/ggml-vocab-*.gguf, copied by scripts/llama-setup.sh); a build
 * against a llama.cpp without those copies skips.
 */
#define _XOPEN_SOURCE 700 /* nftw, for helpers.h */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "model/model.h"
#include "tmap.h"
#include "train/finetune.h"

#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

/* A template given as Jinja text, as real models store it: llama.cpp
 * recognises the family from its markers. Written for this test. */
static const char chatml_jinja[] =
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char llama3_jinja[] =
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n'"
    " + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

struct family {
    const char *vocab;    /* models/ggml-vocab-NAME.gguf */
    const char *template; /* a llama.cpp template name, or Jinja text */
    const char *label;
};

static const struct family families[] = {
    { "qwen2", chatml_jinja, "chatml (Jinja text), Qwen2 vocabulary" },
    { "llama-bpe", llama3_jinja, "llama3 (Jinja text), Llama 3 vocabulary" },
    { "llama-bpe", "llama3", "llama3, Llama 3 vocabulary" },
    { "llama-spm", "llama2", "llama2, Llama 2 vocabulary" },
    { "llama-spm", "mistral-v7", "mistral-v7, SentencePiece vocabulary" },
    { "phi-3", "phi3", "phi3, Phi-3 vocabulary" },
    { "gemma-4", "gemma", "gemma, Gemma vocabulary" },
    { "deepseek-llm", "deepseek", "deepseek, DeepSeek LLM vocabulary" },
    { "command-r", "command-r", "command-r, Command-R vocabulary" },
    { "falcon", "falcon3", "falcon3, Falcon vocabulary" },
};

/* System, user, assistant, user, then the response under test. */
static const char record[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You solve grade-school maths.\"}, "
    "{\"role\": \"user\", \"content\": \"What is 2 + 3?\"}, "
    "{\"role\": \"assistant\", \"content\": \"2 + 3 = 5. The answer is 5.\"}, "
    "{\"role\": \"user\", \"content\": \"And 7 times 6?\"}, "
    "{\"role\": \"assistant\", \"content\": \"7 * 6 = 42, so the answer is 42.\"}]}\n";

static const struct llama_chat_message conversation[] = {
    { "system", "You solve grade-school maths." },
    { "user", "What is 2 + 3?" },
    { "assistant", "2 + 3 = 5. The answer is 5." },
    { "user", "And 7 times 6?" },
    { "assistant", "7 * 6 = 42, so the answer is 42." },
};

static int setup(void **state)
{
    (void)state;
    return test_begin_group(tmpdir, sizeof tmpdir, "templates") ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return test_end_group(NULL, tmpdir);
}

/* The whole conversation, laid out and tokenized the way llama.cpp's own
 * tools do it: the template applied to every turn, then one tokenization
 * with special tokens parsed (and BOS where the vocabulary adds one). */
static int32_t *tokenize_by_hand(const char *model_path, const char *tmpl, int32_t *n_out, int32_t at,
                                 char *piece, size_t n_piece)
{
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    assert_non_null(model);
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    size_t n_msg = sizeof conversation / sizeof conversation[0];
    char text[8192];
    int32_t len = llama_chat_apply_template(tmpl, conversation, n_msg, false, text, sizeof text);
    assert_true(len > 0 && len < (int32_t)sizeof text);
    text[len] = '\0';
    int32_t cap = len + 8;
    int32_t *tokens = malloc((size_t)cap * sizeof *tokens);
    assert_non_null(tokens);
    *n_out = llama_tokenize(vocab, text, len, tokens, cap, true, true);
    assert_true(*n_out > 0);
    /* The text of token `at`, where tmap's response ends. */
    int32_t n = at >= 0 && at < *n_out ? llama_token_to_piece(vocab, tokens[at], piece, (int32_t)n_piece - 1, 0, true) : 0;
    piece[n > 0 ? n : 0] = '\0';
    llama_model_free(model);
    return tokens;
}

/* The record as tmap finetune trains it (train/corpus.c): the scored
 * prompt and response tokens, then the template's end-of-turn markup. Where
 * the response's last token does not merge with that markup, the markup is
 * exactly the tokens llama.cpp gives the conversation after the response;
 * either way the record ends its turn with a token that stops generation. */
static void check_training_layout(const struct family *f, struct tmap_model *m, const struct tmap_pool *pool,
                                  const int32_t *pt, int32_t np, const int32_t *rt, int32_t nr,
                                  const int32_t *hand, int32_t nh)
{
    struct ft_corpus c;
    struct tmap_error err = { 0 };
    if (ft_corpus_build(m, pool, NULL, 1, TMAP_TEMPLATE_CHAT, &c, &err))
        fail_msg("%s: %s", f->label, err.message);
    const struct ft_seq *q = &c.seqs[0];
    assert_int_equal(q->n_prompt, np);
    assert_int_equal(q->n_response, nr);
    assert_memory_equal(q->tokens, pt, (size_t)np * sizeof *pt);
    assert_memory_equal(q->tokens + np, rt, (size_t)nr * sizeof *rt);
    int32_t n_tail = q->n_tokens - np - nr;
    bool merged = rt[nr - 1] != hand[np + nr - 1];
    bool stops = false;
    for (int32_t i = np + nr; i < q->n_tokens; i++)
        stops = stops || llama_vocab_is_eog(m->vocab, q->tokens[i]);
    /* The conversation's tail, then EOS only where that tail stops nothing
     * (deepseek's "<|EOT|>" is text in the DeepSeek LLM vocabulary). Merged:
     * the markup is text, and only its stop can be checked. */
    int32_t n_hand = nh - np - nr;
    bool hand_stops = false;
    for (int32_t i = np + nr; i < nh; i++)
        hand_stops = hand_stops || llama_vocab_is_eog(m->vocab, hand[i]);
    int32_t n_eos = hand_stops ? 0 : 1;
    bool as_llama = merged ||
                    (n_tail == n_hand + n_eos &&
                     memcmp(q->tokens + np + nr, hand + np + nr, (size_t)n_hand * sizeof *hand) == 0 &&
                     (!n_eos || q->tokens[q->n_tokens - 1] == llama_vocab_eos(m->vocab)));
    if (!as_llama || !stops) {
        fprintf(stderr, "%s: a trained tail of %d tokens, the conversation's %d after the response:\n", f->label,
                n_tail, nh - np - nr);
        for (int32_t i = np + nr; i < q->n_tokens || i < nh; i++)
            fprintf(stderr, "  %3d  trained %7d  hand %7d\n", i, i < q->n_tokens ? q->tokens[i] : -1,
                    i < nh ? hand[i] : -1);
        fail_msg("%s: the trained record does not end its turn as the template does%s", f->label,
                 stops ? "" : " (no end-of-generation token)");
    }
    ft_corpus_free(&c);
}

static void check_family(const struct family *f, const char *vocab_dir)
{
    char vocab[1024], model_path[512], data[512];
    snprintf(vocab, sizeof vocab, "%s/ggml-vocab-%s.gguf", vocab_dir, f->vocab);
    snprintf(model_path, sizeof model_path, "%s/%s.gguf", tmpdir, f->vocab);
    snprintf(data, sizeof data, "%s/chat.jsonl", tmpdir);
    test_write_file(data, record);

    struct tmap_model_create_params cp = tmap_model_create_default_params();
    cp.n_embd = 16;
    cp.n_layer = 1;
    cp.n_head = 2;
    cp.n_head_kv = 2;
    cp.n_ctx = 512;
    cp.vocab_path = vocab;
    cp.chat_template = f->template;
    struct tmap_error err = { 0 };
    if (tmap_model_create(model_path, &cp, &err))
        fail_msg("%s: %s", f->label, err.message);

    struct tmap_model *m = test_load_model(model_path, 512, 512, 1);
    struct tmap_pool *pool = test_load_pool(data);
    struct tmap_sample s;
    assert_int_equal(tmap_pool_sample(pool, 0, &s, &err), TMAP_OK);
    assert_int_equal(s.n_turns, 4); /* the last assistant turn is the response */

    /* What tmap scores (score.c, proxy.c, eval.c): the prompt's tokens
     * (control tokens parsed), then the response's as they follow it. */
    char *prompt = NULL;
    bool fell_back = true;
    assert_int_equal(tmap_model_format_prompt(m, &s, TMAP_TEMPLATE_CHAT, &prompt, &fell_back, &err), TMAP_OK);
    assert_false(fell_back);
    int32_t *pt, np, *rt, nr;
    assert_int_equal(tmap_model_tokenize_prompt(m, prompt, TMAP_TEMPLATE_CHAT, &pt, &np, &err), TMAP_OK);
    assert_int_equal(tmap_model_tokenize_response(m, &s, TMAP_TEMPLATE_CHAT, &rt, &nr, &err), TMAP_OK);

    int32_t nh;
    char last_hand[64] = "", last_tmap[64] = "";
    int32_t *hand = tokenize_by_hand(model_path, f->template, &nh, np + nr - 1, last_hand, sizeof last_hand);
    /* The response must be followed only by the end-of-turn markup. Its last
     * token may merge with that markup where the vocabulary has no control
     * token for it (Gemma's "<end_of_turn>" in the Gemma 4 vocabulary is
     * text): then its text must begin the merged token's. */
    bool same = nr > 0 && np + nr <= nh && nh - (np + nr) <= 8; /* the markup as text: up to 8 */
    for (int32_t i = 0; same && i < np; i++)
        same = pt[i] == hand[i];
    for (int32_t i = 0; same && i + 1 < nr; i++)
        same = rt[i] == hand[np + i];
    if (same && rt[nr - 1] != hand[np + nr - 1]) {
        int32_t n = llama_token_to_piece(m->vocab, rt[nr - 1], last_tmap,
                                         sizeof last_tmap - 1, 0, true);
        last_tmap[n > 0 ? n : 0] = '\0';
        same = n > 0 && strncmp(last_hand, last_tmap, strlen(last_tmap)) == 0 && strlen(last_hand) > strlen(last_tmap);
    }
    if (!same) {
        fprintf(stderr, "%s: tmap %d prompt + %d response tokens, by hand %d\n", f->label, np, nr, nh);
        for (int32_t i = 0; i < nh || i < np + nr; i++)
            fprintf(stderr, "  %3d  tmap %7d  hand %7d\n", i, i < np ? pt[i] : i < np + nr ? rt[i - np] : -1,
                    i < nh ? hand[i] : -1);
        fail_msg("%s: tmap's tokens differ from llama.cpp's layout of the conversation", f->label);
    }
    check_training_layout(f, m, pool, pt, np, rt, nr, hand, nh);
    free(hand);
    free(rt);
    free(pt);
    free(prompt);
    tmap_sample_free(&s);
    tmap_pool_free(pool);
    tmap_model_free(m);
    unlink(model_path);
}

static void test_every_family(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        check_family(&families[i], TMAP_VOCAB_DIR);
}

int main(void)
{
    char marker[1024];
    snprintf(marker, sizeof marker, "%s/.all", TMAP_VOCAB_DIR);
    if (access(marker, F_OK) != 0) {
        printf("SKIP: %s lacks llama.cpp's vocabularies (scripts/llama-setup.sh copies them)\n", TMAP_VOCAB_DIR);
        return 77; /* ctest's SKIP_RETURN_CODE */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_family),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
