/* The outbox sender: threads that claim due outbox rows with a lease, apply
 * the sending rules, render, track, build, sign and send each message, and
 * mark the row. Exactly once as far as SMTP allows: a row is marked in the
 * store only after the server's verdict, and a row claimed again after a
 * crash mid-send is rebuilt byte for byte (same Message-ID, same Date, same
 * tracking tokens) so the receiver can recognise the duplicate. */
#include "message/message.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "track/track.h"
#include "util/clock.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

#define MAX_THREADS  64
#define IDLE_WAIT_MS 200
/* compiled template parts kept (4 per template: subject, html, text, fromName) */
#define TEMPLATE_CACHE_ENTRIES 256

struct td_outbox {
    td_store_t *st;
    td_clock_t *clock;
    const td_config_t *cfg;
    td_smtp_pool_t *pool;
    td_dkim_t *dkim;
    td_template_cache_t *templates;
    td_track_key_t key;
    bool track;
    char node[160];
    pthread_t threads[MAX_THREADS];
    int n_threads;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *password;
    td_cap_t caps[TD_CAP_MAX];
    int n_caps;
    bool quiet;
    int quiet_start, quiet_end;
};

/* What one attempt came to. */
typedef struct outcome {
    const char *status; /* sent | queued | failed | skipped */
    const char *log;    /* sent | retry | failed | skipped */
    char reason[64];    /* machine-readable */
    char detail[300];   /* for people: the server's reply, the render error */
    bool hard_bounce;
    int64_t next_ms; /* deferred (quiet hours, caps): queued again for this time */
} outcome_t;

static void set_outcome(outcome_t *o, const char *status, const char *log, const char *reason,
                        const char *fmt, ...) TD_PRINTF(5, 6);

static void set_outcome(outcome_t *o, const char *status, const char *log, const char *reason,
                        const char *fmt, ...)
{
    va_list ap;

    o->status = status;
    o->log = log;
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
    va_start(ap, fmt);
    vsnprintf(o->detail, sizeof(o->detail), fmt, ap);
    va_end(ap);
}

static void skip(outcome_t *o, const char *reason, const char *detail)
{
    set_outcome(o, "skipped", "skipped", reason, "%s", detail ? detail : "");
}

/* ---- rendering ---------------------------------------------------------- */

/* Renders part `what` of stored template t with ctx into out, compiling it
 * only when the cache has no copy of this version; an error for compile or
 * render errors. */
static int render_one(td_outbox_t *o, const td_store_template_t *t, const char *what,
                      const char *src, const json_t *ctx, td_buf_t *out, char *detail,
                      size_t detail_len)
{
    td_template_ref_t *ref = NULL;
    td_template_report_t rep;
    td_err_t err = { 0 };
    int rc;

    if ((rc = td_template_cache_get(o->templates, t->id, what, t->version, src, strlen(src), &ref,
                                    &err)) != TD_OK) {
        snprintf(detail, detail_len, "%s: line %d column %d: %s", what, err.line, err.column,
                 err.message);
        return rc;
    }
    td_template_report_init(&rep);
    rc = td_template_render(td_template_ref_get(ref), ctx, out, &rep);
    if (rc == TD_OK && (rep.n_errors > 0 || rep.truncated)) {
        snprintf(detail, detail_len, "%s: line %d column %d: %s", what,
                 rep.n_errors ? rep.errors[0].line : 0, rep.n_errors ? rep.errors[0].column : 0,
                 rep.n_errors ? rep.errors[0].text : "output truncated by a limit");
        rc = TD_EINVAL;
    } else if (rc != TD_OK) {
        snprintf(detail, detail_len, "%s: %s", what, td_strerror(rc));
    }
    td_template_report_release(&rep);
    td_template_cache_release(o->templates, ref);
    return rc;
}

/* The Message-ID as the MIME builder wants it: without the angle brackets. */
static void bare_id(const char *mid, char *out, size_t len)
{
    size_t n = strlen(mid);

    if (n >= 2 && mid[0] == '<' && mid[n - 1] == '>') {
        snprintf(out, len, "%.*s", (int)(n - 2), mid + 1);
    } else {
        snprintf(out, len, "%s", mid);
    }
}

