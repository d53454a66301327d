/* The demo's catalogue and shopper history, made from a public click log.
 * The item ids, the sessions and what was viewed together are real; the
 * names, categories, prices and pictures are generated (and say so), since
 * the log has none. */
#include "demo/demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util/strmap.h"
#include "util/banned.h"

#define N_CATS          10
#define PROPAGATE_ROUND 6
#define PURCHASE_EVERY  7 /* one session in seven ends with a purchase */

/* Generated categories: a name, price range, and words for the names. */
static const struct {
    const char *name;
    double min, span;
    const char *nouns[4];
} cats[N_CATS] = {
    { "Coats", 119, 180, { "coat", "parka", "overcoat", "duffle coat" } },
    { "Jackets", 79, 120, { "jacket", "bomber", "blazer", "rain jacket" } },
    { "Sweatshirts", 39, 40, { "sweatshirt", "hoodie", "crewneck", "zip hoodie" } },
    { "Knitwear", 49, 70, { "jumper", "cardigan", "roll neck", "knit vest" } },
    { "Shirts", 29, 50, { "shirt", "oxford shirt", "flannel shirt", "linen shirt" } },
    { "Jeans", 49, 60, { "jeans", "slim jeans", "straight jeans", "chinos" } },
    { "Dresses", 59, 90, { "dress", "shirt dress", "wrap dress", "knit dress" } },
    { "Shoes", 69, 110, { "boots", "sneakers", "loafers", "chelsea boots" } },
    { "Bags", 35, 120, { "tote", "backpack", "weekender", "crossbody bag" } },
    { "Accessories", 15, 45, { "scarf", "beanie", "gloves", "belt" } },
};
static const char *adjectives[] = { "Alpine", "Harbour", "Nordic",  "City",   "Classic",
                                    "Weekend", "Heritage", "Urban", "Coastal", "Summit",
                                    "Field",   "Studio",   "Meadow", "Granite", "Drift" };
static const char *colours[] = { "navy", "charcoal", "olive", "camel", "burgundy",
                                 "ivory", "black", "stone", "forest", "rust" };

typedef struct click {
    int64_t session;
    int item;
    double ts; /* seconds */
} click_t;

typedef struct item {
    char id[32];
    int cat;
    int views;
    int *nbr; /* co-viewed items (with repeats: repeats weigh more) */
    int n_nbr, cap_nbr;
} item_t;

typedef struct log {
    click_t *clicks;
    int n, cap;
    item_t *items;
    int n_items, cap_items;
    td_strmap_t ids;
} log_t;

static uint32_t hash32(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h ^ (h >> 15);
}

static int item_index(log_t *lg, const char *id)
{
    int64_t v;
    if (td_strmap_get(&lg->ids, id, strlen(id), &v)) {
        return (int)v;
    }
    if (lg->n_items == lg->cap_items) {
        lg->cap_items = lg->cap_items ? lg->cap_items * 2 : 1024;
        lg->items = td_xrealloc(lg->items, sizeof(item_t) * (size_t)lg->cap_items);
    }
    item_t *it = &lg->items[lg->n_items];
    memset(it, 0, sizeof(*it));
    snprintf(it->id, sizeof(it->id), "%s", id);
    it->cat = (int)(hash32(id) % N_CATS);
    td_strmap_put(&lg->ids, id, strlen(id), lg->n_items);
    return lg->n_items++;
}

static int read_log(const char *path, log_t *lg, td_err_t *err)
{
    gzFile f = gzopen(path, "rb"); /* reads plain files too */
    char line[256], id[32];
    long long session;
    double ts;
    int lineno = 0;

    if (f == NULL) {
        return td_err_set(err, TD_EIO, "demo_dataset", "cannot open \"%s\"", path);
    }
    while (gzgets(f, line, sizeof(line)) != NULL) {
        if (++lineno == 1) {
            continue; /* the header */
        }
        if (sscanf(line, "%lld\t%31[0-9]\t%lf", &session, id, &ts) != 3) {
            gzclose(f);
            return td_err_set(err, TD_EINVAL, "demo_dataset",
                              "%s:%d: expected SessionId<TAB>ItemId<TAB>Time", path, lineno);
        }
        if (lg->n == lg->cap) {
            lg->cap = lg->cap ? lg->cap * 2 : 65536;
            lg->clicks = td_xrealloc(lg->clicks, sizeof(click_t) * (size_t)lg->cap);
        }
        lg->clicks[lg->n++] = (click_t){ session, item_index(lg, id), ts };
    }
    gzclose(f);
    if (lg->n == 0) {
        return td_err_set(err, TD_EINVAL, "demo_dataset", "\"%s\" holds no clicks", path);
    }
    return TD_OK;
}

