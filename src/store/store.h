/* The storage interface. Everything durable goes through here: events,
 * profiles and identities, and (as modules arrive) catalog, models, journeys
 * and the outbox. Backends fill a td_store_ops_t (sqlite.c; postgres.c) and
 * the same contract tests run against each.
 *
 * Connections come from a pool: td_store_acquire() blocks until one is free;
 * a connection is used by one thread at a time. Writes happen inside
 * td_store_begin() .. td_store_commit(); a commit that returns TD_OK is
 * durable. No JSON is parsed here: documents are stored as text. */
#ifndef TD_STORE_H
#define TD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct td_store td_store_t;
typedef struct td_store_conn td_store_conn_t;

typedef struct td_store_options {
    const char *data_dir; /* where SQLite keeps its file */
    int pool_size;        /* connections in the pool */
    bool sync_full;       /* SQLite synchronous=FULL (else NORMAL) */
} td_store_options_t;

/* An item as kept in carts, viewed lists and purchases. */
typedef struct td_store_item {
    char *id;
    char *name;
    char *category;
    double price;
    bool has_price;
    int64_t quantity;
    int64_t ts_ms; /* added / viewed / bought */
} td_store_item_t;

/* An event as stored: indexed columns plus the normalised JSON document. */
typedef struct td_store_event {
    const char *event_id; /* optional idempotency key */
    const char *type;
    int64_t profile_id;
    int64_t ts_ms;
    int64_t received_ms;
    const char *doc; /* JSON */
} td_store_event_t;

typedef struct td_store_identity {
    char *ns; /* "ecid", "email", "customer" */
    char *id;
    int64_t linked_ms;
} td_store_identity_t;

typedef struct td_store_purchase {
    char *order_id;
    int64_t ts_ms;
    double total;
    bool has_total;
    char *currency;
    char *items_json;
} td_store_purchase_t;

typedef struct td_store_count {
    char *type;
    int64_t n;
} td_store_count_t;

typedef struct td_store_profile {
    int64_t id;
    int64_t created_ms;
    int64_t last_event_ms; /* 0 when no event yet */
    td_store_identity_t *identities;
    int n_identities;
    td_store_item_t *cart;
    int n_cart;
    td_store_item_t *viewed; /* newest first */
    int n_viewed;
    td_store_purchase_t *purchases; /* newest first */
    int n_purchases;
    td_store_count_t *counts;
    int n_counts;
    int consent_marketing; /* 0 unknown, 1 in, 2 out */
    int64_t consent_ms;
    char *consent_source;
} td_store_profile_t;

void td_store_profile_release(td_store_profile_t *p);

typedef struct td_store_ops td_store_ops_t;

/* Opens the store named by url ("" or "sqlite:PATH" or "postgres://...").
 * Runs pending migrations. On failure err says why and what to do. */
int td_store_open(const char *url, const td_store_options_t *opt, td_store_t **out,
                  td_err_t *err) TD_MUST_CHECK;
void td_store_close(td_store_t *st);
/* "sqlite" or "postgres". */
const char *td_store_backend(const td_store_t *st);

td_store_conn_t *td_store_acquire(td_store_t *st);
void td_store_release(td_store_t *st, td_store_conn_t *c);

int td_store_begin(td_store_conn_t *c) TD_MUST_CHECK;
int td_store_commit(td_store_conn_t *c) TD_MUST_CHECK;
void td_store_rollback(td_store_conn_t *c);
/* Nested scope inside a transaction: a failed part is undone alone. */
int td_store_savepoint(td_store_conn_t *c) TD_MUST_CHECK;
int td_store_savepoint_release(td_store_conn_t *c) TD_MUST_CHECK;
void td_store_savepoint_rollback(td_store_conn_t *c);

/* Small durable settings (virtual clock, secrets): value is owned by caller. */
int td_store_meta_get(td_store_conn_t *c, const char *key, char **value) TD_MUST_CHECK;
int td_store_meta_set(td_store_conn_t *c, const char *key, const char *value) TD_MUST_CHECK;

/* Identities and profiles. */
int td_store_identity_find(td_store_conn_t *c, const char *ns, const char *id,
                           int64_t *profile_id) TD_MUST_CHECK; /* TD_ENOTFOUND if unknown */
/* Links a new identity to a profile; TD_ECONFLICT when the identity is
 * linked already (possibly by a concurrent writer: resolve again). */
int td_store_identity_link(td_store_conn_t *c, const char *ns, const char *id, int64_t profile_id,
                           int64_t now_ms) TD_MUST_CHECK;
int td_store_profile_create(td_store_conn_t *c, int64_t now_ms, int64_t *profile_id) TD_MUST_CHECK;
/* Moves everything of profile `from` into `into` (carts add up) and records
 * the merge, so that `from` keeps resolving to `into`. */
int td_store_profile_merge(td_store_conn_t *c, int64_t from, int64_t into,
                           int64_t now_ms) TD_MUST_CHECK;
