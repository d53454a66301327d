/* The template engine: the table tests in tests/data/template/ (*.test files) (the
 * language case by case), then limits, reports, nasty input and the
 * plain-text converter.
 *
 * A .test file holds cases; each starts with a line "=== name" followed by
 * sections, each introduced by a line "--- <section>":
 *   template  the template text (required)
 *   context   JSON (default {})
 *   expected  the rendered output
 *   missing   the report's missing paths, one "LINE:COLUMN: path" per line
 *   errors    the report's errors, one "LINE:COLUMN: message" per line
 *   error     instead of expected: the compile error, "LINE:COLUMN: message"
 * A section's text is its lines joined by "\n"; empty lines at its end are
 * dropped, unless the section is closed by a line "--- end" (so to expect
 * one trailing newline, end the section with an empty line and "--- end").
 * Absent missing and errors sections mean "none". Lines before the first
 * case are comments. The directory is found from this file's path, or from
 * TD_TEMPLATE_TESTS. */
#include "test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"

/* ---- table tests ---- */

enum { S_TEMPLATE, S_CONTEXT, S_EXPECTED, S_MISSING, S_ERRORS, S_ERROR, S_COUNT };
static const char *const section_names[S_COUNT] = { "template", "context", "expected",
                                                    "missing",  "errors",  "error" };

typedef struct tcase {
    char name[200];
    td_buf_t sec[S_COUNT];
    bool has[S_COUNT];
    int lines[S_COUNT];
    bool ended[S_COUNT]; /* closed by "--- end": keep trailing empty lines */
} tcase_t;

static char *data_dir(void)
{
    const char *env = getenv("TD_TEMPLATE_TESTS");
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    char *dir;

    if (env && *env) {
        return strdup(env);
    }
    /* __FILE__ is tests/unit/message/test_template.c, relative to the
     * directory make ran in, or absolute */
    size_t n = slash ? (size_t)(slash - file) : 0;
    dir = malloc(n + 64);
    snprintf(dir, n + 64, "%.*s%s../../data/template", (int)n, file, n ? "/" : "");
    return dir;
}

static void case_reset(tcase_t *c)
{
    for (int i = 0; i < S_COUNT; i++) {
        td_buf_release(&c->sec[i]);
        c->has[i] = false;
        c->lines[i] = 0;
        c->ended[i] = false;
    }
    c->name[0] = '\0';
}

static const char *sec(const tcase_t *c, int i)
{
    return c->sec[i].data ? c->sec[i].data : "";
}

static void notes_text(const td_template_note_t *notes, int n, td_buf_t *out)
{
    for (int i = 0; i < n; i++) {
        td_buf_addf(out, "%s%d:%d: %s", i ? "\n" : "", notes[i].line, notes[i].column,
                    notes[i].text);
    }
    td_buf_grow(out, 0);
}

static void trim_sections(tcase_t *c)
{
    for (int i = 0; i < S_COUNT; i++) {
        while (!c->ended[i] && c->sec[i].len > 0 && c->sec[i].data[c->sec[i].len - 1] == '\n') {
            c->sec[i].data[--c->sec[i].len] = '\0';
        }
    }
}