/* Builds the signed message of row m with template t into msg. */
static int build(td_outbox_t *o, const td_store_outbox_t *m, const td_store_template_t *t,
                 td_buf_t *msg, outcome_t *res)
{
    const td_config_t *cfg = o->cfg;
    json_error_t jerr;
    json_t *ctx = json_loads(m->data ? m->data : "{}", 0, &jerr), *context, *message;
    td_buf_t subject = TD_BUF_INIT, html = TD_BUF_INIT, text = TD_BUF_INIT, from = TD_BUF_INIT,
             tracked = TD_BUF_INIT, unsub = TD_BUF_INIT, body = TD_BUF_INIT, sig = TD_BUF_INIT,
             mailto = TD_BUF_INIT;
    char mid[300];
    td_err_t err = { 0 };
    int rc = TD_EINVAL;
    /* the row's creation time: a rebuild gives the same bytes */
    int64_t date_ms = m->created_ms;

    bare_id(m->message_id, mid, sizeof(mid));
    if (!json_is_object(ctx)) {
        json_decref(ctx);
        skip(res, "render_error", "the row's data is not a JSON object");
        return TD_EINVAL;
    }
    td_track_ctx_t tc = { .key = &o->key,
                          .base_url = cfg->public_url,
                          .message_id = mid,
                          .email = m->recipient,
                          .journey = m->journey_id,
                          .step = m->step,
                          .instance = m->instance_id,
                          .now_ms = date_ms };
    if (o->track && td_track_unsubscribe_url(&tc, &unsub) != TD_OK) {
        td_buf_reset(&unsub);
    }
    if ((context = json_object_get(ctx, "context")) == NULL || !json_is_object(context)) {
        context = json_object();
        json_object_set_new(ctx, "context", context);
    }
    if ((message = json_object_get(context, "message")) == NULL || !json_is_object(message)) {
        message = json_object();
        json_object_set_new(context, "message", message);
    }
    json_object_set_new(message, "id", json_string(mid));
    json_object_set_new(message, "to", json_string(m->recipient));
    /* the shop's links and currency, unless the journey gave its own */
    const char *shop[][2] = { { "shopUrl", cfg->shop_url },
                              { "cartUrl", cfg->cart_url },
                              { "currency", cfg->currency } };
    for (size_t i = 0; i < TD_ARRAY_LEN(shop); i++) {
        if (*shop[i][1] && json_object_get(message, shop[i][0]) == NULL) {
            json_object_set_new(message, shop[i][0], json_string(shop[i][1]));
        }
    }
    if (*cfg->mail_from_name && json_object_get(message, "brand") == NULL) {
        json_object_set_new(message, "brand", json_pack("{s:s}", "name", cfg->mail_from_name));
    }
    if (unsub.len) {
        json_object_set_new(message, "unsubscribeUrl", json_string(unsub.data));
    }
    if (render_one(o, t, "subject", t->subject, ctx, &subject, res->detail, sizeof(res->detail)) !=
            TD_OK ||
        render_one(o, t, "html", t->html, ctx, &html, res->detail, sizeof(res->detail)) != TD_OK ||
        (t->text && render_one(o, t, "text", t->text, ctx, &text, res->detail,
                               sizeof(res->detail)) != TD_OK) ||
        (t->from_name && render_one(o, t, "fromName", t->from_name, ctx, &from, res->detail,
                                    sizeof(res->detail)) != TD_OK)) {
        char d[sizeof(res->detail)];
        memcpy(d, res->detail, sizeof(d));
        skip(res, "render_error", d);
        goto out;
    }
    if (o->track) {
        if (td_track_rewrite_html(&tc, html.data ? html.data : "", html.len, &tracked, NULL) !=
            TD_OK) {
            skip(res, "render_error", "cannot make the tracking links");
            goto out;
        }
    } else {
        td_buf_add(&tracked, html.data ? html.data : "", html.len);
    }
    if (*cfg->unsubscribe_mailto) {
        td_buf_addf(&mailto, "mailto:%s?subject=unsubscribe", cfg->unsubscribe_mailto);
    }
    const char *from_name = from.len ? from.data : cfg->mail_from_name;
    td_mime_message_t mm = {
        .from_name = from_name && *from_name ? from_name : NULL,
        .from_addr = cfg->mail_from,
        .reply_to = t->reply_to && *t->reply_to ? t->reply_to
                    : *cfg->mail_reply_to       ? cfg->mail_reply_to
                                                : NULL,
        .to_addr = m->recipient,
        .subject = subject.data ? subject.data : "",
        .html = tracked.data ? tracked.data : "",
        .html_len = tracked.len,
        .text = text.len ? text.data : NULL,
        .text_len = text.len,
        .message_id = mid,
        .date_ms = date_ms,
        .unsubscribe_url = unsub.len ? unsub.data : NULL,
        .unsubscribe_mailto = mailto.len ? mailto.data : NULL,
        .list_id = NULL,
    };
    if ((rc = td_mime_build(&mm, &body, &err)) != TD_OK) {
        skip(res, "render_error", err.message);
        goto out;
    }
    if (o->dkim &&
        (rc = td_dkim_sign(o->dkim, body.data, body.len, td_wall_ms(), &sig, &err)) != TD_OK) {
        set_outcome(res, "queued", "retry", "dkim_error", "%s", err.message);
        goto out;
    }
    td_buf_add(msg, sig.data ? sig.data : "", sig.len);
    td_buf_add(msg, body.data, body.len);
    rc = TD_OK;
out:
    json_decref(ctx);
    td_buf_release(&subject);
    td_buf_release(&html);
    td_buf_release(&text);
    td_buf_release(&from);
    td_buf_release(&tracked);
    td_buf_release(&unsub);
    td_buf_release(&body);
    td_buf_release(&sig);
    td_buf_release(&mailto);
    return rc;
}

