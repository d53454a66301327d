/* td_reco_rank(): a criteria and a request in, ranked items with score and
 * reason out. Resolves the key (current item, last viewed, most viewed,
 * favourite category, cart, profile attribute, ...), generates candidates
 * from the model, the content index or a CUSTOM list, then fills the slots
 * in order: front promotions, criteria results (with the SIMILARITY
 * fallback for items without behaviour), backups (popular items), back
 * promotions. Every candidate passes the same gate: not excluded (request,
 * key item, cart for cross-sell, purchases / views when asked, global
 * exclusions), in the catalog, in the collection, and through the inclusion
 * rules, price range and inventory floor. Pure: no clock, no I/O. */
#include "reco/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/banned.h"

#define MAX_COUNT      1000
#define MAX_HISTORY    10000
#define MAX_LIST_INPUT 10000
#define SESSION_GAP_MS (30LL * 60 * 1000)

/* A set of strings (borrowed ids) for exclusions and de-duplication. */
typedef struct strset {
    td_reco_strtab_t t;
} strset_t;

static void set_add(strset_t *s, const char *id)
{
    if (id != NULL && id[0] != '\0' && strlen(id) < TD_RECO_MAX_ID) {
        (void)td_reco__strtab_intern(&s->t, id);
    }
}

static bool set_has(const strset_t *s, const char *id)
{
    return id != NULL && td_reco__strtab_find(&s->t, id) != TD_RECO_NONE;
}

typedef struct out_vec {
    td_reco_result_item_t *v;
    int n, cap;
} out_vec_t;

typedef struct ranker {
    const td_reco_env_t *env;
    const td_reco_request_t *req;
    td_reco_hist_t *hist; /* oldest first */
    int n_hist;
    strset_t chosen;
    strset_t excluded;
    out_vec_t out;
} ranker_t;

/* Per-criteria state while one criteria (or sequence step) fills slots. */
typedef struct pass {
    ranker_t *rk;
    const td_reco_criteria_t *c;
    td_reco_filter_ctx_t fc;
    td_reco_item_t key_item; /* valid when fc.key_item != NULL */
    strset_t excluded;       /* this criteria's own exclusions */
    bool no_results;         /* a dynamic rule emptied the criteria */
    int step;
} pass_t;

static void push_result(ranker_t *rk, const char *id, double score, td_reco_slot_source_t src,
                        int step, int64_t qty, const char *fmt, ...) TD_PRINTF(7, 8);

