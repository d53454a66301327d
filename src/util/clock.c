/* Real and virtual clocks, and ISO 8601 times. */
#include "util/clock.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void td_clock_init_real(td_clock_t *c)
{
    c->is_virtual = false;
    c->virtual_ms = 0;
}

void td_clock_init_virtual(td_clock_t *c, int64_t start_ms)
{
    c->is_virtual = true;
    c->virtual_ms = start_ms;
}

int64_t td_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t td_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t td_clock_now_ms(const td_clock_t *c)
{
    if (c->is_virtual) {
        return c->virtual_ms;
    }
    return td_wall_ms();
}

int td_clock_advance(td_clock_t *c, int64_t delta_ms, int64_t *now_ms)
{
    int64_t cur = atomic_load(&c->virtual_ms);

    if (!c->is_virtual || delta_ms < 0) {
        return TD_EINVAL;
    }
    /* a compare-and-swap loop, so that an advance that would overflow is
     * refused instead of wrapping the time around */
    do {
        if (delta_ms > INT64_MAX - cur) {
            return TD_EINVAL;
        }
    } while (!atomic_compare_exchange_weak(&c->virtual_ms, &cur, cur + delta_ms));
    *now_ms = cur + delta_ms;
    return TD_OK;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p)) {
            return TD_EINVAL;
        }
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return TD_OK;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * well-known days_from_civil formula). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int td_time_parse_iso(const char *s, int64_t *ms)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off_min = 0;

    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d)) {
        return TD_EINVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]) {
        return TD_EINVAL;
    }
    /* mdays allows Feb 29; only leap years have it */
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        return TD_EINVAL;
    }
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) {
            return TD_EINVAL;
        }
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec)) {
                return TD_EINVAL;
            }
        }
        if (*p == '.' || *p == ',') {
            int scale = 100;
            p++;
            if (!isdigit((unsigned char)*p)) {
                return TD_EINVAL;
            }
            while (isdigit((unsigned char)*p)) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
                p++;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) {
            return TD_EINVAL;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (digits(&p, 2, &oh)) {
                return TD_EINVAL;
            }
            /* "+01:00", "+0100" or "+01"; a colon needs its minutes */
            if (*p == ':') {
                p++;
                if (digits(&p, 2, &om)) {
                    return TD_EINVAL;
                }
            } else if (isdigit((unsigned char)*p) && digits(&p, 2, &om)) {
                return TD_EINVAL;
            }
            if (oh > 23 || om > 59) {
                return TD_EINVAL;
            }
            off_min = sign * (oh * 60 + om);
        } else {
            return TD_EINVAL; /* a time without a zone is ambiguous */
        }
    }
    if (*p != '\0') {
        return TD_EINVAL;
    }
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - (int64_t)off_min * 60) * 1000 + frac_ms;
    return TD_OK;
}

void td_time_format_iso(int64_t ms, char *out, size_t out_len)
{
    /* floor division without the overflow of (ms - 999) near INT64_MIN */
    int64_t secs = ms / 1000;
    int rem = (int)(ms % 1000);
    struct tm tm;

    if (rem < 0) {
        rem += 1000;
        secs--;
    }
    time_t t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL) {
        memset(&tm, 0, sizeof(tm)); /* beyond what struct tm holds: print something defined */
    }
    snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rem);
}
