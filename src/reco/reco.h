/* The recommendation engine: behaviour models, content similarity, criteria,
 * filters and ranking, over in-memory structures only (no I/O, no clock, no
 * store). The server feeds it events as they are stored and catalog items as
 * they change, and asks it for ranked items; `tandem eval` replays public
 * datasets through the same calls. docs/recommendations.md describes the
 * algorithms (sessions, weighting, the log-likelihood ratio, memory bounds).
 *
 * Pieces:
 *   td_reco_model_t    behaviour: visitor histories, co-occurrence counts per
 *                      lookback window, popularity per window. Thread-safe:
 *                      one writer and many readers (a read-write lock inside;
 *                      every update is visible to the next request).
 *   td_reco_engine_t   holds the current model and swaps in a fully rebuilt
 *                      one atomically (refcounted), replaying the events that
 *                      arrived during the rebuild, so no request ever sees a
 *                      missing or half-built model.
 *   td_reco_content_t  tf-idf index over item text attributes (SIMILARITY);
 *                      a new item is recommendable as soon as it is put.
 *   td_reco_catalog_t  how the engine reads catalog attributes (a struct of
 *                      function pointers the caller fills).
 *   td_reco_criteria_t a parsed, validated criteria (Target's field names).
 *   td_reco_custom_t   CUSTOM criteria lists (key -> items) parsed from CSV.
 *   td_reco_rank()     criteria + request -> ranked items with score and reason.
 */
#ifndef TD_RECO_H
#define TD_RECO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* ------------------------------------------------------------------------
 * Behaviour
 */

typedef enum td_reco_action {
    TD_RECO_VIEW = 0, /* product view */
    TD_RECO_CART = 1, /* cart add (counts as a view for the "viewed" side) */
    TD_RECO_BUY = 2   /* purchase (counts as a view too, and as a purchase) */
} td_reco_action_t;

/* One behavioural event, as the server learns it. Strings are borrowed for
 * the duration of the call. */
typedef struct td_reco_event {
    const char *visitor; /* stable visitor key (e.g. the profile id as text) */
    const char *item;    /* entity id */
    td_reco_action_t action;
    int64_t ts_ms; /* when it happened */
    int64_t seq;   /* store sequence number (> 0), or 0 when unknown; used to
                      replay events that arrived during a rebuild exactly once */
} td_reco_event_t;

/* Lookback windows for collaborative filtering are kept per window; a
 * criteria's daysCount uses the smallest kept window that covers it. */
#define TD_RECO_MAX_CF_WINDOWS 6
/* Popularity is kept for 6 hours and 1, 2, 7, 14, 30 and 61 days. */
#define TD_RECO_N_POP_WINDOWS 7
#define TD_RECO_MAX_DAYS      61

typedef struct td_reco_model_options {
    int max_history;                     /* distinct items per visitor used for co-occurrence
                                            (oldest dropped first; default 200) */
    int max_recent;                      /* recent events kept per visitor for keys such as
                                            last viewed / most viewed (default 100) */
    int max_pairs_per_item;              /* co-occurrence partners kept per item, relation
                                            and window (default 1000); the least frequent
                                            partner is dropped when full */
    int top_k;                           /* neighbours considered per key item (default 200) */
    int64_t session_gap_ms;              /* inactivity that ends a session (default 30 min) */
    int64_t max_visitors;                /* visitors kept; the least recently active are
                                            dropped first (default 1,000,000) */
    int64_t max_fifo;                    /* expiry queue entries kept (default 50,000,000);
                                            past it the oldest events expire early */
    int cf_days[TD_RECO_MAX_CF_WINDOWS]; /* CF windows in days, 1..61 */
    int n_cf_days;                       /* default 1 window: {30} */
} td_reco_model_options_t;

/* Fills o with the defaults above. */
void td_reco_model_options_init(td_reco_model_options_t *o);

typedef struct td_reco_model td_reco_model_t;

/* Creates an empty model (refcount 1). opt may be NULL for the defaults.
 * Returns NULL when opt is out of range (err says which setting). */
