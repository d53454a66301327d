/* The SQLite side of journeys and the outbox (schema in
 * migrations/sqlite/0003_journeys.sql). Due instances are taken inside the
 * caller's write transaction, which on SQLite holds the database's write
 * lock; leases (wall clock) keep rows across an outside call. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"
#include "util/log.h"
#include "util/banned.h"

/* ---- statements ------------------------------------------------------- */

static const char S_J_GET[] = "SELECT id, status, coalesce(live_version, 0), latest_version, "
                              "created_ms, updated_ms FROM journeys WHERE id = ?1";
static const char S_J_LIST[] = "SELECT id, status, coalesce(live_version, 0), latest_version, "
                               "created_ms, updated_ms FROM journeys ORDER BY id";
static const char S_J_CREATE[] =
    "INSERT INTO journeys (id, status, live_version, latest_version, created_ms, updated_ms) "
    "VALUES (?1, 'draft', NULL, 0, ?2, ?2)";
static const char S_V_ADD[] = "INSERT INTO journey_versions (journey_id, version, doc, created_ms) "
                              "VALUES (?1, ?2, ?3, ?4)";
static const char S_J_LATEST[] =
    "UPDATE journeys SET latest_version = ?2, updated_ms = ?3 WHERE id = ?1";
static const char S_V_GET[] =
    "SELECT doc, created_ms, coalesce(published_ms, 0) FROM journey_versions "
    "WHERE journey_id = ?1 AND version = CASE WHEN ?2 = 0 THEN "
    "(SELECT latest_version FROM journeys WHERE id = ?1) ELSE ?2 END";
static const char S_J_STATUS[] =
    "UPDATE journeys SET status = ?2, live_version = CASE WHEN ?3 > 0 THEN ?3 "
    "ELSE live_version END, updated_ms = ?4 WHERE id = ?1";
static const char S_V_PUBLISHED[] =
    "UPDATE journey_versions SET published_ms = coalesce(published_ms, ?3) "
    "WHERE journey_id = ?1 AND version = ?2";
static const char S_HOLD[] =
    "UPDATE journey_instances SET held_run_ms = next_run_ms, next_run_ms = NULL "
    "WHERE journey_id = ?1 AND ended_ms IS NULL AND next_run_ms IS NOT NULL";
static const char S_UNHOLD[] =
    "UPDATE journey_instances SET next_run_ms = held_run_ms, held_run_ms = NULL "
    "WHERE journey_id = ?1 AND ended_ms IS NULL AND held_run_ms IS NOT NULL";
static const char S_STOP_COUNT[] =
    "INSERT INTO journey_counters (journey_id, version, step, kind, reason, n) "
    "SELECT journey_id, version, step, 'exited', 'stopped', count(*) FROM journey_instances "
    "WHERE journey_id = ?1 AND ended_ms IS NULL GROUP BY journey_id, version, step "
    "ON CONFLICT (journey_id, version, step, kind, reason) DO UPDATE SET n = n + excluded.n";
static const char S_STOP_KEYS[] = "UPDATE journey_keys SET running_id = NULL WHERE journey_id = ?1";
static const char S_STOP[] =
    "UPDATE journey_instances SET ended_ms = ?2, outcome = 'stopped', reason = 'journey stopped', "
    "next_run_ms = NULL, held_run_ms = NULL, claimed_by = NULL, lease_until_ms = NULL, "
    "history = CASE WHEN length(history) < 65536 THEN history || ?3 ELSE history END "
    "WHERE journey_id = ?1 AND ended_ms IS NULL";
static const char S_KEY_GET[] = "SELECT last_entered_ms, coalesce(running_id, 0) FROM journey_keys "
                                "WHERE journey_id = ?1 AND entry_key = ?2";
static const char S_KEY_PUT[] =
    "INSERT INTO journey_keys (journey_id, entry_key, last_entered_ms, running_id) "
    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (journey_id, entry_key) DO UPDATE SET "
    "last_entered_ms = excluded.last_entered_ms, running_id = excluded.running_id";
static const char S_KEY_RELEASE[] = "UPDATE journey_keys SET running_id = NULL "
                                    "WHERE journey_id = ?1 AND entry_key = ?2 AND running_id = ?3";
