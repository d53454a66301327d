/* Route matching, CORS and admin authentication. Patterns are compared
 * segment by segment; "{name}" captures a segment, and a trailing ":verb"
 * (Google-style custom methods, "/v1/entities:import") is part of the last
 * segment's text. */
#include "http/internal.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/banned.h"

static void free_params(td_http_req_t *req)
{
    for (int i = 0; i < req->n_params; i++) {
        free(req->param_names[i]);
        free(req->param_values[i]);
    }
    req->n_params = 0;
}

/* Matches one pattern; captures go into req on success. */
static bool match_pattern(const char *pat, const char *path, int flags, td_http_req_t *req)
{
    free_params(req);
    while (*pat) {
        if (*pat == '{') {
            const char *close = strchr(pat, '}');
            const char *seg_end = path + strcspn(path, "/");
            /* a capture stops before a custom verb written after it */
            if (close[1] == ':') {
                const char *colon = memchr(path, ':', (size_t)(seg_end - path));
                if (colon == NULL) {
                    return false;
                }
                seg_end = colon;
            }
            if (seg_end == path || req->n_params == TD_HTTP_MAX_PARAMS) {
                return false;
            }
            req->param_names[req->n_params] = td_xstrndup(pat + 1, (size_t)(close - pat - 1));
            /* decoded only now, so "%2F" inside an id stays inside it */
            req->param_values[req->n_params++] = td_http__unescape(path, (size_t)(seg_end - path));
            pat = close + 1;
            path = seg_end;
            continue;
        }
        if (*pat != *path) {
            return false;
        }
        pat++;
        path++;
    }
    return *path == '\0' || (flags & TD_ROUTE_PREFIX);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

char *td_http__unescape(const char *s, size_t len)
{
    char *out = td_xmalloc(len + 1), *o = out;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static void add_allowed(td_http_req_t *req, const char *method)
{
    size_t n = strlen(req->allow);

    if (strstr(req->allow, method) == NULL && n + strlen(method) + 3 < sizeof(req->allow)) {
        snprintf(req->allow + n, sizeof(req->allow) - n, "%s%s", n ? ", " : "", method);
    }
}

const td_http_route_t *td_http__match(const td_http_route_t *routes, td_http_req_t *req,
                                      bool *path_known)
{
    *path_known = false;
    req->allow[0] = '\0';
    for (const td_http_route_t *r = routes; r->method; r++) {
        if (!match_pattern(r->pattern, req->raw_path, r->flags, req)) {
            continue;
        }
        *path_known = true;
        add_allowed(req, r->method);
        if (strcmp(r->method, "*") == 0 || strcmp(r->method, req->method) == 0 ||
            (strcmp(r->method, "GET") == 0 && strcmp(req->method, "HEAD") == 0)) {
            return r;
        }
    }
    free_params(req);
    return NULL;
}

void td_http__cors(td_http_req_t *req)
{
    const char *origin = td_http_header(req, "Origin");

    if (origin == NULL) {
        return;
    }
    /* The Web SDK sends credentials (cookies), which a "*" origin forbids. */
    td_http_add_header(req, "Access-Control-Allow-Origin", origin);
    td_http_add_header(req, "Access-Control-Allow-Credentials", "true");
    td_http_add_header(req, "Vary", "Origin");
}

void td_http__preflight(td_http_req_t *req)
{
    const char *hdrs = td_http_header(req, "Access-Control-Request-Headers");

    td_http__cors(req);
    td_http_add_header(req, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    td_http_add_header(req, "Access-Control-Allow-Headers", hdrs ? hdrs : "Content-Type");
    td_http_add_header(req, "Access-Control-Max-Age", "600");
    td_http_reply(req, 204, NULL, "", 0);
}

bool td_http__admin_ok(td_http_req_t *req)
{
    const char *auth = td_http_header(req, "Authorization");
    bool ok = false;

    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0) {
        return false;
    }
    const char *key = auth + 7;
    size_t len = strlen(key);
    /* every key is compared, whatever matched, so timing tells nothing */
    for (int i = 0; i < req->srv->n_admin_keys; i++) {
        const char *k = req->srv->admin_keys[i];
        size_t klen = strlen(k);
        ok |= klen == len && CRYPTO_memcmp(k, key, len) == 0;
    }
    return ok;
}