/* ---- rules -------------------------------------------------------------- */

/* The recipient's time zone: the profile's attributes.timezone, else the
 * time zone its events carried (attributes.timezone_from_events), else the
 * email step's data.timezone (the journey's default), else quiet_hours_tz.
 * A fixed offset ("+02:00") or an IANA name ("Europe/Paris"); a value that
 * is neither is passed over to the next source. *zone is a copy (zone_len
 * bytes); *off_s the offset at now_ms. */
static void recipient_zone(const td_outbox_t *o, const json_t *data, int64_t now_ms, char *zone,
                           size_t zone_len, int *off_s, const char **source)
{
    json_t *attrs = json_object_get(json_object_get(data, "profile"), "attributes");
    const char *cands[3] = {
        json_string_value(json_object_get(attrs, "timezone")),
        json_string_value(json_object_get(attrs, "timezone_from_events")),
        json_string_value(json_object_get(json_object_get(data, "data"), "timezone")),
    };
    const char *names[3] = { "profile", "events", "journey" };

    for (int i = 0; i < 3; i++) {
        if (cands[i] &&
            td_tz_cache_offset(td_tz_cache_shared(), cands[i], now_ms, off_s) == TD_OK) {
            snprintf(zone, zone_len, "%s", cands[i]);
            *source = names[i];
            return;
        }
    }
    snprintf(zone, zone_len, "%s", o->cfg->quiet_hours_tz);
    *source = "default";
    /* checked at start: known */
    if (td_tz_cache_offset(td_tz_cache_shared(), zone, now_ms, off_s) != TD_OK) {
        snprintf(zone, zone_len, "UTC");
        *off_s = 0;
    }
}

/* Quiet hours: false with res "deferred" to when the window opens, or a
 * skip when that is more than quiet_hold_max_hours after the row was queued. */
static bool quiet_hours_allow(td_outbox_t *o, const td_store_outbox_t *m, outcome_t *res)
{
    if (!o->quiet) {
        return true;
    }
    json_error_t jerr;
    json_t *data = json_loads(m->data ? m->data : "{}", 0, &jerr);
    const char *source;
    char zone[TD_TZ_NAME_MAX + 1];
    int off_s, off;
    int64_t now = td_clock_now_ms(o->clock), open;
    recipient_zone(o, data, now, zone, sizeof(zone), &off_s, &source);
    json_decref(data);
    if (td_quiet_next_open_tz_ms(o->quiet_start, o->quiet_end, td_tz_cache_shared(), zone, now,
                                 &open) != TD_OK) {
        open = now; /* the zone went away since: do not hold the message */
    }
    if (open <= now) {
        return true;
    }
    char detail[160];
    off = abs(off_s / 60);
    snprintf(detail, sizeof(detail), "utc_offset=%c%02d:%02d tz=%s tz_source=%s",
             off_s < 0 ? '-' : '+', off / 60, off % 60, zone, source);
    if (open - m->created_ms > o->cfg->quiet_hold_max_hours * 3600000LL) {
        skip(res, "quiet_hours_dropped", detail);
    } else {
        set_outcome(res, "deferred", "deferred", "quiet_hours", "%s", detail);
        res->next_ms = open;
    }
    return false;
}

