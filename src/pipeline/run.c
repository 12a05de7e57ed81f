/*
 * run.c - `tmap run`, the main job: the whole pipeline of docs/design.md
 * section 1 in one call.
 *
 *   score  every pool sample (indicators; SQLite store)
 *   tiny   ~100 weighted anchors of the validation data
 *   learn  the indicator weights by Bayesian optimisation on the ICL proxy
 *   select the top ratio by the learned combined score
 *   write  selected.jsonl, scores.csv, weights.json, trace.csv, report.html
 *
 * One store (OUT_DIR/store.db unless named) keeps scores, embeddings and
 * proxy values, so a rerun, or a run resumed after a kill, repeats no model
 * work.
 */
#include "util/clock.h"
#include "dist/dist.h"
#include "proxy/proxy.h"
#include "report/report.h"
#include "util/error.h"

#include "tmap.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct tmap_run_params tmap_run_default_params(void)
{
    struct tmap_run_params p = {
        .model = tmap_model_default_params(),
        .pool  = tmap_pool_default_params(),
        .score = tmap_score_default_params(),
        .tiny  = tmap_tiny_default_params(),
        .learn = tmap_learn_default_params(),
    };
    p.model.n_seq = 8; /* the proxy keeps one sequence for the shared demonstrations */
    return p;
}

void tmap_run_summary_free(struct tmap_run_summary *s)
{
    if (!s)
        return;
    tmap_weights_free(&s->weights);
    free(s->baselines.single);
    free(s->baselines.random);
    free(s->baselines.redraws);
    memset(&s->baselines, 0, sizeof s->baselines);
}

/* Everything the run holds, freed in one place. */
struct run_state {
    const struct tmap_run_params *p;
    char                store[4096];
    struct tmap_pool   *pool, *val, *tiny_pool;
    struct tmap_model  *model, *judge, *embedder; /* judge, embedder: NULL = the model */
    struct tmap_scores *scores;
    struct tmap_tiny    tiny;
    struct tmap_proxy_counters demos; /* what the proxy's prompts of the learned subset hold */
    struct tmap_proxy  *proxy;
    struct tmap_learn_result learned;
    struct tmap_selection    sel;
    struct tmap_overlap      val_in_pool;
    char               *config;
};

static void free_state(struct run_state *r)
{
    tmap_selection_free(&r->sel);
    tmap_learn_result_free(&r->learned);
    tmap_proxy_free(r->proxy);
    tmap_tiny_free(&r->tiny);
    tmap_scores_free(r->scores);
    tmap_model_free(r->embedder);
    tmap_model_free(r->judge);
    tmap_model_free(r->model);
    tmap_pool_free(r->tiny_pool);
    tmap_pool_free(r->val);
    tmap_pool_free(r->pool);
    free(r->config);
}

static void out_path(const struct run_state *r, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", r->p->out_dir, name);
}

static enum tmap_status make_out_dir(const char *dir, struct tmap_error *err)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot create the output folder: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tmap_fail(err, TMAP_ERR_IO, "%s: exists and is not a folder", dir);
    return TMAP_OK;
}

/* The configuration weights.json records: enough to rerun the same job. */
static char *config_json(const struct run_state *r)
{
    const struct tmap_run_params *p = r->p;
    struct tmap_model_info mi;
    tmap_model_get_info(r->model, &mi);
    char *learn = tmap_learn_params_to_json(&p->learn);
    json_t *c = learn ? json_loads(learn, 0, NULL) : NULL;
    free(learn);
    json_t *run = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:I}", "model", p->model.path,
                            "model_fingerprint", mi.fingerprint, "model_description", mi.description, "pool",
                            p->pool_path, "val", p->val_path, "template", tmap_template_name(p->score.tmpl),
                            "judge", p->judge_path, "embed_model", p->embed_path, "tiny_items",
                            (json_int_t)r->tiny.n);
    /* Validation records the pool repeats (zeros when none). */
    const struct tmap_overlap *o = &r->val_in_pool;
    if (run)
        json_object_set_new(run, "val_in_pool", json_pack("{s:I, s:I, s:I}", "prompts", (json_int_t)o->n_prompts,
                                                          "records", (json_int_t)o->n_records, "pool_records",
                                                          (json_int_t)o->n_pool_rows));
    /* How many demonstrations the prompts held: a value judged by one
     * record per draw is not the k-shot value the settings promise. */
    const struct tmap_proxy_counters pc = r->demos;
    if (run && pc.n_prompts)
        json_object_set_new(run, "proxy_demos", json_pack("{s:I, s:I, s:I}", "prompts", (json_int_t)pc.n_prompts,
                                                          "asked", (json_int_t)pc.n_demos_wanted, "held",
                                                          (json_int_t)pc.n_demos));
    char *text = NULL;
    if (c && run && json_object_update(c, run) == 0)
        text = json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(run);
    json_decref(c);
    return text;
}

