/* The Adobe Target Recommendations CSV feed:
 *
 *   ## RECSRecommendations Upload File
 *   ## RECS''## RECS'' indicates a Recommendations pre-process header. ...
 *   ## RECSentity.id,entity.name,entity.categoryId,entity.message,...,entity.custom1
 *   na3456,Watch,"Watches,Sport",...,"[""New"",""Web""]"
 *
 * Lines starting "## RECS" are comments, except the one naming the columns
 * (the header row: "entity.id" first). A header row without the prefix is
 * accepted too (feeds edited in spreadsheets lose it); a feed without any
 * header row is refused, since guessing the columns would import garbage.
 * Column names may carry stray spaces ("entity. categoryId ") and any case
 * for the standard ones; other names are custom attributes (at most 100).
 *
 * Cells: empty or blank cells leave the attribute unchanged (Target: "a
 * blank cannot overwrite a value"), so a partial feed updates only what it
 * has; categoryId is a comma-separated list or a JSON array; value,
 * inventory and margin must be plain numbers ("12.99", never "12,99 EUR");
 * a custom cell holding a JSON array is a multi-value attribute. A row with
 * fewer fields than the header names, or extra non-empty fields (an
 * unquoted comma), is rejected rather than imported shifted. */
#include "catalog/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/banned.h"

enum { COL_IGNORE = 0, COL_ID, COL_FIELD, COL_CUSTOM };

typedef struct col {
    int kind;
    unsigned field; /* COL_FIELD: TD_ENTITY_* bit */
    char *name;     /* as written, for error paths */
    char *attr;     /* COL_CUSTOM: the attribute name */
} col_t;

typedef struct csv_feed {
    const td_feed_sink_t *sink;
    void *sctx;
    col_t *cols;
    int n_cols;
    int required; /* fields a row needs: up to the last named column */
    bool have_header;
    td_entity_t ent;
} csv_feed_t;

static void free_cols(csv_feed_t *f)
{
    for (int i = 0; i < f->n_cols; i++) {
        free(f->cols[i].name);
        free(f->cols[i].attr);
    }
    free(f->cols);
    f->cols = NULL;
    f->n_cols = f->required = 0;
}

/* "entity. categoryId " -> "categoryId" */
static void column_name(const char *s, size_t len, const char **out, size_t *out_len)
{
    td_catalog__trim(&s, &len);
    if (len >= 7 && strncasecmp(s, "entity.", 7) == 0) {
        s += 7;
        len -= 7;
        td_catalog__trim(&s, &len);
    }
    *out = s;
    *out_len = len;
}

static bool is_id_column(const char *s, size_t len)
{
    const char *n;
    size_t nlen;

    column_name(s, len, &n, &nlen);
    return nlen == 2 && strncasecmp(n, "id", 2) == 0;
}

static int set_header(csv_feed_t *f, const td_dsv_record_t *r, int line, td_err_t *err)
{
    int n_custom = 0, id_at = -1;

    free_cols(f);
    f->cols = td_xcalloc((size_t)r->n, sizeof(col_t));
    f->n_cols = r->n;
    for (int i = 0; i < r->n; i++) {
        col_t *c = &f->cols[i];
        const char *name;
        size_t len, bad;
        column_name(r->cells[i], r->lens[i], &name, &len);
        c->name = td_xstrndup(r->cells[i], r->lens[i]);
        if (len == 0) {
            continue; /* a trailing comma: nothing to read there */
        }
        f->required = i + 1;
        if (len > TD_CATALOG_MAX_NAME || !td_catalog__utf8_valid(name, len, &bad)) {
            return td_err_set_at(err, TD_EINVAL, c->name, line, i + 1,
                                 "column %d: a name of at most %d bytes of UTF-8 is expected",
                                 i + 1, TD_CATALOG_MAX_NAME);
        }
        for (int j = 0; j < i; j++) {
            if (f->cols[j].kind != COL_IGNORE && f->cols[j].attr &&
                strlen(f->cols[j].attr) == len && strncasecmp(f->cols[j].attr, name, len) == 0) {
                return td_err_set_at(err, TD_EINVAL, c->name, line, i + 1,
                                     "column \"%.*s\" appears twice in the header row", (int)len,
                                     name);
            }
        }
        c->attr = td_xstrndup(name, len);
        if (len == 2 && strncasecmp(name, "id", 2) == 0) {
            c->kind = COL_ID;
            id_at = i;
        } else if ((c->field = td_entity_field_by_name(name, len)) != 0) {
            c->kind = COL_FIELD;
        } else {
            c->kind = COL_CUSTOM;
            if (++n_custom > TD_CATALOG_MAX_ATTRS) {
                return td_err_set_at(err, TD_ETOOBIG, c->name, line, i + 1,
                                     "more than %d custom columns (Target's limit; split the "
                                     "feed in two)",
                                     TD_CATALOG_MAX_ATTRS);
            }
        }
    }
    if (id_at < 0) {
        return td_err_set_at(err, TD_EINVAL, "entity.id", line, 1,
                             "the header row has no entity.id column");
    }
    f->have_header = true;
    return TD_OK;
}

