/* Time for journeys: durations ("3h", "PT3H"), times of values (epoch ms or
 * ISO 8601 text), and time zones. Zones come from the system's zoneinfo
 * files (TZif, RFC 8536), read once and cached, including the POSIX TZ rule
 * at their end that covers the years after the last listed transition.
 * Everything except td_journey_tzdb_* is pure. */
#include "journey/internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
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

/* ---- fixed offsets and TZif ------------------------------------------- */

/* "+02:00", "-0530", "+2", "UTC", "Z", "GMT": fixed offsets without a file. */
static bool fixed_offset(const char *zone, int *offset_s)
{
    if (strcmp(zone, "UTC") == 0 || strcmp(zone, "Z") == 0 || strcmp(zone, "GMT") == 0 ||
        strcmp(zone, "Etc/UTC") == 0) {
        *offset_s = 0;
        return true;
    }
    const char *p = zone;
    if (strncmp(p, "UTC", 3) == 0) {
        p += 3;
    }
    if (*p != '+' && *p != '-') {
        return false;
    }
    int sign = *p++ == '-' ? -1 : 1, h = 0, m = 0, nd = 0;
    while (isdigit((unsigned char)*p) && nd < 2) {
        h = h * 10 + (*p++ - '0');
        nd++;
    }
    if (nd == 0) {
        return false;
    }
    if (*p == ':') {
        p++;
    }
    if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
    }
    if (*p != '\0' || h > 14 || m > 59) {
        return false;
    }
    *offset_s = sign * (h * 3600 + m * 60);
    return true;
}

static int64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    if (n == 4) {
        return (int32_t)(uint32_t)v;
    }
    return (int64_t)v;
}

/* POSIX TZ rules ("CET-1CEST,M3.5.0,M10.5.0/3"), as at the end of TZif v2+. */
typedef struct rule {
    char kind; /* 'M', 'J', 'n' */
    int m, w, d, n;
    int time_s;
} rule_t;

static const char *tz_name(const char *p)
{
    if (*p == '<') {
        const char *e = strchr(p, '>');
        return e ? e + 1 : NULL;
    }
    const char *s = p;
    while (isalpha((unsigned char)*p)) {
        p++;
    }
    return p - s >= 3 ? p : NULL;
}

