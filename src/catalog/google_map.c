/* Google Merchant product data onto Target entity attributes, shared by the
 * XML (RSS 2.0 / Atom) and TSV feeds:
 *
 *   id                     -> entity.id (required)
 *   title                  -> name
 *   description            -> message
 *   link                   -> pageUrl
 *   image_link             -> thumbnailUrl
 *   price "12.99 USD"      -> value 12.99, custom "currency" = "USD"
 *   sale_price             -> custom "sale_price" (number; its currency dropped)
 *   availability           -> custom "availability" (in_stock, out_of_stock,
 *                             preorder, backorder; "in stock" is read as
 *                             in_stock); out_of_stock also sets inventory 0,
 *                             the others clear inventory (it is unknown)
 *   brand                  -> brand
 *   product_type           -> categoryId, " > " becoming ":" ("Home > Women"
 *                             -> "Home:Women"); repeatable
 *   google_product_category-> custom "google_product_category", and the
 *                             category when there is no product_type
 *   anything else          -> a custom attribute of the same name
 *                             (additional_image_link, gtin, color, size,
 *                             custom_label_0, ...); a repeated attribute
 *                             becomes a multi-value one; a nested one
 *                             (shipping, tax) is written as in TSV feeds,
 *                             its parts joined by ':' ("US:CA:9.25:y").
 *
 * Prices must be a number with a dot for decimals, optionally followed by
 * an ISO 4217 code: "12,99 EUR" is rejected, not read as 12 or 1299. */
#include "catalog/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "util/banned.h"

/* "g:Image Link" -> "image_link" */
static size_t normalise(const char *name, char *out, size_t cap)
{
    size_t n = 0, len = strlen(name);

    td_catalog__trim(&name, &len);
    if (len >= 2 && (name[0] == 'g' || name[0] == 'G') && name[1] == ':') {
        name += 2;
        len -= 2;
    }
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        char c = name[i];
        out[n++] = c == ' ' ? '_' : (char)tolower((unsigned char)c);
    }
    out[n] = '\0';
    return n;
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

/* "12.99 USD", "12.99USD", "12.99" */
static int parse_price(const char *v, size_t len, double *out, char *currency, td_err_t *err)
{
    size_t n = len;

    currency[0] = '\0';
    td_catalog__trim(&v, &len);
    n = len;
    if (n >= 3 && is_upper(v[n - 1]) && is_upper(v[n - 2]) && is_upper(v[n - 3])) {
        memcpy(currency, v + n - 3, 3);
        currency[3] = '\0';
        n -= 3;
    }
    if (!td_catalog__parse_number(v, n, out)) {
        return td_err_set(err, TD_EINVAL, "",
                          "price \"%.*s\" is not a number and a currency code (as \"12.99 USD\"): "
                          "%s",
                          (int)(len > 40 ? 40 : len), v, td_catalog__number_hint(v, n));
    }
    if (*out < 0) {
        return td_err_set(err, TD_EINVAL, "", "negative price \"%.*s\"", (int)(len > 40 ? 40 : len),
                          v);
    }
    return TD_OK;
}

/* Adds v to attribute name, turning a repeated attribute into a list. */
static int add_value(td_entity_t *e, const char *name, const char *v, size_t len, td_err_t *err)
{
    const td_attr_t *old = td_entity_attr(e, name);

    if (old == NULL) {
        if (e->n_attrs >= TD_CATALOG_MAX_ATTRS) {
            return td_err_set(err, TD_ETOOBIG, "", "more than %d custom attributes",
                              TD_CATALOG_MAX_ATTRS);
        }
        td_attr_t *a = td_entity_set_attr(e, name, strlen(name));
        a->type = TD_ATTR_STRING;
        a->str = td_xstrndup(v, len);
        return TD_OK;
    }
    td_attr_t *a = (td_attr_t *)old;
    if (a->type == TD_ATTR_STRING) {
        char *first = a->str;
        a->list = td_xmalloc(sizeof(char *) * 2);
        a->list[0] = first;
        a->n_list = 1;
        a->type = TD_ATTR_LIST;
    } else if (a->type != TD_ATTR_LIST) {
        return td_err_set(err, TD_EINVAL, "", "attribute given twice");
    }
    if (a->n_list >= TD_CATALOG_MAX_LIST) {
        return td_err_set(err, TD_ETOOBIG, "", "more than %d values", TD_CATALOG_MAX_LIST);
    }
    if ((a->n_list & (a->n_list - 1)) == 0) {
        a->list = td_xrealloc(a->list, sizeof(char *) * (size_t)a->n_list * 2);
    }
    a->list[a->n_list++] = td_xstrndup(v, len);
    return TD_OK;
}

static int set_number_attr(td_entity_t *e, const char *name, double d, td_err_t *err)
{
    if (td_entity_attr(e, name) == NULL && e->n_attrs >= TD_CATALOG_MAX_ATTRS) {
        return td_err_set(err, TD_ETOOBIG, "", "more than %d custom attributes",
                          TD_CATALOG_MAX_ATTRS);
    }
    td_attr_t *a = td_entity_set_attr(e, name, strlen(name));
    a->type = TD_ATTR_NUMBER;
    a->num = d;
    return TD_OK;
}