static void push_result(ranker_t *rk, const char *id, double score, td_reco_slot_source_t src,
                        int step, int64_t qty, const char *fmt, ...)
{
    if (rk->out.n == rk->out.cap) {
        rk->out.cap = rk->out.cap ? rk->out.cap * 2 : 16;
        rk->out.v = td_xrealloc(rk->out.v, sizeof(td_reco_result_item_t) * (size_t)rk->out.cap);
    }
    td_reco_result_item_t *r = &rk->out.v[rk->out.n++];
    char reason[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    r->id = td_xstrdup(id);
    r->score = score;
    r->reason = td_xstrdup(reason);
    r->source = src;
    r->step = step;
    r->quantity = qty;
    set_add(&rk->chosen, id);
}

/* The gate every candidate passes. apply_rules: the criteria's inclusion
 * rules, price range and inventory floor (not applied to promotions, and
 * to backups only when the criteria says so). */
static bool admissible(pass_t *ps, const char *id, bool apply_rules, bool criteria_excl)
{
    ranker_t *rk = ps->rk;
    const td_reco_env_t *env = rk->env;
    const td_reco_criteria_t *c = ps->c;

    if (id == NULL || id[0] == '\0' || set_has(&rk->chosen, id) || set_has(&rk->excluded, id)) {
        return false;
    }
    if (criteria_excl && set_has(&ps->excluded, id)) {
        return false;
    }
    td_reco_item_t it;
    memset(&it, 0, sizeof(it));
    if (!env->catalog->get(env->catalog->ctx, id, &it)) {
        return false; /* only catalog items are recommended */
    }
    if (env->exclusion_rules && td_reco__rules_exclude(env->exclusion_rules, &it, &ps->fc)) {
        return false;
    }
    if (rk->req->collection && !td_reco__rules_match(rk->req->collection, &it, &ps->fc, NULL)) {
        return false;
    }
    if (!apply_rules) {
        return true;
    }
    if (!td_reco__rules_match(&c->inclusion, &it, &ps->fc, &ps->no_results)) {
        return false;
    }
    if (c->has_price_min || c->has_price_max) {
        /* Without a price an item cannot be shown to be in range. */
        if (!it.has_value || (c->has_price_min && it.value < c->price_min) ||
            (c->has_price_max && it.value > c->price_max)) {
            return false;
        }
    }
    if (c->has_min_inventory && it.has_inventory && it.inventory < c->min_inventory) {
        return false; /* a missing inventory passes, as in Target */
    }
    return true;
}

/* ---- history-derived keys ---- */

static int cmp_hist(const void *a, const void *b)
{
    const td_reco_hist_t *x = a, *y = b;
    return (x->ts_ms > y->ts_ms) - (x->ts_ms < y->ts_ms);
}

static bool is_view(td_reco_action_t a)
{
    return a == TD_RECO_VIEW || a == TD_RECO_CART;
}

static const char *last_of(const ranker_t *rk, bool bought)
{
    for (int i = rk->n_hist - 1; i >= 0; i--) {
        if (bought ? rk->hist[i].action == TD_RECO_BUY : is_view(rk->hist[i].action)) {
            return rk->hist[i].item;
        }
    }
    return NULL;
}

/* Target's "Most Viewed Item": 10 points for the first product view of a
 * session, 5 for every later view in it, all values halved when a session
 * ends. The highest score wins; ties go to the more recent item. */
static const char *most_viewed(const ranker_t *rk)
{
    typedef struct {
        const char *id;
        double score;
        int last;
    } mv_t;
    mv_t *v = td_xcalloc((size_t)(rk->n_hist ? rk->n_hist : 1), sizeof(mv_t));
    int n = 0;
    int64_t prev = INT64_MIN;
    bool first = true;
    for (int i = 0; i < rk->n_hist; i++) {
        const td_reco_hist_t *h = &rk->hist[i];
        if (!is_view(h->action)) {
            continue;
        }
        if (prev != INT64_MIN && h->ts_ms - prev > SESSION_GAP_MS) {
            for (int k = 0; k < n; k++) {
                v[k].score /= 2;
            }
            first = true;
        }
        prev = h->ts_ms;
        int k = 0;
        while (k < n && strcmp(v[k].id, h->item) != 0) {
            k++;
        }
        if (k == n) {
            v[n].id = h->item;
            n++;
        }
        v[k].score += first ? 10 : 5;
        v[k].last = i;
        first = false;
    }
    const char *best = NULL;
    double best_score = -1;
    int best_last = -1;
    for (int k = 0; k < n; k++) {
        if (v[k].score > best_score || (v[k].score == best_score && v[k].last > best_last)) {
            best = v[k].id;
            best_score = v[k].score;
            best_last = v[k].last;
        }
    }
    free(v);
    return best;
}

/* Target's category affinity: 10 points for the first category viewed in a
 * session, 5 for each category clicked after it; a new category takes 1
 * from every other; a sixth category drops the lowest of the five; all
 * values halve when a session ends. The favourite is the highest. The
 * string returned is the catalog's (valid during the rank call). */
static const char *favorite_category(const ranker_t *rk, char *buf, size_t buf_len)
{
    enum { MAX_CAT = 5 };
    struct {
        char name[256];
        double score;
        int last;
    } cat[MAX_CAT + 1];
    int n = 0;
    int64_t prev = INT64_MIN;
    bool first = true;
    int tick = 0;
    memset(cat, 0, sizeof(cat));
    for (int i = 0; i < rk->n_hist; i++) {
        const td_reco_hist_t *h = &rk->hist[i];
        if (!is_view(h->action)) {
            continue;
        }
        td_reco_item_t it;
        memset(&it, 0, sizeof(it));
        if (!rk->env->catalog->get(rk->env->catalog->ctx, h->item, &it)) {
            continue;
        }
        if (prev != INT64_MIN && h->ts_ms - prev > SESSION_GAP_MS) {
            for (int k = 0; k < n; k++) {
                cat[k].score /= 2;
            }
            first = true;
        }
        prev = h->ts_ms;
        for (int ci = 0; ci < it.n_categories; ci++) {
            const char *name = it.categories[ci];
            if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(cat[0].name)) {
                continue;
            }
            int k = 0;
            while (k < n && strcmp(cat[k].name, name) != 0) {
                k++;
            }
            if (k == n) {
                for (int o = 0; o < n; o++) {
                    cat[o].score -= 1;
                }
                snprintf(cat[n].name, sizeof(cat[n].name), "%s", name);
                cat[n].score = 0;
                n++;
            }
            cat[k].score += first ? 10 : 5;
            cat[k].last = ++tick;
            first = false;
            if (n > MAX_CAT) {
                int low = 0;
                for (int o = 1; o < MAX_CAT; o++) {
                    if (cat[o].score < cat[low].score) {
                        low = o;
                    }
                }
                cat[low] = cat[n - 1];
                n--;
            }
        }
    }
    int best = -1;
    for (int k = 0; k < n; k++) {
        if (best < 0 || cat[k].score > cat[best].score ||
            (cat[k].score == cat[best].score && cat[k].last > cat[best].last)) {
            best = k;
        }
    }
    if (best < 0) {
        return NULL;
    }
    snprintf(buf, buf_len, "%s", cat[best].name);
    return buf;
}

