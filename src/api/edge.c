/* The Adobe Experience Platform Edge Network endpoints that the Web SDK
 * (alloy) calls, so that a site can point an unmodified alloy at Tandem:
 *
 *   POST /ee[/<locationHint>]/{v1,v2}/interact             events, reply with handles
 *   POST /ee[/<locationHint>]/{v1,v2}/collect              events (sendBeacon), 204
 *   POST /ee[/<locationHint>]/{v1,v2}/identity/acquire     the ECID only
 *   POST /ee[/<locationHint>]/{v1,v2}/privacy/set-consent  consent
 *   each with ?configId=<datastream id>&requestId=<uuid>
 *
 * The datastream id must be configured (--datastream CONFIGID=ORGID): the
 * org id names the cookies alloy keeps. The device's ECID comes from the
 * body (identityMap, or the identity cookie copied into meta.state.entries
 * when the edge domain is third-party), else the Cookie header (first-party
 * edge domain), else Tandem mints one. Events are stored like native ones
 * (source "edge") and the reply waits for the commit, as for POST
 * /v1/events. The reply carries identity:result (the ECID), state:store
 * (the kndctr identity cookie, and the consent cookie after set-consent)
 * and personalization:decisions. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

#define ECID_MAX 64 /* the longest ECID td_collect_ecid_ok() accepts */

typedef enum { ACT_INTERACT, ACT_COLLECT, ACT_ACQUIRE, ACT_CONSENT } action_t;

typedef struct pending {
    td_http_req_t *req;
    action_t act;
    td_xdm_request_t x;
    char request_id[65];
    char ecid[ECID_MAX + 1];
    const char *org_id; /* borrowed from the configuration */
    int64_t cookie_max_age_s;
    td_app_t *app; /* recommendations for decision scopes */
} pending_t;

/* The part of the path after /ee/: an optional location hint (the region
 * alloy learnt from a cluster cookie; one region here, so it is ignored),
 * the API version, and the action. */
static int parse_path(const char *path, action_t *act)
{
    static const struct {
        const char *name;
        action_t act;
    } actions[] = {
        { "interact", ACT_INTERACT },
        { "collect", ACT_COLLECT },
        { "identity/acquire", ACT_ACQUIRE },
        { "privacy/set-consent", ACT_CONSENT },
    };
    const char *p = path + strlen("/ee/");

    if (strncmp(p, "v1/", 3) != 0 && strncmp(p, "v2/", 3) != 0) {
        size_t hint = strcspn(p, "/");
        if (hint == 0 || hint > 32 || p[hint] != '/') {
            return TD_ENOTFOUND;
        }
        p += hint + 1;
        if (strncmp(p, "v1/", 3) != 0 && strncmp(p, "v2/", 3) != 0) {
            return TD_ENOTFOUND;
        }
    }
    p += 3;
    for (size_t i = 0; i < TD_ARRAY_LEN(actions); i++) {
        if (strcmp(p, actions[i].name) == 0) {
            *act = actions[i].act;
            return TD_OK;
        }
    }
    return TD_ENOTFOUND;
}

/* A new ECID from the CSPRNG: 38 decimal digits like Adobe's, two
 * zero-padded halves each drawn below 10^19 by rejection, so every 38-digit
 * string is equally likely. */
static int mint_ecid(char *out, size_t len)
{
    const uint64_t limit = 10000000000000000000ULL;
    uint64_t half[2];

    for (int i = 0; i < 2; i++) {
        do {
            if (RAND_bytes((unsigned char *)&half[i], sizeof(half[i])) != 1) {
                td_log(TD_LOG_ERROR, "edge", "RAND_bytes() failed");
                return TD_EIO;
            }
        } while (half[i] >= limit);
    }
    snprintf(out, len, "%019llu%019llu", (unsigned long long)half[0], (unsigned long long)half[1]);
    return TD_OK;
}