/* Follows recorded merges: the id that profile_id lives on as. */
int td_store_profile_resolve(td_store_conn_t *c, int64_t profile_id, int64_t *out) TD_MUST_CHECK;
int td_store_profile_load(td_store_conn_t *c, int64_t profile_id,
                          td_store_profile_t *out) TD_MUST_CHECK;

/* Events. Returns TD_ECONFLICT (and the existing seq) for a repeated event_id. */
int td_store_event_append(td_store_conn_t *c, const td_store_event_t *ev,
                          int64_t *seq) TD_MUST_CHECK;
int td_store_event_count(td_store_conn_t *c, int64_t *n) TD_MUST_CHECK;
/* Events in seq order, for rebuilding in-memory models: up to limit events
 * with seq > after_seq. Free rows with td_store_scan_rows_free(). */
typedef struct td_store_scan_row {
    int64_t seq;
    int64_t profile_id;
    int64_t ts_ms;
    char *type;
    char *doc; /* JSON */
} td_store_scan_row_t;
int td_store_events_scan(td_store_conn_t *c, int64_t after_seq, int limit,
                         td_store_scan_row_t **rows, int *n) TD_MUST_CHECK;
void td_store_scan_rows_free(td_store_scan_row_t *rows, int n);
/* The sequence number of the event stored with idempotency key event_id;
 * TD_ENOTFOUND when there is none. */
int td_store_event_seq_by_key(td_store_conn_t *c, const char *event_id, int64_t *seq)
    TD_MUST_CHECK;

/* Profile state derived from events. */
int td_store_cart_add(td_store_conn_t *c, int64_t profile_id,
                      const td_store_item_t *it) TD_MUST_CHECK;
/* Lowers the quantity by it->quantity; quantity <= 0 (or remove_all) drops the line. */
int td_store_cart_remove(td_store_conn_t *c, int64_t profile_id, const char *item_id,
                         int64_t quantity, bool remove_all) TD_MUST_CHECK;
int td_store_cart_clear(td_store_conn_t *c, int64_t profile_id) TD_MUST_CHECK;
/* Records a view, keeping only the newest max_kept distinct items. */
int td_store_viewed_add(td_store_conn_t *c, int64_t profile_id, const td_store_item_t *it,
                        int max_kept) TD_MUST_CHECK;
/* Keeps only the newest max_kept viewed items (newest by time, then id). */
int td_store_viewed_trim(td_store_conn_t *c, int64_t profile_id, int max_kept) TD_MUST_CHECK;
int td_store_purchase_add(td_store_conn_t *c, int64_t profile_id,
                          const td_store_purchase_t *p) TD_MUST_CHECK;
int td_store_consent_set(td_store_conn_t *c, int64_t profile_id, int value, int64_t ts_ms,
                         const char *source) TD_MUST_CHECK;

/* Later domains (catalog, journeys, outbox, ...) keep their operations in
 * tables of their own, declared in their section of this header and filled
 * by each backend; td_store_ops_t.domains[] points at them. */
enum {
    TD_STORE_DOMAIN_CATALOG,
    TD_STORE_DOMAIN_RECO,
    TD_STORE_DOMAIN_JOURNEY,
    TD_STORE_DOMAIN_MESSAGE,
    TD_STORE_N_DOMAINS
};

/* The backend contract: one function per operation above. */
struct td_store_ops {
    const void *domains[TD_STORE_N_DOMAINS];
    const char *name;
    int (*open)(const char *url, const td_store_options_t *opt, void **backend, td_err_t *err);
    void (*close)(void *backend);
    int (*conn_open)(void *backend, void **conn, td_err_t *err);
    void (*conn_close)(void *conn);
    int (*exec)(void *conn, const char *sql); /* transactions, savepoints */
    int (*meta_get)(void *conn, const char *key, char **value);
    int (*meta_set)(void *conn, const char *key, const char *value);
    int (*identity_find)(void *conn, const char *ns, const char *id, int64_t *profile_id);
    int (*identity_link)(void *conn, const char *ns, const char *id, int64_t profile_id,
                         int64_t now_ms);
    int (*profile_create)(void *conn, int64_t now_ms, int64_t *profile_id);
    int (*profile_merge)(void *conn, int64_t from, int64_t into, int64_t now_ms);
    int (*profile_resolve)(void *conn, int64_t profile_id, int64_t *out);
    int (*profile_load)(void *conn, int64_t profile_id, td_store_profile_t *out);
    int (*event_append)(void *conn, const td_store_event_t *ev, int64_t *seq);
    int (*event_count)(void *conn, int64_t *n);
    int (*event_seq_by_key)(void *conn, const char *event_id, int64_t *seq);
    int (*cart_add)(void *conn, int64_t profile_id, const td_store_item_t *it);
    int (*cart_remove)(void *conn, int64_t profile_id, const char *item_id, int64_t quantity,
                       bool remove_all);
    int (*cart_clear)(void *conn, int64_t profile_id);
    int (*viewed_add)(void *conn, int64_t profile_id, const td_store_item_t *it, int max_kept);
    int (*viewed_trim)(void *conn, int64_t profile_id, int max_kept);
    int (*purchase_add)(void *conn, int64_t profile_id, const td_store_purchase_t *p);
    int (*consent_set)(void *conn, int64_t profile_id, int value, int64_t ts_ms,
                       const char *source);
    int (*events_scan)(void *conn, int64_t after_seq, int limit, td_store_scan_row_t **rows,
                       int *n);
};

