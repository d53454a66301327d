/* The message module: everything between "a journey wants to send an email"
 * and "the email left": templates, the plain-text alternative, and (added as
 * they come) MIME, DKIM, SMTP and the outbox. One header for the module; each
 * part has its own titled section. */
#ifndef TD_MESSAGE_H
#define TD_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/tz.h"

/* ==== Templates ========================================================
 *
 * The Adobe Journey Optimizer personalisation language (Handlebars plus the
 * {% %} forms): {{profile.person.name.firstName}}, {{{raw}}}, {{#if}},
 * {{#unless}}, {{#each ... as |item|}}, {{#with}}, {%= a ?: "b" %},
 * {%#if ...%}, {% let x = ... %}, helpers such as formatCurrency. The
 * language is described in docs/templates.md.
 *
 * A template is compiled once (every syntax error is found here, with its
 * line and column) and rendered many times against a JSON context; rendering
 * walks the compiled tree and never re-parses. Rendering is pure: no I/O, no
 * clock, no globals. A compiled template is immutable, so one template may be
 * rendered from several threads at once. */

/* Limits. Input beyond them is refused (compile) or cut off (render). */
#define TD_TEMPLATE_MAX_SOURCE     (1024 * 1024)     /* bytes of template text */
#define TD_TEMPLATE_MAX_DEPTH      32                /* nested blocks */
#define TD_TEMPLATE_MAX_EXPR_DEPTH 32                /* nested (sub)expressions */
#define TD_TEMPLATE_MAX_OUTPUT     (4 * 1024 * 1024) /* bytes rendered per call */
#define TD_TEMPLATE_MAX_STEPS      2000000           /* nodes + expressions evaluated per call */
#define TD_TEMPLATE_MAX_NOTES      100               /* entries per list in a report */

typedef struct td_template td_template_t;

/* One entry of a render report: where in the template, and what. */
typedef struct td_template_note {
    int line, column; /* 1-based, of the expression in the template */
    char *text;       /* missing: the path as written; errors: the message */
} td_template_note_t;

/* What a render noticed. Data problems never fail a render: a missing value
 * renders as nothing and is listed in `missing` (once per path); a helper
 * given something it cannot use (formatCurrency of "abc") renders nothing and
 * is listed in `errors` (once per place and message). Values that are only
 * tested ({{#if x}}, {{#each x}}, the left of ?:, the first argument of
 * default) are not reported when absent. */
typedef struct td_template_report {
    td_template_note_t *missing;
    int n_missing;
    td_template_note_t *errors;
    int n_errors;
    bool truncated; /* a limit stopped the render; the output is incomplete */
} td_template_report_t;

/* Compiles len bytes of template text (UTF-8; NUL bytes refused). On success
 * *out is a template you own (td_template_free) and TD_OK is returned. On a
 * syntax error returns TD_EINVAL with err->line, err->column (1-based; the
 * column counts characters) and err->message; over a limit returns
 * TD_ETOOBIG. *out is NULL on failure. */
int td_template_compile(const char *text, size_t len, td_template_t **out,
                        td_err_t *err) TD_MUST_CHECK;

/* Renders tpl against context (any JSON, normally an object with "profile"
 * and "context"; NULL renders with no data) and appends the result to out.
 * The context is only read (references are taken and dropped, atomically). report may be NULL; when
 * given it is initialised here (release it with td_template_report_release).
 * Returns TD_OK, or TD_ETOOBIG when the output or work limit was reached (out
 * then holds a truncated result that must not be sent). Thread-safe for
 * concurrent renders of one template. */
int td_template_render(const td_template_t *tpl, const json_t *context, td_buf_t *out,
                       td_template_report_t *report);

/* Frees a compiled template; NULL is fine. */
void td_template_free(td_template_t *tpl);

void td_template_report_init(td_template_report_t *report);
void td_template_report_release(td_template_report_t *report);

/* The report as a JSON object: {"missing": [{"path", "line", "column"}...],
 * "errors": [{"message", "line", "column"}...], "truncated": false}. You own
 * the result (json_decref). */