td_reco_model_t *td_reco_model_new(const td_reco_model_options_t *opt, td_err_t *err);
/* Takes another reference. Thread-safe. */
td_reco_model_t *td_reco_model_ref(td_reco_model_t *m);
/* Drops a reference; the last one frees the model. NULL is fine. */
void td_reco_model_unref(td_reco_model_t *m);

/* Applies one event: visitor history, co-occurrence in every window the event
 * falls into, popularity. Moves the model's clock to ev->ts_ms when later and
 * expires what left a window. Takes the write lock; the change is visible to
 * the next reader. TD_EINVAL for an empty visitor or item id (or one longer
 * than 512 bytes). */
int td_reco_model_add(td_reco_model_t *m, const td_reco_event_t *ev) TD_MUST_CHECK;
/* Moves the model's clock to now_ms (when later) and expires what left each
 * lookback window. Call it periodically when no events arrive. */
void td_reco_model_advance(td_reco_model_t *m, int64_t now_ms);
/* Highest event seq applied so far (0 if none carried one). */
int64_t td_reco_model_max_seq(td_reco_model_t *m);

typedef struct td_reco_model_stats {
    int64_t now_ms;
    int64_t events, visitors, items;
    int64_t pairs;        /* co-occurrence entries over all windows and relations */
    int64_t fifo;         /* expiry queue length */
    int64_t pair_evicted; /* partners dropped because an item's map was full */
    size_t bytes;         /* approximate memory held */
} td_reco_model_stats_t;
void td_reco_model_stats(td_reco_model_t *m, td_reco_model_stats_t *out);

/* Raw co-occurrence figures of the window that serves `days` (for tests and
 * diagnostics): visitors in the window, visitors who viewed (a) / bought (b)
 * each item, and visitors who did both. relation: 0 viewed-viewed, 1
 * viewed(a)-bought(b), 2 bought-bought. Returns false if an id is unknown. */
typedef struct td_reco_pair_counts {
    int64_t n_visitors;
    int64_t n_a, n_b, n_ab;
} td_reco_pair_counts_t;
bool td_reco_model_pair_counts(td_reco_model_t *m, int days, int relation, const char *a,
                               const char *b, td_reco_pair_counts_t *out);

/* Popularity (sessions in which the item was viewed / bought) in the kept
 * window serving `hours`. Returns 0 for unknown items. */
double td_reco_model_popularity(td_reco_model_t *m, const char *item, bool bought, int hours);

/* Dunning's log-likelihood ratio of a 2x2 contingency table:
 * k11 both, k12 a not b, k21 b not a, k22 neither. Always >= 0. */
double td_reco_llr(double k11, double k12, double k21, double k22);

/* ------------------------------------------------------------------------
 * Engine: the current model, swapped atomically after a full rebuild.
 */

typedef struct td_reco_engine td_reco_engine_t;

/* Takes ownership of model's reference. */
td_reco_engine_t *td_reco_engine_new(td_reco_model_t *model);
void td_reco_engine_free(td_reco_engine_t *e);
/* The current model with a reference you must drop with
 * td_reco_model_unref(). Thread-safe; never NULL. */
td_reco_model_t *td_reco_engine_acquire(td_reco_engine_t *e);
/* Applies an event to the current model; while a rebuild is in progress it is
 * also queued for the new model. Thread-safe. */
int td_reco_engine_add(td_reco_engine_t *e, const td_reco_event_t *ev) TD_MUST_CHECK;
/* Starts a rebuild: returns a new empty model with the current options. Feed
 * it the stored events (in time order) without holding any engine lock, then
 * call td_reco_engine_rebuild_commit(). Only one rebuild at a time:
 * TD_EBUSY otherwise. */
int td_reco_engine_rebuild_begin(td_reco_engine_t *e, td_reco_model_t **fresh) TD_MUST_CHECK;
/* Applies the events queued since _begin whose seq is above the fresh model's
 * highest seq (or that carry no seq), then makes it current. Readers holding
 * the old model keep it until they drop it. Takes ownership of fresh. */
