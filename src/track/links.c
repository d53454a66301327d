/* Tracking tokens (make and check), the tracked URLs built from them, and
 * the rewrite of an HTML body's links. Pure: keys come in, no I/O. The
 * token format is described in track.h. */
#include "track/track.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/banned.h"

#define TOKEN_VERSION 1
#define TAG_LEN       16
#define HEAD_LEN      5 /* kind, issued seconds (4 bytes) */

/* field tags inside the payload */
enum {
    F_MESSAGE = 'm',
    F_EMAIL = 'e',
    F_JOURNEY = 'j',
    F_STEP = 's',
    F_INSTANCE = 'i',
    F_LABEL = 'l',
    F_LINK = 'n',
    F_URL = 'u'
};

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void td_track_key_derive(const void *secret, size_t len, td_track_key_t *out)
{
    static const char mac_info[] = "tandem track mac v1";
    static const char enc_info[] = "tandem track enc v1";
    unsigned int n = 0;

    /* two independent keys from one secret: HMAC as a PRF keyed by it */
    HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)mac_info, sizeof(mac_info) - 1,
         out->mac, &n);
    HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)enc_info, sizeof(enc_info) - 1,
         out->enc, &n);
}

/* ---- base64url ---------------------------------------------------------- */

static void b64url_encode(const unsigned char *p, size_t n, td_buf_t *out)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t k = n - i < 3 ? n - i : 3;
        if (k > 1) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (k > 2) {
            v |= p[i + 2];
        }
        td_buf_addc(out, b64url[(v >> 18) & 63]);
        td_buf_addc(out, b64url[(v >> 12) & 63]);
        if (k > 1) {
            td_buf_addc(out, b64url[(v >> 6) & 63]);
        }
        if (k > 2) {
            td_buf_addc(out, b64url[v & 63]);
        }
    }
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Strict: only the url-safe alphabet, no padding, no stray bits in the
 * last character (so one token has exactly one spelling). Returns the
 * decoded length, or -1. */
static long b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (n % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) {
                return -1;
            }
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc != 0 ? -1 : (long)o;
}

/* ---- payload ---------------------------------------------------------- */

static void put_field(td_buf_t *b, int tag, const char *v, size_t n)
{
    if (n == 0) {
        return;
    }
    td_buf_addc(b, (char)tag);
    /* LEB128 length: one byte below 128, two up to 16383 */
    if (n < 128) {
        td_buf_addc(b, (char)n);
    } else {
        td_buf_addc(b, (char)(0x80 | (n & 0x7F)));
        td_buf_addc(b, (char)(n >> 7));
    }
    td_buf_add(b, v, n);
}

static void put_int(td_buf_t *b, int tag, int64_t v)
{
    char num[24];

    if (v > 0) {
        put_field(b, tag, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)v));
    }
}

/* A click target: http(s), printable ASCII without spaces, so it is safe
 * in a Location header and unambiguous in HTML. */
static bool url_ok(const char *u, size_t n)
{
    if (n == 0 || n > TD_TRACK_MAX_URL ||
        !(strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 32 || c >= 127) {
            return false;
        }
    }
    return true;
}

static bool field_ok(const char *s, size_t *n)
{
    *n = strnlen(s, TD_TRACK_MAX_FIELD + 1);
    return *n <= TD_TRACK_MAX_FIELD;
}