/* The checks right before sending; false (and res filled) to skip. */
static bool may_send(td_outbox_t *o, td_store_conn_t *c, const td_store_outbox_t *m, outcome_t *res)
{
    char addr[320];
    td_store_suppression_t sup;
    td_store_profile_t p;
    int64_t pid = 0;
    int rc;

    snprintf(addr, sizeof(addr), "%s", m->recipient ? m->recipient : "");
    for (char *s = addr; *s; s++) {
        *s = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
    }
    if (!td_mime_addr_valid(addr)) {
        skip(res, "invalid_address", "the recipient is not a valid address");
        return false;
    }
    if ((rc = td_store_suppression_find(c, addr, &sup)) == TD_OK) {
        char d[200];
        snprintf(d, sizeof(d), "%s (%s)", sup.key, sup.reason ? sup.reason : "");
        td_store_suppression_release(&sup);
        skip(res, "suppressed", d);
        return false;
    }
    if (m->profile_id > 0 && td_store_profile_resolve(c, m->profile_id, &pid) == TD_OK &&
        td_store_profile_load(c, pid, &p) == TD_OK) {
        int consent = p.consent_marketing;
        /* out through our unsubscribe link, or refused elsewhere (a signup form) */
        bool by_link = p.consent_source && strcmp(p.consent_source, "track") == 0;
        td_store_profile_release(&p);
        if (consent == 2) {
            skip(res, by_link ? "unsubscribed" : "no_consent",
                 by_link ? "the recipient unsubscribed" : "the profile's marketing consent is out");
            return false;
        }
        if (consent == 0 && strcmp(o->cfg->consent_required, "yes") == 0) {
            skip(res, "no_consent", "consent_required is set and the profile never opted in");
            return false;
        }
    }
    json_error_t jerr;
    json_t *data = json_loads(m->data ? m->data : "{}", 0, &jerr);
    const char *why = data ? td_outbox_data_skip(data) : NULL;
    json_decref(data);
    if (why) {
        skip(res, why, "nothing to show in the message");
        return false;
    }
    return quiet_hours_allow(o, m, res);
}

/* ---- one attempt -------------------------------------------------------- */

static void attempt(td_outbox_t *o, const td_store_outbox_t *m, outcome_t *res)
{
    td_store_conn_t *c = td_store_acquire(o->st);
    td_store_template_t t;
    bool ok = may_send(o, c, m, res);
    int rc = ok ? td_store_template_get(c, m->template_id, &t) : TD_OK;

    td_store_release(o->st, c);
    if (!ok) {
        return;
    }
    if (rc != TD_OK) {
        if (rc == TD_ENOTFOUND) {
            skip(res, "render_error", "no template of that id");
        } else {
            set_outcome(res, "queued", "retry", "store_error", "cannot read the template (%s)",
                        td_strerror(rc));
        }
        return;
    }
    td_buf_t msg = TD_BUF_INIT;
    if (build(o, m, &t, &msg, res) == TD_OK) {
        td_smtp_result_t sr;
        td_smtp_pool_send(o->pool, o->cfg->mail_from, m->recipient, msg.data, msg.len, &sr);
        switch (sr.status) {
        case TD_SMTP_ACCEPTED:
            set_outcome(res, "sent", "sent", "", "%d %s", sr.code, sr.reply);
            break;
        case TD_SMTP_PERMFAIL:
            set_outcome(res, "failed", "failed", "bounced", "%d %s", sr.code, sr.reply);
            res->hard_bounce = sr.code >= 550 && sr.code <= 553;
            break;
        default:
            set_outcome(res, "queued", "retry", td_smtp_status_name(sr.status), "%d %s", sr.code,
                        sr.reply);
            break;
        }
    }
    td_buf_release(&msg);
    td_store_template_release(&t);
}

