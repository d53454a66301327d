/* tandem serve: the server. Loads the configuration, opens the store and
 * the ingest writer, listens, and shuts down cleanly on SIGINT/SIGTERM
 * (a SIGKILL loses nothing acknowledged either: see collect/ingest.c). */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "http/http.h"
#include "util/log.h"
#include "util/banned.h"

static void print_help(void)
{
    printf("usage: tandem serve [options]\n\n"
           "Runs the Tandem server: event collection (native API and Adobe Web SDK),\n"
           "profiles, and the admin API. Every option is also a config-file setting\n"
           "(name = value) and an environment variable; flags win over both.\n\n");
    td_config_print_help(stdout);
}

/* With no admin key configured, one is generated once and kept in the data
 * directory (mode 0600), so a fresh install is never open to anyone. */
static int ensure_admin_key(td_config_t *cfg)
{
    char path[4096], key[65];
    unsigned char raw[32];
    FILE *f;

    if (cfg->admin_key.n > 0) {
        return TD_OK;
    }
    snprintf(path, sizeof(path), "%s/admin.key", cfg->data);
    if ((f = fopen(path, "r")) != NULL) {
        bool ok = fgets(key, sizeof(key), f) != NULL;
        fclose(f);
        key[strcspn(key, "\r\n")] = '\0';
        if (ok && strlen(key) >= 16 && td_config_set(cfg, "admin_key", key, NULL) == TD_OK) {
            td_log(TD_LOG_INFO, "serve", "admin_key source=%s", path);
            return TD_OK;
        }
    }
    if (mkdir(cfg->data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "tandem: cannot create data directory \"%s\": %s\n", cfg->data,
                strerror(errno));
        return TD_EIO;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        fprintf(stderr, "tandem: RAND_bytes() failed; set --admin-key\n");
        return TD_EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(key + 2 * i, 3, "%02x", raw[i]);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, key, 64) != 64 || write(fd, "\n", 1) != 1) {
        fprintf(stderr, "tandem: cannot write \"%s\": %s; set --admin-key\n", path,
                strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return TD_EIO;
    }
    close(fd);
    if (td_config_set(cfg, "admin_key", key, NULL) != TD_OK) {
        return TD_EIO;
    }
    td_log(TD_LOG_INFO, "serve", "admin_key generated path=%s", path);
    return TD_OK;
}

int td_cli_serve(int argc, char **argv)
{
    td_config_t cfg;
    td_err_t err = { 0 };
    td_app_t app;
    td_http_server_t *srv = NULL;
    sigset_t sigs;
    int sig, status = 1;

    if (td_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    td_config_init(&cfg);
    if (td_config_load(&cfg, argc, argv, &err) != TD_OK) {
        fprintf(stderr, "tandem serve: %s\n", err.message);
        fprintf(stderr, "tandem serve: see 'tandem serve --help'\n");
        goto out_cfg;
    }
    if (td_log_parse_level(cfg.log_level, &td_log_level) != TD_OK) {
        TD_BUG("log_level passed validation but does not parse");
    }
    if (ensure_admin_key(&cfg) != TD_OK) {
        goto out_cfg;
    }
    /* signals are taken synchronously by this thread; block them first so
     * that no worker thread inherits their delivery */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (td_cli_app_open(&cfg, true, &app) != TD_OK) {
        goto out_cfg;
    }
    td_http_options_t hopt = { .listen = cfg.listen,
                               .tls_listen = cfg.tls_listen,
                               .tls_cert_file = cfg.tls_cert,
                               .tls_key_file = cfg.tls_key,
                               .threads = (int)cfg.threads,
                               .max_body = (size_t)cfg.max_body,
                               .admin_keys = (const char *const *)cfg.admin_key.items,
                               .n_admin_keys = cfg.admin_key.n };
    if (td_http_start(&hopt, td_api_routes, &app, &srv, &err) != TD_OK) {
        fprintf(stderr, "tandem serve: %s\n", err.message);
        goto out_app;
    }
    td_log(TD_LOG_INFO, "serve", "listening http=%s port=%d https=%s store=%s clock=%s", cfg.listen,
           td_http_port(srv, false), *cfg.tls_listen ? cfg.tls_listen : "off",
           td_store_backend(app.store), cfg.clock);
    if (sigwait(&sigs, &sig) == 0) {
        td_log(TD_LOG_INFO, "serve", "shutdown signal=%d", sig);
    }
    td_http_stop(srv);
    status = 0;
out_app:
    td_cli_app_close(&app);
out_cfg:
    td_config_release(&cfg);
    return status;
}
