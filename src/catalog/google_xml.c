/* Google Merchant product feeds as XML: RSS 2.0 (<rss><channel><item>) or
 * Atom (<feed><entry>), with the product attributes in the Google namespace
 * (xmlns:g="http://base.google.com/ns/1.0", any prefix; the https spelling
 * Target's examples use is accepted too). Also read: RSS <title>, <link>,
 * <description>, Atom <title>, <link href>, <summary>; elements of other
 * namespaces (Google's custom attribute namespace "cns" among them) become
 * custom attributes. The mapping is google_map.c's.
 *
 * Streamed with libxml2's xmlTextReader, pulling input through the feed's
 * read callback: only the current item is in memory, whatever the feed's
 * size. No network access and no entity substitution (XML_PARSE_NONET and
 * no XML_PARSE_NOENT): a feed cannot make the parser fetch a URL or expand
 * entities into gigabytes. A feed that is not well-formed XML is refused
 * as a whole (an import of half a truncated file would, in replace mode,
 * delete the other half). */
#include "catalog/internal.h"

#include <libxml/xmlreader.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/banned.h"

typedef enum { NS_NONE, NS_GOOGLE, NS_OTHER } ns_t;

typedef struct gx {
    td_feed_read_fn read;
    void *rctx;
    int read_rc;
    const td_feed_sink_t *sink;
    void *sctx;
    td_err_t *err;
    /* the first error libxml2 reported */
    bool xml_failed;
    int xml_line, xml_col;
    char xml_msg[200];
    /* the item being read */
    bool in_item;
    int item_depth, item_line;
    td_entity_t ent;
    td_err_t item_err;
    int n_fields;
    /* the field being read (a child of the item) */
    bool in_field;
    int field_depth, field_line, field_col;
    char field[TD_CATALOG_MAX_NAME + 3];
    ns_t field_ns;
    bool field_too_big;
    td_buf_t text;   /* the field's own text */
    td_buf_t child;  /* the text of the nested element being read */
    td_buf_t nested; /* nested elements' texts, joined by ':' */
} gx_t;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_libxml(void)
{
    xmlInitParser();
}

static int io_read(void *ctx, char *buf, int len)
{
    gx_t *g = ctx;
    long n = g->read(g->rctx, buf, (size_t)len);

    if (n < 0) {
        g->read_rc = (int)n;
        return -1;
    }
    return (int)n;
}

static void on_xml_error(void *ctx, xmlErrorPtr e)
{
    gx_t *g = ctx;

    if (e == NULL || e->level < XML_ERR_ERROR || g->xml_failed) {
        return;
    }
    g->xml_failed = true;
    g->xml_line = e->line;
    g->xml_col = e->int2;
    snprintf(g->xml_msg, sizeof(g->xml_msg), "%s", e->message ? e->message : "error");
    g->xml_msg[strcspn(g->xml_msg, "\n")] = '\0';
}

static const char *str(const xmlChar *s)
{
    return (const char *)s;
}

static ns_t classify_ns(const char *uri)
{
    if (uri == NULL || *uri == '\0') {
        return NS_NONE;
    }
    if (strcmp(uri, "http://base.google.com/ns/1.0") == 0 ||
        strcmp(uri, "https://base.google.com/ns/1.0") == 0) {
        return NS_GOOGLE;
    }
    /* RSS 1.0 and Atom elements are the feed's own, like RSS 2.0's */
    if (strstr(uri, "www.w3.org/2005/Atom") || strstr(uri, "purl.org/rss/1.0")) {
        return NS_NONE;
    }
    return NS_OTHER;
}

static void item_error(gx_t *g, int code, const char *msg)
{
    if (g->item_err.code != TD_OK) {
        return;
    }
    td_err_set_at(&g->item_err, code, g->field, g->field_line, g->field_col, "%s", msg);
}

/* The line of the current node (the parser itself has read ahead); XML
 * errors per item carry lines only, no columns. */
