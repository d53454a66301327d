/* Tracking links: the open pixel, click redirects and one-click
 * unsubscribe links that an email carries, as signed (and encrypted)
 * tokens; the rewrite of an HTML body's links into tracked ones; and the
 * classification of who fetched a link (a person, a privacy proxy, a bot).
 *
 * A token is base64url of: a version byte, a 16-byte tag, and the payload
 * encrypted with AES-256-CTR under that tag. The tag is HMAC-SHA256 of the
 * version and the plain payload, truncated (a synthetic IV, as in SIV
 * mode): nobody without the key can make a token the server accepts, so a
 * click can only ever redirect to a URL that was put in one of our emails
 * (no open redirect), and the recipient's address inside is not readable
 * in logs or by link scanners. The same input always gives the same token,
 * so a rebuilt (retried) message is the same bytes.
 *
 * Everything here is pure except td_track_secret_load (a file). */
#ifndef TD_TRACK_H
#define TD_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

/* Field limits; a token with longer fields is refused when made. */
#define TD_TRACK_MAX_URL   2048 /* bytes of a click's target URL */
#define TD_TRACK_MAX_FIELD 255  /* bytes of each other text field */
#define TD_TRACK_MAX_TOKEN 6000 /* characters of a token accepted for decoding */
#define TD_TRACK_MAX_LINKS 500  /* links of one message that get tracked */

/* Keys derived from the tracking secret: one for the tag, one for the
 * encryption. */
typedef struct td_track_key {
    unsigned char mac[32];
    unsigned char enc[32];
} td_track_key_t;

/* Derives the keys from a secret of at least 16 bytes. */
void td_track_key_derive(const void *secret, size_t len, td_track_key_t *out);

/* Loads the tracking secret from secret_file, or, when that is NULL or
 * empty, from DATA_DIR/track.key, creating that file (32 random bytes as
 * hex, mode 0600) when it does not exist yet; then derives the keys.
 * Returns TD_OK, TD_EINVAL (a file with fewer than 16 bytes) or TD_EIO. */
int td_track_secret_load(const char *secret_file, const char *data_dir, td_track_key_t *out,
                         td_err_t *err) TD_MUST_CHECK;

typedef enum {
    TD_TRACK_OPEN = 'o',  /* the open pixel */
    TD_TRACK_CLICK = 'c', /* a link */
    TD_TRACK_UNSUB = 'u'  /* the unsubscribe link (List-Unsubscribe and the footer) */
} td_track_kind_t;

/* What a token says. Text fields are NUL-terminated; "" means absent. */
typedef struct td_track_token {
    td_track_kind_t kind;
    int64_t issued_ms; /* when the link was made (whole seconds) */
    char message_id[TD_TRACK_MAX_FIELD + 1];
    char email[TD_TRACK_MAX_FIELD + 1]; /* the recipient */
    char journey[TD_TRACK_MAX_FIELD + 1];
    char step[TD_TRACK_MAX_FIELD + 1];
    int64_t instance;                   /* journey instance; 0 when absent */
    char label[TD_TRACK_MAX_FIELD + 1]; /* clicks: "item:SKU-1,slot:2" or "link:3" */
    int link;                           /* clicks: 1-based position in the message; 0 absent */
    char url[TD_TRACK_MAX_URL + 1];     /* clicks: the target */
} td_track_token_t;

/* Makes the token for t and appends it (base64url, no padding) to out.
 * Returns TD_EINVAL for an unknown kind, a field that is too long, or a
 * click whose URL is not http(s) (or has spaces or control characters). */
int td_track_token_encode(const td_track_key_t *key, const td_track_token_t *t,
                          td_buf_t *out) TD_MUST_CHECK;

/* Checks and reads a token (constant-time tag comparison). Returns TD_OK
 * with *out filled, or TD_EINVAL for anything that is not a token made with
 * this key (bad characters, wrong length, forged or altered); *out is then
 * zeroed. Never reads past len. */
int td_track_token_decode(const td_track_key_t *key, const char *token, size_t len,
                          td_track_token_t *out) TD_MUST_CHECK;

/* True when a token is older than max_age_ms at now_ms (max_age_ms <= 0:
 * never). */
bool td_track_token_expired(const td_track_token_t *t, int64_t now_ms, int64_t max_age_ms);

/* The message and recipient a set of links belongs to. */
typedef struct td_track_ctx {
    const td_track_key_t *key;
    const char *base_url; /* public_url, e.g. "https://t.shop.example" (a trailing '/' is fine) */
    const char *message_id;
    const char *email;
    const char *journey; /* may be NULL */
    const char *step;    /* may be NULL */
    int64_t instance;
    int64_t now_ms; /* issue time */
} td_track_ctx_t;

/* BASE/t/c/<token>: a click on url, with its label and position. */
int td_track_click_url(const td_track_ctx_t *c, const char *url, const char *label, int link,
                       td_buf_t *out) TD_MUST_CHECK;
/* BASE/t/o/<token>: the open pixel. */
int td_track_open_url(const td_track_ctx_t *c, td_buf_t *out) TD_MUST_CHECK;
/* BASE/t/u/<token>: unsubscribe (GET: a confirmation page; POST: RFC 8058
 * one-click). */
int td_track_unsubscribe_url(const td_track_ctx_t *c, td_buf_t *out) TD_MUST_CHECK;

/* Rewrites an HTML body: each <a href="http(s)://..."> becomes a tracked
 * link (its label from a data-label="..." attribute on the same tag, else
 * "link:N"); links marked data-track="off", links already under BASE/t/,
 * and links that are not http(s) stay as they are; after TD_TRACK_MAX_LINKS
 * links the rest stay too. The open pixel goes before the last </body> (or
 * at the end). Appends to out; *n_links (may be NULL) gets the number of
 * links rewritten. Tolerant of any input; pure. */
int td_track_rewrite_html(const td_track_ctx_t *c, const char *html, size_t len, td_buf_t *out,
                          int *n_links) TD_MUST_CHECK;

/* Who fetched a tracking link. */
typedef enum {
    TD_TRACK_HUMAN = 0, /* as far as we can tell */
    TD_TRACK_PROXY,     /* a mail privacy or image proxy (Apple Mail Privacy Protection,
                           Gmail, Yahoo): an open that may not be a person reading */
    TD_TRACK_BOT        /* a link scanner, a preview fetcher, a script */
} td_track_agent_t;

/* "human", "proxy", "bot" */
const char *td_track_agent_name(td_track_agent_t a);

/* Classifies a fetch from its User-Agent (NULL: none sent) and how long
 * after the link was made it came: within TD_TRACK_SCANNER_MS of sending,
 * a fetch is a scanner's (security gateways fetch every link of a message
 * as it arrives). *reason (may be NULL) gets a short static explanation.
 * Pure. */
#define TD_TRACK_SCANNER_MS 10000
td_track_agent_t td_track_classify(td_track_kind_t kind, const char *user_agent, int64_t issued_ms,
                                   int64_t now_ms, const char **reason);

#endif