static int run_case(const char *file, tcase_t *c)
{
    td_template_t *tpl = NULL;
    td_err_t err = { 0 };
    int rc;

    trim_sections(c);
    rc = td_template_compile(sec(c, S_TEMPLATE), c->sec[S_TEMPLATE].len, &tpl, &err);
    int bad = 0;
    char got_err[400];

    if (c->has[S_ERROR]) {
        snprintf(got_err, sizeof(got_err), "%d:%d: %s", err.line, err.column, err.message);
        if (rc == TD_OK || strcmp(got_err, sec(c, S_ERROR)) != 0) {
            fprintf(stderr, "%s: %s: compile error\n  want: %s\n  got:  %s\n", file, c->name,
                    sec(c, S_ERROR), rc == TD_OK ? "(compiled)" : got_err);
            bad = 1;
        }
        td_template_free(tpl);
        return bad;
    }
    if (rc != TD_OK) {
        fprintf(stderr, "%s: %s: does not compile: %d:%d: %s\n", file, c->name, err.line,
                err.column, err.message);
        return 1;
    }
    json_error_t jerr;
    json_t *ctx = json_loads(c->has[S_CONTEXT] ? sec(c, S_CONTEXT) : "{}", JSON_ALLOW_NUL, &jerr);
    if (ctx == NULL) {
        fprintf(stderr, "%s: %s: bad context JSON: %s\n", file, c->name, jerr.text);
        td_template_free(tpl);
        return 1;
    }
    td_buf_t out = TD_BUF_INIT, missing = TD_BUF_INIT, errors = TD_BUF_INIT;
    td_template_report_t rep;
    td_buf_grow(&out, 0);
    td_template_render(tpl, ctx, &out, &rep);
    notes_text(rep.missing, rep.n_missing, &missing);
    notes_text(rep.errors, rep.n_errors, &errors);
    if (strcmp(out.data, sec(c, S_EXPECTED)) != 0) {
        fprintf(stderr, "%s: %s: output\n  want: [%s]\n  got:  [%s]\n", file, c->name,
                sec(c, S_EXPECTED), out.data);
        bad = 1;
    }
    if (strcmp(missing.data, sec(c, S_MISSING)) != 0) {
        fprintf(stderr, "%s: %s: missing\n  want: [%s]\n  got:  [%s]\n", file, c->name,
                sec(c, S_MISSING), missing.data);
        bad = 1;
    }
    if (strcmp(errors.data, sec(c, S_ERRORS)) != 0) {
        fprintf(stderr, "%s: %s: errors\n  want: [%s]\n  got:  [%s]\n", file, c->name,
                sec(c, S_ERRORS), errors.data);
        bad = 1;
    }
    td_buf_release(&out);
    td_buf_release(&missing);
    td_buf_release(&errors);
    td_template_report_release(&rep);
    json_decref(ctx);
    td_template_free(tpl);
    return bad;
}

/* Runs every case of one file; returns the number of failures. */
static int run_file(const char *path, int *n_cases)
{
    FILE *f = fopen(path, "rb");
    tcase_t c;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int cur = -1, failures = 0;
    bool in_case = false;

    assert_non_null(f);
    memset(&c, 0, sizeof(c));
    for (;;) {
        n = getline(&line, &cap, f);
        bool eof = n < 0;
        if (!eof && n > 0 && line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        if (eof || strncmp(line, "=== ", 4) == 0) {
            if (in_case) {
                if (!c.has[S_TEMPLATE] || (!c.has[S_EXPECTED] && !c.has[S_ERROR])) {
                    fprintf(stderr, "%s: %s: needs template and expected or error\n", path, c.name);
                    failures++;
                } else {
                    failures += run_case(path, &c);
                }
                (*n_cases)++;
            }
            if (eof) {
                break;
            }
            case_reset(&c);
            snprintf(c.name, sizeof(c.name), "%s", line + 4);
            in_case = true;
            cur = -1;
            continue;
        }
        if (in_case && strcmp(line, "--- end") == 0) {
            if (cur >= 0) {
                c.ended[cur] = true;
            }
            cur = -1;
            continue;
        }
        if (in_case && strncmp(line, "--- ", 4) == 0) {
            cur = -1;
            for (int i = 0; i < S_COUNT; i++) {
                if (strcmp(line + 4, section_names[i]) == 0) {
                    cur = i;
                }
            }
            if (cur < 0) {
                fprintf(stderr, "%s: %s: unknown section \"%s\"\n", path, c.name, line + 4);
                failures++;
            } else {
                c.has[cur] = true;
                c.lines[cur] = 0;
                td_buf_reset(&c.sec[cur]);
                td_buf_grow(&c.sec[cur], 0);
            }
            continue;
        }
        if (in_case && cur >= 0) {
            if (c.lines[cur]++ > 0) {
                td_buf_addc(&c.sec[cur], '\n');
            }
            td_buf_add(&c.sec[cur], line, (size_t)n);
        }
    }
    free(line);
    fclose(f);
    case_reset(&c);
    return failures;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_table(void **state)
{
    char *dir = data_dir();
    DIR *d = opendir(dir);
    struct dirent *e;
    char *names[256];
    int n = 0, failures = 0, cases = 0;

    (void)state;
    if (d == NULL) {
        fprintf(stderr, "cannot open %s (set TD_TEMPLATE_TESTS)\n", dir);
    }
    assert_non_null(d);
    while ((e = readdir(d)) != NULL && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".test") == 0) {
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_names);
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        failures += run_file(path, &cases);
        free(names[i]);
    }
    free(dir);
    fprintf(stderr, "template table tests: %d files, %d cases, %d failures\n", n, cases, failures);
    assert_true(n > 0);
    assert_int_equal(failures, 0);
}

