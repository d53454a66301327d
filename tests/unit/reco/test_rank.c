/* Ranking end to end over a fake catalog: every criteria type and key,
 * inclusion rules (static and dynamic), price, inventory, exclusions,
 * collections, backups, partial designs, promotions, sequences, the
 * SIMILARITY fallback for new items, and real-time updates. */
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco/reco.h"

#define T0  1795000000000LL
#define MIN (60LL * 1000)
#define DAY (24LL * 3600 * 1000)

typedef struct fake_item {
    const char *id, *name, *brand;
    const char *cats[3];
    double value;
    double inventory; /* < 0: not set */
    const char *color;
} fake_item_t;

static const fake_item_t items[] = {
    { "c1", "Winter coat wool", "North", { "Men", "Men:Coats" }, 100, 5, "red" },
    { "c2", "Parka winter coat", "North", { "Women", "Women:Coats" }, 120, 0, "blue" },
    { "c3", "Rain coat", "South", { "Men", "Men:Coats" }, 60, -1, "red" },
    { "s1", "Sweatshirt", "North", { "Men", "Men:Sweatshirts" }, 40, 10, "grey" },
    { "s2", "Hoodie", "South", { "Women", "Women:Sweatshirts" }, 50, 3, NULL },
    { "g1", "Wool gloves", "North", { "Accessories" }, 20, 100, "red" },
    { "h1", "Wool hat", "East", { "Accessories" }, 25, 2, "blue" },
    { "new1", "Winter coat deluxe wool", "North", { "Men:Coats" }, 300, 1, "red" },
};

typedef struct fake_ctx {
    td_reco_attr_t attr[TD_ARRAY_LEN(items)];
    const char *vals[TD_ARRAY_LEN(items)][1];
    int n_cats[TD_ARRAY_LEN(items)];
} fake_ctx_t;

static fake_ctx_t fctx;

static bool fake_get(void *ctx, const char *id, td_reco_item_t *out)
{
    (void)ctx;
    for (size_t i = 0; i < TD_ARRAY_LEN(items); i++) {
        if (strcmp(items[i].id, id) != 0) {
            continue;
        }
        memset(out, 0, sizeof(*out));
        out->id = items[i].id;
        out->name = items[i].name;
        out->brand = items[i].brand;
        out->categories = items[i].cats;
        out->n_categories = items[i].cats[1] ? 2 : 1;
        out->value = items[i].value;
        out->has_value = true;
        out->inventory = items[i].inventory;
        out->has_inventory = items[i].inventory >= 0;
        if (items[i].color) {
            fctx.vals[i][0] = items[i].color;
            fctx.attr[i].name = "color";
            fctx.attr[i].values = fctx.vals[i];
            fctx.attr[i].n_values = 1;
            out->attrs = &fctx.attr[i];
            out->n_attrs = 1;
        }
        return true;
    }
    return false;
}

static td_reco_catalog_t catalog = { &fctx, fake_get, NULL };

typedef struct world {
    td_reco_model_t *model;
    td_reco_content_t *content;
    td_reco_custom_t *custom;
    td_reco_env_t env;
} world_t;

static world_t W;

static const td_reco_custom_t *get_custom(void *ctx, const char *id)
{
    (void)ctx;
    return strcmp(id, "mine") == 0 ? W.custom : NULL;
}

static void ev(const char *v, const char *item, td_reco_action_t a, int64_t ts)
{
    td_reco_event_t e = { v, item, a, ts, 0 };
    assert_int_equal(td_reco_model_add(W.model, &e), TD_OK);
}

static int setup(void **state)
{
    (void)state;
    memset(&W, 0, sizeof(W));
    W.model = td_reco_model_new(NULL, NULL);
    W.content = td_reco_content_new();
    for (size_t i = 0; i < TD_ARRAY_LEN(items); i++) {
        td_reco_item_t it;
        fake_get(NULL, items[i].id, &it);
        td_reco_content_put(W.content, &it);
    }
    int64_t t = T0;
    ev("v1", "c1", TD_RECO_VIEW, t);
    ev("v1", "s1", TD_RECO_VIEW, t + MIN);
    ev("v1", "g1", TD_RECO_VIEW, t + 2 * MIN);
    ev("v2", "c1", TD_RECO_VIEW, t);
    ev("v2", "s1", TD_RECO_VIEW, t + MIN);
    ev("v2", "g1", TD_RECO_BUY, t + 2 * MIN);
    ev("v3", "c1", TD_RECO_VIEW, t);
    ev("v3", "g1", TD_RECO_VIEW, t + MIN);
    ev("v3", "h1", TD_RECO_VIEW, t + 2 * MIN);
    ev("v4", "c2", TD_RECO_VIEW, t);
    ev("v4", "s2", TD_RECO_VIEW, t + MIN);
    ev("v5", "c3", TD_RECO_VIEW, t);
    ev("v5", "s1", TD_RECO_BUY, t + MIN);
    ev("v6", "s1", TD_RECO_VIEW, t);
    ev("v6", "g1", TD_RECO_VIEW, t + MIN);
    ev("v7", "s1", TD_RECO_VIEW, t);
    const char *csv = "## RECS custom\nkey,items\nc1,h1,s2,c2\n";
    td_err_t err = { 0 };
    assert_int_equal(td_reco_custom_parse(csv, strlen(csv), &W.custom, &err), TD_OK);
    W.env.model = W.model;
    W.env.content = W.content;
    W.env.catalog = &catalog;
    W.env.custom.get = get_custom;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    td_reco_model_unref(W.model);
    td_reco_content_free(W.content);
    td_reco_custom_free(W.custom);
    return 0;
}

