/* tandem import catalog FILE: imports a product feed into the store of the
 * configured data directory (or --store), streaming the file in chunks, with
 * a progress bar on a terminal and a one-line summary. A server running on
 * the same store picks the changes up within catalog_poll_ms (it polls the
 * store's catalog sequence number). */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/banned.h"

#define SHOW_ERRORS 20

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: tandem import catalog FILE [options] [settings]\n\n"
            "Imports a product feed into the catalog, in one transaction: rows that are\n"
            "rejected are listed with their line, column and reason; the others are\n"
            "imported. FILE may be - for standard input.\n\n"
            "options:\n"
            "  --format F         target-csv, google-xml, google-tsv or json (default: from\n"
            "                     the file name: .csv .xml/.rss/.atom .tsv/.txt .json)\n"
            "  --replace          the feed is the whole catalog: entities missing from it\n"
            "                     are deleted (or see --missing); rows replace whole entities\n"
            "  --missing M        with --replace: delete (default) or out-of-stock (keep\n"
            "                     them with inventory 0)\n"
            "  --environment N    Target environment id for entities without one; with\n"
            "                     --replace, only this environment's entities are replaced\n"
            "  --quiet            no progress bar\n\n"
            "Without --replace, rows update the entities they name: empty cells leave\n"
            "values as they are, categories are added to the ones known.\n\n"
            "exit status: 0 all rows imported, 3 some rows rejected (the others imported),\n"
            "1 nothing imported (unreadable feed, bad options, store failure).\n\n"
            "settings (as for tandem serve, e.g. --data DIR, --store URL, --config FILE):\n");
    td_config_print_help(out);
}

typedef struct reader {
    FILE *f;
    const char *name;
    int64_t size, done;
    int64_t rows;
    int64_t t0_us, last_draw_us;
    bool bar;
} reader_t;

static void draw(reader_t *r, bool final)
{
    int64_t now = td_mono_us();
    double secs = (double)(now - r->t0_us) / 1e6;
    char bar[31];
    int pct;

    if (!r->bar || (!final && now - r->last_draw_us < 100000)) {
        return;
    }
    r->last_draw_us = now;
    pct = r->size > 0 ? (int)(r->done * 100 / r->size) : 0;
    for (int i = 0; i < 30; i++) {
        bar[i] = i < pct * 30 / 100 ? '#' : '.';
    }
    bar[30] = '\0';
    if (r->size > 0) {
        fprintf(stderr, "\r%3d%% [%s] %lld rows, %.0f rows/s  ", pct, bar, (long long)r->rows,
                secs > 0 ? (double)r->rows / secs : 0.0);
    } else {
        fprintf(stderr, "\r%lld rows, %.0f rows/s  ", (long long)r->rows,
                secs > 0 ? (double)r->rows / secs : 0.0);
    }
    fflush(stderr);
}

static long read_file(void *ctx, char *buf, size_t cap)
{
    reader_t *r = ctx;
    size_t n = fread(buf, 1, cap, r->f);

    if (n == 0 && ferror(r->f)) {
        fprintf(stderr, "\ntandem import: read(\"%s\") failed: %s\n", r->name, strerror(errno));
        return TD_EIO;
    }
    r->done += (int64_t)n;
    draw(r, false);
    return (long)n;
}

static void on_progress(void *ctx, int64_t rows)
{
    reader_t *r = ctx;

    r->rows = rows;
    draw(r, false);
}

/* Splits argv into this command's options and the settings for
 * td_config_load (every setting takes a value). */
static int parse_args(int argc, char **argv, const char **file, td_import_options_t *opt,
                      bool *quiet, int *cfg_argc, char **cfg_argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        size_t nlen = strcspn(a, "=");
        if (strncmp(a, "--", 2) != 0 || strcmp(a, "-") == 0) {
            if (*file) {
                fprintf(stderr, "tandem import: one FILE at a time (\"%s\"?)\n", a);
                return TD_EINVAL;
            }
            *file = a;
            continue;
        }
        if (strcmp(a, "--replace") == 0) {
            opt->mode = TD_IMPORT_REPLACE;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            *quiet = true;
            continue;
        }
        if (a[nlen] == '=') {
            v = a + nlen + 1;
        } else if (i + 1 < argc) {
            v = argv[i + 1];
        }
        bool own = strncmp(a, "--format", nlen) == 0 && nlen == 8;
        bool own_missing = strncmp(a, "--missing", nlen) == 0 && nlen == 9;
        bool own_env = strncmp(a, "--environment", nlen) == 0 && nlen == 13;
        if (!own && !own_missing && !own_env) {
            cfg_argv[(*cfg_argc)++] = argv[i];
            if (a[nlen] != '=' && i + 1 < argc) {
                cfg_argv[(*cfg_argc)++] = argv[++i];
            }
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "tandem import: %.*s needs a value\n", (int)nlen, a);
            return TD_EINVAL;
        }
        if (a[nlen] != '=') {
            i++;
        }
        if (own && (opt->format = td_feed_format_parse(v)) == 0) {
            fprintf(stderr,
                    "tandem import: unknown format \"%s\" (target-csv, google-xml, google-tsv, "
                    "json)\n",
                    v);
            return TD_EINVAL;
        }
        if (own_missing) {
            if (strcmp(v, "delete") == 0) {
                opt->missing = TD_MISSING_DELETE;
            } else if (strcmp(v, "out-of-stock") == 0 || strcmp(v, "out_of_stock") == 0) {
                opt->missing = TD_MISSING_OUT_OF_STOCK;
            } else {
                fprintf(stderr, "tandem import: --missing takes delete or out-of-stock\n");
                return TD_EINVAL;
            }
        }
        if (own_env) {
            char *end;
            opt->environment = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0') {
                fprintf(stderr, "tandem import: --environment takes an integer id\n");
                return TD_EINVAL;
            }
        }
    }
    return TD_OK;
}

