/*
 * scores.c - the score table: columns, lookups, CSV out, and merging a
 * user's own indicator columns (an external reward model, say) from a CSV
 * keyed by sample id.
 */
#include "indicators/scores.h"
#include "data/format.h"
#include "util/csv.h"
#include "util/atomic.h"
#include "util/error.h"
#include "util/grow.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tmap_scores *tmap_scores_create_empty(size_t n_rows)
{
    struct tmap_scores *s = calloc(1, sizeof *s);
    if (s)
        s->n_rows = n_rows;
    return s;
}

struct tmap_scores *tmap_scores_create(size_t n_rows)
{
    struct tmap_scores *s = tmap_scores_create_empty(n_rows);
    if (!s)
        return NULL;
    for (int j = 0; j < TMAP_IND_COUNT; j++) {
        if (tmap_scores_add_column(s, tmap_indicator_name((enum tmap_indicator)j)) == SIZE_MAX) {
            tmap_scores_free(s);
            return NULL;
        }
    }
    return s;
}

size_t tmap_scores_add_column(struct tmap_scores *s, const char *name)
{
    size_t rows = s->n_rows ? s->n_rows : 1;
    size_t old_cap = s->cap_cols;
    if (!tmap_grow((void **)&s->names, &s->cap_cols, s->n_cols + 1, sizeof *s->names))
        return SIZE_MAX;
    if (s->cap_cols != old_cap) {
        double *moved = realloc(s->values, s->cap_cols * rows * sizeof *moved);
        if (!moved)
            return SIZE_MAX;
        s->values = moved;
    }
    char *copy = malloc(strlen(name) + 1);
    if (!copy)
        return SIZE_MAX;
    strcpy(copy, name);
    s->names[s->n_cols] = copy;
    double *col = s->values + s->n_cols * s->n_rows;
    for (size_t i = 0; i < s->n_rows; i++)
        col[i] = NAN;
    return s->n_cols++;
}

void tmap_scores_free(struct tmap_scores *s)
{
    if (!s)
        return;
    for (size_t j = 0; j < s->n_cols; j++)
        free(s->names[j]);
    free(s->names);
    free(s->values);
    free(s);
}

size_t tmap_scores_n_rows(const struct tmap_scores *s)
{
    return s->n_rows;
}

size_t tmap_scores_n_columns(const struct tmap_scores *s)
{
    return s->n_cols;
}

const char *tmap_scores_column_name(const struct tmap_scores *s, size_t col)
{
    return col < s->n_cols ? s->names[col] : NULL;
}

size_t tmap_scores_find_column(const struct tmap_scores *s, const char *name)
{
    for (size_t j = 0; j < s->n_cols; j++)
        if (strcmp(s->names[j], name) == 0)
            return j;
    return SIZE_MAX;
}

double tmap_scores_get(const struct tmap_scores *s, size_t row, size_t col)
{
    return row < s->n_rows && col < s->n_cols ? s->values[col * s->n_rows + row] : NAN;
}

void tmap_scores_get_stats(const struct tmap_scores *s, struct tmap_score_stats *out)
{
    *out = s->stats;
}

/* ---- CSV out ------------------------------------------------------------ */

static bool column_has_values(const struct tmap_scores *s, size_t col)
{
    const double *v = s->values + col * s->n_rows;
    for (size_t i = 0; i < s->n_rows; i++)
        if (!isnan(v[i]))
            return true;
    return false;
}

enum tmap_status tmap_scores_write_csv(const struct tmap_scores *s, const struct tmap_pool *pool,
                                       const char *path, struct tmap_error *err)
{
    struct tmap_atomic_file a;
    enum tmap_status st = tmap_atomic_open(&a, path, "w", err);
    if (st)
        return st;
    FILE *f = a.f;
    bool *keep = calloc(s->n_cols ? s->n_cols : 1, sizeof *keep);
    if (!keep) {
        tmap_atomic_abort(&a);
        return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory writing %s", path);
    }
    fputs("id,line,hash", f);
    for (size_t j = 0; j < s->n_cols; j++)
        if ((keep[j] = column_has_values(s, j)))
            fprintf(f, ",%s", s->names[j]);
    fputc('\n', f);
    for (size_t i = 0; i < s->n_rows; i++) {
        struct tmap_record rec;
        tmap_pool_record(pool, i, &rec);
        tmap_csv_write_field(f, rec.id);
        char hex[33];
        tmap_hash_hex(rec.hash, hex);
        fprintf(f, ",%zu,%s", rec.line, hex);
        for (size_t j = 0; j < s->n_cols; j++) {
            if (!keep[j])
                continue;
            double v = s->values[j * s->n_rows + i];
            /* %.17g round-trips a double exactly: reruns compare byte for byte. */
            if (isnan(v))
                fputc(',', f);
            else
                fprintf(f, ",%.17g", v);
        }
        fputc('\n', f);
    }
    free(keep);
    return tmap_atomic_commit(&a, err); /* a failed write shows here */
}

/* ---- CSV in (--extra) --------------------------------------------------- */

enum { MAX_EXTRA_COLUMNS = 64 };

struct extra_csv {
    bool      (*keep)(const char *name); /* columns to read; NULL = all */
    const char *path;
    FILE       *f;
    char       *line;
    size_t      line_cap;
    size_t      line_no;
    int         n_fields;
    size_t      cols[MAX_EXTRA_COLUMNS]; /* score column of each CSV field after id */
    int         hash_field;              /* the "hash" field's index, or -1 */
    size_t     *line_of_row;             /* the CSV line that gave each pool row, 0 for none */
    size_t      n_rows_read;
};

