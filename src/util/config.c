/* The settings table and its parsers: file, environment, flags. */
#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/banned.h"

typedef enum { T_STR, T_INT, T_LIST, T_ENUM } setting_type_t;

typedef struct setting {
    const char *name;
    setting_type_t type;
    size_t offset;
    const char *def;
    int64_t min, max;    /* T_INT bounds */
    const char *choices; /* T_ENUM: "a|b|c" */
    bool secret;         /* never printed back */
    const char *help;
} setting_t;

#define OFF(f) offsetof(td_config_t, f)

static const setting_t settings[] = {
    { "listen", T_STR, OFF(listen), "127.0.0.1:8080", 0, 0, NULL, false,
      "address and port for plain HTTP (HOST:PORT)" },
    { "tls_listen", T_STR, OFF(tls_listen), "", 0, 0, NULL, false,
      "address and port for HTTPS (HOST:PORT); empty turns HTTPS off" },
    { "tls_cert", T_STR, OFF(tls_cert), "", 0, 0, NULL, false,
      "PEM certificate (chain) for HTTPS" },
    { "tls_key", T_STR, OFF(tls_key), "", 0, 0, NULL, false, "PEM private key for HTTPS" },
    { "data", T_STR, OFF(data), "./data", 0, 0, NULL, false,
      "data directory (SQLite database, generated admin key)" },
    { "config", T_STR, OFF(config), "", 0, 0, NULL, false,
      "config file of \"name = value\" lines, read before environment and flags" },
    { "store", T_STR, OFF(store), "", 0, 0, NULL, true,
      "store URL: empty for SQLite in the data directory, sqlite:PATH, or postgres://..." },
    { "admin_key", T_LIST, OFF(admin_key), "", 0, 0, NULL, true,
      "admin API key for Authorization: Bearer (repeatable; if none, one is generated into "
      "DATA/admin.key)" },
    { "recs_key", T_LIST, OFF(recs_key), "", 0, 0, NULL, true,
      "API key (Authorization: Bearer) that may only call /v1/recommendations, for "
      "storefront back ends (repeatable; the admin key works too)" },
    { "datastream", T_LIST, OFF(datastream), "", 0, 0, NULL, false,
      "Adobe datastream id and its IMS org, CONFIGID=ORGID (repeatable)" },
    { "clock", T_ENUM, OFF(clock), "real", 0, 0, "real|virtual", false,
      "real time, or a virtual clock moved by POST /v1/admin/clock:advance" },
    { "log_level", T_ENUM, OFF(log_level), "info", 0, 0, "debug|info|warn|error", false,
      "lowest level logged" },
    { "public_url", T_STR, OFF(public_url), "", 0, 0, NULL, false,
      "base URL under which shoppers reach this server (tracking and unsubscribe links)" },
    { "web_dir", T_STR, OFF(web_dir), "web", 0, 0, NULL, false,
      "directory of static pages and scripts served under /web/ (demo shop, Web SDK)" },
    { "sync", T_ENUM, OFF(sync), "full", 0, 0, "full|normal", false,
      "full: every acknowledged event survives power loss; normal: survives a crash of the "
      "process only" },
    { "threads", T_INT, OFF(threads), "0", 0, 256, NULL, false,
      "HTTP worker threads (0 = number of cores)" },
    { "max_body", T_INT, OFF(max_body), "4194304", 1024, 268435456, NULL, false,
      "largest request body in bytes (larger gets 413)" },
    { "max_events", T_INT, OFF(max_events), "1000", 1, 100000, NULL, false,
      "most events in one request" },
    { "max_items", T_INT, OFF(max_items), "500", 1, 100000, NULL, false,
      "most items in one event" },
    { "viewed_max", T_INT, OFF(viewed_max), "50", 1, 10000, NULL, false,
      "recently viewed items kept per profile" },
    { "commit_max_events", T_INT, OFF(commit_max_events), "20000", 1, 1000000, NULL, false,
      "most events written in one group commit" },
    { "ingest_writers", T_INT, OFF(ingest_writers), "0", 0, 16, NULL, false,
      "event writer threads (0: 1 for SQLite, 8 for PostgreSQL, whose round trips they overlap)" },
    { "cookie_days", T_INT, OFF(cookie_days), "390", 1, 3650, NULL, false,
      "lifetime in days of the identity cookie given to the Web SDK" },
    { "journey_reentry_wait", T_INT, OFF(journey_reentry_wait), "300", 0, 31622400, NULL, false,
      "seconds after an entry before the same key may enter a journey again, when the journey "
      "does not say (reentry)" },
    { "journey_timeout_days", T_INT, OFF(journey_timeout_days), "91", 1, 366, NULL, false,
      "days after which a journey instance ends, when the journey does not say (timeout)" },
    { "journey_batch", T_INT, OFF(journey_batch), "500", 1, 100000, NULL, false,
      "journey instances the timer runner takes per transaction" },
    { "journey_action_threads", T_INT, OFF(journey_action_threads), "4", 1, 64, NULL, false,
      "threads making the custom HTTP calls of journeys" },
    { "journey_call_attempts", T_INT, OFF(journey_call_attempts), "3", 1, 20, NULL, false,
      "times a custom HTTP call is made again after the server stopped during it" },
    { "action_auth", T_LIST, OFF(action_auth), "", 0, 0, NULL, true,
      "credentials of custom journey actions, NAME=bearer:TOKEN or NAME=basic:USER:PASSWORD "
      "(repeatable); journeys name them with \"auth\": \"NAME\"" },
    { "entity_expiry_days", T_INT, OFF(entity_expiry_days), "61", 0, 3650, NULL, false,
      "days without an update after which a catalog entity expires (shown as expired, not "
      "recommended; 0 = never)" },
    { "entity_params", T_ENUM, OFF(entity_params), "update", 0, 0, "update|ignore", false,
      "entity.* parameters of recommendation requests update the catalog, or are ignored" },
    { "catalog_poll_ms", T_INT, OFF(catalog_poll_ms), "1000", 0, 3600000, NULL, false,
      "how often a server picks up catalog changes of other processes (tandem import), in "
      "milliseconds; 0 = only at start" },
    { "reco_follow_ms", T_INT, OFF(reco_follow_ms), "1000", 0, 3600000, NULL, false,
      "how often recommendations learn the events other nodes stored (PostgreSQL only), in "
      "milliseconds; 0 = only the events this node ingests" },
    { "smtp", T_STR, OFF(smtp), "", 0, 0, NULL, false,
      "outgoing mail server: smtp://HOST:PORT (STARTTLS per smtp_tls) or smtps://HOST:PORT" },
    { "smtp_user", T_STR, OFF(smtp_user), "", 0, 0, NULL, false,
      "SMTP AUTH user; empty = no AUTH" },
    { "smtp_password_file", T_STR, OFF(smtp_password_file), "", 0, 0, NULL, false,
      "file holding the SMTP AUTH password (first line)" },
    { "smtp_tls", T_ENUM, OFF(smtp_tls), "try", 0, 0, "try|require|off", false,
      "STARTTLS on smtp://: when offered (always when smtp_user is set), always (or fail), or "
      "never" },
    { "smtp_ca_file", T_STR, OFF(smtp_ca_file), "", 0, 0, NULL, false,
      "CA certificates (PEM) to verify the SMTP server; empty = the system's" },
    { "smtp_timeout", T_INT, OFF(smtp_timeout), "60", 1, 3600, NULL, false,
      "seconds one message may take to send, connecting included" },
    { "smtp_senders", T_INT, OFF(smtp_senders), "4", 1, 64, NULL, false,
      "concurrent SMTP connections (each kept open and reused)" },
    { "smtp_rate", T_INT, OFF(smtp_rate), "3000", 0, 1000000, NULL, false,
      "messages per minute overall (0 = unlimited)" },
    { "smtp_domain_rate", T_INT, OFF(smtp_domain_rate), "600", 0, 1000000, NULL, false,
      "messages per minute to one recipient domain (0 = unlimited)" },
    { "mail_from", T_STR, OFF(mail_from), "", 0, 0, NULL, false,
      "sender address of emails (envelope and From), e.g. news@shop.example" },
    { "mail_from_name", T_STR, OFF(mail_from_name), "", 0, 0, NULL, false,
      "sender display name of emails" },
    { "mail_reply_to", T_STR, OFF(mail_reply_to), "", 0, 0, NULL, false,
      "Reply-To address of emails; empty = none" },
    { "unsubscribe_mailto", T_STR, OFF(unsubscribe_mailto), "", 0, 0, NULL, false,
      "address for mailto: unsubscribe requests in List-Unsubscribe; empty = https only" },
    { "dkim_domain", T_STR, OFF(dkim_domain), "", 0, 0, NULL, false,
      "domain (d=) that signs outgoing mail with DKIM; empty = no signature" },
    { "dkim_selector", T_STR, OFF(dkim_selector), "", 0, 0, NULL, false,
      "DKIM selector (s=): the key is published at SELECTOR._domainkey.DOMAIN" },
    { "dkim_key", T_STR, OFF(dkim_key), "", 0, 0, NULL, false, "DKIM RSA private key (PEM file)" },
    { "track_secret_file", T_STR, OFF(track_secret_file), "", 0, 0, NULL, false,
      "secret of the signed tracking and unsubscribe links (if empty, one is generated into "
      "DATA/track.key)" },
    { "track_max_age_days", T_INT, OFF(track_max_age_days), "365", 0, 36500, NULL, false,
      "opens and clicks of links older than this are not recorded (0 = no limit; unsubscribe "
      "links never expire)" },
    { "templates_dir", T_STR, OFF(templates_dir), "templates", 0, 0, NULL, false,
      "email templates (NAME.json manifests + HTML) stored at start-up when the store has no "
      "template of that id" },
    { "outbox_lease", T_INT, OFF(outbox_lease), "300", 1, 86400, NULL, false,
      "seconds a sender holds a claimed message; after a crash it is sent again after this" },
    { "outbox_max_attempts", T_INT, OFF(outbox_max_attempts), "8", 1, 100, NULL, false,
      "send attempts (temporary failures) before a message is marked failed" },
    { "outbox_retry_base", T_INT, OFF(outbox_retry_base), "60", 1, 86400, NULL, false,
      "seconds before the first retry of a message; doubled each time, at most 6 hours" },
    { "cap", T_STR, OFF(cap), "", 0, 0, NULL, false,
      "frequency caps on emails per profile across journeys, e.g. \"1/16h, 3/7d:drop\" "
      "(COUNT/PERIOD with s, m, h, d or w; over a cap a message waits (defer, the default) "
      "or is dropped)" },
    { "quiet_hours", T_STR, OFF(quiet_hours), "", 0, 0, NULL, false,
      "no email in this window of the recipient's local time, e.g. 21:00-08:00; empty = none" },
    { "quiet_hours_tz", T_STR, OFF(quiet_hours_tz), "UTC", 0, 0, NULL, false,
      "time zone for quiet hours when neither the profile nor the journey gives one: a name "
      "from the system's zoneinfo, daylight saving time included (Europe/Paris), or a UTC "
      "offset (UTC, +02:00, -05:30)" },
    { "quiet_hold_max_hours", T_INT, OFF(quiet_hold_max_hours), "12", 0, 720, NULL, false,
      "a message held by quiet hours longer than this (since it was queued) is dropped" },
    { "attribution_window_hours", T_INT, OFF(attribution_window_hours), "72", 1, 8760, NULL,
      false, "a purchase this many hours or less after an email click is credited to that email" },
    { "consent_required", T_ENUM, OFF(consent_required), "no", 0, 0, "no|yes", false,
      "yes: email only profiles whose marketing consent is \"in\" (no: all but \"out\")" },
    { "shop_url", T_STR, OFF(shop_url), "", 0, 0, NULL, false,
      "the shop's home page, linked from emails (templates: context.message.shopUrl)" },
    { "cart_url", T_STR, OFF(cart_url), "", 0, 0, NULL, false,
      "the shop's cart page, linked from cart emails (context.message.cartUrl); empty = shop_url" },
    { "currency", T_STR, OFF(currency), "", 0, 0, NULL, false,
      "ISO 4217 currency of prices in emails when the items carry none (context.message.currency; "
      "templates default to USD)" },
    { "demo_dataset", T_STR, OFF(demo_dataset), "demo/yoochoose-clicks-100k.tsv.gz", 0, 0, NULL,
      false, "tandem demo: the click log its catalogue and shoppers are made from" },
    { "demo_wait", T_INT, OFF(demo_wait), "120", 1, 86400, NULL, false,
      "tandem demo: seconds the demo's journeys wait before emailing (the shipped ones wait hours)" },
    { "demo_smtp_listen", T_STR, OFF(demo_smtp_listen), "127.0.0.1:2525", 0, 0, NULL, false,
      "tandem demo: where its mail catcher listens when no smtp server is set" },
    { "demo_mailbox", T_STR, OFF(demo_mailbox), "", 0, 0, NULL, false,
      "directory of caught mail (N.eml) that /demo/mailbox shows; tandem demo sets "
      "DATA/mailbox; empty: the /demo/ pages are off" },
};