extern const td_store_ops_t td_store_sqlite_ops;
extern const td_store_ops_t td_store_postgres_ops;

/* ------------------------------------------------------------------------
 * Catalog (TD_STORE_DOMAIN_CATALOG): one row per entity, the standard
 * attributes in plain columns, categories and custom attributes as JSON
 * text (the store does not parse them). Every write transaction takes a
 * new catalog sequence number (td_store_catalog_seq_next) and stamps the
 * rows it writes and the ids it deletes with it, so that another process
 * can fetch what changed since the sequence number it last saw. */

typedef struct td_store_entity {
    const char *id;
    const char *name;
    const char *categories; /* JSON array of strings, or NULL */
    const char *brand;
    const char *page_url;
    const char *thumbnail_url;
    const char *message;
    double value, inventory, margin;
    bool has_value, has_inventory, has_margin;
    const char *attrs; /* JSON object, or NULL */
    int64_t environment;
    int64_t updated_ms;
    int64_t change_seq;
} td_store_entity_t;

/* Receives rows; the strings are borrowed for the call. A non-zero return
 * stops the scan and is returned by it. */
typedef int (*td_store_entity_fn)(void *ctx, const td_store_entity_t *e);
typedef int (*td_store_id_fn)(void *ctx, const char *id);

typedef struct td_store_catalog_ops {
    int (*seq_next)(void *conn, int64_t now_ms, int64_t *seq);
    int (*seq_get)(void *conn, int64_t *seq);
    int (*entity_get)(void *conn, const char *id, td_store_entity_fn fn, void *ctx);
    int (*entity_put)(void *conn, const td_store_entity_t *e);
    int (*entity_delete)(void *conn, const char *id, int64_t seq, int64_t now_ms);
    int (*entity_scan)(void *conn, int64_t after_seq, td_store_entity_fn fn, void *ctx);
    int (*entity_deleted_since)(void *conn, int64_t after_seq, td_store_id_fn fn, void *ctx);
    int (*entity_count)(void *conn, int64_t *n);
    int (*entity_delete_unstamped)(void *conn, int64_t seq, int64_t environment, int64_t now_ms,
                                   int64_t *n);
    int (*entity_zero_unstamped)(void *conn, int64_t seq, int64_t environment, int64_t *n);
    int (*entity_delete_expired)(void *conn, int64_t before_ms, int64_t seq, int64_t now_ms,
                                 int64_t *n);
} td_store_catalog_ops_t;

extern const td_store_catalog_ops_t td_store_sqlite_catalog_ops;
extern const td_store_catalog_ops_t td_store_postgres_catalog_ops;

/* True when the store's backend keeps a catalog. */
bool td_store_catalog_supported(const td_store_t *st);
/* Inside a write transaction: the next catalog sequence number (also
 * recorded as the current one when the transaction commits). */
int td_store_catalog_seq_next(td_store_conn_t *c, int64_t now_ms, int64_t *seq) TD_MUST_CHECK;
/* The last committed catalog sequence number (0 before any write). */
int td_store_catalog_seq(td_store_conn_t *c, int64_t *seq) TD_MUST_CHECK;
/* Calls fn with the entity, or returns TD_ENOTFOUND. */
int td_store_entity_get(td_store_conn_t *c, const char *id, td_store_entity_fn fn,
                        void *ctx) TD_MUST_CHECK;
/* Inserts or replaces the whole row e->id. */
int td_store_entity_put(td_store_conn_t *c, const td_store_entity_t *e) TD_MUST_CHECK;
/* Deletes one entity, recording the deletion under seq; TD_ENOTFOUND if none. */
int td_store_entity_delete(td_store_conn_t *c, const char *id, int64_t seq,
                           int64_t now_ms) TD_MUST_CHECK;
/* Every entity with change_seq > after_seq (0: all), in no particular order. */
int td_store_entity_scan(td_store_conn_t *c, int64_t after_seq, td_store_entity_fn fn,
                         void *ctx) TD_MUST_CHECK;
/* Ids deleted with change_seq > after_seq (kept for a day). */
int td_store_entity_deleted_since(td_store_conn_t *c, int64_t after_seq, td_store_id_fn fn,
                                  void *ctx) TD_MUST_CHECK;
int td_store_entity_count(td_store_conn_t *c, int64_t *n) TD_MUST_CHECK;
/* Full-replace imports: deletes (or sets inventory 0 on) every entity not
 * written under seq, only in environment when it is not 0. */
int td_store_entity_delete_unstamped(td_store_conn_t *c, int64_t seq, int64_t environment,
                                     int64_t now_ms, int64_t *n) TD_MUST_CHECK;
int td_store_entity_zero_unstamped(td_store_conn_t *c, int64_t seq, int64_t environment,
                                   int64_t *n) TD_MUST_CHECK;
