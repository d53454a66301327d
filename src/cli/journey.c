/* tandem journey: manage journeys from the command line. Every subcommand
 * except `validate` talks to a running server over HTTP (libcurl) with the
 * admin key, because the server holds the compiled journeys that match
 * events: changing the store behind its back would leave it serving stale
 * ones. `validate` checks a file offline with the same parser. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "journey/journey.h"
#include "util/buf.h"
#include "util/banned.h"

#define MAX_FILE (TD_JOURNEY_MAX_DOC + 1)

typedef struct opts {
    const char *server;
    char *admin_key;
    const char *data;
    int64_t version;
    const char *state;
    bool publish;
    bool json;
    const char *args[3];
    int n_args;
} opts_t;

static const struct {
    const char *name, *args, *help;
    int n_args;
} subcommands[] = {
    { "apply", "FILE", "store FILE as the journey's next version (--publish: and publish it)", 1 },
    { "validate", "FILE", "check FILE offline; prints every error with its JSON pointer", 1 },
    { "list", "", "list journeys with their status and running instances", 0 },
    { "show", "ID", "print a journey's definition (--version N for an older one)", 1 },
    { "publish", "ID", "serve new entries with the latest version (or --version N)", 1 },
    { "pause", "ID", "stop new entries; running instances wait", 1 },
    { "resume", "ID", "resume a paused journey", 1 },
    { "stop", "ID", "end every running instance and stop new entries", 1 },
    { "delete", "ID", "delete a journey that is not running", 1 },
    { "report", "ID", "per-step counts: entered, waiting, passed, exited, errors", 1 },
    { "instances", "ID", "list instances, newest first (--state running|ended)", 1 },
    { "instance", "ID N", "print one instance with its history", 2 },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: tandem journey <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < TD_ARRAY_LEN(subcommands); i++) {
        char head[40];
        snprintf(head, sizeof(head), "%s %s", subcommands[i].name, subcommands[i].args);
        fprintf(out, "  %-22s %s\n", head, subcommands[i].help);
    }
    fprintf(
        out,
        "\noptions:\n"
        "  --server URL      the server (default $TANDEM_SERVER, else http://127.0.0.1:8080)\n"
        "  --admin-key KEY   admin key (default $TANDEM_ADMIN_KEY, else DATA/admin.key)\n"
        "  --data DIR        data directory holding admin.key (default $TANDEM_DATA or ./data)\n"
        "  --version N       show / publish: a given version\n"
        "  --state S         instances: running or ended\n"
        "  --publish         apply: publish the stored version\n"
        "  --json            print the server's JSON as it is\n"
        "\nJourneys are JSON files (docs/journeys.md); examples are in journeys/.\n");
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    td_buf_t b = TD_BUF_INIT;
    char chunk[65536];
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "tandem journey: cannot open \"%s\": %s\n", path, strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        td_buf_add(&b, chunk, n);
        if (b.len > MAX_FILE) {
            fprintf(stderr, "tandem journey: \"%s\" is larger than %d bytes\n", path,
                    TD_JOURNEY_MAX_DOC);
            fclose(f);
            td_buf_release(&b);
            return NULL;
        }
    }
    fclose(f);
    *len = b.len;
    td_buf_adds(&b, "");
    return td_buf_detach(&b);
}

static void print_errors(const json_t *errors, const char *file)
{
    size_t i;
    json_t *e;

    json_array_foreach(errors, i, e)
    {
        const char *path = json_string_value(json_object_get(e, "path"));
        json_t *line = json_object_get(e, "line"), *col = json_object_get(e, "column");
        fprintf(stderr, "%s: %s", file ? file : "error", path && *path ? path : "(document)");
        if (line && col && !(path && *path)) {
            fprintf(stderr, " line %lld, column %lld", (long long)json_integer_value(line),
                    (long long)json_integer_value(col));
        } else if (col) {
            fprintf(stderr, " (column %lld)", (long long)json_integer_value(col));
        }
        fprintf(stderr, ": %s\n", json_string_value(json_object_get(e, "message")));
    }
}

static int cmd_validate(const char *path)
{
    size_t len;
    char *doc = read_file(path, &len);
    td_journey_errors_t *errs;
    td_journey_def_t *def = NULL;
    td_journey_defaults_t dflt = { .reentry_wait_ms = 300000, .timeout_ms = 91LL * 86400000 };

    if (doc == NULL) {
        return 1;
    }
    errs = td_xcalloc(1, sizeof(*errs));
    int rc = td_journey_def_parse(doc, len, NULL, &dflt, &def, errs);
    if (rc == TD_OK) {
        printf("%s: journey \"%s\" is valid (%d steps)\n", path, td_journey_def_id(def),
               td_journey_def_n_steps(def));
    } else {
        json_t *j = td_journey_errors_to_json(errs);
        print_errors(json_object_get(j, "errors"), path);
        json_decref(j);
        fprintf(stderr, "%s: %d error%s\n", path, errs->n, errs->n == 1 ? "" : "s");
    }
    td_journey_def_free(def);
    free(errs);
    free(doc);
    return rc == TD_OK ? 0 : 1;
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    td_buf_add(ctx, p, size * n);
    return size * n;
}

/* Makes one request; *out is the parsed JSON reply (or NULL). Returns the
 * HTTP status, or -1 when the server could not be reached. */
