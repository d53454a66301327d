/* /demo/...: the demo shop's pages and the little JSON they need. Only
 * `tandem demo` serves them (it sets demo_mailbox): the catalogue listing,
 * the caught mail and the journey reports are open to anyone who reaches
 * the port, which is right for a demo on one's own machine and wrong for a
 * shop, so a normal server answers 404.
 *
 *   GET  /demo/...                    web_dir/demo/ (mailbox -> mailbox.html)
 *   GET  /demo/alloy.js               the Web SDK, as npm installed it in web_dir
 *   GET  /demo/img/<id>.png           a drawn picture of a catalogue item
 *   GET  /demo/api/config             what the pages configure alloy with
 *   GET  /demo/api/categories         categories and their sizes
 *   GET  /demo/api/products[?category=&limit=&cursor=], /demo/api/products/<id>
 *   GET  /demo/api/mailbox            caught messages, newest first
 *   GET  /demo/api/mailbox/<n>        one message, raw
 *   GET  /demo/api/journeys           each journey with its report
 *   POST /demo/api/clock:advance      as the admin endpoint, virtual clock only */
#include "api/api.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "demo/demo.h"
#include "journey/journey.h"
#include "util/log.h"
#include "util/strmap.h"
#include "util/banned.h"

#define IMAGE_SIZE     480
#define PAGE_MAX       100
#define MAILBOX_MAX    200   /* newest messages listed */
#define HEADER_MAX     16384 /* bytes of a message read for its headers */
#define ALLOY_REL      "node_modules/@adobe/alloy/dist/alloy.min.js"

static bool demo_on(td_http_req_t *req, const td_app_t *app)
{
    if (*app->cfg->demo_mailbox) {
        return true;
    }
    td_http_reply_errorf(req, TD_ENOTFOUND, NULL,
                         "the demo pages are served by 'tandem demo' only (not 'tandem serve')");
    return false;
}

void td_api_demo_static(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *rel = td_http_path(req) + strlen("/demo/");
    char dir[PATH_MAX];

    if (!demo_on(req, app)) {
        return;
    }
    if (strcmp(rel, "alloy.js") == 0) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", app->cfg->web_dir, ALLOY_REL);
        if (stat(path, &st) != 0) {
            td_http_reply_errorf(req, TD_ENOTFOUND, NULL,
                                 "the Web SDK is not installed: run 'npm ci' in %s (make run does)",
                                 app->cfg->web_dir);
            return;
        }
        td_api__serve_file(req, app->cfg->web_dir, ALLOY_REL);
        return;
    }
    if (strcmp(rel, "mailbox") == 0) {
        rel = "mailbox.html";
    }
    snprintf(dir, sizeof(dir), "%s/demo", app->cfg->web_dir);
    td_api__serve_file(req, dir, rel);
}

/* ---- the catalogue ------------------------------------------------------ */

void td_api_demo_image(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *file = td_http_param(req, "file");
    size_t n = strlen(file);
    char id[256];
    td_buf_t png = TD_BUF_INIT;
    td_err_t err = { 0 };

    if (!demo_on(req, app)) {
        return;
    }
    if (n <= 4 || n - 4 >= sizeof(id) || strcmp(file + n - 4, ".png") != 0) {
        td_http_reply_errorf(req, TD_ENOTFOUND, NULL, "no such picture: expected <id>.png");
        return;
    }
    snprintf(id, sizeof(id), "%.*s", (int)(n - 4), file);
    const td_entity_t *e = td_catalog_get(app->catalog, id);
    if (e == NULL) {
        td_http_reply_errorf(req, TD_ENOTFOUND, NULL, "no item \"%s\" in the catalogue", id);
        return;
    }
    int rc = td_demo_png(id, e->n_categories ? e->categories[0] : "", IMAGE_SIZE, IMAGE_SIZE,
                         &png, &err);
    td_entity_unref(e);
    if (rc != TD_OK) {
        td_buf_release(&png);
        td_http_reply_error(req, rc, &err);
        return;
    }
    /* the same id always draws the same picture */
    td_http_add_header(req, "Cache-Control", "public, max-age=86400");
    td_http_reply(req, 200, "image/png", png.data, png.len);
    td_buf_release(&png);
}

