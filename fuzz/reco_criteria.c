/* libFuzzer target: the recommendation criteria JSON parser (and the rules
 * parser on the same bytes); a criteria that parses is also ranked against
 * a tiny fixed model and catalog, so every accepted shape is exercised. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reco/reco.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *ids[] = { "a", "b", "c", "d" };
static const char *cats[] = { "Men", "Men:Coats" };

static bool get(void *ctx, const char *id, td_reco_item_t *out)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        if (strcmp(id, ids[i]) == 0) {
            memset(out, 0, sizeof(*out));
            out->id = ids[i];
            out->name = "Wool coat";
            out->brand = i % 2 ? "North" : "South";
            out->categories = cats;
            out->n_categories = 2;
            out->value = 10.0 * (double)i;
            out->has_value = true;
            out->inventory = (double)i;
            out->has_inventory = i != 3;
            return true;
        }
    }
    return false;
}

static td_reco_model_t *model;
static td_reco_content_t *content;

static void init(void)
{
    model = td_reco_model_new(NULL, NULL);
    content = td_reco_content_new();
    for (int i = 0; i < 16; i++) {
        char v[8];
        v[0] = 'v';
        v[1] = (char)('a' + i % 5);
        v[2] = '\0';
        td_reco_event_t ev = { v, ids[i % 4], (td_reco_action_t)(i % 3), 1795000000000LL + i, 0 };
        if (td_reco_model_add(model, &ev) != 0) {
            abort();
        }
        td_reco_item_t it;
        get(NULL, ids[i % 4], &it);
        td_reco_content_put(content, &it);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const td_reco_catalog_t catalog = { NULL, get, NULL };
    td_reco_criteria_t *c = NULL;
    td_reco_rules_t rules;
    td_err_t err = { 0 };

    if (model == NULL) {
        init();
    }
    if (td_reco_rules_parse((const char *)data, size, &rules, &err) == 0) {
        td_reco_rules_release(&rules);
    }
    if (td_reco_criteria_parse((const char *)data, size, NULL, NULL, &c, &err) != 0) {
        return 0;
    }
    td_reco_hist_t hist[] = { { "a", TD_RECO_VIEW, 1795000000000LL },
                              { "b", TD_RECO_BUY, 1795000001000LL } };
    td_reco_cart_line_t cart[] = { { "c", 2 } };
    td_reco_kv_t kv[] = { { "brand", "North" } };
    td_reco_request_t req = { .count = 3,
                              .now_ms = 1795000002000LL,
                              .key_item = "a",
                              .cart = cart,
                              .n_cart = 1,
                              .history = hist,
                              .n_history = 2,
                              .profile = kv,
                              .n_profile = 1,
                              .params = kv,
                              .n_params = 1 };
    td_reco_env_t env = { .model = model, .content = content, .catalog = &catalog };
    td_reco_result_t res;
    if (td_reco_rank(&env, c, &req, &res, &err) == 0) {
        td_reco_result_release(&res);
    }
    td_reco_criteria_free(c);
    return 0;
}
