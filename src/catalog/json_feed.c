/* JSON in the shape of Target's Save Entities API:
 *
 *   {"entities": [{"id": "kit2001", "name": "Toaster Oven",
 *                  "categories": ["housewares:appliances"], "environment": 6781,
 *                  "attributes": {"value": 102.5, "inventory": 77, ...}}, ...]}
 *
 * (a bare array of entities is accepted too). The document is not loaded
 * whole: a small state machine walks the outer structure byte by byte and
 * hands each element of "entities" to jansson on its own, so memory is one
 * entity, whatever the body's size, and a bad entity is rejected alone with
 * its index, line and column while the others are imported. */
#include "catalog/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define CHUNK 65536

typedef enum {
    S_TOP,
    S_OBJ_KEY,
    S_KEY,
    S_COLON,
    S_EXPECT_ARRAY,
    S_ARRAY_START,
    S_ELEM_NEXT,
    S_ELEM,
    S_AFTER_ELEM,
    S_OBJ_AFTER_VALUE,
    S_END
} state_t;

typedef struct jf {
    const td_feed_sink_t *sink;
    void *sctx;
    td_err_t *err;
    state_t st;
    bool top_array, have_entities;
    int bom_pos;
    int line, col;
    td_buf_t key;
    bool key_esc;
    /* the element being captured */
    td_buf_t elem;
    int elem_line, elem_col, depth, index;
    bool in_str, esc, too_big;
    td_entity_t ent;
    int rc;
} jf_t;

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int fatal(jf_t *j, const char *msg)
{
    j->rc = td_err_set_at(j->err, TD_EINVAL, "", j->line, j->col, "%s", msg);
    return j->rc;
}

static void finish_elem(jf_t *j)
{
    char path[48];
    td_err_t e = { 0 };
    int rc;

    snprintf(path, sizeof(path), "/entities/%d", j->index++);
    if (j->too_big) {
        td_err_set_at(&e, TD_ETOOBIG, path, j->elem_line, j->elem_col, "entity larger than %d MiB",
                      TD_CATALOG_MAX_RECORD >> 20);
    } else if (td_entity_from_json(j->elem.data, j->elem.len, path, &j->ent, &e) == TD_OK) {
        if (td_entity_validate(&j->ent, &e) == TD_OK) {
            rc = j->sink->entity(j->sctx, &j->ent, j->elem_line);
            td_entity_release(&j->ent);
            if (rc != TD_OK) {
                j->rc = td_err_set_at(j->err, rc, path, j->elem_line, j->elem_col,
                                      "import stopped at entity %d (%s)", j->index - 1,
                                      td_strerror(rc));
            }
            goto out;
        }
        char sub[200];
        snprintf(sub, sizeof(sub), "%.199s", e.path);
        snprintf(e.path, sizeof(e.path), "%.40s/%s", path, sub);
        td_entity_release(&j->ent);
    }
    if (e.line > 0) {
        /* jansson's position is inside the element: make it the body's */
        if (e.line == 1) {
            e.column += j->elem_col - 1;
        }
        e.line += j->elem_line - 1;
    } else {
        e.line = j->elem_line;
        e.column = j->elem_col;
    }
    if (j->sink->reject) {
        j->sink->reject(j->sctx, &e);
    }
out:
    td_buf_reset(&j->elem);
    j->too_big = false;
    j->st = S_AFTER_ELEM;
}

static void start_elem(jf_t *j)
{
    td_buf_reset(&j->elem);
    j->elem_line = j->line;
    j->elem_col = j->col;
    j->depth = 0;
    j->in_str = j->esc = j->too_big = false;
    j->st = S_ELEM;
}

/* Consumes one byte of an element; returns false when c ends a scalar
 * element and must be looked at again. */
static bool elem_byte(jf_t *j, char c)
{
    if (!j->in_str && j->depth == 0 && (c == ',' || c == ']') && j->elem.len > 0) {
        finish_elem(j);
        return false;
    }
    if (!j->too_big && j->elem.len + 1 > (size_t)TD_CATALOG_MAX_RECORD) {
        j->too_big = true;
        td_buf_release(&j->elem);
    }
    if (!j->too_big) {
        td_buf_addc(&j->elem, c);
    }
    if (j->in_str) {
        if (j->esc) {
            j->esc = false;
        } else if (c == '\\') {
            j->esc = true;
        } else if (c == '"') {
            j->in_str = false;
        }
        return true;
    }
    if (c == '"') {
        j->in_str = true;
    } else if (c == '{' || c == '[') {
        j->depth++;
    } else if (c == '}' || c == ']') {
        if (--j->depth == 0) {
            finish_elem(j);
        }
    }
    return true;
}

