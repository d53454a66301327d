/* Entity parameters of recommendation requests, as Target's mbox and
 * Delivery API take them: entity.id, entity.name, entity.categoryId (a
 * comma-separated list or a JSON array), entity.message,
 * entity.thumbnailUrl, entity.value, entity.pageUrl, entity.inventory,
 * entity.margin, entity.brand, entity.environment, and entity.<anything>
 * for a custom attribute (a JSON array string makes it multi-valued).
 * entity.event.detailsOnly=true says the request only describes the item:
 * it must not count as a view. Other entity.event.* keys and non-entity
 * parameters are not attributes and are ignored here.
 *
 * As in Target, the most recent data wins, except categories, which are
 * appended; an empty value leaves the attribute as it is. */
#include "catalog/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/banned.h"

#define DAY_MS (24 * 3600 * 1000LL)

static int param_error(td_err_t *err, int code, const char *key, const char *msg)
{
    return td_err_set(err, code, key, "%s", msg);
}

static int set_param(td_entity_t *e, const char *key, const char *name, const char *v,
                     td_err_t *err)
{
    size_t nlen = strlen(name), len = strlen(v);
    unsigned field = td_entity_field_by_name(name, nlen);
    td_err_t sub = { 0 };
    double d;

    td_catalog__trim(&v, &len);
    if (len == 0) {
        return TD_OK;
    }
    if (nlen == 0 || nlen > TD_CATALOG_MAX_NAME) {
        return param_error(err, TD_EINVAL, key, "an attribute name of 1 to 255 bytes is expected");
    }
    if (len > TD_CATALOG_MAX_VALUE) {
        return param_error(err, TD_ETOOBIG, key, "value larger than 65536 bytes");
    }
    switch (field) {
    case 0:
        if (td_catalog__set_attr_text(e, name, nlen, v, len, &sub) != TD_OK) {
            return param_error(err, sub.code, key, sub.message);
        }
        return TD_OK;
    case TD_ENTITY_CATEGORIES:
        if (td_catalog__add_categories_text(e, v, len, &sub) != TD_OK) {
            return param_error(err, sub.code, key, sub.message);
        }
        return TD_OK;
    case TD_ENTITY_VALUE:
    case TD_ENTITY_INVENTORY:
    case TD_ENTITY_MARGIN:
    case TD_ENTITY_ENVIRONMENT:
        if (!td_catalog__parse_number(v, len, &d) ||
            (field == TD_ENTITY_ENVIRONMENT && (d != floor(d) || fabs(d) > 9e15))) {
            return td_err_set(err, TD_EINVAL, key, "\"%.*s\" is not a number: %s",
                              (int)(len > 40 ? 40 : len), v, td_catalog__number_hint(v, len));
        }
        if (field == TD_ENTITY_VALUE) {
            e->value = d;
        } else if (field == TD_ENTITY_INVENTORY) {
            e->inventory = d;
        } else if (field == TD_ENTITY_MARGIN) {
            e->margin = d;
        } else {
            e->environment = (int64_t)d;
        }
        e->has |= field;
        return TD_OK;
    default:
        td_entity_set_str(e, field, v, len);
        return TD_OK;
    }
}

int td_catalog_params_parse(const td_kv_t *params, size_t n, td_entity_t *out, bool *details_only,
                            td_err_t *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    *details_only = false;
    for (size_t i = 0; i < n; i++) {
        const char *key = params[i].key, *v = params[i].value ? params[i].value : "";
        if (key == NULL || strncmp(key, "entity.", 7) != 0) {
            continue;
        }
        const char *name = key + 7;
        if (strcmp(name, "id") == 0) {
            size_t len = strlen(v);
            td_catalog__trim(&v, &len);
            if (len) {
                td_entity_set_str(out, 0, v, len);
            }
        } else if (strcmp(name, "event.detailsOnly") == 0) {
            *details_only = strcasecmp(v, "true") == 0;
        } else if (strncmp(name, "event.", 6) == 0) {
            continue;
        } else if ((rc = set_param(out, key, name, v, err)) != TD_OK) {
            td_entity_release(out);
            return rc;
        }
    }
    if (out->id == NULL) {
        td_entity_release(out);
        return TD_ENOTFOUND;
    }
    if ((rc = td_entity_validate(out, err)) != TD_OK) {
        char path[sizeof(err->path)];
        if (err) {
            snprintf(path, sizeof(path), "entity.%.240s", err->path);
            snprintf(err->path, sizeof(err->path), "%s", path);
        }
        td_entity_release(out);
        return rc;
    }
    return TD_OK;
}

int td_catalog_update_from_params(td_catalog_t *cat, struct td_store *st, const td_kv_t *params,
                                  size_t n, int64_t now_ms, bool ignore, td_params_result_t *res,
                                  td_err_t *err)
{
    td_entity_t part;
    bool details_only;
    int rc;

    memset(res, 0, sizeof(*res));
    rc = td_catalog_params_parse(params, n, &part, &details_only, err);
    res->counts_as_view = !details_only;
    if (rc == TD_ENOTFOUND) {
        return TD_OK;
    }
    if (rc != TD_OK) {
        return rc;
    }
    res->has_entity = true;
    if (ignore) {
        td_entity_release(&part);
        return TD_OK;
    }
    /* most page views repeat what the catalog has: no write then, unless
     * the expiry needs a refresh */
    const td_entity_t *cur = td_catalog_get(cat, part.id);
    if (cur) {
        td_entity_t m;
        td_entity_copy(&m, cur);
        bool same = td_entity_merge(&m, &part, true, NULL) == TD_OK && td_entity_equal(&m, cur) &&
                    now_ms - cur->updated_ms < DAY_MS;
        td_entity_release(&m);
        td_entity_unref(cur);
        if (same) {
            td_entity_release(&part);
            return TD_OK;
        }
    }
    rc = td_catalog__upsert(cat, st, &part, now_ms, &res->created, err);
    res->written = rc == TD_OK;
    td_entity_release(&part);
    return rc;
}