static const char S_COUNT_ADD[] =
    "INSERT INTO journey_counters (journey_id, version, step, kind, reason, n) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (journey_id, version, step, kind, reason) "
    "DO UPDATE SET n = n + excluded.n";
static const char S_COUNTS[] = "SELECT version, step, kind, reason, n FROM journey_counters "
                               "WHERE journey_id = ?1 ORDER BY version, step, kind, reason";
static const char S_RUNNING_COUNTS[] =
    "SELECT version, step, 'waiting', '', count(*) FROM journey_instances "
    "WHERE journey_id = ?1 AND ended_ms IS NULL GROUP BY version, step ORDER BY version, step";
static const char S_NEXT_DUE[] =
    "SELECT next_run_ms FROM journey_instances WHERE next_run_ms IS NOT NULL "
    "AND (lease_until_ms IS NULL OR lease_until_ms <= ?1) ORDER BY next_run_ms LIMIT 1";

#define INST_COLS                                                                               \
    "id, journey_id, version, profile_id, entry_key, step, phase, step_since_ms, "              \
    "coalesce(next_run_ms, 0), held_run_ms IS NOT NULL, entered_ms, timeout_at_ms, "            \
    "coalesce(ended_ms, 0), outcome, reason, entry_seq, entry_event, data, n_steps, attempts, " \
    "claimed_by, coalesce(lease_until_ms, 0)"

/* A paused journey's instances keep their due time aside (held_run_ms). */
#define PAUSED "EXISTS (SELECT 1 FROM journeys WHERE id = ?1 AND status = 'paused')"

static const char S_INST_INSERT[] =
    "INSERT INTO journey_instances (journey_id, version, profile_id, entry_key, step, phase, "
    "step_since_ms, next_run_ms, held_run_ms, entered_ms, timeout_at_ms, ended_ms, outcome, "
    "reason, entry_seq, entry_event, data, history, n_steps, attempts, claimed_by, "
    "lease_until_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
    "CASE WHEN ?8 IS NULL OR " PAUSED " THEN NULL ELSE ?8 END, "
    "CASE WHEN ?8 IS NOT NULL AND " PAUSED " THEN ?8 ELSE NULL END, "
    "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)";
static const char S_INST_UPDATE[] =
    "UPDATE journey_instances SET step = ?3, phase = ?4, step_since_ms = ?5, "
    "next_run_ms = CASE WHEN ?6 IS NULL OR " PAUSED " THEN NULL ELSE ?6 END, "
    "held_run_ms = CASE WHEN ?6 IS NOT NULL AND " PAUSED " THEN ?6 ELSE NULL END, "
    "ended_ms = ?7, outcome = ?8, reason = ?9, data = coalesce(?10, data), "
    "history = CASE WHEN length(history) < 65536 THEN history || ?11 ELSE history END, "
    "n_steps = ?12, attempts = ?13, claimed_by = ?14, lease_until_ms = ?15 "
    "WHERE id = ?2 AND journey_id = ?1";
static const char S_INST_GET[] =
    "SELECT " INST_COLS ", history FROM journey_instances WHERE id = ?1";
static const char S_INST_DUE[] =
    "SELECT " INST_COLS " FROM journey_instances WHERE next_run_ms <= ?1 "
    "AND (lease_until_ms IS NULL OR lease_until_ms <= ?2) ORDER BY next_run_ms LIMIT ?3";
static const char S_INST_RUNNING[] = "SELECT " INST_COLS " FROM journey_instances "
                                     "WHERE profile_id = ?1 AND ended_ms IS NULL ORDER BY id";
static const char S_INST_BY_PROFILE[] =
    "SELECT " INST_COLS " FROM journey_instances WHERE profile_id = ?1 "
    "AND (?2 IS NULL OR journey_id = ?2) AND (?3 = 0 OR (?3 = 1 AND ended_ms IS NULL) OR "
    "(?3 = 2 AND ended_ms IS NOT NULL)) AND (?4 = 0 OR id < ?4) ORDER BY id DESC LIMIT ?5";
