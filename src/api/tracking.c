/* The tracking endpoints an email's links point at, all public:
 *   GET  /t/o/<token>  open pixel: a 1x1 GIF, records email_open
 *   GET  /t/c/<token>  click: 302 to the URL inside the token, records email_click
 *   GET  /t/u/<token>  unsubscribe confirmation page (changes nothing: link
 *                      scanners fetch every link of a message)
 *   POST /t/u/<token>  one-click unsubscribe (RFC 8058), idempotent: records
 *                      unsubscribe with marketing consent "out"
 * Events go through the ingest pipeline like any other, so journeys see
 * them, and the reply waits for their commit. A token that does not verify
 * never redirects. */
#include "api/api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "profile/profile.h"
#include "track/track.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

/* A 1x1 transparent GIF (43 bytes): two palette entries, the first one
 * transparent, and a complete LZW stream (clear, pixel, end). */
static const unsigned char pixel_gif[] = { 0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01,
                                           0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
                                           0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00,
                                           0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
                                           0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b };

/* The tracking keys, loaded (or generated) at the first tracked request. */
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
static td_track_key_t track_key;
static const td_config_t *key_cfg;

static const td_track_key_t *get_key(const td_app_t *app)
{
    const td_track_key_t *k = NULL;
    td_err_t err = { 0 };

    pthread_mutex_lock(&key_lock);
    if (key_cfg == app->cfg) {
        k = &track_key;
    } else if (td_track_secret_load(app->cfg->track_secret_file, app->cfg->data, &track_key,
                                    &err) == TD_OK) {
        key_cfg = app->cfg;
        k = &track_key;
        td_metrics_describe(
            "tandem_track_total", "counter",
            "tracking link requests by kind (open, click, unsubscribe) and result "
            "(human, proxy, bot, bad_token, not_recorded, page, recorded, already)");
    } else {
        td_log(TD_LOG_ERROR, "track", "secret_load failed: %s", err.message);
    }
    pthread_mutex_unlock(&key_lock);
    return k;
}

typedef struct pending {
    td_http_req_t *req;
    td_event_batch_t batch;
    td_track_kind_t kind;
    char *location; /* clicks */
} pending_t;

static void count(const char *kind, const char *result)
{
    char labels[96];

    snprintf(labels, sizeof(labels), "kind=\"%s\",result=\"%s\"", kind, result);
    td_metrics_add("tandem_track_total", labels, 1);
}

static void reply_page(td_http_req_t *req, int status, const char *title, const char *body_html)
{
    td_buf_t b = TD_BUF_INIT;

    td_buf_addf(&b,
                "<!doctype html><html><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width\">"
                "<meta name=\"robots\" content=\"noindex\"><title>%s</title>"
                "<style>body{font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em}"
                "button{font-size:1.1em;padding:.5em 1.2em}</style></head><body><h1>%s</h1>%s"
                "</body></html>\n",
                title, title, body_html);
    td_http_add_header(req, "Cache-Control", "no-store");
    td_http_add_header(req, "X-Robots-Tag", "noindex");
    td_http_reply(req, status, "text/html; charset=utf-8", b.data, b.len);
    td_buf_release(&b);
}

static void reply_gif(td_http_req_t *req)
{
    /* never cached, so that each open reaches us */
    td_http_add_header(req, "Cache-Control", "no-store, no-cache, must-revalidate, private");
    td_http_add_header(req, "Pragma", "no-cache");
    td_http_reply(req, 200, "image/gif", pixel_gif, sizeof(pixel_gif));
}

static void reply_redirect(td_http_req_t *req, const char *url)
{
    td_http_add_header(req, "Location", url);
    td_http_add_header(req, "Cache-Control", "no-store");
    td_http_add_header(req, "Referrer-Policy", "no-referrer");
    td_http_reply(req, 302, "text/plain; charset=utf-8", "", 0);
}

static void reply_bad_token(td_http_req_t *req, td_track_kind_t kind)
{
    count(kind == TD_TRACK_OPEN    ? "open"
          : kind == TD_TRACK_CLICK ? "click"
                                   : "unsubscribe",
          "bad_token");
    if (kind == TD_TRACK_OPEN) {
        td_http_reply_errorf(req, TD_ENOTFOUND, "token", "unknown tracking token");
        return;
    }
    /* people see these: a page, never a redirect */
    reply_page(req, 404, "Link not valid",
               "<p>This link is not valid. It may have been copied incompletely.</p>");
}

static void lower(char *s)
{
    for (; *s; s++) {
        *s = *s >= 'A' && *s <= 'Z' ? (char)(*s + 32) : *s;
    }
}

static void add_json_field(td_buf_t *b, const char *key, const char *v, bool *first)
{
    if (v == NULL || *v == '\0') {
        return;
    }
    td_buf_addf(b, "%s\"%s\":", *first ? "" : ",", key);
    td_buf_add_json_str(b, v, strlen(v));
    *first = false;
}