static void byte(jf_t *j, char c)
{
    switch (j->st) {
    case S_TOP:
        if (ws(c)) {
            return;
        }
        if (c == '{') {
            j->st = S_OBJ_KEY;
        } else if (c == '[') {
            j->top_array = true;
            j->have_entities = true;
            j->st = S_ARRAY_START;
        } else {
            fatal(j, "expected {\"entities\": [...]}");
        }
        return;
    case S_OBJ_KEY:
        if (ws(c)) {
            return;
        }
        if (c == '"') {
            td_buf_reset(&j->key);
            j->key_esc = false;
            j->st = S_KEY;
        } else if (c == '}' && j->have_entities) {
            j->st = S_END;
        } else {
            fatal(j, c == '}' ? "missing \"entities\"" : "expected a field name");
        }
        return;
    case S_KEY:
        if (!j->key_esc && c == '"') {
            if (strcmp(j->key.data ? j->key.data : "", "entities") != 0) {
                char msg[120];
                snprintf(msg, sizeof(msg), "unknown field \"%.60s\" (expected \"entities\")",
                         j->key.data ? j->key.data : "");
                fatal(j, msg);
            } else if (j->have_entities) {
                fatal(j, "\"entities\" given twice");
            }
            j->have_entities = true;
            j->st = S_COLON;
            return;
        }
        j->key_esc = !j->key_esc && c == '\\';
        if (j->key.len < 64) {
            td_buf_addc(&j->key, c);
        }
        return;
    case S_COLON:
        if (ws(c)) {
            return;
        }
        if (c == ':') {
            j->st = S_EXPECT_ARRAY;
        } else {
            fatal(j, "expected ':'");
        }
        return;
    case S_EXPECT_ARRAY:
        if (ws(c)) {
            return;
        }
        if (c == '[') {
            j->st = S_ARRAY_START;
        } else {
            fatal(j, "\"entities\" must be an array");
        }
        return;
    case S_ARRAY_START:
    case S_ELEM_NEXT:
        if (ws(c)) {
            return;
        }
        if (c == ']' && j->st == S_ARRAY_START) {
            j->st = j->top_array ? S_END : S_OBJ_AFTER_VALUE;
            return;
        }
        if (c == ']' || c == ',') {
            fatal(j, "expected an entity");
            return;
        }
        start_elem(j);
        elem_byte(j, c);
        return;
    case S_ELEM:
        if (!elem_byte(j, c)) {
            byte(j, c);
        }
        return;
    case S_AFTER_ELEM:
        if (ws(c)) {
            return;
        }
        if (c == ',') {
            j->st = S_ELEM_NEXT;
        } else if (c == ']') {
            j->st = j->top_array ? S_END : S_OBJ_AFTER_VALUE;
        } else {
            fatal(j, "expected ',' or ']' after an entity");
        }
        return;
    case S_OBJ_AFTER_VALUE:
        if (ws(c)) {
            return;
        }
        if (c == ',') {
            j->st = S_OBJ_KEY;
        } else if (c == '}') {
            j->st = S_END;
        } else {
            fatal(j, "expected ',' or '}'");
        }
        return;
    case S_END:
        if (!ws(c)) {
            fatal(j, "unexpected text after the end of the document");
        }
        return;
    }
}

static void push(jf_t *j, const char *p, size_t n)
{
    static const unsigned char bom[] = { 0xef, 0xbb, 0xbf };

    for (size_t i = 0; i < n && j->rc == TD_OK; i++) {
        /* a UTF-8 byte order mark, which may arrive split across reads */
        if (j->bom_pos < 3 && j->line == 1 && j->col == 1 && j->st == S_TOP &&
            (unsigned char)p[i] == bom[j->bom_pos]) {
            j->bom_pos++;
            continue;
        }
        byte(j, p[i]);
        if (p[i] == '\n') {
            j->line++;
            j->col = 1;
        } else {
            j->col++;
        }
    }
}

int td_catalog__parse_json(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink, void *sctx,
                           td_err_t *err)
{
    jf_t j;
    char *buf = td_xmalloc(CHUNK);

    memset(&j, 0, sizeof(j));
    j.sink = sink;
    j.sctx = sctx;
    j.err = err;
    j.line = j.col = 1;
    for (;;) {
        long got = read(rctx, buf, CHUNK);
        if (got < 0) {
            j.rc =
                td_err_set(err, (int)got, "", "cannot read the feed (%s)", td_strerror((int)got));
            break;
        }
        if (got == 0) {
            if (j.st != S_END) {
                fatal(&j, j.st == S_TOP ? "empty document" : "unexpected end of the document");
            }
            break;
        }
        push(&j, buf, (size_t)got);
        if (j.rc) {
            break;
        }
    }
    free(buf);
    td_buf_release(&j.key);
    td_buf_release(&j.elem);
    td_entity_release(&j.ent);
    return j.rc;
}