/* Deletes every entity last updated before before_ms. */
int td_store_entity_delete_expired(td_store_conn_t *c, int64_t before_ms, int64_t seq,
                                   int64_t now_ms, int64_t *n) TD_MUST_CHECK;

/* ==== Journeys and the outbox ============================================
 *
 * Journey definitions (versioned documents), instances with their timers,
 * re-entry keys, per-step counters, profile attributes written by journeys,
 * and the outbox of messages waiting to be sent. The operations live in
 * td_store_journey_ops_t (td_store_ops_t.domains[TD_STORE_DOMAIN_JOURNEY]).
 *
 * Work is claimed in two ways, both ready for several nodes on PostgreSQL:
 * inside a transaction, due rows are the caller's until commit (SQLite: the
 * write lock; PostgreSQL: FOR UPDATE SKIP LOCKED); to keep a row past the
 * transaction (an outside HTTP call, an SMTP send) the caller writes a
 * lease (claimed_by, lease_until_ms, in wall-clock ms) and other claimers
 * skip the row until the lease runs out. Business times (next_run_ms,
 * next_attempt_ms) follow the application clock, which may be virtual;
 * leases always follow the wall clock. */

typedef struct td_store_journey {
    char *id;
    char *status;           /* draft | live | paused | stopped */
    int64_t live_version;   /* 0: never published */
    int64_t latest_version; /* the newest stored version */
    int64_t created_ms, updated_ms;
} td_store_journey_t;

typedef struct td_store_jinstance {
    int64_t id;
    char *journey_id;
    int64_t version;
    int64_t profile_id;
    char *entry_key;
    char *step;
    int phase; /* 0 arrive, 1 waiting, 2 outside call in flight */
    int64_t step_since_ms;
    int64_t next_run_ms; /* 0: not due (ended, or held by a pause) */
    bool held;           /* read: the journey is paused and kept this instance's due time */
    int64_t entered_ms, timeout_at_ms;
    int64_t ended_ms; /* 0: running */
    char *outcome, *reason;
    int64_t entry_seq;
    char *entry_event; /* JSON object */
    char *data;        /* JSON object: {"actions": {...}} */
    char *history;     /* read by get: a JSON array; NULL from list and due */
    int64_t n_steps;
    int attempts; /* outside call attempts at the current step */
    char *claimed_by;
    int64_t lease_until_ms; /* wall clock; 0: none */
} td_store_jinstance_t;

typedef struct td_store_jcount {
    int64_t version;
    char *step; /* "" for journey-level counts */
    char *kind; /* entered | passed | exited | error | skipped | refused | waiting | ... */
    char *reason;
    int64_t n;
} td_store_jcount_t;

typedef struct td_store_attr {
    char *name;
    char *value; /* JSON */
} td_store_attr_t;

typedef struct td_store_event_row {
    int64_t seq;
    char *type;
    int64_t ts_ms, received_ms;
    char *doc; /* JSON */
} td_store_event_row_t;

typedef struct td_store_outbox {
    int64_t id;
    char *message_id; /* unique: deterministic per (instance, step) */
    char *channel;    /* "email" */
    char *journey_id;
    int64_t journey_version;
    int64_t instance_id;
    char *step;
    int64_t profile_id;
    char *recipient;
    char *template_id;
    char *data;   /* JSON: what the template renders with */
    char *status; /* queued | sending | sent | failed | suppressed | cancelled */
    int attempts;
    int64_t next_attempt_ms; /* application clock */
    char *claimed_by;
    int64_t lease_until_ms; /* wall clock */
    int64_t created_ms, updated_ms, sent_ms;
    char *last_error;
} td_store_outbox_t;

void td_store_journey_release(td_store_journey_t *j);
void td_store_jinstance_release(td_store_jinstance_t *i);
void td_store_outbox_release(td_store_outbox_t *m);
/* Frees n rows of each kind and the array itself. */
void td_store_journeys_free(td_store_journey_t *rows, int n);
void td_store_jinstances_free(td_store_jinstance_t *rows, int n);
void td_store_jcounts_free(td_store_jcount_t *rows, int n);
void td_store_attrs_free(td_store_attr_t *rows, int n);
void td_store_event_rows_free(td_store_event_row_t *rows, int n);
void td_store_outboxes_free(td_store_outbox_t *rows, int n);