void td_reco_engine_rebuild_commit(td_reco_engine_t *e, td_reco_model_t *fresh);
/* Abandons a rebuild (drops fresh and the queue). */
void td_reco_engine_rebuild_abort(td_reco_engine_t *e, td_reco_model_t *fresh);

/* ------------------------------------------------------------------------
 * Catalog: attributes of items, read through the caller's functions.
 */

typedef struct td_reco_attr {
    const char *name; /* custom attribute name without "entity." ("genre") */
    const char *const *values;
    int n_values; /* multi-valued attributes have several */
} td_reco_attr_t;

/* An item's attributes (Target entity attributes). Pointers are borrowed. */
typedef struct td_reco_item {
    const char *id;
    const char *name;    /* NULL when absent */
    const char *brand;   /* NULL when absent */
    const char *message; /* NULL when absent */
    const char *const *categories;
    int n_categories;
    double value; /* price (entity.value) */
    bool has_value;
    double inventory;
    bool has_inventory;
    double margin;
    bool has_margin;
    const td_reco_attr_t *attrs; /* custom attributes */
    int n_attrs;
} td_reco_item_t;

typedef bool (*td_reco_each_fn)(void *fctx, const char *id); /* false stops */

typedef struct td_reco_catalog {
    void *ctx;
    /* Looks an item up; false when it is not in the catalog (then it is never
     * recommended). What *out points to must stay valid until the
     * td_reco_rank() call that asked returns. Required. */
    bool (*get)(void *ctx, const char *id, td_reco_item_t *out);
    /* Calls fn for each item in category (exact category value). Optional:
     * when NULL the engine scans the popularity lists instead. */
    void (*each_in_category)(void *ctx, const char *category, td_reco_each_fn fn, void *fctx);
} td_reco_catalog_t;

/* ------------------------------------------------------------------------
 * Content similarity (Items with Similar Attributes)
 */

typedef struct td_reco_content td_reco_content_t;

td_reco_content_t *td_reco_content_new(void);
void td_reco_content_free(td_reco_content_t *c);
/* Adds or replaces an item's text: name (words and word pairs), categories,
 * brand, message and string custom attributes. Thread-safe (write lock);
 * the item is a SIMILARITY neighbour for the next request. */
void td_reco_content_put(td_reco_content_t *c, const td_reco_item_t *item);
void td_reco_content_remove(td_reco_content_t *c, const char *id);
int64_t td_reco_content_count(td_reco_content_t *c);

/* ------------------------------------------------------------------------
 * Criteria
 */

typedef enum td_reco_group {
    TD_RECO_GROUP_ITEM,
    TD_RECO_GROUP_CART,
    TD_RECO_GROUP_POPULARITY,
    TD_RECO_GROUP_CATEGORY,
    TD_RECO_GROUP_RECENT,
    TD_RECO_GROUP_USERHISTORY,
    TD_RECO_GROUP_PROFILEATTRIBUTE,
    TD_RECO_GROUP_CUSTOM,
    TD_RECO_GROUP_SEQUENCE
} td_reco_group_t;

typedef enum td_reco_algo {
    TD_RECO_ALGO_VIEWED_CF,
    TD_RECO_ALGO_VIEWED_BOUGHT,
    TD_RECO_ALGO_BOUGHT_CF,
    TD_RECO_ALGO_SIMILARITY,
    TD_RECO_ALGO_SITE_AFFINITY,
    TD_RECO_ALGO_MOST_VIEWED,
    TD_RECO_ALGO_TOP_SELLERS,
    TD_RECO_ALGO_RECENTLY_VIEWED,
    TD_RECO_ALGO_RECOMMENDED_FOR_YOU,
    TD_RECO_ALGO_CUSTOM,
    TD_RECO_ALGO_ABANDONED_CART,
    TD_RECO_ALGO_SEQUENCE
} td_reco_algo_t;

typedef enum td_reco_key {
    TD_RECO_KEY_NONE,
    TD_RECO_KEY_CURRENT_ITEM,
    TD_RECO_KEY_CURRENT_CATEGORY,
    TD_RECO_KEY_FAVORITE_CATEGORY,
    TD_RECO_KEY_LAST_VIEWED,
    TD_RECO_KEY_LAST_PURCHASED,
    TD_RECO_KEY_MOST_VIEWED,
    TD_RECO_KEY_PROFILE_ATTRIBUTE,
    TD_RECO_KEY_CART
} td_reco_key_t;