json_t *td_template_report_to_json(const td_template_report_t *report);

/* ==== Compiled-template cache ===========================================
 *
 * Stored templates are compiled once per version and rendered for every
 * message: the cache maps (template id, part, version) to a compiled
 * template. Bounded: past capacity the least recently used entry goes. One
 * entry per (id, part): another version (or another text: a template deleted
 * and put again starts over at version 1) replaces it. Thread-safe: one mutex
 * around the table; compiling happens outside it. An entry handed out is
 * reference-counted, so eviction or replacement never frees a template that
 * another thread is still rendering. */

typedef struct td_template_cache td_template_cache_t;
typedef struct td_template_ref td_template_ref_t; /* a held compiled template */

/* A cache of at most capacity (>= 1) entries; free it with
 * td_template_cache_free once every ref has been released. */
td_template_cache_t *td_template_cache_new(int capacity);
void td_template_cache_free(td_template_cache_t *cache);

/* The compiled template of (id, part, version) whose text is src (len
 * bytes): from the cache, or compiled now and cached. *out is a ref you
 * hold until td_template_cache_release. On a compile error
 * returns it as td_template_compile does (nothing cached, *out NULL). */
int td_template_cache_get(td_template_cache_t *cache, const char *id, const char *part,
                          int64_t version, const char *src, size_t len, td_template_ref_t **out,
                          td_err_t *err) TD_MUST_CHECK;
/* The compiled template of a ref (borrowed: valid until the ref is released). */
const td_template_t *td_template_ref_get(const td_template_ref_t *ref);
/* Drops a ref from td_template_cache_get; NULL is fine. */
void td_template_cache_release(td_template_cache_t *cache, td_template_ref_t *ref);

typedef struct td_template_cache_stats {
    int64_t hits, misses; /* misses: compiles */
    int entries;
} td_template_cache_stats_t;
void td_template_cache_stats(td_template_cache_t *cache, td_template_cache_stats_t *out);

/* ==== Plain text from HTML =============================================
 *
 * The text/plain alternative of an HTML email: no tags; paragraphs, headings,
 * table rows and list items on their own lines; links as "text (url)";
 * entities decoded; <head>, <style>, <script>, comments and elements hidden
 * with display:none left out. Tolerant of any input (it never fails) and
 * pure. Appends to out. */
void td_html_to_text(const char *html, size_t len, td_buf_t *out);

/* ==== Messages (MIME) ===================================================
 *
 * The RFC 5322 message a journey sends: headers (UTF-8 words encoded per
 * RFC 2047, lines folded at 76 columns), a text/plain and a text/html part
 * in multipart/alternative (the HTML inside multipart/related when inline
 * images come along), bodies quoted-printable (images base64), CRLF line
 * endings throughout. Building is pure and deterministic: the MIME
 * boundaries derive from the Message-ID, so a retry of the same message
 * gives the same bytes (and the same DKIM body hash). */

#define TD_MIME_MAX_BODY    (8 * 1024 * 1024) /* bytes of html, of text, of one image */
#define TD_MIME_MAX_HEADER  900               /* bytes of one header value (subject, name) */
#define TD_MIME_MAX_HEADERS 16                /* extra headers */
#define TD_MIME_MAX_INLINES 32                /* inline images */

typedef struct td_mime_header {
    const char *name;  /* "X-Campaign", "Feedback-ID"; not one the builder writes itself */
    const char *value; /* UTF-8; encoded and folded like the subject */
} td_mime_header_t;

/* An image referenced from the HTML as src="cid:<cid>". */
typedef struct td_mime_inline {
    const char *cid;          /* Content-ID without the angle brackets */
    const char *content_type; /* "image/png" */
    const char *filename;     /* may be NULL */
    const void *data;
    size_t len;
} td_mime_inline_t;

