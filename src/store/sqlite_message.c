/* The SQLite side of messages: templates, suppressions and the send log
 * (schema in migrations/sqlite/0004_message.sql). */
#include "store/sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

static const char S_TPL_VERSION[] = "SELECT version FROM message_templates WHERE id = ?1";
static const char S_TPL_PUT[] =
    "INSERT INTO message_templates (id, version, subject, html, text, from_name, reply_to, "
    "source, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO UPDATE "
    "SET version = excluded.version, subject = excluded.subject, html = excluded.html, "
    "text = excluded.text, from_name = excluded.from_name, reply_to = excluded.reply_to, "
    "source = excluded.source, updated_ms = excluded.updated_ms";
#define TPL_COLS "id, version, subject, html, text, from_name, reply_to, source, updated_ms"
static const char S_TPL_GET[] = "SELECT " TPL_COLS " FROM message_templates WHERE id = ?1";
static const char S_TPL_DEL[] = "DELETE FROM message_templates WHERE id = ?1";
static const char S_TPL_LIST[] =
    "SELECT id, version, subject, NULL, NULL, from_name, reply_to, source, updated_ms "
    "FROM message_templates ORDER BY id";
static const char S_SUP_ADD[] =
    "INSERT INTO message_suppressions (key, reason, source, created_ms) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (key) DO UPDATE SET reason = excluded.reason, source = excluded.source, "
    "created_ms = excluded.created_ms";
static const char S_SUP_DEL[] = "DELETE FROM message_suppressions WHERE key = ?1";
static const char S_SUP_FIND[] =
    "SELECT key, reason, source, created_ms FROM message_suppressions WHERE key = ?1 OR key = ?2 "
    "ORDER BY length(key) DESC LIMIT 1";
static const char S_SUP_LIST[] = "SELECT key, reason, source, created_ms FROM message_suppressions "
                                 "WHERE key > ?1 ORDER BY key LIMIT ?2";
static const char S_SEND_GET[] = "SELECT in_flight FROM message_sends WHERE message_id = ?1";
static const char S_SEND_BEGIN[] =
    "INSERT INTO message_sends (message_id, journey_id, in_flight, started, resent, updated_ms) "
    "VALUES (?1, ?2, 1, 1, 0, ?3) ON CONFLICT (message_id) DO UPDATE SET "
    "resent = resent + in_flight, in_flight = 1, started = started + 1, updated_ms = ?3";
static const char S_SEND_END[] =
    "UPDATE message_sends SET in_flight = 0, outcome = ?2, reason = ?3, updated_ms = ?4 "
    "WHERE message_id = ?1";
static const char S_SEND_COUNTS[] =
    "SELECT coalesce(outcome, 'sending'), coalesce(reason, ''), count(*), sum(resent) "
    "FROM message_sends WHERE journey_id = ?1 GROUP BY 1, 2 ORDER BY 1, 2";

/* the outbox rows of the profile that count against its caps */
static const char S_CAP_USAGE[] =
    "SELECT count(*), coalesce(min(CASE WHEN status = 'sent' THEN sent_ms ELSE ?4 END), 0) "
    "FROM outbox WHERE profile_id = ?1 AND id <> ?2 AND ((status = 'sent' AND sent_ms >= ?3) "
    "OR status = 'sending')";

static const char S_ENG_ADD[] =
    "INSERT INTO message_engagement (message_id, journey_id, kind, first_ms, n) "
    "VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT (message_id, kind) DO UPDATE SET n = n + 1, "
    "first_ms = min(first_ms, excluded.first_ms)";
static const char S_ATTR_ADD[] =
    "INSERT INTO message_attributions (order_id, profile_id, journey_id, step, message_id, "
    "label, revenue, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
    "ON CONFLICT (order_id) DO NOTHING";
static const char S_ENG_COUNTS[] =
    "SELECT kind, count(*) FROM message_engagement WHERE journey_id = ?1 GROUP BY kind";
static const char S_ATTR_SUM[] =
    "SELECT count(*), coalesce(sum(revenue), 0) FROM message_attributions WHERE journey_id = ?1";

static sqlite3_stmt *stmt(td_sqlite_conn_t *c, const char *sql)
{
    return td_store__sqlite_stmt(c, sql);
}