/* ---- helpers for the C tests ---- */

static td_template_t *compile_ok(const char *text)
{
    td_template_t *tpl = NULL;
    td_err_t err = { 0 };

    if (td_template_compile(text, strlen(text), &tpl, &err) != TD_OK) {
        fprintf(stderr, "compile failed: %d:%d: %s\n", err.line, err.column, err.message);
    }
    assert_non_null(tpl);
    return tpl;
}

static char *render(const char *text, const char *context, int *rc, td_template_report_t *rep)
{
    td_template_t *tpl = compile_ok(text);
    json_t *ctx = json_loads(context, 0, NULL);
    td_buf_t out = TD_BUF_INIT;
    int r;

    assert_non_null(ctx);
    r = td_template_render(tpl, ctx, &out, rep);
    if (rc) {
        *rc = r;
    }
    json_decref(ctx);
    td_template_free(tpl);
    return td_buf_detach(&out);
}

/* ---- limits ---- */

static void test_source_limit(void **state)
{
    size_t n = TD_TEMPLATE_MAX_SOURCE + 1;
    char *big = malloc(n);
    td_template_t *tpl = NULL;
    td_err_t err = { 0 };

    (void)state;
    memset(big, 'a', n);
    assert_int_equal(td_template_compile(big, n, &tpl, &err), TD_ETOOBIG);
    assert_null(tpl);
    assert_int_equal(td_template_compile(big, n - 1, &tpl, &err), TD_OK);
    td_template_free(tpl);
    free(big);
}

static void test_depth_limit(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    td_template_t *tpl = NULL;
    td_err_t err = { 0 };

    (void)state;
    for (int i = 0; i < TD_TEMPLATE_MAX_DEPTH; i++) {
        td_buf_adds(&b, "{{#if a}}");
    }
    for (int i = 0; i < TD_TEMPLATE_MAX_DEPTH; i++) {
        td_buf_adds(&b, "{{/if}}");
    }
    assert_int_equal(td_template_compile(b.data, b.len, &tpl, &err), TD_OK);
    td_template_free(tpl);
    td_buf_reset(&b);
    for (int i = 0; i <= TD_TEMPLATE_MAX_DEPTH; i++) {
        td_buf_adds(&b, "{{#if a}}");
    }
    assert_int_equal(td_template_compile(b.data, b.len, &tpl, &err), TD_EINVAL);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 9 * TD_TEMPLATE_MAX_DEPTH + 1);
    assert_string_equal(err.message, "blocks nested deeper than 32");
    td_buf_reset(&b);
    /* expressions: ((((...)))) and not not not ... */
    td_buf_adds(&b, "{{");
    for (int i = 0; i < 100; i++) {
        td_buf_adds(&b, "(lower ");
    }
    td_buf_adds(&b, "x");
    for (int i = 0; i < 100; i++) {
        td_buf_adds(&b, ")");
    }
    td_buf_adds(&b, "}}");
    assert_int_equal(td_template_compile(b.data, b.len, &tpl, &err), TD_EINVAL);
    assert_string_equal(err.message, "expression nested deeper than 32");
    td_buf_reset(&b);
    td_buf_adds(&b, "{%= ");
    for (int i = 0; i < 1000; i++) {
        td_buf_adds(&b, "not ");
    }
    td_buf_adds(&b, "x %}");
    assert_int_equal(td_template_compile(b.data, b.len, &tpl, &err), TD_EINVAL);
    assert_string_equal(err.message, "expression nested deeper than 32");
    td_buf_release(&b);
}

/* a long {{else if}} chain renders without deep recursion */
static void test_long_else_if_chain(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    td_template_report_t rep;
    int rc;

    (void)state;
    td_buf_adds(&b, "{{#if x.a0}}0");
    for (int i = 1; i < 20000; i++) {
        td_buf_addf(&b, "{{else if x.a%d}}%d", i, i);
    }
    td_buf_adds(&b, "{{else}}none{{/if}}");
    char *out = render(b.data, "{\"x\":{\"a19999\":true}}", &rc, &rep);
    assert_int_equal(rc, TD_OK);
    assert_string_equal(out, "19999");
    assert_int_equal(rep.n_missing, 0);
    free(out);
    td_template_report_release(&rep);
    td_buf_release(&b);
}

