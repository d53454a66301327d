/* Pure arithmetic of the outbox: retry back-off, quiet hours windows (a
 * fixed UTC offset, or a named zone's wall time through util/tz.h, whose
 * cache alone reads files), and the checks on a row's render data. */
#include "message/message.h"

#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define MAX_BACKOFF_MS (6LL * 3600 * 1000)

int64_t td_outbox_backoff_ms(int attempts, int64_t base_ms)
{
    int64_t d = base_ms > 0 ? base_ms : 1000;

    for (int i = 1; i < attempts && d < MAX_BACKOFF_MS; i++) {
        d *= 2;
    }
    return d < MAX_BACKOFF_MS ? d : MAX_BACKOFF_MS;
}

/* "HH:MM" -> minutes of the day; -1 when malformed. */
static int parse_hhmm(const char *s, size_t len)
{
    if (len != 5 || s[2] != ':') {
        return -1;
    }
    for (size_t i = 0; i < 5; i++) {
        if (i != 2 && (s[i] < '0' || s[i] > '9')) {
            return -1;
        }
    }
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

int td_quiet_parse(const char *spec, int *start_min, int *end_min)
{
    const char *dash;

    *start_min = *end_min = 0;
    if (spec == NULL || *spec == '\0') {
        return TD_OK; /* no quiet hours */
    }
    if ((dash = strchr(spec, '-')) == NULL) {
        return TD_EINVAL;
    }
    int a = parse_hhmm(spec, (size_t)(dash - spec)), b = parse_hhmm(dash + 1, strlen(dash + 1));
    if (a < 0 || b < 0) {
        return TD_EINVAL;
    }
    *start_min = a;
    *end_min = b;
    return TD_OK;
}

static bool in_window(int start_min, int end_min, int64_t minute_of_day)
{
    return start_min < end_min ? (minute_of_day >= start_min && minute_of_day < end_min)
                               : (minute_of_day >= start_min || minute_of_day < end_min);
}

int64_t td_quiet_next_open_ms(int start_min, int end_min, int offset_min, int64_t now_ms)
{
    const int64_t day = 86400000LL, minute = 60000LL;

    if (start_min == end_min) {
        return now_ms; /* an empty window */
    }
    int64_t local = now_ms + (int64_t)offset_min * minute;
    int64_t day_start = local - ((local % day) + day) % day;
    if (!in_window(start_min, end_min, (local - day_start) / minute)) {
        return now_ms;
    }
    int64_t open = day_start + (int64_t)end_min * minute;
    if (open <= local) {
        open += day; /* the window wraps past midnight */
    }
    return open - (int64_t)offset_min * minute;
}

int td_quiet_next_open_tz_ms(int start_min, int end_min, void *tz_cache, const char *zone,
                             int64_t now_ms, int64_t *open_ms)
{
    const int64_t day = 86400000LL, minute = 60000LL;
    int off;
    int rc;

    if ((rc = td_tz_cache_offset(tz_cache, zone, now_ms, &off)) != TD_OK) {
        return rc;
    }
    *open_ms = now_ms;
    if (start_min == end_min) {
        return TD_OK;
    }
    /* the window is in wall time: the local day and minute as the
     * recipient's clock shows them now */
    int64_t local = now_ms + (int64_t)off * 1000;
    int64_t day_start = local - ((local % day) + day) % day;
    if (!in_window(start_min, end_min, (local - day_start) / minute)) {
        return TD_OK;
    }
    int64_t open_local = day_start + (int64_t)end_min * minute;
    if (open_local <= local) {
        open_local += day; /* the window wraps past midnight */
    }
    for (int k = 0; k < 3; k++, open_local += day) {
        int64_t t;
        /* the offset there may differ from now's (a DST change in between) */
        if ((rc = td_tz_local_to_utc(tz_cache, zone, open_local, &t)) != TD_OK) {
            return rc;
        }
        if (t <= now_ms) {
            /* a wall time the change back repeats, its first pass gone */
            t = open_local - (int64_t)off * 1000;
        }
        if (t > now_ms) {
            *open_ms = t;
            return TD_OK;
        }
    }
    *open_ms = now_ms + day; /* not reached with real zones */
    return TD_OK;
}

const char *td_outbox_data_skip(const json_t *data)
{
    const json_t *d = json_object_get(data, "data");
    const char *key;
    json_t *v;
    int n_arrays = 0, n_empty = 0;

    if (json_is_true(json_object_get(d, "item_unavailable"))) {
        return "item_unavailable";
    }
    json_object_foreach((json_t *)d, key, v)
    {
        if (json_is_array(v)) {
            n_arrays++;
            n_empty += json_array_size(v) == 0;
        }
    }
    (void)key;
    /* the step names the items it mails: when every list is empty there is
     * nothing to show */
    return n_arrays > 0 && n_empty == n_arrays ? "empty_recommendation" : NULL;
}

int td_cap_parse(const char *spec, td_cap_t *caps, int max, int *n, td_err_t *err)
{
    const char *p = spec ? spec : "";

    *n = 0;
    while (*p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *end;
        long long limit = strtoll(p, &end, 10);
        if (end == p || *end != '/' || limit < 1 || limit > 1000000) {
            return td_err_set(err, TD_EINVAL, "cap", "\"%s\": each cap is COUNT/PERIOD, e.g. 1/16h",
                              spec);
        }
        p = end + 1;
        long long amount = strtoll(p, &end, 10);
        int64_t unit = 0;
        switch (end > p ? *end : '\0') {
        case 's':
            unit = 1000;
            break;
        case 'm':
            unit = 60000;
            break;
        case 'h':
            unit = 3600000;
            break;
        case 'd':
            unit = 86400000;
            break;
        case 'w':
            unit = 7 * 86400000LL;
            break;
        default:
            break;
        }
        if (unit == 0 || amount < 1 || amount > 3660) {
            return td_err_set(err, TD_EINVAL, "cap",
                              "\"%s\": a period is a number with s, m, h, d or w (e.g. 7d)", spec);
        }
        p = end + 1;
        bool drop = false;
        if (*p == ':') {
            if (strncmp(p + 1, "drop", 4) == 0) {
                drop = true;
                p += 5;
            } else if (strncmp(p + 1, "defer", 5) == 0) {
                p += 6;
            } else {
                return td_err_set(err, TD_EINVAL, "cap", "\"%s\": after ':' comes drop or defer",
                                  spec);
            }
        }
        if (*p != '\0' && *p != ',' && *p != ' ') {
            return td_err_set(err, TD_EINVAL, "cap", "\"%s\": separate caps with commas", spec);
        }
        if (*n == max) {
            return td_err_set(err, TD_EINVAL, "cap", "at most %d caps", max);
        }
        caps[*n].limit = (int)limit;
        caps[*n].window_ms = amount * unit;
        caps[*n].drop = drop;
        (*n)++;
    }
    return TD_OK;
}

int64_t td_cap_next_allowed_ms(const td_cap_t *cap, int64_t used, int64_t oldest_ms, int64_t now_ms)
{
    if (used < cap->limit) {
        return now_ms;
    }
    int64_t t = oldest_ms + cap->window_ms;
    return t > now_ms ? t : now_ms + 1000;
}