/* alloy sends a UUID; anything else is replaced rather than echoed. */
static int request_id(const char *given, char *out, size_t len)
{
    unsigned char r[16];
    size_t n = given ? strlen(given) : 0;
    bool ok = n > 0 && n < len;

    for (size_t i = 0; ok && i < n; i++) {
        char c = given[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    }
    if (ok) {
        snprintf(out, len, "%s", given);
        return TD_OK;
    }
    if (RAND_bytes(r, sizeof(r)) != 1) {
        td_log(TD_LOG_ERROR, "edge", "RAND_bytes() failed");
        return TD_EIO;
    }
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    snprintf(out, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return TD_OK;
}

static void count(const char *result, int n)
{
    char labels[64];

    if (n > 0) {
        snprintf(labels, sizeof(labels), "source=\"edge\",result=\"%s\"", result);
        td_metrics_add("tandem_events_total", labels, n);
    }
}

static void add_str(td_buf_t *b, const char *s)
{
    td_buf_add_json_str(b, s, strlen(s));
}

static void add_cookie(td_buf_t *b, const pending_t *p, const char *key, const char *value)
{
    char name[512];

    td_collect_kndctr_name(p->org_id, key, name, sizeof(name));
    td_buf_adds(b, "{\"key\":");
    add_str(b, name);
    td_buf_adds(b, ",\"value\":");
    add_str(b, value);
    td_buf_addf(b, ",\"maxAge\":%lld}", (long long)p->cookie_max_age_s);
}

/* state:store asks alloy to write first-party cookies: the identity cookie
 * on every reply (so its lifetime restarts with each visit), and after a
 * set-consent call the consent cookie alloy reads ("general=in|out"); until
 * alloy finds it, it holds every later command back. */
static void add_state_store(td_buf_t *b, const pending_t *p)
{
    td_buf_t value = TD_BUF_INIT;

    td_collect_kndctr_encode(p->ecid, &value);
    td_buf_adds(b, ",{\"type\":\"state:store\",\"payload\":[");
    add_cookie(b, p, "identity", value.data);
    if (p->x.has_consent) {
        td_buf_addc(b, ',');
        add_cookie(b, p, "consent",
                   p->x.consent_collect == TD_CONSENT_OUT ? "general=out" : "general=in");
    }
    td_buf_adds(b, "]}");
    td_buf_release(&value);
}

/* The propositions for the decision scopes the events asked for
 * (x->decision_scopes): a scope named like a design (or a criteria id) gets
 * its recommendations as a JSON content item, keyed by the first product of
 * the events (the product viewed). Other scopes get no proposition. */
static void add_decisions(td_buf_t *b, td_app_t *app, const td_xdm_request_t *x, const char *ecid)
{
    json_t *payload = json_array();
    const char *key = NULL;

    for (int i = 0; i < x->batch.n && key == NULL; i++) {
        const td_event_t *ev = &x->batch.slots[i].ev;
        if (x->batch.slots[i].err.code == TD_OK && ev->n_items > 0) {
            key = ev->items[0].id;
        }
    }
    for (int i = 0; app && app->recs && i < x->n_decision_scopes; i++) {
        const char *scope = x->decision_scopes[i];
        json_t *design = td_recs_design_get(app->recs, scope, true), *reply = NULL;
        td_err_t err = { 0 };
        if (design == NULL) {
            continue;
        }
        json_t *req =
            json_pack("{s:O, s:s}", "criteria", json_object_get(design, "criteria"), "ecid", ecid);
        if (json_object_get(design, "count")) {
            json_object_set(req, "count", json_object_get(design, "count"));
        }
        if (key) {
            json_object_set_new(req, "key", json_string(key));
        }
        if (td_recs_recommend(app->recs, req, &reply, &err) == TD_OK) {
            char pid[80];
            snprintf(pid, sizeof(pid), "tandem-%d-%.40s", i, ecid);
            json_array_append_new(
                payload,
                json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:[{s:s, s:s, s:{s:s, s:s, s:o}}]}", "id",
                          pid, "scope", scope, "scopeDetails", "decisionProvider", "TGT",
                          "activity", "id", scope, "items", "id", pid, "schema",
                          "https://ns.adobe.com/personalization/json-content-item", "data", "id",
                          pid, "format", "application/json", "content", reply));
        } else {
            td_log(TD_LOG_WARN, "edge", "decision scope not answered: %s", err.message);
        }
        json_decref(req);
        json_decref(design);
    }
    char *s = json_dumps(payload, JSON_COMPACT);
    td_buf_adds(b, ",{\"type\":\"personalization:decisions\",\"payload\":");
    td_buf_adds(b, s);
    td_buf_addc(b, '}');
    free(s);
    json_decref(payload);
}

static void add_errors(td_buf_t *b, const td_event_batch_t *batch)
{
    bool first = true;

    td_buf_adds(b, ",\"errors\":[");
    for (int i = 0; i < batch->n; i++) {
        const td_err_t *e = &batch->slots[i].err;
        if (e->code == TD_OK) {
            continue;
        }
        td_buf_addf(b, "%s{\"status\":%d,\"code\":", first ? "" : ",", td_http_status_for(e->code));
        add_str(b, td_strerror(e->code));
        td_buf_adds(b, ",\"title\":\"Event refused\",\"detail\":");
        add_str(b, e->message);
        td_buf_addf(b, ",\"report\":{\"eventIndex\":%d,\"path\":", i);
        add_str(b, e->path);
        td_buf_adds(b, "}}");
        first = false;
    }
    td_buf_addc(b, ']');
}

/* Replies once the events are stored (seqs/dup NULL when none were sent to
 * the store). */