/* Frequency caps, inside the claim's transaction (the store's write lock on
 * SQLite, row locks on PostgreSQL): the row is counted as "sending" from
 * here on, so a concurrent claim for the same profile sees it. Over a cap
 * the row is settled here (*capped): queued again for when the cap allows
 * (defer) or skipped as "capped" (drop). */
static int apply_caps(td_outbox_t *o, td_store_conn_t *c, const td_store_outbox_t *m, bool *capped)
{
    int64_t now = td_clock_now_ms(o->clock), next = now;
    bool drop = false;
    int rc;

    if (m->profile_id <= 0) {
        return TD_OK;
    }
    for (int i = 0; i < o->n_caps; i++) {
        int64_t used, oldest;
        if ((rc = td_store_cap_usage(c, m->profile_id, m->id, now - o->caps[i].window_ms, now,
                                     &used, &oldest)) != TD_OK) {
            return rc;
        }
        if (used >= o->caps[i].limit) {
            int64_t t = td_cap_next_allowed_ms(&o->caps[i], used, oldest, now);
            drop = drop || o->caps[i].drop;
            next = t > next ? t : next;
        }
    }
    if (next == now) {
        return TD_OK;
    }
    *capped = true;
    rc = td_store_outbox_mark(c, m->id, o->node, drop ? "skipped" : "deferred", drop ? 0 : next,
                              drop ? "capped: a frequency cap was reached"
                                   : "capped: deferred until a frequency cap allows",
                              now);
    if (rc == TD_OK) {
        rc = td_store_send_end(c, m->message_id, drop ? "skipped" : "deferred", "capped",
                               td_wall_ms());
    }
    if (rc == TD_OK) {
        td_metrics_add("tandem_outbox_messages_total",
                       drop ? "outcome=\"skipped\",reason=\"capped\""
                            : "outcome=\"deferred\",reason=\"capped\"",
                       1);
    }
    return rc;
}

/* Claims one due row; *got false when none (or when caps settled it). */
static int claim(td_outbox_t *o, td_store_outbox_t *out, bool *got, bool *resent, bool *capped)
{
    td_store_conn_t *c = td_store_acquire(o->st);
    td_store_outbox_t *rows = NULL;
    int64_t wall = td_wall_ms();
    int n = 0, rc;

    *got = false;
    *capped = false;
    if ((rc = td_store_begin(c)) != TD_OK) {
        td_store_release(o->st, c);
        return rc;
    }
    rc = td_store_outbox_claim(c, o->node, td_clock_now_ms(o->clock), wall,
                               wall + o->cfg->outbox_lease * 1000, 1, &rows, &n);
    if (rc == TD_OK && n == 1) {
        rc = td_store_send_begin(c, rows[0].message_id, rows[0].journey_id, wall, resent);
    }
    if (rc == TD_OK && n == 1 && o->n_caps > 0 &&
        (rc = apply_caps(o, c, &rows[0], capped)) == TD_OK && *capped) {
        /* settled inside this transaction */
    }
    if (rc == TD_OK) {
        rc = td_store_commit(c);
    } else {
        td_store_rollback(c);
    }
    td_store_release(o->st, c);
    *capped = *capped && rc == TD_OK;
    if (rc == TD_OK && n == 1 && !*capped) {
        *out = rows[0];
        memset(&rows[0], 0, sizeof(rows[0]));
        *got = true;
    }
    td_store_outboxes_free(rows, n);
    return rc;
}

