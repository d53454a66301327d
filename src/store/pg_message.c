/* The PostgreSQL side of messages: templates, suppressions, the send log,
 * frequency-cap usage, engagement and attribution (schema in
 * migrations/postgres/0004_message.sql and 0004b_message_engagement.sql),
 * with the same behaviour as sqlite_message.c.
 *
 * SQLite has one writer at a time; here several nodes write at once, so
 * what the SQLite side gets from its write lock comes from elsewhere:
 * - template versions are counted by the upsert itself (version + 1 in one
 *   statement), so two puts of the same template never get the same number;
 * - suppressions and engagement are upserts on their primary keys, and an
 *   order is attributed once by the primary key on order_id;
 * - cap usage takes a transaction-scoped advisory lock on the profile before
 *   it counts: claims for the same profile on two nodes take turns, and the
 *   second counts the first's row as "sending" (or sent, or settled). */
#include "store/pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define TPL_COLS "id, version, subject, html, text, from_name, reply_to, source, updated_ms"
#define SUP_COLS "key, reason, source, created_ms"

/* A new template gets version 1, a replaced one its version + 1, in the same
 * statement, so concurrent puts are numbered in the order they commit. */
static const char P_TPL_PUT[] =
    "INSERT INTO message_templates (" TPL_COLS ") VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (id) DO UPDATE SET version = message_templates.version + 1, "
    "subject = excluded.subject, html = excluded.html, text = excluded.text, "
    "from_name = excluded.from_name, reply_to = excluded.reply_to, source = "
    "excluded.source, "
    "updated_ms = excluded.updated_ms RETURNING version";
static const char P_TPL_ADD[] =
    "INSERT INTO message_templates (" TPL_COLS ") VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (id) DO NOTHING RETURNING version";
static const char P_TPL_VERSION[] = "SELECT version FROM message_templates WHERE id = $1";
static const char P_TPL_GET[] = "SELECT " TPL_COLS " FROM message_templates WHERE id = $1";
static const char P_TPL_DEL[] = "DELETE FROM message_templates WHERE id = $1 RETURNING 1";
static const char P_TPL_LIST[] = "SELECT id, version, subject, NULL, NULL, "
                                 "from_name, reply_to, source, updated_ms "
                                 "FROM message_templates ORDER BY id";
static const char P_SUP_ADD[] =
    "INSERT INTO message_suppressions (" SUP_COLS ") VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (key) DO UPDATE SET reason = excluded.reason, source = "
    "excluded.source, "
    "created_ms = excluded.created_ms";
static const char P_SUP_DEL[] = "DELETE FROM message_suppressions WHERE key = $1 RETURNING 1";
static const char P_SUP_FIND[] = "SELECT " SUP_COLS " FROM message_suppressions "
                                 "WHERE key = $1 OR key = $2 ORDER BY length(key) DESC LIMIT 1";
static const char P_SUP_LIST[] = "SELECT " SUP_COLS " FROM message_suppressions "
                                 "WHERE key > $1 ORDER BY key LIMIT $2";
/* The row lock keeps the read and the upsert together (the outbox row's
 * lock already keeps two nodes from starting the same message). */
static const char P_SEND_GET[] =
    "SELECT in_flight FROM message_sends WHERE message_id = $1 FOR UPDATE";
static const char P_SEND_BEGIN[] =
    "INSERT INTO message_sends (message_id, journey_id, in_flight, started, "
    "resent, updated_ms) "
    "VALUES ($1, $2, 1, 1, 0, $3) ON CONFLICT (message_id) DO UPDATE SET "
    "resent = message_sends.resent + message_sends.in_flight, in_flight = 1, "
    "started = message_sends.started + 1, updated_ms = excluded.updated_ms";
static const char P_SEND_END[] = "UPDATE message_sends SET in_flight = 0, "
                                 "outcome = $2, reason = $3, updated_ms = $4 "
                                 "WHERE message_id = $1";
static const char P_SEND_COUNTS[] =
    "SELECT coalesce(outcome, 'sending'), coalesce(reason, ''), count(*), "
    "coalesce(sum(resent), 0) FROM message_sends WHERE journey_id = $1 GROUP "
    "BY 1, 2 "
    "ORDER BY 1, 2";

