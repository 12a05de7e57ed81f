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

/* Every public function carries TMAP_API: the library is built with hidden
 * visibility, so libtmap.so exports these and nothing else (tests/cli/
 * symbols.sh checks). */
#ifndef TMAP_API
#define TMAP_API __attribute__((visibility("default")))
#endif

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
TMAP_API const char *tmap_status_name(enum tmap_status status);

/* Receives notices that are not errors (a skipped byte-order mark, a blank
 * line); `message` has the same file:line form as errors. */
typedef void (*tmap_notice_fn)(const char *message, void *user_data);

/* ------------------------------------------------------------------------ */
/* Library                                                                  */
/* ------------------------------------------------------------------------ */

/* Call once before loading models; quiet=true silences llama.cpp's log. */
TMAP_API void tmap_backend_init(bool quiet);
TMAP_API void tmap_backend_free(void);

/* tmap's version and a one-line description of the build (llama.cpp commit,
 * compiler, build type, sanitizers, ggml backends). */
TMAP_API const char *tmap_version(void);
TMAP_API const char *tmap_build_info(void);

/* ------------------------------------------------------------------------ */
/* Distributed runs (MPI; docs/distributed.md)                              */
/* ------------------------------------------------------------------------ */

/* Joins the MPI job when tmap was built with MPI and this process was
 * started by mpirun or srun; otherwise one rank, and MPI is never touched.
 * Call once before anything else, and tmap_dist_finalize at exit. A call
 * whose params say `distributed` is then collective: every rank makes it,
 * with the same inputs, and gets the same result. */
TMAP_API enum tmap_status tmap_dist_init(int *argc, char ***argv, struct tmap_error *err);
TMAP_API void tmap_dist_finalize(void);
/* Call before tmap_dist_finalize when this rank's work failed (status is
 * its exit status). A failure no collective told the others of (a file
 * only this host lacks, a bad option read before any collective) leaves
 * them waiting for this rank in a collective for ever: unless every rank
 * reaches the end within a few seconds, this stops the whole job
 * (MPI_Abort with status; the launcher names the rank). A no-op in one
 * process and after a failure every rank was told of. */
TMAP_API void tmap_dist_failed(int status);
/* This rank's failure reached every rank by a collective, with its message,
 * which rank 0 reports (as "rank R (HOST): message"): the other ranks need
 * not print it again. */
TMAP_API bool tmap_dist_failure_told(void);
TMAP_API bool tmap_dist_available(void); /* built with MPI */
TMAP_API int  tmap_dist_rank(void);       /* 0 .. size-1 */
TMAP_API int  tmap_dist_size(void);
TMAP_API int  tmap_dist_local_rank(void); /* rank among this host's ranks: which GPU */

/* ------------------------------------------------------------------------ */
/* Data: a pool of instruction records                                      */
/* ------------------------------------------------------------------------ */

/* Record formats, detected per record (docs/design.md section 9). */
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
TMAP_API const char *tmap_format_name(enum tmap_format format);

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
    /* SKIP: add to rejects_path instead of starting it anew at the first
     * reject. A command that reads two files into one rejects file sets it
     * for the second, so the first one's rejects survive. */
    bool                  rejects_append;
    struct tmap_field_map fields;
    const char           *id_field;         /* key of the sample id ("id") */
    size_t                max_record_bytes; /* longer records are rejected */
    tmap_notice_fn        notice;           /* may be NULL */
    void                 *notice_user_data;
};

TMAP_API struct tmap_pool_params tmap_pool_default_params(void);

struct tmap_pool;

/* Reads a JSONL file or a JSON array of records. The file is mapped, not
 * copied: the pool keeps an index entry per record and re-parses a record
 * when its text is asked for. */
TMAP_API enum tmap_status tmap_pool_load(const char *path, const struct tmap_pool_params *params,
                                struct tmap_pool **out, struct tmap_error *err);
TMAP_API void tmap_pool_free(struct tmap_pool *pool);

TMAP_API size_t      tmap_pool_size(const struct tmap_pool *pool);       /* accepted records */
TMAP_API size_t      tmap_pool_n_rejected(const struct tmap_pool *pool); /* SKIP mode only */
TMAP_API size_t      tmap_pool_n_blank_lines(const struct tmap_pool *pool);
TMAP_API const char *tmap_pool_path(const struct tmap_pool *pool);

/* What the index knows of record i without parsing it again. */
struct tmap_record {
    const char      *id;        /* the id field, or the line number as text */
    size_t           line;      /* 1-based line where the record starts */
    enum tmap_format format;
    uint8_t          hash[16];  /* xxh3-128 of normalised prompt + response */
    uint64_t         prompt_hash; /* 64 bits over the prompt alone, ASCII case and whitespace runs aside */
    const char      *raw;       /* the record's input bytes, exactly */
    size_t           raw_bytes;
};

TMAP_API enum tmap_status tmap_pool_record(const struct tmap_pool *pool, size_t i,
                                  struct tmap_record *out);

/* Index of the record with this id, or SIZE_MAX. */
TMAP_API size_t tmap_pool_find(const struct tmap_pool *pool, const char *id);

/* The content of n records, in order, as 32 hex digits (xxh3-128 over n
 * and their content hashes): rows lists them, or NULL for the first n. The
 * same records give the same value whatever the file is called or where it
 * lies, so two hosts can tell whether they hold the same data. */
TMAP_API void tmap_pool_fingerprint(const struct tmap_pool *pool, const size_t *rows, size_t n, char out[33]);

/* How much of a validation set (or a tiny set) the pool repeats. The proxy
 * never draws such a copy as its item's demonstration (it would hand the
 * item its answer and pay for selecting it), but relevance scores copies
 * highest, and a selection that holds them trains on the validation
 * answers: the downstream evaluation is contaminated. Counted by hash, so
 * CRLF and surrounding whitespace do not hide a copy. */
struct tmap_overlap {
    size_t n_prompts;   /* records of val whose prompt some pool record asks, with any response */
    size_t n_records;   /* of those, records the pool holds exactly (same content hash) */
    size_t n_pool_rows; /* pool records asking one of those prompts */
    size_t n_val;       /* records of val */
    size_t first;       /* index in val of the first such record; SIZE_MAX when none */
    size_t first_line;  /* and its line in val's file; 0 when none */
};

/* in_pool (may be NULL): per pool record, whether it asks a question of val
 * (what `tmap data decontaminate` leaves out). */
TMAP_API enum tmap_status tmap_pool_overlap(const struct tmap_pool *pool, const struct tmap_pool *val,
                                   bool *in_pool, struct tmap_overlap *out, struct tmap_error *err);

/* With some overlap, one line that says how much and what it costs, naming
 * val_path (val's file) and the line of its first shared record; false
 * (buf left as it is) without. */
TMAP_API bool tmap_overlap_describe(const struct tmap_overlap *overlap, const char *val_path, char *buf,
                                    size_t size);

/* One conversation turn; role is "system", "user" or "assistant". */
struct tmap_turn {
    const char *role;
    const char *content;
};

/* A record's text. prompt is every turn before the last assistant turn
 * (rendered as "Role: text" lines when there is more than one turn), response
 * is that last assistant turn. Owned by the sample: tmap_sample_free frees. */
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

TMAP_API enum tmap_status tmap_pool_sample(const struct tmap_pool *pool, size_t i,
                                  struct tmap_sample *out, struct tmap_error *err);
