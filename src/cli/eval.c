/* tandem eval: replays a public dataset through the recommendation engine
 * (the same td_reco_* calls the server makes) with a time-ordered split and
 * prints HitRate@10, Recall@10, NDCG@10 and catalog coverage per criteria.
 *
 *   YOOCHOOSE clicks: train on all days but the last (the _train_full
 *   file), then for every test session predict each next click from the
 *   clicks before it (HR@10 over next-item predictions; recall = HR).
 *   Ta-Feng baskets: every customer's baskets but the last are training
 *   purchases (one synthetic day per basket, as the dataset has no
 *   timestamps); the last basket is the test (Recall@10 = share of its
 *   distinct items in the top 10).
 *
 * The splits and metrics match ../shared/datasets/README.md, whose simple
 * baselines are printed beside the figures. --online also feeds the test
 * day's clicks into the model as they happen (each click is predicted
 * before it is learnt), which is how the server runs. */
#include "cli/cli.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reco/reco.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/banned.h"

#define TOPK     10
#define DAY_MS   (24LL * 3600 * 1000)
#define MAX_LINE 4096

/* ---- a catalog of bare ids (the datasets carry no attributes) ---- */

typedef struct idset {
    char **ids;
    size_t n, cap;
    bool sorted;
} idset_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void idset_add(idset_t *s, const char *id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->ids = td_xrealloc(s->ids, sizeof(char *) * s->cap);
    }
    s->ids[s->n++] = td_xstrdup(id);
    s->sorted = false;
}

static void idset_finish(idset_t *s)
{
    qsort(s->ids, s->n, sizeof(char *), cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (k > 0 && strcmp(s->ids[k - 1], s->ids[i]) == 0) {
            free(s->ids[i]);
            continue;
        }
        s->ids[k++] = s->ids[i];
    }
    s->n = k;
    s->sorted = true;
}

static const char *idset_find(const idset_t *s, const char *id)
{
    char *const *p = bsearch(&id, s->ids, s->n, sizeof(char *), cmp_str);
    return p ? *p : NULL;
}

static void idset_release(idset_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->ids[i]);
    }
    free(s->ids);
    memset(s, 0, sizeof(*s));
}