static long request(const opts_t *o, const char *method, const char *path, const char *body,
                    size_t body_len, json_t **out)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    td_buf_t url = TD_BUF_INIT, auth = TD_BUF_INIT, resp = TD_BUF_INIT;
    long status = -1;

    *out = NULL;
    td_buf_addf(&url, "%s%s", o->server, path);
    td_buf_addf(&auth, "Authorization: Bearer %s", o->admin_key ? o->admin_key : "");
    hdrs = curl_slist_append(hdrs, auth.data);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url.data);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        fprintf(stderr, "tandem journey: cannot reach %s: %s (is the server running? --server)\n",
                o->server, curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        *out = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    td_buf_release(&url);
    OPENSSL_cleanse(auth.data, auth.len);
    td_buf_release(&auth);
    td_buf_release(&resp);
    return status;
}

static void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(15));

    printf("%s\n", s ? s : "null");
    free(s);
}

/* Prints an error reply; returns the exit status. */
static int fail_reply(long status, json_t *reply, const char *file)
{
    json_t *e = json_object_get(reply, "error");

    if (status < 0) {
        return 1;
    }
    if (e == NULL) {
        fprintf(stderr, "tandem journey: the server answered %ld\n", status);
        return 1;
    }
    if (json_is_array(json_object_get(e, "errors"))) {
        print_errors(json_object_get(e, "errors"), file);
    }
    fprintf(stderr, "tandem journey: %s (%ld %s)\n",
            json_string_value(json_object_get(e, "message")), status,
            json_string_value(json_object_get(e, "code")));
    if (status == 401) {
        fprintf(stderr, "tandem journey: check --admin-key (or --data for DATA/admin.key)\n");
    }
    return 1;
}

static void print_list(const json_t *reply)
{
    size_t i;
    json_t *j;

    printf("%-28s %-8s %5s %6s %8s  %s\n", "ID", "STATUS", "LIVE", "LATEST", "RUNNING", "ENTRY");
    json_array_foreach(json_object_get(reply, "journeys"), i, j)
    {
        printf("%-28s %-8s %5lld %6lld %8lld  %s\n", json_string_value(json_object_get(j, "id")),
               json_string_value(json_object_get(j, "status")),
               (long long)json_integer_value(json_object_get(j, "live_version")),
               (long long)json_integer_value(json_object_get(j, "latest_version")),
               (long long)json_integer_value(json_object_get(j, "running")),
               json_string_value(json_object_get(j, "entry_event"))
                   ? json_string_value(json_object_get(j, "entry_event"))
                   : "-");
    }
}

