/* The SQLite backend: one database file in WAL mode, a connection per pool
 * slot, prepared statements cached per connection. Writers use BEGIN
 * IMMEDIATE so two writers queue on the lock instead of failing on upgrade. */

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "migrations.h"
#include "store/sqlite_internal.h"
#include "util/log.h"
#include "util/banned.h"

#define BUSY_TIMEOUT_MS 10000

typedef struct backend {
    char *path;
    bool sync_full;
    _Atomic uint64_t ident_gen; /* see td_sqlite_conn_t.idents */
} backend_t;

/* Cached identities per connection: resolving the identities of every event
 * is the commonest query of the writer. Entries only go stale when a merge
 * moves identities or a rollback undoes links, so both bump a generation
 * that empties every connection's cache. */
#define IDENT_CACHE_MAX 200000

static void ident_cache_check(td_sqlite_conn_t *c)
{
    uint64_t gen = *c->backend_ident_gen;

    if (c->ident_gen != gen || c->idents.n >= IDENT_CACHE_MAX) {
        td_strmap_clear(&c->idents);
        c->ident_gen = gen;
    }
}

static size_t ident_key(char *out, size_t cap, const char *ns, const char *id)
{
    int n = snprintf(out, cap, "%s\x1f%s", ns, id);

    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static const char S_META_GET[] = "SELECT value FROM meta WHERE key = ?1";
static const char S_META_SET[] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
static const char S_IDENT_FIND[] = "SELECT profile_id FROM identities WHERE ns = ?1 AND id = ?2";
static const char S_IDENT_LINK[] =
    "INSERT INTO identities (ns, id, profile_id, linked_ms) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (ns, id) DO NOTHING";
static const char S_PROFILE_NEW[] = "INSERT INTO profiles (created_ms) VALUES (?1)";
static const char S_PROFILE_RESOLVE[] = "SELECT merged_into FROM profiles WHERE id = ?1";
static const char S_EVENT_ADD[] =
    "INSERT INTO events (event_id, type, profile_id, ts_ms, received_ms, doc) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char S_EVENT_BY_KEY[] = "SELECT seq FROM events WHERE event_id = ?1";
static const char S_EVENT_COUNT[] = "SELECT count(*) FROM events";
static const char S_CART_ADD[] =
    "INSERT INTO cart (profile_id, item_id, name, category, price, quantity, added_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (profile_id, item_id) DO UPDATE "
    "SET quantity = quantity + excluded.quantity, "
    "name = coalesce(excluded.name, name), "
    "category = coalesce(excluded.category, category), "
    "price = coalesce(excluded.price, price), added_ms = excluded.added_ms";
static const char S_CART_DEC[] =
    "UPDATE cart SET quantity = quantity - ?3 WHERE profile_id = ?1 AND item_id = ?2";
static const char S_CART_DROP[] =
    "DELETE FROM cart WHERE profile_id = ?1 AND (item_id = ?2 OR quantity <= 0)";
static const char S_CART_CLEAR[] = "DELETE FROM cart WHERE profile_id = ?1";
static const char S_VIEWED_ADD[] =
    "INSERT INTO viewed (profile_id, item_id, name, category, price, ts_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (profile_id, item_id) DO UPDATE "
    "SET name = coalesce(excluded.name, name), "
    "category = coalesce(excluded.category, category), "
    "price = coalesce(excluded.price, price), "
    "ts_ms = max(ts_ms, excluded.ts_ms)";
/* by rank, not by time: items viewed at the same instant count one by one */
static const char S_VIEWED_TRIM[] =
    "DELETE FROM viewed WHERE profile_id = ?1 AND item_id NOT IN (SELECT item_id FROM viewed "
    "WHERE profile_id = ?1 ORDER BY ts_ms DESC, item_id LIMIT ?2)";
static const char S_PURCHASE_ADD[] =
    "INSERT INTO purchases (profile_id, order_id, ts_ms, total, currency, items) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char S_CONSENT_SET[] =
    "INSERT INTO consent (profile_id, channel, value, ts_ms, source) "
    "VALUES (?1, 'marketing', ?2, ?3, ?4) ON CONFLICT (profile_id, channel) "
    "DO UPDATE SET value = excluded.value, ts_ms = excluded.ts_ms, "
    "source = excluded.source WHERE excluded.ts_ms >= consent.ts_ms";
static const char S_LOAD_PROFILE[] = "SELECT created_ms FROM profiles WHERE id = ?1";
static const char S_LOAD_IDENTS[] =
    "SELECT ns, id, linked_ms FROM identities WHERE profile_id = ?1 "
    "ORDER BY ns, linked_ms";
static const char S_LOAD_CART[] =
    "SELECT item_id, name, category, price, quantity, added_ms FROM cart "
    "WHERE profile_id = ?1 ORDER BY added_ms, item_id";
static const char S_LOAD_VIEWED[] = "SELECT item_id, name, category, price, 1, ts_ms FROM viewed "
                                    "WHERE profile_id = ?1 ORDER BY ts_ms DESC, item_id";
static const char S_LOAD_PURCHASES[] =
    "SELECT order_id, ts_ms, total, currency, items FROM purchases "
    "WHERE profile_id = ?1 ORDER BY ts_ms DESC LIMIT 100";
static const char S_LOAD_COUNTS[] =
    "SELECT type, count(*) FROM events WHERE profile_id = ?1 GROUP BY type "
    "ORDER BY type";
static const char S_LOAD_LAST[] = "SELECT max(ts_ms) FROM events WHERE profile_id = ?1";
static const char S_LOAD_CONSENT[] = "SELECT value, ts_ms, source FROM consent "
                                     "WHERE profile_id = ?1 AND channel = 'marketing'";

static int open_db(backend_t *b, sqlite3 **out, td_err_t *err)
{
    sqlite3 *db = NULL;
    char pragmas[160];

    if (sqlite3_open_v2(b->path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        int rc = td_err_set(err, TD_EIO, "store", "cannot open SQLite database \"%s\": %s", b->path,
                            db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF; "
             "PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=8192;",
             b->sync_full ? "FULL" : "NORMAL");
    if (td_store__sqlite_exec(db, pragmas) != TD_OK) {
        int rc = td_err_set(err, TD_EIO, "store", "cannot set up SQLite database \"%s\": %s",
                            b->path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return TD_OK;
}

static int migrate(sqlite3 *db, td_err_t *err)
{
    if (td_store__sqlite_exec(db, "BEGIN IMMEDIATE") != TD_OK) {
        return td_err_set(err, TD_EBUSY, "store", "cannot lock the database to migrate it");
    }
    if (td_store__sqlite_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                  "name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL)") != TD_OK) {
        goto fail;
    }
    for (const td_migration_t *m = td_store__migrations; m->name; m++) {
        sqlite3_stmt *st;
        int done;
        if (strcmp(m->backend, "sqlite") != 0) {
            continue;
        }
        if (sqlite3_prepare_v2(db, "SELECT 1 FROM schema_migrations WHERE name = ?1", -1, &st,
                               NULL) != SQLITE_OK) {
            goto fail;
        }
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        done = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        if (done) {
            continue;
        }
        td_log(TD_LOG_INFO, "store", "migrate name=%s", m->name);
        if (td_store__sqlite_exec(db, m->sql) != TD_OK) {
            goto fail;
        }
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO schema_migrations (name, applied_ms) VALUES "
                               "(?1, CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
                               -1, &st, NULL) != SQLITE_OK) {
            goto fail;
        }
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        done = sqlite3_step(st);
        sqlite3_finalize(st);
        if (done != SQLITE_DONE) {
            goto fail;
        }
    }
    if (td_store__sqlite_exec(db, "COMMIT") == TD_OK) {
        return TD_OK;
    }
fail:
    td_err_set(err, TD_EIO, "store", "database migration failed: %s", sqlite3_errmsg(db));
    td_store__sqlite_exec(db, "ROLLBACK");
    return TD_EIO;
}

static int sq_open(const char *url, const td_store_options_t *opt, void **out, td_err_t *err)
{
    backend_t *b = td_xcalloc(1, sizeof(*b));
    sqlite3 *db;
    int rc;

    if (url && strncmp(url, "sqlite:", 7) == 0 && url[7]) {
        b->path = td_xstrdup(url + 7);
    } else {
        char path[4096];
        if (mkdir(opt->data_dir, 0700) != 0 && errno != EEXIST) {
            rc = td_err_set(err, TD_EIO, "data", "cannot create data directory \"%s\": %s",
                            opt->data_dir, strerror(errno));
            free(b);
            return rc;
        }
        snprintf(path, sizeof(path), "%s/tandem.db", opt->data_dir);
        b->path = td_xstrdup(path);
    }
    b->sync_full = opt->sync_full;
    if ((rc = open_db(b, &db, err)) != TD_OK) {
        free(b->path);
        free(b);
        return rc;
    }
    rc = migrate(db, err);
    sqlite3_close(db);
    if (rc != TD_OK) {
        free(b->path);
        free(b);
        return rc;
    }
    *out = b;
    return TD_OK;
}

static void sq_close(void *backend)
{
    backend_t *b = backend;

    if (b) {
        free(b->path);
        free(b);
    }
}

static int sq_conn_open(void *backend, void **out, td_err_t *err)
{
    td_sqlite_conn_t *c = td_xcalloc(1, sizeof(*c));
    backend_t *b = backend;
    int rc = open_db(b, &c->db, err);

    if (rc != TD_OK) {
        free(c);
        return rc;
    }
    c->backend_ident_gen = &b->ident_gen;
    c->ident_gen = b->ident_gen;
    *out = c;
    return TD_OK;
}

static void sq_conn_close(void *conn)
{
    td_sqlite_conn_t *c = conn;

    if (c == NULL) {
        return;
    }
    td_store__sqlite_stmts_finalize(c);
    td_strmap_clear(&c->idents);
    sqlite3_close(c->db);
    free(c);
}

static int sq_exec(void *conn, const char *sql)
{
    td_sqlite_conn_t *c = conn;

    /* writers take the lock up front: no deadlock on read-to-write upgrade */
    if (strcmp(sql, "BEGIN") == 0) {
        sql = "BEGIN IMMEDIATE";
    } else if (strncmp(sql, "ROLLBACK", 8) == 0) {
        (*c->backend_ident_gen)++; /* links made in the transaction are gone */
    }
    return td_store__sqlite_exec(c->db, sql);
}

static int sq_meta_get(void *conn, const char *key, char **value)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_META_GET);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *value = td_store__sqlite_col_text(st, 0);
        sqlite3_reset(st);
        return TD_OK;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, "meta_get");
}