static enum tmap_status read_header(struct extra_csv *x, struct tmap_scores *s, struct tmap_error *err)
{
    char *fields[MAX_EXTRA_COLUMNS + 1];
    if (getline(&x->line, &x->line_cap, x->f) < 0)
        return tmap_fail(err, TMAP_ERR_DATA, "%s: empty file, expected a header line starting with id", x->path);
    x->line_no = 1;
    x->line[strcspn(x->line, "\r\n")] = '\0';
    x->n_fields = tmap_csv_split(x->line, fields, MAX_EXTRA_COLUMNS + 1);
    if (x->n_fields < 2 || strcmp(fields[0], "id") != 0)
        return tmap_fail(err, TMAP_ERR_DATA, "%s:1: the header must be id,NAME[,NAME...]", x->path);
    x->hash_field = -1;
    for (int k = 1; k < x->n_fields; k++) {
        if (x->keep && !x->keep(fields[k])) {
            /* A hash column that is not read as a score is tmap's own: the
             * content hash of the record it scored. In a user's --extra
             * file "hash" is just a column name. */
            if (strcmp(fields[k], "hash") == 0)
                x->hash_field = k;
            x->cols[k - 1] = SIZE_MAX;
            continue;
        }
        if (tmap_scores_find_column(s, fields[k]) != SIZE_MAX)
            return tmap_fail(err, TMAP_ERR_DATA, "%s:1: column \"%s\" already exists", x->path, fields[k]);
        x->cols[k - 1] = tmap_scores_add_column(s, fields[k]);
        if (x->cols[k - 1] == SIZE_MAX)
            return tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", x->path);
    }
    return TMAP_OK;
}

static enum tmap_status read_row(struct extra_csv *x, struct tmap_scores *s,
                                 const struct tmap_pool *pool, struct tmap_error *err)
{
    char *fields[MAX_EXTRA_COLUMNS + 1];
    x->line[strcspn(x->line, "\r\n")] = '\0';
    if (!x->line[0])
        return TMAP_OK;
    int n = tmap_csv_split(x->line, fields, MAX_EXTRA_COLUMNS + 1);
    if (n != x->n_fields)
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: %d fields, the header has %d", x->path,
                         x->line_no, n, x->n_fields);
    size_t row = tmap_pool_find(pool, fields[0]);
    if (row == SIZE_MAX)
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: id \"%s\" is not in %s", x->path, x->line_no,
                         fields[0], tmap_pool_path(pool));
    if (x->line_of_row[row])
        return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: id \"%s\" again (first on line %zu)", x->path,
                         x->line_no, fields[0], x->line_of_row[row]);
    x->line_of_row[row] = x->line_no;
    x->n_rows_read++;
    /* tmap score writes each record's content hash: a record edited since
     * it was scored keeps its id, and its old scores would rank new text. */
    if (x->hash_field > 0 && fields[x->hash_field][0]) {
        struct tmap_record rec;
        enum tmap_status st = tmap_pool_record(pool, row, &rec);
        if (st)
            return tmap_fail(err, st, "%s: cannot read record %zu", tmap_pool_path(pool), row + 1);
        char hex[33];
        tmap_hash_hex(rec.hash, hex);
        if (strcmp(hex, fields[x->hash_field]) != 0)
            return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: record \"%s\" has changed since it was scored "
                             "(%s:%zu holds other text); score the pool again", x->path, x->line_no, fields[0],
                             tmap_pool_path(pool), rec.line);
    }
    for (int k = 1; k < n; k++) {
        if (x->cols[k - 1] == SIZE_MAX)
            continue;
        char *end;
        errno = 0;
        double v = strtod(fields[k], &end);
        if (!fields[k][0])
            v = NAN; /* an empty cell is a missing value */
        else if (errno || *end)
            return tmap_fail(err, TMAP_ERR_DATA, "%s:%zu: \"%s\" is not a number", x->path,
                             x->line_no, fields[k]);
        tmap_scores_column(s, x->cols[k - 1])[row] = v;
    }
    return TMAP_OK;
}

enum tmap_status tmap_scores_merge_csv(struct tmap_scores *s, const struct tmap_pool *pool,
                                       const char *path, struct tmap_error *err)
{
    return tmap_scores_merge_csv_columns(s, pool, path, NULL, NULL, err);
}

enum tmap_status tmap_scores_merge_csv_columns(struct tmap_scores *s, const struct tmap_pool *pool,
                                               const char *path, bool (*keep)(const char *name),
                                               size_t *line_of_row, struct tmap_error *err)
{
    struct extra_csv x = { .path = path, .keep = keep };
    x.f = fopen(path, "r");
    if (!x.f)
        return tmap_fail(err, TMAP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t n = tmap_pool_size(pool);
    x.line_of_row = line_of_row ? memset(line_of_row, 0, n * sizeof *line_of_row)
                                : calloc(n ? n : 1, sizeof *x.line_of_row);
    enum tmap_status st = x.line_of_row ? read_header(&x, s, err)
                                        : tmap_fail(err, TMAP_ERR_NOMEM, "out of memory reading %s", path);
    while (!st && getline(&x.line, &x.line_cap, x.f) >= 0) {
        x.line_no++;
        st = read_row(&x, s, pool, err);
    }
    if (!st && x.n_rows_read == 0)
        st = tmap_fail(err, TMAP_ERR_DATA, "%s: a header and no rows: it holds no values for %s", path,
                       tmap_pool_path(pool));
    if (!line_of_row)
        free(x.line_of_row);
    free(x.line);
    fclose(x.f);
    return st;
}