static int run_remote(const opts_t *o, const char *cmd)
{
    char path[512], body[64] = "";
    const char *method = "GET";
    char *doc = NULL;
    size_t len = 0;
    json_t *reply = NULL;
    const char *id = o->n_args > 0 ? o->args[0] : "";
    char *eid = curl_easy_escape(NULL, id, 0);
    int status_ok = 200;

    if (strcmp(cmd, "apply") == 0) {
        json_t *parsed;
        if ((doc = read_file(o->args[0], &len)) == NULL) {
            curl_free(eid);
            return 1;
        }
        parsed = json_loadb(doc, len, 0, NULL);
        const char *jid = json_string_value(json_object_get(parsed, "id"));
        if (jid == NULL) {
            fprintf(stderr, "%s: the journey needs an \"id\" (try: tandem journey validate %s)\n",
                    o->args[0], o->args[0]);
            json_decref(parsed);
            free(doc);
            curl_free(eid);
            return 1;
        }
        curl_free(eid);
        eid = curl_easy_escape(NULL, jid, 0);
        json_decref(parsed);
        snprintf(path, sizeof(path), "/v1/journeys/%s", eid);
        method = "PUT";
    } else if (strcmp(cmd, "list") == 0) {
        snprintf(path, sizeof(path), "/v1/journeys");
    } else if (strcmp(cmd, "show") == 0) {
        snprintf(path, sizeof(path), "/v1/journeys/%s%s", eid, o->version ? "?version=" : "");
        if (o->version) {
            snprintf(path + strlen(path), sizeof(path) - strlen(path), "%lld",
                     (long long)o->version);
        }
    } else if (strcmp(cmd, "publish") == 0 || strcmp(cmd, "pause") == 0 ||
               strcmp(cmd, "resume") == 0 || strcmp(cmd, "stop") == 0) {
        snprintf(path, sizeof(path), "/v1/journeys/%s:%s", eid, cmd);
        method = "POST";
        if (o->version) {
            snprintf(body, sizeof(body), "{\"version\":%lld}", (long long)o->version);
        }
    } else if (strcmp(cmd, "delete") == 0) {
        snprintf(path, sizeof(path), "/v1/journeys/%s", eid);
        method = "DELETE";
    } else if (strcmp(cmd, "report") == 0) {
        snprintf(path, sizeof(path), "/v1/journeys/%s/report", eid);
    } else if (strcmp(cmd, "instances") == 0) {
        snprintf(path, sizeof(path), "/v1/journeys/%s/instances%s%s", eid,
                 o->state ? "?state=" : "", o->state ? o->state : "");
    } else {
        snprintf(path, sizeof(path), "/v1/journeys/%s/instances/%s", eid, o->args[1]);
    }
    long status = request(o, method, path,
                          doc     ? doc
                          : *body ? body
                                  : NULL,
                          doc ? len : strlen(body), &reply);
    int rc = 0;
    if (status != status_ok && !(status == 201 && doc)) {
        rc = fail_reply(status, reply, doc ? o->args[0] : NULL);
    } else if (o->json || strcmp(cmd, "show") == 0 || strcmp(cmd, "report") == 0 ||
               strcmp(cmd, "instance") == 0 || strcmp(cmd, "instances") == 0) {
        print_json(strcmp(cmd, "show") == 0 && !o->json ? json_object_get(reply, "definition")
                                                        : reply);
    } else if (strcmp(cmd, "list") == 0) {
        print_list(reply);
    } else if (strcmp(cmd, "apply") == 0) {
        const char *jid = json_string_value(json_object_get(reply, "id"));
        long long v = (long long)json_integer_value(json_object_get(reply, "version"));
        printf("%s: version %lld %s\n", jid, v,
               json_is_true(json_object_get(reply, "changed")) ? "stored" : "unchanged");
        if (o->publish) {
            json_t *r2 = NULL;
            snprintf(path, sizeof(path), "/v1/journeys/%s:publish", eid);
            snprintf(body, sizeof(body), "{\"version\":%lld}", v);
            status = request(o, "POST", path, body, strlen(body), &r2);
            if (status != 200) {
                rc = fail_reply(status, r2, NULL);
            } else {
                printf("%s: version %lld published\n", jid, v);
            }
            json_decref(r2);
        }
    } else if (strcmp(cmd, "delete") == 0) {
        printf("%s: deleted\n", id);
    } else {
        printf("%s: %s", id, json_string_value(json_object_get(reply, "status")));
        if (json_object_get(reply, "stopped_instances")) {
            printf(", %lld instances stopped",
                   (long long)json_integer_value(json_object_get(reply, "stopped_instances")));
        }
        printf(" (live version %lld)\n",
               (long long)json_integer_value(json_object_get(reply, "live_version")));
    }
    json_decref(reply);
    free(doc);
    curl_free(eid);
    return rc;
}

