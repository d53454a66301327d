/* Events in: the one Event struct every source is normalised to, the parsers
 * for the native API (POST /v1/events) and for Adobe Edge / XDM requests, and
 * the ingest pipeline that makes a batch durable (group commit) before the
 * caller replies.
 *
 * Parsers are pure: text in, structs and per-event errors out, no I/O and no
 * clock (the caller passes now_ms). */
#ifndef TD_COLLECT_H
#define TD_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct td_store;
struct td_store_conn;

/* Limits applied while parsing; every size from input is capped before it is
 * allocated. */
typedef struct td_collect_limits {
    int max_events; /* per request */
    int max_items;  /* per event */
} td_collect_limits_t;

typedef struct td_item {
    char *id;       /* required */
    char *name;     /* NULL when absent */
    char *category; /* NULL when absent */
    double price;   /* unit price; valid when has_price */
    bool has_price;
    int64_t quantity; /* >= 1; 1 when absent */
    bool has_quantity;
} td_item_t;

typedef struct td_order {
    char *id; /* NULL when absent */
    double total;
    bool has_total;
    char *currency; /* ISO 4217, upper case; NULL when absent */
} td_order_t;

typedef enum { TD_CONSENT_NONE = 0, TD_CONSENT_IN, TD_CONSENT_OUT } td_consent_t;

typedef struct td_event {
    char *event_id; /* client-chosen id for idempotent retries; NULL when absent */
    char *type;     /* page_view, product_view, cart_add, cart_remove, purchase, identify, ... */
    char *ecid;
    char *email; /* lower-cased */
    char *customer_id;
    char *cart_id;
    int64_t ts_ms; /* when it happened (default: when received) */
    td_item_t *items;
    int n_items;
    td_order_t order;
    bool has_order;
    td_consent_t consent_marketing; /* email marketing consent carried by the event */
    char *attributes_json;          /* free-form object, serialised; NULL when absent */
    const char *source;             /* "native" or "edge" (static string) */
} td_event_t;

void td_event_release(td_event_t *ev);
/* Serialises the normalised event as the JSON document kept in the store
 * (the field names of the native API). You own the result (free(3)). */
char *td_event_to_json(const td_event_t *ev, int64_t received_ms);

/* One event of a request: parsed, or refused with a reason. */
typedef struct td_event_slot {
    td_event_t ev;
    td_err_t err; /* err.code != TD_OK: refused; path is relative to the request */
} td_event_slot_t;

typedef struct td_event_batch {
    td_event_slot_t *slots;
    int n;
    bool single; /* the request was one bare event, not {"events": [...]} */
} td_event_batch_t;

void td_event_batch_release(td_event_batch_t *b);
/* Number of slots that parsed. */
int td_event_batch_n_ok(const td_event_batch_t *b);

/* Parses a native request body: one event object, or {"events": [...]}.
 * Returns TD_OK when the body's shape is right, with every event either
 * parsed or refused in out; TD_EINVAL (malformed JSON, wrong shape; err says
 * where) or TD_ETOOBIG (more than max_events) when the whole request is
 * refused. Release out in every case. */
int td_collect_parse_native(const char *body, size_t len, const td_collect_limits_t *lim,
                            int64_t now_ms, td_event_batch_t *out, td_err_t *err) TD_MUST_CHECK;

/* An Adobe Edge Network request as the Web SDK (alloy) sends it to
 * /ee/v1/interact, /collect, /identity/acquire or /privacy/set-consent
 * (xdm.c says how XDM maps to events). */
#define TD_XDM_MAX_SCOPES 32
typedef struct td_xdm_request {
    /* events[], parsed or refused; a set-consent body that speaks about
     * marketing gives one "consent" event. Parsed events may have no ECID
     * until td_collect_xdm_set_ecid(). */
    td_event_batch_t batch;
    /* The device's ECID found in the body (an identityMap ECID, else the
     * kndctr identity cookie in meta.state.entries); NULL when none. */
    char *ecid;
    bool fetch_ecid;                 /* query.identity.fetch asks for "ECID" */
    bool has_consent;                /* a consent[] array was sent */
    td_consent_t consent_collect;    /* what consent[] says about data collection */
    td_consent_t consent_marketing;  /* ... and about marketing email */
    char *decision_scopes[TD_XDM_MAX_SCOPES]; /* personalization scopes asked for, deduplicated */
    int n_decision_scopes;
} td_xdm_request_t;