static void *field(td_config_t *cfg, const setting_t *s)
{
    return (char *)cfg + s->offset;
}

static const setting_t *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(settings); i++) {
        const char *n = settings[i].name;
        size_t j;
        for (j = 0; j < len && n[j]; j++) {
            char c = name[j] == '-' ? '_' : name[j];
            if (c != n[j]) {
                break;
            }
        }
        if (j == len && n[j] == '\0') {
            return &settings[i];
        }
    }
    return NULL;
}

static void list_add(td_strlist_t *l, const char *v)
{
    l->items = td_xrealloc(l->items, sizeof(char *) * (size_t)(l->n + 1));
    l->items[l->n++] = td_xstrdup(v);
}

static void list_clear(td_strlist_t *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int set_value(td_config_t *cfg, const setting_t *s, const char *value, td_err_t *err)
{
    switch (s->type) {
    case T_STR: {
        char **p = field(cfg, s);
        free(*p);
        *p = td_xstrdup(value);
        return TD_OK;
    }
    case T_LIST: {
        td_strlist_t *l = field(cfg, s);
        if (*value) {
            list_add(l, value);
        }
        return TD_OK;
    }
    case T_ENUM: {
        size_t len = strlen(value);
        for (const char *c = s->choices; *c;) {
            const char *bar = strchr(c, '|');
            size_t n = bar ? (size_t)(bar - c) : strlen(c);
            if (n == len && memcmp(c, value, n) == 0) {
                char **p = field(cfg, s);
                free(*p);
                *p = td_xstrdup(value);
                return TD_OK;
            }
            c += n + (bar != NULL);
        }
        return td_err_set(err, TD_EINVAL, s->name, "setting \"%s\" must be one of %s, not \"%s\"",
                          s->name, s->choices, value);
    }
    case T_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0') {
            return td_err_set(err, TD_EINVAL, s->name,
                              "setting \"%s\" must be an integer, not \"%s\"", s->name, value);
        }
        if (v < s->min || v > s->max) {
            return td_err_set(err, TD_EINVAL, s->name,
                              "setting \"%s\" must be between %lld and %lld, not %lld", s->name,
                              (long long)s->min, (long long)s->max, v);
        }
        *(int64_t *)field(cfg, s) = v;
        return TD_OK;
    }
    }
    TD_BUG("unknown setting type");
}

