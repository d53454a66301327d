/* The PostgreSQL side of journeys and the outbox (schema in
 * migrations/postgres/0003_journeys.sql), with the same behaviour as
 * sqlite_journey.c.
 *
 * SQLite has one writer at a time; here several nodes write at once, so
 * each operation that relied on that says how it stays safe:
 * - due instances and outbox rows are claimed with FOR UPDATE SKIP LOCKED:
 *   a row is one node's until its transaction ends, and other nodes take
 *   the next rows instead of waiting;
 * - an event's hook locks the profile's running instances (FOR UPDATE,
 *   waiting) and the job that records an outside call's result locks its
 *   instance, so neither writes over a step another node just took;
 * - the entry rules read a re-entry key under a transaction-scoped advisory
 *   lock on (journey, key), so two nodes entering the same profile at the
 *   same moment take turns and the second sees the first one's instance;
 * - counters are appended to a log (no row lock: a hot counter would make
 *   every node's ingest take turns, and deadlock when two transactions add
 *   to two counters in different orders) and folded into the totals when
 *   read;
 * - inserts that may meet a unique key use ON CONFLICT DO NOTHING: a unique
 *   violation would abort the caller's whole transaction, where SQLite only
 *   fails the statement. */
#include "store/pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/banned.h"

/* ---- statements ------------------------------------------------------- */

static const char P_J_GET[] = "SELECT id, status, coalesce(live_version, 0), latest_version, "
                              "created_ms, updated_ms FROM journeys WHERE id = $1";
static const char P_J_LIST[] = "SELECT id, status, coalesce(live_version, 0), latest_version, "
                               "created_ms, updated_ms FROM journeys ORDER BY id";
static const char P_J_CREATE[] = "INSERT INTO journeys (id, status, live_version, latest_version, "
                                 "created_ms, updated_ms) "
                                 "VALUES ($1, 'draft', NULL, 0, $2, $2) ON CONFLICT DO NOTHING";
static const char P_V_ADD[] = "INSERT INTO journey_versions (journey_id, version, doc, created_ms) "
                              "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
static const char P_J_LATEST[] =
    "UPDATE journeys SET latest_version = $2, updated_ms = $3 WHERE id = $1";
static const char P_V_GET[] =
    "SELECT doc, created_ms, coalesce(published_ms, 0) FROM journey_versions "
    "WHERE journey_id = $1 AND version = CASE WHEN $2::bigint = 0 THEN "
    "(SELECT latest_version FROM journeys WHERE id = $1) ELSE $2::bigint END";
static const char P_J_STATUS[] =
    "UPDATE journeys SET status = $2, live_version = CASE WHEN $3::bigint > 0 "
    "THEN $3::bigint "
    "ELSE live_version END, updated_ms = $4 WHERE id = $1";
static const char P_V_PUBLISHED[] =
    "UPDATE journey_versions SET published_ms = coalesce(published_ms, $3) "
    "WHERE journey_id = $1 AND version = $2";
static const char P_HOLD[] =
    "UPDATE journey_instances SET held_run_ms = next_run_ms, next_run_ms = "
    "NULL "
    "WHERE journey_id = $1 AND ended_ms IS NULL AND next_run_ms IS NOT NULL";
static const char P_UNHOLD[] =
    "UPDATE journey_instances SET next_run_ms = held_run_ms, held_run_ms = "
    "NULL "
    "WHERE journey_id = $1 AND ended_ms IS NULL AND held_run_ms IS NOT NULL";
/* Stop locks the running instances first (waiting for a runner that holds
 * some), then counts and ends exactly the ones it locked. */
static const char P_STOP_LOCK[] = "SELECT id FROM journey_instances WHERE "
                                  "journey_id = $1 AND ended_ms IS NULL "
                                  "ORDER BY id FOR UPDATE";
static const char P_STOP_COUNT[] =
    "INSERT INTO journey_counter_log (journey_id, version, step, kind, reason, n) "
    "SELECT journey_id, version, step, 'exited', 'stopped', count(*) FROM journey_instances "
    "WHERE journey_id = $1 AND ended_ms IS NULL GROUP BY journey_id, version, step";
static const char P_STOP_KEYS[] = "UPDATE journey_keys SET running_id = NULL WHERE journey_id = $1";
static const char P_STOP[] = "UPDATE journey_instances SET ended_ms = $2, "
                             "outcome = 'stopped', reason = 'journey stopped', "
                             "next_run_ms = NULL, held_run_ms = NULL, "
                             "claimed_by = NULL, lease_until_ms = NULL, "
                             "history = CASE WHEN length(history) < 65536 THEN "
                             "history || $3 ELSE history END "
                             "WHERE journey_id = $1 AND ended_ms IS NULL";
/* The lock is the transaction's: two nodes deciding an entry for the same
 * key take turns, and the second reads what the first committed. */
static const char P_KEY_LOCK[] =
    "SELECT pg_advisory_xact_lock(hashtextextended($1::text || chr(10) || "
    "$2::text, 7))";
static const char P_KEY_GET[] = "SELECT last_entered_ms, coalesce(running_id, 0) FROM journey_keys "
                                "WHERE journey_id = $1 AND entry_key = $2";
