/* The MIME builder: a td_mime_message_t in, the RFC 5322 message out
 * (RFC 2045-2047 for the parts, encodings and non-ASCII headers). Pure and
 * deterministic; it does not sign (dkim.c) or send (smtp.c). */
#include "message/message.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/sha.h>

#include "util/banned.h"

/* RFC 5322 2.1.1: lines SHOULD stay within 78 characters; we fold at 76
 * like RFC 2045 asks of encoded bodies, so both look alike. */
#define LINE_MAX_COLS 76
/* RFC 2047 2: an encoded-word is at most 75 characters. */
#define EW_MAX 75

static const char hex_upper[] = "0123456789ABCDEF";

bool td_mime_addr_valid(const char *addr)
{
    const char *at, *p;
    size_t len;

    if (addr == NULL || (len = strlen(addr)) == 0 || len > 254) {
        return false;
    }
    at = strrchr(addr, '@');
    if (at == NULL || at == addr || at - addr > 64 || at[1] == '\0') {
        return false;
    }
    /* local part: dot-atom (RFC 5322 3.4.1); quoted local parts are not
     * worth their trouble in marketing mail */
    for (p = addr; p < at; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            if (p == addr || p + 1 == at || p[1] == '.') {
                return false;
            }
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+/=?^_`{|}~-", c))) {
            return false;
        }
    }
    /* domain: LDH labels separated by single dots */
    for (p = at + 1; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            if (p == at + 1 || p[1] == '\0' || p[1] == '.') {
                return false;
            }
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-')) {
            return false;
        }
    }
    return true;
}

const char *td_mime_addr_domain(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;

    return at ? at + 1 : "";
}

/* ---- header values ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* A header value must be valid UTF-8 without control characters: a CR or
 * LF would let the value start a header of its own (header injection). */
static int check_header_text(const char *v, const char *field, td_err_t *err)
{
    size_t n = strlen(v);

    if (n > TD_MIME_MAX_HEADER) {
        return td_err_set(err, TD_ETOOBIG, field, "%s is longer than %d bytes", field,
                          TD_MIME_MAX_HEADER);
    }
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7F) {
            return td_err_set(err, TD_EINVAL, field, "%s has a control character at byte %zu",
                              field, i);
        }
        size_t k = utf8_seq((const unsigned char *)v + i, n - i);
        if (k == 0) {
            return td_err_set(err, TD_EINVAL, field, "%s is not valid UTF-8 at byte %zu", field, i);
        }
        i += k;
    }
    return TD_OK;
}

/* A header being written: folds before a token that would pass the
 * column limit (RFC 5322 2.2.3 folding: CRLF then a space). */
typedef struct hdr {
    td_buf_t *out;
    size_t col;
    bool fresh; /* nothing on this line yet but the name or the fold: folding again would
                   leave a line of white space only (RFC 5322 3.2.2 forbids it) */
} hdr_t;

static void hdr_start(hdr_t *h, td_buf_t *out, const char *name)
{
    h->out = out;
    td_buf_adds(out, name);
    td_buf_adds(out, ":");
    h->col = strlen(name) + 1;
    h->fresh = true;
}

/* Appends a token that must not be split, preceded by a space (which may
 * become a fold). */
static void hdr_token(hdr_t *h, const char *tok, size_t len)
{
    if (h->col + 1 + len > LINE_MAX_COLS && !h->fresh) {
        td_buf_adds(h->out, "\r\n ");
        h->col = 1;
    } else {
        td_buf_addc(h->out, ' ');
        h->col++;
    }
    td_buf_add(h->out, tok, len);
    h->col += len;
    h->fresh = false;
}

/* Appends to a token without a space before (punctuation such as ','). */
static void hdr_glue(hdr_t *h, const char *s)
{
    td_buf_adds(h->out, s);
    h->col += strlen(s);
}

static void hdr_end(hdr_t *h)
{
    td_buf_adds(h->out, "\r\n");
}

/* True when a byte may stand for itself in a Q encoded-word. RFC 2047 5(3)
 * allows only these in a phrase, the strictest context, so the same words
 * are safe in Subject and display names alike. */
static bool q_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
           c == '*' || c == '+' || c == '-' || c == '/';
}

/* Writes s (valid UTF-8) as Q encoded-words of at most EW_MAX characters,
 * never splitting a character across two words (RFC 2047 5: each word must
 * decode on its own). */
static void hdr_encoded_words(hdr_t *h, const char *s, size_t n)
{
    static const char pre[] = "=?UTF-8?Q?";
    const size_t overhead = sizeof(pre) - 1 + 2, min_room = 9;
    td_buf_t word = TD_BUF_INIT;
    size_t i = 0;

    while (i < n) {
        /* the word fills what is left of this line, or a new line; a
         * continuation line holds a space and at most EW_MAX characters */
        size_t left = h->col + 1 < LINE_MAX_COLS ? LINE_MAX_COLS - h->col - 1 : 0;
        size_t width = left >= overhead + min_room || h->fresh ? left : LINE_MAX_COLS - 1;
        width = width > EW_MAX ? EW_MAX : width < overhead + min_room ? overhead + min_room : width;
        const size_t room = width - overhead;
        td_buf_reset(&word);
        td_buf_adds(&word, pre);
        size_t used = 0;
        while (i < n) {
            size_t k = utf8_seq((const unsigned char *)s + i, n - i);
            size_t need = 0;
            k = k ? k : 1;
            for (size_t j = 0; j < k; j++) {
                unsigned char c = (unsigned char)s[i + j];
                need += (q_plain(c) || c == ' ') ? 1 : 3;
            }
            if (used + need > room && used > 0) {
                break;
            }
            for (size_t j = 0; j < k; j++) {
                unsigned char c = (unsigned char)s[i + j];
                if (c == ' ') {
                    td_buf_addc(&word, '_');
                } else if (q_plain(c)) {
                    td_buf_addc(&word, (char)c);
                } else {
                    td_buf_addc(&word, '=');
                    td_buf_addc(&word, hex_upper[c >> 4]);
                    td_buf_addc(&word, hex_upper[c & 15]);
                }
            }
            used += need;
            i += k;
        }
        td_buf_adds(&word, "?=");
        hdr_token(h, word.data, word.len);
    }
    td_buf_release(&word);
}

static bool is_ascii_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7E) {
            return false;
        }
    }
    return true;
}

/* A word that an RFC 2047 decoder could take for an encoded-word must be
 * encoded itself, or it would be decoded on the other side. */
static bool word_needs_encoding(const char *w, size_t n)
{
    if (!is_ascii_printable(w, n)) {
        return true;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (w[i] == '=' && w[i + 1] == '?') {
            return true;
        }
    }
    return false;
}

/* Unstructured text (Subject, extra headers): words that need it are
 * Q-encoded, the others stay readable; a run of neighbouring words that
 * need encoding becomes one run of encoded-words with the spaces inside,
 * since white space between two encoded-words is dropped when decoding
 * (RFC 2047 6.2). */
static void hdr_unstructured(hdr_t *h, const char *v)
{
    const char *p = v;

    while (*p) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *w = p;
        while (*p && *p != ' ') {
            p++;
        }
        if (!word_needs_encoding(w, (size_t)(p - w))) {
            hdr_token(h, w, (size_t)(p - w));
            continue;
        }
        /* extend the run over following words that need encoding too */
        const char *run_end = p;
        for (const char *q = p;;) {
            while (*q == ' ') {
                q++;
            }
            const char *w2 = q;
            while (*q && *q != ' ') {
                q++;
            }
            if (q == w2 || !word_needs_encoding(w2, (size_t)(q - w2))) {
                break;
            }
            run_end = q;
        }
        hdr_encoded_words(h, w, (size_t)(run_end - w));
        p = run_end;
    }
}

/* RFC 5322 3.2.3 specials: a display name with one of them is quoted. */
static bool needs_quoting(const char *s)
{
    for (; *s; s++) {
        if (strchr("()<>[]:;@\\,.\"", *s)) {
            return true;
        }
    }
    return false;
}

/* "Name <addr>", the name as atoms, a quoted-string, or encoded-words. */
static void hdr_mailbox(hdr_t *h, const char *name, const char *addr)
{
    char angle[300];

    if (name && *name) {
        size_t n = strlen(name);
        if (!is_ascii_printable(name, n) || strstr(name, "=?")) {
            hdr_encoded_words(h, name, n);
        } else if (needs_quoting(name)) {
            td_buf_t q = TD_BUF_INIT;
            td_buf_addc(&q, '"');
            for (const char *s = name; *s; s++) {
                if (*s == '"' || *s == '\\') {
                    td_buf_addc(&q, '\\');
                }
                td_buf_addc(&q, *s);
            }
            td_buf_addc(&q, '"');
            hdr_token(h, q.data, q.len);
            td_buf_release(&q);
        } else {
            hdr_unstructured(h, name);
        }
    }
    /* a bare address when there is no name, as most mail carries it */
    snprintf(angle, sizeof(angle), name && *name ? "<%s>" : "%s", addr);
    hdr_token(h, angle, strlen(angle));
}

/* ---- bodies ------------------------------------------------------------ */

/* Appends one QP-encoded unit (a literal byte or =XX), breaking the line
 * with a soft break ("=" CRLF) first when it would not fit. */
static void qp_unit(td_buf_t *out, size_t *col, const char *unit, size_t n)
{
    if (*col + n > LINE_MAX_COLS - 1) {
        td_buf_adds(out, "=\r\n");
        *col = 0;
    }
    td_buf_add(out, unit, n);
    *col += n;
}

void td_mime_qp_encode(const char *s, size_t len, td_buf_t *out)
{
    size_t col = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char enc[3] = { '=', hex_upper[c >> 4], hex_upper[c & 15] };
        if (c == '\n' || (c == '\r' && i + 1 < len && s[i + 1] == '\n')) {
            i += c == '\r';
            td_buf_adds(out, "\r\n");
            col = 0;
            continue;
        }
        bool at_eol = i + 1 == len || s[i + 1] == '\n' ||
                      (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n');
        if ((c == ' ' || c == '\t') && !at_eol) {
            /* white space at the end of a line is encoded: transports
             * strip it (RFC 2045 6.7 rule 3) */
            qp_unit(out, &col, (const char *)&s[i], 1);
        } else if (c >= 33 && c <= 126 && c != '=' && !(c == '.' && col == 0)) {
            /* a '.' opening a line is encoded too, so that no relay's
             * dot-stuffing can get it wrong */
            qp_unit(out, &col, (const char *)&s[i], 1);
        } else {
            qp_unit(out, &col, enc, 3);
        }
    }
    if (col > 0) {
        td_buf_adds(out, "\r\n");
    }
}

static void base64_lines(const unsigned char *data, size_t len, td_buf_t *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t col = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        size_t k = len - i < 3 ? len - i : 3;
        if (k > 1) {
            v |= (uint32_t)data[i + 1] << 8;
        }
        if (k > 2) {
            v |= data[i + 2];
        }
        char q[4] = { tab[(v >> 18) & 63], tab[(v >> 12) & 63], k > 1 ? tab[(v >> 6) & 63] : '=',
                      k > 2 ? tab[v & 63] : '=' };
        td_buf_add(out, q, 4);
        if ((col += 4) == LINE_MAX_COLS) {
            td_buf_adds(out, "\r\n");
            col = 0;
        }
    }
    if (col > 0) {
        td_buf_adds(out, "\r\n");
    }
}

/* ---- the message ------------------------------------------------------- */

/* A boundary no encoded body can contain: "=_" never occurs in
 * quoted-printable ('=' is always followed by hex digits or a line break)
 * nor in base64. Derived from the Message-ID, so rebuilding a message gives
 * the same bytes. */
static void make_boundary(const char *message_id, const char *role, char out[40])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    td_buf_t in = TD_BUF_INIT;

    td_buf_adds(&in, role);
    td_buf_addc(&in, '\n');
    td_buf_adds(&in, message_id);
    SHA256((const unsigned char *)in.data, in.len, md);
    td_buf_release(&in);
    memcpy(out, "=_td", 4);
    for (int i = 0; i < 12; i++) {
        out[4 + 2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[5 + 2 * i] = "0123456789abcdef"[md[i] & 15];
    }
    out[28] = '\0';
}

static void add_date(td_buf_t *out, int64_t ms)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    td_buf_addf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
                tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void add_text_part(td_buf_t *out, const char *type, const char *s, size_t len)
{
    td_buf_addf(out,
                "Content-Type: %s; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                type);
    td_mime_qp_encode(s, len, out);
}

/* Header names the builder writes itself, or that belong to transport and
 * signing: an extra header may not set them. */
static bool reserved_header(const char *name)
{
    static const char *const names[] = { "date",          "from",     "sender",
                                         "reply-to",      "to",       "cc",
                                         "bcc",           "subject",  "message-id",
                                         "mime-version",  "received", "return-path",
                                         "dkim-signature" };
    for (size_t i = 0; i < TD_ARRAY_LEN(names); i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return true;
        }
    }
    return strncasecmp(name, "list-", 5) == 0 || strncasecmp(name, "content-", 8) == 0;
}

static bool header_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 32 || c >= 127 || c == ':') {
            return false;
        }
    }
    return true;
}

/* Message-ID and List-Id: dot-atom-text "@" dot-atom-text (RFC 5322
 * 3.6.4); a List-Id (RFC 2919) is a dot-atom without '@'. */
static bool id_ok(const char *s, bool need_at)
{
    size_t n = strlen(s);
    int ats = 0;

    if (n == 0 || n > 250) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '@') {
            ats++;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+/=?^_`{|}~.-", c))) {
            return false;
        }
    }
    return need_at ? ats == 1 && s[0] != '@' && s[n - 1] != '@' : ats == 0;
}

