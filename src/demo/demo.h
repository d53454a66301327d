/* The demo: what `tandem demo` adds to a normal server so a newcomer sees the
 * whole product on one machine. A local SMTP catcher (no mail leaves the
 * machine; each message is kept as a file the mailbox page shows), product
 * pictures drawn on request (the demo catalogue's items have no real ones),
 * and the catalogue and shopper history built from a public dataset. */
#ifndef TD_DEMO_DEMO_H
#define TD_DEMO_DEMO_H

#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

/* --- SMTP catcher ------------------------------------------------------ */

typedef struct td_demo_catcher td_demo_catcher_t;

/* Listens on `listen` ("HOST:PORT"; port 0 picks one) and stores every
 * message it accepts in `dir` (created if missing) as <n>.eml (the bytes of
 * DATA, dot-unstuffed, with a Return-Path/Received trace prepended) and
 * <n>.json ({"from": "...", "to": ["..."], "received_ms": ...}), written to a
 * temporary name and renamed, so a reader never sees half a message. n
 * continues after the highest number already in dir. Speaks enough of RFC
 * 5321 for any client (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY
 * refused, 8BITMIME, SIZE); one thread, one client at a time per connection
 * thread. */
int td_demo_catcher_start(const char *listen, const char *dir, td_demo_catcher_t **out,
                          td_err_t *err);
/* The port actually bound (for port 0). */
int td_demo_catcher_port(const td_demo_catcher_t *c);
/* Stops listening, waits for the threads, frees c. NULL is fine. */
void td_demo_catcher_stop(td_demo_catcher_t *c);

/* --- product pictures --------------------------------------------------- */

/* Appends a PNG (w x h pixels, 8-bit RGB, zlib-compressed) that stands for
 * a product: a background colour from the category, a simple shape from the
 * item id, so items differ and a category looks alike. Deterministic: the
 * same arguments give the same bytes. w and h in 16..1024. */
int td_demo_png(const char *item_id, const char *category, int w, int h, td_buf_t *out,
                td_err_t *err);

/* --- demo data from a public click log ----------------------------------- */

typedef struct td_demo_data {
    td_buf_t catalog_csv; /* a Target CSV feed of the items */
    char **batches;       /* native-API event batches ({"events": [...]}) */
    int n_batches;
    int n_items, n_sessions, n_events, n_purchases;
} td_demo_data_t;

/* Reads a YOOCHOOSE-style click log (gzip or plain TSV: SessionId, ItemId,
 * Unix time in seconds; one header line) and makes the demo's data from it:
 * one entity per item (real id; generated name, category, price, picture
 * URL under public_url, all marked as generated), and the sessions as
 * shoppers' product views (ecid "yc-<session>"), moved in time so the last
 * one happened an hour before now_ms, plus a generated purchase closing
 * one session in seven. Categories follow co-views (items often viewed
 * together share one), so shelves look like a shop's. */
int td_demo_data_build(const char *path, const char *public_url, int64_t now_ms,
                       int batch_events, td_demo_data_t *out, td_err_t *err) TD_MUST_CHECK;
void td_demo_data_release(td_demo_data_t *d);

#endif