static const char *kv_find(const td_reco_kv_t *kv, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (kv[i].name == NULL || kv[i].value == NULL) {
            continue;
        }
        const char *k = kv[i].name;
        if (strncmp(k, "profile.", 8) == 0) {
            k += 8;
        } else if (strncmp(k, "user.", 5) == 0) {
            k += 5;
        }
        if (strcmp(k, name) == 0 && kv[i].value[0] != '\0') {
            return kv[i].value;
        }
    }
    return NULL;
}

/* The single key item of an item-keyed criteria, or NULL. */
static const char *item_key(const ranker_t *rk, const td_reco_criteria_t *c, char *buf,
                            size_t buf_len)
{
    switch (c->key) {
    case TD_RECO_KEY_CURRENT_ITEM:
        return rk->req->key_item;
    case TD_RECO_KEY_LAST_VIEWED:
        return last_of(rk, false);
    case TD_RECO_KEY_LAST_PURCHASED:
        return last_of(rk, true);
    case TD_RECO_KEY_MOST_VIEWED:
        return most_viewed(rk);
    case TD_RECO_KEY_PROFILE_ATTRIBUTE: {
        const char *v = kv_find(rk->req->profile, rk->req->n_profile, c->key_attribute);
        if (v == NULL) {
            return NULL;
        }
        /* A list value ("a,b") keys on its first entry. */
        snprintf(buf, buf_len, "%s", v);
        char *comma = strchr(buf, ',');
        if (comma) {
            *comma = '\0';
        }
        return buf[0] ? buf : NULL;
    }
    default:
        return NULL;
    }
}

static int rel_of(td_reco_algo_t a)
{
    switch (a) {
    case TD_RECO_ALGO_VIEWED_BOUGHT:
        return TD_RECO_REL_VB;
    case TD_RECO_ALGO_BOUGHT_CF:
        return TD_RECO_REL_BB;
    default:
        return TD_RECO_REL_VV;
    }
}

/* ---- filling ---- */

/* Picks admissible candidates in order until `want` slots are filled. */
static int take(pass_t *ps, const td_reco_cands_t *cands, int want, td_reco_slot_source_t src,
                const char *what)
{
    int got = 0;
    for (int i = 0; i < cands->n && got < want && !ps->no_results; i++) {
        const td_reco_cand_t *cd = &cands->v[i];
        if (!admissible(ps, cd->id, true, true)) {
            continue;
        }
        if (cd->via != NULL) {
            push_result(ps->rk, cd->id, cd->score, src, ps->step, 0, "%s %s", what, cd->via);
        } else {
            push_result(ps->rk, cd->id, cd->score, src, ps->step, 0, "%s", what);
        }
        got++;
    }
    return got;
}

typedef struct pop_walk {
    pass_t *ps;
    int want, got;
    bool apply_rules, criteria_excl;
    td_reco_slot_source_t src;
    const char *group_attr; /* only items whose attribute has this value */
    const char *group_value;
    const char *reason;
} pop_walk_t;

static bool in_group(const td_reco_catalog_t *cat, const char *id, const char *attr,
                     const char *value)
{
    td_reco_item_t it;
    memset(&it, 0, sizeof(it));
    if (!cat->get(cat->ctx, id, &it)) {
        return false;
    }
    const char *vals[64];
    char num[64];
    int n = td_reco__item_values(&it, attr, vals, 64, num, sizeof(num));
    for (int i = 0; i < n; i++) {
        if (strcmp(vals[i], value) == 0) {
            return true;
        }
    }
    return false;
}

static bool pop_visit(void *ctx, const char *id, double score)
{
    pop_walk_t *pw = ctx;
    pass_t *ps = pw->ps;
    if (pw->group_attr != NULL &&
        !in_group(ps->rk->env->catalog, id, pw->group_attr, pw->group_value)) {
        return true;
    }
    if (!admissible(ps, id, pw->apply_rules, pw->criteria_excl)) {
        return !ps->no_results;
    }
    push_result(ps->rk, id, score, pw->src, ps->step, 0, "%s", pw->reason);
    pw->got++;
    return pw->got < pw->want;
}