static const char P_KEY_PUT[] =
    "INSERT INTO journey_keys (journey_id, entry_key, last_entered_ms, "
    "running_id) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (journey_id, entry_key) DO UPDATE SET "
    "last_entered_ms = excluded.last_entered_ms, running_id = "
    "excluded.running_id";
static const char P_KEY_RELEASE[] = "UPDATE journey_keys SET running_id = NULL "
                                    "WHERE journey_id = $1 AND entry_key = $2 AND running_id = $3";
static const char P_COUNT_ADD[] =
    "INSERT INTO journey_counter_log (journey_id, version, step, kind, reason, n) "
    "VALUES ($1, $2, $3, $4, $5, $6)";
/* Moves the journey's log rows into the totals in one statement: a second
 * node folding at once waits for the rows this one deletes, then finds them
 * gone. Totals are locked in key order, so two folds never deadlock. */
static const char P_COUNTS_FOLD[] =
    "WITH moved AS (DELETE FROM journey_counter_log WHERE journey_id = $1 "
    "RETURNING version, step, kind, reason, n) "
    "INSERT INTO journey_counters AS t (journey_id, version, step, kind, reason, n) "
    "SELECT $1, version, step, kind, reason, sum(n) FROM moved "
    "GROUP BY version, step, kind, reason ORDER BY version, step, kind, reason "
    "ON CONFLICT (journey_id, version, step, kind, reason) DO UPDATE SET n = t.n + excluded.n";
static const char P_COUNTS[] =
    "SELECT version, step, kind, reason, sum(n)::bigint FROM ("
    "SELECT version, step, kind, reason, n FROM journey_counters WHERE journey_id = $1 "
    "UNION ALL SELECT version, step, kind, reason, n FROM journey_counter_log "
    "WHERE journey_id = $1) AS c GROUP BY version, step, kind, reason "
    "ORDER BY version, step, kind, reason";
static const char P_RUNNING_COUNTS[] =
    "SELECT version, step, 'waiting', '', count(*) FROM journey_instances "
    "WHERE journey_id = $1 AND ended_ms IS NULL GROUP BY version, step ORDER "
    "BY version, step";
static const char P_NEXT_DUE[] =
    "SELECT next_run_ms FROM journey_instances WHERE next_run_ms IS NOT NULL "
    "AND (lease_until_ms IS NULL OR lease_until_ms <= $1) ORDER BY next_run_ms "
    "LIMIT 1";

#define INST_COLS                                                            \
    "id, journey_id, version, profile_id, entry_key, step, phase, "          \
    "step_since_ms, "                                                        \
    "coalesce(next_run_ms, 0), (held_run_ms IS NOT NULL)::int, entered_ms, " \
    "timeout_at_ms, "                                                        \
    "coalesce(ended_ms, 0), outcome, reason, entry_seq, entry_event, data, " \
    "n_steps, attempts, "                                                    \
    "claimed_by, coalesce(lease_until_ms, 0)"

/* A paused journey's instances keep their due time aside (held_run_ms). */
#define PAUSED "EXISTS (SELECT 1 FROM journeys WHERE id = $1 AND status = 'paused')"

/* More values than a statement takes parameters: the numbers travel as one
 * bigint array (see pi_insert for the order). */
static const char P_INST_INSERT[] =
    "INSERT INTO journey_instances (journey_id, version, profile_id, entry_key, step, phase, "
    "step_since_ms, next_run_ms, held_run_ms, entered_ms, timeout_at_ms, ended_ms, outcome, "
    "reason, entry_seq, entry_event, data, history, n_steps, attempts, claimed_by, "
    "lease_until_ms) SELECT $1, n[1], n[2], $2, $3, n[3], n[4], "
    "CASE WHEN n[5] IS NULL OR " PAUSED " THEN NULL ELSE n[5] END, "
    "CASE WHEN n[5] IS NOT NULL AND " PAUSED " THEN n[5] ELSE NULL END, "
    "n[6], n[7], n[8], $4, $5, n[9], $6, $7, $8, n[10], n[11], $9, n[12] "
    "FROM (SELECT $10::bigint[] AS n) AS v RETURNING id";
static const char P_INST_UPDATE[] =
    "UPDATE journey_instances SET step = $3, phase = $4, step_since_ms = $5, "
    "next_run_ms = CASE WHEN $6::bigint IS NULL OR " PAUSED " THEN NULL ELSE $6::bigint END, "
    "held_run_ms = CASE WHEN $6::bigint IS NOT NULL AND " PAUSED " THEN $6::bigint ELSE NULL END, "
    "ended_ms = $7, outcome = $8, reason = $9, data = coalesce($10, data), "
    "history = CASE WHEN length(history) < 65536 THEN history || $11 ELSE "
    "history END, "
    "n_steps = $12, attempts = $13, claimed_by = $14, lease_until_ms = $15 "
    "WHERE id = $2 AND journey_id = $1";
static const char P_INST_GET[] =
    "SELECT " INST_COLS ", history FROM journey_instances WHERE id = $1";
/* Inside a transaction the caller is about to decide on the row: lock it. */
static const char P_INST_GET_LOCK[] =
    "SELECT " INST_COLS ", history FROM journey_instances WHERE id = $1 FOR UPDATE";