static void read_template(sqlite3_stmt *st, td_store_template_t *t)
{
    t->id = td_store__sqlite_col_text(st, 0);
    t->version = sqlite3_column_int64(st, 1);
    t->subject = td_store__sqlite_col_text(st, 2);
    t->html = td_store__sqlite_col_text(st, 3);
    t->text = td_store__sqlite_col_text(st, 4);
    t->from_name = td_store__sqlite_col_text(st, 5);
    t->reply_to = td_store__sqlite_col_text(st, 6);
    t->source = td_store__sqlite_col_text(st, 7);
    t->updated_ms = sqlite3_column_int64(st, 8);
}

static void read_suppression(sqlite3_stmt *st, td_store_suppression_t *s)
{
    s->key = td_store__sqlite_col_text(st, 0);
    s->reason = td_store__sqlite_col_text(st, 1);
    s->source = td_store__sqlite_col_text(st, 2);
    s->created_ms = sqlite3_column_int64(st, 3);
}

static void *grow(void *rows, int n, int *cap, size_t sz)
{
    if (n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        rows = td_xrealloc(rows, sz * (size_t)*cap);
    }
    memset((char *)rows + sz * (size_t)n, 0, sz);
    return rows;
}

static int mt_put(void *conn, const td_store_template_t *t, bool only_if_absent, int64_t *version)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_TPL_VERSION);
    int64_t v = 0;
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, t->id);
    rc = td_store__sqlite_query_int(c, st, &v);
    if (rc != TD_OK && rc != TD_ENOTFOUND) {
        return rc;
    }
    if (rc == TD_OK && only_if_absent) {
        *version = v;
        return TD_ECONFLICT;
    }
    if ((st = stmt(c, S_TPL_PUT)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, t->id);
    sqlite3_bind_int64(st, 2, v + 1);
    td_store__sqlite_bind_text(st, 3, t->subject ? t->subject : "");
    td_store__sqlite_bind_text(st, 4, t->html ? t->html : "");
    td_store__sqlite_bind_text(st, 5, t->text);
    td_store__sqlite_bind_text(st, 6, t->from_name);
    td_store__sqlite_bind_text(st, 7, t->reply_to);
    td_store__sqlite_bind_text(st, 8, t->source ? t->source : "api");
    sqlite3_bind_int64(st, 9, t->updated_ms);
    if ((rc = td_store__sqlite_run(c, st)) == TD_OK) {
        *version = v + 1;
    }
    return rc;
}

static int mt_get(void *conn, const char *id, td_store_template_t *out)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_TPL_GET);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_template(st, out);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return TD_OK;
    }
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, S_TPL_GET);
}

static int run_delete(td_sqlite_conn_t *c, const char *sql, const char *key)
{
    sqlite3_stmt *st = stmt(c, sql);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, key);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    return sqlite3_changes(c->db) > 0 ? TD_OK : TD_ENOTFOUND;
}

static int mt_delete(void *conn, const char *id)
{
    return run_delete(conn, S_TPL_DEL, id);
}

static int mt_list(void *conn, td_store_template_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_TPL_LIST);
    int rc, cap = 0;

    if (st == NULL) {
        return TD_EIO;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = grow(*rows, *n, &cap, sizeof(**rows));
        read_template(st, &(*rows)[(*n)++]);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, S_TPL_LIST);
}

static int ms_add(void *conn, const td_store_suppression_t *s)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_SUP_ADD);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, s->key);
    td_store__sqlite_bind_text(st, 2, s->reason ? s->reason : "manual");
    td_store__sqlite_bind_text(st, 3, s->source ? s->source : "api");
    sqlite3_bind_int64(st, 4, s->created_ms);
    return td_store__sqlite_run(c, st);
}

static int ms_delete(void *conn, const char *key)
{
    return run_delete(conn, S_SUP_DEL, key);
}

static int ms_find(void *conn, const char *addr, td_store_suppression_t *out)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_SUP_FIND);
    const char *at = strrchr(addr, '@');
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, addr);
    td_store__sqlite_bind_text(st, 2, at ? at : "");
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_suppression(st, out);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return TD_OK;
    }
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, S_SUP_FIND);
}

