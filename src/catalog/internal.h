/* Shared by the catalog's files: text helpers for the parsers, the
 * conversion between entities and store rows, and each parser's entry. */
#ifndef TD_CATALOG_INTERNAL_H
#define TD_CATALOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog/catalog.h"
#include "store/store.h"
#include "util/buf.h"

/* True when s[0..len) is valid UTF-8 without NUL bytes; else *bad_at is the
 * offset of the first bad byte. */
bool td_catalog__utf8_valid(const char *s, size_t len, size_t *bad_at);
/* Strips ASCII spaces, tabs, CR and LF at both ends. */
void td_catalog__trim(const char **s, size_t *len);
bool td_catalog__blank(const char *s, size_t len);
/* A number as feeds write it: "12", "-3.5", "1e3"; no thousands separator,
 * no currency, finite. */
bool td_catalog__parse_number(const char *s, size_t len, double *out);
/* Explains why text is not a number, for error messages ("use a dot..."). */
const char *td_catalog__number_hint(const char *s, size_t len);

/* Sets custom attribute name from feed text: a JSON array becomes a
 * multi-value attribute, a plain decimal number ("12", "9.25", not "007")
 * a number, anything else a string. Returns TD_ETOOBIG (err filled) past
 * TD_CATALOG_MAX_ATTRS or TD_CATALOG_MAX_LIST. */
int td_catalog__set_attr_text(td_entity_t *e, const char *name, size_t name_len, const char *v,
                              size_t len, td_err_t *err);
/* Adds categories from feed text: a JSON array of strings, or a
 * comma-separated list. TD_ETOOBIG past TD_CATALOG_MAX_CATEGORIES. */
int td_catalog__add_categories_text(td_entity_t *e, const char *v, size_t len, td_err_t *err);

/* Store rows. cats and attrs hold the JSON text the row points at. */
void td_catalog__to_row(const td_entity_t *e, int64_t seq, td_buf_t *cats, td_buf_t *attrs,
                        td_store_entity_t *row);
int td_catalog__from_row(const td_store_entity_t *row, td_entity_t *out) TD_MUST_CHECK;

/* Delimited text (dsv.c): libcsv underneath, plus what feeds need around
 * it: a UTF-8 BOM, the line where each record starts, Target's "## RECS"
 * lines, and bounded memory. */
typedef struct td_dsv_record {
    char **cells; /* NUL-terminated; CRLF inside quoted values becomes LF */
    size_t *lens;
    int n;        /* cells kept (at most TD_DSV_MAX_CELLS) */
    int n_total;  /* cells in the record */
    bool too_big; /* over TD_CATALOG_MAX_RECORD bytes: cells were dropped */
    int line;     /* where the record starts */
} td_dsv_record_t;

#define TD_DSV_MAX_CELLS 4096

typedef struct td_dsv_handler {
    char delim;
    bool recs_lines; /* Target CSV: "## RECS" lines are comments or the header */
    /* A record; returns TD_OK, or a code that stops the parse (err filled). */
    int (*record)(void *ctx, const td_dsv_record_t *r, td_err_t *err);
    /* A "## RECS" line: the text after the prefix, line end removed. */
    int (*recs_line)(void *ctx, const char *text, size_t len, int line, td_err_t *err);
} td_dsv_handler_t;

int td_catalog__dsv_parse(const td_dsv_handler_t *h, void *ctx, td_feed_read_fn read, void *rctx,
                          td_err_t *err);
/* Splits one line into cells (the "## RECS" header row); release with
 * td_catalog__dsv_record_release. */
void td_catalog__dsv_split(char delim, const char *text, size_t len, td_dsv_record_t *out);
void td_catalog__dsv_record_release(td_dsv_record_t *r);

/* The parsers (see td_feed_parse). */
int td_catalog__parse_target_csv(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink,
                                 void *sctx, td_err_t *err);
int td_catalog__parse_google_tsv(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink,
                                 void *sctx, td_err_t *err);
int td_catalog__parse_google_xml(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink,
                                 void *sctx, td_err_t *err);
int td_catalog__parse_json(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink, void *sctx,
                           td_err_t *err);

/* Google product data attributes onto an entity (shared by XML and TSV):
 * name is the attribute without its "g:" prefix; values of a repeated
 * attribute arrive one call each. Returns TD_OK, or TD_EINVAL / TD_ETOOBIG
 * with err.message saying why (the caller adds line and column). */
int td_catalog__google_set(td_entity_t *e, const char *name, const char *v, size_t len,
                           td_err_t *err);
/* Ends an item: checks the id and applies what needs the whole item. */
int td_catalog__google_finish(td_entity_t *e, td_err_t *err);

/* Writer side of the index, for import.c. */
/* Serialises writers of one catalog (held across store transaction and
 * index update). */
void td_catalog__write_lock(td_catalog_t *cat);
void td_catalog__write_unlock(td_catalog_t *cat);
/* The entity in the index, borrowed; only for the holder of the write lock. */
const td_entity_t *td_catalog__peek(td_catalog_t *cat, const char *id);
/* The store sequence number the index reflects; write lock holders only. */
int64_t td_catalog__seen_seq(td_catalog_t *cat);
void td_catalog__set_seen_seq(td_catalog_t *cat, int64_t seq);
/* Brings the index up to date with the store through conn (inside or
 * outside a transaction); write lock holders only. */
int td_catalog__catch_up(td_catalog_t *cat, struct td_store_conn *conn) TD_MUST_CHECK;
/* Merges the partial entity part into the stored one (categories appended)
 * in a transaction of its own. */
int td_catalog__upsert(td_catalog_t *cat, struct td_store *st, const td_entity_t *part,
                       int64_t now_ms, bool *created, td_err_t *err) TD_MUST_CHECK;
/* Visits every entity without the read lock; write lock holders only. */
void td_catalog__each_unlocked(td_catalog_t *cat, td_catalog_visit_fn visit, void *ctx);

#endif