static void test_output_limit(void **state)
{
    td_template_report_t rep;
    int rc;
    /* 2^22 bytes of repetition: nested loops over a 64-element list */
    const char *tpl = "{{#each l}}{{#each ../l}}{{#each ../../l}}{{#each ../../../l}}"
                      "0123456789abcdef{{/each}}{{/each}}{{/each}}{{/each}}";
    td_buf_t ctx = TD_BUF_INIT;

    (void)state;
    td_buf_adds(&ctx, "{\"l\":[");
    for (int i = 0; i < 64; i++) {
        td_buf_addf(&ctx, "%s%d", i ? "," : "", i);
    }
    td_buf_adds(&ctx, "]}");
    char *out = render(tpl, ctx.data, &rc, &rep);
    assert_int_equal(rc, TD_ETOOBIG);
    assert_true(rep.truncated);
    assert_true(strlen(out) <= TD_TEMPLATE_MAX_OUTPUT);
    assert_int_equal(rep.n_errors, 1);
    free(out);
    td_template_report_release(&rep);
    td_buf_release(&ctx);
}

static void test_work_limit(void **state)
{
    td_template_report_t rep;
    int rc;
    /* no output at all, but 64^4 iterations */
    const char *tpl = "{{#each l}}{{#each ../l}}{{#each ../../l}}{{#each ../../../l}}"
                      "{{#if x}}{{/if}}{{/each}}{{/each}}{{/each}}{{/each}}";
    td_buf_t ctx = TD_BUF_INIT;

    (void)state;
    td_buf_adds(&ctx, "{\"l\":[");
    for (int i = 0; i < 64; i++) {
        td_buf_addf(&ctx, "%s%d", i ? "," : "", i);
    }
    td_buf_adds(&ctx, "]}");
    char *out = render(tpl, ctx.data, &rc, &rep);
    assert_int_equal(rc, TD_ETOOBIG);
    assert_true(rep.truncated);
    assert_string_equal(rep.errors[0].text,
                        "too much work (a loop over too much data?); render stopped");
    free(out);
    td_template_report_release(&rep);
    td_buf_release(&ctx);
}

static void test_report_limit(void **state)
{
    td_buf_t b = TD_BUF_INIT;
    td_template_report_t rep;

    (void)state;
    for (int i = 0; i < 300; i++) {
        td_buf_addf(&b, "{{m%d}}", i);
    }
    char *out = render(b.data, "{}", NULL, &rep);
    assert_int_equal(rep.n_missing, TD_TEMPLATE_MAX_NOTES);
    free(out);
    td_template_report_release(&rep);
    td_buf_release(&b);
}

/* ---- rendering without a report, appending, JSON report ---- */

static void test_appends_and_null_report(void **state)
{
    td_template_t *tpl = compile_ok("{{a}}-{{missing}}");
    json_t *ctx = json_pack("{s:s}", "a", "x");
    td_buf_t out = TD_BUF_INIT;

    (void)state;
    td_buf_adds(&out, "before:");
    assert_int_equal(td_template_render(tpl, ctx, &out, NULL), TD_OK);
    assert_int_equal(td_template_render(tpl, ctx, &out, NULL), TD_OK);
    assert_string_equal(out.data, "before:x-x-");
    td_buf_release(&out);
    json_decref(ctx);
    td_template_free(tpl);
}

static void test_report_json(void **state)
{
    td_template_report_t rep;
    char *out = render("{{a.b}}\n  {{formatCurrency x}}", "{\"x\":\"many\"}", NULL, &rep);
    json_t *j = td_template_report_to_json(&rep);
    char *s = json_dumps(j, JSON_COMPACT);

    (void)state;
    assert_string_equal(s, "{\"missing\":[{\"path\":\"a.b\",\"line\":1,\"column\":3}],"
                           "\"errors\":[{\"message\":\"formatCurrency: not a number\","
                           "\"line\":2,\"column\":5}],\"truncated\":false}");
    free(s);
    json_decref(j);
    free(out);
    td_template_report_release(&rep);
    td_template_report_release(NULL);
}

/* let replacing a list that an #each is walking keeps the old list alive */
static void test_let_while_iterating(void **state)
{
    td_template_report_t rep;
    char *out = render("{% let l = items %}{{#each l as |x|}}{% let l = 0 %}{{x.n}}{{/each}}{{l}}",
                       "{\"items\":[{\"n\":\"a\"},{\"n\":\"b\"}]}", NULL, &rep);

    (void)state;
    assert_string_equal(out, "ab0");
    free(out);
    td_template_report_release(&rep);
}