static void reply_handles(pending_t *p, const bool *dup)
{
    const td_event_batch_t *batch = &p->x.batch;
    int accepted = 0, duplicates = 0, refused = 0;
    td_buf_t b = TD_BUF_INIT;

    for (int i = 0; i < batch->n; i++) {
        if (batch->slots[i].err.code != TD_OK) {
            refused++;
        } else if (dup && dup[i]) {
            duplicates++;
        } else {
            accepted++;
        }
    }
    count("accepted", accepted);
    count("duplicate", duplicates);
    count("refused", refused);
    if (p->act == ACT_COLLECT) {
        /* a beacon: the browser never reads the answer */
        td_http_reply(p->req, 204, NULL, "", 0);
        return;
    }
    td_buf_adds(&b, "{\"requestId\":");
    add_str(&b, p->request_id);
    td_buf_adds(&b, ",\"handle\":[{\"type\":\"identity:result\",\"payload\":[{\"id\":");
    add_str(&b, p->ecid);
    td_buf_adds(&b, ",\"namespace\":{\"code\":\"ECID\"}}]}");
    add_state_store(&b, p);
    if (p->act == ACT_INTERACT) {
        add_decisions(&b, p->app, &p->x, p->ecid);
    }
    td_buf_addc(&b, ']');
    if (refused) {
        add_errors(&b, batch);
    }
    td_buf_addf(&b, ",\"tandem\":{\"accepted\":%d,\"duplicates\":%d,\"refused\":%d}}", accepted,
                duplicates, refused);
    td_http_reply_json(p->req, 200, &b);
    td_buf_release(&b);
}

static void pending_free(pending_t *p)
{
    td_xdm_request_release(&p->x);
    free(p);
}

static void on_committed(void *ctx, int rc, const int64_t *seqs, const bool *dup)
{
    pending_t *p = ctx;
    td_http_req_t *req = p->req;

    (void)seqs;
    if (rc != TD_OK) {
        td_http_add_header(req, "Retry-After", "1");
        td_http_reply_errorf(req, rc == TD_EBUSY ? TD_EBUSY : TD_EIO, NULL,
                             "events could not be stored (%s); nothing of this request was kept, "
                             "retry it",
                             td_strerror(rc));
    } else {
        reply_handles(p, dup);
    }
    pending_free(p);
    td_http_resume(req);
}

/* The device's ECID: from the body, else the first-party cookie, else a
 * new one. */
static int device_ecid(td_http_req_t *req, pending_t *p)
{
    char name[512];
    const char *cookie;

    if (p->x.ecid) {
        snprintf(p->ecid, sizeof(p->ecid), "%s", p->x.ecid);
        return TD_OK;
    }
    td_collect_kndctr_name(p->org_id, "identity", name, sizeof(name));
    cookie = td_http_cookie(req, name);
    if (cookie && td_collect_kndctr_decode(cookie, p->ecid, sizeof(p->ecid)) == TD_OK) {
        return TD_OK;
    }
    return mint_ecid(p->ecid, sizeof(p->ecid));
}

void td_api_edge_post(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;
    const char *config_id = td_http_query(req, "configId");
    td_err_t err = { 0 };
    action_t act;
    size_t len;
    const char *body = td_http_body(req, &len);
    int64_t now_ms = td_clock_now_ms(app->clock);
    pending_t *p;
    int rc;

    if (parse_path(td_http_path(req), &act) != TD_OK) {
        td_http_reply_errorf(req, TD_ENOTFOUND, NULL,
                             "no such Edge endpoint: %s (known: /ee/v1/interact, /ee/v1/collect, "
                             "/ee/v1/identity/acquire, /ee/v1/privacy/set-consent)",
                             td_http_path(req));
        return;
    }
    if (config_id == NULL || *config_id == '\0') {
        td_http_reply_errorf(req, TD_EINVAL, "configId",
                             "the query parameter configId (the datastream id) is required");
        return;
    }
    p = td_xcalloc(1, sizeof(*p));
    p->req = req;
    p->act = act;
    p->cookie_max_age_s = app->cfg->cookie_days * 86400;
    p->org_id = td_config_datastream_org(app->cfg, config_id);
    p->app = app;
    if (p->org_id == NULL) {
        pending_free(p);
        td_http_reply_errorf(req, TD_EFORBIDDEN, "configId",
                             "unknown datastream; configure it with --datastream CONFIGID=ORGID");
        return;
    }
    rc = td_collect_parse_xdm(body, len, p->org_id, &app->limits, now_ms, &p->x, &err);
    if (rc != TD_OK) {
        count("refused", 1);
        pending_free(p);
        td_http_reply_error(req, rc, &err);
        return;
    }
    if ((rc = request_id(td_http_query(req, "requestId"), p->request_id, sizeof(p->request_id))) !=
            TD_OK ||
        (rc = device_ecid(req, p)) != TD_OK) {
        pending_free(p);
        td_http_reply_errorf(req, rc, NULL, "cannot draw random numbers");
        return;
    }
    td_collect_xdm_set_ecid(&p->x, p->ecid);
    if (td_event_batch_n_ok(&p->x.batch) == 0) {
        if (p->x.batch.n > 0) {
            /* every event was refused: nothing here is worth an identity */
            const td_event_slot_t *s = &p->x.batch.slots[0];
            count("refused", p->x.batch.n);
            td_http_reply_error(req, s->err.code, &s->err);
        } else {
            reply_handles(p, NULL);
        }
        pending_free(p);
        return;
    }
    td_http_defer(req);
    td_ingest_submit(app->ingest, &p->x.batch, now_ms, on_committed, p);
}
