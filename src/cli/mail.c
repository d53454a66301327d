/* tandem mail send: builds one email (MIME, tracked links, DKIM) from an
 * HTML file and sends it over SMTP with the same settings as the server;
 * --print writes the signed message instead of sending it. For checking a
 * mail setup (SMTP, AUTH, TLS, DKIM DNS record) before journeys use it. */
#include "cli/cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "message/message.h"
#include "track/track.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/banned.h"

#define MAX_COUNT 10000

typedef struct mail_opts {
    const char *to, *to_name, *subject, *html_file, *text_file, *message_id, *list_id, *list_name,
        *journey, *step;
    int64_t instance;
    int count;
    bool print, no_track;
} mail_opts_t;

static void print_help(void)
{
    printf("usage: tandem mail send --to ADDR --subject TEXT --html FILE [options]\n\n"
           "Builds an email from an HTML file (the text part is generated from it unless\n"
           "--text is given), rewrites its links into tracked ones and adds the open pixel\n"
           "and List-Unsubscribe when public_url is set, signs it with DKIM when dkim_* are\n"
           "set, and sends it through smtp. Prints one line per message:\n"
           "  <message-id> <accepted|tempfail|permfail|connfail> <code> connects=<n> <reply>\n"
           "Exit status: 0 all accepted, 3 a permanent failure, 4 a temporary one.\n\n"
           "  --to ADDR            recipient (required)\n"
           "  --to-name NAME       recipient display name\n"
           "  --subject TEXT       subject, UTF-8 (required)\n"
           "  --html FILE          HTML body (required)\n"
           "  --text FILE          plain-text body (default: generated from the HTML)\n"
           "  --message-id ID      Message-ID without <> (default: generated)\n"
           "  --journey ID --step ID --instance N\n"
           "                       attribute tracked events to a journey step; with\n"
           "                       --instance and --step the Message-ID is the step's\n"
           "  --list-id ID         List-Id (e.g. news.shop.example); --list-name NAME\n"
           "  --count N            send N copies (ids suffixed .1 .. .N) over the\n"
           "                       smtp_senders connections at once (load and reuse checks)\n"
           "  --no-track           leave links as they are\n"
           "  --print              write the signed message to stdout, send nothing\n\n"
           "Server settings (from --config FILE, TANDEM_* or flags) used here:\n"
           "  smtp smtp_user smtp_password_file smtp_tls smtp_ca_file smtp_timeout\n"
           "  smtp_senders smtp_rate smtp_domain_rate mail_from mail_from_name\n"
           "  mail_reply_to unsubscribe_mailto dkim_domain dkim_selector dkim_key\n"
           "  public_url track_secret_file data\n");
}

/* Reads a whole file of at most max bytes; you own *out (free). */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    td_buf_t b = TD_BUF_INIT;
    char chunk[65536];
    size_t n;

    *out = NULL;
    if (f == NULL) {
        fprintf(stderr, "tandem mail: cannot open \"%s\": %s\n", path, strerror(errno));
        return TD_EIO;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > max) {
            fclose(f);
            td_buf_release(&b);
            fprintf(stderr, "tandem mail: \"%s\" is larger than %zu bytes\n", path, max);
            return TD_ETOOBIG;
        }
        td_buf_add(&b, chunk, n);
    }
    fclose(f);
    *len = b.len;
    *out = td_buf_detach(&b);
    return TD_OK;
}

