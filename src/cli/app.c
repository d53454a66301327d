/* Opening and closing the parts a server (or an offline command) needs. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message/message.h"
#include "util/log.h"
#include "util/banned.h"

bool td_cli_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            return true;
        }
    }
    return false;
}

static int open_clock(td_app_t *app)
{
    td_clock_t *clock = td_xcalloc(1, sizeof(*clock));
    int64_t saved_ms;
    int rc;

    app->clock = clock;
    if (strcmp(app->cfg->clock, "virtual") != 0) {
        td_clock_init_real(clock);
        return TD_OK;
    }
    rc = td_api_clock_load(app->store, &saved_ms);
    if (rc == TD_OK) {
        td_clock_init_virtual(clock, saved_ms);
        td_log(TD_LOG_INFO, "clock", "virtual resumed now_ms=%lld", (long long)saved_ms);
        return TD_OK;
    }
    if (rc != TD_ENOTFOUND) {
        return rc;
    }
    /* saved at once, so that every later start resumes from this time */
    td_clock_init_virtual(clock, td_wall_ms());
    td_log(TD_LOG_INFO, "clock", "virtual started now_ms=%lld", (long long)td_clock_now_ms(clock));
    return td_api_clock_save(app->store, td_clock_now_ms(clock));
}

/* The journey engine, hooked into the ingest transaction. A store without
 * journey tables (a backend still lacking them) runs without journeys. */
static int open_journeys(td_app_t *app)
{
    const td_config_t *cfg = app->cfg;
    td_err_t err = { 0 };
    char domain[256] = "";
    const char *p = strstr(cfg->public_url, "://");
    td_journey_options_t jopt = {
        .defaults = { .reentry_wait_ms = cfg->journey_reentry_wait * 1000,
                      .timeout_ms = cfg->journey_timeout_days * 86400 * 1000 },
        .batch = (int)cfg->journey_batch,
        .action_threads = (int)cfg->journey_action_threads,
        .max_call_attempts = (int)cfg->journey_call_attempts,
        .action_auth = (const char *const *)cfg->action_auth.items,
        .n_action_auth = cfg->action_auth.n,
        .message_domain = domain,
    };
    int rc;

    /* Message-IDs take the host of public_url */
    if (p) {
        size_t n = strcspn(p + 3, ":/?#");
        snprintf(domain, sizeof(domain), "%.*s", (int)(n < 200 ? n : 200), p + 3);
    }
    if (!td_store_journeys_supported(app->store)) {
        td_log(TD_LOG_WARN, "journey", "not supported by store=%s", td_store_backend(app->store));
        return TD_OK;
    }
    if ((rc = td_journey_engine_open(app->store, app->clock, &jopt, &app->journeys, &err)) !=
        TD_OK) {
        fprintf(stderr, "tandem: %s\n", err.message);
        return rc;
    }
    td_ingest_add_tx_hook(app->ingest, td_journey_engine_tx_hook, app->journeys);
    td_ingest_add_listener(app->ingest, td_journey_engine_listener, app->journeys);
    return TD_OK;
}

/* Shipped templates into the store (only ids it lacks), then the outbox
 * sender (idle when smtp is not set). */
static int open_outbox(td_app_t *app)
{
    td_err_t err = { 0 };
    int n = 0;

    if (td_message_templates_load_dir(app->store, app->cfg->templates_dir,
                                      td_clock_now_ms(app->clock), &n) != TD_OK) {
        td_log(TD_LOG_WARN, "template", "cannot load templates from dir=%s",
               app->cfg->templates_dir);
    }
    if (td_store_messages_supported(app->store)) {
        td_ingest_add_tx_hook(app->ingest, td_message_ingest_hook, (void *)app->cfg);
    }
    if (td_outbox_open(app->store, app->clock, app->cfg, &app->outbox, &err) != TD_OK) {
        fprintf(stderr, "tandem: %s%s%s\n", err.path, *err.path ? ": " : "", err.message);
        return TD_EINVAL;
    }
    return TD_OK;
}

int td_cli_app_open(const td_config_t *cfg, bool serving, td_app_t *app)
{
    td_err_t err = { 0 };
    int threads = cfg->threads > 0 ? (int)cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    td_store_options_t sopt = { .data_dir = cfg->data,
                                .pool_size = threads * 2 + 20,
                                .sync_full = strcmp(cfg->sync, "full") == 0 };
    td_ingest_options_t iopt = { .commit_max_events = (int)cfg->commit_max_events,
                                 .viewed_max = (int)cfg->viewed_max };
    int rc;

    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    app->limits.max_events = (int)cfg->max_events;
    app->limits.max_items = (int)cfg->max_items;
    if ((rc = td_store_open(cfg->store, &sopt, &app->store, &err)) != TD_OK) {
        fprintf(stderr, "tandem: %s\n", err.message);
        fprintf(stderr, "tandem: check --data (or --store) and that the directory is writable\n");
        return rc;
    }
    if ((rc = open_clock(app)) != TD_OK) {
        fprintf(stderr, "tandem: cannot read the saved virtual clock (%s)\n", td_strerror(rc));
        td_cli_app_close(app);
        return rc;
    }
    iopt.writers = (int)cfg->ingest_writers;
    if (iopt.writers == 0) {
        iopt.writers = strcmp(td_store_backend(app->store), "postgres") == 0 ? 8 : 1;
    }
    if ((rc = td_ingest_open(app->store, &iopt, &app->ingest)) != TD_OK) {
        fprintf(stderr, "tandem: cannot start the event writer (%s)\n", td_strerror(rc));
        td_cli_app_close(app);
        return rc;
    }
    app->catalog = td_catalog_new(cfg->entity_expiry_days * 24 * 3600 * 1000);
    if (td_store_catalog_supported(app->store)) {
        if ((rc = td_catalog_load(app->catalog, app->store)) != TD_OK) {
            fprintf(stderr, "tandem: cannot load the catalog (%s)\n", td_strerror(rc));
            td_cli_app_close(app);
            return rc;
        }
        td_catalog_sync_start(app->catalog, app->store, (int)cfg->catalog_poll_ms);
    } else {
        td_log(TD_LOG_WARN, "catalog", "not supported by store=%s", td_store_backend(app->store));
    }
    if ((rc = open_journeys(app)) != TD_OK) {
        td_cli_app_close(app);
        return rc;
    }
    /* only a server sends mail: an import or a demo seed must not */
    if (serving && (rc = open_outbox(app)) != TD_OK) {
        td_cli_app_close(app);
        return rc;
    }
    /* the model is rebuilt from every stored event: only worth it for a server */
    if (serving && (rc = td_recs_open(app, &app->recs)) != TD_OK) {
        td_cli_app_close(app);
        return rc;
    }
    app->started_ms = td_wall_ms();
    td_api_init_metrics();
    return TD_OK;
}

void td_cli_app_close(td_app_t *app)
{
    td_ingest_close(app->ingest); /* first: no event may reach a closed engine */
    td_outbox_close(app->outbox);
    td_journey_engine_close(app->journeys);
    td_recs_close(app->recs); /* after the journeys: their steps call it */
    td_catalog_free(app->catalog);
    td_store_close(app->store);
    free(app->clock);
    memset(app, 0, sizeof(*app));
}
