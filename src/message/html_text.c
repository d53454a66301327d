/* The text/plain alternative of an HTML email, made from the HTML itself:
 * readable text with paragraphs, list items and table rows on their own
 * lines, links as "text (url)", entities decoded. It is not an HTML parser:
 * it reads tags and text in one pass, tolerates any input, and knows just
 * enough about email markup (layout tables, hidden preheaders, conditional
 * comments) to produce what a reader expects. Pure; never fails. */
#include "message/message.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define MAX_LISTS 8

typedef struct h2t {
    td_buf_t *out;
    size_t start;   /* out->len when we began */
    int pending_nl; /* line breaks wanted before the next text: 1 newline, 2 blank line */
    bool pending_space;
    const char *prefix; /* list marker for the next text */
    int list_depth;
    int ol_next[MAX_LISTS]; /* next number of an <ol>, 0 for <ul> */
    int pre;
    int skip;           /* depth inside a skipped element */
    char skip_name[16]; /* its tag name */
    char number[16];    /* the marker of the current <ol> item */
    bool in_link;
    size_t link_start;
    td_buf_t href;
} h2t_t;

/* ---- output ---- */

static size_t trailing_newlines(const h2t_t *st)
{
    size_t n = 0, i = st->out->len;

    while (i > st->start && st->out->data[i - 1] == '\n') {
        n++;
        i--;
    }
    return n;
}

static void trim_line_end(h2t_t *st)
{
    while (st->out->len > st->start && st->out->data[st->out->len - 1] == ' ') {
        st->out->len--;
    }
    st->out->data[st->out->len] = '\0';
}

static void newline(h2t_t *st, size_t want)
{
    if (st->out->len == st->start) {
        return;
    }
    trim_line_end(st);
    for (size_t n = trailing_newlines(st); n < want && n < 2; n++) {
        td_buf_addc(st->out, '\n');
    }
}

static void want_nl(h2t_t *st, int n)
{
    if (st->pending_nl < n) {
        st->pending_nl = n;
    }
}

/* Everything pending goes out before the next visible character. */
static void flush(h2t_t *st)
{
    if (st->pending_nl > 0) {
        newline(st, (size_t)st->pending_nl);
    } else if (st->pending_space && st->out->len > st->start) {
        char last = st->out->data[st->out->len - 1];
        if (last != ' ' && last != '\n') {
            td_buf_addc(st->out, ' ');
        }
    }
    st->pending_nl = 0;
    st->pending_space = false;
    if (st->prefix) {
        for (int i = 1; i < st->list_depth; i++) {
            td_buf_adds(st->out, "  ");
        }
        td_buf_adds(st->out, st->prefix);
        st->prefix = NULL;
    }
}

static void put_visible(h2t_t *st, const char *s, size_t len)
{
    flush(st);
    td_buf_add(st->out, s, len);
}

static void put_char(h2t_t *st, char c)
{
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        if (st->pre > 0) {
            if (c == '\n') {
                flush(st);
                td_buf_addc(st->out, '\n');
            } else if (c != '\r') {
                put_visible(st, " ", 1);
            }
        } else {
            st->pending_space = true;
        }
        return;
    }
    put_visible(st, &c, 1);
}

/* ---- entities ---- */

typedef struct entity {
    const char *name;
    uint32_t cp;
} entity_t;