static int node_line(xmlTextReaderPtr r)
{
    xmlNodePtr n = xmlTextReaderCurrentNode(r);
    long line = n ? xmlGetLineNo(n) : -1;

    return line > 0 && line < 1000000000L ? (int)line : xmlTextReaderGetParserLineNumber(r);
}

static void begin_field(gx_t *g, xmlTextReaderPtr r, int depth, const char *local, ns_t ns)
{
    g->in_field = true;
    g->field_depth = depth;
    g->field_line = node_line(r);
    g->field_col = 0;
    g->field_ns = ns;
    g->field_too_big = false;
    snprintf(g->field, sizeof(g->field), "%s%s", ns == NS_GOOGLE ? "g:" : "", local);
    td_buf_reset(&g->text);
    td_buf_reset(&g->child);
    td_buf_reset(&g->nested);
    /* Atom links carry the URL in href */
    if (ns == NS_NONE && strcmp(local, "link") == 0) {
        xmlChar *href = xmlTextReaderGetAttribute(r, BAD_CAST "href");
        if (href) {
            td_buf_adds(&g->text, str(href));
            xmlFree(href);
        }
    }
}

static void add_text(gx_t *g, td_buf_t *b, const char *s)
{
    size_t len = strlen(s);

    if (g->field_too_big || b->len + len > TD_CATALOG_MAX_VALUE) {
        g->field_too_big = true;
        return;
    }
    td_buf_add(b, s, len);
}

static void end_field(gx_t *g, const char *local)
{
    const td_buf_t *v = g->nested.len ? &g->nested : &g->text;
    td_err_t e = { 0 };

    g->in_field = false;
    if (g->item_err.code != TD_OK) {
        return;
    }
    if (g->field_too_big) {
        char msg[80];
        snprintf(msg, sizeof(msg), "value larger than %d bytes", TD_CATALOG_MAX_VALUE);
        item_error(g, TD_ETOOBIG, msg);
        return;
    }
    if (g->field_ns == NS_NONE) {
        /* RSS / Atom's own elements: only these describe the product */
        if (strcmp(local, "summary") == 0) {
            local = "description";
        } else if (strcmp(local, "title") && strcmp(local, "link") &&
                   strcmp(local, "description")) {
            return;
        }
    }
    size_t bad;
    if (!td_catalog__utf8_valid(v->data ? v->data : "", v->len, &bad)) {
        item_error(g, TD_EINVAL, "invalid UTF-8");
        return;
    }
    if (td_catalog__google_set(&g->ent, local, v->data ? v->data : "", v->len, &e) != TD_OK) {
        item_error(g, e.code, e.message);
    }
}

static void begin_item(gx_t *g, xmlTextReaderPtr r, int depth)
{
    g->in_item = true;
    g->item_depth = depth;
    g->item_line = node_line(r);
    td_entity_release(&g->ent);
    memset(&g->item_err, 0, sizeof(g->item_err));
}

static int end_item(gx_t *g)
{
    td_err_t e = { 0 };
    int rc;

    g->in_item = false;
    if (g->item_err.code == TD_OK && (td_catalog__google_finish(&g->ent, &e) != TD_OK ||
                                      td_entity_validate(&g->ent, &e) != TD_OK)) {
        e.line = g->item_line;
        snprintf(e.path, sizeof(e.path), "%s", strcmp(e.path, "id") == 0 ? "g:id" : e.path);
        g->item_err = e;
    }
    if (g->item_err.code != TD_OK) {
        if (g->sink->reject) {
            g->sink->reject(g->sctx, &g->item_err);
        }
        td_entity_release(&g->ent);
        return TD_OK;
    }
    rc = g->sink->entity(g->sctx, &g->ent, g->item_line);
    td_entity_release(&g->ent);
    if (rc != TD_OK) {
        return td_err_set_at(g->err, rc, "", g->item_line, 0, "import stopped at line %d (%s)",
                             g->item_line, td_strerror(rc));
    }
    return TD_OK;
}