static int sq_meta_set(void *conn, const char *key, const char *value)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_META_SET);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, key);
    td_store__sqlite_bind_text(st, 2, value);
    return td_store__sqlite_run(c, st);
}

static int sq_identity_find(void *conn, const char *ns, const char *id, int64_t *profile_id)
{
    td_sqlite_conn_t *c = conn;
    char key[512];
    size_t key_len = ident_key(key, sizeof(key), ns, id);
    int rc;

    ident_cache_check(c);
    if (key_len && td_strmap_get(&c->idents, key, key_len, profile_id)) {
        return TD_OK;
    }
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_IDENT_FIND);
    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, ns);
    td_store__sqlite_bind_text(st, 2, id);
    rc = td_store__sqlite_query_int(c, st, profile_id);
    if (rc == TD_OK && key_len) {
        td_strmap_put(&c->idents, key, key_len, *profile_id);
    }
    return rc;
}

static int sq_identity_link(void *conn, const char *ns, const char *id, int64_t profile_id,
                            int64_t now_ms)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_IDENT_LINK);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, ns);
    td_store__sqlite_bind_text(st, 2, id);
    sqlite3_bind_int64(st, 3, profile_id);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = td_store__sqlite_run(c, st);
    if (rc == TD_OK && sqlite3_changes(c->db) == 0) {
        return TD_ECONFLICT; /* linked meanwhile (by another connection) */
    }
    if (rc == TD_OK) {
        char key[512];
        size_t key_len = ident_key(key, sizeof(key), ns, id);
        ident_cache_check(c);
        if (key_len) {
            td_strmap_put(&c->idents, key, key_len, profile_id);
        }
    }
    return rc;
}