static void add_str(td_buf_t *b, const char *key, const char *v)
{
    td_buf_addf(b, ",\"%s\":", key);
    if (v) {
        td_buf_add_json_str(b, v, strlen(v));
    } else {
        td_buf_adds(b, "null");
    }
}

/* A product as the pages show it: flat, with the demo's currency. */
static void product_json(td_buf_t *b, const td_entity_t *e)
{
    td_buf_adds(b, "{\"id\":");
    td_buf_add_json_str(b, e->id, strlen(e->id));
    add_str(b, "name", e->name);
    add_str(b, "categoryId", e->n_categories ? e->categories[0] : NULL);
    td_buf_adds(b, ",\"value\":");
    td_buf_add_double(b, e->has & TD_ENTITY_VALUE ? e->value : 0);
    td_buf_adds(b, ",\"currency\":\"EUR\"");
    add_str(b, "thumbnailUrl", e->thumbnail_url);
    add_str(b, "pageUrl", e->page_url);
    add_str(b, "message", e->message);
    td_buf_adds(b, ",\"inventory\":");
    td_buf_add_double(b, e->has & TD_ENTITY_INVENTORY ? e->inventory : 0);
    td_buf_addc(b, '}');
}

typedef struct listing {
    td_buf_t *out;
    int n;
} listing_t;

static bool add_product(void *ctx, const td_entity_t *e)
{
    listing_t *l = ctx;

    if (l->n++ > 0) {
        td_buf_addc(l->out, ',');
    }
    product_json(l->out, e);
    return true;
}

void td_api_demo_products(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *category = td_http_query(req, "category");
    const char *limit_s = td_http_query(req, "limit");
    const char *cursor_s = td_http_query(req, "cursor");
    td_buf_t out = TD_BUF_INIT;
    char *end;
    long limit = 24;
    uint64_t cursor = 0;

    if (!demo_on(req, app)) {
        return;
    }
    if (limit_s && ((limit = strtol(limit_s, &end, 10)) < 1 || limit > PAGE_MAX || *end)) {
        td_http_reply_errorf(req, TD_EINVAL, "limit", "must be an integer from 1 to %d",
                             PAGE_MAX);
        return;
    }
    if (cursor_s && *cursor_s) {
        errno = 0;
        cursor = strtoull(cursor_s, &end, 10);
        if (errno || *end || *cursor_s == '-') {
            td_http_reply_errorf(req, TD_EINVAL, "cursor", "must be the \"next\" of a page");
            return;
        }
    }
    listing_t l = { .out = &out };
    td_buf_adds(&out, "{\"items\":[");
    td_catalog_page(app->catalog, category && *category ? category : NULL, NULL,
                    td_clock_now_ms(app->clock), &cursor, (size_t)limit, add_product, &l);
    td_buf_adds(&out, "],\"next\":");
    if (cursor) {
        td_buf_addf(&out, "\"%llu\"}", (unsigned long long)cursor);
    } else {
        td_buf_adds(&out, "null}");
    }
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
}

void td_api_demo_product(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *id = td_http_param(req, "id");
    td_buf_t out = TD_BUF_INIT;

    if (!demo_on(req, app)) {
        return;
    }
    const td_entity_t *e = td_catalog_get(app->catalog, id);
    if (e == NULL) {
        td_http_reply_errorf(req, TD_ENOTFOUND, NULL, "no item \"%s\" in the catalogue", id);
        return;
    }
    product_json(&out, e);
    td_entity_unref(e);
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
}