/* The event an open, click or unsubscribe records. */
static void make_event(const td_track_token_t *t, const char *type, td_track_agent_t agent,
                       const char *reason, int64_t now_ms, td_event_t *ev)
{
    td_buf_t a = TD_BUF_INIT;
    bool first = true;

    memset(ev, 0, sizeof(*ev));
    ev->type = td_xstrdup(type);
    ev->email = td_xstrdup(t->email);
    lower(ev->email);
    ev->ts_ms = now_ms;
    ev->source = "track";
    td_buf_addc(&a, '{');
    add_json_field(&a, "message_id", t->message_id, &first);
    add_json_field(&a, "journey", t->journey, &first);
    add_json_field(&a, "step", t->step, &first);
    if (t->instance > 0) {
        td_buf_addf(&a, "%s\"instance\":%lld", first ? "" : ",", (long long)t->instance);
        first = false;
    }
    if (t->kind == TD_TRACK_CLICK) {
        add_json_field(&a, "label", t->label, &first);
        add_json_field(&a, "url", t->url, &first);
        if (t->link > 0) {
            td_buf_addf(&a, ",\"link\":%d", t->link);
        }
    }
    if (t->kind != TD_TRACK_UNSUB) {
        td_buf_addf(&a, "%s\"bot\":%s,\"proxy\":%s,\"agent\":\"%s\"", first ? "" : ",",
                    agent == TD_TRACK_BOT ? "true" : "false",
                    agent == TD_TRACK_PROXY ? "true" : "false", td_track_agent_name(agent));
        first = false;
        add_json_field(&a, "agent_reason", reason, &first);
    }
    td_buf_addc(&a, '}');
    ev->attributes_json = td_buf_detach(&a);
}

static void on_committed(void *ctx, int rc, const int64_t *seqs, const bool *dup)
{
    pending_t *p = ctx;
    td_http_req_t *req = p->req;

    (void)seqs;
    (void)dup;
    if (rc != TD_OK) {
        td_log(TD_LOG_WARN, "track", "event_store failed kind=%c rc=%s", (char)p->kind,
               td_strerror(rc));
    }
    switch (p->kind) {
    case TD_TRACK_OPEN:
        reply_gif(req);
        break;
    case TD_TRACK_CLICK:
        /* the person gets where they wanted even when recording failed */
        reply_redirect(req, p->location);
        break;
    case TD_TRACK_UNSUB:
        if (rc != TD_OK) {
            /* not honoured yet: say so, so that the sender or the person retries */
            td_http_add_header(req, "Retry-After", "5");
            reply_page(req, 503, "Please try again",
                       "<p>We could not record your request just now. Please try again in a "
                       "moment.</p>");
        } else {
            reply_page(req, 200, "You are unsubscribed",
                       "<p>You will not receive these emails any more.</p>");
        }
        break;
    }
    td_event_batch_release(&p->batch);
    free(p->location);
    free(p);
    td_http_resume(req);
}

/* Submits one event and replies from on_committed. Takes ev. */
static void submit(td_http_req_t *req, td_app_t *app, td_event_t *ev, const td_track_token_t *t)
{
    pending_t *p = td_xcalloc(1, sizeof(*p));

    p->req = req;
    p->kind = t->kind;
    p->location = t->kind == TD_TRACK_CLICK ? td_xstrdup(t->url) : NULL;
    p->batch.n = 1;
    p->batch.single = true;
    p->batch.slots = td_xcalloc(1, sizeof(*p->batch.slots));
    p->batch.slots[0].ev = *ev;
    *ev = (td_event_t){ 0 };
    td_http_defer(req);
    td_ingest_submit(app->ingest, &p->batch, td_clock_now_ms(app->clock), on_committed, p);
}

/* Reads and checks the token of the request; replies and returns false
 * when it is not one of ours of the expected kind. */
static bool read_token(td_http_req_t *req, td_app_t *app, td_track_kind_t kind, td_track_token_t *t)
{
    const td_track_key_t *key = get_key(app);
    const char *tok = td_http_param(req, "token");

    if (key == NULL) {
        td_http_reply_errorf(req, TD_EIO, NULL, "tracking is not available (no secret)");
        return false;
    }
    if (tok == NULL || td_track_token_decode(key, tok, strlen(tok), t) != TD_OK ||
        t->kind != kind) {
        reply_bad_token(req, kind);
        return false;
    }
    return true;
}

static const char *kind_name(td_track_kind_t k)
{
    return k == TD_TRACK_OPEN ? "open" : k == TD_TRACK_CLICK ? "click" : "unsubscribe";
}

