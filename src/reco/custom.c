/* CUSTOM criteria ("bring your own model"): key -> ordered item list,
 * uploaded as CSV text. Rows are "key,item1,item2,..." with RFC 4180
 * quoting; "## RECS" header lines (Target's feed convention) and an
 * optional header row starting with "key" are skipped; empty cells (the
 * trailing commas of Target's templates) are ignored. Pure text in, table
 * out: the caller stores the upload and decides when it expires. */
#include "reco/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/err.h"
#include "util/banned.h"

#define MAX_ROW_ITEMS 1000
#define MAX_FIELD     (TD_RECO_MAX_ID - 1)

typedef struct row {
    char **items;
    int n;
} row_t;

struct td_reco_custom {
    td_reco_strtab_t keys;
    row_t *rows;
    uint32_t cap;
    int n_keys;
};

static void row_release(row_t *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->items[i]);
    }
    free(r->items);
    r->items = NULL;
    r->n = 0;
}

void td_reco_custom_free(td_reco_custom_t *c)
{
    if (c == NULL) {
        return;
    }
    for (uint32_t i = 0; i < c->cap; i++) {
        row_release(&c->rows[i]);
    }
    free(c->rows);
    td_reco__strtab_release(&c->keys);
    free(c);
}

int td_reco_custom_count(const td_reco_custom_t *c)
{
    return c ? c->n_keys : 0;
}

const char *const *td_reco_custom_get(const td_reco_custom_t *c, const char *key, int *n)
{
    *n = 0;
    if (c == NULL || key == NULL) {
        return NULL;
    }
    uint32_t id = td_reco__strtab_find(&c->keys, key);
    if (id == TD_RECO_NONE || id >= c->cap || c->rows[id].n == 0) {
        return NULL;
    }
    *n = c->rows[id].n;
    return (const char *const *)c->rows[id].items;
}

typedef struct csv {
    const char *s, *end;
    int line, col;
} csv_t;

/* Reads one field into buf; returns 1 at a comma, 2 at end of line or
 * input, a negative code on error (err filled). */
static int read_field(csv_t *r, char *buf, size_t cap, size_t *len, td_err_t *err)
{
    *len = 0;
    if (r->s < r->end && *r->s == '"') {
        int q_line = r->line, q_col = r->col;
        r->s++;
        r->col++;
        for (;;) {
            if (r->s >= r->end) {
                return td_err_set_at(err, TD_EINVAL, "", q_line, q_col, "unterminated quote");
            }
            char ch = *r->s++;
            r->col++;
            if (ch == '"') {
                if (r->s < r->end && *r->s == '"') {
                    r->s++;
                    r->col++;
                } else {
                    break;
                }
            } else if (ch == '\n') {
                r->line++;
                r->col = 1;
            }
            if (*len + 1 >= cap) {
                return td_err_set_at(err, TD_EINVAL, "", r->line, r->col,
                                     "cell longer than %d bytes", MAX_FIELD);
            }
            buf[(*len)++] = ch;
        }
        if (r->s < r->end && *r->s != ',' && *r->s != '\n' && *r->s != '\r') {
            return td_err_set_at(err, TD_EINVAL, "", r->line, r->col, "text after a closing quote");
        }
    } else {
        while (r->s < r->end && *r->s != ',' && *r->s != '\n' && *r->s != '\r') {
            if (*r->s == '"') {
                return td_err_set_at(err, TD_EINVAL, "", r->line, r->col,
                                     "quote inside an unquoted cell");
            }
            if (*r->s == '\0') {
                return td_err_set_at(err, TD_EINVAL, "", r->line, r->col, "NUL byte");
            }
            if (*len + 1 >= cap) {
                return td_err_set_at(err, TD_EINVAL, "", r->line, r->col,
                                     "cell longer than %d bytes", MAX_FIELD);
            }
            buf[(*len)++] = *r->s++;
            r->col++;
        }
    }
    buf[*len] = '\0';
    if (r->s < r->end && *r->s == ',') {
        r->s++;
        r->col++;
        return 1;
    }
    if (r->s < r->end && *r->s == '\r') {
        r->s++;
    }
    if (r->s < r->end && *r->s == '\n') {
        r->s++;
    }
    r->line++;
    r->col = 1;
    return 2;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    size_t i = 0;
    while (s[i] && isspace((unsigned char)s[i])) {
        i++;
    }
    if (i > 0) {
        memmove(s, s + i, n - i + 1);
    }
}