/* Splits argv into our options and the settings left for td_config_load. */
static int parse_args(int argc, char **argv, mail_opts_t *o, char **rest, int *n_rest)
{
    static const char *const with_value[] = { "--to",      "--to-name",   "--subject",
                                              "--html",    "--text",      "--message-id",
                                              "--list-id", "--list-name", "--journey",
                                              "--step",    "--instance",  "--count" };
    *n_rest = 0;
    o->count = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--print") == 0) {
            o->print = true;
            continue;
        }
        if (strcmp(a, "--no-track") == 0) {
            o->no_track = true;
            continue;
        }
        bool ours = false;
        for (size_t k = 0; k < TD_ARRAY_LEN(with_value); k++) {
            ours = ours || strcmp(a, with_value[k]) == 0;
        }
        if (!ours) {
            rest[(*n_rest)++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tandem mail: %s needs a value\n", a);
            return TD_EINVAL;
        }
        v = argv[++i];
        if (strcmp(a, "--to") == 0) {
            o->to = v;
        } else if (strcmp(a, "--to-name") == 0) {
            o->to_name = v;
        } else if (strcmp(a, "--subject") == 0) {
            o->subject = v;
        } else if (strcmp(a, "--html") == 0) {
            o->html_file = v;
        } else if (strcmp(a, "--text") == 0) {
            o->text_file = v;
        } else if (strcmp(a, "--message-id") == 0) {
            o->message_id = v;
        } else if (strcmp(a, "--list-id") == 0) {
            o->list_id = v;
        } else if (strcmp(a, "--list-name") == 0) {
            o->list_name = v;
        } else if (strcmp(a, "--journey") == 0) {
            o->journey = v;
        } else if (strcmp(a, "--step") == 0) {
            o->step = v;
        } else {
            char *end;
            errno = 0;
            long long n = strtoll(v, &end, 10);
            bool count = strcmp(a, "--count") == 0;
            if (errno || *end || n < 1 || (count && n > MAX_COUNT)) {
                fprintf(stderr, "tandem mail: %s must be a positive integer%s\n", a,
                        count ? " up to 10000" : "");
                return TD_EINVAL;
            }
            if (count) {
                o->count = (int)n;
            } else {
                o->instance = n;
            }
        }
    }
    if (o->to == NULL || o->subject == NULL || o->html_file == NULL) {
        fprintf(stderr, "tandem mail send: --to, --subject and --html are required\n");
        return TD_EINVAL;
    }
    return TD_OK;
}

/* Everything the copies share, and the results of each. */
typedef struct job {
    const td_config_t *cfg;
    const mail_opts_t *o;
    const char *html, *text;
    size_t html_len, text_len;
    const td_track_key_t *key; /* NULL: no tracking */
    td_dkim_t *dkim;
    td_smtp_pool_t *pool;
    char base_id[256];
    _Atomic int next;
    _Atomic int n_perm, n_temp;
    pthread_mutex_t out_lock;
} job_t;

/* Builds copy i (1-based) into msg. */
static int build_one(job_t *j, int i, char *message_id, size_t id_len, td_buf_t *msg)
{
    const td_config_t *cfg = j->cfg;
    const mail_opts_t *o = j->o;
    td_buf_t html = TD_BUF_INIT, unsub = TD_BUF_INIT, mailto = TD_BUF_INIT, sig = TD_BUF_INIT;
    td_err_t err = { 0 };
    int64_t now_ms = td_wall_ms();
    int rc;

    if (j->o->count > 1) {
        const char *at = strrchr(j->base_id, '@');
        snprintf(message_id, id_len, "%.*s.%d%s", (int)(at - j->base_id), j->base_id, i, at);
    } else {
        snprintf(message_id, id_len, "%s", j->base_id);
    }
    td_track_ctx_t tc = { .key = j->key,
                          .base_url = cfg->public_url,
                          .message_id = message_id,
                          .email = o->to,
                          .journey = o->journey,
                          .step = o->step,
                          .instance = o->instance,
                          .now_ms = now_ms };
    if (j->key) {
        if ((rc = td_track_rewrite_html(&tc, j->html, j->html_len, &html, NULL)) != TD_OK ||
            (rc = td_track_unsubscribe_url(&tc, &unsub)) != TD_OK) {
            fprintf(stderr, "tandem mail: cannot make tracking links (%s)\n", td_strerror(rc));
            goto out;
        }
    } else {
        td_buf_add(&html, j->html, j->html_len);
    }
    if (*cfg->unsubscribe_mailto) {
        td_buf_addf(&mailto, "mailto:%s?subject=unsubscribe", cfg->unsubscribe_mailto);
    }
    td_mime_message_t m = { .from_name = *cfg->mail_from_name ? cfg->mail_from_name : NULL,
                            .from_addr = cfg->mail_from,
                            .reply_to = *cfg->mail_reply_to ? cfg->mail_reply_to : NULL,
                            .to_name = o->to_name,
                            .to_addr = o->to,
                            .subject = o->subject,
                            .html = html.data,
                            .html_len = html.len,
                            .text = j->text,
                            .text_len = j->text_len,
                            .message_id = message_id,
                            .date_ms = now_ms,
                            .unsubscribe_url = unsub.len ? unsub.data : NULL,
                            .unsubscribe_mailto = mailto.len ? mailto.data : NULL,
                            .list_id = o->list_id,
                            .list_name = o->list_name };
    td_buf_t body = TD_BUF_INIT;
    if ((rc = td_mime_build(&m, &body, &err)) != TD_OK) {
        fprintf(stderr, "tandem mail: cannot build the message: %s\n", err.message);
        td_buf_release(&body);
        goto out;
    }
    if (j->dkim && (rc = td_dkim_sign(j->dkim, body.data, body.len, now_ms, &sig, &err)) != TD_OK) {
        fprintf(stderr, "tandem mail: cannot sign the message: %s\n", err.message);
        td_buf_release(&body);
        goto out;
    }
    td_buf_add(msg, sig.data ? sig.data : "", sig.len);
    td_buf_add(msg, body.data, body.len);
    td_buf_release(&body);
out:
    td_buf_release(&html);
    td_buf_release(&unsub);
    td_buf_release(&mailto);
    td_buf_release(&sig);
    return rc;
}