static td_reco_criteria_t *crit(const char *json)
{
    td_reco_criteria_t *c = NULL;
    td_err_t err = { 0 };
    if (td_reco_criteria_parse(json, strlen(json), NULL, NULL, &c, &err) != TD_OK) {
        fail_msg("criteria refused: %s at %s: %s", err.message, err.path, json);
    }
    return c;
}

static td_reco_request_t base_req(const char *key)
{
    td_reco_request_t r;
    memset(&r, 0, sizeof(r));
    r.count = 3;
    r.now_ms = T0 + 10 * MIN;
    r.key_item = key;
    return r;
}

static void rank(const char *json, const td_reco_request_t *req, td_reco_result_t *res)
{
    td_reco_criteria_t *c = crit(json);
    td_err_t err = { 0 };
    int rc = td_reco_rank(&W.env, c, req, res, &err);
    td_reco_criteria_free(c);
    if (rc != TD_OK) {
        fail_msg("rank failed: %s at %s", err.message, err.path);
    }
}

static int pos(const td_reco_result_t *r, const char *id)
{
    for (int i = 0; i < r->n; i++) {
        if (strcmp(r->items[i].id, id) == 0) {
            return i;
        }
    }
    return -1;
}

static void test_viewed_cf_current_item(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("c1");
    td_reco_result_t r;
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"key\":\"CURRENT_ITEM\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true,\"similarityFallback\":false}",
         &req, &r);
    assert_true(r.n >= 2);
    assert_int_equal(pos(&r, "c1"), -1); /* the key is not its own neighbour */
    /* s1 was co-viewed with c1 less often than chance (2 of 7 visitors
     * against 3 x 5 / 7 expected): LLR does not recommend it. */
    assert_int_equal(pos(&r, "s1"), -1);
    assert_true(pos(&r, "g1") >= 0);
    assert_true(pos(&r, "h1") >= 0);
    assert_string_equal(r.items[0].reason, "VIEWED_CF of c1");
    assert_int_equal(r.items[0].source, TD_RECO_FROM_CRITERIA);
    assert_true(r.items[0].score > 0);
    assert_true(r.rendered);
    td_reco_result_release(&r);

    /* VIEWED_BOUGHT: viewers of c1 bought g1. */
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_BOUGHT\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"similarityFallback\":false}",
         &req, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.items[0].id, "g1");
    td_reco_result_release(&r);

    /* BOUGHT_CF from the last purchased item: nobody bought s1 with others. */
    td_reco_hist_t h[] = { { "s1", TD_RECO_BUY, T0 } };
    req.history = h;
    req.n_history = 1;
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"BOUGHT_CF\",\"key\":\"LAST_PURCHASED\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true,\"similarityFallback\":false}",
         &req, &r);
    assert_int_equal(r.n, 0);
    assert_false(r.rendered);
    td_reco_result_release(&r);

    /* SITE_AFFINITY with a very high confidence: too little data. */
    req = base_req("c1");
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"SITE_AFFINITY\",\"confidence\":\"VERY_HIGH\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true,\"similarityFallback\":false}",
         &req, &r);
    assert_int_equal(r.n, 0);
    td_reco_result_release(&r);
}