/* A message to build. Strings are UTF-8 and borrowed; NULL means absent. */
typedef struct td_mime_message {
    const char *from_name; /* display name */
    const char *from_addr; /* required: local@domain (ASCII) */
    const char *reply_to;  /* address */
    const char *to_name;
    const char *to_addr; /* required */
    const char *subject; /* required (may be "") */
    const char *html;    /* NULL: a text-only message */
    size_t html_len;
    const char *text; /* NULL: generated from html by td_html_to_text() */
    size_t text_len;
    const char *message_id;         /* required, without <>: "tandem.42.email@shop.example" */
    int64_t date_ms;                /* the Date header */
    const char *unsubscribe_url;    /* https one-click URL (RFC 8058 POST target) */
    const char *unsubscribe_mailto; /* "mailto:unsubscribe@shop.example?subject=..." */
    const char *list_id;            /* "cart-abandonment.shop.example" (RFC 2919) */
    const char *list_name;          /* the List-Id phrase, e.g. "Cart reminders" */
    const td_mime_header_t *headers;
    int n_headers;
    const td_mime_inline_t *inlines;
    int n_inlines;
} td_mime_message_t;

/* Builds m and appends the message (headers, blank line, body; CRLF line
 * endings) to out. Headers written: Date, From, Reply-To, To, Subject,
 * Message-ID, List-Id, List-Unsubscribe (mailto and https, whichever are
 * given), List-Unsubscribe-Post: List-Unsubscribe=One-Click (with an https
 * URL only), the extra headers, MIME-Version, Content-Type. Returns TD_OK,
 * or TD_EINVAL (a bad address, invalid UTF-8 or a control character in a
 * header, a reserved extra header name: err->path names the field) or
 * TD_ETOOBIG (over a limit above). Pure; thread-safe. */
int td_mime_build(const td_mime_message_t *m, td_buf_t *out, td_err_t *err) TD_MUST_CHECK;

/* The deterministic Message-ID (without <>) of the email that step step_id
 * of journey instance instance_id sends: "tandem.<instance>.<step>@<domain>"
 * (a step id with characters outside [A-Za-z0-9_-], or longer than 40, is
 * replaced by a hash). Writes at most len bytes, NUL included. */
void td_message_id_for(int64_t instance_id, const char *step_id, const char *domain, char *out,
                       size_t len);

/* True when addr is an address the builder accepts: ASCII local@domain,
 * dot-atom local part, a domain of letters, digits, '-' and '.', at most
 * 254 bytes. */
bool td_mime_addr_valid(const char *addr);

/* The domain of an address (after the last '@'); "" when there is none. */
const char *td_mime_addr_domain(const char *addr);

/* Quoted-printable (RFC 2045 6.7) of len bytes: line breaks (LF or CRLF)
 * become CRLF, encoded lines are at most 76 characters. Appends to out. */
void td_mime_qp_encode(const char *s, size_t len, td_buf_t *out);

/* ==== DKIM ==============================================================
 *
 * DKIM signatures (RFC 6376) made with libopendkim: rsa-sha256,
 * relaxed/relaxed canonicalisation, the whole body. Signed header fields:
 * From, Reply-To, To, Subject, Date, Message-ID, List-Id, List-Unsubscribe,
 * List-Unsubscribe-Post, MIME-Version, Content-Type (RFC 8058 asks for both
 * List-Unsubscribe fields to be covered). Each is also "oversigned" (listed
 * once more than present), so a relay cannot add a second From, Subject or
 * List-Unsubscribe without breaking the signature. */

typedef struct td_dkim td_dkim_t;

/* A signer for domain and selector with the RSA private key in key_file
 * (PEM). The key is tried on a small message here, so a bad key fails at
 * start-up rather than at the first email. You own *out (td_dkim_close).
 * Returns TD_EINVAL (err says why) or TD_EIO (unreadable file). */
int td_dkim_open(const char *domain, const char *selector, const char *key_file, td_dkim_t **out,
                 td_err_t *err) TD_MUST_CHECK;
/* The same from a PEM key in memory (copied). */
int td_dkim_open_mem(const char *domain, const char *selector, const char *key_pem, size_t key_len,
                     td_dkim_t **out, td_err_t *err) TD_MUST_CHECK;
void td_dkim_close(td_dkim_t *d);