static void *sender_main(void *arg)
{
    job_t *j = arg;
    int i;

    while ((i = atomic_fetch_add(&j->next, 1)) <= j->o->count) {
        char id[300];
        td_buf_t msg = TD_BUF_INIT;
        td_smtp_result_t res;
        if (build_one(j, i, id, sizeof(id), &msg) != TD_OK) {
            atomic_fetch_add(&j->n_perm, 1);
            td_buf_release(&msg);
            continue;
        }
        if (j->o->print) {
            pthread_mutex_lock(&j->out_lock);
            fwrite(msg.data, 1, msg.len, stdout);
            pthread_mutex_unlock(&j->out_lock);
            td_buf_release(&msg);
            continue;
        }
        td_smtp_pool_send(j->pool, j->cfg->mail_from, j->o->to, msg.data, msg.len, &res);
        td_buf_release(&msg);
        if (res.status == TD_SMTP_PERMFAIL) {
            atomic_fetch_add(&j->n_perm, 1);
        } else if (res.status != TD_SMTP_ACCEPTED) {
            atomic_fetch_add(&j->n_temp, 1);
        }
        pthread_mutex_lock(&j->out_lock);
        printf("%s %s %d connects=%d %s\n", id, td_smtp_status_name(res.status), res.code,
               res.connects, res.reply);
        fflush(stdout);
        pthread_mutex_unlock(&j->out_lock);
    }
    return NULL;
}

static int open_sending(const td_config_t *cfg, job_t *j, char **password)
{
    td_err_t err = { 0 };
    size_t len;

    if (!td_mime_addr_valid(cfg->mail_from)) {
        fprintf(stderr, "tandem mail: set mail_from to the sender address (e.g. "
                        "--mail-from news@shop.example)\n");
        return TD_EINVAL;
    }
    if (*cfg->dkim_domain && td_dkim_open(cfg->dkim_domain, cfg->dkim_selector, cfg->dkim_key,
                                          &j->dkim, &err) != TD_OK) {
        fprintf(stderr, "tandem mail: %s\n", err.message);
        return TD_EINVAL;
    }
    if (j->o->print) {
        return TD_OK;
    }
    if (*cfg->smtp == '\0') {
        fprintf(stderr, "tandem mail: set smtp (e.g. --smtp smtp://127.0.0.1:25)\n");
        return TD_EINVAL;
    }
    if (*cfg->smtp_password_file) {
        if (read_file(cfg->smtp_password_file, 4096, password, &len) != TD_OK) {
            return TD_EINVAL;
        }
        (*password)[strcspn(*password, "\r\n")] = '\0';
    }
    td_smtp_pool_options_t po = {
        .smtp = { .url = cfg->smtp,
                  .user = cfg->smtp_user,
                  .password = *password,
                  .ca_file = cfg->smtp_ca_file,
                  .tls = strcmp(cfg->smtp_tls, "require") == 0 ? TD_SMTP_TLS_REQUIRE
                         : strcmp(cfg->smtp_tls, "off") == 0   ? TD_SMTP_TLS_OFF
                                                               : TD_SMTP_TLS_TRY,
                  .timeout_ms = (long)cfg->smtp_timeout * 1000 },
        .senders = (int)cfg->smtp_senders,
        .per_min = cfg->smtp_rate,
        .domain_per_min = cfg->smtp_domain_rate
    };
    if (td_smtp_pool_open(&po, &j->pool, &err) != TD_OK) {
        fprintf(stderr, "tandem mail: %s\n", err.message);
        return TD_EINVAL;
    }
    return TD_OK;
}