typedef struct td_store_journey_ops {
    int (*get)(void *conn, const char *id, td_store_journey_t *out);
    int (*list)(void *conn, td_store_journey_t **rows, int *n);
    int (*create)(void *conn, const char *id, int64_t now_ms);
    int (*version_add)(void *conn, const char *id, int64_t version, const char *doc,
                       int64_t now_ms);
    int (*version_get)(void *conn, const char *id, int64_t version, char **doc, int64_t *created_ms,
                       int64_t *published_ms);
    int (*set_status)(void *conn, const char *id, const char *status, int64_t live_version,
                      int64_t now_ms);
    int (*remove)(void *conn, const char *id);
    int (*hold)(void *conn, const char *id, bool hold);
    int (*stop)(void *conn, const char *id, int64_t now_ms, const char *history, int64_t *n);
    int (*key_get)(void *conn, const char *journey_id, const char *key, int64_t *last_entered_ms,
                   int64_t *running_id);
    int (*key_put)(void *conn, const char *journey_id, const char *key, int64_t entered_ms,
                   int64_t running_id);
    int (*key_release)(void *conn, const char *journey_id, const char *key, int64_t instance_id);
    int (*count_add)(void *conn, const char *journey_id, int64_t version, const char *step,
                     const char *kind, const char *reason, int64_t n);
    int (*counts)(void *conn, const char *journey_id, td_store_jcount_t **rows, int *n);
    int (*running_counts)(void *conn, const char *journey_id, td_store_jcount_t **rows, int *n);
    int (*next_due)(void *conn, int64_t wall_ms, int64_t *ms);
    int (*inst_insert)(void *conn, const td_store_jinstance_t *in, const char *history,
                       int64_t *id);
    int (*inst_update)(void *conn, const td_store_jinstance_t *in, bool data_changed,
                       const char *history_append);
    int (*inst_get)(void *conn, int64_t id, td_store_jinstance_t *out);
    int (*inst_due)(void *conn, int64_t now_ms, int64_t wall_ms, int limit,
                    td_store_jinstance_t **rows, int *n);
    int (*inst_running)(void *conn, int64_t profile_id, td_store_jinstance_t **rows, int *n);
    int (*inst_list)(void *conn, const char *journey_id, int64_t profile_id, int state,
                     int64_t before_id, int limit, td_store_jinstance_t **rows, int *n);
    int (*attrs_get)(void *conn, int64_t profile_id, td_store_attr_t **rows, int *n);
    int (*attr_set)(void *conn, int64_t profile_id, const char *name, const char *value,
                    int64_t now_ms);
    int (*events_recent)(void *conn, int64_t profile_id, int limit, td_store_event_row_t **rows,
                         int *n);
    int (*outbox_add)(void *conn, const td_store_outbox_t *m, int64_t *id);
    int (*outbox_claim)(void *conn, const char *node, int64_t now_ms, int64_t wall_ms,
                        int64_t lease_until_ms, int limit, td_store_outbox_t **rows, int *n);
    int (*outbox_mark)(void *conn, int64_t id, const char *node, const char *status,
                       int64_t next_attempt_ms, const char *error, int64_t now_ms);
    int (*outbox_get)(void *conn, int64_t id, td_store_outbox_t *out);
    int (*outbox_list)(void *conn, int64_t instance_id, const char *status, int limit,
                       td_store_outbox_t **rows, int *n);
} td_store_journey_ops_t;

extern const td_store_journey_ops_t td_store_sqlite_journey_ops;
extern const td_store_journey_ops_t td_store_postgres_journey_ops;

/* True when the store's backend has the journey tables. */
bool td_store_journeys_supported(const td_store_t *st);

/* Journeys. get: TD_ENOTFOUND when unknown. create: a draft with no version
 * (TD_ECONFLICT when it exists). version_add also makes it the latest.
 * version_get with version 0 reads the latest. remove deletes the journey
 * with its versions, instances, keys and counters (not its outbox rows). */
int td_store_journey_get(td_store_conn_t *c, const char *id, td_store_journey_t *out) TD_MUST_CHECK;
int td_store_journey_list(td_store_conn_t *c, td_store_journey_t **rows, int *n) TD_MUST_CHECK;
int td_store_journey_create(td_store_conn_t *c, const char *id, int64_t now_ms) TD_MUST_CHECK;
int td_store_journey_version_add(td_store_conn_t *c, const char *id, int64_t version,
                                 const char *doc, int64_t now_ms) TD_MUST_CHECK;
int td_store_journey_version_get(td_store_conn_t *c, const char *id, int64_t version, char **doc,
                                 int64_t *created_ms, int64_t *published_ms) TD_MUST_CHECK;
/* Sets status; live_version > 0 also publishes that version. */
int td_store_journey_set_status(td_store_conn_t *c, const char *id, const char *status,
                                int64_t live_version, int64_t now_ms) TD_MUST_CHECK;
int td_store_journey_delete(td_store_conn_t *c, const char *id) TD_MUST_CHECK;
/* Pause (hold = true): running instances keep their due time aside and are
 * not due; resume gives it back. While the journey's status is "paused",
 * instance updates keep new due times aside too. */
int td_store_journey_hold(td_store_conn_t *c, const char *id, bool hold) TD_MUST_CHECK;
/* Ends every running instance (outcome "stopped"), counting them per step;
 * history is the entry appended to each instance's history. */
int td_store_journey_stop(td_store_conn_t *c, const char *id, int64_t now_ms, const char *history,
                          int64_t *n) TD_MUST_CHECK;
/* Re-entry keys: the last entry time and the running instance (0: none). */
int td_store_journey_key_get(td_store_conn_t *c, const char *journey_id, const char *key,
                             int64_t *last_entered_ms, int64_t *running_id) TD_MUST_CHECK;
