/*
 * cli.h - what the command files share: the command table entry, the
 * option parser, and reporting.
 *
 * Like git's builtin/, each command lives in its own cmd_*.c file as one
 * function that parses its options into a params struct, calls libtmap and
 * prints. All model computation and data handling stays in the library.
 */
#ifndef TMAP_CLI_H
#define TMAP_CLI_H

#include "tmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Commands ---------------------------------------------------------- */

struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;               /* one line for `tmap --help` */
};

/* Commands with subcommands (`tmap data stats`) route through a table too. */
struct cli_subcommand {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
};

/* Runs the subcommand named by argv[1] of `tmap GROUP`, or prints the
 * group's help; returns the exit status. */
int cli_run_subcommand(const char *group, const struct cli_subcommand *subs, size_t n_subs,
                       int argc, char **argv);

int cmd_version(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_model_pretrain(int argc, char **argv); /* `tmap model pretrain`, in cmd_finetune.c */
int cmd_score(int argc, char **argv);
int cmd_tiny(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_learn(int argc, char **argv);
int cmd_select(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* ---- Options ----------------------------------------------------------- */

enum cli_opt_kind {
    CLI_FLAG,   /* bool, no argument: sets it */
    CLI_FLAG_OFF, /* bool, no argument: clears it (--no-repack) */
    CLI_STRING, /* const char * */
    CLI_INT,    /* int32_t, checked against [min, max] */
    CLI_SIZE,   /* size_t, checked against [min, max] */
    CLI_U64,    /* uint64_t */
    CLI_FLOAT,  /* float, checked against [min, max] */
    CLI_DOUBLE, /* double, checked against [min, max] */
    CLI_CHOICE, /* int: the index of the value in choices */
};

struct cli_option {
    const char       *names;   /* "-m|--model" */
    enum cli_opt_kind kind;
    void             *target;
    const char       *arg;     /* "FILE" in the help; NULL for flags */
    const char       *help;
    double            min, max;
    const char *const *choices; /* NULL-terminated, CLI_CHOICE only */
};

#define CLI_OPT_END { NULL, CLI_FLAG, NULL, NULL, NULL, 0, 0, NULL }

/* What a command tells the parser about itself. */
struct cli_spec {
    const char              *usage;       /* "tmap info -m MODEL [options]" */
    const char              *description; /* a paragraph, may be NULL */
    const struct cli_option *options;
    size_t                   min_positional, max_positional;
};

/* Parses argv[1..] against spec. Positional arguments land in positional
 * (which must hold max_positional entries). Returns -1 when the command
 * should go on, or the exit status to return now (0 after --help). */
/* Was this long flag on the command line (as "--flag V" or "--flag=V")?
 * For defaults that come from a file unless the user gave the flag. */
bool cli_given(int argc, char **argv, const char *flag);

int cli_parse(const struct cli_spec *spec, int argc, char **argv, const char **positional,
              size_t *n_positional);

void cli_print_help(const struct cli_spec *spec);

/* The "did you mean" of an unknown option or command: each candidate name
 * is offered with the most edits (insert, delete, substitute, swap two
 * neighbours) it may be from the word; the nearest within its limit is
 * kept, the first of equals. */
struct cli_guess {
    const char *word;
    size_t      len;
    const char *name; /* the best so far; NULL while none is near enough */
    size_t      name_len, distance;
};
void cli_guess_offer(struct cli_guess *g, const char *name, size_t name_len, size_t limit);

/* A file the command reads or writes, with the flag that named it. */
struct cli_path {
    const char *flag;
    const char *path; /* NULL when the flag was not given: skipped */
};

/* 0, or the usage error's status when an output is the same file as an
 * input (writing it would destroy what is being read: `tmap tiny -d
 * val.jsonl -o val.jsonl` replaced the validation set with its own tiny
 * set) or as another output. Same file means the same inode, so a link
 * or another spelling of the path is caught too. Lists end at .flag NULL. */
int cli_check_paths(const struct cli_spec *spec, const struct cli_path *inputs, const struct cli_path *outputs);

/* ---- Shared option groups ---------------------------------------------- */

/* -m -t -c -b -ngl -np --no-repack, named as llama.cpp names them; --lanes
 * is tmap's own (tmap_model_params.n_lanes). */
#define CLI_MODEL_OPTIONS(mp)                                                                     \
    { "-m|--model", CLI_STRING, &(mp).path, "FILE", "GGUF model to load", 0, 0, NULL },           \
    { "-t|--threads", CLI_INT, &(mp).n_threads, "N", "CPU threads (0 = all cores)", 0, 1024, NULL }, \
    { "-c|--ctx-size", CLI_INT, &(mp).n_ctx, "N", "context per sequence (0 = from model, at most 4096)", 0, 1 << 20, NULL }, \
    { "-b|--batch-size", CLI_INT, &(mp).n_batch, "N", "tokens per llama_decode call", 1, 1 << 20, NULL }, \
    { "-ngl|--n-gpu-layers", CLI_INT, &(mp).n_gpu_layers, "N", "layers to offload to the GPU (-1 = all)", -1, 1 << 20, NULL }, \
    { "--main-gpu", CLI_INT, &(mp).main_gpu, "I", "run on GPU I only (default: all; under MPI, the rank's local rank)", -1, 1 << 20, NULL }, \
    { "-np|--parallel", CLI_INT, &(mp).n_seq, "N", "sequences decoded side by side", 1, 256, NULL }, \
    { "--no-repack", CLI_FLAG_OFF, &(mp).repack, NULL, "keep quantized weights in llama.cpp's plain CPU layout", 0, 0, NULL }, \
    { "--lanes", CLI_INT, &(mp).n_lanes, "N", "1, or 2: two contexts take turns, for GPUs (docs/scoring.md)", 1, 2, NULL }

/* --fields --on-error --rejects --max-record-bytes, filled into a pool's params. */
struct cli_data_options {
    struct tmap_pool_params pool;
    const char             *fields; /* "prompt=K,response=K,answer=K" */
    int                     on_error;
    char                   *fields_copy_;
    char                    rejects_default_[4096];
    size_t                  n_loaded_; /* inputs read so far: the second adds to the first's rejects */
};


#define CLI_DATA_OPTIONS(d)                                                                        \
    { "--fields", CLI_STRING, &(d).fields, "MAP", "keys to read: prompt=K,response=K[,answer=K] (overrides detection)", 0, 0, NULL }, \
    { "--on-error", CLI_CHOICE, &(d).on_error, "fail|skip", "bad records: stop with a summary, or set aside", 0, 0, tmap_on_error_names() }, \
    { "--rejects", CLI_STRING, &(d).pool.rejects_path, "FILE", "with --on-error skip: write rejected records here (JSONL)", 0, 0, NULL }, \
    { "--max-record-bytes", CLI_SIZE, &(d).pool.max_record_bytes, "N", "longer records are rejected", 2, 1e12, NULL }

void cli_data_options_init(struct cli_data_options *d);
/* Turns the parsed strings into pool params for reading input_path: with
 * --on-error skip and no --rejects, rejects go to ./BASENAME.rejects.jsonl.
 * Prints and returns non-zero on a bad combination. */
int  cli_data_options_finish(struct cli_data_options *d, const char *input_path);
void cli_data_options_free(struct cli_data_options *d);
/* Reads one input of the command: the first starts the rejects file, each
 * later one adds to it (every reject names its file), and how many records
 * were set aside, and where, goes to stderr. */
enum tmap_status cli_load_pool(struct cli_data_options *d, const char *path, struct tmap_pool **out,
                               struct tmap_error *err);

/* Weight-search options shared by `learn` and `run`; the CLI_CHOICE ints
 * are turned into enums by cli_learn_options_finish. */
struct cli_learn_options {
    struct tmap_learn_params learn;
    int search, policy, metric, proxy, select, template_choice;
};


/* --select and --drop, shared by `select`, `learn` and `run`. */
#define CLI_SELECT_OPTIONS(sel, mode)                                                              \
    { "--ratio", CLI_DOUBLE, &(sel).ratio, "R", "share of the pool to select (default 0.3)", 1e-9, 1.0, NULL }, \
    { "--select", CLI_CHOICE, &(mode), "top|filter|stratified", "top: the highest combined scores (default); filter: leave out the lowest --drop and draw the ratio at random from the rest; stratified: the highest of each of --strata bands of record length (docs/fidelity.md measures each)", 0, 0, tmap_select_mode_names() }, \
    { "--drop", CLI_DOUBLE, &(sel).drop, "F", "filter selection: share of the pool left out (default 0.3)", 0.0, 1.0, NULL }, \
    { "--strata", CLI_SIZE, &(sel).strata, "N", "stratified selection: bands of record length (default 10)", 1, 1000000, NULL }, \
    { "--keep-duplicates", CLI_FLAG, &(sel).keep_duplicates, NULL, "let exact duplicates (same content) in more than once", 0, 0, NULL }

#define CLI_LEARN_OPTIONS(l)                                                                       \
    CLI_SELECT_OPTIONS((l).learn.select, (l).select), \
    { "--iters", CLI_SIZE, &(l).learn.iters, "N", "proxy evaluations the search may spend (default 30); it also stops after N in a row reuse a subset", 1, 100000, NULL }, \
    { "--batch", CLI_SIZE, &(l).learn.batch, "Q", "candidates per search round, shared among MPI ranks (default 1)", 1, 1024, NULL }, \
    { "--search", CLI_CHOICE, &(l).search, "bo|random|grid|equal", "how weights are searched (default bo; equal: no search, equal weights)", 0, 0, tmap_search_kind_names() }, \
    { "--signed", CLI_FLAG, &(l).learn.signed_weights, NULL, "also learn directions (weights on the L1 sphere)", 0, 0, NULL }, \
    { "--seed", CLI_U64, &(l).learn.seed, "S", "random seed (default 42)", 0, 0, NULL }, \
    { "-k", CLI_INT, &(l).learn.proxy.k, "K", "demonstrations per proxy prompt (default 8)", 1, 1000, NULL }, \
    { "--policy", CLI_CHOICE, &(l).policy, "top|random|knn", "how demonstrations are drawn (default random)", 0, 0, tmap_demo_policy_names() }, \
    { "--draws", CLI_SIZE, &(l).learn.proxy.draws, "M", "random policy and fine-tune proxy: draws averaged (default 2)", 1, 1000, NULL }, \
    { "--proxy-slices", CLI_SIZE, &(l).learn.proxy.slices, "S", "decode each evaluation's tiny set in S slices, shared among MPI ranks (default 1)", 1, 4096, NULL }, \
    { "--groups", CLI_SIZE, &(l).learn.proxy.groups, "G", "random policy: tiny-set groups, each with its own demonstrations (default 1)", 1, 10000, NULL }, \
    { "--metric", CLI_CHOICE, &(l).metric, "loglik|accuracy|mc", "proxy metric (default loglik)", 0, 0, tmap_metric_names() }, \
    { "--proxy", CLI_CHOICE, &(l).proxy, "icl|finetune", "what judges a subset: in-context learning (default), or a short fine-tune on records drawn from it (docs/fidelity.md)", 0, 0, tmap_proxy_kind_names() }, \
    { "--ft-records", CLI_SIZE, &(l).learn.proxy.ft_records, "N", "fine-tune proxy: records drawn from the subset per draw (default 64)", 1, 1000000, NULL }, \
    { "--train-layers", CLI_STRING, &(l).learn.proxy.ft_layers, "SPEC", "fine-tune proxy: which tensors train, as in tmap finetune (default all; a large model's last layers cost far less)", 0, 0, NULL }, \
    { "--baselines", CLI_SIZE, &(l).learn.n_random, "R", "random subsets of the same size the learned weights must beat (default 5; 0 = none)", 0, 1000, NULL }, \
    { "--redraws", CLI_SIZE, &(l).learn.n_redraws, "S", "fresh demonstration draws of the learned subset, its noise (default 4)", 0, 1000, NULL }, \
    { "--template", CLI_CHOICE, &(l).template_choice, "plain|chat", "prompt layout: plain, or the model's own chat template (default plain)", 0, 0, tmap_template_names() }

void cli_learn_options_init(struct cli_learn_options *l);
void cli_learn_options_finish(struct cli_learn_options *l);

/* ---- Reporting --------------------------------------------------------- */

extern bool cli_quiet;

/* "tmap: MESSAGE" on stderr; returns err->status for `return cli_report(&err);`. */
int cli_report(const struct tmap_error *err);
/* Prints a notice from the library on stderr unless --quiet. */
void cli_notice(const char *message, void *user_data);

/* tmap_model_load, then a warning on stderr (--quiet or not: it says the
 * results may mean little) when -c runs past the model's training context. */
/* Warns on stderr (rank 0, whatever --quiet) when the pool repeats records
 * of val, the tiny set or validation data read from val_path: a leak the
 * proxy would reward (tmap_pool_overlap). */
enum tmap_status cli_warn_overlap(const struct tmap_pool *pool, const struct tmap_pool *val, const char *val_path,
                                  struct tmap_error *err);

enum tmap_status cli_model_load(const struct tmap_model_params *params, struct tmap_model **out,
                                struct tmap_error *err);
/* Prints a usage error for the command and returns TMAP_ERR_USAGE. */
int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A tmap_progress_fn drawing a progress line on a terminal's stderr. */
void cli_progress(const struct tmap_progress *progress, void *user_data);

/* Writes s as a JSON string literal (quotes included) to stdout. */
void cli_print_json_string(const char *s);

#endif
