/* tandem demo: the whole product on one machine, for a first look.
 *
 * Before serving, on a data directory without events, it builds a catalogue
 * and shoppers' history from a public click log (src/demo/dataset.c); on
 * every start it puts the recommendation criteria and designs the demo shop
 * asks for, and publishes the shipped journeys with their waits shortened
 * to demo_wait. Then it runs `tandem serve` with the demo's defaults for
 * whatever the caller left unset: HTTPS on 127.0.0.1:8443 with a certificate
 * made for localhost (the Web SDK only speaks https), a local mail catcher
 * as the SMTP server (no mail leaves the machine), /demo/ pages on. */
#include "cli/cli.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo/demo.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/banned.h"

extern char **environ;

#define DEMO_DATASTREAM "d3m0d3m0-0000-4000-8000-7a4d3e000001"
#define DEMO_ORG        "DEMO0000000000000000000@AdobeOrg"
#define TLS_DEFAULT     "127.0.0.1:8443"
#define DEMO_CERT       "(the demo's)" /* tls_cert/tls_key not given */
#define MAX_ARGS        32

/* Criteria and designs the demo pages name as decision scopes. */
static const struct {
    const char *id, *criteria, *design;
} shelves[] = {
    { "recommended-for-you",
      "{\"name\": \"Recommended for you\", \"criteriaGroup\": \"USERHISTORY\", "
      "\"type\": \"RECOMMENDED_FOR_YOU\", \"daysCount\": 30, \"backupDisabled\": false}",
      "{\"criteria\": \"recommended-for-you\", \"count\": 8}" },
    { "viewed-also-viewed", NULL, "{\"criteria\": \"viewed-also-viewed\", \"count\": 8}" },
    { "bought-also-bought", NULL, "{\"criteria\": \"bought-also-bought\", \"count\": 4}" },
};

static const char *const journey_files[] = { "cart-abandonment", "browse-abandonment" };

typedef struct args {
    char *v[MAX_ARGS];
    int n;
} args_t;

static void arg(args_t *a, const char *name, const char *value)
{
    if (a->n + 2 <= MAX_ARGS) {
        a->v[a->n++] = td_xstrdup(name);
        a->v[a->n++] = td_xstrdup(value);
    }
}

static void args_free(args_t *a)
{
    for (int i = 0; i < a->n; i++) {
        free(a->v[i]);
    }
}

/* ---- HTTPS: a self-signed certificate for localhost --------------------- */

static int make_certificate(const char *data, char *cert, char *key, size_t cap)
{
    struct stat st;
    pid_t pid;
    int status;

    snprintf(cert, cap, "%s/demo-tls.crt", data);
    snprintf(key, cap, "%s/demo-tls.key", data);
    if (stat(cert, &st) == 0 && stat(key, &st) == 0) {
        return TD_OK;
    }
    const char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                     "-days", "825", "-subj", "/CN=localhost", "-addext",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1", NULL };
    if (posix_spawnp(&pid, "openssl", NULL, NULL, (char *const *)argv, environ) != 0 ||
        waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr,
                "tandem demo: cannot make a certificate with openssl (install it, or pass "
                "--tls-listen, --tls-cert and --tls-key)\n");
        return TD_EIO;
    }
    return TD_OK;
}

/* ---- the demo's data ------------------------------------------------------ */

static int import_catalog(td_app_t *app, const td_demo_data_t *d)
{
    td_feed_mem_t m = { d->catalog_csv.data, d->catalog_csv.len, 0, 0 };
    td_import_options_t opt = { .format = TD_FEED_TARGET_CSV,
                                .now_ms = td_clock_now_ms(app->clock) };
    td_import_result_t res = { 0 };
    td_err_t err = { 0 };
    int rc = td_catalog_import(app->catalog, app->store, &opt, td_feed_read_mem, &m, &res, &err);

    if (rc != TD_OK || res.rejected) {
        fprintf(stderr, "tandem demo: catalogue import failed: %s (%lld rows rejected)\n",
                rc != TD_OK ? err.message : res.errors[0].message, (long long)res.rejected);
        rc = rc != TD_OK ? rc : TD_EINVAL;
    }
    td_import_result_release(&res);
    return rc;
}