void td_config_init(td_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < TD_ARRAY_LEN(settings); i++) {
        if (set_value(cfg, &settings[i], settings[i].def, NULL) != TD_OK) {
            TD_BUG("bad default for %s", settings[i].name);
        }
    }
}

void td_config_release(td_config_t *cfg)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(settings); i++) {
        const setting_t *s = &settings[i];
        if (s->type == T_LIST) {
            list_clear(field(cfg, s));
        } else if (s->type != T_INT) {
            char **p = field(cfg, s);
            free(*p);
            *p = NULL;
        }
    }
}

int td_config_set(td_config_t *cfg, const char *name, const char *value, td_err_t *err)
{
    const setting_t *s = find_setting(name, strlen(name));

    if (s == NULL) {
        return td_err_set(err, TD_EINVAL, name, "unknown setting \"%s\"", name);
    }
    return set_value(cfg, s, value, err);
}

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        *--end = '\0';
    }
    return s;
}

static int load_file(td_config_t *cfg, const char *path, td_err_t *err)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int lineno = 0, rc = TD_OK;

    if (f == NULL) {
        return td_err_set(err, TD_EINVAL, "config", "cannot open config file \"%s\": %s", path,
                          strerror(errno));
    }
    for (;;) {
        /* a line longer than the buffer would otherwise be read as two: a
         * marker in the last byte but one tells (NUL bytes in the line too) */
        line[sizeof(line) - 2] = '\0';
        if (fgets(line, sizeof(line), f) == NULL) {
            break;
        }
        lineno++;
        if (line[sizeof(line) - 2] != '\0' && line[sizeof(line) - 2] != '\n' && !feof(f)) {
            rc = td_err_set_at(err, TD_EINVAL, "config", lineno, 1,
                               "%s:%d: line too long (over %zu bytes)", path, lineno,
                               sizeof(line) - 2);
            break;
        }
        char *p = trim(line);
        if (*p == '\0' || *p == '#') {
            continue;
        }
        char *eq = strchr(p, '=');
        if (eq == NULL) {
            rc = td_err_set_at(err, TD_EINVAL, "config", lineno, 1,
                               "%s:%d: expected \"name = value\"", path, lineno);
            break;
        }
        *eq = '\0';
        char *name = trim(p), *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        td_err_t e = { 0 };
        if (td_config_set(cfg, name, value, &e) != TD_OK) {
            rc = td_err_set_at(err, TD_EINVAL, e.path, lineno, 1, "%s:%d: %s", path, lineno,
                               e.message);
            break;
        }
    }
    fclose(f);
    return rc;
}

