/* The product catalog: entities with Adobe Target's attributes, the feed
 * parsers (Target Recommendations CSV, Google Merchant XML and TSV, Target
 * Entities API JSON), the import driver that writes a feed to the store in
 * one transaction, the function that turns `entity.*` request parameters
 * into a catalog update, and the in-memory index the recommendation engine
 * reads.
 *
 * Parsers are pure: they pull text through a read callback and hand each
 * parsed entity (or a rejected row with its line, column and reason) to the
 * caller; they do no I/O of their own and keep at most one row in memory.
 *
 * Update semantics (the same for every source, and documented in README):
 *   - upsert (default): fields a row carries overwrite the stored ones;
 *     empty cells and absent fields leave them unchanged (as in Target: a
 *     blank cannot overwrite a value); categories are appended, as Target
 *     appends categoryId; a JSON null clears a field;
 *   - replace: each row replaces its whole entity, and entities missing from
 *     the feed are deleted (or marked out of stock: inventory 0). */
#ifndef TD_CATALOG_H
#define TD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct td_store;
struct td_store_conn;

/* Limits on what one entity may hold; rows over them are rejected. */
#define TD_CATALOG_MAX_ID         1000      /* bytes in entity.id */
#define TD_CATALOG_MAX_VALUE      65536     /* bytes in any one text value */
#define TD_CATALOG_MAX_ATTRS      100       /* custom attributes per entity (as Target) */
#define TD_CATALOG_MAX_LIST       1000      /* values in one multi-value attribute */
#define TD_CATALOG_MAX_CATEGORIES 100       /* categories per entity */
#define TD_CATALOG_MAX_NAME       255       /* bytes in an attribute or column name */
#define TD_CATALOG_MAX_RECORD     (8 << 20) /* bytes in one feed row, XML item or JSON entity */
#define TD_CATALOG_EXPIRY_DAYS    61        /* Target's default */

/* ------------------------------------------------------------------------ */
/* Entities */

typedef enum {
    TD_ATTR_STRING = 1,
    TD_ATTR_NUMBER,
    TD_ATTR_LIST, /* a JSON array of strings in feeds */
    TD_ATTR_NULL  /* only in partial updates: remove the attribute */
} td_attr_type_t;

/* A custom attribute. The value is one of a union (attributes are most of
 * an entity's size in a million-entity index): read the member type says. */
typedef struct td_attr {
    char *name;
    td_attr_type_t type;
    int n_list; /* TD_ATTR_LIST; 0 otherwise */
    union {
        char *str;   /* TD_ATTR_STRING */
        double num;  /* TD_ATTR_NUMBER */
        char **list; /* TD_ATTR_LIST */
    };
} td_attr_t;

/* Bits of td_entity_t.has (the field carries a value) and .clear (a partial
 * update removes the field). */
enum {
    TD_ENTITY_NAME = 1 << 0,
    TD_ENTITY_CATEGORIES = 1 << 1,
    TD_ENTITY_BRAND = 1 << 2,
    TD_ENTITY_PAGE_URL = 1 << 3,
    TD_ENTITY_THUMBNAIL_URL = 1 << 4,
    TD_ENTITY_VALUE = 1 << 5,
    TD_ENTITY_INVENTORY = 1 << 6,
    TD_ENTITY_MARGIN = 1 << 7,
    TD_ENTITY_MESSAGE = 1 << 8,
    TD_ENTITY_ENVIRONMENT = 1 << 9
};

/* An entity (a product, article, ...) as Target knows it. A value struct:
 * initialise with TD_ENTITY_INIT, free the contents with td_entity_release().
 * Entities held by the index are packed into one block (td_entity_pack) and
 * reference-counted; never release those, unref them. */