TMAP_API void tmap_sample_free(struct tmap_sample *sample);

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
TMAP_API enum tmap_status tmap_pool_stats(const struct tmap_pool *pool, struct tmap_model *model,
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
    /* The one GPU to run on (modulo the GPUs there are), -1 = llama.cpp's
     * default (split over all). Under MPI the CLI gives each rank its local
     * rank: one GPU per rank. No GPU: ignored. */
    int32_t main_gpu;
    /* --no-repack turns it off: llama.cpp's repacked CPU layouts for
     * quantized weights (on a CPU with AMX, only the CPU_REPACK one:
     * src/model/placement.c). */
    bool    repack;
    /* 1, or 2: a second llama.cpp context over the same weights, and
     * teacher-forced scoring alternates between the two, so that on a GPU
     * one computes while the host reads the other's logits (waiting for
     * each call's logits costs 7% on a 7B model: docs/scoring.md). Costs
     * a second KV cache and compute buffer. Off by default until
     * bench_score's "tmap 2 lanes" arm has measured it on a GPU. */
    int32_t n_lanes;
};

TMAP_API struct tmap_model_params tmap_model_default_params(void);

TMAP_API enum tmap_status tmap_model_load(const struct tmap_model_params *params,
                                 struct tmap_model **out, struct tmap_error *err);
TMAP_API void tmap_model_free(struct tmap_model *model);

struct tmap_model_info {
    char     arch[64];
    char     description[128];
    char     fingerprint[33]; /* hex xxh3-128 of every byte of the GGUF file: models differing in any weight differ */
    uint64_t n_params;
    uint64_t file_bytes;
    int32_t  n_vocab;
    int32_t  n_ctx_train;
    int32_t  n_embd;
    int32_t  n_layer;
    int32_t  n_head;
    bool     has_chat_template;
    /* What the model knows, when tmap trained it (tmap finetune or model
     * pretrain record it in the GGUF's tmap.train.* keys); "" and NAN when
     * it did not. A created, untrained model says "random init". */
    char     trained_on[160];      /* "train.jsonl (first 5473 of 7473 records), 4 epochs" */
    char     eval_on[160];         /* the held-out data of eval_*: "test.jsonl (1319 records)" */
    double   eval_response_loss;   /* nats per response token on eval_on, after training */
    double   eval_response_bpb;    /* the same in bits per byte of response text */
    int32_t  n_ctx;   /* per sequence, as loaded */
    int32_t  n_batch;
    int32_t  n_seq;
};

TMAP_API void tmap_model_get_info(const struct tmap_model *model, struct tmap_model_info *out);

/* Whether the context in use (n_ctx, -c) runs past the one the model was
 * trained on (n_ctx_train). llama.cpp runs it, but positions past training
 * are ones the model never saw, so its log-likelihoods there, and every
 * score and proxy value built on them, mean little. With buf, one line
 * that says so with both sizes. */
TMAP_API bool tmap_model_context_warning(const struct tmap_model_info *info, char *buf, size_t size);

/* Tokens of text (BOS first when add_bos); *tokens is malloc'd, caller frees.
 * Text that looks like a control token ("</s>", "<|im_start|>") stays text:
 * data must never inject control tokens. */
TMAP_API enum tmap_status tmap_model_tokenize(struct tmap_model *model, const char *text, bool add_bos,
                                     int32_t **tokens, int32_t *n_tokens,
                                     struct tmap_error *err);

enum tmap_template {
    TMAP_TEMPLATE_PLAIN = 0, /* "Query: ...\nAnswer: " */
    TMAP_TEMPLATE_CHAT,      /* the model's own chat template */
};

/* Tokens of a prompt laid out by tmap_model_format_prompt: with the chat
 * template its control tokens ("<|im_start|>") are read as such, which the
 * model was trained on; the plain template's text is tokenized as data. */
TMAP_API enum tmap_status tmap_model_tokenize_prompt(struct tmap_model *model, const char *text,
                                            enum tmap_template tmpl, int32_t **tokens,
                                            int32_t *n_tokens, struct tmap_error *err);

/* The text that precedes the response when the model reads this sample.
 * TMAP_TEMPLATE_CHAT on a model without a chat template falls back to plain
 * and sets *fell_back (may be NULL). *out is malloc'd. */