static char *load_admin_key(const char *data)
{
    char path[4096], key[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/admin.key", data);
    if ((f = fopen(path, "r")) == NULL) {
        return NULL;
    }
    bool ok = fgets(key, sizeof(key), f) != NULL;
    fclose(f);
    key[strcspn(key, "\r\n")] = '\0';
    return ok && *key ? td_xstrdup(key) : NULL;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--publish") == 0) {
            o->publish = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--server") == 0 || strcmp(a, "--admin-key") == 0 ||
                   strcmp(a, "--data") == 0 || strcmp(a, "--version") == 0 ||
                   strcmp(a, "--state") == 0) {
            if (v == NULL) {
                fprintf(stderr, "tandem journey: %s needs a value\n", a);
                return 1;
            }
            i++;
            if (strcmp(a, "--server") == 0) {
                o->server = v;
            } else if (strcmp(a, "--admin-key") == 0) {
                free(o->admin_key);
                o->admin_key = td_xstrdup(v);
            } else if (strcmp(a, "--data") == 0) {
                o->data = v;
            } else if (strcmp(a, "--state") == 0) {
                o->state = v;
            } else {
                char *end;
                o->version = strtoll(v, &end, 10);
                if (*end || o->version < 1) {
                    fprintf(stderr, "tandem journey: --version needs a number from 1\n");
                    return 1;
                }
            }
        } else if (strncmp(a, "--", 2) == 0) {
            fprintf(stderr, "tandem journey: unknown option \"%s\" (see --help)\n", a);
            return 1;
        } else if (o->n_args < (int)TD_ARRAY_LEN(o->args)) {
            o->args[o->n_args++] = a;
        } else {
            fprintf(stderr, "tandem journey: unexpected argument \"%s\"\n", a);
            return 1;
        }
    }
    return 0;
}

int td_cli_journey(int argc, char **argv)
{
    opts_t o = { 0 };
    size_t k;
    int rc;

    if (argc == 0 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        usage(argc == 0 ? stderr : stdout);
        return argc == 0 ? 2 : 0;
    }
    for (k = 0; k < TD_ARRAY_LEN(subcommands); k++) {
        if (strcmp(subcommands[k].name, argv[0]) == 0) {
            break;
        }
    }
    if (k == TD_ARRAY_LEN(subcommands)) {
        fprintf(stderr, "tandem journey: unknown command \"%s\"\n\n", argv[0]);
        usage(stderr);
        return 2;
    }
    if (td_cli_wants_help(argc - 1, argv + 1)) {
        printf("usage: tandem journey %s %s [options]\n\n%s.\n\nSee 'tandem journey --help' for "
               "the options.\n",
               subcommands[k].name, subcommands[k].args, subcommands[k].help);
        return 0;
    }
    if (parse_opts(argc - 1, argv + 1, &o) != 0) {
        free(o.admin_key);
        return 2;
    }
    if (o.n_args != subcommands[k].n_args) {
        fprintf(stderr, "usage: tandem journey %s %s\n", subcommands[k].name, subcommands[k].args);
        free(o.admin_key);
        return 2;
    }
    if (strcmp(argv[0], "validate") == 0) {
        rc = cmd_validate(o.args[0]);
        free(o.admin_key);
        return rc;
    }
    if (o.server == NULL) {
        o.server = getenv("TANDEM_SERVER") ? getenv("TANDEM_SERVER") : "http://127.0.0.1:8080";
    }
    if (o.admin_key == NULL && getenv("TANDEM_ADMIN_KEY")) {
        /* a comma-separated list in the environment: the first key */
        const char *env = getenv("TANDEM_ADMIN_KEY");
        o.admin_key = td_xstrndup(env, strcspn(env, ","));
    }
    if (o.admin_key == NULL) {
        const char *data = o.data                  ? o.data
                           : getenv("TANDEM_DATA") ? getenv("TANDEM_DATA")
                                                   : "./data";
        o.admin_key = load_admin_key(data);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = run_remote(&o, argv[0]);
    curl_global_cleanup();
    free(o.admin_key);
    return rc;
}