int td_store_journey_key_put(td_store_conn_t *c, const char *journey_id, const char *key,
                             int64_t entered_ms, int64_t running_id) TD_MUST_CHECK;
int td_store_journey_key_release(td_store_conn_t *c, const char *journey_id, const char *key,
                                 int64_t instance_id) TD_MUST_CHECK;
/* Report counters: adds n to (journey, version, step, kind, reason). */
int td_store_journey_count_add(td_store_conn_t *c, const char *journey_id, int64_t version,
                               const char *step, const char *kind, const char *reason,
                               int64_t n) TD_MUST_CHECK;
int td_store_journey_counts(td_store_conn_t *c, const char *journey_id, td_store_jcount_t **rows,
                            int *n) TD_MUST_CHECK;
/* Running instances per (version, step), as kind "waiting". */
int td_store_journey_running_counts(td_store_conn_t *c, const char *journey_id,
                                    td_store_jcount_t **rows, int *n) TD_MUST_CHECK;
/* The earliest due time of any instance without a live lease (wall_ms);
 * TD_ENOTFOUND when none. */
int td_store_journey_next_due(td_store_conn_t *c, int64_t wall_ms, int64_t *ms) TD_MUST_CHECK;

/* Instances. insert stores in (its id is ignored) with history as its first
 * history entries (",{...},{...}"). update writes the moving parts of in
 * (step, phase, times, outcome, lease, attempts; data only when
 * data_changed) and appends history_append; the history keeps its first
 * 64 KiB. due: rows with next_run_ms <= now_ms and no live lease, earliest
 * first, without history (call inside a write transaction). running: the
 * profile's running instances. list: state 0 all, 1 running, 2 ended;
 * newest first, ids below before_id (0: from the newest). */
int td_store_jinstance_insert(td_store_conn_t *c, const td_store_jinstance_t *in,
                              const char *history, int64_t *id) TD_MUST_CHECK;
int td_store_jinstance_update(td_store_conn_t *c, const td_store_jinstance_t *in, bool data_changed,
                              const char *history_append) TD_MUST_CHECK;
int td_store_jinstance_get(td_store_conn_t *c, int64_t id, td_store_jinstance_t *out) TD_MUST_CHECK;
int td_store_jinstance_due(td_store_conn_t *c, int64_t now_ms, int64_t wall_ms, int limit,
                           td_store_jinstance_t **rows, int *n) TD_MUST_CHECK;
int td_store_jinstance_running(td_store_conn_t *c, int64_t profile_id, td_store_jinstance_t **rows,
                               int *n) TD_MUST_CHECK;
int td_store_jinstance_list(td_store_conn_t *c, const char *journey_id, int64_t profile_id,
                            int state, int64_t before_id, int limit, td_store_jinstance_t **rows,
                            int *n) TD_MUST_CHECK;

/* Profile attributes written by journeys (update_profile): name -> JSON. */
int td_store_profile_attrs_get(td_store_conn_t *c, int64_t profile_id, td_store_attr_t **rows,
                               int *n) TD_MUST_CHECK;
int td_store_profile_attr_set(td_store_conn_t *c, int64_t profile_id, const char *name,
                              const char *value, int64_t now_ms) TD_MUST_CHECK;
/* The profile's newest events (at most limit), newest first. */
int td_store_events_recent(td_store_conn_t *c, int64_t profile_id, int limit,
                           td_store_event_row_t **rows, int *n) TD_MUST_CHECK;

/* The outbox. add: TD_ECONFLICT when (instance, step) or the Message-ID
 * was queued before. claim: marks up to limit rows "sending" for node with
 * a lease, attempts + 1 -- rows "queued" with next_attempt_ms <= now_ms,
 * and rows "sending" whose lease ran out (wall_ms) -- oldest first. mark:
 * records the result of node's attempt (status "sent" sets sent_ms;
 * "queued" retries at next_attempt_ms; "deferred" is queued again for
 * next_attempt_ms without using up an attempt: caps, quiet hours) and drops
 * the lease; TD_ENOTFOUND
 * when node no longer holds the row. list: newest first; instance 0 and
 * status NULL mean any. */
int td_store_outbox_add(td_store_conn_t *c, const td_store_outbox_t *m, int64_t *id) TD_MUST_CHECK;
int td_store_outbox_claim(td_store_conn_t *c, const char *node, int64_t now_ms, int64_t wall_ms,
                          int64_t lease_until_ms, int limit, td_store_outbox_t **rows,
                          int *n) TD_MUST_CHECK;
int td_store_outbox_mark(td_store_conn_t *c, int64_t id, const char *node, const char *status,
                         int64_t next_attempt_ms, const char *error, int64_t now_ms) TD_MUST_CHECK;
int td_store_outbox_get(td_store_conn_t *c, int64_t id, td_store_outbox_t *out) TD_MUST_CHECK;
int td_store_outbox_list(td_store_conn_t *c, int64_t instance_id, const char *status, int limit,
                         td_store_outbox_t **rows, int *n) TD_MUST_CHECK;

