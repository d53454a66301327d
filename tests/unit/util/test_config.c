/* Settings: defaults, the config file, the environment and flags with their
 * precedence, bounds, lists, and errors that name the file, line and
 * setting. Each test starts from an environment without TANDEM_* variables
 * and writes its config files to a temporary directory. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config.h"

extern char **environ;

static char tmp_dir[256];

static void clear_tandem_env(void)
{
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "TANDEM_", 7) == 0) {
                size_t n = strcspn(*e, "=");
                snprintf(name, sizeof(name), "%.*s", (int)n, *e);
                break;
            }
        }
        if (!*name) {
            return;
        }
        unsetenv(name);
    }
}

static int setup(void **state)
{
    const char *base = getenv("TMPDIR");

    (void)state;
    clear_tandem_env();
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/tandem-config-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    clear_tandem_env();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to a file in the test's directory; returns its path (static). */
static const char *write_file(const char *name, const char *text)
{
    static char path[400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* td_config_load on a NULL-terminated list of flags. */
static int load(td_config_t *cfg, td_err_t *err, const char *const *flags)
{
    char *argv[32];
    int argc = 0;

    while (flags && flags[argc]) {
        argv[argc] = (char *)flags[argc];
        argc++;
    }
    argv[argc] = NULL;
    return td_config_load(cfg, argc, argv, err);
}

#define FLAGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_defaults(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };

    (void)state;
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, NULL), TD_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.tls_listen, "");
    assert_string_equal(cfg.data, "./data");
    assert_string_equal(cfg.config, "");
    assert_string_equal(cfg.store, "");
    assert_string_equal(cfg.clock, "real");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.sync, "full");
    assert_string_equal(cfg.web_dir, "web");
    assert_int_equal(cfg.admin_key.n, 0);
    assert_int_equal(cfg.datastream.n, 0);
    assert_int_equal(cfg.threads, 0);
    assert_int_equal(cfg.max_body, 4194304);
    assert_int_equal(cfg.max_events, 1000);
    assert_int_equal(cfg.max_items, 500);
    assert_int_equal(cfg.viewed_max, 50);
    assert_int_equal(cfg.commit_max_events, 20000);
    assert_int_equal(cfg.cookie_days, 390);
    td_config_release(&cfg);
    td_config_release(&cfg); /* twice is harmless */
}

static void test_file(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };
    const char *path = write_file("a.conf", "# a comment\n"
                                            "\n"
                                            "   listen = 0.0.0.0:9000   \n"
                                            "max_events=5\n"
                                            "\tmax-items =\t7\r\n"
                                            "  # indented comment\n"
                                            "public_url = \"https://shop.example/x y\"\n"
                                            "admin_key = key-one\n"
                                            "admin_key = key-two\n"
                                            "admin_key =\n"
                                            "datastream = cfg-1=ORG1@AdobeOrg\n"
                                            "clock = virtual\n"
                                            "sync=normal");

    (void)state;
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, FLAGS("--config", path)), TD_OK);
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    assert_int_equal(cfg.max_events, 5);
    assert_int_equal(cfg.max_items, 7);
    assert_string_equal(cfg.public_url, "https://shop.example/x y");
    assert_int_equal(cfg.admin_key.n, 2); /* lists repeat; an empty line adds nothing */
    assert_string_equal(cfg.admin_key.items[0], "key-one");
    assert_string_equal(cfg.admin_key.items[1], "key-two");
    assert_string_equal(td_config_datastream_org(&cfg, "cfg-1"), "ORG1@AdobeOrg");
    assert_null(td_config_datastream_org(&cfg, "cfg"));
    assert_null(td_config_datastream_org(&cfg, "cfg-10"));
    assert_string_equal(cfg.clock, "virtual");
    assert_string_equal(cfg.sync, "normal"); /* last line without a newline */
    assert_string_equal(cfg.config, path);
    td_config_release(&cfg);

    /* --config=FILE and TANDEM_CONFIG name the file too */
    td_config_init(&cfg);
    char flag[512];
    snprintf(flag, sizeof(flag), "--config=%s", path);
    assert_int_equal(load(&cfg, &err, FLAGS(flag)), TD_OK);
    assert_int_equal(cfg.max_events, 5);
    td_config_release(&cfg);
    td_config_init(&cfg);
    setenv("TANDEM_CONFIG", path, 1);
    assert_int_equal(load(&cfg, &err, NULL), TD_OK);
    assert_int_equal(cfg.max_events, 5);
    assert_string_equal(cfg.config, path);
    td_config_release(&cfg);

    /* an empty file changes nothing */
    td_config_init(&cfg);
    unsetenv("TANDEM_CONFIG");
    path = write_file("empty.conf", "");
    assert_int_equal(load(&cfg, &err, FLAGS("--config", path)), TD_OK);
    assert_int_equal(cfg.max_events, 1000);
    td_config_release(&cfg);
}

