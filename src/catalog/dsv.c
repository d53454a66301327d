/* Delimited text (Target CSV, Google TSV) on top of libcsv: libcsv splits
 * fields and handles quotes (embedded delimiters, doubled quotes, line
 * breaks inside quotes); this file adds what libcsv does not know about:
 * a UTF-8 byte order mark, the physical line where each record starts (the
 * input is handed to libcsv one line at a time), Target's "## RECS" lines
 * (recognised only at a record boundary, so a quoted value spanning lines
 * can never be mistaken for one), and memory bounds: one field or record
 * may not grow past TD_CATALOG_MAX_RECORD. */
#include "catalog/internal.h"

#include <csv.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define CHUNK    65536
#define RECS_LEN 7
#define HEAD_MAX 10 /* a BOM and "## RECS" */

static const char RECS[] = "## RECS";
static const char BOM[] = "\xef\xbb\xbf";

/* libcsv's pstate value between records (ROW_NOT_BEGUN in libcsv.c): the
 * parser struct is public, and this is the one state we need to see. */
#define CSV_AT_RECORD_BOUNDARY 0
/* ... and the state inside a field (FIELD_BEGUN): with csv.quoted set at the
 * end of the input, a quote was opened and never closed. libcsv reports
 * that only in its strict mode, which gives up on the first stray quote. */
#define CSV_IN_FIELD 2

typedef struct dsv {
    const td_dsv_handler_t *h;
    void *ctx;
    td_err_t *err;
    struct csv_parser csv;
    int rc; /* the first code that stops the parse */
    int line;
    bool at_line_start, bom_done, in_recs;
    td_buf_t head, recs;
    /* the record being read */
    td_buf_t bytes;
    size_t *offs, *lens;
    char **cells;
    int n, n_total, cap;
    bool too_big;
    int rec_line;
} dsv_t;

/* libcsv grows a field buffer through this: refusing past the record limit
 * turns a never-closed quote in a huge file into an error, not an
 * allocation of the whole file. */
static void *capped_realloc(void *p, size_t n)
{
    if (n > (size_t)TD_CATALOG_MAX_RECORD + CHUNK) {
        return NULL;
    }
    return realloc(p, n);
}

static void add_cell(dsv_t *d, const char *s, size_t len)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 32;
        d->offs = td_xrealloc(d->offs, sizeof(size_t) * (size_t)d->cap);
        d->lens = td_xrealloc(d->lens, sizeof(size_t) * (size_t)d->cap);
        d->cells = td_xrealloc(d->cells, sizeof(char *) * (size_t)d->cap);
    }
    d->offs[d->n] = d->bytes.len;
    if (memchr(s, '\r', len) == NULL) {
        td_buf_add(&d->bytes, s, len);
    } else {
        /* CRLF inside a quoted value: keep one line-end convention */
        for (size_t i = 0; i < len; i++) {
            if (s[i] != '\r' || i + 1 >= len || s[i + 1] != '\n') {
                td_buf_addc(&d->bytes, s[i]);
            }
        }
    }
    d->lens[d->n] = d->bytes.len - d->offs[d->n];
    td_buf_addc(&d->bytes, '\0');
    d->n++;
}

static void on_field(void *s, size_t len, void *data)
{
    dsv_t *d = data;

    d->n_total++;
    if (d->rc || d->too_big || d->n >= TD_DSV_MAX_CELLS) {
        return;
    }
    if (d->bytes.len + len + 1 > (size_t)TD_CATALOG_MAX_RECORD) {
        d->too_big = true;
        return;
    }
    add_cell(d, s ? s : "", s ? len : 0);
}

static void reset_record(dsv_t *d)
{
    td_buf_reset(&d->bytes);
    d->n = d->n_total = 0;
    d->too_big = false;
}

static void on_record(int c, void *data)
{
    dsv_t *d = data;
    td_dsv_record_t r;

    (void)c;
    if (d->rc == TD_OK) {
        for (int i = 0; i < d->n; i++) {
            d->cells[i] = d->bytes.data + d->offs[i];
        }
        r.cells = d->cells;
        r.lens = d->lens;
        r.n = d->n;
        r.n_total = d->n_total;
        r.too_big = d->too_big;
        r.line = d->rec_line;
        d->rc = d->h->record(d->ctx, &r, d->err);
    }
    reset_record(d);
}