/* ==== Messages: templates, suppressions, the send log ====================
 *
 * Stored email templates (versioned on each put), the suppression list
 * (addresses and whole domains that never get mail), and the send log: one
 * row per outbox Message-ID that says whether an attempt is in flight, so
 * that a row claimed again after a crash between the SMTP server's reply
 * and the mark is recognised (and counted) as a resend. The operations live
 * in td_store_message_ops_t (td_store_ops_t.domains[TD_STORE_DOMAIN_MESSAGE]). */

typedef struct td_store_template {
    char *id;
    int64_t version; /* 1 on the first put, + 1 on each later one */
    char *subject;   /* template text */
    char *html;      /* template text */
    char *text;      /* template text; NULL: generated from the HTML */
    char *from_name; /* template text; NULL: the mail_from_name setting */
    char *reply_to;  /* address; NULL: the mail_reply_to setting */
    char *source;    /* "api" or "file" */
    int64_t updated_ms;
} td_store_template_t;

typedef struct td_store_suppression {
    char *key; /* a lower-case address, or "@domain" for a whole domain */
    char *reason;
    char *source;
    int64_t created_ms;
} td_store_suppression_t;

/* Per-reason totals of the send log of one journey. */
typedef struct td_store_send_count {
    char *outcome; /* sent | retry | failed | skipped | sending */
    char *reason;  /* "" when none */
    int64_t n;
    int64_t resent; /* attempts started again after a crash */
} td_store_send_count_t;

/* A purchase credited to the email click that came before it. */
typedef struct td_store_attribution {
    const char *order_id; /* unique: an order is credited once */
    int64_t profile_id;
    const char *journey_id;
    const char *step;
    const char *message_id;
    const char *label; /* the clicked link's label, e.g. "item:SKU-1,slot:2" */
    double revenue;
    int64_t ts_ms;
} td_store_attribution_t;

/* What recipients did with a journey's emails. */
typedef struct td_store_msg_outcomes {
    int64_t opened, clicked, unsubscribed; /* distinct messages */
    int64_t converted;                      /* attributed orders */
    double revenue;
} td_store_msg_outcomes_t;

void td_store_template_release(td_store_template_t *t);
void td_store_templates_free(td_store_template_t *rows, int n);
void td_store_suppression_release(td_store_suppression_t *s);
void td_store_suppressions_free(td_store_suppression_t *rows, int n);
void td_store_send_counts_free(td_store_send_count_t *rows, int n);

typedef struct td_store_message_ops {
    int (*template_put)(void *conn, const td_store_template_t *t, bool only_if_absent,
                        int64_t *version);
    int (*template_get)(void *conn, const char *id, td_store_template_t *out);
    int (*template_delete)(void *conn, const char *id);
    int (*template_list)(void *conn, td_store_template_t **rows, int *n);
    int (*suppression_add)(void *conn, const td_store_suppression_t *s);
    int (*suppression_delete)(void *conn, const char *key);
    int (*suppression_find)(void *conn, const char *addr, td_store_suppression_t *out);
    int (*suppression_list)(void *conn, const char *after, int limit,
                            td_store_suppression_t **rows, int *n);
    int (*send_begin)(void *conn, const char *message_id, const char *journey_id, int64_t wall_ms,
                      bool *was_in_flight);
    int (*send_end)(void *conn, const char *message_id, const char *outcome, const char *reason,
                    int64_t wall_ms);
    int (*send_counts)(void *conn, const char *journey_id, td_store_send_count_t **rows, int *n);
    int (*cap_usage)(void *conn, int64_t profile_id, int64_t exclude_id, int64_t since_ms,
                     int64_t now_ms, int64_t *n, int64_t *oldest_ms);
    int (*engagement_add)(void *conn, const char *message_id, const char *journey_id,
                          const char *kind, int64_t ts_ms);
    int (*attribution_add)(void *conn, const td_store_attribution_t *a);
    int (*journey_outcomes)(void *conn, const char *journey_id, td_store_msg_outcomes_t *out);
} td_store_message_ops_t;

extern const td_store_message_ops_t td_store_sqlite_message_ops;
extern const td_store_message_ops_t td_store_postgres_message_ops;

/* True when the store's backend has the message tables. */
bool td_store_messages_supported(const td_store_t *st);

/* Templates. put: stores t (its version is ignored) as the next version and
 * returns it; with only_if_absent an existing template is kept and put
 * answers TD_ECONFLICT. get/delete: TD_ENOTFOUND when unknown. list: by id,
 * html and text left NULL. */
int td_store_template_put(td_store_conn_t *c, const td_store_template_t *t, bool only_if_absent,
                          int64_t *version) TD_MUST_CHECK;
int td_store_template_get(td_store_conn_t *c, const char *id,
                          td_store_template_t *out) TD_MUST_CHECK;
int td_store_template_delete(td_store_conn_t *c, const char *id) TD_MUST_CHECK;
int td_store_template_list(td_store_conn_t *c, td_store_template_t **rows, int *n) TD_MUST_CHECK;

/* Suppressions. add replaces an entry with the same key. find: the entry for
 * addr (lower-case) or for its domain ("@domain"), TD_ENOTFOUND when none.
 * list: by key, keys above after ("" from the start), at most limit. */
