/* The suppression list's keys and its CSV import, without the store or
 * HTTP: the API handlers call these, and the fuzz target too. */
#include "message/message.h"

#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

bool td_suppress_key_make(const char *s, size_t len, char *out, size_t out_len)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++, len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) {
        len--;
    }
    if (len == 0 || len + 2 > out_len || len > 254) {
        return false;
    }
    bool domain = memchr(s, '@', len) == NULL || s[0] == '@';
    size_t o = 0;
    if (domain && s[0] != '@') {
        out[o++] = '@';
    }
    if (o + len > 254) {
        return false; /* the key itself must pass again (DELETE /v1/suppressions/{key}) */
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((unsigned char)c <= ' ' || c == ',' || c == '"' || c == '<' || c == '>') {
            return false;
        }
        out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[o] = '\0';
    if (domain) {
        return o > 2 && strchr(out + 1, '@') == NULL && strchr(out + 1, '.') != NULL;
    }
    return td_mime_addr_valid(out);
}

bool td_suppress_reason_valid(const char *r)
{
    size_t n = strlen(r);

    if (n == 0 || n > TD_SUPPRESS_REASON_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* One line without its '\n' -> an entry; false when it is not one. */
static bool parse_line(const char *p, const char *eol, td_suppress_entry_t *e)
{
    const char *comma = memchr(p, ',', (size_t)(eol - p));
    size_t klen = (size_t)((comma ? comma : eol) - p);

    snprintf(e->reason, sizeof(e->reason), "import");
    if (!td_suppress_key_make(p, klen, e->key, sizeof(e->key))) {
        return false;
    }
    if (comma) {
        size_t rlen = (size_t)(eol - comma - 1);
        while (rlen > 0 && (comma[rlen] == '\r' || comma[rlen] == ' ')) {
            rlen--;
        }
        if (rlen > 0) {
            if (rlen > TD_SUPPRESS_REASON_MAX) {
                return false;
            }
            memcpy(e->reason, comma + 1, rlen);
            e->reason[rlen] = '\0';
            return td_suppress_reason_valid(e->reason);
        }
    }
    return true;
}

int td_suppress_csv_parse(const char *body, size_t len, int max_entries, td_suppress_csv_t *out)
{
    const char *p = body, *end = body + len;
    int line = 0;

    memset(out, 0, sizeof(*out));
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
        line++;
        if (eol - p > 0 && !(eol - p == 1 && *p == '\r')) {
            td_suppress_entry_t e;
            if (!parse_line(p, eol, &e)) {
                /* a first line that is no entry is a header */
                if (line > 1) {
                    out->n_bad++;
                    if (out->n_bad <= TD_SUPPRESS_BAD_MAX) {
                        out->bad_lines[out->n_bad - 1] = line;
                    }
                }
            } else {
                if (out->n == max_entries) {
                    return TD_ETOOBIG;
                }
                if (out->n == out->cap) {
                    out->cap = out->cap ? out->cap * 2 : 64;
                    out->entries =
                        td_xrealloc(out->entries, sizeof(*out->entries) * (size_t)out->cap);
                }
                out->entries[out->n++] = e;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    return out->n_bad > 0 ? TD_EINVAL : TD_OK;
}

void td_suppress_csv_release(td_suppress_csv_t *c)
{
    free(c->entries);
    memset(c, 0, sizeof(*c));
}