static void reject(csv_feed_t *f, int code, int line, int column, const char *path, const char *msg)
{
    td_err_t e = { 0 };

    td_err_set_at(&e, code, path, line, column, "%s", msg);
    if (f->sink->reject) {
        f->sink->reject(f->sctx, &e);
    }
}

static void reject_err(csv_feed_t *f, td_err_t *e, int line, int column, const char *path)
{
    e->line = line;
    e->column = column;
    if (path) {
        snprintf(e->path, sizeof(e->path), "%s", path);
    }
    if (f->sink->reject) {
        f->sink->reject(f->sctx, e);
    }
}

/* One cell onto the entity; fills e on a bad value. */
static int set_cell(td_entity_t *ent, const col_t *c, const char *v, size_t len, td_err_t *e)
{
    double d;

    td_catalog__trim(&v, &len);
    switch (c->kind) {
    case COL_ID:
        td_entity_set_str(ent, 0, v, len);
        return TD_OK;
    case COL_CUSTOM:
        return td_catalog__set_attr_text(ent, c->attr, strlen(c->attr), v, len, e);
    }
    switch (c->field) {
    case TD_ENTITY_CATEGORIES:
        return td_catalog__add_categories_text(ent, v, len, e);
    case TD_ENTITY_VALUE:
    case TD_ENTITY_INVENTORY:
    case TD_ENTITY_MARGIN:
    case TD_ENTITY_ENVIRONMENT:
        if (!td_catalog__parse_number(v, len, &d) ||
            (c->field == TD_ENTITY_ENVIRONMENT && (d != floor(d) || fabs(d) > 9e15))) {
            return td_err_set(e, TD_EINVAL, "", "\"%.*s\" is not a number: %s",
                              (int)(len > 40 ? 40 : len), v, td_catalog__number_hint(v, len));
        }
        if (c->field == TD_ENTITY_VALUE) {
            ent->value = d;
        } else if (c->field == TD_ENTITY_INVENTORY) {
            ent->inventory = d;
        } else if (c->field == TD_ENTITY_MARGIN) {
            ent->margin = d;
        } else {
            ent->environment = (int64_t)d;
        }
        ent->has |= c->field;
        return TD_OK;
    default:
        td_entity_set_str(ent, c->field, v, len);
        return TD_OK;
    }
}

static bool all_blank(const td_dsv_record_t *r, int from)
{
    for (int i = from; i < r->n; i++) {
        if (!td_catalog__blank(r->cells[i], r->lens[i])) {
            return false;
        }
    }
    return true;
}