/* How behavioural neighbours are scored and merged across keys. */
typedef enum td_reco_metric {
    TD_RECO_METRIC_LLR,    /* log-likelihood ratio (Target's item-item default) */
    TD_RECO_METRIC_COSINE, /* k11 / sqrt(n_a n_b) */
    TD_RECO_METRIC_L2      /* 1 / (1 + |a/|a| - b/|b||) on binary vectors */
} td_reco_metric_t;

typedef enum td_reco_op {
    TD_RECO_OP_EQUALS,
    TD_RECO_OP_NOT_EQUALS,
    TD_RECO_OP_CONTAINS,
    TD_RECO_OP_NOT_CONTAINS,
    TD_RECO_OP_STARTS_WITH,
    TD_RECO_OP_ENDS_WITH,
    TD_RECO_OP_GTE,
    TD_RECO_OP_LTE,
    TD_RECO_OP_BETWEEN,
    TD_RECO_OP_IN_LIST,
    TD_RECO_OP_NOT_IN_LIST,
    TD_RECO_OP_PRESENT,
    TD_RECO_OP_NOT_PRESENT
} td_reco_op_t;

typedef enum td_reco_source {
    TD_RECO_SRC_STATIC,   /* values in the rule */
    TD_RECO_SRC_KEY_ITEM, /* entity attribute matching: the key item's attribute */
    TD_RECO_SRC_PROFILE,  /* profile attribute matching */
    TD_RECO_SRC_PARAMETER /* parameter matching: a request parameter */
} td_reco_source_t;

typedef enum td_reco_if_empty {
    TD_RECO_EMPTY_IGNORE,     /* ignore the rule (default for profile/parameter) */
    TD_RECO_EMPTY_NO_RESULTS, /* the criteria returns nothing (default for key item) */
    TD_RECO_EMPTY_STATIC      /* use the rule's static values */
} td_reco_if_empty_t;

/* One inclusion rule: the candidate's `attribute` compared with `op` against
 * values (static or taken from the source). A rule holds if any value
 * matches (OR); rules combine with AND. */
typedef struct td_reco_rule {
    char *attribute; /* "id", "name", "categoryId", "brand", "value",
                        "inventory", "margin", "message" or a custom name */
    td_reco_op_t op;
    td_reco_source_t source;
    char *source_attribute; /* attribute / profile key / parameter name */
    char **values;
    int n_values;
    double min, max; /* BETWEEN: bounds; with a dynamic source, percent of the
                        source value (90, 110 = within -10%..+10%) */
    td_reco_if_empty_t if_empty;
} td_reco_rule_t;

typedef struct td_reco_rules {
    td_reco_rule_t *rules;
    int n;
} td_reco_rules_t;

/* Items shown in front or back slots regardless of the criteria. */
typedef struct td_reco_promotion {
    char **ids; /* promote these items, in order */
    int n_ids;
    td_reco_rules_t rules; /* or: promote popular items matching these */
    int slots;             /* slots taken (default: n_ids, or 1 for rules) */
} td_reco_promotion_t;

typedef struct td_reco_attr_weight {
    char *attribute; /* "name", "categoryId", "brand", "message" or custom */
    double weight;   /* 0 ignores the attribute; default 1 */
} td_reco_attr_weight_t;

typedef struct td_reco_criteria td_reco_criteria_t;

typedef struct td_reco_sequence_step {
    td_reco_criteria_t *criteria;
    int slots;
} td_reco_sequence_step_t;

#define TD_RECO_MAX_SEQUENCE 5