typedef struct tally {
    td_strmap_t counts;
} tally_t;

static bool count_category(void *ctx, const td_entity_t *e)
{
    tally_t *t = ctx;
    for (int i = 0; i < e->n_categories; i++) {
        int64_t n = 0;
        size_t len = strlen(e->categories[i]);
        td_strmap_get(&t->counts, e->categories[i], len, &n);
        td_strmap_put(&t->counts, e->categories[i], len, n + 1);
    }
    return true;
}

static int by_name(const void *a, const void *b)
{
    const td_strmap_slot_t *x = *(const td_strmap_slot_t *const *)a;
    const td_strmap_slot_t *y = *(const td_strmap_slot_t *const *)b;
    return strcmp(x->key, y->key);
}

void td_api_demo_categories(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    tally_t t = { .counts = TD_STRMAP_INIT };
    td_buf_t out = TD_BUF_INIT;
    const td_strmap_slot_t **sorted;
    size_t n = 0;

    if (!demo_on(req, app)) {
        return;
    }
    td_catalog_foreach(app->catalog, td_clock_now_ms(app->clock), count_category, &t);
    sorted = td_xcalloc(t.counts.n + 1, sizeof(*sorted));
    for (size_t i = 0; i < t.counts.cap; i++) {
        if (t.counts.slots[i].key) {
            sorted[n++] = &t.counts.slots[i];
        }
    }
    qsort(sorted, n, sizeof(*sorted), by_name);
    td_buf_adds(&out, "{\"categories\":[");
    for (size_t i = 0; i < n; i++) {
        td_buf_adds(&out, i ? ",{\"id\":" : "{\"id\":");
        td_buf_add_json_str(&out, sorted[i]->key, sorted[i]->key_len);
        td_buf_addf(&out, ",\"count\":%lld}", (long long)sorted[i]->value);
    }
    td_buf_adds(&out, "]}");
    td_http_reply_json(req, 200, &out);
    td_buf_release(&out);
    free(sorted);
    td_strmap_clear(&t.counts);
}

/* ---- configuration for the pages ---------------------------------------- */

void td_api_demo_config(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const td_config_t *cfg = app->cfg;
    const char *ds = cfg->datastream.n ? cfg->datastream.items[0] : "";
    const char *eq = strchr(ds, '=');
    const char *host = strstr(cfg->public_url, "://");
    char now[40];
    json_t *journeys = NULL;
    td_err_t err = { 0 };

    if (!demo_on(req, app)) {
        return;
    }
    host = host ? host + 3 : cfg->public_url;
    td_time_format_iso(td_clock_now_ms(app->clock), now, sizeof(now));
    json_t *o = json_pack("{s:s%, s:s, s:s%, s:s, s:s, s:I}", "datastreamId", ds,
                          eq ? (size_t)(eq - ds) : strlen(ds), "orgId", eq ? eq + 1 : "",
                          "edgeDomain", host, strcspn(host, "/"), "clock",
                          app->clock->is_virtual ? "virtual" : "real", "now", now, "waitSeconds",
                          (json_int_t)cfg->demo_wait);
    json_t *ids = json_array();
    if (app->journeys && td_journey_list(app->journeys, &journeys, &err) == TD_OK) {
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(journeys, "journeys"), i, j)
        {
            json_array_append(ids, json_object_get(j, "id"));
        }
    }
    json_decref(journeys);
    json_object_set_new(o, "journeys", ids);
    td_api__reply_doc(req, 200, o);
}

