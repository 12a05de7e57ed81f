/*
 * main.c - `tmap COMMAND ...`: the command table and dispatch.
 *
 * `tmap --help` is generated from the table, so a new command is one line
 * here plus its own cmd_*.c file.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct cli_command commands[] = {
    { "version", cmd_version, "print tmap's and llama.cpp's versions and the build" },
    { "info",    cmd_info,    "describe a GGUF model (architecture, size, vocabulary, context)" },
    { "data",    cmd_data,    "inspect or clean a data set: `tmap data stats FILE`, `tmap data decontaminate`" },
    { "score",   cmd_score,   "score every pool sample with the indicators (stored, resumable)" },
    { "tiny",    cmd_tiny,    "pick ~100 weighted anchor items that stand for a validation set" },
    { "proxy",   cmd_proxy,   "in-context-learning score on a tiny set with demos from a subset" },
    { "eval",    cmd_eval,    "evaluate a model on a whole benchmark (few-shot; accuracy, loglik or mc)" },
    { "learn",   cmd_learn,   "learn indicator weights by Bayesian optimisation on the ICL proxy" },
    { "select",  cmd_select,  "select the top ratio of a pool by weighted indicator ranks" },
    { "run",     cmd_run,     "the main job: score, tiny set, learn, select, report" },
    { "model",   cmd_model,   "make models: `tmap model create`, `pretrain` (train a small Llama), `quantize`" },
    { "finetune", cmd_finetune, "train a model on a pool with llama.cpp's training API" },
};

static const size_t n_commands = sizeof commands / sizeof commands[0];

static void print_help(void)
{
    printf("tmap %s - pick the part of an instruction-tuning pool that fits one model and one task\n\n",
           tmap_version());
    printf("usage: tmap COMMAND [options]     (tmap COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < n_commands; i++)
        printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\nexit status: 0 ok, 1 usage, 2 bad data, 3 I/O, 4 model, 5 out of memory\n");
}

int cli_run_subcommand(const char *group, const struct cli_subcommand *subs, size_t n_subs,
                       int argc, char **argv)
{
    bool asked = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    for (size_t i = 0; argc >= 2 && !asked && i < n_subs; i++)
        if (strcmp(subs[i].name, argv[1]) == 0)
            return subs[i].run(argc - 1, argv + 1);
    FILE *out = asked ? stdout : stderr;
    if (!asked)
        fprintf(stderr, "tmap %s: %s%s%s\n", group, argc >= 2 ? "unknown subcommand '" : "expected a subcommand",
                argc >= 2 ? argv[1] : "", argc >= 2 ? "'" : "");
    fprintf(out, "usage: tmap %s SUBCOMMAND [options]\n\nsubcommands:\n", group);
    int width = 10;
    for (size_t i = 0; i < n_subs; i++)
        width = strlen(subs[i].name) > (size_t)width ? (int)strlen(subs[i].name) : width;
    for (size_t i = 0; i < n_subs; i++)
        fprintf(out, "  %-*s %s\n", width, subs[i].name, subs[i].summary);
    return asked ? 0 : TMAP_ERR_USAGE;
}

/* Commands that share their work among MPI ranks; under mpirun the other
 * commands run on rank 0 alone. */
static bool distributed(const char *name)
{
    return strcmp(name, "score") == 0 || strcmp(name, "run") == 0;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        print_help();
        return TMAP_ERR_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help();
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        name = "version";
    if (tmap_dist_rank() > 0 && !distributed(name))
        return 0;
    for (size_t i = 0; i < n_commands; i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    /* At most 2 edits, and never half a command's name ('x' is no typo). */
    struct cli_guess likely = { .word = name, .len = strlen(name) };
    for (size_t i = 0; i < n_commands; i++) {
        size_t n = strlen(commands[i].name);
        cli_guess_offer(&likely, commands[i].name, n, n / 2 < 2 ? n / 2 : 2);
    }
    if (likely.name)
        fprintf(stderr, "tmap: '%s' is not a command; did you mean %s? (`tmap --help` lists them)\n", name,
                likely.name);
    else
        fprintf(stderr, "tmap: '%s' is not a command; `tmap --help` lists them\n", name);
    return TMAP_ERR_USAGE;
}

int main(int argc, char **argv)
{
    /* Under mpirun or srun every rank runs this same command line; rank 0
     * prints and writes the outputs, the others only compute (and report
     * their own errors, prefixed by cli_report). */
    struct tmap_error err = { 0 };
    if (tmap_dist_init(&argc, &argv, &err) != TMAP_OK)
        return cli_report(&err);
    if (tmap_dist_rank() > 0) {
        cli_quiet = true;
        if (!freopen("/dev/null", "w", stdout))
            fprintf(stderr, "tmap: rank %d: cannot silence stdout\n", tmap_dist_rank());
    }
    int rc = dispatch(argc, argv);
    if (rc != 0)
        tmap_dist_failed(rc);
    tmap_dist_finalize();
    return rc;
}