static void test_realtime_coview(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("h1");
    td_reco_result_t r;
    const char *json = "{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"backupDisabled\":true,"
                       "\"partialDesignAllowed\":true,\"similarityFallback\":false}";
    rank(json, &req, &r);
    assert_int_equal(pos(&r, "s2"), -1);
    td_reco_result_release(&r);
    /* Two visitors co-view h1 and s2 now: the very next request sees it. */
    ev("rt1", "h1", TD_RECO_VIEW, T0 + 5 * MIN);
    ev("rt1", "s2", TD_RECO_VIEW, T0 + 5 * MIN + 1);
    ev("rt2", "h1", TD_RECO_VIEW, T0 + 5 * MIN + 2);
    ev("rt2", "s2", TD_RECO_VIEW, T0 + 5 * MIN + 3);
    rank(json, &req, &r);
    assert_int_equal(pos(&r, "s2"), 0);
    td_reco_result_release(&r);
}

static void test_new_item_similarity(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("new1");
    td_reco_result_t r;
    /* No behaviour for new1: its content neighbours answer. */
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true}",
         &req, &r);
    assert_true(r.n >= 1);
    assert_string_equal(r.items[0].id, "c1");
    assert_int_equal(r.items[0].source, TD_RECO_FROM_SIMILARITY_FALLBACK);
    assert_string_equal(r.items[0].reason, "SIMILARITY to new1");
    td_reco_result_release(&r);

    /* And the new item is a SIMILARITY neighbour of others at once. */
    req = base_req("c1");
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"SIMILARITY\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true}",
         &req, &r);
    assert_string_equal(r.items[0].id, "new1");
    td_reco_result_release(&r);
    /* Weights: ignoring names leaves categories and brand. */
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"SIMILARITY\",\"backupDisabled\":true,"
         "\"attributeWeights\":{\"name\":0,\"color\":0},\"minSimilarity\":0.5,"
         "\"partialDesignAllowed\":true}",
         &req, &r);
    for (int i = 0; i < r.n; i++) {
        assert_true(r.items[i].score >= 0.5);
    }
    assert_true(pos(&r, "c3") >= 0); /* same categories */
    td_reco_result_release(&r);
    /* Removal takes effect at once. */
    td_reco_content_remove(W.content, "new1");
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"SIMILARITY\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true}",
         &req, &r);
    assert_int_equal(pos(&r, "new1"), -1);
    td_reco_result_release(&r);
    td_reco_item_t it;
    fake_get(NULL, "new1", &it);
    td_reco_content_put(W.content, &it);
}

static void test_static_rules(void **state)
{
    (void)state;
    static const struct {
        const char *rule;
        const char *in, *out;
    } cases[] = {
        { "{\"attribute\":\"brand\",\"operation\":\"equals\",\"values\":[\"North\",\"East\"]}",
          "h1", "c3" },
        { "{\"attribute\":\"entity.brand\",\"operation\":\"notEquals\",\"values\":[\"North\"]}",
          "c3", "c1" },
        { "{\"attribute\":\"name\",\"operation\":\"contains\",\"values\":[\"coat\"]}", "c2", "s1" },
        { "{\"attribute\":\"name\",\"operation\":\"notContains\",\"values\":[\"coat\"]}", "s1",
          "c2" },
        { "{\"attribute\":\"name\",\"operation\":\"startsWith\",\"values\":[\"Wool\"]}", "g1",
          "c1" },
        { "{\"attribute\":\"name\",\"operation\":\"endsWith\",\"values\":[\"hat\"]}", "h1", "g1" },
        { "{\"attribute\":\"value\",\"operation\":\"between\",\"min\":30,\"max\":70}", "s1", "c1" },
        { "{\"attribute\":\"value\",\"operation\":\"greaterThanOrEqual\",\"values\":[100]}", "c2",
          "s1" },
        { "{\"attribute\":\"value\",\"operation\":\"lessThanOrEqual\",\"values\":[\"25\"]}", "g1",
          "c1" },
        { "{\"attribute\":\"categoryId\",\"operation\":\"inList\",\"values\":[\"Accessories\"]}",
          "g1", "c1" },
        { "{\"attribute\":\"categoryId\",\"operation\":\"notInList\",\"values\":[\"Men\"]}", "c2",
          "s1" },
        { "{\"attribute\":\"color\",\"operation\":\"present\"}", "c3", "s2" },
        { "{\"attribute\":\"color\",\"operation\":\"notPresent\"}", "s2", "c1" },
    };
    for (size_t i = 0; i < TD_ARRAY_LEN(cases); i++) {
        char json[1024];
        snprintf(json, sizeof(json),
                 "{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\","
                 "\"backupDisabled\":true,\"partialDesignAllowed\":true,"
                 "\"inclusionRules\":[%s]}",
                 cases[i].rule);
        td_reco_request_t req = base_req(NULL);
        req.count = 20;
        td_reco_result_t r;
        rank(json, &req, &r);
        if (pos(&r, cases[i].in) < 0 || pos(&r, cases[i].out) >= 0) {
            fail_msg("rule %s: %s should be in, %s out", cases[i].rule, cases[i].in, cases[i].out);
        }
        td_reco_result_release(&r);
    }
}