/* Signs msg (a complete message with CRLF line endings, as td_mime_build
 * makes it) and appends to out the DKIM-Signature header field, CRLF
 * included, to be put in front of the message. now_ms gives the t= tag;
 * with the same message and now_ms the signature is the same bytes.
 * Thread-safe. Returns TD_OK, TD_EINVAL (the message has no From, or
 * libopendkim refused it; err says why). */
int td_dkim_sign(td_dkim_t *d, const char *msg, size_t len, int64_t now_ms, td_buf_t *out,
                 td_err_t *err) TD_MUST_CHECK;

/* ==== SMTP ==============================================================
 *
 * Sending through libcurl: smtp:// (STARTTLS when offered, or required, or
 * never: td_smtp_tls_t), smtps:// (TLS from the start), AUTH with a user
 * and password, one connection kept open and reused across messages.
 *
 * A send ends in one of four outcomes, which drive the outbox: accepted;
 * a temporary failure (a 4xx reply: retry later, with back-off); a
 * permanent failure (a 5xx reply to MAIL, RCPT or DATA: a hard bounce, do
 * not retry); a connection failure (cannot connect, TLS or AUTH failed,
 * timeout, dropped connection: the recipient is not at fault, retry). */

typedef enum {
    TD_SMTP_ACCEPTED = 0, /* the server took responsibility for the message */
    TD_SMTP_TEMPFAIL,     /* 4xx: retry later */
    TD_SMTP_PERMFAIL,     /* 5xx: hard bounce */
    TD_SMTP_CONNFAIL      /* no verdict on the message: retry later */
} td_smtp_status_t;

typedef struct td_smtp_result {
    td_smtp_status_t status;
    int code;        /* the last SMTP reply code; 0 when none was read */
    char reply[256]; /* the reply that decided (a refusal, or the final 250), or why the
                        connection failed; may hold the recipient's address */
    int connects;    /* new connections this send opened (0 when one was reused) */
} td_smtp_result_t;

/* "accepted", "tempfail", "permfail", "connfail" */
const char *td_smtp_status_name(td_smtp_status_t s);

typedef enum {
    TD_SMTP_TLS_TRY = 0, /* smtp://: STARTTLS when the server offers it (required when
                            a user is set: credentials never go in clear) */
    TD_SMTP_TLS_REQUIRE, /* smtp://: STARTTLS or fail */
    TD_SMTP_TLS_OFF      /* smtp://: never (a local relay) */
} td_smtp_tls_t;

typedef struct td_smtp_options {
    const char *url;      /* smtp://host[:port] or smtps://host[:port] */
    const char *user;     /* AUTH user; NULL or "" for none */
    const char *password; /* AUTH password */
    const char *ca_file;  /* CA bundle to verify the server; NULL: the system's */
    td_smtp_tls_t tls;
    long timeout_ms; /* per message, connecting included */
} td_smtp_options_t;

/* One SMTP connection (a libcurl easy handle). Used by one thread at a time. */
typedef struct td_smtp_conn td_smtp_conn_t;

/* Checks opt (the URL scheme) and makes a connection object; nothing is
 * connected until the first send. Strings in opt are copied. */
int td_smtp_conn_open(const td_smtp_options_t *opt, td_smtp_conn_t **out,
                      td_err_t *err) TD_MUST_CHECK;
/* Sends msg (CRLF line endings) from mail_from to rcpt, reusing the open
 * connection when there is one. Fills res and returns res->status. */
td_smtp_status_t td_smtp_conn_send(td_smtp_conn_t *c, const char *mail_from, const char *rcpt,
                                   const char *msg, size_t len, td_smtp_result_t *res);
/* Ends the session (QUIT) and frees c; NULL is fine. */
void td_smtp_conn_close(td_smtp_conn_t *c);

/* Maps what libcurl said (its CURLcode, the last reply code, and whether
 * the last command was MAIL, RCPT or DATA) to an outcome; pure, exposed
 * for tests. */
td_smtp_status_t td_smtp__classify(int curl_code, int smtp_code, bool in_transaction);

