/* Google Merchant product feeds as tab-separated text: a first line naming
 * the attributes ("id<TAB>title<TAB>link<TAB>price..."; "g:" prefixes and
 * "image link" spellings accepted), then one product per line. Values may
 * be quoted when they hold tabs or line breaks. A column may repeat (as
 * Google allows for additional_image_link); product_type and
 * additional_image_link also take comma-separated lists. The mapping to
 * entity attributes is google_map.c's. Column-count and cell rules are the
 * Target CSV feed's. */
#include "catalog/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

typedef struct tsv_feed {
    const td_feed_sink_t *sink;
    void *sctx;
    char **names; /* as written */
    int n_names, required;
    td_entity_t ent;
} tsv_feed_t;

static void free_names(tsv_feed_t *f)
{
    for (int i = 0; i < f->n_names; i++) {
        free(f->names[i]);
    }
    free(f->names);
    f->names = NULL;
    f->n_names = 0;
}

static bool blank_from(const td_dsv_record_t *r, int from)
{
    for (int i = from; i < r->n; i++) {
        if (!td_catalog__blank(r->cells[i], r->lens[i])) {
            return false;
        }
    }
    return true;
}

static int set_header(tsv_feed_t *f, const td_dsv_record_t *r, td_err_t *err)
{
    bool has_id = false;

    f->names = td_xcalloc((size_t)r->n, sizeof(char *));
    f->n_names = r->n;
    for (int i = 0; i < r->n; i++) {
        const char *s = r->cells[i];
        size_t len = r->lens[i], bad;
        td_catalog__trim(&s, &len);
        if (len > TD_CATALOG_MAX_NAME || !td_catalog__utf8_valid(s, len, &bad)) {
            return td_err_set_at(err, TD_EINVAL, "", r->line, i + 1,
                                 "column %d: a name of at most %d bytes of UTF-8 is expected",
                                 i + 1, TD_CATALOG_MAX_NAME);
        }
        f->names[i] = td_xstrndup(s, len);
        if (len) {
            f->required = i + 1;
        }
        has_id |= strcmp(f->names[i], "id") == 0 || strcmp(f->names[i], "g:id") == 0;
    }
    if (!has_id) {
        return td_err_set_at(err, TD_EINVAL, "", r->line, 1,
                             "the first line must name the columns, among them \"id\" (tab-"
                             "separated Google product feed)");
    }
    return TD_OK;
}

static void reject(tsv_feed_t *f, td_err_t *e, int line, int column, const char *path)
{
    e->line = line;
    e->column = column;
    if (path != e->path) {
        snprintf(e->path, sizeof(e->path), "%s", path ? path : "");
    }
    if (f->sink->reject) {
        f->sink->reject(f->sctx, e);
    }
}

static bool is_list_column(const char *name)
{
    const char *n = strncmp(name, "g:", 2) == 0 ? name + 2 : name;

    return strcmp(n, "product_type") == 0 || strcmp(n, "additional_image_link") == 0;
}

static int set_cell(td_entity_t *ent, const char *name, const char *v, size_t len, td_err_t *e)
{
    int rc;

    if (!is_list_column(name)) {
        return td_catalog__google_set(ent, name, v, len, e);
    }
    while (len > 0) {
        const char *comma = memchr(v, ',', len);
        size_t n = comma ? (size_t)(comma - v) : len;
        if ((rc = td_catalog__google_set(ent, name, v, n, e)) != TD_OK) {
            return rc;
        }
        v += n + (comma != NULL);
        len -= n + (comma != NULL);
    }
    return TD_OK;
}

static int on_record(void *ctx, const td_dsv_record_t *r, td_err_t *err)
{
    tsv_feed_t *f = ctx;
    td_entity_t *ent = &f->ent;
    td_err_t e = { 0 };
    int rc;

    if (blank_from(r, 0) && !r->too_big) {
        return TD_OK;
    }
    if (f->names == NULL) {
        return set_header(f, r, err);
    }
    if (r->too_big || r->n_total > r->n) {
        td_err_set(&e, TD_ETOOBIG, "", "%s",
                   r->too_big ? "row larger than 8 MiB" : "row with too many fields");
        reject(f, &e, r->line, 0, "");
        return TD_OK;
    }
    if (r->n < f->required) {
        td_err_set(&e, TD_EINVAL, "",
                   "row has %d fields but the first line names %d columns (a missing tab?)", r->n,
                   f->required);
        reject(f, &e, r->line, r->n + 1, f->names[r->n]);
        return TD_OK;
    }
    if (r->n > f->n_names && !blank_from(r, f->n_names)) {
        td_err_set(&e, TD_EINVAL, "",
                   "row has %d fields but the first line has %d columns (a tab in a value?)", r->n,
                   f->n_names);
        reject(f, &e, r->line, f->n_names + 1, "");
        return TD_OK;
    }
    td_entity_release(ent);
    for (int i = 0; i < f->n_names && i < r->n; i++) {
        const char *v = r->cells[i];
        size_t len = r->lens[i], bad;
        if (f->names[i][0] == '\0' || td_catalog__blank(v, len)) {
            continue;
        }
        if (!td_catalog__utf8_valid(v, len, &bad)) {
            td_err_set(&e, TD_EINVAL, "", "invalid UTF-8 at byte %zu of the value", bad + 1);
        } else if (len > TD_CATALOG_MAX_VALUE) {
            td_err_set(&e, TD_ETOOBIG, "", "value of %zu bytes (at most %d)", len,
                       TD_CATALOG_MAX_VALUE);
        } else {
            set_cell(ent, f->names[i], v, len, &e);
        }
        if (e.code != TD_OK) {
            reject(f, &e, r->line, i + 1, f->names[i]);
            td_entity_release(ent);
            return TD_OK;
        }
    }
    if (td_catalog__google_finish(ent, &e) != TD_OK || td_entity_validate(ent, &e) != TD_OK) {
        reject(f, &e, r->line, 0, e.path);
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

int td_catalog__parse_google_tsv(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink,
                                 void *sctx, td_err_t *err)
{
    static const td_dsv_handler_t h = { .delim = '\t', .record = on_record };
    tsv_feed_t f = { .sink = sink, .sctx = sctx };
    int rc = td_catalog__dsv_parse(&h, &f, read, rctx, err);

    if (rc == TD_OK && f.names == NULL) {
        rc = td_err_set_at(err, TD_EINVAL, "", 1, 1,
                           "empty feed: the first line must name the columns (id, title, ...)");
    }
    free_names(&f);
    td_entity_release(&f.ent);
    return rc;
}