/* Taken before counting, in its own statement: under READ COMMITTED the
 * count that follows gets a snapshot taken after the wait, so it sees what
 * the previous holder committed. The text prefix keeps these keys apart
 * from the other advisory locks of the schema. */
static const char P_CAP_LOCK[] =
    "SELECT pg_advisory_xact_lock(hashtextextended('message-cap' || chr(10) || "
    "$1::text, 0))";
/* the outbox rows of the profile that count against its caps */
static const char P_CAP_USAGE[] =
    "SELECT count(*), coalesce(min(CASE WHEN status = 'sent' THEN sent_ms ELSE "
    "$4::bigint END), "
    "0) FROM outbox WHERE profile_id = $1 AND id <> $2 AND ((status = 'sent' "
    "AND sent_ms >= $3) "
    "OR status = 'sending')";

static const char P_ENG_ADD[] =
    "INSERT INTO message_engagement (message_id, journey_id, kind, first_ms, "
    "n) "
    "VALUES ($1, $2, $3, $4, 1) ON CONFLICT (message_id, kind) DO UPDATE SET "
    "n = message_engagement.n + 1, "
    "first_ms = least(message_engagement.first_ms, excluded.first_ms)";
/* No row back: the order was credited already (by this node or another). */
static const char P_ATTR_ADD[] =
    "INSERT INTO message_attributions (order_id, profile_id, journey_id, step, "
    "message_id, "
    "label, revenue, ts_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (order_id) DO NOTHING RETURNING 1";
static const char P_ENG_COUNTS[] =
    "SELECT kind, count(*) FROM message_engagement WHERE journey_id = $1 GROUP "
    "BY kind";
static const char P_ATTR_SUM[] = "SELECT count(*), coalesce(sum(revenue), 0) "
                                 "FROM message_attributions WHERE journey_id = $1";

static void read_template(const PGresult *r, int i, td_store_template_t *t)
{
    t->id = td_pg_get_text(r, i, 0);
    t->version = td_pg_get_int(r, i, 1);
    t->subject = td_pg_get_text(r, i, 2);
    t->html = td_pg_get_text(r, i, 3);
    t->text = td_pg_get_text(r, i, 4);
    t->from_name = td_pg_get_text(r, i, 5);
    t->reply_to = td_pg_get_text(r, i, 6);
    t->source = td_pg_get_text(r, i, 7);
    t->updated_ms = td_pg_get_int(r, i, 8);
}

static void read_suppression(const PGresult *r, int i, td_store_suppression_t *s)
{
    s->key = td_pg_get_text(r, i, 0);
    s->reason = td_pg_get_text(r, i, 1);
    s->source = td_pg_get_text(r, i, 2);
    s->created_ms = td_pg_get_int(r, i, 3);
}

/* Room for n more rows after the `have` already in rows (zeroed). */
static void *grow(void *rows, int have, int n, size_t sz)
{
    if (n == 0) {
        return rows;
    }
    rows = td_xrealloc(rows, sz * (size_t)(have + n));
    memset((char *)rows + sz * (size_t)have, 0, sz * (size_t)n);
    return rows;
}

static int mt_put(void *conn, const td_store_template_t *t, bool only_if_absent, int64_t *version)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_text(&p, t->id);
    td_pg_param_text(&p, t->subject ? t->subject : "");
    td_pg_param_text(&p, t->html ? t->html : "");
    td_pg_param_text(&p, t->text);
    td_pg_param_text(&p, t->from_name);
    td_pg_param_text(&p, t->reply_to);
    td_pg_param_text(&p, t->source ? t->source : "api");
    td_pg_param_int(&p, t->updated_ms);
    if ((r = td_store__pg_query(conn, only_if_absent ? P_TPL_ADD : P_TPL_PUT, &p, &rc)) == NULL) {
        return rc;
    }
    if (PQntuples(r) == 1) {
        *version = td_pg_get_int(r, 0, 0);
        PQclear(r);
        return TD_OK;
    }
    PQclear(r);
    /* only_if_absent and the template exists: tell its version */
    memset(&p, 0, sizeof(p));
    td_pg_param_text(&p, t->id);
    rc = td_store__pg_query_int(conn, P_TPL_VERSION, &p, version);
    if (rc == TD_ENOTFOUND) {
        *version = 0; /* deleted meanwhile */
    } else if (rc != TD_OK) {
        return rc;
    }
    return TD_ECONFLICT;
}