/* A context past a model's training is said before the work, not only in
 * the summary at its end: the run may take hours, all of them spent on
 * positions the model never saw. */
static void notice_context(const struct run_state *r, const struct tmap_model *m, const char *path)
{
    const struct tmap_score_params *sp = &r->p->score;
    if (!m || !sp->notice || tmap_dist_rank() != 0)
        return;
    struct tmap_model_info mi;
    tmap_model_get_info(m, &mi);
    char line[512], message[4700];
    if (!tmap_model_context_warning(&mi, line, sizeof line))
        return;
    snprintf(message, sizeof message, "%s: %s", path, line);
    sp->notice(message, sp->notice_user_data);
}

/* Every loaded model's context warning in one line for the report, the
 * target's first and alone as it is; the judge's and the embedder's say
 * whose they are. */
static bool context_warnings(const struct run_state *r, char *buf, size_t size)
{
    const struct {
        const struct tmap_model *model;
        const char *role;
    } models[] = { { r->model, "" }, { r->judge, "the judge: " }, { r->embedder, "the embedder: " } };
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof models / sizeof models[0] && used < size; i++) {
        struct tmap_model_info mi;
        char line[512];
        if (!models[i].model)
            continue;
        tmap_model_get_info(models[i].model, &mi);
        if (tmap_model_context_warning(&mi, line, sizeof line))
            used += (size_t)snprintf(buf + used, size - used, "%s%s%s", used ? "; " : "", models[i].role, line);
    }
    return used > 0;
}

static enum tmap_status load_inputs(struct run_state *r, struct tmap_error *err)
{
    const struct tmap_run_params *p = r->p;
    enum tmap_status st = make_out_dir(p->out_dir, err);
    /* One rejects file for both inputs (each reject names its file), and
     * under MPI only rank 0 writes it: the ranks read the same records. */
    struct tmap_pool_params pool = p->pool, val = p->pool;
    if (p->learn.distributed && tmap_dist_rank() != 0)
        pool.rejects_path = val.rejects_path = NULL;
    val.rejects_append = true;
    if (!st)
        st = tmap_pool_load(p->pool_path, &pool, &r->pool, err);
    if (!st)
        st = tmap_pool_load(p->val_path, &val, &r->val, err);
    if (!st)
        st = tmap_model_load(&p->model, &r->model, err);
    /* Distributed, every rank of a host trains a copy of its own during
     * the search, all at once in its initial design. */
    if (!st)
        st = proxy_check_model(r->model, &p->learn.proxy, p->learn.distributed ? dist_local_size() : 1, err);
    /* The judge and the embedder run with the target's runtime options. */
    struct tmap_model_params mp = p->model;
    if (!st && p->judge_path) {
        mp.path = p->judge_path;
        st = tmap_model_load(&mp, &r->judge, err);
    }
    if (!st && p->embed_path) {
        mp.path = p->embed_path;
        st = tmap_model_load(&mp, &r->embedder, err);
    }
    /* Validation records the pool repeats: said before the work, as the
     * context is, and in every output after it. */
    if (!st)
        st = tmap_pool_overlap(r->pool, r->val, NULL, &r->val_in_pool, err);
    char leak[1024];
    if (!st && p->score.notice && tmap_dist_rank() == 0 &&
        tmap_overlap_describe(&r->val_in_pool, p->val_path, leak, sizeof leak))
        p->score.notice(leak, p->score.notice_user_data);
    /* A rank that failed here (a file its host lacks, memory its host has
     * not got) tells the others, which would wait for it in the scoring
     * pass's first collective otherwise, and rank 0 names it. */
    if (p->learn.distributed)
        st = dist_worst_status(st, err);
    if (!st) {
        notice_context(r, r->model, p->model.path);
        notice_context(r, r->judge, p->judge_path);
        notice_context(r, r->embedder, p->embed_path);
    }
    return st;
}

