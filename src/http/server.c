/* The libmicrohttpd glue: one daemon for HTTP and one for HTTPS, an epoll
 * thread pool, request bodies collected up to the configured cap, routes
 * dispatched once the body is complete, and suspended connections for
 * replies that wait on a group commit. */
#include "http/internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/banned.h"

static int parse_listen(const char *listen, struct sockaddr_storage *ss, td_err_t *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = { 0 }, *res = NULL;

    if (colon == NULL || colon == listen || colon[1] == '\0' ||
        (size_t)(colon - listen) >= sizeof(host)) {
        return td_err_set(err, TD_EINVAL, "listen", "listen address \"%s\" is not HOST:PORT",
                          listen);
    }
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        return td_err_set(err, TD_EINVAL, "listen", "cannot resolve \"%s\": %s", listen,
                          gai_strerror(rc));
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return TD_OK;
}

static char *read_file(const char *path, td_err_t *err, const char *setting)
{
    FILE *f = fopen(path, "rb");
    td_buf_t b = TD_BUF_INIT;
    char chunk[4096];
    size_t n;

    if (f == NULL) {
        td_err_set(err, TD_EINVAL, setting, "cannot read \"%s\" (setting %s): %s", path, setting,
                   strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        td_buf_add(&b, chunk, n);
    }
    fclose(f);
    return td_buf_detach(&b);
}

static void free_req(td_http_req_t *req)
{
    for (int i = 0; i < req->n_params; i++) {
        free(req->param_names[i]);
        free(req->param_values[i]);
    }
    for (int i = 0; i < req->n_headers; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    for (int i = 0; i < req->n_decoded; i++) {
        free(req->decoded[i]);
    }
    free(req->decoded);
    free(req->path);
    td_buf_release(&req->body);
    td_buf_release(&req->reply_body);
    free(req->content_type);
    pthread_mutex_destroy(&req->mu);
    free(req);
}

static enum MHD_Result queue_reply(td_http_req_t *req)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (!req->has_reply) {
        td_http_reply_errorf(req, TD_EIO, NULL, "handler produced no reply");
    }
    resp = MHD_create_response_from_buffer(req->reply_body.len,
                                           req->reply_body.data ? req->reply_body.data : (char *)"",
                                           MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return MHD_NO;
    }
    if (req->content_type) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
    }
    for (int i = 0; i < req->n_headers; i++) {
        MHD_add_response_header(resp, req->headers[i].name, req->headers[i].value);
    }
    ret = MHD_queue_response(req->conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void dispatch(td_http_req_t *req)
{
    bool path_known;
    const td_http_route_t *r = td_http__match(req->srv->routes, req, &path_known);

    req->route = r;
    if (r == NULL) {
        if (path_known && strcmp(req->method, "OPTIONS") == 0) {
            td_http__preflight(req);
        } else if (path_known) {
            td_http_reply_errorf(req, TD_EINVAL, NULL, "method %s not allowed on %s", req->method,
                                 req->path);
            td_http_add_header(req, "Allow", req->allow);
            req->status = 405;
        } else {
            td_http_reply_errorf(req, TD_ENOTFOUND, NULL, "no such endpoint: %s %s", req->method,
                                 req->path);
        }
        return;
    }
    if (r->flags & TD_ROUTE_CORS) {
        td_http__cors(req);
    }
    if (req->srv->stopping) {
        td_http_add_header(req, "Retry-After", "1");
        td_http_reply_errorf(req, TD_EBUSY, NULL, "the server is shutting down; retry");
        return;
    }
    if (req->too_big) {
        td_http_reply_errorf(req, TD_ETOOBIG, NULL, "request body larger than %zu bytes",
                             req->srv->max_body);
        return;
    }
    if ((r->flags & TD_ROUTE_ADMIN) && !td_http__admin_ok(req)) {
        td_http_add_header(req, "WWW-Authenticate", "Bearer");
        td_http_reply_errorf(req, TD_EAUTH, NULL,
                             "this endpoint needs \"Authorization: Bearer <admin key>\"");
        return;
    }
    r->handler(req, req->srv->app);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    td_http_server_t *srv = cls;
    td_http_req_t *req = *con_cls;

    (void)version;
    if (req == NULL) {
        req = td_xcalloc(1, sizeof(*req));
        req->conn = conn;
        req->srv = srv;
        req->method = method;
        req->raw_path = url;
        req->path = td_http__unescape(url, strlen(url));
        req->start_us = td_mono_us();
        pthread_mutex_init(&req->mu, NULL);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
        req->tls = ci && ci->daemon == srv->tls;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        *con_cls = req;
        if (cl && strtoull(cl, NULL, 10) > srv->max_body) {
            /* answered before the body, which is then never read (no
             * "100 Continue" invites it either) */
            req->too_big = true;
            req->dispatched = true;
            dispatch(req);
            return queue_reply(req);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!req->too_big && req->body.len + *upload_data_size > srv->max_body) {
            req->too_big = true;
            td_buf_release(&req->body);
        }
        if (!req->too_big) {
            td_buf_add(&req->body, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!req->dispatched) {
        req->dispatched = true;
        dispatch(req);
        pthread_mutex_lock(&req->mu);
        if (req->deferred && !req->resumed) {
            req->suspended = true;
            MHD_suspend_connection(conn);
            pthread_mutex_unlock(&req->mu);
            return MHD_YES;
        }
        pthread_mutex_unlock(&req->mu);
    }
    return queue_reply(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    td_http_req_t *req = *con_cls;
    char labels[256];

    (void)cls;
    (void)conn;
    (void)toe;
    if (req == NULL) {
        return;
    }
    snprintf(labels, sizeof(labels), "route=\"%s %s\",status=\"%d\"",
             req->route ? req->route->method : "-", req->route ? req->route->pattern : "unmatched",
             req->status);
    td_metrics_add("tandem_http_requests_total", labels, 1);
    snprintf(labels, sizeof(labels), "route=\"%s %s\"", req->route ? req->route->method : "-",
             req->route ? req->route->pattern : "unmatched");
    td_metrics_observe("tandem_http_request_seconds", labels,
                       (double)(td_mono_us() - req->start_us) / 1e6);
    if (req->deferred) {
        req->srv->n_deferred--; /* its connection is no longer suspended */
    }
    free_req(req);
    *con_cls = NULL;
}

/* libmicrohttpd would decode the path before routing, turning an id's
 * "%2F" into a separator; the router decodes each segment itself instead. */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    td_log(TD_LOG_WARN, "http", "mhd message=\"%s\"", msg);
}

static struct MHD_Daemon *start_daemon(td_http_server_t *srv, const char *listen, bool tls,
                                       int threads, td_err_t *err)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d;

    if (parse_listen(listen, &ss, err) != TD_OK) {
        return NULL;
    }
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    if (tls) {
        d = MHD_start_daemon(
            flags | MHD_USE_TLS, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
            on_mhd_log, NULL, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_TIMEOUT, 60U,
            MHD_OPTION_HTTPS_MEM_KEY, srv->tls_key_pem, MHD_OPTION_HTTPS_MEM_CERT,
            srv->tls_cert_pem, MHD_OPTION_END);
    } else {
        d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
                             on_mhd_log, NULL, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                             MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                             MHD_OPTION_CONNECTION_TIMEOUT, 60U, MHD_OPTION_END);
    }
    if (d == NULL) {
        td_err_set(err, TD_EIO, tls ? "tls_listen" : "listen",
                   "cannot listen on %s (in use, or not an address of this machine?)", listen);
    }
    return d;
}

int td_http_start(const td_http_options_t *opt, const td_http_route_t *routes, void *app,
                  td_http_server_t **out, td_err_t *err)
{
    td_http_server_t *srv = td_xcalloc(1, sizeof(*srv));
    int threads = opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);

    srv->routes = routes;
    srv->app = app;
    srv->max_body = opt->max_body;
    srv->n_admin_keys = opt->n_admin_keys;
    srv->admin_keys = td_xcalloc((size_t)opt->n_admin_keys + 1, sizeof(char *));
    for (int i = 0; i < opt->n_admin_keys; i++) {
        srv->admin_keys[i] = td_xstrdup(opt->admin_keys[i]);
    }
    td_metrics_describe("tandem_http_requests_total", "counter",
                        "HTTP requests by route and status");
    td_metrics_describe("tandem_http_request_seconds", "histogram",
                        "HTTP request latency by route");
    if (threads < 1) {
        threads = 1;
    }
    /* HTTPS first: once /healthz answers on HTTP, every port is listening */
    if (opt->tls_listen && *opt->tls_listen) {
        if ((srv->tls_cert_pem = read_file(opt->tls_cert_file, err, "tls_cert")) == NULL ||
            (srv->tls_key_pem = read_file(opt->tls_key_file, err, "tls_key")) == NULL) {
            goto fail;
        }
        srv->tls = start_daemon(srv, opt->tls_listen, true, threads, err);
        if (srv->tls == NULL) {
            goto fail;
        }
    }
    srv->plain = start_daemon(srv, opt->listen, false, threads, err);
    if (srv->plain == NULL) {
        goto fail;
    }
    *out = srv;
    return TD_OK;
fail:
    td_http_stop(srv);
    return err ? (err->code ? err->code : TD_EIO) : TD_EIO;
}

void td_http_stop(td_http_server_t *srv)
{
    if (srv == NULL) {
        return;
    }
    /* Requests waiting for a commit hold suspended connections, which
     * libmicrohttpd refuses to stop with: refuse new work, let those finish. */
    srv->stopping = true;
    for (int i = 0; i < 3000 && srv->n_deferred > 0; i++) {
        usleep(10000);
    }
    if (srv->n_deferred > 0) {
        td_log(TD_LOG_ERROR, "http", "stop deferred=%d still waiting after 30s", srv->n_deferred);
    }
    if (srv->tls) {
        MHD_stop_daemon(srv->tls);
    }
    if (srv->plain) {
        MHD_stop_daemon(srv->plain);
    }
    for (int i = 0; i < srv->n_admin_keys; i++) {
        free(srv->admin_keys[i]);
    }
    free(srv->admin_keys);
    free(srv->tls_cert_pem);
    free(srv->tls_key_pem);
    free(srv);
}

int td_http_port(const td_http_server_t *srv, bool tls)
{
    struct MHD_Daemon *d = tls ? srv->tls : srv->plain;
    const union MHD_DaemonInfo *info;

    if (d == NULL || (info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)) == NULL) {
        return 0;
    }
    return info->port;
}