static int mark(td_outbox_t *o, const td_store_outbox_t *m, outcome_t *res)
{
    td_store_conn_t *c = td_store_acquire(o->st);
    int64_t now = td_clock_now_ms(o->clock), next = 0;
    const char *status = res->status, *log = res->log;
    char error[400];
    int rc;

    if (res->next_ms > 0) {
        next = res->next_ms;
    } else if (strcmp(status, "queued") == 0) {
        if (m->attempts >= o->cfg->outbox_max_attempts) {
            status = "failed";
            log = "failed";
        } else {
            next = now + td_outbox_backoff_ms(m->attempts, o->cfg->outbox_retry_base * 1000);
        }
    }
    snprintf(error, sizeof(error), "%s%s%s", res->reason, *res->reason ? ": " : "", res->detail);
    if ((rc = td_store_begin(c)) != TD_OK) {
        td_store_release(o->st, c);
        return rc;
    }
    rc = td_store_outbox_mark(c, m->id, o->node, status, next, error, now);
    if (rc == TD_OK) {
        rc = td_store_send_end(c, m->message_id, log, res->reason, td_wall_ms());
    }
    if (rc == TD_OK && res->hard_bounce) {
        td_store_suppression_t s = { .key = m->recipient,
                                     .reason = (char *)"hard_bounce",
                                     .source = (char *)"smtp",
                                     .created_ms = now };
        char lower[320];
        snprintf(lower, sizeof(lower), "%s", m->recipient);
        for (char *p = lower; *p; p++) {
            *p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
        }
        s.key = lower;
        rc = td_store_suppression_add(c, &s);
    }
    if (rc == TD_OK) {
        rc = td_store_commit(c);
    } else {
        td_store_rollback(c);
    }
    td_store_release(o->st, c);
    if (rc == TD_OK) {
        char labels[120];
        snprintf(labels, sizeof(labels), "outcome=\"%s\",reason=\"%s\"", log, res->reason);
        td_metrics_add("tandem_outbox_messages_total", labels, 1);
    }
    return rc;
}