static const char *tz_offset(const char *p, int *secs, bool allow_big)
{
    int sign = 1, h = 0, m = 0, s = 0;

    if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
    }
    if (!isdigit((unsigned char)*p)) {
        return NULL;
    }
    while (isdigit((unsigned char)*p)) {
        h = h * 10 + (*p++ - '0');
        if (h > (allow_big ? 167 : 24)) {
            return NULL;
        }
    }
    if (*p == ':') {
        p++;
        while (isdigit((unsigned char)*p)) {
            m = m * 10 + (*p++ - '0');
            if (m > 59) {
                return NULL;
            }
        }
        if (*p == ':') {
            p++;
            while (isdigit((unsigned char)*p)) {
                s = s * 10 + (*p++ - '0');
                if (s > 59) {
                    return NULL;
                }
            }
        }
    }
    *secs = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *tz_rule(const char *p, rule_t *r)
{
    r->time_s = 7200;
    if (*p == 'M') {
        r->kind = 'M';
        if (sscanf(p + 1, "%d.%d.%d", &r->m, &r->w, &r->d) != 3 || r->m < 1 || r->m > 12 ||
            r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6) {
            return NULL;
        }
        p++;
        while (isdigit((unsigned char)*p) || *p == '.') {
            p++;
        }
    } else {
        r->kind = *p == 'J' ? 'J' : 'n';
        p += *p == 'J';
        if (!isdigit((unsigned char)*p)) {
            return NULL;
        }
        r->n = 0;
        while (isdigit((unsigned char)*p)) {
            r->n = r->n * 10 + (*p++ - '0');
            if (r->n > 365) {
                return NULL;
            }
        }
    }
    if (*p == '/') {
        p = tz_offset(p + 1, &r->time_s, true);
    }
    return p;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* Seconds since the epoch (as if UTC) at which rule r happens in year y. */
static int64_t rule_time(const rule_t *r, int64_t y)
{
    int64_t day;

    if (r->kind == 'M') {
        static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int64_t first = days_from_civil(y, r->m, 1);
        int wd_first = (int)((first % 7 + 7 + 4) % 7); /* 0 = Sunday */
        int dom = 1 + (r->d - wd_first + 7) % 7 + (r->w - 1) * 7;
        int len = mdays[r->m - 1] + (r->m == 2 && leap(y));
        while (dom > len) {
            dom -= 7;
        }
        day = first + dom - 1;
    } else if (r->kind == 'J') {
        int n = r->n < 1 ? 1 : r->n;
        day = days_from_civil(y, 1, 1) + n - 1 + (leap(y) && n >= 60);
    } else {
        day = days_from_civil(y, 1, 1) + r->n;
    }
    return day * 86400 + r->time_s;
}

static int posix_offset(const char *tz, int64_t t, int *offset_s)
{
    int std_off, dst_off;
    rule_t start, end;
    const char *p = tz_name(tz);

    if (p == NULL || (p = tz_offset(p, &std_off, false)) == NULL) {
        return TD_EINVAL;
    }
    std_off = -std_off; /* POSIX counts west of Greenwich */
    if (*p == '\0') {
        *offset_s = std_off;
        return TD_OK;
    }
    if ((p = tz_name(p)) == NULL) {
        return TD_EINVAL;
    }
    dst_off = std_off + 3600;
    if (*p != ',' && *p != '\0') {
        if ((p = tz_offset(p, &dst_off, false)) == NULL) {
            return TD_EINVAL;
        }
        dst_off = -dst_off;
    }
    if (*p != ',' || (p = tz_rule(p + 1, &start)) == NULL || *p != ',' ||
        (p = tz_rule(p + 1, &end)) == NULL) {
        return TD_EINVAL;
    }
    int64_t days = t / 86400 - (t % 86400 < 0);
    int y, m, d;
    {
        /* civil year of t in standard time */
        int64_t z = days + (int64_t)std_off / 86400 + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        d = (int)(doy - (153 * mp + 2) / 5 + 1);
        m = (int)(mp < 10 ? mp + 3 : mp - 9);
        y = (int)(yoe + era * 400 + (m <= 2));
        (void)d;
    }
    /* start is given in standard local time, end in daylight local time */
    int64_t s = rule_time(&start, y) - std_off;
    int64_t e = rule_time(&end, y) - dst_off;
    bool in_dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    *offset_s = in_dst ? dst_off : std_off;
    return TD_OK;
}

int td_journey_tzif_offset(const unsigned char *data, size_t len, int64_t utc_ms, int *offset_s)
{
    const unsigned char *p = data, *end = data + len;
    int64_t t = utc_ms / 1000 - (utc_ms % 1000 < 0);
    int tsize = 4;

    if (len < 44 || memcmp(p, "TZif", 4) != 0) {
        return TD_EINVAL;
    }
    char version = (char)p[4];
    for (int pass = 0; pass < 2; pass++) {
        if ((size_t)(end - p) < 44 || memcmp(p, "TZif", 4) != 0) {
            return TD_EINVAL;
        }
        int64_t isut = be(p + 20, 4), isstd = be(p + 24, 4), leapc = be(p + 28, 4);
        int64_t timec = be(p + 32, 4), typec = be(p + 36, 4), charc = be(p + 40, 4);
        if (isut < 0 || isstd < 0 || leapc < 0 || timec < 0 || typec < 1 || charc < 0 ||
            timec > 100000 || typec > 256 || leapc > 100000 || charc > 100000 || isut > 256 ||
            isstd > 256) {
            return TD_EINVAL;
        }
        p += 44;
        size_t block = (size_t)(timec * tsize + timec + typec * 6 + charc + leapc * (tsize + 4) +
                                isstd + isut);
        if ((size_t)(end - p) < block) {
            return TD_EINVAL;
        }
        if (pass == 0 && version >= '2') {
            p += block; /* skip the 32-bit block: the 64-bit one follows */
            tsize = 8;
            continue;
        }
        const unsigned char *times = p, *idx = p + timec * tsize, *types = idx + timec;
        int64_t lo = 0, hi = timec; /* first transition after t */
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (be(times + mid * tsize, tsize) <= t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        int type = 0;
        if (lo == 0) {
            /* before the first transition: the first standard-time type */
            for (int k = 0; k < typec; k++) {
                if (types[k * 6 + 4] == 0) {
                    type = k;
                    break;
                }
            }
        } else {
            type = idx[lo - 1];
        }
        if (type >= typec) {
            return TD_EINVAL;
        }
        if (lo == timec && version >= '2') {
            /* after the last transition the footer's POSIX rule decides */
            const unsigned char *f = p + block;
            if (end - f >= 2 && f[0] == '\n') {
                const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
                if (nl && nl > f + 1 && nl - f < 128) {
                    char tz[128];
                    memcpy(tz, f + 1, (size_t)(nl - f - 1));
                    tz[nl - f - 1] = '\0';
                    if (posix_offset(tz, t, offset_s) == TD_OK) {
                        return TD_OK;
                    }
                }
            }
        }
        *offset_s = (int)be(types + type * 6, 4);
        return TD_OK;
    }
    return TD_EINVAL;
}

/* ---- the zone cache --------------------------------------------------- */

typedef struct zone {
    char *name;
    unsigned char *data; /* NULL: known to be missing */
    size_t len;
    struct zone *next;
} zone_t;

struct td_journey_tzdb {
    char *dir;
    pthread_mutex_t mu;
    zone_t *zones;
    int n_zones;
};

td_journey_tzdb_t *td_journey_tzdb_new(const char *zoneinfo_dir)
{
    td_journey_tzdb_t *db = td_xcalloc(1, sizeof(*db));

    db->dir = td_xstrdup(zoneinfo_dir ? zoneinfo_dir : "/usr/share/zoneinfo");
    pthread_mutex_init(&db->mu, NULL);
    return db;
}

void td_journey_tzdb_free(td_journey_tzdb_t *db)
{
    if (db == NULL) {
        return;
    }
    while (db->zones) {
        zone_t *z = db->zones;
        db->zones = z->next;
        free(z->name);
        free(z->data);
        free(z);
    }
    pthread_mutex_destroy(&db->mu);
    free(db->dir);
    free(db);
}

static bool zone_name_ok(const char *zone)
{
    size_t n = strlen(zone);

    if (n == 0 || n > 64 || zone[0] == '/' || strstr(zone, "..")) {
        return false;
    }
    for (const char *c = zone; *c; c++) {
        if (!isalnum((unsigned char)*c) && !strchr("/_-+", *c)) {
            return false;
        }
    }
    return true;
}

static zone_t *load_zone(td_journey_tzdb_t *db, const char *zone)
{
    zone_t *z = td_xcalloc(1, sizeof(*z));
    char path[512];
    FILE *f;

    z->name = td_xstrdup(zone);
    snprintf(path, sizeof(path), "%s/%s", db->dir, zone);
    if ((f = fopen(path, "rb")) != NULL) {
        unsigned char buf[65536];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        int off;
        if (n > 0 && n < sizeof(buf) && td_journey_tzif_offset(buf, n, 0, &off) == TD_OK) {
            z->data = td_xmalloc(n);
            memcpy(z->data, buf, n);
            z->len = n;
        }
    }
    if (z->data == NULL) {
        td_log(TD_LOG_WARN, "journey", "unknown time zone zone=\"%s\"", zone);
    }
    return z;
}

int td_journey_tzdb_offset(void *ctx, const char *zone, int64_t utc_ms, int *offset_s)
{
    td_journey_tzdb_t *db = ctx;
    zone_t *z;

    if (fixed_offset(zone, offset_s)) {
        return TD_OK;
    }
    if (db == NULL || !zone_name_ok(zone)) {
        return TD_ENOTFOUND;
    }
    pthread_mutex_lock(&db->mu);
    for (z = db->zones; z; z = z->next) {
        if (strcmp(z->name, zone) == 0) {
            break;
        }
    }
    if (z == NULL && db->n_zones < 1000) {
        z = load_zone(db, zone);
        z->next = db->zones;
        db->zones = z;
        db->n_zones++;
    }
    pthread_mutex_unlock(&db->mu);
    /* loaded zones are never changed or freed before the db: read unlocked */
    if (z == NULL || z->data == NULL) {
        return TD_ENOTFOUND;
    }
    return td_journey_tzif_offset(z->data, z->len, utc_ms, offset_s) == TD_OK ? TD_OK
                                                                              : TD_ENOTFOUND;
}

int td_journey__next_time_of_day(int64_t now_ms, int minute_of_day, const char *zone,
                                 const td_journey_env_t *env, int64_t *out)
{
    int off = 0;

    if (zone && !fixed_offset(zone, &off) &&
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
            if (fixed_offset(zone, &o2) ||
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