const char *td_http_method(const td_http_req_t *req)
{
    return req->method;
}

const char *td_http_path(const td_http_req_t *req)
{
    return req->path;
}

const char *td_http_param(const td_http_req_t *req, const char *name)
{
    for (int i = 0; i < req->n_params; i++) {
        if (strcmp(req->param_names[i], name) == 0) {
            return req->param_values[i];
        }
    }
    return NULL;
}

const char *td_http_query(const td_http_req_t *req, const char *name)
{
    td_http_req_t *r = (td_http_req_t *)req;
    const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);

    if (raw == NULL) {
        return NULL;
    }
    /* arguments arrive escaped (see no_unescape); '+' is a space in queries */
    char *v = td_http__unescape(raw, strlen(raw));
    for (char *p = v; *p; p++) {
        if (*p == '+') {
            *p = ' ';
        }
    }
    r->decoded = td_xrealloc(r->decoded, sizeof(char *) * (size_t)(r->n_decoded + 1));
    r->decoded[r->n_decoded++] = v;
    return v;
}

const char *td_http_header(const td_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *td_http_cookie(const td_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

const char *td_http_body(const td_http_req_t *req, size_t *len)
{
    *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *td_http_client_ip(const td_http_req_t *req)
{
    td_http_req_t *r = (td_http_req_t *)req;
    const union MHD_ConnectionInfo *ci;

    if (r->client_ip[0] == '\0' &&
        (ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) != NULL) {
        getnameinfo(ci->client_addr, sizeof(struct sockaddr_storage), r->client_ip,
                    sizeof(r->client_ip), NULL, 0, NI_NUMERICHOST);
    }
    return r->client_ip;
}

bool td_http_is_tls(const td_http_req_t *req)
{
    return req->tls;
}

void td_http_defer(td_http_req_t *req)
{
    req->deferred = true;
    req->srv->n_deferred++;
}

void td_http_resume(td_http_req_t *req)
{
    struct MHD_Connection *conn = req->conn;
    bool suspended;

    pthread_mutex_lock(&req->mu);
    req->resumed = true;
    suspended = req->suspended;
    pthread_mutex_unlock(&req->mu);
    /* Once resumed, another thread may reply and free req at once: touch
     * nothing of it after this call. Before it, a suspended req cannot go. */
    if (suspended) {
        MHD_resume_connection(conn);
    }
}