static void test_dynamic_rules(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("c1");
    req.count = 20;
    td_reco_result_t r;
    /* Same brand as the key item. */
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"inclusionRules\":[{\"attribute\":\"brand\","
         "\"operation\":\"equals\",\"source\":\"CURRENT_ITEM\",\"sourceAttribute\":\"brand\"}]}",
         &req, &r);
    assert_true(pos(&r, "s1") >= 0);
    assert_int_equal(pos(&r, "c3"), -1);
    assert_int_equal(pos(&r, "h1"), -1);
    td_reco_result_release(&r);
    /* Price within -20%..+20% of the key item's (100). */
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"inclusionRules\":[{\"attribute\":\"value\","
         "\"operation\":\"between\",\"source\":\"CURRENT_ITEM\",\"sourceAttribute\":\"value\","
         "\"min\":80,\"max\":120}]}",
         &req, &r);
    assert_true(pos(&r, "c2") >= 0);
    assert_int_equal(pos(&r, "c3"), -1);
    td_reco_result_release(&r);
    /* Profile attribute matching, with a list on the right side. */
    td_reco_kv_t prof[] = { { "profile.favoriteColor", "blue, grey" } };
    req.profile = prof;
    req.n_profile = 1;
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"inclusionRules\":[{\"attribute\":\"color\","
         "\"operation\":\"inList\",\"source\":\"PROFILE\",\"sourceAttribute\":\"favoriteColor\"}]}",
         &req, &r);
    assert_true(pos(&r, "h1") >= 0);
    assert_true(pos(&r, "s1") >= 0);
    assert_int_equal(pos(&r, "g1"), -1);
    td_reco_result_release(&r);
    /* Parameter matching; a missing parameter ignores the rule by default. */
    td_reco_kv_t params[] = { { "mbox.brand", "South" } };
    req.params = params;
    req.n_params = 1;
    const char *pm = "{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\","
                     "\"backupDisabled\":true,\"partialDesignAllowed\":true,\"inclusionRules\":"
                     "[{\"attribute\":\"brand\",\"operation\":\"equals\",\"source\":\"PARAMETER\","
                     "\"sourceAttribute\":\"brand\"}]}";
    rank(pm, &req, &r);
    assert_true(r.n >= 2);
    for (int i = 0; i < r.n; i++) {
        td_reco_item_t it;
        fake_get(NULL, r.items[i].id, &it);
        assert_string_equal(it.brand, "South");
    }
    td_reco_result_release(&r);
    req.n_params = 0;
    rank(pm, &req, &r);
    assert_true(r.n >= 6);
    td_reco_result_release(&r);
    /* A key item attribute that is missing shows nothing by default... */
    req = base_req("s2");
    req.count = 20;
    const char *km = "{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\","
                     "\"partialDesignAllowed\":true,\"inclusionRules\":[{\"attribute\":\"color\","
                     "\"operation\":\"equals\",\"source\":\"CURRENT_ITEM\","
                     "\"sourceAttribute\":\"color\"";
    char json[1024];
    snprintf(json, sizeof(json), "%s%s}]}", km, "");
    rank(json, &req, &r);
    assert_int_equal(r.n, 0);
    assert_false(r.rendered);
    td_reco_result_release(&r);
    /* ...or uses static values when told to. */
    snprintf(json, sizeof(json), "%s%s}]}", km, ",\"ifEmpty\":\"STATIC\",\"values\":[\"blue\"]");
    rank(json, &req, &r);
    assert_true(r.n >= 1);
    for (int i = 0; i < r.n; i++) {
        assert_true(strcmp(r.items[i].id, "c2") == 0 || strcmp(r.items[i].id, "h1") == 0 ||
                    r.items[i].source == TD_RECO_FROM_BACKUP);
    }
    td_reco_result_release(&r);
}