static const char P_INST_DUE[] =
    "SELECT " INST_COLS " FROM journey_instances WHERE next_run_ms <= $1 "
    "AND (lease_until_ms IS NULL OR lease_until_ms <= $2) ORDER BY next_run_ms "
    "LIMIT $3 "
    "FOR UPDATE SKIP LOCKED";
/* Waits for a runner holding one of them: the hook then sees its result
 * (an ended instance drops out of the re-checked condition). */
static const char P_INST_RUNNING[] = "SELECT " INST_COLS " FROM journey_instances "
                                     "WHERE profile_id = $1 AND ended_ms IS NULL ORDER BY id";
static const char P_INST_RUNNING_LOCK[] =
    "SELECT " INST_COLS " FROM journey_instances "
    "WHERE profile_id = $1 AND ended_ms IS NULL ORDER BY id FOR UPDATE";
static const char P_INST_BY_PROFILE[] =
    "SELECT " INST_COLS " FROM journey_instances WHERE profile_id = $1 "
    "AND ($2::text IS NULL OR journey_id = $2::text) AND ($3::int = 0 OR "
    "($3::int = 1 AND "
    "ended_ms IS NULL) OR ($3::int = 2 AND ended_ms IS NOT NULL)) AND "
    "($4::bigint = 0 OR "
    "id < $4::bigint) ORDER BY id DESC LIMIT $5";
static const char P_INST_BY_JOURNEY[] =
    "SELECT " INST_COLS " FROM journey_instances WHERE journey_id = $1 "
    "AND ($2::int = 0 OR ($2::int = 1 AND ended_ms IS NULL) OR ($2::int = 2 "
    "AND ended_ms IS NOT "
    "NULL)) AND ($3::bigint = 0 OR id < $3::bigint) ORDER BY id DESC LIMIT $4";
static const char P_ATTRS_GET[] = "SELECT name, value FROM profile_attributes "
                                  "WHERE profile_id = $1 ORDER BY name";
static const char P_ATTR_SET[] =
    "INSERT INTO profile_attributes (profile_id, name, value, updated_ms) "
    "VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (profile_id, name) DO UPDATE SET value = excluded.value, "
    "updated_ms = excluded.updated_ms";
static const char P_EVENTS_RECENT[] = "SELECT seq, type, ts_ms, received_ms, "
                                      "doc FROM events WHERE profile_id = $1 "
                                      "ORDER BY ts_ms DESC, seq DESC LIMIT $2";

#define OUTBOX_COLS                                                             \
    "id, message_id, channel, journey_id, journey_version, instance_id, step, " \
    "profile_id, "                                                              \
    "recipient, template_id, data, status, attempts, next_attempt_ms, "         \
    "claimed_by, "                                                              \
    "coalesce(lease_until_ms, 0), created_ms, updated_ms, coalesce(sent_ms, "   \
    "0), last_error"

/* Either unique key (the Message-ID, or instance and step) makes it a no-op:
 * no row back means "queued before". */
static const char P_OB_ADD[] =
    "INSERT INTO outbox (message_id, channel, journey_id, journey_version, "
    "instance_id, step, "
    "profile_id, recipient, template_id, data, status, attempts, "
    "next_attempt_ms, created_ms, "
    "updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, "
    "$13, $13) "
    "ON CONFLICT DO NOTHING RETURNING id";
static const char P_OB_CLAIM[] =
    "UPDATE outbox SET status = 'sending', claimed_by = $1, lease_until_ms = "
    "$4, "
    "attempts = attempts + 1, updated_ms = $2 WHERE id IN (SELECT id FROM "
    "outbox "
    "WHERE (status = 'queued' AND next_attempt_ms <= $2) OR "
    "(status = 'sending' AND lease_until_ms <= $3) ORDER BY next_attempt_ms, "
    "id LIMIT $5 "
    "FOR UPDATE SKIP LOCKED) RETURNING " OUTBOX_COLS;
static const char P_OB_MARK[] =
    "UPDATE outbox SET status = CASE WHEN $3 = 'deferred' THEN 'queued' ELSE $3 END, "
    "attempts = attempts - CASE WHEN $3 = 'deferred' THEN 1 ELSE 0 END, "
    "next_attempt_ms = CASE WHEN $4::bigint > 0 "
    "THEN $4::bigint "
    "ELSE next_attempt_ms END, last_error = $5, updated_ms = $6, sent_ms = "
    "CASE WHEN $3 = 'sent' "
    "THEN $6::bigint ELSE sent_ms END, claimed_by = NULL, lease_until_ms = "
    "NULL "
    "WHERE id = $1 AND claimed_by IS NOT DISTINCT FROM $2";
