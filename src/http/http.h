/* The HTTP layer: a libmicrohttpd server (plain and TLS), a route table,
 * request limits, CORS, admin authentication, metrics per route, and the
 * replies (only reply.c turns error codes into statuses and JSON bodies).
 *
 * Handlers see a td_http_req_t, never MHD types. A handler either sets a
 * reply before returning, or calls td_http_defer() and later, from any
 * thread, td_http_resume() once the reply is set (the connection waits
 * without holding a thread: used to wait for a group commit). */
#ifndef TD_HTTP_H
#define TD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

typedef struct td_http_req td_http_req_t;
typedef struct td_http_server td_http_server_t;

typedef void (*td_http_handler_fn)(td_http_req_t *req, void *app);

enum {
    TD_ROUTE_ADMIN = 1, /* needs Authorization: Bearer <admin key> */
    TD_ROUTE_CORS = 2,  /* public collection endpoint: echo Origin, allow credentials */
    TD_ROUTE_PREFIX = 4 /* pattern matches any path that starts with it */
};

typedef struct td_http_route {
    const char *method;  /* "GET", "POST", ...; "*" for any */
    const char *pattern; /* "/v1/profiles/{ns}/{id}"; {name} captures one segment */
    td_http_handler_fn handler;
    int flags;
} td_http_route_t;

typedef struct td_http_options {
    const char *listen;     /* HOST:PORT */
    const char *tls_listen; /* HOST:PORT or NULL/"" */
    const char *tls_cert_file, *tls_key_file;
    int threads;
    size_t max_body;
    const char *const *admin_keys;
    int n_admin_keys;
} td_http_options_t;

/* Starts listening; routes (ending with a NULL method) and app are borrowed
 * for the server's lifetime. */
int td_http_start(const td_http_options_t *opt, const td_http_route_t *routes, void *app,
                  td_http_server_t **out, td_err_t *err) TD_MUST_CHECK;
/* Stops accepting, waits for requests in flight, frees the server. */
void td_http_stop(td_http_server_t *srv);
/* The port actually bound (useful with port 0). */
int td_http_port(const td_http_server_t *srv, bool tls);

/* Request accessors; returned strings are borrowed for the request's life. */
const char *td_http_method(const td_http_req_t *req);
const char *td_http_path(const td_http_req_t *req);
const char *td_http_param(const td_http_req_t *req, const char *name); /* from {name} */
const char *td_http_query(const td_http_req_t *req, const char *name);
const char *td_http_header(const td_http_req_t *req, const char *name);
const char *td_http_cookie(const td_http_req_t *req, const char *name);
const char *td_http_body(const td_http_req_t *req, size_t *len);
/* The client address as text. */
const char *td_http_client_ip(const td_http_req_t *req);
/* True when the request came over TLS. */
bool td_http_is_tls(const td_http_req_t *req);

/* Replies. The body is copied. */
void td_http_reply(td_http_req_t *req, int status, const char *content_type, const void *body,
                   size_t len);
void td_http_reply_json(td_http_req_t *req, int status, const td_buf_t *json);
/* A JSON error body {"error": {"code", "message", "path", "line", "column"}}
 * with the status that rc maps to (400, 401, 404, 409, 413, 503, 500). */
void td_http_reply_error(td_http_req_t *req, int rc, const td_err_t *err);
/* A JSON error built from its parts. */
void td_http_reply_errorf(td_http_req_t *req, int rc, const char *path, const char *fmt, ...)
    TD_PRINTF(4, 5);
int td_http_status_for(int rc);
/* Adds a response header (copied). */
void td_http_add_header(td_http_req_t *req, const char *name, const char *value);

/* Asynchronous completion: see the top of this file. */
void td_http_defer(td_http_req_t *req);
void td_http_resume(td_http_req_t *req);

#endif