static int sq_profile_create(void *conn, int64_t now_ms, int64_t *profile_id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_PROFILE_NEW);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    if ((rc = td_store__sqlite_run(c, st)) == TD_OK) {
        *profile_id = sqlite3_last_insert_rowid(c->db);
    }
    return rc;
}

static int sq_profile_merge(void *conn, int64_t from, int64_t into, int64_t now_ms)
{
    static const char *const sql[] = {
        "UPDATE identities SET profile_id = ?2 WHERE profile_id = ?1",
        "UPDATE events SET profile_id = ?2 WHERE profile_id = ?1",
        "INSERT INTO cart (profile_id, item_id, name, category, price, quantity, added_ms) "
        "SELECT ?2, item_id, name, category, price, quantity, added_ms FROM cart "
        "WHERE profile_id = ?1 AND true ON CONFLICT (profile_id, item_id) DO UPDATE SET "
        "quantity = quantity + excluded.quantity, added_ms = max(added_ms, excluded.added_ms)",
        "DELETE FROM cart WHERE profile_id = ?1",
        "INSERT INTO viewed (profile_id, item_id, name, category, price, ts_ms) "
        "SELECT ?2, item_id, name, category, price, ts_ms FROM viewed "
        "WHERE profile_id = ?1 AND true ON CONFLICT (profile_id, item_id) DO UPDATE SET "
        "ts_ms = max(ts_ms, excluded.ts_ms)",
        "DELETE FROM viewed WHERE profile_id = ?1",
        "UPDATE purchases SET profile_id = ?2 WHERE profile_id = ?1",
        "INSERT INTO consent (profile_id, channel, value, ts_ms, source) "
        "SELECT ?2, channel, value, ts_ms, source FROM consent WHERE profile_id = ?1 AND true "
        "ON CONFLICT (profile_id, channel) DO UPDATE SET value = excluded.value, "
        "ts_ms = excluded.ts_ms, source = excluded.source WHERE excluded.ts_ms > consent.ts_ms",
        "DELETE FROM consent WHERE profile_id = ?1",
        "UPDATE profiles SET merged_into = ?2 WHERE id = ?1 OR merged_into = ?1",
    };
    td_sqlite_conn_t *c = conn;

    (void)now_ms;
    (*c->backend_ident_gen)++;
    for (size_t i = 0; i < TD_ARRAY_LEN(sql); i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(c->db, sql[i], -1, &st, NULL) != SQLITE_OK) {
            return td_store__sqlite_error(c->db, "merge prepare");
        }
        sqlite3_bind_int64(st, 1, from);
        sqlite3_bind_int64(st, 2, into);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            return td_store__sqlite_error(c->db, "merge");
        }
    }
    return TD_OK;
}