static const char P_OB_GET[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE id = $1";
static const char P_OB_LIST[] =
    "SELECT " OUTBOX_COLS " FROM outbox WHERE ($1::bigint = 0 OR instance_id = $1::bigint) "
    "AND ($2::text IS NULL OR status = $2::text) ORDER BY id DESC LIMIT $3";

static const char *const P_REMOVE[] = {
    "DELETE FROM journey_instances WHERE journey_id = $1",
    "DELETE FROM journey_keys WHERE journey_id = $1",
    "DELETE FROM journey_counters WHERE journey_id = $1",
    "DELETE FROM journey_counter_log WHERE journey_id = $1",
    "DELETE FROM journey_versions WHERE journey_id = $1",
    "DELETE FROM journeys WHERE id = $1",
};

/* ---- helpers ---------------------------------------------------------- */

static bool in_transaction(td_pg_conn_t *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->pg);

    return c->in_tx || t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static void param_opt_int(td_pg_params_t *p, int64_t v)
{
    if (v != 0) {
        td_pg_param_int(p, v);
    } else {
        td_pg_param_text(p, NULL);
    }
}

/* Runs a statement; *changes (if given) gets the rows it wrote. */
static int run_changes(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, int64_t *changes)
{
    int rc;
    PGresult *r = td_store__pg_query(c, sql, p, &rc);

    if (r == NULL) {
        return rc;
    }
    if (changes) {
        *changes = strtoll(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    return TD_OK;
}

typedef void (*read_fn)(const PGresult *r, int row, void *out);

/* Runs sql and reads every row into a new array of elements of size sz. */
static int query_rows(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, void **rows,
                      int *n, size_t sz, read_fn read)
{
    int rc;
    PGresult *r = td_store__pg_query(c, sql, p, &rc);

    *rows = NULL;
    *n = 0;
    if (r == NULL) {
        return rc;
    }
    int nt = PQntuples(r);
    if (nt > 0) {
        *rows = td_xcalloc((size_t)nt, sz);
        for (int i = 0; i < nt; i++) {
            read(r, i, (char *)*rows + sz * (size_t)i);
        }
    }
    *n = nt;
    PQclear(r);
    return TD_OK;
}

/* Reads one row into out; TD_ENOTFOUND when there is none. */
static int query_one(td_pg_conn_t *c, const char *sql, const td_pg_params_t *p, void *out,
                     read_fn read)
{
    int rc;
    PGresult *r = td_store__pg_query(c, sql, p, &rc);

    if (r == NULL) {
        return rc;
    }
    rc = PQntuples(r) == 0 ? TD_ENOTFOUND : TD_OK;
    if (rc == TD_OK) {
        read(r, 0, out);
    }
    PQclear(r);
    return rc;
}

static void read_journey(const PGresult *r, int i, void *out)
{
    td_store_journey_t *j = out;

    j->id = td_pg_get_text(r, i, 0);
    j->status = td_pg_get_text(r, i, 1);
    j->live_version = td_pg_get_int(r, i, 2);
    j->latest_version = td_pg_get_int(r, i, 3);
    j->created_ms = td_pg_get_int(r, i, 4);
    j->updated_ms = td_pg_get_int(r, i, 5);
}

static void read_instance(const PGresult *r, int row, void *out)
{
    td_store_jinstance_t *i = out;

    i->id = td_pg_get_int(r, row, 0);
    i->journey_id = td_pg_get_text(r, row, 1);
    i->version = td_pg_get_int(r, row, 2);
    i->profile_id = td_pg_get_int(r, row, 3);
    i->entry_key = td_pg_get_text(r, row, 4);
    i->step = td_pg_get_text(r, row, 5);
    i->phase = (int)td_pg_get_int(r, row, 6);
    i->step_since_ms = td_pg_get_int(r, row, 7);
    i->next_run_ms = td_pg_get_int(r, row, 8);
    i->held = td_pg_get_int(r, row, 9) != 0;
    i->entered_ms = td_pg_get_int(r, row, 10);
    i->timeout_at_ms = td_pg_get_int(r, row, 11);
    i->ended_ms = td_pg_get_int(r, row, 12);
    i->outcome = td_pg_get_text(r, row, 13);
    i->reason = td_pg_get_text(r, row, 14);
    i->entry_seq = td_pg_get_int(r, row, 15);
    i->entry_event = td_pg_get_text(r, row, 16);
    i->data = td_pg_get_text(r, row, 17);
    i->n_steps = td_pg_get_int(r, row, 18);
    i->attempts = (int)td_pg_get_int(r, row, 19);
    i->claimed_by = td_pg_get_text(r, row, 20);
    i->lease_until_ms = td_pg_get_int(r, row, 21);
}

static void read_instance_history(const PGresult *r, int row, void *out)
{
    td_store_jinstance_t *i = out;

    read_instance(r, row, out);
    /* stored as ",{...},{...}": give it back as a JSON array */
    const char *h = PQgetvalue(r, row, 22);
    size_t len = (size_t)PQgetlength(r, row, 22);
    i->history = td_xmalloc(len + 3);
    i->history[0] = '[';
    memcpy(i->history + 1, len ? h + 1 : "", len ? len - 1 : 0);
    i->history[len ? len : 1] = ']';
    i->history[len ? len + 1 : 2] = '\0';
}

static void read_outbox(const PGresult *r, int i, void *out)
{
    td_store_outbox_t *m = out;

    m->id = td_pg_get_int(r, i, 0);
    m->message_id = td_pg_get_text(r, i, 1);
    m->channel = td_pg_get_text(r, i, 2);
    m->journey_id = td_pg_get_text(r, i, 3);
    m->journey_version = td_pg_get_int(r, i, 4);
    m->instance_id = td_pg_get_int(r, i, 5);
    m->step = td_pg_get_text(r, i, 6);
    m->profile_id = td_pg_get_int(r, i, 7);
    m->recipient = td_pg_get_text(r, i, 8);
    m->template_id = td_pg_get_text(r, i, 9);
    m->data = td_pg_get_text(r, i, 10);
    m->status = td_pg_get_text(r, i, 11);
    m->attempts = (int)td_pg_get_int(r, i, 12);
    m->next_attempt_ms = td_pg_get_int(r, i, 13);
    m->claimed_by = td_pg_get_text(r, i, 14);
    m->lease_until_ms = td_pg_get_int(r, i, 15);
    m->created_ms = td_pg_get_int(r, i, 16);
    m->updated_ms = td_pg_get_int(r, i, 17);
    m->sent_ms = td_pg_get_int(r, i, 18);
    m->last_error = td_pg_get_text(r, i, 19);
}

static void read_count(const PGresult *r, int i, void *out)
{
    td_store_jcount_t *c = out;

    c->version = td_pg_get_int(r, i, 0);
    c->step = td_pg_get_text(r, i, 1);
    c->kind = td_pg_get_text(r, i, 2);
    c->reason = td_pg_get_text(r, i, 3);
    c->n = td_pg_get_int(r, i, 4);
}

static void read_attr(const PGresult *r, int i, void *out)
{
    td_store_attr_t *a = out;

    a->name = td_pg_get_text(r, i, 0);
    a->value = td_pg_get_text(r, i, 1);
}

static void read_event(const PGresult *r, int i, void *out)
{
    td_store_event_row_t *e = out;

    e->seq = td_pg_get_int(r, i, 0);
    e->type = td_pg_get_text(r, i, 1);
    e->ts_ms = td_pg_get_int(r, i, 2);
    e->received_ms = td_pg_get_int(r, i, 3);
    e->doc = td_pg_get_text(r, i, 4);
}

typedef struct version_row {
    char *doc;
    int64_t created_ms, published_ms;
} version_row_t;

static void read_version(const PGresult *r, int i, void *out)
{
    version_row_t *v = out;

    v->doc = td_pg_get_text(r, i, 0);
    v->created_ms = td_pg_get_int(r, i, 1);
    v->published_ms = td_pg_get_int(r, i, 2);
}

typedef struct key_row {
    int64_t last, running;
} key_row_t;

static void read_key(const PGresult *r, int i, void *out)
{
    key_row_t *k = out;

    k->last = td_pg_get_int(r, i, 0);
    k->running = td_pg_get_int(r, i, 1);
}

/* ---- journeys --------------------------------------------------------- */

static int pj_get(void *conn, const char *id, td_store_journey_t *out)
{
    td_pg_params_t p = { 0 };

    memset(out, 0, sizeof(*out));
    td_pg_param_text(&p, id);
    return query_one(conn, P_J_GET, &p, out, read_journey);
}

static int pj_list(void *conn, td_store_journey_t **rows, int *n)
{
    return query_rows(conn, P_J_LIST, NULL, (void **)rows, n, sizeof(**rows), read_journey);
}

static int pj_create(void *conn, const char *id, int64_t now_ms)
{
    td_pg_params_t p = { 0 };
    int64_t changes = 0;
    int rc;

    td_pg_param_text(&p, id);
    td_pg_param_int(&p, now_ms);
    if ((rc = run_changes(conn, P_J_CREATE, &p, &changes)) != TD_OK) {
        return rc;
    }
    return changes == 1 ? TD_OK : TD_ECONFLICT;
}

static int pj_version_add(void *conn, const char *id, int64_t version, const char *doc,
                          int64_t now_ms)
{
    td_pg_params_t p = { 0 };
    int64_t changes = 0;
    int rc;

    td_pg_param_text(&p, id);
    td_pg_param_int(&p, version);
    td_pg_param_text(&p, doc);
    td_pg_param_int(&p, now_ms);
    if ((rc = run_changes(conn, P_V_ADD, &p, &changes)) != TD_OK) {
        return rc;
    }
    if (changes != 1) {
        return TD_ECONFLICT; /* another node stored this version number first */
    }
    memset(&p, 0, sizeof(p));
    td_pg_param_text(&p, id);
    td_pg_param_int(&p, version);
    td_pg_param_int(&p, now_ms);
    return td_store__pg_run(conn, P_J_LATEST, &p);
}

static int pj_version_get(void *conn, const char *id, int64_t version, char **doc,
                          int64_t *created_ms, int64_t *published_ms)
{
    td_pg_params_t p = { 0 };
    version_row_t v = { 0 };
    int rc;

    td_pg_param_text(&p, id);
    td_pg_param_int(&p, version);
    if ((rc = query_one(conn, P_V_GET, &p, &v, read_version)) != TD_OK) {
        return rc;
    }
    *doc = v.doc;
    if (created_ms) {
        *created_ms = v.created_ms;
    }
    if (published_ms) {
        *published_ms = v.published_ms;
    }
    return TD_OK;
}

static int pj_set_status(void *conn, const char *id, const char *status, int64_t live_version,
                         int64_t now_ms)
{
    td_pg_params_t p = { 0 };
    int64_t changes = 0;
    int rc;

    td_pg_param_text(&p, id);
    td_pg_param_text(&p, status);
    td_pg_param_int(&p, live_version);
    td_pg_param_int(&p, now_ms);
    if ((rc = run_changes(conn, P_J_STATUS, &p, &changes)) != TD_OK) {
        return rc;
    }
    if (changes == 0) {
        return TD_ENOTFOUND;
    }
    if (live_version <= 0) {
        return TD_OK;
    }
    memset(&p, 0, sizeof(p));
    td_pg_param_text(&p, id);
    td_pg_param_int(&p, live_version);
    td_pg_param_int(&p, now_ms);
    return td_store__pg_run(conn, P_V_PUBLISHED, &p);
}

static int pj_remove(void *conn, const char *id)
{
    td_pg_params_t p = { 0 };
    int64_t changes = 0;
    int rc;

    td_pg_param_text(&p, id);
    for (size_t i = 0; i < TD_ARRAY_LEN(P_REMOVE); i++) {
        if ((rc = run_changes(conn, P_REMOVE[i], &p, &changes)) != TD_OK) {
            return rc;
        }
    }
    return changes > 0 ? TD_OK : TD_ENOTFOUND;
}

static int pj_hold(void *conn, const char *id, bool hold)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, id);
    return td_store__pg_run(conn, hold ? P_HOLD : P_UNHOLD, &p);
}

static int pj_stop(void *conn, const char *id, int64_t now_ms, const char *history, int64_t *n)
{
    td_pg_params_t p = { 0 };
    int rc;

    td_pg_param_text(&p, id);
    if (in_transaction(conn) && (rc = td_store__pg_run(conn, P_STOP_LOCK, &p)) != TD_OK) {
        return rc;
    }
    if ((rc = td_store__pg_run(conn, P_STOP_COUNT, &p)) != TD_OK ||
        (rc = td_store__pg_run(conn, P_STOP_KEYS, &p)) != TD_OK) {
        return rc;
    }
    td_pg_param_int(&p, now_ms);
    td_pg_param_text(&p, history ? history : "");
    return run_changes(conn, P_STOP, &p, n);
}

static int pj_key_get(void *conn, const char *journey_id, const char *key, int64_t *last_entered_ms,
                      int64_t *running_id)
{
    td_pg_params_t p = { 0 };
    key_row_t k = { 0 };
    int rc;

    td_pg_param_text(&p, journey_id);
    td_pg_param_text(&p, key);
    if (in_transaction(conn) && (rc = td_store__pg_run(conn, P_KEY_LOCK, &p)) != TD_OK) {
        return rc;
    }
    if ((rc = query_one(conn, P_KEY_GET, &p, &k, read_key)) == TD_OK) {
        *last_entered_ms = k.last;
        *running_id = k.running;
    }
    return rc;
}

static int pj_key_put(void *conn, const char *journey_id, const char *key, int64_t entered_ms,
                      int64_t running_id)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, journey_id);
    td_pg_param_text(&p, key);
    td_pg_param_int(&p, entered_ms);
    param_opt_int(&p, running_id);
    return td_store__pg_run(conn, P_KEY_PUT, &p);
}