static void *sender_main(void *arg)
{
    td_outbox_t *o = arg;

    while (!atomic_load(&o->stop)) {
        td_store_outbox_t m = { 0 };
        bool got = false, resent = false, capped = false;
        int rc = claim(o, &m, &got, &resent, &capped);
        if (capped) {
            continue;
        }
        if (rc != TD_OK || !got) {
            if (rc != TD_OK) {
                td_log(TD_LOG_WARN, "outbox", "claim failed rc=%s", td_strerror(rc));
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += IDLE_WAIT_MS * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_mutex_lock(&o->mu);
            if (!atomic_load(&o->stop)) {
                pthread_cond_timedwait(&o->cv, &o->mu, &ts);
            }
            pthread_mutex_unlock(&o->mu);
            continue;
        }
        if (resent) {
            td_metrics_add("tandem_outbox_resent_after_crash_total", "", 1);
            td_log(TD_LOG_WARN, "outbox", "resending after a crash id=%lld message_id=%s",
                   (long long)m.id, m.message_id);
        }
        outcome_t res = { 0 };
        attempt(o, &m, &res);
        char masked[128];
        td_log_mask_email(m.recipient, masked, sizeof(masked));
        /* the verdict is in: a busy store must not turn it into a resend */
        for (int i = 0; (rc = mark(o, &m, &res)) == TD_EBUSY && i < 50; i++) {
            struct timespec pause = { .tv_sec = 0, .tv_nsec = 100 * 1000000L };
            nanosleep(&pause, NULL);
        }
        if (rc != TD_OK) {
            td_log(TD_LOG_ERROR, "outbox", "cannot mark id=%lld rc=%s (the lease may have run out)",
                   (long long)m.id, td_strerror(rc));
        }
        td_log(TD_LOG_INFO, "outbox", "id=%lld to=%s outcome=%s reason=%s detail=%.200s",
               (long long)m.id, masked, res.log, res.reason, res.detail);
        td_store_outbox_release(&m);
    }
    return NULL;
}

/* ---- open and close ----------------------------------------------------- */

static int read_first_line(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    char line[4096];

    *out = NULL;
    if (f == NULL) {
        return TD_EIO;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    *out = td_xstrdup(line);
    return TD_OK;
}

int td_outbox_open(struct td_store *st, struct td_clock *clock, const struct td_config *cfg,
                   td_outbox_t **out, td_err_t *err)
{
    td_outbox_t *o;
    char host[128] = "localhost";

    *out = NULL;
    td_metrics_describe(
        "tandem_outbox_messages_total", "counter",
        "outbox send attempts by outcome (sent, retry, failed, skipped) and reason");
    td_metrics_describe("tandem_outbox_resent_after_crash_total", "counter",
                        "messages sent again with the same Message-ID because a crash came "
                        "between the SMTP server's reply and the mark");
    /* settings are checked even when nothing is sent, so a typo shows at once */
    td_cap_t caps[TD_CAP_MAX];
    int n_caps = 0, quiet_start = 0, quiet_end = 0, tz_off = 0;
    if (td_cap_parse(cfg->cap, caps, TD_CAP_MAX, &n_caps, err) != TD_OK) {
        return TD_EINVAL;
    }
    if (td_quiet_parse(cfg->quiet_hours, &quiet_start, &quiet_end) != TD_OK) {
        return td_err_set(err, TD_EINVAL, "quiet_hours",
                          "\"%s\": give HH:MM-HH:MM, e.g. 21:00-08:00", cfg->quiet_hours);
    }
    if (td_tz_cache_offset(td_tz_cache_shared(), cfg->quiet_hours_tz, td_clock_now_ms(clock),
                           &tz_off) != TD_OK) {
        return td_err_set(err, TD_EINVAL, "quiet_hours_tz",
                          "\"%s\": give UTC, an offset such as +02:00, or a time zone name "
                          "of the system's zoneinfo such as Europe/Paris",
                          cfg->quiet_hours_tz);
    }
    if (!td_store_messages_supported(st) || !td_store_journeys_supported(st)) {
        td_log(TD_LOG_WARN, "outbox", "not supported by store=%s", td_store_backend(st));
        return TD_OK;
    }
    if (*cfg->smtp == '\0') {
        td_log(TD_LOG_WARN, "outbox", "smtp is not set: emails stay queued until it is");
        return TD_OK;
    }
    if (!td_mime_addr_valid(cfg->mail_from)) {
        return td_err_set(err, TD_EINVAL, "mail_from",
                          "set mail_from to the sender address (e.g. news@shop.example)");
    }
    if (cfg->outbox_lease <= cfg->smtp_timeout) {
        /* a send still running when its lease ends may be made a second time elsewhere */
        td_log(TD_LOG_WARN, "outbox", "outbox_lease=%lld is not above smtp_timeout=%lld",
               (long long)cfg->outbox_lease, (long long)cfg->smtp_timeout);
    }
    o = td_xcalloc(1, sizeof(*o));
    memcpy(o->caps, caps, sizeof(caps));
    o->n_caps = n_caps;
    o->quiet_start = quiet_start;
    o->quiet_end = quiet_end;
    o->quiet = quiet_start != quiet_end;
    o->st = st;
    o->clock = clock;
    o->cfg = cfg;
    o->templates = td_template_cache_new(TEMPLATE_CACHE_ENTRIES);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(o->node, sizeof(o->node), "%s:%ld", host, (long)getpid());
    if (*cfg->dkim_domain &&
        td_dkim_open(cfg->dkim_domain, cfg->dkim_selector, cfg->dkim_key, &o->dkim, err) != TD_OK) {
        td_outbox_close(o);
        return TD_EINVAL;
    }
    if (*cfg->public_url) {
        if (td_track_secret_load(cfg->track_secret_file, cfg->data, &o->key, err) != TD_OK) {
            td_outbox_close(o);
            return TD_EINVAL;
        }
        o->track = true;
    }
    if (*cfg->smtp_password_file &&
        read_first_line(cfg->smtp_password_file, &o->password) != TD_OK) {
        td_outbox_close(o);
        return td_err_set(err, TD_EIO, "smtp_password_file", "cannot read \"%s\"",
                          cfg->smtp_password_file);
    }
    td_smtp_pool_options_t po = {
        .smtp = { .url = cfg->smtp,
                  .user = cfg->smtp_user,
                  .password = o->password,
                  .ca_file = cfg->smtp_ca_file,
                  .tls = strcmp(cfg->smtp_tls, "require") == 0 ? TD_SMTP_TLS_REQUIRE
                         : strcmp(cfg->smtp_tls, "off") == 0   ? TD_SMTP_TLS_OFF
                                                               : TD_SMTP_TLS_TRY,
                  .timeout_ms = (long)cfg->smtp_timeout * 1000 },
        .senders = (int)cfg->smtp_senders,
        .per_min = cfg->smtp_rate,
        .domain_per_min = cfg->smtp_domain_rate
    };
    if (td_smtp_pool_open(&po, &o->pool, err) != TD_OK) {
        td_outbox_close(o);
        return TD_EINVAL;
    }
    int n = (int)cfg->smtp_senders;
    n = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&o->threads[i], NULL, sender_main, o) != 0) {
            break;
        }
        o->n_threads++;
    }
    td_log(TD_LOG_INFO, "outbox", "started senders=%d node=%s tracking=%s dkim=%s caps=%d quiet=%s",
           o->n_threads, o->node, o->track ? "on" : "off", o->dkim ? "on" : "off", o->n_caps,
           o->quiet ? cfg->quiet_hours : "off");
    *out = o;
    return TD_OK;
}

