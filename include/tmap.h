/*
 * tmap.h - the public API of libtmap.
 *
 * tmap picks the part of an instruction-tuning pool that best fits one target
 * model and one downstream task (Task-Model Adaptation with efficient
 * Proxies, after arXiv 2605.09665). This header is all a caller needs; every
 * type behind a `struct tmap_*` pointer is opaque.
 *
 * Conventions, after llama.h and SQLite:
 *   - handles are created by tmap_<noun>_load/create and released by
 *     tmap_<noun>_free (which accept NULL);
 *   - options are value structs obtained from tmap_<noun>_default_params(),
 *     so new fields never break callers;
 *   - every fallible call returns an enum tmap_status and, when it is not
 *     TMAP_OK, fills the caller's struct tmap_error with a message that names
 *     the file, line or value at fault;
 *   - the library never exits and never writes to stdout.
 */
#ifndef TMAP_H
#define TMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TMAP_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Status codes double as the CLI's exit statuses. */
enum tmap_status {
    TMAP_OK        = 0,
    TMAP_ERR_USAGE = 1, /* a bad argument or option value */
    TMAP_ERR_DATA  = 2, /* malformed input records */
    TMAP_ERR_IO    = 3, /* a file could not be opened, read or written */
    TMAP_ERR_MODEL = 4, /* a model could not be loaded, created or run */
    TMAP_ERR_NOMEM = 5, /* out of memory */
};

struct tmap_error {
    enum tmap_status status;
    char message[4096]; /* one or more lines, no trailing newline */
};

/* A short name for a status ("data error", ...). */
const char *tmap_status_name(enum tmap_status status);

/* Receives notices that are not errors (a skipped byte-order mark, a blank
 * line); `message` has the same file:line form as errors. */
typedef void (*tmap_notice_fn)(const char *message, void *user_data);

/* ------------------------------------------------------------------------ */
/* Library                                                                  */
/* ------------------------------------------------------------------------ */

/* Call once before loading models; quiet=true silences llama.cpp's log. */
void tmap_backend_init(bool quiet);
void tmap_backend_free(void);

/* tmap's version and a one-line description of the build (llama.cpp commit,
 * compiler, build type, sanitizers, ggml backends). */
const char *tmap_version(void);
const char *tmap_build_info(void);

/* ------------------------------------------------------------------------ */
/* Data: a pool of instruction records                                      */
/* ------------------------------------------------------------------------ */

/* Record formats, detected per record (DESIGN.md section 9). */
enum tmap_format {
    TMAP_FORMAT_ALPACA = 0, /* instruction, input, output */
    TMAP_FORMAT_GSM8K,      /* question, answer ("... #### 42") */
    TMAP_FORMAT_SHAREGPT,   /* conversations: [{from, value}] */
    TMAP_FORMAT_OPENAI,     /* messages: [{role, content}] */
    TMAP_FORMAT_GENERIC,    /* prompt, response | completion */
    TMAP_FORMAT_MC,         /* question, choices, answerKey */
    TMAP_FORMAT_CUSTOM,     /* keys named by tmap_pool_params.fields */
    TMAP_FORMAT_COUNT
};

/* "alpaca", "gsm8k", ... */
const char *tmap_format_name(enum tmap_format format);

enum tmap_on_error {
    TMAP_ON_ERROR_FAIL = 0, /* read everything, then fail with a summary */
    TMAP_ON_ERROR_SKIP,     /* set bad records aside and go on */
};

/* Explicit keys that override format detection; NULL fields are unused.
 * prompt and response are required when any is set. */
struct tmap_field_map {
    const char *prompt;
    const char *response;
    const char *answer;
};

struct tmap_pool_params {
    enum tmap_on_error    on_error;
    const char           *rejects_path;     /* SKIP: JSONL of rejects, NULL = none */
    struct tmap_field_map fields;
    const char           *id_field;         /* key of the sample id ("id") */
    size_t                max_record_bytes; /* longer records are rejected */
    tmap_notice_fn        notice;           /* may be NULL */
    void                 *notice_user_data;
};

struct tmap_pool_params tmap_pool_default_params(void);

struct tmap_pool;

/* Reads a JSONL file or a JSON array of records. The file is mapped, not
 * copied: the pool keeps an index entry per record and re-parses a record
 * when its text is asked for. */