int td_store_suppression_add(td_store_conn_t *c, const td_store_suppression_t *s) TD_MUST_CHECK;
int td_store_suppression_delete(td_store_conn_t *c, const char *key) TD_MUST_CHECK;
int td_store_suppression_find(td_store_conn_t *c, const char *addr,
                              td_store_suppression_t *out) TD_MUST_CHECK;
int td_store_suppression_list(td_store_conn_t *c, const char *after, int limit,
                              td_store_suppression_t **rows, int *n) TD_MUST_CHECK;

/* The send log. begin: an attempt starts (call in the claim's transaction);
 * *was_in_flight tells that the previous attempt never ended (a crash), and
 * then it is counted as a resend. end: the attempt's outcome (sent, retry,
 * failed, skipped) and reason. counts: per (outcome, reason) of a journey. */
int td_store_send_begin(td_store_conn_t *c, const char *message_id, const char *journey_id,
                        int64_t wall_ms, bool *was_in_flight) TD_MUST_CHECK;
int td_store_send_end(td_store_conn_t *c, const char *message_id, const char *outcome,
                      const char *reason, int64_t wall_ms) TD_MUST_CHECK;
int td_store_send_counts(td_store_conn_t *c, const char *journey_id, td_store_send_count_t **rows,
                         int *n) TD_MUST_CHECK;
/* Frequency caps: how many emails of the profile (other than outbox row
 * exclude_id) were sent at or after since_ms, or are being sent now (their
 * time taken as now_ms), and the oldest of those times (0 when none). Call
 * in the claim's transaction, so that two sends cannot both pass a cap. */
/* Engagement and attribution, written by the ingest hook in the event's
 * transaction. engagement_add: kind "opened", "clicked" or "unsubscribed"
 * of a message (repeats add up). attribution_add: TD_ECONFLICT when the
 * order was credited already. outcomes: the journey's totals. */
int td_store_engagement_add(td_store_conn_t *c, const char *message_id, const char *journey_id,
                            const char *kind, int64_t ts_ms) TD_MUST_CHECK;
int td_store_attribution_add(td_store_conn_t *c, const td_store_attribution_t *a) TD_MUST_CHECK;
int td_store_journey_msg_outcomes(td_store_conn_t *c, const char *journey_id,
                                  td_store_msg_outcomes_t *out) TD_MUST_CHECK;
int td_store_cap_usage(td_store_conn_t *c, int64_t profile_id, int64_t exclude_id,
                       int64_t since_ms, int64_t now_ms, int64_t *n,
                       int64_t *oldest_ms) TD_MUST_CHECK;

/* ==== Recommendations ===================================================
 *
 * Documents of the recommendation service, by kind: "criteria" (criteria
 * JSON), "custom" (CUSTOM lists as uploaded CSV), "design" (an mbox or
 * decision scope name -> criteria, count, options as JSON). put inserts or
 * replaces; delete: TD_ENOTFOUND when absent; list: by id. In
 * td_store_reco_ops_t (td_store_ops_t.domains[TD_STORE_DOMAIN_RECO]). */
typedef struct td_store_reco_doc {
    char *id;
    char *body;
    int64_t updated_ms;
} td_store_reco_doc_t;

typedef struct td_store_reco_ops {
    int (*put)(void *conn, const char *kind, const char *id, const char *body, int64_t now_ms);
    int (*del)(void *conn, const char *kind, const char *id);
    int (*list)(void *conn, const char *kind, td_store_reco_doc_t **rows, int *n);
    int (*rev)(void *conn, int64_t *rev);
    int (*rebuild_lock)(void *conn, bool take, bool *got);
} td_store_reco_ops_t;

extern const td_store_reco_ops_t td_store_sqlite_reco_ops;
extern const td_store_reco_ops_t td_store_postgres_reco_ops;

bool td_store_reco_supported(const td_store_t *st);
int td_store_reco_put(td_store_conn_t *c, const char *kind, const char *id, const char *body,
                      int64_t now_ms) TD_MUST_CHECK;
int td_store_reco_delete(td_store_conn_t *c, const char *kind, const char *id) TD_MUST_CHECK;
int td_store_reco_list(td_store_conn_t *c, const char *kind, td_store_reco_doc_t **rows,
                       int *n) TD_MUST_CHECK;
void td_store_reco_docs_free(td_store_reco_doc_t *rows, int n);
/* The documents' change counter: moves with every put or delete (of any
 * kind, by any process) in the writing transaction. Equal readings mean no
 * document changed in between. */
int td_store_reco_rev(td_store_conn_t *c, int64_t *rev) TD_MUST_CHECK;
/* The lock that lets one process at a time rebuild its model from the
 * events (a session lock on PostgreSQL, so it stays with this connection
 * until given back; SQLite has one process and always grants it). take:
 * tries to take it without waiting, *got says whether it did; !take: gives
 * it back. */
int td_store_reco_rebuild_lock(td_store_conn_t *c, bool take, bool *got) TD_MUST_CHECK;

#endif