static int mt_get(void *conn, const char *id, td_store_template_t *out)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_text(&p, id);
    if ((r = td_store__pg_query(conn, P_TPL_GET, &p, &rc)) == NULL) {
        return rc;
    }
    rc = PQntuples(r) == 1 ? TD_OK : TD_ENOTFOUND;
    if (rc == TD_OK) {
        read_template(r, 0, out);
    }
    PQclear(r);
    return rc;
}

static int run_delete(void *conn, const char *sql, const char *key)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_text(&p, key);
    if ((r = td_store__pg_query(conn, sql, &p, &rc)) == NULL) {
        return rc;
    }
    rc = PQntuples(r) > 0 ? TD_OK : TD_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int mt_delete(void *conn, const char *id)
{
    return run_delete(conn, P_TPL_DEL, id);
}

static int mt_list(void *conn, td_store_template_t **rows, int *n)
{
    PGresult *r;
    int rc, k;

    if ((r = td_store__pg_query(conn, P_TPL_LIST, NULL, &rc)) == NULL) {
        return rc;
    }
    k = PQntuples(r);
    *rows = grow(*rows, *n, k, sizeof(**rows));
    for (int i = 0; i < k; i++) {
        read_template(r, i, &(*rows)[(*n)++]);
    }
    PQclear(r);
    return TD_OK;
}

static int ms_add(void *conn, const td_store_suppression_t *s)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, s->key);
    td_pg_param_text(&p, s->reason ? s->reason : "manual");
    td_pg_param_text(&p, s->source ? s->source : "api");
    td_pg_param_int(&p, s->created_ms);
    return td_store__pg_run(conn, P_SUP_ADD, &p);
}

static int ms_delete(void *conn, const char *key)
{
    return run_delete(conn, P_SUP_DEL, key);
}

static int ms_find(void *conn, const char *addr, td_store_suppression_t *out)
{
    td_pg_params_t p = { 0 };
    const char *at = strrchr(addr, '@');
    PGresult *r;
    int rc;

    td_pg_param_text(&p, addr);
    td_pg_param_text(&p, at ? at : "");
    if ((r = td_store__pg_query(conn, P_SUP_FIND, &p, &rc)) == NULL) {
        return rc;
    }
    rc = PQntuples(r) == 1 ? TD_OK : TD_ENOTFOUND;
    if (rc == TD_OK) {
        read_suppression(r, 0, out);
    }
    PQclear(r);
    return rc;
}

static int ms_list(void *conn, const char *after, int limit, td_store_suppression_t **rows, int *n)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc, k;

    td_pg_param_text(&p, after ? after : "");
    if (limit < 0) {
        td_pg_param_text(&p, NULL); /* no limit, as SQLite's LIMIT -1 */
    } else {
        td_pg_param_int(&p, limit);
    }
    if ((r = td_store__pg_query(conn, P_SUP_LIST, &p, &rc)) == NULL) {
        return rc;
    }
    k = PQntuples(r);
    *rows = grow(*rows, *n, k, sizeof(**rows));
    for (int i = 0; i < k; i++) {
        read_suppression(r, i, &(*rows)[(*n)++]);
    }
    PQclear(r);
    return TD_OK;
}

static int sd_begin(void *conn, const char *message_id, const char *journey_id, int64_t wall_ms,
                    bool *was_in_flight)
{
    td_pg_params_t p = { 0 };
    int64_t in_flight = 0;
    int rc;

    td_pg_param_text(&p, message_id);
    rc = td_store__pg_query_int(conn, P_SEND_GET, &p, &in_flight);
    if (rc != TD_OK && rc != TD_ENOTFOUND) {
        return rc;
    }
    *was_in_flight = rc == TD_OK && in_flight != 0;
    td_pg_param_text(&p, journey_id ? journey_id : "");
    td_pg_param_int(&p, wall_ms);
    return td_store__pg_run(conn, P_SEND_BEGIN, &p);
}

static int sd_end(void *conn, const char *message_id, const char *outcome, const char *reason,
                  int64_t wall_ms)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, message_id);
    td_pg_param_text(&p, outcome);
    td_pg_param_text(&p, reason);
    td_pg_param_int(&p, wall_ms);
    return td_store__pg_run(conn, P_SEND_END, &p);
}