/* A URL placed between angle brackets in List-Unsubscribe: printable
 * ASCII, no space and no '>'. */
static bool header_url_ok(const char *u, const char *scheme)
{
    size_t n = strlen(u);

    if (n == 0 || n > TD_MIME_MAX_HEADER || strncasecmp(u, scheme, strlen(scheme)) != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 32 || c >= 127 || c == '<' || c == '>' || c == '"') {
            return false;
        }
    }
    return true;
}

static int check_message(const td_mime_message_t *m, td_err_t *err)
{
    int rc;

    if (!td_mime_addr_valid(m->from_addr)) {
        return td_err_set(err, TD_EINVAL, "from", "from address is missing or not valid");
    }
    if (!td_mime_addr_valid(m->to_addr)) {
        return td_err_set(err, TD_EINVAL, "to", "to address is missing or not valid");
    }
    if (m->reply_to && !td_mime_addr_valid(m->reply_to)) {
        return td_err_set(err, TD_EINVAL, "reply_to", "reply-to address is not valid");
    }
    if (m->subject == NULL) {
        return td_err_set(err, TD_EINVAL, "subject", "subject is missing");
    }
    if ((rc = check_header_text(m->subject, "subject", err)) != TD_OK ||
        (m->from_name && (rc = check_header_text(m->from_name, "from_name", err)) != TD_OK) ||
        (m->to_name && (rc = check_header_text(m->to_name, "to_name", err)) != TD_OK) ||
        (m->list_name && (rc = check_header_text(m->list_name, "list_name", err)) != TD_OK)) {
        return rc;
    }
    if (m->message_id == NULL || !id_ok(m->message_id, true)) {
        return td_err_set(err, TD_EINVAL, "message_id",
                          "message id is missing or not of the form local@domain");
    }
    if (m->list_id && !id_ok(m->list_id, false)) {
        return td_err_set(err, TD_EINVAL, "list_id", "list id must be a dot-atom like a.b.c");
    }
    if (m->unsubscribe_url && !header_url_ok(m->unsubscribe_url, "https://") &&
        !header_url_ok(m->unsubscribe_url, "http://")) {
        return td_err_set(err, TD_EINVAL, "unsubscribe_url",
                          "unsubscribe URL must be an http(s) URL without spaces");
    }
    if (m->unsubscribe_mailto && !header_url_ok(m->unsubscribe_mailto, "mailto:")) {
        return td_err_set(err, TD_EINVAL, "unsubscribe_mailto",
                          "unsubscribe mailto must be a mailto: URL without spaces");
    }
    if ((m->html && m->html_len > TD_MIME_MAX_BODY) ||
        (m->text && m->text_len > TD_MIME_MAX_BODY)) {
        return td_err_set(err, TD_ETOOBIG,
                          m->html && m->html_len > TD_MIME_MAX_BODY ? "html" : "text",
                          "body is larger than %d bytes", TD_MIME_MAX_BODY);
    }
    if (m->html == NULL && m->text == NULL) {
        return td_err_set(err, TD_EINVAL, "html", "a message needs html or text");
    }
    if (m->n_headers < 0 || m->n_headers > TD_MIME_MAX_HEADERS) {
        return td_err_set(err, TD_ETOOBIG, "headers", "at most %d extra headers",
                          TD_MIME_MAX_HEADERS);
    }
    for (int i = 0; i < m->n_headers; i++) {
        const td_mime_header_t *x = &m->headers[i];
        if (x->name == NULL || !header_name_ok(x->name) || reserved_header(x->name)) {
            return td_err_set(err, TD_EINVAL, "headers",
                              "extra header name \"%.64s\" is not allowed", x->name ? x->name : "");
        }
        if (x->value == NULL || (rc = check_header_text(x->value, "headers", err)) != TD_OK) {
            return x->value ? rc
                            : td_err_set(err, TD_EINVAL, "headers", "extra header has no value");
        }
    }
    if (m->n_inlines < 0 || m->n_inlines > TD_MIME_MAX_INLINES) {
        return td_err_set(err, TD_ETOOBIG, "inlines", "at most %d inline images",
                          TD_MIME_MAX_INLINES);
    }
    for (int i = 0; i < m->n_inlines; i++) {
        const td_mime_inline_t *im = &m->inlines[i];
        if (m->html == NULL) {
            return td_err_set(err, TD_EINVAL, "inlines", "inline images need an html body");
        }
        if (im->cid == NULL || !(id_ok(im->cid, false) || id_ok(im->cid, true)) ||
            im->content_type == NULL || !header_name_ok(im->content_type) ||
            strchr(im->content_type, '/') == NULL || im->data == NULL) {
            return td_err_set(err, TD_EINVAL, "inlines",
                              "inline image %d needs a cid, a type and data", i);
        }
        if (im->len > TD_MIME_MAX_BODY) {
            return td_err_set(err, TD_ETOOBIG, "inlines", "inline image %d is larger than %d bytes",
                              i, TD_MIME_MAX_BODY);
        }
        if (im->filename && (!is_ascii_printable(im->filename, strlen(im->filename)) ||
                             strpbrk(im->filename, "\"\\") || strlen(im->filename) > 200)) {
            return td_err_set(err, TD_EINVAL, "inlines",
                              "inline image %d: filename must be plain ASCII", i);
        }
    }
    return TD_OK;
}