static const char S_INST_BY_JOURNEY[] =
    "SELECT " INST_COLS " FROM journey_instances WHERE journey_id = ?1 "
    "AND (?3 = 0 OR (?3 = 1 AND ended_ms IS NULL) OR (?3 = 2 AND ended_ms IS NOT NULL)) "
    "AND (?4 = 0 OR id < ?4) ORDER BY id DESC LIMIT ?5";
static const char S_ATTRS_GET[] =
    "SELECT name, value FROM profile_attributes WHERE profile_id = ?1 ORDER BY name";
static const char S_ATTR_SET[] =
    "INSERT INTO profile_attributes (profile_id, name, value, updated_ms) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (profile_id, name) DO UPDATE SET value = excluded.value, "
    "updated_ms = excluded.updated_ms";
static const char S_EVENTS_RECENT[] =
    "SELECT seq, type, ts_ms, received_ms, doc FROM events WHERE profile_id = ?1 "
    "ORDER BY ts_ms DESC, seq DESC LIMIT ?2";

#define OUTBOX_COLS                                                                         \
    "id, message_id, channel, journey_id, journey_version, instance_id, step, profile_id, " \
    "recipient, template_id, data, status, attempts, next_attempt_ms, claimed_by, "         \
    "coalesce(lease_until_ms, 0), created_ms, updated_ms, coalesce(sent_ms, 0), last_error"

static const char S_OB_ADD[] =
    "INSERT INTO outbox (message_id, channel, journey_id, journey_version, instance_id, step, "
    "profile_id, recipient, template_id, data, status, attempts, next_attempt_ms, created_ms, "
    "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13, ?13)";
/* Two arms rather than one OR: each walks the outbox_queue index in order
 * and stops at the limit, where an OR made SQLite sort every due row (a deep
 * queue then slowed every claim). */
static const char S_OB_CLAIM[] =
    "UPDATE outbox SET status = 'sending', claimed_by = ?1, lease_until_ms = ?4, "
    "attempts = attempts + 1, updated_ms = ?2 WHERE id IN (SELECT id FROM ("
    "SELECT id, next_attempt_ms AS due FROM (SELECT id, next_attempt_ms FROM outbox "
    "WHERE status = 'queued' AND next_attempt_ms <= ?2 ORDER BY next_attempt_ms, id LIMIT ?5) "
    "UNION ALL SELECT id, next_attempt_ms FROM (SELECT id, next_attempt_ms FROM outbox "
    "WHERE status = 'sending' AND lease_until_ms <= ?3 LIMIT ?5)) "
    "ORDER BY due, id LIMIT ?5) "
    "RETURNING " OUTBOX_COLS;
static const char S_OB_MARK[] =
    "UPDATE outbox SET status = CASE WHEN ?3 = 'deferred' THEN 'queued' ELSE ?3 END, "
    "attempts = attempts - (?3 = 'deferred'), next_attempt_ms = CASE WHEN ?4 > 0 THEN ?4 "
    "ELSE next_attempt_ms END, last_error = ?5, updated_ms = ?6, sent_ms = CASE WHEN ?3 = 'sent' "
    "THEN ?6 ELSE sent_ms END, claimed_by = NULL, lease_until_ms = NULL "
    "WHERE id = ?1 AND claimed_by IS ?2";
static const char S_OB_GET[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE id = ?1";
static const char S_OB_LIST[] =
    "SELECT " OUTBOX_COLS " FROM outbox WHERE (?1 = 0 OR instance_id = ?1) "
    "AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3";

/* ---- helpers ---------------------------------------------------------- */

static sqlite3_stmt *stmt(td_sqlite_conn_t *c, const char *sql)
{
    return td_store__sqlite_stmt(c, sql);
}

static void bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
    if (v != 0) {
        sqlite3_bind_int64(st, i, v);
    } else {
        sqlite3_bind_null(st, i);
    }
}

/* Grows *rows for one more element of size sz; returns it zeroed. */
static void *push(void **rows, int *n, int *cap, size_t sz)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *rows = td_xrealloc(*rows, sz * (size_t)*cap);
    }
    char *p = (char *)*rows + sz * (size_t)(*n)++;
    memset(p, 0, sz);
    return p;
}

