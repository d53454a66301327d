/* The server's settings: one table (config.c) gives each setting's name,
 * type, default, bounds, TANDEM_* environment variable and help line; the
 * parser, the validation, `--help` and the configuration reference all come
 * from it. Precedence: defaults < config file < environment < flags.
 *
 * After start-up the configuration is immutable and passed around as
 * `const td_config_t *`. */
#ifndef TD_UTIL_CONFIG_H
#define TD_UTIL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

typedef struct td_strlist {
    char **items;
    int n;
} td_strlist_t;

typedef struct td_config {
    char *listen;            /* HOST:PORT for plain HTTP */
    char *tls_listen;        /* HOST:PORT for HTTPS; empty = off */
    char *tls_cert;          /* PEM file */
    char *tls_key;           /* PEM file */
    char *data;              /* data directory */
    char *config;            /* the config file that was read, if any */
    char *store;             /* empty = SQLite in data dir; sqlite:PATH; postgres://... */
    td_strlist_t admin_key;  /* Bearer keys for admin endpoints */
    td_strlist_t recs_key;   /* Bearer keys that may only ask for recommendations */
    td_strlist_t datastream; /* CONFIGID=ORGID for the Edge endpoint */
    char *clock;             /* "real" or "virtual" */
    char *log_level;
    char *public_url;
    char *web_dir;             /* static pages served under /web/ and /demo/ */
    char *sync;                /* "full" or "normal": SQLite synchronous mode */
    int64_t threads;           /* HTTP worker threads; 0 = number of cores */
    int64_t max_body;          /* bytes */
    int64_t max_events;        /* events per request */
    int64_t max_items;         /* items per event */
    int64_t viewed_max;        /* recently viewed items kept per profile */
    int64_t commit_max_events; /* events per group commit */
    int64_t ingest_writers;    /* 0: 1 for SQLite, 8 for PostgreSQL */
    int64_t cookie_days;       /* lifetime of the Edge identity cookie */
    /* journeys: re-entry wait (s), default timeout (days), instances per runner
     * transaction, HTTP action threads, call attempts after crashes, and the
     * action credentials (NAME=bearer:TOKEN or NAME=basic:USER:PASSWORD) */
    int64_t journey_reentry_wait;
    int64_t journey_timeout_days;
    int64_t journey_batch;
    int64_t journey_action_threads;
    int64_t journey_call_attempts;
    td_strlist_t action_auth;
    int64_t entity_expiry_days; /* catalog entities expire after this many days */
    char *entity_params;        /* "update" or "ignore": entity.* request parameters */
    int64_t catalog_poll_ms;    /* picking up other processes' catalog writes */
    int64_t reco_follow_ms;     /* learning other nodes' events (PostgreSQL) */
    /* outgoing email (message/), tracking links (track/) */
    char *smtp;                 /* smtp://host:port or smtps://host:port; empty = no sending */
    char *smtp_user;            /* AUTH user; empty = no AUTH */
    char *smtp_password_file;   /* file holding the AUTH password (never logged) */
    char *smtp_tls;             /* "try", "require" or "off": STARTTLS on smtp:// */
    char *smtp_ca_file;         /* CA bundle for the SMTP server; empty = the system's */
    int64_t smtp_timeout;       /* seconds per message */
    int64_t smtp_senders;       /* concurrent SMTP connections */
    int64_t smtp_rate;          /* messages per minute overall; 0 = unlimited */
    int64_t smtp_domain_rate;   /* messages per minute per recipient domain; 0 = unlimited */
    char *mail_from;            /* envelope and From address */
    char *mail_from_name;       /* From display name */
    char *mail_reply_to;        /* Reply-To address; empty = none */
    char *unsubscribe_mailto;   /* List-Unsubscribe mailto address; empty = https only */
    char *dkim_domain;          /* d= of DKIM signatures; empty = no signing */
    char *dkim_selector;        /* s= */
    char *dkim_key;             /* PEM private key file */
    char *track_secret_file;    /* HMAC secret of tracking links; empty = DATA/track.key */
    int64_t track_max_age_days; /* opens and clicks older than this are not recorded */
    char *templates_dir;         /* email templates loaded into the store at start-up */
    int64_t outbox_lease;        /* seconds a sender holds a claimed outbox row */
    int64_t outbox_max_attempts; /* send attempts before a message fails */
    int64_t outbox_retry_base;   /* seconds before the first retry; doubles each time */
    char *cap;                   /* frequency caps per profile: "1/16h, 3/7d:drop" */
    char *quiet_hours;           /* "21:00-08:00" in the recipient's time; empty = none */
    char *quiet_hours_tz;        /* time zone when the profile and journey give none */
    int64_t quiet_hold_max_hours; /* held longer than this: dropped */
    int64_t attribution_window_hours; /* a purchase this soon after an email click is credited */
    char *consent_required; /* "yes": only profiles that opted in get email */
    char *shop_url;         /* linked from emails */
    char *cart_url;         /* linked from cart emails */
    char *currency;         /* of prices in emails, when items carry none */
    char *demo_dataset;     /* click log of the demo's catalogue and shoppers */
    int64_t demo_wait;      /* seconds the demo's journeys wait */
    char *demo_smtp_listen; /* the demo's mail catcher */
    char *demo_mailbox;     /* caught mail shown by /demo/mailbox; empty = no /demo/ */
} td_config_t;

/* Fills cfg with the defaults. */
void td_config_init(td_config_t *cfg);
void td_config_release(td_config_t *cfg);

/* Applies a config file ("name = value" lines, '#' comments, repeatable list
 * settings), then TANDEM_* environment variables, then the flags in argv
 * (--name value or --name=value; dashes or underscores). Flags that are not
 * settings are refused. On error err names the file, line and setting and
 * the return is TD_EINVAL. argv[0] is the first flag, not the program. */
int td_config_load(td_config_t *cfg, int argc, char **argv, td_err_t *err) TD_MUST_CHECK;

/* Sets one setting from text, checking its type and bounds. */
int td_config_set(td_config_t *cfg, const char *name, const char *value,
                  td_err_t *err) TD_MUST_CHECK;

/* Prints one line per setting: flag, environment variable, default, help. */
void td_config_print_help(FILE *out);
/* Prints the configuration reference as Markdown (docs/configuration.md). */
void td_config_print_markdown(FILE *out);

/* Looks up the org id configured for a datastream id; NULL when unknown. */
const char *td_config_datastream_org(const td_config_t *cfg, const char *config_id);

#endif