void td_api_demo_journeys(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    json_t *list = NULL, *out = json_array(), *j;
    td_err_t err = { 0 };
    size_t i;

    if (!demo_on(req, app)) {
        json_decref(out);
        return;
    }
    if (app->journeys == NULL || td_journey_list(app->journeys, &list, &err) != TD_OK) {
        json_decref(out);
        td_http_reply_errorf(req, TD_EBUSY, NULL, "journeys are not available");
        return;
    }
    json_array_foreach(json_object_get(list, "journeys"), i, j)
    {
        const char *id = json_string_value(json_object_get(j, "id"));
        json_t *report = NULL;
        if (id == NULL) {
            continue;
        }
        if (td_journey_report(app->journeys, id, &report, &err) != TD_OK) {
            report = json_object();
        }
        /* as GET /v1/journeys/{id}/report: sends, opens, clicks, revenue */
        json_t *msgs = td_api_messages_report(app->store, id);
        if (msgs) {
            json_object_set_new(report, "messages", msgs);
        }
        json_array_append_new(out, json_pack("{s:s, s:O?, s:o}", "id", id, "name",
                                             json_object_get(j, "name"), "report", report));
    }
    json_decref(list);
    json_t *o = json_pack("{s:o}", "journeys", out);
    td_api__reply_doc(req, 200, o);
}

void td_api_demo_advance(td_http_req_t *req, void *ctx)
{
    if (demo_on(req, ctx)) {
        td_api_clock_advance(req, ctx);
    }
}

/* ---- the mailbox ---------------------------------------------------------- */

static int newest_first(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

/* Message numbers in the mailbox directory, highest first. */
static int list_messages(const char *dir, long **out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    long *nums = NULL;
    int n = 0, cap = 0;

    if (d == NULL) {
        *out = NULL;
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (v <= 0 || end == de->d_name || strcmp(end, ".eml") != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            nums = td_xrealloc(nums, sizeof(long) * (size_t)cap);
        }
        nums[n++] = v;
    }
    closedir(d);
    if (n > 1) {
        qsort(nums, (size_t)n, sizeof(*nums), newest_first);
    }
    *out = nums;
    return n;
}

/* The unfolded value of header name in the header block h, or NULL. */
static char *header_value(const char *h, const char *name)
{
    size_t nlen = strlen(name);

    for (const char *line = h; *line && *line != '\r' && *line != '\n';) {
        const char *eol = line + strcspn(line, "\n");
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            td_buf_t v = TD_BUF_INIT;
            const char *p = line + nlen + 1;
            for (;;) {
                while (p < eol && (*p == ' ' || *p == '\t')) {
                    p++;
                }
                size_t len = (size_t)(eol - p);
                if (len && p[len - 1] == '\r') {
                    len--;
                }
                if (v.len && len) {
                    td_buf_addc(&v, ' ');
                }
                td_buf_add(&v, p, len);
                if (*eol == '\0' || (eol[1] != ' ' && eol[1] != '\t')) {
                    break;
                }
                p = eol + 1; /* a folded continuation */
                eol = p + strcspn(p, "\n");
            }
            return td_buf_detach(&v);
        }
        line = *eol ? eol + 1 : eol;
    }
    return NULL;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

/* Decodes one RFC 2047 word's text (B or Q) into out; false if malformed. */
static bool decode_word(char enc, const char *t, size_t n, td_buf_t *out)
{
    if (enc == 'B' || enc == 'b') {
        unsigned char *raw = td_xmalloc(n + 4);
        int len = n % 4 == 0 ? EVP_DecodeBlock(raw, (const unsigned char *)t, (int)n) : -1;
        for (size_t i = n; len > 0 && i > 0 && t[i - 1] == '='; i--) {
            len--; /* EVP_DecodeBlock counts the padding */
        }
        if (len >= 0) {
            td_buf_add(out, raw, (size_t)len);
        }
        free(raw);
        return len >= 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '_') {
            td_buf_addc(out, ' ');
        } else if (t[i] == '=' && i + 2 < n && hex_digit(t[i + 1]) >= 0 &&
                   hex_digit(t[i + 2]) >= 0) {
            td_buf_addc(out, (char)(hex_digit(t[i + 1]) * 16 + hex_digit(t[i + 2])));
            i += 2;
        } else {
            td_buf_addc(out, t[i]);
        }
    }
    return true;
}