static bool is_item(const char *local)
{
    return strcmp(local, "item") == 0 || strcmp(local, "entry") == 0;
}

/* One node of the document; returns a code that stops the parse, or TD_OK. */
static int on_node(gx_t *g, xmlTextReaderPtr r)
{
    int type = xmlTextReaderNodeType(r), depth = xmlTextReaderDepth(r);
    const char *local = str(xmlTextReaderConstLocalName(r));

    switch (type) {
    case XML_READER_TYPE_ELEMENT: {
        bool empty = xmlTextReaderIsEmptyElement(r);
        if (!g->in_item) {
            if (is_item(local)) {
                begin_item(g, r, depth);
                if (empty) {
                    return end_item(g);
                }
            }
        } else if (!g->in_field && depth == g->item_depth + 1) {
            begin_field(g, r, depth, local, classify_ns(str(xmlTextReaderConstNamespaceUri(r))));
            if (empty) {
                end_field(g, local);
            }
        } else if (g->in_field && depth == g->field_depth + 1) {
            td_buf_reset(&g->child);
        }
        break;
    }
    case XML_READER_TYPE_TEXT:
    case XML_READER_TYPE_CDATA:
    case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
        if (g->in_field) {
            const char *v = str(xmlTextReaderConstValue(r));
            if (depth == g->field_depth + 1) {
                add_text(g, &g->text, v ? v : "");
            } else if (depth == g->field_depth + 2) {
                add_text(g, &g->child, v ? v : "");
            }
        }
        break;
    case XML_READER_TYPE_END_ELEMENT:
        if (g->in_field && depth == g->field_depth) {
            end_field(g, local);
        } else if (g->in_field && depth == g->field_depth + 1) {
            const char *s = g->child.data ? g->child.data : "";
            size_t len = g->child.len;
            td_catalog__trim(&s, &len);
            if (g->nested.len) {
                add_text(g, &g->nested, ":");
            }
            td_buf_t t = TD_BUF_INIT;
            td_buf_add(&t, s, len);
            add_text(g, &g->nested, t.data ? t.data : "");
            td_buf_release(&t);
        } else if (g->in_item && depth == g->item_depth) {
            return end_item(g);
        }
        break;
    default:
        break;
    }
    return TD_OK;
}

int td_catalog__parse_google_xml(td_feed_read_fn read, void *rctx, const td_feed_sink_t *sink,
                                 void *sctx, td_err_t *err)
{
    gx_t g;
    xmlTextReaderPtr r;
    int ret, rc = TD_OK;

    pthread_once(&init_once, init_libxml);
    memset(&g, 0, sizeof(g));
    g.read = read;
    g.rctx = rctx;
    g.sink = sink;
    g.sctx = sctx;
    g.err = err;
    r = xmlReaderForIO(io_read, NULL, &g, NULL, NULL,
                       XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_BIG_LINES |
                           XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (r == NULL) {
        return td_err_set(err, TD_EIO, "", "cannot start the XML reader");
    }
    xmlTextReaderSetStructuredErrorHandler(r, on_xml_error, &g);
    while ((ret = xmlTextReaderRead(r)) == 1) {
        if ((rc = on_node(&g, r)) != TD_OK) {
            break;
        }
    }
    if (rc == TD_OK && ret != 0) {
        if (g.read_rc) {
            rc =
                td_err_set(err, g.read_rc, "", "cannot read the feed (%s)", td_strerror(g.read_rc));
        } else {
            rc = td_err_set_at(err, TD_EINVAL, "", g.xml_line, g.xml_col, "malformed XML: %s",
                               g.xml_failed ? g.xml_msg : "cannot parse");
        }
    }
    xmlFreeTextReader(r);
    td_entity_release(&g.ent);
    td_buf_release(&g.text);
    td_buf_release(&g.child);
    td_buf_release(&g.nested);
    return rc;
}