/* Rate limits: token buckets, one global and one per recipient domain,
 * in messages per minute (0 = unlimited), with a burst of one second's
 * worth (at least one message). Pure: the caller passes the time, and is
 * told how long to wait. Not thread-safe (the pool locks around it). */
typedef struct td_ratelimit td_ratelimit_t;

#define TD_RATELIMIT_MAX_DOMAINS 4096 /* buckets kept; idle ones are dropped first */

td_ratelimit_t *td_ratelimit_new(int64_t per_min, int64_t domain_per_min);
void td_ratelimit_free(td_ratelimit_t *rl);
/* Takes one message for domain at now_ms (monotonic) and returns 0, or
 * returns how many milliseconds to wait before asking again (nothing is
 * taken then). */
int64_t td_ratelimit_take(td_ratelimit_t *rl, const char *domain, int64_t now_ms);

/* A pool of connections shared by sending threads, with the rate limits.
 * td_smtp_pool_send is thread-safe: up to `senders` messages go out at
 * once, each on its own connection; a caller waits for a free connection
 * and for the rate limits. */
typedef struct td_smtp_pool td_smtp_pool_t;

typedef struct td_smtp_pool_options {
    td_smtp_options_t smtp;
    int senders;            /* connections, >= 1 */
    int64_t per_min;        /* messages per minute overall; 0 = unlimited */
    int64_t domain_per_min; /* messages per minute per recipient domain; 0 = unlimited */
} td_smtp_pool_options_t;

int td_smtp_pool_open(const td_smtp_pool_options_t *opt, td_smtp_pool_t **out,
                      td_err_t *err) TD_MUST_CHECK;
td_smtp_status_t td_smtp_pool_send(td_smtp_pool_t *p, const char *mail_from, const char *rcpt,
                                   const char *msg, size_t len, td_smtp_result_t *res);
/* Closes every connection; no send may be running. NULL is fine. */
void td_smtp_pool_close(td_smtp_pool_t *p);

/* ==== The outbox sender ==================================================
 *
 * Threads that take due rows of the store's outbox (written by journey
 * email steps), check the sending rules, render the row's template against
 * its data snapshot, track its links, build, sign and send the message, and
 * mark the row: sent | queued again (retry with back-off) | failed |
 * skipped (last_error holds the machine-readable reason). A row whose
 * previous attempt never ended (a crash) is sent again with the same
 * Message-ID and counted in tandem_outbox_resent_after_crash_total. */

typedef struct td_outbox td_outbox_t;

struct td_store;
struct td_clock;
struct td_config;

/* Starts cfg->smtp_senders sender threads on st (nothing is sent, and rows
 * stay queued, when cfg->smtp is empty). Keeps pointers to st, clock and
 * cfg: they must outlive the outbox. Errors (a bad DKIM key, no mail_from)
 * are in err. */
int td_outbox_open(struct td_store *st, struct td_clock *clock, const struct td_config *cfg,
                   td_outbox_t **out, td_err_t *err) TD_MUST_CHECK;
/* Stops the threads (a send in flight finishes first) and frees o; NULL is fine. */
void td_outbox_close(td_outbox_t *o);

/* Stores each template of dir (NAME.json manifests naming their HTML) whose
 * id the store does not hold yet; *n_loaded (may be NULL) gets how many. A
 * missing directory is not an error. */
int td_message_templates_load_dir(struct td_store *st, const char *dir, int64_t now_ms,
                                  int *n_loaded) TD_MUST_CHECK;

/* The ingest hook (attribution.c; register with td_ingest_add_tx_hook and a
 * td_config_t as ctx): counts opens, clicks and unsubscribes per message
 * and credits a purchase to the profile's latest email click within
 * attribution_window_hours. Declared with plain types to keep this header
 * free of the collect module: the event is a const td_event_t *. */
struct td_event;
struct td_store_conn;
int td_message_ingest_hook(void *ctx, struct td_store_conn *conn, const struct td_event *ev,
                           int64_t profile_id, int64_t seq, int64_t received_ms);

/* Pure parts (rules.c). The delay before retry number attempts (1-based):
 * base_ms doubled per attempt, at most 6 hours. */