static int sq_profile_resolve(void *conn, int64_t profile_id, int64_t *out)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_PROFILE_RESOLVE);
    int64_t into;
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? TD_ENOTFOUND : td_store__sqlite_error(c->db, "profile_resolve");
    }
    into = sqlite3_column_type(st, 0) == SQLITE_NULL ? profile_id : sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    *out = into;
    return TD_OK;
}

static int sq_event_append(void *conn, const td_store_event_t *ev, int64_t *seq)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_EVENT_ADD);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, ev->event_id);
    td_store__sqlite_bind_text(st, 2, ev->type);
    sqlite3_bind_int64(st, 3, ev->profile_id);
    sqlite3_bind_int64(st, 4, ev->ts_ms);
    sqlite3_bind_int64(st, 5, ev->received_ms);
    td_store__sqlite_bind_text(st, 6, ev->doc);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        *seq = sqlite3_last_insert_rowid(c->db);
        return TD_OK;
    }
    if (rc == SQLITE_CONSTRAINT && ev->event_id) {
        sqlite3_stmt *q = td_store__sqlite_stmt(c, S_EVENT_BY_KEY);
        if (q == NULL) {
            return TD_EIO;
        }
        td_store__sqlite_bind_text(q, 1, ev->event_id);
        return td_store__sqlite_query_int(c, q, seq) == TD_OK ? TD_ECONFLICT : TD_EIO;
    }
    return td_store__sqlite_error(c->db, "event_append");
}