int td_track_token_encode(const td_track_key_t *key, const td_track_token_t *t, td_buf_t *out)
{
    td_buf_t plain = TD_BUF_INIT;
    unsigned char mac[EVP_MAX_MD_SIZE], *ct = NULL, head[1] = { TOKEN_VERSION };
    unsigned int mac_len = 0;
    size_t nm, ne, nj, ns, nl, nu = strnlen(t->url, TD_TRACK_MAX_URL + 1);
    int64_t secs = t->issued_ms / 1000;
    int rc = TD_EINVAL;

    if ((t->kind != TD_TRACK_OPEN && t->kind != TD_TRACK_CLICK && t->kind != TD_TRACK_UNSUB) ||
        !field_ok(t->message_id, &nm) || !field_ok(t->email, &ne) || !field_ok(t->journey, &nj) ||
        !field_ok(t->step, &ns) || !field_ok(t->label, &nl) || nu > TD_TRACK_MAX_URL ||
        t->instance < 0 || t->link < 0 || (t->kind == TD_TRACK_CLICK && !url_ok(t->url, nu))) {
        return TD_EINVAL;
    }
    secs = secs < 0 ? 0 : secs > 0xFFFFFFFFLL ? 0xFFFFFFFFLL : secs;
    td_buf_addc(&plain, (char)t->kind);
    for (int shift = 24; shift >= 0; shift -= 8) {
        td_buf_addc(&plain, (char)((secs >> shift) & 0xFF));
    }
    put_field(&plain, F_MESSAGE, t->message_id, nm);
    put_field(&plain, F_EMAIL, t->email, ne);
    put_field(&plain, F_JOURNEY, t->journey, nj);
    put_field(&plain, F_STEP, t->step, ns);
    put_int(&plain, F_INSTANCE, t->instance);
    put_field(&plain, F_LABEL, t->label, nl);
    put_int(&plain, F_LINK, t->link);
    put_field(&plain, F_URL, t->url, nu);

    /* tag = HMAC(version || payload): authenticates, and is the IV */
    td_buf_t macin = TD_BUF_INIT;
    td_buf_add(&macin, head, 1);
    td_buf_add(&macin, plain.data, plain.len);
    HMAC(EVP_sha256(), key->mac, sizeof(key->mac), (const unsigned char *)macin.data, macin.len,
         mac, &mac_len);
    td_buf_release(&macin);

    ct = td_xmalloc(1 + TAG_LEN + plain.len);
    ct[0] = TOKEN_VERSION;
    memcpy(ct + 1, mac, TAG_LEN);
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int outl = 0, finl = 0;
    if (cx == NULL || EVP_EncryptInit_ex(cx, EVP_aes_256_ctr(), NULL, key->enc, mac) != 1 ||
        EVP_EncryptUpdate(cx, ct + 1 + TAG_LEN, &outl, (const unsigned char *)plain.data,
                          (int)plain.len) != 1 ||
        EVP_EncryptFinal_ex(cx, ct + 1 + TAG_LEN + outl, &finl) != 1) {
        rc = TD_EIO;
        goto out;
    }
    b64url_encode(ct, 1 + TAG_LEN + plain.len, out);
    rc = TD_OK;
out:
    EVP_CIPHER_CTX_free(cx);
    free(ct);
    td_buf_release(&plain);
    return rc;
}

static bool take_text(char *dst, size_t cap, const unsigned char *v, size_t n)
{
    if (n >= cap || memchr(v, '\0', n)) {
        return false;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
    return true;
}

static bool take_int(int64_t *dst, const unsigned char *v, size_t n, int64_t max)
{
    int64_t x = 0;

    if (n == 0 || n > 18 || v[0] == '0') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
        x = x * 10 + (v[i] - '0');
    }
    if (x > max) {
        return false;
    }
    *dst = x;
    return true;
}