static void env_name(const setting_t *s, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "TANDEM_%s", s->name);

    for (size_t i = 7; i < n && i < len; i++) {
        out[i] = (char)toupper((unsigned char)out[i]);
    }
}

static int load_env(td_config_t *cfg, td_err_t *err)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(settings); i++) {
        const setting_t *s = &settings[i];
        char name[64];
        const char *v;
        env_name(s, name, sizeof(name));
        if ((v = getenv(name)) == NULL) {
            continue;
        }
        if (s->type == T_LIST) {
            /* lists come comma-separated from the environment */
            td_strlist_t *l = field(cfg, s);
            list_clear(l);
            char *copy = td_xstrdup(v), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                /* " , k" must not add an empty admin key */
                if (*(tok = trim(tok))) {
                    list_add(l, tok);
                }
            }
            free(copy);
            continue;
        }
        td_err_t e = { 0 };
        if (set_value(cfg, s, v, &e) != TD_OK) {
            return td_err_set(err, TD_EINVAL, s->name, "environment %s: %s", name, e.message);
        }
    }
    return TD_OK;
}

/* HOST:PORT (HOST may be [v6]); checked here so that a typo stops the
 * server before it touches the data directory. */
static int check_listen(const char *v, const char *name, bool may_be_empty, td_err_t *err)
{
    const char *colon = strrchr(v, ':');
    char *end;

    if (*v == '\0' && may_be_empty) {
        return TD_OK;
    }
    if (colon == NULL || colon == v) {
        return td_err_set(err, TD_EINVAL, name, "setting \"%s\" must be HOST:PORT, not \"%s\"",
                          name, v);
    }
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        return td_err_set(err, TD_EINVAL, name,
                          "setting \"%s\" must be HOST:PORT with a port from 0 to 65535, not "
                          "\"%s\"",
                          name, v);
    }
    return TD_OK;
}