static int sq_event_count(void *conn, int64_t *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_EVENT_COUNT);

    return st ? td_store__sqlite_query_int(c, st, n) : TD_EIO;
}

static int sq_events_scan(void *conn, int64_t after_seq, int limit, td_store_scan_row_t **rows,
                          int *n)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(
        c, "SELECT seq, profile_id, ts_ms, type, doc FROM events WHERE seq > ?1 "
           "ORDER BY seq LIMIT ?2");
    int rc, cap = 0;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int(st, 2, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *rows = td_xrealloc(*rows, (size_t)cap * sizeof(**rows));
        }
        td_store_scan_row_t *r = &(*rows)[(*n)++];
        r->seq = sqlite3_column_int64(st, 0);
        r->profile_id = sqlite3_column_int64(st, 1);
        r->ts_ms = sqlite3_column_int64(st, 2);
        r->type = td_store__sqlite_col_text(st, 3);
        r->doc = td_store__sqlite_col_text(st, 4);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        td_store_scan_rows_free(*rows, *n);
        *rows = NULL;
        *n = 0;
        return td_store__sqlite_error(c->db, "events_scan");
    }
    return TD_OK;
}

static void bind_item(sqlite3_stmt *st, const td_store_item_t *it)
{
    td_store__sqlite_bind_text(st, 2, it->id);
    td_store__sqlite_bind_text(st, 3, it->name);
    td_store__sqlite_bind_text(st, 4, it->category);
    if (it->has_price) {
        sqlite3_bind_double(st, 5, it->price);
    } else {
        sqlite3_bind_null(st, 5);
    }
}

static int sq_cart_add(void *conn, int64_t profile_id, const td_store_item_t *it)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_CART_ADD);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    bind_item(st, it);
    sqlite3_bind_int64(st, 6, it->quantity);
    sqlite3_bind_int64(st, 7, it->ts_ms);
    return td_store__sqlite_run(c, st);
}

static int sq_cart_remove(void *conn, int64_t profile_id, const char *item_id, int64_t quantity,
                          bool remove_all)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st;
    int rc;

    if (!remove_all) {
        if ((st = td_store__sqlite_stmt(c, S_CART_DEC)) == NULL) {
            return TD_EIO;
        }
        sqlite3_bind_int64(st, 1, profile_id);
        td_store__sqlite_bind_text(st, 2, item_id);
        sqlite3_bind_int64(st, 3, quantity);
        if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
            return rc;
        }
    }
    if ((st = td_store__sqlite_stmt(c, S_CART_DROP)) == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    /* without remove_all only lines that reached zero go */
    td_store__sqlite_bind_text(st, 2, remove_all ? item_id : NULL);
    return td_store__sqlite_run(c, st);
}

static int sq_cart_clear(void *conn, int64_t profile_id)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_CART_CLEAR);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    return td_store__sqlite_run(c, st);
}

static int sq_viewed_trim(void *conn, int64_t profile_id, int max_kept)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_VIEWED_TRIM);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    sqlite3_bind_int64(st, 2, max_kept);
    return td_store__sqlite_run(c, st);
}

static int sq_event_seq_by_key(void *conn, const char *event_id, int64_t *seq)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_EVENT_BY_KEY);

    if (st == NULL) {
        return TD_EIO;
    }
    td_store__sqlite_bind_text(st, 1, event_id);
    return td_store__sqlite_query_int(c, st, seq);
}

