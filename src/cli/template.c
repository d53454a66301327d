/* tandem template: checks templates for syntax errors (as saving one over the
 * API would) and renders one against a JSON file, for writing and testing
 * templates without a running server. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "message/message.h"
#include "util/buf.h"
#include "util/banned.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tandem template check FILE...\n"
            "       tandem template render FILE --data JSON_FILE [--text]\n"
            "\n"
            "check   compiles each template; errors are printed as FILE:LINE:COLUMN: message.\n"
            "        A .json file is a template manifest: its \"subject\", \"preheader\" and\n"
            "        \"fromName\" are checked. Exit status 0 when all are valid, 1 otherwise.\n"
            "render  renders FILE with the context in JSON_FILE (an object with \"profile\",\n"
            "        \"context\"...) and prints the result; --text prints the plain-text\n"
            "        version instead. Missing values and helper errors are listed on\n"
            "        stderr as FILE:LINE:COLUMN: lines.\n"
            "\n"
            "The language is described in docs/templates.md.\n");
}

/* Reads a whole file, refusing more than max bytes. */
static int read_file(const char *path, size_t max, td_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    char chunk[8192];
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b->len + n > max) {
            fprintf(stderr, "%s: larger than %zu bytes\n", path, max);
            fclose(f);
            return -1;
        }
        td_buf_add(b, chunk, n);
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: read failed: %s\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    fclose(f);
    td_buf_grow(b, 0);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int check_text(const char *file, const char *field, const char *text, size_t len)
{
    td_template_t *tpl = NULL;
    td_err_t err = { 0 };

    if (td_template_compile(text, len, &tpl, &err) != TD_OK) {
        if (field) {
            fprintf(stderr, "%s: \"%s\": %d:%d: %s\n", file, field, err.line, err.column,
                    err.message);
        } else {
            fprintf(stderr, "%s:%d:%d: %s\n", file, err.line, err.column, err.message);
        }
        return -1;
    }
    td_template_free(tpl);
    return 0;
}

/* A manifest: {"subject": "...", "fromName": "...", "html": "file", ...}. */
static int check_manifest(const char *file)
{
    static const char *const fields[] = { "subject", "preheader", "fromName" };
    json_error_t jerr;
    json_t *m = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;

    if (m == NULL) {
        fprintf(stderr, "%s:%d:%d: %s\n", file, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(m)) {
        fprintf(stderr, "%s: a template manifest must be a JSON object\n", file);
        json_decref(m);
        return -1;
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(fields); i++) {
        json_t *v = json_object_get(m, fields[i]);
        if (v == NULL) {
            continue;
        }
        if (!json_is_string(v)) {
            fprintf(stderr, "%s: \"%s\" must be a string\n", file, fields[i]);
            rc = -1;
            continue;
        }
        if (check_text(file, fields[i], json_string_value(v), json_string_length(v)) != 0) {
            rc = -1;
        }
    }
    json_decref(m);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    int bad = 0;

    if (argc == 0) {
        usage(stderr);
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        int rc;
        if (ends_with(argv[i], ".json")) {
            rc = check_manifest(argv[i]);
        } else {
            td_buf_t b = TD_BUF_INIT;
            rc = read_file(argv[i], TD_TEMPLATE_MAX_SOURCE, &b);
            if (rc == 0) {
                rc = check_text(argv[i], NULL, b.data, b.len);
            }
            td_buf_release(&b);
        }
        if (rc == 0) {
            printf("%s: ok\n", argv[i]);
        } else {
            bad++;
        }
    }
    return bad ? 1 : 0;
}

static int cmd_render(int argc, char **argv)
{
    const char *file = NULL, *data = NULL;
    bool text = false;
    td_buf_t src = TD_BUF_INIT, out = TD_BUF_INIT;
    td_template_t *tpl = NULL;
    td_template_report_t report;
    td_err_t err = { 0 };
    json_error_t jerr;
    json_t *ctx = NULL;
    int status = 1, rc;

    td_template_report_init(&report);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            data = argv[++i];
        } else if (strncmp(argv[i], "--data=", 7) == 0) {
            data = argv[i] + 7;
        } else if (strcmp(argv[i], "--text") == 0) {
            text = true;
        } else if (argv[i][0] != '-' && file == NULL) {
            file = argv[i];
        } else {
            fprintf(stderr, "tandem template render: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (file == NULL || data == NULL) {
        usage(stderr);
        return 2;
    }
    if (read_file(file, TD_TEMPLATE_MAX_SOURCE, &src) != 0) {
        goto out;
    }
    if (td_template_compile(src.data, src.len, &tpl, &err) != TD_OK) {
        fprintf(stderr, "%s:%d:%d: %s\n", file, err.line, err.column, err.message);
        goto out;
    }
    ctx = json_load_file(data, JSON_REJECT_DUPLICATES, &jerr);
    if (ctx == NULL) {
        fprintf(stderr, "%s:%d:%d: %s\n", data, jerr.line, jerr.column, jerr.text);
        goto out;
    }
    rc = td_template_render(tpl, ctx, &out, &report);
    if (text) {
        td_buf_t plain = TD_BUF_INIT;
        td_html_to_text(out.data, out.len, &plain);
        fwrite(plain.data, 1, plain.len, stdout);
        td_buf_release(&plain);
    } else {
        fwrite(out.data, 1, out.len, stdout);
    }
    fflush(stdout);
    for (int i = 0; i < report.n_missing; i++) {
        fprintf(stderr, "%s:%d:%d: missing value \"%s\"\n", file, report.missing[i].line,
                report.missing[i].column, report.missing[i].text);
    }
    for (int i = 0; i < report.n_errors; i++) {
        fprintf(stderr, "%s:%d:%d: error: %s\n", file, report.errors[i].line,
                report.errors[i].column, report.errors[i].text);
    }
    status = rc == TD_OK ? 0 : 1;
out:
    json_decref(ctx);
    td_template_report_release(&report);
    td_template_free(tpl);
    td_buf_release(&src);
    td_buf_release(&out);
    return status;
}

int td_cli_template(int argc, char **argv)
{
    if (argc == 0 || td_cli_wants_help(argc, argv)) {
        usage(argc == 0 ? stderr : stdout);
        return argc == 0 ? 2 : 0;
    }
    if (strcmp(argv[0], "check") == 0) {
        return cmd_check(argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "render") == 0) {
        return cmd_render(argc - 1, argv + 1);
    }
    fprintf(stderr, "tandem template: unknown subcommand \"%s\"\n", argv[0]);
    usage(stderr);
    return 2;
}