int td_reco_custom_parse(const char *text, size_t len, td_reco_custom_t **out, td_err_t *err)
{
    csv_t r = { text, text + len, 1, 1 };
    char buf[MAX_FIELD + 1];
    char **items = td_xmalloc(sizeof(char *) * MAX_ROW_ITEMS);
    bool first_row = true;
    int rc = TD_OK;
    int n = 0; /* items collected for the current row */

    *out = NULL;
    td_reco_custom_t *c = td_xcalloc(1, sizeof(*c));
    td_reco__strtab_init(&c->keys);
    while (r.s < r.end) {
        int row_line = r.line;
        /* "## RECS" header lines and blank lines carry no data. */
        if ((r.end - r.s >= 2 && r.s[0] == '#' && r.s[1] == '#') || *r.s == '\n' || *r.s == '\r') {
            while (r.s < r.end && *r.s != '\n') {
                r.s++;
            }
            if (r.s < r.end) {
                r.s++;
            }
            r.line++;
            r.col = 1;
            continue;
        }
        char key[MAX_FIELD + 1];
        size_t flen;
        int st = read_field(&r, buf, sizeof(buf), &flen, err);
        if (st < 0) {
            rc = st;
            goto fail;
        }
        trim(buf);
        memcpy(key, buf, strlen(buf) + 1);
        n = 0;
        while (st == 1) {
            int col = r.col;
            st = read_field(&r, buf, sizeof(buf), &flen, err);
            if (st < 0) {
                rc = st;
                goto fail;
            }
            trim(buf);
            if (buf[0] == '\0') {
                continue;
            }
            if (n == MAX_ROW_ITEMS) {
                rc = td_err_set_at(err, TD_EINVAL, "", row_line, col, "more than %d items in a row",
                                   MAX_ROW_ITEMS);
                goto fail;
            }
            items[n++] = td_xstrdup(buf);
        }
        bool header = first_row && strncasecmp(key, "key", 3) == 0 &&
                      (key[3] == '\0' || isspace((unsigned char)key[3]));
        first_row = false;
        if (header || key[0] == '\0') {
            if (!header && n > 0) {
                rc = td_err_set_at(err, TD_EINVAL, "", row_line, 1, "row without a key");
                goto fail;
            }
            for (int i = 0; i < n; i++) {
                free(items[i]);
            }
            n = 0;
            continue;
        }
        uint32_t id = td_reco__strtab_intern(&c->keys, key);
        if (id >= c->cap) {
            uint32_t cap = c->cap ? c->cap : 64;
            while (cap <= id) {
                cap *= 2;
            }
            c->rows = td_xrealloc(c->rows, sizeof(row_t) * cap);
            memset(c->rows + c->cap, 0, sizeof(row_t) * (cap - c->cap));
            c->cap = cap;
        }
        row_t *row = &c->rows[id];
        if (row->items == NULL && row->n == 0) {
            c->n_keys++;
        }
        row_release(row);
        /* A later row for the same key replaces it (uploads are cumulative,
         * newest wins). */
        row->items = td_xmalloc(sizeof(char *) * (size_t)(n ? n : 1));
        memcpy(row->items, items, sizeof(char *) * (size_t)n);
        row->n = n;
        n = 0;
    }
    free(items);
    *out = c;
    return TD_OK;
fail:
    for (int i = 0; i < n; i++) {
        free(items[i]);
    }
    free(items);
    td_reco_custom_free(c);
    return rc;
}