/* "Home > Women > Dresses" -> "Home:Women:Dresses" */
static int add_category_path(td_entity_t *e, const char *v, size_t len, td_err_t *err)
{
    td_buf_t b = TD_BUF_INIT;
    int rc = TD_OK;

    while (len > 0) {
        const char *gt = memchr(v, '>', len);
        const char *part = v;
        size_t n = gt ? (size_t)(gt - v) : len;
        size_t plen = n;
        td_catalog__trim(&part, &plen);
        if (plen) {
            if (b.len) {
                td_buf_addc(&b, ':');
            }
            td_buf_add(&b, part, plen);
        }
        v += n + (gt != NULL);
        len -= n + (gt != NULL);
    }
    if (b.len) {
        if (e->n_categories >= TD_CATALOG_MAX_CATEGORIES) {
            rc = td_err_set(err, TD_ETOOBIG, "", "more than %d categories",
                            TD_CATALOG_MAX_CATEGORIES);
        } else {
            td_entity_add_category(e, b.data, b.len);
        }
    }
    td_buf_release(&b);
    return rc;
}

int td_catalog__google_set(td_entity_t *e, const char *raw_name, const char *v, size_t len,
                           td_err_t *err)
{
    char name[TD_CATALOG_MAX_NAME + 1], currency[4];
    size_t nlen = normalise(raw_name, name, sizeof(name));
    double d;
    int rc;

    td_catalog__trim(&v, &len);
    if (len == 0) {
        return TD_OK;
    }
    if (nlen == 0) {
        return td_err_set(err, TD_EINVAL, "", "attribute without a name");
    }
    if (strcmp(name, "id") == 0) {
        td_entity_set_str(e, 0, v, len);
    } else if (strcmp(name, "title") == 0) {
        td_entity_set_str(e, TD_ENTITY_NAME, v, len);
    } else if (strcmp(name, "description") == 0) {
        td_entity_set_str(e, TD_ENTITY_MESSAGE, v, len);
    } else if (strcmp(name, "link") == 0) {
        td_entity_set_str(e, TD_ENTITY_PAGE_URL, v, len);
    } else if (strcmp(name, "image_link") == 0) {
        td_entity_set_str(e, TD_ENTITY_THUMBNAIL_URL, v, len);
    } else if (strcmp(name, "brand") == 0) {
        td_entity_set_str(e, TD_ENTITY_BRAND, v, len);
    } else if (strcmp(name, "price") == 0) {
        if ((rc = parse_price(v, len, &d, currency, err)) != TD_OK) {
            return rc;
        }
        e->value = d;
        e->has |= TD_ENTITY_VALUE;
        if (currency[0]) {
            td_attr_t *a;
            if (td_entity_attr(e, "currency") == NULL && e->n_attrs >= TD_CATALOG_MAX_ATTRS) {
                return td_err_set(err, TD_ETOOBIG, "", "more than %d custom attributes",
                                  TD_CATALOG_MAX_ATTRS);
            }
            a = td_entity_set_attr(e, "currency", 8);
            a->type = TD_ATTR_STRING;
            a->str = td_xstrdup(currency);
        }
    } else if (strcmp(name, "sale_price") == 0) {
        if ((rc = parse_price(v, len, &d, currency, err)) != TD_OK) {
            return rc;
        }
        return set_number_attr(e, "sale_price", d, err);
    } else if (strcmp(name, "availability") == 0) {
        char norm[32];
        size_t n = 0;
        for (size_t i = 0; i < len && n + 1 < sizeof(norm); i++) {
            norm[n++] = v[i] == ' ' ? '_' : (char)tolower((unsigned char)v[i]);
        }
        norm[n] = '\0';
        if (strcmp(norm, "in_stock") && strcmp(norm, "out_of_stock") && strcmp(norm, "preorder") &&
            strcmp(norm, "backorder") && strcmp(norm, "limited_availability") &&
            strcmp(norm, "on_display_to_order")) {
            return td_err_set(err, TD_EINVAL, "",
                              "availability \"%.*s\" is not one of in_stock, out_of_stock, "
                              "preorder, backorder",
                              (int)(len > 40 ? 40 : len), v);
        }
        if (strcmp(norm, "out_of_stock") == 0) {
            e->inventory = 0;
            e->has |= TD_ENTITY_INVENTORY;
            e->clear &= ~TD_ENTITY_INVENTORY;
        } else {
            e->has &= ~TD_ENTITY_INVENTORY;
            e->clear |= TD_ENTITY_INVENTORY;
        }
        if (td_entity_attr(e, "availability") == NULL && e->n_attrs >= TD_CATALOG_MAX_ATTRS) {
            return td_err_set(err, TD_ETOOBIG, "", "more than %d custom attributes",
                              TD_CATALOG_MAX_ATTRS);
        }
        td_attr_t *a = td_entity_set_attr(e, "availability", 12);
        a->type = TD_ATTR_STRING;
        a->str = td_xstrdup(norm);
    } else if (strcmp(name, "product_type") == 0) {
        return add_category_path(e, v, len, err);
    } else {
        return add_value(e, name, v, len, err);
    }
    return TD_OK;
}

int td_catalog__google_finish(td_entity_t *e, td_err_t *err)
{
    const td_attr_t *gpc = td_entity_attr(e, "google_product_category");

    if (e->id == NULL || e->id[0] == '\0') {
        return td_err_set(err, TD_EINVAL, "id", "missing id (g:id)");
    }
    if (!(e->has & TD_ENTITY_CATEGORIES) && gpc) {
        const char *s = gpc->type == TD_ATTR_LIST && gpc->n_list ? gpc->list[0] : gpc->str;
        /* a numeric taxonomy id is no category name; only paths are used */
        if (s && !td_catalog__parse_number(s, strlen(s), &(double){ 0 })) {
            return add_category_path(e, s, strlen(s), err);
        }
    }
    return TD_OK;
}