static void add_headers(const td_mime_message_t *m, td_buf_t *out)
{
    hdr_t h;
    char id[300];

    add_date(out, m->date_ms);
    hdr_start(&h, out, "From");
    hdr_mailbox(&h, m->from_name, m->from_addr);
    hdr_end(&h);
    if (m->reply_to) {
        hdr_start(&h, out, "Reply-To");
        hdr_mailbox(&h, NULL, m->reply_to);
        hdr_end(&h);
    }
    hdr_start(&h, out, "To");
    hdr_mailbox(&h, m->to_name, m->to_addr);
    hdr_end(&h);
    hdr_start(&h, out, "Subject");
    hdr_unstructured(&h, m->subject);
    hdr_end(&h);
    hdr_start(&h, out, "Message-ID");
    snprintf(id, sizeof(id), "<%s>", m->message_id);
    hdr_token(&h, id, strlen(id));
    hdr_end(&h);
    if (m->list_id) {
        hdr_start(&h, out, "List-Id");
        if (m->list_name && *m->list_name) {
            hdr_mailbox(&h, m->list_name, m->list_id);
        } else {
            snprintf(id, sizeof(id), "<%s>", m->list_id);
            hdr_token(&h, id, strlen(id));
        }
        hdr_end(&h);
    }
    if (m->unsubscribe_mailto || m->unsubscribe_url) {
        td_buf_t u = TD_BUF_INIT;
        hdr_start(&h, out, "List-Unsubscribe");
        if (m->unsubscribe_mailto) {
            td_buf_addf(&u, "<%s>", m->unsubscribe_mailto);
            hdr_token(&h, u.data, u.len);
            if (m->unsubscribe_url) {
                hdr_glue(&h, ",");
            }
        }
        if (m->unsubscribe_url) {
            td_buf_reset(&u);
            td_buf_addf(&u, "<%s>", m->unsubscribe_url);
            hdr_token(&h, u.data, u.len);
        }
        hdr_end(&h);
        td_buf_release(&u);
        if (m->unsubscribe_url) {
            /* RFC 8058: one-click needs an https URL and this exact value */
            td_buf_adds(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
        }
    }
    for (int i = 0; i < m->n_headers; i++) {
        hdr_start(&h, out, m->headers[i].name);
        hdr_unstructured(&h, m->headers[i].value);
        hdr_end(&h);
    }
    td_buf_adds(out, "MIME-Version: 1.0\r\n");
}

static void add_related(const td_mime_message_t *m, const char *boundary, td_buf_t *out)
{
    td_buf_addf(out, "Content-Type: multipart/related; boundary=\"%s\"\r\n\r\n", boundary);
    td_buf_addf(out, "--%s\r\n", boundary);
    add_text_part(out, "text/html", m->html, m->html_len);
    for (int i = 0; i < m->n_inlines; i++) {
        const td_mime_inline_t *im = &m->inlines[i];
        td_buf_addf(out, "--%s\r\nContent-Type: %s\r\nContent-Transfer-Encoding: base64\r\n",
                    boundary, im->content_type);
        td_buf_addf(out, "Content-ID: <%s>\r\n", im->cid);
        if (im->filename) {
            td_buf_addf(out, "Content-Disposition: inline; filename=\"%s\"\r\n", im->filename);
        } else {
            td_buf_adds(out, "Content-Disposition: inline\r\n");
        }
        td_buf_adds(out, "\r\n");
        base64_lines(im->data, im->len, out);
    }
    td_buf_addf(out, "--%s--\r\n", boundary);
}

int td_mime_build(const td_mime_message_t *m, td_buf_t *out, td_err_t *err)
{
    td_buf_t text = TD_BUF_INIT;
    const char *tx;
    size_t tx_len;
    char alt[40], rel[40];
    int rc;

    if ((rc = check_message(m, err)) != TD_OK) {
        return rc;
    }
    if (m->text) {
        tx = m->text, tx_len = m->text_len;
    } else {
        td_html_to_text(m->html, m->html_len, &text);
        tx = text.data ? text.data : "", tx_len = text.len;
        if (tx_len > TD_MIME_MAX_BODY) {
            td_buf_release(&text);
            return td_err_set(err, TD_ETOOBIG, "text", "body is larger than %d bytes",
                              TD_MIME_MAX_BODY);
        }
    }
    add_headers(m, out);
    if (m->html == NULL) {
        add_text_part(out, "text/plain", tx, tx_len);
        td_buf_release(&text);
        return TD_OK;
    }
    make_boundary(m->message_id, "alternative", alt);
    td_buf_addf(out, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", alt);
    td_buf_addf(out, "--%s\r\n", alt);
    add_text_part(out, "text/plain", tx, tx_len);
    td_buf_addf(out, "--%s\r\n", alt);
    if (m->n_inlines > 0) {
        make_boundary(m->message_id, "related", rel);
        add_related(m, rel, out);
    } else {
        add_text_part(out, "text/html", m->html, m->html_len);
    }
    td_buf_addf(out, "--%s--\r\n", alt);
    td_buf_release(&text);
    return TD_OK;
}

void td_message_id_for(int64_t instance_id, const char *step_id, const char *domain, char *out,
                       size_t len)
{
    char step[48];
    size_t n = step_id ? strlen(step_id) : 0;
    bool plain = n > 0 && n <= 40;

    for (size_t i = 0; plain && i < n; i++) {
        unsigned char c = (unsigned char)step_id[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-';
    }
    if (plain) {
        snprintf(step, sizeof(step), "%s", step_id);
    } else {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)(step_id ? step_id : ""), n, md);
        step[0] = 'h';
        for (int i = 0; i < 8; i++) {
            step[1 + 2 * i] = "0123456789abcdef"[md[i] >> 4];
            step[2 + 2 * i] = "0123456789abcdef"[md[i] & 15];
        }
        step[17] = '\0';
    }
    snprintf(out, len, "tandem.%lld.%s@%s", (long long)instance_id, step,
             domain && *domain ? domain : "localhost");
}
