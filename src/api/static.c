/* GET /web/<path>: static files (demo shop pages, scripts, images) from the
 * web_dir setting. Only regular files of the known types below are served,
 * and only from inside web_dir: no "..", no hidden files, no absolute
 * paths, and no symlink that leads outside. Everything else is a 404 with a
 * JSON body, so the directory's layout cannot be probed. Not a general web
 * server: no ranges, no caching headers beyond "no-cache", whole files up
 * to MAX_FILE. */
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/banned.h"

#define MAX_FILE    (32 * 1024 * 1024) /* the whole file is copied into the reply */
#define MAX_REL     1024
#define MAX_SEGMENT 255

static const struct {
    const char *ext, *type;
} types[] = {
    { "html", "text/html; charset=utf-8" },
    { "htm", "text/html; charset=utf-8" },
    { "js", "text/javascript; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "css", "text/css; charset=utf-8" },
    { "json", "application/json" },
    { "txt", "text/plain; charset=utf-8" },
    { "eml", "text/plain; charset=utf-8" }, /* the demo mailbox's messages, shown as text */
    { "png", "image/png" },
    { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" },
    { "gif", "image/gif" },
    { "webp", "image/webp" },
    { "svg", "image/svg+xml" },
    { "ico", "image/x-icon" },
    { "woff2", "font/woff2" },
};

/* Checks the path below /web/ segment by segment. */
static bool rel_ok(const char *rel)
{
    size_t seg = 0;

    if (strlen(rel) > MAX_REL) {
        return false;
    }
    for (const char *c = rel;; c++) {
        if (*c == '/' || *c == '\0') {
            /* an empty segment is only allowed last ("dir/" means its index) */
            if (seg == 0 && *c == '/') {
                return false;
            }
            if (*c == '\0') {
                return true;
            }
            seg = 0;
            continue;
        }
        /* "." and ".." start with a dot, and so do hidden files */
        if ((seg == 0 && *c == '.') || *c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7f ||
            ++seg > MAX_SEGMENT) {
            return false;
        }
    }
}

static const char *content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');

    if (dot == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(types); i++) {
        if (strcasecmp(dot + 1, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return NULL;
}

/* Reads a regular file of at most MAX_FILE bytes; fd is closed. */
static int read_all(int fd, td_buf_t *out)
{
    struct stat st;
    char chunk[65536];
    ssize_t n;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        close(fd);
        return TD_ENOTFOUND;
    }
    td_buf_grow(out, (size_t)st.st_size);
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || out->len + (size_t)n > MAX_FILE) {
            close(fd);
            return TD_EIO;
        }
        td_buf_add(out, chunk, (size_t)n);
    }
    close(fd);
    return TD_OK;
}

static void not_found(td_http_req_t *req)
{
    td_http_reply_errorf(req, TD_ENOTFOUND, NULL, "no such file: %s", td_http_path(req));
}

void td_api__serve_file(td_http_req_t *req, const char *dir, const char *rel)
{
    char root[PATH_MAX], want[PATH_MAX * 2], real[PATH_MAX];
    const char *type;
    size_t root_len;
    td_buf_t body = TD_BUF_INIT;
    int fd, rc;

    if (!rel_ok(rel)) {
        not_found(req);
        return;
    }
    if (realpath(dir, root) == NULL) {
        td_log(TD_LOG_WARN, "static", "realpath() dir=\"%s\" failed: %s", dir, strerror(errno));
        not_found(req);
        return;
    }
    snprintf(want, sizeof(want), "%s/%s%s", root, rel,
             (*rel == '\0' || rel[strlen(rel) - 1] == '/') ? "index.html" : "");
    type = content_type(want);
    /* the resolved file must still be below the root: a symlink may point
     * anywhere */
    root_len = strlen(root);
    if (type == NULL || realpath(want, real) == NULL || strncmp(real, root, root_len) != 0 ||
        (root_len > 1 && real[root_len] != '/')) {
        not_found(req);
        return;
    }
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        not_found(req);
        return;
    }
    rc = read_all(fd, &body);
    if (rc != TD_OK) {
        td_buf_release(&body);
        if (rc == TD_ENOTFOUND) {
            not_found(req);
        } else {
            td_http_reply_errorf(req, rc, NULL, "cannot read %s", td_http_path(req));
        }
        return;
    }
    td_http_add_header(req, "X-Content-Type-Options", "nosniff");
    td_http_add_header(req, "Cache-Control", "no-cache");
    td_http_reply(req, 200, type, body.data ? body.data : "", body.len);
    td_buf_release(&body);
}

void td_api_static_get(td_http_req_t *req, void *ctx)
{
    td_app_t *app = ctx;

    td_api__serve_file(req, app->cfg->web_dir, td_http_path(req) + strlen("/web/"));
}
