/* Helpers shared by the catalog feed tests: a sink that keeps what a parser
 * produced, and a runner that parses the same text in chunks of several
 * sizes (1 byte, a few bytes, 64 KiB) and checks they all agree. */
#ifndef TD_TEST_CATALOG_FEED_UTIL_H
#define TD_TEST_CATALOG_FEED_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "util/buf.h"

typedef struct collected {
    td_entity_t *ents;
    int *lines;
    int n, cap;
    td_err_t *errs;
    int n_errs;
} collected_t;

static inline int collect_entity(void *ctx, td_entity_t *e, int line)
{
    collected_t *c = ctx;

    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->ents = realloc(c->ents, sizeof(td_entity_t) * (size_t)c->cap);
        c->lines = realloc(c->lines, sizeof(int) * (size_t)c->cap);
    }
    memset(&c->ents[c->n], 0, sizeof(td_entity_t));
    td_entity_move(&c->ents[c->n], e);
    c->lines[c->n++] = line;
    return TD_OK;
}

static inline void collect_reject(void *ctx, const td_err_t *e)
{
    collected_t *c = ctx;

    c->errs = realloc(c->errs, sizeof(td_err_t) * (size_t)(c->n_errs + 1));
    c->errs[c->n_errs++] = *e;
}

static const td_feed_sink_t collect_sink = { collect_entity, collect_reject };

static inline void collected_release(collected_t *c)
{
    for (int i = 0; i < c->n; i++) {
        td_entity_release(&c->ents[i]);
    }
    free(c->ents);
    free(c->lines);
    free(c->errs);
    memset(c, 0, sizeof(*c));
}

/* A short fingerprint of everything parsed, to compare runs. */
static inline void fingerprint(const collected_t *c, int rc, const td_err_t *err, td_buf_t *b)
{
    td_buf_addf(b, "rc=%d", rc);
    if (rc != TD_OK) {
        td_buf_addf(b, " err=%d:%d:%s", err->line, err->column, err->message);
    }
    for (int i = 0; i < c->n; i++) {
        td_buf_addf(b, "\n%d ", c->lines[i]);
        td_entity_to_json(&c->ents[i], 0, 0, b);
    }
    for (int i = 0; i < c->n_errs; i++) {
        td_buf_addf(b, "\nE %d:%d %s %s", c->errs[i].line, c->errs[i].column, c->errs[i].path,
                    c->errs[i].message);
    }
}

/* Parses text with the default chunk size into c, after checking that
 * chunks of 1, 2, 3, 5 and 7 bytes give the very same result. */
static inline int parse_text(td_feed_format_t fmt, const char *text, size_t len, collected_t *c,
                             td_err_t *err)
{
    static const size_t chunks[] = { 1, 2, 3, 5, 7 };
    td_buf_t want = TD_BUF_INIT;
    int rc;

    memset(c, 0, sizeof(*c));
    memset(err, 0, sizeof(*err));
    rc = td_feed_parse_mem(fmt, text, len, 0, &collect_sink, c, err);
    fingerprint(c, rc, err, &want);
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]) && len < 200000; i++) {
        collected_t other;
        td_err_t oerr;
        td_buf_t got = TD_BUF_INIT;
        memset(&other, 0, sizeof(other));
        memset(&oerr, 0, sizeof(oerr));
        int orc = td_feed_parse_mem(fmt, text, len, chunks[i], &collect_sink, &other, &oerr);
        fingerprint(&other, orc, &oerr, &got);
        if (strcmp(want.data, got.data) != 0) {
            fprintf(stderr, "chunk %zu differs:\n--- default\n%s\n--- chunked\n%s\n", chunks[i],
                    want.data, got.data);
            abort();
        }
        td_buf_release(&got);
        collected_release(&other);
    }
    td_buf_release(&want);
    return rc;
}

static inline int parse_str(td_feed_format_t fmt, const char *text, collected_t *c, td_err_t *err)
{
    return parse_text(fmt, text, strlen(text), c, err);
}

#endif