static bool parse_payload(const unsigned char *p, size_t n, td_track_token_t *t)
{
    unsigned seen = 0;
    size_t i = HEAD_LEN;

    if (n < HEAD_LEN) {
        return false;
    }
    t->kind = (td_track_kind_t)p[0];
    if (t->kind != TD_TRACK_OPEN && t->kind != TD_TRACK_CLICK && t->kind != TD_TRACK_UNSUB) {
        return false;
    }
    t->issued_ms =
        (int64_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) | p[4]) *
        1000;
    while (i < n) {
        int tag = p[i++];
        size_t len;
        if (i >= n) {
            return false;
        }
        len = p[i] & 0x7F;
        if (p[i++] & 0x80) {
            if (i >= n || (p[i] & 0x80)) {
                return false;
            }
            len |= (size_t)p[i++] << 7;
        }
        if (len == 0 || len > n - i) {
            return false;
        }
        const char *names = "mejsilnu";
        const char *at = strchr(names, tag);
        if (tag == 0 || at == NULL || (seen & (1u << (at - names)))) {
            return false; /* unknown or repeated field */
        }
        seen |= 1u << (at - names);
        const unsigned char *v = p + i;
        int64_t num = 0;
        bool ok;
        switch (tag) {
        case F_MESSAGE:
            ok = take_text(t->message_id, sizeof(t->message_id), v, len);
            break;
        case F_EMAIL:
            ok = take_text(t->email, sizeof(t->email), v, len);
            break;
        case F_JOURNEY:
            ok = take_text(t->journey, sizeof(t->journey), v, len);
            break;
        case F_STEP:
            ok = take_text(t->step, sizeof(t->step), v, len);
            break;
        case F_LABEL:
            ok = take_text(t->label, sizeof(t->label), v, len);
            break;
        case F_URL:
            ok = take_text(t->url, sizeof(t->url), v, len) && url_ok(t->url, len);
            break;
        case F_INSTANCE:
            ok = take_int(&t->instance, v, len, INT64_MAX / 10);
            break;
        default: /* F_LINK */
            ok = take_int(&num, v, len, 1000000);
            t->link = (int)num;
            break;
        }
        if (!ok) {
            return false;
        }
        i += len;
    }
    return t->kind != TD_TRACK_CLICK || t->url[0] != '\0';
}

int td_track_token_decode(const td_track_key_t *key, const char *token, size_t len,
                          td_track_token_t *out)
{
    unsigned char raw[(TD_TRACK_MAX_TOKEN / 4 + 1) * 3], plain[sizeof(raw)];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    long n;
    int outl = 0, finl = 0;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    if (token == NULL || len > TD_TRACK_MAX_TOKEN ||
        (n = b64url_decode(token, len, raw, sizeof(raw))) < 1 + TAG_LEN + HEAD_LEN ||
        raw[0] != TOKEN_VERSION) {
        return TD_EINVAL;
    }
    size_t ct_len = (size_t)n - 1 - TAG_LEN;
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    if (cx == NULL || EVP_DecryptInit_ex(cx, EVP_aes_256_ctr(), NULL, key->enc, raw + 1) != 1 ||
        EVP_DecryptUpdate(cx, plain + 1, &outl, raw + 1 + TAG_LEN, (int)ct_len) != 1 ||
        EVP_DecryptFinal_ex(cx, plain + 1 + outl, &finl) != 1) {
        EVP_CIPHER_CTX_free(cx);
        return TD_EINVAL;
    }
    EVP_CIPHER_CTX_free(cx);
    /* the MAC input is version || payload: plain[0] holds the version */
    plain[0] = TOKEN_VERSION;
    HMAC(EVP_sha256(), key->mac, sizeof(key->mac), plain, 1 + ct_len, mac, &mac_len);
    ok = CRYPTO_memcmp(mac, raw + 1, TAG_LEN) == 0 && parse_payload(plain + 1, ct_len, out);
    OPENSSL_cleanse(plain, sizeof(plain));
    if (!ok) {
        memset(out, 0, sizeof(*out));
        return TD_EINVAL;
    }
    return TD_OK;
}

bool td_track_token_expired(const td_track_token_t *t, int64_t now_ms, int64_t max_age_ms)
{
    return max_age_ms > 0 && now_ms - t->issued_ms > max_age_ms;
}

/* ---- URLs --------------------------------------------------------------- */

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void fill_common(const td_track_ctx_t *c, td_track_kind_t kind, td_track_token_t *t)
{
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->issued_ms = c->now_ms;
    copy_field(t->message_id, sizeof(t->message_id), c->message_id);
    copy_field(t->email, sizeof(t->email), c->email);
    copy_field(t->journey, sizeof(t->journey), c->journey);
    copy_field(t->step, sizeof(t->step), c->step);
    t->instance = c->instance > 0 ? c->instance : 0;
}