static void read_journey(sqlite3_stmt *st, td_store_journey_t *j)
{
    j->id = td_store__sqlite_col_text(st, 0);
    j->status = td_store__sqlite_col_text(st, 1);
    j->live_version = sqlite3_column_int64(st, 2);
    j->latest_version = sqlite3_column_int64(st, 3);
    j->created_ms = sqlite3_column_int64(st, 4);
    j->updated_ms = sqlite3_column_int64(st, 5);
}

static void read_instance(sqlite3_stmt *st, td_store_jinstance_t *i, bool with_history)
{
    i->id = sqlite3_column_int64(st, 0);
    i->journey_id = td_store__sqlite_col_text(st, 1);
    i->version = sqlite3_column_int64(st, 2);
    i->profile_id = sqlite3_column_int64(st, 3);
    i->entry_key = td_store__sqlite_col_text(st, 4);
    i->step = td_store__sqlite_col_text(st, 5);
    i->phase = sqlite3_column_int(st, 6);
    i->step_since_ms = sqlite3_column_int64(st, 7);
    i->next_run_ms = sqlite3_column_int64(st, 8);
    i->held = sqlite3_column_int(st, 9) != 0;
    i->entered_ms = sqlite3_column_int64(st, 10);
    i->timeout_at_ms = sqlite3_column_int64(st, 11);
    i->ended_ms = sqlite3_column_int64(st, 12);
    i->outcome = td_store__sqlite_col_text(st, 13);
    i->reason = td_store__sqlite_col_text(st, 14);
    i->entry_seq = sqlite3_column_int64(st, 15);
    i->entry_event = td_store__sqlite_col_text(st, 16);
    i->data = td_store__sqlite_col_text(st, 17);
    i->n_steps = sqlite3_column_int64(st, 18);
    i->attempts = sqlite3_column_int(st, 19);
    i->claimed_by = td_store__sqlite_col_text(st, 20);
    i->lease_until_ms = sqlite3_column_int64(st, 21);
    if (with_history) {
        /* stored as ",{...},{...}": give it back as a JSON array */
        const char *h = (const char *)sqlite3_column_text(st, 22);
        size_t len = h ? strlen(h) : 0;
        i->history = td_xmalloc(len + 3);
        i->history[0] = '[';
        memcpy(i->history + 1, len ? h + 1 : "", len ? len - 1 : 0);
        i->history[len ? len : 1] = ']';
        i->history[len ? len + 1 : 2] = '\0';
    }
}

static void read_outbox(sqlite3_stmt *st, td_store_outbox_t *m)
{
    m->id = sqlite3_column_int64(st, 0);
    m->message_id = td_store__sqlite_col_text(st, 1);
    m->channel = td_store__sqlite_col_text(st, 2);
    m->journey_id = td_store__sqlite_col_text(st, 3);
    m->journey_version = sqlite3_column_int64(st, 4);
    m->instance_id = sqlite3_column_int64(st, 5);
    m->step = td_store__sqlite_col_text(st, 6);
    m->profile_id = sqlite3_column_int64(st, 7);
    m->recipient = td_store__sqlite_col_text(st, 8);
    m->template_id = td_store__sqlite_col_text(st, 9);
    m->data = td_store__sqlite_col_text(st, 10);
    m->status = td_store__sqlite_col_text(st, 11);
    m->attempts = sqlite3_column_int(st, 12);
    m->next_attempt_ms = sqlite3_column_int64(st, 13);
    m->claimed_by = td_store__sqlite_col_text(st, 14);
    m->lease_until_ms = sqlite3_column_int64(st, 15);
    m->created_ms = sqlite3_column_int64(st, 16);
    m->updated_ms = sqlite3_column_int64(st, 17);
    m->sent_ms = sqlite3_column_int64(st, 18);
    m->last_error = td_store__sqlite_col_text(st, 19);
}

/* Steps st to the end, one row per call of read; reset afterwards. */
static int read_rows(td_sqlite_conn_t *c, sqlite3_stmt *st, void **rows, int *n, size_t sz,
                     void (*read)(sqlite3_stmt *, void *))
{
    int rc, cap = 0;

    *rows = NULL;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read(st, push(rows, n, &cap, sz));
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, sqlite3_sql(st));
}

