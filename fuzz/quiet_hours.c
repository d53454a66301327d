/* libFuzzer target: the email sending-rule settings, as given on the
 * command line or in the config file: quiet_hours ("21:00-08:00"), cap
 * ("1/16h, 3/7d:drop") and quiet_hours_tz ("+02:00", "UTC", a zone name or
 * a POSIX TZ rule), through their parsers, and the instants computed from
 * what parses. The input is split at its first two NUL bytes. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"
#include "util/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DAY (86400000LL)

static const int64_t nows[] = { -86400000LL, 0, 1774742400000LL, 1792886400000LL, 1795860000000LL };

static void check_quiet(int a, int b, const char *tz)
{
    int off_min, off_s;
    bool strict = td_tz_offset_parse(tz, &off_min) == TD_OK;
    bool fixed = td_tz_fixed_offset(tz, &off_s);

    /* the settings' strict offsets are a part of what zones accept */
    if (strict && (!fixed || off_s != off_min * 60)) {
        abort();
    }
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        int64_t now = nows[i], open;
        int64_t fixed_open = td_quiet_next_open_ms(a, b, strict ? off_min : 0, now);
        if (fixed_open < now || fixed_open > now + DAY) {
            abort();
        }
        /* no cache: fixed offsets only, and then the same answer */
        int rc = td_quiet_next_open_tz_ms(a, b, NULL, tz, now, &open);
        if ((rc == TD_OK) != fixed || (rc == TD_OK && (open < now || open > now + 2 * DAY))) {
            abort();
        }
        if (strict && open != fixed_open) {
            abort();
        }
        if (td_tz_posix_offset(tz, now / 1000, &off_s) == TD_OK &&
            (off_s < -168 * 3600 || off_s > 168 * 3600)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 3);
    td_cap_t caps[TD_CAP_MAX];
    td_err_t err = { 0 };
    int a, b, n = 0;

    memcpy(copy, data, size);
    copy[size] = copy[size + 1] = copy[size + 2] = '\0';
    char *quiet = copy, *cap = quiet + strlen(quiet) + 1;
    if (cap > copy + size) {
        cap = copy + size + 1;
    }
    char *tz = cap + strlen(cap) + 1;
    if (tz > copy + size) {
        tz = copy + size + 2;
    }
    if (td_quiet_parse(quiet, &a, &b) == TD_OK) {
        if (a < 0 || a >= 1440 || b < 0 || b >= 1440) {
            abort();
        }
        check_quiet(a, b, tz);
    }
    if (td_cap_parse(cap, caps, TD_CAP_MAX, &n, &err) == TD_OK) {
        if (n < 0 || n > TD_CAP_MAX) {
            abort();
        }
        for (int i = 0; i < n; i++) {
            if (caps[i].limit < 1 || caps[i].window_ms < 1000 ||
                td_cap_next_allowed_ms(&caps[i], caps[i].limit, nows[4] - 1, nows[4]) <= nows[4] ||
                td_cap_next_allowed_ms(&caps[i], 0, 0, nows[4]) != nows[4]) {
                abort();
            }
        }
    }
    (void)td_tz_name_valid(tz);
    free(copy);
    return 0;
}