enum tmap_status tmap_pool_load(const char *path, const struct tmap_pool_params *params,
                                struct tmap_pool **out, struct tmap_error *err);
void tmap_pool_free(struct tmap_pool *pool);

size_t      tmap_pool_size(const struct tmap_pool *pool);       /* accepted records */
size_t      tmap_pool_n_rejected(const struct tmap_pool *pool); /* SKIP mode only */
size_t      tmap_pool_n_blank_lines(const struct tmap_pool *pool);
const char *tmap_pool_path(const struct tmap_pool *pool);

/* What the index knows of record i without parsing it again. */
struct tmap_record {
    const char      *id;        /* the id field, or the line number as text */
    size_t           line;      /* 1-based line where the record starts */
    enum tmap_format format;
    uint8_t          hash[16];  /* xxh3-128 of normalised prompt + response */
    const char      *raw;       /* the record's input bytes, exactly */
    size_t           raw_bytes;
};

enum tmap_status tmap_pool_record(const struct tmap_pool *pool, size_t i,
                                  struct tmap_record *out);

/* Index of the record with this id, or SIZE_MAX. */
size_t tmap_pool_find(const struct tmap_pool *pool, const char *id);

/* One conversation turn; role is "system", "user" or "assistant". */
struct tmap_turn {
    const char *role;
    const char *content;
};

/* A record's text. prompt is every turn before the last assistant turn
 * (rendered as "Role: text" lines when there is more than one turn), response
 * is that last assistant turn. Owned by the sample: tmap_sample_clear frees. */
struct tmap_sample {
    const char      *id;
    size_t           line;
    enum tmap_format format;
    char            *prompt;
    char            *response;
    char            *answer;       /* the task's short answer, or NULL */
    struct tmap_turn *turns;       /* the prompt as chat turns */
    size_t           n_turns;
    char           **choices;      /* multiple choice only */
    size_t           n_choices;
    int              answer_index; /* index into choices, -1 when none */
    void            *arena_;       /* private */
};

enum tmap_status tmap_pool_sample(const struct tmap_pool *pool, size_t i,
                                  struct tmap_sample *out, struct tmap_error *err);
void tmap_sample_clear(struct tmap_sample *sample);

/* Five-number-and-more summary of a length distribution. */
struct tmap_length_summary {
    double min, p25, p50, p75, p95, max, mean;
};

struct tmap_model;

struct tmap_pool_stats {
    size_t n_records;
    size_t n_rejected;
    size_t n_blank_lines;
    size_t n_by_format[TMAP_FORMAT_COUNT];
    struct tmap_length_summary prompt_chars, response_chars;
    bool   has_tokens;                      /* a model was given */
    struct tmap_length_summary prompt_tokens, response_tokens;
};

/* Lengths in characters (UTF-8 code points) and, when model is not NULL, in
 * the model's tokens. */
enum tmap_status tmap_pool_stats(const struct tmap_pool *pool, struct tmap_model *model,
                                 struct tmap_pool_stats *out, struct tmap_error *err);

/* ------------------------------------------------------------------------ */
/* Model: a thin layer over llama.cpp                                       */
/* ------------------------------------------------------------------------ */

struct tmap_model_params {
    const char *path;
    int32_t n_gpu_layers; /* -ngl: layers to offload, -1 = all */
    int32_t n_threads;    /* -t: 0 = all cores */
    int32_t n_ctx;        /* -c: context per sequence, 0 = min(trained, 4096) */
    int32_t n_batch;      /* -b: tokens per llama_decode call */
    int32_t n_seq;        /* -np: sequences decoded side by side */
    bool    use_mmap;     /* false for training (the optimiser writes weights) */
};

struct tmap_model_params tmap_model_default_params(void);

enum tmap_status tmap_model_load(const struct tmap_model_params *params,
                                 struct tmap_model **out, struct tmap_error *err);
void tmap_model_free(struct tmap_model *model);

struct tmap_model_info {
    char     arch[64];
    char     description[128];
    char     fingerprint[33]; /* hex xxh3-128 of the GGUF header + tensor index + size */
    uint64_t n_params;
    uint64_t file_bytes;
    int32_t  n_vocab;
    int32_t  n_ctx_train;
    int32_t  n_embd;
    int32_t  n_layer;
    int32_t  n_head;
    bool     has_chat_template;
    int32_t  n_ctx;   /* per sequence, as loaded */
    int32_t  n_batch;
    int32_t  n_seq;
};