typedef struct td_entity {
    char *id; /* required; 1..TD_CATALOG_MAX_ID bytes of UTF-8 */
    char *name;
    char **categories; /* "Men:Coats" style names; no duplicates */
    int n_categories;
    char *brand;
    char *page_url;
    char *thumbnail_url;
    char *message;
    double value; /* price */
    double inventory;
    double margin;
    int64_t environment; /* Target environment id; 0 = all */
    unsigned has;        /* TD_ENTITY_* bits */
    unsigned clear;      /* TD_ENTITY_* bits; partial updates only */
    td_attr_t *attrs;    /* custom attributes, in the order first set */
    int n_attrs;
    int64_t updated_ms; /* last update; expiry counts from here */
    /* managed by td_entity_pack and the index */
    int refs_;
    uint32_t ordinal_;
    bool packed_;
} td_entity_t;

#define TD_ENTITY_INIT \
    {                  \
        0              \
    }

void td_entity_release(td_entity_t *e);
/* Moves the contents of src into dst (released first); src is left empty. */
void td_entity_move(td_entity_t *dst, td_entity_t *src);
/* A deep, unpacked copy; release it with td_entity_release(). */
void td_entity_copy(td_entity_t *dst, const td_entity_t *src);

/* Setters used by the parsers: copy len bytes of s. */
void td_entity_set_str(td_entity_t *e, unsigned field, const char *s, size_t len);
void td_entity_add_category(td_entity_t *e, const char *s, size_t len);
/* Adds or replaces a custom attribute; returns it (name copied). */
td_attr_t *td_entity_set_attr(td_entity_t *e, const char *name, size_t name_len);
const td_attr_t *td_entity_attr(const td_entity_t *e, const char *name);
void td_attr_release(td_attr_t *a);

/* The name of a standard field bit ("name", "value", ...) as used in the
 * Entities API's attributes{}, and back. */
const char *td_entity_field_name(unsigned field);
unsigned td_entity_field_by_name(const char *name, size_t len);

/* Applies the partial update src onto dst: fields in src->has overwrite,
 * fields in src->clear are removed, attributes of type TD_ATTR_NULL are
 * removed, categories are appended (deduplicated; the oldest are dropped
 * past TD_CATALOG_MAX_CATEGORIES) when append_categories, else replaced.
 * Returns TD_ETOOBIG (err says why) when dst would get more than
 * TD_CATALOG_MAX_ATTRS attributes; dst is then unchanged. */
int td_entity_merge(td_entity_t *dst, const td_entity_t *src, bool append_categories,
                    td_err_t *err) TD_MUST_CHECK;
/* True when a and b hold the same values (updated_ms not compared). */
bool td_entity_equal(const td_entity_t *a, const td_entity_t *b);

/* A packed, reference-counted copy (one allocation; refs = 1). */
td_entity_t *td_entity_pack(const td_entity_t *src);
/* For packed entities: take or drop a reference. Thread-safe. */
const td_entity_t *td_entity_ref(const td_entity_t *e);
void td_entity_unref(const td_entity_t *e);

/* Expiry: an entity not updated for expiry_ms is expired at now_ms. */
static inline bool td_entity_expired(const td_entity_t *e, int64_t now_ms, int64_t expiry_ms)
{
    return expiry_ms > 0 && now_ms >= e->updated_ms + expiry_ms;
}

/* JSON in the Entities API's shape:
 *   {"id", "name", "categories": [..], "environment",
 *    "attributes": {"value", "inventory", "margin", "message", "pageUrl",
 *                   "thumbnailUrl", "brand", custom...}}
 * plus "updated", "expires" and "expired" when expiry_ms > 0. Appends to b. */
struct td_buf;
void td_entity_to_json(const td_entity_t *e, int64_t now_ms, int64_t expiry_ms, struct td_buf *b);

/* Parses one entity of the Entities API shape (the body of PUT
 * /v1/entities/{id}, one element of an import). Unknown top-level fields are
 * refused; attributes may be strings, numbers, booleans (kept as "true" /
 * "false"), arrays of scalars (kept as strings) or null (clears). path
 * prefixes the JSON pointer in errors. */