static void make_base_id(const td_config_t *cfg, const mail_opts_t *o, char *out, size_t len)
{
    const char *domain = *cfg->dkim_domain ? cfg->dkim_domain : td_mime_addr_domain(cfg->mail_from);
    unsigned char r[8];
    char hex[17];

    if (o->message_id) {
        snprintf(out, len, "%s", o->message_id);
        return;
    }
    if (o->instance > 0 && o->step) {
        td_message_id_for(o->instance, o->step, domain, out, len);
        return;
    }
    if (RAND_bytes(r, sizeof(r)) != 1) {
        memset(r, 0, sizeof(r));
    }
    for (int i = 0; i < 8; i++) {
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    }
    snprintf(out, len, "tandem.cli.%s@%s", hex, domain);
}

static int mail_send(int argc, char **argv)
{
    mail_opts_t o = { 0 };
    td_config_t cfg;
    td_err_t err = { 0 };
    char **rest = td_xcalloc((size_t)argc + 1, sizeof(char *)), *html = NULL, *text = NULL,
         *password = NULL;
    int n_rest, status = 1, n_threads;
    td_track_key_t key;
    job_t j = { 0 };
    pthread_t threads[64];

    td_config_init(&cfg);
    if (parse_args(argc, argv, &o, rest, &n_rest) != TD_OK) {
        status = 2;
        goto out;
    }
    if (td_config_load(&cfg, n_rest, rest, &err) != TD_OK) {
        fprintf(stderr, "tandem mail: %s\n", err.message);
        status = 2;
        goto out;
    }
    if (td_log_parse_level(cfg.log_level, &td_log_level) != TD_OK) {
        TD_BUG("log_level passed validation but does not parse");
    }
    j.cfg = &cfg;
    j.o = &o;
    if (read_file(o.html_file, TD_MIME_MAX_BODY, &html, &j.html_len) != TD_OK ||
        (o.text_file && read_file(o.text_file, TD_MIME_MAX_BODY, &text, &j.text_len) != TD_OK)) {
        goto out;
    }
    j.html = html;
    j.text = text;
    if (!o.no_track && *cfg.public_url) {
        if (td_track_secret_load(cfg.track_secret_file, cfg.data, &key, &err) != TD_OK) {
            fprintf(stderr, "tandem mail: %s\n", err.message);
            goto out;
        }
        j.key = &key;
    } else if (!o.no_track) {
        fprintf(stderr, "tandem mail: public_url is not set: links are not tracked and there "
                        "is no one-click unsubscribe\n");
    }
    if (open_sending(&cfg, &j, &password) != TD_OK) {
        goto out;
    }
    make_base_id(&cfg, &o, j.base_id, sizeof(j.base_id));
    if (strchr(j.base_id, '@') == NULL) {
        fprintf(stderr, "tandem mail: --message-id must be of the form local@domain\n");
        goto out;
    }
    atomic_store(&j.next, 1);
    pthread_mutex_init(&j.out_lock, NULL);
    n_threads = o.print ? 1 : (int)cfg.smtp_senders;
    n_threads = n_threads > o.count ? o.count : n_threads;
    n_threads = n_threads > 64 ? 64 : n_threads;
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&threads[i], NULL, sender_main, &j) != 0) {
            TD_BUG("pthread_create() failed");
        }
    }
    for (int i = 0; i < n_threads; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_mutex_destroy(&j.out_lock);
    status = atomic_load(&j.n_perm) ? 3 : atomic_load(&j.n_temp) ? 4 : 0;
out:
    td_smtp_pool_close(j.pool);
    td_dkim_close(j.dkim);
    free(html);
    free(text);
    if (password) {
        memset(password, 0, strlen(password));
    }
    free(password);
    free(rest);
    td_config_release(&cfg);
    return status;
}

int td_cli_mail(int argc, char **argv)
{
    if (argc == 0 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0) {
        print_help();
        return argc == 0 ? 2 : 0;
    }
    if (strcmp(argv[0], "send") == 0) {
        if (td_cli_wants_help(argc - 1, argv + 1)) {
            print_help();
            return 0;
        }
        return mail_send(argc - 1, argv + 1);
    }
    fprintf(stderr, "tandem mail: unknown command \"%s\" (see tandem mail --help)\n", argv[0]);
    return 2;
}