static int fill_popular(pass_t *ps, bool bought, int hours, const char *attr, const char *value,
                        int want, td_reco_slot_source_t src, bool apply_rules, bool criteria_excl,
                        const char *reason)
{
    const td_reco_env_t *env = ps->rk->env;
    if (env->model == NULL || want <= 0) {
        return 0;
    }
    pop_walk_t pw = { ps, want, 0, apply_rules, criteria_excl, src, attr, value, reason };
    td_reco__model_popular(env->model, bought, hours, ps->rk->req->now_ms, pop_visit, &pw);
    return pw.got;
}

static int fill_similar(pass_t *ps, const td_reco_key_w_t *keys, int n_keys, int want,
                        td_reco_slot_source_t src, const char *what)
{
    const td_reco_env_t *env = ps->rk->env;
    if (env->content == NULL || want <= 0) {
        return 0;
    }
    td_reco_cands_t all = { 0 };
    td_reco_strtab_t seen; /* candidate id -> index in all */
    td_reco__strtab_init(&seen);
    for (int k = 0; k < n_keys; k++) {
        td_reco_cands_t one = { 0 };
        td_reco__content_similar(env->content, keys[k].id, ps->c->attr_weights,
                                 ps->c->n_attr_weights, ps->c->min_similarity, want * 4 + 50, &one);
        for (int i = 0; i < one.n; i++) {
            one.v[i].score *= keys[k].weight;
            uint32_t ix = td_reco__strtab_intern(&seen, one.v[i].id);
            if ((int)ix < all.n) {
                all.v[ix].score += one.v[i].score;
            } else {
                td_reco__cands_push(&all, &one.v[i]);
            }
        }
        td_reco__cands_release(&one);
    }
    td_reco__strtab_release(&seen);
    td_reco__cands_sort(&all);
    int got = take(ps, &all, want, src, what);
    td_reco__cands_release(&all);
    return got;
}

static int fill_behaviour(pass_t *ps, int rel, td_reco_metric_t metric, double min_llr,
                          const td_reco_key_w_t *keys, int n_keys, int want, const char *what)
{
    const td_reco_env_t *env = ps->rk->env;
    if (env->model == NULL || n_keys == 0 || want <= 0) {
        return 0;
    }
    int w = td_reco__model_window(env->model, ps->c->days, NULL);
    td_reco_cands_t cands = { 0 };
    td_reco__model_neighbours(env->model, w, rel, metric, min_llr, keys, n_keys,
                              ps->rk->req->now_ms, &cands);
    td_reco__cands_sort(&cands);
    int got = take(ps, &cands, want, TD_RECO_FROM_CRITERIA, what);
    td_reco__cands_release(&cands);
    return got;
}

/* Unique recent items of the history, newest first. */
static int recent_unique(const ranker_t *rk, bool bought, int max, const char **out)
{
    int n = 0;
    for (int i = rk->n_hist - 1; i >= 0 && n < max; i--) {
        const td_reco_hist_t *h = &rk->hist[i];
        if (bought ? h->action != TD_RECO_BUY : !is_view(h->action)) {
            continue;
        }
        bool dup = false;
        for (int k = 0; k < n; k++) {
            if (strcmp(out[k], h->item) == 0) {
                dup = true;
                break;
            }
        }
        if (!dup) {
            out[n++] = h->item;
        }
    }
    return n;
}

static const char *category_key(pass_t *ps, char *buf, size_t buf_len)
{
    ranker_t *rk = ps->rk;
    if (ps->c->key == TD_RECO_KEY_FAVORITE_CATEGORY) {
        return favorite_category(rk, buf, buf_len);
    }
    if (rk->req->key_category && rk->req->key_category[0]) {
        return rk->req->key_category;
    }
    /* Without entity.categoryId, the current item's longest category (the
     * deepest level, as Target picks the key). */
    if (ps->fc.key_item != NULL) {
        const char *best = NULL;
        for (int i = 0; i < ps->key_item.n_categories; i++) {
            const char *cat = ps->key_item.categories[i];
            if (cat && (best == NULL || strlen(cat) >= strlen(best))) {
                best = cat;
            }
        }
        return best;
    }
    return NULL;
}

/* Runs one (non-sequence) criteria for `want` slots. Returns slots filled
 * by the criteria itself (not backups). */