static enum tmap_status score_pool(struct run_state *r, struct tmap_run_summary *sum, struct tmap_error *err)
{
    struct tmap_score_params sp = r->p->score;
    sp.store_path = r->store;
    sp.val = r->val;
    sp.judge = r->judge;
    sp.embedder = r->embedder;
    double t0 = tmap_now_seconds();
    enum tmap_status st = tmap_score(r->pool, r->model, &sp, &r->scores, err);
    sum->seconds_score = tmap_now_seconds() - t0;
    if (!st)
        tmap_scores_get_stats(r->scores, &sum->score_stats);
    return st;
}

/* Distributed: rank 0 picks the tiny set (the store is its own), every
 * rank gets it. */
static enum tmap_status share_tiny(struct run_state *r, enum tmap_status st, struct tmap_error *err)
{
    st = dist_share_status(st, err, 0);
    if (st)
        return st;
    dist_bcast(&r->tiny.n, sizeof r->tiny.n, 0);
    if (tmap_dist_rank() != 0) {
        r->tiny.rows = calloc(r->tiny.n ? r->tiny.n : 1, sizeof *r->tiny.rows);
        r->tiny.weights = calloc(r->tiny.n ? r->tiny.n : 1, sizeof *r->tiny.weights);
        if (!r->tiny.rows || !r->tiny.weights)
            st = tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for a tiny set of %zu", r->tiny.n);
    }
    st = dist_worst_status(st, err);
    if (!st) {
        dist_bcast(r->tiny.rows, r->tiny.n * sizeof *r->tiny.rows, 0);
        dist_bcast(r->tiny.weights, r->tiny.n * sizeof *r->tiny.weights, 0);
    }
    return st;
}

static enum tmap_status build_tiny(struct run_state *r, struct tmap_run_summary *sum, struct tmap_error *err)
{
    struct tmap_tiny_params tp = r->p->tiny;
    tp.store_path = r->store;
    tp.tmpl = r->p->score.tmpl;
    double t0 = tmap_now_seconds();
    char path[4200];
    out_path(r, "tiny.jsonl", path, sizeof path);
    bool shared = r->p->learn.distributed && tmap_dist_size() > 1;
    enum tmap_status st = TMAP_OK;
    if (!shared || tmap_dist_rank() == 0)
        st = tmap_tiny_select(r->val, r->model, &tp, &r->tiny, err);
    if (shared)
        st = share_tiny(r, st, err);
    /* The other ranks load the same bytes from a private file: the output
     * folder is rank 0's. */
    int fd = -1;
    if (!st && shared && tmap_dist_rank() != 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/tmap-tiny-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if ((fd = mkstemp(path)) < 0)
            st = tmap_fail(err, TMAP_ERR_IO, "%s: cannot make a temporary file: %s", path, strerror(errno));
    }
    if (!st)
        st = tmap_tiny_write(&r->tiny, r->val, path, err);
    /* tmap wrote every line of it from records already read: nothing to set
     * aside, and the inputs' rejects file is not this load's to start anew. */
    struct tmap_pool_params pp = r->p->pool;
    pp.on_error = TMAP_ON_ERROR_FAIL;
    pp.rejects_path = NULL;
    if (!st)
        st = tmap_pool_load(path, &pp, &r->tiny_pool, err);
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    if (shared)
        st = dist_worst_status(st, err);
    sum->seconds_tiny = tmap_now_seconds() - t0;
    return st;
}

static enum tmap_status learn_weights(struct run_state *r, struct tmap_run_summary *sum, struct tmap_error *err)
{
    struct tmap_proxy_params pp = r->p->learn.proxy;
    /* Rank 0 keeps the proxy memo; the others compute without a store. */
    pp.store_path = r->p->learn.distributed && tmap_dist_rank() != 0 ? NULL : r->store;
    double t0 = tmap_now_seconds();
    enum tmap_status st = tmap_proxy_create(r->model, r->tiny_pool, NULL, &pp, &r->proxy, err);
    if (!st)
        st = tmap_learn(r->pool, r->scores, r->proxy, &r->p->learn, &r->learned, err);
    const struct tmap_selection *sel = &r->learned.selection;
    if (!st)
        st = tmap_proxy_count_demos(r->proxy, r->pool, sel->rows, sel->n, sel->combined, &r->demos, err);
    sum->seconds_learn = tmap_now_seconds() - t0;
    return st;
}