static void add_nbr(item_t *it, int other)
{
    if (it->n_nbr == it->cap_nbr) {
        it->cap_nbr = it->cap_nbr ? it->cap_nbr * 2 : 8;
        it->nbr = td_xrealloc(it->nbr, sizeof(int) * (size_t)it->cap_nbr);
    }
    it->nbr[it->n_nbr++] = other;
}

/* Label propagation over the co-view graph: each item takes the category
 * most of its co-viewed items have, with big categories discounted so the
 * shop does not end up with one huge aisle. */
static void assign_categories(log_t *lg)
{
    int size[N_CATS];

    for (int i = 0; i < lg->n; i++) {
        click_t *c = &lg->clicks[i];
        lg->items[c->item].views++;
        if (i > 0 && lg->clicks[i - 1].session == c->session &&
            lg->clicks[i - 1].item != c->item) {
            add_nbr(&lg->items[c->item], lg->clicks[i - 1].item);
            add_nbr(&lg->items[lg->clicks[i - 1].item], c->item);
        }
    }
    for (int round = 0; round < PROPAGATE_ROUND; round++) {
        memset(size, 0, sizeof(size));
        for (int i = 0; i < lg->n_items; i++) {
            size[lg->items[i].cat]++;
        }
        for (int i = 0; i < lg->n_items; i++) {
            item_t *it = &lg->items[i];
            double vote[N_CATS] = { 0 };
            int best = it->cat;

            vote[it->cat] += 1.0;
            for (int k = 0; k < it->n_nbr; k++) {
                vote[lg->items[it->nbr[k]].cat] += 1.0;
            }
            for (int c = 0; c < N_CATS; c++) {
                vote[c] /= 1.0 + (double)size[c] / (double)(lg->n_items / N_CATS + 1);
                if (vote[c] > vote[best]) {
                    best = c;
                }
            }
            it->cat = best;
        }
    }
}

/* Shop prices end in .90 or .00. */
static double item_price(const item_t *it)
{
    uint32_t h = hash32(it->id);
    return cats[it->cat].min + (double)((h >> 13) % (unsigned)cats[it->cat].span) +
           ((h & 1) ? 0.9 : 0.0);
}

static void add_csv_row(td_buf_t *b, const item_t *it, const char *public_url)
{
    uint32_t h = hash32(it->id);
    const char *noun = cats[it->cat].nouns[h % 4];
    const char *adj = adjectives[(h >> 4) % TD_ARRAY_LEN(adjectives)];
    const char *colour = colours[(h >> 9) % TD_ARRAY_LEN(colours)];
    double price = item_price(it);

    td_buf_addf(b, "%s,%s %s %s,%s,", it->id, adj, colour, noun, cats[it->cat].name);
    td_buf_addf(b, "\"A%s %s %s from the %s line. Generated demo product (YOOCHOOSE item %s).\",",
                strchr("aeiou", colour[0]) ? "n" : "", colour, noun, adj, it->id);
    td_buf_addf(b, "%s/demo/img/%s.png,%.2f,%s/demo/product.html?id=%s,%u,%.2f,true,%d\n",
                public_url, it->id, price, public_url, it->id, 3 + (h >> 20) % 40,
                price * (0.25 + (double)((h >> 7) % 30) / 100.0), it->views);
}

static void make_catalog(const log_t *lg, const char *public_url, td_buf_t *b)
{
    td_buf_adds(b, "## RECSRecommendations Upload File (Tandem demo: generated names, prices, "
                   "categories and pictures for real YOOCHOOSE item ids)\n");
    td_buf_adds(b, "## RECSentity.id,entity.name,entity.categoryId,entity.message,"
                   "entity.thumbnailUrl,entity.value,entity.pageUrl,entity.inventory,"
                   "entity.margin,entity.generated,entity.demoViews\n");
    for (int i = 0; i < lg->n_items; i++) {
        add_csv_row(b, &lg->items[i], public_url);
    }
}