static void read_journey_row(sqlite3_stmt *st, void *p)
{
    read_journey(st, p);
}

static void read_instance_row(sqlite3_stmt *st, void *p)
{
    read_instance(st, p, false);
}

static void read_outbox_row(sqlite3_stmt *st, void *p)
{
    read_outbox(st, p);
}

static void read_count_row(sqlite3_stmt *st, void *p)
{
    td_store_jcount_t *r = p;

    r->version = sqlite3_column_int64(st, 0);
    r->step = td_store__sqlite_col_text(st, 1);
    r->kind = td_store__sqlite_col_text(st, 2);
    r->reason = td_store__sqlite_col_text(st, 3);
    r->n = sqlite3_column_int64(st, 4);
}

static void read_attr_row(sqlite3_stmt *st, void *p)
{
    td_store_attr_t *r = p;

    r->name = td_store__sqlite_col_text(st, 0);
    r->value = td_store__sqlite_col_text(st, 1);
}

static void read_event_row(sqlite3_stmt *st, void *p)
{
    td_store_event_row_t *r = p;

    r->seq = sqlite3_column_int64(st, 0);
    r->type = td_store__sqlite_col_text(st, 1);
    r->ts_ms = sqlite3_column_int64(st, 2);
    r->received_ms = sqlite3_column_int64(st, 3);
    r->doc = td_store__sqlite_col_text(st, 4);
}

/* ---- journeys --------------------------------------------------------- */

static int sj_get(void *conn, const char *id, td_store_journey_t *out)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_J_GET);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    memset(out, 0, sizeof(*out));
    td_store__sqlite_bind_text(st, 1, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_journey(st, out);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return TD_OK;
    }
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, S_J_GET);
}

static int sj_list(void *conn, td_store_journey_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_J_LIST);

    if (st == NULL) {
        return TD_EIO;
    }
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_journey_row);
}

static int sj_create(void *conn, const char *id, int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_J_CREATE);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    return td_store__sqlite_run(c, st);
}

static int sj_version_add(void *conn, const char *id, int64_t version, const char *doc,
                          int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_V_ADD);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    td_store__sqlite_bind_text(st, 3, doc);
    sqlite3_bind_int64(st, 4, now_ms);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    if ((st = stmt(c, S_J_LATEST)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    sqlite3_bind_int64(st, 3, now_ms);
    return td_store__sqlite_run(c, st);
}

static int sj_version_get(void *conn, const char *id, int64_t version, char **doc,
                          int64_t *created_ms, int64_t *published_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_V_GET);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *doc = td_store__sqlite_col_text(st, 0);
        if (created_ms) {
            *created_ms = sqlite3_column_int64(st, 1);
        }
        if (published_ms) {
            *published_ms = sqlite3_column_int64(st, 2);
        }
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return TD_OK;
    }
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, S_V_GET);
}

static int sj_set_status(void *conn, const char *id, const char *status, int64_t live_version,
                         int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_J_STATUS);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    td_store__sqlite_bind_text(st, 2, status);
    sqlite3_bind_int64(st, 3, live_version);
    sqlite3_bind_int64(st, 4, now_ms);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    if (sqlite3_changes(c->db) == 0) {
        return TD_ENOTFOUND;
    }
    if (live_version <= 0) {
        return TD_OK;
    }
    if ((st = stmt(c, S_V_PUBLISHED)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, live_version);
    sqlite3_bind_int64(st, 3, now_ms);
    return td_store__sqlite_run(c, st);
}

static int run_once(td_sqlite_conn_t *c, const char *sql, const char *id)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return td_store__sqlite_error(c->db, sql);
    }
    td_store__sqlite_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, sql);
}

static int sj_remove(void *conn, const char *id)
{
    static const char *const sql[] = {
        "DELETE FROM journey_instances WHERE journey_id = ?1",
        "DELETE FROM journey_keys WHERE journey_id = ?1",
        "DELETE FROM journey_counters WHERE journey_id = ?1",
        "DELETE FROM journey_versions WHERE journey_id = ?1",
        "DELETE FROM journeys WHERE id = ?1",
    };
    td_sqlite_conn_t *c = conn;
    int rc;

    for (size_t i = 0; i < TD_ARRAY_LEN(sql); i++) {
        if ((rc = run_once(c, sql[i], id)) != TD_OK) {
            return rc;
        }
    }
    return sqlite3_changes(c->db) > 0 ? TD_OK : TD_ENOTFOUND;
}