static int sq_viewed_add(void *conn, int64_t profile_id, const td_store_item_t *it, int max_kept)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_VIEWED_ADD);
    int rc;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    bind_item(st, it);
    sqlite3_bind_int64(st, 6, it->ts_ms);
    if ((rc = td_store__sqlite_run(c, st)) != TD_OK) {
        return rc;
    }
    return sq_viewed_trim(c, profile_id, max_kept);
}

static int sq_purchase_add(void *conn, int64_t profile_id, const td_store_purchase_t *p)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_PURCHASE_ADD);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    td_store__sqlite_bind_text(st, 2, p->order_id);
    sqlite3_bind_int64(st, 3, p->ts_ms);
    if (p->has_total) {
        sqlite3_bind_double(st, 4, p->total);
    }
    td_store__sqlite_bind_text(st, 5, p->currency);
    td_store__sqlite_bind_text(st, 6, p->items_json ? p->items_json : "[]");
    return td_store__sqlite_run(c, st);
}

static int sq_consent_set(void *conn, int64_t profile_id, int value, int64_t ts_ms,
                          const char *source)
{
    td_sqlite_conn_t *c = conn;
    sqlite3_stmt *st = td_store__sqlite_stmt(c, S_CONSENT_SET);

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    sqlite3_bind_int(st, 2, value);
    sqlite3_bind_int64(st, 3, ts_ms);
    td_store__sqlite_bind_text(st, 4, source);
    return td_store__sqlite_run(c, st);
}

static int load_items(td_sqlite_conn_t *c, const char *sql, int64_t profile_id,
                      td_store_item_t **out, int *n)
{
    sqlite3_stmt *st = td_store__sqlite_stmt(c, sql);
    int rc, cap = 0;

    if (st == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = td_xrealloc(*out, sizeof(td_store_item_t) * (size_t)cap);
        }
        td_store_item_t *it = &(*out)[(*n)++];
        it->id = td_store__sqlite_col_text(st, 0);
        it->name = td_store__sqlite_col_text(st, 1);
        it->category = td_store__sqlite_col_text(st, 2);
        it->has_price = sqlite3_column_type(st, 3) != SQLITE_NULL;
        it->price = sqlite3_column_double(st, 3);
        it->quantity = sqlite3_column_int64(st, 4);
        it->ts_ms = sqlite3_column_int64(st, 5);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TD_OK : td_store__sqlite_error(c->db, "load_items");
}

static int load_rest(td_sqlite_conn_t *c, int64_t pid, td_store_profile_t *p)
{
    sqlite3_stmt *st;
    int rc, cap;

    if ((st = td_store__sqlite_stmt(c, S_LOAD_IDENTS)) == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, pid);
    for (cap = 0; (rc = sqlite3_step(st)) == SQLITE_ROW;) {
        if (p->n_identities == cap) {
            cap = cap ? cap * 2 : 4;
            p->identities = td_xrealloc(p->identities, sizeof(*p->identities) * (size_t)cap);
        }
        td_store_identity_t *ident = &p->identities[p->n_identities++];
        ident->ns = td_store__sqlite_col_text(st, 0);
        ident->id = td_store__sqlite_col_text(st, 1);
        ident->linked_ms = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return td_store__sqlite_error(c->db, "load identities");
    }
    if ((rc = load_items(c, S_LOAD_CART, pid, &p->cart, &p->n_cart)) != TD_OK ||
        (rc = load_items(c, S_LOAD_VIEWED, pid, &p->viewed, &p->n_viewed)) != TD_OK) {
        return rc;
    }
    if ((st = td_store__sqlite_stmt(c, S_LOAD_PURCHASES)) == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, pid);
    for (cap = 0; (rc = sqlite3_step(st)) == SQLITE_ROW;) {
        if (p->n_purchases == cap) {
            cap = cap ? cap * 2 : 4;
            p->purchases = td_xrealloc(p->purchases, sizeof(*p->purchases) * (size_t)cap);
        }
        td_store_purchase_t *pu = &p->purchases[p->n_purchases++];
        pu->order_id = td_store__sqlite_col_text(st, 0);
        pu->ts_ms = sqlite3_column_int64(st, 1);
        pu->has_total = sqlite3_column_type(st, 2) != SQLITE_NULL;
        pu->total = sqlite3_column_double(st, 2);
        pu->currency = td_store__sqlite_col_text(st, 3);
        pu->items_json = td_store__sqlite_col_text(st, 4);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return td_store__sqlite_error(c->db, "load purchases");
    }
    if ((st = td_store__sqlite_stmt(c, S_LOAD_COUNTS)) == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, pid);
    for (cap = 0; (rc = sqlite3_step(st)) == SQLITE_ROW;) {
        if (p->n_counts == cap) {
            cap = cap ? cap * 2 : 8;
            p->counts = td_xrealloc(p->counts, sizeof(*p->counts) * (size_t)cap);
        }
        p->counts[p->n_counts].type = td_store__sqlite_col_text(st, 0);
        p->counts[p->n_counts++].n = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return td_store__sqlite_error(c->db, "load counts");
    }
    if ((st = td_store__sqlite_stmt(c, S_LOAD_LAST)) == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, pid);
    if ((rc = td_store__sqlite_query_int(c, st, &p->last_event_ms)) != TD_OK &&
        rc != TD_ENOTFOUND) {
        return rc;
    }
    if ((st = td_store__sqlite_stmt(c, S_LOAD_CONSENT)) == NULL) {
        return TD_EIO;
    }
    sqlite3_bind_int64(st, 1, pid);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        p->consent_marketing = sqlite3_column_int(st, 0);
        p->consent_ms = sqlite3_column_int64(st, 1);
        p->consent_source = td_store__sqlite_col_text(st, 2);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? TD_OK
                                                 : td_store__sqlite_error(c->db, "load consent");
}