static bool catalog_get(void *ctx, const char *id, td_reco_item_t *out)
{
    const char *p = idset_find(ctx, id);
    if (p == NULL) {
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->id = p;
    return true;
}

/* ---- metrics ---- */

typedef struct metric {
    const char *name;
    double hr, recall, ndcg;
    int64_t n;
    unsigned char *covered; /* per catalog item */
    double seconds;
} metric_t;

static void score_list(metric_t *m, const idset_t *cat, const td_reco_result_t *r,
                       const char *const *truth, int n_truth)
{
    int hits = 0;
    double dcg = 0, idcg = 0;
    for (int i = 0; i < r->n && i < TOPK; i++) {
        const char *p = idset_find(cat, r->items[i].id);
        if (p != NULL) {
            char *const *q = bsearch(&p, cat->ids, cat->n, sizeof(char *), cmp_str);
            m->covered[q - cat->ids] = 1;
        }
        for (int k = 0; k < n_truth; k++) {
            if (strcmp(r->items[i].id, truth[k]) == 0) {
                hits++;
                dcg += 1.0 / log2(i + 2.0);
                break;
            }
        }
    }
    for (int i = 0; i < n_truth && i < TOPK; i++) {
        idcg += 1.0 / log2(i + 2.0);
    }
    m->hr += hits > 0;
    m->recall += n_truth ? (double)hits / n_truth : 0;
    m->ndcg += idcg > 0 ? dcg / idcg : 0;
    m->n++;
}

static double coverage(const metric_t *m, const idset_t *cat)
{
    size_t c = 0;
    for (size_t i = 0; i < cat->n; i++) {
        c += m->covered[i];
    }
    return cat->n ? (double)c / (double)cat->n : 0;
}

/* ---- criteria under test ---- */

typedef struct algo {
    const char *name;
    const char *json;
    const char *note; /* how the request is keyed */
} algo_t;

/* Backups are disabled and partial designs allowed so that each row
 * measures the criteria alone. */
static const algo_t yc_algos[] = {
    { "MOST_VIEWED",
      "{\"criteriaGroup\":\"POPULARITY\",\"type\":\"MOST_VIEWED\",\"daysCount\":30,"
      "\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "site-wide" },
    { "VIEWED_CF",
      "{\"criteriaGroup\":\"ITEM\",\"type\":\"VIEWED_CF\",\"key\":\"CURRENT_ITEM\","
      "\"daysCount\":30,\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "key = last item (LLR)" },
    { "SITE_AFFINITY",
      "{\"criteriaGroup\":\"ITEM\",\"type\":\"SITE_AFFINITY\",\"key\":\"CURRENT_ITEM\","
      "\"confidence\":\"LOW\",\"daysCount\":30,\"backupDisabled\":true,"
      "\"partialDesignAllowed\":true}",
      "key = last item, LLR >= 3.84" },
    { "RECENTLY_VIEWED",
      "{\"criteriaGroup\":\"RECENT\",\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "session history" },
    { "RECOMMENDED_FOR_YOU",
      "{\"criteriaGroup\":\"USERHISTORY\",\"type\":\"RECOMMENDED_FOR_YOU\",\"daysCount\":30,"
      "\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "last 5 viewed + 5 bought (LLR)" },
    { "USERHISTORY_VIEWED_CF",
      "{\"criteriaGroup\":\"USERHISTORY\",\"type\":\"VIEWED_CF\",\"maxViewedKeys\":1000,"
      "\"daysCount\":30,\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "all session items (LLR)" },
    { "CART_VIEWED_CF",
      "{\"criteriaGroup\":\"CART\",\"type\":\"VIEWED_CF\",\"daysCount\":30,"
      "\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "cart = session items (excluded)" },
};

static const algo_t tf_algos[] = {
    { "TOP_SELLERS",
      "{\"criteriaGroup\":\"POPULARITY\",\"type\":\"TOP_SELLERS\",\"daysCount\":61,"
      "\"excludePurchases\":false,\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "site-wide" },
    { "BOUGHT_CF",
      "{\"criteriaGroup\":\"USERHISTORY\",\"type\":\"BOUGHT_CF\",\"maxViewedKeys\":0,"
      "\"maxPurchasedKeys\":1000,\"purchaseWeight\":1,\"daysCount\":61,"
      "\"excludePurchases\":false,\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "keys = all past purchases (LLR)" },
    { "BOUGHT_CF_COSINE",
      "{\"criteriaGroup\":\"USERHISTORY\",\"type\":\"BOUGHT_CF\",\"maxViewedKeys\":0,"
      "\"maxPurchasedKeys\":1000,\"purchaseWeight\":1,\"daysCount\":61,"
      "\"similarityMetric\":\"COSINE\",\"excludePurchases\":false,\"backupDisabled\":true,"
      "\"partialDesignAllowed\":true}",
      "keys = all past purchases (cosine)" },
    { "RECOMMENDED_FOR_YOU",
      "{\"criteriaGroup\":\"USERHISTORY\",\"type\":\"RECOMMENDED_FOR_YOU\",\"daysCount\":61,"
      "\"excludePurchases\":false,\"backupDisabled\":true,\"partialDesignAllowed\":true}",
      "last 5 bought (LLR)" },
    { "ITEM_BOUGHT_CF",
      "{\"criteriaGroup\":\"ITEM\",\"type\":\"BOUGHT_CF\",\"key\":\"LAST_PURCHASED\","
      "\"daysCount\":61,\"excludePurchases\":false,\"backupDisabled\":true,"
      "\"partialDesignAllowed\":true}",
      "key = last purchased item" },
};

typedef struct baseline {
    const char *dataset, *what;
    double hr, second; /* NDCG@10 for YOOCHOOSE, Recall@10 for Ta-Feng */
} baseline_t;

static const baseline_t baselines[] = {
    { "yoochoose", "most popular", 0.074, 0.037 },
    { "yoochoose", "viewed-this-viewed-that, cosine, key = last item", 0.337, 0.214 },
    { "yoochoose", "cosine summed over the session's items", 0.378, 0.219 },
    { "yoochoose", "recently viewed", 0.340, 0.305 },
    { "tafeng", "top sellers", 0.264, 0.089 },
    { "tafeng", "bought-this-bought-that, cosine, summed over past purchases", 0.310, 0.110 },
    { "tafeng", "buy-again", 0.362, 0.122 },
};

/* ---- options ---- */

typedef struct opts {
    const char *dataset;
    const char *data_dir;
    const char *algos; /* comma list or NULL for all */
    bool online;
    bool quiet;
    int top_k;
} opts_t;

static bool wanted(const opts_t *o, const char *name)
{
    if (o->algos == NULL) {
        return true;
    }
    size_t n = strlen(name);
    for (const char *p = o->algos; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        p += len + (e ? 1 : 0);
    }
    return false;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tandem eval --dataset yoochoose|tafeng [options]\n\n"
            "Replays a public dataset through the recommendation engine with a\n"
            "time-ordered split and prints HitRate@10, Recall@10, NDCG@10 and catalog\n"
            "coverage per criteria, beside the dataset README's baselines.\n\n"
            "options:\n"
            "  --dataset NAME     yoochoose (clicks, next-item) or tafeng (baskets, next basket)\n"
            "  --data-dir DIR     where the datasets are (default ../shared/datasets)\n"
            "  --algo A[,B...]    only these rows (names as printed)\n"
            "  --online           also learn the test events as they happen (yoochoose)\n"
            "  --top-k N          neighbours kept per key item (default 100)\n"
            "  --quiet            no progress lines on stderr\n");
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->data_dir = "../shared/datasets";
    o->top_k = 100;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dataset") == 0 && v) {
            o->dataset = v;
            i++;
        } else if (strcmp(a, "--data-dir") == 0 && v) {
            o->data_dir = v;
            i++;
        } else if (strcmp(a, "--algo") == 0 && v) {
            o->algos = v;
            i++;
        } else if (strcmp(a, "--top-k") == 0 && v) {
            char *end;
            long k = strtol(v, &end, 10);
            if (*end || k < 1 || k > 100000) {
                fprintf(stderr, "tandem eval: --top-k must be 1..100000\n");
                return -1;
            }
            o->top_k = (int)k;
            i++;
        } else if (strcmp(a, "--online") == 0) {
            o->online = true;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
        } else {
            fprintf(stderr, "tandem eval: unknown or incomplete option \"%s\"\n\n", a);
            usage(stderr);
            return -1;
        }
    }
    if (o->dataset == NULL ||
        (strcmp(o->dataset, "yoochoose") != 0 && strcmp(o->dataset, "tafeng") != 0)) {
        fprintf(stderr, "tandem eval: --dataset yoochoose or tafeng is required\n\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

static double secs_since(int64_t start_us)
{
    return (double)(td_mono_us() - start_us) / 1e6;
}

static td_reco_criteria_t *parse_criteria(const algo_t *a)
{
    td_reco_criteria_t *c = NULL;
    td_err_t err = { 0 };
    if (td_reco_criteria_parse(a->json, strlen(a->json), NULL, NULL, &c, &err) != TD_OK) {
        fprintf(stderr, "tandem eval: criteria %s: %s at %s\n", a->name, err.message, err.path);
        return NULL;
    }
    return c;
}

static td_reco_model_t *new_model(const opts_t *o, int days)
{
    td_reco_model_options_t mo;
    td_reco_model_options_init(&mo);
    mo.cf_days[0] = days;
    mo.n_cf_days = 1;
    mo.top_k = o->top_k;
    td_err_t err = { 0 };
    td_reco_model_t *m = td_reco_model_new(&mo, &err);
    if (m == NULL) {
        fprintf(stderr, "tandem eval: model options: %s\n", err.message);
    }
    return m;
}

static void print_header(const opts_t *o, const char *title, double load_s, int64_t n_train,
                         int64_t n_cases, size_t n_items)
{
    printf("%s\n", title);
    printf("train events %lld, test cases %lld, catalog %zu items, loaded and trained in "
           "%.1fs%s\n\n",
           (long long)n_train, (long long)n_cases, n_items, load_s,
           o->online ? " (online: test events learnt as they happen)" : "");
    printf("| %-22s | %-34s | %7s | %9s | %7s | %8s | %6s |\n", "criteria", "keyed on", "HR@10",
           "Recall@10", "NDCG@10", "coverage", "time");
    printf("|%s|%s|%s|%s|%s|%s|%s|\n", "------------------------",
           "------------------------------------", "---------", "-----------", "---------",
           "----------", "--------");
}

static void print_row(const algo_t *a, const metric_t *m, const idset_t *cat)
{
    double n = m->n ? (double)m->n : 1;
    printf("| %-22s | %-34s | %7.4f | %9.4f | %7.4f | %8.4f | %5.1fs |\n", a->name, a->note,
           m->hr / n, m->recall / n, m->ndcg / n, coverage(m, cat), m->seconds);
    fflush(stdout);
}

static void print_baselines(const char *dataset)
{
    bool yc = strcmp(dataset, "yoochoose") == 0;
    printf("\nbaselines (../shared/datasets/README.md, same split):\n\n");
    printf("| %-60s | %5s | %s |\n", "baseline", "HR@10", yc ? "NDCG@10" : "Recall@10");
    printf("|%s|%s|%s|\n", "--------------------------------------------------------------",
           "-------", yc ? "---------" : "-----------");
    for (size_t i = 0; i < TD_ARRAY_LEN(baselines); i++) {
        if (strcmp(baselines[i].dataset, dataset) == 0) {
            printf("| %-60s | %5.3f | %s%5.3f |\n", baselines[i].what, baselines[i].hr,
                   yc ? "  " : "    ", baselines[i].second);
        }
    }
}

/* ---- YOOCHOOSE ---- */

typedef struct click {
    int64_t session;
    const char *item; /* catalog string */
    int64_t ts_ms;
    int64_t order; /* file order, to keep sorting stable */
} click_t;

typedef struct clicks {
    click_t *v;
    size_t n, cap;
} clicks_t;

static int read_clicks(const char *path, idset_t *cat, bool add_to_catalog, clicks_t *out,
                       char ***raw_items)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "tandem eval: cannot open %s (see --data-dir)\n", path);
        return -1;
    }
    char line[MAX_LINE];
    int lineno = 0;
    size_t n_raw = 0, cap_raw = 0;
    char **raw = NULL;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (lineno == 1) {
            continue; /* SessionId ItemId Time */
        }
        char *a = line, *e1, *e2, *e3;
        long long sid = strtoll(a, &e1, 10);
        if (e1 == a || *e1 != '\t') {
            fprintf(stderr, "tandem eval: %s:%d: bad line\n", path, lineno);
            fclose(f);
            return -1;
        }
        long long item = strtoll(e1 + 1, &e2, 10);
        if (e2 == e1 + 1 || *e2 != '\t') {
            fprintf(stderr, "tandem eval: %s:%d: bad item\n", path, lineno);
            fclose(f);
            return -1;
        }
        double ts = strtod(e2 + 1, &e3);
        if (e3 == e2 + 1) {
            fprintf(stderr, "tandem eval: %s:%d: bad time\n", path, lineno);
            fclose(f);
            return -1;
        }
        char id[32];
        snprintf(id, sizeof(id), "%lld", item);
        if (add_to_catalog) {
            idset_add(cat, id);
        }
        if (n_raw == cap_raw) {
            cap_raw = cap_raw ? cap_raw * 2 : 4096;
            raw = td_xrealloc(raw, sizeof(char *) * cap_raw);
        }
        raw[n_raw++] = td_xstrdup(id);
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 4096;
            out->v = td_xrealloc(out->v, sizeof(click_t) * out->cap);
        }
        click_t *c = &out->v[out->n];
        c->session = sid;
        c->item = NULL;
        c->ts_ms = (int64_t)llround(ts * 1000.0);
        c->order = (int64_t)out->n;
        out->n++;
    }
    fclose(f);
    *raw_items = raw;
    return 0;
}

static int cmp_click_time(const void *a, const void *b)
{
    const click_t *x = a, *y = b;
    if (x->ts_ms != y->ts_ms) {
        return x->ts_ms < y->ts_ms ? -1 : 1;
    }
    return (x->order > y->order) - (x->order < y->order);
}

static int feed_click(td_reco_model_t *m, const click_t *c)
{
    char visitor[40];
    snprintf(visitor, sizeof(visitor), "s%lld", (long long)c->session);
    td_reco_event_t ev = { visitor, c->item, TD_RECO_VIEW, c->ts_ms, 0 };
    return td_reco_model_add(m, &ev);
}

static int eval_yoochoose(const opts_t *o)
{
    char train_path[1024], test_path[1024];
    snprintf(train_path, sizeof(train_path),
             "%s/yoochoose-clicks-100k/yoochoose-clicks-100k_train_full.txt", o->data_dir);
    snprintf(test_path, sizeof(test_path),
             "%s/yoochoose-clicks-100k/yoochoose-clicks-100k_test.txt", o->data_dir);
    int64_t t0 = td_mono_us();
    idset_t cat = { 0 };
    clicks_t train = { 0 }, test = { 0 };
    char **raw_train = NULL, **raw_test = NULL;
    int rc = 1;
    td_reco_model_t *model = NULL;

    if (read_clicks(train_path, &cat, true, &train, &raw_train) != 0 ||
        read_clicks(test_path, &cat, false, &test, &raw_test) != 0) {
        goto out;
    }
    idset_finish(&cat);
    for (size_t i = 0; i < train.n; i++) {
        train.v[i].item = idset_find(&cat, raw_train[i]);
    }
    size_t n_unknown = 0;
    for (size_t i = 0; i < test.n; i++) {
        test.v[i].item = idset_find(&cat, raw_test[i]);
        n_unknown += test.v[i].item == NULL;
    }
    /* Test clicks on items never seen in training cannot be predicted by
     * any method; the README says there are none. Count them anyway. */
    if (n_unknown > 0) {
        fprintf(stderr, "tandem eval: %zu test clicks on items not in training\n", n_unknown);
    }

    /* Sessions of the test file: [start, end) ranges in file order. */
    size_t n_sess = 0;
    size_t *sess_start = td_xmalloc(sizeof(size_t) * (test.n + 1));
    for (size_t i = 0; i < test.n; i++) {
        if (i == 0 || test.v[i].session != test.v[i - 1].session) {
            sess_start[n_sess++] = i;
        }
    }
    sess_start[n_sess] = test.n;
    int64_t n_cases = 0;
    for (size_t s = 0; s < n_sess; s++) {
        size_t len = sess_start[s + 1] - sess_start[s];
        n_cases += len > 1 ? (int64_t)(len - 1) : 0;
    }

    qsort(train.v, train.n, sizeof(click_t), cmp_click_time);
    td_reco_catalog_t catalog = { &cat, catalog_get, NULL };
    double load_s = 0;
    bool header = false;
    td_reco_hist_t *hist = td_xmalloc(sizeof(td_reco_hist_t) * (test.n + 1));
    td_reco_cart_line_t *cart = td_xmalloc(sizeof(td_reco_cart_line_t) * (test.n + 1));

    for (size_t ai = 0; ai < TD_ARRAY_LEN(yc_algos); ai++) {
        const algo_t *a = &yc_algos[ai];
        if (!wanted(o, a->name)) {
            continue;
        }
        td_reco_criteria_t *crit = parse_criteria(a);
        if (crit == NULL) {
            goto out_sess;
        }
        /* A fresh model per criteria in online mode (it learns the test
         * day); the static model is shared. */
        if (model == NULL || o->online) {
            td_reco_model_unref(model);
            model = new_model(o, 30);
            if (model == NULL) {
                td_reco_criteria_free(crit);
                goto out_sess;
            }
            for (size_t i = 0; i < train.n; i++) {
                if (feed_click(model, &train.v[i]) != TD_OK) {
                    fprintf(stderr, "tandem eval: cannot feed a training click\n");
                    td_reco_criteria_free(crit);
                    goto out_sess;
                }
            }
            if (!header) {
                load_s = secs_since(t0);
                print_header(o, "YOOCHOOSE clicks (100k sample): next click of each test session",
                             load_s, (int64_t)train.n, n_cases, cat.n);
                header = true;
            }
        }
        td_reco_env_t env = { .model = model, .catalog = &catalog };
        metric_t m = { .name = a->name };
        m.covered = td_xcalloc(cat.n ? cat.n : 1, 1);
        int64_t ta = td_mono_us();
        int64_t done = 0;

        /* Cases in time order (for --online the model learns every test
         * click right after predicting it). */
        click_t *order = td_xmalloc(sizeof(click_t) * (test.n + 1));
        size_t *pos = td_xmalloc(sizeof(size_t) * (test.n + 1));
        memcpy(order, test.v, sizeof(click_t) * test.n);
        for (size_t i = 0; i < test.n; i++) {
            order[i].order = (int64_t)i; /* index into test.v */
        }
        qsort(order, test.n, sizeof(click_t), cmp_click_time);
        size_t s = 0;
        for (size_t i = 0; i < test.n; i++) {
            while (s + 1 < n_sess && sess_start[s + 1] <= i) {
                s++;
            }
            pos[i] = sess_start[s];
        }
        for (size_t k = 0; k < test.n; k++) {
            size_t i = (size_t)order[k].order;
            size_t start = pos[i];
            if (i > start && test.v[i].item != NULL) {
                int n = 0;
                for (size_t j = start; j < i; j++) {
                    if (test.v[j].item == NULL) {
                        continue;
                    }
                    hist[n].item = test.v[j].item;
                    hist[n].action = TD_RECO_VIEW;
                    hist[n].ts_ms = test.v[j].ts_ms;
                    cart[n].id = test.v[j].item;
                    cart[n].quantity = 1;
                    n++;
                }
                td_reco_request_t req = { 0 };
                req.count = TOPK;
                req.now_ms = test.v[i - 1].ts_ms;
                req.key_item = test.v[i - 1].item;
                req.history = hist;
                req.n_history = n;
                req.cart = cart;
                req.n_cart = n;
                td_reco_result_t res;
                td_err_t err = { 0 };
                if (td_reco_rank(&env, crit, &req, &res, &err) != TD_OK) {
                    fprintf(stderr, "tandem eval: rank failed: %s\n", err.message);
                    td_reco_result_release(&res);
                    free(order);
                    free(pos);
                    free(m.covered);
                    td_reco_criteria_free(crit);
                    goto out_sess;
                }
                const char *truth[1] = { test.v[i].item };
                score_list(&m, &cat, &res, truth, 1);
                td_reco_result_release(&res);
                done++;
                if (!o->quiet && done % 2000 == 0) {
                    fprintf(stderr, "  %s: %lld/%lld cases, %.1fs\n", a->name, (long long)done,
                            (long long)n_cases, secs_since(ta));
                }
            }
            if (o->online && test.v[i].item != NULL && feed_click(model, &test.v[i]) != TD_OK) {
                fprintf(stderr, "tandem eval: cannot feed a test click\n");
            }
        }
        m.seconds = secs_since(ta);
        print_row(a, &m, &cat);
        free(order);
        free(pos);
        free(m.covered);
        td_reco_criteria_free(crit);
    }
    if (header) {
        print_baselines("yoochoose");
        td_reco_model_stats_t st;
        td_reco_model_stats(model, &st);
        printf("\nmodel: %lld visitors, %lld items, %lld co-occurrence entries, ~%.1f MiB; "
               "total %.1fs\n",
               (long long)st.visitors, (long long)st.items, (long long)st.pairs,
               (double)st.bytes / (1024.0 * 1024.0), secs_since(t0));
    }
    rc = 0;
out_sess:
    free(sess_start);
    free(hist);
    free(cart);
out:
    for (size_t i = 0; raw_train && i < train.n; i++) {
        free(raw_train[i]);
    }
    for (size_t i = 0; raw_test && i < test.n; i++) {
        free(raw_test[i]);
    }
    free(raw_train);
    free(raw_test);
    free(train.v);
    free(test.v);
    td_reco_model_unref(model);
    idset_release(&cat);
    return rc;
}

/* ---- Ta-Feng ---- */

typedef struct basket_user {
    char *id;
    const char ***baskets; /* catalog strings */
    int *sizes;
    int n;
} basket_user_t;

static int load_tafeng(const char *path, idset_t *cat, basket_user_t **users_out, size_t *n_out)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "tandem eval: %s:%d: %s (see --data-dir)\n", path, jerr.line, jerr.text);
        return -1;
    }
    static const char *parts[] = { "train", "validate", "test" };
    size_t n = 0, cap = 0;
    basket_user_t *users = NULL;
    /* Two passes: the catalog first (so item strings are stable), then the
     * baskets as catalog strings. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t p = 0; p < TD_ARRAY_LEN(parts); p++) {
            json_t *part = json_object_get(root, parts[p]);
            const char *uid;
            json_t *bl;
            json_object_foreach(part, uid, bl)
            {
                if (!json_is_array(bl)) {
                    continue;
                }
                basket_user_t *u = NULL;
                if (pass == 1) {
                    if (n == cap) {
                        cap = cap ? cap * 2 : 1024;
                        users = td_xrealloc(users, sizeof(*users) * cap);
                    }
                    u = &users[n++];
                    u->id = td_xstrdup(uid);
                    u->n = (int)json_array_size(bl);
                    u->baskets = td_xcalloc((size_t)u->n + 1, sizeof(char **));
                    u->sizes = td_xcalloc((size_t)u->n + 1, sizeof(int));
                }
                for (size_t b = 0; b < json_array_size(bl); b++) {
                    json_t *basket = json_array_get(bl, b);
                    size_t bn = json_array_size(basket);
                    if (u) {
                        u->baskets[b] = td_xcalloc(bn + 1, sizeof(char *));
                    }
                    for (size_t k = 0; k < bn; k++) {
                        json_t *it = json_array_get(basket, k);
                        char id[32];
                        if (json_is_integer(it)) {
                            snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
                                     json_integer_value(it));
                        } else if (json_is_string(it)) {
                            snprintf(id, sizeof(id), "%s", json_string_value(it));
                        } else {
                            continue;
                        }
                        if (pass == 0) {
                            idset_add(cat, id);
                        } else {
                            u->baskets[b][u->sizes[b]++] = idset_find(cat, id);
                        }
                    }
                }
            }
        }
        if (pass == 0) {
            idset_finish(cat);
        }
    }
    json_decref(root);
    *users_out = users;
    *n_out = n;
    return 0;
}

typedef struct buy {
    const char *user, *item;
    int64_t ts_ms;
    int64_t order;
} buy_t;

static int cmp_buy(const void *a, const void *b)
{
    const buy_t *x = a, *y = b;
    if (x->ts_ms != y->ts_ms) {
        return x->ts_ms < y->ts_ms ? -1 : 1;
    }
    return (x->order > y->order) - (x->order < y->order);
}

static int eval_tafeng(const opts_t *o)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tafeng-baskets/TaFeng.json", o->data_dir);
    int64_t t0 = td_mono_us();
    idset_t cat = { 0 };
    basket_user_t *users = NULL;
    size_t n_users = 0;
    int rc = 1;
    td_reco_model_t *model = NULL;
    buy_t *buys = NULL;
    size_t n_buys = 0, cap_buys = 0;
    /* Synthetic time: basket b of every customer on day b (the file has
     * only the order of baskets). */
    const int64_t base_ms = 978307200000LL; /* 2001-01-01 */

    if (load_tafeng(path, &cat, &users, &n_users) != 0) {
        goto out;
    }
    for (size_t u = 0; u < n_users; u++) {
        for (int b = 0; b + 1 < users[u].n; b++) {
            for (int k = 0; k < users[u].sizes[b]; k++) {
                if (n_buys == cap_buys) {
                    cap_buys = cap_buys ? cap_buys * 2 : 65536;
                    buys = td_xrealloc(buys, sizeof(buy_t) * cap_buys);
                }
                buy_t *x = &buys[n_buys];
                x->user = users[u].id;
                x->item = users[u].baskets[b][k];
                x->ts_ms = base_ms + (int64_t)b * DAY_MS + k;
                x->order = (int64_t)n_buys;
                n_buys++;
            }
        }
    }
    qsort(buys, n_buys, sizeof(buy_t), cmp_buy);
    model = new_model(o, 61);
    if (model == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n_buys; i++) {
        char visitor[64];
        snprintf(visitor, sizeof(visitor), "c%s", buys[i].user);
        td_reco_event_t ev = { visitor, buys[i].item, TD_RECO_BUY, buys[i].ts_ms, 0 };
        if (td_reco_model_add(model, &ev) != TD_OK) {
            fprintf(stderr, "tandem eval: cannot feed a purchase\n");
            goto out;
        }
    }
    print_header(o, "Ta-Feng baskets: each customer's last basket", secs_since(t0), (int64_t)n_buys,
                 (int64_t)n_users, cat.n);
    td_reco_catalog_t catalog = { &cat, catalog_get, NULL };
    td_reco_env_t env = { .model = model, .catalog = &catalog };
    size_t hist_cap = 4096;
    td_reco_hist_t *hist = td_xmalloc(sizeof(td_reco_hist_t) * hist_cap);
    td_reco_cart_line_t *cart = td_xmalloc(sizeof(td_reco_cart_line_t) * hist_cap);
    const char **truth = td_xmalloc(sizeof(char *) * hist_cap);

    for (size_t ai = 0; ai < TD_ARRAY_LEN(tf_algos); ai++) {
        const algo_t *a = &tf_algos[ai];
        if (!wanted(o, a->name)) {
            continue;
        }
        td_reco_criteria_t *crit = parse_criteria(a);
        if (crit == NULL) {
            break;
        }
        metric_t m = { .name = a->name };
        m.covered = td_xcalloc(cat.n ? cat.n : 1, 1);
        int64_t ta = td_mono_us();
        for (size_t u = 0; u < n_users; u++) {
            basket_user_t *us = &users[u];
            size_t n = 0;
            for (int b = 0; b + 1 < us->n; b++) {
                for (int k = 0; k < us->sizes[b]; k++) {
                    if (n + 1 >= hist_cap) {
                        hist_cap *= 2;
                        hist = td_xrealloc(hist, sizeof(td_reco_hist_t) * hist_cap);
                        cart = td_xrealloc(cart, sizeof(td_reco_cart_line_t) * hist_cap);
                        truth = td_xrealloc(truth, sizeof(char *) * hist_cap);
                    }
                    hist[n].item = us->baskets[b][k];
                    hist[n].action = TD_RECO_BUY;
                    hist[n].ts_ms = base_ms + (int64_t)b * DAY_MS + k;
                    n++;
                }
            }
            /* The cart of the CART row: the last training basket. */
            int nc = 0;
            if (us->n >= 2) {
                int lb = us->n - 2;
                for (int k = 0; k < us->sizes[lb]; k++) {
                    cart[nc].id = us->baskets[lb][k];
                    cart[nc].quantity = 1;
                    nc++;
                }
            }
            int nt = 0;
            int last = us->n - 1;
            for (int k = 0; last >= 0 && k < us->sizes[last]; k++) {
                bool dup = false;
                for (int j = 0; j < nt; j++) {
                    dup = dup || strcmp(truth[j], us->baskets[last][k]) == 0;
                }
                if (!dup && us->baskets[last][k] != NULL) {
                    truth[nt++] = us->baskets[last][k];
                }
            }
            td_reco_request_t req = { 0 };
            req.count = TOPK;
            req.now_ms = base_ms + (int64_t)(us->n - 1) * DAY_MS;
            req.history = hist;
            req.n_history = (int)n;
            req.cart = cart;
            req.n_cart = nc;
            td_reco_result_t res;
            td_err_t err = { 0 };
            if (td_reco_rank(&env, crit, &req, &res, &err) != TD_OK) {
                fprintf(stderr, "tandem eval: rank failed: %s\n", err.message);
                td_reco_result_release(&res);
                continue;
            }
            score_list(&m, &cat, &res, truth, nt);
            td_reco_result_release(&res);
            if (!o->quiet && (u + 1) % 2000 == 0) {
                fprintf(stderr, "  %s: %zu/%zu customers, %.1fs\n", a->name, u + 1, n_users,
                        secs_since(ta));
            }
        }
        m.seconds = secs_since(ta);
        print_row(a, &m, &cat);
        free(m.covered);
        td_reco_criteria_free(crit);
    }
    free(hist);
    free(cart);
    free(truth);
    print_baselines("tafeng");
    td_reco_model_stats_t st;
    td_reco_model_stats(model, &st);
    printf("\nmodel: %lld visitors, %lld items, %lld co-occurrence entries, ~%.1f MiB; "
           "total %.1fs\n",
           (long long)st.visitors, (long long)st.items, (long long)st.pairs,
           (double)st.bytes / (1024.0 * 1024.0), secs_since(t0));
    rc = 0;
out:
    free(buys);
    for (size_t u = 0; u < n_users; u++) {
        for (int b = 0; b < users[u].n; b++) {
            free(users[u].baskets[b]);
        }
        free(users[u].baskets);
        free(users[u].sizes);
        free(users[u].id);
    }
    free(users);
    td_reco_model_unref(model);
    idset_release(&cat);
    return rc;
}

int td_cli_eval(int argc, char **argv)
{
    if (td_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    opts_t o;
    if (parse_opts(argc, argv, &o) != 0) {
        return 2;
    }
    if (strcmp(o.dataset, "yoochoose") == 0) {
        return eval_yoochoose(&o);
    }
    return eval_tafeng(&o);
}