static int run_criteria(pass_t *ps, int want)
{
    ranker_t *rk = ps->rk;
    const td_reco_criteria_t *c = ps->c;
    const td_reco_request_t *req = rk->req;
    const char *algo = td_reco_algo_name(c->algo);
    char keybuf[TD_RECO_MAX_ID];
    char what[700];
    int got = 0;

    switch (c->algo) {
    case TD_RECO_ALGO_VIEWED_CF:
    case TD_RECO_ALGO_VIEWED_BOUGHT:
    case TD_RECO_ALGO_BOUGHT_CF:
    case TD_RECO_ALGO_SITE_AFFINITY:
    case TD_RECO_ALGO_SIMILARITY:
    case TD_RECO_ALGO_RECOMMENDED_FOR_YOU: {
        td_reco_key_w_t keys[2 * 1000 + 100];
        int n_keys = 0;
        const char *kind = "of";
        if (c->group == TD_RECO_GROUP_CART) {
            for (int i = 0; i < req->n_cart && n_keys < c->max_cart_keys; i++) {
                if (req->cart[i].id) {
                    keys[n_keys].id = req->cart[i].id;
                    keys[n_keys].weight = 1;
                    n_keys++;
                }
            }
            kind = "of cart item";
        } else if (c->group == TD_RECO_GROUP_USERHISTORY) {
            const char **ids = td_xmalloc(sizeof(char *) * 1000);
            int nv = recent_unique(rk, false, c->max_viewed_keys, ids);
            for (int i = 0; i < nv; i++) {
                keys[n_keys].id = ids[i];
                keys[n_keys].weight = 1;
                n_keys++;
            }
            int nb = recent_unique(rk, true, c->max_purchased_keys, ids);
            for (int i = 0; i < nb; i++) {
                /* Purchases weigh twice a view (Target's Recommended for You). */
                int k = 0;
                while (k < n_keys && strcmp(keys[k].id, ids[i]) != 0) {
                    k++;
                }
                if (k < n_keys) {
                    keys[k].weight += c->purchase_weight;
                } else {
                    keys[n_keys].id = ids[i];
                    keys[n_keys].weight = c->purchase_weight;
                    n_keys++;
                }
            }
            free(ids);
            kind = "via";
        } else {
            const char *k = item_key(rk, c, keybuf, sizeof(keybuf));
            if (k != NULL && k[0] != '\0') {
                keys[0].id = k;
                keys[0].weight = 1;
                n_keys = 1;
            }
        }
        if (n_keys == 0) {
            return 0;
        }
        snprintf(what, sizeof(what), "%s %s", algo, kind);
        if (c->algo == TD_RECO_ALGO_SIMILARITY) {
            snprintf(what, sizeof(what), "SIMILARITY to");
            return fill_similar(ps, keys, n_keys, want, TD_RECO_FROM_CRITERIA, what);
        }
        td_reco_metric_t metric = c->metric_set ? c->metric : TD_RECO_METRIC_LLR;
        got = fill_behaviour(ps, rel_of(c->algo), metric, c->min_llr, keys, n_keys, want, what);
        if (got < want && c->similarity_fallback && !ps->no_results) {
            /* Items without behaviour yet (new in the catalog) still get
             * neighbours: the content ones. */
            got += fill_similar(ps, keys, n_keys, want - got, TD_RECO_FROM_SIMILARITY_FALLBACK,
                                "SIMILARITY to");
        }
        return got;
    }
    case TD_RECO_ALGO_MOST_VIEWED:
    case TD_RECO_ALGO_TOP_SELLERS: {
        bool bought = c->algo == TD_RECO_ALGO_TOP_SELLERS;
        const char *attr = NULL, *value = NULL;
        char valbuf[TD_RECO_MAX_ID];
        if (c->group_by != NULL) {
            attr = c->group_by;
            if (c->key == TD_RECO_KEY_PROFILE_ATTRIBUTE) {
                value = kv_find(req->profile, req->n_profile, c->key_attribute);
            } else {
                const char *k = item_key(rk, c, keybuf, sizeof(keybuf));
                td_reco_item_t it;
                memset(&it, 0, sizeof(it));
                if (k && rk->env->catalog->get(rk->env->catalog->ctx, k, &it)) {
                    const char *vals[1];
                    char num[64];
                    if (td_reco__item_values(&it, attr, vals, 1, num, sizeof(num)) == 1) {
                        snprintf(valbuf, sizeof(valbuf), "%s", vals[0]);
                        value = valbuf;
                    }
                }
            }
            if (value == NULL) {
                return 0;
            }
            snprintf(what, sizeof(what), "%s with %s = %s", algo, attr, value);
        } else if (c->key == TD_RECO_KEY_CURRENT_CATEGORY ||
                   c->key == TD_RECO_KEY_FAVORITE_CATEGORY) {
            value = category_key(ps, valbuf, sizeof(valbuf));
            if (value == NULL) {
                return 0;
            }
            attr = "categoryId";
            snprintf(what, sizeof(what), "%s in category %s", algo, value);
        } else {
            snprintf(what, sizeof(what), "%s", algo);
        }
        return fill_popular(ps, bought, c->hours, attr, value, want, TD_RECO_FROM_CRITERIA, true,
                            true, what);
    }
    case TD_RECO_ALGO_RECENTLY_VIEWED: {
        const char **ids = td_xmalloc(sizeof(char *) * (size_t)(rk->n_hist ? rk->n_hist : 1));
        int n = recent_unique(rk, false, rk->n_hist, ids);
        for (int i = 0; i < n && got < want && !ps->no_results; i++) {
            if (admissible(ps, ids[i], true, true)) {
                push_result(rk, ids[i], (double)(n - i) / n, TD_RECO_FROM_CRITERIA, ps->step, 0,
                            "RECENTLY_VIEWED");
                got++;
            }
        }
        free(ids);
        return got;
    }
    case TD_RECO_ALGO_ABANDONED_CART:
        for (int i = 0; i < req->n_cart && got < want && !ps->no_results; i++) {
            /* The cart items themselves: they are excluded as cross-sell
             * keys elsewhere, but here they are the answer. */
            if (admissible(ps, req->cart[i].id, true, false)) {
                push_result(rk, req->cart[i].id, (double)(req->n_cart - i) / req->n_cart,
                            TD_RECO_FROM_CRITERIA, ps->step,
                            req->cart[i].quantity > 0 ? req->cart[i].quantity : 1,
                            "ABANDONED_CART");
                got++;
            }
        }
        return got;
    case TD_RECO_ALGO_CUSTOM: {
        const char *k;
        if (c->key == TD_RECO_KEY_CURRENT_CATEGORY || c->key == TD_RECO_KEY_FAVORITE_CATEGORY) {
            k = category_key(ps, keybuf, sizeof(keybuf));
        } else {
            k = item_key(rk, c, keybuf, sizeof(keybuf));
        }
        const td_reco_custom_t *set =
            rk->env->custom.get ? rk->env->custom.get(rk->env->custom.ctx, c->custom_id) : NULL;
        int n = 0;
        const char *const *items = td_reco_custom_get(set, k, &n);
        for (int i = 0; i < n && got < want && !ps->no_results; i++) {
            if (admissible(ps, items[i], true, true)) {
                push_result(rk, items[i], (double)(n - i) / n, TD_RECO_FROM_CRITERIA, ps->step, 0,
                            "CUSTOM %s of %s", c->custom_id, k);
                got++;
            }
        }
        return got;
    }
    case TD_RECO_ALGO_SEQUENCE:
        break;
    }
    return got;
}