static int record_events(td_app_t *app, const td_demo_data_t *d)
{
    int64_t now = td_clock_now_ms(app->clock);
    int rc = TD_OK;

    for (int i = 0; i < d->n_batches && rc == TD_OK; i++) {
        td_event_batch_t batch;
        td_err_t err = { 0 };
        rc = td_collect_parse_native(d->batches[i], strlen(d->batches[i]), &app->limits, now,
                                     &batch, &err);
        if (rc != TD_OK) {
            fprintf(stderr, "tandem demo: bad generated event at %s: %s\n", err.path,
                    err.message);
            return rc;
        }
        rc = td_ingest_write_sync(app->ingest, &batch, now, NULL, NULL);
        td_event_batch_release(&batch);
        if (i % 10 == 9 || i + 1 == d->n_batches) {
            fprintf(stderr, "\rtandem demo: recording shoppers' history: %d%%",
                    (i + 1) * 100 / d->n_batches);
        }
    }
    fprintf(stderr, "\n");
    return rc;
}

static int seed(td_app_t *app)
{
    const td_config_t *cfg = app->cfg;
    td_demo_data_t d;
    td_err_t err = { 0 };
    int64_t n = 0;
    int rc;

    td_store_conn_t *c = td_store_acquire(app->store);
    rc = td_store_event_count(c, &n);
    td_store_release(app->store, c);
    if (rc != TD_OK || n > 0) {
        return rc;
    }
    fprintf(stderr, "tandem demo: building the catalogue from %s\n", cfg->demo_dataset);
    if ((rc = td_demo_data_build(cfg->demo_dataset, cfg->public_url,
                                 td_clock_now_ms(app->clock), (int)cfg->max_events, &d, &err)) !=
        TD_OK) {
        fprintf(stderr, "tandem demo: %s (set --demo-dataset)\n", err.message);
        return rc;
    }
    rc = import_catalog(app, &d);
    if (rc == TD_OK) {
        rc = record_events(app, &d);
    }
    td_log(TD_LOG_INFO, "demo", "seeded items=%d sessions=%d events=%d purchases=%d rc=%s",
           d.n_items, d.n_sessions, d.n_events, d.n_purchases, td_strerror(rc));
    td_demo_data_release(&d);
    return rc;
}

static int put_shelves(td_app_t *app)
{
    td_recs_t *recs;
    td_err_t err = { 0 };
    bool created;
    int rc;

    if ((rc = td_recs_open(app, &recs)) != TD_OK) {
        return rc;
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(shelves) && rc == TD_OK; i++) {
        const char *cr = shelves[i].criteria, *de = shelves[i].design;
        if (cr) {
            rc = td_recs_criteria_put(recs, shelves[i].id, cr, strlen(cr), &created, &err);
        }
        if (rc == TD_OK) {
            rc = td_recs_design_put(recs, shelves[i].id, de, strlen(de), &created, &err);
        }
        if (rc != TD_OK) {
            fprintf(stderr, "tandem demo: shelf %s refused: %s\n", shelves[i].id, err.message);
        }
    }
    td_recs_close(recs);
    return rc;
}

/* The shipped journey with its waits (steps and re-entry) shortened to
 * demo_wait. */