static int pj_key_release(void *conn, const char *journey_id, const char *key, int64_t instance_id)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, journey_id);
    td_pg_param_text(&p, key);
    td_pg_param_int(&p, instance_id);
    return td_store__pg_run(conn, P_KEY_RELEASE, &p);
}

static int pj_count_add(void *conn, const char *journey_id, int64_t version, const char *step,
                        const char *kind, const char *reason, int64_t n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, journey_id);
    td_pg_param_int(&p, version);
    td_pg_param_text(&p, step ? step : "");
    td_pg_param_text(&p, kind);
    td_pg_param_text(&p, reason ? reason : "");
    td_pg_param_int(&p, n);
    return td_store__pg_run(conn, P_COUNT_ADD, &p);
}

static int counts_query(void *conn, const char *sql, const char *journey_id,
                        td_store_jcount_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, journey_id);
    return query_rows(conn, sql, &p, (void **)rows, n, sizeof(**rows), read_count);
}

static int pj_counts(void *conn, const char *journey_id, td_store_jcount_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    /* outside a transaction (which may be read-only) fold the log first; the
     * read adds what is left either way */
    td_pg_param_text(&p, journey_id);
    if (!in_transaction(conn) && td_store__pg_run(conn, P_COUNTS_FOLD, &p) != TD_OK) {
        td_log(TD_LOG_WARN, "store", "journey_counters_fold failed journey=%s", journey_id);
    }
    return counts_query(conn, P_COUNTS, journey_id, rows, n);
}