static void test_context_untouched(void **state)
{
    td_template_t *tpl = compile_ok("{% let a = items %}{% let b = a %}{{#with o}}{{x}}{{/with}}");
    json_t *ctx = json_loads("{\"items\":[1,2],\"o\":{\"x\":1}}", 0, NULL);
    json_t *copy = json_deep_copy(ctx);
    td_buf_t out = TD_BUF_INIT;

    (void)state;
    assert_int_equal(td_template_render(tpl, ctx, &out, NULL), TD_OK);
    assert_true(json_equal(ctx, copy));
    assert_int_equal(ctx->refcount, 1);
    assert_int_equal(json_object_get(ctx, "items")->refcount, 1);
    td_buf_release(&out);
    json_decref(ctx);
    json_decref(copy);
    td_template_free(tpl);
}

/* ---- nasty input ---- */

static void test_nasty_input(void **state)
{
    static const char *const bad[] = {
        "{{",
        "{{{",
        "{{#",
        "{{/",
        "{{!",
        "{{!--",
        "{%",
        "{%=",
        "{%#",
        "{% let",
        "{% let x",
        "{% let x =",
        "{{#if",
        "{{#each x as",
        "{{#each x as |",
        "{{#each x as |a b c|}}",
        "{{a.[b}}",
        "{{\"abc}}",
        "{{(}}",
        "{{)}}",
        "{{~}}",
        "{{else}}",
        "{{/if}}",
        "{%else%}",
        "{{^x}}",
        "{{> p}}",
        "{{#> p}}",
        "{{@foo}}",
        "{{@index}}",
        "{{../a}}",
        "{{a..b}}",
        "{{a.}}",
        "}}{{",
        "{%= a ?: %}",
        "{%= (a %}",
        "{%= f( %}",
        "{%= 1 + %}",
        "{{#with}}{{/with}}",
        "{{#if a}}{{else}}{{else}}{{/if}}",
        "{{#if a as |x|}}{{/if}}",
    };
    td_template_t *tpl = NULL;
    td_err_t err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        int rc = td_template_compile(bad[i], strlen(bad[i]), &tpl, &err);
        if (rc != TD_EINVAL) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
        }
        assert_int_equal(rc, TD_EINVAL);
        assert_null(tpl);
        assert_true(err.line >= 1 && err.column >= 1);
        assert_true(err.message[0] != '\0');
    }
    /* invalid UTF-8 and NUL */
    assert_int_equal(td_template_compile("ok\n  \xC3(", 7, &tpl, &err), TD_EINVAL);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 3);
    assert_string_equal(err.message, "invalid UTF-8");
    assert_int_equal(td_template_compile("a\0b", 3, &tpl, &err), TD_EINVAL);
    assert_string_equal(err.message, "NUL byte in template");
    /* empty template */
    assert_int_equal(td_template_compile("", 0, &tpl, &err), TD_OK);
    td_template_free(tpl);
    td_template_free(NULL);
}

/* every prefix of a real template either compiles or reports a position
 * inside the text */
static void test_every_prefix(void **state)
{
    const char *t = "Hi {{~ profile.name ~}}!\n{{#each items as |it i|}}{{i}} {{it.[0]}}"
                    "{{else if (gt x 1)}}{%= a ?: \"b\" %}{{else}}{{{raw}}}{{/each}}"
                    "{% let n = 1 + 2 * (3 - x) %}{%#if n >= 2 and not b%}{{! c }}{%/if%}"
                    "{{formatCurrency 1 \"EUR\" locale=\"de-DE\"}}{{!-- }} --}}";
    td_template_t *tpl;
    td_err_t err;
    size_t len = strlen(t);

    (void)state;
    for (size_t n = 0; n <= len; n++) {
        memset(&err, 0, sizeof(err));
        tpl = NULL;
        if (td_template_compile(t, n, &tpl, &err) == TD_OK) {
            td_buf_t out = TD_BUF_INIT;
            json_t *ctx = json_loads("{\"items\":[[1]],\"x\":2}", 0, NULL);
            assert_int_equal(td_template_render(tpl, ctx, &out, NULL), TD_OK);
            td_buf_release(&out);
            json_decref(ctx);
            td_template_free(tpl);
        } else {
            assert_true(err.line >= 1 && err.line <= 2);
            assert_true(err.column >= 1);
        }
    }
}