struct td_reco_criteria {
    char *id;   /* "id" (optional) */
    char *name; /* "name" (optional) */
    td_reco_group_t group;
    td_reco_algo_t algo;
    td_reco_key_t key;
    char *key_attribute; /* PROFILE_ATTRIBUTE key: profile attribute name */
    char *group_by;      /* popularity by item attribute ("brand") */
    int days;            /* daysCount, 1..61 (default 30) */
    int hours;           /* lookback in hours: days * 24, or 6 */
    td_reco_metric_t metric;
    bool metric_set;       /* "similarityMetric" given */
    double min_similarity; /* SIMILARITY: cosine floor (0..1) */
    td_reco_attr_weight_t *attr_weights;
    int n_attr_weights;
    double min_llr; /* SITE_AFFINITY: from "confidence" */
    td_reco_rules_t inclusion;
    bool has_price_min, has_price_max;
    double price_min, price_max;
    bool has_min_inventory;
    double min_inventory;
    bool exclude_purchases; /* default true (Target: previously purchased items are not recommended)
                             */
    bool exclude_views;     /* default false */
    bool partial_design_allowed;
    bool backup_disabled;
    bool backup_inclusion;    /* apply inclusion rules to backups (default true) */
    bool similarity_fallback; /* behavioural criteria fill with SIMILARITY (default true) */
    char *custom_id;          /* CUSTOM: which uploaded list set */
    int max_viewed_keys;      /* USERHISTORY: last N unique viewed (default 5) */
    int max_purchased_keys;   /* USERHISTORY: last N unique purchased (default 5) */
    double purchase_weight;   /* USERHISTORY: weight of purchased keys (default 2) */
    int max_cart_keys;        /* CART: first N cart items (default 10) */
    td_reco_promotion_t front, back;
    td_reco_sequence_step_t steps[TD_RECO_MAX_SEQUENCE];
    int n_steps;
};

/* Returns the JSON text of a stored criteria named id (you own it,
 * free(3)), or NULL when there is none. Used for sequence steps given as
 * {"criteriaId": "..."}. */
typedef char *(*td_reco_criteria_resolve_fn)(void *ctx, const char *id);

/* Parses and validates a criteria JSON document (Target's field names:
 * criteriaGroup, type, key, daysCount, inclusionRules, priceRange,
 * minInventory, excludePurchases, excludeViews, partialDesignAllowed,
 * backupDisabled, ...; docs/recommendations.md lists them all). Unknown
 * fields are refused. On TD_EINVAL err->path is the JSON pointer of the
 * offending field. resolve may be NULL (then sequence steps must be inline).
 * You own *out: td_reco_criteria_free(). */
int td_reco_criteria_parse(const char *json, size_t len, td_reco_criteria_resolve_fn resolve,
                           void *resolve_ctx, td_reco_criteria_t **out,
                           td_err_t *err) TD_MUST_CHECK;
void td_reco_criteria_free(td_reco_criteria_t *c);

/* Parses a JSON array of inclusion rules (also used for collections and
 * global exclusions); err->path points into that array. */
int td_reco_rules_parse(const char *json, size_t len, td_reco_rules_t *out,
                        td_err_t *err) TD_MUST_CHECK;
void td_reco_rules_release(td_reco_rules_t *r);

/* Names for reasons and logs ("VIEWED_CF", "CURRENT_ITEM", ...). */
const char *td_reco_algo_name(td_reco_algo_t a);
const char *td_reco_key_name(td_reco_key_t k);
const char *td_reco_group_name(td_reco_group_t g);

/* ------------------------------------------------------------------------
 * CUSTOM criteria: key -> items, uploaded as CSV text
 */

typedef struct td_reco_custom td_reco_custom_t;

/* Parses CSV text: lines "key,item1,item2,..." (up to 1,000 items a row, in
 * order of preference); lines starting with "##" (Target's "## RECS" header
 * lines) and a first row starting with "key" are skipped; RFC 4180 quoting.
 * A later row for the same key replaces the earlier one. On TD_EINVAL err
 * has the line and column. You own *out: td_reco_custom_free(). */
int td_reco_custom_parse(const char *csv, size_t len, td_reco_custom_t **out,
                         td_err_t *err) TD_MUST_CHECK;
void td_reco_custom_free(td_reco_custom_t *c);
/* The items for key (borrowed), or NULL with *n = 0. */
const char *const *td_reco_custom_get(const td_reco_custom_t *c, const char *key, int *n);
int td_reco_custom_count(const td_reco_custom_t *c);