static void test_precedence(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };
    const char *path = write_file("p.conf", "max_events = 5\n"
                                            "max_items = 5\n"
                                            "viewed_max = 5\n"
                                            "admin_key = from-file\n");

    (void)state;
    setenv("TANDEM_MAX_ITEMS", "7", 1);
    setenv("TANDEM_VIEWED_MAX", "7", 1);
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, FLAGS("--config", path, "--viewed-max", "9")), TD_OK);
    assert_int_equal(cfg.max_events, 5); /* file over default */
    assert_int_equal(cfg.max_items, 7);  /* environment over file */
    assert_int_equal(cfg.viewed_max, 9); /* flag over environment */
    assert_int_equal(cfg.admin_key.n, 1);
    assert_string_equal(cfg.admin_key.items[0], "from-file");
    td_config_release(&cfg);

    /* a list from the environment replaces the file's (comma-separated,
     * trimmed); flags replace both, and repeat */
    setenv("TANDEM_ADMIN_KEY", "env-1, env-2 ,env-3", 1);
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, FLAGS("--config", path)), TD_OK);
    assert_int_equal(cfg.admin_key.n, 3);
    assert_string_equal(cfg.admin_key.items[0], "env-1");
    assert_string_equal(cfg.admin_key.items[1], "env-2");
    assert_string_equal(cfg.admin_key.items[2], "env-3");
    td_config_release(&cfg);
    td_config_init(&cfg);
    assert_int_equal(
        load(&cfg, &err, FLAGS("--config", path, "--admin-key", "f-1", "--admin_key=f-2")), TD_OK);
    assert_int_equal(cfg.admin_key.n, 2);
    assert_string_equal(cfg.admin_key.items[0], "f-1");
    assert_string_equal(cfg.admin_key.items[1], "f-2");
    td_config_release(&cfg);

    /* the last flag wins for a single value */
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, FLAGS("--max-events", "3", "--max-events=4")), TD_OK);
    assert_int_equal(cfg.max_events, 4);
    td_config_release(&cfg);
}

static void test_env_list_skips_empty_items(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };

    (void)state;
    /* an empty admin key would be a key anyone could send */
    setenv("TANDEM_ADMIN_KEY", " , k1,, ,k2 ,", 1);
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, NULL), TD_OK);
    assert_int_equal(cfg.admin_key.n, 2);
    assert_string_equal(cfg.admin_key.items[0], "k1");
    assert_string_equal(cfg.admin_key.items[1], "k2");
    td_config_release(&cfg);
    setenv("TANDEM_ADMIN_KEY", "  ", 1);
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, NULL), TD_OK);
    assert_int_equal(cfg.admin_key.n, 0);
    td_config_release(&cfg);
}

/* Expects load to fail with a message containing each of the strings. */
static void refuse(const char *const *flags, const char *setting, const char *m1, const char *m2)
{
    td_config_t cfg;
    td_err_t err = { 0 };

    td_config_init(&cfg);
    int rc = load(&cfg, &err, flags);
    td_config_release(&cfg);
    if (rc != TD_EINVAL || (setting && strcmp(err.path, setting) != 0) ||
        (m1 && !strstr(err.message, m1)) || (m2 && !strstr(err.message, m2))) {
        fail_msg("rc=%d path=\"%s\" message=\"%s\"; wanted \"%s\", \"%s\", \"%s\"", rc, err.path,
                 err.message, setting ? setting : "", m1 ? m1 : "", m2 ? m2 : "");
    }
}