static int sq_profile_load(void *conn, int64_t profile_id, td_store_profile_t *p)
{
    td_sqlite_conn_t *c = conn;
    bool own_tx = sqlite3_get_autocommit(c->db);
    sqlite3_stmt *st;
    int rc;

    memset(p, 0, sizeof(*p));
    p->id = profile_id;
    /* one read transaction: a consistent snapshot of all the parts */
    if (own_tx && (rc = td_store__sqlite_exec(c->db, "BEGIN")) != TD_OK) {
        return rc;
    }
    if ((st = td_store__sqlite_stmt(c, S_LOAD_PROFILE)) == NULL) {
        rc = TD_EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    if ((rc = td_store__sqlite_query_int(c, st, &p->created_ms)) == TD_OK) {
        rc = load_rest(c, profile_id, p);
    }
out:
    if (own_tx) {
        td_store__sqlite_exec(c->db, "COMMIT");
    }
    if (rc != TD_OK) {
        td_store_profile_release(p);
    }
    return rc;
}

const td_store_ops_t td_store_sqlite_ops = {
    .domains = { [TD_STORE_DOMAIN_CATALOG] = &td_store_sqlite_catalog_ops,
                 [TD_STORE_DOMAIN_RECO] = &td_store_sqlite_reco_ops,
                 [TD_STORE_DOMAIN_JOURNEY] = &td_store_sqlite_journey_ops,
                 [TD_STORE_DOMAIN_MESSAGE] = &td_store_sqlite_message_ops },
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .conn_open = sq_conn_open,
    .conn_close = sq_conn_close,
    .exec = sq_exec,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .identity_find = sq_identity_find,
    .identity_link = sq_identity_link,
    .profile_create = sq_profile_create,
    .profile_merge = sq_profile_merge,
    .profile_resolve = sq_profile_resolve,
    .profile_load = sq_profile_load,
    .event_append = sq_event_append,
    .event_count = sq_event_count,
    .event_seq_by_key = sq_event_seq_by_key,
    .cart_add = sq_cart_add,
    .cart_remove = sq_cart_remove,
    .cart_clear = sq_cart_clear,
    .viewed_add = sq_viewed_add,
    .viewed_trim = sq_viewed_trim,
    .purchase_add = sq_purchase_add,
    .consent_set = sq_consent_set,
    .events_scan = sq_events_scan,
};