/* Finds --config in argv or TANDEM_CONFIG, since the file is read first. */
static const char *find_config_path(int argc, char **argv)
{
    const char *path = getenv("TANDEM_CONFIG");

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
    }
    return path && *path ? path : NULL;
}

int td_config_load(td_config_t *cfg, int argc, char **argv, td_err_t *err)
{
    const char *path = find_config_path(argc, argv);
    bool list_from_flags[TD_ARRAY_LEN(settings)] = { false };
    int rc;

    if (path && (rc = load_file(cfg, path, err)) != TD_OK) {
        return rc;
    }
    if ((rc = load_env(cfg, err)) != TD_OK) {
        return rc;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *value;
        if (strncmp(arg, "--", 2) != 0) {
            return td_err_set(err, TD_EINVAL, arg, "unexpected argument \"%s\"", arg);
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const setting_t *s = find_setting(name, nlen);
        if (s == NULL) {
            return td_err_set(err, TD_EINVAL, arg, "unknown option \"%.*s\" (see --help)",
                              (int)nlen + 2, arg);
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return td_err_set(err, TD_EINVAL, s->name, "option \"--%s\" needs a value", s->name);
        }
        if (s->type == T_LIST && !list_from_flags[s - settings]) {
            /* flags replace a list from the file or environment */
            list_clear(field(cfg, s));
            list_from_flags[s - settings] = true;
        }
        td_err_t e = { 0 };
        if (set_value(cfg, s, value, &e) != TD_OK) {
            return td_err_set(err, TD_EINVAL, s->name, "option --%s: %s", s->name, e.message);
        }
    }
    if (path) {
        free(cfg->config);
        cfg->config = td_xstrdup(path);
    }
    for (int i = 0; i < cfg->datastream.n; i++) {
        const char *ds = cfg->datastream.items[i], *eq = strchr(ds, '=');
        if (eq == NULL || eq == ds || eq[1] == '\0') {
            return td_err_set(err, TD_EINVAL, "datastream",
                              "setting \"datastream\" must be CONFIGID=ORGID, not \"%s\"", ds);
        }
    }
    if ((*cfg->dkim_domain || *cfg->dkim_selector || *cfg->dkim_key) &&
        (!*cfg->dkim_domain || !*cfg->dkim_selector || !*cfg->dkim_key)) {
        return td_err_set(err, TD_EINVAL, "dkim_domain",
                          "settings \"dkim_domain\", \"dkim_selector\" and \"dkim_key\" go "
                          "together");
    }
    if (check_listen(cfg->listen, "listen", false, err) != TD_OK ||
        check_listen(cfg->tls_listen, "tls_listen", true, err) != TD_OK) {
        return TD_EINVAL;
    }
    if (*cfg->tls_listen && (!*cfg->tls_cert || !*cfg->tls_key)) {
        return td_err_set(err, TD_EINVAL, "tls_listen",
                          "setting \"tls_listen\" needs \"tls_cert\" and \"tls_key\"");
    }
    return TD_OK;
}

static void flag_name(const setting_t *s, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "--%s", s->name);

    for (size_t i = 2; i < n && i < len; i++) {
        if (out[i] == '_') {
            out[i] = '-';
        }
    }
}