int td_entity_from_json(const char *text, size_t len, const char *path, td_entity_t *out,
                        td_err_t *err) TD_MUST_CHECK;

/* Checks the limits above; path/line/column go into err. */
int td_entity_validate(const td_entity_t *e, td_err_t *err) TD_MUST_CHECK;

/* ------------------------------------------------------------------------ */
/* Feeds */

typedef enum {
    TD_FEED_TARGET_CSV = 1,
    TD_FEED_GOOGLE_XML,
    TD_FEED_GOOGLE_TSV,
    TD_FEED_JSON
} td_feed_format_t;

/* "target-csv", "google-xml", "google-tsv", "json"; 0 when unknown. */
td_feed_format_t td_feed_format_parse(const char *name);
const char *td_feed_format_name(td_feed_format_t f);
/* Guesses from a file name's extension (.csv .xml .rss .atom .tsv .txt
 * .json); 0 when it cannot tell. */
td_feed_format_t td_feed_format_guess(const char *path);

/* Fills buf with up to cap bytes; returns the count, 0 at the end, or a
 * negative TD_E* code on a read failure. */
typedef long (*td_feed_read_fn)(void *ctx, char *buf, size_t cap);
/* A td_feed_read_fn over a buffer (ctx: a td_feed_mem_t), at most chunk
 * bytes per call (0: as much as asked). */
typedef struct td_feed_mem {
    const char *data;
    size_t len, pos, chunk;
} td_feed_mem_t;
long td_feed_read_mem(void *ctx, char *buf, size_t cap);

typedef struct td_feed_sink {
    /* A parsed entity, starting at line. The sink may take the contents with
     * td_entity_move(); what is left is released by the parser. Returning
     * anything but TD_OK stops the parse with that code. */
    int (*entity)(void *ctx, td_entity_t *e, int line);
    /* A rejected row: err has line, column (the 1-based field number in CSV
     * and TSV), path (the column or attribute) and the reason. */
    void (*reject)(void *ctx, const td_err_t *err);
} td_feed_sink_t;

/* Parses a whole feed, pulling it through read in chunks. Returns TD_OK
 * when the feed was read to its end (rows may have been rejected), or
 * TD_EINVAL / TD_ETOOBIG for a feed that cannot be read as a whole (no
 * header row, malformed XML, a row over TD_CATALOG_MAX_RECORD...) with err
 * saying where; entities already handed to the sink must then be thrown
 * away by the caller (the import driver rolls back). */
int td_feed_parse(td_feed_format_t fmt, td_feed_read_fn read, void *read_ctx,
                  const td_feed_sink_t *sink, void *sink_ctx, td_err_t *err) TD_MUST_CHECK;

/* The same over a buffer, handed to the parser chunk bytes at a time
 * (chunk 0 = as much as the parser asks); tests use small chunks to cross
 * every boundary. */
int td_feed_parse_mem(td_feed_format_t fmt, const char *data, size_t len, size_t chunk,
                      const td_feed_sink_t *sink, void *sink_ctx, td_err_t *err) TD_MUST_CHECK;

/* ------------------------------------------------------------------------ */
/* The in-memory index */

/* An index of every stored entity, by id, by category and by attribute
 * value, kept current by every write of this process (at commit) and by a
 * poller that applies writes made by other processes (tandem import while
 * a server runs). Many readers and one writer: readers never see a
 * half-applied import, because a write batch is applied under the write
 * lock as a whole. */
typedef struct td_catalog td_catalog_t;

/* expiry_ms: how long an entity lives without an update (0 = forever). */
td_catalog_t *td_catalog_new(int64_t expiry_ms);
/* Stops the poller and frees everything (entities still referenced by
 * readers stay valid until unref'd). */
void td_catalog_free(td_catalog_t *cat);
int64_t td_catalog_expiry_ms(const td_catalog_t *cat);

/* (Re)builds the index from the store. */
int td_catalog_load(td_catalog_t *cat, struct td_store *st) TD_MUST_CHECK;
/* Applies changes other processes committed since the last load or sync.
 * Cheap when there are none (one small query). */