static void test_price_inventory_exclusions(void **state)
{
    (void)state;
    td_reco_request_t req = base_req(NULL);
    req.count = 20;
    td_reco_result_t r;
    /* In stock: c2 (0) out, c3 (inventory not set) in, as Target does. */
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"minInventory\":1,\"priceRange\":{\"min\":30,"
         "\"max\":110}}",
         &req, &r);
    assert_int_equal(pos(&r, "c2"), -1);
    assert_true(pos(&r, "c3") >= 0);
    assert_true(pos(&r, "c1") >= 0);
    assert_int_equal(pos(&r, "g1"), -1); /* 20 < 30 */
    td_reco_result_release(&r);

    /* Views, purchases, excluded ids. */
    td_reco_hist_t h[] = { { "c1", TD_RECO_VIEW, T0 }, { "g1", TD_RECO_BUY, T0 + MIN } };
    const char *ex[] = { "s1" };
    req.history = h;
    req.n_history = 2;
    req.exclude_ids = ex;
    req.n_exclude = 1;
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"excludeViews\":true}",
         &req, &r);
    assert_int_equal(pos(&r, "c1"), -1);
    assert_int_equal(pos(&r, "g1"), -1); /* excludePurchases defaults to true */
    assert_int_equal(pos(&r, "s1"), -1);
    assert_true(pos(&r, "h1") >= 0);
    td_reco_result_release(&r);
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"excludePurchases\":false}",
         &req, &r);
    assert_true(pos(&r, "g1") >= 0);
    assert_true(pos(&r, "c1") >= 0);
    td_reco_result_release(&r);

    /* Global exclusions: ids, and an inventory = 0 rule that also hides
     * items whose inventory is not set. */
    td_reco_rules_t excl;
    td_err_t err = { 0 };
    const char *rules = "[{\"attribute\":\"inventory\",\"operation\":\"equals\",\"values\":[0]}]";
    assert_int_equal(td_reco_rules_parse(rules, strlen(rules), &excl, &err), TD_OK);
    const char *gids[] = { "h1" };
    W.env.exclusion_rules = &excl;
    W.env.excluded_ids = gids;
    W.env.n_excluded_ids = 1;
    req = base_req(NULL);
    req.count = 20;
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true}",
         &req, &r);
    assert_int_equal(pos(&r, "h1"), -1);
    assert_int_equal(pos(&r, "c2"), -1);
    assert_int_equal(pos(&r, "c3"), -1);
    assert_true(pos(&r, "c1") >= 0);
    td_reco_result_release(&r);
    W.env.exclusion_rules = NULL;
    W.env.excluded_ids = NULL;
    W.env.n_excluded_ids = 0;
    td_reco_rules_release(&excl);

    /* A collection limits everything, backups included. */
    td_reco_rules_t coll;
    rules =
        "[{\"attribute\":\"categoryId\",\"operation\":\"equals\",\"values\":[\"Accessories\"]}]";
    assert_int_equal(td_reco_rules_parse(rules, strlen(rules), &coll, &err), TD_OK);
    req.collection = &coll;
    req.key_item = "c1";
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"partialDesignAllowed\":true}", &req,
         &r);
    for (int i = 0; i < r.n; i++) {
        assert_true(strcmp(r.items[i].id, "g1") == 0 || strcmp(r.items[i].id, "h1") == 0);
    }
    assert_int_equal(r.n, 2);
    td_reco_result_release(&r);
    td_reco_rules_release(&coll);
}

static void test_backups_and_partial(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("c1");
    req.count = 5;
    td_reco_result_t r;
    /* VIEWED_BOUGHT of c1 yields g1 only; backups fill with popular items. */
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_BOUGHT\",\"similarityFallback\":false}",
         &req, &r);
    assert_int_equal(r.n, 5);
    assert_string_equal(r.items[0].id, "g1");
    assert_int_equal(r.n_from_criteria, 1);
    assert_int_equal(r.n_from_backup, 4);
    assert_int_equal(r.items[1].source, TD_RECO_FROM_BACKUP);
    assert_string_equal(r.items[1].reason, "backup: MOST_VIEWED");
    assert_int_equal(pos(&r, "c1"), -1); /* the key stays out of backups too */
    assert_true(r.rendered);
    td_reco_result_release(&r);
    /* Backups through the inclusion rules (default) or not. */
    const char *j = "{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_BOUGHT\","
                    "\"similarityFallback\":false,\"inclusionRules\":[{\"attribute\":\"brand\","
                    "\"operation\":\"equals\",\"values\":[\"North\"]}]";
    char json[1024];
    snprintf(json, sizeof(json), "%s%s}", j, "");
    rank(json, &req, &r);
    assert_int_equal(r.n, 3); /* g1 + s1, c2 (North, not the key) */
    assert_false(r.rendered); /* partial design not allowed */
    td_reco_result_release(&r);
    snprintf(json, sizeof(json), "%s%s}", j, ",\"partialDesignAllowed\":true");
    rank(json, &req, &r);
    assert_int_equal(r.n, 3);
    assert_true(r.rendered);
    td_reco_result_release(&r);
    snprintf(json, sizeof(json), "%s%s}", j, ",\"backupInclusionRules\":false");
    rank(json, &req, &r);
    assert_int_equal(r.n, 5);
    td_reco_result_release(&r);
    snprintf(json, sizeof(json), "%s%s}", j,
             ",\"backupDisabled\":true,\"partialDesignAllowed\":true");
    rank(json, &req, &r);
    assert_int_equal(r.n, 1);
    td_reco_result_release(&r);
}