static int sd_counts(void *conn, const char *journey_id, td_store_send_count_t **rows, int *n)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc, k;

    td_pg_param_text(&p, journey_id);
    if ((r = td_store__pg_query(conn, P_SEND_COUNTS, &p, &rc)) == NULL) {
        return rc;
    }
    k = PQntuples(r);
    *rows = grow(*rows, *n, k, sizeof(**rows));
    for (int i = 0; i < k; i++) {
        td_store_send_count_t *c = &(*rows)[(*n)++];
        c->outcome = td_pg_get_text(r, i, 0);
        c->reason = td_pg_get_text(r, i, 1);
        c->n = td_pg_get_int(r, i, 2);
        c->resent = td_pg_get_int(r, i, 3);
    }
    PQclear(r);
    return TD_OK;
}

static int cap_usage(void *conn, int64_t profile_id, int64_t exclude_id, int64_t since_ms,
                     int64_t now_ms, int64_t *n, int64_t *oldest_ms)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_int(&p, profile_id);
    if ((rc = td_store__pg_run(conn, P_CAP_LOCK, &p)) != TD_OK) {
        return rc;
    }
    td_pg_param_int(&p, exclude_id);
    td_pg_param_int(&p, since_ms);
    td_pg_param_int(&p, now_ms);
    if ((r = td_store__pg_query(conn, P_CAP_USAGE, &p, &rc)) == NULL) {
        return rc;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return TD_EIO;
    }
    *n = td_pg_get_int(r, 0, 0);
    *oldest_ms = td_pg_get_int(r, 0, 1);
    PQclear(r);
    return TD_OK;
}

static int eng_add(void *conn, const char *message_id, const char *journey_id, const char *kind,
                   int64_t ts_ms)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, message_id);
    td_pg_param_text(&p, journey_id ? journey_id : "");
    td_pg_param_text(&p, kind);
    td_pg_param_int(&p, ts_ms);
    return td_store__pg_run(conn, P_ENG_ADD, &p);
}

static int attr_add(void *conn, const td_store_attribution_t *a)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_text(&p, a->order_id);
    td_pg_param_int(&p, a->profile_id);
    td_pg_param_text(&p, a->journey_id ? a->journey_id : "");
    td_pg_param_text(&p, a->step);
    td_pg_param_text(&p, a->message_id);
    td_pg_param_text(&p, a->label);
    td_pg_param_double(&p, a->revenue, true);
    td_pg_param_int(&p, a->ts_ms);
    if ((r = td_store__pg_query(conn, P_ATTR_ADD, &p, &rc)) == NULL) {
        return rc;
    }
    rc = PQntuples(r) == 1 ? TD_OK : TD_ECONFLICT;
    PQclear(r);
    return rc;
}

static int outcomes(void *conn, const char *journey_id, td_store_msg_outcomes_t *out)
{
    td_pg_params_t p = { 0 };
    PGresult *r;
    int rc;

    td_pg_param_text(&p, journey_id);
    if ((r = td_store__pg_query(conn, P_ENG_COUNTS, &p, &rc)) == NULL) {
        return rc;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *kind = PQgetvalue(r, i, 0);
        int64_t n = td_pg_get_int(r, i, 1);
        if (strcmp(kind, "opened") == 0) {
            out->opened = n;
        } else if (strcmp(kind, "clicked") == 0) {
            out->clicked = n;
        } else if (strcmp(kind, "unsubscribed") == 0) {
            out->unsubscribed = n;
        }
    }
    PQclear(r);
    if ((r = td_store__pg_query(conn, P_ATTR_SUM, &p, &rc)) == NULL) {
        return rc;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return TD_EIO;
    }
    out->converted = td_pg_get_int(r, 0, 0);
    out->revenue = td_pg_get_double(r, 0, 1);
    PQclear(r);
    return TD_OK;
}

const td_store_message_ops_t td_store_postgres_message_ops = {
    .template_put = mt_put,
    .template_get = mt_get,
    .template_delete = mt_delete,
    .template_list = mt_list,
    .suppression_add = ms_add,
    .suppression_delete = ms_delete,
    .suppression_find = ms_find,
    .suppression_list = ms_list,
    .send_begin = sd_begin,
    .send_end = sd_end,
    .send_counts = sd_counts,
    .cap_usage = cap_usage,
    .engagement_add = eng_add,
    .attribution_add = attr_add,
    .journey_outcomes = outcomes,
};