static const entity_t entities[] = {
    { "amp", '&' },      { "lt", '<' },        { "gt", '>' },       { "quot", '"' },
    { "apos", '\'' },    { "nbsp", 0xA0 },     { "copy", 0xA9 },    { "reg", 0xAE },
    { "trade", 0x2122 }, { "hellip", 0x2026 }, { "mdash", 0x2014 }, { "ndash", 0x2013 },
    { "lsquo", 0x2018 }, { "rsquo", 0x2019 },  { "sbquo", 0x201A }, { "ldquo", 0x201C },
    { "rdquo", 0x201D }, { "bdquo", 0x201E },  { "bull", 0x2022 },  { "middot", 0xB7 },
    { "euro", 0x20AC },  { "pound", 0xA3 },    { "yen", 0xA5 },     { "cent", 0xA2 },
    { "times", 0xD7 },   { "divide", 0xF7 },   { "deg", 0xB0 },     { "laquo", 0xAB },
    { "raquo", 0xBB },   { "rarr", 0x2192 },   { "larr", 0x2190 },  { "zwnj", 0x200C },
    { "zwj", 0x200D },   { "shy", 0xAD },      { "iexcl", 0xA1 },   { "iquest", 0xBF },
    { "sect", 0xA7 },    { "para", 0xB6 },     { "ordf", 0xAA },    { "ordm", 0xBA },
    { "szlig", 0xDF },   { "Agrave", 0xC0 },   { "Aacute", 0xC1 },  { "Acirc", 0xC2 },
    { "Atilde", 0xC3 },  { "Auml", 0xC4 },     { "Aring", 0xC5 },   { "AElig", 0xC6 },
    { "Ccedil", 0xC7 },  { "Egrave", 0xC8 },   { "Eacute", 0xC9 },  { "Ecirc", 0xCA },
    { "Euml", 0xCB },    { "Igrave", 0xCC },   { "Iacute", 0xCD },  { "Icirc", 0xCE },
    { "Iuml", 0xCF },    { "Ntilde", 0xD1 },   { "Ograve", 0xD2 },  { "Oacute", 0xD3 },
    { "Ocirc", 0xD4 },   { "Otilde", 0xD5 },   { "Ouml", 0xD6 },    { "Oslash", 0xD8 },
    { "Ugrave", 0xD9 },  { "Uacute", 0xDA },   { "Ucirc", 0xDB },   { "Uuml", 0xDC },
    { "Yacute", 0xDD },  { "agrave", 0xE0 },   { "aacute", 0xE1 },  { "acirc", 0xE2 },
    { "atilde", 0xE3 },  { "auml", 0xE4 },     { "aring", 0xE5 },   { "aelig", 0xE6 },
    { "ccedil", 0xE7 },  { "egrave", 0xE8 },   { "eacute", 0xE9 },  { "ecirc", 0xEA },
    { "euml", 0xEB },    { "igrave", 0xEC },   { "iacute", 0xED },  { "icirc", 0xEE },
    { "iuml", 0xEF },    { "ntilde", 0xF1 },   { "ograve", 0xF2 },  { "oacute", 0xF3 },
    { "ocirc", 0xF4 },   { "otilde", 0xF5 },   { "ouml", 0xF6 },    { "oslash", 0xF8 },
    { "ugrave", 0xF9 },  { "uacute", 0xFA },   { "ucirc", 0xFB },   { "uuml", 0xFC },
    { "yacute", 0xFD },  { "yuml", 0xFF },     { "oelig", 0x153 },  { "OElig", 0x152 },
};

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        cp = 0xFFFD;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* An entity at s ("&...;"): its code point and length, or 0 if s does not
 * start a complete, known entity (then the '&' is text). */
static size_t read_entity(const char *s, size_t len, uint32_t *cp)
{
    size_t i = 1;

    if (len < 3) {
        return 0;
    }
    if (s[1] == '#') {
        uint32_t v = 0;
        bool hex = len > 2 && (s[2] == 'x' || s[2] == 'X');
        size_t digits = 0;
        for (i = hex ? 3 : 2; i < len && i < 12; i++, digits++) {
            char c = s[i];
            int d = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (d < 0) {
                break;
            }
            v = v * (hex ? 16 : 10) + (uint32_t)d;
        }
        if (digits == 0 || i >= len || s[i] != ';') {
            return 0;
        }
        *cp = v;
        return i + 1;
    }
    while (i < len && i < 12 && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
        i++;
    }
    if (i >= len || s[i] != ';') {
        return 0;
    }
    for (size_t k = 0; k < sizeof(entities) / sizeof(entities[0]); k++) {
        if (strlen(entities[k].name) == i - 1 && memcmp(entities[k].name, s + 1, i - 1) == 0) {
            *cp = entities[k].cp;
            return i + 1;
        }
    }
    return 0;
}

static void decode_into(td_buf_t *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = s[i] == '&' ? read_entity(s + i, len - i, &cp) : 0;
        if (n > 0) {
            char u[4];
            td_buf_add(b, u, utf8_encode(cp, u));
            i += n;
        } else {
            td_buf_addc(b, s[i++]);
        }
    }
}

/* ---- tags ---- */

typedef struct tag {
    char name[16];
    bool closing, self_closing;
    const char *href, *style;
    size_t href_len, style_len;
    bool hidden;
} tag_t;

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == ':';
}

static bool ieq(const char *a, size_t n, const char *lit)
{
    if (strlen(lit) != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c + 32);
        }
        if (c != lit[i]) {
            return false;
        }
    }
    return true;
}