static int on_record(void *ctx, const td_dsv_record_t *r, td_err_t *err)
{
    csv_feed_t *f = ctx;
    td_entity_t *ent = &f->ent;
    int rc;

    if (all_blank(r, 0) && !r->too_big) {
        return TD_OK; /* a line of spaces, or of commas only */
    }
    if (!f->have_header) {
        if (r->n > 0 && is_id_column(r->cells[0], r->lens[0])) {
            return set_header(f, r, r->line, err);
        }
        return td_err_set_at(err, TD_EINVAL, "", r->line, 1,
                             "no header row before the first item: expected "
                             "\"## RECSentity.id,entity.name,entity.categoryId,...\"");
    }
    if (r->too_big || r->n_total > r->n) {
        reject(f, TD_ETOOBIG, r->line, 0, "",
               r->too_big ? "row larger than 8 MiB" : "row with too many fields");
        return TD_OK;
    }
    if (r->n < f->required) {
        td_err_t e = { 0 };
        td_err_set(&e, TD_EINVAL, "",
                   "row has %d fields but the header row names %d columns "
                   "(a missing comma, or a line break outside quotes?)",
                   r->n, f->required);
        reject_err(f, &e, r->line, r->n + 1, f->cols[r->n].name);
        return TD_OK;
    }
    if (r->n > f->n_cols && !all_blank(r, f->n_cols)) {
        td_err_t e = { 0 };
        td_err_set(&e, TD_EINVAL, "",
                   "row has %d fields but the header row has %d columns "
                   "(an unquoted comma in a value?)",
                   r->n, f->n_cols);
        reject_err(f, &e, r->line, f->n_cols + 1, "");
        return TD_OK;
    }
    td_entity_release(ent);
    for (int i = 0; i < f->n_cols && i < r->n; i++) {
        const col_t *c = &f->cols[i];
        const char *v = r->cells[i];
        size_t len = r->lens[i], bad;
        td_err_t e = { 0 };
        if (c->kind == COL_IGNORE || td_catalog__blank(v, len)) {
            continue;
        }
        if (!td_catalog__utf8_valid(v, len, &bad)) {
            td_err_set(&e, TD_EINVAL, "", "invalid UTF-8 at byte %zu of the value", bad + 1);
        } else if (len > TD_CATALOG_MAX_VALUE) {
            td_err_set(&e, TD_ETOOBIG, "", "value of %zu bytes (at most %d)", len,
                       TD_CATALOG_MAX_VALUE);
        } else {
            set_cell(ent, c, v, len, &e);
        }
        if (e.code != TD_OK) {
            reject_err(f, &e, r->line, i + 1, c->name);
            td_entity_release(ent);
            return TD_OK;
        }
    }
    td_err_t e = { 0 };
    if (td_entity_validate(ent, &e) != TD_OK) {
        int column = 0;
        for (int i = 0; i < f->n_cols; i++) {
            if ((f->cols[i].kind == COL_ID && strcmp(e.path, "id") == 0) ||
                (f->cols[i].attr && strcmp(f->cols[i].attr, e.path) == 0)) {
                column = i + 1;
            }
        }
        reject_err(f, &e, r->line, column, NULL);
        td_entity_release(ent);
        return TD_OK;
    }
    rc = f->sink->entity(f->sctx, ent, r->line);
    td_entity_release(ent);
    if (rc != TD_OK) {
        return td_err_set_at(err, rc, "", r->line, 0, "import stopped at line %d (%s)", r->line,
                             td_strerror(rc));
    }
    return TD_OK;
}

static int on_recs_line(void *ctx, const char *text, size_t len, int line, td_err_t *err)
{
    csv_feed_t *f = ctx;
    td_dsv_record_t r;
    int rc = TD_OK;

    if (!is_id_column(text, strcspn(text, ",") < len ? strcspn(text, ",") : len)) {
        return TD_OK; /* a comment */
    }
    td_catalog__dsv_split(',', text, len, &r);
    if (r.n > 0) {
        rc = set_header(f, &r, line, err);
    }
    td_catalog__dsv_record_release(&r);
    return rc;
}

int td_catalog__parse_target_csv(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink,
                                 void *sctx, td_err_t *err)
{
    static const td_dsv_handler_t h = {
        .delim = ',', .recs_lines = true, .record = on_record, .recs_line = on_recs_line
    };
    csv_feed_t f = { .sink = sink, .sctx = sctx };
    int rc = td_catalog__dsv_parse(&h, &f, read, rctx, err);

    if (rc == TD_OK && !f.have_header) {
        rc = td_err_set_at(err, TD_EINVAL, "", 1, 1,
                           "no header row: a Target feed names its columns in a line "
                           "\"## RECSentity.id,entity.name,...\"");
    }
    free_cols(&f);
    td_entity_release(&f.ent);
    return rc;
}