static int ms_list(void *conn, const char *after, int limit, td_store_suppression_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_SUP_LIST);
    int rc, cap = 0;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, after);
    sqlite3_bind_int(st, 2, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = grow(*rows, *n, &cap, sizeof(**rows));
        read_suppression(st, &(*rows)[(*n)++]);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, S_SUP_LIST);
}

static int sd_begin(void *conn, const char *message_id, const char *journey_id, int64_t wall_ms,
                    bool *was_in_flight)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_SEND_GET);
    int64_t in_flight = 0;
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, message_id);
    rc = td_store__sqlite_query_int(c, st, &in_flight);
    if (rc != TD_OK && rc != TD_ENOTFOUND) {
        return rc;
    }
    *was_in_flight = rc == TD_OK && in_flight != 0;
    if ((st = stmt(c, S_SEND_BEGIN)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, message_id);
    td_store__sqlite_bind_text(st, 2, journey_id ? journey_id : "");
    sqlite3_bind_int64(st, 3, wall_ms);
    return td_store__sqlite_run(c, st);
}

static int sd_end(void *conn, const char *message_id, const char *outcome, const char *reason,
                  int64_t wall_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_SEND_END);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, message_id);
    td_store__sqlite_bind_text(st, 2, outcome);
    td_store__sqlite_bind_text(st, 3, reason);
    sqlite3_bind_int64(st, 4, wall_ms);
    return td_store__sqlite_run(c, st);
}

static int sd_counts(void *conn, const char *journey_id, td_store_send_count_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_SEND_COUNTS);
    int rc, cap = 0;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = grow(*rows, *n, &cap, sizeof(**rows));
        td_store_send_count_t *r = &(*rows)[(*n)++];
        r->outcome = td_store__sqlite_col_text(st, 0);
        r->reason = td_store__sqlite_col_text(st, 1);
        r->n = sqlite3_column_int64(st, 2);
        r->resent = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, S_SEND_COUNTS);
}

static int cap_usage(void *conn, int64_t profile_id, int64_t exclude_id, int64_t since_ms,
                     int64_t now_ms, int64_t *n, int64_t *oldest_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_CAP_USAGE);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    sqlite3_bind_int64(st, 2, exclude_id);
    sqlite3_bind_int64(st, 3, since_ms);
    sqlite3_bind_int64(st, 4, now_ms);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *n = sqlite3_column_int64(st, 0);
        *oldest_ms = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? TD_OK : td_store__sqlite_error(c->db, S_CAP_USAGE);
}

static int eng_add(void *conn, const char *message_id, const char *journey_id, const char *kind,
                   int64_t ts_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_ENG_ADD);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, message_id);
    td_store__sqlite_bind_text(st, 2, journey_id ? journey_id : "");
    td_store__sqlite_bind_text(st, 3, kind);
    sqlite3_bind_int64(st, 4, ts_ms);
    return td_store__sqlite_run(c, st);
}

static int attr_add(void *conn, const td_store_attribution_t *a)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_ATTR_ADD);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, a->order_id);
    sqlite3_bind_int64(st, 2, a->profile_id);
    td_store__sqlite_bind_text(st, 3, a->journey_id ? a->journey_id : "");
    td_store__sqlite_bind_text(st, 4, a->step);
    td_store__sqlite_bind_text(st, 5, a->message_id);
    td_store__sqlite_bind_text(st, 6, a->label);
    sqlite3_bind_double(st, 7, a->revenue);
    sqlite3_bind_int64(st, 8, a->ts_ms);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    return sqlite3_changes(c->db) == 1 ? TD_OK : TD_ECONFLICT;
}

static int outcomes(void *conn, const char *journey_id, td_store_msg_outcomes_t *out)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_ENG_COUNTS);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        if (kind && strcmp(kind, "opened") == 0) {
            out->opened = n;
        } else if (kind && strcmp(kind, "clicked") == 0) {
            out->clicked = n;
        } else if (kind && strcmp(kind, "unsubscribed") == 0) {
            out->unsubscribed = n;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return td_store__sqlite_error(c->db, S_ENG_COUNTS);
    }
    if ((st = stmt(c, S_ATTR_SUM)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        out->converted = sqlite3_column_int64(st, 0);
        out->revenue = sqlite3_column_double(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? TD_OK : td_store__sqlite_error(c->db, S_ATTR_SUM);
}

const td_store_message_ops_t td_store_sqlite_message_ops = {
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