/* display:none in a style attribute, in any spacing or case. */
static bool style_hides(const char *s, size_t len)
{
    char compact[256];
    size_t n = 0;

    for (size_t i = 0; i < len && n + 1 < sizeof(compact); i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        }
        compact[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    compact[n] = '\0';
    return strstr(compact, "display:none") != NULL;
}

/* Parses a tag at s ('<' then a letter or '/'); returns its length or 0. */
static size_t read_tag(const char *s, size_t len, tag_t *t)
{
    size_t i = 1, n = 0;

    memset(t, 0, sizeof(*t));
    if (i < len && s[i] == '/') {
        t->closing = true;
        i++;
    }
    if (i >= len || !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
        return 0;
    }
    while (i < len && name_char(s[i])) {
        if (n + 1 < sizeof(t->name)) {
            t->name[n++] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
        }
        i++;
    }
    t->name[n] = '\0';
    for (;;) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
            i++;
        }
        if (i >= len) {
            return 0;
        }
        if (s[i] == '>') {
            return i + 1;
        }
        if (s[i] == '/') {
            t->self_closing = true;
            i++;
            continue;
        }
        size_t an = i;
        while (i < len && s[i] != '=' && s[i] != '>' && s[i] != ' ' && s[i] != '\t' &&
               s[i] != '\n' && s[i] != '\r' && s[i] != '/') {
            i++;
        }
        size_t alen = i - an;
        const char *val = NULL;
        size_t vlen = 0;
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
            i++;
        }
        if (i < len && s[i] == '=') {
            i++;
            while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
                i++;
            }
            if (i < len && (s[i] == '"' || s[i] == '\'')) {
                char q = s[i++];
                val = s + i;
                while (i < len && s[i] != q) {
                    i++;
                }
                if (i >= len) {
                    return 0;
                }
                vlen = (size_t)(s + i - val);
                i++;
            } else {
                val = s + i;
                while (i < len && s[i] != '>' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
                       s[i] != '\r') {
                    i++;
                }
                vlen = (size_t)(s + i - val);
            }
        }
        if (alen == 0) {
            i++; /* stray character: skip it */
            continue;
        }
        if (ieq(s + an, alen, "href")) {
            t->href = val;
            t->href_len = vlen;
        } else if (ieq(s + an, alen, "style") && val) {
            t->hidden |= style_hides(val, vlen);
        } else if (ieq(s + an, alen, "hidden")) {
            t->hidden = true;
        }
    }
}

