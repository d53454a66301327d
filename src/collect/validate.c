/* Field checks shared by the native and the Edge parsers: each accepts
 * exactly what the API documents and names the field it refuses. */
#include "collect/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/banned.h"

void td_collect__path(char *out, size_t len, const char *prefix, const char *suffix)
{
    snprintf(out, len, "%s%s", prefix, suffix);
}

void td_collect__key_path(char *out, size_t len, const char *prefix, const char *key)
{
    size_t n = (size_t)snprintf(out, len, "%s/", prefix);

    for (; *key && n + 3 < len; key++) {
        if (*key == '~' || *key == '/') {
            out[n++] = '~';
            out[n++] = *key == '~' ? '0' : '1';
        } else {
            out[n++] = *key;
        }
    }
    out[n < len ? n : len - 1] = '\0';
}

void td_collect__index_path(char *out, size_t len, const char *prefix, size_t index)
{
    char num[24];

    snprintf(num, sizeof(num), "/%zu", index);
    td_collect__path(out, len, prefix, num);
}

int td_collect__string(json_t *v, const char *path, size_t max_len, bool required, char **out,
                       td_err_t *err)
{
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required) {
            return td_err_set(err, TD_EINVAL, path, "missing required field");
        }
        return TD_OK;
    }
    if (!json_is_string(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be a string");
    }
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len == 0) {
        return td_err_set(err, TD_EINVAL, path, "must not be empty");
    }
    if (len > max_len) {
        return td_err_set(err, TD_EINVAL, path, "longer than %zu bytes", max_len);
    }
    if (memchr(s, '\0', len)) {
        return td_err_set(err, TD_EINVAL, path, "must not contain NUL characters");
    }
    *out = td_xstrndup(s, len);
    return TD_OK;
}

int td_collect__id(json_t *v, const char *path, char **out, td_err_t *err)
{
    if (json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        *out = td_xstrdup(buf);
        return TD_OK;
    }
    int rc = td_collect__string(v, path, TD_COLLECT_MAX_ID, true, out, err);
    if (rc == TD_OK && v && json_is_string(v)) {
        for (const char *p = *out; *p; p++) {
            if ((unsigned char)*p < 0x20) {
                free(*out);
                *out = NULL;
                return td_err_set(err, TD_EINVAL, path, "must not contain control characters");
            }
        }
    }
    return rc;
}

int td_collect__type(json_t *v, const char *path, char **out, td_err_t *err)
{
    int rc = td_collect__string(v, path, TD_COLLECT_MAX_TYPE, true, out, err);

    if (rc != TD_OK) {
        return rc;
    }
    for (const char *p = *out; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || c == ':')) {
            free(*out);
            *out = NULL;
            return td_err_set(err, TD_EINVAL, path,
                              "may only contain letters, digits and _ . - : (got '%c')", c);
        }
    }
    return TD_OK;
}

int td_collect__email(json_t *v, const char *path, char **out, td_err_t *err)
{
    int rc = td_collect__string(v, path, 254, false, out, err);

    if (rc != TD_OK || *out == NULL) {
        return rc;
    }
    char *s = *out, *at = strchr(s, '@');
    bool ok = at && at != s && at[1] != '\0' && strchr(at + 1, '@') == NULL;
    for (char *p = s; ok && *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == '"') {
            ok = false;
        }
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    if (!ok) {
        free(*out);
        *out = NULL;
        return td_err_set(err, TD_EINVAL, path, "not an email address");
    }
    return TD_OK;
}

int td_collect__time(json_t *v, const char *path, int64_t now_ms, int64_t *out, td_err_t *err)
{
    int64_t ms;

    if (v == NULL || json_is_null(v)) {
        *out = now_ms;
        return TD_OK;
    }
    if (json_is_integer(v)) {
        ms = json_integer_value(v);
    } else if (json_is_string(v)) {
        if (td_time_parse_iso(json_string_value(v), &ms) != TD_OK) {
            return td_err_set(err, TD_EINVAL, path,
                              "not an RFC 3339 time like \"2026-11-28T10:00:00Z\"");
        }
    } else {
        return td_err_set(err, TD_EINVAL, path, "must be an RFC 3339 string or epoch milliseconds");
    }
    if (ms < TD_COLLECT_MIN_TS_MS) {
        return td_err_set(err, TD_EINVAL, path, "before the year 2000 (epoch milliseconds?)");
    }
    if (ms > now_ms + TD_COLLECT_FUTURE_MS) {
        return td_err_set(err, TD_EINVAL, path, "more than a day in the future");
    }
    *out = ms;
    return TD_OK;
}

int td_collect__number(json_t *v, const char *path, double min, double max, double *out,
                       td_err_t *err)
{
    if (!json_is_number(v)) {
        return td_err_set(err, TD_EINVAL, path, "must be a number");
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max) {
        return td_err_set(err, TD_EINVAL, path, "must be between %g and %g", min, max);
    }
    *out = d;
    return TD_OK;
}

int td_collect__consent(json_t *v, const char *path, td_consent_t *out, td_err_t *err)
{
    const char *s;

    if (json_is_true(v)) {
        *out = TD_CONSENT_IN;
        return TD_OK;
    }
    if (json_is_false(v)) {
        *out = TD_CONSENT_OUT;
        return TD_OK;
    }
    if (!json_is_string(v)) {
        return td_err_set(err, TD_EINVAL, path,
                          "must be \"in\", \"out\", \"y\", \"n\" or a boolean");
    }
    s = json_string_value(v);
    if (strcmp(s, "in") == 0 || strcmp(s, "y") == 0) {
        *out = TD_CONSENT_IN;
    } else if (strcmp(s, "out") == 0 || strcmp(s, "n") == 0) {
        *out = TD_CONSENT_OUT;
    } else {
        return td_err_set(err, TD_EINVAL, path,
                          "must be \"in\", \"out\", \"y\", \"n\" or a boolean");
    }
    return TD_OK;
}

int td_collect__validate(const td_event_t *ev, const char *path, td_err_t *err)
{
    if (!ev->ecid && !ev->email && !ev->customer_id) {
        return td_err_set(err, TD_EINVAL, path,
                          "needs at least one identity: \"ecid\", \"email\" or \"customer_id\"");
    }
    return TD_OK;
}