static char *demo_journey(const char *name, int64_t wait_s)
{
    char path[512], duration[32];
    json_error_t jerr;
    const char *key;
    json_t *doc, *steps, *step;

    snprintf(path, sizeof(path), "journeys/%s.json", name);
    if ((doc = json_load_file(path, 0, &jerr)) == NULL) {
        fprintf(stderr, "tandem demo: %s:%d: %s (run it from the source tree)\n", path, jerr.line,
                jerr.text);
        return NULL;
    }
    snprintf(duration, sizeof(duration), "%llds", (long long)wait_s);
    /* a shopper trying the demo twice must not wait a day for the second go */
    json_t *reentry = json_object_get(doc, "reentry");
    if (json_is_object(reentry) && json_object_get(reentry, "wait")) {
        json_object_set_new(reentry, "wait", json_string(duration));
    }
    steps = json_object_get(doc, "steps");
    json_object_foreach(steps, key, step)
    {
        const char *type = json_string_value(json_object_get(step, "type"));
        if (type && strcmp(type, "wait") == 0 && json_object_get(step, "duration")) {
            json_object_set_new(step, "duration", json_string(duration));
        }
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static int publish_journeys(td_app_t *app)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(journey_files); i++) {
        const char *id = journey_files[i];
        char *doc = demo_journey(id, app->cfg->demo_wait);
        td_journey_errors_t *errs = td_xcalloc(1, sizeof(*errs));
        td_err_t err = { 0 };
        json_t *out = NULL;
        int rc;

        if (doc == NULL) {
            return TD_EINVAL;
        }
        rc = td_journey_put(app->journeys, id, doc, strlen(doc), &out, errs, &err);
        if (rc != TD_OK && errs->n > 0) {
            err = errs->items[0];
        }
        free(doc);
        json_decref(out);
        out = NULL;
        if (rc == TD_OK) {
            rc = td_journey_control(app->journeys, id, "publish", 0, &out, &err);
            json_decref(out);
        }
        free(errs);
        if (rc != TD_OK && rc != TD_ECONFLICT) {
            fprintf(stderr, "tandem demo: journey %s: %s\n", id, err.message);
            return rc;
        }
    }
    return TD_OK;
}

static int prepare(const td_config_t *cfg)
{
    td_app_t app;
    int rc;

    if ((rc = td_cli_app_open(cfg, false, &app)) != TD_OK) {
        return rc;
    }
    if (app.journeys == NULL) {
        fprintf(stderr, "tandem demo: the store has no journeys\n");
        rc = TD_EINVAL;
    }
    if (rc == TD_OK) {
        rc = seed(&app);
    }
    if (rc == TD_OK) {
        rc = put_shelves(&app);
    }
    if (rc == TD_OK) {
        rc = publish_journeys(&app);
    }
    td_cli_app_close(&app);
    return rc;
}

/* ---- the command -------------------------------------------------------- */

static void print_help(void)
{
    printf("usage: tandem demo [serve options]\n\n"
           "Runs the server with a demo: a catalogue and shoppers' history built from a\n"
           "public click log (--demo-dataset; names, prices and pictures are generated),\n"
           "the demo shop at https://localhost:8443/demo/ (real Adobe Web SDK; the\n"
           "certificate is self-signed), the cart- and browse-abandonment journeys with\n"
           "short waits (--demo-wait SECONDS), and a local mail catcher whose mail the\n"
           "page /demo/mailbox shows. Takes every option of 'tandem serve' (see 'tandem\n"
           "serve --help'); what you set wins over the demo's defaults, e.g. --smtp to\n"
           "send through a real server, --clock virtual to move time by hand.\n");
}