static void print_summary(const reader_t *r, const td_import_result_t *res, double secs)
{
    printf("%s: %lld rows in %.2f s (%.0f rows/s): %lld inserted, %lld updated, %lld unchanged, "
           "%lld rejected",
           r->name, (long long)res->rows, secs, secs > 0 ? (double)res->rows / secs : 0.0,
           (long long)res->inserted, (long long)res->updated, (long long)res->unchanged,
           (long long)res->rejected);
    if (res->deleted || res->out_of_stock) {
        printf(", %lld deleted, %lld marked out of stock", (long long)res->deleted,
               (long long)res->out_of_stock);
    }
    printf("\n");
    for (int i = 0; i < res->n_errors && i < SHOW_ERRORS; i++) {
        const td_err_t *e = &res->errors[i];
        fprintf(stderr, "%s:%d:%d: %s%s%s\n", r->name, e->line, e->column, e->path,
                e->path[0] ? ": " : "", e->message);
    }
    if (res->rejected > SHOW_ERRORS) {
        fprintf(stderr, "%s: ... and %lld more rejected rows\n", r->name,
                (long long)(res->rejected - SHOW_ERRORS));
    }
}

static bool log_level_given(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--log-level", 11) == 0 || strncmp(argv[i], "--log_level", 11) == 0) {
            return true;
        }
    }
    return getenv("TANDEM_LOG_LEVEL") != NULL;
}

int td_cli_import(int argc, char **argv)
{
    td_import_options_t opt = { 0 };
    td_import_result_t res;
    td_config_t cfg;
    td_err_t err = { 0 };
    td_app_t app;
    reader_t r = { 0 };
    const char *file = NULL;
    char **cfg_argv;
    int cfg_argc = 0, status = 1, rc;
    bool quiet = false;
    struct stat st;

    if (td_cli_wants_help(argc, argv)) {
        print_help(stdout);
        return 0;
    }
    if (argc < 1 || strcmp(argv[0], "catalog") != 0) {
        fprintf(stderr, "usage: tandem import catalog FILE [options] (see --help)\n");
        return 2;
    }
    cfg_argv = td_xcalloc((size_t)argc + 1, sizeof(char *));
    td_config_init(&cfg);
    if (parse_args(argc - 1, argv + 1, &file, &opt, &quiet, &cfg_argc, cfg_argv) != TD_OK) {
        goto out_cfg;
    }
    if (file == NULL) {
        fprintf(stderr, "tandem import: which FILE? (see --help)\n");
        goto out_cfg;
    }
    if (opt.format == 0 && (opt.format = td_feed_format_guess(file)) == 0) {
        fprintf(stderr, "tandem import: cannot tell the format of \"%s\": add --format\n", file);
        goto out_cfg;
    }
    if (td_config_load(&cfg, cfg_argc, cfg_argv, &err) != TD_OK) {
        fprintf(stderr, "tandem import: %s\n", err.message);
        goto out_cfg;
    }
    if (td_log_parse_level(log_level_given(cfg_argc, cfg_argv) ? cfg.log_level : "warn",
                           &td_log_level) != TD_OK) {
        TD_BUG("log_level passed validation but does not parse");
    }
    r.name = strcmp(file, "-") == 0 ? "stdin" : file;
    r.f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (r.f == NULL) {
        fprintf(stderr, "tandem import: cannot open \"%s\": %s\n", file, strerror(errno));
        goto out_cfg;
    }
    if (fstat(fileno(r.f), &st) == 0 && S_ISREG(st.st_mode)) {
        r.size = (int64_t)st.st_size;
    }
    r.bar = !quiet && isatty(STDERR_FILENO);
    if (td_cli_app_open(&cfg, false, &app) != TD_OK) {
        goto out_file;
    }
    opt.now_ms = td_clock_now_ms(app.clock);
    opt.progress = on_progress;
    opt.progress_ctx = &r;
    r.t0_us = td_mono_us();
    rc = td_catalog_import(app.catalog, app.store, &opt, read_file, &r, &res, &err);
    if (r.bar) {
        fprintf(stderr, "\r%*s\r", 79, "");
    }
    if (rc != TD_OK) {
        if (err.line > 0) {
            fprintf(stderr, "%s:%d:%d: %s\n", r.name, err.line, err.column, err.message);
        } else {
            fprintf(stderr, "tandem import: %s\n", err.message[0] ? err.message : td_strerror(rc));
        }
        fprintf(stderr, "tandem import: nothing was imported\n");
    } else {
        print_summary(&r, &res, (double)(td_mono_us() - r.t0_us) / 1e6);
        status = res.rejected ? 3 : 0;
    }
    td_import_result_release(&res);
    td_cli_app_close(&app);
out_file:
    if (r.f != stdin) {
        fclose(r.f);
    }
out_cfg:
    td_config_release(&cfg);
    free(cfg_argv);
    return status;
}
