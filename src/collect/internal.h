/* Shared between the collect parsers: field checks and event helpers. */
#ifndef TD_COLLECT_INTERNAL_H
#define TD_COLLECT_INTERNAL_H

#include <jansson.h>

#include "collect/collect.h"

/* Longest accepted strings and documents. */
#define TD_COLLECT_MAX_ID    256
#define TD_COLLECT_MAX_TYPE  64
#define TD_COLLECT_MAX_TEXT  1024
#define TD_COLLECT_MAX_ATTRS 16384
#define TD_COLLECT_FUTURE_MS (24LL * 3600 * 1000) /* clock skew tolerated */
#define TD_COLLECT_MIN_TS_MS 946684800000LL       /* 2000-01-01 */

/* Checks and copies a string field; path names it in errors. */
int td_collect__string(json_t *v, const char *path, size_t max_len, bool required, char **out,
                       td_err_t *err);
int td_collect__type(json_t *v, const char *path, char **out, td_err_t *err);
int td_collect__email(json_t *v, const char *path, char **out, td_err_t *err);
int td_collect__time(json_t *v, const char *path, int64_t now_ms, int64_t *out, td_err_t *err);
int td_collect__number(json_t *v, const char *path, double min, double max, double *out,
                       td_err_t *err);
/* An id given as a string or an integer (SKUs are often numbers). */
int td_collect__id(json_t *v, const char *path, char **out, td_err_t *err);
int td_collect__consent(json_t *v, const char *path, td_consent_t *out, td_err_t *err);
/* Final checks on a parsed event: at least one identity. */
int td_collect__validate(const td_event_t *ev, const char *path, td_err_t *err);
/* Formats a JSON pointer prefix + suffix into out. */
void td_collect__path(char *out, size_t len, const char *prefix, const char *suffix);
/* prefix + "/" + key, with "~" and "/" in key escaped as RFC 6901 says. */
void td_collect__key_path(char *out, size_t len, const char *prefix, const char *key);
void td_collect__index_path(char *out, size_t len, const char *prefix, size_t index);

#endif