static int sj_hold(void *conn, const char *id, bool hold)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, hold ? S_HOLD : S_UNHOLD);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    return td_store__sqlite_run(c, st);
}

static int sj_stop(void *conn, const char *id, int64_t now_ms, const char *history, int64_t *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st;
    int rc;

    if ((st = stmt(c, S_STOP_COUNT)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    if ((st = stmt(c, S_STOP_KEYS)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    if ((st = stmt(c, S_STOP)) == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    td_store__sqlite_bind_text(st, 3, history ? history : "");
    if ((rc = td_store__sqlite_run(c, st)) == TD_OK) {
        *n = sqlite3_changes(c->db);
    }
    return rc;
}

static int sj_key_get(void *conn, const char *journey_id, const char *key, int64_t *last_entered_ms,
                      int64_t *running_id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_KEY_GET);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    td_store__sqlite_bind_text(st, 2, key);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *last_entered_ms = sqlite3_column_int64(st, 0);
        *running_id = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return TD_OK;
    }
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, S_KEY_GET);
}

static int sj_key_put(void *conn, const char *journey_id, const char *key, int64_t entered_ms,
                      int64_t running_id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_KEY_PUT);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    td_store__sqlite_bind_text(st, 2, key);
    sqlite3_bind_int64(st, 3, entered_ms);
    bind_opt_int(st, 4, running_id);
    return td_store__sqlite_run(c, st);
}

static int sj_key_release(void *conn, const char *journey_id, const char *key, int64_t instance_id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_KEY_RELEASE);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    td_store__sqlite_bind_text(st, 2, key);
    sqlite3_bind_int64(st, 3, instance_id);
    return td_store__sqlite_run(c, st);
}

static int sj_count_add(void *conn, const char *journey_id, int64_t version, const char *step,
                        const char *kind, const char *reason, int64_t n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_COUNT_ADD);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    sqlite3_bind_int64(st, 2, version);
    td_store__sqlite_bind_text(st, 3, step ? step : "");
    td_store__sqlite_bind_text(st, 4, kind);
    td_store__sqlite_bind_text(st, 5, reason ? reason : "");
    sqlite3_bind_int64(st, 6, n);
    return td_store__sqlite_run(c, st);
}

static int counts_query(td_sqlite_conn_t *c, const char *sql, const char *journey_id,
                        td_store_jcount_t **rows, int *n)
{
    sqlite3_stmt *st = stmt(c, sql);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, journey_id);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_count_row);
}

static int sj_counts(void *conn, const char *journey_id, td_store_jcount_t **rows, int *n)
{
    return counts_query(conn, S_COUNTS, journey_id, rows, n);
}

static int sj_running_counts(void *conn, const char *journey_id, td_store_jcount_t **rows, int *n)
{
    return counts_query(conn, S_RUNNING_COUNTS, journey_id, rows, n);
}

static int sj_next_due(void *conn, int64_t wall_ms, int64_t *ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_NEXT_DUE);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, wall_ms);
    return td_store__sqlite_query_int(c, st, ms);
}

/* ---- instances -------------------------------------------------------- */

