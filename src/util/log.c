/* Line-oriented logging to stderr. The timestamp is wall-clock time, not the
 * (possibly virtual) application clock: logs are for operators. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

td_log_level_t td_log_level = TD_LOG_INFO;

static const char *level_names[] = { "debug", "info", "warn", "error" };

int td_log_parse_level(const char *s, td_log_level_t *out)
{
    for (size_t i = 0; i < TD_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (td_log_level_t)i;
            return TD_OK;
        }
    }
    return TD_EINVAL;
}

void td_log_write(td_log_level_t level, const char *module, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[level], module);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2) {
        n = (int)sizeof(line) - 2;
    }
    /* one line per event, even if a value carried a newline */
    for (int i = 0; i < n; i++) {
        if (line[i] == '\n' || line[i] == '\r') {
            line[i] = ' ';
        }
    }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        return; /* nowhere left to report it */
    }
}

void td_log_mask_email(const char *email, char *out, size_t out_len)
{
    const char *at = email ? strchr(email, '@') : NULL;

    if (at == NULL || at == email) {
        snprintf(out, out_len, "***");
        return;
    }
    snprintf(out, out_len, "%c***%s", email[0], at);
}