/* The demo's defaults for what cfg leaves unset, as flags. */
static int demo_defaults(const td_config_t *cfg, const td_demo_catcher_t *catcher, args_t *a)
{
    char buf[4200], cert[2048], key[2048];

    if (mkdir(cfg->data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "tandem demo: cannot create \"%s\": %s\n", cfg->data, strerror(errno));
        return TD_EIO;
    }
    const char *tls = *cfg->tls_listen ? cfg->tls_listen : TLS_DEFAULT;
    if (!*cfg->tls_listen) {
        arg(a, "--tls-listen", tls);
    }
    if (strcmp(cfg->tls_cert, DEMO_CERT) == 0) {
        if (make_certificate(cfg->data, cert, key, sizeof(cert)) != TD_OK) {
            return TD_EIO;
        }
        arg(a, "--tls-cert", cert);
        arg(a, "--tls-key", key);
    }
    if (cfg->datastream.n == 0) {
        arg(a, "--datastream", DEMO_DATASTREAM "=" DEMO_ORG);
    }
    if (!*cfg->demo_mailbox) {
        snprintf(buf, sizeof(buf), "%s/mailbox", cfg->data);
        arg(a, "--demo-mailbox", buf);
    }
    if (catcher) {
        snprintf(buf, sizeof(buf), "smtp://127.0.0.1:%d", td_demo_catcher_port(catcher));
        arg(a, "--smtp", buf);
        arg(a, "--smtp-tls", "off");
    }
    const char *base = *cfg->public_url ? cfg->public_url : NULL;
    char site[2048];
    if (!base) {
        const char *port = strrchr(tls, ':');
        snprintf(site, sizeof(site), "https://localhost%s", port ? port : "");
        base = site;
        arg(a, "--public-url", site);
    }
    if (!*cfg->shop_url) {
        snprintf(buf, sizeof(buf), "%s/demo/", base);
        arg(a, "--shop-url", buf);
    }
    if (!*cfg->cart_url) {
        snprintf(buf, sizeof(buf), "%s/demo/cart.html", base);
        arg(a, "--cart-url", buf);
    }
    if (!*cfg->currency) {
        arg(a, "--currency", "EUR");
    }
    if (!*cfg->mail_from) {
        arg(a, "--mail-from", "shop@demo.tandem.test");
    }
    if (!*cfg->mail_from_name) {
        arg(a, "--mail-from-name", "Tandem demo shop");
    }
    return TD_OK;
}

static void print_banner(const td_config_t *cfg)
{
    printf("\nTandem demo\n"
           "  shop:     %s/demo/   (self-signed certificate: accept it once)\n"
           "  mailbox:  %s/demo/mailbox\n"
           "  journeys: cart and browse abandonment, emailing %lld s after the shopper leaves\n"
           "  admin:    Authorization: Bearer <%s/admin.key>, e.g. GET %s/v1/journeys\n\n",
           cfg->public_url, cfg->public_url, (long long)cfg->demo_wait, cfg->data,
           cfg->public_url);
    fflush(stdout);
}

int td_cli_demo(int argc, char **argv)
{
    td_config_t cfg;
    td_err_t err = { 0 };
    td_demo_catcher_t *catcher = NULL;
    args_t a = { .n = 0 };
    char **all = NULL;
    int rc = 1;

    if (td_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    /* what the caller set (flags, environment, config file) wins; the
     * certificate is the demo's own unless given (made below, once the data
     * directory is known) */
    td_config_init(&cfg);
    if (td_config_set(&cfg, "tls_cert", DEMO_CERT, &err) != TD_OK ||
        td_config_set(&cfg, "tls_key", DEMO_CERT, &err) != TD_OK ||
        td_config_load(&cfg, argc, argv, &err) != TD_OK) {
        fprintf(stderr, "tandem demo: %s\n", err.message);
        td_config_release(&cfg);
        return 1;
    }
    if (!*cfg.smtp) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/mailbox", cfg.data);
        if (td_demo_catcher_start(cfg.demo_smtp_listen, *cfg.demo_mailbox ? cfg.demo_mailbox : dir,
                                  &catcher, &err) != TD_OK) {
            fprintf(stderr, "tandem demo: mail catcher: %s (set --demo-smtp-listen)\n",
                    err.message);
            goto out;
        }
    }
    if (demo_defaults(&cfg, catcher, &a) != TD_OK) {
        goto out;
    }
    all = td_xcalloc((size_t)(a.n + argc + 1), sizeof(char *));
    memcpy(all, a.v, sizeof(char *) * (size_t)a.n);
    memcpy(all + a.n, argv, sizeof(char *) * (size_t)argc);
    td_config_release(&cfg);
    td_config_init(&cfg);
    if (td_config_load(&cfg, a.n + argc, all, &err) != TD_OK) {
        fprintf(stderr, "tandem demo: %s\n", err.message);
        goto out;
    }
    if (prepare(&cfg) != TD_OK) {
        fprintf(stderr, "tandem demo: could not prepare the demo data\n");
        goto out;
    }
    print_banner(&cfg);
    rc = td_cli_serve(a.n + argc, all);
out:
    td_demo_catcher_stop(catcher);
    td_config_release(&cfg);
    args_free(&a);
    free(all);
    return rc;
}
