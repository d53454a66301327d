/* The request struct shared by the http files. */
#ifndef TD_HTTP_INTERNAL_H
#define TD_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>

#include "http/http.h"

#define TD_HTTP_MAX_PARAMS  4
#define TD_HTTP_MAX_HEADERS 12

typedef struct td_http_header_kv {
    char *name, *value;
} td_http_header_kv_t;

struct td_http_req {
    struct MHD_Connection *conn;
    td_http_server_t *srv;
    bool tls;
    const char *method;   /* borrowed from MHD */
    const char *raw_path; /* as sent (MHD is told not to unescape): routes match it */
    char *path;           /* percent-decoded */
    char **decoded;       /* decoded query values handed out, freed with req */
    int n_decoded;
    char allow[64]; /* methods of the routes matching the path, for 405 */
    td_buf_t body;
    bool too_big;
    bool dispatched;
    const td_http_route_t *route;
    int n_params;
    char *param_names[TD_HTTP_MAX_PARAMS];
    char *param_values[TD_HTTP_MAX_PARAMS];
    /* the reply */
    int status;
    char *content_type;
    td_buf_t reply_body;
    td_http_header_kv_t headers[TD_HTTP_MAX_HEADERS];
    int n_headers;
    bool has_reply;
    /* deferred completion */
    pthread_mutex_t mu;
    bool deferred, suspended, resumed;
    int64_t start_us;
    char client_ip[64];
};

struct td_http_server {
    struct MHD_Daemon *plain, *tls;
    _Atomic bool stopping;  /* new requests get 503 while stopping */
    _Atomic int n_deferred; /* requests waiting for td_http_resume() */
    const td_http_route_t *routes;
    void *app;
    size_t max_body;
    char **admin_keys;
    int n_admin_keys;
    char *tls_cert_pem, *tls_key_pem;
};

/* Percent-decodes s (len bytes) into a new string; you own it. */
char *td_http__unescape(const char *s, size_t len);
/* Finds the route for method + path and fills req's params. Returns the
 * route, or NULL with *path_known telling 405 from 404. */
const td_http_route_t *td_http__match(const td_http_route_t *routes, td_http_req_t *req,
                                      bool *path_known);
/* Adds CORS headers when the route is public and the request has an Origin. */
void td_http__cors(td_http_req_t *req);
/* Answers a CORS preflight for a public route. */
void td_http__preflight(td_http_req_t *req);
/* Checks Authorization: Bearer against the admin keys in constant time. */
bool td_http__admin_ok(td_http_req_t *req);

#endif