int td_catalog_sync(td_catalog_t *cat, struct td_store *st) TD_MUST_CHECK;
/* Runs td_catalog_sync every interval_ms on a thread of its own, until
 * td_catalog_free. */
void td_catalog_sync_start(td_catalog_t *cat, struct td_store *st, int interval_ms);

/* Bumped by every applied write; a reader that cached something derived
 * from the catalog compares versions to know it is stale. */
uint64_t td_catalog_version(const td_catalog_t *cat);
/* Entities held (expired ones included). */
size_t td_catalog_size(td_catalog_t *cat);

/* The entity with this id, as a new reference (td_entity_unref it), or NULL. */
const td_entity_t *td_catalog_get(td_catalog_t *cat, const char *id);

/* Visits entities under the read lock; visit returns false to stop. The
 * entity pointers are borrowed for the call (td_entity_ref to keep one).
 * Visits must be quick and must not write to the catalog. Entities expired
 * at now_ms are skipped (now_ms = 0 visits them too). Order: stable for the
 * life of the process (insertion order, with reuse of freed places).
 * Returns the number visited. */
typedef bool (*td_catalog_visit_fn)(void *ctx, const td_entity_t *e);
size_t td_catalog_foreach(td_catalog_t *cat, int64_t now_ms, td_catalog_visit_fn visit, void *ctx);
size_t td_catalog_foreach_in_category(td_catalog_t *cat, const char *category, int64_t now_ms,
                                      td_catalog_visit_fn visit, void *ctx);
/* Items whose attribute name has value (brand, or a custom string
 * attribute, or one of a multi-value attribute's values; values longer than
 * TD_CATALOG_INDEX_MAX_VALUE bytes and numbers are not indexed). */
#define TD_CATALOG_INDEX_MAX_VALUE 64
size_t td_catalog_foreach_with_attr(td_catalog_t *cat, const char *name, const char *value,
                                    int64_t now_ms, td_catalog_visit_fn visit, void *ctx);
/* Paging for the API: visits up to limit entities starting at position
 * *cursor (0 = the start) and sets *cursor to where the next page starts,
 * or to 0 when there are no more. category / brand may be NULL. */
size_t td_catalog_page(td_catalog_t *cat, const char *category, const char *brand, int64_t now_ms,
                       uint64_t *cursor, size_t limit, td_catalog_visit_fn visit, void *ctx);

/* A batch of index changes, applied atomically by td_catalog_apply. */
typedef struct td_catalog_batch td_catalog_batch_t;
td_catalog_batch_t *td_catalog_batch_new(void);
void td_catalog_batch_free(td_catalog_batch_t *b);
/* Takes over the packed entity e (one reference). */
void td_catalog_batch_put(td_catalog_batch_t *b, td_entity_t *e);
void td_catalog_batch_delete(td_catalog_batch_t *b, const char *id);
/* The entity put last in b with this id, or NULL (borrowed). */
const td_entity_t *td_catalog_batch_get(const td_catalog_batch_t *b, const char *id);
size_t td_catalog_batch_size(const td_catalog_batch_t *b);
/* Applies and empties b, and bumps the version. */
void td_catalog_apply(td_catalog_t *cat, td_catalog_batch_t *b);

/* ------------------------------------------------------------------------ */
/* Imports and writes */

typedef enum {
    TD_IMPORT_UPSERT = 0,
    TD_IMPORT_REPLACE /* the feed is the whole catalog */
} td_import_mode_t;

typedef enum {
    TD_MISSING_DELETE = 0,  /* replace: entities missing from the feed are deleted */
    TD_MISSING_OUT_OF_STOCK /* ... or kept with inventory 0 */
} td_import_missing_t;