/* Exclusions of one criteria: its key item, the cart for cross-sell,
 * purchases and views when asked. */
static void criteria_exclusions(pass_t *ps)
{
    ranker_t *rk = ps->rk;
    const td_reco_criteria_t *c = ps->c;
    const td_reco_request_t *req = rk->req;
    char buf[TD_RECO_MAX_ID];

    if (c->group == TD_RECO_GROUP_CART && c->algo != TD_RECO_ALGO_ABANDONED_CART) {
        for (int i = 0; i < req->n_cart; i++) {
            set_add(&ps->excluded, req->cart[i].id);
        }
    }
    bool item_keyed = c->group == TD_RECO_GROUP_ITEM ||
                      c->group == TD_RECO_GROUP_PROFILEATTRIBUTE ||
                      c->group == TD_RECO_GROUP_CUSTOM;
    bool popular = c->algo == TD_RECO_ALGO_MOST_VIEWED || c->algo == TD_RECO_ALGO_TOP_SELLERS;
    if (item_keyed) {
        /* "the specified product is not included in the results set" */
        set_add(&ps->excluded, item_key(rk, c, buf, sizeof(buf)));
    }
    if (item_keyed || (popular && c->key != TD_RECO_KEY_NONE)) {
        /* Keyed on the page's item or its category / brand: the item on
         * the page is not recommended to itself. */
        set_add(&ps->excluded, req->key_item);
    }
    if (c->exclude_purchases || c->exclude_views) {
        for (int i = 0; i < rk->n_hist; i++) {
            const td_reco_hist_t *h = &rk->hist[i];
            if ((c->exclude_purchases && h->action == TD_RECO_BUY) ||
                (c->exclude_views && is_view(h->action))) {
                set_add(&ps->excluded, h->item);
            }
        }
    }
}