int64_t td_outbox_backoff_ms(int attempts, int64_t base_ms);
/* Quiet hours "HH:MM-HH:MM" (may wrap past midnight; "" = none) -> minutes. */
int td_quiet_parse(const char *spec, int *start_min, int *end_min) TD_MUST_CHECK;
/* The first time >= now_ms outside the window, for a recipient at UTC +
 * offset_min; now_ms itself when outside. */
int64_t td_quiet_next_open_ms(int start_min, int end_min, int offset_min, int64_t now_ms);
/* The same for a recipient in zone (a fixed offset or an IANA name, looked
 * up in tz_cache, a td_tz_cache_t *), the window being in the wall time of
 * the recipient's day: across a DST change the window opens at end_min of
 * the new offset (an end_min the change skips opens at the change).
 * TD_ENOTFOUND for an unknown zone. Fixed offsets ("UTC", "+02:00") are
 * parsed by td_tz_offset_parse (util/tz.h). */
int td_quiet_next_open_tz_ms(int start_min, int end_min, void *tz_cache, const char *zone,
                             int64_t now_ms, int64_t *open_ms) TD_MUST_CHECK;
/* A frequency cap: at most limit emails per profile in window_ms; over it a
 * message waits for the next allowed time (defer) or is dropped. */
typedef struct td_cap {
    int limit;
    int64_t window_ms;
    bool drop;
} td_cap_t;
#define TD_CAP_MAX 8
/* "1/16h, 3/7d:drop" -> caps (at most max); "" gives none. */
int td_cap_parse(const char *spec, td_cap_t *caps, int max, int *n, td_err_t *err) TD_MUST_CHECK;
/* When one more email may go under cap, given used emails in its window, the
 * oldest at oldest_ms: now_ms when used < limit, else when the oldest leaves
 * the window (an approximation for limit > 1: re-checked then). */
int64_t td_cap_next_allowed_ms(const td_cap_t *cap, int64_t used, int64_t oldest_ms,
                               int64_t now_ms);
/* A skip reason from a row's render data ("item_unavailable",
 * "empty_recommendation"), or NULL when it may be sent. */
const char *td_outbox_data_skip(const json_t *data);

/* ==== The suppression list's keys and CSV import (suppress_csv.c) ========
 *
 * Keys are lower-case addresses, or "@domain" for a whole domain. Pure. */

#define TD_SUPPRESS_KEY_MAX    260 /* bytes of a key, NUL included */
#define TD_SUPPRESS_REASON_MAX 64
#define TD_SUPPRESS_BAD_MAX    100 /* bad lines whose numbers are kept */

/* An address or a domain (with or without '@'; blanks around are cut) of
 * len bytes -> its key in out (out_len bytes); false when it is neither. */
bool td_suppress_key_make(const char *s, size_t len, char *out, size_t out_len);
/* A reason: 1 to TD_SUPPRESS_REASON_MAX of a-z, 0-9, '_' or '-'. */
bool td_suppress_reason_valid(const char *reason);

typedef struct td_suppress_entry {
    char key[TD_SUPPRESS_KEY_MAX];
    char reason[TD_SUPPRESS_REASON_MAX + 1]; /* "import" when the line gives none */
} td_suppress_entry_t;

typedef struct td_suppress_csv {
    td_suppress_entry_t *entries;
    int n, cap;
    int n_bad;                          /* lines that are not entries (a header aside) */
    int bad_lines[TD_SUPPRESS_BAD_MAX]; /* the first of them, 1-based */
} td_suppress_csv_t;

/* CSV of len bytes (no NUL needed), one entry a line: key[,reason]; empty
 * lines are skipped, and a first line that is no entry is a header
 * ("address,reason"). TD_OK; TD_EINVAL when some line is bad (out->n_bad,
 * out->bad_lines); TD_ETOOBIG at entry number max_entries + 1. out is
 * filled in every case: td_suppress_csv_release it. */
int td_suppress_csv_parse(const char *body, size_t len, int max_entries,
                          td_suppress_csv_t *out) TD_MUST_CHECK;
void td_suppress_csv_release(td_suppress_csv_t *c);

#endif