static void test_bounds_and_types(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };

    (void)state;
    refuse(FLAGS("--max-body", "12x"), "max_body", "max_body", "\"12x\"");
    refuse(FLAGS("--max-body", ""), "max_body", "must be an integer", NULL);
    refuse(FLAGS("--max-body", "1023"), "max_body", "between 1024 and 268435456", "1023");
    refuse(FLAGS("--max-body", "268435457"), "max_body", "between", NULL);
    refuse(FLAGS("--max-body", "99999999999999999999"), "max_body", "must be an integer", NULL);
    refuse(FLAGS("--max-body", "0x400"), "max_body", "must be an integer", NULL);
    refuse(FLAGS("--max-body", "1e6"), "max_body", "must be an integer", NULL);
    refuse(FLAGS("--threads", "-1"), "threads", "between 0 and 256", NULL);
    refuse(FLAGS("--max-events", "0"), "max_events", "between 1 and 100000", NULL);
    refuse(FLAGS("--viewed-max", "10001"), "viewed_max", NULL, NULL);
    refuse(FLAGS("--cookie-days", "3651"), "cookie_days", NULL, NULL);
    refuse(FLAGS("--clock", "weird"), "clock", "must be one of real|virtual", "\"weird\"");
    refuse(FLAGS("--clock", "Virtual"), "clock", "real|virtual", NULL);
    refuse(FLAGS("--clock", "virtua"), "clock", NULL, NULL);
    refuse(FLAGS("--clock", "virtuall"), "clock", NULL, NULL);
    refuse(FLAGS("--log-level", "trace"), "log_level", "debug|info|warn|error", NULL);
    refuse(FLAGS("--sync", ""), "sync", "full|normal", NULL);

    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err,
                          FLAGS("--max-body", "1024", "--threads", "256", "--max-events", "100000",
                                "--commit-max-events", "1", "--log-level", "debug")),
                     TD_OK);
    assert_int_equal(cfg.max_body, 1024);
    assert_int_equal(cfg.threads, 256);
    assert_int_equal(cfg.max_events, 100000);
    assert_int_equal(cfg.commit_max_events, 1);
    assert_string_equal(cfg.log_level, "debug");
    td_config_release(&cfg);
}

static void test_flag_errors(void **state)
{
    (void)state;
    refuse(FLAGS("--nope", "1"), "--nope", "unknown option \"--nope\"", "--help");
    refuse(FLAGS("--nope=1"), "--nope=1", "unknown option \"--nope\"", NULL);
    refuse(FLAGS("--max-events"), "max_events", "needs a value", NULL);
    refuse(FLAGS("serve"), "serve", "unexpected argument \"serve\"", NULL);
    refuse(FLAGS("-v"), "-v", "unexpected argument", NULL);
    refuse(FLAGS("--"), "--", "unknown option", NULL);
    refuse(FLAGS("--max"), "--max", "unknown option", NULL); /* no prefix matching */
    refuse(FLAGS("--config"), "config", "needs a value", NULL);
}

static void test_env_errors(void **state)
{
    (void)state;
    setenv("TANDEM_MAX_ITEMS", "0", 1);
    refuse(NULL, "max_items", "TANDEM_MAX_ITEMS", "between 1 and 100000");
    setenv("TANDEM_MAX_ITEMS", "5", 1);
    setenv("TANDEM_CLOCK", "fast", 1);
    refuse(NULL, "clock", "TANDEM_CLOCK", "\"fast\"");
    unsetenv("TANDEM_CLOCK");
    /* variables that are not settings are none of our business */
    setenv("TANDEM_NOT_A_SETTING", "x", 1);
    td_config_t cfg;
    td_err_t err = { 0 };
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, NULL), TD_OK);
    assert_int_equal(cfg.max_items, 5);
    td_config_release(&cfg);
}