static void to_csv(dsv_t *d, const char *p, size_t n)
{
    if (n == 0 || d->rc) {
        return;
    }
    if (csv_parse(&d->csv, p, n, on_field, on_record, d) != n && d->rc == TD_OK) {
        d->rc = td_err_set_at(d->err, TD_ETOOBIG, "", d->rec_line, 0,
                              "a value starting at line %d is larger than %d MiB (is a quote "
                              "left open?)",
                              d->rec_line, TD_CATALOG_MAX_RECORD >> 20);
    }
}

static void begin_line(dsv_t *d)
{
    if (d->csv.pstate == CSV_AT_RECORD_BOUNDARY) {
        d->rec_line = d->line;
    }
}

static void end_recs_line(dsv_t *d)
{
    const char *text = d->recs.data + RECS_LEN;
    size_t len = d->recs.len - RECS_LEN;

    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
        len--;
    }
    if (d->rc == TD_OK && d->h->recs_line) {
        d->rc = d->h->recs_line(d->ctx, text, len, d->line, d->err);
    }
    td_buf_reset(&d->recs);
    d->in_recs = false;
    d->line++;
    d->at_line_start = true;
}

static bool is_prefix(const td_buf_t *b, const char *of, size_t of_len)
{
    size_t n = b->len < of_len ? b->len : of_len;

    return n == 0 || memcmp(b->data, of, n) == 0;
}

/* Decides what a line that starts at a record boundary is: gathers its
 * first bytes into head; returns false when more input is needed. */
static bool line_start(dsv_t *d, const char **p, size_t *n)
{
    while (*n > 0 && d->head.len < HEAD_MAX && **p != '\n') {
        td_buf_addc(&d->head, **p);
        (*p)++;
        (*n)--;
    }
    if (!d->bom_done) {
        if (d->head.len < 3 && *n == 0 && is_prefix(&d->head, BOM, 3)) {
            return false;
        }
        if (d->head.len >= 3 && memcmp(d->head.data, BOM, 3) == 0) {
            memmove(d->head.data, d->head.data + 3, d->head.len - 3);
            d->head.len -= 3;
            d->head.data[d->head.len] = '\0';
        }
        d->bom_done = true;
    }
    if (d->h->recs_lines) {
        if (d->head.len < RECS_LEN && *n == 0 && is_prefix(&d->head, RECS, RECS_LEN)) {
            return false;
        }
        if (d->head.len >= RECS_LEN && memcmp(d->head.data, RECS, RECS_LEN) == 0) {
            td_buf_add(&d->recs, d->head.data, d->head.len);
            td_buf_reset(&d->head);
            d->in_recs = true;
            return true;
        }
    }
    begin_line(d);
    to_csv(d, d->head.data, d->head.len);
    td_buf_reset(&d->head);
    d->at_line_start = false;
    return true;
}

static void push(dsv_t *d, const char *p, size_t n)
{
    while (n > 0 && d->rc == TD_OK) {
        if (d->in_recs) {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p) + 1 : n;
            if (d->recs.len + take > (size_t)TD_CATALOG_MAX_RECORD) {
                d->rc = td_err_set_at(d->err, TD_ETOOBIG, "", d->line, 1,
                                      "a \"## RECS\" line longer than %d MiB",
                                      TD_CATALOG_MAX_RECORD >> 20);
                return;
            }
            td_buf_add(&d->recs, p, take);
            p += take;
            n -= take;
            if (nl) {
                end_recs_line(d);
            }
            continue;
        }
        if (d->at_line_start && d->csv.pstate == CSV_AT_RECORD_BOUNDARY &&
            (!d->bom_done || d->h->recs_lines)) {
            if (!line_start(d, &p, &n)) {
                return;
            }
            continue;
        }
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (d->at_line_start) {
            begin_line(d);
            d->at_line_start = false;
        }
        to_csv(d, p, take);
        p += take;
        n -= take;
        if (nl) {
            d->line++;
            d->at_line_start = true;
        }
    }
}