/* The embeddings come from the store (scoring kept them): no model work. */
static enum tmap_status diversify(struct run_state *r, struct tmap_error *err)
{
    float *emb = NULL;
    int32_t dim = 0;
    struct tmap_model *embedder = r->embedder ? r->embedder : r->model;
    /* The template scoring read the pool under (a separate embedder reads
     * plain text), so the stored embeddings are found. */
    enum tmap_template tmpl = r->embedder ? TMAP_TEMPLATE_PLAIN : r->p->score.tmpl;
    enum tmap_status st = tmap_embed_pool(r->pool, embedder, tmpl, r->store, &emb, NULL, &dim, err);
    if (!st)
        st = tmap_selection_diversify(r->pool, &r->sel, emb, dim, r->p->diversity_threshold, err);
    free(emb);
    return st;
}

static enum tmap_status write_report(struct run_state *r, struct tmap_error *err)
{
    const struct tmap_weights *w = &r->learned.weights;
    size_t n = r->scores ? tmap_scores_n_rows(r->scores) : 0;
    double *raw = malloc((n ? n : 1) * (w->d ? w->d : 1) * sizeof *raw);
    double *trace = calloc(r->learned.n_trace ? r->learned.n_trace : 1, sizeof *trace);
    bool *reused = calloc(r->learned.n_trace ? r->learned.n_trace : 1, sizeof *reused);
    enum tmap_status st = raw && trace && reused ? TMAP_OK : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory for the report");
    for (size_t j = 0; !st && j < w->d; j++) {
        size_t col = tmap_scores_find_column(r->scores, w->names[j]);
        for (size_t i = 0; i < n; i++)
            raw[j * n + i] = tmap_scores_get(r->scores, i, col);
    }
    for (size_t i = 0; !st && i < r->learned.n_trace; i++) {
        trace[i] = r->learned.trace[i].value;
        reused[i] = r->learned.trace[i].reused;
    }
    struct tmap_model_info mi;
    tmap_model_get_info(r->model, &mi);
    char title[512], path[4200];
    snprintf(title, sizeof title, "tmap: %s for %s", r->p->pool_path, mi.description);
    out_path(r, "report.html", path, sizeof path);
    char knowledge[512];
    if (mi.eval_on[0] && isfinite(mi.eval_response_loss))
        snprintf(knowledge, sizeof knowledge, "held-out loss %.3f bits/byte (%.4f nats/token) on %s; trained on %s",
                 mi.eval_response_bpb, mi.eval_response_loss, mi.eval_on, mi.trained_on);
    else
        snprintf(knowledge, sizeof knowledge, "%s", mi.trained_on[0] ? mi.trained_on
                                                   : "unknown: the model carries no training record");
    char context[1600], leak[1024];
    bool beyond = context_warnings(r, context, sizeof context);
    bool leaks = tmap_overlap_describe(&r->val_in_pool, r->p->val_path, leak, sizeof leak);
    struct tmap_report_input in = {
        .baselines = &r->learned.baselines, .n_duplicates = r->sel.n_duplicates, .model_knowledge = knowledge,
        .context_warning = beyond ? context : NULL, .overlap_warning = leaks ? leak : NULL,
        .advice = tmap_baselines_advice(&r->learned.baselines, &r->p->learn, w),
        .title = title, .model_description = mi.description, .config_json = r->config,
        .n_indicators = w->d, .names = (const char *const *)w->names, .weights = w->weights,
        .n_rows = n, .raw = raw, .combined = r->sel.combined, .selected = r->sel.selected,
        .n_trace = r->learned.n_trace, .trace_values = trace, .trace_reused = reused,
        .search_stalled = r->learned.stalled,
        .best_value = w->proxy_value, .pool = r->pool, .n_examples = 5,
    };
    if (!st)
        st = tmap_report_write_html(path, &in, err);
    free(raw);
    free(trace);
    free(reused);
    return st;
}

static enum tmap_status write_outputs(struct run_state *r, struct tmap_error *err)
{
    char path[4200];
    r->config = config_json(r);
    out_path(r, "selected.jsonl", path, sizeof path);
    enum tmap_status st = tmap_selection_write(r->pool, &r->sel, path, err);
    out_path(r, "scores.csv", path, sizeof path);
    if (!st)
        st = tmap_selection_write_table(r->pool, r->scores, &r->learned.weights, &r->sel, path, err);
    out_path(r, "weights.json", path, sizeof path);
    if (!st)
        st = tmap_weights_write_json(&r->learned.weights, &r->learned.baselines, r->config, path, err);
    out_path(r, "trace.csv", path, sizeof path);
    if (!st)
        st = tmap_learn_result_write_trace(&r->learned, path, err);
    if (!st)
        st = write_report(r, err);
    return st;
}