static int si_insert(void *conn, const td_store_jinstance_t *in, const char *history, int64_t *id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_INST_INSERT);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, in->journey_id);
    sqlite3_bind_int64(st, 2, in->version);
    sqlite3_bind_int64(st, 3, in->profile_id);
    td_store__sqlite_bind_text(st, 4, in->entry_key);
    td_store__sqlite_bind_text(st, 5, in->step);
    sqlite3_bind_int(st, 6, in->phase);
    sqlite3_bind_int64(st, 7, in->step_since_ms);
    bind_opt_int(st, 8, in->ended_ms ? 0 : in->next_run_ms);
    sqlite3_bind_int64(st, 9, in->entered_ms);
    sqlite3_bind_int64(st, 10, in->timeout_at_ms);
    bind_opt_int(st, 11, in->ended_ms);
    td_store__sqlite_bind_text(st, 12, in->outcome);
    td_store__sqlite_bind_text(st, 13, in->reason);
    sqlite3_bind_int64(st, 14, in->entry_seq);
    td_store__sqlite_bind_text(st, 15, in->entry_event ? in->entry_event : "{}");
    td_store__sqlite_bind_text(st, 16, in->data ? in->data : "{}");
    td_store__sqlite_bind_text(st, 17, history ? history : "");
    sqlite3_bind_int64(st, 18, in->n_steps);
    sqlite3_bind_int(st, 19, in->attempts);
    td_store__sqlite_bind_text(st, 20, in->claimed_by);
    bind_opt_int(st, 21, in->lease_until_ms);
    if ((rc = td_store__sqlite_run(c, st)) == TD_OK) {
        *id = sqlite3_last_insert_rowid(c->db);
    }
    return rc;
}

static int si_update(void *conn, const td_store_jinstance_t *in, bool data_changed,
                     const char *history_append)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_INST_UPDATE);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, in->journey_id);
    sqlite3_bind_int64(st, 2, in->id);
    td_store__sqlite_bind_text(st, 3, in->step);
    sqlite3_bind_int(st, 4, in->phase);
    sqlite3_bind_int64(st, 5, in->step_since_ms);
    bind_opt_int(st, 6, in->ended_ms ? 0 : in->next_run_ms);
    bind_opt_int(st, 7, in->ended_ms);
    td_store__sqlite_bind_text(st, 8, in->outcome);
    td_store__sqlite_bind_text(st, 9, in->reason);
    td_store__sqlite_bind_text(st, 10, data_changed ? in->data : NULL);
    td_store__sqlite_bind_text(st, 11, history_append ? history_append : "");
    sqlite3_bind_int64(st, 12, in->n_steps);
    sqlite3_bind_int(st, 13, in->attempts);
    td_store__sqlite_bind_text(st, 14, in->claimed_by);
    bind_opt_int(st, 15, in->lease_until_ms);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    return sqlite3_changes(c->db) == 1 ? TD_OK : TD_ENOTFOUND;
}

static int si_get(void *conn, int64_t id, td_store_jinstance_t *out)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_INST_GET);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    memset(out, 0, sizeof(*out));
    sqlite3_bind_int64(st, 1, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_instance(st, out, true);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return TD_OK;
    }
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, S_INST_GET);
}

static int si_due(void *conn, int64_t now_ms, int64_t wall_ms, int limit,
                  td_store_jinstance_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_INST_DUE);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, wall_ms);
    sqlite3_bind_int(st, 3, limit);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_instance_row);
}

static int si_running(void *conn, int64_t profile_id, td_store_jinstance_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_INST_RUNNING);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_instance_row);
}

static int si_list(void *conn, const char *journey_id, int64_t profile_id, int state,
                   int64_t before_id, int limit, td_store_jinstance_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, profile_id ? S_INST_BY_PROFILE : S_INST_BY_JOURNEY);

    if (st == NULL) {
        return TD_EIO;
    }
    if (profile_id) {
        sqlite3_bind_int64(st, 1, profile_id);
        td_store__sqlite_bind_text(st, 2, journey_id);
    } else {
        td_store__sqlite_bind_text(st, 1, journey_id ? journey_id : "");
    }
    sqlite3_bind_int(st, 3, state);
    sqlite3_bind_int64(st, 4, before_id);
    sqlite3_bind_int(st, 5, limit);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_instance_row);
}

/* ---- profile attributes and events ------------------------------------ */

static int sa_get(void *conn, int64_t profile_id, td_store_attr_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_ATTRS_GET);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_attr_row);
}

static int sa_set(void *conn, int64_t profile_id, const char *name, const char *value,
                  int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_ATTR_SET);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    td_store__sqlite_bind_text(st, 2, name);
    td_store__sqlite_bind_text(st, 3, value);
    sqlite3_bind_int64(st, 4, now_ms);
    return td_store__sqlite_run(c, st);
}