/* Loads a file with the given text; expects an error at line, naming the
 * file, the line and (when given) the setting. */
static void refuse_file(const char *text, int line, const char *setting, const char *m)
{
    td_config_t cfg;
    td_err_t err = { 0 };
    const char *path = write_file("bad.conf", text);
    char where[450];

    td_config_init(&cfg);
    int rc = load(&cfg, &err, FLAGS("--config", path));
    td_config_release(&cfg);
    snprintf(where, sizeof(where), "%s:%d:", path, line);
    if (rc != TD_EINVAL || err.line != line || !strstr(err.message, where) ||
        (setting && (strcmp(err.path, setting) != 0 || !strstr(err.message, setting))) ||
        (m && !strstr(err.message, m))) {
        fail_msg("rc=%d line=%d path=\"%s\" message=\"%s\"; wanted line %d, \"%s\", \"%s\"", rc,
                 err.line, err.path, err.message, line, setting ? setting : "", m ? m : "");
    }
}

static void test_file_errors(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };

    (void)state;
    refuse_file("listen = a:1\n\njust words\n", 3, NULL, "expected \"name = value\"");
    refuse_file("# c\nmax_body = 12x\n", 2, "max_body", "\"12x\"");
    refuse_file("max_events = 5\nclock = weird\n", 2, "clock", "real|virtual");
    refuse_file("colour = blue\n", 1, "colour", "unknown setting \"colour\"");
    refuse_file("\n\n\n\nmax_items = -3", 5, "max_items", "between");
    refuse_file("= value\n", 1, NULL, "unknown setting");

    /* a line too long for the reader is refused, not split into two */
    char *text = malloc(9000);
    snprintf(text, 9000, "listen = a:1\nadmin_key = ");
    size_t n = strlen(text);
    memset(text + n, 'k', 5000);
    memcpy(text + n + 5000, "\nmax_events = 5\n", 17);
    refuse_file(text, 2, NULL, "too long");
    free(text);

    /* a missing file names itself */
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, FLAGS("--config", "/nonexistent/tandem.conf")), TD_EINVAL);
    assert_string_equal(err.path, "config");
    assert_non_null(strstr(err.message, "/nonexistent/tandem.conf"));
    assert_non_null(strstr(err.message, "cannot open config file"));
    td_config_release(&cfg);

    /* NUL bytes and binary junk are errors, not crashes */
    const char *path = write_file("bin.conf", "");
    FILE *f = fopen(path, "wb");
    fwrite("max_events = 5\0junk\n\x01\x02\xff=\xfe\n", 1, 27, f);
    fclose(f);
    td_config_init(&cfg);
    assert_int_equal(load(&cfg, &err, FLAGS("--config", path)), TD_EINVAL);
    assert_int_equal(err.line, 2);
    td_config_release(&cfg);
}

static void test_cross_checks(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };

    (void)state;
    refuse(FLAGS("--datastream", "no-equals"), "datastream", "CONFIGID=ORGID", "no-equals");
    refuse(FLAGS("--datastream", "=ORG"), "datastream", "CONFIGID=ORGID", NULL);
    refuse(FLAGS("--datastream", "cfg="), "datastream", "CONFIGID=ORGID", NULL);
    refuse(FLAGS("--tls-listen", "127.0.0.1:8443"), "tls_listen", "tls_cert", "tls_key");
    refuse(FLAGS("--tls-listen", "127.0.0.1:8443", "--tls-cert", "c.pem"), "tls_listen", NULL,
           NULL);

    td_config_init(&cfg);
    assert_int_equal(
        load(&cfg, &err,
             FLAGS("--datastream", "a=ORG-A", "--datastream", "b=ORG=B", "--tls-listen",
                   "127.0.0.1:8443", "--tls-cert", "c.pem", "--tls-key", "k.pem")),
        TD_OK);
    assert_string_equal(td_config_datastream_org(&cfg, "a"), "ORG-A");
    assert_string_equal(td_config_datastream_org(&cfg, "b"), "ORG=B");
    assert_null(td_config_datastream_org(&cfg, ""));
    assert_null(td_config_datastream_org(&cfg, "c"));
    td_config_release(&cfg);
}