static void pass_init(pass_t *ps, ranker_t *rk, const td_reco_criteria_t *c, int step)
{
    memset(ps, 0, sizeof(*ps));
    ps->rk = rk;
    ps->c = c;
    ps->step = step;
    td_reco__strtab_init(&ps->excluded.t);
    ps->fc.catalog = rk->env->catalog;
    ps->fc.req = rk->req;
    char buf[TD_RECO_MAX_ID];
    /* The key item whose attributes dynamic rules compare against. */
    const char *k = item_key(rk, c, buf, sizeof(buf));
    if (k == NULL && rk->req->key_item) {
        k = rk->req->key_item;
    }
    if (k != NULL && rk->env->catalog->get(rk->env->catalog->ctx, k, &ps->key_item)) {
        ps->fc.key_item = &ps->key_item;
    }
    criteria_exclusions(ps);
}

static void pass_release(pass_t *ps)
{
    td_reco__strtab_release(&ps->excluded.t);
}

static void fill_promotion(ranker_t *rk, const td_reco_criteria_t *c, const td_reco_promotion_t *pr,
                           int slots, td_reco_slot_source_t src)
{
    pass_t ps;
    pass_init(&ps, rk, c, 0);
    const char *where = src == TD_RECO_FROM_PROMOTION_FRONT ? "front" : "back";
    int got = 0;
    for (int i = 0; i < pr->n_ids && got < slots; i++) {
        if (admissible(&ps, pr->ids[i], false, false)) {
            push_result(rk, pr->ids[i], 0, src, 0, 0, "promotion (%s)", where);
            got++;
        }
    }
    if (pr->rules.n > 0 && got < slots) {
        /* Promote by attribute: the most viewed items matching the rules. */
        td_reco_criteria_t pc = *c;
        pc.inclusion = pr->rules;
        pc.has_price_min = pc.has_price_max = pc.has_min_inventory = false;
        ps.c = &pc;
        char reason[64];
        snprintf(reason, sizeof(reason), "promotion (%s, by attribute)", where);
        fill_popular(&ps, false, 30 * 24, NULL, NULL, slots - got, src, true, false, reason);
    }
    pass_release(&ps);
}

static int backup_fill(ranker_t *rk, const td_reco_criteria_t *c, int want)
{
    pass_t ps;
    pass_init(&ps, rk, c, 0);
    /* Backups are popular items (Target: most viewed across the site),
     * optionally through the criteria's inclusion rules; the criteria's
     * own exclusions (key item, cart, purchases) still hold. */
    int got = fill_popular(&ps, false, c->hours < 24 ? 24 : c->hours, NULL, NULL, want,
                           TD_RECO_FROM_BACKUP, c->backup_inclusion, true, "backup: MOST_VIEWED");
    pass_release(&ps);
    return got;
}

static int load_history(ranker_t *rk, td_err_t *err)
{
    const td_reco_request_t *req = rk->req;
    if (req->history != NULL) {
        if (req->n_history < 0 || req->n_history > MAX_HISTORY) {
            return td_err_set(err, TD_EINVAL, "history", "more than %d events", MAX_HISTORY);
        }
        rk->hist = td_xmalloc(sizeof(td_reco_hist_t) * (size_t)(req->n_history + 1));
        int n = 0;
        for (int i = 0; i < req->n_history; i++) {
            if (req->history[i].item != NULL && req->history[i].item[0] != '\0') {
                rk->hist[n++] = req->history[i];
            }
        }
        rk->n_hist = n;
    } else if (rk->env->model != NULL && req->visitor != NULL) {
        rk->hist = td_xmalloc(sizeof(td_reco_hist_t) * MAX_HISTORY);
        rk->n_hist = td_reco__model_history(rk->env->model, req->visitor, rk->hist, MAX_HISTORY);
    }
    if (rk->n_hist > 1) {
        /* Stable order by time (mergesort via qsort on index ties is not
         * guaranteed, so the index breaks ties). */
        qsort(rk->hist, (size_t)rk->n_hist, sizeof(td_reco_hist_t), cmp_hist);
    }
    return TD_OK;
}

void td_reco_result_release(td_reco_result_t *r)
{
    if (r == NULL) {
        return;
    }
    for (int i = 0; i < r->n; i++) {
        free(r->items[i].id);
        free(r->items[i].reason);
    }
    free(r->items);
    memset(r, 0, sizeof(*r));
}