static int pj_running_counts(void *conn, const char *journey_id, td_store_jcount_t **rows, int *n)
{
    return counts_query(conn, P_RUNNING_COUNTS, journey_id, rows, n);
}

static int pj_next_due(void *conn, int64_t wall_ms, int64_t *ms)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, wall_ms);
    return td_store__pg_query_int(conn, P_NEXT_DUE, &p, ms);
}

/* ---- instances -------------------------------------------------------- */

/* Appends v (NULL for 0 when optional) to an array literal "{a,b,...}". */
static void arr_add(char *buf, size_t cap, size_t *len, int64_t v, bool optional)
{
    int w = (optional && v == 0)
                ? snprintf(buf + *len, cap - *len, "%sNULL", *len > 1 ? "," : "")
                : snprintf(buf + *len, cap - *len, "%s%lld", *len > 1 ? "," : "", (long long)v);
    if (w > 0 && (size_t)w < cap - *len) {
        *len += (size_t)w;
    }
}

static int pi_insert(void *conn, const td_store_jinstance_t *in, const char *history, int64_t *id)
{
    td_pg_params_t p = { 0 };
    char nums[12 * 24 + 4] = "{";
    size_t len = 1;

    arr_add(nums, sizeof(nums), &len, in->version, false);
    arr_add(nums, sizeof(nums), &len, in->profile_id, false);
    arr_add(nums, sizeof(nums), &len, in->phase, false);
    arr_add(nums, sizeof(nums), &len, in->step_since_ms, false);
    arr_add(nums, sizeof(nums), &len, in->ended_ms ? 0 : in->next_run_ms, true);
    arr_add(nums, sizeof(nums), &len, in->entered_ms, false);
    arr_add(nums, sizeof(nums), &len, in->timeout_at_ms, false);
    arr_add(nums, sizeof(nums), &len, in->ended_ms, true);
    arr_add(nums, sizeof(nums), &len, in->entry_seq, false);
    arr_add(nums, sizeof(nums), &len, in->n_steps, false);
    arr_add(nums, sizeof(nums), &len, in->attempts, false);
    arr_add(nums, sizeof(nums), &len, in->lease_until_ms, true);
    nums[len] = '}';
    nums[len + 1] = '\0';
    td_pg_param_text(&p, in->journey_id);
    td_pg_param_text(&p, in->entry_key);
    td_pg_param_text(&p, in->step);
    td_pg_param_text(&p, in->outcome);
    td_pg_param_text(&p, in->reason);
    td_pg_param_text(&p, in->entry_event ? in->entry_event : "{}");
    td_pg_param_text(&p, in->data ? in->data : "{}");
    td_pg_param_text(&p, history ? history : "");
    td_pg_param_text(&p, in->claimed_by);
    td_pg_param_text(&p, nums);
    return td_store__pg_query_int(conn, P_INST_INSERT, &p, id);
}

