/* tandem demo: the server with demo data, for a first look. On first start
 * it records a few generated shoppers (views, carts, a purchase) so the
 * profile API has something to show, then runs `tandem serve` with the
 * same options (virtual clock unless told otherwise). */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/banned.h"

/* Generated catalogue: ids, names and prices are made up for the demo. */
static const struct {
    const char *id, *name, *category;
    double price;
} products[] = {
    { "C-101", "Winter coat (generated)", "Men:Coats", 189.0 },
    { "C-102", "Parka (generated)", "Women:Coats", 229.0 },
    { "S-201", "Sweatshirt (generated)", "Men:Sweatshirts", 49.9 },
    { "S-202", "Hoodie (generated)", "Women:Sweatshirts", 54.9 },
    { "A-301", "Wool scarf (generated)", "Accessories", 24.5 },
    { "A-302", "Gloves (generated)", "Accessories", 19.9 },
};

static void add_item(td_buf_t *b, int p, int qty)
{
    td_buf_addf(b,
                "{\"id\":\"%s\",\"name\":\"%s\",\"category\":\"%s\",\"price\":%.2f,"
                "\"quantity\":%d}",
                products[p].id, products[p].name, products[p].category, products[p].price, qty);
}

static void add_event(td_buf_t *b, const char *type, int shopper, int64_t ts_ms, int p, int qty)
{
    td_buf_addf(b,
                "%s{\"type\":\"%s\",\"ecid\":\"demo-ecid-%02d\",\"ts\":%lld,"
                "\"attributes\":{\"generated\":true}",
                b->len > 12 ? "," : "", type, shopper, (long long)ts_ms);
    if (shopper % 2 == 0) {
        td_buf_addf(b, ",\"email\":\"shopper%02d@demo.example\"", shopper);
    }
    if (p >= 0) {
        td_buf_adds(b, ",\"items\":[");
        add_item(b, p, qty);
        td_buf_addc(b, ']');
    }
    td_buf_addc(b, '}');
}

static int seed(td_app_t *app)
{
    td_buf_t b = TD_BUF_INIT;
    int64_t now = td_clock_now_ms(app->clock), n = 0;
    td_event_batch_t batch;
    td_err_t err = { 0 };
    int n_products = (int)TD_ARRAY_LEN(products);
    int rc;

    td_store_conn_t *c = td_store_acquire(app->store);
    rc = td_store_event_count(c, &n);
    td_store_release(app->store, c);
    if (rc != TD_OK || n > 0) {
        return rc;
    }
    td_buf_adds(&b, "{\"events\":[");
    for (int s = 0; s < 10; s++) {
        int64_t t = now - (int64_t)(10 - s) * 3600 * 1000;
        add_event(&b, "page_view", s, t, -1, 1);
        for (int k = 0; k < 3; k++) {
            add_event(&b, "product_view", s, t + 60000 * (k + 1), (s + k) % n_products, 1);
        }
        if (s % 3 != 2) {
            add_event(&b, "cart_add", s, t + 300000, s % n_products, 1 + s % 2);
        }
        if (s % 5 == 0) {
            add_event(&b, "purchase", s, t + 600000, s % n_products, 1 + s % 2);
        }
    }
    td_buf_adds(&b, "]}");
    rc = td_collect_parse_native(b.data, b.len, &app->limits, now, &batch, &err);
    if (rc == TD_OK) {
        rc = td_ingest_write_sync(app->ingest, &batch, now, NULL, NULL);
        td_log(TD_LOG_INFO, "demo", "seeded events=%d rc=%s", td_event_batch_n_ok(&batch),
               td_strerror(rc));
    } else {
        td_log(TD_LOG_ERROR, "demo", "seed parse failed path=%s message=\"%s\"", err.path,
               err.message);
    }
    td_event_batch_release(&batch);
    td_buf_release(&b);
    return rc;
}

int td_cli_demo(int argc, char **argv)
{
    td_config_t cfg;
    td_err_t err = { 0 };
    td_app_t app;
    char **args;
    int rc;

    if (td_cli_wants_help(argc, argv)) {
        printf("usage: tandem demo [serve options]\n\n"
               "Starts the server with generated demo shoppers recorded on first start, on a\n"
               "virtual clock (advance it with POST /v1/admin/clock:advance). Takes every\n"
               "option of 'tandem serve' (see 'tandem serve --help').\n");
        return 0;
    }
    /* the demo runs on a virtual clock unless the caller chose */
    args = td_xcalloc((size_t)argc + 3, sizeof(char *));
    args[0] = (char *)"--clock";
    args[1] = (char *)"virtual";
    memcpy(args + 2, argv, sizeof(char *) * (size_t)argc);
    td_config_init(&cfg);
    if (td_config_load(&cfg, argc + 2, args, &err) != TD_OK) {
        fprintf(stderr, "tandem demo: %s\n", err.message);
        td_config_release(&cfg);
        free(args);
        return 1;
    }
    rc = td_cli_app_open(&cfg, false, &app);
    if (rc == TD_OK) {
        rc = seed(&app);
        td_cli_app_close(&app);
    }
    td_config_release(&cfg);
    if (rc != TD_OK) {
        fprintf(stderr, "tandem demo: could not record the demo data (%s)\n", td_strerror(rc));
        free(args);
        return 1;
    }
    printf("Tandem demo: profiles of generated shoppers, e.g. GET /v1/profiles/ecid/demo-ecid-00\n"
           "with the admin key from the data directory's admin.key (unless --admin-key).\n");
    fflush(stdout);
    rc = td_cli_serve(argc + 2, args);
    free(args);
    return rc;
}