static void default_text(const setting_t *s, char *out, size_t len)
{
    if (s->type == T_ENUM) {
        snprintf(out, len, "%s (one of %s)", s->def, s->choices);
    } else if (s->type == T_INT) {
        snprintf(out, len, "%s (%lld..%lld)", s->def, (long long)s->min, (long long)s->max);
    } else {
        snprintf(out, len, "%s", *s->def ? s->def : "(empty)");
    }
}

void td_config_print_help(FILE *out)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(settings); i++) {
        const setting_t *s = &settings[i];
        char flag[64], env[64], def[128];
        flag_name(s, flag, sizeof(flag));
        env_name(s, env, sizeof(env));
        default_text(s, def, sizeof(def));
        fprintf(out, "  %-22s %s\n  %-22s   env %s, default %s\n", flag, s->help, "", env, def);
    }
}

void td_config_print_markdown(FILE *out)
{
    fprintf(out, "# Configuration reference\n\n"
                 "Generated by `tandem config --markdown` from the table that validates the "
                 "settings. Precedence: defaults < config file (`name = value`) < environment < "
                 "flags.\n\n"
                 "| setting (file) | flag | environment | default | meaning |\n"
                 "|---|---|---|---|---|\n");
    for (size_t i = 0; i < TD_ARRAY_LEN(settings); i++) {
        const setting_t *s = &settings[i];
        char flag[64], env[64], def[128];
        flag_name(s, flag, sizeof(flag));
        env_name(s, env, sizeof(env));
        default_text(s, def, sizeof(def));
        fprintf(out, "| `%s` | `%s` | `%s` | %s | %s%s |\n", s->name, flag, env, def, s->help,
                s->type == T_LIST ? " (environment: comma-separated)" : "");
    }
}

const char *td_config_datastream_org(const td_config_t *cfg, const char *config_id)
{
    size_t len = strlen(config_id);

    for (int i = 0; i < cfg->datastream.n; i++) {
        const char *ds = cfg->datastream.items[i];
        if (strncmp(ds, config_id, len) == 0 && ds[len] == '=') {
            return ds + len + 1;
        }
    }
    return NULL;
}