/* ------------------------------------------------------------------------
 * Ranking
 */

/* One event of the visitor's own history, as the profile has it. */
typedef struct td_reco_hist {
    const char *item;
    td_reco_action_t action;
    int64_t ts_ms;
} td_reco_hist_t;

typedef struct td_reco_kv {
    const char *name; /* profile attribute ("favoriteBrand") or request parameter */
    const char *value;
} td_reco_kv_t;

typedef struct td_reco_cart_line {
    const char *id;
    int64_t quantity;
} td_reco_cart_line_t;

typedef struct td_reco_request {
    int count;                       /* slots to fill (1..1000) */
    int64_t now_ms;                  /* request time */
    const char *visitor;             /* model visitor key; NULL for anonymous */
    const char *key_item;            /* entity.id (current item) */
    const char *key_category;        /* entity.categoryId (current category) */
    const td_reco_cart_line_t *cart; /* cartIds, or the profile's cart */
    int n_cart;
    /* The visitor's events in any order. NULL: the model's own recent
     * history of `visitor` is used. */
    const td_reco_hist_t *history;
    int n_history;
    const td_reco_kv_t *profile; /* profile attributes */
    int n_profile;
    const td_reco_kv_t *params; /* request (mbox) parameters */
    int n_params;
    const char *const *exclude_ids; /* excludedIds */
    int n_exclude;
    const td_reco_rules_t *collection; /* items must match (AND); NULL: all */
} td_reco_request_t;

typedef struct td_reco_custom_set {
    /* Returns the CUSTOM lists uploaded under id, or NULL. */
    const td_reco_custom_t *(*get)(void *ctx, const char *id);
    void *ctx;
} td_reco_custom_set_t;

/* What ranking reads. Only catalog is required. */
typedef struct td_reco_env {
    td_reco_model_t *model;           /* behaviour; NULL: none yet */
    td_reco_content_t *content;       /* SIMILARITY index; NULL: none */
    const td_reco_catalog_t *catalog; /* required */
    td_reco_custom_set_t custom;
    /* Global exclusions: never recommend these ids, nor items matching any
     * of the rules (each rule on its own excludes; inventory rules treat a
     * missing inventory as matching, as Target does). */
    const char *const *excluded_ids;
    int n_excluded_ids;
    const td_reco_rules_t *exclusion_rules;
} td_reco_env_t;

typedef enum td_reco_slot_source {
    TD_RECO_FROM_CRITERIA,
    TD_RECO_FROM_SIMILARITY_FALLBACK,
    TD_RECO_FROM_PROMOTION_FRONT,
    TD_RECO_FROM_PROMOTION_BACK,
    TD_RECO_FROM_BACKUP
} td_reco_slot_source_t;

typedef struct td_reco_result_item {
    char *id;
    double score;
    char *reason; /* "VIEWED_CF of C-101", "backup: MOST_VIEWED", ... */
    td_reco_slot_source_t source;
    int step;         /* SEQUENCE: 0-based step that produced it; else 0 */
    int64_t quantity; /* ABANDONED_CART: quantity in the cart; else 0 */
} td_reco_result_item_t;

typedef struct td_reco_result {
    td_reco_result_item_t *items;
    int n;
    bool rendered; /* false: show default content (partial design not
                      allowed and the slots could not be filled) */
    int n_from_criteria;
    int n_from_backup;
    char key[128]; /* the key used ("C-101", "Men:Coats", ""), for logs */
} td_reco_result_t;

/* Ranks items for req under criteria c. Reads the model and content index
 * under their read locks (safe while events arrive). Fills out (release it
 * with td_reco_result_release() in every case). TD_EINVAL when req is
 * malformed (err says which field). A criteria whose key cannot be resolved
 * (no current item, empty history) is not an error: it yields backups or
 * nothing, as Target does. */
int td_reco_rank(const td_reco_env_t *env, const td_reco_criteria_t *c,
                 const td_reco_request_t *req, td_reco_result_t *out, td_err_t *err) TD_MUST_CHECK;
void td_reco_result_release(td_reco_result_t *r);

#endif