static void test_set(void **state)
{
    td_config_t cfg;
    td_err_t err = { 0 };

    (void)state;
    td_config_init(&cfg);
    assert_int_equal(td_config_set(&cfg, "max_events", "12", &err), TD_OK);
    assert_int_equal(cfg.max_events, 12);
    assert_int_equal(td_config_set(&cfg, "max-events", "13", &err), TD_OK);
    assert_int_equal(cfg.max_events, 13);
    assert_int_equal(td_config_set(&cfg, "MAX_EVENTS", "14", &err), TD_EINVAL);
    assert_non_null(strstr(err.message, "unknown setting"));
    assert_int_equal(td_config_set(&cfg, "", "14", &err), TD_EINVAL);
    assert_int_equal(td_config_set(&cfg, "max_events", "x", NULL), TD_EINVAL); /* err optional */
    assert_int_equal(cfg.max_events, 13); /* a refused value changes nothing */
    assert_int_equal(td_config_set(&cfg, "data", "", &err), TD_OK);
    assert_string_equal(cfg.data, "");
    td_config_release(&cfg);
}

/* Captures what print(out) writes. */
static char *capture(void (*print)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    print(f);
    fclose(f);
    /* a copy: gcc 12 takes text for a local once its address was passed */
    char *copy = strdup(text);
    free(text);
    return copy;
}

static void test_help_and_reference(void **state)
{
    static const char *const flags[][2] = {
        { "--listen", "TANDEM_LISTEN" },
        { "--tls-listen", "TANDEM_TLS_LISTEN" },
        { "--tls-cert", "TANDEM_TLS_CERT" },
        { "--tls-key", "TANDEM_TLS_KEY" },
        { "--data", "TANDEM_DATA" },
        { "--config", "TANDEM_CONFIG" },
        { "--store", "TANDEM_STORE" },
        { "--admin-key", "TANDEM_ADMIN_KEY" },
        { "--datastream", "TANDEM_DATASTREAM" },
        { "--clock", "TANDEM_CLOCK" },
        { "--log-level", "TANDEM_LOG_LEVEL" },
        { "--public-url", "TANDEM_PUBLIC_URL" },
        { "--web-dir", "TANDEM_WEB_DIR" },
        { "--sync", "TANDEM_SYNC" },
        { "--threads", "TANDEM_THREADS" },
        { "--max-body", "TANDEM_MAX_BODY" },
        { "--max-events", "TANDEM_MAX_EVENTS" },
        { "--max-items", "TANDEM_MAX_ITEMS" },
        { "--viewed-max", "TANDEM_VIEWED_MAX" },
        { "--commit-max-events", "TANDEM_COMMIT_MAX_EVENTS" },
        { "--cookie-days", "TANDEM_COOKIE_DAYS" },
    };
    char *help = capture(td_config_print_help), *md = capture(td_config_print_markdown);

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(flags); i++) {
        char cell[80];
        if (!strstr(help, flags[i][0]) || !strstr(help, flags[i][1])) {
            fail_msg("--help lacks %s / %s", flags[i][0], flags[i][1]);
        }
        snprintf(cell, sizeof(cell), "| `%s` | `%s` |", flags[i][0], flags[i][1]);
        if (!strstr(md, cell)) {
            fail_msg("the reference lacks %s", cell);
        }
    }
    assert_non_null(strstr(help, "default 4194304 (1024..268435456)"));
    assert_non_null(strstr(help, "real (one of real|virtual)"));
    /* every table row of the reference has its five cells */
    int rows = 0;
    for (const char *p = strstr(md, "|---|"); p && (p = strstr(p, "\n| `")) != NULL; p++) {
        rows++;
    }
    assert_true(rows >= (int)TD_ARRAY_LEN(flags)); /* more settings come with more modules */
    free(help);
    free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_list_skips_empty_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_reference, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