static int se_recent(void *conn, int64_t profile_id, int limit, td_store_event_row_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_EVENTS_RECENT);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    sqlite3_bind_int(st, 2, limit);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_event_row);
}

/* ---- outbox ----------------------------------------------------------- */

static int so_add(void *conn, const td_store_outbox_t *m, int64_t *id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_OB_ADD);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, m->message_id);
    td_store__sqlite_bind_text(st, 2, m->channel ? m->channel : "email");
    td_store__sqlite_bind_text(st, 3, m->journey_id);
    sqlite3_bind_int64(st, 4, m->journey_version);
    sqlite3_bind_int64(st, 5, m->instance_id);
    td_store__sqlite_bind_text(st, 6, m->step);
    sqlite3_bind_int64(st, 7, m->profile_id);
    td_store__sqlite_bind_text(st, 8, m->recipient);
    td_store__sqlite_bind_text(st, 9, m->template_id);
    td_store__sqlite_bind_text(st, 10, m->data ? m->data : "{}");
    td_store__sqlite_bind_text(st, 11, m->status ? m->status : "queued");
    sqlite3_bind_int64(st, 12, m->next_attempt_ms);
    sqlite3_bind_int64(st, 13, m->created_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        *id = sqlite3_last_insert_rowid(c->db);
        return TD_OK;
    }
    if ((sqlite3_extended_errcode(c->db) & 0xff) == SQLITE_CONSTRAINT) {
        return TD_ECONFLICT; /* already queued: the unique keys make the step idempotent */
    }
    return td_store__sqlite_error(c->db, S_OB_ADD);
}

static int so_claim(void *conn, const char *node, int64_t now_ms, int64_t wall_ms,
                    int64_t lease_until_ms, int limit, td_store_outbox_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_OB_CLAIM);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, node);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, wall_ms);
    sqlite3_bind_int64(st, 4, lease_until_ms);
    sqlite3_bind_int(st, 5, limit);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_outbox_row);
}

static int so_mark(void *conn, int64_t id, const char *node, const char *status,
                   int64_t next_attempt_ms, const char *error, int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_OB_MARK);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, id);
    td_store__sqlite_bind_text(st, 2, node);
    td_store__sqlite_bind_text(st, 3, status);
    sqlite3_bind_int64(st, 4, next_attempt_ms);
    td_store__sqlite_bind_text(st, 5, error);
    sqlite3_bind_int64(st, 6, now_ms);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    return sqlite3_changes(c->db) == 1 ? TD_OK : TD_ENOTFOUND;
}

static int so_get(void *conn, int64_t id, td_store_outbox_t *out)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_OB_GET);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    memset(out, 0, sizeof(*out));
    sqlite3_bind_int64(st, 1, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_outbox(st, out);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return TD_OK;
    }
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, S_OB_GET);
}

static int so_list(void *conn, int64_t instance_id, const char *status, int limit,
                   td_store_outbox_t **rows, int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = stmt(c, S_OB_LIST);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, instance_id);
    td_store__sqlite_bind_text(st, 2, status);
    sqlite3_bind_int(st, 3, limit);
    return read_rows(c, st, (void **)rows, n, sizeof(**rows), read_outbox_row);
}

const td_store_journey_ops_t td_store_sqlite_journey_ops = {
    .get = sj_get,
    .list = sj_list,
    .create = sj_create,
    .version_add = sj_version_add,
    .version_get = sj_version_get,
    .set_status = sj_set_status,
    .remove = sj_remove,
    .hold = sj_hold,
    .stop = sj_stop,
    .key_get = sj_key_get,
    .key_put = sj_key_put,
    .key_release = sj_key_release,
    .count_add = sj_count_add,
    .counts = sj_counts,
    .running_counts = sj_running_counts,
    .next_due = sj_next_due,
    .inst_insert = si_insert,
    .inst_update = si_update,
    .inst_get = si_get,
    .inst_due = si_due,
    .inst_running = si_running,
    .inst_list = si_list,
    .attrs_get = sa_get,
    .attr_set = sa_set,
    .events_recent = se_recent,
    .outbox_add = so_add,
    .outbox_claim = so_claim,
    .outbox_mark = so_mark,
    .outbox_get = so_get,
    .outbox_list = so_list,
};