static int pi_update(void *conn, const td_store_jinstance_t *in, bool data_changed,
                     const char *history_append)
{
    td_pg_params_t p = { 0 };
    int64_t changes = 0;
    int rc;

    td_pg_param_text(&p, in->journey_id);
    td_pg_param_int(&p, in->id);
    td_pg_param_text(&p, in->step);
    td_pg_param_int(&p, in->phase);
    td_pg_param_int(&p, in->step_since_ms);
    param_opt_int(&p, in->ended_ms ? 0 : in->next_run_ms);
    param_opt_int(&p, in->ended_ms);
    td_pg_param_text(&p, in->outcome);
    td_pg_param_text(&p, in->reason);
    td_pg_param_text(&p, data_changed ? in->data : NULL);
    td_pg_param_text(&p, history_append ? history_append : "");
    td_pg_param_int(&p, in->n_steps);
    td_pg_param_int(&p, in->attempts);
    td_pg_param_text(&p, in->claimed_by);
    param_opt_int(&p, in->lease_until_ms);
    if ((rc = run_changes(conn, P_INST_UPDATE, &p, &changes)) != TD_OK) {
        return rc;
    }
    return changes == 1 ? TD_OK : TD_ENOTFOUND;
}

static int pi_get(void *conn, int64_t id, td_store_jinstance_t *out)
{
    td_pg_params_t p = { 0 };

    memset(out, 0, sizeof(*out));
    td_pg_param_int(&p, id);
    return query_one(conn, in_transaction(conn) ? P_INST_GET_LOCK : P_INST_GET, &p, out,
                     read_instance_history);
}

static int pi_due(void *conn, int64_t now_ms, int64_t wall_ms, int limit,
                  td_store_jinstance_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, now_ms);
    td_pg_param_int(&p, wall_ms);
    td_pg_param_int(&p, limit);
    return query_rows(conn, P_INST_DUE, &p, (void **)rows, n, sizeof(**rows), read_instance);
}

static int pi_running(void *conn, int64_t profile_id, td_store_jinstance_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    return query_rows(conn, in_transaction(conn) ? P_INST_RUNNING_LOCK : P_INST_RUNNING, &p,
                      (void **)rows, n, sizeof(**rows), read_instance);
}

static int pi_list(void *conn, const char *journey_id, int64_t profile_id, int state,
                   int64_t before_id, int limit, td_store_jinstance_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    if (profile_id) {
        td_pg_param_int(&p, profile_id);
        td_pg_param_text(&p, journey_id);
    } else {
        td_pg_param_text(&p, journey_id ? journey_id : "");
    }
    td_pg_param_int(&p, state);
    td_pg_param_int(&p, before_id);
    td_pg_param_int(&p, limit);
    return query_rows(conn, profile_id ? P_INST_BY_PROFILE : P_INST_BY_JOURNEY, &p, (void **)rows,
                      n, sizeof(**rows), read_instance);
}