static void test_promotions(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("c1");
    req.count = 4;
    td_reco_result_t r;
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"similarityFallback\":false,"
         "\"promotions\":{\"front\":{\"ids\":[\"h1\",\"nope\",\"c1\"],\"slots\":1},"
         "\"back\":{\"inclusionRules\":[{\"attribute\":\"brand\",\"operation\":\"equals\","
         "\"values\":[\"South\"]}]}}}",
         &req, &r);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.items[0].id, "h1");
    assert_int_equal(r.items[0].source, TD_RECO_FROM_PROMOTION_FRONT);
    assert_string_equal(r.items[0].reason, "promotion (front)");
    assert_int_equal(r.items[3].source, TD_RECO_FROM_PROMOTION_BACK);
    td_reco_item_t it;
    fake_get(NULL, r.items[3].id, &it);
    assert_string_equal(it.brand, "South");
    for (int i = 1; i < 3; i++) {
        assert_true(strcmp(r.items[i].id, "h1") != 0); /* de-duplicated */
        assert_int_equal(r.items[i].source, TD_RECO_FROM_CRITERIA);
    }
    td_reco_result_release(&r);
}

static void test_sequence(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("c1");
    req.count = 4;
    td_reco_hist_t h[] = { { "h1", TD_RECO_VIEW, T0 }, { "s2", TD_RECO_VIEW, T0 + MIN } };
    req.history = h;
    req.n_history = 2;
    td_reco_result_t r;
    rank("{\"criteriaGroup\":\"SEQUENCE\",\"partialDesignAllowed\":true,\"sequence\":["
         "{\"criteria\":{\"criteriaGroup\":\"RECENT\"},\"slots\":1},"
         "{\"criteria\":{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\","
         "\"similarityFallback\":false},\"slots\":2}]}",
         &req, &r);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.items[0].id, "s2"); /* most recent first */
    assert_int_equal(r.items[0].step, 0);
    assert_int_equal(r.items[1].step, 1);
    assert_int_equal(r.items[2].step, 1);
    assert_int_equal(r.items[3].source, TD_RECO_FROM_BACKUP);
    td_reco_result_release(&r);
}

static void test_user_and_cart_criteria(void **state)
{
    (void)state;
    td_reco_request_t req = base_req(NULL);
    req.count = 5;
    td_reco_result_t r;
    td_reco_hist_t h[] = { { "c1", TD_RECO_VIEW, T0 },
                           { "s1", TD_RECO_VIEW, T0 + MIN },
                           { "c1", TD_RECO_VIEW, T0 + 2 * MIN },
                           { "g1", TD_RECO_BUY, T0 + 3 * MIN } };
    req.history = h;
    req.n_history = 4;
    /* RECENT: unique, newest first, views only. */
    rank("{\"criteriaGroup\":\"RECENT\",\"backupDisabled\":true,\"partialDesignAllowed\":true}",
         &req, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.items[0].id, "c1");
    assert_string_equal(r.items[1].id, "s1");
    assert_string_equal(r.items[0].reason, "RECENTLY_VIEWED");
    td_reco_result_release(&r);
    /* Recommended for you: neighbours of the history keys. */
    rank("{\"criteriaGroup\":\"USERHISTORY\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"excludeViews\":true,\"similarityFallback\":false}",
         &req, &r);
    assert_true(r.n >= 1);
    assert_int_equal(pos(&r, "c1"), -1); /* viewed */
    assert_int_equal(pos(&r, "s1"), -1);
    assert_int_equal(pos(&r, "g1"), -1); /* bought */
    assert_true(strncmp(r.items[0].reason, "RECOMMENDED_FOR_YOU via ", 24) == 0);
    td_reco_result_release(&r);
    /* Keys from history: LAST_VIEWED c1, MOST_VIEWED c1 (10 + 5 + 5 vs 5). */
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"key\":\"LAST_VIEWED\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true,\"excludePurchases\":false}",
         &req, &r);
    assert_true(strcmp(r.items[0].reason, "VIEWED_CF of c1") == 0);
    td_reco_result_release(&r);
    rank("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"key\":\"MOST_VIEWED\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true,\"excludePurchases\":false}",
         &req, &r);
    assert_true(strcmp(r.items[0].reason, "VIEWED_CF of c1") == 0);
    td_reco_result_release(&r);
    /* Cart cross-sell excludes the cart; the abandoned cart is the cart. */
    td_reco_cart_line_t cart[] = { { "c1", 2 }, { "s1", 1 } };
    req = base_req(NULL);
    req.cart = cart;
    req.n_cart = 2;
    rank("{\"criteriaGroup\":\"CART\",\"type\":\"VIEWED_CF\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true}",
         &req, &r);
    assert_true(r.n >= 1);
    assert_int_equal(pos(&r, "c1"), -1);
    assert_int_equal(pos(&r, "s1"), -1);
    assert_true(pos(&r, "g1") >= 0);
    td_reco_result_release(&r);
    rank("{\"criteriaGroup\":\"CART\",\"type\":\"ABANDONED_CART\",\"partialDesignAllowed\":true}",
         &req, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.items[0].id, "c1");
    assert_int_equal(r.items[0].quantity, 2);
    assert_int_equal(r.items[1].quantity, 1);
    assert_string_equal(r.items[0].reason, "ABANDONED_CART");
    td_reco_result_release(&r);
}