/* A header value with its UTF-8 encoded-words (RFC 2047) decoded; others
 * are kept as written. */
static char *decode_header(const char *v)
{
    td_buf_t out = TD_BUF_INIT;
    const char *p = v;
    bool after_word = false;

    while (*p) {
        const char *q1, *end;
        if (p[0] == '=' && p[1] == '?' && (q1 = strchr(p + 2, '?')) && q1[1] && q1[2] == '?' &&
            (end = strstr(q1 + 3, "?=")) &&
            ((size_t)(q1 - p - 2) == 5 ? strncasecmp(p + 2, "utf-8", 5) == 0
                                       : strncasecmp(p + 2, "us-ascii", 8) == 0)) {
            size_t mark = out.len;
            if (decode_word(q1[1], q1 + 3, (size_t)(end - q1 - 3), &out)) {
                p = end + 2;
                after_word = true; /* whitespace up to an adjacent word is dropped */
                continue;
            }
            out.len = mark;
        }
        if (after_word && (*p == ' ' || *p == '\t')) {
            const char *w = p + strspn(p, " \t");
            if (w[0] == '=' && w[1] == '?') {
                p = w;
                continue;
            }
        }
        after_word = false;
        td_buf_addc(&out, *p++);
    }
    return td_buf_detach(&out);
}

static void add_header_field(json_t *o, const char *key, const char *headers, const char *name)
{
    char *v = header_value(headers, name);
    char *d = v ? decode_header(v) : NULL;
    json_t *js = d ? json_string(d) : NULL; /* NULL too when not UTF-8 */
    json_object_set_new(o, key, js ? js : json_null());
    free(d);
    free(v);
}

static json_t *describe_message(const char *dir, long num)
{
    char path[PATH_MAX], head[HEADER_MAX + 1], when[40];
    struct stat st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%ld.eml", dir, num);
    if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &st) != 0) {
        if (f) {
            fclose(f);
        }
        return NULL;
    }
    n = fread(head, 1, HEADER_MAX, f);
    fclose(f);
    head[n] = '\0';
    td_time_format_iso((int64_t)st.st_mtime * 1000, when, sizeof(when));
    snprintf(path, sizeof(path), "%ld", num);
    json_t *o = json_pack("{s:s, s:s, s:I}", "id", path, "received", when, "size",
                          (json_int_t)st.st_size);
    add_header_field(o, "from", head, "From");
    add_header_field(o, "to", head, "To");
    add_header_field(o, "subject", head, "Subject");
    add_header_field(o, "date", head, "Date");
    add_header_field(o, "messageId", head, "Message-ID");
    return o;
}

void td_api_demo_mailbox(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    long *nums;
    int n;
    json_t *list = json_array();

    if (!demo_on(req, app)) {
        json_decref(list);
        return;
    }
    n = list_messages(app->cfg->demo_mailbox, &nums);
    for (int i = 0; i < n && i < MAILBOX_MAX; i++) {
        json_t *m = describe_message(app->cfg->demo_mailbox, nums[i]);
        if (m) {
            json_array_append_new(list, m);
        }
    }
    free(nums);
    json_t *o = json_pack("{s:o, s:i}", "messages", list, "total", n);
    td_api__reply_doc(req, 200, o);
}

void td_api_demo_mail(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *id = td_http_param(req, "id");
    char rel[64];

    if (!demo_on(req, app)) {
        return;
    }
    if (strspn(id, "0123456789") != strlen(id) || strlen(id) > 18) {
        td_http_reply_errorf(req, TD_ENOTFOUND, NULL, "no message \"%s\"", id);
        return;
    }
    /* served as text: the page renders it, the browser never runs it */
    snprintf(rel, sizeof(rel), "%s.eml", id);
    td_api__serve_file(req, app->cfg->demo_mailbox, rel);
}