typedef struct batcher {
    td_demo_data_t *d;
    td_buf_t cur;
    int in_cur, max;
} batcher_t;

static void flush_batch(batcher_t *bt)
{
    if (bt->in_cur == 0) {
        return;
    }
    td_buf_adds(&bt->cur, "]}");
    bt->d->batches = td_xrealloc(bt->d->batches, sizeof(char *) * (size_t)(bt->d->n_batches + 1));
    bt->d->batches[bt->d->n_batches++] = td_buf_detach(&bt->cur);
    bt->in_cur = 0;
}

static void add_line_item(td_buf_t *b, const item_t *it)
{
    td_buf_addf(b, "{\"id\":\"%s\",\"category\":\"%s\",\"price\":%.2f,\"quantity\":1}", it->id,
                cats[it->cat].name, item_price(it));
}

static void add_event(batcher_t *bt, const char *type, int64_t session, int64_t ts_ms,
                      const item_t *it, bool generated)
{
    td_buf_t *b = &bt->cur;

    if (bt->in_cur == bt->max) {
        flush_batch(bt);
    }
    td_buf_adds(b, bt->in_cur == 0 ? "{\"events\":[" : ",");
    td_buf_addf(b, "{\"type\":\"%s\",\"ecid\":\"yc-%lld\",\"ts\":%lld,\"items\":[", type,
                (long long)session, (long long)ts_ms);
    add_line_item(b, it);
    td_buf_addc(b, ']');
    if (generated) {
        td_buf_addf(b,
                    ",\"order\":{\"id\":\"yc-order-%lld\",\"total\":%.2f,\"currency\":\"EUR\"},"
                    "\"attributes\":{\"generated\":true}",
                    (long long)session, item_price(it));
    }
    td_buf_addc(b, '}');
    bt->in_cur++;
    bt->d->n_events++;
}

static void make_events(const log_t *lg, int64_t now_ms, int batch_events, td_demo_data_t *d)
{
    double last = 0;
    batcher_t bt = { .d = d, .cur = TD_BUF_INIT, .max = batch_events };

    for (int i = 0; i < lg->n; i++) {
        if (lg->clicks[i].ts > last) {
            last = lg->clicks[i].ts;
        }
    }
    /* the log's last click happened an hour ago */
    int64_t shift = now_ms - 3600 * 1000 - (int64_t)(last * 1000.0);
    for (int i = 0; i < lg->n; i++) {
        const click_t *c = &lg->clicks[i];
        int64_t ts = (int64_t)(c->ts * 1000.0) + shift;
        bool first = i == 0 || lg->clicks[i - 1].session != c->session;
        bool end = i + 1 == lg->n || lg->clicks[i + 1].session != c->session;

        if (first) {
            d->n_sessions++;
        }
        add_event(&bt, "product_view", c->session, ts, &lg->items[c->item], false);
        if (end && !first && c->session % PURCHASE_EVERY == 0) {
            add_event(&bt, "purchase", c->session, ts + 60 * 1000, &lg->items[c->item], true);
            d->n_purchases++;
        }
    }
    flush_batch(&bt);
    td_buf_release(&bt.cur);
}

static void log_release(log_t *lg)
{
    for (int i = 0; i < lg->n_items; i++) {
        free(lg->items[i].nbr);
    }
    free(lg->items);
    free(lg->clicks);
    td_strmap_clear(&lg->ids);
}

int td_demo_data_build(const char *path, const char *public_url, int64_t now_ms,
                       int batch_events, td_demo_data_t *out, td_err_t *err)
{
    log_t lg = { .ids = TD_STRMAP_INIT };
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = read_log(path, &lg, err)) != TD_OK) {
        log_release(&lg);
        return rc;
    }
    assign_categories(&lg);
    make_catalog(&lg, public_url, &out->catalog_csv);
    make_events(&lg, now_ms, batch_events > 0 ? batch_events : 1000, out);
    out->n_items = lg.n_items;
    log_release(&lg);
    return TD_OK;
}

void td_demo_data_release(td_demo_data_t *d)
{
    td_buf_release(&d->catalog_csv);
    for (int i = 0; i < d->n_batches; i++) {
        free(d->batches[i]);
    }
    free(d->batches);
    memset(d, 0, sizeof(*d));
}