TMAP_API enum tmap_status tmap_model_format_prompt(struct tmap_model *model, const struct tmap_sample *sample,
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
 *              choice_logprobs (how rating indicators read a 1..6 score);
 *   token_logprobs: each response token's own log-probability (the terms
 *              of sum_logprob; how the support indicator reads the final
 *              answer's tokens). */
struct tmap_logprob_request {
    const int32_t *prompt;
    int32_t        n_prompt;
    const int32_t *response;
    int32_t        n_response;
    float         *embedding;       /* NULL = none */
    const int32_t *choices;         /* NULL = none */
    int32_t        n_choices;
    double        *choice_logprobs; /* n_choices entries */
    double        *token_logprobs;  /* NULL = none; else n_response entries: log p of each
                                       response token (left as they are when skipped) */
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
TMAP_API enum tmap_status tmap_model_logprob(struct tmap_model *model,
                                    const struct tmap_logprob_request *requests, size_t n,
                                    struct tmap_logprob_result *results,
                                    struct tmap_error *err);

/* Like tmap_model_logprob, with every request continuing one shared prefix
 * (few-shot demonstrations): the prefix is decoded once and its KV cells
 * are shared by every sequence (llama_memory_seq_cp), so each request costs
 * only its own tokens. Request prompts continue the prefix (no BOS; at
 * least one token). A request that does not fit after the prefix is
 * skipped: the prefix is never truncated. Uses n_seq - 1 parallel
 * sequences (sequence 0 holds the prefix). n_prefix 0 = tmap_model_logprob. */
TMAP_API enum tmap_status tmap_model_logprob_shared(struct tmap_model *model, const int32_t *prefix, int32_t n_prefix,
                                           const struct tmap_logprob_request *requests, size_t n,
                                           struct tmap_logprob_result *results, struct tmap_error *err);

/* Greedy generation, many sequences per decode call. */
struct tmap_generate_request {
    const int32_t *prompt; /* continues the shared prefix, or starts with BOS when there is none */
    int32_t        n_prompt;
};

struct tmap_generate_params {
    int32_t            max_tokens; /* new tokens per request (256) */
    const char *const *stops;      /* stop strings, not included in the output */
    size_t             n_stops;
};

TMAP_API struct tmap_generate_params tmap_generate_default_params(void);

/* Greedy continuation of every request after an optional shared prefix
 * (decoded once, its cells shared). outputs[i] is malloc'd text, cut before
 * the first stop string, at end of generation, or at max_tokens. The text
 * is the tokens' pieces as they come, so a cut may end inside a UTF-8
 * character. Context: the prefix, a prompt and its output stay within one
 * sequence's n_ctx, so a request whose prompt + max_tokens does not fit
 * generates only as many tokens as fit, and one whose prompt fills the
 * context gets "". On failure every outputs[i] is NULL. */
TMAP_API enum tmap_status tmap_model_generate(struct tmap_model *model, const int32_t *prefix, int32_t n_prefix,
                                     const struct tmap_generate_request *requests, size_t n,
                                     const struct tmap_generate_params *params, char **outputs,
                                     struct tmap_error *err);

/* Work done by a model handle so far; tests and benchmarks read it. */
struct tmap_model_counters {
    uint64_t n_decode_calls;
    uint64_t n_tokens_decoded;
    /* llama_context created: 1 at load, +1 each time hidden-state capture is
     * switched or a context given back (the fine-tune proxy's) reopens */
    uint64_t n_context_opens;
};

TMAP_API void tmap_model_get_counters(const struct tmap_model *model, struct tmap_model_counters *out);

/* ------------------------------------------------------------------------ */
/* Indicators and scoring                                                   */
/* ------------------------------------------------------------------------ */

/* The indicators of docs/design.md section 2. */
enum tmap_indicator {
    TMAP_IND_LOSS = 0,   /* mean NLL of the response given the prompt (nats/token) */
    TMAP_IND_IFD,        /* loss(response | prompt) / loss(response | BOS) */
    TMAP_IND_QUALITY,    /* expected 1..6 rating of the response (judge model) */
    TMAP_IND_COMPLEXITY, /* expected 1..6 rating of the instruction (judge model) */
    TMAP_IND_DIVERSITY,  /* mean cosine distance to the k nearest pool samples */
    TMAP_IND_RELEVANCE,  /* mean of the m highest cosine similarities to validation items */
    TMAP_IND_STEPS,      /* reasoning steps in the response */
    TMAP_IND_LENGTH,     /* response length in target-model tokens */
    TMAP_IND_LEXICAL,    /* MTLD lexical diversity of the response */
    TMAP_IND_NUMERACY,   /* arithmetic operations in the response */
    TMAP_IND_SUPPORT,    /* log p(the final answer the response marks | prompt, the solution before it) */
    TMAP_IND_COVERAGE,   /* share of the prompt's numbers and words the response uses */
    TMAP_IND_COUNT
};

#define TMAP_IND_ALL ((1u << TMAP_IND_COUNT) - 1u)
/* What tmap scores unless told. support joined the default on the
 * fidelity benchmark's two seeds (docs/fidelity.md); coverage is opt-in
 * ("default,coverage" or "all") until the closed loop has judged it on two
 * seeds, as support was. */
#define TMAP_IND_DEFAULT (TMAP_IND_ALL & ~(1u << TMAP_IND_COVERAGE))

TMAP_API const char *tmap_indicator_name(enum tmap_indicator ind);
/* Default direction: does a higher raw value make a sample more wanted? */
TMAP_API bool tmap_indicator_higher_is_better(enum tmap_indicator ind);
/* "loss,ifd,steps", "default" (TMAP_IND_DEFAULT), "all" or a mix
 * ("default,support") -> a bit mask of (1u << TMAP_IND_*). */
TMAP_API enum tmap_status tmap_indicator_parse_list(const char *list, uint32_t *mask, struct tmap_error *err);

/* Progress of long work, for a caller's progress bar. */
struct tmap_progress {
    const char *stage;       /* "scoring", "validation", "neighbours" */
    size_t      done, total; /* samples */
    uint64_t    n_tokens;    /* model tokens decoded so far in this call */
    double      seconds;     /* since the call started */
};
typedef void (*tmap_progress_fn)(const struct tmap_progress *progress, void *user_data);

struct tmap_score_params {
    uint32_t            indicators;    /* mask; see tmap_indicator_parse_list */
    struct tmap_model  *judge;         /* rates quality/complexity; NULL = the target model */
    struct tmap_model  *embedder;      /* embeddings; NULL = the target model */
    const struct tmap_pool *val;       /* validation data for relevance; NULL = no relevance */
    const char         *store_path;    /* SQLite score store; NULL = none */
    enum tmap_template  tmpl;          /* how the target model reads a sample */
    int32_t             knn_k;         /* neighbours for diversity (10) */
    size_t              ann_min_rows;  /* diversity from an approximate index (FAISS) from
                                          this many rows on (50,000); 0 = always exact.
                                          Exact costs n^2 x dim: minutes past 100k rows */
    uint64_t            ann_seed;      /* seeds that index's k-means (0) */
    int32_t             relevance_m;   /* top similarities for relevance (5) */
    size_t              batch_samples; /* samples per store transaction (64) */
    tmap_progress_fn    progress;
    void               *progress_user_data;
    tmap_notice_fn      notice;        /* fallbacks and skipped samples */
    void               *notice_user_data;
    bool                distributed;   /* share the batches among the MPI ranks (false) */
};

TMAP_API struct tmap_score_params tmap_score_default_params(void);

/* A table of raw indicator values, one row per pool record (same order),
 * one column per indicator (plus merged extra columns). NaN = no value
 * (not asked for, or the sample was skipped for not fitting the context). */
struct tmap_scores;

/* What a tmap_score call did: for tests, benchmarks and the summary line. */
struct tmap_score_stats {
    size_t   n_samples;
    size_t   n_from_store;  /* samples whose every value came from the store */
    size_t   n_computed;    /* samples with at least one value computed */
    size_t   n_copies;      /* samples repeating an earlier one's content: its values, not decoded again */
    size_t   n_skipped;     /* samples with no model indicators: ... */
    size_t   n_empty;       /* ... of them, an empty response (nothing to score); the rest do not fit the context */
    uint64_t n_tokens;      /* tokens decoded, all models */
    uint64_t n_decode_calls;
    double   seconds;
};

TMAP_API enum tmap_status tmap_score(const struct tmap_pool *pool, struct tmap_model *model,
                            const struct tmap_score_params *params, struct tmap_scores **out,
                            struct tmap_error *err);
TMAP_API void tmap_scores_free(struct tmap_scores *scores);

TMAP_API size_t      tmap_scores_n_rows(const struct tmap_scores *scores);
TMAP_API size_t      tmap_scores_n_columns(const struct tmap_scores *scores);
TMAP_API const char *tmap_scores_column_name(const struct tmap_scores *scores, size_t column);
/* Column index of an indicator or extra column by name, or SIZE_MAX. */
TMAP_API size_t      tmap_scores_find_column(const struct tmap_scores *scores, const char *name);
TMAP_API double      tmap_scores_get(const struct tmap_scores *scores, size_t row, size_t column);
TMAP_API void        tmap_scores_get_stats(const struct tmap_scores *scores, struct tmap_score_stats *out);

/* Merges the numeric columns of a CSV keyed by sample id (first column
 * "id"); rows for ids not in the pool are an error naming the line. */
TMAP_API enum tmap_status tmap_scores_merge_csv(struct tmap_scores *scores, const struct tmap_pool *pool,
                                       const char *path, struct tmap_error *err);

/* Writes id, hash and every column that holds a value (CSV, NaN as empty). */
TMAP_API enum tmap_status tmap_scores_write_csv(const struct tmap_scores *scores, const struct tmap_pool *pool,
                                       const char *path, struct tmap_error *err);

/* What scoring will cost, before doing it: the tokens and passes a run
 * would decode (everything tokenized, the context-overflow policy applied,
 * the validation set's embeddings included, what the store holds left
 * out), and a time from running the first batch's passes on growing slices
 * until one takes a second (nothing is stored). */
struct tmap_score_plan {
    size_t   n_samples;
    size_t   n_cached;         /* already in the store */
    uint64_t n_tokens;         /* tokens to decode, all passes */
    uint64_t n_passes;         /* sequences to decode */
    double   tokens_per_second; /* measured on the calibration slice */
    double   seconds;          /* estimate */
};

TMAP_API enum tmap_status tmap_score_plan(const struct tmap_pool *pool, struct tmap_model *model,
                                 const struct tmap_score_params *params, struct tmap_score_plan *out,
                                 struct tmap_error *err);

/* ------------------------------------------------------------------------ */
/* Tiny validation sets and the in-context-learning proxy                   */
/* ------------------------------------------------------------------------ */

/* Embeddings of every record of a pool (n x dim floats, row-major,
 * L2-normalised), computed as scoring computes them with the model reading
 * each record under tmpl, and kept in the store when store_path is set (a
 * scoring run under the same template has already put them there). Rows the
 * model cannot fit are zero and ok[row] false (ok may be NULL). *out and
 * *ok are malloc'd. */
TMAP_API enum tmap_status tmap_embed_pool(const struct tmap_pool *pool, struct tmap_model *model,
                                          enum tmap_template tmpl, const char *store_path, float **out,
                                          bool **ok, int32_t *dim, struct tmap_error *err);

enum tmap_tiny_mode {
    TMAP_TINY_ANCHORS = 0, /* k-medoids medoids, weighted by cluster share (Vivek et al. 2024) */
    TMAP_TINY_RANDOM,      /* a seeded uniform sample, equal weights */
};

struct tmap_tiny_params {
    size_t              n;          /* anchors wanted (100) */
    enum tmap_tiny_mode mode;
    uint64_t            seed;
    int32_t             max_iter;   /* k-medoids rounds (50) */
    const char         *store_path; /* embedding store, NULL = none */
    enum tmap_template  tmpl;       /* how the model reads an item to embed it */
};

TMAP_API struct tmap_tiny_params tmap_tiny_default_params(void);

/* A tiny set: rows of the validation pool and their weights (sum 1). */
struct tmap_tiny {
    size_t  n;
    size_t *rows;
    double *weights;
};

TMAP_API enum tmap_status tmap_tiny_select(const struct tmap_pool *val, struct tmap_model *embedder,
                                  const struct tmap_tiny_params *params, struct tmap_tiny *out,
                                  struct tmap_error *err);
TMAP_API void tmap_tiny_free(struct tmap_tiny *tiny);

/* Writes the chosen records, each its input bytes with a leading
 * "tmap_weight" member added, as JSONL. */
TMAP_API enum tmap_status tmap_tiny_write(const struct tmap_tiny *tiny, const struct tmap_pool *val,
                                 const char *path, struct tmap_error *err);

/* The "tmap_weight" of every record of a tiny file (uniform when absent),
 * normalised to sum 1. weights holds tmap_pool_size(tiny) entries. */
TMAP_API enum tmap_status tmap_tiny_weights(const struct tmap_pool *tiny, double *weights, struct tmap_error *err);

enum tmap_demo_policy {
    TMAP_DEMOS_TOP = 0, /* the k highest-scored demonstrations */
    TMAP_DEMOS_RANDOM,  /* k seeded random ones, averaged over draws */
    TMAP_DEMOS_KNN,     /* per query, the k nearest by embedding */
};

/* What judges a subset. In-context learning is the paper's proxy and the
 * default; a model too small to learn in context (the shipped 128-wide
 * GSM8K model fits at most one demonstration in its 512 tokens) can be
 * judged by what the proxy stands in for, fine-tuning, at a small scale:
 * docs/fidelity.md compares the two. */
enum tmap_proxy_kind {
    TMAP_PROXY_ICL = 0,   /* demonstrations from the subset, the tiny set scored after them */
    TMAP_PROXY_FINETUNE,  /* the model fine-tuned on records drawn from the subset, the tiny set's
                             answers scored with no demonstrations (metric loglik only) */
};

enum tmap_metric {
    TMAP_METRIC_LOGLIK = 0, /* mean log-probability per token of the gold answer */
    TMAP_METRIC_ACCURACY,   /* greedy generation, answer extraction, exact match */
    TMAP_METRIC_MC,         /* multiple choice by log-likelihood */
};

struct tmap_proxy_params {
    int32_t               k;            /* demonstrations (8) */
    enum tmap_demo_policy policy;
    size_t                draws;        /* random policy: draws averaged (2) */
    /* Random policy: the tiny set is split into this many groups, each with
     * demonstrations of its own (1). One group judges a subset by k of its
     * records; g groups by g*k, at the cost of g shared prefixes. */
    size_t                groups;
    enum tmap_metric      metric;
    enum tmap_template    tmpl;
    uint64_t              seed;
    bool                  share_prefix; /* decode the demonstrations once (true) */
    int32_t               max_tokens;   /* accuracy: generated tokens per item (256) */
    const char           *store_path;   /* memo of proxy values, NULL = none */
    enum tmap_proxy_kind  kind;         /* TMAP_PROXY_ICL */
    /* The fine-tune proxy: each draw (draws, seeded like the random
     * policy's) trains a copy of the model for ft_epochs at peak rate ft_lr
     * on ft_records records drawn from the subset, in windows of the
     * model's context, and scores the tiny set under it. The copy is
     * loaded once and set back from the model's file after each draw:
     * nothing is written. */
    size_t                ft_records;   /* 64 */
    int32_t               ft_epochs;    /* 1 */
    float                 ft_lr;        /* 1e-4, tmap finetune's default */
    const char           *ft_layers;    /* which tensors train, as tmap_finetune_params.train_layers;
                                           NULL = all */
    /* In-context proxy: each group's items are decoded in this many slices
     * apart (1), each with its own copy of the shared prefix. Under MPI the
     * ranks share an evaluation's slices; a value depends on the number of
     * slices (the sequences a decode call sees move the result by ~1e-6),
     * never on the number of ranks. */
    size_t                slices;
};

TMAP_API struct tmap_proxy_params tmap_proxy_default_params(void);

/* The proxy for one model and one tiny set, evaluated many times. */
struct tmap_proxy;

/* weights: per tiny record, NULL = read "tmap_weight" (tmap_tiny_weights). */
TMAP_API enum tmap_status tmap_proxy_create(struct tmap_model *model, const struct tmap_pool *tiny,
                                   const double *weights, const struct tmap_proxy_params *params,
                                   struct tmap_proxy **out, struct tmap_error *err);
TMAP_API void tmap_proxy_free(struct tmap_proxy *proxy);

/* The seed of the random policy's draws (params.seed at creation). A new
 * seed draws other demonstrations; the memo keeps values per seed. */
TMAP_API uint64_t tmap_proxy_seed(const struct tmap_proxy *proxy);
TMAP_API void     tmap_proxy_set_seed(struct tmap_proxy *proxy, uint64_t seed);

struct tmap_proxy_stats {
    uint64_t n_tokens;  /* decoded for this evaluation */
    double   seconds;
    bool     from_memo; /* served from the memo: no model work */
    size_t   n_skipped; /* tiny items that did not fit the context */
};

/* What an in-context evaluation's prompts hold: prompts (tiny items x
 * draws), the demonstrations asked for (k each, fewer from a smaller
 * subset) and those that fit. A prompt that outgrows the context loses its
 * last demonstrations, so a model whose context holds one GSM8K-sized
 * record beside an item judges each subset by a record or two per draw,
 * whatever k says; tmap run reports it. */
struct tmap_proxy_counters {
    uint64_t n_prompts;
    uint64_t n_demos_wanted;
    uint64_t n_demos;
};

/* Lays out the prompts tmap_proxy_eval would for this subset (every draw)
 * and counts them; tokenization only, nothing decoded, the memo not asked.
 * All zero for the fine-tune proxy. */
TMAP_API enum tmap_status tmap_proxy_count_demos(struct tmap_proxy *proxy, const struct tmap_pool *demos,
                                                 const size_t *rows, size_t n_rows, const double *scores,
                                                 struct tmap_proxy_counters *out, struct tmap_error *err);
/* Whether the prompts held less than half the demonstrations asked for. */
TMAP_API bool tmap_proxy_demos_cramped(const struct tmap_proxy_counters *counters);
/* One line for people: "0.50 of the 8 asked for fit beside a tiny item
 * (context 512 tokens): the proxy sees few of each subset's records, ...". */
TMAP_API void tmap_proxy_describe_demos(const struct tmap_proxy_counters *counters, int32_t n_ctx, char *buf,
                                        size_t size);

/* The proxy value of demonstrations drawn from rows[0..n_rows) of demos.
 * scores (per row of demos, may be NULL = file order) rank them for the
 * top policy. */
TMAP_API enum tmap_status tmap_proxy_eval(struct tmap_proxy *proxy, const struct tmap_pool *demos,
                                 const size_t *rows, size_t n_rows, const double *scores,
                                 double *value, struct tmap_proxy_stats *stats, struct tmap_error *err);

/* ------------------------------------------------------------------------ */
/* Learning the weights, selecting, and the whole run                       */
/* ------------------------------------------------------------------------ */

/* A weighting of score columns (docs/design.md section 3): each column becomes a
 * percentile rank in [0,1] (flipped where lower is better) and a sample's
 * combined score is the weighted sum of its ranks. */
struct tmap_weights {
    size_t  d;
    char  **names;
    double *weights;
    bool   *higher_is_better;
    double  proxy_value; /* observed at these weights; NaN when not learned */
};

TMAP_API void tmap_weights_free(struct tmap_weights *w);

/* Equal weights over every column of scores that holds a value. */
TMAP_API enum tmap_status tmap_weights_uniform(const struct tmap_scores *scores, struct tmap_weights *out,
                                      struct tmap_error *err);

enum tmap_search_kind {
    TMAP_SEARCH_BO = 0,  /* Gaussian process + expected improvement */
    TMAP_SEARCH_RANDOM,  /* Dirichlet samples: the baseline */
    TMAP_SEARCH_GRID,    /* the simplex lattice */
    TMAP_SEARCH_EQUAL,   /* no search: equal weights, evaluated once */
};

/* How a weighting becomes a subset. */
enum tmap_select_mode {
    /* The ratio of the pool with the highest combined score: the paper's
     * selection, which follows the weights all the way. */
    TMAP_SELECT_TOP = 0,
    /* The weights only decide what is left out: the `drop` share of the
     * pool with the lowest combined score never enters, and the ratio is a
     * seeded uniform draw from the rest. The top of any ranking is a skewed
     * slice of the task (longest answers, most numbers); this keeps the
     * subset's mix like the pool's while removing the worst records
     * (docs/fidelity.md measures both modes). */
    TMAP_SELECT_FILTER,
    /* The weights choose within bands of record length: the pool is cut
     * into `strata` bands of equal count by the bytes of prompt and
     * response, and each band gives the ratio of its own records, those
     * with the highest combined scores. Indicators that favour long or
     * number-rich records make the most skewed tops (docs/fidelity.md);
     * this keeps the pool's mix of lengths, and so about a random subset's
     * token count, while following the weights within each band. */
    TMAP_SELECT_STRATIFIED,
};

struct tmap_select_params {
    double                ratio;           /* share of the pool selected (0.3) */
    enum tmap_select_mode mode;            /* TMAP_SELECT_TOP */
    double                drop;            /* filter mode: share of the pool left out (0.3); ratio + drop <= 1 */
    uint64_t              seed;            /* filter mode: the draw from what is left (42) */
    size_t                strata;          /* stratified mode: bands of record length (10) */
    bool                  keep_duplicates; /* let exact duplicates (same content hash) in twice (false) */
};

TMAP_API struct tmap_select_params tmap_select_default_params(void);

struct tmap_learn_params {
    struct tmap_select_params select;        /* how each candidate weighting selects */
    enum tmap_search_kind    search;
    size_t                   iters;          /* proxy evaluations that spend budget (30); BO and random
                                                search also stop after iters in a row were reused */
    bool                     signed_weights; /* also learn directions (sum |w| = 1) */
    uint64_t                 seed;
    struct tmap_proxy_params proxy;          /* default: random policy, 2 draws */
    size_t                   n_random;       /* baselines: random subsets of the selection's size (5) */
    size_t                   n_redraws;      /* baselines: fresh demonstration draws of the learned subset (4) */
    size_t                   batch;          /* BO: candidates per round, kriging believer (1) */
    bool                     distributed;    /* share proxy evaluations among the MPI ranks (false) */
    /* After every evaluation (reused = served from the memo, no budget). */
    void (*on_eval)(size_t i, const double *w, size_t d, double value, bool reused, void *user_data);
    void *on_eval_user_data;
};

TMAP_API struct tmap_learn_params tmap_learn_default_params(void);

struct tmap_trace_entry {
    double  *w;
    double   value;
    bool     reused;
    double   seconds;
    uint64_t subset_hash;
};

/* How the learned weights compare with what a user could have had without
 * them; every run measures it through the same proxy and memo (docs/design.md
 * section 6). */
enum tmap_verdict {
    TMAP_VERDICT_UNKNOWN = 0, /* not measured (fewer than 2 random subsets) */
    TMAP_VERDICT_BEATS,       /* better than random subsets by at least 2 sd of the noise */
    TMAP_VERDICT_WITHIN,      /* within 2 sd: no better than random, as far as the proxy can tell */
    TMAP_VERDICT_LOSES,       /* worse than random subsets by at least 2 sd */
};

struct tmap_baselines {
    double  equal;       /* proxy at equal weights */
    double *single;      /* proxy with each indicator alone, in weights.names order */
    size_t  d;
    double *random;      /* proxy on random subsets of the selection's size (seeded) */
    size_t  n_random;    /* distinct subsets: fewer than asked when the pool has fewer */
    double *redraws;     /* proxy on the learned subset under fresh demonstration draws: its noise */
    size_t  n_redraws;
    double  random_mean, random_sd;   /* sample sd */
    double  learned_mean, learned_sd; /* over the redraws (the search's own value is a maximum, biased up) */
    double  z;           /* (learned_mean - random_mean) / sqrt(learned_sd^2 + random_sd^2) */
    enum tmap_verdict verdict;
    size_t  n_distinct;  /* records in the pool, exact duplicates counted once (unless kept) */
    bool    no_choice;   /* the selection keeps all n_distinct: every weighting selects the same
                          * records, so the search had nothing to learn, whatever the verdict */
};

/* One line for people: "learned -2.41 +/- 0.01 vs random -2.63 +/- 0.04:
 * 5.5 sd better: beats random subsets by more than the noise". */
TMAP_API void tmap_baselines_describe(const struct tmap_baselines *b, char *buf, size_t size);

/* What may help a run whose searched weights did not beat random subsets
 * (or lost to them), given its proxy and the indicators it weighed (w's
 * names): what bench/fidelity measured to help, never what the run already
 * does, with where it was measured. Otherwise NULL when the weights beat
 * random subsets, when nothing was measured, or when nothing was searched
 * (TMAP_SEARCH_EQUAL). A run that had no choice (no_choice) is told about
 * its pool and ratio instead, whatever its verdict and search, as no proxy,
 * indicator or search can help it. A static string. */
TMAP_API const char *tmap_baselines_advice(const struct tmap_baselines *b, const struct tmap_learn_params *learn,
                                           const struct tmap_weights *w);

/* The subset a weighting selects: ceil(ratio * n) samples, the highest
 * combined scores (ties broken by sample id) or, in filter mode, a seeded
 * draw from all but the lowest, or, in stratified mode, the highest of
 * each length band. */
struct tmap_selection {
    size_t  n_rows;   /* pool size */
    size_t  n;        /* selected */
    size_t  n_duplicates; /* rows kept out as exact duplicates of another (same content hash) */
    size_t *rows;     /* selected rows, ascending */
    bool   *selected; /* per row */
    double *combined; /* per row */
    double *ranks;    /* column-major n_rows x weights.d */
};

/* What every output (the summary, tmap learn's line, report.html) says of
 * a search that stalled, so that a user who searches for it finds all. */
#define TMAP_SEARCH_STALLED_WORDS "stopped early: no new subset in the last --iters evaluations"

struct tmap_learn_result {
    struct tmap_weights      weights; /* the evaluated w with the best posterior mean */
    double                   best_posterior_mean;
    struct tmap_trace_entry *trace;
    size_t                   n_trace;
    size_t                   n_spent;
    bool                     stalled; /* the search ended early: iters evaluations in a row selected
                                         subsets it had judged (a small pool has few to find) */
    struct tmap_baselines    baselines;
    size_t                   n_duplicates; /* pool rows kept out of every selection as exact duplicates */
    struct tmap_selection    selection;    /* what tmap_select makes of weights (ratio, mode and seed of
                                              the params' select): no need to call it again */
};

/* Learns the weights of the columns of scores that hold values, judging
 * each candidate by proxy on the subset it selects (docs/design.md section 6). */
TMAP_API enum tmap_status tmap_learn(const struct tmap_pool *pool, const struct tmap_scores *scores,
                            struct tmap_proxy *proxy, const struct tmap_learn_params *params,
                            struct tmap_learn_result *out, struct tmap_error *err);
TMAP_API void tmap_learn_result_free(struct tmap_learn_result *r);

/* Exact duplicates (the same content hash) enter once: the copy with the
 * lowest sample id stands for all, unless keep_duplicates. The selection
 * is ceil(ratio * n) rows, fewer only when the pool has fewer distinct
 * records (or, in filter mode, fewer left after the drop). The filter
 * mode's draw gives each record a fixed random key from its content and
 * the seed, so the same inputs select the same rows in any file order and
 * nearby weightings select nearly the same rows (the search needs both). */
TMAP_API enum tmap_status tmap_select(const struct tmap_pool *pool, const struct tmap_scores *scores,
                             const struct tmap_weights *weights, const struct tmap_select_params *params,
                             struct tmap_selection *out, struct tmap_error *err);
TMAP_API const char *tmap_select_mode_name(enum tmap_select_mode mode); /* "top", "filter", "stratified" */
TMAP_API void tmap_selection_free(struct tmap_selection *s);

/* Deita's diversity filter over a selection (docs/design.md section 3): walk the
 * pool by descending combined score and keep a sample unless its cosine
 * similarity to an already kept one exceeds threshold, until as many as
 * before are kept (or the pool runs out). emb: n_rows x dim, unit rows. */
TMAP_API enum tmap_status tmap_selection_diversify(const struct tmap_pool *pool, struct tmap_selection *sel,
                                          const float *emb, int32_t dim, double threshold,
                                          struct tmap_error *err);

/* Outputs (docs/design.md section 7). selected.jsonl: the records byte for byte;
 * scores.csv: id, raw values, ranks, combined score, selected flag;
 * weights.json; trace.csv. */
TMAP_API enum tmap_status tmap_selection_write(const struct tmap_pool *pool, const struct tmap_selection *sel,
                                     const char *path, struct tmap_error *err);
TMAP_API enum tmap_status tmap_selection_write_table(const struct tmap_pool *pool, const struct tmap_scores *scores,
                                        const struct tmap_weights *w, const struct tmap_selection *sel,
                                        const char *path, struct tmap_error *err);
TMAP_API enum tmap_status tmap_weights_write_json(const struct tmap_weights *w, const struct tmap_baselines *baselines,
                                         const char *config_json, const char *path, struct tmap_error *err);
TMAP_API enum tmap_status tmap_weights_read_json(const char *path, struct tmap_weights *out, struct tmap_error *err);
/* The learning settings (selection, search, proxy) as the compact JSON
 * object weights.json records under "config"; malloc'd, NULL when out of
 * memory. tmap run adds its own keys to it. */
TMAP_API char *tmap_learn_params_to_json(const struct tmap_learn_params *params);
/* The selection a weights.json recorded (config: ratio, select, drop,
 * seed) into *params; keys it lacks leave their fields alone. So `tmap
 * select` repeats a run's filter selection without the flags again. */
TMAP_API enum tmap_status tmap_select_params_read_json(const char *path, struct tmap_select_params *params,
                                                       struct tmap_error *err);
TMAP_API enum tmap_status tmap_learn_result_write_trace(const struct tmap_learn_result *r, const char *path,
                                      struct tmap_error *err);

/* The main job, `tmap run`: score -> tiny set -> learn -> select -> every
 * output of docs/design.md section 7 in out_dir (report.html included), all
 * through one score store so a rerun does no model work twice. */
struct tmap_run_params {
    struct tmap_model_params model;
    const char              *pool_path;
    const char              *val_path;
    const char              *out_dir;
    const char              *store_path; /* NULL = OUT_DIR/store.db */
    struct tmap_pool_params  pool;
    struct tmap_score_params score;
    struct tmap_tiny_params  tiny;
    struct tmap_learn_params learn;
    double                   diversity_threshold; /* > 0: apply the diversity filter */
    const char              *judge_path;  /* rates quality/complexity (score.judge); NULL = the target model */
    const char              *embed_path;  /* embeds for diversity/relevance (score.embedder); NULL = the target */
};

TMAP_API struct tmap_run_params tmap_run_default_params(void);

struct tmap_run_summary {
    size_t              n_pool, n_val, n_tiny, n_selected;
    size_t              n_duplicates;   /* exact duplicates kept out of the selection */
    size_t              n_pool_rejected, n_val_rejected; /* bad records set aside (on_error SKIP) */
    struct tmap_overlap val_in_pool;    /* validation records the pool repeats (tmap_overlap_describe) */
    struct tmap_model_info model;       /* which model, and what it was trained on */
    struct tmap_model_info judge, embedder; /* as loaded for judge_path, embed_path; zeroed when not given */
    struct tmap_weights weights;        /* learned */
    struct tmap_baselines baselines;    /* what the learned weights are measured against */
    double              uniform_value;  /* proxy at equal weights (= baselines.equal) */
    size_t              n_evaluations, n_spent;
    bool                search_stalled; /* see tmap_learn_result.stalled */
    double              seconds_score, seconds_tiny, seconds_learn, seconds_total;
    struct tmap_score_stats score_stats;
    struct tmap_proxy_counters proxy_demos; /* what the proxy's prompts of the learned subset hold */
};

TMAP_API void tmap_run_summary_free(struct tmap_run_summary *s);

TMAP_API enum tmap_status tmap_run(const struct tmap_run_params *params, struct tmap_run_summary *out,
                          struct tmap_error *err);

/* A score table read back from scores.csv (raw columns only), rows matched
 * to the pool by id. */
TMAP_API enum tmap_status tmap_scores_read_csv(const struct tmap_pool *pool, const char *path,
                                      struct tmap_scores **out, struct tmap_error *err);

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */
/* ------------------------------------------------------------------------ */

/* Whole-benchmark evaluation (`tmap eval`): every record of a test pool,
 * with a few-shot prompt laid out as the ICL proxy lays it out (docs/design.md
 * section 5): the first n_shots records of a demo pool as
 * "Query: ...\nAnswer: ...\n\n" blocks (plain) or as earlier user/assistant
 * turns of the model's chat template (chat), then the item's query. Each
 * item's prompt is tokenized whole; the tokens every prompt starts with
 * (the demonstrations) are decoded once per call and their KV cells shared
 * (tmap_model_generate, tmap_model_logprob_shared). Items go through the
 * model 256 at a time, with progress reported after each group. */

/* "loglik", "accuracy", "mc". */
TMAP_API const char *tmap_metric_name(enum tmap_metric metric);

/* Choice names (src/util/names.c): each enum's values by name, a
 * NULL-terminated table indexed by the value. The CLI's choices are these
 * tables, so a name is spelled in one place; the *_name functions read them
 * ("unknown" past the end). */
TMAP_API const char *const *tmap_metric_names(void);
TMAP_API const char *const *tmap_search_kind_names(void);
TMAP_API const char *const *tmap_demo_policy_names(void);
TMAP_API const char *const *tmap_template_names(void);
TMAP_API const char *const *tmap_proxy_kind_names(void);
TMAP_API const char *const *tmap_select_mode_names(void);
TMAP_API const char *const *tmap_tiny_mode_names(void);
TMAP_API const char *const *tmap_on_error_names(void);
TMAP_API const char *tmap_search_kind_name(enum tmap_search_kind kind);
TMAP_API const char *tmap_demo_policy_name(enum tmap_demo_policy policy);
TMAP_API const char *tmap_template_name(enum tmap_template tmpl);
TMAP_API const char *tmap_proxy_kind_name(enum tmap_proxy_kind kind);
TMAP_API const char *tmap_tiny_mode_name(enum tmap_tiny_mode mode);
TMAP_API const char *tmap_on_error_name(enum tmap_on_error on_error);

struct tmap_eval_params {
    enum tmap_metric   metric;      /* TMAP_METRIC_ACCURACY: the benchmark's own score */
    size_t             n_shots;     /* demonstrations: the demo pool's first n_shots records (0) */
    enum tmap_template tmpl;        /* chat falls back to plain, with a notice, on a model without one */
    int32_t            max_tokens;  /* accuracy: new tokens per item (256) */
    size_t             n_bootstrap; /* resamples for the 95% interval (1000; 0 = no interval) */
    uint64_t           seed;        /* of the resampling (42) */
    tmap_progress_fn   progress;    /* stage "evaluation"; may be NULL */
    void              *progress_user_data;
    tmap_notice_fn     notice;      /* may be NULL */
    void              *notice_user_data;
};

TMAP_API struct tmap_eval_params tmap_eval_default_params(void);

/* Per-item arrays hold one entry per test record, in pool order. An item
 * is skipped (score NaN, left out of the metric) when its whole prompt
 * cannot be read: accuracy, when the prompt fills the context (-c, per
 * sequence); loglik and mc, when prompt + gold response (or a choice) does
 * not fit, since truncating the demonstrations would score another prompt. */
struct tmap_eval_result {
    enum tmap_metric kind;
    double   metric;          /* mean score over the items not skipped; NaN when none */
    double   ci_low, ci_high; /* percentile bootstrap 95% interval of that mean; NaN without one */
    size_t   n;               /* items in the metric */
    size_t   n_items;         /* test records: the length of every array below */
    char   **ids;
    double  *scores;          /* 1 or 0 (accuracy, mc); mean log-prob per gold token, nats (loglik) */
    char   **predictions;     /* accuracy: the generated text; mc: the chosen choice; else NULL */
    char   **extracted;       /* accuracy: the answer read from the prediction, NULL when none */
    char   **gold;            /* accuracy: the gold answer as compared; mc: the gold choice;
                                 loglik: the record's short answer, or NULL */
    double  *logliks;         /* loglik: the score; mc: total log-prob of the chosen choice; else NaN */
    int32_t *choices;         /* mc: the chosen index; else -1 */
    int32_t  n_prefix_tokens; /* tokens shared by every prompt, decoded once per group */
    uint64_t n_tokens_decoded;
    uint64_t n_decode_calls;
    double   seconds;
};

/* Evaluates model on every record of test; demos may be NULL when
 * n_shots is 0. Accuracy: greedy generation (stops "\n\nQuery:", "\nQuery:",
 * "Query:" and end of generation), then the number in the output
 * (tmap_extract_answer rules) against the record's numeric short answer,
 * compared as numbers; records without one (no answer field, or not a
 * number) compare the trimmed output with their trimmed answer or
 * response. Loglik: mean log-probability per token of the gold response.
 * Mc: the choice (" " + its text) with the highest total log-probability
 * after the prompt, right when it is the gold one; every record needs
 * choices. On failure result holds nothing to free. */
TMAP_API enum tmap_status tmap_eval_run(struct tmap_model *model, const struct tmap_pool *test,
                               const struct tmap_pool *demos, const struct tmap_eval_params *params,
                               struct tmap_eval_result *result, struct tmap_error *err);
TMAP_API void tmap_eval_result_free(struct tmap_eval_result *result);

/* One JSON line per item: id, prediction, extracted, gold, correct (bool),
 * loglik, choice (mc), skipped; null where a value does not apply. Bytes
 * that are not UTF-8 (a generation may stop inside a character) are
 * written as U+FFFD. */
TMAP_API enum tmap_status tmap_eval_write_predictions(const struct tmap_eval_result *result, const char *path,
                                             struct tmap_error *err);

/* Percentile bootstrap 95% interval of the mean of values[0..n):
 * n_resamples means of n draws with replacement, from a generator seeded
 * by seed (the same seed, the same interval). NaN when n or n_resamples
 * is 0. */
TMAP_API enum tmap_status tmap_bootstrap_mean_ci(const double *values, size_t n, size_t n_resamples, uint64_t seed,
                                        double *low, double *high, struct tmap_error *err);

/* ------------------------------------------------------------------------ */
/* Test models                                                              */
/* ------------------------------------------------------------------------ */

/* A random-init model with a real tokenizer, for tests and the demo: a
 * Llama by default, or another architecture llama.cpp can build from
 * hyperparameters alone (tmap_model_arch_names). The same params give the
 * same bytes. */
struct tmap_model_create_params {
    int32_t     n_embd;
    int32_t     n_layer;
    int32_t     n_head;
    int32_t     n_head_kv;
    int32_t     n_ff;
    int32_t     n_ctx;
    uint64_t    seed;
    float       init_std;      /* standard deviation of the weight matrices */
    const char *vocab_path;    /* vocab-only GGUF or SentencePiece .vocab (BPE, byte fallback), NULL = the bundled Llama-2 GGUF */
    const char *chat_template; /* stored as tokenizer.chat_template, NULL = none */
    const char *arch;          /* general.architecture: "llama" (default), "qwen2", ... */
};

TMAP_API struct tmap_model_create_params tmap_model_create_default_params(void);

/* The architectures tmap_model_create can build, comma-separated. */
TMAP_API const char *tmap_model_arch_names(void);

TMAP_API enum tmap_status tmap_model_create(const char *out_path, const struct tmap_model_create_params *params,
                                   struct tmap_error *err);

/* Storing weights in another type (llama_model_quantize). */
struct tmap_model_quantize_params {
    const char *type;      /* "f32", "f16", "bf16", "q8_0", "q4_k_m", ... (tmap_quant_type_names) */
    int32_t     n_threads; /* 0 = all cores */
    /* --keep-f32: the tensors this --train-layers spec selects are stored
     * as F32 whatever type is asked (NULL or "" = none), so that a model
     * whose other weights stay quantized can train them (llama.cpp trains
     * F32 tensors only, through frozen weights of any type). */
    const char *keep_f32;
};

TMAP_API struct tmap_model_quantize_params tmap_model_quantize_default_params(void);

/* The type names tmap_model_quantize takes, comma-separated. */
TMAP_API const char *tmap_quant_type_names(void);

/* Writes out_path: in_path's metadata and tokenizer with its weight
 * matrices stored as params->type (1-d tensors stay F32, and those
 * params->keep_f32 selects: an item that selects none is TMAP_ERR_USAGE). */
TMAP_API enum tmap_status tmap_model_quantize(const char *in_path, const char *out_path,
                                     const struct tmap_model_quantize_params *params, struct tmap_error *err);

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */

/* Fine-tuning with llama.cpp's own training API (docs/design.md section 12).
 *
 * Each record is laid out as scoring reads it under params.tmpl: BOS, the
 * prompt (tmap_model_format_prompt), the response, then what ends the turn
 * so the model learns to stop: EOS in the plain layout; in the chat layout
 * the template's own end-of-turn markup (chatml's "<|im_end|>\n"), with
 * EOS after it only where that markup holds no end-of-generation token.
 * Records are packed into windows of n_ctx tokens, one optimiser step
 * (AdamW) per window. Every window starts at the start of a
 * record and holds whole records; its tail is the beginning of the next
 * record, which then opens the next window whole, so no record is trained
 * only in pieces (one longer than a window is cut into window-sized
 * chunks). Attention crosses record boundaries within a window
 * (llama_opt_epoch trains one sequence per window and takes no mask).
 *
 * Loss: llama_opt_epoch sets a one-hot label at every position of every
 * window, so the training objective covers prompt and response tokens alike;
 * llama.cpp offers no way to mask positions out. The response-only losses
 * below are measured separately, with tmap_model_logprob on the weights
 * being trained, exactly as scoring measures them.
 *
 * Files: OUT is written at the end. Every epoch writes a checkpoint
 * STEM.ckpt-epochN.gguf beside it (STEM is OUT without ".gguf"; the
 * previous epoch's is removed) and STEM.ckpt.json, which records the epoch,
 * the optimiser step (so the learning-rate schedule and the data order go on
 * where they stopped), the losses so far and what the run was started with.
 * A resume restores the weights and that state, not AdamW's moment
 * estimates: ggml-opt keeps them private, so the optimiser restarts from zero
 * moments (with its bias correction restarted too).
 *
 * llama.cpp trains F32 tensors only. Unpatched, it never trains
 * token_embd, attn_k or attn_v; the llama.cpp tmap builds carries the fix
 * (scripts/llama-patches/README.md), and the result says which ran. */

/* Losses of one epoch in mean nats per token; NAN where not measured. */
struct tmap_finetune_epoch {
    int32_t epoch;              /* 1-based, counting epochs before a resume; before training: 0 or the checkpoint's */
    double  train_loss;         /* training windows, all tokens, as the optimiser saw them (NAN before training) */
    double  val_loss;           /* held-out windows, all tokens (NAN: no val_split, or under one window of tokens) */
    double  val_response_loss;  /* held-out records, response tokens only, as scoring reads them */
    double  eval_response_loss; /* params.eval_pool, response tokens only */
    int64_t n_val_response_tokens, n_eval_response_tokens;
    /* The same response losses in bits per byte of response text (UTF-8),
     * which compares models with different vocabularies. */
    double  val_response_bpb, eval_response_bpb;
    double  lr;                 /* learning rate of the epoch's last step */
    int64_t n_steps;            /* optimiser steps: one per training window */
    int64_t n_tokens;           /* training tokens (n_steps * n_ctx) */
    double  train_seconds;      /* wall time of the training pass alone */
};

/* Reported after every optimiser step (epoch_done NULL) and once per epoch,
 * before training included (epoch_done set, step = n_steps). */
struct tmap_finetune_progress {
    int32_t epoch, n_epochs;
    int64_t step, n_steps;      /* within this epoch */
    double  train_loss;         /* running mean over this epoch's steps so far */
    double  lr;
    double  seconds;            /* since this epoch's training pass began */
    const struct tmap_finetune_epoch *epoch_done;
};

typedef void (*tmap_finetune_progress_fn)(const struct tmap_finetune_progress *progress,
                                          void *user_data);

struct tmap_finetune_params {
    struct tmap_model_params model;  /* path, threads, GPU layers; n_ctx is the window (0 = 512) */
    const char *out_path;            /* the trained GGUF */
    int32_t     n_epochs;            /* in all, counting a resumed run's earlier epochs */
    float       lr;                  /* peak learning rate */
    float       lr_min;              /* the cosine decay ends at lr * lr_min */
    float       warmup;              /* fraction of all steps spent in linear warmup */
    float       weight_decay;        /* AdamW's decoupled weight decay */
    float       val_split;           /* fraction of records held out, [0, 0.9] */
    size_t      n_first;             /* train on the pool's first n_first records only, 0 = all */
    const size_t *rows;              /* train on these records of the pool only (n_first is then ignored), */
    size_t      n_rows;              /* NULL = all: the fine-tune proxy's sample of a subset */
    uint64_t    seed;                /* held-out records and the per-epoch order */
    const char *train_layers;        /* which tensors train, NULL = all (see tmap_finetune_check_layers) */
    bool        resume;              /* go on from STEM.ckpt.json */
    const struct tmap_pool *eval_pool; /* scored (response tokens) before and after each epoch, may be NULL */
    enum tmap_template tmpl;         /* the records' layout; chat on a model without a template: plain, with a notice */
    tmap_notice_fn notice;           /* may be NULL */
    void       *notice_user_data;
    tmap_finetune_progress_fn progress;  /* may be NULL */
    void       *progress_user_data;
};

TMAP_API struct tmap_finetune_params tmap_finetune_default_params(void);

struct tmap_finetune_result {
    struct tmap_finetune_epoch before; /* the model as loaded (a resume: the checkpoint) */
    struct tmap_finetune_epoch last;   /* the last epoch trained */
    int32_t first_epoch;               /* 1, or the checkpoint's epoch + 1 */
    size_t  n_train_records, n_val_records;
    int64_t n_train_windows, n_val_windows;
    int32_t n_ctx;                     /* the window */
    int32_t n_trained_tensors;
    enum tmap_template layout;         /* the layout the records were trained in */
    bool    llama_patched;             /* false: this llama.cpp lacks tmap's training patch, so token_embd,
                                          attn_k and attn_v did not train (scripts/llama-patches);
                                          true where it cannot tell (token_embd not F32) */
    double  seconds;                   /* the whole call */
};

/* Trains the model at params->model.path on every record of pool and
 * writes params->out_path. */
TMAP_API enum tmap_status tmap_finetune(const struct tmap_pool *pool, const struct tmap_finetune_params *params,
                               struct tmap_finetune_result *result, struct tmap_error *err);

/* Checks a --train-layers spec against a GGUF model without training: a
 * comma list whose items are layer numbers or ranges ("0", "2-3": every
 * tensor of blk.N) or name substrings ("attn", "ffn_down", "output"); a
 * tensor trains when any item matches it. *n_matched counts the model's
 * tensors selected (token_embd included, though llama.cpp never trains it).
 * Every tensor selected must be F32, the only type llama.cpp trains (a
 * quantized or F16 model would otherwise train its norms alone):
 * TMAP_ERR_MODEL names the first that is not. The rest may be of any type:
 * tmap_model_quantize's keep_f32 writes a model quantized but for them. */
TMAP_API enum tmap_status tmap_finetune_check_layers(const char *model_path, const char *spec,
                                            int32_t *n_matched, struct tmap_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TMAP_H */
