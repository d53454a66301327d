/* Replies, and the one place where error codes become HTTP statuses and
 * JSON error bodies. */
#include "http/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

int td_http_status_for(int rc)
{
    switch (rc) {
    case TD_OK:
        return 200;
    case TD_EINVAL:
        return 400;
    case TD_EAUTH:
        return 401;
    case TD_EFORBIDDEN:
        return 403;
    case TD_ENOTFOUND:
        return 404;
    case TD_ECONFLICT:
        return 409;
    case TD_ETOOBIG:
        return 413;
    case TD_EBUSY:
        return 503;
    default:
        return 500;
    }
}

void td_http_reply(td_http_req_t *req, int status, const char *content_type, const void *body,
                   size_t len)
{
    req->status = status;
    free(req->content_type);
    req->content_type = content_type ? td_xstrdup(content_type) : NULL;
    td_buf_reset(&req->reply_body);
    td_buf_add(&req->reply_body, body, len);
    req->has_reply = true;
}

void td_http_reply_json(td_http_req_t *req, int status, const td_buf_t *json)
{
    td_http_reply(req, status, "application/json", json->data ? json->data : "", json->len);
}

void td_http_reply_error(td_http_req_t *req, int rc, const td_err_t *err)
{
    td_buf_t b = TD_BUF_INIT;
    const char *msg = err && err->message[0] ? err->message : td_strerror(rc);

    td_buf_adds(&b, "{\"error\":{\"code\":");
    td_buf_add_json_str(&b, td_strerror(rc), strlen(td_strerror(rc)));
    td_buf_adds(&b, ",\"message\":");
    td_buf_add_json_str(&b, msg, strlen(msg));
    if (err && err->path[0]) {
        td_buf_adds(&b, ",\"path\":");
        td_buf_add_json_str(&b, err->path, strlen(err->path));
    }
    if (err && err->line > 0) {
        td_buf_addf(&b, ",\"line\":%d,\"column\":%d", err->line, err->column);
    }
    td_buf_adds(&b, "}}");
    td_http_reply_json(req, td_http_status_for(rc), &b);
    td_buf_release(&b);
}

void td_http_reply_errorf(td_http_req_t *req, int rc, const char *path, const char *fmt, ...)
{
    td_err_t err = { 0 };
    va_list ap;

    err.code = rc;
    snprintf(err.path, sizeof(err.path), "%s", path ? path : "");
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    td_http_reply_error(req, rc, &err);
}

void td_http_add_header(td_http_req_t *req, const char *name, const char *value)
{
    if (req->n_headers == TD_HTTP_MAX_HEADERS) {
        TD_BUG("too many response headers");
    }
    req->headers[req->n_headers].name = td_xstrdup(name);
    req->headers[req->n_headers++].value = td_xstrdup(value);
}
