/* Growable NUL-terminated buffers. */
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void td_buf_init(td_buf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void td_buf_release(td_buf_t *b)
{
    free(b->data);
    td_buf_init(b);
}

char *td_buf_detach(td_buf_t *b)
{
    char *s;

    td_buf_grow(b, 0);
    s = b->data;
    td_buf_init(b);
    return s;
}

void td_buf_reset(td_buf_t *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

void td_buf_grow(td_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;

    if (need < b->len) {
        TD_BUG("buffer size overflow");
    }
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    b->data = td_xrealloc(b->data, cap);
    if (b->cap == 0) {
        b->data[0] = '\0';
    }
    b->cap = cap;
}

void td_buf_add(td_buf_t *b, const void *data, size_t len)
{
    td_buf_grow(b, len);
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
}

void td_buf_adds(td_buf_t *b, const char *s)
{
    td_buf_add(b, s, strlen(s));
}

void td_buf_addc(td_buf_t *b, char c)
{
    td_buf_add(b, &c, 1);
}

void td_buf_vaddf(td_buf_t *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;

    td_buf_grow(b, 64);
    va_copy(cp, ap);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, cp);
    va_end(cp);
    if (n < 0) {
        TD_BUG("vsnprintf failed for \"%s\"", fmt);
    }
    if ((size_t)n >= b->cap - b->len) {
        td_buf_grow(b, (size_t)n);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    }
    b->len += (size_t)n;
}

void td_buf_addf(td_buf_t *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    td_buf_vaddf(b, fmt, ap);
    va_end(ap);
}

void td_buf_add_double(td_buf_t *b, double v)
{
    char tmp[40];

    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    td_buf_adds(b, tmp);
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80;
        hi = s[0] == 0xed ? 0x9f : 0xbf;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;
        hi = s[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n > avail || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

void td_buf_add_json_str(td_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    td_buf_addc(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* JSON is UTF-8: bytes that are not (an id echoed in an error
             * message, say) become U+FFFD rather than an invalid document */
            size_t n = utf8_len((const unsigned char *)s + i, len - i);
            if (n == 0) {
                td_buf_adds(b, "\\ufffd");
            } else {
                td_buf_add(b, s + i, n);
                i += n - 1;
            }
        } else if (c == '"' || c == '\\') {
            td_buf_addc(b, '\\');
            td_buf_addc(b, (char)c);
        } else if (c == '\n') {
            td_buf_adds(b, "\\n");
        } else if (c == '\r') {
            td_buf_adds(b, "\\r");
        } else if (c == '\t') {
            td_buf_adds(b, "\\t");
        } else if (c < 0x20) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            td_buf_add(b, esc, sizeof(esc));
        } else {
            td_buf_addc(b, (char)c);
        }
    }
    td_buf_addc(b, '"');
}
