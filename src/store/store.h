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
    int (*cart_add)(void *conn, int64_t profile_id, const td_store_item_t *it);
    int (*cart_remove)(void *conn, int64_t profile_id, const char *item_id, int64_t quantity,
                       bool remove_all);
    int (*cart_clear)(void *conn, int64_t profile_id);
    int (*viewed_add)(void *conn, int64_t profile_id, const td_store_item_t *it, int max_kept);
    int (*purchase_add)(void *conn, int64_t profile_id, const td_store_purchase_t *p);
    int (*consent_set)(void *conn, int64_t profile_id, int value, int64_t ts_ms,
                       const char *source);
};

extern const td_store_ops_t td_store_sqlite_ops;
extern const td_store_ops_t td_store_postgres_ops;

#endif