void td_outbox_close(td_outbox_t *o)
{
    if (o == NULL) {
        return;
    }
    pthread_mutex_lock(&o->mu);
    atomic_store(&o->stop, true);
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < o->n_threads; i++) {
        pthread_join(o->threads[i], NULL);
    }
    td_smtp_pool_close(o->pool);
    td_dkim_close(o->dkim);
    td_template_cache_free(o->templates);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o->password);
    free(o);
}

/* ---- templates from files ----------------------------------------------- */

static char *slurp(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    td_buf_t b = TD_BUF_INIT;
    char chunk[65536];
    size_t n;

    if (f == NULL) {
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > max) {
            fclose(f);
            td_buf_release(&b);
            return NULL;
        }
        td_buf_add(&b, chunk, n);
    }
    fclose(f);
    td_buf_addc(&b, '\0');
    return td_buf_detach(&b);
}

int td_message_templates_load_dir(struct td_store *st, const char *dir, int64_t now_ms,
                                  int *n_loaded)
{
    DIR *d;
    struct dirent *e;
    int rc = TD_OK, n = 0;

    if (n_loaded) {
        *n_loaded = 0;
    }
    if (dir == NULL || *dir == '\0' || !td_store_messages_supported(st) ||
        (d = opendir(dir)) == NULL) {
        return TD_OK;
    }
    td_store_conn_t *c = td_store_acquire(st);
    while (rc == TD_OK && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char path[4096], *text, *html;
        json_error_t jerr;
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        text = slurp(path, 1024 * 1024);
        json_t *man = text ? json_loads(text, 0, &jerr) : NULL;
        free(text);
        const char *id = json_string_value(json_object_get(man, "id"));
        const char *file = json_string_value(json_object_get(man, "html"));
        if (id == NULL || file == NULL || strchr(file, '/')) {
            td_log(TD_LOG_WARN, "template", "skipping manifest=%s (needs \"id\" and \"html\")",
                   path);
            json_decref(man);
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        html = slurp(path, TD_TEMPLATE_MAX_SOURCE);
        if (html == NULL) {
            td_log(TD_LOG_WARN, "template", "cannot read html=%s", path);
            json_decref(man);
            continue;
        }
        const char *subject = json_string_value(json_object_get(man, "subject"));
        const char *from = json_string_value(json_object_get(man, "fromName"));
        const char *reply = json_string_value(json_object_get(man, "replyTo"));
        td_store_template_t t = { .id = (char *)id,
                                  .subject = (char *)(subject ? subject : ""),
                                  .html = html,
                                  .from_name = (char *)from,
                                  .reply_to = (char *)reply,
                                  .source = (char *)"file",
                                  .updated_ms = now_ms };
        int64_t version;
        if ((rc = td_store_begin(c)) == TD_OK) {
            rc = td_store_template_put(c, &t, true, &version);
            if (rc == TD_OK) {
                rc = td_store_commit(c);
                n++;
                td_log(TD_LOG_INFO, "template", "loaded id=%s from=%s", id, path);
            } else {
                td_store_rollback(c);
                rc = rc == TD_ECONFLICT ? TD_OK : rc;
            }
        }
        free(html);
        json_decref(man);
    }
    closedir(d);
    td_store_release(st, c);
    if (n_loaded) {
        *n_loaded = n;
    }
    return rc;
}