typedef struct td_import_options {
    td_feed_format_t format;
    td_import_mode_t mode;
    td_import_missing_t missing;
    int64_t environment; /* given to entities without one; replace only
                            touches this environment's entities when != 0 */
    int64_t now_ms;      /* the update time stamped on each entity */
    int max_errors;      /* rejected rows kept in the result (all are counted); 0 = 1000 */
    /* Called about every 10,000 rows and at the end (may be NULL). */
    void (*progress)(void *ctx, int64_t rows);
    void *progress_ctx;
} td_import_options_t;

typedef struct td_import_result {
    int64_t rows; /* entities read, rejected ones included */
    int64_t inserted, updated, unchanged, rejected;
    int64_t deleted;      /* replace mode */
    int64_t out_of_stock; /* replace mode with TD_MISSING_OUT_OF_STOCK */
    td_err_t *errors;     /* the first max_errors rejections */
    int n_errors;
    uint64_t version; /* the catalog version after the import */
} td_import_result_t;

void td_import_result_release(td_import_result_t *r);

/* Imports a feed: parses it, writes every accepted entity to the store in
 * one transaction (an interrupted import leaves nothing behind), then
 * applies the changes to cat at once. Rejected rows are counted and
 * reported in res; the others are imported. Returns TD_OK, or the parse's
 * fatal error (nothing imported; err says where), or a store error.
 * Release res in every case (it lists the rows rejected before a failure).
 * Serialised with every other catalog write of this process. */
int td_catalog_import(td_catalog_t *cat, struct td_store *st, const td_import_options_t *opt,
                      td_feed_read_fn read, void *read_ctx, td_import_result_t *res,
                      td_err_t *err) TD_MUST_CHECK;

/* PUT /v1/entities/{id}: stores e as the whole entity (updated_ms = now_ms).
 * *created tells whether it was new. */
int td_catalog_put(td_catalog_t *cat, struct td_store *st, const td_entity_t *e, int64_t now_ms,
                   bool *created, td_err_t *err) TD_MUST_CHECK;
/* Deletes one entity; TD_ENOTFOUND when there is none. */
int td_catalog_delete(td_catalog_t *cat, struct td_store *st, const char *id,
                      int64_t now_ms) TD_MUST_CHECK;
/* Deletes every entity expired at now_ms; *n tells how many. */
int td_catalog_purge_expired(td_catalog_t *cat, struct td_store *st, int64_t now_ms,
                             int64_t *n) TD_MUST_CHECK;

/* ------------------------------------------------------------------------ */
/* Entity parameters of recommendation requests (Target's mbox / Delivery API
 * parameters entity.id, entity.name, entity.categoryId, entity.message,
 * entity.thumbnailUrl, entity.value, entity.pageUrl, entity.inventory,
 * entity.margin, entity.brand, entity.<custom>, entity.event.detailsOnly). */

typedef struct td_kv {
    const char *key;
    const char *value;
} td_kv_t;

typedef struct td_params_result {
    bool has_entity;     /* an entity.id was given */
    bool counts_as_view; /* false with entity.event.detailsOnly=true */
    bool written;        /* the catalog was changed (or its expiry refreshed) */
    bool created;
} td_params_result_t;

/* Pure: builds the partial entity the parameters describe. Returns
 * TD_ENOTFOUND when there is no entity.id (nothing to do), TD_EINVAL for a
 * bad value (err.path names the parameter). */
int td_catalog_params_parse(const td_kv_t *params, size_t n, td_entity_t *out, bool *details_only,
                            td_err_t *err) TD_MUST_CHECK;

/* Upserts the entity the parameters describe (categories appended, as in
 * Target), unless ignore is set (the server's entity_params = ignore): then
 * only res->has_entity and res->counts_as_view are filled. A request that
 * changes nothing and comes within a day of the last update is not written
 * (no write per page view); a later one refreshes the expiry. */
int td_catalog_update_from_params(td_catalog_t *cat, struct td_store *st, const td_kv_t *params,
                                  size_t n, int64_t now_ms, bool ignore, td_params_result_t *res,
                                  td_err_t *err) TD_MUST_CHECK;

#endif