static void test_popularity_keys(void **state)
{
    (void)state;
    td_reco_request_t req = base_req("c1");
    req.count = 10;
    td_reco_result_t r;
    rank("{\"criteriaGroup\":\"CATEGORY\",\"type\":\"MOST_VIEWED\",\"key\":\"CURRENT_CATEGORY\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true}",
         &req, &r);
    /* No entity.categoryId: the key item's deepest category, Men:Coats. */
    assert_int_equal(r.n, 1);
    assert_string_equal(r.items[0].id, "c3");
    assert_string_equal(r.items[0].reason, "MOST_VIEWED in category Men:Coats");
    td_reco_result_release(&r);
    req.key_category = "Men";
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"key\":\"CURRENT_CATEGORY\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true}",
         &req, &r);
    assert_string_equal(r.items[0].id, "s1"); /* viewed in 5 sessions */
    assert_int_equal(pos(&r, "c2"), -1);
    td_reco_result_release(&r);
    /* Favourite category from the history (category affinity). */
    td_reco_hist_t h[] = { { "g1", TD_RECO_VIEW, T0 },
                           { "h1", TD_RECO_VIEW, T0 + MIN },
                           { "s2", TD_RECO_VIEW, T0 + 2 * MIN } };
    req = base_req(NULL);
    req.count = 10;
    req.history = h;
    req.n_history = 3;
    rank("{\"criteriaGroup\":\"CATEGORY\",\"type\":\"TOP_SELLERS\",\"key\":\"FAVORITE_CATEGORY\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true,\"excludePurchases\":false}",
         &req, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.items[0].id, "g1"); /* the only purchase in Accessories */
    td_reco_result_release(&r);
    /* By item attribute: top items of the key item's brand (not the key). */
    req = base_req("g1");
    req.count = 10;
    rank("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"groupBy\":\"brand\","
         "\"backupDisabled\":true,\"partialDesignAllowed\":true}",
         &req, &r);
    assert_int_equal(r.n, 3); /* North: s1, c1, c2 */
    assert_string_equal(r.items[0].id, "s1");
    assert_int_equal(pos(&r, "g1"), -1);
    td_reco_result_release(&r);
    /* Keyed by a profile attribute (favourite brand). */
    td_reco_kv_t prof[] = { { "favoriteBrand", "South" } };
    req.profile = prof;
    req.n_profile = 1;
    rank("{\"criteriaGroup\":\"PROFILEATTRIBUTE\",\"type\":\"MOST_VIEWED\",\"groupBy\":\"brand\","
         "\"keyAttribute\":\"profile.favoriteBrand\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true}",
         &req, &r);
    assert_int_equal(r.n, 2); /* South: s2, c3 */
    assert_string_equal(r.items[0].reason, "MOST_VIEWED with brand = South");
    td_reco_result_release(&r);
}

static void test_profile_and_custom(void **state)
{
    (void)state;
    td_reco_request_t req = base_req(NULL);
    td_reco_kv_t prof[] = { { "lastShow", "c1" } };
    req.profile = prof;
    req.n_profile = 1;
    td_reco_result_t r;
    rank("{\"criteriaGroup\":\"PROFILEATTRIBUTE\",\"type\":\"VIEWED_CF\","
         "\"keyAttribute\":\"lastShow\",\"backupDisabled\":true,\"partialDesignAllowed\":true}",
         &req, &r);
    assert_true(r.n >= 1);
    assert_string_equal(r.items[0].reason, "VIEWED_CF of c1");
    assert_int_equal(pos(&r, "c1"), -1);
    td_reco_result_release(&r);
    req = base_req("c1");
    req.count = 5;
    rank("{\"criteriaGroup\":\"CUSTOM\",\"customId\":\"mine\",\"backupDisabled\":true,"
         "\"partialDesignAllowed\":true,\"minInventory\":1}",
         &req, &r);
    assert_int_equal(r.n, 2); /* c2 is out of stock */
    assert_string_equal(r.items[0].id, "h1");
    assert_string_equal(r.items[1].id, "s2");
    assert_string_equal(r.items[0].reason, "CUSTOM mine of c1");
    td_reco_result_release(&r);
}