/* Opens and clicks: recorded unless the token is too old or names nobody. */
static void track_fetch(td_http_req_t *req, td_app_t *app, td_track_kind_t kind)
{
    td_track_token_t t;
    td_event_t ev;
    const char *reason = "";
    int64_t now_ms = td_clock_now_ms(app->clock);

    if (!read_token(req, app, kind, &t)) {
        return;
    }
    if (t.email[0] == '\0' ||
        td_track_token_expired(&t, now_ms, app->cfg->track_max_age_days * 86400000LL)) {
        count(kind_name(kind), "not_recorded");
        if (kind == TD_TRACK_OPEN) {
            reply_gif(req);
        } else {
            reply_redirect(req, t.url);
        }
        return;
    }
    td_track_agent_t agent =
        td_track_classify(kind, td_http_header(req, "User-Agent"), t.issued_ms, now_ms, &reason);
    if (strcmp(td_http_method(req), "HEAD") == 0) {
        /* people's mail clients and browsers GET; link checkers HEAD */
        agent = TD_TRACK_BOT;
        reason = "HEAD request";
    }
    count(kind_name(kind), td_track_agent_name(agent));
    make_event(&t, kind == TD_TRACK_OPEN ? "email_open" : "email_click", agent, reason, now_ms,
               &ev);
    submit(req, app, &ev, &t);
}

void td_api_track_open(td_http_req_t *req, void *ctx)
{
    track_fetch(req, ctx, TD_TRACK_OPEN);
}

void td_api_track_click(td_http_req_t *req, void *ctx)
{
    track_fetch(req, ctx, TD_TRACK_CLICK);
}

/* Masks an address for the confirmation page: it may be seen by whoever
 * was forwarded the email. */
static void masked(const char *email, td_buf_t *out)
{
    char m[300];

    td_log_mask_email(email, m, sizeof(m));
    for (const char *s = m; *s; s++) {
        if (*s == '<' || *s == '>' || *s == '&' || *s == '"' || *s == '\'') {
            td_buf_addf(out, "&#%d;", *s);
        } else {
            td_buf_addc(out, *s);
        }
    }
}

void td_api_track_unsub_get(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_track_token_t t;
    td_buf_t b = TD_BUF_INIT;

    if (!read_token(req, app, TD_TRACK_UNSUB, &t)) {
        return;
    }
    count("unsubscribe", "page");
    td_buf_adds(&b, "<p>Unsubscribe <strong>");
    masked(t.email, &b);
    td_buf_adds(&b, "</strong> from these emails?</p>"
                    "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" "
                    "value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>");
    reply_page(req, 200, "Unsubscribe", b.data);
    td_buf_release(&b);
}

void td_api_track_unsub_post(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    td_track_token_t t;
    td_event_t ev;
    td_store_profile_t prof;
    int64_t consent_ms = 0;
    unsigned char md[SHA256_DIGEST_LENGTH];
    char id[48];
    td_buf_t key = TD_BUF_INIT;

    /* any body is accepted: RFC 8058 senders post "List-Unsubscribe=One-Click",
     * our page posts the same, and a person's wish counts either way */
    if (!read_token(req, app, TD_TRACK_UNSUB, &t)) {
        return;
    }
    if (t.email[0] == '\0') {
        reply_bad_token(req, TD_TRACK_UNSUB);
        return;
    }
    lower(t.email);
    td_store_conn_t *c = td_store_acquire(app->store);
    int rc = td_profile_lookup(c, TD_NS_EMAIL, t.email, &prof);
    td_store_release(app->store, c);
    if (rc == TD_OK) {
        bool out = prof.consent_marketing == 2;
        consent_ms = prof.consent_ms;
        td_store_profile_release(&prof);
        if (out) {
            /* honoured before: nothing new to record */
            count("unsubscribe", "already");
            reply_page(req, 200, "You are unsubscribed",
                       "<p>You will not receive these emails any more.</p>");
            return;
        }
    } else if (rc != TD_ENOTFOUND) {
        td_http_add_header(req, "Retry-After", "5");
        reply_page(req, 503, "Please try again",
                   "<p>We could not record your request just now. Please try again in a "
                   "moment.</p>");
        return;
    }
    /* the idempotency key: the same message and recipient, and the consent
     * state the request found, so concurrent or repeated posts store one
     * event, while a later re-subscription can be undone again */
    td_buf_addf(&key, "%s\n%s\n%lld", t.message_id, t.email, (long long)consent_ms);
    SHA256((const unsigned char *)key.data, key.len, md);
    td_buf_release(&key);
    memcpy(id, "unsub-", 6);
    for (int i = 0; i < 16; i++) {
        id[6 + 2 * i] = "0123456789abcdef"[md[i] >> 4];
        id[7 + 2 * i] = "0123456789abcdef"[md[i] & 15];
    }
    id[38] = '\0';
    count("unsubscribe", "recorded");
    make_event(&t, "unsubscribe", TD_TRACK_HUMAN, "", td_clock_now_ms(app->clock), &ev);
    ev.event_id = td_xstrdup(id);
    ev.consent_marketing = TD_CONSENT_OUT;
    td_log(TD_LOG_INFO, "track", "unsubscribe message=%s", t.message_id);
    submit(req, app, &ev, &t);
}