static bool is_void(const char *name)
{
    static const char *const v[] = { "br",   "img",  "hr",  "meta",   "link", "input",
                                     "area", "base", "col", "source", "wbr" };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        if (strcmp(name, v[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void end_link(h2t_t *st)
{
    const char *text = st->out->data + st->link_start;
    size_t tlen = st->out->len - st->link_start;
    const char *href = st->href.data ? st->href.data : "";
    size_t hlen = st->href.len;

    st->in_link = false;
    while (tlen > 0 && (*text == ' ' || *text == '\n')) {
        text++;
        tlen--;
    }
    while (tlen > 0 && (text[tlen - 1] == ' ' || text[tlen - 1] == '\n')) {
        tlen--;
    }
    while (hlen > 0 && (*href == ' ' || *href == '\n' || *href == '\t')) {
        href++;
        hlen--;
    }
    /* image-only links and links to their own text say nothing new */
    if (tlen == 0 || hlen == 0 || href[0] == '#' || (hlen >= 11 && ieq(href, 11, "javascript:")) ||
        (tlen == hlen && memcmp(text, href, hlen) == 0) ||
        (hlen == tlen + 7 && ieq(href, 7, "mailto:") && memcmp(href + 7, text, tlen) == 0)) {
        return;
    }
    td_buf_adds(st->out, " (");
    td_buf_add(st->out, href, hlen);
    td_buf_addc(st->out, ')');
}

static void open_tag(h2t_t *st, const tag_t *t)
{
    static const char *const skipped[] = { "head", "style", "script", "title", "template" };
    static const char *const blocks[] = { "div",   "section", "article", "header",  "footer",
                                          "main",  "nav",     "center",  "address", "form",
                                          "dl",    "dt",      "dd",      "figure",  "figcaption",
                                          "table", "tr",      "tbody",   "thead",   "tfoot" };
    const char *n = t->name;

    if (in_list(n, skipped, TD_ARRAY_LEN(skipped)) || (t->hidden && !is_void(n))) {
        if (!t->self_closing) {
            st->skip = 1;
            memcpy(st->skip_name, n, sizeof(st->skip_name));
        }
        return;
    }
    if (strcmp(n, "br") == 0) {
        st->pending_space = false;
        if (st->pending_nl > 0) {
            flush(st);
        }
        if (st->out->len > st->start) {
            trim_line_end(st);
            td_buf_addc(st->out, '\n');
        }
    } else if (strcmp(n, "p") == 0 || strcmp(n, "blockquote") == 0 ||
               (n[0] == 'h' && n[1] >= '1' && n[1] <= '6' && n[2] == '\0')) {
        want_nl(st, 2);
    } else if (strcmp(n, "pre") == 0) {
        want_nl(st, 2);
        st->pre++;
    } else if (in_list(n, blocks, TD_ARRAY_LEN(blocks))) {
        want_nl(st, 1);
    } else if (strcmp(n, "td") == 0 || strcmp(n, "th") == 0) {
        st->pending_space = true;
    } else if (strcmp(n, "hr") == 0) {
        want_nl(st, 1);
        put_visible(st, "--------", 8);
        want_nl(st, 1);
    } else if (strcmp(n, "ul") == 0 || strcmp(n, "ol") == 0) {
        want_nl(st, 1);
        if (st->list_depth < MAX_LISTS) {
            st->ol_next[st->list_depth] = n[0] == 'o' ? 1 : 0;
        }
        st->list_depth++;
    } else if (strcmp(n, "li") == 0) {
        want_nl(st, 1);
        int d = st->list_depth > 0 ? st->list_depth - 1 : 0;
        if (d < MAX_LISTS && st->list_depth > 0 && st->ol_next[d] > 0) {
            snprintf(st->number, sizeof(st->number), "%d. ", st->ol_next[d]++);
            st->prefix = st->number;
        } else {
            st->prefix = "- ";
        }
    } else if (strcmp(n, "a") == 0 && !t->self_closing) {
        if (st->in_link) {
            end_link(st);
        }
        flush(st);
        st->in_link = true;
        st->link_start = st->out->len;
        td_buf_reset(&st->href);
        decode_into(&st->href, t->href ? t->href : "", t->href_len);
    }
}

static void close_tag(h2t_t *st, const tag_t *t)
{
    static const char *const blocks[] = { "div",   "section", "article", "header",  "footer",
                                          "main",  "nav",     "center",  "address", "form",
                                          "dl",    "dt",      "dd",      "figure",  "figcaption",
                                          "table", "tr",      "li" };
    const char *n = t->name;

    if (strcmp(n, "p") == 0 || strcmp(n, "blockquote") == 0 ||
        (n[0] == 'h' && n[1] >= '1' && n[1] <= '6' && n[2] == '\0')) {
        want_nl(st, 2);
    } else if (strcmp(n, "pre") == 0) {
        if (st->pre > 0) {
            st->pre--;
        }
        want_nl(st, 2);
    } else if (in_list(n, blocks, TD_ARRAY_LEN(blocks))) {
        want_nl(st, 1);
    } else if (strcmp(n, "td") == 0 || strcmp(n, "th") == 0) {
        st->pending_space = true;
    } else if (strcmp(n, "ul") == 0 || strcmp(n, "ol") == 0) {
        if (st->list_depth > 0) {
            st->list_depth--;
        }
        want_nl(st, 1);
    } else if (strcmp(n, "a") == 0 && st->in_link) {
        end_link(st);
    }
}

/* Markup at s[0] == '<': returns the bytes consumed, or 0 when the '<' is
 * just text ("a < b"). */
static size_t markup(h2t_t *st, const char *s, size_t len)
{
    tag_t t;
    size_t n;

    if (len >= 4 && memcmp(s, "<!--", 4) == 0) {
        for (size_t i = 4; i + 2 < len; i++) {
            if (memcmp(s + i, "-->", 3) == 0) {
                return i + 3;
            }
        }
        return len;
    }
    if (len >= 2 && (s[1] == '!' || s[1] == '?')) {
        const char *gt = memchr(s, '>', len);
        return gt ? (size_t)(gt - s) + 1 : len;
    }
    n = read_tag(s, len, &t);
    if (n == 0) {
        return 0;
    }
    if (st->skip > 0) {
        if (strcmp(t.name, st->skip_name) == 0 && !is_void(t.name)) {
            if (t.closing) {
                st->skip--;
            } else if (!t.self_closing) {
                st->skip++;
            }
        }
        return n;
    }
    if (t.closing) {
        close_tag(st, &t);
    } else {
        open_tag(st, &t);
    }
    return n;
}

void td_html_to_text(const char *html, size_t len, td_buf_t *out)
{
    h2t_t st;
    size_t i = 0;

    memset(&st, 0, sizeof(st));
    st.out = out;
    td_buf_grow(out, len / 2);
    st.start = out->len;
    while (i < len) {
        char c = html[i];
        if (c == '<') {
            size_t n = markup(&st, html + i, len - i);
            if (n > 0) {
                i += n;
                continue;
            }
        }
        if (st.skip > 0) {
            i++;
            continue;
        }
        if (c == '&') {
            uint32_t cp;
            size_t n = read_entity(html + i, len - i, &cp);
            if (n > 0) {
                char u[4];
                i += n;
                if (cp == 0x200C || cp == 0x200D || cp == 0xAD) {
                    continue; /* invisible */
                }
                put_visible(&st, u, utf8_encode(cp, u));
                continue;
            }
        }
        if (c != '\0') {
            put_char(&st, c);
        }
        i++;
    }
    if (st.in_link) {
        end_link(&st);
    }
    trim_line_end(&st);
    while (out->len > st.start && out->data[out->len - 1] == '\n') {
        out->len--;
    }
    if (out->len > st.start) {
        td_buf_addc(out, '\n');
    }
    out->data[out->len] = '\0';
    td_buf_release(&st.href);
}