/* Copies the learned weights out, names included. */
static enum tmap_status copy_weights(const struct tmap_weights *from, struct tmap_weights *to, struct tmap_error *err)
{
    *to = *from;
    to->names = calloc(from->d, sizeof *to->names);
    to->weights = malloc(from->d * sizeof *to->weights);
    to->higher_is_better = malloc(from->d * sizeof *to->higher_is_better);
    if (!to->names || !to->weights || !to->higher_is_better)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    memcpy(to->weights, from->weights, from->d * sizeof *to->weights);
    memcpy(to->higher_is_better, from->higher_is_better, from->d * sizeof *to->higher_is_better);
    for (size_t j = 0; j < from->d; j++)
        if (!(to->names[j] = strdup(from->names[j])))
            return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    return TMAP_OK;
}

static double *copy_values(const double *v, size_t n)
{
    double *c = malloc((n ? n : 1) * sizeof *c);
    if (c && n)
        memcpy(c, v, n * sizeof *c);
    return c;
}

static enum tmap_status copy_baselines(const struct tmap_baselines *from, struct tmap_baselines *to,
                                       struct tmap_error *err)
{
    *to = *from;
    to->single = copy_values(from->single, from->d);
    to->random = copy_values(from->random, from->n_random);
    to->redraws = copy_values(from->redraws, from->n_redraws);
    if (!to->single || !to->random || !to->redraws)
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory");
    return TMAP_OK;
}

static void fill_summary(const struct run_state *r, struct tmap_run_summary *s)
{
    tmap_model_get_info(r->model, &s->model);
    if (r->judge)
        tmap_model_get_info(r->judge, &s->judge);
    if (r->embedder)
        tmap_model_get_info(r->embedder, &s->embedder);
    s->n_duplicates = r->sel.n_duplicates;
    s->val_in_pool = r->val_in_pool;
    s->n_pool = tmap_pool_size(r->pool);
    s->n_val = tmap_pool_size(r->val);
    s->n_pool_rejected = tmap_pool_n_rejected(r->pool);
    s->n_val_rejected = tmap_pool_n_rejected(r->val);
    s->n_tiny = r->tiny.n;
    s->n_selected = r->sel.n;
    s->n_evaluations = r->learned.n_trace;
    s->n_spent = r->learned.n_spent;
    s->search_stalled = r->learned.stalled;
    s->uniform_value = r->learned.baselines.equal;
    s->proxy_demos = r->demos;
}

enum tmap_status tmap_run(const struct tmap_run_params *p, struct tmap_run_summary *out, struct tmap_error *err)
{
    memset(out, 0, sizeof *out);
    if (!p->pool_path || !p->val_path || !p->out_dir || !p->model.path)
        return tmap_fail(err, TMAP_ERR_USAGE, "a run needs a model, a pool, validation data and an output folder");
    double t0 = tmap_now_seconds();
    struct run_state r = { .p = p };
    if (p->store_path)
        snprintf(r.store, sizeof r.store, "%s", p->store_path);
    else
        snprintf(r.store, sizeof r.store, "%s/store.db", p->out_dir);
    enum tmap_status st = load_inputs(&r, err);
    if (!st)
        st = score_pool(&r, out, err);
    if (!st)
        st = build_tiny(&r, out, err);
    if (!st)
        st = learn_weights(&r, out, err);
    if (!st) { /* the learned weights' selection, made by tmap_learn */
        r.sel = r.learned.selection;
        memset(&r.learned.selection, 0, sizeof r.learned.selection);
    }
    /* Every rank has the same selection now; rank 0 writes it. */
    bool writer = !p->learn.distributed || tmap_dist_rank() == 0;
    if (!st && writer && p->diversity_threshold > 0.0)
        st = diversify(&r, err);
    if (!st && writer)
        st = write_outputs(&r, err);
    if (!st) {
        fill_summary(&r, out);
        st = copy_weights(&r.learned.weights, &out->weights, err);
        if (!st)
            st = copy_baselines(&r.learned.baselines, &out->baselines, err);
    }
    out->seconds_total = tmap_now_seconds() - t0;
    free_state(&r);
    if (st)
        tmap_run_summary_free(out);
    return st;
}
