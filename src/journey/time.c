/* Time for journeys: durations ("3h", "PT3H"), times of values (epoch ms or
 * ISO 8601 text), and the next local time of day in a zone (util/tz.h
 * reads the zones). Pure: zones are resolved through the caller's
 * td_journey_tz_fn. */
#include "journey/internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/banned.h"

/* ---- durations -------------------------------------------------------- */

static int parse_compact(const char *s, int64_t *ms)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = { { 'w', 604800000LL },
                  { 'd', 86400000LL },
                  { 'h', 3600000LL },
                  { 'm', 60000LL },
                  { 's', 1000LL } };
    int64_t total = 0;
    int last = -1;

    if (*s == '\0') {
        return TD_EINVAL;
    }
    while (*s) {
        char *end;
        if (!isdigit((unsigned char)*s)) {
            return TD_EINVAL;
        }
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || v > 1e9) {
            return TD_EINVAL;
        }
        s = end;
        /* "ms" is milliseconds, not minutes followed by seconds */
        if (s[0] == 'm' && s[1] == 's') {
            total += (int64_t)llround(v);
            s += 2;
            last = (int)TD_ARRAY_LEN(units);
            continue;
        }
        size_t u;
        for (u = 0; u < TD_ARRAY_LEN(units); u++) {
            if (*s == units[u].unit) {
                break;
            }
        }
        if (u == TD_ARRAY_LEN(units) || (int)u <= last) {
            return TD_EINVAL; /* no unit, unknown unit, or units out of order */
        }
        last = (int)u;
        total += (int64_t)llround(v * (double)units[u].ms);
        s++;
        if (total > TD_JOURNEY_MAX_DURATION_MS) {
            return TD_EINVAL;
        }
    }
    *ms = total;
    return TD_OK;
}

/* ISO 8601 durations: PnW, PnDTnHnMnS (no years or months: their length
 * varies, and a wait should mean one length). */
static int parse_iso(const char *s, int64_t *ms)
{
    bool time = false;
    int64_t total = 0;
    bool any = false;

    if (*s++ != 'P') {
        return TD_EINVAL;
    }
    while (*s) {
        if (*s == 'T') {
            if (time) {
                return TD_EINVAL;
            }
            time = true;
            s++;
            continue;
        }
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || !isdigit((unsigned char)*s) || v > 1e9) {
            return TD_EINVAL;
        }
        s = end;
        double unit;
        switch (*s) {
        case 'W':
            unit = time ? -1 : 604800000.0;
            break;
        case 'D':
            unit = time ? -1 : 86400000.0;
            break;
        case 'H':
            unit = time ? 3600000.0 : -1;
            break;
        case 'M':
            unit = time ? 60000.0 : -1; /* months (before T) are refused */
            break;
        case 'S':
            unit = time ? 1000.0 : -1;
            break;
        default:
            unit = -1;
        }
        if (unit < 0) {
            return TD_EINVAL;
        }
        total += (int64_t)llround(v * unit);
        if (total > TD_JOURNEY_MAX_DURATION_MS) {
            return TD_EINVAL;
        }
        any = true;
        s++;
    }
    if (!any) {
        return TD_EINVAL;
    }
    *ms = total;
    return TD_OK;
}

int td_journey_parse_duration(const json_t *v, int64_t *ms)
{
    if (json_is_number(v)) {
        double secs = json_number_value(v);
        if (!(secs >= 0) || secs * 1000.0 > (double)TD_JOURNEY_MAX_DURATION_MS) {
            return TD_EINVAL;
        }
        *ms = (int64_t)llround(secs * 1000.0);
        return TD_OK;
    }
    if (!json_is_string(v)) {
        return TD_EINVAL;
    }
    const char *s = json_string_value(v);
    int rc = s[0] == 'P' ? parse_iso(s, ms) : parse_compact(s, ms);
    if (rc == TD_OK && *ms > TD_JOURNEY_MAX_DURATION_MS) {
        return TD_EINVAL;
    }
    return rc;
}

bool td_journey__time_of(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        *ms = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (fabs(d) > 9e15) {
            return false;
        }
        *ms = (int64_t)d;
        return true;
    }
    if (json_is_string(v)) {
        return td_time_parse_iso(json_string_value(v), ms) == TD_OK;
    }
    return false;
}

/* ---- time of day ------------------------------------------------------ */

int td_journey__next_time_of_day(int64_t now_ms, int minute_of_day, const char *zone,
                                 const td_journey_env_t *env, int64_t *out)
{
    int off = 0;

    if (zone && !td_tz_fixed_offset(zone, &off) &&
        (env->tz == NULL || env->tz(env->tz_ctx, zone, now_ms, &off) != TD_OK)) {
        return TD_ENOTFOUND;
    }
    int64_t local = now_ms + (int64_t)off * 1000;
    int64_t day = local / 86400000 - (local % 86400000 < 0);
    for (int k = 0; k < 3; k++) {
        int64_t want_local = (day + k) * 86400000 + (int64_t)minute_of_day * 60000;
        /* the offset at the target instant may differ (a DST change in
         * between): convert with the offset found there, twice to settle */
        int64_t guess = want_local - (int64_t)off * 1000;
        for (int i = 0; i < 2 && zone; i++) {
            int o2;
            if (td_tz_fixed_offset(zone, &o2) ||
                (env->tz && env->tz(env->tz_ctx, zone, guess, &o2) == TD_OK)) {
                guess = want_local - (int64_t)o2 * 1000;
            }
        }
        if (guess > now_ms) {
            *out = guess;
            return TD_OK;
        }
    }
    *out = now_ms + 86400000;
    return TD_OK;
}