static size_t base_len(const char *base)
{
    size_t n = base ? strlen(base) : 0;

    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    return n;
}

static int make_url(const td_track_ctx_t *c, const td_track_token_t *t, const char *kind,
                    td_buf_t *out)
{
    size_t mark = out->len;
    int rc;

    td_buf_add(out, c->base_url ? c->base_url : "", base_len(c->base_url));
    td_buf_adds(out, "/t/");
    td_buf_adds(out, kind);
    td_buf_addc(out, '/');
    if ((rc = td_track_token_encode(c->key, t, out)) != TD_OK) {
        out->len = mark;
        if (out->data) {
            out->data[mark] = '\0';
        }
    }
    return rc;
}

int td_track_click_url(const td_track_ctx_t *c, const char *url, const char *label, int link,
                       td_buf_t *out)
{
    td_track_token_t t;

    fill_common(c, TD_TRACK_CLICK, &t);
    if (url == NULL || strlen(url) > TD_TRACK_MAX_URL) {
        return TD_EINVAL;
    }
    copy_field(t.url, sizeof(t.url), url);
    copy_field(t.label, sizeof(t.label), label);
    t.link = link > 0 ? link : 0;
    return make_url(c, &t, "c", out);
}

int td_track_open_url(const td_track_ctx_t *c, td_buf_t *out)
{
    td_track_token_t t;

    fill_common(c, TD_TRACK_OPEN, &t);
    return make_url(c, &t, "o", out);
}

int td_track_unsubscribe_url(const td_track_ctx_t *c, td_buf_t *out)
{
    td_track_token_t t;

    fill_common(c, TD_TRACK_UNSUB, &t);
    return make_url(c, &t, "u", out);
}

/* ---- HTML rewrite ------------------------------------------------------- */

static bool ci_prefix(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);

    return (size_t)(end - p) >= n && strncasecmp(p, lit, n) == 0;
}