static void test_bad_requests(void **state)
{
    (void)state;
    td_reco_criteria_t *c = crit("{\"criteriaGroup\":\"RECENT\"}");
    td_reco_request_t req = base_req(NULL);
    td_reco_result_t r;
    td_err_t err = { 0 };
    req.count = 0;
    assert_int_equal(td_reco_rank(&W.env, c, &req, &r, &err), TD_EINVAL);
    assert_string_equal(err.path, "count");
    td_reco_result_release(&r);
    req.count = 3;
    req.n_cart = 2;
    assert_int_equal(td_reco_rank(&W.env, c, &req, &r, &err), TD_EINVAL);
    td_reco_result_release(&r);
    req.n_cart = 0;
    td_reco_env_t bare = { 0 };
    assert_int_equal(td_reco_rank(&bare, c, &req, &r, &err), TD_EINVAL);
    td_reco_result_release(&r);
    /* No model and no content: still answers (nothing to recommend). */
    bare.catalog = &catalog;
    assert_int_equal(td_reco_rank(&bare, c, &req, &r, &err), TD_OK);
    assert_int_equal(r.n, 0);
    td_reco_result_release(&r);
    td_reco_criteria_free(c);
}

static void *writer(void *arg)
{
    td_reco_engine_t *e = arg;
    static const char *its[] = { "c1", "c2", "c3", "s1", "s2", "g1", "h1", "new1" };
    for (int i = 0; i < 4000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "w%d", i % 97);
        td_reco_event_t ev = { v, its[(i * 7) % 8], (td_reco_action_t)(i % 3), T0 + i * 1000LL,
                               i + 1 };
        if (td_reco_engine_add(e, &ev) != TD_OK) {
            return (void *)1;
        }
    }
    return NULL;
}

/* One writer and concurrent readers: every request sees a consistent
 * model (run under the sanitizers; a TSan build checks the locking). */
static void test_concurrent_readers(void **state)
{
    (void)state;
    td_reco_engine_t *e = td_reco_engine_new(td_reco_model_new(NULL, NULL));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer, e), 0);
    td_reco_criteria_t *cs[3] = {
        crit("{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"partialDesignAllowed\":true}"),
        crit("{\"criteriaGroup\":\"POPULARITY\",\"type\":\"TOP_SELLERS\","
             "\"partialDesignAllowed\":true}"),
        crit("{\"criteriaGroup\":\"USERHISTORY\",\"partialDesignAllowed\":true}"),
    };
    bool rebuilt = false;
    for (int i = 0; i < 600; i++) {
        td_reco_model_t *m = td_reco_engine_acquire(e);
        td_reco_env_t env = { .model = m, .content = W.content, .catalog = &catalog };
        td_reco_request_t req = base_req("c1");
        req.visitor = "w3";
        req.now_ms = T0 + i * 5000LL;
        td_reco_result_t r;
        td_err_t err = { 0 };
        assert_int_equal(td_reco_rank(&env, cs[i % 3], &req, &r, &err), TD_OK);
        assert_true(r.n <= 3);
        td_reco_result_release(&r);
        td_reco_model_unref(m);
        if (i == 300 && !rebuilt) {
            /* A rebuild swapped in while the writer keeps going. */
            td_reco_model_t *fresh = NULL;
            assert_int_equal(td_reco_engine_rebuild_begin(e, &fresh), TD_OK);
            td_reco_engine_rebuild_commit(e, fresh);
            rebuilt = true;
        }
    }
    void *ret = NULL;
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_null(ret);
    for (int i = 0; i < 3; i++) {
        td_reco_criteria_free(cs[i]);
    }
    td_reco_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_viewed_cf_current_item),
        cmocka_unit_test(test_realtime_coview),
        cmocka_unit_test(test_new_item_similarity),
        cmocka_unit_test(test_static_rules),
        cmocka_unit_test(test_dynamic_rules),
        cmocka_unit_test(test_price_inventory_exclusions),
        cmocka_unit_test(test_backups_and_partial),
        cmocka_unit_test(test_promotions),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_user_and_cart_criteria),
        cmocka_unit_test(test_popularity_keys),
        cmocka_unit_test(test_profile_and_custom),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
