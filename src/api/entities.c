/* The catalog API (admin key required for reads and writes):
 *
 *   POST   /v1/entities:import?format=target-csv|google-xml|google-tsv|json
 *                             [&mode=upsert|replace][&missing=delete|out-of-stock]
 *                             [&environment=N]
 *   GET    /v1/entities?category=&brand=&limit=&cursor=[&expired=exclude]
 *   DELETE /v1/entities?expired=true         (purges expired entities)
 *   GET    /v1/entities/{id}
 *   PUT    /v1/entities/{id}                  (the whole entity, Entities API shape)
 *   DELETE /v1/entities/{id}
 *
 * Reads come from the in-memory index (always current: writes apply to it
 * at commit). An import body arrives whole (up to max_body) and is handed
 * to the parser in chunks all the same; files larger than max_body are for
 * `tandem import catalog`. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/metrics.h"
#include "util/banned.h"

#define CHUNK         65536
#define DEFAULT_LIMIT 100
#define MAX_LIMIT     1000

static td_feed_format_t format_from_content_type(const char *ct)
{
    static const struct {
        const char *type;
        td_feed_format_t fmt;
    } types[] = {
        { "text/csv", TD_FEED_TARGET_CSV },
        { "application/csv", TD_FEED_TARGET_CSV },
        { "application/json", TD_FEED_JSON },
        { "application/xml", TD_FEED_GOOGLE_XML },
        { "text/xml", TD_FEED_GOOGLE_XML },
        { "application/rss+xml", TD_FEED_GOOGLE_XML },
        { "application/atom+xml", TD_FEED_GOOGLE_XML },
        { "text/tab-separated-values", TD_FEED_GOOGLE_TSV },
    };
    size_t len;

    if (ct == NULL) {
        return 0;
    }
    len = strcspn(ct, "; ");
    for (size_t i = 0; i < TD_ARRAY_LEN(types); i++) {
        if (strlen(types[i].type) == len && strncasecmp(ct, types[i].type, len) == 0) {
            return types[i].fmt;
        }
    }
    return 0;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0') {
        return false;
    }
    v = strtoll(s, &end, 10);
    if (*end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static void add_json_str(td_buf_t *b, const char *s)
{
    td_buf_add_json_str(b, s, strlen(s));
}

static void render_result(td_buf_t *b, const td_import_options_t *opt, const td_import_result_t *r)
{
    td_buf_addf(b,
                "{\"format\":\"%s\",\"mode\":\"%s\",\"rows\":%lld,\"inserted\":%lld,"
                "\"updated\":%lld,\"unchanged\":%lld,\"rejected\":%lld,\"deleted\":%lld,"
                "\"out_of_stock\":%lld,\"version\":%llu,\"errors\":[",
                td_feed_format_name(opt->format),
                opt->mode == TD_IMPORT_REPLACE ? "replace" : "upsert", (long long)r->rows,
                (long long)r->inserted, (long long)r->updated, (long long)r->unchanged,
                (long long)r->rejected, (long long)r->deleted, (long long)r->out_of_stock,
                (unsigned long long)r->version);
    for (int i = 0; i < r->n_errors; i++) {
        const td_err_t *e = &r->errors[i];
        td_buf_addf(b, "%s{\"line\":%d,\"column\":%d,\"path\":", i ? "," : "", e->line, e->column);
        add_json_str(b, e->path);
        td_buf_adds(b, ",\"code\":");
        add_json_str(b, td_strerror(e->code));
        td_buf_adds(b, ",\"message\":");
        add_json_str(b, e->message);
        td_buf_addc(b, '}');
    }
    td_buf_addf(b, "],\"errors_truncated\":%s}", r->rejected > r->n_errors ? "true" : "false");
}

void td_api_entities_import(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *fmt = td_http_query(req, "format"), *mode = td_http_query(req, "mode");
    const char *missing = td_http_query(req, "missing"), *env = td_http_query(req, "environment");
    td_import_options_t opt = { 0 };
    td_import_result_t res;
    td_err_t err = { 0 };
    td_feed_mem_t br = { .chunk = CHUNK };
    td_buf_t out = TD_BUF_INIT;
    int rc;

    opt.format = fmt ? td_feed_format_parse(fmt)
                     : format_from_content_type(td_http_header(req, "Content-Type"));
    if (opt.format == 0) {
        td_http_reply_errorf(req, TD_EINVAL, "format",
                             "say which feed this is: format=target-csv, google-xml, google-tsv "
                             "or json");
        return;
    }
    if (mode && strcmp(mode, "replace") == 0) {
        opt.mode = TD_IMPORT_REPLACE;
    } else if (mode && strcmp(mode, "upsert") != 0) {
        td_http_reply_errorf(req, TD_EINVAL, "mode", "mode must be upsert or replace, not \"%s\"",
                             mode);
        return;
    }
    if (missing && (strcmp(missing, "out-of-stock") == 0 || strcmp(missing, "out_of_stock") == 0)) {
        opt.missing = TD_MISSING_OUT_OF_STOCK;
    } else if (missing && strcmp(missing, "delete") != 0) {
        td_http_reply_errorf(req, TD_EINVAL, "missing",
                             "missing must be delete or out-of-stock, not \"%s\"", missing);
        return;
    }
    if (env && !parse_int(env, &opt.environment)) {
        td_http_reply_errorf(req, TD_EINVAL, "environment", "environment must be an integer id");
        return;
    }
    br.data = td_http_body(req, &br.len);
    if (br.len == 0) {
        td_http_reply_errorf(req, TD_EINVAL, "", "empty body: send the feed as the request body");
        return;
    }
    opt.now_ms = td_clock_now_ms(app->clock);
    rc = td_catalog_import(app->catalog, app->store, &opt, td_feed_read_mem, &br, &res, &err);
    if (rc != TD_OK) {
        td_http_reply_error(req, rc, &err);
        td_import_result_release(&res);
        return;
    }
    td_metrics_add("tandem_catalog_import_rows_total", "result=\"inserted\"", res.inserted);
    td_metrics_add("tandem_catalog_import_rows_total", "result=\"updated\"",
                   res.updated + res.unchanged);
    td_metrics_add("tandem_catalog_import_rows_total", "result=\"rejected\"", res.rejected);
    render_result(&out, &opt, &res);
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
    td_import_result_release(&res);
}

typedef struct list_ctx {
    td_buf_t *out;
    int64_t now_ms, expiry_ms;
    size_t n;
} list_ctx_t;

static bool add_entity(void *ctx, const td_entity_t *e)
{
    list_ctx_t *l = ctx;

    td_buf_adds(l->out, l->n++ ? "," : "");
    td_entity_to_json(e, l->now_ms, l->expiry_ms, l->out);
    return true;
}

void td_api_entities_list(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *category = td_http_query(req, "category"), *brand = td_http_query(req, "brand");
    const char *limit_s = td_http_query(req, "limit"), *cursor_s = td_http_query(req, "cursor");
    const char *expired = td_http_query(req, "expired");
    int64_t limit = DEFAULT_LIMIT, cursor = 0;
    td_buf_t out = TD_BUF_INIT;
    list_ctx_t l = { &out, td_clock_now_ms(app->clock), td_catalog_expiry_ms(app->catalog), 0 };
    uint64_t next;

    if (limit_s && (!parse_int(limit_s, &limit) || limit < 1 || limit > MAX_LIMIT)) {
        td_http_reply_errorf(req, TD_EINVAL, "limit", "limit must be from 1 to %d", MAX_LIMIT);
        return;
    }
    if (cursor_s && (!parse_int(cursor_s, &cursor) || cursor < 0)) {
        td_http_reply_errorf(req, TD_EINVAL, "cursor",
                             "cursor must be a next_cursor of an earlier page");
        return;
    }
    if (expired && strcmp(expired, "exclude") && strcmp(expired, "include")) {
        td_http_reply_errorf(req, TD_EINVAL, "expired", "expired must be include or exclude");
        return;
    }
    next = (uint64_t)cursor;
    td_buf_adds(&out, "{\"entities\":[");
    td_catalog_page(app->catalog, category && *category ? category : NULL,
                    brand && *brand ? brand : NULL,
                    expired && strcmp(expired, "exclude") == 0 ? l.now_ms : 0, &next, (size_t)limit,
                    add_entity, &l);
    td_buf_addf(&out, "],\"count\":%zu,\"next_cursor\":", l.n);
    if (next) {
        td_buf_addf(&out, "\"%llu\"", (unsigned long long)next);
    } else {
        td_buf_adds(&out, "null");
    }
    td_buf_addf(&out, ",\"total\":%zu,\"version\":%llu}", td_catalog_size(app->catalog),
                (unsigned long long)td_catalog_version(app->catalog));
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
}

static void reply_entity(td_http_req_t *req, td_app_t *app, const char *id, int status)
{
    const td_entity_t *e = td_catalog_get(app->catalog, id);
    td_buf_t out = TD_BUF_INIT;

    if (e == NULL) {
        td_http_reply_errorf(req, TD_ENOTFOUND, "id", "no entity has id \"%s\"", id);
        return;
    }
    td_entity_to_json(e, td_clock_now_ms(app->clock), td_catalog_expiry_ms(app->catalog), &out);
    td_entity_unref(e);
    td_http_reply_json(req, status, &out);
    td_buf_release(&out);
}

void td_api_entity_get(td_http_req_t *req, void *ctx)
{
    reply_entity(req, ctx, td_http_param(req, "id"), 200);
}

void td_api_entity_put(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *id = td_http_param(req, "id"), *body;
    td_entity_t e;
    td_err_t err = { 0 };
    size_t len;
    bool created = false;
    int rc;

    body = td_http_body(req, &len);
    if ((rc = td_entity_from_json(body, len, "", &e, &err)) != TD_OK) {
        td_http_reply_error(req, rc, &err);
        return;
    }
    if (e.id && strcmp(e.id, id) != 0) {
        td_http_reply_errorf(req, TD_EINVAL, "/id", "the body's id \"%.100s\" is not the URL's",
                             e.id);
        td_entity_release(&e);
        return;
    }
    if (e.id == NULL) {
        e.id = td_xstrdup(id);
    }
    rc = td_catalog_put(app->catalog, app->store, &e, td_clock_now_ms(app->clock), &created, &err);
    td_entity_release(&e);
    if (rc != TD_OK) {
        if (err.path[0] && err.path[0] != '/') {
            char path[sizeof(err.path)];
            snprintf(path, sizeof(path), "/%.250s", err.path);
            memcpy(err.path, path, sizeof(path));
        }
        td_http_reply_error(req, rc, &err);
        return;
    }
    reply_entity(req, app, id, created ? 201 : 200);
}

void td_api_entity_delete(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *id = td_http_param(req, "id");
    int rc = td_catalog_delete(app->catalog, app->store, id, td_clock_now_ms(app->clock));

    if (rc == TD_ENOTFOUND) {
        td_http_reply_errorf(req, rc, "id", "no entity has id \"%s\"", id);
    } else if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot delete the entity (%s)", td_strerror(rc));
    } else {
        td_http_reply(req, 204, NULL, "", 0);
    }
}

void td_api_entities_purge(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *expired = td_http_query(req, "expired");
    td_buf_t out = TD_BUF_INIT;
    int64_t n = 0;
    int rc;

    if (expired == NULL || strcmp(expired, "true") != 0) {
        td_http_reply_errorf(req, TD_EINVAL, "expired",
                             "only expired entities are deleted in bulk: DELETE "
                             "/v1/entities?expired=true");
        return;
    }
    rc = td_catalog_purge_expired(app->catalog, app->store, td_clock_now_ms(app->clock), &n);
    if (rc != TD_OK) {
        td_http_reply_errorf(req, rc, NULL, "cannot purge (%s)", td_strerror(rc));
        return;
    }
    td_buf_addf(&out, "{\"deleted\":%lld,\"version\":%llu}", (long long)n,
                (unsigned long long)td_catalog_version(app->catalog));
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
}