/* ---- the shipped templates render cleanly with their sample data ---- */

static char *repo_path(const char *rel)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    size_t n = slash ? (size_t)(slash - file) : 0;
    size_t cap = n + strlen(rel) + 16;
    char *p = malloc(cap);

    snprintf(p, cap, "%.*s%s../../../%s", (int)n, file, n ? "/" : "", rel);
    return p;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    td_buf_t b = TD_BUF_INIT;
    char chunk[4096];
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
    }
    assert_non_null(f);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        td_buf_add(&b, chunk, n);
    }
    fclose(f);
    *len = b.len;
    return td_buf_detach(&b);
}

static char *render_checked(const char *text, size_t len, const json_t *ctx)
{
    td_template_t *tpl = NULL;
    td_err_t err = { 0 };
    td_buf_t out = TD_BUF_INIT;
    td_template_report_t rep;

    if (td_template_compile(text, len, &tpl, &err) != TD_OK) {
        fprintf(stderr, "%d:%d: %s\n", err.line, err.column, err.message);
    }
    assert_non_null(tpl);
    assert_int_equal(td_template_render(tpl, ctx, &out, &rep), TD_OK);
    for (int i = 0; i < rep.n_missing; i++) {
        fprintf(stderr, "missing %d:%d %s\n", rep.missing[i].line, rep.missing[i].column,
                rep.missing[i].text);
    }
    for (int i = 0; i < rep.n_errors; i++) {
        fprintf(stderr, "error %d:%d %s\n", rep.errors[i].line, rep.errors[i].column,
                rep.errors[i].text);
    }
    assert_int_equal(rep.n_missing, 0);
    assert_int_equal(rep.n_errors, 0);
    td_template_report_release(&rep);
    td_template_free(tpl);
    return td_buf_detach(&out);
}

static void check_shipped(const char *name, const char *const *want_html, const char *want_subject)
{
    char rel[128], *path;
    size_t len;
    json_error_t jerr;

    snprintf(rel, sizeof(rel), "templates/%s.json", name);
    path = repo_path(rel);
    json_t *manifest = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    free(path);
    assert_non_null(manifest);
    path = repo_path(json_string_value(json_object_get(manifest, "sample")));
    json_t *ctx = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    free(path);
    assert_non_null(ctx);

    snprintf(rel, sizeof(rel), "templates/%s",
             json_string_value(json_object_get(manifest, "html")));
    path = repo_path(rel);
    char *src = read_all(path, &len);
    free(path);
    char *html = render_checked(src, len, ctx);
    assert_true(strncmp(html, "<!DOCTYPE html>\n", 16) == 0);
    for (int i = 0; want_html[i]; i++) {
        if (strstr(html, want_html[i]) == NULL) {
            fprintf(stderr, "%s: \"%s\" not in the output\n", name, want_html[i]);
        }
        assert_non_null(strstr(html, want_html[i]));
    }
    td_buf_t text = TD_BUF_INIT;
    td_html_to_text(html, strlen(html), &text);
    assert_non_null(strstr(text.data, "Unsubscribe (https://t.shop.example.com/u/"));
    assert_null(strstr(text.data, "<"));
    assert_null(strstr(text.data, "{{"));

    const char *subject = json_string_value(json_object_get(manifest, "subject"));
    char *subj = render_checked(subject, strlen(subject), ctx);
    assert_string_equal(subj, want_subject);
    const char *from = json_string_value(json_object_get(manifest, "fromName"));
    char *from_out = render_checked(from, strlen(from), ctx);
    assert_string_equal(from_out, "Northwind Outfitters");

    free(from_out);
    free(subj);
    td_buf_release(&text);
    free(html);
    free(src);
    json_decref(ctx);
    json_decref(manifest);
}