static const char *ci_find(const char *p, const char *end, const char *lit)
{
    for (; p < end; p++) {
        if (ci_prefix(p, end, lit)) {
            return p;
        }
    }
    return NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static void add_utf8(td_buf_t *b, unsigned long cp)
{
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        cp = 0xFFFD;
    }
    if (cp < 0x80) {
        td_buf_addc(b, (char)cp);
    } else if (cp < 0x800) {
        td_buf_addc(b, (char)(0xC0 | (cp >> 6)));
        td_buf_addc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        td_buf_addc(b, (char)(0xE0 | (cp >> 12)));
        td_buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        td_buf_addc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        td_buf_addc(b, (char)(0xF0 | (cp >> 18)));
        td_buf_addc(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        td_buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        td_buf_addc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* An attribute value as the browser reads it: the character references
 * that matter in URLs and labels decoded, others left as written. */
static void decode_attr(const char *p, const char *end, td_buf_t *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {
        { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' }
    };

    while (p < end) {
        if (*p != '&') {
            td_buf_addc(out, *p++);
            continue;
        }
        bool done = false;
        for (size_t i = 0; i < TD_ARRAY_LEN(named) && !done; i++) {
            if (ci_prefix(p + 1, end, named[i].name)) {
                td_buf_addc(out, named[i].c);
                p += 1 + strlen(named[i].name);
                done = true;
            }
        }
        if (!done && p + 2 < end && p[1] == '#') {
            bool hex = p[2] == 'x' || p[2] == 'X';
            const char *q = p + (hex ? 3 : 2);
            unsigned long cp = 0;
            int digits = 0;
            for (; q < end && digits < 8; q++, digits++) {
                int v = *q >= '0' && *q <= '9'          ? *q - '0'
                        : hex && *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
                        : hex && *q >= 'A' && *q <= 'F' ? *q - 'A' + 10
                                                        : -1;
                if (v < 0) {
                    break;
                }
                cp = cp * (hex ? 16 : 10) + (unsigned long)v;
            }
            if (digits > 0 && digits < 8) {
                add_utf8(out, cp);
                p = q < end && *q == ';' ? q + 1 : q;
                done = true;
            }
        }
        if (!done) {
            td_buf_addc(out, *p++);
        }
    }
}

/* A URL from an href, made safe for a token: surrounding white space
 * removed, spaces and bytes outside printable ASCII percent-encoded. */
static void clean_url(const char *s, size_t n, td_buf_t *out)
{
    while (n > 0 && is_space(*s)) {
        s++, n--;
    }
    while (n > 0 && is_space(s[n - 1])) {
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127) {
            if (c == '\n' || c == '\r' || c == '\t') {
                continue; /* browsers drop these inside URLs */
            }
            td_buf_addf(out, "%%%02X", c);
        } else {
            td_buf_addc(out, (char)c);
        }
    }
}

typedef struct attr {
    const char *v, *v_end;       /* value, without quotes */
    const char *span, *span_end; /* the whole value as written, quotes included */
    bool present;
} attr_t;

/* Parses the attributes of a tag starting after its name; returns the
 * position after the closing '>', or NULL when the tag does not end (then
 * it is copied as it is). */
static const char *parse_attrs(const char *p, const char *end, attr_t *href, attr_t *label,
                               attr_t *track)
{
    while (p < end) {
        while (p < end && (is_space(*p) || *p == '/')) {
            p++;
        }
        if (p >= end) {
            return NULL;
        }
        if (*p == '>') {
            return p + 1;
        }
        const char *name = p;
        while (p < end && !is_space(*p) && *p != '=' && *p != '>' && *p != '/') {
            p++;
        }
        size_t name_len = (size_t)(p - name);
        while (p < end && is_space(*p)) {
            p++;
        }
        attr_t a = { 0 };
        if (p < end && *p == '=') {
            p++;
            while (p < end && is_space(*p)) {
                p++;
            }
            if (p >= end) {
                return NULL;
            }
            a.span = p;
            if (*p == '"' || *p == '\'') {
                const char *close = memchr(p + 1, *p, (size_t)(end - p - 1));
                if (close == NULL) {
                    return NULL;
                }
                a.v = p + 1, a.v_end = close;
                p = close + 1;
            } else {
                a.v = p;
                while (p < end && !is_space(*p) && *p != '>') {
                    p++;
                }
                a.v_end = p;
            }
            a.span_end = p;
            a.present = true;
        }
        attr_t *slot = name_len == 4 && strncasecmp(name, "href", 4) == 0           ? href
                       : name_len == 10 && strncasecmp(name, "data-label", 10) == 0 ? label
                       : name_len == 10 && strncasecmp(name, "data-track", 10) == 0 ? track
                                                                                    : NULL;
        if (slot && !slot->present) {
            *slot = a;
        }
    }
    return NULL;
}

static void append_pixel(const td_track_ctx_t *c, td_buf_t *body, size_t start, td_buf_t *out)
{
    td_buf_t px = TD_BUF_INIT;
    const char *b = body->data ? body->data + start : "";
    const char *end = b + (body->len - start), *last = NULL;

    td_buf_adds(&px, "<img src=\"");
    if (td_track_open_url(c, &px) != TD_OK) {
        td_buf_add(out, b, (size_t)(end - b));
        td_buf_release(&px);
        return;
    }
    td_buf_adds(&px, "\" width=\"1\" height=\"1\" alt=\"\" "
                     "style=\"display:block;width:1px;height:1px;border:0\">");
    for (const char *p = b; (p = ci_find(p, end, "</body")) != NULL; p++) {
        last = p;
    }
    if (last == NULL) {
        td_buf_add(out, b, (size_t)(end - b));
        td_buf_add(out, px.data, px.len);
    } else {
        td_buf_add(out, b, (size_t)(last - b));
        td_buf_add(out, px.data, px.len);
        td_buf_add(out, last, (size_t)(end - last));
    }
    td_buf_release(&px);
}

int td_track_rewrite_html(const td_track_ctx_t *c, const char *html, size_t len, td_buf_t *out,
                          int *n_links)
{
    const char *p = html, *end = html + len;
    td_buf_t body = TD_BUF_INIT, url = TD_BUF_INIT, raw = TD_BUF_INIT, label = TD_BUF_INIT;
    size_t blen = base_len(c->base_url);
    int links = 0;

    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (lt == NULL) {
            td_buf_add(&body, p, (size_t)(end - p));
            break;
        }
        td_buf_add(&body, p, (size_t)(lt - p));
        p = lt;
        /* comments and raw-text elements are copied untouched */
        const char *skip_to = NULL;
        if (ci_prefix(p, end, "<!--")) {
            const char *close = ci_find(p + 4, end, "-->");
            skip_to = close ? close + 3 : end;
        } else if (ci_prefix(p, end, "<script")) {
            const char *close = ci_find(p + 7, end, "</script");
            skip_to = close ? close : end;
        } else if (ci_prefix(p, end, "<style")) {
            const char *close = ci_find(p + 6, end, "</style");
            skip_to = close ? close : end;
        }
        if (skip_to) {
            td_buf_add(&body, p, (size_t)(skip_to - p));
            p = skip_to;
            continue;
        }
        if (!(ci_prefix(p, end, "<a") && p + 2 < end && (is_space(p[2]) || p[2] == '/'))) {
            td_buf_addc(&body, *p++);
            continue;
        }
        attr_t href = { 0 }, lab = { 0 }, track = { 0 };
        const char *tag_end = parse_attrs(p + 2, end, &href, &lab, &track);
        if (tag_end == NULL) {
            td_buf_add(&body, p, (size_t)(end - p));
            break;
        }
        td_buf_reset(&raw);
        td_buf_reset(&url);
        if (href.present) {
            decode_attr(href.v, href.v_end, &raw);
            clean_url(raw.data ? raw.data : "", raw.len, &url);
        }
        bool off =
            track.present && track.v_end - track.v == 3 && strncasecmp(track.v, "off", 3) == 0;
        bool ours = blen > 0 && url.len > blen + 3 && strncmp(url.data, c->base_url, blen) == 0 &&
                    strncmp(url.data + blen, "/t/", 3) == 0;
        bool web = url.len > 0 && (strncasecmp(url.data, "http://", 7) == 0 ||
                                   strncasecmp(url.data, "https://", 8) == 0);
        if (!href.present || off || ours || !web || links >= TD_TRACK_MAX_LINKS ||
            url.len > TD_TRACK_MAX_URL) {
            td_buf_add(&body, p, (size_t)(tag_end - p));
            p = tag_end;
            continue;
        }
        td_buf_reset(&label);
        if (lab.present) {
            decode_attr(lab.v, lab.v_end, &label);
        }
        if (label.len == 0 || label.len > TD_TRACK_MAX_FIELD) {
            td_buf_reset(&label);
            td_buf_addf(&label, "link:%d", links + 1);
        }
        size_t mark = body.len;
        td_buf_add(&body, p, (size_t)(href.span - p));
        td_buf_addc(&body, '"');
        if (td_track_click_url(c, url.data, label.data, links + 1, &body) != TD_OK) {
            body.len = mark;
            body.data[mark] = '\0';
            td_buf_add(&body, p, (size_t)(tag_end - p));
        } else {
            td_buf_addc(&body, '"');
            td_buf_add(&body, href.span_end, (size_t)(tag_end - href.span_end));
            links++;
        }
        p = tag_end;
    }
    append_pixel(c, &body, 0, out);
    td_buf_release(&body);
    td_buf_release(&url);
    td_buf_release(&raw);
    td_buf_release(&label);
    if (n_links) {
        *n_links = links;
    }
    return TD_OK;
}