void tmap_model_get_info(const struct tmap_model *model, struct tmap_model_info *out);

/* Tokens of text (BOS first when add_bos); *tokens is malloc'd, caller frees. */
enum tmap_status tmap_model_tokenize(struct tmap_model *model, const char *text, bool add_bos,
                                     int32_t **tokens, int32_t *n_tokens,
                                     struct tmap_error *err);

enum tmap_template {
    TMAP_TEMPLATE_PLAIN = 0, /* "Query: ...\nAnswer: " */
    TMAP_TEMPLATE_CHAT,      /* the model's own chat template */
};

/* The text that precedes the response when the model reads this sample.
 * TMAP_TEMPLATE_CHAT on a model without a chat template falls back to plain
 * and sets *fell_back (may be NULL). *out is malloc'd. */
enum tmap_status tmap_model_format_prompt(struct tmap_model *model, const struct tmap_sample *sample,
                                          enum tmap_template tmpl, char **out, bool *fell_back,
                                          struct tmap_error *err);

/* One teacher-forced scoring request: log p(response | prompt). The prompt
 * should start with BOS; the response is scored token by token (it may be
 * empty when the request only wants an embedding or choices). Optional
 * extras, read from the same forward pass:
 *   embedding: n_embd floats, the mean over every token after BOS of the
 *              last hidden state, L2-normalised (costs logits for every
 *              position of the batch, so ask only where needed);
 *   choices:   log-probabilities (full-vocabulary softmax) of these tokens
 *              as the next token after prompt + response, written to
 *              choice_logprobs (how rating indicators read a 1..6 score). */
struct tmap_logprob_request {
    const int32_t *prompt;
    int32_t        n_prompt;
    const int32_t *response;
    int32_t        n_response;
    float         *embedding;       /* NULL = none */
    const int32_t *choices;         /* NULL = none */
    int32_t        n_choices;
    double        *choice_logprobs; /* n_choices entries */
};

/* Context overflow policy: when prompt + response exceed the per-sequence
 * context, prompt tokens are dropped from the left (BOS is kept); when the
 * response alone cannot fit, the request is skipped. Never truncate the
 * response: the score would describe a different sample. */
enum tmap_fit {
    TMAP_FIT_WHOLE = 0,
    TMAP_FIT_TRUNCATED, /* n_prompt_dropped prompt tokens were dropped */
    TMAP_FIT_SKIPPED,   /* sum_logprob is 0 and n_tokens 0 */
};

struct tmap_logprob_result {
    double        sum_logprob; /* natural log, summed over response tokens */
    int32_t       n_tokens;    /* response tokens scored */
    int32_t       n_prompt_dropped;
    enum tmap_fit fit;
};

/* Scores n requests, packing many sequences into every llama_decode call. */
enum tmap_status tmap_model_logprob(struct tmap_model *model,
                                    const struct tmap_logprob_request *requests, size_t n,
                                    struct tmap_logprob_result *results,
                                    struct tmap_error *err);

/* Work done by a model handle so far; tests and benchmarks read it. */
struct tmap_model_counters {
    uint64_t n_decode_calls;
    uint64_t n_tokens_decoded;
};

void tmap_model_get_counters(const struct tmap_model *model, struct tmap_model_counters *out);

/* ------------------------------------------------------------------------ */
/* Test models                                                              */
/* ------------------------------------------------------------------------ */

/* A random-init Llama with a real tokenizer, for tests and the demo. The
 * same params give the same bytes. */
struct tmap_model_create_params {
    int32_t     n_embd;
    int32_t     n_layer;
    int32_t     n_head;
    int32_t     n_head_kv;
    int32_t     n_ff;
    int32_t     n_ctx;
    uint64_t    seed;
    float       init_std;      /* standard deviation of the weight matrices */
    const char *vocab_path;    /* vocab-only GGUF, NULL = the bundled Llama-2 one */
    const char *chat_template; /* stored as tokenizer.chat_template, NULL = none */
};

struct tmap_model_create_params tmap_model_create_default_params(void);

enum tmap_status tmap_model_create(const char *out_path, const struct tmap_model_create_params *params,
                                   struct tmap_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TMAP_H */
