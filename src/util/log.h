/* One line per event, key=value, to stderr:
 *   2026-05-01T09:30:00.123Z info journey step_run instance=42 step=wait_3h
 * td_log() checks the level before formatting. Thread-safe (one write(2) per
 * line). Never log secrets, keys or full email addresses. */
#ifndef TD_UTIL_LOG_H
#define TD_UTIL_LOG_H

#include "util/err.h"

typedef enum { TD_LOG_DEBUG, TD_LOG_INFO, TD_LOG_WARN, TD_LOG_ERROR } td_log_level_t;

extern td_log_level_t td_log_level;

/* Parses "debug", "info", "warn" or "error"; returns TD_EINVAL otherwise. */
int td_log_parse_level(const char *s, td_log_level_t *out) TD_MUST_CHECK;

#define td_log(level, module, ...)                        \
    do {                                                  \
        if ((level) >= td_log_level) {                    \
            td_log_write((level), (module), __VA_ARGS__); \
        }                                                 \
    } while (0)

void td_log_write(td_log_level_t level, const char *module, const char *fmt, ...) TD_PRINTF(3, 4);

/* Masks an email for logs: "jane.doe@example.com" -> "j***@example.com". */
void td_log_mask_email(const char *email, char *out, size_t out_len);

#endif