static void test_shipped_templates(void **state)
{
    static const char *const cart[] = {
        "Jane, you left something behind",
        "Alpine Down Parka",
        "Quantity: 2",
        "$59.90 each",
        "$119.80",
        "$308.80",
        "https://shop.example.com/img/C-101.jpg",
        "alt=\"Alpine Down Parka\"",
        "https://shop.example.com/p/S-204",
        "You might also like",
        "Waterproof Trail Boots",
        "https://t.shop.example.com/u/8f2c1a?sig&#x3D;Zq3k",
        "https://t.shop.example.com/o/8f2c1a.gif",
        "Jane, your cart is saved: 3 items waiting, $308.80 in total",
        NULL
    };
    static const char *const browse[] = { "Oliver, still thinking it over?",
                                          "Heritage Wool Overcoat",
                                          "\xC2\xA3"
                                          "249.00",
                                          "only 3 left",
                                          "\xC2\xA3"
                                          "1,189.00",
                                          "Lambswool Scarf &amp; Glove Gift Set",
                                          "https://shop.example.com/p/V-503",
                                          "Unsubscribe",
                                          NULL };

    (void)state;
    check_shipped("cart-abandonment", cart,
                  "Jane, your cart is waiting: Alpine Down Parka and more");
    check_shipped("browse-abandonment", browse, "Still thinking about the Heritage Wool Overcoat?");
}

/* ---- plain text from HTML ---- */

static void html_text(const char *html, const char *want)
{
    td_buf_t out = TD_BUF_INIT;

    td_html_to_text(html, strlen(html), &out);
    td_buf_grow(&out, 0);
    if (strcmp(out.data, want) != 0) {
        fprintf(stderr, "html: %s\nwant: [%s]\ngot:  [%s]\n", html, want, out.data);
    }
    assert_string_equal(out.data, want);
    td_buf_release(&out);
}

static void test_html_to_text(void **state)
{
    (void)state;
    html_text("", "");
    html_text("<p>Hello   <b>Jane</b>,</p><p>second\nparagraph</p>",
              "Hello Jane,\n\nsecond paragraph\n");
    html_text("<a href=\"https://x.io/a?b=1&amp;c=2\">Shop now</a>",
              "Shop now (https://x.io/a?b=1&c=2)\n");
    html_text("<a href=\"https://x.io\">https://x.io</a>", "https://x.io\n");
    html_text("<a href=\"mailto:a@x.io\">a@x.io</a>", "a@x.io\n");
    html_text("<a href=\"https://x.io\"><img src=\"a.png\" alt=\"Coat\"></a>text", "text\n");
    html_text("<ul><li>one</li><li>two</li></ul><ol><li>a</li><li>b</li></ol>",
              "- one\n- two\n1. a\n2. b\n");
    html_text("<head><title>T</title><style>p{color:red}</style></head><body>x</body>", "x\n");
    html_text("<div style=\"display: NONE;max-height:0\">preheader <div>inner</div> more</div>"
              "<div>body</div>",
              "body\n");
    html_text("<!--[if mso]><table><tr><td>mso</td></tr></table><![endif]-->after", "after\n");
    html_text("a &lt; b &amp;&amp; c &gt; d &eacute;&#233;&#xE9; &euro;&nbsp;5 &bogus; &amp",
              "a < b && c > d \xC3\xA9\xC3\xA9\xC3\xA9 \xE2\x82\xAC\xC2\xA0"
              "5 &bogus; &amp\n");
    html_text("line<br>break<br/><br>twice", "line\nbreak\n\ntwice\n");
    html_text("<table><tr><td>A</td><td>B</td></tr><tr><td>C</td><td>D</td></tr></table>",
              "A B\nC D\n");
    html_text("<h1>Title</h1>text<hr>end", "Title\n\ntext\n--------\nend\n");
    html_text("<pre>  keep\n   this</pre>", "  keep\n   this\n");
    html_text("1 < 2 and <3 > 2 <", "1 < 2 and <3 > 2 <\n");
    html_text("<p>unclosed <a href='x'>link", "unclosed link (x)\n");
    html_text("<script>alert('<p>')</script>ok", "ok\n");
    html_text("x&#0;y&#xD800;z&#1114112;", "x\xEF\xBF\xBDy\xEF\xBF\xBDz\xEF\xBF\xBD\n");
    html_text("<div hidden>h</div><img src=x alt=y>v", "v\n");
    html_text("<p>a&zwnj;b</p>", "ab\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_source_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_long_else_if_chain),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_work_limit),
        cmocka_unit_test(test_report_limit),
        cmocka_unit_test(test_appends_and_null_report),
        cmocka_unit_test(test_report_json),
        cmocka_unit_test(test_let_while_iterating),
        cmocka_unit_test(test_context_untouched),
        cmocka_unit_test(test_nasty_input),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_shipped_templates),
        cmocka_unit_test(test_html_to_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