int td_reco_rank(const td_reco_env_t *env, const td_reco_criteria_t *c,
                 const td_reco_request_t *req, td_reco_result_t *out, td_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (env == NULL || env->catalog == NULL || env->catalog->get == NULL || c == NULL ||
        req == NULL) {
        return td_err_set(err, TD_EINVAL, "", "missing environment, catalog or criteria");
    }
    if (req->count < 1 || req->count > MAX_COUNT) {
        return td_err_set(err, TD_EINVAL, "count", "must be from 1 to %d", MAX_COUNT);
    }
    if (req->n_cart < 0 || req->n_cart > MAX_LIST_INPUT || (req->n_cart > 0 && !req->cart)) {
        return td_err_set(err, TD_EINVAL, "cart", "bad cart list");
    }
    if (req->n_exclude < 0 || req->n_exclude > MAX_LIST_INPUT ||
        (req->n_exclude > 0 && !req->exclude_ids)) {
        return td_err_set(err, TD_EINVAL, "exclude", "bad exclusion list");
    }
    if (req->n_profile < 0 || req->n_params < 0 || (req->n_profile > 0 && !req->profile) ||
        (req->n_params > 0 && !req->params)) {
        return td_err_set(err, TD_EINVAL, "profile", "bad attribute list");
    }

    ranker_t rk;
    memset(&rk, 0, sizeof(rk));
    rk.env = env;
    rk.req = req;
    td_reco__strtab_init(&rk.chosen.t);
    td_reco__strtab_init(&rk.excluded.t);
    int rc = load_history(&rk, err);
    if (rc != TD_OK) {
        goto done;
    }
    for (int i = 0; i < req->n_exclude; i++) {
        set_add(&rk.excluded, req->exclude_ids[i]);
    }
    for (int i = 0; i < env->n_excluded_ids; i++) {
        set_add(&rk.excluded, env->excluded_ids[i]);
    }

    int front = c->front.n_ids || c->front.rules.n ? c->front.slots : 0;
    int back = c->back.n_ids || c->back.rules.n ? c->back.slots : 0;
    if (front > req->count) {
        front = req->count;
    }
    if (back > req->count - front) {
        back = req->count - front;
    }

    /* Front promotions first (they take precedence); back promotions are
     * chosen now so criteria do not repeat them, and placed last. */
    fill_promotion(&rk, c, &c->front, front, TD_RECO_FROM_PROMOTION_FRONT);
    int n_front = rk.out.n;
    fill_promotion(&rk, c, &c->back, back, TD_RECO_FROM_PROMOTION_BACK);
    int n_back = rk.out.n - n_front;
    td_reco_result_item_t *backs = NULL;
    if (n_back > 0) {
        backs = td_xmalloc(sizeof(*backs) * (size_t)n_back);
        memcpy(backs, rk.out.v + n_front, sizeof(*backs) * (size_t)n_back);
        rk.out.n = n_front;
    }
    int want = req->count - n_front - n_back;
    bool emptied = false;
    if (c->group == TD_RECO_GROUP_SEQUENCE) {
        for (int s = 0; s < c->n_steps && want > 0; s++) {
            pass_t ps;
            pass_init(&ps, &rk, c->steps[s].criteria, s);
            int slots = c->steps[s].slots < want ? c->steps[s].slots : want;
            int got = run_criteria(&ps, slots);
            out->n_from_criteria += got;
            want -= got;
            pass_release(&ps);
        }
    } else {
        pass_t ps;
        pass_init(&ps, &rk, c, 0);
        int got = run_criteria(&ps, want);
        emptied = ps.no_results;
        out->n_from_criteria = got;
        want -= got;
        if (ps.fc.key_item != NULL) {
            snprintf(out->key, sizeof(out->key), "%s", ps.key_item.id ? ps.key_item.id : "");
        }
        pass_release(&ps);
    }
    bool backups = !c->backup_disabled && c->algo != TD_RECO_ALGO_ABANDONED_CART && !emptied;
    if (want > 0 && backups) {
        int got = backup_fill(&rk, c, want);
        out->n_from_backup = got;
        want -= got;
    }
    for (int i = 0; i < n_back; i++) {
        if (rk.out.n == rk.out.cap) {
            rk.out.cap = rk.out.cap ? rk.out.cap * 2 : 16;
            rk.out.v = td_xrealloc(rk.out.v, sizeof(td_reco_result_item_t) * (size_t)rk.out.cap);
        }
        rk.out.v[rk.out.n++] = backs[i];
    }
    free(backs);

    out->items = rk.out.v;
    out->n = rk.out.n;
    out->rendered = true;
    if (out->n < req->count && !c->partial_design_allowed) {
        /* Target: without partial rendering the design is replaced by
         * default content when slots stay empty. */
        out->rendered = false;
    }
    if (out->n_from_criteria == 0 && out->n_from_backup == 0 && n_front == 0 && n_back == 0) {
        out->rendered = false;
    }
    rc = TD_OK;
done:
    free(rk.hist);
    td_reco__strtab_release(&rk.chosen.t);
    td_reco__strtab_release(&rk.excluded.t);
    return rc;
}