/* Parses an Edge request body. org_id (may be NULL) names the identity
 * cookie to look for in meta.state.entries. Returns TD_OK when the body's
 * shape is right, with every event parsed or refused; TD_EINVAL or
 * TD_ETOOBIG when the whole request is refused (err says where). Release
 * out in every case. */
int td_collect_parse_xdm(const char *body, size_t len, const char *org_id,
                         const td_collect_limits_t *lim, int64_t now_ms, td_xdm_request_t *out,
                         td_err_t *err) TD_MUST_CHECK;
void td_xdm_request_release(td_xdm_request_t *r);
/* Gives every parsed event that has no ECID this one (the device's). */
void td_collect_xdm_set_ecid(td_xdm_request_t *r, const char *ecid);
/* True when s is acceptable as an ECID (1 to 64 letters and digits). */
bool td_collect_ecid_ok(const char *s);

/* The Edge cookies: "kndctr_<org id, '@' as '_'>_<key>". */
void td_collect_kndctr_name(const char *org_id, const char *key, char *out, size_t len);
/* The identity cookie's value: base64url (no padding) of the protobuf
 * message {1: ecid}. Appends it to out. */
void td_collect_kndctr_encode(const char *ecid, td_buf_t *out);
/* Reads the ECID out of an identity cookie value (base64 or base64url,
 * padded or not, protobuf field 1). Returns TD_EINVAL for anything else. */
int td_collect_kndctr_decode(const char *value, char *ecid, size_t ecid_len) TD_MUST_CHECK;

/* The ingest pipeline: a writer thread that takes parsed batches from many
 * request threads, writes them in one transaction (events plus the profile
 * state derived from them), commits, then completes each submission. */
typedef struct td_ingest td_ingest_t;

/* Called on the writer thread once the batch is committed (rc == TD_OK) or
 * has failed (rc < 0, nothing of it stored). seqs[i] is the stored sequence
 * number of slot i (0 for refused slots, and for duplicates of an event_id:
 * then dup[i] is true). */
typedef void (*td_ingest_done_fn)(void *ctx, int rc, const int64_t *seqs, const bool *dup);

/* Called on the writer thread after each commit, with the committed events
 * and their profile ids, for modules that react to events (journeys,
 * recommendation models). Must not block for long. */
typedef void (*td_ingest_listener_fn)(void *ctx, const td_event_t *const *events,
                                      const int64_t *profile_ids, int n);

/* Called on the writer thread INSIDE the transaction that stores the event,
 * once per stored event (not for refused ones or duplicates), after the
 * profile state was derived. Whatever the hook writes through conn commits
 * or rolls back together with the event: journeys enter and exit here, so a
 * crash can never keep an event and lose its effect. A hook returning an
 * error fails the event's whole request (nothing of it is stored). */
typedef int (*td_ingest_tx_hook_fn)(void *ctx, struct td_store_conn *conn, const td_event_t *ev,
                                    int64_t profile_id, int64_t seq, int64_t received_ms);

#define TD_INGEST_MAX_WRITERS 16

typedef struct td_ingest_options {
    int writers;           /* writer threads: 1 for SQLite; more where the database
                              takes concurrent writers (PostgreSQL) */
    int commit_max_events; /* most events in one transaction */
    int viewed_max;        /* recently viewed items kept per profile */
} td_ingest_options_t;

/* Starts the writer thread on its own store connection. */
int td_ingest_open(struct td_store *store, const td_ingest_options_t *opt,
                   td_ingest_t **out) TD_MUST_CHECK;
/* Drains what was submitted, stops the thread and frees everything. */
void td_ingest_close(td_ingest_t *ing);
/* Registers a listener; call before events flow. */
void td_ingest_add_listener(td_ingest_t *ing, td_ingest_listener_fn fn, void *ctx);
/* Registers an in-transaction hook; call before events flow. */
void td_ingest_add_tx_hook(td_ingest_t *ing, td_ingest_tx_hook_fn fn, void *ctx);
/* Queues batch (borrowed until done is called) for writing. Thread-safe.
 * received_ms is the time of arrival stored with each event. */
void td_ingest_submit(td_ingest_t *ing, td_event_batch_t *batch, int64_t received_ms,
                      td_ingest_done_fn done, void *ctx);
/* Writes a batch synchronously on the caller's thread (CLI imports, tests). */
int td_ingest_write_sync(td_ingest_t *ing, td_event_batch_t *batch, int64_t received_ms,
                         int64_t *seqs, bool *dup) TD_MUST_CHECK;

#endif