/* ---- profile attributes and events ------------------------------------ */

static int pa_get(void *conn, int64_t profile_id, td_store_attr_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    return query_rows(conn, P_ATTRS_GET, &p, (void **)rows, n, sizeof(**rows), read_attr);
}

static int pa_set(void *conn, int64_t profile_id, const char *name, const char *value,
                  int64_t now_ms)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    td_pg_param_text(&p, name);
    td_pg_param_text(&p, value);
    td_pg_param_int(&p, now_ms);
    return td_store__pg_run(conn, P_ATTR_SET, &p);
}

static int pe_recent(void *conn, int64_t profile_id, int limit, td_store_event_row_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, profile_id);
    td_pg_param_int(&p, limit);
    return query_rows(conn, P_EVENTS_RECENT, &p, (void **)rows, n, sizeof(**rows), read_event);
}

/* ---- outbox ----------------------------------------------------------- */

static int po_add(void *conn, const td_store_outbox_t *m, int64_t *id)
{
    td_pg_params_t p = { 0 };
    int rc;

    td_pg_param_text(&p, m->message_id);
    td_pg_param_text(&p, m->channel ? m->channel : "email");
    td_pg_param_text(&p, m->journey_id);
    td_pg_param_int(&p, m->journey_version);
    td_pg_param_int(&p, m->instance_id);
    td_pg_param_text(&p, m->step);
    td_pg_param_int(&p, m->profile_id);
    td_pg_param_text(&p, m->recipient);
    td_pg_param_text(&p, m->template_id);
    td_pg_param_text(&p, m->data ? m->data : "{}");
    td_pg_param_text(&p, m->status ? m->status : "queued");
    td_pg_param_int(&p, m->next_attempt_ms);
    td_pg_param_int(&p, m->created_ms);
    rc = td_store__pg_query_int(conn, P_OB_ADD, &p, id);
    /* no row: already queued; the unique keys make the step idempotent */
    return rc == TD_ENOTFOUND ? TD_ECONFLICT : rc;
}

static int po_claim(void *conn, const char *node, int64_t now_ms, int64_t wall_ms,
                    int64_t lease_until_ms, int limit, td_store_outbox_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_text(&p, node);
    td_pg_param_int(&p, now_ms);
    td_pg_param_int(&p, wall_ms);
    td_pg_param_int(&p, lease_until_ms);
    td_pg_param_int(&p, limit);
    return query_rows(conn, P_OB_CLAIM, &p, (void **)rows, n, sizeof(**rows), read_outbox);
}

static int po_mark(void *conn, int64_t id, const char *node, const char *status,
                   int64_t next_attempt_ms, const char *error, int64_t now_ms)
{
    td_pg_params_t p = { 0 };
    int64_t changes = 0;
    int rc;

    td_pg_param_int(&p, id);
    td_pg_param_text(&p, node);
    td_pg_param_text(&p, status);
    td_pg_param_int(&p, next_attempt_ms);
    td_pg_param_text(&p, error);
    td_pg_param_int(&p, now_ms);
    if ((rc = run_changes(conn, P_OB_MARK, &p, &changes)) != TD_OK) {
        return rc;
    }
    return changes == 1 ? TD_OK : TD_ENOTFOUND;
}

static int po_get(void *conn, int64_t id, td_store_outbox_t *out)
{
    td_pg_params_t p = { 0 };

    memset(out, 0, sizeof(*out));
    td_pg_param_int(&p, id);
    return query_one(conn, P_OB_GET, &p, out, read_outbox);
}

static int po_list(void *conn, int64_t instance_id, const char *status, int limit,
                   td_store_outbox_t **rows, int *n)
{
    td_pg_params_t p = { 0 };

    td_pg_param_int(&p, instance_id);
    td_pg_param_text(&p, status);
    td_pg_param_int(&p, limit);
    return query_rows(conn, P_OB_LIST, &p, (void **)rows, n, sizeof(**rows), read_outbox);
}

const td_store_journey_ops_t td_store_postgres_journey_ops = {
    .get = pj_get,
    .list = pj_list,
    .create = pj_create,
    .version_add = pj_version_add,
    .version_get = pj_version_get,
    .set_status = pj_set_status,
    .remove = pj_remove,
    .hold = pj_hold,
    .stop = pj_stop,
    .key_get = pj_key_get,
    .key_put = pj_key_put,
    .key_release = pj_key_release,
    .count_add = pj_count_add,
    .counts = pj_counts,
    .running_counts = pj_running_counts,
    .next_due = pj_next_due,
    .inst_insert = pi_insert,
    .inst_update = pi_update,
    .inst_get = pi_get,
    .inst_due = pi_due,
    .inst_running = pi_running,
    .inst_list = pi_list,
    .attrs_get = pa_get,
    .attr_set = pa_set,
    .events_recent = pe_recent,
    .outbox_add = po_add,
    .outbox_claim = po_claim,
    .outbox_mark = po_mark,
    .outbox_get = po_get,
    .outbox_list = po_list,
};