static void finish(dsv_t *d)
{
    if (d->in_recs) {
        end_recs_line(d);
    }
    if (d->head.len && d->rc == TD_OK) {
        begin_line(d);
        to_csv(d, d->head.data, d->head.len);
        td_buf_reset(&d->head);
    }
    if (d->rc == TD_OK && d->csv.pstate == CSV_IN_FIELD && d->csv.quoted) {
        d->rc = td_err_set_at(d->err, TD_EINVAL, "", d->rec_line, 0,
                              "the quoted value starting at line %d is not closed", d->rec_line);
    }
    if (d->rc == TD_OK && csv_fini(&d->csv, on_field, on_record, d) != 0 && d->rc == TD_OK) {
        d->rc = td_err_set_at(d->err, TD_EINVAL, "", d->rec_line, 0,
                              "the quoted value starting at line %d is not closed", d->rec_line);
    }
}

static void dsv_init(dsv_t *d, const td_dsv_handler_t *h, void *ctx, td_err_t *err)
{
    memset(d, 0, sizeof(*d));
    d->h = h;
    d->ctx = ctx;
    d->err = err;
    d->line = 1;
    d->rec_line = 1;
    d->at_line_start = true;
    if (csv_init(&d->csv, CSV_STRICT_FINI) != 0) {
        TD_BUG("csv_init failed");
    }
    csv_set_delim(&d->csv, (unsigned char)h->delim);
    csv_set_realloc_func(&d->csv, capped_realloc);
    csv_set_free_func(&d->csv, free);
    csv_set_blk_size(&d->csv, CHUNK);
}

static int is_space_only(unsigned char c)
{
    return c == ' ';
}

static void dsv_release(dsv_t *d)
{
    csv_free(&d->csv);
    td_buf_release(&d->head);
    td_buf_release(&d->recs);
    td_buf_release(&d->bytes);
    free(d->offs);
    free(d->lens);
    free(d->cells);
}

int td_catalog__dsv_parse(const td_dsv_handler_t *h, void *ctx, td_feed_read_fn read, void *rctx,
                          td_err_t *err)
{
    char *buf = td_xmalloc(CHUNK);
    dsv_t d;
    int rc;

    dsv_init(&d, h, ctx, err);
    if (h->delim == '\t') {
        /* a tab is a delimiter here, not space to trim around values */
        csv_set_space_func(&d.csv, is_space_only);
    }
    for (;;) {
        long got = read(rctx, buf, CHUNK);
        if (got < 0) {
            d.rc =
                td_err_set(err, (int)got, "", "cannot read the feed (%s)", td_strerror((int)got));
            break;
        }
        if (got == 0) {
            finish(&d);
            break;
        }
        push(&d, buf, (size_t)got);
        if (d.rc) {
            break;
        }
    }
    rc = d.rc;
    dsv_release(&d);
    free(buf);
    return rc;
}

/* td_catalog__dsv_split's record handler: copies the first record out. */
static int keep_record(void *ctx, const td_dsv_record_t *r, td_err_t *err)
{
    td_dsv_record_t *out = ctx;

    (void)err;
    if (out->cells) {
        return TD_OK;
    }
    out->n = out->n_total = r->n;
    out->cells = td_xcalloc((size_t)r->n + 1, sizeof(char *));
    out->lens = td_xcalloc((size_t)r->n + 1, sizeof(size_t));
    for (int i = 0; i < r->n; i++) {
        out->cells[i] = td_xstrndup(r->cells[i], r->lens[i]);
        out->lens[i] = r->lens[i];
    }
    return TD_OK;
}

void td_catalog__dsv_split(char delim, const char *text, size_t len, td_dsv_record_t *out)
{
    td_dsv_handler_t h = { .delim = delim, .record = keep_record };
    dsv_t d;

    memset(out, 0, sizeof(*out));
    dsv_init(&d, &h, out, NULL);
    d.bom_done = true;
    to_csv(&d, text, len);
    csv_fini(&d.csv, on_field, on_record, &d);
    dsv_release(&d);
}

void td_catalog__dsv_record_release(td_dsv_record_t *r)
{
    for (int i = 0; r->cells && i < r->n; i++) {
        free(r->cells[i]);
    }
    free(r->cells);
    free(r->lens);
    memset(r, 0, sizeof(*r));
}
